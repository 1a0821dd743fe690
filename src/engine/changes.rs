//! What a restore decides, whatever the kind: the modes, the changes key by key (or object by
//! object), the units of work a run journals, and the differences a verification finds.

use serde::{Deserialize, Serialize};

/// What happens to keys that exist in the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Write every entry of the backup that differs; keys not in the backup stay.
    #[default]
    Overwrite,
    /// Write only keys the target does not have.
    Skip,
    /// Afterwards the target equals the backup (under the prefix): keys not in it are deleted,
    /// after the writes have landed.
    Clear,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "overwrite" => Some(Self::Overwrite),
            "skip" => Some(Self::Skip),
            "clear" => Some(Self::Clear),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Overwrite => "overwrite",
            Self::Skip => "skip",
            Self::Clear => "clear",
        }
    }
}

/// What a restore will do, key by key (object by object).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    /// In the backup, not in the target: written.
    pub add: Vec<String>,
    /// In both, different: written (overwrite, clear).
    pub change: Vec<String>,
    /// In both, different, left as they are (skip).
    pub kept: Vec<String>,
    /// In the target only (clear): deleted after the writes.
    pub remove: Vec<String>,
    /// Equal already: nothing sent.
    pub unchanged: u64,
    /// In the backup but expired or about to: skipped (and, in clear mode, deleted from the
    /// target if it has them).
    pub expired: Vec<String>,
}

/// One journaled step of a run: a KV bulk request, or a batch of R2 objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Unit {
    /// Write these keys' (objects') entries from the backup.
    Put { keys: Vec<String> },
    /// Delete these keys (objects).
    Delete { keys: Vec<String> },
}

impl Unit {
    /// The keys (objects) the unit writes or deletes.
    pub fn keys(&self) -> &[String] {
        match self {
            Unit::Put { keys } | Unit::Delete { keys } => keys,
        }
    }
}

/// One way the target differs from what it should hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    pub key: String,
    /// `missing`, `extra`, `value`, `metadata`, `expiration`.
    pub what: String,
}

/// Whether `key` is under `prefix` (everything is, without one).
pub fn under(prefix: Option<&str>, key: &str) -> bool {
    prefix.is_none_or(|p| key.starts_with(p))
}
