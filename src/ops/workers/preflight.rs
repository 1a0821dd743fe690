//! The preflight of a rollback's target against the live versions (WORKERS.md §4.4): secrets by
//! name, the other bindings and whether the KV namespaces, R2 buckets and D1 databases they
//! name still exist, the Durable Object migration tag (a rollback across a migration is
//! refused), the compatibility date. [`preflight`] is pure; [`check_resources`] reads.

use serde_json::Value;

use super::rollback::Finding;
use crate::cloudflare::Client;
use crate::cloudflare::workers::VersionDetail;
use crate::ops::Result;

/// Binding targets of the kinds whose existence cfdr checks: (kind, id or name, binding).
fn resources(d: &VersionDetail) -> Vec<(&'static str, String, String)> {
    d.bindings
        .iter()
        .filter_map(|b| {
            let name = b["name"].as_str().unwrap_or_default().to_string();
            let s = |k: &str| b[k].as_str().map(str::to_string);
            match b["type"].as_str()? {
                "kv_namespace" => Some(("kv", s("namespace_id")?, name)),
                "r2_bucket" => Some(("r2", s("bucket_name")?, name)),
                "d1" => Some(("d1", s("database_id").or_else(|| s("id"))?, name)),
                "queue" => Some(("queue", s("queue_name")?, name)),
                _ => None,
            }
        })
        .collect()
}

/// A binding as compared: its kind and what it points at (secrets by name only).
fn binding_key(b: &Value) -> (String, String) {
    let kind = b["type"].as_str().unwrap_or_default().to_string();
    let mut rest = b.clone();
    if let Some(o) = rest.as_object_mut() {
        o.remove("name");
        o.remove("type");
    }
    (kind, rest.to_string())
}

