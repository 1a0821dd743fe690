//! Stable exit codes, documented in the README: scripts rely on them.

use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything worked.
    Ok = 0,
    /// A verification found a problem (corrupt, missing or tampered data).
    Verification = 1,
    /// Usage or configuration error: a flag, a value or the environment needs fixing.
    Usage = 2,
    /// Cloudflare or the network failed.
    Cloudflare = 3,
    /// The repository is locked by another writer.
    Locked = 4,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

/// An error that knows which exit code it deserves.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Exit::Usage, message)
    }
}

/// A Cloudflare or network failure, as the operator reads it.
pub fn cloudflare_failed(e: impl std::fmt::Display) -> Failure {
    Failure::new(Exit::Cloudflare, e.to_string())
}

/// A repository failure, with the exit code its kind deserves.
pub fn fail(e: crate::repo::RepoError) -> Failure {
    Failure::new(e.exit(), e.to_string())
}
