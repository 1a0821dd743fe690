//! AWS Signature Version 4 for R2's S3 endpoint (service `s3`, region `auto`), and the URI
//! encoding S3 wants. Pure functions: the client supplies the time.

use hmac::{KeyInit as _, Mac as _};
use sha2::{Digest as _, Sha256};

/// `x-amz-content-sha256` for a body that is not hashed (R2 and S3 accept it over HTTPS).
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// S3's URI encoding: every byte but `A-Z a-z 0-9 - _ . ~` as `%XX` (upper case); `/` kept
/// unless `encode_slash`.
pub fn uri_encode(s: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if !encode_slash => out.push('/'),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 15)] as char);
            }
        }
    }
    out
}

/// Decodes `%XX` (and `+` as a space, as S3's `encoding-type=url` listings may write it).
pub fn url_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The path a request for `key` is sent to, and the canonical path it is signed with.
/// S3 signs the key encoded with its slashes kept. HTTP clients, though, resolve `.` and `..`
/// segments (`/b/../x` becomes `/x`), so a key holding such a segment is sent with its
/// slashes as `%2F`: S3 decodes the path before it signs, so both name the same key. A key that
/// is itself `.` or `..` cannot be sent through a URL at all.
pub fn object_paths(bucket: &str, key: &str) -> Result<(String, String), String> {
    if key == "." || key == ".." {
        return Err(format!(
            "the key `{key}` cannot be addressed through an HTTP URL (a client resolves it as a path segment)"
        ));
    }
    let signed = format!("/{bucket}/{}", uri_encode(key, false));
    let dotted = key.split('/').any(|s| s == "." || s == "..");
    let sent = if dotted {
        format!("/{bucket}/{}", uri_encode(key, true))
    } else {
        signed.clone()
    };
    Ok((sent, signed))
}

pub struct Request<'a> {
    pub method: &'a str,
    /// The canonical path (already encoded).
    pub path: &'a str,
    /// Query pairs, not encoded.
    pub query: &'a [(String, String)],
    /// Headers to sign, names in lower case (`host` and `x-amz-*` at least).
    pub headers: &'a [(String, String)],
    pub payload_sha256: &'a str,
}

/// The query string as sent and as signed: pairs sorted, names and values encoded.
pub fn canonical_query(query: &[(String, String)]) -> String {
    let mut q: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (uri_encode(k, true), uri_encode(v, true)))
        .collect();
    q.sort();
    q.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = hmac::Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// The `Authorization` header for `req` at `amz_date` (`20130524T000000Z`).
pub fn authorization(
    req: &Request<'_>,
    access_key_id: &str,
    secret_access_key: &str,
    region: &str,
    amz_date: &str,
) -> String {
    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    headers.sort();
    let signed_headers = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        req.path,
        canonical_query(req.query),
        headers
            .iter()
            .map(|(k, v)| format!("{k}:{v}\n"))
            .collect::<String>(),
        signed_headers,
        req.payload_sha256
    );
    let date = &amz_date[..8];
    let scope = format!("{date}/{region}/s3/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let k_date = hmac(
        format!("AWS4{secret_access_key}").as_bytes(),
        date.as_bytes(),
    );
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, b"s3");
    let k_signing = hmac(&k_service, b"aws4_request");
    let signature = hex::encode(hmac(&k_signing, to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={access_key_id}/{scope},SignedHeaders={signed_headers},Signature={signature}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The GetObject example of AWS's "Signature Calculations for the Authorization Header".
    #[test]
    fn signs_the_aws_documentation_example() {
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let headers = [
            ("host", "examplebucket.s3.amazonaws.com"),
            ("range", "bytes=0-9"),
            ("x-amz-content-sha256", empty),
            ("x-amz-date", "20130524T000000Z"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let auth = authorization(
            &Request {
                method: "GET",
                path: "/test.txt",
                query: &[],
                headers: &headers,
                payload_sha256: empty,
            },
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "us-east-1",
            "20130524T000000Z",
        );
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn keys_are_encoded_byte_for_byte_and_dot_segments_travel_as_one() {
        assert_eq!(
            object_paths("b", "ü ñ/a+b%2F").unwrap(),
            (
                "/b/%C3%BC%20%C3%B1/a%2Bb%252F".to_string(),
                "/b/%C3%BC%20%C3%B1/a%2Bb%252F".to_string()
            )
        );
        assert_eq!(
            object_paths("b", "../victim/x").unwrap(),
            (
                "/b/..%2Fvictim%2Fx".to_string(),
                "/b/../victim/x".to_string()
            )
        );
        assert_eq!(object_paths("b", "a//b").unwrap().0, "/b/a//b");
        assert!(object_paths("b", "..").unwrap_err().contains("`..`"));
    }

    #[test]
    fn listing_keys_decode_exactly() {
        assert_eq!(
            url_decode("%C3%BC%20a+b%2Bc%252F").as_deref(),
            Some("ü a b+c%2F")
        );
        assert_eq!(url_decode("%zz"), None);
    }
}
