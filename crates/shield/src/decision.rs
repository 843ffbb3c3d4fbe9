//! What the guards decide, and the one place that turns a decision into HTTP.

use axum::body::Body;
use http::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, Response, StatusCode};
use serde::Serialize;
use std::borrow::Cow;

/// One finding behind a refusal or an observation: what, how bad, where (the field, and for
/// an MCP tool call the tool and its argument), and the evidence (at most 120 characters, as
/// decoded: attacker-controlled text, to be shown escaped).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// `sql_injection`, `xss_attack`, ...
    #[serde(rename = "type")]
    pub threat: String,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: &'static str,
    /// Where: `query:q`, `json:params.arguments.sql`, `header:User-Agent`, `path`.
    pub field: String,
    /// The MCP tool the request called (`tools/call`), wherever in it the finding is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// The tool argument the field is in (`sql` for `json:params.arguments.sql`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub argument: Option<String>,
    /// The decoded evidence.
    pub evidence: String,
    /// What exactly, where the type has kinds (`hidden_instruction` for `tool_poisoning`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

impl Finding {
    /// A finding from a threat indicator, in a request to `tool` (if any).
    pub fn from_indicator(indicator: &crate::threat::ThreatIndicator, tool: Option<&str>) -> Self {
        let capped = |text: &str, n: usize| text.chars().take(n).collect::<String>();
        Finding {
            threat: indicator.threat_type.as_str().to_string(),
            severity: indicator.severity.as_str(),
            field: capped(&indicator.location, 128),
            tool: tool.map(|t| capped(t, 64)),
            argument: indicator.argument.as_deref().map(|a| capped(a, 64)),
            evidence: indicator.snippet.clone(),
            kind: None,
        }
    }

    /// `sql_injection in json:params.arguments.query (tool search)`, for log lines.
    pub fn describe(&self) -> String {
        match &self.tool {
            Some(tool) => format!("{} in {} (tool {tool})", self.threat, self.field),
            None => format!("{} in {}", self.threat, self.field),
        }
    }
}

/// Why a request is refused. Guards return this; they never build responses themselves.
#[derive(Debug, Clone, PartialEq)]
pub enum BlockReason {
    /// A token bucket is empty.
    RateLimited {
        /// Which bucket (`ip`, `user`, `global`, or a rule's name).
        bucket: String,
        /// Its capacity.
        limit: u64,
        /// Seconds until a token is back.
        retry_after_secs: u64,
        /// Unix seconds when the bucket is full again.
        reset_unix: u64,
    },
    /// DDoS protection refused the request.
    Ddos {
        /// What was seen ("High request rate").
        detail: String,
        /// Seconds before trying again makes sense.
        retry_after_secs: u64,
        /// This request started the block (logged at WARN; the repeats are not).
        first: bool,
    },
    /// The client's address is refused.
    IpBlocked {
        /// Why: "IP is blacklisted", a feed, a country, a reputation.
        detail: String,
    },
    /// Threat detection found an attack.
    Threat {
        /// Threat types (`sql_injection`, `xss_attack`, ...): the response's `threats`.
        threats: Vec<String>,
        /// What was found where, for logs, events and the threat assessment; never sent to
        /// the client.
        findings: Vec<Finding>,
    },
    /// The body is larger than the inspection limit and the policy is to reject.
    PayloadTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// A guard failed and `SECURITY_FAIL_MODE=closed`.
    Unavailable {
        /// Which guard.
        guard: &'static str,
    },
    /// The request could not be read (a broken body).
    BadRequest {
        /// What was wrong.
        detail: String,
    },
    /// The MCP protocol checks refused it (answered with a JSON-RPC error body).
    Mcp(crate::mcp::McpViolation),
    /// The upstream is working on all it can and the request found no place in the queue, or
    /// waited there too long (overload protection: 503 with `Retry-After`).
    Overloaded {
        /// The admission class it was refused in (`trusted`, `known`, `unknown`, `suspect`),
        /// or `unclassified`.
        class: &'static str,
        /// Why: `queue_full`, `pushed_out`, `queue_timeout`, `emergency_reserve`.
        why: &'static str,
        /// Seconds before trying again makes sense.
        retry_after_secs: u64,
    },
}

