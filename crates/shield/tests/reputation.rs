//! Reputation through the layer: refusals from other guards lower an address's score, a low
//! score blacklists it for a while, and it comes back on probation.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use http::{Request, StatusCode};
use mcp_shield::config::{self, ConfigSources};
use mcp_shield::ip::ListKind;
use mcp_shield::{ConfigOverrides, ManualClock, SecuritySystem};
use tower::ServiceExt;

#[tokio::test]
async fn repeated_refusals_auto_blacklist_then_probation_then_a_longer_block() {
    let config = config::load(ConfigSources {
        overrides: ConfigOverrides::new()
            .set("ENABLE_IP_MANAGEMENT", true)
            .set("ENABLE_RATE_LIMITING", true)
            .set("RATE_LIMIT_PER_IP_CAPACITY", 1)
            .set("RATE_LIMIT_PER_IP_REFILL_RATE", 0.001)
            .set("IP_TEMP_BLOCK_DURATION", 600)
            .set("ADMIN_TOKEN", "reputation-test-token"),
        ..ConfigSources::default()
    })
    .expect("config");
    let clock = ManualClock::starting_at(1_800_000_000_000);
    let security = SecuritySystem::with_clock(config, clock.clone()).expect("system");
    let mut events = security.subscribe();
    let app = Router::new()
        .fallback(|| async { "ok" })
        .layer(security.layer());
    let get = || {
        let mut request = Request::get("/").body(Body::empty()).expect("request");
        request.extensions_mut().insert(ConnectInfo(
            "203.0.113.50:40000".parse::<SocketAddr>().expect("peer"),
        ));
        app.clone().oneshot(request)
    };
    let ip = "203.0.113.50".parse().expect("ip");
    assert_eq!(get().await.expect("ok").status(), StatusCode::OK);
    // Each rate-limit refusal costs 2 points: from 50, twenty of them reach the threshold 10.
    let mut statuses = Vec::new();
    for _ in 0..21 {
        statuses.push(get().await.expect("ok").status());
    }
    assert!(statuses[..20]
        .iter()
        .all(|s| *s == StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(statuses[20], StatusCode::FORBIDDEN, "auto-blacklisted");
    let entry = security
        .ip_lists()
        .lookup(ListKind::Blacklist, ip)
        .expect("on the blacklist");
    assert_eq!(entry.entry.reason, "Auto-blacklisted due to low reputation");
    let assessment = security.threat_assessment(ip);
    assert_eq!(assessment.reputation_score, Some(10.0));
    assert_eq!(assessment.threat_level, "critical");
    assert_eq!(
        assessment.blocked_until_ms,
        Some(1_800_000_000_000 + 600_000)
    );
    let mut added = false;
    while let Ok(event) = events.try_recv() {
        if let mcp_shield::SecurityEvent::ListAdded { reason, .. } = &*event {
            added |= reason == "Auto-blacklisted due to low reputation";
        }
    }
    assert!(added, "the block is an event (so Redis propagates it)");

    // The block ends: served again, on probation at 30 points.
    clock.advance(Duration::from_secs(600));
    let assessment = security.threat_assessment(ip);
    assert!(!assessment.blocked);
    assert_eq!(assessment.reputation_score, Some(30.0));
    // Its rate-limit bucket has not refilled (one token per 1000 s): ten more refusals relapse.
    for _ in 0..10 {
        assert_eq!(
            get().await.expect("ok").status(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    assert_eq!(get().await.expect("ok").status(), StatusCode::FORBIDDEN);
    let again = security
        .ip_lists()
        .lookup(ListKind::Blacklist, ip)
        .expect("blocked again");
    assert_eq!(
        again.entry.expires_at_ms,
        Some(1_800_000_000_000 + 600_000 + 1_200_000),
        "twice as long"
    );
    // Other addresses are untouched.
    assert_eq!(
        security
            .threat_assessment("192.0.2.1".parse().expect("ip"))
            .reputation_score,
        Some(50.0)
    );
}
