//! Writing the audit trail from the operations (and the playbook runner): each action appends
//! one entry when it ends (`repo::audit`). The faces never write it. A trail that cannot be
//! written is told as a warning — the action itself happened and its result stands — and a
//! read-only cfdr writes nothing, the trail included.

use std::time::Instant;

use super::backup::Env;
use crate::progress::Progress;
use crate::repo::audit::Record;

/// Appends `record`, timed from `started`.
pub async fn record(env: &Env<'_>, mut record: Record, started: Instant, progress: &Progress) {
    if env.config.read_only {
        return;
    }
    record.seconds = Some((started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0);
    if let Err(e) = env.repo.audit(record).await {
        progress.warn(format!("the audit trail could not be written: {e}"));
    }
}

/// The result word of an operation's outcome.
pub fn result_of<T, E>(r: &Result<T, E>) -> String {
    if r.is_ok() { "success" } else { "failed" }.to_string()
}

/// An error's message as an entry's detail.
pub fn detail_of<T, E: std::fmt::Display>(r: &Result<T, E>) -> Option<String> {
    r.as_ref().err().map(|e| e.to_string())
}
