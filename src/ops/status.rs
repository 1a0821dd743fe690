//! `cfdr status`: how each target stands — its newest backup's age against its RPO, its last
//! drill and how it went, its backups' failures — computed without I/O from the catalog, the
//! drill reports and the audit trail ([`compute`]), and written as a table, as JSON (the
//! [`Status`] itself) or in Prometheus's text format ([`prometheus`]) for a monitor to scrape.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use super::Result;
use super::backup::Env;
use super::inventory::{self, Freshness, TargetRow};
use crate::config::Config;
use crate::repo::audit;
use crate::repo::catalog::Entry;
use crate::repo::manifest::{parse_time, rfc3339};
use crate::text::short_duration as short;

/// What `compute` reads: everything comes from the repository, but the targets the account
/// has without a backup (`known`).
pub struct Inputs<'a> {
    pub entries: &'a [Entry],
    pub known: &'a [(String, String)],
    /// Drill reports (`cfdr.drill/1` JSON), any order.
    pub drills: &'a [Value],
    pub audit: &'a [audit::Entry],
    pub config: &'a Config,
    pub now: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub generated: String,
    pub targets: Vec<TargetStatus>,
    /// The targets past their RPO (or never backed up), as ``d1 `shop` ``.
    pub past_rpo: Vec<String>,
    /// The newest drill of all.
    pub last_drill: Option<Drill>,
    /// What could not be read (the account's list of targets, a drill report that fails its
    /// MAC): the status stands without it.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetStatus {
    pub kind: String,
    pub name: String,
    /// ok, due, late or never.
    pub state: &'static str,
    pub newest: Option<String>,
    /// When the newest backup finished.
    pub last_success: Option<String>,
    pub age_secs: Option<u64>,
    pub rpo_secs: u64,
    pub last_duration_secs: Option<f64>,
    /// The newest backup's size before sealing.
    pub last_size_bytes: Option<u64>,
    /// Every backup of the target, as stored.
    pub stored_bytes: u64,
    pub backups: usize,
    /// Warnings of the newest backup.
    pub warnings: usize,
    /// Failed backups in the audit trail: all, the last 24 hours, and since the last success.
    pub failures: u64,
    pub failures_24h: u64,
    pub consecutive_failures: u64,
    /// The newest failed (or partial) action on the target: backup, verify, restore, undo.
    pub last_failure: Option<Failure>,
    pub last_drill: Option<Drill>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub at: String,
    pub action: String,
    pub result: String,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drill {
    pub id: String,
    pub at: Option<String>,
    pub scenario: Option<String>,
    /// passed, failed or not reached for a target; success, partial, failed or stopped for a
    /// whole drill.
    pub result: String,
    pub rto_secs: Option<f64>,
    pub rpo_secs: Option<f64>,
    pub rto_target_secs: Option<u64>,
    pub rpo_target_secs: Option<u64>,
}

impl TargetStatus {
    pub fn label(&self) -> String {
        format!("{} `{}`", self.kind, self.name)
    }

    pub fn past_rpo(&self) -> bool {
        matches!(self.state, "late" | "never")
    }
}

fn state(f: Freshness) -> &'static str {
    match f {
        Freshness::Fresh => "ok",
        Freshness::Due => "due",
        Freshness::Late => "late",
        Freshness::Never => "never",
    }
}

fn drill(report: &Value, result: &Value, measures: &Value) -> Drill {
    let f = |k: &str| measures[k].as_f64();
    let u = |k: &str| measures[k].as_u64();
    let s = |v: &Value| v.as_str().map(str::to_string);
    Drill {
        id: report["id"].as_str().unwrap_or_default().to_string(),
        at: s(&report["finished"]).or_else(|| s(&report["started"])),
        scenario: s(&report["scenario"]),
        result: result.as_str().unwrap_or("unknown").to_string(),
        rto_secs: f("rto_secs"),
        rpo_secs: f("rpo_secs"),
        rto_target_secs: u("rto_target_secs"),
        rpo_target_secs: u("rpo_target_secs"),
    }
}

