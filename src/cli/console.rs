//! `cfdr` without a command: the console on the configured repository — or, when stdout is not
//! a terminal, the inventory as a plain table (so `cfdr | less` and cron mails make sense).

use std::io::IsTerminal as _;
use std::sync::Arc;

use super::context::{self, RepoArgs};
use crate::cli::exit::Failure;
use crate::config::Config;
use crate::ops::inventory as model;
use crate::tui::{self, Console, state::Info};

/// Opens the console on `console`, or prints its inventory when stdout is not a terminal.
pub async fn open_or_print(console: Console) -> anyhow::Result<()> {
    if !std::io::stdout().is_terminal() {
        let entries = console.repo.catalog().await?.entries;
        let known = match &console.client {
            Some(c) => crate::ops::backup::account_targets(c)
                .await
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let rows = model::inventory(
            &entries,
            &known,
            &console.config,
            time::OffsetDateTime::now_utc(),
        );
        print!("{}", model::inventory_table(&rows));
        return Ok(());
    }
    tui::run(console).await
}

pub async fn run(repo: RepoArgs, read_only: bool) -> anyhow::Result<()> {
    let config = Config::load().map_err(|e| Failure::usage(e.to_string()))?;
    let location = context::location(&repo, &config)?;
    let opened = context::open(&repo).await?;
    let client = if config.api_token.is_some() && config.account_id.is_some() {
        Some(Arc::new(context::cloudflare_with(
            &config,
            4,
            crate::cloudflare::RetryPolicy::default(),
        )?))
    } else {
        None
    };
    let console = Console {
        repo: Arc::new(opened),
        info: Info {
            account: config.account_id.clone(),
            repo: location,
            read_only,
        },
        config: Arc::new(config),
        client,
    };
    open_or_print(console).await
}
