//! `cfdr workers list | versions <script> | deployments <script> [--json]`: what is live on
//! each Worker, what it could go back to, and how it got here (`ops::workers`), read-only;
//! `cfdr workers rollback` and `cfdr workers undo`: the plan shown, the Worker's name typed (or
//! `--yes`), the run and its report (`ops::workers::deploy`).

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use crate::cli::exit::{Exit, Failure};
use crate::config::Config;
use crate::ops::backup::Env;
use crate::ops::restore::Outcome;
use crate::ops::workers;
use crate::ops::workers::deploy::{self, Journal, Options, Request};
use crate::ops::workers::rollback::{Pick, Plan, label};
use crate::progress::Progress;
use crate::text::age;

use super::context::{self, RepoArgs, print_json};

#[derive(Debug, clap::Subcommand)]
pub enum WorkersCommand {
    /// Every Worker with what is live: the versions and shares of its newest deployment.
    List {
        #[arg(long)]
        json: bool,
    },
    /// A Worker's deployable versions (the newest 100), newest first, the live ones marked.
    Versions {
        script: String,
        #[arg(long)]
        json: bool,
    },
    /// A Worker's recent deployments (about the newest 10), newest (live) first.
    Deployments {
        script: String,
        #[arg(long)]
        json: bool,
    },
    /// Put an earlier version back in front of traffic: planned (preflight of secrets,
    /// bindings, Durable Object migrations), confirmed, deployed, verified; undo with
    /// `cfdr workers undo <run>`.
    Rollback(RollbackArgs),
    /// Put back what a rollback run replaced, while its deployments are still live.
    Undo(UndoArgs),
    /// Take up a rollback run cut off by a crash or a kill, from its journal: what landed is
    /// not sent again.
    Resume(ResumeArgs),
}

#[derive(Debug, clap::Args)]
pub struct ResumeArgs {
    /// The rollback (or undo) run.
    run: String,
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    settle: std::time::Duration,
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    wait: std::time::Duration,
    #[arg(long, value_name = "URL")]
    probe: Option<String>,
    /// If Cloudflare asks for force (10220), agree.
    #[arg(long)]
    force_secrets: bool,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    repo: RepoArgs,
}

#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// The Worker (see `cfdr workers list`).
    #[arg(required_unless_present = "workers", conflicts_with = "workers")]
    script: Option<String>,
    /// Several Workers, rolled back in this order, each to its automatic target; the run stops
    /// at the first that fails.
    #[arg(long, value_delimiter = ',', value_name = "W,…")]
    workers: Vec<String>,
    /// The version to go back to (id, id prefix, v12 or 12); by default the newest earlier
    /// 100 % deployment whose version is not live.
    #[arg(long, value_name = "VERSION", conflicts_with_all = ["split", "workers"])]
    to: Option<String>,
    /// Two versions sharing the traffic: the first at its percentage, the second the rest
    /// (`v7=90,v8`).
    #[arg(long, value_name = "A=PCT,B", conflicts_with_all = ["steps", "workers"])]
    split: Option<String>,
    /// Move traffic in stages, the target's percentage at each (rising, ending at 100), each
    /// verified before the next.
    #[arg(long, value_delimiter = ',', value_name = "PCT,…")]
    steps: Vec<f64>,
    /// How long to wait between stages before checking again and going on.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    wait: std::time::Duration,
    /// How long after a deployment its second read-back waits (a concurrent deploy could win).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    settle: std::time::Duration,
    /// The Worker's URL answering its version as JSON `version_id` (`{script}` is replaced);
    /// default: workers_probe_url / CFDR_WORKERS_PROBE_URL; none: no probe.
    #[arg(long, value_name = "URL")]
    probe: Option<String>,
    /// If Cloudflare refuses because a secret changed since the target was live (10220),
    /// deploy anyway: that version's secret values come back.
    #[arg(long)]
    force_secrets: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, clap::Args)]
pub struct UndoArgs {
    /// The rollback run (its id, as the rollback printed it).
    run: String,
    /// If Cloudflare asks for force (10220) to bring back the newer secrets, agree.
    #[arg(long)]
    force_secrets: bool,
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    settle: std::time::Duration,
    #[arg(long, value_name = "URL")]
    probe: Option<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, clap::Args)]
