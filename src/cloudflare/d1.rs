//! D1 through the v4 API, typed: databases (find, create), statements through `/raw`, the
//! export and import polling flows, and Time Travel (bookmarks, in-place restores).

use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Body, CfError, Client};

/// D1 takes an import file of at most this many bytes (the contract: 5 GB).
pub const MAX_IMPORT_BYTES: u64 = 5_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    pub uuid: String,
    pub name: String,
}

/// Where an export or an import stands, from one answer of its polling flow.
#[derive(Debug, Clone, PartialEq)]
pub enum Task {
    /// Still running: poll again with this bookmark.
    Active {
        at_bookmark: String,
    },
    Complete {
        at_bookmark: String,
        result: Value,
    },
    Error {
        at_bookmark: String,
        message: String,
    },
}

impl Task {
    fn of(v: &Value, what: &str) -> Task {
        let at_bookmark = v["at_bookmark"].as_str().unwrap_or_default().to_string();
        match v["status"].as_str() {
            Some("active") => Task::Active { at_bookmark },
            Some("complete") => Task::Complete {
                at_bookmark,
                result: v["result"].clone(),
            },
            _ => {
                // The spec says `error`; wrangler's types say `errors: [string]`.
                let message = v["error"]
                    .as_str()
                    .map(str::to_string)
                    .or_else(|| {
                        v["errors"].as_array().map(|e| {
                            e.iter()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join("; ")
                        })
                    })
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| format!("the {what} ended without saying why"));
                Task::Error {
                    at_bookmark,
                    message,
                }
            }
        }
    }
}

/// The first answer of an import: somewhere to upload the file, or (the file was uploaded
/// before) the import already running.
#[derive(Debug, Clone, PartialEq)]
pub enum ImportStart {
    Upload { filename: String, url: String },
    Started(Task),
}

fn path(db: &str, rest: &str) -> String {
    format!("/d1/database/{db}{rest}")
}

