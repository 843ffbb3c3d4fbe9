//! The status document (`GET /api/security/status`, `SecuritySystem::status`): each
//! component's state, the counters, emergency mode and a summary of the configuration. A view:
//! it reads the shared core, changes nothing.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use serde::Serialize;

use crate::events::StatisticsSnapshot;
use crate::ip::ListKind;
use crate::shared::Core;

/// One component in the status.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ComponentStatus {
    /// Asked for by the configuration.
    pub configured: bool,
    /// Actually running in this build.
    pub enabled: bool,
    /// Built in this version of mcp-shield.
    pub implemented: bool,
    /// Working as it should.
    pub healthy: bool,
    /// Where its state lives: `memory`, `redis` or `degraded`.
    pub backend: &'static str,
    /// Anything an operator should know.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Component-specific figures.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<&'static str, serde_json::Value>,
}

/// What `GET /api/security/status` returns.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SecurityStatus {
    /// `rate_limiting`, `ddos_protection`, `ip_management`, `threat_detection`, `ip_lists`.
    pub components: BTreeMap<&'static str, ComponentStatus>,
    /// The seed's counters.
    pub statistics: StatisticsSnapshot,
    /// Whether emergency mode is on.
    pub emergency_mode: bool,
    /// A summary of the configuration (no secrets).
    pub config: serde_json::Value,
    /// mcp-shield's version.
    pub version: &'static str,
    /// Seconds since start.
    pub uptime_seconds: u64,
}

