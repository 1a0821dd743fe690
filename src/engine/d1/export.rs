//! The export method and its check against the live database.

use std::collections::BTreeMap;
use std::io::{Seek, Write};

use super::query::RowText;
use super::{D1Backup, D1Error, local, paged};
use crate::cloudflare::Client;
use crate::cloudflare::d1::Task;
use crate::progress::Progress;

/// The pause before polling an export that is still active: short (D1 cancels an export nobody
/// polls), yet enough that a slow export does not spend the request budget on back-to-back
/// polls (wrangler sends them with no pause at all).
const POLL_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);

/// Runs D1's export polling flow to the end; returns (at_bookmark, signed_url).
pub async fn export(client: &Client, db: &str) -> Result<(String, String), D1Error> {
    let mut bookmark: Option<String> = None;
    loop {
        match client.d1_export(db, bookmark.as_deref()).await? {
            Task::Active { at_bookmark } => {
                if bookmark.is_some() {
                    tokio::time::sleep(POLL_PAUSE).await;
                }
                bookmark = Some(at_bookmark);
            }
            Task::Complete {
                at_bookmark,
                result,
            } => {
                let url = result["signed_url"]
                    .as_str()
                    .ok_or_else(|| D1Error::Export("no signed_url in a complete export".into()))?;
                return Ok((at_bookmark, url.to_string()));
            }
            Task::Error { message, .. } => return Err(D1Error::Export(message)),
        }
    }
}

/// Export, download, replay, compare with the live tables; keeps the paged dump if the export
/// lost data.
pub async fn checked(
    client: &Client,
    db: &str,
    progress: &Progress,
    out: &mut (impl Write + Send),
    mut warnings: Vec<String>,
) -> Result<D1Backup, D1Error> {
    progress.phase("export", "polls", None);
    let (bookmark, url) = export(client, db).await?;
    progress.check()?;
    progress.phase("download", "bytes", None);
    // The signed URL is presigned: no Cloudflare auth goes with it.
    let mut file = tempfile::tempfile()?;
    let size = client
        .download_signed("the export's signed URL", &url, &mut file)
        .await?;
    let mut dump = Vec::with_capacity(size as usize);
    std::io::Read::read_to_end(&mut file, &mut dump)?;

    // A dump that does not even replay (D1 writes text holding NUL raw) lost data too.
    let scratch = tempfile::Builder::new()
        .prefix("cfdr-d1-replay-")
        .suffix(".sqlite")
        .tempfile()?;
    // D1's export writes each REAL as JavaScript prints it, which D1's own SQLite reads back as
    // a neighbouring double for some values: those are written as literals it reads exactly.
    if let Ok(sql) = std::str::from_utf8(&dump)
        && let std::borrow::Cow::Owned(fixed) = crate::sqlnum::exact_dump(sql)
    {
        dump = fixed.into_bytes();
    }
    let replayed: Result<BTreeMap<String, (u64, String)>, String> = (|| {
        let conn = rusqlite::Connection::open(scratch.path()).map_err(|e| e.to_string())?;
        let sql = std::str::from_utf8(&dump).map_err(|e| e.to_string())?;
        // Statement by statement: one execute_batch over the whole dump is quadratic (SQLite
        // copies the rest of the text at every statement it prepares), which took 25 s of the
        // demo's 30 s of backups.
        conn.execute_batch("BEGIN").map_err(|e| e.to_string())?;
        // Its REALs rewritten above, D1's SQLite and this one read every number of it alike.
        for stmt in crate::sqlsplit::statements(sql) {
            conn.execute_batch(stmt).map_err(|e| e.to_string())?;
        }
        conn.execute_batch("COMMIT").map_err(|e| e.to_string())?;
        local::hashes(&conn, RowText::Exact).map_err(|e| e.to_string())
    })();
    let mut paged_copy = tempfile::tempfile()?;
    let live = {
        let mut w = std::io::BufWriter::new(&mut paged_copy);
        let t = paged::dump(client, db, "check against live tables", progress, &mut w).await?;
        w.flush()?;
        t
    };
    let live_map: BTreeMap<&str, (u64, &str)> = live
        .iter()
        .map(|t| (t.name.as_str(), (t.rows, t.sha256.as_str())))
        .collect();
    let lossy: Vec<String> = match &replayed {
        Ok(replayed) => live_map
            .iter()
            .filter(|(name, (rows, sha))| {
                replayed
                    .get(**name)
                    .is_none_or(|(r, s)| r != rows || s != sha)
            })
            .map(|(name, _)| format!("`{name}`"))
            .collect(),
        Err(e) => vec![format!(
            "the whole dump, which does not replay ({})",
            e.lines().next().unwrap_or_default()
        )],
    };
    progress.finish();
    if lossy.is_empty() {
        out.write_all(&dump)?;
        out.flush()?;
        return Ok(D1Backup {
            method: "export",
            bookmark: Some(bookmark),
            tables: live,
            warnings,
        });
    }
    warnings.push(format!(
        "D1's export lost data in {} (its content differs from the live tables read exactly through the query API; integers past 2^53 are rounded by the export): this backup was taken by the paged method instead",
        lossy.join(", ")
    ));
    paged_copy.seek(std::io::SeekFrom::Start(0))?;
    std::io::copy(&mut paged_copy, out)?;
    out.flush()?;
    Ok(D1Backup {
        method: "paged",
        bookmark: None,
        tables: live,
        warnings,
    })
}
