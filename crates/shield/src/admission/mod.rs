//! Overload protection: admission to the upstream.
//!
//! Per-address limits cannot see a flood in which every address sends a request or two. What
//! they cannot see, the upstream still feels: so the layer limits the requests *in flight* to
//! the upstream (the service it wraps, or the server behind the gateway) to what that upstream
//! can serve, learned from its latency ([`limit`]), and decides who gets the places when there
//! are not enough.
//!
//! - While there is room, a request takes a place with one compare-and-swap and nothing else
//!   is looked at: in calm traffic, admission costs a few atomic operations.
//! - When the upstream is full, the request waits in a bounded priority queue ([`queue`]) for
//!   at most `SECURITY_UPSTREAM_QUEUE_WAIT_MS`; a place that frees goes to the best-placed
//!   waiter. A request that finds no place in the queue, is pushed out of it, or waits too long
//!   gets 503 `overloaded` with `Retry-After`.
//! - Who is best placed ([`Class`], best first): whitelisted addresses (`trusted`); clients
//!   with a history (`known`: first seen before the overload began, by address or as an
//!   authenticated user, with no bad record and a reputation not below 40); the rest
//!   (`unknown`); and `suspect`: addresses first seen during the overload, or with a bad record
//!   (a DDoS block before, a high error rate, a reputation under 30). An authenticated user
//!   counts as having a history only if that user (a keyed hash of the credential, or the
//!   user-id header) was first seen before the overload: a flood with invented tokens gains
//!   nothing. A call to a tool that takes the upstream
//!   four times its usual time or more moves one class down: it costs the most.
//! - Emergency mode (by hand or automatic) uses the same places: the overload counts as begun
//!   when the emergency began, suspects never wait in the queue, and they may hold at most half
//!   of the places at once, whether or not the upstream is full: the other half is kept for
//!   clients with a history.
//!
//! A response's head ends the request's latency sample. A `text/event-stream` answer to a
//! GET (a client's standing stream) gives its place back at once: a stream held open is not
//! work the upstream is doing. Any other response keeps its place until its body ends (an SSE
//! answer to a POST is a tool still running, measured to its end).
//!
//! No lock is shared by every request: the calm path is atomics only, a refused suspect in a
//! full queue is decided on atomics, and the queue's mutex is taken only by requests that wait
//! (as tokio's semaphore does). One warning is logged when shedding starts and one when it
//! stops ([`episode`]).

pub mod episode;
pub mod known;
pub mod limit;
pub mod queue;

use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;

use crate::clock::Clock;
use crate::decision::BlockReason;
use episode::Episode;
use known::{FirstSeen, ToolCosts};
use limit::{AdaptiveLimit, LimitSettings, Window};
use queue::{Pushed, WaitQueue};

/// Who is admitted first when the upstream is full, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// A whitelisted address.
    Trusted = 0,
    /// A client with a history and a clean record.
    Known = 1,
    /// Neither known nor suspect.
    Unknown = 2,
    /// New since the overload began, or with a bad record.
    Suspect = 3,
}

impl Class {
    /// How many classes there are.
    pub const COUNT: usize = 4;
    /// Every class, best first.
    pub const ALL: [Class; Class::COUNT] =
        [Class::Trusted, Class::Known, Class::Unknown, Class::Suspect];

    /// The class's name in status, metrics and responses.
    pub fn name(self) -> &'static str {
        match self {
            Class::Trusted => "trusted",
            Class::Known => "known",
            Class::Unknown => "unknown",
            Class::Suspect => "suspect",
        }
    }

    fn demoted(self) -> Class {
        match self {
            Class::Trusted => Class::Trusted,
            Class::Known => Class::Unknown,
            Class::Unknown | Class::Suspect => Class::Suspect,
        }
    }
}

/// A reputation at or above this is good enough for `known`.
pub const GOOD_REPUTATION: f64 = 40.0;
/// Below this an address is `suspect`.
pub const LOW_REPUTATION: f64 = 30.0;
/// A tool whose calls take this many times the upstream's usual latency is expensive.
pub const EXPENSIVE_TOOL_FACTOR: f64 = 4.0;

