//! Targets from a project's `wrangler.toml` or `wrangler.jsonc` / `wrangler.json`: the D1
//! databases, KV namespaces and R2 buckets its bindings name, top level and every `env.*`.

use std::path::Path;

use serde_json::Value;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bindings {
    /// D1 database ids (or names when no id is given).
    pub d1: Vec<String>,
    /// KV namespace ids.
    pub kv: Vec<String>,
    /// R2 bucket names.
    pub r2: Vec<String>,
}

impl Bindings {
    pub fn is_empty(&self) -> bool {
        self.d1.is_empty() && self.kv.is_empty() && self.r2.is_empty()
    }
}

pub fn load(path: &Path) -> Result<Bindings, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let value: Value = if path.extension().is_some_and(|e| e == "toml") {
        let t: toml::Value = toml::from_str(&text)
            .map_err(|e| format!("`{}` is not valid TOML: {}", path.display(), e.message()))?;
        serde_json::to_value(t).map_err(|e| e.to_string())?
    } else {
        serde_json::from_str(&strip_jsonc(&text))
            .map_err(|e| format!("`{}` is not valid JSON(C): {e}", path.display()))?
    };
    let mut b = Bindings::default();
    let mut sections = vec![&value];
    if let Some(envs) = value.get("env").and_then(Value::as_object) {
        sections.extend(envs.values());
    }
    for s in sections {
        for d in s
            .get("d1_databases")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(id) = d
                .get("database_id")
                .or_else(|| d.get("database_name"))
                .and_then(Value::as_str)
            {
                b.d1.push(id.to_string());
            }
        }
        for k in s
            .get("kv_namespaces")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(id) = k.get("id").and_then(Value::as_str) {
                b.kv.push(id.to_string());
            }
        }
        for r in s
            .get("r2_buckets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(name) = r.get("bucket_name").and_then(Value::as_str) {
                b.r2.push(name.to_string());
            }
        }
    }
    for list in [&mut b.d1, &mut b.kv, &mut b.r2] {
        list.sort();
        list.dedup();
    }
    Ok(b)
}

/// JSON with comments and trailing commas → JSON (strings left alone).
fn strip_jsonc(text: &str) -> String {
    let (mut out, mut chars) = (String::with_capacity(text.len()), text.chars().peekable());
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                '\\' => out.extend(chars.next()),
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match (c, chars.peek()) {
            ('"', _) => {
                in_string = true;
                out.push(c);
            }
            ('/', Some('/')) => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            ('/', Some('*')) => {
                chars.next();
                let mut prev = ' ';
                for n in chars.by_ref() {
                    if prev == '*' && n == '/' {
                        break;
                    }
                    prev = n;
                }
            }
            (',', _) => {
                let rest: String = chars.clone().collect();
                let next = rest.trim_start().chars().next();
                if !matches!(next, Some('}') | Some(']')) {
                    out.push(',');
                }
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_bindings_top_level_and_per_environment() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wrangler.toml");
        std::fs::write(
            &p,
            r#"name = "app"
[[d1_databases]]
binding = "DB"
database_name = "auth-prod"
database_id = "11111111-1111-4111-8111-111111111111"
[[kv_namespaces]]
binding = "SESSIONS"
id = "abc"
[[r2_buckets]]
binding = "EVIDENCE"
bucket_name = "evidence"
[env.staging]
[[env.staging.d1_databases]]
binding = "DB"
database_name = "auth-staging"
"#,
        )
        .unwrap();
        let b = load(&p).unwrap();
        assert_eq!(
            b.d1,
            vec!["11111111-1111-4111-8111-111111111111", "auth-staging"]
        );
        assert_eq!(
            (b.kv, b.r2),
            (vec!["abc".to_string()], vec!["evidence".to_string()])
        );
    }

    #[test]
    fn jsonc_with_comments_and_trailing_commas() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wrangler.jsonc");
        std::fs::write(&p, "{\n  // the app\n  \"name\": \"a//b\", /* block */\n  \"kv_namespaces\": [{ \"binding\": \"K\", \"id\": \"k1\", },],\n}\n").unwrap();
        let b = load(&p).unwrap();
        assert_eq!(b.kv, vec!["k1"]);
        assert!(
            load(&dir.path().join("missing.jsonc"))
                .unwrap_err()
                .contains("cannot read")
        );
    }
}
