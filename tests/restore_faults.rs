//! Restores ride out what the network does: a KV and an R2 restore (a multipart-sized object
//! included) under 10 % 5xx, 429 bursts, latency, dropped connections and cut bodies complete
//! equal to their backups, every path they use (REST, S3 list, GET, PUT) was hit by a drop or a
//! cut, and the only 429s are the injected ones (the request budget kept cfdr under the rate
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
