//! The command line: parses arguments with clap and dispatches to one small module per command.
//! Errors print as `cfdr: …` and map to the documented exit codes.

mod audit;
mod backup;
mod backups;
mod console;
mod context;
mod d1;
mod demo;
mod drill;
mod emulator;
pub mod exit;
mod import;
mod playbook;
mod playbook_run;
mod progress;
// The `emulator` subcommand, not the emulator itself: only that file reaches into it.
use self::emulator as emulator_cmd;
mod repo_init;
mod restore;
mod shell;
mod status;
mod workers;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use self::exit::Exit;

#[derive(Debug, Parser)]
#[command(name = "cfdr", version, about = "Disaster-recovery console for Cloudflare D1, KV and R2", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Without a command: open the console on this repository (default: CFDR_REPO, the config
    /// file, then the platform data directory).
    #[arg(long)]
    pub repo: Option<String>,
    /// Without a command: open the console read-only (no backups, no verification records).
    #[arg(long)]
    pub read_only: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Try everything on a local Cloudflare: the demo account, a repository with history, the console.
    Demo(demo::Args),
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
    /// Put a backup back: plan, confirm, pre-recovery snapshot, write, verify (resumable,
    /// undoable).
    Restore(restore::RestoreArgs),
    /// Compare a backup with the live target and print the differences.
    Diff(restore::DiffArgs),
    /// D1's own recovery: Time Travel (bookmarks for a time, in-place restores).
    #[command(subcommand)]
    D1(d1::D1Command),
    /// Prove recovery: restore the newest backups into scratch targets, verify them, measure
    /// RTO and RPO, write the drill report, remove the scratch targets.
    Drill(drill::DrillArgs),
    /// The drills' reports.
    #[command(subcommand)]
    Drills(drill::DrillsCommand),
    /// How each target stands: its newest backup against its RPO, its last drill, its last
    /// failure; exit 1 when one is past its RPO (text, --json or --format prometheus).
    Status(status::StatusArgs),
    /// The audit trail: every backup, verify, prune, restore, undo and playbook step, who did
    /// it and how it went; `audit verify` proves nobody edited it.
    Audit(audit::AuditArgs),
    /// Runbooks for recovery: list, read and check them; run, resume and retry them.
    #[command(subcommand)]
    Playbook(playbook::PlaybookCommand),
    /// Workers: what is live on each, the versions it could go back to, its deployments.
    #[command(subcommand)]
    Workers(workers::WorkersCommand),
    /// Bring a team's existing backups into the repository: KV backup files, SQL dumps of D1
    /// databases, SQLite snapshots — from a folder or an R2 prefix.
    Import(import::ImportArgs),
    /// Shell completions for bash, zsh, fish, elvish or PowerShell, on standard output.
    Completions(shell::CompletionsArgs),
    /// Man pages: cfdr.1 on standard output, or one page per command into --dir.
    Man(shell::ManArgs),
}

/// The command line as clap sees it, `--version` saying `version` (the binary's, with its
/// commit).
pub fn command(version: &'static str) -> clap::Command {
    Cli::command().version(version)
}

/// The binary's entry: `version` is what `--version` says.
pub fn main(version: &'static str) -> ExitCode {
    let parsed = command(version)
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
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
    match run(cli, version) {
        Ok(()) => Exit::Ok.into(),
        Err(e) => {
            eprintln!("cfdr: {}", exit::describe(&e));
            exit::exit_of(&e).into()
        }
    }
}

fn run(cli: Cli, version: &'static str) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::Completions(args)) => return shell::completions(args, command(version)),
        Some(Command::Man(args)) => return shell::man(args, command(version)),
        _ => {}
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Some(Command::Emulator(args)) => runtime.block_on(emulator_cmd::run(args)),
        Some(Command::Repo(cmd)) => runtime.block_on(repo_init::run(cmd)),
        Some(Command::Backup(cmd)) => runtime.block_on(backup::run(cmd)),
        Some(Command::Backups(cmd)) => runtime.block_on(backups::run(cmd)),
        Some(Command::Restore(args)) => runtime.block_on(restore::run(args)),
        Some(Command::Diff(args)) => runtime.block_on(restore::diff(args)),
        Some(Command::D1(cmd)) => runtime.block_on(d1::run(cmd)),
        Some(Command::Drill(args)) => runtime.block_on(drill::run(args)),
        Some(Command::Drills(cmd)) => runtime.block_on(drill::drills(cmd)),
        Some(Command::Audit(args)) => runtime.block_on(audit::run(args)),
        Some(Command::Status(args)) => runtime.block_on(status::run(args)),
        Some(Command::Playbook(cmd)) => runtime.block_on(playbook::run(cmd)),
        Some(Command::Demo(args)) => runtime.block_on(demo::run(args)),
        Some(Command::Import(args)) => runtime.block_on(import::run(args)),
        Some(Command::Workers(cmd)) => runtime.block_on(workers::run(cmd)),
        Some(Command::Completions(_) | Command::Man(_)) => Ok(()),
        None => runtime.block_on(console::run(
            context::RepoArgs { repo: cli.repo },
            cli.read_only,
        )),
    }
}
