//! Drills: the proof that recovery works. A drill picks backups of the chosen components,
//! restores each into a scratch target created for it (never a production target), verifies
//! it, measures RTO and RPO against the quarterly drill's targets, and writes its report into
//! the repository (`drills/<id>.md` from the template in `assets/`, and `.json`, both MAC'd).
//! The run is an ordinary playbook run ([`super::execute::drive`]): journaled, resumable, and
//! its scratch targets removed at the end whatever happened.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::runner::{self, Act, Run, State, Status, Subject, Target};
use crate::ops::backup::Env;
use crate::ops::restore::scratch;
use crate::ops::{Error, Result};
use crate::repo::catalog::Entry;
use crate::repo::{lease, manifest};

/// The report's Markdown template: `{{field}}` placeholders.
pub const TEMPLATE: &str = include_str!("../../assets/drill-report.md");

/// What a drill proves (the scenarios of the teams' drill plans).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Every target of the components restored into scratch and verified.
    Full,
    /// Part of one target of each component (`--tables`, `--prefix`).
    Partial,
    /// The newest backup at or before a time (`--at`), restored and verified.
    PointInTime,
    /// Restored into another account's scratch targets (`--profile`).
    CrossAccount,
    /// The backups verified in full, nothing restored.
    Validation,
}

impl Scenario {
    pub const NAMES: [&'static str; 5] = [
        "full",
        "partial",
        "point-in-time",
        "cross-account",
        "validation",
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "full" => Self::Full,
            "partial" => Self::Partial,
            "point-in-time" => Self::PointInTime,
            "cross-account" => Self::CrossAccount,
            "validation" => Self::Validation,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Partial => "partial",
            Self::PointInTime => "point-in-time",
            Self::CrossAccount => "cross-account",
            Self::Validation => "validation",
        }
    }
}

/// Which backup of each target a drill takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    Latest,
    /// One at random among those taken within this long (the newest when none is).
    RandomWithin(std::time::Duration),
}

impl Pick {
    /// `latest` or `random-within:30d`.
    pub fn parse(s: &str) -> Option<Self> {
        if s == "latest" {
            return Some(Self::Latest);
        }
        let d = s.strip_prefix("random-within:")?;
        humantime::parse_duration(d).ok().map(Self::RandomWithin)
    }
}

#[derive(Debug, Clone)]
pub struct Request {
    pub components: Vec<String>,
    pub scenario: Scenario,
    pub pick: Pick,
    /// Point in time: the newest backup at or before this.
    pub at: Option<OffsetDateTime>,
    /// Partial: D1 tables, and a KV / R2 key prefix.
    pub tables: Vec<String>,
    pub prefix: Option<String>,
    /// Who runs the drill (the report's tester).
    pub tester: Option<String>,
}

fn usage<T>(m: impl Into<String>) -> Result<T> {
    Err(Error::usage(m))
}

/// The quarterly drill's targets (the built-in playbook, or the operator's override).
fn targets() -> (u64, u64) {
    let lib = super::library::in_use();
    lib.get("quarterly-drill")
        .map(|e| (e.playbook.rto.as_secs(), e.playbook.rpo.as_secs()))
        .unwrap_or((3600, 86_400))
}

