//! `cfdr workers rollback` and `cfdr workers undo` end to end: the binary against the demo
//! account's Workers in the emulator, over HTTP, the Worker probed on the emulator's
//! workers.dev stand-in. Automatic and explicit rollbacks, a split, a gradual rollout in three
//! stages, three Workers with the second failing (10220, never forced without the flag), a
//! refusal across a Durable Object migration with nothing sent, a concurrent deploy caught
//! between stages, undo — each checked through the API, not through cfdr's own report alone.

mod common;

use common::{output, stderr};
use serde_json::{Value, json};

struct Setup {
    api: common::Api,
    _dir: tempfile::TempDir,
    repo: String,
    key: String,
}

impl Setup {
    async fn demo() -> Self {
        let mut config = cfdr::emulator::EmulatorConfig::ephemeral();
        config.seed = Some(cfdr::emulator::Seed::Demo);
        let api = common::start_with(config).await;
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo").display().to_string();
        let s = Self {
            api,
            _dir: dir,
            repo,
            key: "5".repeat(64),
        };
        let o = s.cfdr(&["repo", "init"]).await;
        assert!(o.status.success(), "{}", stderr(&o));
        s
    }

    fn origin(&self) -> String {
        self.api.emu.origin().to_string()
    }

    async fn cfdr(&self, args: &[&str]) -> std::process::Output {
        let mut c = common::cfdr_cmd(&self.api.clone_handle(), &self.repo, &self.key);
        c.env(
            "CFDR_WORKERS_PROBE_URL",
            format!("{}/__workers.dev/{{script}}", self.origin()),
        )
        .args(args)
        .stdin(std::process::Stdio::null());
        output(c).await
    }

    /// A rollback's JSON report (plan and journal), whatever its exit.
    async fn run(&self, args: &[&str]) -> (std::process::Output, Value) {
        let mut a = vec!["workers"];
        a.extend_from_slice(args);
        a.extend(["--json", "--settle", "100ms"]);
        let o = self.cfdr(&a).await;
        let v = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
        (o, v)
    }

    /// The live deployment's (version number, percentage) pairs, through the API.
    async fn live(&self, script: &str) -> Vec<(u64, f64)> {
        let base = format!("/workers/scripts/{script}");
        let versions = self
            .api
            .send("GET", &format!("{base}/versions?deployable=true"), None)
            .await;
        let number = |id: &str| {
            versions.result()["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["id"] == id)
                .map(|v| v["number"].as_u64().unwrap())
                .unwrap()
        };
        let d = self
            .api
            .send("GET", &format!("{base}/deployments"), None)
            .await;
        d.result()["deployments"][0]["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    number(s["version_id"].as_str().unwrap()),
                    s["percentage"].as_f64().unwrap(),
                )
            })
            .collect()
    }

    async fn deployments(&self, script: &str) -> Vec<Value> {
        let path = format!("/workers/scripts/{script}/deployments");
        let d = self.api.send("GET", &path, None).await;
        d.result()["deployments"].as_array().unwrap().clone()
    }
}

