//! What each client does, over a sliding window, in a fixed table of atomic counters.
//!
//! `observe` runs after every response, so it takes no lock: a client's slot is in one of two
//! buckets of a fixed array chosen by its hash, claimed by a compare-and-swap on the key, and
//! updated with relaxed atomic adds. The table never grows: when both buckets are full, the
//! least recently seen client in them is replaced (the eviction rule). Counts are statistics, not accounts: two threads rolling a window at
//! once, or a replaced client's last request landing in its successor's slot, can misplace a
//! count, which moves a ratio by a request and is the price of never waiting.
//!
//! The window slides the way the rate limiter's sliding-window counter does: counts of the
//! current window plus those of the previous one weighted by how much of it still overlaps
//! the last `window` milliseconds. Distinct paths and tools are counted with small bitmaps
//! (linear counting: `-m ln(zeros/m)`), exact enough to tell three paths from three hundred.

use std::hash::{BuildHasher, Hash};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

use serde::Serialize;

/// How many features describe a client.
pub const FEATURE_COUNT: usize = 12;

/// The features, in vector order; `docs/BEHAVIOUR.md` says what each one means.
pub const FEATURE_NAMES: [&str; FEATURE_COUNT] = [
    "request_rate",
    "burstiness",
    "distinct_path_ratio",
    "error_ratio",
    "not_found_ratio",
    "method_entropy",
    "mean_body_bytes",
    "user_agent_change_ratio",
    "threat_ratio",
    "unusual_tool_ratio",
    "distinct_tools",
    "distinct_missing_paths",
];

/// One client's features, in [`FEATURE_NAMES`] order.
pub type FeatureVector = [f64; FEATURE_COUNT];

/// Slots per bucket. A client may live in either of two buckets (the second takes the first's
/// overflow: at 80 % load almost no client is turned away for want of room in both).
const BUCKET: usize = 8;
/// Kinds of request, for the method mix.
const METHOD_CLASSES: usize = 8;
/// Inter-arrival gaps longer than this count as this long (an idle night is not a signal,
/// and it keeps the sums of squares far from overflowing).
const MAX_GAP_MS: u64 = 600_000;

/// What a request was, for the method mix: the MCP method's family, or plain HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodClass {
    /// `initialize`
    Initialize,
    /// `tools/list`
    ToolsList,
    /// `tools/call`
    ToolsCall,
    /// `resources/*`
    Resources,
    /// `prompts/*`
    Prompts,
    /// `notifications/*`, `ping` and responses
    Housekeeping,
    /// Another JSON-RPC method
    OtherJsonRpc,
    /// Not JSON-RPC (a GET, a form, a plain API call)
    Http,
}

