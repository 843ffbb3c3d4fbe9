//! Requests and refusals per second over the last 15 minutes, for the dashboard's chart and
//! `GET /api/security/timeline`: once a second the counters are read and what changed since
//! the last reading is kept, in a ring of 900 seconds. Pure (the caller passes the time and
//! the counters), bounded, and cheap: nothing on the request path.

use std::collections::VecDeque;

use serde::Serialize;

use crate::events::StatisticsSnapshot;

/// Seconds kept.
pub const SECONDS: usize = 15 * 60;

/// One second of traffic: what the counters moved by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct Second {
    /// Unix seconds at its end.
    pub at: u64,
    /// Requests that reached the guards.
    pub requests: u64,
    /// Refused, all reasons.
    pub blocked: u64,
    /// Of which rate limited (429).
    pub rate_limited: u64,
    /// DDoS protection.
    pub ddos_blocked: u64,
    /// IP lists, feeds, countries, reputation.
    pub ip_blocked: u64,
    /// Threat detection.
    pub threat_detected: u64,
    /// Overload protection (503).
    pub overloaded: u64,
}

/// The ring of seconds.
#[derive(Debug, Default)]
pub struct Timeline {
    seconds: VecDeque<Second>,
    last: Option<(u64, StatisticsSnapshot)>,
}

impl Timeline {
    /// Takes a reading of the counters at Unix second `now`; returns the second it added (the
    /// first reading only sets the baseline). Several seconds since the last reading (a stalled
    /// sampler) are spread as one entry at `now`.
    pub fn record(&mut self, now: u64, counters: StatisticsSnapshot) -> Option<Second> {
        let previous = self.last.replace((now, counters));
        let (then, before) = previous?;
        if now <= then {
            // The same second again, or the clock stepped back: keep the newer baseline.
            return None;
        }
        let delta = |a: u64, b: u64| a.saturating_sub(b);
        let second = Second {
            at: now,
            requests: delta(counters.total_requests, before.total_requests),
            blocked: delta(counters.blocked_requests, before.blocked_requests),
            rate_limited: delta(counters.rate_limited, before.rate_limited),
            ddos_blocked: delta(counters.ddos_blocked, before.ddos_blocked),
            ip_blocked: delta(counters.ip_blocked, before.ip_blocked),
            threat_detected: delta(counters.threat_detected, before.threat_detected),
            overloaded: delta(counters.overloaded, before.overloaded),
        };
        if self.seconds.len() >= SECONDS {
            self.seconds.pop_front();
        }
        self.seconds.push_back(second);
        Some(second)
    }

    /// The seconds kept, oldest first.
    pub fn seconds(&self) -> Vec<Second> {
        self.seconds.iter().copied().collect()
    }

    /// The latest second kept.
    pub fn latest(&self) -> Option<Second> {
        self.seconds.back().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(total: u64, blocked: u64, threats: u64) -> StatisticsSnapshot {
        StatisticsSnapshot {
            total_requests: total,
            blocked_requests: blocked,
            threat_detected: threats,
            ..StatisticsSnapshot::default()
        }
    }

    #[test]
    fn each_second_keeps_what_the_counters_moved_and_fifteen_minutes_at_most() {
        let mut timeline = Timeline::default();
        assert_eq!(timeline.record(100, counters(10, 0, 0)), None, "a baseline");
        let second = timeline.record(101, counters(25, 4, 3)).expect("a second");
        assert_eq!(
            (
                second.at,
                second.requests,
                second.blocked,
                second.threat_detected
            ),
            (101, 15, 4, 3)
        );
        assert_eq!(
            timeline.record(101, counters(30, 4, 3)),
            None,
            "the same second"
        );
        for s in 102..(102 + SECONDS as u64 + 10) {
            timeline.record(s, counters(30 + s, 4, 3));
        }
        let kept = timeline.seconds();
        assert_eq!(kept.len(), SECONDS);
        assert_eq!(kept.last().map(|s| s.requests), Some(1));
        assert!(kept.windows(2).all(|w| w[0].at < w[1].at), "oldest first");
    }
}
