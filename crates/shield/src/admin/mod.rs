//! The admin HTTP API: status, list management, threat assessment and emergency mode under
//! `/api/security/*` (bearer token, compared in constant time), and `/health`, `/ready`,
//! `/metrics` for orchestrators and Prometheus.

mod dashboard;
mod live;
mod metrics;

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::Router;
use http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::decision::json_response;
use crate::ip::{parse_network, ListKind};
use crate::shared::Core;

type Shared = Arc<Core>;

/// Every admin call's path starts with this.
pub(crate) const API_PREFIX: &str = "/api/security/";

pub(crate) fn router(core: Shared) -> Router {
    let api = Router::new()
        .route("/api/security/status", get(status))
        .route(
            "/api/security/ip/whitelist",
            post(add_whitelist).get(list_whitelist),
        )
        .route(
            "/api/security/ip/blacklist",
            post(add_blacklist).get(list_blacklist),
        )
        .route("/api/security/ip/whitelist/{*ip}", delete(remove_whitelist))
        .route("/api/security/ip/blacklist/{*ip}", delete(remove_blacklist))
        .route("/api/security/threat/{ip}", get(threat))
        .route("/api/security/emergency", post(emergency))
        .route("/api/security/reload", post(reload))
        .route("/api/security/incidents", get(incidents))
        .route("/api/security/timeline", get(timeline))
        .route("/api/security/offenders", get(offenders))
        .route("/api/security/stream", get(live::stream))
        .route("/api/security/tools", get(tools))
        .route("/api/security/tools/approve", post(approve_tools))
        .route("/api/security/{*rest}", axum::routing::any(not_found))
        .route_layer(middleware::from_fn_with_state(core.clone(), require_token));
    Router::new()
        .route("/metrics", get(metrics::render))
        .merge(dashboard::router())
        .merge(api)
        .with_state(core.clone())
        .merge(probe_router(core))
}

/// `POST /api/security/reload`: the configuration file read again and put in force, as on
/// SIGHUP. 200 with what changed and what needs a restart; 400 with every problem when the
/// file is invalid (nothing changes); 409 when there is no file to read.
async fn reload(State(core): State<Shared>) -> Response {
    let system = crate::SecuritySystem::from_core(core);
    match system.reload_from_source("admin API").await {
        Ok(report) => json_response(StatusCode::OK, &json!(report)),
        Err(crate::ReloadError::NoSource) => json_response(
            StatusCode::CONFLICT,
            &json!({"error": "Nothing to reload", "detail": crate::ReloadError::NoSource.to_string(), "type": "invalid_request"}),
        ),
        Err(e) => invalid(format!(
            "reload refused, the running configuration stays: {}",
            e.to_string().trim_end()
        )),
    }
}

/// `/health` and `/ready` only.
pub(crate) fn probe_router(core: Shared) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .with_state(core)
}

/// `{"error": ..., "detail": ..., "type": "invalid_request"}` with 400.
fn invalid(detail: impl Into<String>) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"error": "Invalid request", "detail": detail.into(), "type": "invalid_request"}),
    )
}

/// Compares without an early exit, so the time taken says nothing about how much of a guess
/// was right. The length is not secret (tokens are generated at a fixed length).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimiser from turning the fold back into an early-exit compare.
    std::hint::black_box(diff) == 0
}

/// The credential of `Authorization: Bearer <token>` (the scheme is case-insensitive).
pub(crate) fn bearer_credential(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_first_chunk::<7>()?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| rest.trim_ascii())
}

async fn require_token(State(core): State<Shared>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| bearer_credential(v.as_bytes()));
    let ok = presented.is_some_and(|t| constant_time_eq(t, core.admin_token.as_bytes()));
    if ok {
        return next.run(request).await;
    }
    let mut response = json_response(
        StatusCode::UNAUTHORIZED,
        &json!({
            "error": "Unauthorized",
            "detail": if presented.is_some() { "Invalid admin token" } else { "Missing bearer token" },
            "type": "unauthorized",
        }),
    );
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

async fn not_found() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({"error": "Not found", "detail": "No such admin endpoint", "type": "not_found"}),
    )
}

async fn health() -> Response {
    json_response(StatusCode::OK, &json!({"status": "ok"}))
}

