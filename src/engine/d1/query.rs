//! D1 through the query API: `raw` statements with string parameters, values as JSON.

use reqwest::Method;
use serde_json::{Value, json};

use crate::cloudflare::{Body, CfError, Client};

/// Rows of one statement (arrays of JSON values).
pub async fn rows(
    client: &Client,
    db: &str,
    sql: &str,
    params: &[String],
) -> Result<Vec<Vec<Value>>, CfError> {
    let a = client
        .call(
            Method::POST,
            &format!("/d1/database/{db}/raw"),
            &[],
            Body::Json(json!({ "sql": sql, "params": params })),
        )
        .await?;
    let rows = a.result[0]["results"]["rows"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    Ok(rows
        .into_iter()
        .map(|r| r.as_array().cloned().unwrap_or_default())
        .collect())
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
