//! Carrying out a Worker rollback plan (WORKERS.md §4, steps 5–8), Worker by Worker in the
//! plan's order, stopping at the first failure: the live deployment re-read just before each
//! deployment (someone may have deployed since the plan), the undo recorded in the run's
//! journal (`runs/<run>/worker-rollback.json`: the live `versions[]` exactly) before the first
//! write, each deployment sent once with a message naming the run (`force=true` only when the
//! operator said so, after Cloudflare's 10220), then verified (`verify.rs`: read back, the
//! split equal to the request, read again after a settling delay, the Worker itself probed over
//! HTTP when a probe URL is set) and between `--steps` stages checked again after the wait. A
//! run cut off by a crash is taken up from its journal ([`resume`]) without sending what landed
//! again. Undo puts back what a run replaced, while the live deployment is still one that run
//! made.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::super::restore::Outcome;
use super::super::{Error, Result};
use super::rollback::{
    self, CHANGES, Pick, Plan, Share, UNTOUCHED, WorkerPlan, label, plan_one, same,
};
use super::verify::{probe_check, still_live, verify};
use crate::cloudflare::workers::Deployment;
use crate::cloudflare::{CfError, Client};
use crate::ops::backup::Env;
use crate::progress::Progress;
use crate::repo::audit::Record;
use crate::repo::{Lease, lease, manifest};

/// The run's journal in its folder.
pub const JOURNAL: &str = "worker-rollback.json";
pub const JOURNAL_FORMAT: &str = "cfdr.worker-rollback-run/1";

/// What the operator asked for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Each Worker and where it goes, in the order they are rolled back.
    pub workers: Vec<(String, Pick)>,
    /// `--steps`: the target's percentage at each stage, the last 100.
    pub steps: Vec<f64>,
    /// This run undoes that one.
    pub undo_of: Option<String>,
}

/// How the run goes.
#[derive(Debug, Clone)]
pub struct Options {
    /// Between a deployment's read-back and its second read (a concurrent deploy could win).
    pub settle: Duration,
    /// Between `--steps` stages.
    pub wait: Duration,
    /// The operator agreed to `force=true` if Cloudflare asks for it (10220).
    pub force: bool,
    /// The Worker's URL (`{script}` replaced by its name), asked which version answers.
    pub probe: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            settle: Duration::from_secs(2),
            wait: Duration::ZERO,
            force: false,
            probe: None,
        }
    }
}

/// What happened to one Worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Done {
    pub script: String,
    /// pending, rolled-back, stopped (some stages landed), failed (nothing landed), untouched
    /// (an earlier Worker failed), undone (a later run put it back).
    pub state: String,
    /// The undo: the live deployment's versions exactly, before this run.
    pub before: Vec<Share>,
    /// The deployments this run made, in order.
    pub made: Vec<String>,
    /// Cloudflare asked for force (10220) and the operator had agreed: these secrets' values
    /// went back.
    pub forced: bool,
    /// The checks that passed, each a line.
    pub checks: Vec<String>,
    pub error: Option<String>,
    /// The run that undid this one.
    pub undone_by: Option<String>,
}

/// A run as its journal holds it, and its report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    pub format: String,
    pub plan: Plan,
    pub by: String,
    pub started: String,
    pub workers: Vec<Done>,
    pub outcome: Option<Outcome>,
    pub finished: Option<String>,
    pub seconds: Option<f64>,
    /// Requests to Cloudflare's API, the plan's and the run's.
    pub requests: u64,
}

fn client<'a>(env: &'a Env<'_>) -> Result<&'a Client> {
    env.client.ok_or_else(|| {
        Error::usage(
            "a Worker rollback needs the account: set CLOUDFLARE_API_TOKEN (Workers Scripts Write) and CLOUDFLARE_ACCOUNT_ID",
        )
    })
}

/// The plan: read only, nothing written anywhere.
pub async fn plan(env: &Env<'_>, req: &Request) -> Result<Plan> {
    let c = client(env)?;
    if req.workers.is_empty() {
        return Err(Error::usage(
            "name the Worker to roll back (cfdr workers list shows them)",
        ));
    }
    let began = c.pace.count();
    let mut workers = Vec::new();
    for (script, pick) in &req.workers {
        if workers.iter().any(|w: &WorkerPlan| w.script == *script) {
            return Err(Error::usage(format!(
                "Worker `{script}` is named twice; name each once"
            )));
        }
        workers.push(plan_one(c, script, pick, &req.steps).await?);
    }
    let stages: u64 = workers.iter().map(|w| w.stages.len() as u64).sum();
    Ok(Plan {
        format: rollback::PLAN_FORMAT.into(),
        run: manifest::new_id(time::OffsetDateTime::now_utc()),
        workers,
        undo_of: req.undo_of.clone(),
        requests_read: c.pace.count() - began,
        requests_planned: stages * 4,
        changes: CHANGES.into(),
        untouched: UNTOUCHED.iter().map(|s| s.to_string()).collect(),
    })
}

