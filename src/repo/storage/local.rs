//! A local repository's files: written under a staging name, synced, then renamed (or linked,
//! when the name must be free); listed recursively with the staging names left out.

use std::io::{Read, Write as _};

use super::{ObjectMeta, Path};
use crate::seal::{self, MasterKey, SealError, Summary};

/// Where a local `put` or `create` writes before its file takes the final name; listings skip
/// these names.
pub(super) const STAGING: &str = ".cfdr-put-";

/// `None` for what is not there.
pub(super) fn absent_as_none<T>(r: std::io::Result<T>) -> std::io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// `bytes` written and synced under a staging name beside `file` (its folders made).
pub(super) fn staged(
    file: &std::path::Path,
    bytes: &[u8],
) -> std::io::Result<tempfile::NamedTempFile> {
    let dir = file
        .parent()
        .ok_or_else(|| std::io::Error::other("the path has no folder"))?;
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(STAGING).tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    Ok(tmp)
}

/// Every file under `dir` (none when it does not exist) with its path relative to `root`;
/// staging files skipped.
pub(super) fn walk(
    root: &std::path::Path,
    dir: &std::path::Path,
    out: &mut Vec<ObjectMeta>,
) -> std::io::Result<()> {
    let Some(entries) = absent_as_none(std::fs::read_dir(dir))? else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            walk(root, &path, out)?;
        } else if kind.is_file() && !entry.file_name().to_string_lossy().starts_with(STAGING) {
            let rel = path
                .strip_prefix(root)
                .map_err(std::io::Error::other)?
                .to_string_lossy()
                .replace('\\', "/");
            out.push(ObjectMeta {
                location: Path::from(rel),
                size: entry.metadata()?.len(),
            });
        }
    }
    Ok(())
}

/// Seals into a temporary file beside `file`, synced, then renamed into place: a crash never
/// leaves a half-written artifact under its final name.
pub(super) fn seal_file(
    file: &std::path::Path,
    input: impl Read,
    key: &MasterKey,
    chunk: u32,
) -> Result<Summary, SealError> {
    let dir = file
        .parent()
        .ok_or_else(|| SealError::Io(std::io::Error::other("artifact path has no directory")))?;
    std::fs::create_dir_all(dir)?;
    let tmp = tempfile::Builder::new()
        .prefix(".cfdr-partial-")
        .tempfile_in(dir)?;
    let summary = seal::seal(input, tmp.as_file(), key, chunk)?;
    tmp.as_file().sync_all()?;
    tmp.persist(file).map_err(|e| SealError::Io(e.error))?;
    Ok(summary)
}
