//! Checks of the MCP protocol itself, before any other guard looks at a request.
//!
//! - **DNS rebinding** (`SECURITY_MCP_ALLOWED_ORIGINS`, `SECURITY_MCP_ALLOWED_HOSTS`): the MCP
//!   specification requires servers to validate `Origin`, and many do not. A web page on an
//!   attacker's domain that rebinds its name to 127.0.0.1 reaches a local MCP server with its
//!   own `Host` and `Origin`; both are checked here, and anything not listed gets 403.
//! - **Malformed JSON-RPC** to an MCP path (`SECURITY_MCP_PATHS`): a body that is not JSON
//!   (-32700) or not JSON-RPC (-32600) gets 400 with a JSON-RPC error body, never reaches the
//!   server, and never crashes anything.
//! - **Header and body agree** (the 2026-07-28 revision): `Mcp-Method` must be the body's
//!   method, and `Mcp-Name` its tool, prompt (`params.name`) or resource (`params.uri`), or
//!   400: a policy keyed on headers (a load balancer, a per-tool limit) cannot be bypassed by
//!   a body that says otherwise.
//!
//! - **Sessions per client** (`SECURITY_MCP_MAX_SESSIONS_PER_CLIENT`): the sessions a client
//!   (its user when identified, else its address) uses (`Mcp-Session-Id`) are counted until
//!   `DELETE` or an idle timeout; at the cap,
//!   an `initialize` (which would open one more) or an unknown session id gets 429, so one
//!   address cannot make the server hold thousands of sessions.
//!
//! Error bodies are JSON-RPC error responses (`id` null), with codes outside the range
//! -32020..-32099 that the 2026 specification reserves.

mod sessions;

use std::borrow::Cow;
use std::sync::Arc;

pub use sessions::{SessionOwner, SessionTable};

use crate::config::McpConfig;
use crate::decision::{BlockReason, Verdict};
use crate::pipeline::{Check, Guard};
use crate::request::{BodyKind, RequestFacts};

/// JSON-RPC: the body is not JSON.
pub const PARSE_ERROR: i32 = -32700;
/// JSON-RPC: the body is JSON but not a valid request.
pub const INVALID_REQUEST: i32 = -32600;

/// What is wrong with an MCP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McpViolation {
    /// `Origin` is not allowed.
    OriginNotAllowed(String),
    /// `Host` is not allowed.
    HostNotAllowed(String),
    /// The body is not JSON-RPC.
    InvalidJsonRpc {
        /// [`PARSE_ERROR`] or [`INVALID_REQUEST`].
        code: i32,
        /// What is wrong.
        detail: String,
    },
    /// `Mcp-Method` or `Mcp-Name` disagree with the body.
    HeaderMismatch(String),
    /// The client has as many sessions open as it may.
    TooManySessions {
        /// The cap.
        limit: usize,
    },
    /// A JSON body past one of the shape limits (nesting, items, keys, batch, string).
    JsonLimit(crate::json_limits::JsonLimitExceeded),
    /// A call to a tool (prompt, resource) the client may not use, or one withheld from its
    /// list (changed since pinned, added, poisoned): answered with a JSON-RPC error carrying
    /// the request's id, as the server would answer an unknown tool.
    ToolRefused {
        /// The request's JSON-RPC id.
        id: serde_json::Value,
        /// `tool`, `prompt`, `resource`.
        subject: &'static str,
        /// Its name (a resource's URI).
        name: String,
        /// Why.
        reason: crate::tools::RefusalReason,
        /// The error message.
        detail: String,
    },
}

/// Whether `path` is one of `paths` (exact, or a prefix ending in `*`).
pub fn is_mcp_path(paths: &[String], path: &str) -> bool {
    paths.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => path == p,
    })
}

/// JSON-RPC server error for a refused session (outside the reserved -32020..-32099).
pub const TOO_MANY_SESSIONS: i32 = -32000;

