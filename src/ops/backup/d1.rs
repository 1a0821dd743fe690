//! `cfdr backup d1 <database>`: the D1 engine's dump (checked export or paged), sealed, with the
//! consistency point and any warnings in the manifest.

use serde_json::json;

use super::{Done, Options, Sealed, store};
use crate::cloudflare::Client;
use crate::engine::d1::{self as engine, Method1};
use crate::ops::{Error, Result};
use crate::progress::Progress;
use crate::repo::{Kind, Repo, Target};

pub async fn run(
    repo: &Repo,
    client: &Client,
    database: &str,
    method: Option<Method1>,
    opts: &Options,
    progress: &Progress,
) -> Result<Done> {
    let (id, name) = engine::find_database(client, database)
        .await?
        .ok_or_else(|| {
            Error::usage(format!(
                "no D1 database `{database}` in account `{}`; give its name or id",
                client.account()
            ))
        })?;
    let started = std::time::Instant::now();
    let sent_before = client.budget.state().sent;
    let mut tmp = tempfile::Builder::new()
        .prefix("cfdr-d1-")
        .suffix(".sql")
        .tempfile()?;
    let result = {
        let mut w = std::io::BufWriter::new(tmp.as_file_mut());
        engine::backup(client, &id, method, progress, &mut w)
            .await
            .map_err(|e| match Error::from(e) {
                Error::Remote(m) => Error::Remote(format!("backing up D1 database `{name}`: {m}")),
                other => other,
            })?
    };
    for w in &result.warnings {
        progress.warn(w.clone());
    }
    let requests = client.budget.state().sent - sent_before;
    let target = Target {
        account: Some(client.account().to_string()),
        id,
        name: name.clone(),
    };
    let stats = json!({
        "tables": result.tables,
        "requests": requests,
        "row_text": engine::query::RowText::EXACT,
    });
    let sealed = Sealed {
        kind: Kind::D1,
        target,
        trigger: &opts.trigger,
        method: result.method,
        artifact: "dump.sql",
        format: "d1-sql-dump",
        stats,
        backdate: opts.backdate,
    };
    let m = store(
        repo,
        sealed,
        std::fs::File::open(tmp.path())?,
        progress,
        |m, _| {
            m.warnings = result.warnings.clone();
            m.consistency_point = result.bookmark.as_ref().map(|b| json!({ "bookmark": b }));
        },
    )
    .await?;
    let rows: u64 = result.tables.iter().map(|t| t.rows).sum();
    let line = format!(
        "backup {} of d1 `{name}` by {}: {} tables, {rows} rows, {requests} requests in {:.1}s{}",
        m.id,
        result.method,
        result.tables.len(),
        started.elapsed().as_secs_f64(),
        result
            .bookmark
            .as_ref()
            .map(|b| format!(", consistent at bookmark {b}"))
            .unwrap_or_default()
    );
    Ok(Done { manifest: m, line })
}
