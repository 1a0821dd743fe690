//! SQLite database files: a consistent copy through SQLite's online backup API (safe while the
//! file is being written), checked with `PRAGMA integrity_check`, with per-table row counts.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum SqliteError {
    /// The file cannot be opened or read as SQLite.
    #[error("{0}")]
    Open(String),
    #[error("`{path}` fails PRAGMA integrity_check: {answer}")]
    Integrity { path: String, answer: String },
    /// The temporary copy on this machine.
    #[error("copying the database: {0}")]
    Local(String),
}

fn local(e: impl std::fmt::Display) -> SqliteError {
    SqliteError::Local(e.to_string())
}

/// Copies the database at `path` with the online backup API into a temporary file and checks
/// the copy. Returns the copy and `[{name, rows}]` for its tables.
pub fn snapshot(
    path: &Path,
) -> Result<(tempfile::NamedTempFile, Vec<serde_json::Value>), SqliteError> {
    let src = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| SqliteError::Open(format!("cannot open `{}` as SQLite: {e}", path.display())))?;
    let copy = tempfile::Builder::new()
        .prefix("cfdr-sqlite-")
        .suffix(".sqlite")
        .tempfile()
        .map_err(local)?;
    let mut dst = Connection::open(copy.path()).map_err(local)?;
    {
        let backup = rusqlite::backup::Backup::new(&src, &mut dst).map_err(local)?;
        backup
            .run_to_completion(1024, std::time::Duration::ZERO, None)
            .map_err(|e| {
                SqliteError::Open(format!(
                    "`{}` is not a SQLite database we can read: {e}",
                    path.display()
                ))
            })?;
    }
    let answer: String = dst
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(local)?;
    if answer != "ok" {
        return Err(SqliteError::Integrity {
            path: path.display().to_string(),
            answer,
        });
    }
    let tables = tables(&dst).map_err(local)?;
    drop(dst);
    Ok((copy, tables))
}

/// `[{name, rows}]` for every table of `db`, by name.
pub fn tables(db: &Connection) -> rusqlite::Result<Vec<serde_json::Value>> {
    let names: Vec<String> = db
        .prepare("SELECT name FROM sqlite_schema WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut tables = Vec::new();
    for n in names {
        let rows: i64 = db
            .query_row(
                &format!("SELECT count(*) FROM \"{}\"", n.replace('"', "\"\"")),
                [],
                |r| r.get(0),
            )
            .unwrap_or(-1);
        tables.push(json!({ "name": n, "rows": rows }));
    }
    Ok(tables)
}

/// Checks a database file: `PRAGMA integrity_check`, then its tables with row counts.
pub fn check(path: &Path) -> Result<Vec<serde_json::Value>, SqliteError> {
    let db = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| SqliteError::Open(format!("cannot open `{}` as SQLite: {e}", path.display())))?;
    let answer: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| SqliteError::Open(format!("`{}`: {e}", path.display())))?;
    if answer != "ok" {
        return Err(SqliteError::Integrity {
            path: path.display().to_string(),
            answer,
        });
    }
    tables(&db).map_err(local)
}

/// The SHA-256 of a file's bytes.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::Digest as _;
    use std::io::Read as _;
    let mut f = std::fs::File::open(path)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Replaces the database at `target` with the checked copy `new` (a file in the same
/// directory), atomically: the live database is checkpointed (its WAL folded in and truncated),
/// moved to `kept` with its `-wal`/`-shm` files, then `new` is renamed into place and the
/// directory synced. Safe to call again after a crash at any point: a `target` that is already
/// `new`'s bytes (`sha256`) is left alone.
pub fn replace(target: &Path, new: &Path, kept: &Path, sha256: &str) -> Result<(), SqliteError> {
    let side = |p: &Path, suffix: &str| {
        let mut s = p.as_os_str().to_owned();
        s.push(suffix);
        std::path::PathBuf::from(s)
    };
    if target.exists() {
        if !new.exists() && sha256_file(target).map_err(local)? == sha256 {
            return Ok(());
        }
        {
            let db = Connection::open(target).map_err(|e| {
                SqliteError::Open(format!(
                    "cannot open `{}` to checkpoint it: {e}",
                    target.display()
                ))
            })?;
            // Folds the WAL into the main file so the kept copy is whole.
            let _ = db.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
        if !kept.exists() {
            std::fs::rename(target, kept).map_err(local)?;
        }
        for suffix in ["-wal", "-shm"] {
            let live = side(target, suffix);
            if live.exists() {
                std::fs::rename(&live, side(kept, suffix)).map_err(local)?;
            }
        }
    }
    std::fs::rename(new, target).map_err(local)?;
    if let Some(dir) = target.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}
