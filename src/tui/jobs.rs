//! Runs the console's commands in tokio tasks: reading the catalog, the account's targets,
//! manifests, the audit trail, the status, playbooks, drills and runs; verifying, backing up,
//! planning and running restores, playbooks and drills, undoing. Each reports back through the
//! event channel (progress included, through a `Progress` sink), so the UI never waits on I/O.

use std::sync::Arc;

use tokio::sync::mpsc::UnboundedSender;

use super::Console;
use super::guide::Answers;
use super::state::{Command, Event, JobEvent, Loaded};
use crate::ops::backup::{self as step, Env, Options};
use crate::ops::restore::{self, Request};
use crate::playbook::execute::{self, Answer, Ended, Operator};
use crate::playbook::recover::{self, Choice, Dest};
use crate::playbook::runner::{Run, Target};
use crate::progress::{Progress, ProgressEvent};
use crate::repo::VerifyMode;
use crate::repo::catalog::Entry;

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
    if matches!(
        command,
        Command::RunRestore { .. }
            | Command::ResumeRun { .. }
            | Command::StartPlaybook { .. }
            | Command::StartDrill { .. }
            | Command::Undo { .. }
    ) {
        // A run's (and a restore's) future holds references across awaits in a way the
        // compiler cannot prove `Send` for `tokio::spawn`; it is long-running anyway, so it
        // gets a blocking thread of its own and is driven there.
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || handle.block_on(runs(c, command, cancel, tx)));
        return;
    }
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
            Command::LoadPlaybooks => {
                let lib = crate::playbook::library::in_use();
                let books = lib
                    .playbooks
                    .iter()
                    .map(super::playbooks::Book::of)
                    .collect();
                let _ = tx.send(Event::Loaded(Loaded::Playbooks(Ok(books))));
                if let Some(e) = lib.errors.first() {
                    tracing::warn!(error = %e, "a playbook file did not load");
                }
            }
            Command::LoadDrills => {
                let r = sent(drills(&c)).await;
                let _ = tx.send(Event::Loaded(Loaded::Drills(r)));
            }
            Command::LoadWorkers => {
                let r = crate::ops::workers::list(c.client.as_deref())
                    .await
                    .map_err(text);
                let _ = tx.send(Event::Loaded(Loaded::Workers(r)));
            }
            Command::LoadWorker(name) => {
                let r = sent(async {
                    super::workers::detail(&env(&c), &name)
                        .await
                        .map(Box::new)
                        .map_err(text)
                })
                .await;
                let _ = tx.send(Event::Loaded(Loaded::Worker(name, r)));
            }
            Command::LoadRuns => {
                let r = sent(runs_of(&c)).await;
                let _ = tx.send(Event::Loaded(Loaded::Runs(r)));
            }
            Command::LoadAudit => {
                let r = c.repo.audit_entries().await.map_err(text);
                let _ = tx.send(Event::Loaded(Loaded::Audit(r)));
            }
            Command::LoadStatus => {
                let r = sent(status(&c)).await;
                let _ = tx.send(Event::Loaded(Loaded::Status(r)));
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
            Command::PlanRestore {
                job,
                backup,
                choice,
            } => {
                let p = progress(format!("plan restore of {backup}"), job, &tx, cancel);
                let plan = sent(plan_restore(&c, &backup, &choice, &p)).await;
                let line = plan
                    .as_ref()
                    .map(|p| {
                        format!(
                            "plan {}: {} requests; enter goes on",
                            p.run, p.requests.total
                        )
                    })
                    .map_err(Clone::clone);
                let _ = tx.send(Event::Job(job, JobEvent::Planned(plan)));
                let _ = tx.send(Event::Job(job, JobEvent::Finished(line)));
            }
            // Run on a thread of their own, below.
            Command::RunRestore { .. }
            | Command::ResumeRun { .. }
            | Command::StartPlaybook { .. }
            | Command::StartDrill { .. }
            | Command::Undo { .. } => {}
        }
    });
}

fn text(e: impl std::fmt::Display) -> String {
    format!("{e:#}")
}

fn env(c: &Console) -> Env<'_> {
    Env {
        repo: &c.repo,
        config: &c.config,
        client: c.client.as_deref(),
    }
}

/// The restore `choice` asks for of `backup`, planned only: the plan screen's figures.
fn dry_run(backup: &Entry, choice: &Choice) -> Request {
    Request {
        backup: backup.id.clone(),
        to: match &choice.into {
            Dest::Same => None,
            Dest::Other { .. } | Dest::Scratch { .. } => Some(choice.target(backup).name),
        },
        prefix: choice.prefix.clone(),
        tables: choice.tables.clone(),
        mode: choice.mode,
        snapshot: true,
        dry_run: true,
        concurrency: 4,
        kv_batch: crate::cloudflare::kv::MAX_BULK_ITEMS,
        ..Default::default()
    }
}

