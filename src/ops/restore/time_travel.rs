//! D1 Time Travel as a restore: the database put back in place to a bookmark (found for a
//! time, given, or a backup's consistency point) through the same plan, lock, pre-recovery
//! snapshot, confirmation, journal and undo as any restore. When a backup of the database was
//! taken at that very bookmark the result is compared with it table by table; otherwise D1's
//! own bookmark is all there is to check, and the verification says so.

use serde::Serialize;

use super::{
    Counts, Plan, Report, Request, Requests, RunState, Snapshot, Status, TargetRef, TimeTravel,
    Unit, Verification, d1, save,
};
use crate::cloudflare::Client;
use crate::engine::changes::Mode;
use crate::engine::d1::restore as engine;
use crate::engine::d1::{TableStats, query};
use crate::ops::backup::Env;
use crate::ops::{Error, Result};
use crate::progress::Progress;
use crate::repo::{Kind, Manifest, manifest};

/// How far back Time Travel reaches (Workers Paid; Free keeps 7 days).
pub const WINDOW: time::Duration = time::Duration::days(30);

/// Refuses a time Time Travel cannot reach, before any request: in the future, or past the
/// window.
pub fn check_time(at: time::OffsetDateTime, now: time::OffsetDateTime) -> Result<()> {
    let shown = manifest::rfc3339(at);
    if at > now + time::Duration::seconds(1) {
        return Err(Error::usage(format!(
            "--at {shown} is in the future; Time Travel goes back, give a time before now"
        )));
    }
    if at < now - WINDOW {
        return Err(Error::usage(format!(
            "--at {shown} is more than 30 days ago, past D1's Time Travel window; restore a backup from then instead (`cfdr backups list --kind d1`)"
        )));
    }
    Ok(())
}

/// A backup of the database, as a point beside a bookmark.
#[derive(Debug, Clone, Serialize)]
pub struct Nearby {
    pub id: String,
    pub started: String,
    pub bookmark: Option<String>,
}

/// Where a time (or a bookmark) falls: the bookmark, and the backups around it.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub database: TargetRef,
    /// The time asked for (RFC 3339); none for the current bookmark or one given.
    pub at: Option<String>,
    pub bookmark: String,
    /// The newest backup of the database at or before the point, and the oldest after it.
    pub before: Option<Nearby>,
    pub after: Option<Nearby>,
    /// A backup taken at exactly this bookmark: what a restore to it must give back.
    pub exact: Option<String>,
}

/// The database named `database` (name or id), or a usage error saying how to find one.
async fn database(client: &Client, database: &str) -> Result<TargetRef> {
    match client.d1_database(database).await? {
        Some(d) => Ok(TargetRef {
            kind: "d1".into(),
            id: d.uuid,
            name: d.name,
            exists: true,
        }),
        None => Err(Error::usage(format!(
            "no D1 database `{database}` in account `{}`; Time Travel works in place on a database that exists (list them with `cfdr backup d1 --help` targets or the dashboard)",
            client.account()
        ))),
    }
}

/// Finds the bookmark for `at` (or the current one, or `bookmark` as given) and the backups
/// of the database around it. Reads only.
pub async fn locate(
    env: &Env<'_>,
    name: &str,
    at: Option<time::OffsetDateTime>,
    bookmark: Option<&str>,
) -> Result<Point> {
    if let Some(at) = at {
        check_time(at, time::OffsetDateTime::now_utc())?;
    }
    let client = super::cloudflare(env)?;
    let target = database(client, name).await?;
    let at_text = at.map(manifest::rfc3339);
    let bookmark = match bookmark {
        Some(b) => b.to_string(),
        None => client.d1_bookmark(&target.id, at_text.as_deref()).await?,
    };
    let catalog = env.repo.catalog().await?;
    let mut backups = Vec::new();
    for e in catalog.entries.iter().filter(|e| {
        e.kind == Kind::D1.as_str() && (e.target_id == target.id || e.target == target.name)
    }) {
        let m = env.repo.manifest_of(e).await?;
        backups.push(Nearby {
            id: m.id.clone(),
            started: m.started.clone(),
            bookmark: m.bookmark(),
        });
    }
    // Bookmarks sort in time order; a backup without one (paged) is placed by its start time.
    let at_or_before = |n: &Nearby| match (&n.bookmark, &at) {
        (Some(b), _) => Some(*b <= bookmark),
        (None, Some(t)) => manifest::parse_time(&n.started).map(|s| s <= *t),
        (None, None) => None,
    };
    backups.sort_by(|a, b| a.started.cmp(&b.started));
    let exact = backups
        .iter()
        .find(|n| n.bookmark.as_deref() == Some(bookmark.as_str()))
        .map(|n| n.id.clone());
    let before = backups
        .iter()
        .rev()
        .find(|n| at_or_before(n) == Some(true))
        .cloned();
    let after = backups
        .iter()
        .find(|n| at_or_before(n) == Some(false))
        .cloned();
    Ok(Point {
        database: target,
        at: at_text,
        bookmark,
        before,
        after,
        exact,
    })
}

