//! A run's record in the repository as it goes: the pre-recovery snapshot step, the units
//! applied in order and journaled one by one (a resume skips what landed), the report, and
//! `run.json` saved at every change of status.

use super::{Applied, Outcome, Report, RunState, Snapshot, Status, Verification};
use crate::ops::backup::Env;
use crate::ops::{Error, Result};
use crate::progress::Progress;
use crate::repo::{Repo, manifest};

/// Takes the pre-recovery snapshot the plan requires (once: a resume finds it recorded) with
/// `take`, records it, and marks the run as applying.
pub(super) async fn prepare<F, Fut>(env: &Env<'_>, state: &mut RunState, take: F) -> Result<()>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<crate::ops::backup::Done>>,
{
    if state.plan.snapshot == Snapshot::Required && state.snapshot.is_none() {
        state.snapshot = Some(take().await?.manifest.id);
        save(env.repo, state).await?;
    }
    state.status = Status::Applying;
    save(env.repo, state).await
}

/// The options of a pre-recovery snapshot.
pub(super) fn snapshot_options() -> crate::ops::backup::Options {
    crate::ops::backup::Options {
        trigger: "pre-recovery".into(),
        ..Default::default()
    }
}

/// What a run's units did, its journal's earlier entries included.
#[derive(Debug, Default)]
pub(super) struct Landed {
    pub(super) failed: Vec<String>,
    pub(super) etags: std::collections::BTreeMap<String, String>,
}

/// Applies the plan's units in order: those the journal says landed are skipped, each other one
/// is sent by `send` (given the unit's index in the plan) and journaled once it landed. `unit`
/// names what progress counts.
pub(super) async fn apply_units<F, Fut>(
    env: &Env<'_>,
    state: &RunState,
    unit: &'static str,
    progress: &Progress,
    mut send: F,
) -> Result<Landed>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<Landed>>,
{
    let run = &state.plan.run;
    let mut landed = Landed::default();
    let mut done = std::collections::BTreeSet::new();
    for name in env.repo.run_files(run, "journal").await? {
        if let Some(bytes) = env.repo.run_file(run, &format!("journal/{name}")).await?
            && let Ok(a) = serde_json::from_slice::<Applied>(&bytes)
        {
            landed.failed.extend(a.failed);
            landed.etags.extend(a.etags);
            done.insert(a.unit);
        }
    }
    let total: u64 = state.plan.units.iter().map(|u| u.keys().len() as u64).sum();
    progress.phase("write", unit, Some(total));
    for (i, u) in state.plan.units.iter().enumerate() {
        let n = u.keys().len() as u64;
        if !done.contains(&i) {
            progress.check()?;
            let got = send(i).await?;
            let entry = Applied {
                unit: i,
                keys: n,
                failed: got.failed.clone(),
                at: manifest::rfc3339(time::OffsetDateTime::now_utc()),
                etags: got.etags.clone(),
            };
            env.repo
                .put_run_file(
                    run,
                    &format!("journal/{i:06}.json"),
                    &serde_json::to_vec(&entry)?,
                )
                .await?;
            landed.failed.extend(got.failed);
            landed.etags.extend(got.etags);
        }
        progress.add(n, 0);
    }
    progress.finish();
    Ok(landed)
}

impl Report {
    /// The report of a run that got through its units and its verification: success only when
    /// nothing failed and the verification found nothing; partial when some of what the plan
    /// writes landed.
    pub(super) fn of(
        state: &RunState,
        verification: Verification,
        failed: Vec<String>,
        requests_sent: u64,
        resumed: bool,
        started: std::time::Instant,
    ) -> Report {
        let plan = &state.plan;
        let c = &plan.counts;
        let outcome = if failed.is_empty() && verification.ok {
            Outcome::Success
        } else if plan.writes() && (failed.len() as u64) < c.added + c.changed + c.removed {
            Outcome::Partial
        } else {
            Outcome::Failed
        };
        Report {
            run: plan.run.clone(),
            outcome,
            backup: plan.backup.clone(),
            target: plan.target.clone(),
            mode: plan.mode,
            prefix: plan.prefix.clone(),
            snapshot: state.snapshot.clone(),
            created: c.added,
            overwritten: c.changed,
            deleted: c.removed,
            unchanged: c.unchanged,
            kept: c.kept,
            expired: c.expired,
            failed,
            verification,
            requests_planned: plan.requests.total,
            requests_sent,
            resumed,
            seconds: started.elapsed().as_secs_f64(),
            undo_of: plan.undo_of.clone(),
        }
    }
}

/// Stores the report and marks the run done.
pub(super) async fn finish(repo: &Repo, mut state: RunState, report: Report) -> Result<Report> {
    repo.put_run_file(
        &report.run,
        "report.json",
        &serde_json::to_vec_pretty(&report)?,
    )
    .await?;
    state.status = Status::Done;
    save(repo, &state).await?;
    Ok(report)
}

pub(super) async fn save(repo: &Repo, state: &RunState) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(state)?;
    Ok(repo
        .put_run_file(&state.plan.run, "run.json", &bytes)
        .await?)
}

/// A run as recorded.
pub async fn load(repo: &Repo, run: &str) -> Result<RunState> {
    let bytes = repo.run_file(run, "run.json").await?.ok_or_else(|| {
        Error::usage(format!(
            "no restore run `{run}` in repository `{}`; list them with `cfdr runs`",
            repo.storage.display
        ))
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::Verification(format!("run `{run}`: run.json cannot be read: {e}")))
}

/// The report of a finished run.
pub async fn report_of(repo: &Repo, run: &str) -> Result<Option<Report>> {
    match repo.run_file(run, "report.json").await? {
        Some(b) => Ok(Some(serde_json::from_slice(&b).map_err(|e| {
            Error::Verification(format!("run `{run}`: report.json cannot be read: {e}"))
        })?)),
        None => Ok(None),
    }
}
