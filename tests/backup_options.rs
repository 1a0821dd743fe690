//! The backup options through the binary against the emulator: `--incremental` KV backups (only
//! what changed is stored, the chain folds back to exactly a full backup, prune keeps the
//! parents), progress on stderr (log lines, NDJSON with `--json`), `--timeout`, and ranged GETs
//! for large R2 objects.

mod common;

use cfdr::progress::{Progress, ProgressEvent};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const KEY: &str = "3c5e7a9b1d3f5e7c9a1b3d5f7e9c1a3b5d7f9e1c3a5b7d9f1e3c5a7b9d1f3e5c";

async fn cfdr(api: &common::Api, repo: &str, args: &[&str]) -> std::process::Output {
    let (h, r) = (api.clone_handle(), repo.to_string());
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        common::cfdr_cmd(&h, &r, KEY)
            .args(&args)
            .output()
            .expect("cfdr runs")
    })
    .await
    .unwrap()
}

fn ok(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

async fn put(api: &common::Api, ns: &str, items: Value) {
    api.send(
        "PUT",
        &format!("/storage/kv/namespaces/{ns}/bulk"),
        Some(items),
    )
    .await
    .result();
}

#[tokio::test(flavor = "multi_thread")]
async fn incremental_kv_backups_store_only_changes_and_fold_back_exactly() {
    let api = common::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo").to_str().unwrap().to_string();
    ok(&cfdr(&api, &repo, &["repo", "init"]).await);
    let ns = api.kv_create("SESSIONS").await;
    let items: Vec<Value> = (0..500)
        .map(|i| json!({ "key": format!("user:{i:03}"), "value": format!("v{i}") }))
        .collect();
    put(&api, &ns, Value::Array(items)).await;

    // No parent yet: --incremental takes a full backup and says so.
    let first = cfdr(
        &api,
        &repo,
        &["backup", "kv", "SESSIONS", "--incremental", "--json"],
    )
    .await;
    let full = ok(&first);
    assert_eq!(full["method"], "bulk-get");
    assert!(
        String::from_utf8_lossy(&first.stderr).contains("no previous backup to be incremental on"),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );

    // Two changed, one added, one deleted, one with new metadata.
    put(
        &api,
        &ns,
        json!([
            { "key": "user:001", "value": "changed" },
            { "key": "user:002", "value": "changed too" },
            { "key": "user:999", "value": "new" },
            { "key": "user:003", "value": "v3", "metadata": { "tier": "critical" } },
        ]),
    )
    .await;
    api.send(
        "DELETE",
        &format!("/storage/kv/namespaces/{ns}/values/user:004"),
        None,
    )
    .await
    .result();

    let out = cfdr(
        &api,
        &repo,
        &["backup", "kv", "SESSIONS", "--incremental", "--json"],
    )
    .await;
    let inc = ok(&out);
    assert_eq!(inc["method"], "bulk-get-incremental");
    assert_eq!(inc["parent"], full["id"]);
    assert_eq!(inc["stats"]["keys"], 500);
    assert_eq!(
        inc["stats"]["delta"],
        json!({ "changed": 3, "added": 1, "deleted": 1, "unchanged": 496 })
    );
    assert!(
        inc["artifacts"][0]["plaintext_size"].as_u64().unwrap()
            < full["artifacts"][0]["plaintext_size"].as_u64().unwrap() / 20,
        "the delta is a small fraction of the namespace"
    );
    let stored = ok_bytes(
        &cfdr(
            &api,
            &repo,
            &["backups", "cat", inc["id"].as_str().unwrap()],
        )
        .await,
    );
    assert_eq!(
        stored
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count(),
        5
    );

    // The chain folded up equals a full backup taken now.
    let whole = ok_bytes(
        &cfdr(
            &api,
            &repo,
            &["backups", "cat", inc["id"].as_str().unwrap(), "--full"],
        )
        .await,
    );
    let now = ok(&cfdr(&api, &repo, &["backup", "kv", "SESSIONS", "--json"]).await);
    let fresh = ok_bytes(
        &cfdr(
            &api,
            &repo,
            &["backups", "cat", now["id"].as_str().unwrap()],
        )
        .await,
    );
    assert_eq!(whole, fresh);

    // A third, incremental on the full one just taken; prune keeping only the newest keeps its
    // parent too, and says why.
    let third = ok(&cfdr(
        &api,
        &repo,
        &["backup", "kv", "SESSIONS", "--incremental", "--json"],
    )
    .await);
    assert_eq!(third["parent"], now["id"]);
    assert_eq!(third["stats"]["delta"]["unchanged"], 500);
    let plan = cfdr(
        &api,
        &repo,
        &["backups", "prune", "--keep-last", "1", "--dry-run"],
    )
    .await;
    let plan_text = String::from_utf8_lossy(&plan.stdout).to_string();
    assert!(plan.status.success(), "{plan_text}");
    let line = plan_text
        .lines()
        .find(|l| l.contains(now["id"].as_str().unwrap()))
        .unwrap_or_default();
    assert!(
        line.starts_with("keep")
            && line.contains(&format!("parent of {}", third["id"].as_str().unwrap())),
        "{plan_text}"
    );
}

fn ok_bytes(out: &std::process::Output) -> Vec<u8> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout.clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn progress_goes_to_stderr_as_log_lines_or_ndjson() {
    let api = common::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo").to_str().unwrap().to_string();
    ok(&cfdr(&api, &repo, &["repo", "init"]).await);
    let db = api.d1_create("shop").await;
    api.d1_sql(
        &db,
        "CREATE TABLE t(a); INSERT INTO t VALUES (1),(2),(3); CREATE TABLE u(b);",
    )
    .await
    .result();

    let logged = cfdr(&api, &repo, &["backup", "d1", "shop", "--method", "paged"]).await;
    ok_bytes(&logged);
    let err = String::from_utf8_lossy(&logged.stderr);
    assert!(err.contains("cfdr: d1 `shop`: dump 0/2 tables"), "{err}");
    assert!(err.contains("cfdr: d1 `shop`: dump 2/2 tables"), "{err}");
    assert!(err.contains("cfdr: d1 `shop`: seal"), "{err}");

    let json = cfdr(&api, &repo, &["backup", "d1", "shop", "--json"]).await;
    let m = ok(&json);
    assert_eq!(m["kind"], "d1", "stdout holds only the manifest");
    let events: Vec<Value> = String::from_utf8_lossy(&json.stderr)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let phases: Vec<&str> = events.iter().filter_map(|e| e["phase"].as_str()).collect();
    for phase in ["export", "download", "check against live tables", "seal"] {
        assert!(phases.contains(&phase), "{phases:?}");
    }
    assert!(
        events
            .iter()
            .all(|e| e["event"] == "progress" && e["job"] == "d1 `shop`")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_that_outlives_timeout_is_retried_then_reported() {
    let api = common::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo").to_str().unwrap().to_string();
    ok(&cfdr(&api, &repo, &["repo", "init"]).await);
    api.kv_create("SLOW").await;

    let bad = cfdr(&api, &repo, &["backup", "kv", "SLOW", "--timeout", "soon"]).await;
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("`soon` is not a duration like 30s or 2m")
    );
    let bad = cfdr(&api, &repo, &["backup", "kv", "SLOW", "--concurrency", "0"]).await;
    assert_eq!(bad.status.code(), Some(2));

    // Every answer takes 400 ms; with a 100 ms timeout nothing can land.
    api.control(
        "POST",
        "/__emulator/faults",
        Some(json!({ "latency_ms": 400 })),
    )
    .await;
    let started = std::time::Instant::now();
    let out = cfdr(&api, &repo, &["backup", "kv", "SLOW", "--timeout", "100ms"]).await;
    api.control("POST", "/__emulator/faults", Some(json!({})))
        .await;
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("timed out") || err.contains("timeout"),
        "{err}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

#[tokio::test(flavor = "multi_thread")]
async fn large_r2_objects_come_as_ranged_gets() {
    let api = common::start().await;
    api.send("POST", "/r2/buckets", Some(json!({ "name": "media" })))
        .await
        .result();
    let bucket = api.s3();
    let big: Vec<u8> = (0..(5u32 << 20) + 12_345)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    common::put_object(&bucket, "media", "video.bin", big.clone(), None, &[]).await;
    common::put_object(&bucket, "media", "small.txt", b"hi".to_vec(), None, &[]).await;
    api.control("POST", "/__emulator/stats/reset", None).await;

    let tmp = tempfile::tempdir().unwrap();
    let storage = cfdr::repo::storage::Storage::open(
        tmp.path().join("repo").to_str().unwrap(),
        &Default::default(),
    )
    .unwrap();
    let repo = cfdr::repo::Repo::init(storage, cfdr::seal::MasterKey::from_hex(KEY).unwrap())
        .await
        .unwrap();
    let lease = cfdr::repo::Lease::acquire(&repo.storage, "test", cfdr::repo::lease::DEFAULT_TTL)
        .await
        .unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<ProgressEvent>::new()));
    let s = seen.clone();
    let progress = Progress::new(
        "r2 `media`",
        std::sync::Arc::new(move |e: ProgressEvent| s.lock().unwrap().push(e)),
    );
    let opts = cfdr::engine::r2::R2Options {
        concurrency: 3,
        ranged_from: 1 << 20,
        part: 1 << 20,
    };
    let mut index = Vec::new();
    let stats = cfdr::engine::r2::backup(
        &bucket, "media", &repo, &lease, None, opts, &progress, &mut index,
    )
    .await
    .unwrap();
    lease.release().await.unwrap();
    assert_eq!(stats.objects, 2);
    assert_eq!(stats.ranged_gets, 6, "5 MiB + 12,345 bytes in 1 MiB parts");
    let sha = hex::encode(Sha256::digest(&big));
    let indexed = String::from_utf8(index).unwrap();
    assert!(
        indexed.contains(&sha) && repo.has_blob(&sha).await.unwrap(),
        "the parts, put together, hash to the whole object"
    );
    let gets = &api.stats().await["routes"]["GET S3 /{bucket}/{key}"]["requests"];
    assert_eq!(gets, 7, "6 ranged GETs and 1 for the small object");
    let last = seen.lock().unwrap().last().cloned().unwrap();
    assert!(last.finished);
    assert_eq!((last.done, last.bytes), (2, big.len() as u64 + 2));
}
