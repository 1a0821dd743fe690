//! `cfdr backups list|show|verify|cat|prune`: the inventory, one backup's manifest, integrity
//! checks, decrypted artifacts, and retention.

use std::io::Write as _;
use std::time::Duration;

use serde_json::json;

use crate::engine::kv;
use time::OffsetDateTime;

use crate::cli::exit::Failure;
use crate::repo::retention::Policy;
use crate::repo::{Entry, VerifyMode, manifest};

use super::context::{self, RepoArgs, age, human_size, print_json};

#[derive(Debug, clap::Subcommand)]
pub enum BackupsCommand {
    /// List backups, oldest first.
    List {
        #[arg(long, value_parser = ["d1", "kv", "r2", "sqlite"])]
        kind: Option<String>,
        /// Only this target (its name).
        #[arg(long)]
        target: Option<String>,
        /// Only backups newer than this: a duration (`7d`) or an RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        #[command(flatten)]
        repo: RepoArgs,
        #[arg(long)]
        json: bool,
    },
    /// Show a backup's manifest, artifacts, checksums and last verification.
    Show {
        id: String,
        #[command(flatten)]
        repo: RepoArgs,
        #[arg(long)]
        json: bool,
    },
    /// Check backups: quick by default; --full decrypts everything.
    Verify {
        /// The backup to check (or --all).
        #[arg(required_unless_present = "all")]
        id: Option<String>,
        #[arg(long, conflicts_with = "id")]
        all: bool,
        #[arg(long, conflicts_with = "sample")]
        full: bool,
        /// Verify this share of artifacts in full, picked at random.
        #[arg(long, value_parser = parse_percent)]
        sample: Option<f64>,
        #[command(flatten)]
        repo: RepoArgs,
        #[arg(long)]
        json: bool,
    },
    /// Write an artifact, decrypted and checked, to stdout (nothing is written if a check fails).
    Cat {
        id: String,
        /// The artifact (default: the backup's only or first artifact).
        artifact: Option<String>,
        /// An incremental KV backup: print the whole namespace it stands for (its chain of
        /// parents folded up to it) instead of only what it stored.
        #[arg(long)]
        full: bool,
        #[command(flatten)]
        repo: RepoArgs,
    },
    /// Forget backups by retention rules (per target), then collect unreferenced blobs.
    Prune {
        #[arg(long, default_value_t = 0)]
        keep_last: usize,
        #[arg(long, default_value_t = 0)]
        keep_hourly: usize,
        #[arg(long, default_value_t = 0)]
        keep_daily: usize,
        #[arg(long, default_value_t = 0)]
        keep_weekly: usize,
        #[arg(long, default_value_t = 0)]
        keep_monthly: usize,
        #[arg(long, default_value_t = 0)]
        keep_yearly: usize,
        #[arg(long, value_parser = humantime::parse_duration)]
        keep_within: Option<Duration>,
        /// Show what would go and why the rest stays; change nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        repo: RepoArgs,
        #[arg(long)]
        json: bool,
    },
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("`{s}` is not a percentage"))?;
    if v > 0.0 && v <= 100.0 {
        Ok(v)
    } else {
        Err(format!("`{s}` must be above 0 and at most 100"))
    }
}

fn since_cutoff(s: &str, now: OffsetDateTime) -> Result<OffsetDateTime, Failure> {
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(now - d);
    }
    manifest::parse_time(s).ok_or_else(|| {
        Failure::usage(format!(
            "--since `{s}` is neither a duration (7d) nor an RFC 3339 time"
        ))
    })
}

