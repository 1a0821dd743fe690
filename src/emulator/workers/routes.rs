//! The Workers routes of the contract, and the control route that uploads a version, answered
//! from the model in `mod.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    DEPLOYABLE, Deployment, LISTED_DEPLOYMENTS, Script, Upload, Version, changed_secrets, now_us,
    save, script, scripts, truncate, upload,
};
use crate::emulator::envelope::{
    ApiError, ApiResult, ok, parse_json, query_get, query_int, query_pairs,
};
use crate::emulator::state::Shared;

type S = State<Arc<Shared>>;

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        10002,
        format!("internal error: {e}"),
    )
}

fn not_found(what: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, 10007, what.to_string())
}

fn no_worker() -> ApiError {
    not_found("This Worker does not exist on your account.")
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(10021, message)
}

/// Every script, by name.
fn load(s: &Shared, name: &str) -> Result<Script, ApiError> {
    script(&s.store, name)
        .map_err(internal)?
        .ok_or_else(no_worker)
}

/// What uploading a version takes (the control route's body and the seed's).
pub async fn list_scripts(State(s): S) -> ApiResult {
    let all = scripts(&s.store).map_err(internal)?;
    ok(all.iter().map(Script::json).collect::<Vec<_>>())
}

pub async fn list_versions(
    State(s): S,
    Path((_, name)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let script = load(&s, &name)?;
    let q = query_pairs(q.as_deref());
    let newest: Vec<&Version> = script.versions.iter().rev().collect();
    let items: Vec<Value> = if query_get(&q, "deployable") == Some("true") {
        // Every deployable version in one answer; `page` is ignored.
        newest.iter().take(DEPLOYABLE).map(|v| v.short()).collect()
    } else {
        let page = query_int(&q, "page", 1, 1, u64::from(u32::MAX), 10003)? as usize;
        let per_page = query_int(&q, "per_page", 10, 1, 1000, 10003)? as usize;
        newest
            .iter()
            .skip((page - 1).saturating_mul(per_page))
            .take(per_page)
            .map(|v| v.short())
            .collect()
    };
    ok(json!({ "items": items }))
}

pub async fn get_version(
    State(s): S,
    Path((_, name, id)): Path<(String, String, String)>,
) -> ApiResult {
    let script = load(&s, &name)?;
    let v = script
        .version(&id)
        .ok_or_else(|| not_found("This version does not exist for this Worker."))?;
    ok(v.full())
}

pub async fn list_deployments(State(s): S, Path((_, name)): Path<(String, String)>) -> ApiResult {
    let script = load(&s, &name)?;
    let mut all: Vec<&Deployment> = script.deployments.iter().collect();
    all.sort_by_key(|d| std::cmp::Reverse(d.created_us));
    let listed: Vec<Value> = all
        .iter()
        .take(LISTED_DEPLOYMENTS)
        .map(|d| d.json())
        .collect();
    ok(json!({ "deployments": listed }))
}

pub async fn get_deployment(
    State(s): S,
    Path((_, name, id)): Path<(String, String, String)>,
) -> ApiResult {
    let script = load(&s, &name)?;
    let d = script
        .deployments
        .iter()
        .find(|d| d.id == id)
        .ok_or_else(|| not_found("This deployment does not exist for this Worker."))?;
    ok(d.json())
}

#[derive(Deserialize)]
struct NewDeployment {
    strategy: Option<String>,
    #[serde(default)]
    versions: Vec<NewShare>,
    #[serde(default)]
    annotations: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct NewShare {
    version_id: String,
    percentage: f64,
}

/// The secrets whose values differ between a live version and `target` (named in both).
pub async fn create_deployment(
    State(s): S,
    Path((_, name)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult {
    let mut script = load(&s, &name)?;
    let q = query_pairs(q.as_deref());
    let force = query_get(&q, "force") == Some("true");
    let req: NewDeployment = parse_json(&body, 10021)?;
    if req.strategy.as_deref() != Some("percentage") {
        return Err(invalid("strategy must be `percentage`"));
    }
    if req.versions.is_empty() || req.versions.len() > 2 {
        return Err(invalid(format!(
            "a deployment holds one or two versions, not {}",
            req.versions.len()
        )));
    }
    let sum: f64 = req.versions.iter().map(|v| v.percentage).sum();
    if (sum - 100.0).abs() > 0.001
        || req
            .versions
            .iter()
            .any(|v| !(0.0..=100.0).contains(&v.percentage))
    {
        return Err(invalid(format!(
            "the versions' percentages must add up to 100 (they add up to {sum})"
        )));
    }
    let deployable: Vec<&str> = script
        .versions
        .iter()
        .rev()
        .take(DEPLOYABLE)
        .map(|v| v.id.as_str())
        .collect();
    for v in &req.versions {
        if script.version(&v.version_id).is_none() {
            return Err(not_found(&format!(
                "Version {} does not exist for this Worker.",
                v.version_id
            )));
        }
        if !deployable.contains(&v.version_id.as_str()) {
            return Err(invalid(format!(
                "version {} is not among the {DEPLOYABLE} most recent versions and cannot be deployed",
                v.version_id
            )));
        }
    }
    let live: Vec<&Version> = script
        .live()
        .map(|d| {
            d.versions
                .iter()
                .filter_map(|(id, _)| script.version(id))
                .collect()
        })
        .unwrap_or_default();
    // The refusals Cloudflare documents for rollbacks (no code of their own is confirmed).
    for v in req
        .versions
        .iter()
        .filter_map(|v| script.version(&v.version_id))
    {
        if let Some(l) = live.iter().find(|l| l.migration_tag != v.migration_tag) {
            return Err(invalid(format!(
                "version {} cannot be deployed: a Durable Object migration lies between it (migration tag {}) and the live version {} ({})",
                v.id,
                v.migration_tag.as_deref().unwrap_or("none"),
                l.id,
                l.migration_tag.as_deref().unwrap_or("none")
            )));
        }
        if let Some(gone) = missing_resource(&s, v) {
            return Err(invalid(format!(
                "version {} cannot be deployed: it binds to {gone}, which no longer exists",
                v.id
            )));
        }
    }
    if !force {
        let mut changed: Vec<String> = req
            .versions
            .iter()
            .filter_map(|v| script.version(&v.version_id))
            .flat_map(|t| changed_secrets(&live, t))
            .collect();
        changed.sort();
        changed.dedup();
        if !changed.is_empty() {
            return Err(ApiError::bad_request(
                10220,
                format!(
                    "A secret has changed since the version you are deploying was active. The following secrets have changed: {}. Deploy with ?force=true to do it anyway.",
                    changed.join(", ")
                ),
            ));
        }
    }
    let d = Deployment {
        id: uuid::Uuid::new_v4().to_string(),
        created_us: now_us().max(script.live().map_or(0, |l| l.created_us + 1)),
        source: "api".into(),
        versions: req
            .versions
            .iter()
            .map(|v| (v.version_id.clone(), v.percentage))
            .collect(),
        author_email: "api@example.com".into(),
        message: req
            .annotations
            .get("workers/message")
            .and_then(Value::as_str)
            .map(truncate),
        triggered_by: "deployment".into(),
    };
    script.deployments.push(d.clone());
    script.modified_us = d.created_us;
    save(&s.store, &script).map_err(internal)?;
    ok(d.json())
}

/// The first KV namespace or R2 bucket `v` binds to that the account no longer has.
fn missing_resource(s: &Shared, v: &Version) -> Option<String> {
    v.bindings.iter().find_map(|b| match b["type"].as_str() {
        Some("kv_namespace") => {
            let id = b["namespace_id"].as_str().unwrap_or_default();
            matches!(s.store.ns_get(id), Ok(None))
                .then(|| format!("KV namespace {id} (binding {})", b["name"]))
        }
        Some("r2_bucket") => {
            let name = b["bucket_name"].as_str().unwrap_or_default();
            matches!(s.r2.bucket(name), Ok(None))
                .then(|| format!("R2 bucket {name} (binding {})", b["name"]))
        }
        _ => None,
    })
}

/// `GET /__workers.dev/{script}[/…]`: the Worker itself, as `workers.dev` would serve it —
/// one version of the live deployment answers, chosen by its share (at random, or sticky by
/// `Cloudflare-Workers-Version-Key`), or the one `Cloudflare-Workers-Version-Overrides` pins,
/// and it reports its `version_metadata` as a deployed Worker can.
pub async fn serve(
    State(s): S,
    Path(path): Path<Vec<(String, String)>>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    let name = path
        .iter()
        .find(|(k, _)| k == "script")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let missing = |m: &str| (StatusCode::NOT_FOUND, m.to_string()).into_response();
    let Ok(Some(script)) = script(&s.store, &name) else {
        return missing("There is nothing here yet: no Worker of that name.");
    };
    let Some(live) = script.live() else {
        return missing("This Worker has no deployment.");
    };
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
    let pinned = header("cloudflare-workers-version-overrides").and_then(|o| {
        let (k, v) = o.split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"').to_string())
    });
    let id = match pinned {
        // A pin names a version of the live deployment; any other is not served.
        Some(p) if live.versions.iter().any(|(id, _)| *id == p) => p,
        _ => {
            let roll = match header("cloudflare-workers-version-key") {
                Some(k) => {
                    let h = k.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                    });
                    (h % 10_000) as f64 / 100.0
                }
                None => rand::random::<f64>() * 100.0,
            };
            let mut acc = 0.0;
            live.versions
                .iter()
                .find(|(_, p)| {
                    acc += p;
                    roll < acc
                })
                .or(live.versions.iter().rev().find(|(_, p)| *p > 0.0))
                .map(|(id, _)| id.clone())
                .unwrap_or_default()
        }
    };
    let number = script.version(&id).map(|v| v.number);
    axum::Json(json!({ "script": name, "version_id": id, "version_number": number }))
        .into_response()
}

pub async fn delete_deployment(
    State(s): S,
    Path((_, name, id)): Path<(String, String, String)>,
) -> ApiResult {
    let mut script = load(&s, &name)?;
    if !script.deployments.iter().any(|d| d.id == id) {
        return Err(not_found("This deployment does not exist for this Worker."));
    }
    if script.live().is_some_and(|l| l.id == id) {
        return Err(invalid(
            "the latest deployment serves traffic and cannot be deleted",
        ));
    }
    script.deployments.retain(|d| d.id != id);
    save(&s.store, &script).map_err(internal)?;
    Ok(axum::Json(json!({ "success": true, "errors": [], "messages": [] })).into_response())
}

/// `POST /__emulator/workers/{script}/versions`: a version as `wrangler deploy` (`upload`),
/// `versions upload` (`version_upload`) or `secret put` (`secret`) would make it.
pub async fn control_upload(State(s): S, Path(name): Path<String>, body: Bytes) -> ApiResult {
    let u: Upload = parse_json(&body, 10021)?;
    let script = upload(&s.store, &name, &u).map_err(invalid)?;
    let v = script.versions.last().expect("just uploaded");
    ok(json!({ "version": v.short(), "deployment": script.live().map(Deployment::json) }))
}
