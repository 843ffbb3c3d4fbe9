//! Two small fixed tables the admission keeps without locks: when each authenticated user was
//! first seen (so a user seen before an overload is admitted before users invented during
//! it), and how long each tool takes (so the calls that cost the upstream most wait last).
//!
//! Both are arrays of atomics sized at start: a flood of new users or tool names costs no
//! memory, only places in the table, and the eviction rules below keep what matters.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// First-seen times of keys (keyed hashes of users), two places to choose from per key.
///
/// When both places of a new key are taken, the newcomer replaces an entry idle for ten
/// minutes or one without a history (seen over less than a minute), the least recently seen
/// first; a user seen over a minute or more keeps its place until idle. A flood of invented
/// credentials then only ever replaces its own kind.
#[derive(Debug)]
pub struct FirstSeen {
    /// Fingerprint (high 32 bits, never 0) and first-seen second (low 32 bits); 0: empty.
    slots: Box<[AtomicU64]>,
    /// Last-seen second of each slot.
    last_seen: Box<[AtomicU32]>,
    mask: usize,
}

/// An entry idle this long gives way.
const IDLE_SECS: u32 = 600;
/// An entry seen over at least this span has a history and keeps its place until idle.
const HISTORY_SECS: u32 = 60;

impl FirstSeen {
    /// A table of about `capacity` keys (rounded up to a power of two, at least 64).
    pub fn new(capacity: usize) -> Self {
        let size = capacity.clamp(64, 1 << 26).next_power_of_two();
        FirstSeen {
            slots: (0..size).map(|_| AtomicU64::new(0)).collect(),
            last_seen: (0..size).map(|_| AtomicU32::new(0)).collect(),
            mask: size - 1,
        }
    }

    fn places(&self, hash: u64) -> (usize, usize, u64) {
        let a = hash as usize & self.mask;
        let b = (hash >> 24) as usize & self.mask;
        let fingerprint = (hash >> 32) | 1;
        (a, b, fingerprint)
    }

    /// Notes `hash` seen at `now_secs`; returns when it was first seen.
    pub fn note(&self, hash: u64, now_secs: u32) -> u32 {
        let (a, b, fingerprint) = self.places(hash);
        for i in [a, b] {
            let v = self.slots[i].load(Ordering::Relaxed);
            if v >> 32 == fingerprint {
                self.last_seen[i].store(now_secs, Ordering::Relaxed);
                return v as u32;
            }
        }
        // A place is free, or its entry is idle, or it has no history yet (seen over less
        // than a minute): a key seen once, as every key of a flood is, holds no place against
        // a newcomer; a user with a history does until idle.
        let evictable = |i: usize| {
            let v = self.slots[i].load(Ordering::Relaxed);
            let last = self.last_seen[i].load(Ordering::Relaxed);
            v == 0
                || now_secs.saturating_sub(last) > IDLE_SECS
                || last.saturating_sub(v as u32) < HISTORY_SECS
        };
        let victim = match (evictable(a), evictable(b)) {
            (true, true) => {
                if self.last_seen[a].load(Ordering::Relaxed)
                    <= self.last_seen[b].load(Ordering::Relaxed)
                {
                    a
                } else {
                    b
                }
            }
            (true, false) => a,
            (false, true) => b,
            // Both places hold users with a history: this key is not remembered (it is new).
            (false, false) => return now_secs,
        };
        self.slots[victim].store(fingerprint << 32 | u64::from(now_secs), Ordering::Relaxed);
        self.last_seen[victim].store(now_secs, Ordering::Relaxed);
        now_secs
    }

    /// When `hash` was first seen, if it is in the table.
    pub fn get(&self, hash: u64) -> Option<u32> {
        let (a, b, fingerprint) = self.places(hash);
        [a, b].into_iter().find_map(|i| {
            let v = self.slots[i].load(Ordering::Relaxed);
            (v >> 32 == fingerprint).then_some(v as u32)
        })
    }
}

