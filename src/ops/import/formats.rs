//! Reading the teams' own backup files and turning them into what cfdr's backups of the same
//! kind hold — without I/O beyond the file itself and a scratch SQLite: a KV backup file (one
//! backup a namespace, its `keyCount` checked) into cfdr's KV NDJSON; a SQL dump replayed into a
//! scratch SQLite for its per-table counts and hashes (a dump that does not replay, or stops
//! inside its transaction, is refused); a SQLite file integrity-checked with its tables counted.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::repo::manifest::parse_time;

/// One backup found in a file, ready to be sealed.
pub struct Converted {
    /// The target's name and id as the file says them (or as the operator named it).
    pub name: String,
    pub id: String,
    pub account: Option<String>,
    /// When the original was taken, if the file says.
    pub at: Option<OffsetDateTime>,
    /// The artifact, in the format cfdr's own backups of this kind have.
    pub artifact: tempfile::NamedTempFile,
    pub stats: Value,
    pub warnings: Vec<String>,
    /// Added to the location, when one file holds several backups (`#SESSIONS`).
    pub part: Option<String>,
}

/// A file that is not imported, and why.
pub type Refusal = String;

/// `kv-json`: `{version, timestamp, accountId, namespaces: [{namespace, namespaceId, timestamp,
/// keyCount, entries: [{key, value, metadata}]}]}` — one backup a namespace.
pub fn kv_json(path: &Path) -> Result<Vec<Converted>, Refusal> {
    let text = std::fs::read(path).map_err(|e| format!("cannot be read: {e}"))?;
    let doc: Value =
        serde_json::from_slice(&text).map_err(|e| format!("is not JSON ({e}): truncated?"))?;
    let namespaces = doc["namespaces"]
        .as_array()
        .ok_or("has no `namespaces` list: not a KV backup file of this format")?;
    if namespaces.is_empty() {
        return Err("holds no namespace".into());
    }
    let top_time = doc["timestamp"].as_str().and_then(parse_time);
    let account = doc["accountId"].as_str().map(str::to_string);
    let mut out = Vec::new();
    for (n, ns) in namespaces.iter().enumerate() {
        let name = ns["namespace"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("namespace {} has no `namespace` name", n + 1))?;
        let entries = ns["entries"]
            .as_array()
            .ok_or_else(|| format!("namespace `{name}` has no `entries` list"))?;
        if let Some(count) = ns.get("keyCount").filter(|c| !c.is_null()) {
            let count = count
                .as_u64()
                .ok_or_else(|| format!("namespace `{name}`: keyCount `{count}` is not a count"))?;
            if count != entries.len() as u64 {
                return Err(format!(
                    "namespace `{name}`: keyCount says {count} keys, the file holds {}: the file is incomplete or was edited",
                    entries.len()
                ));
            }
        }
        let mut lines: Vec<(String, Value)> = Vec::with_capacity(entries.len());
        let mut seen = BTreeSet::new();
        let (mut value_bytes, mut with_metadata, mut with_expiration) = (0u64, 0u64, 0u64);
        for (i, e) in entries.iter().enumerate() {
            let key = e["key"]
                .as_str()
                .ok_or_else(|| format!("namespace `{name}`: entry {} has no key", i + 1))?;
            let value = e["value"].as_str().ok_or_else(|| {
                format!("namespace `{name}`: the value of `{key}` is not a string")
            })?;
            if !seen.insert(key) {
                return Err(format!(
                    "namespace `{name}`: the key `{key}` is there twice"
                ));
            }
            value_bytes += value.len() as u64;
            let mut line = json!({ "key": key, "value": value, "base64": false });
            if let Some(m) = e.get("metadata").filter(|m| !m.is_null()) {
                line["metadata"] = m.clone();
                with_metadata += 1;
            }
            if let Some(x) = e.get("expiration").and_then(Value::as_i64) {
                line["expiration"] = json!(x);
                with_expiration += 1;
            }
            lines.push((key.to_string(), line));
        }
        lines.sort_by(|a, b| a.0.cmp(&b.0));
        let mut artifact = tempfile::Builder::new()
            .prefix("cfdr-import-kv-")
            .tempfile()
            .map_err(|e| e.to_string())?;
        {
            let mut w = std::io::BufWriter::new(artifact.as_file_mut());
            for (_, l) in &lines {
                serde_json::to_writer(&mut w, l).map_err(|e| e.to_string())?;
                w.write_all(b"\n").map_err(|e| e.to_string())?;
            }
            w.flush().map_err(|e| e.to_string())?;
        }
        out.push(Converted {
            name: name.to_string(),
            id: ns["namespaceId"].as_str().unwrap_or(name).to_string(),
            account: account.clone(),
            at: ns["timestamp"].as_str().and_then(parse_time).or(top_time),
            artifact,
            stats: json!({ "keys": lines.len(), "value_bytes": value_bytes, "binary": 0,
                "refetched": 0, "with_metadata": with_metadata, "with_expiration": with_expiration,
                "requests": 0 }),
            warnings: Vec::new(),
            part: Some(name.to_string()),
        });
    }
    Ok(out)
}

