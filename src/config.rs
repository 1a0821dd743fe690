//! Configuration: environment variables (wrangler's names) over a TOML file in the platform
//! config directory. Secrets are wrapped so that they never print.

use std::collections::BTreeMap;
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
    /// Where a Worker answers with its version (`{script}` replaced by its name).
    workers_probe_url: Option<String>,
    /// Refuse every restore before it sends a write.
    #[serde(default)]
    read_only: bool,
    /// Recovery point objectives: `default` and `<kind>/<target>` → a duration (`24h`).
    #[serde(default)]
    rpo: std::collections::BTreeMap<String, String>,
    /// KV criticality tiers: `"kv/<namespace>"` → tier name → key patterns.
    #[serde(default)]
    tiers: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    /// Other accounts, by name: what `--profile NAME` restores into.
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

/// Another Cloudflare account (`[profiles.<name>]`): its id, token and R2 keys. A restore
/// with `--profile <name>` writes there; the repository stays where it is.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub account_id: String,
    pub api_token: Secret,
    /// The API's base URL; the main one's when left out.
    pub api_base_url: Option<String>,
    pub r2_endpoint: Option<String>,
    pub r2_access_key_id: Option<String>,
    pub r2_secret_access_key: Option<Secret>,
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
    /// `workers_probe_url` / `CFDR_WORKERS_PROBE_URL`: a URL on which each Worker answers which
    /// version served the request (`{script}` replaced by the Worker's name), probed after a
    /// rollback.
    pub workers_probe_url: Option<String>,
    /// The newest backup of a target should be younger than this (`[rpo] default`, or
    /// `CFDR_RPO`; 24 hours unless set).
    pub rpo_default: Duration,
    /// Per target, by `<kind>/<name>` (`"d1/orders" = "1h"`).
    pub rpo: std::collections::BTreeMap<String, Duration>,
    /// The file that was read, if any.
    pub file: Option<PathBuf>,
    /// `read_only = true` or `CFDR_READ_ONLY=1`: every restore fails before any write is sent.
    pub read_only: bool,
    /// KV criticality tiers by `kv/<namespace title>`: tier name → key patterns (`*` matches
    /// any run of characters).
    pub tiers: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    /// Other accounts a restore can write to (`--profile NAME`).
    pub profiles: BTreeMap<String, Profile>,
    /// The profile this configuration was switched to, if any.
    pub profile: Option<String>,
}

/// The RPO a target is held to when none is configured.
pub const DEFAULT_RPO: Duration = Duration::from_secs(24 * 3600);

impl Config {
    /// This configuration pointed at another account: profile `name`'s account, token, API
    /// URL and R2 keys in place of the main ones (the repository and everything else stay).
    pub fn with_profile(&self, name: &str) -> Result<Config, ConfigError> {
        let p = self
            .profiles
            .get(name)
            .ok_or_else(|| ConfigError::Profile {
                name: name.to_string(),
                known: self.profiles.keys().cloned().collect::<Vec<_>>().join(", "),
            })?;
        let mut c = self.clone();
        c.account_id = Some(p.account_id.clone());
        c.api_token = Some(p.api_token.clone());
        if let Some(u) = &p.api_base_url {
            c.api_base_url = u.trim_end_matches('/').to_string();
        }
        c.r2_endpoint = p.r2_endpoint.clone();
        c.r2_access_key_id = p.r2_access_key_id.clone();
        c.r2_secret_access_key = p.r2_secret_access_key.clone();
        c.profile = Some(name.to_string());
        Ok(c)
    }

    /// The criticality tiers configured for KV namespace `namespace` (by its title).
    pub fn kv_tiers(&self, namespace: &str) -> Option<&BTreeMap<String, Vec<String>>> {
        self.tiers.get(&format!("kv/{namespace}"))
    }

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
    AccountId { name: String, value: String },
    #[error(
        "{name} holds characters that cannot travel in an HTTP header (above U+00FF); copy the API token again"
    )]
    Token { name: String },
    #[error(
        "{name} is not a key: it must be 64 hexadecimal characters (32 bytes); generate one with `openssl rand -hex 32`"
    )]
    Key { name: &'static str },
    #[error("{name} `{value}` is not an http(s) URL")]
    Url { name: String, value: String },
    #[error("{name} `{value}` is not a recovery point objective: give a duration like 1h or 24h")]
    Rpo { name: String, value: String },
    #[error(
        "no profile `{name}` in the config file (profiles: {known}); add [profiles.{name}] with account_id and api_token"
    )]
    Profile { name: String, known: String },
    #[error("{name}: {reason}")]
    Tier { name: String, reason: String },
}

/// The default config file: `<platform config dir>/config.toml` (for example
/// `~/.config/cfdr/config.toml` on Linux).
pub fn default_file() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "cfdr").map(|d| d.config_dir().join("config.toml"))
}

/// A process environment variable, an empty one counting as unset.
pub fn env_var(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty())
}

/// The config file in use: `CFDR_CONFIG`, else the default one.
pub fn file_in_use() -> Option<PathBuf> {
    env_var("CFDR_CONFIG")
        .map(PathBuf::from)
        .or_else(default_file)
}

