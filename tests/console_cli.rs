//! The console's headless side and its jobs' cancellation: `cfdr` with stdout not a terminal
//! prints the inventory; a cancelled verify records nothing; a cancelled backup leaves no
//! backup and no lease behind, so the next one runs.

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use cfdr::ops::backup::{self as step, Env, Options, What};
use cfdr::progress::Progress;
use cfdr::repo::storage::{S3Settings, Storage};
use cfdr::repo::{Repo, RepoError, VerifyMode};
use cfdr::seal::MasterKey;

const KEY: &str = "6b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3a5c7e9b1d";

fn sqlite_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("orders.sqlite");
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch(
        "CREATE TABLE orders(id INTEGER PRIMARY KEY, note TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
         INSERT INTO orders SELECT i, hex(randomblob(40)) FROM n;",
    )
    .unwrap();
    path
}

#[test]
fn cfdr_without_a_command_prints_the_inventory_when_piped() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let db = sqlite_file(tmp.path());
    let cfdr = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_cfdr"))
            .args(args)
            .env("CFDR_KEY", KEY)
            .env("CFDR_CONFIG", "/nonexistent/cfdr.toml")
            .env("CFDR_RPO", "1h")
            .env_remove("CLOUDFLARE_API_TOKEN")
            .env_remove("CFDR_REPO")
            .output()
            .unwrap()
    };
    let repo_s = repo.to_str().unwrap();
    assert!(cfdr(&["repo", "init", "--repo", repo_s]).status.success());
    let b = cfdr(&["backup", "sqlite", db.to_str().unwrap(), "--repo", repo_s]);
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    let out = cfdr(&["--repo", repo_s]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("KIND"), "{text}");
    assert!(
        lines[1].starts_with("SQLite  orders")
            && lines[1].contains(" 60m ")
            && lines[1].contains(" ok "),
        "{text}"
    );
    assert!(
        !text.contains('\x1b'),
        "no terminal control codes when piped"
    );
}

async fn repo_with_backup(dir: &std::path::Path) -> (Repo, String, std::path::PathBuf) {
    let storage =
        Storage::open(dir.join("repo").to_str().unwrap(), &S3Settings::default()).unwrap();
    let repo = Repo::init(storage, MasterKey::from_hex(KEY).unwrap())
        .await
        .unwrap();
    let db = sqlite_file(dir);
    let config = cfdr::config::Config::default();
    let env = Env {
        repo: &repo,
        config: &config,
        client: None,
    };
    let what = What::Sqlite {
        path: db.clone(),
        name: None,
    };
    let done = step::take(&env, &what, &Options::default(), &Progress::silent())
        .await
        .unwrap();
    (repo, done.manifest.id, db)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_verify_records_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, id, _) = repo_with_backup(tmp.path()).await;
    let m = repo.manifest(&id).await.unwrap();
    let flag = Arc::new(AtomicBool::new(true));
    let p = Progress::with_cancel("verify".into(), Arc::new(|_| {}), flag);
    let err = repo
        .verify_with(&m, VerifyMode::Full, &p)
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::Cancelled), "{err}");
    assert!(repo.last_verification(&m).await.unwrap().is_none());
    let ok = repo.verify(&m, VerifyMode::Full).await.unwrap();
    assert!(ok.ok);
    assert!(repo.last_verification(&m).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_backup_leaves_no_backup_and_no_lease() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, _, db) = repo_with_backup(tmp.path()).await;
    let config = cfdr::config::Config::default();
    let env = Env {
        repo: &repo,
        config: &config,
        client: None,
    };
    let what = What::Sqlite {
        path: db,
        name: None,
    };
    let flag = Arc::new(AtomicBool::new(true));
    let p = Progress::with_cancel("backup".into(), Arc::new(|_| {}), flag);
    let err = step::take(&env, &what, &Options::default(), &p)
        .await
        .err()
        .expect("a cancelled backup fails");
    assert!(format!("{err:#}").contains("cancelled"), "{err:#}");
    assert_eq!(repo.catalog().await.unwrap().entries.len(), 1);
    // The lease was released: the next backup runs at once.
    step::take(&env, &what, &Options::default(), &Progress::silent())
        .await
        .unwrap();
    assert_eq!(repo.catalog().await.unwrap().entries.len(), 2);
}
