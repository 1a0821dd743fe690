//! D1 in the emulator: every database is a real SQLite database (a file in the data directory,
//! or in memory), with Time Travel history recorded after every write.

pub mod dump;
pub mod exec;
pub mod flows;
pub mod jsval;
pub mod routes;
pub mod transfer;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use md5::Digest as _;
use rusqlite::Connection;
use sha2::Sha256;

use super::clock::now_ms;
use super::control::lock;
use super::store::{DbRecord, Store};

/// How long Time Travel keeps history (Workers Paid).
pub const HISTORY_DAYS: i64 = 30;
/// Time Travel restores allowed per database within [`RESTORE_WINDOW_MS`].
pub const MAX_RESTORES: usize = 10;
pub const RESTORE_WINDOW_MS: i64 = 10 * 60_000;
const PAGE: usize = 4096;

pub type DbHandle = Arc<Mutex<Connection>>;

pub struct D1 {
    store: Arc<Store>,
    dir: Option<PathBuf>,
    open: Mutex<HashMap<String, DbHandle>>,
    /// When each database's recent Time Travel restores happened (milliseconds), for the limit.
    restores: Mutex<HashMap<String, std::collections::VecDeque<i64>>>,
}

impl D1 {
    pub fn open(store: Arc<Store>, dir: Option<PathBuf>) -> anyhow::Result<Self> {
        let d1 = Self {
            store,
            dir,
            open: Mutex::new(HashMap::new()),
            restores: Mutex::new(HashMap::new()),
        };
        for db in d1.store.db_list(None)? {
            let conn = d1
                .connect(&db.uuid)
                .with_context(|| format!("cannot open D1 database `{}`", db.name))?;
            lock(&d1.open).insert(db.uuid.clone(), Arc::new(Mutex::new(conn)));
        }
        Ok(d1)
    }

    fn connect(&self, uuid: &str) -> rusqlite::Result<Connection> {
        let conn = match &self.dir {
            Some(dir) => Connection::open(dir.join(format!("{uuid}.sqlite")))?,
            None => Connection::open_in_memory()?,
        };
        exec::configure(&conn)?;
        Ok(conn)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Creates an empty database and its first bookmark.
    pub fn create(
        &self,
        name: &str,
        location_hint: Option<&str>,
        jurisdiction: Option<&str>,
    ) -> rusqlite::Result<DbRecord> {
        let record = DbRecord {
            uuid: uuid::Uuid::new_v4().to_string(),
            name: name.to_string(),
            created_ms: now_ms(),
            version: "production".into(),
            jurisdiction: jurisdiction.map(str::to_string),
            read_replication: "disabled".into(),
        };
        self.store.db_insert(&record, location_hint)?;
        let mut conn = self.connect(&record.uuid)?;
        self.snapshot(&record.uuid, &mut conn)?;
        lock(&self.open).insert(record.uuid.clone(), Arc::new(Mutex::new(conn)));
        Ok(record)
    }

    pub fn handle(&self, uuid: &str) -> Option<DbHandle> {
        lock(&self.open).get(uuid).cloned()
    }

    pub fn delete(&self, uuid: &str) -> rusqlite::Result<()> {
        lock(&self.open).remove(uuid);
        self.store.db_delete(uuid)?;
        if let Some(dir) = &self.dir {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let _ = std::fs::remove_file(dir.join(format!("{uuid}.sqlite{suffix}")));
            }
        }
        Ok(())
    }

    /// Records the database as it is now under a new bookmark and returns it.
    pub fn snapshot(&self, uuid: &str, conn: &mut Connection) -> rusqlite::Result<String> {
        let at = now_ms();
        let seq = self.store.db_next_seq(uuid)?;
        let bookmark = bookmark(uuid, at, seq);
        let image = conn.serialize(rusqlite::MAIN_DB)?;
        let pages: Vec<([u8; 32], &[u8])> = image
            .chunks(PAGE)
            .map(|p| (Sha256::digest(p).into(), p))
            .collect();
        self.store.history_push(uuid, &bookmark, at, &pages)?;
        if seq % 64 == 0 {
            self.store.history_prune(at - HISTORY_DAYS * 86_400_000)?;
        }
        Ok(bookmark)
    }

    /// The newest bookmark, or the one in force at `at_ms`.
    pub fn bookmark_at(&self, uuid: &str, at_ms: Option<i64>) -> rusqlite::Result<Option<String>> {
        match self.store.history_bookmark(uuid, at_ms)? {
            Some(b) => Ok(Some(b)),
            None if at_ms.is_some() => self.store.history_oldest(uuid),
            None => Ok(None),
        }
    }

