//! D1 backups are exact: a database holding every awkward value and object is backed up by each
//! method, replayed into a fresh SQLite, and its schema and every table's content match the
//! source. Where D1's export rounds integers past 2^53, cfdr notices and keeps its paged dump.

mod common;

use common::d1::{LOSSY, VIRTUAL, picture, plain_fixed, truth};
use rusqlite::Connection;
use serde_json::Value;

const KEY: &str = "1c3e5a7b9d0f2e4c6a8b0d1f3e5c7a9b2d4f6e8a0c1b3d5f7e9a2c4b6d8f0e1a";

fn cfdr(h: &common::Handle, repo: &str, args: &[&str]) -> std::process::Output {
    common::cfdr_cmd(h, repo, KEY)
        .args(args)
        .output()
        .expect("cfdr runs")
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

#[tokio::test(flavor = "multi_thread")]
async fn every_method_restores_exactly_and_lossy_exports_are_caught() {
    let api = common::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo").to_str().unwrap().to_string();
    let (h, r) = (api.clone_handle(), repo.clone());
    tokio::task::spawn_blocking(move || assert!(cfdr(&h, &r, &["repo", "init"]).status.success()))
        .await
        .unwrap();

    // randomblob() must be the same on both sides.
    let fixed = plain_fixed();

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
