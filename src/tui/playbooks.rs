//! The playbooks screen and a playbook's parameters as a form: targets and backups picked from
//! the inventory and the catalog (space or ←/→ go through them), components, times and text
//! typed. Enter binds the parameters — checked as `cfdr playbook run` checks them — and runs
//! the playbook on the run screen. Interrupted runs are offered when the console opens.

use std::collections::BTreeMap;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::keymap::Action;
use super::state::{App, Command, Screen};
use crate::playbook::model::{Param, ParamKind};
use crate::playbook::runner::{Run, Status};

/// A playbook as the screen lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Book {
    pub id: String,
    pub title: String,
    pub when: String,
    pub rto: std::time::Duration,
    pub rpo: std::time::Duration,
    /// `built in`, or its file (and whether it overrides a built-in).
    pub origin: String,
    pub params: Vec<Param>,
    pub steps: usize,
}

impl Book {
    pub fn of(e: &crate::playbook::library::Entry) -> Self {
        Self {
            id: e.playbook.id.clone(),
            title: e.playbook.title.clone(),
            when: e.playbook.when.clone(),
            rto: e.playbook.rto,
            rpo: e.playbook.rpo,
            origin: e.origin.to_string(),
            params: e.playbook.params.clone(),
            steps: e.playbook.steps.len(),
        }
    }
}

/// A playbook's parameters being filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Form {
    pub book: Book,
    pub values: Vec<String>,
    pub field: usize,
}

#[derive(Debug, Default)]
pub struct Books {
    pub list: Vec<Book>,
    pub sel: usize,
    /// Files that did not load, as `file:line:column: what`.
    pub errors: Vec<String>,
    pub form: Option<Form>,
    /// A run that was interrupted, offered at startup.
    pub interrupted: Option<Box<Run>>,
}

impl Books {
    pub fn loaded(&mut self, r: Result<Vec<Book>, String>, message: &mut Option<(bool, String)>) {
        match r {
            Ok(list) => {
                self.list = list;
                self.sel = self.sel.min(self.list.len().saturating_sub(1));
            }
            Err(e) => *message = Some((true, format!("cannot load the playbooks: {e}"))),
        }
    }
}

impl Form {
    /// Whether field `n` is picked from a list rather than typed.
    pub fn picked(&self, n: usize) -> bool {
        matches!(
            self.book.params.get(n).map(|p| p.kind),
            Some(ParamKind::Target | ParamKind::Backup)
        )
    }
}

impl App {
    /// `p`: the playbooks, read afresh.
    pub(super) fn playbooks_open(&mut self) -> Vec<Command> {
        if !self.go_to(Screen::Playbooks) {
            return Vec::new();
        }
        vec![Command::LoadPlaybooks]
    }

    /// The choices for parameter `p` of `form`: targets of its component, or the backups of
    /// the target its `of` parameter names (newest first, `latest` on top).
    pub fn choices(&self, form: &Form, p: &Param) -> Vec<String> {
        match p.kind {
            ParamKind::Target => {
                let mut names: Vec<String> = self
                    .inventory
                    .iter()
                    .filter(|r| p.component.as_deref().is_none_or(|c| r.kind == c))
                    .map(|r| r.name.clone())
                    .collect();
                names.dedup();
                names
            }
            ParamKind::Backup => {
                let of = p.of.as_ref().and_then(|of| {
                    let n = form.book.params.iter().position(|x| &x.name == of)?;
                    Some((
                        form.book.params[n].component.clone(),
                        form.values[n].clone(),
                    ))
                });
                let mut out = vec!["latest".to_string()];
                out.extend(
                    self.entries
                        .iter()
                        .rev()
                        .filter(|e| {
                            of.as_ref().is_none_or(|(c, name)| {
                                e.target == *name && c.as_deref().is_none_or(|c| e.kind == c)
                            })
                        })
                        .map(|e| e.id.clone()),
                );
                out
            }
            _ => Vec::new(),
        }
    }

