//! Workers KV backup: keys listed with the cursor (1,000 a request, with expiration and
//! metadata), values fetched 100 at a time with bulk get, and any value that came back holding
//! U+FFFD fetched again alone as raw bytes (bulk get travels as text and mangles binary values).
//! The artifact is NDJSON, one `{key, value, base64, metadata, expiration}` a line, sorted by key;
//! `wrangler kv bulk put` takes the same fields as a JSON array.

use std::io::Write;

use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};

use crate::cloudflare::{Body, CfError, Client};

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
}

/// A namespace of the account, by title or id.
pub async fn find_namespace(
    client: &Client,
    name_or_id: &str,
) -> Result<Option<(String, String)>, CfError> {
    let all = client.all_pages("/storage/kv/namespaces", 100, &[]).await?;
    Ok(all
        .iter()
        .find(|n| n["id"] == name_or_id || n["title"] == name_or_id)
        .map(|n| {
            (
                n["id"].as_str().unwrap_or_default().to_string(),
                n["title"].as_str().unwrap_or_default().to_string(),
            )
        }))
}

fn key_path(ns: &str, kind: &str, key: &str) -> String {
    // encodeURIComponent, as wrangler sends keys.
    let encoded: String = key
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'!'
            | b'~'
            | b'*'
            | b'\''
            | b'('
            | b')' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("/storage/kv/namespaces/{ns}/{kind}/{encoded}")
}

/// Writes every live key of namespace `ns` as NDJSON into `out`.
pub async fn backup(client: &Client, ns: &str, out: &mut impl Write) -> Result<KvStats, KvError> {
    let mut stats = KvStats::default();
    let mut cursor = String::new();
    loop {
        let mut q = vec![("limit", "1000".to_string())];
        if !cursor.is_empty() {
            q.push(("cursor", cursor.clone()));
        }
        let page = client
            .call(
                Method::GET,
                &format!("/storage/kv/namespaces/{ns}/keys"),
                &q,
                Body::None,
            )
            .await?;
        let keys = page.result.as_array().cloned().unwrap_or_default();
        for batch in keys.chunks(100) {
            let names: Vec<&str> = batch.iter().filter_map(|k| k["name"].as_str()).collect();
            let got = client
                .call(
                    Method::POST,
                    &format!("/storage/kv/namespaces/{ns}/bulk/get"),
                    &[],
                    Body::Json(json!({ "keys": names, "type": "text" })),
                )
                .await?;
            for listed in batch {
                let name = listed["name"].as_str().unwrap_or_default();
                let (value, base64) = match &got.result["values"][name] {
                    Value::String(text) if !text.contains('\u{FFFD}') => (text.clone(), false),
                    Value::Null => return Err(KvError::Vanished(name.into())),
                    _ => {
                        stats.refetched += 1;
                        let (_, raw) = client
                            .bytes(Method::GET, &key_path(ns, "values", name), &[], Body::None)
                            .await?;
                        match String::from_utf8(raw) {
                            Ok(text) => (text, false),
                            Err(e) => (
                                base64::engine::general_purpose::STANDARD.encode(e.into_bytes()),
                                true,
                            ),
                        }
                    }
                };
                stats.keys += 1;
                stats.value_bytes += value.len() as u64;
                stats.binary += u64::from(base64);
                let mut line = json!({ "key": name, "value": value, "base64": base64 });
                if let Some(m) = listed.get("metadata").filter(|m| !m.is_null()) {
                    line["metadata"] = m.clone();
                    stats.with_metadata += 1;
                }
                if let Some(x) = listed.get("expiration").filter(|x| !x.is_null()) {
                    line["expiration"] = x.clone();
                    stats.with_expiration += 1;
                }
                serde_json::to_writer(&mut *out, &line).map_err(std::io::Error::other)?;
                out.write_all(b"\n")?;
            }
        }
        cursor = page
            .result_info
            .as_ref()
            .and_then(|i| i["cursor"].as_str())
            .unwrap_or("")
            .to_string();
        if cursor.is_empty() {
            break;
        }
    }
    out.flush()?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_encoded_as_wrangler_encodes_them() {
        assert_eq!(
            super::key_path("ns", "values", "user:1/a b"),
            "/storage/kv/namespaces/ns/values/user%3A1%2Fa%20b"
        );
        assert_eq!(
            super::key_path("ns", "values", "é"),
            "/storage/kv/namespaces/ns/values/%C3%A9"
        );
    }
}
