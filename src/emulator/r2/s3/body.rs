//! A request body as an operation reads it: plain, checked against the SHA-256 it was signed
//! with, or decoded from `aws-chunked` with each chunk's signature checked in the chain.

use axum::body::Body;
use bytes::{Buf as _, Bytes, BytesMut};
use futures_util::StreamExt as _;
use sha2::{Digest as _, Sha256};

use super::S3Error;
use super::auth::{EMPTY_SHA256, Payload, sha256_hex, signs};

/// A request body as the operation reads it: decoded from `aws-chunked` and checked against its
/// signed hash or chunk signatures. A body that fails a check yields an error, never bytes.
pub struct BodyReader {
    stream: futures_util::stream::BoxStream<'static, Result<Bytes, axum::Error>>,
    mode: Payload,
    hasher: Sha256,
    buf: BytesMut,
    read: u64,
    done: bool,
}

impl BodyReader {
    pub fn new(body: Body, mode: Payload) -> Self {
        BodyReader {
            stream: body.into_data_stream().boxed(),
            mode,
            hasher: Sha256::new(),
            buf: BytesMut::new(),
            read: 0,
            done: false,
        }
    }

    async fn fill(&mut self) -> Result<bool, S3Error> {
        match self.stream.next().await {
            Some(Ok(b)) => {
                self.buf.extend_from_slice(&b);
                Ok(true)
            }
            Some(Err(e)) => Err(S3Error::new(
                "IncompleteBody",
                format!("the request body broke off: {e}"),
            )),
            None => Ok(false),
        }
    }

    /// The next piece of the body, `None` at its (checked) end.
    pub async fn next(&mut self) -> Result<Option<Bytes>, S3Error> {
        if self.done {
            return Ok(None);
        }
        match &self.mode {
            Payload::Unsigned | Payload::Sha256(_) => match self.stream.next().await {
                Some(Ok(b)) => {
                    if matches!(self.mode, Payload::Sha256(_)) {
                        self.hasher.update(&b);
                    }
                    self.read += b.len() as u64;
                    Ok(Some(b))
                }
                Some(Err(e)) => Err(S3Error::new(
                    "IncompleteBody",
                    format!("the request body broke off: {e}"),
                )),
                None => {
                    self.done = true;
                    if let Payload::Sha256(want) = &self.mode {
                        let got = hex::encode(std::mem::take(&mut self.hasher).finalize());
                        if got != *want {
                            return Err(S3Error::new(
                                "XAmzContentSHA256Mismatch",
                                "the body's SHA-256 is not the x-amz-content-sha256 it was signed with",
                            ));
                        }
                    }
                    Ok(None)
                }
            },
            Payload::Chunked { .. } => self.next_chunk().await,
        }
    }

