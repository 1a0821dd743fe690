//! Every key the console knows, one table per layer, and the actions they stand for. The footer,
//! the help overlay and the command palette are all generated from these tables, so they never
//! drift from what the keys really do.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Something the operator asked for. `update` turns it into state changes and commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Quit,
    Help,
    Palette,
    Back,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Open,
    Inventory,
    AllBackups,
    Filter,
    Sort,
    Verify,
    BackupNow,
    Cancel,
    Refresh,
    Restore,
    Proceed,
    NextField,
    Toggle,
    Undo,
    Retry,
    Audit,
    Status,
    Playbooks,
    Drills,
    NewDrill,
    Workers,
    Rollback,
}

impl Action {
    /// What the palette and help call it.
    pub fn name(self) -> &'static str {
        match self {
            Action::Quit => "quit",
            Action::Help => "help",
            Action::Palette => "command palette",
            Action::Back => "back",
            Action::Up => "up",
            Action::Down => "down",
            Action::PageUp => "page up",
            Action::PageDown => "page down",
            Action::Top => "first row",
            Action::Bottom => "last row",
            Action::Open => "open",
            Action::Inventory => "inventory",
            Action::AllBackups => "all backups",
            Action::Filter => "filter",
            Action::Sort => "sort by time / size / kind",
            Action::Verify => "verify backup (full)",
            Action::BackupNow => "back up target now",
            Action::Cancel => "cancel running job",
            Action::Refresh => "reload the repository",
            Action::Restore => "restore: plan, confirm, run, verify",
            Action::Proceed => "go on: plan, then confirm, then run",
            Action::NextField => "next field",
            Action::Toggle => "next choice: same / another / scratch target, mode",
            Action::Undo => "undo the restore (its snapshot back)",
            Action::Retry => "retry from the failed step",
            Action::Audit => "the audit trail",
            Action::Status => "status: each target against its RPO",
            Action::Playbooks => "playbooks: run one, step by step",
            Action::Drills => "drills: their reports, a new one",
            Action::NewDrill => "a new drill (components, scenario)",
            Action::Workers => "Workers: what is live, roll one back",
            Action::Rollback => "roll the Worker back: plan, confirm, deploy, verify",
        }
    }
}

impl Action {
    /// Whether the action writes (to the repository or to Cloudflare) wherever it is bound:
    /// what read-only mode turns off. (`enter` writes only where it runs something: see
    /// `App::disabled`.)
    pub fn writes(self) -> bool {
        matches!(
            self,
            Action::Verify
                | Action::BackupNow
                | Action::Restore
                | Action::NewDrill
                | Action::Undo
                | Action::Retry
                | Action::Rollback
        )
    }

    /// What the footer calls it, where room is short.
    pub fn short(self) -> &'static str {
        match self {
            Action::Palette => "commands",
            Action::Sort => "sort",
            Action::Verify => "verify",
            Action::BackupNow => "back up",
            Action::AllBackups => "all backups",
            Action::Restore => "restore",
            Action::Proceed => "go on",
            Action::Toggle => "choose",
            Action::Undo => "undo",
            Action::Retry => "retry",
            Action::Cancel => "stop",
            Action::NewDrill => "new drill",
            Action::Rollback => "roll back",
            other => other.name(),
        }
    }
}

/// A key, written as the help shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub ctrl: bool,
}

impl Key {
    const fn ch(c: char) -> Self {
        Self {
            code: KeyCode::Char(c),
            ctrl: false,
        }
    }

    const fn code(code: KeyCode) -> Self {
        Self { code, ctrl: false }
    }

    pub fn label(&self) -> String {
        let base = match self.code {
            KeyCode::Char(' ') => "space".to_string(),
            KeyCode::Char(c) => c.to_string(),
            KeyCode::Enter => "enter".into(),
            KeyCode::Esc => "esc".into(),
            KeyCode::Up => "↑".into(),
            KeyCode::Down => "↓".into(),
            KeyCode::PageUp => "pgup".into(),
            KeyCode::PageDown => "pgdn".into(),
            KeyCode::Home => "home".into(),
            KeyCode::End => "end".into(),
            KeyCode::Tab => "tab".into(),
            KeyCode::Backspace => "bksp".into(),
            other => format!("{other:?}").to_lowercase(),
        };
        if self.ctrl {
            format!("ctrl-{base}")
        } else {
            base
        }
    }

    fn matches(&self, e: &KeyEvent) -> bool {
        let ctrl = e.modifiers.contains(KeyModifiers::CONTROL);
        match (self.code, e.code) {
            (KeyCode::Char(a), KeyCode::Char(b)) => a == b && self.ctrl == ctrl,
            (a, b) => a == b && self.ctrl == ctrl,
        }
    }
}

/// One binding: keys (the first is the one the footer shows), the action, and whether the
/// footer shows it at all.
pub struct Binding {
    pub keys: &'static [Key],
    pub action: Action,
    pub footer: bool,
}

