//! The D1 routes under `/accounts/{account_id}/d1/database`.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::dump::{DumpOptions, dump};
use super::exec::{self, Outcome};
use super::transfer::{Task, TaskState, Transfer, TransferKind, signed_url, token};
use super::{DbHandle, HISTORY_DAYS, jsval};
use crate::emulator::clock::{now_ms, parse_timestamp_ms, rfc3339_ms};
use crate::emulator::control::lock;
use crate::emulator::envelope::{
    ApiError, ApiResult, ok, ok_paged, ok_status, parse_json, query_get, query_int, query_pairs,
};
use crate::emulator::state::Shared;
use crate::emulator::store::DbRecord;

type S = State<Arc<Shared>>;

fn invalid(what: &str) -> ApiError {
    ApiError::bad_request(7400, format!("Invalid property: {what}"))
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        7404,
        format!("The database {id} could not be found"),
    )
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        7500,
        format!("internal error; reference = {e}"),
    )
}

/// Resolves `database_id`: a UUID everywhere, a name too where `by_name` (only `GET /{id}`).
fn resolve(s: &Shared, id: &str, by_name: bool) -> Result<(DbRecord, DbHandle), ApiError> {
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
async fn run(
    s: Arc<Shared>,
    uuid: String,
    handle: DbHandle,
    batch: Vec<(String, Vec<rusqlite::types::Value>)>,
) -> Result<Vec<Outcome>, ApiError> {
    tokio::task::spawn_blocking(move || {
        let mut conn = lock(&handle);
        let execution =
            exec::execute(&mut conn, &batch, true).map_err(|m| ApiError::bad_request(7500, m))?;
        if execution.changed {
            s.d1.snapshot(&uuid, &mut conn).map_err(internal)?;
        }
        Ok(execution.outcomes)
    })
    .await
    .map_err(internal)?
}

pub async fn query(State(s): S, Path((_, id)): Path<(String, String)>, body: Bytes) -> ApiResult {
    let (record, handle) = resolve(&s, &id, false)?;
    let batch = parse_batch(&body)?;
    let outcomes = run(s.clone(), record.uuid, handle, batch).await?;
    let results: Vec<Value> = outcomes
        .into_iter()
        .map(|o| {
            let rows: Vec<Value> = o
                .rows
                .iter()
                .map(|row| {
                    let mut obj = serde_json::Map::new();
                    for (c, v) in o.columns.iter().zip(row) {
                        obj.insert(c.clone(), serde_json::to_value(v).unwrap_or(Value::Null));
                    }
                    Value::Object(obj)
                })
                .collect();
            json!({ "success": true, "results": rows, "meta": o.meta })
        })
        .collect();
    ok(results)
}

pub async fn raw(State(s): S, Path((_, id)): Path<(String, String)>, body: Bytes) -> ApiResult {
    let (record, handle) = resolve(&s, &id, false)?;
    let batch = parse_batch(&body)?;
    let outcomes = run(s.clone(), record.uuid, handle, batch).await?;
    // Rows keep D1's JavaScript number text: they go through RawValue, not through f64.
    let results: Vec<Value> = outcomes
        .into_iter()
        .map(|o| {
            let rows: Vec<Box<serde_json::value::RawValue>> =
                o.rows.iter().filter_map(|r| serde_json::value::to_raw_value(r).ok()).collect();
            json!({ "success": true, "results": { "columns": o.columns, "rows": rows }, "meta": o.meta })
        })
        .collect();
    ok(results)
}

// --- export ---------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportBody {
    output_format: String,
    #[serde(default)]
    dump_options: Option<DumpOptions>,
    #[serde(default)]
    current_bookmark: Option<String>,
}

fn task_answer(task: &mut Task) -> ApiResult {
    let (status, body) = task.poll_answer();
    ok_status(
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        body,
        None,
    )
}

