//! `cfdr restore` and `cfdr diff` of D1 backups through the binary against the emulator: a
//! damaged database (every awkward value and object) comes back equal to the backup through
//! D1's import; the plan writes nothing; `--tables` touches no other table; overwrite keeps a
//! table the backup lacks and clear drops it; undo puts the pre-recovery state back; `--to`
//! creates a new database; a virtual table comes back from a paged backup; and restores killed
//! with SIGKILL at random points and resumed end equal to the backup.

mod common;

use std::process::Command;

use common::d1::{VIRTUAL, live, picture, plain_fixed, truth};
use common::{Api, output, route_requests, stderr};
use rand::{Rng, SeedableRng};
use serde_json::Value;

const KEY: &str = "3d5f7a9c1e2b4d6f8a0c2e4b6d8f0a1c3e5b7d9f1a3c5e7b9d2f4a6c8e0b1d3f";

fn cfdr(api: &Api, repo: &str, args: &[&str]) -> Command {
    common::restore_cmd(api, repo, KEY, args)
}

async fn ok_json(api: &Api, repo: &str, args: &[&str]) -> Value {
    common::restore_json(api, repo, KEY, args).await
}

/// One table's rows and SHA-256 in a picture.
fn table(p: &common::d1::Picture, name: &str) -> Option<(u64, String)> {
    p.1.get(name).cloned()
}