struct Common {
    /// Show the plan and stop: nothing is sent but reads.
    #[arg(long)]
    dry_run: bool,
    /// Go ahead without typing the Worker's name (for scripts).
    #[arg(long)]
    yes: bool,
    /// The plan (with --dry-run) or the plan and the report as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    repo: RepoArgs,
}

/// `v7=90,v8` (or `v7=90,v8=10`): the first version, its percentage, the second.
fn parse_split(s: &str) -> Result<Pick, Failure> {
    let bad = || {
        Failure::usage(format!(
            "--split {s}: write two versions and the first's percentage, e.g. --split v7=90,v8"
        ))
    };
    let (a, b) = s.split_once(',').ok_or_else(bad)?;
    let (a, pa) = a.split_once('=').ok_or_else(bad)?;
    let pa: f64 = pa.trim().trim_end_matches('%').parse().map_err(|_| bad())?;
    let b = b.split_once('=').map_or(b, |(b, _)| b);
    Ok(Pick::Split(a.trim().into(), pa, b.trim().into()))
}

pub async fn run(cmd: WorkersCommand) -> anyhow::Result<()> {
    let config = Config::load().map_err(|e| Failure::usage(e.to_string()))?;
    let client = match (&config.api_token, &config.account_id) {
        (Some(_), Some(_)) => Some(context::cloudflare_with(
            &config,
            4,
            crate::cloudflare::RetryPolicy::default(),
        )?),
        _ => None,
    };
    let cmd = match cmd {
        WorkersCommand::Rollback(a) => return rollback(config, client, a).await,
        WorkersCommand::Undo(a) => return undo(config, client, a).await,
        WorkersCommand::Resume(a) => {
            let opts = Options {
                settle: a.settle,
                wait: a.wait,
                force: a.force_secrets,
                probe: a.probe.clone().or_else(|| config.workers_probe_url.clone()),
            };
            let repo = context::open(&a.repo).await?;
            let env = Env {
                repo: &repo,
                config: &config,
                client: client.as_ref(),
            };
            let progress = Progress::new("rollback", super::progress::sink(a.json));
            let j = deploy::resume(&env, &a.run, &opts, &progress).await?;
            return report(&j, a.json);
        }
        other => other,
    };
    let now = time::OffsetDateTime::now_utc();
    let ago = |t: &Option<String>| t.as_deref().map_or("-".to_string(), |t| age(t, now));
    let text = |t: &Option<String>| t.clone().unwrap_or_default();
    match cmd {
        WorkersCommand::List { json } => {
            let rows = workers::list(client.as_ref()).await?;
            if json {
                return print_json(&rows);
            }
            println!(
                "{:<24} {:<26} {:>6}  {:<11} MESSAGE",
                "WORKER", "LIVE", "AGE", "BY"
            );
            for r in &rows {
                println!(
                    "{:<24} {:<26} {:>6}  {:<11} {}",
                    r.name,
                    workers::split(&r.live),
                    ago(&r.deployed_on),
                    text(&r.triggered_by),
                    text(&r.message)
                );
            }
            println!("{} workers", rows.len());
        }
        WorkersCommand::Versions { script, json } => {
            let rows = workers::versions(client.as_ref(), &script).await?;
            if json {
                return print_json(&rows);
            }
            println!(
                "{:>5} {:<36} {:>6} {:<14} {:<9} MESSAGE",
                "NO", "ID", "AGE", "TRIGGER", "LIVE"
            );
            for v in &rows {
                println!(
                    "{:>5} {:<36} {:>6} {:<14} {:<9} {}",
                    format!("v{}", v.number),
                    v.id,
                    ago(&v.created_on),
                    text(&v.triggered_by),
                    v.live_percentage
                        .map_or(String::new(), |p| format!("LIVE {p} %")),
                    text(&v.message)
                );
            }
            println!("{} deployable versions of `{script}`", rows.len());
        }
        WorkersCommand::Deployments { script, json } => {
            let rows = workers::deployments(client.as_ref(), &script).await?;
            if json {
                return print_json(&rows);
            }
            println!(
                "{:<36} {:>6} {:<26} {:<11} MESSAGE",
                "DEPLOYMENT", "AGE", "SPLIT", "BY"
            );
            for d in &rows {
                println!(
                    "{:<36} {:>6} {:<26} {:<11} {}{}",
                    d.id,
                    ago(&d.created_on),
                    workers::split(&d.versions),
                    text(&d.triggered_by),
                    text(&d.message),
                    if d.live { "  ← live" } else { "" }
                );
            }
        }
        WorkersCommand::Rollback(_) | WorkersCommand::Undo(_) | WorkersCommand::Resume(_) => {}
    }
    Ok(())
}

