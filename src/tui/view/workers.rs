//! The Workers screen: each Worker with its live split, then for the one under the cursor the
//! rollback cfdr would make (target, why, the preflight's findings) and its recent deployments.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Color;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use super::{Theme, clip, hang, window};
use crate::ops::workers::{rollback, split};
use crate::text::age;
use crate::tui::state::App;

pub fn render(app: &App, theme: Theme, frame: &mut Frame, area: Rect) {
    let w = &app.workers;
    let rows = w.rows();
    let [top, bottom] = Layout::vertical([
        Constraint::Length((rows.len() as u16 + 2).clamp(4, area.height / 2)),
        Constraint::Min(0),
    ])
    .areas(area);
    let block = Block::new().borders(Borders::TOP).title(Span::styled(
        " Workers · what is live · R rolls the selected one back ",
        theme.bold(),
    ));
    let mut lines = Vec::new();
    match &w.list {
        None => lines.push(Line::from(" reading the Workers…")),
        Some(Err(e)) => lines.push(Line::from(Span::styled(
            format!(" cannot list the Workers: {e}"),
            theme.bad(),
        ))),
        Some(Ok(list)) if list.is_empty() => lines.push(Line::from(" this account has no Workers")),
        Some(Ok(_)) => {
            lines.push(Line::from(Span::styled(
                format!(
                    " {:<18} {:<24} {:>5}  {:<11} MESSAGE",
                    "WORKER", "LIVE", "AGE", "BY"
                ),
                theme.dim(),
            )));
            let height = usize::from(top.height.saturating_sub(2));
            let (first, last) = window(rows.len(), w.sel, height);
            for (n, r) in rows.iter().enumerate().take(last).skip(first) {
                let text = format!(
                    " {:<18} {:<24} {:>5}  {:<11} {}",
                    r.name,
                    split(&r.live),
                    r.deployed_on
                        .as_deref()
                        .map_or("-".into(), |t| age(t, app.now)),
                    r.triggered_by.as_deref().unwrap_or_default(),
                    r.message.as_deref().unwrap_or_default()
                );
                let style = if n == w.sel {
                    theme.selected()
                } else {
                    ratatui::style::Style::new()
                };
                lines.push(Line::from(Span::styled(clip(&text, area.width + 2), style)));
            }
        }
    }
    frame.render_widget(Paragraph::new(lines).block(block), top);
    let Some(sel) = w.selected() else {
        return;
    };
    let block = Block::new()
        .borders(Borders::TOP)
        .title(Span::styled(format!(" {} ", sel.name), theme.bold()));
    let mut lines = Vec::new();
    match w.detail.get(&sel.name) {
        None => lines.push(Line::from(
            " reading its deployments and planning a rollback…",
        )),
        Some(Err(e)) => lines.push(Line::from(Span::styled(format!(" {e}"), theme.bad()))),
        Some(Ok(d)) => {
            match &d.plan {
                Err(e) => lines.push(Line::from(Span::styled(
                    clip(&format!(" no rollback: {e}"), area.width + 2),
                    theme.bad(),
                ))),
                Ok(p) => {
                    let refused = p.refusal().is_some();
                    lines.push(Line::from(vec![
                        Span::styled(" rollback ", theme.bold()),
                        Span::raw(format!(
                            "{} → {}",
                            rollback::label(&p.live.versions),
                            rollback::label(&p.target)
                        )),
                        Span::styled(
                            if refused {
                                "   refused".to_string()
                            } else {
                                "   R: plan → type the name → deploy → verify".to_string()
                            },
                            if refused {
                                theme.bad()
                            } else {
                                theme.fg(Color::Green)
                            },
                        ),
                    ]));
                    let width = usize::from(area.width);
                    for l in hang(&format!("   {}", p.why), width, 2) {
                        lines.push(Line::from(Span::styled(l, theme.dim())));
                    }
                    for f in &p.findings {
                        let (tag, style) = if f.refused() {
                            ("REFUSED", theme.bad())
                        } else {
                            ("warning", theme.dim())
                        };
                        for l in hang(&format!("   {tag}: {}", f.text), width, 2) {
                            lines.push(Line::from(Span::styled(l, style)));
                        }
                    }
                    lines.push(Line::from(Span::styled(
                        clip(
                            &format!("   untouched: {}", rollback::UNTOUCHED.join("; ")),
                            area.width + 2,
                        ),
                        theme.dim(),
                    )));
                }
            }
            lines.push(Line::default());
            lines.push(Line::from(Span::styled(
                " recent deployments (newest first)",
                theme.bold(),
            )));
            for dep in &d.deployments {
                let text = format!(
                    " {} {:>5}  {:<22} {:<11} {}",
                    if dep.live { "▸" } else { " " },
                    dep.created_on
                        .as_deref()
                        .map_or("-".into(), |t| age(t, app.now)),
                    split(&dep.versions),
                    dep.triggered_by.as_deref().unwrap_or_default(),
                    dep.message.as_deref().unwrap_or_default()
                );
                lines.push(Line::from(clip(&text, area.width + 2)));
            }
        }
    }
    frame.render_widget(Paragraph::new(lines).block(block), bottom);
}
