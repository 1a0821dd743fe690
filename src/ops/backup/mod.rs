//! Taking a backup now, one module per kind: find the target, run its engine into a temporary
//! file, seal it into the repository under the writer lease, check it against the previous
//! backup of the same target, commit the manifest. Warnings go to the progress sink, so the
//! command line prints them and the console shows them.

pub mod d1;
pub mod kv;
pub mod r2;
pub mod sqlite;

use std::path::PathBuf;

use crate::cloudflare::Client;
use crate::config::Config;
use crate::ops::{Error, Result};
use crate::progress::{Counting, Progress};
use crate::repo::{Kind, Lease, Manifest, Repo, Target, lease};

/// What to back up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    D1 {
        database: String,
        method: Option<crate::engine::d1::Method1>,
    },
    Kv {
        namespace: String,
    },
    R2 {
        bucket: String,
    },
    Sqlite {
        path: PathBuf,
        name: Option<String>,
    },
}

impl What {
    /// How the job is named in progress and errors: ``d1 `shop` ``.
    pub fn label(&self) -> String {
        match self {
            What::D1 { database, .. } => format!("d1 `{database}`"),
            What::Kv { namespace } => format!("kv `{namespace}`"),
            What::R2 { bucket } => format!("r2 `{bucket}`"),
            What::Sqlite { path, name } => format!(
                "sqlite `{}`",
                name.clone().unwrap_or_else(|| path.display().to_string())
            ),
        }
    }
}

/// How backups run: shared by every target of one invocation.
#[derive(Debug, Clone)]
pub struct Options {
    /// manual, scheduled, pre-recovery or drill.
    pub trigger: String,
    /// Requests (KV bulk gets, R2 objects and parts) in flight at once.
    pub concurrency: usize,
    /// KV: store only what changed against the previous backup.
    pub incremental: bool,
    /// Date the backup at this time instead of now (`cfdr demo` builds a history with it).
    pub backdate: Option<time::OffsetDateTime>,
    /// Retries and the per-request timeout for transfers outside the REST client (R2's S3
    /// endpoint, signed URLs).
    pub retry: crate::cloudflare::RetryPolicy,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            trigger: "manual".into(),
            concurrency: 4,
            incremental: false,
            backdate: None,
            retry: crate::cloudflare::RetryPolicy::default(),
        }
    }
}

/// Everything a backup needs from its surroundings.
pub struct Env<'a> {
    pub repo: &'a Repo,
    pub config: &'a Config,
    /// The Cloudflare client (one budget for every backup of the invocation); `None` when only
    /// SQLite files are backed up.
    pub client: Option<&'a Client>,
}

impl Env<'_> {
    /// The REST client's retries told to `progress` from now on (each as a warning line, or
    /// an NDJSON event with its message).
    pub fn watch_retries(&self, progress: &Progress) {
        if let Some(c) = self.client {
            c.retries.watch(progress);
        }
    }
}

/// A finished backup and the line that tells an operator about it.
pub struct Done {
    pub manifest: Manifest,
    pub line: String,
}

/// Takes one backup now, and records it in the audit trail.
pub async fn take(env: &Env<'_>, what: &What, opts: &Options, progress: &Progress) -> Result<Done> {
    let started = std::time::Instant::now();
    let done = take_now(env, what, opts, progress).await;
    let record = crate::repo::audit::Record {
        action: "backup".into(),
        target: Some(what.label()),
        backup: done.as_ref().ok().map(|d| d.manifest.id.clone()),
        result: super::audit::result_of(&done),
        detail: super::audit::detail_of(&done)
            .or_else(|| Some(format!("trigger {}", opts.trigger))),
        ..Default::default()
    };
    super::audit::record(env, record, started, progress).await;
    done
}

async fn take_now(env: &Env<'_>, what: &What, opts: &Options, progress: &Progress) -> Result<Done> {
    env.watch_retries(progress);
    let client = || {
        env.client.ok_or_else(|| {
            Error::usage(
                "set CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID to back up Cloudflare storage",
            )
        })
    };
    match what {
        What::D1 { database, method } => {
            d1::run(env.repo, client()?, database, *method, opts, progress).await
        }
        What::Kv { namespace } => kv::run(env.repo, client()?, namespace, opts, progress).await,
        What::R2 { bucket } => r2::run(env.repo, env.config, bucket, opts, progress).await,
        What::Sqlite { path, name } => {
            sqlite::run(env.repo, path, name.clone(), opts, progress).await
        }
    }
}

/// Whether the target of `what` exists now (a database dropped by an incident does not, and
/// has nothing to snapshot). Reads only.
pub async fn exists(env: &Env<'_>, what: &What, progress: &Progress) -> Result<bool> {
    let client = || {
        env.client.ok_or_else(|| {
            Error::usage("set CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID to reach Cloudflare")
        })
    };
    Ok(match what {
        What::D1 { database, .. } => client()?.d1_database(database).await?.is_some(),
        What::Kv { namespace } => client()?.kv_namespace(namespace).await?.is_some(),
        What::R2 { bucket } => {
            let s3 = crate::cloudflare::R2Credentials::from_config(env.config)
                .and_then(|c| crate::cloudflare::S3Client::new(c, Default::default()))?;
            s3.retries.watch(progress);
            match s3.list_page(bucket, "", None).await {
                Ok(_) => true,
                Err(e) if e.status() == Some(404) => false,
                Err(e) => return Err(e.into()),
            }
        }
        What::Sqlite { path, .. } => path.is_file(),
    })
}

