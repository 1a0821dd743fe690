//! Planning a Worker rollback (WORKERS.md §4, steps 1–4): what is live, what to go back to —
//! an explicit version, the automatic choice (the newest earlier 100 % deployment whose version
//! is not live), a split of two versions, or for an undo what a run replaced — the deployments
//! that get there (one, or one per `--steps` stage), and the preflight of the target against
//! the live versions (`preflight.rs`). Reads only: about four requests a Worker.
//!
//! The choices themselves ([`pick`], [`stages`]) are pure and tested without I/O.

use serde::{Deserialize, Serialize};

use super::super::{Error, Result};
use super::preflight;
use crate::cloudflare::workers::{Deployment, Version};
use crate::cloudflare::{CfError, Client};
use crate::repo::manifest::rfc3339;

pub const PLAN_FORMAT: &str = "cfdr.worker-rollback-plan/1";

/// Percentages closer than this are equal (Cloudflare allows this much rounding).
pub const TOLERANCE: f64 = 0.001;

/// What a rollback changes and what it leaves as it is (WORKERS.md §1), said in every plan and
/// report.
pub const UNTOUCHED: [&str; 4] = [
    "data in KV, D1, R2, Durable Objects and queues",
    "routes, custom domains and cron triggers",
    "script settings (logpush, tail consumers, observability, tags)",
    "Workers that bind to this one (service bindings)",
];
pub const CHANGES: &str = "code, secrets (their values as that version had them), plain-text vars, binding targets, compatibility settings and static assets come back as the target version has them";

/// Where a Worker goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Pick {
    /// The newest earlier 100 % deployment whose version is not live.
    Auto,
    /// This version (id, id prefix, `v12` or `12`) at 100 %.
    To(String),
    /// Two versions: the first gets this percentage, the second the rest.
    Split(String, f64, String),
    /// What run `run` replaced, while the live deployment is one it made (`cfdr workers undo`).
    Undo {
        run: String,
        shares: Vec<Share>,
        made: Vec<String>,
    },
}

/// A version's share of traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Share {
    pub version_id: String,
    /// Its number, when known.
    pub number: Option<u64>,
    pub percentage: f64,
}

impl Share {
    pub fn wire(&self) -> crate::cloudflare::workers::Share {
        crate::cloudflare::workers::Share {
            version_id: self.version_id.clone(),
            percentage: self.percentage,
        }
    }
}

/// The live deployment as the plan saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Live {
    pub deployment: String,
    pub created_on: Option<String>,
    pub versions: Vec<Share>,
    pub author: Option<String>,
    pub message: Option<String>,
}

/// Something the preflight found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// `warning` (said, the rollback goes on) or `refused` (the rollback cannot go ahead).
    pub level: String,
    pub text: String,
}

impl Finding {
    pub(super) fn warn(text: impl Into<String>) -> Self {
        Self {
            level: "warning".into(),
            text: text.into(),
        }
    }

    pub(super) fn refuse(text: impl Into<String>) -> Self {
        Self {
            level: "refused".into(),
            text: text.into(),
        }
    }

    pub fn refused(&self) -> bool {
        self.level == "refused"
    }
}

/// One Worker's part of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerPlan {
    pub script: String,
    pub live: Live,
    /// automatic, explicit, split or undo.
    pub how: String,
    /// Why this target, in a sentence.
    pub why: String,
    /// The traffic at the end.
    pub target: Vec<Share>,
    /// The deployments made, in order (one per `--steps` stage); the last is `target`.
    pub stages: Vec<Vec<Share>>,
    pub findings: Vec<Finding>,
}

impl WorkerPlan {
    /// Why it cannot go ahead, if it cannot.
    pub fn refusal(&self) -> Option<&Finding> {
        self.findings.iter().find(|f| f.refused())
    }
}

/// A rollback of one or more Workers, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format: String,
    /// The run this plan is for: its deployments' messages name it.
    pub run: String,
    pub workers: Vec<WorkerPlan>,
    /// The run this one undoes.
    pub undo_of: Option<String>,
    /// Requests the plan read with.
    pub requests_read: u64,
    /// Requests the run sends: for each stage a read before it, the deployment and two reads
    /// after it.
    pub requests_planned: u64,
    pub changes: String,
    pub untouched: Vec<String>,
}

