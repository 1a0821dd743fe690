//! Restores ride out what the network does: KV and R2 restores (a multipart-sized object
//! included) and D1 restores (import, batched, Time Travel) under 10 % 5xx, 429 bursts,
//! latency, dropped connections and cut bodies complete equal to their backups, every path they
//! use (REST, S3 list, GET, PUT, the signed export and import URLs) was hit by a drop or a cut,
//! and the only 429s are the injected ones (the request budget kept cfdr under the rate
//! limit).

mod common;

use std::process::Command;

use common::Api;
use serde_json::{Value, json};

const KEY: &str = "9c1e3a5b7d9f2a4c6e8b0d1f3a5c7e9b2d4f6a8c0e1b3d5f7a9c2e4b6d8f0a1c";

fn cfdr(api: &Api, repo: &str, args: &[&str]) -> Command {
    common::restore_cmd(api, repo, KEY, args)
}

async fn ok_json(api: &Api, repo: &str, args: &[&str]) -> Value {
    common::restore_json(api, repo, KEY, args).await
}

#[tokio::test(flavor = "multi_thread")]
async fn kv_and_r2_restores_complete_exactly_through_faults() {
    let api = common::start().await;
    let s3 = api.s3();
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo").to_str().unwrap().to_string();
    let ns = api.kv_create("SESSIONS").await;
    api.kv_put(
        &ns,
        (0..2_000)
            .map(|i| json!({ "key": format!("s:{i:04}"), "value": format!("v{i}"), "metadata": { "i": i } }))
            .collect(),
    )
    .await;
    assert!(s3.create_bucket("evidence").await.unwrap());
    for i in 0..80 {
        let body: Vec<u8> = (0..5_000).map(|j| (i * 3 + j) as u8).collect();
        common::put_object(
            &s3,
            "evidence",
            &format!("e/{i:03}"),
            body,
            Some("text/plain"),
            &[("i", &i.to_string())],
        )
        .await;
    }
    let big: Vec<u8> = (0..(33usize << 20)).map(|j| (j % 251) as u8).collect();
    common::put_object(&s3, "evidence", "big.bin", big, None, &[]).await;
    let mut c = cfdr(&api, &repo, &["repo", "init"]);
    assert!(
        tokio::task::spawn_blocking(move || c.status().unwrap())
            .await
            .unwrap()
            .success()
    );
    let kv_backup = ok_json(&api, &repo, &["backup", "kv", "SESSIONS", "--json"]).await;
    let r2_backup = ok_json(&api, &repo, &["backup", "r2", "evidence", "--json"]).await;
    api.unlimited().await;
    let kv_original = api.kv_dump(&ns).await;
    let r2_original = common::r2_dump(&s3, "evidence").await;

    // Everything gone or overwritten.
    api.kv_delete(&ns, kv_original.keys().cloned().collect())
        .await;
    // Every object rewritten: the pre-recovery snapshot downloads them all again (so S3 GETs
    // meet the faults often enough), and the restore puts them all back.
    for k in r2_original.keys() {
        common::put_object(
            &s3,
            "evidence",
            k,
            format!("ransomed {k}").into_bytes(),
            None,
            &[],
        )
        .await;
    }
    // Back to the real rate limit, then the weather.
    api.control(
        "POST",
        "/__emulator/faults",
        Some(json!({
            "error_rate": 0.1, "burst_429": 4, "retry_after_secs": 1, "latency_ms": 20,
            "drop_rate": 0.05, "truncate_rate": 0.05, "seed": 11,
            "rate_limit": { "limit": 1200, "window_secs": 300 }
        })),
    )
    .await;
    api.control("POST", "/__emulator/stats/reset", None).await;
    for (backup, what) in [(&kv_backup, "kv"), (&r2_backup, "r2")] {
        let id = backup["id"].as_str().unwrap();
        let r = ok_json(
            &api,
            &repo,
            &[
                "restore",
                id,
                "--mode",
                "clear",
                "--yes",
                "--kv-batch",
                "50",
                "--json",
            ],
        )
        .await;
        assert_eq!(r["report"]["outcome"], "success", "{what}: {r}");
    }
    let stats = api.stats().await;
    let injected = stats["faults"]["429"].as_u64().unwrap_or(0);
    assert!(injected > 0, "the bursts were seen: {}", stats["faults"]);
    assert_eq!(
        stats["rate_limited"].as_u64().unwrap(),
        injected,
        "every 429 was an injected one: the budget kept under the limit"
    );
    // Each path a restore uses was hit by a cut or a drop: REST (the KV reads and 40 bulk writes
    // of 50 pairs, so that the dice are thrown often enough),
    // S3 listings, GETs (the snapshot and the read-back) and PUTs (objects and parts).
    for path in ["REST", "S3 list", "S3 GET", "S3 PUT"] {
        let hit = &stats["faults_by_path"][path];
        let cut = hit["dropped"].as_u64().unwrap_or(0) + hit["truncated"].as_u64().unwrap_or(0);
        assert!(
            cut > 0,
            "no drop or cut on {path}: {}",
            stats["faults_by_path"]
        );
    }
    for kind in ["5xx", "dropped", "truncated"] {
        assert!(
            stats["faults"][kind].as_u64().unwrap_or(0) > 0,
            "{kind} faults were injected: {}",
            stats["faults"]
        );
    }
    api.control("POST", "/__emulator/faults", Some(json!({})))
        .await;
    api.unlimited().await;
    common::assert_same_kv(
        &api.kv_dump(&ns).await,
        &kv_original,
        "KV after the restore",
    );
    common::assert_same_r2(
        &common::r2_dump(&s3, "evidence").await,
        &r2_original,
        "R2 after the restore",
    );
}

