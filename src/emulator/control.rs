//! What tests and benchmarks steer and observe: the request counters (`/__emulator/stats`) and the
//! faults injected on demand (`/__emulator/faults`), plus the per-token rate limit.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Counters per route template (`GET /accounts/{account_id}/d1/database`), resettable.
#[derive(Debug, Default, Serialize, Clone)]
pub struct StatsSnapshot {
    pub total: u64,
    pub writes: u64,
    pub rate_limited: u64,
    pub faults: BTreeMap<String, u64>,
    /// The same faults by the path they hit: `REST`, `signed URL`, `S3 list`, `S3 GET`,
    /// `S3 PUT`, `S3 other`.
    pub faults_by_path: BTreeMap<String, BTreeMap<String, u64>>,
    pub routes: BTreeMap<String, RouteStats>,
}

#[derive(Debug, Default, Serialize, Clone)]
pub struct RouteStats {
    pub requests: u64,
    pub writes: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub status: BTreeMap<u16, u64>,
}

#[derive(Default)]
pub struct Stats(Mutex<StatsSnapshot>);

impl Stats {
    pub fn record(&self, route: &str, write: bool, status: u16, bytes_in: u64, bytes_out: u64) {
        let mut s = lock(&self.0);
        s.total += 1;
        s.writes += u64::from(write);
        if status == 429 {
            s.rate_limited += 1;
        }
        let r = s.routes.entry(route.to_string()).or_default();
        r.requests += 1;
        r.writes += u64::from(write);
        r.bytes_in += bytes_in;
        r.bytes_out += bytes_out;
        *r.status.entry(status).or_default() += 1;
    }

    pub fn fault(&self, path: &str, kind: &str) {
        let mut s = lock(&self.0);
        *s.faults.entry(kind.to_string()).or_default() += 1;
        *s.faults_by_path
            .entry(path.to_string())
            .or_default()
            .entry(kind.to_string())
            .or_default() += 1;
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        lock(&self.0).clone()
    }

    pub fn reset(&self) {
        *lock(&self.0) = StatsSnapshot::default();
    }
}

/// What `POST /__emulator/faults` sets. Every field is optional; a field left out is off.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultConfig {
    /// Share (0..=1) of requests answered with a 5xx envelope.
    #[serde(default)]
    pub error_rate: f64,
    /// The 5xx status used by `error_rate` (default 500).
    #[serde(default)]
    pub error_status: Option<u16>,
    /// The next N requests get 429 with `Retry-After`.
    #[serde(default)]
    pub burst_429: u32,
    /// `Retry-After` seconds sent with injected 429s (default 1).
    #[serde(default)]
    pub retry_after_secs: Option<u64>,
    /// Latency added before every answer.
    #[serde(default)]
    pub latency_ms: u64,
    /// Share of requests whose connection is closed without an answer.
    #[serde(default)]
    pub drop_rate: f64,
    /// Share of answers whose body is cut in half (the connection then closes).
    #[serde(default)]
    pub truncate_rate: f64,
    /// Only requests whose path contains this string are faulted.
    #[serde(default)]
    pub path_contains: Option<String>,
    /// Only requests of this method (`POST`, …) are faulted.
    #[serde(default)]
    pub method: Option<String>,
    /// Changes the rate limit (requests per window, per token).
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    /// Seed for the fault dice, so a run can be repeated.
    #[serde(default)]
    pub seed: Option<u64>,
}

impl FaultConfig {
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("error_rate", self.error_rate),
            ("drop_rate", self.drop_rate),
            ("truncate_rate", self.truncate_rate),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("`{name}` is {v}; give a share from 0 to 1"));
            }
        }
        if let Some(s) = self.error_status
            && !(500..=599).contains(&s)
        {
            return Err(format!("`error_status` is {s}; give a 5xx status"));
        }
        if let Some(rl) = &self.rate_limit
            && (rl.limit == 0 || rl.window_secs == 0)
        {
            return Err("`rate_limit` needs a positive `limit` and `window_secs`".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    pub limit: u32,
    pub window_secs: u64,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            limit: 1200,
            window_secs: 300,
        }
    }
}

/// The fault the dice picked for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    TooMany { retry_after: u64 },
    ServerError { status: u16 },
    Drop,
    Truncate,
}

pub struct Faults {
    inner: Mutex<(FaultConfig, StdRng)>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            inner: Mutex::new((FaultConfig::default(), StdRng::from_os_rng())),
        }
    }
}

impl Faults {
    pub fn set(&self, config: FaultConfig) {
        let rng = match config.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        *lock(&self.inner) = (config, rng);
    }

    pub fn get(&self) -> FaultConfig {
        lock(&self.inner).0.clone()
    }

