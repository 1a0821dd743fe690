//! Stable exit codes, documented in the README: scripts rely on them. The code is chosen here,
//! at the edge, from the typed error an operation returned; nothing below the command line
//! knows about exit codes.

use std::process::ExitCode;

use crate::cloudflare::{CfError, S3Error};
use crate::ops;
use crate::progress::Cancelled;
use crate::repo::RepoError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything worked.
    Ok = 0,
    /// A verification found a problem (corrupt, missing or tampered data, a difference).
    Verification = 1,
    /// Usage or configuration error: a flag, a value or the environment needs fixing.
    Usage = 2,
    /// Cloudflare or the network failed (or a repository on S3).
    Cloudflare = 3,
    /// The repository (or a restore's target) is locked by another operator.
    Locked = 4,
    /// This machine failed: the disk, a local file or directory, a task that died.
    Local = 5,
    /// Interrupted by the operator (Ctrl-C).
    Interrupted = 130,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

/// An error the command line itself finds (a flag that does not fit, a missing setting), with
/// the exit code it deserves.
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

/// An error as the operator reads it: each cause in its chain after the message, unless the
/// message already ends with it (typed errors often print their source themselves).
pub fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.is_empty() {
            out = text;
        } else if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}

/// The exit code for an error: the first typed error in its chain decides.
pub fn exit_of(e: &anyhow::Error) -> Exit {
    for cause in e.chain() {
        if let Some(f) = cause.downcast_ref::<Failure>() {
            return f.exit;
        }
        if let Some(e) = cause.downcast_ref::<ops::Error>() {
            return of_op(e);
        }
        if let Some(e) = cause.downcast_ref::<RepoError>() {
            return of_repo(e);
        }
        if let Some(e) = cause.downcast_ref::<S3Error>() {
            return of_s3(e);
        }
        if cause.is::<CfError>() {
            return Exit::Cloudflare;
        }
        if cause.is::<Cancelled>() {
            return Exit::Interrupted;
        }
        if cause.is::<std::io::Error>() {
            return Exit::Local;
        }
    }
    Exit::Local
}

fn of_op(e: &ops::Error) -> Exit {
    match e {
        ops::Error::Usage(_) => Exit::Usage,
        ops::Error::Verification(_) => Exit::Verification,
        ops::Error::Cloudflare(_) | ops::Error::Remote(_) => Exit::Cloudflare,
        ops::Error::R2(e) => of_s3(e),
        ops::Error::Repo(e) => of_repo(e),
        ops::Error::Local(_) => Exit::Local,
        ops::Error::Cancelled(_) => Exit::Interrupted,
    }
}

fn of_s3(e: &S3Error) -> Exit {
    match e {
        S3Error::Usage(_) => Exit::Usage,
        S3Error::Sink(_) => Exit::Local,
        _ => Exit::Cloudflare,
    }
}

fn of_repo(e: &RepoError) -> Exit {
    match e {
        RepoError::Locked { .. } => Exit::Locked,
        // The repository's key was checked when it was opened: an artifact naming another key
        // has a damaged header or comes from elsewhere.
        RepoError::Seal { .. }
        | RepoError::MissingArtifact { .. }
        | RepoError::Tampered { .. }
        | RepoError::BlobsUnreadable { .. } => Exit::Verification,
        RepoError::Store { remote: true, .. } => Exit::Cloudflare,
        RepoError::Store { remote: false, .. } | RepoError::Internal(_) => Exit::Local,
        RepoError::Cancelled => Exit::Interrupted,
        RepoError::Usage(_)
        | RepoError::NotARepo { .. }
        | RepoError::AlreadyARepo { .. }
        | RepoError::KeyMismatch { .. }
        | RepoError::NotFound { .. }
        | RepoError::NoSuchArtifact { .. } => Exit::Usage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(e: impl Into<anyhow::Error>) -> Exit {
        exit_of(&e.into())
    }

    #[test]
    fn a_cause_the_message_already_says_is_not_said_twice() {
        let seal = RepoError::Seal {
            artifact: "blobs/ab/abc".into(),
            source: crate::seal::SealError::Io(std::io::Error::other("chunk 3 is bad")),
        };
        assert_eq!(
            describe(&anyhow::Error::from(seal)),
            "artifact `blobs/ab/abc`: chunk 3 is bad"
        );
        let e = anyhow::Error::from(std::io::Error::other("disk full")).context("writing run.json");
        assert_eq!(describe(&e), "writing run.json: disk full");
    }

    #[test]
    fn the_typed_error_picks_the_code_through_any_context() {
        let usage = anyhow::Error::from(ops::Error::usage("bad flag")).context("restoring");
        assert_eq!(exit_of(&usage), Exit::Usage);
        let local = std::io::Error::other("disk full");
        assert_eq!(code(local), Exit::Local);
        assert_eq!(
            code(ops::Error::from(std::io::Error::other("x"))),
            Exit::Local
        );
        let store = |remote| RepoError::Store {
            location: "here".into(),
            path: "p".into(),
            message: "m".into(),
            remote,
        };
        assert_eq!(code(store(false)), Exit::Local);
        assert_eq!(code(store(true)), Exit::Cloudflare);
        assert_eq!(code(ops::Error::Repo(store(true))), Exit::Cloudflare);
        let locked = RepoError::Locked {
            what: "repository".into(),
            owner: "o".into(),
            host: "h".into(),
            since: "s".into(),
            purpose: "p".into(),
        };
        assert_eq!(code(ops::Error::Repo(locked)), Exit::Locked);
        assert_eq!(
            code(ops::Error::Verification("diff".into())),
            Exit::Verification
        );
        assert_eq!(
            code(ops::Error::Remote("export failed".into())),
            Exit::Cloudflare
        );
        assert_eq!(code(Failure::usage("x")), Exit::Usage);
    }
}
