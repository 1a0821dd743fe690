//! D1's long-running export and import tasks and the presigned URLs they hand out (served by the
//! emulator under `/__signed/…`, no Cloudflare auth, expiring like R2's presigned URLs).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A file behind a presigned URL: an export to download, or an import slot to upload into.
#[derive(Debug, Clone)]
pub struct Transfer {
    pub expires: Instant,
    pub kind: TransferKind,
    pub data: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferKind {
    Export,
    /// An upload slot for database `db`, named `filename`, expected to hash to `etag`.
    Upload {
        db: String,
        filename: String,
        etag: String,
    },
}

#[derive(Debug, Clone)]
pub enum TaskState {
    Active,
    Complete(Value),
    Error(String),
}

/// One export or import, polled by its `at_bookmark`.
#[derive(Debug, Clone)]
pub struct Task {
    pub kind: &'static str,
    pub at_bookmark: String,
    pub state: TaskState,
    pub messages: Vec<String>,
    pub last_poll: Instant,
}

impl Task {
    pub fn new(kind: &'static str, at_bookmark: &str) -> Self {
        Self {
            kind,
            at_bookmark: at_bookmark.to_string(),
            state: TaskState::Active,
            messages: Vec::new(),
            last_poll: Instant::now(),
        }
    }

    /// The polling object and its HTTP status (202 while active, 200 once complete or failed);
    /// messages are handed out once.
    pub fn poll_answer(&mut self) -> (u16, Value) {
        let messages = std::mem::take(&mut self.messages);
        let mut body = json!({
            "success": true,
            "type": self.kind,
            "at_bookmark": self.at_bookmark,
            "messages": messages,
        });
        match &self.state {
            TaskState::Active => {
                body["status"] = json!("active");
                (202, body)
            }
            TaskState::Complete(result) => {
                body["status"] = json!("complete");
                body["result"] = result.clone();
                (200, body)
            }
            TaskState::Error(e) => {
                body["status"] = json!("error");
                body["success"] = json!(false);
                body["error"] = json!(e);
                (200, body)
            }
        }
    }

    pub fn stale(&self, timeout: Duration) -> bool {
        matches!(self.state, TaskState::Active) && self.last_poll.elapsed() > timeout
    }
}

/// A random, unguessable token for a presigned URL.
pub fn token() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}

pub fn signed_url(api_url: &str, token: &str, ttl: Duration) -> String {
    let signature = hex::encode(rand::random::<[u8; 16]>());
    format!(
        "{api_url}/__signed/{token}?X-Amz-Expires={}&X-Amz-Signature={signature}",
        ttl.as_secs()
    )
}
