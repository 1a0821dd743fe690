//! A playbook run on screen: the runner's steps as they stand, what it said, and — when it
//! stopped for the operator — the question it asks: the target's name typed before a write,
//! a checklist ticked item by item, or an approver's name. The answer resumes the run from
//! its journal, so a step is never done twice (`cfdr playbook resume` does the same).

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::state::{App, Command, Screen};
use crate::playbook::runner::{Act, Run, Status};

/// What the operator gave the run, for the runner's questions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answers {
    /// The target's name, typed.
    pub confirmed: Option<String>,
    /// The checklist (by its text) whose every item was ticked.
    pub ticked: Option<String>,
    /// The approver's name, for a role.
    pub approved: Option<(String, String)>,
}

/// A question the run stopped for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    Confirm {
        target: String,
        typed: String,
    },
    Checklist {
        text: String,
        items: Vec<String>,
        ticked: Vec<bool>,
        at: usize,
    },
    Approve {
        role: String,
        typed: String,
    },
}

#[derive(Debug, Clone, Default)]
pub struct Guide {
    pub run: Option<Box<Run>>,
    pub log: Vec<String>,
    pub job: Option<u64>,
    pub ask: Option<Ask>,
    pub answers: Answers,
    pub scroll: u16,
}

impl Guide {
    /// The question a stopped run waits for, from the step it stopped at.
    pub fn question(run: &Run) -> Option<Ask> {
        if run.status != Status::Stopped {
            return None;
        }
        let (s, i) = run.cursor()?;
        match &run.steps[s].items[i].act {
            Act::Confirm { target } => Some(Ask::Confirm {
                target: target.name.clone(),
                typed: String::new(),
            }),
            Act::Manual { text, checklist } => Some(Ask::Checklist {
                text: text.clone(),
                items: checklist.clone(),
                ticked: vec![false; checklist.len()],
                at: 0,
            }),
            Act::Approve { role } => Some(Ask::Approve {
                role: role.clone(),
                typed: String::new(),
            }),
            _ => None,
        }
    }

    /// The run as the runner saved it; a stop for the operator brings up its question.
    pub fn saw(&mut self, run: Box<Run>) {
        if self.ask.is_none() {
            self.ask = Self::question(&run);
        }
        self.run = Some(run);
    }

    /// The answer to the question, when it is complete: the run can go on with it.
    fn answered(&self) -> Option<Answers> {
        let mut a = self.answers.clone();
        match self.ask.as_ref()? {
            Ask::Confirm { target, typed } if typed == target => a.confirmed = Some(typed.clone()),
            Ask::Checklist { text, ticked, .. } if ticked.iter().all(|t| *t) => {
                a.ticked = Some(text.clone())
            }
            Ask::Approve { role, typed } if !typed.trim().is_empty() => {
                a.approved = Some((role.clone(), typed.trim().to_string()))
            }
            _ => return None,
        }
        Some(a)
    }
}

impl App {
    /// Keys for the run screen's question: letters into a name, space ticks, enter answers.
    /// `true` when taken.
    pub(super) fn guide_key(&mut self, k: &KeyEvent) -> bool {
        if *self.screen() != Screen::Run || k.modifiers.contains(KeyModifiers::CONTROL) {
            return false;
        }
        let Some(ask) = self.guide.as_mut().and_then(|g| g.ask.as_mut()) else {
            return false;
        };
        match (ask, k.code) {
            (Ask::Confirm { typed, .. } | Ask::Approve { typed, .. }, KeyCode::Char(c)) => {
                typed.push(c)
            }
            (Ask::Confirm { typed, .. } | Ask::Approve { typed, .. }, KeyCode::Backspace) => {
                typed.pop();
            }
            (Ask::Checklist { ticked, at, .. }, KeyCode::Char(' ')) => {
                if let Some(t) = ticked.get_mut(*at) {
                    *t = !*t;
                }
            }
            (Ask::Checklist { ticked, at, .. }, KeyCode::Down | KeyCode::Char('j')) => {
                *at = (*at + 1).min(ticked.len().saturating_sub(1))
            }
            (Ask::Checklist { at, .. }, KeyCode::Up | KeyCode::Char('k')) => {
                *at = at.saturating_sub(1)
            }
            _ => return false,
        }
        true
    }

