//! The D1 routes under `/accounts/{account_id}/d1/database`: databases and queries (the
//! long-running flows are in `flows.rs`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::exec::{self, Outcome};
use super::jsval::Cell;
use super::{DbHandle, jsval};
use crate::emulator::clock::rfc3339_ms;
use crate::emulator::control::lock;
use crate::emulator::envelope::{
    ApiError, ApiResult, ok, ok_paged, parse_json, query_get, query_int, query_pairs, read_only,
};
use crate::emulator::state::Shared;
use crate::emulator::store::DbRecord;

pub(super) type S = State<Arc<Shared>>;

pub(super) fn invalid(what: &str) -> ApiError {
    ApiError::bad_request(7400, format!("Invalid property: {what}"))
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        7404,
        format!("The database {id} could not be found"),
    )
}

pub(super) fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        7500,
        format!("internal error; reference = {e}"),
    )
}

/// Refuses a request to a database that an import is running into.
pub(super) fn unblocked(s: &Shared, uuid: &str) -> Result<(), ApiError> {
    super::D1::check_unblocked(&lock(&s.tasks), uuid)
        .map_err(|m| ApiError::new(StatusCode::CONFLICT, 7500, m))
}

/// Resolves `database_id`: a UUID everywhere, a name too where `by_name` (only `GET /{id}`).
pub(super) fn resolve(
    s: &Shared,
    id: &str,
    by_name: bool,
) -> Result<(DbRecord, DbHandle), ApiError> {
    if !by_name && uuid::Uuid::parse_str(id).is_err() {
        return Err(invalid("databaseId => Invalid uuid"));
    }
    let record =
        s.d1.store()
            .db_get(id, by_name)
            .map_err(internal)?
            .ok_or_else(|| not_found(id))?;
    let handle = s.d1.handle(&record.uuid).ok_or_else(|| not_found(id))?;
    Ok((record, handle))
}

fn summary(db: &DbRecord) -> Value {
    json!({
        "uuid": db.uuid,
        "name": db.name,
        "created_at": rfc3339_ms(db.created_ms),
        "version": db.version,
        "jurisdiction": db.jurisdiction,
    })
}

fn details(db: &DbRecord, handle: &DbHandle) -> Result<Value, ApiError> {
    let conn = lock(handle);
    let (tables, size): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT count(*) FROM sqlite_schema WHERE type='table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
                     AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\'),
                    (SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size())",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(internal)?;
    let mut v = summary(db);
    v["num_tables"] = json!(tables);
    v["file_size"] = json!(size);
    v["read_replication"] = json!({ "mode": db.read_replication });
    Ok(v)
}

pub async fn list(State(s): S, RawQuery(q): RawQuery) -> ApiResult {
    let q = query_pairs(q.as_deref());
    let page = query_int(&q, "page", 1, 1, u64::from(u32::MAX), 7400)?;
    let per_page = query_int(&q, "per_page", 1000, 10, 10_000, 7400)?;
    let all =
        s.d1.store()
            .db_list(query_get(&q, "name").filter(|n| !n.is_empty()))
            .map_err(internal)?;
    let total = all.len() as u64;
    let items: Vec<Value> = all
        .iter()
        .skip(((page - 1) * per_page) as usize)
        .take(per_page as usize)
        .map(summary)
        .collect();
    let info = json!({
        "page": page, "per_page": per_page, "count": items.len(), "total_count": total,
        "total_pages": total.div_ceil(per_page),
    });
    ok_paged(items, info)
}

