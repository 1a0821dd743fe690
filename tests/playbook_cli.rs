//! `cfdr playbook list|show|check` through the binary: the built-ins, an operator's override,
//! and a broken file reported by file, line and column with exit 2, before anything runs.

use std::process::Command;

fn cfdr(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cfdr"))
        .args(args)
        .env("CFDR_CONFIG", "/nonexistent/config.toml")
        .env("CFDR_PLAYBOOKS", dir)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn playbooks_are_listed_shown_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let o = cfdr(dir.path(), &["playbook", "list"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    for (file, _) in cfdr::playbook::library::BUILT_IN {
        let id = file.trim_end_matches(".toml");
        assert!(out.contains(id), "{id} missing from:\n{out}");
    }
    assert!(out.contains("D1 database recovery  (RTO 15m"), "{out}");

    let o = cfdr(dir.path(), &["playbook", "show", "d1-recovery"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let show = text(&o.stdout);
    assert!(
        show.contains("database") && show.contains("required"),
        "{show}"
    );
    assert!(
        show.contains("snapshot") && show.contains("confirm") && show.contains("verify"),
        "{show}"
    );

    let o = cfdr(dir.path(), &["playbook", "show", "d1-recovery", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["id"], "d1-recovery");
    assert_eq!(v["rto_secs"], 900);
    assert!(
        v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["kind"] == "restore")
    );

    let o = cfdr(dir.path(), &["playbook", "show", "d2-recovery"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("no playbook `d2-recovery`; the playbooks are d1-recovery"),
        "{}",
        text(&o.stderr)
    );

    // An operator's own playbook with a built-in's id replaces it, and says so.
    let own = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/playbooks/kv-recovery.toml"
    ))
    .unwrap()
    .replace("rto = \"10m\"", "rto = \"5m\"");
    std::fs::write(dir.path().join("kv.toml"), own).unwrap();
    let o = cfdr(dir.path(), &["playbook", "list", "--json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let kv = v["playbooks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "kv-recovery")
        .unwrap()
        .clone();
    assert_eq!(kv["rto_secs"], 300);
    assert!(
        kv["origin"]
            .as_str()
            .unwrap()
            .ends_with("kv.toml (overrides the built-in)"),
        "{kv}"
    );

    // A broken file: named with line and column, exit 2; the others still listed.
    std::fs::write(
        dir.path().join("broken.toml"),
        "id = \"mine\"\ntitle = \"Mine\"\nwhen = \"now\"\nrto = \"5m\"\nrpo = \"1h\"\n\n[[steps]]\nkind = \"restor\"\nbackup = \"{backup}\"\n",
    )
    .unwrap();
    let o = cfdr(dir.path(), &["playbook", "list"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stdout).contains("d1-recovery"));
    let err = text(&o.stderr);
    assert!(
        err.contains("broken.toml:8:8: step 1 has kind `restor`; the step kinds are"),
        "{err}"
    );
    let o = cfdr(
        dir.path(),
        &[
            "playbook",
            "check",
            dir.path().join("broken.toml").to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("broken.toml:8:8:"),
        "{}",
        text(&o.stderr)
    );
}
