//! Running a playbook: its parameters bound before anything runs ([`bind`]), then the
//! [runner](super::runner)'s effects carried out one by one ([`drive`]) — each item one of the
//! operations in `ops/`, the journal saved in the repository (`runs/<run-id>/playbook.json`)
//! after every change, the report written at the end. A dry run ([`preview`]) walks every item
//! and says what it would do, writing nothing anywhere.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use super::model::{self, Action, ParamKind, Playbook, Template};
use super::runner::{self, Act, Effect, Event, Item, Outcome, Probe, Run, Status, Subject, Target};
use crate::ops::backup::{self, Env, What};
use crate::ops::restore::{self, Mode, Request, TimeTravel};
use crate::ops::{Error, Result, notify, probe};
use crate::progress::Progress;
use crate::repo::audit::Record;
use crate::repo::catalog::Entry;
use crate::repo::{Lease, VerifyMode, lease, manifest};

/// The journal's file in the run's folder.
const JOURNAL: &str = "playbook.json";

/// What a step asks of the person running it. The command line reads a terminal (or takes
/// `--yes`); the console shows a form.
pub trait Operator: Send + Sync {
    /// A line about the run: a step starting or ending.
    fn tell(&self, line: &str);
    /// The typed confirmation before writing to `target`.
    fn confirm(&self, target: &Target) -> Answer;
    /// An instruction with its checklist: given when every item is ticked.
    fn checklist(&self, text: &str, items: &[String]) -> Answer;
    /// A second person's name, in `role`.
    fn approve(&self, role: &str) -> Answer;
    /// The run as it stands, each time its journal is saved (the console draws it).
    fn saw(&self, _run: &Run) {}
}

/// What the operator answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Given: what the record keeps (who confirmed, who approved).
    Given(String),
    /// Nobody is there to answer (`--yes` on a checklist): the step is skipped, saying so.
    Unattended(String),
    /// Not given: the run stops here, and `resume` asks again.
    Refused(String),
}

/// How a run goes, beyond its parameters.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The webhook `notify` steps post to when they name none.
    pub notify: Option<String>,
    pub retry: crate::cloudflare::RetryPolicy,
}

fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn usage<T>(message: impl Into<String>) -> Result<T> {
    Err(Error::usage(message))
}

/// Backups a recovery may restore: not the pre-recovery snapshots of damaged targets.
fn restorable(e: &Entry) -> bool {
    e.trigger != "pre-recovery"
}

/// The parameters of `pb` bound from `given` (`--param`), defaults and the repository: every
/// value checked, `latest` turned into a backup id, component lists into the targets they
/// cover. Reads only; an error names the parameter and what to give instead.
pub async fn bind(
    env: &Env<'_>,
    pb: &Playbook,
    given: &BTreeMap<String, String>,
    incident: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<Run> {
    for k in given.keys() {
        if !pb.params.iter().any(|p| p.name == *k) {
            let names: Vec<&str> = pb.params.iter().map(|p| p.name.as_str()).collect();
            return usage(format!(
                "playbook `{}` has no parameter `{k}`; its parameters are {} (cfdr playbook show {})",
                pb.id,
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                },
                pb.id
            ));
        }
    }
    let catalog = env.repo.catalog().await?;
    let mut values = BTreeMap::new();
    let mut targets: BTreeMap<String, Target> = BTreeMap::new();
    let mut lists: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // Targets and the rest first: a backup parameter picks from its target's backups.
    for p in pb.params.iter().filter(|p| p.kind != ParamKind::Backup) {
        let Some(v) = given.get(&p.name).or(p.default.as_ref()) else {
            return usage(format!(
                "playbook `{}` needs --param {}=… ({}: {})",
                pb.id,
                p.name,
                p.kind.name(),
                p.help
            ));
        };
        let v = v.trim().to_string();
        match p.kind {
            ParamKind::Target => {
                let t = target_value(&catalog.entries, &p.name, p.component.as_deref(), &v)?;
                values.insert(p.name.clone(), t.name.clone());
                targets.insert(p.name.clone(), t);
            }
            ParamKind::Components => {
                let mut list = Vec::new();
                for c in v.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                    if !model::COMPONENTS.contains(&c) {
                        return usage(format!(
                            "--param {}={v}: `{c}` is not a component; choose from {}",
                            p.name,
                            model::COMPONENTS.join(", ")
                        ));
                    }
                    if !list.iter().any(|l: &String| l == c) {
                        list.push(c.to_string());
                    }
                }
                values.insert(p.name.clone(), list.join(","));
                lists.insert(p.name.clone(), list);
            }
            ParamKind::Time => {
                let t = match v.as_str() {
                    "" => String::new(),
                    "now" => manifest::rfc3339(now),
                    s => manifest::rfc3339(manifest::parse_time(s).ok_or_else(|| {
                        Error::usage(format!(
                            "--param {}={s} is not a time; write it as RFC 3339 (2026-12-03T14:05:00Z) or `now`",
                            p.name
                        ))
                    })?),
                };
                values.insert(p.name.clone(), t);
            }
            ParamKind::Text | ParamKind::Backup => {
                values.insert(p.name.clone(), v);
            }
            ParamKind::Worker => {
                if let Err(why) = model::check_value(p.kind, &v) {
                    return usage(format!("--param {}: {why}", p.name));
                }
                values.insert(p.name.clone(), v.clone());
                targets.insert(
                    p.name.clone(),
                    Target {
                        kind: "worker".into(),
                        name: v,
                    },
                );
            }
        }
    }
    for p in pb.params.iter().filter(|p| p.kind == ParamKind::Backup) {
        let v = given
            .get(&p.name)
            .or(p.default.as_ref())
            .map(|v| v.trim().to_string());
        let of = p.of.as_deref().and_then(|o| targets.get(o));
        let id = match (v.as_deref(), of) {
            (None, _) => {
                return usage(format!(
                    "playbook `{}` needs --param {}=<backup id> ({})",
                    pb.id, p.name, p.help
                ));
            }
            (Some("latest"), Some(t)) => newest(&catalog.entries, t)
                .ok_or_else(|| {
                    Error::usage(format!(
                        "no backup of {} in the repository to restore: take one with `cfdr backup {} {}`, or name one with --param {}=<id>",
                        t.label(),
                        t.kind,
                        t.name,
                        p.name
                    ))
                })?
                .id
                .clone(),
            (Some("latest"), None) => {
                return usage(format!(
                    "--param {}=latest needs the target it is the latest of; name a backup id instead",
                    p.name
                ));
            }
            (Some(id), of) => {
                let Some(e) = catalog.entries.iter().find(|e| e.id == id) else {
                    return usage(format!(
                        "--param {}={id}: no such backup in the repository; list them with `cfdr backups list`",
                        p.name
                    ));
                };
                if let Some(t) = of
                    && (e.kind != t.kind || e.target != t.name)
                {
                    return usage(format!(
                        "--param {}={id} is a backup of {} `{}`, not of {}; pick one of its own (cfdr backups list --target {})",
                        p.name,
                        e.kind,
                        e.target,
                        t.label(),
                        t.name
                    ));
                }
                id.to_string()
            }
        };
        values.insert(p.name.clone(), id);
    }
    // What each component list covers: the newest restorable backup of every target of those
    // kinds, except the targets the playbook names on their own.
    let named: Vec<&Target> = targets.values().collect();
    let mut subjects: BTreeMap<String, Vec<Subject>> = BTreeMap::new();
    for (param, kinds) in &lists {
        let mut out = Vec::new();
        for kind in kinds {
            let mut names: Vec<&str> = catalog
                .entries
                .iter()
                .filter(|e| e.kind == *kind && restorable(e))
                .map(|e| e.target.as_str())
                .collect();
            names.sort();
            names.dedup();
            for name in names {
                let t = Target {
                    kind: kind.clone(),
                    name: name.to_string(),
                };
                if named.contains(&&t) {
                    continue;
                }
                if let Some(e) = newest(&catalog.entries, &t) {
                    out.push(Subject {
                        target: t,
                        backup: e.id.clone(),
                    });
                }
            }
        }
        subjects.insert(param.clone(), out);
    }
    let binding = Binding {
        values: &values,
        targets: &targets,
        subjects: &subjects,
    };
    let mut steps = Vec::new();
    for (n, s) in pb.steps.iter().enumerate() {
        let fan = binding.fan(&s.action);
        let items = match fan {
            Some(p) => {
                let list = &subjects[p];
                if list.is_empty() && matches!(s.action, Action::Restore { .. }) {
                    return usage(format!(
                        "step {} restores every target of {} (--param {p}), and the repository holds no backup of any",
                        n + 1,
                        values[p]
                    ));
                }
                list.iter()
                    .map(|sub| binding.act(&s.action, Some((p, sub))))
                    .collect::<Result<Vec<_>>>()?
            }
            None => vec![binding.act(&s.action, None)?],
        };
        steps.push(runner::Step {
            title: Template(s.title.clone()).render(&values),
            kind: s.action.kind().to_string(),
            items: items.into_iter().map(runner::item).collect(),
        });
    }
    let ms = |t: OffsetDateTime| (t.unix_timestamp_nanos() / 1_000_000) as i64;
    Ok(Run {
        format: runner::RUN_FORMAT.into(),
        id: manifest::new_id(now),
        playbook: pb.id.clone(),
        title: pb.title.clone(),
        rto_secs: pb.rto.as_secs(),
        rpo_secs: pb.rpo.as_secs(),
        params: values,
        subjects: subjects.into_values().flatten().collect(),
        steps,
        status: Status::Running,
        by: lease::who(),
        started_ms: ms(now),
        incident_ms: incident.map(ms),
        finished_ms: None,
        profile: env.config.profile.clone(),
        notes: Vec::new(),
    })
}

