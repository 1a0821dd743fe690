//! What S3 puts on the wire besides bodies: XML documents, HTTP dates, conditional and range
//! headers, and an object's attributes as headers.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{HeaderMap, Response, StatusCode, header, response};

use super::super::objects::{Attrs, ObjectRecord};
use super::{S3Error, S3Result};

/// R2: object metadata (user keys and values) at most 8,192 bytes.
const METADATA_LIMIT: usize = 8192;

/// An XML document written element by element; text is escaped.
pub struct Xml(String);

impl Xml {
    /// Opens the root element (with S3's namespace when `namespaced`).
    pub fn new(root: &str, namespaced: bool) -> Self {
        let ns = if namespaced {
            " xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\""
        } else {
            ""
        };
        Xml(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{root}{ns}>"
        ))
    }

    pub fn el(&mut self, name: &str, text: &str) -> &mut Self {
        self.0.push_str(&format!(
            "<{name}>{}</{name}>",
            quick_xml::escape::escape(text)
        ));
        self
    }

    pub fn open(&mut self, name: &str) -> &mut Self {
        self.0.push_str(&format!("<{name}>"));
        self
    }

    pub fn close(&mut self, name: &str) -> &mut Self {
        self.0.push_str(&format!("</{name}>"));
        self
    }

    pub fn finish(mut self, root: &str) -> String {
        self.close(root);
        self.0
    }

    /// A 200 answer carrying the document.
    pub fn respond(self, root: &str) -> Response<Body> {
        Response::builder()
            .header(header::CONTENT_TYPE, "application/xml")
            .body(Body::from(self.finish(root)))
            .expect("a valid response")
    }
}

/// An answer with no body.
pub fn empty(status: StatusCode) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(Body::empty())
        .expect("a valid response")
}

fn http_date_format() -> &'static [time::format_description::BorrowedFormatItem<'static>] {
    time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    )
}

/// An HTTP date (`Tue, 02 Jan 2026 03:04:05 GMT`), whole seconds.
pub fn http_date(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .format(http_date_format())
        .unwrap_or_default()
}

/// An HTTP date as whole seconds since the epoch; `None` if it does not parse (the header is
/// then ignored, as RFC 9110 says).
pub fn parse_http_date(s: &str) -> Option<i64> {
    time::PrimitiveDateTime::parse(s.trim(), http_date_format())
        .ok()
        .map(|t| t.assume_utc().unix_timestamp())
}

/// `If-Match` / `If-None-Match`: `*` or a list of entity tags.
pub enum ETagCond {
    Any,
    Tags(Vec<String>),
}

impl ETagCond {
    pub fn parse(v: &str) -> Self {
        if v.trim() == "*" {
            return ETagCond::Any;
        }
        ETagCond::Tags(
            v.split(',')
                .map(|t| {
                    let t = t.trim();
                    t.strip_prefix("W/")
                        .unwrap_or(t)
                        .trim_matches('"')
                        .to_string()
                })
                .filter(|t| !t.is_empty())
                .collect(),
        )
    }

    /// Does the condition name the object `o`?
    pub fn names(&self, o: Option<&ObjectRecord>) -> bool {
        match (self, o) {
            (_, None) => false,
            (ETagCond::Any, Some(_)) => true,
            (ETagCond::Tags(t), Some(o)) => t.contains(&o.etag),
        }
    }
}

pub fn etag_cond(headers: &HeaderMap, name: &str) -> Option<ETagCond> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(ETagCond::parse)
}

/// A write's `If-Match` / `If-None-Match` against what is stored now.
pub fn write_allowed(
    if_match: Option<&ETagCond>,
    if_none_match: Option<&ETagCond>,
    current: Option<&ObjectRecord>,
) -> bool {
    if_match.is_none_or(|c| c.names(current)) && if_none_match.is_none_or(|c| !c.names(current))
}

/// The read conditions of GetObject and HeadObject, in RFC 9110's order.
pub fn read_check(o: &ObjectRecord, headers: &HeaderMap) -> S3Result<()> {
    let date = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_http_date)
    };
    let modified = o.modified_ms.div_euclid(1000);
    if let Some(c) = etag_cond(headers, "if-match") {
        if !c.names(Some(o)) {
            return Err(S3Error::new(
                "PreconditionFailed",
                "If-Match does not name the object",
            ));
        }
    } else if date("if-unmodified-since").is_some_and(|t| modified > t) {
        return Err(S3Error::new(
            "PreconditionFailed",
            "the object was modified since",
        ));
    }
    if let Some(c) = etag_cond(headers, "if-none-match") {
        if c.names(Some(o)) {
            return Err(S3Error::new("NotModified", ""));
        }
    } else if date("if-modified-since").is_some_and(|t| modified <= t) {
        return Err(S3Error::new("NotModified", ""));
    }
    Ok(())
}