/// Tools' latency, a moving average per tool in 256 direct-mapped places.
///
/// A place changes hands only when its tool has not answered for a minute, so inventing tool
/// names cannot push out the tools in use.
#[derive(Debug)]
pub struct ToolCosts {
    tags: Box<[AtomicU64]>,
    average_ns: Box<[AtomicU64]>,
    updated_secs: Box<[AtomicU32]>,
}

const TOOL_PLACES: usize = 256;
const TOOL_STALE_SECS: u32 = 60;

impl Default for ToolCosts {
    fn default() -> Self {
        ToolCosts {
            tags: (0..TOOL_PLACES).map(|_| AtomicU64::new(0)).collect(),
            average_ns: (0..TOOL_PLACES).map(|_| AtomicU64::new(0)).collect(),
            updated_secs: (0..TOOL_PLACES).map(|_| AtomicU32::new(0)).collect(),
        }
    }
}

impl ToolCosts {
    /// Notes that a call of the tool hashed `hash` took `latency_ns`.
    pub fn record(&self, hash: u64, latency_ns: u64, now_secs: u32) {
        let i = hash as usize % TOOL_PLACES;
        let tag = hash | 1;
        let current = self.tags[i].load(Ordering::Relaxed);
        if current == tag {
            // A racy average: two answers at once may lose one sample, which is harmless.
            let old = self.average_ns[i].load(Ordering::Relaxed);
            let new = old - old / 8 + latency_ns / 8;
            self.average_ns[i].store(new, Ordering::Relaxed);
            self.updated_secs[i].store(now_secs, Ordering::Relaxed);
        } else if current == 0
            || now_secs.saturating_sub(self.updated_secs[i].load(Ordering::Relaxed))
                > TOOL_STALE_SECS
        {
            self.tags[i].store(tag, Ordering::Relaxed);
            self.average_ns[i].store(latency_ns, Ordering::Relaxed);
            self.updated_secs[i].store(now_secs, Ordering::Relaxed);
        }
    }

    /// The tool's average latency (ns), if it is tracked.
    pub fn average_ns(&self, hash: u64) -> Option<u64> {
        let i = hash as usize % TOOL_PLACES;
        (self.tags[i].load(Ordering::Relaxed) == hash | 1)
            .then(|| self.average_ns[i].load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_seen_is_kept_and_a_flood_of_new_keys_does_not_push_out_old_ones() {
        let table = FirstSeen::new(64);
        // 32 users with a history, active every second.
        let old: Vec<u64> = (0..32u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .collect();
        for &h in &old {
            assert_eq!(table.note(h, 1_000), 1_000);
            assert_eq!(table.note(h, 1_999), 1_000);
        }
        // A flood of 100,000 invented keys over 100 seconds, the old users still active.
        let mut x = 0x1234_5678_u64;
        for t in 0..100_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let now = 2_000 + t / 1_000;
            table.note(x, now);
            if t % 1_000 == 0 {
                for &h in &old {
                    table.note(h, now);
                }
            }
        }
        let kept = old.iter().filter(|&&h| table.get(h) == Some(1_000)).count();
        // Two places each in 64: a few old users may share both places with each other.
        assert!(kept >= 28, "{kept} of 32 kept");
    }

    #[test]
    fn idle_entries_give_way() {
        let table = FirstSeen::new(64);
        table.note(7, 100);
        assert_eq!(table.get(7), Some(100));
        assert_eq!(table.note(7, 200), 100);
        assert_eq!(table.get(8), None);
    }

    #[test]
    fn tool_costs_follow_the_tool_and_keep_their_place() {
        let costs = ToolCosts::default();
        costs.record(5, 8_000_000, 10);
        for _ in 0..50 {
            costs.record(5, 16_000_000, 11);
        }
        let avg = costs.average_ns(5).expect("tracked");
        assert!((15_000_000..=16_000_000).contains(&avg), "{avg}");
        // Another tool in the same place waits until the first has been quiet a minute.
        let other = 5 + TOOL_PLACES as u64;
        costs.record(other, 1_000, 20);
        assert_eq!(costs.average_ns(other), None);
        costs.record(other, 1_000, 11 + TOOL_STALE_SECS + 1);
        assert_eq!(costs.average_ns(other), Some(1_000));
    }
}
