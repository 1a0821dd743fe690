//! The repository commands end to end through the binary: init, backup sqlite, list, show,
//! verify, cat, prune; exit codes 1 (damage), 2 (wrong key), 4 (locked); stale leases; and the
//! same on an S3 repository served by the emulator's R2 endpoint.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const KEY: &str = "3b1f0c5e9a7d2b4f6e8c0a1d3f5b7e9c2a4d6f8b0e1c3a5d7f9b2e4c6a8d0f1b";
const OTHER_KEY: &str = "0000000000000000000000000000000000000000000000000000000000000001";

fn cfdr(repo: &str, key: &str, args: &[&str], extra_env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cfdr"));
    c.args(args)
        .env("CFDR_REPO", repo)
        .env("CFDR_KEY", key)
        .env("CFDR_CONFIG", "/nonexistent/cfdr.toml")
        .env_remove("CFDR_KEY_FILE");
    for (k, v) in extra_env {
        c.env(k, v);
    }
    c.output().expect("cfdr runs")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn sample_db(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("app.db");
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch(
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT, avatar BLOB);
         INSERT INTO users(name, avatar) VALUES ('ada', X'0001'), ('grace', NULL);
         CREATE TABLE big(x); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 50000) INSERT INTO big SELECT hex(randomblob(20)) FROM n;",
    )
    .unwrap();
    path
}

