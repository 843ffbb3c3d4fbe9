//! Pattern analysis: what a flood looks like besides its rate. Found patterns are reported
//! (events, logs, status, the threat assessment); the rate thresholds do the blocking.
//!
//! Per address (kept in [`super::tracker::IpTraffic`]): hammering one endpoint or tool, a burst
//! far above the address's own baseline, and a high share of error responses. Across
//! addresses ([`SurgeDetector`]): many distinct subnets (/24 for IPv4, /64 for IPv6) surging on
//! one endpoint together, the distributed flood that per-address limits miss.

use std::collections::HashMap;
use std::net::IpAddr;

/// A pattern an address showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// Most of its recent requests go to one endpoint or tool, at a high rate.
    Hammering,
    /// Its request rate jumped far above its own recent baseline.
    Burst,
    /// Most of its recent requests end in 4xx/5xx.
    ErrorRate,
}

impl Pattern {
    /// Every pattern, in bit order.
    pub const ALL: [Pattern; 3] = [Pattern::Hammering, Pattern::Burst, Pattern::ErrorRate];

    /// The name in events and assessments.
    pub fn name(self) -> &'static str {
        match self {
            Pattern::Hammering => "endpoint_hammering",
            Pattern::Burst => "burst_above_baseline",
            Pattern::ErrorRate => "high_error_rate",
        }
    }

    /// The pattern's bit in a set.
    pub fn bit(self) -> u8 {
        match self {
            Pattern::Hammering => 1,
            Pattern::Burst => 2,
            Pattern::ErrorRate => 4,
        }
    }

    /// The patterns in a set of bits.
    pub fn from_bits(bits: u8) -> Vec<Pattern> {
        Pattern::ALL
            .into_iter()
            .filter(|p| bits & p.bit() != 0)
            .collect()
    }
}

/// Same endpoint this many times in a row, at [`HAMMER_MIN_PER_MINUTE`] or more, is hammering.
pub const HAMMER_STREAK: u32 = 100;
/// The rate (requests per minute) below which a streak is just a client polling.
pub const HAMMER_MIN_PER_MINUTE: f64 = 120.0;
/// A burst is a per-second rate over this many times the address's baseline...
pub const BURST_MULTIPLE: f64 = 8.0;
/// ...and over this absolute rate (requests per second).
pub const BURST_MIN_PER_SECOND: f64 = 20.0;
/// Errors per minute, and their share of requests, that make a high error rate.
pub const ERRORS_MIN_PER_MINUTE: f64 = 30.0;
/// Share of responses that are errors, for a high error rate.
pub const ERROR_SHARE: f64 = 0.5;

/// The subnet an address counts in for distributed floods.
pub fn subnet_of(ip: IpAddr) -> u64 {
    match ip.to_canonical() {
        IpAddr::V4(v4) => u64::from(u32::from(v4) >> 8),
        IpAddr::V6(v6) => (u128::from(v6) >> 64) as u64 | (1 << 63),
    }
}

/// Distinct subnets in a window, estimated by linear counting on a 1024-bit map: fixed memory,
/// accurate to a few percent up to several hundred subnets, saturating (reporting "many")
/// beyond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct DistinctSubnets([u64; 16]);

impl DistinctSubnets {
    fn add(&mut self, subnet: u64) {
        // SplitMix64 finaliser: spreads neighbouring subnets over the bits.
        let mut z = subnet.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        let bit = ((z ^ (z >> 31)) % 1024) as usize;
        self.0[bit / 64] |= 1 << (bit % 64);
    }

