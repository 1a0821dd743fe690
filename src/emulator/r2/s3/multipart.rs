//! Multipart uploads as R2 keeps them: parts re-sent replace, every part but the last at least
//! 5 MiB and all of one size, the object's ETag the MD5 of the parts' MD5s with `-N`.

use axum::body::Body;
use axum::http::{Response, StatusCode, header};
use md5::Digest as _;
use serde::Deserialize;
use tokio::io::AsyncWriteExt as _;

use super::super::objects::{ObjectRecord, Part, Upload};
use super::ops::{bucket_exists, write_body};
use super::wire::{self, Xml};
use super::{Endpoint, Req, S3Error, S3Result};
use crate::emulator::clock::now_ms;

/// Parts other than the last: at least 5 MiB.
const MIN_PART: u64 = 5 << 20;

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct CompleteRequest {
    #[serde(default, rename = "Part")]
    parts: Vec<CompletePart>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CompletePart {
    part_number: u32,
    #[serde(default, rename = "ETag")]
    etag: Option<String>,
}

impl Endpoint {
    fn upload_of(&self, req: &Req) -> S3Result<Upload> {
        let id = req.q("uploadId").unwrap_or("");
        match self.r2.upload(id).map_err(S3Error::internal)? {
            Some(u) if u.bucket == req.bucket && u.key == req.key() => Ok(u),
            _ => Err(S3Error::new(
                "NoSuchUpload",
                "The specified multipart upload does not exist.",
            )),
        }
    }

    pub(super) async fn create_multipart(&self, req: Req) -> S3Result<Response<Body>> {
        bucket_exists(&self.r2, &req.bucket)?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let up = Upload {
            bucket: req.bucket.clone(),
            key: req.key().to_string(),
            attrs: wire::attrs(&req.headers)?,
        };
        self.r2
            .create_upload(&id, &up, now_ms())
            .map_err(S3Error::internal)?;
        let mut x = Xml::new("InitiateMultipartUploadResult", true);
        x.el("Bucket", &req.bucket)
            .el("Key", req.key())
            .el("UploadId", &id);
        Ok(x.respond("InitiateMultipartUploadResult"))
    }

    pub(super) async fn upload_part(&self, mut req: Req) -> S3Result<Response<Body>> {
        self.upload_of(&req)?;
        let asked = req.q("partNumber").unwrap_or("");
        let number = asked
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| {
                S3Error::new(
                    "InvalidArgument",
                    format!("part number `{asked}` is outside 1..=10000"),
                )
            })?;
        let (body, size, md5) = write_body(&self.r2, &mut req).await?;
        let etag = hex::encode(md5);
        let part = Part {
            number,
            size,
            etag: etag.clone(),
            body,
        };
        let upload = req.q("uploadId").unwrap_or("");
        if let Some(old) = self.r2.put_part(upload, &part).map_err(S3Error::internal)? {
            self.r2.drop_bodies([old]);
        }
        Ok(Response::builder()
            .header(header::ETAG, format!("\"{etag}\""))
            .body(Body::empty())
            .expect("a valid response"))
    }

    pub(super) async fn complete_multipart(&self, mut req: Req) -> S3Result<Response<Body>> {
        let up = self.upload_of(&req)?;
        let upload = req.q("uploadId").unwrap_or("").to_string();
        let asked = req
            .body
            .document::<CompleteRequest>("CompleteMultipartUpload")
            .await?
            .parts;
        if asked.is_empty() {
            return Err(S3Error::new("MalformedXML", "the upload names no part"));
        }
        let stored = self.r2.parts(&upload).map_err(S3Error::internal)?;
        let mut chosen: Vec<&Part> = Vec::new();
        for (n, p) in asked.iter().enumerate() {
            if n > 0 && p.part_number <= asked[n - 1].part_number {
                return Err(S3Error::new(
                    "InvalidPartOrder",
                    "The list of parts was not in ascending order.",
                ));
            }
            let found = stored
                .iter()
                .find(|s| s.number == p.part_number)
                .filter(|s| {
                    p.etag
                        .as_ref()
                        .is_none_or(|e| e.trim().trim_matches('"') == s.etag)
                })
                .ok_or_else(|| {
                    S3Error::new(
                        "InvalidPart",
                        format!("part {} was not uploaded", p.part_number),
                    )
                })?;
            chosen.push(found);
        }
        let (_last, rest) = chosen.split_last().expect("at least one part");
        if let Some(small) = rest.iter().find(|p| p.size < MIN_PART) {
            return Err(S3Error::new(
                "EntityTooSmall",
                format!(
                    "part {} is {} bytes; every part but the last must be at least 5 MiB",
                    small.number, small.size
                ),
            ));
        }
        if let Some(odd) = rest.iter().find(|p| p.size != rest[0].size) {
            return Err(S3Error::new(
                "InvalidPart",
                format!(
                    "part {} is {} bytes, part {} is {}: R2 needs every part but the last to be the same size",
                    rest[0].number, rest[0].size, odd.number, odd.size
                ),
            ));
        }
        let (body, path) = self.r2.new_body();
        let mut out = tokio::fs::File::create(&path)
            .await
            .map_err(S3Error::internal)?;
        let mut md5s = md5::Md5::new();
        let mut size = 0;
        for p in &chosen {
            let mut f = tokio::fs::File::open(self.r2.body_path(&p.body))
                .await
                .map_err(S3Error::internal)?;
            size += tokio::io::copy(&mut f, &mut out)
                .await
                .map_err(S3Error::internal)?;
            md5s.update(hex::decode(&p.etag).map_err(S3Error::internal)?);
        }
        out.flush().await.map_err(S3Error::internal)?;
        let record = ObjectRecord {
            key: up.key,
            size,
            etag: format!("{}-{}", hex::encode(md5s.finalize()), chosen.len()),
            modified_ms: now_ms(),
            body,
            attrs: up.attrs,
        };
        self.store(&req, &record, true)?;
        let parts = self.r2.end_upload(&upload).map_err(S3Error::internal)?;
        self.r2.drop_bodies(parts);
        let mut x = Xml::new("CompleteMultipartUploadResult", true);
        x.el("Location", &format!("/{}/{}", req.bucket, record.key))
            .el("Bucket", &req.bucket)
            .el("Key", &record.key)
            .el("ETag", &format!("\"{}\"", record.etag));
        Ok(x.respond("CompleteMultipartUploadResult"))
    }

    pub(super) async fn abort_multipart(&self, req: Req) -> S3Result<Response<Body>> {
        self.upload_of(&req)?;
        let parts = self
            .r2
            .end_upload(req.q("uploadId").unwrap_or(""))
            .map_err(S3Error::internal)?;
        self.r2.drop_bodies(parts);
        Ok(wire::empty(StatusCode::NO_CONTENT))
    }
}