const fn b(keys: &'static [Key], action: Action, footer: bool) -> Binding {
    Binding {
        keys,
        action,
        footer,
    }
}

/// Keys that work on every screen.
pub const GLOBAL: &[Binding] = &[
    b(&[Key::ch('?')], Action::Help, true),
    b(&[Key::ch(':')], Action::Palette, true),
    b(&[Key::ch('q')], Action::Quit, true),
    b(
        &[Key {
            code: KeyCode::Char('c'),
            ctrl: true,
        }],
        Action::Quit,
        false,
    ),
    b(&[Key::code(KeyCode::Up), Key::ch('k')], Action::Up, false),
    b(
        &[Key::code(KeyCode::Down), Key::ch('j')],
        Action::Down,
        false,
    ),
    b(
        &[
            Key::code(KeyCode::PageUp),
            Key {
                code: KeyCode::Char('u'),
                ctrl: true,
            },
        ],
        Action::PageUp,
        false,
    ),
    b(
        &[
            Key::code(KeyCode::PageDown),
            Key {
                code: KeyCode::Char('d'),
                ctrl: true,
            },
        ],
        Action::PageDown,
        false,
    ),
    b(
        &[Key::code(KeyCode::Home), Key::ch('g')],
        Action::Top,
        false,
    ),
    b(
        &[Key::code(KeyCode::End), Key::ch('G')],
        Action::Bottom,
        false,
    ),
    b(&[Key::ch('1')], Action::Inventory, false),
    b(&[Key::ch('2')], Action::AllBackups, false),
    b(&[Key::ch('3')], Action::Audit, false),
    b(&[Key::ch('4')], Action::Status, false),
    b(&[Key::ch('p')], Action::Playbooks, false),
    b(&[Key::ch('d')], Action::Drills, false),
    b(&[Key::ch('w')], Action::Workers, false),
    b(&[Key::ch('x')], Action::Cancel, false),
    b(&[Key::ch('r')], Action::Refresh, false),
    b(
        &[Key::code(KeyCode::Esc), Key::code(KeyCode::Backspace)],
        Action::Back,
        false,
    ),
];

/// The inventory: targets grouped by kind.
pub const INVENTORY: &[Binding] = &[
    b(
        &[Key::code(KeyCode::Enter), Key::ch('l')],
        Action::Open,
        true,
    ),
    b(&[Key::ch('R')], Action::Restore, true),
    b(&[Key::ch('b')], Action::BackupNow, true),
    b(&[Key::ch('a')], Action::AllBackups, true),
];

/// A list of backups.
pub const BACKUPS: &[Binding] = &[
    b(
        &[Key::code(KeyCode::Enter), Key::ch('l')],
        Action::Open,
        true,
    ),
    b(&[Key::ch('/')], Action::Filter, true),
    b(&[Key::ch('s')], Action::Sort, true),
    b(&[Key::ch('R')], Action::Restore, true),
    b(&[Key::ch('v')], Action::Verify, true),
    b(&[Key::ch('b')], Action::BackupNow, true),
];

/// One backup's manifest.
pub const DETAIL: &[Binding] = &[
    b(&[Key::ch('R')], Action::Restore, true),
    b(&[Key::ch('v')], Action::Verify, true),
    b(&[Key::ch('b')], Action::BackupNow, true),
    b(&[Key::code(KeyCode::Esc)], Action::Back, true),
];

/// The audit trail: filtered with `/`.
pub const AUDIT: &[Binding] = &[
    b(&[Key::ch('/')], Action::Filter, true),
    b(&[Key::code(KeyCode::Esc)], Action::Back, true),
];

/// The status: each target against its RPO, its last drill and failure.
pub const STATUS: &[Binding] = &[b(&[Key::code(KeyCode::Esc)], Action::Back, true)];

/// The playbooks: enter opens one's parameters.
pub const PLAYBOOKS: &[Binding] = &[
    b(&[Key::code(KeyCode::Enter)], Action::Open, true),
    b(&[Key::code(KeyCode::Esc)], Action::Back, true),
];

/// The drills: enter opens a report, n starts a new drill (enter runs it).
pub const DRILLS: &[Binding] = &[
    b(&[Key::code(KeyCode::Enter)], Action::Open, true),
    b(&[Key::ch('n')], Action::NewDrill, true),
    b(&[Key::code(KeyCode::Esc)], Action::Back, true),
];

/// The Workers: the one under the cursor shows its history and rollback plan; R rolls it back.
pub const WORKERS: &[Binding] = &[
    b(&[Key::ch('R')], Action::Rollback, true),
    b(&[Key::code(KeyCode::Esc)], Action::Back, true),
];

/// A playbook's parameters: letters go into text fields, space picks from a list.
pub const PARAMS: &[Binding] = &[
    b(&[Key::code(KeyCode::Enter)], Action::Proceed, true),
    b(&[Key::code(KeyCode::Tab)], Action::NextField, true),
    b(&[Key::code(KeyCode::Esc)], Action::Back, true),
];