impl McpViolation {
    /// Every kind's name, as [`McpViolation::kind`] gives it.
    pub const KINDS: [&'static str; 7] = [
        "origin_not_allowed",
        "host_not_allowed",
        "invalid_json_rpc",
        "mcp_header_mismatch",
        "too_many_sessions",
        "json_limit_exceeded",
        "tool_refused",
    ];

    /// The `type` in statistics and `error.data`.
    pub fn kind(&self) -> &'static str {
        match self {
            McpViolation::OriginNotAllowed(_) => "origin_not_allowed",
            McpViolation::HostNotAllowed(_) => "host_not_allowed",
            McpViolation::InvalidJsonRpc { .. } => "invalid_json_rpc",
            McpViolation::HeaderMismatch(_) => "mcp_header_mismatch",
            McpViolation::TooManySessions { .. } => "too_many_sessions",
            McpViolation::JsonLimit(_) => "json_limit_exceeded",
            McpViolation::ToolRefused { .. } => "tool_refused",
        }
    }

    /// The HTTP status: 403 for a refused origin or host, 400 for a broken request.
    pub fn status(&self) -> http::StatusCode {
        match self {
            McpViolation::OriginNotAllowed(_) | McpViolation::HostNotAllowed(_) => {
                http::StatusCode::FORBIDDEN
            }
            McpViolation::TooManySessions { .. } => http::StatusCode::TOO_MANY_REQUESTS,
            // A JSON-RPC answer to a well-formed call: the client's SDK reports the error.
            McpViolation::ToolRefused { .. } => http::StatusCode::OK,
            _ => http::StatusCode::BAD_REQUEST,
        }
    }

    /// The JSON-RPC error code.
    pub fn code(&self) -> i32 {
        match self {
            McpViolation::InvalidJsonRpc { code, .. } => *code,
            McpViolation::TooManySessions { .. } => TOO_MANY_SESSIONS,
            McpViolation::ToolRefused { .. } => crate::tools::TOOL_REFUSED,
            _ => INVALID_REQUEST,
        }
    }

    /// The JSON-RPC error message.
    pub fn message(&self) -> Cow<'_, str> {
        match self {
            McpViolation::OriginNotAllowed(origin) => {
                format!("Origin {origin} is not allowed").into()
            }
            McpViolation::HostNotAllowed(host) => format!("Host {host} is not allowed").into(),
            McpViolation::InvalidJsonRpc { detail, .. } => detail.as_str().into(),
            McpViolation::HeaderMismatch(detail) => detail.as_str().into(),
            McpViolation::TooManySessions { limit } => {
                format!("Too many sessions: this client has {limit} open; end one (DELETE) or wait")
                    .into()
            }
            McpViolation::JsonLimit(exceeded) => exceeded.to_string().into(),
            McpViolation::ToolRefused { detail, .. } => detail.as_str().into(),
        }
    }

    /// The JSON-RPC error response.
    pub fn body(&self) -> serde_json::Value {
        if let McpViolation::ToolRefused {
            id,
            subject,
            name,
            reason,
            ..
        } = self
        {
            return serde_json::json!({
                "jsonrpc": "2.0",
                "id": id,
                "error": {
                    "code": self.code(),
                    "message": self.message(),
                    "data": {"type": self.kind(), "reason": reason.as_str(), *subject: name},
                },
            });
        }
        serde_json::json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": {
                "code": self.code(),
                "message": self.message(),
                "data": {"type": self.kind()},
            },
        })
    }
}

/// One allowed `Origin` or `Host`: a scheme (origins), a host, and a port or any port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Allowed {
    any: bool,
    scheme: Option<String>,
    host: String,
    port: Option<String>,
}

/// Splits `host[:port]` (IPv6 in brackets, kept) into host and port, borrowed: this runs on
/// every request, so nothing is allocated; comparisons ignore ASCII case instead.
fn host_and_port(text: &str) -> (&str, Option<&str>) {
    let text = text.trim();
    if text.starts_with('[') {
        if let Some(end) = text.find(']') {
            return (&text[..=end], text[end + 1..].strip_prefix(':'));
        }
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            (host, Some(port))
        }
        _ => (text, None),
    }
}