impl MethodClass {
    /// The class of a JSON-RPC method (`None`: not JSON-RPC).
    pub fn of(method: Option<&str>) -> MethodClass {
        match method {
            None => MethodClass::Http,
            Some("initialize") => MethodClass::Initialize,
            Some("tools/list") => MethodClass::ToolsList,
            Some("tools/call") => MethodClass::ToolsCall,
            Some(m) if m.starts_with("resources/") => MethodClass::Resources,
            Some(m) if m.starts_with("prompts/") => MethodClass::Prompts,
            Some(m) if m.starts_with("notifications/") || m == "ping" => MethodClass::Housekeeping,
            Some(_) => MethodClass::OtherJsonRpc,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One request, as the behaviour table sees it.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// When it arrived.
    pub at_ms: u64,
    /// The URL path.
    pub path: &'a str,
    /// The MCP method's family.
    pub method: MethodClass,
    /// The tool called, for `tools/call`.
    pub tool: Option<&'a str>,
    /// The response status.
    pub status: u16,
    /// Body bytes read.
    pub body_bytes: u64,
    /// A hash of the `User-Agent` (0: none).
    pub user_agent: u64,
    /// Threat indicators found in it.
    pub threats: u32,
}

/// Who a slot belongs to: an address, or a user (hashed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// A client address (IPv4 mapped into IPv6).
    Ip(IpAddr),
    /// A user id's hash.
    User(u64),
}

impl ClientKey {
    /// The address, for an address key (unspecified for a user key).
    pub fn ip(self) -> IpAddr {
        match self {
            ClientKey::Ip(ip) => ip,
            ClientKey::User(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        }
    }
}

/// Raw counts over the window (the previous window's share included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Counts {
    /// Requests.
    pub requests: f64,
    /// Responses 400 and above.
    pub errors: f64,
    /// 404 responses.
    pub not_found: f64,
    /// Distinct paths (estimated).
    pub distinct_paths: f64,
    /// Distinct paths answered 404 (estimated).
    pub distinct_missing_paths: f64,
    /// Distinct tools called (estimated).
    pub distinct_tools: f64,
    /// `tools/call` requests.
    pub tool_calls: f64,
    /// Mean gap between requests, milliseconds (0 with fewer than two).
    pub mean_gap_ms: f64,
    /// Gap standard deviation over the mean (1 when unknown: what random arrivals give).
    pub gap_variation: f64,
    /// How long the window covers for this client, milliseconds.
    pub span_ms: f64,
}

/// A client's features and the counts behind them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClientFeatures {
    /// Who.
    pub client: ClientKey,
    /// The features, in [`FEATURE_NAMES`] order.
    pub vector: FeatureVector,
    /// The counts.
    pub counts: Counts,
    /// When the client was last seen.
    pub last_seen_ms: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    errors: AtomicU64,
    not_found: AtomicU64,
    body_bytes: AtomicU64,
    gaps: AtomicU64,
    gap_sum_ms: AtomicU64,
    gap_square_sum: AtomicU64,
    user_agent_changes: AtomicU64,
    threats: AtomicU64,
    tool_calls: AtomicU64,
    unusual_tools: AtomicU64,
    methods: [AtomicU64; METHOD_CLASSES],
    /// 128-bit linear-counting sketches.
    paths: [AtomicU64; 2],
    missing_paths: [AtomicU64; 2],
    /// 64-bit sketch of tools.
    tools: AtomicU64,
}

impl Counters {
    fn scalars(&self) -> [&AtomicU64; 11] {
        [
            &self.requests,
            &self.errors,
            &self.not_found,
            &self.body_bytes,
            &self.gaps,
            &self.gap_sum_ms,
            &self.gap_square_sum,
            &self.user_agent_changes,
            &self.threats,
            &self.tool_calls,
            &self.unusual_tools,
        ]
    }

    fn all(&self) -> impl Iterator<Item = &AtomicU64> {
        self.scalars()
            .into_iter()
            .chain(self.methods.iter())
            .chain(self.paths.iter())
            .chain(self.missing_paths.iter())
            .chain(std::iter::once(&self.tools))
    }

    /// Moves these counts into `into` and zeroes them.
    fn move_into(&self, into: &Counters) {
        for (from, to) in self.all().zip(into.all()) {
            to.store(from.swap(0, Relaxed), Relaxed);
        }
    }

    fn clear(&self) {
        for c in self.all() {
            c.store(0, Relaxed);
        }
    }
}

#[derive(Default)]
struct Slot {
    /// The client, for listing: an address as 128 bits (IPv4 mapped), or a user hash.
    who_high: AtomicU64,
    who_low: AtomicU64,
    /// 1: address, 2: user.
    who_kind: AtomicU32,
    first_seen_ms: AtomicU64,
    last_seen_ms: AtomicU64,
    window_start_ms: AtomicU64,
    user_agent: AtomicU64,
    /// Tools called in earlier windows: what is usual for this client.
    known_tools: AtomicU64,
    current: Counters,
    previous: Counters,
    /// The last anomaly score as `f32` bits; [`NO_SCORE`] when none.
    score: AtomicU32,
    /// When an `anomalous_behavior` event was last published for this client.
    flagged_ms: AtomicU64,
}

const NO_SCORE: u32 = u32::MAX;

