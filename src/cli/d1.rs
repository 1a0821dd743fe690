//! `cfdr d1 time-travel <db> [--at TIME | --bookmark B | --backup ID] [--restore]`: the bookmark
//! for a time and the backups around it; with `--restore`, the database put back in place
//! through the same plan, confirmation, snapshot and undo as `cfdr restore`.

use time::OffsetDateTime;

use crate::cli::exit::Failure;
use crate::ops::restore::{Mode, Request, TimeTravel, time_travel};
use crate::progress::Progress;

use super::context::{RepoArgs, print_json};
use super::restore::{Account, Net, Session, carry_out, check_waiver};

#[derive(Debug, clap::Subcommand)]
pub enum D1Command {
    /// D1 Time Travel: the bookmark for a time and the backups around it; with --restore, put
    /// the database back in place to it (planned, confirmed, snapshotted first, undoable).
    TimeTravel(TimeTravelArgs),
}

#[derive(Debug, clap::Args)]
pub struct TimeTravelArgs {
    /// The database (name or id).
    database: String,
    /// The time to go back to: RFC 3339 (2026-12-02T14:05:00Z), Unix seconds, or how long ago
    /// (90m, 2h 30m); at most 30 days back.
    #[arg(long, value_name = "TIME", value_parser = parse_at, conflicts_with_all = ["bookmark", "backup"])]
    at: Option<OffsetDateTime>,
    /// The bookmark to go back to (as `cfdr backups show` or a previous restore gave it).
    #[arg(long, value_name = "B", value_parser = parse_bookmark, conflicts_with = "backup")]
    bookmark: Option<String>,
    /// Go back to the consistency point of this backup (taken by export: it has a bookmark);
    /// the result is compared with it.
    #[arg(long, value_name = "ID")]
    backup: Option<String>,
    /// Restore the database in place to the bookmark (otherwise only look it up).
    #[arg(long)]
    restore: bool,
    /// With --restore: show the plan and stop; nothing is written.
    #[arg(long, requires = "restore")]
    dry_run: bool,
    /// With --restore: go ahead without the typed confirmation (for scripts).
    #[arg(long, requires = "restore")]
    yes: bool,
    /// With --restore: no pre-recovery backup first (needs --yes-i-understand).
    #[arg(long, requires = "restore")]
    no_snapshot: bool,
    #[arg(long)]
    yes_i_understand: bool,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    net: Net,
    #[command(flatten)]
    account: Account,
    #[command(flatten)]
    repo: RepoArgs,
}

pub(super) use crate::text::parse_at;

/// D1's bookmark shape: `xxxxxxxx-xxxxxxxx-xxxxxxxx-<32 hex>`.
fn parse_bookmark(s: &str) -> Result<String, String> {
    let parts: Vec<&str> = s.split('-').collect();
    let ok = parts.len() == 4
        && parts[..3].iter().all(|p| p.len() == 8)
        && parts[3].len() == 32
        && s.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit());
    if ok {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!(
            "`{s}` is not a D1 bookmark (they look like 00000085-0000024c-00004c6d-8e61117bf38d4adb71b934ebbf891683)"
        ))
    }
}

pub async fn run(cmd: D1Command) -> anyhow::Result<()> {
    let D1Command::TimeTravel(args) = cmd;
    check_waiver(args.no_snapshot, args.yes_i_understand)?;
    if let Some(at) = args.at {
        time_travel::check_time(at, OffsetDateTime::now_utc())?;
    }
    let session = Session::open(&args.repo, &args.net, &args.account, None).await?;
    let env = session.env();
    let bookmark = match &args.backup {
        Some(id) => {
            let m = session.repo.manifest(id).await?;
            Some(m.bookmark().ok_or_else(|| {
                Failure::usage(format!(
                    "backup `{id}` has no Time Travel bookmark (it was not taken by export); restore it with `cfdr restore {id}`, or give --at with its time"
                ))
            })?)
        }
        None => args.bookmark.clone(),
    };
    let point = time_travel::locate(&env, &args.database, args.at, bookmark.as_deref()).await?;
    if !args.restore {
        if args.json {
            print_json(&point)?;
        } else {
            println!(
                "{}{}: bookmark {}",
                point.database.label(),
                point
                    .at
                    .as_ref()
                    .map(|t| format!(" at {t}"))
                    .unwrap_or_default(),
                point.bookmark
            );
            let show = |what: &str, n: &Option<time_travel::Nearby>| match n {
                Some(n) => println!(
                    "  backup {what}: {} (started {}{})",
                    n.id,
                    n.started,
                    n.bookmark
                        .as_ref()
                        .map(|b| format!(", bookmark {b}"))
                        .unwrap_or_default()
                ),
                None => println!("  backup {what}: none"),
            };
            show("at or before", &point.before);
            show("after", &point.after);
            if let Some(e) = &point.exact {
                println!("  backup {e} was taken at this very bookmark");
            }
            println!(
                "restore to it with `cfdr d1 time-travel {} --bookmark {} --restore`",
                point.database.name, point.bookmark
            );
        }
        return Ok(());
    }
    let req = Request {
        backup: args
            .backup
            .clone()
            .or(point.exact.clone())
            .unwrap_or_default(),
        to: Some(point.database.id.clone()),
        mode: Mode::Clear,
        snapshot: !args.no_snapshot,
        dry_run: args.dry_run,
        concurrency: 4,
        kv_batch: crate::cloudflare::kv::MAX_BULK_ITEMS,
        retry: args.net.retry(),
        time_travel: Some(TimeTravel {
            bookmark: point.bookmark.clone(),
            at: point.at.clone(),
        }),
        ..Default::default()
    };
    let progress = Progress::new("restore", super::progress::sink(args.json));
    carry_out(&env, &req, args.yes, args.json, args.net.retry(), &progress).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_bookmarks_are_read_as_an_operator_writes_them() {
        assert_eq!(
            parse_at("2026-12-02T14:05:00Z").unwrap(),
            time::macros::datetime!(2026-12-02 14:05 UTC)
        );
        assert_eq!(
            parse_at("1764684300").unwrap().unix_timestamp(),
            1_764_684_300
        );
        let ago = OffsetDateTime::now_utc() - parse_at("90m").unwrap();
        assert!((ago.whole_minutes() - 90).abs() <= 1, "{ago}");
        assert!(parse_at("2h ago").is_ok());
        assert!(
            parse_at("yesterday-ish")
                .unwrap_err()
                .contains("yesterday-ish")
        );
        assert!(
            parse_bookmark("00000085-0000024c-00004c6d-8e61117bf38d4adb71b934ebbf891683").is_ok()
        );
        assert!(parse_bookmark("nope").unwrap_err().contains("`nope`"));
    }
}
