//! A sliding-window request rate: the count of the current fixed window plus the previous
//! window's count weighted by how much of it still lies inside the sliding window.
//!
//! Fixed windows let a client send the threshold at the end of one window and again at the
//! start of the next: twice the rate, undetected. The weighted estimate sees the burst from
//! both sides of the boundary (Cloudflare's and nginx-plus's approach); with steady traffic it
//! is exact, and it costs two counters and a timestamp per window.

/// Requests in a sliding window of `length_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SlidingWindow {
    /// Start of the current fixed window (ms).
    start_ms: u64,
    current: u32,
    previous: u32,
}

impl SlidingWindow {
    /// Counts one request at `now_ms` and returns the estimated number of requests in the
    /// `length_ms` before it, this one included.
    pub fn record(&mut self, now_ms: u64, length_ms: u64) -> f64 {
        self.record_n(now_ms, length_ms, 1)
    }

    /// Counts `n` at once (a request that weighs more).
    pub fn record_n(&mut self, now_ms: u64, length_ms: u64, n: u32) -> f64 {
        self.roll(now_ms, length_ms);
        self.current = self.current.saturating_add(n);
        self.estimate(now_ms, length_ms)
    }

    /// The estimate at `now_ms` without counting anything.
    pub fn estimate(&self, now_ms: u64, length_ms: u64) -> f64 {
        let length = length_ms.max(1);
        let (current, previous, start) = if now_ms >= self.start_ms + 2 * length {
            (0, 0, now_ms - now_ms % length)
        } else if now_ms >= self.start_ms + length {
            (0, self.current, self.start_ms + length)
        } else {
            (self.current, self.previous, self.start_ms)
        };
        let into = now_ms.saturating_sub(start) as f64 / length as f64;
        f64::from(current) + f64::from(previous) * (1.0 - into.min(1.0))
    }

    fn roll(&mut self, now_ms: u64, length_ms: u64) {
        let length = length_ms.max(1);
        if now_ms >= self.start_ms + 2 * length {
            self.previous = 0;
            self.current = 0;
            self.start_ms = now_ms - now_ms % length;
        } else if now_ms >= self.start_ms + length {
            self.previous = self.current;
            self.current = 0;
            self.start_ms += length;
        }
    }

    /// Whether nothing was counted in the last two windows (the state can be forgotten).
    pub fn is_idle(&self, now_ms: u64, length_ms: u64) -> bool {
        now_ms >= self.start_ms + 2 * length_ms.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_rate_is_counted_exactly() {
        let mut w = SlidingWindow::default();
        let mut last = 0.0;
        // 10 requests a second for 5 seconds.
        for i in 0..50u64 {
            last = w.record(10_000 + i * 100, 1000);
        }
        assert!((last - 10.0).abs() < 1.01, "{last}");
    }

    #[test]
    fn a_burst_across_a_boundary_is_seen_whole() {
        let mut w = SlidingWindow::default();
        // 50 requests at the end of one window, 50 at the start of the next.
        for _ in 0..50 {
            w.record(10_990, 1000);
        }
        let mut seen = 0.0;
        for _ in 0..50 {
            seen = w.record(11_010, 1000);
        }
        // A fixed window would say 50; the sliding estimate sees about 99.
        assert!(seen > 95.0, "{seen}");
    }

    #[test]
    fn old_traffic_fades_out() {
        let mut w = SlidingWindow::default();
        for _ in 0..100 {
            w.record(5_000, 1000);
        }
        assert!((w.estimate(5_500, 1000) - 100.0).abs() < 1e-9);
        assert!((w.estimate(6_500, 1000) - 50.0).abs() < 1e-9);
        assert_eq!(w.estimate(7_000, 1000), 0.0);
        assert!(w.is_idle(7_000, 1000));
        assert!((w.record(9_000, 1000) - 1.0).abs() < 1e-9);
    }
}
