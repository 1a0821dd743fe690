//! `cfdr audit [--since TIME] [--json]` and `cfdr audit verify`: the repository's audit trail
//! as the operator reads it, and the proof that nobody edited, removed or reordered an entry.
//! The trail is written by the operations and the runner (`repo::audit`), never here.

use time::OffsetDateTime;

use crate::cli::exit::{Exit, Failure};

use super::context::{self, RepoArgs, print_json};

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub verify: Option<AuditCommand>,
    /// Only entries at or after this time (RFC 3339, or `7d` ago).
    #[arg(long, value_name = "TIME", value_parser = super::d1::parse_at)]
    pub since: Option<OffsetDateTime>,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub repo: RepoArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Check every entry's MAC, the chain and the trail's end; exit 1 naming each entry that
    /// was edited, removed or reordered.
    Verify {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        repo: RepoArgs,
    },
}

pub async fn run(args: AuditArgs) -> anyhow::Result<()> {
    if let Some(AuditCommand::Verify { json, repo }) = args.verify {
        let repo = context::open(&repo).await?;
        let check = repo.audit_check().await?;
        if json {
            print_json(&check)?;
        } else {
            println!(
                "audit trail: {} entries in {} files, {}",
                check.entries,
                check.files,
                if check.problems.is_empty() {
                    "every MAC and link holds".to_string()
                } else {
                    format!("{} problems", check.problems.len())
                }
            );
            for p in &check.problems {
                println!("  {p}");
            }
        }
        return if check.problems.is_empty() {
            Ok(())
        } else {
            Err(Failure::new(
                Exit::Verification,
                format!(
                    "the audit trail of `{}` was tampered with: {}",
                    repo.storage.display, check.problems[0]
                ),
            )
            .into())
        };
    }
    let repo = context::open(&args.repo).await?;
    let since = args.since.map(crate::repo::manifest::rfc3339);
    let entries: Vec<_> = repo
        .audit_entries()
        .await?
        .into_iter()
        .filter(|e| {
            since.as_ref().is_none_or(|s| {
                crate::repo::manifest::parse_time(&e.at) >= crate::repo::manifest::parse_time(s)
            })
        })
        .collect();
    if args.json {
        return print_json(&serde_json::json!({ "entries": entries }));
    }
    for e in &entries {
        let r = &e.record;
        let mut line = format!(
            "{:>5} {} {:<14} {:<8} {:<24}",
            e.seq,
            e.at.get(..19).unwrap_or(&e.at),
            r.action,
            r.result,
            e.who
        );
        for (k, v) in [
            ("target", &r.target),
            ("backup", &r.backup),
            ("run", &r.run),
        ] {
            if let Some(v) = v {
                line.push_str(&format!(" {k} {v}"));
            }
        }
        if let Some(s) = r.seconds {
            line.push_str(&format!(" ({s:.1}s)"));
        }
        if let Some(d) = &r.detail {
            line.push_str(&format!(" — {d}"));
        }
        println!("{line}");
    }
    if entries.is_empty() {
        println!(
            "no audit entries{}",
            if since.is_some() { " since then" } else { "" }
        );
    }
    Ok(())
}
