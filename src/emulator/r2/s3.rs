//! R2's S3 endpoint: s3s parses the protocol and checks SigV4; this backend keeps the data in
//! [`R2`](super::objects::R2). Keys are opaque (at most 1,024 bytes, checked by s3s), listings
//! follow S3's prefix and delimiter rules in byte order, `encoding-type=url` is honoured,
//! conditional reads and writes answer 304/412, multipart parts follow R2's size rules.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt as _;
use md5::Digest as _;
use s3s::auth::SimpleAuth;
use s3s::dto::*;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};

use super::objects::{Attrs, BucketRecord, Listed, ObjectRecord, Part, R2, Upload};
use crate::emulator::clock::now_ms;

/// R2: object metadata (user keys and values) at most 8,192 bytes.
const METADATA_LIMIT: usize = 8192;
/// Parts other than the last: at least 5 MiB.
const MIN_PART: u64 = 5 << 20;
const MAX_KEYS: usize = 1000;

/// The service the S3 listener serves: SigV4 with the configured key pair.
pub fn service(r2: Arc<R2>, access_key_id: &str, secret_access_key: &str) -> S3Service {
    let mut builder = S3ServiceBuilder::new(Backend { r2 });
    builder.set_auth(SimpleAuth::from_single(access_key_id, secret_access_key));
    builder.build()
}

struct Backend {
    r2: Arc<R2>,
}

fn internal(e: impl std::fmt::Display) -> s3s::S3Error {
    s3_error!(InternalError, "{e}")
}

fn timestamp(ms: i64) -> Timestamp {
    Timestamp::from(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64))
}

fn offset(t: &Timestamp) -> time::OffsetDateTime {
    t.clone().into()
}

/// Does `cond` (`If-Match` / `If-None-Match`) name the object `o`?
fn names(cond: &ETagCondition, o: Option<&ObjectRecord>) -> bool {
    match (cond, o) {
        (_, None) => false,
        (ETagCondition::Any, Some(_)) => true,
        (ETagCondition::ETag(e), Some(o)) => e.value().trim_matches('"') == o.etag,
    }
}

/// A write's `If-Match` / `If-None-Match` against what is stored now.
fn write_allowed(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    current: Option<&ObjectRecord>,
) -> bool {
    if_match.is_none_or(|c| names(c, current)) && if_none_match.is_none_or(|c| !names(c, current))
}

