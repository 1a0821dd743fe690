//! Looking at a live target the way an operator checks it by hand: a SQL query's first value
//! in a D1 database, a KV key's value, whether an R2 object is there. Reads only; a playbook's
//! `check` step compares what these find with what it expects.

use super::backup::Env;
use super::{Error, Result};
use crate::progress::Progress;

/// What a probe found, as text: a SQL value as SQLite prints it (`NULL` for null), a key's
/// value (`absent` when there is none), an object's `present` or `absent`.
pub async fn sql(env: &Env<'_>, database: &str, query: &str) -> Result<String> {
    let client = client(env)?;
    let db = client.d1_database(database).await?.ok_or_else(|| {
        Error::usage(format!(
            "no D1 database `{database}` in account `{}` to run `{query}` on",
            client.account()
        ))
    })?;
    let rows = client.d1_raw(&db.uuid, query, &[]).await?;
    Ok(match rows.first().and_then(|r| r.first()) {
        None => "(no rows)".to_string(),
        Some(serde_json::Value::Null) => "NULL".to_string(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    })
}

pub async fn key(env: &Env<'_>, namespace: &str, key: &str) -> Result<String> {
    let client = client(env)?;
    let ns = client.kv_namespace(namespace).await?.ok_or_else(|| {
        Error::usage(format!(
            "no KV namespace `{namespace}` in account `{}` to read key `{key}` of",
            client.account()
        ))
    })?;
    match client.kv_value(&ns.id, key).await {
        Ok(v) => Ok(String::from_utf8_lossy(&v).into_owned()),
        Err(e) if e.status() == Some(404) => Ok("absent".to_string()),
        Err(e) => Err(e.into()),
    }
}

pub async fn object(env: &Env<'_>, bucket: &str, key: &str, progress: &Progress) -> Result<String> {
    let s3 = super::restore::r2::client(env, crate::cloudflare::RetryPolicy::default(), progress)?;
    Ok(match s3.head(bucket, key).await? {
        Some(_) => "present",
        None => "absent",
    }
    .to_string())
}

fn client<'a>(env: &Env<'a>) -> Result<&'a crate::cloudflare::Client> {
    env.client.ok_or_else(|| {
        Error::usage("set CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID to check a live target")
    })
}
