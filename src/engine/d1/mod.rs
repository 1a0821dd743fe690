//! D1 backup. `export`: D1's own export (polled, consistent at its `at_bookmark`), then checked:
//! the dump is replayed into a scratch SQLite and each table's row count and content hash are
//! compared with the live database read through the query API (values as `quote()` writes them,
//! REALs as JSON numbers written as literals D1 reads back bit for bit, `query::RowText`); D1's
//! REALs in the export are first rewritten as such literals (`crate::sqlnum`). Where D1's
//! export lost data (integers past 2^53 are rounded), the backup is not called good: the paged
//! dump read for the comparison is kept instead, and the manifest says so. `paged`: the online
//! paged dump alone. The default is `export`, or `paged` when the database has virtual tables
//! (D1 cannot export those).

pub mod batch;
pub mod export;
pub mod local;
pub mod paged;
pub mod query;
pub mod restore;

use std::io::Write;

use serde::Serialize;

use crate::cloudflare::{CfError, Client};
use crate::progress::{Cancelled, Progress};

#[derive(Debug, thiserror::Error)]
pub enum D1Error {
    #[error(transparent)]
    Cloudflare(#[from] CfError),
    #[error("writing the dump: {0}")]
    Io(#[from] std::io::Error),
    #[error("D1's export failed: {0}")]
    Export(String),
    #[error("D1 answered what cfdr cannot read: {0}")]
    Unexpected(String),
    #[error(transparent)]
    Cancelled(#[from] Cancelled),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TableStats {
    pub name: String,
    pub rows: u64,
    pub sha256: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub virtual_table: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method1 {
    Export,
    Paged,
}

/// What a D1 backup produced.
#[derive(Debug, Clone, Serialize)]
pub struct D1Backup {
    /// The method whose dump was kept.
    pub method: &'static str,
    pub bookmark: Option<String>,
    pub tables: Vec<TableStats>,
    pub warnings: Vec<String>,
}

/// A database by name or UUID: (uuid, name).
pub async fn find_database(
    client: &Client,
    name_or_id: &str,
) -> Result<Option<(String, String)>, CfError> {
    Ok(client
        .d1_database(name_or_id)
        .await?
        .map(|d| (d.uuid, d.name)))
}

pub async fn has_virtual_tables(client: &Client, db: &str) -> Result<bool, CfError> {
    let r = query::rows(
        client,
        db,
        "SELECT count(*) FROM sqlite_schema WHERE sql LIKE 'CREATE VIRTUAL TABLE%'",
        &[],
    )
    .await?;
    Ok(r.first()
        .and_then(|x| x.first())
        .and_then(|v| v.as_u64())
        .unwrap_or(0)
        > 0)
}

/// Backs up database `db` into `out` by `method` (None: the default for this database).
pub async fn backup(
    client: &Client,
    db: &str,
    method: Option<Method1>,
    progress: &Progress,
    out: &mut (impl Write + Send),
) -> Result<D1Backup, D1Error> {
    let virtuals = has_virtual_tables(client, db).await?;
    let mut warnings = Vec::new();
    let method = match method {
        Some(m) => m,
        None if virtuals => Method1::Paged,
        None => Method1::Export,
    };
    if method == Method1::Export && virtuals {
        warnings.push(
            "the database has virtual tables, which D1 cannot export; taken by the paged method"
                .to_string(),
        );
    }
    if method == Method1::Paged || virtuals {
        let tables = paged::dump(client, db, "dump", progress, out).await?;
        progress.finish();
        return Ok(D1Backup {
            method: "paged",
            bookmark: None,
            tables,
            warnings,
        });
    }
    export::checked(client, db, progress, out, warnings).await
}
