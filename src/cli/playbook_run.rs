//! `cfdr playbook run <id> [--param k=v]… [--dry-run] [--yes]`, `resume <run-id>`,
//! `retry <run-id>` and `runs`: a playbook run on the command line. The operator answers on
//! the terminal (typed confirmations, checklists, approvals) or, with `--yes`, the run goes
//! unattended; the work is `playbook::execute`, the same runner the console drives.

use std::collections::BTreeMap;
use std::io::{BufRead as _, IsTerminal as _, Write as _};

use time::OffsetDateTime;

use crate::cli::exit::{Exit, Failure};
use crate::playbook::execute::{self, Answer, Ended, Operator, Options};
use crate::playbook::report;
use crate::playbook::runner::{Outcome, Run, Status, Target};
use crate::progress::Progress;

use super::context::{RepoArgs, print_json};
use super::restore::{Account, Net, Session};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The playbook's id (cfdr playbook list).
    pub id: String,
    /// A parameter's value, `name=value` (cfdr playbook show <id> lists them).
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// Walk every step and print what it would do: nothing is written anywhere.
    #[arg(long)]
    pub dry_run: bool,
    /// When the incident began (RFC 3339, or `90m` ago): RTO and RPO are measured from it.
    #[arg(long, value_name = "TIME", value_parser = super::d1::parse_at)]
    pub incident_at: Option<OffsetDateTime>,
    #[command(flatten)]
    pub answers: Answers,
}

#[derive(Debug, Clone, clap::Args)]
pub struct Answers {
    /// Run unattended: typed confirmations are given, checklists are skipped (and say so).
    #[arg(long)]
    pub yes: bool,
    /// The second person's name for `approve` steps (asked on a terminal otherwise).
    #[arg(long, value_name = "NAME")]
    pub approver: Option<String>,
    /// The webhook (Discord or Slack) `notify` steps post to when they name none.
    #[arg(long, value_name = "URL")]
    pub notify: Option<String>,
    /// The report (and progress on stderr) as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub(super) net: Net,
    #[command(flatten)]
    pub(super) account: Account,
    #[command(flatten)]
    pub repo: RepoArgs,
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!(
            "`{s}` is not NAME=VALUE, e.g. --param database=shop"
        )),
    }
}

/// The operator at a terminal, or nobody (`--yes`).
struct Terminal {
    yes: bool,
    approver: Option<String>,
    json: bool,
}

impl Terminal {
    fn interactive(&self) -> bool {
        !self.yes && std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
    }

    fn ask(&self, prompt: &str) -> String {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        line.trim_end_matches(['\r', '\n']).to_string()
    }
}

impl Operator for Terminal {
    fn tell(&self, line: &str) {
        if self.json {
            let v = serde_json::json!({ "event": "step", "message": line });
            eprintln!("{v}");
        } else {
            eprintln!("{line}");
        }
    }

    fn confirm(&self, target: &Target) -> Answer {
        if self.yes {
            return Answer::Given(format!("--yes by {}", crate::repo::lease::who()));
        }
        if !self.interactive() {
            return Answer::Refused(format!(
                "this run writes to {}; nobody can type the confirmation here: resume it with --yes",
                target.label()
            ));
        }
        if self.ask(&format!(
            "type `{}` to let the run write to it (anything else stops): ",
            target.name
        )) == target.name
        {
            Answer::Given(format!("typed by {}", crate::repo::lease::who()))
        } else {
            Answer::Refused(format!(
                "the confirmation did not match `{}`; nothing was written",
                target.name
            ))
        }
    }

    fn checklist(&self, text: &str, items: &[String]) -> Answer {
        if !self.interactive() {
            return Answer::Unattended(format!(
                "unattended run: nobody ticked \"{text}\" — check by hand: {}",
                items.join("; ")
            ));
        }
        eprintln!("{text}");
        for item in items {
            let a = self.ask(&format!("  [ ] {item} — done? [y/N] "));
            if !a.eq_ignore_ascii_case("y") && !a.eq_ignore_ascii_case("yes") {
                return Answer::Refused(format!("not ticked: {item}; resume the run when it is"));
            }
        }
        Answer::Given(crate::repo::lease::who())
    }

    fn approve(&self, role: &str) -> Answer {
        if let Some(a) = &self.approver {
            return Answer::Given(a.clone());
        }
        if !self.interactive() {
            return Answer::Refused(format!(
                "the {role}'s approval needs their name: resume with --approver NAME"
            ));
        }
        let name = self.ask(&format!("the {role}'s name, approving (empty stops): "));
        if name.trim().is_empty() {
            Answer::Refused(format!("the {role} did not approve"))
        } else {
            Answer::Given(name.trim().to_string())
        }
    }
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let lib = super::playbook::library();
    let Some(entry) = lib.get(&args.id) else {
        return Err(Failure::usage(format!(
            "no playbook `{}`; the playbooks are {} (cfdr playbook list)",
            args.id,
            lib.ids()
        ))
        .into());
    };
    let mut given = BTreeMap::new();
    for (k, v) in &args.params {
        if given.insert(k.clone(), v.clone()).is_some() {
            return Err(Failure::usage(format!("--param {k} is given twice; give it once")).into());
        }
    }
    let a = &args.answers;
    let session = Session::open(&a.repo, &a.net, &a.account, None).await?;
    let env = session.env();
    let progress = Progress::new("playbook", super::progress::sink(a.json));
    let mut run = execute::bind(
        &env,
        &entry.playbook,
        &given,
        args.incident_at,
        OffsetDateTime::now_utc(),
    )
    .await?;
    if args.dry_run {
        let lines = execute::preview(&env, &run, &progress).await?;
        if a.json {
            print_json(&serde_json::json!({ "dry_run": true, "run": run, "would": lines }))?;
        } else {
            println!("playbook {} (dry run): {}", run.playbook, run.title);
            for l in lines {
                println!("{l}");
            }
            println!("dry run: nothing was written");
        }
        return Ok(());
    }
    eprintln!(
        "playbook run {}: {} — {} steps; resume with `cfdr playbook resume {}` if it stops",
        run.id,
        run.playbook,
        run.steps.len(),
        run.id
    );
    drive(&env, &mut run, a, &progress).await
}

