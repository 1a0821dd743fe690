//! Restores, as both faces run them: plan first (what will change, the requests it takes),
//! then — after the face's confirmation — a pre-recovery snapshot of the target, the writes in
//! units journaled to the repository (`runs/<run-id>/`), a verification of the target against
//! the backup, and an honest report (success, partial or failed). A killed run resumes from its
//! journal; a finished one can be undone from its snapshot. One restore per target at a time.
//!
//! Built for D1 (through the import API, or in place by Time Travel), KV, R2 and SQLite files.

pub mod d1;
pub mod describe;
mod journal;
pub mod kv;
pub mod r2;
pub mod scratch;
pub mod sqlite;
pub mod time_travel;

use serde::{Deserialize, Serialize};

pub use crate::engine::d1::restore::{Action as TableAction, D1Plan};
pub use crate::engine::kv::restore::{Difference, Mode, Tier, Unit};

use super::backup::Env;
use super::{Error, Result};
use crate::progress::Progress;
use crate::repo::runs::restore_lock;
use crate::repo::{Kind, Lease, Repo, lease, manifest};
use journal::{Landed, apply_units, finish, prepare, save, snapshot_options};
pub use journal::{load, report_of};

pub const PLAN_FORMAT: &str = "cfdr.restore-plan/1";

/// What the operator asked for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The backup to restore.
    pub backup: String,
    /// The target (name or id) to restore into; the backup's own target when `None`. A
    /// target that does not exist is created.
    pub to: Option<String>,
    /// Only keys (objects) under this prefix; nothing outside it is touched.
    pub prefix: Option<String>,
    /// D1: only these tables; nothing outside them is touched.
    pub tables: Vec<String>,
    pub mode: Mode,
    /// Take a pre-recovery snapshot before the first write (`false` only when the operator
    /// waived it explicitly).
    pub snapshot: bool,
    /// Plan only: nothing is written anywhere, no lock is taken.
    pub dry_run: bool,
    /// Requests in flight at once while reading.
    pub concurrency: usize,
    /// This restore undoes that run.
    pub undo_of: Option<String>,
    /// KV: pairs a bulk write carries (at most 10,000, the contract's limit; wrangler sends
    /// 1,000).
    pub kv_batch: usize,
    /// Retries and timeouts for R2's S3 endpoint.
    pub retry: crate::cloudflare::RetryPolicy,
    /// D1: put the database back in place by Time Travel instead of writing the backup's data
    /// (the backup, when `backup` names one, is what the result is compared with; `to` names
    /// the database when it does not).
    pub time_travel: Option<TimeTravel>,
    /// D1: through the query API in requests of at most this many bytes of SQL (within D1's
    /// limits), instead of the import API.
    pub batch_bytes: Option<usize>,
    /// KV: only keys in these criticality tiers, restored tier by tier.
    pub tiers: Tiers,
    /// A pre-recovery backup of the target already taken (a playbook's `snapshot` step): the
    /// restore's undo point, instead of taking another.
    pub pre_recovery: Option<String>,
}

/// Which criticality tiers a KV restore covers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Tiers {
    /// Every key (under the prefix).
    #[default]
    All,
    /// These tiers of the namespace's configuration (`[tiers."kv/<namespace>"]`), in order.
    Named(Vec<String>),
    /// These tiers exactly (an undo repeats its run's).
    Exact(Vec<Tier>),
}

/// A D1 database put back in place to a bookmark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeTravel {
    pub bookmark: String,
    /// The time asked for (RFC 3339), when the bookmark was looked up for one.
    pub at: Option<String>,
}

/// The target a restore writes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetRef {
    pub kind: String,
    pub id: String,
    pub name: String,
    /// `false`: it will be created (and needs no snapshot).
    pub exists: bool,
}

impl TargetRef {
    pub fn label(&self) -> String {
        format!("{} `{}`", self.kind, self.name)
    }

