//! Where bucket state lives. [`RateLimitStore::acquire`] takes every bucket a request must pass
//! and decides them together: all take their tokens, or none does. In memory that is one
//! compare-and-swap per bucket (with a refund when a later bucket refuses); in Redis it will be
//! one Lua script, one round trip.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::future::Future;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use super::gcra::{self, Conformance, Quota};

/// Whom a bucket counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    /// Everyone together.
    Global,
    /// One client address.
    Ip(IpAddr),
    /// One user (a keyed hash of the user id).
    User(u64),
}

/// A bucket's identity: which limit (`scope`) and whom it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BucketKey {
    /// 0 global, 1 per IP, 2 per user, 3 + n the n-th endpoint rule.
    pub scope: u16,
    /// Whom.
    pub subject: Subject,
}

/// One bucket a request must pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketRequest {
    /// Which bucket.
    pub key: BucketKey,
    /// Its size and rate.
    pub quota: Quota,
    /// Tokens this request takes (a JSON-RPC batch takes one per element).
    pub cost: u64,
}

/// The store's answer for a whole request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquired {
    /// Every bucket had room; `tightest` is the index of the one with the fewest tokens left.
    Allowed {
        /// Index into the request's buckets.
        tightest: usize,
        /// Tokens left in it.
        remaining: u64,
    },
    /// The bucket at `index` had no room; no bucket was charged.
    Denied {
        /// Index into the request's buckets.
        index: usize,
        /// Nanoseconds until the request would fit.
        retry_after_ns: u64,
        /// Nanoseconds until that bucket is full.
        reset_after_ns: u64,
    },
}

/// A store that could not answer (a network store down); the fail mode decides.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate limit store: {0}")]
pub struct StoreError(pub String);

/// A decision being made across the network.
pub type StoreFuture<'a> = Pin<Box<dyn Future<Output = Result<Acquired, StoreError>> + Send + 'a>>;

/// Bucket state for the rate limiter. A decision covers every bucket of a request at once.
pub trait RateLimitStore: Send + Sync + 'static {
    /// Decides `buckets` together at `now_ns` (a monotonic clock; network stores may use their
    /// own) when that needs no waiting, as in memory or in a network store serving locally
    /// while its backend is down. `None`: call [`RateLimitStore::acquire_later`].
    fn acquire_now(
        &self,
        buckets: &[BucketRequest],
        now_ns: u64,
    ) -> Option<Result<Acquired, StoreError>>;
    /// Decides across the network.
    fn acquire_later(&self, buckets: Vec<BucketRequest>, now_ns: u64) -> StoreFuture<'_>;
    /// How many buckets are held (full ones may be forgotten at any time).
    fn tracked_keys(&self) -> usize;
    /// `memory` or `redis`.
    fn backend(&self) -> &'static str;
}

const SHARDS: usize = 64;

/// Buckets in memory: 64 shards of hash maps from key to TAT, each behind a read-write lock
/// that is held for reading while a bucket's atomic is updated, and for writing only to add a
/// key or evict.
///
/// Bounded: at most `max_keys` buckets. A full shard first drops its full buckets (TAT in the
/// past: forgetting them loses nothing, a fresh bucket is the same) and, if that is not
/// enough, the buckets closest to full, until an eighth of the shard is free. An active
/// offender's bucket is the last to go.
pub struct MemoryStore {
    shards: Box<[RwLock<HashMap<BucketKey, AtomicU64, RandomState>>]>,
    shard_cap: usize,
    hasher: RandomState,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("tracked_keys", &self.tracked_keys())
            .field("max_keys", &(self.shard_cap * SHARDS))
            .finish()
    }
}