impl Allowed {
    fn parse(text: &str, with_scheme: bool) -> Allowed {
        let text = text.trim();
        if text == "*" {
            return Allowed {
                any: true,
                scheme: None,
                host: String::new(),
                port: None,
            };
        }
        let (scheme, rest) = match (with_scheme, text.split_once("://")) {
            (true, Some((scheme, rest))) => (Some(scheme.to_ascii_lowercase()), rest),
            _ => (None, text),
        };
        let (host, port) = host_and_port(rest.trim_end_matches('/'));
        Allowed {
            any: false,
            scheme,
            host: host.to_ascii_lowercase(),
            port: port.map(str::to_string),
        }
    }

    fn admits(&self, scheme: Option<&str>, host: &str, port: Option<&str>) -> bool {
        self.any
            || (self.host.eq_ignore_ascii_case(host)
                && self
                    .scheme
                    .as_deref()
                    .is_none_or(|s| scheme.is_some_and(|c| c.eq_ignore_ascii_case(s)))
                && self.port.as_deref().is_none_or(|p| Some(p) == port))
    }
}

/// The loopback names a gateway listening on a loopback address accepts by default.
pub const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// The guard.
pub struct McpGuard {
    /// What `[mcp]` says, swapped whole by [`McpGuard::reconfigure`].
    rules: arc_swap::ArcSwap<McpRules>,
    /// Kept across reloads; used while the cap is on.
    sessions: SessionTable,
    clock: Arc<dyn crate::clock::Clock>,
    /// Tool pins and access rules: refused calls (set once at build).
    tools: std::sync::OnceLock<Arc<crate::tools::ToolIntegrity>>,
    results: std::sync::OnceLock<Arc<crate::dlp::ResultInspector>>,
}

/// The configured part of the guard.
#[derive(Debug)]
struct McpRules {
    paths: Vec<String>,
    origins: Vec<Allowed>,
    hosts: Vec<Allowed>,
    /// Whether sessions per client are capped.
    capped: bool,
}

impl McpRules {
    fn from_config(config: &McpConfig) -> McpRules {
        McpRules {
            paths: config.paths.clone(),
            origins: config
                .allowed_origins
                .iter()
                .map(|o| Allowed::parse(o, true))
                .collect(),
            hosts: config
                .allowed_hosts
                .iter()
                .map(|h| Allowed::parse(h, false))
                .collect(),
            capped: config.max_sessions_per_client > 0,
        }
    }
}

impl std::fmt::Debug for McpGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpGuard")
            .field("rules", &self.rules.load())
            .field("sessions", &self.sessions)
            .finish_non_exhaustive()
    }
}

impl McpGuard {
    /// A guard as `[mcp]` says.
    pub fn new(config: &McpConfig, clock: Arc<dyn crate::clock::Clock>) -> McpGuard {
        McpGuard {
            sessions: SessionTable::new(
                usize::try_from(config.max_sessions_per_client).unwrap_or(usize::MAX),
                config.session_idle_timeout.saturating_mul(1000),
                sessions::MAX_CLIENTS,
            ),
            clock,
            rules: arc_swap::ArcSwap::from_pointee(McpRules::from_config(config)),
            tools: std::sync::OnceLock::new(),
            results: std::sync::OnceLock::new(),
        }
    }

    /// Refuses calls to tools the client may not use or that were withheld from its list.
    pub fn with_tools(&self, tools: Arc<crate::tools::ToolIntegrity>) {
        let _ = self.tools.set(tools);
    }

    /// Hands the guard the result inspector, which reads tool-call arguments for secrets.
    pub fn with_results(&self, results: Arc<crate::dlp::ResultInspector>) {
        let _ = self.results.set(results);
    }

    /// Takes new paths, origins, hosts and session limits (a configuration reload); the
    /// sessions seen stay.
    pub fn reconfigure(&self, config: &McpConfig) {
        self.sessions.set_limits(
            usize::try_from(config.max_sessions_per_client).unwrap_or(usize::MAX),
            config.session_idle_timeout.saturating_mul(1000),
        );
        self.rules.store(Arc::new(McpRules::from_config(config)));
    }