async fn rollback(
    config: Config,
    client: Option<crate::cloudflare::Client>,
    a: RollbackArgs,
) -> anyhow::Result<()> {
    let pick = match (&a.to, &a.split) {
        (Some(to), _) => Pick::To(to.clone()),
        (None, Some(s)) => parse_split(s)?,
        (None, None) => Pick::Auto,
    };
    let names: Vec<String> = match &a.script {
        Some(s) => vec![s.clone()],
        None => a.workers.iter().map(|w| w.trim().to_string()).collect(),
    };
    if names.iter().any(String::is_empty) {
        return Err(Failure::usage(
            "--workers holds an empty name; list Workers separated by commas, e.g. --workers api,auth",
        )
        .into());
    }
    let req = Request {
        workers: names.into_iter().map(|n| (n, pick.clone())).collect(),
        steps: a.steps.clone(),
        undo_of: None,
    };
    let opts = Options {
        settle: a.settle,
        wait: a.wait,
        force: a.force_secrets,
        probe: a.probe.clone().or_else(|| config.workers_probe_url.clone()),
    };
    carry_out(config, client, &req, &opts, &a.common).await
}

async fn undo(
    config: Config,
    client: Option<crate::cloudflare::Client>,
    a: UndoArgs,
) -> anyhow::Result<()> {
    let opts = Options {
        settle: a.settle,
        wait: std::time::Duration::ZERO,
        force: a.force_secrets,
        probe: a.probe.clone().or_else(|| config.workers_probe_url.clone()),
    };
    let repo = context::open(&a.common.repo).await?;
    let env = Env {
        repo: &repo,
        config: &config,
        client: client.as_ref(),
    };
    let req = deploy::undo_request(&env, &a.run).await?;
    carry_out_with(&config, client.as_ref(), &repo, &req, &opts, &a.common).await
}

async fn carry_out(
    config: Config,
    client: Option<crate::cloudflare::Client>,
    req: &Request,
    opts: &Options,
    common: &Common,
) -> anyhow::Result<()> {
    let repo = context::open(&common.repo).await?;
    carry_out_with(&config, client.as_ref(), &repo, req, opts, common).await
}

/// Planned, shown (`--dry-run` stops there), refused or confirmed, run, reported.
async fn carry_out_with(
    config: &Config,
    client: Option<&crate::cloudflare::Client>,
    repo: &crate::repo::Repo,
    req: &Request,
    opts: &Options,
    common: &Common,
) -> anyhow::Result<()> {
    let env = Env {
        repo,
        config,
        client,
    };
    let plan = deploy::plan(&env, req).await?;
    if common.dry_run {
        if common.json {
            print_json(&plan)?;
        } else {
            print_plan(&plan, opts, &mut std::io::stdout())?;
            println!("dry run: nothing was deployed");
        }
        return Ok(());
    }
    print_plan(&plan, opts, &mut std::io::stderr())?;
    let refusals = plan.refusals();
    if !refusals.is_empty() {
        return Err(Failure::usage(format!(
            "the rollback is refused, nothing was deployed: {}",
            refusals.join("; ")
        ))
        .into());
    }
    if !common.yes {
        confirm(&plan)?;
    }
    let progress = Progress::new("rollback", super::progress::sink(common.json));
    let j = deploy::run(&env, plan, opts, &progress).await?;
    report(&j, common.json)
}

