//! R2 restores through R2's S3 endpoint: the backup's index against the live bucket's listing,
//! bodies from the repository's sealed blobs (each checked against its SHA-256 on the way out)
//! put back with their content type and custom metadata — one PUT, or from 32 MiB a multipart
//! upload of 8 MiB parts streamed out of the blob as it is opened — 8 objects at a time and
//! 24 MiB of bodies in memory at most, in journaled batches; deletes
//! (clear mode) only after every put has landed; then the bucket listed again and N objects
//! read back in full.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::{StreamExt as _, TryStreamExt as _};
use sha2::{Digest, Sha256};

use super::{
    Counts, Plan, Report, Request, Requests, RunState, Snapshot, Status, TargetRef, Unit,
    Verification, save,
};
use crate::cloudflare::r2::PutAttrs;
use crate::cloudflare::{R2Credentials, S3Client, S3Error};
use crate::engine::changes::{Mode, under};
use crate::engine::r2::ObjectEntry;
use crate::engine::r2::restore::{self as engine, Index, Live};
use crate::ops::backup::{self, Env};
use crate::ops::{Error, Result};
use crate::progress::Progress;
use crate::repo::{Manifest, Repo, manifest};

/// Objects read back in full after a restore (and by `cfdr diff`).
pub const SAMPLE: usize = 10;

pub struct Data {
    pub index: Index,
}

/// The S3 client of a restore, its retries told to `progress`.
pub fn client(
    env: &Env<'_>,
    retry: crate::cloudflare::RetryPolicy,
    progress: &Progress,
) -> Result<S3Client> {
    let s3 = R2Credentials::from_config(env.config).and_then(|c| S3Client::new(c, retry))?;
    s3.retries.watch(progress);
    Ok(s3)
}

pub async fn data(repo: &Repo, m: &Manifest) -> Result<Data> {
    let bytes = repo.open_artifact(m, "index.ndjson", Vec::new()).await?;
    let index = engine::index(&bytes)
        .map_err(|e| Error::Verification(format!("backup `{}`: index.ndjson: {e}", m.id)))?;
    Ok(Data { index })
}