/// The read conditions of GetObject and HeadObject, in RFC 9110's order.
fn read_check(
    o: &ObjectRecord,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<()> {
    let modified = offset(&timestamp(o.modified_ms))
        .replace_millisecond(0)
        .ok();
    if let Some(c) = if_match {
        if !names(c, Some(o)) {
            return Err(s3_error!(PreconditionFailed));
        }
    } else if let (Some(t), Some(m)) = (if_unmodified_since, modified)
        && m > offset(t)
    {
        return Err(s3_error!(PreconditionFailed));
    }
    if let Some(c) = if_none_match {
        if names(c, Some(o)) {
            return Err(s3_error!(NotModified));
        }
    } else if let (Some(t), Some(m)) = (if_modified_since, modified)
        && m <= offset(t)
    {
        return Err(s3_error!(NotModified));
    }
    Ok(())
}

fn check_metadata(metadata: Option<&Metadata>) -> S3Result<()> {
    let size: usize = metadata
        .map(|m| m.iter().map(|(k, v)| k.len() + v.len()).sum())
        .unwrap_or(0);
    if size > METADATA_LIMIT {
        return Err(s3_error!(
            MetadataTooLarge,
            "object metadata is {size} bytes; R2 allows at most {METADATA_LIMIT}"
        ));
    }
    Ok(())
}

fn attrs(
    content_type: Option<String>,
    content_encoding: Option<String>,
    content_disposition: Option<String>,
    content_language: Option<String>,
    cache_control: Option<String>,
    metadata: Option<Metadata>,
) -> Attrs {
    Attrs {
        content_type,
        content_encoding,
        content_disposition,
        content_language,
        cache_control,
        metadata: metadata.unwrap_or_default().into_iter().collect(),
    }
}

/// Writes a request body to a fresh body file; returns (body id, size, MD5).
async fn write_body(r2: &R2, body: Option<StreamingBlob>) -> S3Result<(String, u64, [u8; 16])> {
    let (id, path) = r2.new_body();
    let result = async {
        let mut file = tokio::io::BufWriter::with_capacity(
            1 << 20,
            tokio::fs::File::create(&path).await.map_err(internal)?,
        );
        let mut md5 = md5::Md5::new();
        let mut size = 0u64;
        if let Some(mut body) = body {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| s3_error!(IncompleteBody, "{e}"))?;
                md5.update(&chunk);
                size += chunk.len() as u64;
                file.write_all(&chunk).await.map_err(internal)?;
            }
        }
        file.flush().await.map_err(internal)?;
        Ok::<_, s3s::S3Error>((size, md5.finalize().into()))
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
async fn read_body(r2: &R2, id: &str, start: u64, len: u64) -> S3Result<StreamingBlob> {
    let mut file = tokio::fs::File::open(r2.body_path(id))
        .await
        .map_err(|e| s3_error!(NoSuchKey, "{e}"))?;
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(internal)?;
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
    Ok(StreamingBlob::wrap(stream))
}

/// S3's `encoding-type=url`: every byte but unreserved characters and `/` percent-encoded.
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn bucket_exists(r2: &R2, bucket: &str) -> S3Result<()> {
    match r2.bucket(bucket).map_err(internal)? {
        Some(_) => Ok(()),
        None => Err(s3_error!(NoSuchBucket)),
    }
}

fn object(r2: &R2, bucket: &str, key: &str) -> S3Result<ObjectRecord> {
    match r2.get(bucket, key).map_err(internal)? {
        Some(o) => Ok(o),
        None => {
            bucket_exists(r2, bucket)?;
            Err(s3_error!(NoSuchKey))
        }
    }
}

/// A listing page for either version: the entries and whether more follow.
struct Page {
    contents: Vec<Object>,
    prefixes: Vec<CommonPrefix>,
    truncated: bool,
    last: Option<String>,
}

fn list_page(
    r2: &R2,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    after: Option<&str>,
    max_keys: Option<i32>,
    url: bool,
) -> S3Result<Page> {
    bucket_exists(r2, bucket)?;
    let max = max_keys.map_or(MAX_KEYS, |m| m.clamp(0, MAX_KEYS as i32) as usize);
    let (entries, truncated) = r2
        .list(bucket, prefix, delimiter, after, max)
        .map_err(internal)?;
    let enc = |s: &str| if url { url_encode(s) } else { s.to_string() };
    let mut page = Page {
        contents: Vec::new(),
        prefixes: Vec::new(),
        truncated,
        last: None,
    };
    for e in entries {
        match e {
            Listed::Object(o) => {
                page.contents.push(Object {
                    key: Some(enc(&o.key)),
                    size: Some(o.size as i64),
                    e_tag: Some(ETag::Strong(o.etag.clone())),
                    last_modified: Some(timestamp(o.modified_ms)),
                    storage_class: Some(ObjectStorageClass::from_static(
                        ObjectStorageClass::STANDARD,
                    )),
                    ..Default::default()
                });
                page.last = Some(o.key);
            }
            Listed::Prefix(p) => {
                page.prefixes.push(CommonPrefix {
                    prefix: Some(enc(&p)),
                });
                page.last = Some(p);
            }
        }
    }
    Ok(page)
}

fn encoding(e: Option<&EncodingType>) -> S3Result<bool> {
    match e.map(EncodingType::as_str) {
        None => Ok(false),
        Some(EncodingType::URL) => Ok(true),
        Some(other) => Err(s3_error!(
            InvalidArgument,
            "Invalid Encoding Method specified in Request: `{other}`"
        )),
    }
}

#[async_trait::async_trait]
impl S3 for Backend {
    async fn list_buckets(
        &self,
        _req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let buckets = self
            .r2
            .buckets()
            .map_err(internal)?
            .into_iter()
            .map(|b| Bucket {
                creation_date: Some(timestamp(b.created_ms)),
                name: Some(b.name),
                bucket_region: None,
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            ..Default::default()
        }))
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let name = req.input.bucket;
        if !super::valid_bucket_name(&name) {
            return Err(s3_error!(InvalidBucketName));
        }
        let created = self
            .r2
            .create_bucket(&BucketRecord {
                name,
                created_ms: now_ms(),
                location: "wnam".into(),
                jurisdiction: "default".into(),
                storage_class: "Standard".into(),
            })
            .map_err(internal)?;
        if !created {
            return Err(s3_error!(BucketAlreadyOwnedByYou));
        }
        Ok(S3Response::new(CreateBucketOutput::default()))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        match self.r2.delete_bucket(&req.input.bucket).map_err(internal)? {
            None => Err(s3_error!(NoSuchBucket)),
            Some(false) => Err(s3_error!(BucketNotEmpty)),
            Some(true) => Ok(S3Response::new(DeleteBucketOutput::default())),
        }
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        bucket_exists(&self.r2, &req.input.bucket)?;
        Ok(S3Response::new(HeadBucketOutput::default()))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        bucket_exists(&self.r2, &req.input.bucket)?;
        Ok(S3Response::new(GetBucketLocationOutput::default()))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let i = req.input;
        bucket_exists(&self.r2, &i.bucket)?;
        check_metadata(i.metadata.as_ref())?;
        let (body, size, md5) = write_body(&self.r2, i.body).await?;
        if let Some(want) = &i.content_md5 {
            use base64::Engine as _;
            if base64::engine::general_purpose::STANDARD.encode(md5) != *want {
                self.r2.drop_bodies([body]);
                return Err(s3_error!(BadDigest));
            }
        }
        let record = ObjectRecord {
            key: i.key,
            size,
            etag: hex::encode(md5),
            modified_ms: now_ms(),
            body: body.clone(),
            attrs: attrs(
                i.content_type,
                i.content_encoding,
                i.content_disposition,
                i.content_language,
                i.cache_control,
                i.metadata,
            ),
        };
        self.store(
            &i.bucket,
            &record,
            i.if_match.as_ref(),
            i.if_none_match.as_ref(),
        )?;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(ETag::Strong(record.etag)),
            size: Some(size as i64),
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let i = req.input;
        let o = object(&self.r2, &i.bucket, &i.key)?;
        read_check(
            &o,
            i.if_match.as_ref(),
            i.if_none_match.as_ref(),
            i.if_modified_since.as_ref(),
            i.if_unmodified_since.as_ref(),
        )?;
        let (start, end, content_range) = match &i.range {
            None => (0, o.size, None),
            Some(r) => {
                let got = r.check(o.size)?;
                let cr = format!("bytes {}-{}/{}", got.start, got.end - 1, o.size);
                (got.start, got.end, Some(cr))
            }
        };
        let body = read_body(&self.r2, &o.body, start, end - start).await?;
        let a = o.attrs;
        Ok(S3Response::new(GetObjectOutput {
            body: Some(body),
            content_length: Some((end - start) as i64),
            content_range,
            accept_ranges: Some("bytes".into()),
            e_tag: Some(ETag::Strong(o.etag)),
            last_modified: Some(timestamp(o.modified_ms)),
            content_type: a.content_type,
            content_encoding: a.content_encoding,
            content_disposition: a.content_disposition,
            content_language: a.content_language,
            cache_control: a.cache_control,
            metadata: (!a.metadata.is_empty()).then(|| a.metadata.into_iter().collect()),
            ..Default::default()
        }))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let i = req.input;
        let o = object(&self.r2, &i.bucket, &i.key)?;
        read_check(
            &o,
            i.if_match.as_ref(),
            i.if_none_match.as_ref(),
            i.if_modified_since.as_ref(),
            i.if_unmodified_since.as_ref(),
        )?;
        let a = o.attrs;
        Ok(S3Response::new(HeadObjectOutput {
            content_length: Some(o.size as i64),
            accept_ranges: Some("bytes".into()),
            e_tag: Some(ETag::Strong(o.etag)),
            last_modified: Some(timestamp(o.modified_ms)),
            content_type: a.content_type,
            content_encoding: a.content_encoding,
            content_disposition: a.content_disposition,
            content_language: a.content_language,
            cache_control: a.cache_control,
            metadata: (!a.metadata.is_empty()).then(|| a.metadata.into_iter().collect()),
            ..Default::default()
        }))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let i = req.input;
        bucket_exists(&self.r2, &i.bucket)?;
        if let Some(body) = self.r2.delete(&i.bucket, &i.key).map_err(internal)? {
            self.r2.drop_bodies([body]);
        }
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let i = req.input;
        bucket_exists(&self.r2, &i.bucket)?;
        if i.delete.objects.len() > MAX_KEYS {
            return Err(s3_error!(
                MalformedXML,
                "{} keys in one DeleteObjects; at most {MAX_KEYS}",
                i.delete.objects.len()
            ));
        }
        let mut deleted = Vec::new();
        for o in i.delete.objects {
            if let Some(body) = self.r2.delete(&i.bucket, &o.key).map_err(internal)? {
                self.r2.drop_bodies([body]);
            }
            deleted.push(DeletedObject {
                key: Some(o.key),
                ..Default::default()
            });
        }
        let quiet = i.delete.quiet.unwrap_or(false);
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: (!quiet).then_some(deleted),
            ..Default::default()
        }))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let i = req.input;
        let url = encoding(i.encoding_type.as_ref())?;
        let prefix = i.prefix.clone().unwrap_or_default();
        let page = list_page(
            &self.r2,
            &i.bucket,
            &prefix,
            i.delimiter.as_deref(),
            i.marker.as_deref().filter(|m| !m.is_empty()),
            i.max_keys,
            url,
        )?;
        let enc = |s: String| if url { url_encode(&s) } else { s };
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(i.bucket),
            prefix: Some(enc(prefix)),
            marker: i.marker.map(enc),
            delimiter: i.delimiter.map(enc),
            max_keys: Some(i.max_keys.unwrap_or(MAX_KEYS as i32)),
            is_truncated: Some(page.truncated),
            next_marker: page.last.filter(|_| page.truncated).map(enc),
            contents: Some(page.contents),
            common_prefixes: Some(page.prefixes),
            encoding_type: i.encoding_type,
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let i = req.input;
        let url = encoding(i.encoding_type.as_ref())?;
        let prefix = i.prefix.clone().unwrap_or_default();
        let token = match i.continuation_token.as_deref() {
            Some(t) => Some(
                hex::decode(t)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| {
                        s3_error!(
                            InvalidArgument,
                            "The continuation token provided is incorrect"
                        )
                    })?,
            ),
            None => None,
        };
        let after = token
            .clone()
            .or_else(|| i.start_after.clone().filter(|s| !s.is_empty()));
        let page = list_page(
            &self.r2,
            &i.bucket,
            &prefix,
            i.delimiter.as_deref(),
            after.as_deref(),
            i.max_keys,
            url,
        )?;
        let enc = |s: String| if url { url_encode(&s) } else { s };
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(i.bucket),
            prefix: Some(enc(prefix)),
            delimiter: i.delimiter.map(enc),
            max_keys: Some(i.max_keys.unwrap_or(MAX_KEYS as i32)),
            key_count: Some((page.contents.len() + page.prefixes.len()) as i32),
            continuation_token: i.continuation_token,
            start_after: i.start_after.map(enc),
            is_truncated: Some(page.truncated),
            next_continuation_token: page
                .last
                .filter(|_| page.truncated)
                .map(|l| hex::encode(l.as_bytes())),
            contents: Some(page.contents),
            common_prefixes: Some(page.prefixes),
            encoding_type: i.encoding_type,
            ..Default::default()
        }))
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let i = req.input;
        let CopySource::Bucket {
            bucket: src_bucket,
            key: src_key,
            ..
        } = &i.copy_source
        else {
            return Err(s3_error!(NotImplemented));
        };
        let src = object(&self.r2, src_bucket, src_key)?;
        bucket_exists(&self.r2, &i.bucket)?;
        if let Some(c) = &i.copy_source_if_match
            && !names(c, Some(&src))
        {
            return Err(s3_error!(PreconditionFailed));
        }
        if let Some(c) = &i.copy_source_if_none_match
            && names(c, Some(&src))
        {
            return Err(s3_error!(PreconditionFailed));
        }
        let replace = i
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        if replace {
            check_metadata(i.metadata.as_ref())?;
        }
        let (body, _) = self.r2.new_body();
        tokio::fs::copy(self.r2.body_path(&src.body), self.r2.body_path(&body))
            .await
            .map_err(internal)?;
        let record = ObjectRecord {
            key: i.key,
            size: src.size,
            etag: src.etag.clone(),
            modified_ms: now_ms(),
            body,
            attrs: if replace {
                attrs(
                    i.content_type,
                    i.content_encoding,
                    i.content_disposition,
                    i.content_language,
                    i.cache_control,
                    i.metadata,
                )
            } else {
                src.attrs
            },
        };
        self.store(&i.bucket, &record, None, None)?;
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(ETag::Strong(record.etag)),
                last_modified: Some(timestamp(record.modified_ms)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let i = req.input;
        bucket_exists(&self.r2, &i.bucket)?;
        check_metadata(i.metadata.as_ref())?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let up = Upload {
            bucket: i.bucket.clone(),
            key: i.key.clone(),
            attrs: attrs(
                i.content_type,
                i.content_encoding,
                i.content_disposition,
                i.content_language,
                i.cache_control,
                i.metadata,
            ),
        };
        self.r2
            .create_upload(&id, &up, now_ms())
            .map_err(internal)?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(i.bucket),
            key: Some(i.key),
            upload_id: Some(id),
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let i = req.input;
        self.upload_of(&i.upload_id, &i.bucket, &i.key)?;
        if !(1..=10_000).contains(&i.part_number) {
            return Err(s3_error!(
                InvalidArgument,
                "part number {} is outside 1..=10000",
                i.part_number
            ));
        }
        let (body, size, md5) = write_body(&self.r2, i.body).await?;
        let etag = hex::encode(md5);
        let part = Part {
            number: i.part_number as u32,
            size,
            etag: etag.clone(),
            body,
        };
        if let Some(old) = self.r2.put_part(&i.upload_id, &part).map_err(internal)? {
            self.r2.drop_bodies([old]);
        }
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(ETag::Strong(etag)),
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let i = req.input;
        let up = self.upload_of(&i.upload_id, &i.bucket, &i.key)?;
        let stored = self.r2.parts(&i.upload_id).map_err(internal)?;
        let asked = i.multipart_upload.and_then(|m| m.parts).unwrap_or_default();
        if asked.is_empty() {
            return Err(s3_error!(MalformedXML, "the upload names no part"));
        }
        let mut chosen: Vec<&Part> = Vec::new();
        for (n, p) in asked.iter().enumerate() {
            let number = p.part_number.unwrap_or(0);
            if n > 0 && number <= asked[n - 1].part_number.unwrap_or(0) {
                return Err(s3_error!(InvalidPartOrder));
            }
            let found = stored
                .iter()
                .find(|s| i64::from(s.number) == i64::from(number))
                .filter(|s| {
                    p.e_tag
                        .as_ref()
                        .is_none_or(|e| e.value().trim_matches('"') == s.etag)
                })
                .ok_or_else(|| s3_error!(InvalidPart, "part {number} was not uploaded"))?;
            chosen.push(found);
        }
        let (last, rest) = chosen.split_last().expect("at least one part");
        if let Some(small) = rest.iter().find(|p| p.size < MIN_PART) {
            return Err(s3_error!(
                EntityTooSmall,
                "part {} is {} bytes; every part but the last must be at least 5 MiB",
                small.number,
                small.size
            ));
        }
        if let Some(odd) = rest.iter().find(|p| p.size != rest[0].size) {
            return Err(s3_error!(
                InvalidPart,
                "part {} is {} bytes, part {} is {}: R2 needs every part but the last to be the same size",
                rest[0].number,
                rest[0].size,
                odd.number,
                odd.size
            ));
        }
        let _ = last;
        let (body, path) = self.r2.new_body();
        let mut out = tokio::fs::File::create(&path).await.map_err(internal)?;
        let mut md5s = md5::Md5::new();
        let mut size = 0;
        for p in &chosen {
            let mut f = tokio::fs::File::open(self.r2.body_path(&p.body))
                .await
                .map_err(internal)?;
            size += tokio::io::copy(&mut f, &mut out).await.map_err(internal)?;
            md5s.update(hex::decode(&p.etag).map_err(internal)?);
        }
        out.flush().await.map_err(internal)?;
        let record = ObjectRecord {
            key: up.key,
            size,
            etag: format!("{}-{}", hex::encode(md5s.finalize()), chosen.len()),
            modified_ms: now_ms(),
            body,
            attrs: up.attrs,
        };
        self.store(
            &i.bucket,
            &record,
            i.if_match.as_ref(),
            i.if_none_match.as_ref(),
        )?;
        let parts = self.r2.end_upload(&i.upload_id).map_err(internal)?;
        self.r2.drop_bodies(parts);
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(i.bucket),
            key: Some(record.key),
            e_tag: Some(ETag::Strong(record.etag)),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let i = req.input;
        self.upload_of(&i.upload_id, &i.bucket, &i.key)?;
        let parts = self.r2.end_upload(&i.upload_id).map_err(internal)?;
        self.r2.drop_bodies(parts);
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }
}

