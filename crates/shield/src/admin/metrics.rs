//! `/metrics` in the Prometheus text format (version 0.0.4): the seed's counters and a few
//! gauges. Rendered by hand: six counters do not need an exporter crate and its dependencies.

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use http::header::{HeaderValue, CONTENT_TYPE};

use crate::ip::ListKind;
use crate::system::Core;

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
