//! `cfdr restore <backup-id> …`, `cfdr restore --resume <run-id>`, `cfdr restore --undo
//! <run-id>` and `cfdr diff <backup-id>`: the flags, the plan as the operator reads it, the
//! typed confirmation, the report. The work is `ops::restore`, shared with the console.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::time::Duration;

use crate::cli::exit::{Exit, Failure};
use crate::config::Config;
use crate::ops::backup::Env;
use crate::ops::restore::{self, Mode, Outcome, Plan, Report, Request, Verification};
use crate::progress::Progress;

use super::context::{self, RepoArgs, print_json};

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The backup to restore (its id, as `cfdr backups list` shows it).
    #[arg(required_unless_present_any = ["resume", "undo"], conflicts_with_all = ["resume", "undo"])]
    backup: Option<String>,
    /// Restore into this target (title or id) instead of the backup's own; created when it
    /// does not exist.
    #[arg(long, value_name = "TARGET")]
    to: Option<String>,
    /// Only keys under this prefix; nothing outside it is read back, written or deleted.
    #[arg(long)]
    prefix: Option<String>,
    /// D1: only these tables (replaced, created, or with --mode clear dropped); nothing else
    /// in the database is touched.
    #[arg(long, value_delimiter = ',', value_name = "T,…")]
    tables: Vec<String>,
    /// overwrite: write what differs, keep the rest; skip: write only what the target lacks;
    /// clear: afterwards the target equals the backup (extra keys deleted after the writes).
    #[arg(long, default_value = "overwrite", value_parser = ["overwrite", "skip", "clear"])]
    mode: String,
    /// Show the plan and stop: nothing is written, no lock is taken.
    #[arg(long)]
    dry_run: bool,
    /// Go ahead without the typed confirmation (for scripts).
    #[arg(long)]
    yes: bool,
    /// Do not back up the target before overwriting it (needs --yes-i-understand).
    #[arg(long)]
    no_snapshot: bool,
    /// Confirms --no-snapshot: what the restore overwrites cannot be undone.
    #[arg(long)]
    yes_i_understand: bool,
    /// Finish a run that stopped, from its journal.
    #[arg(long, value_name = "RUN", conflicts_with = "undo")]
    resume: Option<String>,
    /// Put back what a run overwrote, from its pre-recovery snapshot.
    #[arg(long, value_name = "RUN")]
    undo: Option<String>,
    /// D1: import (D1's import API: one all-or-nothing file, split past 5 GB) or batched
    /// (the query API, in requests within D1's limits, each landing exactly once).
    #[arg(long, default_value = "import", value_parser = ["import", "batched"])]
    method: String,
    /// D1 batched: KiB of SQL a request carries (16 to 1,024; smaller requests for a database
    /// whose writes are slow: D1 stops a request at 30 s).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u16).range(16..=1024))]
    batch_kib: u16,
    /// KV: pairs a bulk write carries (1 to 10,000; fewer make smaller requests).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u16).range(1..=10_000))]
    kv_batch: u16,
    /// KV: only keys in these criticality tiers (key patterns configured under
    /// [tiers."kv/<namespace>"]), restored tier by tier in the order given.
    #[arg(long, value_delimiter = ',', value_name = "TIER,…")]
    tier: Vec<String>,
    /// Print the plan (with --dry-run) or the plan and the report as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    net: Net,
    #[command(flatten)]
    account: Account,
    #[command(flatten)]
    repo: RepoArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub(super) struct Account {
    /// Work in another account: the config file's [profiles.NAME] (its account id, API token
    /// and R2 keys); the repository stays the same. A resume or an undo uses its run's.
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The backup to compare with.
    backup: String,
    /// Compare with this target (title or id) instead of the backup's own.
    #[arg(long, value_name = "TARGET")]
    to: Option<String>,
    /// Only keys under this prefix.
    #[arg(long)]
    prefix: Option<String>,
    /// D1: only these tables.
    #[arg(long, value_delimiter = ',', value_name = "T,…")]
    tables: Vec<String>,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    net: Net,
    #[command(flatten)]
    account: Account,
    #[command(flatten)]
    repo: RepoArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub(super) struct Net {
    /// Requests in flight at once while reading.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// Give up on a request that has not answered in this long (it is retried like a 5xx).
    #[arg(long, default_value = "60s", value_parser = super::backup::parse_timeout)]
    timeout: Duration,
    /// Tries again this many times after a failed request.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(0..=20))]
    retries: u32,
}

impl Net {
    pub(super) fn retry(&self) -> crate::cloudflare::RetryPolicy {
        crate::cloudflare::RetryPolicy {
            timeout: self.timeout,
            max_retries: self.retries,
            ..Default::default()
        }
    }

    /// The REST client, when the configuration names one (an R2 restore needs only R2's keys).
    fn client(&self, config: &Config) -> anyhow::Result<Option<crate::cloudflare::Client>> {
        if config.api_token.is_none() && config.account_id.is_none() {
            return Ok(None);
        }
        Ok(Some(context::cloudflare_with(
            config,
            usize::from(self.concurrency),
            self.retry(),
        )?))
    }
}

/// What a restore or a diff works with: the configuration, the repository, and the REST client
/// when the configuration names one.
pub(super) struct Session {
    config: Config,
    pub(super) repo: crate::repo::Repo,
    client: Option<crate::cloudflare::Client>,
}

impl Session {
    /// The repository (as the main configuration says) and the Cloudflare account of
    /// `account`'s profile — or, when it names none and `run` is given, of that run's.
    pub(super) async fn open(
        repo: &RepoArgs,
        net: &Net,
        account: &Account,
        run: Option<&str>,
    ) -> anyhow::Result<Session> {
        let config = Config::load().map_err(|e| Failure::usage(e.to_string()))?;
        let repo = context::open(repo).await?;
        let profile = match (&account.profile, run) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(run)) => restore::load(&repo, run).await?.plan.profile,
            (None, None) => None,
        };
        let config = match profile {
            Some(p) => config
                .with_profile(&p)
                .map_err(|e| Failure::usage(e.to_string()))?,
            None => config,
        };
        let client = net.client(&config)?;
        Ok(Session {
            config,
            repo,
            client,
        })
    }

    pub(super) fn env(&self) -> Env<'_> {
        Env {
            repo: &self.repo,
            config: &self.config,
            client: self.client.as_ref(),
        }
    }
}

