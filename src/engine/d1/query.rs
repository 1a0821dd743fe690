//! D1 through the query API: `raw` statements with string parameters, values as JSON.

use std::borrow::Cow;

use serde_json::Value;

use crate::cloudflare::{CfError, Client};

/// Rows of one statement (arrays of JSON values).
pub async fn rows(
    client: &Client,
    db: &str,
    sql: &str,
    params: &[String],
) -> Result<Vec<Vec<Value>>, CfError> {
    client.d1_raw(db, sql, params).await
}

/// A value's text, borrowed where it is a JSON string.
pub fn text_ref(v: &Value) -> std::borrow::Cow<'_, str> {
    match v {
        Value::String(s) => std::borrow::Cow::Borrowed(s),
        other => std::borrow::Cow::Owned(text(other)),
    }
}

pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// An identifier in double quotes, `"` doubled.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// How a backup's rows were written and hashed, as its manifest records it (`row_text`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowText {
    /// `quote()` on every value (backups before exact REALs). Inside D1's SQLite, `quote()`
    /// prints some neighbouring doubles alike, so these hashes cannot tell them apart.
    Quote,
    /// REALs read as JSON numbers (exact: D1 writes them as JavaScript does, shortest
    /// round-trip; the sign of a zero and infinities said in SQL) and written as
    /// [`crate::sqlnum::literal`]s, which D1 reads back bit for bit; other values as `quote()`
    /// writes them. No text SQLite 3.47 prints of a REAL is exact: `printf('%!.20e')` is off
    /// in the last digits for one double in five.
    Exact,
}

impl RowText {
    /// The manifest's `stats.row_text` value for backups taken with [`RowText::Exact`].
    pub const EXACT: &str = "exact";

    /// The scheme a backup's stats say its hashes were taken with.
    pub fn of(stats: &Value) -> Self {
        if stats["row_text"] == Self::EXACT {
            RowText::Exact
        } else {
            RowText::Quote
        }
    }
}

/// Whether a column of this declared type can hold a REAL: all but those of TEXT affinity
/// (SQLite turns numbers stored there into text), and the rowid alias.
pub fn may_hold_real(declared: &str, rowid_alias: bool) -> bool {
    let t = declared.to_ascii_uppercase();
    let text = !t.contains("INT") && ["CHAR", "CLOB", "TEXT"].iter().any(|k| t.contains(k));
    !text && !rowid_alias
}

/// One column of a table as the dump reads it.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    /// REALs of this column come as their own JSON number ([`RowText::Exact`]).
    pub real: bool,
}

/// A table's columns as the dump reads them, and its primary key (quoted names, in key order),
/// from `pragma_table_info`'s (name, declared type, pk).
pub(super) fn columns(
    info: &[(String, String, u64)],
    has_rowid: bool,
) -> (Vec<Column>, Vec<String>) {
    let mut keyed: Vec<&(String, String, u64)> = info.iter().filter(|c| c.2 > 0).collect();
    keyed.sort_by_key(|c| c.2);
    let alias = match keyed.as_slice() {
        [only] if has_rowid && only.1.eq_ignore_ascii_case("INTEGER") => Some(only.0.as_str()),
        _ => None,
    };
    let cols = info
        .iter()
        .map(|(name, declared, _)| Column {
            name: name.clone(),
            real: may_hold_real(declared, alias == Some(name.as_str())),
        })
        .collect();
    (cols, keyed.iter().map(|c| ident(&c.0)).collect())
}

/// An SQL expression for a column's value as text: `quote()`, except for text holding NUL,
/// which `quote()` cannot carry and which becomes `CAST(X'…' AS TEXT)`, and for a REAL of a
/// column read with [`RowText::Exact`], which is left empty for [`exact_row`] to fill from the
/// column's [`real_expr`]. `instr()` compares at every byte, so it runs only where the
/// characters before the first NUL (`length`) fall short of the bytes (`length` of the text as
/// a blob): text holding NUL, or not ASCII.
fn value_expr(column: &Column, scheme: RowText) -> String {
    let c = ident(&column.name);
    let real = if scheme == RowText::Exact && column.real {
        format!("WHEN typeof({c}) = 'real' THEN '' ")
    } else {
        String::new()
    };
    format!(
        "CASE {real}WHEN typeof({c}) = 'text' AND length({c}) < length(CAST({c} AS BLOB)) AND instr({c}, char(0)) > 0 THEN 'CAST(X''' || hex({c}) || ''' AS TEXT)' ELSE quote({c}) END"
    )
}

/// A column's REAL as its own result: the number (JSON carries it exactly), or text for what
/// JSON cannot carry (`-0.0`, `0.0`, `±9.0e+999`); NULL for any other type.
fn real_expr(c: &str) -> String {
    let c = ident(c);
    format!(
        "CASE WHEN typeof({c}) = 'real' THEN CASE WHEN {c} = 0 THEN iif(atan2({c}, -1) < 0, '-0.0', '0.0') WHEN {c} IN (9e999, -9e999) THEN quote({c}) ELSE {c} END END"
    )
}

