//! `cfdr restore` of a SQLite file backup through the binary: the plan changes nothing, the
//! file is replaced atomically by the backup's bytes with the old one (and its WAL) kept beside
//! it, undo brings the old one back, and `--to` writes a new file.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

const KEY: &str = "4a6c8e0b2d4f6a8c0e1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f1a3c5e7b9d2f4a6c";

fn cfdr(repo: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cfdr"));
    c.env("CFDR_REPO", repo)
        .env("CFDR_KEY", KEY)
        .env("CFDR_CONFIG", "/nonexistent/cfdr.toml")
        .env_remove("CLOUDFLARE_API_TOKEN")
        .env_remove("CLOUDFLARE_ACCOUNT_ID")
        .env_remove("CFDR_KEY_FILE")
        .args(args)
        .stdin(Stdio::null());
    c
}

fn ok_json(repo: &str, args: &[&str]) -> Value {
    let out = cfdr(repo, args).output().unwrap();
    assert!(
        out.status.success(),
        "cfdr {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// Every table with its rows, as `quote()`d text.
fn content(path: &Path) -> Vec<(String, Vec<String>)> {
    let db = rusqlite::Connection::open(path).unwrap();
    let names: Vec<String> = db
        .prepare("SELECT name FROM sqlite_schema WHERE type='table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    names
        .into_iter()
        .map(|n| {
            let rows = db
                .prepare(&format!(
                    "SELECT quote(id) || ',' || quote(v) FROM \"{n}\" ORDER BY id"
                ))
                .unwrap()
                .query_map([], |r| r.get::<_, String>(0))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            (n, rows)
        })
        .collect()
}

#[test]
fn a_file_is_replaced_atomically_and_can_be_put_back() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo").to_str().unwrap().to_string();
    let file = tmp.path().join("app.db");
    {
        let db = rusqlite::Connection::open(&file).unwrap();
        db.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE users(id INTEGER PRIMARY KEY, v TEXT);
             CREATE TABLE orders(id INTEGER PRIMARY KEY, v BLOB);",
        )
        .unwrap();
        for i in 0..500 {
            db.execute(
                "INSERT INTO users VALUES (?1, ?2)",
                rusqlite::params![i, format!("user {i} 'q'")],
            )
            .unwrap();
            db.execute(
                "INSERT INTO orders VALUES (?1, ?2)",
                rusqlite::params![i, vec![i as u8, 0, 255]],
            )
            .unwrap();
        }
    }
    assert!(cfdr(&repo, &["repo", "init"]).status().unwrap().success());
    let b = ok_json(
        &repo,
        &["backup", "sqlite", file.to_str().unwrap(), "--json"],
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let original = content(&file);

    // The incident, in WAL mode.
    {
        let db = rusqlite::Connection::open(&file).unwrap();
        db.execute_batch("DELETE FROM users WHERE id % 3 = 0; DROP TABLE orders; CREATE TABLE junk(id INTEGER PRIMARY KEY, v TEXT);")
            .unwrap();
    }
    let damaged = content(&file);
    let before = std::fs::read(&file).unwrap();

    let plan = ok_json(&repo, &["restore", &b, "--dry-run", "--json"]);
    assert_eq!(
        (
            plan["counts"]["added"].as_u64(),
            plan["counts"]["changed"].as_u64(),
            plan["counts"]["removed"].as_u64()
        ),
        (Some(1), Some(1), Some(1)),
        "{plan}"
    );
    assert_eq!(plan["snapshot"], "required");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        before,
        "a dry run leaves the file alone"
    );
    let headless = cfdr(&repo, &["restore", &b]).output().unwrap();
    assert_eq!(headless.status.code(), Some(2));

    let r = ok_json(&repo, &["restore", &b, "--yes", "--json"]);
    assert_eq!(r["report"]["outcome"], "success", "{r}");
    assert_eq!(content(&file), original, "the backup's tables and rows");
    let run = r["report"]["run"].as_str().unwrap();
    let kept = tmp.path().join(format!("app.db.before-{run}"));
    assert_eq!(content(&kept), damaged, "the old file is kept beside it");
    assert!(
        !tmp.path().join("app.db-wal").exists()
            || std::fs::metadata(tmp.path().join("app.db-wal"))
                .unwrap()
                .len()
                == 0
    );
    assert!(cfdr(&repo, &["diff", &b]).status().unwrap().success());

    let undo = ok_json(&repo, &["restore", "--undo", run, "--yes", "--json"]);
    assert_eq!(undo["report"]["outcome"], "success", "{undo}");
    assert_eq!(
        content(&file),
        damaged,
        "undo puts the pre-recovery file back"
    );
    assert_eq!(cfdr(&repo, &["diff", &b]).status().unwrap().code(), Some(1));

    let copy = tmp.path().join("restored/copy.db");
    let c = ok_json(
        &repo,
        &[
            "restore",
            &b,
            "--to",
            copy.to_str().unwrap(),
            "--yes",
            "--json",
        ],
    );
    assert_eq!(c["plan"]["snapshot"], "not-needed");
    assert_eq!(content(&copy), original);
}
