//! `cfdr backups prune`: which backups a retention policy keeps and why, and forgetting the
//! rest under the writer lease — the newest good backup of every target is always kept, a
//! parent an incremental backup still needs is kept, and blobs no snapshot references go.

use std::collections::BTreeMap;

use serde::Serialize;
use time::OffsetDateTime;

use crate::engine::kv;
use crate::ops::Result;
use crate::progress::Progress;
use crate::repo::retention::{self, Candidate, Policy};
use crate::repo::{Repo, manifest};

/// What the policy decided for one backup.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub id: String,
    pub kind: String,
    pub target: String,
    pub keep: bool,
    /// Why it is kept (`last 3`, `daily`, `newest good`, …); empty when it goes.
    pub reasons: Vec<String>,
}

/// What a prune did (or, dry run, would do).
#[derive(Debug, Clone, Serialize)]
pub struct Pruned {
    pub dry_run: bool,
    pub plan: Vec<Decision>,
    pub forgotten: usize,
    pub blobs_removed: usize,
}

/// Decides for every backup in the repository, and unless `dry_run` forgets those the policy
/// does not keep. The writer lease is released on every path out, errors included.
pub async fn prune(
    repo: &Repo,
    policy: &Policy,
    dry_run: bool,
    progress: &Progress,
) -> Result<Pruned> {
    let lease = if dry_run {
        None
    } else {
        Some(super::backup::lease(repo, "prune", progress).await?)
    };
    let outcome = async {
        let mut catalog = repo.catalog().await?;
        let plan = decide(repo, &catalog, policy).await;
        let mut forgotten = 0;
        let mut blobs_removed = 0;
        if let Some(lease) = &lease {
            for d in plan.iter().filter(|d| !d.keep) {
                if let Some(e) = catalog.find(&d.id).cloned() {
                    repo.forget(lease, &e, &mut catalog).await?;
                    forgotten += 1;
                }
            }
            blobs_removed = repo.collect_garbage(lease, &catalog).await?;
        }
        Ok::<_, super::Error>(Pruned {
            dry_run,
            plan,
            forgotten,
            blobs_removed,
        })
    }
    .await;
    if let Some(lease) = lease {
        let released = lease.release().await;
        let record = crate::repo::audit::Record {
            action: "prune".into(),
            result: super::audit::result_of(&outcome),
            detail: match &outcome {
                Ok(p) => Some(format!(
                    "{} backups forgotten, {} blobs removed",
                    p.forgotten, p.blobs_removed
                )),
                Err(e) => Some(e.to_string()),
            },
            ..Default::default()
        };
        if let Err(e) = repo.audit(record).await {
            progress.warn(format!("the audit trail could not be written: {e}"));
        }
        if outcome.is_ok() {
            released?;
        }
    }
    outcome
}

async fn decide(repo: &Repo, catalog: &crate::repo::Catalog, policy: &Policy) -> Vec<Decision> {
    let mut groups: BTreeMap<(String, String), Vec<Candidate>> = BTreeMap::new();
    let mut parents = BTreeMap::new();
    for e in &catalog.entries {
        // A backup whose manifest cannot be read, or whose last verification failed, is not
        // "good": it never counts as the newest good one.
        let good = match repo.manifest_of(e).await {
            Ok(m) => {
                if let Some(p) = m.parent.as_ref().filter(|_| m.method == kv::INCREMENTAL) {
                    parents.insert(m.id.clone(), p.clone());
                }
                repo.last_verification(&m)
                    .await
                    .ok()
                    .flatten()
                    .is_none_or(|v| v.ok)
            }
            Err(_) => false,
        };
        let time = manifest::parse_time(&e.started).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        groups
            .entry((e.kind.clone(), e.target.clone()))
            .or_default()
            .push(Candidate {
                id: e.id.clone(),
                time,
                good,
            });
    }
    let mut plan = Vec::new();
    for ((kind, target), cands) in &groups {
        let mut decisions = retention::decide(cands, policy);
        retention::keep_parents(&mut decisions, &parents);
        for d in decisions {
            plan.push(Decision {
                keep: d.keep(),
                id: d.id,
                kind: kind.clone(),
                target: target.clone(),
                reasons: d.reasons,
            });
        }
    }
    plan
}
