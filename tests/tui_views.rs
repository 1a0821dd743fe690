//! The console's screens as insta snapshots at 80×24 and 120×40, from a fixed repository state
//! (fixed ids, times and clock, so nothing needs masking), and renders into tiny and zero-size
//! areas that must not panic. The state is driven through `App::handle` with real key events,
//! as the event loop drives it.

use cfdr::config::Config;
use cfdr::progress::ProgressEvent;
use cfdr::repo::{Artifact, Entry, Kind, Manifest, Target, VerifyReport};
use cfdr::tui::state::{App, Event, Info, JobEvent, Loaded};
use cfdr::tui::view;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::{Terminal, backend::TestBackend};
use serde_json::json;

const NOW: time::OffsetDateTime = time::macros::datetime!(2026-11-23 12:00 UTC);

fn entry(id: &str, kind: &str, target: &str, started: &str, size: u64, warnings: usize) -> Entry {
    Entry {
        id: id.into(),
        kind: kind.into(),
        target: target.into(),
        target_id: format!("{target}-0001"),
        trigger: if warnings > 0 { "scheduled" } else { "manual" }.into(),
        method: match kind {
            "d1" => "export",
            "kv" => "bulk-get",
            "r2" => "s3",
            _ => "online-backup",
        }
        .into(),
        started: started.into(),
        finished: started.into(),
        plaintext_size: size,
        stored_size: size + 59,
        artifacts: 1,
        warnings,
        dir: String::new(),
    }
}

fn entries() -> Vec<Entry> {
    vec![
        entry(
            "2026-11-21T10-00-00Z-aa01",
            "d1",
            "auth-prod",
            "2026-11-21T10:00:00Z",
            3_800_000,
            0,
        ),
        entry(
            "2026-11-21T11-00-00Z-aa02",
            "kv",
            "SESSIONS",
            "2026-11-21T11:00:00Z",
            640_000,
            0,
        ),
        entry(
            "2026-11-22T09-00-00Z-aa03",
            "d1",
            "support-portal",
            "2026-11-22T09:00:00Z",
            3_400_000,
            1,
        ),
        entry(
            "2026-11-22T10-00-00Z-aa04",
            "d1",
            "auth-prod",
            "2026-11-22T10:00:00Z",
            3_900_000,
            0,
        ),
        entry(
            "2026-11-23T08-30-00Z-aa05",
            "kv",
            "SESSIONS",
            "2026-11-23T08:30:00Z",
            650_000,
            0,
        ),
        entry(
            "2026-11-23T09-00-00Z-aa06",
            "r2",
            "evidence",
            "2026-11-23T09:00:00Z",
            8_400,
            0,
        ),
        entry(
            "2026-11-23T10-00-00Z-aa07",
            "d1",
            "auth-prod",
            "2026-11-23T10:00:00Z",
            4_000_000,
            0,
        ),
        entry(
            "2026-11-23T11-00-00Z-aa08",
            "sqlite",
            "orders-edge",
            "2026-11-23T11:00:00Z",
            176_000,
            1,
        ),
    ]
}

fn manifest() -> Manifest {
    Manifest {
        format: "cfdr.manifest/1".into(),
        id: "2026-11-23T10-00-00Z-aa07".into(),
        kind: Kind::D1,
        target: Target {
            account: Some("cfd00000000000000000000000000de0".into()),
            id: "auth-prod-0001".into(),
            name: "auth-prod".into(),
        },
        trigger: "manual".into(),
        method: "export".into(),
        consistency_point: Some(json!({ "bookmark": "00000042-00000007-00004f2a-c3a1" })),
        started: "2026-11-23T10:00:00Z".into(),
        finished: "2026-11-23T10:00:04.2Z".into(),
        artifacts: vec![Artifact {
            name: "dump.sql".into(),
            format: "d1-sql-dump".into(),
            plaintext_size: 4_000_000,
            plaintext_sha256: "9f2c".repeat(16),
            stored_size: 4_000_291,
            stored_sha256: "41be".repeat(16),
            chunk_size: 1 << 20,
            chunks: 4,
        }],
        stats: json!({ "requests": 31, "tables": [
            { "name": "users", "rows": 12000, "sha256": "a1".repeat(32) },
            { "name": "sessions", "rows": 48211, "sha256": "b2".repeat(32) },
            { "name": "oauth_tokens", "rows": 3107, "sha256": "c3".repeat(32) },
        ]}),
        warnings: vec![],
        parent: None,
        blobs: vec![],
        tool_version: "cfdr 0.1.0".into(),
        key_id: "8c41d2e0".into(),
        mac: "00".into(),
    }
}

fn app() -> App {
    let mut config = Config::default();
    config.rpo.insert(
        "d1/support-portal".into(),
        std::time::Duration::from_secs(3600),
    );
    config.rpo.insert(
        "kv/SESSIONS".into(),
        std::time::Duration::from_secs(4 * 3600),
    );
    let mut app = App::new(
        Info {
            account: Some("cfd00000000000000000000000000de0".into()),
            repo: "/srv/cfdr/repo".into(),
            read_only: false,
        },
        config,
        NOW,
        false,
    );
    app.handle(Event::Loaded(Loaded::Catalog(Ok(entries()))));
    app.handle(Event::Loaded(Loaded::Targets(Ok(vec![
        ("r2".into(), "backups-secondary".into()),
        ("kv".into(), "CACHE".into()),
    ]))));
    app.handle(Event::Budget(Some(cfdr::cloudflare::BudgetState {
        limit: 1200,
        window_secs: 300,
        available: 1120,
        sent: 80,
        server_remaining: None,
    })));
    app
}