    /// `enter` on the run screen: the answer given, the run goes on from its journal.
    pub(super) fn guide_answer(&mut self) -> Vec<Command> {
        let Some(g) = &self.guide else {
            return Vec::new();
        };
        if g.ask.is_none() {
            return Vec::new();
        }
        match g.answered() {
            Some(answers) => self.guide_resume(Some(answers)),
            None => {
                self.message = Some((
                    false,
                    match &g.ask {
                        Some(Ask::Confirm { target, .. }) => {
                            format!(
                                "type `{target}` exactly; esc leaves the run stopped, nothing written"
                            )
                        }
                        Some(Ask::Checklist { .. }) => {
                            "tick every item (space) to go on; esc leaves the run stopped".into()
                        }
                        _ => "give the approver's name to go on".into(),
                    },
                ));
                Vec::new()
            }
        }
    }

    /// `t` or an answer: the run again from where it stopped or failed.
    pub(super) fn guide_resume(&mut self, answers: Option<Answers>) -> Vec<Command> {
        if self.refuse_if_busy() {
            return Vec::new();
        }
        let Some(g) = &self.guide else {
            return Vec::new();
        };
        let Some(run) = g.run.as_ref().filter(|r| r.status != Status::Done) else {
            self.message = Some((false, "the run is done: nothing to go on with".into()));
            return Vec::new();
        };
        let id = run.id.clone();
        let answers = answers.unwrap_or_else(|| g.answers.clone());
        let job = self.new_job(format!("run {id}"), None);
        let g = self.guide.as_mut().expect("checked above");
        g.job = Some(job);
        g.ask = None;
        g.answers = answers.clone();
        vec![Command::ResumeRun {
            job,
            run: id,
            answers,
        }]
    }

    /// Opens the run screen on `run` (an interrupted one offered at startup, say).
    pub(super) fn guide_open(&mut self, run: Option<Box<Run>>) {
        let mut g = Guide::default();
        if let Some(r) = run {
            g.saw(r);
        }
        self.guide = Some(g);
        self.recovery = None;
        self.stack.truncate(1);
        self.stack.push(Screen::Run);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playbook::runner::{self, Event, Step, Target};

    fn run(act: Act) -> Run {
        let mut r = crate::playbook::recover::run(
            &crate::repo::catalog::Entry {
                id: "b".into(),
                kind: "d1".into(),
                target: "shop".into(),
                target_id: String::new(),
                trigger: String::new(),
                method: String::new(),
                started: String::new(),
                finished: String::new(),
                plaintext_size: 0,
                stored_size: 0,
                artifacts: 0,
                warnings: 0,
                dir: String::new(),
            },
            &crate::playbook::recover::Choice {
                into: crate::playbook::recover::Dest::Same,
                tables: Vec::new(),
                prefix: None,
                mode: Default::default(),
            },
            (60, 60),
            time::macros::datetime!(2026-12-04 12:00 UTC),
        );
        r.steps = vec![Step {
            title: "ask".into(),
            kind: act.kind().into(),
            items: vec![runner::item(act)],
        }];
        r.handle(Event::Go { at_ms: 0 });
        r.handle(Event::Stop {
            at_ms: 1,
            why: "waiting".into(),
        });
        r
    }

    #[test]
    fn a_stopped_run_asks_its_question_and_only_a_full_answer_goes_on() {
        let mut g = Guide::default();
        g.saw(Box::new(run(Act::Manual {
            text: "Check the app".into(),
            checklist: vec!["health".into(), "errors".into()],
        })));
        assert!(g.answered().is_none(), "nothing ticked");
        if let Some(Ask::Checklist { ticked, .. }) = &mut g.ask {
            ticked[0] = true;
            ticked[1] = true;
        }
        assert_eq!(
            g.answered().unwrap().ticked.as_deref(),
            Some("Check the app")
        );
        let mut g = Guide::default();
        g.saw(Box::new(run(Act::Confirm {
            target: Target {
                kind: "d1".into(),
                name: "shop".into(),
            },
        })));
        if let Some(Ask::Confirm { typed, .. }) = &mut g.ask {
            typed.push_str("sho");
        }
        assert!(g.answered().is_none());
        if let Some(Ask::Confirm { typed, .. }) = &mut g.ask {
            typed.push('p');
        }
        assert_eq!(g.answered().unwrap().confirmed.as_deref(), Some("shop"));
    }
}