/// A drill's run: for each target picked, its backup validated, restored into scratch and
/// verified (validated only, for a validation drill), one target after the other.
pub async fn plan(env: &Env<'_>, req: &Request, now: OffsetDateTime) -> Result<Run> {
    for c in &req.components {
        if !super::model::COMPONENTS.contains(&c.as_str()) {
            return usage(format!(
                "--components: `{c}` is not a component; choose from {}",
                super::model::COMPONENTS.join(", ")
            ));
        }
    }
    match req.scenario {
        Scenario::PointInTime if req.at.is_none() => {
            return usage(
                "a point-in-time drill restores the newest backup at or before --at TIME; give it",
            );
        }
        Scenario::Partial if req.tables.is_empty() && req.prefix.is_none() => {
            return usage(
                "a partial drill restores part of each target: give --tables (D1) and/or --prefix (KV, R2)",
            );
        }
        Scenario::CrossAccount if env.config.profile.is_none() => {
            return usage(
                "a cross-account drill restores into another account: give --profile NAME (a [profiles.NAME] of the config file)",
            );
        }
        _ => {}
    }
    let catalog = env.repo.catalog().await?;
    let mut subjects = Vec::new();
    for kind in &req.components {
        let mut names: Vec<&str> = catalog
            .entries
            .iter()
            .filter(|e| e.kind == *kind && usable(e))
            .map(|e| e.target.as_str())
            .collect();
        names.sort();
        names.dedup();
        if req.scenario == Scenario::Partial {
            names.truncate(1);
        }
        for name in names {
            let mut of: Vec<&Entry> = catalog
                .entries
                .iter()
                .filter(|e| e.kind == *kind && e.target == name && usable(e))
                .collect();
            of.sort_by(|a, b| a.started.cmp(&b.started));
            if let Some(e) = pick(&of, req, now) {
                subjects.push(Subject {
                    target: Target {
                        kind: kind.clone(),
                        name: name.to_string(),
                    },
                    backup: e.id.clone(),
                });
            }
        }
    }
    if subjects.is_empty() {
        return usage(format!(
            "no backup of {} in the repository to drill with{}; take some with `cfdr backup --all`",
            req.components.join(", "),
            if req.at.is_some() {
                " at or before --at"
            } else {
                ""
            }
        ));
    }
    let mut steps = Vec::new();
    let step = |title: String, act: Act| runner::Step {
        kind: act.kind().to_string(),
        title,
        items: vec![runner::item(act)],
    };
    for s in &subjects {
        let label = s.target.label();
        steps.push(step(
            format!("Validate the backup of {label}"),
            Act::Validate {
                backup: s.backup.clone(),
                full: true,
            },
        ));
        if req.scenario == Scenario::Validation {
            continue;
        }
        let (tables, prefix) = match s.target.kind.as_str() {
            "d1" => (req.tables.clone(), None),
            "kv" | "r2" => (Vec::new(), req.prefix.clone()),
            _ => (Vec::new(), None),
        };
        steps.push(step(
            format!("Restore {label} into a scratch target"),
            Act::Restore {
                backup: s.backup.clone(),
                target: None,
                tables: tables.clone(),
                prefix: prefix.clone(),
                mode: "overwrite".into(),
                at: None,
                scratch: true,
            },
        ));
        steps.push(step(
            format!("Verify the scratch copy of {label}"),
            Act::Verify {
                backup: s.backup.clone(),
                target: None,
                tables,
                prefix,
            },
        ));
    }
    let (rto, rpo) = targets();
    let ms = |t: OffsetDateTime| (t.unix_timestamp_nanos() / 1_000_000) as i64;
    let mut params = BTreeMap::from([
        ("scenario".to_string(), req.scenario.name().to_string()),
        ("components".to_string(), req.components.join(",")),
    ]);
    if let Some(t) = &req.tester {
        params.insert("tester".into(), t.clone());
    }
    if let Some(at) = req.at {
        params.insert("at".into(), manifest::rfc3339(at));
    }
    Ok(Run {
        format: runner::RUN_FORMAT.into(),
        id: manifest::new_id(now),
        playbook: "drill".into(),
        title: format!(
            "{} drill of {}",
            req.scenario.name(),
            req.components.join(", ")
        ),
        rto_secs: rto,
        rpo_secs: rpo,
        params,
        subjects,
        steps,
        status: Status::Running,
        by: lease::who(),
        started_ms: ms(now),
        // A drill's RPO is the age of what it restored, as if the incident were now.
        incident_ms: None,
        finished_ms: None,
        profile: env.config.profile.clone(),
        notes: Vec::new(),
    })
}

/// Backups a drill may use: not pre-recovery snapshots, not backups of scratch targets.
fn usable(e: &Entry) -> bool {
    e.trigger != "pre-recovery" && !e.target.contains(scratch::MARK)
}

fn pick<'a>(of: &[&'a Entry], req: &Request, now: OffsetDateTime) -> Option<&'a Entry> {
    let before = |e: &&&Entry| {
        req.at
            .is_none_or(|at| manifest::parse_time(&e.started).is_some_and(|s| s <= at))
    };
    let candidates: Vec<&&Entry> = of.iter().filter(before).collect();
    match req.pick {
        Pick::Latest => candidates.last().map(|e| **e),
        Pick::RandomWithin(d) => {
            let since = now - d;
            let recent: Vec<&&Entry> = candidates
                .iter()
                .copied()
                .filter(|e| manifest::parse_time(&e.started).is_some_and(|s| s >= since))
                .collect();
            if recent.is_empty() {
                candidates.last().map(|e| **e)
            } else {
                Some(*recent[rand::random_range(0..recent.len())])
            }
        }
    }
}

