//! Where the backups to import are: a local file or folder, or a bucket prefix read through
//! R2's S3 endpoint (`r2://bucket/prefix`). Listing says what is there (name, size, time,
//! checksum where the store keeps one); fetching brings one file into a temporary file, or
//! hands out the local path as it is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use crate::cloudflare::{R2Credentials, S3Client};
use crate::config::Config;
use crate::ops::{Error, Result};

/// A source of backups.
pub enum Source {
    Local(PathBuf),
    R2 {
        s3: Box<S3Client>,
        bucket: String,
        prefix: String,
    },
}

/// One file found at the source.
#[derive(Debug, Clone)]
pub struct Found {
    /// Where it is, as the operator would name it: a path, or `r2://bucket/key`.
    pub location: String,
    /// Its path below the source (a folder's file) or its own name (a single file).
    pub name: String,
    pub size: u64,
    pub modified: Option<OffsetDateTime>,
    /// Custom metadata the store keeps with it (R2: `x-amz-meta-*`, read when it is fetched).
    pub metadata: BTreeMap<String, String>,
}

impl Found {
    /// The file's name without its folders.
    pub fn file_name(&self) -> &str {
        self.name.rsplit('/').next().unwrap_or(&self.name)
    }

    /// The folder it is in, below the source (`""` at the top).
    pub fn folder(&self) -> &str {
        self.name.rsplit_once('/').map_or("", |(d, _)| d)
    }
}

/// A fetched file: its local path, kept alive as long as the value.
pub struct Fetched {
    pub path: PathBuf,
    _tmp: Option<tempfile::TempPath>,
}

impl Source {
    pub fn open(source: &str, config: &Config) -> Result<Self> {
        if let Some(rest) = source.strip_prefix("r2://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(Error::usage(format!(
                    "`{source}` names no bucket: give r2://BUCKET/PREFIX"
                )));
            }
            let s3 = R2Credentials::from_config(config)
                .and_then(|c| S3Client::new(c, Default::default()))
                .map_err(|e| {
                    Error::usage(format!(
                        "reading `{source}` needs R2's S3 endpoint and keys: {e}"
                    ))
                })?;
            return Ok(Source::R2 {
                s3: Box::new(s3),
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
            });
        }
        let path = PathBuf::from(source);
        if !path.exists() {
            return Err(Error::usage(format!(
                "`{source}` does not exist: give a file, a folder, or r2://bucket/prefix"
            )));
        }
        // The location is what a second import recognises: the same file however it is named
        // (relative or absolute, through a link).
        Ok(Source::Local(std::fs::canonicalize(&path).unwrap_or(path)))
    }

    /// Every file at the source, by name.
    pub async fn list(&self) -> Result<Vec<Found>> {
        match self {
            Source::Local(root) => {
                let mut out = Vec::new();
                if root.is_file() {
                    out.push(local(
                        root,
                        root.file_name()
                            .map_or(String::new(), |n| n.to_string_lossy().into_owned()),
                    )?);
                } else {
                    walk(root, root, &mut out)?;
                }
                out.sort_by(|a, b| a.name.cmp(&b.name));
                Ok(out)
            }
            Source::R2 { s3, bucket, prefix } => {
                let listed = s3.list(bucket, prefix).await?;
                Ok(listed
                    .into_iter()
                    .map(|o| Found {
                        location: format!("r2://{bucket}/{}", o.key),
                        name: o.key[prefix.len()..].trim_start_matches('/').to_string(),
                        size: o.size,
                        modified: crate::repo::manifest::parse_time(&o.last_modified),
                        metadata: BTreeMap::new(),
                    })
                    .collect())
            }
        }
    }

    /// The file `f` on local disk; R2's custom metadata filled into `f`.
    pub async fn fetch(&self, f: &mut Found) -> Result<Fetched> {
        match self {
            Source::Local(_) => Ok(Fetched {
                path: PathBuf::from(&f.location),
                _tmp: None,
            }),
            Source::R2 { s3, bucket, .. } => {
                let key = f
                    .location
                    .strip_prefix(&format!("r2://{bucket}/"))
                    .unwrap_or(&f.location)
                    .to_string();
                let tmp = tempfile::Builder::new().prefix("cfdr-import-").tempfile()?;
                let mut file = tmp.reopen()?;
                let head = s3
                    .get(bucket, &key, None, None, &mut |b: bytes::Bytes| {
                        std::io::Write::write_all(&mut file, &b).map_err(|e| e.to_string())
                    })
                    .await?;
                f.metadata = head.metadata;
                Ok(Fetched {
                    path: tmp.path().to_path_buf(),
                    _tmp: Some(tmp.into_temp_path()),
                })
            }
        }
    }
}

fn local(path: &Path, name: String) -> Result<Found> {
    let meta = std::fs::metadata(path)?;
    Ok(Found {
        location: path.display().to_string(),
        name,
        size: meta.len(),
        modified: meta.modified().ok().map(OffsetDateTime::from),
        metadata: BTreeMap::new(),
    })
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<Found>) -> Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            walk(root, &p, out)?;
        } else if p.is_file() {
            let name = p
                .strip_prefix(root)
                .unwrap_or(&p)
                .to_string_lossy()
                .replace('\\', "/");
            out.push(local(&p, name)?);
        }
    }
    Ok(())
}