    fn estimate(&self) -> f64 {
        let set: u32 = self.0.iter().map(|w| w.count_ones()).sum();
        let empty = 1024 - set;
        if empty == 0 {
            return 1024.0 * (1024f64).ln();
        }
        -1024.0 * (f64::from(empty) / 1024.0).ln()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct EndpointWindow {
    start_ms: u64,
    requests: u64,
    subnets: DistinctSubnets,
    /// Requests per calm window, learned.
    baseline: f64,
    windows_seen: u64,
}

/// A distributed flood in progress.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Surge {
    /// The endpoint key (a hash of path and tool).
    pub endpoint: u64,
    /// Requests in the window.
    pub requests: u64,
    /// Distinct subnets in the window (estimated).
    pub subnets: f64,
}

/// Window length for distributed floods (ms).
pub const SURGE_WINDOW_MS: u64 = 10_000;
/// Distinct subnets on one endpoint in one window that make a distributed flood...
pub const SURGE_MIN_SUBNETS: f64 = 50.0;
/// ...with at least this many requests...
pub const SURGE_MIN_REQUESTS: u64 = 500;
/// ...and at least this many times the endpoint's calm baseline.
pub const SURGE_MULTIPLE: f64 = 5.0;
/// Endpoints followed at most; requests to others are not analysed for surges.
pub const SURGE_MAX_ENDPOINTS: usize = 1024;

/// Watches endpoints for coordinated surges from many subnets.
#[derive(Debug, Default)]
pub struct SurgeDetector {
    endpoints: HashMap<u64, EndpointWindow>,
}

impl SurgeDetector {
    /// Counts a request from `ip` to `endpoint` at `now_ms`; returns a surge when this request
    /// completes one (once per window and endpoint).
    pub fn record(&mut self, endpoint: u64, ip: IpAddr, now_ms: u64) -> Option<Surge> {
        if !self.endpoints.contains_key(&endpoint) && self.endpoints.len() >= SURGE_MAX_ENDPOINTS {
            // Forget endpoints with no traffic for two windows; if none, skip this one.
            self.endpoints
                .retain(|_, w| now_ms < w.start_ms + 2 * SURGE_WINDOW_MS);
            if self.endpoints.len() >= SURGE_MAX_ENDPOINTS {
                return None;
            }
        }
        let w = self.endpoints.entry(endpoint).or_insert(EndpointWindow {
            start_ms: now_ms,
            ..EndpointWindow::default()
        });
        if now_ms >= w.start_ms + SURGE_WINDOW_MS {
            let was_surge = is_surge(w);
            if !was_surge {
                w.windows_seen += 1;
                let alpha = if w.windows_seen < 30 {
                    1.0 / w.windows_seen as f64
                } else {
                    1.0 / 60.0
                };
                w.baseline += alpha * (w.requests as f64 - w.baseline);
            }
            w.start_ms = now_ms;
            w.requests = 0;
            w.subnets = DistinctSubnets::default();
        }
        let before = is_surge(w);
        w.requests += 1;
        w.subnets.add(subnet_of(ip));
        (!before && is_surge(w)).then(|| Surge {
            endpoint,
            requests: w.requests,
            subnets: w.subnets.estimate(),
        })
    }

    /// Whether any endpoint is in a surge now.
    pub fn any_surge(&self, now_ms: u64) -> bool {
        self.endpoints
            .values()
            .any(|w| now_ms < w.start_ms + 2 * SURGE_WINDOW_MS && is_surge(w))
    }
}

fn is_surge(w: &EndpointWindow) -> bool {
    w.requests >= SURGE_MIN_REQUESTS
        && w.requests as f64 >= SURGE_MULTIPLE * w.baseline
        && w.subnets.estimate() >= SURGE_MIN_SUBNETS
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn distinct_subnet_estimate_is_close() {
        let mut d = DistinctSubnets::default();
        for i in 0..200u64 {
            d.add(i);
            d.add(i); // repeats do not count
        }
        let e = d.estimate();
        assert!((180.0..220.0).contains(&e), "{e}");
    }

    #[test]
    fn many_subnets_surging_on_one_endpoint_is_a_distributed_flood() {
        let mut s = SurgeDetector::default();
        // Calm: 100 requests per 10 s from a handful of clients, for five minutes.
        for window in 0..30u64 {
            for i in 0..100u64 {
                let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, (i % 5) as u8));
                assert_eq!(s.record(1, ip, window * SURGE_WINDOW_MS + i * 90), None);
            }
        }
        // One address flooding alone is not distributed.
        let start = 30 * SURGE_WINDOW_MS;
        for i in 0..2_000u64 {
            assert_eq!(
                s.record(1, "198.51.100.1".parse().expect("ip"), start + i),
                None
            );
        }
        // Two thousand requests from a thousand /24s in one window: a distributed flood.
        let start = 32 * SURGE_WINDOW_MS;
        let mut found = None;
        for i in 0..2_000u32 {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + (i % 1000) * 256));
            if let Some(surge) = s.record(1, ip, start + u64::from(i)) {
                found = Some(surge);
            }
        }
        let surge = found.expect("a surge");
        assert!(surge.subnets >= SURGE_MIN_SUBNETS && surge.requests >= SURGE_MIN_REQUESTS);
        assert!(s.any_surge(start + 2_000));
        // Another endpoint is unaffected.
        assert_eq!(
            s.record(2, "192.0.2.1".parse().expect("ip"), start + 2_001),
            None
        );
    }

    #[test]
    fn subnets_group_ipv4_by_24_and_ipv6_by_64() {
        let a = subnet_of("203.0.113.1".parse().expect("ip"));
        assert_eq!(a, subnet_of("203.0.113.250".parse().expect("ip")));
        assert_ne!(a, subnet_of("203.0.114.1".parse().expect("ip")));
        let v6 = subnet_of("2001:db8:1:2::1".parse().expect("ip"));
        assert_eq!(v6, subnet_of("2001:db8:1:2:ffff::9".parse().expect("ip")));
        assert_ne!(v6, subnet_of("2001:db8:1:3::1".parse().expect("ip")));
    }
}
