//! The list of backups (all, or one target's): filtered with `/`, sorted by time, size or kind,
//! each with its trigger, method and state.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Color;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};

use super::{Theme, window};
use crate::ops::inventory::kind_title;
use crate::text::human_size;
use crate::tui::state::App;

pub fn render(
    app: &App,
    theme: Theme,
    target: Option<&(String, String)>,
    frame: &mut Frame,
    area: Rect,
) {
    let what = match target {
        Some((k, n)) => format!(" {} {n} ", kind_title(k)),
        None => " all backups ".to_string(),
    };
    let mut title = vec![
        Span::styled(what, theme.bold()),
        Span::styled(
            format!("{} shown · sorted by {} ", app.list.len(), app.sort.name()),
            theme.dim(),
        ),
    ];
    if !app.filter.is_empty() {
        title.push(Span::styled(
            format!("· filter \"{}\" ", app.filter),
            theme.fg(Color::Cyan),
        ));
    }
    let block = Block::new().borders(Borders::TOP).title(Line::from(title));
    if app.list.is_empty() {
        let text = if app.filter.is_empty() {
            "no backups of this target yet: press b to take one now"
        } else {
            "nothing matches the filter: / to change it, esc in the filter clears it"
        };
        frame.render_widget(Paragraph::new(text).block(block), area);
        return;
    }
    let wide = area.width >= 110;
    let height = usize::from(area.height.saturating_sub(2));
    let (first, last) = window(app.list.len(), app.list_sel, height);
    let rows: Vec<Row> = (first..last)
        .map(|i| {
            let e = &app.entries[app.list[i]];
            let age = crate::text::age(&e.started, app.now);
            let (state, style) = match app.verify_job(&e.id).and_then(|j| j.outcome.as_ref()) {
                Some(Ok(_)) => ("verified".to_string(), theme.fg(Color::Green)),
                Some(Err(_)) => ("FAILED".to_string(), theme.bad()),
                None if e.warnings > 0 => (format!("⚠ {}", e.warnings), theme.fg(Color::Yellow)),
                None => ("ok".to_string(), ratatui::style::Style::new()),
            };
            let mut cells = vec![
                Cell::from(e.id.clone()),
                Cell::from(kind_title(&e.kind)),
                Cell::from(e.target.clone()),
                Cell::from(e.trigger.clone()),
                Cell::from(e.method.clone()).style(theme.dim()),
                Cell::from(human_size(e.stored_size)),
                Cell::from(state).style(style),
            ];
            if wide {
                cells.insert(3, Cell::from(age).style(theme.dim()));
            }
            let row = Row::new(cells);
            if i == app.list_sel {
                row.style(theme.selected())
            } else {
                row
            }
        })
        .collect();
    let (method, trigger) = if wide { (20, 12) } else { (9, 9) };
    let mut widths = vec![
        Constraint::Length(25),
        Constraint::Length(6),
        Constraint::Min(10),
        Constraint::Length(trigger),
        Constraint::Length(method),
        Constraint::Length(9),
        Constraint::Length(8),
    ];
    let mut header = vec!["ID", "KIND", "TARGET", "TRIGGER", "METHOD", "SIZE", "STATE"];
    if !wide {
        // 80 columns: the target keeps two more, the state needs six at most.
        widths[6] = Constraint::Length(6);
    }
    if wide {
        widths.insert(3, Constraint::Length(5));
        header.insert(3, "AGE");
    }
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(theme.dim()))
        .block(block);
    frame.render_widget(table, area);
}
