//! The sessions each client uses, for the per-client cap: sharded maps of small lists,
//! bounded in clients (the least recently active give way) and in sessions per client (the
//! cap itself). A client is its user when the request identifies one, else its address.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;

use crate::request::UserId;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Client addresses tracked at most.
pub const MAX_CLIENTS: usize = 100_000;
const SHARDS: usize = 32;

/// (session id hash, last use in Unix ms)
type Open = Vec<(u64, u64)>;

/// Whom sessions are counted for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SessionOwner {
    /// An identified user (on any address).
    User(UserId),
    /// An address, for requests without a user.
    Ip(IpAddr),
}

/// Sessions in use per client.
#[derive(Debug)]
pub struct SessionTable {
    shards: Box<[Mutex<HashMap<SessionOwner, Open>>]>,
    // Atomics: a configuration reload changes them under running requests.
    limit: AtomicUsize,
    idle_ms: AtomicU64,
    shard_cap: usize,
    hasher: RandomState,
}

impl SessionTable {
    /// At most `limit` sessions per client, each forgotten after `idle_ms` unused, for at most
    /// `max_clients` clients.
    pub fn new(limit: usize, idle_ms: u64, max_clients: usize) -> SessionTable {
        SessionTable {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            limit: AtomicUsize::new(limit.max(1)),
            idle_ms: AtomicU64::new(idle_ms.max(1000)),
            shard_cap: max_clients.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
        }
    }

    /// The cap.
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// A new cap and idle time (a configuration reload); the sessions seen stay.
    pub fn set_limits(&self, limit: usize, idle_ms: u64) {
        self.limit.store(limit.max(1), Ordering::Relaxed);
        self.idle_ms.store(idle_ms.max(1000), Ordering::Relaxed);
    }

    fn with<R>(&self, client: &SessionOwner, now_ms: u64, f: impl FnOnce(&mut Open) -> R) -> R {
        let index = (self.hasher.hash_one(client) as usize) % SHARDS;
        // A poisoned shard only means a panic elsewhere mid-update of plain values.
        let mut shard = self.shards[index].lock().unwrap_or_else(|e| e.into_inner());
        if shard.len() >= self.shard_cap && !shard.contains_key(client) {
            // Forget clients whose sessions all idled out; failing that, the least recent.
            let idle = self.idle_ms.load(Ordering::Relaxed);
            shard.retain(|_, open| {
                open.iter()
                    .any(|(_, seen)| now_ms.saturating_sub(*seen) < idle)
            });
            if shard.len() >= self.shard_cap {
                if let Some(oldest) = shard
                    .iter()
                    .min_by_key(|(_, open)| open.iter().map(|(_, s)| *s).max().unwrap_or(0))
                    .map(|(owner, _)| owner.clone())
                {
                    shard.remove(&oldest);
                }
            }
        }
        let open = shard.entry(client.clone()).or_default();
        let idle = self.idle_ms.load(Ordering::Relaxed);
        open.retain(|(_, seen)| now_ms.saturating_sub(*seen) < idle);
        let result = f(open);
        if open.is_empty() {
            shard.remove(client);
        }
        result
    }

    fn id(&self, session: &str) -> u64 {
        self.hasher.hash_one(session)
    }

    /// Notes a request in `session`; false when it is a session this client has not used and
    /// it already has `limit` open.
    pub fn touch(&self, client: &SessionOwner, session: &str, now_ms: u64) -> bool {
        let id = self.id(session);
        let limit = self.limit();
        self.with(client, now_ms, |open| {
            if let Some(entry) = open.iter_mut().find(|(s, _)| *s == id) {
                entry.1 = now_ms;
                return true;
            }
            if open.len() >= limit {
                return false;
            }
            open.push((id, now_ms));
            true
        })
    }

    /// Whether the client has `limit` sessions open.
    pub fn full(&self, client: &SessionOwner, now_ms: u64) -> bool {
        let limit = self.limit();
        self.with(client, now_ms, |open| open.len() >= limit)
    }

    /// Forgets a session (its `DELETE`).
    pub fn end(&self, client: &SessionOwner, session: &str) {
        let id = self.id(session);
        self.with(client, 0, |open| open.retain(|(s, _)| *s != id));
    }
}