    /// The target a lookup found (`(id, name)`), or the one to create under `to` or the
    /// backup's name.
    fn found(
        kind: &str,
        found: Option<(String, String)>,
        to: Option<&str>,
        m: &crate::repo::Manifest,
    ) -> Self {
        match found {
            Some((id, name)) => TargetRef {
                kind: kind.into(),
                id,
                name,
                exists: true,
            },
            None => TargetRef {
                kind: kind.into(),
                id: String::new(),
                name: to.unwrap_or(&m.target.name).to_string(),
                exists: false,
            },
        }
    }

    /// Looks the target up: `to` (name or id), else the backup's own by id, then by name (a
    /// target deleted and created again has a new id).
    async fn lookup<F, Fut>(
        kind: &str,
        m: &crate::repo::Manifest,
        to: Option<&str>,
        find: F,
    ) -> Result<TargetRef>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<Option<(String, String)>>>,
    {
        let found = match to {
            Some(t) => find(t.to_string()).await?,
            None => match find(m.target.id.clone()).await? {
                Some(f) => Some(f),
                None => find(m.target.name.clone()).await?,
            },
        };
        Ok(Self::found(kind, found, to, m))
    }

    /// What a restore of this kind writes and a verification counts, in the plural.
    pub fn items(&self) -> &'static str {
        match self.kind.as_str() {
            "kv" => "keys",
            "r2" => "objects",
            _ => "tables",
        }
    }
}

/// How a restore stands with its pre-recovery snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Snapshot {
    /// The target's current state is backed up before the first write.
    Required,
    /// Nothing there to lose: a new target, or a plan that writes nothing.
    NotNeeded,
    /// The operator waived it (`--no-snapshot --yes-i-understand`).
    Waived,
}

/// What the plan counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub added: u64,
    pub changed: u64,
    /// Different in the target but left alone (skip mode).
    pub kept: u64,
    pub removed: u64,
    pub unchanged: u64,
    /// In the backup but expired (or about to): not written.
    pub expired: u64,
    /// Bytes of values to write.
    pub write_bytes: u64,
}

/// The requests a restore will send after its plan, by step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Requests {
    pub by_step: std::collections::BTreeMap<String, u64>,
    pub total: u64,
    /// Seconds spent waiting on the request budget as it stands now (latency not included).
    pub budget_wait_secs: f64,
    /// About how long the requests take in all: the budget's wait plus their round trips as
    /// measured while planning (0 when none was measured). Bodies' transfer time aside.
    #[serde(default)]
    pub eta_secs: f64,
}

/// A restore's plan: what it will do, exactly. Stored sealed in the run, so a resume does
/// what this said and nothing else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format: String,
    pub run: String,
    pub backup: String,
    /// The backed-up target's name.
    pub source: String,
    pub target: TargetRef,
    pub mode: Mode,
    pub prefix: Option<String>,
    pub created: String,
    /// When the plan was made (Unix seconds): expirations are judged against it.
    pub at: i64,
    pub counts: Counts,
    pub snapshot: Snapshot,
    pub requests: Requests,
    pub undo_of: Option<String>,
    pub units: Vec<Unit>,
    /// Keys left alone because they differ in the target (skip) or expired in the backup.
    pub kept_keys: Vec<String>,
    pub expired_keys: Vec<String>,
    /// D1: what happens to each table, and what the import drops first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d1: Option<D1Plan>,
    /// D1: restored in place by Time Travel to this bookmark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_travel: Option<TimeTravel>,
    /// D1: written through the query API (`--method batched`) in requests of at most this many
    /// bytes of SQL, one unit a request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_bytes: Option<usize>,
    /// KV: the criticality tiers restored, in order, with the keys each writes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<Tier>,
    /// The config's profile whose account the target is in (`None`: the main account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

impl Plan {
    /// Whether anything would be written.
    pub fn writes(&self) -> bool {
        !self.units.is_empty()
    }
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Planned,
    Applying,
    Verifying,
    Done,
}

