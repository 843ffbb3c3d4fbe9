//! Time, injected: every algorithm reads the clock through [`Clock`], so tests move time by
//! hand instead of sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A source of wall-clock and monotonic time.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch: for expiry times shown to people and stored.
    fn unix_ms(&self) -> u64;
    /// Nanoseconds on a clock that never goes backwards: for rates and intervals.
    fn monotonic_ns(&self) -> u64;
}

/// The real clocks of the machine.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn unix_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    fn monotonic_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }
}

/// A clock that moves only when told to; both of its times advance together.
#[derive(Debug, Default)]
pub struct ManualClock {
    unix_ms: AtomicU64,
    monotonic_ns: AtomicU64,
}

impl ManualClock {
    /// Starts at the given Unix time in milliseconds.
    pub fn starting_at(unix_ms: u64) -> Arc<Self> {
        Arc::new(ManualClock {
            unix_ms: AtomicU64::new(unix_ms),
            monotonic_ns: AtomicU64::new(0),
        })
    }

    /// Moves both clocks forward.
    pub fn advance(&self, by: std::time::Duration) {
        self.unix_ms
            .fetch_add(by.as_millis() as u64, Ordering::SeqCst);
        self.monotonic_ns
            .fetch_add(by.as_nanos() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn unix_ms(&self) -> u64 {
        self.unix_ms.load(Ordering::SeqCst)
    }

    fn monotonic_ns(&self) -> u64 {
        self.monotonic_ns.load(Ordering::SeqCst)
    }
}
