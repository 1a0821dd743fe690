//! R2 restore and compare, the pure part: a backup's index against the live bucket's listing
//! (under a prefix, in a mode), the batches a run journals, the requests they take, and how a
//! bucket differs from what it should hold. An object is unchanged when its size and ETag are
//! the backup's; an object key is data, never a path.

use std::collections::{BTreeMap, BTreeSet};

use super::ObjectEntry;
use crate::cloudflare::r2::Listed;
use crate::engine::changes::{Changes, Difference, Mode, Unit, under};

/// Objects a journaled batch holds: a crash costs at most this many uploads again.
pub const BATCH: usize = 32;

/// Objects from this size go up as multipart uploads of `PART` bytes.
pub const MULTIPART_FROM: u64 = super::RANGED_FROM;
pub const PART: u64 = super::PART;

pub type Index = BTreeMap<String, ObjectEntry>;
pub type Live = BTreeMap<String, Listed>;

/// Parses an index artifact (NDJSON, one [`ObjectEntry`] a line).
pub fn index(artifact: &[u8]) -> Result<Index, String> {
    artifact
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_slice::<ObjectEntry>(l)
                .map(|e| (e.key.clone(), e))
                .map_err(|e| format!("an index line cannot be read: {e}"))
        })
        .collect()
}

fn same(want: &ObjectEntry, have: &Listed) -> bool {
    want.size == have.size && want.etag.is_some() && want.etag == have.etag
}

pub fn diff(backup: &Index, live: &Live, prefix: Option<&str>, mode: Mode) -> Changes {
    let mut c = Changes::default();
    for (key, want) in backup.iter().filter(|(k, _)| under(prefix, k)) {
        match live.get(key) {
            None => c.add.push(key.clone()),
            Some(have) if same(want, have) => c.unchanged += 1,
            Some(_) if mode == Mode::Skip => c.kept.push(key.clone()),
            Some(_) => c.change.push(key.clone()),
        }
    }
    if mode == Mode::Clear {
        c.remove = live
            .keys()
            .filter(|k| under(prefix, k) && !backup.contains_key(*k))
            .cloned()
            .collect();
    }
    c
}

/// Batches of objects to put (in key order), then batches of objects to delete.
pub fn units(changes: &Changes, batch: usize) -> Vec<Unit> {
    let mut writes: Vec<String> = changes.add.iter().chain(&changes.change).cloned().collect();
    writes.sort();
    let batch = batch.max(1);
    let mut out: Vec<Unit> = writes
        .chunks(batch)
        .map(|k| Unit::Put { keys: k.to_vec() })
        .collect();
    out.extend(
        changes
            .remove
            .chunks(batch)
            .map(|k| Unit::Delete { keys: k.to_vec() }),
    );
    out
}

/// The S3 requests one object's upload takes: a PUT, or create + parts + complete.
pub fn upload_requests(size: u64) -> u64 {
    if size < MULTIPART_FROM {
        1
    } else {
        2 + size.div_ceil(PART)
    }
}

/// The requests a listing of `n` objects takes (1,000 a page).
pub fn list_requests(n: u64) -> u64 {
    n.div_ceil(1000).max(1)
}

/// How the live bucket differs from what it should hold under `prefix`: every wanted object
/// present at its size with the backup's ETag or the one its upload returned (`written`);
/// with `exact`, objects the backup lacks are differences too. `ignore`: kept by a skip restore.
pub fn compare(
    want: &Index,
    live: &Live,
    written: &BTreeMap<String, String>,
    prefix: Option<&str>,
    exact: bool,
    ignore: &BTreeSet<String>,
) -> Vec<Difference> {
    let d = |key: &str, what: &str| Difference {
        key: key.to_string(),
        what: what.to_string(),
    };
    let mut out = Vec::new();
    for (key, w) in want
        .iter()
        .filter(|(k, _)| under(prefix, k) && !ignore.contains(*k))
    {
        match live.get(key) {
            None => out.push(d(key, "missing")),
            Some(h) if h.size != w.size => out.push(d(key, "size")),
            Some(h) => {
                let etag_ok =
                    h.etag.is_some() && (h.etag == w.etag || h.etag.as_ref() == written.get(key));
                if !etag_ok {
                    out.push(d(key, "etag"));
                }
            }
        }
    }
    if exact {
        out.extend(
            live.keys()
                .filter(|k| under(prefix, k) && !want.contains_key(*k) && !ignore.contains(*k))
                .map(|k| d(k, "extra")),
        );
        out.sort_by(|a, b| a.key.cmp(&b.key));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, size: u64, etag: &str) -> ObjectEntry {
        ObjectEntry {
            key: key.into(),
            size,
            etag: Some(etag.into()),
            sha256: "00".into(),
            content_type: None,
            metadata: Default::default(),
            last_modified: String::new(),
        }
    }

    fn listed(key: &str, size: u64, etag: &str) -> Listed {
        Listed {
            key: key.into(),
            size,
            etag: Some(etag.into()),
            last_modified: String::new(),
        }
    }

    #[test]
    fn objects_are_judged_by_size_and_etag_under_the_prefix() {
        let backup: Index = [
            entry("a/1", 1, "x"),
            entry("a/2", 2, "y"),
            entry("a/3", 3, "z"),
            entry("b/1", 1, "w"),
        ]
        .into_iter()
        .map(|e| (e.key.clone(), e))
        .collect();
        let live: Live = [
            listed("a/1", 1, "x"),
            listed("a/2", 2, "other"),
            listed("a/x", 9, "q"),
            listed("b/2", 1, "v"),
        ]
        .into_iter()
        .map(|l| (l.key.clone(), l))
        .collect();
        let c = diff(&backup, &live, Some("a/"), Mode::Clear);
        assert_eq!(
            (
                c.add.clone(),
                c.change.clone(),
                c.remove.clone(),
                c.unchanged
            ),
            (
                vec!["a/3".to_string()],
                vec!["a/2".to_string()],
                vec!["a/x".to_string()],
                1
            )
        );
        let s = diff(&backup, &live, Some("a/"), Mode::Skip);
        assert_eq!((s.kept, s.remove.len()), (vec!["a/2".to_string()], 0));
        let u = units(&c, 1);
        assert_eq!(u.len(), 3, "two puts, then the delete: {u:?}");
        assert!(matches!(&u[2], Unit::Delete { keys } if keys == &["a/x"]));
        assert_eq!(
            (
                upload_requests(10),
                upload_requests(MULTIPART_FROM),
                list_requests(0),
                list_requests(1001)
            ),
            (1, 2 + 4, 1, 2)
        );
    }

    #[test]
    fn an_uploaded_object_matches_by_the_etag_its_upload_returned() {
        let want: Index = [entry("k", 5, "old-multipart-3")]
            .into_iter()
            .map(|e| (e.key.clone(), e))
            .collect();
        let live: Live = [listed("k", 5, "new")]
            .into_iter()
            .map(|l| (l.key.clone(), l))
            .collect();
        let none = BTreeSet::new();
        assert_eq!(
            compare(&want, &live, &BTreeMap::new(), None, true, &none).len(),
            1
        );
        let written = [("k".to_string(), "new".to_string())].into();
        assert!(compare(&want, &live, &written, None, true, &none).is_empty());
    }
}
