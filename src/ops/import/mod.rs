//! `cfdr import`: the backups a team already has, in its own formats, brought into the
//! repository as sealed backups — so switching to cfdr leaves no gap in the recovery points.
//! Each backup found becomes a backup of its kind (trigger `imported`), dated at its original
//! time, with the original's location and SHA-256 as its consistency point, in time order;
//! what was imported before (same location, same bytes) is not imported again; a file that
//! cannot be trusted (truncated, a key count that disagrees, a corrupt database) is refused with
//! the reason and nothing of it stored.

pub mod formats;
pub mod source;

use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::backup::{Env, Sealed, store};
use super::{Error, Result};
use crate::progress::Progress;
use crate::repo::manifest::{parse_time, rfc3339};
use crate::repo::{Kind, Target};
use formats::Converted;
use source::{Found, Source};

/// The formats `cfdr import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A KV backup file: `{version, timestamp, accountId, namespaces: [...]}`.
    KvJson,
    /// Plain SQL dumps of D1 databases.
    D1Sql,
    /// SQLite files, with a `metadata.json` beside each.
    SqliteSnapshot,
}

impl Format {
    pub const NAMES: [&str; 3] = ["kv-json", "d1-sql", "sqlite-snapshot"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "kv-json" => Some(Self::KvJson),
            "d1-sql" => Some(Self::D1Sql),
            "sqlite-snapshot" => Some(Self::SqliteSnapshot),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::KvJson => "kv-json",
            Self::D1Sql => "d1-sql",
            Self::SqliteSnapshot => "sqlite-snapshot",
        }
    }

    fn kind(self) -> Kind {
        match self {
            Self::KvJson => Kind::Kv,
            Self::D1Sql => Kind::D1,
            Self::SqliteSnapshot => Kind::Sqlite,
        }
    }

    /// Whether a file of this name is one this format reads.
    fn takes(self, f: &Found) -> bool {
        let name = f.file_name().to_ascii_lowercase();
        match self {
            Self::KvJson => name.ends_with(".json") && name != "metadata.json",
            Self::D1Sql => name.ends_with(".sql"),
            Self::SqliteSnapshot => [".db", ".sqlite", ".sqlite3"]
                .iter()
                .any(|x| name.ends_with(x)),
        }
    }

    /// The artifact's name, its format and the manifest's method, as cfdr's own backups of
    /// this kind have them (so verify, restore and drills read an import like their own).
    fn artifact(self) -> (&'static str, &'static str) {
        match self {
            Self::KvJson => ("keys.ndjson", "kv-ndjson"),
            Self::D1Sql => ("dump.sql", "d1-sql-dump"),
            Self::SqliteSnapshot => ("database.sqlite", "sqlite"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Request {
    pub format: Format,
    /// A file, a folder, or `r2://bucket/prefix`.
    pub source: String,
    /// The target's name, instead of the one the files give.
    pub target: Option<String>,
    /// List what would be imported and what is refused; store nothing.
    pub dry_run: bool,
}

/// What happened to one backup found.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    Imported {
        backup: String,
    },
    /// Imported before (the same location and bytes), as this backup.
    Already {
        backup: String,
    },
    /// A dry run: it would be imported.
    WouldImport,
    Refused {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    /// The file (and namespace, for a KV file holding several): `path` or `r2://bucket/key`.
    pub location: String,
    pub kind: &'static str,
    pub target: Option<String>,
    /// The original's time (RFC 3339).
    pub at: Option<String>,
    pub sha256: Option<String>,
    #[serde(flatten)]
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub items: Vec<Item>,
}

impl Report {
    pub fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.items.iter().filter(|i| f(&i.outcome)).count()
    }

    /// Whether anything was refused.
    pub fn refused(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Refused { .. }))
    }
}

/// One backup ready to be sealed, or refused.
struct Candidate {
    location: String,
    sha256: String,
    at: OffsetDateTime,
    converted: Converted,
}

