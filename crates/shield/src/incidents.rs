//! The latest refusals and observations, with what was found where: what the threat
//! assessment of an address lists as its recent threats, and what a live feed shows. An event
//! sink over a ring of fixed size, so memory stays bounded however many requests are refused;
//! each entry's strings are capped too.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::clock::Clock;
use crate::decision::{BlockReason, Finding};
use crate::events::{EventSink, SecurityEvent};

/// Entries kept (the oldest go first).
pub const CAPACITY: usize = 4096;
/// Findings kept per entry.
const MAX_FINDINGS: usize = 8;
/// Characters kept of a path or a detail.
const MAX_TEXT: usize = 256;

/// One refusal or observation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    /// The client.
    pub ip: IpAddr,
    /// When (Unix ms).
    pub time_ms: u64,
    /// What: the refusal's type (`threat_detected`, `rate_limited`, `ddos_blocked`,
    /// `ip_blocked`, `mcp_violation`, ...), or `threat_observed` for findings not refused.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `low`, `medium`, `high` or `critical`: the strongest finding's, or the refusal's.
    pub severity: &'static str,
    /// `blocked`, or `observed` (below the block severity, or monitor mode).
    pub action: &'static str,
    /// The request path (empty for what behavioural analysis saw over many requests).
    pub path: String,
    /// What the refusal said (`IP is blacklisted`, the rate-limit bucket, ...).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// The threats found, with the field, tool and argument they were in.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub threats: Vec<Finding>,
    /// How many refusals in a row this entry stands for: the same refusal of the same address
    /// again (a blacklisted address retrying) is counted here, `time_ms` being the latest, so
    /// that a retrying client does not push what got it refused out of the ring.
    pub count: u32,
    /// The address's ISO country code (with a GeoIP database).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

/// The ring of the latest incidents.
pub struct Incidents {
    ring: Mutex<VecDeque<Incident>>,
    capacity: usize,
    /// Times what carries none (an observation).
    clock: Arc<dyn Clock>,
    /// Names each incident's country, when a database is loaded.
    geo: Option<Arc<crate::ip::geo::GeoIp>>,
}

impl std::fmt::Debug for Incidents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incidents")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

fn capped(text: &str) -> String {
    text.chars().take(MAX_TEXT).collect()
}

const SEVERITIES: [&str; 4] = ["low", "medium", "high", "critical"];

fn strongest(findings: &[Finding]) -> Option<&'static str> {
    findings
        .iter()
        .filter_map(|f| SEVERITIES.iter().position(|s| *s == f.severity))
        .max()
        .map(|i| SEVERITIES[i])
}

impl Incidents {
    /// A ring of `capacity` entries.
    pub fn new(capacity: usize, clock: Arc<dyn Clock>) -> Self {
        Incidents {
            ring: Mutex::new(VecDeque::with_capacity(capacity.min(CAPACITY))),
            capacity: capacity.max(1),
            clock,
            geo: None,
        }
    }

    /// Names the country of each incident's address from `geo`.
    pub fn with_geo(mut self, geo: Option<Arc<crate::ip::geo::GeoIp>>) -> Self {
        self.geo = geo;
        self
    }

    fn push(&self, incident: Incident) {
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(last) = ring.back_mut() {
            let repeat = incident.threats.is_empty()
                && last.threats.is_empty()
                && last.ip == incident.ip
                && last.kind == incident.kind
                && last.detail == incident.detail
                && last.path == incident.path;
            if repeat {
                last.count = last.count.saturating_add(1);
                last.time_ms = last.time_ms.max(incident.time_ms);
                return;
            }
        }
        if ring.len() >= self.capacity {
            ring.pop_front();
        }
        ring.push_back(incident);
    }

    /// The latest `limit` incidents of `ip`, newest first.
    pub fn of(&self, ip: IpAddr, limit: usize) -> Vec<Incident> {
        let ip = ip.to_canonical();
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.iter()
            .rev()
            .filter(|i| i.ip == ip)
            .take(limit)
            .cloned()
            .collect()
    }

