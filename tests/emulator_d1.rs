//! D1 flows end to end over HTTP: Time Travel by timestamp and undo, presigned URL expiry,
//! all-or-nothing imports, and D1's export flaws.

mod common;

use std::time::Duration;

use cfdr::emulator::EmulatorConfig;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn time_travel_by_timestamp_restores_and_can_be_undone() {
    let api = common::start().await;
    let db = api.d1_create("tt").await;
    api.d1_sql(&db, "CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .await
        .result();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    api.d1_sql(&db, "DELETE FROM t; INSERT INTO t VALUES (2);")
        .await
        .result();
    let count = |v: serde_json::Value| v[0]["results"][0]["x"].clone();

    let restore = api
        .send(
            "POST",
            &format!("/d1/database/{db}/time_travel/restore?timestamp={before}"),
            None,
        )
        .await
        .result();
    assert_eq!(count(api.d1_sql(&db, "SELECT x FROM t").await.result()), 1);
    assert!(
        restore["bookmark"].as_str() > restore["previous_bookmark"].as_str(),
        "bookmarks sort in time order"
    );
    let undo = format!(
        "/d1/database/{db}/time_travel/restore?bookmark={}",
        restore["previous_bookmark"].as_str().unwrap()
    );
    api.send("POST", &undo, None).await.result();
    assert_eq!(count(api.d1_sql(&db, "SELECT x FROM t").await.result()), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn time_travel_allows_ten_restores_per_ten_minutes() {
    let api = common::start().await;
    let db = api.d1_create("limited").await;
    let other = api.d1_create("other").await;
    api.d1_sql(&db, "CREATE TABLE t(x);").await.result();
    let bookmark = |db: &str| format!("/d1/database/{db}/time_travel/bookmark");
    let at = api.send("GET", &bookmark(&db), None).await.result()["bookmark"]
        .as_str()
        .unwrap()
        .to_string();
    let restore = |db: &str, b: &str| format!("/d1/database/{db}/time_travel/restore?bookmark={b}");
    let unknown = format!("{}{}", &at[..27], "0".repeat(32));
    let r = api.send("POST", &restore(&db, &unknown), None).await;
    assert_eq!((r.status, r.error_code()), (400, 7400), "unknown bookmark");
    for _ in 0..10 {
        api.send("POST", &restore(&db, &at), None).await.result();
    }
    let r = api.send("POST", &restore(&db, &at), None).await;
    assert_eq!(r.status, 429, "{}", r.json());
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((590..=600).contains(&wait), "Retry-After {wait}");
    assert!(
        r.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("10 restores per 10 minutes"),
        "{}",
        r.json()
    );
    let other_at = api.send("GET", &bookmark(&other), None).await.result()["bookmark"]
        .as_str()
        .unwrap()
        .to_string();
    api.send("POST", &restore(&other, &other_at), None)
        .await
        .result();

    // cfdr's client does not sit out a ten-minute Retry-After: the answer comes back at once.
    let client = api.client();
    let started = std::time::Instant::now();
    let e = client.d1_time_travel(&db, &at).await.unwrap_err();
    assert_eq!(e.status(), Some(429), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_being_imported_is_blocked() {
    let api = common::start().await;
    let db = api.d1_create("importing").await;
    let sql = "CREATE TABLE big(x);\nWITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 10000000) INSERT INTO big SELECT i FROM c;";
    let started = api.d1_import_start(&db, sql).await;
    assert_eq!(
        started["status"], "active",
        "the import must outlast the ingest's second: {started}"
    );
    let r = api.d1_sql(&db, "SELECT 1").await;
    assert_eq!((r.status, r.error_code()), (409, 7500), "{}", r.json());
    assert!(
        r.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("blocked while an import runs")
    );
    let export = api
        .send(
            "POST",
            &format!("/d1/database/{db}/export"),
            Some(json!({ "output_format": "polling" })),
        )
        .await;
    assert_eq!(export.status, 409);
    let path = format!("/d1/database/{db}/import");
    let mut r = started;
    while r["status"] == "active" {
        tokio::time::sleep(Duration::from_millis(250)).await;
        r = api
            .send(
                "POST",
                &path,
                Some(json!({ "action": "poll", "current_bookmark": r["at_bookmark"] })),
            )
            .await
            .result();
    }
    assert_eq!(r["status"], "complete", "{r}");
    let n = api
        .d1_sql(&db, "SELECT count(*) AS n FROM big")
        .await
        .result();
    assert_eq!(n[0]["results"][0]["n"], 10_000_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn presigned_urls_expire() {
    let config = EmulatorConfig {
        signed_url_ttl: Duration::from_millis(300),
        export_poll_timeout: Duration::from_millis(300),
        ..EmulatorConfig::ephemeral()
    };
    let api = common::start_with(config).await;
    let db = api.d1_create("expiring").await;
    api.d1_sql(&db, "CREATE TABLE t(x);").await.result();
    let path = format!("/d1/database/{db}/export");
    let first = api
        .send("POST", &path, Some(json!({ "output_format": "polling" })))
        .await
        .result();
    let poll = json!({ "output_format": "polling", "current_bookmark": first["at_bookmark"] });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let done = api.send("POST", &path, Some(poll.clone())).await.result();
    assert_eq!(done["status"], "complete", "{done}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let late = api
        .http
        .get(done["result"]["signed_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(late.status(), 403, "an expired URL is refused");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_import_leaves_the_database_as_it_was() {
    let api = common::start().await;
    let db = api.d1_create("atomic").await;
    api.d1_sql(&db, "CREATE TABLE t(x UNIQUE); INSERT INTO t VALUES (1);")
        .await
        .result();
    let before = api.d1_export(&db, json!({})).await.unwrap();
    let r = api
        .d1_import(&db, "INSERT INTO t VALUES (2);\nINSERT INTO t VALUES (1);")
        .await;
    assert_eq!(r["status"], "error", "{r}");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("UNIQUE constraint failed"),
        "{r}"
    );
    assert_eq!(api.d1_export(&db, json!({})).await.unwrap(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn exports_keep_d1s_flaws_and_queries_carry_javascript_numbers() {
    let api = common::start().await;
    let db = api.d1_create("flaws").await;
    api.d1_sql(&db, "CREATE TABLE t(i INTEGER, r REAL); INSERT INTO t VALUES (9223372036854775807, -0.0), (9007199254740993, 1e300);").await.result();
    let dump = api.d1_export(&db, json!({})).await.unwrap();
    assert!(
        dump.contains("VALUES(9223372036854776000,0);")
            && dump.contains("VALUES(9007199254740992,1e+300);"),
        "{dump}"
    );
    let raw = api
        .send(
            "POST",
            &format!("/d1/database/{db}/raw"),
            Some(json!({ "sql": "SELECT i, quote(i) AS exact FROM t" })),
        )
        .await;
    let text = String::from_utf8(raw.bytes).unwrap();
    assert!(
        text.contains(r#"[9223372036854776000,"9223372036854775807"]"#),
        "{text}"
    );

    api.d1_sql(&db, "CREATE VIRTUAL TABLE f USING fts5(body);")
        .await
        .result();
    let err = api
        .d1_export(&db, json!({ "tables": ["t"] }))
        .await
        .unwrap_err();
    assert!(err.contains("Virtual Tables"), "{err}");
}

/// Rows go out as D1 writes them: numbers in JavaScript's text (`1e+21`, not `1e21`), an object
/// a row with its keys in column order (a name given twice: first place, last value), or arrays
/// through `/raw`.
#[tokio::test(flavor = "multi_thread")]
async fn rows_keep_javascripts_number_text_and_their_column_order() {
    let api = common::start().await;
    let db = api.d1_create("numbers").await;
    let sql = "SELECT 1e21 AS z, 0.1 AS b, 1 AS a, 2 AS a, -0.0 AS n, 9007199254740993 AS big";
    let text = |r: common::Reply| String::from_utf8(r.bytes).unwrap();
    let objects = text(api.d1_sql(&db, sql).await);
    assert!(
        objects.contains(r#""results":[{"z":1e+21,"b":0.1,"a":2,"n":0,"big":9007199254740992}]"#),
        "{objects}"
    );
    let raw = text(
        api.send(
            "POST",
            &format!("/d1/database/{db}/raw"),
            Some(serde_json::json!({ "sql": sql })),
        )
        .await,
    );
    assert!(
        raw.contains(
            r#""results":{"columns":["z","b","a","a","n","big"],"rows":[[1e+21,0.1,1,2,0,9007199254740992]]}"#
        ),
        "{raw}"
    );
}
