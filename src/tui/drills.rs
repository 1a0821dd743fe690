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

/// The scenarios the console starts (a cross-account drill restores into another account's
/// targets: start the console with `--profile`, or use `cfdr drill --profile`).
pub const SCENARIOS: [&str; 4] = ["full", "partial", "point-in-time", "validation"];

/// The components a drill can cover.
pub const COMPONENTS: [&str; 4] = ["d1", "kv", "r2", "sqlite"];

/// A text field some scenarios ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Text {
    /// Partial: D1 tables, comma-separated.
    Tables,
    /// Partial: a KV key / R2 object prefix.
    Prefix,
    /// Point in time: the newest backup at or before it.
    At,
}

impl Text {
    pub fn label(self) -> &'static str {
        match self {
            Text::Tables => "tables",
            Text::Prefix => "prefix",
            Text::At => "at",
        }
    }

    pub fn help(self) -> &'static str {
        match self {
            Text::Tables => "D1: only these tables, comma-separated",
            Text::Prefix => "KV and R2: only keys under it",
            Text::At => "RFC 3339, Unix seconds, or how long ago (2d)",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDrill {
    /// Which of `COMPONENTS` are in.
    pub on: [bool; 4],
    pub scenario: usize,
    /// The field under the cursor: a component (0–3), the scenario (4), then the scenario's
    /// text fields (5…).
    pub at: usize,
    pub tables: String,
    pub prefix: String,
    pub when: String,
}

impl Default for NewDrill {
    fn default() -> Self {
        Self {
            on: [true, true, true, false],
            scenario: 0,
            at: 0,
            tables: String::new(),
            prefix: String::new(),
            when: String::new(),
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

    pub fn scenario(&self) -> &'static str {
        SCENARIOS[self.scenario]
    }

    /// The text fields the scenario asks for, in order.
    pub fn texts(&self) -> &'static [Text] {
        match self.scenario() {
            "partial" => &[Text::Tables, Text::Prefix],
            "point-in-time" => &[Text::At],
            _ => &[],
        }
    }

    /// How many fields the form has now.
    pub fn fields(&self) -> usize {
        COMPONENTS.len() + 1 + self.texts().len()
    }

    /// The text field under the cursor, if it is one.
    pub fn text_at(&self) -> Option<Text> {
        self.at
            .checked_sub(COMPONENTS.len() + 1)
            .and_then(|i| self.texts().get(i).copied())
    }

    pub fn text(&self, t: Text) -> &str {
        match t {
            Text::Tables => &self.tables,
            Text::Prefix => &self.prefix,
            Text::At => &self.when,
        }
    }

    fn text_mut(&mut self, t: Text) -> &mut String {
        match t {
            Text::Tables => &mut self.tables,
            Text::Prefix => &mut self.prefix,
            Text::At => &mut self.when,
        }
    }

    /// The drill the form asks for, or what is wrong with it (said before anything runs).
    pub fn start(&self) -> Result<StartDrill, String> {
        let components = self.components();
        if components.is_empty() {
            return Err("pick at least one component (space)".into());
        }
        let tables: Vec<String> = self
            .tables
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        let prefix = Some(self.prefix.trim().to_string()).filter(|p| !p.is_empty());
        let mut start = StartDrill {
            components,
            scenario: self.scenario().to_string(),
            tables: Vec::new(),
            prefix: None,
            at: None,
        };
        match self.scenario() {
            "partial" if tables.is_empty() && prefix.is_none() => {
                return Err(
                    "a partial drill restores part of each target: give tables (D1) and/or a prefix (KV, R2)"
                        .into(),
                );
            }
            "partial" => (start.tables, start.prefix) = (tables, prefix),
            "point-in-time" => {
                start.at = Some(crate::text::parse_at(&self.when).map_err(|e| {
                    format!(
                        "at: {e}; a point-in-time drill restores the newest backup at or before it"
                    )
                })?);
            }
            _ => {}
        }
        Ok(start)
    }
}

/// A drill as the form asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartDrill {
    pub components: Vec<String>,
    pub scenario: String,
    pub tables: Vec<String>,
    pub prefix: Option<String>,
    pub at: Option<time::OffsetDateTime>,
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
    /// Each target's last drill (kind, name), from `list`: the inventory's DRILL column.
    pub last: std::collections::BTreeMap<(String, String), crate::ops::status::Drill>,
    /// The drill job running from this screen: its end reads the drills again.
    pub job: Option<u64>,
}

impl Drills {
    /// The reports as read (oldest first): each target's last drill worked out again.
    pub fn loaded(&mut self, list: Vec<Report>) {
        let json: Vec<serde_json::Value> = list.iter().map(|r| r.json.clone()).collect();
        self.last = crate::ops::status::last_drills(&json);
        self.sel = self.sel.min(list.len().saturating_sub(1));
        self.list = Some(list);
    }

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
            let drill = match n.start() {
                Ok(d) => d,
                Err(e) => {
                    self.message = Some((true, e));
                    return Vec::new();
                }
            };
            if self.refuse_if_busy() {
                return Vec::new();
            }
            let job = self.new_job(format!("{} drill", drill.scenario), None);
            self.drills.new = None;
            self.drills.job = Some(job);
            self.guide_open(None);
            if let Some(g) = &mut self.guide {
                g.job = Some(job);
            }
            return vec![Command::StartDrill { job, drill }];
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
        let fields = n.fields();
        match (k.code, n.text_at()) {
            (KeyCode::Char(c), Some(t)) => {
                n.text_mut(t).push(c);
                // What was wrong with the last value is not about this one.
                self.message = None;
            }
            (KeyCode::Backspace, Some(t)) => {
                n.text_mut(t).pop();
                self.message = None;
            }
            (KeyCode::Char(' ') | KeyCode::Left | KeyCode::Right, None) => {
                if n.at < COMPONENTS.len() {
                    n.on[n.at] = !n.on[n.at];
                } else {
                    let step = if k.code == KeyCode::Left {
                        SCENARIOS.len() - 1
                    } else {
                        1
                    };
                    n.scenario = (n.scenario + step) % SCENARIOS.len();
                }
            }
            (KeyCode::Down | KeyCode::Tab, _) | (KeyCode::Char('j'), None) => {
                n.at = (n.at + 1) % fields
            }
            (KeyCode::Up | KeyCode::BackTab, _) | (KeyCode::Char('k'), None) => {
                n.at = (n.at + fields - 1) % fields
            }
            (KeyCode::Esc, _) => self.drills.new = None,
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

    #[test]
    fn a_partial_or_point_in_time_drill_asks_for_its_part_or_time_first() {
        let mut n = NewDrill {
            scenario: 1,
            ..Default::default()
        };
        assert_eq!(n.texts(), [Text::Tables, Text::Prefix]);
        assert!(n.start().unwrap_err().contains("give tables"));
        n.prefix = "user:".into();
        n.tables = " users, ,orders".into();
        let d = n.start().unwrap();
        assert_eq!(
            (d.tables, d.prefix.as_deref()),
            (
                vec!["users".to_string(), "orders".to_string()],
                Some("user:")
            )
        );
        n.scenario = 2;
        assert_eq!(n.fields(), 6);
        n.at = 5;
        assert_eq!(n.text_at(), Some(Text::At));
        n.when = "yesterday-ish".into();
        assert!(
            n.start()
                .unwrap_err()
                .contains("`yesterday-ish` is not a time")
        );
        n.when = "2d".into();
        assert!(n.start().unwrap().at.is_some());
        n.on = [false; 4];
        assert!(n.start().unwrap_err().contains("at least one component"));
    }
}
