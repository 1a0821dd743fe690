//! One request budget shared by every task: at most Cloudflare's global limit (1,200 requests per
//! 5 minutes per token) in any window of that length — the times of the window's requests are
//! kept, and a request waits for the oldest to age out — and it believes the server's
//! `Ratelimit` header, so a budget already spent elsewhere (the dashboard, another tool) is
//! respected. Going over blocks every call for minutes, which is fatal in an incident, so this
//! waits instead; but it does not wait sooner than it must: the whole limit may go at once, and
//! a long job runs at the limit's own pace (a token bucket that never lets a window see more
//! than the limit keeps part of it as its burst and runs at 90 % of it). A fresh process on a
//! token someone else has spent sends no more than the client's requests in flight before the
//! first answer brings the server's word.

use std::collections::VecDeque;
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

/// What the server's `Ratelimit` header last allowed: requests that may still go before its
/// window resets.
struct ServerWord {
    left: u64,
    until: Instant,
}

struct Inner {
    /// When each request of the last window went, oldest first.
    log: VecDeque<Instant>,
    sent: u64,
    server_remaining: Option<u32>,
    server: Option<ServerWord>,
    /// A 429: nothing goes before this.
    blocked_until: Option<Instant>,
}

pub struct Budget {
    limit: u32,
    window: Duration,
    inner: Mutex<Inner>,
}

