//! The audit trail: `audit/<yyyy-mm>.jsonl`, one line per action — backup, verify, prune,
//! restore, undo, each playbook step, drill — with who (OS user and host), what, the target,
//! the backup, the run, the result and the time it took. Entries are numbered, each carries
//! the MAC of the one before it and a MAC of its own (under the repository key), and
//! `audit/head.json` holds the last entry's number and MAC, itself MAC'd: editing, removing or
//! reordering any entry — the last ones included — is found by [`Repo::audit_check`], which
//! names it. Appends happen under a lease (`locks/audit.json`, taken by conditional create),
//! so two writers on one S3 repository never fork the chain.

use super::storage::Path;
use serde::{Deserialize, Serialize};

use super::lease::{self, Lease};
use super::manifest::rfc3339;
use super::{Repo, RepoError};

const HEAD: &str = "audit/head.json";
const LOCK: &str = "locks/audit.json";
const PURPOSE: &str = "audit";

/// What a caller records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// backup, verify, prune, restore, undo, playbook-run, playbook-step, drill.
    pub action: String,
    /// ``d1 `shop` ``.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// success, partial, failed, started, stopped, skipped.
    pub result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// A line of what happened (an error's message, a step's note).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// An entry as the trail holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    pub at: String,
    /// `user@host`.
    pub who: String,
    #[serde(flatten)]
    pub record: Record,
    /// The MAC of the entry before (empty for the first).
    pub prev: String,
    pub mac: String,
}

impl Entry {
    /// The bytes the MAC covers: the entry as JSON with an empty MAC.
    fn signed(&self) -> Vec<u8> {
        let mut e = self.clone();
        e.mac = String::new();
        serde_json::to_vec(&e).unwrap_or_default()
    }

    /// A line naming the entry for the operator.
    pub fn label(&self) -> String {
        format!(
            "entry {} ({}, {} {}{})",
            self.seq,
            self.at,
            self.record.action,
            self.record.result,
            self.record
                .target
                .as_ref()
                .map(|t| format!(" {t}"))
                .unwrap_or_default()
        )
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Head {
    seq: u64,
    /// The last entry's MAC.
    last: String,
    mac: String,
}

impl Head {
    fn signed(&self) -> Vec<u8> {
        format!("{}\n{}", self.seq, self.last).into_bytes()
    }
}

/// What `cfdr audit verify` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Check {
    pub entries: u64,
    pub files: usize,
    /// Each problem, naming the file, line and entry.
    pub problems: Vec<String>,
}

fn month_file(at: &str) -> String {
    format!("audit/{}.jsonl", at.get(..7).unwrap_or("0000-00"))
}

impl Repo {
    /// Appends `record` to the trail, chained to the entry before it.
    pub async fn audit(&self, record: Record) -> Result<Entry, RepoError> {
        let lease = self.audit_lease().await?;
        let appended = self.append(record).await;
        let released = lease.release().await;
        let entry = appended?;
        released?;
        Ok(entry)
    }

    /// The audit lease: a writer waits a little for another one to finish its append.
    async fn audit_lease(&self) -> Result<Lease, RepoError> {
        let mut tries = 0;
        loop {
            match Lease::acquire_at(
                &self.storage,
                LOCK,
                "audit trail",
                "append an audit entry",
                std::time::Duration::from_secs(30),
            )
            .await
            {
                Err(RepoError::Locked { .. }) if tries < 100 => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                other => return other,
            }
        }
    }

    async fn append(&self, record: Record) -> Result<Entry, RepoError> {
        let head: Option<Head> = match self.storage.get(&Path::from(HEAD)).await? {
            Some(b) => Some(serde_json::from_slice(&b).map_err(|e| {
                RepoError::Internal(format!(
                    "{HEAD} cannot be read ({e}); run `cfdr audit verify`"
                ))
            })?),
            None => None,
        };
        let now = rfc3339(time::OffsetDateTime::now_utc());
        let mut entry = Entry {
            seq: head.as_ref().map_or(1, |h| h.seq + 1),
            at: now,
            who: lease::who(),
            record,
            prev: head.map(|h| h.last).unwrap_or_default(),
            mac: String::new(),
        };
        entry.mac = self.key.mac(PURPOSE, &entry.signed());
        let file = Path::from(month_file(&entry.at));
        let mut text = match self.storage.get(&file).await? {
            Some(b) => b.to_vec(),
            None => Vec::new(),
        };
        if !text.is_empty() && !text.ends_with(b"\n") {
            text.push(b'\n');
        }
        text.extend(serde_json::to_vec(&entry).map_err(|e| RepoError::Internal(e.to_string()))?);
        text.push(b'\n');
        self.storage.put(&file, text).await?;
        let mut head = Head {
            seq: entry.seq,
            last: entry.mac.clone(),
            mac: String::new(),
        };
        head.mac = self.key.mac(PURPOSE, &head.signed());
        self.storage
            .put(
                &Path::from(HEAD),
                serde_json::to_vec_pretty(&head).map_err(|e| RepoError::Internal(e.to_string()))?,
            )
            .await?;
        Ok(entry)
    }

