//! `SecuritySystem::reload` in-process: what a reload changes (the threat policy and mode,
//! DDoS thresholds, MCP checks, reputation thresholds, lists) and what it keeps (reputation
//! scores, blocks made at run time, custom patterns, DDoS history).

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use http::{Request, StatusCode};
use mcp_shield::config::{self, ConfigSources};
use mcp_shield::threat::{Severity, ThreatIndicator};
use mcp_shield::{Config, ConfigOverrides, SecuritySystem};
use tower::ServiceExt;

fn config(toml: &str) -> Config {
    // A folder per call: tests run in parallel, and two files of the same length (the name
    // used to be keyed on it) removed each other's folder.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "mcp-shield-reload-{}-{}",
        std::process::id(),
        CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("folder");
    let file = dir.join("shield.toml");
    std::fs::write(&file, toml).expect("write");
    let config = config::load(ConfigSources {
        file: Some(file),
        overrides: ConfigOverrides::new().set("ADMIN_TOKEN", "reload-test-token-0123456789"),
        ..ConfigSources::default()
    })
    .expect("valid configuration");
    let _ = std::fs::remove_dir_all(dir);
    config
}

fn app(security: &SecuritySystem) -> Router {
    Router::new()
        .fallback(|| async { "upstream" })
        .layer(security.layer())
}

async fn status(app: &Router, from: &str, request: Request<Body>) -> StatusCode {
    let mut request = request;
    let peer: SocketAddr = format!("{from}:40000").parse().expect("peer");
    request.extensions_mut().insert(ConnectInfo(peer));
    app.clone()
        .oneshot(request)
        .await
        .expect("infallible")
        .status()
}

fn get(path: &str) -> Request<Body> {
    Request::get(path)
        .header("host", "api.example")
        .body(Body::empty())
        .expect("request")
}

const BEFORE: &str = r#"
enable_ip_management = true
enable_threat_detection = true
enable_ddos_protection = true
whitelist = ["192.0.2.50"]

[ddos]
requests_per_second_threshold = 1000
requests_per_minute_threshold = 100000
emergency_rps_threshold = 100000

[ip]
auto_blacklist_threshold = 20
"#;

const AFTER: &str = r#"
enable_ip_management = true
enable_threat_detection = true
enable_ddos_protection = true
blacklist = ["198.51.100.0/24"]

[ddos]
requests_per_second_threshold = 3
requests_per_minute_threshold = 100000
emergency_rps_threshold = 100000
max_tracked_ips = 1000

[ip]
auto_blacklist_threshold = 30

[threat_detection]
mode = "monitor"

[mcp]
allowed_hosts = ["api.example"]
"#;

#[tokio::test]
async fn a_reload_changes_settings_and_keeps_state() {
    let security = SecuritySystem::from_config(config(BEFORE)).expect("system");
    security
        .threat_detector()
        .add_pattern("custom_attack", |request| {
            request.uri.contains("forbidden-word").then(|| {
                ThreatIndicator::new(
                    "custom_attack",
                    Severity::High,
                    0.9,
                    "path",
                    "forbidden-word",
                )
            })
        });
    let app = app(&security);
    let sqli = || get("/search?q=1%27%20OR%20%271%27=%271");
    assert_eq!(
        status(&app, "203.0.113.9", sqli()).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&app, "203.0.113.9", get("/forbidden-word")).await,
        StatusCode::FORBIDDEN
    );
    let score = security
        .reputation()
        .expect("reputation")
        .score("203.0.113.9".parse().expect("ip"));
    assert!(score < 100.0, "{score}");
    security
        .blacklist("203.0.113.77", "by hand", None)
        .expect("blacklisted");
    assert_eq!(status(&app, "198.51.100.4", get("/")).await, StatusCode::OK);

    let report = security.reload(config(AFTER)).await.expect("reloaded");
    assert!(
        report
            .applied
            .contains(&"threat_detection.mode".to_string()),
        "{report:?}"
    );
    assert!(
        report.applied.contains(&"blacklist".to_string()),
        "{report:?}"
    );
    assert_eq!(report.needs_restart, vec!["ddos.max_tracked_ips"]);
    assert_eq!(security.config().threat_detection.mode, "monitor");
    assert_eq!(
        security.config().ddos.max_tracked_ips,
        Config::default().ddos.max_tracked_ips,
        "a setting that needs a restart keeps its running value"
    );

    // Monitor mode: the injection is served now; the custom pattern still runs (monitored).
    assert_eq!(status(&app, "203.0.113.10", sqli()).await, StatusCode::OK);
    // Lists: the file's new entry applies, its old one is gone, the hand-made one stays.
    assert_eq!(
        status(&app, "198.51.100.4", get("/")).await,
        StatusCode::FORBIDDEN
    );
    assert!(!security.ip_lists().contains(
        mcp_shield::ip::ListKind::Whitelist,
        "192.0.2.50".parse().expect("ip")
    ));
    assert_eq!(
        status(&app, "203.0.113.77", get("/")).await,
        StatusCode::FORBIDDEN
    );
    // Reputation: the score stays, the threshold is the new one.
    let reputation = security.reputation().expect("reputation");
    assert_eq!(reputation.score("203.0.113.9".parse().expect("ip")), score);
    assert_eq!(reputation.threshold(), 30.0);
    // MCP: the Host check of the new file.
    let rebinding = Request::get("/mcp")
        .header("host", "evil.example")
        .body(Body::empty())
        .expect("request");
    assert_eq!(
        status(&app, "203.0.113.20", rebinding).await,
        StatusCode::FORBIDDEN
    );
    // DDoS: the new per-second threshold (3) refuses the fourth request in a second.
    let burst = |host: &'static str| {
        Request::get("/")
            .header("host", host)
            .body(Body::empty())
            .expect("request")
    };
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(status(&app, "203.0.113.30", burst("api.example")).await);
    }
    assert!(seen.contains(&StatusCode::TOO_MANY_REQUESTS), "{seen:?}");
    assert_eq!(seen[0], StatusCode::OK);
}

#[tokio::test]
async fn an_invalid_policy_changes_nothing() {
    let security = SecuritySystem::from_config(config(BEFORE)).expect("system");
    let mut broken = config(AFTER);
    broken.threat_detection.patterns = vec![mcp_shield::threat::CustomPattern {
        name: "broken".into(),
        pattern: "(unclosed".into(),
        severity: "high".into(),
    }];
    let error = security.reload(broken).await.expect_err("refused");
    assert!(error.to_string().contains("unclosed"), "{error}");
    assert_eq!(security.config().threat_detection.mode, "block");
    assert!(security.ip_lists().contains(
        mcp_shield::ip::ListKind::Whitelist,
        "192.0.2.50".parse().expect("ip")
    ));
    let report = SecuritySystem::from_config(config(BEFORE))
        .expect("system")
        .reload_from_source("test")
        .await;
    assert!(matches!(report, Err(mcp_shield::ReloadError::NoSource)));
}
