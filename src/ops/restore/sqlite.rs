//! SQLite file restores: the backup's copy written beside the target, checked (`PRAGMA
//! integrity_check`, the manifest's row counts, its SHA-256), then put in place atomically with
//! the old file kept beside it (`<file>.before-<run-id>`, its `-wal`/`-shm` too); verified by
//! reading the restored file back. A pre-recovery backup of the old file is the undo point.

use std::path::{Path, PathBuf};

use super::{
    Counts, Outcome, Plan, Report, Request, Requests, RunState, Snapshot, Status, TargetRef, Unit,
    Verification, save,
};
use crate::engine::changes::Difference;
use crate::engine::sqlite as engine;
use crate::ops::backup::{self, Env, What};
use crate::ops::{Error, Result};
use crate::progress::Progress;
use crate::repo::{Manifest, manifest};

pub struct Data {
    manifest: Box<Manifest>,
}

pub fn data(m: &Manifest) -> Data {
    Data {
        manifest: Box::new(m.clone()),
    }
}

/// The file restored into: `to`, or the path the backup was taken from. An imported backup
/// whose original path is unknown names none, and must be given one.
pub fn target(m: &Manifest, to: Option<&str>) -> Result<TargetRef> {
    let path = to.unwrap_or(&m.target.id).to_string();
    if path.is_empty() {
        return Err(Error::usage(format!(
            "backup `{}` does not say which file it was taken of (it was imported): give --to PATH",
            m.id
        )));
    }
    Ok(TargetRef {
        kind: "sqlite".into(),
        exists: Path::new(&path).is_file(),
        id: path,
        name: m.target.name.clone(),
    })
}

/// Table name → rows, from a manifest's or a check's `[{name, rows}]`.
fn rows(tables: &serde_json::Value) -> std::collections::BTreeMap<String, i64> {
    tables
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| Some((t["name"].as_str()?.to_string(), t["rows"].as_i64()?)))
        .collect()
}

fn differences(
    want: &std::collections::BTreeMap<String, i64>,
    have: &std::collections::BTreeMap<String, i64>,
) -> Vec<Difference> {
    let d = |key: &str, what: String| Difference {
        key: key.to_string(),
        what,
    };
    let mut out = Vec::new();
    for (t, n) in want {
        match have.get(t) {
            None => out.push(d(t, "missing".into())),
            Some(h) if h != n => out.push(d(t, format!("rows {h}, backup {n}"))),
            Some(_) => {}
        }
    }
    out.extend(
        have.keys()
            .filter(|t| !want.contains_key(*t))
            .map(|t| d(t, "extra".into())),
    );
    out
}

pub fn plan(m: &Manifest, target: TargetRef, run: String, req: &Request) -> Result<(Plan, Data)> {
    if req.prefix.is_some() || req.mode == super::Mode::Skip {
        return Err(Error::usage(
            "a SQLite file is restored whole, replacing the file: leave out --prefix and --mode skip",
        ));
    }
    let want = rows(&m.stats["tables"]);
    let live = if target.exists {
        rows(&serde_json::Value::Array(engine::check(Path::new(
            &target.id,
        ))?))
    } else {
        Default::default()
    };
    let count =
        |f: &dyn Fn(&String, &i64) -> bool| want.iter().filter(|(t, n)| f(t, n)).count() as u64;
    // Tables, by row count: the file is replaced whole.
    let counts = Counts {
        added: count(&|t, _| !live.contains_key(t)),
        changed: count(&|t, n| live.get(t).is_some_and(|h| h != n)),
        kept: 0,
        removed: live.keys().filter(|t| !want.contains_key(*t)).count() as u64,
        unchanged: count(&|t, n| live.get(t) == Some(n)),
        expired: 0,
        write_bytes: m.artifacts.first().map(|a| a.plaintext_size).unwrap_or(0),
    };
    let snapshot = if !target.exists {
        Snapshot::NotNeeded
    } else if req.snapshot {
        Snapshot::Required
    } else {
        Snapshot::Waived
    };
    let plan = Plan {
        format: super::PLAN_FORMAT.into(),
        run,
        backup: m.id.clone(),
        source: m.target.name.clone(),
        units: vec![Unit::Put {
            keys: vec![target.id.clone()],
        }],
        target,
        mode: super::Mode::Clear,
        prefix: None,
        created: manifest::rfc3339(time::OffsetDateTime::now_utc()),
        at: time::OffsetDateTime::now_utc().unix_timestamp(),
        counts,
        snapshot,
        requests: Requests::default(),
        undo_of: req.undo_of.clone(),
        kept_keys: Vec::new(),
        expired_keys: Vec::new(),
        d1: None,
        time_travel: None,
        batch_bytes: None,
        tiers: Vec::new(),
        profile: None,
    };
    Ok((plan, data(m)))
}

