//! The console's guided restore, as state: the form (where to, which part), the plan (what
//! will change, the requests and the budget wait), the typed confirmation, and the run (the
//! runner's steps as a checklist, live), then undo. No I/O: `App` feeds it keys and job
//! events and runs the commands it asks for, which drive the same runner and operations as
//! `cfdr restore` and `cfdr playbook run`.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::state::{App, Command, Screen};
use crate::ops::restore::Plan;
use crate::playbook::recover::{Choice, Dest, Mode};
use crate::playbook::runner::{Act, Run, State, Status};
use crate::repo::catalog::Entry;

/// Where the guided restore stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// Choosing where to and which part.
    Form,
    /// The plan is being made (a dry run: nothing is written).
    Planning,
    /// The plan, waiting for enter.
    Plan,
    /// The target's name typed before anything is written; `undo` when it confirms an undo.
    Confirm { typed: String, undo: bool },
    /// The run is going (or, after it, its result is shown).
    Run,
    /// The undo is going (or done).
    Undo,
}

/// The form's fields, in tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// Same target or another.
    Dest,
    /// The other target's name.
    Name,
    /// Tables (D1) or a key/object prefix (KV, R2).
    Only,
    /// Overwrite, skip or clear.
    Mode,
}

/// Where the form sends the backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Where {
    /// Back over its own target.
    Same,
    /// Another target, by name.
    Other,
    /// A new scratch target, verified and then removed: nothing there is touched.
    Scratch,
}

/// The modes the form cycles through, in order.
pub const MODES: [Mode; 3] = [Mode::Overwrite, Mode::Skip, Mode::Clear];

#[derive(Debug, Clone)]
pub struct Recovery {
    /// The backup restored.
    pub backup: Entry,
    pub stage: Stage,
    pub field: Field,
    pub into: Where,
    /// The other target's name.
    pub name: String,
    pub only: String,
    pub mode: Mode,
    /// The run's id when it goes into a scratch target (chosen when the plan is made, so the
    /// plan names the scratch target the run creates).
    pub scratch_run: String,
    /// Whether a target of that name is in the account (or the repository) now.
    pub other_exists: bool,
    pub plan: Option<Box<Plan>>,
    pub run: Option<Box<Run>>,
    /// What the runner said, newest last.
    pub log: Vec<String>,
    /// The job working for this restore (plan, run or undo).
    pub job: Option<u64>,
    /// The undo's result line, once it ended.
    pub undone: Option<Result<String, String>>,
    /// Lines scrolled off the top (a long plan or run).
    pub scroll: u16,
}

impl Recovery {
    pub fn new(backup: Entry) -> Self {
        let name = if backup.kind == "sqlite" {
            String::new()
        } else {
            format!("{}-restored", backup.target)
        };
        Self {
            backup,
            stage: Stage::Form,
            field: Field::Dest,
            into: Where::Same,
            name,
            only: String::new(),
            mode: Mode::Overwrite,
            scratch_run: String::new(),
            other_exists: false,
            plan: None,
            run: None,
            log: Vec::new(),
            job: None,
            undone: None,
            scroll: 0,
        }
    }

    /// The fields the form shows for this kind: a SQLite file goes back to its own path (or a
    /// scratch copy), whole.
    pub fn fields(&self) -> Vec<Field> {
        match self.backup.kind.as_str() {
            "sqlite" => vec![Field::Dest],
            _ if self.into == Where::Other => {
                vec![Field::Dest, Field::Name, Field::Only, Field::Mode]
            }
            _ => vec![Field::Dest, Field::Only, Field::Mode],
        }
    }

