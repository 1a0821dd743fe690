//! The audit trail (newest first, filtered) and the status summary, as `cfdr audit` and
//! `cfdr status` print them.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Color;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};

use super::{Theme, window};
use crate::tui::state::App;

pub fn audit(app: &App, theme: Theme, frame: &mut Frame, area: Rect) {
    let rows = app.records.audit_rows(&app.filter);
    let mut title = vec![
        Span::styled(" audit trail ", theme.bold()),
        Span::styled(format!("{} shown, newest first ", rows.len()), theme.dim()),
    ];
    if !app.filter.is_empty() {
        title.push(Span::styled(
            format!("· filter \"{}\" ", app.filter),
            theme.fg(Color::Cyan),
        ));
    }
    let block = Block::new().borders(Borders::TOP).title(Line::from(title));
    let Some(all) = &app.records.audit else {
        frame.render_widget(
            Paragraph::new(" reading the audit trail…").block(block),
            area,
        );
        return;
    };
    if rows.is_empty() {
        let text = if all.is_empty() {
            " no entries yet: every backup, verify, prune, restore and playbook step adds one"
        } else {
            " nothing matches the filter: / to change it, esc in the filter clears it"
        };
        frame.render_widget(Paragraph::new(text).block(block), area);
        return;
    }
    let wide = area.width >= 110;
    let height = usize::from(area.height.saturating_sub(2));
    let (first, last) = window(rows.len(), app.records.audit_sel, height);
    let lines: Vec<Row> = (first..last)
        .map(|n| {
            let e = &all[rows[n]];
            let r = &e.record;
            let style = match r.result.as_str() {
                "failed" => theme.bad(),
                "partial" | "stopped" => theme.fg(Color::Yellow),
                _ => ratatui::style::Style::new(),
            };
            let mut what = r.target.clone().unwrap_or_default();
            if let Some(d) = &r.detail {
                if !what.is_empty() {
                    what.push_str(" — ");
                }
                what.push_str(d);
            }
            let mut cells = vec![
                Cell::from(e.seq.to_string()),
                Cell::from(e.at.get(..19).unwrap_or(&e.at).replace('T', " ")),
                Cell::from(r.action.clone()),
                Cell::from(Span::styled(r.result.clone(), style)),
            ];
            if wide {
                cells.push(Cell::from(e.who.clone()));
            }
            cells.push(Cell::from(what));
            let row = Row::new(cells);
            if n == app.records.audit_sel {
                row.style(theme.selected())
            } else {
                row
            }
        })
        .collect();
    let mut widths = vec![
        Constraint::Length(5),
        Constraint::Length(19),
        Constraint::Length(13),
        Constraint::Length(8),
    ];
    if wide {
        widths.push(Constraint::Length(18));
    }
    widths.push(Constraint::Min(10));
    let mut header = vec!["SEQ", "AT (UTC)", "ACTION", "RESULT"];
    if wide {
        header.push("WHO");
    }
    header.push("TARGET — DETAIL");
    frame.render_widget(
        Table::new(lines, widths)
            .header(Row::new(header).style(theme.bold()))
            .block(block),
        area,
    );
}

pub fn status(app: &App, theme: Theme, frame: &mut Frame, area: Rect) {
    let block = Block::new().borders(Borders::TOP).title(Span::styled(
        " status · each target against its RPO, its last drill and failure ",
        theme.bold(),
    ));
    let Some(s) = &app.records.status else {
        frame.render_widget(Paragraph::new(" computing the status…").block(block), area);
        return;
    };
    let lines: Vec<Line> = crate::ops::status::table(s)
        .lines()
        .map(|l| {
            let style =
                if l.contains(" LATE ") || l.contains(" NEVER ") || l.contains("past their RPO") {
                    theme.bad()
                } else if l.contains(" DUE ") {
                    theme.fg(Color::Yellow)
                } else if l.starts_with("KIND") {
                    theme.bold()
                } else {
                    ratatui::style::Style::new()
                };
            Line::from(Span::styled(format!(" {l}"), style))
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .scroll((app.records.scroll, 0)),
        area,
    );
}
