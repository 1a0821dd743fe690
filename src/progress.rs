//! The one progress-event type of long work (backups, verification), and the handle engines
//! report through. The caller picks the sink: the CLI prints bars, log lines or NDJSON, the
//! console folds events into its state. Events are throttled here, so a sink never sees more
//! than one ordinary update per job every `THROTTLE`; phase changes, warnings and the end of a
//! phase always go through. The same handle carries cancellation: the console's `Esc` sets it,
//! and engines stop at their next unit of work.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

/// The shortest interval between two ordinary updates of one job.
pub const THROTTLE: Duration = Duration::from_millis(100);

/// Where a job is: its phase, units done of a total (when known), bytes, and rate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProgressEvent {
    /// What is being worked on, e.g. ``d1 `shop` ``.
    pub job: String,
    pub phase: String,
    /// What `done` and `total` count: rows, keys, objects, tables, artifacts, bytes.
    pub unit: &'static str,
    pub done: u64,
    pub total: Option<u64>,
    pub bytes: u64,
    pub bytes_total: Option<u64>,
    /// Bytes a second in this phase so far.
    pub rate: f64,
    pub elapsed_ms: u64,
    /// A warning or note for the operator (the event is then not a counter update).
    pub message: Option<String>,
    /// The phase is over.
    pub finished: bool,
}

impl ProgressEvent {
    /// The share done, from units or bytes, whichever has a total.
    pub fn ratio(&self) -> Option<f64> {
        match (self.total, self.bytes_total) {
            (_, Some(t)) if t > 0 => Some((self.bytes as f64 / t as f64).min(1.0)),
            (Some(t), _) if t > 0 => Some((self.done as f64 / t as f64).min(1.0)),
            _ if self.finished => Some(1.0),
            _ => None,
        }
    }

    /// Where the phase is, in words: `dump 3/12 tables, 1.2 MiB of 4.0 MiB, 5.1 MiB/s, ETA 3s`.
    /// The command line's status lines and the console's job line both read this.
    pub fn describe(&self) -> String {
        use crate::text::human_size;
        let mut s = self.phase.clone();
        match self.total {
            Some(t) => s.push_str(&format!(" {}/{t} {}", self.done, self.unit)),
            None if self.done > 0 => s.push_str(&format!(" {} {}", self.done, self.unit)),
            None => {}
        }
        if self.bytes > 0 {
            s.push_str(&format!(", {}", human_size(self.bytes)));
            if let Some(t) = self.bytes_total {
                s.push_str(&format!(" of {}", human_size(t)));
            }
            if self.elapsed_ms >= 500 {
                s.push_str(&format!(", {}/s", human_size(self.rate as u64)));
            }
        }
        if let Some(eta) = self.eta() {
            s.push_str(&format!(", ETA {}s", eta.as_secs().max(1)));
        }
        s
    }

    /// Time left at the phase's rate so far.
    pub fn eta(&self) -> Option<Duration> {
        let ratio = self.ratio()?;
        if ratio <= 0.0 || ratio >= 1.0 || self.elapsed_ms < 200 {
            return None;
        }
        let secs = self.elapsed_ms as f64 / 1000.0 * (1.0 - ratio) / ratio;
        Some(Duration::from_secs_f64(secs.min(360_000.0)))
    }
}

/// Receives a job's events. Called from engine tasks and blocking threads: keep it quick.
pub trait Sink: Send + Sync {
    fn event(&self, event: ProgressEvent);
}

impl<F: Fn(ProgressEvent) + Send + Sync> Sink for F {
    fn event(&self, event: ProgressEvent) {
        self(event)
    }
}

/// The work was cancelled by the operator.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("cancelled by the operator")]
pub struct Cancelled;

struct State {
    phase: String,
    unit: &'static str,
    done: u64,
    total: Option<u64>,
    bytes: u64,
    bytes_total: Option<u64>,
    started: Instant,
    last: Option<Instant>,
}

struct Inner {
    job: String,
    sink: Arc<dyn Sink>,
    state: Mutex<State>,
}

/// A job's progress handle: cheap to clone, silent when made with `Progress::silent()`.
#[derive(Clone)]
pub struct Progress {
    inner: Option<Arc<Inner>>,
    cancel: Arc<AtomicBool>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("job", &self.inner.as_ref().map(|i| i.job.as_str()))
            .finish()
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::silent()
    }
}

