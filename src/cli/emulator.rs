//! `cfdr emulator`: serves the local Cloudflare until interrupted, printing one `ready` line.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::cli::exit::Failure;
use crate::emulator::{self, EmulatorConfig, Seed, Storage};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address of the v4 API (port 0 picks a free port).
    #[arg(long, default_value = emulator::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Address of R2's S3 endpoint (port 0 picks a free port).
    #[arg(long, default_value = emulator::DEFAULT_S3_LISTEN)]
    s3_listen: SocketAddr,
    /// Keep state in this directory (it survives restarts).
    #[arg(long, conflicts_with = "memory")]
    data_dir: Option<PathBuf>,
    /// Keep state in memory only (the default).
    #[arg(long)]
    memory: bool,
    /// The API token clients must send as `Authorization: Bearer …`.
    #[arg(long, default_value = emulator::DEFAULT_TOKEN, env = "CFDR_EMULATOR_TOKEN", hide_env_values = true)]
    token: String,
    /// The account id (32 hex characters).
    #[arg(long, default_value = emulator::DEFAULT_ACCOUNT_ID)]
    account_id: String,
    /// R2 S3 access key id.
    #[arg(long, default_value = emulator::DEFAULT_R2_ACCESS_KEY_ID)]
    r2_access_key_id: String,
    /// R2 S3 secret access key.
    #[arg(long, default_value = emulator::DEFAULT_R2_SECRET_ACCESS_KEY, hide_default_value = true)]
    r2_secret_access_key: String,
    /// Load a dataset at start (only into an empty data directory).
    #[arg(long, value_parser = ["demo"])]
    seed: Option<String>,
    /// Requests allowed per window and token (Cloudflare: 1200).
    #[arg(long, default_value_t = 1200)]
    rate_limit: u32,
    /// The rate-limit window (Cloudflare: 5m).
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    rate_window: std::time::Duration,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.account_id.len() != 32 || !args.account_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Failure::usage(format!(
            "--account-id `{}` must be 32 hexadecimal characters",
            args.account_id
        ))
        .into());
    }
    if args.rate_limit == 0 || args.rate_window.is_zero() {
        return Err(Failure::usage("--rate-limit and --rate-window must be positive").into());
    }
    let config = EmulatorConfig {
        listen: args.listen,
        s3_listen: args.s3_listen,
        storage: match args.data_dir {
            Some(dir) => Storage::Dir(dir),
            None => Storage::Memory,
        },
        token: args.token,
        account_id: args.account_id.to_ascii_lowercase(),
        r2_access_key_id: args.r2_access_key_id,
        r2_secret_access_key: args.r2_secret_access_key,
        seed: args.seed.map(|_| Seed::Demo),
        rate_limit: emulator::RateLimitConfig {
            limit: args.rate_limit,
            window_secs: args.rate_window.as_secs().max(1),
        },
        ..EmulatorConfig::default()
    };
    let running = emulator::start(config)
        .await
        .map_err(|e| Failure::usage(format!("{e:#}")))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", running.ready_line())?;
    out.flush()?;
    drop(out);
    running.wait_for_signal().await;
    Ok(())
}
