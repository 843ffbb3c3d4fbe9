//! Reputation: a score per address from 0 (hostile) to 100 (trusted) that falls with bad
//! behaviour and recovers with time, and the automatic temporary block when it falls too low.
//!
//! - Every address starts at [`NEUTRAL`] (50), less its GeoIP risk (up to 30 points for a Tor
//!   exit, a proxy, a VPN or hosting provider, or a high-risk country: [`super::geo`]). That
//!   starting value is the address's *ceiling*.
//! - Events from the other guards lower it ([`penalty`]): a critical threat costs far more
//!   than a rate-limit hit. Penalty feeds lower it once.
//! - Below its ceiling it recovers by [`RECOVERY_PER_MINUTE`] (1 point a minute), never past
//!   it: trust is not earned by mere time.
//! - At or below `SECURITY_IP_AUTO_BLACKLIST_THRESHOLD` (10) the address is put on the
//!   blacklist for `SECURITY_IP_TEMP_BLOCK_DURATION` (3600 s), doubled for each earlier block,
//!   as `Auto-blacklisted due to low reputation`. When the block ends the address is served on
//!   probation at [`PROBATION`] points above the threshold; a relapse blocks it for longer.
//!
//! The sink keeps at most `max_tracked` addresses in a sharded table; when a shard is full,
//! addresses back at their ceiling and not blocked go first (forgetting them loses nothing),
//! then the highest scores.
//!
//! With Redis ([`super::shared_reputation`]) the table is this instance's view of scores kept
//! in Redis: penalties are applied there, atomically, and the answer (score, blocks, block
//! end) replaces the local record; the decision to block is Redis's, so two instances never
//! block one address twice. While Redis is unavailable the local table decides alone.
//!
//! Saved records ([`Reputation::export`]) carry the address, or only its keyed hash when
//! `SECURITY_IP_HASH_KEY` is set: hashed records wait aside after a restart and rejoin the
//! table the first time their address is seen.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use super::geo::RiskPolicy;
use super::shared_reputation::SharedReputation;
use crate::clock::Clock;
use crate::decision::BlockReason;
use crate::events::{EventBus, EventSink, SecurityEvent};
use crate::ip::{IpLists, ListKind};
use crate::request::keyed_ip_hash;

/// Where every address starts.
pub const NEUTRAL: f64 = 50.0;
/// Points regained per minute while below neutral.
pub const RECOVERY_PER_MINUTE: f64 = 1.0;
/// Points above the threshold an address gets back when its temporary block ends.
pub const PROBATION: f64 = 20.0;
/// The reason written on automatic blacklist entries.
pub const AUTO_BLACKLIST_REASON: &str = "Auto-blacklisted due to low reputation";

/// A reputation record as saved across restarts: by address, or by its keyed hash.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SavedRecord {
    /// The address (absent when saved by hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// The keyed hash of the address (`SECURITY_IP_HASH_KEY`), when saved by hash.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "hex_hash")]
    pub ip_hash: Option<u64>,
    /// Its score.
    pub score: f64,
    /// When the score was last settled (Unix ms).
    pub at_ms: u64,
    /// Temporary blocks it has had.
    pub blocks: u32,
    /// When its current block ends (Unix ms), 0 for none.
    pub blocked_until_ms: u64,
}

/// What an event costs an address's reputation.
pub fn penalty(reason: &BlockReason) -> f64 {
    match reason {
        BlockReason::RateLimited { .. } => 2.0,
        BlockReason::Ddos { first: true, .. } => 15.0,
        BlockReason::Ddos { first: false, .. } => 0.5,
        BlockReason::Threat { threats, .. } => 25.0 * threats.len().max(1) as f64,
        BlockReason::PayloadTooLarge { .. } => 5.0,
        BlockReason::BadRequest { .. } => 3.0,
        // A call to a tool the server changed or the detector withheld is not the client's
        // doing: no cost.
        BlockReason::Mcp(crate::mcp::McpViolation::ToolRefused { reason, .. })
            if reason.is_the_servers() =>
        {
            0.0
        }
        // A rebinding page or a broken client: the same small cost as an unreadable body.
        BlockReason::Mcp(_) => 3.0,
        // Already refused by policy: no further signal. An overloaded upstream is nobody's
        // misdeed: the clients it turns away keep their standing.
        BlockReason::IpBlocked { .. }
        | BlockReason::Unavailable { .. }
        | BlockReason::Overloaded { .. } => 0.0,
    }
}

