//! Workers in the emulator: scripts, their versions and deployments — the seven routes of
//! `shared/cloudflare-api/WORKERS.md` (list scripts; list and read versions, `deployable=true`
//! the newest 100 in one answer; list the newest 10 deployments, read one, create one with one
//! or two versions summing to 100, delete any but the latest), with its errors: 10007 for an
//! unknown Worker, version or deployment, 10220 for a rollback across a secret change without
//! `force=true`, 10021 for a deployment the rules refuse. Versions are made outside the
//! contract (the playbook never uploads code): by the demo's seed and by the control route
//! `POST /__emulator/workers/{script}/versions`, as `wrangler deploy`, `versions upload` and
//! `secret put` would.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::envelope::{ApiError, ApiResult, ok, parse_json, query_get, query_int, query_pairs};
use super::state::Shared;
use super::store::Store;

type S = State<Arc<Shared>>;

/// How many of a Worker's newest versions a deployment may name (raised from 10 in 2025).
pub const DEPLOYABLE: usize = 100;
/// How many deployments the list returns, newest first.
pub const LISTED_DEPLOYMENTS: usize = 10;
/// `workers/message` is truncated to this many bytes.
pub const MESSAGE_BYTES: usize = 1000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Script {
    pub name: String,
    pub tag: String,
    pub created_us: i64,
    pub modified_us: i64,
    /// Oldest first.
    pub versions: Vec<Version>,
    /// Oldest first.
    pub deployments: Vec<Deployment>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Version {
    pub id: String,
    pub number: u64,
    pub created_us: i64,
    pub author_email: String,
    /// api, wrangler, dash, …
    pub source: String,
    /// upload, version_upload or secret.
    pub triggered_by: String,
    pub message: Option<String>,
    pub tag: Option<String>,
    /// Bindings as the API shows them (secrets without their value).
    pub bindings: Vec<Value>,
    /// Secret values by name: compared for 10220, never shown.
    pub secrets: BTreeMap<String, String>,
    pub compatibility_date: String,
    pub compatibility_flags: Vec<String>,
    pub usage_model: String,
    pub migration_tag: Option<String>,
    pub handlers: Vec<String>,
    pub etag: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deployment {
    pub id: String,
    pub created_us: i64,
    pub source: String,
    /// (version id, percentage), in the order given.
    pub versions: Vec<(String, f64)>,
    pub author_email: String,
    pub message: Option<String>,
    pub triggered_by: String,
}

/// Microseconds since the epoch, as the API's `created_on` carries them.
pub fn now_us() -> i64 {
    super::clock::now_ms() * 1000 + i64::from(rand::random::<u16>() % 1000)
}

/// RFC 3339 with the fraction's trailing zeros dropped, as Workers writes it
/// (`2026-07-04T16:14:21.25697Z`, `…:02.000407Z`).
pub fn time_us(us: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]"
    );
    let s = t.format(&f).unwrap_or_default();
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}Z")
}

impl Version {
    fn short(&self) -> Value {
        let mut annotations = json!({ "workers/triggered_by": self.triggered_by });
        if let Some(m) = &self.message {
            annotations["workers/message"] = json!(m);
        }
        if let Some(t) = &self.tag {
            annotations["workers/tag"] = json!(t);
        }
        json!({
            "id": self.id,
            "number": self.number,
            "metadata": {
                "author_email": self.author_email,
                "author_id": "408cbcdfd4dda4617efef40b04d168a1",
                "created_on": time_us(self.created_us),
                "modified_on": time_us(self.created_us),
                "source": self.source,
                "hasPreview": false,
            },
            "annotations": annotations,
        })
    }

    fn full(&self) -> Value {
        let mut v = self.short();
        let mut runtime = json!({
            "compatibility_date": self.compatibility_date,
            "compatibility_flags": self.compatibility_flags,
            "usage_model": self.usage_model,
            "limits": {},
        });
        if let Some(m) = &self.migration_tag {
            runtime["migration_tag"] = json!(m);
        }
        v["resources"] = json!({
            "bindings": self.bindings,
            "script": { "etag": self.etag, "handlers": self.handlers,
                        "last_deployed_from": self.source, "named_handlers": [] },
            "script_runtime": runtime,
        });
        v
    }
}

