//! R2 backup through the S3 API: every object listed, its body stored once as a sealed,
//! content-addressed blob (`blobs/<sha256>`), and an NDJSON index (key, size, etag, sha256,
//! content type, custom metadata, last modified). Incremental by ETag: an object whose key, size
//! and ETag match the previous snapshot's index is not downloaded again. Bounded concurrency;
//! large objects come as ranged GETs pinned to one ETag.

pub mod restore;

use std::collections::BTreeMap;
use std::io::Write;

use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};

use crate::cloudflare::r2::{BodySink, Listed, ObjectHead};
use crate::cloudflare::{S3Client, S3Error};
use crate::progress::{Cancelled, Progress};
use crate::repo::{
    ArtifactLines, BlobBatch, BlobFeed, GATHER, INDEX, Lease, Manifest, Received, Repo, RepoError,
};

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
    #[error(transparent)]
    S3(#[from] S3Error),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("writing the index: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Cancelled(#[from] Cancelled),
}

/// Objects at least this large are downloaded as ranged GETs of `RANGE` bytes, several in
/// flight: a dropped connection costs one range, not the whole body, and one object is not one
/// stream.
pub const RANGED_FROM: u64 = 32 << 20;
/// A ranged GET's bytes: each is held whole until its turn to be sealed, `concurrency` of them
/// at most, so this sets the backup's memory (4 × 4 MiB, beside 4 sealing pipelines).
pub const RANGE: u64 = 4 << 20;
/// A multipart upload's part (a restore's): S3 and R2 take no part under 5 MiB but the last.
pub const PART: u64 = 8 << 20;

/// How a backup of a bucket runs.
#[derive(Debug, Clone, Copy)]
pub struct R2Options {
    /// Objects over `GATHER` bytes in flight at once, and ranged parts in flight; objects up to
    /// `GATHER` bytes (one short GET each, gathered in memory) run up to twice as many.
    pub concurrency: usize,
    pub ranged_from: u64,
    /// A ranged GET's bytes.
    pub part: u64,
}

impl Default for R2Options {
    fn default() -> Self {
        Self {
            concurrency: 4,
            ranged_from: RANGED_FROM,
            part: RANGE,
        }
    }
}

/// A downloaded body, received into the backup's batch of blobs, with what the GET said
/// about it.
struct Body {
    received: Received,
    etag: Option<String>,
    content_type: Option<String>,
    metadata: BTreeMap<String, String>,
    /// GET requests it took.
    requests: u64,
}

/// Feeds a GET's body to the blob being received, counting it in the progress.
struct Feeding<'a> {
    feed: &'a mut BlobFeed,
    progress: &'a Progress,
}

impl BodySink for Feeding<'_> {
    async fn put(&mut self, bytes: bytes::Bytes) -> Result<(), String> {
        self.progress.check().map_err(|e| e.to_string())?;
        let n = bytes.len() as u64;
        self.feed.put(bytes).await.map_err(|e| e.to_string())?;
        self.progress.add(0, n);
        Ok(())
    }
}

/// Downloads one object's body into `batch`: one GET, or for a large object ranged GETs of
/// `opts.part` bytes, all pinned to the first answer's ETag (`If-Match`), so an object
/// rewritten during the backup fails instead of mixing two versions. A body cut short is
/// resumed by the client. The body is sealed as it arrives (in a local repository it is never
/// on disk in plaintext).
async fn download(
    client: &S3Client,
    bucket: &str,
    meta: &Listed,
    opts: R2Options,
    parts: &std::sync::Arc<tokio::sync::Semaphore>,
    batch: &BlobBatch<'_>,
    progress: &Progress,
) -> Result<Body, R2Error> {
    let mut feed = batch.feed();
    let fetched = fetch(client, bucket, meta, opts, parts, &mut feed, progress).await;
    // A sealing failure shows in the download as "stopped"; the feed says why.
    let (head, requests, received) = match (fetched, feed.finish().await) {
        (Ok((head, requests)), Ok(received)) => (head, requests, received),
        (_, Err(sealing)) => return Err(sealing.into()),
        (Err(e), Ok(_)) => return Err(e),
    };
    Ok(Body {
        received,
        etag: head.etag.clone().or_else(|| meta.etag.clone()),
        content_type: head.content_type,
        metadata: head.metadata,
        requests,
    })
}

