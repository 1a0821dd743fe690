//! The backup repository: `config.json` with a key check, sealed artifacts and MAC'd manifests
//! under `snapshots/`, a catalog for fast listing, writer leases, verification and retention.
//! Only this module knows the layout; only `seal` does crypto.

pub mod audit;
mod blobs;
pub mod catalog;
pub mod drills;
pub mod lease;
mod lines;
pub mod manifest;
pub mod retention;
pub mod runs;
pub mod storage;
mod verify;

use std::io::Read;

use serde::{Deserialize, Serialize};
use storage::Path;
use time::OffsetDateTime;

pub use blobs::{BlobBatch, BlobFeed, BlobId, GATHER, INDEX, Received};
pub use catalog::{Catalog, Entry};
pub use lease::Lease;
pub use lines::ArtifactLines;
pub use manifest::{Artifact, Kind, Manifest, Target};
pub use verify::{Problem, VerifyMode, VerifyReport};

use crate::seal::{MasterKey, SealError};
use storage::Storage;

pub const CONFIG_PATH: &str = "config.json";
pub const REPO_FORMAT: &str = "cfdr.repo/1";

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{0}")]
    Usage(String),
    #[error(
        "`{location}` is not a cfdr repository (no config.json); create one with `cfdr repo init`"
    )]
    NotARepo { location: String },
    #[error("`{location}` is already a cfdr repository (id `{id}`); nothing was changed")]
    AlreadyARepo { location: String, id: String },
    #[error(
        "cannot open repository `{location}`: it was initialised with key `{repo_key}`, the key given is `{given}`; set CFDR_KEY to the key of that repository"
    )]
    KeyMismatch {
        location: String,
        repo_key: String,
        given: String,
    },
    #[error(
        "{what} is locked by {owner} on {host} since {since} ({purpose}); wait for it to finish — a lease whose process died goes stale after its TTL and is then taken over"
    )]
    Locked {
        /// `repository`, or the restore target that is held.
        what: String,
        owner: String,
        host: String,
        since: String,
        purpose: String,
    },
    #[error("repository `{location}`: `{path}`: {message}")]
    Store {
        location: String,
        path: String,
        message: String,
        /// On an object store over the network (else a local directory).
        remote: bool,
    },
    #[error("artifact `{artifact}`: {source}")]
    Seal { artifact: String, source: SealError },
    #[error("artifact `{artifact}` is missing from the repository")]
    MissingArtifact { artifact: String },
    #[error("the manifest of backup `{id}` does not match its MAC: it was edited or damaged")]
    Tampered { id: String },
    #[error("no backup `{id}` in repository `{location}`; list them with `cfdr backups list`")]
    NotFound { id: String, location: String },
    #[error("backup `{id}` has no artifact `{name}`; it has: {have}")]
    NoSuchArtifact {
        id: String,
        name: String,
        have: String,
    },
    #[error(
        "the blobs of backup `{id}` cannot be read ({message}); no blob was deleted: check it with `cfdr backups verify {id} --full`, and forget it if it is damaged"
    )]
    BlobsUnreadable { id: String, message: String },
    #[error("cancelled by the operator; nothing was recorded")]
    Cancelled,
    #[error("internal error: {0}")]
    Internal(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepoConfig {
    pub format: String,
    pub id: String,
    pub created: String,
    pub key_id: String,
    /// MAC of the repository id under the key: proves the key, reveals nothing.
    pub key_check: String,
    pub chunk_size: u32,
}

#[derive(Clone)]
pub struct Repo {
    pub storage: Storage,
    key: MasterKey,
    pub config: RepoConfig,
}

impl Repo {
    pub async fn init(storage: Storage, key: MasterKey) -> Result<Repo, RepoError> {
        Self::init_with_chunk(storage, key, crate::seal::DEFAULT_CHUNK).await
    }

    /// `init` with another chunk size for sealed artifacts (tests use small ones to reach many
    /// chunk boundaries cheaply).
    pub async fn init_with_chunk(
        storage: Storage,
        key: MasterKey,
        chunk_size: u32,
    ) -> Result<Repo, RepoError> {
        if let Some(existing) = Self::read_config(&storage).await? {
            return Err(RepoError::AlreadyARepo {
                location: storage.display.clone(),
                id: existing.id,
            });
        }
        let id = hex::encode(rand::random::<[u8; 8]>());
        let config = RepoConfig {
            format: REPO_FORMAT.into(),
            key_check: key.mac("key check", id.as_bytes()),
            id,
            created: manifest::rfc3339(OffsetDateTime::now_utc()),
            key_id: key.id(),
            chunk_size,
        };
        let body =
            serde_json::to_vec_pretty(&config).map_err(|e| RepoError::Internal(e.to_string()))?;
        if !storage.create(&Path::from(CONFIG_PATH), body).await? {
            return Err(RepoError::AlreadyARepo {
                location: storage.display.clone(),
                id: "?".into(),
            });
        }
        Ok(Repo {
            storage,
            key,
            config,
        })
    }

    async fn read_config(storage: &Storage) -> Result<Option<RepoConfig>, RepoError> {
        match storage.get(&Path::from(CONFIG_PATH)).await? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
                RepoError::Usage(format!("`{}/config.json` is damaged: {e}", storage.display))
            }),
        }
    }

    /// Opens a repository, checking the key before anything else is read.
    pub async fn open(storage: Storage, key: MasterKey) -> Result<Repo, RepoError> {
        let config = Self::read_config(&storage)
            .await?
            .ok_or_else(|| RepoError::NotARepo {
                location: storage.display.clone(),
            })?;
        if config.format != REPO_FORMAT {
            return Err(RepoError::Usage(format!(
                "repository format `{}` is not supported by this cfdr; upgrade cfdr",
                config.format
            )));
        }
        if config.key_id != key.id()
            || config.key_check != key.mac("key check", config.id.as_bytes())
        {
            return Err(RepoError::KeyMismatch {
                location: storage.display.clone(),
                repo_key: config.key_id,
                given: key.id(),
            });
        }
        Ok(Repo {
            storage,
            key,
            config,
        })
    }

    pub fn key_id(&self) -> String {
        self.key.id()
    }

    /// The catalog, rebuilt from the manifests when it is missing or unreadable.
    pub async fn catalog(&self) -> Result<Catalog, RepoError> {
        match Catalog::load(&self.storage).await? {
            Some(c) => Ok(c),
            None => Catalog::rebuild(&self.storage).await,
        }
    }

    /// A backup's manifest, MAC checked.
    pub async fn manifest(&self, id: &str) -> Result<Manifest, RepoError> {
        self.manifest_of(&self.entry(id).await?).await
    }

    /// A backup's catalog entry; when the catalog does not know it, the manifests decide.
    pub async fn entry(&self, id: &str) -> Result<Entry, RepoError> {
        let not_found = || RepoError::NotFound {
            id: id.into(),
            location: self.storage.display.clone(),
        };
        match self.catalog().await?.find(id) {
            Some(e) => Ok(e.clone()),
            None => Catalog::rebuild(&self.storage)
                .await?
                .find(id)
                .cloned()
                .ok_or_else(not_found),
        }
    }

    /// The manifest behind a catalog entry, MAC checked: for callers that already hold the
    /// catalog, so a pass over many backups reads it once, not once a backup.
    pub async fn manifest_of(&self, entry: &Entry) -> Result<Manifest, RepoError> {
        let id = entry.id.as_str();
        let bytes = self
            .storage
            .get(&Path::from(format!("{}/manifest.json", entry.dir)))
            .await?
            .ok_or_else(|| RepoError::NotFound {
                id: id.into(),
                location: self.storage.display.clone(),
            })?;
        let m: Manifest =
            serde_json::from_slice(&bytes).map_err(|_| RepoError::Tampered { id: id.into() })?;
        // The MAC covers the meaning; the exact bytes must also be what cfdr wrote, so an edit
        // that only moves whitespace or adds an unknown field is caught too.
        let rewritten = serde_json::to_vec_pretty(&m).unwrap_or_default();
        if m.id != id || !m.mac_ok(&self.key) || rewritten != bytes.as_ref() {
            return Err(RepoError::Tampered { id: id.into() });
        }
        Ok(m)
    }

    /// Starts a backup; the caller holds the writer lease.
    pub fn begin(
        &self,
        _lease: &Lease,
        kind: Kind,
        target: Target,
        trigger: &str,
        method: &str,
    ) -> BackupWriter<'_> {
        let now = OffsetDateTime::now_utc();
        let manifest = Manifest {
            format: manifest::FORMAT.into(),
            id: manifest::new_id(now),
            kind,
            target,
            trigger: trigger.into(),
            method: method.into(),
            consistency_point: None,
            started: manifest::rfc3339(now),
            finished: String::new(),
            artifacts: Vec::new(),
            stats: serde_json::Value::Null,
            warnings: Vec::new(),
            parent: None,
            blobs: Vec::new(),
            tool_version: format!("cfdr {}", env!("CARGO_PKG_VERSION")),
            key_id: self.key.id(),
            mac: String::new(),
        };
        BackupWriter {
            repo: self,
            manifest,
            shift: time::Duration::ZERO,
        }
    }

    /// Decrypts one artifact into `sink`, checking every chunk and both checksums.
    pub async fn open_artifact<W: std::io::Write + Send + 'static>(
        &self,
        m: &Manifest,
        name: &str,
        sink: W,
    ) -> Result<W, RepoError> {
        let a = m.artifacts.iter().find(|a| a.name == name).ok_or_else(|| {
            RepoError::NoSuchArtifact {
                id: m.id.clone(),
                name: name.into(),
                have: m
                    .artifacts
                    .iter()
                    .map(|a| format!("`{}`", a.name))
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        })?;
        let path = Path::from(format!("{}/{}", m.dir(), a.name));
        let (summary, sink) = self.storage.open_from(&path, &self.key, sink).await?;
        verify::compare(a, &summary).map_err(|p| RepoError::Seal {
            artifact: a.name.clone(),
            source: SealError::Io(std::io::Error::other(p)),
        })?;
        Ok(sink)
    }

    pub async fn verify(&self, m: &Manifest, mode: VerifyMode) -> Result<VerifyReport, RepoError> {
        verify::run(self, m, mode, &crate::progress::Progress::silent()).await
    }

    /// `verify`, reporting through `progress` and stopping (recording nothing) when cancelled.
    pub async fn verify_with(
        &self,
        m: &Manifest,
        mode: VerifyMode,
        progress: &crate::progress::Progress,
    ) -> Result<VerifyReport, RepoError> {
        verify::run(self, m, mode, progress).await
    }

    /// Deletes a backup: manifest first (so it stops being listed), then its artifacts.
    pub async fn forget(
        &self,
        _lease: &Lease,
        entry: &Entry,
        catalog: &mut Catalog,
    ) -> Result<(), RepoError> {
        self.storage
            .delete(&Path::from(format!("{}/manifest.json", entry.dir)))
            .await?;
        for meta in self.storage.list(&Path::from(entry.dir.as_str())).await? {
            self.storage.delete(&meta.location).await?;
        }
        catalog.entries.retain(|e| e.id != entry.id);
        catalog.save(&self.storage).await
    }

    /// Deletes blobs no remaining manifest refers to; returns how many went. A backup whose
    /// blobs cannot be read (its index damaged) stops the collection before anything is
    /// deleted: its blobs may be another backup's too.
    pub async fn collect_garbage(
        &self,
        _lease: &Lease,
        catalog: &Catalog,
    ) -> Result<usize, RepoError> {
        let mut live = std::collections::HashSet::new();
        for e in &catalog.entries {
            if let Ok(m) = self.manifest_of(e).await {
                live.extend(self.blobs_of(&m).await.map_err(|err| match err {
                    // Damage, named with the backup; the store's own failures stay theirs.
                    RepoError::Seal { .. }
                    | RepoError::MissingArtifact { .. }
                    | RepoError::Tampered { .. } => RepoError::BlobsUnreadable {
                        id: m.id.clone(),
                        message: err.to_string(),
                    },
                    other => other,
                })?);
            }
        }
        let mut removed = 0;
        for meta in self.storage.list(&Path::from("blobs")).await? {
            if let Some(name) = meta.location.filename()
                && !BlobId::parse(name).is_some_and(|id| live.contains(&id))
            {
                self.storage.delete(&meta.location).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// One backup being written. Artifacts are sealed as they stream in; the manifest, written
/// last, is the commit point: a backup without one was never complete and is not listed.
pub struct BackupWriter<'r> {
    repo: &'r Repo,
    pub manifest: Manifest,
    /// How far in the past the backup is dated (the demo's history); zero otherwise.
    shift: time::Duration,
}

impl BackupWriter<'_> {
    /// Dates the backup as if it had started at `at` (before any artifact is added). Only
    /// `cfdr demo` does this, to give its repository a history of days in a minute.
    pub fn backdate(&mut self, at: OffsetDateTime) {
        self.shift = OffsetDateTime::now_utc() - at;
        self.manifest.id = manifest::new_id(at);
        self.manifest.started = manifest::rfc3339(at);
    }

    pub async fn add_artifact(
        &mut self,
        name: &str,
        format: &str,
        input: impl Read + Send + 'static,
    ) -> Result<&Artifact, RepoError> {
        let path = Path::from(format!("{}/{name}", self.manifest.dir()));
        let chunk = self.repo.config.chunk_size;
        let s = self
            .repo
            .storage
            .seal_into(&path, input, &self.repo.key, chunk)
            .await?;
        self.manifest.artifacts.push(Artifact {
            name: name.into(),
            format: format.into(),
            plaintext_size: s.plaintext_len,
            plaintext_sha256: s.plaintext_sha256,
            stored_size: s.stored_len,
            stored_sha256: s.stored_sha256,
            chunk_size: chunk,
            chunks: s.chunks,
        });
        Ok(self.manifest.artifacts.last().expect("just pushed"))
    }

    pub async fn commit(mut self) -> Result<Manifest, RepoError> {
        self.manifest.finished = manifest::rfc3339(OffsetDateTime::now_utc() - self.shift);
        self.manifest.seal(&self.repo.key);
        let body = serde_json::to_vec_pretty(&self.manifest)
            .map_err(|e| RepoError::Internal(e.to_string()))?;
        self.repo
            .storage
            .put(
                &Path::from(format!("{}/manifest.json", self.manifest.dir())),
                body,
            )
            .await?;
        let mut catalog = self.repo.catalog().await?;
        catalog.upsert(Entry::from_manifest(&self.manifest));
        catalog.save(&self.repo.storage).await?;
        Ok(self.manifest)
    }
}

impl Repo {
    /// The newest backup of a target, if any.
    pub async fn latest(&self, kind: &Kind, target: &str) -> Result<Option<Manifest>, RepoError> {
        let catalog = self.catalog().await?;
        match catalog
            .entries
            .iter()
            .rev()
            .find(|e| e.kind == kind.as_str() && e.target == target)
        {
            Some(e) => Ok(Some(self.manifest_of(e).await?)),
            None => Ok(None),
        }
    }
}