    /// The destinations this kind offers, in the order space cycles through them.
    pub fn destinations(&self) -> &'static [Where] {
        if self.backup.kind == "sqlite" {
            &[Where::Same, Where::Scratch]
        } else {
            &[Where::Same, Where::Other, Where::Scratch]
        }
    }

    /// `space` (or `←→`) on the field under the cursor: the next destination or mode.
    pub fn cycle(&mut self, back: bool) {
        fn next<T: Copy + PartialEq>(all: &[T], now: T, back: bool) -> T {
            let at = all.iter().position(|x| *x == now).unwrap_or(0);
            let n = all.len();
            all[if back { (at + n - 1) % n } else { (at + 1) % n }]
        }
        match self.field {
            Field::Mode => self.mode = next(&MODES, self.mode, back),
            _ => {
                self.into = next(self.destinations(), self.into, back);
                self.field = Field::Dest;
            }
        }
    }

    /// What a mode does, as the form says it.
    pub fn mode_help(&self) -> &'static str {
        match (self.mode, self.backup.kind.as_str()) {
            (Mode::Overwrite, "d1") => "tables in the backup replaced, others kept",
            (Mode::Skip, "d1") => "only tables the target lacks created",
            (Mode::Clear, "d1") => "afterwards the database equals the backup",
            (Mode::Overwrite, _) => "what differs written, extra keys kept",
            (Mode::Skip, _) => "only keys the target lacks written",
            (Mode::Clear, _) => "afterwards equals the backup: extra keys deleted",
        }
    }

    /// What the `only` field is called for this kind.
    pub fn only_label(&self) -> &'static str {
        match self.backup.kind.as_str() {
            "d1" => "tables",
            "r2" => "object prefix",
            _ => "key prefix",
        }
    }

    pub fn next_field(&mut self, back: bool) {
        let f = self.fields();
        let at = f.iter().position(|x| *x == self.field).unwrap_or(0);
        let n = f.len();
        self.field = f[if back { (at + n - 1) % n } else { (at + 1) % n }];
    }

    /// The form as the runner takes it.
    pub fn choice(&self) -> Choice {
        let only = self.only.trim();
        let (tables, prefix) = match self.backup.kind.as_str() {
            "d1" => (
                only.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .collect(),
                None,
            ),
            "kv" | "r2" if !only.is_empty() => (Vec::new(), Some(only.to_string())),
            _ => (Vec::new(), None),
        };
        Choice {
            into: match self.into {
                Where::Same => Dest::Same,
                Where::Other => Dest::Other {
                    name: self.name.trim().to_string(),
                    exists: self.other_exists,
                },
                Where::Scratch => Dest::Scratch {
                    run: self.scratch_run.clone(),
                },
            },
            tables,
            prefix,
            mode: if self.backup.kind == "sqlite" {
                Mode::Overwrite
            } else {
                self.mode
            },
        }
    }

    /// The name written to: what the confirmation asks for.
    pub fn target_name(&self) -> String {
        self.choice().target(&self.backup).name
    }

    /// What is wrong with the form, if anything.
    pub fn problem(&self) -> Option<String> {
        if self.into == Where::Other {
            let name = self.name.trim();
            if name.is_empty() {
                return Some("give the other target a name".into());
            }
            if name == self.backup.target {
                return Some(format!(
                    "`{name}` is the backup's own target: choose `same target` instead"
                ));
            }
        }
        None
    }

    /// The restore run's id, once its restore step started one (what undo undoes).
    pub fn restore_run(&self) -> Option<String> {
        self.run.as_ref()?.items().find_map(|(_, i)| {
            matches!(i.act, Act::Restore { .. })
                .then(|| i.facts.get("restore_run").cloned())
                .flatten()
        })
    }

    /// A fact any step recorded (the pre-recovery snapshot's id, say).
    pub fn fact(&self, key: &str) -> Option<String> {
        self.run
            .as_ref()?
            .items()
            .find_map(|(_, i)| i.facts.get(key).cloned())
    }

    /// Whether the run ended: done, or failed at a step.
    pub fn ended(&self) -> bool {
        self.run
            .as_ref()
            .is_some_and(|r| matches!(r.status, Status::Done | Status::Failed))
    }

    /// Whether the run failed at a step (`t` retries it from there).
    pub fn failed(&self) -> bool {
        self.run.as_ref().is_some_and(|r| {
            r.status == Status::Failed || r.items().any(|(_, i)| i.state == State::Failed)
        })
    }
}

