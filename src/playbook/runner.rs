//! A playbook run as a pure state machine: events in, effects out, like the console's
//! `App::handle`. The executor ([`super::execute`]) does what the effects say — runs an item,
//! saves the journal — and tells the machine what happened. Nothing here does I/O or reads a
//! clock: every event carries its time, so a test walks a run step by step.
//!
//! A run is its steps, each one or more items (a step over a component list runs once per
//! target, in order). Items run one at a time; the first failure stops the run, which
//! `retry` takes up again at that item. The record is the journal: saved after every change,
//! so a resume after a crash continues at the item that was running, and an item that
//! finished is never run again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const RUN_FORMAT: &str = "cfdr.playbook-run/1";

/// What an item does, every value bound: the journal holds this, so a resume does what the
/// run started with, whatever the playbook file says by then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Act {
    Validate {
        backup: String,
        full: bool,
    },
    Snapshot {
        target: Target,
    },
    Confirm {
        target: Target,
    },
    Restore {
        backup: String,
        /// Into this target instead of the backup's own.
        target: Option<Target>,
        tables: Vec<String>,
        prefix: Option<String>,
        mode: String,
        /// D1: back to this time (RFC 3339) through Time Travel.
        at: Option<String>,
        scratch: bool,
    },
    Verify {
        backup: String,
        target: Option<Target>,
        tables: Vec<String>,
        prefix: Option<String>,
    },
    Diff {
        backup: String,
        target: Option<Target>,
    },
    Check {
        target: Target,
        probe: Probe,
        expect: String,
    },
    Manual {
        text: String,
        checklist: Vec<String>,
    },
    Approve {
        role: String,
    },
    Notify {
        message: String,
        url: Option<String>,
    },
    Wait {
        secs: u64,
        reason: Option<String>,
    },
    Rollback {
        worker: String,
        /// A version; the automatic choice when `None`.
        to: Option<String>,
        /// The target's percentage at each stage (`10,50,100`); all at once when `None`.
        steps: Option<String>,
        wait_secs: u64,
        /// Force on 10220: the operator said so when starting the run.
        force: bool,
    },
}

impl Act {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Validate { .. } => "validate",
            Self::Snapshot { .. } => "snapshot",
            Self::Confirm { .. } => "confirm",
            Self::Restore { .. } => "restore",
            Self::Verify { .. } => "verify",
            Self::Diff { .. } => "diff",
            Self::Check { .. } => "check",
            Self::Manual { .. } => "manual",
            Self::Approve { .. } => "approve",
            Self::Notify { .. } => "notify",
            Self::Wait { .. } => "wait",
            Self::Rollback { .. } => "rollback",
        }
    }

    /// Whether the item writes to a target (its effect must never land twice).
    pub fn writes(&self) -> bool {
        matches!(self, Self::Restore { .. } | Self::Rollback { .. })
    }

    /// The backup the item works with, when it names one.
    pub fn backup(&self) -> Option<&str> {
        match self {
            Self::Validate { backup, .. }
            | Self::Restore { backup, .. }
            | Self::Verify { backup, .. }
            | Self::Diff { backup, .. } => Some(backup.as_str()).filter(|b| !b.is_empty()),
            _ => None,
        }
    }
}

/// A target by kind and name: ``d1 `shop` ``.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Target {
    pub kind: String,
    pub name: String,
}

