//! `cfdr backup d1|kv|r2 <target> | sqlite <path> | --all | --wrangler PATH`: the arguments,
//! the list of targets, and printing; the work itself is `ops::backup`, shared with the
//! console.

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::exit::{Exit, Failure};
use crate::config::Config;
use crate::engine::d1::Method1;
use crate::ops::backup::{self as step, Env, Options, What};
use crate::progress::Progress;
use crate::repo::Repo;

use super::context::{self, RepoArgs};

const TRIGGERS: [&str; 4] = ["manual", "scheduled", "pre-recovery", "drill"];

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackupArgs {
    /// Back up every D1 database, KV namespace and R2 bucket of the account, one after another.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    common: Common,
    /// Back up the D1 databases, KV namespaces and R2 buckets bound in this wrangler.toml,
    /// wrangler.jsonc or wrangler.json (top level and every env).
    #[arg(long, value_name = "PATH")]
    wrangler: Option<std::path::PathBuf>,
    #[command(subcommand)]
    kind: Option<BackupCommand>,
}

#[derive(Debug, clap::Subcommand)]
pub enum BackupCommand {
    /// Back up a D1 database (by name or id) through the API.
    D1 {
        database: String,
        /// export: D1's export, checked against the live tables (default); paged: the online
        /// paged dump (default when the database has virtual tables).
        #[arg(long, value_parser = ["export", "paged"])]
        method: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Back up a Workers KV namespace (by title or id) through the API.
    Kv {
        namespace: String,
        #[command(flatten)]
        common: Common,
    },
    /// Back up an R2 bucket through R2's S3 endpoint (R2_ENDPOINT and R2 keys), incrementally.
    R2 {
        bucket: String,
        #[command(flatten)]
        common: Common,
    },
    /// Back up a SQLite database file (consistent even while it is being written).
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The target's name in the repository (default: the file name without extension).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// Why the backup was taken: manual, scheduled, pre-recovery or drill.
    #[arg(long, default_value = "manual", value_parser = TRIGGERS)]
    trigger: String,
    #[command(flatten)]
    repo: RepoArgs,
    /// Print the manifest as JSON (with --all or --wrangler: one manifest a line).
    #[arg(long)]
    json: bool,
    /// Post a Discord/Slack-compatible JSON message to this webhook when a backup fails.
    #[arg(long, value_name = "URL")]
    notify: Option<String>,
    /// Requests in flight at once (KV bulk gets, R2 objects and parts of large ones; R2 objects
    /// of 256 KiB or less, twice as many); the request budget paces them all.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// Give up on a request that has not answered in this long (it is retried like a 5xx).
    #[arg(long, default_value = "60s", value_parser = parse_timeout)]
    timeout: Duration,
    /// Tries again this many times after a failed request (5xx, 429, a dropped connection, a
    /// body cut short), waiting longer each time (0.5 s doubling to 8 s, or what the server's
    /// Retry-After says).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(0..=20))]
    retries: u32,
    /// KV: store only the keys that changed against the previous backup (a full one is taken
    /// when there is none, or after 24 incremental ones).
    #[arg(long)]
    incremental: bool,
}

pub(super) fn parse_timeout(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(format!("`{s}` is not a duration like 30s or 2m")),
    }
}

impl Common {
    fn retry(&self) -> crate::cloudflare::RetryPolicy {
        crate::cloudflare::RetryPolicy {
            timeout: self.timeout,
            max_retries: self.retries,
            ..Default::default()
        }
    }

    fn options(&self) -> Options {
        Options {
            trigger: self.trigger.clone(),
            concurrency: usize::from(self.concurrency),
            incremental: self.incremental,
            backdate: None,
            retry: self.retry(),
        }
    }
}