    /// `enter` on a playbook: its parameters, defaults filled and lists at their first item.
    pub(super) fn params_open(&mut self) -> Vec<Command> {
        let Some(book) = self.books.list.get(self.books.sel).cloned() else {
            return Vec::new();
        };
        let mut form = Form {
            values: book
                .params
                .iter()
                .map(|p| p.default.clone().unwrap_or_default())
                .collect(),
            book,
            field: 0,
        };
        for n in 0..form.book.params.len() {
            let p = form.book.params[n].clone();
            if form.values[n].is_empty()
                && let Some(first) = self.choices(&form, &p).into_iter().next()
            {
                form.values[n] = first;
            }
        }
        self.books.form = Some(form);
        self.stack.push(Screen::Params);
        Vec::new()
    }

    pub(super) fn params_move(&mut self, a: Action) {
        if let Some(f) = &mut self.books.form {
            let last = f.book.params.len().saturating_sub(1);
            f.field = match a {
                Action::Up => f.field.saturating_sub(1),
                Action::Down if f.field == last => 0,
                Action::Down => f.field + 1,
                _ => f.field,
            };
        }
    }

    /// Letters into a typed field; space and ←/→ through a picked one. `true` when taken.
    pub(super) fn params_key(&mut self, k: &KeyEvent) -> bool {
        if *self.screen() != Screen::Params || k.modifiers.contains(KeyModifiers::CONTROL) {
            return false;
        }
        let Some(form) = self.books.form.clone() else {
            return false;
        };
        let n = form.field;
        let Some(p) = form.book.params.get(n) else {
            return false;
        };
        if form.picked(n) {
            let choices = self.choices(&form, p);
            let at = choices.iter().position(|c| *c == form.values[n]);
            let next = match (k.code, at) {
                (KeyCode::Char(' ') | KeyCode::Right, Some(i)) => (i + 1) % choices.len(),
                (KeyCode::Left, Some(i)) => (i + choices.len() - 1) % choices.len(),
                (KeyCode::Char(' ') | KeyCode::Right | KeyCode::Left, None) => 0,
                _ => return false,
            };
            if let (Some(f), Some(v)) = (&mut self.books.form, choices.get(next)) {
                f.values[n] = v.clone();
                // A backup picked for another target no longer fits: back to `latest`.
                for (m, q) in f.book.params.iter().enumerate() {
                    if q.of.as_deref() == Some(p.name.as_str()) {
                        f.values[m] = "latest".into();
                    }
                }
            }
            return true;
        }
        let Some(f) = &mut self.books.form else {
            return false;
        };
        match k.code {
            KeyCode::Char(c) => f.values[n].push(c),
            KeyCode::Backspace => {
                f.values[n].pop();
            }
            _ => return false,
        }
        true
    }

    /// `enter` on the form: the playbook bound and run (the binding checks every value).
    pub(super) fn params_start(&mut self) -> Vec<Command> {
        if self.refuse_if_busy() {
            return Vec::new();
        }
        let Some(f) = &self.books.form else {
            return Vec::new();
        };
        let params: BTreeMap<String, String> = f
            .book
            .params
            .iter()
            .zip(&f.values)
            .filter(|(p, v)| !v.is_empty() || p.required())
            .map(|(p, v)| (p.name.clone(), v.trim().to_string()))
            .collect();
        let id = f.book.id.clone();
        let job = self.new_job(format!("playbook {id}"), None);
        self.guide_open(None);
        if let Some(g) = &mut self.guide {
            g.job = Some(job);
        }
        vec![Command::StartPlaybook { job, id, params }]
    }

    /// `enter` on the startup offer: the interrupted run on the run screen, going on.
    pub(super) fn resume_interrupted(&mut self) -> Vec<Command> {
        let run = self.books.interrupted.take();
        self.guide_open(run);
        self.guide_resume(None)
    }

    /// The runs read at startup: one that stopped or was cut off is offered.
    pub(super) fn runs_loaded(&mut self, r: Result<Vec<Run>, String>) {
        let Ok(runs) = r else {
            return;
        };
        if let Some(run) = runs
            .into_iter()
            .rev()
            .find(|r| matches!(r.status, Status::Running | Status::Stopped))
        {
            self.books.interrupted = Some(Box::new(run));
            if self.overlay.is_none() {
                self.overlay = Some(super::state::Overlay::Resume);
            }
        }
    }
}