#[derive(Deserialize)]
struct CreateBody {
    name: String,
    primary_location_hint: Option<String>,
    jurisdiction: Option<String>,
    read_replication: Option<ReplicationMode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplicationMode {
    mode: String,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && name.len() <= 64
}

pub async fn create(State(s): S, body: Bytes) -> ApiResult {
    let body: CreateBody = parse_json(&body, 7400)?;
    if !valid_name(&body.name) {
        return Err(invalid(&format!(
            "name => `{}` must match ^[a-zA-Z0-9][a-zA-Z0-9_-]*$",
            body.name
        )));
    }
    if let Some(h) = &body.primary_location_hint
        && !["wnam", "enam", "weur", "eeur", "apac", "oc"].contains(&h.as_str())
    {
        return Err(invalid(&format!("primary_location_hint => `{h}`")));
    }
    if let Some(j) = &body.jurisdiction
        && !["eu", "fedramp", "us"].contains(&j.as_str())
    {
        return Err(invalid(&format!("jurisdiction => `{j}`")));
    }
    if s.d1
        .store()
        .db_get(&body.name, true)
        .map_err(internal)?
        .is_some()
    {
        return Err(ApiError::bad_request(
            7502,
            format!("A database with the name `{}` already exists", body.name),
        ));
    }
    let mut record =
        s.d1.create(
            &body.name,
            body.primary_location_hint.as_deref(),
            body.jurisdiction.as_deref(),
        )
        .map_err(internal)?;
    if let Some(r) = body.read_replication {
        set_replication(&s, &mut record, &r.mode)?;
    }
    let handle =
        s.d1.handle(&record.uuid)
            .ok_or_else(|| not_found(&record.uuid))?;
    ok(details(&record, &handle)?)
}

fn set_replication(s: &Shared, record: &mut DbRecord, mode: &str) -> Result<(), ApiError> {
    if mode != "auto" && mode != "disabled" {
        return Err(invalid(&format!(
            "read_replication.mode => `{mode}` must be auto or disabled"
        )));
    }
    s.d1.store()
        .db_set_replication(&record.uuid, mode)
        .map_err(internal)?;
    record.read_replication = mode.to_string();
    Ok(())
}

pub async fn get(
    State(s): S,
    Path((_, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let (record, handle) = resolve(&s, &id, true)?;
    let mut v = details(&record, &handle)?;
    let q = query_pairs(q.as_deref());
    if let Some(fields) = query_get(&q, "fields").filter(|f| !f.is_empty()) {
        v["running_in_region"] = json!("WNAM");
        let mut picked = serde_json::Map::new();
        for f in fields.split(',').map(str::trim) {
            match v.get(f) {
                Some(x) => picked.insert(f.to_string(), x.clone()),
                None => return Err(invalid(&format!("fields => `{f}`"))),
            };
        }
        v = Value::Object(picked);
    }
    ok(v)
}

pub async fn update(State(s): S, Path((_, id)): Path<(String, String)>, body: Bytes) -> ApiResult {
    let (mut record, handle) = resolve(&s, &id, false)?;
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        read_replication: Option<ReplicationMode>,
    }
    let body: Body = parse_json(&body, 7400)?;
    if let Some(r) = body.read_replication {
        set_replication(&s, &mut record, &r.mode)?;
    }
    ok(details(&record, &handle)?)
}

pub async fn delete(State(s): S, Path((_, id)): Path<(String, String)>) -> ApiResult {
    let (record, _) = resolve(&s, &id, false)?;
    s.d1.delete(&record.uuid).map_err(internal)?;
    ok(Value::Null)
}

/// `200` with the results, marked [`read_only`] when
/// nothing changed.
fn answer(results: impl Serialize, changed: bool) -> ApiResult {
    if changed {
        ok(results)
    } else {
        read_only(ok(results))
    }
}

/// `{sql, params?}` or `{batch: [{sql, params?}]}`.
fn parse_batch(body: &[u8]) -> Result<Vec<(String, Vec<rusqlite::types::Value>)>, ApiError> {
    let v: Value = parse_json(body, 7400)?;
    let one = |item: &Value| -> Result<(String, Vec<rusqlite::types::Value>), ApiError> {
        let sql = match item.get("sql") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(Value::String(_)) => return Err(invalid("sql => Required")),
            Some(_) => return Err(invalid("sql => Expected string")),
            None => return Err(invalid("sql => Required")),
        };
        let params = match item.get("params") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a.iter().map(jsval::param_from_json).collect(),
            Some(_) => return Err(invalid("params => Expected array")),
        };
        Ok((sql, params))
    };
    match v.get("batch") {
        Some(Value::Array(items)) if !items.is_empty() => items.iter().map(one).collect(),
        Some(_) => Err(invalid("batch => Expected a non-empty array")),
        None if v.is_object() => Ok(vec![one(&v)?]),
        None => Err(invalid("body => Expected object")),
    }
}

