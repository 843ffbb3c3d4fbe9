//! What the security layer, the admin API and the views share: the [`Core`] that
//! [`crate::SecuritySystem`] builds and wires (in `system.rs`), read by everything that serves
//! requests. Lower layers import it from here, never from `system.rs`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::admission::UpstreamAdmission;
use crate::behaviour::{BehaviourAnalysis, BehaviourGuard};
use crate::clock::Clock;
use crate::config::{Config, ConfigError, OversizeBodyAction};
use crate::ddos::inflight::OpenCounts;
use crate::ddos::DdosGuard;
use crate::events::{EventBus, EventSink, SecurityEvent, Statistics};
use crate::ip::feeds::{FeedGuard, Feeds};
use crate::ip::geo::{CountryGuard, GeoIp, RiskPolicy};
use crate::ip::parse_network;
use crate::ip::reputation::Reputation;
use crate::ip::shared_reputation::SharedReputation;
use crate::ip::sync::ListSync;
use crate::ip::{BlacklistGuard, IpLists, ListError, ListKind};
use crate::pipeline::{Guard, Pipeline};
use crate::rate_limit::RateLimitGuard;
use crate::request::IdentityRules;
use crate::state::redis::RedisState;
use crate::threat::{ThreatDetector, ThreatGuard};

/// What the layer reads of the configuration for every request, swapped whole by a reload.
pub(crate) struct RequestSettings {
    pub(crate) identity: IdentityRules,
    pub(crate) max_inspect_body_bytes: u64,
    pub(crate) oversize_body_action: OversizeBodyAction,
    /// Limits on the shape of JSON bodies.
    pub(crate) json_limits: crate::json_limits::JsonLimits,
    /// The MCP endpoint's paths (JSON limits apply to every body sent there).
    pub(crate) mcp_paths: Vec<String>,
}

impl RequestSettings {
    pub(crate) fn from_config(config: &Config, hash_key: (u64, u64)) -> RequestSettings {
        // Validated by the loader; a Config built by hand drops what does not parse.
        let trusted_proxies = config
            .trusted_proxies
            .iter()
            .filter_map(|text| parse_network(text).ok())
            .collect();
        RequestSettings {
            identity: IdentityRules {
                trusted_proxies,
                forwarded_header: config.forwarded_header,
                user_id_header: http::HeaderName::from_bytes(config.user_id_header.as_bytes()).ok(),
                hash_key,
            },
            max_inspect_body_bytes: config.max_inspect_body_bytes,
            oversize_body_action: config.oversize_body_action,
            json_limits: config.json.limits(),
            mcp_paths: config.mcp.paths.clone(),
        }
    }
}

/// Threat feeds and the guard that reads them.
pub(crate) type FeedsAndGuard = (Arc<Feeds>, Arc<FeedGuard>);

/// The guards, by kind, in the order [`GuardSet::ordered`] runs them. A reload builds a new
/// set from the old one: the guards with state (DDoS protection, MCP sessions, behaviour) are
/// the same objects, reconfigured in place; rate limiting is rebuilt over the same bucket
/// store; the stateless ones are rebuilt.
#[derive(Clone)]
pub(crate) struct GuardSet {
    pub(crate) blacklist: Arc<BlacklistGuard>,
    pub(crate) feeds: Option<FeedsAndGuard>,
    pub(crate) country: Option<Arc<CountryGuard>>,
    pub(crate) mcp: Arc<crate::mcp::McpGuard>,
    pub(crate) ddos: Option<Arc<DdosGuard>>,
    pub(crate) rate: Option<Arc<RateLimitGuard>>,
    pub(crate) behaviour: Option<Arc<BehaviourGuard>>,
    pub(crate) threat: Option<Arc<ThreatGuard>>,
}

impl GuardSet {
    /// The deny lists first, then the cheap checks of the head (feeds, countries, the MCP
    /// protocol: a rebinding page or a broken message should cost no rate-limit token or
    /// inspection), then the counting guards, and the costliest, threat detection, last.
    pub(crate) fn ordered(&self) -> Vec<Arc<dyn Guard>> {
        let mut guards: Vec<Arc<dyn Guard>> = vec![self.blacklist.clone()];
        if let Some((_, guard)) = &self.feeds {
            guards.push(guard.clone());
        }
        if let Some(guard) = &self.country {
            guards.push(guard.clone());
        }
        guards.push(self.mcp.clone());
        if let Some(guard) = &self.ddos {
            guards.push(guard.clone());
        }
        if let Some(guard) = &self.rate {
            guards.push(guard.clone());
        }
        if let Some(guard) = &self.behaviour {
            guards.push(guard.clone());
        }
        if let Some(guard) = &self.threat {
            guards.push(guard.clone());
        }
        guards
    }

    pub(crate) fn feeds(&self) -> Option<&Arc<Feeds>> {
        self.feeds.as_ref().map(|(feeds, _)| feeds)
    }
}

