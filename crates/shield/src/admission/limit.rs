//! The adaptive concurrency limit: how many requests the upstream can work on at once,
//! learned from its latency, in the family of TCP Vegas and Netflix's gradient limiter.
//!
//! A server's latency stays flat while it has spare capacity and grows once requests queue
//! inside it. So the limiter compares the latency of the last window (`short`) with the
//! upstream's latency when it is *not* loaded (`baseline`), and:
//! - while `short` is within `tolerance` times the baseline, the limit grows by about the
//!   square root of itself per window (more room, probing for capacity);
//! - beyond, it shrinks in proportion (`limit × tolerance × baseline / short`, never by more
//!   than half a window, and without the probing room), so it settles where latency is about
//!   `tolerance` times the no-load latency: for an upstream that queues what it cannot work
//!   on, about 1.5 times its real capacity, whatever that capacity is.
//!
//! Where the baseline comes from is the part that differs from the gradient limiter: there it
//! is a long average of the same latencies, which creeps up under a long overload until the
//! limiter stops pushing back (the known drift). Here it is learned only from requests that
//! started with few requests in flight (at most [`AdaptiveLimit::low_load_threshold`], the
//! limit's floor), which under overload is none, so it holds still while the upstream is pushed. If the upstream
//! really became slower for good, the shrinking limit soon reaches that low load, the baseline
//! relearns, and the limit recovers: no periodic probe that empties the upstream is needed
//! (Envoy's filter does one every minute).
//!
//! The limit changes only when the upstream was pushed during the window (a request waited, or
//! at least half the limit was in flight): an idle upstream says nothing about its capacity.
//! Everything here is pure; the caller measures and passes windows in.

/// How the limit is learned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimitSettings {
    /// A fixed limit (nothing is learned).
    pub fixed: Option<u32>,
    /// Floor of the learned limit.
    pub min: u32,
    /// Ceiling of the learned limit.
    pub max: u32,
    /// Where the learned limit starts.
    pub initial: u32,
    /// How much slower than at no load the upstream may get before the limit shrinks.
    pub tolerance: f64,
    /// How far one window moves the limit towards its new value (0 to 1).
    pub smoothing: f64,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            fixed: None,
            min: 4,
            max: 1000,
            initial: 20,
            tolerance: 1.5,
            smoothing: 0.2,
        }
    }
}

/// What one window measured.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Window {
    /// Responses in the window.
    pub samples: u64,
    /// Their latencies added up (ns).
    pub latency_sum_ns: u64,
    /// Responses to requests that started at low load.
    pub low_load_samples: u64,
    /// Their latencies added up (ns).
    pub low_load_sum_ns: u64,
    /// The most requests in flight at once.
    pub peak_in_flight: u32,
    /// Whether a request had to wait or was refused.
    pub congested: bool,
}

/// The limit and what it is learned from.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptiveLimit {
    settings: LimitSettings,
    limit: f64,
    baseline_ns: f64,
}

impl AdaptiveLimit {
    /// A limit at its start value.
    pub fn new(settings: LimitSettings) -> Self {
        let start = settings
            .fixed
            .unwrap_or_else(|| settings.initial.clamp(settings.min, settings.max.max(1)));
        AdaptiveLimit {
            settings,
            limit: f64::from(start.max(1)),
            baseline_ns: 0.0,
        }
    }

    /// The limit now.
    pub fn limit(&self) -> u32 {
        self.limit.round().max(1.0) as u32
    }

    /// The upstream's latency at low load (ns; 0 before the first sample).
    pub fn baseline_ns(&self) -> f64 {
        self.baseline_ns
    }

    /// Whether the limit is fixed by configuration.
    pub fn is_fixed(&self) -> bool {
        self.settings.fixed.is_some()
    }

    /// A request that started with at most this many in flight measures the no-load latency:
    /// the limit's floor, so a limit pushed down to its floor relearns the baseline.
    pub fn low_load_threshold(&self) -> u32 {
        self.settings.min.max(1)
    }

