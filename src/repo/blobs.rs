//! Content-addressed blobs (R2 object bodies), sealed, shared by every snapshot that has them.
//!
//! A backup receives its blobs as a batch: each body streams in through a [`BlobFeed`] and is
//! sealed as it comes — one of up to [`GATHER`] bytes is gathered in memory and sealed whole —
//! (in a local repository, straight into a partial file under `blobs/partial/`: each byte
//! written once, never a plaintext copy read back), then
//! [`BlobBatch::commit`] makes them durable under their names together — one sync of the data,
//! the renames, one sync of the directories — before the backup's manifest refers to them (a
//! batch that grows past `STAGED_MAX` blobs commits those on the way). A
//! blob is thus never under its name unless its bytes are on disk; a crash leaves only partial
//! files, which `collect_garbage` removes. A repository on S3 keeps each body in a local
//! temporary file until it is whole, then seals and uploads it (as one multipart upload, which
//! appears whole or not at all).

use std::collections::HashMap;
use std::io::{Read, Write};

use super::storage::Path;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::storage::ChannelReader;
use super::{Kind, Lease, Manifest, Repo, RepoError};
use crate::seal::SealError;

/// The artifact of an R2 backup that lists its objects, and so its blobs.
pub const INDEX: &str = "index.ndjson";

/// A blob's name (the SHA-256 of its plaintext) in 32 bytes: a million of them in 32 MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobId(pub [u8; 32]);

impl BlobId {
    /// From 64 hex digits (`None` for anything else: a partial file's name, say).
    pub fn parse(hex_name: &str) -> Option<Self> {
        let mut id = [0u8; 32];
        hex::decode_to_slice(hex_name, &mut id).ok()?;
        Some(Self(id))
    }
}

impl std::fmt::Display for BlobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// Where a local repository keeps blobs until their batch is committed.
const PARTIAL: &str = "blobs/partial";

/// Blobs a batch stages before it commits them (a first backup of a million new objects
/// commits a hundred times, one `syncfs` each, instead of holding a million partial files'
/// names to the end).
const STAGED_MAX: usize = 10_000;

/// Pieces of a body queued for the sealing thread (a piece is what the network handed over).
const QUEUE: usize = 16;

/// A received blob, not yet under its name.
enum Staged {
    /// Sealed, in a partial file of the local repository.
    Sealed(tempfile::TempPath),
    /// Plaintext in a local temporary file, for a repository on S3 (uploaded by `add`).
    Plain(std::fs::File),
    /// Uploaded to a repository on S3, or being uploaded, by this batch: an identical body
    /// arriving meanwhile is not stored twice.
    Uploaded,
}

/// A body received in full: what it hashed to, and where it waits.
pub struct Received {
    pub sha256: String,
    pub size: u64,
    staged: Staged,
    /// Whether the repository had the blob already when the body ended (looked up by the
    /// sealing thread in a local repository; `None`: to be asked).
    present: Option<bool>,
}

