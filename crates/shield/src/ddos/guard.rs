//! The DDoS guard: 429 `ddos_blocked` with `Retry-After` for an address over its per-second or
//! per-minute rate, for a block that doubles with each offence; pattern analysis on the way
//! (reported as events); and the automatic part of emergency mode, ticked once a second by
//! whichever request first sees the second change (no background task, so the same code runs
//! on a hand-moved clock in tests).

use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::emergency::{EmergencyController, Transition};
use super::patterns::{Pattern, SurgeDetector};
use super::table::{Tightening, TrafficTable};
use super::tracker::{IpTraffic, Judgement, Thresholds};
use crate::clock::Clock;
use crate::config::DdosConfig;
use crate::decision::{BlockReason, Verdict};
use crate::events::{EventBus, SecurityEvent};
use crate::ip::reputation::Reputation;

/// Below this reputation score an address counts as suspect in emergency mode.
pub const LOW_REPUTATION: f64 = 30.0;
use crate::pipeline::{Check, Guard, Outcome};
use crate::request::RequestFacts;

/// Per-address rate limits against floods, pattern analysis and automatic emergency mode.
pub struct DdosGuard {
    table: TrafficTable,
    /// The configured limits and emergency factor, swapped by [`DdosGuard::reconfigure`].
    settings: arc_swap::ArcSwap<(Thresholds, f64)>,
    emergency: Arc<AtomicBool>,
    emergency_since_ms: AtomicU64,
    controller: Mutex<EmergencyController>,
    second_start_ms: AtomicU64,
    this_second: AtomicU64,
    surges: Mutex<SurgeDetector>,
    reputation: Option<Arc<Reputation>>,
    bus: Arc<EventBus>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for DdosGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DdosGuard")
            .field("limits", &self.settings.load().0)
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

/// Emergency mode as the status reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmergencyView {
    /// Requests per second (all clients) that start it.
    pub threshold_rps: f64,
    /// The learned calm rate.
    pub baseline_rps: f64,
    /// Whether a distributed flood is under way.
    pub distributed_flood: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere while it was held; the detectors' state is
    // plain counters, still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The limits and emergency factor `[ddos]` sets.
fn settings_of(config: &DdosConfig) -> (Thresholds, f64) {
    (
        Thresholds {
            per_second: config.requests_per_second_threshold as f64,
            per_minute: config.requests_per_minute_threshold as f64,
            block_ms: config.block_duration.saturating_mul(1000),
            max_block_ms: config.max_block_duration.saturating_mul(1000),
        },
        config.emergency_factor,
    )
}

/// Which endpoint (path and tool) a request is for, as a key.
fn endpoint_key(facts: &RequestFacts) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    facts.path().hash(&mut h);
    facts.mcp_tool().hash(&mut h);
    h.finish()
}

impl DdosGuard {
    /// A guard with the limits of `config`; `emergency` is the system's emergency switch.
    pub fn new(
        config: &DdosConfig,
        emergency: Arc<AtomicBool>,
        bus: Arc<EventBus>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        DdosGuard {
            table: TrafficTable::new(usize::try_from(config.max_tracked_ips).unwrap_or(usize::MAX)),
            settings: arc_swap::ArcSwap::from_pointee(settings_of(config)),
            emergency,
            emergency_since_ms: AtomicU64::new(0),
            controller: Mutex::new(EmergencyController::new(
                config.emergency_rps_threshold,
                config.emergency_cooldown,
            )),
            second_start_ms: AtomicU64::new(0),
            this_second: AtomicU64::new(0),
            surges: Mutex::new(SurgeDetector::default()),
            reputation: None,
            bus,
            clock,
        }
    }

    /// Takes new thresholds, block durations and emergency settings (a configuration reload);
    /// the traffic seen, blocks in force and the learned calm rate stay.
    pub fn reconfigure(&self, config: &DdosConfig) {
        self.settings.store(Arc::new(settings_of(config)));
        lock(&self.controller)
            .reconfigure(config.emergency_rps_threshold, config.emergency_cooldown);
    }

    /// Lets emergency mode give addresses of low reputation the tightest limits.
    pub fn with_reputation(mut self, reputation: Option<Arc<Reputation>>) -> Self {
        self.reputation = reputation;
        self
    }

    /// What is known of an address's recent traffic.
    pub fn traffic(&self, ip: IpAddr) -> Option<IpTraffic> {
        self.table.get(ip.to_canonical())
    }

    /// Addresses tracked.
    pub fn tracked(&self) -> usize {
        self.table.len()
    }

    /// The limits in force now (tightened in emergency mode).
    pub fn limits(&self) -> Thresholds {
        let settings = self.settings.load();
        if self.emergency.load(Ordering::Relaxed) {
            settings.0.scaled(settings.1)
        } else {
            settings.0
        }
    }

    /// Emergency mode's figures.
    pub fn emergency_view(&self) -> EmergencyView {
        let controller = lock(&self.controller);
        EmergencyView {
            threshold_rps: controller.threshold(),
            baseline_rps: controller.baseline(),
            distributed_flood: lock(&self.surges).any_surge(self.clock.unix_ms()),
        }
    }