impl Plan {
    /// `undo` for a run that undoes another, `rollback` otherwise.
    pub fn verb(&self) -> &'static str {
        if self.undo_of.is_some() {
            "undo"
        } else {
            "rollback"
        }
    }

    pub fn refusals(&self) -> Vec<String> {
        self.workers
            .iter()
            .filter_map(|w| w.refusal().map(|f| format!("{}: {}", w.script, f.text)))
            .collect()
    }
}

/// `v7 100 %`, `v3 90 % · v4 10 %`.
pub fn label(shares: &[Share]) -> String {
    super::split(
        &shares
            .iter()
            .map(|s| super::Share {
                version_id: s.version_id.clone(),
                number: s.number,
                percentage: s.percentage,
            })
            .collect::<Vec<_>>(),
    )
}

/// Whether two splits are the same traffic: the same versions with the same shares (within
/// [`TOLERANCE`]), in any order.
pub fn same(a: &[Share], b: &[crate::cloudflare::workers::Share]) -> bool {
    a.len() == b.len()
        && a.iter().all(|s| {
            b.iter().any(|t| {
                t.version_id == s.version_id && (t.percentage - s.percentage).abs() <= TOLERANCE
            })
        })
}

fn share(id: &str, percentage: f64, versions: &[Version]) -> Share {
    Share {
        version_id: id.to_string(),
        number: versions.iter().find(|v| v.id == id).map(|v| v.number),
        percentage,
    }
}

/// The deployable version `r` names: its id, a unique prefix of it (4 characters or more), or
/// its number (`v12`, `12`).
pub fn resolve<'v>(script: &str, r: &str, deployable: &'v [Version]) -> Result<&'v Version> {
    let r = r.trim();
    let number = r.strip_prefix('v').unwrap_or(r).parse::<u64>().ok();
    let by_number = number.and_then(|n| deployable.iter().find(|v| v.number == n));
    let found = deployable.iter().find(|v| v.id == r).or(by_number);
    if let Some(v) = found {
        return Ok(v);
    }
    let prefixed: Vec<&Version> = if r.len() >= 4 {
        deployable.iter().filter(|v| v.id.starts_with(r)).collect()
    } else {
        vec![]
    };
    match prefixed.as_slice() {
        [v] => Ok(v),
        [] => Err(Error::usage(format!(
            "`{r}` is not a deployable version of Worker `{script}` (the newest {} can be deployed); list them with `cfdr workers versions {script}`",
            deployable.len()
        ))),
        several => Err(Error::usage(format!(
            "`{r}` starts {} versions of `{script}`; give more of the id",
            several.len()
        ))),
    }
}

