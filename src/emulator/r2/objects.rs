//! R2's storage in the emulator: buckets and object records in the emulator's SQLite (keys are
//! opaque byte strings, compared as S3 compares them: UTF-8 byte order), bodies in files named by
//! a random id under `bodies/`. No key ever becomes a path, so `../x`, `a//b`, `dir/` and unicode
//! are all distinct objects inside their own bucket, and nothing is written outside the data
//! directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::emulator::store::{SqlResult, Store};

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS r2_buckets(
  name TEXT PRIMARY KEY, created_ms INTEGER NOT NULL, location TEXT NOT NULL,
  jurisdiction TEXT NOT NULL, storage_class TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS r2_objects(
  bucket TEXT NOT NULL, key TEXT NOT NULL, size INTEGER NOT NULL, etag TEXT NOT NULL,
  modified_ms INTEGER NOT NULL, body TEXT NOT NULL, attrs TEXT NOT NULL,
  PRIMARY KEY(bucket, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS r2_uploads(
  id TEXT PRIMARY KEY, bucket TEXT NOT NULL, key TEXT NOT NULL, created_ms INTEGER NOT NULL,
  attrs TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS r2_parts(
  upload TEXT NOT NULL, number INTEGER NOT NULL, size INTEGER NOT NULL, etag TEXT NOT NULL,
  body TEXT NOT NULL, PRIMARY KEY(upload, number)) WITHOUT ROWID;
";

/// What a PUT sets besides the bytes: system metadata and `x-amz-meta-*`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attrs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// An object's record.
#[derive(Debug, Clone)]
pub struct ObjectRecord {
    pub key: String,
    pub size: u64,
    /// Hex, unquoted: the MD5 of the bytes, or `md5-of-part-md5s-N` for a multipart object.
    pub etag: String,
    pub modified_ms: i64,
    pub body: String,
    pub attrs: Attrs,
}

#[derive(Debug, Clone)]
pub struct BucketRecord {
    pub name: String,
    pub created_ms: i64,
    pub location: String,
    pub jurisdiction: String,
    pub storage_class: String,
}

#[derive(Debug, Clone)]
pub struct Upload {
    pub bucket: String,
    pub key: String,
    pub attrs: Attrs,
}

#[derive(Debug, Clone)]
pub struct Part {
    pub number: u32,
    pub size: u64,
    pub etag: String,
    pub body: String,
}

/// One entry of a listing page.
#[derive(Debug, Clone)]
pub enum Listed {
    Object(Box<ObjectRecord>),
    Prefix(String),
}

/// Buckets, objects and uploads, with bodies under `root/bodies`.
pub struct R2 {
    store: Arc<Store>,
    bodies: PathBuf,
}

impl R2 {
    pub fn open(store: Arc<Store>, root: &Path) -> anyhow::Result<Self> {
        let bodies = root.join("bodies");
        std::fs::create_dir_all(&bodies)?;
        Ok(Self { store, bodies })
    }

    /// A fresh file name for a body (never derived from a key).
    pub fn new_body(&self) -> (String, PathBuf) {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let path = self.bodies.join(&id);
        (id, path)
    }

    pub fn body_path(&self, id: &str) -> PathBuf {
        self.bodies.join(id)
    }

    /// Removes body files no record points at any more (best effort).
    pub fn drop_bodies(&self, ids: impl IntoIterator<Item = String>) {
        for id in ids {
            let _ = std::fs::remove_file(self.bodies.join(id));
        }
    }

    // --- buckets ----------------------------------------------------------------------------

    pub fn buckets(&self) -> SqlResult<Vec<BucketRecord>> {
        self.store.with(|c| {
            c.prepare_cached("SELECT name, created_ms, location, jurisdiction, storage_class FROM r2_buckets ORDER BY name")?
                .query_map([], row_to_bucket)?
                .collect()
        })
    }

    pub fn bucket(&self, name: &str) -> SqlResult<Option<BucketRecord>> {
        self.store.with(|c| {
            c.prepare_cached("SELECT name, created_ms, location, jurisdiction, storage_class FROM r2_buckets WHERE name=?1")?
                .query_row([name], row_to_bucket)
                .optional()
        })
    }

    /// `false` when the bucket already exists.
    pub fn create_bucket(&self, b: &BucketRecord) -> SqlResult<bool> {
        self.store.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO r2_buckets(name, created_ms, location, jurisdiction, storage_class) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![b.name, b.created_ms, b.location, b.jurisdiction, b.storage_class],
            )
            .map(|n| n == 1)
        })
    }

    /// `Ok(None)` when there is no such bucket, `Ok(Some(false))` when it is not empty.
    pub fn delete_bucket(&self, name: &str) -> SqlResult<Option<bool>> {
        self.store.with(|c| {
            let tx = c.transaction()?;
            let exists: bool = tx.query_row(
                "SELECT EXISTS(SELECT 1 FROM r2_buckets WHERE name=?1)",
                [name],
                |r| r.get(0),
            )?;
            if !exists {
                return Ok(None);
            }
            let empty: bool = tx.query_row(
                "SELECT NOT EXISTS(SELECT 1 FROM r2_objects WHERE bucket=?1)",
                [name],
                |r| r.get(0),
            )?;
            if empty {
                tx.execute("DELETE FROM r2_buckets WHERE name=?1", [name])?;
                let uploads: Vec<String> = tx
                    .prepare("SELECT id FROM r2_uploads WHERE bucket=?1")?
                    .query_map([name], |r| r.get(0))?
                    .collect::<SqlResult<_>>()?;
                for u in uploads {
                    tx.execute("DELETE FROM r2_parts WHERE upload=?1", [&u])?;
                    tx.execute("DELETE FROM r2_uploads WHERE id=?1", [&u])?;
                }
            }
            tx.commit()?;
            Ok(Some(empty))
        })
    }

    // --- objects ----------------------------------------------------------------------------

    pub fn get(&self, bucket: &str, key: &str) -> SqlResult<Option<ObjectRecord>> {
        self.store.with(|c| {
            c.prepare_cached(
                "SELECT key, size, etag, modified_ms, body, attrs FROM r2_objects WHERE bucket=?1 AND key=?2",
            )?
            .query_row(params![bucket, key], row_to_object)
            .optional()
        })
    }

    /// Stores `record` under `bucket` when `condition` holds for the object there now (checked
    /// in the same transaction). Returns the body it replaced, or `Err(current)` when the
    /// condition failed.
    pub fn put(
        &self,
        bucket: &str,
        record: &ObjectRecord,
        condition: impl FnOnce(Option<&ObjectRecord>) -> bool,
    ) -> SqlResult<Result<Option<String>, ()>> {
        let attrs = serde_json::to_string(&record.attrs).unwrap_or_else(|_| "{}".into());
        self.store.with(|c| {
            let tx = c.transaction()?;
            let current = tx
                .prepare_cached(
                    "SELECT key, size, etag, modified_ms, body, attrs FROM r2_objects WHERE bucket=?1 AND key=?2",
                )?
                .query_row(params![bucket, record.key], row_to_object)
                .optional()?;
            if !condition(current.as_ref()) {
                return Ok(Err(()));
            }
            tx.prepare_cached(
                "INSERT OR REPLACE INTO r2_objects(bucket, key, size, etag, modified_ms, body, attrs) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                bucket,
                record.key,
                record.size as i64,
                record.etag,
                record.modified_ms,
                record.body,
                attrs
            ])?;
            tx.commit()?;
            Ok(Ok(current.map(|c| c.body)))
        })
    }

    /// Deletes one object; returns its body.
    pub fn delete(&self, bucket: &str, key: &str) -> SqlResult<Option<String>> {
        self.store.with(|c| {
            c.prepare_cached("DELETE FROM r2_objects WHERE bucket=?1 AND key=?2 RETURNING body")?
                .query_row(params![bucket, key], |r| r.get(0))
                .optional()
        })
    }

    /// One page of a listing as S3 defines it: keys under `prefix` after `after` (exclusive),
    /// keys holding `delimiter` past the prefix rolled up into common prefixes (each once, and
    /// never one at or before `after`), at most `max` entries. Returns the page and whether more
    /// follow.
    pub fn list(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        after: Option<&str>,
        max: usize,
    ) -> SqlResult<(Vec<Listed>, bool)> {
        const BATCH: usize = 1000;
        let mut out: Vec<Listed> = Vec::new();
        // The lower bound of the next query, and whether it is inclusive.
        let (mut bound, mut inclusive) = match after {
            Some(a) if a >= prefix => (a.to_string(), false),
            _ => (prefix.to_string(), true),
        };
        let mut last_prefix: Option<String> = None;
        loop {
            let batch: Vec<ObjectRecord> = self.store.with(|c| {
                let sql = if inclusive {
                    "SELECT key, size, etag, modified_ms, body, attrs FROM r2_objects WHERE bucket=?1 AND key >= ?2 ORDER BY key LIMIT ?3"
                } else {
                    "SELECT key, size, etag, modified_ms, body, attrs FROM r2_objects WHERE bucket=?1 AND key > ?2 ORDER BY key LIMIT ?3"
                };
                c.prepare_cached(sql)?
                    .query_map(params![bucket, bound, BATCH as i64], row_to_object)?
                    .collect()
            })?;
            let exhausted = batch.len() < BATCH;
            for o in batch {
                if !o.key.starts_with(prefix) {
                    return Ok((out, false));
                }
                bound.clone_from(&o.key);
                inclusive = false;
                let rolled = delimiter.filter(|d| !d.is_empty()).and_then(|d| {
                    o.key[prefix.len()..]
                        .find(d)
                        .map(|i| o.key[..prefix.len() + i + d.len()].to_string())
                });
                let entry = match rolled {
                    Some(cp) => {
                        if last_prefix.as_deref() == Some(cp.as_str())
                            || after.is_some_and(|a| cp.as_str() <= a)
                        {
                            continue;
                        }
                        last_prefix = Some(cp.clone());
                        Listed::Prefix(cp)
                    }
                    None => Listed::Object(Box::new(o)),
                };
                if out.len() == max {
                    return Ok((out, true));
                }
                out.push(entry);
            }
            if exhausted {
                return Ok((out, false));
            }
        }
    }

    /// Stores bytes as an unconditional PUT would (the demo seed).
    pub fn put_bytes(
        &self,
        bucket: &str,
        key: &str,
        bytes: &[u8],
        attrs: Attrs,
    ) -> anyhow::Result<()> {
        use md5::Digest as _;
        let (body, path) = self.new_body();
        std::fs::write(&path, bytes)?;
        let record = ObjectRecord {
            key: key.into(),
            size: bytes.len() as u64,
            etag: hex::encode(md5::Md5::digest(bytes)),
            modified_ms: crate::emulator::clock::now_ms(),
            body,
            attrs,
        };
        if let Ok(Some(old)) = self.put(bucket, &record, |_| true)? {
            self.drop_bodies([old]);
        }
        Ok(())
    }

    // --- multipart --------------------------------------------------------------------------

    pub fn create_upload(&self, id: &str, up: &Upload, now_ms: i64) -> SqlResult<()> {
        let attrs = serde_json::to_string(&up.attrs).unwrap_or_else(|_| "{}".into());
        self.store.with(|c| {
            c.execute(
                "INSERT INTO r2_uploads(id, bucket, key, created_ms, attrs) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, up.bucket, up.key, now_ms, attrs],
            )
            .map(drop)
        })
    }

    pub fn upload(&self, id: &str) -> SqlResult<Option<Upload>> {
        self.store.with(|c| {
            c.query_row(
                "SELECT bucket, key, attrs FROM r2_uploads WHERE id=?1",
                [id],
                |r| {
                    Ok(Upload {
                        bucket: r.get(0)?,
                        key: r.get(1)?,
                        attrs: serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or_default(),
                    })
                },
            )
            .optional()
        })
    }

    /// Records a part (a re-sent part replaces the earlier one); returns the replaced body.
    pub fn put_part(&self, upload: &str, part: &Part) -> SqlResult<Option<String>> {
        self.store.with(|c| {
            let tx = c.transaction()?;
            let old: Option<String> = tx
                .query_row(
                    "SELECT body FROM r2_parts WHERE upload=?1 AND number=?2",
                    params![upload, part.number],
                    |r| r.get(0),
                )
                .optional()?;
            tx.execute(
                "INSERT OR REPLACE INTO r2_parts(upload, number, size, etag, body) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![upload, part.number, part.size as i64, part.etag, part.body],
            )?;
            tx.commit()?;
            Ok(old)
        })
    }

    pub fn parts(&self, upload: &str) -> SqlResult<Vec<Part>> {
        self.store.with(|c| {
            c.prepare_cached(
                "SELECT number, size, etag, body FROM r2_parts WHERE upload=?1 ORDER BY number",
            )?
            .query_map([upload], |r| {
                Ok(Part {
                    number: r.get(0)?,
                    size: r.get::<_, i64>(1)? as u64,
                    etag: r.get(2)?,
                    body: r.get(3)?,
                })
            })?
            .collect()
        })
    }

    /// Forgets an upload; returns its parts' bodies.
    pub fn end_upload(&self, upload: &str) -> SqlResult<Vec<String>> {
        self.store.with(|c| {
            let tx = c.transaction()?;
            let bodies: Vec<String> = tx
                .prepare("DELETE FROM r2_parts WHERE upload=?1 RETURNING body")?
                .query_map([upload], |r| r.get(0))?
                .collect::<SqlResult<_>>()?;
            tx.execute("DELETE FROM r2_uploads WHERE id=?1", [upload])?;
            tx.commit()?;
            Ok(bodies)
        })
    }
}