async fn save(env: &Env<'_>, j: &Journal) -> Result<()> {
    Ok(env
        .repo
        .put_run_file(&j.plan.run, JOURNAL, &serde_json::to_vec_pretty(j)?)
        .await?)
}

/// A run's journal.
pub async fn load(env: &Env<'_>, run: &str) -> Result<Journal> {
    let bytes = env.repo.run_file(run, JOURNAL).await?.ok_or_else(|| {
        Error::usage(format!(
            "no Worker rollback run `{run}` in repository `{}`; the audit trail lists them (cfdr audit)",
            env.repo.storage.display
        ))
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::Verification(format!(
            "Worker rollback run `{run}`: its journal cannot be read: {e}"
        ))
    })
}

/// The request that undoes run `run`: each Worker it changed, last first, back to what was live
/// before it.
pub async fn undo_request(env: &Env<'_>, run: &str) -> Result<Request> {
    let j = load(env, run).await?;
    let workers: Vec<(String, Pick)> = j
        .workers
        .iter()
        .rev()
        .filter(|w| !w.made.is_empty() || w.state == "sending")
        .map(|w| {
            (
                w.script.clone(),
                Pick::Undo {
                    run: run.to_string(),
                    shares: w.before.clone(),
                    made: w.made.clone(),
                },
            )
        })
        .collect();
    if workers.is_empty() {
        return Err(Error::usage(format!(
            "run `{run}` changed no Worker: there is nothing to undo"
        )));
    }
    if let Some(w) = j.workers.iter().find(|w| w.undone_by.is_some()) {
        return Err(Error::usage(format!(
            "run `{run}` was undone already, by run {} (Worker `{}`)",
            w.undone_by.as_deref().unwrap_or_default(),
            w.script
        )));
    }
    Ok(Request {
        workers,
        steps: Vec::new(),
        undo_of: Some(run.to_string()),
    })
}

/// Carries `plan` out (after the face's confirmation) and reports.
pub async fn run(
    env: &Env<'_>,
    plan: Plan,
    opts: &Options,
    progress: &Progress,
) -> Result<Journal> {
    let refusals = plan.refusals();
    if !refusals.is_empty() {
        return Err(Error::usage(format!(
            "the plan refuses this rollback, so nothing was sent: {}",
            refusals.join("; ")
        )));
    }
    let j = Journal {
        format: JOURNAL_FORMAT.into(),
        by: lease::who(),
        started: manifest::rfc3339(time::OffsetDateTime::now_utc()),
        workers: plan
            .workers
            .iter()
            .map(|w| Done {
                script: w.script.clone(),
                state: "pending".into(),
                before: w.live.versions.clone(),
                made: Vec::new(),
                forced: false,
                checks: Vec::new(),
                error: None,
                undone_by: None,
            })
            .collect(),
        outcome: None,
        finished: None,
        seconds: None,
        requests: plan.requests_read,
        plan,
    };
    carry(env, j, opts, progress).await
}

/// Takes run `run` up again after a crash, from its journal: the stages that landed are not
/// sent again (one sent just before the crash is found by its message), the last one is
/// verified again, and the rest follow. A finished run is reported as it ended.
pub async fn resume(
    env: &Env<'_>,
    run: &str,
    opts: &Options,
    progress: &Progress,
) -> Result<Journal> {
    let j = load(env, run).await?;
    if j.outcome.is_some() {
        return Ok(j);
    }
    carry(env, j, opts, progress).await
}

/// The run from where its journal stands, under each Worker's lease (let go on every path).
async fn carry(env: &Env<'_>, j: Journal, opts: &Options, progress: &Progress) -> Result<Journal> {
    client(env)?;
    if env.config.read_only {
        return Err(Error::usage(
            "cfdr is read-only here (read_only / CFDR_READ_ONLY): a rollback deploys; nothing was sent",
        ));
    }
    let mut leases = Vec::new();
    for w in &j.plan.workers {
        let taken = Lease::acquire_at(
            &env.repo.storage,
            &format!("locks/worker-{}.json", manifest::path_safe(&w.script)),
            &format!("Worker `{}`", w.script),
            &format!("Worker rollback run {}", j.plan.run),
            lease::DEFAULT_TTL,
        )
        .await;
        match taken {
            Ok(l) => leases.push(l),
            Err(e) => {
                for l in leases {
                    let _ = l.release().await;
                }
                return Err(e.into());
            }
        }
    }
    let got = workers(env, j, opts, progress).await;
    for l in leases {
        l.release().await?;
    }
    got
}

