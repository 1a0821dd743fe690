//! D1's long-running flows: export and import (polled by bookmark, files behind presigned URLs)
//! and Time Travel (bookmarks and in-place restores).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::dump::{DumpOptions, dump};
use super::exec;
use super::routes::{S, internal, invalid, resolve, unblocked};
use super::transfer::{Task, TaskState, Transfer, TransferKind, signed_url, token};
use super::{DbHandle, HISTORY_DAYS, MAX_RESTORES};
use crate::emulator::clock::{now_ms, parse_timestamp_ms};
use crate::emulator::control::lock;
use crate::emulator::envelope::{
    ApiError, ApiResult, ok, ok_status, parse_json, query_get, query_pairs, read_only,
};
use crate::emulator::state::Shared;
use crate::emulator::store::DbRecord;

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
    if body.current_bookmark.is_none() {
        unblocked(&s, &record.uuid)?;
    }
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
        return read_only(task_answer(task));
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
    // An export reads the database; it changes nothing.
    read_only(ok_status(StatusCode::ACCEPTED, answer, None))
}

// --- import ---------------------------------------------------------------------------------

pub async fn import(State(s): S, Path((_, id)): Path<(String, String)>, body: Bytes) -> ApiResult {
    let (record, handle) = resolve(&s, &id, false)?;
    let v: Value = parse_json(&body, 7400)?;
    let field = |name: &str| v.get(name).and_then(Value::as_str).map(str::to_string);
    if field("action").as_deref() != Some("poll") {
        unblocked(&s, &record.uuid)?;
    }
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
            read_only(task_answer(task))
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
    unblocked(&s, &record.uuid)?;
    if let Err(wait) = s.d1.admit_restore(&record.uuid, now_ms()) {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            7500,
            format!(
                "Time Travel allows {MAX_RESTORES} restores per 10 minutes per database; \
                 try again in {wait} s"
            ),
        );
        e.headers.push((
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(wait),
        ));
        return Err(e);
    }
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
        (None, target) => {
            s.d1.forget_restore(&record.uuid);
            Err(invalid(&format!(
                "bookmark => `{target}` is unknown or older than {HISTORY_DAYS} days"
            )))
        }
    }
}