/// Imports what `req` names into the repository.
pub async fn run(env: &Env<'_>, req: &Request, progress: &Progress) -> Result<Report> {
    let src = Source::open(&req.source, env.config)?;
    if let Source::R2 { s3, .. } = &src {
        s3.retries.watch(progress);
    }
    progress.phase("list the source", "files", None);
    // Every file, once: a SQLite snapshot's metadata.json is looked up among them.
    let all = src.list().await?;
    let found: Vec<Found> = all
        .iter()
        .filter(|f| req.format.takes(f))
        .cloned()
        .collect();
    progress.finish();
    if found.is_empty() {
        return Err(Error::usage(format!(
            "no {} file at `{}` (looked for {})",
            req.format.as_str(),
            req.source,
            match req.format {
                Format::KvJson => "*.json",
                Format::D1Sql => "*.sql",
                Format::SqliteSnapshot =>
                    "*.db, *.sqlite, *.sqlite3 with a metadata.json beside each",
            }
        )));
    }
    let kind = req.format.kind();
    let mut report = Report::default();
    let mut candidates = Vec::new();
    progress.phase("read and check", "files", Some(found.len() as u64));
    for mut f in found {
        progress.check()?;
        let fetched = src.fetch(&mut f).await?;
        let sha256 = crate::engine::sqlite::sha256_file(&fetched.path)?;
        let converted = convert(req, &src, &f, &fetched.path, &all).await;
        match converted {
            Ok(list) => {
                for c in list {
                    let location = match &c.part {
                        Some(p) => format!("{}#{p}", f.location),
                        None => f.location.clone(),
                    };
                    match c.at.or(f.modified) {
                        Some(at) => candidates.push(Candidate {
                            location,
                            sha256: sha256.clone(),
                            at,
                            converted: c,
                        }),
                        None => report.items.push(Item {
                            location,
                            kind: kind.as_str(),
                            target: Some(c.name.clone()),
                            at: None,
                            sha256: Some(sha256.clone()),
                            outcome: Outcome::Refused {
                                reason: "says no time it was taken at".into(),
                            },
                            warnings: Vec::new(),
                        }),
                    }
                }
            }
            Err(reason) => report.items.push(Item {
                location: f.location.clone(),
                kind: kind.as_str(),
                target: req.target.clone(),
                at: None,
                sha256: Some(sha256),
                outcome: Outcome::Refused { reason },
                warnings: Vec::new(),
            }),
        }
        progress.add(1, f.size);
    }
    progress.finish();

    // Oldest first, so each target's history reads in order; what was imported before is
    // found by its location and bytes.
    candidates.sort_by(|a, b| (a.at, &a.location).cmp(&(b.at, &b.location)));
    let before = imported(env).await?;
    for c in candidates {
        let (name, at) = (c.converted.name.clone(), rfc3339(c.at));
        let mut item = Item {
            location: c.location.clone(),
            kind: kind.as_str(),
            target: Some(name.clone()),
            at: Some(at.clone()),
            sha256: Some(c.sha256.clone()),
            outcome: Outcome::WouldImport,
            warnings: c.converted.warnings.clone(),
        };
        if let Some(id) = before
            .iter()
            .find(|(loc, sha, _)| *loc == c.location && *sha == c.sha256)
            .map(|(_, _, id)| id.clone())
        {
            item.outcome = Outcome::Already { backup: id };
        } else if !req.dry_run {
            let id = seal(env, req.format, c, progress).await?;
            item.outcome = Outcome::Imported { backup: id };
        }
        report.items.push(item);
    }
    report
        .items
        .sort_by(|a, b| (&a.at, &a.location).cmp(&(&b.at, &b.location)));
    Ok(report)
}