/// Statements a SQL dump may hold that D1 refuses (it runs each import in its own transaction):
/// left out of the stored dump, and said.
fn transaction_control(stmt: &str) -> Option<&'static str> {
    let first = crate::sqlsplit::without_leading_comments(stmt)
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    match first.as_str() {
        "BEGIN" => Some("BEGIN"),
        "COMMIT" | "END" => Some("COMMIT"),
        "ROLLBACK" => Some("ROLLBACK"),
        "SAVEPOINT" | "RELEASE" => Some("SAVEPOINT"),
        _ => None,
    }
}

/// `d1-sql`: a plain SQL dump (as `wrangler d1 export` writes it, comments tolerated), replayed
/// into a scratch SQLite: the per-table row counts and hashes D1's own would have. A dump that
/// does not replay, that stops inside its own transaction, or that creates no table is refused.
pub fn d1_sql(path: &Path, name: String) -> Result<Converted, Refusal> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot be read: {e}"))?;
    let sql = std::str::from_utf8(&bytes)
        .map_err(|e| format!("is not UTF-8 text ({e}): not a SQL dump"))?;
    let scratch = tempfile::Builder::new()
        .prefix("cfdr-import-replay-")
        .suffix(".sqlite")
        .tempfile()
        .map_err(|e| e.to_string())?;
    let conn = rusqlite::Connection::open(scratch.path()).map_err(|e| e.to_string())?;
    conn.execute_batch("BEGIN").map_err(|e| e.to_string())?;
    let mut artifact = tempfile::Builder::new()
        .prefix("cfdr-import-d1-")
        .suffix(".sql")
        .tempfile()
        .map_err(|e| e.to_string())?;
    let mut dropped = BTreeSet::new();
    let mut open = false;
    {
        let mut w = std::io::BufWriter::new(artifact.as_file_mut());
        for (n, stmt) in crate::sqlsplit::statements(sql).into_iter().enumerate() {
            let body = stmt.trim();
            if crate::sqlsplit::without_leading_comments(body).is_empty() {
                continue;
            }
            if !crate::sqlsplit::is_complete(body) {
                return Err(format!(
                    "ends in the middle of statement {} (`{}`): the dump is truncated",
                    n + 1,
                    clip(body)
                ));
            }
            if let Some(tc) = transaction_control(body) {
                open = tc == "BEGIN";
                dropped.insert(tc);
                continue;
            }
            // REALs written as D1 reads back the doubles the dump's text denotes; after that,
            // D1's SQLite and this one read every number of it alike.
            let body = crate::sqlnum::exact_reals(body);
            conn.execute_batch(&body).map_err(|e| {
                format!(
                    "does not replay: statement {} (`{}`): {e}",
                    n + 1,
                    clip(&body)
                )
            })?;
            w.write_all(body.as_bytes()).map_err(|e| e.to_string())?;
            w.write_all(b"\n").map_err(|e| e.to_string())?;
        }
        w.flush().map_err(|e| e.to_string())?;
    }
    if open {
        return Err("opens a transaction it never commits: the dump is truncated".into());
    }
    conn.execute_batch("COMMIT").map_err(|e| e.to_string())?;
    let hashes = crate::engine::d1::local::hashes(&conn, crate::engine::d1::query::RowText::Exact)
        .map_err(|e| e.to_string())?;
    if hashes.is_empty() {
        return Err("creates no table: not a database dump".into());
    }
    let tables: Vec<crate::engine::d1::TableStats> = hashes
        .into_iter()
        .map(|(name, (rows, sha256))| crate::engine::d1::TableStats {
            name,
            rows,
            sha256,
            virtual_table: false,
        })
        .collect();
    let mut warnings = Vec::new();
    if !dropped.is_empty() {
        warnings.push(format!(
            "the dump's {} statements were left out: D1 runs an import in a transaction of its own and refuses them",
            dropped.into_iter().collect::<Vec<_>>().join("/")
        ));
    }
    Ok(Converted {
        id: name.clone(),
        name,
        account: None,
        at: None,
        artifact,
        stats: json!({
            "tables": tables,
            "requests": 0,
            "row_text": crate::engine::d1::query::RowText::EXACT,
        }),
        warnings,
        part: None,
    })
}

