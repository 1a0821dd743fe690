//! The v4 response envelope (`success`, `errors`, `messages`, `result`, `result_info`) and the
//! error type every emulator handler returns, so that no route can answer outside the contract.

use axum::Json;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

/// A failure answered with the documented failure envelope.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: u32,
    pub message: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    pub fn bad_request(code: u32, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn no_route() -> Self {
        Self::new(StatusCode::NOT_FOUND, 7003, "No route for the URI")
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            10405,
            "Method not allowed for this route",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "success": false,
            "errors": [{ "code": self.code, "message": self.message }],
            "messages": [],
            "result": null,
        });
        let mut response = (self.status, Json(body)).into_response();
        let headers: &mut HeaderMap = response.headers_mut();
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        response
    }
}

pub type ApiResult = Result<Response, ApiError>;

/// Marks a POST that only read (a D1 query that changed nothing, an export, a poll), so that
/// the request counters can show a read-only run wrote nothing.
#[derive(Debug, Clone, Copy)]
pub struct ReadOnly;

/// `result` marked [`ReadOnly`].
pub fn read_only(result: ApiResult) -> ApiResult {
    result.map(|mut r| {
        r.extensions_mut().insert(ReadOnly);
        r
    })
}

/// `200` with `result`.
pub fn ok(result: impl Serialize) -> ApiResult {
    ok_status(StatusCode::OK, result, None)
}

/// `200` with `result` and `result_info`.
pub fn ok_paged(result: impl Serialize, info: Value) -> ApiResult {
    ok_status(StatusCode::OK, result, Some(info))
}

/// The success envelope, its keys in the order the error envelope has them. Written straight
/// to bytes: a result's raw JSON (D1's number text) goes out as it is, not through `f64`.
#[derive(Serialize)]
struct Success<'a, T> {
    errors: [(); 0],
    messages: [(); 0],
    result: T,
    #[serde(skip_serializing_if = "Option::is_none")]
    result_info: Option<&'a Value>,
    success: bool,
}

pub fn ok_status(status: StatusCode, result: impl Serialize, info: Option<Value>) -> ApiResult {
    let body = serde_json::to_vec(&Success {
        errors: [],
        messages: [],
        result,
        result_info: info.as_ref(),
        success: true,
    })
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            10000,
            format!("internal error: {e}"),
        )
    })?;
    Ok((
        status,
        [(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

/// Parses a JSON body, answering malformed input with `code` instead of a bare 4xx.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8], code: u32) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(code, format!("Invalid request body: {e}")))
}

/// The decoded query string; unknown keys are ignored as Cloudflare does.
pub fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

pub fn query_get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Parses an optional integer query parameter within `min..=max`.
pub fn query_int(
    pairs: &[(String, String)],
    key: &str,
    default: u64,
    min: u64,
    max: u64,
    code: u32,
) -> Result<u64, ApiError> {
    match query_get(pairs, key) {
        None | Some("") => Ok(default),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_request(
                code,
                format!("Invalid {key}: `{v}` must be a whole number from {min} to {max}"),
            )),
        },
    }
}
