//! D1 restores through the query API (`--method batched`), the pure half: an import (as
//! [`super::restore::write_import`] writes it, in one part) cut into requests within D1's
//! limits — each statement at most 100 KB, each request at most [`MAX_REQUEST_BYTES`] of SQL,
//! so it finishes well inside D1's 30 s — and made exactly-once.
//!
//! D1 runs each request as one transaction, but a restore of many requests is not one: a
//! request cut off after D1 applied it is sent again on a retry or a resume. So every request
//! first records itself in a marker table (`_cfdr_restore_units`, keyed by run and unit): sent
//! twice, the second copy fails on that key and D1 rolls it back whole, which the restore reads
//! as "already landed". The last request drops the marker table.

/// The marker table that makes every request of a batched restore land once.
pub const MARKER: &str = "_cfdr_restore_units";
/// D1's statement limit.
pub const MAX_STATEMENT_BYTES: usize = 100_000;
/// SQL per request: small enough to run far inside D1's 30 s a request.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

/// One request of a batched restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub sql: String,
    /// Tables whose statements it carries (empty for the marker's drop).
    pub tables: Vec<String>,
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The requests for `import` (one import file's text) in run `run`, each at most `max` bytes of
/// SQL besides its marker; a statement past D1's limit is refused, naming its table.
pub fn batches(import: &str, run: &str, max: usize) -> Result<Vec<Batch>, String> {
    const PRELUDE: &str = "PRAGMA defer_foreign_keys=TRUE;";
    let head = |unit: usize| {
        format!(
            "{PRELUDE}\nCREATE TABLE IF NOT EXISTS {MARKER}(run TEXT NOT NULL, unit INTEGER NOT NULL, PRIMARY KEY (run, unit));\nINSERT INTO {MARKER} VALUES({}, {unit});\n",
            quote(run)
        )
    };
    let mut out: Vec<Batch> = Vec::new();
    let mut current = Batch {
        sql: head(0),
        tables: Vec::new(),
    };
    let mut body = 0usize;
    let mut table: Option<String> = None;
    for s in crate::sqlsplit::statements(import) {
        let s = s.trim();
        if s.is_empty() || s.trim_end_matches(';') == PRELUDE.trim_end_matches(';') {
            continue;
        }
        if let super::restore::Stmt::Table(t) = super::restore::classify(s) {
            table = Some(t);
        }
        if s.len() > MAX_STATEMENT_BYTES {
            return Err(format!(
                "a statement of {} bytes{} is past D1's limit of {MAX_STATEMENT_BYTES} a statement, so it cannot go through the query API; restore with --method import",
                s.len(),
                table
                    .as_ref()
                    .map(|t| format!(" (table `{t}`)"))
                    .unwrap_or_default()
            ));
        }
        if body > 0 && body + s.len() + 1 > max {
            let unit = out.len() + 1;
            out.push(std::mem::replace(
                &mut current,
                Batch {
                    sql: head(unit),
                    tables: Vec::new(),
                },
            ));
            body = 0;
        }
        if let Some(t) = &table
            && current.tables.last() != Some(t)
        {
            current.tables.push(t.clone());
        }
        current.sql.push_str(s);
        if !s.ends_with(';') {
            current.sql.push(';');
        }
        current.sql.push('\n');
        body += s.len() + 1;
    }
    if body > 0 {
        out.push(current);
    }
    out.push(Batch {
        sql: format!("DROP TABLE IF EXISTS {MARKER};"),
        tables: Vec::new(),
    });
    Ok(out)
}

/// The whole import of `plan` from `dump` as text, in one part (no file limit applies to it).
pub fn import_text(
    dump: &(impl super::restore::Source + ?Sized),
    plan: &super::restore::D1Plan,
) -> Result<String, String> {
    use std::cell::RefCell;
    use std::rc::Rc;
    struct Sink(Rc<RefCell<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let text = Rc::new(RefCell::new(Vec::new()));
    super::restore::write_import(dump, plan, &[], |_| Ok(Some(Sink(text.clone()))))?;
    let bytes = std::mem::take(&mut *text.borrow_mut());
    let text = String::from_utf8(bytes).map_err(|e| format!("the import is not UTF-8: {e}"))?;
    Ok(in_key_order(&text))
}

/// The import's tables in foreign-key order: each table's CREATE and rows after those of the
/// tables it references. A request is one transaction, and D1 checks its foreign keys when it
/// commits, so a child's rows must not come in a request before its parent's (a dump in schema
/// order, as D1's export writes it, can have a child created first). What comes before the
/// first table (the prelude, the drops) stays first; indexes, triggers, views and the
/// AUTOINCREMENT counters go last, in their order. Tables in a cycle, and rows of one table
/// referencing each other, keep the dump's order: such a database restores through the import.
fn in_key_order(import: &str) -> String {
    use super::restore::{Stmt, classify};
    let key = |t: &str| t.to_ascii_lowercase();
    let mut head: Vec<&str> = Vec::new();
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    let mut by_key: std::collections::HashMap<String, usize> = Default::default();
    let mut tail: Vec<&str> = Vec::new();
    for s in crate::sqlsplit::statements(import) {
        match classify(s) {
            Stmt::Table(t) => {
                by_key.insert(key(&t), groups.len());
                groups.push((key(&t), vec![s]));
            }
            Stmt::Insert(t) => match by_key.get(&key(&t)) {
                Some(&i) => groups[i].1.push(s),
                None => tail.push(s),
            },
            _ if groups.is_empty() => head.push(s),
            _ => tail.push(s),
        }
    }
    // What each table references, as SQLite reads its CREATE.
    let scratch = rusqlite::Connection::open_in_memory().ok();
    let mut deps: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    if let Some(conn) = &scratch {
        for (t, stmts) in &groups {
            if conn.execute_batch(stmts[0]).is_err() {
                continue;
            }
            let parents: Vec<String> = conn
                .prepare("SELECT DISTINCT \"table\" FROM pragma_foreign_key_list(?1)")
                .and_then(|mut q| {
                    q.query_map([t], |r| r.get::<_, String>(0))?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .unwrap_or_default();
            deps.insert(t.clone(), parents.iter().map(|p| key(p)).collect());
        }
    }
    fn visit(
        i: usize,
        groups: &[(String, Vec<&str>)],
        deps: &std::collections::BTreeMap<String, Vec<String>>,
        seen: &mut Vec<bool>,
        order: &mut Vec<usize>,
    ) {
        if std::mem::replace(&mut seen[i], true) {
            return;
        }
        for p in deps.get(&groups[i].0).into_iter().flatten() {
            if let Some(j) = groups.iter().position(|(g, _)| g == p) {
                visit(j, groups, deps, seen, order);
            }
        }
        order.push(i);
    }
    let (mut seen, mut order) = (vec![false; groups.len()], Vec::new());
    for i in 0..groups.len() {
        visit(i, &groups, &deps, &mut seen, &mut order);
    }
    let mut out = String::with_capacity(import.len());
    let ordered = order.iter().flat_map(|&i| groups[i].1.iter());
    for s in head.iter().chain(ordered).chain(tail.iter()) {
        out.push_str(s);
        out.push('\n');
    }
    out
}

/// Whether D1's error for a batch says it had landed before (its marker is taken).
pub fn landed_before(message: &str) -> bool {
    message.contains("UNIQUE constraint failed") && message.contains(MARKER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    const IMPORT: &str = "PRAGMA defer_foreign_keys=TRUE;\nDROP TABLE IF EXISTS \"a\";\nCREATE TABLE a(x);\nINSERT INTO a VALUES(1);\nINSERT INTO a VALUES('two;three');\nCREATE TABLE \"b c\"(y);\nINSERT INTO \"b c\" VALUES(X'00ff');\n";

    fn apply(conn: &Connection, b: &Batch) -> rusqlite::Result<()> {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(&b.sql)?;
        tx.commit()
    }

    #[test]
    fn batches_stay_within_the_limit_and_keep_every_statement_in_order() {
        let one = batches(IMPORT, "r1", MAX_REQUEST_BYTES).unwrap();
        assert_eq!(one.len(), 2, "{one:?}");
        assert_eq!(one[0].tables, ["a", "b c"]);
        assert_eq!(one[1].sql, "DROP TABLE IF EXISTS _cfdr_restore_units;");
        let small = batches(IMPORT, "r1", 40).unwrap();
        assert!(small.len() > 3, "{small:?}");
        for (i, b) in small.iter().enumerate().take(small.len() - 1) {
            assert!(b.sql.contains(&format!("VALUES('r1', {i});")), "{b:?}");
        }
        let conn = Connection::open_in_memory().unwrap();
        for b in &small {
            apply(&conn, b).unwrap();
        }
        let rows: Vec<String> = conn
            .prepare("SELECT quote(x) FROM a UNION ALL SELECT quote(y) FROM \"b c\"")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(rows, ["1", "'two;three'", "X'00FF'"]);
        let marker: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = ?1",
                [MARKER],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(marker, 0, "the last request drops the marker table");
    }

    #[test]
    fn a_batch_sent_twice_lands_once() {
        let b = batches(IMPORT, "r2", 40).unwrap();
        let conn = Connection::open_in_memory().unwrap();
        apply(&conn, &b[0]).unwrap();
        apply(&conn, &b[1]).unwrap();
        let again = apply(&conn, &b[1]).unwrap_err().to_string();
        assert!(landed_before(&again), "{again}");
        let n: i64 = conn
            .query_row("SELECT count(*) FROM a", [], |r| r.get(0))
            .unwrap();
        assert!(n <= 2, "nothing duplicated");
    }

    #[test]
    fn a_child_created_before_its_parent_is_sent_after_it() {
        // Schema order, as D1's export writes it: the child first, its rows referencing rows of
        // the parent that follows, then an index and a counter.
        let import = "PRAGMA defer_foreign_keys=TRUE;\nDROP TABLE IF EXISTS \"child\";\nCREATE TABLE child(id INTEGER PRIMARY KEY, p INTEGER REFERENCES Parent(id));\nINSERT INTO child VALUES(1, 10);\nINSERT INTO child VALUES(2, 20);\nCREATE TABLE parent(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT);\nINSERT INTO parent VALUES(10, 'ten');\nINSERT INTO parent VALUES(20, 'twenty');\nCREATE INDEX ci ON child(p);\nDELETE FROM sqlite_sequence WHERE name IN ('parent');\nINSERT INTO \"sqlite_sequence\" VALUES('parent',20);\n";
        let ordered = in_key_order(import);
        let at = |s: &str| {
            ordered
                .find(s)
                .unwrap_or_else(|| panic!("{s} in {ordered}"))
        };
        assert!(at("DROP TABLE") < at("CREATE TABLE parent"));
        assert!(at("INSERT INTO parent VALUES(20") < at("CREATE TABLE child"));
        assert!(at("INSERT INTO child VALUES(2") < at("CREATE INDEX ci"));
        assert!(at("CREATE INDEX ci") < at("DELETE FROM sqlite_sequence"));
        assert_eq!(
            crate::sqlsplit::statements(&ordered).len(),
            crate::sqlsplit::statements(import).len(),
            "every statement kept"
        );
        // A request a statement or two: each commits with the foreign keys it has so far.
        for (text, lands) in [(import, false), (ordered.as_str(), true)] {
            let conn = Connection::open_in_memory().unwrap();
            conn.execute_batch("PRAGMA foreign_keys=ON;").unwrap();
            let all = batches(text, "r", 60).unwrap();
            let ok = all.iter().all(|b| apply(&conn, b).is_ok());
            assert_eq!(ok, lands, "{text}");
        }
    }

    #[test]
    fn a_statement_past_the_limit_is_refused_with_its_table() {
        let big = format!(
            "CREATE TABLE t(x);\nINSERT INTO t VALUES('{}');\n",
            "x".repeat(MAX_STATEMENT_BYTES)
        );
        let e = batches(&big, "r", MAX_REQUEST_BYTES).unwrap_err();
        assert!(e.contains("`t`") && e.contains("--method import"), "{e}");
    }
}
