//! Per-address traffic and the decision on it: sliding per-second and per-minute rates, and a
//! block that grows while the address keeps pushing.

use super::patterns::{
    Pattern, BURST_MIN_PER_SECOND, BURST_MULTIPLE, ERRORS_MIN_PER_MINUTE, ERROR_SHARE,
    HAMMER_MIN_PER_MINUTE, HAMMER_STREAK,
};
use super::window::SlidingWindow;

/// Limits for one address.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Requests in any one-second sliding window before blocking.
    pub per_second: f64,
    /// Requests in any one-minute sliding window before blocking.
    pub per_minute: f64,
    /// The first block's length (ms); each further offence doubles it.
    pub block_ms: u64,
    /// The longest block (ms).
    pub max_block_ms: u64,
}

impl Thresholds {
    /// The same limits scaled (emergency mode tightens them by a factor below 1).
    pub fn scaled(self, factor: f64) -> Thresholds {
        Thresholds {
            per_second: (self.per_second * factor).max(1.0),
            per_minute: (self.per_minute * factor).max(1.0),
            ..self
        }
    }
}

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement {
    /// Serve it.
    Pass,
    /// Refuse it.
    Blocked {
        /// Milliseconds until the block ends.
        retry_after_ms: u64,
        /// This request started the block (log it); later ones are repeats.
        first: bool,
        /// Which limit: true for per second, false for per minute.
        per_second: bool,
    },
}

/// One address's recent traffic.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct IpTraffic {
    second: SlidingWindow,
    minute: SlidingWindow,
    errors: SlidingWindow,
    blocked_until_ms: u64,
    last_offence_ms: u64,
    offences: u8,
    /// Patterns seen (bits of [`Pattern`]).
    patterns: u8,
    streak_endpoint: u64,
    streak: u32,
    /// The address's usual per-second rate, learned slowly.
    baseline_per_second: f32,
    baseline_at_ms: u64,
    /// First request (ms).
    pub first_seen_ms: u64,
    /// Last request (ms), for eviction.
    pub last_seen_ms: u64,
}

impl IpTraffic {
    /// Counts a request at `now_ms` (refused ones too: an address that keeps pushing while
    /// blocked stays over the limit) and decides it.
    pub fn judge(&mut self, now_ms: u64, limits: &Thresholds) -> Judgement {
        self.judge_weighted(now_ms, limits, 1)
    }

    /// As [`IpTraffic::judge`], the request counting `weight` times (emergency mode makes
    /// expensive MCP calls weigh more, so they are limited first).
    pub fn judge_weighted(&mut self, now_ms: u64, limits: &Thresholds, weight: u32) -> Judgement {
        if self.first_seen_ms == 0 {
            self.first_seen_ms = now_ms;
        }
        self.last_seen_ms = now_ms;
        let per_second = self.second.record_n(now_ms, 1_000, weight);
        let per_minute = self.minute.record_n(now_ms, 60_000, weight);
        if now_ms < self.blocked_until_ms {
            return Judgement::Blocked {
                retry_after_ms: self.blocked_until_ms - now_ms,
                first: false,
                per_second: true,
            };
        }
        let over_second = per_second > limits.per_second;
        if !over_second && per_minute <= limits.per_minute {
            return Judgement::Pass;
        }
        // Offences are forgiven after ten quiet block lengths.
        if now_ms.saturating_sub(self.last_offence_ms) > limits.block_ms.saturating_mul(10) {
            self.offences = 0;
        }
        let length = limits
            .block_ms
            .saturating_mul(1u64 << self.offences.min(20))
            .min(limits.max_block_ms);
        self.offences = self.offences.saturating_add(1);
        self.last_offence_ms = now_ms;
        self.blocked_until_ms = now_ms.saturating_add(length);
        Judgement::Blocked {
            retry_after_ms: length,
            first: true,
            per_second: over_second,
        }
    }

