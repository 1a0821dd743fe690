//! `cfdr demo` in a real pseudo-terminal (portable-pty), its screen read back through a terminal
//! emulator (vt100): the inventory opens, a D1 backup's detail shows its checksums, a full verify
//! runs to its result, `b` takes a KV backup, `q` quits, and the terminal is left as it was found
//! (main screen, cursor shown, mouse reporting off).

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