impl Deployment {
    fn json(&self) -> Value {
        let mut annotations = json!({ "workers/triggered_by": self.triggered_by });
        if let Some(m) = &self.message {
            annotations["workers/message"] = json!(m);
        }
        json!({
            "id": self.id,
            "created_on": time_us(self.created_us),
            "source": self.source,
            "strategy": "percentage",
            "versions": self.versions.iter()
                .map(|(id, p)| json!({ "version_id": id, "percentage": p }))
                .collect::<Vec<_>>(),
            "author_email": self.author_email,
            "annotations": annotations,
        })
    }
}

impl Script {
    fn latest_version(&self) -> Option<&Version> {
        self.versions.last()
    }

    /// The deployment serving traffic: the newest.
    pub fn live(&self) -> Option<&Deployment> {
        self.deployments.iter().max_by_key(|d| d.created_us)
    }

    fn version(&self, id: &str) -> Option<&Version> {
        self.versions.iter().find(|v| v.id == id)
    }

    fn json(&self) -> Value {
        let v = self.latest_version();
        let mut out = json!({
            "id": self.name,
            "tag": self.tag,
            "created_on": time_us(self.created_us),
            "modified_on": time_us(self.modified_us),
            "etag": v.map(|v| v.etag.clone()).unwrap_or_default(),
            "handlers": v.map(|v| v.handlers.clone()).unwrap_or_default(),
            "has_modules": true,
            "has_assets": false,
            "last_deployed_from": v.map(|v| v.source.clone()).unwrap_or_default(),
            "usage_model": v.map(|v| v.usage_model.clone()).unwrap_or_default(),
            "compatibility_date": v.map(|v| v.compatibility_date.clone()).unwrap_or_default(),
            "compatibility_flags": v.map(|v| v.compatibility_flags.clone()).unwrap_or_default(),
            "logpush": false,
            "tags": [],
            "routes": null,
        });
        if let Some(m) = v.and_then(|v| v.migration_tag.clone()) {
            out["migration_tag"] = json!(m);
        }
        out
    }
}

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
pub fn scripts(store: &Store) -> rusqlite::Result<Vec<Script>> {
    store.with(|c| {
        let mut st = c.prepare("SELECT doc FROM workers_scripts ORDER BY name")?;
        let docs = st
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(docs
            .iter()
            .filter_map(|d| serde_json::from_str(d).ok())
            .collect())
    })
}

