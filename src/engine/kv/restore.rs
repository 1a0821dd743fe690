//! KV restore and compare, the pure part: what a restore changes (a backup's entries against
//! the live namespace's, under a prefix, in a mode), the units it writes (bulk writes of at
//! most 10,000 pairs and 100 MB, bulk deletes of at most 10,000 keys), and how a namespace
//! differs from what it should hold. The I/O lives in `ops::restore`.

use std::collections::BTreeMap;

use super::State;
use crate::cloudflare::kv::{MIN_TTL_SECS, Pair};
use crate::engine::changes::under;
pub use crate::engine::changes::{Changes, Difference, Mode, Unit};

/// An entry whose expiration is nearer than this is skipped: KV refuses expirations less than
/// 60 s ahead, and the write takes a while to arrive.
pub const EXPIRY_MARGIN_SECS: i64 = MIN_TTL_SECS + 60;

/// A namespace's entries by key, parsed from artifact lines.
pub type Entries = BTreeMap<String, Pair>;

/// Parses a [`State`] (key → artifact line) into entries.
pub fn entries(state: &State) -> Result<Entries, String> {
    state
        .iter()
        .map(|(k, line)| {
            serde_json::from_str::<Pair>(line)
                .map(|p| (k.clone(), p))
                .map_err(|e| format!("the entry of key `{k}` cannot be read: {e}"))
        })
        .collect()
}

/// Whether two entries hold the same value, metadata and expiration.
pub fn same(a: &Pair, b: &Pair) -> bool {
    a.value == b.value
        && a.base64 == b.base64
        && a.expiration == b.expiration
        && a.metadata.as_ref().filter(|m| !m.is_null())
            == b.metadata.as_ref().filter(|m| !m.is_null())
}

/// Compares the backup with the target under `prefix`, as of `now` (Unix seconds).
pub fn diff(
    backup: &Entries,
    live: &Entries,
    prefix: Option<&str>,
    mode: Mode,
    now: i64,
) -> Changes {
    let mut c = Changes::default();
    for (key, want) in backup.iter().filter(|(k, _)| under(prefix, k)) {
        if want
            .expiration
            .is_some_and(|x| x < now + EXPIRY_MARGIN_SECS)
        {
            c.expired.push(key.clone());
            if mode == Mode::Clear && live.contains_key(key) {
                c.remove.push(key.clone());
            }
            continue;
        }
        match live.get(key) {
            None => c.add.push(key.clone()),
            Some(have) if same(have, want) => c.unchanged += 1,
            Some(_) if mode == Mode::Skip => c.kept.push(key.clone()),
            Some(_) => c.change.push(key.clone()),
        }
    }
    if mode == Mode::Clear {
        c.remove.extend(
            live.keys()
                .filter(|k| under(prefix, k) && !backup.contains_key(*k))
                .cloned(),
        );
        c.remove.sort();
    }
    c
}

/// The bytes one pair adds to a bulk write's JSON array.
fn encoded_len(p: &Pair) -> usize {
    serde_json::to_vec(p)
        .map(|v| v.len() + 1)
        .unwrap_or(usize::MAX / 2)
}

/// The units of a restore: writes in key order, packed up to the bulk limits, then deletes.
/// `max_items`/`max_bytes` are the contract's limits (smaller in tests).
pub fn units(changes: &Changes, backup: &Entries, max_items: usize, max_bytes: usize) -> Vec<Unit> {
    let mut writes: Vec<&String> = changes.add.iter().chain(&changes.change).collect();
    writes.sort();
    let mut out = Vec::new();
    let mut keys = Vec::new();
    let mut bytes = 2; // the array's brackets
    for key in writes {
        let n = backup.get(key).map(encoded_len).unwrap_or(0);
        if !keys.is_empty() && (keys.len() == max_items || bytes + n > max_bytes) {
            out.push(Unit::Put {
                keys: std::mem::take(&mut keys),
            });
            bytes = 2;
        }
        keys.push(key.clone());
        bytes += n;
    }
    if !keys.is_empty() {
        out.push(Unit::Put { keys });
    }
    for chunk in changes.remove.chunks(max_items) {
        out.push(Unit::Delete {
            keys: chunk.to_vec(),
        });
    }
    out
}

