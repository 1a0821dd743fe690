//! KV restores: the backup's entries (an incremental chain folded up) against the live
//! namespace read through the API, bulk writes of up to 10,000 pairs (100 MB) a request, bulk
//! deletes after every write has landed (clear mode), then the namespace read again and
//! compared entry by entry — values, base64 binaries, metadata and expirations.

use std::collections::BTreeSet;

use super::{
    Counts, Plan, Report, Request, Requests, RunState, Snapshot, Status, TargetRef, Tier, Tiers,
    Unit, Verification, save,
};
use crate::cloudflare::Client;
use crate::cloudflare::kv::{MAX_BULK_BYTES, MAX_BULK_ITEMS, Pair, encode_pairs};
use crate::engine::kv::restore::{self as engine, Entries, Mode, Scope};
use crate::ops::backup::{self, Env, What};
use crate::ops::{Error, Result};
use crate::progress::Progress;
use crate::repo::{Manifest, Repo, manifest};

/// What a restore writes from: the backup's entries.
pub struct Data {
    pub backup: Entries,
}

/// The backup's entries (for an incremental backup, its chain folded up).
pub async fn data(repo: &Repo, m: &Manifest) -> Result<Data> {
    let (state, _) = backup::kv::state_of(repo, m).await?;
    let backup = engine::entries(&state)
        .map_err(|e| Error::Verification(format!("backup `{}`: {e}", m.id)))?;
    Ok(Data { backup })
}

/// The namespace to restore into: `to` (title or id), else the backup's own (by id, then by
/// title). A namespace that is gone is created again under the backup's title.
pub async fn target(client: &Client, m: &Manifest, to: Option<&str>) -> Result<TargetRef> {
    TargetRef::lookup("kv", m, to, |t| async move {
        Ok(client.kv_namespace(&t).await?.map(|f| (f.id, f.title)))
    })
    .await
}

/// Reads the live namespace (under `prefix`) as entries, through the backup engine.
async fn read(
    client: &Client,
    ns: &str,
    prefix: Option<&str>,
    concurrency: usize,
    progress: &Progress,
) -> Result<Entries> {
    let mut buf = Vec::new();
    crate::engine::kv::backup(client, ns, prefix, concurrency, progress, &mut buf).await?;
    let mut state = crate::engine::kv::State::new();
    crate::engine::kv::apply(&mut state, &buf)
        .map_err(|e| Error::Remote(format!("reading namespace `{ns}` back: {e}")))?;
    engine::entries(&state).map_err(Error::Remote)
}

/// Whether reading this entry back needs its own GET (bulk get mangles it).
fn refetched(p: &Pair) -> bool {
    p.base64 || p.value.contains('\u{FFFD}')
}

/// The requests reading `n` keys takes: list pages of 1,000, bulk gets of 100 within each
/// page, one GET for each value bulk get cannot carry.
fn read_cost(n: u64, single: u64) -> u64 {
    let lists = n.div_ceil(1000).max(1);
    let gets = 10 * (n / 1000) + (n % 1000).div_ceil(100);
    lists + gets + single
}

