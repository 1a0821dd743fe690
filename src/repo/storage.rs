//! Where a repository's objects live: a local directory or `s3://bucket/prefix` on any
//! S3-compatible store (R2 included), behind object_store. Sealing and opening stream through
//! bounded channels, so memory stays constant whatever an artifact's size.

use std::io::{Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt as _;
use object_store::path::Path;
use object_store::{
    ObjectMeta, ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, PutPayload, WriteMultipart,
};

use super::RepoError;
use crate::seal::{self, MasterKey, SealError, Summary};

/// S3 credentials and endpoint for `s3://` repositories.
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    pub endpoint: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<crate::config::Secret>,
}

#[derive(Clone)]
pub struct Storage {
    inner: Arc<dyn ObjectStore>,
    /// For a local repository, its directory: sealed artifacts are then written and read with
    /// plain file I/O on a blocking thread (object_store's streams cost more than the crypto).
    local: Option<std::path::PathBuf>,
    /// The location as the operator wrote it (no credentials).
    pub display: String,
}

/// Parts of sealed data in flight between the blocking sealer and the async uploader.
const IN_FLIGHT: usize = 4;

impl Storage {
    pub fn open(location: &str, s3: &S3Settings) -> Result<Self, RepoError> {
        let mut local = None;
        let inner: Arc<dyn ObjectStore> = if let Some(rest) = location.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(RepoError::Usage(format!(
                    "repository `{location}` names no bucket; write s3://bucket/prefix"
                )));
            }
            let endpoint = s3.endpoint.clone().ok_or_else(|| {
                RepoError::Usage(format!("repository `{location}` is on S3 but R2_ENDPOINT is not set; set it to the S3 endpoint"))
            })?;
            let key_id = s3
                .access_key_id
                .clone()
                .ok_or_else(|| RepoError::Usage("R2_ACCESS_KEY_ID is not set".into()))?;
            let secret = s3
                .secret_access_key
                .clone()
                .ok_or_else(|| RepoError::Usage("R2_SECRET_ACCESS_KEY is not set".into()))?;
            crate::tls::install();
            let store = object_store::aws::AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_endpoint(endpoint.trim_end_matches('/'))
                .with_region("auto")
                .with_access_key_id(key_id)
                .with_secret_access_key(secret.expose())
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false)
                .build()
                .map_err(|e| {
                    RepoError::Usage(format!("cannot use repository `{location}`: {e}"))
                })?;
            if prefix.trim_matches('/').is_empty() {
                Arc::new(store)
            } else {
                Arc::new(object_store::prefix::PrefixStore::new(
                    store,
                    prefix.trim_matches('/'),
                ))
            }
        } else {
            std::fs::create_dir_all(location).map_err(|e| {
                RepoError::Usage(format!(
                    "cannot create repository directory `{location}`: {e}"
                ))
            })?;
            local = std::fs::canonicalize(location).ok();
            Arc::new(
                object_store::local::LocalFileSystem::new_with_prefix(location).map_err(|e| {
                    RepoError::Usage(format!(
                        "cannot open repository directory `{location}`: {e}"
                    ))
                })?,
            )
        };
        Ok(Self {
            inner,
            local,
            display: location.to_string(),
        })
    }

    fn err(&self, path: &Path, e: object_store::Error) -> RepoError {
        RepoError::Store {
            location: self.display.clone(),
            path: path.to_string(),
            message: e.to_string(),
            remote: self.local.is_none(),
        }
    }

    /// A local repository's directory (`None` on S3).
    pub fn local_root(&self) -> Option<&std::path::Path> {
        self.local.as_deref()
    }

    pub async fn get(&self, path: &Path) -> Result<Option<Bytes>, RepoError> {
        match self.inner.get(path).await {
            Ok(r) => r.bytes().await.map(Some).map_err(|e| self.err(path, e)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(path, e)),
        }
    }

    pub async fn put(&self, path: &Path, bytes: Vec<u8>) -> Result<(), RepoError> {
        self.inner
            .put(path, PutPayload::from(bytes))
            .await
            .map(drop)
            .map_err(|e| self.err(path, e))
    }

    /// Creates `path` only if it does not exist yet; `false` when it already did.
    pub async fn create(&self, path: &Path, bytes: Vec<u8>) -> Result<bool, RepoError> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .inner
            .put_opts(path, PutPayload::from(bytes), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(false),
            Err(e) => Err(self.err(path, e)),
        }
    }

    pub async fn delete(&self, path: &Path) -> Result<(), RepoError> {
        match self.inner.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(path, e)),
        }
    }

    pub async fn head(&self, path: &Path) -> Result<Option<ObjectMeta>, RepoError> {
        match self.inner.head(path).await {
            Ok(m) => Ok(Some(m)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(path, e)),
        }
    }

    pub async fn list(&self, prefix: &Path) -> Result<Vec<ObjectMeta>, RepoError> {
        let mut out = Vec::new();
        let mut stream = self.inner.list(Some(prefix));
        while let Some(item) = stream.next().await {
            match item {
                Ok(m) => out.push(m),
                Err(object_store::Error::NotFound { .. }) => break,
                Err(e) => return Err(self.err(prefix, e)),
            }
        }
        Ok(out)
    }

    /// Seals what `input` yields and stores it at `path`.
    pub async fn seal_into(
        &self,
        path: &Path,
        input: impl Read + Send + 'static,
        key: &MasterKey,
        chunk: u32,
    ) -> Result<Summary, RepoError> {
        if let Some(root) = &self.local {
            let file = root.join(path.as_ref());
            let key = key.clone();
            let artifact = path.to_string();
            return tokio::task::spawn_blocking(move || seal_file(&file, input, &key, chunk))
                .await
                .map_err(|e| RepoError::Internal(e.to_string()))?
                .map_err(|source| RepoError::Seal { artifact, source });
        }
        let upload = self
            .inner
            .put_multipart(path)
            .await
            .map_err(|e| self.err(path, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, 8 << 20);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(IN_FLIGHT);
        let key = key.clone();
        let sealer = tokio::task::spawn_blocking(move || {
            seal::seal(input, ChannelWriter::new(tx), &key, chunk)
        });
        while let Some(bytes) = rx.recv().await {
            writer
                .wait_for_capacity(2)
                .await
                .map_err(|e| self.err(path, e))?;
            writer.write(&bytes);
        }
        let summary = sealer
            .await
            .map_err(|e| RepoError::Internal(e.to_string()))?;
        match summary {
            Ok(s) => {
                writer.finish().await.map_err(|e| self.err(path, e))?;
                Ok(s)
            }
            Err(e) => {
                let _ = writer.abort().await;
                Err(RepoError::Seal {
                    artifact: path.to_string(),
                    source: e,
                })
            }
        }
    }

    /// Opens the sealed object at `path`, checking every chunk, writing plaintext into `sink`.
    pub async fn open_from<W: Write + Send + 'static>(
        &self,
        path: &Path,
        key: &MasterKey,
        sink: W,
    ) -> Result<(Summary, W), RepoError> {
        if let Some(root) = &self.local {
            let file = root.join(path.as_ref());
            let key = key.clone();
            let artifact = path.to_string();
            return tokio::task::spawn_blocking(move || {
                let f = match std::fs::File::open(&file) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(RepoError::MissingArtifact { artifact });
                    }
                    Err(e) => {
                        return Err(RepoError::Seal {
                            artifact,
                            source: SealError::Io(e),
                        });
                    }
                };
                let mut sink = sink;
                seal::open(f, &mut sink, &key)
                    .map(|s| (s, sink))
                    .map_err(|source| RepoError::Seal { artifact, source })
            })
            .await
            .map_err(|e| RepoError::Internal(e.to_string()))?;
        }
        let result = self.inner.get(path).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => RepoError::MissingArtifact {
                artifact: path.to_string(),
            },
            e => self.err(path, e),
        })?;
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(IN_FLIGHT);
        let key = key.clone();
        let opener = tokio::task::spawn_blocking(move || {
            let mut sink = sink;
            let reader = ChannelReader::new(rx);
            seal::open(reader, &mut sink, &key).map(|s| (s, sink))
        });
        let mut stream = result.into_stream();
        while let Some(chunk) = stream.next().await {
            let item = chunk.map_err(std::io::Error::other);
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                break;
            }
        }
        drop(tx);
        opener
            .await
            .map_err(|e| RepoError::Internal(e.to_string()))?
            .map_err(|e| RepoError::Seal {
                artifact: path.to_string(),
                source: e,
            })
    }
}

