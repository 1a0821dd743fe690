//! What the console shows, computed from the catalog without I/O: the inventory (one row per
//! target, its newest backup's age against its RPO) and the filtered, sorted list of backups.
//! The plain-text inventory that `cfdr` prints when stdout is not a terminal comes from here too.

use std::collections::BTreeMap;
use std::time::Duration;

use time::OffsetDateTime;

use crate::config::Config;
use crate::repo::catalog::Entry;
use crate::repo::manifest::parse_time;
use crate::text::{human_size, short_duration as short};

/// The kinds, in the order the inventory groups them.
pub const KINDS: [&str; 4] = ["d1", "kv", "r2", "sqlite"];

pub fn kind_title(kind: &str) -> &'static str {
    match kind {
        "d1" => "D1",
        "kv" => "KV",
        "r2" => "R2",
        _ => "SQLite",
    }
}

/// How the newest backup of a target stands against its RPO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Within the RPO.
    Fresh,
    /// Older than three quarters of the RPO: due soon.
    Due,
    /// Older than the RPO.
    Late,
    /// No backup at all.
    Never,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TargetRow {
    pub kind: String,
    pub name: String,
    /// The target's id (a D1 uuid, a KV namespace id, a bucket, a file path).
    pub target_id: String,
    pub newest: Option<String>,
    pub age: Option<Duration>,
    pub rpo: Duration,
    pub freshness: Freshness,
    pub backups: usize,
    pub stored: u64,
    /// Warnings of the newest backup.
    pub warnings: usize,
}

fn freshness(age: Option<Duration>, rpo: Duration) -> Freshness {
    match age {
        None => Freshness::Never,
        Some(a) if a > rpo => Freshness::Late,
        Some(a) if a.as_secs_f64() > rpo.as_secs_f64() * 0.75 => Freshness::Due,
        Some(_) => Freshness::Fresh,
    }
}

/// One row per target: every target with a backup, plus `known` targets (from the account)
/// that have none. Grouped by kind, then by name.
pub fn inventory(
    entries: &[Entry],
    known: &[(String, String)],
    config: &Config,
    now: OffsetDateTime,
) -> Vec<TargetRow> {
    let mut rows: BTreeMap<(usize, String), TargetRow> = BTreeMap::new();
    let order = |kind: &str| KINDS.iter().position(|k| *k == kind).unwrap_or(KINDS.len());
    for e in entries {
        let row = rows
            .entry((order(&e.kind), e.target.clone()))
            .or_insert_with(|| TargetRow {
                kind: e.kind.clone(),
                name: e.target.clone(),
                target_id: e.target_id.clone(),
                newest: None,
                age: None,
                rpo: config.rpo_of(&e.kind, &e.target),
                freshness: Freshness::Never,
                backups: 0,
                stored: 0,
                warnings: 0,
            });
        row.backups += 1;
        row.stored += e.stored_size;
        // The catalog is oldest first: the last entry of a target is its newest backup.
        row.newest = Some(e.id.clone());
        row.age = parse_time(&e.started).map(|t| (now - t).try_into().unwrap_or(Duration::ZERO));
        row.warnings = e.warnings;
        row.target_id = e.target_id.clone();
    }
    for (kind, name) in known {
        rows.entry((order(kind), name.clone()))
            .or_insert_with(|| TargetRow {
                kind: kind.clone(),
                name: name.clone(),
                target_id: name.clone(),
                newest: None,
                age: None,
                rpo: config.rpo_of(kind, name),
                freshness: Freshness::Never,
                backups: 0,
                stored: 0,
                warnings: 0,
            });
    }
    rows.into_values()
        .map(|mut r| {
            r.freshness = freshness(r.age, r.rpo);
            r
        })
        .collect()
}

/// How the list of backups is sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    /// Newest first.
    #[default]
    Time,
    /// Largest first.
    Size,
    /// By kind, then target, newest first.
    Kind,
}

impl SortKey {
    pub fn next(self) -> Self {
        match self {
            SortKey::Time => SortKey::Size,
            SortKey::Size => SortKey::Kind,
            SortKey::Kind => SortKey::Time,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SortKey::Time => "time",
            SortKey::Size => "size",
            SortKey::Kind => "kind",
        }
    }
}