/// `runs/<run-id>/run.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunState {
    pub plan: Plan,
    pub status: Status,
    /// The pre-recovery backup, once taken.
    pub snapshot: Option<String>,
    /// D1: the Time Travel bookmark before the first write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bookmark: Option<String>,
    pub by: String,
    pub started: String,
}

/// A journal entry: one unit that landed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Applied {
    pub unit: usize,
    pub keys: u64,
    /// Keys the API would not take even on a second try.
    pub failed: Vec<String>,
    pub at: String,
    /// R2: the ETag each object put got (the verification accepts it).
    #[serde(default)]
    pub etags: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Partial,
    Failed,
}

/// The verification after a restore (or `cfdr diff`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Verification {
    pub ok: bool,
    /// Entries compared.
    pub checked: u64,
    pub differences: usize,
    /// The first differences (at most 50).
    pub first: Vec<Difference>,
    /// What the comparison could not cover, said plainly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Verification {
    /// `checked` entries compared, with these differences (the first 50 kept).
    pub fn of(checked: u64, differences: Vec<Difference>) -> Self {
        Verification {
            ok: differences.is_empty(),
            checked,
            differences: differences.len(),
            first: differences.into_iter().take(50).collect(),
            note: None,
        }
    }
}

/// `runs/<run-id>/report.json`: what the restore did, item by item, never rounded up.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub run: String,
    pub outcome: Outcome,
    pub backup: String,
    pub target: TargetRef,
    pub mode: Mode,
    pub prefix: Option<String>,
    pub snapshot: Option<String>,
    pub created: u64,
    pub overwritten: u64,
    pub deleted: u64,
    pub unchanged: u64,
    pub kept: u64,
    pub expired: u64,
    pub failed: Vec<String>,
    pub verification: Verification,
    pub requests_planned: u64,
    pub requests_sent: u64,
    pub resumed: bool,
    pub seconds: f64,
    pub undo_of: Option<String>,
}

/// A plan ready to run: the face shows it, asks, then calls [`apply`] — or [`Planned::abandon`].
pub struct Planned {
    pub plan: Plan,
    /// The target's restore lock (none for a dry run).
    lock: Option<Lease>,
    data: Data,
    /// The pre-recovery backup the request brought, checked to be of the target.
    pre_recovery: Option<String>,
}

/// What a plan writes from, by kind.
enum Data {
    D1(d1::Data),
    Kv(kv::Data),
    R2(r2::Data),
    Sqlite(sqlite::Data),
    /// What the database is compared with afterwards: the backup at the bookmark, if any.
    TimeTravel(Option<d1::Data>),
}

impl Planned {
    /// Gives the plan up without writing: the target's lock is released.
    pub async fn abandon(self) -> Result<()> {
        if let Some(l) = self.lock {
            l.release().await?;
        }
        Ok(())
    }
}

/// Takes the target's restore lock: a second operator gets `Locked`, naming who holds it.
async fn lock(repo: &Repo, target: &TargetRef, purpose: &str) -> Result<Lease> {
    // A target still to be created is held by its name.
    let id = if target.id.is_empty() {
        &target.name
    } else {
        &target.id
    };
    Ok(Lease::acquire_at(
        &repo.storage,
        &restore_lock(&target.kind, id),
        &format!("restore target {}", target.label()),
        purpose,
        lease::DEFAULT_TTL,
    )
    .await?)
}

fn refuse_read_only(env: &Env<'_>) -> Result<()> {
    if env.config.read_only {
        return Err(Error::usage(
            "cfdr is read-only here (read_only = true in the config, or CFDR_READ_ONLY): no restore may write; use --dry-run to see the plan, or lift read-only on a machine meant to restore",
        ));
    }
    Ok(())
}

