//! The online paged dump: every table read a page at a time in rowid (or primary-key) order with
//! `quote()` on every column, so SQLite itself writes each value as an exact SQL literal and no
//! JSON number carries data — except REALs, which D1's SQLite prints no text of that it reads
//! back exactly: each comes as a JSON number of its own (exact) and is written as the literal
//! D1 reads back bit for bit ([`crate::sqlnum::literal`]). Virtual tables (FTS5) are dumped as
//! their CREATE and their rows inserted through the table itself (external-content tables get a `'rebuild'`), their shadow
//! tables skipped; tables go in foreign-key order; indexes, triggers and views last. The text
//! format is D1's own export's (`PRAGMA defer_foreign_keys=TRUE;` first, no BEGIN/COMMIT).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use futures_util::StreamExt;

use sha2::{Digest, Sha256};

use crate::progress::{Counting, Progress};

use super::query::{
    Real, RowText, SchemaObject, columns, exact_row, ident, row_select, rows, schema, text,
    text_ref,
};
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

pub(super) const SHADOW_SUFFIXES: [&str; 5] = ["_data", "_idx", "_content", "_docsize", "_config"];

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
    // Buffered before it is counted: the progress sees 64 KiB at a time, not every piece of
    // every INSERT (a clock read each).
    let mut out = std::io::BufWriter::with_capacity(
        1 << 16,
        Counting {
            inner: out,
            progress: progress.clone(),
        },
    );
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
        let ts = table_rows(client, db, name, is_virtual, RowText::Exact, out).await?;
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

/// Pages of one table asked for at once past its first: the next is on its way while one is
/// hashed and written (D1 answers one query at a time; the transfer and both ends' JSON work
/// overlap).
const PAGES_IN_FLIGHT: usize = 2;

/// A run of rowids read as one page: after `from`, up to `to` (none: to the end).
#[derive(Debug, Clone, PartialEq)]
struct Span {
    from: i64,
    to: Option<i64>,
}

/// The rowids after `after` cut into spans of about `limit` rows each, from the count of rows
/// after it and the last rowid; the last span open-ended, so rows added meanwhile are read too.
fn spans(after: i64, count: u64, max: i64, limit: usize) -> Vec<Span> {
    if count == 0 || max <= after {
        return Vec::new();
    }
    let range = i128::from(max) - i128::from(after);
    let step = ((range * limit as i128 + i128::from(count) - 1) / i128::from(count)).max(1);
    let mut out = Vec::new();
    let mut from = i128::from(after);
    loop {
        let to = from + step;
        if to >= i128::from(max) {
            out.push(Span {
                from: from as i64,
                to: None,
            });
            return out;
        }
        out.push(Span {
            from: from as i64,
            to: Some(to as i64),
        });
        from = to;
    }
}

/// One table's rows on their way out: each written as an INSERT and hashed, in read order.
struct TableOut<'a, W> {
    out: &'a mut W,
    prefix: String,
    is_virtual: bool,
    scheme: RowText,
    hash: Sha256,
    count: u64,
}

impl<W: Write> TableOut<'_, W> {
    /// Takes a page (rowid, values, REALs); returns the bytes of its values.
    fn page(&mut self, page: &[Vec<serde_json::Value>]) -> Result<usize, D1Error> {
        let mut bytes = 0;
        for r in page {
            let row = text_ref(&r[1]);
            bytes += row.len();
            let row = match self.scheme {
                RowText::Exact => {
                    let mut reals = r[2..].iter().filter_map(|v| match v {
                        serde_json::Value::Number(n) => n.as_f64().map(Real::Number),
                        serde_json::Value::String(s) => Some(Real::Literal(s)),
                        _ => None,
                    });
                    exact_row(&row, &mut reals).ok_or_else(|| {
                        D1Error::Unexpected(format!(
                            "a row came back with fewer REALs than it has: {r:?}"
                        ))
                    })?
                }
                RowText::Quote => std::borrow::Cow::Borrowed(&*row),
            };
            self.hash.update(row.as_bytes());
            self.hash.update(b"\n");
            self.count += 1;
            if self.is_virtual {
                write!(self.out, "\n{}{},{row});", self.prefix, text(&r[0]))?;
            } else {
                write!(self.out, "\n{}{row});", self.prefix)?;
            }
        }
        Ok(bytes)
    }
}

