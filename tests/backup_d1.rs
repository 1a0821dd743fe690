//! D1 backups are exact: a database holding every awkward value and object is backed up by each
//! method, replayed into a fresh SQLite, and its schema and every table's content match the
//! source. Where D1's export rounds integers past 2^53, cfdr notices and keeps its paged dump.

mod common;

use std::collections::BTreeMap;

use rusqlite::Connection;
use serde_json::Value;

const KEY: &str = "1c3e5a7b9d0f2e4c6a8b0d1f3e5c7a9b2d4f6e8a0c1b3d5f7e9a2c4b6d8f0e1a";

const PLAIN: &str = r#"
CREATE TABLE vals(id INTEGER PRIMARY KEY AUTOINCREMENT, i INTEGER, r REAL, t TEXT, b BLOB, n);
INSERT INTO vals(i, r, t, b, n) VALUES (1, 0.1, 'it''s "quoted"', X'', NULL);
INSERT INTO vals(i, r, t, b, n) VALUES (-2, 1e300, 'line1
line2' || char(13) || 'cr', X'00ff10', 2.5);
INSERT INTO vals(i, r, t, b, n) VALUES (9007199254740992, -1.5e-300, 'unicode é ☃ 🚀', randomblob(300), 'x');
INSERT INTO vals(i, r, t, b, n) VALUES (7, 2.0, 'gone', NULL, NULL);
DELETE FROM vals WHERE i = 7;
CREATE TABLE "odd ""name"" [x]" ("a b" TEXT, "q""uote" INTEGER, [br] TEXT);
INSERT INTO "odd ""name"" [x]" VALUES ('x', 1, 'y'), (NULL, NULL, NULL);
CREATE TABLE parent(id INTEGER PRIMARY KEY, name TEXT UNIQUE);
CREATE TABLE child(id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id), v TEXT);
INSERT INTO parent VALUES (1, 'p1'), (2, 'p2');
INSERT INTO child VALUES (1, 2, 'c1'), (2, 1, 'c2');
CREATE TABLE kv(k TEXT PRIMARY KEY, v) WITHOUT ROWID;
INSERT INTO kv VALUES ('a', 1), ('b', X'01'), ('c', -0.5);
CREATE TABLE gen(a INTEGER, b INTEGER GENERATED ALWAYS AS (a * 2) VIRTUAL, c TEXT GENERATED ALWAYS AS (a || '!') STORED);
INSERT INTO gen(a) VALUES (1), (21);
CREATE TABLE big(x INTEGER);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1234) INSERT INTO big SELECT i * 3 FROM n;
CREATE INDEX child_parent ON child(parent_id);
CREATE VIEW child_names AS SELECT c.id, p.name FROM child c JOIN parent p ON p.id = c.parent_id;
CREATE TRIGGER vals_touch AFTER UPDATE ON vals BEGIN
  UPDATE vals SET n = 'touched' WHERE id = new.id;
END;
"#;

const LOSSY: &str = r#"
CREATE TABLE extremes(id INTEGER PRIMARY KEY, v INTEGER, r REAL);
INSERT INTO extremes VALUES (1, 9223372036854775807, -0.0), (2, -9223372036854775808, 0.0), (3, 9007199254740993, 100.0);
CREATE TABLE escapes(t TEXT);
INSERT INTO escapes VALUES ('a literal \n and a real' || char(10) || 'newline');
"#;

const VIRTUAL: &str = r#"
CREATE VIRTUAL TABLE docs USING fts5(title, body);
INSERT INTO docs(rowid, title, body) VALUES (10, 'backup', 'restore drills every quarter'), (20, 'kv', 'bulk get is text');
"#;

fn cfdr(h: &common::Handle, repo: &str, args: &[&str]) -> std::process::Output {
    common::cfdr_cmd(h, repo, KEY)
        .args(args)
        .output()
        .expect("cfdr runs")
}

/// Schema objects, per-table (rows, hash), and sqlite_sequence.
type Picture = (
    Vec<(String, String, String)>,
    BTreeMap<String, (u64, String)>,
    Vec<String>,
);

/// Schema and content of a local database, in a comparable form.
fn picture(conn: &Connection) -> Picture {
    let schema = conn
        .prepare(
            "SELECT type, name, sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY type, name",
        )
        .unwrap()
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get::<_, String>(2)?
                    .replace("CREATE TABLE IF NOT EXISTS", "CREATE TABLE"),
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let seq = conn
        .prepare("SELECT name || '=' || seq FROM sqlite_sequence ORDER BY name")
        .and_then(|mut s| s.query_map([], |r| r.get(0)).and_then(|m| m.collect()))
        .unwrap_or_default();
    (
        schema,
        cfdr::engine::d1::paged::local_hashes(conn).unwrap(),
        seq,
    )
}

