//! Faults and the rate limit, each observed through the stats route.

mod common;

use std::time::{Duration, Instant};

use cfdr::emulator::EmulatorConfig;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn request_1201_in_a_window_gets_429_with_retry_after() {
    let api = common::start().await;
    for i in 1..=1200 {
        let r = api.send("GET", "/d1/database", None).await;
        assert_eq!(r.status, 200, "request {i}");
        if i == 1200 {
            assert!(
                r.headers["ratelimit"].to_str().unwrap().contains("r=0"),
                "{:?}",
                r.headers["ratelimit"]
            );
        }
    }
    let r = api.send("GET", "/d1/database", None).await;
    assert_eq!((r.status, r.error_code()), (429, 971));
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=300).contains(&retry), "Retry-After {retry}");
    assert_eq!(r.headers["ratelimit-policy"], "\"default\";q=1200;w=300");
    let stats = api.stats().await;
    assert_eq!(stats["rate_limited"], 1);
    assert_eq!(
        stats["routes"]["GET /accounts/{account_id}/d1/database"]["requests"],
        1200
    );
    // Control routes stay usable while the API is limited.
    api.control("POST", "/__emulator/stats/reset", None).await;
    assert_eq!(api.stats().await["total"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_short_window_resets() {
    let config = EmulatorConfig {
        rate_limit: cfdr::emulator::RateLimitConfig {
            limit: 2,
            window_secs: 1,
        },
        ..EmulatorConfig::ephemeral()
    };
    let api = common::start_with(config).await;
    assert_eq!(api.send("GET", "/d1/database", None).await.status, 200);
    assert_eq!(api.send("GET", "/d1/database", None).await.status, 200);
    assert_eq!(api.send("GET", "/d1/database", None).await.status, 429);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(api.send("GET", "/d1/database", None).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn each_injected_fault_is_seen_and_counted() {
    let api = common::start().await;
    let faults = |v| api.control("POST", "/__emulator/faults", Some(v));

    faults(json!({ "burst_429": 2, "retry_after_secs": 3 })).await;
    for _ in 0..2 {
        let r = api.send("GET", "/d1/database", None).await;
        assert_eq!((r.status, r.error_code()), (429, 971));
        assert_eq!(r.headers["retry-after"], "3");
    }
    assert_eq!(api.send("GET", "/d1/database", None).await.status, 200);

    faults(json!({ "error_rate": 1.0, "error_status": 503 })).await;
    let r = api.send("GET", "/d1/database", None).await;
    assert_eq!((r.status, r.error_code()), (503, 10000));

    faults(json!({ "latency_ms": 150 })).await;
    let started = Instant::now();
    assert_eq!(api.send("GET", "/d1/database", None).await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(150));

    faults(json!({ "drop_rate": 1.0 })).await;
    let url = format!("{}/d1/database", api.account());
    let dropped = api.http.get(&url).bearer_auth(&api.emu.token).send().await;
    assert!(dropped.is_err(), "a dropped connection gives no answer");

    faults(json!({ "truncate_rate": 1.0 })).await;
    let cut = api
        .http
        .get(&url)
        .bearer_auth(&api.emu.token)
        .send()
        .await
        .expect("headers arrive");
    assert!(cut.bytes().await.is_err(), "a truncated body fails to read");

    faults(json!({ "error_rate": 1.0, "path_contains": "/storage/kv/" })).await;
    assert_eq!(
        api.send("GET", "/d1/database", None).await.status,
        200,
        "other paths are spared"
    );
    assert_eq!(
        api.send("GET", "/storage/kv/namespaces", None).await.status,
        500
    );

    faults(json!({})).await;
    let stats = api.stats().await;
    assert_eq!(
        stats["faults"],
        json!({ "429": 2, "5xx": 2, "dropped": 1, "truncated": 1 })
    );

    let bad = api
        .send(
            "POST",
            &format!("{}/__emulator/faults", api.emu.origin()),
            Some(json!({ "error_rate": 2 })),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("error_rate")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn control_routes_need_the_token() {
    let api = common::start().await;
    let r = api
        .send_raw(
            api.http
                .get(format!("{}/__emulator/stats", api.emu.origin())),
        )
        .await;
    assert_eq!((r.status, r.error_code()), (401, 10000));
}