/// The file `f` (fetched to `path`) as backups of its kind, or why not.
async fn convert(
    req: &Request,
    src: &Source,
    f: &Found,
    path: &std::path::Path,
    all: &[Found],
) -> std::result::Result<Vec<Converted>, String> {
    let named = |from_file: String| req.target.clone().unwrap_or(from_file);
    let path = path.to_path_buf();
    match req.format {
        Format::KvJson => {
            let mut list = tokio::task::spawn_blocking(move || formats::kv_json(&path))
                .await
                .map_err(|e| e.to_string())??;
            if let Some(t) = &req.target {
                if list.len() > 1 {
                    return Err(format!(
                        "holds {} namespaces: --target names one; import without it (each keeps its name)",
                        list.len()
                    ));
                }
                list[0].name = t.clone();
            }
            Ok(list)
        }
        Format::D1Sql => {
            let name = named(formats::name_in_file(f.file_name()));
            let mut c = tokio::task::spawn_blocking(move || formats::d1_sql(&path, name))
                .await
                .map_err(|e| e.to_string())??;
            // R2 custom metadata (`backup-timestamp`), then the name's own time.
            c.at = f
                .metadata
                .get("backup-timestamp")
                .and_then(|t| parse_time(t))
                .or_else(|| formats::time_in_name(&f.name));
            Ok(vec![c])
        }
        Format::SqliteSnapshot => {
            let meta = sibling_metadata(src, f, all).await?;
            let stem = f
                .file_name()
                .rsplit_once('.')
                .map_or(f.file_name(), |(s, _)| s);
            let name = named(stem.to_string());
            let mut c = tokio::task::spawn_blocking(move || formats::sqlite_snapshot(&path, name))
                .await
                .map_err(|e| e.to_string())??;
            c.at = meta["timestamp"]
                .as_str()
                .and_then(parse_time)
                .or_else(|| formats::time_in_name(&f.name));
            // Where the file lived, when its metadata says; a restore is told otherwise.
            c.id = meta["path"]
                .as_str()
                .or(meta["dbPath"].as_str())
                .unwrap_or_default()
                .to_string();
            if let Some(v) = meta["version"].as_str() {
                c.stats["app_version"] = json!(v);
            }
            Ok(vec![c])
        }
    }
}

/// The `metadata.json` beside a SQLite file, read: what its backup says about itself.
async fn sibling_metadata(
    src: &Source,
    f: &Found,
    all: &[Found],
) -> std::result::Result<Value, String> {
    let want = if f.folder().is_empty() {
        "metadata.json".to_string()
    } else {
        format!("{}/metadata.json", f.folder())
    };
    let Some(meta) = all.iter().find(|m| m.name == want) else {
        return Err(format!(
            "has no metadata.json beside it ({want}): nothing says when it was taken"
        ));
    };
    let mut meta = meta.clone();
    let fetched = src.fetch(&mut meta).await.map_err(|e| e.to_string())?;
    let bytes = std::fs::read(&fetched.path).map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| format!("its {want} is not JSON: {e}"))
}

/// Every imported backup's (location, sha256, id), from its manifest.
async fn imported(env: &Env<'_>) -> Result<Vec<(String, String, String)>> {
    let catalog = env.repo.catalog().await?;
    let mut out = Vec::new();
    for e in catalog.entries.iter().filter(|e| e.trigger == "imported") {
        let m = env.repo.manifest(&e.id).await?;
        let cp = m.consistency_point.unwrap_or_default();
        if let (Some(loc), Some(sha)) = (cp["imported_from"].as_str(), cp["sha256"].as_str()) {
            out.push((loc.to_string(), sha.to_string(), m.id));
        }
    }
    Ok(out)
}

/// Seals one candidate as a backup dated at its original time.
async fn seal(env: &Env<'_>, format: Format, c: Candidate, progress: &Progress) -> Result<String> {
    let (artifact, artifact_format) = format.artifact();
    let conv = c.converted;
    let sealed = Sealed {
        kind: format.kind(),
        target: Target {
            account: conv.account.clone(),
            id: conv.id.clone(),
            name: conv.name.clone(),
        },
        trigger: "imported",
        method: match format {
            Format::KvJson => "import:kv-json",
            Format::D1Sql => "import:d1-sql",
            Format::SqliteSnapshot => "import:sqlite-snapshot",
        },
        artifact,
        format: artifact_format,
        stats: conv.stats.clone(),
        backdate: Some(c.at),
    };
    let file = std::fs::File::open(conv.artifact.path())?;
    let (location, sha, at) = (c.location.clone(), c.sha256.clone(), rfc3339(c.at));
    let warnings = conv.warnings.clone();
    let m = store(env.repo, sealed, file, progress, move |m, _| {
        m.consistency_point = Some(json!({
            "imported_from": location,
            "sha256": sha,
            "at": at,
            "format": format.as_str(),
        }));
        m.warnings.extend(warnings);
    })
    .await?;
    let record = crate::repo::audit::Record {
        action: "import".into(),
        target: Some(format!("{} `{}`", format.kind().as_str(), conv.name)),
        backup: Some(m.id.clone()),
        result: "success".into(),
        detail: Some(format!("from {}", c.location)),
        ..Default::default()
    };
    super::audit::record(env, record, std::time::Instant::now(), progress).await;
    Ok(m.id)
}