/// Each target's last drill, by (kind, name), from drill reports (`cfdr.drill/1` JSON) in any
/// order: the newest that names the target, with the target's own result and measures.
pub fn last_drills(reports: &[Value]) -> BTreeMap<(String, String), Drill> {
    // Newest first (ids begin with their time); a target's last drill is the first naming it.
    let mut drills: Vec<&Value> = reports.iter().collect();
    drills.sort_by(|a, b| b["id"].as_str().cmp(&a["id"].as_str()));
    let mut last = BTreeMap::new();
    for d in &drills {
        for t in d["targets"].as_array().into_iter().flatten() {
            let key = (
                t["kind"].as_str().unwrap_or_default().to_string(),
                t["name"].as_str().unwrap_or_default().to_string(),
            );
            last.entry(key)
                .or_insert_with(|| drill(d, &t["result"], &t["measures"]));
        }
    }
    last
}

/// Each target's status, the newest first of its drills and failures.
pub fn compute(i: &Inputs) -> Status {
    // Scratch targets a drill made (and left, if its cleanup failed) are not the account's own.
    let known: Vec<(String, String)> = i
        .known
        .iter()
        .filter(|(_, n)| !n.contains(super::restore::scratch::MARK))
        .cloned()
        .collect();
    let rows = inventory::inventory(i.entries, &known, i.config, i.now);
    let newest: BTreeMap<&str, &Entry> = i.entries.iter().map(|e| (e.id.as_str(), e)).collect();

    let mut drills: Vec<&Value> = i.drills.iter().collect();
    drills.sort_by(|a, b| b["id"].as_str().cmp(&a["id"].as_str()));
    let last_drill = last_drills(i.drills);

    let day_ago = i.now - Duration::from_secs(86_400);
    let targets = rows
        .iter()
        .map(|r: &TargetRow| {
            let label = format!("{} `{}`", r.kind, r.name);
            let mine: Vec<&audit::Entry> = i
                .audit
                .iter()
                .filter(|e| e.record.target.as_deref() == Some(label.as_str()))
                .collect();
            let failed =
                |e: &&&audit::Entry| matches!(e.record.result.as_str(), "failed" | "partial");
            let backups = || mine.iter().filter(|e| e.record.action == "backup");
            let failures = backups().filter(failed).count() as u64;
            let failures_24h = backups()
                .filter(failed)
                .filter(|e| parse_time(&e.at).is_some_and(|t| t >= day_ago))
                .count() as u64;
            let consecutive_failures = backups()
                .rev()
                .take_while(|e| e.record.result != "success")
                .filter(failed)
                .count() as u64;
            let last_failure = mine.iter().rev().find(failed).map(|e| Failure {
                at: e.at.clone(),
                action: e.record.action.clone(),
                result: e.record.result.clone(),
                detail: e.record.detail.clone(),
            });
            let entry = r.newest.as_deref().and_then(|id| newest.get(id));
            let duration = entry.and_then(|e| {
                let d = parse_time(&e.finished)? - parse_time(&e.started)?;
                Some((d.as_seconds_f64() * 1000.0).round() / 1000.0)
            });
            TargetStatus {
                kind: r.kind.clone(),
                name: r.name.clone(),
                state: state(r.freshness),
                newest: r.newest.clone(),
                last_success: entry.map(|e| e.finished.clone()),
                age_secs: r.age.map(|a| a.as_secs()),
                rpo_secs: r.rpo.as_secs(),
                last_duration_secs: duration,
                last_size_bytes: entry.map(|e| e.plaintext_size),
                stored_bytes: r.stored,
                backups: r.backups,
                warnings: r.warnings,
                failures,
                failures_24h,
                consecutive_failures,
                last_failure,
                last_drill: last_drill.get(&(r.kind.clone(), r.name.clone())).cloned(),
            }
        })
        .collect::<Vec<_>>();
    Status {
        generated: rfc3339(i.now),
        past_rpo: targets
            .iter()
            .filter(|t| t.past_rpo())
            .map(TargetStatus::label)
            .collect(),
        last_drill: drills
            .first()
            .map(|d| drill(d, &d["outcome"], &d["measures"])),
        targets,
        notes: Vec::new(),
    }
}

