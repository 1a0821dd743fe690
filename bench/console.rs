//! The console's speed, measured the way an operator feels it: the real binary in a
//! pseudo-terminal, its output parsed by a terminal emulator. Time from spawning `cfdr` to the
//! first frame showing the repository's inventory, then key-to-frame latency (a key written to
//! the terminal until the screen changes) while a full verify of the largest backup runs.

use std::io::{Read as _, Write as _};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};

const ROWS: u16 = 40;
const COLS: u16 = 120;
/// Key presses timed while the verify runs.
const SAMPLES: usize = 60;

fn wait(parser: &Mutex<vt100::Parser>, what: &str, timeout: Duration) -> anyhow::Result<Instant> {
    let start = Instant::now();
    loop {
        if parser.lock().unwrap().screen().contents().contains(what) {
            return Ok(Instant::now());
        }
        anyhow::ensure!(
            start.elapsed() < timeout,
            "no {what:?} on the screen after {timeout:?}; it shows:\n{}",
            parser.lock().unwrap().screen().contents()
        );
        std::thread::sleep(Duration::from_micros(500));
    }
}

pub fn run(cfdr: &str, repo: &str) -> anyhow::Result<()> {
    let pair = native_pty_system().openpty(PtySize {
        rows: ROWS,
        cols: COLS,
        pixel_width: 0,
        pixel_height: 0,
    })?;
    let home = tempfile::tempdir()?;
    let mut cmd = CommandBuilder::new(cfdr);
    cmd.args(["--repo", repo]);
    cmd.env("TERM", "xterm-256color");
    cmd.env("CFDR_KEY", hex::encode(super::KEY));
    cmd.env("CFDR_CONFIG", "/nonexistent/cfdr.toml");
    cmd.env("XDG_CACHE_HOME", home.path());
    for v in ["CLOUDFLARE_API_TOKEN", "CLOUDFLARE_ACCOUNT_ID", "CFDR_REPO"] {
        cmd.env_remove(v);
    }
    let parser = Arc::new(Mutex::new(vt100::Parser::new(
        std::num::NonZero::new(ROWS).expect("rows"),
        std::num::NonZero::new(COLS).expect("cols"),
        0,
    )));
    let spawned = Instant::now();
    let mut child = pair.slave.spawn_command(cmd)?;
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader()?;
    let mut keys = pair.master.take_writer()?;
    let feed = parser.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            feed.lock().unwrap().process(&buf[..n]);
        }
    });

    let first_paint = wait(&parser, " cfdr ", Duration::from_secs(30))? - spawned;
    // The inventory's table header is drawn once the catalog is in.
    let loaded = wait(&parser, "KIND   TARGET", Duration::from_secs(30))? - spawned;
    let mut press = |k: &str| -> anyhow::Result<()> {
        keys.write_all(k.as_bytes())?;
        keys.flush()?;
        Ok(())
    };
    // All backups, largest first, open the top one (the 1 GiB backup).
    press("a")?;
    wait(&parser, "all backups", Duration::from_secs(5))?;
    press("s")?;
    wait(&parser, "sorted by size", Duration::from_secs(5))?;
    press("\r")?;
    wait(&parser, "plaintext sha256", Duration::from_secs(10))?;

    let mut latencies = Vec::new();
    let mut verifies = 0;
    let mut down = true;
    while latencies.len() < SAMPLES {
        let verifying = parser
            .lock()
            .unwrap()
            .screen()
            .contents()
            .contains("verifying");
        if !verifying {
            anyhow::ensure!(verifies < 20, "the verify never showed as running");
            press("v")?;
            wait(&parser, "verifying", Duration::from_secs(10))?;
            verifies += 1;
            continue;
        }
        let before = parser.lock().unwrap().screen().contents_formatted();
        let t0 = Instant::now();
        press(if down { "j" } else { "k" })?;
        down = !down;
        loop {
            if parser.lock().unwrap().screen().contents_formatted() != before {
                break;
            }
            anyhow::ensure!(
                t0.elapsed() < Duration::from_secs(5),
                "a key changed nothing"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        let latency = t0.elapsed();
        // Count it only if the verify was still running when the frame came.
        if parser
            .lock()
            .unwrap()
            .screen()
            .contents()
            .contains("verifying")
        {
            latencies.push(latency);
        }
    }
    press("q")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait()?.is_none() {
        anyhow::ensure!(Instant::now() < deadline, "cfdr did not quit");
        std::thread::sleep(Duration::from_millis(20));
    }
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        r#"{{"first_paint_ms":{},"first_inventory_ms":{},"key_median_ms":{},"key_p95_ms":{},"samples":{},"verifies":{verifies}}}"#,
        ms(first_paint),
        ms(loaded),
        ms(latencies[latencies.len() / 2]),
        ms(latencies[latencies.len() * 95 / 100]),
        latencies.len()
    );
    Ok(())
}
