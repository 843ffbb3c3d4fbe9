//! Per-address traffic in a bounded table: 64 shards of maps behind mutexes (a judgement reads
//! and writes several fields at once), at most `max_ips` addresses. A full shard forgets idle
//! addresses first (no block running, no traffic for two minutes: nothing lost), then the
//! least recently seen unblocked ones until an eighth is free. A blocked address is never
//! forgotten while its block runs.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

use super::tracker::{IpTraffic, Judgement, Thresholds};

const SHARDS: usize = 64;

/// Emergency mode's tighter limits, and whom they apply to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tightening {
    /// When the emergency began: addresses first seen since are suspect.
    pub since_ms: u64,
    /// The tighter limits.
    pub limits: Thresholds,
    /// The address has a low reputation.
    pub low_reputation: bool,
}

type Shard = HashMap<IpAddr, IpTraffic, RandomState>;

/// Recent traffic of up to `max_ips` addresses.
pub struct TrafficTable {
    shards: Box<[Mutex<Shard>]>,
    shard_cap: usize,
    hasher: RandomState,
}

impl std::fmt::Debug for TrafficTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrafficTable")
            .field("tracked", &self.len())
            .finish()
    }
}

impl TrafficTable {
    /// A table for at most about `max_ips` addresses (rounded up to a multiple of 64).
    pub fn new(max_ips: usize) -> Self {
        TrafficTable {
            // Randomly keyed SipHash: addresses are chosen by clients.
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::with_hasher(RandomState::new())))
                .collect(),
            shard_cap: max_ips.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, ip: &IpAddr) -> MutexGuard<'_, Shard> {
        let index = (self.hasher.hash_one(ip) >> 58) as usize % SHARDS;
        // A poisoned lock only means a panic elsewhere while it was held; every update is
        // to one plain value, so the map is still whole.
        self.shards[index].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a request from `ip` at `now_ms` and decides it.
    pub fn judge(&self, ip: IpAddr, now_ms: u64, limits: &Thresholds) -> Judgement {
        let mut shard = self.shard(&ip);
        if shard.len() >= self.shard_cap && !shard.contains_key(&ip) {
            evict(&mut shard, now_ms, self.shard_cap);
        }
        shard.entry(ip).or_default().judge(now_ms, limits)
    }

    /// Counts a request from `ip` to `endpoint` weighing `weight`, decides it (with `tight`
    /// limits instead for a suspect address: first seen at or after `tight.0`, with a bad
    /// record here, or of low reputation), and notes patterns.
    /// Returns the judgement and the patterns newly shown.
    pub fn judge_and_note(
        &self,
        ip: IpAddr,
        now_ms: u64,
        limits: &Thresholds,
        tight: Option<Tightening>,
        weight: u32,
        endpoint: u64,
    ) -> (Judgement, u8) {
        let mut shard = self.shard(&ip);
        if shard.len() >= self.shard_cap && !shard.contains_key(&ip) {
            evict(&mut shard, now_ms, self.shard_cap);
        }
        let traffic = shard.entry(ip).or_default();
        let limits = match tight {
            Some(t) if t.low_reputation || traffic.is_suspect(t.since_ms) => t.limits,
            _ => *limits,
        };
        let judgement = traffic.judge_weighted(now_ms, &limits, weight);
        let patterns = traffic.note_request(now_ms, endpoint);
        (judgement, patterns)
    }

    /// Notes how a request from `ip` ended; returns the patterns newly shown.
    pub fn note_response(&self, ip: IpAddr, now_ms: u64, status: u16) -> u8 {
        self.shard(&ip)
            .get_mut(&ip)
            .map_or(0, |t| t.note_response(now_ms, status))
    }

    /// What is known of `ip`.
    pub fn get(&self, ip: IpAddr) -> Option<IpTraffic> {
        self.shard(&ip).get(&ip).copied()
    }

    /// Addresses tracked.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    /// Whether no address is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn evict(shard: &mut Shard, now_ms: u64, cap: usize) {
    shard.retain(|_, t| !t.is_idle(now_ms));
    let target = cap - cap / 8;
    if shard.len() <= target {
        return;
    }
    let mut seen: Vec<u64> = shard
        .values()
        .filter(|t| !t.is_blocked(now_ms))
        .map(|t| t.last_seen_ms)
        .collect();
    let excess = (shard.len() - target).min(seen.len());
    if excess == 0 {
        // Every address here is blocked: keep them all; the shard runs over its cap until
        // blocks end rather than letting an attacker out early.
        return;
    }
    let (_, threshold, _) = seen.select_nth_unstable(excess - 1);
    let threshold = *threshold;
    let mut removed = 0;
    shard.retain(|_, t| {
        if removed < excess && !t.is_blocked(now_ms) && t.last_seen_ms <= threshold {
            removed += 1;
            false
        } else {
            true
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const LIMITS: Thresholds = Thresholds {
        per_second: 5.0,
        per_minute: 1000.0,
        block_ms: 60_000,
        max_block_ms: 3_600_000,
    };

    #[test]
    fn bounded_under_a_flood_of_addresses_and_blocked_ones_are_kept() {
        let table = TrafficTable::new(640);
        let attacker: IpAddr = "203.0.113.9".parse().expect("ip");
        for _ in 0..6 {
            table.judge(attacker, 1_000, &LIMITS);
        }
        for i in 0..100_000u32 {
            table.judge(
                IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)),
                // All within the attacker's 60 s block.
                1_000 + u64::from(i) / 4,
                &LIMITS,
            );
            assert!(table.len() <= 640 + 1, "over the bound at {i}");
        }
        let kept = table
            .get(attacker)
            .expect("the blocked attacker is still tracked");
        assert!(kept.is_blocked(50_000));
    }
}
