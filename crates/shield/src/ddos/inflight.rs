//! Counting what one address has open at once: requests in flight (the layer) or TCP
//! connections (the gateway's accept loop). A permit is taken before the work and given back
//! when it is dropped: for a request, when its response body ends, streamed or not.
//!
//! Only addresses with something open are held, so the table is bounded by the number of
//! open connections, which the limit itself bounds per address.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

const SHARDS: usize = 16;

/// Per-address counts of open things, each at most `limit`.
pub struct OpenCounts {
    shards: Box<[Mutex<HashMap<IpAddr, u32, RandomState>>]>,
    hasher: RandomState,
    limit: u32,
}

impl std::fmt::Debug for OpenCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenCounts")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

/// One open thing; dropping it closes it.
#[derive(Debug)]
pub struct Permit {
    counts: Arc<OpenCounts>,
    ip: IpAddr,
}

impl OpenCounts {
    /// Counts allowing `limit` open things per address.
    pub fn new(limit: u32) -> Arc<Self> {
        Arc::new(OpenCounts {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::with_hasher(RandomState::new())))
                .collect(),
            hasher: RandomState::new(),
            limit: limit.max(1),
        })
    }

    fn shard(&self, ip: &IpAddr) -> MutexGuard<'_, HashMap<IpAddr, u32, RandomState>> {
        let index = (self.hasher.hash_one(ip) >> 60) as usize % SHARDS;
        // A poisoned lock only means a panic elsewhere while it was held; each update is one
        // counter, so the map is whole.
        self.shards[index].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A permit for one more, or `None` when `ip` already has `limit` open.
    pub fn try_open(self: &Arc<Self>, ip: IpAddr) -> Option<Permit> {
        let ip = ip.to_canonical();
        let mut shard = self.shard(&ip);
        let count = shard.entry(ip).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(Permit {
            counts: self.clone(),
            ip,
        })
    }

    /// How many `ip` has open.
    pub fn open(&self, ip: IpAddr) -> u32 {
        self.shard(&ip.to_canonical())
            .get(&ip.to_canonical())
            .copied()
            .unwrap_or(0)
    }

    /// The per-address limit.
    pub fn limit(&self) -> u32 {
        self.limit
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut shard = self.counts.shard(&self.ip);
        if let Some(count) = shard.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                shard.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_per_address_and_release_on_drop() {
        let counts = OpenCounts::new(2);
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        let first = counts.try_open(a).expect("first");
        let _second = counts.try_open(a).expect("second");
        assert!(counts.try_open(a).is_none());
        assert!(counts.try_open(b).is_some());
        drop(first);
        assert_eq!(counts.open(a), 1);
        assert!(counts.try_open(a).is_some());
    }

    #[test]
    fn addresses_with_nothing_open_are_not_kept() {
        let counts = OpenCounts::new(1);
        for i in 0..1000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(i));
            drop(counts.try_open(ip));
        }
        let held: usize = counts
            .shards
            .iter()
            .map(|s| s.lock().expect("lock").len())
            .sum();
        assert_eq!(held, 0);
    }
}