/// Types for which all-zero bytes are a valid value.
///
/// # Safety
/// Implement only for types made entirely of atomic integers (directly, in arrays or in
/// structs of them): an atomic integer's all-zero bit pattern is the value 0.
unsafe trait ZeroIsValid {}
// SAFETY: an atomic integer.
unsafe impl ZeroIsValid for AtomicU64 {}
// SAFETY: `Slot` and its `Counters` hold only `AtomicU64`, `AtomicU32` and arrays of them.
unsafe impl ZeroIsValid for Slot {}

/// `n` values of `T`, all zero, from zeroed memory: the operating system maps such pages
/// lazily, so the slots of clients never seen cost no resident memory (a default table is
/// 25 MB of address space, next to nothing until clients arrive).
fn zeroed<T: ZeroIsValid>(n: usize) -> Box<[T]> {
    let n = n.max(1);
    let layout = std::alloc::Layout::array::<T>(n)
        .unwrap_or_else(|_| panic!("a table of {n} entries does not fit in memory"));
    // SAFETY: `layout` is non-zero-sized (`n >= 1` and `T` holds atomics), as `alloc_zeroed`
    // requires; a null result is handed to `handle_alloc_error`, which does not return. The
    // memory is zeroed, which `ZeroIsValid` makes `n` valid `T`s. `Box<[T]>` frees with
    // `Layout::array::<T>(n)` through the global allocator, which is how it was allocated.
    unsafe {
        let ptr = std::alloc::alloc_zeroed(layout).cast::<T>();
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, n))
    }
}

/// The behaviour of up to `capacity` clients.
pub struct ClientTable {
    /// Each slot's client key hash (0: empty), apart from the slots so that a bucket's keys
    /// share one cache line.
    keys: Box<[AtomicU64]>,
    slots: Box<[Slot]>,
    window_ms: u64,
    hash_keys: (u64, u64),
}

impl std::fmt::Debug for ClientTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTable")
            .field("capacity", &self.slots.len())
            .field("window_ms", &self.window_ms)
            .finish()
    }
}

fn bit(hash: u64, bits: u32) -> (usize, u64) {
    let b = (hash >> 7) % u64::from(bits);
    ((b / 64) as usize, 1u64 << (b % 64))
}

/// Linear counting: distinct items from the zero bits of an `m`-bit sketch.
fn distinct(ones: u32, m: u32) -> f64 {
    let m = f64::from(m);
    let zeros = m - f64::from(ones);
    if zeros < 1.0 {
        // Saturated: at least this many.
        m * m.ln()
    } else {
        -m * (zeros / m).ln()
    }
}

fn entropy(counts: &[f64]) -> f64 {
    let total: f64 = counts.iter().sum();
    if total <= 0.0 {
        return 0.0;
    }
    counts
        .iter()
        .filter(|c| **c > 0.0)
        .map(|c| {
            let p = c / total;
            -p * p.log2()
        })
        .sum()
}

impl ClientTable {
    /// A table for `capacity` clients (rounded up to whole buckets) over a `window_ms`
    /// window, with random hash keys.
    pub fn new(capacity: usize, window_ms: u64) -> ClientTable {
        let random = std::collections::hash_map::RandomState::new();
        let keys = (random.hash_one(1u8), random.hash_one(2u8));
        ClientTable::with_keys(capacity, window_ms, keys)
    }

    /// The same with given hash keys: where clients land and how paths fall in the sketches
    /// then repeat from run to run (the simulator's reproducibility). Keys must be secret in
    /// a deployment, or clients could choose addresses that collide.
    pub fn with_keys(capacity: usize, window_ms: u64, keys: (u64, u64)) -> ClientTable {
        let slots = capacity.max(1).div_ceil(BUCKET) * BUCKET;
        ClientTable {
            keys: zeroed(slots),
            slots: zeroed(slots),
            window_ms: window_ms.max(1000),
            hash_keys: keys,
        }
    }

