//! `cfdr backup sqlite <path>`: the SQLite engine's checked copy, sealed with per-table row
//! counts.

use std::path::Path;

use serde_json::json;

use super::{Done, Options, Sealed, store};
use crate::engine::sqlite::snapshot;
use crate::ops::{Error, Result};
use crate::progress::Progress;
use crate::repo::{Kind, Repo, Target};
use crate::text::human_size;

pub async fn run(
    repo: &Repo,
    path: &Path,
    name: Option<String>,
    opts: &Options,
    progress: &Progress,
) -> Result<Done> {
    if !path.is_file() {
        return Err(Error::usage(format!(
            "`{}` is not a file; give the path of a SQLite database",
            path.display()
        )));
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
