//! Workers' versions and deployments through the v4 API, typed, read as WORKERS.md says to read
//! them: the script list in one answer; versions with `deployable=true` in exactly one request
//! (the server ignores `page` there, so a page loop would never end), otherwise page by page
//! until a short page; deployments ordered by their parsed `created_on` (never as strings: the
//! fraction has a varying number of digits), the newest being what is live; a version's
//! `number` read leniently (`12.0` is 12).

use reqwest::Method;
use serde_json::Value;
use time::OffsetDateTime;

use super::client::{Body, CfError, Client};

/// Versions asked for a page when paging the whole history.
const PER_PAGE: u32 = 100;

#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    /// The name (`{script_name}` in paths).
    pub name: String,
    pub modified_on: Option<OffsetDateTime>,
    /// The newest upload's Durable Object migration tag (not necessarily the live version's).
    pub migration_tag: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    pub id: String,
    pub number: u64,
    pub created_on: Option<OffsetDateTime>,
    pub source: String,
    pub author_email: String,
    pub message: Option<String>,
    pub tag: Option<String>,
    /// upload, version_upload, secret, …
    pub triggered_by: Option<String>,
}

/// A version with what it runs with: its bindings (secrets by name only), compatibility date
/// and Durable Object migration tag.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionDetail {
    pub version: Version,
    pub bindings: Vec<Value>,
    pub compatibility_date: Option<String>,
    pub migration_tag: Option<String>,
}

