//! R2 buckets through the v4 API: the inventory (the objects themselves go through R2's S3
//! endpoint, `r2.rs`).

use reqwest::Method;

use super::client::{Body, CfError, Client};

impl Client {
    /// The account's bucket names (cursor pages of 1,000).
    pub async fn r2_buckets(&self) -> Result<Vec<String>, CfError> {
        let mut names = Vec::new();
        let mut cursor = None;
        loop {
            let q = [("per_page", "1000".to_string())];
            let (a, next) = self
                .cursor_page("/r2/buckets", &q, cursor.as_deref())
                .await?;
            names.extend(
                a.result["buckets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|b| b["name"].as_str().map(str::to_string)),
            );
            match next {
                Some(n) => cursor = Some(n),
                None => return Ok(names),
            }
        }
    }

    pub async fn r2_create_bucket(&self, name: &str) -> Result<(), CfError> {
        self.call(
            Method::POST,
            "/r2/buckets",
            &[],
            Body::Json(serde_json::json!({ "name": name })),
        )
        .await?;
        Ok(())
    }

    /// Deletes an empty bucket (Cloudflare refuses one that holds objects, code 10008).
    pub async fn r2_delete_bucket(&self, name: &str) -> Result<(), CfError> {
        self.call(
            Method::DELETE,
            &format!("/r2/buckets/{name}"),
            &[],
            Body::None,
        )
        .await?;
        Ok(())
    }
}