/// The newest restorable backup of `t`.
fn newest<'a>(entries: &'a [Entry], t: &Target) -> Option<&'a Entry> {
    entries
        .iter()
        .filter(|e| e.kind == t.kind && e.target == t.name && restorable(e))
        .max_by(|a, b| a.started.cmp(&b.started))
}

/// A target parameter's value: `name` or `kind/name`; the kind from the parameter, the prefix
/// or the repository's backups (when one kind has a target of that name).
fn target_value(
    entries: &[Entry],
    param: &str,
    component: Option<&str>,
    v: &str,
) -> Result<Target> {
    if v.is_empty() {
        return usage(format!("--param {param} is empty; name the target"));
    }
    let (prefix, name) = match v.split_once('/') {
        Some((k, n)) if model::COMPONENTS.contains(&k) => (Some(k), n),
        _ => (None, v),
    };
    let kind = match (component, prefix) {
        (Some(c), Some(p)) if c != p => {
            return usage(format!(
                "--param {param}={v}: this parameter is a {c} target, not {p}"
            ));
        }
        (Some(c), _) | (None, Some(c)) => c.to_string(),
        (None, None) => {
            let mut kinds: Vec<&str> = entries
                .iter()
                .filter(|e| e.target == name)
                .map(|e| e.kind.as_str())
                .collect();
            kinds.sort();
            kinds.dedup();
            match kinds.as_slice() {
                [k] => k.to_string(),
                [] => {
                    return usage(format!(
                        "--param {param}={v}: the repository has no backup of a target named `{name}`; write it as kind/name (d1/{name}, kv/{name}, r2/{name}) or see `cfdr backups list`"
                    ));
                }
                several => {
                    return usage(format!(
                        "--param {param}={v}: targets of {} are named `{name}`; say which, e.g. {}/{name}",
                        several.join(" and "),
                        several[0]
                    ));
                }
            }
        }
    };
    // A SQLite file may be named by its path: the target is the name its backups carry.
    let name = entries
        .iter()
        .rev()
        .find(|e| e.kind == kind && e.kind == "sqlite" && e.target_id == name)
        .map_or(name, |e| e.target.as_str());
    Ok(Target {
        kind,
        name: name.to_string(),
    })
}

/// The bound values a step's fields render from.
struct Binding<'a> {
    values: &'a BTreeMap<String, String>,
    targets: &'a BTreeMap<String, Target>,
    subjects: &'a BTreeMap<String, Vec<Subject>>,
}

