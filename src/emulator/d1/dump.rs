//! D1's SQL export, byte for byte as wrangler 4.86.0 writes it (`d1 export --local`), flaws
//! included: numbers pass through JavaScript (integers past 2^53 are rounded, `-0.0` becomes
//! `0`), and a database with a virtual table cannot be exported at all (as remote D1 fails even
//! when the `tables` filter leaves the virtual table out).

use rusqlite::Connection;

use super::jsval::{Cell, js_integer, js_number};

#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DumpOptions {
    #[serde(default)]
    pub no_data: bool,
    #[serde(default)]
    pub no_schema: bool,
    #[serde(default)]
    pub tables: Vec<String>,
}

pub const VIRTUAL_TABLE_ERROR: &str =
    "D1 Export error: cannot export databases with Virtual Tables (fts5)";

/// The dump: statements joined with `\n`, no trailing newline.
pub fn dump(conn: &Connection, options: &DumpOptions) -> Result<String, String> {
    dump_inner(conn, options).map_err(|e| match e {
        DumpError::Virtual => VIRTUAL_TABLE_ERROR.to_string(),
        DumpError::Sql(e) => format!("D1 Export error: {e}"),
    })
}

enum DumpError {
    Virtual,
    Sql(rusqlite::Error),
}

impl From<rusqlite::Error> for DumpError {
    fn from(e: rusqlite::Error) -> Self {
        DumpError::Sql(e)
    }
}

