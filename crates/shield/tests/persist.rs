//! Lists, temporary blocks and reputation survive a restart in memory mode.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use http::{Request, StatusCode};
use mcp_shield::config::{self, ConfigSources};
use mcp_shield::ip::ListKind;
use mcp_shield::{ConfigOverrides, ManualClock, SecuritySystem};
use tower::ServiceExt;

fn system(
    dir: &std::path::Path,
    clock: std::sync::Arc<ManualClock>,
) -> Result<SecuritySystem, mcp_shield::InitError> {
    let config = config::load(ConfigSources {
        overrides: ConfigOverrides::new()
            .set("ENABLE_IP_MANAGEMENT", true)
            .set("ENABLE_RATE_LIMITING", true)
            .set("RATE_LIMIT_PER_IP_CAPACITY", 1)
            .set("RATE_LIMIT_PER_IP_REFILL_RATE", 0.001)
            .set("DATA_DIR", dir.display().to_string())
            .set("ADMIN_TOKEN", "persist-test-token"),
        ..ConfigSources::default()
    })
    .expect("config");
    SecuritySystem::with_clock(config, clock)
}

async fn status_from(security: &SecuritySystem, ip: &str) -> StatusCode {
    let app = Router::new()
        .fallback(|| async { "ok" })
        .layer(security.layer());
    let mut request = Request::get("/").body(Body::empty()).expect("request");
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::new(ip.parse().expect("ip"), 40000)));
    app.oneshot(request).await.expect("infallible").status()
}

#[tokio::test]
async fn a_restart_keeps_a_blacklist_a_temporary_block_and_reputation() {
    let dir = std::env::temp_dir().join(format!("mcp-shield-persist-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let clock = ManualClock::starting_at(1_800_000_000_000);
    {
        let first = system(&dir, clock.clone()).expect("system");
        first
            .blacklist("198.51.100.0/24", "seen attacking", None)
            .expect("add");
        // Twenty-one refusals: a temporary block by reputation.
        for _ in 0..22 {
            status_from(&first, "203.0.113.50").await;
        }
        assert_eq!(
            status_from(&first, "203.0.113.50").await,
            StatusCode::FORBIDDEN
        );
        // Another client loses a few points only.
        for _ in 0..4 {
            status_from(&first, "192.0.2.9").await;
        }
        first.persist().await.expect("saved");
    }
    assert!(dir.join("ip-state.json").exists());

    let second = system(&dir, clock.clone()).expect("restarted");
    assert_eq!(
        status_from(&second, "198.51.100.7").await,
        StatusCode::FORBIDDEN,
        "blacklist kept"
    );
    let block = second
        .ip_lists()
        .lookup(ListKind::Blacklist, "203.0.113.50".parse().expect("ip"))
        .expect("temporary block kept");
    assert_eq!(block.entry.reason, "Auto-blacklisted due to low reputation");
    assert_eq!(
        block.entry.expires_at_ms,
        Some(1_800_000_000_000 + 3_600_000)
    );
    assert_eq!(
        second
            .threat_assessment("192.0.2.9".parse().expect("ip"))
            .reputation_score,
        Some(44.0),
        "reputation kept"
    );
    // The temporary block still ends on time after the restart.
    clock.advance(std::time::Duration::from_secs(3600));
    assert!(
        !second
            .threat_assessment("203.0.113.50".parse().expect("ip"))
            .blocked
    );

    // A damaged state file stops the start instead of being overwritten.
    std::fs::write(dir.join("ip-state.json"), b"{ not json").expect("write");
    let err = system(&dir, clock).expect_err("corrupt state").to_string();
    assert!(err.contains("ip-state.json"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

fn system_with_key(
    dir: &std::path::Path,
    clock: std::sync::Arc<ManualClock>,
    key: &str,
) -> SecuritySystem {
    let config = config::load(ConfigSources {
        overrides: ConfigOverrides::new()
            .set("ENABLE_IP_MANAGEMENT", true)
            .set("ENABLE_RATE_LIMITING", true)
            .set("RATE_LIMIT_PER_IP_CAPACITY", 1)
            .set("RATE_LIMIT_PER_IP_REFILL_RATE", 0.001)
            .set("DATA_DIR", dir.display().to_string())
            .set("IP_HASH_KEY", key)
            .set("ADMIN_TOKEN", "persist-test-token"),
        ..ConfigSources::default()
    })
    .expect("config");
    SecuritySystem::with_clock(config, clock).expect("system")
}

#[tokio::test]
async fn with_a_hash_key_reputation_is_saved_by_hash_and_found_again() {
    let dir = std::env::temp_dir().join(format!("mcp-shield-hashed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let clock = ManualClock::starting_at(1_800_000_000_000);
    {
        let first = system_with_key(&dir, clock.clone(), "the-operators-key");
        for _ in 0..4 {
            status_from(&first, "192.0.2.9").await;
        }
        first.persist().await.expect("saved");
    }
    let text = std::fs::read_to_string(dir.join("ip-state.json")).expect("state file");
    let saved: serde_json::Value = serde_json::from_str(&text).expect("json");
    let records = saved["reputation"].as_array().expect("records");
    assert_eq!(records.len(), 1, "{text}");
    assert!(records[0].get("ip").is_none(), "{text}");
    assert_eq!(
        records[0]["ip_hash"].as_str().map(str::len),
        Some(16),
        "{text}"
    );
    assert!(
        !text.contains("192.0.2.9"),
        "no address in the file: {text}"
    );

    // Restarted with the same key: the record is found when the address comes back, and is
    // saved again meanwhile.
    let ip = "192.0.2.9".parse().expect("ip");
    {
        let second = system_with_key(&dir, clock.clone(), "the-operators-key");
        second.persist().await.expect("saved untouched");
    }
    let second = system_with_key(&dir, clock.clone(), "the-operators-key");
    assert_eq!(second.threat_assessment(ip).reputation_score, Some(44.0));
    // With another key the record can never match: the address starts afresh.
    drop(second);
    std::fs::remove_dir_all(&dir).ok();
    let mut fresh = system_with_key(&dir, clock.clone(), "the-operators-key");
    for _ in 0..4 {
        status_from(&fresh, "192.0.2.9").await;
    }
    fresh.persist().await.expect("saved");
    fresh = system_with_key(&dir, clock, "another-key");
    assert_eq!(fresh.threat_assessment(ip).reputation_score, Some(50.0));
    std::fs::remove_dir_all(&dir).ok();
}