impl MemoryStore {
    /// A store holding at most about `max_keys` buckets (rounded up to a multiple of 64).
    pub fn new(max_keys: usize) -> Self {
        // Keys are client-controlled (IP addresses, user ids): a randomly keyed SipHash keeps
        // an attacker from choosing addresses that collide.
        let shards = (0..SHARDS)
            .map(|_| RwLock::new(HashMap::with_hasher(RandomState::new())))
            .collect();
        MemoryStore {
            shards,
            shard_cap: max_keys.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, key: &BucketKey) -> &RwLock<HashMap<BucketKey, AtomicU64, RandomState>> {
        let hash = self.hasher.hash_one(key);
        &self.shards[(hash >> 58) as usize % SHARDS]
    }

    /// Takes tokens from one bucket: `Ok(remaining)` or `Err((retry_after, reset_after))`.
    fn take(&self, bucket: &BucketRequest, now: u64) -> Result<u64, (u64, u64)> {
        let shard = self.shard(&bucket.key);
        {
            // A poisoned lock only means a panic elsewhere while it was held; every write
            // here is a single map operation, so the map is still whole.
            let map = shard.read().unwrap_or_else(|e| e.into_inner());
            if let Some(tat) = map.get(&bucket.key) {
                return update(tat, bucket, now);
            }
        }
        // First sight of this key: a fresh bucket. Decide before inserting, so a request that
        // cannot fit even a full bucket (cost above capacity) leaves nothing behind.
        let (new_tat, remaining) = match gcra::check(0, now, bucket.quota, bucket.cost) {
            Conformance::Allow { new_tat, remaining } => (new_tat, remaining),
            Conformance::Deny {
                retry_after_ns,
                reset_after_ns,
            } => return Err((retry_after_ns, reset_after_ns)),
        };
        let mut map = shard.write().unwrap_or_else(|e| e.into_inner());
        if let Some(tat) = map.get(&bucket.key) {
            // Another request inserted it meanwhile.
            return update(tat, bucket, now);
        }
        if map.len() >= self.shard_cap {
            evict(&mut map, now, self.shard_cap);
        }
        map.insert(bucket.key, AtomicU64::new(new_tat));
        Ok(remaining)
    }

    fn give_back(&self, bucket: &BucketRequest, now: u64) {
        let map = self
            .shard(&bucket.key)
            .read()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(tat) = map.get(&bucket.key) {
            let _ = tat.fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                Some(gcra::refund(t, now, bucket.quota, bucket.cost))
            });
        }
    }
}

fn update(tat: &AtomicU64, bucket: &BucketRequest, now: u64) -> Result<u64, (u64, u64)> {
    let mut current = tat.load(Ordering::Acquire);
    loop {
        match gcra::check(current, now, bucket.quota, bucket.cost) {
            Conformance::Allow { new_tat, remaining } => {
                match tat.compare_exchange_weak(
                    current,
                    new_tat,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return Ok(remaining),
                    Err(seen) => current = seen,
                }
            }
            Conformance::Deny {
                retry_after_ns,
                reset_after_ns,
            } => return Err((retry_after_ns, reset_after_ns)),
        }
    }
}

/// Makes room in a full shard: full buckets go first (lossless), then those closest to full
/// until an eighth of the shard is free.
fn evict(map: &mut HashMap<BucketKey, AtomicU64, RandomState>, now: u64, cap: usize) {
    map.retain(|_, tat| *tat.get_mut() > now);
    let target = cap - cap / 8;
    if map.len() <= target {
        return;
    }
    let excess = map.len() - target;
    let mut tats: Vec<u64> = map.values_mut().map(|t| *t.get_mut()).collect();
    let (_, threshold, _) = tats.select_nth_unstable(excess - 1);
    let threshold = *threshold;
    let mut removed = 0;
    map.retain(|_, tat| {
        if removed < excess && *tat.get_mut() <= threshold {
            removed += 1;
            false
        } else {
            true
        }
    });
    tracing::debug!(
        target: "security.rate_limiter",
        "rate limit table full: forgot {removed} buckets nearest to full"
    );
}

impl MemoryStore {
    /// Decides `buckets` together: all are charged, or none.
    pub fn acquire(&self, buckets: &[BucketRequest], now_ns: u64) -> Acquired {
        let mut tightest = (0, u64::MAX);
        for (index, bucket) in buckets.iter().enumerate() {
            match self.take(bucket, now_ns) {
                Ok(remaining) => {
                    if remaining < tightest.1 {
                        tightest = (index, remaining);
                    }
                }
                Err((retry_after_ns, reset_after_ns)) => {
                    for earlier in &buckets[..index] {
                        self.give_back(earlier, now_ns);
                    }
                    return Acquired::Denied {
                        index,
                        retry_after_ns,
                        reset_after_ns,
                    };
                }
            }
        }
        Acquired::Allowed {
            tightest: tightest.0,
            remaining: if buckets.is_empty() { 0 } else { tightest.1 },
        }
    }
}

impl RateLimitStore for MemoryStore {
    fn acquire_now(
        &self,
        buckets: &[BucketRequest],
        now_ns: u64,
    ) -> Option<Result<Acquired, StoreError>> {
        Some(Ok(self.acquire(buckets, now_ns)))
    }

