//! D1 restores through the import API: the plan table by table (replaced, created, dropped,
//! kept, with rows now and after), one import file that drops what it replaces and then
//! creates it from the backup — applied by D1 all or nothing, split between tables past 5 GB —
//! uploaded to its presigned URL, ingested and polled; then every restored table's row count
//! and content hash read back through the query API and compared with the manifest's. The
//! pre-recovery snapshot is a backup of the database plus its Time Travel bookmark.

use std::collections::BTreeSet;

use super::{
    Counts, Plan, Report, Request, Requests, RunState, Snapshot, Status, TargetRef, Unit,
    Verification, save,
};
use crate::cloudflare::Client;
use crate::cloudflare::d1::{ImportStart, MAX_IMPORT_BYTES, Task};
use crate::engine::changes::Mode;
use crate::engine::d1::batch;
use crate::engine::d1::restore::{self as engine, Action, D1Plan};
use crate::engine::d1::{TableStats, paged, query};
use crate::ops::backup::{self, Env, What};
use crate::ops::{Error, Result};
use crate::progress::Progress;
use crate::repo::{Manifest, Repo, manifest};

/// What a restore writes from: the backup's dump, opened into a private temporary file.
pub struct Data {
    manifest: Box<Manifest>,
    dump: tempfile::NamedTempFile,
}

impl engine::Source for Data {
    /// The dump's statements, read from its file one at a time.
    fn pass(
        &self,
    ) -> std::result::Result<
        Box<dyn Iterator<Item = std::result::Result<String, String>> + '_>,
        String,
    > {
        let file = std::fs::File::open(self.dump.path())
            .map_err(|e| format!("reopening the dump of backup `{}`: {e}", self.manifest.id))?;
        let id = &self.manifest.id;
        Ok(Box::new(
            crate::sqlsplit::Reader::new(std::io::BufReader::with_capacity(1 << 20, file)).map(
                move |s| {
                    s.map_err(|e| {
                        format!("backup `{id}`: its dump cannot be read as UTF-8 text: {e}")
                    })
                },
            ),
        ))
    }
}

impl Data {
    /// How the backup's tables were hashed (and so how the live ones must be).
    pub(super) fn row_text(&self) -> query::RowText {
        query::RowText::of(&self.manifest.stats)
    }

    pub(super) fn tables(&self) -> Result<Vec<TableStats>> {
        serde_json::from_value(self.manifest.stats["tables"].clone()).map_err(|e| {
            Error::Verification(format!(
                "backup `{}`: its manifest's tables cannot be read: {e}",
                self.manifest.id
            ))
        })
    }
}

pub async fn data(repo: &Repo, m: &Manifest) -> Result<Data> {
    let name = m
        .artifacts
        .first()
        .map(|a| a.name.clone())
        .ok_or_else(|| Error::Verification(format!("backup `{}` has no artifact", m.id)))?;
    let dump = tempfile::Builder::new()
        .prefix("cfdr-d1-restore-")
        .suffix(".sql")
        .tempfile()?;
    let file = dump.reopen()?;
    repo.open_artifact(m, &name, file).await?;
    Ok(Data {
        manifest: Box::new(m.clone()),
        dump,
    })
}

/// The database to restore into: `to` (name or id), else the backup's own (by id, then by
/// name). A database that is gone is created again under the backup's name.
pub async fn target(client: &Client, m: &Manifest, to: Option<&str>) -> Result<TargetRef> {
    TargetRef::lookup("d1", m, to, |t| async move {
        Ok(client.d1_database(&t).await?.map(|f| (f.uuid, f.name)))
    })
    .await
}

/// The requests of a D1 pre-recovery snapshot of a database holding `live`: the bookmark;
/// then the backup: the lookup, the virtual-table check, the export (a start and a poll), and
/// the check against the live tables (schema, foreign keys per table, each table's pages, the
/// AUTOINCREMENT counters).
pub(super) fn snapshot_cost(live: &engine::Live, row_bytes: u64) -> u64 {
    let live_tables: Vec<TableStats> = live
        .rows
        .iter()
        .map(|(n, r)| TableStats {
            name: n.clone(),
            rows: *r,
            sha256: "x".into(),
            virtual_table: false,
        })
        .collect();
    let refs: Vec<&TableStats> = live_tables.iter().collect();
    let seq = u64::from(live.objects.iter().any(|o| o.name == "sqlite_sequence"));
    1 + 2 + 2 + live_tables.len() as u64 + verify_cost(&refs, row_bytes) + seq
}

