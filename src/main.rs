//! The `cfdr` binary: parses the command line and hands over to the library.

fn main() -> std::process::ExitCode {
    // glibc raises its mmap threshold each time a large buffer is freed; from then on the 1 to
    // 8 MiB buffers of sealing and of R2 transfers come from per-thread arenas that do not give
    // memory back, and an R2 restore's peak grew from 52 to 63 MiB. A fixed threshold keeps such
    // buffers mapped on their own and returned when freed.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter, here before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
    // The version with the commit it was built from (build.rs), for `--version`, the man pages
    // and bug reports.
    cfdr::cli::main(concat!(
        env!("CARGO_PKG_VERSION"),
        " (commit ",
        env!("CFDR_COMMIT"),
        ")"
    ))
}
