//! Drawing: a pure function of the state. Every screen is a header line, a body, a line for the
//! running job or the last message, a status bar (account, repository, read-only marker, API
//! budget gauge) and a footer of keys generated from the keymap. Overlays (help, palette) draw
//! on top. Anything from a zero-size area up is drawn without panicking.

mod backups;
mod detail;
mod drills;
mod inventory;
mod overlay;
mod playbooks;
mod records;
mod restore;
mod workers;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::keymap;
use super::state::{App, Screen};

/// Colours, or none at all under `NO_COLOR` (then only bold and reverse video mark things).
#[derive(Debug, Clone, Copy)]
pub struct Theme {
    color: bool,
}

impl Theme {
    pub fn fg(self, c: Color) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }

    pub fn bold(self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }

    pub fn selected(self) -> Style {
        if self.color {
            Style::new().bg(Color::Blue).fg(Color::White)
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        }
    }

    pub fn dim(self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new()
        }
    }

    pub fn bad(self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }
}

pub fn render(app: &App, frame: &mut Frame) {
    let area = frame.area();
    if area.width == 0 || area.height == 0 {
        return;
    }
    let theme = Theme { color: app.color };
    let [header, body, job, status, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(title(app, theme)), header);
    match app.screen() {
        Screen::Inventory => inventory::render(app, theme, frame, body),
        Screen::Backups(t) => backups::render(app, theme, t.as_ref(), frame, body),
        Screen::Detail(id) => detail::render(app, theme, id, frame, body),
        Screen::Restore => restore::render(app, theme, frame, body),
        Screen::Audit => records::audit(app, theme, frame, body),
        Screen::Status => records::status(app, theme, frame, body),
        Screen::Playbooks => playbooks::list(app, theme, frame, body),
        Screen::Params => playbooks::params(app, theme, frame, body),
        Screen::Run => playbooks::run(app, theme, frame, body),
        Screen::Drills => drills::list(app, theme, frame, body),
        Screen::DrillReport => drills::report(app, theme, frame, body),
        Screen::Workers => workers::render(app, theme, frame, body),
    }
    frame.render_widget(Paragraph::new(job_line(app, theme, job.width)), job);
    frame.render_widget(
        Paragraph::new(status_line(app, theme, status.width)),
        status,
    );
    frame.render_widget(
        Paragraph::new(footer_line(app, theme, footer.width)),
        footer,
    );
    match &app.overlay {
        Some(super::state::Overlay::Resume) => playbooks::resume(app, theme, frame, body),
        Some(o) => overlay::render(app, theme, o, frame, body.union(job)),
        None => {}
    }
}

fn title(app: &App, theme: Theme) -> Line<'static> {
    let where_ = match app.screen() {
        Screen::Inventory => "inventory".to_string(),
        Screen::Backups(None) => "backups".to_string(),
        Screen::Backups(Some((k, n))) => format!("backups › {k} {n}"),
        Screen::Detail(id) => format!("backup › {id}"),
        Screen::Audit => "audit trail".to_string(),
        Screen::Status => "status".to_string(),
        Screen::Playbooks => "playbooks".to_string(),
        Screen::Drills => "drills".to_string(),
        Screen::DrillReport => "drills › report".to_string(),
        Screen::Workers => "workers".to_string(),
        Screen::Params => match &app.books.form {
            Some(f) => format!("playbooks › {}", f.book.id),
            None => "playbooks".to_string(),
        },
        Screen::Run => match app.guide.as_ref().and_then(|g| g.run.as_ref()) {
            Some(r) => format!("run › {}", r.playbook),
            None => "run".to_string(),
        },
        Screen::Restore => match &app.recovery {
            Some(r) => format!("restore › {} `{}`", r.backup.kind, r.backup.target),
            None => "restore".to_string(),
        },
    };
    let mut spans = vec![
        Span::styled(" cfdr ", theme.selected().add_modifier(Modifier::BOLD)),
        Span::raw(" "),
        Span::styled(where_, theme.bold()),
    ];
    if app.loading {
        spans.push(Span::styled("  loading…", theme.dim()));
    }
    Line::from(spans)
}