/// The status of everything `env`'s repository holds and, with a client, of the account's
/// targets that have no backup yet.
pub async fn of(env: &Env<'_>, now: OffsetDateTime) -> Result<Status> {
    let entries = env.repo.catalog().await?.entries;
    let mut notes = Vec::new();
    let known = match env.client {
        Some(c) => match super::backup::account_targets(c).await {
            Ok(k) => k,
            Err(e) => {
                notes.push(format!(
                    "the account's targets could not be listed ({e}): only targets with a backup are shown"
                ));
                Vec::new()
            }
        },
        None => Vec::new(),
    };
    let mut drills = Vec::new();
    for id in env.repo.drills().await? {
        match env.repo.drill(&id).await {
            Ok((report, _)) => drills.push(report),
            Err(e) => notes.push(format!("drill {id} is not counted: {e}")),
        }
    }
    let audit = env.repo.audit_entries().await?;
    let mut status = compute(&Inputs {
        entries: &entries,
        known: &known,
        drills: &drills,
        audit: &audit,
        config: env.config,
        now,
    });
    status.notes = notes;
    Ok(status)
}

/// The status as a plain table, then what is past its RPO and the last drill.
pub fn table(s: &Status) -> String {
    let mut out = format!(
        "{:<7} {:<26} {:>6} {:>5} {:<6} {:>5} {:<22} {}\n",
        "KIND", "TARGET", "AGE", "RPO", "STATE", "FAILS", "LAST DRILL", "LAST FAILURE"
    );
    for t in &s.targets {
        let drill = t.last_drill.as_ref().map_or("-".to_string(), |d| {
            format!(
                "{} {}",
                d.result,
                d.at.as_deref().and_then(|a| a.get(..10)).unwrap_or("")
            )
        });
        let failure = t.last_failure.as_ref().map_or("-".to_string(), |f| {
            format!(
                "{} {} {}{}",
                f.at.get(..16).unwrap_or(&f.at),
                f.action,
                f.result,
                f.detail
                    .as_deref()
                    .map(|d| format!(": {}", crate::text::truncate(d, 60)))
                    .unwrap_or_default()
            )
        });
        let _ = writeln!(
            out,
            "{:<7} {:<26} {:>6} {:>5} {:<6} {:>5} {:<22} {}",
            inventory::kind_title(&t.kind),
            t.name,
            t.age_secs
                .map(|a| short(Duration::from_secs(a)))
                .unwrap_or_else(|| "-".into()),
            short(Duration::from_secs(t.rpo_secs)),
            t.state.to_uppercase(),
            t.failures,
            drill,
            failure
        );
    }
    if s.targets.is_empty() {
        out.push_str("no targets: nothing backed up yet (`cfdr backup --all`)\n");
    }
    match s.past_rpo.len() {
        0 => out.push_str("every target is within its RPO\n"),
        n => {
            let _ = writeln!(out, "{n} past their RPO: {}", s.past_rpo.join(", "));
        }
    }
    match &s.last_drill {
        Some(d) => {
            let secs = |v: Option<f64>| v.map_or("-".into(), |s| short(Duration::from_secs_f64(s)));
            let _ = writeln!(
                out,
                "last drill {} ({}): {}, RTO {} of {}, RPO {} of {}",
                d.id,
                d.scenario.as_deref().unwrap_or("?"),
                d.result,
                secs(d.rto_secs),
                secs(d.rto_target_secs.map(|s| s as f64)),
                secs(d.rpo_secs),
                secs(d.rpo_target_secs.map(|s| s as f64)),
            );
        }
        None => out.push_str("no drill yet: `cfdr drill --yes` proves the backups restore\n"),
    }
    for n in &s.notes {
        let _ = writeln!(out, "note: {n}");
    }
    out
}

/// A label value in Prometheus's text format: `\`, `"` and newlines escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A sample value: integers as integers, the rest as Rust prints an `f64` (which Prometheus
/// parses back exactly).
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn unix(at: &str) -> Option<f64> {
    parse_time(at).map(|t| t.unix_timestamp_nanos() as f64 / 1e9)
}