pub(crate) fn status(core: &Core) -> SecurityStatus {
    let c = &*core.config();
    let guard_set = core.guard_set();
    let mut components = BTreeMap::new();
    let shared_backend = match &core.redis {
        None => "memory",
        Some(redis) if redis.is_up() && redis.is_cluster() => "cluster",
        Some(redis) if redis.is_up() => "redis",
        Some(_) => "degraded",
    };
    let mut lists = ComponentStatus {
        configured: true,
        enabled: true,
        implemented: true,
        healthy: shared_backend != "degraded",
        backend: shared_backend,
        note: None,
        details: BTreeMap::new(),
    };
    lists.details.insert(
        "whitelist_entries",
        core.lists.len(ListKind::Whitelist).into(),
    );
    lists.details.insert(
        "blacklist_entries",
        core.lists.len(ListKind::Blacklist).into(),
    );
    lists
        .details
        .insert("max_entries_per_list", c.ip_list_max_entries.into());
    components.insert("ip_lists", lists);
    let mut rate = ComponentStatus {
        configured: c.enable_rate_limiting,
        enabled: guard_set.rate.is_some(),
        implemented: true,
        healthy: guard_set.rate.is_none() || shared_backend != "degraded",
        backend: guard_set.rate.as_ref().map_or("memory", |r| r.backend()),
        note: None,
        details: BTreeMap::new(),
    };
    if let Some(limiter) = &guard_set.rate {
        rate.details
            .insert("tracked_keys", limiter.tracked_keys().into());
        rate.details
            .insert("max_tracked_keys", c.rate_limit.max_tracked_keys.into());
        rate.details.insert("rules", limiter.rule_names().into());
    }
    components.insert("rate_limiting", rate);
    let mut ddos = ComponentStatus {
        configured: c.enable_ddos_protection,
        enabled: core.ddos.is_some(),
        implemented: true,
        healthy: true,
        backend: "memory",
        note: Some(
            "in emergency mode, suspect addresses (new, blocked or flagged before, or of low \
             reputation) get the tightest limits"
                .into(),
        ),
        details: BTreeMap::new(),
    };
    if let Some(guard) = &core.ddos {
        let limits = guard.limits();
        ddos.details.insert("tracked_ips", guard.tracked().into());
        ddos.details
            .insert("max_tracked_ips", c.ddos.max_tracked_ips.into());
        ddos.details
            .insert("per_second_threshold_now", limits.per_second.into());
        ddos.details
            .insert("per_minute_threshold_now", limits.per_minute.into());
        let view = guard.emergency_view();
        ddos.details
            .insert("emergency_threshold_rps", view.threshold_rps.into());
        ddos.details
            .insert("baseline_rps", view.baseline_rps.into());
        ddos.details
            .insert("distributed_flood", view.distributed_flood.into());
    }
    components.insert("ddos_protection", ddos);
    let mut overload = ComponentStatus {
        configured: c.enable_ddos_protection && c.upstream.admission,
        enabled: core.admission.is_some(),
        implemented: true,
        healthy: true,
        backend: "memory",
        note: Some(
            "requests in flight to the upstream are limited to what it serves (learned from its \
             latency unless fixed); beyond, a priority queue admits whitelisted addresses, then \
             clients with a history, then the rest, then addresses new since the overload began \
             or with a bad record; 503 overloaded when no place frees in time"
                .into(),
        ),
        details: BTreeMap::new(),
    };
    if let Some(admission) = &core.admission {
        let view = admission.view();
        let d = &mut overload.details;
        d.insert("limit", view.limit.into());
        d.insert("learned", view.learned.into());
        d.insert("in_flight", view.in_flight.into());
        d.insert("queued", view.queued.into());
        d.insert("baseline_latency_ms", view.baseline_latency_ms.into());
        d.insert("shedding", view.shedding.into());
        d.insert("overloaded_since_ms", view.overloaded_since_ms.into());
        d.insert("admitted_total", view.admitted_total.into());
        d.insert("queued_total", view.queued_total.into());
        d.insert(
            "shed_total",
            serde_json::to_value(&view.shed_total).unwrap_or_default(),
        );
    }
    components.insert("overload_protection", overload);
    let mut ip = ComponentStatus {
        configured: c.enable_ip_management,
        enabled: c.enable_ip_management,
        implemented: true,
        healthy: true,
        backend: if core.redis.as_ref().is_some_and(|r| r.is_cluster()) {
            "cluster"
        } else if core.shared_reputation.is_some() {
            "redis"
        } else {
            "memory"
        },
        note: Some(
            "reputation (shared through Redis when configured), auto-blacklisting, GeoIP and \
             GeoIP risk, country rules, threat feeds and saving across restarts (the allow and \
             deny lists are component ip_lists)"
                .into(),
        ),
        details: BTreeMap::new(),
    };
    ip.details.insert("geoip", core.geo.is_some().into());
    ip.details
        .insert("geo_risk", core.geo_risk.is_some().into());
    if let Some(reputation) = &core.reputation {
        ip.details
            .insert("reputation_tracked_ips", reputation.tracked().into());
    }
    ip.details.insert(
        "country_rule",
        (if guard_set.country.is_some() {
            "on"
        } else {
            "off"
        })
        .into(),
    );
    if let Some(feeds) = guard_set.feeds() {
        ip.details.insert(
            "threat_feeds",
            serde_json::to_value(feeds.status()).unwrap_or_default(),
        );
    }
    components.insert("ip_management", ip);
    let mut threat = ComponentStatus {
        configured: c.enable_threat_detection,
        enabled: c.enable_threat_detection,
        implemented: true,
        healthy: true,
        backend: "memory",
        note: Some(
            "injection, traversal, inclusion, SSRF, scanner and protocol detectors with per-tool \
             policy; behavioural analysis: per-client features, a seeded isolation forest, bot \
             and scanner patterns"
                .into(),
        ),
        details: BTreeMap::new(),
    };
    let td = &c.threat_detection;
    threat.details.insert("mode", td.mode.clone().into());
    threat
        .details
        .insert("block_severity", td.block_severity.clone().into());
    threat.details.insert("allow_rules", td.allow.len().into());
    threat.details.insert("patterns", td.patterns.len().into());
    if let Some(behaviour) = &core.behaviour {
        threat.details.insert(
            "anomaly_model",
            serde_json::to_value(behaviour.model_summary()).unwrap_or_default(),
        );
    }
    components.insert("threat_detection", threat);
    let counts = core.tools.counts();
    let mut tools = ComponentStatus {
        configured: c.mcp.tools.inspect,
        enabled: core.tools.inspects(),
        implemented: true,
        healthy: core.tools.backend() != "redis" || shared_backend != "degraded",
        backend: core.tools.backend(),
        note: Some(
            "tool, prompt and resource lists on MCP paths are read: poisoned definitions \
             withheld, tool definitions pinned per upstream, changes held until approved \
             (GET /api/security/tools), access rules applied"
                .into(),
        ),
        details: BTreeMap::new(),
    };
    tools.details.insert("pinned", counts.pinned.into());
    tools.details.insert("pending", counts.pending.into());
    tools.details.insert("refused", counts.refused.into());
    tools
        .details
        .insert("max_pinned", c.mcp.tools.max_pinned.into());
    components.insert("tool_integrity", tools);
    let mut results = ComponentStatus {
        configured: c.mcp.results.inspect,
        enabled: core.way_back.results.inspects(),
        implemented: true,
        healthy: true,
        backend: "memory",
        note: Some(
            "tool results, resource contents and prompt messages on MCP paths are read for \
             secrets, personal data, injected instructions and size; tool-call arguments for \
             secrets ([mcp.results])"
                .into(),
        ),
        details: BTreeMap::new(),
    };
    let mut found = serde_json::Map::new();
    for (threat, action, count) in core.stats.result_finding_counts() {
        if count > 0 {
            found.insert(format!("{threat}/{action}"), count.into());
        }
    }
    results.details.insert("findings", found.into());
    results
        .details
        .insert("secrets", serde_json::json!(c.mcp.results.secrets));
    results.details.insert(
        "personal_data",
        serde_json::json!(c.mcp.results.personal_data),
    );
    results.details.insert(
        "prompt_injection",
        serde_json::json!(c.mcp.results.prompt_injection),
    );
    results
        .details
        .insert("tool_rules", c.mcp.results.tool.len().into());
    components.insert("tool_results", results);
    let redis_configured = c.uses_redis();
    let summary = serde_json::json!({
        "enable_rate_limiting": c.enable_rate_limiting,
        "enable_ddos_protection": c.enable_ddos_protection,
        "enable_ip_management": c.enable_ip_management,
        "enable_threat_detection": c.enable_threat_detection,
        "fail_mode": c.fail_mode,
        "trusted_proxies": c.trusted_proxies,
        "forwarded_header": c.forwarded_header,
        "max_inspect_body_bytes": c.max_inspect_body_bytes,
        "oversize_body_action": c.oversize_body_action,
        "redis_configured": redis_configured,
        "redis_cluster_nodes": core.redis.as_ref().map(|r| r.cluster_nodes().to_vec()).unwrap_or_default(),
        "redis_key_prefix": c.redis_key_prefix,
        "rate_limit": c.rate_limit,
        "ddos": c.ddos,
        "upstream": c.upstream,
        "json": c.json,
        "ip": { "auto_blacklist_threshold": c.ip.auto_blacklist_threshold, "temp_block_duration": c.ip.temp_block_duration, "threat_feeds": c.ip.threat_feeds.len() },
        "threat_detection": c.threat_detection,
        "guards": core.pipeline.guard_names(),
    });
    SecurityStatus {
        components,
        statistics: core.stats.snapshot(),
        emergency_mode: core.emergency.load(Ordering::SeqCst),
        config: summary,
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: core.clock.unix_ms().saturating_sub(core.started_unix_ms) / 1000,
    }
}
