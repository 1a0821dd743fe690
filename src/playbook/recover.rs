//! A restore as a run of the runner: what the console starts when the operator restores a
//! backup from the screen. Validate the backup in full, take a pre-recovery snapshot of the
//! target, ask for its name typed, restore, verify — the acts a playbook's steps are made of,
//! so the run is journaled, resumable, reported and audited like any playbook run, and does
//! what `cfdr restore` does by hand.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use super::runner::{self, Act, Run, Status, Subject, Target};
pub use crate::ops::restore::Mode;
use crate::ops::restore::scratch;
use crate::repo::catalog::Entry;
use crate::repo::{lease, manifest};

/// Where the backup goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    /// Back over the target it was taken of.
    Same,
    /// Into another target of the same kind, by name; created when it does not exist.
    Other { name: String, exists: bool },
    /// Into a new scratch target, named after the backup's target and run `run` (the run's id
    /// is chosen with the form, so the plan names the very target the run creates), verified,
    /// then removed at the end of the run: proof that the backup restores, nothing touched.
    Scratch { run: String },
}

/// What the operator chose on the restore form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub into: Dest,
    /// D1: only these tables.
    pub tables: Vec<String>,
    /// KV and R2: only keys (objects) under this prefix.
    pub prefix: Option<String>,
    /// What happens to what the target holds: overwrite, skip or clear.
    pub mode: Mode,
}

impl Choice {
    /// The target written to.
    pub fn target(&self, of: &Entry) -> Target {
        Target {
            kind: of.kind.clone(),
            name: match &self.into {
                Dest::Same => of.target.clone(),
                Dest::Other { name, .. } => name.clone(),
                Dest::Scratch { run } => scratch::name(&of.kind, &of.target, run),
            },
        }
    }

    pub fn scratch(&self) -> bool {
        matches!(self.into, Dest::Scratch { .. })
    }

    /// Whether the restore writes over data that is there now (and so needs a pre-recovery
    /// snapshot and the target's name typed).
    pub fn overwrites(&self) -> bool {
        match &self.into {
            Dest::Same => true,
            Dest::Other { exists, .. } => *exists,
            Dest::Scratch { .. } => false,
        }
    }
}

/// The run restoring backup `of` as `choice` says, held to the RTO and RPO of the kind's
/// recovery playbook (`rto_rpo`, in seconds).
pub fn run(of: &Entry, choice: &Choice, rto_rpo: (u64, u64), now: OffsetDateTime) -> Run {
    let target = choice.target(of);
    let label = target.label();
    let step = |title: String, act: Act| runner::Step {
        kind: act.kind().to_string(),
        title,
        items: vec![runner::item(act)],
    };
    let mut steps = vec![step(
        format!("Validate backup {} in full", of.id),
        Act::Validate {
            backup: of.id.clone(),
            full: true,
        },
    )];
    if choice.overwrites() {
        steps.push(step(
            format!("Take a pre-recovery snapshot of {label}"),
            Act::Snapshot {
                target: target.clone(),
            },
        ));
        steps.push(step(
            format!("Confirm: {label} is written over"),
            Act::Confirm {
                target: target.clone(),
            },
        ));
    }
    steps.push(step(
        format!("Restore {} into {label}", of.id),
        Act::Restore {
            backup: of.id.clone(),
            // A scratch target is named by the restore step from the run's id.
            target: (!choice.scratch()).then(|| target.clone()),
            tables: choice.tables.clone(),
            prefix: choice.prefix.clone(),
            mode: choice.mode.as_str().into(),
            at: None,
            scratch: choice.scratch(),
        },
    ));
    steps.push(step(
        format!("Verify {label} against the backup"),
        Act::Verify {
            backup: of.id.clone(),
            // A scratch target: the one the restore step created.
            target: (!choice.scratch()).then(|| target.clone()),
            tables: choice.tables.clone(),
            prefix: choice.prefix.clone(),
        },
    ));
    let mut params = BTreeMap::from([
        ("backup".to_string(), of.id.clone()),
        ("target".to_string(), target.name.clone()),
    ]);
    if !choice.tables.is_empty() {
        params.insert("tables".into(), choice.tables.join(","));
    }
    if let Some(p) = &choice.prefix {
        params.insert("prefix".into(), p.clone());
    }
    if choice.mode != Mode::Overwrite {
        params.insert("mode".into(), choice.mode.as_str().into());
    }
    let (id, title) = match &choice.into {
        Dest::Scratch { run } => (
            run.clone(),
            format!(
                "restore of {} from {} into scratch {label} (removed at the end)",
                of.kind, of.id
            ),
        ),
        _ => (
            manifest::new_id(now),
            format!("restore of {label} from {}", of.id),
        ),
    };
    Run {
        format: runner::RUN_FORMAT.into(),
        id,
        playbook: "restore".into(),
        title,
        rto_secs: rto_rpo.0,
        rpo_secs: rto_rpo.1,
        params,
        subjects: vec![Subject {
            target,
            backup: of.id.clone(),
        }],
        steps,
        status: Status::Running,
        by: lease::who(),
        started_ms: (now.unix_timestamp_nanos() / 1_000_000) as i64,
        incident_ms: None,
        finished_ms: None,
        profile: None,
        notes: Vec::new(),
    }
}