/// What DDoS protection knows of an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// Its first request (Unix ms).
    pub first_seen_ms: u64,
    /// A DDoS block before, or a pattern seen.
    pub bad_record: bool,
}

/// Where admission learns about clients: DDoS protection's table, reputation, emergency mode
/// (wired by the system; see [`history`]).
pub trait ClientHistory: Send + Sync {
    /// What is known of `ip`'s traffic.
    fn standing(&self, ip: IpAddr) -> Option<Standing>;
    /// Its reputation (0 to 100), with IP management on.
    fn reputation(&self, ip: IpAddr) -> Option<f64>;
    /// When emergency mode began (Unix ms), while it is on.
    fn emergency_since_ms(&self) -> Option<u64>;
}

pub mod history;

/// Everything the class is decided from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evidence {
    /// On the whitelist.
    pub whitelisted: bool,
    /// DDoS protection's record of the address.
    pub standing: Option<Standing>,
    /// Its reputation.
    pub reputation: Option<f64>,
    /// When its authenticated user was first seen (Unix ms).
    pub user_first_seen_ms: Option<u64>,
    /// The request calls a tool that is slow for the upstream.
    pub expensive_tool: bool,
}

/// The class of a request during an overload that began at `overload_since_ms`.
pub fn classify(e: &Evidence, overload_since_ms: u64) -> Class {
    if e.whitelisted {
        return Class::Trusted;
    }
    let bad_record = e.standing.is_some_and(|s| s.bad_record)
        || e.reputation.is_some_and(|r| r < LOW_REPUTATION);
    let class = if bad_record {
        Class::Suspect
    } else {
        let before = |first: u64| first != 0 && first < overload_since_ms;
        let address_seen_before = e.standing.is_some_and(|s| before(s.first_seen_ms));
        let user_seen_before = e.user_first_seen_ms.is_some_and(before);
        let good = e.reputation.is_none_or(|r| r >= GOOD_REPUTATION);
        match (address_seen_before || user_seen_before, good, e.standing) {
            (true, true, _) => Class::Known,
            (true, false, _) => Class::Unknown,
            // No record at all (evicted, or DDoS protection does not see this path).
            (false, _, None) => Class::Unknown,
            (false, _, Some(_)) => Class::Suspect,
        }
    };
    if e.expensive_tool {
        class.demoted()
    } else {
        class
    }
}

/// The request asking for a place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applicant<'a> {
    /// Client address.
    pub ip: IpAddr,
    /// The authenticated user, as a key (a keyed hash or the user-id header's text).
    pub user: Option<&'a [u8]>,
    /// The MCP tool it calls.
    pub tool: Option<&'a str>,
    /// On the whitelist.
    pub whitelisted: bool,
}

/// How admission is set up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdmissionSettings {
    /// The limit and how it is learned.
    pub limit: LimitSettings,
    /// Waiters at most.
    pub queue_length: usize,
    /// Longest wait.
    pub queue_wait: Duration,
    /// Users whose first request time is kept.
    pub max_known_users: usize,
}

impl Default for AdmissionSettings {
    fn default() -> Self {
        AdmissionSettings {
            limit: LimitSettings::default(),
            queue_length: 128,
            queue_wait: Duration::from_millis(500),
            max_known_users: 65_536,
        }
    }
}

/// A refusal: the request does not reach the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shed {
    /// Its class.
    pub class: Class,
    /// `queue_full`, `pushed_out`, `queue_timeout`, `emergency_reserve`.
    pub why: &'static str,
}

impl Shed {
    /// The refusal as the layer renders it.
    pub fn reason(&self) -> BlockReason {
        BlockReason::Overloaded {
            class: self.class.name(),
            why: self.why,
            retry_after_secs: 1,
        }
    }
}

/// A window of samples being gathered (atomics, reset when the window ends).
#[derive(Debug, Default)]
struct WindowCounters {
    start_ns: AtomicU64,
    samples: AtomicU64,
    latency_sum_ns: AtomicU64,
    low_load_samples: AtomicU64,
    low_load_sum_ns: AtomicU64,
    peak_in_flight: AtomicU32,
    congested: AtomicBool,
}