    fn acquire_later(&self, buckets: Vec<BucketRequest>, now_ns: u64) -> StoreFuture<'_> {
        let answer = self.acquire(&buckets, now_ns);
        Box::pin(std::future::ready(Ok(answer)))
    }

    fn tracked_keys(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn ready(answer: Acquired) -> Acquired {
        answer
    }

    fn bucket(scope: u16, subject: Subject, capacity: u64, rate: f64) -> BucketRequest {
        BucketRequest {
            key: BucketKey { scope, subject },
            quota: Quota::new(capacity, rate),
            cost: 1,
        }
    }

    #[test]
    fn a_refused_request_takes_nothing_from_the_other_buckets() {
        let store = MemoryStore::new(1000);
        let ip = Subject::Ip("192.0.2.1".parse().expect("ip"));
        let roomy = bucket(0, Subject::Global, 100, 1.0);
        let tight = bucket(1, ip, 2, 0.001);
        let now = 10 * SEC;
        for _ in 0..2 {
            assert!(matches!(
                ready(store.acquire(&[roomy, tight], now)),
                Acquired::Allowed { .. }
            ));
        }
        for _ in 0..5 {
            assert!(matches!(
                ready(store.acquire(&[roomy, tight], now)),
                Acquired::Denied { index: 1, .. }
            ));
        }
        // The global bucket paid only for the two allowed requests.
        let Acquired::Allowed { remaining, .. } = ready(store.acquire(&[roomy], now)) else {
            panic!("allowed")
        };
        assert_eq!(remaining, 97);
    }

    #[test]
    fn tightest_bucket_is_reported() {
        let store = MemoryStore::new(1000);
        let ip = Subject::Ip("192.0.2.1".parse().expect("ip"));
        let answer = ready(store.acquire(
            &[bucket(0, Subject::Global, 100, 1.0), bucket(1, ip, 5, 1.0)],
            SEC,
        ));
        assert_eq!(
            answer,
            Acquired::Allowed {
                tightest: 1,
                remaining: 4
            }
        );
    }

    #[test]
    fn keys_are_independent() {
        let store = MemoryStore::new(1000);
        let a = bucket(1, Subject::Ip("192.0.2.1".parse().expect("ip")), 1, 0.001);
        let b = bucket(1, Subject::Ip("192.0.2.2".parse().expect("ip")), 1, 0.001);
        let c = bucket(2, Subject::User(7), 1, 0.001);
        assert!(matches!(
            ready(store.acquire(&[a], SEC)),
            Acquired::Allowed { .. }
        ));
        assert!(matches!(
            ready(store.acquire(&[a], SEC)),
            Acquired::Denied { .. }
        ));
        assert!(matches!(
            ready(store.acquire(&[b], SEC)),
            Acquired::Allowed { .. }
        ));
        assert!(matches!(
            ready(store.acquire(&[c], SEC)),
            Acquired::Allowed { .. }
        ));
    }

    #[test]
    fn bounded_and_active_offenders_are_kept() {
        let store = MemoryStore::new(640); // 10 per shard
        let offender = bucket(
            1,
            Subject::Ip("203.0.113.66".parse().expect("ip")),
            3,
            0.001,
        );
        let now = 100 * SEC;
        for _ in 0..3 {
            ready(store.acquire(&[offender], now));
        }
        assert!(matches!(
            ready(store.acquire(&[offender], now)),
            Acquired::Denied { .. }
        ));
        // A flood of one-off addresses, each leaving a bucket that refills within a second.
        for i in 0..20_000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            let t = now + u64::from(i) * 1_000_000; // a request every millisecond
            ready(store.acquire(&[bucket(1, Subject::Ip(ip), 10, 10.0)], t));
            assert!(store.tracked_keys() <= 640, "bound exceeded at {i}");
        }
        // Twenty seconds later the offender's bucket (one token per 1000 s) is still empty.
        let later = now + 20 * SEC;
        assert!(matches!(
            ready(store.acquire(&[offender], later)),
            Acquired::Denied { .. }
        ));
    }

    #[test]
    fn concurrent_takes_never_exceed_the_capacity() {
        let store = std::sync::Arc::new(MemoryStore::new(1000));
        let shared = bucket(0, Subject::Global, 1000, 0.000_001);
        let allowed = std::sync::Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let store = store.clone();
                let allowed = allowed.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        if matches!(
                            ready(store.acquire(&[shared], SEC)),
                            Acquired::Allowed { .. }
                        ) {
                            allowed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        assert_eq!(allowed.load(Ordering::Relaxed), 1000);
    }
}
