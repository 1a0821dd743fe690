//! The online paged dump: every table read a page at a time in rowid (or primary-key) order with
//! `quote()` on every column, so SQLite itself writes each value as an exact SQL literal and no
//! JSON number ever carries data. Virtual tables (FTS5) are dumped as their CREATE and their rows
//! inserted through the table itself (external-content tables get a `'rebuild'`), their shadow
//! tables skipped; tables go in foreign-key order; indexes, triggers and views last. The text
//! format is D1's own export's (`PRAGMA defer_foreign_keys=TRUE;` first, no BEGIN/COMMIT).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use sha2::{Digest, Sha256};

use crate::progress::{Counting, Progress};

use super::query::{SchemaObject, ident, row_expr, rows, schema, text};
use super::{D1Error, TableStats};
use crate::cloudflare::Client;

/// Rows in a table's first page; later pages are sized from the rows seen so far.
pub const FIRST_PAGE: usize = 1_000;
/// What a page aims to carry: far below the 30 s a query may take and small enough to hold,
/// big enough that a million-row table is not thousands of requests out of a 1,200-per-5-minutes
/// budget.
pub const PAGE_BYTES: usize = 4 << 20;
pub const MAX_PAGE: usize = 50_000;

/// The next page's row limit, from the last page's rows and bytes.
pub fn next_page(rows: usize, bytes: usize) -> usize {
    if rows == 0 {
        return FIRST_PAGE;
    }
    let per_row = (bytes / rows).max(1);
    (PAGE_BYTES / per_row).clamp(10, MAX_PAGE)
}

const SHADOW_SUFFIXES: [&str; 5] = ["_data", "_idx", "_content", "_docsize", "_config"];

pub fn is_internal(name: &str) -> bool {
    name.starts_with("sqlite_") || name.starts_with("_cf_")
}

/// Virtual tables and the shadow tables that belong to them.
pub(super) fn shadows(objects: &[SchemaObject]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for o in objects
        .iter()
        .filter(|o| o.kind == "table" && o.sql.starts_with("CREATE VIRTUAL TABLE"))
    {
        for suffix in SHADOW_SUFFIXES {
            out.insert(format!("{}{suffix}", o.name));
        }
    }
    out
}

/// Tables in an order where each comes after the tables it references.
async fn fk_order(
    client: &Client,
    db: &str,
    tables: &[&SchemaObject],
) -> Result<Vec<String>, D1Error> {
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for t in tables {
        let r = rows(
            client,
            db,
            "SELECT DISTINCT \"table\" FROM pragma_foreign_key_list(?1)",
            std::slice::from_ref(&t.name),
        )
        .await?;
        deps.insert(
            t.name.clone(),
            r.iter()
                .map(|x| text(&x[0]))
                .filter(|p| p != &t.name)
                .collect(),
        );
    }
    let mut done = Vec::new();
    let mut seen = BTreeSet::new();
    fn visit(
        n: &str,
        deps: &BTreeMap<String, BTreeSet<String>>,
        seen: &mut BTreeSet<String>,
        done: &mut Vec<String>,
    ) {
        if !seen.insert(n.to_string()) {
            return;
        }
        for d in deps.get(n).into_iter().flatten() {
            if deps.contains_key(d) {
                visit(d, deps, seen, done);
            }
        }
        done.push(n.to_string());
    }
    for t in tables {
        visit(&t.name, &deps, &mut seen, &mut done);
    }
    Ok(done)
}

/// Writes the dump of database `db` into `out`; returns per-table row counts and hashes.
pub async fn dump(
    client: &Client,
    db: &str,
    phase: &str,
    progress: &Progress,
    out: &mut impl Write,
) -> Result<Vec<TableStats>, D1Error> {
    let mut out = Counting {
        inner: out,
        progress: progress.clone(),
    };
    let out = &mut out;
    let objects = schema(client, db).await?;
    let shadow = shadows(&objects);
    let tables: Vec<&SchemaObject> = objects
        .iter()
        .filter(|o| o.kind == "table" && !is_internal(&o.name) && !shadow.contains(&o.name))
        .collect();
    let by_name: BTreeMap<&str, &SchemaObject> =
        tables.iter().map(|t| (t.name.as_str(), *t)).collect();
    let order = fk_order(client, db, &tables).await?;

    progress.phase(phase, "tables", Some(order.len() as u64));
    write!(out, "PRAGMA defer_foreign_keys=TRUE;")?;
    let mut stats = Vec::new();
    for name in &order {
        progress.check()?;
        progress.add(1, 0);
        let t = by_name[name.as_str()];
        let sql = if t.sql.starts_with("CREATE TABLE \"") || t.sql.starts_with("CREATE TABLE '") {
            format!("CREATE TABLE IF NOT EXISTS {}", &t.sql[13..])
        } else {
            t.sql.clone()
        };
        write!(out, "\n{sql};")?;
        let is_virtual = t.sql.starts_with("CREATE VIRTUAL TABLE");
        if is_virtual
            && t.sql.to_ascii_lowercase().contains("content=")
            && !t.sql.to_ascii_lowercase().contains("content=''")
        {
            write!(
                out,
                "\nINSERT INTO {}({}) VALUES('rebuild');",
                ident(name),
                ident(name)
            )?;
            stats.push(TableStats {
                name: name.clone(),
                rows: 0,
                sha256: String::new(),
                virtual_table: true,
            });
            continue;
        }
        let ts = table_rows(client, db, name, is_virtual, out).await?;
        stats.push(ts);
    }
    let seq = objects.iter().any(|o| o.name == "sqlite_sequence");
    if seq {
        write!(out, "\nDELETE FROM sqlite_sequence;")?;
        for r in rows(
            client,
            db,
            "SELECT quote(name) || ',' || quote(seq) FROM sqlite_sequence",
            &[],
        )
        .await?
        {
            write!(
                out,
                "\nINSERT INTO \"sqlite_sequence\" VALUES({});",
                text(&r[0])
            )?;
        }
    }
    let mut rest: Vec<&SchemaObject> = objects
        .iter()
        .filter(|o| {
            ["index", "trigger", "view"].contains(&o.kind.as_str()) && !shadow.contains(&o.table)
        })
        .collect();
    rest.sort_by_key(|o| match o.kind.as_str() {
        "index" => 0,
        "trigger" => 1,
        _ => 2,
    });
    for o in rest {
        write!(out, "\n{};", o.sql)?;
    }
    out.flush()?;
    Ok(stats)
}

