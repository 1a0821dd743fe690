//! The catalog (`index/catalog.json`): one summary line per backup, so listing stays one read
//! however many backups there are. It is a cache of the manifests: rebuilt from them when
//! missing or unreadable, and rewritten by writers under the lease.

use super::storage::Path;
use serde::{Deserialize, Serialize};

use super::RepoError;
use super::manifest::Manifest;
use super::storage::Storage;

pub const CATALOG_PATH: &str = "index/catalog.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub id: String,
    pub kind: String,
    pub target: String,
    pub target_id: String,
    pub trigger: String,
    pub method: String,
    pub started: String,
    pub finished: String,
    pub plaintext_size: u64,
    pub stored_size: u64,
    pub artifacts: usize,
    pub warnings: usize,
    /// The manifest's directory in the repository.
    pub dir: String,
}

impl Entry {
    pub fn from_manifest(m: &Manifest) -> Self {
        Self {
            id: m.id.clone(),
            kind: m.kind.as_str().into(),
            target: m.target.name.clone(),
            target_id: m.target.id.clone(),
            trigger: m.trigger.clone(),
            method: m.method.clone(),
            started: m.started.clone(),
            finished: m.finished.clone(),
            plaintext_size: m.plaintext_size(),
            stored_size: m.stored_size(),
            artifacts: m.artifacts.len(),
            warnings: m.warnings.len(),
            dir: m.dir(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Catalog {
    pub entries: Vec<Entry>,
}

impl Catalog {
    pub async fn load(storage: &Storage) -> Result<Option<Catalog>, RepoError> {
        Ok(storage
            .get(&Path::from(CATALOG_PATH))
            .await?
            .and_then(|b| serde_json::from_slice(&b).ok()))
    }

    pub async fn save(&self, storage: &Storage) -> Result<(), RepoError> {
        storage
            .put(
                &Path::from(CATALOG_PATH),
                serde_json::to_vec(self).unwrap_or_default(),
            )
            .await
    }

    /// Reads every manifest (the slow path, after damage or by `reindex`).
    pub async fn rebuild(storage: &Storage) -> Result<Catalog, RepoError> {
        let mut entries = Vec::new();
        for meta in storage.list(&Path::from("snapshots")).await? {
            if meta.location.filename() == Some("manifest.json")
                && let Some(bytes) = storage.get(&meta.location).await?
                && let Ok(m) = serde_json::from_slice::<Manifest>(&bytes)
            {
                entries.push(Entry::from_manifest(&m));
            }
        }
        let mut c = Catalog { entries };
        c.sort();
        Ok(c)
    }

    /// Oldest first, by start time (ids carry whole seconds only, so two backups of one second
    /// would otherwise fall in a random order).
    pub fn sort(&mut self) {
        self.entries.sort_by_cached_key(|e| {
            (
                super::manifest::parse_time(&e.started).map(|t| t.unix_timestamp_nanos()),
                e.id.clone(),
            )
        });
    }

    pub fn upsert(&mut self, e: Entry) {
        self.entries.retain(|x| x.id != e.id);
        self.entries.push(e);
        self.sort();
    }

    pub fn find(&self, id: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.id == id)
    }
}
