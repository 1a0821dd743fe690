//! What comes back from the console's background work — data loaded, a job's progress, lines
//! and run states, its end — folded into the state.

use super::recovery::Stage;
use super::state::{App, Command, JobEvent, Loaded, Screen};

impl App {
    pub(super) fn loaded(&mut self, l: Loaded) -> Vec<Command> {
        match l {
            Loaded::Catalog(Ok(entries)) => {
                self.entries = entries;
                self.loading = false;
                self.rebuild();
            }
            Loaded::Catalog(Err(e)) => {
                self.loading = false;
                self.message = Some((true, format!("cannot read the repository: {e}")));
            }
            Loaded::Targets(Ok(known)) => {
                self.known = known;
                self.rebuild();
            }
            Loaded::Targets(Err(e)) => {
                self.message = Some((
                    true,
                    format!(
                        "cannot list the account's targets (showing the repository's only): {e}"
                    ),
                ));
            }
            Loaded::Manifest(id, Ok(m)) => {
                self.manifests.insert(id, *m);
            }
            Loaded::Manifest(id, Err(e)) => {
                self.message = Some((true, format!("cannot read backup `{id}`: {e}")));
            }
            Loaded::Audit(r) => self.records.audit_loaded(r, &mut self.message),
            Loaded::Playbooks(r) => self.books.loaded(r, &mut self.message),
            Loaded::Drills(Ok(list)) => self.drills.loaded(list),
            Loaded::Drills(Err(e)) => {
                self.message = Some((true, format!("cannot read the drills: {e}")))
            }
            Loaded::Runs(r) => self.runs_loaded(r),
            Loaded::Status(r) => self.records.status_loaded(r, &mut self.message),
            Loaded::Workers(r) => return self.workers_loaded(r),
            Loaded::Worker(name, r) => {
                self.workers.detail.insert(name, r.map(|d| *d));
            }
        }
        Vec::new()
    }

    pub(super) fn job_event(&mut self, id: u64, e: JobEvent) -> Vec<Command> {
        let Some(job) = self.jobs.iter_mut().find(|j| j.id == id) else {
            return Vec::new();
        };
        match e {
            JobEvent::Progress(p) => {
                if let Some(m) = &p.message {
                    self.message = Some((false, format!("{}: {m}", p.job)));
                }
                job.last = Some(p);
                Vec::new()
            }
            JobEvent::Verified(report) => {
                if let Some((_, last)) = self.manifests.get_mut(&report.id) {
                    *last = Some(report);
                }
                Vec::new()
            }
            JobEvent::Planned(plan) => {
                self.restore_planned(id, plan);
                Vec::new()
            }
            JobEvent::Line(line) => {
                if let Some(r) = self.recovery.as_mut().filter(|r| r.job == Some(id)) {
                    r.log.push(line);
                } else if let Some(g) = self.guide.as_mut().filter(|g| g.job == Some(id)) {
                    g.log.push(line);
                }
                Vec::new()
            }
            JobEvent::Run(run) => {
                if let Some(r) = self.recovery.as_mut().filter(|r| r.job == Some(id)) {
                    r.run = Some(run);
                } else if let Some(g) = self.guide.as_mut().filter(|g| g.job == Some(id)) {
                    g.saw(run);
                }
                Vec::new()
            }
            JobEvent::Finished(outcome) => {
                self.message = Some(match &outcome {
                    Ok(line) => (false, line.clone()),
                    Err(e) => (true, format!("{}: {e}", job.title)),
                });
                let was_backup = job.backup.is_none();
                // A playbook whose parameters did not bind: back to its form, the error shown.
                if self
                    .guide
                    .as_ref()
                    .is_some_and(|g| g.job == Some(id) && g.run.is_none())
                    && self.stack.last() == Some(&Screen::Run)
                {
                    self.guide = None;
                    self.stack.pop();
                }
                if let Some(r) = self.recovery.as_mut().filter(|r| r.job == Some(id)) {
                    match r.stage {
                        Stage::Undo => r.undone = Some(outcome.clone()),
                        // A plan that could not be made: back to the form, the error shown.
                        Stage::Planning => r.stage = Stage::Form,
                        _ => {}
                    }
                }
                job.outcome = Some(outcome);
                let mut then = Vec::new();
                if was_backup {
                    then.push(Command::LoadCatalog);
                }
                if self.drills.job == Some(id) {
                    // A drill's report is written at its end: the history and the
                    // inventory's DRILL column read it.
                    self.drills.job = None;
                    then.push(Command::LoadDrills);
                }
                then
            }
        }
    }
}
