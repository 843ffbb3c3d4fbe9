//! [`SecurityEvent`]s and the bus that carries them to statistics, logs and any subscriber.
//!
//! Guards never call each other: they publish what they saw here, and whoever cares (the
//! statistics, the log, later the reputation tracker and Redis pub/sub) subscribes. Synchronous
//! sinks run inline, in publish order, so statistics are exact the moment a response leaves;
//! asynchronous subscribers get a broadcast channel that drops the oldest events when they fall
//! behind rather than slowing the request path.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ipnet::IpNet;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::decision::BlockReason;
use crate::ip::ListKind;
use crate::mcp::McpViolation;
use crate::threat::ThreatType;

/// Something the security layer did or saw.
#[derive(Debug, Clone, PartialEq)]
pub enum SecurityEvent {
    /// A request was refused.
    Blocked {
        /// The client.
        ip: IpAddr,
        /// Why.
        reason: BlockReason,
        /// The request path.
        path: String,
        /// When (Unix ms).
        at_ms: u64,
    },
    /// A list entry was added.
    ListAdded {
        /// Which list.
        list: ListKind,
        /// The network.
        network: IpNet,
        /// Why.
        reason: String,
        /// When it expires (Unix ms).
        expires_at_ms: Option<u64>,
    },
    /// A list entry was removed.
    ListRemoved {
        /// Which list.
        list: ListKind,
        /// The network.
        network: IpNet,
    },
    /// Emergency mode was switched.
    EmergencyMode {
        /// On or off.
        enabled: bool,
        /// What switched it (`admin`, `automatic`).
        by: &'static str,
    },
    /// DDoS pattern analysis found something (reported, not by itself blocked).
    Pattern {
        /// The address, or `None` for a pattern across addresses (a distributed flood).
        ip: Option<IpAddr>,
        /// `endpoint_hammering`, `burst_above_baseline`, `high_error_rate`,
        /// `distributed_flood`.
        pattern: &'static str,
        /// What was seen.
        detail: String,
    },
    /// Threat detection found something it did not refuse: findings below the block
    /// severity, or anything in `monitor` mode.
    ThreatObserved {
        /// The client.
        ip: IpAddr,
        /// The request path.
        path: String,
        /// Whether `block` mode would have refused it (monitor mode).
        would_block: bool,
        /// What was found, strongest first.
        indicators: Vec<crate::threat::ThreatIndicator>,
        /// The same with the tool and argument they were in, as refusals carry them.
        findings: Vec<crate::decision::Finding>,
    },
    /// Something found in what the server sent back on an MCP path: a poisoned definition
    /// (`tool_poisoning`), a changed or added tool (`tool_changed`).
    ToolFinding(crate::tools::ToolFinding),
    /// Something found in what a tool returned (a secret, personal data, an injected
    /// instruction, an oversized result) or in a call's arguments (a secret).
    ResultFinding(crate::dlp::ResultFinding),
    /// A guard failed internally.
    GuardError {
        /// Which guard.
        guard: &'static str,
        /// What went wrong.
        error: String,
    },
}

/// Something that handles events inline.
pub trait EventSink: Send + Sync + 'static {
    /// Called for every event, on the publishing thread: keep it short.
    fn handle(&self, event: &SecurityEvent);
}

/// Publishes events to the inline sinks and to async subscribers.
pub struct EventBus {
    sinks: Vec<Arc<dyn EventSink>>,
    channel: broadcast::Sender<Arc<SecurityEvent>>,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("sinks", &self.sinks.len())
            .field("subscribers", &self.channel.receiver_count())
            .finish()
    }
}

impl EventBus {
    /// A bus with inline sinks; async subscribers may lag by at most `capacity` events.
    pub fn new(sinks: Vec<Arc<dyn EventSink>>, capacity: usize) -> Self {
        let (channel, _) = broadcast::channel(capacity.max(1));
        EventBus { sinks, channel }
    }

