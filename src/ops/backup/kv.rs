//! A KV namespace backup: the engine's NDJSON, sealed — or, `--incremental`, only the lines that
//! changed against the previous backup (the values are still all read: KV lists no content hash,
//! so what an incremental backup saves is storage, not requests).

use serde_json::json;

use super::{Done, Options, Sealed, store};
use crate::cloudflare::Client;
use crate::engine::kv as engine;
use crate::ops::{Error, Result};
use crate::progress::Progress;
use crate::repo::{Kind, Manifest, Repo, Target};

/// How many incremental backups may follow a full one before the next is full again: a restore
/// reads the whole chain, and a long chain is a long way to fall.
pub const MAX_CHAIN: usize = 24;

/// The whole content a KV backup stands for: its own artifact, or for an incremental backup its
/// chain of parents folded up to it. Also how long the chain is (1 for a full backup).
pub async fn state_of(repo: &Repo, m: &Manifest) -> Result<(engine::State, usize)> {
    let mut chain = vec![m.clone()];
    while let Some(parent) = chain
        .last()
        .filter(|c| c.method == engine::INCREMENTAL)
        .and_then(|c| c.parent.clone())
    {
        let p = repo.manifest(&parent).await.map_err(|e| {
            Error::Verification(format!(
                    "backup `{}` is incremental on `{parent}`, which cannot be read ({e}); take a full backup (without --incremental)",
                m.id
            ))
        })?;
        chain.push(p);
    }
    let mut state = engine::State::new();
    for link in chain.iter().rev() {
        let bytes = repo.open_artifact(link, "keys.ndjson", Vec::new()).await?;
        engine::apply(&mut state, &bytes)
            .map_err(|e| Error::Verification(format!("backup `{}`: keys.ndjson: {e}", link.id)))?;
    }
    Ok((state, chain.len()))
}

pub async fn run(
    repo: &Repo,
    client: &Client,
    namespace: &str,
    opts: &Options,
    progress: &Progress,
) -> Result<Done> {
    let ns = client.kv_namespace(namespace).await?.ok_or_else(|| {
        Error::usage(format!(
            "no KV namespace `{namespace}` in account `{}`; give its title or id",
            client.account()
        ))
    })?;
    let (id, title) = (ns.id, ns.title);
    let started = std::time::Instant::now();
    let sent_before = client.budget.state().sent;
    let mut tmp = tempfile::Builder::new()
        .prefix("cfdr-kv-")
        .suffix(".ndjson")
        .tempfile()?;
    let stats = {
        let mut w = std::io::BufWriter::new(tmp.as_file_mut());
        engine::backup(client, &id, None, opts.concurrency, progress, &mut w).await?
    };
    let requests = client.budget.state().sent - sent_before;
    let mut stats_json = json!({ "keys": stats.keys, "value_bytes": stats.value_bytes, "binary": stats.binary,
        "refetched": stats.refetched, "with_metadata": stats.with_metadata, "with_expiration": stats.with_expiration,
        "requests": requests });

    // Incremental: the delta against the parent's whole content, when there is a parent and
    // the chain is not too long already.
    let mut artifact = std::fs::File::open(tmp.path())?;
    let mut parent_id = None;
    let mut delta_line = String::new();
    if opts.incremental {
        match repo.latest(&Kind::Kv, &title).await? {
            None => progress.warn("no previous backup to be incremental on: this one is full"),
            Some(parent) => {
                let (state, chain) = state_of(repo, &parent).await?;
                if chain >= MAX_CHAIN {
                    progress.warn(format!(
                        "{chain} backups in the incremental chain of `{}`: this one is full",
                        parent.id
                    ));
                } else {
                    let current = std::fs::read(tmp.path())?;
                    let mut d = tempfile::tempfile()?;
                    let delta = {
                        let mut w = std::io::BufWriter::new(&mut d);
                        engine::delta(&state, &current, &mut w)?
                    };
                    use std::io::Seek as _;
                    d.seek(std::io::SeekFrom::Start(0))?;
                    artifact = d;
                    stats_json["delta"] = serde_json::to_value(&delta)?;
                    delta_line = format!(
                        ", incremental on {}: {} changed, {} added, {} deleted",
                        parent.id, delta.changed, delta.added, delta.deleted
                    );
                    parent_id = Some(parent.id);
                }
            }
        }
    }
    let target = Target {
        account: Some(client.account().to_string()),
        id,
        name: title.clone(),
    };
    let sealed = Sealed {
        kind: Kind::Kv,
        target,
        trigger: &opts.trigger,
        method: if parent_id.is_some() {
            engine::INCREMENTAL
        } else {
            "bulk-get"
        },
        artifact: "keys.ndjson",
        format: if parent_id.is_some() {
            "kv-ndjson-delta"
        } else {
            "kv-ndjson"
        },
        stats: stats_json,
        backdate: opts.backdate,
    };
    let m = store(repo, sealed, artifact, progress, |m, _| {
        m.parent = parent_id
    })
    .await?;
    let line = format!(
        "backup {} of kv `{title}`: {} keys ({} binary, {} refetched), {requests} requests in {:.1}s{delta_line}",
        m.id,
        stats.keys,
        stats.binary,
        stats.refetched,
        started.elapsed().as_secs_f64()
    );
    Ok(Done { manifest: m, line })
}
