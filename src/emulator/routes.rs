//! The emulator's router: every v4 route of the contract under `/client/v4`, the control routes
//! under `/__emulator` (Workers' versions are uploaded there: the contract leaves uploads out),
//! and the presigned transfer URLs under `/__signed`.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::json;

use super::control::{FaultConfig, lock};
use super::d1::flows;
use super::d1::routes as d1;
use super::d1::transfer::TransferKind;
use super::envelope::{ApiError, ApiResult, ok, parse_json};
use super::kv;
use super::r2;
use super::state::Shared;
use super::workers;

/// The largest request body read at all (D1 imports of big dumps go through `/__signed`).
pub const MAX_BODY_BYTES: usize = 2 << 30;

/// The matched route template, copied onto the response for the stats.
#[derive(Clone)]
pub struct RouteLabel(pub String);

async fn label(matched: Option<MatchedPath>, req: Request, next: Next) -> Response {
    let path = matched.map(|m| m.as_str().trim_start_matches("/client/v4").to_string());
    let mut response = next.run(req).await;
    if let Some(p) = path {
        response.extensions_mut().insert(RouteLabel(p));
    }
    response
}

pub fn router(shared: Arc<Shared>) -> Router {
    const A: &str = "/client/v4/accounts/{account_id}";
    let api = Router::new()
        .route(&format!("{A}/d1/database"), get(d1::list).post(d1::create))
        .route(
            &format!("{A}/d1/database/{{database_id}}"),
            get(d1::get)
                .delete(d1::delete)
                .put(d1::update)
                .patch(d1::update),
        )
        .route(
            &format!("{A}/d1/database/{{database_id}}/query"),
            post(d1::query),
        )
        .route(
            &format!("{A}/d1/database/{{database_id}}/raw"),
            post(d1::raw),
        )
        .route(
            &format!("{A}/d1/database/{{database_id}}/export"),
            post(flows::export),
        )
        .route(
            &format!("{A}/d1/database/{{database_id}}/import"),
            post(flows::import),
        )
        .route(
            &format!("{A}/d1/database/{{database_id}}/time_travel/bookmark"),
            get(flows::bookmark),
        )
        .route(
            &format!("{A}/d1/database/{{database_id}}/time_travel/restore"),
            post(flows::restore),
        )
        .route(
            &format!("{A}/storage/kv/namespaces"),
            get(kv::ns_list).post(kv::ns_create),
        )
        .route(
            &format!("{A}/storage/kv/namespaces/{{namespace_id}}"),
            get(kv::ns_get).put(kv::ns_rename).delete(kv::ns_delete),
        )
        .route(
            &format!("{A}/storage/kv/namespaces/{{namespace_id}}/keys"),
            get(kv::keys),
        )
        .route(
            &format!("{A}/storage/kv/namespaces/{{namespace_id}}/values/{{*key_name}}"),
            get(kv::value_get)
                .put(kv::value_put)
                .delete(kv::value_delete),
        )
        .route(
            &format!("{A}/storage/kv/namespaces/{{namespace_id}}/metadata/{{*key_name}}"),
            get(kv::metadata_get),
        )
        .route(
            &format!("{A}/storage/kv/namespaces/{{namespace_id}}/bulk"),
            put(kv::bulk_put).delete(kv::bulk_delete),
        )
        .route(
            &format!("{A}/storage/kv/namespaces/{{namespace_id}}/bulk/delete"),
            post(kv::bulk_delete),
        )
        .route(
            &format!("{A}/storage/kv/namespaces/{{namespace_id}}/bulk/get"),
            post(kv::bulk_get),
        )
        .route(&format!("{A}/r2/buckets"), get(r2::list).post(r2::create))
        .route(
            &format!("{A}/r2/buckets/{{bucket_name}}"),
            get(r2::get).delete(r2::delete),
        )
        .route(
            &format!("{A}/workers/scripts"),
            get(workers::routes::list_scripts),
        )
        .route(
            &format!("{A}/workers/scripts/{{script_name}}/versions"),
            get(workers::routes::list_versions),
        )
        .route(
            &format!("{A}/workers/scripts/{{script_name}}/versions/{{version_id}}"),
            get(workers::routes::get_version),
        )
        .route(
            &format!("{A}/workers/scripts/{{script_name}}/deployments"),
            get(workers::routes::list_deployments).post(workers::routes::create_deployment),
        )
        .route(
            &format!("{A}/workers/scripts/{{script_name}}/deployments/{{deployment_id}}"),
            get(workers::routes::get_deployment).delete(workers::routes::delete_deployment),
        )
        .route(
            "/__emulator/workers/{script_name}/versions",
            post(workers::routes::control_upload),
        )
        .route("/__workers.dev/{script}", get(workers::routes::serve))
        .route(
            "/__workers.dev/{script}/{*rest}",
            get(workers::routes::serve),
        )
        .route("/__emulator/stats", get(stats))
        .route("/__emulator/stats/reset", post(stats_reset))
        .route("/__emulator/faults", get(faults_get).post(faults_set))
        .route("/__signed/{token}", get(signed_get).put(signed_put))
        .route_layer(middleware::from_fn(label))
        // KV bulk writes take 100 MB and imports far more; each route enforces its own limit.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES));
    api.fallback(|| async { ApiError::no_route() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .with_state(shared)
}

async fn stats(State(s): State<Arc<Shared>>) -> ApiResult {
    ok(s.stats.snapshot())
}

async fn stats_reset(State(s): State<Arc<Shared>>) -> ApiResult {
    s.stats.reset();
    ok(json!({}))
}

async fn faults_get(State(s): State<Arc<Shared>>) -> ApiResult {
    ok(s.faults.get())
}

async fn faults_set(State(s): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    let config: FaultConfig = parse_json(&body, 10001)?;
    config
        .validate()
        .map_err(|e| ApiError::bad_request(10001, e))?;
    if let Some(rl) = config.rate_limit {
        s.limiter.set(rl);
    }
    s.faults.set(config.clone());
    ok(config)
}

/// An S3-style XML error, as R2's presigned URLs answer.
fn s3_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    (status, [(header::CONTENT_TYPE, "application/xml")], body).into_response()
}

async fn signed_get(State(s): State<Arc<Shared>>, Path(token): Path<String>) -> Response {
    let transfers = lock(&s.transfers);
    match transfers.get(&token) {
        None => s3_error(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
        ),
        Some(t) if t.expires < std::time::Instant::now() => {
            s3_error(StatusCode::FORBIDDEN, "AccessDenied", "Request has expired")
        }
        Some(t) => match (&t.kind, &t.data) {
            (TransferKind::Export, Some(data)) => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/sql")],
                Body::from(data.clone()),
            )
                .into_response(),
            _ => s3_error(
                StatusCode::NOT_FOUND,
                "NoSuchKey",
                "The specified key does not exist.",
            ),
        },
    }
}

async fn signed_put(
    State(s): State<Arc<Shared>>,
    Path(token): Path<String>,
    body: Bytes,
) -> Response {
    let mut transfers = lock(&s.transfers);
    match transfers.get_mut(&token) {
        None => s3_error(
            StatusCode::NOT_FOUND,
            "NoSuchUpload",
            "The upload URL is unknown.",
        ),
        Some(t) if t.expires < std::time::Instant::now() => {
            s3_error(StatusCode::FORBIDDEN, "AccessDenied", "Request has expired")
        }
        Some(t) if matches!(t.kind, TransferKind::Upload { .. }) => {
            let md5 = hex::encode(<md5::Md5 as md5::Digest>::digest(&body));
            t.data = Some(body.to_vec());
            (StatusCode::OK, [(header::ETAG, format!("\"{md5}\""))]).into_response()
        }
        Some(_) => s3_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "This URL does not accept uploads.",
        ),
    }
}