    /// Hands the event to every sink, then to subscribers if there are any.
    pub fn publish(&self, event: SecurityEvent) {
        for sink in &self.sinks {
            sink.handle(&event);
        }
        if self.channel.receiver_count() > 0 {
            // An error only means every subscriber left in the meantime.
            let _ = self.channel.send(Arc::new(event));
        }
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<SecurityEvent>> {
        self.channel.subscribe()
    }
}

/// The seed's counters, updated without locks.
#[derive(Debug, Default)]
pub struct Statistics {
    total_requests: AtomicU64,
    blocked_requests: AtomicU64,
    rate_limited: AtomicU64,
    ddos_blocked: AtomicU64,
    ip_blocked: AtomicU64,
    threat_detected: AtomicU64,
    payload_too_large: AtomicU64,
    overloaded: AtomicU64,
    whitelisted: AtomicU64,
    guard_errors: AtomicU64,
    patterns_detected: AtomicU64,
    /// Threat types in refused requests, by [`ThreatType::ALL`]'s order; custom types last.
    threats_blocked: [AtomicU64; THREAT_SLOTS],
    /// Threat types reported without refusing (below the block severity, monitor mode).
    threats_observed: [AtomicU64; THREAT_SLOTS],
    /// Requests refused by the MCP checks, by [`McpViolation::KINDS`]' order.
    mcp_violations: [AtomicU64; McpViolation::KINDS.len()],
    /// Findings in tool results and call arguments, by [`RESULT_TYPES`] and
    /// [`crate::dlp::Applied::ALL`].
    result_findings: [[AtomicU64; 5]; 4],
}

/// The threat types of findings in tool results, in the order of their counters.
pub const RESULT_TYPES: [&str; 4] = [
    "secret",
    "personal_data",
    "prompt_injection",
    "output_too_large",
];

/// A slot per built-in threat type, and one for all custom ones.
const THREAT_SLOTS: usize = ThreatType::ALL.len() + 1;

/// The counter slot of a threat type's name (custom types share the last).
fn threat_slot(name: &str) -> usize {
    ThreatType::ALL
        .iter()
        .position(|t| t.as_str() == name)
        .unwrap_or(THREAT_SLOTS - 1)
}

/// Threat indicators counted by type (`mcp_shield_threats_total` on `/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreatCount {
    /// The type's name (`sql_injection`), or `custom` for every custom pattern.
    pub threat_type: &'static str,
    /// In requests that were refused.
    pub blocked: u64,
    /// Reported without refusing: below the block severity, or in monitor mode.
    pub observed: u64,
}

/// A copy of the counters at one moment; serializes with the seed's keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatisticsSnapshot {
    pub total_requests: u64,
    pub blocked_requests: u64,
    pub rate_limited: u64,
    pub ddos_blocked: u64,
    pub ip_blocked: u64,
    pub threat_detected: u64,
    /// Bodies refused for exceeding the inspection limit.
    pub payload_too_large: u64,
    /// Requests refused because the upstream was at capacity (503 overloaded).
    pub overloaded: u64,
    /// Requests from whitelisted clients (they skipped every guard).
    pub whitelisted: u64,
    /// Internal guard failures (handled by the fail mode).
    pub guard_errors: u64,
    /// DDoS patterns found (each address and pattern once, each surge once).
    pub patterns_detected: u64,
}