impl Client {
    /// A database by name or UUID.
    pub async fn d1_database(&self, name_or_id: &str) -> Result<Option<Database>, CfError> {
        let q = [("fields", "uuid,name".to_string())];
        match self
            .call(Method::GET, &path(name_or_id, ""), &q, Body::None)
            .await
        {
            Ok(a) => Ok(Some(Database {
                uuid: a.result["uuid"].as_str().unwrap_or_default().into(),
                name: a.result["name"].as_str().unwrap_or_default().into(),
            })),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn d1_create(&self, name: &str) -> Result<Database, CfError> {
        let a = self
            .call(
                Method::POST,
                "/d1/database",
                &[],
                Body::Json(json!({ "name": name })),
            )
            .await?;
        Ok(Database {
            uuid: a.result["uuid"].as_str().unwrap_or_default().into(),
            name: a.result["name"].as_str().unwrap_or_default().into(),
        })
    }

    /// Deletes a database and everything in it.
    pub async fn d1_delete(&self, db: &str) -> Result<(), CfError> {
        self.call(Method::DELETE, &path(db, ""), &[], Body::None)
            .await?;
        Ok(())
    }

    /// The rows of one statement through `/raw` (arrays of JSON values), parameters as text.
    pub async fn d1_raw(
        &self,
        db: &str,
        sql: &str,
        params: &[String],
    ) -> Result<Vec<Vec<Value>>, CfError> {
        let a = self
            .call(
                Method::POST,
                &path(db, "/raw"),
                &[],
                Body::Json(json!({ "sql": sql, "params": params })),
            )
            .await?;
        let mut result = a.result;
        let rows = match result.pointer_mut("/0/results/rows").map(Value::take) {
            Some(Value::Array(rows)) => rows,
            _ => Vec::new(),
        };
        Ok(rows
            .into_iter()
            .map(|r| match r {
                Value::Array(values) => values,
                _ => Vec::new(),
            })
            .collect())
    }

    /// Runs `sql` (one statement or several separated by `;`, one transaction on D1) through
    /// `/query`, for writes: the results are not read.
    pub async fn d1_execute(&self, db: &str, sql: &str) -> Result<(), CfError> {
        self.call(
            Method::POST,
            &path(db, "/query"),
            &[],
            Body::Json(json!({ "sql": sql })),
        )
        .await?;
        Ok(())
    }

    /// One step of the export flow: starts it (`bookmark` None) or polls it.
    pub async fn d1_export(&self, db: &str, bookmark: Option<&str>) -> Result<Task, CfError> {
        let mut body = json!({ "output_format": "polling" });
        if let Some(b) = bookmark {
            body["current_bookmark"] = json!(b);
        }
        let a = self
            .call(Method::POST, &path(db, "/export"), &[], Body::Json(body))
            .await?;
        Ok(Task::of(&a.result, "export"))
    }

    /// `init`: announces a file by its MD5.
    pub async fn d1_import_init(&self, db: &str, md5: &str) -> Result<ImportStart, CfError> {
        let a = self
            .call(
                Method::POST,
                &path(db, "/import"),
                &[],
                Body::Json(json!({ "action": "init", "etag": md5 })),
            )
            .await?;
        let r = &a.result;
        Ok(match (r["upload_url"].as_str(), r["filename"].as_str()) {
            (Some(url), Some(filename)) => ImportStart::Upload {
                filename: filename.to_string(),
                url: url.to_string(),
            },
            _ => ImportStart::Started(Task::of(r, "import")),
        })
    }

    /// `ingest`: starts the import of an uploaded file.
    pub async fn d1_import_ingest(
        &self,
        db: &str,
        md5: &str,
        filename: &str,
    ) -> Result<Task, CfError> {
        let a = self
            .call(
                Method::POST,
                &path(db, "/import"),
                &[],
                Body::Json(json!({ "action": "ingest", "etag": md5, "filename": filename })),
            )
            .await?;
        Ok(Task::of(&a.result, "import"))
    }

    /// `poll`: where the import started at `bookmark` stands.
    pub async fn d1_import_poll(&self, db: &str, bookmark: &str) -> Result<Task, CfError> {
        let a = self
            .call(
                Method::POST,
                &path(db, "/import"),
                &[],
                Body::Json(json!({ "action": "poll", "current_bookmark": bookmark })),
            )
            .await?;
        Ok(Task::of(&a.result, "import"))
    }

    /// The current bookmark, or the one for a time (RFC 3339 or Unix seconds).
    pub async fn d1_bookmark(&self, db: &str, at: Option<&str>) -> Result<String, CfError> {
        let q: Vec<(&str, String)> = at
            .map(|t| ("timestamp", t.to_string()))
            .into_iter()
            .collect();
        let a = self
            .call(
                Method::GET,
                &path(db, "/time_travel/bookmark"),
                &q,
                Body::None,
            )
            .await?;
        Ok(a.result["bookmark"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// Restores the database in place to `bookmark`; returns (new bookmark, previous bookmark).
    pub async fn d1_time_travel(
        &self,
        db: &str,
        bookmark: &str,
    ) -> Result<(String, String), CfError> {
        let a = self
            .call(
                Method::POST,
                &path(db, "/time_travel/restore"),
                &[("bookmark", bookmark.to_string())],
                Body::None,
            )
            .await?;
        let s = |k: &str| a.result[k].as_str().unwrap_or_default().to_string();
        Ok((s("bookmark"), s("previous_bookmark")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polling_answers_are_read_as_the_contract_and_wrangler_give_them() {
        let active = Task::of(&json!({"status": "active", "at_bookmark": "b1"}), "import");
        assert_eq!(
            active,
            Task::Active {
                at_bookmark: "b1".into()
            }
        );
        let spec = Task::of(&json!({"status": "error", "error": "boom"}), "import");
        assert!(matches!(spec, Task::Error { message, .. } if message == "boom"));
        let wrangler = Task::of(&json!({"status": "error", "errors": ["a", "b"]}), "import");
        assert!(matches!(wrangler, Task::Error { message, .. } if message == "a; b"));
        let silent = Task::of(&json!({"status": "error"}), "import");
        assert!(matches!(silent, Task::Error { message, .. } if message.contains("import")));
    }
}
