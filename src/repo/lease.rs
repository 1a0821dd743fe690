//! Writer leases: `locks/writer.json`, created only if absent (a conditional create on S3 and a
//! create-new on disk), with owner, host, start time, heartbeat and TTL. Readers need none. A
//! lease whose heartbeat is older than its TTL is stale and is taken over with a warning.

use std::time::Duration;

use super::storage::Path;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::RepoError;
use super::manifest::{parse_time, rfc3339};
use super::storage::Storage;

pub const LEASE_PATH: &str = "locks/writer.json";
pub const DEFAULT_TTL: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LeaseInfo {
    pub owner: String,
    pub host: String,
    pub pid: u32,
    pub purpose: String,
    pub started: String,
    pub heartbeat: String,
    pub ttl_secs: u64,
    /// Distinguishes two leases of the same owner.
    pub token: String,
}

impl LeaseInfo {
    /// A lease is stale when its heartbeat is older than its TTL — or at once when it was
    /// taken on this host by a process that is gone (a crash, a kill), so that a resume right
    /// after one need not wait out the TTL.
    fn stale(&self, now: OffsetDateTime) -> bool {
        if self.host == whoami().1 && self.pid != std::process::id() && !alive(self.pid) {
            return true;
        }
        match parse_time(&self.heartbeat) {
            Some(hb) => now - hb > Duration::from_secs(self.ttl_secs),
            None => true,
        }
    }
}

/// Whether process `pid` runs on this machine (where that cannot be told: assume it does).
fn alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

/// A held lease. Heartbeats run in the background until `release` (or drop, which stops them;
/// the lease then goes stale after its TTL).
pub struct Lease {
    storage: Storage,
    path: Path,
    info: LeaseInfo,
    heartbeat: tokio::task::JoinHandle<()>,
    /// Set when a stale lease was taken over: what the operator should know.
    pub took_over: Option<LeaseInfo>,
}

/// `user@host`, as records name who did something.
pub fn who() -> String {
    let (user, host) = whoami();
    format!("{user}@{host}")
}

pub fn whoami() -> (String, String) {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into());
    (user, host)
}

impl Lease {
    /// The repository's writer lease.
    pub async fn acquire(
        storage: &Storage,
        purpose: &str,
        ttl: Duration,
    ) -> Result<Lease, RepoError> {
        Self::acquire_at(storage, LEASE_PATH, "repository", purpose, ttl).await
    }

    /// A lease on `path` (`locks/<name>.json`), held for `purpose`; `what` names the thing
    /// held in the error a second taker gets.
    pub async fn acquire_at(
        storage: &Storage,
        path: &str,
        what: &str,
        purpose: &str,
        ttl: Duration,
    ) -> Result<Lease, RepoError> {
        let (owner, host) = whoami();
        let path = Path::from(path);
        let mut took_over = None;
        for _ in 0..3 {
            let now = OffsetDateTime::now_utc();
            let info = LeaseInfo {
                owner: owner.clone(),
                host: host.clone(),
                pid: std::process::id(),
                purpose: purpose.to_string(),
                started: rfc3339(now),
                heartbeat: rfc3339(now),
                ttl_secs: ttl.as_secs().max(1),
                token: hex::encode(rand::random::<[u8; 8]>()),
            };
            if storage
                .create(&path, serde_json::to_vec_pretty(&info).unwrap_or_default())
                .await?
            {
                let heartbeat = spawn_heartbeat(storage.clone(), path.clone(), info.clone(), ttl);
                return Ok(Lease {
                    storage: storage.clone(),
                    path,
                    info,
                    heartbeat,
                    took_over,
                });
            }
            let held = match storage.get(&path).await? {
                Some(bytes) => serde_json::from_slice::<LeaseInfo>(&bytes).ok(),
                None => continue, // released in between
            };
            match held {
                Some(h) if !h.stale(now) => {
                    return Err(RepoError::Locked {
                        what: what.to_string(),
                        owner: h.owner,
                        host: h.host,
                        since: h.started,
                        purpose: h.purpose,
                    });
                }
                stale => {
                    tracing::warn!(?stale, "taking over a stale writer lease");
                    took_over = stale;
                    storage.delete(&path).await?;
                }
            }
        }
        Err(RepoError::Internal(
            "could not take the writer lease after three tries".into(),
        ))
    }

    pub fn info(&self) -> &LeaseInfo {
        &self.info
    }

    pub async fn release(self) -> Result<(), RepoError> {
        self.heartbeat.abort();
        let path = self.path.clone();
        // Only delete our own lease: someone may have taken it over after we stalled.
        if let Some(bytes) = self.storage.get(&path).await?
            && serde_json::from_slice::<LeaseInfo>(&bytes).is_ok_and(|l| l.token == self.info.token)
        {
            self.storage.delete(&path).await?;
        }
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

fn spawn_heartbeat(
    storage: Storage,
    path: Path,
    mut info: LeaseInfo,
    ttl: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(ttl / 3).await;
            info.heartbeat = rfc3339(OffsetDateTime::now_utc());
            let _ = storage
                .put(&path, serde_json::to_vec_pretty(&info).unwrap_or_default())
                .await;
        }
    })
}
