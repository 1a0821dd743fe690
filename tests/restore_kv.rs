//! `cfdr restore` and `cfdr diff` of KV backups through the binary against the emulator: the
//! plan, the refusals that send no write (dry run, no confirmation, read-only, no snapshot, a
//! held target), a partial restore that touches nothing outside its prefix, a clear restore
//! that leaves the namespace equal to the backup (binary values, metadata, expirations) in at
//! most 2 bulk writes for 10,000 keys with the request count as planned, its undo, a restore
//! into a new namespace, and restores killed with SIGKILL at random points and resumed.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use base64::Engine as _;
use common::{Api, KvEntry, output, route_requests, stderr};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

const KEY: &str = "5e1c3a7b9d2f4e6a8c0b1d3f5a7c9e2b4d6f8a0c1e3b5d7f9a2c4e6b8d0f1a3c";

fn cfdr(api: &Api, repo: &str, args: &[&str]) -> Command {
    common::restore_cmd(api, repo, KEY, args)
}

async fn ok_json(api: &Api, repo: &str, args: &[&str]) -> Value {
    common::restore_json(api, repo, KEY, args).await
}

/// The namespace a backup stands for, in the dump's terms.
async fn backup_content(api: &Api, repo: &str, id: &str) -> BTreeMap<String, KvEntry> {
    let out = output(cfdr(api, repo, &["backups", "cat", id, "--full"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    out.stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let v: Value = serde_json::from_slice(l).unwrap();
            let text = v["value"].as_str().unwrap();
            let value = if v["base64"] == true {
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .unwrap()
            } else {
                text.as_bytes().to_vec()
            };
            let entry = KvEntry {
                value,
                metadata: v.get("metadata").filter(|m| !m.is_null()).cloned(),
                expiration: v["expiration"].as_i64(),
            };
            (v["key"].as_str().unwrap().to_string(), entry)
        })
        .collect()
}

fn outside(dump: &BTreeMap<String, KvEntry>, prefix: &str) -> BTreeMap<String, KvEntry> {
    dump.iter()
        .filter(|(k, _)| !k.starts_with(prefix))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

async fn seed(api: &Api, title: &str, n: usize) -> String {
    let ns = api.kv_create(title).await;
    let items: Vec<Value> = (0..n)
        .map(|i| json!({ "key": format!("user:{i:05}"), "value": format!("{{\"id\":{i}}}") }))
        .collect();
    api.kv_put(&ns, items).await;
    ns
}

/// An emulator without a rate limit, a fresh repository (removed with the directory) and a
/// namespace `title` of `n` keys backed up: the namespace's id and the backup's.
async fn backed_up(title: &str, n: usize) -> (Api, tempfile::TempDir, String, String, String) {
    let api = common::start().await;
    api.unlimited().await;
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo").to_str().unwrap().to_string();
    let ns = seed(&api, title, n).await;
    assert!(
        output(cfdr(&api, &repo, &["repo", "init"]))
            .await
            .status
            .success()
    );
    let b = ok_json(&api, &repo, &["backup", "kv", title, "--json"]).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    (api, tmp, repo, ns, b)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_namespace_comes_back_exactly_and_only_where_asked() {
    let api = common::start().await;
    api.unlimited().await;
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo").to_str().unwrap().to_string();
    let ns = seed(&api, "SESSIONS", 10_000).await;
    let png =
        base64::engine::general_purpose::STANDARD.encode([0x89, b'P', b'N', b'G', 0xff, 0, 0xfe]);
    let expires = time::OffsetDateTime::now_utc().unix_timestamp() + 7200;
    api.kv_put(
        &ns,
        vec![
            json!({ "key": "blob:1", "value": png, "base64": true }),
            json!({ "key": "meta/é ?", "value": "x", "metadata": { "tier": "critical" }, "expiration": expires }),
            json!({ "key": "replacement", "value": "already \u{FFFD} here" }),
        ],
    )
    .await;
    assert!(
        output(cfdr(&api, &repo, &["repo", "init"]))
            .await
            .status
            .success()
    );
    let backup = ok_json(&api, &repo, &["backup", "kv", "SESSIONS", "--json"]).await;
    let b = backup["id"].as_str().unwrap().to_string();
    let original = api.kv_dump(&ns).await;
    assert_eq!(original.len(), 10_003);
    assert_eq!(
        backup_content(&api, &repo, &b).await,
        original,
        "the backup holds the namespace"
    );

    // The incident: 100 values overwritten, 50 keys deleted, 31 keys added, a binary value and
    // a key's metadata changed.
    api.kv_put(
        &ns,
        (0..100)
            .map(|i| json!({ "key": format!("user:{i:05}"), "value": "damaged" }))
            .chain((0..30).map(|i| json!({ "key": format!("extra:{i}"), "value": "new" })))
            .chain([
                json!({ "key": "user:zz-extra", "value": "new" }),
                json!({ "key": "blob:1", "value": "text now" }),
                json!({ "key": "meta/é ?", "value": "x", "metadata": { "tier": "none" }, "expiration": expires }),
            ])
            .collect(),
    )
    .await;
    api.kv_delete(&ns, (9000..9050).map(|i| format!("user:{i:05}")).collect())
        .await;
    let damaged = api.kv_dump(&ns).await;

    // The plan, and every refusal, send no write.
    api.control("POST", "/__emulator/stats/reset", None).await;
    let plan = ok_json(&api, &repo, &["restore", &b, "--dry-run", "--json"]).await;
    assert_eq!(plan["counts"]["added"], 50);
    assert_eq!(plan["counts"]["changed"], 102);
    assert_eq!(plan["counts"]["removed"], 0, "overwrite deletes nothing");
    assert_eq!(plan["counts"]["unchanged"], 10_003 - 152);
    assert_eq!(plan["snapshot"], "required");
    let headless = output(cfdr(&api, &repo, &["restore", &b])).await;
    assert_eq!(headless.status.code(), Some(2), "{}", stderr(&headless));
    assert!(stderr(&headless).contains("--yes"), "{}", stderr(&headless));
    let mut read_only = cfdr(&api, &repo, &["restore", &b, "--yes"]);
    read_only.env("CFDR_READ_ONLY", "1");
    let read_only = output(read_only).await;
    assert_eq!(read_only.status.code(), Some(2), "{}", stderr(&read_only));
    assert!(
        stderr(&read_only).contains("read-only"),
        "{}",
        stderr(&read_only)
    );
    let unsafe_ = output(cfdr(
        &api,
        &repo,
        &["restore", &b, "--yes", "--no-snapshot"],
    ))
    .await;
    assert_eq!(unsafe_.status.code(), Some(2), "{}", stderr(&unsafe_));
    let mismatch = output(cfdr(&api, &repo, &["diff", &b])).await;
    assert_eq!(
        mismatch.status.code(),
        Some(1),
        "diff sees the damage: {}",
        stderr(&mismatch)
    );
    assert!(String::from_utf8_lossy(&mismatch.stdout).contains("extra\textra:0"));
    assert_eq!(
        api.writes().await,
        0,
        "plans, refusals and diffs wrote nothing"
    );
    common::assert_same_kv(&api.kv_dump(&ns).await, &damaged, "nothing was written");

    // A second operator holding the target: exit 4, naming them.
    let lock = std::path::Path::new(&repo).join(format!("locks/restore-kv-{ns}.json"));
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    std::fs::write(
        &lock,
        format!(r#"{{"owner":"oncall","host":"ops-box-7","pid":1,"purpose":"restore run x","started":"{now}","heartbeat":"{now}","ttl_secs":120,"token":"x"}}"#),
    )
    .unwrap();
    let held = output(cfdr(&api, &repo, &["restore", &b, "--yes"])).await;
    assert_eq!(held.status.code(), Some(4), "{}", stderr(&held));
    assert!(
        stderr(&held).contains("oncall on ops-box-7"),
        "{}",
        stderr(&held)
    );
    std::fs::remove_file(&lock).unwrap();
    assert_eq!(api.writes().await, 0);

    // Partial: only `user:000…` (the 100 damaged values) — nothing else changes.
    let partial = ok_json(
        &api,
        &repo,
        &["restore", &b, "--prefix", "user:000", "--yes", "--json"],
    )
    .await;
    let r = &partial["report"];
    assert_eq!(r["outcome"], "success", "{partial}");
    assert_eq!(
        (r["created"].as_u64(), r["overwritten"].as_u64()),
        (Some(0), Some(100))
    );
    assert!(
        r["snapshot"].is_string(),
        "a pre-recovery snapshot was taken"
    );
    let after_partial = api.kv_dump(&ns).await;
    assert_eq!(
        outside(&after_partial, "user:000"),
        outside(&damaged, "user:000")
    );
    for i in 0..100 {
        let k = format!("user:{i:05}");
        assert_eq!(after_partial[&k], original[&k]);
    }

    // Whole, clear: the namespace equals the backup again.
    api.control("POST", "/__emulator/stats/reset", None).await;
    let clear = ok_json(
        &api,
        &repo,
        &["restore", &b, "--mode", "clear", "--yes", "--json"],
    )
    .await;
    let r = &clear["report"];
    assert_eq!(r["outcome"], "success", "{clear}");
    assert_eq!(
        (
            r["created"].as_u64(),
            r["overwritten"].as_u64(),
            r["deleted"].as_u64()
        ),
        (Some(50), Some(2), Some(31))
    );
    assert_eq!(r["verification"]["differences"], 0);
    let stats = api.stats().await;
    assert!(
        route_requests(&stats, "/bulk") <= 2,
        "10,000 keys in at most 2 bulk writes: {}",
        stats["routes"]
    );
    let (planned, sent) = (
        r["requests_planned"].as_f64().unwrap(),
        r["requests_sent"].as_f64().unwrap(),
    );
    assert!(
        (sent - planned).abs() <= planned * 0.1,
        "planned {planned} requests, sent {sent}"
    );
    eprintln!(
        "clear restore of 10,003 keys: planned {planned} requests, sent {sent}; bulk writes {}",
        route_requests(&stats, "/bulk")
    );
    common::assert_same_kv(
        &api.kv_dump(&ns).await,
        &original,
        "hash-equal to the backup",
    );
    assert!(
        output(cfdr(&api, &repo, &["diff", &b]))
            .await
            .status
            .success()
    );

    // Undo puts back what the clear restore replaced: the state after the partial restore.
    let run = r["run"].as_str().unwrap();
    let undo = ok_json(&api, &repo, &["restore", "--undo", run, "--yes", "--json"]).await;
    assert_eq!(undo["report"]["outcome"], "success", "{undo}");
    assert_eq!(undo["report"]["undo_of"], run);
    common::assert_same_kv(&api.kv_dump(&ns).await, &after_partial, "undone");

    // Into a new namespace: created, no snapshot needed, equal to the backup.
    let copy = ok_json(
        &api,
        &repo,
        &["restore", &b, "--to", "SESSIONS-copy", "--yes", "--json"],
    )
    .await;
    assert_eq!(copy["plan"]["snapshot"], "not-needed");
    assert_eq!(copy["report"]["outcome"], "success", "{copy}");
    let copy_id = copy["report"]["target"]["id"].as_str().unwrap();
    common::assert_same_kv(&api.kv_dump(copy_id).await, &original, "the copy");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_plan_says_how_long_its_requests_take_from_the_round_trips_it_measured() {
    let (api, _tmp, repo, ns, b) = backed_up("ETA", 2_500).await;
    api.kv_delete(&ns, (0..2_500).map(|i| format!("user:{i:05}")).collect())
        .await;
    // Every request 200 ms: the plan's reads measure it, and its time follows from them.
    api.control(
        "POST",
        "/__emulator/faults",
        Some(json!({ "latency_ms": 200 })),
    )
    .await;
    let args = ["restore", &b, "--dry-run", "--json", "--concurrency", "2"];
    let plan = ok_json(&api, &repo, &args).await;
    let total = plan["requests"]["total"].as_f64().unwrap();
    let eta = plan["requests"]["eta_secs"].as_f64().unwrap();
    let floor = total * 0.2 / 2.0;
    assert!(
        eta >= floor && eta <= floor * 2.0 + 1.0,
        "{total} requests at 200 ms, 2 at a time: about {floor:.1}s, the plan says {eta:.1}s"
    );
    let text = output(cfdr(
        &api,
        &repo,
        &["restore", &b, "--dry-run", "--concurrency", "2"],
    ))
    .await;
    assert!(
        stderr(&text).contains(&format!("{} in all, about ", total as u64))
            || String::from_utf8_lossy(&text.stdout)
                .contains(&format!("{} in all, about ", total as u64)),
        "{}",
        stderr(&text)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_restore_resumes_with_nothing_lost_or_written_twice() {
    let (api, _tmp, repo, ns, b) = backed_up("CACHE", 3_000).await;
    let original = api.kv_dump(&ns).await;
    // Every request takes a while, so the kills land in the snapshot, the 30 writes or the
    // verification.
    api.control(
        "POST",
        "/__emulator/faults",
        Some(json!({ "latency_ms": 15 })),
    )
    .await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261202);
    let mut resumed = 0;
    for round in 0..20 {
        // Damage: every value changed and 40 strangers added.
        api.kv_put(
            &ns,
            (0..3_000)
                .map(|i| json!({ "key": format!("user:{i:05}"), "value": format!("bad {round}") }))
                .chain(
                    (0..40)
                        .map(|i| json!({ "key": format!("stranger:{round}:{i}"), "value": "x" })),
                )
                .collect(),
        )
        .await;
        let after = std::time::Duration::from_millis(rng.random_range(150..1_300));
        resumed += u32::from(
            common::kill_and_resume(
                &api,
                &repo,
                KEY,
                &[
                    "restore",
                    &b,
                    "--mode",
                    "clear",
                    "--yes",
                    "--kv-batch",
                    "100",
                ],
                after,
                round,
            )
            .await,
        );
        assert_eq!(
            api.kv_dump(&ns).await,
            original,
            "round {round} (killed after {after:?})"
        );
    }
    assert!(
        resumed >= 6,
        "most kills land after the run is recorded ({resumed} of 20 resumed mid-run)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_terminal_the_operator_types_the_targets_name() {
    let api = common::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo").to_str().unwrap().to_string();
    let ns = seed(&api, "FLAGS", 50).await;
    assert!(
        output(cfdr(&api, &repo, &["repo", "init"]))
            .await
            .status
            .success()
    );
    let b = ok_json(&api, &repo, &["backup", "kv", "FLAGS", "--json"]).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let original = api.kv_dump(&ns).await;
    api.kv_put(&ns, vec![json!({ "key": "user:00001", "value": "broken" })])
        .await;
    api.control("POST", "/__emulator/stats/reset", None).await;

    let h = api.clone_handle();
    let (r, id) = (repo.clone(), b.clone());
    let (wrong, right) = tokio::task::spawn_blocking(move || {
        let typed = |answer: &str| {
            let mut cmd = common::cfdr_pty_cmd(&h, &r, KEY);
            cmd.args(["restore", &id]);
            cmd.env("CFDR_API_BUDGET", "100000/5m");
            let mut pty = common::pty::Pty::spawn(cmd, 40, 200);
            pty.screen.wait_for(
                "type `FLAGS` to restore into it",
                std::time::Duration::from_secs(30),
            );
            assert!(
                pty.screen.text().contains("1 to change"),
                "{}",
                pty.screen.text()
            );
            pty.press(&format!("{answer}\r"));
            let code = pty.wait(std::time::Duration::from_secs(60));
            (code, pty.screen.text())
        };
        (typed("flags"), typed("FLAGS"))
    })
    .await
    .unwrap();
    assert_eq!(wrong.0, 2, "a wrong name stops the restore: {}", wrong.1);
    assert!(
        wrong
            .1
            .contains("did not match `FLAGS`; nothing was written"),
        "{}",
        wrong.1
    );
    assert_eq!(right.0, 0, "{}", right.1);
    assert!(right.1.contains(": success"), "{}", right.1);
    common::assert_same_kv(
        &api.kv_dump(&ns).await,
        &original,
        "after the typed confirmation",
    );
}

/// [`cfdr`] reading the config file `config`.
fn cfdr_with(api: &Api, repo: &str, config: &str, args: &[&str]) -> Command {
    let mut c = cfdr(api, repo, args);
    c.env("CFDR_CONFIG", config);
    c
}

/// A config file in `dir` with `body`, for the binary's `CFDR_CONFIG`.
fn config_file(dir: &std::path::Path, body: &str) -> String {
    let path = dir.join("config.toml");
    std::fs::write(&path, body).unwrap();
    path.to_str().unwrap().to_string()
}

const TIERS: &str = r#"
[tiers."kv/SESSIONS"]
critical = ["user:*", "hof:*"]
important = ["stats:*", "recent_playlists"]
recoverable = ["session:*"]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn tiers_restore_the_critical_keys_first_and_nothing_else() {
    let api = common::start().await;
    api.unlimited().await;
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo").to_str().unwrap().to_string();
    let config = config_file(tmp.path(), TIERS);
    let ns = api.kv_create("SESSIONS").await;
    let pairs = |value: &str| -> Vec<Value> {
        (0..300)
            .map(|i| json!({ "key": format!("user:{i:04}"), "value": value }))
            .chain((1..=100).map(|i| json!({ "key": format!("hof:{i}"), "value": value })))
            .chain((0..50).map(|i| json!({ "key": format!("session:{i}"), "value": value })))
            .chain([
                json!({ "key": "stats:user_count", "value": value }),
                json!({ "key": "recent_playlists", "value": value }),
                json!({ "key": "scoreboard_cache", "value": value }),
            ])
            .collect()
    };
    api.kv_put(&ns, pairs("good")).await;
    let with_config = |args: &[&str]| cfdr_with(&api, &repo, &config, args);
    ok(with_config(&["repo", "init"])).await;
    let b = ok(with_config(&["backup", "kv", "SESSIONS", "--json"])).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let good = api.kv_dump(&ns).await;

    // Everything damaged, and a stranger in a critical pattern and one outside every tier.
    api.kv_put(&ns, pairs("bad")).await;
    api.kv_put(
        &ns,
        vec![
            json!({ "key": "user:stranger", "value": "x" }),
            json!({ "key": "cache:stranger", "value": "x" }),
        ],
    )
    .await;
    let damaged = api.kv_dump(&ns).await;

    // Bad tier names are refused before anything is read or written.
    api.control("POST", "/__emulator/stats/reset", None).await;
    let out = output(with_config(&["restore", &b, "--tier", "critcal", "--yes"])).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no tier `critcal`")
            && stderr(&out).contains("critical, important, recoverable"),
        "{}",
        stderr(&out)
    );
    let out = output(cfdr(
        &api,
        &repo,
        &["restore", &b, "--tier", "critical", "--yes"],
    ))
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("[tiers.\"kv/SESSIONS\"]"),
        "says how to configure tiers: {}",
        stderr(&out)
    );
    assert_eq!(api.writes().await, 0);

    let out = output(with_config(&[
        "restore",
        &b,
        "--tier",
        "critical,important",
        "--mode",
        "clear",
        "--kv-batch",
        "150",
        "--yes",
        "--json",
    ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let plan = &r["plan"];
    let tiers: Vec<(String, u64)> = plan["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().into(),
                t["keys"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        tiers,
        [("critical".to_string(), 400), ("important".to_string(), 2)]
    );
    // The writes in order: the critical tier's requests (150 pairs at most), then the
    // important one's, then the delete of the critical stranger.
    let units: Vec<(String, Vec<String>)> = plan["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            let keys = u["keys"].as_array().unwrap();
            (
                u["op"].as_str().unwrap().to_string(),
                keys.iter()
                    .map(|k| k.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect();
    let critical = |k: &String| k.starts_with("user:") || k.starts_with("hof:");
    assert_eq!(units.len(), 5, "{units:?}");
    assert!(
        units[..3]
            .iter()
            .all(|(op, k)| op == "put" && k.iter().all(critical))
    );
    assert_eq!(
        units[3],
        (
            "put".into(),
            vec!["recent_playlists".into(), "stats:user_count".into()]
        )
    );
    assert_eq!(
        units[4],
        ("delete".into(), vec!["user:stranger".to_string()])
    );
    assert_eq!(r["report"]["outcome"], "success", "{r:#}");
    assert_eq!(r["report"]["verification"]["checked"], 402);

    // The tiers equal the backup; every other key is as the incident left it.
    let now = api.kv_dump(&ns).await;
    let in_tiers = |k: &str| {
        k.starts_with("user:")
            || k.starts_with("hof:")
            || k == "stats:user_count"
            || k == "recent_playlists"
    };
    let pick = |m: &BTreeMap<String, KvEntry>, want: bool| -> BTreeMap<String, KvEntry> {
        m.iter()
            .filter(|(k, _)| in_tiers(k) == want)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    common::assert_same_kv(&pick(&now, true), &pick(&good, true), "the restored tiers");
    common::assert_same_kv(
        &pick(&now, false),
        &pick(&damaged, false),
        "outside the tiers",
    );

    // Undone, the tiers are as damaged as before, and the rest still untouched.
    let run = r["report"]["run"].as_str().unwrap();
    ok(with_config(&["restore", "--undo", run, "--yes", "--json"])).await;
    common::assert_same_kv(&api.kv_dump(&ns).await, &damaged, "after the undo");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_profile_restores_into_another_account_and_its_runs_stay_there() {
    let main = common::start().await;
    main.unlimited().await;
    let other = common::start_with(cfdr::emulator::EmulatorConfig {
        account_id: "feedfacefeedfacefeedfacefeedface".into(),
        token: "the-other-accounts-token".into(),
        ..cfdr::emulator::EmulatorConfig::ephemeral()
    })
    .await;
    other.unlimited().await;
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo").to_str().unwrap().to_string();
    let config = config_file(
        tmp.path(),
        &format!(
            "[profiles.staging]\naccount_id = \"{}\"\napi_token = \"{}\"\napi_base_url = \"{}\"\n",
            other.emu.account_id, other.emu.token, other.emu.api_url
        ),
    );
    let ns = seed(&main, "SESSIONS", 500).await;
    let with_config = |args: &[&str]| cfdr_with(&main, &repo, &config, args);
    ok(with_config(&["repo", "init"])).await;
    let b = ok_json(&main, &repo, &["backup", "kv", "SESSIONS", "--json"]).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let original = main.kv_dump(&ns).await;

    let out = output(with_config(&[
        "restore",
        &b,
        "--profile",
        "nowhere",
        "--yes",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no profile `nowhere`") && stderr(&out).contains("staging"));

    // Into the other account: a new namespace there, the main account untouched.
    main.control("POST", "/__emulator/stats/reset", None).await;
    let first = ok(with_config(&[
        "restore",
        &b,
        "--profile",
        "staging",
        "--yes",
        "--json",
    ]))
    .await;
    assert_eq!(first["report"]["outcome"], "success", "{first:#}");
    assert_eq!(first["plan"]["profile"], "staging");
    let copy = first["report"]["target"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    common::assert_same_kv(
        &other.kv_dump(&copy).await,
        &original,
        "the other account's copy",
    );
    assert_eq!(
        main.writes().await,
        0,
        "nothing is written to the main account"
    );

    // Damaged there and restored again: the snapshot is of the other account's namespace, and
    // the undo (no --profile given) goes back to that account by itself.
    other
        .kv_put(
            &copy,
            vec![json!({ "key": "user:00001", "value": "staging edit" })],
        )
        .await;
    let edited = other.kv_dump(&copy).await;
    let second = ok(with_config(&[
        "restore",
        &b,
        "--profile",
        "staging",
        "--yes",
        "--json",
    ]))
    .await;
    assert_eq!(second["report"]["outcome"], "success", "{second:#}");
    let run = second["report"]["run"].as_str().unwrap();
    let snapshot = second["report"]["snapshot"].as_str().unwrap();
    let shown = output(with_config(&["backups", "show", snapshot, "--json"])).await;
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(
        shown["manifest"]["target"]["account"],
        other.emu.account_id.as_str(),
        "{shown:#}"
    );
    let mismatch = output(with_config(&[
        "restore",
        "--undo",
        run,
        "--profile",
        "other",
        "--yes",
    ]))
    .await;
    assert_eq!(mismatch.status.code(), Some(2));
    let undo = ok(with_config(&["restore", "--undo", run, "--yes", "--json"])).await;
    assert_eq!(undo["report"]["outcome"], "success", "{undo:#}");
    common::assert_same_kv(
        &other.kv_dump(&copy).await,
        &edited,
        "undone in the other account",
    );
    assert_eq!(
        main.writes().await,
        0,
        "still nothing written to the main account"
    );
    common::assert_same_kv(
        &main.kv_dump(&ns).await,
        &original,
        "the main account's namespace",
    );
}

/// Runs `c` and returns its stdout as JSON (`null` when it is not); a failure panics with its
/// stderr.
async fn ok(c: Command) -> Value {
    let args = format!("{:?}", c.get_args().collect::<Vec<_>>());
    let out = output(c).await;
    assert!(out.status.success(), "{args}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}
