//! The drills screen: the history of drills (outcome, RTO and RPO against target), a drill's
//! report, and a new drill — components toggled, a scenario picked — run on the run screen
//! like any playbook run, into scratch targets that are removed at its end.

use crossterm::event::{KeyCode, KeyEvent};

use super::state::{App, Command, Screen};

/// A drill as the history lists it: its report's JSON (MACs checked) and its Markdown.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub json: serde_json::Value,
    pub markdown: String,
}

/// The scenarios the console starts (the rest need a time, tables or a profile: the command
/// line has them).
pub const SCENARIOS: [&str; 2] = ["full", "validation"];

/// The components a drill can cover.
pub const COMPONENTS: [&str; 4] = ["d1", "kv", "r2", "sqlite"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDrill {
    /// Which of `COMPONENTS` are in.
    pub on: [bool; 4],
    pub scenario: usize,
    /// The field under the cursor: a component (0–3) or the scenario (4).
    pub at: usize,
}

impl Default for NewDrill {
    fn default() -> Self {
        Self {
            on: [true, true, true, false],
            scenario: 0,
            at: 0,
        }
    }
}

impl NewDrill {
    pub fn components(&self) -> Vec<String> {
        COMPONENTS
            .iter()
            .zip(self.on)
            .filter(|(_, on)| *on)
            .map(|(c, _)| c.to_string())
            .collect()
    }
}

#[derive(Debug, Default)]
pub struct Drills {
    /// Oldest first; `None` until read.
    pub list: Option<Vec<Report>>,
    /// The selected row (0 is the newest).
    pub sel: usize,
    /// The report open, by its place in `list`.
    pub open: Option<usize>,
    pub scroll: u16,
    pub new: Option<NewDrill>,
}

impl Drills {
    /// The reports, newest first.
    pub fn newest_first(&self) -> Vec<&Report> {
        self.list.iter().flatten().rev().collect()
    }
}

impl App {
    /// `d`: the drills, read afresh.
    pub(super) fn drills_open(&mut self) -> Vec<Command> {
        if !self.go_to(Screen::Drills) {
            return Vec::new();
        }
        self.drills.open = None;
        self.drills.new = None;
        vec![Command::LoadDrills]
    }

    /// `enter` on the drills: the selected report; on the new-drill form: the drill runs.
    pub(super) fn drills_enter(&mut self) -> Vec<Command> {
        if let Some(n) = self.drills.new.clone() {
            let components = n.components();
            if components.is_empty() {
                self.message = Some((true, "pick at least one component (space)".into()));
                return Vec::new();
            }
            if self.refuse_if_busy() {
                return Vec::new();
            }
            let scenario = SCENARIOS[n.scenario].to_string();
            let job = self.new_job(format!("{scenario} drill"), None);
            self.drills.new = None;
            self.guide_open(None);
            if let Some(g) = &mut self.guide {
                g.job = Some(job);
            }
            return vec![Command::StartDrill {
                job,
                components,
                scenario,
            }];
        }
        let count = self.drills.list.as_ref().map_or(0, Vec::len);
        if self.drills.sel < count {
            self.drills.open = Some(count - 1 - self.drills.sel);
            self.drills.scroll = 0;
            self.stack.push(Screen::DrillReport);
        }
        Vec::new()
    }

    /// `n`: the new-drill form.
    pub(super) fn drills_new(&mut self) {
        if self.info.read_only {
            self.message = Some((
                true,
                "the console is read-only (--read-only): a drill creates scratch targets".into(),
            ));
            return;
        }
        self.drills.new = Some(NewDrill::default());
    }

    /// Keys of the new-drill form: ↑↓ fields, space toggles or cycles. `true` when taken.
    pub(super) fn drills_key(&mut self, k: &KeyEvent) -> bool {
        if *self.screen() != Screen::Drills {
            return false;
        }
        let Some(n) = &mut self.drills.new else {
            return false;
        };
        match k.code {
            KeyCode::Char(' ') | KeyCode::Left | KeyCode::Right => {
                if n.at < COMPONENTS.len() {
                    n.on[n.at] = !n.on[n.at];
                } else {
                    n.scenario = (n.scenario + 1) % SCENARIOS.len();
                }
            }
            KeyCode::Down | KeyCode::Char('j') | KeyCode::Tab => n.at = (n.at + 1) % 5,
            KeyCode::Up | KeyCode::Char('k') => n.at = (n.at + 4) % 5,
            KeyCode::Esc => self.drills.new = None,
            _ => return false,
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_drill_covers_the_components_ticked() {
        let mut n = NewDrill::default();
        assert_eq!(n.components(), ["d1", "kv", "r2"]);
        n.on[0] = false;
        n.on[3] = true;
        assert_eq!(n.components(), ["kv", "r2", "sqlite"]);
    }
}