impl Config {
    /// Reads the process environment and the config file (`CFDR_CONFIG` or the default one).
    pub fn load() -> Result<Self, ConfigError> {
        Self::from_sources(&env_var, file_in_use().as_deref())
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
            workers_probe_url: env("CFDR_WORKERS_PROBE_URL").or(fc.workers_probe_url),
            rpo_default: DEFAULT_RPO,
            rpo: Default::default(),
            file: read.clone(),
            read_only: fc.read_only
                || env("CFDR_READ_ONLY").is_some_and(|v| v != "0" && v != "false"),
            tiers: fc.tiers,
            profiles: fc.profiles,
            profile: None,
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
                name: "CLOUDFLARE_ACCOUNT_ID".into(),
                value: id.clone(),
            });
        }
        if let Some(t) = &self.api_token
            && t.expose().chars().any(|c| c as u32 > 255)
        {
            return Err(ConfigError::Token {
                name: "CLOUDFLARE_API_TOKEN".into(),
            });
        }
        if let Some(k) = &self.key
            && (k.expose().trim().len() != 64
                || !k.expose().trim().bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(ConfigError::Key { name: "CFDR_KEY" });
        }
        let mut urls = vec![
            (
                "CLOUDFLARE_API_BASE_URL".to_string(),
                Some(&self.api_base_url),
            ),
            ("R2_ENDPOINT".to_string(), self.r2_endpoint.as_ref()),
        ];
        for (name, p) in &self.profiles {
            if p.account_id.len() != 32 || !p.account_id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ConfigError::AccountId {
                    name: format!("profiles.{name}.account_id"),
                    value: p.account_id.clone(),
                });
            }
            if p.api_token.expose().chars().any(|c| c as u32 > 255) {
                return Err(ConfigError::Token {
                    name: format!("profiles.{name}.api_token"),
                });
            }
            urls.push((
                format!("profiles.{name}.api_base_url"),
                p.api_base_url.as_ref(),
            ));
            urls.push((
                format!("profiles.{name}.r2_endpoint"),
                p.r2_endpoint.as_ref(),
            ));
        }
        for (name, url) in urls {
            if let Some(u) = url
                && !(u.starts_with("http://") || u.starts_with("https://"))
            {
                return Err(ConfigError::Url {
                    name,
                    value: u.clone(),
                });
            }
        }
        for (target, tiers) in &self.tiers {
            let name = format!("tiers.\"{target}\"");
            let bad = |reason: String| ConfigError::Tier {
                name: name.clone(),
                reason,
            };
            if !target.starts_with("kv/") || target.len() == 3 {
                return Err(bad(
                    "tiers are set per KV namespace: name the table \"kv/<namespace title>\""
                        .into(),
                ));
            }
            for (tier, patterns) in tiers {
                if patterns.is_empty() || patterns.iter().any(|p| p.is_empty()) {
                    return Err(bad(format!(
                        "tier `{tier}` needs key patterns, like [\"user:*\", \"hof:*\"]"
                    )));
                }
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

    #[test]
    fn a_profile_points_at_another_account_and_tiers_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(
            &file,
            "repo = \"/r\"\n[profiles.staging]\naccount_id = \"feedfacefeedfacefeedfacefeedface\"\napi_token = \"tok-staging\"\n[tiers.\"kv/SESSIONS\"]\ncritical = [\"user:*\"]\n",
        )
        .unwrap();
        let main = Config::from_sources(
            &env(&[
                ("CLOUDFLARE_ACCOUNT_ID", "0123456789abcdef0123456789abcdef"),
                ("R2_ACCESS_KEY_ID", "main-ak"),
            ]),
            Some(&file),
        )
        .unwrap();
        let staging = main.with_profile("staging").unwrap();
        assert_eq!(
            staging.account_id.as_deref(),
            Some("feedfacefeedfacefeedfacefeedface")
        );
        assert_eq!(
            staging.api_token.as_ref().map(Secret::expose),
            Some("tok-staging")
        );
        assert_eq!(staging.r2_access_key_id, None, "R2 keys are per account");
        assert_eq!(staging.repo.as_deref(), Some("/r"), "the repository stays");
        assert_eq!(staging.profile.as_deref(), Some("staging"));
        assert!(!format!("{main:?}").contains("tok-staging"));
        assert_eq!(
            main.with_profile("prod").unwrap_err().to_string(),
            "no profile `prod` in the config file (profiles: staging); add [profiles.prod] with account_id and api_token"
        );
        assert_eq!(main.kv_tiers("SESSIONS").unwrap()["critical"], ["user:*"]);
        assert!(main.kv_tiers("CACHE").is_none());

        for (body, says) in [
            (
                "[tiers.SESSIONS]\ncritical = [\"a*\"]\n",
                "kv/<namespace title>",
            ),
            (
                "[tiers.\"kv/S\"]\ncritical = []\n",
                "tier `critical` needs key patterns",
            ),
            (
                "[profiles.x]\naccount_id = \"nope\"\napi_token = \"t\"\n",
                "profiles.x.account_id `nope`",
            ),
        ] {
            std::fs::write(&file, body).unwrap();
            let e = Config::from_sources(&env(&[]), Some(&file)).unwrap_err();
            assert!(e.to_string().contains(says), "{body}: {e}");
        }
    }
}
