//! The local R2's S3 endpoint checks what S3 checks: who signed, when, and that the body is the
//! one signed; it decodes `aws-chunked` bodies and says so when a sub-resource is not served.
//! Requests here are built by hand (signed with cfdr's signer) to reach what cfdr's client never
//! sends.

mod common;

use cfdr::cloudflare::sigv4;
use sha2::{Digest as _, Sha256};

struct Raw {
    endpoint: String,
    host: String,
    access_key_id: String,
    secret: String,
    http: reqwest::Client,
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn code(&self) -> String {
        let s = String::from_utf8_lossy(&self.body);
        s.split_once("<Code>")
            .and_then(|(_, r)| r.split_once("</Code>"))
            .map(|(c, _)| c.to_string())
            .unwrap_or_default()
    }
}

fn amz_date(at: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    at.format(&f).unwrap()
}

impl Raw {
    fn new(api: &common::Api) -> Self {
        Raw {
            endpoint: api.emu.s3_url.clone(),
            host: api.emu.s3_url.trim_start_matches("http://").to_string(),
            access_key_id: api.emu.r2_access_key_id.clone(),
            secret: api.emu.r2_secret_access_key.clone(),
            http: reqwest::Client::new(),
        }
    }

    /// Sends a request signed at `at` with `payload` as `x-amz-content-sha256`.
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        extra: &[(&str, &str)],
        payload: &str,
        body: Vec<u8>,
        at: time::OffsetDateTime,
        sign: bool,
    ) -> Answer {
        let date = amz_date(at);
        let query: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), self.host.clone()),
            ("x-amz-content-sha256".into(), payload.into()),
            ("x-amz-date".into(), date.clone()),
        ];
        headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let q = sigv4::canonical_query(&query);
        let url = format!(
            "{}{path}{}{q}",
            self.endpoint,
            if q.is_empty() { "" } else { "?" }
        );
        let mut req = self.http.request(method.parse().unwrap(), url).body(body);
        if sign {
            let auth = sigv4::authorization(
                &sigv4::Request {
                    method,
                    path,
                    query: &query,
                    headers: &headers,
                    payload_sha256: payload,
                },
                &self.access_key_id,
                &self.secret,
                "auto",
                &date,
            );
            req = req.header("authorization", auth);
        }
        for (k, v) in &headers {
            if k != "host" {
                req = req.header(k, v);
            }
        }
        let r = req.send().await.unwrap();
        Answer {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            body: r.bytes().await.unwrap().to_vec(),
        }
    }

    async fn signed(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> Answer {
        let hash = hex::encode(Sha256::digest(body));
        self.send(
            method,
            path,
            query,
            extra,
            &hash,
            body.to_vec(),
            time::OffsetDateTime::now_utc(),
            true,
        )
        .await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn signatures_times_and_payload_hashes_are_checked() {
    let api = common::start().await;
    assert!(api.s3().create_bucket("checks").await.unwrap());
    let raw = Raw::new(&api);
    let now = time::OffsetDateTime::now_utc();

    let anonymous = raw
        .send("GET", "/", &[], &[], "UNSIGNED-PAYLOAD", vec![], now, false)
        .await;
    assert_eq!(
        (anonymous.status, anonymous.code().as_str()),
        (403, "AccessDenied")
    );
    assert!(anonymous.headers.contains_key("x-amz-request-id"));

    let stale = raw
        .send(
            "GET",
            "/",
            &[],
            &[],
            "UNSIGNED-PAYLOAD",
            vec![],
            now - time::Duration::minutes(20),
            true,
        )
        .await;
    assert_eq!(
        (stale.status, stale.code().as_str()),
        (403, "RequestTimeTooSkewed")
    );

    // A body that is not the one signed is refused and leaves nothing behind.
    let other = hex::encode(Sha256::digest(b"not this body"));
    let swapped = raw
        .send(
            "PUT",
            "/checks/k",
            &[],
            &[],
            &other,
            b"hello".to_vec(),
            now,
            true,
        )
        .await;
    assert_eq!(
        (swapped.status, swapped.code().as_str()),
        (400, "XAmzContentSHA256Mismatch")
    );
    assert!(api.s3().head("checks", "k").await.unwrap().is_none());

    let put = raw.signed("PUT", "/checks/k", &[], &[], b"hello").await;
    assert_eq!(put.status, 200);
    let part = raw
        .signed("GET", "/checks/k", &[], &[("range", "bytes=1-3")], b"")
        .await;
    assert_eq!(part.status, 206);
    assert_eq!(part.body, b"ell");
    assert_eq!(part.headers["content-range"], "bytes 1-3/5");
    let beyond = raw
        .signed("GET", "/checks/k", &[], &[("range", "bytes=9-")], b"")
        .await;
    assert_eq!(
        (beyond.status, beyond.code().as_str()),
        (416, "InvalidRange")
    );

    let tagging = raw
        .signed("GET", "/checks/k", &[("tagging", "")], &[], b"")
        .await;
    assert_eq!(
        (tagging.status, tagging.code().as_str()),
        (501, "NotImplemented")
    );
    let form = raw.signed("POST", "/checks/k", &[], &[], b"").await;
    assert_eq!((form.status, form.code().as_str()), (501, "NotImplemented"));
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_chunked_bodies_are_stored_decoded() {
    let api = common::start().await;
    assert!(api.s3().create_bucket("chunks").await.unwrap());
    let raw = Raw::new(&api);
    let body = b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n".to_vec();
    let put = raw
        .send(
            "PUT",
            "/chunks/greeting",
            &[],
            &[
                ("content-encoding", "aws-chunked"),
                ("x-amz-decoded-content-length", "11"),
                ("x-amz-trailer", "x-amz-checksum-crc32"),
            ],
            "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            body,
            time::OffsetDateTime::now_utc(),
            true,
        )
        .await;
    assert_eq!(put.status, 200, "{}", String::from_utf8_lossy(&put.body));
    let got = raw.signed("GET", "/chunks/greeting", &[], &[], b"").await;
    assert_eq!(got.body, b"hello world");
    assert!(
        !got.headers.contains_key("content-encoding"),
        "aws-chunked is not the object's encoding"
    );

    // A chunked body shorter than it declared is refused.
    let short = raw
        .send(
            "PUT",
            "/chunks/short",
            &[],
            &[
                ("content-encoding", "aws-chunked"),
                ("x-amz-decoded-content-length", "99"),
            ],
            "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            b"5\r\nhello\r\n0\r\n\r\n".to_vec(),
            time::OffsetDateTime::now_utc(),
            true,
        )
        .await;
    assert_eq!(
        (short.status, short.code().as_str()),
        (400, "IncompleteBody")
    );
    assert!(api.s3().head("chunks", "short").await.unwrap().is_none());
}
