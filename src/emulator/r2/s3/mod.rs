//! R2's S3 endpoint, path-style: SigV4 checked ([`auth`]), the operations cfdr, the AWS CLI and
//! rclone use ([`ops`], [`multipart`]), the rest answered `NotImplemented`. Data lives in
//! [`R2`](super::objects::R2). Keys are opaque (at most 1,024 bytes), listings follow S3's
//! prefix and delimiter rules in byte order, `encoding-type=url` is honoured, conditional reads
//! and writes answer 304/412, multipart parts follow R2's size rules.

mod auth;
mod body;
mod multipart;
mod ops;
mod wire;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;

use super::objects::R2;

/// R2: keys at most 1,024 bytes.
const MAX_KEY: usize = 1024;

/// The S3 listener's service: SigV4 with the configured key pair over the emulator's R2.
pub struct Endpoint {
    r2: Arc<R2>,
    credentials: auth::Credentials,
}

/// An S3 error: its code (the status follows from it) and a message.
#[derive(Debug)]
pub struct S3Error {
    code: &'static str,
    message: String,
}

impl S3Error {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        S3Error {
            code,
            message: message.into(),
        }
    }

    fn internal(e: impl std::fmt::Display) -> Self {
        S3Error::new("InternalError", e.to_string())
    }

    fn status(&self) -> StatusCode {
        match self.code {
            "NotModified" => StatusCode::NOT_MODIFIED,
            "AccessDenied"
            | "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "RequestTimeTooSkewed" => StatusCode::FORBIDDEN,
            "NoSuchBucket" | "NoSuchKey" | "NoSuchUpload" => StatusCode::NOT_FOUND,
            "MethodNotAllowed" => StatusCode::METHOD_NOT_ALLOWED,
            "BucketAlreadyOwnedByYou" | "BucketNotEmpty" => StatusCode::CONFLICT,
            "MissingContentLength" => StatusCode::LENGTH_REQUIRED,
            "PreconditionFailed" => StatusCode::PRECONDITION_FAILED,
            "InvalidRange" => StatusCode::RANGE_NOT_SATISFIABLE,
            "InternalError" => StatusCode::INTERNAL_SERVER_ERROR,
            "NotImplemented" => StatusCode::NOT_IMPLEMENTED,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The answer: S3's `<Error>` document (no body for HEAD or 304).
    fn response(&self, resource: &str, request_id: &str, head: bool) -> Response<Body> {
        let status = self.status();
        let mut b = Response::builder().status(status);
        if head || status == StatusCode::NOT_MODIFIED {
            return b.body(Body::empty()).expect("a valid response");
        }
        let mut x = wire::Xml::new("Error", false);
        x.el("Code", self.code);
        x.el("Message", &self.message);
        x.el("Resource", resource);
        x.el("RequestId", request_id);
        b = b.header(header::CONTENT_TYPE, "application/xml");
        b.body(Body::from(x.finish("Error")))
            .expect("a valid response")
    }
}

type S3Result<T> = Result<T, S3Error>;

/// One authenticated request, parsed: `bucket` is empty at the service level.
pub struct Req {
    method: Method,
    bucket: String,
    key: Option<String>,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    body: body::BodyReader,
}

impl Req {
    fn q(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn has(&self, name: &str) -> bool {
        self.q(name).is_some()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn key(&self) -> &str {
        self.key.as_deref().unwrap_or("")
    }
}

/// Query names that select a sub-resource this endpoint does not serve (ACLs, tagging,
/// lifecycle, …): such requests answer `NotImplemented` instead of being taken for another
/// operation.
const UNSERVED: &[&str] = &[
    "accelerate",
    "acl",
    "analytics",
    "attributes",
    "cors",
    "encryption",
    "intelligent-tiering",
    "inventory",
    "legal-hold",
    "lifecycle",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "ownershipControls",
    "policy",
    "policyStatus",
    "publicAccessBlock",
    "replication",
    "requestPayment",
    "restore",
    "retention",
    "select",
    "tagging",
    "torrent",
    "versioning",
    "versions",
    "website",
];

/// S3's URI encoding: every byte but `A-Z a-z 0-9 - _ . ~` as `%XX`; `/` kept unless
/// `encode_slash`. Also `encoding-type=url` in listings.
pub fn uri_encode(s: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (b == b'/' && !encode_slash)
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A path with its `%XX` decoded (`+` stays a plus in a path); `None` unless it is UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(n) = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(n);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl Endpoint {
    pub fn new(r2: Arc<R2>, access_key_id: &str, secret_access_key: &str) -> Self {
        Endpoint {
            r2,
            credentials: auth::Credentials {
                access_key_id: access_key_id.to_string(),
                secret_access_key: secret_access_key.to_string(),
            },
        }
    }

    /// Answers one request; every failure is an S3 error document.
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let head = req.method() == Method::HEAD;
        let resource = req.uri().path().to_string();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut r = match self.serve(req).await {
            Ok(r) => r,
            Err(e) => e.response(&resource, &id, head),
        };
        if let Ok(v) = header::HeaderValue::from_str(&id) {
            r.headers_mut().insert("x-amz-request-id", v);
        }
        r
    }

    async fn serve(&self, req: Request<Incoming>) -> S3Result<Response<Body>> {
        let (parts, body) = req.into_parts();
        let raw_path = parts.uri.path();
        let path = percent_decode(raw_path)
            .ok_or_else(|| S3Error::new("InvalidURI", "the path is not UTF-8 once decoded"))?;
        let query: Vec<(String, String)> =
            form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let payload = self.credentials.verify(&auth::Signed {
            method: &parts.method,
            raw_path,
            path: &path,
            query: &query,
            headers: &parts.headers,
        })?;
        let trimmed = path.strip_prefix('/').unwrap_or(&path);
        let (bucket, key) = match trimmed.split_once('/') {
            Some((b, k)) if !k.is_empty() => (b.to_string(), Some(k.to_string())),
            Some((b, _)) => (b.to_string(), None),
            None => (trimmed.to_string(), None),
        };
        if let Some(k) = &key
            && k.len() > MAX_KEY
        {
            return Err(S3Error::new(
                "KeyTooLongError",
                format!("the key is {} bytes; R2 allows at most {MAX_KEY}", k.len()),
            ));
        }
        let req = Req {
            method: parts.method,
            bucket,
            key,
            query,
            body: body::BodyReader::new(Body::new(body), payload),
            headers: parts.headers,
        };
        self.dispatch(req).await
    }

    async fn dispatch(&self, req: Req) -> S3Result<Response<Body>> {
        if let Some(sub) = UNSERVED.iter().find(|s| req.has(s)) {
            return Err(S3Error::new(
                "NotImplemented",
                format!("the `{sub}` sub-resource is not served by the emulator"),
            ));
        }
        let m = req.method.clone();
        if req.bucket.is_empty() {
            return match m {
                Method::GET => self.list_buckets().await,
                _ => Err(S3Error::new(
                    "MethodNotAllowed",
                    "only GET is allowed on the service",
                )),
            };
        }
        if req.key.is_none() {
            return match m {
                Method::PUT => self.create_bucket(req).await,
                Method::DELETE => self.delete_bucket(req).await,
                Method::HEAD => self.head_bucket(req).await,
                Method::GET if req.has("location") => self.bucket_location(req).await,
                Method::GET if req.has("uploads") => Err(S3Error::new(
                    "NotImplemented",
                    "ListMultipartUploads is not served by the emulator",
                )),
                Method::GET => self.list_objects(req).await,
                Method::POST if req.has("delete") => self.delete_objects(req).await,
                _ => Err(S3Error::new(
                    "MethodNotAllowed",
                    format!("{m} is not allowed on a bucket"),
                )),
            };
        }
        let upload = req.has("uploadId");
        let copy = req.headers.contains_key("x-amz-copy-source");
        match m {
            Method::PUT if upload && copy => Err(S3Error::new(
                "NotImplemented",
                "UploadPartCopy is not served by the emulator",
            )),
            Method::PUT if upload => self.upload_part(req).await,
            Method::PUT if copy => self.copy_object(req).await,
            Method::PUT => self.put_object(req).await,
            Method::GET if upload => Err(S3Error::new(
                "NotImplemented",
                "ListParts is not served by the emulator",
            )),
            Method::GET => self.get_object(req, false).await,
            Method::HEAD => self.get_object(req, true).await,
            Method::DELETE if upload => self.abort_multipart(req).await,
            Method::DELETE => self.delete_object(req).await,
            Method::POST if req.has("uploads") => self.create_multipart(req).await,
            Method::POST if upload => self.complete_multipart(req).await,
            Method::POST => Err(S3Error::new(
                "NotImplemented",
                "PostObject (browser form uploads) is not served by the emulator",
            )),
            _ => Err(S3Error::new(
                "MethodNotAllowed",
                format!("{m} is not allowed on an object"),
            )),
        }
    }
}

/// A route label for the stats (the method is added in front): bucket or object level
/// (`S3 /{bucket}/{key}`).
pub fn route_label(path: &str, query: Option<&str>) -> String {
    let trimmed = path.trim_start_matches('/');
    let level = match trimmed.split_once('/') {
        _ if trimmed.is_empty() => "/",
        Some((_, key)) if !key.is_empty() => "/{bucket}/{key}",
        _ => "/{bucket}",
    };
    let sub = query
        .map(|q| {
            q.split('&')
                .map(|kv| kv.split('=').next().unwrap_or(""))
                .filter(|k| {
                    matches!(
                        *k,
                        "uploads" | "uploadId" | "list-type" | "delete" | "partNumber"
                    )
                })
                .collect::<Vec<_>>()
                .join("&")
        })
        .filter(|s| !s.is_empty())
        .map(|s| format!("?{s}"))
        .unwrap_or_default();
    format!("S3 {level}{sub}")
}

/// Which S3 path a request is, for the fault counters.
pub fn fault_class(method: &Method, label: &str) -> &'static str {
    let object = label.contains("{key}");
    match *method {
        Method::GET if !object => "S3 list",
        Method::GET | Method::HEAD if object => "S3 GET",
        Method::PUT | Method::POST if object => "S3 PUT",
        _ => "S3 other",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn s3_routes_are_labelled_by_level() {
        assert_eq!(super::route_label("/", None), "S3 /");
        assert_eq!(
            super::route_label("/b", Some("list-type=2&prefix=x")),
            "S3 /{bucket}?list-type"
        );
        assert_eq!(super::route_label("/b/a/b.txt", None), "S3 /{bucket}/{key}");
    }

    #[test]
    fn url_encoding_keeps_unreserved_characters_and_slashes() {
        assert_eq!(
            super::uri_encode("ü ñ/spaces and+plus%2F", false),
            "%C3%BC%20%C3%B1/spaces%20and%2Bplus%252F"
        );
        assert_eq!(super::uri_encode("a/b", true), "a%2Fb");
    }

    #[test]
    fn paths_decode_percent_escapes_but_keep_plus() {
        assert_eq!(
            super::percent_decode("/b/a%2Fb+c%20d").as_deref(),
            Some("/b/a/b+c d")
        );
        assert_eq!(super::percent_decode("/b/%ff"), None);
        assert_eq!(super::percent_decode("/b/100%").as_deref(), Some("/b/100%"));
    }
}
