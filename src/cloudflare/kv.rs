//! Workers KV through the v4 API, typed: namespaces, cursor-paged keys, bulk get, raw values,
//! bulk write and bulk delete. Keys travel percent-encoded as wrangler encodes them
//! (`encodeURIComponent`); bulk bodies go as JSON bytes, never through a `serde_json::Value`.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::client::{Body, CfError, Client};

/// A bulk write or delete carries at most this many keys (the contract).
pub const MAX_BULK_ITEMS: usize = 10_000;
/// … and a bulk write's body at most this many bytes.
pub const MAX_BULK_BYTES: usize = 100 * 1000 * 1000;
/// Bulk get takes at most this many keys.
pub const MAX_BULK_GET: usize = 100;
/// KV refuses an expiration less than this far in the future.
pub const MIN_TTL_SECS: i64 = 60;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    pub id: String,
    pub title: String,
}

/// A key as the listing gives it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ListedKey {
    pub name: String,
    #[serde(default)]
    pub expiration: Option<i64>,
    #[serde(default)]
    pub metadata: Option<Value>,
}

/// One pair of a bulk write, as `PUT …/bulk` takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pair {
    pub key: String,
    pub value: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub base64: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

/// What a bulk write or delete says it did: keys it could not write should be sent again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct BulkOutcome {
    #[serde(default)]
    pub successful_key_count: u64,
    #[serde(default)]
    pub unsuccessful_keys: Vec<String>,
}

fn base(ns: &str) -> String {
    format!("/storage/kv/namespaces/{ns}")
}

/// The path of one key under `kind` (`values`, `metadata`), percent-encoded as
/// `encodeURIComponent` does.
pub fn key_path(ns: &str, kind: &str, key: &str) -> String {
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
    format!("{}/{kind}/{encoded}", base(ns))
}

fn decode<T: serde::de::DeserializeOwned>(path: &str, v: Value) -> Result<T, CfError> {
    serde_json::from_value(v).map_err(|e| CfError::Decode {
        method: "GET".into(),
        path: path.into(),
        message: e.to_string(),
    })
}

impl Client {
    /// Every namespace of the account.
    pub async fn kv_namespaces(&self) -> Result<Vec<Namespace>, CfError> {
        Ok(self
            .all_pages("/storage/kv/namespaces", 100, &[])
            .await?
            .iter()
            .map(|n| Namespace {
                id: n["id"].as_str().unwrap_or_default().to_string(),
                title: n["title"].as_str().unwrap_or_default().to_string(),
            })
            .collect())
    }

    /// A namespace by title or id.
    pub async fn kv_namespace(&self, title_or_id: &str) -> Result<Option<Namespace>, CfError> {
        Ok(self
            .kv_namespaces()
            .await?
            .into_iter()
            .find(|n| n.id == title_or_id || n.title == title_or_id))
    }

    pub async fn kv_create_namespace(&self, title: &str) -> Result<Namespace, CfError> {
        let a = self
            .call(
                Method::POST,
                "/storage/kv/namespaces",
                &[],
                Body::Json(json!({ "title": title })),
            )
            .await?;
        Ok(Namespace {
            id: a.result["id"].as_str().unwrap_or_default().to_string(),
            title: a.result["title"].as_str().unwrap_or(title).to_string(),
        })
    }

    /// One page (up to 1,000) of keys, with their expiration and metadata; the cursor of the
    /// next page, `None` after the last.
    /// Deletes a namespace and every key in it.
    pub async fn kv_delete_namespace(&self, id: &str) -> Result<(), CfError> {
        self.call(
            Method::DELETE,
            &format!("/storage/kv/namespaces/{id}"),
            &[],
            Body::None,
        )
        .await?;
        Ok(())
    }

    pub async fn kv_keys(
        &self,
        ns: &str,
        prefix: Option<&str>,
        cursor: Option<&str>,
    ) -> Result<(Vec<ListedKey>, Option<String>), CfError> {
        let path = format!("{}/keys", base(ns));
        let mut q = vec![("limit", "1000".to_string())];
        if let Some(p) = prefix.filter(|p| !p.is_empty()) {
            q.push(("prefix", p.to_string()));
        }
        let (a, next) = self.cursor_page(&path, &q, cursor).await?;
        Ok((decode(&path, a.result)?, next))
    }

    /// The text values of up to 100 keys (`None`: the key does not exist). Values that are
    /// not UTF-8 come back mangled (U+FFFD): read those with [`Client::kv_value`].
    pub async fn kv_bulk_get(
        &self,
        ns: &str,
        keys: &[&str],
    ) -> Result<serde_json::Map<String, Value>, CfError> {
        let a = self
            .call(
                Method::POST,
                &format!("{}/bulk/get", base(ns)),
                &[],
                Body::Json(json!({ "keys": keys, "type": "text" })),
            )
            .await?;
        Ok(match a.result.get("values") {
            Some(Value::Object(m)) => m.clone(),
            _ => serde_json::Map::new(),
        })
    }

    /// One value's raw bytes.
    pub async fn kv_value(&self, ns: &str, key: &str) -> Result<Vec<u8>, CfError> {
        let (_, raw) = self
            .bytes(Method::GET, &key_path(ns, "values", key), &[], Body::None)
            .await?;
        Ok(raw)
    }

    /// Writes up to 10,000 pairs (100 MB) in one request. `body` is the JSON array already
    /// encoded (see [`encode_pairs`]), so a retry does not encode it again.
    pub async fn kv_bulk_put(&self, ns: &str, body: Vec<u8>) -> Result<BulkOutcome, CfError> {
        let path = format!("{}/bulk", base(ns));
        let a = self
            .call(
                Method::PUT,
                &path,
                &[],
                Body::Bytes(body, "application/json"),
            )
            .await?;
        decode(&path, a.result)
    }

    /// Deletes up to 10,000 keys in one request.
    pub async fn kv_bulk_delete(&self, ns: &str, keys: &[String]) -> Result<BulkOutcome, CfError> {
        let path = format!("{}/bulk/delete", base(ns));
        let a = self
            .call(Method::POST, &path, &[], Body::Json(json!(keys)))
            .await?;
        decode(&path, a.result)
    }
}

/// The JSON array a bulk write sends.
pub fn encode_pairs(pairs: &[&Pair]) -> Vec<u8> {
    serde_json::to_vec(pairs).unwrap_or_default()
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