/// The result columns for a row: its values as one text, comma-separated, then (for
/// [`RowText::Exact`]) the REAL of each column that may hold one.
pub fn row_select(columns: &[Column], scheme: RowText) -> String {
    let text = if columns.is_empty() {
        "''".to_string()
    } else {
        columns
            .iter()
            .map(|c| value_expr(c, scheme))
            .collect::<Vec<_>>()
            .join(" || ',' || ")
    };
    let reals = columns
        .iter()
        .filter(|c| scheme == RowText::Exact && c.real)
        .map(|c| format!(", {}", real_expr(&c.name)));
    std::iter::once(text).chain(reals).collect()
}

/// A REAL as a row's own result gives it.
pub enum Real<'a> {
    Number(f64),
    /// `-0.0`, `0.0`, `9.0e+999` or `-9.0e+999`, already the literal.
    Literal(&'a str),
}

/// A row's text with each empty value — a REAL left out by [`row_select`] — filled, in order,
/// with the literal of the next REAL of `reals` ([`crate::sqlnum::literal`], which D1 reads
/// back bit for bit). Borrowed when the row holds no REAL; `None` when the REALs run out.
pub fn exact_row<'a>(
    row: &'a str,
    reals: &mut impl Iterator<Item = Real<'a>>,
) -> Option<Cow<'a, str>> {
    if !row.contains(",,") && !row.starts_with(',') && !row.ends_with(',') && !row.is_empty() {
        // No empty value outside a string (a string is never empty text: `''`).
        return Some(Cow::Borrowed(row));
    }
    let b = row.as_bytes();
    let mut out = String::with_capacity(row.len() + 32);
    let mut start = 0;
    let mut i = 0;
    loop {
        // A value ends at a comma outside quotes (blobs and CAST(X'…' AS TEXT) hold none).
        while i < b.len() && b[i] != b',' {
            if b[i] == b'\'' {
                i += 1;
                while i < b.len() && !(b[i] == b'\'' && b.get(i + 1) != Some(&b'\'')) {
                    i += if b[i] == b'\'' { 2 } else { 1 };
                }
            }
            i += 1;
        }
        let end = i.min(b.len());
        if start == end {
            match reals.next()? {
                Real::Number(x) => crate::sqlnum::push_literal(&mut out, x),
                Real::Literal(l) => out.push_str(l),
            }
        } else {
            out.push_str(&row[start..end]);
        }
        if i >= b.len() {
            break;
        }
        out.push(',');
        i += 1;
        start = i;
    }
    Some(Cow::Owned(out))
}

/// One schema object.
#[derive(Debug, Clone)]
pub struct SchemaObject {
    pub kind: String,
    pub name: String,
    pub table: String,
    pub sql: String,
}

/// Everything in `sqlite_schema` with SQL, in creation order.
pub async fn schema(client: &Client, db: &str) -> Result<Vec<SchemaObject>, CfError> {
    let rows = rows(
        client,
        db,
        "SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY rowid",
        &[],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|r| SchemaObject {
            kind: text(&r[0]),
            name: text(&r[1]),
            table: text(&r[2]),
            sql: text(&r[3]),
        })
        .collect())
}

/// The live database as a restore's plan sees it: its schema objects, every table's rows and
/// its foreign keys (three statements, more for hundreds of tables).
pub async fn live(client: &Client, db: &str) -> Result<super::restore::Live, CfError> {
    use super::restore::{ForeignKey, Live, Object};
    let objects = schema(client, db).await?;
    let shadow = super::paged::shadows(&objects);
    let objects: Vec<Object> = objects
        .iter()
        .filter(|o| !super::paged::is_internal(&o.name))
        .map(|o| Object {
            kind: o.kind.clone(),
            name: o.name.clone(),
            table: o.table.clone(),
            shadow: shadow.contains(&o.name),
        })
        .collect();
    let tables: Vec<&Object> = objects
        .iter()
        .filter(|o| o.kind == "table" && !o.shadow)
        .collect();
    let mut counts = std::collections::BTreeMap::new();
    for chunk in tables.chunks(100) {
        let sql = chunk
            .iter()
            .enumerate()
            .map(|(i, t)| format!("SELECT ?{}, count(*) FROM {}", i + 1, ident(&t.name)))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let names: Vec<String> = chunk.iter().map(|t| t.name.clone()).collect();
        for r in rows(client, db, &sql, &names).await? {
            counts.insert(text(&r[0]), r[1].as_u64().unwrap_or(0));
        }
    }
    let foreign_keys = rows(
        client,
        db,
        "SELECT m.name, p.\"table\", p.on_delete FROM sqlite_schema AS m, pragma_foreign_key_list(m.name) AS p WHERE m.type = 'table'",
        &[],
    )
    .await?
    .iter()
    .map(|r| ForeignKey {
        child: text(&r[0]),
        parent: text(&r[1]),
        on_delete: text(&r[2]),
    })
    .collect();
    Ok(Live {
        objects,
        rows: counts,
        foreign_keys,
    })
}