fn secs(s: Option<f64>) -> String {
    s.map_or("not measured".into(), |s| {
        if s < 120.0 {
            format!("{s:.1}s")
        } else {
            humantime::format_duration(std::time::Duration::from_secs(s.round() as u64)).to_string()
        }
    })
}

fn met(m: Option<bool>) -> &'static str {
    match m {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "-",
    }
}

/// The drill's report as JSON: the fields of the teams' drill reports.
pub fn report(run: &Run, manifests: &BTreeMap<String, String>) -> Value {
    let m = run.measures();
    let backups: Vec<Value> = run
        .subjects
        .iter()
        .map(|s| {
            json!({
                "target": s.target.label(), "backup": s.backup,
                "taken": manifests.get(&s.backup),
            })
        })
        .collect();
    let scratch: Vec<String> = run
        .items()
        .filter_map(|(_, i)| i.facts.get("scratch").cloned())
        .collect();
    let checklist: Vec<Value> = run
        .steps
        .iter()
        .map(|s| json!({ "item": s.title, "ok": s.state() == State::Done, "state": s.state() }))
        .collect();
    let mut issues: Vec<String> = run
        .items()
        .filter(|(_, i)| i.state == State::Failed)
        .filter_map(|(s, i)| Some(format!("{}: {}", run.steps[s].title, i.note.as_ref()?)))
        .collect();
    issues.extend(
        run.notes
            .iter()
            .filter(|n| n.contains("NOT removed"))
            .cloned(),
    );
    if m.rto_met == Some(false) {
        issues.push(format!(
            "RTO missed: {} against a target of {}",
            secs(m.rto_secs),
            secs(Some(m.rto_target_secs as f64))
        ));
    }
    if m.rpo_met == Some(false) {
        issues.push(format!(
            "RPO missed: the restored backups are {} old against a target of {}",
            secs(m.rpo_secs),
            secs(Some(m.rpo_target_secs as f64))
        ));
    }
    // Each target's own result and measures: its items are the ones naming its backup.
    let targets: Vec<Value> = run
        .subjects
        .iter()
        .map(|s| {
            let mine = |i: &runner::Item| i.act.backup() == Some(s.backup.as_str());
            let states: Vec<State> = run
                .items()
                .filter(|(_, i)| mine(i))
                .map(|(_, i)| i.state)
                .collect();
            let result = if states.contains(&State::Failed) {
                "failed"
            } else if !states.is_empty() && states.iter().all(|s| *s == State::Done) {
                "passed"
            } else {
                "not reached"
            };
            json!({
                "kind": s.target.kind, "name": s.target.name, "backup": s.backup,
                "result": result, "measures": run.measures_of(mine),
            })
        })
        .collect();
    let time = |ms: Option<i64>| {
        ms.and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).ok())
            .map(manifest::rfc3339)
    };
    let actions: Vec<String> = issues
        .iter()
        .map(|i| format!("Fix: {i} — then run the drill again (`cfdr drill`)"))
        .collect();
    json!({
        "format": "cfdr.drill/1",
        "id": run.id,
        "date": run.id.get(..10),
        "scenario": run.params.get("scenario"),
        "components": run.params.get("components"),
        "tester": run.params.get("tester").cloned().unwrap_or_else(|| run.by.clone()),
        "outcome": if run.status == Status::Done || run.status == Status::Failed {
            json!(run.outcome())
        } else {
            json!("stopped")
        },
        "started": time(Some(run.started_ms)),
        "finished": time(run.finished_ms),
        "backups": backups,
        "targets": targets,
        "scratch_targets": scratch,
        "cleanup": run.notes,
        "checklist": checklist,
        "measures": m,
        "issues": issues,
        "actions": actions,
        "next": next_drill(run.id.get(..10).unwrap_or_default()),
        "run": run.id,
    })
}

/// A quarter after `date` (YYYY-MM-DD).
fn next_drill(date: &str) -> String {
    let mut parts = date.split('-').filter_map(|p| p.parse::<i32>().ok());
    let (Some(y), Some(mo)) = (parts.next(), parts.next()) else {
        return String::new();
    };
    let mo = mo + 3;
    let (y, mo) = if mo > 12 { (y + 1, mo - 12) } else { (y, mo) };
    format!("{y:04}-{mo:02}-01")
}

