//! `cfdr backup r2 <bucket>`: objects into content-addressed blobs and an index, incremental
//! against the bucket's previous backup. Blobs are written while objects are read, so the writer
//! lease covers the whole backup.

use super::{Done, Options};
use crate::cloudflare::{R2Credentials, S3Client};
use crate::config::Config;
use crate::engine::r2 as engine;
use crate::ops::{Error, Result};
use crate::progress::Progress;
use crate::repo::{Kind, Repo, Target};
use crate::text::human_size;

pub async fn run(
    repo: &Repo,
    config: &Config,
    bucket: &str,
    opts: &Options,
    progress: &Progress,
) -> Result<Done> {
    let s3 = R2Credentials::from_config(config)
        .and_then(|c| S3Client::new(c, opts.retry.clone()))
        .map_err(Error::R2)?;
    s3.retries.watch(progress);
    run_with(repo, config, &s3, bucket, opts, progress).await
}

/// [`run`] through a client the caller already has (a restore's snapshot counts its requests
/// with the restore's).
pub async fn run_with(
    repo: &Repo,
    config: &Config,
    s3: &S3Client,
    bucket: &str,
    opts: &Options,
    progress: &Progress,
) -> Result<Done> {
    let started = std::time::Instant::now();
    let lease = super::lease(repo, &format!("backup r2 {bucket}"), progress).await?;
    let result = async {
        let parent = repo.latest(&Kind::R2, bucket).await?;
        let mut tmp = tempfile::Builder::new()
            .prefix("cfdr-r2-")
            .suffix(".ndjson")
            .tempfile()?;
        let stats = {
            let mut w = std::io::BufWriter::new(tmp.as_file_mut());
            let r2 = engine::R2Options {
                concurrency: opts.concurrency,
                ..Default::default()
            };
            let previous = parent.as_ref();
            engine::backup(s3, bucket, repo, &lease, previous, r2, progress, &mut w).await?
        };
        let target = Target {
            account: config.account_id.clone(),
            id: bucket.to_string(),
            name: bucket.to_string(),
        };
        let mut writer = repo.begin(&lease, Kind::R2, target, &opts.trigger, "s3");
        if let Some(at) = opts.backdate {
            writer.backdate(at);
        }
        writer
            .add_artifact(
                crate::repo::INDEX,
                "r2-index-ndjson",
                std::fs::File::open(tmp.path())?,
            )
            .await?;
        writer.manifest.stats = serde_json::to_value(&stats)?;
        super::sanity(parent.as_ref(), &mut writer.manifest, progress);
        writer.manifest.parent = parent.map(|p| p.id);
        let m = writer.commit().await?;
        Ok::<_, Error>((m, stats))
    }
    .await;
    lease.release().await?;
    let (m, stats) = result?;
    let line = format!(
        "backup {} of r2 `{bucket}`: {} objects ({}), {} downloaded, {} unchanged, {} new blobs in {:.1}s",
        m.id,
        stats.objects,
        human_size(stats.bytes),
        stats.downloaded,
        stats.reused,
        stats.new_blobs,
        started.elapsed().as_secs_f64()
    );
    Ok(Done { manifest: m, line })
}
