//! How long a round trip takes here, as measured: each client keeps the count and total time
//! of the requests it saw answered whole, so a plan can say how long its requests will take
//! (the budget's wait aside) from what this network and this server have actually done,
//! rather than from a guess.

use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Round trips seen by a client (shared by its clones).
#[derive(Clone, Default)]
pub struct Pace {
    inner: Arc<Mutex<Seen>>,
}

#[derive(Default, Clone, Copy)]
struct Seen {
    count: u64,
    total: Duration,
}

impl std::fmt::Debug for Pace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pace").field("mean", &self.mean()).finish()
    }
}

impl Pace {
    /// One request answered after `took`.
    pub fn saw(&self, took: Duration) {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        s.count += 1;
        s.total += took;
    }

    /// Requests answered so far (a plan's and a run's request counts).
    pub fn count(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).count
    }

    /// The mean round trip so far; `None` before the first.
    pub fn mean(&self) -> Option<Duration> {
        let s = *self.inner.lock().unwrap_or_else(|e| e.into_inner());
        (s.count > 0).then(|| s.total / u32::try_from(s.count).unwrap_or(u32::MAX))
    }

    /// How long `n` requests take at the mean round trip, `in_flight` at a time; `None`
    /// before any round trip was seen.
    pub fn time_for(&self, n: u64, in_flight: usize) -> Option<Duration> {
        let mean = self.mean()?;
        Some(mean.mul_f64(n as f64 / in_flight.max(1) as f64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_for_requests_is_their_mean_round_trip_shared_among_those_in_flight() {
        let p = Pace::default();
        assert_eq!(p.time_for(10, 1), None, "nothing seen: no guess");
        p.saw(Duration::from_millis(100));
        p.saw(Duration::from_millis(300));
        assert_eq!(p.mean(), Some(Duration::from_millis(200)));
        assert_eq!(p.time_for(10, 4), Some(Duration::from_millis(500)));
        let clone = p.clone();
        clone.saw(Duration::from_millis(200));
        assert_eq!(
            p.mean(),
            Some(Duration::from_millis(200)),
            "clones share it"
        );
    }
}