async fn workers(
    env: &Env<'_>,
    mut j: Journal,
    opts: &Options,
    progress: &Progress,
) -> Result<Journal> {
    let c = client(env)?;
    let began = Instant::now();
    // The undo is recorded before anything is sent.
    save(env, &j).await?;
    let sent_from = c.pace.count();
    let action = format!("worker-{}", j.plan.verb());
    let mut failed = false;
    for i in 0..j.workers.len() {
        if failed {
            j.workers[i].state = "untouched".into();
            continue;
        }
        if j.workers[i].state == "rolled-back" {
            continue;
        }
        let w = j.plan.workers[i].clone();
        let p = progress.job(format!("rollback {}", w.script));
        let item_began = Instant::now();
        let got = one(env, c, &mut j, i, &w, opts, &p).await;
        let d = &mut j.workers[i];
        match &got {
            Ok(()) => d.state = "rolled-back".into(),
            Err(e) => {
                d.state = if d.made.is_empty() {
                    "failed"
                } else {
                    "stopped"
                }
                .into();
                d.error = Some(e.to_string());
                failed = true;
            }
        }
        let record = Record {
            action: action.clone(),
            target: Some(format!("worker `{}`", w.script)),
            run: Some(j.plan.run.clone()),
            result: if got.is_ok() { "success" } else { "failed" }.into(),
            detail: Some(match &got {
                Ok(()) => format!(
                    "{} → {} ({}), verified",
                    label(&w.live.versions),
                    label(&w.target),
                    w.how
                ),
                Err(e) => e.to_string(),
            }),
            ..Default::default()
        };
        crate::ops::audit::record(env, record, item_began, progress).await;
        save(env, &j).await?;
    }
    let done = j
        .workers
        .iter()
        .filter(|w| w.state == "rolled-back")
        .count();
    j.outcome = Some(if done == j.workers.len() {
        Outcome::Success
    } else if j.workers.iter().any(|w| !w.made.is_empty()) {
        Outcome::Partial
    } else {
        Outcome::Failed
    });
    j.finished = Some(manifest::rfc3339(time::OffsetDateTime::now_utc()));
    j.seconds = Some(
        j.seconds.unwrap_or_default() + (began.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
    );
    j.requests += c.pace.count() - sent_from;
    save(env, &j).await?;
    if let Some(of) = &j.plan.undo_of
        && j.outcome == Some(Outcome::Success)
        && let Ok(mut orig) = load(env, of).await
    {
        for w in orig.workers.iter_mut() {
            if j.workers.iter().any(|u| u.script == w.script) {
                w.undone_by = Some(j.plan.run.clone());
            }
        }
        save(env, &orig).await?;
    }
    Ok(j)
}

/// What a deployment of stage `k` of `n` says: the run, so that it is found again.
fn message(j: &Journal, k: usize, n: usize, stage: &[Share]) -> String {
    format!(
        "cfdr {} run {}{}: {}",
        j.plan.verb(),
        j.plan.run,
        if n > 1 {
            format!(" (stage {} of {n})", k + 1)
        } else {
            String::new()
        },
        label(stage)
    )
}

/// The newest deployment of `script`.
pub(super) async fn live(c: &Client, script: &str) -> Result<Deployment> {
    c.worker_deployments(script)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| Error::Remote(format!("Worker `{script}` has no deployment any more")))
}

