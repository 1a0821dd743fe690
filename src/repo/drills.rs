//! Drill reports: `drills/<id>.json` and `drills/<id>.md`, MAC'd like manifests so a report
//! cannot be edited unseen — the JSON carries the MAC of the Markdown and one of its own.

use super::storage::Path;

use super::{Repo, RepoError};

const PURPOSE: &str = "drill report";

fn path(id: &str, ext: &str) -> Path {
    Path::from(format!("drills/{id}.{ext}"))
}

fn json_bytes(v: &serde_json::Value) -> Result<Vec<u8>, RepoError> {
    serde_json::to_vec(v).map_err(|e| RepoError::Internal(e.to_string()))
}

impl Repo {
    /// Stores a drill's report in both forms, MAC'd.
    pub async fn put_drill(
        &self,
        id: &str,
        mut report: serde_json::Value,
        markdown: &str,
    ) -> Result<(), RepoError> {
        report["markdown_mac"] = self.key.mac(PURPOSE, markdown.as_bytes()).into();
        report["mac"] = serde_json::Value::Null;
        let mac = self.key.mac(PURPOSE, &json_bytes(&report)?);
        report["mac"] = mac.into();
        self.storage
            .put(&path(id, "md"), markdown.as_bytes().to_vec())
            .await?;
        let pretty =
            serde_json::to_vec_pretty(&report).map_err(|e| RepoError::Internal(e.to_string()))?;
        self.storage.put(&path(id, "json"), pretty).await
    }

    /// A drill's report (JSON, Markdown), both MACs checked: an edited one is `Tampered`.
    pub async fn drill(&self, id: &str) -> Result<(serde_json::Value, String), RepoError> {
        let not_found = || RepoError::NotFound {
            id: format!("drill {id}"),
            location: self.storage.display.clone(),
        };
        let json = self
            .storage
            .get(&path(id, "json"))
            .await?
            .ok_or_else(not_found)?;
        let markdown = self
            .storage
            .get(&path(id, "md"))
            .await?
            .ok_or_else(not_found)?;
        let tampered = || RepoError::Tampered {
            id: format!("drill report {id}"),
        };
        let mut report: serde_json::Value =
            serde_json::from_slice(&json).map_err(|_| tampered())?;
        let mac = report["mac"].as_str().unwrap_or_default().to_string();
        report["mac"] = serde_json::Value::Null;
        if self.key.mac(PURPOSE, &json_bytes(&report)?) != mac
            || report["markdown_mac"].as_str() != Some(&self.key.mac(PURPOSE, &markdown))
        {
            return Err(tampered());
        }
        report["mac"] = mac.into();
        Ok((report, String::from_utf8_lossy(&markdown).into_owned()))
    }

    /// Every drill's id, oldest first.
    pub async fn drills(&self) -> Result<Vec<String>, RepoError> {
        let mut ids: Vec<String> = self
            .storage
            .list(&Path::from("drills"))
            .await?
            .into_iter()
            .filter_map(|m| {
                m.location
                    .as_ref()
                    .strip_prefix("drills/")?
                    .strip_suffix(".json")
                    .map(str::to_string)
            })
            .collect();
        ids.sort();
        Ok(ids)
    }
}
