//! Buckets, objects and listings.

use axum::body::Body;
use axum::http::{Response, StatusCode, header};
use bytes::Bytes;
use md5::Digest as _;
use serde::Deserialize;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};

use super::super::objects::{BucketRecord, Listed, ObjectRecord, R2};
use super::wire::{self, ETagCond, Xml};
use super::{Endpoint, Req, S3Error, S3Result, uri_encode};
use crate::emulator::clock::{now_ms, rfc3339_ms};

pub const MAX_KEYS: usize = 1000;

pub fn bucket_exists(r2: &R2, bucket: &str) -> S3Result<()> {
    match r2.bucket(bucket).map_err(S3Error::internal)? {
        Some(_) => Ok(()),
        None => Err(S3Error::new(
            "NoSuchBucket",
            format!("the bucket `{bucket}` does not exist"),
        )),
    }
}

fn object(r2: &R2, bucket: &str, key: &str) -> S3Result<ObjectRecord> {
    match r2.get(bucket, key).map_err(S3Error::internal)? {
        Some(o) => Ok(o),
        None => {
            bucket_exists(r2, bucket)?;
            Err(S3Error::new(
                "NoSuchKey",
                "The specified key does not exist.",
            ))
        }
    }
}

/// Writes a request body to a fresh body file; returns (body id, size, MD5). A body that fails
/// its checks (signature, length, `Content-MD5`) leaves no file behind.
pub async fn write_body(r2: &R2, req: &mut Req) -> S3Result<(String, u64, [u8; 16])> {
    let want_md5 = match req.header("content-md5") {
        Some(v) => {
            use base64::Engine as _;
            let md5 = base64::engine::general_purpose::STANDARD
                .decode(v)
                .ok()
                .filter(|d| d.len() == 16)
                .ok_or_else(|| S3Error::new("InvalidDigest", "Content-MD5 is not a base64 MD5"))?;
            Some(md5)
        }
        None => None,
    };
    let (id, path) = r2.new_body();
    let result = async {
        let mut file = tokio::io::BufWriter::with_capacity(
            1 << 20,
            tokio::fs::File::create(&path)
                .await
                .map_err(S3Error::internal)?,
        );
        let mut md5 = md5::Md5::new();
        let mut size = 0u64;
        while let Some(chunk) = req.body.next().await? {
            md5.update(&chunk);
            size += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(S3Error::internal)?;
        }
        file.flush().await.map_err(S3Error::internal)?;
        let md5: [u8; 16] = md5.finalize().into();
        if want_md5.as_ref().is_some_and(|w| w[..] != md5) {
            return Err(S3Error::new(
                "BadDigest",
                "the Content-MD5 you specified did not match what we received",
            ));
        }
        Ok((size, md5))
    }
    .await;
    match result {
        Ok((size, md5)) => Ok((id, size, md5)),
        Err(e) => {
            r2.drop_bodies([id]);
            Err(e)
        }
    }
}

/// `len` bytes of a body file from `start`, as a stream.
async fn read_body(r2: &R2, id: &str, start: u64, len: u64) -> S3Result<Body> {
    let mut file = tokio::fs::File::open(r2.body_path(id))
        .await
        .map_err(|e| S3Error::new("NoSuchKey", e.to_string()))?;
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(S3Error::internal)?;
    let stream = futures_util::stream::unfold((file, len), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let mut buf = vec![0u8; left.min(256 << 10) as usize];
        match file.read_exact(&mut buf).await {
            Ok(_) => {
                let n = buf.len() as u64;
                Some((Ok::<_, std::io::Error>(Bytes::from(buf)), (file, left - n)))
            }
            Err(e) => Some((Err(e), (file, 0))),
        }
    });
    Ok(Body::from_stream(stream))
}

/// Does the request say `encoding-type=url`?
fn url_encoding(req: &Req) -> S3Result<bool> {
    match req.q("encoding-type") {
        None => Ok(false),
        Some("url") => Ok(true),
        Some(other) => Err(S3Error::new(
            "InvalidArgument",
            format!("Invalid Encoding Method specified in Request: `{other}`"),
        )),
    }
}