/// The live bucket's objects under `prefix`; `None` when the bucket does not exist.
async fn list(s3: &S3Client, bucket: &str, prefix: Option<&str>) -> Result<Option<Live>> {
    match s3.list(bucket, prefix.unwrap_or("")).await {
        Ok(objects) => Ok(Some(
            objects.into_iter().map(|o| (o.key.clone(), o)).collect(),
        )),
        Err(S3Error::Status { code, .. }) if code == "NoSuchBucket" => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub async fn target(s3: &S3Client, m: &Manifest, to: Option<&str>) -> Result<TargetRef> {
    let bucket = to.unwrap_or(&m.target.name).to_string();
    let exists = list_exists(s3, &bucket).await?;
    Ok(TargetRef {
        kind: "r2".into(),
        id: bucket.clone(),
        name: bucket,
        exists,
    })
}

async fn list_exists(s3: &S3Client, bucket: &str) -> Result<bool> {
    match s3.list_page(bucket, "", None).await {
        Ok(_) => Ok(true),
        Err(S3Error::Status { code, .. }) if code == "NoSuchBucket" => Ok(false),
        Err(e) => Err(e.into()),
    }
}

pub async fn plan(
    env: &Env<'_>,
    s3: &S3Client,
    m: &Manifest,
    target: TargetRef,
    run: String,
    req: &Request,
    progress: &Progress,
) -> Result<(Plan, Data)> {
    progress.phase("read the backup", "objects", None);
    let data = data(env.repo, m).await?;
    progress.finish();
    let prefix = req.prefix.as_deref().filter(|p| !p.is_empty());
    // The whole bucket: the snapshot's cost depends on all of it.
    let live = if target.exists {
        list(s3, &target.id, None).await?.unwrap_or_default()
    } else {
        Live::new()
    };
    let changes = engine::diff(&data.index, &live, prefix, req.mode);
    let units = engine::units(&changes, engine::BATCH);
    let written: Vec<&ObjectEntry> = changes
        .add
        .iter()
        .chain(&changes.change)
        .filter_map(|k| data.index.get(k))
        .collect();
    let counts = Counts {
        added: changes.add.len() as u64,
        changed: changes.change.len() as u64,
        kept: changes.kept.len() as u64,
        removed: changes.remove.len() as u64,
        unchanged: changes.unchanged,
        expired: 0,
        write_bytes: written.iter().map(|e| e.size).sum(),
    };
    let snapshot = if !target.exists || units.is_empty() {
        Snapshot::NotNeeded
    } else if req.snapshot {
        Snapshot::Required
    } else {
        Snapshot::Waived
    };
    let mut requests = Requests::default();
    let mut step = |name: &str, n: u64| {
        if n > 0 {
            requests.by_step.insert(name.to_string(), n);
        }
    };
    if snapshot == Snapshot::Required {
        // An R2 backup is incremental: it lists the bucket and downloads what its previous
        // backup does not hold (size and ETag), in ranged parts from 32 MiB.
        let previous = match env
            .repo
            .latest(&crate::repo::Kind::R2, &target.name)
            .await?
        {
            Some(p) => data_of(env.repo, &p).await?,
            None => Index::new(),
        };
        let gets: u64 = live
            .values()
            .filter(|o| {
                previous
                    .get(&o.key)
                    .is_none_or(|p| p.size != o.size || p.etag != o.etag)
            })
            .map(|o| {
                if o.size >= crate::engine::r2::RANGED_FROM {
                    o.size.div_ceil(crate::engine::r2::RANGE)
                } else {
                    1
                }
            })
            .sum();
        step("snapshot", engine::list_requests(live.len() as u64) + gets);
    }
    if !target.exists {
        step("create bucket", 1);
    }
    step(
        "put",
        written
            .iter()
            .map(|e| engine::upload_requests(e.size))
            .sum(),
    );
    step("delete", changes.remove.len() as u64);
    let after = live
        .keys()
        .filter(|k| under(prefix, k) && !changes.remove.contains(k))
        .count() as u64
        + changes.add.len() as u64;
    let sampled = data
        .index
        .keys()
        .filter(|k| under(prefix, k) && !changes.kept.contains(k))
        .count()
        .min(SAMPLE) as u64;
    step("verify", engine::list_requests(after) + sampled);
    requests.total = requests.by_step.values().sum();
    // R2's S3 endpoint has no request budget; objects go CONCURRENCY at a time.
    requests.eta_secs = s3
        .pace
        .time_for(requests.total, CONCURRENCY)
        .unwrap_or_default()
        .as_secs_f64();

    let plan = Plan {
        format: super::PLAN_FORMAT.into(),
        run,
        backup: m.id.clone(),
        source: m.target.name.clone(),
        target,
        mode: req.mode,
        prefix: prefix.map(str::to_string),
        created: manifest::rfc3339(time::OffsetDateTime::now_utc()),
        at: time::OffsetDateTime::now_utc().unix_timestamp(),
        counts,
        snapshot,
        requests,
        undo_of: req.undo_of.clone(),
        units,
        kept_keys: changes.kept,
        expired_keys: Vec::new(),
        d1: None,
        time_travel: None,
        batch_bytes: None,
        tiers: Vec::new(),
        profile: None,
    };
    Ok((plan, data))
}

async fn data_of(repo: &Repo, m: &Manifest) -> Result<Index> {
    Ok(data(repo, m).await?.index)
}

/// Bodies a restore holds in memory at once, across every object in flight, in MiB: small
/// objects whole, large ones as the parts being filled, queued and sent.
const BUFFERED_MIB: u32 = 24;

/// Multipart parts of one object in flight at once.
const PART_LANES: usize = 3;

/// Large objects opened at once (each holds a few chunks of its blob as it is read).
const LARGE_AT_ONCE: usize = 2;

/// The budget's permits a body of `bytes` takes (one a MiB, rounded up).
fn permits(bytes: u64) -> u32 {
    bytes.div_ceil(1 << 20).min(u64::from(BUFFERED_MIB)) as u32
}

/// What a restore's uploads share: the S3 client, the repository and the memory budget.
struct Uploads<'a> {
    s3: &'a S3Client,
    repo: &'a Repo,
    bucket: &'a str,
    /// The backup restored, for errors.
    backup: &'a str,
    budget: std::sync::Arc<tokio::sync::Semaphore>,
    large: tokio::sync::Semaphore,
}

/// A part of a multipart upload, with the budget it holds until it has been sent.
type Piece = (Vec<u8>, tokio::sync::OwnedSemaphorePermit);

/// The sink a large object's blob is opened into (on a blocking thread): the plaintext cut
/// into parts of `PART` bytes, each buffer taken from the budget before it is filled and
/// handed to the uploader through a queue of one.
struct PartSink {
    buf: Vec<u8>,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    budget: std::sync::Arc<tokio::sync::Semaphore>,
    runtime: tokio::runtime::Handle,
    tx: tokio::sync::mpsc::Sender<Piece>,
}

impl PartSink {
    fn send(&mut self) -> std::io::Result<()> {
        let buf = std::mem::take(&mut self.buf);
        if let Some(permit) = self.permit.take() {
            self.tx
                .blocking_send((buf, permit))
                .map_err(|_| std::io::Error::other("the upload stopped"))?;
        }
        Ok(())
    }
}

impl std::io::Write for PartSink {
    fn write(&mut self, mut b: &[u8]) -> std::io::Result<usize> {
        let n = b.len();
        let part = engine::PART as usize;
        while !b.is_empty() {
            if self.permit.is_none() {
                let take = self
                    .runtime
                    .block_on(
                        self.budget
                            .clone()
                            .acquire_many_owned(permits(engine::PART)),
                    )
                    .map_err(std::io::Error::other)?;
                self.permit = Some(take);
                self.buf = Vec::with_capacity(part);
            }
            let take = (part - self.buf.len()).min(b.len());
            self.buf.extend_from_slice(&b[..take]);
            b = &b[take..];
            if self.buf.len() == part {
                self.send()?;
            }
        }
        Ok(n)
    }

    /// The blob's last bytes: the part they fill, short, goes too. (The upload is completed only
    /// once the blob's check has passed.)
    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.send()
    }
}

