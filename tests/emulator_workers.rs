//! Workers in the emulator, as `shared/cloudflare-api/WORKERS.md` section 11 asks: versions
//! newest first with per-script numbers, `deployable=true` the newest 100 in one answer whatever
//! the page, deployments newest first and at most 10, a deployment of one or two versions
//! summing to 100 within the newest 100 of this script, 10220 across a secret change unless
//! `force=true`, messages cut at 1,000 bytes, the latest deployment kept from deletion, 10007
//! for an unknown Worker, a rollback across a Durable Object migration or onto a binding whose
//! KV namespace or R2 bucket is gone refused; the workers.dev stand-in answering with the version
//! the live split picks (pinned by `Cloudflare-Workers-Version-Overrides`, sticky by
//! `Cloudflare-Workers-Version-Key`); and the demo's Workers with their history.

mod common;

use serde_json::{Value, json};

async fn upload(api: &common::Api, script: &str, body: Value) -> Value {
    api.control(
        "POST",
        &format!("/__emulator/workers/{script}/versions"),
        Some(body),
    )
    .await
}

fn deploy(versions: &[(&str, f64)]) -> Value {
    json!({ "strategy": "percentage",
        "versions": versions.iter().map(|(v, p)| json!({ "version_id": v, "percentage": p })).collect::<Vec<_>>() })
}

