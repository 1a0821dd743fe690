//! `cfdr repo init`: creates a repository (config.json with the key check).

use crate::cli::exit::Failure;
use crate::config::Config;
use crate::repo::Repo;

use super::context::{self, RepoArgs};

#[derive(Debug, clap::Subcommand)]
pub enum RepoCommand {
    /// Create a repository at --repo (a directory or s3://bucket/prefix) for the key in CFDR_KEY.
    Init {
        #[command(flatten)]
        repo: RepoArgs,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cmd: RepoCommand) -> anyhow::Result<()> {
    match cmd {
        RepoCommand::Init { repo, json } => {
            let config = Config::load().map_err(|e| Failure::usage(e.to_string()))?;
            let storage = context::storage(&repo, &config)?;
            let key = context::key(&config)?;
            let r = Repo::init(storage, key).await?;
            if json {
                context::print_json(&r.config)?;
            } else {
                println!(
                    "created repository `{}` (id {}, key {})",
                    r.storage.display, r.config.id, r.config.key_id
                );
            }
            Ok(())
        }
    }
}
