//! Where a repository's objects live: a local directory or `s3://bucket/prefix` on any
//! S3-compatible store (R2 included), through cfdr's own S3 client (SigV4, retries, resumed
//! reads). Sealing and opening stream through bounded channels, so memory stays constant
//! whatever an artifact's size.

use std::io::{Read, Write};

use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;

mod channel;
mod local;
mod path;

pub use path::Path;

use channel::Feed;
pub(crate) use channel::{ChannelReader, ChannelWriter};
#[cfg(test)]
use local::STAGING;
use local::{absent_as_none, seal_file, staged, walk};

use super::RepoError;
use crate::cloudflare::r2::PutAttrs;
use crate::cloudflare::{R2Credentials, RetryPolicy, S3Client, S3Error};
use crate::seal::{self, MasterKey, SealError, Summary};

/// S3 credentials and endpoint for `s3://` repositories.
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    pub endpoint: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<crate::config::Secret>,
}

/// What a listing or a HEAD says about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub location: Path,
    pub size: u64,
}

#[derive(Clone)]
enum Backend {
    /// A directory: plain file I/O on a blocking thread.
    Local(std::path::PathBuf),
    /// A bucket, and the prefix (no slashes at its ends, maybe empty) the repository sits under.
    S3 {
        client: S3Client,
        bucket: String,
        prefix: String,
    },
}

#[derive(Clone)]
pub struct Storage {
    backend: Backend,
    /// The location as the operator wrote it (no credentials).
    pub display: String,
}

/// Parts of sealed data in flight between the blocking sealer and the async uploader.
const IN_FLIGHT: usize = 4;

/// A sealed artifact goes to S3 in parts of this size (S3 takes none under 5 MiB but the last);
/// one that fits in a single part is one PUT.
const PART: usize = 8 << 20;

/// Parts of one artifact uploaded at once.
const PARTS_AT_ONCE: usize = 2;