/// Everything the layer and the admin API share.
pub(crate) struct Core {
    /// The configuration in force (a reload replaces it).
    pub(crate) config: ArcSwap<Config>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) lists: Arc<IpLists>,
    pub(crate) pipeline: Pipeline,
    pub(crate) bus: Arc<EventBus>,
    pub(crate) stats: Arc<Statistics>,
    /// The latest refusals and observations, with their findings.
    pub(crate) incidents: Arc<crate::incidents::Incidents>,
    /// Requests and refusals per second, the last 15 minutes (sampled once a second).
    pub(crate) timeline: std::sync::Mutex<crate::timeline::Timeline>,
    /// Live streams of the admin API open now (capped).
    pub(crate) streams: std::sync::atomic::AtomicUsize,
    pub(crate) request: ArcSwap<RequestSettings>,
    pub(crate) hash_key: (u64, u64),
    /// The guards by kind (a reload replaces them; the pipeline runs `ordered()` of them).
    pub(crate) guards: std::sync::Mutex<GuardSet>,
    pub(crate) admin_token: String,
    pub(crate) admin_token_generated: bool,
    pub(crate) emergency: Arc<AtomicBool>,
    pub(crate) started_unix_ms: u64,
    pub(crate) ddos: Option<Arc<DdosGuard>>,
    pub(crate) geo: Option<Arc<GeoIp>>,
    pub(crate) reputation: Option<Arc<Reputation>>,
    /// The threat detector (built even when the guard is off, for `add_pattern` and scans).
    pub(crate) threat_detector: Arc<ThreatDetector>,
    /// Reputation kept in Redis (with `REDIS_URL`).
    pub(crate) shared_reputation: Option<Arc<SharedReputation>>,
    /// GeoIP risk (with an Anonymous-IP database or high-risk countries).
    pub(crate) geo_risk: Option<Arc<RiskPolicy>>,
    pub(crate) data_dir: Option<std::path::PathBuf>,
    pub(crate) dirty: Option<Arc<Dirty>>,
    /// Requests in flight per client address (with DDoS protection on).
    pub(crate) inflight: Option<Arc<OpenCounts>>,
    pub(crate) redis: Option<Arc<RedisState>>,
    pub(crate) list_sync: Option<Arc<ListSync>>,
    /// Behavioural analysis (with threat detection on).
    pub(crate) behaviour: Option<Arc<BehaviourAnalysis>>,
    /// Admission to the upstream (overload protection; with DDoS protection on).
    pub(crate) admission: Option<Arc<UpstreamAdmission>>,
    /// Tool pins, poisoned definitions and tool access (the response side of MCP paths).
    pub(crate) tools: Arc<crate::tools::ToolIntegrity>,
    /// What reads the way back: the tool checks above and the result inspector.
    pub(crate) way_back: Arc<crate::response::WayBack>,
    /// Re-reads the configuration's sources for a reload (the gateway's file, environment
    /// and flags); `None` for a system built from a configuration in code.
    pub(crate) config_source: std::sync::Mutex<Option<Arc<ConfigSource>>>,
    /// One reload at a time.
    pub(crate) reloading: tokio::sync::Mutex<()>,
}

/// Where a reload gets the new configuration from.
pub type ConfigSource = dyn Fn() -> Result<Config, ConfigError> + Send + Sync;

impl Core {
    /// The configuration in force.
    pub(crate) fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// The guards by kind, as they are now.
    pub(crate) fn guard_set(&self) -> GuardSet {
        self.guards
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Core {
    /// Adds to a list and tells the bus.
    pub(crate) fn add_to_list(
        &self,
        list: ListKind,
        network: ipnet::IpNet,
        reason: String,
        ttl_seconds: Option<u64>,
    ) -> Result<crate::ip::ListEntry, ListError> {
        let entry = self.lists.add(list, network, reason.clone(), ttl_seconds)?;
        self.bus.publish(SecurityEvent::ListAdded {
            list,
            network,
            reason,
            expires_at_ms: entry.expires_at_ms,
        });
        Ok(entry)
    }

    /// Removes from a list and tells the bus; false when it was not there.
    pub(crate) fn remove_from_list(&self, list: ListKind, network: ipnet::IpNet) -> bool {
        let removed = self.lists.remove(list, &network);
        if removed {
            self.bus
                .publish(SecurityEvent::ListRemoved { list, network });
        }
        removed
    }

    pub(crate) fn set_emergency(&self, enabled: bool, by: &'static str) {
        if let Some(ddos) = &self.ddos {
            ddos.emergency_switched(enabled);
        }
        let was = self.emergency.swap(enabled, Ordering::SeqCst);
        if was != enabled {
            self.bus
                .publish(SecurityEvent::EmergencyMode { enabled, by });
        }
    }
}

/// Notes that something worth saving changed.
#[derive(Debug, Default)]
pub(crate) struct Dirty(pub(crate) AtomicBool);

impl EventSink for Dirty {
    fn handle(&self, event: &SecurityEvent) {
        if matches!(
            event,
            SecurityEvent::ListAdded { .. }
                | SecurityEvent::ListRemoved { .. }
                | SecurityEvent::Blocked { .. }
                | SecurityEvent::Pattern { .. }
        ) {
            self.0.store(true, Ordering::Release);
        }
    }
}
