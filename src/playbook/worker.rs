//! A playbook's `rollback` step: a Worker put back on an earlier version through
//! `ops::workers` — planned (a refusal stops the step before anything is sent), its run id kept
//! in the playbook's journal before the first deployment, run and verified. A resume after a
//! crash never deploys twice: it takes that rollback run up from its own journal
//! (`deploy::resume`).

use std::time::Duration;

use super::execute::{Did, facts, record};
use super::runner::{Act, Run};
use crate::ops::backup::Env;
use crate::ops::restore::Outcome;
use crate::ops::workers::deploy::{self, Journal, Options, Request};
use crate::ops::workers::rollback::{Pick, label};
use crate::ops::{Error, Result};
use crate::progress::Progress;

/// `10,50,100`: the target's percentage at each stage.
pub fn steps(s: &str) -> Result<Vec<f64>> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.trim_end_matches('%').parse::<f64>().map_err(|_| {
                Error::usage(format!(
                    "steps `{s}`: `{p}` is not a percentage; write rising percentages ending at 100, e.g. 10,50,100"
                ))
            })
        })
        .collect()
}

/// The request a rollback item makes.
fn request(act: &Act) -> Result<(Request, Options)> {
    let Act::Rollback {
        worker,
        to,
        steps: stages,
        wait_secs,
        force,
    } = act
    else {
        return Err(Error::usage("not a rollback step"));
    };
    Ok((
        Request {
            workers: vec![(
                worker.clone(),
                to.as_ref().map_or(Pick::Auto, |t| Pick::To(t.clone())),
            )],
            steps: stages
                .as_deref()
                .map(steps)
                .transpose()?
                .unwrap_or_default(),
            undo_of: None,
        },
        Options {
            wait: Duration::from_secs(*wait_secs),
            force: *force,
            ..Options::default()
        },
    ))
}

/// What a dry run says of a rollback item: its plan (reads only).
pub(super) async fn preview(env: &Env<'_>, act: &Act) -> Result<Vec<String>> {
    let (req, _) = request(act)?;
    let plan = deploy::plan(env, &req).await?;
    let mut out = Vec::new();
    for w in &plan.workers {
        out.push(format!(
            "  plan: Worker `{}` {} → {} ({}); {} deployment(s)",
            w.script,
            label(&w.live.versions),
            label(&w.target),
            w.why,
            w.stages.len()
        ));
        for f in &w.findings {
            out.push(format!(
                "  {}: {}",
                if f.refused() { "REFUSED" } else { "warning" },
                f.text
            ));
        }
    }
    Ok(out)
}

pub(super) async fn rollback_item(
    env: &Env<'_>,
    run: &mut Run,
    at: (usize, usize),
    act: &Act,
    progress: &Progress,
) -> Result<Did> {
    let (req, mut opts) = request(act)?;
    opts.probe = env.config.workers_probe_url.clone();
    let begun = run.steps[at.0].items[at.1].facts.get("rollback").cloned();
    if let Some(id) = begun {
        // Cut off mid-way: taken up from its journal, nothing that landed sent again.
        let j = deploy::resume(env, &id, &opts, progress).await?;
        return finish(&j);
    }
    let plan = deploy::plan(env, &req).await?;
    let refusals = plan.refusals();
    if !refusals.is_empty() {
        return Err(Error::usage(format!(
            "the rollback is refused, nothing was deployed: {}",
            refusals.join("; ")
        )));
    }
    for w in &plan.workers {
        for f in &w.findings {
            progress.warn(format!("{}: {}", w.script, f.text));
        }
    }
    record(env, run, "rollback", &plan.run).await?;
    let j = deploy::run(env, plan, &opts, progress).await?;
    finish(&j)
}

fn finish(j: &Journal) -> Result<Did> {
    let (d, w) = (&j.workers[0], &j.plan.workers[0]);
    if j.outcome != Some(Outcome::Success) {
        return Err(Error::Verification(format!(
            "Worker `{}` {}: {}{}",
            d.script,
            d.state,
            d.error.as_deref().unwrap_or("not rolled back"),
            if d.made.is_empty() {
                String::new()
            } else {
                format!(
                    "; roll forward to what was live with `cfdr workers undo {}`",
                    j.plan.run
                )
            }
        )));
    }
    Ok(Did::Done(
        format!(
            "Worker `{}`: {} → {} live, verified ({}){}; undo with `cfdr workers undo {}`",
            d.script,
            label(&w.live.versions),
            label(&w.target),
            d.checks.join("; "),
            if d.forced {
                "; forced past a secret change"
            } else {
                ""
            },
            j.plan.run
        ),
        facts(&[
            ("rollback", j.plan.run.clone()),
            ("from", label(&w.live.versions)),
            ("to", label(&w.target)),
        ]),
    ))
}
