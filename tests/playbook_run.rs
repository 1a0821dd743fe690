//! Playbook runs through the binary against the local Cloudflare over HTTP: every built-in
//! headless on the demo account (and its dry run with zero writes counted by the emulator),
//! a run stopped for an approval and resumed, a run SIGKILLed mid-step and resumed from its
//! journal with the target exact, a failed step retried from that step, and parameter
//! mistakes refused before anything runs.

mod common;

use cfdr::emulator::{EmulatorConfig, Seed};
use common::{Api, output, stderr};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

const KEY: &str = "5e1c3a7b9d2f4e6a8c0b1d3f5a7c9e2b4d6f8a0c1e3b5d7f9a2c4e6b8d0f1a3c";

fn cfdr(api: &Api, repo: &str, args: &[&str]) -> std::process::Command {
    common::restore_cmd(api, repo, KEY, args)
}

async fn ok_json(api: &Api, repo: &str, args: &[&str]) -> Value {
    common::restore_json(api, repo, KEY, args).await
}

/// The demo account, backed up once, and a SQLite file backed up beside it.
async fn demo(tmp: &std::path::Path) -> (Api, String, String) {
    let api = common::start_with(EmulatorConfig {
        seed: Some(Seed::Demo),
        ..EmulatorConfig::ephemeral()
    })
    .await;
    api.unlimited().await;
    let repo = tmp.join("repo").to_str().unwrap().to_string();
    let db = tmp.join("app.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
         INSERT INTO notes (body) VALUES ('one'), ('two'), ('three');",
    )
    .unwrap();
    drop(conn);
    let db = db.to_str().unwrap().to_string();
    assert!(
        output(cfdr(&api, &repo, &["repo", "init"]))
            .await
            .status
            .success()
    );
    let all = output(cfdr(&api, &repo, &["backup", "--all"])).await;
    assert!(all.status.success(), "{}", stderr(&all));
    let one = output(cfdr(
        &api,
        &repo,
        &["backup", "sqlite", &db, "--name", "app"],
    ))
    .await;
    assert!(one.status.success(), "{}", stderr(&one));
    (api, repo, db)
}

