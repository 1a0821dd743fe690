//! The inventory: every target grouped by kind, its newest backup's age against its RPO, how
//! many backups it has and what they take, its last drill (✓ passed, ✗ not, and how long ago);
//! targets never backed up stand out.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Color;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};

use super::{Theme, window};
use crate::ops::inventory::{Freshness, kind_title};
use crate::text::human_size;
use crate::text::short_duration as short;
use crate::tui::state::App;

pub fn render(app: &App, theme: Theme, frame: &mut Frame, area: Rect) {
    let block = Block::new().borders(Borders::TOP).title(Line::from(vec![
        Span::styled(" targets ", theme.bold()),
        Span::styled(
            format!(
                "{} · {} backups · ages against each target's RPO ",
                app.inventory.len(),
                app.entries.len()
            ),
            theme.dim(),
        ),
    ]));
    if app.inventory.is_empty() {
        let text = if app.loading {
            "reading the repository…"
        } else {
            "no backups yet: press : and pick \"back up target now\" on a target, or run `cfdr backup --all`"
        };
        frame.render_widget(Paragraph::new(text).block(block), area);
        return;
    }
    let wide = area.width >= 110;
    let height = usize::from(area.height.saturating_sub(2));
    let (first, last) = window(app.inventory.len(), app.inv_sel, height);
    let rows: Vec<Row> = (first..last)
        .map(|i| {
            let r = &app.inventory[i];
            let group_start = i == 0 || app.inventory[i - 1].kind != r.kind;
            let (age, style) = match r.freshness {
                Freshness::Never => ("never".to_string(), theme.bad()),
                Freshness::Late => (r.age.map(short).unwrap_or_default() + " LATE", theme.bad()),
                Freshness::Due => (
                    r.age.map(short).unwrap_or_default() + " due",
                    theme.fg(Color::Yellow),
                ),
                Freshness::Fresh => (r.age.map(short).unwrap_or_default(), theme.fg(Color::Green)),
            };
            let warn = if r.warnings > 0 {
                Cell::from(format!("⚠ {}", r.warnings)).style(theme.fg(Color::Yellow))
            } else {
                Cell::from("")
            };
            let drill = match app.drills.last.get(&(r.kind.clone(), r.name.clone())) {
                None => Cell::from("-").style(theme.dim()),
                Some(d) => {
                    let ago =
                        d.at.as_deref()
                            .map(|t| crate::text::age(t, app.now))
                            .unwrap_or_default();
                    if d.result == "passed" {
                        Cell::from(format!("✓ {ago}")).style(theme.fg(Color::Green))
                    } else {
                        Cell::from(format!("✗ {ago}")).style(theme.bad())
                    }
                }
            };
            let mut cells = vec![
                Cell::from(if group_start { kind_title(&r.kind) } else { "" }).style(theme.bold()),
                Cell::from(r.name.clone()).style(if r.backups == 0 {
                    theme.bad()
                } else {
                    ratatui::style::Style::new()
                }),
                Cell::from(age).style(style),
                Cell::from(short(r.rpo)).style(theme.dim()),
                Cell::from(r.backups.to_string()),
                Cell::from(human_size(r.stored)),
                drill,
                warn,
            ];
            if wide {
                cells.insert(
                    2,
                    Cell::from(r.newest.clone().unwrap_or_else(|| "-".into())).style(theme.dim()),
                );
            }
            let row = Row::new(cells);
            if i == app.inv_sel {
                row.style(theme.selected())
            } else {
                row
            }
        })
        .collect();
    let mut widths = vec![
        Constraint::Length(6),
        Constraint::Min(14),
        Constraint::Length(10),
        Constraint::Length(4),
        Constraint::Length(7),
        Constraint::Length(10),
        Constraint::Length(6),
        Constraint::Length(4),
    ];
    let mut header = vec![
        "KIND", "TARGET", "AGE", "RPO", "BACKUPS", "STORED", "DRILL", "WARN",
    ];
    if wide {
        widths.insert(2, Constraint::Length(25));
        header.insert(2, "NEWEST");
    }
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(theme.dim()))
        .block(block);
    frame.render_widget(table, area);
}