/// Plans a restore. Reads only; with `dry_run` nothing else happens. Otherwise the target's
/// restore lock is held from here until [`apply`] or [`Planned::abandon`].
pub async fn plan(env: &Env<'_>, req: &Request, progress: &Progress) -> Result<Planned> {
    let mut planned = plan_target(env, req, progress).await?;
    if let Some(id) = &req.pre_recovery
        && planned.plan.snapshot == Snapshot::Required
    {
        match pre_recovery_of(env.repo, id, &planned.plan.target).await {
            Ok(()) => planned.pre_recovery = Some(id.clone()),
            Err(e) => {
                planned.abandon().await?;
                return Err(e);
            }
        }
    }
    Ok(planned)
}

/// Backup `id` is a pre-recovery backup of `target`, or an error saying what it is.
async fn pre_recovery_of(repo: &Repo, id: &str, target: &TargetRef) -> Result<()> {
    let m = repo.manifest(id).await?;
    let same = m.kind.as_str() == target.kind
        && (m.target.id == target.id || m.target.name == target.name);
    if !same || m.trigger != "pre-recovery" {
        return Err(Error::usage(format!(
            "backup `{id}` is a {} backup of {} `{}`, not a pre-recovery snapshot of {}: leave it out and the restore takes its own",
            m.trigger,
            m.kind.as_str(),
            m.target.name,
            target.label()
        )));
    }
    Ok(())
}

async fn plan_target(env: &Env<'_>, req: &Request, progress: &Progress) -> Result<Planned> {
    env.watch_retries(progress);
    if !req.dry_run {
        refuse_read_only(env)?;
    }
    if let Some(undone) = &req.undo_of {
        same_account(env, &load(env.repo, undone).await?.plan)?;
    }
    let run = manifest::new_id(time::OffsetDateTime::now_utc());
    if let Some(tt) = &req.time_travel {
        let client = cloudflare(env)?;
        let m = match req.backup.as_str() {
            "" => None,
            id => Some(env.repo.manifest(id).await?),
        };
        let target = time_travel::target(client, m.as_ref(), req.to.as_deref()).await?;
        let lock = lock_unless_dry(env, req, &target, &run).await?;
        let planned = time_travel::plan(env, client, m.as_ref(), target, run, tt, req, progress)
            .await
            .map(|(p, d)| (p, Data::TimeTravel(d)));
        return held(env, lock, planned).await;
    }
    let m = env.repo.manifest(&req.backup).await?;
    if !req.tables.is_empty() && m.kind != Kind::D1 {
        return Err(Error::usage(format!(
            "--tables is for D1 backups; backup `{}` is a {} backup: leave --tables out{}",
            m.id,
            m.kind.as_str(),
            if matches!(m.kind, Kind::Kv | Kind::R2) {
                ", or restore part of it with --prefix"
            } else {
                ""
            }
        )));
    }
    if req.tiers != Tiers::All && m.kind != Kind::Kv {
        return Err(Error::usage(format!(
            "--tier is for KV backups (criticality tiers are key patterns); backup `{}` is a {} backup: leave --tier out",
            m.id,
            m.kind.as_str()
        )));
    }
    if req.batch_bytes.is_some() && m.kind != Kind::D1 {
        return Err(Error::usage(format!(
            "--method batched is for D1 backups; backup `{}` is a {} backup: leave --method out",
            m.id,
            m.kind.as_str()
        )));
    }
    let target = match m.kind {
        Kind::D1 => d1::target(cloudflare(env)?, &m, req.to.as_deref()).await?,
        Kind::Kv => kv::target(cloudflare(env)?, &m, req.to.as_deref()).await?,
        Kind::R2 => {
            r2::target(
                &r2::client(env, req.retry.clone(), progress)?,
                &m,
                req.to.as_deref(),
            )
            .await?
        }
        Kind::Sqlite => sqlite::target(&m, req.to.as_deref())?,
    };
    let lock = lock_unless_dry(env, req, &target, &run).await?;
    let planned = match m.kind {
        Kind::R2 => {
            let s3 = r2::client(env, req.retry.clone(), progress)?;
            r2::plan(env, &s3, &m, target, run, req, progress)
                .await
                .map(|(p, d)| (p, Data::R2(d)))
        }
        Kind::Sqlite => sqlite::plan(&m, target, run, req).map(|(p, d)| (p, Data::Sqlite(d))),
        Kind::D1 => d1::plan(env, cloudflare(env)?, &m, target, run, req, progress)
            .await
            .map(|(p, d)| (p, Data::D1(d))),
        Kind::Kv => kv::plan(env, cloudflare(env)?, &m, target, run, req, progress)
            .await
            .map(|(p, d)| (p, Data::Kv(d))),
    };
    held(env, lock, planned).await
}

