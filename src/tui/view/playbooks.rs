//! The playbooks (when to use each, RTO/RPO targets, where it comes from), a playbook's
//! parameters as a form, and a playbook run live with the question it stopped for.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Color;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};

use super::restore::steps;
use super::{Theme, boxed, clip, hang, window};
use crate::playbook::model::ParamKind;
use crate::text::short_duration;
use crate::tui::guide::Ask;
use crate::tui::state::App;

pub fn list(app: &App, theme: Theme, frame: &mut Frame, area: Rect) {
    let b = &app.books;
    let block = Block::new().borders(Borders::TOP).title(Span::styled(
        format!(
            " playbooks {} · enter fills in its parameters ",
            b.list.len()
        ),
        theme.bold(),
    ));
    if b.list.is_empty() {
        frame.render_widget(Paragraph::new(" loading the playbooks…").block(block), area);
        return;
    }
    let [top, about] = Layout::vertical([Constraint::Min(3), Constraint::Length(6)]).areas(area);
    let height = usize::from(top.height.saturating_sub(1));
    let (first, last) = window(b.list.len(), b.sel, height);
    let mut lines = Vec::new();
    for (n, p) in b.list.iter().enumerate().take(last).skip(first) {
        let text = format!(
            " {:<18} {:<34} RTO {:>4} RPO {:>4}  {}",
            p.id,
            clip(&p.title, 36),
            short_duration(p.rto),
            short_duration(p.rpo),
            p.origin
        );
        let style = if n == b.sel {
            theme.selected()
        } else {
            ratatui::style::Style::new()
        };
        lines.push(Line::from(Span::styled(clip(&text, top.width + 2), style)));
    }
    frame.render_widget(Paragraph::new(lines).block(block), top);
    if let Some(p) = b.list.get(b.sel) {
        let when = p.when.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut lines = vec![Line::from(Span::styled(
            format!(" when to use {} ({} steps):", p.id, p.steps),
            theme.bold(),
        ))];
        lines.extend(
            hang(&format!(" {when}"), usize::from(area.width), 0)
                .into_iter()
                .map(Line::from),
        );
        frame.render_widget(
            Paragraph::new(lines).block(Block::new().borders(Borders::TOP)),
            about,
        );
    }
}

pub fn params(app: &App, theme: Theme, frame: &mut Frame, area: Rect) {
    let Some(f) = &app.books.form else {
        return;
    };
    let block = Block::new().borders(Borders::TOP).title(Span::styled(
        format!(" {} · {} ", f.book.id, f.book.title),
        theme.bold(),
    ));
    let mut lines = Vec::new();
    for (n, p) in f.book.params.iter().enumerate() {
        let at = n == f.field;
        let value = &f.values[n];
        let shown = match (f.picked(n), at) {
            (true, _) => format!("‹ {value} ›"),
            (false, true) => format!("{value}▏"),
            (false, false) => value.clone(),
        };
        let how = match p.kind {
            ParamKind::Target | ParamKind::Backup => "space / ←→ picks",
            ParamKind::Components => "d1,kv,r2,sqlite — typed",
            ParamKind::Time => "RFC 3339 or now — typed",
            ParamKind::Text => "typed",
            ParamKind::Worker => "a Worker's name — typed",
        };
        lines.push(Line::from(vec![
            Span::styled(
                format!(" {} {:<12}", if at { "▸" } else { " " }, p.name),
                theme.bold(),
            ),
            Span::raw(shown),
        ]));
        let help = format!(
            "{}{} ({how})",
            p.help,
            if p.required() { "" } else { "; optional" }
        );
        for l in hang(&format!("{:15}{help}", ""), usize::from(area.width), 0) {
            lines.push(Line::from(Span::styled(l, theme.dim())));
        }
    }
    if f.book.params.is_empty() {
        lines.push(Line::from(" no parameters"));
    }
    lines.push(Line::default());
    lines.push(Line::from(Span::styled(
        format!(
            " enter runs it ({} steps, RTO target {}); every value is checked first",
            f.book.steps,
            short_duration(f.book.rto)
        ),
        theme.bold(),
    )));
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        area,
    );
}

