//! Workers as an operator reads them before a rollback: each Worker with what is live (the
//! newest deployment's versions and shares, by version number), its deployable versions with
//! the live ones marked, its recent deployments. Read-only: every call here is a GET. A
//! rollback is planned in [`rollback`] (its target checked in [`preflight`]), carried out,
//! resumed and undone in [`deploy`], each deployment verified in [`verify`].

pub mod deploy;
pub mod preflight;
pub mod rollback;
pub mod verify;

use serde::Serialize;

use super::{Error, Result};
use crate::cloudflare::Client;
use crate::cloudflare::workers::{Deployment, Version};
use crate::repo::manifest::rfc3339;

/// A version's share of traffic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Share {
    pub version_id: String,
    /// Its number, when it is among the deployable versions.
    pub number: Option<u64>,
    pub percentage: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerRow {
    pub name: String,
    /// The live deployment's versions (two during a gradual rollout); empty when never deployed.
    pub live: Vec<Share>,
    pub deployment: Option<String>,
    pub deployed_on: Option<String>,
    pub author: Option<String>,
    pub message: Option<String>,
    pub triggered_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionRow {
    pub id: String,
    pub number: u64,
    pub created_on: Option<String>,
    pub source: String,
    pub author_email: String,
    pub triggered_by: Option<String>,
    pub message: Option<String>,
    /// Its share of traffic now, when it is live.
    pub live_percentage: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeploymentRow {
    pub id: String,
    pub created_on: Option<String>,
    pub source: String,
    pub versions: Vec<Share>,
    pub author_email: Option<String>,
    pub message: Option<String>,
    pub triggered_by: Option<String>,
    /// The newest: what serves traffic.
    pub live: bool,
}

fn client(client: Option<&Client>) -> Result<&Client> {
    client.ok_or_else(|| {
        Error::usage(
            "reading Workers needs the account: set CLOUDFLARE_API_TOKEN (Workers Scripts Read) and CLOUDFLARE_ACCOUNT_ID",
        )
    })
}

fn shares(d: &Deployment, versions: &[Version]) -> Vec<Share> {
    d.versions
        .iter()
        .map(|s| Share {
            version_id: s.version_id.clone(),
            number: versions
                .iter()
                .find(|v| v.id == s.version_id)
                .map(|v| v.number),
            percentage: s.percentage,
        })
        .collect()
}

/// Every Worker with what is live.
pub async fn list(c: Option<&Client>) -> Result<Vec<WorkerRow>> {
    let c = client(c)?;
    let mut out = Vec::new();
    for s in c.worker_scripts().await? {
        let deployments = c.worker_deployments(&s.name).await?;
        let versions = c.worker_versions(&s.name, true).await?;
        let live = deployments.first();
        out.push(WorkerRow {
            name: s.name.clone(),
            live: live.map(|d| shares(d, &versions)).unwrap_or_default(),
            deployment: live.map(|d| d.id.clone()),
            deployed_on: live.and_then(|d| d.created_on).map(rfc3339),
            author: live.and_then(|d| d.author_email.clone()),
            message: live.and_then(|d| d.message.clone()),
            triggered_by: live.and_then(|d| d.triggered_by.clone()),
        });
    }
    Ok(out)
}

/// A Worker's deployable versions (the newest 100), newest first, the live ones marked.
pub async fn versions(c: Option<&Client>, script: &str) -> Result<Vec<VersionRow>> {
    let c = client(c)?;
    let live = c.worker_deployments(script).await?;
    let live = live.first();
    Ok(c.worker_versions(script, true)
        .await?
        .into_iter()
        .map(|v| VersionRow {
            live_percentage: live.and_then(|d| {
                d.versions
                    .iter()
                    .find(|s| s.version_id == v.id)
                    .map(|s| s.percentage)
            }),
            id: v.id,
            number: v.number,
            created_on: v.created_on.map(rfc3339),
            source: v.source,
            author_email: v.author_email,
            triggered_by: v.triggered_by,
            message: v.message,
        })
        .collect())
}

/// A Worker's recent deployments, newest (live) first.
pub async fn deployments(c: Option<&Client>, script: &str) -> Result<Vec<DeploymentRow>> {
    let c = client(c)?;
    let versions = c.worker_versions(script, true).await?;
    Ok(c.worker_deployments(script)
        .await?
        .iter()
        .enumerate()
        .map(|(i, d)| DeploymentRow {
            id: d.id.clone(),
            created_on: d.created_on.map(rfc3339),
            source: d.source.clone(),
            versions: shares(d, &versions),
            author_email: d.author_email.clone(),
            message: d.message.clone(),
            triggered_by: d.triggered_by.clone(),
            live: i == 0,
        })
        .collect())
}

/// `v12 100 %`, or `v3 90 % · v4 10 %` during a gradual rollout.
pub fn split(shares: &[Share]) -> String {
    if shares.is_empty() {
        return "never deployed".into();
    }
    shares
        .iter()
        .map(|s| {
            let name = s.number.map_or_else(
                || s.version_id.chars().take(8).collect(),
                |n| format!("v{n}"),
            );
            format!("{name} {} %", s.percentage)
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_names_each_version_and_its_share() {
        let s = |n: Option<u64>, p: f64| Share {
            version_id: "0123456789abcdef".into(),
            number: n,
            percentage: p,
        };
        assert_eq!(
            split(&[s(Some(3), 90.0), s(Some(4), 10.0)]),
            "v3 90 % · v4 10 %"
        );
        assert_eq!(split(&[s(None, 100.0)]), "01234567 100 %");
        assert_eq!(split(&[]), "never deployed");
    }
}