/// What a test gives each built-in: its parameters and answers.
fn args_for(id: &str, db: &str, before: &str) -> Vec<String> {
    let p = |pairs: &[&str]| -> Vec<String> {
        pairs
            .iter()
            .flat_map(|kv| ["--param".to_string(), kv.to_string()])
            .collect()
    };
    match id {
        "d1-recovery" => p(&["database=support-portal"]),
        "kv-recovery" => p(&["namespace=CACHE"]),
        "r2-recovery" => p(&["bucket=evidence"]),
        "sqlite-recovery" => p(&[&format!("file={db}")]),
        "disaster-recovery" => {
            let mut a = p(&["components=d1", "incident=INC-7"]);
            a.extend(["--approver".into(), "alice".into()]);
            a
        }
        "data-corruption" => {
            let mut a = p(&["database=tasks-prod", &format!("before={before}")]);
            a.extend(["--approver".into(), "bob".into()]);
            a
        }
        "partial-failure" => p(&["broken=CACHE", "healthy=kv"]),
        "quarterly-drill" => p(&["components=kv,r2", "facilitator=carol"]),
        "worker-rollback" => p(&["worker=api-gateway"]),
        other => panic!("a built-in playbook the test does not know: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_built_in_runs_headless_on_the_demo_account_and_its_dry_run_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (api, repo, db) = demo(tmp.path()).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let before = cfdr::repo::manifest::rfc3339(time::OffsetDateTime::now_utc());
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    for (file, _) in cfdr::playbook::library::BUILT_IN {
        let id = file.trim_end_matches(".toml");
        let extra = args_for(id, &db, &before);
        let mut args: Vec<&str> = vec!["playbook", "run", id];
        args.extend(extra.iter().map(String::as_str));

        api.control("POST", "/__emulator/stats/reset", None).await;
        let mut dry = args.clone();
        dry.extend(["--dry-run", "--json"]);
        let plan = ok_json(&api, &repo, &dry).await;
        assert_eq!(plan["dry_run"], true);
        let would = plan["would"].as_array().unwrap();
        assert!(
            would.len() >= plan["run"]["steps"].as_array().unwrap().len(),
            "{id}: every step says what it would do: {plan}"
        );
        assert_eq!(
            api.stats().await["writes"],
            0,
            "{id}: the dry run wrote nothing to Cloudflare"
        );

        let mut real = args.clone();
        real.extend(["--yes", "--json"]);
        let out = output(cfdr(&api, &repo, &real)).await;
        let r: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        assert!(out.status.success(), "{id}: {}\n{r}", stderr(&out));
        assert_eq!(r["outcome"], "success", "{id}: {r}");
        let steps = r["run"]["steps"].as_array().unwrap();
        for s in steps {
            for i in s["items"].as_array().unwrap() {
                let state = i["state"].as_str().unwrap();
                assert!(state == "done" || state == "skipped", "{id}: {i}");
                if state == "skipped" {
                    let kind = s["kind"].as_str().unwrap();
                    assert!(
                        kind == "manual" || kind == "notify" || kind == "snapshot",
                        "{id}: only checklists, messages without a webhook and snapshots of nothing are skipped: {i}"
                    );
                }
            }
        }
        if steps.iter().any(|s| s["kind"] == "restore") {
            let m = &r["measures"];
            assert!(m["rto_secs"].as_f64().unwrap() > 0.0, "{id}: {m}");
            assert_eq!(m["rto_met"], true, "{id}: {m}");
            assert!(m["rpo_secs"].as_f64().is_some(), "{id}: {m}");
        }
        eprintln!(
            "{id}: {} steps, RTO {}s",
            steps.len(),
            r["measures"]["rto_secs"]
        );
    }

    // The drill's scratch targets are gone, as the emulator lists them.
    let namespaces = api
        .send(
            "GET",
            &format!("{}/storage/kv/namespaces?per_page=100", api.account()),
            None,
        )
        .await
        .result();
    let buckets = api
        .send("GET", &format!("{}/r2/buckets", api.account()), None)
        .await
        .result();
    for listing in [&namespaces, &buckets] {
        assert!(
            !listing.to_string().contains("-drill-"),
            "no scratch target is left: {listing}"
        );
    }
    // Each in-place restore left its undo point: d1-recovery's restore run undoes.
    let runs = ok_json(&api, &repo, &["playbook", "runs", "--json"]).await;
    assert_eq!(
        runs["runs"].as_array().unwrap().len(),
        cfdr::playbook::library::BUILT_IN.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approval_stops_the_run_until_someone_gives_their_name() {
    let tmp = tempfile::tempdir().unwrap();
    let (api, repo, _) = demo(tmp.path()).await;
    let args = [
        "playbook",
        "run",
        "disaster-recovery",
        "--param",
        "components=kv",
        "--yes",
    ];
    let out = output(cfdr(&api, &repo, &args)).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("stopped at step 2") && err.contains("--approver NAME"),
        "{err}"
    );
    let run = err
        .lines()
        .find_map(|l| l.strip_prefix("playbook run "))
        .and_then(|l| l.split(':').next())
        .unwrap()
        .to_string();
    // Nothing was written: the stop came before the snapshot and the restore.
    api.control("POST", "/__emulator/stats/reset", None).await;
    let retry = output(cfdr(&api, &repo, &["playbook", "retry", &run])).await;
    assert_eq!(retry.status.code(), Some(2));
    assert!(
        stderr(&retry).contains("playbook resume"),
        "{}",
        stderr(&retry)
    );
    let done = ok_json(
        &api,
        &repo,
        &[
            "playbook",
            "resume",
            &run,
            "--yes",
            "--approver",
            "dana",
            "--json",
        ],
    )
    .await;
    assert_eq!(done["outcome"], "success", "{done}");
    let approve = &done["run"]["steps"][1]["items"][0];
    assert_eq!(approve["facts"]["by"], "dana", "{approve}");
    // The step before the stop ran once.
    assert_eq!(done["run"]["steps"][0]["items"][0]["attempts"], 1);
    let again = ok_json(&api, &repo, &["playbook", "resume", &run, "--json"]).await;
    assert_eq!(
        again["outcome"], "success",
        "a finished run reports, and does nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_restore_step_is_retried_from_that_step() {
    let tmp = tempfile::tempdir().unwrap();
    let (api, repo, _) = demo(tmp.path()).await;
    // D1's import route fails every time: the restore step (5) fails, the snapshot (3) landed.
    api.control(
        "POST",
        "/__emulator/faults",
        Some(json!({ "error_rate": 1.0, "path_contains": "/import" })),
    )
    .await;
    let args = [
        "playbook",
        "run",
        "d1-recovery",
        "--param",
        "database=support-portal",
        "--yes",
        "--retries",
        "0",
        "--json",
    ];
    let out = output(cfdr(&api, &repo, &args)).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let failed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(failed["outcome"], "failed", "{failed}");
    let steps = failed["run"]["steps"].as_array().unwrap();
    assert_eq!(steps[4]["kind"], "restore");
    assert_eq!(steps[4]["items"][0]["state"], "failed", "{}", steps[4]);
    assert_eq!(steps[5]["items"][0]["state"], "pending");
    let snapshot = steps[2]["items"][0]["facts"]["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    let run = failed["run"]["id"].as_str().unwrap().to_string();
    let resume = output(cfdr(&api, &repo, &["playbook", "resume", &run])).await;
    assert_eq!(
        resume.status.code(),
        Some(2),
        "a failed run is retried, not resumed"
    );

    api.control("POST", "/__emulator/faults", Some(json!({})))
        .await;
    let done = ok_json(&api, &repo, &["playbook", "retry", &run, "--yes", "--json"]).await;
    assert_eq!(done["outcome"], "success", "{done}");
    let steps = done["run"]["steps"].as_array().unwrap();
    // The steps before the failed one ran once; the restore twice; the rest once.
    let attempts: Vec<u64> = steps
        .iter()
        .map(|s| s["items"][0]["attempts"].as_u64().unwrap())
        .collect();
    assert_eq!(attempts, [1, 1, 1, 1, 2, 1, 1, 1], "{done}");
    assert_eq!(
        steps[2]["items"][0]["facts"]["snapshot"], snapshot,
        "the snapshot was not taken again"
    );
    assert_eq!(
        steps[4]["items"][0]["facts"]["snapshot"], snapshot,
        "the restore's undo point is the run's snapshot"
    );
    let backups = ok_json(&api, &repo, &["backups", "list", "--json"]).await;
    let pre = backups
        .as_array()
        .or(backups["backups"].as_array())
        .unwrap()
        .iter()
        .filter(|b| b["trigger"] == "pre-recovery")
        .count();
    assert_eq!(pre, 1, "one pre-recovery snapshot: {backups}");
    let backup = done["run"]["params"]["backup"].as_str().unwrap();
    let diff = output(cfdr(&api, &repo, &["diff", backup])).await;
    assert!(diff.status.success(), "{}", stderr(&diff));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_run_resumes_from_its_journal_with_the_target_exact() {
    let api = common::start().await;
    api.unlimited().await;
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo").to_str().unwrap().to_string();
    let ns = api.kv_create("ORDERS").await;
    api.kv_put(
        &ns,
        (0..2_000)
            .map(|i| json!({ "key": format!("order:{i:05}"), "value": format!("{{\"n\":{i}}}") }))
            .collect(),
    )
    .await;
    assert!(
        output(cfdr(&api, &repo, &["repo", "init"]))
            .await
            .status
            .success()
    );
    assert!(
        output(cfdr(&api, &repo, &["backup", "kv", "ORDERS"]))
            .await
            .status
            .success()
    );
    let original = api.kv_dump(&ns).await;
    // Every request takes a while, so the kills land in the validation, the snapshot, the
    // restore or the verifications.
    api.control(
        "POST",
        "/__emulator/faults",
        Some(json!({ "latency_ms": 40 })),
    )
    .await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261203);
    let mut mid = 0;
    for round in 0..6 {
        api.kv_put(
            &ns,
            (0..2_000)
                .map(|i| json!({ "key": format!("order:{i:05}"), "value": format!("bad {round}") }))
                .chain((0..30).map(|i| json!({ "key": format!("junk:{round}:{i}"), "value": "x" })))
                .collect(),
        )
        .await;
        let after = std::time::Duration::from_millis(rng.random_range(150..1_500));
        let c = cfdr(
            &api,
            &repo,
            &[
                "playbook",
                "run",
                "kv-recovery",
                "--param",
                "namespace=ORDERS",
                "--yes",
            ],
        );
        let (run, printed) = tokio::task::spawn_blocking(move || {
            common::start_and_kill_at(c, after, "playbook run ")
        })
        .await
        .unwrap();
        let run = run.unwrap_or_else(|| panic!("round {round}: the run names itself: {printed}"));
        let out = output(cfdr(
            &api,
            &repo,
            &["playbook", "resume", &run, "--yes", "--json"],
        ))
        .await;
        let out = if !out.status.success() && stderr(&out).contains("no playbook run") {
            // Killed before its journal was first written: nothing ran, a fresh run stands in.
            eprintln!("round {round}: killed after {after:?}, before the run was recorded");
            output(cfdr(
                &api,
                &repo,
                &[
                    "playbook",
                    "run",
                    "kv-recovery",
                    "--param",
                    "namespace=ORDERS",
                    "--yes",
                    "--json",
                ],
            ))
            .await
        } else {
            out
        };
        assert!(
            out.status.success(),
            "round {round} (killed after {after:?}): {}\nthe killed run printed:\n{printed}",
            stderr(&out)
        );
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["outcome"], "success", "round {round}: {r}");
        let from = stderr(&out)
            .lines()
            .find_map(|l| l.split("resuming from step ").nth(1))
            .and_then(|n| n.trim().parse::<u32>().ok());
        mid += u32::from(from.is_some_and(|n| n >= 2));
        eprintln!("round {round}: killed after {after:?}; resumed from step {from:?}");
        // Every key of the backup is back exactly (overwrite mode leaves the junk keys).
        let now = api.kv_dump(&ns).await;
        for (k, v) in &original {
            assert_eq!(now.get(k), Some(v), "round {round}: key {k}");
        }
    }
    assert!(mid >= 3, "most kills land mid-run ({mid} of 6)");
}

#[tokio::test(flavor = "multi_thread")]
async fn mistakes_in_the_parameters_are_refused_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let (api, repo, _) = demo(tmp.path()).await;
    api.control("POST", "/__emulator/stats/reset", None).await;
    let cases: [(&[&str], &str); 6] = [
        (&["d1-recovery"], "needs --param database="),
        (
            &[
                "d1-recovery",
                "--param",
                "database=support-portal",
                "--param",
                "tabels=x",
            ],
            "no parameter `tabels`",
        ),
        (
            &["d1-recovery", "--param", "database=nowhere"],
            "no backup of d1 `nowhere`",
        ),
        (
            &[
                "kv-recovery",
                "--param",
                "namespace=CACHE",
                "--param",
                "backup=nope",
            ],
            "--param backup=nope: no such backup",
        ),
        (
            &[
                "data-corruption",
                "--param",
                "database=tasks-prod",
                "--param",
                "before=yesterday",
            ],
            "--param before=yesterday is not a time",
        ),
        (
            &["disaster-recovery", "--param", "components=d1,dns"],
            "`dns` is not a component",
        ),
    ];
    for (args, want) in cases {
        let mut a = vec!["playbook", "run"];
        a.extend_from_slice(args);
        a.push("--yes");
        let out = output(cfdr(&api, &repo, &a)).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(api.stats().await["writes"], 0);
    let runs = ok_json(&api, &repo, &["playbook", "runs", "--json"]).await;
    assert_eq!(runs["runs"], json!([]), "no run was recorded");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drill_passes_and_reports_and_a_corrupt_backup_fails_it_with_its_scratch_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let (api, repo, _) = demo(tmp.path()).await;
    let d = ok_json(
        &api,
        &repo,
        &[
            "drill",
            "--components",
            "d1,kv",
            "--tester",
            "erin",
            "--yes",
            "--json",
        ],
    )
    .await;
    let drill = &d["drill"];
    assert_eq!(drill["outcome"], "success", "{d}");
    assert_eq!(drill["tester"], "erin");
    assert_eq!(drill["measures"]["rto_met"], true, "{drill}");
    assert_eq!(
        drill["backups"].as_array().unwrap().len(),
        8,
        "5 databases, 3 namespaces"
    );
    assert_eq!(drill["issues"], json!([]));
    let id = drill["id"].as_str().unwrap().to_string();
    let shown = output(cfdr(&api, &repo, &["drills", "show", &id])).await;
    assert!(shown.status.success(), "{}", stderr(&shown));
    let md = String::from_utf8_lossy(&shown.stdout).into_owned();
    assert!(
        md.contains("**Scenario Tested**: full") && md.contains("| RTO |"),
        "{md}"
    );
    let list = ok_json(&api, &repo, &["drills", "list", "--json"]).await;
    assert_eq!(list["drills"][0]["id"], id.as_str());

    // A report edited by hand is refused.
    let file = std::path::Path::new(&repo).join(format!("drills/{id}.md"));
    std::fs::write(&file, md.replace("success", "SUCCESS!")).unwrap();
    let shown = output(cfdr(&api, &repo, &["drills", "show", &id])).await;
    assert_eq!(shown.status.code(), Some(1), "{}", stderr(&shown));
    assert!(
        stderr(&shown).contains("does not match its MAC"),
        "{}",
        stderr(&shown)
    );

    // The second namespace's backup is damaged: the first one's scratch copy was made, the
    // drill fails naming the backup, and no scratch target is left.
    let listing = ok_json(&api, &repo, &["backups", "list", "--json"]).await;
    let rows = listing.as_array().unwrap();
    let bad = rows
        .iter()
        .find(|b| b["kind"] == "kv" && b["target"] == "FEATURE_FLAGS")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = std::path::Path::new(&repo)
        .join("snapshots/kv/FEATURE_FLAGS")
        .join(&bad);
    let artifact = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "ndjson"))
        .unwrap();
    let mut bytes = std::fs::read(&artifact).unwrap();
    let n = bytes.len() / 2;
    bytes[n] ^= 0x40;
    std::fs::write(&artifact, bytes).unwrap();
    let out = output(cfdr(
        &api,
        &repo,
        &["drill", "--components", "kv", "--yes", "--json"],
    ))
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["drill"]["outcome"], "partial", "{d}");
    let issues = d["drill"]["issues"].to_string();
    assert!(
        issues.contains(&bad) && issues.contains("failed verification"),
        "{issues}"
    );
    let cleanup = d["drill"]["cleanup"].to_string();
    assert!(
        cleanup.contains("CACHE-drill-") && cleanup.contains("removed"),
        "{cleanup}"
    );
    let namespaces = api
        .send(
            "GET",
            &format!("{}/storage/kv/namespaces?per_page=100", api.account()),
            None,
        )
        .await
        .result();
    assert!(
        !namespaces.to_string().contains("-drill-"),
        "no scratch namespace is left: {namespaces}"
    );
}

/// `cfdr status` of `repo`, with `extra` environment: its exit code and output.
async fn status(
    api: &Api,
    repo: &str,
    args: &[&str],
    extra: &[(&str, &str)],
) -> (Option<i32>, String) {
    let mut c = cfdr(api, repo, &[&["status"], args].concat());
    for (k, v) in extra {
        c.env(k, v);
    }
    let out = output(c).await;
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn status_stands_each_target_against_its_rpo_with_its_drill_and_failures() {
    let tmp = tempfile::tempdir().unwrap();
    let (api, repo, _) = demo(tmp.path()).await;
    // Everything was just backed up: exit 0, every target of the account listed and fresh.
    let (code, out) = status(&api, &repo, &["--json"], &[]).await;
    assert_eq!(code, Some(0), "{out}");
    let s: Value = serde_json::from_str(&out).unwrap();
    let targets = s["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 5 + 3 + 3 + 1, "D1, KV, R2 and the file: {s}");
    assert!(targets.iter().all(|t| t["state"] == "ok"), "{s}");
    assert_eq!(s["past_rpo"], json!([]));
    assert_eq!(s["last_drill"], Value::Null);

    // A backup that fails (D1 answers 500 to everything) is counted against its target.
    api.control(
        "POST",
        "/__emulator/faults",
        Some(json!({ "error_rate": 1.0, "path_contains": "/d1/" })),
    )
    .await;
    let failed = output(cfdr(
        &api,
        &repo,
        &["backup", "d1", "support-portal", "--retries", "0"],
    ))
    .await;
    assert!(!failed.status.success(), "the backup fails");
    api.control("POST", "/__emulator/faults", Some(json!({})))
        .await;
    let drill = ok_json(
        &api,
        &repo,
        &["drill", "--components", "kv", "--yes", "--json"],
    )
    .await;
    assert_eq!(drill["drill"]["outcome"], "success", "{drill}");
    // A database the account has and the repository does not: never backed up.
    api.d1_create("brand-new").await;

    // With an RPO of one second, every target is now past it: exit 1, each one named.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let rpo = [("CFDR_RPO", "1s")];
    let (code, out) = status(&api, &repo, &["--json"], &rpo).await;
    assert_eq!(code, Some(1), "{out}");
    let s: Value = serde_json::from_str(&out).unwrap();
    let find = |kind: &str, name: &str| -> Value {
        s["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["kind"] == kind && t["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{kind} {name} in {s}"))
    };
    assert_eq!(s["past_rpo"].as_array().unwrap().len(), 13, "{s}");
    let portal = find("d1", "support-portal");
    assert_eq!(portal["state"], "late");
    assert_eq!(
        (&portal["failures"], &portal["consecutive_failures"]),
        (&json!(1), &json!(1)),
        "{portal}"
    );
    assert_eq!(portal["last_failure"]["action"], "backup", "{portal}");
    assert_eq!(portal["last_drill"], Value::Null);
    assert_eq!(find("d1", "brand-new")["state"], "never");
    let cache = find("kv", "CACHE");
    assert_eq!(cache["last_drill"]["result"], "passed", "{cache}");
    assert_eq!(cache["last_drill"]["id"], drill["drill"]["id"]);
    assert!(cache["last_drill"]["rto_secs"].as_f64().unwrap() > 0.0);
    assert_eq!(s["last_drill"]["result"], "success");
    let (code, offline) = status(&api, &repo, &["--offline", "--json"], &rpo).await;
    assert_eq!(code, Some(1));
    assert!(
        !offline.contains("brand-new"),
        "offline: the repository alone"
    );

    // The same figures in Prometheus's text format, read back by a Prometheus parser: every
    // sample line is one the parser understood.
    let (code, text) = status(&api, &repo, &["--format", "prometheus"], &rpo).await;
    assert_eq!(code, Some(1), "{text}");
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text parses");
    let samples = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'));
    assert_eq!(scrape.samples.len(), samples.count(), "no line left unread");
    let value = |name: &str, kind: &str, target: &str| -> f64 {
        let s = scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == name
                    && s.labels.get("kind") == Some(kind)
                    && s.labels.get("target") == Some(target)
            })
            .unwrap_or_else(|| panic!("{name}{{{kind},{target}}} in {text}"));
        match s.value {
            prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => panic!("{name} is not a number"),
        }
    };
    assert_eq!(
        value("cfdr_backup_failures_total", "d1", "support-portal"),
        1.0
    );
    assert_eq!(value("cfdr_backup_past_rpo", "d1", "brand-new"), 1.0);
    assert_eq!(value("cfdr_drill_last_success", "kv", "CACHE"), 1.0);
    assert!(value("cfdr_drill_last_rto_seconds", "kv", "CACHE") > 0.0);
    assert!(value("cfdr_backup_last_size_bytes", "d1", "support-portal") > 0.0);
    let finished = value(
        "cfdr_backup_last_success_timestamp_seconds",
        "d1",
        "tasks-prod",
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(now - finished < 600.0 && now >= finished, "{finished}");
    assert!(text.contains("\ncfdr_targets_past_rpo 13\n"), "{text}");
}
