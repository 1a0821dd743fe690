//! One request budget shared by every task: a token bucket sized to Cloudflare's global limit
//! (1,200 requests per 5 minutes per token) that also believes the server's `Ratelimit` header,
//! so a budget already spent elsewhere (the dashboard, another tool) is respected. Going over
//! blocks every call for minutes, which is fatal in an incident, so this waits instead.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a gauge shows.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct BudgetState {
    pub limit: u32,
    pub window_secs: u64,
    /// Requests that may go now.
    pub available: u32,
    /// Requests sent through this budget so far.
    pub sent: u64,
    /// What the server last said remained, if it said.
    pub server_remaining: Option<u32>,
}

struct Inner {
    tokens: f64,
    last: Instant,
    sent: u64,
    server_remaining: Option<u32>,
    /// The server said the window is spent: nothing goes before this.
    blocked_until: Option<Instant>,
}

pub struct Budget {
    limit: u32,
    capacity: f64,
    window: Duration,
    inner: Mutex<Inner>,
}

impl Budget {
    /// `limit` requests per `window`. The bucket holds a tenth of the limit and refills with the
    /// rest over the window, so no window ever sees more than `limit` requests from it, and a
    /// fresh process cannot burst through a budget someone else has already used.
    pub fn new(limit: u32, window: Duration) -> Self {
        let limit = limit.max(1);
        let capacity = (f64::from(limit) / 10.0).max(1.0);
        Self {
            limit,
            capacity,
            window,
            inner: Mutex::new(Inner {
                tokens: capacity,
                last: Instant::now(),
                sent: 0,
                server_remaining: None,
                blocked_until: None,
            }),
        }
    }

    fn rate(&self) -> f64 {
        (f64::from(self.limit) - self.capacity).max(1.0) / self.window.as_secs_f64().max(0.001)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn refill(&self, i: &mut Inner, now: Instant) {
        let elapsed = now.duration_since(i.last).as_secs_f64();
        i.tokens = (i.tokens + elapsed * self.rate()).min(self.capacity);
        i.last = now;
    }

    /// How long `n` more requests would wait on this budget as it stands (not counting their
    /// own latency): what a plan tells the operator.
    pub fn wait_for(&self, n: u64) -> Duration {
        let mut i = self.lock();
        self.refill(&mut i, Instant::now());
        let short = n as f64 - i.tokens;
        if short <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(short / self.rate())
        }
    }

    /// Takes one request's worth, or says how long to wait for it.
    pub fn try_take(&self) -> Result<(), Duration> {
        let now = Instant::now();
        let mut i = self.lock();
        if let Some(until) = i.blocked_until {
            if until > now {
                return Err(until - now);
            }
            i.blocked_until = None;
        }
        self.refill(&mut i, now);
        if i.tokens >= 1.0 {
            i.tokens -= 1.0;
            i.sent += 1;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - i.tokens) / self.rate()))
        }
    }

    /// Waits for a request's worth.
    pub async fn take(&self) {
        while let Err(wait) = self.try_take() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Believes the server: `Ratelimit: "default";r=<remaining>;t=<seconds to reset>`.
    pub fn observe(&self, ratelimit: &str) {
        let field = |name: &str| {
            ratelimit
                .split(';')
                .find_map(|p| p.trim().strip_prefix(name))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let (Some(remaining), reset) = (field("r="), field("t=")) else {
            return;
        };
        let mut i = self.lock();
        i.server_remaining = Some(remaining as u32);
        i.tokens = i.tokens.min(remaining as f64);
        if remaining == 0 {
            let reset = Duration::from_secs(reset.unwrap_or(self.window.as_secs()).max(1));
            i.blocked_until = Some(Instant::now() + reset);
        }
    }

    /// The server refused with 429: nothing goes for `wait`.
    pub fn back_off(&self, wait: Duration) {
        let mut i = self.lock();
        i.tokens = 0.0;
        let until = Instant::now() + wait;
        i.blocked_until = Some(i.blocked_until.map_or(until, |u| u.max(until)));
    }

    pub fn state(&self) -> BudgetState {
        let mut i = self.lock();
        self.refill(&mut i, Instant::now());
        BudgetState {
            limit: self.limit,
            window_secs: self.window.as_secs(),
            available: i.tokens.floor() as u32,
            sent: i.sent,
            server_remaining: i.server_remaining,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_starts_small_and_refills_at_the_limits_rate() {
        let b = Budget::new(100, Duration::from_secs(10));
        for _ in 0..10 {
            assert!(b.try_take().is_ok());
        }
        let wait = b.try_take().unwrap_err();
        assert!(wait <= Duration::from_millis(112), "{wait:?}");
        std::thread::sleep(Duration::from_millis(130));
        assert!(b.try_take().is_ok());
        assert_eq!(b.state().sent, 11);
    }

    #[test]
    fn the_servers_word_wins() {
        let b = Budget::new(1200, Duration::from_secs(300));
        b.observe("\"default\";r=0;t=7");
        let wait = b.try_take().unwrap_err();
        assert!(
            wait > Duration::from_secs(6) && wait <= Duration::from_secs(7),
            "{wait:?}"
        );
        assert_eq!(b.state().server_remaining, Some(0));
        let b = Budget::new(1200, Duration::from_secs(300));
        b.observe("\"default\";r=3;t=100");
        assert_eq!(b.state().available, 3);
    }

    #[test]
    fn no_window_sees_more_than_the_limit() {
        // Capacity plus refill over one window equals the limit.
        let b = Budget::new(50, Duration::from_millis(500));
        let start = Instant::now();
        let mut sent = 0;
        while start.elapsed() < Duration::from_millis(500) {
            if b.try_take().is_ok() {
                sent += 1;
            }
        }
        assert!(sent <= 50, "{sent} requests in one window");
        assert!(sent >= 40, "{sent}: the budget should not starve either");
    }
}