fn ids(repo: &str, env: &[(&str, &str)]) -> Vec<String> {
    let v: Value =
        serde_json::from_str(&ok(&cfdr(repo, KEY, &["backups", "list", "--json"], env))).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

fn lifecycle(repo: &str, env: &[(&str, &str)], work: &Path) {
    let db = sample_db(work);
    let db = db.to_str().unwrap();
    ok(&cfdr(repo, KEY, &["repo", "init"], env));
    let again = cfdr(repo, KEY, &["repo", "init"], env);
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(stderr(&again).contains("already a cfdr repository"));

    let first: Value = serde_json::from_str(&ok(&cfdr(
        repo,
        KEY,
        &["backup", "sqlite", db, "--json"],
        env,
    )))
    .unwrap();
    assert_eq!(
        first["stats"]["tables"][0],
        serde_json::json!({ "name": "big", "rows": 50000 })
    );
    assert!(
        first["artifacts"][0]["chunks"].as_u64().unwrap() >= 2,
        "the sample spans several chunks"
    );
    ok(&cfdr(
        repo,
        KEY,
        &["backup", "sqlite", db, "--trigger", "scheduled"],
        env,
    ));
    let list = ok(&cfdr(
        repo,
        KEY,
        &["backups", "list", "--kind", "sqlite", "--target", "app"],
        env,
    ));
    assert!(
        list.contains("2 backups") && list.contains("scheduled"),
        "{list}"
    );
    let id = first["id"].as_str().unwrap();

    let show = ok(&cfdr(repo, KEY, &["backups", "show", id], env));
    assert!(
        show.contains(first["artifacts"][0]["plaintext_sha256"].as_str().unwrap())
            && show.contains("verified    never"),
        "{show}"
    );
    let verify = ok(&cfdr(
        repo,
        KEY,
        &["backups", "verify", "--all", "--full"],
        env,
    ));
    assert_eq!(verify.matches("ok  ").count(), 2, "{verify}");
    let show = ok(&cfdr(repo, KEY, &["backups", "show", id, "--json"], env));
    assert_eq!(
        serde_json::from_str::<Value>(&show).unwrap()["last_verification"]["ok"],
        true
    );

    // `cat` gives the database back, usable by SQLite.
    let cat = cfdr(repo, KEY, &["backups", "cat", id], env);
    let restored = work.join("restored.db");
    std::fs::write(&restored, &cat.stdout).unwrap();
    let c = rusqlite::Connection::open(&restored).unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM big", [], |r| r.get(0))
        .unwrap();
    let avatar: Vec<u8> = c
        .query_row("SELECT avatar FROM users WHERE name='ada'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!((n, avatar), (50000, vec![0, 1]));

    // A wrong key: exit 2, both key ids named, the key itself never.
    let wrong = cfdr(repo, OTHER_KEY, &["backups", "list"], env);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(
        stderr(&wrong).contains("initialised with key `")
            && !stderr(&wrong).contains(OTHER_KEY)
            && !stderr(&wrong).contains(KEY)
    );

    // Retention: a dry run changes nothing and says why; the real run forgets.
    let dry = ok(&cfdr(
        repo,
        KEY,
        &["backups", "prune", "--keep-last", "1", "--dry-run"],
        env,
    ));
    assert!(
        dry.contains("(last)") && dry.contains("would forget 1 of 2"),
        "{dry}"
    );
    assert_eq!(ids(repo, env).len(), 2);
    let none = cfdr(repo, KEY, &["backups", "prune"], env);
    assert_eq!(none.status.code(), Some(2), "prune without rules refuses");
    let pruned = ok(&cfdr(
        repo,
        KEY,
        &["backups", "prune", "--keep-last", "1"],
        env,
    ));
    assert!(pruned.contains("forgot 1 of 2 backups"), "{pruned}");
    assert_eq!(ids(repo, env).len(), 1);
}

#[test]
fn a_local_repository_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let repo = repo.to_str().unwrap();
    // A blob no manifest refers to (left by an interrupted R2 backup) goes at the next prune.
    let orphan = Path::new(repo)
        .join("blobs/ab/ab00000000000000000000000000000000000000000000000000000000000000ff");
    std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    std::fs::write(&orphan, b"sealed body").unwrap();
    // So does a partial blob a crash left before its batch was committed.
    let partial = Path::new(repo).join("blobs/partial/blob-x1y2z3.partial");
    std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
    std::fs::write(&partial, b"half a sealed body").unwrap();
    lifecycle(repo, &[], tmp.path());
    assert!(
        !orphan.exists(),
        "unreferenced blobs are collected by prune"
    );
    assert!(!partial.exists(), "partial blobs are collected by prune");

    // Damage: exit 1, artifact and chunk named, nothing on stdout from cat.
    let id = ids(repo, &[]).remove(0);
    let dir = common::files_under(Path::new(repo))
        .into_iter()
        .find(|p| p.ends_with("database.sqlite"))
        .unwrap();
    let mut bytes = std::fs::read(&dir).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x40;
    std::fs::write(&dir, &bytes).unwrap();
    let v = cfdr(repo, KEY, &["backups", "verify", &id, "--full"], &[]);
    assert_eq!(v.status.code(), Some(1), "{}", stderr(&v));
    assert!(
        stderr(&v).contains("artifact `database.sqlite`") && stderr(&v).contains("chunk "),
        "{}",
        stderr(&v)
    );
    let cat = cfdr(repo, KEY, &["backups", "cat", &id], &[]);
    assert_eq!(cat.status.code(), Some(1));
    assert!(
        cat.stdout.is_empty(),
        "cat wrote {} bytes of a damaged artifact",
        cat.stdout.len()
    );
    let quick = cfdr(repo, KEY, &["backups", "verify", &id], &[]);
    assert!(
        quick.status.success(),
        "a quick check sees sizes only: {}",
        stderr(&quick)
    );
}

#[test]
fn a_held_lease_locks_writers_out_and_a_stale_one_is_taken_over() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let repo = repo.to_str().unwrap();
    let db = sample_db(tmp.path());
    ok(&cfdr(repo, KEY, &["repo", "init"], &[]));
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let lease = |heartbeat: &str| {
        format!(
            r#"{{"owner":"oncall","host":"ops-box-7","pid":1,"purpose":"backup d1 auth","started":"{heartbeat}","heartbeat":"{heartbeat}","ttl_secs":120,"token":"x"}}"#
        )
    };
    std::fs::create_dir_all(Path::new(repo).join("locks")).unwrap();
    std::fs::write(Path::new(repo).join("locks/writer.json"), lease(&now)).unwrap();
    let locked = cfdr(repo, KEY, &["backup", "sqlite", db.to_str().unwrap()], &[]);
    assert_eq!(locked.status.code(), Some(4), "{}", stderr(&locked));
    assert!(
        stderr(&locked).contains(&format!("locked by oncall on ops-box-7 since {now}")),
        "{}",
        stderr(&locked)
    );
    assert!(
        ok(&cfdr(repo, KEY, &["backups", "list"], &[])).contains("0 backups"),
        "readers need no lease"
    );

    std::fs::write(
        Path::new(repo).join("locks/writer.json"),
        lease("2026-01-01T00:00:00Z"),
    )
    .unwrap();
    let took = cfdr(repo, KEY, &["backup", "sqlite", db.to_str().unwrap()], &[]);
    ok(&took);
    assert!(
        stderr(&took).contains("took over a stale writer lease of oncall on ops-box-7"),
        "{}",
        stderr(&took)
    );
    assert!(
        !Path::new(repo).join("locks/writer.json").exists(),
        "the lease is released after the backup"
    );
}