impl Binding<'_> {
    /// The component list a step runs over: one whose backup or target field is exactly
    /// `{list}`.
    fn fan<'s>(&'s self, a: &Action) -> Option<&'s str> {
        let fields: Vec<&Template> = match a {
            Action::Validate { backup, .. } => vec![backup],
            Action::Snapshot { target } | Action::Confirm { target } => vec![target],
            Action::Restore { backup, target, .. }
            | Action::Verify { backup, target }
            | Action::Diff { backup, target } => std::iter::once(backup).chain(target).collect(),
            Action::Check { target, .. } => vec![target],
            _ => vec![],
        };
        fields.iter().find_map(|f| {
            let name = f.0.strip_prefix('{')?.strip_suffix('}')?;
            self.subjects.get_key_value(name).map(|(k, _)| k.as_str())
        })
    }

    fn text(&self, t: &Template) -> String {
        t.render(self.values)
    }

    fn opt(&self, t: &Option<Template>) -> Option<String> {
        t.as_ref().map(|t| self.text(t)).filter(|s| !s.is_empty())
    }

    /// A backup field: the subject's backup when it is the list itself.
    fn backup(&self, t: &Template, sub: Option<(&str, &Subject)>) -> String {
        match sub {
            Some((p, s)) if t.0 == format!("{{{p}}}") => s.backup.clone(),
            _ => self.text(t),
        }
    }

    /// A target field: the subject's target when it is the list itself, a target parameter's
    /// target, or the rendered name with the kind of the first target parameter it names.
    fn target(&self, t: &Template, sub: Option<(&str, &Subject)>) -> Result<Target> {
        if let Some((p, s)) = sub
            && t.0 == format!("{{{p}}}")
        {
            return Ok(s.target.clone());
        }
        let refs = model::references(&t.0).unwrap_or_default();
        if let [only] = refs.as_slice()
            && t.0 == format!("{{{only}}}")
            && let Some(target) = self.targets.get(*only)
        {
            return Ok(target.clone());
        }
        match refs.iter().find_map(|r| self.targets.get(*r)) {
            Some(of) => Ok(Target {
                kind: of.kind.clone(),
                name: self.text(t),
            }),
            None => usage(format!(
                "`{t}` does not name a target parameter, so its kind is unknown; refer to one, e.g. `{{database}}`"
            )),
        }
    }

    fn act(&self, a: &Action, sub: Option<(&str, &Subject)>) -> Result<Act> {
        Ok(match a {
            Action::Validate { backup, full } => Act::Validate {
                backup: self.backup(backup, sub),
                full: *full,
            },
            Action::Snapshot { target } => Act::Snapshot {
                target: self.target(target, sub)?,
            },
            Action::Confirm { target } => Act::Confirm {
                target: self.target(target, sub)?,
            },
            Action::Restore {
                backup,
                target,
                tables,
                prefix,
                mode,
                at,
                scratch,
            } => Act::Restore {
                backup: self.backup(backup, sub),
                target: match target {
                    Some(t) => Some(self.target(t, sub)?),
                    None => None,
                },
                tables: list(self.opt(tables)),
                prefix: self.opt(prefix),
                mode: mode.clone().unwrap_or_else(|| "overwrite".into()),
                at: self.opt(at),
                scratch: *scratch,
            },
            Action::Verify { backup, target } => Act::Verify {
                backup: self.backup(backup, sub),
                target: match target {
                    Some(t) => Some(self.target(t, sub)?),
                    None => None,
                },
                tables: vec![],
                prefix: None,
            },
            Action::Diff { backup, target } => Act::Diff {
                backup: self.backup(backup, sub),
                target: match target {
                    Some(t) => Some(self.target(t, sub)?),
                    None => None,
                },
            },
            Action::Check {
                target,
                probe,
                expect,
            } => Act::Check {
                target: self.target(target, sub)?,
                probe: match probe {
                    model::Probe::Sql(q) => Probe::Sql(self.text(q)),
                    model::Probe::Key(k) => Probe::Key(self.text(k)),
                    model::Probe::Object(o) => Probe::Object(self.text(o)),
                },
                expect: self.text(expect),
            },
            Action::Manual { text, checklist } => Act::Manual {
                text: self.text(text),
                checklist: checklist
                    .iter()
                    .map(|c| Template(c.clone()).render(self.values))
                    .collect(),
            },
            Action::Approve { role } => Act::Approve { role: role.clone() },
            Action::Notify { message, url } => Act::Notify {
                message: self.text(message),
                url: self.opt(url),
            },
            Action::Wait { time, reason } => Act::Wait {
                secs: time.as_secs(),
                reason: self.opt(reason),
            },
            Action::Rollback {
                worker,
                to,
                steps,
                wait,
                force,
            } => {
                let steps = self.opt(steps);
                if let Some(s) = &steps {
                    super::worker::steps(s)?;
                }
                let wait_secs = match self.opt(wait) {
                    None => 0,
                    Some(w) => humantime::parse_duration(&w)
                        .map_err(|_| {
                            Error::usage(format!(
                                "wait `{w}` is not a duration: write it like 30s or 2m"
                            ))
                        })?
                        .as_secs(),
                };
                let force = match self.opt(force).as_deref().map(str::to_lowercase).as_deref() {
                    None | Some("no" | "false") => false,
                    Some("yes" | "true") => true,
                    Some(other) => {
                        return usage(format!(
                            "force `{other}`: give yes (bring older secret values back if Cloudflare asks) or no"
                        ));
                    }
                };
                Act::Rollback {
                    worker: self.text(worker),
                    to: self.opt(to),
                    steps,
                    wait_secs,
                    force,
                }
            }
        })
    }
}

fn list(s: Option<String>) -> Vec<String> {
    s.map(|s| {
        s.split(',')
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect()
    })
    .unwrap_or_default()
}

