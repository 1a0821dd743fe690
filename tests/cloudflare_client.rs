//! The real client against the emulator over HTTP: retries through injected faults, the shared
//! budget keeping under the server's limit, no retry on 4xx, and no token in any error.

mod common;

use std::time::Duration;

use cfdr::cloudflare::{Body, Budget, Client};
use cfdr::emulator::{EmulatorConfig, RateLimitConfig};
use reqwest::Method;
use serde_json::json;

fn client(api: &common::Api, budget: Budget, token: &str) -> Client {
    api.client_with(budget, token)
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_get_through_5xx_429_bursts_latency_and_dropped_connections() {
    let api = common::start().await;
    // A 429 empties the budget; at Cloudflare's real rate (4/s) refilling would take this test 20 s.
    let c = client(
        &api,
        Budget::new(6000, Duration::from_secs(60)),
        &api.emu.token,
    );
    let ns = c
        .call(
            Method::POST,
            "/storage/kv/namespaces",
            &[],
            Body::Json(json!({ "title": "FAULTS" })),
        )
        .await
        .unwrap()
        .result["id"]
        .as_str()
        .unwrap()
        .to_string();
    api.control("POST", "/__emulator/faults", Some(json!({ "error_rate": 0.1, "burst_429": 3, "retry_after_secs": 1, "latency_ms": 10, "drop_rate": 0.03, "seed": 7 }))).await;
    for i in 0..60 {
        let key = format!("k{i}");
        c.call(
            Method::PUT,
            &format!("/storage/kv/namespaces/{ns}/values/{key}"),
            &[],
            Body::Bytes(format!("v{i}").into_bytes(), "application/octet-stream"),
        )
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e}"));
    }
    api.control("POST", "/__emulator/faults", Some(json!({})))
        .await;
    let keys = c
        .call(
            Method::GET,
            &format!("/storage/kv/namespaces/{ns}/keys"),
            &[],
            Body::None,
        )
        .await
        .unwrap();
    assert_eq!(keys.result.as_array().unwrap().len(), 60);
    let stats = api.stats().await;
    let faults = &stats["faults"];
    assert_eq!(faults["429"], 3, "{stats}");
    assert!(
        faults["5xx"].as_u64().unwrap_or(0) >= 1 && faults["dropped"].as_u64().unwrap_or(0) >= 1,
        "{stats}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_budget_keeps_a_burst_under_the_servers_limit() {
    let config = EmulatorConfig {
        rate_limit: RateLimitConfig {
            limit: 40,
            window_secs: 1,
        },
        ..EmulatorConfig::ephemeral()
    };
    let api = common::start_with(config).await;
    let c = client(
        &api,
        Budget::new(40, Duration::from_secs(1)),
        &api.emu.token,
    );
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.call(Method::GET, "/d1/database", &[], Body::None).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let stats = api.stats().await;
    assert_eq!(
        stats["rate_limited"], 0,
        "the server never had to refuse: {stats}"
    );
    assert_eq!(
        stats["routes"]["GET /accounts/{account_id}/d1/database"]["requests"],
        100
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "100 requests at 40/s take time: {:?}",
        started.elapsed()
    );
    assert_eq!(c.budget.state().sent, 100);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_4xx_is_not_retried_and_no_error_shows_the_token() {
    let api = common::start().await;
    let c = client(
        &api,
        Budget::new(1200, Duration::from_secs(300)),
        &api.emu.token,
    );
    let err = c
        .call(
            Method::GET,
            "/d1/database/00000000-0000-4000-8000-000000000000",
            &[],
            Body::None,
        )
        .await
        .unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(404), Some(7404)));
    let stats = api.stats().await;
    assert_eq!(
        stats["routes"]["GET /accounts/{account_id}/d1/database/{database_id}"]["requests"], 1,
        "{stats}"
    );

    let secret = "cfdr-test-token-Zq9vX2";
    let wrong = client(&api, Budget::new(1200, Duration::from_secs(300)), secret);
    let err = wrong
        .call(Method::GET, "/d1/database", &[], Body::None)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403));
    assert!(
        !err.to_string().contains(secret) && !format!("{err:?}").contains(secret),
        "{err}"
    );
    let pages = c.all_pages("/d1/database", 10, &[]).await.unwrap();
    assert!(pages.is_empty());
}
