//! Runs a request's statements the way D1 does: the whole request in one implicit transaction
//! (explicit COMMIT/ROLLBACK refused), D1's limits (100 KB statements, 100 bound parameters),
//! `_cf_` names reserved, errors as `<sqlite message>: SQLITE_<CODE>`.

use std::time::Instant;

use rusqlite::hooks::{AuthAction, AuthContext, Authorization, TransactionOperation};
use rusqlite::limits::Limit;
use rusqlite::{Connection, StatementStatus};
use serde::Serialize;

use super::jsval::Cell;
use crate::sqlsplit::statements;

pub const MAX_STATEMENT_BYTES: i32 = 100_000;
pub const MAX_PARAMS: i32 = 100;

/// One statement's answer.
#[derive(Debug)]
pub struct Outcome {
    pub columns: Vec<String>,
    pub rows: Rows,
    pub meta: Meta,
}

/// A statement's rows, one vector of cells row after row (a page is a million cells: one
/// allocation, not one a row).
#[derive(Debug, Default, PartialEq)]
pub struct Rows {
    width: usize,
    cells: Vec<Cell>,
}

impl Rows {
    fn new(width: usize) -> Self {
        Self {
            width,
            cells: Vec::new(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.cells.len().checked_div(self.width).unwrap_or(0)
    }

    /// Each row's cells, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[Cell]> {
        self.cells.chunks_exact(self.width.max(1))
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Meta {
    pub served_by: &'static str,
    pub served_by_region: &'static str,
    pub served_by_colo: &'static str,
    pub served_by_primary: bool,
    pub timings: Timings,
    pub duration: f64,
    pub changes: u64,
    pub last_row_id: i64,
    pub changed_db: bool,
    pub size_after: u64,
    pub rows_read: u64,
    pub rows_written: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    pub sql_duration_ms: f64,
}

#[derive(Debug)]
pub struct Execution {
    pub outcomes: Vec<Outcome>,
    pub statements: usize,
    pub changed: bool,
}

/// Applies D1's limits to a connection; called once when a database is opened.
pub fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_limit(Limit::SQLITE_LIMIT_SQL_LENGTH, MAX_STATEMENT_BYTES)?;
    conn.set_limit(Limit::SQLITE_LIMIT_VARIABLE_NUMBER, MAX_PARAMS)?;
    conn.execute_batch("PRAGMA foreign_keys=ON;")
}

/// Runs every statement of `batch` (sql text, parameters) in one transaction. With `collect`
/// unset, rows are counted but not kept (imports).
pub fn execute(
    conn: &mut Connection,
    batch: &[(String, Vec<rusqlite::types::Value>)],
    collect: bool,
) -> Result<Execution, String> {
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(|e| d1_message(&e))?;
    conn.authorizer(Some(authorize))
        .map_err(|e| d1_message(&e))?;
    let result = run_all(conn, batch, collect);
    let _ = conn.authorizer(None::<fn(AuthContext<'_>) -> Authorization>);
    match result {
        Ok(execution) => match conn.execute_batch("COMMIT") {
            Ok(()) => Ok(execution),
            // A deferred foreign key fails the COMMIT and leaves the transaction open.
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(d1_message(&e))
            }
        },
        Err(message) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(message)
        }
    }
}

fn run_all(
    conn: &Connection,
    batch: &[(String, Vec<rusqlite::types::Value>)],
    collect: bool,
) -> Result<Execution, String> {
    let schema_before: i64 = conn
        .query_row("PRAGMA schema_version", [], |r| r.get(0))
        .map_err(|e| d1_message(&e))?;
    let changes_before = conn.total_changes();
    let mut outcomes = Vec::new();
    let mut count = 0;
    for (sql, params) in batch {
        let stmts = statements(sql);
        if stmts.is_empty() {
            return Err("No SQL statements detected.".into());
        }
        for text in stmts {
            count += 1;
            let outcome = run_one(conn, text, params, collect).map_err(|e| d1_message(&e))?;
            if collect {
                outcomes.push(outcome);
            }
        }
    }
    let schema_after: i64 = conn
        .query_row("PRAGMA schema_version", [], |r| r.get(0))
        .map_err(|e| d1_message(&e))?;
    let changed = conn.total_changes() != changes_before || schema_after != schema_before;
    Ok(Execution {
        outcomes,
        statements: count,
        changed,
    })
}

fn run_one(
    conn: &Connection,
    text: &str,
    params: &[rusqlite::types::Value],
    collect: bool,
) -> rusqlite::Result<Outcome> {
    let started = Instant::now();
    let before = conn.total_changes();
    // An import reports no statement's meta: it is not read for one (a million rows would
    // cost three more queries each).
    let schema_before: i64 = if collect {
        conn.query_row("PRAGMA schema_version", [], |r| r.get(0))?
    } else {
        0
    };
    // Numbers in the text are read as D1's SQLite (3.47) reads them, not as this one does.
    let mut stmt = conn.prepare(&crate::sqlnum::as_d1(text))?;
    let wanted = stmt.parameter_count();
    if wanted > 0 {
        if params.len() != wanted {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_RANGE),
                Some(format!(
                    "Wrong number of parameter bindings. SQL statement has {wanted}, {} given",
                    params.len()
                )),
            ));
        }
        for (i, p) in params.iter().enumerate() {
            stmt.raw_bind_parameter(i + 1, p)?;
        }
    }
    let columns: Vec<String> = stmt.column_names().map(str::to_string).collect();
    let mut rows = Rows::new(columns.len());
    let mut returned = 0u64;
    {
        let mut cursor = stmt.raw_query();
        while let Some(row) = cursor.next()? {
            returned += 1;
            if collect {
                for i in 0..columns.len() {
                    rows.cells.push(Cell::from_ref(row.get_ref(i)?));
                }
            }
        }
    }
    let scanned = stmt.get_status(StatementStatus::FullscanStep).max(0) as u64;
    drop(stmt);
    if !collect {
        return Ok(Outcome {
            columns,
            rows,
            meta: Meta::default(),
        });
    }
    let changes = conn.total_changes().saturating_sub(before);
    let schema_after: i64 = conn.query_row("PRAGMA schema_version", [], |r| r.get(0))?;
    let size_after: u64 = conn.query_row(
        "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
        [],
        |r| r.get::<_, i64>(0),
    )? as u64;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(Outcome {
        columns,
        rows,
        meta: Meta {
            served_by: "v3-prod",
            served_by_region: "WNAM",
            served_by_colo: "SJC",
            served_by_primary: true,
            timings: Timings {
                sql_duration_ms: ms,
            },
            duration: ms,
            changes,
            last_row_id: conn.last_insert_rowid(),
            changed_db: changes > 0 || schema_after != schema_before,
            size_after,
            rows_read: returned.max(scanned),
            rows_written: changes,
        },
    })
}