/// The guided restore's transitions on the console's state.
impl App {
    /// Letters typed into the form's text fields or the confirmation: `true` when taken.
    pub(super) fn restore_typing(&mut self, k: &KeyEvent) -> bool {
        if *self.screen() != Screen::Restore || k.modifiers.contains(KeyModifiers::CONTROL) {
            return false;
        }
        let Some(r) = &mut self.recovery else {
            return false;
        };
        let text = match &mut r.stage {
            Stage::Confirm { typed, .. } => typed,
            Stage::Form => match r.field {
                Field::Name => &mut r.name,
                Field::Only => &mut r.only,
                Field::Dest | Field::Mode => return false,
            },
            _ => return false,
        };
        match k.code {
            KeyCode::Char(c) => text.push(c),
            KeyCode::Backspace => {
                text.pop();
            }
            _ => return false,
        }
        true
    }

    /// `R` on a backup: the restore form for it; on a target of the inventory: for its newest
    /// backup (a pre-recovery snapshot only when it has nothing else).
    pub(super) fn restore_open(&mut self) -> Vec<Command> {
        let id = match self.screen() {
            Screen::Detail(id) => Some(id.clone()),
            Screen::Backups(_) => self.selected_entry().map(|e| e.id.clone()),
            Screen::Inventory => self.inventory.get(self.inv_sel).and_then(|row| {
                let of_row = || {
                    self.entries
                        .iter()
                        .rev()
                        .filter(|e| e.kind == row.kind && e.target == row.name)
                };
                of_row()
                    .find(|e| e.trigger != "pre-recovery")
                    .or_else(|| of_row().next())
                    .map(|e| e.id.clone())
            }),
            _ => None,
        };
        let Some(entry) = id.and_then(|id| self.entry(&id).cloned()) else {
            self.message = Some((
                false,
                match self.screen() {
                    Screen::Inventory => {
                        "this target has no backup to restore yet: b takes one".into()
                    }
                    _ => "pick a backup to restore (2 lists them all)".into(),
                },
            ));
            return Vec::new();
        };
        if self.refuse_if_busy() {
            return Vec::new();
        }
        self.recovery = Some(Recovery::new(entry));
        self.stack.push(Screen::Restore);
        self.message = None;
        Vec::new()
    }

    /// `esc`: one stage back, writing nothing; off the screen from the form or a run's end.
    pub(super) fn restore_back(&mut self) {
        let busy = self.running().is_some();
        let Some(r) = &mut self.recovery else {
            self.stack.pop();
            return;
        };
        match &r.stage {
            Stage::Form => {}
            Stage::Planning | Stage::Plan => {
                r.stage = Stage::Form;
                return;
            }
            Stage::Confirm { undo: false, .. } => {
                r.stage = Stage::Plan;
                self.message = Some((false, "not confirmed: nothing was written".into()));
                return;
            }
            Stage::Confirm { undo: true, .. } => {
                r.stage = Stage::Run;
                self.message = Some((false, "undo not confirmed: nothing was written".into()));
                return;
            }
            Stage::Run | Stage::Undo if busy => {
                self.message = Some((
                    false,
                    "the restore is running: x stops it between steps, then esc leaves".into(),
                ));
                return;
            }
            Stage::Run | Stage::Undo => {}
        }
        self.recovery = None;
        self.stack.pop();
    }