    /// Every entry in order, as the files hold them (a line that is not an entry is skipped;
    /// [`Repo::audit_check`] names it).
    pub async fn audit_entries(&self) -> Result<Vec<Entry>, RepoError> {
        Ok(self
            .audit_lines()
            .await?
            .into_iter()
            .filter_map(|(_, _, e)| e.ok())
            .collect())
    }

    /// (file, line number, the entry or why the line is not one), files in month order.
    async fn audit_lines(&self) -> Result<Vec<(String, usize, Result<Entry, String>)>, RepoError> {
        let mut files: Vec<String> = self
            .storage
            .list(&Path::from("audit"))
            .await?
            .into_iter()
            .map(|m| m.location.to_string())
            .filter(|p| p.ends_with(".jsonl"))
            .collect();
        files.sort();
        let mut out = Vec::new();
        for f in files {
            let bytes = self.storage.get(&Path::from(f.as_str())).await?;
            let text = String::from_utf8_lossy(bytes.as_deref().unwrap_or_default()).into_owned();
            for (n, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                out.push((
                    f.clone(),
                    n + 1,
                    serde_json::from_str::<Entry>(line).map_err(|e| e.to_string()),
                ));
            }
        }
        Ok(out)
    }

    /// Checks the whole trail: every entry's MAC, the chain from each entry to the one before,
    /// the numbering, and the head. Each problem names where it is.
    pub async fn audit_check(&self) -> Result<Check, RepoError> {
        let lines = self.audit_lines().await?;
        let mut check = Check {
            files: {
                let mut f: Vec<&String> = lines.iter().map(|(f, _, _)| f).collect();
                f.dedup();
                f.len()
            },
            ..Default::default()
        };
        let mut expected = 1u64;
        let mut prev = String::new();
        for (file, line, entry) in &lines {
            let e = match entry {
                Ok(e) => e,
                Err(why) => {
                    check.problems.push(format!(
                        "{file} line {line}: not an audit entry ({why}): edited by hand"
                    ));
                    continue;
                }
            };
            check.entries += 1;
            if self.key.mac(PURPOSE, &e.signed()) != e.mac {
                check.problems.push(format!(
                    "{file} line {line}: {} was edited: its MAC does not match what it says",
                    e.label()
                ));
            }
            if e.seq != expected {
                check.problems.push(if e.seq > expected {
                    format!(
                        "{file} line {line}: {} comes where entry {expected} belongs: entries {expected}–{} were removed (or moved)",
                        e.label(),
                        e.seq - 1
                    )
                } else {
                    format!(
                        "{file} line {line}: {} comes after entry {}: the entries were reordered or repeated",
                        e.label(),
                        expected - 1
                    )
                });
            } else if e.prev != prev {
                check.problems.push(format!(
                    "{file} line {line}: {} does not follow the entry before it: the one before was edited, removed or reordered",
                    e.label()
                ));
            }
            expected = e.seq + 1;
            prev = e.mac.clone();
        }
        match self.storage.get(&Path::from(HEAD)).await? {
            None if check.entries == 0 => {}
            None => check
                .problems
                .push(format!("{HEAD} is missing: the trail's end cannot be proven")),
            Some(b) => match serde_json::from_slice::<Head>(&b) {
                Err(e) => check
                    .problems
                    .push(format!("{HEAD} cannot be read ({e}): edited by hand")),
                Ok(h) if self.key.mac(PURPOSE, &h.signed()) != h.mac => check
                    .problems
                    .push(format!("{HEAD} was edited: its MAC does not match")),
                Ok(h) if h.seq != expected - 1 || h.last != prev => {
                    check.problems.push(if h.seq >= expected {
                        format!(
                            "the trail ends at entry {} but the last written was entry {}: entries {expected}–{} were removed",
                            expected - 1,
                            h.seq,
                            h.seq
                        )
                    } else {
                        format!(
                            "the last entry (entry {}) is not the one last written (entry {}): the end of the trail was replaced",
                            expected - 1,
                            h.seq
                        )
                    })
                }
                Ok(_) => {}
            },
        }
        Ok(check)
    }
}