/// `--no-snapshot` goes with `--yes-i-understand`, or not at all.
pub(super) fn check_waiver(no_snapshot: bool, yes_i_understand: bool) -> Result<(), Failure> {
    if no_snapshot && !yes_i_understand {
        return Err(Failure::usage(
            "--no-snapshot loses the way back: what the restore overwrites cannot be undone; add --yes-i-understand to go ahead without a pre-recovery snapshot",
        ));
    }
    Ok(())
}

pub async fn run(args: RestoreArgs) -> anyhow::Result<()> {
    check_waiver(args.no_snapshot, args.yes_i_understand)?;
    if args.tables.iter().any(|t| t.trim().is_empty()) {
        return Err(Failure::usage(
            "--tables holds an empty name; list tables separated by commas, e.g. --tables users,orders",
        )
        .into());
    }
    if let Some(p) = &args.prefix
        && p.is_empty()
    {
        return Err(Failure::usage("--prefix is empty; leave it out to restore every key").into());
    }
    if args.tier.iter().any(|t| t.trim().is_empty()) {
        return Err(Failure::usage(
            "--tier holds an empty name; list tiers separated by commas, most critical first, e.g. --tier critical,important",
        )
        .into());
    }
    let run = args.resume.as_deref().or(args.undo.as_deref());
    let session = Session::open(&args.repo, &args.net, &args.account, run).await?;
    let env = session.env();
    let progress = Progress::new("restore", super::progress::sink(args.json));
    if let Some(run) = &args.resume {
        let report = restore::resume(&env, run, args.net.retry(), &progress).await?;
        return finish(None, &report, args.json);
    }
    let req = match &args.undo {
        Some(run) => {
            let mut r = restore::undo_request(&session.repo, run).await?;
            r.dry_run = args.dry_run;
            r.concurrency = usize::from(args.net.concurrency);
            r
        }
        None => Request {
            backup: args.backup.clone().unwrap_or_default(),
            to: args.to.clone(),
            prefix: args.prefix.clone(),
            tables: args.tables.clone(),
            mode: Mode::parse(&args.mode).unwrap_or_default(),
            snapshot: !args.no_snapshot,
            dry_run: args.dry_run,
            concurrency: usize::from(args.net.concurrency),
            undo_of: None,
            kv_batch: usize::from(args.kv_batch),
            retry: args.net.retry(),
            time_travel: None,
            batch_bytes: (args.method == "batched").then_some(usize::from(args.batch_kib) * 1024),
            tiers: if args.tier.is_empty() {
                restore::Tiers::All
            } else {
                restore::Tiers::Named(args.tier.clone())
            },
            pre_recovery: None,
        },
    };
    carry_out(&env, &req, args.yes, args.json, args.net.retry(), &progress).await
}

