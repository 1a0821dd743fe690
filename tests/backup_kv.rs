//! `cfdr backup kv` through the binary against the emulator: every key, value, metadata and
//! expiration exact (binary values included), 10,000 text keys in at most 111 requests, and the
//! token never in the output.

mod common;

use base64::Engine as _;
use serde_json::{Value, json};

const KEY: &str = "7d2c4b6a8e0f1d3c5b7a9e1f3d5c7b9a0e2f4d6c8b0a1e3f5d7c9b1a3e5f7d9c";

fn cfdr(h: &common::Handle, repo: &str, args: &[&str]) -> std::process::Output {
    common::cfdr_cmd(h, repo, KEY)
        .args(args)
        .output()
        .expect("cfdr runs")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_namespace_is_backed_up_exactly_and_cheaply() {
    let api = common::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let repo = repo.to_str().unwrap().to_string();

    let ns = api.kv_create("SESSIONS").await;
    let items: Vec<Value> = (0..10_000)
        .map(|i| json!({ "key": format!("user:{i:05}"), "value": format!("{{\"id\":{i}}}") }))
        .collect();
    api.send(
        "PUT",
        &format!("/storage/kv/namespaces/{ns}/bulk"),
        Some(Value::Array(items)),
    )
    .await
    .result();
    let binary: Vec<u8> = vec![0x89, b'P', b'N', b'G', 0xff, 0x00, 0xfe];
    let special = json!([
        { "key": "blob:1", "value": base64::engine::general_purpose::STANDARD.encode(&binary), "base64": true },
        { "key": "meta/é ?", "value": "x", "metadata": { "tier": "critical" }, "expiration_ttl": 3600 },
        { "key": "replacement", "value": "already \u{FFFD} here" },
    ]);
    api.send(
        "PUT",
        &format!("/storage/kv/namespaces/{ns}/bulk"),
        Some(special),
    )
    .await
    .result();
    api.control("POST", "/__emulator/stats/reset", None).await;

    let (a, r) = (api.clone_handle(), repo.clone());
    let out = tokio::task::spawn_blocking(move || {
        let init = cfdr(&a, &r, &["repo", "init"]);
        assert!(
            init.status.success(),
            "{}",
            String::from_utf8_lossy(&init.stderr)
        );
        cfdr(&a, &r, &["backup", "kv", "SESSIONS", "--json"])
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !text.contains(&api.emu.token) && !text.contains(KEY),
        "a secret leaked into the output"
    );
    let m: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(m["stats"]["keys"], 10_003);
    assert_eq!(m["stats"]["binary"], 1);
    assert_eq!(
        m["stats"]["refetched"], 2,
        "both values holding U+FFFD were fetched again raw"
    );

    let stats = api.stats().await;
    let count = |route: &str| stats["routes"][route]["requests"].as_u64().unwrap_or(0);
    let lists = count("GET /accounts/{account_id}/storage/kv/namespaces/{namespace_id}/keys");
    let gets = count("POST /accounts/{account_id}/storage/kv/namespaces/{namespace_id}/bulk/get");
    assert_eq!((lists, gets), (11, 101), "{stats}");
    assert!(
        lists + gets <= 112,
        "10,000 text keys (plus 3) in {} requests",
        lists + gets
    );

    let id = m["id"].as_str().unwrap().to_string();
    let (a, r) = (api.clone_handle(), repo.clone());
    let cat = tokio::task::spawn_blocking(move || cfdr(&a, &r, &["backups", "cat", &id]))
        .await
        .unwrap();
    assert!(cat.status.success());
    let lines: Vec<Value> = String::from_utf8(cat.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 10_003);
    let find = |k: &str| {
        lines
            .iter()
            .find(|l| l["key"] == k)
            .unwrap_or_else(|| panic!("no {k}"))
            .clone()
    };
    let blob = find("blob:1");
    assert_eq!(blob["base64"], true);
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(blob["value"].as_str().unwrap())
            .unwrap(),
        binary
    );
    let meta = find("meta/é ?");
    assert_eq!(meta["metadata"], json!({ "tier": "critical" }));
    assert!(meta["expiration"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(find("replacement")["value"], "already \u{FFFD} here");
    assert_eq!(find("user:04242")["value"], "{\"id\":4242}");
}
