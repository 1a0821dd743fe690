//! `cfdr demo` in a real pseudo-terminal (portable-pty), its screen read back through a terminal
//! emulator (vt100): the inventory opens, a D1 backup's detail shows its checksums, a full verify
//! runs to its result, `b` takes a KV backup, `q` quits, and the terminal is left as it was found
//! (main screen, cursor shown, mouse reporting off). Then the second half, each checked through
//! the demo's API: support-portal restored through plan → typed name → run, and undone;
//! `kv-recovery` with a key prefix from the playbooks screen; a drill and its report; a restore
//! into a scratch copy (removed at its end) and a skip-mode restore (what the target has kept).

mod common;

use std::time::Duration;

use portable_pty::CommandBuilder;

const ROWS: u16 = 40;
const COLS: u16 = 120;

#[test]
fn the_demo_opens_verifies_backs_up_and_quits_cleanly() {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_cfdr"));
    cmd.arg("demo");
    cmd.env("TERM", "xterm-256color");
    cmd.env("HOME", home.path());
    cmd.env("XDG_CACHE_HOME", home.path().join("cache"));
    cmd.env("CFDR_CONFIG", "/nonexistent/cfdr.toml");
    let mut pty = common::pty::Pty::spawn(cmd, ROWS, COLS);
    let parser = pty.screen.0.clone();
    let screen = common::pty::Screen(parser.clone());
    let mut press = |k: &str| pty.press(k);

    // The inventory: every kind, the late and the never-backed-up targets.
    screen.wait_for("targets 12", Duration::from_secs(240));
    screen.wait_for("backups-secondary", Duration::from_secs(5));
    let inv = screen.text();
    assert!(inv.contains("LATE") && inv.contains("never"), "{inv}");
    assert!(
        inv.contains("API"),
        "the budget gauge is in the status bar: {inv}"
    );
    {
        let p = parser.lock().unwrap();
        assert!(
            p.screen().alternate_screen(),
            "the console draws on the alternate screen"
        );
    }

    // auth-prod (the first D1 row) → its backups → the newest one's detail.
    press("\r");
    screen.wait_for("D1 auth-prod", Duration::from_secs(5));
    press("\r");
    screen.wait_for("plaintext sha256", Duration::from_secs(10));
    screen.wait_for("never verified", Duration::from_secs(5));

    // A full verify, to its result.
    press("v");
    screen.wait_for("OK  full at", Duration::from_secs(60));
    assert!(
        screen.text().contains(": OK, 1 checked in full"),
        "{}",
        screen.text()
    );

    // Back to the inventory, down to the first KV namespace (after five D1 databases), back up.
    press("1");
    screen.wait_for("targets 12", Duration::from_secs(5));
    for _ in 0..5 {
        press("j");
    }
    press("b");
    screen.wait_for("of kv `CACHE`", Duration::from_secs(60));
    let after = screen.text();
    assert!(after.contains("keys ("), "{after}");

    // Help from the keymap, then quit.
    press("?");
    screen.wait_for("keys on this screen", Duration::from_secs(5));
    press("\x1b");
    press("q");
    let code = pty.wait(Duration::from_secs(30));
    assert_eq!(code, 0, "cfdr exits cleanly after q");
    std::thread::sleep(Duration::from_millis(300));
    let p = parser.lock().unwrap();
    let s = p.screen();
    assert!(!s.alternate_screen(), "the alternate screen was left");
    assert!(!s.hide_cursor(), "the cursor is shown again");
    assert_eq!(
        s.mouse_protocol_mode(),
        vt100::MouseProtocolMode::None,
        "mouse reporting is off again"
    );
}

/// `cfdr demo` in a pseudo-terminal, its inventory on screen: its home (kept while the test
/// runs), the terminal, its screen, and where its API is.
fn demo() -> (
    tempfile::TempDir,
    common::pty::Pty,
    common::pty::Screen,
    String,
) {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_cfdr"));
    cmd.arg("demo");
    cmd.env("TERM", "xterm-256color");
    cmd.env("HOME", home.path());
    cmd.env("XDG_CACHE_HOME", home.path().join("cache"));
    cmd.env("CFDR_CONFIG", "/nonexistent/cfdr.toml");
    let pty = common::pty::Pty::spawn(cmd, ROWS, COLS);
    let screen = common::pty::Screen(pty.screen.0.clone());
    screen.wait_for("targets 12", Duration::from_secs(240));
    let api = pty
        .word_after("the API at ")
        .expect("the demo says where its API is");
    (home, pty, screen, api)
}