impl BlockReason {
    /// The body's `type`, also the statistics key.
    pub fn kind(&self) -> &'static str {
        match self {
            BlockReason::RateLimited { .. } => "rate_limited",
            BlockReason::Ddos { .. } => "ddos_blocked",
            BlockReason::Overloaded { .. } => "overloaded",
            BlockReason::IpBlocked { .. } => "ip_blocked",
            BlockReason::Threat { .. } => "threat_detected",
            BlockReason::PayloadTooLarge { .. } => "payload_too_large",
            BlockReason::Unavailable { .. } => "security_unavailable",
            BlockReason::BadRequest { .. } => "invalid_request",
            BlockReason::Mcp(violation) => violation.kind(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            BlockReason::RateLimited { .. } | BlockReason::Ddos { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            BlockReason::IpBlocked { .. } | BlockReason::Threat { .. } => StatusCode::FORBIDDEN,
            BlockReason::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BlockReason::Unavailable { .. } | BlockReason::Overloaded { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            BlockReason::BadRequest { .. } => StatusCode::BAD_REQUEST,
            BlockReason::Mcp(violation) => violation.status(),
        }
    }

    /// The body's fields, borrowed: rendering serializes this straight to bytes.
    fn fields(&self) -> BlockBody<'_> {
        let (error, detail): (&str, Cow<'_, str>) = match self {
            BlockReason::RateLimited { .. } => ("Too many requests", "Rate limit exceeded".into()),
            BlockReason::Ddos { detail, .. } => {
                ("Request blocked by DDoS protection", detail.as_str().into())
            }
            BlockReason::IpBlocked { detail } => {
                ("Access denied by security policy", detail.as_str().into())
            }
            BlockReason::Threat { .. } => (
                "Request blocked by threat detection",
                "Malicious content detected".into(),
            ),
            BlockReason::PayloadTooLarge { limit } => (
                "Request body too large",
                format!("Request bodies over {limit} bytes are not accepted").into(),
            ),
            BlockReason::Unavailable { guard } => (
                "Security check unavailable",
                format!("{guard} failed and the fail mode is closed").into(),
            ),
            BlockReason::BadRequest { detail } => ("Bad request", detail.as_str().into()),
            BlockReason::Overloaded { .. } => (
                "Service overloaded",
                "The server is working on all the requests it can; retry shortly".into(),
            ),
            // Rendered as a JSON-RPC error by `body` and `into_response`; these words are only
            // what a caller of `fields` would see.
            BlockReason::Mcp(violation) => {
                ("Refused by the MCP protocol checks", violation.message())
            }
        };
        let retry_after = match self {
            BlockReason::RateLimited {
                retry_after_secs, ..
            }
            | BlockReason::Ddos {
                retry_after_secs, ..
            }
            | BlockReason::Overloaded {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        };
        let threats = match self {
            BlockReason::Threat { threats, .. } => Some(threats.as_slice()),
            _ => None,
        };
        BlockBody {
            error,
            detail,
            kind: self.kind(),
            retry_after,
            threats,
        }
    }

    /// The seed's JSON body (a JSON-RPC error response for an MCP protocol violation: what
    /// an MCP client can read).
    pub fn body(&self) -> serde_json::Value {
        match self {
            BlockReason::Mcp(violation) => violation.body(),
            _ => serde_json::to_value(self.fields()).unwrap_or(serde_json::Value::Null),
        }
    }

    /// The full response: status, JSON body, and the headers the seed gives each kind.
    pub fn into_response(&self) -> Response<Body> {
        // A struct of borrowed strings serializes without building a JSON tree first.
        let bytes = match self {
            BlockReason::Mcp(violation) => violation.body().to_string().into_bytes(),
            _ => serde_json::to_vec(&self.fields()).unwrap_or_default(),
        };
        let mut response = Response::new(Body::from(bytes));
        *response.status_mut() = self.status();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let headers = response.headers_mut();
        match self {
            BlockReason::RateLimited {
                limit,
                retry_after_secs,
                reset_unix,
                ..
            } => {
                headers.insert("x-ratelimit-limit", HeaderValue::from(*limit));
                headers.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
                headers.insert("x-ratelimit-reset", HeaderValue::from(*reset_unix));
                headers.insert(RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            BlockReason::Ddos {
                retry_after_secs, ..
            }
            | BlockReason::Overloaded {
                retry_after_secs, ..
            } => {
                headers.insert(RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            _ => {}
        }
        response
    }
}

/// The fields of a block response, in the seed's order.
#[derive(Serialize)]
struct BlockBody<'a> {
    error: &'a str,
    detail: Cow<'a, str>,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    threats: Option<&'a [String]>,
}

/// A JSON response with the given status.
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The rate-limit state of the tightest bucket that covered an allowed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitStatus {
    /// Capacity of the bucket.
    pub limit: u64,
    /// Whole tokens left in it.
    pub remaining: u64,
}

/// What an allowed request carries back: headers to add to the response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotations {
    /// The tightest rate limit that applied.
    pub rate_limit: Option<RateLimitStatus>,
    /// The client was whitelisted and skipped every guard.
    pub whitelisted: bool,
}

impl Annotations {
    /// Keeps the tighter of two rate limits (fewest tokens left).
    pub fn merge(&mut self, other: Annotations) {
        self.whitelisted |= other.whitelisted;
        self.rate_limit = match (self.rate_limit, other.rate_limit) {
            (Some(a), Some(b)) => Some(if b.remaining < a.remaining { b } else { a }),
            (a, b) => a.or(b),
        };
    }

    /// Adds `X-RateLimit-Limit` / `X-RateLimit-Remaining` to an allowed response.
    pub fn apply(&self, headers: &mut HeaderMap) {
        if let Some(rl) = self.rate_limit {
            headers.insert("x-ratelimit-limit", HeaderValue::from(rl.limit));
            headers.insert("x-ratelimit-remaining", HeaderValue::from(rl.remaining));
        }
    }
}

/// A guard's answer for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Go on to the next guard.
    Pass(Annotations),
    /// Refuse the request.
    Block(BlockReason),
}

impl Verdict {
    /// Pass with nothing to add.
    pub fn pass() -> Self {
        Verdict::Pass(Annotations::default())
    }
}

/// The pipeline's answer for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Forward it, adding these headers to the response.
    Allow(Annotations),
    /// Refuse it.
    Block(BlockReason),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rate_limited_response_has_every_header() {
        let reason = BlockReason::RateLimited {
            bucket: "ip".into(),
            limit: 100,
            retry_after_secs: 60,
            reset_unix: 1_640_995_200,
        };
        let response = reason.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let h = response.headers();
        assert_eq!(h["x-ratelimit-limit"], "100");
        assert_eq!(h["x-ratelimit-remaining"], "0");
        assert_eq!(h["x-ratelimit-reset"], "1640995200");
        assert_eq!(h["retry-after"], "60");
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(reason.body()["retry_after"], 60);
        assert_eq!(reason.body()["type"], "rate_limited");
    }

    #[test]
    fn seed_bodies() {
        let ip = BlockReason::IpBlocked {
            detail: "IP is blacklisted".into(),
        };
        assert_eq!(ip.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            ip.body(),
            json!({"error": "Access denied by security policy", "detail": "IP is blacklisted", "type": "ip_blocked"})
        );
        let ddos = BlockReason::Ddos {
            detail: "Suspicious request pattern detected".into(),
            retry_after_secs: 5,
            first: true,
        };
        assert_eq!(ddos.into_response().headers()["retry-after"], "5");
        assert_eq!(ddos.body()["error"], "Request blocked by DDoS protection");
        let threat = BlockReason::Threat {
            threats: vec!["sql_injection".into()],
            findings: Vec::new(),
        };
        assert_eq!(threat.body()["threats"], json!(["sql_injection"]));
        assert_eq!(threat.body()["type"], "threat_detected");
    }

    #[test]
    fn tightest_rate_limit_wins() {
        let mut a = Annotations {
            rate_limit: Some(RateLimitStatus {
                limit: 100,
                remaining: 50,
            }),
            whitelisted: false,
        };
        a.merge(Annotations {
            rate_limit: Some(RateLimitStatus {
                limit: 5,
                remaining: 2,
            }),
            whitelisted: false,
        });
        assert_eq!(a.rate_limit.map(|r| r.limit), Some(5));
    }
}
