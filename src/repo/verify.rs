//! Verification: quick (manifest MAC, every artifact present at its stored size), full (every
//! artifact decrypted, every chunk's tag and both SHA-256 checked), or a random sample of
//! artifacts verified in full. The result is recorded beside the manifest.

use super::storage::Path;
use serde::{Deserialize, Serialize};

use super::manifest::{Artifact, Manifest, rfc3339};
use super::{Repo, RepoError};
use crate::progress::{Counting, Progress};
use crate::seal::Summary;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum VerifyMode {
    Quick,
    Full,
    Sample(f64),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Problem {
    pub artifact: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VerifyReport {
    pub id: String,
    pub at: String,
    pub mode: String,
    pub ok: bool,
    pub artifacts_checked: usize,
    pub bytes_checked: u64,
    pub problems: Vec<Problem>,
}

/// Compares what an open pass measured with what the manifest recorded.
pub fn compare(a: &Artifact, s: &Summary) -> Result<(), String> {
    if s.stored_sha256 != a.stored_sha256 || s.stored_len != a.stored_size {
        return Err(format!(
            "stored bytes have SHA-256 {} ({} bytes), the manifest says {} ({} bytes)",
            s.stored_sha256, s.stored_len, a.stored_sha256, a.stored_size
        ));
    }
    if s.plaintext_sha256 != a.plaintext_sha256 || s.plaintext_len != a.plaintext_size {
        return Err(format!(
            "plaintext has SHA-256 {}, the manifest says {}",
            s.plaintext_sha256, a.plaintext_sha256
        ));
    }
    Ok(())
}

/// A sink that counts plaintext as progress and stops once the job is cancelled.
fn counted(progress: &Progress) -> Counting<std::io::Sink> {
    Counting {
        inner: std::io::sink(),
        progress: progress.clone(),
    }
}

/// Opens a sealed object in full (every chunk checked, plaintext counted as progress): its
/// summary, or what is wrong with it (damaged, missing). Cancellation and repository failures
/// are errors of the whole verification.
async fn open_deep(
    repo: &Repo,
    path: &Path,
    progress: &Progress,
) -> Result<Result<Summary, String>, RepoError> {
    let opened = repo
        .storage
        .open_from(path, &repo.key, counted(progress))
        .await;
    progress.check().map_err(|_| RepoError::Cancelled)?;
    match opened {
        Ok((summary, _)) => Ok(Ok(summary)),
        Err(RepoError::Seal { source, .. }) => Ok(Err(source.to_string())),
        Err(RepoError::MissingArtifact { .. }) => Ok(Err("missing".into())),
        Err(e) => Err(e),
    }
}

pub async fn run(
    repo: &Repo,
    m: &Manifest,
    mode: VerifyMode,
    progress: &Progress,
) -> Result<VerifyReport, RepoError> {
    let deep_bytes: u64 = m.artifacts.iter().map(|a| a.plaintext_size).sum();
    let mut problems = Vec::new();
    // The blobs a backup refers to (R2 bodies): listed by its index, which is read for them
    // (a damaged index is reported with the artifact below, and its blobs cannot be checked).
    let (blobs, unlisted) = match repo.blobs_of(m).await {
        Ok(b) => (b, None),
        Err(e @ (RepoError::Seal { .. } | RepoError::MissingArtifact { .. })) => {
            let p = Problem {
                artifact: "blobs".into(),
                message: format!("not checked: the index that lists them cannot be read ({e})"),
            };
            (Vec::new(), Some(p))
        }
        Err(e) => return Err(e),
    };
    progress.phase_with_bytes(
        "verify",
        "artifacts",
        Some((m.artifacts.len() + blobs.len()) as u64),
        (mode == VerifyMode::Full && blobs.is_empty()).then_some(deep_bytes),
    );
    let cancelled = || progress.check().map_err(|_| RepoError::Cancelled);
    let (mut checked, mut bytes) = (0, 0u64);
    let full: Vec<bool> = match mode {
        VerifyMode::Quick => vec![false; m.artifacts.len()],
        VerifyMode::Full => vec![true; m.artifacts.len()],
        VerifyMode::Sample(pct) => {
            let want = ((m.artifacts.len() as f64 * pct / 100.0).ceil() as usize)
                .clamp(1, m.artifacts.len().max(1));
            let mut picks: Vec<usize> = (0..m.artifacts.len()).collect();
            for i in (1..picks.len()).rev() {
                picks.swap(i, rand::random_range(0..=i));
            }
            let chosen: std::collections::HashSet<usize> = picks.into_iter().take(want).collect();
            (0..m.artifacts.len())
                .map(|i| chosen.contains(&i))
                .collect()
        }
    };
    for (a, deep) in m.artifacts.iter().zip(full) {
        cancelled()?;
        progress.add(1, 0);
        let path = Path::from(format!("{}/{}", m.dir(), a.name));
        checked += 1;
        if !deep {
            match repo.storage.head(&path).await? {
                None => problems.push(Problem {
                    artifact: a.name.clone(),
                    message: "missing".into(),
                }),
                Some(meta) if meta.size != a.stored_size => problems.push(Problem {
                    artifact: a.name.clone(),
                    message: format!(
                        "stored size is {} bytes, the manifest says {}",
                        meta.size, a.stored_size
                    ),
                }),
                Some(_) => {}
            }
            continue;
        }
        let checked_in_full = open_deep(repo, &path, progress).await?.and_then(|s| {
            bytes += s.stored_len;
            compare(a, &s)
        });
        if let Err(message) = checked_in_full {
            problems.push(Problem {
                artifact: a.name.clone(),
                message,
            });
        }
    }
    // The blobs a backup refers to (R2 bodies) are part of it: present, and in full decrypted
    // with their plaintext hashing to their name.
    problems.extend(unlisted);
    for id in blobs {
        cancelled()?;
        progress.add(1, 0);
        let sha = &id.to_string();
        let path = Repo::blob_path(sha);
        let label = format!("blob {sha}");
        checked += 1;
        if mode == VerifyMode::Full {
            let checked_in_full = open_deep(repo, &path, progress).await?.and_then(|s| {
                bytes += s.stored_len;
                if &s.plaintext_sha256 == sha {
                    Ok(())
                } else {
                    Err(format!("plaintext has SHA-256 {}", s.plaintext_sha256))
                }
            });
            if let Err(message) = checked_in_full {
                problems.push(Problem {
                    artifact: label,
                    message,
                });
            }
        } else if repo.storage.head(&path).await?.is_none() {
            problems.push(Problem {
                artifact: label,
                message: "missing".into(),
            });
        }
    }
    cancelled()?;
    progress.finish();
    let report = VerifyReport {
        id: m.id.clone(),
        at: rfc3339(time::OffsetDateTime::now_utc()),
        mode: match mode {
            VerifyMode::Quick => "quick".into(),
            VerifyMode::Full => "full".into(),
            VerifyMode::Sample(p) => format!("sample {p}%"),
        },
        ok: problems.is_empty(),
        artifacts_checked: checked,
        bytes_checked: bytes,
        problems,
    };
    let body =
        serde_json::to_vec_pretty(&report).map_err(|e| RepoError::Internal(e.to_string()))?;
    repo.storage
        .put(&Path::from(format!("{}/verification.json", m.dir())), body)
        .await?;
    let record = super::audit::Record {
        action: "verify".into(),
        target: Some(format!("{} `{}`", m.kind.as_str(), m.target.name)),
        backup: Some(m.id.clone()),
        result: if report.ok { "success" } else { "failed" }.into(),
        detail: Some(match report.problems.first() {
            Some(p) => format!("{} ({}): {}", report.mode, p.artifact, p.message),
            None => format!(
                "{}: {} artifacts checked",
                report.mode, report.artifacts_checked
            ),
        }),
        ..Default::default()
    };
    if let Err(e) = repo.audit(record).await {
        progress.warn(format!("the audit trail could not be written: {e}"));
    }
    Ok(report)
}

impl Repo {
    /// The last recorded verification of a backup, if any.
    pub async fn last_verification(&self, m: &Manifest) -> Result<Option<VerifyReport>, RepoError> {
        Ok(self
            .storage
            .get(&Path::from(format!("{}/verification.json", m.dir())))
            .await?
            .and_then(|b| serde_json::from_slice(&b).ok()))
    }
}