impl Target {
    pub fn label(&self) -> String {
        format!("{} `{}`", self.kind, self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Probe {
    Sql(String),
    Key(String),
    Object(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Pending,
    Running,
    Done,
    Failed,
    /// Not done, and said why (an unattended run cannot tick a checklist; no webhook set).
    Skipped,
}

impl State {
    fn settled(self) -> bool {
        matches!(self, Self::Done | Self::Skipped)
    }
}

/// One item of a step: an act on one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub act: Act,
    pub state: State,
    /// What the item found or did, in a line (or why it failed or was skipped).
    pub note: Option<String>,
    /// What it recorded for later items and the report: a snapshot's id, a restore run's id,
    /// the restored backup's consistency point, counts.
    pub facts: BTreeMap<String, String>,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    /// How many times it was started (a resume or a retry starts it again).
    pub attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub title: String,
    pub kind: String,
    pub items: Vec<Item>,
}

impl Step {
    /// Where the step stands, from its items.
    pub fn state(&self) -> State {
        let any = |s: State| self.items.iter().any(|i| i.state == s);
        if any(State::Failed) {
            State::Failed
        } else if any(State::Running) {
            State::Running
        } else if self.items.iter().all(|i| i.state == State::Skipped) && !self.items.is_empty() {
            State::Skipped
        } else if self.items.iter().all(|i| i.state.settled()) {
            State::Done
        } else if self.items.iter().any(|i| i.state != State::Pending) {
            State::Running
        } else {
            State::Pending
        }
    }

    /// From its first item's start to its last item's end.
    pub fn millis(&self) -> Option<i64> {
        let start = self.items.iter().filter_map(|i| i.started_ms).min()?;
        let end = self.items.iter().filter_map(|i| i.finished_ms).max()?;
        Some(end - start)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Running,
    /// Stopped by the operator (a checklist not ticked, a pause, an abort) with nothing
    /// half-done: `resume` goes on.
    Stopped,
    Failed,
    Done,
}

/// The run's honest outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    /// Some of it worked: a restore landed, then something failed (or the restore itself was
    /// partial).
    Partial,
    Failed,
}

/// A target the run works on, with the backup chosen for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub target: Target,
    pub backup: String,
}

/// `runs/<run-id>/playbook.json`: the run, as far as it got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub format: String,
    pub id: String,
    pub playbook: String,
    pub title: String,
    pub rto_secs: u64,
    pub rpo_secs: u64,
    /// The parameters as bound (defaults filled, `latest` turned into an id).
    pub params: BTreeMap<String, String>,
    pub subjects: Vec<Subject>,
    pub steps: Vec<Step>,
    pub status: Status,
    pub by: String,
    pub started_ms: i64,
    /// When the incident began (`--incident-at`): RTO and RPO are measured from it.
    pub incident_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    /// The config's profile whose account the run works in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// What happened around the steps: the scratch targets removed (or not) at the end.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Something that happened, told to the machine.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The run begins (or, after a resume or a retry, begins again).
    Go {
        at_ms: i64,
    },
    /// The item the executor was told to run records a fact before it is over (a restore's
    /// run id, before its first write).
    Fact {
        key: String,
        value: String,
    },
    Done {
        at_ms: i64,
        note: String,
        facts: BTreeMap<String, String>,
    },
    Skipped {
        at_ms: i64,
        why: String,
    },
    Failed {
        at_ms: i64,
        error: String,
    },
    /// The operator stops the run between items (`x`, a checklist not ticked): what is
    /// running finishes first.
    Stop {
        at_ms: i64,
        why: String,
    },
}

/// What the executor must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Write the run record to the journal.
    Save,
    /// Run this item.
    Execute { step: usize, item: usize },
    /// The run is over (done or failed); write its report.
    Finished(Outcome),
    /// The run stopped for the operator; nothing is half-done.
    Stopped(String),
}

impl Run {
    /// The next item to run: the first that is not done or skipped.
    pub fn cursor(&self) -> Option<(usize, usize)> {
        self.steps.iter().enumerate().find_map(|(s, step)| {
            step.items
                .iter()
                .position(|i| !i.state.settled())
                .map(|i| (s, i))
        })
    }

    fn item_mut(&mut self) -> Option<&mut Item> {
        let (s, i) = self.cursor()?;
        Some(&mut self.steps[s].items[i])
    }