impl Backend {
    fn upload_of(&self, id: &str, bucket: &str, key: &str) -> S3Result<Upload> {
        match self.r2.upload(id).map_err(internal)? {
            Some(u) if u.bucket == bucket && u.key == key => Ok(u),
            _ => Err(s3_error!(NoSuchUpload)),
        }
    }

    /// Commits `record` if the write conditions hold; the body it replaced is removed, and a
    /// refused write leaves nothing behind.
    fn store(
        &self,
        bucket: &str,
        record: &ObjectRecord,
        if_match: Option<&ETagCondition>,
        if_none_match: Option<&ETagCondition>,
    ) -> S3Result<()> {
        let outcome = self
            .r2
            .put(bucket, record, |current| {
                write_allowed(if_match, if_none_match, current)
            })
            .map_err(internal)?;
        match outcome {
            Ok(replaced) => {
                self.r2.drop_bodies(replaced);
                Ok(())
            }
            Err(()) => {
                self.r2.drop_bodies([record.body.clone()]);
                Err(s3_error!(PreconditionFailed))
            }
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
pub fn fault_class(method: &axum::http::Method, label: &str) -> &'static str {
    let object = label.contains("{key}");
    match *method {
        axum::http::Method::GET if !object => "S3 list",
        axum::http::Method::GET | axum::http::Method::HEAD if object => "S3 GET",
        axum::http::Method::PUT | axum::http::Method::POST if object => "S3 PUT",
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
            super::url_encode("ü ñ/spaces and+plus%2F"),
            "%C3%BC%20%C3%B1/spaces%20and%2Bplus%252F"
        );
    }
}