/// What an item does, in a line.
pub fn describe(a: &Act) -> String {
    match a {
        Act::Validate { backup, full } => format!(
            "check backup {backup}: manifest MAC and key{}",
            if *full {
                ", every chunk decrypted and hashed"
            } else {
                ""
            }
        ),
        Act::Snapshot { target } => {
            format!("back up {} as it is now (pre-recovery)", target.label())
        }
        Act::Confirm { target } => format!("ask for `{}` typed before writing to it", target.name),
        Act::Restore {
            backup,
            target,
            tables,
            prefix,
            mode,
            at,
            scratch,
        } => {
            let into = if *scratch {
                " into a scratch target, removed at the end".to_string()
            } else {
                target
                    .as_ref()
                    .map(|t| format!(" into {}", t.label()))
                    .unwrap_or_else(|| " into its own target".into())
            };
            let mut s = match at {
                Some(at) => format!("Time Travel{into} back to {at}"),
                None => format!("restore backup {backup}{into}, mode {mode}"),
            };
            if !tables.is_empty() {
                s.push_str(&format!(", tables {}", tables.join(",")));
            }
            if let Some(p) = prefix {
                s.push_str(&format!(", prefix `{p}`"));
            }
            s
        }
        Act::Verify { backup, target, .. } => format!(
            "read {} back and compare it with backup {backup}",
            target
                .as_ref()
                .map_or("the restored target".into(), Target::label)
        ),
        Act::Diff { backup, target } => format!(
            "list how {} differs from backup {backup}",
            target
                .as_ref()
                .map_or("the backup's target".into(), Target::label)
        ),
        Act::Check {
            target,
            probe,
            expect,
        } => match probe {
            Probe::Sql(q) => format!("run `{q}` on {}, expect `{expect}`", target.label()),
            Probe::Key(k) => format!("read key `{k}` of {}, expect `{expect}`", target.label()),
            Probe::Object(o) => {
                format!(
                    "look for object `{o}` in {}, expect {expect}",
                    target.label()
                )
            }
        },
        Act::Manual { text, checklist } => {
            format!(
                "ask the operator to tick {} item(s): {text}",
                checklist.len()
            )
        }
        Act::Approve { role } => format!("the {role} gives their name"),
        Act::Notify { message, .. } => format!("post \"{message}\""),
        Act::Rollback {
            worker,
            to,
            steps,
            wait_secs,
            force,
        } => format!(
            "put Worker `{worker}` back on {}{}{}, then read it back and probe it{}",
            to.as_ref().map_or("its automatic target (the newest earlier 100 % deployment whose version is not live)".into(), |t| format!("version {t}")),
            steps.as_ref().map(|s| format!(" in stages {s} %")).unwrap_or_default(),
            if *wait_secs > 0 && steps.is_some() { format!(", {wait_secs}s between them") } else { String::new() },
            if *force { "; force if a secret changed (10220)" } else { "" }
        ),
        Act::Wait { secs, reason } => format!(
            "wait {}{}",
            humantime::format_duration(std::time::Duration::from_secs(*secs)),
            reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
    }
}

/// Saves the run record in its folder.
pub async fn save(env: &Env<'_>, run: &Run) -> Result<()> {
    Ok(env
        .repo
        .put_run_file(&run.id, JOURNAL, &serde_json::to_vec_pretty(run)?)
        .await?)
}

/// A run as its journal holds it.
pub async fn load(env: &Env<'_>, id: &str) -> Result<Run> {
    let bytes = env.repo.run_file(id, JOURNAL).await?.ok_or_else(|| {
        Error::usage(format!(
            "no playbook run `{id}` in repository `{}`; list them with `cfdr playbook runs`",
            env.repo.storage.display
        ))
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::Verification(format!(
            "playbook run `{id}`: its journal cannot be read: {e}"
        ))
    })
}

/// Every playbook run in the repository, oldest first.
pub async fn runs(env: &Env<'_>) -> Result<Vec<Run>> {
    let mut out = Vec::new();
    for id in env.repo.runs_with(JOURNAL).await? {
        out.push(load(env, &id).await?);
    }
    Ok(out)
}

/// How a drive ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    Finished(Outcome),
    /// Stopped for the operator, nothing half-done: `resume` goes on.
    Stopped(String),
}

/// Runs `run` from where it stands (the start, or the journal's place after a crash, or the
/// failed item for a retry) until it finishes or stops, under the run's lease.
pub async fn drive(
    env: &Env<'_>,
    run: &mut Run,
    op: &dyn Operator,
    opts: &Options,
    progress: &Progress,
) -> Result<Ended> {
    if env.config.profile != run.profile {
        return usage(format!(
            "playbook run `{}` works in the account of {}; run it again with {}",
            run.id,
            run.profile
                .as_ref()
                .map_or("the main configuration".to_string(), |p| format!(
                    "profile `{p}`"
                )),
            run.profile
                .as_ref()
                .map_or("no --profile".to_string(), |p| format!("--profile {p}"))
        ));
    }
    let lock = Lease::acquire_at(
        &env.repo.storage,
        &format!("locks/playbook-{}.json", manifest::path_safe(&run.id)),
        &format!("playbook run {}", run.id),
        &format!("playbook {} run {}", run.playbook, run.id),
        lease::DEFAULT_TTL,
    )
    .await?;
    let ended = carry(env, run, op, opts, progress).await;
    let released = lock.release().await;
    let ended = ended?;
    released?;
    Ok(ended)
}