    /// Folds an event in; returns what to do next.
    pub fn handle(&mut self, event: Event) -> Vec<Effect> {
        match event {
            Event::Go { at_ms } => {
                if self.status == Status::Done {
                    return vec![];
                }
                self.status = Status::Running;
                self.finished_ms = None;
                if let Some(item) = self.item_mut() {
                    if item.state == State::Failed {
                        // A retry: the failed item runs again; what it recorded stays.
                        item.note = None;
                    }
                    item.state = State::Pending;
                }
                self.next(at_ms)
            }
            Event::Fact { key, value } => match self.item_mut() {
                Some(item) => {
                    item.facts.insert(key, value);
                    vec![Effect::Save]
                }
                None => vec![],
            },
            Event::Done { at_ms, note, facts } => {
                self.settle(at_ms, State::Done, note, facts);
                self.next(at_ms)
            }
            Event::Skipped { at_ms, why } => {
                self.settle(at_ms, State::Skipped, why, BTreeMap::new());
                self.next(at_ms)
            }
            Event::Failed { at_ms, error } => {
                self.settle(at_ms, State::Failed, error, BTreeMap::new());
                self.status = Status::Failed;
                self.finished_ms = Some(at_ms);
                vec![Effect::Save, Effect::Finished(self.outcome())]
            }
            Event::Stop { at_ms, why } => {
                if let Some(item) = self.item_mut()
                    && item.state == State::Running
                {
                    // Nothing of it landed (the executor stops between units): it runs again.
                    item.state = State::Pending;
                    item.finished_ms = Some(at_ms);
                }
                self.status = Status::Stopped;
                vec![Effect::Save, Effect::Stopped(why)]
            }
        }
    }

    fn settle(&mut self, at_ms: i64, state: State, note: String, facts: BTreeMap<String, String>) {
        if let Some(item) = self.item_mut() {
            item.state = state;
            item.note = Some(note);
            item.facts.extend(facts);
            item.finished_ms = Some(at_ms);
        }
    }

    /// Starts the next item, or finishes the run.
    fn next(&mut self, at_ms: i64) -> Vec<Effect> {
        match self.cursor() {
            Some((step, item)) => {
                let it = &mut self.steps[step].items[item];
                it.state = State::Running;
                it.started_ms = Some(at_ms);
                it.finished_ms = None;
                it.attempts += 1;
                vec![Effect::Save, Effect::Execute { step, item }]
            }
            None => {
                self.status = Status::Done;
                self.finished_ms = Some(at_ms);
                vec![Effect::Save, Effect::Finished(self.outcome())]
            }
        }
    }

    /// Every item, in order, with its step's index.
    pub fn items(&self) -> impl Iterator<Item = (usize, &Item)> {
        self.steps
            .iter()
            .enumerate()
            .flat_map(|(s, step)| step.items.iter().map(move |i| (s, i)))
    }

    /// Success only when every item is done or skipped and no restore was partial; partial
    /// when a restore landed (or landed in part) and something did not go right.
    pub fn outcome(&self) -> Outcome {
        let restored = self.items().any(|(_, i)| {
            i.act.writes()
                && (i.state == State::Done || i.facts.get("outcome").is_some_and(|o| o != "failed"))
        });
        let partial = self
            .items()
            .any(|(_, i)| i.facts.get("outcome").is_some_and(|o| o == "partial"));
        let failed = self.items().any(|(_, i)| i.state == State::Failed);
        match (failed || partial, restored) {
            (false, _) => Outcome::Success,
            (true, true) => Outcome::Partial,
            (true, false) => Outcome::Failed,
        }
    }

    /// RTO and RPO as measured, against the playbook's targets.
    pub fn measures(&self) -> Measures {
        self.measures_of(|_| true)
    }

    /// RTO and RPO of the items `of` keeps (one target's, say): from the run's start (or the
    /// incident) to their last restore verified, and from that restore's backup to the incident.
    pub fn measures_of(&self, of: impl Fn(&Item) -> bool) -> Measures {
        let from = self.incident_ms.unwrap_or(self.started_ms);
        let items = || self.items().filter(|(_, i)| of(i));
        // Recovered: the last restore, or the last verification after it, that went through.
        let restore_at = items()
            .filter(|(_, i)| i.act.writes() && i.state == State::Done)
            .filter_map(|(s, i)| Some((s, i.finished_ms?)))
            .max_by_key(|(_, t)| *t);
        let recovered = restore_at.map(|(s, t)| {
            items()
                .filter(|(vs, i)| {
                    *vs > s && matches!(i.act, Act::Verify { .. }) && i.state == State::Done
                })
                .filter_map(|(_, i)| i.finished_ms)
                .max()
                .unwrap_or(t)
        });
        let rto_secs = recovered.map(|t| (t - from) as f64 / 1000.0);
        // Lost: from each restored backup's consistency point to the incident.
        let rpo_secs = items()
            .filter(|(_, i)| i.act.writes() && i.state == State::Done)
            .filter_map(|(_, i)| i.facts.get("consistency_ms")?.parse::<i64>().ok())
            .min()
            .map(|c| ((from - c) as f64 / 1000.0).max(0.0));
        Measures {
            rto_secs,
            rpo_secs,
            rto_target_secs: self.rto_secs,
            rpo_target_secs: self.rpo_secs,
            rto_met: rto_secs.map(|r| r <= self.rto_secs as f64),
            rpo_met: rpo_secs.map(|r| r <= self.rpo_secs as f64),
        }
    }
}

