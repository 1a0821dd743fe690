//! Workers KV routes under `/accounts/{account_id}/storage/kv/namespaces`, with KV's limits:
//! key 512 bytes, value 25 MiB, metadata 1,024 bytes, TTL at least 60 s, bulk 10,000 items or
//! 100 MB, bulk get 100 keys. Expired keys disappear.

mod multipart;

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};

use super::clock::{now_ms, now_secs};
use super::envelope::{
    ApiError, ApiResult, ok, ok_paged, parse_json, query_get, query_int, query_pairs,
};
use super::state::Shared;
use super::store::{KvEntry, Namespace};

pub const MAX_KEY_BYTES: usize = 512;
pub const MAX_VALUE_BYTES: usize = 25 * 1024 * 1024;
pub const MAX_METADATA_BYTES: usize = 1024;
pub const MAX_BULK_ITEMS: usize = 10_000;
pub const MAX_BULK_BYTES: usize = 100 * 1024 * 1024;
pub const MAX_BULK_GET: usize = 100;
pub const MIN_TTL: i64 = 60;

type S = State<Arc<Shared>>;

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        10001,
        format!("internal error: {e}"),
    )
}

fn ns_json(ns: &Namespace) -> Value {
    json!({ "id": ns.id, "title": ns.title, "supports_url_encoding": true })
}

fn namespace(s: &Shared, id: &str) -> Result<Namespace, ApiError> {
    s.store.ns_get(id).map_err(internal)?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            10013,
            format!("namespace `{id}` not found"),
        )
    })
}

fn check_title(title: &str) -> Result<(), ApiError> {
    if title.trim().is_empty() || title.chars().count() > 512 {
        return Err(ApiError::bad_request(
            10019,
            "title must be 1 to 512 characters",
        ));
    }
    Ok(())
}

pub async fn ns_list(State(s): S, RawQuery(q): RawQuery) -> ApiResult {
    let q = query_pairs(q.as_deref());
    let page = query_int(&q, "page", 1, 1, u64::from(u32::MAX), 10001)?;
    let per_page = query_int(&q, "per_page", 20, 1, 1000, 10001)?;
    let by_title = match query_get(&q, "order") {
        None | Some("") | Some("id") => false,
        Some("title") => true,
        Some(o) => {
            return Err(ApiError::bad_request(
                10001,
                format!("order `{o}` must be id or title"),
            ));
        }
    };
    let desc = match query_get(&q, "direction") {
        None | Some("") | Some("asc") => false,
        Some("desc") => true,
        Some(d) => {
            return Err(ApiError::bad_request(
                10001,
                format!("direction `{d}` must be asc or desc"),
            ));
        }
    };
    let (items, total) = s
        .store
        .ns_list(by_title, desc, page, per_page)
        .map_err(internal)?;
    let items: Vec<Value> = items.iter().map(ns_json).collect();
    let info = json!({ "page": page, "per_page": per_page, "count": items.len(), "total_count": total, "total_pages": total.div_ceil(per_page) });
    ok_paged(items, info)
}

#[derive(Deserialize)]
struct TitleBody {
    title: String,
}

pub async fn ns_create(State(s): S, body: Bytes) -> ApiResult {
    let body: TitleBody = parse_json(&body, 10026)?;
    check_title(&body.title)?;
    let id = hex::encode(rand::random::<[u8; 16]>());
    match s
        .store
        .ns_create(&id, &body.title, now_ms())
        .map_err(internal)?
    {
        Some(ns) => ok(ns_json(&ns)),
        None => Err(ApiError::bad_request(
            10014,
            "a namespace with this account ID and title already exists",
        )),
    }
}

pub async fn ns_get(State(s): S, Path((_, id)): Path<(String, String)>) -> ApiResult {
    ok(ns_json(&namespace(&s, &id)?))
}

pub async fn ns_rename(
    State(s): S,
    Path((_, id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    namespace(&s, &id)?;
    let body: TitleBody = parse_json(&body, 10026)?;
    check_title(&body.title)?;
    if s.store.ns_title_taken(&body.title, &id).map_err(internal)? {
        return Err(ApiError::bad_request(
            10014,
            "a namespace with this account ID and title already exists",
        ));
    }
    s.store.ns_rename(&id, &body.title).map_err(internal)?;
    ok(ns_json(&namespace(&s, &id)?))
}

pub async fn ns_delete(State(s): S, Path((_, id)): Path<(String, String)>) -> ApiResult {
    namespace(&s, &id)?;
    s.store.ns_delete(&id).map_err(internal)?;
    ok(Value::Null)
}

fn encode_cursor(key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.as_bytes())
}

fn decode_cursor(cursor: &str) -> Result<String, ApiError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            ApiError::bad_request(
                10020,
                format!("invalid cursor `{cursor}`: pass the cursor of the previous page"),
            )
        })
}

fn metadata_json(m: &Option<String>) -> Option<Value> {
    m.as_ref().and_then(|m| serde_json::from_str(m).ok())
}

