//! KV restore and compare, the pure part: what a restore changes (a backup's entries against
//! the live namespace's, under a prefix and in criticality tiers, in a mode), the units it
//! writes (bulk writes of at most 10,000 pairs and 100 MB, tier by tier, then bulk deletes of
//! at most 10,000 keys), and how a namespace differs from what it should hold. The I/O lives
//! in `ops::restore`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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

/// A criticality tier: its name and the key patterns it holds (`*` matches any run of
/// characters, anything else itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    pub name: String,
    pub patterns: Vec<String>,
    /// Keys of this tier the plan writes.
    #[serde(default)]
    pub keys: u64,
}

/// Whether `key` matches `pattern`, where `*` stands for any run of characters (none
/// included) and every other character for itself.
pub fn glob(pattern: &str, key: &str) -> bool {
    let (p, k) = (pattern.as_bytes(), key.as_bytes());
    let (mut i, mut j) = (0, 0);
    // Where the last `*` was, and the key position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while j < k.len() {
        if i < p.len() && p[i] == b'*' {
            star = Some((i, j));
            i += 1;
        } else if i < p.len() && p[i] == k[j] {
            i += 1;
            j += 1;
        } else if let Some((si, sj)) = star {
            // Let the star take one more byte.
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == b'*')
}

/// Which keys a restore covers: those under the prefix and, when tiers are given, in one of
/// them; restored in the tiers' order.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope<'a> {
    pub prefix: Option<&'a str>,
    pub tiers: &'a [Tier],
}

impl<'a> Scope<'a> {
    pub fn new(prefix: Option<&'a str>, tiers: &'a [Tier]) -> Self {
        Self { prefix, tiers }
    }

    /// The key's place in the restore's order (the first tier that holds it), or `None` when
    /// the restore does not cover it.
    pub fn rank(&self, key: &str) -> Option<usize> {
        if !under(self.prefix, key) {
            return None;
        }
        if self.tiers.is_empty() {
            return Some(0);
        }
        self.tiers
            .iter()
            .position(|t| t.patterns.iter().any(|p| glob(p, key)))
    }

    pub fn covers(&self, key: &str) -> bool {
        self.rank(key).is_some()
    }
}