/// `resume` (a run that crashed or stopped) and `retry` (a run that failed, from the failed
/// item).
pub async fn again(id: &str, retry: bool, a: &Answers) -> anyhow::Result<()> {
    let session = Session::open(&a.repo, &a.net, &a.account, None).await?;
    let env = session.env();
    let progress = Progress::new("playbook", super::progress::sink(a.json));
    let mut run = execute::load(&env, id).await?;
    match (run.status, retry) {
        (Status::Done, _) => {
            return finish(&env, &run, a.json).await;
        }
        (Status::Failed, false) => {
            return Err(Failure::usage(format!(
                "playbook run `{id}` failed; `cfdr playbook retry {id}` runs it again from the failed step"
            ))
            .into());
        }
        (Status::Running | Status::Stopped, true) => {
            return Err(Failure::usage(format!(
                "playbook run `{id}` did not fail, it stopped; `cfdr playbook resume {id}` goes on from where it was"
            ))
            .into());
        }
        _ => {}
    }
    eprintln!(
        "playbook run {}: {} — {} from step {}",
        run.id,
        run.playbook,
        if retry { "retrying" } else { "resuming" },
        run.cursor().map_or(0, |(s, _)| s + 1)
    );
    drive(&env, &mut run, a, &progress).await
}

pub(super) async fn drive(
    env: &crate::ops::backup::Env<'_>,
    run: &mut Run,
    a: &Answers,
    progress: &Progress,
) -> anyhow::Result<()> {
    let op = Terminal {
        yes: a.yes,
        approver: a.approver.clone(),
        json: a.json,
    };
    let opts = Options {
        notify: a.notify.clone(),
        retry: a.net.retry(),
    };
    match execute::drive(env, run, &op, &opts, progress).await? {
        Ended::Finished(_) => finish(env, run, a.json).await,
        Ended::Stopped(why) => Err(Failure::usage(format!(
            "playbook run {} stopped at step {}: {why}; `cfdr playbook resume {}` goes on from there",
            run.id,
            run.cursor().map_or(0, |(s, _)| s + 1),
            run.id
        ))
        .into()),
    }
}

/// Prints the run's report (a drill's: its drill report, MACs checked) and exits by outcome.
async fn finish(env: &crate::ops::backup::Env<'_>, run: &Run, json: bool) -> anyhow::Result<()> {
    if run.playbook == "drill" {
        let (r, md) = env.repo.drill(&run.id).await?;
        if json {
            print_json(&serde_json::json!({ "drill": r, "report": report::json(run) }))?;
        } else {
            print!("{md}");
        }
    } else if json {
        print_json(&report::json(run))?;
    } else {
        print!("{}", report::markdown(run));
    }
    match run.outcome() {
        Outcome::Success => Ok(()),
        o => Err(Failure::new(
            Exit::Verification,
            format!(
                "playbook run {} is {}; fix the cause, then `cfdr playbook retry {}` starts again at the failed step",
                run.id,
                report::outcome_word(o),
                run.id
            ),
        )
        .into()),
    }
}

/// `cfdr playbook runs`: every playbook run, where it stands.
pub async fn list(repo: &RepoArgs, json: bool) -> anyhow::Result<()> {
    let config = crate::config::Config::load().map_err(|e| Failure::usage(e.to_string()))?;
    let repo = super::context::open(repo).await?;
    let env = crate::ops::backup::Env {
        repo: &repo,
        config: &config,
        client: None,
    };
    let runs = execute::runs(&env).await?;
    if json {
        let all: Vec<serde_json::Value> = runs
            .iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.id, "playbook": r.playbook, "status": r.status,
                    "outcome": (r.status == Status::Done || r.status == Status::Failed).then(|| r.outcome()),
                    "step": r.cursor().map(|(s, _)| s + 1), "steps": r.steps.len(), "by": r.by,
                })
            })
            .collect();
        return print_json(&serde_json::json!({ "runs": all }));
    }
    for r in &runs {
        let place = match r.status {
            Status::Done => report::outcome_word(r.outcome()).to_string(),
            Status::Failed => format!(
                "{} at step {} (cfdr playbook retry {})",
                report::outcome_word(r.outcome()),
                r.steps
                    .iter()
                    .position(|s| s.state() == crate::playbook::runner::State::Failed)
                    .map_or(0, |s| s + 1),
                r.id
            ),
            Status::Running | Status::Stopped => format!(
                "stopped at step {} of {} (cfdr playbook resume {})",
                r.cursor().map_or(0, |(s, _)| s + 1),
                r.steps.len(),
                r.id
            ),
        };
        println!("{}  {:<18} {}  {}", r.id, r.playbook, r.by, place);
    }
    Ok(())
}
