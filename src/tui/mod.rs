//! The interactive console (ratatui + crossterm). One channel carries every event — keys and
//! mouse from a reader task, ticks, data loaded, job progress — and the loop drains it, folds
//! each event into the state (`state::App::handle`), runs the commands that returns, and draws.
//! Drawing is a pure function of the state (`view`). The terminal is restored on every exit,
//! panics included; a panic then says where the log is.

pub mod drills;
pub mod guide;
mod incoming;
pub mod jobs;
pub mod keymap;
pub mod playbooks;
pub mod records;
pub mod recovery;
pub mod state;
pub mod view;
mod work;
pub mod workers;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crossterm::event::{Event as Term, EventStream};
use futures_util::StreamExt as _;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use self::state::{App, Event, Info};
use crate::cloudflare::Client;
use crate::config::Config;
use crate::repo::Repo;

/// How often the clock (ages) and the budget gauge refresh.
const TICK: Duration = Duration::from_millis(250);

/// What the console works on.
#[derive(Clone)]
pub struct Console {
    pub repo: Arc<Repo>,
    pub config: Arc<Config>,
    /// `None` without Cloudflare credentials: browsing and verifying still work.
    pub client: Option<Arc<Client>>,
    pub info: Info,
}

/// Whether colours are wanted (`NO_COLOR` set to anything non-empty turns them off).
pub fn color_wanted() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Where the console logs: the platform's cache directory (`~/.cache/cfdr/console.log`), or
/// the temporary directory.
pub fn log_path() -> PathBuf {
    directories::ProjectDirs::from("", "", "cfdr")
        .map(|d| d.cache_dir().to_path_buf())
        .unwrap_or_else(std::env::temp_dir)
        .join("console.log")
}

/// Sends the log to `log_path()` (the screen is the console's), if it can be opened.
fn log_to_file() -> PathBuf {
    let path = log_path();
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Ok(file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        use tracing_subscriber::layer::SubscriberExt as _;
        use tracing_subscriber::util::SubscriberInitExt as _;
        let _ = tracing_subscriber::fmt()
            .with_writer(std::sync::Mutex::new(file))
            .with_ansi(false)
            .finish()
            .with(log_filter(std::env::var("CFDR_LOG").ok().as_deref()))
            .try_init();
    }
    path
}

/// The log's filter from `CFDR_LOG` (`target=level` directives, comma-separated, or a bare
/// level); `cfdr=info` when it is unset or does not parse.
fn log_filter(directives: Option<&str>) -> tracing_subscriber::filter::Targets {
    directives.and_then(|d| d.parse().ok()).unwrap_or_else(|| {
        tracing_subscriber::filter::Targets::new().with_target("cfdr", tracing::Level::INFO)
    })
}

/// Restores the terminal when dropped: on a normal exit, an error, or unwinding.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = crossterm::execute!(std::io::stdout(), crossterm::event::DisableMouseCapture);
        ratatui::restore();
    }
}

/// Runs the console until the operator quits.
pub async fn run(console: Console) -> anyhow::Result<()> {
    let log = log_to_file();
    // ratatui::init() wraps this hook in one that restores the terminal first.
    let previous = std::panic::take_hook();
    let shown = log.display().to_string();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        eprintln!("cfdr: the console crashed; the log is at {shown}");
    }));
    let mut terminal = ratatui::init();
    let _restore = Restore;
    crossterm::execute!(std::io::stdout(), crossterm::event::EnableMouseCapture)?;
    tracing::info!(repo = %console.info.repo, "console opened");

    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let input = tx.clone();
    tokio::spawn(async move {
        let mut events = EventStream::new();
        while let Some(Ok(e)) = events.next().await {
            let ev = match e {
                Term::Key(k) => Event::Key(k),
                Term::Mouse(m) => Event::Mouse(m),
                Term::Resize(..) => Event::Resize,
                _ => continue,
            };
            if input.send(ev).is_err() {
                break;
            }
        }
    });
    let ticks = tx.clone();
    let client = console.client.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(TICK);
        loop {
            every.tick().await;
            let budget = client.as_ref().map(|c| c.budget.state());
            if ticks.send(Event::Tick(OffsetDateTime::now_utc())).is_err()
                || ticks.send(Event::Budget(budget)).is_err()
            {
                break;
            }
        }
    });

    let mut app = App::new(
        console.info.clone(),
        (*console.config).clone(),
        OffsetDateTime::now_utc(),
        color_wanted(),
    );
    for c in app.start() {
        jobs::exec(&console, c, None, &tx);
    }
    loop {
        terminal.draw(|f| view::render(&app, f))?;
        let Some(first) = rx.recv().await else { break };
        let mut commands = Vec::new();
        for e in std::iter::once(first).chain(std::iter::from_fn(|| rx.try_recv().ok())) {
            if let Event::Key(k) = &e {
                tracing::debug!(?k, "key");
            }
            commands.extend(app.handle(e));
        }
        for c in commands {
            // Every job's work sees its cancel flag: `x` stops a verify, a backup, a restore,
            // a playbook run or a drill (between units or steps).
            let cancel = c
                .job()
                .and_then(|job| app.jobs.iter().find(|j| j.id == job))
                .map(|j| j.cancel.clone());
            jobs::exec(&console, c, cancel, &tx);
        }
        if app.quit {
            break;
        }
    }
    // A job still running is cancelled and given a moment to let go of the writer lease.
    if let Some(j) = app.running() {
        j.cancel.store(true, std::sync::atomic::Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while app.running().is_some() {
            terminal.draw(|f| view::render(&app, f))?;
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(e)) => {
                    app.handle(e);
                }
                _ => break,
            }
        }
    }
    tracing::info!("console closed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    #[test]
    fn the_log_filter_reads_cfdr_log_and_falls_back_to_cfdr_info() {
        let unset = super::log_filter(None);
        assert!(unset.would_enable("cfdr::ops", &Level::INFO));
        assert!(!unset.would_enable("cfdr::ops", &Level::DEBUG));
        assert!(!unset.would_enable("hyper", &Level::INFO));
        let set = super::log_filter(Some("cfdr=debug,reqwest=warn"));
        assert!(set.would_enable("cfdr::engine", &Level::DEBUG));
        assert!(set.would_enable("reqwest::connect", &Level::WARN));
        assert!(!set.would_enable("reqwest::connect", &Level::INFO));
        let bare = super::log_filter(Some("trace"));
        assert!(bare.would_enable("anything", &Level::TRACE));
        let bad = super::log_filter(Some("cfdr=loud"));
        assert!(bad.would_enable("cfdr", &Level::INFO) && !bad.would_enable("cfdr", &Level::DEBUG));
    }
}
