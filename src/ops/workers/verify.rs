//! A deployment's verification (WORKERS.md §4.7): read back (the newest deployment is the one
//! made, with the split asked for), read again after a settling delay (a concurrent deploy could
//! win), and the Worker itself asked over HTTP which version answers.

use std::time::Duration;

use super::deploy::{Options, live};
use super::rollback::{Share, label, same};
use crate::cloudflare::Client;
use crate::cloudflare::workers::probe;
use crate::ops::{Error, Result};
use crate::progress::Progress;

/// `id` is the newest deployment of `script` and carries `stage`.
pub(super) async fn still_live(
    c: &Client,
    script: &str,
    id: &str,
    stage: &[Share],
) -> Result<String> {
    let now = live(c, script).await?;
    if now.id != id {
        return Err(Error::Verification(format!(
            "Worker `{script}`: deployment {id} is no longer live — {} ({}) is; someone deployed over it",
            now.id,
            now.message.as_deref().unwrap_or("no message")
        )));
    }
    if !same(stage, &now.versions) {
        return Err(Error::Verification(format!(
            "Worker `{script}`: deployment {id} carries {:?}, not the {} asked for",
            now.versions,
            label(stage)
        )));
    }
    Ok(format!("deployment {id} is live with {}", label(stage)))
}

/// The checks after a deployment: read back, read again after the settling delay, probed.
pub(super) async fn verify(
    c: &Client,
    script: &str,
    id: &str,
    stage: &[Share],
    opts: &Options,
    progress: &Progress,
) -> Result<Vec<String>> {
    let mut out = vec![format!(
        "read back: {}",
        still_live(c, script, id, stage).await?
    )];
    progress.check()?;
    tokio::time::sleep(opts.settle).await;
    still_live(c, script, id, stage).await?;
    out.push(format!(
        "read again after {}: still live",
        humantime::format_duration(opts.settle)
    ));
    if let Some(url) = &opts.probe {
        out.push(probe_check(url, script, stage).await?);
    }
    Ok(out)
}

/// Requests sent unpinned when probing.
const PROBES: usize = 10;

/// The Worker asked over HTTP which version answers: each version of `stage` pinned by
/// `Cloudflare-Workers-Version-Overrides` must answer, and unpinned requests only ever reach the
/// versions `stage` gives traffic. New deployments take a couple of seconds to reach every
/// location, so a mismatch is tried again twice, a second apart.
pub async fn probe_check(url: &str, script: &str, stage: &[Share]) -> Result<String> {
    let url = url.replace("{script}", script);
    let mut last = String::new();
    for attempt in 0..3 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        match probe_once(&url, script, stage).await? {
            Ok(line) => return Ok(line),
            Err(why) => last = why,
        }
    }
    Err(Error::Verification(format!(
        "Worker `{script}` over HTTP ({url}): {last}"
    )))
}

async fn probe_once(
    url: &str,
    script: &str,
    stage: &[Share],
) -> Result<std::result::Result<String, String>> {
    let timeout = Duration::from_secs(10);
    let name = |id: &str| {
        stage
            .iter()
            .find(|s| s.version_id == id)
            .and_then(|s| s.number)
            .map_or_else(|| id.chars().take(8).collect(), |n| format!("v{n}"))
    };
    let serving: Vec<&Share> = stage.iter().filter(|s| s.percentage > 0.0).collect();
    for s in &serving {
        let got = probe(url, Some((script, &s.version_id)), timeout).await?;
        if got.as_deref() != Some(s.version_id.as_str()) {
            return Ok(Err(format!(
                "pinned to {}, it answered as {}",
                name(&s.version_id),
                got.as_deref().unwrap_or("no version")
            )));
        }
    }
    // Each version that answered, with how many of the unpinned requests it took.
    let mut seen: Vec<(String, usize)> = Vec::new();
    for _ in 0..PROBES {
        let got = probe(url, None, timeout).await?.unwrap_or_default();
        if !serving.iter().any(|s| s.version_id == got) {
            return Ok(Err(format!(
                "a request was answered by {}, which {} gives no traffic",
                if got.is_empty() {
                    "no version".into()
                } else {
                    got.clone()
                },
                label(stage)
            )));
        }
        match seen.iter_mut().find(|(id, _)| *id == got) {
            Some((_, n)) => *n += 1,
            None => seen.push((got, 1)),
        }
    }
    Ok(Ok(format!(
        "probe: {PROBES} requests answered by {}; each version answered when pinned",
        seen.iter()
            .map(|(id, n)| format!("{} ({n})", name(id)))
            .collect::<Vec<_>>()
            .join(" and ")
    )))
}