/// A run is resumed or undone in the account it wrote to: the same profile, or none.
fn same_account(env: &Env<'_>, plan: &Plan) -> Result<()> {
    if env.config.profile == plan.profile {
        return Ok(());
    }
    let flag = |p: &Option<String>| match p {
        Some(p) => format!("--profile {p}"),
        None => "no --profile".to_string(),
    };
    Err(Error::usage(format!(
        "run `{}` wrote to {} in the account of {}; run it again with {}",
        plan.run,
        plan.target.label(),
        match &plan.profile {
            Some(p) => format!("profile `{p}`"),
            None => "the main configuration".to_string(),
        },
        flag(&plan.profile)
    )))
}

/// The target's restore lock for run `run`, unless the request is a dry run (which takes none).
async fn lock_unless_dry(
    env: &Env<'_>,
    req: &Request,
    target: &TargetRef,
    run: &str,
) -> Result<Option<Lease>> {
    if req.dry_run {
        return Ok(None);
    }
    Ok(Some(
        lock(env.repo, target, &format!("restore run {run}")).await?,
    ))
}

/// A plan made under `lock` in the account `env` points to; when planning failed, the lock
/// is released.
async fn held(
    env: &Env<'_>,
    lock: Option<Lease>,
    planned: Result<(Plan, Data)>,
) -> Result<Planned> {
    match planned {
        Ok((mut plan, data)) => {
            plan.profile = env.config.profile.clone();
            Ok(Planned {
                plan,
                lock,
                data,
                pre_recovery: None,
            })
        }
        Err(e) => {
            if let Some(l) = lock {
                let _ = l.release().await;
            }
            Err(e)
        }
    }
}

fn cloudflare<'a>(env: &Env<'a>) -> Result<&'a crate::cloudflare::Client> {
    env.client.ok_or_else(|| {
        Error::usage(
            "set CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID to restore into Cloudflare",
        )
    })
}

/// Runs a recorded plan (or the rest of it) with what it writes from.
async fn run(
    env: &Env<'_>,
    state: RunState,
    data: Data,
    retry: crate::cloudflare::RetryPolicy,
    resumed: bool,
    progress: &Progress,
) -> Result<Report> {
    env.watch_retries(progress);
    match data {
        Data::D1(d) => d1::run(env, state, d, resumed, progress).await,
        Data::Kv(d) => kv::run(env, state, d, resumed, progress).await,
        Data::R2(d) => {
            let s3 = r2::client(env, retry, progress)?;
            r2::run(env, &s3, state, d, resumed, progress).await
        }
        Data::Sqlite(d) => sqlite::run(env, state, d, resumed, progress).await,
        Data::TimeTravel(d) => time_travel::run(env, state, d, resumed, progress).await,
    }
}

/// Runs a confirmed plan: records it, takes the snapshot, applies the units, verifies.
pub async fn apply(
    env: &Env<'_>,
    planned: Planned,
    retry: crate::cloudflare::RetryPolicy,
    progress: &Progress,
) -> Result<Report> {
    let Planned {
        plan,
        lock,
        data,
        pre_recovery,
    } = planned;
    let Some(lock) = lock else {
        return Err(Error::usage(
            "a dry run's plan cannot be applied; plan again without --dry-run",
        ));
    };
    let (owner, host) = lease::whoami();
    let state = RunState {
        plan,
        status: Status::Planned,
        snapshot: pre_recovery,
        bookmark: None,
        by: format!("{owner}@{host}"),
        started: manifest::rfc3339(time::OffsetDateTime::now_utc()),
    };
    let started = std::time::Instant::now();
    let (run_id, target, backup, undo) = (
        state.plan.run.clone(),
        state.plan.target.label(),
        state.plan.backup.clone(),
        state.plan.undo_of.is_some(),
    );
    let result = async {
        refuse_read_only(env)?;
        save(env.repo, &state).await?;
        run(env, state, data, retry, false, progress).await
    }
    .await;
    let released = lock.release().await;
    audit(
        env,
        &result,
        (run_id, target, backup, undo),
        started,
        progress,
    )
    .await;
    let report = result?;
    released?;
    Ok(report)
}

