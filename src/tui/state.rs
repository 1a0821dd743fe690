//! The console's state and the one function that changes it. Events (keys, mouse, ticks, data
//! loaded, job progress) come in; `handle` folds them into the state and returns the commands to
//! run (loads, verifications, backups), which the event loop hands to tasks. No I/O here, so
//! every transition is tested without a terminal.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent, MouseEventKind};
use time::OffsetDateTime;

use super::keymap::{self, Action, Binding};
use super::recovery::{Recovery, Stage};
use crate::cloudflare::BudgetState;
use crate::config::Config;
use crate::ops::backup::What;
use crate::ops::inventory::{self as model, SortKey, TargetRow};
use crate::ops::restore::Plan;
use crate::playbook::recover::Choice;
use crate::playbook::runner::Run;
use crate::progress::ProgressEvent;
use crate::repo::VerifyReport;
use crate::repo::catalog::Entry;
use crate::repo::manifest::Manifest;

/// Rows a page key moves.
pub const PAGE: usize = 10;

/// Something that happened.
#[derive(Debug)]
pub enum Event {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Resize,
    Tick(OffsetDateTime),
    Budget(Option<BudgetState>),
    Loaded(Loaded),
    Job(u64, JobEvent),
}

#[derive(Debug)]
pub enum Loaded {
    Catalog(Result<Vec<Entry>, String>),
    /// Targets of the account (kind, name), to show those with no backup at all.
    Targets(Result<Vec<(String, String)>, String>),
    Manifest(
        String,
        Result<Box<(Manifest, Option<VerifyReport>)>, String>,
    ),
    /// The repository's audit trail, oldest first.
    Audit(Result<Vec<crate::repo::audit::Entry>, String>),
    Playbooks(Result<Vec<super::playbooks::Book>, String>),
    Drills(Result<Vec<super::drills::Report>, String>),
    Runs(Result<Vec<Run>, String>),
    Status(Result<Box<crate::ops::status::Status>, String>),
    Workers(Result<Vec<crate::ops::workers::WorkerRow>, String>),
    Worker(String, Result<Box<super::workers::Detail>, String>),
}

#[derive(Debug)]
pub enum JobEvent {
    Progress(ProgressEvent),
    /// The job ended: a line saying how, or the error.
    Finished(Result<String, String>),
    Verified(VerifyReport),
    /// A restore's plan (a dry run), or why none could be made.
    Planned(Result<Box<Plan>, String>),
    /// A line the runner told the operator.
    Line(String),
    /// The run as it stands, each time its journal is saved.
    Run(Box<Run>),
}

/// Work for the event loop to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    LoadCatalog,
    LoadTargets,
    LoadManifest(String),
    LoadAudit,
    LoadStatus,
    Verify {
        job: u64,
        id: String,
    },
    Backup {
        job: u64,
        what: What,
    },
    /// Plan a restore of `backup` as `choice` says: a dry run, nothing written.
    PlanRestore {
        job: u64,
        backup: String,
        choice: Choice,
    },
    /// Run the restore, the target's name typed (`confirmed`) as its confirmation.
    RunRestore {
        job: u64,
        backup: String,
        choice: Choice,
        confirmed: String,
    },
    /// Go on with a run that failed or stopped, from that step, with the operator's answers.
    ResumeRun {
        job: u64,
        run: String,
        answers: super::guide::Answers,
    },
    /// Bind playbook `id`'s parameters and run it.
    StartPlaybook {
        job: u64,
        id: String,
        params: std::collections::BTreeMap<String, String>,
    },
    LoadPlaybooks,
    LoadDrills,
    /// A drill (components, scenario, its part or time), on the run screen.
    StartDrill {
        job: u64,
        drill: super::drills::StartDrill,
    },
    /// The playbook runs in the repository (interrupted ones are offered).
    LoadRuns,
    LoadWorkers,
    /// A Worker's deployments and its rollback plan (reads only).
    LoadWorker(String),
    /// Undo restore run `run` from its pre-recovery snapshot.
    Undo {
        job: u64,
        run: String,
    },
}