async fn carry(
    env: &Env<'_>,
    run: &mut Run,
    op: &dyn Operator,
    opts: &Options,
    progress: &Progress,
) -> Result<Ended> {
    let total = run.steps.len();
    let begun = std::time::Instant::now();
    let fresh = run.items().all(|(_, i)| i.attempts == 0);
    audit(
        env,
        run,
        Record {
            action: "playbook-run".into(),
            result: if fresh { "started" } else { "resumed" }.into(),
            detail: Some(format!("playbook {}: {}", run.playbook, run.title)),
            ..Default::default()
        },
        begun,
        progress,
    )
    .await;
    let mut queue: std::collections::VecDeque<Effect> =
        run.handle(Event::Go { at_ms: now_ms() }).into();
    while let Some(effect) = queue.pop_front() {
        match effect {
            Effect::Save => {
                save(env, run).await?;
                op.saw(run);
            }
            Effect::Execute { step, item } => {
                let (title, kind, n) = {
                    let s = &run.steps[step];
                    (s.title.clone(), s.kind.clone(), s.items.len())
                };
                let which = if n > 1 {
                    format!(" ({} of {n})", item + 1)
                } else {
                    String::new()
                };
                let act = run.steps[step].items[item].act.clone();
                op.tell(&format!(
                    "step {}/{total} {kind}{which}: {title} — {}",
                    step + 1,
                    describe(&act)
                ));
                let job = progress.job(format!("step {}/{total} {kind}", step + 1));
                let item_began = std::time::Instant::now();
                let got = execute(env, run, (step, item), &act, op, opts, &job).await;
                let at_ms = now_ms();
                let event = match got {
                    Ok(Did::Done(note, facts)) => Event::Done { at_ms, note, facts },
                    Ok(Did::Skipped(why)) => Event::Skipped { at_ms, why },
                    Ok(Did::Stop(why)) => Event::Stop { at_ms, why },
                    Err(Error::Cancelled(_)) => Event::Stop {
                        at_ms,
                        why: "stopped by the operator".into(),
                    },
                    Err(e) => Event::Failed {
                        at_ms,
                        error: e.to_string(),
                    },
                };
                let line = match &event {
                    Event::Done { note, .. } => format!("  done: {note}"),
                    Event::Skipped { why, .. } => format!("  skipped: {why}"),
                    Event::Failed { error, .. } => format!("  FAILED: {error}"),
                    Event::Stop { why, .. } => format!("  stopped: {why}"),
                    _ => String::new(),
                };
                op.tell(&line);
                let (result, note) = match &event {
                    Event::Done { note, .. } => ("success", note),
                    Event::Skipped { why, .. } => ("skipped", why),
                    Event::Failed { error, .. } => ("failed", error),
                    Event::Stop { why, .. } => ("stopped", why),
                    _ => ("", &line),
                };
                let record = Record {
                    action: "playbook-step".into(),
                    target: subject(&act).map(|t| t.label()),
                    backup: act.backup().map(str::to_string),
                    result: result.into(),
                    detail: Some(format!("step {}/{total} {kind}: {note}", step + 1)),
                    ..Default::default()
                };
                audit(env, run, record, item_began, progress).await;
                let stop = progress.is_cancelled() && matches!(event, Event::Done { .. });
                queue.extend(run.handle(event));
                if stop && queue.iter().any(|e| matches!(e, Effect::Execute { .. })) {
                    queue.retain(|e| !matches!(e, Effect::Execute { .. }));
                    // The next item was marked running; it goes back to waiting.
                    queue.extend(run.handle(Event::Stop {
                        at_ms: now_ms(),
                        why: "stopped by the operator".into(),
                    }));
                }
            }
            Effect::Finished(outcome) => {
                cleanup(env, run, op, progress).await;
                save(env, run).await?;
                op.saw(run);
                super::report::write(env, run).await?;
                if run.playbook == "drill" {
                    super::drill::write(env, run).await?;
                }
                let m = run.measures();
                let record = Record {
                    action: "playbook-run".into(),
                    result: format!("{outcome:?}").to_lowercase(),
                    detail: Some(format!(
                        "playbook {}: RTO {} s, RPO {} s",
                        run.playbook,
                        m.rto_secs.map_or("-".into(), |r| format!("{r:.1}")),
                        m.rpo_secs.map_or("-".into(), |r| format!("{r:.0}"))
                    )),
                    ..Default::default()
                };
                audit(env, run, record, begun, progress).await;
                return Ok(Ended::Finished(outcome));
            }
            Effect::Stopped(why) => return Ok(Ended::Stopped(why)),
        }
    }
    Ok(Ended::Stopped("the run has nothing left to do".into()))
}

/// An entry of the run in the audit trail.
async fn audit(
    env: &Env<'_>,
    run: &Run,
    mut record: Record,
    began: std::time::Instant,
    progress: &Progress,
) {
    record.run = Some(run.id.clone());
    crate::ops::audit::record(env, record, began, progress).await;
}

/// The target an item works on, when it names one.
fn subject(a: &Act) -> Option<&Target> {
    match a {
        Act::Snapshot { target } | Act::Confirm { target } | Act::Check { target, .. } => {
            Some(target)
        }
        Act::Restore { target, .. } | Act::Verify { target, .. } | Act::Diff { target, .. } => {
            target.as_ref()
        }
        _ => None,
    }
}

/// What an item did.
pub(super) enum Did {
    Done(String, BTreeMap<String, String>),
    Skipped(String),
    Stop(String),
}

pub(super) fn facts(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// Records a fact of the running item in the journal at once (a restore's run id before its
/// first write).
pub(super) async fn record(env: &Env<'_>, run: &mut Run, key: &str, value: &str) -> Result<()> {
    for e in run.handle(Event::Fact {
        key: key.into(),
        value: value.into(),
    }) {
        if e == Effect::Save {
            save(env, run).await?;
        }
    }
    Ok(())
}

/// The restore item before `at` that restored `backup`, if any.
fn restored<'r>(run: &'r Run, at: (usize, usize), backup: &str) -> Option<&'r Item> {
    run.items()
        .take_while(|(s, _)| *s < at.0)
        .map(|(_, i)| i)
        .filter(|i| matches!(&i.act, Act::Restore { backup: b, .. } if b == backup))
        .last()
}

/// The pre-recovery snapshot taken of `target` earlier in the run, if any.
fn snapshot_of(run: &Run, at: (usize, usize), target: &Target) -> Option<String> {
    run.items()
        .take_while(|(s, _)| *s < at.0)
        .filter_map(|(_, i)| match &i.act {
            Act::Snapshot { target: t } if t == target => i.facts.get("snapshot").cloned(),
            _ => None,
        })
        .last()
}