    /// Shows every incident kept to `visit`, newest first, without copying them (the ring is
    /// locked meanwhile: keep `visit` short).
    pub fn visit(&self, mut visit: impl FnMut(&Incident)) {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.iter().rev().for_each(&mut visit);
    }

    /// The latest `limit` incidents of every client, newest first.
    pub fn latest(&self, limit: usize) -> Vec<Incident> {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.iter().rev().take(limit).cloned().collect()
    }
}

impl Incident {
    /// The incident an event is, if it is one (a refusal or an observation); `now_ms` times an
    /// observation, which carries no time of its own.
    pub fn from_event(event: &SecurityEvent, now_ms: u64) -> Option<Incident> {
        match event {
            SecurityEvent::Blocked {
                ip,
                reason,
                path,
                at_ms,
            } => {
                let (threats, detail) = match reason {
                    BlockReason::Threat { findings, .. } => (
                        findings.iter().take(MAX_FINDINGS).cloned().collect(),
                        String::new(),
                    ),
                    BlockReason::RateLimited { bucket, limit, .. } => {
                        (Vec::new(), format!("bucket {bucket} (capacity {limit})"))
                    }
                    BlockReason::Ddos { detail, .. } | BlockReason::IpBlocked { detail } => {
                        (Vec::new(), capped(detail))
                    }
                    BlockReason::Mcp(violation) => (Vec::new(), capped(&violation.message())),
                    BlockReason::Overloaded { class, why, .. } => {
                        (Vec::new(), format!("{why} ({class} client)"))
                    }
                    _ => (Vec::new(), String::new()),
                };
                let severity = strongest(&threats).unwrap_or(match reason {
                    BlockReason::Threat { .. }
                    | BlockReason::IpBlocked { .. }
                    | BlockReason::Ddos { .. } => "high",
                    BlockReason::RateLimited { .. } | BlockReason::Mcp(_) => "medium",
                    _ => "low",
                });
                Some(Incident {
                    ip: ip.to_canonical(),
                    time_ms: *at_ms,
                    kind: reason.kind(),
                    severity,
                    action: "blocked",
                    path: capped(path),
                    detail,
                    threats,
                    count: 1,
                    country: None,
                })
            }
            SecurityEvent::ThreatObserved {
                ip,
                path,
                findings,
                would_block,
                ..
            } => {
                let threats: Vec<Finding> = findings.iter().take(MAX_FINDINGS).cloned().collect();
                Some(Incident {
                    ip: ip.to_canonical(),
                    time_ms: now_ms,
                    kind: "threat_observed",
                    severity: strongest(&threats).unwrap_or("low"),
                    action: "observed",
                    path: capped(path),
                    detail: if *would_block {
                        "monitor mode: would have been refused".into()
                    } else {
                        String::new()
                    },
                    threats,
                    count: 1,
                    country: None,
                })
            }
            // What the server sent the client: recorded under the client's address (the
            // assessment of that address and the dashboard's feed show it), the tool and the
            // kind of poisoning in the finding.
            SecurityEvent::ToolFinding(f) => Some(Incident {
                ip: f
                    .client
                    .unwrap_or(IpAddr::from([0, 0, 0, 0]))
                    .to_canonical(),
                time_ms: now_ms,
                kind: f.threat.as_str_static(),
                severity: "high",
                action: match f.action {
                    crate::tools::FindingAction::Alerted => "observed",
                    _ => "blocked",
                },
                path: capped(&f.upstream),
                detail: capped(&format!(
                    "{} '{}' {} by the server: {}",
                    f.subject,
                    f.name,
                    f.action.as_str(),
                    f.kind
                )),
                threats: vec![Finding {
                    threat: f.threat.as_str().to_string(),
                    severity: "high",
                    field: capped(&format!("response:{}", f.location)),
                    tool: (f.subject == "tool").then(|| capped(&f.name)),
                    argument: None,
                    evidence: capped(&f.evidence),
                    kind: Some(f.kind.clone()),
                }],
                count: 1,
                country: None,
            }),
            // What a tool returned to the client (or a client sent a tool): recorded under the
            // client's address, with the tool, the family and the masked value.
            SecurityEvent::ResultFinding(r) => Some(Incident {
                ip: r
                    .client
                    .unwrap_or(IpAddr::from([0, 0, 0, 0]))
                    .to_canonical(),
                time_ms: now_ms,
                kind: r.found.threat.as_str_static(),
                severity: match r.found.threat {
                    crate::threat::ThreatType::PersonalData => "medium",
                    crate::threat::ThreatType::OutputTooLarge => "low",
                    _ => "high",
                },
                action: match r.found.action {
                    crate::dlp::Applied::Alerted | crate::dlp::Applied::Wrapped => "observed",
                    _ => "blocked",
                },
                path: capped(&r.path),
                detail: capped(&format!(
                    "{} ({}) in the {} of {} '{}': {}",
                    r.found.threat.as_str(),
                    r.found.family,
                    if r.direction == "request" {
                        "arguments"
                    } else {
                        "result"
                    },
                    r.subject,
                    r.name,
                    r.found.action.as_str()
                )),
                threats: vec![Finding {
                    threat: r.found.threat.as_str().to_string(),
                    severity: "high",
                    field: capped(&format!("{}:{}", r.direction, r.found.location)),
                    tool: (r.subject == "tool").then(|| capped(&r.name)),
                    argument: None,
                    evidence: capped(&r.found.evidence),
                    kind: Some(r.found.family.clone()),
                }],
                count: 1,
                country: None,
            }),
            _ => None,
        }
    }
}