/// One Worker's stages, each deployed and verified.
async fn one(
    env: &Env<'_>,
    c: &Client,
    j: &mut Journal,
    i: usize,
    w: &WorkerPlan,
    opts: &Options,
    progress: &Progress,
) -> Result<()> {
    let n = w.stages.len();
    let mut from = j.workers[i].made.len();
    // Cut off mid-send: the deployment landed if the live one carries this stage's message.
    if j.workers[i].state == "sending" && from < n {
        let now = live(c, &w.script).await?;
        if !j.workers[i].made.contains(&now.id)
            && now.message.as_deref() == Some(message(j, from, n, &w.stages[from]).as_str())
            && same(&w.stages[from], &now.versions)
        {
            progress.warn(format!(
                "{}: the deployment sent before the interruption landed ({}); not sent again",
                w.script, now.id
            ));
            j.workers[i].made.push(now.id);
            j.workers[i].state = "verifying".into();
            save(env, j).await?;
            from += 1;
        }
    }
    // Cut off mid-check: the last stage that landed is verified again before going on.
    if j.workers[i].state == "verifying" && from > 0 {
        let id = j.workers[i].made[from - 1].clone();
        let checks = verify(c, &w.script, &id, &w.stages[from - 1], opts, progress).await?;
        j.workers[i].checks.extend(
            checks
                .into_iter()
                .map(|l| format!("after the interruption, {l}")),
        );
        save(env, j).await?;
    }
    for (k, stage) in w.stages.iter().enumerate().skip(from) {
        progress.check()?;
        let expected = j.workers[i]
            .made
            .last()
            .cloned()
            .unwrap_or_else(|| w.live.deployment.clone());
        let now = live(c, &w.script).await?;
        if now.id != expected {
            return Err(Error::Remote(format!(
                "Worker `{}` changed since {}: its live deployment is {} ({}), not {expected}; nothing more was sent — look at `cfdr workers deployments {}` and plan again",
                w.script,
                if k == 0 { "the plan" } else { "the last stage" },
                now.id,
                now.message.as_deref().unwrap_or("no message"),
                w.script
            )));
        }
        let message = message(j, k, n, stage);
        let wire: Vec<_> = stage.iter().map(Share::wire).collect();
        j.workers[i].state = "sending".into();
        save(env, j).await?;
        let made = match c.worker_deploy(&w.script, &wire, &message, false).await {
            Ok(d) => d,
            Err(CfError::Api {
                code: Some(10220),
                message: said,
                ..
            }) if opts.force => {
                progress.warn(format!(
                    "{}: Cloudflare asked for force ({said}); going ahead as the operator agreed (--force-secrets)",
                    w.script
                ));
                j.workers[i].forced = true;
                c.worker_deploy(&w.script, &wire, &message, true).await?
            }
            Err(CfError::Api {
                code: Some(10220),
                message: said,
                ..
            }) => {
                return Err(Error::usage(format!(
                    "Cloudflare refused to deploy {} on `{}` without force (10220): {said} Nothing was changed. To bring back that version's secret values anyway, run again with --force-secrets",
                    label(stage),
                    w.script
                )));
            }
            Err(
                e @ (CfError::Network { .. }
                | CfError::Decode { .. }
                | CfError::Api { status: 500.., .. }),
            ) => {
                // Sent once: whether it landed is read back, never guessed.
                let now = live(c, &w.script).await?;
                if now.id != expected
                    && now.message.as_deref() == Some(message.as_str())
                    && same(stage, &now.versions)
                {
                    progress.warn(format!(
                        "{}: the answer to the deployment was lost ({e}); read back, it landed as {}",
                        w.script, now.id
                    ));
                    now
                } else {
                    return Err(Error::Remote(format!(
                        "the deployment of {} on `{}` got no answer ({e}), and read back it did not land: nothing changed; run it again",
                        label(stage),
                        w.script
                    )));
                }
            }
            Err(e) => return Err(e.into()),
        };
        j.workers[i].made.push(made.id.clone());
        j.workers[i].state = "verifying".into();
        save(env, j).await?;
        let at = if n > 1 {
            format!("stage {} of {n}: ", k + 1)
        } else {
            String::new()
        };
        let checks = verify(c, &w.script, &made.id, stage, opts, progress).await?;
        j.workers[i]
            .checks
            .extend(checks.into_iter().map(|l| format!("{at}{l}")));
        save(env, j).await?;
        if k + 1 < n && !opts.wait.is_zero() {
            progress.warn(format!(
                "{}: {} verified; waiting {} before the next stage",
                w.script,
                label(stage),
                humantime::format_duration(opts.wait)
            ));
            let until = Instant::now() + opts.wait;
            while Instant::now() < until {
                progress.check()?;
                tokio::time::sleep(
                    until
                        .saturating_duration_since(Instant::now())
                        .min(Duration::from_millis(250)),
                )
                .await;
            }
            let line = still_live(c, &w.script, &made.id, stage).await?;
            j.workers[i]
                .checks
                .push(format!("{at}after the wait, {line}"));
            if let Some(url) = &opts.probe {
                let line = probe_check(url, &w.script, stage).await?;
                j.workers[i]
                    .checks
                    .push(format!("{at}after the wait, {line}"));
            }
            save(env, j).await?;
        }
    }
    Ok(())
}
