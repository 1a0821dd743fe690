//! R2's data plane through its S3 endpoint: listing, HEAD, GET (ranged, pinned with
//! `If-Match`), PUT, multipart and DELETE, signed with SigV4 over the one reqwest client.
//! Keys are opaque strings: never parsed as paths, sent and listed byte for byte
//! (`encoding-type=url`). Every request is retried under one policy — 408, 429, 5xx, dropped
//! connections and bodies cut short — with bounded, jittered waits; a listing page is asked again
//! from its token, a cut GET resumes with a ranged GET pinned to the first answer's ETag.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::client::RetryPolicy;
use super::sigv4;
use crate::config::Secret;

/// Where a GET's body goes, piece by piece, in order. A closure is a sink that never waits; a
/// sink that must (one feeding a sealing thread through a bounded queue) implements `put` as
/// an `async fn`, which holds the download back while it is full.
pub trait BodySink: Send {
    fn put(&mut self, bytes: Bytes) -> impl Future<Output = Result<(), String>> + Send;
}

impl<F: FnMut(Bytes) -> Result<(), String> + Send> BodySink for F {
    async fn put(&mut self, bytes: Bytes) -> Result<(), String> {
        self(bytes)
    }
}

/// Where R2's S3 endpoint is and the key pair that signs for it.
#[derive(Debug, Clone)]
pub struct R2Credentials {
    pub endpoint: String,
    pub access_key_id: String,
    pub secret_access_key: Secret,
}

impl R2Credentials {
    /// From the configuration; an error names the setting that is missing.
    pub fn from_config(c: &crate::config::Config) -> Result<Self, S3Error> {
        let missing = |name: &str| {
            S3Error::Usage(format!(
                "{name} is not set; R2's data is read through its S3 endpoint: set R2_ENDPOINT, R2_ACCESS_KEY_ID and R2_SECRET_ACCESS_KEY"
            ))
        };
        Ok(Self {
            endpoint: c
                .r2_endpoint
                .clone()
                .ok_or_else(|| missing("R2_ENDPOINT"))?,
            access_key_id: c
                .r2_access_key_id
                .clone()
                .ok_or_else(|| missing("R2_ACCESS_KEY_ID"))?,
            secret_access_key: c
                .r2_secret_access_key
                .clone()
                .ok_or_else(|| missing("R2_SECRET_ACCESS_KEY"))?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("R2 answered {status} to {op} `{bucket}`{}: {code}{}", key_part(key), if message.is_empty() { String::new() } else { format!(" ({message})") })]
    Status {
        op: &'static str,
        bucket: String,
        key: Option<String>,
        status: u16,
        code: String,
        message: String,
    },
    #[error(
        "cannot reach R2 for {op} `{bucket}`{} after {attempts} attempts: {message}; check the network or R2_ENDPOINT",
        key_part(key)
    )]
    Network {
        op: &'static str,
        bucket: String,
        key: Option<String>,
        attempts: u32,
        message: String,
    },
    #[error("R2's answer to {op} `{bucket}` is not what S3 sends: {message}")]
    Decode {
        op: &'static str,
        bucket: String,
        message: String,
    },
    #[error("{0}")]
    Usage(String),
    /// The caller's sink refused more bytes (cancelled, or its disk failed).
    #[error("{0}")]
    Sink(String),
}

fn key_part(key: &Option<String>) -> String {
    key.as_ref()
        .map(|k| format!(" key `{k}`"))
        .unwrap_or_default()
}

