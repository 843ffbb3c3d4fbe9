//! The real `mcp-shield` binary on loopback: blocking by address, forwarding headers from
//! trusted proxies, admin auth, streaming SSE, 502, hostile input, graceful shutdown,
//! check-config and the demo.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::routing::get;
use axum::Router;
use http_body::Frame;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};

/// How many `/endless` streams the test upstream has seen end (their body dropped: the
/// connection to the upstream closed).
static ENDLESS_CLOSED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Counts one ended `/endless` stream when dropped.
struct EndlessGuard;

impl Drop for EndlessGuard {
    fn drop(&mut self) {
        ENDLESS_CLOSED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}
mod support;
use support::{Gateway, BIN, TOKEN};

/// A test upstream: `/sse` streams five events 300 ms apart, `/headers` returns the request
/// headers it received, anything else says who it is.
async fn upstream() -> SocketAddr {
    let app = Router::new()
        .route(
            "/sse",
            get(|| async {
                let stream = futures_util::stream::unfold(0u32, |n| async move {
                    if n == 5 {
                        return None;
                    }
                    if n > 0 {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    let event = Bytes::from(format!("data: event {n}\n\n"));
                    Some((Ok::<_, std::convert::Infallible>(Frame::data(event)), n + 1))
                });
                http::Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(Body::new(http_body_util::StreamBody::new(stream)))
                    .expect("response")
            }),
        )
        .route(
            "/headers",
            get(|headers: http::HeaderMap| async move {
                let map: HashMap<String, String> = headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").to_string()))
                    .collect();
                axum::Json(map)
            }),
        )
        .route(
            "/endless",
            get(|| async {
                // An event every 100 ms until the client goes; the guard lives in the stream.
                let stream = futures_util::stream::unfold(EndlessGuard, |guard| async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let event = Bytes::from_static(b"data: tick\n\n");
                    Some((Ok::<_, std::convert::Infallible>(Frame::data(event)), guard))
                });
                http::Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(Body::new(http_body_util::StreamBody::new(stream)))
                    .expect("response")
            }),
        )
        .route(
            "/missing/{*rest}",
            get(|| async { (http::StatusCode::NOT_FOUND, "no such page") }),
        )
        .fallback(|body: Bytes| async move { format!("upstream saw {} bytes", body.len()) });
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

async fn connect(addr: SocketAddr, from: Option<IpAddr>) -> tokio::net::TcpStream {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .expect("socket");
    if let Some(from) = from {
        socket
            .bind(SocketAddr::new(from, 0))
            .expect("bind source address");
    }
    socket.connect(addr).await.expect("connect")
}

/// Sends raw bytes (the request must ask for `Connection: close`) and reads the whole reply.
async fn raw(addr: SocketAddr, from: Option<IpAddr>, request: &[u8]) -> Reply {
    match raw_or_closed(addr, from, request).await {
        Ok(reply) => reply,
        Err(bytes) => panic!("no response head in {:?}", String::from_utf8_lossy(&bytes)),
    }
}

/// As [`raw`], but a connection closed without a response head (refused at accept) is
/// `Err` with what was read.
async fn raw_or_closed(
    addr: SocketAddr,
    from: Option<IpAddr>,
    request: &[u8],
) -> Result<Reply, Vec<u8>> {
    let mut stream = connect(addr, from).await;
    // A server may answer (and close) before reading all of a refused body: the reply counts.
    let _ = stream.write_all(request).await;
    let mut bytes = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut bytes)).await;
    let Some(split) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Err(bytes);
    };
    let head = String::from_utf8_lossy(&bytes[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let mut body = bytes[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Ok(Reply { status, head, body })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..line_end]).trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        out.extend_from_slice(&data[start..(start + size).min(data.len())]);
        data = &data[(start + size + 2).min(data.len())..];
    }
    out
}

fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        text.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    text.push_str("\r\n");
    text.push_str(body);
    text.into_bytes()
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().expect("ip"))
}