/// One metric family: its HELP, its TYPE and a sample per target that has a value.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    value: fn(&TargetStatus) -> Option<f64>,
}

const FAMILIES: &[Family] = &[
    Family {
        name: "cfdr_backup_last_success_timestamp_seconds",
        kind: "gauge",
        help: "When the target's newest backup finished (Unix time).",
        value: |t| t.last_success.as_deref().and_then(unix),
    },
    Family {
        name: "cfdr_backup_last_duration_seconds",
        kind: "gauge",
        help: "How long the target's newest backup took.",
        value: |t| t.last_duration_secs,
    },
    Family {
        name: "cfdr_backup_last_size_bytes",
        kind: "gauge",
        help: "The target's newest backup, before sealing (a sudden drop can mean data loss).",
        value: |t| t.last_size_bytes.map(|b| b as f64),
    },
    Family {
        name: "cfdr_backup_stored_bytes",
        kind: "gauge",
        help: "Every backup of the target as the repository stores it.",
        value: |t| Some(t.stored_bytes as f64),
    },
    Family {
        name: "cfdr_backups",
        kind: "gauge",
        help: "Backups of the target in the repository.",
        value: |t| Some(t.backups as f64),
    },
    Family {
        name: "cfdr_backup_age_seconds",
        kind: "gauge",
        help: "Age of the target's newest backup.",
        value: |t| t.age_secs.map(|a| a as f64),
    },
    Family {
        name: "cfdr_backup_rpo_seconds",
        kind: "gauge",
        help: "The target's recovery point objective.",
        value: |t| Some(t.rpo_secs as f64),
    },
    Family {
        name: "cfdr_backup_past_rpo",
        kind: "gauge",
        help: "1 when the target's newest backup is older than its RPO, or it has none.",
        value: |t| Some(if t.past_rpo() { 1.0 } else { 0.0 }),
    },
    Family {
        name: "cfdr_backup_failures_total",
        kind: "counter",
        help: "Failed backups of the target in the audit trail.",
        value: |t| Some(t.failures as f64),
    },
    Family {
        name: "cfdr_backup_failures_24h",
        kind: "gauge",
        help: "Failed backups of the target in the last 24 hours.",
        value: |t| Some(t.failures_24h as f64),
    },
    Family {
        name: "cfdr_backup_consecutive_failures",
        kind: "gauge",
        help: "Failed backups of the target since its last successful one.",
        value: |t| Some(t.consecutive_failures as f64),
    },
    Family {
        name: "cfdr_drill_last_timestamp_seconds",
        kind: "gauge",
        help: "When the target's last drill ended (Unix time).",
        value: |t| t.last_drill.as_ref()?.at.as_deref().and_then(unix),
    },
    Family {
        name: "cfdr_drill_last_success",
        kind: "gauge",
        help: "1 when the target's last drill restored and verified it, 0 when not.",
        value: |t| {
            Some(if t.last_drill.as_ref()?.result == "passed" {
                1.0
            } else {
                0.0
            })
        },
    },
    Family {
        name: "cfdr_drill_last_rto_seconds",
        kind: "gauge",
        help: "RTO measured by the target's last drill: from its start to the target verified.",
        value: |t| t.last_drill.as_ref()?.rto_secs,
    },
    Family {
        name: "cfdr_drill_last_rpo_seconds",
        kind: "gauge",
        help: "RPO measured by the target's last drill: the age of the backup it restored.",
        value: |t| t.last_drill.as_ref()?.rpo_secs,
    },
    Family {
        name: "cfdr_drill_rto_target_seconds",
        kind: "gauge",
        help: "The RTO the target's last drill was held to.",
        value: |t| t.last_drill.as_ref()?.rto_target_secs.map(|s| s as f64),
    },
    Family {
        name: "cfdr_drill_rpo_target_seconds",
        kind: "gauge",
        help: "The RPO the target's last drill was held to.",
        value: |t| t.last_drill.as_ref()?.rpo_target_secs.map(|s| s as f64),
    },
];

