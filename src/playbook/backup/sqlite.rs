//! `cfdr backup sqlite <path>`: SQLite's online backup API into a temporary copy, `PRAGMA
//! integrity_check` on the copy, then the copy sealed with per-table row counts.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use serde_json::json;

use super::{Done, Options, Sealed, store};
use crate::exit::{Exit, Failure};
use crate::progress::Progress;
use crate::repo::{Kind, Repo, Target};
use crate::text::human_size;

pub async fn run(
    repo: &Repo,
    path: &Path,
    name: Option<String>,
    opts: &Options,
    progress: &Progress,
) -> anyhow::Result<Done> {
    if !path.is_file() {
        return Err(Failure::usage(format!(
            "`{}` is not a file; give the path of a SQLite database",
            path.display()
        ))
        .into());
    }
    let name = name.unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "sqlite".into())
    });
    let src = path.to_path_buf();
    progress.phase("online backup", "tables", None);
    let (copy, tables) = tokio::task::spawn_blocking(move || snapshot(&src)).await??;
    progress.finish();
    let canonical = std::fs::canonicalize(path).unwrap_or(path.to_path_buf());
    let target = Target {
        account: None,
        id: canonical.display().to_string(),
        name: name.clone(),
    };
    let sealed = Sealed {
        kind: Kind::Sqlite,
        target,
        trigger: &opts.trigger,
        method: "online-backup",
        artifact: "database.sqlite",
        format: "sqlite",
        stats: json!({ "tables": tables }),
        backdate: opts.backdate,
    };
    let m = store(
        repo,
        sealed,
        std::fs::File::open(copy.path())?,
        progress,
        |_, _| {},
    )
    .await?;
    let a = &m.artifacts[0];
    let line = format!(
        "backup {} of sqlite `{name}`: {} tables, {} → {} stored (sha256 {})",
        m.id,
        m.stats["tables"].as_array().map(Vec::len).unwrap_or(0),
        human_size(a.plaintext_size),
        human_size(a.stored_size),
        &a.plaintext_sha256[..16]
    );
    Ok(Done { manifest: m, line })
}

/// Copies the database with the online backup API and checks the copy.
fn snapshot(
    path: &std::path::Path,
) -> anyhow::Result<(tempfile::NamedTempFile, Vec<serde_json::Value>)> {
    let src = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| Failure::usage(format!("cannot open `{}` as SQLite: {e}", path.display())))?;
    let copy = tempfile::Builder::new()
        .prefix("cfdr-sqlite-")
        .suffix(".sqlite")
        .tempfile()?;
    let mut dst = Connection::open(copy.path())?;
    {
        let backup = rusqlite::backup::Backup::new(&src, &mut dst)?;
        backup
            .run_to_completion(1024, std::time::Duration::ZERO, None)
            .map_err(|e| {
                Failure::usage(format!(
                    "`{}` is not a SQLite database we can read: {e}",
                    path.display()
                ))
            })?;
    }
    let check: String = dst.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if check != "ok" {
        return Err(Failure::new(
            Exit::Verification,
            format!("`{}` fails PRAGMA integrity_check: {check}", path.display()),
        )
        .into());
    }
    let names: Vec<String> = dst
        .prepare("SELECT name FROM sqlite_schema WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut tables = Vec::new();
    for n in names {
        let rows: i64 = dst
            .query_row(
                &format!("SELECT count(*) FROM \"{}\"", n.replace('"', "\"\"")),
                [],
                |r| r.get(0),
            )
            .unwrap_or(-1);
        tables.push(json!({ "name": n, "rows": rows }));
    }
    drop(dst);
    Ok((copy, tables))
}