/// A `Range: bytes=…` header against an object of `size` bytes: the half-open span to send, or
/// `None` for the whole object (no header, or one S3 ignores: several ranges, bad syntax).
pub fn range(v: Option<&str>, size: u64) -> S3Result<Option<(u64, u64)>> {
    let Some(spec) = v.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let unsatisfiable = || {
        S3Error::new(
            "InvalidRange",
            format!("the range `{spec}` is not satisfiable for {size} bytes"),
        )
    };
    let (a, b) = (a.trim(), b.trim());
    let span = if a.is_empty() {
        let Ok(n) = b.parse::<u64>() else {
            return Ok(None);
        };
        if n == 0 || size == 0 {
            return Err(unsatisfiable());
        }
        (size - n.min(size), size)
    } else {
        let Ok(start) = a.parse::<u64>() else {
            return Ok(None);
        };
        let end = match b {
            "" => size,
            b => match b.parse::<u64>() {
                Ok(e) if e >= start => (e + 1).min(size),
                _ => return Ok(None),
            },
        };
        if start >= size {
            return Err(unsatisfiable());
        }
        (start, end)
    };
    Ok(Some(span))
}

/// The attributes a PutObject or CreateMultipartUpload sets: content headers and
/// `x-amz-meta-*` (names in lower case), checked against R2's metadata limit.
pub fn attrs(headers: &HeaderMap) -> S3Result<Attrs> {
    let text = |n: header::HeaderName| {
        headers
            .get(n)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let mut metadata = BTreeMap::new();
    for (k, v) in headers {
        if let Some(name) = k.as_str().strip_prefix("x-amz-meta-") {
            let value = std::str::from_utf8(v.as_bytes()).map_err(|_| {
                S3Error::new(
                    "InvalidArgument",
                    format!("the metadata value of `{name}` is not UTF-8"),
                )
            })?;
            metadata.insert(name.to_string(), value.to_string());
        }
    }
    let size: usize = metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > METADATA_LIMIT {
        return Err(S3Error::new(
            "MetadataTooLarge",
            format!("object metadata is {size} bytes; R2 allows at most {METADATA_LIMIT}"),
        ));
    }
    Ok(Attrs {
        content_type: text(header::CONTENT_TYPE),
        // `aws-chunked` describes the upload, not the object.
        content_encoding: text(header::CONTENT_ENCODING)
            .map(|e| {
                e.split(',')
                    .map(str::trim)
                    .filter(|p| *p != "aws-chunked")
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .filter(|e| !e.is_empty()),
        content_disposition: text(header::CONTENT_DISPOSITION),
        content_language: text(header::CONTENT_LANGUAGE),
        cache_control: text(header::CACHE_CONTROL),
        metadata,
    })
}

/// An object's headers on GetObject and HeadObject.
pub fn object_headers(mut b: response::Builder, o: &ObjectRecord) -> response::Builder {
    b = b
        .header(header::ETAG, format!("\"{}\"", o.etag))
        .header(header::LAST_MODIFIED, http_date(o.modified_ms))
        .header(header::ACCEPT_RANGES, "bytes");
    let a = &o.attrs;
    for (name, value) in [
        (header::CONTENT_TYPE, &a.content_type),
        (header::CONTENT_ENCODING, &a.content_encoding),
        (header::CONTENT_DISPOSITION, &a.content_disposition),
        (header::CONTENT_LANGUAGE, &a.content_language),
        (header::CACHE_CONTROL, &a.cache_control),
    ] {
        if let Some(v) = value {
            b = b.header(name, v.as_str());
        }
    }
    for (k, v) in &a.metadata {
        b = b.header(format!("x-amz-meta-{k}"), v.as_str());
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_round_trip() {
        let s = http_date(1_700_000_000_123);
        assert_eq!(s, "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(parse_http_date(&s), Some(1_700_000_000));
        assert_eq!(parse_http_date("yesterday"), None);
    }

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(range(None, 10).unwrap(), None);
        assert_eq!(range(Some("bytes=0-3"), 10).unwrap(), Some((0, 4)));
        assert_eq!(range(Some("bytes=5-"), 10).unwrap(), Some((5, 10)));
        assert_eq!(range(Some("bytes=-3"), 10).unwrap(), Some((7, 10)));
        assert_eq!(range(Some("bytes=-30"), 10).unwrap(), Some((0, 10)));
        assert_eq!(range(Some("bytes=8-100"), 10).unwrap(), Some((8, 10)));
        assert_eq!(range(Some("bytes=0-1,4-5"), 10).unwrap(), None);
        assert_eq!(range(Some("bytes=4-2"), 10).unwrap(), None);
        assert_eq!(
            range(Some("bytes=10-"), 10).unwrap_err().code,
            "InvalidRange"
        );
        assert_eq!(
            range(Some("bytes=-0"), 10).unwrap_err().code,
            "InvalidRange"
        );
    }

    #[test]
    fn etag_conditions_take_lists_and_weak_tags() {
        let o = ObjectRecord {
            key: "k".into(),
            size: 0,
            etag: "abc".into(),
            modified_ms: 0,
            body: String::new(),
            attrs: Attrs::default(),
        };
        assert!(ETagCond::parse("*").names(Some(&o)));
        assert!(ETagCond::parse("\"x\", W/\"abc\"").names(Some(&o)));
        assert!(!ETagCond::parse("\"x\"").names(Some(&o)));
        assert!(!ETagCond::parse("*").names(None));
    }

    #[test]
    fn xml_text_is_escaped() {
        let mut x = Xml::new("R", true);
        x.el("Key", "a<b>&\"c\"");
        let s = x.finish("R");
        assert!(
            s.ends_with("<Key>a&lt;b&gt;&amp;&quot;c&quot;</Key></R>"),
            "{s}"
        );
    }
}
