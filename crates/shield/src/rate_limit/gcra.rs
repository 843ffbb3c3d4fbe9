//! The token bucket, as GCRA (the generic cell rate algorithm): one number per bucket, the
//! theoretical arrival time (TAT) of the next request at the sustained rate.
//!
//! A bucket of capacity `c` refilling at `r` tokens per second has an emission interval
//! `T = 1/r`. A request costing `n` tokens at time `now` conforms when
//! `max(tat, now) + n·T − now ≤ c·T`: the debt it leaves is at most a full bucket. If it
//! conforms, `tat` becomes `max(tat, now) + n·T`. This is exactly a token bucket that holds `c`
//! tokens and gains one every `T` (the bucket holds `(now + c·T − tat) / T` tokens), in one
//! integer that updates with a single compare-and-swap and that Redis can keep in one key.
//! A bucket whose `tat ≤ now` is full: it carries no information and can be forgotten.

/// Capacity and refill rate of a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    capacity: u64,
    interval_ns: u64,
}

impl Quota {
    /// `capacity` tokens, refilled at `rate` tokens per second (fractions allowed: 0.1 is one
    /// token every ten seconds). A rate too small to express is one token per ~584 years.
    pub fn new(capacity: u64, rate_per_second: f64) -> Quota {
        let interval = if rate_per_second > 0.0 && rate_per_second.is_finite() {
            (1e9 / rate_per_second).round()
        } else {
            u64::MAX as f64
        };
        Quota {
            capacity: capacity.max(1),
            interval_ns: (interval as u64).max(1),
        }
    }

    /// Bucket size.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Nanoseconds between tokens.
    pub fn interval_ns(&self) -> u64 {
        self.interval_ns
    }

    /// Nanoseconds for an empty bucket to fill up: `c·T`.
    pub fn window_ns(&self) -> u64 {
        self.capacity.saturating_mul(self.interval_ns)
    }
}

/// The answer for one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conformance {
    /// Allowed: store `new_tat`; `remaining` whole tokens are left.
    Allow {
        /// The TAT to store.
        new_tat: u64,
        /// Tokens left after this request.
        remaining: u64,
    },
    /// Refused: nothing changes.
    Deny {
        /// Nanoseconds until the same request would conform.
        retry_after_ns: u64,
        /// Nanoseconds until the bucket is full again.
        reset_after_ns: u64,
    },
}

/// Decides a request of `cost` tokens at `now_ns` against a bucket whose stored TAT is `tat`
/// (0 for a bucket never seen).
pub fn check(tat: u64, now_ns: u64, quota: Quota, cost: u64) -> Conformance {
    // In 128 bits nothing saturates, so a huge cost or interval is refused rather than
    // clamped into looking affordable.
    let base = u128::from(tat.max(now_ns));
    let now = u128::from(now_ns);
    let interval = u128::from(quota.interval_ns);
    let new_tat = base + u128::from(cost) * interval;
    let limit = now + u128::from(quota.capacity) * interval;
    let clamp = |x: u128| u64::try_from(x).unwrap_or(u64::MAX);
    if new_tat <= limit {
        Conformance::Allow {
            new_tat: clamp(new_tat),
            remaining: clamp((limit - new_tat) / interval),
        }
    } else {
        Conformance::Deny {
            retry_after_ns: clamp(new_tat - limit),
            reset_after_ns: clamp(base - now),
        }
    }
}

/// Gives back `cost` tokens taken by [`check`] (a later bucket of the same request refused
/// it). The TAT never goes below `now`, where the bucket is full anyway.
pub fn refund(tat: u64, now_ns: u64, quota: Quota, cost: u64) -> u64 {
    tat.saturating_sub(cost.saturating_mul(quota.interval_ns))
        .max(now_ns.min(tat))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    /// Runs requests at the given times (seconds) and returns which were allowed.
    fn run(quota: Quota, times: &[f64]) -> Vec<bool> {
        let mut tat = 0;
        times
            .iter()
            .map(|t| {
                let now = (t * SEC as f64) as u64 + SEC;
                match check(tat, now, quota, 1) {
                    Conformance::Allow { new_tat, .. } => {
                        tat = new_tat;
                        true
                    }
                    Conformance::Deny { .. } => false,
                }
            })
            .collect()
    }

    #[test]
    fn burst_of_capacity_then_refusal() {
        let quota = Quota::new(5, 1.0);
        assert_eq!(
            run(quota, &[0.0; 7]),
            [true, true, true, true, true, false, false]
        );
    }

    #[test]
    fn refills_one_token_per_interval() {
        let quota = Quota::new(2, 2.0); // a token every 500 ms
        let allowed = run(quota, &[0.0, 0.0, 0.0, 0.49, 0.5, 0.6, 1.0, 5.0, 5.0, 5.0]);
        assert_eq!(
            allowed,
            [true, true, false, false, true, false, true, true, true, false]
        );
    }

    #[test]
    fn fractional_rates() {
        let quota = Quota::new(1, 0.1); // one token every ten seconds
        assert_eq!(
            run(quota, &[0.0, 5.0, 9.9, 10.0, 15.0, 20.0]),
            [true, false, false, true, false, true]
        );
    }

    #[test]
    fn remaining_retry_and_reset() {
        let quota = Quota::new(3, 1.0);
        let now = 100 * SEC;
        let Conformance::Allow { new_tat, remaining } = check(0, now, quota, 1) else {
            panic!("first request allowed")
        };
        assert_eq!(remaining, 2);
        let Conformance::Allow { new_tat, remaining } = check(new_tat, now, quota, 2) else {
            panic!("cost 2 fits")
        };
        assert_eq!(remaining, 0);
        assert_eq!(
            check(new_tat, now, quota, 1),
            Conformance::Deny {
                retry_after_ns: SEC,
                reset_after_ns: 3 * SEC
            }
        );
        // A cost larger than the capacity never fits.
        assert!(matches!(check(0, now, quota, 4), Conformance::Deny { .. }));
    }

    #[test]
    fn refund_restores_the_bucket() {
        let quota = Quota::new(2, 1.0);
        let now = 10 * SEC;
        let Conformance::Allow { new_tat, .. } = check(0, now, quota, 1) else {
            panic!("allowed")
        };
        let restored = refund(new_tat, now, quota, 1);
        assert_eq!(restored, now);
        assert!(matches!(
            check(restored, now, quota, 2),
            Conformance::Allow { remaining: 0, .. }
        ));
    }

    #[test]
    fn zero_or_absurd_rates_do_not_overflow() {
        let quota = Quota::new(u64::MAX, 1e-30);
        assert!(matches!(check(0, 1, quota, 1), Conformance::Allow { .. }));
        let quota = Quota::new(1, 1e30);
        assert_eq!(quota.interval_ns(), 1);
        assert!(matches!(
            check(u64::MAX - 1, u64::MAX - 1, quota, u64::MAX),
            Conformance::Deny { .. }
        ));
    }
}