/// The preflight of `target` against the live versions (WORKERS.md §4.4): refusals and
/// warnings, and which of the target's resources need checking (those the live versions do not
/// bind already: what is live runs with them).
pub fn preflight(
    target: &VersionDetail,
    live: &[VersionDetail],
) -> (Vec<Finding>, Vec<(&'static str, String, String)>) {
    let mut out = Vec::new();
    let n = target.version.number;
    for l in live.iter().filter(|l| l.version.id != target.version.id) {
        let m = l.version.number;
        if l.migration_tag != target.migration_tag {
            out.push(Finding::refuse(format!(
                "a Durable Object migration lies between v{m} (migration tag {}) and v{n} ({}): Cloudflare refuses a rollback across it, and the objects' storage has moved on; deploy a new version instead",
                l.migration_tag.as_deref().unwrap_or("none"),
                target.migration_tag.as_deref().unwrap_or("none")
            )));
        }
        let (ts, ls) = (target.secrets(), l.secrets());
        let lacks: Vec<&String> = ls.iter().filter(|s| !ts.contains(s)).collect();
        let adds: Vec<&String> = ts.iter().filter(|s| !ls.contains(s)).collect();
        if !lacks.is_empty() {
            out.push(Finding::warn(format!(
                "v{n} lacks secret(s) {} that v{m} has",
                join(&lacks)
            )));
        }
        if !adds.is_empty() {
            out.push(Finding::warn(format!(
                "v{n} has secret(s) {} that v{m} does not",
                join(&adds)
            )));
        }
        let shared: Vec<&String> = ts.iter().filter(|s| ls.contains(s)).collect();
        if !shared.is_empty() {
            out.push(Finding::warn(format!(
                "secret values come back as v{n} had them ({}); if one changed since, Cloudflare asks for force (error 10220)",
                join(&shared)
            )));
        }
        let others = |d: &VersionDetail| -> Vec<(String, (String, String))> {
            d.bindings
                .iter()
                .filter(|b| !matches!(b["type"].as_str(), Some("secret_text" | "secret_key")))
                .map(|b| {
                    (
                        b["name"].as_str().unwrap_or_default().to_string(),
                        binding_key(b),
                    )
                })
                .collect()
        };
        let (tb, lb) = (others(target), others(l));
        for (name, key) in &lb {
            match tb.iter().find(|(n2, _)| n2 == name) {
                None => out.push(Finding::warn(format!(
                    "binding {name} ({}) of v{m} is not in v{n}",
                    key.0
                ))),
                Some((_, k2)) if k2 != key => out.push(Finding::warn(format!(
                    "binding {name} points elsewhere in v{n} than in v{m} ({})",
                    k2.0
                ))),
                _ => {}
            }
        }
        for (name, key) in tb.iter().filter(|(n2, _)| !lb.iter().any(|(n, _)| n == n2)) {
            out.push(Finding::warn(format!(
                "binding {name} ({}) comes back with v{n}; v{m} does not have it",
                key.0
            )));
        }
        if l.compatibility_date != target.compatibility_date {
            out.push(Finding::warn(format!(
                "compatibility date {} in v{n}, {} in v{m}: the runtime behaves as of v{n}'s",
                target.compatibility_date.as_deref().unwrap_or("none"),
                l.compatibility_date.as_deref().unwrap_or("none")
            )));
        }
    }
    let live_resources: Vec<(&'static str, String, String)> =
        live.iter().flat_map(resources).collect();
    let mut check: Vec<(&'static str, String, String)> = resources(target)
        .into_iter()
        .filter(|r| !live_resources.iter().any(|l| l.0 == r.0 && l.1 == r.1))
        .collect();
    check.dedup();
    (out, check)
}

fn join(names: &[&String]) -> String {
    names
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether the resources the target binds (and the live versions do not) still exist: a
/// missing KV namespace, R2 bucket or D1 database is a refusal (Cloudflare refuses the
/// deployment); queues have no API in cfdr's contract, so they are said unchecked.
pub async fn check_resources(
    c: &Client,
    check: &[(&'static str, String, String)],
) -> Result<Vec<Finding>> {
    let mut out = Vec::new();
    let mut namespaces = None;
    let mut buckets = None;
    for (kind, id, binding) in check {
        let exists = match *kind {
            "kv" => {
                if namespaces.is_none() {
                    namespaces = Some(c.kv_namespaces().await?);
                }
                namespaces.iter().flatten().any(|n| n.id == *id)
            }
            "r2" => {
                if buckets.is_none() {
                    buckets = Some(c.r2_buckets().await?);
                }
                buckets.iter().flatten().any(|b| b == id)
            }
            "d1" => c.d1_database(id).await?.is_some(),
            _ => {
                out.push(Finding::warn(format!(
                    "queue {id} (binding {binding}) is not checked: cfdr's Cloudflare contract has no queue API"
                )));
                continue;
            }
        };
        if !exists {
            out.push(Finding::refuse(format!(
                "binding {binding} points at {} {id}, which no longer exists: Cloudflare refuses the rollback; recreate it (and restore its data with cfdr) first",
                match *kind {
                    "kv" => "KV namespace",
                    "r2" => "R2 bucket",
                    _ => "D1 database",
                }
            )));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::workers::rollback::tests::version;

    #[test]
    fn preflight_refuses_a_migration_and_names_what_differs() {
        let detail =
            |id: &str, n: u64, tag: Option<&str>, bindings: Value, date: &str| VersionDetail {
                version: version(id, n),
                bindings: bindings.as_array().cloned().unwrap_or_default(),
                compatibility_date: Some(date.into()),
                migration_tag: tag.map(str::to_string),
            };
        let live = detail(
            "b",
            2,
            Some("v2"),
            serde_json::json!([
                { "type": "secret_text", "name": "JWT" },
                { "type": "kv_namespace", "name": "S", "namespace_id": "ns1" },
            ]),
            "2025-09-01",
        );
        let target = detail(
            "a",
            1,
            Some("v1"),
            serde_json::json!([
                { "type": "secret_text", "name": "JWT" },
                { "type": "secret_text", "name": "OLD" },
                { "type": "kv_namespace", "name": "S", "namespace_id": "ns0" },
                { "type": "r2_bucket", "name": "B", "bucket_name": "gone" },
            ]),
            "2025-01-01",
        );
        let (found, check) = preflight(&target, std::slice::from_ref(&live));
        let text: Vec<&str> = found.iter().map(|f| f.text.as_str()).collect();
        assert!(
            found[0].refused() && text[0].contains("Durable Object migration"),
            "{text:?}"
        );
        assert!(
            text.iter().any(|t| t.contains("has secret(s) OLD")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.contains("binding S points elsewhere")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.contains("binding B (r2_bucket) comes back")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.contains("compatibility date 2025-01-01")),
            "{text:?}"
        );
        // Only what the live version does not bind already is looked up.
        assert_eq!(
            check,
            vec![
                ("kv", "ns0".into(), "S".into()),
                ("r2", "gone".into(), "B".into())
            ]
        );
        let (same_found, none) = preflight(&live, std::slice::from_ref(&live));
        assert!(same_found.is_empty() && none.is_empty());
    }
}
