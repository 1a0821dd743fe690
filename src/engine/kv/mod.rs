//! Workers KV backup: keys listed with the cursor (1,000 a request, with expiration and
//! metadata), values fetched 100 at a time with bulk get, and any value that came back holding
//! U+FFFD fetched again alone as raw bytes (bulk get travels as text and mangles binary values).
//! The artifact is NDJSON, one `{key, value, base64, metadata, expiration}` a line, sorted by key;
//! `wrangler kv bulk put` takes the same fields as a JSON array.

pub mod restore;

use std::collections::BTreeMap;
use std::io::Write;

use base64::Engine as _;
use futures_util::StreamExt as _;
use serde_json::{Value, json};

use crate::cloudflare::kv::{ListedKey, MAX_BULK_GET};
use crate::cloudflare::{CfError, Client};
use crate::progress::{Cancelled, Progress};

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct KvStats {
    pub keys: u64,
    pub value_bytes: u64,
    /// Values fetched again one by one because bulk get mangled them.
    pub refetched: u64,
    pub binary: u64,
    pub with_metadata: u64,
    pub with_expiration: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error(transparent)]
    Cloudflare(#[from] CfError),
    #[error("writing the artifact: {0}")]
    Io(#[from] std::io::Error),
    #[error("the key `{0}` was listed but is gone: it changed during the backup; run it again")]
    Vanished(String),
    #[error(transparent)]
    Cancelled(#[from] Cancelled),
}

/// One listed key with its value as the artifact stores it.
struct Fetched {
    line: Value,
    refetched: bool,
    binary: bool,
    bytes: u64,
}

/// The values of one batch (≤ 100 keys) of a listing page, in the listing's order.
async fn fetch_batch(
    client: &Client,
    ns: &str,
    batch: &[ListedKey],
) -> Result<Vec<Fetched>, KvError> {
    let names: Vec<&str> = batch.iter().map(|k| k.name.as_str()).collect();
    let values = client.kv_bulk_get(ns, &names).await?;
    let mut out = Vec::with_capacity(batch.len());
    for listed in batch {
        let name = listed.name.as_str();
        let mut refetched = false;
        let (value, base64) = match values.get(name) {
            Some(Value::String(text)) if !text.contains('\u{FFFD}') => (text.clone(), false),
            None | Some(Value::Null) => return Err(KvError::Vanished(name.into())),
            _ => {
                refetched = true;
                match String::from_utf8(client.kv_value(ns, name).await?) {
                    Ok(text) => (text, false),
                    Err(e) => (
                        base64::engine::general_purpose::STANDARD.encode(e.into_bytes()),
                        true,
                    ),
                }
            }
        };
        let bytes = value.len() as u64;
        let mut line = json!({ "key": name, "value": value, "base64": base64 });
        if let Some(m) = listed.metadata.as_ref().filter(|m| !m.is_null()) {
            line["metadata"] = m.clone();
        }
        if let Some(x) = listed.expiration {
            line["expiration"] = json!(x);
        }
        out.push(Fetched {
            line,
            refetched,
            binary: base64,
            bytes,
        });
    }
    Ok(out)
}

/// Writes every live key of namespace `ns` (under `prefix`, if given) as NDJSON into `out`, in
/// the listing's order: `concurrency` bulk gets of a listing page in flight at once (the
/// client's budget still paces them), and the next page listed meanwhile, so a page boundary
/// is not a pause of a round trip.
pub async fn backup(
    client: &Client,
    ns: &str,
    prefix: Option<&str>,
    concurrency: usize,
    progress: &Progress,
    out: &mut impl Write,
) -> Result<KvStats, KvError> {
    let mut stats = KvStats::default();
    progress.phase("list and fetch", "keys", None);
    progress.check()?;
    let mut page = client.kv_keys(ns, prefix, None).await?;
    loop {
        let (keys, next) = page;
        // Owned batches: a stream of borrowed slices trips the compiler's higher-ranked
        // lifetime check once this future is spawned (the console does).
        let owned: Vec<Vec<ListedKey>> = keys
            .chunks(MAX_BULK_GET)
            .map(<[ListedKey]>::to_vec)
            .collect();
        let listing = async {
            match &next {
                Some(cursor) => {
                    progress.check()?;
                    Ok::<_, KvError>(Some(client.kv_keys(ns, prefix, Some(cursor)).await?))
                }
                None => Ok(None),
            }
        };
        let stats = &mut stats;
        let out = &mut *out;
        let fetching = async move {
            let mut batches = futures_util::stream::iter(owned)
                .map(|batch| async move {
                    progress.check()?;
                    fetch_batch(client, ns, &batch).await
                })
                .buffered(concurrency.max(1));
            while let Some(batch) = batches.next().await {
                let batch = batch?;
                progress.add(
                    batch.len() as u64,
                    batch.iter().map(|f| f.bytes).sum::<u64>(),
                );
                for f in batch {
                    stats.keys += 1;
                    stats.value_bytes += f.bytes;
                    stats.binary += u64::from(f.binary);
                    stats.refetched += u64::from(f.refetched);
                    stats.with_metadata += u64::from(f.line.get("metadata").is_some());
                    stats.with_expiration += u64::from(f.line.get("expiration").is_some());
                    serde_json::to_writer(&mut *out, &f.line).map_err(std::io::Error::other)?;
                    out.write_all(b"\n")?;
                }
            }
            Ok::<_, KvError>(())
        };
        let (listed, fetched) = futures_util::future::join(listing, fetching).await;
        fetched?;
        match listed? {
            Some(p) => page = p,
            None => break,
        }
    }
    out.flush()?;
    progress.finish();
    Ok(stats)
}

/// The method of an incremental KV backup: its artifact holds only the lines that changed
/// against its parent, and `{"key", "deleted": true}` for keys that are gone.
pub const INCREMENTAL: &str = "bulk-get-incremental";

/// A namespace's content: key → its artifact line.
pub type State = BTreeMap<String, String>;

/// What an incremental backup stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Delta {
    pub changed: u64,
    pub added: u64,
    pub deleted: u64,
    pub unchanged: u64,
}

fn key_of(line: &str) -> std::io::Result<String> {
    let v: Value = serde_json::from_str(line).map_err(std::io::Error::other)?;
    v["key"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| std::io::Error::other(format!("a KV artifact line has no key: {line}")))
}

/// Folds an artifact (a full backup or a delta) into `state`.
pub fn apply(state: &mut State, artifact: &[u8]) -> std::io::Result<()> {
    for line in artifact.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let line = std::str::from_utf8(line).map_err(std::io::Error::other)?;
        let v: Value = serde_json::from_str(line).map_err(std::io::Error::other)?;
        let key = key_of(line)?;
        if v["deleted"] == true {
            state.remove(&key);
        } else {
            state.insert(key, line.to_string());
        }
    }
    Ok(())
}

