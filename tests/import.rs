//! `cfdr import` of the teams' own backup formats (as `../shared/seeds/` describes them), some
//! on disk and some in the emulator's R2: the inventory lists them at their original times,
//! `backups verify --full` passes, a restore of an imported D1 dump and of an imported KV file
//! gives back exactly what the file held, importing again adds nothing, and a truncated dump, a
//! wrong `keyCount` and a corrupt SQLite file are each refused with the reason, nothing stored.

mod common;

use std::path::Path;
use std::process::Command;

use common::d1::{as_written, live, picture, plain_fixed, truth};
use common::{Api, output, put_object, stderr};
use serde_json::{Value, json};

const KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

fn cfdr(api: &Api, repo: &str, args: &[&str]) -> Command {
    common::restore_cmd(api, repo, KEY, args)
}

/// `cfdr import … --json`: its exit code and report.
async fn import(api: &Api, repo: &str, args: &[&str]) -> (Option<i32>, Value) {
    let mut all = vec!["import"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = output(cfdr(api, repo, &all)).await;
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("cfdr {all:?}: {e}: {}", stderr(&out)));
    (out.status.code(), report)
}

fn outcomes(report: &Value) -> Vec<(String, String)> {
    report["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["target"].as_str().unwrap_or("?").to_string(),
                i["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn backups(api: &Api, repo: &str) -> Vec<Value> {
    let out = output(cfdr(api, repo, &["backups", "list", "--json"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
}

/// A KV backup file as `genre-genie-kv-dr.md` describes it.
fn kv_file(at: &str, namespaces: &[(&str, usize)]) -> Value {
    json!({
        "version": "1.0",
        "timestamp": at,
        "accountId": "abc123",
        "namespaces": namespaces.iter().map(|(ns, n)| json!({
            "namespace": ns,
            "namespaceId": format!("{ns}-id"),
            "timestamp": at,
            "keyCount": n,
            "entries": (0..*n).map(|i| json!({
                "key": format!("user:{i:04}"),
                "value": format!("{{\"spotifyId\":\"u{i}\",\"name\":\"n°{i} «é»\"}}"),
                "metadata": if i % 3 == 0 { json!({ "tier": i % 4 }) } else { Value::Null },
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// Restores `backup` into a new target `to`: the id it got.
async fn restore_into(api: &Api, repo: &str, backup: &str, to: &str) -> String {
    let args = ["restore", backup, "--to", to, "--yes", "--json"];
    let r = output(cfdr(api, repo, &args)).await;
    assert!(r.status.success(), "{}", stderr(&r));
    let report: Value = serde_json::from_slice(&r.stdout).unwrap();
    report["report"]["target"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{report}"))
        .to_string()
}

fn write(path: &Path, bytes: impl AsRef<[u8]>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_teams_backups_come_in_verified_restorable_and_only_once() {
    let api = common::start().await;
    api.unlimited().await;
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo").to_str().unwrap().to_string();
    assert!(
        output(cfdr(&api, &repo, &["repo", "init"]))
            .await
            .status
            .success()
    );
    let s3 = api.s3();
    s3.create_bucket("team-backups").await.unwrap();
    let dir = |p: &str| tmp.path().join(p).to_str().unwrap().to_string();

    // genre-genie: a weekly KV file on disk (two namespaces), an older one in R2.
    let kv_new = kv_file(
        "2025-12-05T10:30:00.000Z",
        &[("SESSIONS", 300), ("CACHE", 40)],
    );
    write(
        &tmp.path().join("kv/kv-backup-2025-12-05.json"),
        kv_new.to_string(),
    );
    put_object(
        &s3,
        "team-backups",
        "kv/kv-backup-2025-11-28.json",
        kv_file("2025-11-28T10:30:00.000Z", &[("SESSIONS", 250)])
            .to_string()
            .into_bytes(),
        Some("application/json"),
        &[],
    )
    .await;
    // tech-support: `backups/database-<time>.sql` in R2 with its backup-timestamp metadata
    // (which is what counts); grove: `YYYY-MM-DD/<database>.sql` on disk, comments and all.
    let dump = plain_fixed();
    put_object(
        &s3,
        "team-backups",
        "backups/database-2024-01-15-02-00-00.sql",
        format!("PRAGMA defer_foreign_keys=TRUE;\n{dump}").into_bytes(),
        Some("application/sql"),
        &[
            ("backup-timestamp", "2024-01-15T02:00:05.000Z"),
            ("tables-count", "8"),
        ],
    )
    .await;
    write(
        &tmp.path().join("grove/2024-12-08/groveauth.sql"),
        format!(
            "-- Grove Cache backup of groveauth\n-- Table: users\nBEGIN TRANSACTION;\n{}\nCOMMIT;\n-- Backup Complete\n",
            "CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT NOT NULL);\nINSERT INTO users VALUES(1,'a@grove.place'),(2,'it''s@grove.place');"
        ),
    );
    // work-squared: `backups/full/<timestamp>/livestore.db` with its metadata.json.
    let snap = tmp
        .path()
        .join("snap/backups/full/2025-12-05T10:30:00.000Z");
    std::fs::create_dir_all(&snap).unwrap();
    let db = truth(
        "CREATE TABLE events(id INTEGER PRIMARY KEY, kind TEXT); \
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) \
        INSERT INTO events SELECT i, 'e' || i FROM n;",
    );
    db.execute(
        "VACUUM INTO ?1",
        [snap.join("livestore.db").to_str().unwrap()],
    )
    .unwrap();
    write(
        &snap.join("metadata.json"),
        json!({ "timestamp": "2025-12-05T10:30:00.000Z",
        "version": "1.4.2", "stats": { "events": 500 } })
        .to_string(),
    );

    // A dry run lists them and stores nothing.
    let (code, plan) = import(&api, &repo, &["kv-json", &dir("kv"), "--dry-run"]).await;
    assert_eq!(code, Some(0), "{plan}");
    assert_eq!(
        outcomes(&plan),
        [
            ("CACHE".into(), "would-import".into()),
            ("SESSIONS".into(), "would-import".into())
        ]
    );
    assert!(
        backups(&api, &repo).await.is_empty(),
        "a dry run stores nothing"
    );

    for (args, want) in [
        (vec!["kv-json", &dir("kv")], vec!["CACHE", "SESSIONS"]),
        (vec!["kv-json", "r2://team-backups/kv"], vec!["SESSIONS"]),
        (
            vec![
                "d1-sql",
                "r2://team-backups/backups",
                "--target",
                "tech-support-db",
            ],
            vec!["tech-support-db"],
        ),
        (vec!["d1-sql", &dir("grove")], vec!["groveauth"]),
        (vec!["sqlite-snapshot", &dir("snap")], vec!["livestore"]),
    ] {
        let (code, report) = import(&api, &repo, &args).await;
        assert_eq!(code, Some(0), "{args:?}: {report}");
        let got: Vec<(String, String)> = outcomes(&report);
        let want: Vec<(String, String)> = want
            .iter()
            .map(|t| (t.to_string(), "imported".to_string()))
            .collect();
        assert_eq!(got, want, "{args:?}");
    }

    // The inventory: each at its original time, trigger imported, the source named.
    let list = backups(&api, &repo).await;
    let started = |target: &str| -> Vec<String> {
        list.iter()
            .filter(|b| b["target"] == target)
            .map(|b| b["started"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(list.len(), 6);
    assert!(list.iter().all(|b| b["trigger"] == "imported"), "{list:?}");
    let mut sessions = started("SESSIONS");
    sessions.sort();
    assert_eq!(sessions, ["2025-11-28T10:30:00Z", "2025-12-05T10:30:00Z"]);
    assert_eq!(
        started("tech-support-db"),
        ["2024-01-15T02:00:05Z"],
        "the metadata's time"
    );
    assert_eq!(
        started("groveauth"),
        ["2024-12-08T00:00:00Z"],
        "the folder's date"
    );
    assert_eq!(started("livestore"), ["2025-12-05T10:30:00Z"]);
    let d1 = list
        .iter()
        .find(|b| b["target"] == "tech-support-db")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let show = output(cfdr(&api, &repo, &["backups", "show", &d1, "--json"])).await;
    let m = serde_json::from_slice::<Value>(&show.stdout).unwrap()["manifest"].clone();
    assert_eq!(
        m["consistency_point"]["imported_from"],
        "r2://team-backups/backups/database-2024-01-15-02-00-00.sql"
    );
    assert_eq!(m["consistency_point"]["sha256"].as_str().unwrap().len(), 64);

    // Every one verifies in full.
    let verify = output(cfdr(&api, &repo, &["backups", "verify", "--all", "--full"])).await;
    assert!(verify.status.success(), "{}", stderr(&verify));

    // Importing again adds nothing, however the same files are named.
    let same_kv = format!("{}/./../kv", dir("grove"));
    for args in [
        vec!["kv-json", &dir("kv")],
        vec!["kv-json", &same_kv],
        vec!["d1-sql", &dir("grove")],
        vec!["sqlite-snapshot", &dir("snap")],
    ] {
        let (code, again) = import(&api, &repo, &args).await;
        assert_eq!(code, Some(0));
        assert!(
            outcomes(&again).iter().all(|(_, o)| o == "already"),
            "{again}"
        );
    }
    assert_eq!(backups(&api, &repo).await.len(), 6);

    // The imported D1 dump restored into a new database is what the file held: the doubles its
    // text denotes (D1 itself would read `-1.5e-300` one bit off; the import wrote it exactly).
    let db_id = restore_into(&api, &repo, &d1, "tech-support-restored").await;
    let want = picture(&as_written(&dump));
    assert_eq!(
        picture(&live(&api, &db_id).await).1,
        want.1,
        "every table's rows and hash"
    );

    // The imported KV namespace restored into a new one holds exactly the file's entries.
    let kv = list
        .iter()
        .filter(|b| b["target"] == "SESSIONS")
        .max_by_key(|b| b["started"].as_str().unwrap().to_string())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ns = restore_into(&api, &repo, &kv, "SESSIONS-restored").await;
    let dumped = api.kv_dump(&ns).await;
    let entries = kv_new["namespaces"][0]["entries"].as_array().unwrap();
    assert_eq!(dumped.len(), entries.len());
    for e in entries {
        let got = &dumped[e["key"].as_str().unwrap()];
        assert_eq!(got.value, e["value"].as_str().unwrap().as_bytes());
        assert_eq!(got.metadata.clone().unwrap_or(Value::Null), e["metadata"]);
    }

    // Refused, each with its reason, nothing of them stored: a truncated dump, a keyCount
    // that disagrees, a corrupt SQLite file.
    let bad = tmp.path().join("bad");
    write(
        &bad.join("sql/2024-12-09/groveauth.sql"),
        &dump[..dump.len() / 2],
    );
    let mut wrong = kv_file("2025-12-12T10:30:00.000Z", &[("SESSIONS", 10)]);
    wrong["namespaces"][0]["keyCount"] = json!(11);
    write(&bad.join("kv/kv-backup-2025-12-12.json"), wrong.to_string());
    let corrupt = bad.join("snap/backups/full/2025-12-12T10:30:00.000Z");
    let mut bytes = std::fs::read(snap.join("livestore.db")).unwrap();
    for b in &mut bytes[4096..8192] {
        *b = 0xA5;
    }
    write(&corrupt.join("livestore.db"), &bytes);
    write(
        &corrupt.join("metadata.json"),
        json!({ "timestamp": "2025-12-12T10:30:00.000Z" }).to_string(),
    );
    for (format, sub, why) in [
        ("d1-sql", "sql", "truncated"),
        ("kv-json", "kv", "keyCount says 11 keys, the file holds 10"),
        ("sqlite-snapshot", "snap", "fails SQLite's integrity check"),
    ] {
        let (code, report) = import(&api, &repo, &[format, bad.join(sub).to_str().unwrap()]).await;
        assert_eq!(code, Some(1), "{format}: {report}");
        let item = &report["items"][0];
        assert_eq!(item["outcome"], "refused", "{report}");
        assert!(
            item["reason"].as_str().unwrap().contains(why),
            "{format}: {report}"
        );
    }
    assert_eq!(
        backups(&api, &repo).await.len(),
        6,
        "nothing of them stored"
    );

    // The console's inventory (as the table it prints when not on a terminal) lists them, and
    // a drill restores the imported D1 and KV backups into scratch targets and verifies them.
    let inventory = output(cfdr(&api, &repo, &[])).await;
    let table = String::from_utf8_lossy(&inventory.stdout);
    for t in [
        "tech-support-db",
        "groveauth",
        "SESSIONS",
        "CACHE",
        "livestore",
    ] {
        assert!(table.contains(t), "{t} in the inventory: {table}");
    }
    let drill = output(cfdr(
        &api,
        &repo,
        &["drill", "--components", "d1,kv", "--yes"],
    ))
    .await;
    assert!(drill.status.success(), "{}", stderr(&drill));
    let list = output(cfdr(&api, &repo, &["drills", "list", "--json"])).await;
    let drills: Value = serde_json::from_slice(&list.stdout).unwrap();
    let passed: Vec<&str> = drills["drills"][0]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["result"] == "passed")
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        passed.len(),
        4,
        "tech-support-db, groveauth, CACHE, SESSIONS: {passed:?}"
    );
}