    /// How many clients it holds at most.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The window, milliseconds.
    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }

    fn hash<T: Hash>(&self, value: T) -> u64 {
        // Keyed SipHash: clients choose their addresses and paths, not where they land.
        let mut hasher =
            siphasher::sip::SipHasher13::new_with_keys(self.hash_keys.0, self.hash_keys.1);
        value.hash(&mut hasher);
        std::hash::Hasher::finish(&hasher)
    }

    fn key_of(&self, client: ClientKey) -> u64 {
        self.hash(client).max(1)
    }

    /// Where the two buckets `key` may live in start.
    fn buckets(&self, key: u64) -> [usize; 2] {
        let buckets = (self.slots.len() / BUCKET) as u64;
        let first = (key % buckets) as usize * BUCKET;
        let second = ((key >> 32).wrapping_mul(0x9e37_79b9) % buckets) as usize * BUCKET;
        [first, second]
    }

    /// The slot indices of both buckets.
    fn candidates(&self, key: u64) -> impl Iterator<Item = usize> {
        let [a, b] = self.buckets(key);
        (a..a + BUCKET).chain(b..b + BUCKET)
    }

    /// The slot holding `client`, if any.
    fn find(&self, client: ClientKey) -> Option<&Slot> {
        let key = self.key_of(client);
        self.candidates(key)
            .find(|&i| self.keys[i].load(Relaxed) == key)
            .map(|i| &self.slots[i])
    }

    /// The slot for `client`, claimed (or taken from the least recently seen of its two
    /// buckets) when absent.
    fn claim(&self, client: ClientKey, now_ms: u64) -> &Slot {
        let key = self.key_of(client);
        if let Some(i) = self
            .candidates(key)
            .find(|&i| self.keys[i].load(Relaxed) == key)
        {
            return &self.slots[i];
        }
        // Every thread tries the slots in the same order, so two threads adding the same new
        // client race for the same empty slot, and the loser finds the winner's key there.
        let [a, b] = self.buckets(key);
        loop {
            let mut oldest: Option<(usize, u64, u64)> = None;
            for i in (a..a + BUCKET).chain(b..b + BUCKET) {
                let held = self.keys[i].load(Relaxed);
                if held == key {
                    return &self.slots[i];
                }
                if held == 0 {
                    match self.keys[i].compare_exchange(0, key, Relaxed, Relaxed) {
                        Ok(_) => {
                            // Never used (keys do not return to 0): its counters are zero
                            // already, and clearing them could wipe a request that another
                            // thread counted since the swap.
                            self.claimed(&self.slots[i], client, now_ms);
                            return &self.slots[i];
                        }
                        Err(actual) if actual == key => return &self.slots[i],
                        Err(_) => continue,
                    }
                }
                let seen = self.slots[i].last_seen_ms.load(Relaxed);
                if oldest.is_none_or(|(_, _, s)| seen < s) {
                    oldest = Some((i, held, seen));
                }
            }
            if let Some((i, held, _)) = oldest {
                match self.keys[i].compare_exchange(held, key, Relaxed, Relaxed) {
                    Ok(_) => {
                        self.reset(&self.slots[i], client, now_ms);
                        return &self.slots[i];
                    }
                    Err(actual) if actual == key => return &self.slots[i],
                    Err(_) => {}
                }
            }
            // Lost a race for every candidate: look again (someone else moved in).
        }
    }

    /// Makes a slot taken from another client `client`'s: its counts are cleared.
    fn reset(&self, slot: &Slot, client: ClientKey, now_ms: u64) {
        slot.current.clear();
        slot.previous.clear();
        slot.user_agent.store(0, Relaxed);
        slot.known_tools.store(0, Relaxed);
        slot.score.store(NO_SCORE, Relaxed);
        slot.flagged_ms.store(0, Relaxed);
        self.claimed(slot, client, now_ms);
    }

    /// Writes who holds a slot and since when.
    fn claimed(&self, slot: &Slot, client: ClientKey, now_ms: u64) {
        let (kind, high, low) = match client {
            ClientKey::Ip(ip) => {
                let bits = match ip {
                    IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
                    IpAddr::V6(v6) => u128::from(v6),
                };
                (1, (bits >> 64) as u64, bits as u64)
            }
            ClientKey::User(hash) => (2, 0, hash),
        };
        slot.who_kind.store(kind, Relaxed);
        slot.who_high.store(high, Relaxed);
        slot.who_low.store(low, Relaxed);
        slot.first_seen_ms.store(now_ms, Relaxed);
        slot.last_seen_ms.fetch_max(now_ms, Relaxed);
        slot.window_start_ms.fetch_max(now_ms, Relaxed);
        slot.score.store(NO_SCORE, Relaxed);
    }

    /// Starts a new window when the current one is over (one thread wins the swap and moves
    /// the counts; the others carry on counting).
    fn roll(&self, slot: &Slot, now_ms: u64) {
        let start = slot.window_start_ms.load(Relaxed);
        if start == 0 {
            // A slot being claimed this instant: its first window starts now, nothing to move.
            let _ = slot
                .window_start_ms
                .compare_exchange(0, now_ms, Relaxed, Relaxed);
            return;
        }
        if now_ms.saturating_sub(start) < self.window_ms {
            return;
        }
        if slot
            .window_start_ms
            .compare_exchange(start, now_ms, Relaxed, Relaxed)
            .is_err()
        {
            return;
        }
        // The tools of the window ending become usual for this client.
        let tools = slot.current.tools.load(Relaxed);
        slot.known_tools.fetch_or(tools, Relaxed);
        if now_ms.saturating_sub(start) >= 2 * self.window_ms {
            // Idle for a whole window: nothing of the old one overlaps the new.
            slot.current.clear();
            slot.previous.clear();
        } else {
            slot.current.move_into(&slot.previous);
        }
    }

    /// Counts one request of `client`.
    pub fn observe(&self, client: ClientKey, seen: &Observation<'_>) {
        let now = seen.at_ms;
        let slot = self.claim(client, now);
        self.roll(slot, now);
        let c = &slot.current;
        let previous_seen = slot.last_seen_ms.swap(now, Relaxed);
        let requests_before =
            c.requests.fetch_add(1, Relaxed) + slot.previous.requests.load(Relaxed);
        if requests_before > 0 {
            let gap = now.saturating_sub(previous_seen).min(MAX_GAP_MS);
            c.gaps.fetch_add(1, Relaxed);
            c.gap_sum_ms.fetch_add(gap, Relaxed);
            c.gap_square_sum.fetch_add(gap * gap, Relaxed);
        }
        if seen.status >= 400 {
            c.errors.fetch_add(1, Relaxed);
        }
        let path_hash = self.hash(seen.path);
        let (word, mask) = bit(path_hash, 128);
        c.paths[word].fetch_or(mask, Relaxed);
        if seen.status == 404 {
            c.not_found.fetch_add(1, Relaxed);
            c.missing_paths[word].fetch_or(mask, Relaxed);
        }
        c.body_bytes.fetch_add(seen.body_bytes, Relaxed);
        c.methods[seen.method.index()].fetch_add(1, Relaxed);
        if seen.user_agent != 0 {
            let before = slot.user_agent.swap(seen.user_agent, Relaxed);
            if before != 0 && before != seen.user_agent {
                c.user_agent_changes.fetch_add(1, Relaxed);
            }
        }
        if seen.threats > 0 {
            c.threats.fetch_add(u64::from(seen.threats), Relaxed);
        }
        if let Some(tool) = seen.tool {
            let (_, mask) = bit(self.hash(tool), 64);
            c.tool_calls.fetch_add(1, Relaxed);
            c.tools.fetch_or(mask, Relaxed);
            let known = slot.known_tools.load(Relaxed);
            if known != 0 && known & mask == 0 {
                c.unusual_tools.fetch_add(1, Relaxed);
            }
        }
    }

    /// Adds threat indicators found for `client` outside [`ClientTable::observe`] (the threat
    /// guard's events, which come before the request's own observation).
    pub fn add_threats(&self, client: ClientKey, count: u32, now_ms: u64) {
        let slot = self.claim(client, now_ms);
        self.roll(slot, now_ms);
        slot.current.threats.fetch_add(u64::from(count), Relaxed);
    }

    fn client_of(slot: &Slot) -> Option<ClientKey> {
        let low = slot.who_low.load(Relaxed);
        match slot.who_kind.load(Relaxed) {
            1 => {
                let bits = (u128::from(slot.who_high.load(Relaxed)) << 64) | u128::from(low);
                Some(ClientKey::Ip(Ipv6Addr::from(bits).to_canonical()))
            }
            2 => Some(ClientKey::User(low)),
            _ => None,
        }
    }

    fn features_of(&self, slot: &Slot, client: ClientKey, now_ms: u64) -> ClientFeatures {
        let start = slot.window_start_ms.load(Relaxed);
        let into_window = now_ms.saturating_sub(start);
        // The previous window's share that still lies within the last `window` ms.
        let weight = if into_window >= self.window_ms {
            0.0
        } else {
            1.0 - into_window as f64 / self.window_ms as f64
        };
        let stale = into_window >= self.window_ms;
        let value = |pick: fn(&Counters) -> &AtomicU64| {
            let current = if stale {
                0
            } else {
                pick(&slot.current).load(Relaxed)
            };
            current as f64 + weight * pick(&slot.previous).load(Relaxed) as f64
        };
        let sketch = |pick: fn(&Counters) -> &[AtomicU64]| {
            let mut ones = 0u32;
            let mut bits = 0u32;
            for (cur, prev) in pick(&slot.current).iter().zip(pick(&slot.previous)) {
                let mut word = if stale { 0 } else { cur.load(Relaxed) };
                if weight > 0.0 {
                    word |= prev.load(Relaxed);
                }
                ones += word.count_ones();
                bits += 64;
            }
            distinct(ones, bits)
        };
        let requests = value(|c| &c.requests);
        let per_request = |n: f64| if requests > 0.0 { n / requests } else { 0.0 };
        let first_seen = slot.first_seen_ms.load(Relaxed);
        // At least a minute, so two quick requests are not a rate of thousands.
        let span_ms = (now_ms.saturating_sub(first_seen) as f64)
            .clamp(60_000.0, self.window_ms.max(60_000) as f64);
        let gaps = value(|c| &c.gaps);
        let (mean_gap, variation) = if gaps >= 2.0 {
            let mean = value(|c| &c.gap_sum_ms) / gaps;
            let square = value(|c| &c.gap_square_sum) / gaps;
            let sd = (square - mean * mean).max(0.0).sqrt();
            (mean, if mean > 0.0 { sd / mean } else { 0.0 })
        } else {
            (0.0, 1.0)
        };
        let methods: Vec<f64> = (0..METHOD_CLASSES)
            .map(|i| {
                let current = if stale {
                    0
                } else {
                    slot.current.methods[i].load(Relaxed)
                };
                current as f64 + weight * slot.previous.methods[i].load(Relaxed) as f64
            })
            .collect();
        let distinct_paths = sketch(|c| &c.paths).min(requests.max(1.0));
        let distinct_missing = sketch(|c| &c.missing_paths).min(value(|c| &c.not_found));
        let tool_calls = value(|c| &c.tool_calls);
        let distinct_tools = sketch(|c| std::slice::from_ref(&c.tools)).min(tool_calls);
        let counts = Counts {
            requests,
            errors: value(|c| &c.errors),
            not_found: value(|c| &c.not_found),
            distinct_paths,
            distinct_missing_paths: distinct_missing,
            distinct_tools,
            tool_calls,
            mean_gap_ms: mean_gap,
            gap_variation: variation,
            span_ms,
        };
        let vector = [
            (1.0 + requests * 60_000.0 / span_ms).log2(),
            variation,
            per_request(distinct_paths),
            per_request(counts.errors),
            per_request(counts.not_found),
            entropy(&methods),
            (1.0 + per_request(value(|c| &c.body_bytes))).log2(),
            per_request(value(|c| &c.user_agent_changes)),
            per_request(value(|c| &c.threats)).min(10.0),
            if tool_calls > 0.0 {
                value(|c| &c.unusual_tools) / tool_calls
            } else {
                0.0
            },
            (1.0 + distinct_tools).log2(),
            (1.0 + distinct_missing).log2(),
        ];
        ClientFeatures {
            client,
            vector,
            counts,
            last_seen_ms: slot.last_seen_ms.load(Relaxed),
        }
    }

    /// The features of `client` now, if it is in the table.
    pub fn features(&self, client: ClientKey, now_ms: u64) -> Option<ClientFeatures> {
        let slot = self.find(client)?;
        Some(self.features_of(slot, client, now_ms))
    }

    /// Every client seen within the window with at least `min_requests` requests in it.
    pub fn active(&self, now_ms: u64, min_requests: f64) -> Vec<ClientFeatures> {
        self.slots
            .iter()
            .zip(self.keys.iter())
            .filter(|(s, key)| {
                key.load(Relaxed) != 0
                    && now_ms.saturating_sub(s.last_seen_ms.load(Relaxed)) < self.window_ms
            })
            .map(|(s, _)| s)
            .filter_map(|s| {
                let client = Self::client_of(s)?;
                let f = self.features_of(s, client, now_ms);
                (f.counts.requests >= min_requests).then_some(f)
            })
            .collect()
    }

    /// Records `client`'s latest anomaly score.
    pub fn set_score(&self, client: ClientKey, score: f64) {
        if let Some(slot) = self.find(client) {
            slot.score.store((score as f32).to_bits(), Relaxed);
        }
    }

    /// `client`'s latest anomaly score (one atomic load: what the request path reads).
    pub fn score(&self, client: ClientKey) -> Option<f64> {
        let bits = self.find(client)?.score.load(Relaxed);
        (bits != NO_SCORE).then(|| f64::from(f32::from_bits(bits)))
    }

    /// Whether an `anomalous_behavior` event for `client` is due (none in the last window);
    /// notes it as published when it is.
    pub fn flag_due(&self, client: ClientKey, now_ms: u64) -> bool {
        let Some(slot) = self.find(client) else {
            return false;
        };
        let last = slot.flagged_ms.load(Relaxed);
        (last == 0 || now_ms.saturating_sub(last) >= self.window_ms)
            && slot
                .flagged_ms
                .compare_exchange(last, now_ms.max(1), Relaxed, Relaxed)
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// Test times count from here (a real clock is never near zero).
    const T0: u64 = 1_800_000_000_000;

    fn seen(at_ms: u64, path: &str, status: u16) -> Observation<'_> {
        Observation {
            at_ms: T0 + at_ms,
            path,
            method: MethodClass::Http,
            tool: None,
            status,
            body_bytes: 100,
            user_agent: 7,
            threats: 0,
        }
    }

    fn ip(last: u8) -> ClientKey {
        ClientKey::Ip(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)))
    }

    #[test]
    fn counts_ratios_and_distinct_paths() {
        let table = ClientTable::new(64, 300_000);
        for i in 0..40u64 {
            let path = format!("/probe/{i}");
            table.observe(ip(1), &seen(i * 1000, &path, 404));
        }
        let f = table.features(ip(1), T0 + 40_000).expect("tracked");
        assert_eq!(f.counts.requests, 40.0);
        assert_eq!(f.vector[4], 1.0, "all 404");
        assert!(
            (30.0..=50.0).contains(&f.counts.distinct_paths),
            "{:?}",
            f.counts
        );
        assert!((30.0..=50.0).contains(&f.counts.distinct_missing_paths));
        // Exactly a second apart: no variation.
        assert!(f.counts.gap_variation < 0.01);
        assert!((f.counts.mean_gap_ms - 1000.0).abs() < 1.0);
        // Forty requests over the one-minute floor.
        assert!((f.vector[0] - (1.0f64 + 40.0).log2()).abs() < 0.01);
    }

    #[test]
    fn the_previous_window_fades_out() {
        let table = ClientTable::new(64, 60_000);
        for i in 0..10u64 {
            table.observe(ip(2), &seen(i * 1000, "/a", 200));
        }
        // A new window starts at 60 s; half of it later the old counts weigh a half.
        table.observe(ip(2), &seen(60_000, "/a", 200));
        let f = table.features(ip(2), T0 + 90_000).expect("tracked");
        assert!((f.counts.requests - 6.0).abs() < 0.01, "{:?}", f.counts);
        // Two windows idle: nothing is left.
        let f = table.features(ip(2), T0 + 200_000).expect("tracked");
        assert_eq!(f.counts.requests, 0.0);
    }

    #[test]
    fn usual_tools_are_learnt_from_earlier_windows() {
        // Usual tools are a 64-bit sketch: with random keys, two of these four tools share a
        // bit in about one run in twenty and the new one reads as usual. Keys that keep them
        // apart make the test about learning, not about the sketch's collisions.
        let tools = ["search", "delete_all", "export", "admin"];
        let keys = (0u64..)
            .map(|k| (k, k.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15))
            .find(|keys| {
                let probe = ClientTable::with_keys(1, 60_000, *keys);
                let mut seen = 0u64;
                tools.iter().all(|tool| {
                    let (_, mask) = bit(probe.hash(tool), 64);
                    let fresh = seen & mask == 0;
                    seen |= mask;
                    fresh
                })
            })
            .expect("some keys separate four tools");
        let table = ClientTable::with_keys(64, 60_000, keys);
        let call = |at_ms, tool| Observation {
            method: MethodClass::ToolsCall,
            tool: Some(tool),
            ..seen(at_ms, "/mcp", 200)
        };
        for i in 0..10 {
            table.observe(ip(3), &call(i * 1000, "search"));
        }
        for (i, tool) in tools.iter().enumerate() {
            table.observe(ip(3), &call(61_000 + i as u64 * 100, tool));
        }
        let f = table.features(ip(3), T0 + 62_000).expect("tracked");
        // Three of the calls are to tools never used before, out of 4 + 10 x (1 - 1/60)
        // calls in the sliding window.
        let expected = 3.0 / (4.0 + 10.0 * (1.0 - 1.0 / 60.0));
        assert!((f.vector[9] - expected).abs() < 0.01, "{:?}", f.vector);
        // Four minutes later the old windows are gone, and every tool called is usual.
        for (i, tool) in tools.iter().enumerate() {
            table.observe(ip(3), &call(300_000 + i as u64 * 100, tool));
        }
        let f = table.features(ip(3), T0 + 300_500).expect("tracked");
        assert!(
            f.vector[9] < 0.01,
            "all four are usual by now: {:?}",
            f.vector
        );
    }

    #[test]
    fn the_table_stays_bounded_and_forgets_the_least_recent() {
        let table = ClientTable::new(16, 300_000);
        for i in 0..200u64 {
            let client = ClientKey::User(i);
            table.observe(client, &seen(i, "/", 200));
        }
        let held = table.active(T0 + 1000, 1.0);
        assert!(held.len() <= 16);
        // The newest is there; the first one was replaced.
        assert!(table.features(ClientKey::User(199), T0 + 1000).is_some());
        assert!(table.features(ClientKey::User(0), T0 + 1000).is_none());
    }

    #[test]
    fn scores_and_flags() {
        let table = ClientTable::new(16, 60_000);
        assert_eq!(table.score(ip(4)), None);
        table.observe(ip(4), &seen(0, "/", 200));
        assert_eq!(table.score(ip(4)), None);
        table.set_score(ip(4), 0.8);
        assert!((table.score(ip(4)).unwrap_or(0.0) - 0.8).abs() < 1e-6);
        assert!(table.flag_due(ip(4), T0 + 1000));
        assert!(!table.flag_due(ip(4), T0 + 2000));
        assert!(table.flag_due(ip(4), T0 + 62_000));
        // Listed with its address back.
        let active = table.active(T0 + 1000, 1.0);
        assert_eq!(active[0].client, ip(4));
    }
}

#[cfg(test)]
mod size {
    #[test]
    fn a_client_costs_about_half_a_kilobyte() {
        // docs/BEHAVIOUR.md and SECURITY_THREAT_ML_MAX_CLIENTS's description say so.
        let bytes = std::mem::size_of::<super::Slot>() + 8;
        assert!((400..=560).contains(&bytes), "{bytes} bytes per client");
    }
}