fn authorize(ctx: AuthContext<'_>) -> Authorization {
    match ctx.action {
        AuthAction::Transaction {
            operation: TransactionOperation::Begin,
        } => Authorization::Allow,
        // COMMIT and ROLLBACK would end D1's implicit transaction.
        AuthAction::Transaction { .. } => Authorization::Deny,
        action => match table_of(&action) {
            Some(name) if name.len() >= 4 && name[..4].eq_ignore_ascii_case("_cf_") => {
                Authorization::Deny
            }
            _ => Authorization::Allow,
        },
    }
}

fn table_of<'a>(action: &AuthAction<'a>) -> Option<&'a str> {
    use AuthAction::*;
    match *action {
        CreateIndex { table_name, .. }
        | CreateTable { table_name }
        | CreateTempIndex { table_name, .. }
        | CreateTempTable { table_name }
        | CreateTempTrigger { table_name, .. }
        | CreateTrigger { table_name, .. }
        | Delete { table_name }
        | DropIndex { table_name, .. }
        | DropTable { table_name }
        | DropTempIndex { table_name, .. }
        | DropTempTable { table_name }
        | DropTempTrigger { table_name, .. }
        | DropTrigger { table_name, .. }
        | Insert { table_name }
        | Read { table_name, .. }
        | Update { table_name, .. }
        | AlterTable { table_name, .. }
        | Analyze { table_name }
        | CreateVtable { table_name, .. }
        | DropVtable { table_name, .. } => Some(table_name),
        CreateView { view_name }
        | CreateTempView { view_name }
        | DropView { view_name }
        | DropTempView { view_name } => Some(view_name),
        _ => None,
    }
}

/// D1's error text: SQLite's message followed by the primary result code's name.
pub fn d1_message(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(err, msg) => {
            let text = msg.clone().unwrap_or_else(|| err.to_string());
            format!("{text}: {}", code_name(err.extended_code & 0xff))
        }
        other => format!("{other}: SQLITE_ERROR"),
    }
}

