//! `/metrics` in the Prometheus text format (version 0.0.4): the seed's counters, threat
//! indicators by type, MCP violations by kind, and a few gauges. Rendered by hand: a dozen
//! series do not need an exporter crate and its dependencies.

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use http::header::{HeaderValue, CONTENT_TYPE};

use crate::ip::ListKind;
use crate::shared::Core;

pub(super) async fn render(State(core): State<Arc<Core>>) -> Response {
    let mut response = Response::new(axum::body::Body::from(text(&core)));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
    );
}

/// The metrics text.
pub(crate) fn text(core: &Core) -> String {
    let s = core.stats.snapshot();
    let mut out = String::with_capacity(2048);
    let counters = [
        (
            "mcp_shield_requests_total",
            "Requests that reached the security pipeline (total_requests).",
            s.total_requests,
        ),
        (
            "mcp_shield_blocked_requests_total",
            "Requests refused by any guard (blocked_requests).",
            s.blocked_requests,
        ),
        (
            "mcp_shield_rate_limited_total",
            "Requests refused by rate limiting (rate_limited).",
            s.rate_limited,
        ),
        (
            "mcp_shield_ddos_blocked_total",
            "Requests refused by DDoS protection (ddos_blocked).",
            s.ddos_blocked,
        ),
        (
            "mcp_shield_ip_blocked_total",
            "Requests refused by IP policy (ip_blocked).",
            s.ip_blocked,
        ),
        (
            "mcp_shield_threat_detected_total",
            "Requests refused by threat detection (threat_detected).",
            s.threat_detected,
        ),
        (
            "mcp_shield_payload_too_large_total",
            "Request bodies refused for exceeding the inspection limit.",
            s.payload_too_large,
        ),
        (
            "mcp_shield_overloaded_total",
            "Requests refused with 503 because the upstream was at capacity (overloaded).",
            s.overloaded,
        ),
        (
            "mcp_shield_whitelisted_requests_total",
            "Requests from whitelisted clients (no guard ran).",
            s.whitelisted,
        ),
        (
            "mcp_shield_guard_errors_total",
            "Internal guard failures, handled by the fail mode.",
            s.guard_errors,
        ),
    ];
    for (name, help, value) in counters {
        metric(&mut out, name, "counter", help, value);
    }
    let _ = write!(
        out,
        "# HELP mcp_shield_ip_list_entries Entries on the allow and deny lists.\n# TYPE mcp_shield_ip_list_entries gauge\nmcp_shield_ip_list_entries{{list=\"whitelist\"}} {}\nmcp_shield_ip_list_entries{{list=\"blacklist\"}} {}\n",
        core.lists.len(ListKind::Whitelist),
        core.lists.len(ListKind::Blacklist),
    );
    metric(
        &mut out,
        "mcp_shield_emergency_mode",
        "gauge",
        "1 while emergency mode is on.",
        u64::from(core.emergency.load(Ordering::Relaxed)),
    );
    // Every series written, zeros included: a series that appears only after its first
    // event breaks `rate()` over it.
    let _ = write!(
        out,
        "# HELP mcp_shield_threats_total Threat indicators by type: in refused requests (action=\"blocked\") and reported without refusing, below the block severity or in monitor mode (action=\"observed\"); custom patterns count as type=\"custom\".\n# TYPE mcp_shield_threats_total counter\n"
    );
    for count in core.stats.threat_counts() {
        for (action, value) in [("blocked", count.blocked), ("observed", count.observed)] {
            let _ = writeln!(
                out,
                "mcp_shield_threats_total{{type=\"{}\",action=\"{action}\"}} {value}",
                count.threat_type
            );
        }
    }
    let _ = write!(
        out,
        "# HELP mcp_shield_mcp_violations_total Requests refused by the MCP protocol checks, by kind.\n# TYPE mcp_shield_mcp_violations_total counter\n"
    );
    for (kind, value) in core.stats.mcp_violation_counts() {
        let _ = writeln!(
            out,
            "mcp_shield_mcp_violations_total{{kind=\"{kind}\"}} {value}"
        );
    }
    let _ = write!(
        out,
        "# HELP mcp_shield_result_findings_total Findings in tool results and call arguments, by type and action.\n# TYPE mcp_shield_result_findings_total counter\n"
    );
    for (threat, action, value) in core.stats.result_finding_counts() {
        let _ = writeln!(
            out,
            "mcp_shield_result_findings_total{{type=\"{threat}\",action=\"{action}\"}} {value}"
        );
    }
    if let Some(admission) = &core.admission {
        let view = admission.view();
        for (name, help, value) in [
            (
                "mcp_shield_upstream_concurrency_limit",
                "Requests the upstream may have in flight now (learned from its latency unless fixed).",
                u64::from(view.limit),
            ),
            (
                "mcp_shield_upstream_in_flight",
                "Requests at the upstream now.",
                u64::from(view.in_flight),
            ),
            (
                "mcp_shield_upstream_queued",
                "Requests waiting for a place at the upstream now.",
                u64::from(view.queued),
            ),
            (
                "mcp_shield_upstream_shedding",
                "1 while requests are being refused for want of upstream capacity.",
                u64::from(view.shedding),
            ),
        ] {
            metric(&mut out, name, "gauge", help, value);
        }
        let _ = write!(
            out,
            "# HELP mcp_shield_upstream_baseline_latency_seconds The upstream's latency at low load, learned.\n# TYPE mcp_shield_upstream_baseline_latency_seconds gauge\nmcp_shield_upstream_baseline_latency_seconds {}\n",
            view.baseline_latency_ms.unwrap_or(0.0) / 1000.0
        );
        let _ = write!(
            out,
            "# HELP mcp_shield_upstream_shed_total Requests refused for want of upstream capacity, by admission class.\n# TYPE mcp_shield_upstream_shed_total counter\n"
        );
        for (class, value) in &view.shed_total {
            let _ = writeln!(
                out,
                "mcp_shield_upstream_shed_total{{class=\"{class}\"}} {value}"
            );
        }
        metric(
            &mut out,
            "mcp_shield_upstream_queued_total",
            "counter",
            "Requests that waited for a place at the upstream.",
            view.queued_total,
        );
    }
    if let Some(redis) = &core.redis {
        metric(
            &mut out,
            "mcp_shield_redis_up",
            "gauge",
            "1 while Redis answers; 0 while local state serves (degraded).",
            u64::from(redis.is_up()),
        );
    }
    out
}
