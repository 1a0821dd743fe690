//! Retries told as they happen: a client counts its retries and says each one to the
//! operation watching it (its progress handle), so an operator sees a flaky network being
//! ridden out — which request, the how-manyth retry of how many, how long the wait, why —
//! and not only in a debug log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::progress::Progress;

/// A client's retries (shared by its clones).
#[derive(Clone, Default)]
pub struct Retries {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    count: AtomicU64,
    watch: Mutex<Option<Progress>>,
}

impl std::fmt::Debug for Retries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retries")
            .field("count", &self.count())
            .finish()
    }
}

impl Retries {
    /// Says each retry from now on to `progress` (instead of whoever watched before).
    pub fn watch(&self, progress: &Progress) {
        *self.inner.watch.lock().unwrap_or_else(|e| e.into_inner()) = Some(progress.clone());
    }

    /// Retries so far.
    pub fn count(&self) -> u64 {
        self.inner.count.load(Ordering::Relaxed)
    }

    /// One retry of `what` (the request, never a URL's signature): retry number `n` (from 1)
    /// of at most `max`, after `wait`, because of `why`.
    pub(crate) fn note(&self, what: &str, n: u32, max: u32, wait: Duration, why: &str) {
        self.inner.count.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(what, n, max, ?wait, why, "retrying");
        let watch = self.inner.watch.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = watch.as_ref() {
            p.warn(message(what, n, max, wait, why));
        }
    }
}

/// `retrying GET /d1/database (retry 2 of at most 6) in 1.2 s: 503`.
fn message(what: &str, n: u32, max: u32, wait: Duration, why: &str) -> String {
    let why = why.lines().next().unwrap_or_default();
    let why: String = why.chars().take(160).collect();
    format!(
        "retrying {what} (retry {n} of at most {max}) in {:.1} s: {why}",
        wait.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_is_counted_and_told_to_the_watcher() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = {
            let seen = seen.clone();
            move |e: crate::progress::ProgressEvent| {
                if let Some(m) = e.message {
                    seen.lock().unwrap().push(m);
                }
            }
        };
        let r = Retries::default();
        r.note(
            "GET /x",
            1,
            6,
            Duration::from_millis(500),
            "unseen: nobody watches",
        );
        r.clone().watch(&Progress::new("backup", Arc::new(sink)));
        r.note(
            "GET /d1/database",
            2,
            6,
            Duration::from_millis(1200),
            "503\nbody",
        );
        assert_eq!(r.count(), 2);
        assert_eq!(
            *seen.lock().unwrap(),
            ["retrying GET /d1/database (retry 2 of at most 6) in 1.2 s: 503"]
        );
    }
}
