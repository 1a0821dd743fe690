//! The emulator's own bookkeeping in one SQLite database: D1 database records, Time Travel
//! history (deduplicated pages), KV namespaces and entries, Workers (each script with its versions
//! and deployments, as one JSON document). In memory or in the data directory.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

use super::control::lock;

const SCHEMA: &str = "
PRAGMA journal_mode=WAL;
PRAGMA synchronous=NORMAL;
CREATE TABLE IF NOT EXISTS d1_databases(
  uuid TEXT PRIMARY KEY, name TEXT UNIQUE NOT NULL, created_ms INTEGER NOT NULL,
  version TEXT NOT NULL, jurisdiction TEXT, location_hint TEXT,
  read_replication TEXT NOT NULL DEFAULT 'disabled', write_seq INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS d1_pages(hash BLOB PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS d1_history(
  db TEXT NOT NULL, bookmark TEXT NOT NULL, at_ms INTEGER NOT NULL, pages BLOB NOT NULL,
  PRIMARY KEY(db, bookmark)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kv_namespaces(id TEXT PRIMARY KEY, title TEXT UNIQUE NOT NULL, created_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS kv_entries(
  ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, expiration INTEGER, metadata TEXT,
  PRIMARY KEY(ns, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS workers_scripts(name TEXT PRIMARY KEY, doc TEXT NOT NULL);
";

pub struct Store {
    conn: Mutex<Connection>,
}

#[derive(Debug, Clone)]
pub struct DbRecord {
    pub uuid: String,
    pub name: String,
    pub created_ms: i64,
    pub version: String,
    pub jurisdiction: Option<String>,
    pub read_replication: String,
}

#[derive(Debug, Clone)]
pub struct Namespace {
    pub id: String,
    pub title: String,
}

#[derive(Debug, Clone)]
pub struct KvEntry {
    pub key: String,
    pub value: Vec<u8>,
    pub expiration: Option<i64>,
    pub metadata: Option<String>,
}

pub type SqlResult<T> = rusqlite::Result<T>;

impl Store {
    pub fn open(path: Option<&Path>) -> anyhow::Result<Self> {
        let conn = match path {
            Some(p) => Connection::open(p)?,
            None => Connection::open_in_memory()?,
        };
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(super::r2::objects::SCHEMA)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut Connection) -> SqlResult<T>) -> SqlResult<T> {
        f(&mut lock(&self.conn))
    }

    pub fn has_data(&self) -> SqlResult<bool> {
        self.with(|c| {
            c.query_row(
                "SELECT EXISTS(SELECT 1 FROM d1_databases) OR EXISTS(SELECT 1 FROM kv_namespaces) OR EXISTS(SELECT 1 FROM r2_buckets)",
                [],
                |r| r.get(0),
            )
        })
    }

    // --- D1 records -------------------------------------------------------------------------

    pub fn db_insert(&self, db: &DbRecord, location_hint: Option<&str>) -> SqlResult<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO d1_databases(uuid, name, created_ms, version, jurisdiction, location_hint, read_replication)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![db.uuid, db.name, db.created_ms, db.version, db.jurisdiction, location_hint, db.read_replication],
            )
            .map(drop)
        })
    }

    pub fn db_list(&self, name: Option<&str>) -> SqlResult<Vec<DbRecord>> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT uuid, name, created_ms, version, jurisdiction, read_replication FROM d1_databases
                 WHERE ?1 IS NULL OR instr(name, ?1) > 0 ORDER BY created_ms, name",
            )?;
            stmt.query_map(params![name], row_to_db)?.collect()
        })
    }

    /// Looks a database up by UUID, or by name when `by_name` is set.
    pub fn db_get(&self, id: &str, by_name: bool) -> SqlResult<Option<DbRecord>> {
        self.with(|c| {
            c.query_row(
                "SELECT uuid, name, created_ms, version, jurisdiction, read_replication FROM d1_databases
                 WHERE uuid = ?1 OR (?2 AND name = ?1)",
                params![id, by_name],
                row_to_db,
            )
            .optional()
        })
    }

    pub fn db_set_replication(&self, uuid: &str, mode: &str) -> SqlResult<()> {
        self.with(|c| {
            c.execute(
                "UPDATE d1_databases SET read_replication=?2 WHERE uuid=?1",
                params![uuid, mode],
            )
            .map(drop)
        })
    }

    pub fn db_delete(&self, uuid: &str) -> SqlResult<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM d1_databases WHERE uuid=?1", [uuid])?;
            tx.execute("DELETE FROM d1_history WHERE db=?1", [uuid])?;
            tx.commit()
        })
    }

    /// The next write sequence number of a database (part of its bookmarks).
    pub fn db_next_seq(&self, uuid: &str) -> SqlResult<i64> {
        self.with(|c| {
            c.query_row(
                "UPDATE d1_databases SET write_seq = write_seq + 1 WHERE uuid=?1 RETURNING write_seq",
                [uuid],
                |r| r.get(0),
            )
        })
    }

    // --- Time Travel history ------------------------------------------------------------------

    /// Records the database's pages at `bookmark`; pages already stored are shared.
    pub fn history_push(
        &self,
        db: &str,
        bookmark: &str,
        at_ms: i64,
        pages: &[([u8; 32], &[u8])],
    ) -> SqlResult<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut put = tx.prepare_cached("INSERT OR IGNORE INTO d1_pages(hash, data) VALUES (?1, ?2)")?;
                for (hash, data) in pages {
                    put.execute(params![&hash[..], data])?;
                }
            }
            let list: Vec<u8> = pages.iter().flat_map(|(h, _)| h.iter().copied()).collect();
            tx.execute(
                "INSERT OR REPLACE INTO d1_history(db, bookmark, at_ms, pages) VALUES (?1, ?2, ?3, ?4)",
                params![db, bookmark, at_ms, list],
            )?;
            tx.commit()
        })
    }

    /// The newest bookmark at or before `at_ms` (the newest of all without it).
    pub fn history_bookmark(&self, db: &str, at_ms: Option<i64>) -> SqlResult<Option<String>> {
        self.with(|c| {
            c.query_row(
                "SELECT bookmark FROM d1_history WHERE db=?1 AND (?2 IS NULL OR at_ms <= ?2)
                 ORDER BY bookmark DESC LIMIT 1",
                params![db, at_ms],
                |r| r.get(0),
            )
            .optional()
        })
    }

    pub fn history_oldest(&self, db: &str) -> SqlResult<Option<String>> {
        self.with(|c| {
            c.query_row(
                "SELECT bookmark FROM d1_history WHERE db=?1 ORDER BY bookmark LIMIT 1",
                [db],
                |r| r.get(0),
            )
            .optional()
        })
    }

    /// The database image at `bookmark`, reassembled from its pages.
    pub fn history_image(&self, db: &str, bookmark: &str) -> SqlResult<Option<Vec<u8>>> {
        self.with(|c| {
            let list: Option<Vec<u8>> = c
                .query_row(
                    "SELECT pages FROM d1_history WHERE db=?1 AND bookmark=?2",
                    params![db, bookmark],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(list) = list else { return Ok(None) };
            let mut get = c.prepare_cached("SELECT data FROM d1_pages WHERE hash=?1")?;
            let mut image = Vec::new();
            for hash in list.chunks_exact(32) {
                let page: Vec<u8> = get.query_row([hash], |r| r.get(0))?;
                image.extend_from_slice(&page);
            }
            Ok(Some(image))
        })
    }

    /// Forgets history older than `cutoff_ms` (always keeping each database's newest bookmark)
    /// and the pages no bookmark refers to any more.
    pub fn history_prune(&self, cutoff_ms: i64) -> SqlResult<usize> {
        self.with(|c| {
            let tx = c.transaction()?;
            let n = tx.execute(
                "DELETE FROM d1_history WHERE at_ms < ?1 AND bookmark < (SELECT max(bookmark) FROM d1_history h WHERE h.db = d1_history.db)",
                [cutoff_ms],
            )?;
            if n > 0 {
                let mut live = std::collections::HashSet::new();
                {
                    let mut stmt = tx.prepare("SELECT pages FROM d1_history")?;
                    let mut rows = stmt.query([])?;
                    while let Some(row) = rows.next()? {
                        let list: Vec<u8> = row.get(0)?;
                        live.extend(list.chunks_exact(32).map(<[u8]>::to_vec));
                    }
                }
                let all: Vec<Vec<u8>> =
                    tx.prepare("SELECT hash FROM d1_pages")?.query_map([], |r| r.get(0))?.collect::<SqlResult<_>>()?;
                let mut del = tx.prepare("DELETE FROM d1_pages WHERE hash=?1")?;
                for h in all.iter().filter(|h| !live.contains(*h)) {
                    del.execute([h])?;
                }
            }
            tx.commit()?;
            Ok(n)
        })
    }

    // --- KV -------------------------------------------------------------------------------------

    pub fn ns_list(
        &self,
        by_title: bool,
        desc: bool,
        page: u64,
        per_page: u64,
    ) -> SqlResult<(Vec<Namespace>, u64)> {
        let order = match (by_title, desc) {
            (true, false) => "title ASC",
            (true, true) => "title DESC",
            (false, false) => "id ASC",
            (false, true) => "id DESC",
        };
        self.with(|c| {
            let total: i64 = c.query_row("SELECT count(*) FROM kv_namespaces", [], |r| r.get(0))?;
            let total = total as u64;
            let mut stmt = c.prepare(&format!(
                "SELECT id, title FROM kv_namespaces ORDER BY {order} LIMIT ?1 OFFSET ?2"
            ))?;
            let offset = page.saturating_sub(1).saturating_mul(per_page);
            let rows = stmt
                .query_map(params![per_page as i64, offset as i64], |r| {
                    Ok(Namespace {
                        id: r.get(0)?,
                        title: r.get(1)?,
                    })
                })?
                .collect::<SqlResult<_>>()?;
            Ok((rows, total))
        })
    }

    /// Creates a namespace; `None` when the title is taken.
    pub fn ns_create(&self, id: &str, title: &str, now_ms: i64) -> SqlResult<Option<Namespace>> {
        self.with(|c| {
            let n = c.execute(
                "INSERT OR IGNORE INTO kv_namespaces(id, title, created_ms) VALUES (?1, ?2, ?3)",
                params![id, title, now_ms],
            )?;
            Ok((n == 1).then(|| Namespace {
                id: id.into(),
                title: title.into(),
            }))
        })
    }

    pub fn ns_get(&self, id: &str) -> SqlResult<Option<Namespace>> {
        self.with(|c| {
            c.query_row(
                "SELECT id, title FROM kv_namespaces WHERE id=?1",
                [id],
                |r| {
                    Ok(Namespace {
                        id: r.get(0)?,
                        title: r.get(1)?,
                    })
                },
            )
            .optional()
        })
    }

    pub fn ns_title_taken(&self, title: &str, except: &str) -> SqlResult<bool> {
        self.with(|c| {
            c.query_row(
                "SELECT EXISTS(SELECT 1 FROM kv_namespaces WHERE title=?1 AND id<>?2)",
                params![title, except],
                |r| r.get(0),
            )
        })
    }

    pub fn ns_rename(&self, id: &str, title: &str) -> SqlResult<bool> {
        self.with(|c| {
            Ok(c.execute(
                "UPDATE kv_namespaces SET title=?2 WHERE id=?1",
                params![id, title],
            )? == 1)
        })
    }

    pub fn ns_delete(&self, id: &str) -> SqlResult<bool> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM kv_entries WHERE ns=?1", [id])?;
            let n = tx.execute("DELETE FROM kv_namespaces WHERE id=?1", [id])?;
            tx.commit()?;
            Ok(n == 1)
        })
    }

    /// Live keys after `after` (exclusive) with `prefix`, in byte order, at most `limit` + 1
    /// (the extra one tells the caller whether a cursor is needed). Values are not read.
    pub fn kv_list(
        &self,
        ns: &str,
        prefix: &str,
        after: Option<&str>,
        limit: u64,
        now_secs: i64,
    ) -> SqlResult<Vec<KvEntry>> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                // `key > ?3` alone, never `(?3 IS NULL OR …)`: a range the primary key can seek
                // to, so each page reads its own rows instead of every key before it (a million
                // keys were a thousand pages of half a million rows each).
                "SELECT key, expiration, metadata FROM kv_entries
                 WHERE ns=?1 AND key > ?3 AND substr(key, 1, length(?2)) = ?2
                   AND (expiration IS NULL OR expiration > ?4)
                 ORDER BY key LIMIT ?5",
            )?;
            // No key is empty, so "" stands for the first page.
            stmt.query_map(
                params![
                    ns,
                    prefix,
                    after.unwrap_or(""),
                    now_secs,
                    (limit + 1) as i64
                ],
                |r| {
                    Ok(KvEntry {
                        key: r.get(0)?,
                        value: Vec::new(),
                        expiration: r.get(1)?,
                        metadata: r.get(2)?,
                    })
                },
            )?
            .collect()
        })
    }

    pub fn kv_get(&self, ns: &str, key: &str, now_secs: i64) -> SqlResult<Option<KvEntry>> {
        self.with(|c| {
            c.prepare_cached(
                "SELECT key, value, expiration, metadata FROM kv_entries
                 WHERE ns=?1 AND key=?2 AND (expiration IS NULL OR expiration > ?3)",
            )?
            .query_row(params![ns, key, now_secs], |r| {
                Ok(KvEntry {
                    key: r.get(0)?,
                    value: r.get(1)?,
                    expiration: r.get(2)?,
                    metadata: r.get(3)?,
                })
            })
            .optional()
        })
    }

    /// Writes entries in one transaction: all are stored or none.
    pub fn kv_put_many(&self, ns: &str, entries: &[KvEntry]) -> SqlResult<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut put = tx.prepare_cached(
                    "INSERT OR REPLACE INTO kv_entries(ns, key, value, expiration, metadata) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for e in entries {
                    put.execute(params![ns, e.key, e.value, e.expiration, e.metadata])?;
                }
            }
            tx.commit()
        })
    }

    pub fn kv_delete_many(&self, ns: &str, keys: &[String]) -> SqlResult<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut del = tx.prepare_cached("DELETE FROM kv_entries WHERE ns=?1 AND key=?2")?;
                for k in keys {
                    del.execute(params![ns, k])?;
                }
            }
            tx.commit()
        })
    }

    /// Expired keys disappear: drop them for good.
    pub fn kv_purge_expired(&self, now_secs: i64) -> SqlResult<usize> {
        self.with(|c| {
            c.execute(
                "DELETE FROM kv_entries WHERE expiration IS NOT NULL AND expiration <= ?1",
                [now_secs],
            )
        })
    }
}

fn row_to_db(r: &rusqlite::Row<'_>) -> SqlResult<DbRecord> {
    Ok(DbRecord {
        uuid: r.get(0)?,
        name: r.get(1)?,
        created_ms: r.get(2)?,
        version: r.get(3)?,
        jurisdiction: r.get(4)?,
        read_replication: r.get(5)?,
    })
}