async fn execute(
    env: &Env<'_>,
    run: &mut Run,
    at: (usize, usize),
    act: &Act,
    op: &dyn Operator,
    opts: &Options,
    progress: &Progress,
) -> Result<Did> {
    match act {
        Act::Validate { backup, full } => {
            let m = env.repo.manifest(backup).await?;
            let mode = if *full {
                VerifyMode::Full
            } else {
                VerifyMode::Quick
            };
            let r = env.repo.verify_with(&m, mode, progress).await?;
            if !r.ok {
                let problems: Vec<String> = r
                    .problems
                    .iter()
                    .map(|p| format!("{}: {}", p.artifact, p.message))
                    .collect();
                return Err(Error::Verification(format!(
                    "backup {backup} of {} `{}` failed verification: {}; pick another with --param",
                    m.kind.as_str(),
                    m.target.name,
                    problems.join("; ")
                )));
            }
            Ok(Did::Done(
                format!(
                    "backup {backup} of {} `{}` ({}) verified: {} artifacts, {} bytes",
                    m.kind.as_str(),
                    m.target.name,
                    m.started,
                    r.artifacts_checked,
                    r.bytes_checked
                ),
                facts(&[("started", m.started.clone())]),
            ))
        }
        Act::Snapshot { target } => {
            let what = what(env, target).await?;
            if !backup::exists(env, &what, progress).await? {
                return Ok(Did::Skipped(format!(
                    "{} does not exist: there is nothing to lose, the restore creates it",
                    target.label()
                )));
            }
            let opts = backup::Options {
                trigger: "pre-recovery".into(),
                retry: opts.retry.clone(),
                ..Default::default()
            };
            let done = backup::take(env, &what, &opts, progress).await?;
            Ok(Did::Done(
                format!(
                    "pre-recovery snapshot {} of {}",
                    done.manifest.id,
                    target.label()
                ),
                facts(&[("snapshot", done.manifest.id.clone())]),
            ))
        }
        Act::Confirm { target } => match tokio::task::block_in_place(|| op.confirm(target)) {
            Answer::Given(who) => Ok(Did::Done(
                format!("confirmed {} ({who})", target.label()),
                facts(&[("by", who)]),
            )),
            Answer::Unattended(why) | Answer::Refused(why) => Ok(Did::Stop(why)),
        },
        Act::Restore { .. } => restore_item(env, run, at, act, opts, progress).await,
        Act::Rollback { .. } => super::worker::rollback_item(env, run, at, act, progress).await,
        Act::Verify {
            backup,
            target,
            tables,
            prefix,
        } => {
            let named = to_of(env, target.as_ref(), &own_target(env, backup).await?).await?;
            let mut scope = compared(run, at, backup, named, target.is_some(), tables, prefix);
            scope.kept = kept(env, run, at, backup).await?;
            let (t, v) = restore::diff(env, backup, &scope, opts.retry.clone(), progress).await?;
            if !v.ok {
                let first = differences(&v, 5);
                return Err(Error::Verification(format!(
                    "{} differs from backup {backup} in {} of {} {}: {}",
                    t.label(),
                    v.differences,
                    v.checked,
                    t.items(),
                    first.join(", ")
                )));
            }
            Ok(Did::Done(
                format!(
                    "{} equals backup {backup}: {} {} compared",
                    t.label(),
                    v.checked,
                    t.items()
                ),
                facts(&[("checked", v.checked.to_string())]),
            ))
        }
        Act::Diff { backup, target } => {
            let scope = restore::Scope {
                to: to_of(env, target.as_ref(), &own_target(env, backup).await?).await?,
                ..Default::default()
            };
            let (t, v) = restore::diff(env, backup, &scope, opts.retry.clone(), progress).await?;
            let first = differences(&v, 5);
            let seen = difference_list(&v);
            // The same comparison earlier in the run: the target must not have moved since.
            if let Some(before) = run
                .items()
                .take_while(|(s, _)| *s < at.0)
                .map(|(_, i)| i)
                .filter(|i| matches!(&i.act, Act::Diff { backup: b, target: t } if b == backup && t == target))
                .filter_map(|i| i.facts.get("seen"))
                .last()
                && *before != seen
            {
                return Err(Error::Verification(format!(
                    "{} changed during the run: against backup {backup} it differed in {} {} earlier, now in {} ({})",
                    t.label(),
                    before.lines().count(),
                    t.items(),
                    v.differences,
                    first.join(", ")
                )));
            }
            Ok(Did::Done(
                format!(
                    "{} against backup {backup}: {} of {} {} differ{}",
                    t.label(),
                    v.differences,
                    v.checked,
                    t.items(),
                    if first.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", first.join(", "))
                    }
                ),
                facts(&[
                    ("differences", v.differences.to_string()),
                    ("checked", v.checked.to_string()),
                    ("seen", seen),
                ]),
            ))
        }
        Act::Check {
            target,
            probe,
            expect,
        } => {
            let got = match (probe, target.kind.as_str()) {
                (Probe::Sql(q), "d1") => probe::sql(env, &target.name, q).await?,
                (Probe::Key(k), "kv") => probe::key(env, &target.name, k).await?,
                (Probe::Object(o), "r2") => probe::object(env, &target.name, o, progress).await?,
                (p, kind) => {
                    return usage(format!(
                        "a {} check cannot look at {kind} target `{}`: sql is for d1, key for kv, object for r2",
                        match p {
                            Probe::Sql(_) => "sql",
                            Probe::Key(_) => "key",
                            Probe::Object(_) => "object",
                        },
                        target.name
                    ));
                }
            };
            if got != *expect {
                return Err(Error::Verification(format!(
                    "{} gave `{got}`, expected `{expect}`",
                    describe(act).split(", expect").next().unwrap_or_default()
                )));
            }
            Ok(Did::Done(
                format!("got `{got}` as expected"),
                facts(&[("got", got)]),
            ))
        }
        Act::Manual { text, checklist } => {
            match tokio::task::block_in_place(|| op.checklist(text, checklist)) {
                Answer::Given(who) => Ok(Did::Done(
                    format!("{} ticked by {who}", checklist.len()),
                    facts(&[("by", who)]),
                )),
                Answer::Unattended(why) => Ok(Did::Skipped(why)),
                Answer::Refused(why) => Ok(Did::Stop(why)),
            }
        }
        Act::Approve { role } => match tokio::task::block_in_place(|| op.approve(role)) {
            Answer::Given(who) => Ok(Did::Done(
                format!("approved by {who} ({role})"),
                facts(&[("by", who)]),
            )),
            Answer::Unattended(why) | Answer::Refused(why) => Ok(Did::Stop(why)),
        },
        Act::Notify { message, url } => {
            let Some(url) = url.as_ref().or(opts.notify.as_ref()) else {
                return Ok(Did::Skipped(
                    "no webhook: give the run --notify URL to post the team's messages".into(),
                ));
            };
            let text = format!("cfdr {} ({}): {message}", run.playbook, run.id);
            match notify::post(url, &text).await {
                Ok(()) => Ok(Did::Done("posted".into(), BTreeMap::new())),
                // A chat that is down does not stop a recovery; the record says so.
                Err(e) => Ok(Did::Skipped(e)),
            }
        }
        Act::Wait { secs, .. } => {
            let until = std::time::Instant::now() + std::time::Duration::from_secs(*secs);
            while std::time::Instant::now() < until {
                progress.check()?;
                tokio::time::sleep(
                    until
                        .saturating_duration_since(std::time::Instant::now())
                        .min(std::time::Duration::from_millis(250)),
                )
                .await;
            }
            Ok(Did::Done(
                format!(
                    "waited {}",
                    humantime::format_duration(std::time::Duration::from_secs(*secs))
                ),
                BTreeMap::new(),
            ))
        }
    }
}