    /// Whether `path` is an MCP endpoint.
    pub fn is_mcp_path(&self, path: &str) -> bool {
        is_mcp_path(&self.rules.load().paths, path)
    }

    /// What is wrong with the request, if anything.
    pub fn judge(&self, facts: &RequestFacts) -> Option<McpViolation> {
        let rules = self.rules.load();
        if !rules.hosts.is_empty() {
            // HTTP/2 and absolute-form requests carry the host in the URI instead.
            let host = facts
                .headers
                .get(http::header::HOST)
                .and_then(|v| v.to_str().ok())
                .or_else(|| facts.uri.authority().map(|a| a.as_str()))
                .unwrap_or("");
            let (name, port) = host_and_port(host);
            if !rules.hosts.iter().any(|a| a.admits(None, name, port)) {
                return Some(McpViolation::HostNotAllowed(host.to_string()));
            }
        }
        if !rules.origins.is_empty() {
            // No Origin: not a browser (or a same-origin GET), nothing to rebind.
            if let Some(origin) = facts.headers.get(http::header::ORIGIN) {
                let text = origin.to_str().unwrap_or("?");
                let allowed = text.split_once("://").is_some_and(|(scheme, rest)| {
                    let (name, port) = host_and_port(rest.trim_end_matches('/'));
                    rules
                        .origins
                        .iter()
                        .any(|a| a.admits(Some(scheme), name, port))
                });
                if !allowed && !rules.origins.iter().any(|a| a.any) {
                    return Some(McpViolation::OriginNotAllowed(text.to_string()));
                }
            }
        }
        if !is_mcp_path(&rules.paths, facts.path()) {
            return None;
        }
        if rules.capped {
            if let Some(violation) = self.session_violation(facts) {
                return Some(violation);
            }
        }
        if facts.method != http::Method::POST {
            return None;
        }
        if let Some(violation) = self.body_violation(facts) {
            return Some(violation);
        }
        if let Some(violation) = self.header_violation(facts) {
            return Some(violation);
        }
        if let Some(violation) = self.tools.get().and_then(|t| t.check_request(facts)) {
            return Some(violation);
        }
        let refused = self.results.get()?.check_arguments(facts, facts.path())?;
        let name = crate::dlp::Call::of(facts)
            .map(|c| c.name)
            .unwrap_or_default();
        Some(McpViolation::ToolRefused {
            id: refused.id,
            subject: "tool",
            name,
            reason: crate::tools::RefusalReason::SecretInArguments,
            detail: refused.detail,
        })
    }

    fn session_violation(&self, facts: &RequestFacts) -> Option<McpViolation> {
        let table = &self.sessions;
        let now = self.clock.unix_ms();
        let client = match &facts.user {
            Some(user) => sessions::SessionOwner::User(user.clone()),
            None => sessions::SessionOwner::Ip(facts.client_ip),
        };
        let client = &client;
        match facts.mcp_session_id.as_deref() {
            Some(session) if facts.method == http::Method::DELETE => {
                table.end(client, session);
                None
            }
            Some(session) => {
                (!table.touch(client, session, now)).then_some(McpViolation::TooManySessions {
                    limit: table.limit(),
                })
            }
            // A new session is about to open: refuse it at the cap.
            None if facts
                .json_rpc
                .iter()
                .any(|m| m.method.as_deref() == Some("initialize")) =>
            {
                table
                    .full(client, now)
                    .then_some(McpViolation::TooManySessions {
                        limit: table.limit(),
                    })
            }
            None => None,
        }
    }