/// From the inventory to the restore form of support-portal's newest backup: the fourth D1
/// database → its backups → the newest one → `R`.
fn restore_form_of_support_portal(pty: &mut common::pty::Pty, screen: &common::pty::Screen) {
    for _ in 0..3 {
        pty.press("j");
    }
    pty.press("\r");
    screen.wait_for("backups › d1 support-portal", Duration::from_secs(5));
    pty.press("\r");
    screen.wait_for("plaintext sha256", Duration::from_secs(10));
    pty.press("R");
    screen.wait_for("same target `support-portal`", Duration::from_secs(5));
}

/// From the inventory to the plan of restoring support-portal's newest backup over itself:
/// its restore form, then enter.
fn restore_plan_of_support_portal(pty: &mut common::pty::Pty, screen: &common::pty::Screen) {
    restore_form_of_support_portal(pty, screen);
    pty.press("\r");
    screen.wait_for(
        "enter: confirm by typing `support-portal`",
        Duration::from_secs(60),
    );
}

/// One request to the demo's API at `api` (the account's routes): the answer's body.
fn call(api: &str, method: &str, path: &str, body: Option<Vec<u8>>) -> Vec<u8> {
    let account = cfdr::emulator::DEFAULT_ACCOUNT_ID;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut req = cfdr::cloudflare::http()
            .build()
            .unwrap()
            .request(
                method.parse().unwrap(),
                format!("{api}/accounts/{account}{path}"),
            )
            .bearer_auth(cfdr::emulator::DEFAULT_TOKEN);
        if let Some(b) = body {
            req = req.body(b);
        }
        let answer = req.send().await.unwrap();
        assert!(
            answer.status().is_success(),
            "{method} {path}: {}",
            answer.status()
        );
        answer.bytes().await.unwrap().to_vec()
    })
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

/// The id of the demo's `list` entry (D1 database or KV namespace) named `name`.
fn id_of(api: &str, list: &str, name_field: &str, id_field: &str, name: &str) -> String {
    json(&call(api, "GET", &format!("{list}?per_page=100"), None))["result"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d[name_field] == name)
        .unwrap_or_else(|| panic!("{name} in {list}"))[id_field]
        .as_str()
        .unwrap()
        .to_string()
}

/// Runs `sql` on the demo's D1 database `name` through the API at `api`: the rows.
fn d1_rows(api: &str, name: &str, sql: &str) -> serde_json::Value {
    let uuid = id_of(api, "/d1/database", "name", "uuid", name);
    let body = serde_json::to_vec(&serde_json::json!({ "sql": sql })).unwrap();
    let answer = json(&call(
        api,
        "POST",
        &format!("/d1/database/{uuid}/query"),
        Some(body),
    ));
    assert_eq!(answer["success"], true, "{answer}");
    answer["result"][0]["results"].clone()
}

/// The demo's SESSIONS namespace, read and written through the API at `api`.
struct Sessions<'a> {
    api: &'a str,
    ns: String,
}

impl<'a> Sessions<'a> {
    fn of(api: &'a str) -> Self {
        let ns = id_of(api, "/storage/kv/namespaces", "title", "id", "SESSIONS");
        Self { api, ns }
    }