fn worker<'a>(report: &'a Value, script: &str) -> &'a Value {
    report["workers"]
        .as_array()
        .unwrap_or_else(|| panic!("a report: {report}"))
        .iter()
        .find(|w| w["script"] == script)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn automatic_rollback_is_verified_probed_and_undone_in_eight_requests() {
    let s = Setup::demo().await;
    assert_eq!(s.live("api-gateway").await, [(3, 100.0)]);
    s.api.control("POST", "/__emulator/stats/reset", None).await;
    let (o, r) = s.run(&["rollback", "api-gateway", "--yes"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(s.live("api-gateway").await, [(2, 100.0)], "v1.8.1 back");
    let w = worker(&r, "api-gateway");
    assert_eq!(w["state"], "rolled-back");
    assert_eq!(w["before"][0]["number"], 3, "the undo: what was live");
    let checks: Vec<&str> = w["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(checks[0].starts_with("read back: deployment"), "{checks:?}");
    assert!(
        checks[1].starts_with("read again after 100ms"),
        "{checks:?}"
    );
    assert!(
        checks[2].contains("10 requests answered by v2 (10);"),
        "{checks:?}"
    );
    assert_eq!(r["plan"]["workers"][0]["how"], "automatic");
    assert!(
        r["requests"].as_u64().unwrap() <= 8,
        "requests: {}",
        r["requests"]
    );
    assert_eq!(
        s.api.writes().await,
        1,
        "one deployment, nothing else written"
    );
    // The deployment names the run; the audit trail has it.
    let run = r["plan"]["run"].as_str().unwrap().to_string();
    let newest = &s.deployments("api-gateway").await[0];
    assert!(
        newest["annotations"]["workers/message"]
            .as_str()
            .unwrap()
            .contains(&run)
    );
    let audit = s.cfdr(&["audit", "--json"]).await;
    let audit = String::from_utf8_lossy(&audit.stdout);
    assert!(
        audit.contains("worker-rollback") && audit.contains(&run),
        "{audit}"
    );

    // Undo: v3 back, verified; a second undo is refused.
    let (o, u) = s.run(&["undo", &run, "--yes"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(s.live("api-gateway").await, [(3, 100.0)]);
    assert_eq!(u["plan"]["undo_of"], run.as_str());
    let (o, _) = s.run(&["undo", &run, "--yes"]).await;
    assert!(!o.status.success());
    assert!(stderr(&o).contains("undone already"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn explicit_split_and_a_gradual_rollout_in_three_stages() {
    let s = Setup::demo().await;
    // Explicit, by number.
    let (o, _) = s
        .run(&["rollback", "api-gateway", "--to", "v1", "--yes"])
        .await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(s.live("api-gateway").await, [(1, 100.0)]);
    // A split between two versions.
    let (o, r) = s
        .run(&["rollback", "api-gateway", "--split", "v2=70,v3", "--yes"])
        .await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(s.live("api-gateway").await, [(2, 70.0), (3, 30.0)]);
    assert_eq!(r["plan"]["workers"][0]["how"], "split");
    // Unpinned requests land at random (70/30), so ten may all reach one version; what must
    // hold is that only v2 and v3 answered, ten in all, and each answered when pinned.
    let probe = worker(&r, "api-gateway")["checks"][2].as_str().unwrap();
    let answered: Vec<(&str, u32)> = probe
        .strip_prefix("probe: 10 requests answered by ")
        .and_then(|rest| rest.strip_suffix("; each version answered when pinned"))
        .unwrap_or_else(|| panic!("the probe's check: {probe}"))
        .split(" and ")
        .map(|v| {
            let (name, n) = v.split_once(" (").unwrap();
            (name, n.trim_end_matches(')').parse().unwrap())
        })
        .collect();
    assert!(
        answered.iter().all(|(v, _)| ["v2", "v3"].contains(v)),
        "{probe}"
    );
    assert_eq!(answered.iter().map(|(_, n)| n).sum::<u32>(), 10, "{probe}");
    // Gradual: 10, 50, 100 % on v1, each stage its own verified deployment.
    let before = s.deployments("api-gateway").await.len();
    let (o, r) = s
        .run(&[
            "rollback",
            "api-gateway",
            "--to",
            "v1",
            "--steps",
            "10,50,100",
            "--wait",
            "200ms",
            "--yes",
        ])
        .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let w = worker(&r, "api-gateway");
    assert_eq!(w["made"].as_array().unwrap().len(), 3);
    let d = s.deployments("api-gateway").await;
    assert_eq!(d.len(), (before + 3).min(10));
    let split = |d: &Value| {
        d["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["percentage"].as_f64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        (split(&d[2]), split(&d[1]), split(&d[0])),
        (vec![90.0, 10.0], vec![50.0, 50.0], vec![100.0])
    );
    assert_eq!(s.live("api-gateway").await, [(1, 100.0)]);
    let checks = w["checks"].as_array().unwrap();
    assert!(
        checks.iter().any(|c| c
            .as_str()
            .unwrap()
            .starts_with("stage 1 of 3: after the wait")),
        "{checks:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn three_workers_stop_at_the_second_and_a_10220_is_forced_only_when_asked() {
    let s = Setup::demo().await;
    let auth_before = s.deployments("auth-worker").await;
    let cron_before = s.live("cron-jobs").await;
    let (o, r) = s
        .run(&[
            "rollback",
            "--workers",
            "api-gateway,auth-worker,cron-jobs",
            "--yes",
        ])
        .await;
    assert!(!o.status.success(), "the run is partial");
    assert_eq!(r["outcome"], "partial");
    assert_eq!(worker(&r, "api-gateway")["state"], "rolled-back");
    let auth = worker(&r, "auth-worker");
    assert_eq!(auth["state"], "failed");
    let why = auth["error"].as_str().unwrap();
    assert!(
        why.contains("10220") && why.contains("JWT_SECRET") && why.contains("--force-secrets"),
        "{why}"
    );
    assert_eq!(worker(&r, "cron-jobs")["state"], "untouched");
    // Through the API: the first rolled back, the second and third as they were.
    assert_eq!(s.live("api-gateway").await, [(2, 100.0)]);
    assert_eq!(
        s.deployments("auth-worker").await,
        auth_before,
        "never forced"
    );
    assert_eq!(s.live("cron-jobs").await, cron_before);
    let text = s
        .cfdr(&[
            "workers",
            "undo",
            r["plan"]["run"].as_str().unwrap(),
            "--yes",
            "--settle",
            "0s",
        ])
        .await;
    assert!(text.status.success(), "{}", stderr(&text));
    assert_eq!(
        s.live("api-gateway").await,
        [(3, 100.0)],
        "undo restores each"
    );

    // With the operator's word, the older secret comes back.
    let (o, r) = s
        .run(&["rollback", "auth-worker", "--force-secrets", "--yes"])
        .await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(worker(&r, "auth-worker")["forced"], true);
    assert_eq!(s.live("auth-worker").await, [(2, 100.0)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_durable_object_migration_refuses_and_dry_runs_send_nothing() {
    let s = Setup::demo().await;
    s.api.control("POST", "/__emulator/stats/reset", None).await;
    let (o, _) = s.run(&["rollback", "chat-rooms", "--yes"]).await;
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("REFUSED") && e.contains("Durable Object migration"),
        "{e}"
    );
    // The plan for cron-jobs ends its rollout; a dry run shows it and writes nothing.
    let o = s
        .cfdr(&["workers", "rollback", "cron-jobs", "--dry-run"])
        .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let plan = String::from_utf8_lossy(&o.stdout);
    assert!(
        plan.contains("live:   v1 90 % · v2 10 %") && plan.contains("target: v1 100 %"),
        "{plan}"
    );
    assert!(
        plan.contains("queue nightly-jobs") || plan.contains("Untouched: data in KV"),
        "{plan}"
    );
    assert_eq!(
        s.api.writes().await,
        0,
        "refused and dry runs send no write"
    );
    // Without a terminal, no --yes: nothing deployed.
    let o = s.cfdr(&["workers", "rollback", "api-gateway"]).await;
    assert!(
        !o.status.success() && stderr(&o).contains("--yes"),
        "{}",
        stderr(&o)
    );
    assert_eq!(s.api.writes().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deploy_during_the_wait_stops_the_rollout_and_undo_is_offered() {
    let s = Setup::demo().await;
    let handle = s.api.clone_handle();
    let origin = s.origin();
    let token = handle.emu.token.clone();
    // Someone deploys a hotfix a moment after the first stage lands.
    let meddler = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        cfdr::cloudflare::http()
            .build()
            .unwrap()
            .post(format!("{origin}/__emulator/workers/api-gateway/versions"))
            .bearer_auth(token)
            .json(&json!({ "triggered_by": "upload", "message": "hotfix" }))
            .send()
            .await
            .unwrap();
    });
    let (o, r) = s
        .run(&[
            "rollback",
            "api-gateway",
            "--steps",
            "10,100",
            "--wait",
            "3s",
            "--yes",
        ])
        .await;
    meddler.await.unwrap();
    assert!(!o.status.success());
    let w = worker(&r, "api-gateway");
    assert_eq!(w["state"], "stopped", "{w}");
    assert!(
        w["error"].as_str().unwrap().contains("no longer live"),
        "{w}"
    );
    assert_eq!(
        w["made"].as_array().unwrap().len(),
        1,
        "the second stage was not sent"
    );
    assert_eq!(
        s.live("api-gateway").await,
        [(4, 100.0)],
        "the hotfix stands"
    );
    // The undo would overwrite the hotfix: refused, naming why.
    let (o, _) = s
        .run(&["undo", r["plan"]["run"].as_str().unwrap(), "--yes"])
        .await;
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("someone deployed since"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_is_sent_once_and_a_lost_answer_is_read_back() {
    let s = Setup::demo().await;
    let count = |d: &Vec<Value>| d.len();
    // The answer is lost after the deployment landed: read back, it is there — once.
    let before = count(&s.deployments("api-gateway").await);
    s.api
        .control(
            "POST",
            "/__emulator/faults",
            Some(
                json!({ "truncate_rate": 1.0, "method": "POST", "path_contains": "/deployments" }),
            ),
        )
        .await;
    let (o, r) = s.run(&["rollback", "api-gateway", "--yes"]).await;
    s.api
        .control("POST", "/__emulator/faults", Some(json!({})))
        .await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("read back, it landed"),
        "{}",
        stderr(&o)
    );
    assert_eq!(worker(&r, "api-gateway")["state"], "rolled-back");
    assert_eq!(
        count(&s.deployments("api-gateway").await),
        before + 1,
        "not sent twice"
    );
    assert_eq!(s.live("api-gateway").await, [(2, 100.0)]);
    // The request is dropped before it lands: nothing changed, and the run says so.
    s.api
        .control(
            "POST",
            "/__emulator/faults",
            Some(json!({ "drop_rate": 1.0, "method": "POST", "path_contains": "/deployments" })),
        )
        .await;
    let (o, r) = s
        .run(&["rollback", "api-gateway", "--to", "v1", "--yes"])
        .await;
    s.api
        .control("POST", "/__emulator/faults", Some(json!({})))
        .await;
    assert!(!o.status.success());
    let w = worker(&r, "api-gateway");
    assert_eq!(w["state"], "failed");
    assert!(w["error"].as_str().unwrap().contains("did not land"), "{w}");
    assert_eq!(count(&s.deployments("api-gateway").await), before + 1);
    assert_eq!(s.live("api-gateway").await, [(2, 100.0)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_rollback_playbook_runs_headless_and_never_forces_on_its_own() {
    let s = Setup::demo().await;
    let run = |params: Vec<&'static str>, extra: Vec<&'static str>| {
        let mut a = vec!["playbook", "run", "worker-rollback"];
        for p in params {
            a.extend(["--param", p]);
        }
        a.extend(extra);
        a
    };
    // The dry run shows the plan and writes nothing.
    s.api.control("POST", "/__emulator/stats/reset", None).await;
    let o = s
        .cfdr(&run(vec!["worker=cron-jobs"], vec!["--dry-run"]))
        .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("plan: Worker `cron-jobs` v1 90 % · v2 10 % → v1 100 %"),
        "{text}"
    );
    assert_eq!(s.api.writes().await, 0);
    // A mistake in a parameter is said before anything runs.
    let o = s
        .cfdr(&run(
            vec!["worker=cron-jobs", "steps=10,half"],
            vec!["--yes"],
        ))
        .await;
    assert!(
        !o.status.success() && stderr(&o).contains("`half` is not a percentage"),
        "{}",
        stderr(&o)
    );
    // The gradual rollout ended: v1 back at 100 %, verified, probed.
    let o = s
        .cfdr(&run(vec!["worker=cron-jobs"], vec!["--yes", "--json"]))
        .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["outcome"], "success");
    let note = r["run"]["steps"][2]["items"][0]["note"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        note.contains("v1 90 % · v2 10 % → v1 100 % live, verified") && note.contains("probe"),
        "{r}"
    );
    assert_eq!(s.live("cron-jobs").await, [(1, 100.0)]);
    // auth-worker: Cloudflare asks for force; without force_secrets=yes the run fails there.
    let before = s.deployments("auth-worker").await;
    let o = s
        .cfdr(&run(vec!["worker=auth-worker"], vec!["--yes", "--json"]))
        .await;
    assert!(!o.status.success());
    let r: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    assert_eq!(r["outcome"], "failed", "{r}");
    assert!(r.to_string().contains("10220"), "{r}");
    assert_eq!(s.deployments("auth-worker").await, before, "nothing forced");
    let o = s
        .cfdr(&run(
            vec!["worker=auth-worker", "force_secrets=yes"],
            vec!["--yes"],
        ))
        .await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(s.live("auth-worker").await, [(2, 100.0)]);
}

impl Setup {
    /// `cfdr workers rollback …` started, not waited for (a test kills it).
    fn spawn(&self, args: &[&str]) -> std::process::Child {
        let mut c = common::cfdr_cmd(&self.api.clone_handle(), &self.repo, &self.key);
        c.env(
            "CFDR_WORKERS_PROBE_URL",
            format!("{}/__workers.dev/{{script}}", self.origin()),
        )
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
        c.spawn().unwrap()
    }

    /// Waits until the live deployment's message contains `what`; the message.
    async fn live_message(&self, script: &str, what: &str) -> String {
        for _ in 0..300 {
            let d = self.deployments(script).await;
            let m = d[0]["annotations"]["workers/message"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if m.contains(what) {
                return m;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("no live deployment of {script} says {what:?}");
    }

    /// The deployments whose message names run `run`.
    async fn made_by(&self, script: &str, run: &str) -> Vec<String> {
        self.deployments(script)
            .await
            .iter()
            .filter_map(|d| d["annotations"]["workers/message"].as_str())
            .filter(|m| m.contains(run))
            .map(str::to_string)
            .collect()
    }
}

/// `cfdr rollback run <id> …`: the run's id.
fn run_of(message: &str) -> String {
    message.split_whitespace().nth(3).unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_killed_between_stages_resumes_without_sending_a_stage_twice() {
    let s = Setup::demo().await;
    let mut child = s.spawn(&[
        "workers",
        "rollback",
        "api-gateway",
        "--to",
        "v1",
        "--steps",
        "10,50,100",
        "--wait",
        "3s",
        "--settle",
        "100ms",
        "--yes",
    ]);
    let m = s.live_message("api-gateway", "(stage 1 of 3)").await;
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    child.kill().unwrap(); // SIGKILL, inside the wait before stage 2
    child.wait().unwrap();
    let run = run_of(&m);
    assert_eq!(s.made_by("api-gateway", &run).await.len(), 1);
    let (o, r) = s.run(&["resume", &run, "--wait", "0s"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let w = worker(&r, "api-gateway");
    assert_eq!(w["state"], "rolled-back");
    assert_eq!(w["made"].as_array().unwrap().len(), 3);
    let mine = s.made_by("api-gateway", &run).await;
    assert_eq!(mine.len(), 3, "each stage deployed once: {mine:?}");
    for k in 1..=3 {
        assert_eq!(
            mine.iter()
                .filter(|m| m.contains(&format!("(stage {k} of 3)")))
                .count(),
            1
        );
    }
    assert_eq!(s.live("api-gateway").await, [(1, 100.0)]);
    // A second resume reports the finished run and sends nothing.
    let before = s.api.writes().await;
    let (o, _) = s.run(&["resume", &run]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(s.api.writes().await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_killed_while_its_deployment_is_in_flight_resumes_and_sends_it_once() {
    let s = Setup::demo().await;
    // The POST hangs for 3 s before Cloudflare acts on it; the run is killed meanwhile.
    s.api
        .control(
            "POST",
            "/__emulator/faults",
            Some(json!({ "latency_ms": 3000, "method": "POST", "path_contains": "/deployments" })),
        )
        .await;
    let before = s.deployments("api-gateway").await.len();
    let mut child = s.spawn(&[
        "workers",
        "rollback",
        "api-gateway",
        "--yes",
        "--settle",
        "100ms",
    ]);
    // Its journal is written before the deployment is sent (sealed: only its folder is seen);
    // a second later the POST is in flight.
    let runs = std::path::Path::new(&s.repo).join("runs");
    let mut folder = None;
    for _ in 0..200 {
        folder = std::fs::read_dir(&runs)
            .ok()
            .and_then(|mut d| d.next())
            .map(|e| e.unwrap().path());
        if folder.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let folder = folder.expect("the run's folder");
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    s.api
        .control("POST", "/__emulator/faults", Some(json!({})))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    let run = folder.file_name().unwrap().to_str().unwrap().to_string();
    let landed = s.made_by("api-gateway", &run).await.len();
    eprintln!("deployments of the killed run that landed: {landed}");
    let (o, r) = s.run(&["resume", &run]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(worker(&r, "api-gateway")["state"], "rolled-back");
    assert_eq!(
        s.made_by("api-gateway", &run).await.len(),
        1,
        "landed before the kill: {landed}; sent once in all"
    );
    assert_eq!(s.deployments("api-gateway").await.len(), before + 1);
    assert_eq!(s.live("api-gateway").await, [(2, 100.0)]);
}
