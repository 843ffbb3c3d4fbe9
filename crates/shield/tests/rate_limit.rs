//! Rate limiting through the layer, on a hand-moved clock: exact allow/deny sequences, refill,
//! fractional rates, independent keys, endpoint rules, batches, whitelists, headers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::Router;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use mcp_shield::config::{self, ConfigSources};
use mcp_shield::{ConfigOverrides, ManualClock, SecuritySystem};
use serde_json::{json, Value};
use tower::ServiceExt;

const START_MS: u64 = 1_800_000_000_000;

struct Harness {
    app: Router,
    clock: std::sync::Arc<ManualClock>,
    security: SecuritySystem,
}

fn harness_with(overrides: ConfigOverrides, toml: Option<&str>) -> Harness {
    let file = toml.map(|text| {
        let dir = std::env::temp_dir().join(format!(
            "mcp-shield-rl-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        let path: PathBuf = dir.join("rules.toml");
        std::fs::write(&path, text).expect("write");
        path
    });
    let config = config::load(ConfigSources {
        file,
        overrides: overrides
            .set("ENABLE_RATE_LIMITING", true)
            .set("ADMIN_TOKEN", "rate-limit-test-token"),
        ..ConfigSources::default()
    })
    .expect("valid config");
    let clock = ManualClock::starting_at(START_MS);
    let security = SecuritySystem::with_clock(config, clock.clone()).expect("system");
    let app = Router::new()
        .fallback(|| async { "ok" })
        .layer(security.layer());
    Harness {
        app,
        clock,
        security,
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn harness(overrides: ConfigOverrides) -> Harness {
    harness_with(overrides, None)
}

struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("json")
    }
}

impl Harness {
    async fn send(&self, from: &str, request: Request<Body>) -> Reply {
        let mut request = request;
        let peer: SocketAddr = format!("{from}:40000").parse().expect("peer");
        request.extensions_mut().insert(ConnectInfo(peer));
        let response = self.app.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, from: &str) -> Reply {
        self.send(
            from,
            Request::get("/").body(Body::empty()).expect("request"),
        )
        .await
    }

    /// Sends `n` GETs and returns their statuses as a string of `.` (allowed) and `x` (429).
    async fn pattern(&self, from: &str, n: usize) -> String {
        let mut out = String::new();
        for _ in 0..n {
            out.push(match self.get(from).await.status {
                StatusCode::OK => '.',
                StatusCode::TOO_MANY_REQUESTS => 'x',
                other => panic!("unexpected {other}"),
            });
        }
        out
    }

    fn advance_ms(&self, ms: u64) {
        self.clock.advance(Duration::from_millis(ms));
    }
}

fn rpc(body: Value) -> Request<Body> {
    Request::post("/mcp")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("request")
}

fn call(tool: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": {}}})
}

#[tokio::test]
async fn sixth_of_five_is_refused_with_every_header() {
    let h = harness(
        ConfigOverrides::new()
            .set("RATE_LIMIT_PER_IP_CAPACITY", 5)
            .set("RATE_LIMIT_PER_IP_REFILL_RATE", 1.0),
    );
    for expected_remaining in (0..5).rev() {
        let reply = h.get("192.0.2.1").await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.header("x-ratelimit-limit"), Some("5"));
        assert_eq!(
            reply.header("x-ratelimit-remaining"),
            Some(expected_remaining.to_string().as_str())
        );
    }
    let refused = h.get("192.0.2.1").await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.header("x-ratelimit-limit"), Some("5"));
    assert_eq!(refused.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(refused.header("retry-after"), Some("1"));
    // Full again five seconds from now (one token a second).
    assert_eq!(
        refused.header("x-ratelimit-reset"),
        Some((START_MS / 1000 + 5).to_string().as_str())
    );
    assert_eq!(
        refused.json(),
        json!({"error": "Too many requests", "detail": "Rate limit exceeded", "type": "rate_limited", "retry_after": 1})
    );
    // Another address has its own bucket.
    assert_eq!(h.get("192.0.2.2").await.status, StatusCode::OK);
    let stats = h.security.statistics();
    assert_eq!(
        (
            stats.rate_limited,
            stats.blocked_requests,
            stats.total_requests
        ),
        (1, 1, 7)
    );
}

#[tokio::test]
async fn refill_timing_is_exact() {
    let h = harness(
        ConfigOverrides::new()
            .set("RATE_LIMIT_PER_IP_CAPACITY", 2)
            .set("RATE_LIMIT_PER_IP_REFILL_RATE", 4.0), // a token every 250 ms
    );
    assert_eq!(h.pattern("192.0.2.1", 3).await, "..x");
    h.advance_ms(249);
    assert_eq!(h.pattern("192.0.2.1", 1).await, "x");
    h.advance_ms(1);
    assert_eq!(h.pattern("192.0.2.1", 2).await, ".x");
    h.advance_ms(10_000);
    assert_eq!(
        h.pattern("192.0.2.1", 3).await,
        "..x",
        "never more than the capacity"
    );
}

#[tokio::test]
async fn fractional_rate_is_one_token_per_ten_seconds() {
    let h = harness(
        ConfigOverrides::new()
            .set("RATE_LIMIT_PER_IP_CAPACITY", 1)
            .set("RATE_LIMIT_PER_IP_REFILL_RATE", 0.1),
    );
    assert_eq!(h.pattern("192.0.2.1", 2).await, ".x");
    let refused = h.get("192.0.2.1").await;
    assert_eq!(refused.header("retry-after"), Some("10"));
    h.advance_ms(9_999);
    assert_eq!(h.pattern("192.0.2.1", 1).await, "x");
    h.advance_ms(1);
    assert_eq!(h.pattern("192.0.2.1", 2).await, ".x");
}

#[tokio::test]
async fn default_refill_is_a_tenth_of_the_capacity() {
    let h = harness(ConfigOverrides::new().set("RATE_LIMIT_PER_IP_CAPACITY", 10));
    assert_eq!(h.pattern("192.0.2.1", 11).await, "..........x");
    h.advance_ms(999);
    assert_eq!(h.pattern("192.0.2.1", 1).await, "x");
    h.advance_ms(1);
    assert_eq!(h.pattern("192.0.2.1", 2).await, ".x");
}

#[tokio::test]
async fn global_bucket_is_shared_and_a_refusal_costs_the_others_nothing() {
    let h = harness(
        ConfigOverrides::new()
            .set("RATE_LIMIT_GLOBAL_CAPACITY", 4)
            .set("RATE_LIMIT_GLOBAL_REFILL_RATE", 0.001)
            .set("RATE_LIMIT_PER_IP_CAPACITY", 2)
            .set("RATE_LIMIT_PER_IP_REFILL_RATE", 0.001),
    );
    // The first client spends its own two, then is refused by its own bucket: those refusals
    // must not drain the global one.
    assert_eq!(h.pattern("192.0.2.1", 6).await, "..xxxx");
    assert_eq!(h.pattern("192.0.2.2", 3).await, "..x");
    // Global is now empty (4 taken): a third client is refused by it.
    let refused = h.get("192.0.2.3").await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.header("x-ratelimit-limit"), Some("4"));
}