/// What a threat finding that was not refused costs (below the block severity, or in
/// monitor mode).
fn observed_penalty(worst: Option<crate::threat::Severity>) -> f64 {
    use crate::threat::Severity;
    match worst {
        // Not refused: above medium only in monitor mode. A medium finding costs little, as a
        // legitimate client may send such text again and again (the policy is the fix).
        Some(Severity::Critical) => 20.0,
        Some(Severity::High) => 10.0,
        Some(Severity::Medium) => 1.0,
        Some(Severity::Low) | None => 0.0,
    }
}

/// What a DDoS pattern costs.
pub const PATTERN_PENALTY: f64 = 10.0;

/// Hashes as 16 hex digits in the file (JSON numbers lose precision past 2^53).
mod hex_hash {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(hash: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match hash {
            Some(h) => s.serialize_str(&format!("{h:016x}")),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| u64::from_str_radix(&t, 16).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// The state of an address's record as Redis holds it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SharedState {
    /// The score.
    pub score: f64,
    /// Temporary blocks so far.
    pub blocks: u32,
    /// When the current block ends (Unix ms), 0 for none.
    pub blocked_until_ms: u64,
    /// Length of a block this penalty started (ms), 0 if it started none.
    pub new_block_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Record {
    score: f64,
    /// Where the score recovers to: neutral less the address's GeoIP risk.
    ceiling: f64,
    at_ms: u64,
    blocks: u32,
    blocked_until_ms: u64,
    feed_penalised: bool,
    /// The last few things held against the address, newest last.
    recent: [(u8, u64); RECENT],
}

/// Events remembered per address for the threat assessment.
const RECENT: usize = 5;

/// The kinds of event remembered, by index: (type, severity).
const KINDS: [(&str, &str); 9] = [
    ("", ""),
    ("rate_limited", "low"),
    ("ddos_blocked", "medium"),
    ("threat_detected", "high"),
    ("payload_too_large", "low"),
    ("invalid_request", "low"),
    ("suspicious_pattern", "medium"),
    ("threat_feed", "medium"),
    ("threat_observed", "medium"),
];

/// Something recently held against an address.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RecentThreat {
    /// What (`rate_limited`, `ddos_blocked`, `threat_detected`, `suspicious_pattern`, ...).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// When (Unix ms).
    pub time_ms: u64,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: &'static str,
}

fn kind_of(reason: &BlockReason) -> u8 {
    match reason {
        BlockReason::RateLimited { .. } => 1,
        BlockReason::Ddos { .. } => 2,
        BlockReason::Threat { .. } => 3,
        BlockReason::PayloadTooLarge { .. } => 4,
        BlockReason::BadRequest { .. } | BlockReason::Mcp(_) => 5,
        BlockReason::IpBlocked { .. }
        | BlockReason::Unavailable { .. }
        | BlockReason::Overloaded { .. } => 0,
    }
}

impl Record {
    fn remember(&mut self, kind: u8, now_ms: u64) {
        if kind == 0 {
            return;
        }
        // A repeat of the newest kind within a second only refreshes its time (a flood of
        // refusals is one thing to remember, not five).
        if let Some(last) = self.recent.last_mut() {
            if last.0 == kind && now_ms.saturating_sub(last.1) < 1000 {
                last.1 = now_ms;
                return;
            }
        }
        self.recent.rotate_left(1);
        self.recent[RECENT - 1] = (kind, now_ms);
    }
    fn new(now_ms: u64, ceiling: f64) -> Self {
        Record {
            score: ceiling,
            ceiling,
            at_ms: now_ms,
            blocks: 0,
            blocked_until_ms: 0,
            feed_penalised: false,
            recent: [(0, 0); RECENT],
        }
    }

    /// Brings the score up to `now_ms`: probation after a block, recovery with time.
    fn settle(&mut self, now_ms: u64, threshold: f64) {
        if self.blocked_until_ms != 0 && now_ms >= self.blocked_until_ms {
            self.blocked_until_ms = 0;
            self.score = self.score.max(threshold + PROBATION);
            self.at_ms = self.at_ms.max(now_ms);
        }
        if self.blocked_until_ms == 0 && self.score < self.ceiling && now_ms > self.at_ms {
            let minutes = (now_ms - self.at_ms) as f64 / 60_000.0;
            self.score = (self.score + minutes * RECOVERY_PER_MINUTE).min(self.ceiling);
        }
        self.at_ms = self.at_ms.max(now_ms);
    }
}

/// Reputation scores, fed by the event bus.
pub struct Reputation {
    shards: Box<[Mutex<HashMap<IpAddr, Record, RandomState>>]>,
    hasher: RandomState,
    shard_cap: usize,
    /// The threshold as f64 bits and the block length: atomics, for a configuration reload.
    threshold_bits: AtomicU64,
    block_ms: AtomicU64,
    lists: Arc<IpLists>,
    bus: Mutex<Weak<EventBus>>,
    clock: Arc<dyn Clock>,
    geo_risk: OnceLock<Arc<RiskPolicy>>,
    shared: OnceLock<Arc<SharedReputation>>,
    /// Key for saving records by hash (`SECURITY_IP_HASH_KEY`).
    save_by_hash: OnceLock<(u64, u64)>,
    /// Records restored by hash, waiting for their address to be seen.
    restored: Mutex<HashMap<u64, SavedRecord>>,
    has_restored: AtomicBool,
}

impl std::fmt::Debug for Reputation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reputation")
            .field("threshold", &self.threshold())
            .finish_non_exhaustive()
    }
}