/// The first `n` differences a comparison found, as `what key`.
fn differences(v: &restore::Verification, n: usize) -> Vec<String> {
    v.first
        .iter()
        .take(n)
        .map(|d| format!("{} {}", d.what, d.key))
        .collect()
}

/// A comparison's differences, one per line (the first 50 and the count of the rest), so two
/// comparisons of one target can be told apart.
fn difference_list(v: &restore::Verification) -> String {
    let mut lines = differences(v, usize::MAX);
    if v.differences > v.first.len() {
        lines.push(format!("and {} more", v.differences - v.first.len()));
    }
    lines.join("\n")
}

/// What a verification compares: the target, tables and prefix of the restore of the same
/// backup earlier in the run (a scratch target by the name it got), unless the step names
/// them; keys an overwrite restore left in place are no differences.
fn compared(
    run: &Run,
    at: (usize, usize),
    backup: &str,
    named: Option<String>,
    names_one: bool,
    tables: &[String],
    prefix: &Option<String>,
) -> restore::Scope {
    let earlier = restored(run, at, backup);
    let to = if names_one {
        named
    } else {
        earlier.and_then(|i| i.facts.get("target_id").cloned())
    };
    match earlier.map(|i| &i.act) {
        Some(Act::Restore {
            tables: t,
            prefix: p,
            mode,
            ..
        }) if tables.is_empty() && prefix.is_none() => restore::Scope {
            to,
            prefix: p.clone(),
            tables: t.clone(),
            extra_ok: mode != "clear",
            ..Default::default()
        },
        _ => restore::Scope {
            to,
            prefix: prefix.clone(),
            tables: tables.to_vec(),
            extra_ok: false,
            ..Default::default()
        },
    }
}

/// What a skip-mode restore of `backup` earlier in the run kept as the target had it (from
/// its plan): not differences when the run verifies that restore.
async fn kept(
    env: &Env<'_>,
    run: &Run,
    at: (usize, usize),
    backup: &str,
) -> Result<std::collections::BTreeSet<String>> {
    let Some(item) = restored(run, at, backup) else {
        return Ok(Default::default());
    };
    match (&item.act, item.facts.get("restore_run")) {
        (Act::Restore { mode, .. }, Some(id)) if mode == "skip" => Ok(restore::load(env.repo, id)
            .await?
            .plan
            .kept_keys
            .into_iter()
            .collect()),
        _ => Ok(Default::default()),
    }
}

/// The `to` of a restore or comparison: none for the backup's own target (found by id, then
/// name), a SQLite file's path, another target's name.
async fn to_of(env: &Env<'_>, target: Option<&Target>, own: &Target) -> Result<Option<String>> {
    match target {
        None => Ok(None),
        Some(t) if t == own => Ok(None),
        Some(t) => match what(env, t).await? {
            What::Sqlite { path, .. } => Ok(Some(path.display().to_string())),
            _ => Ok(Some(t.name.clone())),
        },
    }
}

/// The target backup `id` was taken of.
async fn own_target(env: &Env<'_>, id: &str) -> Result<Target> {
    let e = env.repo.entry(id).await?;
    Ok(Target {
        kind: e.kind,
        name: e.target,
    })
}

/// What a backup of `target` takes: a SQLite target is its file, as its backups recorded it.
async fn what(env: &Env<'_>, target: &Target) -> Result<What> {
    Ok(match target.kind.as_str() {
        "d1" => What::D1 {
            database: target.name.clone(),
            method: None,
        },
        "kv" => What::Kv {
            namespace: target.name.clone(),
        },
        "r2" => What::R2 {
            bucket: target.name.clone(),
        },
        _ => {
            let catalog = env.repo.catalog().await?;
            let e = catalog
                .entries
                .iter()
                .rev()
                .find(|e| e.kind == "sqlite" && e.target == target.name)
                .ok_or_else(|| {
                    Error::usage(format!(
                        "no backup of {} says where its file is; back it up once with `cfdr backup sqlite PATH --name {}`",
                        target.label(),
                        target.name
                    ))
                })?;
            What::Sqlite {
                path: e.target_id.clone().into(),
                name: Some(target.name.clone()),
            }
        }
    })
}