/// The tiers a request names, with their key patterns from the configuration of the backed-up
/// namespace (`[tiers."kv/<title>"]`), in the order given.
fn tiers(env: &Env<'_>, m: &Manifest, req: &Request) -> Result<Vec<Tier>> {
    let names = match &req.tiers {
        Tiers::All => return Ok(Vec::new()),
        Tiers::Exact(t) => return Ok(t.clone()),
        Tiers::Named(n) => n,
    };
    let ns = &m.target.name;
    let Some(configured) = env.config.kv_tiers(ns) else {
        return Err(Error::usage(format!(
            "no criticality tiers are configured for KV namespace `{ns}`: add a [tiers.\"kv/{ns}\"] table to {} (for example critical = [\"user:*\", \"hof:*\"]), or leave --tier out",
            env.config
                .file
                .as_ref()
                .map_or("the config file".to_string(), |f| format!(
                    "`{}`",
                    f.display()
                ))
        )));
    };
    let mut out: Vec<Tier> = Vec::new();
    for name in names {
        let patterns = configured.get(name).ok_or_else(|| {
            Error::usage(format!(
                "KV namespace `{ns}` has no tier `{name}`; its tiers are {}",
                configured.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        if out.iter().any(|t| &t.name == name) {
            return Err(Error::usage(format!(
                "--tier names `{name}` twice; list each tier once, most critical first"
            )));
        }
        out.push(Tier {
            name: name.clone(),
            patterns: patterns.clone(),
            keys: 0,
        });
    }
    Ok(out)
}

fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub async fn plan(
    env: &Env<'_>,
    client: &Client,
    m: &Manifest,
    target: TargetRef,
    run: String,
    req: &Request,
    progress: &Progress,
) -> Result<(Plan, Data)> {
    progress.phase("read the backup", "keys", None);
    let data = data(env.repo, m).await?;
    progress.finish();
    let live = if target.exists {
        read(client, &target.id, None, req.concurrency, progress).await?
    } else {
        Entries::new()
    };
    let at = now_secs();
    let prefix = req.prefix.as_deref().filter(|p| !p.is_empty());
    let mut tiers = tiers(env, m, req)?;
    let scope = Scope::new(prefix, &tiers);
    let changes = engine::diff(&data.backup, &live, scope, req.mode, at);
    let batch = if req.kv_batch == 0 {
        MAX_BULK_ITEMS
    } else {
        req.kv_batch.min(MAX_BULK_ITEMS)
    };
    let units = engine::units(&changes, &data.backup, scope, batch, MAX_BULK_BYTES);
    let counts = Counts {
        added: changes.add.len() as u64,
        changed: changes.change.len() as u64,
        kept: changes.kept.len() as u64,
        removed: changes.remove.len() as u64,
        unchanged: changes.unchanged,
        expired: changes.expired.len() as u64,
        write_bytes: changes
            .add
            .iter()
            .chain(&changes.change)
            .filter_map(|k| data.backup.get(k))
            .map(|p| p.value.len() as u64)
            .sum(),
    };
    let snapshot = if !target.exists || units.is_empty() {
        Snapshot::NotNeeded
    } else if req.snapshot {
        Snapshot::Required
    } else {
        Snapshot::Waived
    };

    // What the namespace holds under the prefix afterwards, for the verification's reads.
    let removed: BTreeSet<&String> = changes.remove.iter().collect();
    let written: BTreeSet<&String> = changes.add.iter().chain(&changes.change).collect();
    let mut after = 0u64;
    let mut after_single = 0u64;
    for (k, p) in live.iter().filter(|(k, _)| scope.covers(k)) {
        if removed.contains(k) || written.contains(k) {
            continue;
        }
        after += 1;
        after_single += u64::from(refetched(p));
    }
    for k in &written {
        after += 1;
        after_single += u64::from(data.backup.get(*k).is_some_and(refetched));
    }
    let mut requests = Requests::default();
    let mut step = |name: &str, n: u64| {
        if n > 0 {
            requests.by_step.insert(name.to_string(), n);
        }
    };
    if snapshot == Snapshot::Required {
        let single = live.values().filter(|p| refetched(p)).count() as u64;
        // The snapshot looks the namespace up, then reads it all.
        step("snapshot", 1 + read_cost(live.len() as u64, single));
    }
    if !target.exists {
        step("create namespace", 2);
    }
    let puts = units
        .iter()
        .filter(|u| matches!(u, Unit::Put { .. }))
        .count() as u64;
    step("bulk write", puts);
    step("bulk delete", units.len() as u64 - puts);
    step("verify", read_cost(after, after_single));
    requests.total = requests.by_step.values().sum();
    requests.budget_wait_secs = client.budget.wait_for(requests.total).as_secs_f64();
    requests.eta_secs = client.time_for(requests.total).as_secs_f64();

    let ranks: Vec<usize> = written.iter().filter_map(|k| scope.rank(k)).collect();
    for r in ranks {
        if let Some(t) = tiers.get_mut(r) {
            t.keys += 1;
        }
    }
    let mut kept_keys = changes.kept.clone();
    kept_keys.sort();
    let plan = Plan {
        format: super::PLAN_FORMAT.into(),
        run,
        backup: m.id.clone(),
        source: m.target.name.clone(),
        target,
        mode: req.mode,
        prefix: prefix.map(str::to_string),
        created: manifest::rfc3339(time::OffsetDateTime::now_utc()),
        at,
        counts,
        snapshot,
        requests,
        undo_of: req.undo_of.clone(),
        units,
        kept_keys,
        expired_keys: changes.expired,
        d1: None,
        time_travel: None,
        batch_bytes: None,
        tiers,
        profile: None,
    };
    Ok((plan, data))
}

/// Sends one unit; keys the API lists as unsuccessful are sent once more. Returns the keys
/// that still failed.
async fn send(client: &Client, ns: &str, unit: &Unit, data: &Data) -> Result<Vec<String>> {
    let mut failed = Vec::new();
    for attempt in 0..2 {
        let outcome = match unit {
            Unit::Put { keys } => {
                let todo: Vec<&String> = if attempt == 0 {
                    keys.iter().collect()
                } else {
                    failed.iter().collect()
                };
                let pairs: Vec<&Pair> = todo
                    .iter()
                    .map(|k| {
                        data.backup.get(*k).ok_or_else(|| {
                            Error::Verification(format!(
                                "the plan writes key `{k}`, which the backup does not hold"
                            ))
                        })
                    })
                    .collect::<Result<_>>()?;
                client.kv_bulk_put(ns, encode_pairs(&pairs)).await?
            }
            Unit::Delete { keys } => {
                let todo: Vec<String> = if attempt == 0 {
                    keys.clone()
                } else {
                    failed.clone()
                };
                client.kv_bulk_delete(ns, &todo).await?
            }
        };
        failed = outcome.unsuccessful_keys;
        if failed.is_empty() {
            break;
        }
    }
    Ok(failed)
}

/// Runs (or resumes) a recorded restore to its end.
pub async fn run(
    env: &Env<'_>,
    mut state: RunState,
    data: Data,
    resumed: bool,
    progress: &Progress,
) -> Result<Report> {
    let client = super::cloudflare(env)?;
    let started = std::time::Instant::now();
    let sent_before = client.budget.state().sent;

    // A new namespace: created once (a resume finds the one it created by its title).
    if state.plan.target.id.is_empty() {
        let name = state.plan.target.name.clone();
        let ns = match client.kv_namespace(&name).await? {
            Some(ns) if resumed => ns,
            _ => client.kv_create_namespace(&name).await?,
        };
        state.plan.target.id = ns.id;
        save(env.repo, &state).await?;
    }
    let ns = state.plan.target.id.clone();

    super::prepare(env, &mut state, || {
        let what = What::Kv {
            namespace: ns.clone(),
        };
        async move {
            let job = progress.job("pre-recovery snapshot");
            backup::take(env, &what, &super::snapshot_options(), &job).await
        }
    })
    .await?;
    let landed = super::apply_units(env, &state, "keys", progress, |i| {
        let (ns, data, unit) = (&ns, &data, &state.plan.units[i]);
        async move {
            Ok(super::Landed {
                failed: send(client, ns, unit, data).await?,
                ..Default::default()
            })
        }
    })
    .await?;

    state.status = Status::Verifying;
    save(env.repo, &state).await?;
    let verification = verify(client, &ns, &state.plan, &data, 4, progress).await?;
    let sent = client.budget.state().sent - sent_before;
    let report = Report::of(&state, verification, landed.failed, sent, resumed, started);
    super::finish(env.repo, state, report).await
}

/// Reads the namespace back and compares it with what the plan meant it to hold.
async fn verify(
    client: &Client,
    ns: &str,
    plan: &Plan,
    data: &Data,
    concurrency: usize,
    progress: &Progress,
) -> Result<Verification> {
    let prefix = plan.prefix.as_deref();
    let scope = Scope::new(prefix, &plan.tiers);
    let live = read(client, ns, prefix, concurrency, &progress.job("verify")).await?;
    let expired: BTreeSet<&String> = plan.expired_keys.iter().collect();
    let want: Entries = data
        .backup
        .iter()
        .filter(|(k, _)| !expired.contains(k))
        .map(|(k, p)| (k.clone(), p.clone()))
        .collect();
    let mut ignore: BTreeSet<String> = plan.kept_keys.iter().cloned().collect();
    if plan.mode != Mode::Clear {
        ignore.extend(plan.expired_keys.iter().cloned());
    }
    let differences = engine::compare(&want, &live, scope, plan.mode == Mode::Clear, &ignore);
    Ok(verification(&want, &live, scope, differences))
}

fn verification(
    want: &Entries,
    live: &Entries,
    scope: Scope<'_>,
    differences: Vec<engine::Difference>,
) -> Verification {
    let checked = want
        .keys()
        .chain(live.keys().filter(|k| !want.contains_key(*k)))
        .filter(|k| scope.covers(k))
        .count() as u64;
    Verification::of(checked, differences)
}

/// `cfdr diff`: how the live namespace differs from the backup (under `prefix`): entries
/// missing, extra, or with another value, metadata or expiration. Entries the backup holds
/// that have expired since are not expected.
pub async fn diff(
    env: &Env<'_>,
    m: &Manifest,
    to: Option<&str>,
    (prefix, kept): (Option<&str>, &BTreeSet<String>),
    exact: bool,
    progress: &Progress,
) -> Result<(TargetRef, Verification)> {
    let client = super::cloudflare(env)?;
    let target = target(client, m, to).await?;
    if !target.exists {
        return Err(Error::usage(format!(
            "no KV namespace `{}` in account `{}` to compare with; give --to with its title or id",
            target.name,
            client.account()
        )));
    }
    let data = data(env.repo, m).await?;
    let live = read(client, &target.id, prefix, 4, progress).await?;
    let now = now_secs();
    let want: Entries = data
        .backup
        .into_iter()
        .filter(|(_, p)| p.expiration.is_none_or(|x| x > now))
        .collect();
    // A key about to expire cannot be written (KV refuses the expiration), so a restore
    // leaves it out: where the target lacks it too, that is no difference.
    let mut ignore: BTreeSet<String> = want
        .iter()
        .filter(|(k, p)| {
            p.expiration
                .is_some_and(|x| x < now + engine::EXPIRY_MARGIN_SECS)
                && !live.contains_key(*k)
        })
        .map(|(k, _)| k.clone())
        .collect();
    ignore.extend(kept.iter().cloned());
    let scope = Scope::new(prefix, &[]);
    let differences = engine::compare(&want, &live, scope, exact, &ignore);
    let v = verification(&want, &live, scope, differences);
    Ok((target, v))
}
