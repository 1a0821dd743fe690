//! Sanity warnings against the previous backup, and failure notifications to a webhook.

mod common;

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

const KEY: &str = "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b";

fn cfdr(h: &common::Handle, repo: &str, args: &[&str]) -> std::process::Output {
    common::cfdr_cmd(h, repo, KEY)
        .args(args)
        .output()
        .expect("cfdr runs")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mass_deletion_is_backed_up_with_a_warning() {
    let api = common::start().await;
    let ns = api.kv_create("USERS").await;
    let items: Vec<Value> = (0..100)
        .map(|i| json!({ "key": format!("user:{i:03}"), "value": "x".repeat(40) }))
        .collect();
    api.send(
        "PUT",
        &format!("/storage/kv/namespaces/{ns}/bulk"),
        Some(Value::Array(items)),
    )
    .await
    .result();
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo").to_str().unwrap().to_string();
    let (h, r) = (api.clone_handle(), repo.clone());
    let first = tokio::task::spawn_blocking(move || {
        assert!(cfdr(&h, &r, &["repo", "init"]).status.success());
        cfdr(&h, &r, &["backup", "kv", "USERS", "--json"])
    })
    .await
    .unwrap();
    let first: Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(first["warnings"], json!([]));

    let gone: Vec<String> = (0..80).map(|i| format!("user:{i:03}")).collect();
    api.send(
        "POST",
        &format!("/storage/kv/namespaces/{ns}/bulk/delete"),
        Some(json!(gone)),
    )
    .await
    .result();
    let (h, r) = (api.clone_handle(), repo.clone());
    let second =
        tokio::task::spawn_blocking(move || cfdr(&h, &r, &["backup", "kv", "USERS", "--json"]))
            .await
            .unwrap();
    assert!(second.status.success(), "a warning is not a failure");
    let m: Value = serde_json::from_slice(&second.stdout).unwrap();
    let w = m["warnings"][0].as_str().unwrap();
    assert!(
        w.contains("keys went from 100 to 20") && w.contains(first["id"].as_str().unwrap()),
        "{w}"
    );
    assert!(String::from_utf8_lossy(&second.stderr).contains("keys went from 100 to 20"));
    let list = tokio::task::spawn_blocking({
        let (h, r) = (api.clone_handle(), repo.clone());
        move || cfdr(&h, &r, &["backups", "list"])
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.lines()
            .any(|l| l.contains(m["id"].as_str().unwrap()) && l.trim_end().ends_with('1')),
        "the WARN column shows it: {text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_backup_is_posted_to_the_webhook() {
    let api = common::start().await;
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::Json<Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(body.0);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo").to_str().unwrap().to_string();
    let (h, r) = (api.clone_handle(), repo.clone());
    let out = tokio::task::spawn_blocking(move || {
        assert!(cfdr(&h, &r, &["repo", "init"]).status.success());
        cfdr(&h, &r, &["backup", "d1", "no-such-db", "--notify", &hook])
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "one message per failure");
    let content = got[0]["content"].as_str().unwrap();
    assert_eq!(
        got[0]["text"], got[0]["content"],
        "Discord reads content, Slack reads text"
    );
    assert!(
        content.contains("cfdr backup failed on")
            && content.contains("no D1 database `no-such-db`"),
        "{content}"
    );
    assert!(!content.contains(&api.emu.token));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_projects_wrangler_config_names_what_to_back_up() {
    let api = common::start().await;
    let db = api.d1_create("orders").await;
    api.d1_sql(
        &db,
        "CREATE TABLE o(id INTEGER PRIMARY KEY); INSERT INTO o VALUES (1);",
    )
    .await
    .result();
    api.d1_create("unrelated").await;
    let ns = api.kv_create("SESSIONS").await;
    api.kv_create("OTHER").await;
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("wrangler.jsonc");
    std::fs::write(
        &config,
        format!("{{\n  // bindings of the app\n  \"name\": \"shop\",\n  \"d1_databases\": [{{ \"binding\": \"DB\", \"database_name\": \"orders\", \"database_id\": \"{db}\" }}],\n  \"kv_namespaces\": [{{ \"binding\": \"S\", \"id\": \"{ns}\" }},],\n}}\n"),
    )
    .unwrap();
    let repo = tmp.path().join("repo").to_str().unwrap().to_string();
    let (h, r, c) = (
        api.clone_handle(),
        repo.clone(),
        config.to_str().unwrap().to_string(),
    );
    let out = tokio::task::spawn_blocking(move || {
        assert!(cfdr(&h, &r, &["repo", "init"]).status.success());
        cfdr(&h, &r, &["backup", "--wrangler", &c, "--json"])
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let targets: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|m| {
            format!(
                "{}/{}",
                m["kind"].as_str().unwrap(),
                m["target"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        targets,
        vec!["d1/orders", "kv/SESSIONS"],
        "only the project's bindings"
    );
}