    /// `enter`: the form to its plan, the plan to its confirmation, the confirmation to the run.
    pub(super) fn restore_proceed(&mut self) -> Vec<Command> {
        let Some(r) = self.recovery.clone() else {
            return Vec::new();
        };
        match r.stage.clone() {
            Stage::Form => {
                if let Some(p) = r.problem() {
                    self.message = Some((true, p));
                    return Vec::new();
                }
                if self.refuse_if_busy() {
                    return Vec::new();
                }
                let (backup, mut choice) = (r.backup.id.clone(), r.choice());
                let exists = self.target_exists(&r.backup.kind, &r.target_name());
                if let crate::playbook::recover::Dest::Other { exists: e, .. } = &mut choice.into {
                    *e = exists;
                }
                let job = self.new_job(format!("plan restore of {backup}"), None);
                let r = self.recovery.as_mut().expect("checked above");
                if let crate::playbook::recover::Dest::Scratch { run } = &mut choice.into {
                    // A new run id, so the plan names the scratch target this run creates.
                    *run = crate::repo::manifest::new_id(self.now);
                    r.scratch_run = run.clone();
                }
                r.other_exists = exists;
                r.stage = Stage::Planning;
                r.job = Some(job);
                r.plan = None;
                vec![Command::PlanRestore {
                    job,
                    backup,
                    choice,
                }]
            }
            Stage::Plan => {
                if r.choice().overwrites() {
                    self.recovery.as_mut().expect("checked above").stage = Stage::Confirm {
                        typed: String::new(),
                        undo: false,
                    };
                    Vec::new()
                } else {
                    self.restore_start()
                }
            }
            Stage::Confirm { typed, undo } => {
                let name = r.target_name();
                if typed != name {
                    self.message = Some((
                        true,
                        format!(
                            "type `{name}` exactly to go on; esc backs out with nothing written"
                        ),
                    ));
                    return Vec::new();
                }
                if undo {
                    self.restore_undo_now()
                } else {
                    self.restore_start()
                }
            }
            Stage::Planning | Stage::Run | Stage::Undo => Vec::new(),
        }
    }

    /// Whether the account (or the repository) has a target of that kind and name.
    fn target_exists(&self, kind: &str, name: &str) -> bool {
        self.known.iter().any(|(k, n)| k == kind && n == name)
            || self
                .entries
                .iter()
                .any(|e| e.kind == kind && e.target == name)
    }

    fn restore_start(&mut self) -> Vec<Command> {
        if self.refuse_if_busy() {
            return Vec::new();
        }
        let Some(r) = &self.recovery else {
            return Vec::new();
        };
        let (backup, choice, confirmed) = (r.backup.id.clone(), r.choice(), r.target_name());
        let job = self.new_job(format!("restore {backup} into {confirmed}"), None);
        let r = self.recovery.as_mut().expect("checked above");
        r.stage = Stage::Run;
        r.job = Some(job);
        r.scroll = 0;
        r.log.clear();
        vec![Command::RunRestore {
            job,
            backup,
            choice,
            confirmed,
        }]
    }

    pub(super) fn restore_planned(&mut self, job: u64, plan: Result<Box<Plan>, String>) {
        let Some(r) = self.recovery.as_mut().filter(|r| r.job == Some(job)) else {
            return;
        };
        match plan {
            Ok(p) => {
                // Whether the other target exists is what the plan found in the account, not
                // what the console's lists say: a name they lack may still be there, and is
                // then written over only after a snapshot and its name typed.
                r.other_exists = p.target.exists;
                r.plan = Some(p);
                r.stage = Stage::Plan;
                r.scroll = 0;
            }
            Err(e) => {
                r.stage = Stage::Form;
                self.message = Some((true, format!("no plan: {e}")));
            }
        }
    }

    /// `u` after a run: asks for the target's name typed, then undoes it.
    pub(super) fn restore_undo(&mut self) -> Vec<Command> {
        let busy = self.running().is_some();
        let Some(r) = self.recovery.as_mut().filter(|r| r.stage == Stage::Run) else {
            return Vec::new();
        };
        if busy || !r.ended() {
            self.message = Some((false, "undo is there once the run has ended".into()));
        } else if r.into == Where::Scratch {
            self.message = Some((
                false,
                "the scratch copy was removed at the end: nothing was touched, nothing to undo"
                    .into(),
            ));
        } else if r.restore_run().is_none() {
            self.message = Some((
                false,
                "nothing was restored: there is nothing to undo".into(),
            ));
        } else {
            r.stage = Stage::Confirm {
                typed: String::new(),
                undo: true,
            };
        }
        Vec::new()
    }

