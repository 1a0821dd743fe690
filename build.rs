//! Puts the commit the binary is built from into `cfdr --version` (`CFDR_COMMIT`): the short
//! hash, `+dirty` when the work tree had changes, or `unknown` outside a git checkout. Only
//! the binary's `main.rs` reads it, so a new commit rebuilds that one small file, not the library.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    // Run again when HEAD moves: the files git keeps it in (those that exist here).
    let watched = [
        ".git/HEAD",
        ".git/refs/heads",
        ".git/packed-refs",
        ".git/index",
    ];
    let mut any = false;
    for p in watched {
        if Path::new(p).exists() {
            println!("cargo:rerun-if-changed={p}");
            any = true;
        }
    }
    if !any {
        println!("cargo:rerun-if-changed=build.rs");
    }
    let commit = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(c) if !c.is_empty() => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty { format!("{c}+dirty") } else { c }
        }
        _ => "unknown".to_string(),
    };
    println!("cargo:rustc-env=CFDR_COMMIT={commit}");
}
