//! `cfdr workers list | versions <script> | deployments <script> [--json]`: what is live on
//! each Worker, what it could go back to, and how it got here (`ops::workers`). Read-only.

use crate::cli::exit::Failure;
use crate::config::Config;
use crate::ops::workers;
use crate::text::age;

use super::context::{self, print_json};

#[derive(Debug, clap::Subcommand)]
pub enum WorkersCommand {
    /// Every Worker with what is live: the versions and shares of its newest deployment.
    List {
        #[arg(long)]
        json: bool,
    },
    /// A Worker's deployable versions (the newest 100), newest first, the live ones marked.
    Versions {
        script: String,
        #[arg(long)]
        json: bool,
    },
    /// A Worker's recent deployments (about the newest 10), newest (live) first.
    Deployments {
        script: String,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cmd: WorkersCommand) -> anyhow::Result<()> {
    let config = Config::load().map_err(|e| Failure::usage(e.to_string()))?;
    let client = match (&config.api_token, &config.account_id) {
        (Some(_), Some(_)) => Some(context::cloudflare_with(
            &config,
            4,
            crate::cloudflare::RetryPolicy::default(),
        )?),
        _ => None,
    };
    let now = time::OffsetDateTime::now_utc();
    let ago = |t: &Option<String>| t.as_deref().map_or("-".to_string(), |t| age(t, now));
    let text = |t: &Option<String>| t.clone().unwrap_or_default();
    match cmd {
        WorkersCommand::List { json } => {
            let rows = workers::list(client.as_ref()).await?;
            if json {
                return print_json(&rows);
            }
            println!(
                "{:<24} {:<26} {:>6}  {:<11} MESSAGE",
                "WORKER", "LIVE", "AGE", "BY"
            );
            for r in &rows {
                println!(
                    "{:<24} {:<26} {:>6}  {:<11} {}",
                    r.name,
                    workers::split(&r.live),
                    ago(&r.deployed_on),
                    text(&r.triggered_by),
                    text(&r.message)
                );
            }
            println!("{} workers", rows.len());
        }
        WorkersCommand::Versions { script, json } => {
            let rows = workers::versions(client.as_ref(), &script).await?;
            if json {
                return print_json(&rows);
            }
            println!(
                "{:>5} {:<36} {:>6} {:<14} {:<9} MESSAGE",
                "NO", "ID", "AGE", "TRIGGER", "LIVE"
            );
            for v in &rows {
                println!(
                    "{:>5} {:<36} {:>6} {:<14} {:<9} {}",
                    format!("v{}", v.number),
                    v.id,
                    ago(&v.created_on),
                    text(&v.triggered_by),
                    v.live_percentage
                        .map_or(String::new(), |p| format!("LIVE {p} %")),
                    text(&v.message)
                );
            }
            println!("{} deployable versions of `{script}`", rows.len());
        }
        WorkersCommand::Deployments { script, json } => {
            let rows = workers::deployments(client.as_ref(), &script).await?;
            if json {
                return print_json(&rows);
            }
            println!(
                "{:<36} {:>6} {:<26} {:<11} MESSAGE",
                "DEPLOYMENT", "AGE", "SPLIT", "BY"
            );
            for d in &rows {
                println!(
                    "{:<36} {:>6} {:<26} {:<11} {}{}",
                    d.id,
                    ago(&d.created_on),
                    workers::split(&d.versions),
                    text(&d.triggered_by),
                    text(&d.message),
                    if d.live { "  ← live" } else { "" }
                );
            }
        }
    }
    Ok(())
}