impl EventSink for Incidents {
    fn handle(&self, event: &SecurityEvent) {
        if let Some(mut incident) = Incident::from_event(event, self.clock.unix_ms()) {
            // Looked up once, when it happens (one read of a memory-mapped table).
            incident.country = self
                .geo
                .as_ref()
                .and_then(|g| g.lookup(incident.ip).country);
            self.push(incident);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(ip: &str, reason: BlockReason, at_ms: u64) -> SecurityEvent {
        SecurityEvent::Blocked {
            ip: ip.parse().expect("ip"),
            reason,
            path: "/mcp".into(),
            at_ms,
        }
    }

    #[test]
    fn refusals_are_kept_newest_first_per_address_and_bounded() {
        let incidents = Incidents::new(3, crate::clock::ManualClock::starting_at(0));
        let finding = Finding {
            threat: "sql_injection".into(),
            severity: "critical",
            field: "json:params.arguments.query".into(),
            tool: Some("search".into()),
            argument: Some("query".into()),
            evidence: "' OR 1=1 --".into(),
            kind: None,
        };
        incidents.handle(&blocked(
            "192.0.2.1",
            BlockReason::Threat {
                threats: vec!["sql_injection".into()],
                findings: vec![finding.clone()],
            },
            1,
        ));
        incidents.handle(&blocked(
            "192.0.2.2",
            BlockReason::IpBlocked {
                detail: "IP is blacklisted".into(),
            },
            2,
        ));
        let mine = incidents.of("192.0.2.1".parse().expect("ip"), 10);
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].kind, "threat_detected");
        assert_eq!(mine[0].severity, "critical");
        assert_eq!(mine[0].threats, vec![finding]);
        for at in 3..=5 {
            incidents.handle(&blocked(
                "192.0.2.3",
                BlockReason::IpBlocked {
                    detail: "x".repeat(1000),
                },
                at,
            ));
        }
        // The same refusal of the same address three times over is one entry.
        let latest = incidents.latest(10);
        assert_eq!(latest.len(), 3);
        assert_eq!(
            (latest[0].time_ms, latest[0].count),
            (5, 3),
            "newest first, counted"
        );
        assert_eq!(latest[0].detail.len(), MAX_TEXT);
        for n in 0..2 {
            incidents.handle(&blocked(
                &format!("192.0.2.{}", 10 + n),
                BlockReason::IpBlocked {
                    detail: "IP is blacklisted".into(),
                },
                6 + n,
            ));
        }
        assert_eq!(incidents.latest(10).len(), 3, "the ring holds three");
        assert!(incidents
            .of("192.0.2.1".parse().expect("ip"), 10)
            .is_empty());
    }
}
