//! SigV4 as R2's S3 endpoint checks it: the `Authorization` header or a presigned query, the
//! payload hash (`x-amz-content-sha256`), and `aws-chunked` bodies with their chunk signatures.
//! Written from AWS's specification, not shared with cfdr's client, so one cannot hide the
//! other's mistake: the unit tests check AWS's published examples.

use axum::http::{HeaderMap, Method};
use hmac::{KeyInit as _, Mac as _};
use sha2::{Digest as _, Sha256};

use super::{S3Error, uri_encode};

type HmacSha256 = hmac::Hmac<Sha256>;

/// How far a request's `x-amz-date` may be from the server's clock, as on S3.
const MAX_SKEW_SECS: i64 = 15 * 60;
pub(super) const EMPTY_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The parts of a request SigV4 covers.
pub struct Signed<'a> {
    pub method: &'a Method,
    /// The path as it arrived (still percent-encoded).
    pub raw_path: &'a str,
    /// The path decoded.
    pub path: &'a str,
    /// Query pairs, decoded, in arrival order.
    pub query: &'a [(String, String)],
    pub headers: &'a HeaderMap,
}

/// A request that passed: how its body is to be read.
pub enum Payload {
    /// `UNSIGNED-PAYLOAD`.
    Unsigned,
    /// A hex SHA-256 the body must have.
    Sha256(String),
    /// `aws-chunked`: chunks signed in a chain from `seed`, or unsigned (with a trailer).
    Chunked {
        signer: Option<ChunkSigner>,
        decoded_length: u64,
    },
}

/// What chains the chunk signatures of a signed `aws-chunked` body.
pub struct ChunkSigner {
    pub(super) key: Vec<u8>,
    pub(super) amz_date: String,
    pub(super) scope: String,
    pub(super) previous: String,
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, service.as_bytes());
    hmac(&k, b"aws4_request")
}

/// Does `signature` (hex) sign `to_sign` with `key`? Compared in constant time.
pub(super) fn signs(key: &[u8], to_sign: &str, signature: &str) -> bool {
    let Ok(want) = hex::decode(signature) else {
        return false;
    };
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    m.update(to_sign.as_bytes());
    m.verify_slice(&want).is_ok()
}