/// A rowid as the query API gives it back (`quote(rowid)`, text).
fn rowid(v: &serde_json::Value) -> Result<i64, D1Error> {
    text_ref(v)
        .parse()
        .map_err(|_| D1Error::Unexpected(format!("a rowid came back as `{v}`")))
}

/// Up to `cap` rows of `span`, by `select` (the rowid, then the values).
async fn span_page(
    client: &Client,
    db: &str,
    select: &str,
    span: Span,
    cap: usize,
) -> Result<Vec<Vec<serde_json::Value>>, D1Error> {
    let (upto, mut params) = match span.to {
        Some(to) => (" AND rowid <= CAST(?2 AS INTEGER)", vec![to.to_string()]),
        None => ("", Vec::new()),
    };
    params.insert(0, span.from.to_string());
    let sql =
        format!("{select} WHERE rowid > CAST(?1 AS INTEGER){upto} ORDER BY rowid LIMIT {cap}");
    Ok(rows(client, db, &sql, &params).await?)
}

/// The rows of one table as INSERTs, and its count and content hash (SHA-256 over each row's
/// values as written by `scheme`, joined by `,`, one row a line, in the order they are read). A rowid table is
/// read by rowid: a first page, then the rest in spans of rowids asked for
/// [`PAGES_IN_FLIGHT`] at a time; other tables by primary key, a page after another.
async fn table_rows(
    client: &Client,
    db: &str,
    name: &str,
    is_virtual: bool,
    scheme: RowText,
    out: &mut impl Write,
) -> Result<TableStats, D1Error> {
    // (name, declared type, position in the primary key)
    let info: Vec<(String, String, u64)> = rows(
        client,
        db,
        "SELECT name, type, pk FROM pragma_table_info(?1) ORDER BY cid",
        &[name.to_string()],
    )
    .await?
    .iter()
    .map(|r| (text(&r[0]), text(&r[1]), r[2].as_u64().unwrap_or(0)))
    .collect();
    let has_rowid = is_virtual
        || rows(
            client,
            db,
            &format!("SELECT 1 FROM {} WHERE rowid IS NULL LIMIT 0", ident(name)),
            &[],
        )
        .await
        .is_ok();
    let (cols, pk) = columns(&info, has_rowid);
    let values = row_select(&cols, scheme);
    let prefix = if is_virtual {
        format!(
            "INSERT INTO {}(rowid,{}) VALUES(",
            ident(name),
            cols.iter()
                .map(|c| ident(&c.name))
                .collect::<Vec<_>>()
                .join(",")
        )
    } else {
        format!("INSERT INTO {} VALUES(", ident(name))
    };
    let mut table = TableOut {
        out,
        prefix,
        is_virtual,
        scheme,
        hash: Sha256::new(),
        count: 0,
    };
    let t = ident(name);
    if has_rowid {
        // Rowids bound as text and cast, so no JSON number carries one.
        let first = rows(
            client,
            db,
            &format!("SELECT quote(rowid), {values} FROM {t} ORDER BY rowid LIMIT {FIRST_PAGE}"),
            &[],
        )
        .await?;
        let bytes = table.page(&first)?;
        if let (FIRST_PAGE, Some(last)) = (first.len(), first.last()) {
            let after = rowid(&last[0])?;
            let limit = next_page(first.len(), bytes);
            let rest = rows(
                client,
                db,
                &format!(
                    "SELECT count(*), quote(max(rowid)) FROM {t} WHERE rowid > CAST(?1 AS INTEGER)"
                ),
                &[after.to_string()],
            )
            .await?;
            // Never guessed: a count that cannot be read would skip the rest of the table.
            let (count, max) = match rest.first().map(|r| (r[0].as_u64(), &r[1])) {
                Some((Some(0), _)) => (0, after),
                Some((Some(c), m)) => (c, rowid(m)?),
                _ => {
                    return Err(D1Error::Unexpected(format!(
                        "the count of rows of table `{name}` after rowid {after} came back as {rest:?}"
                    )));
                }
            };
            // A span holding more rows than twice its share is read on a page at a time.
            let cap = 2 * limit;
            let select = format!("SELECT quote(rowid), {values} FROM {t}");
            let spans = spans(after, count, max, limit);
            let mut pages = futures_util::stream::iter(spans.clone())
                .map(|s| span_page(client, db, &select, s, cap))
                .buffered(PAGES_IN_FLIGHT);
            let mut at = spans.into_iter();
            while let (Some(got), Some(span)) = (pages.next().await, at.next()) {
                let mut got = got?;
                loop {
                    table.page(&got)?;
                    match got.last() {
                        Some(last) if got.len() >= cap => {
                            let rest = Span {
                                from: rowid(&last[0])?,
                                to: span.to,
                            };
                            got = span_page(client, db, &select, rest, cap).await?;
                        }
                        _ => break,
                    }
                }
            }
        }
    } else {
        let order = if pk.is_empty() {
            "1".into()
        } else {
            pk.join(", ")
        };
        let (mut offset, mut limit) = (0usize, FIRST_PAGE);
        loop {
            let sql = format!(
                "SELECT NULL, {values} FROM {t} ORDER BY {order} LIMIT {limit} OFFSET {offset}"
            );
            let page = rows(client, db, &sql, &[]).await?;
            let bytes = table.page(&page)?;
            offset += page.len();
            if page.len() < limit {
                break;
            }
            limit = next_page(page.len(), bytes);
        }
    }
    Ok(TableStats {
        name: name.to_string(),
        rows: table.count,
        sha256: hex::encode(table.hash.finalize()),
        virtual_table: is_virtual,
    })
}

