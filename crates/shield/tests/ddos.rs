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
    let (app, clock, security) =
        setup(ConfigOverrides::new().set("DDOS_REQUESTS_PER_SECOND_THRESHOLD", 10));
    // A client known before the emergency...
    assert_eq!(get(&app, "192.0.2.1").await.0, StatusCode::OK);
    clock.advance(Duration::from_secs(2));
    security.set_emergency_mode(true);
    // ...gets half the threshold,
    for _ in 0..5 {
        assert_eq!(get(&app, "192.0.2.1").await.0, StatusCode::OK);
    }
    assert_eq!(
        get(&app, "192.0.2.1").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // and a client first seen during the emergency gets the tightest: half of that again.
    for _ in 0..2 {
        assert_eq!(get(&app, "192.0.2.2").await.0, StatusCode::OK);
    }
    assert_eq!(
        get(&app, "192.0.2.2").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // An old client with a bad record (it was blocked just now) gets the tightest too.
    security.set_emergency_mode(false);
    clock.advance(Duration::from_secs(120));
    assert_eq!(
        get(&app, "192.0.2.1").await.0,
        StatusCode::OK,
        "its block is over"
    );
    clock.advance(Duration::from_secs(2));
    security.set_emergency_mode(true);
    for _ in 0..2 {
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

#[tokio::test]
async fn a_global_flood_enters_emergency_mode_and_a_quiet_cooldown_leaves_it() {
    let (app, clock, security) = setup(
        ConfigOverrides::new()
            .set("DDOS_EMERGENCY_RPS_THRESHOLD", 50.0)
            .set("DDOS_EMERGENCY_COOLDOWN", 10)
            .set("DDOS_REQUESTS_PER_SECOND_THRESHOLD", 1000),
    );
    let mut events = security.subscribe();
    // Calm: 10 requests a second.
    for _ in 0..5 {
        for i in 0..10 {
            get(&app, &format!("192.0.2.{i}")).await;
        }
        clock.advance(Duration::from_secs(1));
    }
    assert!(!security.status().await.emergency_mode);
    // A flood: 200 requests in one second from many addresses.
    for i in 0..200u32 {
        get(&app, &format!("198.51.{}.{}", i / 250, i % 250)).await;
    }
    clock.advance(Duration::from_secs(1));
    get(&app, "192.0.2.1").await; // the next second's first request ticks the controller
    assert!(security.status().await.emergency_mode, "entered");
    // Quiet for nine seconds: still on (hysteresis).
    for _ in 0..9 {
        clock.advance(Duration::from_secs(1));
        get(&app, "192.0.2.1").await;
    }
    assert!(security.status().await.emergency_mode, "too early to leave");
    clock.advance(Duration::from_secs(2));
    get(&app, "192.0.2.1").await;
    assert!(
        !security.status().await.emergency_mode,
        "left after the cooldown"
    );
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let mcp_shield::SecurityEvent::EmergencyMode { enabled, by } = &*event {
            seen.push((*enabled, *by));
        }
    }
    assert_eq!(seen, vec![(true, "automatic"), (false, "automatic")]);
}

#[tokio::test]
async fn patterns_are_reported_and_shown_in_the_assessment() {
    let config = config::load(ConfigSources {
        overrides: ConfigOverrides::new()
            .set("ENABLE_DDOS_PROTECTION", true)
            .set("DDOS_REQUESTS_PER_SECOND_THRESHOLD", 1000)
            .set("DDOS_REQUESTS_PER_MINUTE_THRESHOLD", 100_000)
            .set("ADMIN_TOKEN", "ddos-test-token"),
        ..ConfigSources::default()
    })
    .expect("config");
    let clock = ManualClock::starting_at(1_800_000_000_000);
    let security = SecuritySystem::with_clock(config, clock.clone()).expect("system");
    let app = Router::new()
        .route("/exists", axum::routing::get(|| async { "ok" }))
        .fallback(|| async { (StatusCode::NOT_FOUND, "no") })
        .layer(security.layer());
    let mut events = security.subscribe();
    // A scanner: 40 requests a second to paths that do not exist.
    for i in 0..40u32 {
        let mut request = Request::get(format!("/probe/{i}"))
            .body(Body::empty())
            .expect("request");
        request.extensions_mut().insert(ConnectInfo(
            "203.0.113.5:40000".parse::<SocketAddr>().expect("peer"),
        ));
        app.clone().oneshot(request).await.expect("infallible");
        clock.advance(Duration::from_millis(25));
    }
    let mut patterns = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let mcp_shield::SecurityEvent::Pattern { ip, pattern, .. } = &*event {
            assert_eq!(ip.map(|i| i.to_string()).as_deref(), Some("203.0.113.5"));
            patterns.push(*pattern);
        }
    }
    assert!(patterns.contains(&"burst_above_baseline"), "{patterns:?}");
    assert!(patterns.contains(&"high_error_rate"), "{patterns:?}");
    let assessment = security.threat_assessment("203.0.113.5".parse().expect("ip"));
    assert!(assessment.patterns.contains(&"high_error_rate"));
    assert!(security.statistics().patterns_detected >= 2);
}

#[tokio::test]
async fn low_reputation_addresses_get_the_tightest_limits_in_an_emergency() {
    let config = config::load(ConfigSources {
        overrides: ConfigOverrides::new()
            .set("ENABLE_DDOS_PROTECTION", true)
            .set("ENABLE_IP_MANAGEMENT", true)
            .set("ENABLE_RATE_LIMITING", true)
            .set("RATE_LIMIT_PER_USER_CAPACITY", 1)
            .set("RATE_LIMIT_PER_USER_REFILL_RATE", 0.001)
            .set("DDOS_REQUESTS_PER_SECOND_THRESHOLD", 10)
            .set("ADMIN_TOKEN", "ddos-test-token"),
        ..ConfigSources::default()
    })
    .expect("config");
    let clock = ManualClock::starting_at(1_800_000_000_000);
    let security = SecuritySystem::with_clock(config, clock.clone()).expect("system");
    let app = Router::new()
        .fallback(|| async { "ok" })
        .layer(security.layer());
    let send = |ip: &str, token: Option<&str>| {
        let mut request = Request::get("/");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let mut request = request.body(Body::empty()).expect("request");
        let peer: SocketAddr = format!("{ip}:40000").parse().expect("peer");
        request.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(request)
    };
    assert_eq!(
        send("192.0.2.10", None).await.expect("ok").status(),
        StatusCode::OK
    );
    // The other client's user runs out of its one token: fifteen rate-limit refusals, at a
    // gentle pace (no DDoS offence), cost it 30 points of reputation.
    for _ in 0..16 {
        send("192.0.2.11", Some("greedy")).await.expect("ok");
        clock.advance(Duration::from_millis(250));
    }
    let low: std::net::IpAddr = "192.0.2.11".parse().expect("ip");
    let score = security
        .threat_assessment(low)
        .reputation_score
        .expect("score");
    assert!(score < 30.0, "{score}");
    assert!(security.threat_assessment(low).patterns.is_empty());
    clock.advance(Duration::from_secs(2));
    security.set_emergency_mode(true);
    // The good client keeps half the threshold (5); the poor one gets a quarter (2.5).
    for _ in 0..5 {
        assert_eq!(
            send("192.0.2.10", None).await.expect("ok").status(),
            StatusCode::OK
        );
    }
    for _ in 0..2 {
        assert_eq!(
            send("192.0.2.11", None).await.expect("ok").status(),
            StatusCode::OK
        );
    }
    assert_eq!(
        send("192.0.2.11", None).await.expect("ok").status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}