pub(super) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A header's values as SigV4 canonicalises them: trimmed, inner runs of spaces collapsed,
/// several values joined by commas.
fn header_value(headers: &HeaderMap, name: &str) -> String {
    headers
        .get_all(name)
        .iter()
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn canonical_query(query: &[(String, String)]) -> String {
    let mut q: Vec<(String, String)> = query
        .iter()
        .filter(|(k, _)| k != "X-Amz-Signature")
        .map(|(k, v)| (uri_encode(k, true), uri_encode(v, true)))
        .collect();
    q.sort();
    q.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn canonical_request(
    req: &Signed<'_>,
    path: &str,
    signed_headers: &str,
    payload_hash: &str,
) -> String {
    let headers: String = signed_headers
        .split(';')
        .map(|h| format!("{h}:{}\n", header_value(req.headers, h)))
        .collect();
    format!(
        "{}\n{path}\n{}\n{headers}\n{signed_headers}\n{payload_hash}",
        req.method,
        canonical_query(req.query)
    )
}

fn parse_amz_date(s: &str) -> Option<time::OffsetDateTime> {
    let f = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(s, &f)
        .ok()
        .map(|t| t.assume_utc())
}

/// The key pair the endpoint accepts.
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

struct Claim<'a> {
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
    amz_date: &'a str,
}

impl Credentials {
    /// Checks `req`'s signature; says how its body is to be read.
    pub fn verify(&self, req: &Signed<'_>) -> Result<Payload, S3Error> {
        self.verify_at(req, time::OffsetDateTime::now_utc())
    }

    /// [`verify`](Self::verify) with the server's clock at `now`.
    pub(super) fn verify_at(
        &self,
        req: &Signed<'_>,
        now: time::OffsetDateTime,
    ) -> Result<Payload, S3Error> {
        let header = |n: &str| req.headers.get(n).and_then(|v| v.to_str().ok());
        let q = |n: &str| {
            req.query
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        if let Some(auth) = header("authorization") {
            let rest = auth.strip_prefix("AWS4-HMAC-SHA256").ok_or_else(|| {
                S3Error::new(
                    "InvalidArgument",
                    "only AWS4-HMAC-SHA256 (SigV4) authorization is supported",
                )
            })?;
            let field = |name: &str| {
                rest.split(',')
                    .filter_map(|p| p.trim().split_once('='))
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v)
            };
            let malformed = || {
                S3Error::new(
                    "AuthorizationHeaderMalformed",
                    "the Authorization header is malformed",
                )
            };
            let credential = field("Credential").ok_or_else(malformed)?;
            let amz_date = header("x-amz-date").ok_or_else(|| {
                S3Error::new(
                    "AccessDenied",
                    "a signed request needs an x-amz-date header",
                )
            })?;
            let payload_hash = header("x-amz-content-sha256").ok_or_else(|| {
                S3Error::new("InvalidRequest", "missing header: x-amz-content-sha256")
            })?;
            let claim = self.claim(
                credential,
                field("SignedHeaders").ok_or_else(malformed)?,
                field("Signature").ok_or_else(malformed)?,
                amz_date,
                now,
            )?;
            let signature = self.check(req, &claim, payload_hash)?;
            payload(req.headers, payload_hash, Some((signature, &claim, self)))
        } else if q("X-Amz-Algorithm").is_some() {
            if q("X-Amz-Algorithm") != Some("AWS4-HMAC-SHA256") {
                return Err(S3Error::new(
                    "InvalidArgument",
                    "only AWS4-HMAC-SHA256 presigned URLs are supported",
                ));
            }
            let missing = |n: &str| {
                S3Error::new(
                    "AuthorizationQueryParametersError",
                    format!("the presigned URL has no {n}"),
                )
            };
            let get = |n: &'static str| q(n).ok_or_else(|| missing(n));
            let claim = self.claim(
                get("X-Amz-Credential")?,
                get("X-Amz-SignedHeaders")?,
                get("X-Amz-Signature")?,
                get("X-Amz-Date")?,
                now,
            )?;
            let expires: i64 = get("X-Amz-Expires")?
                .parse()
                .map_err(|_| missing("valid X-Amz-Expires"))?;
            let signed_at =
                parse_amz_date(claim.amz_date).ok_or_else(|| missing("valid X-Amz-Date"))?;
            if now > signed_at + time::Duration::seconds(expires) {
                return Err(S3Error::new("AccessDenied", "Request has expired"));
            }
            let payload_hash = header("x-amz-content-sha256").unwrap_or("UNSIGNED-PAYLOAD");
            self.check(req, &claim, payload_hash)?;
            payload(req.headers, payload_hash, None)
        } else {
            Err(S3Error::new(
                "AccessDenied",
                "anonymous access is not allowed: sign requests with the R2 access key",
            ))
        }
    }

    fn claim<'a>(
        &self,
        credential: &'a str,
        signed_headers: &'a str,
        signature: &'a str,
        amz_date: &'a str,
        now: time::OffsetDateTime,
    ) -> Result<Claim<'a>, S3Error> {
        let parts: Vec<&str> = credential.split('/').collect();
        let [access_key_id, date, region, service, "aws4_request"] = parts[..] else {
            return Err(S3Error::new(
                "AuthorizationHeaderMalformed",
                format!(
                    "the credential `{credential}` is not KEY/DATE/REGION/SERVICE/aws4_request"
                ),
            ));
        };
        if access_key_id != self.access_key_id {
            return Err(S3Error::new(
                "InvalidAccessKeyId",
                "the access key ID does not exist in our records",
            ));
        }
        if service != "s3" {
            return Err(S3Error::new(
                "AuthorizationHeaderMalformed",
                format!("the credential names the service `{service}`; expected `s3`"),
            ));
        }
        let at = parse_amz_date(amz_date).ok_or_else(|| {
            S3Error::new("AccessDenied", format!("`{amz_date}` is not an x-amz-date"))
        })?;
        if !amz_date.starts_with(date) {
            return Err(S3Error::new(
                "SignatureDoesNotMatch",
                "the credential's date is not the date of x-amz-date",
            ));
        }
        if (now - at).whole_seconds().abs() > MAX_SKEW_SECS {
            return Err(S3Error::new(
                "RequestTimeTooSkewed",
                "the difference between the request time and the server's time is too large",
            ));
        }
        Ok(Claim {
            date,
            region,
            service,
            signed_headers,
            signature,
            amz_date,
        })
    }

    /// Checks the signature over the canonical request; returns it (the seed of a chunk chain).
    fn check(
        &self,
        req: &Signed<'_>,
        c: &Claim<'_>,
        payload_hash: &str,
    ) -> Result<String, S3Error> {
        let key = signing_key(&self.secret_access_key, c.date, c.region, c.service);
        let scope = format!("{}/{}/{}/aws4_request", c.date, c.region, c.service);
        let to_sign = |canonical: &str| {
            format!(
                "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
                c.amz_date,
                sha256_hex(canonical.as_bytes())
            )
        };
        // S3 signs the decoded path encoded once; a client that sent characters S3 would have
        // encoded may have signed the path as it sent it.
        let encoded = uri_encode(req.path, false);
        for path in [encoded.as_str(), req.raw_path] {
            let canonical = canonical_request(req, path, c.signed_headers, payload_hash);
            if signs(&key, &to_sign(&canonical), c.signature) {
                return Ok(c.signature.to_string());
            }
        }
        Err(S3Error::new(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
        ))
    }
}