/// The rows of one table as INSERTs, and its count and content hash (SHA-256 over each row's
/// quoted values joined by `,`, one row a line, in the order they are read).
async fn table_rows(
    client: &Client,
    db: &str,
    name: &str,
    is_virtual: bool,
    out: &mut impl Write,
) -> Result<TableStats, D1Error> {
    let cols: Vec<String> = rows(
        client,
        db,
        "SELECT name FROM pragma_table_info(?1) ORDER BY cid",
        &[name.to_string()],
    )
    .await?
    .iter()
    .map(|r| text(&r[0]))
    .collect();
    let values = row_expr(&cols);
    let has_rowid = is_virtual
        || rows(
            client,
            db,
            &format!("SELECT 1 FROM {} WHERE rowid IS NULL LIMIT 0", ident(name)),
            &[],
        )
        .await
        .is_ok();
    let pk: Vec<String> = rows(
        client,
        db,
        "SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk",
        &[name.to_string()],
    )
    .await?
    .iter()
    .map(|r| ident(&text(&r[0])))
    .collect();
    let prefix = if is_virtual {
        format!(
            "INSERT INTO {}(rowid,{}) VALUES(",
            ident(name),
            cols.iter().map(|c| ident(c)).collect::<Vec<_>>().join(",")
        )
    } else {
        format!("INSERT INTO {} VALUES(", ident(name))
    };
    let mut hash = Sha256::new();
    let mut count = 0u64;
    let mut after: Option<String> = None;
    let mut offset = 0usize;
    let mut limit = FIRST_PAGE;
    loop {
        let page = if has_rowid {
            // Keyset pages on rowid, bound as text and cast so no JSON number carries it.
            let filter = if after.is_some() {
                "WHERE rowid > CAST(?1 AS INTEGER) "
            } else {
                ""
            };
            let sql = format!(
                "SELECT quote(rowid), {values} FROM {t} {filter}ORDER BY rowid LIMIT {limit}",
                t = ident(name)
            );
            let params: Vec<String> = after.iter().cloned().collect();
            rows(client, db, &sql, &params).await?
        } else {
            let order = if pk.is_empty() {
                "1".into()
            } else {
                pk.join(", ")
            };
            let sql = format!(
                "SELECT NULL, {values} FROM {t} ORDER BY {order} LIMIT {limit} OFFSET {offset}",
                t = ident(name)
            );
            rows(client, db, &sql, &[]).await?
        };
        let n = page.len();
        let mut bytes = 0;
        for r in &page {
            let row = text(&r[1]);
            bytes += row.len();
            hash.update(row.as_bytes());
            hash.update(b"\n");
            count += 1;
            if is_virtual {
                write!(out, "\n{prefix}{},{row});", text(&r[0]))?;
            } else {
                write!(out, "\n{prefix}{row});")?;
            }
        }
        if let Some(last) = page.last() {
            after = Some(text(&last[0]));
        }
        offset += n;
        if n < limit {
            break;
        }
        limit = next_page(n, bytes);
    }
    Ok(TableStats {
        name: name.to_string(),
        rows: count,
        sha256: hex::encode(hash.finalize()),
        virtual_table: is_virtual,
    })
}