/// Compares the backup with the target within `scope`, as of `now` (Unix seconds).
pub fn diff(backup: &Entries, live: &Entries, scope: Scope<'_>, mode: Mode, now: i64) -> Changes {
    let mut c = Changes::default();
    for (key, want) in backup.iter().filter(|(k, _)| scope.covers(k)) {
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
                .filter(|k| scope.covers(k) && !backup.contains_key(*k))
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

/// The units of a restore: writes tier by tier (a tier's keys in key order, no request
/// holding two tiers), packed up to the bulk limits, then deletes. `max_items`/`max_bytes`
/// are the contract's limits (smaller in tests).
pub fn units(
    changes: &Changes,
    backup: &Entries,
    scope: Scope<'_>,
    max_items: usize,
    max_bytes: usize,
) -> Vec<Unit> {
    let mut writes: Vec<(usize, &String)> = changes
        .add
        .iter()
        .chain(&changes.change)
        .map(|k| (scope.rank(k).unwrap_or(usize::MAX), k))
        .collect();
    writes.sort();
    let mut out = Vec::new();
    let mut keys = Vec::new();
    let mut bytes = 2; // the array's brackets
    let mut tier = writes.first().map_or(0, |w| w.0);
    for (rank, key) in writes {
        let n = backup.get(key).map(encoded_len).unwrap_or(0);
        if !keys.is_empty() && (rank != tier || keys.len() == max_items || bytes + n > max_bytes) {
            out.push(Unit::Put {
                keys: std::mem::take(&mut keys),
            });
            bytes = 2;
        }
        tier = rank;
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

/// How `live` differs from `want` within `scope`. `exact`: keys in `live` that `want` lacks
/// are differences too (a clear restore, `cfdr diff`); otherwise only `want`'s keys are
/// checked. `ignore` lists keys not to check (kept by a skip restore, expired in the backup).
pub fn compare(
    want: &Entries,
    live: &Entries,
    scope: Scope<'_>,
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
        .filter(|(k, _)| scope.covers(k) && !ignore.contains(*k))
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
                .filter(|k| scope.covers(k) && !want.contains_key(*k) && !ignore.contains(*k))
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

        let o = diff(
            &backup,
            &live,
            Scope::new(Some("a:"), &[]),
            Mode::Overwrite,
            now,
        );
        assert_eq!(o.add, ["a:later"]);
        assert_eq!(o.change, ["a:2", "a:3"]);
        assert_eq!(
            (o.unchanged, o.expired.clone(), o.remove.clone()),
            (1, vec!["a:soon".to_string()], vec![])
        );

        let s = diff(&backup, &live, Scope::new(Some("a:"), &[]), Mode::Skip, now);
        assert_eq!(
            (s.add.len(), s.change.len(), s.kept.clone()),
            (1, 0, vec!["a:2".to_string(), "a:3".to_string()])
        );

        let c = diff(
            &backup,
            &live,
            Scope::new(Some("a:"), &[]),
            Mode::Clear,
            now,
        );
        assert_eq!(
            c.remove,
            ["a:extra", "a:soon"],
            "outside the prefix nothing goes: b:2 stays"
        );

        let all = diff(&backup, &live, Scope::default(), Mode::Clear, now);
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
        let by_count = units(&changes, &backup, Scope::default(), 10, usize::MAX);
        let sizes: Vec<usize> = by_count
            .iter()
            .map(|u| match u {
                Unit::Put { keys } | Unit::Delete { keys } => keys.len(),
            })
            .collect();
        assert_eq!(sizes, [10, 10, 5, 7]);
        // One pair encodes to 46 bytes: 100 bytes of array hold two.
        let by_bytes = units(&changes, &backup, Scope::default(), 10_000, 100);
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
        let d = compare(&want, &live, Scope::default(), true, &none);
        let got: Vec<(String, String)> = d.into_iter().map(|d| (d.key, d.what)).collect();
        assert_eq!(
            got,
            [
                ("b".into(), "expiration".into()),
                ("c".into(), "missing".into()),
                ("d".into(), "extra".into())
            ]
        );
        assert_eq!(
            compare(&want, &live, Scope::default(), false, &none).len(),
            2
        );
    }

    #[test]
    fn glob_matches_stars_and_nothing_else() {
        for (p, k, want) in [
            ("user:*", "user:42", true),
            ("user:*", "user:", true),
            ("user:*", "user_stats:42", false),
            ("user:*", "xuser:1", false),
            ("scoreboard_cache", "scoreboard_cache", true),
            ("scoreboard_cache", "scoreboard_cache2", false),
            ("analytics:*:2026-*", "analytics:daily:2026-11-30", true),
            ("analytics:*:2026-*", "analytics:daily:2025-11-30", false),
            ("*", "", true),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
            ("ü*", "über", true),
            ("a?", "ab", false),
        ] {
            assert_eq!(glob(p, k), want, "{p} ~ {k}");
        }
    }

    fn tier(name: &str, patterns: &[&str]) -> Tier {
        Tier {
            name: name.into(),
            patterns: patterns.iter().map(|p| p.to_string()).collect(),
            keys: 0,
        }
    }

    #[test]
    fn tiers_choose_keys_and_order_the_writes() {
        let tiers = [
            tier("critical", &["user:*", "hof:*"]),
            tier("important", &["stats:*", "user:*"]),
        ];
        let scope = Scope::new(None, &tiers);
        assert_eq!(scope.rank("user:1"), Some(0), "the first tier listed wins");
        assert_eq!(scope.rank("stats:n"), Some(1));
        assert_eq!(scope.rank("session:x"), None);
        let backup = set(&[
            pair("hof:1", "h"),
            pair("session:x", "s"),
            pair("stats:n", "5"),
            pair("user:1", "u"),
            pair("user:2", "u"),
        ]);
        let live = set(&[pair("session:y", "old"), pair("stats:old", "1")]);
        let c = diff(&backup, &live, scope, Mode::Clear, 0);
        assert_eq!(c.add, ["hof:1", "stats:n", "user:1", "user:2"]);
        assert_eq!(c.remove, ["stats:old"], "outside the tiers nothing goes");
        let u = units(&c, &backup, scope, 10, usize::MAX);
        let keys: Vec<Vec<String>> = u.iter().map(|u| u.keys().to_vec()).collect();
        assert_eq!(
            keys,
            [
                vec!["hof:1".to_string(), "user:1".into(), "user:2".into()],
                vec!["stats:n".into()],
                vec!["stats:old".into()],
            ],
            "critical first, then important, in requests of one tier each; deletes last"
        );
        let prefixed = Scope::new(Some("user:"), &tiers);
        assert_eq!(prefixed.rank("hof:1"), None, "prefix and tiers both apply");
    }
}
