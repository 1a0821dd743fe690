//! The `cfdr` binary: parses the command line and hands over to the library.

fn main() -> std::process::ExitCode {
    cfdr::cli::main()
}