/// The RTO and RPO a restore of `of` is held to: those of its kind's recovery playbook (the
/// built-in, or the operator's override), the RPO no looser than the target's own (`[rpo]` in
/// the config, what the inventory measures it by), in seconds.
pub fn targets(of: &Entry, config: &crate::config::Config) -> (u64, u64) {
    let (rto, rpo) = super::library::in_use()
        .get(&format!("{}-recovery", of.kind))
        .map(|e| (e.playbook.rto.as_secs(), e.playbook.rpo.as_secs()))
        .unwrap_or((3600, 86_400));
    (rto, rpo.min(config.rpo_of(&of.kind, &of.target).as_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            id: "2026-12-04T10-00-00Z-aa01".into(),
            kind: "d1".into(),
            target: "support-portal".into(),
            target_id: "uuid".into(),
            trigger: "manual".into(),
            method: "export".into(),
            started: "2026-12-04T10:00:00Z".into(),
            finished: "2026-12-04T10:00:01Z".into(),
            plaintext_size: 1,
            stored_size: 1,
            artifacts: 1,
            warnings: 0,
            dir: String::new(),
        }
    }

    #[test]
    fn over_its_own_target_a_restore_is_snapshotted_and_confirmed_first() {
        let now = time::macros::datetime!(2026-12-04 12:00 UTC);
        let same = Choice {
            into: Dest::Same,
            tables: vec!["users".into()],
            prefix: None,
            mode: Mode::Overwrite,
        };
        let r = run(&entry(), &same, (900, 86_400), now);
        let kinds: Vec<&str> = r.steps.iter().map(|s| s.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["validate", "snapshot", "confirm", "restore", "verify"]
        );
        assert_eq!(r.params["tables"], "users");
        assert_eq!(r.subjects[0].target.label(), "d1 `support-portal`");
        let fresh = Choice {
            into: Dest::Other {
                name: "support-portal-copy".into(),
                exists: false,
            },
            tables: Vec::new(),
            prefix: None,
            mode: Mode::Overwrite,
        };
        let r = run(&entry(), &fresh, (900, 86_400), now);
        let kinds: Vec<&str> = r.steps.iter().map(|s| s.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["validate", "restore", "verify"],
            "nothing there to lose"
        );
        assert!(r.title.contains("d1 `support-portal-copy`"));
    }

    #[test]
    fn a_scratch_restore_is_named_by_its_run_and_touches_nothing_there() {
        let now = time::macros::datetime!(2026-12-04 12:00 UTC);
        let scratch = Choice {
            into: Dest::Scratch {
                run: "2026-12-04T12-00-00Z-ab12".into(),
            },
            tables: Vec::new(),
            prefix: None,
            mode: Mode::Clear,
        };
        let name = scratch.target(&entry()).name;
        assert!(name.starts_with("support-portal-drill-"), "{name}");
        assert!(!scratch.overwrites());
        let r = run(&entry(), &scratch, (900, 86_400), now);
        assert_eq!(
            r.id, "2026-12-04T12-00-00Z-ab12",
            "the plan named its target"
        );
        let kinds: Vec<&str> = r.steps.iter().map(|s| s.kind.as_str()).collect();
        assert_eq!(kinds, ["validate", "restore", "verify"]);
        assert!(matches!(
            &r.steps[1].items[0].act,
            Act::Restore { scratch: true, target: None, mode, .. } if mode == "clear"
        ));
        assert_eq!(r.params["mode"], "clear");
        assert!(r.title.contains("removed at the end"), "{}", r.title);
    }
}