/// The account's D1 databases, KV namespaces and R2 buckets as (kind, name): what `--all` backs
/// up and what the console's inventory lists even when it has no backup.
pub async fn account_targets(
    client: &Client,
) -> Result<Vec<(String, String)>, crate::cloudflare::CfError> {
    let mut out: Vec<(String, String)> = client
        .all_pages("/d1/database", 100, &[])
        .await?
        .iter()
        .filter_map(|d| {
            d["name"]
                .as_str()
                .map(|n| ("d1".to_string(), n.to_string()))
        })
        .collect();
    out.extend(
        client
            .kv_namespaces()
            .await?
            .into_iter()
            .map(|n| ("kv".to_string(), n.title)),
    );
    out.extend(
        client
            .r2_buckets()
            .await?
            .into_iter()
            .map(|b| ("r2".to_string(), b)),
    );
    Ok(out)
}

/// What `--all` (the whole account) or `--wrangler PATH` (the D1 databases, KV namespaces and
/// R2 buckets a project binds) stands for: D1 first, then KV, then R2.
pub async fn targets(client: &Client, wrangler: Option<&std::path::Path>) -> Result<Vec<What>> {
    let (d1s, kvs, r2s) = match wrangler {
        Some(path) => {
            let b = crate::wrangler::load(path).map_err(Error::Usage)?;
            if b.is_empty() {
                return Err(Error::usage(format!(
                    "`{}` binds no D1 database, KV namespace or R2 bucket",
                    path.display()
                )));
            }
            (b.d1, b.kv, b.r2)
        }
        None => {
            let all = account_targets(client).await?;
            let of = |kind: &str| {
                all.iter()
                    .filter(|(k, _)| k == kind)
                    .map(|(_, n)| n.clone())
                    .collect::<Vec<_>>()
            };
            (of("d1"), of("kv"), of("r2"))
        }
    };
    Ok(d1s
        .into_iter()
        .map(|database| What::D1 {
            database,
            method: None,
        })
        .chain(kvs.into_iter().map(|namespace| What::Kv { namespace }))
        .chain(r2s.into_iter().map(|bucket| What::R2 { bucket }))
        .collect())
}

/// Takes a backup of each target in turn under one client (one request budget); a target
/// that fails is handed to `each` like the others and does not stop the rest. Returns the
/// labels of those that failed.
pub async fn take_each(
    env: &Env<'_>,
    targets: &[What],
    opts: &Options,
    progress: &Progress,
    mut each: impl FnMut(&What, &Result<Done>),
) -> Vec<String> {
    let mut failed = Vec::new();
    for what in targets {
        let done = take(env, what, opts, &progress.job(what.label())).await;
        each(what, &done);
        if done.is_err() {
            failed.push(what.label());
        }
    }
    failed
}

/// Adds the sanity checks' warnings to a manifest about to be committed, and says them.
pub(crate) fn sanity(previous: Option<&Manifest>, m: &mut Manifest, progress: &Progress) {
    for w in crate::engine::sanity::check(previous, m, crate::engine::sanity::max_change_from_env())
    {
        progress.warn(w.clone());
        m.warnings.push(w);
    }
}

/// Takes the writer lease for `purpose`, saying so when a stale one was taken over.
pub(crate) async fn lease(repo: &Repo, purpose: &str, progress: &Progress) -> Result<Lease> {
    let lease = Lease::acquire(&repo.storage, purpose, lease::DEFAULT_TTL).await?;
    if let Some(old) = &lease.took_over {
        progress.warn(format!(
            "took over a stale writer lease of {} on {} (since {})",
            old.owner, old.host, old.started
        ));
    }
    Ok(lease)
}

/// A backup of one sealed artifact, as it goes into the repository.
pub(crate) struct Sealed<'a> {
    pub kind: Kind,
    pub target: Target,
    pub trigger: &'a str,
    pub method: &'a str,
    pub artifact: &'a str,
    pub format: &'a str,
    pub stats: serde_json::Value,
    pub backdate: Option<time::OffsetDateTime>,
}

/// Takes the writer lease, seals `file` as the backup's artifact, commits the manifest, and
/// releases the lease whatever happened in between. `more` fills in the rest of the manifest
/// (it sees the target's previous backup).
pub(crate) async fn store(
    repo: &Repo,
    s: Sealed<'_>,
    file: std::fs::File,
    progress: &Progress,
    more: impl FnOnce(&mut Manifest, Option<&Manifest>),
) -> Result<Manifest> {
    let purpose = format!("backup {} {}", s.kind.as_str(), s.target.name);
    let lease = lease(repo, &purpose, progress).await?;
    let result = async {
        let previous = repo.latest(&s.kind, &s.target.name).await?;
        let mut writer = repo.begin(&lease, s.kind, s.target, s.trigger, s.method);
        if let Some(at) = s.backdate {
            writer.backdate(at);
        }
        let size = file.metadata().map(|m| m.len()).ok();
        progress.phase_with_bytes("seal", "bytes", None, size);
        let input = Counting {
            inner: file,
            progress: progress.clone(),
        };
        writer
            .add_artifact(s.artifact, s.format, input)
            .await
            .map_err(|e| match progress.check() {
                Err(c) => Error::from(c),
                Ok(()) => Error::from(e),
            })?;
        progress.finish();
        writer.manifest.stats = s.stats;
        more(&mut writer.manifest, previous.as_ref());
        sanity(previous.as_ref(), &mut writer.manifest, progress);
        Ok::<_, Error>(writer.commit().await?)
    }
    .await;
    lease.release().await?;
    result
}