impl Uploads<'_> {
    /// Puts one object back from its blob; returns the ETag R2 gave it.
    async fn upload(&self, e: &ObjectEntry) -> Result<String> {
        let attrs = PutAttrs {
            content_type: e.content_type.clone(),
            metadata: e.metadata.clone(),
        };
        let (s3, bucket) = (self.s3, self.bucket);
        if e.size < engine::MULTIPART_FROM {
            let _permit = self
                .budget
                .acquire_many(permits(e.size))
                .await
                .map_err(|e| Error::Local(e.to_string()))?;
            let body = self
                .repo
                .open_blob(&e.sha256, Vec::with_capacity(e.size as usize))
                .await?;
            return Ok(s3.put(bucket, &e.key, body.into(), &attrs).await?);
        }
        let _slot = self
            .large
            .acquire()
            .await
            .map_err(|e| Error::Local(e.to_string()))?;
        let id = s3.create_multipart(bucket, &e.key, &attrs).await?;
        match self.parts(e, &id).await {
            Ok(parts) => Ok(s3.complete_multipart(bucket, &e.key, &id, &parts).await?),
            Err(err) => {
                let _ = s3.abort_multipart(bucket, &e.key, &id).await;
                Err(err)
            }
        }
    }

    /// Streams a large object's blob into upload `id` as it is opened, `PART_LANES` parts in
    /// flight. The blob's SHA-256 is checked when the last byte is out of it, before the upload
    /// is completed: a body that is not the backup's is never stored.
    async fn parts(&self, e: &ObjectEntry, id: &str) -> Result<Vec<(u32, String)>> {
        let (tx, rx) = tokio::sync::mpsc::channel::<Piece>(1);
        let sink = PartSink {
            buf: Vec::new(),
            permit: None,
            budget: self.budget.clone(),
            runtime: tokio::runtime::Handle::current(),
            tx,
        };
        // The sink, dropped once the blob is read and checked, ends the stream of parts.
        let read = async { self.repo.open_blob(&e.sha256, sink).await.map(drop) };
        let pieces =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|p| (p, rx)) },
            );
        let sent = pieces
            .enumerate()
            .map(|(i, (buf, permit))| async move {
                let number = i as u32 + 1;
                let etag = self
                    .s3
                    .upload_part(self.bucket, &e.key, id, number, buf.into())
                    .await?;
                drop(permit);
                Ok::<_, Error>((number, etag))
            })
            .buffer_unordered(PART_LANES)
            .try_collect::<Vec<(u32, String)>>();
        // A failed part stops the uploads, and with them the reading; its error is the one.
        let (read, sent) = tokio::join!(read, sent);
        let mut parts = sent?;
        read?;
        parts.sort_by_key(|p| p.0);
        Ok(parts)
    }
}

/// Objects put (or deleted) at once.
const CONCURRENCY: usize = 8;

