//! `cfdr workers list | versions | deployments` against the demo account's Workers, through the
//! binary and the emulator's HTTP API: what is live on each (a gradual rollout's two shares),
//! the deployable versions with the live one marked, the deployments newest first — and not
//! one write sent.

mod common;

use common::{output, stderr};
use serde_json::Value;

async fn workers(api: &common::Api, args: &[&str]) -> Value {
    let mut c = common::cfdr_cmd(&api.clone_handle(), "/nonexistent-repo", &"0".repeat(64));
    c.arg("workers").args(args).arg("--json");
    let out = output(c).await;
    assert!(
        out.status.success(),
        "cfdr workers {args:?}: {}",
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_workers_live_versions_and_deployments_read_without_a_write() {
    let mut config = cfdr::emulator::EmulatorConfig::ephemeral();
    config.seed = Some(cfdr::emulator::Seed::Demo);
    let api = common::start_with(config).await;
    api.control("POST", "/__emulator/stats/reset", None).await;

    let list = workers(&api, &["list"]).await;
    let row = |name: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {list}"))
            .clone()
    };
    let cron = row("cron-jobs");
    let shares: Vec<(u64, f64)> = cron["live"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["number"].as_u64().unwrap(),
                s["percentage"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(shares, [(1, 90.0), (2, 10.0)], "the rollout in progress");
    let gateway = row("api-gateway");
    assert_eq!(gateway["live"][0]["number"], 3);
    assert_eq!(gateway["triggered_by"], "upload");
    assert_eq!(row("auth-worker")["triggered_by"], "secret");

    let versions = workers(&api, &["versions", "api-gateway"]).await;
    let v = versions.as_array().unwrap();
    assert_eq!(
        v.iter()
            .map(|v| v["number"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [3, 2, 1],
        "newest first"
    );
    assert_eq!(v[0]["live_percentage"], 100.0);
    assert!(v[1]["live_percentage"].is_null());
    assert_eq!(v[1]["message"], "v1.8.1: fix the invoice total");

    let deployments = workers(&api, &["deployments", "api-gateway"]).await;
    let d = deployments.as_array().unwrap();
    assert_eq!(d.len(), 3);
    assert_eq!(
        (d[0]["live"].clone(), d[1]["live"].clone()),
        (true.into(), false.into())
    );
    assert_eq!(d[0]["versions"][0]["number"], 3);
    assert!(d[0]["created_on"].as_str() > d[1]["created_on"].as_str());

    // The table names the split too.
    let mut c = common::cfdr_cmd(&api.clone_handle(), "/nonexistent-repo", &"0".repeat(64));
    c.args(["workers", "list"]);
    let table = String::from_utf8(output(c).await.stdout).unwrap();
    assert!(table.contains("v1 90 % · v2 10 %"), "{table}");

    assert_eq!(api.writes().await, 0, "reading Workers sends no write");
    let unknown = {
        let mut c = common::cfdr_cmd(&api.clone_handle(), "/nonexistent-repo", &"0".repeat(64));
        c.args(["workers", "versions", "nope"]);
        output(c).await
    };
    assert_ne!(unknown.status.code(), Some(0));
    assert!(
        stderr(&unknown).contains("This Worker does not exist on your account"),
        "{}",
        stderr(&unknown)
    );
}