async fn ready(State(core): State<Shared>) -> Response {
    // A Redis backend that is down makes this `degraded`, still 200: the instance serves
    // from local state and should keep receiving traffic.
    let status = match &core.redis {
        Some(redis) if !redis.is_up() => "degraded",
        _ => "ready",
    };
    json_response(StatusCode::OK, &json!({"status": status}))
}

/// 200 with `value` as JSON.
fn ok_json(value: impl serde::Serialize) -> Response {
    match serde_json::to_value(value) {
        Ok(value) => json_response(StatusCode::OK, &value),
        Err(e) => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"error": "Internal error", "detail": e.to_string(), "type": "internal"}),
        ),
    }
}

async fn status(State(core): State<Shared>) -> Response {
    ok_json(crate::SecuritySystem::from_core(core).status().await)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListRequest {
    ip: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    ttl_seconds: Option<u64>,
}

/// The JSON body, or what is wrong with it (for a 400).
fn parse_body<T: serde::de::DeserializeOwned>(
    headers: &http::HeaderMap,
    body: &Bytes,
) -> Result<T, String> {
    let declared_json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.to_ascii_lowercase().contains("json"));
    if !declared_json {
        return Err("expected a JSON body (Content-Type: application/json)".into());
    }
    serde_json::from_slice(body).map_err(|e| format!("bad JSON body: {e}"))
}

async fn add_to(core: Shared, list: ListKind, headers: http::HeaderMap, body: Bytes) -> Response {
    let request: ListRequest = match parse_body(&headers, &body) {
        Ok(r) => r,
        Err(detail) => return invalid(detail),
    };
    let network = match parse_network(&request.ip) {
        Ok(n) => n,
        Err(message) => return invalid(format!("ip {:?}: {message}", request.ip)),
    };
    if request.ttl_seconds == Some(0) {
        return invalid("ttl_seconds must be at least 1 (omit it for no expiry)");
    }
    let reason = request
        .reason
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| "Added by admin API".to_string());
    match core.add_to_list(list, network, reason.clone(), request.ttl_seconds) {
        Ok(entry) => json_response(
            StatusCode::OK,
            &json!({
                "status": "added",
                "list": list.as_str(),
                "ip": crate::events::show_network(&network),
                "network": network.to_string(),
                "reason": reason,
                "expires_at_ms": entry.expires_at_ms,
            }),
        ),
        Err(e) => json_response(
            StatusCode::INSUFFICIENT_STORAGE,
            &json!({"error": "List full", "detail": e.to_string(), "type": "list_full"}),
        ),
    }
}

async fn add_whitelist(
    State(core): State<Shared>,
    headers: http::HeaderMap,
    body: Bytes,
) -> Response {
    add_to(core, ListKind::Whitelist, headers, body).await
}

async fn add_blacklist(
    State(core): State<Shared>,
    headers: http::HeaderMap,
    body: Bytes,
) -> Response {
    add_to(core, ListKind::Blacklist, headers, body).await
}

fn remove_from(core: &Core, list: ListKind, ip: &str) -> Response {
    let network = match parse_network(ip) {
        Ok(n) => n,
        Err(message) => return invalid(format!("ip {ip:?}: {message}")),
    };
    if core.remove_from_list(list, network) {
        json_response(
            StatusCode::OK,
            &json!({"status": "removed", "list": list.as_str(), "network": network.to_string()}),
        )
    } else {
        json_response(
            StatusCode::NOT_FOUND,
            &json!({
                "error": "Not found",
                "detail": format!("{network} is not on the {}", list.as_str()),
                "type": "not_found",
            }),
        )
    }
}

async fn remove_whitelist(State(core): State<Shared>, Path(ip): Path<String>) -> Response {
    remove_from(&core, ListKind::Whitelist, &ip)
}

async fn remove_blacklist(State(core): State<Shared>, Path(ip): Path<String>) -> Response {
    remove_from(&core, ListKind::Blacklist, &ip)
}

/// The `limit=N` of a query (the only parameter these calls take): `default` without one, at
/// most `max`; anything else is what a 400 says.
fn limit_of(query: Option<&str>, default: usize, max: usize) -> Result<usize, String> {
    let mut limit = default;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("limit", value)) => match value.parse::<usize>() {
                Ok(n) => limit = n.min(max),
                Err(_) => return Err(format!("limit {value:?} is not a number")),
            },
            _ => return Err(format!("unknown query parameter {pair:?}; only limit=N")),
        }
    }
    Ok(limit)
}