/// A writer that hashes what goes through it (the import's etag is its MD5).
struct Md5Writer<W> {
    inner: W,
    md5: md5::Md5,
}

impl<W: std::io::Write> std::io::Write for Md5Writer<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(b)?;
        md5::Digest::update(&mut self.md5, &b[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Part `i` of the import of `plan`, written to a private temporary file, and its MD5;
/// `tables` are the parts' tables as the plan recorded them.
fn import_file(
    dump: &Data,
    plan: &D1Plan,
    tables: &[&[String]],
    i: usize,
) -> Result<(tempfile::NamedTempFile, String)> {
    let file = tempfile::Builder::new()
        .prefix("cfdr-d1-import-")
        .suffix(".sql")
        .tempfile()?;
    let mut writer = Md5Writer {
        inner: std::io::BufWriter::with_capacity(1 << 20, file.reopen()?),
        md5: <md5::Md5 as md5::Digest>::new(),
    };
    let mut part = Some(&mut writer);
    engine::write_import(dump, plan, tables, |j| {
        Ok(if j == i { part.take() } else { None })
    })
    .map_err(Error::Verification)?;
    Ok((file, hex::encode(md5::Digest::finalize(writer.md5))))
}

/// The requests of a batched restore of `plan` in run `run`: the import, written whole in
/// memory, cut within D1's limits.
fn batches(dump: &Data, plan: &D1Plan, run: &str, max: usize) -> Result<Vec<batch::Batch>> {
    let text = batch::import_text(dump, plan).map_err(Error::usage)?;
    batch::batches(&text, run, max).map_err(Error::usage)
}

/// Sends request `i` (of `all`) of a batched restore; one D1 refused is reported (its tables
/// as not written, D1's message on stderr), one that had landed before is not applied twice.
async fn query(
    client: &Client,
    state: &RunState,
    all: &[batch::Batch],
    i: usize,
    progress: &Progress,
) -> Result<Vec<String>> {
    let b = all
        .get(i)
        .ok_or_else(|| Error::Verification(format!("the plan has no batch {i}")))?;
    match client.d1_execute(&state.plan.target.id, &b.sql).await {
        Ok(_) => Ok(Vec::new()),
        Err(e @ crate::cloudflare::CfError::Api { .. }) => {
            let message = e.to_string();
            if batch::landed_before(&message) {
                progress.warn(format!(
                    "batch {i} had landed before the run stopped: not applied again"
                ));
                return Ok(Vec::new());
            }
            progress.warn(format!(
                "D1 refused batch {i} of the restore into {} (tables {}): {message}; that request was rolled back, the ones before it stay",
                state.plan.target.label(),
                b.tables.join(", ")
            ));
            Ok(b.tables.clone())
        }
        Err(e) => Err(e.into()),
    }
}

/// Bytes per row of the backup's dump, for the verification's page estimate.
pub(super) fn row_bytes(m: &Manifest, tables: &[TableStats]) -> u64 {
    let rows: u64 = tables.iter().map(|t| t.rows).sum();
    let bytes = m.artifacts.first().map(|a| a.plaintext_size).unwrap_or(0);
    bytes.checked_div(rows).unwrap_or(100)
}

/// The requests reading `tables` back through [`paged::hashes`] takes.
pub(super) fn verify_cost(tables: &[&TableStats], row_bytes: u64) -> u64 {
    1 + tables
        .iter()
        .filter(|t| !(t.virtual_table && t.sha256.is_empty()))
        .map(|t| paged::table_cost(t.rows, row_bytes))
        .sum::<u64>()
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
    if req.prefix.is_some() {
        return Err(Error::usage(
            "--prefix is for KV keys and R2 objects; a D1 restore takes --tables T,…",
        ));
    }
    progress.phase("read the backup", "bytes", None);
    let data = data(env.repo, m).await?;
    progress.finish();
    let tables = data.tables()?;
    let live = if target.exists {
        progress.phase("read the database", "requests", None);
        let l = query::live(client, &target.id).await?;
        progress.finish();
        l
    } else {
        Default::default()
    };
    let only = (!req.tables.is_empty()).then_some(req.tables.as_slice());
    let survey = engine::survey(&data).map_err(Error::Verification)?;
    let d1 = engine::plan(&tables, &survey.objects, &live, only, req.mode)
        .map_err(|e| Error::usage(format!("{e} (backup `{}`)", m.id)))?;
    let writes = !d1.import.is_empty() || !d1.drops.is_empty();
    let parts = engine::layout(&survey, &d1, MAX_IMPORT_BYTES).map_err(Error::usage)?;
    let units: Vec<Unit> = if !writes {
        Vec::new()
    } else if let Some(max) = req.batch_bytes {
        batches(&data, &d1, &run, max)?
            .into_iter()
            .map(|b| Unit::Put { keys: b.tables })
            .collect()
    } else {
        parts
            .iter()
            .map(|p| Unit::Put {
                keys: p.tables.clone(),
            })
            .collect()
    };
    let count = |a: Action| d1.tables.iter().filter(|t| t.action == a).count() as u64;
    let counts = Counts {
        added: count(Action::Create),
        changed: count(Action::Replace),
        kept: count(Action::Keep),
        removed: count(Action::Drop),
        unchanged: 0,
        expired: 0,
        write_bytes: if writes {
            parts.iter().map(|p| p.bytes).sum()
        } else {
            0
        },
    };
    let snapshot = if !target.exists || !writes {
        Snapshot::NotNeeded
    } else if req.snapshot {
        Snapshot::Required
    } else {
        Snapshot::Waived
    };

    let bpr = row_bytes(m, &tables);
    let mut requests = Requests::default();
    let mut step = |name: &str, n: u64| {
        if n > 0 {
            requests.by_step.insert(name.to_string(), n);
        }
    };
    if snapshot == Snapshot::Required {
        step("snapshot", snapshot_cost(&live, bpr));
    }
    if !target.exists && writes {
        step("create database", 1);
    }
    if req.batch_bytes.is_some() {
        // One query a batch.
        step("query", units.len() as u64);
    } else {
        // init and ingest per file (the upload goes to a presigned URL, outside the API's
        // budget); a small import is done when ingest answers, a larger one adds its polls.
        step("import", 2 * units.len() as u64);
    }
    let compared: BTreeSet<String> = d1.compared().map(|t| t.name.to_ascii_lowercase()).collect();
    let verified: Vec<&TableStats> = tables
        .iter()
        .filter(|t| compared.contains(&t.name.to_ascii_lowercase()))
        .collect();
    if writes {
        step("verify", verify_cost(&verified, bpr));
    }
    requests.total = requests.by_step.values().sum();
    requests.budget_wait_secs = client.budget.wait_for(requests.total).as_secs_f64();
    requests.eta_secs = client.time_for(requests.total).as_secs_f64();

    let kept_keys = d1
        .tables
        .iter()
        .filter(|t| t.action == Action::Keep)
        .map(|t| t.name.clone())
        .collect();
    let plan = Plan {
        format: super::PLAN_FORMAT.into(),
        run,
        backup: m.id.clone(),
        source: m.target.name.clone(),
        target,
        mode: req.mode,
        prefix: None,
        created: manifest::rfc3339(time::OffsetDateTime::now_utc()),
        at: time::OffsetDateTime::now_utc().unix_timestamp(),
        counts,
        snapshot,
        requests,
        undo_of: req.undo_of.clone(),
        units,
        kept_keys,
        expired_keys: Vec::new(),
        d1: Some(d1),
        time_travel: None,
        batch_bytes: req.batch_bytes,
        tiers: Vec::new(),
        profile: None,
    };
    Ok((plan, data))
}

/// `runs/<run>/import/<part>.json`: an import D1 has started, polled on a resume instead of
/// sent again.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Started {
    md5: String,
    at_bookmark: String,
}

/// The pauses between polls of an import still running: an eighth of the time it has run so
/// far, between these two, so the answer is heard at most an eighth late (D1 answers an ingest
/// after about a second, and a small import is done soon after) and a long import does not
/// spend the request budget on its polls (about 80 for a minute).
const FIRST_POLL: std::time::Duration = std::time::Duration::from_millis(100);
const POLL_AT_MOST: std::time::Duration = std::time::Duration::from_secs(1);

/// Sends part `i` of the import and waits for D1 to apply it. Returns the part's tables when
/// D1 refused it.
async fn import(
    env: &Env<'_>,
    client: &Client,
    state: &RunState,
    data: &Data,
    i: usize,
    progress: &Progress,
) -> Result<Vec<String>> {
    let (db, run) = (&state.plan.target.id, &state.plan.run);
    let note = format!("import/{i:06}.json");
    let mut task = match env.repo.run_file(run, &note).await? {
        Some(b) => {
            let s: Started = serde_json::from_slice(&b)?;
            progress.warn(format!(
                "part {i} of the import was started at bookmark {}: polling it, not sending it again",
                s.at_bookmark
            ));
            Some(Task::Active {
                at_bookmark: s.at_bookmark,
            })
        }
        None => None,
    };
    let plan = state
        .plan
        .d1
        .as_ref()
        .ok_or_else(|| Error::Verification(format!("run `{run}` has no D1 plan")))?;
    let since = std::time::Instant::now();
    loop {
        let t = match task.take() {
            Some(t) => t,
            None => {
                let tables: Vec<&[String]> = state.plan.units.iter().map(|u| u.keys()).collect();
                if i >= tables.len() {
                    return Err(Error::Verification(format!("the plan has no part {i}")));
                }
                let (file, md5) = import_file(data, plan, &tables, i)?;
                let t = match client.d1_import_init(db, &md5).await? {
                    ImportStart::Started(t) => t,
                    ImportStart::Upload { filename, url } => {
                        client
                            .upload_signed("the import's upload URL", &url, file.path(), &md5)
                            .await?;
                        client.d1_import_ingest(db, &md5, &filename).await?
                    }
                };
                if let Task::Active { at_bookmark } = &t {
                    let s = Started {
                        md5,
                        at_bookmark: at_bookmark.clone(),
                    };
                    env.repo
                        .put_run_file(run, &note, &serde_json::to_vec(&s)?)
                        .await?;
                }
                t
            }
        };
        match t {
            Task::Complete { .. } => return Ok(Vec::new()),
            Task::Error { message, .. } => {
                // A run stopped between sending this part and hearing back may have had it
                // applied by D1 all the same; sent again, it is refused (a table it creates
                // exists). Its tables as the backup has them say it landed.
                if in_place(client, state, data, i, progress).await? {
                    progress.warn(format!(
                        "D1 refused part {i} of the import into {} ({message}), but its tables are already as the backup has them: an earlier attempt landed it",
                        state.plan.target.label()
                    ));
                    return Ok(Vec::new());
                }
                // D1 rolled this file back: its tables are as they were, and reported as not
                // written; the other parts go on.
                let tables = state
                    .plan
                    .units
                    .get(i)
                    .map(|u| u.keys().to_vec())
                    .unwrap_or_default();
                progress.warn(format!(
                    "D1 refused part {i} of the import into {} (tables {}): {message}; D1 rolled it back, so those tables are as they were",
                    state.plan.target.label(),
                    tables.join(", ")
                ));
                return Ok(tables);
            }
            Task::Active { at_bookmark } => {
                let pause = (since.elapsed() / 8).clamp(FIRST_POLL, POLL_AT_MOST);
                tokio::time::sleep(pause).await;
                match client.d1_import_poll(db, &at_bookmark).await {
                    Ok(next) => task = Some(next),
                    // D1 no longer knows it (a long pause): the import drops what it replaces
                    // first, so sending it again gives the same database.
                    Err(e) if e.status() == Some(400) => {
                        progress.warn(format!(
                            "D1 no longer knows the import started at {at_bookmark}; sending part {i} again"
                        ));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
}

/// Whether part `i`'s tables (and, for the first part, the tables the plan drops) are already
/// as the backup has them, by row count and content hash.
async fn in_place(
    client: &Client,
    state: &RunState,
    data: &Data,
    i: usize,
    progress: &Progress,
) -> Result<bool> {
    let (Some(d1), Some(unit)) = (&state.plan.d1, state.plan.units.get(i)) else {
        return Ok(false);
    };
    let mut names: BTreeSet<String> = unit.keys().iter().map(|t| t.to_ascii_lowercase()).collect();
    if i == 0 {
        names.extend(
            d1.tables
                .iter()
                .filter(|t| t.action == Action::Drop)
                .map(|t| t.name.to_ascii_lowercase()),
        );
    }
    let live = paged::hashes(
        client,
        &state.plan.target.id,
        Some(&names),
        data.row_text(),
        &progress.job("check"),
    )
    .await?;
    Ok(engine::compare(d1, &data.tables()?, &live)
        .iter()
        .all(|d| !names.contains(&d.key.to_ascii_lowercase())))
}

/// The pre-recovery snapshot of a D1 run, once: the Time Travel bookmark before anything is
/// written (the first way back), then a backup of the database; the run marked as applying.
pub(super) async fn prepare(
    env: &Env<'_>,
    client: &Client,
    state: &mut RunState,
    progress: &Progress,
) -> Result<()> {
    let db = state.plan.target.id.clone();
    if state.plan.snapshot == Snapshot::Required && state.bookmark.is_none() {
        state.bookmark = Some(client.d1_bookmark(&db, None).await?);
    }
    super::prepare(env, state, || {
        let what = What::D1 {
            database: db,
            method: None,
        };
        async move {
            let job = progress.job("pre-recovery snapshot");
            backup::take(env, &what, &super::snapshot_options(), &job).await
        }
    })
    .await
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

    // A new database: created once (a resume finds the one it created by its name).
    if state.plan.target.id.is_empty() && state.plan.writes() {
        let name = state.plan.target.name.clone();
        let db = match client.d1_database(&name).await? {
            Some(d) if resumed => d,
            _ => client.d1_create(&name).await?,
        };
        state.plan.target.id = db.uuid;
        save(env.repo, &state).await?;
    }
    let db = state.plan.target.id.clone();
    prepare(env, client, &mut state, progress).await?;
    // A batched restore's requests, cut once from the backup as the plan cut them.
    let batched = match (state.plan.batch_bytes, &state.plan.d1) {
        (Some(max), Some(plan)) if state.plan.writes() => {
            Some(batches(&data, plan, &state.plan.run, max)?)
        }
        _ => None,
    };
    let recorded = |b: &Vec<batch::Batch>| {
        b.len() == state.plan.units.len()
            && b.iter()
                .zip(&state.plan.units)
                .all(|(b, u)| b.tables == u.keys())
    };
    if batched.as_ref().is_some_and(|b| !recorded(b)) {
        return Err(Error::Verification(format!(
            "run `{}`: the backup no longer cuts into the batches its plan recorded",
            state.plan.run
        )));
    }
    let landed = super::apply_units(env, &state, "tables", progress, |i| {
        let (state, data, batched) = (&state, &data, &batched);
        async move {
            let failed = if let Some(all) = &batched {
                query(client, state, all, i, progress).await?
            } else {
                import(env, client, state, data, i, progress).await?
            };
            Ok(super::Landed {
                failed,
                ..Default::default()
            })
        }
    })
    .await?;

    state.status = Status::Verifying;
    save(env.repo, &state).await?;
    let verification = verify(client, &db, &state.plan, &data, progress).await?;
    let sent = client.budget.state().sent - sent_before;
    let report = Report::of(&state, verification, landed.failed, sent, resumed, started);
    super::finish(env.repo, state, report).await
}

/// Reads the restored tables back and compares each with the manifest's rows and hash.
pub(super) async fn verify(
    client: &Client,
    db: &str,
    plan: &Plan,
    data: &Data,
    progress: &Progress,
) -> Result<Verification> {
    let Some(d1) = &plan.d1 else {
        return Ok(Verification::default());
    };
    if db.is_empty() {
        return Ok(Verification {
            ok: true,
            ..Default::default()
        });
    }
    let only: BTreeSet<String> = d1.compared().map(|t| t.name.to_ascii_lowercase()).collect();
    let live = paged::hashes(
        client,
        db,
        Some(&only),
        data.row_text(),
        &progress.job("verify"),
    )
    .await?;
    let differences = engine::compare(d1, &data.tables()?, &live);
    Ok(Verification::of(only.len() as u64, differences))
}

/// `cfdr diff` for D1: every table of the backup (or those of `tables`) against the live
/// database — missing, extra, other rows — by row count and content hash.
pub async fn diff(
    env: &Env<'_>,
    m: &Manifest,
    to: Option<&str>,
    tables: &[String],
    kept: &BTreeSet<String>,
    progress: &Progress,
) -> Result<(TargetRef, Verification)> {
    let client = super::cloudflare(env)?;
    let target = target(client, m, to).await?;
    if !target.exists {
        return Err(Error::usage(format!(
            "no D1 database `{}` in account `{}` to compare with; give --to with its name or id",
            target.name,
            client.account()
        )));
    }
    let backup: Vec<TableStats> = serde_json::from_value(m.stats["tables"].clone())
        .map_err(|e| Error::Verification(format!("backup `{}`: {e}", m.id)))?;
    let live = query::live(client, &target.id).await?;
    let only = (!tables.is_empty()).then_some(tables);
    let mut d1 = engine::plan(&backup, &[], &live, only, Mode::Clear).map_err(Error::usage)?;
    // Tables a skip-mode restore kept as the target had them are not compared.
    let kept: BTreeSet<String> = kept.iter().map(|t| t.to_ascii_lowercase()).collect();
    d1.tables
        .retain(|t| !kept.contains(&t.name.to_ascii_lowercase()));
    let names: BTreeSet<String> = d1.compared().map(|t| t.name.to_ascii_lowercase()).collect();
    let scheme = query::RowText::of(&m.stats);
    let hashes = paged::hashes(client, &target.id, Some(&names), scheme, progress).await?;
    let differences = engine::compare(&d1, &backup, &hashes);
    Ok((target, Verification::of(names.len() as u64, differences)))
}
