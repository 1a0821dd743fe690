//! `cfdr demo`: the whole product on a fresh machine with nothing configured. Starts the local
//! Cloudflare in this process with the demo account, builds a repository with a history (three
//! rounds of backups dated over the last days, with the data changed between rounds, so ages,
//! counts and sizes differ; one target late against its RPO, one due, one never backed up), and
//! opens the console on it. Everything goes through HTTP, exactly as against Cloudflare.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use time::OffsetDateTime;

use super::context;
use crate::cloudflare::kv::{Pair, encode_pairs};
use crate::cloudflare::{Body, Client, R2Credentials, S3Client};
use crate::config::{Config, Secret};
use crate::emulator::{self, EmulatorConfig, Seed};
use crate::ops::backup::{self as step, Env, Options, What};
use crate::progress::Progress;
use crate::repo::Repo;
use crate::repo::storage::{S3Settings, Storage};
use crate::seal::MasterKey;
use crate::tui::{Console, state::Info};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Keep the demo repository in this directory (default: a temporary one, removed on exit).
    #[arg(long)]
    repo: Option<PathBuf>,
    /// Open the console read-only.
    #[arg(long)]
    read_only: bool,
}

/// The local Cloudflare's request limit while the demo's history is built.
const BUILD_LIMIT: u32 = 1_000_000;

/// RPOs of the demo: most targets on the default 24 hours, one held to an hour (and late),
/// one to four hours (and due).
const RPO: [(&str, u64); 2] = [("d1/support-portal", 3600), ("kv/SESSIONS", 4 * 3600)];

/// The criticality tiers of the demo's SESSIONS namespace (`cfdr restore … --tier critical`).
const SESSIONS_TIERS: [(&str, &[&str]); 4] = [
    ("critical", &["user:*", "user_stats:*", "hof:*"]),
    (
        "important",
        &["stats:*", "recent_playlists", "analytics:daily:*"],
    ),
    ("recoverable", &["session:*"]),
    (
        "transient",
        &["scoreboard_cache", "scan_progress:*", "analytics:event:*"],
    ),
];

/// A target of the demo's history: what to back up and how many hours ago its newest backup
/// is dated (the two older rounds are a day and two days before that).
fn plan(sqlite: &std::path::Path) -> Vec<(What, f64)> {
    let d1 = |n: &str, h| {
        (
            What::D1 {
                database: n.into(),
                method: None,
            },
            h,
        )
    };
    let kv = |n: &str, h| {
        (
            What::Kv {
                namespace: n.into(),
            },
            h,
        )
    };
    let r2 = |n: &str, h| (What::R2 { bucket: n.into() }, h);
    vec![
        d1("auth-prod", 2.0),
        d1("tasks-prod", 5.0),
        d1("blog-prod", 7.5),
        d1("support-portal", 3.0),
        d1("counter-dev", 20.0),
        kv("SESSIONS", 3.25),
        kv("CACHE", 1.0),
        kv("FEATURE_FLAGS", 9.0),
        r2("evidence", 4.0),
        r2("agent-artifacts", 6.0),
        (
            What::Sqlite {
                path: sqlite.to_path_buf(),
                name: Some("orders-edge".into()),
            },
            12.0,
        ),
    ]
}

/// Changes the data between two rounds, through the API like any client would.
async fn change(client: &Client, r2: &S3Client, round: u32) -> anyhow::Result<()> {
    for db in ["auth-prod", "tasks-prod", "support-portal"] {
        let (id, _) = crate::engine::d1::find_database(client, db)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the demo account has no D1 database `{db}`"))?;
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS demo_audit(id INTEGER PRIMARY KEY, round INTEGER, note TEXT); \
             INSERT INTO demo_audit(round, note) SELECT {round}, 'change ' || value FROM json_each('[{}]');",
            (0..25 * (round + 1))
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        client
            .call(
                Method::POST,
                &format!("/d1/database/{id}/query"),
                &[],
                Body::Json(json!({ "sql": sql })),
            )
            .await?;
    }
    for ns in ["SESSIONS", "CACHE"] {
        let id = client
            .kv_namespace(ns)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the demo account has no KV namespace `{ns}`"))?
            .id;
        let pairs: Vec<Pair> = (0..40 * (round + 1))
            .map(|i| Pair {
                key: format!("demo:round{round}:{i:03}"),
                value: format!("{{\"round\":{round},\"i\":{i}}}"),
                base64: false,
                expiration: None,
                metadata: None,
            })
            .collect();
        client
            .kv_bulk_put(&id, encode_pairs(&pairs.iter().collect::<Vec<_>>()))
            .await?;
    }
    r2.put(
        "evidence",
        &format!("incidents/2026-11/round-{round}.json"),
        format!("{{\"round\":{round},\"note\":\"demo change\"}}").into(),
        &crate::cloudflare::r2::PutAttrs {
            content_type: Some("application/json".into()),
            ..Default::default()
        },
    )
    .await?;
    Ok(())
}