pub async fn keys(
    State(s): S,
    Path((_, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    namespace(&s, &id)?;
    let q = query_pairs(q.as_deref());
    let limit = query_int(&q, "limit", 1000, 10, 1000, 10001)?;
    let prefix = query_get(&q, "prefix").unwrap_or("");
    let after = query_get(&q, "cursor")
        .filter(|c| !c.is_empty())
        .map(decode_cursor)
        .transpose()?;
    let mut entries = s
        .store
        .kv_list(&id, prefix, after.as_deref(), limit, now_secs())
        .map_err(internal)?;
    let more = entries.len() as u64 > limit;
    entries.truncate(limit as usize);
    let cursor = match (more, entries.last()) {
        (true, Some(last)) => encode_cursor(&last.key),
        _ => String::new(),
    };
    let items: Vec<Value> = entries
        .iter()
        .map(|e| {
            let mut v = json!({ "name": e.key });
            if let Some(x) = e.expiration {
                v["expiration"] = json!(x);
            }
            if let Some(m) = metadata_json(&e.metadata) {
                v["metadata"] = m;
            }
            v
        })
        .collect();
    let info = json!({ "count": items.len(), "cursor": cursor });
    ok_paged(items, info)
}

fn key_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, 10009, "get: 'key not found'")
}

fn check_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key == "." || key == ".." {
        return Err(ApiError::bad_request(
            10019,
            format!("invalid key `{key}`: keys cannot be empty, `.` or `..`"),
        ));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(ApiError::new(
            StatusCode::URI_TOO_LONG,
            10033,
            format!(
                "key of {} bytes exceeds the limit of {MAX_KEY_BYTES} bytes",
                key.len()
            ),
        ));
    }
    Ok(())
}

fn check_value(len: usize) -> Result<(), ApiError> {
    if len > MAX_VALUE_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            10011,
            format!("value of {len} bytes exceeds the limit of {MAX_VALUE_BYTES} bytes"),
        ));
    }
    Ok(())
}

fn check_metadata(m: &Value) -> Result<String, ApiError> {
    let text = m.to_string();
    if text.len() > MAX_METADATA_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            10012,
            format!(
                "metadata of {} bytes exceeds the limit of {MAX_METADATA_BYTES} bytes",
                text.len()
            ),
        ));
    }
    Ok(text)
}

/// Expiration from `expiration` (absolute) and `expiration_ttl` (wins when both are set).
fn expiration(absolute: Option<i64>, ttl: Option<i64>) -> Result<Option<i64>, ApiError> {
    let now = now_secs();
    if let Some(ttl) = ttl {
        if ttl < MIN_TTL {
            return Err(ApiError::bad_request(
                10016,
                format!(
                    "Invalid expiration_ttl of {ttl}. Expiration TTL must be at least {MIN_TTL}."
                ),
            ));
        }
        return Ok(Some(now + ttl));
    }
    if let Some(at) = absolute {
        if at < now + MIN_TTL {
            return Err(ApiError::bad_request(
                10017,
                format!(
                    "Invalid expiration of {at}. Expiration times must be at least {MIN_TTL} seconds in the future."
                ),
            ));
        }
        return Ok(Some(at));
    }
    Ok(None)
}

fn int_param(q: &[(String, String)], key: &str) -> Result<Option<i64>, ApiError> {
    query_get(q, key)
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse::<i64>().map_err(|_| {
                ApiError::bad_request(10016, format!("{key} `{v}` is not a whole number"))
            })
        })
        .transpose()
}

pub async fn value_get(
    State(s): S,
    Path((_, id, key)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    namespace(&s, &id)?;
    let entry = s
        .store
        .kv_get(&id, &key, now_secs())
        .map_err(internal)?
        .ok_or_else(key_not_found)?;
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from(entry.value),
    )
        .into_response();
    if let Some(x) = entry.expiration
        && let Ok(v) = x.to_string().parse()
    {
        response.headers_mut().insert("expiration", v);
    }
    Ok(response)
}

pub async fn metadata_get(
    State(s): S,
    Path((_, id, key)): Path<(String, String, String)>,
) -> ApiResult {
    namespace(&s, &id)?;
    let entry = s
        .store
        .kv_get(&id, &key, now_secs())
        .map_err(internal)?
        .ok_or_else(key_not_found)?;
    ok(metadata_json(&entry.metadata).unwrap_or(Value::Null))
}

