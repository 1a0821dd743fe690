//! Shared test helpers: an in-process emulator reached over real HTTP, and a small client.
#![allow(dead_code)]

pub mod d1;
pub mod pty;

use cfdr::emulator::{self, EmulatorConfig, RunningEmulator};
use serde_json::Value;

pub struct Api {
    pub emu: RunningEmulator,
    pub http: reqwest::Client,
}

pub async fn start() -> Api {
    start_with(EmulatorConfig::ephemeral()).await
}

pub async fn start_with(config: EmulatorConfig) -> Api {
    let emu = emulator::start(config).await.expect("emulator starts");
    Api {
        emu,
        http: cfdr::cloudflare::http().build().unwrap(),
    }
}

impl Api {
    /// cfdr's own REST client for this emulator, with short retry waits, under `budget`.
    pub fn client_with(
        &self,
        budget: cfdr::cloudflare::Budget,
        token: &str,
    ) -> cfdr::cloudflare::Client {
        let retry = cfdr::cloudflare::RetryPolicy {
            initial: std::time::Duration::from_millis(20),
            max: std::time::Duration::from_millis(200),
            ..Default::default()
        };
        cfdr::cloudflare::Client::new(
            &self.emu.api_url,
            &self.emu.account_id,
            cfdr::config::Secret::new(token),
            std::sync::Arc::new(budget),
            retry,
            4,
        )
    }

    /// [`Api::client_with`] at Cloudflare's global rate limit and the emulator's token.
    pub fn client(&self) -> cfdr::cloudflare::Client {
        self.client_with(
            cfdr::cloudflare::Budget::new(1200, std::time::Duration::from_secs(300)),
            &self.emu.token,
        )
    }

    /// cfdr's own S3 client for this emulator's R2 endpoint.
    pub fn s3(&self) -> cfdr::cloudflare::S3Client {
        cfdr::cloudflare::S3Client::new(
            cfdr::cloudflare::R2Credentials {
                endpoint: self.emu.s3_url.clone(),
                access_key_id: self.emu.r2_access_key_id.clone(),
                secret_access_key: cfdr::config::Secret::new(self.emu.r2_secret_access_key.clone()),
            },
            cfdr::cloudflare::RetryPolicy::default(),
        )
        .expect("an S3 client for the emulator")
    }
}

/// PUTs `body` under `key` with an optional content type and metadata.
pub async fn put_object(
    s3: &cfdr::cloudflare::S3Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
    content_type: Option<&str>,
    metadata: &[(&str, &str)],
) {
    let attrs = cfdr::cloudflare::r2::PutAttrs {
        content_type: content_type.map(str::to_string),
        metadata: metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    s3.put(bucket, key, body.into(), &attrs)
        .await
        .unwrap_or_else(|e| panic!("PUT `{key}`: {e}"));
}

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub bytes: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.bytes)))
    }

    pub fn result(&self) -> Value {
        let v = self.json();
        assert_eq!(v["success"], true, "{v}");
        v["result"].clone()
    }

    /// Asserts the documented failure envelope and returns the first error code.
    pub fn error_code(&self) -> u64 {
        let v = self.json();
        assert_eq!(v["success"], false, "{v}");
        assert!(v["result"].is_null(), "{v}");
        assert!(v["messages"].is_array(), "{v}");
        v["errors"][0]["code"]
            .as_u64()
            .unwrap_or_else(|| panic!("no error code: {v}"))
    }
}

/// What a blocking thread needs to run the binary against this emulator.
#[derive(Clone)]
pub struct Handle {
    pub emu: Endpoint,
}

#[derive(Clone)]
pub struct Endpoint {
    pub api_url: String,
    pub s3_url: String,
    pub token: String,
    pub account_id: String,
}

/// The cfdr binary with this emulator's API and R2 endpoint, a repository and a key in its
/// environment (and no config file or key file from the machine running the tests).
pub fn cfdr_cmd(h: &Handle, repo: &str, key: &str) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_cfdr"));
    c.env_remove("CFDR_KEY_FILE").env_remove("CFDR_MAX_CHANGE");
    for (k, v) in cfdr_env(h, repo, key) {
        c.env(k, v);
    }
    c
}

/// The same environment for the binary in a pseudo-terminal.
pub fn cfdr_pty_cmd(h: &Handle, repo: &str, key: &str) -> portable_pty::CommandBuilder {
    let mut c = portable_pty::CommandBuilder::new(env!("CARGO_BIN_EXE_cfdr"));
    c.env_remove("CFDR_KEY_FILE");
    c.env_remove("CFDR_MAX_CHANGE");
    c.env("TERM", "xterm-256color");
    for (k, v) in cfdr_env(h, repo, key) {
        c.env(k, v);
    }
    c
}