/// Every table's row count and content hash, as [`dump`] computes them, without writing the
/// dump: tables under `only` (lower-cased names) when given.
pub async fn hashes(
    client: &Client,
    db: &str,
    only: Option<&BTreeSet<String>>,
    progress: &Progress,
) -> Result<BTreeMap<String, TableStats>, D1Error> {
    let objects = schema(client, db).await?;
    let shadow = shadows(&objects);
    let tables: Vec<&SchemaObject> = objects
        .iter()
        .filter(|o| o.kind == "table" && !is_internal(&o.name) && !shadow.contains(&o.name))
        .filter(|o| only.is_none_or(|s| s.contains(&o.name.to_ascii_lowercase())))
        .collect();
    progress.phase("verify", "tables", Some(tables.len() as u64));
    let mut out = BTreeMap::new();
    for t in tables {
        progress.check()?;
        let is_virtual = t.sql.starts_with("CREATE VIRTUAL TABLE");
        let lower = t.sql.to_ascii_lowercase();
        let stats = if is_virtual && lower.contains("content=") && !lower.contains("content=''") {
            TableStats {
                name: t.name.clone(),
                rows: 0,
                sha256: String::new(),
                virtual_table: true,
            }
        } else {
            table_rows(client, db, &t.name, is_virtual, &mut std::io::sink()).await?
        };
        out.insert(t.name.clone(), stats);
        progress.add(1, 0);
    }
    progress.finish();
    Ok(out)
}

/// The requests [`table_rows`] takes for a table of `rows` rows of about `row_bytes` each:
/// its columns, whether it has a rowid, its key, then its pages.
pub fn table_cost(rows: u64, row_bytes: u64) -> u64 {
    let (mut left, mut limit, mut requests) = (rows, FIRST_PAGE as u64, 3u64);
    loop {
        requests += 1;
        let n = left.min(limit);
        left -= n;
        if n < limit {
            return requests;
        }
        limit = next_page(n as usize, (n * row_bytes.max(1)) as usize) as u64;
    }
}

/// The same per-table hashes over a local SQLite database (a replayed dump), for comparison.
pub fn local_hashes(
    conn: &rusqlite::Connection,
) -> rusqlite::Result<BTreeMap<String, (u64, String)>> {
    let tables: Vec<(String, String)> = conn
        .prepare("SELECT name, sql FROM sqlite_schema WHERE type='table' AND sql IS NOT NULL ORDER BY rowid")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let virtuals: BTreeSet<String> = tables
        .iter()
        .filter(|(_, s)| s.starts_with("CREATE VIRTUAL TABLE"))
        .map(|(n, _)| n.clone())
        .collect();
    let mut out = BTreeMap::new();
    for (name, _) in &tables {
        if is_internal(name)
            || virtuals
                .iter()
                .any(|v| SHADOW_SUFFIXES.iter().any(|s| *name == format!("{v}{s}")))
        {
            continue;
        }
        let cols: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")?
            .query_map([name], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let values = row_expr(&cols);
        let has_rowid = virtuals.contains(name)
            || conn
                .prepare(&format!("SELECT rowid FROM {} LIMIT 0", ident(name)))
                .is_ok();
        let pk: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk")?
            .query_map([name], |r| r.get::<_, String>(0))?
            .map(|n| n.map(|n| ident(&n)))
            .collect::<rusqlite::Result<_>>()?;
        let order = if has_rowid {
            "rowid".to_string()
        } else if pk.is_empty() {
            "1".into()
        } else {
            pk.join(", ")
        };
        let mut stmt = conn.prepare(&format!(
            "SELECT {values} FROM {} ORDER BY {order}",
            ident(name)
        ))?;
        let mut rows = stmt.query([])?;
        let (mut hash, mut n) = (Sha256::new(), 0u64);
        while let Some(r) = rows.next()? {
            let v: String = r.get(0)?;
            hash.update(v.as_bytes());
            hash.update(b"\n");
            n += 1;
        }
        out.insert(name.clone(), (n, hex::encode(hash.finalize())));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_tables_of_virtual_tables_are_known() {
        let o = |kind: &str, name: &str, sql: &str| SchemaObject {
            kind: kind.into(),
            name: name.into(),
            table: name.into(),
            sql: sql.into(),
        };
        let s = shadows(&[
            o("table", "f", "CREATE VIRTUAL TABLE f USING fts5(x)"),
            o("table", "t", "CREATE TABLE t(x)"),
        ]);
        assert!(s.contains("f_data") && s.contains("f_config") && !s.contains("t_data"));
        assert!(is_internal("sqlite_sequence") && is_internal("_cf_KV") && !is_internal("users"));
    }

    #[test]
    fn a_tables_cost_counts_its_pages_as_the_reader_takes_them() {
        assert_eq!(table_cost(0, 10), 4, "columns, rowid, key, one empty page");
        assert_eq!(table_cost(999, 10), 4);
        assert_eq!(table_cost(1_000, 10), 5, "a full page asks for the next");
        // 40-byte rows: pages of 1,000 then 50,000.
        assert_eq!(table_cost(1_000_000, 40), 3 + 1 + 20);
    }

    #[test]
    fn pages_aim_at_a_few_megabytes() {
        assert_eq!(next_page(0, 0), FIRST_PAGE);
        assert_eq!(next_page(1_000, 40_000), MAX_PAGE, "40-byte rows");
        assert_eq!(next_page(1_000, 1_000 * 4_096), 1_024);
        assert_eq!(
            next_page(10, 10 * 2_000_000),
            10,
            "2 MB rows: never below 10"
        );
    }
}
