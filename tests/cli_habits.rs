//! The command line's habits, generated from its clap definitions: completions for bash, zsh
//! and fish that name every subcommand, a man page for every command, and `--version` with the
//! commit the binary was built from.

use std::process::Command;

/// Every command path of the binary, as `["backups", "verify"]`, from its own definition.
fn commands() -> Vec<Vec<String>> {
    fn walk(c: &clap::Command, path: Vec<String>, out: &mut Vec<Vec<String>>) {
        for sub in c.get_subcommands().filter(|s| s.get_name() != "help") {
            let mut p = path.clone();
            p.push(sub.get_name().to_string());
            out.push(p.clone());
            walk(sub, p, out);
        }
    }
    let mut out = Vec::new();
    walk(&cfdr::cli::command("test"), Vec::new(), &mut out);
    out
}

fn cfdr(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_cfdr"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cfdr {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn completions_name_every_subcommand_in_each_shell() {
    let all = commands();
    assert!(all.len() > 30, "{} commands", all.len());
    for shell in ["bash", "zsh", "fish"] {
        let script = String::from_utf8(cfdr(&["completions", shell]).stdout).unwrap();
        for path in &all {
            let name = path.last().unwrap();
            assert!(
                script.contains(name.as_str()),
                "{shell} completion lacks `{}`",
                path.join(" ")
            );
        }
    }
    // bash's script names each command by its whole path (`cfdr__subcmd__backups__subcmd__verify`).
    let bash = String::from_utf8(cfdr(&["completions", "bash"]).stdout).unwrap();
    for path in &all {
        let id = format!(
            "cfdr__subcmd__{}",
            path.join("__subcmd__").replace('-', "__subcmd__")
        );
        assert!(bash.contains(&id), "bash completes `{}`", path.join(" "));
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_cfdr"))
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("tcsh"));
}

#[test]
fn a_man_page_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = cfdr(&["man", "--dir", dir.path().to_str().unwrap()]);
    for path in commands() {
        let page = dir.path().join(format!("cfdr-{}.1", path.join("-")));
        let text =
            std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        assert!(text.contains(".TH"), "{} is roff", page.display());
    }
    let top = std::fs::read_to_string(dir.path().join("cfdr.1")).unwrap();
    assert!(top.contains("restore") && top.contains("drill"), "{top}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("man pages in"));
    let stdout = String::from_utf8(cfdr(&["man"]).stdout).unwrap();
    assert!(
        stdout.starts_with(".ie") || stdout.contains(".TH cfdr"),
        "{stdout:.200}"
    );
}

#[test]
fn version_names_the_commit() {
    let v = String::from_utf8(cfdr(&["--version"]).stdout).unwrap();
    assert!(
        v.starts_with(&format!("cfdr {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
    // In a git checkout, the commit is HEAD's (as the build saw it).
    if let Ok(head) = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        && head.status.success()
    {
        let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
        assert!(v.contains(&head), "{v} is not built from {head}");
    }
}