pub async fn export(State(s): S, Path((_, id)): Path<(String, String)>, body: Bytes) -> ApiResult {
    let (record, handle) = resolve(&s, &id, false)?;
    let body: ExportBody = parse_json(&body, 7400)?;
    if body.output_format != "polling" {
        return Err(invalid("output_format => Expected 'polling'"));
    }
    let options = body.dump_options.unwrap_or_default();
    if options.no_data && options.no_schema {
        return Err(invalid(
            "dump_options => no_data and no_schema cannot both be set",
        ));
    }
    let key = |b: &str| (record.uuid.clone(), b.to_string());
    if let Some(bookmark) = body.current_bookmark {
        let mut tasks = lock(&s.tasks);
        let task = tasks
            .get_mut(&key(&bookmark))
            .filter(|t| t.kind == "export")
            .ok_or_else(|| {
                invalid(&format!(
                    "current_bookmark => no export is running at `{bookmark}`"
                ))
            })?;
        if task.stale(s.export_poll_timeout) {
            task.state = TaskState::Error("Export was cancelled: it was not polled".into());
        }
        task.last_poll = Instant::now();
        return task_answer(task);
    }
    let at_bookmark =
        s.d1.bookmark_at(&record.uuid, None)
            .map_err(internal)?
            .unwrap_or_default();
    let mut task = Task::new("export", &at_bookmark);
    task.messages.push(format!(
        "Generating an export of `{}` at bookmark {at_bookmark}",
        record.name
    ));
    lock(&s.tasks).insert(key(&at_bookmark), task);
    let shared = s.clone();
    let filename = format!("{}-{}.sql", record.uuid, at_bookmark);
    let task_key = key(&at_bookmark);
    tokio::task::spawn_blocking(move || {
        // The database serves nothing else while the export runs, as on D1.
        let result = dump(&lock(&handle), &options);
        let state = match result {
            Ok(sql) => {
                let t = token();
                let url = signed_url(shared.api_url(), &t, shared.signed_url_ttl);
                lock(&shared.transfers).insert(
                    t,
                    Transfer {
                        expires: Instant::now() + shared.signed_url_ttl,
                        kind: TransferKind::Export,
                        data: Some(sql.into_bytes()),
                    },
                );
                TaskState::Complete(json!({ "filename": filename, "signed_url": url }))
            }
            Err(e) => TaskState::Error(e),
        };
        if let Some(task) = lock(&shared.tasks).get_mut(&task_key)
            && matches!(task.state, TaskState::Active)
        {
            task.messages.push("Uploaded part 1".into());
            task.state = state;
        }
    });
    let mut tasks = lock(&s.tasks);
    let task = tasks
        .get_mut(&key(&at_bookmark))
        .ok_or_else(|| internal("export task vanished"))?;
    // The first answer is always `active`, as D1's is: clients must poll.
    let (_, mut answer) = task.poll_answer();
    answer["status"] = json!("active");
    answer["success"] = json!(true);
    if let Some(obj) = answer.as_object_mut() {
        obj.remove("result");
        obj.remove("error");
    }
    ok_status(StatusCode::ACCEPTED, answer, None)
}

// --- import ---------------------------------------------------------------------------------

pub async fn import(State(s): S, Path((_, id)): Path<(String, String)>, body: Bytes) -> ApiResult {
    let (record, handle) = resolve(&s, &id, false)?;
    let v: Value = parse_json(&body, 7400)?;
    let field = |name: &str| v.get(name).and_then(Value::as_str).map(str::to_string);
    match field("action").as_deref() {
        Some("init") => {
            let etag = field("etag").ok_or_else(|| invalid("etag => Required"))?;
            if etag.len() != 32 || !etag.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid(&format!(
                    "etag => `{etag}` is not an MD5 hex digest"
                )));
            }
            let filename = format!("{}-{}.sql", record.uuid, etag.to_ascii_lowercase());
            let uploaded = lock(&s.transfers).values().any(|t| {
                matches!(&t.kind, TransferKind::Upload { filename: f, .. } if *f == filename)
                    && t.data.is_some()
            });
            if uploaded {
                return start_import(&s, &record, handle, &filename, &etag).await;
            }
            let t = token();
            let url = signed_url(s.api_url(), &t, s.signed_url_ttl);
            lock(&s.transfers).insert(
                t,
                Transfer {
                    expires: Instant::now() + s.signed_url_ttl,
                    kind: TransferKind::Upload {
                        db: record.uuid.clone(),
                        filename: filename.clone(),
                        etag: etag.to_ascii_lowercase(),
                    },
                    data: None,
                },
            );
            ok(
                json!({ "success": true, "type": "import", "filename": filename, "upload_url": url }),
            )
        }
        Some("ingest") => {
            let etag = field("etag").ok_or_else(|| invalid("etag => Required"))?;
            let filename = field("filename").ok_or_else(|| invalid("filename => Required"))?;
            start_import(&s, &record, handle, &filename, &etag).await
        }
        Some("poll") => {
            let bookmark =
                field("current_bookmark").ok_or_else(|| invalid("current_bookmark => Required"))?;
            let mut tasks = lock(&s.tasks);
            let task = tasks
                .get_mut(&(record.uuid.clone(), bookmark.clone()))
                .filter(|t| t.kind == "import")
                .ok_or_else(|| {
                    invalid(&format!(
                        "current_bookmark => no import is running at `{bookmark}`"
                    ))
                })?;
            task_answer(task)
        }
        Some(other) => Err(invalid(&format!(
            "action => `{other}` must be init, ingest or poll"
        ))),
        None => Err(invalid("action => Required")),
    }
}