fn payload(
    headers: &HeaderMap,
    payload_hash: &str,
    signed: Option<(String, &Claim<'_>, &Credentials)>,
) -> Result<Payload, S3Error> {
    let decoded_length = || {
        headers
            .get("x-amz-decoded-content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                S3Error::new(
                    "MissingContentLength",
                    "an aws-chunked body needs x-amz-decoded-content-length",
                )
            })
    };
    match payload_hash {
        "UNSIGNED-PAYLOAD" => Ok(Payload::Unsigned),
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER" => Ok(Payload::Chunked {
            signer: None,
            decoded_length: decoded_length()?,
        }),
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" | "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER" => {
            let Some((seed, c, creds)) = signed else {
                return Err(S3Error::new(
                    "InvalidRequest",
                    "a presigned URL cannot carry a signed aws-chunked body",
                ));
            };
            Ok(Payload::Chunked {
                signer: Some(ChunkSigner {
                    key: signing_key(&creds.secret_access_key, c.date, c.region, c.service),
                    amz_date: c.amz_date.to_string(),
                    scope: format!("{}/{}/{}/aws4_request", c.date, c.region, c.service),
                    previous: seed,
                }),
                decoded_length: decoded_length()?,
            })
        }
        h if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(Payload::Sha256(h.to_ascii_lowercase()))
        }
        other => Err(S3Error::new(
            "InvalidArgument",
            format!(
                "x-amz-content-sha256 `{other}` is neither a SHA-256 nor a payload mode S3 knows"
            ),
        )),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use axum::http::HeaderValue;

    pub(crate) fn creds() -> Credentials {
        Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
        }
    }

    pub(crate) fn at_example_time() -> time::OffsetDateTime {
        parse_amz_date("20130524T000000Z").unwrap() + time::Duration::minutes(1)
    }

    pub(crate) fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    /// AWS's example "GET Object" (Signature Calculations for the Authorization Header:
    /// Transferring Payload in a Single Chunk).
    #[test]
    fn aws_get_object_example_verifies_and_a_wrong_secret_does_not() {
        let h = headers(&[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", "20130524T000000Z"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
            ),
        ]);
        let req = Signed {
            method: &Method::GET,
            raw_path: "/test.txt",
            path: "/test.txt",
            query: &[],
            headers: &h,
        };
        assert!(matches!(
            creds().verify_at(&req, at_example_time()),
            Ok(Payload::Sha256(_))
        ));
        let wrong = Credentials {
            secret_access_key: "another".into(),
            ..creds()
        };
        let e = wrong.verify_at(&req, at_example_time()).err().unwrap();
        assert_eq!(e.code, "SignatureDoesNotMatch");
        let late = at_example_time() + time::Duration::hours(1);
        assert_eq!(
            creds().verify_at(&req, late).err().unwrap().code,
            "RequestTimeTooSkewed"
        );
        let other = Credentials {
            access_key_id: "someone-else".into(),
            ..creds()
        };
        assert_eq!(
            other.verify_at(&req, at_example_time()).err().unwrap().code,
            "InvalidAccessKeyId"
        );
        let anonymous = headers(&[("host", "examplebucket.s3.amazonaws.com")]);
        let req = Signed {
            headers: &anonymous,
            ..req
        };
        assert_eq!(
            creds()
                .verify_at(&req, at_example_time())
                .err()
                .unwrap()
                .code,
            "AccessDenied"
        );
    }
}