const SHARDS: usize = 64;

impl Reputation {
    /// Scores for at most `max_tracked` addresses; blocks go on `lists`.
    pub fn new(
        threshold: u64,
        block_seconds: u64,
        max_tracked: usize,
        lists: Arc<IpLists>,
        clock: Arc<dyn Clock>,
    ) -> Arc<Self> {
        Arc::new(Reputation {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::with_hasher(RandomState::new())))
                .collect(),
            hasher: RandomState::new(),
            shard_cap: max_tracked.div_ceil(SHARDS).max(1),
            threshold_bits: AtomicU64::new((threshold as f64).to_bits()),
            block_ms: AtomicU64::new(block_seconds.saturating_mul(1000)),
            lists,
            bus: Mutex::new(Weak::new()),
            clock,
            geo_risk: OnceLock::new(),
            shared: OnceLock::new(),
            save_by_hash: OnceLock::new(),
            restored: Mutex::new(HashMap::new()),
            has_restored: AtomicBool::new(false),
        })
    }

    /// Lowers the ceiling of risky addresses (anonymisers, high-risk countries). Set once,
    /// before traffic.
    pub fn use_geo_risk(&self, policy: Arc<RiskPolicy>) {
        if policy.is_active() {
            let _ = self.geo_risk.set(policy);
        }
    }

    /// Applies penalties in Redis from now on (set once, by [`SharedReputation::start`]).
    pub(crate) fn share_through(&self, shared: Arc<SharedReputation>) {
        let _ = self.shared.set(shared);
    }

    /// Saves records by keyed hash rather than by address.
    pub fn save_by_hash(&self, key: (u64, u64)) {
        let _ = self.save_by_hash.set(key);
    }

    /// The score `ip` starts at and recovers to: neutral less its GeoIP risk.
    pub fn ceiling(&self, ip: IpAddr) -> f64 {
        match self.geo_risk.get() {
            Some(policy) => NEUTRAL - policy.risk(ip).points,
            None => NEUTRAL,
        }
    }

    /// The auto-blacklist threshold.
    pub fn threshold(&self) -> f64 {
        f64::from_bits(self.threshold_bits.load(Ordering::Relaxed))
    }

    /// A new threshold and temporary block length (a configuration reload); scores, blocks in
    /// force and their ends stay.
    pub fn reconfigure(&self, threshold: u64, block_seconds: u64) {
        self.threshold_bits
            .store((threshold as f64).to_bits(), Ordering::Relaxed);
        self.block_ms
            .store(block_seconds.saturating_mul(1000), Ordering::Relaxed);
    }

    /// The first temporary block's length (ms).
    pub fn block_ms(&self) -> u64 {
        self.block_ms.load(Ordering::Relaxed)
    }

    /// A fresh record for `ip`, or the one saved by hash before a restart.
    fn fresh_record(&self, ip: IpAddr, now: u64) -> Record {
        self.restored_record(ip)
            .unwrap_or_else(|| Record::new(now, self.ceiling(ip)))
    }

    /// The record saved by hash for `ip` before a restart, taken out of waiting.
    fn restored_record(&self, ip: IpAddr) -> Option<Record> {
        let saved = self.take_restored(ip)?;
        let mut record = Record::new(saved.at_ms, self.ceiling(ip));
        record.score = saved.score.clamp(0.0, 100.0);
        record.blocks = saved.blocks;
        record.blocked_until_ms = saved.blocked_until_ms;
        Some(record)
    }

    fn take_restored(&self, ip: IpAddr) -> Option<SavedRecord> {
        if !self.has_restored.load(Ordering::Relaxed) {
            return None;
        }
        let key = *self.save_by_hash.get()?;
        let mut restored = self.restored.lock().unwrap_or_else(|e| e.into_inner());
        let found = restored.remove(&keyed_ip_hash(key, ip));
        if restored.is_empty() {
            self.has_restored.store(false, Ordering::Relaxed);
        }
        found
    }

    /// Where blocks are announced (set once the bus exists; held weakly, as the bus holds
    /// this sink).
    pub fn announce_on(&self, bus: &Arc<EventBus>) {
        *self.bus.lock().unwrap_or_else(|e| e.into_inner()) = Arc::downgrade(bus);
    }

    fn shard(
        &self,
        ip: &IpAddr,
    ) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Record, RandomState>> {
        let index = (self.hasher.hash_one(ip) >> 58) as usize % SHARDS;
        // A poisoned lock only means a panic elsewhere while it was held; records are plain
        // values, still whole.
        self.shards[index].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The score of `ip` now (its ceiling for an address never seen).
    pub fn score(&self, ip: IpAddr) -> f64 {
        let ip = ip.to_canonical();
        let now = self.clock.unix_ms();
        {
            let mut shard = self.shard(&ip);
            if let Some(record) = shard.get_mut(&ip) {
                record.settle(now, self.threshold());
                return record.score;
            }
        }
        if let Some(mut record) = self.restored_record(ip) {
            record.settle(now, self.threshold());
            let score = record.score;
            self.insert(ip, record, now);
            return score;
        }
        self.ceiling(ip)
    }

    /// The record of `ip` in its shard, made at its ceiling when missing (a full shard evicts
    /// first).
    fn record_in<'g>(
        &self,
        shard: &'g mut HashMap<IpAddr, Record, RandomState>,
        ip: IpAddr,
        now: u64,
    ) -> &'g mut Record {
        if shard.len() >= self.shard_cap && !shard.contains_key(&ip) {
            evict(shard, now, self.shard_cap);
        }
        shard
            .entry(ip)
            .or_insert_with(|| Record::new(now, self.ceiling(ip)))
    }

    fn insert(&self, ip: IpAddr, record: Record, now: u64) {
        let mut shard = self.shard(&ip);
        if shard.len() >= self.shard_cap && !shard.contains_key(&ip) {
            evict(&mut shard, now, self.shard_cap);
        }
        shard.insert(ip, record);
    }

    /// Takes the state Redis answered for `ip` as this instance's record, and blocks the
    /// address when that penalty started a block.
    pub(crate) fn adopt(&self, ip: IpAddr, state: SharedState) {
        let ip = ip.to_canonical();
        let now = self.clock.unix_ms();
        {
            let mut shard = self.shard(&ip);
            let record = self.record_in(&mut shard, ip, now);
            record.score = state.score.clamp(0.0, 100.0);
            record.blocks = state.blocks;
            record.blocked_until_ms = state.blocked_until_ms;
            record.at_ms = record.at_ms.max(now);
        }
        if state.new_block_ms > 0 {
            self.blacklist(ip, state.new_block_ms);
        }
    }

    /// Decides alone whether `ip` is now low enough to block (Redis did not answer for a
    /// penalty already counted locally).
    pub(crate) fn decide_locally(&self, ip: IpAddr) {
        let ip = ip.to_canonical();
        let now = self.clock.unix_ms();
        let block = {
            let mut shard = self.shard(&ip);
            let Some(record) = shard.get_mut(&ip) else {
                return;
            };
            record.settle(now, self.threshold());
            self.start_block_if_low(record, now)
        };
        if let Some(length) = block {
            self.blacklist(ip, length);
        }
    }

    fn start_block_if_low(&self, record: &mut Record, now: u64) -> Option<u64> {
        if record.blocked_until_ms != 0 || record.score > self.threshold() {
            return None;
        }
        let length = self
            .block_ms()
            .saturating_mul(1u64 << record.blocks.min(20));
        record.blocks += 1;
        record.blocked_until_ms = now.saturating_add(length);
        Some(length)
    }

    /// Lowers the score of `ip` by `points`, blocking it when it reaches the threshold.
    pub fn penalise(&self, ip: IpAddr, points: f64) {
        self.penalise_for(ip, points, 0);
    }

    /// What was recently held against `ip`, oldest first.
    pub fn recent(&self, ip: IpAddr) -> Vec<RecentThreat> {
        let ip = ip.to_canonical();
        self.shard(&ip)
            .get(&ip)
            .map(|r| {
                r.recent
                    .iter()
                    .filter(|(kind, _)| *kind != 0)
                    .map(|(kind, at)| {
                        let (name, severity) = KINDS[usize::from(*kind) % KINDS.len()];
                        RecentThreat {
                            kind: name,
                            time_ms: *at,
                            severity,
                        }
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn penalise_for(&self, ip: IpAddr, points: f64, kind: u8) {
        self.penalise_with(ip, points, kind, false)
    }

    fn penalise_with(&self, ip: IpAddr, points: f64, kind: u8, once: bool) {
        if points <= 0.0 {
            return;
        }
        let ip = ip.to_canonical();
        let now = self.clock.unix_ms();
        let block = {
            let mut shard = self.shard(&ip);
            if !shard.contains_key(&ip) {
                drop(shard);
                let fresh = self.fresh_record(ip, now);
                shard = self.shard(&ip);
                if shard.len() >= self.shard_cap && !shard.contains_key(&ip) {
                    evict(&mut shard, now, self.shard_cap);
                }
                shard.entry(ip).or_insert(fresh);
            }
            let Some(record) = shard.get_mut(&ip) else {
                return;
            };
            record.settle(now, self.threshold());
            record.remember(kind, now);
            if record.blocked_until_ms != 0 {
                // Already blocked: the score stays where it is until the block ends.
                return;
            }
            record.score = (record.score - points).max(0.0);
            // With Redis, Redis decides (its answer comes back through `adopt`); the local
            // score already shows the penalty meanwhile.
            if let Some(shared) = self.shared.get() {
                let ceiling = record.ceiling;
                drop(shard);
                if shared.submit(ip, points, ceiling, once) {
                    return;
                }
                shard = self.shard(&ip);
            }
            let Some(record) = shard.get_mut(&ip) else {
                return;
            };
            match self.start_block_if_low(record, now) {
                Some(length) => length,
                None => return,
            }
        };
        self.blacklist(ip, block);
    }

    /// Puts `ip` on the blacklist for `block` ms as an automatic block, and announces it.
    fn blacklist(&self, ip: IpAddr, block: u64) {
        // Outside the shard lock: the list and the bus take their own.
        let ttl = block.div_ceil(1000).max(1);
        let network = ipnet::IpNet::from(ip);
        if let Ok(entry) = self.lists.add(
            ListKind::Blacklist,
            network,
            AUTO_BLACKLIST_REASON,
            Some(ttl),
        ) {
            let bus = self.bus.lock().unwrap_or_else(|e| e.into_inner()).upgrade();
            if let Some(bus) = bus {
                bus.publish(SecurityEvent::ListAdded {
                    list: ListKind::Blacklist,
                    network,
                    reason: AUTO_BLACKLIST_REASON.into(),
                    expires_at_ms: entry.expires_at_ms,
                });
            }
        }
    }

    /// Lowers the score of an address listed by a penalty feed, once for as long as the
    /// address is tracked.
    pub fn penalise_once_for_feeds(&self, ip: IpAddr, points: f64) {
        let ip = ip.to_canonical();
        let now = self.clock.unix_ms();
        {
            let mut shard = self.shard(&ip);
            let record = self.record_in(&mut shard, ip, now);
            if record.feed_penalised {
                return;
            }
            record.feed_penalised = true;
        }
        // `once`: with Redis, once for all instances too.
        self.penalise_with(ip, points, 7, true);
    }

    /// Every record touched within `retention_ms` (or still blocked), for saving: by keyed
    /// hash when [`Reputation::save_by_hash`] was set, else by address. Records restored by
    /// hash and not seen since are kept too.
    pub fn export(&self, retention_ms: u64) -> Vec<SavedRecord> {
        let now = self.clock.unix_ms();
        let key = self.save_by_hash.get().copied();
        let fresh = |at_ms: u64, blocked_until_ms: u64| {
            now.saturating_sub(at_ms) <= retention_ms || blocked_until_ms > now
        };
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            for (ip, r) in shard.iter() {
                if fresh(r.at_ms, r.blocked_until_ms) {
                    out.push(SavedRecord {
                        ip: key.is_none().then_some(*ip),
                        ip_hash: key.map(|k| keyed_ip_hash(k, *ip)),
                        score: r.score,
                        at_ms: r.at_ms,
                        blocks: r.blocks,
                        blocked_until_ms: r.blocked_until_ms,
                    });
                }
            }
        }
        let waiting = self.restored.lock().unwrap_or_else(|e| e.into_inner());
        out.extend(
            waiting
                .values()
                .filter(|r| fresh(r.at_ms, r.blocked_until_ms))
                .copied(),
        );
        out
    }

    /// Puts saved records back (those older than `retention_ms` are dropped). Records saved by
    /// hash wait aside until their address is seen (and only while a hash key is set: with
    /// another key they could never be matched).
    pub fn import(&self, records: &[SavedRecord], retention_ms: u64) -> usize {
        let now = self.clock.unix_ms();
        let mut restored = 0;
        for saved in records {
            if now.saturating_sub(saved.at_ms) > retention_ms && saved.blocked_until_ms <= now {
                continue;
            }
            if let Some(ip) = saved.ip {
                let ip = ip.to_canonical();
                let mut record = Record::new(saved.at_ms, self.ceiling(ip));
                record.score = saved.score.clamp(0.0, 100.0);
                record.blocks = saved.blocks;
                record.blocked_until_ms = saved.blocked_until_ms;
                let mut shard = self.shard(&ip);
                if shard.len() >= self.shard_cap {
                    continue;
                }
                shard.insert(ip, record);
                restored += 1;
            } else if let (Some(hash), Some(_)) = (saved.ip_hash, self.save_by_hash.get()) {
                let mut waiting = self.restored.lock().unwrap_or_else(|e| e.into_inner());
                if waiting.len() >= self.shard_cap.saturating_mul(SHARDS) {
                    continue;
                }
                waiting.insert(hash, *saved);
                self.has_restored.store(true, Ordering::Relaxed);
                restored += 1;
            }
        }
        restored
    }

    /// Addresses tracked.
    pub fn tracked(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    /// Temporary blocks an address has had.
    pub fn blocks(&self, ip: IpAddr) -> u32 {
        self.shard(&ip.to_canonical())
            .get(&ip.to_canonical())
            .map_or(0, |r| r.blocks)
    }
}

fn evict(shard: &mut HashMap<IpAddr, Record, RandomState>, now: u64, cap: usize) {
    shard.retain(|_, r| {
        let mut settled = *r;
        settled.settle(now, 0.0);
        settled.blocked_until_ms != 0 || settled.score < settled.ceiling
    });
    let target = cap - cap / 8;
    if shard.len() <= target {
        return;
    }
    let mut scores: Vec<(IpAddr, f64)> = shard
        .iter()
        .filter(|(_, r)| r.blocked_until_ms == 0)
        .map(|(ip, r)| (*ip, r.score))
        .collect();
    scores.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (ip, _) in scores.into_iter().take(shard.len() - target) {
        shard.remove(&ip);
    }
}

impl EventSink for Reputation {
    fn handle(&self, event: &SecurityEvent) {
        match event {
            SecurityEvent::Blocked { ip, reason, .. } => {
                self.penalise_for(*ip, penalty(reason), kind_of(reason))
            }
            SecurityEvent::Pattern { ip: Some(ip), .. } => {
                self.penalise_for(*ip, PATTERN_PENALTY, 6)
            }
            SecurityEvent::ThreatObserved { ip, indicators, .. } => {
                let worst = indicators.iter().map(|i| i.severity).max();
                self.penalise_for(*ip, observed_penalty(worst), 8)
            }
            _ => {}
        }
    }
}

/// The seed's threat levels from a score.
pub fn threat_level(score: f64) -> &'static str {
    match score {
        s if s >= 40.0 => "low",
        s if s >= 25.0 => "medium",
        s if s > 10.0 => "high",
        _ => "critical",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::time::Duration;

    fn setup() -> (Arc<Reputation>, Arc<IpLists>, Arc<ManualClock>) {
        let clock = ManualClock::starting_at(1_800_000_000_000);
        let lists = Arc::new(IpLists::new(1000, clock.clone()));
        let rep = Reputation::new(10, 3600, 10_000, lists.clone(), clock.clone());
        (rep, lists, clock)
    }

    #[test]
    fn scores_fall_with_events_and_recover_to_neutral() {
        let (rep, _, clock) = setup();
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        assert_eq!(rep.score(ip), NEUTRAL);
        rep.penalise(ip, 20.0);
        assert_eq!(rep.score(ip), 30.0);
        clock.advance(Duration::from_secs(600));
        assert_eq!(rep.score(ip), 40.0);
        clock.advance(Duration::from_secs(3600));
        assert_eq!(rep.score(ip), NEUTRAL, "never past neutral");
        assert_eq!(threat_level(rep.score(ip)), "low");
    }

    #[test]
    fn low_scores_are_blocked_then_probation_then_longer_for_a_relapse() {
        let (rep, lists, clock) = setup();
        let ip: IpAddr = "203.0.113.7".parse().expect("ip");
        rep.penalise(ip, 25.0);
        rep.penalise(ip, 25.0);
        let entry = lists
            .lookup(ListKind::Blacklist, ip)
            .expect("auto-blacklisted");
        assert_eq!(entry.entry.reason, AUTO_BLACKLIST_REASON);
        assert_eq!(
            entry.entry.expires_at_ms,
            Some(1_800_000_000_000 + 3_600_000)
        );
        assert_eq!(threat_level(rep.score(ip)), "critical");
        clock.advance(Duration::from_secs(3600));
        assert!(!lists.contains(ListKind::Blacklist, ip), "the block ended");
        assert_eq!(rep.score(ip), 30.0, "probation");
        // A relapse: blocked twice as long.
        rep.penalise(ip, 25.0);
        let entry = lists
            .lookup(ListKind::Blacklist, ip)
            .expect("blocked again");
        assert_eq!(
            entry.entry.expires_at_ms,
            Some(1_800_000_000_000 + 3_600_000 + 7_200_000)
        );
        assert_eq!(rep.blocks(ip), 2);
    }

    #[test]
    fn the_table_is_bounded_and_keeps_the_worst() {
        let clock = ManualClock::starting_at(1_800_000_000_000);
        let lists = Arc::new(IpLists::new(1000, clock.clone()));
        let rep = Reputation::new(10, 3600, 640, lists, clock);
        let worst: IpAddr = "198.51.100.1".parse().expect("ip");
        rep.penalise(worst, 35.0);
        for i in 0..10_000u32 {
            rep.penalise(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)), 2.0);
            assert!(rep.tracked() <= 640 + 1);
        }
        assert_eq!(rep.score(worst), 15.0);
    }
}