/// Writes what changed from `parent` to the full artifact `current` (sorted by key, as the
/// engine writes it).
pub fn delta(parent: &State, current: &[u8], out: &mut impl Write) -> std::io::Result<Delta> {
    let mut d = Delta::default();
    let mut seen = std::collections::BTreeSet::new();
    for line in current.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let line = std::str::from_utf8(line).map_err(std::io::Error::other)?;
        let key = key_of(line)?;
        match parent.get(&key) {
            Some(before) if before == line => d.unchanged += 1,
            before => {
                if before.is_some() {
                    d.changed += 1;
                } else {
                    d.added += 1;
                }
                out.write_all(line.as_bytes())?;
                out.write_all(b"\n")?;
            }
        }
        seen.insert(key);
    }
    for key in parent.keys().filter(|k| !seen.contains(*k)) {
        d.deleted += 1;
        serde_json::to_writer(&mut *out, &json!({ "key": key, "deleted": true }))
            .map_err(std::io::Error::other)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(d)
}

/// A state back as a full artifact (sorted by key).
pub fn render(state: &State) -> Vec<u8> {
    let mut out = Vec::new();
    for line in state.values() {
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_delta_applied_to_its_parent_gives_the_current_state() {
        let parent_artifact = b"{\"key\":\"a\",\"value\":\"1\"}\n{\"key\":\"b\",\"value\":\"2\"}\n{\"key\":\"c\",\"value\":\"3\"}\n";
        let current = b"{\"key\":\"a\",\"value\":\"1\"}\n{\"key\":\"b\",\"value\":\"22\"}\n{\"key\":\"d\",\"value\":\"4\"}\n";
        let mut state = super::State::new();
        super::apply(&mut state, parent_artifact).unwrap();
        let mut d = Vec::new();
        let stats = super::delta(&state, current, &mut d).unwrap();
        assert_eq!(
            stats,
            super::Delta {
                changed: 1,
                added: 1,
                deleted: 1,
                unchanged: 1
            }
        );
        assert_eq!(
            String::from_utf8(d.clone()).unwrap(),
            "{\"key\":\"b\",\"value\":\"22\"}\n{\"key\":\"d\",\"value\":\"4\"}\n{\"deleted\":true,\"key\":\"c\"}\n"
        );
        super::apply(&mut state, &d).unwrap();
        assert_eq!(super::render(&state), current.to_vec());
    }
}