    /// Notes a request to `endpoint` (a key of path and tool) after [`IpTraffic::judge`];
    /// returns the patterns it newly shows (bits of [`Pattern`]).
    pub fn note_request(&mut self, now_ms: u64, endpoint: u64) -> u8 {
        let (per_second, per_minute) = self.rates(now_ms);
        if endpoint == self.streak_endpoint {
            self.streak = self.streak.saturating_add(1);
        } else {
            self.streak_endpoint = endpoint;
            self.streak = 1;
        }
        let mut found = 0;
        if self.streak >= HAMMER_STREAK && per_minute >= HAMMER_MIN_PER_MINUTE {
            found |= Pattern::Hammering.bit();
        }
        let baseline = f64::from(self.baseline_per_second);
        if per_second >= BURST_MIN_PER_SECOND && per_second > BURST_MULTIPLE * baseline {
            found |= Pattern::Burst.bit();
        }
        // The baseline follows the per-second rate with a one-minute time constant, weighted
        // by time rather than by request, so a burst's many requests barely move it.
        let elapsed = now_ms.saturating_sub(self.baseline_at_ms) as f32;
        let alpha = if self.baseline_at_ms == 0 {
            1.0
        } else {
            (elapsed / 60_000.0).min(1.0)
        };
        self.baseline_per_second += alpha * (per_second as f32 - self.baseline_per_second);
        self.baseline_at_ms = now_ms;
        let new = found & !self.patterns;
        self.patterns |= found;
        new
    }

    /// Notes how a request ended; returns the patterns newly shown.
    pub fn note_response(&mut self, now_ms: u64, status: u16) -> u8 {
        let errors = if status >= 400 {
            self.errors.record(now_ms, 60_000)
        } else {
            self.errors.estimate(now_ms, 60_000)
        };
        let (_, per_minute) = self.rates(now_ms);
        let mut found = 0;
        if errors >= ERRORS_MIN_PER_MINUTE && errors >= ERROR_SHARE * per_minute {
            found |= Pattern::ErrorRate.bit();
        }
        let new = found & !self.patterns;
        self.patterns |= found;
        new
    }

    /// Whether the address earns the tightest limits in an emergency that began at
    /// `emergency_since_ms`: it is new since then, or it has a bad record here (a block
    /// before, or a pattern seen). Reputation from IP management will add to this.
    pub fn is_suspect(&self, emergency_since_ms: u64) -> bool {
        self.first_seen_ms == 0
            || self.first_seen_ms >= emergency_since_ms
            || self.offences > 0
            || self.patterns != 0
    }

    /// A DDoS block before, or a high error rate (a scanner's mark): what overload protection
    /// admits last. The volume patterns (hammering one endpoint, a burst) are not: an agent
    /// calling one tool twice a second shows them, and the rate limits already judge volume.
    pub fn has_bad_record(&self) -> bool {
        self.offences > 0 || self.patterns & Pattern::ErrorRate.bit() != 0
    }

    /// Patterns seen from this address.
    pub fn patterns(&self) -> Vec<Pattern> {
        Pattern::from_bits(self.patterns)
    }

    /// Whether a block is running.
    pub fn is_blocked(&self, now_ms: u64) -> bool {
        now_ms < self.blocked_until_ms
    }

    /// When the current block ends (ms), if one is running.
    pub fn blocked_until(&self, now_ms: u64) -> Option<u64> {
        self.is_blocked(now_ms).then_some(self.blocked_until_ms)
    }

    /// Requests in the last second and the last minute.
    pub fn rates(&self, now_ms: u64) -> (f64, f64) {
        (
            self.second.estimate(now_ms, 1_000),
            self.minute.estimate(now_ms, 60_000),
        )
    }

