//! A real `redis-server` of the test's own on a free loopback port, so a test can stop and
//! restart it.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Self {
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
            .expect("redis-server on the PATH (apt-get install redis-server)");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        RedisServer {
            child: Some(child),
            port,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs a command with redis-cli and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A system on `redis` with rate limiting on, sharing the tests' hash key.
pub async fn system_on(
    redis: &RedisServer,
    overrides: mcp_shield::ConfigOverrides,
) -> mcp_shield::SecuritySystem {
    let config = mcp_shield::config::load(mcp_shield::ConfigSources {
        overrides: overrides
            .set("REDIS_URL", redis.url())
            .set("IP_HASH_KEY", "shared-test-hash-key")
            .set("ADMIN_TOKEN", "redis-test-admin-token")
            .set("ENABLE_RATE_LIMITING", true),
        ..mcp_shield::ConfigSources::default()
    })
    .expect("valid config");
    mcp_shield::SecuritySystem::start(config)
        .await
        .expect("system")
}

/// An app answering "ok" behind the system's layer, with its admin API.
pub fn app(security: &mcp_shield::SecuritySystem) -> axum::Router {
    axum::Router::new()
        .fallback(|| async { "ok" })
        .merge(security.admin_router())
        .layer(security.layer())
}

/// The status of `GET /` from `from`.
pub async fn status_of(app: &axum::Router, from: &str) -> http::StatusCode {
    use tower::ServiceExt;
    let mut request = http::Request::get("/")
        .body(axum::body::Body::empty())
        .expect("request");
    let peer: SocketAddr = format!("{from}:40000").parse().expect("peer");
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    app.clone()
        .oneshot(request)
        .await
        .expect("infallible")
        .status()
}

/// A file of the shared GeoIP test databases: `shared/geoip/` beside the checkout, found by
/// walking up from this crate.
pub fn shared_geoip(file: &str) -> String {
    let start = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = start
        .ancestors()
        .map(|a| a.join("shared/geoip"))
        .find(|d| d.is_dir())
        .expect("shared/geoip beside the checkout (the MaxMind test databases)");
    dir.join(file).display().to_string()
}

/// Sends `request` from `from` (an address) through `app`; the status and the JSON body
/// (`Null` when the body is not JSON, the text as a JSON string when it is text).
pub async fn respond(
    app: &axum::Router,
    from: &str,
    request: http::Request<axum::body::Body>,
) -> (http::StatusCode, serde_json::Value) {
    use http_body_util::BodyExt;
    let response = send(app, from, request).await;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&body).into_owned()));
    (status, value)
}

/// `request` sent to `app` as if from `from` (port 40000), the response as it comes (a stream
/// stays open).
pub async fn send(
    app: &axum::Router,
    from: &str,
    mut request: http::Request<axum::body::Body>,
) -> http::Response<axum::body::Body> {
    use tower::ServiceExt;
    let peer = SocketAddr::new(from.parse().expect("ip"), 40000);
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    app.clone().oneshot(request).await.expect("infallible")
}

/// An admin API request carrying `token`, with `body` as JSON when given.
pub fn admin_request(
    token: &str,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> http::Request<axum::body::Body> {
    let builder = http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"));
    match body {
        Some(v) => builder
            .header("content-type", "application/json")
            .body(axum::body::Body::from(v.to_string())),
        None => builder.body(axum::body::Body::empty()),
    }
    .expect("request")
}

/// A JSON-RPC request with `id` to `/mcp`, as an MCP client posts it; `stream` asks the test's
/// upstream for an event-stream answer (`x-stream`).
pub fn mcp_request(
    id: u64,
    method: &str,
    params: serde_json::Value,
    stream: bool,
) -> http::Request<axum::body::Body> {
    let mut builder = http::Request::post("/mcp")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("user-agent", "mcp-test-client/1.0");
    if stream {
        builder = builder.header("x-stream", "1");
    }
    let message =
        serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    builder
        .body(axum::body::Body::from(message.to_string()))
        .expect("request")
}