    /// Its `user:` keys, in order.
    fn user_keys(&self) -> Vec<String> {
        let path = format!("/storage/kv/namespaces/{}/keys?prefix=user:", self.ns);
        json(&call(self.api, "GET", &path, None))["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["name"].as_str().unwrap().to_string())
            .collect()
    }

    fn value(&self, method: &str, key: &str, body: Option<Vec<u8>>) -> Vec<u8> {
        let path = format!("/storage/kv/namespaces/{}/values/{key}", self.ns);
        call(self.api, method, &path, body)
    }

    fn get(&self, key: &str) -> Vec<u8> {
        self.value("GET", key, None)
    }

    fn put(&self, key: &str, v: &[u8]) {
        self.value("PUT", key, Some(v.to_vec()));
    }

    fn delete(&self, key: &str) {
        self.value("DELETE", key, None);
    }
}

/// What the test compares support-portal by: every ticket and message, as rows.
const STATE: &str = "SELECT (SELECT count(*) FROM tickets) AS tickets, \
    (SELECT group_concat(id) FROM (SELECT id FROM tickets ORDER BY id)) AS ids, \
    (SELECT count(*) FROM ticket_messages) AS messages";

#[test]
fn the_demo_restores_the_late_database_guided_and_undoes_it() {
    let (_home, mut pty, screen, api) = demo();

    // The incident: tickets deleted from the live database after its newest backup.
    d1_rows(
        &api,
        "support-portal",
        "DELETE FROM attachments WHERE ticket_id > 100",
    );
    d1_rows(
        &api,
        "support-portal",
        "DELETE FROM ticket_messages WHERE ticket_id > 100",
    );
    d1_rows(&api, "support-portal", "DELETE FROM tickets WHERE id > 100");
    let damaged = d1_rows(&api, "support-portal", STATE);
    assert_eq!(damaged[0]["tickets"], 100, "{damaged}");

    restore_plan_of_support_portal(&mut pty, &screen);
    assert!(
        screen.text().contains("pre-recovery snapshot"),
        "{}",
        screen.text()
    );
    pty.press("\r");
    screen.wait_for("Type `support-portal` to go on", Duration::from_secs(5));
    pty.press("support");
    pty.press("\r");
    screen.wait_for("exactly to go on", Duration::from_secs(5));
    pty.press("-portal");
    screen.wait_for("matches: enter goes on", Duration::from_secs(5));
    pty.press("\r");
    screen.wait_for("verified ✓", Duration::from_secs(180));
    let done = screen.text();
    assert!(
        done.contains("undo point") && done.contains("RTO"),
        "{done}"
    );
    let restored = d1_rows(&api, "support-portal", STATE);
    assert!(
        restored[0]["tickets"].as_u64().unwrap() > 100,
        "the deleted tickets are back: {restored}"
    );

    // Undo, its name typed too: the database is back as it was before the restore.
    pty.press("u");
    screen.wait_for("confirm the undo", Duration::from_secs(5));
    pty.press("support-portal");
    pty.press("\r");
    screen.wait_for("undone:", Duration::from_secs(180));
    assert_eq!(d1_rows(&api, "support-portal", STATE), damaged);
    pty.press("\x1b");
    pty.press("q");
    assert_eq!(pty.wait(Duration::from_secs(30)), 0);
}

#[test]
fn the_demo_runs_kv_recovery_with_a_key_prefix_from_the_playbooks_screen() {
    let (_home, mut pty, screen, api) = demo();

    // The incident: one `user:` key of SESSIONS overwritten; a key outside the prefix added.
    let sessions = Sessions::of(&api);
    let key = sessions.user_keys()[0].clone();
    let before = sessions.get(&key);
    sessions.put(&key, b"damaged");
    sessions.put("zz-outside", b"keep");

    // p → kv-recovery → its form: SESSIONS picked, the prefix typed → run.
    pty.press("p");
    screen.wait_for("kv-recovery", Duration::from_secs(10));
    pty.press("j");
    pty.press("\r");
    screen.wait_for("playbooks › kv-recovery", Duration::from_secs(5));
    pty.press_until("\t", "▸ namespace", 3);
    pty.press_until(" ", "‹ SESSIONS ›", 4);
    assert!(screen.text().contains("‹ SESSIONS ›"), "{}", screen.text());
    pty.press_until("\t", "▸ prefix", 3);
    pty.press("user:");
    pty.press("\r");
    screen.wait_for("Type its name to go on", Duration::from_secs(60));
    pty.press("SESSIONS");
    pty.press("\r");
    screen.wait_for("verified ✓", Duration::from_secs(120));
    let done = screen.text();
    assert!(done.contains("RTO") && done.contains("report"), "{done}");
    assert_eq!(
        sessions.get(&key),
        before,
        "the key under the prefix is back"
    );
    assert_eq!(
        sessions.get("zz-outside"),
        b"keep",
        "nothing outside the prefix was touched"
    );
    pty.press("\x1b");
    pty.press("q");
    assert_eq!(pty.wait(Duration::from_secs(30)), 0);
}

#[test]
fn the_demo_runs_a_drill_from_the_drills_screen_and_shows_its_report() {
    let (_home, mut pty, screen, api) = demo();
    pty.press("d");
    screen.wait_for("n starts a new one", Duration::from_secs(10));
    pty.press("n");
    screen.wait_for("a new drill", Duration::from_secs(5));
    // KV alone: d1 and r2 off.
    pty.press(" ");
    pty.press("j");
    pty.press("j");
    pty.press(" ");
    assert!(
        screen.text().contains("[ ] r2") && screen.text().contains("[x] kv"),
        "{}",
        screen.text()
    );
    pty.press("\r");
    screen.wait_for("full drill of kv verified ✓", Duration::from_secs(120));
    assert!(screen.text().contains("the drill report: d, then enter"));
    pty.press("\x1b");
    pty.press("d");
    screen.wait_for("kv", Duration::from_secs(10));
    pty.press("\r");
    screen.wait_for("Scenario Tested", Duration::from_secs(10));
    let report = screen.text();
    assert!(report.contains("RTO") && report.contains("met"), "{report}");
    // Every scratch namespace is gone, as the API lists them.
    let namespaces = call(&api, "GET", "/storage/kv/namespaces?per_page=100", None);
    assert!(!String::from_utf8_lossy(&namespaces).contains("-drill-"));
    pty.press("q");
    assert_eq!(pty.wait(Duration::from_secs(30)), 0);
}

#[test]
fn x_stops_a_restore_between_steps_and_t_goes_on_to_verified() {
    let (_home, mut pty, screen, api) = demo();
    // Every D1 request slowed, so the run is still going when x arrives.
    let origin = api.trim_end_matches("/client/v4");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let slow = |body: serde_json::Value| {
        rt.block_on(async {
            cfdr::cloudflare::http()
                .build()
                .unwrap()
                .post(format!("{origin}/__emulator/faults"))
                .bearer_auth(cfdr::emulator::DEFAULT_TOKEN)
                .json(&body)
                .send()
                .await
                .unwrap()
                .error_for_status()
                .unwrap();
        })
    };
    restore_plan_of_support_portal(&mut pty, &screen);
    pty.press("\r");
    pty.press("support-portal");
    slow(serde_json::json!({ "latency_ms": 250, "path_contains": "/d1/" }));
    pty.press("\r");
    screen.wait_for("snapshot", Duration::from_secs(10));
    pty.press("x");
    screen.wait_for("stopped at step", Duration::from_secs(120));
    let stopped = screen.text();
    assert!(
        stopped.contains("[ ] 5. verify"),
        "the run stopped before its end: {stopped}"
    );
    slow(serde_json::json!({}));
    pty.press("t");
    screen.wait_for("verified ✓", Duration::from_secs(120));
    pty.press("q");
    assert_eq!(pty.wait(Duration::from_secs(30)), 0);
}

#[test]
fn the_demo_restores_into_a_scratch_copy_and_a_skip_restore_keeps_what_the_target_has() {
    let (_home, mut pty, screen, api) = demo();
    let before = d1_rows(&api, "support-portal", STATE);

    // support-portal's newest backup into a scratch copy: no confirmation (nothing there is
    // written over), verified, then the copy removed; the live database untouched.
    restore_form_of_support_portal(&mut pty, &screen);
    pty.press("  ");
    screen.wait_for("removed at the end: nothing", Duration::from_secs(5));
    pty.press("\r");
    screen.wait_for("is new: nothing is overwritten", Duration::from_secs(60));
    let plan = screen.text();
    assert!(
        plan.contains("support-portal-drill-") && plan.contains("(to be created)"),
        "the plan names the scratch database the run creates: {plan}"
    );
    pty.press("\r");
    screen.wait_for("verified ✓", Duration::from_secs(180));
    screen.wait_for("` removed", Duration::from_secs(10));
    let databases = call(&api, "GET", "/d1/database?per_page=100", None);
    assert!(
        !String::from_utf8_lossy(&databases).contains("-drill-"),
        "the scratch copy is gone"
    );
    assert_eq!(d1_rows(&api, "support-portal", STATE), before);
    pty.press("u");
    screen.wait_for("nothing to undo", Duration::from_secs(5));
    pty.press("\x1b");

    // SESSIONS: one key changed, one deleted; restored in skip mode, the changed key is kept as
    // the target has it, the deleted one comes back, and the verification passes.
    let sessions = Sessions::of(&api);
    let names = sessions.user_keys();
    let (changed, deleted) = (&names[0], &names[1]);
    let was = sessions.get(deleted);
    sessions.put(changed, b"changed since");
    sessions.delete(deleted);
    pty.press("2");
    pty.press("/");
    pty.press("SESSIONS");
    pty.press("\r");
    screen.wait_for("filter \"SESSIONS\"", Duration::from_secs(5));
    pty.press("R");
    screen.wait_for("same target `SESSIONS`", Duration::from_secs(5));
    pty.press_until("\t", "▸ mode", 3);
    pty.press(" ");
    screen.wait_for("only keys the target lacks written", Duration::from_secs(5));
    pty.press("\r");
    screen.wait_for(
        "enter: confirm by typing `SESSIONS`",
        Duration::from_secs(60),
    );
    assert!(screen.text().contains("mode skip"), "{}", screen.text());
    pty.press("\r");
    pty.press("SESSIONS");
    pty.press("\r");
    screen.wait_for("verified ✓", Duration::from_secs(180));
    assert_eq!(
        sessions.get(changed),
        b"changed since",
        "skip kept the target's value"
    );
    assert_eq!(sessions.get(deleted), was, "the key it lacked is back");
    pty.press("\x1b");
    pty.press("q");
    assert_eq!(pty.wait(Duration::from_secs(30)), 0);
}

#[test]
fn the_demo_rolls_a_worker_back_from_the_workers_screen() {
    let (_home, mut pty, screen, api) = demo();
    let live_number = |script: &str| {
        let d = json(&call(
            &api,
            "GET",
            &format!("/workers/scripts/{script}/deployments"),
            None,
        ));
        let id = d["result"]["deployments"][0]["versions"][0]["version_id"].clone();
        let v = json(&call(
            &api,
            "GET",
            &format!("/workers/scripts/{script}/versions?deployable=true"),
            None,
        ));
        v["result"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["id"] == id)
            .map(|v| v["number"].as_u64().unwrap())
            .unwrap()
    };
    assert_eq!(live_number("api-gateway"), 3);

    // w: every Worker with its split (cron-jobs mid-rollout); api-gateway's plan and history.
    pty.press("w");
    screen.wait_for("v1 90 % · v2 10 %", Duration::from_secs(20));
    screen.wait_for("R: plan → type the name", Duration::from_secs(20));
    let shown = screen.text();
    assert!(shown.contains("rollback v3 100 % → v2 100 %"), "{shown}");
    assert!(shown.contains("recent deployments"), "{shown}");
    // R: the worker-rollback playbook asks for the name, deploys, verifies.
    pty.press("R");
    screen.wait_for("Type its name to go on", Duration::from_secs(30));
    pty.press("api-gateway");
    pty.press("\r");
    screen.wait_for("Worker rollback verified ✓", Duration::from_secs(60));
    let done = screen.text();
    assert!(
        done.contains("v3 100 % → v2 100 % live, verified"),
        "{done}"
    );
    assert_eq!(live_number("api-gateway"), 2, "through the API: v2 serves");
    pty.press("\x1b");
    pty.press("q");
    assert_eq!(pty.wait(Duration::from_secs(30)), 0);
}
