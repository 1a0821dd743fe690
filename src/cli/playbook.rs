//! `cfdr playbook list|show <id>|check [FILE…]`: the playbooks as the operator reads them,
//! and their loading errors with file, line and column (running one is `playbook_run`). The
//! model is `playbook::`.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::cli::exit::{Exit, Failure};
use crate::playbook::library::{self, Entry, Library};
use crate::playbook::model::{self, Action, Playbook, Probe};

use super::context::print_json;

#[derive(Debug, clap::Subcommand)]
pub enum PlaybookCommand {
    /// The playbooks, built in and your own, with when to use each and their RTO/RPO targets.
    List {
        #[arg(long)]
        json: bool,
    },
    /// A playbook's parameters and steps.
    Show {
        /// Its id, as `cfdr playbook list` shows it.
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Check playbook files without running anything (default: every playbook cfdr loads):
    /// each mistake with its file, line and column.
    Check { files: Vec<PathBuf> },
    /// Run a playbook: its steps in order, journaled, timed and reported.
    Run(super::playbook_run::RunArgs),
    /// Go on with a run that crashed or stopped, from its journal: nothing done is done again.
    Resume {
        run: String,
        #[command(flatten)]
        answers: super::playbook_run::Answers,
    },
    /// Run a failed run again from the step that failed.
    Retry {
        run: String,
        #[command(flatten)]
        answers: super::playbook_run::Answers,
    },
    /// The playbook runs in the repository and where each stands.
    Runs {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        repo: super::context::RepoArgs,
    },
}

/// The library: the built-ins and the operator's directory.
pub(super) fn library() -> Library {
    library::in_use()
}

/// Prints the loading errors; an error (exit 2) when there are any.
fn report(errors: &[model::LoadError]) -> anyhow::Result<()> {
    for e in errors {
        eprintln!("cfdr: {e}");
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(
            Exit::Usage,
            format!(
                "{} mistake{} in playbook files; fix each where it is named",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            ),
        )
        .into())
    }
}

pub async fn run(cmd: PlaybookCommand) -> anyhow::Result<()> {
    match cmd {
        PlaybookCommand::Run(args) => super::playbook_run::run(args).await,
        PlaybookCommand::Resume { run, answers } => {
            super::playbook_run::again(&run, false, &answers).await
        }
        PlaybookCommand::Retry { run, answers } => {
            super::playbook_run::again(&run, true, &answers).await
        }
        PlaybookCommand::Runs { json, repo } => super::playbook_run::list(&repo, json).await,
        PlaybookCommand::List { json } => {
            let lib = library();
            if json {
                let all: Vec<Value> = lib.playbooks.iter().map(summary_json).collect();
                print_json(&json!({ "playbooks": all, "errors": errors_json(&lib.errors) }))?;
            } else {
                for e in &lib.playbooks {
                    let p = &e.playbook;
                    println!(
                        "{:<20} {}  (RTO {}, RPO {}, {} steps; {})",
                        p.id,
                        p.title,
                        humantime::format_duration(p.rto),
                        humantime::format_duration(p.rpo),
                        p.steps.len(),
                        e.origin
                    );
                    println!("{:<20} {}", "", first_line(&p.when));
                }
            }
            report(&lib.errors)
        }
        PlaybookCommand::Show { id, json } => {
            let lib = library();
            let Some(e) = lib.get(&id) else {
                report(&lib.errors).ok();
                return Err(Failure::usage(format!(
                    "no playbook `{id}`; the playbooks are {} (cfdr playbook list)",
                    lib.ids()
                ))
                .into());
            };
            if json {
                print_json(&detail_json(e))?;
            } else {
                print!("{}", render(e));
            }
            Ok(())
        }
        PlaybookCommand::Check { files } => {
            if files.is_empty() {
                let lib = library();
                println!("{} playbooks load", lib.playbooks.len());
                return report(&lib.errors);
            }
            let mut errors = Vec::new();
            for f in &files {
                let name = f.display().to_string();
                match std::fs::read_to_string(f) {
                    Ok(text) => match model::parse(&text, &name) {
                        Ok(p) => {
                            println!("{name}: playbook `{}`, {} steps: good", p.id, p.steps.len())
                        }
                        Err(e) => errors.extend(e),
                    },
                    Err(e) => {
                        return Err(Failure::usage(format!(
                            "cannot read playbook file {name}: {e}"
                        ))
                        .into());
                    }
                }
            }
            report(&errors)
        }
    }
}

fn first_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn errors_json(errors: &[model::LoadError]) -> Vec<Value> {
    errors
        .iter()
        .map(
            |e| json!({ "file": e.file, "line": e.line, "column": e.column, "message": e.message }),
        )
        .collect()
}

fn summary_json(e: &Entry) -> Value {
    let p = &e.playbook;
    json!({
        "id": p.id,
        "title": p.title,
        "when": first_line(&p.when),
        "rto_secs": p.rto.as_secs(),
        "rpo_secs": p.rpo.as_secs(),
        "steps": p.steps.len(),
        "origin": e.origin.to_string(),
    })
}

