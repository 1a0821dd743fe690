//! A run's report, Markdown and JSON, written into the run's folder when it ends
//! (`runs/<run-id>/report.md` and `report.json`): the steps with their timings and results,
//! the backups used, what changed, the verification, RTO and RPO against the targets.
//! Rendering is pure; [`write`] stores it.

use serde_json::{Value, json};

use super::runner::{Act, Measures, Outcome, Run, State};
use crate::ops::Result;
use crate::ops::backup::Env;

fn time(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map(crate::repo::manifest::rfc3339)
        .unwrap_or_default()
}

fn secs(s: f64) -> String {
    if s < 120.0 {
        format!("{s:.1}s")
    } else {
        humantime::format_duration(std::time::Duration::from_secs(s.round() as u64)).to_string()
    }
}

fn state_word(s: State) -> &'static str {
    match s {
        State::Pending => "pending",
        State::Running => "running",
        State::Done => "done",
        State::Failed => "FAILED",
        State::Skipped => "skipped",
    }
}

pub fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Success => "success",
        Outcome::Partial => "PARTIAL",
        Outcome::Failed => "FAILED",
    }
}

/// `12.3s (target 15m): met`.
fn against(measured: Option<f64>, target: u64, met: Option<bool>) -> String {
    let target = humantime::format_duration(std::time::Duration::from_secs(target));
    match (measured, met) {
        (Some(m), Some(true)) => format!("{} (target {target}): met", secs(m)),
        (Some(m), _) => format!("{} (target {target}): MISSED", secs(m)),
        (None, _) => format!("not measured: nothing was restored (target {target})"),
    }
}

/// The report as Markdown.
pub fn markdown(run: &Run) -> String {
    let m: Measures = run.measures();
    let mut out = format!(
        "# {} — {}\n\n| | |\n| --- | --- |\n| run | `{}` |\n| outcome | **{}** |\n| by | {} |\n| started | {} |\n",
        run.playbook,
        run.title,
        run.id,
        outcome_word(run.outcome()),
        run.by,
        time(run.started_ms)
    );
    if let Some(i) = run.incident_ms {
        out.push_str(&format!("| incident | {} |\n", time(i)));
    }
    if let Some(f) = run.finished_ms {
        out.push_str(&format!(
            "| finished | {} ({}) |\n",
            time(f),
            secs((f - run.started_ms) as f64 / 1000.0)
        ));
    }
    out.push_str(&format!(
        "| RTO | {} |\n| RPO | {} |\n",
        against(m.rto_secs, m.rto_target_secs, m.rto_met),
        against(m.rpo_secs, m.rpo_target_secs, m.rpo_met)
    ));
    if !run.params.is_empty() {
        out.push_str("\n## Parameters\n\n");
        for (k, v) in &run.params {
            out.push_str(&format!("- `{k}` = `{v}`\n"));
        }
    }
    out.push_str(
        "\n## Steps\n\n| # | step | result | time | notes |\n| --- | --- | --- | --- | --- |\n",
    );
    for (n, s) in run.steps.iter().enumerate() {
        let t = s
            .millis()
            .map(|ms| secs(ms as f64 / 1000.0))
            .unwrap_or_else(|| "-".into());
        let notes: Vec<String> = s
            .items
            .iter()
            .filter_map(|i| i.note.clone())
            .map(|n| n.replace('|', "\\|"))
            .collect();
        out.push_str(&format!(
            "| {} | {} ({}) | {} | {t} | {} |\n",
            n + 1,
            s.title.replace('|', "\\|"),
            s.kind,
            state_word(s.state()),
            notes.join("<br>")
        ));
    }
    if !run.notes.is_empty() {
        out.push_str("\n## Afterwards\n\n");
        for n in &run.notes {
            out.push_str(&format!("- {n}\n"));
        }
    }
    let restores: Vec<_> = run
        .items()
        .filter(|(_, i)| matches!(i.act, Act::Restore { .. }))
        .collect();
    if !restores.is_empty() {
        out.push_str("\n## Backups restored\n\n");
        for (_, i) in restores {
            if let Act::Restore { backup, .. } = &i.act {
                let f = &i.facts;
                out.push_str(&format!(
                    "- backup `{backup}` into `{}`: {}{}{}\n",
                    f.get("target").map_or("-", String::as_str),
                    state_word(i.state),
                    f.get("restore_run")
                        .map(|r| format!(", restore run `{r}`"))
                        .unwrap_or_default(),
                    f.get("snapshot")
                        .map(|s| format!(
                            ", undo point `{s}` (`cfdr restore --undo {}`)",
                            f.get("restore_run").map_or("", String::as_str)
                        ))
                        .unwrap_or_default()
                ));
            }
        }
    }
    out
}

/// The report as JSON: the run record with its outcome and measures.
pub fn json(run: &Run) -> Value {
    json!({
        "run": run,
        "outcome": run.outcome(),
        "measures": run.measures(),
    })
}

/// Stores both forms in the run's folder.
pub async fn write(env: &Env<'_>, run: &Run) -> Result<()> {
    env.repo
        .put_run_file(&run.id, "report.md", markdown(run).as_bytes())
        .await?;
    env.repo
        .put_run_file(
            &run.id,
            "report.json",
            &serde_json::to_vec_pretty(&json(run))?,
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_met_or_missed_in_words() {
        assert_eq!(
            against(Some(12.34), 900, Some(true)),
            "12.3s (target 15m): met"
        );
        assert_eq!(
            against(Some(7200.0), 3600, Some(false)),
            "2h (target 1h): MISSED"
        );
        assert!(against(None, 60, None).starts_with("not measured"));
    }
}