    /// A line of the chunked framing (without its CRLF).
    async fn line(&mut self) -> Result<String, S3Error> {
        loop {
            if let Some(at) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf.split_to(at);
                self.buf.advance(2);
                return String::from_utf8(line.to_vec()).map_err(|_| {
                    S3Error::new("InvalidRequest", "an aws-chunked header is not text")
                });
            }
            if self.buf.len() > 64 << 10 || !self.fill().await? {
                return Err(S3Error::new(
                    "IncompleteBody",
                    "the aws-chunked body ended inside a chunk header",
                ));
            }
        }
    }

    async fn next_chunk(&mut self) -> Result<Option<Bytes>, S3Error> {
        let header = self.line().await?;
        let (size, signature) = match header.split_once(';') {
            Some((s, ext)) => (s, ext.strip_prefix("chunk-signature=")),
            None => (header.as_str(), None),
        };
        let size = usize::from_str_radix(size.trim(), 16).map_err(|_| {
            S3Error::new(
                "InvalidRequest",
                format!("`{header}` is not an aws-chunked chunk header"),
            )
        })?;
        let framed = if size > 0 { size + 2 } else { 0 };
        while self.buf.len() < framed {
            if !self.fill().await? {
                return Err(S3Error::new(
                    "IncompleteBody",
                    "the aws-chunked body ended inside a chunk",
                ));
            }
        }
        let data = self.buf.split_to(size).freeze();
        if size > 0 && &self.buf[..2] != b"\r\n" {
            return Err(S3Error::new(
                "InvalidRequest",
                "an aws-chunked chunk does not end in CRLF",
            ));
        }
        let Payload::Chunked {
            signer,
            decoded_length,
        } = &mut self.mode
        else {
            unreachable!("next_chunk reads chunked bodies only")
        };
        if let Some(s) = signer {
            let to_sign = format!(
                "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{}\n{EMPTY_SHA256}\n{}",
                s.amz_date,
                s.scope,
                s.previous,
                sha256_hex(&data)
            );
            let sig = signature.unwrap_or("");
            if !signs(&s.key, &to_sign, sig) {
                return Err(S3Error::new(
                    "SignatureDoesNotMatch",
                    "an aws-chunked chunk's signature does not match",
                ));
            }
            s.previous = sig.to_string();
        }
        self.read += size as u64;
        if size > 0 {
            self.buf.advance(2);
            if self.read > *decoded_length {
                return Err(S3Error::new(
                    "IncompleteBody",
                    "the aws-chunked body is longer than x-amz-decoded-content-length",
                ));
            }
            return Ok(Some(data));
        }
        // The last chunk: trailers (a checksum, perhaps) up to an empty line, or the end.
        self.done = true;
        if self.read != *decoded_length {
            return Err(S3Error::new(
                "IncompleteBody",
                format!(
                    "the aws-chunked body holds {} bytes; x-amz-decoded-content-length says {decoded_length}",
                    self.read
                ),
            ));
        }
        loop {
            if self.buf.is_empty() && !self.fill().await? {
                return Ok(None);
            }
            if self.line().await?.is_empty() {
                return Ok(None);
            }
        }
    }

    /// The body as an XML document `name` (at most 4 MiB), MalformedXML when it does not parse.
    pub async fn document<T: serde::de::DeserializeOwned>(
        &mut self,
        name: &str,
    ) -> Result<T, S3Error> {
        let xml = self.all(4 << 20).await?;
        quick_xml::de::from_reader(&xml[..]).map_err(|e| {
            S3Error::new(
                "MalformedXML",
                format!("the {name} document does not parse: {e}"),
            )
        })
    }

    /// The whole body, refused past `limit` bytes.
    pub async fn all(&mut self, limit: usize) -> Result<Bytes, S3Error> {
        let mut out = BytesMut::new();
        while let Some(b) = self.next().await? {
            out.extend_from_slice(&b);
            if out.len() > limit {
                return Err(S3Error::new(
                    "MaxMessageLengthExceeded",
                    format!("the request body is over {limit} bytes"),
                ));
            }
        }
        Ok(out.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::r2::s3::auth::Signed;
    use crate::emulator::r2::s3::auth::tests::{at_example_time, creds, headers};
    use axum::http::{HeaderMap, Method};

    fn chunked_example() -> (HeaderMap, Vec<u8>) {
        let h = headers(&[
            ("host", "s3.amazonaws.com"),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
            ("content-encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", "66560"),
            ("content-length", "66824"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
            ),
        ]);
        let mut body = Vec::new();
        body.extend_from_slice(b"10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n");
        body.extend(std::iter::repeat_n(b'a', 65536));
        body.extend_from_slice(b"\r\n400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n");
        body.extend(std::iter::repeat_n(b'a', 1024));
        body.extend_from_slice(b"\r\n0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n");
        assert_eq!(body.len(), 66824);
        (h, body)
    }

    async fn read_chunked(h: &HeaderMap, body: Vec<u8>) -> Result<Bytes, S3Error> {
        let req = Signed {
            method: &Method::PUT,
            raw_path: "/examplebucket/chunkObject.txt",
            path: "/examplebucket/chunkObject.txt",
            query: &[],
            headers: h,
        };
        let mode = creds().verify_at(&req, at_example_time())?;
        BodyReader::new(Body::from(body), mode).all(1 << 20).await
    }

    /// AWS's example "PUT Object" in chunks (Transferring Payload in Multiple Chunks): the
    /// seed signature and the chain of chunk signatures.
    #[tokio::test]
    async fn aws_chunked_upload_example_decodes_and_a_changed_byte_is_refused() {
        let (h, body) = chunked_example();
        let got = read_chunked(&h, body.clone()).await.unwrap();
        assert_eq!(got.len(), 66560);
        assert!(got.iter().all(|b| *b == b'a'));

        let mut tampered = body.clone();
        tampered[200] = b'b';
        assert_eq!(
            read_chunked(&h, tampered).await.unwrap_err().code,
            "SignatureDoesNotMatch"
        );
        let short = body[..body.len() - 90].to_vec();
        assert_eq!(
            read_chunked(&h, short).await.unwrap_err().code,
            "IncompleteBody"
        );
    }

    #[tokio::test]
    async fn unsigned_trailer_bodies_decode_and_signed_hashes_are_checked() {
        let mode = Payload::Chunked {
            signer: None,
            decoded_length: 11,
        };
        let body =
            b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n".to_vec();
        let got = BodyReader::new(Body::from(body), mode)
            .all(1 << 20)
            .await
            .unwrap();
        assert_eq!(&got[..], b"hello world");

        let right = Payload::Sha256(sha256_hex(b"hello"));
        assert_eq!(
            &BodyReader::new(Body::from("hello"), right)
                .all(100)
                .await
                .unwrap()[..],
            b"hello"
        );
        let wrong = Payload::Sha256(sha256_hex(b"hellO"));
        let e = BodyReader::new(Body::from("hello"), wrong)
            .all(100)
            .await
            .unwrap_err();
        assert_eq!(e.code, "XAmzContentSHA256Mismatch");
    }
}