fn row_to_bucket(r: &rusqlite::Row<'_>) -> SqlResult<BucketRecord> {
    Ok(BucketRecord {
        name: r.get(0)?,
        created_ms: r.get(1)?,
        location: r.get(2)?,
        jurisdiction: r.get(3)?,
        storage_class: r.get(4)?,
    })
}

fn row_to_object(r: &rusqlite::Row<'_>) -> SqlResult<ObjectRecord> {
    Ok(ObjectRecord {
        key: r.get(0)?,
        size: r.get::<_, i64>(1)? as u64,
        etag: r.get(2)?,
        modified_ms: r.get(3)?,
        body: r.get(4)?,
        attrs: serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r2() -> (R2, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(None).unwrap());
        (R2::open(store, dir.path()).unwrap(), dir)
    }

    fn put(r2: &R2, key: &str) {
        let rec = ObjectRecord {
            key: key.into(),
            size: 0,
            etag: "e".into(),
            modified_ms: 0,
            body: "b".into(),
            attrs: Attrs::default(),
        };
        r2.put("b", &rec, |_| true).unwrap().unwrap();
    }

    fn names(page: &[Listed]) -> Vec<String> {
        page.iter()
            .map(|l| match l {
                Listed::Object(o) => o.key.clone(),
                Listed::Prefix(p) => format!("{p}*"),
            })
            .collect()
    }

    #[test]
    fn keys_are_opaque_and_listed_in_byte_order() {
        let (r2, _d) = r2();
        for k in [
            "a//b",
            "a/b",
            "a/b/",
            "../victim/x",
            "ü",
            "a+b",
            "a b",
            "%2F",
        ] {
            put(&r2, k);
        }
        let (page, more) = r2.list("b", "", None, None, 100).unwrap();
        assert!(!more);
        assert_eq!(
            names(&page),
            [
                "%2F",
                "../victim/x",
                "a b",
                "a+b",
                "a//b",
                "a/b",
                "a/b/",
                "ü"
            ]
        );
    }

    #[test]
    fn delimiters_roll_up_once_and_pages_resume_after_a_prefix() {
        let (r2, _d) = r2();
        for k in ["a/1", "a/2", "b", "c/x/y", "c/z", "d"] {
            put(&r2, k);
        }
        let (page, more) = r2.list("b", "", Some("/"), None, 2).unwrap();
        assert_eq!((names(&page), more), (vec!["a/*".into(), "b".into()], true));
        let (page, more) = r2.list("b", "", Some("/"), Some("b"), 2).unwrap();
        assert_eq!(
            (names(&page), more),
            (vec!["c/*".into(), "d".into()], false)
        );
        let (page, _) = r2.list("b", "", Some("/"), Some("a/"), 10).unwrap();
        assert_eq!(names(&page), ["b", "c/*", "d"], "a/ is not listed again");
        let (page, _) = r2.list("b", "c/", Some("/"), None, 10).unwrap();
        assert_eq!(names(&page), ["c/x/*", "c/z"]);
        let (page, more) = r2.list("b", "", None, Some("c/x/y"), 1).unwrap();
        assert_eq!((names(&page), more), (vec!["c/z".into()], true));
    }
}