pub async fn value_put(
    State(s): S,
    Path((_, id, key)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    namespace(&s, &id)?;
    check_key(&key)?;
    let q = query_pairs(q.as_deref());
    let expiration = expiration(
        int_param(&q, "expiration")?,
        int_param(&q, "expiration_ttl")?,
    )?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (value, metadata) = if content_type.starts_with("multipart/form-data") {
        let parts =
            multipart::parse(content_type, &body).map_err(|e| ApiError::bad_request(10026, e))?;
        let value = parts
            .iter()
            .find(|p| p.name == "value")
            .map(|p| p.data.clone())
            .unwrap_or_default();
        let metadata = match parts.iter().find(|p| p.name == "metadata") {
            Some(p) => {
                let v: Value = serde_json::from_slice(&p.data).map_err(|e| {
                    ApiError::bad_request(10026, format!("metadata is not valid JSON: {e}"))
                })?;
                Some(check_metadata(&v)?)
            }
            None => None,
        };
        (value, metadata)
    } else {
        (body.to_vec(), None)
    };
    check_value(value.len())?;
    s.store
        .kv_put_many(
            &id,
            &[KvEntry {
                key,
                value,
                expiration,
                metadata,
            }],
        )
        .map_err(internal)?;
    ok(Value::Null)
}

pub async fn value_delete(
    State(s): S,
    Path((_, id, key)): Path<(String, String, String)>,
) -> ApiResult {
    namespace(&s, &id)?;
    s.store.kv_delete_many(&id, &[key]).map_err(internal)?;
    ok(Value::Null)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkItem {
    key: String,
    value: String,
    #[serde(default)]
    base64: bool,
    #[serde(default)]
    expiration: Option<i64>,
    #[serde(default)]
    expiration_ttl: Option<i64>,
    #[serde(default)]
    metadata: Option<Value>,
}

pub async fn bulk_put(
    State(s): S,
    Path((_, id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    namespace(&s, &id)?;
    if body.len() > MAX_BULK_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            10011,
            format!("bulk body of {} bytes exceeds 100 MB", body.len()),
        ));
    }
    let items: Vec<BulkItem> = parse_json(&body, 10026)?;
    if items.len() > MAX_BULK_ITEMS {
        return Err(ApiError::bad_request(
            10026,
            format!(
                "{} items exceed the limit of {MAX_BULK_ITEMS} a request",
                items.len()
            ),
        ));
    }
    let mut entries = Vec::with_capacity(items.len());
    for item in items {
        check_key(&item.key)?;
        let value = if item.base64 {
            base64::engine::general_purpose::STANDARD
                .decode(item.value.as_bytes())
                .map_err(|e| {
                    ApiError::bad_request(
                        10026,
                        format!("value of `{}` is not valid base64: {e}", item.key),
                    )
                })?
        } else {
            item.value.into_bytes()
        };
        check_value(value.len())?;
        let metadata = item
            .metadata
            .as_ref()
            .filter(|m| !m.is_null())
            .map(check_metadata)
            .transpose()?;
        entries.push(KvEntry {
            key: item.key,
            value,
            expiration: expiration(item.expiration, item.expiration_ttl)?,
            metadata,
        });
    }
    s.store.kv_put_many(&id, &entries).map_err(internal)?;
    ok(json!({ "successful_key_count": entries.len(), "unsuccessful_keys": [] }))
}

pub async fn bulk_delete(
    State(s): S,
    Path((_, id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    namespace(&s, &id)?;
    let keys: Vec<String> = parse_json(&body, 10026)?;
    if keys.len() > MAX_BULK_ITEMS {
        return Err(ApiError::bad_request(
            10026,
            format!(
                "{} keys exceed the limit of {MAX_BULK_ITEMS} a request",
                keys.len()
            ),
        ));
    }
    s.store.kv_delete_many(&id, &keys).map_err(internal)?;
    ok(json!({ "successful_key_count": keys.len(), "unsuccessful_keys": [] }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkGet {
    keys: Vec<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default, rename = "withMetadata")]
    with_metadata: bool,
}

pub async fn bulk_get(
    State(s): S,
    Path((_, id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    namespace(&s, &id)?;
    let req: BulkGet = parse_json(&body, 10026)?;
    if req.keys.is_empty() || req.keys.len() > MAX_BULK_GET {
        return Err(ApiError::bad_request(
            10026,
            format!("give 1 to {MAX_BULK_GET} keys, not {}", req.keys.len()),
        ));
    }
    let as_json = match req.kind.as_deref() {
        None | Some("text") => false,
        Some("json") => true,
        Some(t) => {
            return Err(ApiError::bad_request(
                10026,
                format!("type `{t}` must be text or json"),
            ));
        }
    };
    let now = now_secs();
    let mut values = serde_json::Map::new();
    for key in &req.keys {
        check_key(key)?;
        let entry = s.store.kv_get(&id, key, now).map_err(internal)?;
        let v = match entry {
            None => Value::Null,
            Some(e) => {
                // Values travel as text: bytes that are not UTF-8 become U+FFFD, as on Cloudflare.
                let text = String::from_utf8_lossy(&e.value).into_owned();
                let value = if as_json {
                    serde_json::from_str(&text).map_err(|_| {
                        ApiError::bad_request(
                            10026,
                            format!("the value of `{key}` is not JSON; ask for type text"),
                        )
                    })?
                } else {
                    Value::String(text)
                };
                if req.with_metadata {
                    let mut v = json!({ "value": value, "metadata": metadata_json(&e.metadata) });
                    if let Some(x) = e.expiration {
                        v["expiration"] = json!(x);
                    }
                    v
                } else {
                    value
                }
            }
        };
        values.insert(key.clone(), v);
    }
    ok(json!({ "values": values }))
}
