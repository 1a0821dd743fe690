//! A restore's plan as the operator reads it, the same on the command line and in the console:
//! what happens to the target, the pre-recovery snapshot, the requests and the budget wait.

use std::io::Write;

use super::{D1Plan, Plan, Snapshot, TableAction as Action};
use crate::text::human_size;

/// The plan as lines, for a screen.
pub fn lines(plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    let _ = print_plan(plan, &mut out);
    String::from_utf8_lossy(&out)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The plan, line by line: what happens to the target, the snapshot, the requests.
pub fn print_plan(plan: &Plan, out: &mut impl Write) -> std::io::Result<()> {
    let c = &plan.counts;
    if let Some(tt) = &plan.time_travel {
        writeln!(
            out,
            "plan {}: Time Travel {} back to bookmark {}{}, in place: every table is overwritten; {}",
            plan.run,
            plan.target.label(),
            tt.bookmark,
            tt.at
                .as_ref()
                .map(|t| format!(" (as it was at {t})"))
                .unwrap_or_default(),
            if plan.backup.is_empty() {
                "no backup was taken at that bookmark, so only D1's bookmark can be checked afterwards".to_string()
            } else {
                format!(
                    "compared afterwards with backup {}, taken at it",
                    plan.backup
                )
            }
        )?;
        if let Some(d1) = &plan.d1 {
            print_tables(d1, None, out)?;
        } else {
            writeln!(out, "  tables: {} overwritten", c.changed)?;
        }
    } else {
        writeln!(
            out,
            "plan {}: restore backup {} (of `{}`) into {}{}, mode {}{}",
            plan.run,
            plan.backup,
            plan.source,
            plan.target.label(),
            if plan.target.exists {
                ""
            } else {
                " (to be created)"
            },
            plan.mode.as_str(),
            plan.prefix
                .as_ref()
                .map(|p| format!(", prefix `{p}`"))
                .unwrap_or_default()
        )?;
        if let Some(p) = &plan.profile {
            writeln!(out, "  account: profile `{p}`")?;
        }
        if !plan.tiers.is_empty() {
            let tiers: Vec<String> = plan
                .tiers
                .iter()
                .map(|t| format!("{} ({} keys: {})", t.name, t.keys, t.patterns.join(" ")))
                .collect();
            writeln!(out, "  tiers, in this order: {}", tiers.join(", then "))?;
        }
        match &plan.d1 {
            Some(d1) => print_tables(d1, Some(c.write_bytes), out)?,
            None => writeln!(
                out,
                "  keys: {} to add, {} to change, {} to delete, {} unchanged, {} kept (skip), {} expired (not written); {} to write",
                c.added,
                c.changed,
                c.removed,
                c.unchanged,
                c.kept,
                c.expired,
                human_size(c.write_bytes)
            )?,
        }
    }
    let snapshot = match plan.snapshot {
        Snapshot::Required => format!(
            "a backup of {} first (trigger pre-recovery)",
            plan.target.label()
        ),
        Snapshot::NotNeeded if !plan.target.exists => "none needed (a new target)".into(),
        Snapshot::NotNeeded => "none needed (nothing is overwritten)".into(),
        Snapshot::Waived => "WAIVED: what is overwritten cannot be undone".into(),
    };
    writeln!(out, "  pre-recovery snapshot: {snapshot}")?;
    let steps: Vec<String> = plan
        .requests
        .by_step
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let r = &plan.requests;
    writeln!(
        out,
        "  requests: {} — {} in all{}{}",
        steps.join(", "),
        r.total,
        if r.eta_secs > 0.0 {
            format!(", about {}", eta(r.eta_secs))
        } else {
            String::new()
        },
        if r.budget_wait_secs > 0.5 {
            format!(
                " ({} of it waiting on the request budget)",
                eta(r.budget_wait_secs)
            )
        } else {
            ", within the request budget".into()
        }
    )?;
    Ok(())
}

/// An estimate in seconds, as a plan says it: tenths under ten seconds, whole seconds to a
/// few minutes, then minutes.
fn eta(secs: f64) -> String {
    match secs {
        s if s < 1.0 => "under a second".to_string(),
        s if s < 10.0 => format!("{s:.1}s"),
        s if s < 600.0 => format!("{s:.0}s"),
        s => format!("{:.0} min", s / 60.0),
    }
}

/// A D1 plan: each table with what happens to it and its rows before and after, then the
/// other objects dropped first.
fn print_tables(
    d1: &D1Plan,
    import_bytes: Option<u64>,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let count = |a: Action| d1.tables.iter().filter(|t| t.action == a).count();
    writeln!(
        out,
        "  tables: {} to create, {} to replace, {} to drop, {} kept (skip){}",
        count(Action::Create),
        count(Action::Replace),
        count(Action::Drop),
        count(Action::Keep),
        import_bytes
            .map(|b| format!("; {} of SQL to import", human_size(b)))
            .unwrap_or_default()
    )?;
    let rows = |r: Option<u64>| r.map_or_else(|| "-".to_string(), |r| r.to_string());
    for t in &d1.tables {
        let action = match t.action {
            Action::Create => "create",
            Action::Replace => "replace",
            Action::Drop => "DROP",
            Action::Keep => "keep",
        };
        writeln!(
            out,
            "    {action:<8} {}  rows {} -> {}",
            t.name,
            rows(t.rows_now),
            rows(t.rows_after)
        )?;
    }
    for d in &d1.drops {
        writeln!(out, "    drop {} {} first", d.kind, d.name)?;
    }
    Ok(())
}
