//! The v4 REST client: the envelope and typed errors (HTTP status, Cloudflare code, message,
//! `cf-ray`), retries with jittered backoff on 408, 409, 429, 5xx and connection errors that honour
//! `Retry-After` (never other 4xx), timeouts, the shared request budget, bounded concurrency.
//! The token is sent in a header and never appears in an error or a log line.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::Semaphore;

use super::budget::Budget;
use crate::config::Secret;

#[derive(Debug, thiserror::Error)]
pub enum CfError {
    #[error("Cloudflare answered {status} to {method} {path}{}: {message}{}", code.map(|c| format!(" (code {c})")).unwrap_or_default(), ray.as_ref().map(|r| format!(" [cf-ray {r}]")).unwrap_or_default())]
    Api {
        method: String,
        path: String,
        status: u16,
        code: Option<u32>,
        message: String,
        ray: Option<String>,
    },
    #[error(
        "Cloudflare's firewall blocked {method} {path} (a challenge page, cf-ray {ray}); ask the account owner to allow this client"
    )]
    Waf {
        method: String,
        path: String,
        ray: String,
    },
    #[error(
        "cannot reach Cloudflare for {method} {path}: {message}; check the network or CLOUDFLARE_API_BASE_URL"
    )]
    Network {
        method: String,
        path: String,
        message: String,
    },
    #[error("Cloudflare's answer to {method} {path} is not the expected JSON: {message}")]
    Decode {
        method: String,
        path: String,
        message: String,
    },
}

impl CfError {
    pub fn status(&self) -> Option<u16> {
        match self {
            CfError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn code(&self) -> Option<u32> {
        match self {
            CfError::Api { code, .. } => *code,
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub initial: Duration,
    pub max: Duration,
    pub timeout: Duration,
    /// The longest `Retry-After` waited out; a longer one (D1's Time Travel limit asks for up
    /// to ten minutes) ends the retries with the server's answer, so the operator decides.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 6,
            initial: Duration::from_millis(500),
            max: Duration::from_secs(8),
            timeout: Duration::from_secs(60),
            // Cloudflare's global rate limit locks a token out for five minutes.
            max_wait: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// Exponential from `initial` to `max`, with up to 25 % jitter taken off.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .initial
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max);
        base.mul_f64(1.0 - rand::random::<f64>() * 0.25)
    }
}

/// A success: `result` and `result_info` of the envelope.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub result: Value,
    pub result_info: Option<Value>,
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    account: String,
    token: Secret,
    pub budget: Arc<Budget>,
    /// Retries so far, each also told to the operation watching.
    pub retries: super::Retries,
    /// Round trips as measured, for a plan's time.
    pub pace: super::Pace,
    retry: RetryPolicy,
    permits: Arc<Semaphore>,
    /// Requests in flight at once (the permits' number).
    concurrency: usize,
}

/// When a request is sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resend {
    /// After any failure the retry policy covers (a lost answer, a 5xx, 429).
    Failed,
    /// Only when Cloudflare refused it without acting on it (429).
    Refused,
}

/// What a request sends.
pub enum Body {
    None,
    Json(Value),
    Bytes(Vec<u8>, &'static str),
}

impl Client {
    pub fn new(
        base: &str,
        account: &str,
        token: Secret,
        budget: Arc<Budget>,
        retry: RetryPolicy,
        concurrency: usize,
    ) -> Self {
        let http = super::http()
            .timeout(retry.timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            account: account.to_string(),
            token,
            budget,
            retries: super::Retries::default(),
            pace: super::Pace::default(),
            retry,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            concurrency: concurrency.max(1),
        }
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    /// About how long `n` more requests take: the budget's wait as it stands plus their round
    /// trips as measured so far, as many in flight as this client sends at once. Without a
    /// round trip seen yet, the budget's wait alone.
    pub fn time_for(&self, n: u64) -> Duration {
        self.budget.wait_for(n) + self.pace.time_for(n, self.concurrency).unwrap_or_default()
    }

    /// `path` is relative to `/accounts/{account_id}`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Body,
    ) -> Result<Answer, CfError> {
        self.call_as(method, path, query, body, Resend::Failed)
            .await
    }