/// RTO and RPO of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measures {
    /// From the run's start (or the incident) to the target restored and verified; `None`
    /// when nothing was restored.
    pub rto_secs: Option<f64>,
    /// From the restored backup's consistency point to the incident (or the run's start).
    pub rpo_secs: Option<f64>,
    pub rto_target_secs: u64,
    pub rpo_target_secs: u64,
    pub rto_met: Option<bool>,
    pub rpo_met: Option<bool>,
}

/// A new item for `act`, not started.
pub fn item(act: Act) -> Item {
    Item {
        act,
        state: State::Pending,
        note: None,
        facts: BTreeMap::new(),
        started_ms: None,
        finished_ms: None,
        attempts: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            kind: "d1".into(),
            name: "shop".into(),
        }
    }

    fn run() -> Run {
        let step = |kind: &str, acts: Vec<Act>| Step {
            title: kind.into(),
            kind: kind.into(),
            items: acts.into_iter().map(item).collect(),
        };
        Run {
            format: RUN_FORMAT.into(),
            id: "r1".into(),
            playbook: "d1-recovery".into(),
            title: "t".into(),
            rto_secs: 60,
            rpo_secs: 3600,
            params: BTreeMap::new(),
            subjects: vec![],
            steps: vec![
                step(
                    "validate",
                    vec![Act::Validate {
                        backup: "b".into(),
                        full: true,
                    }],
                ),
                step(
                    "restore",
                    vec![
                        Act::Restore {
                            backup: "b".into(),
                            target: Some(target()),
                            tables: vec![],
                            prefix: None,
                            mode: "overwrite".into(),
                            at: None,
                            scratch: false,
                        },
                        Act::Restore {
                            backup: "c".into(),
                            target: None,
                            tables: vec![],
                            prefix: None,
                            mode: "overwrite".into(),
                            at: None,
                            scratch: false,
                        },
                    ],
                ),
                step(
                    "verify",
                    vec![Act::Verify {
                        backup: "b".into(),
                        target: None,
                        tables: vec![],
                        prefix: None,
                    }],
                ),
            ],
            status: Status::Running,
            by: "me@here".into(),
            started_ms: 1_000,
            incident_ms: None,
            finished_ms: None,
            profile: None,
            notes: vec![],
        }
    }

    fn done(at_ms: i64, facts: &[(&str, &str)]) -> Event {
        Event::Done {
            at_ms,
            note: "ok".into(),
            facts: facts
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn a_run_walks_every_item_in_order_and_measures_rto_and_rpo() {
        let mut r = run();
        assert_eq!(
            r.handle(Event::Go { at_ms: 1_000 }),
            [Effect::Save, Effect::Execute { step: 0, item: 0 }]
        );
        assert_eq!(r.steps[0].state(), State::Running);
        assert_eq!(
            r.handle(done(2_000, &[]))[1],
            Effect::Execute { step: 1, item: 0 }
        );
        assert_eq!(
            r.handle(Event::Fact {
                key: "restore_run".into(),
                value: "x".into()
            }),
            [Effect::Save]
        );
        r.handle(done(5_000, &[("consistency_ms", "-599000")]));
        assert_eq!(r.steps[1].state(), State::Running, "one item of two done");
        r.handle(done(6_000, &[("consistency_ms", "0")]));
        assert_eq!(r.steps[1].state(), State::Done);
        assert_eq!(r.steps[1].millis(), Some(4_000));
        assert_eq!(
            r.handle(done(9_000, &[])),
            [Effect::Save, Effect::Finished(Outcome::Success)]
        );
        assert_eq!(r.status, Status::Done);
        let m = r.measures();
        assert_eq!(m.rto_secs, Some(8.0), "start to verified");
        assert_eq!(m.rpo_secs, Some(600.0), "the older backup's point");
        assert_eq!((m.rto_met, m.rpo_met), (Some(true), Some(true)));
        assert_eq!(r.handle(Event::Go { at_ms: 10_000 }), [], "done stays done");
    }

    #[test]
    fn a_failure_stops_the_run_and_a_retry_starts_at_the_failed_item() {
        let mut r = run();
        r.handle(Event::Go { at_ms: 0 });
        r.handle(done(1, &[]));
        r.handle(done(2, &[]));
        let fx = r.handle(Event::Failed {
            at_ms: 3,
            error: "network".into(),
        });
        assert_eq!(fx, [Effect::Save, Effect::Finished(Outcome::Partial)]);
        assert_eq!(r.status, Status::Failed);
        assert_eq!(r.steps[1].state(), State::Failed);
        // The retry: the first restore is not run again.
        assert_eq!(
            r.handle(Event::Go { at_ms: 10 }),
            [Effect::Save, Effect::Execute { step: 1, item: 1 }]
        );
        assert_eq!(r.steps[1].items[1].attempts, 2);
        assert_eq!(r.steps[1].items[0].attempts, 1);
    }

    #[test]
    fn a_crash_resumes_at_the_running_item_with_what_it_recorded() {
        let mut r = run();
        r.handle(Event::Go { at_ms: 0 });
        r.handle(done(1, &[]));
        r.handle(Event::Fact {
            key: "restore_run".into(),
            value: "x".into(),
        });
        // The process dies here; the journal holds the record as saved.
        let saved = serde_json::to_string(&r).unwrap();
        let mut back: Run = serde_json::from_str(&saved).unwrap();
        assert_eq!(back, r);
        assert_eq!(
            back.handle(Event::Go { at_ms: 5 }),
            [Effect::Save, Effect::Execute { step: 1, item: 0 }]
        );
        assert_eq!(back.steps[1].items[0].facts["restore_run"], "x");
    }

    #[test]
    fn a_stop_between_items_leaves_nothing_half_done() {
        let mut r = run();
        r.handle(Event::Go { at_ms: 0 });
        let fx = r.handle(Event::Stop {
            at_ms: 1,
            why: "checklist".into(),
        });
        assert_eq!(fx, [Effect::Save, Effect::Stopped("checklist".into())]);
        assert_eq!(r.status, Status::Stopped);
        assert_eq!(r.steps[0].items[0].state, State::Pending);
        assert_eq!(
            r.handle(Event::Go { at_ms: 2 })[1],
            Effect::Execute { step: 0, item: 0 }
        );
    }

    #[test]
    fn nothing_restored_is_a_failure_and_has_no_rto() {
        let mut r = run();
        r.incident_ms = Some(0);
        r.handle(Event::Go { at_ms: 0 });
        let fx = r.handle(Event::Failed {
            at_ms: 1,
            error: "MAC".into(),
        });
        assert_eq!(fx[1], Effect::Finished(Outcome::Failed));
        assert_eq!(r.measures().rto_secs, None);
        assert_eq!(r.measures().rto_met, None);
    }

    #[test]
    fn skipped_items_count_as_settled_but_a_partial_restore_does_not_make_success() {
        let mut r = run();
        r.handle(Event::Go { at_ms: 0 });
        r.handle(Event::Skipped {
            at_ms: 1,
            why: "unattended".into(),
        });
        assert_eq!(r.steps[0].state(), State::Skipped);
        r.handle(done(2, &[("outcome", "partial")]));
        r.handle(done(3, &[]));
        let fx = r.handle(done(4, &[]));
        assert_eq!(fx[1], Effect::Finished(Outcome::Partial));
    }
}