fn cfdr_env(h: &Handle, repo: &str, key: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CFDR_REPO", repo.to_string()),
        ("CFDR_KEY", key.to_string()),
        ("CFDR_CONFIG", "/nonexistent/cfdr.toml".into()),
        ("CLOUDFLARE_API_BASE_URL", h.emu.api_url.clone()),
        ("CLOUDFLARE_API_TOKEN", h.emu.token.clone()),
        ("CLOUDFLARE_ACCOUNT_ID", h.emu.account_id.clone()),
        ("R2_ENDPOINT", h.emu.s3_url.clone()),
        (
            "R2_ACCESS_KEY_ID",
            cfdr::emulator::DEFAULT_R2_ACCESS_KEY_ID.to_string(),
        ),
        (
            "R2_SECRET_ACCESS_KEY",
            cfdr::emulator::DEFAULT_R2_SECRET_ACCESS_KEY.to_string(),
        ),
    ]
}

/// The binary for a restore test: as [`cfdr_cmd`] with `args`, no stdin, and a request budget
/// out of the way (the tests are about what is written, not about pacing at Cloudflare's
/// 1,200 / 5 min).
pub fn restore_cmd(api: &Api, repo: &str, key: &str, args: &[&str]) -> std::process::Command {
    let mut c = cfdr_cmd(&api.clone_handle(), repo, key);
    c.env("CFDR_API_BUDGET", "100000/5m")
        .args(args)
        .stdin(std::process::Stdio::null());
    c
}

/// Runs a command on a blocking thread, so the in-process emulator keeps serving.
pub async fn output(mut c: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || c.output().expect("cfdr runs"))
        .await
        .expect("the blocking task runs")
}

pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// [`restore_cmd`]'s stdout as JSON; a failure panics with its stderr.
pub async fn restore_json(api: &Api, repo: &str, key: &str, args: &[&str]) -> Value {
    let out = output(restore_cmd(api, repo, key, args)).await;
    assert!(out.status.success(), "cfdr {args:?}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// Starts a restore, reads its run id from the plan on stderr, kills it (SIGKILL) after
/// `after`. Returns the run id and everything the process printed on stderr.
pub fn start_and_kill(
    c: std::process::Command,
    after: std::time::Duration,
) -> (Option<String>, String) {
    start_and_kill_at(c, after, "plan ")
}

/// [`start_and_kill`] for a command whose run id follows `marker` at the start of a stderr
/// line (up to the next `:`).
pub fn start_and_kill_at(
    mut c: std::process::Command,
    after: std::time::Duration,
    marker: &str,
) -> (Option<String>, String) {
    use std::io::BufRead as _;
    let mut child = c
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("cfdr starts");
    let mut lines = std::io::BufReader::new(child.stderr.take().expect("piped")).lines();
    let mut printed = String::new();
    let run = lines.by_ref().map_while(Result::ok).find_map(|l| {
        printed.push_str(&l);
        printed.push('\n');
        l.strip_prefix(marker)
            .and_then(|rest| rest.split(':').next())
            .map(str::to_string)
    });
    // The rest is read on a thread while the process runs, so a full pipe never stalls it.
    let rest = std::thread::spawn(move || {
        lines
            .map_while(Result::ok)
            .fold(String::new(), |all, l| all + &l + "\n")
    });
    std::thread::sleep(after);
    let _ = child.kill();
    let _ = child.wait();
    printed.push_str(&rest.join().unwrap_or_default());
    (run, printed)
}

/// One round of a kill harness: `cfdr <args>` (a restore) killed with SIGKILL after `after`,
/// then `--resume` of its run; a run killed before it was recorded wrote nothing, so a fresh
/// restore stands in. Panics unless the restore ends in success. Returns whether the resume
/// took up a run mid-way (not one that had finished before the kill).
pub async fn kill_and_resume(
    api: &Api,
    repo: &str,
    key: &str,
    args: &[&str],
    after: std::time::Duration,
    round: usize,
) -> bool {
    let c = restore_cmd(api, repo, key, args);
    let (run, printed) = tokio::task::spawn_blocking(move || start_and_kill(c, after))
        .await
        .expect("the blocking task runs");
    let run = run.unwrap_or_else(|| panic!("round {round}: the plan names its run: {printed}"));
    let out = output(restore_cmd(
        api,
        repo,
        key,
        &["restore", "--resume", &run, "--json"],
    ))
    .await;
    if out.status.success() {
        let r: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
        assert_eq!(r["report"]["outcome"], "success", "round {round}: {r}");
        eprintln!(
            "round {round}: killed after {after:?}; resumed: {}, {} requests after the kill",
            r["report"]["resumed"], r["report"]["requests_sent"]
        );
        r["report"]["resumed"] == true
    } else {
        assert!(
            stderr(&out).contains("no restore run"),
            "round {round}: killed after {after:?}, the resume failed: {}\nthe killed run printed:\n{printed}",
            stderr(&out)
        );
        eprintln!("round {round}: killed after {after:?}, before the run was recorded");
        let mut fresh: Vec<&str> = args.to_vec();
        fresh.push("--json");
        let r = restore_json(api, repo, key, &fresh).await;
        assert_eq!(
            r["report"]["outcome"], "success",
            "round {round}: {r}; the killed run printed:\n{printed}"
        );
        false
    }
}

/// Requests the emulator answered to routes ending in `route_suffix`.
pub fn route_requests(stats: &Value, route_suffix: &str) -> u64 {
    stats["routes"]
        .as_object()
        .expect("routes")
        .iter()
        .filter(|(r, _)| r.ends_with(route_suffix))
        .map(|(_, v)| v["requests"].as_u64().expect("a count"))
        .sum()
}

/// Runs the binary on a blocking thread (the emulator keeps serving) and returns its stdout as
/// JSON; a failure panics with its stderr.
pub async fn cfdr_json(api: &Api, repo: &str, key: &str, args: &[&str]) -> Value {
    let (h, r, k) = (api.clone_handle(), repo.to_string(), key.to_string());
    let a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || cfdr_cmd(&h, &r, &k).args(&a).output())
        .await
        .expect("the blocking task runs")
        .expect("cfdr runs");
    assert!(
        out.status.success(),
        "cfdr {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

impl Api {
    pub fn clone_handle(&self) -> Handle {
        Handle {
            emu: Endpoint {
                api_url: self.emu.api_url.clone(),
                s3_url: self.emu.s3_url.clone(),
                token: self.emu.token.clone(),
                account_id: self.emu.account_id.clone(),
            },
        }
    }

    pub fn account(&self) -> String {
        format!("{}/accounts/{}", self.emu.api_url, self.emu.account_id)
    }

    pub async fn send(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.account())
        };
        let mut req = self
            .http
            .request(method.parse().expect("method"), url)
            .bearer_auth(&self.emu.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        Self::reply(req).await
    }

    pub async fn send_raw(&self, req: reqwest::RequestBuilder) -> Reply {
        Self::reply(req).await
    }

    async fn reply(req: reqwest::RequestBuilder) -> Reply {
        let r = req.send().await.expect("request sent");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let bytes = r.bytes().await.expect("body").to_vec();
        Reply {
            status,
            headers,
            bytes,
        }
    }

    pub async fn control(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.emu.origin());
        self.send(method, &url, body).await.result()
    }

    /// Creates a D1 database and returns its UUID.
    pub async fn d1_create(&self, name: &str) -> String {
        let r = self
            .send(
                "POST",
                "/d1/database",
                Some(serde_json::json!({ "name": name })),
            )
            .await;
        r.result()["uuid"].as_str().expect("uuid").to_string()
    }

    pub async fn d1_sql(&self, db: &str, sql: &str) -> Reply {
        self.send(
            "POST",
            &format!("/d1/database/{db}/query"),
            Some(serde_json::json!({ "sql": sql })),
        )
        .await
    }

    /// Runs the export polling flow to the end and downloads the dump.
    pub async fn d1_export(&self, db: &str, options: Value) -> Result<String, String> {
        let path = format!("/d1/database/{db}/export");
        let mut body = serde_json::json!({ "output_format": "polling", "dump_options": options });
        loop {
            let r = self.send("POST", &path, Some(body.clone())).await;
            let result = r.result();
            match result["status"].as_str() {
                Some("active") => {
                    assert_eq!(r.status, 202);
                    body["current_bookmark"] = result["at_bookmark"].clone();
                }
                Some("complete") => {
                    let url = result["result"]["signed_url"].as_str().expect("signed_url");
                    let dl = self.http.get(url).send().await.expect("download");
                    assert_eq!(dl.status(), 200);
                    return Ok(dl.text().await.expect("text"));
                }
                _ => return Err(result["error"].as_str().unwrap_or_default().to_string()),
            }
        }
    }

    /// The import flow: init (MD5), PUT to the upload URL, ingest, poll.
    pub async fn d1_import(&self, db: &str, sql: &str) -> Value {
        let mut r = self.d1_import_start(db, sql).await;
        let path = format!("/d1/database/{db}/import");
        while r["status"] == "active" {
            r = self.send("POST", &path, Some(serde_json::json!({ "action": "poll", "current_bookmark": r["at_bookmark"] }))).await.result();
        }
        r
    }

    /// An import's init, upload and ingest: the polling object the ingest answers.
    pub async fn d1_import_start(&self, db: &str, sql: &str) -> Value {
        let path = format!("/d1/database/{db}/import");
        let etag = hex::encode(<md5::Md5 as md5::Digest>::digest(sql.as_bytes()));
        let init = self
            .send(
                "POST",
                &path,
                Some(serde_json::json!({ "action": "init", "etag": etag })),
            )
            .await
            .result();
        let url = init["upload_url"].as_str().expect("upload_url");
        let put = self
            .http
            .put(url)
            .body(sql.to_string())
            .send()
            .await
            .expect("upload");
        assert_eq!(put.status(), 200);
        assert_eq!(
            put.headers()["etag"].to_str().unwrap().trim_matches('"'),
            etag
        );
        self.send("POST", &path, Some(serde_json::json!({ "action": "ingest", "etag": etag, "filename": init["filename"] })))
            .await
            .result()
    }

    pub async fn kv_create(&self, title: &str) -> String {
        let r = self
            .send(
                "POST",
                "/storage/kv/namespaces",
                Some(serde_json::json!({ "title": title })),
            )
            .await;
        r.result()["id"].as_str().expect("id").to_string()
    }

    /// Requests that may have changed state, since the emulator started or its stats reset.
    pub async fn writes(&self) -> u64 {
        self.stats().await["writes"]
            .as_u64()
            .expect("a write count")
    }

    pub async fn stats(&self) -> Value {
        self.control("GET", "/__emulator/stats", None).await
    }
}

/// One KV entry as the namespace holds it: raw value bytes, metadata, expiration.
#[derive(Debug, Clone, PartialEq)]
pub struct KvEntry {
    pub value: Vec<u8>,
    pub metadata: Option<Value>,
    pub expiration: Option<i64>,
}

impl Api {
    /// Writes `pairs` (`{key, value, base64?, metadata?, expiration?…}`) with one bulk write.
    /// Lifts the emulator's rate limit for helpers that send a request per key.
    pub async fn unlimited(&self) {
        self.control(
            "POST",
            "/__emulator/faults",
            Some(serde_json::json!({ "rate_limit": { "limit": 1_000_000, "window_secs": 300 } })),
        )
        .await;
    }

    pub async fn kv_put(&self, ns: &str, pairs: Vec<Value>) {
        self.send(
            "PUT",
            &format!("/storage/kv/namespaces/{ns}/bulk"),
            Some(Value::Array(pairs)),
        )
        .await
        .result();
    }

    pub async fn kv_delete(&self, ns: &str, keys: Vec<String>) {
        self.send(
            "POST",
            &format!("/storage/kv/namespaces/{ns}/bulk/delete"),
            Some(serde_json::json!(keys)),
        )
        .await
        .result();
    }

    /// The whole namespace read through the plain API — the key listing and every value's raw
    /// bytes — independently of cfdr's engines. A request per 100 keys: widen the emulator's rate
    /// limit first ([`Api::unlimited`]).
    pub async fn kv_dump(&self, ns: &str) -> std::collections::BTreeMap<String, KvEntry> {
        use futures_util::StreamExt as _;
        let mut listed = Vec::new();
        let mut cursor = String::new();
        loop {
            let path = format!("/storage/kv/namespaces/{ns}/keys?limit=1000&cursor={cursor}");
            let page = self.send("GET", &path, None).await.json();
            listed.extend(page["result"].as_array().cloned().unwrap_or_default());
            cursor = page["result_info"]["cursor"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if cursor.is_empty() {
                break;
            }
        }
        // Text values 100 at a time through bulk get; any that come back holding U+FFFD (bulk
        // get mangles bytes that are not UTF-8) again alone, raw.
        let values = futures_util::stream::iter(listed.chunks(100).map(|batch| async move {
            let names: Vec<&str> = batch
                .iter()
                .map(|k| k["name"].as_str().expect("a key name"))
                .collect();
            let got = self
                .send(
                    "POST",
                    &format!("/storage/kv/namespaces/{ns}/bulk/get"),
                    Some(serde_json::json!({ "keys": names })),
                )
                .await
                .result();
            let mut out = Vec::new();
            for k in batch {
                let name = k["name"].as_str().expect("a key name").to_string();
                let value = match got["values"][&name].as_str() {
                    Some(text) if !text.contains('\u{FFFD}') => text.as_bytes().to_vec(),
                    _ => {
                        let url = format!(
                            "{}{}",
                            self.account(),
                            cfdr::cloudflare::kv::key_path(ns, "values", &name)
                        );
                        let body = self
                            .http
                            .get(url)
                            .bearer_auth(&self.emu.token)
                            .send()
                            .await
                            .expect("GET value");
                        assert!(
                            body.status().is_success(),
                            "GET value `{name}`: {}",
                            body.status()
                        );
                        body.bytes().await.expect("value body").to_vec()
                    }
                };
                let entry = KvEntry {
                    value,
                    metadata: k.get("metadata").filter(|m| !m.is_null()).cloned(),
                    expiration: k["expiration"].as_i64(),
                };
                out.push((name, entry));
            }
            out
        }))
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
        values.into_iter().flatten().collect()
    }
}

/// The keys (tables, keys, objects) `cfdr diff --json` names as differing.
pub fn diff_keys(diff: &Value) -> Vec<&str> {
    diff["verification"]["first"]
        .as_array()
        .expect("a diff's differences")
        .iter()
        .map(|x| x["key"].as_str().expect("a key"))
        .collect()
}

/// Panics naming the first few entries that differ between two dumps (never the whole dumps:
/// they can hold 10,000 entries).
pub fn assert_same<V: PartialEq + std::fmt::Debug>(
    got: &std::collections::BTreeMap<String, V>,
    want: &std::collections::BTreeMap<String, V>,
    what: &str,
) {
    let differing: Vec<&String> = want
        .keys()
        .chain(got.keys())
        .filter(|k| got.get(*k) != want.get(*k))
        .collect();
    assert!(
        differing.is_empty(),
        "{what}: {} entries differ ({} here, {} expected), first: {:?}",
        differing.len(),
        got.len(),
        want.len(),
        differing
            .iter()
            .take(5)
            .map(|k| (k, got.get(*k), want.get(*k)))
            .collect::<Vec<_>>()
    );
}

/// [`assert_same`] for namespace dumps.
pub fn assert_same_kv(
    got: &std::collections::BTreeMap<String, KvEntry>,
    want: &std::collections::BTreeMap<String, KvEntry>,
    what: &str,
) {
    assert_same(got, want, what)
}

/// Keys the issue found mangled or escaping, and their neighbours that must stay distinct.
pub fn hostile_keys() -> Vec<String> {
    let mut keys: Vec<String> = [
        "../victim/owned",
        "../../../../outside/escaped",
        "a//b",
        "a/b",
        "a///b",
        "a/b/",
        "a/./b",
        "x/..",
        "./x",
        "dir/",
        "dir",
        "ü ñ/spaces and+plus",
        "%2F..%2Fenc",
        "100%",
        "q?x=1&y=2#frag",
        "ctl\u{1}\u{7f}\ttab\nnewline\rcr",
        "<xml>&amp;\"'",
        "/leading-slash",
        "emoji 🦀",
        "trailing space ",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    keys.push("k".repeat(1000));
    keys.push(format!("{}/{}", "d".repeat(600), "e".repeat(423)));
    keys
}

/// One R2 object as the bucket holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct R2Object {
    pub size: u64,
    pub sha256: String,
    pub content_type: Option<String>,
    pub metadata: std::collections::BTreeMap<String, String>,
}

/// Every object of `bucket` read in full through cfdr's S3 client: its size, SHA-256, content
/// type and custom metadata.
pub async fn r2_dump(
    s3: &cfdr::cloudflare::S3Client,
    bucket: &str,
) -> std::collections::BTreeMap<String, R2Object> {
    use sha2::Digest as _;
    let mut out = std::collections::BTreeMap::new();
    for o in s3.list(bucket, "").await.expect("list") {
        let mut hash = sha2::Sha256::new();
        let mut sink = |chunk: bytes::Bytes| -> Result<(), String> {
            hash.update(&chunk);
            Ok(())
        };
        let head = s3
            .get(bucket, &o.key, None, None, &mut sink)
            .await
            .unwrap_or_else(|e| panic!("GET `{}`: {e}", o.key));
        out.insert(
            o.key.clone(),
            R2Object {
                size: head.size,
                sha256: hex::encode(hash.finalize()),
                content_type: head.content_type,
                metadata: head.metadata,
            },
        );
    }
    out
}

/// [`assert_same`] for bucket dumps.
pub fn assert_same_r2(
    got: &std::collections::BTreeMap<String, R2Object>,
    want: &std::collections::BTreeMap<String, R2Object>,
    what: &str,
) {
    assert_same(got, want, what)
}

/// Every file under `dir`, at any depth (nothing when it does not exist).
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}