    /// Like [`call`](Self::call), for a request that must not land twice (a Workers
    /// deployment: each POST makes a new one): sent again only when Cloudflare refused it
    /// unread (429), never after a lost answer or a 5xx, which may have landed; the caller
    /// reads back what happened.
    pub async fn call_once(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Body,
    ) -> Result<Answer, CfError> {
        self.call_as(method, path, query, body, Resend::Refused)
            .await
    }

    async fn call_as(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Body,
        resend: Resend,
    ) -> Result<Answer, CfError> {
        let (status, headers, bytes) = self.raw(method.clone(), path, query, &body, resend).await?;
        let mut v: Value = serde_json::from_slice(&bytes).map_err(|e| CfError::Decode {
            method: method.to_string(),
            path: path.into(),
            message: e.to_string(),
        })?;
        if v.get("success") == Some(&Value::Bool(true)) {
            return Ok(Answer {
                status,
                result: v.get_mut("result").map(Value::take).unwrap_or(Value::Null),
                result_info: v.get_mut("result_info").map(Value::take),
            });
        }
        Err(api_error(&method, path, status, &headers, &bytes))
    }

    /// The raw bytes of a success (KV values, R2 objects); failures are still envelopes.
    pub async fn bytes(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Body,
    ) -> Result<(reqwest::header::HeaderMap, Vec<u8>), CfError> {
        let (_, headers, bytes) = self.raw(method, path, query, &body, Resend::Failed).await?;
        Ok((headers, bytes.into()))
    }