#[tokio::test]
async fn per_user_bucket_follows_the_credential_or_header() {
    let h = harness(
        ConfigOverrides::new()
            .set("RATE_LIMIT_PER_USER_CAPACITY", 2)
            .set("RATE_LIMIT_PER_USER_REFILL_RATE", 0.001),
    );
    let as_user = |token: &str| {
        Request::get("/")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .expect("request")
    };
    // One user from two addresses shares a bucket.
    assert_eq!(
        h.send("192.0.2.1", as_user("alice-token")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        h.send("192.0.2.2", as_user("alice-token")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        h.send("192.0.2.3", as_user("alice-token")).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another credential is another user; no credential, no user bucket.
    assert_eq!(
        h.send("192.0.2.1", as_user("bob-token")).await.status,
        StatusCode::OK
    );
    assert_eq!(h.pattern("192.0.2.9", 5).await, ".....");

    let h = harness(
        ConfigOverrides::new()
            .set("USER_ID_HEADER", "x-user")
            .set("WHITELIST_USERS", "batch-service")
            .set("RATE_LIMIT_PER_USER_CAPACITY", 1)
            .set("RATE_LIMIT_PER_USER_REFILL_RATE", 0.001),
    );
    let named = |user: &str| {
        Request::get("/")
            .header("x-user", user)
            .body(Body::empty())
            .expect("request")
    };
    assert_eq!(
        h.send("192.0.2.1", named("carol")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        h.send("192.0.2.2", named("carol")).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    for _ in 0..5 {
        assert_eq!(
            h.send("192.0.2.1", named("batch-service")).await.status,
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn whitelisted_ips_bypass_every_limit() {
    let h = harness(
        ConfigOverrides::new()
            .set("WHITELIST", "10.0.0.0/8")
            .set("RATE_LIMIT_PER_IP_CAPACITY", 1)
            .set("RATE_LIMIT_GLOBAL_CAPACITY", 1),
    );
    assert_eq!(h.pattern("10.1.2.3", 20).await, ".".repeat(20));
    let reply = h.get("10.1.2.3").await;
    assert!(
        reply.header("x-ratelimit-limit").is_none(),
        "no limit applies to a whitelisted client"
    );
    assert_eq!(h.pattern("192.0.2.1", 2).await, ".x");
}

const RULES: &str = r#"
[[rate_limit.rules]]
name = "expensive-tool"
path = "/mcp"
method = "POST"
mcp_method = "tools/call"
tool = "add"
key = "ip"
capacity = 2
refill_rate = 0.01

[[rate_limit.rules]]
name = "admin-area"
path = "/admin/*"
key = "global"
capacity = 1
refill_rate = 0.01
"#;

#[tokio::test]
async fn rules_match_path_method_mcp_method_and_tool() {
    let h = harness_with(ConfigOverrides::new(), Some(RULES));
    // Two `add` calls, then the rule refuses; other tools are not covered.
    assert_eq!(
        h.send("192.0.2.1", rpc(call("add"))).await.status,
        StatusCode::OK
    );
    let second = h.send("192.0.2.1", rpc(call("add"))).await;
    assert_eq!(
        second.header("x-ratelimit-limit"),
        Some("2"),
        "the tightest bucket is reported"
    );
    assert_eq!(second.header("x-ratelimit-remaining"), Some("0"));
    let third = h.send("192.0.2.1", rpc(call("add"))).await;
    assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(third.header("retry-after"), Some("100"));
    assert_eq!(
        h.send("192.0.2.1", rpc(call("echo"))).await.status,
        StatusCode::OK
    );
    // Per IP: another client may call it.
    assert_eq!(
        h.send("192.0.2.2", rpc(call("add"))).await.status,
        StatusCode::OK
    );
    // Another path or HTTP method is not covered.
    let elsewhere = Request::post("/other")
        .header("content-type", "application/json")
        .body(Body::from(call("add").to_string()))
        .expect("request");
    assert_eq!(h.send("192.0.2.1", elsewhere).await.status, StatusCode::OK);
    let put = Request::put("/mcp")
        .header("content-type", "application/json")
        .body(Body::from(call("add").to_string()))
        .expect("request");
    assert_eq!(h.send("192.0.2.1", put).await.status, StatusCode::OK);
    // A prefix rule with a global key: one request under /admin for everyone.
    let admin = |p: &str| Request::get(p).body(Body::empty()).expect("request");
    assert_eq!(
        h.send("192.0.2.5", admin("/admin/users")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        h.send("192.0.2.6", admin("/admin")).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        h.send("192.0.2.6", admin("/administrator")).await.status,
        StatusCode::OK
    );
    let status = h.security.status().await;
    assert_eq!(
        status.components["rate_limiting"].details["rules"],
        json!(["mcp-initialize", "expensive-tool", "admin-area"])
    );
}

#[tokio::test]
async fn batches_count_every_element() {
    let h = harness_with(
        ConfigOverrides::new()
            .set("RATE_LIMIT_PER_IP_CAPACITY", 5)
            .set("RATE_LIMIT_PER_IP_REFILL_RATE", 0.001),
        Some(RULES),
    );
    // A batch of three `add` calls is three tokens for the rule (capacity 2): refused whole.
    let batch = json!([call("add"), call("add"), call("add")]);
    let refused = h.send("192.0.2.1", rpc(batch)).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    // Refused whole: nothing was charged, so two single calls still fit.
    assert_eq!(
        h.send("192.0.2.1", rpc(call("add"))).await.status,
        StatusCode::OK
    );
    assert_eq!(
        h.send("192.0.2.1", rpc(call("add"))).await.status,
        StatusCode::OK
    );
    // The per-IP bucket (5) took one token per element: 2 used, a batch of 3 fits, 4 does not.
    let pings = |n: usize| {
        json!((0..n)
            .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "ping"}))
            .collect::<Vec<_>>())
    };
    assert_eq!(
        h.send("192.0.2.1", rpc(pings(4))).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        h.send("192.0.2.1", rpc(pings(3))).await.status,
        StatusCode::OK
    );
    assert_eq!(
        h.send("192.0.2.1", rpc(pings(1))).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn initialize_has_its_own_stricter_default_rule() {
    let h = harness(ConfigOverrides::new());
    let init = || {
        rpc(
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25"}}),
        )
    };
    for _ in 0..60 {
        assert_eq!(h.send("192.0.2.1", init()).await.status, StatusCode::OK);
    }
    let refused = h.send("192.0.2.1", init()).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.header("retry-after"), Some("2"));
    // Tool calls from the same client are still served.
    assert_eq!(
        h.send("192.0.2.1", rpc(call("echo"))).await.status,
        StatusCode::OK
    );
    h.advance_ms(2_000);
    assert_eq!(h.send("192.0.2.1", init()).await.status, StatusCode::OK);

    let off = harness(ConfigOverrides::new().set("RATE_LIMIT_DEFAULT_RULES", false));
    for _ in 0..80 {
        assert_eq!(off.send("192.0.2.1", init()).await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn bad_rules_are_reported_by_position_and_name() {
    let dir = std::env::temp_dir().join(format!("mcp-shield-rl-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        r#"
[[rate_limit.rules]]
name = "typo"
capacty = 2

[[rate_limit.rules]]
name = "zero"
capacity = 0
key = "ip"

[[rate_limit.rules]]
name = "zero"
capacity = 1
key = "planet"
"#,
    )
    .expect("write");
    let err = config::load(ConfigSources {
        file: Some(path),
        ..ConfigSources::default()
    })
    .expect_err("invalid rules");
    let text = err.to_string();
    assert!(text.contains("rate_limit.rules[0] (typo)"), "{text}");
    assert!(text.contains("rate_limit.rules[1] (zero)=0"), "{text}");
    assert!(!text.contains("two rules have this name"), "{text}");
    assert!(text.contains("rate_limit.rules[2] (zero)"), "{text}");
    assert!(text.contains("planet"), "{text}");
}