/// The GETs of [`download`]: returns the first answer's head and the number of requests.
async fn fetch(
    client: &S3Client,
    bucket: &str,
    meta: &Listed,
    opts: R2Options,
    parts: &std::sync::Arc<tokio::sync::Semaphore>,
    feed: &mut BlobFeed,
    progress: &Progress,
) -> Result<(ObjectHead, u64), R2Error> {
    let ranged = meta.size >= opts.ranged_from && opts.part > 0;
    let first = ranged.then(|| 0..opts.part.min(meta.size));
    let head = client
        .get(
            bucket,
            &meta.key,
            first,
            None,
            &mut Feeding { feed, progress },
        )
        .await?;
    // The object as the first answer found it (it may have changed since it was listed).
    let size = head.size;
    let etag = head.etag.clone().or_else(|| meta.etag.clone());
    let mut requests = 1;
    if ranged {
        let starts: Vec<u64> = (1..size.div_ceil(opts.part))
            .map(|i| i * opts.part)
            .collect();
        requests += starts.len() as u64;
        let mut pieces = futures_util::stream::iter(starts)
            .map(|from| {
                let range = from..(from + opts.part).min(size);
                let etag = etag.clone();
                async move {
                    // One permit a buffered part, across every object of the backup, held until
                    // the part is sealed: memory stays at `concurrency` parts however many
                    // large objects run at once.
                    let permit = parts
                        .clone()
                        .acquire_owned()
                        .await
                        .map_err(|e| R2Error::Io(std::io::Error::other(e)))?;
                    // The pieces as the network handed them over: no copy, no fresh buffer.
                    let mut buf = Vec::new();
                    let mut sink = |chunk: bytes::Bytes| -> Result<(), String> {
                        progress.check().map_err(|e| e.to_string())?;
                        buf.push(chunk);
                        Ok(())
                    };
                    client
                        .get(bucket, &meta.key, Some(range), etag.as_deref(), &mut sink)
                        .await?;
                    Ok::<_, R2Error>((buf, permit))
                }
            })
            .buffered(opts.concurrency.max(1));
        while let Some(part) = pieces.next().await {
            let (mut part, permit) = part?;
            progress.check()?;
            // The permit goes with the part's last piece: held until all of it is sealed.
            let last = part.pop();
            for piece in part {
                let n = piece.len() as u64;
                feed.put(piece).await?;
                progress.add(0, n);
            }
            if let Some(piece) = last {
                let n = piece.len() as u64;
                feed.put_held(piece, permit).await?;
                progress.add(0, n);
            }
        }
    }
    Ok((head, requests))
}

/// Objects listed ahead of the last line written to the index: those in flight, done but
/// waiting for an earlier one, and queued. Bounds the backup's memory whatever the bucket's
/// size, and lets the others go on while one object waits out a retry.
const WINDOW: usize = 4096;

/// One listed object on its way through the backup, with its previous entry (if the previous
/// backup had the key) and its place in the window.
struct Work {
    seq: u64,
    meta: Listed,
    prior: Option<ObjectEntry>,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

/// An object done: its index entry, the GETs it took, whether its blob was new.
struct Done {
    entry: ObjectEntry,
    gets: u64,
    fresh: bool,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

/// The previous backup's index, read in key order beside the listing (S3 lists keys in the
/// order of their UTF-8 bytes, the index's order): never whole in memory.
struct Prior {
    lines: Option<ArtifactLines>,
    next: Option<ObjectEntry>,
}

impl Prior {
    fn open(repo: &Repo, previous: Option<&Manifest>) -> Self {
        Self {
            lines: previous.map(|m| repo.artifact_lines(m, INDEX)),
            next: None,
        }
    }

