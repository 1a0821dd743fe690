//! The guided restore: the form, the plan, the typed confirmation, and the run as a checklist
//! of the runner's steps with the running one's live gauge, the snapshot and undo point as soon
//! as they exist, and at the end the verification, RTO/RPO and the keys to undo or retry.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Color;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};

use super::{Theme, bar, boxed, clip, hang};
use crate::ops::restore::describe;
use crate::playbook::runner::{Run, State, Status};
use crate::text::human_size;
use crate::tui::recovery::{Field, MODES, Recovery, Stage, Where};
use crate::tui::state::App;

pub fn render(app: &App, theme: Theme, frame: &mut Frame, area: Rect) {
    let Some(r) = &app.recovery else {
        return;
    };
    let e = &r.backup;
    let title = format!(" restore {} · {} `{}` ", e.id, e.kind, e.target);
    let block = Block::new()
        .borders(Borders::TOP)
        .title(Span::styled(title, theme.bold()));
    let (lines, hint) = match &r.stage {
        Stage::Form | Stage::Planning => (form(app, r, theme), form_hint(r, theme)),
        Stage::Plan | Stage::Confirm { .. } => (plan(r, area.width), plan_hint(r, theme)),
        Stage::Run | Stage::Undo => run(app, r, theme, area.width),
    };
    // What to do next stays in view at the bottom; the rest scrolls (↑ ↓).
    let [body, foot] =
        Layout::vertical([Constraint::Min(0), Constraint::Length(hint.len() as u16)]).areas(area);
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false })
            .scroll((r.scroll, 0)),
        body,
    );
    frame.render_widget(Paragraph::new(hint), foot);
    if let Stage::Confirm { typed, undo } = &r.stage {
        confirm_box(r, theme, typed, *undo, frame, area);
    }
}

/// The typed confirmation, over the plan: the action stays disabled until the name matches.
fn confirm_box(r: &Recovery, theme: Theme, typed: &str, undo: bool, frame: &mut Frame, area: Rect) {
    let name = r.target_name();
    let ok = typed == name;
    let lines = vec![
        Line::from(Span::styled(
            if undo {
                format!(" Undo: `{name}` goes back to how it was before the restore.")
            } else {
                format!(" `{name}` is written over (a pre-recovery snapshot first).")
            },
            theme.bad(),
        )),
        Line::from(format!(" Type `{name}` to go on:")),
        Line::from(vec![
            Span::raw("   > "),
            Span::styled(format!("{typed}▏"), theme.bold()),
        ]),
        if ok {
            Line::from(Span::styled(
                " matches: enter goes on",
                theme.fg(Color::Green),
            ))
        } else {
            Line::from(Span::styled(
                " enter stays disabled until it matches",
                theme.dim(),
            ))
        },
        Line::from(Span::styled(
            " esc backs out with nothing written",
            theme.dim(),
        )),
    ];
    let w = (name.chars().count() as u16 + 48).clamp(40, 76);
    let title = if undo {
        " confirm the undo "
    } else {
        " confirm the restore "
    };
    boxed(frame, area, theme, (title, w), lines);
}

fn form(app: &App, r: &Recovery, theme: Theme) -> Vec<Line<'static>> {
    let e = &r.backup;
    let mut out = vec![
        Line::from(vec![
            Span::styled(" backup   ", theme.dim()),
            Span::raw(format!(
                "taken {} ({} ago), {}",
                e.started.get(..16).unwrap_or(&e.started).replace('T', " "),
                crate::text::age(&e.started, app.now),
                human_size(e.plaintext_size)
            )),
        ]),
        Line::default(),
    ];
    let cursor = |f: Field| if r.field == f { "▸" } else { " " };
    let pick = |on: bool| if on { "(•)" } else { "( )" };
    // One destination a line, so none wraps at 80 columns.
    for (i, w) in r.destinations().iter().enumerate() {
        let label = match w {
            Where::Same if e.kind == "sqlite" => format!("its own file `{}`", e.target),
            Where::Same => format!("same target `{}`", e.target),
            Where::Other => "another target".to_string(),
            Where::Scratch => "a scratch copy".to_string(),
        };
        let lead = if i == 0 {
            Span::styled(format!(" {} into     ", cursor(Field::Dest)), theme.bold())
        } else {
            Span::raw("            ")
        };
        let mut line = vec![lead, Span::raw(format!("{} {label}", pick(r.into == *w)))];
        if i == 0 {
            line.push(Span::styled("   (space switches)", theme.dim()));
        }
        out.push(Line::from(line));
    }
    let text = |f: Field, v: &str| {
        if r.field == f {
            format!("{v}▏")
        } else {
            v.to_string()
        }
    };
    match r.into {
        Where::Other => out.push(Line::from(vec![
            Span::styled(format!(" {} name     ", cursor(Field::Name)), theme.bold()),
            Span::raw(text(Field::Name, &r.name)),
            Span::styled("   (created when it does not exist)", theme.dim()),
        ])),
        Where::Scratch => out.push(Line::from(Span::styled(
            "            restored, verified, removed at the end: nothing that exists is touched",
            theme.dim(),
        ))),
        Where::Same => {}
    }
    if r.fields().contains(&Field::Only) {
        let hint = match e.kind.as_str() {
            "d1" => "comma-separated; empty restores every table",
            "r2" => "empty restores every object",
            _ => "empty restores every key",
        };
        out.push(Line::from(vec![
            Span::styled(
                format!(
                    " {} {:<9}",
                    cursor(Field::Only),
                    r.only_label().replace(" prefix", "")
                ),
                theme.bold(),
            ),
            Span::raw(text(Field::Only, &r.only)),
            Span::styled(format!("   ({hint})"), theme.dim()),
        ]));
    }
    if r.fields().contains(&Field::Mode) {
        let mut line = vec![Span::styled(
            format!(" {} mode     ", cursor(Field::Mode)),
            theme.bold(),
        )];
        for m in MODES {
            line.push(Span::raw(format!("{} {}  ", pick(r.mode == m), m.as_str())));
        }
        out.push(Line::from(line));
        out.push(Line::from(Span::styled(
            format!("            {}", r.mode_help()),
            theme.dim(),
        )));
    }
    out
}

