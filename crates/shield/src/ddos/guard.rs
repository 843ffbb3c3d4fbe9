//! The DDoS guard: 429 `ddos_blocked` with `Retry-After` for an address over its per-second or
//! per-minute rate, for a block that doubles with each offence.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::table::TrafficTable;
use super::tracker::{IpTraffic, Judgement, Thresholds};
use crate::clock::Clock;
use crate::config::DdosConfig;
use crate::decision::{BlockReason, Verdict};
use crate::pipeline::{Check, Guard};
use crate::request::RequestFacts;

/// Per-address rate limits against floods.
pub struct DdosGuard {
    table: TrafficTable,
    limits: Thresholds,
    emergency_factor: f64,
    emergency: Arc<AtomicBool>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for DdosGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DdosGuard")
            .field("limits", &self.limits)
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl DdosGuard {
    /// A guard with the limits of `config`; `emergency` is the system's emergency switch.
    pub fn new(config: &DdosConfig, emergency: Arc<AtomicBool>, clock: Arc<dyn Clock>) -> Self {
        DdosGuard {
            table: TrafficTable::new(usize::try_from(config.max_tracked_ips).unwrap_or(usize::MAX)),
            limits: Thresholds {
                per_second: config.requests_per_second_threshold as f64,
                per_minute: config.requests_per_minute_threshold as f64,
                block_ms: config.block_duration.saturating_mul(1000),
                max_block_ms: config.max_block_duration.saturating_mul(1000),
            },
            emergency_factor: config.emergency_factor,
            emergency,
            clock,
        }
    }

    /// What is known of an address's recent traffic.
    pub fn traffic(&self, ip: std::net::IpAddr) -> Option<IpTraffic> {
        self.table.get(ip.to_canonical())
    }

    /// Addresses tracked.
    pub fn tracked(&self) -> usize {
        self.table.len()
    }

    /// The limits in force now (tightened in emergency mode).
    pub fn limits(&self) -> Thresholds {
        if self.emergency.load(Ordering::Relaxed) {
            self.limits.scaled(self.emergency_factor)
        } else {
            self.limits
        }
    }
}

impl Guard for DdosGuard {
    fn name(&self) -> &'static str {
        "ddos_protection"
    }

    fn check<'a>(&'a self, facts: &'a RequestFacts) -> Check<'a> {
        let limits = self.limits();
        let verdict = match self
            .table
            .judge(facts.client_ip, self.clock.unix_ms(), &limits)
        {
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
}
