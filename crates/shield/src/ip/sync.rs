//! The allow and deny lists shared through Redis.
//!
//! Redis holds the lists (`{prefix}lists:whitelist`, `{prefix}lists:blacklist`: hashes from
//! network to entry) and is the source of truth whenever an instance (re)connects. Changes
//! travel on the `{prefix}events` channel: an instance that changes a list writes the hash and
//! publishes the change; every other instance applies it to its local copy within
//! milliseconds. Lookups stay local and lock-light; Redis is never on the request path for
//! lists.
//!
//! Changes made while Redis is down are kept (at most 10,000) and written when it is back;
//! then the local lists are reloaded from Redis, which catches what was missed meanwhile.
//! List entries are operator policy (networks as written), stored as such.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::{parse_network, IpLists, ListEntry, ListKind};
use crate::events::SecurityEvent;
use crate::state::redis::RedisState;

const MAX_PENDING: usize = 10_000;

/// One list change as it travels between instances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ListChange {
    origin: String,
    op: Op,
    list: Which,
    network: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    entry: Option<StoredEntry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Op {
    Add,
    Remove,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Which {
    Whitelist,
    Blacklist,
}

impl From<ListKind> for Which {
    fn from(list: ListKind) -> Self {
        match list {
            ListKind::Whitelist => Which::Whitelist,
            ListKind::Blacklist => Which::Blacklist,
        }
    }
}

impl From<Which> for ListKind {
    fn from(which: Which) -> Self {
        match which {
            Which::Whitelist => ListKind::Whitelist,
            Which::Blacklist => ListKind::Blacklist,
        }
    }
}

/// A list entry as stored in Redis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredEntry {
    reason: String,
    added_at_ms: u64,
    #[serde(default)]
    expires_at_ms: Option<u64>,
}

impl From<&ListEntry> for StoredEntry {
    fn from(e: &ListEntry) -> Self {
        StoredEntry {
            reason: e.reason.clone(),
            added_at_ms: e.added_at_ms,
            expires_at_ms: e.expires_at_ms,
        }
    }
}

impl From<StoredEntry> for ListEntry {
    fn from(e: StoredEntry) -> Self {
        ListEntry {
            reason: e.reason,
            added_at_ms: e.added_at_ms,
            expires_at_ms: e.expires_at_ms,
        }
    }
}

/// Keeps the local lists and Redis in step.
pub struct ListSync {
    redis: Arc<RedisState>,
    lists: Arc<IpLists>,
    origin: String,
    pending: Mutex<VecDeque<ListChange>>,
    seeded: AtomicBool,
    synced: AtomicBool,
}

