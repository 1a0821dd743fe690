//! The audit trail through the binary: actions append entries (here SQLite backups and
//! verifications, which need no Cloudflare), `cfdr audit` lists them, and `cfdr audit verify`
//! finds each kind of tampering — an edited entry, a removed one, two swapped, the last ones
//! cut off, the head rewritten — and names the entry.

use std::process::Command;

const KEY: &str = "5e1c3a7b9d2f4e6a8c0b1d3f5a7c9e2b4d6f8a0c1e3b5d7f9a2c4e6b8d0f1a3c";

fn cfdr(repo: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cfdr"))
        .args(args)
        .env("CFDR_REPO", repo)
        .env("CFDR_KEY", KEY)
        .env("CFDR_CONFIG", "/nonexistent/cfdr.toml")
        .env_remove("CFDR_KEY_FILE")
        .env_remove("CLOUDFLARE_API_TOKEN")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// The one month file of the trail.
fn trail(repo: &std::path::Path) -> std::path::PathBuf {
    let dir = repo.join("audit");
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .unwrap()
}

#[test]
fn every_kind_of_tampering_is_found_and_named() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let db = tmp.path().join("app.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("CREATE TABLE t (a); INSERT INTO t VALUES (1);")
        .unwrap();
    assert!(cfdr(&repo, &["repo", "init"]).status.success());
    let db = db.to_str().unwrap();
    let mut ids = Vec::new();
    for n in 0..3 {
        conn.execute("INSERT INTO t VALUES (?1)", [n]).unwrap();
        let o = cfdr(&repo, &["backup", "sqlite", db, "--name", "app", "--json"]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    let o = cfdr(&repo, &["backups", "verify", &ids[0], "--full"]);
    assert!(o.status.success(), "{}", text(&o.stderr));

    let o = cfdr(&repo, &["audit", "--json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let entries = v["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["backup", "backup", "backup", "verify"], "{v}");
    assert_eq!(entries[1]["backup"], ids[1].as_str());
    assert_eq!(entries[1]["target"], "sqlite `app`");
    assert_eq!(entries[3]["result"], "success");
    assert!(entries[0]["who"].as_str().unwrap().contains('@'));
    let o = cfdr(&repo, &["audit", "verify"]);
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    assert!(text(&o.stdout).contains("4 entries"), "{}", text(&o.stdout));
    let listed = text(&cfdr(&repo, &["audit"]).stdout);
    assert!(
        listed.contains("verify") && listed.contains(&ids[2]),
        "{listed}"
    );

    type Tamper = fn(Vec<String>) -> Vec<String>;
    let cases: [(&str, Tamper, &str); 5] = [
        (
            "edited",
            |mut l| {
                l[1] = l[1].replace("\"success\"", "\"failed\"");
                l
            },
            "line 2: entry 2",
        ),
        (
            "removed",
            |mut l| {
                l.remove(1);
                l
            },
            "entries 2–2 were removed",
        ),
        (
            "reordered",
            |mut l| {
                l.swap(1, 2);
                l
            },
            "reordered",
        ),
        (
            "cut off",
            |mut l| {
                l.pop();
                l
            },
            "entries 4–4 were removed",
        ),
        (
            "forged",
            |mut l| {
                // A new last line that claims to follow: without the key its MAC cannot hold.
                let mut e: serde_json::Value = serde_json::from_str(&l[3]).unwrap();
                e["seq"] = 5.into();
                e["prev"] = e["mac"].clone();
                l.push(e.to_string());
                l
            },
            "entry 5",
        ),
    ];
    for (what, tamper, want) in cases {
        let copy = tmp.path().join(format!("copy-{}", what.replace(' ', "-")));
        copy_dir(&repo, &copy);
        let file = trail(&copy);
        let lines: Vec<String> = std::fs::read_to_string(&file)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        std::fs::write(&file, tamper(lines).join("\n") + "\n").unwrap();
        let o = cfdr(&copy, &["audit", "verify"]);
        assert_eq!(o.status.code(), Some(1), "{what}: {}", text(&o.stdout));
        assert!(
            text(&o.stdout).contains(want),
            "{what}: wanted `{want}` in:\n{}",
            text(&o.stdout)
        );
    }
    // The head rewritten to hide the cut: its MAC gives it away.
    let copy = tmp.path().join("copy-head");
    copy_dir(&repo, &copy);
    let head = copy.join("audit/head.json");
    let mut h: serde_json::Value = serde_json::from_slice(&std::fs::read(&head).unwrap()).unwrap();
    h["seq"] = 3.into();
    std::fs::write(&head, h.to_string()).unwrap();
    let o = cfdr(&copy, &["audit", "verify", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stdout).contains("head.json was edited"),
        "{}",
        text(&o.stdout)
    );
}