/// Every table's row count and content hash, as [`dump`] computes them, without writing the
/// dump: tables under `only` (lower-cased names) when given.
pub async fn hashes(
    client: &Client,
    db: &str,
    only: Option<&BTreeSet<String>>,
    scheme: RowText,
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
            table_rows(
                client,
                db,
                &t.name,
                is_virtual,
                scheme,
                &mut std::io::sink(),
            )
            .await?
        };
        out.insert(t.name.clone(), stats);
        progress.add(1, 0);
    }
    progress.finish();
    Ok(out)
}

/// The requests [`table_rows`] takes for a rowid table of `rows` rows of about `row_bytes`
/// each: its columns (with their types and key), whether it has a rowid, its first page; past a
/// full first page, the count of the rest and a span of rowids a page (rowids without gaps).
pub fn table_cost(rows: u64, row_bytes: u64) -> u64 {
    let first = FIRST_PAGE as u64;
    if rows < first {
        return 3;
    }
    let limit = next_page(FIRST_PAGE, FIRST_PAGE * row_bytes.max(1) as usize) as u64;
    4 + (rows - first).div_ceil(limit)
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
        assert_eq!(table_cost(0, 10), 3, "columns, rowid, one empty page");
        assert_eq!(table_cost(999, 10), 3);
        assert_eq!(table_cost(1_000, 10), 4, "a full page asks how many follow");
        // 40-byte rows: a page of 1,000, the count, then spans of 50,000.
        assert_eq!(table_cost(1_000_000, 40), 2 + 1 + 1 + 20);
    }

    #[test]
    fn the_rest_of_a_table_is_cut_into_spans_of_a_page_each() {
        let s = |from, to| Span { from, to };
        // 10 rows after rowid 0, without gaps, 4 a page: 1..=4, 5..=8, the rest.
        assert_eq!(
            spans(0, 10, 10, 4),
            [s(0, Some(4)), s(4, Some(8)), s(8, None)]
        );
        // Sparse rowids: the span widens with the gaps.
        assert_eq!(spans(0, 2, 1_000, 1), [s(0, Some(500)), s(500, None)]);
        assert_eq!(spans(5, 0, 5, 10), [], "nothing after the first page");
        assert_eq!(spans(5, 3, 8, 10), [s(5, None)]);
        // The extremes of a rowid do not overflow.
        let wide = spans(i64::MIN, 4, i64::MAX, 2);
        assert_eq!(wide.len(), 2);
        assert_eq!(wide[1].to, None);
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