/// The report as Markdown, from the template.
pub fn markdown(run: &Run, report: &Value) -> String {
    let m = run.measures();
    let list = |v: &Value, empty: &str| -> String {
        let items: Vec<String> = v
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(|s| format!("- {s}")))
            .collect();
        if items.is_empty() {
            format!("- {empty}")
        } else {
            items.join("\n")
        }
    };
    let backups: Vec<String> = report["backups"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            format!(
                "- {}: `{}`{}",
                b["target"].as_str().unwrap_or_default(),
                b["backup"].as_str().unwrap_or_default(),
                b["taken"]
                    .as_str()
                    .map(|t| format!(" (taken {t})"))
                    .unwrap_or_default()
            )
        })
        .collect();
    let checklist: Vec<String> = report["checklist"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            format!(
                "- [{}] {}{}",
                if c["ok"] == true { "x" } else { " " },
                c["item"].as_str().unwrap_or_default(),
                match c["state"].as_str() {
                    Some("done") | None => String::new(),
                    Some(s) => format!(" ({s})"),
                }
            )
        })
        .collect();
    let steps = super::report::markdown(run);
    let steps = steps
        .split("## Steps\n\n")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .unwrap_or_default()
        .trim_end()
        .to_string();
    let scratch = list(&report["scratch_targets"], "none");
    let fields = [
        (
            "date",
            report["date"].as_str().unwrap_or_default().to_string(),
        ),
        ("id", run.id.clone()),
        (
            "outcome",
            report["outcome"].as_str().unwrap_or_default().to_string(),
        ),
        (
            "scenario",
            report["scenario"].as_str().unwrap_or_default().to_string(),
        ),
        (
            "components",
            report["components"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        ),
        ("backups", backups.join("\n")),
        ("scratch", format!("\n{scratch}\n(all removed at the end)")),
        ("checklist", checklist.join("\n")),
        ("rto", secs(m.rto_secs)),
        ("rto_target", secs(Some(m.rto_target_secs as f64))),
        ("rto_met", met(m.rto_met).into()),
        ("rpo", secs(m.rpo_secs)),
        ("rpo_target", secs(Some(m.rpo_target_secs as f64))),
        ("rpo_met", met(m.rpo_met).into()),
        ("steps", steps),
        ("issues", list(&report["issues"], "None")),
        ("actions", list(&report["actions"], "None")),
        (
            "tester",
            report["tester"].as_str().unwrap_or_default().to_string(),
        ),
        (
            "next",
            report["next"].as_str().unwrap_or_default().to_string(),
        ),
        ("version", env!("CARGO_PKG_VERSION").to_string()),
    ];
    let mut out = TEMPLATE.to_string();
    for (k, v) in fields {
        out = out.replace(&format!("{{{{{k}}}}}"), &v);
    }
    out
}

/// Writes the drill's report (both forms, MAC'd) and records the drill in the audit trail.
pub async fn write(env: &Env<'_>, run: &Run) -> Result<Value> {
    let mut taken = BTreeMap::new();
    for s in &run.subjects {
        if let Ok(e) = env.repo.entry(&s.backup).await {
            taken.insert(s.backup.clone(), e.started);
        }
    }
    let report = report(run, &taken);
    let md = markdown(run, &report);
    env.repo.put_drill(&run.id, report.clone(), &md).await?;
    let m = run.measures();
    let record = crate::repo::audit::Record {
        action: "drill".into(),
        run: Some(run.id.clone()),
        result: report["outcome"].as_str().unwrap_or_default().to_string(),
        detail: Some(format!(
            "{} drill of {}: RTO {}, RPO {}; {} issues",
            report["scenario"].as_str().unwrap_or_default(),
            report["components"].as_str().unwrap_or_default(),
            secs(m.rto_secs),
            secs(m.rpo_secs),
            report["issues"].as_array().map_or(0, Vec::len)
        )),
        ..Default::default()
    };
    crate::ops::audit::record(
        env,
        record,
        std::time::Instant::now(),
        &crate::progress::Progress::silent(),
    )
    .await;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenarios_picks_and_the_next_date_read_as_written() {
        for n in Scenario::NAMES {
            assert_eq!(Scenario::parse(n).unwrap().name(), n);
        }
        assert!(Scenario::parse("fire").is_none());
        assert_eq!(Pick::parse("latest"), Some(Pick::Latest));
        assert_eq!(
            Pick::parse("random-within:30d"),
            Some(Pick::RandomWithin(std::time::Duration::from_secs(
                30 * 86_400
            )))
        );
        assert!(Pick::parse("random").is_none());
        assert_eq!(next_drill("2026-12-03"), "2027-03-01");
        assert_eq!(next_drill("2026-04-30"), "2026-07-01");
        assert!(TEMPLATE.contains("{{checklist}}") && TEMPLATE.contains("{{actions}}"));
    }
}
