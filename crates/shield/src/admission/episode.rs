//! Overload episodes: when the upstream became full (requests had to wait), when that ended,
//! and the one log line at each end of shedding. Atomics only (every refused request notes a
//! shed; none waits on a lock for it), with the time passed in, so tests drive it by hand.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Congestion ends after this long without a request having to wait.
pub const CALM_AFTER_MS: u64 = 10_000;
/// Shedding ends after this long without a refusal.
pub const SHEDDING_QUIET_MS: u64 = 5_000;

/// What [`Episode::tick`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SheddingStopped {
    /// How long it lasted (ms).
    pub lasted_ms: u64,
    /// Requests refused in it.
    pub shed: u64,
}

/// The state of the current overload, if any.
#[derive(Debug, Default)]
pub struct Episode {
    /// When requests first had to wait in this episode (ms; 0: calm).
    congested_since_ms: AtomicU64,
    last_congested_ms: AtomicU64,
    shedding: AtomicBool,
    shedding_since_ms: AtomicU64,
    last_shed_ms: AtomicU64,
    shed_in_episode: AtomicU64,
}

impl Episode {
    /// A request had to wait (or was refused) at `now_ms`.
    pub fn note_congested(&self, now_ms: u64) {
        self.last_congested_ms.fetch_max(now_ms, Ordering::Relaxed);
        let _ = self.congested_since_ms.compare_exchange(
            0,
            now_ms.max(1),
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }

    /// A request was refused at `now_ms`; true when this starts shedding (log it).
    pub fn note_shed(&self, now_ms: u64) -> bool {
        self.note_congested(now_ms);
        self.last_shed_ms.fetch_max(now_ms, Ordering::Relaxed);
        self.shed_in_episode.fetch_add(1, Ordering::Relaxed);
        if self.shedding.load(Ordering::Relaxed) {
            return false;
        }
        let started = !self.shedding.swap(true, Ordering::AcqRel);
        if started {
            self.shedding_since_ms.store(now_ms, Ordering::Relaxed);
        }
        started
    }

    /// Ends what has been quiet long enough; says when shedding stopped (log it).
    pub fn tick(&self, now_ms: u64) -> Option<SheddingStopped> {
        let since = self.congested_since_ms.load(Ordering::Acquire);
        if since != 0
            && now_ms.saturating_sub(self.last_congested_ms.load(Ordering::Relaxed))
                >= CALM_AFTER_MS
        {
            let _ = self.congested_since_ms.compare_exchange(
                since,
                0,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
        if self.shedding.load(Ordering::Relaxed)
            && now_ms.saturating_sub(self.last_shed_ms.load(Ordering::Relaxed)) >= SHEDDING_QUIET_MS
            && self.shedding.swap(false, Ordering::AcqRel)
        {
            let began = self.shedding_since_ms.load(Ordering::Relaxed);
            return Some(SheddingStopped {
                lasted_ms: self
                    .last_shed_ms
                    .load(Ordering::Relaxed)
                    .saturating_sub(began),
                shed: self.shed_in_episode.swap(0, Ordering::Relaxed),
            });
        }
        None
    }

    /// When the current congestion began (ms), if the upstream is congested.
    pub fn congested_since_ms(&self) -> Option<u64> {
        match self.congested_since_ms.load(Ordering::Acquire) {
            0 => None,
            since => Some(since),
        }
    }

    /// Whether requests are being refused.
    pub fn shedding(&self) -> bool {
        self.shedding.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_start_and_one_stop_per_episode() {
        let e = Episode::default();
        assert_eq!(e.congested_since_ms(), None);
        e.note_congested(1_000);
        assert_eq!(e.congested_since_ms(), Some(1_000));
        assert!(e.note_shed(1_500));
        for t in 1_501..2_000 {
            assert!(!e.note_shed(t));
        }
        assert_eq!(e.tick(3_000), None, "not quiet long enough");
        let stopped = e.tick(1_999 + SHEDDING_QUIET_MS).expect("stopped");
        assert_eq!(stopped.shed, 500);
        assert_eq!(stopped.lasted_ms, 499);
        assert_eq!(e.tick(20_000), None, "stops once");
        // Congestion outlives shedding until calm for CALM_AFTER_MS.
        assert_eq!(e.congested_since_ms(), None);
        e.note_congested(30_000);
        assert_eq!(e.tick(30_000 + CALM_AFTER_MS - 1), None);
        assert_eq!(e.congested_since_ms(), Some(30_000));
        e.tick(30_000 + CALM_AFTER_MS);
        assert_eq!(e.congested_since_ms(), None);
        // A new episode logs a new start.
        assert!(e.note_shed(50_000));
        assert!(e.shedding());
    }
}