    /// When emergency mode began (Unix ms), while it is on.
    pub fn emergency_since_ms(&self) -> Option<u64> {
        self.emergency
            .load(Ordering::Relaxed)
            .then(|| self.emergency_since_ms.load(Ordering::Relaxed))
    }

    /// Notes that emergency mode was switched by hand (new addresses get the tightest limits
    /// from now on).
    pub fn emergency_switched(&self, enabled: bool) {
        if enabled {
            self.emergency_since_ms
                .store(self.clock.unix_ms(), Ordering::Relaxed);
        }
    }

    /// Once per second of the clock: feed the controller the last second's count.
    fn tick(&self, now_ms: u64) {
        let start = self.second_start_ms.load(Ordering::Acquire);
        if now_ms < start.saturating_add(1000) {
            return;
        }
        let new_start = now_ms - now_ms % 1000;
        if self
            .second_start_ms
            .compare_exchange(start, new_start, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return; // another request is ticking this second
        }
        let count = self.this_second.swap(0, Ordering::AcqRel);
        if start == 0 {
            return; // the first request: nothing to report yet
        }
        let surge = lock(&self.surges).any_surge(now_ms);
        let mut controller = lock(&self.controller);
        // Seconds with no request at all are quiet seconds too (bounded: enough to finish
        // any cooldown).
        let idle = ((new_start - start) / 1000).saturating_sub(1).min(100_000);
        let mut transitions = Vec::new();
        transitions.extend(controller.second(count, surge));
        for _ in 0..idle {
            transitions.extend(controller.second(0, false));
        }
        drop(controller);
        for transition in transitions {
            let enabled = transition == Transition::Enter;
            self.emergency.store(enabled, Ordering::Release);
            if enabled {
                self.emergency_since_ms.store(now_ms, Ordering::Relaxed);
            }
            self.bus.publish(SecurityEvent::EmergencyMode {
                enabled,
                by: "automatic",
            });
        }
    }

    fn report(&self, ip: IpAddr, bits: u8, now_ms: u64) {
        for pattern in Pattern::from_bits(bits) {
            let (per_second, per_minute) = self.traffic(ip).map_or((0.0, 0.0), |t| t.rates(now_ms));
            self.bus.publish(SecurityEvent::Pattern {
                ip: Some(ip),
                pattern: pattern.name(),
                detail: format!("{per_second:.0} requests in the last second, {per_minute:.0} in the last minute"),
            });
        }
    }
}

impl Guard for DdosGuard {
    fn name(&self) -> &'static str {
        "ddos_protection"
    }

    fn check<'a>(&'a self, facts: &'a RequestFacts) -> Check<'a> {
        let now = self.clock.unix_ms();
        self.tick(now);
        self.this_second.fetch_add(1, Ordering::Relaxed);
        let emergency = self.emergency.load(Ordering::Relaxed);
        let limits = self.limits();
        // In emergency mode, suspect addresses (first seen since it began, with a bad record,
        // or of low reputation) get the tightest limits, and tool calls (what costs an MCP
        // server most) weigh double, so they are limited first. Reputation is asked only in
        // an emergency, when the answer matters.
        let tight = emergency.then(|| Tightening {
            since_ms: self.emergency_since_ms.load(Ordering::Relaxed),
            limits: limits.scaled(self.settings.load().1),
            low_reputation: self
                .reputation
                .as_ref()
                .is_some_and(|r| r.score(facts.client_ip) < LOW_REPUTATION),
        });
        let weight = if emergency && facts.json_rpc.iter().any(|m| m.tool().is_some()) {
            2
        } else {
            1
        };
        let endpoint = endpoint_key(facts);
        let (judgement, patterns) =
            self.table
                .judge_and_note(facts.client_ip, now, &limits, tight, weight, endpoint);
        if patterns != 0 {
            self.report(facts.client_ip, patterns, now);
        }
        if let Some(surge) = lock(&self.surges).record(endpoint, facts.client_ip, now) {
            self.bus.publish(SecurityEvent::Pattern {
                ip: None,
                pattern: "distributed_flood",
                detail: format!(
                    "{} requests from about {:.0} subnets to {} in {} s",
                    surge.requests,
                    surge.subnets,
                    facts.path(),
                    super::patterns::SURGE_WINDOW_MS / 1000
                ),
            });
        }
        let verdict = match judgement {
            Judgement::Pass => Verdict::pass(),
            Judgement::Blocked {
                retry_after_ms,
                first,
                per_second,
            } => Verdict::Block(BlockReason::Ddos {
                detail: if per_second {
                    "High request rate".into()
                } else {
                    "High request rate (per minute)".into()
                },
                retry_after_secs: retry_after_ms.div_ceil(1000).max(1),
                first,
            }),
        };
        Check::Ready(Ok(verdict))
    }

    fn observe(&self, facts: &RequestFacts, outcome: &Outcome) {
        // Only the application's errors count; our own refusals are not the client's errors.
        if outcome.blocked {
            return;
        }
        let now = self.clock.unix_ms();
        let patterns = self
            .table
            .note_response(facts.client_ip, now, outcome.status);
        if patterns != 0 {
            self.report(facts.client_ip, patterns, now);
        }
    }
}