fn dump_inner(conn: &Connection, options: &DumpOptions) -> Result<String, DumpError> {
    let filter = |name: &str| options.tables.is_empty() || options.tables.iter().any(|t| t == name);
    let mut out: Vec<String> = vec!["PRAGMA defer_foreign_keys=TRUE;".into()];

    let tables: Vec<(String, String)> = conn
        .prepare(
            "SELECT name, sql FROM sqlite_schema AS o WHERE (true) AND type=='table' AND sql NOT NULL
             ORDER BY tbl_name='sqlite_sequence', rowid",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    if tables
        .iter()
        .any(|(_, sql)| sql.starts_with("CREATE VIRTUAL TABLE"))
    {
        return Err(DumpError::Virtual);
    }

    for (table, sql) in &tables {
        if !filter(table) {
            continue;
        }
        if table == "sqlite_sequence" {
            if !options.no_schema {
                out.push("DELETE FROM sqlite_sequence;".into());
            }
        } else if table.starts_with("sqlite_stat") && table.len() > "sqlite_stat".len() {
            if !options.no_schema {
                out.push("ANALYZE sqlite_schema;".into());
            }
        } else if table.starts_with("_cf_") || table.starts_with("sqlite_") {
            continue;
        } else if !options.no_schema {
            if sql.starts_with("CREATE TABLE '") || sql.starts_with("CREATE TABLE \"") {
                out.push(format!("CREATE TABLE IF NOT EXISTS {};", &sql[13..]));
            } else {
                out.push(format!("{sql};"));
            }
        }
        if options.no_data {
            continue;
        }
        let columns: Vec<String> = conn
            .prepare(&format!("PRAGMA table_info={}", escape_id(table)))?
            .query_map([], |r| r.get(1))?
            .collect::<rusqlite::Result<_>>()?;
        let select = format!(
            "SELECT {} FROM {};",
            columns
                .iter()
                .map(|c| escape_id(c))
                .collect::<Vec<_>>()
                .join(", "),
            escape_id(table)
        );
        let mut stmt = conn.prepare(&select)?;
        let mut rows = stmt.query([])?;
        let prefix = format!("INSERT INTO {} VALUES(", escape_id(table));
        while let Some(row) = rows.next()? {
            let mut line = prefix.clone();
            for i in 0..columns.len() {
                if i > 0 {
                    line.push(',');
                }
                line.push_str(&literal(&Cell::from_ref(row.get_ref(i)?)));
            }
            line.push_str(");");
            out.push(line);
        }
    }

    if !options.no_schema {
        let mut stmt = conn.prepare(
            "SELECT name, sql FROM sqlite_schema AS o WHERE (true) AND sql NOT NULL
               AND type IN ('index', 'trigger', 'view') ORDER BY type COLLATE NOCASE",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let name: String = row.get(0)?;
            if filter(&name) {
                out.push(format!("{};", row.get::<_, String>(1)?));
            }
        }
    }
    Ok(out.join("\n"))
}

/// A value as the dump writes it.
pub fn literal(cell: &Cell) -> String {
    match cell {
        Cell::Null => "NULL".into(),
        Cell::Int(i) => js_integer(*i),
        Cell::Real(f) => js_number(*f),
        Cell::Text(t) => quote_text(t),
        Cell::Blob(b) => format!("X'{}'", hex::encode(b)),
    }
}

/// Single-quoted text; line breaks go through `replace(…, char(10))` as SQLite's shell writes
/// them. D1's generator (wrangler 4.86.0) always uses the placeholders `\n` and `\r`, even when
/// the text already holds them, so such text does not survive a replay: a D1 flaw kept on
/// purpose, which cfdr's own paged dump avoids.
pub fn quote_text(value: &str) -> String {
    let has_lf = value.contains('\n');
    let has_cr = value.contains('\r');
    if !has_lf && !has_cr {
        return format!("'{}'", value.replace('\'', "''"));
    }
    let escaped = value
        .replace('\'', "''")
        .replace('\n', "\\n")
        .replace('\r', "\\r");
    let mut out = format!("'{escaped}'");
    if has_cr {
        out = format!("replace({out},'\\r',char(13))");
    }
    if has_lf {
        out = format!("replace({out},'\\n',char(10))");
    }
    out
}

pub fn escape_id(id: &str) -> String {
    format!("\"{}\"", id.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(sql: &str) -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(sql).unwrap();
        c
    }

    #[test]
    fn dumps_as_d1_writes_it() {
        let c = db("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, a, b TEXT, c REAL);
            INSERT INTO t(a,b,c) VALUES (9223372036854775807, 'it''s\nnew', -0.0), (X'00ff', 'r'||char(13)||'n', 100.0);
            CREATE TABLE \"q t\" (\"a b\" INTEGER);
            INSERT INTO \"q t\" VALUES (1);
            CREATE VIEW v AS SELECT * FROM t;
            CREATE INDEX i ON t(b);");
        let got = dump(&c, &DumpOptions::default()).unwrap();
        let want = "PRAGMA defer_foreign_keys=TRUE;
CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, a, b TEXT, c REAL);
INSERT INTO \"t\" VALUES(1,9223372036854776000,replace('it''s\\nnew','\\n',char(10)),0);
INSERT INTO \"t\" VALUES(2,X'00ff',replace('r\\rn','\\r',char(13)),100);
CREATE TABLE IF NOT EXISTS \"q t\" (\"a b\" INTEGER);
INSERT INTO \"q t\" VALUES(1);
DELETE FROM sqlite_sequence;
INSERT INTO \"sqlite_sequence\" VALUES('t',2);
CREATE INDEX i ON t(b);
CREATE VIEW v AS SELECT * FROM t;";
        assert_eq!(got, want);
    }

    #[test]
    fn options_filter_schema_data_and_tables() {
        let c = db(
            "CREATE TABLE a(x); CREATE TABLE b(y); INSERT INTO a VALUES(1); INSERT INTO b VALUES(2); CREATE INDEX ia ON a(x);",
        );
        let only_b = DumpOptions {
            tables: vec!["b".into()],
            ..Default::default()
        };
        assert_eq!(
            dump(&c, &only_b).unwrap(),
            "PRAGMA defer_foreign_keys=TRUE;\nCREATE TABLE b(y);\nINSERT INTO \"b\" VALUES(2);"
        );
        let no_data = DumpOptions {
            no_data: true,
            ..Default::default()
        };
        assert_eq!(
            dump(&c, &no_data).unwrap(),
            "PRAGMA defer_foreign_keys=TRUE;\nCREATE TABLE a(x);\nCREATE TABLE b(y);\nCREATE INDEX ia ON a(x);"
        );
        let no_schema = DumpOptions {
            no_schema: true,
            ..Default::default()
        };
        assert_eq!(
            dump(&c, &no_schema).unwrap(),
            "PRAGMA defer_foreign_keys=TRUE;\nINSERT INTO \"a\" VALUES(1);\nINSERT INTO \"b\" VALUES(2);"
        );
    }

    #[test]
    fn a_virtual_table_anywhere_fails_the_export() {
        let c = db("CREATE TABLE a(x); CREATE VIRTUAL TABLE f USING fts5(body);");
        let only_a = DumpOptions {
            tables: vec!["a".into()],
            ..Default::default()
        };
        assert_eq!(dump(&c, &only_a).unwrap_err(), VIRTUAL_TABLE_ERROR);
    }

    #[test]
    fn placeholders_are_fixed_even_when_the_text_holds_them() {
        // Replaying this turns the literal backslash-n into a newline: D1's flaw, reproduced.
        assert_eq!(quote_text("a\\nb\nc"), r"replace('a\nb\nc','\n',char(10))");
        assert_eq!(quote_text("plain 'q'"), "'plain ''q'''");
    }
}