impl Statistics {
    /// Counts one request that reached the guards.
    pub fn record_request(&self) {
        self.total_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request from a whitelisted client.
    pub fn record_whitelisted(&self) {
        self.whitelisted.fetch_add(1, Ordering::Relaxed);
    }

    /// Threat indicators by type, every built-in type and `custom`, zeros included.
    pub fn threat_counts(&self) -> Vec<ThreatCount> {
        let names = ThreatType::built_in_names().chain(std::iter::once("custom"));
        names
            .zip(self.threats_blocked.iter().zip(&self.threats_observed))
            .map(|(threat_type, (blocked, observed))| ThreatCount {
                threat_type,
                blocked: blocked.load(Ordering::Relaxed),
                observed: observed.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Findings in tool results and call arguments by type and action, zeros included.
    pub fn result_finding_counts(&self) -> Vec<(&'static str, &'static str, u64)> {
        let mut out = Vec::new();
        for (t, row) in RESULT_TYPES.iter().zip(&self.result_findings) {
            for (a, count) in crate::dlp::Applied::ALL.iter().zip(row) {
                out.push((*t, a.as_str(), count.load(Ordering::Relaxed)));
            }
        }
        out
    }

    /// Requests refused by the MCP protocol checks, by kind, zeros included.
    pub fn mcp_violation_counts(&self) -> Vec<(&'static str, u64)> {
        McpViolation::KINDS
            .iter()
            .zip(&self.mcp_violations)
            .map(|(kind, count)| (*kind, count.load(Ordering::Relaxed)))
            .collect()
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatisticsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatisticsSnapshot {
            total_requests: get(&self.total_requests),
            blocked_requests: get(&self.blocked_requests),
            rate_limited: get(&self.rate_limited),
            ddos_blocked: get(&self.ddos_blocked),
            ip_blocked: get(&self.ip_blocked),
            threat_detected: get(&self.threat_detected),
            payload_too_large: get(&self.payload_too_large),
            overloaded: get(&self.overloaded),
            whitelisted: get(&self.whitelisted),
            guard_errors: get(&self.guard_errors),
            patterns_detected: get(&self.patterns_detected),
        }
    }
}

impl EventSink for Statistics {
    fn handle(&self, event: &SecurityEvent) {
        match event {
            SecurityEvent::Blocked { reason, .. } => {
                self.blocked_requests.fetch_add(1, Ordering::Relaxed);
                let counter = match reason {
                    BlockReason::RateLimited { .. } => Some(&self.rate_limited),
                    BlockReason::Ddos { .. } => Some(&self.ddos_blocked),
                    BlockReason::IpBlocked { .. } => Some(&self.ip_blocked),
                    BlockReason::Threat { .. } => Some(&self.threat_detected),
                    BlockReason::PayloadTooLarge { .. } => Some(&self.payload_too_large),
                    BlockReason::Overloaded { .. } => Some(&self.overloaded),
                    BlockReason::Unavailable { .. }
                    | BlockReason::BadRequest { .. }
                    | BlockReason::Mcp(_) => None,
                };
                if let Some(counter) = counter {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                match reason {
                    BlockReason::Threat { threats, .. } => {
                        for name in threats {
                            self.threats_blocked[threat_slot(name)].fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    BlockReason::Mcp(violation) => {
                        let kind = violation.kind();
                        if let Some(i) = McpViolation::KINDS.iter().position(|k| *k == kind) {
                            self.mcp_violations[i].fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => {}
                }
            }
            SecurityEvent::ThreatObserved { indicators, .. } => {
                for indicator in indicators {
                    let slot = threat_slot(indicator.threat_type.as_str());
                    self.threats_observed[slot].fetch_add(1, Ordering::Relaxed);
                }
            }
            SecurityEvent::ToolFinding(finding) => {
                let slot = threat_slot(finding.threat.as_str());
                if finding.action == crate::tools::FindingAction::Alerted {
                    self.threats_observed[slot].fetch_add(1, Ordering::Relaxed);
                } else {
                    self.threats_blocked[slot].fetch_add(1, Ordering::Relaxed);
                }
            }
            SecurityEvent::ResultFinding(finding) => {
                let f = &finding.found;
                let slot = threat_slot(f.threat.as_str());
                let passed = matches!(
                    f.action,
                    crate::dlp::Applied::Alerted | crate::dlp::Applied::Wrapped
                );
                if passed {
                    self.threats_observed[slot].fetch_add(1, Ordering::Relaxed);
                } else {
                    self.threats_blocked[slot].fetch_add(1, Ordering::Relaxed);
                }
                let t = RESULT_TYPES.iter().position(|t| *t == f.threat.as_str());
                let a = crate::dlp::Applied::ALL.iter().position(|a| *a == f.action);
                if let (Some(t), Some(a)) = (t, a) {
                    self.result_findings[t][a].fetch_add(1, Ordering::Relaxed);
                }
            }
            SecurityEvent::GuardError { .. } => {
                self.guard_errors.fetch_add(1, Ordering::Relaxed);
            }
            SecurityEvent::Pattern { .. } => {
                self.patterns_detected.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

/// Writes events to `tracing` under the seed's targets and with its wording.
#[derive(Debug, Default)]
pub struct LogSink {
    ip_mode: LogIpMode,
    key: (u64, u64),
    geo: Option<std::sync::Arc<crate::ip::geo::GeoIp>>,
}

/// How client addresses appear in logs (`SECURITY_LOG_IP_MODE`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogIpMode {
    /// As they are.
    #[default]
    Plain,
    /// A keyed hash (`ip-3f2a…`): the same address gives the same token under one key, so
    /// lines can be correlated without revealing it.
    Hash,
    /// The network only: /24 for IPv4, /48 for IPv6 (`203.0.113.0`, `2001:db8:1::`).
    Mask,
}

impl LogSink {
    /// A sink writing addresses the given way; `key` is the keyed-hash key.
    pub fn new(ip_mode: LogIpMode, key: (u64, u64)) -> Self {
        LogSink {
            ip_mode,
            key,
            geo: None,
        }
    }

    /// Adds the client's country (and AS number) to block lines as fields.
    pub fn with_geo(mut self, geo: Option<std::sync::Arc<crate::ip::geo::GeoIp>>) -> Self {
        self.geo = geo;
        self
    }

    fn country_and_asn(&self, ip: IpAddr) -> (String, String) {
        match &self.geo {
            Some(geo) => {
                let info = geo.lookup(ip);
                (
                    info.country.unwrap_or_else(|| "-".into()),
                    info.asn.map_or_else(|| "-".into(), |a| format!("AS{a}")),
                )
            }
            None => ("-".into(), "-".into()),
        }
    }

    /// An address as the logs show it.
    pub fn show_ip(&self, ip: IpAddr) -> String {
        let ip = ip.to_canonical();
        match self.ip_mode {
            LogIpMode::Plain => ip.to_string(),
            LogIpMode::Hash => {
                format!("ip-{:016x}", crate::request::keyed_ip_hash(self.key, ip))
            }
            LogIpMode::Mask => match ip {
                IpAddr::V4(v4) => std::net::Ipv4Addr::from(u32::from(v4) & 0xffff_ff00).to_string(),
                IpAddr::V6(v6) => {
                    std::net::Ipv6Addr::from(u128::from(v6) & !((1u128 << 80) - 1)).to_string()
                }
            },
        }
    }

    fn show_network(&self, network: &IpNet) -> String {
        if network.prefix_len() == network.max_prefix_len() {
            self.show_ip(network.addr())
        } else {
            network.to_string()
        }
    }
}

fn python_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|t| format!("'{t}'")).collect();
    format!("[{}]", quoted.join(", "))
}

impl EventSink for LogSink {
    fn handle(&self, event: &SecurityEvent) {
        match event {
            SecurityEvent::Blocked {
                ip, reason, path, ..
            } => {
                // Repeats during a DDoS block and overload refusals are debug lines: no lookup
                // for them.
                let (country, asn) = if matches!(
                    reason,
                    BlockReason::Ddos { first: false, .. } | BlockReason::Overloaded { .. }
                ) {
                    ("-".to_string(), "-".to_string())
                } else {
                    self.country_and_asn(*ip)
                };
                let ip = self.show_ip(*ip);
                match reason {
                    BlockReason::RateLimited { bucket, .. } => tracing::warn!(
                        target: "security.rate_limiter",
                        %ip, bucket = %bucket, path = %path, %country, %asn,
                        "Rate limit exceeded for {ip}: {bucket} bucket empty"
                    ),
                    // One line when a block starts; during a flood the repeats would make the log
                    // itself the bottleneck, so they are debug.
                    BlockReason::Ddos {
                        detail,
                        first: true,
                        ..
                    } => tracing::warn!(
                        target: "security.ddos_protection",
                        %ip, path = %path, %country, %asn,
                        "DDoS protection blocked request from {ip}: {detail}"
                    ),
                    BlockReason::Ddos {
                        detail,
                        first: false,
                        ..
                    } => tracing::debug!(
                        target: "security.ddos_protection",
                        %ip, path = %path, %country, %asn,
                        "DDoS protection blocked request from {ip}: {detail} (block running)"
                    ),
                    BlockReason::IpBlocked { detail } => tracing::warn!(
                        target: "security.ip_manager",
                        %ip, path = %path, %country, %asn,
                        "Blocked request from {ip}: {detail}"
                    ),
                    BlockReason::Threat { threats, findings } => tracing::warn!(
                        target: "security.threat_detector",
                        %ip, path = %path, %country, %asn,
                        findings = %describe(findings),
                        "Threats detected for IP {ip}: {}", python_list(threats)
                    ),
                    BlockReason::PayloadTooLarge { limit } => tracing::info!(
                        target: "security.threat_detector",
                        %ip, path = %path, %country, %asn,
                        "Refused request body from {ip}: larger than the inspection limit of {limit} bytes"
                    ),
                    // Overload protection writes one line when shedding starts and one when
                    // it stops; each refusal is a debug line.
                    BlockReason::Overloaded { class, why, .. } => tracing::debug!(
                        target: "security.ddos_protection",
                        %ip, path = %path, class = %class, why = %why,
                        "Refused request from {ip}: upstream overloaded ({why}, {class} client)"
                    ),
                    BlockReason::Unavailable { guard } => tracing::error!(
                        target: "security",
                        %ip, path = %path, %country, %asn,
                        "Refused request from {ip}: {guard} failed and the fail mode is closed"
                    ),
                    BlockReason::BadRequest { detail } => tracing::info!(
                        target: "security",
                        %ip, path = %path, %country, %asn,
                        "Refused unreadable request from {ip}: {detail}"
                    ),
                    BlockReason::Mcp(violation) => tracing::info!(
                        target: "security.mcp",
                        %ip, path = %path, %country, %asn,
                        "Refused MCP request from {ip} ({}): {}", violation.kind(), violation.message()
                    ),
                }
            }
            SecurityEvent::ListAdded {
                list,
                network,
                reason,
                ..
            } => tracing::info!(
                target: "security.ip_manager",
                "Added {} to {}: {reason}", self.show_network(network), list.as_str()
            ),
            SecurityEvent::ListRemoved { list, network } => tracing::info!(
                target: "security.ip_manager",
                "Removed {} from {}", self.show_network(network), list.as_str()
            ),
            SecurityEvent::EmergencyMode { enabled, by } => tracing::warn!(
                target: "security.ddos_protection",
                "Emergency mode {} ({by})", if *enabled { "enabled" } else { "disabled" }
            ),
            SecurityEvent::Pattern {
                ip: Some(ip),
                pattern,
                detail,
            } => {
                let ip = self.show_ip(*ip);
                tracing::warn!(
                    target: "security.ddos_protection",
                    %ip, pattern,
                    "Suspicious pattern from {ip}: {pattern} ({detail})"
                )
            }
            SecurityEvent::Pattern {
                ip: None,
                pattern,
                detail,
            } => tracing::warn!(
                target: "security.ddos_protection",
                pattern,
                "Suspicious pattern across clients: {pattern} ({detail})"
            ),
            SecurityEvent::ThreatObserved {
                ip,
                path,
                would_block,
                indicators,
                findings,
            } => {
                let names: Vec<String> = indicators
                    .iter()
                    .map(|i| i.threat_type.as_str().to_string())
                    .collect();
                let ip = self.show_ip(*ip);
                if *would_block {
                    tracing::warn!(
                        target: "security.threat_detector",
                        %ip, path = %path, findings = %describe(findings),
                        "Threats detected for IP {ip}: {} (monitor mode: not blocked)", python_list(&names)
                    )
                } else {
                    tracing::info!(
                        target: "security.threat_detector",
                        %ip, path = %path, findings = %describe(findings),
                        "Suspicious input from IP {ip}: {} (below the block severity)", python_list(&names)
                    )
                }
            }
            SecurityEvent::ToolFinding(f) => tracing::warn!(
                target: "security.tools",
                threat = f.threat.as_str(), kind = %f.kind, upstream = %f.upstream,
                subject = f.subject, name = %f.name, action = f.action.as_str(),
                location = %f.location, evidence = %f.evidence,
                "{} {} '{}' from {}: {} ({}) {}",
                f.threat.as_str(), f.subject, f.name, f.upstream, f.kind, f.evidence, f.action.as_str()
            ),
            SecurityEvent::ResultFinding(r) => tracing::warn!(
                target: "security.results",
                threat = r.found.threat.as_str(), family = %r.found.family,
                subject = r.subject, name = %r.name, direction = r.direction,
                action = r.found.action.as_str(), location = %r.found.location,
                evidence = %r.found.evidence,
                "{} ({}) in the {} of {} '{}' at {}: {}",
                r.found.threat.as_str(), r.found.family,
                if r.direction == "request" { "arguments" } else { "result" },
                r.subject, r.name, r.found.location, r.found.action.as_str()
            ),
            SecurityEvent::GuardError { guard, error } => tracing::error!(
                target: "security",
                "{guard} failed: {error}"
            ),
        }
    }
}

/// Findings for a log line's `findings` field: `sql_injection in json:params.arguments.q
/// (tool search); xss_attack in query:x`.
fn describe(findings: &[crate::decision::Finding]) -> String {
    findings
        .iter()
        .map(crate::decision::Finding::describe)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A host network prints as its address (`1.2.3.4`, not `1.2.3.4/32`), as the seed's logs do.
pub fn show_network(network: &IpNet) -> String {
    if network.prefix_len() == network.max_prefix_len() {
        network.addr().to_string()
    } else {
        network.to_string()
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn threats_and_mcp_violations_are_counted_by_type() {
        let stats = Statistics::default();
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let blocked = |reason| SecurityEvent::Blocked {
            ip,
            reason,
            path: "/mcp".into(),
            at_ms: 0,
        };
        stats.handle(&blocked(BlockReason::Threat {
            threats: vec!["sql_injection".into(), "internal_ticket".into()],
            findings: Vec::new(),
        }));
        stats.handle(&blocked(BlockReason::Mcp(McpViolation::OriginNotAllowed(
            "https://evil.example".into(),
        ))));
        stats.handle(&SecurityEvent::ThreatObserved {
            ip,
            path: "/".into(),
            would_block: false,
            findings: Vec::new(),
            indicators: vec![crate::threat::ThreatIndicator::new(
                "bot",
                crate::threat::Severity::Low,
                0.6,
                "header:User-Agent",
                "python-requests",
            )],
        });
        let counts = stats.threat_counts();
        assert_eq!(counts.len(), ThreatType::ALL.len() + 1);
        let of = |name: &str| {
            let c = counts.iter().find(|c| c.threat_type == name).expect(name);
            (c.blocked, c.observed)
        };
        assert_eq!(of("sql_injection"), (1, 0));
        assert_eq!(of("custom"), (1, 0));
        assert_eq!(of("bot"), (0, 1));
        assert_eq!(of("xss_attack"), (0, 0));
        let violations = stats.mcp_violation_counts();
        assert_eq!(violations.len(), McpViolation::KINDS.len());
        assert!(violations.contains(&("origin_not_allowed", 1)));
        assert!(violations.contains(&("host_not_allowed", 0)));
    }

    #[test]
    fn every_mcp_violation_kind_is_listed() {
        for violation in [
            McpViolation::OriginNotAllowed(String::new()),
            McpViolation::HostNotAllowed(String::new()),
            McpViolation::InvalidJsonRpc {
                code: 0,
                detail: String::new(),
            },
            McpViolation::HeaderMismatch(String::new()),
            McpViolation::TooManySessions { limit: 1 },
        ] {
            assert!(
                McpViolation::KINDS.contains(&violation.kind()),
                "{violation:?}"
            );
        }
    }

    use super::*;

    #[test]
    fn statistics_count_blocks_by_kind() {
        let stats = Arc::new(Statistics::default());
        let bus = EventBus::new(vec![stats.clone()], 16);
        let mut rx = bus.subscribe();
        stats.record_request();
        bus.publish(SecurityEvent::Blocked {
            ip: "1.2.3.4".parse().expect("ip"),
            reason: BlockReason::IpBlocked {
                detail: "IP is blacklisted".into(),
            },
            path: "/".into(),
            at_ms: 0,
        });
        let snap = stats.snapshot();
        assert_eq!(
            (snap.total_requests, snap.blocked_requests, snap.ip_blocked),
            (1, 1, 1)
        );
        assert!(matches!(
            *rx.try_recv().expect("event"),
            SecurityEvent::Blocked { .. }
        ));
    }

    #[test]
    fn addresses_in_logs_can_be_hashed_or_masked() {
        let ip: IpAddr = "203.0.113.77".parse().expect("ip");
        let v6: IpAddr = "2001:db8:1:2::9".parse().expect("ip");
        assert_eq!(
            LogSink::new(LogIpMode::Plain, (1, 2)).show_ip(ip),
            "203.0.113.77"
        );
        assert_eq!(
            LogSink::new(LogIpMode::Mask, (1, 2)).show_ip(ip),
            "203.0.113.0"
        );
        assert_eq!(
            LogSink::new(LogIpMode::Mask, (1, 2)).show_ip(v6),
            "2001:db8:1::"
        );
        let hashed = LogSink::new(LogIpMode::Hash, (1, 2)).show_ip(ip);
        assert!(
            hashed.starts_with("ip-") && !hashed.contains("203"),
            "{hashed}"
        );
        assert_eq!(
            hashed,
            LogSink::new(LogIpMode::Hash, (1, 2)).show_ip(ip),
            "stable under one key"
        );
        assert_ne!(
            hashed,
            LogSink::new(LogIpMode::Hash, (3, 4)).show_ip(ip),
            "keyed"
        );
    }

    #[test]
    fn python_style_threat_list() {
        assert_eq!(
            python_list(&["sql_injection".into(), "xss_attack".into()]),
            "['sql_injection', 'xss_attack']"
        );
    }
}
