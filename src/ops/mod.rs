//! The operations both faces call — the command line and the console run the same functions
//! here, so an operation behaves the same from either: backup, prune, notify, the inventory.
//! Each reports through a [`Progress`](crate::progress::Progress) handle its caller supplies and
//! fails with a typed [`Error`]; the command line chooses the exit code from it.

pub mod audit;
pub mod backup;
pub mod import;
pub mod inventory;
pub mod notify;
pub mod probe;
pub mod prune;
pub mod restore;
pub mod status;
pub mod workers;

use crate::cloudflare::{CfError, S3Error};
use crate::engine::d1::D1Error;
use crate::engine::kv::KvError;
use crate::engine::r2::R2Error;
use crate::engine::sqlite::SqliteError;
use crate::progress::Cancelled;
use crate::repo::RepoError;

/// Why an operation failed, in the classes an operator (and a script) acts on differently.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag, a value, a file or the configuration needs fixing.
    #[error("{0}")]
    Usage(String),
    /// Data failed a check: corrupt, incomplete, or not what it should be.
    #[error("{0}")]
    Verification(String),
    /// Cloudflare's REST API or the network to it.
    #[error(transparent)]
    Cloudflare(#[from] CfError),
    /// R2's S3 endpoint or the network to it.
    #[error(transparent)]
    R2(#[from] S3Error),
    /// Cloudflare answered, but not as a backup or restore can use (an export that failed, a
    /// key that vanished while it was read).
    #[error("{0}")]
    Remote(String),
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// This machine: a temporary file, the disk, a task that died.
    #[error("{0}")]
    Local(String),
    #[error(transparent)]
    Cancelled(#[from] Cancelled),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn usage(message: impl Into<String>) -> Self {
        Self::Usage(message.into())
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Self::Local(e.to_string())
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Self::Local(format!("encoding JSON: {e}"))
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::Local(format!("a worker task died: {e}"))
    }
}

impl From<D1Error> for Error {
    fn from(e: D1Error) -> Self {
        match e {
            D1Error::Cloudflare(c) => Self::Cloudflare(c),
            D1Error::Cancelled(c) => Self::Cancelled(c),
            D1Error::Io(e) => Self::Local(format!("writing the dump: {e}")),
            other => Self::Remote(other.to_string()),
        }
    }
}

impl From<KvError> for Error {
    fn from(e: KvError) -> Self {
        match e {
            KvError::Cloudflare(c) => Self::Cloudflare(c),
            KvError::Cancelled(c) => Self::Cancelled(c),
            KvError::Io(e) => Self::Local(format!("writing the artifact: {e}")),
            other => Self::Remote(other.to_string()),
        }
    }
}

impl From<R2Error> for Error {
    fn from(e: R2Error) -> Self {
        match e {
            R2Error::S3(e) => Self::R2(e),
            R2Error::Repo(e) => Self::Repo(e),
            R2Error::Cancelled(c) => Self::Cancelled(c),
            R2Error::Io(e) => Self::Local(format!("writing the index: {e}")),
        }
    }
}

impl From<SqliteError> for Error {
    fn from(e: SqliteError) -> Self {
        match e {
            SqliteError::Open(_) => Self::Usage(e.to_string()),
            SqliteError::Integrity { .. } => Self::Verification(e.to_string()),
            SqliteError::Local(_) => Self::Local(e.to_string()),
        }
    }
}