fn assert_ip_blocked(reply: &Reply) {
    assert_eq!(reply.status, 403, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!({"error": "Access denied by security policy", "detail": "IP is blacklisted", "type": "ip_blocked"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blacklisted_clients_get_403_and_neighbours_pass() {
    let up = upstream().await;
    let gw = Gateway::serve(
        &format!("http://{up}"),
        "127.0.0.1:0",
        &[("SECURITY_BLACKLIST", "127.0.0.2, 127.0.0.128/25")],
    );
    let get = request("GET", "/", &[], "");
    assert_ip_blocked(&raw(gw.addr, ip("127.0.0.2"), &get).await);
    assert_ip_blocked(&raw(gw.addr, ip("127.0.0.200"), &get).await);
    let neighbour = raw(gw.addr, ip("127.0.0.3"), &get).await;
    assert_eq!(neighbour.status, 200);
    assert_eq!(neighbour.text(), "upstream saw 0 bytes");

    // Delete restores.
    let auth = format!("Bearer {TOKEN}");
    let delete = request(
        "DELETE",
        "/api/security/ip/blacklist/127.0.0.2",
        &[("Authorization", &auth)],
        "",
    );
    assert_eq!(raw(gw.addr, ip("127.0.0.1"), &delete).await.status, 200);
    assert_eq!(raw(gw.addr, ip("127.0.0.2"), &get).await.status, 200);
    gw.assert_logged("Blocked request from 127.0.0.2: IP is blacklisted");

    // And the admin API adds.
    let add = request(
        "POST",
        "/api/security/ip/blacklist",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        r#"{"ip": "127.0.0.4", "reason": "Malicious activity detected"}"#,
    );
    assert_eq!(raw(gw.addr, ip("127.0.0.1"), &add).await.status, 200);
    assert_ip_blocked(&raw(gw.addr, ip("127.0.0.4"), &get).await);
    gw.assert_logged("Added 127.0.0.4 to blacklist: Malicious activity detected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_clients_are_blocked_by_address() {
    let up = upstream().await;
    let gw = Gateway::serve(
        &format!("http://{up}"),
        "[::1]:0",
        &[("SECURITY_BLACKLIST", "::1")],
    );
    assert_ip_blocked(&raw(gw.addr, None, &request("GET", "/", &[], "")).await);
    let gw = Gateway::serve(
        &format!("http://{up}"),
        "[::1]:0",
        &[("SECURITY_BLACKLIST", "::2/128, 2001:db8::/32")],
    );
    assert_eq!(
        raw(gw.addr, None, &request("GET", "/", &[], ""))
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_address_counts_only_from_a_trusted_proxy() {
    let up = upstream().await;
    let gw = Gateway::serve(
        &format!("http://{up}"),
        "127.0.0.1:0",
        &[
            ("SECURITY_TRUSTED_PROXIES", "127.0.0.5"),
            ("SECURITY_BLACKLIST", "203.0.113.9"),
        ],
    );
    let forwarded = request("GET", "/", &[("X-Forwarded-For", "203.0.113.9")], "");
    assert_ip_blocked(&raw(gw.addr, ip("127.0.0.5"), &forwarded).await);
    assert_eq!(raw(gw.addr, ip("127.0.0.1"), &forwarded).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_calls_without_the_token_get_401() {
    let up = upstream().await;
    let gw = Gateway::serve(&format!("http://{up}"), "127.0.0.1:0", &[]);
    let none = raw(
        gw.addr,
        None,
        &request("GET", "/api/security/status", &[], ""),
    )
    .await;
    assert_eq!(none.status, 401);
    assert_eq!(none.json()["type"], "unauthorized");
    let wrong = raw(
        gw.addr,
        None,
        &request(
            "GET",
            "/api/security/status",
            &[("Authorization", "Bearer nope")],
            "",
        ),
    )
    .await;
    assert_eq!(wrong.status, 401);
    let auth = format!("Bearer {TOKEN}");
    let ok = raw(
        gw.addr,
        None,
        &request(
            "GET",
            "/api/security/status",
            &[("Authorization", &auth)],
            "",
        ),
    )
    .await;
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.json()["statistics"]["total_requests"],
        2,
        "{}",
        ok.text()
    );
    let metrics = raw(gw.addr, None, &request("GET", "/metrics", &[], "")).await;
    assert!(
        metrics.text().contains("mcp_shield_requests_total 2"),
        "{}",
        metrics.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_passes_mcp_headers_strips_hop_by_hop_and_appends_forwarded_for() {
    let up = upstream().await;
    let gw = Gateway::serve(&format!("http://{up}"), "127.0.0.1:0", &[]);
    let reply = raw(
        gw.addr,
        ip("127.0.0.7"),
        &request(
            "GET",
            "/headers",
            &[
                ("Mcp-Session-Id", "s-123"),
                ("MCP-Protocol-Version", "2025-11-25"),
                ("Last-Event-ID", "42"),
                ("X-Forwarded-For", "198.51.100.1"),
                ("Keep-Alive", "timeout=5"),
                ("Proxy-Authorization", "Basic c2VjcmV0"),
            ],
            "",
        ),
    )
    .await;
    let seen = reply.json();
    assert_eq!(seen["mcp-session-id"], "s-123");
    assert_eq!(seen["mcp-protocol-version"], "2025-11-25");
    assert_eq!(seen["last-event-id"], "42");
    assert_eq!(seen["x-forwarded-for"], "198.51.100.1, 127.0.0.7");
    assert_eq!(seen["x-forwarded-host"], "localhost");
    assert_eq!(seen["host"], up.to_string());
    assert!(
        seen.get("keep-alive").is_none() && seen.get("proxy-authorization").is_none(),
        "{seen}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_arrives_event_by_event_through_serve() {
    let up = upstream().await;
    let gw = Gateway::serve(&format!("http://{up}"), "127.0.0.1:0", &[]);
    let mut stream = connect(gw.addr, None).await;
    stream
        .write_all(&request(
            "GET",
            "/sse",
            &[("Accept", "text/event-stream")],
            "",
        ))
        .await
        .expect("write");
    let started = Instant::now();
    let mut seen = String::new();
    let mut arrivals = Vec::new();
    let mut buf = [0u8; 4096];
    while arrivals.len() < 5 && started.elapsed() < Duration::from_secs(10) {
        let n = stream.read(&mut buf).await.expect("read");
        if n == 0 {
            break;
        }
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        while arrivals.len() < 5 && seen.contains(&format!("data: event {}", arrivals.len())) {
            arrivals.push(started.elapsed());
        }
    }
    assert_eq!(arrivals.len(), 5, "{seen}");
    // Events are 300 ms apart at the source: the first arrives long before the last.
    assert!(arrivals[0] < Duration::from_millis(500), "{arrivals:?}");
    assert!(arrivals[4] >= Duration::from_millis(1100), "{arrivals:?}");
    assert!(
        arrivals[4] - arrivals[0] >= Duration::from_millis(1000),
        "{arrivals:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_is_a_json_502() {
    // Bind and drop: nothing listens on the port afterwards.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let gw = Gateway::serve(&format!("http://127.0.0.1:{port}"), "127.0.0.1:0", &[]);
    let reply = raw(gw.addr, None, &request("GET", "/mcp", &[], "")).await;
    assert_eq!(reply.status, 502);
    assert_eq!(reply.json()["type"], "upstream_unavailable");
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("application/json")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_never_takes_the_gateway_down() {
    let up = upstream().await;
    let gw = Gateway::serve(&format!("http://{up}"), "127.0.0.1:0", &[]);
    let huge = "a".repeat(512 * 1024);
    let reply = raw(
        gw.addr,
        None,
        &request("GET", "/", &[("X-Huge", &huge)], ""),
    )
    .await;
    assert!(
        reply.status == 431 || reply.status == 400,
        "{}",
        reply.status
    );
    let mut bad_path =
        b"GET /\xff\xfe\x80 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".to_vec();
    let reply = raw(gw.addr, None, &bad_path).await;
    assert_eq!(reply.status, 400);
    bad_path =
        b"GET /%ff%fe/%c0%ae%c0%ae/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
            .to_vec();
    assert_eq!(raw(gw.addr, None, &bad_path).await.status, 200);
    let malformed = request(
        "POST",
        "/mcp",
        &[("Content-Type", "application/json")],
        "{\"jsonrpc\": \"2.0\", \"method\": ",
    );
    // A JSON-RPC parse error from the gateway; the upstream never sees it.
    let reply = raw(gw.addr, None, &malformed).await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert_eq!(reply.json()["error"]["code"], -32700);
    let garbage = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n";
    let mut stream = connect(gw.addr, None).await;
    stream.write_all(garbage).await.expect("write");
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut sink)).await;
    // Still serving.
    let ok = raw(gw.addr, None, &request("GET", "/", &[], "")).await;
    assert_eq!(ok.status, 200);
    assert!(!gw.log_text().contains("panicked"), "{}", gw.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_gracefully() {
    let up = upstream().await;
    let mut gw = Gateway::serve(&format!("http://{up}"), "127.0.0.1:0", &[]);
    assert_eq!(
        raw(gw.addr, None, &request("GET", "/", &[], ""))
            .await
            .status,
        200
    );
    let pid = gw.child.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let started = Instant::now();
    loop {
        if let Some(exit) = gw.child.try_wait().expect("wait") {
            assert!(exit.success(), "exit status {exit:?}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    gw.assert_logged("shutting down");
}

#[test]
fn check_config_prints_redacted_config_or_every_problem() {
    let bad = Command::new(BIN)
        .arg("check-config")
        .env_clear()
        .env("SECURITY_RATE_LIMIT_PER_IP_CAPACITY", "abc")
        .env("SECURITY_TRUSTED_PROXIES", "10.0.0.0/8,nonsense")
        .output()
        .expect("run");
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("SECURITY_RATE_LIMIT_PER_IP_CAPACITY=abc"),
        "{err}"
    );
    assert!(err.contains("SECURITY_TRUSTED_PROXIES=nonsense"), "{err}");

    let good = Command::new(BIN)
        .args(["check-config", "--set", "rate_limit.per_ip_capacity=7"])
        .env_clear()
        .env("SECURITY_ADMIN_TOKEN", "super-secret-admin-token")
        .env("REDIS_URL", "redis://:pw123@localhost:6379/0")
        .env("SECURITY_IP_HASH_KEY", "hash-key-for-the-test")
        .env("SECURITY_ENABLE_RATE_LIMITING", "true")
        .output()
        .expect("run");
    assert_eq!(
        good.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let out = String::from_utf8_lossy(&good.stdout);
    assert!(
        !out.contains("super-secret") && !out.contains("pw123"),
        "{out}"
    );
    assert!(out.contains("enable_rate_limiting = true"), "{out}");
    assert!(out.contains("per_ip_capacity = 7"), "{out}");
    let parsed: toml::Table = toml::from_str(&out).expect("check-config prints TOML");
    assert!(parsed.contains_key("rate_limit"));

    let dir = std::env::temp_dir().join(format!("mcp-shield-gw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("bad.toml");
    std::fs::write(&file, "[rate_limit]\nper_ip_capacity = -3\nbogus = 1\n").expect("write");
    let from_file = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&file)
        .env_clear()
        .output()
        .expect("run");
    assert_eq!(from_file.status.code(), Some(2));
    let err = String::from_utf8_lossy(&from_file.stderr);
    assert!(
        err.contains("rate_limit.per_ip_capacity=-3") && err.contains("rate_limit.bogus"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_the_built_in_mcp_server() {
    let gw = Gateway::start(&["demo", "--listen", "127.0.0.1:0"], &[]);
    let call = |body: Value| {
        request(
            "POST",
            "/mcp",
            &[
                ("Content-Type", "application/json"),
                ("Accept", "application/json, text/event-stream"),
            ],
            &body.to_string(),
        )
    };
    // A bare tools/call, no initialize.
    let add = raw(gw.addr, None, &call(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "add", "arguments": {"a": 2, "b": 3}}}))).await;
    assert_eq!(add.status, 200, "{}", add.text());
    assert_eq!(add.json()["result"]["content"][0]["text"], "5");
    let init = raw(gw.addr, None, &call(json!({"jsonrpc": "2.0", "id": 2, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))).await;
    assert_eq!(init.json()["result"]["protocolVersion"], "2025-06-18");
    let session = init.header("mcp-session-id").expect("session id");
    let list = raw(
        gw.addr,
        None,
        &request(
            "POST",
            "/mcp",
            &[
                ("Content-Type", "application/json"),
                ("Mcp-Session-Id", &session),
            ],
            &json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}).to_string(),
        ),
    )
    .await;
    let names: Vec<String> = list.json()["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| t["name"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(names, ["echo", "add", "read_config", "long_running"]);
    // The leaking tool's key pair is redacted on the way back, the rest of the file kept.
    let config = raw(gw.addr, None, &call(json!({"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {"name": "read_config", "arguments": {}}}))).await;
    let text = config.json()["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(!text.contains("AKIA5TJQ7RWNXP3VH2LM"), "{text}");
    assert!(
        !text.contains("q8Vd3kR2xT7mWpL9nB4sZ6cY1hF0gJ5aE8uK3oQ7"),
        "{text}"
    );
    assert!(text.contains("[REDACTED:aws"), "{text}");
    assert!(
        text.contains("REGION=eu-west-1") && text.contains("LOG_LEVEL=info"),
        "{text}"
    );
    let echo = raw(gw.addr, None, &call(json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "héllo"}}}))).await;
    assert_eq!(echo.json()["result"]["content"][0]["text"], "héllo");
    let long = raw(gw.addr, None, &call(json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "long_running", "arguments": {"steps": 3, "delay_ms": 10}, "_meta": {"progressToken": "p"}}}))).await;
    assert_eq!(
        long.header("content-type").as_deref(),
        Some("text/event-stream")
    );
    assert_eq!(
        long.text().matches("notifications/progress").count(),
        3,
        "{}",
        long.text()
    );
    assert!(long.text().contains("long_running finished 3 steps"));
    let note = raw(
        gw.addr,
        None,
        &call(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})),
    )
    .await;
    assert_eq!(note.status, 202);
    let delete = raw(
        gw.addr,
        None,
        &request("DELETE", "/mcp", &[("Mcp-Session-Id", &session)], ""),
    )
    .await;
    assert_eq!(delete.status, 200);
    let gone = raw(
        gw.addr,
        None,
        &request(
            "POST",
            "/mcp",
            &[
                ("Content-Type", "application/json"),
                ("Mcp-Session-Id", &session),
            ],
            &json!({"jsonrpc": "2.0", "id": 6, "method": "ping"}).to_string(),
        ),
    )
    .await;
    assert_eq!(gone.status, 404);
    let auth = format!("Bearer {TOKEN}");
    let status = raw(
        gw.addr,
        None,
        &request(
            "GET",
            "/api/security/status",
            &[("Authorization", &auth)],
            "",
        ),
    )
    .await;
    let components = &status.json()["components"];
    assert_eq!(components["rate_limiting"]["configured"], true);
    assert_eq!(components["ip_lists"]["enabled"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_honours_the_environment_and_generates_a_token() {
    let mut command = Command::new(BIN);
    command
        .args(["demo", "--listen", "127.0.0.1:0"])
        .env_clear()
        .env("SECURITY_ENABLE_RATE_LIMITING", "false")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = command.spawn().expect("start");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
    let mut token = None;
    let mut rate_limiting = None;
    for line in lines.by_ref() {
        if let Some(t) = line.strip_prefix("Admin token: ") {
            token = Some(t.to_string());
            break;
        }
        if line.trim_start().starts_with("rate_limiting") {
            rate_limiting = Some(line.clone());
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let token = token.expect("the demo prints its admin token");
    assert!(token.len() >= 32, "{token}");
    assert!(rate_limiting.expect("component line").ends_with("off"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_sixth_of_five_is_429_with_every_header() {
    let up = upstream().await;
    let gw = Gateway::serve(
        &format!("http://{up}"),
        "127.0.0.1:0",
        &[
            ("SECURITY_ENABLE_RATE_LIMITING", "true"),
            ("SECURITY_RATE_LIMIT_PER_IP_CAPACITY", "5"),
            ("SECURITY_RATE_LIMIT_PER_IP_REFILL_RATE", "0.01"),
            ("SECURITY_WHITELIST", "127.0.0.9"),
        ],
    );
    let get = request("GET", "/", &[], "");
    for remaining in (0..5).rev() {
        let reply = raw(gw.addr, ip("127.0.0.1"), &get).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("x-ratelimit-limit").as_deref(), Some("5"));
        assert_eq!(
            reply.header("x-ratelimit-remaining"),
            Some(remaining.to_string())
        );
    }
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let refused = raw(gw.addr, ip("127.0.0.1"), &get).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("x-ratelimit-limit").as_deref(), Some("5"));
    assert_eq!(
        refused.header("x-ratelimit-remaining").as_deref(),
        Some("0")
    );
    assert_eq!(refused.header("retry-after").as_deref(), Some("100"));
    let reset: u64 = refused
        .header("x-ratelimit-reset")
        .expect("reset")
        .parse()
        .expect("unix seconds");
    assert!(
        reset >= before + 400 && reset <= before + 502,
        "reset {reset} vs now {before}"
    );
    assert_eq!(
        refused.json(),
        json!({"error": "Too many requests", "detail": "Rate limit exceeded", "type": "rate_limited", "retry_after": 100})
    );
    // Another address has its own bucket; a whitelisted one has none.
    assert_eq!(raw(gw.addr, ip("127.0.0.2"), &get).await.status, 200);
    for _ in 0..8 {
        let reply = raw(gw.addr, ip("127.0.0.9"), &get).await;
        assert_eq!(reply.status, 200);
        assert!(reply.header("x-ratelimit-limit").is_none());
    }
    gw.assert_logged("Rate limit exceeded for 127.0.0.1");
    let metrics = raw(gw.addr, None, &request("GET", "/metrics", &[], "")).await;
    assert!(
        metrics.text().contains("mcp_shield_rate_limited_total 1"),
        "{}",
        metrics.text()
    );
}

/// A redis-server of the test's own on a free port.
struct OwnRedis(Child, u16);

impl OwnRedis {
    fn start() -> OwnRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on the PATH");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        OwnRedis(child, port)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_on_one_redis_let_exactly_the_capacity_through() {
    let up = upstream().await;
    let redis = OwnRedis::start();
    let url = format!("redis://127.0.0.1:{}/0", redis.1);
    let env = [
        ("SECURITY_ENABLE_RATE_LIMITING", "true"),
        ("SECURITY_RATE_LIMIT_PER_IP_CAPACITY", "10"),
        ("SECURITY_RATE_LIMIT_PER_IP_REFILL_RATE", "0.001"),
        ("REDIS_URL", url.as_str()),
        ("SECURITY_IP_HASH_KEY", "two-gateway-test-key"),
    ];
    let one = Gateway::serve(&format!("http://{up}"), "127.0.0.1:0", &env);
    let two = Gateway::serve(&format!("http://{up}"), "127.0.0.1:0", &env);
    let get = request("GET", "/", &[], "");
    let mut passed = 0;
    for i in 0..30 {
        let gateway = if i % 2 == 0 { &one } else { &two };
        let reply = raw(gateway.addr, ip("127.0.0.1"), &get).await;
        match reply.status {
            200 => passed += 1,
            429 => {}
            other => panic!("unexpected {other}: {}", reply.text()),
        }
    }
    assert_eq!(passed, 10, "per-IP capacity 10 across both gateways");
    // A block made through one gateway's admin API holds on the other.
    let auth = format!("Bearer {TOKEN}");
    let add = request(
        "POST",
        "/api/security/ip/blacklist",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        r#"{"ip": "127.0.0.3"}"#,
    );
    assert_eq!(raw(one.addr, ip("127.0.0.1"), &add).await.status, 200);
    let started = Instant::now();
    loop {
        let reply = raw(two.addr, ip("127.0.0.3"), &get).await;
        if reply.status == 403 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "block did not reach the other gateway"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ready = raw(two.addr, None, &request("GET", "/ready", &[], "")).await;
    assert_eq!(ready.json()["status"], "ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_address_gets_ddos_blocked_while_another_is_served() {
    let up = upstream().await;
    let gw = Gateway::serve(
        &format!("http://{up}"),
        "127.0.0.1:0",
        &[
            ("SECURITY_ENABLE_DDOS_PROTECTION", "true"),
            ("SECURITY_DDOS_REQUESTS_PER_SECOND_THRESHOLD", "20"),
        ],
    );
    let get = request("GET", "/", &[], "");
    let mut refused = None;
    for i in 0..60 {
        let reply = raw(gw.addr, ip("127.0.0.66"), &get).await;
        if reply.status == 429 {
            refused = Some((i, reply));
            break;
        }
        assert_eq!(reply.status, 200);
    }
    let (at, reply) = refused.expect("the flood is refused");
    assert!(
        at >= 20,
        "refused after {at} requests, before the threshold"
    );
    assert_eq!(reply.json()["type"], "ddos_blocked");
    assert_eq!(reply.header("retry-after").as_deref(), Some("60"));
    assert_eq!(raw(gw.addr, ip("127.0.0.67"), &get).await.status, 200);
    gw.assert_logged("DDoS protection blocked request from 127.0.0.66: High request rate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_greedy_clients_are_cut_off_and_streams_survive() {
    let up = upstream().await;
    let gw = Gateway::serve(
        &format!("http://{up}"),
        "127.0.0.1:0",
        &[
            ("SECURITY_ENABLE_DDOS_PROTECTION", "true"),
            ("SECURITY_DDOS_CONCURRENT_CONNECTIONS_LIMIT", "3"),
            ("SECURITY_DDOS_HEADER_TIMEOUT", "1"),
        ],
    );
    // Three connections held open; the fourth is closed at once, unanswered.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect(gw.addr, ip("127.0.0.20")).await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fourth = connect(gw.addr, ip("127.0.0.20")).await;
    let _ = fourth.write_all(&request("GET", "/", &[], "")).await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(2), fourth.read_to_end(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the fourth connection must be closed unanswered: {buf:?}"
    );
    // Another address is not affected; closing one frees a place.
    assert_eq!(
        raw(gw.addr, ip("127.0.0.21"), &request("GET", "/", &[], ""))
            .await
            .status,
        200
    );
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        raw(gw.addr, ip("127.0.0.20"), &request("GET", "/", &[], ""))
            .await
            .status,
        200
    );
    drop(held);

    // Half a request head, then silence: disconnected after the header timeout.
    let mut slow = connect(gw.addr, ip("127.0.0.30")).await;
    slow.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .expect("write");
    let started = Instant::now();
    let mut sink = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut sink)).await;
    assert!(read.is_ok(), "still open after 5 s");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );

    // An idle keep-alive connection is closed after the same timeout.
    let mut idle = connect(gw.addr, ip("127.0.0.32")).await;
    idle.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let started = Instant::now();
    let mut first = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut first)).await;
    assert!(
        read.is_ok(),
        "idle keep-alive connection still open after 5 s"
    );
    assert!(String::from_utf8_lossy(&first).starts_with("HTTP/1.1 200"));
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );

    // A request head over 64 KiB is refused.
    let big = "a".repeat(70 * 1024);
    let reply = raw(
        gw.addr,
        ip("127.0.0.33"),
        &request("GET", "/", &[("X-Big", &big)], ""),
    )
    .await;
    assert_eq!(reply.status, 431);

    // An SSE response lasting longer than the header timeout is not cut.
    let mut stream = connect(gw.addr, ip("127.0.0.31")).await;
    stream
        .write_all(&request("GET", "/sse", &[], ""))
        .await
        .expect("write");
    let mut all = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut all)).await;
    let text = String::from_utf8_lossy(&all);
    assert!(
        text.contains("data: event 4"),
        "the 1.2 s stream was cut: {text}"
    );
}

#[test]
fn scan_reads_json_lines_and_applies_the_policy_file() {
    use std::io::Write;
    use std::process::Stdio;
    let dir = std::env::temp_dir().join(format!("mcp-shield-scan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        "[[threat_detection.allow]]\ntool = \"run_sql\"\nargument = \"sql\"\nthreats = [\"sql_injection\"]\n",
    )
    .expect("policy");
    let sql_call = |tool: &str| {
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": tool, "arguments": {"sql": "SELECT * FROM users WHERE id = 1; DROP TABLE logs"}}})
        .to_string()
    };
    let lines = [
        serde_json::json!({"id": "sqli", "method": "GET", "uri": "/search?q=%27%20or%201%3D1--", "headers": {"Host": "x"}, "body": "", "label": "attack"}),
        serde_json::json!({"id": "allowed", "method": "POST", "uri": "/mcp", "headers": {"Content-Type": "application/json"}, "body": sql_call("run_sql")}),
        serde_json::json!({"id": "elsewhere", "method": "POST", "uri": "/mcp", "headers": {"Content-Type": "application/json"}, "body": sql_call("search")}),
    ];
    let mut input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    input.push_str("{ not a request\n");
    let mut child = Command::new(BIN)
        .args(["--config", policy.to_str().expect("path"), "scan", "-"])
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run scan");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let output = child.wait_with_output().expect("scan ends");
    assert_eq!(output.status.code(), Some(0));
    let verdicts: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(verdicts.len(), 4);
    assert_eq!(verdicts[0]["id"], "sqli");
    assert_eq!(verdicts[0]["verdict"], "attack");
    assert_eq!(verdicts[0]["threats"][0]["type"], "sql_injection");
    assert_eq!(verdicts[0]["threats"][0]["severity"], "high");
    assert!(verdicts[0]["threats"][0]["confidence"].as_f64().is_some());
    assert_eq!(
        verdicts[1]["verdict"], "benign",
        "the policy allows SQL for run_sql"
    );
    assert_eq!(verdicts[2]["verdict"], "attack", "but not for another tool");
    assert_eq!(verdicts[3]["id"], serde_json::Value::Null);
    assert_eq!(verdicts[3]["line"], 4);
    assert!(verdicts[3]["error"].is_string());
    let summary = String::from_utf8_lossy(&output.stderr);
    assert!(
        summary.contains("2 attack, 1 benign, 1 unreadable"),
        "{summary}"
    );

    let text = Command::new(BIN)
        .args(["scan", "--format", "text", "/nonexistent/requests.jsonl"])
        .env_clear()
        .output()
        .expect("run");
    assert_eq!(text.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&text.stderr).contains("/nonexistent/requests.jsonl"));
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scanning_client_scores_anomalous_and_agents_do_not() {
    let up = upstream().await;
    let gw = Gateway::serve(
        &format!("http://{up}"),
        "127.0.0.1:0",
        &[
            ("SECURITY_ENABLE_THREAT_DETECTION", "true"),
            ("SECURITY_THREAT_ML_RETRAIN_INTERVAL", "1"),
            ("SECURITY_THREAT_ML_MIN_CLIENTS", "20"),
        ],
    );
    // Twenty-five agents (each its own loopback address) calling their tools.
    let tools = ["search", "read_file", "summarize"];
    for round in 0..8usize {
        for agent in 0..25usize {
            let from = format!("127.0.0.{}", 10 + agent);
            let body = json!({
                "jsonrpc": "2.0", "id": round, "method": "tools/call",
                "params": {"name": tools[(agent + round / 4) % 3],
                           "arguments": {"query": format!("museums near stop {round}")}}
            })
            .to_string();
            let reply = raw(
                gw.addr,
                ip(&from),
                &request(
                    "POST",
                    "/mcp",
                    &[
                        ("Content-Type", "application/json"),
                        ("User-Agent", "agent/1.0"),
                    ],
                    &body,
                ),
            )
            .await;
            assert_eq!(reply.status, 200, "{}", reply.text());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // One client walking through paths that do not exist.
    for probe in 0..60 {
        let path = format!("/missing/probe-{probe}");
        let reply = raw(gw.addr, ip("127.0.0.99"), &request("GET", &path, &[], "")).await;
        assert_eq!(reply.status, 404);
    }
    let auth = format!("Bearer {TOKEN}");
    let assess = |who: &'static str| {
        let auth = auth.clone();
        async move {
            let path = format!("/api/security/threat/{who}");
            raw(
                gw.addr,
                None,
                &request("GET", &path, &[("Authorization", &auth)], ""),
            )
            .await
            .json()
        }
    };
    // The model trains in the background once twenty clients are active, then every second.
    let started = Instant::now();
    let scanner = loop {
        let scanner = assess("127.0.0.99").await;
        if scanner["anomaly_score"].as_f64().is_some_and(|s| s >= 0.7) {
            break scanner;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "scanner never scored anomalous: {scanner}\n{}",
            gw.log_text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let behaviour = &scanner["behaviour"];
    assert_eq!(behaviour["anomalous"], true, "{scanner}");
    assert_eq!(behaviour["classes"][0]["class"], "scanner", "{scanner}");
    assert_eq!(
        behaviour["classes"][0]["pattern"], "enumeration",
        "{scanner}"
    );
    assert_eq!(behaviour["features"]["not_found_ratio"], 1.0, "{scanner}");
    let agent = assess("127.0.0.10").await;
    let score = agent["anomaly_score"].as_f64().expect("agent scored");
    assert!(score < 0.7, "agent scored {score}: {agent}");
    assert_eq!(agent["behaviour"]["classes"], json!([]), "{agent}");
    // The scanner's indicator lowered its reputation and was logged.
    gw.assert_logged("anomalous_behavior");
    // An address never seen has no score.
    assert_eq!(assess("127.0.0.200").await["anomaly_score"], Value::Null);
    // The status shows the model.
    let status = raw(
        gw.addr,
        None,
        &request(
            "GET",
            "/api/security/status",
            &[("Authorization", &auth)],
            "",
        ),
    )
    .await
    .json();
    let model = &status["components"]["threat_detection"]["details"]["anomaly_model"];
    assert_eq!(model["trained"], true, "{status}");
    assert!(model["trained_on_clients"].as_u64() >= Some(20), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_rebinding_and_mismatched_mcp_headers_are_refused() {
    let up = upstream().await;
    // Listening on loopback with no lists configured: loopback names only.
    let gw = Gateway::serve(&format!("http://{up}"), "127.0.0.1:0", &[]);
    let call =
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#;
    let json = ("Content-Type", "application/json");
    let send = |headers: Vec<(&'static str, &'static str)>| {
        let mut text = format!(
            "POST /mcp HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
            call.len()
        );
        for (k, v) in headers {
            text.push_str(&format!("{k}: {v}\r\n"));
        }
        text.push_str("\r\n");
        text.push_str(call);
        async move { raw(gw.addr, None, text.as_bytes()).await }
    };
    let ok = send(vec![
        json,
        ("Host", "localhost:8080"),
        ("Origin", "http://localhost:5173"),
    ])
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.text(), format!("upstream saw {} bytes", call.len()));
    // A page on another name that resolves to 127.0.0.1.
    let rebound = send(vec![
        json,
        ("Host", "attacker.example:8080"),
        ("Origin", "http://attacker.example:8080"),
    ])
    .await;
    assert_eq!(rebound.status, 403, "{}", rebound.text());
    let body = rebound.json();
    assert_eq!(body["jsonrpc"], "2.0");
    assert_eq!(body["id"], Value::Null);
    assert_eq!(body["error"]["data"]["type"], "host_not_allowed");
    let origin = send(vec![
        json,
        ("Host", "127.0.0.1"),
        ("Origin", "https://attacker.example"),
    ])
    .await;
    assert_eq!(origin.status, 403);
    assert_eq!(origin.json()["error"]["data"]["type"], "origin_not_allowed");
    // 2026-07-28 headers that disagree with the body.
    let mismatch = send(vec![
        json,
        ("Host", "localhost"),
        ("Mcp-Method", "tools/call"),
        ("Mcp-Name", "add"),
    ])
    .await;
    assert_eq!(mismatch.status, 400, "{}", mismatch.text());
    assert_eq!(mismatch.json()["error"]["code"], -32600);
    let agree = send(vec![
        json,
        ("Host", "localhost"),
        ("Mcp-Method", "tools/call"),
        ("Mcp-Name", "echo"),
    ])
    .await;
    assert_eq!(agree.status, 200, "{}", agree.text());
    gw.assert_logged("origin_not_allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_per_client_are_capped() {
    let up = upstream().await;
    let gw = Gateway::serve(
        &format!("http://{up}"),
        "127.0.0.1:0",
        &[("SECURITY_MCP_MAX_SESSIONS_PER_CLIENT", "2")],
    );
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let post = |body: &'static str, session: Option<&'static str>| {
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(s) = session {
            headers.push(("Mcp-Session-Id", s));
        }
        let bytes = request("POST", "/mcp", &headers, body);
        async move { raw(gw.addr, None, &bytes).await }
    };
    assert_eq!(post(init, None).await.status, 200);
    assert_eq!(post(ping, Some("session-a")).await.status, 200);
    assert_eq!(post(ping, Some("session-b")).await.status, 200);
    let refused = post(init, None).await;
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert_eq!(refused.json()["error"]["data"]["type"], "too_many_sessions");
    assert_eq!(post(ping, Some("session-c")).await.status, 429);
    // The open sessions carry on; ending one frees a place.
    assert_eq!(post(ping, Some("session-a")).await.status, 200);
    let end = request("DELETE", "/mcp", &[("Mcp-Session-Id", "session-b")], "");
    assert_eq!(raw(gw.addr, None, &end).await.status, 200);
    assert_eq!(post(init, None).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_speaks_the_sessionless_2026_revision() {
    let gw = Gateway::start(&["demo", "--listen", "127.0.0.1:0"], &[]);
    let post = |headers: Vec<(&'static str, &'static str)>, body: Value| {
        let mut all = vec![
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
            ("MCP-Protocol-Version", "2026-07-28"),
        ];
        all.extend(headers);
        let bytes = request("POST", "/mcp", &all, &body.to_string());
        async move { raw(gw.addr, None, &bytes).await }
    };
    let init = post(
        vec![("Mcp-Method", "initialize")],
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2026-07-28", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
    )
    .await;
    assert_eq!(init.status, 200, "{}", init.text());
    assert_eq!(init.json()["result"]["protocolVersion"], "2026-07-28");
    assert_eq!(
        init.header("mcp-session-id"),
        None,
        "no sessions in 2026-07-28"
    );
    let add = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "add", "arguments": {"a": 2, "b": 3}}});
    let called = post(
        vec![("Mcp-Method", "tools/call"), ("Mcp-Name", "add")],
        add.clone(),
    )
    .await;
    assert_eq!(called.status, 200, "{}", called.text());
    assert_eq!(called.json()["result"]["content"][0]["text"], "5");
    // The gateway refuses headers that disagree with the body before the server sees them.
    let lying = post(
        vec![("Mcp-Method", "tools/call"), ("Mcp-Name", "echo")],
        add.clone(),
    )
    .await;
    assert_eq!(lying.status, 400);
    assert_eq!(lying.json()["error"]["data"]["type"], "mcp_header_mismatch");
    // The server itself wants Mcp-Method on every POST of this revision.
    let bare = post(vec![], add).await;
    assert_eq!(bare.status, 400, "{}", bare.text());
    assert!(bare.json()["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("Mcp-Method is required")));
}

/// Opens `GET /endless` from `from` and reads its response head and first event.
async fn open_stream(addr: SocketAddr, from: &str) -> (tokio::net::TcpStream, String) {
    let mut stream = connect(addr, ip(from)).await;
    stream
        .write_all(b"GET /endless HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .expect("write");
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        let n = match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("read in time")
        {
            Ok(0) | Err(_) => break, // closed or reset: refused at the door
            Ok(n) => n,
        };
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen);
        if text.contains("data: tick")
            || !text.starts_with("HTTP/1.1 200") && text.contains("\r\n\r\n")
        {
            break;
        }
    }
    (stream, String::from_utf8_lossy(&seen).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_streams_count_as_connections_and_closing_one_ends_it_upstream() {
    let up = upstream().await;
    let gw = Gateway::serve(
        &format!("http://{up}"),
        "127.0.0.1:0",
        &[
            ("SECURITY_ENABLE_RATE_LIMITING", "true"),
            ("SECURITY_RATE_LIMIT_PER_IP_CAPACITY", "7"),
            ("SECURITY_RATE_LIMIT_PER_IP_REFILL_RATE", "0.001"),
            ("SECURITY_ENABLE_DDOS_PROTECTION", "true"),
            ("SECURITY_DDOS_CONCURRENT_CONNECTIONS_LIMIT", "3"),
        ],
    );
    let mut streams = Vec::new();
    for _ in 0..3 {
        let (stream, head) = open_stream(gw.addr, "127.0.0.41").await;
        assert!(head.contains("data: tick"), "{head}");
        streams.push(stream);
    }
    // Three streams open: a fourth from the same address is one connection too many (closed
    // at accept, or 429 when it got in before the count).
    let (_fourth, head) = open_stream(gw.addr, "127.0.0.41").await;
    assert!(
        head.is_empty() || head.starts_with("HTTP/1.1 429"),
        "{head}"
    );
    // Closing a stream ends it upstream at once, and frees its place.
    let closed_before = ENDLESS_CLOSED.load(std::sync::atomic::Ordering::SeqCst);
    drop(streams.pop());
    let started = Instant::now();
    while ENDLESS_CLOSED.load(std::sync::atomic::Ordering::SeqCst) == closed_before {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the upstream stream outlived the client's"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A second of events on the open streams cost no rate-limit tokens: the address has used
    // at most four of its seven (three streams, perhaps the refused one), so three requests
    // pass, one connection at a time beside the two streams.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    for _ in 0..3 {
        // The server sends its FIN before the connection's count is given back, so the next
        // connection may find the last one still counted for a moment: such a refusal at
        // accept (no response at all) is retried; any response must be a 200.
        let mut attempts = 0;
        let reply = loop {
            attempts += 1;
            match raw_or_closed(
                gw.addr,
                ip("127.0.0.41"),
                &request("POST", "/api", &[], "{}"),
            )
            .await
            {
                Ok(reply) => break reply,
                Err(_) if attempts < 10 => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(bytes) => panic!("refused at accept ten times: {bytes:?}"),
            }
        };
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    drop(streams);
}

/// An upstream that works on `capacity` requests at once, `service` each; more wait inside it
/// (a worker pool). Counts what it has in flight (waiting or working) and the most ever.
#[derive(Default)]
struct CapacityCounts {
    now: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
    served: std::sync::atomic::AtomicUsize,
}

async fn capacity_upstream(
    capacity: usize,
    service: Duration,
) -> (SocketAddr, Arc<CapacityCounts>) {
    use std::sync::atomic::Ordering::SeqCst;
    let counts = Arc::new(CapacityCounts::default());
    let workers = Arc::new(tokio::sync::Semaphore::new(capacity));
    let app = Router::new().fallback({
        let counts = counts.clone();
        move |_body: Bytes| {
            let counts = counts.clone();
            let workers = workers.clone();
            async move {
                // Counted out when the handler ends or is dropped (its client went away).
                struct Leave(Arc<CapacityCounts>);
                impl Drop for Leave {
                    fn drop(&mut self) {
                        self.0.now.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
                let n = counts.now.fetch_add(1, SeqCst) + 1;
                counts.most.fetch_max(n, SeqCst);
                let _leave = Leave(counts.clone());
                {
                    let _worker = workers.acquire().await.expect("semaphore");
                    tokio::time::sleep(service).await;
                }
                counts.served.fetch_add(1, SeqCst);
                axum::Json(json!({"jsonrpc": "2.0", "id": 1, "result": {"content": []}}))
            }
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, counts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_many_addresses_is_shed_and_known_clients_are_served_first() {
    use std::sync::atomic::Ordering::SeqCst;
    // Above a tenth of the starting limit (20), so that the limit learned from latency is
    // measured, not where it starts.
    let capacity = 10;
    let (up, counts) = capacity_upstream(capacity, Duration::from_millis(40)).await;
    let gw = Gateway::serve(
        &format!("http://{up}"),
        "127.0.0.1:0",
        &[
            ("SECURITY_ENABLE_DDOS_PROTECTION", "true"),
            ("SECURITY_ENABLE_IP_MANAGEMENT", "true"),
            ("SECURITY_UPSTREAM_QUEUE_LENGTH", "32"),
            ("SECURITY_UPSTREAM_QUEUE_WAIT_MS", "300"),
        ],
    );
    let call = request(
        "POST",
        "/mcp",
        &[("Content-Type", "application/json")],
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"q":"x"}}}"#,
    );
    // Calm: four clients with a history, served at the upstream's pace.
    let known: Vec<IpAddr> = (1..=4)
        .map(|i| format!("127.0.9.{i}").parse().expect("ip"))
        .collect();
    for &client in &known {
        for _ in 0..5 {
            assert_eq!(raw(gw.addr, Some(client), &call).await.status, 200);
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A flood from a new address per request, 150 at once, for three seconds; the known
    // clients keep calling beside it.
    let until = Instant::now() + Duration::from_secs(3);
    let flood: Vec<_> = (0..150u32)
        .map(|task| {
            let call = call.clone();
            let addr = gw.addr;
            tokio::spawn(async move {
                let (mut sent, mut refused, mut overloaded_503) = (0u32, 0u32, 0u32);
                let mut n = 0u32;
                while Instant::now() < until {
                    n += 1;
                    let from: IpAddr = format!(
                        "127.{}.{}.{}",
                        10 + task / 50,
                        (task % 50) * 5 + n / 250 % 5,
                        n % 250 + 1
                    )
                    .parse()
                    .expect("ip");
                    let reply = raw(addr, Some(from), &call).await;
                    sent += 1;
                    if reply.status != 200 {
                        refused += 1;
                    }
                    if reply.status == 503
                        && reply.json()["type"] == "overloaded"
                        && reply.header("retry-after").as_deref() == Some("1")
                    {
                        overloaded_503 += 1;
                    }
                }
                (sent, refused, overloaded_503)
            })
        })
        .collect();
    let steady: Vec<_> = known
        .iter()
        .map(|&client| {
            let call = call.clone();
            let addr = gw.addr;
            tokio::spawn(async move {
                let mut results = Vec::new();
                while Instant::now() < until {
                    let started = Instant::now();
                    let reply = raw(addr, Some(client), &call).await;
                    results.push((reply.status, started.elapsed()));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                results
            })
        })
        .collect();
    let (mut sent, mut refused, mut overloaded_503) = (0, 0, 0);
    for task in flood {
        let (s, r, o) = task.await.expect("flood task");
        sent += s;
        refused += r;
        overloaded_503 += o;
    }
    let mut steady_results = Vec::new();
    for task in steady {
        steady_results.extend(task.await.expect("steady task"));
    }
    let steady_ok = steady_results.iter().filter(|(s, _)| *s == 200).count();
    let most = counts.most.load(SeqCst);
    eprintln!(
        "flood: {refused} of {sent} refused; upstream at most {most} in flight (capacity \
         {capacity}); known clients: {steady_ok} of {} served",
        steady_results.len()
    );
    assert!(
        steady_ok == steady_results.len(),
        "known clients refused: {steady_ok} of {} served ({steady_results:?})",
        steady_results.len()
    );
    assert!(
        most <= 3 * capacity,
        "the upstream had {most} requests in flight (capacity {capacity})"
    );
    assert!(
        sent > 0 && refused * 2 >= sent,
        "only {refused} of {sent} flood requests refused"
    );
    assert_eq!(refused, overloaded_503, "every refusal is a 503 overloaded");
    let status = reqwest_status(gw.addr).await;
    let overload = &status["components"]["overload_protection"];
    assert_eq!(overload["enabled"], true, "{overload}");
    assert!(
        overload["details"]["shed_total"]["suspect"].as_u64() > Some(0),
        "{overload}"
    );
    assert_eq!(overload["details"]["shed_total"]["known"], 0, "{overload}");
    assert_eq!(
        status["statistics"]["overloaded"].as_u64(),
        Some(u64::from(refused))
    );
    let metrics = raw(gw.addr, None, &request("GET", "/metrics", &[], ""))
        .await
        .text();
    assert!(
        metrics.contains("mcp_shield_upstream_concurrency_limit "),
        "{metrics}"
    );
    assert!(
        metrics.contains("mcp_shield_upstream_shed_total{class=\"suspect\"}"),
        "{metrics}"
    );
    // One line when shedding starts, one when it stops.
    gw.assert_logged("Upstream overloaded: shedding requests");
    tokio::time::sleep(Duration::from_secs(5)).await;
    gw.assert_logged("shedding stopped");
    assert_eq!(
        gw.log_text()
            .matches("Upstream overloaded: shedding requests")
            .count(),
        1,
        "{}",
        gw.log_text()
    );
    // Calm again: a new address is served.
    assert_eq!(raw(gw.addr, ip("127.0.8.1"), &call).await.status, 200);
}

async fn reqwest_status(addr: SocketAddr) -> Value {
    raw(
        addr,
        None,
        &request(
            "GET",
            "/api/security/status",
            &[("Authorization", &format!("Bearer {TOKEN}"))],
            "",
        ),
    )
    .await
    .json()
}

/// POSTs a JSON body to `/mcp`.
async fn post_mcp(addr: SocketAddr, body: &str) -> Reply {
    let json = [("Content-Type", "application/json")];
    raw(addr, None, &request("POST", "/mcp", &json, body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_nested_past_the_limit_is_refused_at_the_door() {
    let up = upstream().await;
    let gw = Gateway::serve(&format!("http://{up}"), "127.0.0.1:0", &[]);
    // 400 KB of brackets: what crashes a recursive parser behind the gateway.
    let deep = "[".repeat(400_000);
    let reply = post_mcp(gw.addr, &deep).await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["error"]["code"], -32600, "{body}");
    assert_eq!(body["error"]["data"]["type"], "json_limit_exceeded");
    let message = body["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("SECURITY_JSON_MAX_DEPTH"), "{message}");
    // A wide batch too, and a body within the limits passes.
    let batch = format!(
        "[{}]",
        vec![r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#; 101].join(",")
    );
    let reply = post_mcp(gw.addr, &batch).await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(reply.text().contains("SECURITY_JSON_MAX_BATCH"));
    let fine = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"x":[[[1]]]}}}"#;
    let reply = post_mcp(gw.addr, fine).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    // The limit is a setting.
    drop(gw);
    let gw = Gateway::serve(
        &format!("http://{up}"),
        "127.0.0.1:0",
        &[("SECURITY_JSON_MAX_DEPTH", "2")],
    );
    let reply = post_mcp(gw.addr, fine).await;
    assert_eq!(reply.status, 400, "{}", reply.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_gateway_on_a_taken_port_fails_instead_of_sharing_it() {
    // Each serving thread has its own socket on the port (SO_REUSEPORT); a second process must
    // still be refused the port, not handed half the connections.
    let up = upstream().await;
    let gw = Gateway::serve(&format!("http://{up}"), "127.0.0.1:0", &[]);
    let second = Command::new(BIN)
        .args([
            "serve",
            "--upstream",
            &format!("http://{up}"),
            "--listen",
            &gw.addr.to_string(),
        ])
        .env_clear()
        .env("SECURITY_ADMIN_TOKEN", TOKEN)
        .output()
        .expect("run a second gateway");
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("cannot listen on"), "{stderr}");
    // The first still serves, on every thread.
    for _ in 0..8 {
        assert_eq!(
            raw(gw.addr, None, &request("GET", "/", &[], ""))
                .await
                .status,
            200
        );
    }
}
