//! The D1 engine's per-table hashes over a local SQLite database: a dump replayed here (D1's
//! export being checked, an imported dump) hashed exactly as the paged dump hashes the live one.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::types::ValueRef;
use sha2::{Digest, Sha256};

use super::paged::{SHADOW_SUFFIXES, is_internal};
use super::query::{Column, Real, RowText, columns, exact_row, ident, row_select};

/// The result columns [`row_select`] gives: the values' text, then one a REAL column.
fn stmt_width(cols: &[Column], scheme: RowText) -> usize {
    1 + match scheme {
        RowText::Exact => cols.iter().filter(|c| c.real).count(),
        RowText::Quote => 0,
    }
}

/// Per-table row counts and hashes, as [`super::paged::dump`] computes them, of a local SQLite
/// database (a replayed dump), for comparison.
pub fn hashes(
    conn: &rusqlite::Connection,
    scheme: RowText,
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
        let info: Vec<(String, String, u64)> = conn
            .prepare("SELECT name, type, pk FROM pragma_table_info(?1) ORDER BY cid")?
            .query_map([name], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)?.max(0) as u64))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let has_rowid = virtuals.contains(name)
            || conn
                .prepare(&format!("SELECT rowid FROM {} LIMIT 0", ident(name)))
                .is_ok();
        let (cols, pk) = columns(&info, has_rowid);
        let values = row_select(&cols, scheme);
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
        let width = stmt_width(&cols, scheme);
        while let Some(r) = rows.next()? {
            let v: String = r.get(0)?;
            let v = match scheme {
                RowText::Exact => {
                    let mut reals = (1..width).filter_map(|i| match r.get_ref(i) {
                        Ok(ValueRef::Real(f)) => Some(Real::Number(f)),
                        Ok(ValueRef::Text(t)) => std::str::from_utf8(t).ok().map(Real::Literal),
                        _ => None,
                    });
                    exact_row(&v, &mut reals)
                        .ok_or(rusqlite::Error::InvalidColumnIndex(width))?
                        .into_owned()
                }
                RowText::Quote => v,
            };
            hash.update(v.as_bytes());
            hash.update(b"\n");
            n += 1;
        }
        out.insert(name.clone(), (n, hex::encode(hash.finalize())));
    }
    Ok(out)
}