    fn body_violation(&self, facts: &RequestFacts) -> Option<McpViolation> {
        let invalid = |code, detail: &str| {
            Some(McpViolation::InvalidJsonRpc {
                code,
                detail: detail.to_string(),
            })
        };
        match facts.body_kind {
            BodyKind::JsonRpc => None,
            // Over the inspection limit: judged by the server, not from half a document.
            _ if !facts.body_complete => None,
            BodyKind::InvalidJson => invalid(PARSE_ERROR, "Parse error: the body is not JSON"),
            BodyKind::Json => invalid(
                INVALID_REQUEST,
                "Invalid Request: the body is JSON but not a JSON-RPC message or batch",
            ),
            BodyKind::None => invalid(INVALID_REQUEST, "Invalid Request: no JSON-RPC message"),
            // Another content type: the server answers that (415), not a security layer.
            BodyKind::Other => None,
        }
    }

    fn header_violation(&self, facts: &RequestFacts) -> Option<McpViolation> {
        let header = |name: &str| {
            facts
                .headers
                .get(name)
                .map(|v| v.to_str().unwrap_or("\u{fffd}").to_string())
        };
        let method = header("mcp-method");
        let name = header("mcp-name");
        if method.is_none() && name.is_none() {
            return None;
        }
        if facts.json_rpc_batch || facts.json_rpc.len() != 1 {
            return Some(McpViolation::HeaderMismatch(
                "Invalid Request: Mcp-Method and Mcp-Name describe one message, not a batch".into(),
            ));
        }
        let message = &facts.json_rpc[0];
        if let Some(method) = &method {
            if message.method.as_deref() != Some(method.as_str()) {
                return Some(McpViolation::HeaderMismatch(format!(
                    "Invalid Request: Mcp-Method {method:?} but the body's method is {:?}",
                    message.method.as_deref().unwrap_or("")
                )));
            }
        }
        // What Mcp-Name names: the tool or prompt, or the resource's URI.
        let named = match message.method.as_deref() {
            Some("resources/read") => message.uri.as_deref(),
            Some("tools/call" | "prompts/get") => message.name.as_deref(),
            _ => None,
        };
        match (&name, named) {
            (Some(name), Some(named)) if name != named => Some(McpViolation::HeaderMismatch(
                format!("Invalid Request: Mcp-Name {name:?} but the body names {named:?}"),
            )),
            (Some(name), None) => Some(McpViolation::HeaderMismatch(format!(
                "Invalid Request: Mcp-Name {name:?} but the body names nothing"
            ))),
            (None, Some(named)) if method.is_some() => Some(McpViolation::HeaderMismatch(format!(
                "Invalid Request: the body names {named:?} but Mcp-Name is missing"
            ))),
            _ => None,
        }
    }
}