/// A playbook run: enter answers what it asks, t goes on after a failure or a stop.
pub const RUN: &[Binding] = &[
    b(&[Key::code(KeyCode::Enter)], Action::Proceed, true),
    b(&[Key::ch('t')], Action::Retry, true),
    b(&[Key::ch('x')], Action::Cancel, true),
    b(&[Key::code(KeyCode::Esc)], Action::Back, true),
];

/// The restore form: where to, which part. Letters go into the text fields.
pub const RESTORE_FORM: &[Binding] = &[
    b(&[Key::code(KeyCode::Enter)], Action::Proceed, true),
    b(&[Key::code(KeyCode::Tab)], Action::NextField, true),
    b(
        &[Key::ch(' '), Key::code(KeyCode::Right)],
        Action::Toggle,
        true,
    ),
    b(&[Key::code(KeyCode::Esc)], Action::Back, true),
];

/// The plan and the typed confirmation: enter goes on, esc backs out with nothing written.
pub const RESTORE_PLAN: &[Binding] = &[
    b(&[Key::code(KeyCode::Enter)], Action::Proceed, true),
    b(&[Key::code(KeyCode::Esc)], Action::Back, true),
];

/// The run: its steps live, then undo or retry.
pub const RESTORE_RUN: &[Binding] = &[
    b(&[Key::ch('u')], Action::Undo, true),
    b(&[Key::ch('t')], Action::Retry, true),
    b(&[Key::ch('x')], Action::Cancel, true),
    b(&[Key::code(KeyCode::Esc)], Action::Back, true),
];

/// The action a key stands for on a screen (the screen's table first, then the global one).
pub fn lookup(screen: &[Binding], e: &KeyEvent) -> Option<Action> {
    screen
        .iter()
        .chain(GLOBAL)
        .find(|b| b.keys.iter().any(|k| k.matches(e)))
        .map(|b| b.action)
}

/// `key action` pairs for the footer.
pub fn footer(screen: &[Binding]) -> Vec<(String, Action)> {
    screen
        .iter()
        .chain(GLOBAL)
        .filter(|b| b.footer)
        .map(|b| (b.keys[0].label(), b.action))
        .collect()
}

/// Every binding of a screen, for the help overlay: (keys, action).
pub fn help(screen: &[Binding]) -> Vec<(String, Action)> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for b in screen.iter().chain(GLOBAL) {
        if seen.contains(&b.action) {
            continue;
        }
        seen.push(b.action);
        let mut keys: Vec<String> = Vec::new();
        for k in screen
            .iter()
            .chain(GLOBAL)
            .filter(|x| x.action == b.action)
            .flat_map(|x| x.keys.iter().map(Key::label))
        {
            // A screen may bind a key the global table binds to the same action (esc).
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        out.push((keys.join(" "), b.action));
    }
    out
}

/// Moving the cursor: keys, not commands — the palette leaves them out.
pub fn motion(a: Action) -> bool {
    matches!(
        a,
        Action::Up
            | Action::Down
            | Action::PageUp
            | Action::PageDown
            | Action::Top
            | Action::Bottom
            | Action::Palette
    )
}

/// Every action of a screen once, for the command palette (motion keys aside).
pub fn palette(screen: &[Binding]) -> Vec<Action> {
    let mut out: Vec<Action> = Vec::new();
    for b in screen.iter().chain(GLOBAL) {
        if !motion(b.action) && !out.contains(&b.action) {
            out.push(b.action);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    #[test]
    fn screen_keys_come_before_global_ones_and_vim_keys_work() {
        assert_eq!(
            lookup(DETAIL, &key(KeyCode::Char('v'))),
            Some(Action::Verify)
        );
        assert_eq!(
            lookup(INVENTORY, &key(KeyCode::Char('j'))),
            Some(Action::Down)
        );
        assert_eq!(lookup(INVENTORY, &key(KeyCode::Char('z'))), None);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(lookup(BACKUPS, &ctrl_c), Some(Action::Quit));
        assert_eq!(
            lookup(BACKUPS, &key(KeyCode::Char('c'))),
            None,
            "c alone is not ctrl-c"
        );
    }

    #[test]
    fn help_lists_every_action_of_a_screen_once_with_all_its_keys() {
        let named = |screen| -> Vec<(String, &'static str)> {
            help(screen)
                .into_iter()
                .map(|(k, a)| (k, a.name()))
                .collect()
        };
        let h = named(BACKUPS);
        let names: Vec<&str> = h.iter().map(|(_, n)| *n).collect();
        let mut unique = names.clone();
        unique.dedup();
        assert_eq!(names.len(), unique.len());
        assert!(h.contains(&("↓ j".to_string(), "down")));
        assert!(h.contains(&("v".to_string(), "verify backup (full)")));
        assert_eq!(palette(BACKUPS).len(), h.len() - 7, "no motion keys");
        assert!(named(AUDIT).contains(&("3".to_string(), "the audit trail")));
        assert!(named(DETAIL).contains(&("esc bksp".to_string(), "back")));
    }
}