/// How `live` differs from `want` under `prefix`. `exact`: keys in `live` that `want` lacks are
/// differences too (a clear restore, `cfdr diff`); otherwise only `want`'s keys are checked.
/// `ignore` lists keys not to check (kept by a skip restore, expired in the backup).
pub fn compare(
    want: &Entries,
    live: &Entries,
    prefix: Option<&str>,
    exact: bool,
    ignore: &std::collections::BTreeSet<String>,
) -> Vec<Difference> {
    let mut out = Vec::new();
    let diff = |key: &str, what: &str| Difference {
        key: key.to_string(),
        what: what.to_string(),
    };
    for (key, w) in want
        .iter()
        .filter(|(k, _)| under(prefix, k) && !ignore.contains(*k))
    {
        match live.get(key) {
            None => out.push(diff(key, "missing")),
            Some(h) if h.value != w.value || h.base64 != w.base64 => out.push(diff(key, "value")),
            Some(h) if h.expiration != w.expiration => out.push(diff(key, "expiration")),
            Some(h) if !same(h, w) => out.push(diff(key, "metadata")),
            Some(_) => {}
        }
    }
    if exact {
        out.extend(
            live.keys()
                .filter(|k| under(prefix, k) && !want.contains_key(*k) && !ignore.contains(*k))
                .map(|k| diff(k, "extra")),
        );
        out.sort_by(|a, b| a.key.cmp(&b.key));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pair(key: &str, value: &str) -> Pair {
        Pair {
            key: key.into(),
            value: value.into(),
            base64: false,
            expiration: None,
            metadata: None,
        }
    }

    fn set(pairs: &[Pair]) -> Entries {
        pairs.iter().map(|p| (p.key.clone(), p.clone())).collect()
    }

    #[test]
    fn each_mode_decides_as_documented() {
        let now = 1_000_000;
        let mut soon = pair("a:soon", "x");
        soon.expiration = Some(now + 30);
        let mut later = pair("a:later", "y");
        later.expiration = Some(now + 3600);
        let backup = set(&[
            pair("a:1", "1"),
            pair("a:2", "2"),
            pair("a:3", "3"),
            soon,
            later,
            pair("b:1", "1"),
        ]);
        let mut meta = pair("a:3", "3");
        meta.metadata = Some(json!({"v": 2}));
        let live = set(&[
            pair("a:1", "1"),
            pair("a:2", "two"),
            meta,
            pair("a:soon", "old"),
            pair("a:extra", "e"),
            pair("b:2", "2"),
        ]);

        let o = diff(&backup, &live, Some("a:"), Mode::Overwrite, now);
        assert_eq!(o.add, ["a:later"]);
        assert_eq!(o.change, ["a:2", "a:3"]);
        assert_eq!(
            (o.unchanged, o.expired.clone(), o.remove.clone()),
            (1, vec!["a:soon".to_string()], vec![])
        );

        let s = diff(&backup, &live, Some("a:"), Mode::Skip, now);
        assert_eq!(
            (s.add.len(), s.change.len(), s.kept.clone()),
            (1, 0, vec!["a:2".to_string(), "a:3".to_string()])
        );

        let c = diff(&backup, &live, Some("a:"), Mode::Clear, now);
        assert_eq!(
            c.remove,
            ["a:extra", "a:soon"],
            "outside the prefix nothing goes: b:2 stays"
        );

        let all = diff(&backup, &live, None, Mode::Clear, now);
        assert_eq!(all.add, ["a:later", "b:1"]);
        assert!(all.remove.contains(&"b:2".to_string()));
    }

    #[test]
    fn units_respect_both_bulk_limits() {
        let backup: Entries = (0..25)
            .map(|i| pair(&format!("k{i:02}"), &"v".repeat(10)))
            .map(|p| (p.key.clone(), p))
            .collect();
        let changes = Changes {
            add: backup.keys().cloned().collect(),
            remove: (0..7).map(|i| format!("gone{i}")).collect(),
            ..Default::default()
        };
        let by_count = units(&changes, &backup, 10, usize::MAX);
        let sizes: Vec<usize> = by_count
            .iter()
            .map(|u| match u {
                Unit::Put { keys } | Unit::Delete { keys } => keys.len(),
            })
            .collect();
        assert_eq!(sizes, [10, 10, 5, 7]);
        // One pair encodes to 46 bytes: 100 bytes of array hold two.
        let by_bytes = units(&changes, &backup, 10_000, 100);
        assert!(
            by_bytes
                .iter()
                .filter(|u| matches!(u, Unit::Put { .. }))
                .count()
                >= 12
        );
        for u in &by_bytes {
            if let Unit::Put { keys } = u {
                let refs: Vec<&Pair> = keys.iter().map(|k| &backup[k]).collect();
                assert!(crate::cloudflare::kv::encode_pairs(&refs).len() <= 100);
            }
        }
        // All the keys are written exactly once, in order.
        let written: Vec<String> = by_bytes
            .iter()
            .filter_map(|u| match u {
                Unit::Put { keys } => Some(keys.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(written, backup.keys().cloned().collect::<Vec<_>>());
    }

    #[test]
    fn compare_names_each_difference() {
        let want = set(&[pair("a", "1"), pair("b", "2"), pair("c", "3")]);
        let mut b = pair("b", "2");
        b.expiration = Some(5);
        let live = set(&[pair("a", "1"), b, pair("d", "4")]);
        let none = Default::default();
        let d = compare(&want, &live, None, true, &none);
        let got: Vec<(String, String)> = d.into_iter().map(|d| (d.key, d.what)).collect();
        assert_eq!(
            got,
            [
                ("b".into(), "expiration".into()),
                ("c".into(), "missing".into()),
                ("d".into(), "extra".into())
            ]
        );
        assert_eq!(compare(&want, &live, None, false, &none).len(), 2);
    }
}
