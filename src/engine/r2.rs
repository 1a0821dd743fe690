//! R2 backup through the S3 API: every object listed, its body stored once as a sealed,
//! content-addressed blob (`blobs/<sha256>`), and an NDJSON index (key, size, etag, sha256,
//! content type, custom metadata, last modified). Incremental by ETag: an object whose key, size
//! and ETag match the previous snapshot's index is not downloaded again. Bounded concurrency.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::Arc;

use futures_util::{StreamExt as _, TryStreamExt as _};
use object_store::{Attribute, ObjectStore, ObjectStoreExt as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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
}

#[derive(Debug, thiserror::Error)]
pub enum R2Error {
    #[error("R2 (S3) `{bucket}`: {message}")]
    S3 { bucket: String, message: String },
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("writing the index: {0}")]
    Io(#[from] std::io::Error),
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

/// Backs up every object of `store` into `repo` (blobs) and `index` (NDJSON, by key).
pub async fn backup(
    store: Arc<dyn ObjectStore>,
    bucket_name: &str,
    repo: &Repo,
    lease: &Lease,
    previous: &[ObjectEntry],
    concurrency: usize,
    index: &mut impl Write,
) -> Result<(R2Stats, Vec<String>), R2Error> {
    let s3 = |e: object_store::Error| R2Error::S3 {
        bucket: bucket_name.into(),
        message: e.to_string(),
    };
    let mut listed: Vec<object_store::ObjectMeta> =
        store.list(None).try_collect().await.map_err(s3)?;
    listed.sort_by(|a, b| a.location.as_ref().cmp(b.location.as_ref()));
    let before: HashMap<&str, &ObjectEntry> =
        previous.iter().map(|e| (e.key.as_str(), e)).collect();
    let mut stats = R2Stats::default();

    let results: Vec<Result<(ObjectEntry, bool, bool), R2Error>> =
        futures_util::stream::iter(listed)
            .map(|meta| {
                let store = store.clone();
                let prior = before.get(meta.location.as_ref()).map(|e| (*e).clone());
                async move {
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
                        return Ok((p, false, false));
                    }
                    let got = store.get(&meta.location).await.map_err(s3)?;
                    let etag_from_get = got.meta.e_tag.clone();
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
                    let mut tmp = tempfile::tempfile()?;
                    let mut hash = Sha256::new();
                    let mut body = got.into_stream();
                    while let Some(chunk) = body.next().await {
                        let chunk = chunk.map_err(s3)?;
                        hash.update(&chunk);
                        tmp.write_all(&chunk)?;
                    }
                    let sha256 = hex::encode(hash.finalize());
                    let fresh = !repo.has_blob(&sha256).await?;
                    if fresh {
                        use std::io::Seek as _;
                        tmp.seek(std::io::SeekFrom::Start(0))?;
                        repo.put_blob(lease, &sha256, tmp).await?;
                    }
                    let entry = ObjectEntry {
                        key,
                        size: meta.size,
                        etag: meta.e_tag.clone().or(etag_from_get),
                        sha256,
                        content_type,
                        metadata,
                        last_modified: meta.last_modified.to_rfc3339(),
                    };
                    Ok((entry, true, fresh))
                }
            })
            .buffered(concurrency.max(1))
            .collect()
            .await;
    let mut blobs = Vec::new();
    for r in results {
        let (entry, downloaded, fresh) = r?;
        stats.objects += 1;
        stats.bytes += entry.size;
        stats.downloaded += u64::from(downloaded);
        stats.reused += u64::from(!downloaded);
        stats.new_blobs += u64::from(fresh);
        blobs.push(entry.sha256.clone());
        serde_json::to_writer(&mut *index, &entry).map_err(std::io::Error::other)?;
        index.write_all(b"\n")?;
    }
    index.flush()?;
    blobs.sort();
    blobs.dedup();
    Ok((stats, blobs))
}