/// The status in Prometheus's text exposition format (version 0.0.4): one family per
/// figure, labelled by kind and target.
pub fn prometheus(s: &Status) -> String {
    let mut out = String::new();
    for f in FAMILIES {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
        for t in &s.targets {
            if let Some(v) = (f.value)(t) {
                let _ = writeln!(
                    out,
                    "{}{{kind=\"{}\",target=\"{}\"}} {}",
                    f.name,
                    label(&t.kind),
                    label(&t.name),
                    number(v)
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "# HELP cfdr_targets_past_rpo Targets whose newest backup is older than their RPO.\n\
         # TYPE cfdr_targets_past_rpo gauge\ncfdr_targets_past_rpo {}",
        s.past_rpo.len()
    );
    if let Some(d) = &s.last_drill {
        let _ = writeln!(
            out,
            "# HELP cfdr_drill_success 1 when the newest drill succeeded.\n\
             # TYPE cfdr_drill_success gauge\ncfdr_drill_success{{scenario=\"{}\"}} {}",
            label(d.scenario.as_deref().unwrap_or("")),
            u8::from(d.result == "success")
        );
    }
    for n in &s.notes {
        let _ = writeln!(out, "# note: {}", n.replace('\n', " "));
    }
    if let Some(t) = parse_time(&s.generated) {
        let _ = writeln!(
            out,
            "# HELP cfdr_status_timestamp_seconds When this status was computed (Unix time).\n\
             # TYPE cfdr_status_timestamp_seconds gauge\ncfdr_status_timestamp_seconds {}",
            t.unix_timestamp()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::audit::Record;

    fn entry(id: &str, kind: &str, target: &str, started: &str, finished: &str) -> Entry {
        Entry {
            id: id.into(),
            kind: kind.into(),
            target: target.into(),
            target_id: format!("{target}-id"),
            trigger: "manual".into(),
            method: "m".into(),
            started: started.into(),
            finished: finished.into(),
            plaintext_size: 1000,
            stored_size: 1100,
            artifacts: 1,
            warnings: 0,
            dir: String::new(),
        }
    }

    fn audit(seq: u64, at: &str, action: &str, target: &str, result: &str) -> audit::Entry {
        audit::Entry {
            seq,
            at: at.into(),
            who: "dana@host".into(),
            record: Record {
                action: action.into(),
                target: Some(target.into()),
                result: result.into(),
                detail: Some(format!("{action} {result}")),
                ..Default::default()
            },
            prev: String::new(),
            mac: String::new(),
        }
    }

    fn sample() -> Status {
        let now = time::macros::datetime!(2026-12-04 12:00 UTC);
        let entries = vec![
            entry(
                "b1",
                "d1",
                "shop",
                "2026-12-04T10:00:00Z",
                "2026-12-04T10:00:02.5Z",
            ),
            entry(
                "b2",
                "kv",
                "CACHE",
                "2026-12-01T10:00:00Z",
                "2026-12-01T10:00:01Z",
            ),
        ];
        let known = vec![
            ("r2".to_string(), "media \"eu\"".to_string()),
            ("d1".to_string(), "shop-drill-ab12".to_string()),
        ];
        let drills = vec![
            serde_json::json!({
                "id": "2026-12-02T09-00-00Z-aaaa", "scenario": "full", "outcome": "failed",
                "finished": "2026-12-02T09:01:00Z",
                "measures": { "rto_secs": null, "rpo_secs": null, "rto_target_secs": 3600, "rpo_target_secs": 86400 },
                "targets": [{ "kind": "d1", "name": "shop", "result": "failed",
                    "measures": { "rto_secs": null, "rpo_secs": null, "rto_target_secs": 3600, "rpo_target_secs": 86400 } }],
            }),
            serde_json::json!({
                "id": "2026-12-03T09-00-00Z-bbbb", "scenario": "full", "outcome": "success",
                "finished": "2026-12-03T09:00:30Z",
                "measures": { "rto_secs": 30.5, "rpo_secs": 7200.0, "rto_target_secs": 3600, "rpo_target_secs": 86400 },
                "targets": [{ "kind": "kv", "name": "CACHE", "result": "passed",
                    "measures": { "rto_secs": 12.25, "rpo_secs": 7200.0, "rto_target_secs": 3600, "rpo_target_secs": 86400 } }],
            }),
        ];
        let trail = vec![
            audit(1, "2026-12-02T10:00:00Z", "backup", "kv `CACHE`", "failed"),
            audit(2, "2026-12-03T13:00:00Z", "backup", "kv `CACHE`", "failed"),
            audit(3, "2026-12-04T10:00:00Z", "backup", "d1 `shop`", "success"),
            audit(4, "2026-12-04T11:00:00Z", "backup", "kv `CACHE`", "failed"),
            audit(5, "2026-12-04T11:30:00Z", "verify", "d1 `shop`", "failed"),
        ];
        compute(&Inputs {
            entries: &entries,
            known: &known,
            drills: &drills,
            audit: &trail,
            config: &Config::default(),
            now,
        })
    }

    #[test]
    fn each_target_stands_against_its_rpo_with_its_drill_and_failures() {
        let s = sample();
        let names: Vec<String> = s.targets.iter().map(TargetStatus::label).collect();
        assert_eq!(
            names,
            ["d1 `shop`", "kv `CACHE`", "r2 `media \"eu\"`"],
            "no scratch target"
        );
        let (shop, cache, media) = (&s.targets[0], &s.targets[1], &s.targets[2]);
        assert_eq!(
            (shop.state, cache.state, media.state),
            ("ok", "late", "never")
        );
        assert_eq!(s.past_rpo, ["kv `CACHE`", "r2 `media \"eu\"`"]);
        assert_eq!(shop.last_duration_secs, Some(2.5));
        assert_eq!(shop.age_secs, Some(7200));
        assert_eq!((shop.failures, shop.consecutive_failures), (0, 0));
        let f = shop.last_failure.as_ref().unwrap();
        assert_eq!(
            (f.action.as_str(), f.at.as_str()),
            ("verify", "2026-12-04T11:30:00Z")
        );
        assert_eq!(shop.last_drill.as_ref().unwrap().result, "failed");
        assert_eq!(
            (
                cache.failures,
                cache.failures_24h,
                cache.consecutive_failures
            ),
            (3, 2, 3)
        );
        assert_eq!(cache.last_drill.as_ref().unwrap().rto_secs, Some(12.25));
        assert!(media.last_drill.is_none() && media.newest.is_none());
        let last = s.last_drill.as_ref().unwrap();
        assert_eq!(
            (last.id.as_str(), last.result.as_str()),
            ("2026-12-03T09-00-00Z-bbbb", "success")
        );
        let text = table(&s);
        assert!(text.contains("2 past their RPO: kv `CACHE`"), "{text}");
        assert!(text.contains("verify failed: verify failed"), "{text}");
    }

    #[test]
    fn prometheus_text_has_a_help_and_type_per_family_and_escaped_labels() {
        let p = prometheus(&sample());
        assert!(
            p.contains("cfdr_backup_last_duration_seconds{kind=\"d1\",target=\"shop\"} 2.5\n"),
            "{p}"
        );
        assert!(
            p.contains("cfdr_backup_past_rpo{kind=\"r2\",target=\"media \\\"eu\\\"\"} 1\n"),
            "{p}"
        );
        assert!(p.contains("# TYPE cfdr_backup_failures_total counter\n"));
        assert!(p.contains("cfdr_backup_failures_total{kind=\"kv\",target=\"CACHE\"} 3\n"));
        assert!(p.contains("cfdr_drill_last_success{kind=\"d1\",target=\"shop\"} 0\n"));
        assert!(p.contains("cfdr_targets_past_rpo 2\n"));
        // Never backed up: no last-success sample, rather than a made-up zero.
        assert!(!p.contains("cfdr_backup_last_success_timestamp_seconds{kind=\"r2\""));
        for line in p.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