fn max_keys(req: &Req) -> S3Result<usize> {
    match req.q("max-keys") {
        None => Ok(MAX_KEYS),
        Some(v) => v
            .parse::<i64>()
            .map(|m| m.clamp(0, MAX_KEYS as i64) as usize)
            .map_err(|_| {
                S3Error::new("InvalidArgument", format!("max-keys `{v}` is not a number"))
            }),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteRequest {
    #[serde(default)]
    quiet: bool,
    #[serde(default, rename = "Object")]
    objects: Vec<DeleteKey>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteKey {
    key: String,
}

impl Endpoint {
    pub(super) async fn list_buckets(&self) -> S3Result<Response<Body>> {
        let mut x = Xml::new("ListAllMyBucketsResult", true);
        x.open("Owner").el("ID", "cfdr-emulator").close("Owner");
        x.open("Buckets");
        for b in self.r2.buckets().map_err(S3Error::internal)? {
            x.open("Bucket")
                .el("Name", &b.name)
                .el("CreationDate", &rfc3339_ms(b.created_ms))
                .close("Bucket");
        }
        x.close("Buckets");
        Ok(x.respond("ListAllMyBucketsResult"))
    }

    pub(super) async fn create_bucket(&self, req: Req) -> S3Result<Response<Body>> {
        let name = req.bucket;
        if !super::super::valid_bucket_name(&name) {
            return Err(S3Error::new(
                "InvalidBucketName",
                format!("`{name}` is not a valid bucket name"),
            ));
        }
        let created = self
            .r2
            .create_bucket(&BucketRecord {
                name: name.clone(),
                created_ms: now_ms(),
                location: "wnam".into(),
                jurisdiction: "default".into(),
                storage_class: "Standard".into(),
            })
            .map_err(S3Error::internal)?;
        if !created {
            return Err(S3Error::new(
                "BucketAlreadyOwnedByYou",
                format!("the bucket `{name}` already exists"),
            ));
        }
        Ok(Response::builder()
            .header(header::LOCATION, format!("/{name}"))
            .body(Body::empty())
            .expect("a valid response"))
    }

    pub(super) async fn delete_bucket(&self, req: Req) -> S3Result<Response<Body>> {
        match self
            .r2
            .delete_bucket(&req.bucket)
            .map_err(S3Error::internal)?
        {
            None => Err(S3Error::new(
                "NoSuchBucket",
                format!("the bucket `{}` does not exist", req.bucket),
            )),
            Some(false) => Err(S3Error::new(
                "BucketNotEmpty",
                "The bucket you tried to delete is not empty",
            )),
            Some(true) => Ok(wire::empty(StatusCode::NO_CONTENT)),
        }
    }

    pub(super) async fn head_bucket(&self, req: Req) -> S3Result<Response<Body>> {
        bucket_exists(&self.r2, &req.bucket)?;
        Ok(wire::empty(StatusCode::OK))
    }

    pub(super) async fn bucket_location(&self, req: Req) -> S3Result<Response<Body>> {
        bucket_exists(&self.r2, &req.bucket)?;
        Ok(Xml::new("LocationConstraint", true).respond("LocationConstraint"))
    }

    pub(super) async fn put_object(&self, mut req: Req) -> S3Result<Response<Body>> {
        bucket_exists(&self.r2, &req.bucket)?;
        let attrs = wire::attrs(&req.headers)?;
        let (body, size, md5) = write_body(&self.r2, &mut req).await?;
        let record = ObjectRecord {
            key: req.key().to_string(),
            size,
            etag: hex::encode(md5),
            modified_ms: now_ms(),
            body,
            attrs,
        };
        self.store(&req, &record, true)?;
        Ok(Response::builder()
            .header(header::ETAG, format!("\"{}\"", record.etag))
            .body(Body::empty())
            .expect("a valid response"))
    }

    pub(super) async fn get_object(&self, req: Req, head: bool) -> S3Result<Response<Body>> {
        let o = object(&self.r2, &req.bucket, req.key())?;
        wire::read_check(&o, &req.headers)?;
        let span = if head {
            None
        } else {
            wire::range(req.header("range"), o.size)?
        };
        let mut b = wire::object_headers(Response::builder(), &o);
        let (start, end) = match span {
            None => (0, o.size),
            Some((s, e)) => {
                b = b.status(StatusCode::PARTIAL_CONTENT).header(
                    header::CONTENT_RANGE,
                    format!("bytes {s}-{}/{}", e - 1, o.size),
                );
                (s, e)
            }
        };
        b = b.header(header::CONTENT_LENGTH, end - start);
        let body = if head {
            Body::empty()
        } else {
            read_body(&self.r2, &o.body, start, end - start).await?
        };
        Ok(b.body(body).expect("a valid response"))
    }

    pub(super) async fn delete_object(&self, req: Req) -> S3Result<Response<Body>> {
        bucket_exists(&self.r2, &req.bucket)?;
        if let Some(body) = self
            .r2
            .delete(&req.bucket, req.key())
            .map_err(S3Error::internal)?
        {
            self.r2.drop_bodies([body]);
        }
        Ok(wire::empty(StatusCode::NO_CONTENT))
    }

    pub(super) async fn delete_objects(&self, mut req: Req) -> S3Result<Response<Body>> {
        bucket_exists(&self.r2, &req.bucket)?;
        let asked: DeleteRequest = req.body.document("Delete").await?;
        if asked.objects.len() > MAX_KEYS {
            return Err(S3Error::new(
                "MalformedXML",
                format!(
                    "{} keys in one DeleteObjects; at most {MAX_KEYS}",
                    asked.objects.len()
                ),
            ));
        }
        let mut x = Xml::new("DeleteResult", true);
        for o in asked.objects {
            if let Some(body) = self
                .r2
                .delete(&req.bucket, &o.key)
                .map_err(S3Error::internal)?
            {
                self.r2.drop_bodies([body]);
            }
            if !asked.quiet {
                x.open("Deleted").el("Key", &o.key).close("Deleted");
            }
        }
        Ok(x.respond("DeleteResult"))
    }

    /// ListObjects, v1 or (`list-type=2`) v2.
    pub(super) async fn list_objects(&self, req: Req) -> S3Result<Response<Body>> {
        let v2 = req.q("list-type") == Some("2");
        let url = url_encoding(&req)?;
        let enc = |s: &str| {
            if url {
                uri_encode(s, false)
            } else {
                s.to_string()
            }
        };
        let prefix = req.q("prefix").unwrap_or("");
        let delimiter = req.q("delimiter").filter(|d| !d.is_empty());
        let token = match req.q("continuation-token").filter(|_| v2) {
            Some(t) => Some(
                hex::decode(t)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| {
                        S3Error::new(
                            "InvalidArgument",
                            "The continuation token provided is incorrect",
                        )
                    })?,
            ),
            None => None,
        };
        let after = if v2 {
            token.or_else(|| req.q("start-after").map(str::to_string))
        } else {
            req.q("marker").map(str::to_string)
        }
        .filter(|a| !a.is_empty());
        let max = max_keys(&req)?;
        bucket_exists(&self.r2, &req.bucket)?;
        let (entries, truncated) = self
            .r2
            .list(&req.bucket, prefix, delimiter, after.as_deref(), max)
            .map_err(S3Error::internal)?;

        let mut x = Xml::new("ListBucketResult", true);
        x.el("Name", &req.bucket).el("Prefix", &enc(prefix));
        if v2 {
            if let Some(t) = req.q("continuation-token") {
                x.el("ContinuationToken", t);
            }
            if let Some(s) = req.q("start-after") {
                x.el("StartAfter", &enc(s));
            }
        } else {
            x.el("Marker", &enc(req.q("marker").unwrap_or("")));
        }
        if let Some(d) = delimiter {
            x.el("Delimiter", &enc(d));
        }
        x.el("MaxKeys", req.q("max-keys").unwrap_or("1000"));
        if url {
            x.el("EncodingType", "url");
        }
        x.el("IsTruncated", if truncated { "true" } else { "false" });
        let last = entries.last().map(|e| match e {
            Listed::Object(o) => o.key.clone(),
            Listed::Prefix(p) => p.clone(),
        });
        if truncated && let Some(last) = &last {
            if v2 {
                x.el("NextContinuationToken", &hex::encode(last.as_bytes()));
            } else {
                x.el("NextMarker", &enc(last));
            }
        }
        if v2 {
            x.el("KeyCount", &entries.len().to_string());
        }
        let mut prefixes = Vec::new();
        for e in &entries {
            match e {
                Listed::Object(o) => {
                    x.open("Contents")
                        .el("Key", &enc(&o.key))
                        .el("LastModified", &rfc3339_ms(o.modified_ms))
                        .el("ETag", &format!("\"{}\"", o.etag))
                        .el("Size", &o.size.to_string())
                        .el("StorageClass", "STANDARD")
                        .close("Contents");
                }
                Listed::Prefix(p) => prefixes.push(p),
            }
        }
        for p in prefixes {
            x.open("CommonPrefixes")
                .el("Prefix", &enc(p))
                .close("CommonPrefixes");
        }
        Ok(x.respond("ListBucketResult"))
    }

    pub(super) async fn copy_object(&self, req: Req) -> S3Result<Response<Body>> {
        let source = req.header("x-amz-copy-source").unwrap_or("");
        let source = source.split_once('?').map_or(source, |(s, _)| s);
        let decoded = super::percent_decode(source).ok_or_else(|| {
            S3Error::new(
                "InvalidArgument",
                "x-amz-copy-source is not UTF-8 once decoded",
            )
        })?;
        let Some((src_bucket, src_key)) = decoded.trim_start_matches('/').split_once('/') else {
            return Err(S3Error::new(
                "InvalidArgument",
                format!("x-amz-copy-source `{source}` is not BUCKET/KEY"),
            ));
        };
        let src = object(&self.r2, src_bucket, src_key)?;
        bucket_exists(&self.r2, &req.bucket)?;
        let cond = |n: &str| wire::etag_cond(&req.headers, n);
        if cond("x-amz-copy-source-if-match").is_some_and(|c| !c.names(Some(&src)))
            || cond("x-amz-copy-source-if-none-match").is_some_and(|c| c.names(Some(&src)))
        {
            return Err(S3Error::new(
                "PreconditionFailed",
                "the copy source's condition does not hold",
            ));
        }
        let attrs = match req.header("x-amz-metadata-directive") {
            Some("REPLACE") => wire::attrs(&req.headers)?,
            None | Some("COPY") => src.attrs.clone(),
            Some(other) => {
                return Err(S3Error::new(
                    "InvalidArgument",
                    format!("x-amz-metadata-directive `{other}` is neither COPY nor REPLACE"),
                ));
            }
        };
        let (body, _) = self.r2.new_body();
        tokio::fs::copy(self.r2.body_path(&src.body), self.r2.body_path(&body))
            .await
            .map_err(S3Error::internal)?;
        let record = ObjectRecord {
            key: req.key().to_string(),
            size: src.size,
            etag: src.etag.clone(),
            modified_ms: now_ms(),
            body,
            attrs,
        };
        self.store(&req, &record, false)?;
        let mut x = Xml::new("CopyObjectResult", true);
        x.el("ETag", &format!("\"{}\"", record.etag))
            .el("LastModified", &rfc3339_ms(record.modified_ms));
        Ok(x.respond("CopyObjectResult"))
    }

    /// Commits `record` if the request's write conditions hold (when `conditional`); the body
    /// it replaced is removed, and a refused write leaves nothing behind.
    pub(super) fn store(
        &self,
        req: &Req,
        record: &ObjectRecord,
        conditional: bool,
    ) -> S3Result<()> {
        let (if_match, if_none_match): (Option<ETagCond>, Option<ETagCond>) = if conditional {
            (
                wire::etag_cond(&req.headers, "if-match"),
                wire::etag_cond(&req.headers, "if-none-match"),
            )
        } else {
            (None, None)
        };
        let outcome = self
            .r2
            .put(&req.bucket, record, |current| {
                wire::write_allowed(if_match.as_ref(), if_none_match.as_ref(), current)
            })
            .map_err(S3Error::internal)?;
        match outcome {
            Ok(replaced) => {
                self.r2.drop_bodies(replaced);
                Ok(())
            }
            Err(()) => {
                self.r2.drop_bodies([record.body.clone()]);
                Err(S3Error::new(
                    "PreconditionFailed",
                    "At least one of the pre-conditions you specified did not hold",
                ))
            }
        }
    }
}