impl VersionDetail {
    /// The names of its secrets.
    pub fn secrets(&self) -> Vec<String> {
        self.bindings
            .iter()
            .filter(|b| matches!(b["type"].as_str(), Some("secret_text" | "secret_key")))
            .filter_map(|b| b["name"].as_str().map(str::to_string))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Share {
    pub version_id: String,
    pub percentage: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    pub id: String,
    pub created_on: Option<OffsetDateTime>,
    pub source: String,
    pub versions: Vec<Share>,
    pub author_email: Option<String>,
    pub message: Option<String>,
    pub triggered_by: Option<String>,
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

fn time(v: &Value) -> Option<OffsetDateTime> {
    v.as_str().and_then(crate::repo::manifest::parse_time)
}

fn unexpected(path: &str, what: &str) -> CfError {
    CfError::Decode {
        method: "GET".into(),
        path: path.into(),
        message: format!("no {what} in the answer"),
    }
}

impl Version {
    fn of(v: &Value) -> Option<Self> {
        let m = &v["metadata"];
        let a = &v["annotations"];
        Some(Self {
            id: text(&v["id"])?,
            // A number, in practice an integer; some clients write `12.0`.
            number: v["number"]
                .as_u64()
                .or_else(|| v["number"].as_f64().map(|n| n as u64))
                .unwrap_or(0),
            created_on: time(&m["created_on"]),
            source: text(&m["source"]).unwrap_or_default(),
            author_email: text(&m["author_email"]).unwrap_or_default(),
            message: text(&a["workers/message"]),
            tag: text(&a["workers/tag"]),
            triggered_by: text(&a["workers/triggered_by"]),
        })
    }
}

impl Deployment {
    fn of(d: &Value) -> Option<Self> {
        Some(Self {
            id: text(&d["id"])?,
            created_on: time(&d["created_on"]),
            source: text(&d["source"]).unwrap_or_default(),
            versions: d["versions"]
                .as_array()?
                .iter()
                .filter_map(|s| {
                    Some(Share {
                        version_id: text(&s["version_id"])?,
                        percentage: s["percentage"].as_f64()?,
                    })
                })
                .collect(),
            author_email: text(&d["author_email"]),
            message: text(&d["annotations"]["workers/message"]),
            triggered_by: text(&d["annotations"]["workers/triggered_by"]),
        })
    }
}

fn scripts_path(script: &str) -> String {
    format!("/workers/scripts/{script}")
}

impl Client {
    /// Every Worker of the account (one answer: the list is not paged).
    pub async fn worker_scripts(&self) -> Result<Vec<Script>, CfError> {
        let a = self
            .call(Method::GET, "/workers/scripts", &[], Body::None)
            .await?;
        Ok(a.result
            .as_array()
            .ok_or_else(|| unexpected("/workers/scripts", "list"))?
            .iter()
            .filter_map(|s| {
                Some(Script {
                    name: text(&s["id"])?,
                    modified_on: time(&s["modified_on"]),
                    migration_tag: text(&s["migration_tag"]),
                })
            })
            .collect())
    }

    /// A Worker's versions, newest first: with `deployable`, those a deployment may name (one
    /// request); otherwise the whole history, page by page.
    pub async fn worker_versions(
        &self,
        script: &str,
        deployable: bool,
    ) -> Result<Vec<Version>, CfError> {
        let path = format!("{}/versions", scripts_path(script));
        let items = |a: &super::Answer| -> Result<Vec<Version>, CfError> {
            Ok(a.result["items"]
                .as_array()
                .ok_or_else(|| unexpected(&path, "items"))?
                .iter()
                .filter_map(Version::of)
                .collect())
        };
        if deployable {
            let q = [("deployable", "true".to_string())];
            let a = self.call(Method::GET, &path, &q, Body::None).await?;
            return items(&a);
        }
        let mut out = Vec::new();
        for page in 1.. {
            let q = [
                ("page", page.to_string()),
                ("per_page", PER_PAGE.to_string()),
            ];
            let a = self.call(Method::GET, &path, &q, Body::None).await?;
            let got = items(&a)?;
            let n = got.len();
            out.extend(got);
            if n < PER_PAGE as usize {
                break;
            }
        }
        Ok(out)
    }

    /// One version with its bindings and runtime.
    pub async fn worker_version(&self, script: &str, id: &str) -> Result<VersionDetail, CfError> {
        let path = format!("{}/versions/{id}", scripts_path(script));
        let a = self.call(Method::GET, &path, &[], Body::None).await?;
        let r = &a.result;
        Ok(VersionDetail {
            version: Version::of(r).ok_or_else(|| unexpected(&path, "version"))?,
            bindings: r["resources"]["bindings"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
            compatibility_date: text(&r["resources"]["script_runtime"]["compatibility_date"]),
            migration_tag: text(&r["resources"]["script_runtime"]["migration_tag"]),
        })
    }

    /// One deployment (the read-back of one just made).
    pub async fn worker_deployment(&self, script: &str, id: &str) -> Result<Deployment, CfError> {
        let path = format!("{}/deployments/{id}", scripts_path(script));
        let a = self.call(Method::GET, &path, &[], Body::None).await?;
        Deployment::of(&a.result).ok_or_else(|| unexpected(&path, "deployment"))
    }

    /// A new deployment of `script` putting traffic on `shares` (one or two versions summing
    /// to 100, in this order), annotated with `message`. `force` overrides Cloudflare's guard
    /// against bringing back an older secret value (10220): only ever on the operator's word.
    /// Sent once: a lost answer may mean it landed, so the caller reads the deployments back
    /// instead of sending it again.
    pub async fn worker_deploy(
        &self,
        script: &str,
        shares: &[Share],
        message: &str,
        force: bool,
    ) -> Result<Deployment, CfError> {
        let path = format!("{}/deployments", scripts_path(script));
        let body = serde_json::json!({
            "strategy": "percentage",
            "versions": shares.iter()
                .map(|s| serde_json::json!({ "version_id": s.version_id, "percentage": s.percentage }))
                .collect::<Vec<_>>(),
            "annotations": { "workers/message": message },
        });
        let q: Vec<(&str, String)> = if force {
            vec![("force", "true".into())]
        } else {
            vec![]
        };
        let a = self
            .call_once(Method::POST, &path, &q, Body::Json(body))
            .await?;
        Deployment::of(&a.result).ok_or_else(|| CfError::Decode {
            method: "POST".into(),
            path,
            message: "no deployment in the answer".into(),
        })
    }

    /// A Worker's recent deployments (about the newest 10), newest first by their time; the
    /// first is what is live.
    pub async fn worker_deployments(&self, script: &str) -> Result<Vec<Deployment>, CfError> {
        let path = format!("{}/deployments", scripts_path(script));
        let a = self.call(Method::GET, &path, &[], Body::None).await?;
        let mut out: Vec<Deployment> = a.result["deployments"]
            .as_array()
            .ok_or_else(|| unexpected(&path, "deployments"))?
            .iter()
            .filter_map(Deployment::of)
            .collect();
        out.sort_by_key(|d| std::cmp::Reverse(d.created_on));
        Ok(out)
    }
}

/// The version that answered a request to a Worker at `url`: the Worker reports it (its
/// `version_metadata` binding's id) as `version_id` in a JSON body. `pin` sends
/// `Cloudflare-Workers-Version-Overrides` so that one version of the live deployment answers.
/// No API token goes with it: the Worker is not the API. `None` when the answer names no
/// version.
pub async fn probe(
    url: &str,
    pin: Option<(&str, &str)>,
    timeout: std::time::Duration,
) -> Result<Option<String>, CfError> {
    let failed = |message: String| CfError::Network {
        method: "GET".into(),
        path: url.to_string(),
        message,
    };
    let http = super::http()
        .timeout(timeout)
        .build()
        .map_err(|e| failed(e.to_string()))?;
    let mut req = http.get(url);
    if let Some((script, version)) = pin {
        req = req.header(
            "Cloudflare-Workers-Version-Overrides",
            format!("{script}=\"{version}\""),
        );
    }
    let resp = req.send().await.map_err(|e| failed(e.to_string()))?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| failed(e.to_string()))?;
    if !status.is_success() {
        return Err(CfError::Api {
            method: "GET".into(),
            path: url.to_string(),
            status: status.as_u16(),
            code: None,
            message: String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
            ray: None,
        });
    }
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok(text(&v["version_id"]).or_else(|| text(&v["id"])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_and_deployments_are_read_leniently_and_in_time_order() {
        let v = Version::of(&json!({ "id": "a", "number": 12.0,
            "metadata": { "created_on": "2026-07-04T16:14:21.25697Z", "source": "wrangler" },
            "annotations": { "workers/triggered_by": "secret" } }))
        .unwrap();
        assert_eq!((v.number, v.triggered_by.as_deref()), (12, Some("secret")));
        // Compared as strings, `…:21.25697Z` sorts after `…:21.3Z`; as times it is before.
        let d = |id: &str, t: &str| {
            Deployment::of(&json!({ "id": id, "created_on": t, "source": "api",
                "strategy": "percentage", "versions": [{ "version_id": "v", "percentage": 100 }] }))
            .unwrap()
        };
        let mut all = [
            d("old", "2026-07-04T16:14:21.25697Z"),
            d("new", "2026-07-04T16:14:21.3Z"),
        ];
        all.sort_by_key(|d| std::cmp::Reverse(d.created_on));
        assert_eq!(all[0].id, "new");
    }
}