    fn restore_undo_now(&mut self) -> Vec<Command> {
        if self.refuse_if_busy() {
            return Vec::new();
        }
        let Some(run) = self.recovery.as_ref().and_then(Recovery::restore_run) else {
            return Vec::new();
        };
        let job = self.new_job(format!("undo restore {run}"), None);
        let r = self.recovery.as_mut().expect("checked above");
        r.stage = Stage::Undo;
        r.job = Some(job);
        vec![Command::Undo { job, run }]
    }

    /// `t`: the run again from the step that failed (or where it stopped).
    pub(super) fn restore_retry(&mut self) -> Vec<Command> {
        let busy = self.running().is_some();
        let Some(r) = self.recovery.as_ref().filter(|r| r.stage == Stage::Run) else {
            return Vec::new();
        };
        let Some(run) = r.run.as_ref().filter(|run| run.status != Status::Done) else {
            self.message = Some((
                false,
                "the run did not fail: there is nothing to retry".into(),
            ));
            return Vec::new();
        };
        if busy {
            self.message = Some((false, "the run is still going".into()));
            return Vec::new();
        }
        let (id, confirmed) = (run.id.clone(), r.target_name());
        if self.refuse_if_busy() {
            return Vec::new();
        }
        let job = self.new_job(format!("retry run {id}"), None);
        let r = self.recovery.as_mut().expect("checked above");
        r.job = Some(job);
        vec![Command::ResumeRun {
            job,
            run: id,
            answers: super::guide::Answers {
                confirmed: Some(confirmed),
                ..Default::default()
            },
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: &str) -> Entry {
        Entry {
            id: "b1".into(),
            kind: kind.into(),
            target: "shop".into(),
            target_id: "x".into(),
            trigger: "manual".into(),
            method: "m".into(),
            started: String::new(),
            finished: String::new(),
            plaintext_size: 0,
            stored_size: 0,
            artifacts: 1,
            warnings: 0,
            dir: String::new(),
        }
    }

    #[test]
    fn the_form_turns_into_the_runners_choice() {
        let mut r = Recovery::new(entry("d1"));
        r.only = " users, orders ,".into();
        let c = r.choice();
        assert_eq!(c.tables, ["users", "orders"]);
        assert_eq!(c.into, Dest::Same);
        assert_eq!(r.target_name(), "shop");
        assert_eq!(r.fields(), [Field::Dest, Field::Only, Field::Mode]);
        r.cycle(false);
        assert_eq!(r.into, Where::Other);
        r.next_field(false);
        assert_eq!(r.field, Field::Name);
        assert_eq!(r.target_name(), "shop-restored");
        r.name = "shop".into();
        assert!(r.problem().unwrap().contains("own target"));
        let mut kv = Recovery::new(entry("kv"));
        kv.only = "user:".into();
        assert_eq!(kv.choice().prefix.as_deref(), Some("user:"));
        assert_eq!(Recovery::new(entry("sqlite")).fields(), [Field::Dest]);
    }

    #[test]
    fn space_cycles_the_field_under_the_cursor_scratch_and_modes_included() {
        let mut r = Recovery::new(entry("kv"));
        r.cycle(false);
        r.cycle(false);
        assert_eq!(r.into, Where::Scratch);
        r.scratch_run = "2026-12-04T12-00-00Z-ab12".into();
        assert!(!r.choice().overwrites(), "nothing there is written over");
        assert!(r.target_name().starts_with("shop-drill-"));
        r.cycle(false);
        assert_eq!(r.into, Where::Same);
        r.field = Field::Mode;
        r.cycle(false);
        assert_eq!(r.choice().mode, Mode::Skip);
        r.cycle(true);
        r.cycle(true);
        assert_eq!(r.choice().mode, Mode::Clear);
        assert_eq!(r.field, Field::Mode, "cycling a mode stays on it");
        let mut file = Recovery::new(entry("sqlite"));
        file.cycle(false);
        assert_eq!(
            file.into,
            Where::Scratch,
            "a file: its own path or a scratch copy"
        );
        file.cycle(false);
        assert_eq!(file.into, Where::Same);
    }
}
