//! The security layer in-process, through `tower::ServiceExt::oneshot`: lists, forwarding,
//! admin API, statistics, metrics, bodies.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::routing::post;
use axum::Router;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use mcp_shield::config::{self, ConfigSources};
use mcp_shield::{Config, ConfigOverrides, ManualClock, SecuritySystem};
use serde_json::{json, Value};
use tower::ServiceExt;

const TOKEN: &str = "test-admin-token-0123456789";

fn config(overrides: ConfigOverrides) -> Config {
    config::load(ConfigSources {
        overrides: overrides.set("ADMIN_TOKEN", TOKEN),
        ..ConfigSources::default()
    })
    .expect("valid config")
}

fn system(overrides: ConfigOverrides) -> SecuritySystem {
    SecuritySystem::from_config(config(overrides)).expect("system")
}

/// An app that echoes the request body, behind the layer, with the admin API.
fn build_app(security: &SecuritySystem) -> Router {
    Router::new()
        .route("/mcp", post(|body: Bytes| async move { body }))
        .fallback(|| async { "upstream" })
        .merge(security.admin_router())
        .layer(security.layer())
}

struct Sent {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Sent {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

async fn send(app: &Router, from: &str, request: Request<Body>) -> Sent {
    let mut request = request;
    let peer: SocketAddr = if from.contains(':') {
        format!("[{from}]:40000")
    } else {
        format!("{from}:40000")
    }
    .parse()
    .expect("peer");
    request.extensions_mut().insert(ConnectInfo(peer));
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    Sent {
        status,
        headers,
        body,
    }
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).expect("request")
}

fn admin(method: &str, path: &str, body: Option<Value>) -> Request<Body> {
    support::admin_request(TOKEN, method, path, body)
}

fn assert_ip_blocked(sent: &Sent) {
    assert_eq!(sent.status, StatusCode::FORBIDDEN);
    assert_eq!(
        sent.json(),
        json!({"error": "Access denied by security policy", "detail": "IP is blacklisted", "type": "ip_blocked"})
    );
}

#[tokio::test]
async fn blacklisted_ipv4_cidr_and_ipv6_get_403_and_neighbours_pass() {
    let security = system(ConfigOverrides::new().set(
        "BLACKLIST",
        "198.51.100.7, 203.0.113.0/24, 2001:db8:bad::/48",
    ));
    let app = build_app(&security);
    assert_ip_blocked(&send(&app, "198.51.100.7", get("/x")).await);
    assert_eq!(
        send(&app, "198.51.100.8", get("/x")).await.status,
        StatusCode::OK
    );
    assert_ip_blocked(&send(&app, "203.0.113.200", get("/x")).await);
    assert_eq!(
        send(&app, "203.0.114.1", get("/x")).await.status,
        StatusCode::OK
    );
    assert_ip_blocked(&send(&app, "2001:db8:bad:1::9", get("/x")).await);
    assert_eq!(
        send(&app, "2001:db8:bae::9", get("/x")).await.status,
        StatusCode::OK
    );
    // An IPv4 client seen through a dual-stack socket is still the IPv4 address.
    assert_ip_blocked(&send(&app, "::ffff:198.51.100.7", get("/x")).await);
}

#[tokio::test]
async fn admin_api_adds_and_deletes_and_delete_restores_access() {
    let security = system(ConfigOverrides::new());
    let app = build_app(&security);
    let added = send(
        &app,
        "127.0.0.1",
        admin(
            "POST",
            "/api/security/ip/blacklist",
            Some(json!({"ip": "192.0.2.0/24", "reason": "Malicious activity detected"})),
        ),
    )
    .await;
    assert_eq!(added.status, StatusCode::OK, "{:?}", added.body);
    assert_eq!(added.json()["network"], "192.0.2.0/24");
    assert_ip_blocked(&send(&app, "192.0.2.55", get("/")).await);

    let listed = send(
        &app,
        "127.0.0.1",
        admin("GET", "/api/security/ip/blacklist", None),
    )
    .await;
    assert_eq!(listed.json()["total"], 1);
    assert_eq!(
        listed.json()["entries"][0]["reason"],
        "Malicious activity detected"
    );

    let threat = send(
        &app,
        "127.0.0.1",
        admin("GET", "/api/security/threat/192.0.2.55", None),
    )
    .await;
    assert_eq!(threat.status, StatusCode::OK);
    let t = threat.json();
    assert_eq!(t["blocked"], true);
    assert_eq!(t["blacklist"]["network"], "192.0.2.0/24");
    assert_eq!(t["threat_level"], "high");
    assert!(t["statistics"]["ip_blocked"].as_u64().expect("count") >= 1);

    // The CIDR goes in the path unencoded or percent-encoded.
    let deleted = send(
        &app,
        "127.0.0.1",
        admin("DELETE", "/api/security/ip/blacklist/192.0.2.0/24", None),
    )
    .await;
    assert_eq!(deleted.status, StatusCode::OK, "{:?}", deleted.body);
    assert_eq!(
        send(&app, "192.0.2.55", get("/")).await.status,
        StatusCode::OK
    );
    let again = send(
        &app,
        "127.0.0.1",
        admin("DELETE", "/api/security/ip/blacklist/192.0.2.0%2F24", None),
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);

    // Whitelist beats blacklist: a trusted host inside a blocked network passes.
    send(
        &app,
        "127.0.0.1",
        admin(
            "POST",
            "/api/security/ip/blacklist",
            Some(json!({"ip": "2001:db8::/32"})),
        ),
    )
    .await;
    send(
        &app,
        "127.0.0.1",
        admin(
            "POST",
            "/api/security/ip/whitelist",
            Some(json!({"ip": "2001:db8::5", "reason": "Trusted service"})),
        ),
    )
    .await;
    assert_eq!(
        send(&app, "2001:db8::5", get("/")).await.status,
        StatusCode::OK
    );
    assert_ip_blocked(&send(&app, "2001:db8::6", get("/")).await);
    let removed = send(
        &app,
        "127.0.0.1",
        admin("DELETE", "/api/security/ip/whitelist/2001:db8::5", None),
    )
    .await;
    assert_eq!(removed.status, StatusCode::OK);
    assert_ip_blocked(&send(&app, "2001:db8::5", get("/")).await);
}

#[tokio::test]
async fn list_entries_expire_after_their_ttl() {
    let clock = ManualClock::starting_at(1_800_000_000_000);
    let security =
        SecuritySystem::with_clock(config(ConfigOverrides::new()), clock.clone()).expect("system");
    let app = build_app(&security);
    let added = send(
        &app,
        "127.0.0.1",
        admin(
            "POST",
            "/api/security/ip/blacklist",
            Some(json!({"ip": "198.51.100.1", "ttl_seconds": 60})),
        ),
    )
    .await;
    assert_eq!(added.json()["expires_at_ms"], 1_800_000_060_000u64);
    assert_ip_blocked(&send(&app, "198.51.100.1", get("/")).await);
    clock.advance(Duration::from_secs(59));
    assert_ip_blocked(&send(&app, "198.51.100.1", get("/")).await);
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        send(&app, "198.51.100.1", get("/")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn forwarded_address_is_honoured_only_from_a_trusted_proxy() {
    let security = system(
        ConfigOverrides::new()
            .set("TRUSTED_PROXIES", "10.0.0.0/8")
            .set("BLACKLIST", "203.0.113.9"),
    );
    let app = build_app(&security);
    let forwarded = |xff: &str| {
        Request::get("/")
            .header("x-forwarded-for", xff)
            .body(Body::empty())
            .expect("request")
    };
    // Through the trusted proxy: the client behind it is blocked.
    assert_ip_blocked(&send(&app, "10.1.1.1", forwarded("203.0.113.9")).await);
    // A forged left-most entry does not help a blocked client hide.
    assert_ip_blocked(&send(&app, "10.1.1.1", forwarded("1.1.1.1, 203.0.113.9")).await);
    // A direct client cannot frame someone else or launder itself.
    assert_eq!(
        send(&app, "192.0.2.1", forwarded("203.0.113.9"))
            .await
            .status,
        StatusCode::OK
    );
    assert_ip_blocked(&send(&app, "203.0.113.9", forwarded("192.0.2.1")).await);
}

#[tokio::test]
async fn admin_calls_need_the_right_token() {
    let security = system(ConfigOverrides::new());
    let app = build_app(&security);
    let none = send(&app, "127.0.0.1", get("/api/security/status")).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.json()["type"], "unauthorized");
    let wrong = Request::get("/api/security/status")
        .header("authorization", "Bearer not-the-token")
        .body(Body::empty())
        .expect("request");
    assert_eq!(
        send(&app, "127.0.0.1", wrong).await.status,
        StatusCode::UNAUTHORIZED
    );
    let post = Request::post("/api/security/ip/blacklist")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"ip":"1.2.3.4"}"#))
        .expect("request");
    assert_eq!(
        send(&app, "127.0.0.1", post).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        security.ip_lists().len(mcp_shield::ip::ListKind::Blacklist),
        0
    );
    let ok = send(
        &app,
        "127.0.0.1",
        admin("GET", "/api/security/status", None),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    let status = ok.json();
    assert_eq!(status["components"]["ip_lists"]["enabled"], true);
    assert_eq!(status["components"]["rate_limiting"]["implemented"], true);
    assert_eq!(status["components"]["rate_limiting"]["enabled"], false);
    assert_eq!(
        status["components"]["threat_detection"]["implemented"],
        true
    );
    assert_eq!(status["components"]["threat_detection"]["enabled"], false);
    assert_eq!(status["emergency_mode"], false);
    assert!(status["statistics"]["total_requests"].is_u64());
}

#[tokio::test]
async fn an_operator_with_the_token_is_never_locked_out() {
    let security = system(ConfigOverrides::new().set("BLACKLIST", "127.0.0.0/8"));
    let app = build_app(&security);
    assert_ip_blocked(&send(&app, "127.0.0.1", get("/api/security/status")).await);
    let ok = send(
        &app,
        "127.0.0.1",
        admin("DELETE", "/api/security/ip/blacklist/127.0.0.0/8", None),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(
        send(&app, "127.0.0.1", get("/")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn bad_admin_input_is_400_invalid_request() {
    let security = system(ConfigOverrides::new());
    let app = build_app(&security);
    let cases = [
        admin(
            "POST",
            "/api/security/ip/blacklist",
            Some(json!({"ip": "not-an-ip"})),
        ),
        admin(
            "POST",
            "/api/security/ip/blacklist",
            Some(json!({"ip": "10.0.0.0/33"})),
        ),
        admin(
            "POST",
            "/api/security/ip/whitelist",
            Some(json!({"reason": "no ip"})),
        ),
        admin(
            "POST",
            "/api/security/ip/whitelist",
            Some(json!({"ip": "1.2.3.4", "ttl_seconds": -1})),
        ),
        admin(
            "POST",
            "/api/security/ip/whitelist",
            Some(json!({"ip": "1.2.3.4", "ttl_seconds": 0})),
        ),
        admin(
            "POST",
            "/api/security/emergency",
            Some(json!({"enabled": "yes"})),
        ),
        admin("GET", "/api/security/threat/999.1.1.1", None),
        admin("DELETE", "/api/security/ip/blacklist/garbage", None),
        Request::post("/api/security/ip/blacklist")
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .body(Body::from("{not json"))
            .expect("request"),
        Request::post("/api/security/ip/blacklist")
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "text/plain")
            .body(Body::from("1.2.3.4"))
            .expect("request"),
    ];
    for request in cases {
        let what = format!("{} {}", request.method(), request.uri());
        let sent = send(&app, "127.0.0.1", request).await;
        assert_eq!(sent.status, StatusCode::BAD_REQUEST, "{what}");
        assert_eq!(sent.json()["type"], "invalid_request", "{what}");
        assert!(sent.json()["detail"].is_string(), "{what}");
    }
}

#[tokio::test]
async fn statistics_count_and_metrics_parse() {
    let security = system(ConfigOverrides::new().set("BLACKLIST", "198.51.100.0/24"));
    let app = build_app(&security);
    for _ in 0..3 {
        send(&app, "192.0.2.1", get("/")).await;
    }
    for _ in 0..2 {
        send(&app, "198.51.100.1", get("/")).await;
    }
    // Probes are answered before the guards, even for a blocked client, and are not counted.
    let health = send(&app, "198.51.100.1", get("/health")).await;
    assert_eq!(health.status, StatusCode::OK);
    let stats = security.statistics();
    assert_eq!(
        (
            stats.total_requests,
            stats.blocked_requests,
            stats.ip_blocked
        ),
        (5, 2, 2)
    );
    assert_eq!(
        (
            stats.rate_limited,
            stats.ddos_blocked,
            stats.threat_detected
        ),
        (0, 0, 0)
    );

    let metrics = send(&app, "198.51.100.1", get("/metrics")).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(metrics.headers["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("text/plain"));
    let text = String::from_utf8(metrics.body.to_vec()).expect("utf-8");
    let samples = parse_prometheus(&text);
    assert_eq!(samples["mcp_shield_requests_total"], 5.0);
    assert_eq!(samples["mcp_shield_blocked_requests_total"], 2.0);
    assert_eq!(samples["mcp_shield_ip_blocked_total"], 2.0);
    assert_eq!(
        samples["mcp_shield_ip_list_entries{list=\"blacklist\"}"],
        1.0
    );
    for key in ["rate_limited", "ddos_blocked", "threat_detected"] {
        assert_eq!(samples[&format!("mcp_shield_{key}_total")], 0.0);
    }
}

/// A strict reader of the Prometheus text format: every line is a comment (`# HELP name
/// text`, `# TYPE name counter|gauge`) or `name{labels} value`, every sample has a TYPE before
/// it, and names are valid.
fn parse_prometheus(text: &str) -> std::collections::HashMap<String, f64> {
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    };
    let mut typed = std::collections::HashSet::new();
    let mut samples = std::collections::HashMap::new();
    assert!(text.ends_with('\n'), "exposition must end with a newline");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let keyword = parts.next().expect("keyword");
            let name = parts.next().expect("metric name");
            assert!(name_ok(name), "bad name in {line:?}");
            match keyword {
                "HELP" => {}
                "TYPE" => {
                    let kind = parts.next().expect("type");
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                        "{line:?}"
                    );
                    typed.insert(name.to_string());
                }
                _ => panic!("unknown comment {line:?}"),
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let name = series.split('{').next().expect("name");
        assert!(name_ok(name), "bad name in {line:?}");
        if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
            assert!(
                labels.starts_with('{') && labels.ends_with('}'),
                "bad labels in {line:?}"
            );
        }
        assert!(typed.contains(name), "sample before its TYPE: {line:?}");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        samples.insert(series.to_string(), value);
    }
    samples
}

#[tokio::test]
async fn bodies_reach_the_service_intact_and_oversize_is_configurable() {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "x".repeat(3000)}}}).to_string();
    let post = |b: String| {
        Request::post("/mcp")
            .header("content-type", "application/json")
            .body(Body::from(b))
            .expect("request")
    };
    let security = system(ConfigOverrides::new().set("MAX_INSPECT_BODY_BYTES", 1024));
    let app = build_app(&security);
    let small = send(
        &app,
        "192.0.2.1",
        post("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}".into()),
    )
    .await;
    assert_eq!(
        small.body,
        Bytes::from_static(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}")
    );
    let big = send(&app, "192.0.2.1", post(body.clone())).await;
    assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(big.json()["type"], "payload_too_large");
    assert_eq!(security.statistics().payload_too_large, 1);