/// A restore item: a fresh plan and its run, or — when the journal holds the run it started —
/// that run resumed (or its report, when it finished), so nothing is written twice.
async fn restore_item(
    env: &Env<'_>,
    run: &mut Run,
    at: (usize, usize),
    act: &Act,
    opts: &Options,
    progress: &Progress,
) -> Result<Did> {
    let Act::Restore {
        backup,
        target,
        tables,
        prefix,
        mode,
        at: when,
        scratch,
    } = act
    else {
        return usage("not a restore");
    };
    let started = run.steps[at.0].items[at.1]
        .facts
        .get("restore_run")
        .cloned();
    let m = if backup.is_empty() {
        None
    } else {
        Some(env.repo.manifest(backup).await?)
    };
    let report = match started {
        Some(id) if restore::load(env.repo, &id).await.is_ok() => {
            match restore::report_of(env.repo, &id).await? {
                // It finished: a success is taken as it is; anything else is planned again
                // (a retry writes what still differs).
                Some(r) if r.outcome == restore::Outcome::Success => Some(r),
                Some(_) => None,
                None => Some(restore::resume(env, &id, opts.retry.clone(), progress).await?),
            }
        }
        _ => None,
    };
    let report = match report {
        Some(r) => r,
        None => {
            let req = match when {
                Some(t) => {
                    let name = target
                        .as_ref()
                        .map(|t| t.name.clone())
                        .or(m.as_ref().map(|m| m.target.name.clone()))
                        .unwrap_or_default();
                    let time = manifest::parse_time(t)
                        .ok_or_else(|| Error::usage(format!("`{t}` is not an RFC 3339 time")))?;
                    let point = restore::time_travel::locate(env, &name, Some(time), None).await?;
                    Request {
                        backup: point.exact.clone().unwrap_or_default(),
                        to: Some(point.database.id.clone()),
                        mode: Mode::Clear,
                        snapshot: true,
                        concurrency: 4,
                        kv_batch: crate::cloudflare::kv::MAX_BULK_ITEMS,
                        retry: opts.retry.clone(),
                        time_travel: Some(TimeTravel {
                            bookmark: point.bookmark.clone(),
                            at: point.at.clone(),
                        }),
                        pre_recovery: snapshot_of(
                            run,
                            at,
                            &Target {
                                kind: "d1".into(),
                                name: point.database.name.clone(),
                            },
                        ),
                        ..Default::default()
                    }
                }
                None => {
                    let Some(m) = &m else {
                        return usage("a restore step needs a backup");
                    };
                    let own = Target {
                        kind: m.kind.as_str().into(),
                        name: m.target.name.clone(),
                    };
                    let to = if *scratch {
                        let name = restore::scratch::name(m.kind.as_str(), &m.target.name, &run.id);
                        record(env, run, "scratch", &name).await?;
                        Some(name)
                    } else {
                        to_of(env, target.as_ref(), &own).await?
                    };
                    let into = target.clone().unwrap_or(own);
                    Request {
                        backup: backup.clone(),
                        to,
                        prefix: prefix.clone(),
                        tables: tables.clone(),
                        mode: Mode::parse(mode).unwrap_or_default(),
                        snapshot: true,
                        concurrency: 4,
                        kv_batch: crate::cloudflare::kv::MAX_BULK_ITEMS,
                        retry: opts.retry.clone(),
                        pre_recovery: if *scratch {
                            None
                        } else {
                            snapshot_of(run, at, &into)
                        },
                        ..Default::default()
                    }
                }
            };
            let planned = restore::plan(env, &req, progress).await?;
            record(env, run, "restore_run", &planned.plan.run).await?;
            restore::apply(env, planned, opts.retry.clone(), progress).await?
        }
    };
    record(
        env,
        run,
        "outcome",
        &format!("{:?}", report.outcome).to_lowercase(),
    )
    .await?;
    let mut f = facts(&[
        ("restore_run", report.run.clone()),
        ("target", report.target.name.clone()),
        ("target_id", report.target.id.clone()),
    ]);
    if let Some(s) = &report.snapshot {
        f.insert("snapshot".into(), s.clone());
    }
    let point = match (&m, when) {
        (_, Some(t)) => manifest::parse_time(t),
        (Some(m), None) => manifest::parse_time(&m.started),
        (None, None) => None,
    };
    if let Some(p) = point {
        f.insert(
            "consistency_ms".into(),
            ((p.unix_timestamp_nanos() / 1_000_000) as i64).to_string(),
        );
    }
    let line = format!(
        "restore run {}: {} {} created, {} overwritten, {} deleted, {} unchanged; verified {} {}, {} differences{}",
        report.run,
        report.created,
        report.target.items(),
        report.overwritten,
        report.deleted,
        report.unchanged,
        report.verification.checked,
        report.target.items(),
        report.verification.differences,
        report
            .snapshot
            .as_ref()
            .map(|s| format!("; undo point {s} (cfdr restore --undo {})", report.run))
            .unwrap_or_default()
    );
    if report.outcome != restore::Outcome::Success {
        return Err(Error::Verification(format!(
            "{line}; {} not written: {}",
            report.failed.len(),
            report
                .failed
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(Did::Done(line, f))
}

/// Removes every scratch target the run created, whatever happened to the run; what could not
/// be removed is said (and kept in the run's notes), not a reason to lose the report.
async fn cleanup(env: &Env<'_>, run: &mut Run, op: &dyn Operator, progress: &Progress) {
    let mut scratch = Vec::new();
    for (_, i) in run.items() {
        if let (Act::Restore { backup, .. }, Some(name)) = (&i.act, i.facts.get("scratch")) {
            scratch.push((backup.clone(), name.clone()));
        }
    }
    for (backup, name) in scratch {
        let removed = async {
            let kind = env.repo.entry(&backup).await?.kind;
            let gone = restore::scratch::remove(env, &kind, &name, progress).await?;
            Ok::<_, Error>((kind, gone))
        }
        .await;
        let line = match removed {
            Ok((kind, true)) => format!("scratch {kind} `{name}` removed"),
            Ok((kind, false)) => format!("scratch {kind} `{name}` was never created"),
            Err(e) => format!("scratch target `{name}` NOT removed: {e}; remove it by hand"),
        };
        op.tell(&line);
        run.notes.push(line);
    }
}

/// A dry run: every item and what it would do, each restore's plan made (reads only). Writes
/// nothing anywhere — no journal, no lock, no verification record.
pub async fn preview(env: &Env<'_>, run: &Run, progress: &Progress) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let total = run.steps.len();
    for (n, s) in run.steps.iter().enumerate() {
        for (k, i) in s.items.iter().enumerate() {
            let which = if s.items.len() > 1 {
                format!(" ({} of {})", k + 1, s.items.len())
            } else {
                String::new()
            };
            out.push(format!(
                "step {}/{total} {}{which}: {} — would {}",
                n + 1,
                s.kind,
                s.title,
                describe(&i.act)
            ));
            if let Act::Restore {
                backup,
                target,
                tables,
                prefix,
                mode,
                at: None,
                scratch: false,
            } = &i.act
            {
                let to = to_of(env, target.as_ref(), &own_target(env, backup).await?).await?;
                let req = Request {
                    backup: backup.clone(),
                    to,
                    prefix: prefix.clone(),
                    tables: tables.clone(),
                    mode: Mode::parse(mode).unwrap_or_default(),
                    snapshot: true,
                    dry_run: true,
                    concurrency: 4,
                    kv_batch: crate::cloudflare::kv::MAX_BULK_ITEMS,
                    ..Default::default()
                };
                let p = restore::plan(env, &req, progress).await?.plan;
                let c = &p.counts;
                out.push(format!(
                    "  plan: into {}: {} {} to add, {} to change, {} to delete, {} unchanged; {} requests",
                    p.target.label(),
                    p.target.items(),
                    c.added,
                    c.changed,
                    c.removed,
                    c.unchanged,
                    p.requests.total
                ));
            }
            if let Act::Rollback { .. } = &i.act {
                out.extend(super::worker::preview(env, &i.act).await?);
            }
        }
    }
    Ok(out)
}
