//! `cfdr backup sqlite <path>`: SQLite's online backup API into a temporary copy, `PRAGMA
//! integrity_check` on the copy, then the copy sealed into the repository with per-table row
//! counts in the manifest. `cfdr backup kv <namespace>`: the KV engine's NDJSON, sealed.

use std::path::PathBuf;

use rusqlite::{Connection, OpenFlags};
use serde_json::json;

use crate::exit::{Exit, Failure};
use crate::repo::{Kind, Lease, Manifest, Repo, Target, lease};

use super::context::{self, RepoArgs};

#[derive(Debug, clap::Subcommand)]
pub enum BackupCommand {
    /// Back up an R2 bucket through R2's S3 endpoint (R2_ENDPOINT and R2 keys), incrementally.
    R2 {
        bucket: String,
        #[arg(long, default_value = "manual", value_parser = ["manual", "scheduled", "pre-recovery", "drill"])]
        trigger: String,
        #[command(flatten)]
        repo: RepoArgs,
        #[arg(long)]
        json: bool,
    },
    /// Back up a D1 database (by name or id) through the API.
    D1 {
        database: String,
        /// export: D1's export, checked against the live tables (default); paged: the online
        /// paged dump (default when the database has virtual tables).
        #[arg(long, value_parser = ["export", "paged"])]
        method: Option<String>,
        #[arg(long, default_value = "manual", value_parser = ["manual", "scheduled", "pre-recovery", "drill"])]
        trigger: String,
        #[command(flatten)]
        repo: RepoArgs,
        #[arg(long)]
        json: bool,
    },
    /// Back up a Workers KV namespace (by title or id) through the API.
    Kv {
        namespace: String,
        #[arg(long, default_value = "manual", value_parser = ["manual", "scheduled", "pre-recovery", "drill"])]
        trigger: String,
        #[command(flatten)]
        repo: RepoArgs,
        #[arg(long)]
        json: bool,
    },
    /// Back up a SQLite database file (consistent even while it is being written).
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The target's name in the repository (default: the file name without extension).
        #[arg(long)]
        name: Option<String>,
        /// Why this backup was taken: manual, scheduled, pre-recovery or drill.
        #[arg(long, default_value = "manual", value_parser = ["manual", "scheduled", "pre-recovery", "drill"])]
        trigger: String,
        #[command(flatten)]
        repo: RepoArgs,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cmd: BackupCommand) -> anyhow::Result<()> {
    let (path, name, trigger, repo, json) = match cmd {
        BackupCommand::Kv {
            namespace,
            trigger,
            repo,
            json,
        } => return kv(namespace, trigger, repo, json).await,
        BackupCommand::R2 {
            bucket,
            trigger,
            repo,
            json,
        } => return r2(bucket, trigger, repo, json).await,
        BackupCommand::D1 {
            database,
            method,
            trigger,
            repo,
            json,
        } => return d1(database, method, trigger, repo, json).await,
        BackupCommand::Sqlite {
            path,
            name,
            trigger,
            repo,
            json,
        } => (path, name, trigger, repo, json),
    };
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
    let repo = context::open(&repo).await?;
    let src = path.clone();
    let (copy, tables) = tokio::task::spawn_blocking(move || snapshot(&src)).await??;
    let canonical = std::fs::canonicalize(&path).unwrap_or(path.clone());
    let target = Target {
        account: None,
        id: canonical.display().to_string(),
        name: name.clone(),
    };
    let sealed = Sealed {
        kind: Kind::Sqlite,
        target,
        trigger: &trigger,
        method: "online-backup",
        artifact: "database.sqlite",
        format: "sqlite",
        stats: json!({ "tables": tables }),
    };
    let m = store(&repo, sealed, std::fs::File::open(copy.path())?).await?;
    if json {
        context::print_json(&m)?;
    } else {
        let a = &m.artifacts[0];
        println!(
            "backup {} of sqlite `{name}`: {} tables, {} → {} stored (sha256 {})",
            m.id,
            m.stats["tables"].as_array().map(Vec::len).unwrap_or(0),
            context::human_size(a.plaintext_size),
            context::human_size(a.stored_size),
            &a.plaintext_sha256[..16]
        );
    }
    Ok(())
}