/// Hits on `path` that cut the exchange: dropped connections and truncated bodies.
fn cuts(stats: &Value, path: &str) -> u64 {
    let hit = &stats["faults_by_path"][path];
    hit["dropped"].as_u64().unwrap_or(0) + hit["truncated"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn d1_restores_complete_exactly_through_faults() {
    use common::d1::{picture, plain_fixed};
    let api = common::start().await;
    api.unlimited().await;
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo").to_str().unwrap().to_string();
    assert!(
        common::output(cfdr(&api, &repo, &["repo", "init"]))
            .await
            .status
            .success()
    );
    // The awkward values and objects, and 4,000 rows, so that pages and batches are many.
    let sql = format!(
        "{}\nCREATE TABLE wide(id INTEGER PRIMARY KEY, pad TEXT);\nWITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4000) INSERT INTO wide SELECT i, printf('%0120d', i) FROM n;",
        plain_fixed()
    );
    let db = api.d1_create("tracker").await;
    api.d1_import(&db, &sql).await;
    let b = ok_json(&api, &repo, &["backup", "d1", "tracker", "--json"]).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let snapshot = |dump: String| {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch(&format!("BEGIN;{dump}\nCOMMIT;")).unwrap();
        picture(&c)
    };
    let want = snapshot(api.d1_export(&db, json!({})).await.unwrap());
    // Later rounds drop another table, so their import differs from the first one's (D1
    // takes a file it has seen without an upload).
    let damage = |round: u32| {
        format!(
            "DELETE FROM wide WHERE id % {} = 0; DROP TABLE IF EXISTS kv; UPDATE parent SET name = 'round {round}' WHERE id = 1;{}",
            round + 2,
            if round >= 3 {
                " DROP TABLE IF EXISTS gen;"
            } else {
                ""
            }
        )
    };

    // The weather on every path, at Cloudflare's rate limit; then only on the signed URLs
    // (their dice rolled for them alone, so the export downloads and import uploads meet it).
    let weather = [
        json!({
            "error_rate": 0.1, "burst_429": 4, "retry_after_secs": 1, "latency_ms": 10,
            "drop_rate": 0.05, "truncate_rate": 0.05, "seed": 5,
            "rate_limit": { "limit": 1200, "window_secs": 300 }
        }),
        json!({
            "error_rate": 0.1, "drop_rate": 0.25, "truncate_rate": 0.25, "seed": 9,
            "path_contains": "/__signed/"
        }),
    ];
    let mut injected_429 = 0;
    let mut rate_limited = 0;
    let mut by_path = std::collections::BTreeMap::new();
    for (w, faults) in weather.iter().enumerate() {
        let runs: [&[&str]; 3] = [
            &["restore", &b, "--yes", "--json"],
            &[
                "restore",
                &b,
                "--method",
                "batched",
                "--batch-kib",
                "16",
                "--yes",
                "--json",
            ],
            &[
                "d1",
                "time-travel",
                "tracker",
                "--backup",
                &b,
                "--restore",
                "--yes",
                "--json",
            ],
        ];
        for (i, args) in runs.iter().enumerate() {
            let round = (w * 3 + i) as u32;
            api.control("POST", "/__emulator/faults", Some(json!({})))
                .await;
            api.unlimited().await;
            assert!(api.d1_sql(&db, &damage(round)).await.json()["success"] == true);
            api.control("POST", "/__emulator/stats/reset", None).await;
            api.control("POST", "/__emulator/faults", Some(faults.clone()))
                .await;
            let r = ok_json(&api, &repo, args).await;
            assert_eq!(r["report"]["outcome"], "success", "{args:?}: {r}");
            let stats = api.stats().await;
            injected_429 += stats["faults"]["429"].as_u64().unwrap_or(0);
            rate_limited += stats["rate_limited"].as_u64().unwrap();
            for path in ["REST", "signed URL"] {
                *by_path.entry(path).or_insert(0) += cuts(&stats, path);
            }
            api.control("POST", "/__emulator/faults", Some(json!({})))
                .await;
            api.unlimited().await;
            assert_eq!(
                snapshot(api.d1_export(&db, json!({})).await.unwrap()),
                want,
                "after {args:?} under {faults}"
            );
        }
    }
    assert!(injected_429 > 0, "the bursts were seen");
    assert_eq!(
        rate_limited, injected_429,
        "every 429 was an injected one: the budget kept under the limit"
    );
    for (path, n) in &by_path {
        assert!(*n > 0, "no drop or cut on {path}: {by_path:?}");
    }
}