    /// Nothing left worth keeping: no block running, no traffic in two minutes.
    pub fn is_idle(&self, now_ms: u64) -> bool {
        !self.is_blocked(now_ms) && self.minute.is_idle(now_ms, 60_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Thresholds = Thresholds {
        per_second: 5.0,
        per_minute: 100.0,
        block_ms: 60_000,
        max_block_ms: 3_600_000,
    };

    fn flood(t: &mut IpTraffic, at: u64, n: usize) -> Vec<Judgement> {
        (0..n).map(|_| t.judge(at, &LIMITS)).collect()
    }

    #[test]
    fn over_the_per_second_threshold_blocks_for_the_block_duration() {
        let mut t = IpTraffic::default();
        let verdicts = flood(&mut t, 10_000, 7);
        assert!(verdicts[..5].iter().all(|v| *v == Judgement::Pass));
        assert_eq!(
            verdicts[5],
            Judgement::Blocked {
                retry_after_ms: 60_000,
                first: true,
                per_second: true
            }
        );
        assert!(matches!(
            verdicts[6],
            Judgement::Blocked {
                first: false,
                retry_after_ms: 60_000,
                ..
            }
        ));
        // Still blocked 59 s later, free after 60 s.
        assert!(matches!(
            t.judge(69_999, &LIMITS),
            Judgement::Blocked {
                retry_after_ms: 1,
                ..
            }
        ));
        assert_eq!(t.judge(70_000, &LIMITS), Judgement::Pass);
    }

    #[test]
    fn blocks_grow_while_the_address_keeps_pushing_and_are_forgiven_later() {
        let mut t = IpTraffic::default();
        flood(&mut t, 10_000, 6);
        // Right after the first block it floods again: the second block is twice as long.
        let again = flood(&mut t, 70_000, 6);
        assert_eq!(
            again[5],
            Judgement::Blocked {
                retry_after_ms: 120_000,
                first: true,
                per_second: true
            }
        );
        let third = flood(&mut t, 190_000, 6);
        assert_eq!(
            third[5],
            Judgement::Blocked {
                retry_after_ms: 240_000,
                first: true,
                per_second: true
            }
        );
        // Quiet for more than ten block lengths: back to the first length.
        let later = flood(&mut t, 190_000 + 240_000 + 700_000, 6);
        assert_eq!(
            later[5],
            Judgement::Blocked {
                retry_after_ms: 60_000,
                first: true,
                per_second: true
            }
        );
    }

    #[test]
    fn the_per_minute_threshold_catches_a_steady_stream() {
        let mut t = IpTraffic::default();
        // 4 a second stays under 5/s but passes 100 a minute after 25 s.
        let mut blocked_at = None;
        for i in 0..400u64 {
            if let Judgement::Blocked {
                per_second: false, ..
            } = t.judge(1_000_000 + i * 250, &LIMITS)
            {
                blocked_at = Some(i);
                break;
            }
        }
        // About 100 requests inside one sliding minute (the first window was partial).
        let at = blocked_at.expect("blocked by the per-minute limit");
        assert!((100..=120).contains(&at), "{at}");
    }

    #[test]
    fn hammering_bursts_and_errors_are_recognised_once() {
        let loose = Thresholds {
            per_second: 1e9,
            per_minute: 1e9,
            ..LIMITS
        };
        let mut t = IpTraffic::default();
        // A calm client: 1 request a second to varied endpoints.
        for i in 0..60u64 {
            t.judge(1_000_000 + i * 1000, &loose);
            assert_eq!(t.note_request(1_000_000 + i * 1000, i % 3), 0);
        }
        // Then 30 requests in one second to one endpoint: a burst.
        let mut bits = 0;
        for i in 0..30u64 {
            t.judge(1_060_000 + i * 30, &loose);
            bits |= t.note_request(1_060_000 + i * 30, 42);
        }
        assert_eq!(Pattern::from_bits(bits), vec![Pattern::Burst]);
        // Keep at it, 150 requests on the same endpoint: hammering too.
        for i in 0..150u64 {
            t.judge(1_061_000 + i * 100, &loose);
            bits |= t.note_request(1_061_000 + i * 100, 42);
        }
        assert!(Pattern::from_bits(bits).contains(&Pattern::Hammering));
        // Later, mostly 404s: a high error rate, reported once.
        let mut error_bits = 0;
        for i in 0..40u64 {
            let now = 1_300_000 + i * 100;
            t.judge(now, &loose);
            error_bits |= t.note_response(now, 404);
        }
        assert_eq!(Pattern::from_bits(error_bits), vec![Pattern::ErrorRate]);
        assert_eq!(t.note_response(1_304_500, 404), 0, "already reported");
        assert_eq!(t.patterns().len(), 3);
    }

    #[test]
    fn emergency_scaling_halves_the_limits() {
        let half = LIMITS.scaled(0.5);
        assert_eq!(half.per_second, 2.5);
        let mut t = IpTraffic::default();
        let v: Vec<Judgement> = (0..3).map(|_| t.judge(10_000, &half)).collect();
        assert_eq!(&v[..2], &[Judgement::Pass, Judgement::Pass]);
        assert!(matches!(v[2], Judgement::Blocked { first: true, .. }));
    }
}
