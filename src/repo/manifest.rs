//! The manifest (`cfdr.manifest/1`): everything known about one backup, with a MAC over its
//! canonical form (keys sorted, no whitespace, without the `mac` field) so tampering is detected.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::seal::MasterKey;

pub const FORMAT: &str = "cfdr.manifest/1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    D1,
    Kv,
    R2,
    Sqlite,
}

impl Kind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::D1 => "d1",
            Kind::Kv => "kv",
            Kind::R2 => "r2",
            Kind::Sqlite => "sqlite",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "d1" => Some(Kind::D1),
            "kv" => Some(Kind::Kv),
            "r2" => Some(Kind::R2),
            "sqlite" => Some(Kind::Sqlite),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    #[serde(default)]
    pub account: Option<String>,
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    pub name: String,
    /// What the plaintext is: `sql-dump`, `ndjson`, `sqlite`, …
    pub format: String,
    pub plaintext_size: u64,
    pub plaintext_sha256: String,
    pub stored_size: u64,
    pub stored_sha256: String,
    pub chunk_size: u32,
    pub chunks: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub id: String,
    pub kind: Kind,
    pub target: Target,
    /// scheduled, manual, pre-recovery, drill
    pub trigger: String,
    pub method: String,
    #[serde(default)]
    pub consistency_point: Option<Value>,
    pub started: String,
    pub finished: String,
    pub artifacts: Vec<Artifact>,
    #[serde(default)]
    pub stats: Value,
    #[serde(default)]
    pub warnings: Vec<String>,
    #[serde(default)]
    pub parent: Option<String>,
    /// Content-addressed blobs this backup refers to (R2 bodies), by SHA-256.
    #[serde(default)]
    pub blobs: Vec<String>,
    pub tool_version: String,
    pub key_id: String,
    #[serde(default)]
    pub mac: String,
}

impl Manifest {
    /// The D1 Time Travel bookmark the backup is consistent at (backups taken by export).
    pub fn bookmark(&self) -> Option<String> {
        self.consistency_point
            .as_ref()
            .and_then(|c| c["bookmark"].as_str())
            .map(str::to_string)
    }

    /// The bytes the MAC covers: canonical JSON without `mac`.
    pub fn canonical(&self) -> Vec<u8> {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(obj) = v.as_object_mut() {
            obj.remove("mac");
        }
        // serde_json's map is ordered by key, so this is canonical.
        serde_json::to_vec(&v).unwrap_or_default()
    }

    pub fn seal(&mut self, key: &MasterKey) {
        self.mac = key.mac("manifest", &self.canonical());
    }

    pub fn mac_ok(&self, key: &MasterKey) -> bool {
        let want = key.mac("manifest", &self.canonical());
        // Constant-time enough for a local check; both are hex of equal length.
        want.len() == self.mac.len()
            && want
                .bytes()
                .zip(self.mac.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    pub fn stored_size(&self) -> u64 {
        self.artifacts.iter().map(|a| a.stored_size).sum()
    }

    pub fn plaintext_size(&self) -> u64 {
        self.artifacts.iter().map(|a| a.plaintext_size).sum()
    }

    /// `snapshots/<kind>/<target>/<id>`.
    pub fn dir(&self) -> String {
        snapshot_dir(&self.kind, &self.target.name, &self.id)
    }
}

pub fn snapshot_dir(kind: &Kind, target: &str, id: &str) -> String {
    format!("snapshots/{}/{}/{id}", kind.as_str(), path_safe(target))
}

/// A target name as one path segment: anything outside `[A-Za-z0-9._-]` is percent-encoded.
pub fn path_safe(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `2026-11-23T02-00-00Z-3f9a`: sorts by time, reads well.
pub fn new_id(at: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]-[minute]-[second]Z");
    format!(
        "{}-{}",
        at.format(&f).unwrap_or_default(),
        hex::encode(rand::random::<[u8; 2]>())
    )
}

pub fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub fn parse_time(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            format: FORMAT.into(),
            id: "2026-11-23T02-00-00Z-3f9a".into(),
            kind: Kind::D1,
            target: Target {
                account: None,
                id: "u".into(),
                name: "auth prod".into(),
            },
            trigger: "manual".into(),
            method: "paged".into(),
            consistency_point: None,
            started: "2026-11-23T02:00:00Z".into(),
            finished: "2026-11-23T02:00:05Z".into(),
            artifacts: vec![],
            stats: serde_json::json!({ "tables": [{ "name": "t", "rows": 3 }] }),
            warnings: vec![],
            parent: None,
            blobs: vec![],
            tool_version: "cfdr 0.1.0".into(),
            key_id: "a1b2c3d4".into(),
            mac: String::new(),
        }
    }

    #[test]
    fn any_edit_breaks_the_mac() {
        let key = MasterKey::from_bytes([3; 32]);
        let mut m = sample();
        m.seal(&key);
        assert!(m.mac_ok(&key));
        assert!(!m.mac_ok(&MasterKey::from_bytes([4; 32])));
        let mut edited = m.clone();
        edited.stats["tables"][0]["rows"] = serde_json::json!(4);
        assert!(!edited.mac_ok(&key));
        let text = serde_json::to_string_pretty(&m).unwrap();
        let back: Manifest = serde_json::from_str(&text).unwrap();
        assert!(
            back.mac_ok(&key),
            "the MAC survives a round trip through pretty JSON"
        );
    }

    #[test]
    fn ids_sort_by_time_and_targets_are_path_safe() {
        let a = new_id(time::macros::datetime!(2026-11-23 02:00:00 UTC));
        let b = new_id(time::macros::datetime!(2026-11-23 02:00:01 UTC));
        assert!(a < b && a.starts_with("2026-11-23T02-00-00Z-"));
        assert_eq!(path_safe("auth prod/../x"), "auth%20prod%2F..%2Fx");
        assert_eq!(
            sample().dir(),
            "snapshots/d1/auth%20prod/2026-11-23T02-00-00Z-3f9a"
        );
    }
}