impl Command {
    /// The job this command works for (what `x` cancels), if it is one.
    pub fn job(&self) -> Option<u64> {
        match self {
            Command::Verify { job, .. }
            | Command::Backup { job, .. }
            | Command::PlanRestore { job, .. }
            | Command::RunRestore { job, .. }
            | Command::ResumeRun { job, .. }
            | Command::StartPlaybook { job, .. }
            | Command::StartDrill { job, .. }
            | Command::Undo { job, .. } => Some(*job),
            Command::LoadCatalog
            | Command::LoadTargets
            | Command::LoadManifest(_)
            | Command::LoadAudit
            | Command::LoadStatus
            | Command::LoadPlaybooks
            | Command::LoadDrills
            | Command::LoadRuns
            | Command::LoadWorkers
            | Command::LoadWorker(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screen {
    Inventory,
    /// All backups, or one target's (kind, name).
    Backups(Option<(String, String)>),
    Detail(String),
    /// The guided restore (`App::recovery`).
    Restore,
    /// The audit trail, newest first (`App::records`).
    Audit,
    /// Each target against its RPO, its last drill and failure (`App::records`).
    Status,
    /// The playbooks, built in and the operator's (`App::books`).
    Playbooks,
    /// A playbook's parameters as a form (`App::form`).
    Params,
    /// A playbook run, live (`App::guide`).
    Run,
    /// The drills' history, and a new drill (`App::drills`).
    Drills,
    /// One drill's report.
    DrillReport,
    /// The Workers: what is live, history, rollback (`App::workers`).
    Workers,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    Help,
    /// A run that stopped or was cut off, offered when the console opens.
    Resume,
    Palette {
        query: String,
        selected: usize,
    },
}

#[derive(Debug, Clone)]
pub struct Job {
    pub id: u64,
    pub title: String,
    pub last: Option<ProgressEvent>,
    /// `Ok(line)` or `Err(error)` once it ended.
    pub outcome: Option<Result<String, String>>,
    pub cancel: Arc<AtomicBool>,
    /// The backup a verify job checks.
    pub backup: Option<String>,
}

/// What the status bar says about where the console points.
#[derive(Debug, Clone, Default)]
pub struct Info {
    pub account: Option<String>,
    pub repo: String,
    pub read_only: bool,
}

#[derive(Debug)]
pub struct App {
    pub info: Info,
    pub config: Config,
    pub now: OffsetDateTime,
    pub color: bool,
    pub entries: Vec<Entry>,
    pub known: Vec<(String, String)>,
    pub inventory: Vec<TargetRow>,
    pub manifests: HashMap<String, (Manifest, Option<VerifyReport>)>,
    pub stack: Vec<Screen>,
    pub inv_sel: usize,
    pub list_sel: usize,
    pub list: Vec<usize>,
    pub filter: String,
    pub editing_filter: bool,
    pub sort: SortKey,
    pub detail_scroll: u16,
    pub overlay: Option<Overlay>,
    /// The guided restore, while its screen is open.
    pub recovery: Option<Recovery>,
    /// The audit trail and the status, as last read.
    pub records: super::records::Records,
    /// The playbooks screen, its parameters form, and a run on screen.
    pub books: super::playbooks::Books,
    pub guide: Option<super::guide::Guide>,
    pub drills: super::drills::Drills,
    pub workers: super::workers::Workers,
    pub jobs: Vec<Job>,
    pub budget: Option<BudgetState>,
    /// The last thing worth telling the operator, and whether it is an error.
    pub message: Option<(bool, String)>,
    pub loading: bool,
    pub quit: bool,
    pub(super) next_job: u64,
}

impl App {
    pub fn new(info: Info, config: Config, now: OffsetDateTime, color: bool) -> Self {
        Self {
            info,
            config,
            now,
            color,
            entries: Vec::new(),
            known: Vec::new(),
            inventory: Vec::new(),
            manifests: HashMap::new(),
            stack: vec![Screen::Inventory],
            inv_sel: 0,
            list_sel: 0,
            list: Vec::new(),
            filter: String::new(),
            editing_filter: false,
            sort: SortKey::Time,
            detail_scroll: 0,
            overlay: None,
            recovery: None,
            records: Default::default(),
            books: Default::default(),
            guide: None,
            drills: Default::default(),
            workers: Default::default(),
            jobs: Vec::new(),
            budget: None,
            message: None,
            loading: true,
            quit: false,
            next_job: 1,
        }
    }

    /// What to run first.
    pub fn start(&self) -> Vec<Command> {
        vec![
            Command::LoadCatalog,
            Command::LoadTargets,
            Command::LoadRuns,
            // Each target's last drill, for the inventory.
            Command::LoadDrills,
        ]
    }

    pub fn screen(&self) -> &Screen {
        self.stack.last().unwrap_or(&Screen::Inventory)
    }

    pub fn bindings(&self) -> &'static [Binding] {
        match self.screen() {
            Screen::Inventory => keymap::INVENTORY,
            Screen::Backups(_) => keymap::BACKUPS,
            Screen::Detail(_) => keymap::DETAIL,
            Screen::Audit => keymap::AUDIT,
            Screen::Playbooks => keymap::PLAYBOOKS,
            Screen::Params => keymap::PARAMS,
            Screen::Run => keymap::RUN,
            Screen::Drills => keymap::DRILLS,
            Screen::DrillReport => keymap::STATUS,
            Screen::Status => keymap::STATUS,
            Screen::Workers => keymap::WORKERS,
            Screen::Restore => match self.recovery.as_ref().map(|r| &r.stage) {
                Some(Stage::Form) => keymap::RESTORE_FORM,
                Some(Stage::Run | Stage::Undo) => keymap::RESTORE_RUN,
                _ => keymap::RESTORE_PLAN,
            },
        }
    }

    /// Why `action` is off on this screen, if it is: in read-only mode, everything that writes
    /// (the footer, the help and the palette show it so, and pressing it says why).
    pub fn disabled(&self, action: Action) -> Option<&'static str> {
        let writes = action.writes()
            || (action == Action::Proceed && matches!(self.screen(), Screen::Params | Screen::Run));
        (self.info.read_only && writes).then_some("off (read-only)")
    }

    /// The running job, if any (one at a time: the repository has one writer).
    pub fn running(&self) -> Option<&Job> {
        self.jobs.iter().rev().find(|j| j.outcome.is_none())
    }

    /// The job of a backup's verification, running or finished.
    pub fn verify_job(&self, id: &str) -> Option<&Job> {
        self.jobs
            .iter()
            .rev()
            .find(|j| j.backup.as_deref() == Some(id))
    }

    pub(super) fn rebuild(&mut self) {
        self.inventory = model::inventory(&self.entries, &self.known, &self.config, self.now);
        let target = match self.screen() {
            Screen::Backups(t) => t.clone(),
            _ => None,
        };
        self.list = model::backups(&self.entries, target.as_ref(), &self.filter, self.sort);
        self.inv_sel = self.inv_sel.min(self.inventory.len().saturating_sub(1));
        self.list_sel = self.list_sel.min(self.list.len().saturating_sub(1));
    }

    /// The entry under the cursor of the backups list.
    pub fn selected_entry(&self) -> Option<&Entry> {
        self.list.get(self.list_sel).map(|i| &self.entries[*i])
    }

    pub(super) fn entry(&self, id: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.id == id)
    }

    pub fn handle(&mut self, event: Event) -> Vec<Command> {
        match event {
            Event::Key(k) if k.kind == KeyEventKind::Press => self.key(k),
            Event::Key(_) | Event::Resize => Vec::new(),
            Event::Mouse(m) => match m.kind {
                MouseEventKind::ScrollDown => self.act(Action::Down),
                MouseEventKind::ScrollUp => self.act(Action::Up),
                _ => Vec::new(),
            },
            Event::Tick(now) => {
                let minute_changed = now.unix_timestamp() / 60 != self.now.unix_timestamp() / 60;
                self.now = now;
                if minute_changed {
                    self.inventory =
                        model::inventory(&self.entries, &self.known, &self.config, self.now);
                }
                Vec::new()
            }
            Event::Budget(b) => {
                self.budget = b;
                Vec::new()
            }
            Event::Loaded(l) => self.loaded(l),
            Event::Job(id, e) => self.job_event(id, e),
        }
    }

    fn key(&mut self, k: KeyEvent) -> Vec<Command> {
        if self.editing_filter {
            match k.code {
                KeyCode::Enter | KeyCode::Esc => self.editing_filter = false,
                KeyCode::Backspace => {
                    self.filter.pop();
                }
                KeyCode::Char(c) if !k.modifiers.contains(KeyModifiers::CONTROL) => {
                    self.filter.push(c)
                }
                _ => {}
            }
            if k.code == KeyCode::Esc {
                self.filter.clear();
            }
            self.list_sel = 0;
            self.records.audit_sel = 0;
            self.rebuild();
            return Vec::new();
        }
        if self.overlay.is_none()
            && (self.restore_typing(&k)
                || self.guide_key(&k)
                || self.params_key(&k)
                || self.drills_key(&k))
        {
            return Vec::new();
        }
        let bindings = self.bindings();
        match &mut self.overlay {
            Some(Overlay::Help) => {
                if matches!(
                    k.code,
                    KeyCode::Esc | KeyCode::Char('?') | KeyCode::Char('q')
                ) {
                    self.overlay = None;
                }
                return Vec::new();
            }
            Some(Overlay::Resume) => {
                match k.code {
                    KeyCode::Enter => {
                        self.overlay = None;
                        return self.resume_interrupted();
                    }
                    KeyCode::Esc | KeyCode::Char('q') => {
                        self.overlay = None;
                        self.books.interrupted = None;
                    }
                    _ => {}
                }
                return Vec::new();
            }
            Some(Overlay::Palette { query, selected }) => {
                let actions = palette_matches(bindings, query);
                match k.code {
                    KeyCode::Esc => self.overlay = None,
                    KeyCode::Enter => {
                        let chosen = actions.get(*selected).copied();
                        self.overlay = None;
                        if let Some(a) = chosen {
                            return self.act(a);
                        }
                    }
                    KeyCode::Up => *selected = selected.saturating_sub(1),
                    KeyCode::Down => {
                        *selected = (*selected + 1).min(actions.len().saturating_sub(1))
                    }
                    KeyCode::Backspace => {
                        query.pop();
                        *selected = 0;
                    }
                    KeyCode::Char(c) => {
                        query.push(c);
                        *selected = 0;
                    }
                    _ => {}
                }
                return Vec::new();
            }
            None => {}
        }
        match keymap::lookup(self.bindings(), &k) {
            Some(a) => self.act(a),
            None => Vec::new(),
        }
    }

    /// Moves the cursor of the screen (a detail scrolls instead).
    fn move_cursor(&mut self, a: Action) {
        let step = |at: usize, last: usize| match a {
            Action::Up => at.saturating_sub(1),
            Action::Down => (at + 1).min(last),
            Action::PageUp => at.saturating_sub(PAGE),
            Action::PageDown => (at + PAGE).min(last),
            Action::Top => 0,
            Action::Bottom => last,
            _ => at,
        };
        match self.screen() {
            Screen::Inventory => {
                self.inv_sel = step(self.inv_sel, self.inventory.len().saturating_sub(1))
            }
            Screen::Backups(_) => {
                self.list_sel = step(self.list_sel, self.list.len().saturating_sub(1))
            }
            Screen::Detail(_) => {
                self.detail_scroll = step(usize::from(self.detail_scroll), 500) as u16
            }
            Screen::Audit => {
                let last = self
                    .records
                    .audit_rows(&self.filter)
                    .len()
                    .saturating_sub(1);
                self.records.audit_sel = step(self.records.audit_sel, last);
            }
            Screen::Status => {
                self.records.scroll = step(usize::from(self.records.scroll), 200) as u16
            }
            Screen::Playbooks => {
                self.books.sel = step(self.books.sel, self.books.list.len().saturating_sub(1))
            }
            Screen::Params => self.params_move(a),
            Screen::Drills => {
                let last = self
                    .drills
                    .list
                    .as_ref()
                    .map_or(0, Vec::len)
                    .saturating_sub(1);
                self.drills.sel = step(self.drills.sel, last);
            }
            Screen::DrillReport => {
                self.drills.scroll = step(usize::from(self.drills.scroll), 400) as u16
            }
            Screen::Workers => {
                let last = self.workers.rows().len().saturating_sub(1);
                self.workers.sel = step(self.workers.sel, last);
            }
            Screen::Run => {
                if let Some(g) = &mut self.guide {
                    g.scroll = step(usize::from(g.scroll), 200) as u16;
                }
            }
            Screen::Restore => {
                if let Some(r) = &mut self.recovery {
                    match (&r.stage, a) {
                        (Stage::Form, Action::Down) => r.next_field(false),
                        (Stage::Form, Action::Up) => r.next_field(true),
                        (Stage::Form, _) => {}
                        _ => r.scroll = step(usize::from(r.scroll), 200) as u16,
                    }
                }
            }
        }
    }

    /// Does what an action asks.
    pub fn act(&mut self, a: Action) -> Vec<Command> {
        self.move_cursor(a);
        if *self.screen() == Screen::Workers && keymap::motion(a) {
            return self.workers_selected();
        }
        match a {
            Action::Quit => self.quit = true,
            Action::Help => self.overlay = Some(Overlay::Help),
            Action::Palette => {
                self.overlay = Some(Overlay::Palette {
                    query: String::new(),
                    selected: 0,
                })
            }
            Action::Back if *self.screen() == Screen::Restore => self.restore_back(),
            Action::Back if *self.screen() == Screen::Run && self.running().is_some() => {
                self.message = Some((
                    false,
                    "the run is going: x stops it between steps, then esc leaves".into(),
                ));
            }
            Action::Restore => return self.restore_open(),
            Action::Proceed if *self.screen() == Screen::Run => return self.guide_answer(),
            Action::Proceed if *self.screen() == Screen::Params => return self.params_start(),
            Action::Proceed => return self.restore_proceed(),
            Action::Playbooks => return self.playbooks_open(),
            Action::Drills => return self.drills_open(),
            Action::Workers => return self.workers_open(),
            Action::Rollback => return self.workers_rollback(),
            Action::NewDrill => self.drills_new(),
            Action::NextField if *self.screen() == Screen::Params => self.params_move(Action::Down),
            Action::NextField => {
                if let Some(r) = &mut self.recovery {
                    r.next_field(false);
                }
            }
            Action::Toggle => {
                if let Some(r) = self.recovery.as_mut().filter(|r| r.stage == Stage::Form) {
                    r.cycle(false);
                }
            }
            Action::Undo => return self.restore_undo(),
            Action::Retry if *self.screen() == Screen::Run => return self.guide_resume(None),
            Action::Retry => return self.restore_retry(),
            Action::Back => {
                if self.stack.len() > 1 {
                    self.stack.pop();
                    self.rebuild();
                } else if self.running().is_some() {
                    return self.act(Action::Cancel);
                }
            }
            Action::Inventory => {
                self.stack.truncate(1);
                self.rebuild();
            }
            Action::AllBackups => {
                self.stack.truncate(1);
                self.stack.push(Screen::Backups(None));
                self.list_sel = 0;
                self.rebuild();
            }
            Action::Open => return self.open(),
            Action::Audit => return self.open_records(Screen::Audit),
            Action::Status => return self.open_records(Screen::Status),
            Action::Filter => {
                if matches!(self.screen(), Screen::Backups(_) | Screen::Audit) {
                    self.editing_filter = true;
                }
            }
            Action::Sort => {
                self.sort = self.sort.next();
                self.list_sel = 0;
                self.rebuild();
                self.message = Some((false, format!("sorted by {}", self.sort.name())));
            }
            Action::Verify => return self.verify(),
            Action::BackupNow => return self.backup_now(),
            Action::Cancel => match self.running() {
                Some(j) => {
                    j.cancel.store(true, Ordering::Relaxed);
                    self.message = Some((false, format!("cancelling {}…", j.title)));
                }
                None => self.message = Some((false, "nothing is running".into())),
            },
            Action::Refresh => {
                self.loading = true;
                return vec![Command::LoadCatalog, Command::LoadTargets];
            }
            _ => {}
        }
        Vec::new()
    }

    fn open(&mut self) -> Vec<Command> {
        match self.screen().clone() {
            Screen::Inventory => {
                if let Some(r) = self.inventory.get(self.inv_sel) {
                    let t = (r.kind.clone(), r.name.clone());
                    self.stack.push(Screen::Backups(Some(t)));
                    self.list_sel = 0;
                    self.rebuild();
                }
                Vec::new()
            }
            Screen::Backups(_) => match self.selected_entry().map(|e| e.id.clone()) {
                Some(id) => {
                    self.stack.push(Screen::Detail(id.clone()));
                    self.detail_scroll = 0;
                    if self.manifests.contains_key(&id) {
                        Vec::new()
                    } else {
                        vec![Command::LoadManifest(id)]
                    }
                }
                None => Vec::new(),
            },
            Screen::Playbooks => self.params_open(),
            Screen::Drills => self.drills_enter(),
            Screen::Detail(_)
            | Screen::Restore
            | Screen::Audit
            | Screen::Status
            | Screen::Params
            | Screen::Run
            | Screen::Workers
            | Screen::DrillReport => Vec::new(),
        }
    }

    /// Leaves for `screen`, on top of the inventory — unless a restore or a run is going on
    /// the screen left (it would go on unseen): then `false`, said on the message line.
    pub(super) fn go_to(&mut self, screen: Screen) -> bool {
        if matches!(self.screen(), Screen::Restore | Screen::Run) && self.running().is_some() {
            self.message = Some((false, "a run is going: x stops it first".into()));
            return false;
        }
        self.recovery = None;
        self.stack.truncate(1);
        self.stack.push(screen);
        true
    }

    /// `3` or `4`: the audit trail or the status, read afresh.
    fn open_records(&mut self, screen: Screen) -> Vec<Command> {
        if !self.go_to(screen.clone()) {
            return Vec::new();
        }
        self.filter.clear();
        self.records.audit_sel = 0;
        self.records.scroll = 0;
        vec![if screen == Screen::Audit {
            Command::LoadAudit
        } else {
            Command::LoadStatus
        }]
    }
}

/// The palette's actions matching what was typed.
pub fn palette_matches(bindings: &[Binding], query: &str) -> Vec<Action> {
    let q = query.to_lowercase();
    keymap::palette(bindings)
        .into_iter()
        .filter(|a| a.name().contains(&q))
        .collect()
}
