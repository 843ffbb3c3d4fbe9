//! Block log lines carry the client's country and AS, and threat lines the seed's wording, in a
//! test binary of its own (the log subscriber is process-wide).

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use http::{Request, StatusCode};
use mcp_shield::config::{self, ConfigSources};
use mcp_shield::{ConfigOverrides, SecuritySystem};
use tower::ServiceExt;

mod support;

use support::shared_geoip as shared;

/// Collects log output in memory.
#[derive(Clone, Default)]
struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn block_lines_carry_the_country_and_as_and_the_threat_names() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber here");
    let config = config::load(ConfigSources {
        overrides: ConfigOverrides::new()
            .set("ENABLE_IP_MANAGEMENT", true)
            .set("GEOIP_DATABASE_PATH", shared("GeoIP2-City-Test.mmdb"))
            .set("GEO_BLOCKED_COUNTRIES", "GB")
            .set("ADMIN_TOKEN", "geoip-test-token"),
        ..ConfigSources::default()
    })
    .expect("config");
    let security = SecuritySystem::from_config(config).expect("system");
    let app = Router::new()
        .fallback(|| async { "ok" })
        .layer(security.layer());
    let mut request = Request::get("/").body(Body::empty()).expect("request");
    request.extensions_mut().insert(ConnectInfo(SocketAddr::new(
        "81.2.69.142".parse().expect("ip"),
        40000,
    )));
    let response = app.oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let text = String::from_utf8_lossy(&logs.0.lock().expect("logs")).into_owned();
    assert!(
        text.contains("Blocked request from 81.2.69.142: Country GB is blocked"),
        "{text}"
    );
    assert!(text.contains("country=GB"), "{text}");

    // The seed's threat line names the threat types, strongest first.
    let config = config::load(ConfigSources {
        overrides: ConfigOverrides::new()
            .set("ENABLE_THREAT_DETECTION", true)
            .set("ADMIN_TOKEN", "geoip-test-token"),
        ..ConfigSources::default()
    })
    .expect("config");
    let security = SecuritySystem::from_config(config).expect("system");
    let app = Router::new()
        .fallback(|| async { "ok" })
        .layer(security.layer());
    let mut request =
        Request::get("/search?q=%27%20or%201%3D1--&r=%3Cscript%3Ealert(1)%3C%2Fscript%3E")
            .body(Body::empty())
            .expect("request");
    request.extensions_mut().insert(ConnectInfo(SocketAddr::new(
        "1.2.3.6".parse().expect("ip"),
        40000,
    )));
    let response = app.oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let text = String::from_utf8_lossy(&logs.0.lock().expect("logs")).into_owned();
    assert!(
        text.contains("security.threat_detector")
            && text.contains("Threats detected for IP 1.2.3.6: ['sql_injection', 'xss_attack']"),
        "{text}"
    );
}