impl Uploads<'_> {
    /// Sends one batch, [`CONCURRENCY`] objects at a time. Returns the ETags of what was put.
    async fn send(&self, unit: &Unit, data: &Data) -> Result<BTreeMap<String, String>> {
        match unit {
            Unit::Put { keys } => {
                let entries: Vec<&ObjectEntry> = keys
                    .iter()
                    .map(|k| {
                        data.index.get(k).ok_or_else(|| {
                            Error::Verification(format!(
                                "the plan puts object `{k}`, which the backup does not hold"
                            ))
                        })
                    })
                    .collect::<Result<_>>()?;
                futures_util::stream::iter(entries)
                    .map(|e| async move {
                        match self.upload(e).await {
                            Ok(etag) => Ok((e.key.clone(), etag)),
                            // The repository's copy failed its check: name the object, and
                            // what to look at next.
                            Err(Error::Repo(err)) => Err(Error::Verification(format!(
                                "object `{}` cannot be restored from the backup: {err}; nothing of it was stored in bucket `{}`; check the backup with `cfdr backups verify --full {}`",
                                e.key, self.bucket, self.backup
                            ))),
                            Err(err) => Err(err),
                        }
                    })
                    .buffer_unordered(CONCURRENCY)
                    .try_collect()
                    .await
            }
            Unit::Delete { keys } => {
                futures_util::stream::iter(keys)
                    .map(|k| self.s3.delete(self.bucket, k))
                    .buffer_unordered(CONCURRENCY)
                    .try_collect::<Vec<()>>()
                    .await?;
                Ok(BTreeMap::new())
            }
        }
    }
}

pub async fn run(
    env: &Env<'_>,
    s3: &S3Client,
    mut state: RunState,
    data: Data,
    resumed: bool,
    progress: &Progress,
) -> Result<Report> {
    let started = std::time::Instant::now();
    let sent_before = s3.requests();
    let bucket = state.plan.target.id.clone();
    if !state.plan.target.exists {
        s3.create_bucket(&bucket).await?;
    }
    super::prepare(env, &mut state, || async {
        let job = progress.job("pre-recovery snapshot");
        backup::r2::run_with(
            env.repo,
            env.config,
            s3,
            &bucket,
            &super::snapshot_options(),
            &job,
        )
        .await
    })
    .await?;
    let uploads = Uploads {
        s3,
        repo: env.repo,
        bucket: &bucket,
        backup: &state.plan.backup,
        budget: std::sync::Arc::new(tokio::sync::Semaphore::new(BUFFERED_MIB as usize)),
        large: tokio::sync::Semaphore::new(LARGE_AT_ONCE),
    };
    let landed = super::apply_units(env, &state, "objects", progress, |i| {
        let (uploads, data, unit) = (&uploads, &data, &state.plan.units[i]);
        async move {
            Ok(super::Landed {
                etags: uploads.send(unit, data).await?,
                ..Default::default()
            })
        }
    })
    .await?;
    state.status = Status::Verifying;
    save(env.repo, &state).await?;
    let verification = verify(s3, &bucket, &state.plan, &data, &landed.etags, progress).await?;
    let sent = s3.requests() - sent_before;
    let report = Report::of(&state, verification, Vec::new(), sent, resumed, started);
    super::finish(env.repo, state, report).await
}

/// Lists the bucket again and checks every object's size and ETag, then reads [`SAMPLE`]
/// objects back in full: SHA-256, content type and custom metadata as the backup has them.
async fn verify(
    s3: &S3Client,
    bucket: &str,
    plan: &Plan,
    data: &Data,
    written: &BTreeMap<String, String>,
    progress: &Progress,
) -> Result<Verification> {
    progress.phase("verify", "objects", None);
    let prefix = plan.prefix.as_deref();
    let live = list(s3, bucket, prefix).await?.unwrap_or_default();
    let ignore: BTreeSet<String> = plan.kept_keys.iter().cloned().collect();
    let differences = engine::compare(
        &data.index,
        &live,
        written,
        prefix,
        plan.mode == Mode::Clear,
        &ignore,
    );
    let mut differences = settle_etags(s3, bucket, &data.index, differences).await?;
    let candidates: Vec<&ObjectEntry> = data
        .index
        .values()
        .filter(|e| under(prefix, &e.key) && !ignore.contains(&e.key))
        .collect();
    differences.extend(read_back(s3, bucket, &candidates, &plan.run).await?);
    progress.finish();
    let checked = data
        .index
        .keys()
        .chain(live.keys().filter(|k| !data.index.contains_key(*k)))
        .filter(|k| under(prefix, k))
        .count() as u64;
    Ok(Verification::of(checked, differences))
}