fn list_entries(core: &Core, list: ListKind, query: Option<String>) -> Response {
    let limit = match limit_of(query.as_deref(), 1000, 100_000) {
        Ok(limit) => limit,
        Err(detail) => return invalid(detail),
    };
    json_response(
        StatusCode::OK,
        &json!({
            "list": list.as_str(),
            "total": core.lists.len(list),
            "entries": core.lists.entries(list, limit),
        }),
    )
}

async fn list_whitelist(State(core): State<Shared>, RawQuery(query): RawQuery) -> Response {
    list_entries(&core, ListKind::Whitelist, query)
}

async fn list_blacklist(State(core): State<Shared>, RawQuery(query): RawQuery) -> Response {
    list_entries(&core, ListKind::Blacklist, query)
}

/// `GET /api/security/incidents?limit=N`: the latest refusals and observations, newest
/// first, with their findings (default 100, at most 4096).
async fn incidents(State(core): State<Shared>, RawQuery(query): RawQuery) -> Response {
    let limit = match limit_of(query.as_deref(), 100, crate::incidents::CAPACITY) {
        Ok(limit) => limit,
        Err(detail) => return invalid(detail),
    };
    ok_json(json!({"incidents": core.incidents.latest(limit)}))
}

/// `GET /api/security/offenders`: the 20 addresses refused most among the latest incidents.
async fn offenders(State(core): State<Shared>) -> Response {
    ok_json(json!({"offenders": crate::views::offenders(&core, 20)}))
}

/// `GET /api/security/timeline`: requests and refusals per second, the last 15 minutes,
/// oldest first.
async fn timeline(State(core): State<Shared>) -> Response {
    let seconds = core
        .timeline
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .seconds();
    ok_json(json!({"seconds": seconds}))
}

async fn threat(State(core): State<Shared>, Path(ip): Path<String>) -> Response {
    let Ok(ip) = ip.trim().parse::<IpAddr>() else {
        return invalid(format!("{ip:?} is not an IP address"));
    };
    ok_json(
        crate::SecuritySystem::from_core(core)
            .threat_assessment_shared(ip)
            .await,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmergencyRequest {
    enabled: bool,
}

async fn emergency(State(core): State<Shared>, headers: http::HeaderMap, body: Bytes) -> Response {
    let request: EmergencyRequest = match parse_body(&headers, &body) {
        Ok(r) => r,
        Err(detail) => return invalid(detail),
    };
    core.set_emergency(request.enabled, "admin");
    json_response(StatusCode::OK, &json!({"emergency_mode": request.enabled}))
}

/// Pinned, pending (with a diff) and refused tools; `?format=pins` gives the pins as a pin
/// file to review and commit (`[mcp.tools] pin_file`).
async fn tools(State(core): State<Shared>, RawQuery(query): RawQuery) -> Response {
    if query
        .as_deref()
        .is_some_and(|q| q.split('&').any(|p| p == "format=pins"))
    {
        let file = serde_json::to_value(core.tools.pin_file()).unwrap_or_default();
        return json_response(StatusCode::OK, &file);
    }
    json_response(StatusCode::OK, &core.tools.report())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveRequest {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    all: bool,
}

/// `{"name": "weather"}` approves one tool (its pending definition becomes the pin, its
/// refusal ends); `{"all": true}` every pending and refused one.
async fn approve_tools(
    State(core): State<Shared>,
    headers: http::HeaderMap,
    body: Bytes,
) -> Response {
    let request: ApproveRequest = match parse_body(&headers, &body) {
        Ok(r) => r,
        Err(detail) => return invalid(detail),
    };
    let name = match (request.name.as_deref(), request.all) {
        (Some(name), false) if !name.is_empty() => Some(name),
        (None, true) => None,
        _ => return invalid("give either {\"name\": \"<tool>\"} or {\"all\": true}".to_string()),
    };
    let approved = core.tools.approve(name).await;
    if approved.is_empty() && name.is_some() {
        return json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": "not_found", "detail": "no pending or refused tool has this name"}),
        );
    }
    for (upstream, tool) in &approved {
        tracing::info!(target: "security.tools", upstream = %upstream, name = %tool, "tool approved by an operator");
    }
    let approved: Vec<_> = approved
        .into_iter()
        .map(|(upstream, name)| json!({"upstream": upstream, "name": name}))
        .collect();
    json_response(StatusCode::OK, &json!({"approved": approved}))
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