/// The indexes of `entries` to list: of one target (`kind`, `name`) or all, matching every word
/// of `filter` (in id, kind, target, trigger or method), sorted by `sort`.
pub fn backups(
    entries: &[Entry],
    target: Option<&(String, String)>,
    filter: &str,
    sort: SortKey,
) -> Vec<usize> {
    let words: Vec<String> = filter.split_whitespace().map(str::to_lowercase).collect();
    let mut out: Vec<usize> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| target.is_none_or(|(k, n)| &e.kind == k && &e.target == n))
        .filter(|(_, e)| {
            words.iter().all(|w| {
                [&e.id, &e.kind, &e.target, &e.trigger, &e.method]
                    .iter()
                    .any(|f| f.to_lowercase().contains(w))
            })
        })
        .map(|(i, _)| i)
        .collect();
    // Entries are oldest first; newest first is the reverse.
    out.reverse();
    match sort {
        SortKey::Time => {}
        SortKey::Size => out.sort_by(|a, b| entries[*b].stored_size.cmp(&entries[*a].stored_size)),
        SortKey::Kind => out.sort_by(|a, b| {
            let (x, y) = (&entries[*a], &entries[*b]);
            let o = |k: &str| KINDS.iter().position(|x| *x == k);
            (o(&x.kind), &x.target).cmp(&(o(&y.kind), &y.target))
        }),
    }
    out
}

/// The inventory as a plain table, for `cfdr` when stdout is not a terminal.
pub fn inventory_table(rows: &[TargetRow]) -> String {
    let mut out = format!(
        "{:<7} {:<28} {:<26} {:>6} {:>5} {:>8} {:>10} {:>4}\n",
        "KIND", "TARGET", "NEWEST", "AGE", "RPO", "STATE", "STORED", "WARN"
    );
    for r in rows {
        let state = match r.freshness {
            Freshness::Fresh => "ok",
            Freshness::Due => "due",
            Freshness::Late => "LATE",
            Freshness::Never => "NEVER",
        };
        out.push_str(&format!(
            "{:<7} {:<28} {:<26} {:>6} {:>5} {:>8} {:>10} {:>4}\n",
            kind_title(&r.kind),
            r.name,
            r.newest.as_deref().unwrap_or("-"),
            r.age.map(short).unwrap_or_else(|| "-".into()),
            short(r.rpo),
            state,
            human_size(r.stored),
            r.warnings
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn entry(id: &str, kind: &str, target: &str, started: &str, size: u64) -> Entry {
        Entry {
            id: id.into(),
            kind: kind.into(),
            target: target.into(),
            target_id: format!("{target}-id"),
            trigger: "manual".into(),
            method: "bulk-get".into(),
            started: started.into(),
            finished: started.into(),
            plaintext_size: size,
            stored_size: size + 100,
            artifacts: 1,
            warnings: 0,
            dir: String::new(),
        }
    }

    #[test]
    fn inventory_takes_the_newest_backup_and_colours_it_against_the_rpo() {
        let now = time::macros::datetime!(2026-11-23 12:00 UTC);
        let entries = vec![
            entry("a", "kv", "CACHE", "2026-11-21T12:00:00Z", 10),
            entry("b", "d1", "shop", "2026-11-23T11:00:00Z", 20),
            entry("c", "kv", "CACHE", "2026-11-23T02:00:00Z", 30),
            entry("d", "d1", "legacy", "2026-11-20T12:00:00Z", 5),
        ];
        let known = vec![("r2".to_string(), "media".to_string())];
        let rows = inventory(&entries, &known, &Config::default(), now);
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["legacy", "shop", "CACHE", "media"]);
        assert_eq!(rows[0].freshness, Freshness::Late);
        assert_eq!(rows[1].freshness, Freshness::Fresh);
        assert_eq!(rows[2].newest.as_deref(), Some("c"));
        assert_eq!((rows[2].backups, rows[2].stored), (2, 240));
        assert_eq!(rows[2].freshness, Freshness::Fresh, "10h of a 24h RPO");
        assert_eq!(rows[3].freshness, Freshness::Never);
        let table = inventory_table(&rows);
        assert!(table.lines().nth(4).unwrap().contains("NEVER"), "{table}");
    }

    #[test]
    fn backups_filter_by_target_and_words_and_sort() {
        let entries = vec![
            entry("2026-a", "kv", "CACHE", "2026-11-21T12:00:00Z", 10),
            entry("2026-b", "d1", "shop", "2026-11-22T12:00:00Z", 30),
            entry("2026-c", "kv", "CACHE", "2026-11-23T12:00:00Z", 20),
        ];
        assert_eq!(backups(&entries, None, "", SortKey::Time), [2, 1, 0]);
        assert_eq!(backups(&entries, None, "", SortKey::Size), [1, 2, 0]);
        assert_eq!(backups(&entries, None, "", SortKey::Kind), [1, 2, 0]);
        let cache = ("kv".to_string(), "CACHE".to_string());
        assert_eq!(backups(&entries, Some(&cache), "", SortKey::Time), [2, 0]);
        assert_eq!(backups(&entries, None, "cache 2026-a", SortKey::Time), [0]);
        assert!(backups(&entries, None, "nothing", SortKey::Time).is_empty());
    }
}