fn form_hint(r: &Recovery, theme: Theme) -> Vec<Line<'static>> {
    vec![Line::from(Span::styled(
        if r.stage == Stage::Planning {
            " making the plan (a dry run: nothing is written)…"
        } else {
            " enter: the plan (a dry run: nothing written) · tab: next · space: choose · esc"
        },
        theme.bold(),
    ))]
}

fn plan(r: &Recovery, width: u16) -> Vec<Line<'static>> {
    r.plan
        .as_ref()
        .map(|p| describe::lines(p))
        .unwrap_or_default()
        .iter()
        .flat_map(|l| hang(&format!(" {l}"), usize::from(width), 4))
        .map(Line::from)
        .collect()
}

fn plan_hint(r: &Recovery, theme: Theme) -> Vec<Line<'static>> {
    let name = r.target_name();
    if matches!(r.stage, Stage::Confirm { .. }) {
        return vec![Line::from(Span::styled(
            format!(" type `{name}`, then enter · esc backs out with nothing written"),
            theme.bold(),
        ))];
    }
    vec![Line::from(Span::styled(
        if r.choice().overwrites() {
            format!(" enter: confirm by typing `{name}` · esc: back to the form")
        } else if r.into == Where::Scratch {
            format!(
                " enter runs it (`{name}` is new: nothing is overwritten; removed at the end) · esc: back"
            )
        } else {
            format!(" enter runs it (`{name}` is new: nothing is overwritten) · esc: back")
        },
        theme.bold(),
    ))]
}