/// The console as the runner's operator: the confirmation was typed on the plan screen
/// before the run began; what the runner says and each saved state go to the screen.
struct OnScreen {
    job: u64,
    tx: UnboundedSender<Event>,
    answers: Answers,
}

impl Operator for OnScreen {
    fn tell(&self, line: &str) {
        let _ = self
            .tx
            .send(Event::Job(self.job, JobEvent::Line(line.to_string())));
    }

    fn confirm(&self, target: &Target) -> Answer {
        if self.answers.confirmed.as_deref() == Some(target.name.as_str()) {
            Answer::Given(format!(
                "typed in the console by {}",
                crate::repo::lease::who()
            ))
        } else {
            Answer::Refused(format!(
                "waiting for `{}` typed before anything is written to it",
                target.name
            ))
        }
    }

    fn checklist(&self, text: &str, _items: &[String]) -> Answer {
        if self.answers.ticked.as_deref() == Some(text) {
            Answer::Given(format!("{} in the console", crate::repo::lease::who()))
        } else {
            Answer::Refused("waiting for the checklist to be ticked".into())
        }
    }

    fn approve(&self, role: &str) -> Answer {
        match &self.answers.approved {
            Some((r, name)) if r == role => Answer::Given(name.clone()),
            _ => Answer::Refused(format!("waiting for the {role}'s name")),
        }
    }

    fn saw(&self, run: &Run) {
        let _ = self
            .tx
            .send(Event::Job(self.job, JobEvent::Run(Box::new(run.clone()))));
    }
}

/// The commands that drive the runner.
async fn runs(
    c: Console,
    command: Command,
    cancel: Option<Arc<std::sync::atomic::AtomicBool>>,
    tx: UnboundedSender<Event>,
) {
    match command {
        Command::RunRestore {
            job,
            backup,
            choice,
            confirmed,
        } => {
            let p = progress(format!("restore {backup}"), job, &tx, cancel);
            let outcome = run_restore(&c, &backup, &choice, (job, &tx), confirmed, &p).await;
            let _ = tx.send(Event::Job(job, JobEvent::Finished(outcome)));
        }
        Command::ResumeRun { job, run, answers } => {
            let p = progress(format!("run {run}"), job, &tx, cancel);
            let outcome = resume_run(&c, &run, (job, &tx), answers, &p).await;
            let _ = tx.send(Event::Job(job, JobEvent::Finished(outcome)));
        }
        Command::StartDrill { job, drill } => {
            let p = progress(format!("{} drill", drill.scenario), job, &tx, cancel);
            let outcome = start_drill(&c, drill, (job, &tx), &p).await;
            let _ = tx.send(Event::Job(job, JobEvent::Finished(outcome)));
        }
        Command::StartPlaybook { job, id, params } => {
            let p = progress(format!("playbook {id}"), job, &tx, cancel);
            let outcome = start_playbook(&c, &id, &params, (job, &tx), &p).await;
            let _ = tx.send(Event::Job(job, JobEvent::Finished(outcome)));
        }
        Command::Undo { job, run } => {
            let p = progress(format!("undo {run}"), job, &tx, cancel);
            let outcome = undo(&c, &run, &p).await;
            tracing::info!(run = %run, ok = outcome.is_ok(), "undo from the console");
            let _ = tx.send(Event::Job(job, JobEvent::Finished(outcome)));
        }
        _ => {}
    }
}

/// `f`, boxed as a `Send` future: the check at these lifetimes, which the compiler cannot
/// make for a future this deep inside `tokio::spawn` on its own.
fn sent<'a, T>(
    f: impl std::future::Future<Output = T> + Send + 'a,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>> {
    Box::pin(f)
}

/// Every drill's report, oldest first; one that fails its MAC is left out, said in the log.
async fn drills(c: &Console) -> Result<Vec<super::drills::Report>, String> {
    let mut out = Vec::new();
    for id in c.repo.drills().await.map_err(text)? {
        match c.repo.drill(&id).await {
            Ok((json, markdown)) => out.push(super::drills::Report { json, markdown }),
            Err(e) => tracing::warn!(drill = %id, error = %e, "a drill report was not shown"),
        }
    }
    Ok(out)
}

/// A drill as the form asked for it: planned (the newest backup of each target, or the
/// newest at or before its time) and run.
async fn start_drill(
    c: &Console,
    d: super::drills::StartDrill,
    to: (u64, &UnboundedSender<Event>),
    p: &Progress,
) -> Result<String, String> {
    use crate::playbook::drill::{self, Pick, Scenario};
    let env = env(c);
    let req = drill::Request {
        components: d.components,
        scenario: Scenario::parse(&d.scenario)
            .ok_or_else(|| format!("`{}` is not a drill scenario", d.scenario))?,
        pick: Pick::Latest,
        at: d.at,
        tables: d.tables,
        prefix: d.prefix,
        tester: None,
    };
    let mut run = drill::plan(&env, &req, time::OffsetDateTime::now_utc())
        .await
        .map_err(text)?;
    drive(&env, &mut run, to, Answers::default(), p).await
}

