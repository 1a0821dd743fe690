//! R2's S3 endpoint: s3s (a real S3 protocol implementation with SigV4) over s3s-fs, rooted at
//! the same directory as the v4 bucket routes.

use std::path::Path;

use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};

/// The service the S3 listener serves: SigV4 with the configured key pair.
pub fn service(
    root: &Path,
    access_key_id: &str,
    secret_access_key: &str,
) -> anyhow::Result<S3Service> {
    let fs = s3s_fs::FileSystem::new(root)
        .map_err(|e| anyhow::anyhow!("cannot open R2 root `{}`: {e:?}", root.display()))?;
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(SimpleAuth::from_single(access_key_id, secret_access_key));
    Ok(builder.build())
}

/// An unauthenticated in-process service for seeding (never bound to a socket).
pub fn internal_service(root: &Path) -> anyhow::Result<S3Service> {
    let fs = s3s_fs::FileSystem::new(root)
        .map_err(|e| anyhow::anyhow!("cannot open R2 root `{}`: {e:?}", root.display()))?;
    Ok(S3ServiceBuilder::new(fs).build())
}

/// A route label for the stats (the method is added in front): bucket or object level
/// (`S3 /{bucket}/{key}`).
pub fn route_label(path: &str, query: Option<&str>) -> String {
    let trimmed = path.trim_start_matches('/');
    let level = match trimmed.split_once('/') {
        _ if trimmed.is_empty() => "/",
        Some((_, key)) if !key.is_empty() => "/{bucket}/{key}",
        _ => "/{bucket}",
    };
    let sub = query
        .map(|q| {
            q.split('&')
                .map(|kv| kv.split('=').next().unwrap_or(""))
                .filter(|k| {
                    matches!(
                        *k,
                        "uploads" | "uploadId" | "list-type" | "delete" | "partNumber"
                    )
                })
                .collect::<Vec<_>>()
                .join("&")
        })
        .filter(|s| !s.is_empty())
        .map(|s| format!("?{s}"))
        .unwrap_or_default();
    format!("S3 {level}{sub}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn s3_routes_are_labelled_by_level() {
        assert_eq!(super::route_label("/", None), "S3 /");
        assert_eq!(
            super::route_label("/b", Some("list-type=2&prefix=x")),
            "S3 /{bucket}?list-type"
        );
        assert_eq!(super::route_label("/b/a/b.txt", None), "S3 /{bucket}/{key}");
    }
}