/// `sqlite-snapshot`: a SQLite file, copied with the online backup API and integrity-checked,
/// its tables counted.
pub fn sqlite_snapshot(path: &Path, name: String) -> Result<Converted, Refusal> {
    use crate::engine::sqlite::SqliteError;
    let (copy, tables) = crate::engine::sqlite::snapshot(path).map_err(|e| match e {
        SqliteError::Integrity { answer, .. } => {
            let lines: Vec<&str> = answer.lines().collect();
            format!(
                "fails SQLite's integrity check: {}{}",
                lines.iter().take(2).copied().collect::<Vec<_>>().join("; "),
                match lines.len() {
                    0..=2 => String::new(),
                    n => format!(" (and {} more problems)", n - 2),
                }
            )
        }
        SqliteError::Open(_) => "is not a SQLite database that can be read".to_string(),
        SqliteError::Local(e) => format!("could not be copied here: {e}"),
    })?;
    Ok(Converted {
        id: name.clone(),
        name,
        account: None,
        at: None,
        artifact: copy,
        stats: json!({ "tables": tables }),
        warnings: Vec::new(),
        part: None,
    })
}

fn clip(s: &str) -> String {
    let one: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() > 60 {
        format!("{}…", one.chars().take(60).collect::<String>())
    } else {
        one
    }
}

/// The time a file name or folder says: `…-YYYY-MM-DD-HH-MM-SS` at the end of the name's stem,
/// an RFC 3339 folder (`backups/full/2025-12-05T10:30:00.000Z/`), or a `YYYY-MM-DD` folder
/// (midnight UTC).
pub fn time_in_name(name: &str) -> Option<OffsetDateTime> {
    let parts: Vec<&str> = name.split('/').collect();
    let (file, folders) = parts.split_last()?;
    let stem = file.rsplit_once('.').map_or(*file, |(s, _)| s);
    if stem.len() >= 19 {
        let tail = &stem[stem.len() - 19..];
        let b = tail.as_bytes();
        let dashes = [4, 7, 10, 13, 16].iter().all(|i| b[*i] == b'-');
        if dashes {
            let iso = format!(
                "{}T{}:{}:{}Z",
                &tail[..10],
                &tail[11..13],
                &tail[14..16],
                &tail[17..19]
            );
            if let Some(t) = parse_time(&iso) {
                return Some(t);
            }
        }
    }
    for f in folders.iter().rev() {
        if let Some(t) = parse_time(f) {
            return Some(t);
        }
        if f.len() == 10
            && let Some(t) = parse_time(&format!("{f}T00:00:00Z"))
        {
            return Some(t);
        }
    }
    None
}

