//! How the command line shows progress: a bar redrawn in place when stderr is a terminal, log
//! lines (a phase's start and end, and a status line every few seconds) when it is not, NDJSON
//! with `--json`. All on stderr: stdout carries only the result, so scripts can parse it.
//! Warnings are always printed, as `cfdr: warning: <job>: <message>`.

use std::collections::HashMap;
use std::io::{IsTerminal as _, Write as _};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::progress::{ProgressEvent, Sink};

/// Status lines of one job are at least this far apart in log mode.
const LOG_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bar,
    Log,
    Json,
}

pub struct Printer {
    mode: Mode,
    last_log: Mutex<HashMap<String, Instant>>,
}

/// The sink for this invocation.
pub fn sink(json: bool) -> Arc<dyn Sink> {
    let mode = if json {
        Mode::Json
    } else if std::io::stderr().is_terminal()
        && std::env::var_os("TERM").is_some_and(|t| t != "dumb")
    {
        Mode::Bar
    } else {
        Mode::Log
    };
    Arc::new(Printer {
        mode,
        last_log: Mutex::new(HashMap::new()),
    })
}

/// One line saying where a job is: `d1 `shop`: dump 3/12 tables, 1.2 MiB, 4.0 MiB/s, ETA 2s`.
pub fn status(e: &ProgressEvent) -> String {
    let mut s = format!("{}: {}", e.job, e.describe());
    if e.finished {
        s.push_str(&format!(", done in {:.1}s", e.elapsed_ms as f64 / 1000.0));
    }
    s
}

fn bar(ratio: Option<f64>, width: usize) -> String {
    match ratio {
        Some(r) => {
            let full = ((r * width as f64).round() as usize).min(width);
            format!(
                "[{}{}] {:>3.0}%",
                "#".repeat(full),
                "-".repeat(width - full),
                r * 100.0
            )
        }
        None => format!("[{}]", "~".repeat(width)),
    }
}

impl Sink for Printer {
    fn event(&self, e: ProgressEvent) {
        let mut err = std::io::stderr().lock();
        if let Some(m) = &e.message {
            let clear = if self.mode == Mode::Bar {
                "\r\x1b[2K"
            } else {
                ""
            };
            let _ = writeln!(err, "{clear}cfdr: warning: {}: {m}", e.job);
            if self.mode != Mode::Json {
                return;
            }
        }
        match self.mode {
            Mode::Json => {
                let mut v = serde_json::to_value(&e).unwrap_or_default();
                v["event"] = "progress".into();
                let _ = writeln!(err, "{v}");
            }
            Mode::Bar => {
                if e.finished {
                    let _ = write!(err, "\r\x1b[2K");
                } else {
                    let _ = write!(err, "\r\x1b[2K{} {}", bar(e.ratio(), 20), status(&e));
                }
                let _ = err.flush();
            }
            Mode::Log => {
                let Ok(mut last) = self.last_log.lock() else {
                    return;
                };
                let now = Instant::now();
                let starting = e.done == 0 && e.bytes == 0;
                let due = last
                    .get(&e.job)
                    .is_none_or(|t| now.duration_since(*t) >= LOG_EVERY);
                if starting || e.finished || due {
                    last.insert(e.job.clone(), now);
                    let _ = writeln!(err, "cfdr: {}", status(&e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_read_well() {
        let e = ProgressEvent {
            job: "d1 `shop`".into(),
            phase: "dump".into(),
            unit: "tables",
            done: 3,
            total: Some(12),
            bytes: 3 << 20,
            bytes_total: None,
            rate: (1 << 20) as f64,
            elapsed_ms: 3000,
            message: None,
            finished: false,
        };
        assert_eq!(
            status(&e),
            "d1 `shop`: dump 3/12 tables, 3.0 MiB, 1.0 MiB/s, ETA 9s"
        );
        assert_eq!(bar(Some(0.5), 10), "[#####-----]  50%");
        assert_eq!(bar(None, 4), "[~~~~]");
    }
}