    async fn raw(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: &Body,
        resend: Resend,
    ) -> Result<(u16, reqwest::header::HeaderMap, bytes::Bytes), CfError> {
        let mut url = format!("{}/accounts/{}{path}", self.base, self.account);
        if !query.is_empty() {
            let mut q = form_urlencoded::Serializer::new(String::new());
            for (k, v) in query {
                q.append_pair(k, v);
            }
            url = format!("{url}?{}", q.finish());
        }
        let describe = |m: &Method| (m.to_string(), path.to_string());
        let mut attempt = 0;
        loop {
            let asked = std::time::Instant::now();
            self.budget.take().await;
            let permit = self.permits.acquire().await.map_err(|e| CfError::Network {
                method: method.to_string(),
                path: path.into(),
                message: e.to_string(),
            })?;
            let mut req = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(self.token.expose());
            req = match body {
                Body::None => req,
                Body::Json(v) => req.json(v),
                Body::Bytes(b, ct) => req
                    .header(reqwest::header::CONTENT_TYPE, *ct)
                    .body(b.clone()),
            };
            let sent = std::time::Instant::now();
            let outcome = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    if let Some(rl) = headers.get("ratelimit").and_then(|v| v.to_str().ok()) {
                        self.budget.observe(rl, asked);
                    }
                    match resp.bytes().await {
                        Ok(b) => Ok((status, headers, b)),
                        Err(e) => Err(e.to_string()),
                    }
                }
                Err(e) => Err(redact(&e)),
            };
            if outcome.is_ok() {
                self.pace.saw(sent.elapsed());
            }
            drop(permit);
            let (method_s, path_s) = describe(&method);
            let (wait, why) = match outcome {
                Ok((status, headers, bytes)) => {
                    if headers
                        .get("cf-mitigated")
                        .is_some_and(|v| v == "challenge")
                    {
                        let ray = header(&headers, "cf-ray").unwrap_or_default();
                        return Err(CfError::Waf {
                            method: method_s,
                            path: path_s,
                            ray,
                        });
                    }
                    let should = headers
                        .get("x-should-retry")
                        .and_then(|v| v.to_str().ok())
                        .map(|v| v == "true");
                    let retryable = match resend {
                        Resend::Failed => should.unwrap_or(
                            matches!(status.as_u16(), 408 | 409 | 429) || status.is_server_error(),
                        ),
                        Resend::Refused => status == StatusCode::TOO_MANY_REQUESTS,
                    };
                    if status.is_success() || !retryable || attempt >= self.retry.max_retries {
                        if status.is_success() {
                            // The body as received: a page of rows is megabytes, never copied.
                            return Ok((status.as_u16(), headers, bytes));
                        }
                        return Err(api_error(&method, path, status.as_u16(), &headers, &bytes));
                    }
                    let asked = retry_after(&headers);
                    if asked.is_some_and(|w| w > self.retry.max_wait) {
                        return Err(api_error(&method, path, status.as_u16(), &headers, &bytes));
                    }
                    let wait = asked.unwrap_or_else(|| self.retry.backoff(attempt));
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        self.budget.back_off(wait);
                    }
                    (wait, status.to_string())
                }
                Err(message) => {
                    if attempt >= self.retry.max_retries || resend == Resend::Refused {
                        return Err(CfError::Network {
                            method: method_s,
                            path: path_s,
                            message,
                        });
                    }
                    (self.retry.backoff(attempt), message)
                }
            };
            self.retries.note(
                &format!("{method} {path}"),
                attempt + 1,
                self.retry.max_retries,
                wait,
                &why,
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// GETs a presigned URL (a D1 export's dump) into `file`, with no Cloudflare auth, retried
    /// under the same policy as API calls: a dropped connection, a 5xx or a body cut short (its
    /// length short of `Content-Length`) fetches it again from the start into an emptied file,
    /// so only a whole body is ever left there. The URL carries its signature, so no error names
    /// it. Returns the bytes written.
    pub async fn download_signed(
        &self,
        what: &str,
        url: &str,
        file: &mut std::fs::File,
    ) -> Result<u64, CfError> {
        use std::io::{Seek as _, Write as _};
        let fail = |message: String| CfError::Network {
            method: "GET".into(),
            path: what.into(),
            message,
        };
        let mut attempt = 0;
        loop {
            file.set_len(0).map_err(|e| fail(e.to_string()))?;
            file.seek(std::io::SeekFrom::Start(0))
                .map_err(|e| fail(e.to_string()))?;
            let outcome: Result<u64, (String, Option<Duration>, bool)> = async {
                let resp = self
                    .http
                    .get(url)
                    .send()
                    .await
                    .map_err(|e| (redact(&e.without_url()), None, true))?;
                let status = resp.status();
                if !status.is_success() {
                    let retryable =
                        matches!(status.as_u16(), 408 | 429) || status.is_server_error();
                    return Err((
                        format!("HTTP {status}"),
                        retry_after(resp.headers()),
                        retryable,
                    ));
                }
                let expected = resp.content_length();
                let mut written = 0u64;
                let mut stream = resp.bytes_stream();
                while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
                    let chunk = chunk.map_err(|e| {
                        (
                            format!(
                                "body cut short at byte {written}: {}",
                                redact(&e.without_url())
                            ),
                            None,
                            true,
                        )
                    })?;
                    file.write_all(&chunk)
                        .map_err(|e| (format!("writing the download: {e}"), None, false))?;
                    written += chunk.len() as u64;
                }
                if expected.is_some_and(|n| n != written) {
                    return Err((
                        format!("body ended at byte {written} of {}", expected.unwrap_or(0)),
                        None,
                        true,
                    ));
                }
                Ok(written)
            }
            .await;
            match outcome {
                Ok(n) => {
                    file.flush().map_err(|e| fail(e.to_string()))?;
                    file.seek(std::io::SeekFrom::Start(0))
                        .map_err(|e| fail(e.to_string()))?;
                    return Ok(n);
                }
                Err((message, wait, retryable)) => {
                    if !retryable || attempt >= self.retry.max_retries {
                        return Err(fail(format!("{message} (after {} attempts)", attempt + 1)));
                    }
                    let wait = wait.unwrap_or_else(|| self.retry.backoff(attempt));
                    self.retries
                        .note(what, attempt + 1, self.retry.max_retries, wait, &message);
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
            }
        }
    }

    /// PUTs `path` to a presigned URL (a D1 import's upload slot) with its `Content-Length`
    /// and no Cloudflare auth, streamed from the file, retried under the same policy as API
    /// calls; the answer's `ETag` must be `md5` (the file's), or the upload is sent again. The
    /// URL carries its signature, so no error names it.
    pub async fn upload_signed(
        &self,
        what: &str,
        url: &str,
        path: &std::path::Path,
        md5: &str,
    ) -> Result<u64, CfError> {
        let fail = |message: String| CfError::Network {
            method: "PUT".into(),
            path: what.into(),
            message,
        };
        let size = std::fs::metadata(path)
            .map_err(|e| fail(format!("reading `{}`: {e}", path.display())))?
            .len();
        let mut attempt = 0;
        loop {
            let file = tokio::fs::File::open(path)
                .await
                .map_err(|e| fail(format!("reading `{}`: {e}", path.display())))?;
            let stream = futures_util::stream::unfold(file, |mut f| async move {
                use tokio::io::AsyncReadExt as _;
                let mut buf = vec![0u8; 256 << 10];
                match f.read(&mut buf).await {
                    Ok(0) => None,
                    Ok(n) => {
                        buf.truncate(n);
                        Some((Ok::<Vec<u8>, std::io::Error>(buf), f))
                    }
                    Err(e) => Some((Err(e), f)),
                }
            });
            let outcome: Result<(), (String, Option<Duration>, bool)> = async {
                let resp = self
                    .http
                    .put(url)
                    .header(reqwest::header::CONTENT_LENGTH, size)
                    .body(reqwest::Body::wrap_stream(stream))
                    .send()
                    .await
                    .map_err(|e| (redact(&e.without_url()), None, true))?;
                let status = resp.status();
                if status != StatusCode::OK {
                    let retryable =
                        matches!(status.as_u16(), 408 | 429) || status.is_server_error();
                    return Err((
                        format!("HTTP {status}"),
                        retry_after(resp.headers()),
                        retryable,
                    ));
                }
                let etag = header(resp.headers(), "etag")
                    .map(|e| e.trim_matches('"').to_ascii_lowercase())
                    .unwrap_or_default();
                if etag != md5 {
                    return Err((
                        format!("the upload's ETag `{etag}` is not the file's MD5 `{md5}`"),
                        None,
                        true,
                    ));
                }
                Ok(())
            }
            .await;
            match outcome {
                Ok(()) => return Ok(size),
                Err((message, wait, retryable)) => {
                    if !retryable || attempt >= self.retry.max_retries {
                        return Err(fail(format!("{message} (after {} attempts)", attempt + 1)));
                    }
                    let wait = wait.unwrap_or_else(|| self.retry.backoff(attempt));
                    self.retries
                        .note(what, attempt + 1, self.retry.max_retries, wait, &message);
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
            }
        }
    }

    /// One page of a cursor-paged list (KV keys, R2 buckets): the answer, and the cursor of the
    /// next page, `None` after the last.
    pub async fn cursor_page(
        &self,
        path: &str,
        query: &[(&str, String)],
        cursor: Option<&str>,
    ) -> Result<(Answer, Option<String>), CfError> {
        let mut q = query.to_vec();
        if let Some(c) = cursor {
            q.push(("cursor", c.to_string()));
        }
        let a = self.call(Method::GET, path, &q, Body::None).await?;
        let next = a
            .result_info
            .as_ref()
            .and_then(|i| i["cursor"].as_str())
            .filter(|c| !c.is_empty())
            .map(str::to_string);
        Ok((a, next))
    }

    /// Every page of a page-based list (`page`, `per_page`; stops on a short page or at
    /// `total_count`).
    pub async fn all_pages(
        &self,
        path: &str,
        per_page: u32,
        extra: &[(&str, String)],
    ) -> Result<Vec<Value>, CfError> {
        let mut out = Vec::new();
        for page in 1.. {
            let mut q = vec![
                ("page", page.to_string()),
                ("per_page", per_page.to_string()),
            ];
            q.extend(extra.iter().cloned());
            let a = self.call(Method::GET, path, &q, Body::None).await?;
            let items = a.result.as_array().cloned().unwrap_or_default();
            let n = items.len();
            out.extend(items);
            let total = a
                .result_info
                .as_ref()
                .and_then(|i| i["total_count"].as_u64());
            if n < per_page as usize
                || total.is_some_and(|t| (page as u64) * u64::from(per_page) >= t)
            {
                break;
            }
        }
        Ok(out)
    }
}

fn header(h: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `retry-after-ms`, or `Retry-After` in seconds or as an HTTP date.
fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    if let Some(ms) = header(h, "retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let v = header(h, "retry-after")?;
    if let Ok(secs) = v.trim().parse::<f64>() {
        return Some(Duration::from_secs_f64(secs.max(0.0)));
    }
    let at = httpdate(&v)?;
    Some(
        at.saturating_sub(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?,
        ),
    )
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) as time since the epoch.
fn httpdate(s: &str) -> Option<Duration> {
    let f = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let t = time::PrimitiveDateTime::parse(s.trim(), &f)
        .ok()?
        .assume_utc();
    Some(Duration::from_secs(t.unix_timestamp().max(0) as u64))
}

/// A failure envelope (or the non-standard `{code, error}` body) as a typed error.
fn api_error(
    method: &Method,
    path: &str,
    status: u16,
    headers: &reqwest::header::HeaderMap,
    bytes: &[u8],
) -> CfError {
    let v: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    let first = &v["errors"][0];
    let (code, message) = if first.is_object() {
        (
            first["code"].as_u64().map(|c| c as u32),
            first["message"].as_str().unwrap_or("").to_string(),
        )
    } else if v["error"].is_string() {
        (
            v["code"].as_u64().map(|c| c as u32),
            v["error"].as_str().unwrap_or("").to_string(),
        )
    } else {
        (
            None,
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
        )
    };
    CfError::Api {
        method: method.to_string(),
        path: path.to_string(),
        status,
        code,
        message,
        ray: header(headers, "cf-ray"),
    }
}

/// A transport error with its causes (the URL it names carries no secret).
fn redact(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_with_jitter() {
        let p = RetryPolicy::default();
        let b0 = p.backoff(0);
        assert!(
            b0 <= Duration::from_millis(500) && b0 >= Duration::from_millis(375),
            "{b0:?}"
        );
        let b9 = p.backoff(9);
        assert!(
            b9 <= Duration::from_secs(8) && b9 >= Duration::from_secs(6),
            "{b9:?}"
        );
    }

    #[test]
    fn retry_after_reads_seconds_milliseconds_and_dates() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "3".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert("retry-after-ms", "250".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            "retry-after",
            "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap(),
        );
        assert_eq!(
            retry_after(&h),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
    }

    #[test]
    fn errors_keep_code_message_and_ray() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("cf-ray", "8a1b2c3d4e5f-SJC".parse().unwrap());
        let e = api_error(&Method::GET, "/d1/database/x", 404, &h, br#"{"success":false,"errors":[{"code":7404,"message":"The database x could not be found"}],"messages":[],"result":null}"#);
        assert_eq!(
            e.to_string(),
            "Cloudflare answered 404 to GET /d1/database/x (code 7404): The database x could not be found [cf-ray 8a1b2c3d4e5f-SJC]"
        );
        let legacy = api_error(
            &Method::GET,
            "/x",
            400,
            &reqwest::header::HeaderMap::new(),
            br#"{"code":10001,"error":"bad"}"#,
        );
        assert_eq!((legacy.code(), legacy.status()), (Some(10001), Some(400)));
    }
}