/// A window ends after this long, once it holds a few samples (or after a second).
const WINDOW_NS: u64 = 100_000_000;
const WINDOW_MAX_NS: u64 = 1_000_000_000;
const WINDOW_MIN_SAMPLES: u64 = 4;

type Waiter = tokio::sync::oneshot::Sender<()>;

/// The admission controller: one per upstream.
pub struct UpstreamAdmission {
    settings: AdmissionSettings,
    limit: AtomicU32,
    in_flight: AtomicU32,
    waiting: AtomicU32,
    suspects_in_flight: AtomicU32,
    queue: Mutex<WaitQueue<Waiter>>,
    limiter: Mutex<AdaptiveLimit>,
    low_load_threshold: u32,
    baseline_ns: AtomicU64,
    window: WindowCounters,
    episode: Episode,
    admitted: AtomicU64,
    queued: AtomicU64,
    shed: [AtomicU64; Class::COUNT],
    users: FirstSeen,
    tools: ToolCosts,
    hasher: std::collections::hash_map::RandomState,
    history: Option<Arc<dyn ClientHistory>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for UpstreamAdmission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamAdmission")
            .field("limit", &self.limit)
            .field("in_flight", &self.in_flight)
            .field("waiting", &self.waiting)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a panic elsewhere while it was held; the queue and the limiter
    // are plain values, still whole.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// UpstreamAdmission as status and `/metrics` show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AdmissionView {
    /// Requests the upstream may have in flight now.
    pub limit: u32,
    /// Whether the limit is learned (or fixed by configuration).
    pub learned: bool,
    /// Requests at the upstream now.
    pub in_flight: u32,
    /// Requests waiting for a place.
    pub queued: u32,
    /// The upstream's latency at low load (ms; null before the first sample).
    pub baseline_latency_ms: Option<f64>,
    /// Whether requests are being refused now.
    pub shedding: bool,
    /// When the current overload began (Unix ms), if the upstream is full.
    pub overloaded_since_ms: Option<u64>,
    /// Requests admitted since start.
    pub admitted_total: u64,
    /// Requests that had to wait since start.
    pub queued_total: u64,
    /// Requests refused since start, by class.
    pub shed_total: BTreeMap<&'static str, u64>,
}

impl UpstreamAdmission {
    /// An admission controller learning from `clock`'s time.
    pub fn new(
        settings: AdmissionSettings,
        history: Option<Arc<dyn ClientHistory>>,
        clock: Arc<dyn Clock>,
    ) -> Arc<Self> {
        let limiter = AdaptiveLimit::new(settings.limit);
        Arc::new(UpstreamAdmission {
            limit: AtomicU32::new(limiter.limit()),
            low_load_threshold: limiter.low_load_threshold(),
            limiter: Mutex::new(limiter),
            in_flight: AtomicU32::new(0),
            waiting: AtomicU32::new(0),
            suspects_in_flight: AtomicU32::new(0),
            queue: Mutex::new(WaitQueue::new(settings.queue_length)),
            baseline_ns: AtomicU64::new(0),
            window: WindowCounters::default(),
            episode: Episode::default(),
            admitted: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            shed: std::array::from_fn(|_| AtomicU64::new(0)),
            users: FirstSeen::new(settings.max_known_users),
            tools: ToolCosts::default(),
            hasher: std::collections::hash_map::RandomState::new(),
            history,
            clock,
            settings,
        })
    }

    /// The limit now.
    pub fn limit(&self) -> u32 {
        self.limit.load(Ordering::Relaxed)
    }

    /// Requests at the upstream now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Requests waiting now.
    pub fn queued(&self) -> u32 {
        self.waiting.load(Ordering::Relaxed)
    }

    /// The figures for status and metrics.
    pub fn view(&self) -> AdmissionView {
        let baseline = self.baseline_ns.load(Ordering::Relaxed);
        AdmissionView {
            limit: self.limit(),
            learned: self.settings.limit.fixed.is_none(),
            in_flight: self.in_flight(),
            queued: self.queued(),
            baseline_latency_ms: (baseline > 0).then(|| baseline as f64 / 1e6),
            shedding: self.episode.shedding(),
            overloaded_since_ms: self.episode.congested_since_ms(),
            admitted_total: self.admitted.load(Ordering::Relaxed),
            queued_total: self.queued.load(Ordering::Relaxed),
            shed_total: Class::ALL
                .iter()
                .map(|c| (c.name(), self.shed[*c as usize].load(Ordering::Relaxed)))
                .collect(),
        }
    }

