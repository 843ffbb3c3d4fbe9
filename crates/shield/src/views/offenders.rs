//! The addresses refused most among the latest incidents, with what is known of each now:
//! `GET /api/security/offenders`, the dashboard's "top offenders". A view over the incident
//! ring (so bounded by it) and the components that know an address.

use std::collections::HashMap;
use std::net::IpAddr;

use serde::Serialize;

use crate::ip::ListKind;
use crate::shared::Core;

/// One address among the top offenders.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Offender {
    /// The address.
    pub ip: IpAddr,
    /// Refusals among the latest incidents.
    pub refusals: u64,
    /// Observations (findings not refused) among them.
    pub observations: u64,
    /// The latest one (Unix ms).
    pub last_ms: u64,
    /// Refusal and threat types seen, most frequent first.
    pub types: Vec<String>,
    /// Reputation score, 0 to 100 (null without IP management).
    pub reputation: Option<f64>,
    /// ISO country code (null without a GeoIP database or for an unknown address).
    pub country: Option<String>,
    /// Whether it is refused now, and until when (Unix ms; null for a block without an end).
    pub blocked: bool,
    /// Until when.
    pub blocked_until_ms: Option<u64>,
}

/// The `limit` addresses with the most refusals among the latest incidents.
pub(crate) fn offenders(core: &Core, limit: usize) -> Vec<Offender> {
    struct Tally {
        refusals: u64,
        observations: u64,
        last_ms: u64,
        types: HashMap<String, u64>,
    }
    let mut by_ip: HashMap<IpAddr, Tally> = HashMap::new();
    core.incidents.visit(|incident| {
        let tally = by_ip.entry(incident.ip).or_insert(Tally {
            refusals: 0,
            observations: 0,
            last_ms: 0,
            types: HashMap::new(),
        });
        let count = u64::from(incident.count.max(1));
        if incident.action == "blocked" {
            tally.refusals += count;
        } else {
            tally.observations += count;
        }
        tally.last_ms = tally.last_ms.max(incident.time_ms);
        let mut add = |name: &str| match tally.types.get_mut(name) {
            Some(n) => *n += count,
            None => {
                tally.types.insert(name.to_string(), count);
            }
        };
        if incident.threats.is_empty() {
            add(incident.kind);
        }
        for finding in &incident.threats {
            add(&finding.threat);
        }
    });
    let mut ranked: Vec<(IpAddr, Tally)> = by_ip.into_iter().collect();
    ranked.sort_by(|a, b| {
        (b.1.refusals, b.1.observations, b.1.last_ms).cmp(&(
            a.1.refusals,
            a.1.observations,
            a.1.last_ms,
        ))
    });
    let now = core.clock.unix_ms();
    ranked
        .into_iter()
        .take(limit)
        .map(|(ip, tally)| {
            let mut types: Vec<(String, u64)> = tally.types.into_iter().collect();
            types.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let listed = core
                .lists
                .lookup(ListKind::Whitelist, ip)
                .is_none()
                .then(|| core.lists.lookup(ListKind::Blacklist, ip))
                .flatten();
            let ddos_until = core
                .ddos
                .as_ref()
                .and_then(|g| g.traffic(ip))
                .and_then(|t| t.blocked_until(now));
            Offender {
                ip,
                refusals: tally.refusals,
                observations: tally.observations,
                last_ms: tally.last_ms,
                types: types.into_iter().map(|(name, _)| name).collect(),
                reputation: core.reputation.as_ref().map(|r| r.score(ip)),
                country: core.geo.as_ref().and_then(|g| g.lookup(ip).country),
                blocked: listed.is_some() || ddos_until.is_some(),
                blocked_until_ms: listed
                    .as_ref()
                    .and_then(|l| l.entry.expires_at_ms)
                    .or(ddos_until),
            }
        })
        .collect()
}
