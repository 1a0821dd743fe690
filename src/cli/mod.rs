//! The command line: parses arguments with clap and dispatches to one small module per command.
//! Errors print as `cfdr: …` and map to the documented exit codes.

mod backup;
mod backups;
mod context;
mod emulator;
mod progress;
// The `emulator` subcommand, not the emulator itself: only that file reaches into it.
use self::emulator as emulator_cmd;
mod repo_init;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::exit::{Exit, Failure};

#[derive(Debug, Parser)]
#[command(name = "cfdr", version, about = "Disaster-recovery console for Cloudflare D1, KV and R2", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a local Cloudflare (D1, KV, R2 and R2's S3 endpoint) for demos, tests and drills.
    Emulator(emulator_cmd::Args),
    /// Create a backup repository.
    #[command(subcommand)]
    Repo(repo_init::RepoCommand),
    /// Take a backup now.
    Backup(backup::BackupArgs),
    /// Browse, verify, read and prune backups.
    #[command(subcommand)]
    Backups(backups::BackupsCommand),
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                Exit::Usage.into()
            } else {
                Exit::Ok.into()
            };
        }
    };
    match run(cli) {
        Ok(()) => Exit::Ok.into(),
        Err(e) => {
            let exit = e
                .downcast_ref::<Failure>()
                .map(|f| f.exit)
                .unwrap_or(Exit::Cloudflare);
            eprintln!("cfdr: {e:#}");
            exit.into()
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Some(Command::Emulator(args)) => runtime.block_on(emulator_cmd::run(args)),
        Some(Command::Repo(cmd)) => runtime.block_on(repo_init::run(cmd)),
        Some(Command::Backup(cmd)) => runtime.block_on(backup::run(cmd)),
        Some(Command::Backups(cmd)) => runtime.block_on(backups::run(cmd)),
        None => {
            Err(Failure::usage("no command given; run `cfdr --help` to see the commands").into())
        }
    }
}