/// A piece of a body on its way to the sealing thread, with the permit of the memory budget it
/// was fetched under (released once the piece is sealed, not when it is queued).
struct Piece {
    bytes: Bytes,
    _held: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl AsRef<[u8]> for Piece {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// Bodies up to this size are gathered in memory and handed to a blocking task whole when they
/// end (most R2 objects are small: one hand-over each instead of a thread waiting on every
/// piece); a larger body starts its sealing thread once it passes this and streams through it.
pub const GATHER: usize = 256 << 10;

/// One body streaming in; [`BlobFeed::finish`] once all of it was put.
pub struct BlobFeed {
    sealer: Option<Sealer>,
    gathered: Vec<Piece>,
    size: usize,
    streaming: Option<Streaming>,
}

/// A body's sealing thread and the queue to it.
struct Streaming {
    tx: tokio::sync::mpsc::Sender<std::io::Result<Piece>>,
    task: tokio::task::JoinHandle<Result<Received, RepoError>>,
}

impl BlobFeed {
    /// Hands the next piece to the sealing thread, waiting while its queue is full.
    pub async fn put(&mut self, bytes: Bytes) -> Result<(), RepoError> {
        self.send(Piece { bytes, _held: None }).await
    }

    /// As [`BlobFeed::put`], holding `permit` until the sealing thread has read the piece.
    pub async fn put_held(
        &mut self,
        bytes: Bytes,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> Result<(), RepoError> {
        self.send(Piece {
            bytes,
            _held: Some(permit),
        })
        .await
    }

    async fn send(&mut self, piece: Piece) -> Result<(), RepoError> {
        let stopped = || RepoError::Internal("the blob's sealing stopped".into());
        if self.streaming.is_none() {
            self.size += piece.bytes.len();
            self.gathered.push(piece);
            if self.size <= GATHER {
                return Ok(());
            }
            let (tx, rx) = tokio::sync::mpsc::channel(QUEUE);
            let sealer = self.sealer.take().ok_or_else(stopped)?;
            let task = sealer.spawn(ChannelReader::new(rx));
            let streaming = self.streaming.insert(Streaming { tx, task });
            for piece in self.gathered.drain(..) {
                streaming.tx.send(Ok(piece)).await.map_err(|_| stopped())?;
            }
            return Ok(());
        }
        let streaming = self.streaming.as_ref().ok_or_else(stopped)?;
        streaming.tx.send(Ok(piece)).await.map_err(|_| stopped())
    }

    /// Ends the body; returns what was received (or why sealing it failed).
    pub async fn finish(self) -> Result<Received, RepoError> {
        let task = match (self.streaming, self.sealer) {
            (Some(Streaming { tx, task }), _) => {
                drop(tx);
                task
            }
            (None, Some(sealer)) => sealer.spawn(Gathered {
                pieces: self.gathered.into_iter(),
                current: None,
            }),
            (None, None) => return Err(RepoError::Internal("the blob's sealing stopped".into())),
        };
        task.await.map_err(|e| RepoError::Internal(e.to_string()))?
    }
}

/// A gathered body's pieces, read in order.
struct Gathered {
    pieces: std::vec::IntoIter<Piece>,
    current: Option<(Piece, usize)>,
}

impl Read for Gathered {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some((piece, at)) = &mut self.current {
                let rest = &piece.bytes[*at..];
                if !rest.is_empty() {
                    let n = out.len().min(rest.len());
                    out[..n].copy_from_slice(&rest[..n]);
                    *at += n;
                    return Ok(n);
                }
            }
            match self.pieces.next() {
                Some(piece) => self.current = Some((piece, 0)),
                None => return Ok(0),
            }
        }
    }
}

/// How a batch's bodies are received: sealed into a local repository's partial files, or kept
/// in plaintext in a local temporary file for a repository on S3.
#[derive(Clone)]
enum Sealer {
    Local {
        root: std::path::PathBuf,
        /// Whether the partial files' directory was made (once a batch, not once a body).
        made: std::sync::Arc<std::sync::atomic::AtomicBool>,
        key: crate::seal::MasterKey,
        chunk: u32,
    },
    Plain,
}

impl Sealer {
    /// Receives a body from `reader` on a blocking thread.
    fn spawn(
        self,
        reader: impl Read + Send + 'static,
    ) -> tokio::task::JoinHandle<Result<Received, RepoError>> {
        tokio::task::spawn_blocking(move || self.receive(reader))
    }

    /// Receives a body from `reader` (blocking).
    fn receive(self, mut reader: impl Read) -> Result<Received, RepoError> {
        match self {
            Sealer::Local {
                root,
                made,
                key,
                chunk,
            } => {
                use std::sync::atomic::Ordering;
                let seal_err = |source| RepoError::Seal {
                    artifact: "a blob being received".into(),
                    source,
                };
                let dir = root.join(PARTIAL);
                if !made.load(Ordering::Relaxed) {
                    std::fs::create_dir_all(&dir).map_err(|e| seal_err(SealError::Io(e)))?;
                    made.store(true, Ordering::Relaxed);
                }
                let tmp = tempfile::Builder::new()
                    .prefix("blob-")
                    .suffix(".partial")
                    .tempfile_in(&dir)
                    .map_err(|e| seal_err(SealError::Io(e)))?;
                let s =
                    crate::seal::seal_blob(reader, tmp.as_file(), &key, chunk).map_err(seal_err)?;
                let name = Repo::blob_path(&s.plaintext_sha256);
                let present = Some(root.join(name.as_ref()).is_file());
                Ok(Received {
                    sha256: s.plaintext_sha256,
                    size: s.plaintext_len,
                    staged: Staged::Sealed(tmp.into_temp_path()),
                    present,
                })
            }
            Sealer::Plain => {
                let io = |e: std::io::Error| RepoError::Seal {
                    artifact: "a blob being received (local temporary file)".into(),
                    source: SealError::Io(e),
                };
                let mut file = tempfile::tempfile().map_err(io)?;
                let (mut hash, mut size) = (Sha256::new(), 0u64);
                let mut buf = vec![0u8; 256 << 10];
                loop {
                    let n = match reader.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(io(e)),
                    };
                    hash.update(&buf[..n]);
                    size += n as u64;
                    file.write_all(&buf[..n]).map_err(io)?;
                }
                Ok(Received {
                    sha256: hex::encode(hash.finalize()),
                    size,
                    staged: Staged::Plain(file),
                    present: None,
                })
            }
        }
    }
}