impl Storage {
    pub fn open(location: &str, s3: &S3Settings) -> Result<Self, RepoError> {
        let backend = if let Some(rest) = location.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(RepoError::Usage(format!(
                    "repository `{location}` names no bucket; write s3://bucket/prefix"
                )));
            }
            let endpoint = s3.endpoint.clone().ok_or_else(|| {
                RepoError::Usage(format!("repository `{location}` is on S3 but R2_ENDPOINT is not set; set it to the S3 endpoint"))
            })?;
            let access_key_id = s3
                .access_key_id
                .clone()
                .ok_or_else(|| RepoError::Usage("R2_ACCESS_KEY_ID is not set".into()))?;
            let secret_access_key = s3
                .secret_access_key
                .clone()
                .ok_or_else(|| RepoError::Usage("R2_SECRET_ACCESS_KEY is not set".into()))?;
            let creds = R2Credentials {
                endpoint,
                access_key_id,
                secret_access_key,
            };
            let client = S3Client::new(creds, RetryPolicy::default()).map_err(|e| {
                RepoError::Usage(format!("cannot use repository `{location}`: {e}"))
            })?;
            Backend::S3 {
                client,
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            }
        } else {
            std::fs::create_dir_all(location).map_err(|e| {
                RepoError::Usage(format!(
                    "cannot create repository directory `{location}`: {e}"
                ))
            })?;
            let root = std::fs::canonicalize(location).map_err(|e| {
                RepoError::Usage(format!(
                    "cannot open repository directory `{location}`: {e}"
                ))
            })?;
            Backend::Local(root)
        };
        Ok(Self {
            backend,
            display: location.to_string(),
        })
    }

    fn err(&self, path: &Path, message: impl std::fmt::Display) -> RepoError {
        RepoError::Store {
            location: self.display.clone(),
            path: path.to_string(),
            message: message.to_string(),
            remote: matches!(self.backend, Backend::S3 { .. }),
        }
    }

    /// A local repository's directory (`None` on S3).
    pub fn local_root(&self) -> Option<&std::path::Path> {
        match &self.backend {
            Backend::Local(root) => Some(root),
            Backend::S3 { .. } => None,
        }
    }

    /// The object's key in its bucket.
    fn key(prefix: &str, path: &Path) -> String {
        if prefix.is_empty() {
            path.to_string()
        } else {
            format!("{prefix}/{path}")
        }
    }

    /// Runs file work on a blocking thread; its error names `path`.
    async fn blocking<T: Send + 'static>(
        &self,
        path: &Path,
        f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    ) -> Result<T, RepoError> {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| RepoError::Internal(e.to_string()))?
            .map_err(|e| self.err(path, e))
    }

    pub async fn get(&self, path: &Path) -> Result<Option<Bytes>, RepoError> {
        match &self.backend {
            Backend::Local(root) => {
                let file = root.join(path.as_ref());
                self.blocking(path, move || {
                    absent_as_none(std::fs::read(file)).map(|b| b.map(Bytes::from))
                })
                .await
            }
            Backend::S3 {
                client,
                bucket,
                prefix,
            } => client
                .get_whole(bucket, &Self::key(prefix, path))
                .await
                .map_err(|e| self.err(path, e)),
        }
    }

    pub async fn put(&self, path: &Path, bytes: Vec<u8>) -> Result<(), RepoError> {
        match &self.backend {
            Backend::Local(root) => {
                let file = root.join(path.as_ref());
                self.blocking(path, move || {
                    let tmp = staged(&file, &bytes)?;
                    tmp.persist(&file).map(drop).map_err(|e| e.error)
                })
                .await
            }
            Backend::S3 {
                client,
                bucket,
                prefix,
            } => client
                .put(
                    bucket,
                    &Self::key(prefix, path),
                    bytes.into(),
                    &PutAttrs::default(),
                )
                .await
                .map(drop)
                .map_err(|e| self.err(path, e)),
        }
    }

    /// Creates `path` only if it does not exist yet; `false` when it already did.
    pub async fn create(&self, path: &Path, bytes: Vec<u8>) -> Result<bool, RepoError> {
        match &self.backend {
            Backend::Local(root) => {
                let file = root.join(path.as_ref());
                self.blocking(path, move || {
                    let tmp = staged(&file, &bytes)?;
                    // A hard link takes the name only if it is free; the staged name goes
                    // with `tmp`.
                    match std::fs::hard_link(tmp.path(), &file) {
                        Ok(()) => Ok(true),
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                        Err(e) => Err(e),
                    }
                })
                .await
            }
            Backend::S3 {
                client,
                bucket,
                prefix,
            } => client
                .put_if_absent(bucket, &Self::key(prefix, path), bytes.into())
                .await
                .map_err(|e| self.err(path, e)),
        }
    }

    pub async fn delete(&self, path: &Path) -> Result<(), RepoError> {
        match &self.backend {
            Backend::Local(root) => {
                let file = root.join(path.as_ref());
                self.blocking(path, move || {
                    absent_as_none(std::fs::remove_file(file)).map(drop)
                })
                .await
            }
            Backend::S3 {
                client,
                bucket,
                prefix,
            } => client
                .delete(bucket, &Self::key(prefix, path))
                .await
                .map_err(|e| self.err(path, e)),
        }
    }

    pub async fn head(&self, path: &Path) -> Result<Option<ObjectMeta>, RepoError> {
        let size = match &self.backend {
            Backend::Local(root) => {
                let file = root.join(path.as_ref());
                self.blocking(path, move || {
                    absent_as_none(std::fs::metadata(file))
                        .map(|m| m.filter(|m| m.is_file()).map(|m| m.len()))
                })
                .await?
            }
            Backend::S3 {
                client,
                bucket,
                prefix,
            } => client
                .head(bucket, &Self::key(prefix, path))
                .await
                .map_err(|e| self.err(path, e))?
                .map(|h| h.size),
        };
        Ok(size.map(|size| ObjectMeta {
            location: path.clone(),
            size,
        }))
    }

    /// Every object under `prefix` (as a folder: `runs` lists `runs/…`, not `runsX`), in the
    /// order of their paths.
    pub async fn list(&self, prefix: &Path) -> Result<Vec<ObjectMeta>, RepoError> {
        let mut out = match &self.backend {
            Backend::Local(root) => {
                let (root, under) = (root.clone(), prefix.clone());
                self.blocking(prefix, move || {
                    let mut out = Vec::new();
                    walk(&root, &root.join(under.as_ref()), &mut out)?;
                    Ok(out)
                })
                .await?
            }
            Backend::S3 {
                client,
                bucket,
                prefix: root,
            } => {
                let folder = format!("{}/", Self::key(root, prefix));
                let folder = folder.trim_start_matches('/');
                let strip = if root.is_empty() {
                    String::new()
                } else {
                    format!("{root}/")
                };
                client
                    .list(bucket, folder)
                    .await
                    .map_err(|e| self.err(prefix, e))?
                    .into_iter()
                    .filter_map(|o| {
                        Some(ObjectMeta {
                            location: Path::from(o.key.strip_prefix(&strip)?),
                            size: o.size,
                        })
                    })
                    .collect()
            }
        };
        out.sort_by(|a, b| a.location.cmp(&b.location));
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
        let (client, bucket, object) = match &self.backend {
            Backend::Local(root) => {
                let file = root.join(path.as_ref());
                let key = key.clone();
                let artifact = path.to_string();
                return tokio::task::spawn_blocking(move || seal_file(&file, input, &key, chunk))
                    .await
                    .map_err(|e| RepoError::Internal(e.to_string()))?
                    .map_err(|source| RepoError::Seal { artifact, source });
            }
            Backend::S3 {
                client,
                bucket,
                prefix,
            } => (client, bucket.as_str(), Self::key(prefix, path)),
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(IN_FLIGHT);
        let key = key.clone();
        let sealer = tokio::task::spawn_blocking(move || {
            seal::seal(input, ChannelWriter::new(tx), &key, chunk)
        });
        // The upload: nothing is sent until a whole part has come, so a small artifact is one
        // PUT; a larger one is a multipart upload, PARTS_AT_ONCE parts in flight.
        let mut upload: Option<String> = None;
        let mut parts: Vec<(u32, String)> = Vec::new();
        let mut buf: Vec<u8> = Vec::new();
        let object = object.as_str();
        let sent: Result<(), S3Error> = async {
            let mut in_flight = FuturesUnordered::new();
            while let Some(piece) = rx.recv().await {
                buf.extend_from_slice(&piece);
                while buf.len() > PART {
                    let rest = buf.split_off(PART);
                    let part = std::mem::replace(&mut buf, rest);
                    let id = match &upload {
                        Some(id) => id.clone(),
                        None => {
                            let id = client
                                .create_multipart(bucket, object, &PutAttrs::default())
                                .await?;
                            upload = Some(id.clone());
                            id
                        }
                    };
                    if in_flight.len() >= PARTS_AT_ONCE
                        && let Some(done) = in_flight.next().await
                    {
                        parts.push(done?);
                    }
                    let number = (parts.len() + in_flight.len() + 1) as u32;
                    in_flight.push(async move {
                        client
                            .upload_part(bucket, object, &id, number, part.into())
                            .await
                            .map(|etag| (number, etag))
                    });
                }
            }
            while let Some(done) = in_flight.next().await {
                parts.push(done?);
            }
            Ok(())
        }
        .await;
        // A failed upload drops the queue, which stops the sealer.
        drop(rx);
        let summary = sealer
            .await
            .map_err(|e| RepoError::Internal(e.to_string()))?;
        let abort = || async {
            if let Some(id) = &upload {
                let _ = client.abort_multipart(bucket, object, id).await;
            }
        };
        let summary = match (summary, sent) {
            (Ok(s), Ok(())) => s,
            (_, Err(e)) => {
                abort().await;
                return Err(self.err(path, e));
            }
            (Err(e), Ok(())) => {
                abort().await;
                return Err(RepoError::Seal {
                    artifact: path.to_string(),
                    source: e,
                });
            }
        };
        let stored = match &upload {
            None => client
                .put(bucket, object, buf.into(), &PutAttrs::default())
                .await
                .map(drop),
            Some(id) => {
                let number = parts.len() as u32 + 1;
                let last = client
                    .upload_part(bucket, object, id, number, buf.into())
                    .await;
                match last {
                    Ok(etag) => {
                        parts.push((number, etag));
                        parts.sort_by_key(|p| p.0);
                        client
                            .complete_multipart(bucket, object, id, &parts)
                            .await
                            .map(drop)
                    }
                    Err(e) => Err(e),
                }
            }
        };
        if let Err(e) = stored {
            abort().await;
            return Err(self.err(path, e));
        }
        Ok(summary)
    }

    /// Opens the sealed object at `path`, checking every chunk, writing plaintext into `sink`.
    pub async fn open_from<W: Write + Send + 'static>(
        &self,
        path: &Path,
        key: &MasterKey,
        sink: W,
    ) -> Result<(Summary, W), RepoError> {
        let (client, bucket, object) = match &self.backend {
            Backend::Local(root) => {
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
            Backend::S3 {
                client,
                bucket,
                prefix,
            } => (client, bucket, Self::key(prefix, path)),
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(IN_FLIGHT);
        let key = key.clone();
        let opener = tokio::task::spawn_blocking(move || {
            let mut sink = sink;
            let reader = ChannelReader::new(rx);
            seal::open(reader, &mut sink, &key).map(|s| (s, sink))
        });
        let mut feed = Feed(tx);
        let got = client.get(bucket, &object, None, None, &mut feed).await;
        // The end of the queue is the end of the artifact for the opener.
        drop(feed);
        let opened = opener
            .await
            .map_err(|e| RepoError::Internal(e.to_string()))?
            .map_err(|e| RepoError::Seal {
                artifact: path.to_string(),
                source: e,
            });
        match got {
            Ok(_) => opened,
            Err(e) if e.status() == Some(404) => Err(RepoError::MissingArtifact {
                artifact: path.to_string(),
            }),
            // The opener stopped reading: its error says why.
            Err(S3Error::Sink(_)) => opened.and_then(|_| {
                Err(RepoError::Internal(format!(
                    "{path}: the opener stopped before the end"
                )))
            }),
            Err(e) => Err(self.err(path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_drops_empty_segments_and_names_its_file() {
        let p = Path::from("/runs//abc/run.json/");
        assert_eq!(p.as_ref(), "runs/abc/run.json");
        assert_eq!(p.filename(), Some("run.json"));
        assert_eq!(Path::from("").filename(), None);
        assert_eq!(Path::from(String::from("blobs/ab")).to_string(), "blobs/ab");
    }

    #[tokio::test]
    async fn a_local_store_creates_once_lists_in_order_and_hides_staging() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(dir.path().to_str().unwrap(), &S3Settings::default()).unwrap();
        assert!(
            s.create(&Path::from("a/lock"), b"one".to_vec())
                .await
                .unwrap()
        );
        assert!(
            !s.create(&Path::from("a/lock"), b"two".to_vec())
                .await
                .unwrap()
        );
        assert_eq!(s.get(&Path::from("a/lock")).await.unwrap().unwrap(), "one");
        s.put(&Path::from("a/b/c"), b"xyz".to_vec()).await.unwrap();
        s.put(&Path::from("ab"), b"not under a/".to_vec())
            .await
            .unwrap();
        std::fs::write(dir.path().join("a").join(format!("{STAGING}left")), b"").unwrap();
        let listed: Vec<(String, u64)> = s
            .list(&Path::from("a"))
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.location.to_string(), m.size))
            .collect();
        assert_eq!(listed, [("a/b/c".into(), 3), ("a/lock".into(), 3)]);
        assert_eq!(s.head(&Path::from("a/b/c")).await.unwrap().unwrap().size, 3);
        s.delete(&Path::from("a/b/c")).await.unwrap();
        s.delete(&Path::from("a/b/c")).await.unwrap();
        assert!(s.get(&Path::from("a/b/c")).await.unwrap().is_none());
        assert!(s.head(&Path::from("a/b")).await.unwrap().is_none());
        assert!(s.list(&Path::from("nothing")).await.unwrap().is_empty());
    }
}