/// The target of `pick` and why (WORKERS.md §4.3). `deployments` newest first, the first live.
pub fn pick(
    script: &str,
    pick: &Pick,
    deployments: &[Deployment],
    deployable: &[Version],
) -> Result<(String, String, Vec<Share>)> {
    let live = &deployments[0];
    let live_ids: Vec<&str> = live
        .versions
        .iter()
        .map(|s| s.version_id.as_str())
        .collect();
    match pick {
        Pick::To(r) => {
            let v = resolve(script, r, deployable)?;
            Ok((
                "explicit".into(),
                format!("version v{} named by the operator", v.number),
                vec![share(&v.id, 100.0, deployable)],
            ))
        }
        Pick::Split(a, pa, b) => {
            if !(*pa > 0.0 && *pa < 100.0) {
                return Err(Error::usage(format!(
                    "a split gives the first version between 0 and 100 % (exclusive), not {pa}; e.g. --split v7=90,v8"
                )));
            }
            let (va, vb) = (
                resolve(script, a, deployable)?,
                resolve(script, b, deployable)?,
            );
            if va.id == vb.id {
                return Err(Error::usage(format!(
                    "a split needs two different versions; `{a}` and `{b}` are both v{}",
                    va.number
                )));
            }
            let mut out = vec![
                share(&va.id, *pa, deployable),
                share(&vb.id, 100.0 - pa, deployable),
            ];
            // The order the live deployment uses, when both are in it.
            let pos = |id: &str| live_ids.iter().position(|l| *l == id);
            if let (Some(x), Some(y)) = (pos(&va.id), pos(&vb.id))
                && x > y
            {
                out.reverse();
            }
            Ok((
                "split".into(),
                format!(
                    "a split of v{} and v{} named by the operator",
                    va.number, vb.number
                ),
                out,
            ))
        }
        Pick::Auto => {
            let single = |d: &&Deployment| {
                d.versions.len() == 1 && (d.versions[0].percentage - 100.0).abs() <= TOLERANCE
            };
            let in_window =
                |d: &&Deployment| deployable.iter().any(|v| v.id == d.versions[0].version_id);
            let earlier = deployments[1..].iter().filter(single).filter(in_window);
            let strict = earlier
                .clone()
                .find(|d| !live_ids.contains(&d.versions[0].version_id.as_str()));
            let found = match strict {
                Some(d) => Some((d, "the newest earlier deployment at 100 % whose version is not live")),
                // A gradual rollout in progress: its older version, as it was before the rollout.
                None if live.versions.len() == 2 => earlier.clone().next().map(|d| {
                    (d, "a gradual rollout is in progress: the version it started from, back at 100 %")
                }),
                None => None,
            };
            let Some((d, why)) = found else {
                return Err(Error::usage(format!(
                    "Worker `{script}` has no earlier deployment at 100 % of a version that is not live among its newest {} deployments; name the version with --to (see `cfdr workers versions {script}`)",
                    deployments.len()
                )));
            };
            let v = &d.versions[0].version_id;
            let n = deployable
                .iter()
                .find(|x| x.id == *v)
                .map_or(0, |x| x.number);
            Ok((
                "automatic".into(),
                format!(
                    "v{n}: {why} (deployment {} of {})",
                    d.id.chars().take(8).collect::<String>(),
                    d.created_on.map(rfc3339).unwrap_or_default()
                ),
                vec![share(v, 100.0, deployable)],
            ))
        }
        Pick::Undo { run, shares, .. } => Ok((
            "undo".into(),
            format!("what run {run} replaced"),
            shares.clone(),
        )),
    }
}