fn detail_json(e: &Entry) -> Value {
    let p = &e.playbook;
    let mut v = summary_json(e);
    v["params"] = p
        .params
        .iter()
        .map(|q| {
            json!({
                "name": q.name, "kind": q.kind.name(), "help": q.help, "component": q.component,
                "of": q.of, "default": q.default, "required": q.required(),
            })
        })
        .collect();
    v["steps"] = p
        .steps
        .iter()
        .map(|s| json!({ "kind": s.action.kind(), "title": s.title, "does": does(&s.action) }))
        .collect();
    v
}

/// What a step does, in a line.
fn does(a: &Action) -> String {
    match a {
        Action::Validate { backup, full } => format!(
            "checks backup {backup}: manifest MAC and key{}",
            if *full {
                ", every chunk decrypted and hashed"
            } else {
                ""
            }
        ),
        Action::Snapshot { target } => {
            format!("backs up {target} as it is now (D1: and its Time Travel bookmark)")
        }
        Action::Confirm { target } => format!("the operator types the name of {target}"),
        Action::Restore {
            backup,
            target,
            tables,
            prefix,
            mode,
            at,
            scratch,
        } => {
            let mut s = match at {
                Some(at) => format!(
                    "puts {} back to {at} through Time Travel",
                    target
                        .as_ref()
                        .map_or(backup.to_string(), |t| t.to_string())
                ),
                None => format!("restores {backup}"),
            };
            if *scratch {
                s.push_str(" into a scratch target, removed at the end");
            } else if let (Some(t), None) = (target, at) {
                s.push_str(&format!(" into {t}"));
            }
            for (k, v) in [("tables", tables), ("prefix", prefix)] {
                if let Some(v) = v {
                    s.push_str(&format!(", {k} {v}"));
                }
            }
            if let Some(m) = mode {
                s.push_str(&format!(", mode {m}"));
            }
            s
        }
        Action::Verify { backup, target } => format!(
            "reads {} back and compares it with {backup}",
            target
                .as_ref()
                .map_or("the restored target".to_string(), |t| t.to_string())
        ),
        Action::Diff { backup, target } => format!(
            "lists how {} differs from {backup}",
            target
                .as_ref()
                .map_or("the live target".to_string(), |t| t.to_string())
        ),
        Action::Check {
            target,
            probe,
            expect,
        } => match probe {
            Probe::Sql(q) => format!("runs `{q}` on {target}, expects `{expect}`"),
            Probe::Key(k) => format!("reads key `{k}` of {target}, expects `{expect}`"),
            Probe::Object(o) => format!("looks for object `{o}` in {target}, expects `{expect}`"),
        },
        Action::Manual { text, checklist } => {
            if checklist.is_empty() {
                text.to_string()
            } else {
                format!("{text}: {}", checklist.join("; "))
            }
        }
        Action::Approve { role } => format!("a second person, the {role}, gives their name"),
        Action::Notify { message, url } => format!(
            "posts \"{message}\" to {}",
            url.as_ref()
                .map_or("the notify webhook".to_string(), |u| u.to_string())
        ),
        Action::Wait { time, reason } => match reason {
            Some(r) => format!("waits {} ({r})", humantime::format_duration(*time)),
            None => format!("waits {}", humantime::format_duration(*time)),
        },
        Action::Rollback {
            worker, to, steps, ..
        } => format!(
            "puts Worker {worker} back on {} (planned, preflighted, deployed, read back, probed){}",
            to.as_ref()
                .map_or("its automatic target".into(), |t| format!(
                    "version {t} (its automatic target when empty)"
                )),
            steps
                .as_ref()
                .map(|s| format!(", in stages {s} when given"))
                .unwrap_or_default()
        ),
    }
}

/// The playbook as `show` prints it.
pub fn render(e: &Entry) -> String {
    let p: &Playbook = &e.playbook;
    let mut out = format!(
        "{} — {}\n{}\n\nWhen: {}\nTargets: RTO {}, RPO {}\n",
        p.id,
        p.title,
        e.origin,
        first_line(&p.when),
        humantime::format_duration(p.rto),
        humantime::format_duration(p.rpo)
    );
    if !p.params.is_empty() {
        out.push_str("\nParameters (--param name=value):\n");
        for q in &p.params {
            let kind = match (&q.component, &q.of) {
                (Some(c), _) => format!("{} ({c})", q.kind.name()),
                (_, Some(o)) => format!("{} of {o}", q.kind.name()),
                _ => q.kind.name().to_string(),
            };
            let need = match &q.default {
                None => "required".to_string(),
                Some(d) if d.is_empty() => "optional".to_string(),
                Some(d) => format!("default {d}"),
            };
            out.push_str(&format!(
                "  {:<12} {kind:<18} {need:<18} {}\n",
                q.name, q.help
            ));
        }
    }
    out.push_str("\nSteps:\n");
    for (i, s) in p.steps.iter().enumerate() {
        out.push_str(&format!(
            "  {:>2}. {:<9} {}\n      {}\n",
            i + 1,
            s.action.kind(),
            s.title,
            does(&s.action)
        ));
    }
    out
}