fn beside(target: &Path, suffix: &str) -> PathBuf {
    let mut s = target.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

pub async fn run(
    env: &Env<'_>,
    mut state: RunState,
    data: Data,
    resumed: bool,
    progress: &Progress,
) -> Result<Report> {
    let started = std::time::Instant::now();
    let run = state.plan.run.clone();
    let path = PathBuf::from(&state.plan.target.id);
    let m = &data.manifest;
    let artifact = m
        .artifacts
        .first()
        .ok_or_else(|| Error::Verification(format!("backup `{}` has no artifact", m.id)))?;
    let what = What::Sqlite {
        path: path.clone(),
        name: Some(state.plan.target.name.clone()),
    };
    if path.is_file() {
        super::prepare(env, &mut state, || async {
            let job = progress.job("pre-recovery snapshot");
            backup::take(env, &what, &super::snapshot_options(), &job).await
        })
        .await?;
    } else {
        // Gone since the plan: nothing left to snapshot.
        state.status = Status::Applying;
        save(env.repo, &state).await?;
    }
    super::apply_units(env, &state, "files", progress, |_| {
        let (path, run) = (&path, &run);
        async move {
            put_in_place(env.repo, path, m, artifact, run).await?;
            Ok(super::Landed::default())
        }
    })
    .await?;
    state.status = Status::Verifying;
    save(env.repo, &state).await?;
    let verification = verify(&path, m)?;
    let mut report = Report::of(&state, verification, Vec::new(), 0, resumed, started);
    // A file is replaced whole: a verification that fails fails the restore.
    if !report.verification.ok {
        report.outcome = Outcome::Failed;
    }
    super::finish(env.repo, state, report).await
}

/// Writes the backup's copy beside `path`, checks it, and puts it in place.
async fn put_in_place(
    repo: &crate::repo::Repo,
    path: &Path,
    m: &Manifest,
    artifact: &crate::repo::Artifact,
    run: &str,
) -> Result<()> {
    let new = beside(path, &format!(".cfdr-{run}.tmp"));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let file = std::fs::File::create(&new)
        .map_err(|e| Error::Local(format!("cannot write beside `{}`: {e}", path.display())))?;
    repo.open_artifact(m, &artifact.name, file).await?;
    let tables = engine::check(&new)?;
    let diffs = differences(
        &rows(&m.stats["tables"]),
        &rows(&serde_json::Value::Array(tables)),
    );
    if !diffs.is_empty() {
        let _ = std::fs::remove_file(&new);
        return Err(Error::Verification(format!(
            "the copy of backup `{}` does not hold the tables its manifest lists ({} differences); nothing was replaced",
            m.id,
            diffs.len()
        )));
    }
    let kept = beside(path, &format!(".before-{run}"));
    let (p, n, k, sha) = (
        path.to_path_buf(),
        new.clone(),
        kept,
        artifact.plaintext_sha256.clone(),
    );
    tokio::task::spawn_blocking(move || engine::replace(&p, &n, &k, &sha)).await??;
    Ok(())
}

/// The restored file: its bytes are the backup's (SHA-256), it passes `integrity_check`, and
/// its tables hold the manifest's row counts.
fn verify(path: &Path, m: &Manifest) -> Result<Verification> {
    let want = rows(&m.stats["tables"]);
    let mut diffs = match engine::check(path) {
        Ok(t) => differences(&want, &rows(&serde_json::Value::Array(t))),
        Err(e) => vec![Difference {
            key: path.display().to_string(),
            what: e.to_string(),
        }],
    };
    if let Some(a) = m.artifacts.first()
        && engine::sha256_file(path)? != a.plaintext_sha256
    {
        diffs.push(Difference {
            key: path.display().to_string(),
            what: "bytes differ from the backup's copy".into(),
        });
    }
    Ok(Verification::of(want.len() as u64, diffs))
}

/// `cfdr diff` for a SQLite file: integrity and per-table row counts against the backup's.
pub fn diff(m: &Manifest, to: Option<&str>) -> Result<(TargetRef, Verification)> {
    let target = target(m, to)?;
    if !target.exists {
        return Err(Error::usage(format!(
            "no file `{}` to compare with; give --to with its path",
            target.id
        )));
    }
    let want = rows(&m.stats["tables"]);
    let have = rows(&serde_json::Value::Array(engine::check(Path::new(
        &target.id,
    ))?));
    let diffs = differences(&want, &have);
    Ok((target, Verification::of(want.len() as u64, diffs)))
}
