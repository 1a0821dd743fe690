//! Telling people: a failure posted to a Discord- or Slack-compatible webhook (`content` and
//! `text` both carry it). This is the one place besides `cloudflare/` that makes HTTP requests;
//! it talks to the team's chat, never to Cloudflare.

/// Posts `error` as a failure of a backup on this host. The message is the error the operator
/// sees, which never holds a secret. A webhook that fails is a warning for the caller to show,
/// not a failure of its own.
pub async fn post_failure(url: &str, error: &str) -> Result<(), String> {
    let (_, host) = crate::repo::lease::whoami();
    post(url, &format!("cfdr backup failed on {host}: {error}")).await
}

/// Posts `text` to the webhook at `url`; an error says why in words that never hold the URL
/// (a webhook URL is a secret of its own).
pub async fn post(url: &str, text: &str) -> Result<(), String> {
    let body = serde_json::json!({ "content": text, "text": text });
    let sent = crate::cloudflare::http()
        .build()
        .map_err(|e| e.to_string())?
        .post(url)
        .json(&body)
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("the --notify webhook answered {}", r.status())),
        Err(e) => Err(format!(
            "the --notify webhook could not be reached: {}",
            e.without_url()
        )),
    }
}
