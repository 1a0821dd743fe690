//! `cfdr backup d1|kv|r2 <target> | sqlite <path> | --all`: one module per kind; this one holds
//! the arguments, `--all`, and storing a finished backup under the writer lease.

mod d1;
mod kv;
mod r2;
mod sqlite;

use std::path::PathBuf;

use crate::config::Config;
use crate::exit::{Exit, Failure};
use crate::repo::{Kind, Lease, Manifest, Repo, Target, lease};

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
}

/// Adds the sanity checks' warnings to a manifest about to be committed, and says them.
pub(super) fn sanity(previous: Option<&Manifest>, m: &mut Manifest) {
    for w in crate::engine::sanity::check(previous, m, crate::engine::sanity::max_change_from_env())
    {
        eprintln!(
            "cfdr: warning: {} `{}`: {w}",
            m.kind.as_str(),
            m.target.name
        );
        m.warnings.push(w);
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

/// A finished backup and the line that tells an operator about it.
pub struct Done {
    pub manifest: Manifest,
    pub line: String,
}

pub async fn run(args: BackupArgs) -> anyhow::Result<()> {
    let notify = args.common().notify.clone();
    let outcome = run_inner(args).await;
    if let (Err(e), Some(url)) = (&outcome, notify) {
        post_failure(&url, &format!("{e:#}")).await;
    }
    outcome
}

/// Posts a failure to a Discord or Slack webhook (`content` and `text` both carry it). The
/// message is the error the operator sees, which never holds a secret; a webhook that fails is
/// reported, not fatal.
async fn post_failure(url: &str, error: &str) {
    let (_, host) = crate::repo::lease::whoami();
    let text = format!("cfdr backup failed on {host}: {error}");
    let body = serde_json::json!({ "content": text, "text": text });
    let sent = reqwest::Client::new()
        .post(url)
        .json(&body)
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => eprintln!(
            "cfdr: warning: the --notify webhook answered {}",
            r.status()
        ),
        Err(e) => eprintln!(
            "cfdr: warning: the --notify webhook could not be reached: {}",
            e.without_url()
        ),
    }
}

async fn run_inner(args: BackupArgs) -> anyhow::Result<()> {
    let (done, json) = match args.kind {
        Some(BackupCommand::D1 { database, method, common }) => {
            let (config, repo) = open(&common.repo).await?;
            (d1::run(&repo, &context::cloudflare(&config)?, &database, method.as_deref(), &common.trigger).await?, common.json)
        }
        Some(BackupCommand::Kv { namespace, common }) => {
            let (config, repo) = open(&common.repo).await?;
            (kv::run(&repo, &context::cloudflare(&config)?, &namespace, &common.trigger).await?, common.json)
        }
        Some(BackupCommand::R2 { bucket, common }) => {
            let (config, repo) = open(&common.repo).await?;
            (r2::run(&repo, &config, &bucket, &common.trigger).await?, common.json)
        }
        Some(BackupCommand::Sqlite { path, name, common }) => {
            let (_, repo) = open(&common.repo).await?;
            (sqlite::run(&repo, &path, name, &common.trigger).await?, common.json)
        }
        None if args.all || args.wrangler.is_some() => return all(&args.common, args.wrangler.as_deref()).await,
        None => return Err(Failure::usage("say what to back up: `cfdr backup d1|kv|r2 <name>`, `cfdr backup sqlite <path>` or `cfdr backup --all`").into()),
    };
    if json {
        context::print_json(&done.manifest)?;
    } else {
        println!("{}", done.line);
    }
    Ok(())
}

async fn open(args: &RepoArgs) -> anyhow::Result<(Config, Repo)> {
    let config = Config::load().map_err(|e| Failure::usage(e.to_string()))?;
    Ok((config, context::open(args).await?))
}

/// Every target of the account (or of a project's wrangler config), sharing one client (one
/// request budget). A failing target is reported and the others still run; the exit code then
/// says Cloudflare failed.
async fn all(common: &Common, wrangler: Option<&std::path::Path>) -> anyhow::Result<()> {
    let (trigger, json) = (common.trigger.as_str(), common.json);
    let (config, repo) = open(&common.repo).await?;
    let client = context::cloudflare(&config)?;
    let (d1s, kvs, r2s): (Vec<String>, Vec<String>, Vec<String>) = match wrangler {
        Some(path) => {
            let b = crate::wrangler::load(path).map_err(Failure::usage)?;
            if b.is_empty() {
                return Err(Failure::usage(format!(
                    "`{}` binds no D1 database, KV namespace or R2 bucket",
                    path.display()
                ))
                .into());
            }
            (b.d1, b.kv, b.r2)
        }
        None => {
            let names = |items: Vec<serde_json::Value>, field: &str| {
                items
                    .iter()
                    .filter_map(|i| i[field].as_str().map(str::to_string))
                    .collect::<Vec<_>>()
            };
            let d1s = client
                .all_pages("/d1/database", 100, &[])
                .await
                .map_err(context::cloudflare_failed)?;
            let kvs = client
                .all_pages("/storage/kv/namespaces", 100, &[])
                .await
                .map_err(context::cloudflare_failed)?;
            let r2s = r2::buckets(&client)
                .await
                .map_err(context::cloudflare_failed)?;
            (names(d1s, "name"), names(kvs, "title"), r2s)
        }
    };
    let mut failed = Vec::new();
    let mut report = |name: String, done: anyhow::Result<Done>| match done {
        Ok(d) if json => println!("{}", serde_json::to_string(&d.manifest).unwrap_or_default()),
        Ok(d) => println!("{}", d.line),
        Err(e) => {
            eprintln!("cfdr: {name}: {e:#}");
            failed.push(name);
        }
    };
    for name in &d1s {
        report(
            format!("d1 `{name}`"),
            d1::run(&repo, &client, name, None, trigger).await,
        );
    }
    for name in &kvs {
        report(
            format!("kv `{name}`"),
            kv::run(&repo, &client, name, trigger).await,
        );
    }
    for bucket in &r2s {
        report(
            format!("r2 `{bucket}`"),
            r2::run(&repo, &config, bucket, trigger).await,
        );
    }
    let total = d1s.len() + kvs.len() + r2s.len();
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

/// A backup of one sealed artifact, as it goes into the repository.
struct Sealed<'a> {
    kind: Kind,
    target: Target,
    trigger: &'a str,
    method: &'a str,
    artifact: &'a str,
    format: &'a str,
    stats: serde_json::Value,
}

/// Takes the writer lease, seals `file` as the backup's artifact, commits the manifest, and
/// releases the lease whatever happened in between.
async fn store(repo: &Repo, s: Sealed<'_>, file: std::fs::File) -> anyhow::Result<Manifest> {
    store_with(repo, s, file, |_| {}).await
}

/// `store`, letting the caller fill in more of the manifest before it is committed.
async fn store_with(
    repo: &Repo,
    s: Sealed<'_>,
    file: std::fs::File,
    more: impl FnOnce(&mut Manifest),
) -> anyhow::Result<Manifest> {
    let purpose = format!("backup {} {}", s.kind.as_str(), s.target.name);
    let lease = Lease::acquire(&repo.storage, &purpose, lease::DEFAULT_TTL)
        .await
        .map_err(context::fail)?;
    if let Some(old) = &lease.took_over {
        eprintln!(
            "cfdr: warning: took over a stale writer lease of {} on {} (since {})",
            old.owner, old.host, old.started
        );
    }
    let result = async {
        let previous = repo
            .latest(&s.kind, &s.target.name)
            .await
            .map_err(context::fail)?;
        let mut writer = repo.begin(&lease, s.kind, s.target, s.trigger, s.method);
        writer
            .add_artifact(s.artifact, s.format, file)
            .await
            .map_err(context::fail)?;
        writer.manifest.stats = s.stats;
        more(&mut writer.manifest);
        sanity(previous.as_ref(), &mut writer.manifest);
        writer.commit().await.map_err(context::fail)
    }
    .await;
    lease.release().await.map_err(context::fail)?;
    Ok(result?)
}