impl BackupArgs {
    /// The flags in force: the subcommand's, or `--all`'s own.
    fn common(&self) -> &Common {
        match &self.kind {
            Some(
                BackupCommand::D1 { common, .. }
                | BackupCommand::Kv { common, .. }
                | BackupCommand::R2 { common, .. }
                | BackupCommand::Sqlite { common, .. },
            ) => common,
            None => &self.common,
        }
    }
}

pub async fn run(args: BackupArgs) -> anyhow::Result<()> {
    let notify = args.common().notify.clone();
    let outcome = run_inner(args).await;
    if let (Err(e), Some(url)) = (&outcome, notify)
        && let Err(warning) =
            crate::ops::notify::post_failure(&url, &crate::cli::exit::describe(e)).await
    {
        eprintln!("cfdr: warning: {warning}");
    }
    outcome
}

async fn run_inner(args: BackupArgs) -> anyhow::Result<()> {
    let (what, common) = match args.kind {
        Some(BackupCommand::D1 { database, method, common }) => {
            let method = method.map(|m| if m == "paged" { Method1::Paged } else { Method1::Export });
            (What::D1 { database, method }, common)
        }
        Some(BackupCommand::Kv { namespace, common }) => (What::Kv { namespace }, common),
        Some(BackupCommand::R2 { bucket, common }) => (What::R2 { bucket }, common),
        Some(BackupCommand::Sqlite { path, name, common }) => (What::Sqlite { path, name }, common),
        None if args.all || args.wrangler.is_some() => return all(&args.common, args.wrangler.as_deref()).await,
        None => return Err(Failure::usage("say what to back up: `cfdr backup d1|kv|r2 <name>`, `cfdr backup sqlite <path>` or `cfdr backup --all`").into()),
    };
    let (config, repo) = open(&common.repo).await?;
    let client = match what {
        What::D1 { .. } | What::Kv { .. } => Some(client(&config, &common)?),
        _ => None,
    };
    let env = Env {
        repo: &repo,
        config: &config,
        client: client.as_ref(),
    };
    let progress = Progress::new(what.label(), super::progress::sink(common.json));
    let done = step::take(&env, &what, &common.options(), &progress).await?;
    if common.json {
        context::print_json(&done.manifest)?;
    } else {
        println!("{}", done.line);
    }
    Ok(())
}

fn client(config: &Config, common: &Common) -> anyhow::Result<crate::cloudflare::Client> {
    Ok(context::cloudflare_with(
        config,
        usize::from(common.concurrency),
        common.retry(),
    )?)
}

async fn open(args: &RepoArgs) -> anyhow::Result<(Config, Repo)> {
    let config = Config::load().map_err(|e| Failure::usage(e.to_string()))?;
    Ok((config, context::open(args).await?))
}

/// Every target of the account (or of a project's wrangler config), sharing one client (one
/// request budget). A failing target is reported and the others still run; the exit code then
/// says Cloudflare failed.
async fn all(common: &Common, wrangler: Option<&std::path::Path>) -> anyhow::Result<()> {
    let json = common.json;
    let (config, repo) = open(&common.repo).await?;
    let client = client(&config, common)?;
    let targets = step::targets(&client, wrangler).await?;
    let env = Env {
        repo: &repo,
        config: &config,
        client: Some(&client),
    };
    let root = Progress::new("cfdr", super::progress::sink(json));
    let failed = step::take_each(
        &env,
        &targets,
        &common.options(),
        &root,
        |what, done| match done {
            Ok(d) if json => println!("{}", serde_json::to_string(&d.manifest).unwrap_or_default()),
            Ok(d) => println!("{}", d.line),
            Err(e) => eprintln!("cfdr: {}: {e:#}", what.label()),
        },
    )
    .await;
    let total = targets.len();
    if failed.is_empty() {
        if !json {
            println!("{total} backups taken");
        }
        Ok(())
    } else {
        Err(Failure::new(
            Exit::Cloudflare,
            format!(
                "{} of {total} backups failed: {}",
                failed.len(),
                failed.join(", ")
            ),
        )
        .into())
    }
}