async fn start_import(
    s: &Arc<Shared>,
    record: &DbRecord,
    handle: DbHandle,
    filename: &str,
    etag: &str,
) -> ApiResult {
    let data = lock(&s.transfers)
        .values()
        .find(|t| matches!(&t.kind, TransferKind::Upload { filename: f, db, .. } if f == filename && *db == record.uuid))
        .and_then(|t| t.data.clone())
        .ok_or_else(|| invalid(&format!("filename => `{filename}` has not been uploaded")))?;
    let at_bookmark =
        s.d1.bookmark_at(&record.uuid, None)
            .map_err(internal)?
            .unwrap_or_default();
    let key = (record.uuid.clone(), at_bookmark.clone());
    let mut task = Task::new("import", &at_bookmark);
    task.messages.push(format!("Importing `{filename}`"));
    lock(&s.tasks).insert(key.clone(), task);
    let md5 = hex::encode(<md5::Md5 as md5::Digest>::digest(&data));
    let expected = etag.to_ascii_lowercase();
    let shared = s.clone();
    let uuid = record.uuid.clone();
    let task_key = key.clone();
    let job = tokio::task::spawn_blocking(move || {
        let state = if md5 != expected {
            TaskState::Error(format!(
                "The uploaded file's MD5 `{md5}` does not match the etag `{expected}`"
            ))
        } else {
            match String::from_utf8(data) {
                Err(_) => TaskState::Error("The uploaded file is not UTF-8 text".into()),
                Ok(sql) => {
                    let started = Instant::now();
                    let mut conn = lock(&handle);
                    match exec::execute(&mut conn, &[(sql, Vec::new())], false) {
                        Err(e) => TaskState::Error(e),
                        Ok(execution) => match shared.d1.snapshot(&uuid, &mut conn) {
                            Err(e) => TaskState::Error(e.to_string()),
                            Ok(final_bookmark) => {
                                let size: i64 = conn
                                    .query_row("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()", [], |r| r.get(0))
                                    .unwrap_or(0);
                                let changes = conn.total_changes();
                                TaskState::Complete(json!({
                                    "final_bookmark": final_bookmark,
                                    "num_queries": execution.statements,
                                    "meta": {
                                        "duration": started.elapsed().as_secs_f64() * 1000.0,
                                        "changes": changes, "rows_read": 0, "rows_written": changes,
                                        "changed_db": execution.changed, "size_after": size,
                                        "served_by_region": "WNAM", "served_by_primary": true,
                                    },
                                }))
                            }
                        },
                    }
                }
            }
        };
        if let Some(task) = lock(&shared.tasks).get_mut(&task_key) {
            task.state = state;
        }
    });
    // D1 waits about a second before answering an ingest, so a small import is already done.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), job).await;
    let mut tasks = lock(&s.tasks);
    let task = tasks
        .get_mut(&key)
        .ok_or_else(|| internal("import task vanished"))?;
    task_answer(task)
}

// --- Time Travel ----------------------------------------------------------------------------

fn timestamp_param(ts: &str) -> Result<i64, ApiError> {
    let at = parse_timestamp_ms(ts).ok_or_else(|| {
        invalid(&format!(
            "timestamp => `{ts}` is not an ISO 8601 date or Unix timestamp"
        ))
    })?;
    let now = now_ms();
    if at > now + 1000 {
        return Err(invalid(&format!("timestamp => `{ts}` is in the future")));
    }
    if at < now - HISTORY_DAYS * 86_400_000 {
        return Err(invalid(&format!(
            "timestamp => `{ts}` is more than {HISTORY_DAYS} days ago"
        )));
    }
    Ok(at)
}

pub async fn bookmark(
    State(s): S,
    Path((_, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let (record, _) = resolve(&s, &id, false)?;
    let q = query_pairs(q.as_deref());
    let at = query_get(&q, "timestamp")
        .filter(|t| !t.is_empty())
        .map(timestamp_param)
        .transpose()?;
    let bookmark =
        s.d1.bookmark_at(&record.uuid, at)
            .map_err(internal)?
            .ok_or_else(|| internal("no history"))?;
    ok(json!({ "bookmark": bookmark }))
}

pub async fn restore(
    State(s): S,
    Path((_, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let (record, handle) = resolve(&s, &id, false)?;
    let q = query_pairs(q.as_deref());
    let target = match (
        query_get(&q, "bookmark").filter(|b| !b.is_empty()),
        query_get(&q, "timestamp").filter(|t| !t.is_empty()),
    ) {
        (Some(b), _) => {
            if !super::is_bookmark(b) {
                return Err(invalid(&format!("bookmark => `{b}` is not a bookmark")));
            }
            b.to_string()
        }
        (None, Some(ts)) => {
            let at = timestamp_param(ts)?;
            s.d1.bookmark_at(&record.uuid, Some(at))
                .map_err(internal)?
                .ok_or_else(|| internal("no history"))?
        }
        (None, None) => return Err(invalid("bookmark => give a bookmark or a timestamp")),
    };
    let shared = s.clone();
    let uuid = record.uuid.clone();
    let restored = tokio::task::spawn_blocking(move || {
        let mut conn = lock(&handle);
        shared
            .d1
            .restore(&uuid, &mut conn, &target)
            .map(|r| (r, target))
    })
    .await
    .map_err(internal)?
    .map_err(internal)?;
    match restored {
        (Some((bookmark, previous)), target) => ok(json!({
            "bookmark": bookmark,
            "previous_bookmark": previous,
            "message": format!("Database restored to bookmark {target}"),
        })),
        (None, target) => Err(invalid(&format!(
            "bookmark => `{target}` is unknown or older than {HISTORY_DAYS} days"
        ))),
    }
}
