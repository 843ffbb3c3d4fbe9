//! The threat assessment of one address (`GET /api/security/threat/{ip}`): lists, blocks,
//! reputation, feeds, GeoIP, recent threats, behaviour, request rate. A view: it reads the
//! shared core, changes nothing.

use std::net::IpAddr;

use serde::Serialize;

use crate::behaviour::BehaviourReport;
use crate::events::StatisticsSnapshot;
use crate::incidents::Incident;
use crate::ip::reputation;
use crate::ip::{ListKind, ListMatch};
use crate::shared::Core;

/// What is known about one address.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ThreatAssessment {
    /// The address asked about.
    pub ip: IpAddr,
    /// `low`, `medium`, `high` or `critical`.
    pub threat_level: &'static str,
    /// Whether its requests are refused now.
    pub blocked: bool,
    /// Until when (Unix ms), if the block expires.
    pub blocked_until_ms: Option<u64>,
    /// Why it is refused.
    pub block_reason: Option<String>,
    /// The whitelist entry that holds it.
    pub whitelist: Option<ListMatch>,
    /// The blacklist entry that holds it.
    pub blacklist: Option<ListMatch>,
    /// Reputation score, 0 to 100 (null until IP management is built).
    pub reputation_score: Option<f64>,
    /// Feeds that list it.
    pub feeds: Vec<String>,
    /// Country, city, ASN, anonymity flags (null without a GeoIP database).
    pub geo: Option<serde_json::Value>,
    /// How much GeoIP lowers its reputation, and why (null when nothing does).
    pub geo_risk: Option<crate::ip::geo::GeoRisk>,
    /// What it did lately, newest first: refusals and observations with their type,
    /// severity, path, and the threats found with the field, tool and argument they were in
    /// (from the latest incidents; for an address whose details have left that ring, the
    /// reputation's shorter record: type, severity, time).
    pub recent_threats: Vec<Incident>,
    /// Anomaly score, 0 to 1 (null before a model exists, or for a client not seen lately).
    pub anomaly_score: Option<f64>,
    /// The behaviour behind the score: features, counts, bot and scanner patterns with their
    /// evidence (null with threat detection off or for a client not seen lately).
    pub behaviour: Option<BehaviourReport>,
    /// This address's requests in the last second and minute: DDoS protection's sliding
    /// windows, or without it, behavioural analysis's window averaged (null when neither has
    /// seen the address lately).
    pub request_rate: Option<RequestRate>,
    /// DDoS patterns seen from it (`endpoint_hammering`, `burst_above_baseline`,
    /// `high_error_rate`).
    pub patterns: Vec<&'static str>,
    /// Counters for the whole system.
    pub statistics: StatisticsSnapshot,
}

/// An address's recent request rate.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct RequestRate {
    /// Requests in the last second.
    pub per_second: f64,
    /// Requests in the last minute.
    pub per_minute: f64,
    /// Last request (Unix ms), when DDoS protection tracks it.
    pub last_seen_ms: Option<u64>,
}

pub(crate) fn threat_assessment(core: &Core, ip: IpAddr) -> ThreatAssessment {
    let ip = ip.to_canonical();
    let whitelist = core.lists.lookup(ListKind::Whitelist, ip);
    let blacklist = core.lists.lookup(ListKind::Blacklist, ip);
    let now = core.clock.unix_ms();
    let traffic = core.ddos.as_ref().and_then(|g| g.traffic(ip));
    let ddos_until = traffic.and_then(|t| t.blocked_until(now));
    let blocked = whitelist.is_none() && (blacklist.is_some() || ddos_until.is_some());
    let (threat_level, blocked_until_ms, block_reason) = match (&whitelist, &blacklist, ddos_until)
    {
        (None, Some(entry), _) => (
            "high",
            entry.entry.expires_at_ms,
            Some(format!("IP is blacklisted: {}", entry.entry.reason)),
        ),
        (None, None, Some(until)) => (
            "medium",
            Some(until),
            Some("DDoS protection: request rate over the threshold".to_string()),
        ),
        _ => ("low", None, None),
    };
    let reputation_score = core.reputation.as_ref().map(|r| r.score(ip));
    let behaviour = core.behaviour.as_ref().and_then(|b| b.report(ip));
    // The worse of what the lists say and what the reputation says.
    let rank = |level: &str| {
        ["low", "medium", "high", "critical"]
            .iter()
            .position(|l| *l == level)
    };
    let threat_level = match reputation_score.map(reputation::threat_level) {
        Some(from_score) if whitelist.is_none() && rank(from_score) > rank(threat_level) => {
            from_score
        }
        _ => threat_level,
    };
    ThreatAssessment {
        ip,
        threat_level,
        blocked,
        blocked_until_ms,
        block_reason,
        whitelist,
        blacklist,
        reputation_score,
        feeds: core
            .guard_set()
            .feeds()
            .map(|f| f.feeds_listing(ip))
            .unwrap_or_default(),
        geo: core
            .geo
            .as_ref()
            .and_then(|g| serde_json::to_value(g.lookup(ip)).ok()),
        geo_risk: core
            .geo_risk
            .as_ref()
            .map(|p| p.risk(ip))
            .filter(|r| r.points > 0.0),
        recent_threats: recent_threats(core, ip),
        patterns: traffic
            .map(|t| t.patterns().into_iter().map(|p| p.name()).collect())
            .unwrap_or_default(),
        request_rate: traffic
            .map(|t| {
                let (per_second, per_minute) = t.rates(now);
                RequestRate {
                    per_second,
                    per_minute,
                    last_seen_ms: Some(t.last_seen_ms),
                }
            })
            .or_else(|| {
                // Requests over the span behavioural analysis has of this client.
                let counts = &behaviour.as_ref()?.counts;
                let span_s = (counts.span_ms / 1000.0).max(1.0);
                let per_second = counts.requests / span_s;
                Some(RequestRate {
                    per_second,
                    per_minute: per_second * 60.0_f64.min(span_s),
                    last_seen_ms: None,
                })
            }),
        statistics: core.stats.snapshot(),
        // Last: the rate above reads it first.
        anomaly_score: behaviour.as_ref().and_then(|b| b.anomaly_score),
        behaviour,
    }
}

/// Incidents kept of `ip`, or else what its reputation record remembers.
fn recent_threats(core: &Core, ip: IpAddr) -> Vec<Incident> {
    let detailed = core.incidents.of(ip, 20);
    if !detailed.is_empty() {
        return detailed;
    }
    let mut remembered: Vec<Incident> = core
        .reputation
        .as_ref()
        .map(|r| r.recent(ip))
        .unwrap_or_default()
        .into_iter()
        .map(|r: reputation::RecentThreat| Incident {
            ip,
            time_ms: r.time_ms,
            kind: r.kind,
            severity: r.severity,
            action: "blocked",
            path: String::new(),
            detail: String::new(),
            threats: Vec::new(),
            count: 1,
            country: None,
        })
        .collect();
    remembered.sort_by_key(|i| std::cmp::Reverse(i.time_ms));
    remembered
}