impl Progress {
    /// Reports nowhere and is never cancelled.
    pub fn silent() -> Self {
        Self {
            inner: None,
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn new(job: impl Into<String>, sink: Arc<dyn Sink>) -> Self {
        Self::with_cancel(job.into(), sink, Arc::new(AtomicBool::new(false)))
    }

    /// A job cancelled by `cancel` (a flag its caller keeps, like the console's job list).
    pub fn with_cancel(job: String, sink: Arc<dyn Sink>, cancel: Arc<AtomicBool>) -> Self {
        Self {
            inner: Some(Arc::new(Inner {
                job,
                sink,
                state: Mutex::new(State {
                    phase: String::new(),
                    unit: "",
                    done: 0,
                    total: None,
                    bytes: 0,
                    bytes_total: None,
                    started: Instant::now(),
                    last: None,
                }),
            })),
            cancel,
        }
    }

    /// Another job on the same sink, cancelled with this one.
    pub fn job(&self, job: impl Into<String>) -> Self {
        match &self.inner {
            None => self.clone(),
            Some(i) => Self::with_cancel(job.into(), i.sink.clone(), self.cancel.clone()),
        }
    }

    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// `Err(Cancelled)` once the operator asked to stop.
    pub fn check(&self) -> Result<(), Cancelled> {
        if self.is_cancelled() {
            Err(Cancelled)
        } else {
            Ok(())
        }
    }

    /// Starts a phase: counters reset, the event always sent.
    pub fn phase(&self, phase: &str, unit: &'static str, total: Option<u64>) {
        self.phase_with_bytes(phase, unit, total, None);
    }

    pub fn phase_with_bytes(
        &self,
        phase: &str,
        unit: &'static str,
        total: Option<u64>,
        bytes_total: Option<u64>,
    ) {
        self.update(true, None, false, |s| {
            s.phase = phase.to_string();
            s.unit = unit;
            s.done = 0;
            s.total = total;
            s.bytes = 0;
            s.bytes_total = bytes_total;
            s.started = Instant::now();
        });
    }

    /// Sets the phase's totals once they are known (a listing read as the work goes learns
    /// them at its last page); sent at most once per `THROTTLE`.
    pub fn set_totals(&self, total: Option<u64>, bytes_total: Option<u64>) {
        self.update(false, None, false, |s| {
            s.total = total;
            s.bytes_total = bytes_total;
        });
    }

    /// Counts work done; sent at most once per `THROTTLE`.
    pub fn add(&self, units: u64, bytes: u64) {
        self.update(false, None, false, |s| {
            s.done += units;
            s.bytes += bytes;
        });
    }

    /// A warning or note for the operator; always sent.
    pub fn warn(&self, message: impl Into<String>) {
        self.update(true, Some(message.into()), false, |_| {});
    }

    /// The phase is over; always sent.
    pub fn finish(&self) {
        self.update(true, None, true, |_| {});
    }

    fn update(
        &self,
        force: bool,
        message: Option<String>,
        finished: bool,
        change: impl FnOnce(&mut State),
    ) {
        let Some(inner) = &self.inner else { return };
        let event = {
            let Ok(mut s) = inner.state.lock() else {
                return;
            };
            change(&mut s);
            let now = Instant::now();
            if !force && s.last.is_some_and(|l| now.duration_since(l) < THROTTLE) {
                return;
            }
            s.last = Some(now);
            let elapsed = now.duration_since(s.started);
            ProgressEvent {
                job: inner.job.clone(),
                phase: s.phase.clone(),
                unit: s.unit,
                done: s.done,
                total: s.total,
                bytes: s.bytes,
                bytes_total: s.bytes_total,
                rate: if elapsed.as_secs_f64() > 0.0 {
                    s.bytes as f64 / elapsed.as_secs_f64()
                } else {
                    0.0
                },
                elapsed_ms: elapsed.as_millis() as u64,
                message,
                finished,
            }
        };
        inner.sink.event(event);
    }
}

/// A reader that counts what passes through as progress (bytes only) and stops with an error
/// once the job is cancelled.
pub struct Counting<T> {
    pub inner: T,
    pub progress: Progress,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.progress.check().map_err(std::io::Error::other)?;
        let n = self.inner.read(buf)?;
        self.progress.add(0, n as u64);
        Ok(n)
    }
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.progress.check().map_err(std::io::Error::other)?;
        let n = self.inner.write(buf)?;
        self.progress.add(0, n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect() -> (Progress, Arc<Mutex<Vec<ProgressEvent>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let sink = move |e: ProgressEvent| s.lock().unwrap().push(e);
        (Progress::new("kv `cache`", Arc::new(sink)), seen)
    }

    #[test]
    fn updates_are_throttled_but_phases_warnings_and_ends_are_not() {
        let (p, seen) = collect();
        p.phase("fetch", "keys", Some(10_000));
        for _ in 0..10_000 {
            p.add(1, 10);
        }
        p.warn("odd");
        p.finish();
        let seen = seen.lock().unwrap();
        assert!(seen.len() <= 6, "{} events", seen.len());
        assert_eq!(seen[0].phase, "fetch");
        assert_eq!(seen[0].done, 0);
        let last = seen.last().unwrap();
        assert!(last.finished);
        assert_eq!((last.done, last.bytes), (10_000, 100_000));
        assert_eq!(last.ratio(), Some(1.0));
        assert!(seen.iter().any(|e| e.message.as_deref() == Some("odd")));
    }

    #[test]
    fn ratio_prefers_bytes_and_eta_needs_some_history() {
        let mut e = ProgressEvent {
            job: "j".into(),
            phase: "verify".into(),
            unit: "artifacts",
            done: 1,
            total: Some(4),
            bytes: 300,
            bytes_total: Some(1000),
            rate: 0.0,
            elapsed_ms: 3000,
            message: None,
            finished: false,
        };
        assert_eq!(e.ratio(), Some(0.3));
        assert_eq!(e.eta(), Some(Duration::from_secs(7)));
        e.elapsed_ms = 10;
        assert_eq!(e.eta(), None);
        e.bytes_total = None;
        assert_eq!(e.ratio(), Some(0.25));
        e.total = None;
        assert_eq!(e.ratio(), None);
    }

    #[test]
    fn cancelling_a_job_stops_its_readers_and_its_sub_jobs() {
        let (p, _) = collect();
        let child = p.job("d1 `shop`");
        let mut r = Counting {
            inner: &b"abcdef"[..],
            progress: child.clone(),
        };
        let mut buf = [0u8; 3];
        assert_eq!(r.read(&mut buf).unwrap(), 3);
        p.cancel();
        assert!(child.is_cancelled());
        assert!(r.read(&mut buf).is_err());
        assert!(Progress::silent().check().is_ok());
    }
}