    /// Latency to add and the fault to inject for a request to `path`.
    pub fn roll(&self, method: &str, path: &str) -> (Duration, Fault) {
        let mut guard = lock(&self.inner);
        let (config, rng) = &mut *guard;
        if config
            .path_contains
            .as_ref()
            .is_some_and(|filter| !path.contains(filter.as_str()))
            || config
                .method
                .as_ref()
                .is_some_and(|m| !m.eq_ignore_ascii_case(method))
        {
            return (Duration::ZERO, Fault::None);
        }
        let latency = Duration::from_millis(config.latency_ms);
        if config.burst_429 > 0 {
            config.burst_429 -= 1;
            return (
                latency,
                Fault::TooMany {
                    retry_after: config.retry_after_secs.unwrap_or(1),
                },
            );
        }
        let fault = if config.drop_rate > 0.0 && rng.random_bool(config.drop_rate) {
            Fault::Drop
        } else if config.error_rate > 0.0 && rng.random_bool(config.error_rate) {
            Fault::ServerError {
                status: config.error_status.unwrap_or(500),
            }
        } else if config.truncate_rate > 0.0 && rng.random_bool(config.truncate_rate) {
            Fault::Truncate
        } else {
            Fault::None
        };
        (latency, fault)
    }
}

/// A fixed window per token, as Cloudflare's global limit counts: N requests per W seconds.
/// Per token: when its window opened and how many requests it has made in it.
type Windows = HashMap<String, (Instant, u32)>;

pub struct RateLimiter {
    inner: Mutex<(RateLimitConfig, Windows)>,
}

/// The limiter's verdict and what the `Ratelimit` headers say.
#[derive(Debug, Clone, Copy)]
pub struct RateVerdict {
    pub allowed: bool,
    pub remaining: u32,
    pub reset_secs: u64,
    pub limit: u32,
    pub window_secs: u64,
}

impl RateLimiter {
    pub fn new(config: RateLimitConfig) -> Self {
        Self {
            inner: Mutex::new((config, HashMap::new())),
        }
    }

    pub fn set(&self, config: RateLimitConfig) {
        *lock(&self.inner) = (config, HashMap::new());
    }

    pub fn check(&self, token: &str) -> RateVerdict {
        let mut guard = lock(&self.inner);
        let (config, windows) = &mut *guard;
        let window = Duration::from_secs(config.window_secs);
        let now = Instant::now();
        let entry = windows.entry(token.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        let elapsed = now.duration_since(entry.0);
        let reset_secs = (window - elapsed).as_secs_f64().ceil().max(1.0) as u64;
        let allowed = entry.1 < config.limit;
        if allowed {
            entry.1 += 1;
        }
        RateVerdict {
            allowed,
            remaining: config.limit.saturating_sub(entry.1),
            reset_secs,
            limit: config.limit,
            window_secs: config.window_secs,
        }
    }
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it: counters stay usable.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_allows_exactly_n_requests_per_window() {
        let limiter = RateLimiter::new(RateLimitConfig {
            limit: 3,
            window_secs: 300,
        });
        let verdicts: Vec<bool> = (0..4).map(|_| limiter.check("t").allowed).collect();
        assert_eq!(verdicts, [true, true, true, false]);
        assert!(
            limiter.check("other-token").allowed,
            "windows are per token"
        );
        let v = limiter.check("t");
        assert!(v.reset_secs > 0 && v.reset_secs <= 300);
        assert_eq!(v.remaining, 0);
    }

    #[test]
    fn a_burst_of_429_is_consumed_then_stops() {
        let faults = Faults::default();
        faults.set(FaultConfig {
            burst_429: 2,
            retry_after_secs: Some(7),
            ..FaultConfig::default()
        });
        let got: Vec<Fault> = (0..3).map(|_| faults.roll("GET", "/x").1).collect();
        assert_eq!(
            got,
            [
                Fault::TooMany { retry_after: 7 },
                Fault::TooMany { retry_after: 7 },
                Fault::None
            ]
        );
    }

    #[test]
    fn error_rate_is_roughly_the_share_asked_for() {
        let faults = Faults::default();
        faults.set(FaultConfig {
            error_rate: 0.1,
            seed: Some(7),
            ..FaultConfig::default()
        });
        let errors = (0..10_000)
            .filter(|_| matches!(faults.roll("GET", "/x").1, Fault::ServerError { .. }))
            .count();
        assert!((800..1200).contains(&errors), "{errors} errors in 10,000");
    }

    #[test]
    fn shares_outside_zero_to_one_are_refused() {
        let config = FaultConfig {
            error_rate: 1.5,
            ..FaultConfig::default()
        };
        assert!(config.validate().unwrap_err().contains("error_rate"));
    }
}