/// A restore's entry in the audit trail: its run, target, backup and outcome.
async fn audit(
    env: &Env<'_>,
    result: &Result<Report>,
    (run, target, backup, undo): (String, String, String, bool),
    started: std::time::Instant,
    progress: &Progress,
) {
    let record = crate::repo::audit::Record {
        action: if undo { "undo" } else { "restore" }.into(),
        target: Some(target),
        backup: (!backup.is_empty()).then_some(backup),
        run: Some(run),
        result: match result {
            Ok(r) => format!("{:?}", r.outcome).to_lowercase(),
            Err(_) => "failed".into(),
        },
        detail: match result {
            Ok(r) => Some(format!(
                "{} created, {} overwritten, {} deleted, {} failed; {} differences after{}",
                r.created,
                r.overwritten,
                r.deleted,
                r.failed.len(),
                r.verification.differences,
                if r.resumed { "; resumed" } else { "" }
            )),
            Err(e) => Some(e.to_string()),
        },
        ..Default::default()
    };
    super::audit::record(env, record, started, progress).await;
}

/// Finishes a run that stopped (a crash, a kill, a network that went away): what its journal
/// says landed is not sent again.
pub async fn resume(
    env: &Env<'_>,
    id: &str,
    retry: crate::cloudflare::RetryPolicy,
    progress: &Progress,
) -> Result<Report> {
    refuse_read_only(env)?;
    let state = load(env.repo, id).await?;
    same_account(env, &state.plan)?;
    if state.status == Status::Done
        && let Some(r) = report_of(env.repo, id).await?
    {
        return Ok(r);
    }
    let lock = lock(env.repo, &state.plan.target, &format!("resume run {id}")).await?;
    let started = std::time::Instant::now();
    let about = (
        state.plan.run.clone(),
        state.plan.target.label(),
        state.plan.backup.clone(),
        state.plan.undo_of.is_some(),
    );
    let result = async {
        if state.plan.time_travel.is_some() {
            let data = match state.plan.backup.as_str() {
                "" => None,
                b => Some(d1::data(env.repo, &env.repo.manifest(b).await?).await?),
            };
            return run(env, state, Data::TimeTravel(data), retry, true, progress).await;
        }
        let m = env.repo.manifest(&state.plan.backup).await?;
        let data = match m.kind {
            Kind::R2 => Data::R2(r2::data(env.repo, &m).await?),
            Kind::Sqlite => Data::Sqlite(sqlite::data(&m)),
            Kind::D1 => Data::D1(d1::data(env.repo, &m).await?),
            Kind::Kv => Data::Kv(kv::data(env.repo, &m).await?),
        };
        run(env, state, data, retry, true, progress).await
    }
    .await;
    let released = lock.release().await;
    audit(env, &result, about, started, progress).await;
    let report = result?;
    released?;
    Ok(report)
}

/// What a comparison covers.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub to: Option<String>,
    pub prefix: Option<String>,
    /// D1: only these tables.
    pub tables: Vec<String>,
    /// KV and R2: keys the target holds beyond the backup are not differences (what an
    /// overwrite restore leaves in place).
    pub extra_ok: bool,
    /// Keys (objects; D1: tables) a skip-mode restore left as the target had them: not
    /// compared, so what the restore deliberately kept is no difference.
    pub kept: std::collections::BTreeSet<String>,
}

