//! Overlays: the help (every key of the screen, from the keymap) and the command palette.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::{Theme, centered};
use crate::tui::keymap;
use crate::tui::state::{App, Overlay, palette_matches};

pub fn render(app: &App, theme: Theme, overlay: &Overlay, frame: &mut Frame, area: Rect) {
    match overlay {
        // Drawn by the playbooks view, which knows the run.
        Overlay::Resume => {}
        Overlay::Help => {
            let entries = keymap::help(app.bindings());
            let mut lines: Vec<Line> = entries
                .iter()
                .map(|(keys, action)| match app.disabled(*action) {
                    Some(why) => Line::from(vec![
                        Span::styled(format!(" {keys:<16}"), theme.dim()),
                        Span::styled(format!("{} — {why}", action.name()), theme.dim()),
                    ]),
                    None => Line::from(vec![
                        Span::styled(format!(" {keys:<16}"), theme.bold()),
                        Span::raw(action.name()),
                    ]),
                })
                .collect();
            lines.push(Line::default());
            lines.push(Line::from(Span::styled(
                " mouse wheel scrolls · esc or ? closes",
                theme.dim(),
            )));
            let h = lines.len() as u16 + 2;
            let w = if app.info.read_only { 76 } else { 56 };
            let r = centered(area, w, h);
            frame.render_widget(Clear, r);
            frame.render_widget(
                Paragraph::new(lines).block(
                    Block::new()
                        .borders(Borders::ALL)
                        .title(Span::styled(" keys on this screen ", theme.bold())),
                ),
                r,
            );
        }
        Overlay::Palette { query, selected } => {
            let actions = palette_matches(app.bindings(), query);
            let mut lines = vec![Line::from(vec![
                Span::styled(" : ", theme.bold()),
                Span::raw(query.clone()),
                Span::raw("▏"),
            ])];
            for (i, a) in actions.iter().enumerate() {
                let style = if i == *selected {
                    theme.selected()
                } else {
                    ratatui::style::Style::new()
                };
                lines.push(match app.disabled(*a) {
                    Some(_) => Line::from(Span::styled(
                        format!("   {} (read-only)", a.name()),
                        style.patch(theme.dim()),
                    )),
                    None => Line::from(Span::styled(format!("   {}", a.name()), style)),
                });
            }
            if actions.is_empty() {
                lines.push(Line::from(Span::styled(
                    "   no action matches",
                    theme.dim(),
                )));
            }
            let h = (lines.len() as u16 + 2).min(area.height);
            let r = centered(area, 44, h);
            frame.render_widget(Clear, r);
            frame.render_widget(
                Paragraph::new(lines).block(
                    Block::new()
                        .borders(Borders::ALL)
                        .title(Span::styled(" command palette · enter runs ", theme.bold())),
                ),
                r,
            );
        }
    }
}
