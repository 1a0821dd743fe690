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
    // Run again when HEAD moves: the files git keeps it in, wherever git says they are (in a
    // linked worktree `.git` is a file, HEAD and the index are the worktree's own, the refs are
    // shared with the main checkout).
    let dir = git(&["rev-parse", "--git-dir"]);
    let common = git(&["rev-parse", "--git-common-dir"]).or_else(|| dir.clone());
    let mut watched = Vec::new();
    if let (Some(dir), Some(common)) = (&dir, &common) {
        let (dir, common) = (Path::new(dir), Path::new(common));
        watched = vec![
            dir.join("HEAD"),
            dir.join("index"),
            common.join("refs/heads"),
            common.join("packed-refs"),
        ];
    }
    let mut any = false;
    for p in watched.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", p.display());
        any = true;
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