async fn runs_of(c: &Console) -> Result<Vec<Run>, String> {
    execute::runs(&env(c)).await.map_err(text)
}

async fn status(c: &Console) -> Result<Box<crate::ops::status::Status>, String> {
    let env = env(c);
    crate::ops::status::of(&env, time::OffsetDateTime::now_utc())
        .await
        .map(Box::new)
        .map_err(text)
}

async fn plan_restore(
    c: &Console,
    backup: &str,
    choice: &Choice,
    p: &Progress,
) -> Result<Box<restore::Plan>, String> {
    let env = env(c);
    let entry = env.repo.entry(backup).await.map_err(text)?;
    let planned = restore::plan(&env, &dry_run(&entry, choice), p)
        .await
        .map_err(text)?;
    Ok(Box::new(planned.plan))
}

async fn run_restore(
    c: &Console,
    backup: &str,
    choice: &Choice,
    to: (u64, &UnboundedSender<Event>),
    confirmed: String,
    p: &Progress,
) -> Result<String, String> {
    let env = env(c);
    let entry = env.repo.entry(backup).await.map_err(text)?;
    let mut run = recover::run(
        &entry,
        choice,
        recover::targets(&entry, &c.config),
        time::OffsetDateTime::now_utc(),
    );
    let answers = Answers {
        confirmed: Some(confirmed),
        ..Default::default()
    };
    drive(&env, &mut run, to, answers, p).await
}

async fn resume_run(
    c: &Console,
    id: &str,
    to: (u64, &UnboundedSender<Event>),
    answers: Answers,
    p: &Progress,
) -> Result<String, String> {
    let env = env(c);
    let mut run = execute::load(&env, id).await.map_err(text)?;
    drive(&env, &mut run, to, answers, p).await
}

/// Binds playbook `id`'s parameters (each checked, as `cfdr playbook run` checks them) and
/// runs it; a binding mistake comes back as the error, before anything ran.
async fn start_playbook(
    c: &Console,
    id: &str,
    params: &std::collections::BTreeMap<String, String>,
    to: (u64, &UnboundedSender<Event>),
    p: &Progress,
) -> Result<String, String> {
    let env = env(c);
    let lib = crate::playbook::library::in_use();
    let entry = lib
        .get(id)
        .ok_or_else(|| format!("no playbook `{id}` (known: {})", lib.ids()))?;
    let now = time::OffsetDateTime::now_utc();
    let mut run = execute::bind(&env, &entry.playbook, params, None, now)
        .await
        .map_err(text)?;
    drive(&env, &mut run, to, Answers::default(), p).await
}

/// Undoes restore run `run` from its pre-recovery snapshot, verified like any restore.
async fn undo(c: &Console, run: &str, p: &Progress) -> Result<String, String> {
    let env = env(c);
    let mut req = restore::undo_request(&c.repo, run).await.map_err(text)?;
    req.concurrency = 4;
    let planned = restore::plan(&env, &req, p).await.map_err(text)?;
    let report = restore::apply(&env, planned, crate::cloudflare::RetryPolicy::default(), p)
        .await
        .map_err(text)?;
    let line = format!(
        "undone: {} is back as it was before run {run}: {}, {} differences after",
        report.target.label(),
        format!("{:?}", report.outcome).to_lowercase(),
        report.verification.differences
    );
    if report.outcome == restore::Outcome::Success {
        Ok(line)
    } else {
        Err(line)
    }
}

/// Drives `run` with the console as its operator; the result line says how it ended.
async fn drive(
    env: &Env<'_>,
    run: &mut Run,
    (job, tx): (u64, &UnboundedSender<Event>),
    answers: Answers,
    progress: &Progress,
) -> Result<String, String> {
    let op = OnScreen {
        job,
        tx: tx.clone(),
        answers,
    };
    let opts = execute::Options::default();
    let ended = execute::drive(env, run, &op, &opts, progress).await;
    op.saw(run);
    tracing::info!(run = %run.id, ended = ?ended.as_ref().ok(), "restore from the console");
    match ended.map_err(|e| format!("{e:#}"))? {
        Ended::Finished(outcome) => {
            let m = run.measures();
            let line = format!(
                "{} — {:?}: RTO {}",
                run.title,
                outcome,
                m.rto_secs.map_or("-".into(), |s| format!("{s:.1}s"))
            );
            if outcome == crate::playbook::runner::Outcome::Success {
                Ok(line)
            } else {
                Err(line)
            }
        }
        Ended::Stopped(why) => Err(format!(
            "stopped at step {}: {why}",
            run.cursor().map_or(0, |(s, _)| s + 1)
        )),
    }
}
