//! Restore runs in the repository, `runs/<run-id>/`, so that another machine can see, resume or
//! undo one: `run.json` (the plan and how far it got), `journal/<unit>.json` (one per applied
//! unit, written after the unit landed) and `report.json` (the outcome). Every file is sealed:
//! a plan names keys, tables and objects.

use super::storage::Path;

use super::{Repo, RepoError};
use crate::seal;

/// Where the restore lock of a target lives: one restore per target at a time.
pub fn restore_lock(kind: &str, target_id: &str) -> String {
    format!(
        "locks/restore-{kind}-{}.json",
        super::manifest::path_safe(target_id)
    )
}

fn path(run: &str, name: &str) -> Path {
    Path::from(format!("runs/{run}/{name}"))
}

impl Repo {
    /// Seals `bytes` as `runs/<run>/<name>`.
    pub async fn put_run_file(&self, run: &str, name: &str, bytes: &[u8]) -> Result<(), RepoError> {
        let mut sealed = Vec::with_capacity(bytes.len() + 256);
        seal::seal(bytes, &mut sealed, &self.key, self.config.chunk_size).map_err(|source| {
            RepoError::Seal {
                artifact: format!("runs/{run}/{name}"),
                source,
            }
        })?;
        self.storage.put(&path(run, name), sealed).await
    }

    /// `runs/<run>/<name>` opened, or `None` when it does not exist.
    pub async fn run_file(&self, run: &str, name: &str) -> Result<Option<Vec<u8>>, RepoError> {
        let Some(sealed) = self.storage.get(&path(run, name)).await? else {
            return Ok(None);
        };
        let mut plain = Vec::with_capacity(sealed.len());
        seal::open(&sealed[..], &mut plain, &self.key).map_err(|source| RepoError::Seal {
            artifact: format!("runs/{run}/{name}"),
            source,
        })?;
        Ok(Some(plain))
    }

    /// The names of a run's files under `dir` (`journal`), sorted.
    pub async fn run_files(&self, run: &str, dir: &str) -> Result<Vec<String>, RepoError> {
        let prefix = format!("runs/{run}/{dir}/");
        let mut names: Vec<String> = self
            .storage
            .list(&Path::from(format!("runs/{run}/{dir}")))
            .await?
            .into_iter()
            .filter_map(|m| {
                m.location
                    .as_ref()
                    .strip_prefix(&prefix)
                    .map(str::to_string)
            })
            .collect();
        names.sort();
        Ok(names)
    }

    /// Every restore run id in the repository, oldest first.
    pub async fn runs(&self) -> Result<Vec<String>, RepoError> {
        self.runs_with("run.json").await
    }

    /// Every run id whose folder holds `file` (`run.json` for restores, `playbook.json` for
    /// playbook runs), oldest first.
    pub async fn runs_with(&self, file: &str) -> Result<Vec<String>, RepoError> {
        let mut ids: Vec<String> = self
            .storage
            .list(&Path::from("runs"))
            .await?
            .into_iter()
            .filter_map(|m| {
                let rest = m.location.as_ref().strip_prefix("runs/")?;
                let (id, name) = rest.split_once('/')?;
                (name == file).then(|| id.to_string())
            })
            .collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }
}