/// The deployments that move traffic to `target` through `steps` (percentages on the target,
/// rising, the last 100): each stage the target at its share and the live version that had the
/// most traffic at the rest. No steps: one deployment.
pub fn stages(live: &[Share], target: &[Share], steps: &[f64]) -> Result<Vec<Vec<Share>>> {
    if steps.is_empty() {
        return Ok(vec![target.to_vec()]);
    }
    let [t] = target else {
        return Err(Error::usage(
            "--steps moves traffic to one version; a split is one deployment already",
        ));
    };
    if steps.windows(2).any(|w| w[0] >= w[1]) || steps.iter().any(|s| !(*s > 0.0 && *s <= 100.0)) {
        return Err(Error::usage(format!(
            "--steps {}: give rising percentages between 0 and 100, e.g. 10,50,100",
            steps
                .iter()
                .map(f64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        )));
    }
    if (steps[steps.len() - 1] - 100.0).abs() > TOLERANCE {
        return Err(Error::usage(
            "--steps must end at 100 (all traffic on the target); for a lasting split use --split",
        ));
    }
    let now = live
        .iter()
        .find(|s| s.version_id == t.version_id)
        .map_or(0.0, |s| s.percentage);
    if steps[0] <= now {
        return Err(Error::usage(format!(
            "the target already has {now} % of the traffic; start --steps above it"
        )));
    }
    let from = live
        .iter()
        .filter(|s| s.version_id != t.version_id)
        .max_by(|a, b| a.percentage.total_cmp(&b.percentage));
    Ok(steps
        .iter()
        .map(|p| match from {
            Some(f) if (p - 100.0).abs() > TOLERANCE => vec![
                Share {
                    percentage: 100.0 - p,
                    ..f.clone()
                },
                Share {
                    percentage: *p,
                    ..t.clone()
                },
            ],
            _ => vec![Share {
                percentage: 100.0,
                ..t.clone()
            }],
        })
        .collect())
}

/// A Worker's deployments, its name checked: an unknown Worker is a usage error naming the
/// account's Workers.
pub async fn deployments_of(c: &Client, script: &str) -> Result<Vec<Deployment>> {
    match c.worker_deployments(script).await {
        Ok(d) => Ok(d),
        Err(CfError::Api {
            code: Some(10007), ..
        }) => {
            let names: Vec<String> = c
                .worker_scripts()
                .await
                .map(|s| s.into_iter().map(|s| s.name).collect())
                .unwrap_or_default();
            Err(Error::usage(format!(
                "no Worker `{script}` in this account{}",
                if names.is_empty() {
                    String::new()
                } else {
                    format!("; it has {}", names.join(", "))
                }
            )))
        }
        Err(e) => Err(e.into()),
    }
}

/// One Worker's plan: read its deployments, deployable versions and the details of the target
/// and the live versions, pick, stage and preflight.
pub async fn plan_one(c: &Client, script: &str, p: &Pick, steps: &[f64]) -> Result<WorkerPlan> {
    let deployments = deployments_of(c, script).await?;
    let Some(live) = deployments.first() else {
        return Err(Error::usage(format!(
            "Worker `{script}` has never been deployed: there is nothing to roll back"
        )));
    };
    let deployable = c.worker_versions(script, true).await?;
    let (how, why, target) = pick(script, p, &deployments, &deployable)?;
    let live_shares: Vec<Share> = live
        .versions
        .iter()
        .map(|s| share(&s.version_id, s.percentage, &deployable))
        .collect();
    let stages = stages(&live_shares, &target, steps)?;
    let mut findings = Vec::new();
    if same(&target, &live.versions) {
        findings.push(Finding::refuse(format!(
            "{} is what is live already: nothing to do",
            label(&target)
        )));
    }
    if let Pick::Undo { run, made, .. } = p
        && !made.contains(&live.id)
        && !live
            .message
            .as_deref()
            .is_some_and(|m| m.contains(run.as_str()))
    {
        findings.push(Finding::refuse(format!(
            "the live deployment {} ({}) was not made by run {run}: someone deployed since, and an undo would overwrite it; roll back with --to instead",
            live.id,
            live.message.as_deref().unwrap_or("no message")
        )));
    }
    let mut live_details = Vec::new();
    for s in &live.versions {
        live_details.push(c.worker_version(script, &s.version_id).await?);
    }
    for t in &target {
        let detail = match live_details.iter().find(|d| d.version.id == t.version_id) {
            Some(d) => d.clone(),
            None => c.worker_version(script, &t.version_id).await?,
        };
        let (found, check) = preflight::preflight(&detail, &live_details);
        findings.extend(found);
        findings.extend(preflight::check_resources(c, &check).await?);
    }
    findings.dedup();
    Ok(WorkerPlan {
        script: script.to_string(),
        live: Live {
            deployment: live.id.clone(),
            created_on: live.created_on.map(rfc3339),
            versions: live_shares,
            author: live.author_email.clone(),
            message: live.message.clone(),
        },
        how,
        why,
        target,
        stages,
        findings,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::cloudflare::workers as cf;

    pub(in crate::ops::workers) fn version(id: &str, number: u64) -> Version {
        Version {
            id: id.into(),
            number,
            created_on: None,
            source: "wrangler".into(),
            author_email: String::new(),
            message: None,
            tag: None,
            triggered_by: None,
        }
    }

    fn deployment(id: &str, shares: &[(&str, f64)]) -> Deployment {
        Deployment {
            id: id.into(),
            created_on: None,
            source: "api".into(),
            versions: shares
                .iter()
                .map(|(v, p)| cf::Share {
                    version_id: v.to_string(),
                    percentage: *p,
                })
                .collect(),
            author_email: None,
            message: None,
            triggered_by: None,
        }
    }

    fn ids(s: &[Share]) -> Vec<(String, f64)> {
        s.iter()
            .map(|s| (s.version_id.clone(), s.percentage))
            .collect()
    }

    #[test]
    fn automatic_skips_deployments_of_what_is_live() {
        let vs = [version("c3", 3), version("b2", 2), version("a1", 1)];
        // A settings-only redeploy of c3 sits between the live one and b2.
        let ds = [
            deployment("d4", &[("c3", 100.0)]),
            deployment("d3", &[("c3", 100.0)]),
            deployment("d2", &[("b2", 100.0)]),
            deployment("d1", &[("a1", 100.0)]),
        ];
        let (how, why, t) = pick("w", &Pick::Auto, &ds, &vs).unwrap();
        assert_eq!(
            (how.as_str(), ids(&t)),
            ("automatic", vec![("b2".into(), 100.0)])
        );
        assert!(why.starts_with("v2: the newest earlier"), "{why}");
        // A gradual rollout: back to the version it started from.
        let ds = [
            deployment("d2", &[("a1", 90.0), ("b2", 10.0)]),
            deployment("d1", &[("a1", 100.0)]),
        ];
        let (_, why, t) = pick("w", &Pick::Auto, &ds, &vs).unwrap();
        assert_eq!(ids(&t), vec![("a1".into(), 100.0)]);
        assert!(why.contains("gradual rollout"), "{why}");
        // Nothing earlier: the operator is told to name one.
        let e = pick("w", &Pick::Auto, &[deployment("d1", &[("a1", 100.0)])], &vs).unwrap_err();
        assert!(e.to_string().contains("--to"), "{e}");
    }

    #[test]
    fn versions_are_named_by_id_prefix_or_number_and_splits_keep_the_live_order() {
        let vs = [
            version("c3c3c3c3", 3),
            version("b2b2b2b2", 2),
            version("a1a1a1a1", 1),
        ];
        assert_eq!(resolve("w", "v2", &vs).unwrap().id, "b2b2b2b2");
        assert_eq!(resolve("w", "3", &vs).unwrap().id, "c3c3c3c3");
        assert_eq!(resolve("w", "a1a1", &vs).unwrap().id, "a1a1a1a1");
        let e = resolve("w", "v9", &vs).unwrap_err().to_string();
        assert!(e.contains("cfdr workers versions w"), "{e}");
        let ds = [deployment("d", &[("a1a1a1a1", 50.0), ("c3c3c3c3", 50.0)])];
        let (_, _, t) = pick("w", &Pick::Split("v3".into(), 70.0, "v1".into()), &ds, &vs).unwrap();
        assert_eq!(
            ids(&t),
            vec![("a1a1a1a1".into(), 30.0), ("c3c3c3c3".into(), 70.0)]
        );
        assert!(pick("w", &Pick::Split("v3".into(), 100.0, "v1".into()), &ds, &vs).is_err());
        assert!(pick("w", &Pick::Split("v3".into(), 50.0, "3".into()), &ds, &vs).is_err());
    }

    #[test]
    fn steps_move_traffic_from_the_busiest_live_version_and_end_at_100() {
        let s = |id: &str, p: f64| Share {
            version_id: id.into(),
            number: None,
            percentage: p,
        };
        let live = [s("new", 100.0)];
        let got = stages(&live, &[s("old", 100.0)], &[10.0, 50.0, 100.0]).unwrap();
        assert_eq!(
            got.iter().map(|g| ids(g)).collect::<Vec<_>>(),
            vec![
                vec![("new".into(), 90.0), ("old".into(), 10.0)],
                vec![("new".into(), 50.0), ("old".into(), 50.0)],
                vec![("old".into(), 100.0)],
            ]
        );
        assert_eq!(stages(&live, &[s("old", 100.0)], &[]).unwrap().len(), 1);
        for bad in [&[50.0, 10.0, 100.0][..], &[10.0, 50.0], &[0.0, 100.0]] {
            assert!(stages(&live, &[s("old", 100.0)], bad).is_err(), "{bad:?}");
        }
        // The target already has 90 %: steps must start above it.
        let split = [s("old", 90.0), s("new", 10.0)];
        assert!(stages(&split, &[s("old", 100.0)], &[50.0, 100.0]).is_err());
    }
}