pub async fn run(cmd: BackupsCommand) -> anyhow::Result<()> {
    let now = OffsetDateTime::now_utc();
    match cmd {
        BackupsCommand::List {
            kind,
            target,
            since,
            repo,
            json,
        } => {
            let repo = context::open(&repo).await?;
            let cutoff = since.as_deref().map(|s| since_cutoff(s, now)).transpose()?;
            let catalog = repo.catalog().await?;
            let rows: Vec<&Entry> = catalog
                .entries
                .iter()
                .filter(|e| kind.as_ref().is_none_or(|k| &e.kind == k))
                .filter(|e| target.as_ref().is_none_or(|t| &e.target == t))
                .filter(|e| {
                    cutoff.is_none_or(|c| manifest::parse_time(&e.started).is_some_and(|t| t >= c))
                })
                .collect();
            if json {
                return print_json(&rows);
            }
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{:<27} {:<6} {:<24} {:<12} {:<13} {:>5} {:>10} WARN",
                "ID", "KIND", "TARGET", "TRIGGER", "METHOD", "AGE", "STORED"
            )?;
            for e in &rows {
                writeln!(
                    out,
                    "{:<27} {:<6} {:<24} {:<12} {:<13} {:>5} {:>10} {}",
                    e.id,
                    e.kind,
                    e.target,
                    e.trigger,
                    e.method,
                    age(&e.started, now),
                    human_size(e.stored_size),
                    if e.warnings > 0 {
                        e.warnings.to_string()
                    } else {
                        String::new()
                    }
                )?;
            }
            writeln!(out, "{} backups", rows.len())?;
            Ok(())
        }
        BackupsCommand::Show { id, repo, json } => {
            let repo = context::open(&repo).await?;
            let m = repo.manifest(&id).await?;
            let last = repo.last_verification(&m).await?;
            if json {
                return print_json(&json!({ "manifest": m, "last_verification": last }));
            }
            println!("backup      {}", m.id);
            println!(
                "kind        {}   target `{}` ({})",
                m.kind.as_str(),
                m.target.name,
                m.target.id
            );
            println!("trigger     {}   method {}", m.trigger, m.method);
            println!("started     {}   finished {}", m.started, m.finished);
            if let Some(cp) = &m.consistency_point {
                println!("consistent  {cp}");
            }
            println!(
                "key         {}   tool {}   manifest MAC ok",
                m.key_id, m.tool_version
            );
            if let Some(p) = &m.parent {
                println!("parent      {p}");
            }
            for w in &m.warnings {
                println!("warning     {w}");
            }
            println!("artifacts");
            for a in &m.artifacts {
                println!(
                    "  {}  ({}, {} chunks of {})",
                    a.name,
                    a.format,
                    a.chunks,
                    human_size(u64::from(a.chunk_size))
                );
                println!(
                    "    plaintext {:>12}  sha256 {}",
                    human_size(a.plaintext_size),
                    a.plaintext_sha256
                );
                println!(
                    "    stored    {:>12}  sha256 {}",
                    human_size(a.stored_size),
                    a.stored_sha256
                );
            }
            if !m.stats.is_null() {
                println!("stats       {}", serde_json::to_string(&m.stats)?);
            }
            match last {
                Some(v) => println!(
                    "verified    {} ({}): {}",
                    v.at,
                    v.mode,
                    if v.ok {
                        "ok".to_string()
                    } else {
                        format!("{} problems", v.problems.len())
                    }
                ),
                None => println!(
                    "verified    never; run `cfdr backups verify {} --full`",
                    m.id
                ),
            }
            Ok(())
        }
        BackupsCommand::Verify {
            id,
            all,
            full,
            sample,
            repo,
            json,
        } => {
            let repo = context::open(&repo).await?;
            let mode = match (full, sample) {
                (true, _) => VerifyMode::Full,
                (_, Some(p)) => VerifyMode::Sample(p),
                _ => VerifyMode::Quick,
            };
            let ids: Vec<Entry> = if all {
                repo.catalog().await?.entries
            } else {
                vec![repo.entry(&id.unwrap_or_default()).await?]
            };
            let mut reports = Vec::new();
            let mut bad = Vec::new();
            // A deep verify reads every byte: show how far it is (a quick one is instant).
            let sink = (mode != VerifyMode::Quick).then(|| super::progress::sink(json));
            for entry in ids {
                let id = entry.id.clone();
                match repo.manifest_of(&entry).await {
                    Ok(m) => {
                        let progress = match &sink {
                            Some(s) => {
                                crate::progress::Progress::new(format!("verify {id}"), s.clone())
                            }
                            None => crate::progress::Progress::silent(),
                        };
                        let r = repo.verify_with(&m, mode, &progress).await?;
                        for p in &r.problems {
                            bad.push(format!(
                                "backup `{}`: artifact `{}`: {}",
                                r.id, p.artifact, p.message
                            ));
                        }
                        if !json {
                            println!(
                                "{} {} ({} artifacts, {} checked in full)",
                                if r.ok { "ok  " } else { "FAIL" },
                                r.id,
                                r.artifacts_checked,
                                human_size(r.bytes_checked)
                            );
                        }
                        reports.push(r);
                    }
                    Err(e @ crate::repo::RepoError::Tampered { .. }) => {
                        bad.push(e.to_string());
                        if !json {
                            println!("FAIL {id} (manifest)");
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            if json {
                print_json(&json!({ "ok": bad.is_empty(), "reports": reports, "problems": bad }))?;
            }
            if bad.is_empty() {
                Ok(())
            } else {
                Err(context::verification_failed(bad.join("\n")).into())
            }
        }
        BackupsCommand::Cat {
            id,
            artifact,
            full,
            repo,
        } => {
            let repo = context::open(&repo).await?;
            let m = repo.manifest(&id).await?;
            if full && m.method == kv::INCREMENTAL {
                let (state, _) = crate::ops::backup::kv::state_of(&repo, &m).await?;
                use std::io::Write as _;
                let mut out = std::io::stdout().lock();
                return match out
                    .write_all(&kv::render(&state))
                    .and_then(|()| out.flush())
                {
                    Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                    _ => Ok(()),
                };
            }
            let name = artifact
                .or_else(|| m.artifacts.first().map(|a| a.name.clone()))
                .unwrap_or_default();
            // Decrypt to a temporary file first: stdout sees nothing unless every check passed.
            let tmp = tempfile::tempfile()?;
            let mut tmp = repo.open_artifact(&m, &name, tmp).await?;
            use std::io::Seek as _;
            tmp.seek(std::io::SeekFrom::Start(0))?;
            let mut out = std::io::stdout().lock();
            match std::io::copy(&mut tmp, &mut out) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                r => r.map(drop).map_err(Into::into),
            }
        }
        BackupsCommand::Prune {
            keep_last,
            keep_hourly,
            keep_daily,
            keep_weekly,
            keep_monthly,
            keep_yearly,
            keep_within,
            dry_run,
            repo,
            json,
        } => {
            let policy = Policy {
                last: keep_last,
                hourly: keep_hourly,
                daily: keep_daily,
                weekly: keep_weekly,
                monthly: keep_monthly,
                yearly: keep_yearly,
                within: keep_within,
            };
            if policy.is_empty() {
                return Err(Failure::usage(
                    "give at least one --keep-… rule; prune never guesses what to delete",
                )
                .into());
            }
            let repo = context::open(&repo).await?;
            prune(&repo, &policy, dry_run, json).await
        }
    }
}

async fn prune(
    repo: &crate::repo::Repo,
    policy: &Policy,
    dry_run: bool,
    json: bool,
) -> anyhow::Result<()> {
    let progress = crate::progress::Progress::new("prune", super::progress::sink(json));
    let done = crate::ops::prune::prune(repo, policy, dry_run, &progress).await?;
    if json {
        return print_json(&done);
    }
    for d in &done.plan {
        if d.keep {
            println!(
                "keep   {}  {}/{}  ({})",
                d.id,
                d.kind,
                d.target,
                d.reasons.join(", ")
            );
        } else {
            println!(
                "{} {}  {}/{}",
                if dry_run { "would forget" } else { "forget" },
                d.id,
                d.kind,
                d.target
            );
        }
    }
    let forgetting = done.plan.iter().filter(|d| !d.keep).count();
    println!(
        "{} {} of {} backups; {} unreferenced blobs removed",
        if dry_run { "would forget" } else { "forgot" },
        if dry_run { forgetting } else { done.forgotten },
        done.plan.len(),
        done.blobs_removed
    );
    Ok(())
}