/// The database a Time Travel restore works on: `to`, else the backup's own.
pub async fn target(client: &Client, m: Option<&Manifest>, to: Option<&str>) -> Result<TargetRef> {
    match (to, m) {
        (Some(t), _) => database(client, t).await,
        (None, Some(m)) => {
            let t = d1::target(client, m, None).await?;
            if t.exists {
                Ok(t)
            } else {
                Err(Error::usage(format!(
                    "D1 database `{}` is gone; Time Travel cannot bring back a deleted database: restore backup `{}` without Time Travel to create it again",
                    t.name, m.id
                )))
            }
        }
        (None, None) => Err(Error::usage(
            "a Time Travel restore needs the database: give its name or id",
        )),
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn plan(
    env: &Env<'_>,
    client: &Client,
    m: Option<&Manifest>,
    target: TargetRef,
    run: String,
    tt: &TimeTravel,
    req: &Request,
    progress: &Progress,
) -> Result<(Plan, Option<d1::Data>)> {
    if !req.tables.is_empty() || req.prefix.is_some() {
        return Err(Error::usage(
            "Time Travel puts the whole database back; for some tables only, restore a backup with --tables instead",
        ));
    }
    if let Some(m) = m
        && m.kind != Kind::D1
    {
        return Err(Error::usage(format!(
            "backup `{}` is a {} backup; Time Travel is D1's",
            m.id,
            m.kind.as_str()
        )));
    }
    progress.phase("read the database", "requests", None);
    let live = query::live(client, &target.id).await?;
    progress.finish();
    let data = match m {
        Some(m) => Some(d1::data(env.repo, m).await?),
        None => None,
    };
    // With the backup taken at the bookmark, the plan says table by table what comes back;
    // without one, only that every table is overwritten.
    let (d1_plan, tables) = match &data {
        Some(d) => {
            let tables = d.tables()?;
            let p = engine::plan(
                &tables,
                &engine::survey(d).map_err(Error::Verification)?.objects,
                &live,
                None,
                Mode::Clear,
            )
            .map_err(Error::usage)?;
            (Some(p), tables)
        }
        None => (None, Vec::new()),
    };
    let counts = match &d1_plan {
        Some(p) => {
            let count =
                |a: engine::Action| p.tables.iter().filter(|t| t.action == a).count() as u64;
            Counts {
                added: count(engine::Action::Create),
                changed: count(engine::Action::Replace),
                removed: count(engine::Action::Drop),
                ..Default::default()
            }
        }
        None => Counts {
            changed: live.rows.len() as u64,
            ..Default::default()
        },
    };
    let snapshot = if req.snapshot {
        Snapshot::Required
    } else {
        Snapshot::Waived
    };
    let bpr = m.map_or(100, |m| d1::row_bytes(m, &tables));
    let mut requests = Requests::default();
    if snapshot == Snapshot::Required {
        requests
            .by_step
            .insert("snapshot".into(), d1::snapshot_cost(&live, bpr));
    }
    requests.by_step.insert("time travel".into(), 1);
    let refs: Vec<&TableStats> = tables.iter().collect();
    requests.by_step.insert(
        "verify".into(),
        if d1_plan.is_some() {
            d1::verify_cost(&refs, bpr)
        } else {
            1
        },
    );
    requests.total = requests.by_step.values().sum();
    requests.budget_wait_secs = client.budget.wait_for(requests.total).as_secs_f64();
    requests.eta_secs = client.time_for(requests.total).as_secs_f64();
    let keys: Vec<String> = match &d1_plan {
        Some(p) => p.tables.iter().map(|t| t.name.clone()).collect(),
        None => live.rows.keys().cloned().collect(),
    };
    let now = time::OffsetDateTime::now_utc();
    let plan = Plan {
        format: super::PLAN_FORMAT.into(),
        run,
        backup: m.map(|m| m.id.clone()).unwrap_or_default(),
        source: target.name.clone(),
        target,
        mode: Mode::Clear,
        prefix: None,
        created: manifest::rfc3339(now),
        at: now.unix_timestamp(),
        counts,
        snapshot,
        requests,
        undo_of: req.undo_of.clone(),
        units: vec![Unit::Put { keys }],
        kept_keys: Vec::new(),
        expired_keys: Vec::new(),
        d1: d1_plan,
        time_travel: Some(tt.clone()),
        batch_bytes: None,
        tiers: Vec::new(),
        profile: None,
    };
    Ok((plan, data))
}

/// Runs (or resumes) a Time Travel restore: the bookmark and snapshot, the one restore call
/// (journaled: a resume does not send it again), the verification.
pub async fn run(
    env: &Env<'_>,
    mut state: RunState,
    data: Option<d1::Data>,
    resumed: bool,
    progress: &Progress,
) -> Result<Report> {
    let client = super::cloudflare(env)?;
    let started = std::time::Instant::now();
    let sent_before = client.budget.state().sent;
    let db = state.plan.target.id.clone();
    let tt = state
        .plan
        .time_travel
        .clone()
        .ok_or_else(|| Error::usage("this run is not a Time Travel restore"))?;
    d1::prepare(env, client, &mut state, progress).await?;
    let restored = std::sync::Mutex::new(None);
    let landed = super::apply_units(env, &state, "tables", progress, |_| {
        let (db, bookmark, restored) = (&db, &tt.bookmark, &restored);
        async move {
            let answer = client.d1_time_travel(db, bookmark).await?;
            *restored.lock().unwrap_or_else(|e| e.into_inner()) = Some(answer);
            Ok(super::Landed::default())
        }
    })
    .await?;
    let restored = restored.into_inner().unwrap_or_else(|e| e.into_inner());
    state.status = Status::Verifying;
    save(env.repo, &state).await?;
    let verification = match &data {
        Some(d) => d1::verify(client, &db, &state.plan, d, progress).await?,
        None => {
            let now = client.d1_bookmark(&db, None).await?;
            Verification {
                ok: true,
                note: Some(format!(
                    "content not compared: no backup of `{}` was taken at bookmark {}; D1 reports the database at bookmark {now}{}",
                    state.plan.target.name,
                    tt.bookmark,
                    restored
                        .map(|(new, _)| format!(" (the restore answered {new})"))
                        .unwrap_or_default()
                )),
                ..Default::default()
            }
        }
    };
    let sent = client.budget.state().sent - sent_before;
    let report = Report::of(&state, verification, landed.failed, sent, resumed, started);
    super::finish(env.repo, state, report).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_outside_the_window_are_refused_before_any_request() {
        let now = time::macros::datetime!(2026-12-02 12:00 UTC);
        assert!(check_time(now - time::Duration::hours(3), now).is_ok());
        let future = check_time(now + time::Duration::minutes(5), now).unwrap_err();
        assert!(future.to_string().contains("in the future"), "{future}");
        let old = check_time(now - time::Duration::days(31), now).unwrap_err();
        assert!(old.to_string().contains("30 days"), "{old}");
        assert!(old.to_string().contains("2026-11-01T12:00:00Z"), "{old}");
    }
}