impl std::fmt::Debug for ListSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListSync")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl ListSync {
    /// A sync for `lists`; `origin` names this instance in published changes.
    pub fn new(redis: Arc<RedisState>, lists: Arc<IpLists>, origin: String) -> Arc<Self> {
        Arc::new(ListSync {
            redis,
            lists,
            origin,
            pending: Mutex::new(VecDeque::new()),
            seeded: AtomicBool::new(false),
            synced: AtomicBool::new(false),
        })
    }

    /// Whether the lists have been loaded from Redis at least once.
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    fn hash_key(&self, list: Which) -> String {
        match list {
            Which::Whitelist => self.redis.key(format_args!("lists:whitelist")),
            Which::Blacklist => self.redis.key(format_args!("lists:blacklist")),
        }
    }

    fn channel(&self) -> String {
        self.redis.key(format_args!("events"))
    }

    /// Starts the two background tasks: local changes out, other instances' changes in.
    pub fn spawn(self: &Arc<Self>, events: broadcast::Receiver<Arc<SecurityEvent>>) {
        let outgoing = self.clone();
        self.redis
            .runtime()
            .spawn(async move { outgoing.send_local_changes(events).await });
        let incoming = self.clone();
        self.redis
            .runtime()
            .spawn(async move { incoming.follow_other_instances().await });
    }

    async fn send_local_changes(
        self: Arc<Self>,
        mut events: broadcast::Receiver<Arc<SecurityEvent>>,
    ) {
        loop {
            let event = match events.recv().await {
                Ok(event) => event,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    // Missed changes reach Redis at the next reload at the latest.
                    tracing::warn!(target: "security.ip_manager", "list sync fell behind by {missed} events");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let change = match &*event {
                SecurityEvent::ListAdded { list, network, .. } => {
                    let Some(found) = self.lists.lookup_exact(*list, network) else {
                        continue;
                    };
                    ListChange {
                        origin: self.origin.clone(),
                        op: Op::Add,
                        list: (*list).into(),
                        network: network.to_string(),
                        entry: Some(StoredEntry::from(&found)),
                    }
                }
                SecurityEvent::ListRemoved { list, network } => ListChange {
                    origin: self.origin.clone(),
                    op: Op::Remove,
                    list: (*list).into(),
                    network: network.to_string(),
                    entry: None,
                },
                _ => continue,
            };
            if self.write(&change).await.is_err() {
                let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                if pending.len() >= MAX_PENDING {
                    pending.pop_front();
                }
                pending.push_back(change);
            }
        }
    }

    /// Writes one change to the hash and announces it.
    async fn write(&self, change: &ListChange) -> Result<(), ()> {
        let mut connection = self.redis.connection().map_err(|_| ())?;
        let key = self.hash_key(change.list);
        let message = serde_json::to_string(change).map_err(|_| ())?;
        let mut pipe = redis::pipe();
        // One transaction on one server; a cluster has none across a key and a channel, and
        // an instance that misses the message loads the hash when it next (re)connects.
        if !self.redis.is_cluster() {
            pipe.atomic();
        }
        match (&change.op, &change.entry) {
            (Op::Add, Some(entry)) => {
                let value = serde_json::to_string(entry).map_err(|_| ())?;
                pipe.hset(&key, &change.network, value).ignore();
            }
            _ => {
                pipe.hdel(&key, &change.network).ignore();
            }
        }
        pipe.publish(self.channel(), message).ignore();
        self.redis
            .call(pipe.query_async::<()>(&mut connection))
            .await
            .map_err(|_| ())
    }

    async fn follow_other_instances(self: Arc<Self>) {
        let mut recoveries = self.redis.on_recovery();
        loop {
            while !self.redis.is_up() {
                // Woken by a recovery, or checks again shortly.
                let _ =
                    tokio::time::timeout(Duration::from_millis(200), recoveries.changed()).await;
            }
            let subscribed = async {
                let mut pubsub = self.redis.pubsub().await?;
                pubsub.subscribe(self.channel()).await.ok()?;
                Some(pubsub)
            };
            let Ok(Some(pubsub)) = tokio::time::timeout(Duration::from_secs(1), subscribed).await
            else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            // Subscribed first, then caught up: no change can fall between the two.
            if self.catch_up().await.is_err() {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            let mut messages = pubsub.into_on_message();
            while let Some(message) = messages.next().await {
                let Ok(payload) = message.get_payload::<String>() else {
                    continue;
                };
                match serde_json::from_str::<ListChange>(&payload) {
                    Ok(change) if change.origin != self.origin => self.apply(change),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(target: "security.ip_manager", "ignoring a malformed list change from Redis: {e}")
                    }
                }
            }
            // The subscription ended: Redis went away. The breaker notices on the next call;
            // make sure it does even if no request comes.
            self.redis.trip("the list subscription closed");
        }
    }

    /// On every (re)connection: the first time, offer this instance's start-up entries;
    /// then write what changed while Redis was down; then load the lists from Redis.
    async fn catch_up(&self) -> Result<(), ()> {
        let mut connection = self.redis.connection().map_err(|_| ())?;
        if !self.seeded.load(Ordering::Acquire) {
            let mut pipe = redis::pipe();
            let mut commands = 0;
            for list in [ListKind::Whitelist, ListKind::Blacklist] {
                for found in self.lists.entries(list, usize::MAX) {
                    let value =
                        serde_json::to_string(&StoredEntry::from(&found.entry)).map_err(|_| ())?;
                    pipe.hset_nx(self.hash_key(list.into()), found.network.to_string(), value)
                        .ignore();
                    commands += 1;
                }
            }
            if commands > 0 {
                self.redis
                    .call(pipe.query_async::<()>(&mut connection))
                    .await
                    .map_err(|_| ())?;
            }
            self.seeded.store(true, Ordering::Release);
        }
        let pending: Vec<ListChange> = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for change in &pending {
            self.write(change).await?;
        }
        for list in [Which::Whitelist, Which::Blacklist] {
            let stored: Vec<(String, String)> = self
                .redis
                .call(
                    redis::cmd("HGETALL")
                        .arg(self.hash_key(list))
                        .query_async(&mut connection),
                )
                .await
                .map_err(|_| ())?;
            let entries: Vec<(IpNet, ListEntry)> = stored
                .into_iter()
                .filter_map(|(network, value)| {
                    let network = parse_network(&network).ok()?;
                    let entry: StoredEntry = serde_json::from_str(&value).ok()?;
                    Some((network, entry.into()))
                })
                .collect();
            self.lists.replace_all(list.into(), entries);
        }
        self.synced.store(true, Ordering::Release);
        Ok(())
    }

    fn apply(&self, change: ListChange) {
        let Ok(network) = parse_network(&change.network) else {
            return;
        };
        let list: ListKind = change.list.into();
        match (change.op, change.entry) {
            (Op::Add, Some(entry)) => {
                let reason = entry.reason.clone();
                if self.lists.insert_entry(list, network, entry.into()).is_ok() {
                    tracing::info!(
                        target: "security.ip_manager",
                        "Added {} to {} (from instance {}): {reason}",
                        crate::events::show_network(&network), list.as_str(), change.origin
                    );
                }
            }
            _ => {
                if self.lists.remove(list, &network) {
                    tracing::info!(
                        target: "security.ip_manager",
                        "Removed {} from {} (from instance {})",
                        crate::events::show_network(&network), list.as_str(), change.origin
                    );
                }
            }
        }
    }
}
