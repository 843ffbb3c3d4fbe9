//! DDoS protection through the layer on a hand-moved clock: a flood from one address is
//! refused with `ddos_blocked` and `Retry-After` while others are served; blocks grow;
//! emergency mode halves the thresholds; the threat assessment shows the rates.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use mcp_shield::config::{self, ConfigSources};
use mcp_shield::{ConfigOverrides, ManualClock, SecuritySystem};
use serde_json::{json, Value};
use tower::ServiceExt;

fn setup(overrides: ConfigOverrides) -> (Router, std::sync::Arc<ManualClock>, SecuritySystem) {
    let config = config::load(ConfigSources {
        overrides: overrides
            .set("ENABLE_DDOS_PROTECTION", true)
            .set("ADMIN_TOKEN", "ddos-test-token"),
        ..ConfigSources::default()
    })
    .expect("config");
    let clock = ManualClock::starting_at(1_800_000_000_000);
    let security = SecuritySystem::with_clock(config, clock.clone()).expect("system");
    let app = Router::new()
        .fallback(|| async { "ok" })
        .layer(security.layer());
    (app, clock, security)
}

async fn get(app: &Router, from: &str) -> (StatusCode, http::HeaderMap, Value) {
    let mut request = Request::get("/").body(Body::empty()).expect("request");
    let peer: SocketAddr = format!("{from}:40000").parse().expect("peer");
    request.extensions_mut().insert(ConnectInfo(peer));
    let response = app.clone().oneshot(request).await.expect("infallible");
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_flood_from_one_address_is_refused_while_others_are_served() {
    let (app, clock, security) = setup(
        ConfigOverrides::new()
            .set("DDOS_REQUESTS_PER_SECOND_THRESHOLD", 10)
            .set("DDOS_BLOCK_DURATION", 30),
    );
    for _ in 0..10 {
        assert_eq!(get(&app, "192.0.2.66").await.0, StatusCode::OK);
    }
    let (status, headers, body) = get(&app, "192.0.2.66").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "30");
    assert_eq!(body["type"], "ddos_blocked");
    assert_eq!(body["error"], "Request blocked by DDoS protection");
    assert_eq!(body["detail"], "High request rate");
    assert_eq!(
        get(&app, "192.0.2.67").await.0,
        StatusCode::OK,
        "another address is served"
    );

    // Blocked for the whole block, even at a gentle pace.
    clock.advance(Duration::from_secs(20));
    let (status, headers, _) = get(&app, "192.0.2.66").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "10");
    let assessment = security.threat_assessment("192.0.2.66".parse().expect("ip"));
    assert!(assessment.blocked);
    assert_eq!(assessment.threat_level, "medium");
    assert!(assessment.request_rate.expect("tracked").per_minute >= 12.0);
    clock.advance(Duration::from_secs(11));
    assert_eq!(get(&app, "192.0.2.66").await.0, StatusCode::OK);
    // Flooding again right away earns a block twice as long.
    let mut last = StatusCode::OK;
    let mut retry = String::new();
    for _ in 0..11 {
        let (status, headers, _) = get(&app, "192.0.2.66").await;
        last = status;
        if let Some(v) = headers.get("retry-after") {
            retry = v.to_str().expect("ascii").to_string();
        }
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry, "60");
    let stats = security.statistics();
    assert!(stats.ddos_blocked >= 3, "{stats:?}");
}

#[tokio::test]
async fn emergency_mode_halves_the_thresholds() {
    let (app, _clock, security) =
        setup(ConfigOverrides::new().set("DDOS_REQUESTS_PER_SECOND_THRESHOLD", 10));
    security.set_emergency_mode(true);
    for _ in 0..5 {
        assert_eq!(get(&app, "192.0.2.1").await.0, StatusCode::OK);
    }
    assert_eq!(
        get(&app, "192.0.2.1").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    let status = security.status().await;
    assert!(status.emergency_mode);
    assert_eq!(
        status.components["ddos_protection"].details["per_second_threshold_now"],
        json!(5.0)
    );
    security.set_emergency_mode(false);
    assert_eq!(
        security.status().await.components["ddos_protection"].details["per_second_threshold_now"],
        json!(10.0)
    );
}

#[tokio::test]
async fn requests_in_flight_per_address_are_capped_until_their_bodies_end() {
    let config = config::load(ConfigSources {
        overrides: ConfigOverrides::new()
            .set("ENABLE_DDOS_PROTECTION", true)
            .set("DDOS_CONCURRENT_CONNECTIONS_LIMIT", 2)
            .set("WHITELIST", "10.0.0.1")
            .set("ADMIN_TOKEN", "ddos-test-token"),
        ..ConfigSources::default()
    })
    .expect("config");
    let security = SecuritySystem::from_config(config).expect("system");
    // Every response is a stream that stays open until the client drops it.
    let app = Router::new()
        .fallback(|| async {
            let (_tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(1);
            let stream = futures_util::stream::unfold((rx, _tx), |(mut rx, tx)| async move {
                rx.recv().await.map(|item| (item, (rx, tx)))
            });
            Body::from_stream(stream)
        })
        .layer(security.layer());
    let send = |from: &str| {
        let mut request = Request::get("/stream")
            .body(Body::empty())
            .expect("request");
        let peer: SocketAddr = format!("{from}:40000").parse().expect("peer");
        request.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(request)
    };
    let first = send("192.0.2.1").await.expect("infallible");
    let second = send("192.0.2.1").await.expect("infallible");
    assert_eq!(
        (first.status(), second.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    let third = send("192.0.2.1").await.expect("infallible");
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    let body = third.into_body().collect().await.expect("body").to_bytes();
    let body: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(body["detail"], "Too many concurrent requests");
    // Other addresses and whitelisted ones are not limited by it.
    assert_eq!(
        send("192.0.2.2").await.expect("infallible").status(),
        StatusCode::OK
    );
    let mut held = Vec::new();
    for _ in 0..5 {
        let r = send("10.0.0.1").await.expect("infallible");
        assert_eq!(r.status(), StatusCode::OK);
        held.push(r);
    }
    // Dropping a response (its body) frees the slot.
    drop(first);
    assert_eq!(
        send("192.0.2.1").await.expect("infallible").status(),
        StatusCode::OK
    );
    drop(second);
}