/// Bucket `name` created on the emulator's R2, and the environment that reaches it over S3.
async fn s3_bucket(api: &common::Api, name: &str) -> Vec<(&'static str, String)> {
    api.send(
        "POST",
        "/r2/buckets",
        Some(serde_json::json!({ "name": name })),
    )
    .await
    .result();
    vec![
        ("R2_ENDPOINT", api.emu.s3_url.clone()),
        (
            "R2_ACCESS_KEY_ID",
            cfdr::emulator::DEFAULT_R2_ACCESS_KEY_ID.to_string(),
        ),
        (
            "R2_SECRET_ACCESS_KEY",
            cfdr::emulator::DEFAULT_R2_SECRET_ACCESS_KEY.to_string(),
        ),
    ]
}

/// Runs cfdr on a blocking thread against `repo` on the emulator's S3 endpoint (`env` from
/// [`s3_bucket`]).
async fn cfdr_s3(repo: &str, env: &[(&'static str, String)], args: &[&str]) -> Output {
    let (repo, env) = (repo.to_string(), env.to_vec());
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cfdr(&repo, KEY, &args, &env)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_s3_repository_on_the_emulators_r2_endpoint() {
    let api = common::start().await;
    let owned = s3_bucket(&api, "cfdr-backups").await;
    let s3 = api.emu.s3_url.clone();
    let tmp = tempfile::tempdir().unwrap();
    let run = move |args: Vec<String>, work: Option<std::path::PathBuf>| {
        let owned = owned.clone();
        tokio::task::spawn_blocking(move || {
            let env: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
            match work {
                Some(w) => {
                    lifecycle(REPO, &env, &w);
                    None
                }
                None => Some(cfdr(
                    REPO,
                    KEY,
                    &args.iter().map(String::as_str).collect::<Vec<_>>(),
                    &env,
                )),
            }
        })
    };
    const REPO: &str = "s3://cfdr-backups/team/prod";
    run(vec![], Some(tmp.path().to_path_buf())).await.unwrap();

    // Two writers on S3: the lease is a conditional create there too.
    let settings = cfdr::repo::storage::S3Settings {
        endpoint: Some(s3.clone()),
        access_key_id: Some(cfdr::emulator::DEFAULT_R2_ACCESS_KEY_ID.into()),
        secret_access_key: Some(cfdr::config::Secret::new(
            cfdr::emulator::DEFAULT_R2_SECRET_ACCESS_KEY,
        )),
    };
    let storage = cfdr::repo::storage::Storage::open(REPO, &settings).unwrap();
    let held = cfdr::repo::Lease::acquire(&storage, "drill", std::time::Duration::from_secs(120))
        .await
        .unwrap();
    let db = tmp.path().join("app.db").to_str().unwrap().to_string();
    let second = run(vec!["backup".into(), "sqlite".into(), db.clone()], None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.status.code(), Some(4), "{}", stderr(&second));
    assert!(
        stderr(&second).contains(&format!(
            "locked by {} on {}",
            held.info().owner,
            held.info().host
        )),
        "{}",
        stderr(&second)
    );
    assert!(
        cfdr::repo::Lease::acquire(&storage, "again", std::time::Duration::from_secs(120))
            .await
            .is_err()
    );
    // The holder dies without releasing: its lease goes stale and the next writer takes over.
    let mut stale = held.info().clone();
    stale.heartbeat = "2026-01-01T00:00:00Z".into();
    drop(held);
    storage
        .put(
            &cfdr::repo::storage::Path::from(cfdr::repo::lease::LEASE_PATH),
            serde_json::to_vec(&stale).unwrap(),
        )
        .await
        .unwrap();
    let third = run(vec!["backup".into(), "sqlite".into(), db], None)
        .await
        .unwrap()
        .unwrap();
    ok(&third);
    assert!(
        stderr(&third).contains("took over a stale writer lease"),
        "{}",
        stderr(&third)
    );

    let stats = api.stats().await;
    let puts = stats["routes"]["PUT S3 /{bucket}/{key}"]["requests"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        puts > 0,
        "the repository went through the S3 endpoint: {stats}"
    );
}

/// The repository's own S3 traffic rides out dropped connections and bodies cut short, as the
/// engines' does: backups stored, listed and fully verified while 30 % of the requests to
/// the repository's bucket are dropped or cut (nothing else is faulted), counted by path so the
/// test cannot pass by missing them.
#[tokio::test(flavor = "multi_thread")]
async fn an_s3_repository_rides_out_drops_and_cut_bodies() {
    let api = common::start().await;
    let owned = s3_bucket(&api, "cfdr-faulty").await;
    let tmp = tempfile::tempdir().unwrap();
    let db = sample_db(tmp.path()).to_str().unwrap().to_string();
    let repo = "s3://cfdr-faulty/repo";
    ok(&cfdr_s3(repo, &owned, &["repo", "init"]).await);
    ok(&cfdr_s3(repo, &owned, &["backup", "sqlite", &db]).await);
    for seed in [1, 2, 3] {
        api.control(
            "POST",
            "/__emulator/faults",
            Some(serde_json::json!({ "drop_rate": 0.15, "truncate_rate": 0.15, "path_contains": "/cfdr-faulty", "seed": seed })),
        )
        .await;
        ok(&cfdr_s3(repo, &owned, &["backup", "sqlite", &db]).await);
        ok(&cfdr_s3(repo, &owned, &["backups", "list"]).await);
        ok(&cfdr_s3(repo, &owned, &["backups", "verify", "--all", "--full"]).await);
    }
    let stats = api.stats().await;
    api.control("POST", "/__emulator/faults", Some(serde_json::json!({})))
        .await;
    let listed = ok(&cfdr_s3(repo, &owned, &["backups", "list", "--json"]).await);
    assert_eq!(listed.matches("\"id\"").count(), 4, "{listed}");
    ok(&cfdr_s3(repo, &owned, &["backups", "verify", "--all", "--full"]).await);
    let hit = &stats["faults_by_path"];
    let n = |path: &str, kind: &str| hit[path][kind].as_u64().unwrap_or(0);
    assert!(
        n("S3 GET", "dropped") > 0 && n("S3 GET", "truncated") > 0,
        "drops and cuts hit the repository's reads: {hit}"
    );
    assert!(
        n("S3 PUT", "dropped") + n("S3 PUT", "truncated") > 0,
        "and its writes: {hit}"
    );
}

/// An artifact larger than a part goes to an S3 repository as a multipart upload (8 MiB parts,
/// the last one short) while a tenth of the parts' requests are dropped or cut, and comes
/// back whole: `verify --full` opens every chunk and checks both SHA-256.
#[tokio::test(flavor = "multi_thread")]
async fn an_s3_repository_takes_a_large_artifact_in_parts() {
    let api = common::start().await;
    let owned = s3_bucket(&api, "cfdr-large").await;
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("big.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TABLE b(x BLOB); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 20) INSERT INTO b SELECT randomblob(1048576) FROM n;",
        )
        .unwrap();
    let db = db.to_str().unwrap().to_string();
    let repo = "s3://cfdr-large/repo";
    ok(&cfdr_s3(repo, &owned, &["repo", "init"]).await);
    api.control(
        "POST",
        "/__emulator/faults",
        Some(serde_json::json!({ "drop_rate": 0.05, "truncate_rate": 0.05, "path_contains": "/cfdr-large", "seed": 7 })),
    )
    .await;
    ok(&cfdr_s3(repo, &owned, &["backup", "sqlite", &db]).await);
    ok(&cfdr_s3(repo, &owned, &["backups", "verify", "--all", "--full"]).await);
    let stats = api.stats().await;
    api.control("POST", "/__emulator/faults", Some(serde_json::json!({})))
        .await;
    let n = |route: &str| stats["routes"][route]["requests"].as_u64().unwrap_or(0);
    assert!(n("POST S3 /{bucket}/{key}?uploads") >= 1, "{stats}");
    assert!(
        n("PUT S3 /{bucket}/{key}?partNumber&uploadId") >= 3,
        "21 MiB sealed goes in three parts or more: {stats}"
    );
    assert!(
        n("POST S3 /{bucket}/{key}?uploadId") >= 1,
        "completed: {stats}"
    );
}
