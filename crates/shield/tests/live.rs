//! The admin API's live surface (issue 22): the stream of incidents, seconds and list changes,
//! the latest incidents, the 15-minute timeline; all behind the bearer token.

mod support;

use std::time::{Duration, Instant};

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use mcp_shield::config::{self, ConfigSources};
use mcp_shield::{ConfigOverrides, SecuritySystem};
use serde_json::{json, Value};

const TOKEN: &str = "live-test-token-0123456789";

async fn system() -> SecuritySystem {
    let config = config::load(ConfigSources {
        overrides: ConfigOverrides::new()
            .set("ADMIN_TOKEN", TOKEN)
            .set("ENABLE_THREAT_DETECTION", true),
        ..ConfigSources::default()
    })
    .expect("valid config");
    SecuritySystem::start(config).await.expect("system")
}

fn admin(method: &str, path: &str, body: Option<Value>) -> Request<Body> {
    support::admin_request(TOKEN, method, path, body)
}

/// Reads the stream until `want` is in what arrived, for at most `limit`.
async fn read_until(body: &mut Body, seen: &mut String, want: &str, limit: Duration) {
    let started = Instant::now();
    while !seen.contains(want) {
        let left = limit.saturating_sub(started.elapsed());
        let frame = tokio::time::timeout(left, body.frame())
            .await
            .unwrap_or_else(|_| panic!("no {want:?} within {limit:?}; got:\n{seen}"))
            .expect("the stream is open")
            .expect("a frame");
        if let Ok(data) = frame.into_data() {
            seen.push_str(&String::from_utf8_lossy(&data));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_carries_incidents_seconds_and_list_changes_with_the_token_only() {
    let security = system().await;
    let app = support::app(&security);
    let without = support::send(
        &app,
        "127.0.0.1",
        Request::get("/api/security/stream")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(without.status(), StatusCode::UNAUTHORIZED);

    let response = support::send(
        &app,
        "127.0.0.1",
        admin("GET", "/api/security/stream", None),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();
    let mut seen = String::new();

    // A refused injection arrives as an incident, with its field and argument.
    let attack = Request::get("/search?q=%27%20OR%201%3D1--%20")
        .body(Body::empty())
        .expect("request");
    let (status, _) = support::respond(&app, "203.0.113.5", attack).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    read_until(
        &mut body,
        &mut seen,
        "event: incident",
        Duration::from_secs(3),
    )
    .await;
    read_until(
        &mut body,
        &mut seen,
        "sql_injection",
        Duration::from_secs(3),
    )
    .await;
    assert!(seen.contains(r#""field":"query:q""#), "{seen}");
    assert!(seen.contains("203.0.113.5"), "{seen}");
    // A second of traffic arrives once the sampler has two readings.
    read_until(
        &mut body,
        &mut seen,
        "event: second",
        Duration::from_secs(4),
    )
    .await;
    // A list change made through the admin API.
    let (status, _) = support::respond(
        &app,
        "127.0.0.1",
        admin(
            "POST",
            "/api/security/ip/blacklist",
            Some(json!({"ip": "198.51.100.9", "reason": "from the test"})),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    read_until(
        &mut body,
        &mut seen,
        r#""network":"198.51.100.9""#,
        Duration::from_secs(3),
    )
    .await;
    assert!(seen.contains("event: lists"), "{seen}");

    // The same incident in the list of the latest, and seconds in the timeline.
    let (status, latest) = support::respond(
        &app,
        "127.0.0.1",
        admin("GET", "/api/security/incidents?limit=5", None),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let incidents = latest["incidents"].as_array().expect("a list");
    assert!(incidents
        .iter()
        .any(|i| i["threats"][0]["type"] == "sql_injection" && i["ip"] == "203.0.113.5"));
    let (_, timeline) = support::respond(
        &app,
        "127.0.0.1",
        admin("GET", "/api/security/timeline", None),
    )
    .await;
    let seconds = timeline["seconds"].as_array().expect("seconds");
    assert!(!seconds.is_empty(), "{timeline}");
    assert!(
        seconds
            .iter()
            .map(|s| s["blocked"].as_u64().unwrap_or(0))
            .sum::<u64>()
            >= 1
    );
    let (status, _) = support::respond(
        &app,
        "127.0.0.1",
        admin("GET", "/api/security/incidents?limit=lots", None),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_streams_are_capped() {
    let security = system().await;
    let app = support::app(&security);
    let mut open = Vec::new();
    for _ in 0..16 {
        let response = support::send(
            &app,
            "127.0.0.1",
            admin("GET", "/api/security/stream", None),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        open.push(response);
    }
    let refused = support::send(
        &app,
        "127.0.0.1",
        admin("GET", "/api/security/stream", None),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    // Closing one gives its place back.
    drop(open.pop());
    let again = support::send(
        &app,
        "127.0.0.1",
        admin("GET", "/api/security/stream", None),
    )
    .await;
    assert_eq!(again.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_dashboard_is_served_with_a_strict_policy_and_no_inline_script() {
    let security = system().await;
    let app = support::app(&security);
    for (path, kind) in [
        ("/dashboard", "text/html"),
        ("/dashboard/app.js", "text/javascript"),
        ("/dashboard/style.css", "text/css"),
    ] {
        let response = support::send(
            &app,
            "127.0.0.1",
            Request::get(path).body(Body::empty()).expect("request"),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers().clone();
        assert!(headers["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with(kind));
        let policy = headers["content-security-policy"].to_str().expect("ascii");
        assert!(policy.contains("default-src 'none'") && policy.contains("script-src 'self'"));
        assert!(!policy.contains("unsafe"), "{policy}");
        assert_eq!(headers["x-frame-options"], "DENY");
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let text = String::from_utf8_lossy(&body);
        if path == "/dashboard" {
            // Every script is a file of this origin; no inline code, no outside address.
            assert_eq!(
                text.matches("<script").count(),
                text.matches("<script src=\"/dashboard/").count()
            );
            assert!(
                !text.contains("http://") && !text.contains("https://"),
                "{text}"
            );
            assert!(
                !text.contains(" style=\"") && !text.contains("onclick"),
                "{text}"
            );
        }
        if path == "/dashboard/app.js" {
            assert!(!text.contains("innerHTML"), "values are set as text only");
        }
    }
}