/// A progress bar of `width` cells for a share done (or a sweep when unknown).
pub fn bar(ratio: Option<f64>, width: usize) -> String {
    match ratio {
        Some(r) => {
            let full = ((r.clamp(0.0, 1.0) * width as f64).round() as usize).min(width);
            format!("{}{}", "█".repeat(full), "░".repeat(width - full))
        }
        None => "·".repeat(width),
    }
}

fn job_line(app: &App, theme: Theme, width: u16) -> Line<'static> {
    if let Some(j) = app.running() {
        let mut spans = vec![Span::styled(format!(" {} ", j.title), theme.bold())];
        if let Some(p) = &j.last {
            spans.push(Span::styled(bar(p.ratio(), 16), theme.fg(Color::Cyan)));
            spans.push(Span::raw(format!(" {}", p.describe())));
        } else {
            spans.push(Span::raw("starting…"));
        }
        spans.push(Span::styled("  (x cancels)", theme.dim()));
        return Line::from(spans);
    }
    match &app.message {
        Some((true, m)) => Line::from(Span::styled(format!(" {}", clip(m, width)), theme.bad())),
        Some((false, m)) => Line::from(Span::raw(format!(" {}", clip(m, width)))),
        None => Line::default(),
    }
}

pub fn clip(s: &str, width: u16) -> String {
    let w = usize::from(width).saturating_sub(2);
    if s.chars().count() <= w {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(w.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

fn status_line(app: &App, theme: Theme, width: u16) -> Line<'static> {
    let account = match app.info.account.as_deref() {
        Some(a) if a.len() > 14 => format!("{}…{}", &a[..8], &a[a.len() - 4..]),
        Some(a) => a.to_string(),
        None => "-".into(),
    };
    let mut left = format!(" account {account} │ repo {}", app.info.repo);
    let ro = if app.info.read_only {
        " │ READ-ONLY"
    } else {
        ""
    };
    let gauge = match &app.budget {
        Some(b) => {
            let free = b.server_remaining.unwrap_or(b.available).min(b.limit);
            let ratio = f64::from(free) / f64::from(b.limit.max(1));
            (
                format!("API {} {}/{} ", bar(Some(ratio), 8), free, b.limit),
                if ratio < 0.1 {
                    theme.bad()
                } else if ratio < 0.5 {
                    theme.fg(Color::Yellow)
                } else {
                    theme.fg(Color::Green)
                },
            )
        }
        None => ("API -  ".to_string(), theme.dim()),
    };
    let room = usize::from(width).saturating_sub(gauge.0.chars().count() + ro.chars().count() + 1);
    if left.chars().count() > room {
        left = clip(&left, room as u16 + 2);
    }
    let pad = room.saturating_sub(left.chars().count());
    Line::from(vec![
        Span::styled(left, theme.dim()),
        Span::styled(ro.to_string(), theme.bad()),
        Span::raw(" ".repeat(pad + 1)),
        Span::styled(gauge.0, gauge.1),
    ])
}

fn footer_line(app: &App, theme: Theme, width: u16) -> Line<'static> {
    if app.editing_filter {
        return Line::from(vec![
            Span::styled(" filter: ", theme.bold()),
            Span::raw(app.filter.clone()),
            Span::styled("▏ enter keeps, esc clears", theme.dim()),
        ]);
    }
    // Hints in the keymap's order (the screen's first), each whole or not at all: what does
    // not fit is dropped, never cut mid-word.
    let mut spans = Vec::new();
    let mut room = usize::from(width);
    let mut hints = keymap::footer(app.bindings());
    // `?` first: the help is the one hint a newcomer needs.
    if let Some(at) = hints.iter().position(|(k, _)| k == "?") {
        let help = hints.remove(at);
        hints.insert(0, help);
    }
    for (key, action) in hints {
        let (k, n) = (format!(" {key}"), format!(" {} ", action.short()));
        let w = k.chars().count() + n.chars().count();
        if w > room {
            continue;
        }
        room -= w;
        if app.disabled(action).is_some() {
            // Off in read-only mode: still shown, struck through (the help says why).
            let off = theme.dim().add_modifier(Modifier::CROSSED_OUT);
            spans.push(Span::styled(k, off));
            spans.push(Span::styled(n, off));
        } else {
            spans.push(Span::styled(k, theme.bold().patch(theme.fg(Color::Cyan))));
            spans.push(Span::raw(n));
        }
    }
    Line::from(spans)
}

/// `text` wrapped at word boundaries into lines of at most `width` characters, the lines after
/// the first indented by `indent` more than the first's own leading spaces (so a wrapped line
/// never starts again at column 0). Words longer than a line are cut.
pub fn hang(text: &str, width: usize, indent: usize) -> Vec<String> {
    let lead = text.len() - text.trim_start().len();
    let pad = " ".repeat(lead + indent);
    let width = width.max(pad.len() + 8);
    let mut out: Vec<String> = Vec::new();
    let mut line = text[..lead].to_string();
    for word in text.split_whitespace() {
        let mut word = word.to_string();
        loop {
            let room = width.saturating_sub(line.chars().count());
            let sep = usize::from(!line.trim().is_empty());
            if word.chars().count() + sep <= room {
                if sep == 1 {
                    line.push(' ');
                }
                line.push_str(&word);
                break;
            }
            if line.trim().is_empty() {
                // Longer than a whole line: cut it.
                let cut: String = word.chars().take(room).collect();
                line.push_str(&cut);
                word = word.chars().skip(room).collect();
            }
            out.push(std::mem::replace(&mut line, pad.clone()));
            if word.is_empty() {
                break;
            }
        }
    }
    if !line.trim().is_empty() || out.is_empty() {
        out.push(line);
    }
    out
}

/// The rows of a list that fit in `height`, keeping `selected` in view: (first, last+1).
pub fn window(len: usize, selected: usize, height: usize) -> (usize, usize) {
    if height == 0 || len == 0 {
        return (0, 0);
    }
    let first = selected
        .saturating_sub(height - 1)
        .min(len.saturating_sub(height));
    (first, (first + height).min(len))
}

/// `lines` in a bordered box titled `title`, `width` wide at most, as tall as its lines take
/// once wrapped, centred over `area` (what is beneath is cleared).
pub fn boxed(
    frame: &mut Frame,
    area: Rect,
    theme: Theme,
    (title, width): (&str, u16),
    lines: Vec<Line<'static>>,
) {
    let w = width.min(area.width);
    let inner = usize::from(w.saturating_sub(2)).max(1);
    let rows: usize = lines.iter().map(|l| l.width().div_ceil(inner).max(1)).sum();
    let rect = centered(area, w, rows as u16 + 2);
    frame.render_widget(ratatui::widgets::Clear, rect);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(ratatui::widgets::Wrap { trim: false })
            .block(
                ratatui::widgets::Block::new()
                    .borders(ratatui::widgets::Borders::ALL)
                    .title(Span::styled(title.to_string(), theme.bold())),
            ),
        rect,
    );
}

/// A rectangle of at most `w`×`h` centred in `area`.
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn windows_keep_the_selection_in_view() {
        assert_eq!(super::window(100, 0, 10), (0, 10));
        assert_eq!(super::window(100, 15, 10), (6, 16));
        assert_eq!(super::window(100, 99, 10), (90, 100));
        assert_eq!(super::window(3, 2, 10), (0, 3));
        assert_eq!(super::window(3, 2, 0), (0, 0));
    }

    #[test]
    fn hanging_lines_never_restart_at_column_zero() {
        let h = super::hang(
            " plan p: restore backup b (of `s`) into d1 `s`, mode overwrite",
            30,
            2,
        );
        assert!(h.len() > 1, "{h:?}");
        assert!(h.iter().all(|l| l.chars().count() <= 30), "{h:?}");
        assert!(h[1..].iter().all(|l| l.starts_with("   ")), "{h:?}");
        let long = super::hang(&"x".repeat(70), 30, 2);
        assert_eq!(long.concat().replace(' ', ""), "x".repeat(70));
        assert_eq!(super::hang("", 30, 2), [""]);
    }
}
