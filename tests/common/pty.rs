//! A real pseudo-terminal for the binary (portable-pty), its screen read back through a
//! terminal emulator (vt100), and keys typed into it.

use std::io::{Read as _, Write as _};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{Child, CommandBuilder, PtySize, native_pty_system};

pub struct Screen(pub Arc<Mutex<vt100::Parser>>);

impl Screen {
    pub fn text(&self) -> String {
        self.0.lock().unwrap().screen().contents()
    }

    /// Waits until the screen shows `what`, or fails with the screen as it was.
    pub fn wait_for(&self, what: &str, timeout: Duration) {
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

/// A process running in a pseudo-terminal of `rows` × `cols`.
pub struct Pty {
    pub screen: Screen,
    /// Every byte the program wrote, as written (what scrolled by before the console).
    pub raw: Arc<Mutex<Vec<u8>>>,
    pub keys: Box<dyn std::io::Write + Send>,
    pub child: Box<dyn Child + Send + Sync>,
}

impl Pty {
    pub fn spawn(cmd: CommandBuilder, rows: u16, cols: u16) -> Pty {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .unwrap();
        let child = pair.slave.spawn_command(cmd).unwrap();
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader().unwrap();
        let keys = pair.master.take_writer().unwrap();
        let parser = Arc::new(Mutex::new(vt100::Parser::new(
            std::num::NonZero::new(rows).unwrap(),
            std::num::NonZero::new(cols).unwrap(),
            0,
        )));
        let feed = parser.clone();
        let raw = Arc::new(Mutex::new(Vec::new()));
        let kept = raw.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                kept.lock().unwrap().extend_from_slice(&buf[..n]);
                feed.lock().unwrap().process(&buf[..n]);
            }
        });
        // The master must outlive the child's use of the terminal.
        std::mem::forget(pair.master);
        Pty {
            screen: Screen(parser),
            raw,
            keys,
            child,
        }
    }

    /// The first word after `after` in what the program wrote.
    pub fn word_after(&self, after: &str) -> Option<String> {
        let raw = String::from_utf8_lossy(&self.raw.lock().unwrap()).into_owned();
        let at = raw.find(after)? + after.len();
        raw[at..].split_whitespace().next().map(str::to_string)
    }

    /// Types `k` and gives the program a moment to react.
    pub fn press(&mut self, k: &str) {
        self.keys.write_all(k.as_bytes()).unwrap();
        self.keys.flush().unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }

    /// Types `k` until the screen shows `what`, `tries` times at most: whether it does.
    pub fn press_until(&mut self, k: &str, what: &str, tries: usize) -> bool {
        for _ in 0..tries {
            if self.screen.text().contains(what) {
                return true;
            }
            self.press(k);
        }
        self.screen.text().contains(what)
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait(&mut self, timeout: Duration) -> u32 {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.exit_code();
            }
            assert!(
                start.elapsed() < timeout,
                "the process did not exit within {timeout:?}; the screen shows:\n{}",
                self.screen.text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