/// The blobs of one backup, staged until [`BlobBatch::commit`].
pub struct BlobBatch<'r> {
    repo: &'r Repo,
    sealer: Sealer,
    staged: std::sync::Mutex<HashMap<String, Staged>>,
}

impl Repo {
    /// Starts receiving a backup's blobs; the caller holds the writer lease.
    pub fn blob_batch(&self, _lease: &Lease) -> BlobBatch<'_> {
        let sealer = match self.storage.local_root() {
            Some(root) => Sealer::Local {
                root: root.to_path_buf(),
                made: Default::default(),
                key: self.key.clone(),
                chunk: self.config.chunk_size,
            },
            None => Sealer::Plain,
        };
        BlobBatch {
            repo: self,
            sealer,
            staged: std::sync::Mutex::new(HashMap::new()),
        }
    }

    pub fn blob_path(sha256: &str) -> Path {
        Path::from(format!("blobs/{}/{sha256}", &sha256[..2.min(sha256.len())]))
    }

    /// Opens blob `sha256` into `sink`: every chunk checked, and the plaintext must hash to
    /// the blob's name.
    pub async fn open_blob<W: std::io::Write + Send + 'static>(
        &self,
        sha256: &str,
        sink: W,
    ) -> Result<W, RepoError> {
        let (summary, sink) = self
            .storage
            .open_from(&Self::blob_path(sha256), &self.key, sink)
            .await?;
        if summary.plaintext_sha256 != sha256 {
            return Err(RepoError::Seal {
                artifact: format!("blob {sha256}"),
                source: SealError::Io(std::io::Error::other(format!(
                    "its plaintext has SHA-256 {}",
                    summary.plaintext_sha256
                ))),
            });
        }
        Ok(sink)
    }

    /// The blobs backup `m` refers to, sorted, each once: those its manifest lists (manifests
    /// written before 2026-12-07 list them) and, for an R2 backup, the `sha256` of each line of
    /// its index, read as it is decrypted.
    pub async fn blobs_of(&self, m: &Manifest) -> Result<Vec<BlobId>, RepoError> {
        let mut out = Vec::new();
        for sha in &m.blobs {
            out.push(BlobId::parse(sha).ok_or_else(|| RepoError::Tampered { id: m.id.clone() })?);
        }
        if m.kind == Kind::R2 && m.artifacts.iter().any(|a| a.name == INDEX) {
            #[derive(serde::Deserialize)]
            struct Line<'a> {
                #[serde(borrow)]
                sha256: &'a str,
            }
            let mut lines = self.artifact_lines(m, INDEX);
            while let Some(line) = lines.next().await? {
                if line.is_empty() {
                    continue;
                }
                let sha = serde_json::from_slice::<Line>(line)
                    .ok()
                    .and_then(|l| BlobId::parse(l.sha256))
                    .ok_or_else(|| RepoError::Seal {
                        artifact: INDEX.into(),
                        source: SealError::Io(std::io::Error::other(format!(
                            "a line of the index does not name a blob: {}",
                            String::from_utf8_lossy(&line[..line.len().min(120)])
                        ))),
                    })?;
                out.push(sha);
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    pub async fn has_blob(&self, sha256: &str) -> Result<bool, RepoError> {
        Ok(self.storage.head(&Self::blob_path(sha256)).await?.is_some())
    }

    /// Seals `input` as the blob `sha256` (the caller hashed the plaintext); the caller holds the
    /// writer lease.
    pub async fn put_blob(
        &self,
        _lease: &Lease,
        sha256: &str,
        input: impl Read + Send + 'static,
    ) -> Result<crate::seal::Summary, RepoError> {
        let s = self
            .storage
            .seal_into(
                &Self::blob_path(sha256),
                input,
                &self.key,
                self.config.chunk_size,
            )
            .await?;
        if s.plaintext_sha256 != sha256 {
            return Err(RepoError::Internal(format!(
                "blob `{sha256}` changed while it was stored (now {})",
                s.plaintext_sha256
            )));
        }
        Ok(s)
    }
}

impl BlobBatch<'_> {
    /// Starts receiving one body.
    pub fn feed(&self) -> BlobFeed {
        BlobFeed {
            sealer: Some(self.sealer.clone()),
            gathered: Vec::new(),
            size: 0,
            streaming: None,
        }
    }

    /// Keeps `r` for the commit unless the repository or this batch has its blob already
    /// (then its partial file goes); says whether it was new. A repository on S3 gets the blob
    /// sealed and uploaded now (an object store makes an upload visible whole or not at all),
    /// so no body waits in a local temporary file for the end of the backup.
    pub async fn add(&self, lease: &Lease, r: Received) -> Result<bool, RepoError> {
        if self.lock().contains_key(&r.sha256) {
            return Ok(false);
        }
        let present = match r.present {
            Some(present) => present,
            None => self.repo.has_blob(&r.sha256).await?,
        };
        if present {
            return Ok(false);
        }
        match r.staged {
            Staged::Plain(mut file) => {
                use std::io::Seek as _;
                // Claimed before the upload, so an identical body arriving meanwhile is not
                // stored twice. The claims of a long backup are let go every `STAGED_MAX` (a
                // body seen again after that is found in the repository).
                let Some(_claims) = self.claim(r.sha256.clone(), Staged::Uploaded) else {
                    return Ok(false);
                };
                file.seek(std::io::SeekFrom::Start(0))
                    .map_err(|e| RepoError::Internal(e.to_string()))?;
                self.repo.put_blob(lease, &r.sha256, file).await?;
                Ok(true)
            }
            sealed => {
                let Some(full) = self.claim(r.sha256, sealed) else {
                    return Ok(false);
                };
                // A long backup commits as it goes: the batch's memory stays flat however many
                // objects are new, and a blob is still under its name only once it is durable.
                if let Some(staged) = full {
                    self.persist(staged).await?;
                }
                Ok(true)
            }
        }
    }

    /// Stages `staged` as blob `sha256`: `None` when the batch had it already (the new one
    /// goes), else the batch's staged blobs once they reach `STAGED_MAX` (taken out of it).
    fn claim(&self, sha256: String, staged: Staged) -> Option<Option<HashMap<String, Staged>>> {
        let mut all = self.lock();
        if all.insert(sha256, staged).is_some() {
            return None;
        }
        Some((all.len() >= STAGED_MAX).then(|| std::mem::take(&mut *all)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Staged>> {
        self.staged.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts every staged blob under its name, durably. Call it before the manifest that refers
    /// to them is written.
    pub async fn commit(self, _lease: &Lease) -> Result<(), RepoError> {
        let staged = std::mem::take(&mut *self.lock());
        self.persist(staged).await
    }

    /// Makes `staged` durable, then renames each under its name, then makes the names durable.
    async fn persist(&self, staged: HashMap<String, Staged>) -> Result<(), RepoError> {
        let Some(root) = self.repo.storage.local_root().map(|r| r.to_path_buf()) else {
            return Ok(()); // on S3, `add` stored each blob
        };
        if staged.is_empty() {
            return Ok(());
        }
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let sealed: Vec<(String, tempfile::TempPath)> = staged
                .into_iter()
                .filter_map(|(sha, s)| match s {
                    Staged::Sealed(p) => Some((sha, p)),
                    Staged::Plain(_) | Staged::Uploaded => None,
                })
                .collect();
            durable(&root, sealed.iter().map(|(_, p)| p.to_path_buf()))?;
            let mut dirs = std::collections::HashSet::new();
            for (sha, partial) in sealed {
                let dest = root.join(Repo::blob_path(&sha).as_ref());
                let dir = dest.parent().expect("a blob path has a directory");
                if !dirs.contains(dir) {
                    std::fs::create_dir_all(dir)?;
                    dirs.insert(dir.to_path_buf());
                }
                partial.persist(&dest).map_err(|e| e.error)?;
            }
            durable(&root, dirs)
        })
        .await
        .map_err(|e| RepoError::Internal(e.to_string()))?
        .map_err(|e| RepoError::Store {
            location: self.repo.storage.display.clone(),
            path: "blobs".into(),
            message: e.to_string(),
            remote: false,
        })?;
        Ok(())
    }
}

/// Makes `paths` (files or directories under `root`) durable: on Linux one `syncfs` of the
/// repository's file system, whatever their number; elsewhere an fsync each.
fn durable(
    root: &std::path::Path,
    paths: impl IntoIterator<Item = std::path::PathBuf>,
) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd as _;
        let _ = paths;
        let dir = std::fs::File::open(root)?;
        // SAFETY: syncfs takes a file descriptor, open for the duration of the call.
        if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = root;
        for p in paths {
            std::fs::File::open(p)?.sync_all()?;
        }
        Ok(())
    }
}