async fn backup_and_replay(
    api: &common::Api,
    repo: &str,
    db: &str,
    method: Option<&str>,
) -> (Connection, Value) {
    let mut args = vec![
        "backup".to_string(),
        "d1".into(),
        db.into(),
        "--json".into(),
    ];
    if let Some(m) = method {
        args.extend(["--method".into(), m.into()]);
    }
    let (h, r) = (api.clone_handle(), repo.to_string());
    let out = tokio::task::spawn_blocking(move || {
        let b = cfdr(&h, &r, &args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
        let m: Value = serde_json::from_slice(&b.stdout).unwrap();
        let cat = cfdr(&h, &r, &["backups", "cat", m["id"].as_str().unwrap()]);
        assert!(
            cat.status.success(),
            "{}",
            String::from_utf8_lossy(&cat.stderr)
        );
        (m, cat.stdout)
    })
    .await
    .unwrap();
    let (m, dump) = out;
    let replayed = Connection::open_in_memory().unwrap();
    replayed
        .execute_batch(&format!(
            "BEGIN;{}\nCOMMIT;",
            String::from_utf8(dump).unwrap()
        ))
        .unwrap();
    (replayed, m)
}

fn truth(sql: &str) -> Connection {
    let c = Connection::open_in_memory().unwrap();
    c.execute_batch(sql).unwrap();
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn every_method_restores_exactly_and_lossy_exports_are_caught() {
    let api = common::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo").to_str().unwrap().to_string();
    let (h, r) = (api.clone_handle(), repo.clone());
    tokio::task::spawn_blocking(move || assert!(cfdr(&h, &r, &["repo", "init"]).status.success()))
        .await
        .unwrap();

    // randomblob() must be the same on both sides: build the truth first, copy its blob over.
    let plain_truth = truth(PLAIN);
    let blob: Vec<u8> = plain_truth
        .query_row("SELECT b FROM vals WHERE i = 9007199254740992", [], |r| {
            r.get(0)
        })
        .unwrap();
    let fixed = PLAIN.replace("randomblob(300)", &format!("X'{}'", hex::encode(&blob)));

    // 1. Exact content, no virtual tables: the export is kept and equals the source.
    let plain = api.d1_create("plain").await;
    api.d1_import(&plain, &fixed).await;
    let (replayed, m) = backup_and_replay(&api, &repo, "plain", None).await;
    assert_eq!(m["method"], "export", "{m}");
    assert!(m["consistency_point"]["bookmark"].is_string());
    assert_eq!(picture(&replayed), picture(&truth(&fixed)));
    let (replayed, m) = backup_and_replay(&api, &repo, "plain", Some("paged")).await;
    assert_eq!(m["method"], "paged");
    assert_eq!(picture(&replayed), picture(&truth(&fixed)));

    // 2. Integers past 2^53 (rounded by D1's export) and text holding a literal backslash-n
    // (turned into a newline by its fixed placeholders): cfdr notices and keeps its paged dump.
    let lossy = api.d1_create("lossy").await;
    api.d1_import(&lossy, &format!("{fixed}{LOSSY}")).await;
    let (replayed, m) = backup_and_replay(&api, &repo, "lossy", Some("export")).await;
    assert_eq!(m["method"], "paged", "{m}");
    let warning = m["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("`extremes`")
            && warning.contains("`escapes`")
            && warning.contains("paged method"),
        "{warning}"
    );
    assert_eq!(
        picture(&replayed),
        picture(&truth(&format!("{fixed}{LOSSY}")))
    );
    let max: i64 = replayed
        .query_row("SELECT v FROM extremes WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(max, i64::MAX);

    // 3. Text holding NUL: D1's export writes it raw and cannot be replayed; the paged dump can.
    let nul_sql =
        "CREATE TABLE nul(t TEXT); INSERT INTO nul VALUES ('nul' || char(0) || 'byte'), ('plain');";
    let nul = api.d1_create("nul").await;
    api.d1_sql(&nul, nul_sql).await.result();
    let (replayed, m) = backup_and_replay(&api, &repo, "nul", None).await;
    assert_eq!(m["method"], "paged", "{m}");
    assert!(
        m["warnings"][0]
            .as_str()
            .unwrap()
            .contains("does not replay"),
        "{m}"
    );
    assert_eq!(picture(&replayed), picture(&truth(nul_sql)));
    let len: i64 = replayed
        .query_row(
            "SELECT length(CAST(t AS BLOB)) FROM nul WHERE rowid = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(len, 8, "all 8 bytes, NUL included");

    // 4. A virtual table: the paged method by default, FTS rows through the table itself.
    let fts = api.d1_create("fts").await;
    api.d1_sql(&fts, VIRTUAL).await.result();
    api.d1_sql(
        &fts,
        "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes VALUES (1, 'x');",
    )
    .await
    .result();
    let (replayed, m) = backup_and_replay(&api, &repo, "fts", None).await;
    assert_eq!(m["method"], "paged");
    let all = format!(
        "{VIRTUAL}CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes VALUES (1, 'x');"
    );
    assert_eq!(picture(&replayed), picture(&truth(&all)));
    let hit: i64 = replayed
        .query_row(
            "SELECT rowid FROM docs WHERE docs MATCH 'quarter'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(hit, 10, "the full-text index works after the replay");
}
