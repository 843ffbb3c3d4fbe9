//! The threat assessment of one address (`GET /api/security/threat/{ip}`): lists, blocks,
//! reputation, feeds, GeoIP, recent threats, behaviour, request rate. A view: it reads the
//! shared core, changes nothing.

use std::net::IpAddr;

use serde::Serialize;

use crate::behaviour::BehaviourReport;
use crate::events::StatisticsSnapshot;
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
    /// Recent threats seen from it.
    pub recent_threats: Vec<reputation::RecentThreat>,
    /// Anomaly score, 0 to 1 (null before a model exists, or for a client not seen lately).
    pub anomaly_score: Option<f64>,
    /// The behaviour behind the score: features, counts, bot and scanner patterns with their
    /// evidence (null with threat detection off or for a client not seen lately).
    pub behaviour: Option<BehaviourReport>,
    /// This address's requests in the last second and minute (sliding windows), when DDoS
    /// protection tracks it.
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
    /// Last request (Unix ms).
    pub last_seen_ms: u64,
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
        recent_threats: core
            .reputation
            .as_ref()
            .map(|r| r.recent(ip))
            .unwrap_or_default(),
        anomaly_score: behaviour.as_ref().and_then(|b| b.anomaly_score),
        behaviour,
        patterns: traffic
            .map(|t| t.patterns().into_iter().map(|p| p.name()).collect())
            .unwrap_or_default(),
        request_rate: traffic.map(|t| {
            let (per_second, per_minute) = t.rates(now);
            RequestRate {
                per_second,
                per_minute,
                last_seen_ms: t.last_seen_ms,
            }
        }),
        statistics: core.stats.snapshot(),
    }
}