fn key(app: &mut App, code: KeyCode) -> Vec<cfdr::tui::state::Command> {
    app.handle(Event::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

fn keys(app: &mut App, text: &str) {
    for c in text.chars() {
        key(app, KeyCode::Char(c));
    }
}

fn terminal(app: &App, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| view::render(app, f)).unwrap();
    t
}

fn draw(app: &App, w: u16, h: u16) -> String {
    terminal(app, w, h).backend().to_string()
}

fn both(name: &str, app: &App) {
    insta::assert_snapshot!(format!("{name}_80x24"), draw(app, 80, 24));
    insta::assert_snapshot!(format!("{name}_120x40"), draw(app, 120, 40));
}

/// An app on a backup's detail: inventory → auth-prod → its newest backup.
fn on_detail() -> App {
    let mut a = app();
    let cmds = key(&mut a, KeyCode::Enter);
    assert!(cmds.is_empty());
    let cmds = key(&mut a, KeyCode::Enter);
    assert_eq!(
        cmds,
        [cfdr::tui::state::Command::LoadManifest(
            "2026-11-23T10-00-00Z-aa07".into()
        )]
    );
    a.handle(Event::Loaded(Loaded::Manifest(
        "2026-11-23T10-00-00Z-aa07".into(),
        Ok(Box::new((manifest(), None))),
    )));
    a
}

#[test]
fn inventory() {
    both("inventory", &app());
}

#[test]
fn the_inventory_shows_each_targets_last_drill() {
    let mut a = app();
    let report = |id: &str, finished: &str, targets: serde_json::Value| cfdr::tui::drills::Report {
        json: json!({ "id": id, "scenario": "full", "outcome": "partial", "finished": finished,
                      "targets": targets }),
        markdown: String::new(),
    };
    a.handle(Event::Loaded(Loaded::Drills(Ok(vec![
        report(
            "2026-11-20T09-00-00Z-aaaa",
            "2026-11-20T09:05:00Z",
            json!([{ "kind": "d1", "name": "auth-prod", "result": "failed", "measures": {} },
                   { "kind": "kv", "name": "SESSIONS", "result": "passed", "measures": {} }]),
        ),
        // The newer drill of auth-prod is the one shown.
        report(
            "2026-11-22T09-00-00Z-bbbb",
            "2026-11-22T09:10:00Z",
            json!([{ "kind": "d1", "name": "auth-prod", "result": "passed", "measures": {} }]),
        ),
    ]))));
    let screen = draw(&a, 80, 24);
    let row = |name: &str| {
        screen
            .lines()
            .find(|l| l.contains(name))
            .unwrap()
            .to_string()
    };
    assert!(row("auth-prod").contains("✓ 26h"), "{}", row("auth-prod"));
    assert!(row("SESSIONS").contains("✓ 3d"), "{}", row("SESSIONS"));
    assert!(row("support-portal").contains(" - "), "never drilled");
    both("inventory_drills", &a);
}

#[test]
fn read_only_shows_every_write_off_with_why() {
    let mut a = on_detail();
    a.info.read_only = true;
    key(&mut a, KeyCode::Char('?'));
    let help = draw(&a, 120, 40);
    for off in [
        "verify backup (full)",
        "back up target now",
        "restore: plan",
    ] {
        let line = help.lines().find(|l| l.contains(off)).unwrap();
        assert!(line.contains("off (read-only)"), "{line}");
    }
    let open = help.lines().find(|l| l.contains("help")).unwrap();
    assert!(!open.contains("read-only"), "reading is not off: {open}");
    both("help_read_only", &a);
    key(&mut a, KeyCode::Esc);
    key(&mut a, KeyCode::Char(':'));
    keys(&mut a, "verify");
    assert!(draw(&a, 80, 24).contains("verify backup (full) (read-only)"));
    key(&mut a, KeyCode::Esc);
    for k in ['v', 'b', 'R'] {
        a.message = None;
        assert!(
            key(&mut a, KeyCode::Char(k)).is_empty(),
            "{k} starts nothing"
        );
        assert!(
            a.message.as_ref().unwrap().1.contains("read-only"),
            "{k}: {:?}",
            a.message
        );
    }
}

#[test]
fn backups_of_all_targets_sorted_and_filtered() {
    let mut a = app();
    key(&mut a, KeyCode::Char('a'));
    both("backups_all", &a);
    key(&mut a, KeyCode::Char('s'));
    both("backups_by_size", &a);
    key(&mut a, KeyCode::Char('/'));
    keys(&mut a, "auth");
    both("backups_filter_editing", &a);
    key(&mut a, KeyCode::Enter);
    assert_eq!(a.list.len(), 3);
}

#[test]
fn backups_of_one_target() {
    let mut a = app();
    key(&mut a, KeyCode::Down);
    key(&mut a, KeyCode::Down);
    key(&mut a, KeyCode::Enter);
    both("backups_support_portal", &a);
}

#[test]
fn detail_and_its_verification() {
    let mut a = on_detail();
    both("detail_unverified", &a);
    let cmds = key(&mut a, KeyCode::Char('v'));
    let job = match &cmds[..] {
        [cfdr::tui::state::Command::Verify { job, id }] => {
            assert_eq!(id, "2026-11-23T10-00-00Z-aa07");
            *job
        }
        other => panic!("{other:?}"),
    };
    a.handle(Event::Job(
        job,
        JobEvent::Progress(ProgressEvent {
            job: "verify".into(),
            phase: "verify".into(),
            unit: "artifacts",
            done: 1,
            total: Some(1),
            bytes: 1_500_000,
            bytes_total: Some(4_000_000),
            rate: 750_000_000.0,
            elapsed_ms: 2000,
            message: None,
            finished: false,
        }),
    ));
    both("detail_verifying", &a);
    // A second job while one runs is refused, and says why.
    assert!(key(&mut a, KeyCode::Char('b')).is_empty());
    a.handle(Event::Job(
        job,
        JobEvent::Verified(VerifyReport {
            id: "2026-11-23T10-00-00Z-aa07".into(),
            at: "2026-11-23T12:00:03Z".into(),
            mode: "full".into(),
            ok: true,
            artifacts_checked: 1,
            bytes_checked: 4_000_291,
            problems: vec![],
        }),
    ));
    a.handle(Event::Job(
        job,
        JobEvent::Finished(Ok("verified 2026-11-23T10-00-00Z-aa07: OK".into())),
    ));
    both("detail_verified", &a);
}

#[test]
fn help_and_palette_overlays() {
    let mut a = on_detail();
    key(&mut a, KeyCode::Char('?'));
    both("help_detail", &a);
    key(&mut a, KeyCode::Esc);
    let mut a = app();
    key(&mut a, KeyCode::Char('?'));
    both("help_inventory", &a);
    key(&mut a, KeyCode::Esc);
    key(&mut a, KeyCode::Char(':'));
    keys(&mut a, "back");
    both("palette", &a);
    // Enter runs the action picked: "back up target now" on the inventory's first target.
    let cmds = key(&mut a, KeyCode::Enter);
    assert!(matches!(
        &cmds[..],
        [cfdr::tui::state::Command::Backup { .. }]
    ));
}

#[test]
fn a_backup_in_progress_and_its_failure() {
    let mut a = app();
    key(&mut a, KeyCode::End);
    key(&mut a, KeyCode::Up);
    let cmds = key(&mut a, KeyCode::Char('b'));
    let job = match &cmds[..] {
        [cfdr::tui::state::Command::Backup { job, what }] => {
            assert_eq!(what.label(), "r2 `evidence`");
            *job
        }
        other => panic!("{other:?}"),
    };
    a.handle(Event::Job(
        job,
        JobEvent::Progress(ProgressEvent {
            job: "r2 `evidence`".into(),
            phase: "download".into(),
            unit: "objects",
            done: 7,
            total: Some(12),
            bytes: 6_000_000,
            bytes_total: Some(9_000_000),
            rate: 3_000_000.0,
            elapsed_ms: 2000,
            message: None,
            finished: false,
        }),
    ));
    both("backup_running", &a);
    let cmds = a.handle(Event::Job(
        job,
        JobEvent::Finished(Err("R2 (S3) `evidence`: connection refused".into())),
    ));
    assert_eq!(
        cmds,
        [cfdr::tui::state::Command::LoadCatalog],
        "the list is read again"
    );
    both("backup_failed", &a);
}

#[test]
fn tiny_and_empty_areas_do_not_panic() {
    let mut a = on_detail();
    for (w, h) in [(0, 0), (1, 1), (0, 10), (10, 0), (5, 3), (20, 5), (40, 8)] {
        terminal(&a, w, h);
    }
    key(&mut a, KeyCode::Char('?'));
    for (w, h) in [(1, 1), (5, 3), (20, 5)] {
        terminal(&a, w, h);
    }
    let mut empty = App::new(Info::default(), Config::default(), NOW, false);
    empty.handle(Event::Loaded(Loaded::Catalog(Ok(vec![]))));
    insta::assert_snapshot!("empty_repository_80x24", draw(&empty, 80, 24));
    for (w, h) in [(0, 0), (3, 2)] {
        terminal(&empty, w, h);
    }
}

#[test]
fn read_only_refuses_writes_and_quit_quits() {
    let mut a = app();
    a.info.read_only = true;
    assert!(key(&mut a, KeyCode::Char('b')).is_empty());
    assert!(a.message.as_ref().unwrap().1.contains("read-only"));
    assert!(draw(&a, 80, 24).contains("READ-ONLY"));
    key(&mut a, KeyCode::Char('q'));
    assert!(a.quit);
}

#[test]
fn x_and_esc_cancel_the_running_job() {
    let mut a = on_detail();
    key(&mut a, KeyCode::Char('v'));
    let flag = a.running().unwrap().cancel.clone();
    key(&mut a, KeyCode::Char('x'));
    assert!(flag.load(std::sync::atomic::Ordering::Relaxed));
    assert!(
        a.message
            .as_ref()
            .unwrap()
            .1
            .starts_with("cancelling verify")
    );
    // On the first screen, esc has nowhere to go back to: it cancels too.
    let mut b = app();
    key(&mut b, KeyCode::Char('b'));
    let flag = b.running().unwrap().cancel.clone();
    key(&mut b, KeyCode::Esc);
    assert!(flag.load(std::sync::atomic::Ordering::Relaxed));
}

/// The plan of restoring auth-prod's newest backup over itself, tables `users`, as
/// `cfdr restore --dry-run --json` prints one.
fn plan() -> cfdr::ops::restore::Plan {
    serde_json::from_value(json!({
        "format": "cfdr.restore-plan/1", "run": "2026-11-23T12-00-00Z-b001",
        "backup": "2026-11-23T10-00-00Z-aa07", "source": "auth-prod",
        "target": { "kind": "d1", "id": "auth-prod-0001", "name": "auth-prod", "exists": true },
        "mode": "overwrite", "prefix": null, "created": "2026-11-23T12:00:00Z", "at": 1795435200,
        "counts": { "added": 0, "changed": 1, "kept": 0, "removed": 0, "unchanged": 0,
                    "expired": 0, "write_bytes": 1_480_000 },
        "snapshot": "required",
        "requests": { "by_step": { "import": 2, "snapshot": 31, "verify": 13 }, "total": 46,
                      "budget_wait_secs": 0.0, "eta_secs": 2.4 },
        "undo_of": null, "units": [{ "op": "put", "keys": ["users"] }],
        "kept_keys": [], "expired_keys": [],
        "d1": { "tables": [{ "name": "users", "action": "replace", "rows_now": 11890, "rows_after": 12000 }],
                "drops": [{ "kind": "table", "name": "users" }], "import": ["users"], "whole": false },
    }))
    .unwrap()
}

/// A runner event at `s` seconds after NOW.
fn at(s: i64) -> i64 {
    NOW.unix_timestamp() * 1000 + s * 1000
}

#[test]
fn r_on_the_inventory_restores_the_targets_newest_backup_not_its_pre_recovery_snapshot() {
    let mut a = app();
    assert!(
        draw(&a, 80, 24).contains("R restore"),
        "the footer offers it"
    );
    // auth-prod's newest backup is a pre-recovery snapshot taken before an earlier restore.
    let mut with_snapshot = entries();
    let mut snap = with_snapshot
        .iter()
        .find(|e| e.target == "auth-prod")
        .unwrap()
        .clone();
    snap.id = "2026-11-23T11-59-00Z-ff01".into();
    snap.started = "2026-11-23T11:59:00Z".into();
    snap.trigger = "pre-recovery".into();
    with_snapshot.push(snap);
    a.handle(Event::Loaded(Loaded::Catalog(Ok(with_snapshot))));
    assert!(key(&mut a, KeyCode::Char('R')).is_empty());
    let r = a.recovery.as_ref().expect("the restore form");
    assert_eq!(
        r.backup.id, "2026-11-23T10-00-00Z-aa07",
        "the newest real backup"
    );
    assert_eq!(*a.screen(), cfdr::tui::state::Screen::Restore);
    // A target never backed up has nothing to restore: said, nothing opened.
    let mut b = app();
    key(&mut b, KeyCode::End);
    key(&mut b, KeyCode::Up);
    key(&mut b, KeyCode::Up);
    assert!(key(&mut b, KeyCode::Char('R')).is_empty());
    assert!(b.recovery.is_none());
    assert!(
        b.message
            .as_ref()
            .unwrap()
            .1
            .contains("no backup to restore yet"),
        "{:?}",
        b.message
    );
}

#[test]
fn a_guided_restore_plan_confirm_run_verified_and_undo() {
    use cfdr::playbook::runner::Event as Run;
    use cfdr::tui::state::Command;
    let mut a = on_detail();
    assert!(
        draw(&a, 80, 24).contains("R restore"),
        "the footer offers it"
    );
    assert!(key(&mut a, KeyCode::Char('R')).is_empty());
    both("restore_form", &a);
    // Tab to the tables, type one; enter plans it (a dry run).
    key(&mut a, KeyCode::Tab);
    keys(&mut a, "users");
    let cmds = key(&mut a, KeyCode::Enter);
    assert_eq!(
        cmds[0].job(),
        Some(a.running().unwrap().id),
        "the event loop hands the work its job's cancel flag"
    );
    let (job, choice) = match &cmds[..] {
        [
            Command::PlanRestore {
                job,
                backup,
                choice,
            },
        ] => {
            assert_eq!(backup, "2026-11-23T10-00-00Z-aa07");
            assert_eq!(choice.tables, ["users"]);
            (*job, choice.clone())
        }
        other => panic!("{other:?}"),
    };
    a.handle(Event::Job(job, JobEvent::Planned(Ok(Box::new(plan())))));
    a.handle(Event::Job(job, JobEvent::Finished(Ok("plan ready".into()))));
    both("restore_plan", &a);

    // Enter asks for the name; a wrong one keeps the action disabled, esc backs out unwritten.
    assert!(key(&mut a, KeyCode::Enter).is_empty());
    keys(&mut a, "auth");
    assert!(key(&mut a, KeyCode::Enter).is_empty(), "does not match yet");
    assert!(
        a.message
            .as_ref()
            .unwrap()
            .1
            .contains("type `auth-prod` exactly")
    );
    both("restore_confirm_wrong", &a);
    assert!(key(&mut a, KeyCode::Esc).is_empty());
    assert!(draw(&a, 120, 40).contains("enter: confirm by typing `auth-prod`"));
    key(&mut a, KeyCode::Enter);
    keys(&mut a, "auth-prod");
    both("restore_confirm_right", &a);
    let cmds = key(&mut a, KeyCode::Enter);
    let job = match &cmds[..] {
        [
            Command::RunRestore {
                job,
                backup,
                choice: c,
                confirmed,
            },
        ] => {
            assert_eq!(
                (backup.as_str(), confirmed.as_str()),
                ("2026-11-23T10-00-00Z-aa07", "auth-prod")
            );
            assert_eq!(c, &choice);
            *job
        }
        other => panic!("{other:?}"),
    };

    // The run, as the runner reports it: the same steps `recover::run` builds.
    let entry = a
        .entries
        .iter()
        .find(|e| e.id == "2026-11-23T10-00-00Z-aa07")
        .unwrap()
        .clone();
    let mut run = cfdr::playbook::recover::run(&entry, &choice, (900, 86_400), NOW);
    run.id = "2026-11-23T12-00-00Z-c001".into();
    run.by = "dana@ops-1".into();
    let done = |s: i64, note: &str, facts: &[(&str, &str)]| Run::Done {
        at_ms: at(s),
        note: note.into(),
        facts: facts
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    run.handle(Run::Go { at_ms: at(0) });
    run.handle(done(
        1,
        "backup 2026-11-23T10-00-00Z-aa07 verified: 1 artifacts",
        &[],
    ));
    run.handle(done(
        4,
        "pre-recovery snapshot 2026-11-23T12-00-04Z-d001 of d1 `auth-prod`",
        &[("snapshot", "2026-11-23T12-00-04Z-d001")],
    ));
    run.handle(done(
        4,
        "confirmed d1 `auth-prod` (typed in the console by dana@ops-1)",
        &[],
    ));
    run.handle(Run::Fact {
        key: "restore_run".into(),
        value: "2026-11-23T12-00-05Z-e001".into(),
    });
    a.handle(Event::Tick(
        time::OffsetDateTime::from_unix_timestamp(at(7) / 1000).unwrap(),
    ));
    a.handle(Event::Job(job, JobEvent::Run(Box::new(run.clone()))));
    a.handle(Event::Job(
        job,
        JobEvent::Line("step 4/5 restore: Restore … into d1 `auth-prod`".into()),
    ));
    a.handle(Event::Job(
        job,
        JobEvent::Progress(ProgressEvent {
            job: "step 4/5 restore".into(),
            phase: "import".into(),
            unit: "bytes",
            done: 0,
            total: None,
            bytes: 600_000,
            bytes_total: Some(1_480_000),
            rate: 300_000.0,
            elapsed_ms: 2000,
            message: None,
            finished: false,
        }),
    ));
    both("restore_running", &a);
    assert!(key(&mut a, KeyCode::Esc).is_empty());
    assert!(
        a.message.as_ref().unwrap().1.contains("x stops it"),
        "esc does not leave a run"
    );

    // A failed restore step offers a retry from that step.
    let mut failed = run.clone();
    failed.handle(Run::Failed {
        at_ms: at(9),
        error: "D1 refused the import: table users is locked".into(),
    });
    a.handle(Event::Job(job, JobEvent::Run(Box::new(failed.clone()))));
    a.handle(Event::Job(job, JobEvent::Finished(Err("failed".into()))));
    both("restore_failed", &a);
    let cmds = key(&mut a, KeyCode::Char('t'));
    assert_eq!(
        cmds[0].job(),
        Some(a.running().unwrap().id),
        "x stops a retried run too"
    );
    let job = match &cmds[..] {
        [Command::ResumeRun { job, run, answers }] => {
            assert_eq!(run, "2026-11-23T12-00-00Z-c001");
            assert_eq!(answers.confirmed.as_deref(), Some("auth-prod"));
            *job
        }
        other => panic!("{other:?}"),
    };

    // Verified: the snapshot, the undo point, RTO/RPO, and u to undo (its name typed too).
    run.handle(done(9, "restore run 2026-11-23T12-00-05Z-e001: 1 tables overwritten; verified 1 tables, 0 differences",
        &[("restore_run", "2026-11-23T12-00-05Z-e001"), ("consistency_ms", &at(-7200).to_string())]));
    run.handle(done(
        11,
        "d1 `auth-prod` equals backup 2026-11-23T10-00-00Z-aa07: 1 tables compared",
        &[],
    ));
    a.handle(Event::Job(job, JobEvent::Run(Box::new(run.clone()))));
    a.handle(Event::Job(job, JobEvent::Finished(Ok("verified".into()))));
    both("restore_verified", &a);
    assert!(key(&mut a, KeyCode::Char('u')).is_empty());
    keys(&mut a, "auth-prod");
    let cmds = key(&mut a, KeyCode::Enter);
    let job = match &cmds[..] {
        [Command::Undo { job, run }] => {
            assert_eq!(run, "2026-11-23T12-00-05Z-e001");
            *job
        }
        other => panic!("{other:?}"),
    };
    a.handle(Event::Job(job, JobEvent::Finished(Ok(
        "undone: d1 `auth-prod` is back as it was before run 2026-11-23T12-00-05Z-e001: success, 0 differences after".into(),
    ))));
    both("restore_undone", &a);
    key(&mut a, KeyCode::Esc);
    assert!(a.recovery.is_none(), "esc leaves once it is over");
    for (w, h) in [(0, 0), (1, 1), (10, 3), (30, 6)] {
        terminal(&a, w, h);
    }
}

#[test]
fn read_only_shows_restore_refused_with_why() {
    let mut a = on_detail();
    a.info.read_only = true;
    assert!(key(&mut a, KeyCode::Char('R')).is_empty());
    assert!(a.recovery.is_none());
    assert!(a.message.as_ref().unwrap().1.contains("read-only"));
}

fn trail() -> Vec<cfdr::repo::audit::Entry> {
    let e = |seq: u64, at: &str, action: &str, target: &str, result: &str, detail: &str| {
        cfdr::repo::audit::Entry {
            seq,
            at: at.into(),
            who: "dana@ops-1".into(),
            record: cfdr::repo::audit::Record {
                action: action.into(),
                target: Some(target.into()),
                result: result.into(),
                seconds: Some(1.5),
                detail: Some(detail.into()),
                ..Default::default()
            },
            prev: String::new(),
            mac: String::new(),
        }
    };
    vec![
        e(
            1,
            "2026-11-22T09:00:03Z",
            "backup",
            "d1 `support-portal`",
            "success",
            "trigger manual",
        ),
        e(
            2,
            "2026-11-23T08:30:02Z",
            "backup",
            "kv `SESSIONS`",
            "success",
            "trigger scheduled",
        ),
        e(
            3,
            "2026-11-23T09:00:00Z",
            "backup",
            "d1 `support-portal`",
            "failed",
            "Cloudflare answered 500 to POST /export",
        ),
        e(
            4,
            "2026-11-23T10:00:04Z",
            "verify",
            "d1 `auth-prod`",
            "success",
            "1 artifacts checked in full",
        ),
        e(
            5,
            "2026-11-23T11:00:00Z",
            "restore",
            "kv `SESSIONS`",
            "partial",
            "0 created, 12 overwritten, 0 deleted, 2 failed",
        ),
    ]
}

#[test]
fn the_audit_trail_and_the_status_screens() {
    use cfdr::tui::state::Command;
    let mut a = app();
    assert_eq!(key(&mut a, KeyCode::Char('3')), [Command::LoadAudit]);
    both("audit_loading", &a);
    a.handle(Event::Loaded(Loaded::Audit(Ok(trail()))));
    both("audit", &a);
    key(&mut a, KeyCode::Char('/'));
    keys(&mut a, "support");
    key(&mut a, KeyCode::Enter);
    both("audit_filtered", &a);
    let shown = draw(&a, 120, 40);
    assert!(
        shown.contains("2 shown") && !shown.contains("SESSIONS"),
        "{shown}"
    );

    assert_eq!(key(&mut a, KeyCode::Char('4')), [Command::LoadStatus]);
    let entries = entries();
    let trail = trail();
    let status = cfdr::ops::status::compute(&cfdr::ops::status::Inputs {
        entries: &entries,
        known: &[("kv".into(), "CACHE".into())],
        drills: &[],
        audit: &trail,
        config: &a.config,
        now: NOW,
    });
    a.handle(Event::Loaded(Loaded::Status(Ok(Box::new(status)))));
    both("status", &a);
    assert!(a.message.as_ref().unwrap().1.contains("past their RPO"));
    for (w, h) in [(0, 0), (1, 1), (12, 4)] {
        terminal(&a, w, h);
    }
}

#[test]
fn the_playbooks_a_form_and_a_run_that_asks_for_a_name_and_a_checklist() {
    use cfdr::playbook::runner::{Act, Event as Run, Step, item};
    use cfdr::tui::state::Command;
    let mut a = app();
    assert_eq!(key(&mut a, KeyCode::Char('p')), [Command::LoadPlaybooks]);
    let lib = cfdr::playbook::library::load(None);
    let books = lib
        .playbooks
        .iter()
        .map(cfdr::tui::playbooks::Book::of)
        .collect();
    a.handle(Event::Loaded(Loaded::Playbooks(Ok(books))));
    both("playbooks", &a);

    // d1-recovery's form: the database picked from the inventory, the backup `latest`.
    key(&mut a, KeyCode::Enter);
    let form = a.books.form.as_ref().unwrap();
    let db = form
        .book
        .params
        .iter()
        .position(|p| p.name == "database")
        .unwrap();
    while a.books.form.as_ref().unwrap().field != db {
        key(&mut a, KeyCode::Tab);
    }
    key(&mut a, KeyCode::Char(' '));
    assert_eq!(a.books.form.as_ref().unwrap().values[db], "support-portal");
    both("playbook_params", &a);
    let cmds = key(&mut a, KeyCode::Enter);
    let job = match &cmds[..] {
        [Command::StartPlaybook { job, id, params }] => {
            assert_eq!(id, "d1-recovery");
            assert_eq!(params["database"], "support-portal");
            assert_eq!(params["backup"], "latest");
            *job
        }
        other => panic!("{other:?}"),
    };

    // The run stops at its confirmation: the name is asked for over the steps.
    let entry = a
        .entries
        .iter()
        .find(|e| e.target == "support-portal")
        .unwrap()
        .clone();
    let same = cfdr::playbook::recover::Choice {
        into: cfdr::playbook::recover::Dest::Same,
        tables: vec![],
        prefix: None,
        mode: Default::default(),
    };
    let mut run = cfdr::playbook::recover::run(&entry, &same, (900, 86_400), NOW);
    run.id = "2026-11-23T12-00-00Z-f001".into();
    run.by = "dana@ops-1".into();
    run.playbook = "d1-recovery".into();
    run.title = "D1 database recovery".into();
    run.steps.push(Step {
        title: "Check the application that uses support-portal".into(),
        kind: "manual".into(),
        items: vec![item(Act::Manual {
            text: "Check the application that uses support-portal".into(),
            checklist: vec![
                "The health check passes".into(),
                "Error rates are normal".into(),
            ],
        })],
    });
    let done = |s: i64, note: &str| Run::Done {
        at_ms: at(s),
        note: note.into(),
        facts: Default::default(),
    };
    run.handle(Run::Go { at_ms: at(0) });
    run.handle(done(1, "backup verified"));
    run.handle(done(2, "pre-recovery snapshot 2026-11-23T12-00-02Z-d002"));
    run.handle(Run::Stop {
        at_ms: at(2),
        why: "waiting for `support-portal` typed".into(),
    });
    a.handle(Event::Job(job, JobEvent::Run(Box::new(run.clone()))));
    a.handle(Event::Job(
        job,
        JobEvent::Finished(Err("stopped at step 3".into())),
    ));
    both("playbook_confirm", &a);
    keys(&mut a, "support-portal");
    let cmds = key(&mut a, KeyCode::Enter);
    let job = match &cmds[..] {
        [
            Command::ResumeRun {
                job,
                run: id,
                answers,
            },
        ] => {
            assert_eq!(id, "2026-11-23T12-00-00Z-f001");
            assert_eq!(answers.confirmed.as_deref(), Some("support-portal"));
            *job
        }
        other => panic!("{other:?}"),
    };
    // Confirmed, restored, verified; then the checklist, ticked item by item.
    run.handle(Run::Go { at_ms: at(3) });
    run.handle(done(3, "confirmed d1 `support-portal`"));
    run.handle(done(5, "restore run 2026-11-23T12-00-03Z-e003: verified"));
    run.handle(done(6, "d1 `support-portal` equals the backup"));
    run.handle(Run::Stop {
        at_ms: at(6),
        why: "waiting for the checklist".into(),
    });
    a.handle(Event::Job(job, JobEvent::Run(Box::new(run.clone()))));
    a.handle(Event::Job(
        job,
        JobEvent::Finished(Err("stopped at step 6".into())),
    ));
    key(&mut a, KeyCode::Char(' '));
    assert!(
        key(&mut a, KeyCode::Enter).is_empty(),
        "one item is not ticked yet"
    );
    both("playbook_checklist", &a);
    key(&mut a, KeyCode::Down);
    key(&mut a, KeyCode::Char(' '));
    match &key(&mut a, KeyCode::Enter)[..] {
        [Command::ResumeRun { answers, .. }] => {
            assert_eq!(
                answers.ticked.as_deref(),
                Some("Check the application that uses support-portal")
            );
            assert_eq!(answers.confirmed.as_deref(), Some("support-portal"), "kept");
        }
        other => panic!("{other:?}"),
    }

    // Another console finds the run stopped: it is offered, and enter resumes it.
    let mut b = app();
    b.handle(Event::Loaded(Loaded::Runs(Ok(vec![run.clone()]))));
    both("interrupted_offer", &b);
    match &key(&mut b, KeyCode::Enter)[..] {
        [Command::ResumeRun { run: id, .. }] => assert_eq!(id, "2026-11-23T12-00-00Z-f001"),
        other => panic!("{other:?}"),
    }
    assert_eq!(*b.screen(), cfdr::tui::state::Screen::Run);
    for (w, h) in [(0, 0), (1, 1), (12, 4), (30, 8)] {
        terminal(&b, w, h);
        terminal(&a, w, h);
    }
}

#[test]
fn the_drills_their_history_a_new_one_and_a_report() {
    use cfdr::tui::state::Command;
    let mut a = app();
    assert_eq!(key(&mut a, KeyCode::Char('d')), [Command::LoadDrills]);
    let report = |id: &str, outcome: &str, rto: f64| cfdr::tui::drills::Report {
        json: json!({
            "id": id, "scenario": "full", "outcome": outcome, "components": "d1,kv",
            "issues": if outcome == "success" { json!([]) } else { json!(["kv `CACHE`: failed verification"]) },
            "measures": { "rto_secs": rto, "rpo_secs": 5400.0, "rto_target_secs": 3600, "rpo_target_secs": 86400 },
        }),
        markdown: format!(
            "## DR Test Results - 2026-11-2x\n\n**Drill**: `{id}` ({outcome})\n**Scenario Tested**: full\n"
        ),
    };
    a.handle(Event::Loaded(Loaded::Drills(Ok(vec![
        report("2026-11-20T09-00-00Z-aaaa", "partial", 4100.0),
        report("2026-11-22T09-00-00Z-bbbb", "success", 71.5),
    ]))));
    both("drills", &a);
    // n: the new drill's form; d1 off, sqlite on; enter runs it.
    key(&mut a, KeyCode::Char('n'));
    key(&mut a, KeyCode::Char(' '));
    for _ in 0..3 {
        key(&mut a, KeyCode::Down);
    }
    key(&mut a, KeyCode::Char(' '));
    both("drill_new", &a);
    match &key(&mut a, KeyCode::Enter)[..] {
        [Command::StartDrill { drill, .. }] => {
            assert_eq!(drill.components, ["kv", "r2", "sqlite"]);
            assert_eq!(drill.scenario, "full");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(*a.screen(), cfdr::tui::state::Screen::Run);
    // A point-in-time drill asks for its time; a time it cannot read is said, nothing starts.
    let mut p = app();
    key(&mut p, KeyCode::Char('d'));
    key(&mut p, KeyCode::Char('n'));
    for _ in 0..4 {
        key(&mut p, KeyCode::Down);
    }
    key(&mut p, KeyCode::Right);
    key(&mut p, KeyCode::Right);
    key(&mut p, KeyCode::Down);
    keys(&mut p, "next tuesday");
    assert!(key(&mut p, KeyCode::Enter).is_empty());
    assert!(
        p.message
            .as_ref()
            .unwrap()
            .1
            .contains("`next tuesday` is not a time")
    );
    for _ in 0.."next tuesday".len() {
        key(&mut p, KeyCode::Backspace);
    }
    keys(&mut p, "2d");
    both("drill_new_point_in_time", &p);
    match &key(&mut p, KeyCode::Enter)[..] {
        [Command::StartDrill { drill, .. }] => {
            assert_eq!(drill.scenario, "point-in-time");
            let at = drill.at.expect("the time typed");
            let ago = time::OffsetDateTime::now_utc() - at;
            assert!((ago.whole_hours() - 48).abs() <= 1, "{ago}");
        }
        other => panic!("{other:?}"),
    }
    // The history again: the older, partial one's report, its RTO past target in red.
    let mut b = app();
    key(&mut b, KeyCode::Char('d'));
    b.handle(Event::Loaded(Loaded::Drills(Ok(vec![
        report("2026-11-20T09-00-00Z-aaaa", "partial", 4100.0),
        report("2026-11-22T09-00-00Z-bbbb", "success", 71.5),
    ]))));
    key(&mut b, KeyCode::Down);
    key(&mut b, KeyCode::Enter);
    both("drill_report", &b);
    assert!(draw(&b, 120, 40).contains("MISSED"));
    for (w, h) in [(0, 0), (1, 1), (12, 4)] {
        terminal(&b, w, h);
    }
}

#[test]
fn another_target_the_plan_finds_is_confirmed_like_the_backups_own() {
    use cfdr::tui::state::Command;
    let mut a = on_detail();
    key(&mut a, KeyCode::Char('R'));
    key(&mut a, KeyCode::Char(' '));
    key(&mut a, KeyCode::Tab);
    for _ in 0.."auth-prod-restored".len() {
        key(&mut a, KeyCode::Backspace);
    }
    keys(&mut a, "auth-staging");
    let job = match &key(&mut a, KeyCode::Enter)[..] {
        [Command::PlanRestore { job, choice, .. }] => {
            assert_eq!(
                choice.into,
                cfdr::playbook::recover::Dest::Other {
                    name: "auth-staging".into(),
                    exists: false
                },
                "the console's lists do not know it"
            );
            *job
        }
        other => panic!("{other:?}"),
    };
    // The plan found it in the account: enter asks for its name before anything is written.
    let mut p = plan();
    p.target.name = "auth-staging".into();
    p.target.exists = true;
    a.handle(Event::Job(job, JobEvent::Planned(Ok(Box::new(p)))));
    a.handle(Event::Job(job, JobEvent::Finished(Ok("planned".into()))));
    assert!(key(&mut a, KeyCode::Enter).is_empty());
    assert!(draw(&a, 120, 40).contains("Type `auth-staging` to go on"));
    keys(&mut a, "auth-staging");
    match &key(&mut a, KeyCode::Enter)[..] {
        [
            Command::RunRestore {
                choice, confirmed, ..
            },
        ] => {
            assert_eq!(confirmed, "auth-staging");
            assert!(
                choice.overwrites(),
                "snapshot and confirmation steps in the run"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_workers_their_live_split_history_and_a_rollback_that_starts_the_playbook() {
    use cfdr::ops::workers::rollback::{Finding, Live, Share, WorkerPlan};
    use cfdr::ops::workers::{DeploymentRow, Share as Row, WorkerRow};
    use cfdr::tui::state::Command;
    let mut a = app();
    assert_eq!(key(&mut a, KeyCode::Char('w')), [Command::LoadWorkers]);
    let row = |n: Option<u64>, p: f64| Row {
        version_id: format!("{:08}-aaaa", n.unwrap_or(0)),
        number: n,
        percentage: p,
    };
    let worker = |name: &str, live: Vec<Row>, ago_h: i64, by: &str, m: &str| WorkerRow {
        name: name.into(),
        live,
        deployment: Some("d".into()),
        deployed_on: Some(cfdr::repo::manifest::rfc3339(
            NOW - time::Duration::hours(ago_h),
        )),
        author: Some("dana@example.com".into()),
        message: Some(m.into()),
        triggered_by: Some(by.into()),
    };
    let cmds = a.handle(Event::Loaded(Loaded::Workers(Ok(vec![
        worker(
            "api-gateway",
            vec![row(Some(3), 100.0)],
            1,
            "upload",
            "Automatic deployment on upload.",
        ),
        worker(
            "chat-rooms",
            vec![row(Some(2), 100.0)],
            24,
            "upload",
            "Automatic deployment on upload.",
        ),
        worker(
            "cron-jobs",
            vec![row(Some(1), 90.0), row(Some(2), 10.0)],
            2,
            "deployment",
            "gradual: nightly jobs 2.1 at 10 %",
        ),
    ]))));
    assert_eq!(
        cmds,
        [Command::LoadWorker("api-gateway".into())],
        "the first one's plan"
    );
    let share = |n: u64, p: f64| Share {
        version_id: format!("{n:08}-aaaa"),
        number: Some(n),
        percentage: p,
    };
    let dep = |n: u64, h: i64, live: bool, by: &str, m: &str| DeploymentRow {
        id: format!("dep-{n}"),
        created_on: Some(cfdr::repo::manifest::rfc3339(
            NOW - time::Duration::hours(h),
        )),
        source: "wrangler".into(),
        versions: vec![row(Some(n), 100.0)],
        author_email: None,
        message: Some(m.into()),
        triggered_by: Some(by.into()),
        live,
    };
    let plan = |script: &str, from: u64, to: u64, findings: Vec<Finding>| WorkerPlan {
        script: script.into(),
        live: Live {
            deployment: format!("dep-{from}"),
            created_on: None,
            versions: vec![share(from, 100.0)],
            author: None,
            message: None,
        },
        how: "automatic".into(),
        why: format!("v{to}: the newest earlier deployment at 100 % whose version is not live"),
        target: vec![share(to, 100.0)],
        stages: vec![vec![share(to, 100.0)]],
        findings,
    };
    let warn = Finding {
        level: "warning".into(),
        text: "secret values come back as v2 had them (JWT_SECRET); if one changed since, Cloudflare asks for force (error 10220)".into(),
    };
    a.handle(Event::Loaded(Loaded::Worker(
        "api-gateway".into(),
        Ok(Box::new(cfdr::tui::workers::Detail {
            deployments: vec![
                dep(3, 1, true, "upload", "Automatic deployment on upload."),
                dep(2, 72, false, "upload", "Automatic deployment on upload."),
                dep(1, 240, false, "upload", "Automatic deployment on upload."),
            ],
            plan: Ok(plan("api-gateway", 3, 2, vec![warn.clone()])),
        })),
    )));
    both("workers", &a);
    // R: the worker-rollback playbook on the planned version, on the run screen.
    match &key(&mut a, KeyCode::Char('R'))[..] {
        [Command::StartPlaybook { id, params, .. }] => {
            assert_eq!(id, "worker-rollback");
            assert_eq!(params["worker"], "api-gateway");
            assert_eq!(
                params["to"], "00000002-aaaa",
                "where the plan on screen said"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(*a.screen(), cfdr::tui::state::Screen::Run);
    // A refused plan is said, and nothing starts.
    let mut b = app();
    key(&mut b, KeyCode::Char('w'));
    b.handle(Event::Loaded(Loaded::Workers(Ok(vec![worker(
        "chat-rooms",
        vec![row(Some(2), 100.0)],
        24,
        "upload",
        "Automatic deployment on upload.",
    )]))));
    let refusal = Finding {
        level: "refused".into(),
        text: "a Durable Object migration lies between v2 (migration tag v2) and v1 (v1): Cloudflare refuses a rollback across it".into(),
    };
    b.handle(Event::Loaded(Loaded::Worker(
        "chat-rooms".into(),
        Ok(Box::new(cfdr::tui::workers::Detail {
            deployments: vec![dep(
                2,
                24,
                true,
                "upload",
                "Automatic deployment on upload.",
            )],
            plan: Ok(plan("chat-rooms", 2, 1, vec![refusal])),
        })),
    )));
    assert!(key(&mut b, KeyCode::Char('R')).is_empty());
    assert!(
        b.message
            .as_ref()
            .is_some_and(|(bad, m)| *bad && m.contains("Durable Object migration"))
    );
    insta::assert_snapshot!("workers_refused_80x24", draw(&b, 80, 24));
}
