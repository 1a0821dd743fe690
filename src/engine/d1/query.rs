//! D1 through the query API: `raw` statements with string parameters, values as JSON.

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

/// An exact SQL literal for a column's value, written by SQLite itself: `quote()`, except for
/// text holding NUL, which `quote()` cannot carry and which becomes `CAST(X'…' AS TEXT)`.
pub fn value_expr(column: &str) -> String {
    let c = ident(column);
    format!(
        "CASE WHEN typeof({c}) = 'text' AND instr({c}, char(0)) > 0 THEN 'CAST(X''' || hex({c}) || ''' AS TEXT)' ELSE quote({c}) END"
    )
}

/// All of a row's values, comma-separated, as one SQL expression.
pub fn row_expr(columns: &[String]) -> String {
    if columns.is_empty() {
        return "''".into();
    }
    columns
        .iter()
        .map(|c| value_expr(c))
        .collect::<Vec<_>>()
        .join(" || ',' || ")
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