pub fn run(app: &App, theme: Theme, frame: &mut Frame, area: Rect) {
    let Some(g) = &app.guide else {
        return;
    };
    let block = Block::new()
        .borders(Borders::TOP)
        .title(Span::styled(" playbook run ", theme.bold()));
    let job = g.job.and_then(|id| app.jobs.iter().find(|j| j.id == id));
    let mut lines = match &g.run {
        Some(run) => steps(app, run, job, theme, area.width),
        None => vec![Line::from(Span::styled(
            " binding the parameters and starting the run…",
            theme.dim(),
        ))],
    };
    if let Some(run) = &g.run {
        let m = run.measures();
        if matches!(
            run.status,
            crate::playbook::runner::Status::Done | crate::playbook::runner::Status::Failed
        ) {
            lines.push(Line::default());
            let report = if run.playbook == "drill" {
                "the drill report: d, then enter".to_string()
            } else {
                format!("the report: runs/{}/report.md", run.id)
            };
            lines.push(Line::from(format!(
                " RTO {} (target {})   RPO {} (target {})   {report}",
                m.rto_secs.map_or("-".into(), |s| format!("{s:.1}s")),
                short_duration(std::time::Duration::from_secs(m.rto_target_secs)),
                m.rpo_secs.map_or("-".into(), |s| short_duration(
                    std::time::Duration::from_secs_f64(s)
                )),
                short_duration(std::time::Duration::from_secs(m.rpo_target_secs)),
            )));
        }
    }
    let room = 6.min(g.log.len());
    if room > 0 {
        lines.push(Line::default());
        for l in &g.log[g.log.len() - room..] {
            lines.push(Line::from(Span::styled(
                format!(" {}", clip(l, area.width.saturating_sub(2))),
                theme.dim(),
            )));
        }
    }
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false })
            .scroll((g.scroll, 0)),
        area,
    );
    if let Some(ask) = &g.ask {
        question(ask, theme, frame, area);
    }
}

/// What the run stopped for, over it.
fn question(ask: &Ask, theme: Theme, frame: &mut Frame, area: Rect) {
    let (title, mut lines) = match ask {
        Ask::Confirm { target, typed } => (
            " confirm ",
            vec![
                Line::from(Span::styled(
                    format!(" `{target}` is written next. Type its name to go on:"),
                    theme.bad(),
                )),
                Line::from(vec![
                    Span::raw("   > "),
                    Span::styled(format!("{typed}▏"), theme.bold()),
                ]),
                Line::from(Span::styled(
                    if typed == target {
                        " matches: enter goes on"
                    } else {
                        " enter stays disabled until it matches"
                    },
                    theme.dim(),
                )),
            ],
        ),
        Ask::Checklist {
            text,
            items,
            ticked,
            at,
        } => {
            let mut l = vec![Line::from(Span::styled(format!(" {text}"), theme.bold()))];
            for (n, (item, t)) in items.iter().zip(ticked).enumerate() {
                let style = if n == *at {
                    theme.selected()
                } else {
                    ratatui::style::Style::new()
                };
                l.push(Line::from(Span::styled(
                    format!(" [{}] {item}", if *t { "x" } else { " " }),
                    style,
                )));
            }
            l.push(Line::from(Span::styled(
                " space ticks · ↑↓ moves · enter goes on once every item is ticked",
                theme.dim(),
            )));
            (" checklist ", l)
        }
        Ask::Approve { role, typed } => (
            " approval ",
            vec![
                Line::from(Span::styled(
                    format!(" The {role} approves going on: their name"),
                    theme.bold(),
                )),
                Line::from(vec![
                    Span::raw("   > "),
                    Span::styled(format!("{typed}▏"), theme.bold()),
                ]),
                Line::from(Span::styled(" enter records it and goes on", theme.dim())),
            ],
        ),
    };
    lines.push(Line::from(Span::styled(
        " esc leaves the run stopped (t goes on later); nothing is written",
        theme.dim(),
    )));
    boxed(frame, area, theme, (title, 72), lines);
}

/// The run offered at startup.
pub fn resume(app: &App, theme: Theme, frame: &mut Frame, area: Rect) {
    let Some(run) = &app.books.interrupted else {
        return;
    };
    let step = run.cursor().map_or(0, |(s, _)| s + 1);
    let lines = vec![
        Line::from(Span::styled(
            format!(
                " {} ({}) stopped at step {step} of {}.",
                run.title,
                run.playbook,
                run.steps.len()
            ),
            theme.bold(),
        )),
        Line::from(format!(" run {} by {}", run.id, run.by)),
        Line::from(Span::styled(
            " enter resumes it from its journal (nothing done is done again) · esc dismisses",
            theme.fg(Color::Cyan),
        )),
    ];
    boxed(frame, area, theme, (" an interrupted run ", 76), lines);
}
