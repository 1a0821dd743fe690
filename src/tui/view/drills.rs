//! The drills: their history (date, scenario, outcome, RTO and RPO against target), the form
//! of a new drill, and one drill's report with its RTO and RPO drawn as bars against target.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Color;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use serde_json::Value;

use super::{Theme, bar, clip, window};
use crate::text::short_duration;
use crate::tui::drills::COMPONENTS;
use crate::tui::state::App;

fn secs(v: &Value) -> String {
    v.as_f64().map_or("-".to_string(), |s| {
        if s < 120.0 {
            format!("{s:.1}s")
        } else {
            short_duration(std::time::Duration::from_secs_f64(s))
        }
    })
}

/// A measure against its target as a bar: full is the target, past it shows red.
fn against(
    theme: Theme,
    name: &str,
    measured: &Value,
    target: &Value,
    width: usize,
) -> Line<'static> {
    let (m, t) = (measured.as_f64(), target.as_f64().unwrap_or(0.0));
    let ratio = m.map(|m| if t > 0.0 { m / t } else { 1.0 });
    let style = match ratio {
        Some(r) if r > 1.0 => theme.bad(),
        Some(_) => theme.fg(Color::Green),
        None => theme.dim(),
    };
    Line::from(vec![
        Span::styled(format!(" {name} "), theme.bold()),
        Span::styled(bar(ratio.map(|r| r.min(1.0)), width), style),
        Span::raw(format!(
            " {} of {}{}",
            secs(measured),
            secs(target),
            match ratio {
                Some(r) if r > 1.0 => "  MISSED",
                Some(_) => "  met",
                None => "",
            }
        )),
    ])
}

pub fn list(app: &App, theme: Theme, frame: &mut Frame, area: Rect) {
    let d = &app.drills;
    let block = Block::new().borders(Borders::TOP).title(Span::styled(
        " drills · enter opens a report · n starts a new one ",
        theme.bold(),
    ));
    let mut lines = Vec::new();
    if let Some(n) = &d.new {
        lines.push(Line::from(Span::styled(
            " a new drill: each target's backup restored into scratch, verified, removed",
            theme.bold(),
        )));
        for (i, c) in COMPONENTS.iter().enumerate() {
            let at = if n.at == i { "▸" } else { " " };
            lines.push(Line::from(format!(
                " {at} [{}] {c}",
                if n.on[i] { "x" } else { " " }
            )));
        }
        let at = if n.at == COMPONENTS.len() { "▸" } else { " " };
        lines.push(Line::from(vec![
            Span::raw(format!(" {at} scenario ‹ {} ›   ", n.scenario())),
            Span::styled(
                match n.scenario() {
                    "full" => "each target restored whole",
                    "partial" => "one target a kind, only part of it",
                    "point-in-time" => "the newest backup at or before a time",
                    _ => "backups checked in full, nothing restored",
                },
                theme.dim(),
            ),
        ]));
        for (i, t) in n.texts().iter().enumerate() {
            let on = n.at == COMPONENTS.len() + 1 + i;
            lines.push(Line::from(vec![
                Span::raw(format!(
                    " {} {:<8} {}{}   ",
                    if on { "▸" } else { " " },
                    t.label(),
                    n.text(*t),
                    if on { "▏" } else { "" }
                )),
                Span::styled(t.help(), theme.dim()),
            ]));
        }
        lines.push(Line::from(Span::styled(
            " space toggles / picks · ↑↓ moves · enter runs it · esc cancels",
            theme.dim(),
        )));
        lines.push(Line::from(Span::styled(
            " (a cross-account drill: cfdr drill --scenario cross-account --profile NAME)",
            theme.dim(),
        )));
        lines.push(Line::default());
    }
    let Some(all) = &d.list else {
        lines.push(Line::from(" reading the drills…"));
        frame.render_widget(Paragraph::new(lines).block(block), area);
        return;
    };
    if all.is_empty() {
        lines.push(Line::from(
            " no drills yet: n starts one (or `cfdr drill --yes`)",
        ));
    }
    let rows = d.newest_first();
    let height = usize::from(area.height.saturating_sub(2)).saturating_sub(lines.len());
    let (first, last) = window(rows.len(), d.sel, height);
    for (n, r) in rows.iter().enumerate().take(last).skip(first) {
        let j = &r.json;
        let m = &j["measures"];
        let outcome = j["outcome"].as_str().unwrap_or("?");
        let text = format!(
            " {:<26} {:<11} {:<9} RTO {:>6} RPO {:>6}  {} issues  {}",
            j["id"].as_str().unwrap_or_default(),
            j["scenario"].as_str().unwrap_or_default(),
            outcome,
            secs(&m["rto_secs"]),
            secs(&m["rpo_secs"]),
            j["issues"].as_array().map_or(0, Vec::len),
            j["components"].as_str().unwrap_or_default(),
        );
        let style = if n == d.sel && d.new.is_none() {
            theme.selected()
        } else if outcome == "success" {
            ratatui::style::Style::new()
        } else {
            theme.bad()
        };
        lines.push(Line::from(Span::styled(clip(&text, area.width + 2), style)));
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

pub fn report(app: &App, theme: Theme, frame: &mut Frame, area: Rect) {
    let d = &app.drills;
    let Some(r) = d.open.and_then(|i| d.list.as_ref()?.get(i)) else {
        return;
    };
    let j = &r.json;
    let m = &j["measures"];
    let block = Block::new().borders(Borders::TOP).title(Span::styled(
        format!(" drill {} ", j["id"].as_str().unwrap_or_default()),
        theme.bold(),
    ));
    let width = usize::from(area.width.saturating_sub(40)).clamp(8, 40);
    let mut lines = vec![
        against(theme, "RTO", &m["rto_secs"], &m["rto_target_secs"], width),
        against(theme, "RPO", &m["rpo_secs"], &m["rpo_target_secs"], width),
        Line::default(),
    ];
    lines.extend(r.markdown.lines().map(|l| {
        let style = if l.starts_with('#') {
            theme.bold()
        } else {
            ratatui::style::Style::new()
        };
        Line::from(Span::styled(format!(" {l}"), style))
    }));
    frame.render_widget(
        Paragraph::new(lines).block(block).scroll((d.scroll, 0)),
        area,
    );
}
