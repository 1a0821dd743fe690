//! Workers in the emulator: scripts, their versions and deployments — the seven routes of
//! `shared/cloudflare-api/WORKERS.md` (list scripts; list and read versions, `deployable=true`
//! the newest 100 in one answer; list the newest 10 deployments, read one, create one with one
//! or two versions summing to 100, delete any but the latest), with its errors: 10007 for an
//! unknown Worker, version or deployment, 10220 for a rollback across a secret change without
//! `force=true`, 10021 for a deployment the rules refuse. Versions are made outside the
//! contract (the playbook never uploads code): by the demo's seed and by the control route
//! `POST /__emulator/workers/{script}/versions`, as `wrangler deploy`, `versions upload` and
//! `secret put` would.
//!
//! This file is the model and its rules; `routes.rs` answers the HTTP routes with them.

pub mod routes;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::store::Store;

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

/// Microseconds since the epoch, as the API's `created_on` carries them: the clock's
/// milliseconds with a random microsecond part, never at or before the last one given, so that
/// what is made later is always newer (the newest deployment is what is live).
pub fn now_us() -> i64 {
    static LAST: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let real = super::clock::now_ms() * 1000 + i64::from(rand::random::<u16>() % 1000);
    let prev = LAST
        .fetch_update(
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
            |last| Some(real.max(last + 1)),
        )
        .unwrap_or(real);
    real.max(prev + 1)
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

pub(super) fn changed_secrets(live: &[&Version], target: &Version) -> Vec<String> {
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
pub(super) fn truncate(m: &str) -> String {
    if m.len() <= MESSAGE_BYTES {
        return m.to_string();
    }
    let mut end = MESSAGE_BYTES;
    while !m.is_char_boundary(end) {
        end -= 1;
    }
    m[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_made_later_is_always_newer() {
        let times: Vec<i64> = (0..2000).map(|_| now_us()).collect();
        assert!(
            times.windows(2).all(|w| w[0] < w[1]),
            "within a millisecond too"
        );
    }

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
