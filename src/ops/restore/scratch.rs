//! Scratch targets: created by a drill's restores (never a production target's name) and
//! removed when the drill ends, whatever happened to it.

use super::{Error, Result};
use crate::ops::backup::Env;
use crate::progress::Progress;

/// The mark every scratch target's name carries.
pub const MARK: &str = "-drill-";

/// A scratch target's name for `source` in run `run`: the source's name, the mark, the run's
/// last eight letters and digits. A SQLite scratch target is a file in the temporary directory.
pub fn name(kind: &str, source: &str, run: &str) -> String {
    let tail: String = run
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_lowercase();
    let tail = &tail[tail.len().saturating_sub(8)..];
    let base = format!("{source}{MARK}{tail}");
    if kind == "sqlite" {
        std::env::temp_dir()
            .join(format!("{base}.db"))
            .display()
            .to_string()
    } else {
        base
    }
}

/// Removes scratch target `name` of `kind`: `false` when it was not there. Refuses a name
/// without the scratch mark, so a production target is never removed by mistake.
pub async fn remove(env: &Env<'_>, kind: &str, name: &str, progress: &Progress) -> Result<bool> {
    if !name.contains(MARK) {
        return Err(Error::usage(format!(
            "{kind} `{name}` is not a scratch target (its name lacks `{MARK}`): cfdr removes only the targets its drills created"
        )));
    }
    let client = || {
        env.client.ok_or_else(|| {
            Error::usage(
                "set CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID to remove a scratch target",
            )
        })
    };
    match kind {
        "d1" => {
            let c = client()?;
            match c.d1_database(name).await? {
                Some(d) => c.d1_delete(&d.uuid).await?,
                None => return Ok(false),
            }
        }
        "kv" => {
            let c = client()?;
            match c.kv_namespace(name).await? {
                Some(ns) => c.kv_delete_namespace(&ns.id).await?,
                None => return Ok(false),
            }
        }
        "r2" => {
            let s3 = super::r2::client(env, crate::cloudflare::RetryPolicy::default(), progress)?;
            let objects = match s3.list(name, "").await {
                Ok(o) => o,
                Err(e) if e.status() == Some(404) => return Ok(false),
                Err(e) => return Err(e.into()),
            };
            for o in &objects {
                s3.delete(name, &o.key).await?;
            }
            client()?.r2_delete_bucket(name).await?;
        }
        _ => match std::fs::remove_file(name) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e.into()),
        },
    }
    Ok(true)
}