/// An emulator without a rate limit and a fresh repository (removed with the directory).
async fn start() -> (Api, tempfile::TempDir, String) {
    let api = common::start().await;
    api.unlimited().await;
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo").to_str().unwrap().to_string();
    let out = output(cfdr(&api, &repo, &["repo", "init"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    (api, tmp, repo)
}

/// A database `name` built from `sql`, backed up: its id and the backup's manifest.
async fn backed_up(api: &Api, repo: &str, name: &str, sql: &str) -> (String, Value) {
    let db = api.d1_create(name).await;
    api.d1_import(&db, sql).await;
    let m = ok_json(api, repo, &["backup", "d1", name, "--json"]).await;
    (db, m)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_comes_back_exactly_and_only_where_asked() {
    let (api, _tmp, repo) = start().await;
    let fixed = plain_fixed();
    let want = picture(&truth(&fixed));
    let (db, m) = backed_up(&api, &repo, "app", &fixed).await;
    let b = m["id"].as_str().unwrap().to_string();
    assert_eq!(picture(&live(&api, &db).await), want);

    // The incident: rows deleted, a table dropped, a row changed, a table added.
    let damage = "DELETE FROM child; DROP TABLE kv; INSERT INTO big VALUES (-1); \
                  UPDATE parent SET name = 'zz' WHERE id = 1; \
                  CREATE TABLE extra(x INTEGER); INSERT INTO extra VALUES (1), (2);";
    assert!(api.d1_sql(&db, damage).await.json()["success"] == true);
    let damaged = picture(&live(&api, &db).await);

    // diff names what differs and exits 1.
    let diff = output(cfdr(&api, &repo, &["diff", &b, "--json"])).await;
    assert_eq!(diff.status.code(), Some(1), "{}", stderr(&diff));
    let d: Value = serde_json::from_slice(&diff.stdout).unwrap();
    let named = common::diff_keys(&d);
    for t in ["child", "kv", "big", "parent"] {
        assert!(named.contains(&t), "{t} not named: {d}");
    }
    assert!(!named.contains(&"vals"), "{d}");

    // The plan: per table, and nothing written.
    let before = api.writes().await;
    let plan = ok_json(&api, &repo, &["restore", &b, "--dry-run", "--json"]).await;
    assert_eq!(api.writes().await, before, "a dry run writes nothing");
    let action = |plan: &Value, name: &str| {
        plan["d1"]["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .map(|t| t["action"].as_str().unwrap().to_string())
    };
    assert_eq!(action(&plan, "kv").as_deref(), Some("create"), "{plan}");
    assert_eq!(action(&plan, "child").as_deref(), Some("replace"), "{plan}");
    assert_eq!(action(&plan, "extra"), None, "overwrite keeps it: {plan}");
    assert_eq!(plan["snapshot"], "required");
    let text = output(cfdr(&api, &repo, &["restore", &b, "--dry-run"])).await;
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(
        text.contains("tables: 1 to create") && text.contains("create   kv  rows - -> 3"),
        "{text}"
    );
    let headless = output(cfdr(&api, &repo, &["restore", &b])).await;
    assert_eq!(headless.status.code(), Some(2), "{}", stderr(&headless));
    let bad = output(cfdr(&api, &repo, &["restore", &b, "--tables", "nope"])).await;
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("`nope`"), "{}", stderr(&bad));
    assert_eq!(api.writes().await, before, "refusals write nothing");

    // --tables child: child comes back, no other table changes.
    let r = ok_json(
        &api,
        &repo,
        &["restore", &b, "--tables", "child", "--yes", "--json"],
    )
    .await;
    assert_eq!(r["report"]["outcome"], "success", "{r}");
    let now = picture(&live(&api, &db).await);
    assert_eq!(table(&now, "child"), table(&want, "child"));
    for (name, t) in &damaged.1 {
        if name != "child" {
            assert_eq!(now.1.get(name), Some(t), "{name} was touched");
        }
    }
    let first = r["report"]["run"].as_str().unwrap().to_string();
    assert!(r["report"]["snapshot"].is_string(), "{r}");

    // overwrite: every backup table as it was, the extra table kept.
    let r = ok_json(&api, &repo, &["restore", &b, "--yes", "--json"]).await;
    assert_eq!(r["report"]["outcome"], "success", "{r}");
    // As planned, but for the polls while D1 exports (the snapshot) and imports, which take
    // as long as they take.
    let (sent, planned) = (
        r["report"]["requests_sent"].as_u64().unwrap(),
        r["report"]["requests_planned"].as_u64().unwrap(),
    );
    assert!((planned..=planned + 6).contains(&sent), "{r}");
    let overwritten = picture(&live(&api, &db).await);
    assert_eq!(overwritten.0.len(), want.0.len() + 1);
    assert_eq!(table(&overwritten, "extra"), table(&damaged, "extra"));
    let mut without_extra = overwritten.clone();
    without_extra.0.retain(|(_, n, _)| n != "extra");
    without_extra.1.remove("extra");
    assert_eq!(without_extra, want);

    // clear: equal to the backup, extra dropped; its undo brings extra back.
    let r = ok_json(
        &api,
        &repo,
        &["restore", &b, "--mode", "clear", "--yes", "--json"],
    )
    .await;
    assert_eq!(r["report"]["outcome"], "success", "{r}");
    assert_eq!(action(&r["plan"], "extra").as_deref(), Some("drop"), "{r}");
    assert_eq!(picture(&live(&api, &db).await), want);
    let clear = r["report"]["run"].as_str().unwrap().to_string();
    let u = ok_json(
        &api,
        &repo,
        &["restore", "--undo", &clear, "--yes", "--json"],
    )
    .await;
    assert_eq!(u["report"]["outcome"], "success", "{u}");
    assert_eq!(picture(&live(&api, &db).await), overwritten);
    // The undo of the partial run puts back only child as it was damaged.
    let u = ok_json(
        &api,
        &repo,
        &["restore", "--undo", &first, "--yes", "--json"],
    )
    .await;
    assert_eq!(u["report"]["outcome"], "success", "{u}");
    let now = picture(&live(&api, &db).await);
    assert_eq!(table(&now, "child"), table(&damaged, "child"));
    assert_eq!(table(&now, "kv"), table(&want, "kv"));

    // D1 refuses an import that breaks a foreign key (a kept child row references a parent
    // row the backup lacks): rolled back, reported per table, exit 1, nothing lost.
    let sql = "INSERT INTO parent VALUES (3, 'p3'); INSERT INTO child VALUES (9, 3, 'orphan');";
    assert!(api.d1_sql(&db, sql).await.json()["success"] == true);
    let before = picture(&live(&api, &db).await);
    let out = output(cfdr(
        &api,
        &repo,
        &["restore", &b, "--tables", "parent", "--yes", "--json"],
    ))
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_ne!(r["report"]["outcome"], "success", "{r}");
    assert_eq!(r["report"]["failed"], serde_json::json!(["parent"]), "{r}");
    assert!(stderr(&out).contains("FOREIGN KEY"), "{}", stderr(&out));
    assert_eq!(picture(&live(&api, &db).await), before);

    // --to a new database: created, equal to the backup, no snapshot needed.
    let r = ok_json(
        &api,
        &repo,
        &["restore", &b, "--to", "app-copy", "--yes", "--json"],
    )
    .await;
    assert_eq!(r["report"]["outcome"], "success", "{r}");
    assert_eq!(r["plan"]["snapshot"], "not-needed");
    assert!(r["report"]["snapshot"].is_null());
    let copy = r["report"]["target"]["id"].as_str().unwrap().to_string();
    assert_ne!(copy, db);
    assert_eq!(picture(&live(&api, &copy).await), want);
    let diff = output(cfdr(&api, &repo, &["diff", &b, "--to", "app-copy"])).await;
    assert!(diff.status.success(), "{}", stderr(&diff));
    assert!(route_requests(&api.stats().await, "/import") > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_virtual_table_comes_back_from_a_paged_backup() {
    let (api, _tmp, repo) = start().await;
    let sql = format!(
        "CREATE TABLE notes(id INTEGER PRIMARY KEY, t TEXT); INSERT INTO notes VALUES (1, 'a'), (2, 'b');{VIRTUAL}"
    );
    let (db, m) = backed_up(&api, &repo, "search", &sql).await;
    assert_eq!(m["method"], "paged", "{m}");
    let b = m["id"].as_str().unwrap().to_string();
    let docs = "SELECT rowid, title, body FROM docs ORDER BY rowid";
    let rows = |r: Value| r[0]["results"].clone();
    let want = rows(api.d1_sql(&db, docs).await.result());
    assert!(
        api.d1_sql(&db, "DELETE FROM docs; DELETE FROM notes WHERE id = 1")
            .await
            .json()["success"]
            == true
    );
    let r = ok_json(&api, &repo, &["restore", &b, "--yes", "--json"]).await;
    assert_eq!(r["report"]["outcome"], "success", "{r}");
    assert_eq!(rows(api.d1_sql(&db, docs).await.result()), want);
    let found = api
        .d1_sql(&db, "SELECT rowid FROM docs WHERE docs MATCH 'quarter'")
        .await
        .result();
    assert_eq!(found[0]["results"][0]["rowid"], 10, "{found}");
    let diff = output(cfdr(&api, &repo, &["diff", &b])).await;
    assert!(diff.status.success(), "{}", stderr(&diff));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_d1_restore_resumes_to_the_backup() {
    let (api, _tmp, repo) = start().await;
    let fixed = plain_fixed();
    let want = picture(&truth(&fixed));
    let (db, m) = backed_up(&api, &repo, "orders", &fixed).await;
    let b = m["id"].as_str().unwrap().to_string();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xd1);
    let mut resumed = 0;
    for round in 0..20 {
        // Every request takes a while, so the kills land in the snapshot, the import or the
        // check; every other round only the import's requests are slow, so the kills land
        // between its init, its ingest (D1 may apply it after the kill) and its answer.
        let faults = if round % 2 == 0 {
            serde_json::json!({ "latency_ms": 40 })
        } else {
            serde_json::json!({ "latency_ms": 600, "path_contains": "/import" })
        };
        api.control("POST", "/__emulator/faults", Some(faults))
            .await;
        let damage = format!(
            "DELETE FROM big WHERE x % {} = 0; INSERT INTO big VALUES ({round}); DROP TABLE IF EXISTS kv;",
            round + 2
        );
        assert!(api.d1_sql(&db, &damage).await.json()["success"] == true);
        let range = if round % 2 == 0 { 100..2_200 } else { 50..650 };
        let after = std::time::Duration::from_millis(rng.random_range(range));
        resumed += u32::from(
            common::kill_and_resume(&api, &repo, KEY, &["restore", &b, "--yes"], after, round)
                .await,
        );
        assert_eq!(
            picture(&live(&api, &db).await),
            want,
            "round {round}: killed after {after:?}"
        );
    }
    assert!(resumed >= 6, "kills land mid-run ({resumed} of 20 resumed)");
}

/// A kill between sending a part of the import and hearing back, with D1 applying it all the
/// same: the resume's copy of that part is refused (a table it creates exists now), and the
/// part's tables already as the backup has them, it counts as landed. Here the test plays D1
/// applying the lost part: the run killed while its init waits, the database put back to the
/// backup's bookmark by Time Travel before the resume.
#[tokio::test(flavor = "multi_thread")]
async fn an_import_applied_after_its_sender_was_killed_counts_as_landed() {
    let (api, _tmp, repo) = start().await;
    let fixed = plain_fixed();
    let want = picture(&truth(&fixed));
    let (db, m) = backed_up(&api, &repo, "orders", &fixed).await;
    let b = m["id"].as_str().unwrap().to_string();
    // `kv` gone: the import creates it, so a second copy of the import cannot.
    let damage = "DELETE FROM big WHERE x % 3 = 0; DROP TABLE kv;";
    assert!(api.d1_sql(&db, damage).await.json()["success"] == true);
    // Import requests wait 4 s: the kill at 2 s lands after the snapshot, while the init waits.
    let slow = serde_json::json!({ "latency_ms": 4_000, "path_contains": "/import" });
    api.control("POST", "/__emulator/faults", Some(slow)).await;
    let c = cfdr(&api, &repo, &["restore", &b, "--yes"]);
    let (run, printed) = tokio::task::spawn_blocking(move || {
        common::start_and_kill(c, std::time::Duration::from_secs(2))
    })
    .await
    .unwrap();
    let run = run.unwrap_or_else(|| panic!("the plan names its run: {printed}"));
    api.control("POST", "/__emulator/faults", Some(serde_json::json!({})))
        .await;
    let bookmark = m["consistency_point"]["bookmark"].as_str().unwrap();
    let back = api
        .send(
            "POST",
            &format!("/d1/database/{db}/time_travel/restore?bookmark={bookmark}"),
            None,
        )
        .await;
    assert!(back.json()["success"] == true, "{}", back.json());
    assert_eq!(picture(&live(&api, &db).await), want);

    let out = output(cfdr(&api, &repo, &["restore", "--resume", &run, "--json"])).await;
    assert!(
        out.status.success(),
        "{}\nthe killed run printed:\n{printed}",
        stderr(&out)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["report"]["outcome"], "success", "{r}");
    assert_eq!(r["report"]["resumed"], true, "{r}");
    assert!(
        stderr(&out).contains("an earlier attempt landed it"),
        "the resume's copy is refused and the part found in place: {}\nthe killed run printed:\n{printed}",
        stderr(&out)
    );
    assert_eq!(picture(&live(&api, &db).await), want);
}

#[tokio::test(flavor = "multi_thread")]
async fn time_travel_finds_restores_and_undoes_in_place() {
    let (api, _tmp, repo) = start().await;
    let fixed = plain_fixed();
    let want = picture(&truth(&fixed));
    let (db, m) = backed_up(&api, &repo, "ledger", &fixed).await;
    let b = m["id"].as_str().unwrap().to_string();
    assert!(m["consistency_point"]["bookmark"].is_string(), "{m}");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let good_time = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let damage =
        "DELETE FROM child; DROP TABLE kv; CREATE TABLE extra(x); INSERT INTO extra VALUES (1);";
    assert!(api.d1_sql(&db, damage).await.json()["success"] == true);
    let damaged = picture(&live(&api, &db).await);

    // The lookup: the bookmark for the time, the backup before it, nothing written.
    let before = api.writes().await;
    let p = ok_json(
        &api,
        &repo,
        &["d1", "time-travel", "ledger", "--at", &good_time, "--json"],
    )
    .await;
    assert_eq!(p["before"]["id"], b.as_str(), "{p}");
    assert!(p["after"].is_null(), "{p}");
    assert!(
        p["bookmark"].as_str().unwrap() >= m["consistency_point"]["bookmark"].as_str().unwrap()
    );
    // Refused before any request: a time in the future, past the window, a bad bookmark.
    let requests = api.stats().await["requests"].clone();
    for (flag, value, says) in [
        ("--at", "2099-01-01T00:00:00Z", "in the future"),
        ("--at", "40d", "30 days"),
        ("--bookmark", "0000-nope", "`0000-nope`"),
    ] {
        let out = output(cfdr(
            &api,
            &repo,
            &["d1", "time-travel", "ledger", flag, value, "--restore"],
        ))
        .await;
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
    }
    assert_eq!(
        api.stats().await["requests"],
        requests,
        "refusals send nothing"
    );
    let plan = ok_json(
        &api,
        &repo,
        &[
            "d1",
            "time-travel",
            "ledger",
            "--backup",
            &b,
            "--restore",
            "--dry-run",
            "--json",
        ],
    )
    .await;
    assert_eq!(
        plan["time_travel"]["bookmark"], m["consistency_point"]["bookmark"],
        "{plan}"
    );
    assert_eq!(plan["backup"], b.as_str());
    let headless = output(cfdr(
        &api,
        &repo,
        &["d1", "time-travel", "ledger", "--backup", &b, "--restore"],
    ))
    .await;
    assert_eq!(headless.status.code(), Some(2), "{}", stderr(&headless));
    assert_eq!(
        api.writes().await,
        before,
        "lookups, dry runs and refusals write nothing"
    );

    // Back to the backup's bookmark, in place: compared with the backup, snapshot first.
    let imports = route_requests(&api.stats().await, "/import");
    let r = ok_json(
        &api,
        &repo,
        &[
            "d1",
            "time-travel",
            "ledger",
            "--backup",
            &b,
            "--restore",
            "--yes",
            "--json",
        ],
    )
    .await;
    assert_eq!(r["report"]["outcome"], "success", "{r}");
    assert!(
        r["report"]["verification"]["checked"].as_u64().unwrap() >= 6,
        "{r}"
    );
    assert!(r["report"]["snapshot"].is_string(), "{r}");
    assert_eq!(
        route_requests(&api.stats().await, "/import"),
        imports,
        "nothing imported"
    );
    assert_eq!(picture(&live(&api, &db).await), want);
    let tt = r["report"]["run"].as_str().unwrap().to_string();

    // Its undo goes back by Time Travel too, to the snapshot's bookmark.
    let u = ok_json(&api, &repo, &["restore", "--undo", &tt, "--yes", "--json"]).await;
    assert_eq!(u["report"]["outcome"], "success", "{u}");
    assert!(u["plan"]["time_travel"]["bookmark"].is_string(), "{u}");
    assert_eq!(picture(&live(&api, &db).await), damaged);

    // By time: nothing was written between the backup and then, so the bookmark is the
    // backup's and the result is compared with it.
    let r = ok_json(
        &api,
        &repo,
        &[
            "d1",
            "time-travel",
            "ledger",
            "--at",
            &good_time,
            "--restore",
            "--yes",
            "--json",
        ],
    )
    .await;
    assert_eq!(r["report"]["outcome"], "success", "{r}");
    assert_eq!(r["plan"]["backup"], b.as_str(), "{r}");
    assert_eq!(picture(&live(&api, &db).await), want);

    // A database with no backup at the bookmark: restored, and the report says what it could
    // not compare.
    let scratch = api.d1_create("scratch").await;
    api.d1_sql(&scratch, "CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .await
        .result();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let then = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    api.d1_sql(&scratch, "DELETE FROM t;").await.result();
    let r = ok_json(
        &api,
        &repo,
        &[
            "d1",
            "time-travel",
            "scratch",
            "--at",
            &then,
            "--restore",
            "--yes",
            "--json",
        ],
    )
    .await;
    assert_eq!(r["report"]["outcome"], "success", "{r}");
    let note = r["report"]["verification"]["note"]
        .as_str()
        .unwrap_or_default();
    assert!(note.contains("content not compared"), "{r}");
    let n = api
        .d1_sql(&scratch, "SELECT count(*) AS n FROM t")
        .await
        .result();
    assert_eq!(n[0]["results"][0]["n"], 1);

    // A whole restore through the import is undone by Time Travel as well.
    assert!(api.d1_sql(&db, damage).await.json()["success"] == true);
    let r = ok_json(
        &api,
        &repo,
        &["restore", &b, "--mode", "clear", "--yes", "--json"],
    )
    .await;
    assert_eq!(picture(&live(&api, &db).await), want);
    let run = r["report"]["run"].as_str().unwrap().to_string();
    let u = ok_json(&api, &repo, &["restore", "--undo", &run, "--yes", "--json"]).await;
    assert_eq!(u["report"]["outcome"], "success", "{u}");
    assert!(u["plan"]["time_travel"].is_object(), "{u}");
    assert_eq!(picture(&live(&api, &db).await), damaged);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batched_restore_lands_every_request_once() {
    let (api, _tmp, repo) = start().await;
    // The awkward values and objects, and a table of 0.5 MB of rows: several requests of 64 KiB.
    let sql = format!(
        "{}\nCREATE TABLE wide(id INTEGER PRIMARY KEY, pad TEXT);\nWITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4000) INSERT INTO wide SELECT i, printf('%0120d', i) FROM n;",
        plain_fixed()
    );
    let (db, m) = backed_up(&api, &repo, "batched", &sql).await;
    let b = m["id"].as_str().unwrap().to_string();
    let want = picture(&live(&api, &db).await);
    let damage = "DELETE FROM wide WHERE id % 3 = 0; DROP TABLE kv; UPDATE parent SET name = 'zz' WHERE id = 1;";
    assert!(api.d1_sql(&db, damage).await.json()["success"] == true);

    let plan = ok_json(
        &api,
        &repo,
        &[
            "restore",
            &b,
            "--method",
            "batched",
            "--batch-kib",
            "64",
            "--dry-run",
            "--json",
        ],
    )
    .await;
    assert_eq!(plan["batch_bytes"], 64 * 1024, "{plan}");
    let batches = plan["requests"]["by_step"]["query"].as_u64().unwrap();
    assert!(batches >= 8, "{plan}");
    let imports = route_requests(&api.stats().await, "/import");
    let exports = route_requests(&api.stats().await, "/export");
    let r = ok_json(
        &api,
        &repo,
        &[
            "restore",
            &b,
            "--method",
            "batched",
            "--batch-kib",
            "64",
            "--yes",
            "--json",
        ],
    )
    .await;
    assert_eq!(r["report"]["outcome"], "success", "{r}");
    // As planned, but for the polls while D1 exports the snapshot (the plan counts a start and
    // one poll; wrangler, too, polls as soon as each answer arrives) and a page or two of the
    // verification (estimated from the backup's bytes a row).
    let polls = route_requests(&api.stats().await, "/export") - exports - 2;
    assert_eq!(picture(&live(&api, &db).await), want);
    let planned = r["report"]["requests_planned"].as_u64().unwrap() + polls;
    let sent = r["report"]["requests_sent"].as_u64().unwrap();
    assert!(
        (planned..=planned + 2).contains(&sent),
        "{polls} polls: {r}"
    );
    let r = ok_json(
        &api,
        &repo,
        &[
            "restore",
            &b,
            "--method",
            "batched",
            "--to",
            "batched-copy",
            "--yes",
            "--json",
        ],
    )
    .await;
    assert_eq!(r["report"]["outcome"], "success", "{r}");
    let copy = r["report"]["target"]["id"].as_str().unwrap().to_string();
    assert_eq!(picture(&live(&api, &copy).await), want);
    assert_eq!(
        route_requests(&api.stats().await, "/import"),
        imports,
        "nothing went through the import API"
    );
    let bad = output(cfdr(&api, &repo, &["restore", &b, "--method", "sideways"])).await;
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));

    // Killed at 20 random points (the batches' requests slowed, so kills land in the snapshot,
    // between batches and inside one, which D1 may apply after the kill) and resumed: no row
    // lost or written twice.
    api.control(
        "POST",
        "/__emulator/faults",
        Some(serde_json::json!({ "latency_ms": 150, "path_contains": "/query" })),
    )
    .await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xba7c);
    let mut resumed = 0;
    for round in 0..20 {
        let damage = format!(
            "DELETE FROM wide WHERE id % {} = 0; INSERT INTO wide VALUES (-{round}, 'x');",
            round + 2
        );
        assert!(api.d1_sql(&db, &damage).await.json()["success"] == true);
        let after = std::time::Duration::from_millis(rng.random_range(200..2_200));
        resumed += u32::from(
            common::kill_and_resume(
                &api,
                &repo,
                KEY,
                &[
                    "restore",
                    &b,
                    "--method",
                    "batched",
                    "--batch-kib",
                    "64",
                    "--mode",
                    "clear",
                    "--yes",
                ],
                after,
                round,
            )
            .await,
        );
        assert_eq!(picture(&live(&api, &db).await), want, "round {round}");
    }
    assert!(resumed >= 6, "kills land mid-run ({resumed} of 20 resumed)");
}
