//! Configuration: environment variables (wrangler's names) over a TOML file in the platform
//! config directory. Secrets are wrapped so that they never print.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub const DEFAULT_API_BASE_URL: &str = "https://api.cloudflare.com/client/v4";

/// A secret value: `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// The TOML file's keys (all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    api_token: Option<Secret>,
    account_id: Option<String>,
    api_base_url: Option<String>,
    r2_endpoint: Option<String>,
    r2_access_key_id: Option<String>,
    r2_secret_access_key: Option<Secret>,
    repo: Option<String>,
    key_file: Option<PathBuf>,
    /// Refuse every restore before it sends a write.
    #[serde(default)]
    read_only: bool,
    /// Recovery point objectives: `default` and `<kind>/<target>` → a duration (`24h`).
    #[serde(default)]
    rpo: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default)]
pub struct Config {
    pub api_base_url: String,
    pub api_token: Option<Secret>,
    pub account_id: Option<String>,
    pub r2_endpoint: Option<String>,
    pub r2_access_key_id: Option<String>,
    pub r2_secret_access_key: Option<Secret>,
    pub repo: Option<String>,
    pub key: Option<Secret>,
    pub key_file: Option<PathBuf>,
    /// The newest backup of a target should be younger than this (`[rpo] default`, or
    /// `CFDR_RPO`; 24 hours unless set).
    pub rpo_default: Duration,
    /// Per target, by `<kind>/<name>` (`"d1/orders" = "1h"`).
    pub rpo: std::collections::BTreeMap<String, Duration>,
    /// The file that was read, if any.
    pub file: Option<PathBuf>,
    /// `read_only = true` or `CFDR_READ_ONLY=1`: every restore fails before any write is sent.
    pub read_only: bool,
}

/// The RPO a target is held to when none is configured.
pub const DEFAULT_RPO: Duration = Duration::from_secs(24 * 3600);

impl Config {
    /// The RPO of one target (`kind` as in the repository: d1, kv, r2, sqlite).
    pub fn rpo_of(&self, kind: &str, target: &str) -> Duration {
        self.rpo
            .get(&format!("{kind}/{target}"))
            .copied()
            .unwrap_or(if self.rpo_default.is_zero() {
                DEFAULT_RPO
            } else {
                self.rpo_default
            })
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("cannot read config file `{path}`: {reason}; fix or remove it")]
    File { path: String, reason: String },
    #[error(
        "{name} `{value}` is not a Cloudflare account id: it must be 32 hexadecimal characters (dashboard → Account home → Account ID)"
    )]
    AccountId { name: &'static str, value: String },
    #[error(
        "{name} holds characters that cannot travel in an HTTP header (above U+00FF); copy the API token again"
    )]
    Token { name: &'static str },
    #[error(
        "{name} is not a key: it must be 64 hexadecimal characters (32 bytes); generate one with `openssl rand -hex 32`"
    )]
    Key { name: &'static str },
    #[error("{name} `{value}` is not an http(s) URL")]
    Url { name: &'static str, value: String },
    #[error("{name} `{value}` is not a recovery point objective: give a duration like 1h or 24h")]
    Rpo { name: String, value: String },
}

/// The default config file: `<platform config dir>/config.toml` (for example
/// `~/.config/cfdr/config.toml` on Linux).
pub fn default_file() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "cfdr").map(|d| d.config_dir().join("config.toml"))
}