    /// Puts the database back as it was at `target`; returns (new bookmark, previous bookmark),
    /// or `None` when the bookmark is unknown to this database.
    pub fn restore(
        &self,
        uuid: &str,
        conn: &mut Connection,
        target: &str,
    ) -> rusqlite::Result<Option<(String, String)>> {
        let Some(image) = self.store.history_image(uuid, target)? else {
            return Ok(None);
        };
        let previous = self.bookmark_at(uuid, None)?.unwrap_or_default();
        let mut source = Connection::open_in_memory()?;
        source.deserialize_read_exact(rusqlite::MAIN_DB, image.as_slice(), image.len(), false)?;
        {
            let backup = rusqlite::backup::Backup::new(&source, conn)?;
            backup.run_to_completion(256, std::time::Duration::ZERO, None)?;
        }
        let new = self.snapshot(uuid, conn)?;
        Ok(Some((new, previous)))
    }
}

impl D1 {
    /// Counts a Time Travel restore of `uuid` at `now_ms` against D1's limit, or returns how
    /// many seconds remain until the oldest restore in the window leaves it.
    pub fn admit_restore(&self, uuid: &str, now_ms: i64) -> Result<(), i64> {
        let mut restores = lock(&self.restores);
        let recent = restores.entry(uuid.to_string()).or_default();
        while recent
            .front()
            .is_some_and(|t| *t <= now_ms - RESTORE_WINDOW_MS)
        {
            recent.pop_front();
        }
        if recent.len() >= MAX_RESTORES {
            let oldest = recent.front().copied().unwrap_or(now_ms);
            return Err(((oldest + RESTORE_WINDOW_MS - now_ms + 999) / 1000).max(1));
        }
        recent.push_back(now_ms);
        Ok(())
    }

    /// Takes back the newest restore admitted for `uuid` (it did not happen: unknown bookmark).
    pub fn forget_restore(&self, uuid: &str) {
        if let Some(recent) = lock(&self.restores).get_mut(uuid) {
            recent.pop_back();
        }
    }

    /// Refuses a request to a database while an import into it runs (D1 blocks it), naming
    /// the import's bookmark.
    pub fn check_unblocked(
        tasks: &HashMap<(String, String), transfer::Task>,
        uuid: &str,
    ) -> Result<(), String> {
        match tasks.iter().find(|((db, _), t)| {
            db == uuid && t.kind == "import" && matches!(t.state, transfer::TaskState::Active)
        }) {
            Some(((_, at), _)) => Err(format!(
                "the database is blocked while an import runs (started at bookmark {at}); \
                 try again when it completes"
            )),
            None => Ok(()),
        }
    }
}

/// `SSSSSSSS-MMMMMMMM-QQQQQQQQ-<32 hex>`: seconds, milliseconds and write sequence in fixed-width
/// hex, so bookmarks sort lexicographically in time order, as D1's do.
fn bookmark(uuid: &str, at_ms: i64, seq: i64) -> String {
    let digest = md5::Md5::digest(format!("{uuid}:{seq}:{at_ms}").as_bytes());
    format!(
        "{:08x}-{:08x}-{:08x}-{}",
        at_ms / 1000,
        at_ms % 1000,
        seq,
        hex::encode(digest)
    )
}

/// Whether `s` looks like a bookmark (the shape D1 documents).
pub fn is_bookmark(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 4
        && parts[..3].iter().all(|p| p.len() == 8)
        && parts[3].len() == 32
        && s.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bookmarks_sort_in_time_order() {
        let a = bookmark("db", 1_700_000_000_123, 9);
        let b = bookmark("db", 1_700_000_000_124, 10);
        let c = bookmark("db", 1_800_000_000_000, 11);
        assert!(a < b && b < c);
        assert!(is_bookmark(&a), "{a}");
        assert!(!is_bookmark("nope"));
    }

    #[test]
    fn ten_restores_per_ten_minutes_per_database() {
        let d1 = D1::open(Arc::new(Store::open(None).unwrap()), None).unwrap();
        let t0 = 1_800_000_000_000;
        for i in 0..MAX_RESTORES as i64 {
            assert_eq!(d1.admit_restore("a", t0 + i * 1000), Ok(()));
        }
        assert_eq!(d1.admit_restore("a", t0 + 10_000), Err(590));
        assert_eq!(d1.admit_restore("b", t0 + 10_000), Ok(()), "per database");
        assert_eq!(d1.admit_restore("a", t0 + RESTORE_WINDOW_MS), Ok(()));
        assert!(d1.admit_restore("a", t0 + RESTORE_WINDOW_MS + 1).is_err());
    }

    #[test]
    fn restore_brings_back_the_content_and_can_be_undone() {
        let store = Arc::new(Store::open(None).unwrap());
        let d1 = D1::open(store, None).unwrap();
        let db = d1.create("tt", None, None).unwrap();
        let handle = d1.handle(&db.uuid).unwrap();
        let mut conn = lock(&handle);
        conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
            .unwrap();
        let one = d1.snapshot(&db.uuid, &mut conn).unwrap();
        conn.execute_batch("INSERT INTO t VALUES (2);").unwrap();
        let two = d1.snapshot(&db.uuid, &mut conn).unwrap();
        let (new, previous) = d1.restore(&db.uuid, &mut conn, &one).unwrap().unwrap();
        assert_eq!(previous, two);
        assert!(new > two);
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
        d1.restore(&db.uuid, &mut conn, &previous).unwrap().unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
    }
}
