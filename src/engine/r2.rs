//! R2 backup through the S3 API: every object listed, its body stored once as a sealed,
//! content-addressed blob (`blobs/<sha256>`), and an NDJSON index (key, size, etag, sha256,
//! content type, custom metadata, last modified). Incremental by ETag: an object whose key, size
//! and ETag match the previous snapshot's index is not downloaded again. Bounded concurrency;
//! large objects come as ranged GETs pinned to one ETag.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::Arc;

use futures_util::{StreamExt as _, TryStreamExt as _};
use object_store::{Attribute, GetOptions, GetRange, ObjectStore, ObjectStoreExt as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::progress::{Cancelled, Progress};
use crate::repo::storage::S3Settings;
use crate::repo::{Lease, Repo, RepoError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectEntry {
    pub key: String,
    pub size: u64,
    pub etag: Option<String>,
    pub sha256: String,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    pub last_modified: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct R2Stats {
    pub objects: u64,
    pub bytes: u64,
    pub downloaded: u64,
    pub reused: u64,
    pub new_blobs: u64,
    /// Ranged GETs made for large objects (0 when none was large).
    pub ranged_gets: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum R2Error {
    #[error("R2 (S3) `{bucket}`: {message}")]
    S3 { bucket: String, message: String },
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("writing the index: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Cancelled(#[from] Cancelled),
}

/// A bucket on R2's S3 endpoint.
pub fn bucket(settings: &S3Settings, name: &str) -> Result<Arc<dyn ObjectStore>, R2Error> {
    let err = |m: String| R2Error::S3 {
        bucket: name.into(),
        message: m,
    };
    let endpoint = settings
        .endpoint
        .clone()
        .ok_or_else(|| err("R2_ENDPOINT is not set".into()))?;
    let store = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(name)
        .with_endpoint(endpoint.trim_end_matches('/'))
        .with_region("auto")
        .with_access_key_id(
            settings
                .access_key_id
                .clone()
                .ok_or_else(|| err("R2_ACCESS_KEY_ID is not set".into()))?,
        )
        .with_secret_access_key(
            settings
                .secret_access_key
                .clone()
                .ok_or_else(|| err("R2_SECRET_ACCESS_KEY is not set".into()))?
                .expose(),
        )
        .with_allow_http(endpoint.starts_with("http://"))
        .with_virtual_hosted_style_request(false)
        .build()
        .map_err(|e| err(e.to_string()))?;
    Ok(Arc::new(store))
}

/// Objects at least this large are downloaded as ranged GETs of `PART` bytes, several in flight:
/// a dropped connection costs one part, not the whole body, and one object is not one stream.
pub const RANGED_FROM: u64 = 32 << 20;
pub const PART: u64 = 8 << 20;

/// How a backup of a bucket runs.
#[derive(Debug, Clone, Copy)]
pub struct R2Options {
    /// Objects in flight at once (and parts of one large object).
    pub concurrency: usize,
    pub ranged_from: u64,
    pub part: u64,
}

impl Default for R2Options {
    fn default() -> Self {
        Self {
            concurrency: 4,
            ranged_from: RANGED_FROM,
            part: PART,
        }
    }
}

/// A downloaded body in a temporary file, with what the GET said about it.
struct Body {
    file: std::fs::File,
    sha256: String,
    etag: Option<String>,
    content_type: Option<String>,
    metadata: BTreeMap<String, String>,
    /// GET requests it took.
    requests: u64,
}

fn attributes(got: &object_store::GetResult) -> (Option<String>, BTreeMap<String, String>) {
    let mut content_type = None;
    let mut metadata = BTreeMap::new();
    for (k, v) in got.attributes.iter() {
        match k {
            Attribute::ContentType => content_type = Some(v.to_string()),
            Attribute::Metadata(name) => {
                metadata.insert(name.to_string(), v.to_string());
            }
            _ => {}
        }
    }
    (content_type, metadata)
}

/// Downloads one object's body: one GET, or for a large object ranged GETs of `opts.part`
/// bytes, all pinned to the first answer's ETag (`If-Match`), so an object rewritten during the
/// backup fails instead of mixing two versions.
async fn download(
    store: &Arc<dyn ObjectStore>,
    meta: &object_store::ObjectMeta,
    opts: R2Options,
    parts: &tokio::sync::Semaphore,
    progress: &Progress,
) -> Result<Body, object_store::Error> {
    let io = |e: std::io::Error| object_store::Error::Generic {
        store: "R2",
        source: Box::new(e),
    };
    let mut file = tempfile::tempfile().map_err(io)?;
    let mut hash = Sha256::new();
    let ranged = meta.size >= opts.ranged_from && opts.part > 0;
    let first = if ranged {
        GetOptions {
            range: Some(GetRange::Bounded(0..opts.part.min(meta.size))),
            ..Default::default()
        }
    } else {
        GetOptions::default()
    };
    let got = store.get_opts(&meta.location, first).await?;
    let etag = got.meta.e_tag.clone();
    let (content_type, metadata) = attributes(&got);
    let mut requests = 1;
    let mut stream = got.into_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        progress.check().map_err(|e| io(std::io::Error::other(e)))?;
        hash.update(&chunk);
        file.write_all(&chunk).map_err(io)?;
        progress.add(0, chunk.len() as u64);
    }
    if ranged {
        let starts: Vec<u64> = (1..meta.size.div_ceil(opts.part))
            .map(|i| i * opts.part)
            .collect();
        requests += starts.len() as u64;
        let mut parts = futures_util::stream::iter(starts)
            .map(|from| {
                let options = GetOptions {
                    range: Some(GetRange::Bounded(from..(from + opts.part).min(meta.size))),
                    if_match: etag.clone(),
                    ..Default::default()
                };
                async move {
                    // One permit a buffered part, across every object of the backup: memory
                    // stays at `concurrency` parts however many large objects run at once.
                    let _permit = parts
                        .acquire()
                        .await
                        .map_err(|e| io(std::io::Error::other(e)))?;
                    store.get_opts(&meta.location, options).await?.bytes().await
                }
            })
            .buffered(opts.concurrency.max(1));
        while let Some(part) = parts.next().await {
            let part = part?;
            progress.check().map_err(|e| io(std::io::Error::other(e)))?;
            hash.update(&part);
            file.write_all(&part).map_err(io)?;
            progress.add(0, part.len() as u64);
        }
    }
    Ok(Body {
        file,
        sha256: hex::encode(hash.finalize()),
        etag,
        content_type,
        metadata,
        requests,
    })
}

/// Backs up every object of `store` into `repo` (blobs) and `index` (NDJSON, by key).
#[allow(clippy::too_many_arguments)]
pub async fn backup(
    store: Arc<dyn ObjectStore>,
    bucket_name: &str,
    repo: &Repo,
    lease: &Lease,
    previous: &[ObjectEntry],
    opts: R2Options,
    progress: &Progress,
    index: &mut impl Write,
) -> Result<(R2Stats, Vec<String>), R2Error> {
    let s3 = |e: object_store::Error| R2Error::S3 {
        bucket: bucket_name.into(),
        message: e.to_string(),
    };
    progress.phase("list", "objects", None);
    let mut listed: Vec<object_store::ObjectMeta> =
        store.list(None).try_collect().await.map_err(s3)?;
    listed.sort_by(|a, b| a.location.as_ref().cmp(b.location.as_ref()));
    let before: HashMap<&str, &ObjectEntry> =
        previous.iter().map(|e| (e.key.as_str(), e)).collect();
    let mut stats = R2Stats::default();
    let parts = &tokio::sync::Semaphore::new(opts.concurrency.max(1));
    progress.phase_with_bytes(
        "download",
        "objects",
        Some(listed.len() as u64),
        Some(listed.iter().map(|m| m.size).sum()),
    );

    let results: Vec<Result<(ObjectEntry, u64, bool), R2Error>> =
        futures_util::stream::iter(listed)
            .map(|meta| {
                let store = store.clone();
                let prior = before.get(meta.location.as_ref()).map(|e| (*e).clone());
                async move {
                    progress.check()?;
                    let key = meta.location.to_string();
                    let mut meta = meta;
                    // R2's listings carry ETags; a store whose listing does not (s3s-fs) is asked per
                    // object, which still downloads no body.
                    if meta.e_tag.is_none() && prior.is_some() {
                        meta.e_tag = store.head(&meta.location).await.map_err(s3)?.e_tag;
                    }
                    if let Some(p) = prior
                        .filter(|p| p.etag == meta.e_tag && p.size == meta.size && p.etag.is_some())
                    {
                        progress.add(1, p.size);
                        return Ok((p, 0, false));
                    }
                    let mut body = download(&store, &meta, opts, parts, progress)
                        .await
                        .map_err(|e| match progress.check() {
                            Err(c) => R2Error::Cancelled(c),
                            Ok(()) => s3(e),
                        })?;
                    progress.add(1, 0);
                    let fresh = !repo.has_blob(&body.sha256).await?;
                    if fresh {
                        use std::io::Seek as _;
                        body.file.seek(std::io::SeekFrom::Start(0))?;
                        repo.put_blob(lease, &body.sha256, body.file).await?;
                    }
                    let entry = ObjectEntry {
                        key,
                        size: meta.size,
                        etag: meta.e_tag.clone().or(body.etag),
                        sha256: body.sha256,
                        content_type: body.content_type,
                        metadata: body.metadata,
                        last_modified: meta.last_modified.to_rfc3339(),
                    };
                    Ok((entry, body.requests, fresh))
                }
            })
            .buffered(opts.concurrency.max(1))
            .collect()
            .await;
    let mut blobs = Vec::new();
    for r in results {
        let (entry, gets, fresh) = r?;
        stats.objects += 1;
        stats.bytes += entry.size;
        stats.downloaded += u64::from(gets > 0);
        stats.ranged_gets += if gets > 1 { gets } else { 0 };
        stats.reused += u64::from(gets == 0);
        stats.new_blobs += u64::from(fresh);
        blobs.push(entry.sha256.clone());
        serde_json::to_writer(&mut *index, &entry).map_err(std::io::Error::other)?;
        index.write_all(b"\n")?;
    }
    index.flush()?;
    progress.finish();
    blobs.sort();
    blobs.dedup();
    Ok((stats, blobs))
}