    /// Learns from one window; returns the new limit.
    pub fn end_window(&mut self, w: &Window) -> u32 {
        if self.settings.fixed.is_some() {
            return self.limit();
        }
        if w.low_load_samples > 0 {
            let mean = w.low_load_sum_ns as f64 / w.low_load_samples as f64;
            // Pushed down to its floor, the upstream is not queueing (the floor is taken to be
            // within its capacity): what it shows there is its no-load latency, so the baseline
            // follows fast, before the limit leaves the floor again.
            let at_floor = self.limit() <= self.low_load_threshold();
            let alpha = if at_floor { 0.5 } else { 0.2 };
            self.baseline_ns = if self.baseline_ns == 0.0 {
                mean
            } else {
                self.baseline_ns + alpha * (mean - self.baseline_ns)
            };
        }
        if w.samples == 0 {
            return self.limit();
        }
        if self.baseline_ns <= 0.0 {
            // Busy from the first request, with never a request at low load: the first
            // window's latency is the best guess there is (a later low-load sample corrects it).
            self.baseline_ns = w.latency_sum_ns as f64 / w.samples as f64;
        }
        let pushed = w.congested || f64::from(w.peak_in_flight) >= self.limit / 2.0;
        if !pushed {
            return self.limit();
        }
        let short = w.latency_sum_ns as f64 / w.samples as f64;
        let gradient =
            (self.settings.tolerance * self.baseline_ns / short.max(1.0)).clamp(0.5, 1.0);
        // Room to probe for more capacity only while the latency is within tolerance: past it,
        // a constant headroom would hold the limit above the point it should settle at (by
        // the square root of the limit: three times the capacity of a one-worker upstream).
        let headroom = if gradient >= 1.0 {
            self.limit.sqrt()
        } else {
            0.0
        };
        let target = self.limit * gradient + headroom;
        let s = self.settings.smoothing;
        self.limit = (self.limit * (1.0 - s) + target * s).clamp(
            f64::from(self.settings.min.max(1)),
            f64::from(self.settings.max.max(self.settings.min).max(1)),
        );
        self.limit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream that works on `capacity` requests at once, each taking `service_ms`; more
    /// wait inside it (the test's model of a thread pool or a worker count).
    struct Upstream {
        capacity: f64,
        service_ms: f64,
    }

    impl Upstream {
        fn latency_ns(&self, in_flight: f64) -> f64 {
            self.service_ms * 1e6 * (in_flight / self.capacity).max(1.0)
        }
    }

    /// One 100 ms window of a saturated closed loop: the limiter's limit is all in flight.
    fn saturated_window(limit: &AdaptiveLimit, upstream: &Upstream) -> Window {
        let in_flight = f64::from(limit.limit());
        let latency = upstream.latency_ns(in_flight);
        let samples = (in_flight * 100e6 / latency).max(1.0) as u64;
        Window {
            samples,
            latency_sum_ns: (latency * samples as f64) as u64,
            peak_in_flight: limit.limit(),
            congested: true,
            ..Window::default()
        }
    }

    /// A calm window: one request at a time.
    fn calm_window(upstream: &Upstream) -> Window {
        let latency = upstream.latency_ns(1.0) as u64;
        Window {
            samples: 5,
            latency_sum_ns: latency * 5,
            low_load_samples: 5,
            low_load_sum_ns: latency * 5,
            peak_in_flight: 1,
            congested: false,
        }
    }

    fn run(limit: &mut AdaptiveLimit, upstream: &Upstream, windows: usize) {
        for _ in 0..windows {
            let w = saturated_window(limit, upstream);
            limit.end_window(&w);
        }
    }

    #[test]
    fn calm_traffic_teaches_the_baseline_and_leaves_the_limit() {
        let mut limit = AdaptiveLimit::new(LimitSettings::default());
        let upstream = Upstream {
            capacity: 32.0,
            service_ms: 20.0,
        };
        for _ in 0..50 {
            limit.end_window(&calm_window(&upstream));
        }
        assert_eq!(limit.limit(), 20);
        assert!((limit.baseline_ns() - 20e6).abs() < 1e3);
    }

    #[test]
    fn converges_to_a_slow_upstreams_capacity() {
        for capacity in [8.0, 32.0, 100.0] {
            let upstream = Upstream {
                capacity,
                service_ms: 20.0,
            };
            let mut limit = AdaptiveLimit::new(LimitSettings::default());
            for _ in 0..20 {
                limit.end_window(&calm_window(&upstream));
            }
            // Sixty seconds of saturation.
            run(&mut limit, &upstream, 600);
            let l = f64::from(limit.limit());
            assert!(
                l >= capacity && l <= 2.0 * capacity,
                "capacity {capacity}: limit {l}"
            );
            // The baseline did not drift while saturated.
            assert!((limit.baseline_ns() - 20e6).abs() < 1e3);
        }
    }

    #[test]
    fn small_upstreams_stay_within_three_times_their_capacity() {
        for capacity in [1.0, 2.0, 4.0] {
            let upstream = Upstream {
                capacity,
                service_ms: 50.0,
            };
            let mut limit = AdaptiveLimit::new(LimitSettings {
                min: 1,
                ..LimitSettings::default()
            });
            for _ in 0..20 {
                limit.end_window(&calm_window(&upstream));
            }
            run(&mut limit, &upstream, 600);
            let most = (0..100)
                .map(|_| {
                    let w = saturated_window(&limit, &upstream);
                    limit.end_window(&w)
                })
                .max()
                .unwrap_or(0);
            assert!(
                f64::from(most) <= 3.0 * capacity && f64::from(most) >= capacity,
                "capacity {capacity}: limit up to {most}"
            );
        }
    }

    #[test]
    fn backs_off_when_latency_rises_and_recovers() {
        let mut upstream = Upstream {
            capacity: 64.0,
            service_ms: 20.0,
        };
        let mut limit = AdaptiveLimit::new(LimitSettings::default());
        for _ in 0..20 {
            limit.end_window(&calm_window(&upstream));
        }
        run(&mut limit, &upstream, 300);
        let before = limit.limit();
        assert!(before >= 64, "{before}");
        // The upstream loses three quarters of its capacity (a replica gone).
        upstream.capacity = 16.0;
        run(&mut limit, &upstream, 100);
        let during = limit.limit();
        assert!((16..=32).contains(&during), "{before} -> {during}");
        // It comes back.
        upstream.capacity = 64.0;
        run(&mut limit, &upstream, 300);
        let after = limit.limit();
        assert!(after >= 64, "{during} -> {after}");
    }

    #[test]
    fn an_upstream_slower_for_good_is_relearned() {
        let mut upstream = Upstream {
            capacity: 32.0,
            service_ms: 20.0,
        };
        let mut limit = AdaptiveLimit::new(LimitSettings::default());
        for _ in 0..20 {
            limit.end_window(&calm_window(&upstream));
        }
        run(&mut limit, &upstream, 300);
        // Every request now takes three times as long, at any load.
        upstream.service_ms = 60.0;
        for _ in 0..600 {
            let mut w = saturated_window(&limit, &upstream);
            // Requests that start at low load (the limit near its floor) teach the baseline.
            if limit.limit() <= limit.low_load_threshold() {
                w.low_load_samples = w.samples;
                w.low_load_sum_ns = w.latency_sum_ns;
            }
            limit.end_window(&w);
        }
        let l = limit.limit();
        assert!((32..=64).contains(&l), "{l}");
    }

    #[test]
    fn busy_from_the_start_it_still_learns() {
        let upstream = Upstream {
            capacity: 64.0,
            service_ms: 20.0,
        };
        let mut limit = AdaptiveLimit::new(LimitSettings::default());
        // Never a request at low load: the limit must still grow towards the capacity.
        run(&mut limit, &upstream, 300);
        assert!(limit.limit() >= 64, "{}", limit.limit());
    }

    #[test]
    fn an_idle_upstream_does_not_move_the_limit() {
        let mut limit = AdaptiveLimit::new(LimitSettings::default());
        let upstream = Upstream {
            capacity: 2.0,
            service_ms: 10.0,
        };
        limit.end_window(&calm_window(&upstream));
        let mut w = calm_window(&upstream);
        w.latency_sum_ns *= 10; // slow, but nothing was pushed
        limit.end_window(&w);
        assert_eq!(limit.limit(), 20);
    }

    #[test]
    fn a_fixed_limit_stays_and_bounds_hold() {
        let mut fixed = AdaptiveLimit::new(LimitSettings {
            fixed: Some(7),
            ..LimitSettings::default()
        });
        let upstream = Upstream {
            capacity: 1.0,
            service_ms: 10.0,
        };
        run(&mut fixed, &upstream, 50);
        assert_eq!(fixed.limit(), 7);
        let mut bounded = AdaptiveLimit::new(LimitSettings {
            min: 10,
            max: 12,
            ..LimitSettings::default()
        });
        for _ in 0..5 {
            bounded.end_window(&calm_window(&upstream));
        }
        run(&mut bounded, &upstream, 100);
        assert_eq!(bounded.limit(), 10);
        let fast = Upstream {
            capacity: 1000.0,
            service_ms: 10.0,
        };
        run(&mut bounded, &fast, 100);
        assert_eq!(bounded.limit(), 12);
    }
}