pub fn script(store: &Store, name: &str) -> rusqlite::Result<Option<Script>> {
    use rusqlite::OptionalExtension;
    let doc: Option<String> = store.with(|c| {
        c.query_row(
            "SELECT doc FROM workers_scripts WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()
    })?;
    Ok(doc.and_then(|d| serde_json::from_str(&d).ok()))
}

pub fn save(store: &Store, s: &Script) -> rusqlite::Result<()> {
    let doc = serde_json::to_string(s).unwrap_or_default();
    store.with(|c| {
        c.execute(
            "INSERT INTO workers_scripts(name, doc) VALUES (?1, ?2) \
             ON CONFLICT(name) DO UPDATE SET doc = excluded.doc",
            rusqlite::params![s.name, doc],
        )
        .map(|_| ())
    })
}

fn load(s: &Shared, name: &str) -> Result<Script, ApiError> {
    script(&s.store, name)
        .map_err(internal)?
        .ok_or_else(no_worker)
}

/// What uploading a version takes (the control route's body and the seed's).
#[derive(Debug, Clone, Deserialize)]
pub struct Upload {
    /// upload (a deploy: version and a 100 % deployment), version_upload (a version only) or
    /// secret (a secret change: version and deployment).
    #[serde(default = "upload_kind")]
    pub triggered_by: String,
    #[serde(default)]
    pub bindings: Vec<Value>,
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub tag: Option<String>,
    #[serde(default)]
    pub migration_tag: Option<String>,
    #[serde(default = "compat_date")]
    pub compatibility_date: String,
    #[serde(default)]
    pub author_email: Option<String>,
    /// When it happened (microseconds since the epoch); now when absent.
    #[serde(default)]
    pub at_us: Option<i64>,
}

fn upload_kind() -> String {
    "upload".into()
}

fn compat_date() -> String {
    "2025-01-01".into()
}

/// A new version of `name` (the script created when it does not exist), and for a deploy or
/// a secret change its 100 % deployment. Returns the script as it stands.
pub fn upload(store: &Store, name: &str, u: &Upload) -> Result<Script, String> {
    if !matches!(
        u.triggered_by.as_str(),
        "upload" | "version_upload" | "secret"
    ) {
        return Err(format!(
            "triggered_by `{}`: upload, version_upload or secret",
            u.triggered_by
        ));
    }
    let at = u.at_us.unwrap_or_else(now_us);
    let mut s = script(store, name)
        .map_err(|e| e.to_string())?
        .unwrap_or_else(|| Script {
            name: name.to_string(),
            tag: uuid::Uuid::new_v4().simple().to_string(),
            created_us: at,
            modified_us: at,
            versions: Vec::new(),
            deployments: Vec::new(),
        });
    let author = u
        .author_email
        .clone()
        .unwrap_or_else(|| "dev@example.com".into());
    let mut bindings: Vec<Value> = u
        .bindings
        .iter()
        .filter(|b| b["type"] != "secret_text")
        .cloned()
        .collect();
    // A secret shows its name and kind, never its value.
    bindings.extend(
        u.secrets
            .keys()
            .map(|k| json!({ "name": k, "type": "secret_text" })),
    );
    let number = s.versions.last().map_or(1, |v| v.number + 1);
    let id = uuid::Uuid::new_v4().to_string();
    let version = Version {
        id: id.clone(),
        number,
        created_us: at,
        author_email: author.clone(),
        source: "wrangler".into(),
        triggered_by: u.triggered_by.clone(),
        message: u.message.clone(),
        tag: u.tag.clone(),
        bindings,
        secrets: u.secrets.clone(),
        compatibility_date: u.compatibility_date.clone(),
        compatibility_flags: vec!["nodejs_compat".into()],
        usage_model: "standard".into(),
        migration_tag: u.migration_tag.clone(),
        handlers: vec!["fetch".into()],
        etag: format!("{:064x}", number.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
    };
    s.versions.push(version);
    s.modified_us = at;
    if u.triggered_by != "version_upload" {
        s.deployments.push(Deployment {
            id: uuid::Uuid::new_v4().to_string(),
            created_us: at + 1,
            source: "wrangler".into(),
            versions: vec![(id, 100.0)],
            author_email: author,
            message: Some(if u.triggered_by == "secret" {
                "Secret change".into()
            } else {
                "Automatic deployment on upload.".into()
            }),
            triggered_by: u.triggered_by.clone(),
        });
    }
    save(store, &s).map_err(|e| e.to_string())?;
    Ok(s)
}

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
fn changed_secrets(live: &[&Version], target: &Version) -> Vec<String> {
    let mut out: Vec<String> = live
        .iter()
        .flat_map(|l| {
            l.secrets
                .iter()
                .filter(|(k, v)| target.secrets.get(*k).is_some_and(|t| t != *v))
                .map(|(k, _)| k.clone())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A message cut to `MESSAGE_BYTES` at a character boundary.
fn truncate(m: &str) -> String {
    if m.len() <= MESSAGE_BYTES {
        return m.to_string();
    }
    let mut end = MESSAGE_BYTES;
    while !m.is_char_boundary(end) {
        end -= 1;
    }
    m[..end].to_string()
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_drop_the_fractions_trailing_zeros_as_workers_writes_them() {
        assert_eq!(time_us(1_783_181_661_256_970), "2026-07-04T16:14:21.25697Z");
        assert_eq!(
            time_us(1_783_181_642_000_407),
            "2026-07-04T16:14:02.000407Z"
        );
        assert_eq!(time_us(1_783_181_642_000_000), "2026-07-04T16:14:02Z");
    }

    #[test]
    fn a_secret_changed_is_one_named_in_both_with_another_value() {
        let v = |secrets: &[(&str, &str)]| Version {
            id: "x".into(),
            number: 1,
            created_us: 0,
            author_email: String::new(),
            source: String::new(),
            triggered_by: String::new(),
            message: None,
            tag: None,
            bindings: Vec::new(),
            secrets: secrets
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            compatibility_date: String::new(),
            compatibility_flags: Vec::new(),
            usage_model: String::new(),
            migration_tag: None,
            handlers: Vec::new(),
            etag: String::new(),
        };
        let live = v(&[("JWT", "new"), ("API", "same")]);
        let old = v(&[("JWT", "old"), ("API", "same"), ("GONE", "x")]);
        assert_eq!(changed_secrets(&[&live], &old), ["JWT"]);
        assert!(changed_secrets(&[&live], &live).is_empty());
        assert_eq!(truncate(&"é".repeat(600)).len(), 1000);
    }
}