/// Seals into a temporary file beside `file`, synced, then renamed into place: a crash never
/// leaves a half-written artifact under its final name.
fn seal_file(
    file: &std::path::Path,
    input: impl Read,
    key: &MasterKey,
    chunk: u32,
) -> Result<Summary, SealError> {
    let dir = file
        .parent()
        .ok_or_else(|| SealError::Io(std::io::Error::other("artifact path has no directory")))?;
    std::fs::create_dir_all(dir)?;
    let tmp = tempfile::Builder::new()
        .prefix(".cfdr-partial-")
        .tempfile_in(dir)?;
    let summary = seal::seal(input, tmp.as_file(), key, chunk)?;
    tmp.as_file().sync_all()?;
    tmp.persist(file).map_err(|e| SealError::Io(e.error))?;
    Ok(summary)
}

/// Writes, from a blocking thread, into a bounded channel an async task reads: pieces of about
/// 1 MiB, sent as they fill (and the rest on `flush`).
pub(crate) struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    pub(crate) fn new(tx: tokio::sync::mpsc::Sender<Vec<u8>>) -> Self {
        Self {
            tx,
            buf: Vec::new(),
        }
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= 1 << 20 {
            self.flush()?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let part = std::mem::take(&mut self.buf);
            self.tx
                .blocking_send(part)
                .map_err(|_| std::io::Error::other("the upload stopped"))?;
        }
        Ok(())
    }
}

/// Reads, on a blocking thread, what an async task sends through a bounded channel. Each piece
/// is dropped once read, with whatever it holds (a memory budget's permit).
pub(crate) struct ChannelReader<T = Bytes> {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<T>>,
    current: Option<T>,
    at: usize,
}

impl<T: AsRef<[u8]>> ChannelReader<T> {
    pub(crate) fn new(rx: tokio::sync::mpsc::Receiver<std::io::Result<T>>) -> Self {
        Self {
            rx,
            current: None,
            at: 0,
        }
    }
}

impl<T: AsRef<[u8]>> Read for ChannelReader<T> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let piece = loop {
            match &self.current {
                Some(c) if self.at < c.as_ref().len() => break c.as_ref(),
                _ => {}
            }
            self.current = None;
            match self.rx.blocking_recv() {
                Some(Ok(b)) => (self.current, self.at) = (Some(b), 0),
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        };
        let n = out.len().min(piece.len() - self.at);
        out[..n].copy_from_slice(&piece[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