/// The name a SQL dump's file gives its database: the stem less a trailing timestamp
/// (`database-2024-01-15-02-00-00.sql` → `database`), or the stem (`2024-12-08/groveauth.sql`
/// → `groveauth`).
pub fn name_in_file(file: &str) -> String {
    let stem = file.rsplit_once('.').map_or(file, |(s, _)| s);
    if stem.len() > 20 && time_in_name(file).is_some() {
        stem[..stem.len() - 20].to_string()
    } else {
        stem.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_names_come_from_the_files_as_the_teams_store_them() {
        let t = |s: &str| time_in_name(s).map(crate::repo::manifest::rfc3339);
        assert_eq!(
            t("backups/database-2024-01-15-02-00-00.sql").as_deref(),
            Some("2024-01-15T02:00:00Z")
        );
        assert_eq!(
            t("2024-12-08/groveauth.sql").as_deref(),
            Some("2024-12-08T00:00:00Z")
        );
        assert_eq!(
            t("backups/full/2025-12-05T10:30:00.000Z/livestore.db").as_deref(),
            Some("2025-12-05T10:30:00Z")
        );
        assert_eq!(t("dump.sql"), None);
        assert_eq!(name_in_file("database-2024-01-15-02-00-00.sql"), "database");
        assert_eq!(name_in_file("groveauth.sql"), "groveauth");
    }

    #[test]
    fn a_kv_file_whose_key_count_disagrees_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kv.json");
        let doc = |count: usize| {
            json!({ "version": "1.0", "timestamp": "2025-12-05T10:30:00.000Z", "accountId": "abc",
                "namespaces": [{ "namespace": "SESSIONS", "namespaceId": "d687", "keyCount": count,
                "entries": [{ "key": "b", "value": "2", "metadata": null },
                            { "key": "a", "value": "1", "metadata": { "t": 1 } }] }] })
        };
        std::fs::write(&p, doc(3).to_string()).unwrap();
        let e = kv_json(&p).err().unwrap();
        assert!(e.contains("keyCount says 3 keys, the file holds 2"), "{e}");
        std::fs::write(&p, doc(2).to_string()).unwrap();
        let c = kv_json(&p).unwrap();
        let lines = std::fs::read_to_string(c[0].artifact.path()).unwrap();
        assert_eq!(
            lines,
            "{\"base64\":false,\"key\":\"a\",\"metadata\":{\"t\":1},\"value\":\"1\"}\n{\"base64\":false,\"key\":\"b\",\"value\":\"2\"}\n",
            "sorted by key, as cfdr's own"
        );
        assert_eq!(c[0].stats["keys"], 2);
        assert_eq!(c[0].id, "d687");
    }

    #[test]
    fn a_dump_is_replayed_and_a_truncated_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.sql");
        let dump = "-- Table: users\nBEGIN TRANSACTION;\nCREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT);\nINSERT INTO users VALUES(1,'a;b');\nINSERT INTO users VALUES(2,'c');\nCOMMIT;\n-- Backup Complete\n";
        std::fs::write(&p, dump).unwrap();
        let c = d1_sql(&p, "shop".into()).unwrap();
        assert_eq!(c.stats["tables"][0]["rows"], 2);
        assert!(c.warnings[0].contains("BEGIN/COMMIT"), "{:?}", c.warnings);
        let stored = std::fs::read_to_string(c.artifact.path()).unwrap();
        assert!(
            !stored.contains("BEGIN") && stored.contains("'a;b'"),
            "{stored}"
        );
        std::fs::write(
            &p,
            &dump[..dump.find("INSERT INTO users VALUES(2").unwrap() + 20],
        )
        .unwrap();
        let e = d1_sql(&p, "shop".into()).err().unwrap();
        assert!(e.contains("truncated"), "{e}");
        std::fs::write(&p, &dump[..dump.find("COMMIT").unwrap()]).unwrap();
        let e = d1_sql(&p, "shop".into()).err().unwrap();
        assert!(e.contains("never commits"), "{e}");
    }
}