/// A small SQLite database standing for a file on a server.
fn sqlite_file(path: &std::path::Path, round: u32) -> anyhow::Result<()> {
    let c = rusqlite::Connection::open(path)?;
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS orders(id INTEGER PRIMARY KEY, customer TEXT, cents INTEGER, at TEXT);",
    )?;
    let tx = c.unchecked_transaction()?;
    for i in 0..(500 + 100 * round) {
        tx.execute(
            "INSERT INTO orders(customer, cents, at) VALUES (?1, ?2, datetime('now'))",
            (format!("customer {}", i % 97), i64::from(i) * 125),
        )?;
    }
    tx.commit()?;
    Ok(())
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    eprintln!("cfdr demo: starting the local Cloudflare with the demo account…");
    // Building the history takes a few thousand requests: the local Cloudflare allows them
    // quickly, then holds the console to Cloudflare's real limit (1,200 per 5 minutes).
    let emu = emulator::start(EmulatorConfig {
        seed: Some(Seed::Demo),
        rate_limit: emulator::RateLimitConfig {
            limit: BUILD_LIMIT,
            window_secs: 300,
        },
        ..EmulatorConfig::ephemeral()
    })
    .await?;

    let temp = match &args.repo {
        Some(_) => None,
        None => Some(tempfile::Builder::new().prefix("cfdr-demo-").tempdir()?),
    };
    let dir = args
        .repo
        .clone()
        .or_else(|| temp.as_ref().map(|t| t.path().to_path_buf()))
        .unwrap_or_default();
    std::fs::create_dir_all(&dir)?;
    let repo_dir = dir.join("repo");
    let key_file = dir.join("demo.key");
    // A throwaway key for a throwaway repository, kept in a file beside it (never printed).
    let key = if key_file.exists() {
        MasterKey::from_hex(&std::fs::read_to_string(&key_file)?)
            .map_err(|e| anyhow::anyhow!("`{}`: {e}", key_file.display()))?
    } else {
        let bytes: [u8; 32] = rand::random();
        write_private(&key_file, &hex::encode(bytes))?;
        MasterKey::from_bytes(bytes)
    };
    let storage = Storage::open(&repo_dir.display().to_string(), &S3Settings::default())?;
    let fresh = !repo_dir.join("config.json").exists();
    let repo = if fresh {
        Repo::init(storage, key).await
    } else {
        Repo::open(storage, key).await
    }?;

    let mut config = Config {
        api_base_url: emu.api_url.clone(),
        api_token: Some(Secret::new(emu.token.clone())),
        account_id: Some(emu.account_id.clone()),
        r2_endpoint: Some(emu.s3_url.clone()),
        r2_access_key_id: Some(emulator::DEFAULT_R2_ACCESS_KEY_ID.into()),
        r2_secret_access_key: Some(Secret::new(emulator::DEFAULT_R2_SECRET_ACCESS_KEY)),
        repo: Some(repo_dir.display().to_string()),
        rpo_default: crate::config::DEFAULT_RPO,
        // The emulator serves each Worker as workers.dev would, naming its version.
        workers_probe_url: Some(format!("{}/__workers.dev/{{script}}", emu.origin())),
        ..Config::default()
    };
    for (target, secs) in RPO {
        config.rpo.insert(target.into(), Duration::from_secs(secs));
    }
    config.tiers.insert(
        "kv/SESSIONS".into(),
        SESSIONS_TIERS
            .iter()
            .map(|(t, p)| (t.to_string(), p.iter().map(|p| p.to_string()).collect()))
            .collect(),
    );
    let builder = Client::new(
        &config.api_base_url,
        &emu.account_id,
        Secret::new(emu.token.clone()),
        Arc::new(crate::cloudflare::Budget::new(
            BUILD_LIMIT,
            Duration::from_secs(300),
        )),
        crate::cloudflare::RetryPolicy::default(),
        8,
    );
    let r2 = S3Client::new(
        R2Credentials::from_config(&config)?,
        crate::cloudflare::RetryPolicy::default(),
    )?;

    if fresh {
        let sqlite = dir.join("orders-edge.sqlite");
        let targets = plan(&sqlite);
        let env = Env {
            repo: &repo,
            config: &config,
            client: Some(&builder),
        };
        let now = OffsetDateTime::now_utc();
        for round in 0..3u32 {
            eprintln!(
                "cfdr demo: backup round {} of 3 ({} targets)…",
                round + 1,
                targets.len()
            );
            sqlite_file(&sqlite, round)?;
            for (what, hours) in &targets {
                // counter-dev has one backup only; the rest three.
                if round < 2
                    && matches!(what, What::D1 { database, .. } if database == "counter-dev")
                {
                    continue;
                }
                let days_back = f64::from(2 - round) * 24.0;
                let at = now - Duration::from_secs_f64((hours + days_back) * 3600.0);
                let opts = Options {
                    trigger: if round == 2 { "manual" } else { "scheduled" }.into(),
                    backdate: Some(at),
                    ..Options::default()
                };
                step::take(&env, what, &opts, &Progress::silent())
                    .await
                    .map_err(|e| anyhow::anyhow!("{}: {e:#}", what.label()))?;
            }
            if round < 2 {
                change(&builder, &r2, round).await?;
            }
        }
    }
    crate::cloudflare::http()
        .build()?
        .post(format!("{}/__emulator/faults", emu.origin()))
        .bearer_auth(&emu.token)
        .json(&json!({ "rate_limit": { "limit": 1200, "window_secs": 300 } }))
        .send()
        .await?
        .error_for_status()?;
    let client = Arc::new(context::cloudflare_with(
        &config,
        4,
        crate::cloudflare::RetryPolicy::default(),
    )?);
    eprintln!(
        "cfdr demo: ready in {:.1}s — repository {} (key in {}); the API at {}",
        started.elapsed().as_secs_f64(),
        repo_dir.display(),
        key_file.display(),
        emu.api_url
    );
    let console = Console {
        repo: Arc::new(repo),
        info: Info {
            account: config.account_id.clone(),
            repo: repo_dir.display().to_string(),
            read_only: args.read_only,
        },
        config: Arc::new(config),
        client: Some(client),
    };
    let result = super::console::open_or_print(console).await;
    emu.stop().await;
    if temp.is_some() {
        eprintln!("cfdr demo: the demo repository was removed (keep one with --repo DIR)");
    }
    drop(temp);
    result
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(0o600);
    }
    o.open(path)?.write_all(text.as_bytes())
}
