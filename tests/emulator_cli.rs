//! `cfdr emulator` as a process: the ready line, persistence across restarts, the demo seed.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

struct Proc {
    child: Child,
    api: String,
    s3: String,
    account: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(args: &[&str]) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cfdr"))
        .args([
            "emulator",
            "--listen",
            "127.0.0.1:0",
            "--s3-listen",
            "127.0.0.1:0",
        ])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("cfdr emulator starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ready line");
    let field = |k: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .unwrap_or_else(|| panic!("no {k} in {line:?}"))
            .to_string()
    };
    assert!(line.starts_with("ready "), "{line:?}");
    Proc {
        api: field("api="),
        s3: field("s3="),
        account: field("account="),
        child,
    }
}

async fn call(p: &Proc, method: &str, path: &str, body: Option<Value>) -> Value {
    let mut req = cfdr::cloudflare::http()
        .build()
        .unwrap()
        .request(
            method.parse().unwrap(),
            format!("{}/accounts/{}{path}", p.api, p.account),
        )
        .bearer_auth(cfdr::emulator::DEFAULT_TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_data_dir_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let bookmark;
    {
        let p = spawn(&["--data-dir", data]);
        assert!(p.s3.starts_with("http://127.0.0.1:"));
        let db = call(
            &p,
            "POST",
            "/d1/database",
            Some(json!({ "name": "persist" })),
        )
        .await["result"]["uuid"]
            .as_str()
            .unwrap()
            .to_string();
        call(
            &p,
            "POST",
            &format!("/d1/database/{db}/query"),
            Some(json!({ "sql": "CREATE TABLE t(x); INSERT INTO t VALUES (42);" })),
        )
        .await;
        bookmark = call(
            &p,
            "GET",
            &format!("/d1/database/{db}/time_travel/bookmark"),
            None,
        )
        .await["result"]["bookmark"]
            .clone();
        let ns = call(
            &p,
            "POST",
            "/storage/kv/namespaces",
            Some(json!({ "title": "KEEP" })),
        )
        .await["result"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        call(
            &p,
            "PUT",
            &format!("/storage/kv/namespaces/{ns}/bulk"),
            Some(json!([{ "key": "k", "value": "v" }])),
        )
        .await;
        call(
            &p,
            "POST",
            "/r2/buckets",
            Some(json!({ "name": "kept-bucket" })),
        )
        .await;
    }
    let p = spawn(&["--data-dir", data]);
    let dbs = call(&p, "GET", "/d1/database", None).await;
    let db = dbs["result"][0]["uuid"]
        .as_str()
        .expect("database kept")
        .to_string();
    let rows = call(
        &p,
        "POST",
        &format!("/d1/database/{db}/query"),
        Some(json!({ "sql": "SELECT x FROM t" })),
    )
    .await;
    assert_eq!(rows["result"][0]["results"], json!([{ "x": 42 }]));
    let again = call(
        &p,
        "GET",
        &format!("/d1/database/{db}/time_travel/bookmark"),
        None,
    )
    .await;
    assert_eq!(again["result"]["bookmark"], bookmark, "history kept");
    let ns = call(&p, "GET", "/storage/kv/namespaces", None).await;
    assert_eq!(ns["result"][0]["title"], "KEEP");
    let buckets = call(&p, "GET", "/r2/buckets", None).await;
    assert_eq!(buckets["result"]["buckets"][0]["name"], "kept-bucket");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_seed_looks_like_a_real_account() {
    let p = spawn(&["--seed", "demo"]);
    let dbs = call(&p, "GET", "/d1/database", None).await;
    let names: Vec<&str> = dbs["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 5, "{names:?}");
    let mut tables = 0;
    for d in dbs["result"].as_array().unwrap() {
        let got = call(
            &p,
            "GET",
            &format!("/d1/database/{}", d["uuid"].as_str().unwrap()),
            None,
        )
        .await;
        tables += got["result"]["num_tables"].as_u64().unwrap();
    }
    assert!(tables >= 24, "dozens of tables: {tables}");
    let ns = call(&p, "GET", "/storage/kv/namespaces", None).await;
    let titles: Vec<&str> = ns["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["title"].as_str().unwrap())
        .collect();
    assert!(
        titles.contains(&"SESSIONS")
            && titles.contains(&"CACHE")
            && titles.contains(&"FEATURE_FLAGS"),
        "{titles:?}"
    );
    let buckets = call(&p, "GET", "/r2/buckets", None).await;
    assert_eq!(buckets["result"]["buckets"].as_array().unwrap().len(), 3);
}

#[test]
fn bad_flags_are_usage_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_cfdr"))
        .args(["emulator", "--account-id", "xyz"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`xyz`") && err.contains("32 hexadecimal"),
        "{err}"
    );
}