    /// Takes a place if one is free.
    fn try_take(&self) -> Option<u32> {
        let limit = self.limit.load(Ordering::Acquire);
        let mut current = self.in_flight.load(Ordering::Acquire);
        loop {
            if current >= limit {
                return None;
            }
            match self.in_flight.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(current + 1),
                Err(now) => current = now,
            }
        }
    }

    fn permit(
        self: &Arc<Self>,
        class: Option<Class>,
        in_flight: u32,
        tool: Option<u64>,
    ) -> UpstreamPermit {
        self.admitted.fetch_add(1, Ordering::Relaxed);
        self.window
            .peak_in_flight
            .fetch_max(in_flight, Ordering::Relaxed);
        if class == Some(Class::Suspect) {
            self.suspects_in_flight.fetch_add(1, Ordering::Relaxed);
        }
        UpstreamPermit {
            admission: self.clone(),
            started_ns: self.clock.monotonic_ns(),
            low_load: in_flight <= self.low_load_threshold,
            tool,
            suspect: class == Some(Class::Suspect),
            sampled: false,
        }
    }

    fn hash(&self, bytes: &[u8]) -> u64 {
        self.hasher.hash_one(bytes)
    }

    /// The class of `applicant` in an overload that began at `since_ms`.
    fn class_of(
        &self,
        applicant: &Applicant<'_>,
        user_first_seen_ms: Option<u64>,
        tool: Option<u64>,
        since_ms: u64,
    ) -> Class {
        let history = self.history.as_deref();
        let baseline = self.baseline_ns.load(Ordering::Relaxed) as f64;
        let expensive_tool = baseline > 0.0
            && tool
                .and_then(|t| self.tools.average_ns(t))
                .is_some_and(|avg| avg as f64 >= EXPENSIVE_TOOL_FACTOR * baseline);
        classify(
            &Evidence {
                whitelisted: applicant.whitelisted,
                standing: history.and_then(|h| h.standing(applicant.ip)),
                reputation: history.and_then(|h| h.reputation(applicant.ip)),
                user_first_seen_ms,
                expensive_tool,
            },
            since_ms,
        )
    }

    fn refuse(&self, class: Class, why: &'static str, now_ms: u64) -> Shed {
        self.shed[class as usize].fetch_add(1, Ordering::Relaxed);
        self.window.congested.store(true, Ordering::Relaxed);
        if self.episode.note_shed(now_ms) {
            tracing::warn!(
                target: "security.ddos_protection",
                limit = self.limit(),
                in_flight = self.in_flight(),
                queued = self.queued(),
                "Upstream overloaded: shedding requests beyond {} in flight (clients with a history are served first)",
                self.limit()
            );
        }
        Shed { class, why }
    }

    /// Asks for a place at the upstream: at once when one is free, else after waiting in the
    /// queue; a refusal otherwise.
    pub async fn acquire(
        self: &Arc<Self>,
        applicant: Applicant<'_>,
    ) -> Result<UpstreamPermit, Shed> {
        let now_ms = self.clock.unix_ms();
        let now_secs = (now_ms / 1000) as u32;
        // Every authenticated user's first request is remembered, calm or not: it is what
        // tells a user with a history from one invented during a flood.
        let user_first_seen_ms = applicant
            .user
            .map(|u| u64::from(self.users.note(self.hash(u), now_secs)) * 1000);
        let tool = applicant.tool.map(|t| self.hash(t.as_bytes()));
        let emergency_since = self.history.as_ref().and_then(|h| h.emergency_since_ms());
        let mut class = None;
        if let Some(since) = emergency_since {
            // In an emergency every request is classed: suspects hold at most half the places.
            let since = self
                .episode
                .congested_since_ms()
                .map_or(since, |c| c.min(since));
            let c = self.class_of(&applicant, user_first_seen_ms, tool, since);
            if c == Class::Suspect
                && self.suspects_in_flight.load(Ordering::Relaxed) >= self.limit() / 2
            {
                return Err(self.refuse(c, "emergency_reserve", now_ms));
            }
            class = Some(c);
        }
        if self.waiting.load(Ordering::Acquire) == 0 {
            if let Some(n) = self.try_take() {
                return Ok(self.permit(class, n, tool));
            }
        }
        // The upstream is full, or others wait: class the request and queue it.
        self.episode.note_congested(now_ms);
        self.window.congested.store(true, Ordering::Relaxed);
        let since = self
            .episode
            .congested_since_ms()
            .unwrap_or(now_ms)
            .min(emergency_since.unwrap_or(u64::MAX));
        let class =
            class.unwrap_or_else(|| self.class_of(&applicant, user_first_seen_ms, tool, since));
        if emergency_since.is_some() && class == Class::Suspect {
            // In an emergency a suspect takes a free place or none: it never waits.
            return Err(self.refuse(class, "emergency_reserve", now_ms));
        }
        // The flood's usual case, decided without the lock: nobody is worse placed than a
        // suspect, so a full queue has no room for one.
        if class == Class::Suspect
            && self.waiting.load(Ordering::Relaxed) as usize >= self.settings.queue_length
        {
            return Err(self.refuse(class, "queue_full", now_ms));
        }
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let ticket = {
            let mut queue = lock(&self.queue);
            if queue.is_empty() {
                // A place may have been given back since the first try.
                if let Some(n) = self.try_take() {
                    drop(queue);
                    return Ok(self.permit(Some(class), n, tool));
                }
            }
            if queue.len() >= self.settings.queue_length {
                // Waiters whose clients went away hold no place worth keeping.
                queue.retain(|waiter| !waiter.is_closed());
            }
            let pushed = queue.push(class, tx);
            self.waiting.store(queue.len() as u32, Ordering::Release);
            match pushed {
                Pushed::Full(_) => {
                    drop(queue);
                    return Err(self.refuse(class, "queue_full", now_ms));
                }
                Pushed::Queued(ticket) => ticket,
                Pushed::QueuedPushingOut(ticket, _, out) => {
                    // Dropping its sender tells the pushed-out waiter; it counts its refusal
                    // as `pushed_out` itself.
                    drop(out);
                    ticket
                }
            }
        };
        self.queued.fetch_add(1, Ordering::Relaxed);
        // A place may have been given back while the request was being queued.
        self.hand_over();
        match tokio::time::timeout(self.settings.queue_wait, &mut rx).await {
            Ok(Ok(())) => Ok(self.permit_handed_over(class, tool)),
            Ok(Err(_)) => Err(self.refuse(class, "pushed_out", self.clock.unix_ms())),
            Err(_) => {
                let removed = {
                    let mut queue = lock(&self.queue);
                    let removed = queue.remove(class, ticket).is_some();
                    self.waiting.store(queue.len() as u32, Ordering::Release);
                    removed
                };
                if removed {
                    return Err(self.refuse(class, "queue_timeout", self.clock.unix_ms()));
                }
                // Handed a place (or pushed out) just as the wait ended: the answer is there.
                match rx.try_recv() {
                    Ok(()) => Ok(self.permit_handed_over(class, tool)),
                    Err(_) => Err(self.refuse(class, "pushed_out", self.clock.unix_ms())),
                }
            }
        }
    }

    /// A permit for a waiter handed a place (already counted in flight by [`Self::hand_over`]).
    fn permit_handed_over(self: &Arc<Self>, class: Class, tool: Option<u64>) -> UpstreamPermit {
        let n = self.in_flight.load(Ordering::Relaxed);
        self.permit(Some(class), n, tool)
    }

    /// Gives free places to waiters, best first.
    fn hand_over(&self) {
        if self.waiting.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut queue = lock(&self.queue);
        while !queue.is_empty() {
            if self.try_take().is_none() {
                break;
            }
            match queue.pop() {
                Some((_, waiter)) => {
                    if waiter.send(()).is_err() {
                        // It left (its client went away): the place is free again.
                        self.in_flight.fetch_sub(1, Ordering::AcqRel);
                    }
                }
                None => {
                    self.in_flight.fetch_sub(1, Ordering::AcqRel);
                    break;
                }
            }
        }
        self.waiting.store(queue.len() as u32, Ordering::Release);
    }

    fn release(&self, suspect: bool) {
        if suspect {
            self.suspects_in_flight.fetch_sub(1, Ordering::Relaxed);
        }
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.hand_over();
    }

    fn sample(&self, latency_ns: u64, low_load: bool, tool: Option<u64>) {
        let w = &self.window;
        w.samples.fetch_add(1, Ordering::Relaxed);
        w.latency_sum_ns.fetch_add(latency_ns, Ordering::Relaxed);
        if low_load {
            w.low_load_samples.fetch_add(1, Ordering::Relaxed);
            w.low_load_sum_ns.fetch_add(latency_ns, Ordering::Relaxed);
        }
        if let Some(tool) = tool {
            self.tools
                .record(tool, latency_ns, (self.clock.unix_ms() / 1000) as u32);
        }
        self.maybe_end_window(self.clock.monotonic_ns());
    }

    fn maybe_end_window(&self, now_ns: u64) {
        let w = &self.window;
        let start = w.start_ns.load(Ordering::Acquire);
        let elapsed = now_ns.saturating_sub(start);
        if elapsed < WINDOW_NS
            || (elapsed < WINDOW_MAX_NS && w.samples.load(Ordering::Relaxed) < WINDOW_MIN_SAMPLES)
        {
            return;
        }
        if w.start_ns
            .compare_exchange(start, now_ns, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return; // another request is ending this window
        }
        let window = Window {
            samples: w.samples.swap(0, Ordering::AcqRel),
            latency_sum_ns: w.latency_sum_ns.swap(0, Ordering::AcqRel),
            low_load_samples: w.low_load_samples.swap(0, Ordering::AcqRel),
            low_load_sum_ns: w.low_load_sum_ns.swap(0, Ordering::AcqRel),
            peak_in_flight: w
                .peak_in_flight
                .swap(self.in_flight.load(Ordering::Relaxed), Ordering::AcqRel),
            congested: w.congested.swap(false, Ordering::AcqRel),
        };
        let (limit, baseline) = {
            let mut limiter = lock(&self.limiter);
            let limit = limiter.end_window(&window);
            (limit, limiter.baseline_ns())
        };
        self.baseline_ns.store(baseline as u64, Ordering::Relaxed);
        let before = self.limit.swap(limit, Ordering::AcqRel);
        if limit > before {
            self.hand_over();
        }
        self.tick();
    }

    /// Ends an overload that has been quiet long enough (logs when shedding stops). Called as
    /// windows end and once a second by the system's timer.
    pub fn tick(&self) {
        if let Some(stopped) = self.episode.tick(self.clock.unix_ms()) {
            tracing::warn!(
                target: "security.ddos_protection",
                refused = stopped.shed,
                limit = self.limit(),
                "Upstream load back under the limit: shedding stopped after {:.1} s, {} requests refused",
                stopped.lasted_ms as f64 / 1000.0,
                stopped.shed
            );
        }
    }
}

/// A place at the upstream. Dropping it gives the place back.
#[derive(Debug)]
pub struct UpstreamPermit {
    admission: Arc<UpstreamAdmission>,
    started_ns: u64,
    low_load: bool,
    tool: Option<u64>,
    suspect: bool,
    sampled: bool,
}

impl UpstreamPermit {
    /// The upstream answered (the response head, or the end of a response measured to its
    /// end): the time since admission is a latency sample. Only the first call counts.
    pub fn answered(&mut self) {
        if self.sampled {
            return;
        }
        self.sampled = true;
        let latency = self
            .admission
            .clock
            .monotonic_ns()
            .saturating_sub(self.started_ns);
        self.admission.sample(latency, self.low_load, self.tool);
    }

    /// Gives the place back without a sample (a standing stream, or no answer).
    pub fn forget_sample(&mut self) {
        self.sampled = true;
    }
}

impl Drop for UpstreamPermit {
    fn drop(&mut self) {
        self.admission.release(self.suspect);
    }
}

#[cfg(test)]
mod tests;