fn code_name(code: i32) -> &'static str {
    use rusqlite::ffi::*;
    match code {
        SQLITE_INTERNAL => "SQLITE_INTERNAL",
        SQLITE_PERM => "SQLITE_PERM",
        SQLITE_ABORT => "SQLITE_ABORT",
        SQLITE_BUSY => "SQLITE_BUSY",
        SQLITE_LOCKED => "SQLITE_LOCKED",
        SQLITE_NOMEM => "SQLITE_NOMEM",
        SQLITE_READONLY => "SQLITE_READONLY",
        SQLITE_INTERRUPT => "SQLITE_INTERRUPT",
        SQLITE_IOERR => "SQLITE_IOERR",
        SQLITE_CORRUPT => "SQLITE_CORRUPT",
        SQLITE_FULL => "SQLITE_FULL",
        SQLITE_TOOBIG => "SQLITE_TOOBIG",
        SQLITE_CONSTRAINT => "SQLITE_CONSTRAINT",
        SQLITE_MISMATCH => "SQLITE_MISMATCH",
        SQLITE_MISUSE => "SQLITE_MISUSE",
        SQLITE_AUTH => "SQLITE_AUTH",
        SQLITE_RANGE => "SQLITE_RANGE",
        _ => "SQLITE_ERROR",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::types::Value;

    fn conn() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        configure(&c).unwrap();
        c
    }

    fn run(c: &mut Connection, sql: &str) -> Result<Execution, String> {
        execute(c, &[(sql.to_string(), vec![])], true)
    }

    #[test]
    fn a_failing_statement_rolls_back_the_whole_request() {
        let mut c = conn();
        run(&mut c, "CREATE TABLE t(x UNIQUE);").unwrap();
        let err = run(&mut c, "INSERT INTO t VALUES(1); INSERT INTO t VALUES(1);").unwrap_err();
        assert_eq!(err, "UNIQUE constraint failed: t.x: SQLITE_CONSTRAINT");
        let n = run(&mut c, "SELECT count(*) AS n FROM t").unwrap();
        assert_eq!(
            n.outcomes[0].rows.iter().collect::<Vec<_>>(),
            [[Cell::Int(0)]]
        );
    }

    #[test]
    fn a_deferred_foreign_key_fails_the_commit_and_rolls_back() {
        let mut c = conn();
        run(&mut c, "CREATE TABLE p(id INTEGER PRIMARY KEY); CREATE TABLE k(p REFERENCES p(id)); INSERT INTO p VALUES (1); INSERT INTO k VALUES (1);").unwrap();
        let e = run(&mut c, "PRAGMA defer_foreign_keys = TRUE; DROP TABLE p; CREATE TABLE p(id INTEGER PRIMARY KEY); INSERT INTO p VALUES (2);").unwrap_err();
        assert!(e.contains("FOREIGN KEY"), "{e}");
        // Rolled back, and the connection takes the next request.
        let e = run(&mut c, "SELECT id FROM p").unwrap();
        assert_eq!(e.outcomes[0].rows.len(), 1);
    }

    #[test]
    fn d1_limits_and_reserved_names_are_enforced() {
        let mut c = conn();
        assert_eq!(
            run(&mut c, "SELECT * FROM missing").unwrap_err(),
            "no such table: missing: SQLITE_ERROR"
        );
        assert!(
            run(&mut c, "CREATE TABLE _cf_KV(x)")
                .unwrap_err()
                .contains("SQLITE_AUTH")
        );
        assert!(
            run(&mut c, "COMMIT")
                .unwrap_err()
                .contains("not authorized")
        );
        assert!(
            run(&mut c, "BEGIN")
                .unwrap_err()
                .contains("within a transaction")
        );
        let long = format!("SELECT '{}'", "x".repeat(100_001));
        assert!(run(&mut c, &long).unwrap_err().contains("SQLITE_TOOBIG"));
        let many = format!("SELECT {}", vec!["?"; 101].join(","));
        let params = vec![Value::Integer(1); 101];
        assert!(
            execute(&mut c, &[(many, params)], true)
                .unwrap_err()
                .contains("too many SQL variables")
        );
    }

    #[test]
    fn meta_reports_changes_and_row_ids() {
        let mut c = conn();
        let e = run(
            &mut c,
            "CREATE TABLE t(id INTEGER PRIMARY KEY, v); INSERT INTO t(v) VALUES('a'),('b');",
        )
        .unwrap();
        assert!(e.changed);
        assert_eq!(e.statements, 2);
        let m = &e.outcomes[1].meta;
        assert_eq!(
            (m.changes, m.last_row_id, m.rows_written, m.changed_db),
            (2, 2, 2, true)
        );
        let read = run(&mut c, "SELECT v FROM t ORDER BY id").unwrap();
        assert!(!read.changed);
        assert_eq!(read.outcomes[0].columns, vec!["v"]);
        assert_eq!(read.outcomes[0].rows.len(), 2);
    }
}