async fn kv(
    namespace: String,
    trigger: String,
    repo_args: RepoArgs,
    json: bool,
) -> anyhow::Result<()> {
    let config = crate::config::Config::load().map_err(|e| Failure::usage(e.to_string()))?;
    let repo = context::open(&repo_args).await?;
    let client = context::cloudflare(&config)?;
    let (id, title) = crate::engine::kv::find_namespace(&client, &namespace)
        .await
        .map_err(context::cloudflare_failed)?
        .ok_or_else(|| {
            Failure::usage(format!(
                "no KV namespace `{namespace}` in account `{}`; give its title or id",
                client.account()
            ))
        })?;
    let started = std::time::Instant::now();
    let mut tmp = tempfile::Builder::new()
        .prefix("cfdr-kv-")
        .suffix(".ndjson")
        .tempfile()?;
    let stats = {
        let mut w = std::io::BufWriter::new(tmp.as_file_mut());
        crate::engine::kv::backup(&client, &id, &mut w)
            .await
            .map_err(|e| match e {
                crate::engine::kv::KvError::Cloudflare(c) => context::cloudflare_failed(c),
                other => Failure::new(Exit::Cloudflare, other.to_string()),
            })?
    };
    let target = Target {
        account: Some(client.account().to_string()),
        id: id.clone(),
        name: title.clone(),
    };
    let kv_stats = json!({ "keys": stats.keys, "value_bytes": stats.value_bytes, "binary": stats.binary,
        "refetched": stats.refetched, "with_metadata": stats.with_metadata, "with_expiration": stats.with_expiration,
        "requests": client.budget.state().sent });
    let sealed = Sealed {
        kind: Kind::Kv,
        target,
        trigger: &trigger,
        method: "bulk-get",
        artifact: "keys.ndjson",
        format: "kv-ndjson",
        stats: kv_stats,
    };
    let m = store(&repo, sealed, std::fs::File::open(tmp.path())?).await?;
    if json {
        context::print_json(&m)?;
    } else {
        println!(
            "backup {} of kv `{title}`: {} keys ({} binary, {} refetched), {} requests in {:.1}s",
            m.id,
            stats.keys,
            stats.binary,
            stats.refetched,
            client.budget.state().sent,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

async fn d1(
    database: String,
    method: Option<String>,
    trigger: String,
    repo_args: RepoArgs,
    json: bool,
) -> anyhow::Result<()> {
    use crate::engine::d1::{self as engine, Method1};
    let config = crate::config::Config::load().map_err(|e| Failure::usage(e.to_string()))?;
    let repo = context::open(&repo_args).await?;
    let client = context::cloudflare(&config)?;
    let (id, name) = engine::find_database(&client, &database)
        .await
        .map_err(context::cloudflare_failed)?
        .ok_or_else(|| {
            Failure::usage(format!(
                "no D1 database `{database}` in account `{}`; give its name or id",
                client.account()
            ))
        })?;
    let method = method.map(|m| {
        if m == "paged" {
            Method1::Paged
        } else {
            Method1::Export
        }
    });
    let started = std::time::Instant::now();
    let mut tmp = tempfile::Builder::new()
        .prefix("cfdr-d1-")
        .suffix(".sql")
        .tempfile()?;
    let result = {
        let mut w = std::io::BufWriter::new(tmp.as_file_mut());
        engine::backup(&client, &id, method, &mut w)
            .await
            .map_err(|e| match e {
                engine::D1Error::Cloudflare(c) => context::cloudflare_failed(c),
                other => Failure::new(
                    Exit::Cloudflare,
                    format!("backing up D1 database `{name}`: {other}"),
                ),
            })?
    };
    for w in &result.warnings {
        eprintln!("cfdr: warning: {w}");
    }
    let target = Target {
        account: Some(client.account().to_string()),
        id: id.clone(),
        name: name.clone(),
    };
    let stats = json!({ "tables": result.tables, "requests": client.budget.state().sent });
    let sealed = Sealed {
        kind: Kind::D1,
        target,
        trigger: &trigger,
        method: result.method,
        artifact: "dump.sql",
        format: "d1-sql-dump",
        stats,
    };
    let m = store_with(&repo, sealed, std::fs::File::open(tmp.path())?, |m| {
        m.warnings = result.warnings.clone();
        m.consistency_point = result.bookmark.as_ref().map(|b| json!({ "bookmark": b }));
    })
    .await?;
    if json {
        context::print_json(&m)?;
    } else {
        let rows: u64 = result.tables.iter().map(|t| t.rows).sum();
        println!(
            "backup {} of d1 `{name}` by {}: {} tables, {rows} rows, {} requests in {:.1}s{}",
            m.id,
            result.method,
            result.tables.len(),
            client.budget.state().sent,
            started.elapsed().as_secs_f64(),
            result
                .bookmark
                .as_ref()
                .map(|b| format!(", consistent at bookmark {b}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

async fn r2(
    bucket: String,
    trigger: String,
    repo_args: RepoArgs,
    json: bool,
) -> anyhow::Result<()> {
    use crate::engine::r2 as engine;
    let config = crate::config::Config::load().map_err(|e| Failure::usage(e.to_string()))?;
    let repo = context::open(&repo_args).await?;
    let settings = crate::repo::storage::S3Settings {
        endpoint: config.r2_endpoint.clone(),
        access_key_id: config.r2_access_key_id.clone(),
        secret_access_key: config.r2_secret_access_key.clone(),
    };
    let store = engine::bucket(&settings, &bucket).map_err(|e| Failure::usage(e.to_string()))?;
    let started = std::time::Instant::now();
    // Blobs are written as objects are read: the lease covers the whole backup.
    let lease = Lease::acquire(
        &repo.storage,
        &format!("backup r2 {bucket}"),
        lease::DEFAULT_TTL,
    )
    .await
    .map_err(context::fail)?;
    let result = async {
        let parent = repo
            .latest(&Kind::R2, &bucket)
            .await
            .map_err(context::fail)?;
        let previous: Vec<engine::ObjectEntry> = match &parent {
            Some(m) => {
                let bytes = repo
                    .open_artifact(m, "index.ndjson", Vec::new())
                    .await
                    .map_err(context::fail)?;
                bytes
                    .split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .filter_map(|l| serde_json::from_slice(l).ok())
                    .collect()
            }
            None => Vec::new(),
        };
        let mut tmp = tempfile::Builder::new()
            .prefix("cfdr-r2-")
            .suffix(".ndjson")
            .tempfile()?;
        let (stats, blobs) = {
            let mut w = std::io::BufWriter::new(tmp.as_file_mut());
            engine::backup(store, &bucket, &repo, &lease, &previous, 4, &mut w)
                .await
                .map_err(|e| Failure::new(Exit::Cloudflare, e.to_string()))?
        };
        let target = Target {
            account: config.account_id.clone(),
            id: bucket.clone(),
            name: bucket.clone(),
        };
        let mut writer = repo.begin(&lease, Kind::R2, target, &trigger, "s3");
        writer
            .add_artifact(
                "index.ndjson",
                "r2-index-ndjson",
                std::fs::File::open(tmp.path())?,
            )
            .await
            .map_err(context::fail)?;
        writer.manifest.stats = serde_json::to_value(&stats)?;
        writer.manifest.blobs = blobs;
        writer.manifest.parent = parent.map(|p| p.id);
        let m = writer.commit().await.map_err(context::fail)?;
        anyhow::Ok((m, stats))
    }
    .await;
    lease.release().await.map_err(context::fail)?;
    let (m, stats) = result?;
    if json {
        context::print_json(&m)?;
    } else {
        println!(
            "backup {} of r2 `{bucket}`: {} objects ({}), {} downloaded, {} unchanged, {} new blobs in {:.1}s",
            m.id,
            stats.objects,
            context::human_size(stats.bytes),
            stats.downloaded,
            stats.reused,
            stats.new_blobs,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// A backup of one sealed artifact, as it goes into the repository.
struct Sealed<'a> {
    kind: Kind,
    target: Target,
    trigger: &'a str,
    method: &'a str,
    artifact: &'a str,
    format: &'a str,
    stats: serde_json::Value,
}

/// Takes the writer lease, seals `file` as the backup's artifact, commits the manifest, and
/// releases the lease whatever happened in between.
async fn store(repo: &Repo, s: Sealed<'_>, file: std::fs::File) -> anyhow::Result<Manifest> {
    store_with(repo, s, file, |_| {}).await
}

/// `store`, letting the caller fill in more of the manifest before it is committed.
async fn store_with(
    repo: &Repo,
    s: Sealed<'_>,
    file: std::fs::File,
    more: impl FnOnce(&mut Manifest),
) -> anyhow::Result<Manifest> {
    let purpose = format!("backup {} {}", s.kind.as_str(), s.target.name);
    let lease = Lease::acquire(&repo.storage, &purpose, lease::DEFAULT_TTL)
        .await
        .map_err(context::fail)?;
    if let Some(old) = &lease.took_over {
        eprintln!(
            "cfdr: warning: took over a stale writer lease of {} on {} (since {})",
            old.owner, old.host, old.started
        );
    }
    let mut writer = repo.begin(&lease, s.kind, s.target, s.trigger, s.method);
    let result = async {
        writer
            .add_artifact(s.artifact, s.format, file)
            .await
            .map_err(context::fail)?;
        writer.manifest.stats = s.stats;
        more(&mut writer.manifest);
        writer.commit().await.map_err(context::fail)
    }
    .await;
    lease.release().await.map_err(context::fail)?;
    Ok(result?)
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
