//! `cfdr status [--json | --format prometheus]`: each target's newest backup against its RPO,
//! its last drill and its last failure (`ops::status`); exit 1 when a target is past its RPO,
//! so cron and monitors can act on it.

use crate::cli::exit::{Exit, Failure};
use crate::config::Config;
use crate::ops::backup::Env;
use crate::ops::status;

use super::context::{self, RepoArgs, print_json};

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// text (a table), json, or prometheus (the text exposition format, for a scrape or
    /// node_exporter's textfile collector).
    #[arg(long, default_value = "text", value_parser = ["text", "json", "prometheus"])]
    format: String,
    /// The same as --format json.
    #[arg(long, conflicts_with = "format")]
    json: bool,
    /// Do not ask the account for targets that have no backup yet: the repository alone.
    #[arg(long)]
    offline: bool,
    #[command(flatten)]
    repo: RepoArgs,
}

pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let config = Config::load().map_err(|e| Failure::usage(e.to_string()))?;
    let repo = context::open(&args.repo).await?;
    let client = if args.offline || config.api_token.is_none() || config.account_id.is_none() {
        None
    } else {
        // A status is asked often and must answer soon: few retries, a short timeout.
        let retry = crate::cloudflare::RetryPolicy {
            max_retries: 2,
            timeout: std::time::Duration::from_secs(20),
            ..Default::default()
        };
        Some(context::cloudflare_with(&config, 4, retry)?)
    };
    let env = Env {
        repo: &repo,
        config: &config,
        client: client.as_ref(),
    };
    let s = status::of(&env, time::OffsetDateTime::now_utc()).await?;
    match (args.json, args.format.as_str()) {
        (true, _) | (_, "json") => print_json(&s)?,
        (_, "prometheus") => print!("{}", status::prometheus(&s)),
        _ => {
            print!("{}", status::table(&s));
        }
    }
    if s.past_rpo.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(
            Exit::Verification,
            format!(
                "{} past their RPO: {} — take a backup (`cfdr backup …`) or find why the scheduled one failed (`cfdr audit`)",
                s.past_rpo.len(),
                s.past_rpo.join(", ")
            ),
        )
        .into())
    }
}
