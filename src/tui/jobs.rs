//! Runs the console's commands in tokio tasks: reading the catalog, the account's targets and
//! manifests, verifying a backup, taking a backup. Each reports back through the event channel
//! (progress included, through a `Progress` sink), so the UI never waits on I/O.

use std::sync::Arc;

use tokio::sync::mpsc::UnboundedSender;

use super::Console;
use super::state::{Command, Event, JobEvent, Loaded};
use crate::ops::backup::{self as step, Env, Options};
use crate::progress::{Progress, ProgressEvent};
use crate::repo::VerifyMode;

/// A progress handle whose events land in the console's channel as `Job(job, …)`, cancelled by
/// the job's flag.
fn progress(
    title: String,
    job: u64,
    tx: &UnboundedSender<Event>,
    cancel: Option<Arc<std::sync::atomic::AtomicBool>>,
) -> Progress {
    let tx = tx.clone();
    let sink = move |e: ProgressEvent| {
        let _ = tx.send(Event::Job(job, JobEvent::Progress(e)));
    };
    Progress::with_cancel(title, Arc::new(sink), cancel.unwrap_or_default())
}

pub fn exec(
    console: &Console,
    command: Command,
    cancel: Option<Arc<std::sync::atomic::AtomicBool>>,
    tx: &UnboundedSender<Event>,
) {
    let c = console.clone();
    let tx = tx.clone();
    tokio::spawn(async move {
        match command {
            Command::LoadCatalog => {
                let r = c
                    .repo
                    .catalog()
                    .await
                    .map(|cat| cat.entries)
                    .map_err(|e| e.to_string());
                let _ = tx.send(Event::Loaded(Loaded::Catalog(r)));
            }
            Command::LoadTargets => {
                if let Some(client) = &c.client {
                    let r = step::account_targets(client)
                        .await
                        .map_err(|e| e.to_string());
                    let _ = tx.send(Event::Loaded(Loaded::Targets(r)));
                }
            }
            Command::LoadManifest(id) => {
                let r = async {
                    let m = c.repo.manifest(&id).await?;
                    let v = c.repo.last_verification(&m).await?;
                    Ok::<_, crate::repo::RepoError>(Box::new((m, v)))
                }
                .await
                .map_err(|e| e.to_string());
                let _ = tx.send(Event::Loaded(Loaded::Manifest(id, r)));
            }
            Command::Verify { job, id } => {
                let p = progress(format!("verify {id}"), job, &tx, cancel);
                let outcome = async {
                    let m = c.repo.manifest(&id).await?;
                    let report = c.repo.verify_with(&m, VerifyMode::Full, &p).await?;
                    tracing::info!(backup = %id, ok = report.ok, "verified from the console");
                    let line = if report.ok {
                        format!(
                            "verified {id}: OK, {} checked in full, {}",
                            report.artifacts_checked,
                            crate::text::human_size(report.bytes_checked)
                        )
                    } else {
                        format!(
                            "verified {id}: {} PROBLEM(S): {}",
                            report.problems.len(),
                            report
                                .problems
                                .iter()
                                .map(|p| format!("{}: {}", p.artifact, p.message))
                                .collect::<Vec<_>>()
                                .join("; ")
                        )
                    };
                    let ok = report.ok;
                    let _ = tx.send(Event::Job(job, JobEvent::Verified(report)));
                    Ok::<_, crate::repo::RepoError>((ok, line))
                }
                .await;
                let outcome = match outcome {
                    Ok((true, line)) => Ok(line),
                    Ok((false, line)) => Err(line),
                    Err(e) => Err(e.to_string()),
                };
                let _ = tx.send(Event::Job(job, JobEvent::Finished(outcome)));
            }
            Command::Backup { job, what } => {
                let p = progress(what.label(), job, &tx, cancel);
                let env = Env {
                    repo: &c.repo,
                    config: &c.config,
                    client: c.client.as_deref(),
                };
                let outcome = step::take(&env, &what, &Options::default(), &p)
                    .await
                    .map(|d| d.line)
                    .map_err(|e| format!("{e:#}"));
                tracing::info!(target = %what.label(), ok = outcome.is_ok(), "backup from the console");
                let _ = tx.send(Event::Job(job, JobEvent::Finished(outcome)));
            }
        }
    });
}