fn secs(ms: i64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

fn run(
    app: &App,
    r: &Recovery,
    theme: Theme,
    width: u16,
) -> (Vec<Line<'static>>, Vec<Line<'static>>) {
    let Some(run) = &r.run else {
        return (
            vec![Line::from(Span::styled(" starting the run…", theme.dim()))],
            vec![Line::from(Span::styled(
                " x stops it between steps",
                theme.dim(),
            ))],
        );
    };
    let mut hint = Vec::new();
    let job = r
        .job
        .filter(|_| r.stage == Stage::Run)
        .and_then(|id| app.jobs.iter().find(|j| j.id == id));
    let mut out = steps(app, run, job, theme, width);
    out.push(Line::default());
    if let Some(s) = r.fact("snapshot") {
        out.push(Line::from(vec![
            Span::styled(" pre-recovery snapshot ", theme.dim()),
            Span::raw(s),
        ]));
    }
    if let Some(u) = r.restore_run() {
        out.push(Line::from(vec![
            Span::styled(" undo point            ", theme.dim()),
            Span::raw(format!("restore run {u}")),
        ]));
    }
    if r.ended() {
        let m = run.measures();
        let took = |s: Option<f64>| s.map_or("-".to_string(), |s| format!("{s:.1}s"));
        let target = |s: u64| crate::text::short_duration(std::time::Duration::from_secs(s));
        out.push(Line::from(vec![
            Span::styled(" RTO ", theme.dim()),
            Span::raw(format!(
                "{} (target {}){}   ",
                took(m.rto_secs),
                target(m.rto_target_secs),
                met(m.rto_met)
            )),
            Span::styled("RPO ", theme.dim()),
            Span::raw(format!(
                "{} (target {}){}",
                m.rpo_secs.map_or("-".to_string(), |s| {
                    crate::text::short_duration(std::time::Duration::from_secs_f64(s))
                }),
                target(m.rpo_target_secs),
                met(m.rpo_met)
            )),
        ]));
    }
    let line = |text: String, style| Line::from(Span::styled(format!(" {text}"), style));
    match (&r.stage, &r.undone) {
        (Stage::Undo, None) => {
            let gauge = r
                .job
                .and_then(|id| app.jobs.iter().find(|j| j.id == id))
                .and_then(|j| j.last.as_ref())
                .map(|p| format!("{} {}", bar(p.ratio(), 20), p.describe()))
                .unwrap_or_default();
            hint.push(line(format!("undoing… {gauge}"), theme.bold()));
        }
        (_, Some(Ok(done))) => {
            hint.push(line(done.clone(), theme.fg(Color::Green)));
            hint.push(line("esc leaves".into(), theme.dim()));
        }
        (_, Some(Err(e))) => hint.push(line(e.clone(), theme.bad())),
        (Stage::Run, None) if r.ended() && !r.failed() && r.into == Where::Scratch => {
            hint.push(line(
                "the backup restores: its scratch copy is removed, nothing else was touched · esc leaves"
                    .into(),
                theme.bold(),
            ))
        }
        (Stage::Run, None) if r.ended() && !r.failed() => hint.push(line(
            "u undoes it (from the pre-recovery snapshot) · esc leaves".into(),
            theme.bold(),
        )),
        (Stage::Run, None) if r.failed() || run.status == Status::Stopped => hint.push(line(
            "t retries from that step · u undoes what landed · esc leaves".into(),
            theme.bold(),
        )),
        _ => hint.push(line("x stops it between steps".into(), theme.dim())),
    }
    let room = 6.min(r.log.len());
    if room > 0 {
        out.push(Line::default());
        for l in &r.log[r.log.len() - room..] {
            out.push(Line::from(Span::styled(
                format!(" {}", clip(l, width.saturating_sub(2))),
                theme.dim(),
            )));
        }
    }
    (out, hint)
}

/// A run's title and its steps as a checklist: each item's mark, time and note, and the
/// running one's live gauge from `job`'s progress.
pub fn steps(
    app: &App,
    run: &Run,
    job: Option<&crate::tui::state::Job>,
    theme: Theme,
    width: u16,
) -> Vec<Line<'static>> {
    let now_ms = (app.now.unix_timestamp_nanos() / 1_000_000) as i64;
    let mut out = vec![Line::from(vec![
        Span::styled(format!(" {} ", run.title), theme.bold()),
        status(run, theme),
    ])];
    let job = job.filter(|j| j.outcome.is_none());
    for (n, step) in run.steps.iter().enumerate() {
        for item in &step.items {
            let (mark, style) = match item.state {
                State::Done => ("[✓]", theme.fg(Color::Green)),
                State::Running => ("[▸]", theme.fg(Color::Cyan).patch(theme.bold())),
                State::Failed => ("[✗]", theme.bad()),
                State::Skipped => ("[-]", theme.dim()),
                State::Pending => ("[ ]", theme.dim()),
            };
            let took = match (item.started_ms, item.finished_ms) {
                (Some(a), Some(b)) => secs(b - a),
                (Some(a), None) if item.state == State::Running => secs((now_ms - a).max(0)),
                _ => String::new(),
            };
            out.push(Line::from(vec![
                Span::styled(format!(" {mark} "), style),
                Span::raw(format!("{}. {:<9}", n + 1, step.kind)),
                Span::raw(clip(&step.title, width.saturating_sub(28))),
                Span::styled(format!("  {took}"), theme.dim()),
            ]));
            if let Some(note) = &item.note {
                let style = if item.state == State::Failed {
                    theme.bad()
                } else {
                    theme.dim()
                };
                out.push(Line::from(Span::styled(
                    format!("       {}", clip(note, width.saturating_sub(8))),
                    style,
                )));
            }
            if item.state == State::Running
                && let Some(p) = job.and_then(|j| j.last.as_ref())
            {
                out.push(Line::from(vec![
                    Span::raw("       "),
                    Span::styled(bar(p.ratio(), 20), theme.fg(Color::Cyan)),
                    Span::raw(format!(
                        " {}",
                        clip(&p.describe(), width.saturating_sub(30))
                    )),
                ]));
            }
        }
    }
    out
}

fn met(m: Option<bool>) -> &'static str {
    match m {
        Some(true) => " ✓",
        Some(false) => " MISSED",
        None => "",
    }
}

pub fn status(run: &Run, theme: Theme) -> Span<'static> {
    match run.status {
        Status::Running => Span::styled("running", theme.fg(Color::Cyan)),
        Status::Stopped => Span::styled("stopped", theme.fg(Color::Yellow)),
        Status::Failed => Span::styled(
            match run.cursor() {
                Some((step, _)) => format!("FAILED at step {}", step + 1),
                None => "FAILED".to_string(),
            },
            theme.bad(),
        ),
        Status::Done => match run.outcome() {
            crate::playbook::runner::Outcome::Success => {
                Span::styled("verified ✓", theme.fg(Color::Green).patch(theme.bold()))
            }
            o => Span::styled(format!("{o:?}").to_lowercase(), theme.bad()),
        },
    }
}
