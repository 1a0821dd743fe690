//! `cfdr import <format> <source> [--target NAME] [--dry-run] [--json]`: a team's existing
//! backups (KV backup files, SQL dumps, SQLite snapshots) from a folder or an R2 prefix into
//! the repository (`ops::import`); exit 1 when a file was refused.

use crate::cli::exit::{Exit, Failure};
use crate::config::Config;
use crate::ops::backup::Env;
use crate::ops::import::{self, Format, Outcome};

use super::context::{self, RepoArgs, print_json};

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// kv-json (a KV backup file: namespaces with their entries), d1-sql (SQL dumps of D1
    /// databases) or sqlite-snapshot (SQLite files with a metadata.json beside each).
    #[arg(value_parser = Format::NAMES)]
    format: String,
    /// A file, a folder (read recursively), or r2://bucket/prefix (through R2's S3 endpoint:
    /// R2_ENDPOINT and R2 keys).
    source: String,
    /// Name the target so, instead of the name the files give (D1: the file name less its
    /// timestamp; SQLite: the file name; KV: each namespace's own).
    #[arg(long, value_name = "NAME")]
    target: Option<String>,
    /// List what would be imported and what is refused, with why; store nothing.
    #[arg(long)]
    dry_run: bool,
    /// The report as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    repo: RepoArgs,
}

pub async fn run(args: ImportArgs) -> anyhow::Result<()> {
    let config = Config::load().map_err(|e| Failure::usage(e.to_string()))?;
    let repo = context::open(&args.repo).await?;
    let env = Env {
        repo: &repo,
        config: &config,
        client: None,
    };
    let req = import::Request {
        format: Format::parse(&args.format).expect("clap checked it"),
        source: args.source.clone(),
        target: args.target.clone(),
        dry_run: args.dry_run,
    };
    let progress = crate::progress::Progress::new("import", super::progress::sink(args.json));
    let report = import::run(&env, &req, &progress).await?;
    if args.json {
        print_json(&report)?;
    } else {
        for i in &report.items {
            let what = format!(
                "{} `{}`{}",
                i.kind,
                i.target.as_deref().unwrap_or("?"),
                i.at.as_deref()
                    .map(|a| format!(" of {a}"))
                    .unwrap_or_default()
            );
            let line = match &i.outcome {
                Outcome::Imported { backup } => format!("imported  {what} as {backup}"),
                Outcome::Already { backup } => {
                    format!("already   {what}: imported before as {backup}")
                }
                Outcome::WouldImport => format!("would import {what}"),
                Outcome::Refused { reason } => format!("REFUSED   it {reason}"),
            };
            println!("{line}\n          from {}", i.location);
            for w in &i.warnings {
                println!("          warning: {w}");
            }
        }
        let n = |f: fn(&Outcome) -> bool| report.count(f);
        println!(
            "{} imported, {} already there, {} to import, {} refused{}",
            n(|o| matches!(o, Outcome::Imported { .. })),
            n(|o| matches!(o, Outcome::Already { .. })),
            n(|o| matches!(o, Outcome::WouldImport)),
            report.refused(),
            if args.dry_run {
                " (a dry run: nothing was stored)"
            } else {
                ""
            }
        );
    }
    if report.refused() > 0 {
        return Err(Failure::new(
            Exit::Verification,
            format!(
                "{} refused (nothing of them stored): fix or remove those files, or import the others by naming them",
                report.refused()
            ),
        )
        .into());
    }
    Ok(())
}
