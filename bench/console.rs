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

/// The local Cloudflare with the demo account, as a child process: its API base URL.
struct Emulator {
    child: std::process::Child,
    api: String,
}

impl Emulator {
    fn start(cfdr: &str) -> anyhow::Result<Emulator> {
        use std::io::BufRead as _;
        let mut child = std::process::Command::new(cfdr)
            .args(["emulator", "--seed", "demo", "--listen", "127.0.0.1:0"])
            .args(["--s3-listen", "127.0.0.1:0", "--rate-limit", "1000000"])
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line)?;
        let api = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("api="))
            .ok_or_else(|| anyhow::anyhow!("the emulator said {line:?}"))?
            .to_string();
        Ok(Emulator { child, api })
    }
}

impl Emulator {
    /// The environment of a cfdr pointed at this emulator, its repository in `dir`.
    fn env(&self, dir: &std::path::Path) -> Vec<(&'static str, String)> {
        vec![
            ("CFDR_REPO", dir.join("repo").display().to_string()),
            ("CFDR_KEY", hex::encode(super::KEY)),
            ("CFDR_CONFIG", "/nonexistent/cfdr.toml".into()),
            ("CLOUDFLARE_API_BASE_URL", self.api.clone()),
            ("CLOUDFLARE_API_TOKEN", cfdr::emulator::DEFAULT_TOKEN.into()),
            (
                "CLOUDFLARE_ACCOUNT_ID",
                cfdr::emulator::DEFAULT_ACCOUNT_ID.into(),
            ),
            ("XDG_CACHE_HOME", dir.display().to_string()),
        ]
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Key-to-frame latency while the console restores a D1 database (the demo's tasks-prod,
/// 5 MB) over itself, every D1 request slowed to 300 ms so the run lasts: the same keys (j/k
/// scroll the run screen) and the same measure as during a verify.
pub async fn restore(cfdr: &str) -> anyhow::Result<()> {
    let emu = Emulator::start(cfdr)?;
    let dir = tempfile::tempdir()?;
    let mut env = emu.env(dir.path());
    env.push(("CFDR_API_BUDGET", "100000/5m".into()));
    for args in [&["repo", "init"][..], &["backup", "d1", "tasks-prod"]] {
        let out = std::process::Command::new(cfdr)
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "cfdr {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let origin = emu.api.trim_end_matches("/client/v4");
    cfdr::cloudflare::http()
        .build()
        .unwrap()
        .post(format!("{origin}/__emulator/faults"))
        .bearer_auth(cfdr::emulator::DEFAULT_TOKEN)
        .json(&serde_json::json!({ "latency_ms": 300, "path_contains": "/d1/" }))
        .send()
        .await?
        .error_for_status()?;

    let pair = native_pty_system().openpty(PtySize {
        rows: ROWS,
        cols: COLS,
        pixel_width: 0,
        pixel_height: 0,
    })?;
    let mut cmd = CommandBuilder::new(cfdr);
    cmd.env("TERM", "xterm-256color");
    for (k, v) in &env {
        cmd.env(k, v);
    }
    let parser = Arc::new(Mutex::new(vt100::Parser::new(
        std::num::NonZero::new(ROWS).expect("rows"),
        std::num::NonZero::new(COLS).expect("cols"),
        0,
    )));
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
    let mut press = |k: &str| -> anyhow::Result<()> {
        keys.write_all(k.as_bytes())?;
        keys.flush()?;
        Ok(())
    };
    let screen = |what: &str| parser.lock().unwrap().screen().contents().contains(what);
    wait(&parser, "KIND   TARGET", Duration::from_secs(30))?;
    press("2")?;
    wait(&parser, "all backups", Duration::from_secs(5))?;
    press("\r")?;
    wait(&parser, "plaintext sha256", Duration::from_secs(10))?;
    press("R")?;
    wait(&parser, "same target", Duration::from_secs(5))?;
    press("\r")?;
    wait(
        &parser,
        "enter: confirm by typing",
        Duration::from_secs(120),
    )?;
    press("\r")?;
    wait(&parser, "Type `tasks-prod`", Duration::from_secs(5))?;
    press("tasks-prod")?;
    wait(&parser, "matches", Duration::from_secs(5))?;
    press("\r")?;
    wait(&parser, "running", Duration::from_secs(30))?;

    let mut latencies = Vec::new();
    let mut down = true;
    // The job line says `(x cancels)` while the run goes (the run screen itself scrolls).
    while latencies.len() < SAMPLES && screen("(x cancels") {
        let before = parser.lock().unwrap().screen().contents_formatted();
        let t0 = Instant::now();
        press(if down { "j" } else { "k" })?;
        down = !down;
        while parser.lock().unwrap().screen().contents_formatted() == before {
            anyhow::ensure!(
                t0.elapsed() < Duration::from_secs(5),
                "a key changed nothing"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        let latency = t0.elapsed();
        if screen("(x cancels") {
            latencies.push(latency);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    anyhow::ensure!(
        latencies.len() >= 20,
        "the restore ended after {} keys; the screen shows:\n{}",
        latencies.len(),
        parser.lock().unwrap().screen().contents()
    );
    // Let the run finish (verified), then quit.
    wait(&parser, "verified ✓", Duration::from_secs(600))?;
    press("q")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait()?.is_none() {
        anyhow::ensure!(Instant::now() < deadline, "cfdr did not quit");
        std::thread::sleep(Duration::from_millis(20));
    }
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        r#"{{"key_median_ms":{},"key_p95_ms":{},"samples":{}}}"#,
        ms(latencies[latencies.len() / 2]),
        ms(latencies[latencies.len() * 95 / 100]),
        latencies.len()
    );
    Ok(())
}

/// The emulator's request counts.
async fn read_stats(http: &reqwest::Client, origin: &str) -> anyhow::Result<serde_json::Value> {
    Ok(http
        .get(format!("{origin}/__emulator/stats"))
        .bearer_auth(cfdr::emulator::DEFAULT_TOKEN)
        .send()
        .await?
        .json()
        .await?)
}

/// Requests the emulator answered on the account's API routes (not the Worker's own).
fn api_requests(stats: &serde_json::Value) -> u64 {
    stats["result"]["routes"].as_object().map_or(0, |r| {
        r.iter()
            .filter(|(k, _)| k.contains(" /accounts/"))
            .filter_map(|(_, v)| v["requests"].as_u64())
            .sum()
    })
}

/// A Worker rolled back as an operator would at an incident: `cfdr workers rollback
/// api-gateway --yes` on the demo account, every API request slowed to 50 ms (the Worker's own
/// answers to the probe are not), the default 2 s settling read included. Prints the seconds from the command to its
/// verified report, the API requests it sent, and the same for `wrangler rollback` (which
/// deploys and verifies nothing) when `wrangler` is given.
pub async fn rollback(cfdr: &str, wrangler: Option<&str>) -> anyhow::Result<()> {
    let mut out = serde_json::Map::new();
    let emu = Emulator::start(cfdr)?;
    let dir = tempfile::tempdir()?;
    let origin = emu.api.trim_end_matches("/client/v4").to_string();
    let mut env = emu.env(dir.path());
    env.push((
        "CFDR_WORKERS_PROBE_URL",
        format!("{origin}/__workers.dev/{{script}}"),
    ));
    let cmd = |args: &[&str]| {
        let mut c = std::process::Command::new(cfdr);
        c.args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(std::process::Stdio::null());
        c
    };
    let init = cmd(&["repo", "init"]).output()?;
    anyhow::ensure!(init.status.success(), "repo init failed");
    let http = cfdr::cloudflare::http().build().unwrap();
    let control = |path: &str, body: serde_json::Value| {
        http.post(format!("{origin}{path}"))
            .bearer_auth(cfdr::emulator::DEFAULT_TOKEN)
            .json(&body)
            .send()
    };
    control(
        "/__emulator/faults",
        serde_json::json!({ "latency_ms": 50 }),
    )
    .await?
    .error_for_status()?;
    control("/__emulator/stats/reset", serde_json::json!({}))
        .await?
        .error_for_status()?;
    let began = Instant::now();
    let o = cmd(&["workers", "rollback", "api-gateway", "--yes", "--json"]).output()?;
    let secs = began.elapsed().as_secs_f64();
    anyhow::ensure!(
        o.status.success(),
        "cfdr workers rollback: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    anyhow::ensure!(r["outcome"] == "success", "the rollback: {r}");
    let stats = read_stats(&http, &origin).await?;
    out.insert("cfdr_secs".into(), secs.into());
    out.insert("cfdr_requests".into(), r["requests"].clone());
    out.insert("emulator_requests".into(), api_requests(&stats).into());
    out.insert(
        "checks".into(),
        r["workers"][0]["checks"]
            .as_array()
            .map_or(0, Vec::len)
            .into(),
    );
    if let Some(w) = wrangler {
        // wrangler's own rollback of the same Worker to v1, through the same slowed API.
        control("/__emulator/stats/reset", serde_json::json!({}))
            .await?
            .error_for_status()?;
        let v1 = r["plan"]["workers"][0]["live"]["versions"][0]["version_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let began = Instant::now();
        let o = std::process::Command::new(w)
            .args([
                "rollback",
                &v1,
                "--name",
                "api-gateway",
                "--message",
                "bench",
                "-y",
            ])
            .env("CLOUDFLARE_API_BASE_URL", &emu.api)
            .env("CLOUDFLARE_API_TOKEN", cfdr::emulator::DEFAULT_TOKEN)
            .env("CLOUDFLARE_ACCOUNT_ID", cfdr::emulator::DEFAULT_ACCOUNT_ID)
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CI", "true")
            .current_dir(dir.path())
            .stdin(std::process::Stdio::null())
            .output()?;
        let secs = began.elapsed().as_secs_f64();
        let stats = read_stats(&http, &origin).await?;
        if o.status.success() {
            out.insert("wrangler_secs".into(), secs.into());
            out.insert("wrangler_requests".into(), api_requests(&stats).into());
        } else {
            out.insert(
                "wrangler_error".into(),
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .chain(String::from_utf8_lossy(&o.stdout).lines())
                    .filter(|l| !l.trim().is_empty())
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" / ")
                    .into(),
            );
        }
    }
    // Again without the settling wait: what the rest of the work costs.
    control("/__emulator/stats/reset", serde_json::json!({}))
        .await?
        .error_for_status()?;
    let began = Instant::now();
    let o = cmd(&[
        "workers",
        "rollback",
        "api-gateway",
        "--yes",
        "--json",
        "--settle",
        "0s",
    ])
    .output()?;
    let fast = began.elapsed().as_secs_f64();
    anyhow::ensure!(
        o.status.success(),
        "cfdr workers rollback --settle 0s: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out.insert("cfdr_no_settle_secs".into(), fast.into());
    println!("{}", serde_json::Value::Object(out));
    Ok(())
}
