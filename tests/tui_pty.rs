//! `cfdr demo` in a real pseudo-terminal (portable-pty), its screen read back through a terminal
//! emulator (vt100): the inventory opens, a D1 backup's detail shows its checksums, a full verify
//! runs to its result, `b` takes a KV backup, `q` quits, and the terminal is left as it was found
//! (main screen, cursor shown, mouse reporting off).

use std::io::{Read as _, Write as _};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};

const ROWS: u16 = 40;
const COLS: u16 = 120;

struct Screen(Arc<Mutex<vt100::Parser>>);

impl Screen {
    fn text(&self) -> String {
        self.0.lock().unwrap().screen().contents()
    }

    /// Waits until the screen shows `what`, or fails with the screen as it was.
    fn wait_for(&self, what: &str, timeout: Duration) {
        let start = Instant::now();
        loop {
            let text = self.text();
            if text.contains(what) {
                return;
            }
            if start.elapsed() > timeout {
                panic!("waited {timeout:?} for {what:?}; the screen shows:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn the_demo_opens_verifies_backs_up_and_quits_cleanly() {
    let home = tempfile::tempdir().unwrap();
    let pair = native_pty_system()
        .openpty(PtySize {
            rows: ROWS,
            cols: COLS,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_cfdr"));
    cmd.arg("demo");
    cmd.env("TERM", "xterm-256color");
    cmd.env("HOME", home.path());
    cmd.env("XDG_CACHE_HOME", home.path().join("cache"));
    cmd.env("CFDR_CONFIG", "/nonexistent/cfdr.toml");
    let mut child = pair.slave.spawn_command(cmd).unwrap();
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader().unwrap();
    let mut keys = pair.master.take_writer().unwrap();
    let parser = Arc::new(Mutex::new(vt100::Parser::new(
        std::num::NonZero::new(ROWS).unwrap(),
        std::num::NonZero::new(COLS).unwrap(),
        0,
    )));
    let feed = parser.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            feed.lock().unwrap().process(&buf[..n]);
        }
    });
    let screen = Screen(parser.clone());
    let mut press = |k: &str| {
        keys.write_all(k.as_bytes()).unwrap();
        keys.flush().unwrap();
        std::thread::sleep(Duration::from_millis(150));
    };

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
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "cfdr did not exit after q"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "exit status {status:?}");
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
