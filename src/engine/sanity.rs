//! Sanity checks against the previous backup of the same target: a backup under 1 KB, or a row,
//! key or object count that moved by more than a share since last time, is suspicious. These are
//! warnings in the manifest and the output, not failures: a real mass deletion must still be
//! backed up.

use crate::repo::{Kind, Manifest};

/// The default share (percent) a count may move between two backups before it is called out.
pub const DEFAULT_MAX_CHANGE: f64 = 50.0;

/// What a backup counts: rows (D1, SQLite), keys (KV), objects (R2).
pub fn count(m: &Manifest) -> Option<(u64, &'static str)> {
    match m.kind {
        Kind::D1 | Kind::Sqlite => {
            let rows = m.stats["tables"]
                .as_array()?
                .iter()
                .filter_map(|t| t["rows"].as_u64())
                .sum();
            Some((rows, "rows"))
        }
        Kind::Kv => Some((m.stats["keys"].as_u64()?, "keys")),
        Kind::R2 => Some((m.stats["objects"].as_u64()?, "objects")),
    }
}

pub fn check(
    previous: Option<&Manifest>,
    current: &Manifest,
    max_change_percent: f64,
) -> Vec<String> {
    let mut warnings = Vec::new();
    let size = current.plaintext_size();
    if size < 1024 && current.kind != Kind::R2 {
        warnings.push(format!(
            "the backup holds only {size} bytes: is the source empty or was it cut short?"
        ));
    }
    if let (Some(prev), Some((now, noun))) = (previous, count(current))
        && let Some((before, _)) = count(prev)
        && before > 0
    {
        let change = (now as f64 - before as f64).abs() / before as f64 * 100.0;
        if change > max_change_percent {
            warnings.push(format!(
                "{noun} went from {before} to {now} since backup {} ({change:.0}% change, above the {max_change_percent:.0}% allowed by CFDR_MAX_CHANGE)",
                prev.id
            ));
        }
    }
    warnings
}

/// `CFDR_MAX_CHANGE` (percent), or the default.
pub fn max_change_from_env() -> f64 {
    std::env::var("CFDR_MAX_CHANGE")
        .ok()
        .and_then(|v| v.trim_end_matches('%').parse().ok())
        .filter(|v: &f64| *v > 0.0)
        .unwrap_or(DEFAULT_MAX_CHANGE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::{Artifact, Target};
    use serde_json::Value;

    fn m(kind: Kind, stats: Value, size: u64) -> Manifest {
        Manifest {
            format: "cfdr.manifest/1".into(),
            id: "prev".into(),
            kind,
            target: Target {
                account: None,
                id: "t".into(),
                name: "t".into(),
            },
            trigger: "manual".into(),
            method: "x".into(),
            consistency_point: None,
            started: String::new(),
            finished: String::new(),
            artifacts: vec![Artifact {
                name: "a".into(),
                format: "f".into(),
                plaintext_size: size,
                plaintext_sha256: String::new(),
                stored_size: size,
                stored_sha256: String::new(),
                chunk_size: 1,
                chunks: 1,
            }],
            stats,
            warnings: vec![],
            parent: None,
            blobs: vec![],
            tool_version: String::new(),
            key_id: String::new(),
            mac: String::new(),
        }
    }

    #[test]
    fn large_swings_and_tiny_backups_are_called_out() {
        let before = m(Kind::Kv, serde_json::json!({ "keys": 1000 }), 50_000);
        let fine = m(Kind::Kv, serde_json::json!({ "keys": 700 }), 40_000);
        assert!(check(Some(&before), &fine, 50.0).is_empty());
        let gone = m(Kind::Kv, serde_json::json!({ "keys": 100 }), 5_000);
        let w = check(Some(&before), &gone, 50.0);
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains("keys went from 1000 to 100") && w[0].contains("90% change"),
            "{w:?}"
        );
        let tiny = m(
            Kind::D1,
            serde_json::json!({ "tables": [{ "rows": 0 }] }),
            40,
        );
        assert!(check(None, &tiny, 50.0)[0].contains("only 40 bytes"));
        let rows = m(
            Kind::D1,
            serde_json::json!({ "tables": [{ "rows": 10 }, { "rows": 20 }] }),
            5_000,
        );
        assert_eq!(count(&rows), Some((30, "rows")));
    }
}