impl Guard for McpGuard {
    fn name(&self) -> &'static str {
        "mcp_protocol"
    }

    fn check<'a>(&'a self, facts: &'a RequestFacts) -> Check<'a> {
        Check::Ready(Ok(match self.judge(facts) {
            Some(violation) => Verdict::Block(BlockReason::Mcp(violation)),
            None => Verdict::pass(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::IdentityRules;
    use bytes::Bytes;

    fn facts(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> RequestFacts {
        let mut builder = http::Request::builder().method(method).uri(path);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let (mut parts, ()) = builder.body(()).expect("request").into_parts();
        RequestFacts::build(
            &mut parts,
            Bytes::from(body.to_string()),
            true,
            Some("127.0.0.1".parse().expect("ip")),
            &IdentityRules {
                trusted_proxies: Vec::new(),
                forwarded_header: crate::config::ForwardedHeader::XForwardedFor,
                user_id_header: None,
                hash_key: (1, 2),
            },
        )
    }

    fn guard(origins: &[&str], hosts: &[&str]) -> McpGuard {
        McpGuard::new(
            &McpConfig {
                allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
                allowed_hosts: hosts.iter().map(|s| s.to_string()).collect(),
                ..McpConfig::default()
            },
            crate::clock::ManualClock::starting_at(1_800_000_000_000),
        )
    }

    const CALL: &str =
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#;
    const JSON: (&str, &str) = ("content-type", "application/json");

    #[test]
    fn origins_and_hosts_outside_the_lists_are_refused() {
        let g = guard(
            &["http://localhost", "https://app.example.com:8443"],
            &["localhost", "127.0.0.1:8080"],
        );
        let ok = facts(
            "POST",
            "/mcp",
            &[
                JSON,
                ("host", "localhost:9000"),
                ("origin", "http://localhost:3000"),
            ],
            CALL,
        );
        assert_eq!(g.judge(&ok), None);
        let rebinding = facts(
            "POST",
            "/mcp",
            &[
                JSON,
                ("host", "evil.example"),
                ("origin", "http://evil.example"),
            ],
            CALL,
        );
        assert_eq!(
            g.judge(&rebinding),
            Some(McpViolation::HostNotAllowed("evil.example".into()))
        );
        let origin = facts(
            "POST",
            "/mcp",
            &[
                JSON,
                ("host", "localhost"),
                ("origin", "http://evil.example"),
            ],
            CALL,
        );
        let v = g.judge(&origin).expect("refused");
        assert_eq!(v.status(), http::StatusCode::FORBIDDEN);
        assert_eq!(v.body()["error"]["data"]["type"], "origin_not_allowed");
        // The port matters when the entry names one; the scheme always does.
        let port = facts("GET", "/", &[("host", "127.0.0.1:8081")], "");
        assert!(g.judge(&port).is_some());
        let scheme = facts(
            "GET",
            "/",
            &[("host", "localhost"), ("origin", "https://localhost")],
            "",
        );
        assert!(g.judge(&scheme).is_some());
        let tls = facts(
            "GET",
            "/",
            &[
                ("host", "localhost"),
                ("origin", "https://app.example.com:8443"),
            ],
            "",
        );
        assert_eq!(g.judge(&tls), None);
        // No Origin (a non-browser client) passes the origin check.
        let cli = facts("POST", "/mcp", &[JSON, ("host", "localhost")], CALL);
        assert_eq!(g.judge(&cli), None);
        // IPv6 in brackets.
        let g6 = guard(&[], &["[::1]"]);
        assert_eq!(
            g6.judge(&facts("GET", "/", &[("host", "[::1]:8080")], "")),
            None
        );
        assert!(g6
            .judge(&facts("GET", "/", &[("host", "[::2]:8080")], ""))
            .is_some());
        // Empty lists check nothing.
        assert_eq!(guard(&[], &[]).judge(&rebinding), None);
    }

    #[test]
    fn malformed_json_rpc_to_an_mcp_path_is_a_json_rpc_error() {
        let g = guard(&[], &[]);
        let v = g
            .judge(&facts("POST", "/mcp", &[JSON], "{not json"))
            .expect("refused");
        assert_eq!(v.code(), PARSE_ERROR);
        assert_eq!(v.status(), http::StatusCode::BAD_REQUEST);
        let body = v.body();
        assert_eq!(body["jsonrpc"], "2.0");
        assert_eq!(body["id"], serde_json::Value::Null);
        let v = g
            .judge(&facts("POST", "/mcp", &[JSON], r#"{"hello":1}"#))
            .expect("refused");
        assert_eq!(v.code(), INVALID_REQUEST);
        assert!(g.judge(&facts("POST", "/mcp", &[JSON], "")).is_some());
        assert!(g.judge(&facts("POST", "/mcp", &[JSON], "[]")).is_some());
        // Not an MCP path, or not a POST: the server's business.
        assert_eq!(g.judge(&facts("POST", "/api", &[JSON], "{not json")), None);
        assert_eq!(g.judge(&facts("GET", "/mcp", &[], "")), None);
        // Responses and notifications are JSON-RPC too.
        assert_eq!(
            g.judge(&facts(
                "POST",
                "/mcp",
                &[JSON],
                r#"{"jsonrpc":"2.0","id":1,"result":{}}"#
            )),
            None
        );
        assert_eq!(
            g.judge(&facts(
                "POST",
                "/mcp",
                &[JSON],
                r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#
            )),
            None
        );
    }

    #[test]
    fn mcp_method_and_name_must_match_the_body() {
        let g = guard(&[], &[]);
        let h = |method: &str, name: Option<&str>, body: &str| {
            let mut headers = vec![JSON, ("mcp-method", method)];
            if let Some(name) = name {
                headers.push(("mcp-name", name));
            }
            g.judge(&facts("POST", "/mcp", &headers, body))
        };
        assert_eq!(h("tools/call", Some("echo"), CALL), None);
        assert!(matches!(
            h("tools/list", None, CALL),
            Some(McpViolation::HeaderMismatch(_))
        ));
        assert!(matches!(
            h("tools/call", Some("add"), CALL),
            Some(McpViolation::HeaderMismatch(_))
        ));
        assert!(
            h("tools/call", None, CALL).is_some(),
            "a named call needs Mcp-Name"
        );
        let read =
            r#"{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///a"}}"#;
        assert_eq!(h("resources/read", Some("file:///a"), read), None);
        assert!(h("resources/read", Some("file:///b"), read).is_some());
        let list = r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#;
        assert_eq!(h("tools/list", None, list), None);
        assert!(h("tools/list", Some("echo"), list).is_some());
        let batch = format!("[{CALL},{list}]");
        assert!(h("tools/call", Some("echo"), &batch).is_some());
        // No headers (the 2025-11-25 revision): nothing to compare.
        assert_eq!(g.judge(&facts("POST", "/mcp", &[JSON], &batch)), None);
    }

    #[test]
    fn sessions_per_client_are_capped_until_one_ends_or_idles() {
        let clock = crate::clock::ManualClock::starting_at(1_800_000_000_000);
        let g = McpGuard::new(
            &McpConfig {
                max_sessions_per_client: 2,
                session_idle_timeout: 60,
                ..McpConfig::default()
            },
            clock.clone(),
        );
        let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}"#;
        let with =
            |session: &str| facts("POST", "/mcp", &[JSON, ("mcp-session-id", session)], CALL);
        assert_eq!(g.judge(&facts("POST", "/mcp", &[JSON], init)), None);
        assert_eq!(g.judge(&with("a")), None);
        assert_eq!(g.judge(&facts("POST", "/mcp", &[JSON], init)), None);
        assert_eq!(g.judge(&with("b")), None);
        // Two open: a third initialize, or a third id, is refused; the open ones go on.
        let refused = g
            .judge(&facts("POST", "/mcp", &[JSON], init))
            .expect("capped");
        assert_eq!(refused.status(), http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.code(), TOO_MANY_SESSIONS);
        assert!(g.judge(&with("c")).is_some());
        assert_eq!(g.judge(&with("a")), None);
        // DELETE ends one.
        assert_eq!(
            g.judge(&facts("DELETE", "/mcp", &[("mcp-session-id", "b")], "")),
            None
        );
        assert_eq!(g.judge(&with("c")), None);
        // Idle sessions stop counting.
        clock.advance(std::time::Duration::from_secs(61));
        assert_eq!(g.judge(&with("d")), None);
        assert_eq!(g.judge(&with("e")), None);
    }

    #[test]
    fn an_identified_user_has_one_cap_across_addresses() {
        let g = McpGuard::new(
            &McpConfig {
                max_sessions_per_client: 1,
                ..McpConfig::default()
            },
            crate::clock::ManualClock::starting_at(1_800_000_000_000),
        );
        let as_user = |user: &str, from: &str, session: &str| {
            let mut f = facts("POST", "/mcp", &[JSON, ("mcp-session-id", session)], CALL);
            f.user = Some(crate::request::UserId::Header(user.into()));
            f.client_ip = from.parse().expect("ip");
            g.judge(&f)
        };
        assert_eq!(as_user("alice", "10.0.0.1", "a1"), None);
        // Alice from elsewhere is still Alice; Bob on Alice's address is not.
        assert!(as_user("alice", "10.0.0.2", "a2").is_some());
        assert_eq!(as_user("bob", "10.0.0.1", "b1"), None);
    }
}
