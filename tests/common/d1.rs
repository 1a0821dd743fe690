//! D1 fixtures shared by the backup and restore tests: databases holding every awkward value
//! and object, and a comparable picture of a database's schema and content.

use std::collections::BTreeMap;

use rusqlite::Connection;

/// Every awkward value and object D1 stores: quoting, NUL-free control characters, 2^53,
/// extreme reals, blobs, odd identifiers, foreign keys, WITHOUT ROWID, generated columns,
/// an index, a view, a trigger and an AUTOINCREMENT counter.
pub const PLAIN: &str = r#"
CREATE TABLE vals(id INTEGER PRIMARY KEY AUTOINCREMENT, i INTEGER, r REAL, t TEXT, b BLOB, n);
INSERT INTO vals(i, r, t, b, n) VALUES (1, 0.1, 'it''s "quoted"', X'', NULL);
INSERT INTO vals(i, r, t, b, n) VALUES (-2, 1e300, 'line1
line2' || char(13) || 'cr', X'00ff10', 2.5);
INSERT INTO vals(i, r, t, b, n) VALUES (9007199254740992, -1.5e-300, 'unicode é ☃ 🚀', randomblob(300), 'x');
INSERT INTO vals(i, r, t, b, n) VALUES (7, 2.0, 'gone', NULL, NULL);
DELETE FROM vals WHERE i = 7;
CREATE TABLE "odd ""name"" [x]" ("a b" TEXT, "q""uote" INTEGER, [br] TEXT);
INSERT INTO "odd ""name"" [x]" VALUES ('x', 1, 'y'), (NULL, NULL, NULL);
CREATE TABLE parent(id INTEGER PRIMARY KEY, name TEXT UNIQUE);
CREATE TABLE child(id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id), v TEXT);
INSERT INTO parent VALUES (1, 'p1'), (2, 'p2');
INSERT INTO child VALUES (1, 2, 'c1'), (2, 1, 'c2');
CREATE TABLE kv(k TEXT PRIMARY KEY, v) WITHOUT ROWID;
INSERT INTO kv VALUES ('a', 1), ('b', X'01'), ('c', -0.5);
CREATE TABLE gen(a INTEGER, b INTEGER GENERATED ALWAYS AS (a * 2) VIRTUAL, c TEXT GENERATED ALWAYS AS (a || '!') STORED);
INSERT INTO gen(a) VALUES (1), (21);
CREATE TABLE big(x INTEGER);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1234) INSERT INTO big SELECT i * 3 FROM n;
CREATE INDEX child_parent ON child(parent_id);
CREATE VIEW child_names AS SELECT c.id, p.name FROM child c JOIN parent p ON p.id = c.parent_id;
CREATE TRIGGER vals_touch AFTER UPDATE ON vals BEGIN
  UPDATE vals SET n = 'touched' WHERE id = new.id;
END;
"#;

/// Values D1's export gets wrong (integers past 2^53, a literal backslash-n).
pub const LOSSY: &str = r#"
CREATE TABLE extremes(id INTEGER PRIMARY KEY, v INTEGER, r REAL);
INSERT INTO extremes VALUES (1, 9223372036854775807, -0.0), (2, -9223372036854775808, 0.0), (3, 9007199254740993, 100.0);
CREATE TABLE escapes(t TEXT);
INSERT INTO escapes VALUES ('a literal \n and a real' || char(10) || 'newline');
"#;

/// A virtual table (D1's export refuses the database).
pub const VIRTUAL: &str = r#"
CREATE VIRTUAL TABLE docs USING fts5(title, body);
INSERT INTO docs(rowid, title, body) VALUES (10, 'backup', 'restore drills every quarter'), (20, 'kv', 'bulk get is text');
"#;

/// Schema objects, per-table (rows, hash), and sqlite_sequence.
pub type Picture = (
    Vec<(String, String, String)>,
    BTreeMap<String, (u64, String)>,
    Vec<String>,
);

/// Schema and content of a local database, in a comparable form.
pub fn picture(conn: &Connection) -> Picture {
    let schema = conn
        .prepare(
            "SELECT type, name, sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY type, name",
        )
        .unwrap()
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get::<_, String>(2)?
                    .replace("CREATE TABLE IF NOT EXISTS", "CREATE TABLE"),
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let seq = conn
        .prepare("SELECT name || '=' || seq FROM sqlite_sequence ORDER BY name")
        .and_then(|mut s| s.query_map([], |r| r.get(0)).and_then(|m| m.collect()))
        .unwrap_or_default();
    (
        schema,
        cfdr::engine::d1::local::hashes(conn, cfdr::engine::d1::query::RowText::Exact).unwrap(),
        seq,
    )
}

/// A local database built from `sql` with its numbers read as D1 reads them: the truth a
/// restored database is compared with.
pub fn truth(sql: &str) -> Connection {
    let c = Connection::open_in_memory().unwrap();
    c.execute_batch(&cfdr::sqlnum::as_d1_script(sql)).unwrap();
    c
}

/// A local database built from `sql` with its numbers read correctly rounded: the doubles the
/// text denotes, which is what cfdr restores from a dump it imported (its REALs rewritten as
/// literals D1 reads exactly).
pub fn as_written(sql: &str) -> Connection {
    let c = Connection::open_in_memory().unwrap();
    c.execute_batch(sql).unwrap();
    c
}

/// [`PLAIN`] with its `randomblob()` replaced by a fixed blob, so that a database built from it
/// on D1 and one built locally hold the same bytes.
pub fn plain_fixed() -> String {
    let blob: Vec<u8> = truth(PLAIN)
        .query_row("SELECT b FROM vals WHERE i = 9007199254740992", [], |r| {
            r.get(0)
        })
        .expect("the blob row");
    PLAIN.replace("randomblob(300)", &format!("X'{}'", hex::encode(&blob)))
}

/// The live database `db` of the emulator as D1's own export gives it, loaded into a local
/// SQLite: what a restored database is pictured by.
pub async fn live(api: &super::Api, db: &str) -> Connection {
    let sql = api
        .d1_export(db, serde_json::json!({}))
        .await
        .expect("the export runs");
    let c = Connection::open_in_memory().unwrap();
    c.execute_batch(&format!("BEGIN;{sql}\nCOMMIT;")).unwrap();
    c
}