impl S3Error {
    pub fn status(&self) -> Option<u16> {
        match self {
            S3Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    /// Unquoted.
    pub etag: Option<String>,
    pub last_modified: String,
}

/// What HEAD and GET say about an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectHead {
    pub size: u64,
    pub etag: Option<String>,
    pub content_type: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

/// What a PUT sets besides the bytes.
#[derive(Debug, Clone, Default)]
pub struct PutAttrs {
    pub content_type: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

/// A successful answer's status, headers and body, read whole.
struct Answer {
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone)]
pub struct S3Client {
    http: reqwest::Client,
    endpoint: String,
    host: String,
    creds: Arc<R2Credentials>,
    retry: RetryPolicy,
    /// Retries so far, each also told to the operation watching.
    pub retries: super::Retries,
    /// Round trips of whole answers as measured, for a plan's time.
    pub pace: super::Pace,
    requests: Arc<AtomicU64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListResult {
    #[serde(default)]
    is_truncated: bool,
    #[serde(default)]
    next_continuation_token: Option<String>,
    #[serde(default)]
    encoding_type: Option<String>,
    #[serde(default)]
    contents: Vec<ListContents>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListContents {
    key: String,
    size: u64,
    #[serde(default, rename = "ETag")]
    etag: Option<String>,
    #[serde(default)]
    last_modified: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct ErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InitiateResult {
    upload_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CompleteResult {
    #[serde(default, rename = "ETag")]
    etag: Option<String>,
}

/// What one attempt came to.
enum Attempt<T> {
    Done(T),
    /// Worth another try, after `wait` if the server said so.
    Retry(String, Option<Duration>),
    Fail(S3Error),
}

fn unquote(s: &str) -> String {
    s.trim().trim_matches('"').to_string()
}

fn amz_date() -> String {
    let f = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::OffsetDateTime::now_utc()
        .format(&f)
        .unwrap_or_default()
}

fn head_of(headers: &HeaderMap) -> ObjectHead {
    let text = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let mut metadata = BTreeMap::new();
    for (k, v) in headers {
        if let Some(name) = k.as_str().strip_prefix("x-amz-meta-") {
            metadata.insert(
                name.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            );
        }
    }
    ObjectHead {
        size: text("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        etag: text("etag").map(|e| unquote(&e)),
        content_type: text("content-type"),
        metadata,
    }
}

/// The whole size an object has, from `Content-Range: bytes a-b/total` or `Content-Length`.
fn total_size(headers: &HeaderMap) -> Option<u64> {
    if let Some(cr) = headers.get("content-range").and_then(|v| v.to_str().ok()) {
        return cr.rsplit('/').next().and_then(|t| t.parse().ok());
    }
    headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

fn retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429) || status.is_server_error()
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|s| Duration::from_secs_f64(s.clamp(0.0, 300.0)))
}

/// A transport error with its causes; the URL is left out (it carries the key, not a secret,
/// but the error already names bucket and key).
fn transport(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

impl S3Client {
    pub fn new(creds: R2Credentials, retry: RetryPolicy) -> Result<Self, S3Error> {
        let endpoint = creds.endpoint.trim_end_matches('/').to_string();
        let url = reqwest::Url::parse(&endpoint).map_err(|e| {
            S3Error::Usage(format!(
                "R2_ENDPOINT `{endpoint}` is not a URL ({e}); give https://<ACCOUNT_ID>.r2.cloudflarestorage.com"
            ))
        })?;
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => {
                return Err(S3Error::Usage(format!(
                    "R2_ENDPOINT `{endpoint}` names no host"
                )));
            }
        };
        let http = super::http()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(retry.timeout)
            .build()
            .map_err(|e| S3Error::Usage(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            endpoint,
            host,
            creds: Arc::new(creds),
            retry,
            retries: super::Retries::default(),
            pace: super::Pace::default(),
            requests: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Requests sent so far by this client (and its clones), retries included.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// A signed request; `key` None addresses the bucket.
    fn request(
        &self,
        method: Method,
        bucket: &str,
        key: Option<&str>,
        query: &[(String, String)],
        extra: &[(String, String)],
    ) -> Result<reqwest::RequestBuilder, S3Error> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let (sent, signed) = match key {
            Some(k) => sigv4::object_paths(bucket, k).map_err(S3Error::Usage)?,
            None => (format!("/{bucket}"), format!("/{bucket}")),
        };
        let date = amz_date();
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), self.host.clone()),
            (
                "x-amz-content-sha256".into(),
                sigv4::UNSIGNED_PAYLOAD.into(),
            ),
            ("x-amz-date".into(), date.clone()),
        ];
        headers.extend(extra.iter().cloned());
        let auth = sigv4::authorization(
            &sigv4::Request {
                method: method.as_str(),
                path: &signed,
                query,
                headers: &headers,
                payload_sha256: sigv4::UNSIGNED_PAYLOAD,
            },
            &self.creds.access_key_id,
            self.creds.secret_access_key.expose(),
            "auto",
            &date,
        );
        let q = sigv4::canonical_query(query);
        let url = if q.is_empty() {
            format!("{}{sent}", self.endpoint)
        } else {
            format!("{}{sent}?{q}", self.endpoint)
        };
        let mut req = self.http.request(method, url).header("authorization", auth);
        for (k, v) in &headers {
            if k != "host" {
                req = req.header(k, v);
            }
        }
        Ok(req)
    }

    /// Runs `attempt` until it is done, fails for good, or the retries run out.
    async fn with_retries<T, F, Fut>(
        &self,
        op: &'static str,
        bucket: &str,
        key: Option<&str>,
        mut attempt: F,
    ) -> Result<T, S3Error>
    where
        F: FnMut(u32) -> Fut,
        Fut: std::future::Future<Output = Attempt<T>>,
    {
        let mut n = 0;
        loop {
            match attempt(n).await {
                Attempt::Done(v) => return Ok(v),
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry(message, wait) => {
                    if n >= self.retry.max_retries {
                        return Err(S3Error::Network {
                            op,
                            bucket: bucket.into(),
                            key: key.map(str::to_string),
                            attempts: n + 1,
                            message,
                        });
                    }
                    let wait = wait.unwrap_or_else(|| self.retry.backoff(n));
                    let what = match key {
                        Some(k) => format!("R2 {op} `{bucket}` key `{}`", k.escape_debug()),
                        None => format!("R2 {op} `{bucket}`"),
                    };
                    self.retries
                        .note(&what, n + 1, self.retry.max_retries, wait, &message);
                    tokio::time::sleep(wait).await;
                    n += 1;
                }
            }
        }
    }

    /// One request whose whole answer is read; a status outside 2xx becomes an error.
    async fn send_whole(
        &self,
        op: &'static str,
        bucket: &str,
        key: Option<&str>,
        build: impl Fn() -> Result<reqwest::RequestBuilder, S3Error>,
    ) -> Attempt<Answer> {
        let req = match build() {
            Ok(r) => r,
            Err(e) => return Attempt::Fail(e),
        };
        let sent = std::time::Instant::now();
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return Attempt::Retry(transport(&e), None),
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return Attempt::Retry(format!("body cut short: {}", transport(&e)), None),
        };
        self.pace.saw(sent.elapsed());
        if status.is_success() {
            return Attempt::Done(Answer { headers, body });
        }
        if retryable(status) {
            return Attempt::Retry(format!("HTTP {status}"), retry_after(&headers));
        }
        let e: ErrorBody = quick_xml::de::from_reader(&body[..]).unwrap_or_default();
        Attempt::Fail(S3Error::Status {
            op,
            bucket: bucket.into(),
            key: key.map(str::to_string),
            status: status.as_u16(),
            code: if e.code.is_empty() {
                status.canonical_reason().unwrap_or("error").to_string()
            } else {
                e.code
            },
            message: e.message,
        })
    }

    /// One page of ListObjectsV2 from `token`; returns the objects and the next token.
    pub async fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        token: Option<&str>,
    ) -> Result<(Vec<Listed>, Option<String>), S3Error> {
        let mut query = vec![
            ("list-type".to_string(), "2".to_string()),
            ("encoding-type".into(), "url".into()),
            ("max-keys".into(), "1000".into()),
        ];
        if !prefix.is_empty() {
            query.push(("prefix".into(), prefix.into()));
        }
        if let Some(t) = token {
            query.push(("continuation-token".into(), t.into()));
        }
        self.with_retries("ListObjectsV2", bucket, None, |_| async {
            let a = match self
                .send_whole("ListObjectsV2", bucket, None, || {
                    self.request(Method::GET, bucket, None, &query, &[])
                })
                .await
            {
                Attempt::Done(a) => a,
                Attempt::Retry(m, w) => return Attempt::Retry(m, w),
                Attempt::Fail(e) => return Attempt::Fail(e),
            };
            // A page that does not parse was cut short on the way (a whole answer always does).
            let page: ListResult = match quick_xml::de::from_reader(&a.body[..]) {
                Ok(p) => p,
                Err(e) => return Attempt::Retry(format!("listing does not parse: {e}"), None),
            };
            let url = page.encoding_type.as_deref() == Some("url");
            let mut out = Vec::with_capacity(page.contents.len());
            for c in page.contents {
                let key = if url {
                    match sigv4::url_decode(&c.key) {
                        Some(k) => k,
                        None => {
                            return Attempt::Fail(S3Error::Decode {
                                op: "ListObjectsV2",
                                bucket: bucket.into(),
                                message: format!("key `{}` is not URL-encoded UTF-8", c.key),
                            });
                        }
                    }
                } else {
                    c.key
                };
                out.push(Listed {
                    key,
                    size: c.size,
                    etag: c.etag.map(|e| unquote(&e)),
                    last_modified: c.last_modified,
                });
            }
            let next = page
                .next_continuation_token
                .filter(|t| page.is_truncated && !t.is_empty());
            if page.is_truncated && next.is_none() {
                return Attempt::Fail(S3Error::Decode {
                    op: "ListObjectsV2",
                    bucket: bucket.into(),
                    message: "a truncated page without a continuation token".into(),
                });
            }
            Attempt::Done((out, next))
        })
        .await
    }

    /// Every object under `prefix`, in key order.
    pub async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<Listed>, S3Error> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let (page, next) = self.list_page(bucket, prefix, token.as_deref()).await?;
            out.extend(page);
            match next {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    /// HEAD: `None` when there is no such object.
    pub async fn head(&self, bucket: &str, key: &str) -> Result<Option<ObjectHead>, S3Error> {
        let r = self
            .with_retries("HeadObject", bucket, Some(key), |_| {
                self.send_whole("HeadObject", bucket, Some(key), || {
                    self.request(Method::HEAD, bucket, Some(key), &[], &[])
                })
            })
            .await;
        match r {
            Ok(a) => Ok(Some(head_of(&a.headers))),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// GETs `range` of an object (all of it when `None`), handing the bytes to `sink` in order.
    /// A body cut short is resumed from where it stopped with a ranged GET pinned by `If-Match`
    /// to the ETag of the first answer (or `if_match` when given), so the bytes handed out always
    /// come from one version; an object rewritten meanwhile fails with 412. Returns what the
    /// first answer said about the object.
    pub async fn get(
        &self,
        bucket: &str,
        key: &str,
        range: Option<Range<u64>>,
        if_match: Option<&str>,
        sink: &mut impl BodySink,
    ) -> Result<ObjectHead, S3Error> {
        let mut head: Option<ObjectHead> = None;
        let mut pinned = if_match.map(str::to_string);
        // Where the next byte comes from, and where the wanted bytes end (known once asked).
        let mut at = range.as_ref().map_or(0, |r| r.start);
        let mut end = range.as_ref().map(|r| r.end);
        let mut n = 0u32;
        loop {
            if end.is_some_and(|e| at >= e) && head.is_some() {
                return Ok(head.unwrap_or_default());
            }
            let mut extra = Vec::new();
            if at > 0 || end.is_some() {
                let last = end.map(|e| (e - 1).to_string()).unwrap_or_default();
                extra.push(("range".to_string(), format!("bytes={at}-{last}")));
            }
            if let Some(e) = &pinned {
                extra.push(("if-match".to_string(), format!("\"{e}\"")));
            }
            let outcome: Attempt<()> = async {
                let req = match self.request(Method::GET, bucket, Some(key), &[], &extra) {
                    Ok(r) => r,
                    Err(e) => return Attempt::Fail(e),
                };
                let resp = match req.send().await {
                    Ok(r) => r,
                    Err(e) => return Attempt::Retry(transport(&e), None),
                };
                let status = resp.status();
                if !status.is_success() {
                    let headers = resp.headers().clone();
                    let body = resp.bytes().await.unwrap_or_default();
                    if retryable(status) {
                        return Attempt::Retry(format!("HTTP {status}"), retry_after(&headers));
                    }
                    let e: ErrorBody = quick_xml::de::from_reader(&body[..]).unwrap_or_default();
                    return Attempt::Fail(S3Error::Status {
                        op: "GetObject",
                        bucket: bucket.into(),
                        key: Some(key.into()),
                        status: status.as_u16(),
                        code: if e.code.is_empty() {
                            status.canonical_reason().unwrap_or("error").into()
                        } else {
                            e.code
                        },
                        message: e.message,
                    });
                }
                let headers = resp.headers().clone();
                let first = head.is_none();
                if first {
                    let mut h = head_of(&headers);
                    if let Some(total) = total_size(&headers) {
                        h.size = total;
                    }
                    if end.is_none() {
                        end = Some(h.size);
                    }
                    if pinned.is_none() {
                        pinned.clone_from(&h.etag);
                    }
                    head = Some(h);
                }
                let mut stream = resp.bytes_stream();
                while let Some(chunk) = stream.next().await {
                    match chunk {
                        Ok(c) => {
                            let c = match end {
                                Some(e) if at + c.len() as u64 > e => {
                                    c.slice(..(e.saturating_sub(at)) as usize)
                                }
                                _ => c,
                            };
                            at += c.len() as u64;
                            if let Err(m) = sink.put(c).await {
                                return Attempt::Fail(S3Error::Sink(m));
                            }
                        }
                        Err(e) => {
                            return Attempt::Retry(
                                format!("body cut short at byte {at}: {}", transport(&e)),
                                None,
                            );
                        }
                    }
                }
                if end.is_some_and(|e| at < e) {
                    return Attempt::Retry(format!("body ended at byte {at}"), None);
                }
                Attempt::Done(())
            }
            .await;
            match outcome {
                Attempt::Done(()) => return Ok(head.unwrap_or_default()),
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry(message, wait) => {
                    if n >= self.retry.max_retries {
                        return Err(S3Error::Network {
                            op: "GetObject",
                            bucket: bucket.into(),
                            key: Some(key.into()),
                            attempts: n + 1,
                            message,
                        });
                    }
                    let wait = wait.unwrap_or_else(|| self.retry.backoff(n));
                    self.retries.note(
                        &format!("R2 GetObject `{bucket}` key `{}`", key.escape_debug()),
                        n + 1,
                        self.retry.max_retries,
                        wait,
                        &message,
                    );
                    tokio::time::sleep(wait).await;
                    n += 1;
                }
            }
        }
    }

    fn put_headers(attrs: &PutAttrs) -> Vec<(String, String)> {
        let mut h = Vec::new();
        if let Some(ct) = &attrs.content_type {
            h.push(("content-type".to_string(), ct.clone()));
        }
        for (k, v) in &attrs.metadata {
            h.push((format!("x-amz-meta-{}", k.to_ascii_lowercase()), v.clone()));
        }
        h
    }

    /// PUTs a whole body (re-sent whole on a retry); returns the ETag.
    pub async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        attrs: &PutAttrs,
    ) -> Result<String, S3Error> {
        let mut extra = Self::put_headers(attrs);
        extra.push((
            "content-md5".to_string(),
            base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                <md5::Md5 as md5::Digest>::digest(&body),
            ),
        ));
        let a = self
            .with_retries("PutObject", bucket, Some(key), |_| {
                self.send_whole("PutObject", bucket, Some(key), || {
                    Ok(self
                        .request(Method::PUT, bucket, Some(key), &[], &extra)?
                        .body(body.clone()))
                })
            })
            .await?;
        Ok(head_of(&a.headers).etag.unwrap_or_default())
    }

    /// PUTs a body only if no object has `key` yet (`If-None-Match: *`): `false` when one
    /// already had it. A retry whose earlier attempt landed (its answer lost) meets its own
    /// object: the stored body is read back, and the same bytes count as created.
    pub async fn put_if_absent(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
    ) -> Result<bool, S3Error> {
        let extra = [("if-none-match".to_string(), "*".to_string())];
        let r = self
            .with_retries("PutObject", bucket, Some(key), |attempt| {
                let body = body.clone();
                let extra = &extra;
                async move {
                    match self
                        .send_whole("PutObject", bucket, Some(key), || {
                            Ok(self
                                .request(Method::PUT, bucket, Some(key), &[], extra)?
                                .body(body.clone()))
                        })
                        .await
                    {
                        Attempt::Done(_) => Attempt::Done(Some(true)),
                        // Refused: someone else's object, or (on a retry) perhaps our own.
                        Attempt::Fail(e) if e.status() == Some(412) => {
                            Attempt::Done((attempt == 0).then_some(false))
                        }
                        Attempt::Retry(m, w) => Attempt::Retry(m, w),
                        Attempt::Fail(e) => Attempt::Fail(e),
                    }
                }
            })
            .await?;
        if let Some(created) = r {
            return Ok(created);
        }
        // Refused on a retry: ours if the stored bytes are ours.
        Ok(self
            .get_whole(bucket, key)
            .await?
            .is_some_and(|stored| stored == body))
    }

    /// GETs a whole object into memory; `None` when there is no such object.
    pub async fn get_whole(&self, bucket: &str, key: &str) -> Result<Option<Bytes>, S3Error> {
        let mut out = Vec::new();
        let mut sink = |b: Bytes| -> Result<(), String> {
            out.extend_from_slice(&b);
            Ok(())
        };
        match self.get(bucket, key, None, None, &mut sink).await {
            Ok(_) => Ok(Some(Bytes::from(out))),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Starts a multipart upload; returns its id.
    pub async fn create_multipart(
        &self,
        bucket: &str,
        key: &str,
        attrs: &PutAttrs,
    ) -> Result<String, S3Error> {
        let extra = Self::put_headers(attrs);
        let q = [("uploads".to_string(), String::new())];
        let a = self
            .with_retries("CreateMultipartUpload", bucket, Some(key), |_| {
                self.send_whole("CreateMultipartUpload", bucket, Some(key), || {
                    self.request(Method::POST, bucket, Some(key), &q, &extra)
                })
            })
            .await?;
        let r: InitiateResult =
            quick_xml::de::from_reader(&a.body[..]).map_err(|e| S3Error::Decode {
                op: "CreateMultipartUpload",
                bucket: bucket.into(),
                message: e.to_string(),
            })?;
        Ok(r.upload_id)
    }

    /// Uploads one part (re-sent on a retry; S3 keeps the last copy of a part number).
    pub async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        body: Bytes,
    ) -> Result<String, S3Error> {
        let q = [
            ("partNumber".to_string(), number.to_string()),
            ("uploadId".to_string(), upload_id.to_string()),
        ];
        let a = self
            .with_retries("UploadPart", bucket, Some(key), |_| {
                self.send_whole("UploadPart", bucket, Some(key), || {
                    Ok(self
                        .request(Method::PUT, bucket, Some(key), &q, &[])?
                        .body(body.clone()))
                })
            })
            .await?;
        Ok(head_of(&a.headers).etag.unwrap_or_default())
    }

    /// Completes an upload from its parts' (number, ETag). A retry whose earlier attempt did
    /// complete (its answer lost) finds the upload gone: the object is then checked by HEAD, so
    /// the upload completes once and is reported once.
    pub async fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
    ) -> Result<String, S3Error> {
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (n, etag) in parts {
            xml.push_str(&format!(
                "<Part><PartNumber>{n}</PartNumber><ETag>\"{etag}\"</ETag></Part>"
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let body = Bytes::from(xml);
        let q = [("uploadId".to_string(), upload_id.to_string())];
        let r = self
            .with_retries("CompleteMultipartUpload", bucket, Some(key), |attempt| {
                let body = body.clone();
                let q = &q;
                async move {
                    match self
                        .send_whole("CompleteMultipartUpload", bucket, Some(key), || {
                            Ok(self
                                .request(Method::POST, bucket, Some(key), q, &[])?
                                .body(body.clone()))
                        })
                        .await
                    {
                        Attempt::Fail(S3Error::Status { code, .. })
                            if attempt > 0 && code == "NoSuchUpload" =>
                        {
                            Attempt::Done(None)
                        }
                        Attempt::Done(a) => {
                            // S3 may answer 200 with an <Error> body when completion fails late.
                            if let Ok(e) = quick_xml::de::from_reader::<_, ErrorBody>(&a.body[..])
                                && !e.code.is_empty()
                            {
                                return Attempt::Retry(format!("{}: {}", e.code, e.message), None);
                            }
                            let done: Option<CompleteResult> =
                                quick_xml::de::from_reader(&a.body[..]).ok();
                            Attempt::Done(Some(
                                done.and_then(|d| d.etag)
                                    .map(|e| unquote(&e))
                                    .unwrap_or_default(),
                            ))
                        }
                        Attempt::Retry(m, w) => Attempt::Retry(m, w),
                        Attempt::Fail(e) => Attempt::Fail(e),
                    }
                }
            })
            .await?;
        match r {
            Some(etag) => Ok(etag),
            None => {
                let want = format!("-{}", parts.len());
                match self.head(bucket, key).await? {
                    Some(h) if h.etag.as_deref().is_some_and(|e| e.ends_with(&want)) => {
                        Ok(h.etag.unwrap_or_default())
                    }
                    _ => Err(S3Error::Status {
                        op: "CompleteMultipartUpload",
                        bucket: bucket.into(),
                        key: Some(key.into()),
                        status: 404,
                        code: "NoSuchUpload".into(),
                        message: "the upload is gone and the object is not its result".into(),
                    }),
                }
            }
        }
    }

    /// Abandons an upload (its parts are dropped).
    pub async fn abort_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), S3Error> {
        let q = [("uploadId".to_string(), upload_id.to_string())];
        let r = self
            .with_retries("AbortMultipartUpload", bucket, Some(key), |_| {
                self.send_whole("AbortMultipartUpload", bucket, Some(key), || {
                    self.request(Method::DELETE, bucket, Some(key), &q, &[])
                })
            })
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.status() == Some(404) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes one object (deleting what is not there succeeds, as in S3).
    pub async fn delete(&self, bucket: &str, key: &str) -> Result<(), S3Error> {
        self.with_retries("DeleteObject", bucket, Some(key), |_| {
            self.send_whole("DeleteObject", bucket, Some(key), || {
                self.request(Method::DELETE, bucket, Some(key), &[], &[])
            })
        })
        .await
        .map(drop)
    }

    /// Creates a bucket through S3 (`false` when it already existed and is ours).
    pub async fn create_bucket(&self, bucket: &str) -> Result<bool, S3Error> {
        let r = self
            .with_retries("CreateBucket", bucket, None, |_| {
                self.send_whole("CreateBucket", bucket, None, || {
                    self.request(Method::PUT, bucket, None, &[], &[])
                })
            })
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(S3Error::Status { code, .. }) if code == "BucketAlreadyOwnedByYou" => Ok(false),
            Err(e) => Err(e),
        }
    }
}