    // With `pass`, the body is forwarded whole even though only its start was inspected,
    // including a body that arrives in many small chunks with no length declared.
    let security = system(
        ConfigOverrides::new()
            .set("MAX_INSPECT_BODY_BYTES", 1024)
            .set("OVERSIZE_BODY_ACTION", "pass"),
    );
    let passing = build_app(&security);
    let big = send(&passing, "192.0.2.1", post(body.clone())).await;
    assert_eq!(big.status, StatusCode::OK);
    assert_eq!(big.body, Bytes::from(body.clone()));
    let chunks: Vec<Result<Bytes, std::io::Error>> = body
        .as_bytes()
        .chunks(100)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let streamed = Request::post("/mcp")
        .header("content-type", "application/json")
        .body(Body::from_stream(futures_util::stream::iter(chunks)))
        .expect("request");
    let sent = send(&passing, "192.0.2.1", streamed).await;
    assert_eq!(sent.body, Bytes::from(body));
}

#[tokio::test]
async fn hostile_requests_never_panic() {
    let security = system(ConfigOverrides::new().set("BLACKLIST", "198.51.100.0/24"));
    let app = build_app(&security);
    let bodies: Vec<&[u8]> = vec![
        b"{not json",
        b"\xff\xfe\xfd",
        b"[]",
        b"[1,2,3]",
        b"{\"jsonrpc\":\"2.0\",\"method\":7,\"params\":\"x\"}",
        b"{\"jsonrpc\":\"2.0\",\"id\":{\"deep\":[1]},\"method\":\"tools/call\",\"params\":{\"name\":[\"a\"]}}",
    ];
    // None is JSON-RPC: each gets a JSON-RPC error (400), and the server never sees it.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    for body in bodies.into_iter().chain([deep.as_bytes()]) {
        let request = Request::post("/mcp")
            .header("content-type", "application/json")
            .body(Body::from(body.to_vec()))
            .expect("request");
        let reply = send(&app, "192.0.2.1", request).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        let error: serde_json::Value = serde_json::from_slice(&reply.body).expect("JSON-RPC error");
        assert_eq!(error["jsonrpc"], "2.0");
        assert!(error["error"]["code"]
            .as_i64()
            .is_some_and(|c| c == -32700 || c == -32600));
    }
    // The same bodies elsewhere are the application's business.
    let request = Request::post("/api")
        .header("content-type", "application/json")
        .body(Body::from(&b"{not json"[..]))
        .expect("request");
    assert_eq!(
        send(&app, "192.0.2.1", request).await.status,
        StatusCode::OK
    );
    // Percent-encoded invalid UTF-8 in the path, odd methods, a header full of junk bytes.
    let odd = Request::builder()
        .method("PROPFIND")
        .uri("/%ff%fe/..%2f..%2fetc/passwd?%zz=%")
        .header(
            "user-agent",
            http::HeaderValue::from_bytes(b"\xfa\xfb junk").expect("opaque"),
        )
        .header("x-forwarded-for", "not, an, address")
        .header("authorization", "Bearer")
        .body(Body::empty())
        .expect("request");
    assert_eq!(send(&app, "192.0.2.1", odd).await.status, StatusCode::OK);
    // Without a peer address the client is unknown, not a crash.
    let response = app.clone().oneshot(get("/")).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn list_changes_and_blocks_are_events() {
    let security = system(ConfigOverrides::new());
    let mut events = security.subscribe();
    let app = build_app(&security);
    security
        .blacklist("198.51.100.3", "test", None)
        .expect("add");
    send(&app, "198.51.100.3", get("/")).await;
    let first = events.recv().await.expect("event");
    assert!(
        matches!(*first, mcp_shield::SecurityEvent::ListAdded { .. }),
        "{first:?}"
    );
    let second = events.recv().await.expect("event");
    match &*second {
        mcp_shield::SecurityEvent::Blocked { ip, path, .. } => {
            assert_eq!(ip.to_string(), "198.51.100.3");
            assert_eq!(path, "/");
        }
        other => panic!("expected a block, got {other:?}"),
    }
    let sent = send(
        &app,
        "127.0.0.1",
        admin(
            "POST",
            "/api/security/emergency",
            Some(json!({"enabled": true})),
        ),
    )
    .await;
    assert_eq!(sent.json()["emergency_mode"], true);
    assert!(matches!(
        *events.recv().await.expect("event"),
        mcp_shield::SecurityEvent::EmergencyMode { enabled: true, .. }
    ));
    assert!(security.status().await.emergency_mode);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inner_service_is_the_upstream_the_layer_admits_to() {
    // A service that can work on one request at a time, fixed at two places with no queue:
    // the third request at once is refused with 503 overloaded, the inner service never sees
    // it, and places come back when responses end.
    let security = system(
        ConfigOverrides::new()
            .set("ENABLE_DDOS_PROTECTION", true)
            .set("UPSTREAM_MAX_CONCURRENCY", 2)
            .set("UPSTREAM_QUEUE_LENGTH", 0),
    );
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = {
        let seen = seen.clone();
        Router::new()
            .route(
                "/slow",
                post(move || {
                    let seen = seen.clone();
                    async move {
                        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        "done"
                    }
                }),
            )
            .merge(security.admin_router())
            .layer(security.layer())
    };
    let slow = || {
        Request::post("/slow")
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .expect("request")
    };
    let first = tokio::spawn({
        let app = app.clone();
        async move { send(&app, "192.0.2.1", slow()).await.status }
    });
    let second = tokio::spawn({
        let app = app.clone();
        async move { send(&app, "192.0.2.2", slow()).await.status }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let third = send(&app, "192.0.2.3", slow()).await;
    assert_eq!(third.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        third.headers.get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    let body = third.json();
    assert_eq!(body["type"], "overloaded");
    assert_eq!(body["error"], "Service overloaded");
    assert_eq!(body["retry_after"], 1);
    assert_eq!(first.await.expect("task"), StatusCode::OK);
    assert_eq!(second.await.expect("task"), StatusCode::OK);
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 2);
    // The places are back.
    assert_eq!(send(&app, "192.0.2.3", slow()).await.status, StatusCode::OK);
    let status = send(
        &app,
        "192.0.2.9",
        admin("GET", "/api/security/status", None),
    )
    .await;
    let overload = &status.json()["components"]["overload_protection"];
    assert_eq!(overload["details"]["limit"], 2, "{overload}");
    assert_eq!(overload["details"]["learned"], false);
    assert_eq!(overload["details"]["in_flight"], 0);
    // One refusal counted (its class, new or suspect, depends on how long the address has been
    // seen, which a loaded test machine stretches; the classes are tested in admission/tests.rs).
    let shed: u64 = overload["details"]["shed_total"]
        .as_object()
        .expect("shed per class")
        .values()
        .filter_map(|v| v.as_u64())
        .sum();
    assert_eq!(shed, 1, "{overload}");
    assert_eq!(security.statistics().overloaded, 1);
    // Without DDoS protection there is no admission.
    let off = system(ConfigOverrides::new().set("UPSTREAM_MAX_CONCURRENCY", 1));
    let status = send(
        &build_app(&off),
        "192.0.2.9",
        admin("GET", "/api/security/status", None),
    )
    .await;
    assert_eq!(
        status.json()["components"]["overload_protection"]["enabled"],
        false
    );
}

#[tokio::test]
async fn json_past_a_shape_limit_never_reaches_the_service() {
    let security = system(ConfigOverrides::new().set("JSON_MAX_OBJECT_KEYS", 3));
    let app = build_app(&security);
    let wide = r#"{"a":1,"b":2,"c":3,"d":4}"#;
    let sent = send(
        &app,
        "192.0.2.1",
        Request::post("/other")
            .header("content-type", "application/json")
            .body(Body::from(wide))
            .expect("request"),
    )
    .await;
    assert_eq!(sent.status, StatusCode::BAD_REQUEST);
    assert_eq!(sent.json()["error"]["code"], -32600);
    assert!(sent.json()["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("SECURITY_JSON_MAX_OBJECT_KEYS")));
    // Text that is not JSON, to a path that is not MCP, is not held to JSON's shape.
    let sent = send(
        &app,
        "192.0.2.1",
        Request::post("/other")
            .header("content-type", "text/plain")
            .body(Body::from("a:1 b:2 c:3 d:4 e:5 [[[[[["))
            .expect("request"),
    )
    .await;
    assert_eq!(sent.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standing_event_stream_holds_no_place_at_the_upstream() {
    // One place only. A client's GET stream stays open, yet a tool call still gets the place:
    // the stream is not work the upstream is doing. A POST answered with a stream holds its
    // place until the stream ends.
    let security = system(
        ConfigOverrides::new()
            .set("ENABLE_DDOS_PROTECTION", true)
            .set("UPSTREAM_MAX_CONCURRENCY", 1)
            .set("UPSTREAM_QUEUE_LENGTH", 0),
    );
    let stream_response = || {
        let events = futures_util::stream::unfold(0u32, |n| async move {
            if n > 0 {
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
            (n < 3).then(|| {
                (
                    Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(
                        format!("data: {n}\n\n"),
                    ))),
                    n + 1,
                )
            })
        });
        http::Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::new(http_body_util::StreamBody::new(events)))
            .expect("response")
    };
    let app = Router::new()
        .route(
            "/mcp",
            axum::routing::get(move || async move { stream_response() })
                .post(move || async move { stream_response() }),
        )
        .route("/call", post(|| async { "done" }))
        .layer(security.layer());
    let with_peer = |mut request: Request<Body>| {
        request.extensions_mut().insert(ConnectInfo(
            "192.0.2.1:4000".parse::<SocketAddr>().expect("peer"),
        ));
        request
    };
    let standing = app
        .clone()
        .oneshot(with_peer(get("/mcp")))
        .await
        .expect("stream");
    assert_eq!(standing.status(), StatusCode::OK);
    let call = || {
        Request::post("/call")
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .expect("request")
    };
    assert_eq!(send(&app, "192.0.2.2", call()).await.status, StatusCode::OK);
    // A POST answered with a stream keeps the place while it runs.
    let running = app
        .clone()
        .oneshot(with_peer(
            Request::post("/mcp")
                .header("content-type", "application/json")
                .body(Body::from(
                    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"slow"}}"#,
                ))
                .expect("request"),
        ))
        .await
        .expect("stream");
    assert_eq!(
        send(&app, "192.0.2.3", call()).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let _ = running.into_body().collect().await.expect("stream ends");
    assert_eq!(send(&app, "192.0.2.3", call()).await.status, StatusCode::OK);
    drop(standing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_an_emergency_new_addresses_hold_at_most_half_the_places() {
    let security = system(
        ConfigOverrides::new()
            .set("ENABLE_DDOS_PROTECTION", true)
            .set("UPSTREAM_MAX_CONCURRENCY", 4)
            .set("UPSTREAM_QUEUE_LENGTH", 16),
    );
    let app = Router::new()
        .route(
            "/slow",
            post(|| async {
                tokio::time::sleep(Duration::from_millis(400)).await;
                "done"
            }),
        )
        .layer(security.layer());
    let slow = || {
        Request::post("/slow")
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .expect("request")
    };
    // Two clients with a history, seen before the emergency.
    for known in ["192.0.2.1", "192.0.2.2"] {
        assert_eq!(send(&app, known, slow()).await.status, StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    security.set_emergency_mode(true);
    // Three new addresses at once: two places are theirs, the third is refused at once
    // (suspects never wait in an emergency) though two places are free.
    let new: Vec<_> = ["198.51.100.1", "198.51.100.2"]
        .into_iter()
        .map(|from| {
            let app = app.clone();
            tokio::spawn(async move { send(&app, from, slow()).await.status })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let third = send(&app, "198.51.100.3", slow()).await;
    assert_eq!(third.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(third.json()["type"], "overloaded");
    // The other half is kept for the clients with a history.
    let known: Vec<_> = ["192.0.2.1", "192.0.2.2"]
        .into_iter()
        .map(|from| {
            let app = app.clone();
            tokio::spawn(async move { send(&app, from, slow()).await.status })
        })
        .collect();
    for task in new.into_iter().chain(known) {
        assert_eq!(task.await.expect("task"), StatusCode::OK);
    }
    let status = security.status().await;
    let shed = &status.components["overload_protection"].details["shed_total"];
    assert_eq!(shed["suspect"], 1, "{shed}");
    assert_eq!(shed["known"], 0, "{shed}");
}
