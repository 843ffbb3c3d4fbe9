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