    /// The previous entry of `key`, if there was one; entries before it (objects deleted
    /// since) are passed over. Keys must come in order.
    async fn entry_for(&mut self, key: &str) -> Result<Option<ObjectEntry>, R2Error> {
        loop {
            if let Some(e) = &self.next {
                match e.key.as_str().cmp(key) {
                    std::cmp::Ordering::Less => {}
                    std::cmp::Ordering::Equal => return Ok(self.next.take()),
                    std::cmp::Ordering::Greater => return Ok(None),
                }
            }
            let Some(lines) = &mut self.lines else {
                return Ok(None);
            };
            match lines.next().await? {
                // A line that does not parse has its object downloaded again.
                Some(line) => self.next = serde_json::from_slice(line).ok(),
                None => {
                    self.lines = None;
                    self.next = None;
                }
            }
        }
    }
}

/// Backs up every object of `bucket` into `repo` (blobs) and `index` (NDJSON, by key),
/// against the `previous` backup's index. The listing is read a page at a time (the next page
/// asked for while the current one is handed out) and merged with the previous index as both
/// stream in, so memory stays flat however many objects the bucket holds.
#[allow(clippy::too_many_arguments)]
pub async fn backup(
    client: &S3Client,
    bucket: &str,
    repo: &Repo,
    lease: &Lease,
    previous: Option<&Manifest>,
    opts: R2Options,
    progress: &Progress,
    index: &mut impl Write,
) -> Result<R2Stats, R2Error> {
    progress.phase_with_bytes("download", "objects", None, None);
    let parts = &std::sync::Arc::new(tokio::sync::Semaphore::new(opts.concurrency.max(1)));
    // Bodies streamed through a sealing thread (a few chunks each): `concurrency` at once, so
    // memory stays flat however many large objects come together.
    let streams = &tokio::sync::Semaphore::new(opts.concurrency.max(1));
    let staged = repo.blob_batch(lease);
    let batch = &staged;
    let window = std::sync::Arc::new(tokio::sync::Semaphore::new(WINDOW));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Work>(256);

    let list = async move {
        let mut prior = Prior::open(repo, previous);
        let (mut seq, mut listed, mut bytes) = (0u64, 0u64, 0u64);
        let mut page = client.list_page(bucket, "", None).await?;
        loop {
            let (objects, token) = page;
            listed += objects.len() as u64;
            bytes += objects.iter().map(|o| o.size).sum::<u64>();
            if token.is_none() {
                progress.set_totals(Some(listed), Some(bytes));
            }
            let hand_out = async {
                for meta in objects {
                    let slot = window
                        .clone()
                        .acquire_owned()
                        .await
                        .map_err(|e| R2Error::Io(std::io::Error::other(e)))?;
                    let prior = prior.entry_for(&meta.key).await?;
                    let work = Work {
                        seq,
                        meta,
                        prior,
                        _slot: slot,
                    };
                    seq += 1;
                    if tx.send(work).await.is_err() {
                        break; // the backup stopped; its error says why
                    }
                }
                Ok::<_, R2Error>(())
            };
            match token {
                None => {
                    hand_out.await?;
                    return Ok::<_, R2Error>(());
                }
                Some(t) => {
                    let next = client.list_page(bucket, "", Some(&t));
                    let (next, handed) = tokio::join!(next, hand_out);
                    handed?;
                    page = next?;
                }
            }
        }
    };

    let work = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    // Unordered: an object waiting out a retry must not hold back the ones behind it (in
    // order, one 0.5 s backoff stalled all the lanes: 10 % faults made a 1,500-object bucket
    // 25 times slower). The index is written in key order from the window.
    let mut done = work
        .map(|w| async move {
            let Work {
                seq,
                mut meta,
                prior,
                _slot,
            } = w;
            progress.check()?;
            // R2's listings carry ETags; a store whose listing does not is asked per
            // object, which still downloads no body.
            if meta.etag.is_none() && prior.is_some() {
                meta.etag = client.head(bucket, &meta.key).await?.and_then(|h| h.etag);
            }
            if let Some(p) =
                prior.filter(|p| p.etag == meta.etag && p.size == meta.size && p.etag.is_some())
            {
                progress.add(1, p.size);
                let entry = Done {
                    entry: p,
                    gets: 0,
                    fresh: false,
                    _slot,
                };
                return Ok::<_, R2Error>((seq, entry));
            }
            let _stream = if meta.size > GATHER as u64 {
                let permit = streams.acquire().await;
                Some(permit.map_err(|e| R2Error::Io(std::io::Error::other(e)))?)
            } else {
                None
            };
            let body = download(client, bucket, &meta, opts, parts, batch, progress)
                .await
                .map_err(|e| match progress.check() {
                    Err(c) => R2Error::Cancelled(c),
                    Ok(()) => e,
                })?;
            progress.add(1, 0);
            let (sha256, size) = (body.received.sha256.clone(), body.received.size);
            let fresh = batch.add(lease, body.received).await?;
            let entry = ObjectEntry {
                key: meta.key,
                size,
                etag: body.etag.or(meta.etag),
                sha256,
                content_type: body.content_type,
                metadata: body.metadata,
                last_modified: meta.last_modified,
            };
            let gets = body.requests;
            Ok((
                seq,
                Done {
                    entry,
                    gets,
                    fresh,
                    _slot,
                },
            ))
        })
        .buffer_unordered(2 * opts.concurrency.max(1));

    let write = async {
        let mut stats = R2Stats::default();
        let mut waiting: BTreeMap<u64, Done> = BTreeMap::new();
        let mut next = 0u64;
        while let Some(item) = done.next().await {
            let (seq, d) = item?;
            waiting.insert(seq, d);
            while let Some(d) = waiting.remove(&next) {
                next += 1;
                let Done {
                    entry, gets, fresh, ..
                } = d;
                stats.objects += 1;
                stats.bytes += entry.size;
                stats.downloaded += u64::from(gets > 0);
                stats.ranged_gets += if gets > 1 { gets } else { 0 };
                stats.reused += u64::from(gets == 0);
                stats.new_blobs += u64::from(fresh);
                serde_json::to_writer(&mut *index, &entry).map_err(std::io::Error::other)?;
                index.write_all(b"\n")?;
            }
        }
        Ok::<_, R2Error>(stats)
    };
    let ((), stats) = tokio::try_join!(list, write)?;
    drop(done);
    index.flush()?;
    // The new blobs, durable under their names before the manifest can refer to them.
    staged.commit(lease).await?;
    progress.finish();
    Ok(stats)
}
