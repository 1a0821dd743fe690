//! R2 in the emulator: the v4 bucket routes (`/accounts/{account_id}/r2/buckets`) and, in
//! [`s3`], R2's S3 endpoint. Both read and write the same [`objects::R2`] store, so the two views
//! always agree.

pub mod objects;
pub mod s3;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::clock::rfc3339_ms;
use super::envelope::{
    ApiError, ApiResult, ok, ok_paged, parse_json, query_get, query_int, query_pairs,
};
use super::state::Shared;
use objects::BucketRecord;

type S = State<Arc<Shared>>;

#[derive(Serialize, Deserialize, Clone)]
struct BucketInfo {
    name: String,
    creation_date: String,
    location: String,
    jurisdiction: String,
    storage_class: String,
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        10001,
        format!("internal error: {e}"),
    )
}

fn no_such_bucket(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        10006,
        format!("The specified bucket does not exist. (`{name}`)"),
    )
}

pub fn valid_bucket_name(name: &str) -> bool {
    let b = name.as_bytes();
    (3..=64).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn info(b: BucketRecord) -> BucketInfo {
    BucketInfo {
        name: b.name,
        creation_date: rfc3339_ms(b.created_ms),
        location: b.location,
        jurisdiction: b.jurisdiction,
        storage_class: b.storage_class,
    }
}

/// Every bucket, by name.
pub fn bucket_names(s: &Shared) -> rusqlite::Result<Vec<String>> {
    Ok(s.r2.buckets()?.into_iter().map(|b| b.name).collect())
}

pub async fn list(State(s): S, RawQuery(q): RawQuery) -> ApiResult {
    let q = query_pairs(q.as_deref());
    let per_page = query_int(&q, "per_page", 20, 1, 1000, 10001)?;
    let contains = query_get(&q, "name_contains").unwrap_or("");
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
    let after = match query_get(&q, "cursor").filter(|c| !c.is_empty()) {
        Some(c) => Some(
            String::from_utf8(
                hex::decode(c)
                    .map_err(|_| ApiError::bad_request(10001, format!("invalid cursor `{c}`")))?,
            )
            .map_err(|_| ApiError::bad_request(10001, format!("invalid cursor `{c}`")))?,
        ),
        None => query_get(&q, "start_after")
            .filter(|c| !c.is_empty())
            .map(str::to_string),
    };
    let mut names: Vec<String> = bucket_names(&s)
        .map_err(internal)?
        .into_iter()
        .filter(|n| n.contains(contains))
        .collect();
    if desc {
        names.reverse();
    }
    let names: Vec<String> = names
        .into_iter()
        .filter(|n| match &after {
            Some(a) if desc => n < a,
            Some(a) => n > a,
            None => true,
        })
        .collect();
    let page: Vec<&String> = names.iter().take(per_page as usize).collect();
    let cursor = if names.len() > page.len() {
        page.last()
            .map(|n| hex::encode(n.as_bytes()))
            .unwrap_or_default()
    } else {
        String::new()
    };
    let buckets: Vec<BucketInfo> = page
        .iter()
        .filter_map(|n| s.r2.bucket(n).ok().flatten().map(info))
        .collect();
    ok_paged(
        json!({ "buckets": buckets }),
        json!({ "cursor": cursor, "per_page": per_page }),
    )
}

#[derive(Deserialize)]
struct CreateBody {
    name: String,
    #[serde(rename = "locationHint")]
    location_hint: Option<String>,
    #[serde(rename = "storageClass")]
    storage_class: Option<String>,
}

pub async fn create(State(s): S, body: Bytes) -> ApiResult {
    let body: CreateBody = parse_json(&body, 10040)?;
    if !valid_bucket_name(&body.name) {
        return Err(ApiError::bad_request(
            10005,
            format!(
                "The bucket name `{}` is not valid: use 3 to 64 characters of a-z, 0-9 and -, starting and ending with a letter or digit",
                body.name
            ),
        ));
    }
    let location = body
        .location_hint
        .unwrap_or_else(|| "wnam".into())
        .to_ascii_lowercase();
    if !["apac", "eeur", "enam", "weur", "wnam", "oc"].contains(&location.as_str()) {
        return Err(ApiError::bad_request(
            10040,
            format!("locationHint `{location}` is not a location"),
        ));
    }
    let storage_class = body.storage_class.unwrap_or_else(|| "Standard".into());
    if storage_class != "Standard" && storage_class != "InfrequentAccess" {
        return Err(ApiError::bad_request(
            10040,
            format!("storageClass `{storage_class}` must be Standard or InfrequentAccess"),
        ));
    }
    let record = BucketRecord {
        name: body.name.clone(),
        created_ms: super::clock::now_ms(),
        location,
        jurisdiction: "default".into(),
        storage_class,
    };
    if !s.r2.create_bucket(&record).map_err(internal)? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            10004,
            "The bucket you tried to create already exists, and you own it.",
        ));
    }
    ok(info(record))
}

pub async fn get(State(s): S, Path((_, name)): Path<(String, String)>) -> ApiResult {
    let b = s.r2.bucket(&name).map_err(internal)?;
    ok(info(b.ok_or_else(|| no_such_bucket(&name))?))
}

pub async fn delete(State(s): S, Path((_, name)): Path<(String, String)>) -> ApiResult {
    match s.r2.delete_bucket(&name).map_err(internal)? {
        None => Err(no_such_bucket(&name)),
        Some(false) => Err(ApiError::new(
            StatusCode::CONFLICT,
            10008,
            "The bucket you tried to delete is not empty.",
        )),
        Some(true) => ok(Value::Object(Default::default())),
    }
}
