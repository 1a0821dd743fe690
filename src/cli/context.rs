//! What repository commands share: where the repository is, which key opens it, and output
//! helpers (sizes, ages, JSON).

use std::path::PathBuf;

use crate::cli::exit::{Exit, Failure};
use crate::config::Config;
use crate::repo::Repo;
use crate::repo::storage::{S3Settings, Storage};
use crate::seal::MasterKey;

#[derive(Debug, Clone, clap::Args)]
pub struct RepoArgs {
    /// The repository: a directory or s3://bucket/prefix (default: CFDR_REPO, the config file,
    /// then the platform data directory).
    #[arg(long)]
    pub repo: Option<String>,
}

pub fn default_repo() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "cfdr").map(|d| d.data_dir().join("repo"))
}

pub fn location(args: &RepoArgs, config: &Config) -> Result<String, Failure> {
    args.repo
        .clone()
        .or_else(|| config.repo.clone())
        .or_else(|| default_repo().map(|p| p.display().to_string()))
        .ok_or_else(|| Failure::usage("no repository given: pass --repo or set CFDR_REPO"))
}

pub fn key(config: &Config) -> Result<MasterKey, Failure> {
    if let Some(k) = &config.key {
        return MasterKey::from_hex(k.expose())
            .map_err(|_| Failure::usage("CFDR_KEY is not 64 hexadecimal characters"));
    }
    if let Some(path) = &config.key_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Failure::usage(format!(
                "cannot read the key file `{}`: {e}",
                path.display()
            ))
        })?;
        return MasterKey::from_hex(&text).map_err(|_| {
            Failure::usage(format!(
                "the key file `{}` does not hold 64 hexadecimal characters",
                path.display()
            ))
        });
    }
    Err(Failure::usage(
        "no encryption key: set CFDR_KEY to 64 hexadecimal characters (generate one with `openssl rand -hex 32`) or CFDR_KEY_FILE to a file holding them",
    ))
}

pub fn storage(args: &RepoArgs, config: &Config) -> anyhow::Result<Storage> {
    let loc = location(args, config)?;
    let s3 = S3Settings {
        endpoint: config.r2_endpoint.clone(),
        access_key_id: config.r2_access_key_id.clone(),
        secret_access_key: config.r2_secret_access_key.clone(),
    };
    Ok(Storage::open(&loc, &s3)?)
}

pub async fn open(args: &RepoArgs) -> anyhow::Result<Repo> {
    let config = Config::load().map_err(|e| Failure::usage(e.to_string()))?;
    let storage = storage(args, &config)?;
    let key = key(&config)?;
    Ok(Repo::open(storage, key).await?)
}

/// The Cloudflare client from CLOUDFLARE_API_TOKEN, CLOUDFLARE_ACCOUNT_ID and
/// CLOUDFLARE_API_BASE_URL, with the shared budget at Cloudflare's global limit.
/// `concurrency` requests in flight, retried and timed out under `retry`.
pub fn cloudflare_with(
    config: &Config,
    concurrency: usize,
    retry: crate::cloudflare::RetryPolicy,
) -> Result<crate::cloudflare::Client, Failure> {
    let token = config.api_token.clone().ok_or_else(|| Failure::usage("CLOUDFLARE_API_TOKEN is not set; create an API token with D1, Workers KV and R2 read permissions"))?;
    let account = config.account_id.clone().ok_or_else(|| {
        Failure::usage("CLOUDFLARE_ACCOUNT_ID is not set (dashboard → Account home → Account ID)")
    })?;
    let (limit, window) = budget_setting()?;
    let budget = std::sync::Arc::new(crate::cloudflare::Budget::new(limit, window));
    Ok(crate::cloudflare::Client::new(
        &config.api_base_url,
        &account,
        token,
        budget,
        retry,
        concurrency,
    ))
}

/// `CFDR_API_BUDGET` as `<requests>/<duration>` (default `1200/5m`, Cloudflare's global limit;
/// lower it when other tools share the token).
fn budget_setting() -> Result<(u32, std::time::Duration), Failure> {
    let raw = std::env::var("CFDR_API_BUDGET").unwrap_or_else(|_| "1200/5m".into());
    let bad = || {
        Failure::usage(format!(
            "CFDR_API_BUDGET `{raw}` is not <requests>/<duration>, like 1200/5m"
        ))
    };
    let (n, d) = raw.split_once('/').ok_or_else(bad)?;
    let n: u32 = n.trim().parse().map_err(|_| bad())?;
    let d = humantime::parse_duration(d.trim()).map_err(|_| bad())?;
    if n == 0 || d.is_zero() {
        return Err(bad());
    }
    Ok((n, d))
}

pub fn verification_failed(message: String) -> Failure {
    Failure::new(Exit::Verification, message)
}

pub use crate::text::{age, human_size};

pub fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}
