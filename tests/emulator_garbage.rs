//! Garbage at every route gets the documented error envelope; nothing panics and stored data is
//! unchanged afterwards.

mod common;

use serde_json::{Value, json};

async fn fingerprint(api: &common::Api, db: &str, ns: &str) -> (String, Value) {
    let dump = api.d1_export(db, json!({})).await.expect("export");
    let keys = api
        .send("GET", &format!("/storage/kv/namespaces/{ns}/keys"), None)
        .await
        .result();
    (dump, keys)
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_never_breaks_the_emulator_or_its_data() {
    let api = common::start().await;
    let db = api.d1_create("keep").await;
    api.d1_sql(&db, "CREATE TABLE t(a); INSERT INTO t VALUES (1), ('two');")
        .await
        .result();
    let ns = api.kv_create("KEEP").await;
    api.send(
        "PUT",
        &format!("/storage/kv/namespaces/{ns}/bulk"),
        Some(json!([{ "key": "k", "value": "v" }])),
    )
    .await
    .result();
    let before = fingerprint(&api, &db, &ns).await;

    let post_routes = [
        "/d1/database".to_string(),
        format!("/d1/database/{db}/query"),
        format!("/d1/database/{db}/raw"),
        format!("/d1/database/{db}/export"),
        format!("/d1/database/{db}/import"),
        "/storage/kv/namespaces".to_string(),
        format!("/storage/kv/namespaces/{ns}/bulk/get"),
        format!("/storage/kv/namespaces/{ns}/bulk/delete"),
        "/r2/buckets".to_string(),
    ];
    let bodies: [&[u8]; 6] = [
        b"{",
        b"null",
        b"[1,2",
        b"\"text\"",
        b"{\"sql\": 5, \"batch\": {}}",
        &[0xff, 0xfe, 0x00],
    ];
    for route in &post_routes {
        for body in bodies {
            let r = api
                .send_raw(
                    api.http
                        .post(format!("{}{route}", api.account()))
                        .bearer_auth(&api.emu.token)
                        .body(body.to_vec()),
                )
                .await;
            assert!(
                (400..500).contains(&r.status),
                "POST {route} {body:?}: {}",
                r.status
            );
            assert!(r.error_code() >= 1000, "POST {route}");
        }
    }
    for (method, route, body) in [
        (
            "PUT",
            format!("/storage/kv/namespaces/{ns}/bulk"),
            json!({ "not": "an array" }),
        ),
        (
            "PUT",
            format!("/storage/kv/namespaces/{ns}/bulk"),
            json!([{ "key": "x", "value": 1 }]),
        ),
        (
            "PUT",
            format!("/storage/kv/namespaces/{ns}/bulk"),
            json!([{ "key": "x", "value": "!!", "base64": true }]),
        ),
        (
            "PUT",
            format!("/storage/kv/namespaces/{ns}"),
            json!({ "title": 7 }),
        ),
        (
            "PATCH",
            format!("/d1/database/{db}"),
            json!({ "read_replication": { "mode": "sometimes" } }),
        ),
        (
            "POST",
            format!("/d1/database/{db}/query"),
            json!({ "sql": "SELECT 1", "params": "x" }),
        ),
        (
            "POST",
            format!("/d1/database/{db}/export"),
            json!({ "output_format": "polling", "current_bookmark": "nope" }),
        ),
        (
            "POST",
            format!("/d1/database/{db}/export"),
            json!({ "output_format": "zip" }),
        ),
        (
            "POST",
            format!("/d1/database/{db}/import"),
            json!({ "action": "ingest", "etag": "x", "filename": "none.sql" }),
        ),
        (
            "POST",
            format!("/d1/database/{db}/time_travel/restore?bookmark=garbage"),
            Value::Null,
        ),
        (
            "POST",
            format!("/d1/database/{db}/time_travel/restore?timestamp=2999-01-01T00:00:00Z"),
            Value::Null,
        ),
        (
            "GET",
            format!("/d1/database/{db}/time_travel/bookmark?timestamp=yesterday"),
            Value::Null,
        ),
        ("GET", "/d1/database?per_page=5".to_string(), Value::Null),
        ("GET", "/d1/database?page=zero".to_string(), Value::Null),
        (
            "GET",
            format!("/storage/kv/namespaces/{ns}/keys?cursor=%%%"),
            Value::Null,
        ),
        (
            "GET",
            format!("/storage/kv/namespaces/{ns}/keys?cursor=bm9wZQ-&limit=5"),
            Value::Null,
        ),
        ("GET", "/r2/buckets?cursor=zz".to_string(), Value::Null),
        ("DELETE", "/nothing/here".to_string(), Value::Null),
        ("PATCH", "/d1/database".to_string(), Value::Null),
    ] {
        let r = api
            .send(method, &route, (!body.is_null()).then_some(body))
            .await;
        assert!(
            (400..500).contains(&r.status),
            "{method} {route}: {} {}",
            r.status,
            String::from_utf8_lossy(&r.bytes)
        );
        r.error_code();
    }

    // Oversize keys, values, metadata and statements.
    let long_key = "k".repeat(513);
    let r = api
        .send_raw(
            api.http
                .put(format!(
                    "{}/storage/kv/namespaces/{ns}/values/{long_key}",
                    api.account()
                ))
                .bearer_auth(&api.emu.token)
                .body("v"),
        )
        .await;
    assert_eq!((r.status, r.error_code()), (414, 10033));
    let big = vec![b'x'; 25 * 1024 * 1024 + 1];
    let r = api
        .send_raw(
            api.http
                .put(format!(
                    "{}/storage/kv/namespaces/{ns}/values/big",
                    api.account()
                ))
                .bearer_auth(&api.emu.token)
                .body(big),
        )
        .await;
    assert_eq!((r.status, r.error_code()), (413, 10011));
    let r = api
        .send(
            "PUT",
            &format!("/storage/kv/namespaces/{ns}/bulk"),
            Some(json!([{ "key": "m", "value": "v", "metadata": { "m": "x".repeat(1100) } }])),
        )
        .await;
    assert_eq!((r.status, r.error_code()), (413, 10012));
    let r = api
        .send(
            "PUT",
            &format!("/storage/kv/namespaces/{ns}/values/ttl?expiration_ttl=30"),
            None,
        )
        .await;
    assert_eq!((r.status, r.error_code()), (400, 10016));
    let r = api
        .d1_sql(
            &db,
            &format!("INSERT INTO t VALUES ('{}')", "x".repeat(100_001)),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("SQLITE_TOOBIG")
    );
    let r = api
        .send(
            "POST",
            &format!("/storage/kv/namespaces/{ns}/bulk/get"),
            Some(json!({ "keys": vec!["k"; 101] })),
        )
        .await;
    assert_eq!(r.status, 400);

    assert_eq!(
        fingerprint(&api, &db, &ns).await,
        before,
        "garbage changed stored data"
    );
}
