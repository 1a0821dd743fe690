//! One backup: every manifest field, the per-table / key / object statistics, each artifact with
//! both checksums and sizes, the last verification, and a live gauge while `v` runs.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Color;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};
use serde_json::Value;

use super::{Theme, bar};
use crate::text::human_size;
use crate::tui::state::App;

fn field(theme: Theme, name: &str, value: String) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!(" {name:<18}"), theme.dim()),
        Span::raw(value),
    ])
}

fn heading(theme: Theme, text: &str) -> Line<'static> {
    Line::from(Span::styled(format!(" {text}"), theme.bold()))
}

/// Statistics as lines: D1's tables as a table, everything else as `name value`.
fn stats_lines(theme: Theme, stats: &Value) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    let Some(obj) = stats.as_object() else {
        return out;
    };
    for (k, v) in obj {
        match (k.as_str(), v) {
            ("tables", Value::Array(tables)) => {
                out.push(field(theme, "tables", tables.len().to_string()));
                for t in tables {
                    let name = t["name"].as_str().unwrap_or("?");
                    let rows = t["rows"].to_string();
                    let sha = t["sha256"].as_str().unwrap_or("");
                    out.push(Line::from(vec![
                        Span::raw(format!("   {name:<24} {rows:>10} rows  ")),
                        Span::styled(sha.chars().take(16).collect::<String>(), theme.dim()),
                    ]));
                }
            }
            (_, Value::Object(inner)) => {
                let parts: Vec<String> = inner.iter().map(|(a, b)| format!("{a} {b}")).collect();
                out.push(field(theme, k, parts.join(", ")));
            }
            _ => out.push(field(theme, k, v.to_string().trim_matches('"').to_string())),
        }
    }
    out
}

pub fn render(app: &App, theme: Theme, id: &str, frame: &mut Frame, area: Rect) {
    let block = Block::new()
        .borders(Borders::TOP)
        .title(Span::styled(format!(" backup {id} "), theme.bold()));
    let Some((m, last)) = app.manifests.get(id) else {
        frame.render_widget(Paragraph::new(" reading the manifest…").block(block), area);
        return;
    };
    // The verify's gauge or verdict stays on top: the manifest below it scrolls.
    let mut top = Vec::new();
    if let Some(job) = app.verify_job(id) {
        match (&job.outcome, &job.last) {
            (None, Some(p)) => top.push(Line::from(vec![
                Span::styled(" verifying ", theme.bold()),
                Span::styled(bar(p.ratio(), 24), theme.fg(Color::Cyan)),
                Span::raw(format!(
                    " {:>3.0}%  {}/s{}",
                    p.ratio().unwrap_or(0.0) * 100.0,
                    human_size(p.rate as u64),
                    p.eta()
                        .map(|e| format!("  ETA {}s", e.as_secs().max(1)))
                        .unwrap_or_default()
                )),
            ])),
            (None, None) => top.push(heading(theme, "verifying…")),
            (Some(Err(e)), _) => top.push(Line::from(Span::styled(
                format!(" verify failed: {e}"),
                theme.bad(),
            ))),
            (Some(Ok(_)), _) => {}
        }
    }
    let mut lines = Vec::new();
    lines.push(field(
        theme,
        "kind / target",
        format!("{} {}", m.kind.as_str(), m.target.name),
    ));
    lines.push(field(theme, "target id", m.target.id.clone()));
    if let Some(a) = &m.target.account {
        lines.push(field(theme, "account", a.clone()));
    }
    lines.push(field(
        theme,
        "trigger / method",
        format!("{} / {}", m.trigger, m.method),
    ));
    lines.push(field(theme, "started", m.started.clone()));
    lines.push(field(theme, "finished", m.finished.clone()));
    // Each part on its own line, the value indented under the field (a bookmark is 60
    // characters: wrapped, it would start again at column 0).
    match &m.consistency_point {
        Some(Value::Object(o)) if !o.is_empty() => {
            for (n, (k, v)) in o.iter().enumerate() {
                let name = if n == 0 { "consistency point" } else { "" };
                lines.push(field(theme, name, k.clone()));
                let v = v.as_str().map(str::to_string).unwrap_or(v.to_string());
                lines.push(Line::from(format!("{:19}{v}", "")));
            }
        }
        Some(v) => lines.push(field(theme, "consistency point", v.to_string())),
        None => lines.push(field(theme, "consistency point", "-".into())),
    }
    if let Some(p) = &m.parent {
        lines.push(field(theme, "parent", p.clone()));
    }
    lines.push(field(theme, "tool", m.tool_version.clone()));
    lines.push(field(theme, "key id", m.key_id.clone()));
    lines.push(field(theme, "format", m.format.clone()));
    if !m.warnings.is_empty() {
        lines.push(heading(theme, "warnings"));
        for w in &m.warnings {
            lines.push(Line::from(Span::styled(
                format!("   ⚠ {w}"),
                theme.fg(Color::Yellow),
            )));
        }
    }
    lines.push(heading(theme, "statistics"));
    lines.extend(stats_lines(theme, &m.stats));
    lines.push(heading(theme, "artifacts"));
    for a in &m.artifacts {
        lines.push(Line::from(vec![
            Span::styled(format!("   {}", a.name), theme.bold()),
            Span::raw(format!(
                "  {}  {} plaintext → {} stored, {} chunks of {}",
                a.format,
                human_size(a.plaintext_size),
                human_size(a.stored_size),
                a.chunks,
                human_size(u64::from(a.chunk_size))
            )),
        ]));
        lines.push(Line::from(Span::styled(
            "     plaintext sha256",
            theme.dim(),
        )));
        lines.push(Line::from(format!("       {}", a.plaintext_sha256)));
        lines.push(Line::from(Span::styled("     stored sha256", theme.dim())));
        lines.push(Line::from(format!("       {}", a.stored_sha256)));
    }
    // R2 bodies: a manifest of old listed its blobs; one now leaves them to its index and
    // counts the new ones in its statistics.
    let blobs = match (m.blobs.len(), m.stats["new_blobs"].as_u64()) {
        (0, Some(new)) => Some(format!("{new} new, content-addressed (R2 bodies)")),
        (0, None) => None,
        (n, _) => Some(format!("{n} content-addressed (R2 bodies)")),
    };
    if let Some(text) = blobs {
        lines.push(field(theme, "blobs", text));
    }
    lines.push(heading(theme, "last verification"));
    match last {
        None => lines.push(Line::from(Span::styled(
            "   never verified: press v to verify it in full",
            theme.fg(Color::Yellow),
        ))),
        Some(v) => {
            let (verdict, style) = if v.ok {
                (
                    "OK",
                    theme
                        .fg(Color::Green)
                        .add_modifier(ratatui::style::Modifier::BOLD),
                )
            } else {
                ("FAILED", theme.bad())
            };
            lines.push(Line::from(vec![
                Span::styled(format!("   {verdict}"), style),
                Span::raw(format!(
                    "  {} at {}: {} checked, {}",
                    v.mode,
                    v.at,
                    v.artifacts_checked,
                    human_size(v.bytes_checked)
                )),
            ]));
            for p in &v.problems {
                lines.push(Line::from(Span::styled(
                    format!("   {}: {}", p.artifact, p.message),
                    theme.bad(),
                )));
            }
        }
    }
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [gauge, body] =
        Layout::vertical([Constraint::Length(top.len() as u16), Constraint::Min(0)]).areas(inner);
    frame.render_widget(Paragraph::new(top), gauge);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .scroll((app.detail_scroll, 0)),
        body,
    );
}
