//! `cfdr backup kv <namespace>`: the KV engine's NDJSON, sealed.

use serde_json::json;

use super::{Done, Sealed, store};
use crate::cli::context;
use crate::cloudflare::Client;
use crate::engine::kv as engine;
use crate::exit::{Exit, Failure};
use crate::repo::{Kind, Repo, Target};

pub async fn run(
    repo: &Repo,
    client: &Client,
    namespace: &str,
    trigger: &str,
) -> anyhow::Result<Done> {
    let (id, title) = engine::find_namespace(client, namespace)
        .await
        .map_err(context::cloudflare_failed)?
        .ok_or_else(|| {
            Failure::usage(format!(
                "no KV namespace `{namespace}` in account `{}`; give its title or id",
                client.account()
            ))
        })?;
    let started = std::time::Instant::now();
    let sent_before = client.budget.state().sent;
    let mut tmp = tempfile::Builder::new()
        .prefix("cfdr-kv-")
        .suffix(".ndjson")
        .tempfile()?;
    let stats = {
        let mut w = std::io::BufWriter::new(tmp.as_file_mut());
        engine::backup(client, &id, &mut w)
            .await
            .map_err(|e| match e {
                engine::KvError::Cloudflare(c) => context::cloudflare_failed(c),
                other => Failure::new(Exit::Cloudflare, other.to_string()),
            })?
    };
    let requests = client.budget.state().sent - sent_before;
    let target = Target {
        account: Some(client.account().to_string()),
        id,
        name: title.clone(),
    };
    let stats_json = json!({ "keys": stats.keys, "value_bytes": stats.value_bytes, "binary": stats.binary,
        "refetched": stats.refetched, "with_metadata": stats.with_metadata, "with_expiration": stats.with_expiration,
        "requests": requests });
    let sealed = Sealed {
        kind: Kind::Kv,
        target,
        trigger,
        method: "bulk-get",
        artifact: "keys.ndjson",
        format: "kv-ndjson",
        stats: stats_json,
    };
    let m = store(repo, sealed, std::fs::File::open(tmp.path())?).await?;
    let line = format!(
        "backup {} of kv `{title}`: {} keys ({} binary, {} refetched), {requests} requests in {:.1}s",
        m.id,
        stats.keys,
        stats.binary,
        stats.refetched,
        started.elapsed().as_secs_f64()
    );
    Ok(Done { manifest: m, line })
}