impl Budget {
    /// `limit` requests in any `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit: limit.max(1),
            window,
            inner: Mutex::new(Inner {
                log: VecDeque::new(),
                sent: 0,
                server_remaining: None,
                server: None,
                blocked_until: None,
            }),
        }
    }

    /// How long a request counts against the budget: the window, and a fiftieth of it more, so
    /// a request that reaches the server sooner than the one it replaces (latencies vary) still
    /// falls in the server's next window.
    fn span(&self) -> Duration {
        self.window + self.window / 50
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets requests older than the span and a server word whose window has reset.
    fn age(&self, i: &mut Inner, now: Instant) {
        let span = self.span();
        while i
            .log
            .front()
            .is_some_and(|t| now.duration_since(*t) >= span)
        {
            i.log.pop_front();
        }
        if i.server.as_ref().is_some_and(|w| now >= w.until) {
            i.server = None;
        }
    }

    /// Requests this budget's own count lets go now.
    fn own(&self, i: &Inner) -> u64 {
        u64::from(self.limit).saturating_sub(i.log.len() as u64)
    }

    /// Requests that may go now: the budget's own count, and the server's word if it binds.
    fn available(&self, i: &Inner) -> u64 {
        let own = self.own(i);
        i.server.as_ref().map_or(own, |w| own.min(w.left))
    }

    /// How long `n` more requests would wait on this budget as it stands (not counting their
    /// own latency): what a plan tells the operator.
    pub fn wait_for(&self, n: u64) -> Duration {
        let now = Instant::now();
        let mut i = self.lock();
        self.age(&mut i, now);
        let mut wait = i
            .blocked_until
            .map_or(Duration::ZERO, |u| u.saturating_duration_since(now));
        let available = self.available(&i);
        if n <= available {
            return wait;
        }
        if let Some(w) = i.server.as_ref().filter(|w| n > w.left) {
            wait = wait.max(w.until.saturating_duration_since(now));
        }
        // Those that may go now go now; each further request goes when the one a limit before
        // it ages out.
        let own_now = self.own(&i);
        if n <= own_now {
            return wait; // only the server's word holds them back
        }
        let short = n - own_now;
        let limit = u64::from(self.limit);
        let k = (short - 1) % limit;
        let at = i.log.get(k as usize).copied().unwrap_or(now);
        let own = (at + self.span().mul_f64(((short - 1) / limit + 1) as f64))
            .saturating_duration_since(now);
        wait.max(own)
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
        self.age(&mut i, now);
        if self.available(&i) == 0 {
            let own = (i.log.len() >= self.limit as usize)
                .then(|| {
                    i.log
                        .front()
                        .map(|t| (*t + self.span()).saturating_duration_since(now))
                })
                .flatten();
            let server = i
                .server
                .as_ref()
                .map(|w| w.until.saturating_duration_since(now));
            let wait = own.into_iter().chain(server).max().unwrap_or_default();
            return Err(wait.max(Duration::from_millis(1)));
        }
        i.log.push_back(now);
        if let Some(w) = i.server.as_mut() {
            w.left -= 1;
        }
        i.sent += 1;
        Ok(())
    }

    /// Waits for a request's worth.
    pub async fn take(&self) {
        while let Err(wait) = self.try_take() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Believes the server: `Ratelimit: "default";r=<remaining>;t=<seconds to reset>`, the
    /// answer to a request that asked the budget at `asked`. Every request taken since may not
    /// have been counted in `r` yet, so each is taken off it.
    pub fn observe(&self, ratelimit: &str, asked: Instant) {
        let field = |name: &str| {
            ratelimit
                .split(';')
                .find_map(|p| p.trim().strip_prefix(name))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let (Some(remaining), reset) = (field("r="), field("t=")) else {
            return;
        };
        let now = Instant::now();
        let mut i = self.lock();
        i.server_remaining = Some(u32::try_from(remaining).unwrap_or(u32::MAX));
        self.age(&mut i, now);
        let since = i.log.iter().rev().take_while(|t| **t >= asked).count() as u64;
        // Alone on the token, the server has counted at most every request of this budget's
        // window, so it allows at least what the budget itself does. Allowing less means someone
        // else spends the token too: then its word binds — what it said less every request
        // taken since (they may not have been counted yet), until its reset. Otherwise it is not
        // waited for: its reset is in whole seconds, rounded up, a second late a window.
        let own = self.own(&i);
        let reset = Duration::from_secs(reset.unwrap_or(self.window.as_secs()).max(1));
        i.server = (remaining < own).then(|| ServerWord {
            left: remaining.saturating_sub(since),
            until: now + reset,
        });
    }

    /// The server refused with 429: nothing goes for `wait`.
    pub fn back_off(&self, wait: Duration) {
        let mut i = self.lock();
        let until = Instant::now() + wait;
        i.blocked_until = Some(i.blocked_until.map_or(until, |u| u.max(until)));
    }

    pub fn state(&self) -> BudgetState {
        let now = Instant::now();
        let mut i = self.lock();
        self.age(&mut i, now);
        BudgetState {
            limit: self.limit,
            window_secs: self.window.as_secs(),
            available: u32::try_from(self.available(&i)).unwrap_or(u32::MAX),
            sent: i.sent,
            server_remaining: i.server_remaining,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_limit_goes_at_once_then_the_oldest_must_age_out() {
        let b = Budget::new(100, Duration::from_secs(10));
        for _ in 0..100 {
            assert!(b.try_take().is_ok());
        }
        let wait = b.try_take().unwrap_err();
        assert!(
            wait > Duration::from_millis(10_100) && wait <= Duration::from_millis(10_200),
            "the first request ages out after the window and a fiftieth: {wait:?}"
        );
        assert_eq!(b.state().sent, 100);
        assert_eq!(b.state().available, 0);
        let plan = b.wait_for(250);
        assert!(
            plan > Duration::from_millis(30_500) && plan <= Duration::from_millis(30_600),
            "250 more: 100 as this window's age out, 100 a span later, the last 50 after: {plan:?}"
        );
    }

    #[test]
    fn the_servers_word_wins() {
        let b = Budget::new(1200, Duration::from_secs(300));
        b.observe("\"default\";r=0;t=7", Instant::now());
        let wait = b.try_take().unwrap_err();
        assert!(
            wait > Duration::from_secs(6) && wait <= Duration::from_secs(7),
            "{wait:?}"
        );
        assert_eq!(b.state().server_remaining, Some(0));
        let b = Budget::new(1200, Duration::from_secs(300));
        b.observe("\"default\";r=3;t=100", Instant::now());
        assert_eq!(b.state().available, 3);
        let plan = b.wait_for(10);
        assert!(
            plan > Duration::from_secs(99) && plan <= Duration::from_secs(100),
            "ten more wait for the server's reset: {plan:?}"
        );
    }

    #[test]
    fn a_server_that_allows_what_this_budget_counts_does_not_bind() {
        let b = Budget::new(10, Duration::from_secs(60));
        for _ in 0..4 {
            b.try_take().unwrap();
        }
        // The server counted the same four: six left either way, so its reset (rounded up to
        // whole seconds) is not waited for.
        b.observe("\"default\";r=6;t=60", Instant::now());
        assert_eq!(b.state().available, 6);
        assert!(b.wait_for(6).is_zero());
    }

    #[test]
    fn requests_taken_after_the_answered_one_asked_come_off_what_the_server_said() {
        let b = Budget::new(1200, Duration::from_secs(300));
        let asked = Instant::now();
        for _ in 0..5 {
            b.try_take().unwrap();
        }
        // The server counted the first of them; the other four may not have reached it yet.
        b.observe("\"default\";r=10;t=60", asked);
        assert_eq!(b.state().available, 5, "10 left, less the 5 taken since");
        for _ in 0..5 {
            b.try_take().unwrap();
        }
        let wait = b.try_take().unwrap_err();
        assert!(
            wait > Duration::from_secs(59),
            "until the server's reset: {wait:?}"
        );
    }

    #[test]
    fn no_window_sees_more_than_the_limit_and_the_pace_is_the_limits() {
        let (limit, window) = (50, Duration::from_millis(200));
        let b = Budget::new(limit, window);
        let start = Instant::now();
        let mut sent = Vec::new();
        while start.elapsed() < Duration::from_millis(1_000) {
            match b.try_take() {
                Ok(()) => sent.push(Instant::now()),
                Err(wait) => std::thread::sleep(wait.min(Duration::from_millis(2))),
            }
        }
        for (k, t) in sent.iter().enumerate() {
            let within = sent[k..]
                .iter()
                .take_while(|u| u.duration_since(*t) < window)
                .count();
            assert!(within <= limit as usize, "{within} requests in one window");
        }
        // Five windows of 50: the last batch goes at 4 spans (816 ms), so 250.
        assert!(
            sent.len() >= 240,
            "{}: the budget should run at the limit",
            sent.len()
        );
    }
}