/// An object of the right size whose ETag is neither the backup's nor its upload's (a body put
/// back as a multipart upload has another ETag than the single PUT it was once) is read in full:
/// it is a difference only if its SHA-256 is not the backup's.
async fn settle_etags(
    s3: &S3Client,
    bucket: &str,
    index: &Index,
    differences: Vec<crate::engine::changes::Difference>,
) -> Result<Vec<crate::engine::changes::Difference>> {
    let mut out = Vec::new();
    for d in differences {
        if d.what == "etag"
            && let Some(e) = index.get(&d.key)
            && sha256_of(s3, bucket, &e.key).await?.as_deref() == Some(e.sha256.as_str())
        {
            continue;
        }
        out.push(d);
    }
    Ok(out)
}

/// The SHA-256 of an object's body, `None` when it is gone.
async fn sha256_of(s3: &S3Client, bucket: &str, key: &str) -> Result<Option<String>> {
    let mut hash = Sha256::new();
    let mut sink = |chunk: bytes::Bytes| -> std::result::Result<(), String> {
        hash.update(&chunk);
        Ok(())
    };
    match s3.get(bucket, key, None, None, &mut sink).await {
        Ok(_) => Ok(Some(hex::encode(hash.finalize()))),
        Err(S3Error::Status { status: 404, .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Reads up to [`SAMPLE`] of `candidates` (chosen by `seed`) back in full.
async fn read_back(
    s3: &S3Client,
    bucket: &str,
    candidates: &[&ObjectEntry],
    seed: &str,
) -> Result<Vec<crate::engine::changes::Difference>> {
    use rand::seq::IndexedRandom as _;
    use rand::{SeedableRng as _, rngs::StdRng};
    let seed: [u8; 32] = Sha256::digest(seed.as_bytes()).into();
    let mut rng = StdRng::from_seed(seed);
    let picked: Vec<&&ObjectEntry> = candidates.choose_multiple(&mut rng, SAMPLE).collect();
    // Read back a few at a time; each answer is checked as it streams in.
    let found: Vec<Vec<crate::engine::changes::Difference>> = futures_util::stream::iter(picked)
        .map(|e| async move {
            let mut hash = Sha256::new();
            let mut sink = |chunk: bytes::Bytes| -> std::result::Result<(), String> {
                hash.update(&chunk);
                Ok(())
            };
            let got = match s3.get(bucket, &e.key, None, None, &mut sink).await {
                Ok(h) => h,
                Err(S3Error::Status { status: 404, .. }) => {
                    return Ok(vec![difference(&e.key, "missing")]);
                }
                Err(err) => return Err(Error::from(err)),
            };
            let mut out = Vec::new();
            if hex::encode(hash.finalize()) != e.sha256 {
                out.push(difference(&e.key, "content"));
            }
            if got.content_type.is_some() && got.content_type != e.content_type
                || got.metadata != e.metadata
            {
                out.push(difference(&e.key, "metadata"));
            }
            Ok(out)
        })
        .buffer_unordered(4)
        .try_collect()
        .await?;
    let mut out: Vec<_> = found.into_iter().flatten().collect();
    out.sort_by(|a, b| a.key.cmp(&b.key).then_with(|| a.what.cmp(&b.what)));
    Ok(out)
}

fn difference(key: &str, what: &str) -> crate::engine::changes::Difference {
    crate::engine::changes::Difference {
        key: key.to_string(),
        what: what.to_string(),
    }
}

/// `cfdr diff` for R2: every object's size and ETag against the backup's, and [`SAMPLE`]
/// objects read back in full.
pub async fn diff(
    env: &Env<'_>,
    s3: &S3Client,
    m: &Manifest,
    to: Option<&str>,
    (prefix, kept): (Option<&str>, &BTreeSet<String>),
    exact: bool,
) -> Result<(TargetRef, Verification)> {
    let target = target(s3, m, to).await?;
    if !target.exists {
        return Err(Error::usage(format!(
            "no R2 bucket `{}` to compare with; give --to with its name",
            target.name
        )));
    }
    let data = data(env.repo, m).await?;
    let live = list(s3, &target.id, prefix).await?.unwrap_or_default();
    let differences = engine::compare(&data.index, &live, &BTreeMap::new(), prefix, exact, kept);
    let mut differences = settle_etags(s3, &target.id, &data.index, differences).await?;
    let candidates: Vec<&ObjectEntry> = data
        .index
        .values()
        .filter(|e| under(prefix, &e.key) && !kept.contains(&e.key))
        .collect();
    differences.extend(read_back(s3, &target.id, &candidates, &m.id).await?);
    let checked = candidates.len() as u64;
    Ok((target, Verification::of(checked, differences)))
}