#[tokio::test(flavor = "multi_thread")]
async fn deployments_follow_workers_rules() {
    let api = common::start().await;
    let mut ids = Vec::new();
    for i in 0..105 {
        let kind = if i % 2 == 0 {
            "upload"
        } else {
            "version_upload"
        };
        let v = upload(
            &api,
            "big",
            json!({ "triggered_by": kind, "secrets": { "API_KEY": "k" } }),
        )
        .await;
        ids.push(v["version"]["id"].as_str().unwrap().to_string());
    }
    // Versions: newest first, numbered per script; paging; deployable ignores the page.
    let page = |q: &str| {
        let api = &api;
        let q = q.to_string();
        async move {
            api.send("GET", &format!("/workers/scripts/big/versions{q}"), None)
                .await
                .result()["items"]
                .clone()
        }
    };
    let first = page("?per_page=5").await;
    assert_eq!(first[0]["number"], 105);
    assert_eq!(first[0]["id"], ids[104].as_str());
    assert_eq!(first.as_array().unwrap().len(), 5);
    assert_eq!(page("?page=3&per_page=5").await[0]["number"], 95);
    for q in ["?deployable=true", "?deployable=true&page=2&per_page=5"] {
        let d = page(q).await;
        assert_eq!(
            d.as_array().unwrap().len(),
            100,
            "{q}: every deployable one, once"
        );
        assert_eq!(d[99]["number"], 6);
    }
    assert_eq!(
        page("?per_page=5").await[1]["annotations"]["workers/triggered_by"],
        "version_upload"
    );

    // Deployments: newest first, at most 10.
    let deployments = api
        .send("GET", "/workers/scripts/big/deployments", None)
        .await
        .result();
    let list = deployments["deployments"].as_array().unwrap();
    assert_eq!(list.len(), 10, "53 deployments made, the newest 10 listed");
    assert_eq!(list[0]["versions"][0]["version_id"], ids[104].as_str());

    // The rules of a new deployment.
    let post = |body: Value, q: &'static str| {
        let api = &api;
        async move {
            api.send(
                "POST",
                &format!("/workers/scripts/big/deployments{q}"),
                Some(body),
            )
            .await
        }
    };
    for (body, code) in [
        (deploy(&[(&ids[104], 60.0)]), 10021),
        (
            deploy(&[(&ids[104], 50.0), (&ids[103], 30.0), (&ids[102], 20.0)]),
            10021,
        ),
        (deploy(&[]), 10021),
        (deploy(&[(&ids[2], 100.0)]), 10021),
        (
            deploy(&[("00000000-0000-4000-8000-000000000000", 100.0)]),
            10007,
        ),
        (
            json!({ "strategy": "linear", "versions": [{ "version_id": ids[104], "percentage": 100 }] }),
            10021,
        ),
    ] {
        let r = post(body.clone(), "").await;
        assert_eq!(
            (r.status >= 400, r.error_code()),
            (true, code),
            "{body}: {}",
            String::from_utf8_lossy(&r.bytes)
        );
    }
    let split = post(deploy(&[(&ids[104], 90.0), (&ids[103], 10.0)]), "").await;
    assert_eq!(split.status, 200);
    assert_eq!(split.result()["versions"][1]["percentage"], 10.0);
    assert_eq!(
        split.result()["annotations"]["workers/triggered_by"],
        "deployment"
    );
    let long = "é".repeat(700);
    let mut body = deploy(&[(&ids[10], 100.0)]);
    body["annotations"] = json!({ "workers/message": long, "workers/triggered_by": "forged" });
    let r = post(body, "").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.result()["annotations"]["workers/message"]
            .as_str()
            .unwrap()
            .len(),
        1000
    );
    assert_eq!(
        r.result()["annotations"]["workers/triggered_by"],
        "deployment",
        "set by the server"
    );
    let live = api
        .send("GET", "/workers/scripts/big/deployments", None)
        .await
        .result()["deployments"][0]
        .clone();
    assert_eq!(live["id"], r.result()["id"], "the new deployment is live");

    // The latest deployment stays; an older one goes.
    let latest = live["id"].as_str().unwrap();
    let r = api
        .send(
            "DELETE",
            &format!("/workers/scripts/big/deployments/{latest}"),
            None,
        )
        .await;
    assert_eq!((r.status, r.error_code()), (400, 10021));
    let older = split.result()["id"].as_str().unwrap().to_string();
    let r = api
        .send(
            "DELETE",
            &format!("/workers/scripts/big/deployments/{older}"),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    let r = api
        .send("GET", "/workers/scripts/missing/deployments", None)
        .await;
    assert_eq!((r.status, r.error_code()), (404, 10007));
    assert!(
        String::from_utf8_lossy(&r.bytes).contains("This Worker does not exist on your account.")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_across_a_secret_change_needs_force() {
    let api = common::start().await;
    let v1 = upload(
        &api,
        "auth",
        json!({ "secrets": { "JWT": "old", "API": "same" } }),
    )
    .await;
    let v1 = v1["version"]["id"].as_str().unwrap().to_string();
    upload(
        &api,
        "auth",
        json!({ "triggered_by": "secret", "secrets": { "JWT": "new", "API": "same" } }),
    )
    .await;
    let refused = api
        .send(
            "POST",
            "/workers/scripts/auth/deployments",
            Some(deploy(&[(&v1, 100.0)])),
        )
        .await;
    assert_eq!((refused.status, refused.error_code()), (400, 10220));
    let text = String::from_utf8_lossy(&refused.bytes);
    assert!(
        text.contains("The following secrets have changed: JWT.") && !text.contains("old"),
        "{text}"
    );
    let forced = api
        .send(
            "POST",
            "/workers/scripts/auth/deployments?force=true",
            Some(deploy(&[(&v1, 100.0)])),
        )
        .await;
    assert_eq!(
        forced.status,
        200,
        "{}",
        String::from_utf8_lossy(&forced.bytes)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rollbacks_across_a_migration_or_onto_a_lost_resource_are_refused() {
    let api = common::start().await;
    let ns = api.kv_create("SESSIONS").await;
    let id = |v: &Value| v["version"]["id"].as_str().unwrap().to_string();
    let kv = json!([{ "type": "kv_namespace", "name": "S", "namespace_id": ns }]);
    let v1 = id(&upload(
        &api,
        "rooms",
        json!({ "migration_tag": "v1", "bindings": kv }),
    )
    .await);
    upload(
        &api,
        "rooms",
        json!({ "migration_tag": "v2", "bindings": kv }),
    )
    .await;
    let refused = api
        .send(
            "POST",
            "/workers/scripts/rooms/deployments",
            Some(deploy(&[(&v1, 100.0)])),
        )
        .await;
    assert_eq!((refused.status, refused.error_code()), (400, 10021));
    assert!(String::from_utf8_lossy(&refused.bytes).contains("Durable Object migration"));
    // The namespace an older version binds to is deleted: that version cannot come back.
    let gone = api.kv_create("GONE").await;
    let old = id(&upload(
        &api,
        "api",
        json!({ "bindings": [{ "type": "kv_namespace", "name": "S", "namespace_id": gone }] }),
    )
    .await);
    upload(&api, "api", json!({ "bindings": kv })).await;
    api.send("DELETE", &format!("/storage/kv/namespaces/{gone}"), None)
        .await;
    let refused = api
        .send(
            "POST",
            "/workers/scripts/api/deployments",
            Some(deploy(&[(&old, 100.0)])),
        )
        .await;
    assert_eq!((refused.status, refused.error_code()), (400, 10021));
    let text = String::from_utf8_lossy(&refused.bytes);
    assert!(
        text.contains(&gone) && text.contains("no longer exists"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_answers_with_the_version_its_split_picks() {
    let api = common::start().await;
    let id = |v: &Value| v["version"]["id"].as_str().unwrap().to_string();
    let a = id(&upload(&api, "web", json!({})).await);
    let b = id(&upload(&api, "web", json!({ "triggered_by": "version_upload" })).await);
    let made = api
        .send(
            "POST",
            "/workers/scripts/web/deployments",
            Some(deploy(&[(&a, 80.0), (&b, 20.0)])),
        )
        .await;
    assert_eq!(made.status, 200);
    let url = format!("{}/__workers.dev/web/any/path", api.emu.origin());
    let http = cfdr::cloudflare::http().build().unwrap();
    let ask = |h: Option<(&'static str, String)>| {
        let mut r = http.get(&url);
        if let Some((k, v)) = h {
            r = r.header(k, v);
        }
        async move {
            r.send().await.unwrap().json::<Value>().await.unwrap()["version_id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let mut on_b = 0;
    for _ in 0..400 {
        if ask(None).await == b {
            on_b += 1;
        }
    }
    assert!((40..=120).contains(&on_b), "about 20 % of 400 on b: {on_b}");
    let pin = format!("web=\"{b}\"");
    for _ in 0..5 {
        assert_eq!(
            ask(Some(("Cloudflare-Workers-Version-Overrides", pin.clone()))).await,
            b
        );
    }
    let sticky = ask(Some(("Cloudflare-Workers-Version-Key", "user-42".into()))).await;
    for _ in 0..5 {
        assert_eq!(
            ask(Some(("Cloudflare-Workers-Version-Key", "user-42".into()))).await,
            sticky
        );
    }
    let none = http
        .get(format!("{}/__workers.dev/nope", api.emu.origin()))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_has_workers_to_roll_back() {
    let mut config = cfdr::emulator::EmulatorConfig::ephemeral();
    config.seed = Some(cfdr::emulator::Seed::Demo);
    let api = common::start_with(config).await;
    let scripts: Vec<String> = api
        .send("GET", "/workers/scripts", None)
        .await
        .result()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        scripts,
        ["api-gateway", "auth-worker", "chat-rooms", "cron-jobs"]
    );
    let live = |script: &str| {
        let api = &api;
        let script = script.to_string();
        async move {
            api.send(
                "GET",
                &format!("/workers/scripts/{script}/deployments"),
                None,
            )
            .await
            .result()["deployments"][0]
                .clone()
        }
    };
    assert_eq!(
        live("cron-jobs").await["versions"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "a gradual rollout"
    );
    let api_live = live("api-gateway").await;
    let detail = api
        .send(
            "GET",
            &format!(
                "/workers/scripts/api-gateway/versions/{}",
                api_live["versions"][0]["version_id"].as_str().unwrap()
            ),
            None,
        )
        .await
        .result();
    assert_eq!(
        detail["annotations"]["workers/message"],
        "v1.9.0: new rate limiter"
    );
    let kv = detail["resources"]["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "SESSIONS")
        .unwrap()["namespace_id"]
        .as_str()
        .unwrap()
        .to_string();
    let namespaces = api
        .send("GET", "/storage/kv/namespaces?per_page=100", None)
        .await
        .result();
    assert!(
        namespaces
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["id"] == kv.as_str()),
        "bound to the demo's own namespace"
    );
    let auth = live("auth-worker").await;
    assert_eq!(auth["annotations"]["workers/triggered_by"], "secret");
}