impl Config {
    /// Reads the process environment and the config file (`CFDR_CONFIG` or the default one).
    pub fn load() -> Result<Self, ConfigError> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let file = env("CFDR_CONFIG").map(PathBuf::from).or_else(default_file);
        Self::from_sources(&env, file.as_deref())
    }

    /// The pure core of `load`: `env` answers variable lookups; a missing file is fine.
    pub fn from_sources(
        env: &dyn Fn(&str) -> Option<String>,
        file: Option<&Path>,
    ) -> Result<Self, ConfigError> {
        let (fc, read) = match file {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => {
                    let fc: FileConfig = toml::from_str(&text).map_err(|e| ConfigError::File {
                        path: path.display().to_string(),
                        reason: e.message().to_string(),
                    })?;
                    (fc, Some(path.to_path_buf()))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => (FileConfig::default(), None),
                Err(e) => {
                    return Err(ConfigError::File {
                        path: path.display().to_string(),
                        reason: e.to_string(),
                    });
                }
            },
            None => (FileConfig::default(), None),
        };
        let config = Config {
            api_base_url: env("CLOUDFLARE_API_BASE_URL")
                .or(fc.api_base_url)
                .unwrap_or_else(|| DEFAULT_API_BASE_URL.into())
                .trim_end_matches('/')
                .to_string(),
            api_token: env("CLOUDFLARE_API_TOKEN").map(Secret).or(fc.api_token),
            account_id: env("CLOUDFLARE_ACCOUNT_ID").or(fc.account_id),
            r2_endpoint: env("R2_ENDPOINT").or(fc.r2_endpoint),
            r2_access_key_id: env("R2_ACCESS_KEY_ID")
                .or_else(|| env("AWS_ACCESS_KEY_ID"))
                .or(fc.r2_access_key_id),
            r2_secret_access_key: env("R2_SECRET_ACCESS_KEY")
                .or_else(|| env("AWS_SECRET_ACCESS_KEY"))
                .map(Secret)
                .or(fc.r2_secret_access_key),
            repo: env("CFDR_REPO").or(fc.repo),
            key: env("CFDR_KEY").map(Secret),
            key_file: env("CFDR_KEY_FILE").map(PathBuf::from).or(fc.key_file),
            rpo_default: DEFAULT_RPO,
            rpo: Default::default(),
            file: read.clone(),
            read_only: fc.read_only
                || env("CFDR_READ_ONLY").is_some_and(|v| v != "0" && v != "false"),
        };
        let mut config = config;
        let rpo = |name: &str, value: &str| {
            humantime::parse_duration(value)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| ConfigError::Rpo {
                    name: name.to_string(),
                    value: value.to_string(),
                })
        };
        for (target, value) in &fc.rpo {
            let d = rpo(&format!("rpo.{target}"), value)?;
            if target == "default" {
                config.rpo_default = d;
            } else {
                config.rpo.insert(target.clone(), d);
            }
        }
        if let Some(v) = env("CFDR_RPO") {
            config.rpo_default = rpo("CFDR_RPO", &v)?;
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(id) = &self.account_id
            && (id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(ConfigError::AccountId {
                name: "CLOUDFLARE_ACCOUNT_ID",
                value: id.clone(),
            });
        }
        if let Some(t) = &self.api_token
            && t.expose().chars().any(|c| c as u32 > 255)
        {
            return Err(ConfigError::Token {
                name: "CLOUDFLARE_API_TOKEN",
            });
        }
        if let Some(k) = &self.key
            && (k.expose().trim().len() != 64
                || !k.expose().trim().bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(ConfigError::Key { name: "CFDR_KEY" });
        }
        for (name, url) in [
            ("CLOUDFLARE_API_BASE_URL", Some(&self.api_base_url)),
            ("R2_ENDPOINT", self.r2_endpoint.as_ref()),
        ] {
            if let Some(u) = url
                && !(u.starts_with("http://") || u.starts_with("https://"))
            {
                return Err(ConfigError::Url {
                    name,
                    value: u.clone(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn environment_wins_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(
            &file,
            "account_id = \"0123456789abcdef0123456789abcdef\"\nrepo = \"/from/file\"\n",
        )
        .unwrap();
        let c = Config::from_sources(&env(&[("CFDR_REPO", "s3://b/p")]), Some(&file)).unwrap();
        assert_eq!(c.repo.as_deref(), Some("s3://b/p"));
        assert_eq!(
            c.account_id.as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert_eq!(c.api_base_url, DEFAULT_API_BASE_URL);
        assert_eq!(c.file.as_deref(), Some(file.as_path()));
    }

    #[test]
    fn aws_names_work_for_r2_keys() {
        let c = Config::from_sources(
            &env(&[("AWS_ACCESS_KEY_ID", "ak"), ("AWS_SECRET_ACCESS_KEY", "sk")]),
            None,
        )
        .unwrap();
        assert_eq!(c.r2_access_key_id.as_deref(), Some("ak"));
        assert_eq!(
            c.r2_secret_access_key.as_ref().map(Secret::expose),
            Some("sk")
        );
    }

    #[test]
    fn bad_values_are_named_and_secrets_are_not() {
        let e = Config::from_sources(&env(&[("CLOUDFLARE_ACCOUNT_ID", "nope")]), None).unwrap_err();
        assert!(e.to_string().contains("`nope`"), "{e}");
        let e =
            Config::from_sources(&env(&[("CFDR_KEY", "secret-key-material")]), None).unwrap_err();
        assert!(!e.to_string().contains("secret-key-material"), "{e}");
        let c = Config::from_sources(&env(&[("CLOUDFLARE_API_TOKEN", "tok-123")]), None).unwrap();
        assert!(!format!("{c:?}").contains("tok-123"));
    }

    #[test]
    fn a_broken_file_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(&file, "unknown_key = 1\n").unwrap();
        let e = Config::from_sources(&env(&[]), Some(&file)).unwrap_err();
        assert!(e.to_string().contains("config.toml"), "{e}");
    }

    #[test]
    fn rpo_defaults_per_target_and_bad_values() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(&file, "[rpo]\ndefault = \"12h\"\n\"d1/orders\" = \"1h\"\n").unwrap();
        let c = Config::from_sources(&env(&[]), Some(&file)).unwrap();
        assert_eq!(c.rpo_of("d1", "orders"), Duration::from_secs(3600));
        assert_eq!(c.rpo_of("kv", "cache"), Duration::from_secs(12 * 3600));
        let c = Config::from_sources(&env(&[("CFDR_RPO", "30m")]), None).unwrap();
        assert_eq!(c.rpo_of("kv", "cache"), Duration::from_secs(1800));
        assert_eq!(Config::default().rpo_of("r2", "x"), DEFAULT_RPO);
        let e = Config::from_sources(&env(&[("CFDR_RPO", "soon")]), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "CFDR_RPO `soon` is not a recovery point objective: give a duration like 1h or 24h"
        );
    }
}