/// Each Worker: what is live, where it goes and why, the stages, the preflight's findings;
/// then what a rollback changes and leaves alone.
pub fn print_plan(
    plan: &Plan,
    opts: &Options,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let verb = plan.verb();
    writeln!(
        out,
        "Worker {verb} {} — {} Worker(s), in this order:",
        plan.run,
        plan.workers.len()
    )?;
    for (i, w) in plan.workers.iter().enumerate() {
        writeln!(out, "{}. {}", i + 1, w.script)?;
        writeln!(
            out,
            "   live:   {} (deployment {}, {}{})",
            label(&w.live.versions),
            w.live.deployment.chars().take(8).collect::<String>(),
            w.live.created_on.as_deref().unwrap_or("-"),
            w.live
                .message
                .as_deref()
                .map(|m| format!(", \"{m}\""))
                .unwrap_or_default()
        )?;
        writeln!(
            out,
            "   target: {} — {} ({})",
            label(&w.target),
            w.why,
            w.how
        )?;
        if w.stages.len() > 1 {
            let stages: Vec<String> = w.stages.iter().map(|s| label(s)).collect();
            writeln!(out, "   stages: {}", stages.join(" → "))?;
        }
        for f in &w.findings {
            let tag = if f.refused() { "REFUSED" } else { "warning" };
            writeln!(out, "   {tag}: {}", f.text)?;
        }
    }
    writeln!(
        out,
        "Checks: each deployment read back, read again after {}{}{}.",
        humantime::format_duration(opts.settle),
        opts.probe
            .as_deref()
            .map(|p| format!(", the Worker probed at {p}"))
            .unwrap_or_else(|| ", no HTTP probe (set --probe or workers_probe_url)".into()),
        if opts.wait.is_zero() {
            String::new()
        } else {
            format!(", {} between stages", humantime::format_duration(opts.wait))
        }
    )?;
    writeln!(
        out,
        "Requests: {} read for this plan, about {} to run it.",
        plan.requests_read, plan.requests_planned
    )?;
    writeln!(out, "Changes: {}.", plan.changes)?;
    writeln!(out, "Untouched: {}.", plan.untouched.join("; "))?;
    if opts.force {
        writeln!(
            out,
            "--force-secrets: if Cloudflare asks (10220), older secret values come back."
        )?;
    }
    Ok(())
}

/// On a terminal the operator types the Worker's name (the names, comma-separated, for
/// several); anywhere else `--yes` is needed.
fn confirm(plan: &Plan) -> Result<(), Failure> {
    let word = plan
        .workers
        .iter()
        .map(|w| w.script.as_str())
        .collect::<Vec<_>>()
        .join(",");
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(Failure::usage(format!(
            "this deploys to Worker(s) {word}; nobody can type the confirmation here: run it with --yes, or with --dry-run to see the plan"
        )));
    }
    eprint!("type `{word}` to deploy (anything else stops): ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    if line.trim_end_matches(['\r', '\n']) != word {
        return Err(Failure::usage(format!(
            "the confirmation did not match `{word}`; nothing was deployed"
        )));
    }
    Ok(())
}

fn report(j: &Journal, json: bool) -> anyhow::Result<()> {
    if json {
        print_json(j)?;
    } else {
        let verb = j.plan.verb();
        for (d, w) in j.workers.iter().zip(&j.plan.workers) {
            println!(
                "{}: {}{}",
                d.script,
                d.state,
                match d.state.as_str() {
                    "rolled-back" => format!(" — {} live, verified", label(&w.target)),
                    "untouched" =>
                        " — an earlier Worker failed, so this one was not changed".into(),
                    _ => d
                        .error
                        .as_deref()
                        .map(|e| format!(" — {e}"))
                        .unwrap_or_default(),
                }
            );
            for c in &d.checks {
                println!("  ✓ {c}");
            }
            if d.forced {
                println!(
                    "  forced: Cloudflare asked for force (a secret changed) and --force-secrets agreed"
                );
            }
        }
        println!(
            "{verb} {}: {} — {} requests in {:.1}s",
            j.plan.run,
            match j.outcome {
                Some(Outcome::Success) => "success",
                Some(Outcome::Partial) => "PARTIAL",
                _ => "FAILED",
            },
            j.requests,
            j.seconds.unwrap_or_default()
        );
        if j.workers.iter().any(|w| !w.made.is_empty()) && j.plan.undo_of.is_none() {
            println!("undo with `cfdr workers undo {}`", j.plan.run);
        }
        println!("untouched by a rollback: {}", j.plan.untouched.join("; "));
    }
    match j.outcome {
        Some(Outcome::Success) => Ok(()),
        _ => Err(Failure::new(
            Exit::Verification,
            format!(
                "Worker {} {} is {}: {}",
                j.plan.verb(),
                j.plan.run,
                if j.outcome == Some(Outcome::Partial) {
                    "partial"
                } else {
                    "failed"
                },
                j.workers
                    .iter()
                    .map(|w| format!("{} {}", w.script, w.state))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .into()),
    }
}