/// A request planned, shown (`--dry-run` stops there), confirmed, applied and reported.
pub(super) async fn carry_out(
    env: &Env<'_>,
    req: &Request,
    yes: bool,
    json: bool,
    retry: crate::cloudflare::RetryPolicy,
    progress: &Progress,
) -> anyhow::Result<()> {
    let planned = restore::plan(env, req, progress).await?;
    if req.dry_run {
        if json {
            print_json(&planned.plan)?;
        } else {
            restore::describe::print_plan(&planned.plan, &mut std::io::stdout())?;
            println!("dry run: nothing was written");
        }
        return Ok(());
    }
    // The plan goes to stderr so stdout keeps only the result.
    restore::describe::print_plan(&planned.plan, &mut std::io::stderr())?;
    if planned.plan.writes()
        && !yes
        && let Err(e) = confirm(&planned.plan)
    {
        planned.abandon().await?;
        return Err(e.into());
    }
    let plan = planned.plan.clone();
    let report = restore::apply(env, planned, retry, progress).await?;
    finish(Some(&plan), &report, json)
}

/// On a terminal the operator types the target's name; anywhere else `--yes` is needed.
fn confirm(plan: &Plan) -> Result<(), Failure> {
    let word = &plan.target.name;
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(Failure::usage(format!(
            "this restore writes to {}; nobody can type the confirmation here: run it with --yes, or with --dry-run to see the plan",
            plan.target.label()
        )));
    }
    eprint!("type `{word}` to restore into it (anything else stops): ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    if line.trim_end_matches(['\r', '\n']) != word {
        return Err(Failure::usage(format!(
            "the confirmation did not match `{word}`; nothing was written"
        )));
    }
    Ok(())
}

fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Success => "success",
        Outcome::Partial => "PARTIAL",
        Outcome::Failed => "FAILED",
    }
}

fn print_differences(v: &Verification) {
    if let Some(n) = &v.note {
        eprintln!("  {n}");
    }
    for d in &v.first {
        eprintln!("  {}: {}", d.what, d.key);
    }
    if v.differences > v.first.len() {
        eprintln!("  … and {} more", v.differences - v.first.len());
    }
}

fn finish(plan: Option<&Plan>, r: &Report, json: bool) -> anyhow::Result<()> {
    if json {
        print_json(&serde_json::json!({ "plan": plan, "report": r }))?;
    } else {
        println!(
            "restore {}: {} — {} {} created, {} overwritten, {} deleted, {} unchanged, {} kept, {} expired (skipped), {} failed; verified {} {}: {} differences; {} requests (planned {}) in {:.1}s{}",
            r.run,
            outcome_word(r.outcome),
            r.created,
            r.target.items(),
            r.overwritten,
            r.deleted,
            r.unchanged,
            r.kept,
            r.expired,
            r.failed.len(),
            r.verification.checked,
            r.target.items(),
            r.verification.differences,
            r.requests_sent,
            r.requests_planned,
            r.seconds,
            if r.resumed { " (resumed)" } else { "" }
        );
        if let Some(s) = &r.snapshot {
            println!(
                "pre-recovery snapshot {s}; undo with `cfdr restore --undo {}`",
                r.run
            );
        }
    }
    print_differences(&r.verification);
    for k in r.failed.iter().take(20) {
        eprintln!("  not written: {k}");
    }
    if r.outcome == Outcome::Success {
        Ok(())
    } else {
        Err(Failure::new(
            Exit::Verification,
            format!(
                "restore {} is {}: {} {} not written, {} differences after it; resume it with `cfdr restore --resume {}` once the cause is fixed",
                r.run,
                outcome_word(r.outcome),
                r.failed.len(),
                r.target.items(),
                r.verification.differences,
                r.run
            ),
        )
        .into())
    }
}

pub async fn diff(args: DiffArgs) -> anyhow::Result<()> {
    let session = Session::open(&args.repo, &args.net, &args.account, None).await?;
    let env = session.env();
    let progress = Progress::new("diff", super::progress::sink(args.json));
    let prefix = args.prefix.as_deref().filter(|p| !p.is_empty());
    let scope = restore::Scope {
        to: args.to.clone(),
        prefix: prefix.map(str::to_string),
        tables: args.tables.clone(),
        extra_ok: false,
        kept: Default::default(),
    };
    let (target, v) =
        restore::diff(&env, &args.backup, &scope, args.net.retry(), &progress).await?;
    if args.json {
        print_json(
            &serde_json::json!({ "backup": args.backup, "target": target, "verification": v }),
        )?;
    } else {
        println!(
            "{} against backup {}: {} {} compared, {} differences",
            target.label(),
            args.backup,
            v.checked,
            target.items(),
            v.differences
        );
        for d in &v.first {
            println!("{}\t{}", d.what, d.key);
        }
    }
    if v.ok {
        Ok(())
    } else {
        Err(Failure::new(
            Exit::Verification,
            format!("{} differs from backup {}", target.label(), args.backup),
        )
        .into())
    }
}