/// `cfdr diff`: how the live target differs from backup `id` (under the scope's prefix; D1:
/// in its tables).
pub async fn diff(
    env: &Env<'_>,
    id: &str,
    scope: &Scope,
    retry: crate::cloudflare::RetryPolicy,
    progress: &Progress,
) -> Result<(TargetRef, Verification)> {
    env.watch_retries(progress);
    let m = env.repo.manifest(id).await?;
    let (to, prefix, exact) = (
        scope.to.as_deref(),
        scope.prefix.as_deref(),
        !scope.extra_ok,
    );
    match m.kind {
        Kind::D1 => d1::diff(env, &m, to, &scope.tables, &scope.kept, progress).await,
        Kind::Kv => kv::diff(env, &m, to, (prefix, &scope.kept), exact, progress).await,
        Kind::R2 => {
            r2::diff(
                env,
                &r2::client(env, retry, progress)?,
                &m,
                to,
                (prefix, &scope.kept),
                exact,
            )
            .await
        }
        Kind::Sqlite => sqlite::diff(&m, to),
    }
}

/// The restore that undoes run `run`: its pre-recovery snapshot put back into the same
/// target, under the same prefix, in clear mode (so keys the run added go again). A D1 run
/// that replaced a whole database is undone by Time Travel to the snapshot's bookmark while
/// that is inside D1's 30-day window (nothing to upload, and the snapshot proves the result);
/// past it, or for some tables only, by importing the snapshot.
pub async fn undo_request(repo: &Repo, run: &str) -> Result<Request> {
    let state = load(repo, run).await?;
    let snapshot = state.snapshot.ok_or_else(|| match state.plan.snapshot {
        Snapshot::Waived => Error::usage(format!(
            "run `{run}` waived its pre-recovery snapshot: there is nothing to undo it with; restore an earlier backup of {} instead",
            state.plan.target.label()
        )),
        _ if !state.plan.target.exists => Error::usage(format!(
            "run `{run}` restored into {}, which it created: there was nothing before it; delete it to undo the run",
            state.plan.target.label()
        )),
        _ => Error::usage(format!(
            "run `{run}` took no pre-recovery snapshot (it wrote nothing, or stopped before its first write); nothing to undo"
        )),
    })?;
    let whole = match (&state.plan.d1, &state.plan.time_travel) {
        (_, Some(_)) => true,
        (Some(d), None) => d.whole,
        (None, None) => false,
    };
    let time_travel = if whole && state.plan.target.kind == "d1" {
        let m = repo.manifest(&snapshot).await?;
        let bookmark = m.bookmark().or(state.bookmark.clone());
        let started = manifest::parse_time(&state.started);
        let in_window = started.is_some_and(|t| {
            time::OffsetDateTime::now_utc() - t < time_travel::WINDOW - time::Duration::hours(1)
        });
        bookmark
            .filter(|_| in_window)
            .map(|bookmark| TimeTravel { bookmark, at: None })
    } else {
        None
    };
    Ok(Request {
        batch_bytes: state.plan.batch_bytes,
        time_travel,
        backup: snapshot,
        to: Some(state.plan.target.id.clone()),
        prefix: state.plan.prefix.clone(),
        // A partial D1 restore is undone table by table: those it replaced, created or dropped.
        tables: match &state.plan.d1 {
            Some(d) if !d.whole => d.compared().map(|t| t.name.clone()).collect(),
            _ => Vec::new(),
        },
        mode: Mode::Clear,
        snapshot: true,
        dry_run: false,
        concurrency: 4,
        undo_of: Some(run.to_string()),
        kv_batch: crate::cloudflare::kv::MAX_BULK_ITEMS,
        retry: crate::cloudflare::RetryPolicy::default(),
        tiers: if state.plan.tiers.is_empty() {
            Tiers::All
        } else {
            Tiers::Exact(state.plan.tiers.clone())
        },
        pre_recovery: None,
    })
}
