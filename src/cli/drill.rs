//! `cfdr drill …` and `cfdr drills list|show <id>`: a drill on the command line and its
//! reports. The drill itself is `playbook::drill`, run by the same runner as every playbook.

use std::io::IsTerminal as _;

use time::OffsetDateTime;

use crate::cli::exit::Failure;
use crate::playbook::drill::{self, Pick, Scenario};
use crate::progress::Progress;

use super::context::{self, RepoArgs, print_json};
use super::playbook_run::Answers;
use super::restore::Session;

#[derive(Debug, clap::Args)]
pub struct DrillArgs {
    /// The kinds of storage to drill (their backed-up targets, the newest backup of each).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "d1,kv,r2",
        value_name = "C,…"
    )]
    components: Vec<String>,
    /// full, partial (--tables / --prefix), point-in-time (--at), cross-account (--profile) or
    /// validation (verify the backups, restore nothing).
    #[arg(long, default_value = "full", value_parser = Scenario::NAMES)]
    scenario: String,
    /// latest, or random-within:30d (one at random among the backups of the last 30 days).
    #[arg(long, default_value = "latest", value_parser = parse_pick)]
    pick: String,
    /// Point in time: the newest backup at or before this (RFC 3339, or `7d` ago).
    #[arg(long, value_name = "TIME", value_parser = super::d1::parse_at)]
    at: Option<OffsetDateTime>,
    /// Partial: only these D1 tables.
    #[arg(long, value_delimiter = ',', value_name = "T,…")]
    tables: Vec<String>,
    /// Partial: only KV keys and R2 objects under this prefix.
    #[arg(long)]
    prefix: Option<String>,
    /// Who runs the drill (the report's tester; default user@host).
    #[arg(long, value_name = "NAME")]
    tester: Option<String>,
    /// Print what the drill would restore and stop.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    answers: Answers,
}

fn parse_pick(s: &str) -> Result<String, String> {
    Pick::parse(s).map(|_| s.to_string()).ok_or_else(|| {
        format!("`{s}` is not latest or random-within:<duration> (e.g. random-within:30d)")
    })
}

#[derive(Debug, clap::Subcommand)]
pub enum DrillsCommand {
    /// Every drill in the repository: when, scenario, outcome, RTO and RPO.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        repo: RepoArgs,
    },
    /// One drill's report (its MACs checked: an edited report is refused).
    Show {
        id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        repo: RepoArgs,
    },
}

pub async fn run(args: DrillArgs) -> anyhow::Result<()> {
    let a = &args.answers;
    let session = Session::open(&a.repo, &a.net, &a.account, None).await?;
    let env = session.env();
    let req = drill::Request {
        components: args
            .components
            .iter()
            .map(|c| c.trim().to_string())
            .collect(),
        scenario: Scenario::parse(&args.scenario).unwrap_or(Scenario::Full),
        pick: Pick::parse(&args.pick).unwrap_or(Pick::Latest),
        at: args.at,
        tables: args.tables.clone(),
        prefix: args.prefix.clone().filter(|p| !p.is_empty()),
        tester: args.tester.clone(),
    };
    let mut run = drill::plan(&env, &req, OffsetDateTime::now_utc()).await?;
    eprintln!(
        "drill {}: {} — {} backups, each into a scratch target created for the drill and removed at its end:",
        run.id,
        run.title,
        run.subjects.len()
    );
    for s in &run.subjects {
        eprintln!("  {} from backup {}", s.target.label(), s.backup);
    }
    if args.dry_run {
        if a.json {
            print_json(&serde_json::json!({ "dry_run": true, "run": run }))?;
        } else {
            println!("dry run: nothing was written");
        }
        return Ok(());
    }
    if !a.yes {
        if !std::io::stdin().is_terminal() {
            return Err(Failure::usage(
                "a drill creates scratch targets in the account; run it with --yes (or --dry-run to see what it takes)",
            )
            .into());
        }
        eprint!("type `drill` to go ahead: ");
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        if line.trim() != "drill" {
            return Err(Failure::usage("not confirmed; nothing was written").into());
        }
    }
    let progress = Progress::new("drill", super::progress::sink(a.json));
    super::playbook_run::drive(&env, &mut run, a, &progress).await
}

pub async fn drills(cmd: DrillsCommand) -> anyhow::Result<()> {
    match cmd {
        DrillsCommand::List { json, repo } => {
            let repo = context::open(&repo).await?;
            let mut all = Vec::new();
            for id in repo.drills().await? {
                all.push(match repo.drill(&id).await {
                    Ok((r, _)) => r,
                    Err(e) => serde_json::json!({ "id": id, "outcome": "unreadable", "error": e.to_string() }),
                });
            }
            if json {
                return print_json(&serde_json::json!({ "drills": all }));
            }
            for d in &all {
                let m = &d["measures"];
                let secs = |v: &serde_json::Value| {
                    v.as_f64().map_or("-".to_string(), |s| format!("{s:.1}s"))
                };
                println!(
                    "{}  {:<13} {:<9} {:<10} RTO {} RPO {}  {} issues",
                    d["id"].as_str().unwrap_or_default(),
                    d["scenario"].as_str().unwrap_or_default(),
                    d["outcome"].as_str().unwrap_or_default(),
                    d["components"].as_str().unwrap_or_default(),
                    secs(&m["rto_secs"]),
                    secs(&m["rpo_secs"]),
                    d["issues"].as_array().map_or(0, Vec::len)
                );
            }
            if all.is_empty() {
                println!("no drills yet: `cfdr drill --yes` runs one");
            }
            Ok(())
        }
        DrillsCommand::Show { id, json, repo } => {
            let repo = context::open(&repo).await?;
            let (r, md) = repo.drill(&id).await?;
            if json {
                print_json(&r)
            } else {
                print!("{md}");
                Ok(())
            }
        }
    }
}