/// Runs statements on a blocking thread, then records a bookmark if the database changed.
/// Returns the outcomes and whether anything changed.
async fn run(
    s: Arc<Shared>,
    uuid: String,
    handle: DbHandle,
    batch: Vec<(String, Vec<rusqlite::types::Value>)>,
) -> Result<(Vec<Outcome>, bool), ApiError> {
    tokio::task::spawn_blocking(move || {
        let mut conn = lock(&handle);
        let execution =
            exec::execute(&mut conn, &batch, true).map_err(|m| ApiError::bad_request(7500, m))?;
        if execution.changed {
            s.d1.snapshot(&uuid, &mut conn).map_err(internal)?;
        }
        Ok((execution.outcomes, execution.changed))
    })
    .await
    .map_err(internal)?
}

/// A statement's answer, rows as `/query` gives them (an object a row) or as `/raw` does
/// (columns, then arrays). Serialized straight to the body: values keep D1's number text.
#[derive(Serialize)]
struct Answer<'a, R> {
    meta: &'a exec::Meta,
    results: R,
    success: bool,
}

#[derive(Serialize)]
struct RawRows<'a> {
    columns: &'a [String],
    rows: Arrays<'a>,
}

/// Rows as arrays.
struct Arrays<'a>(&'a exec::Rows);

impl Serialize for Arrays<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter())
    }
}

/// Rows as objects, keys in column order; a name given twice keeps its first place and its
/// last value, as a JavaScript object built column by column does.
struct Objects<'a> {
    keys: Vec<(&'a str, usize)>,
    rows: &'a exec::Rows,
}

impl<'a> Objects<'a> {
    fn of(o: &'a exec::Outcome) -> Self {
        let mut keys: Vec<(&str, usize)> = Vec::new();
        for (i, c) in o.columns.iter().enumerate() {
            match keys.iter_mut().find(|(k, _)| *k == c.as_str()) {
                Some(k) => k.1 = i,
                None => keys.push((c, i)),
            }
        }
        Self {
            keys,
            rows: &o.rows,
        }
    }
}

impl Serialize for Objects<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        struct Row<'a>(&'a [(&'a str, usize)], &'a [Cell]);
        impl Serialize for Row<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(self.0.len()))?;
                for (k, i) in self.0 {
                    m.serialize_entry(k, &self.1[*i])?;
                }
                m.end()
            }
        }
        let mut seq = s.serialize_seq(Some(self.rows.len()))?;
        for r in self.rows.iter() {
            seq.serialize_element(&Row(&self.keys, r))?;
        }
        seq.end()
    }
}

pub async fn query(State(s): S, Path((_, id)): Path<(String, String)>, body: Bytes) -> ApiResult {
    let (record, handle) = resolve(&s, &id, false)?;
    unblocked(&s, &record.uuid)?;
    let batch = parse_batch(&body)?;
    let (outcomes, changed) = run(s.clone(), record.uuid, handle, batch).await?;
    let results: Vec<Answer<'_, Objects<'_>>> = outcomes
        .iter()
        .map(|o| Answer {
            meta: &o.meta,
            results: Objects::of(o),
            success: true,
        })
        .collect();
    answer(results, changed)
}

pub async fn raw(State(s): S, Path((_, id)): Path<(String, String)>, body: Bytes) -> ApiResult {
    let (record, handle) = resolve(&s, &id, false)?;
    unblocked(&s, &record.uuid)?;
    let batch = parse_batch(&body)?;
    let (outcomes, changed) = run(s.clone(), record.uuid, handle, batch).await?;
    let results: Vec<Answer<'_, RawRows<'_>>> = outcomes
        .iter()
        .map(|o| Answer {
            meta: &o.meta,
            results: RawRows {
                columns: &o.columns,
                rows: Arrays(&o.rows),
            },
            success: true,
        })
        .collect();
    answer(results, changed)
}
