//! GeoIP with MaxMind's test databases (`../shared/geoip/`): country rules through the layer,
//! GeoIP in the threat assessment, a missing database tolerated, a corrupt one refused at start.

use axum::body::Body;
use axum::Router;
use http::{Request, StatusCode};
use mcp_shield::config::{self, ConfigSources};
use mcp_shield::{ConfigOverrides, SecuritySystem};
use serde_json::Value;

mod support;

use support::shared_geoip as shared;

/// A system with IP management and both test databases; `extra` settings come last and win.
fn system(extra: &[(&str, String)]) -> Result<SecuritySystem, mcp_shield::InitError> {
    let mut overrides = ConfigOverrides::new()
        .set("ENABLE_IP_MANAGEMENT", true)
        .set("GEOIP_DATABASE_PATH", shared("GeoIP2-City-Test.mmdb"))
        .set("GEOIP_ASN_DATABASE_PATH", shared("GeoLite2-ASN-Test.mmdb"))
        .set("ADMIN_TOKEN", "geoip-test-token");
    for (name, value) in extra {
        overrides = overrides.set(*name, value.clone());
    }
    let config = config::load(ConfigSources {
        overrides,
        ..ConfigSources::default()
    })
    .expect("config");
    SecuritySystem::from_config(config)
}

async fn get(security: &SecuritySystem, from: &str) -> (StatusCode, Value) {
    let app = Router::new()
        .fallback(|| async { "ok" })
        .layer(security.layer());
    let (status, body) = support::respond(
        &app,
        from,
        Request::get("/").body(Body::empty()).expect("request"),
    )
    .await;
    // Plain text bodies ("ok") read as no JSON here.
    (status, if body.is_string() { Value::Null } else { body })
}

#[tokio::test]
async fn blocked_countries_get_403_naming_the_country() {
    let security = system(&[("GEO_BLOCKED_COUNTRIES", "GB, cn".into())]).expect("system");
    let (status, body) = get(&security, "81.2.69.142").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["type"], "ip_blocked");
    assert_eq!(body["detail"], "Country GB is blocked");
    assert_eq!(
        get(&security, "175.16.199.0").await.0,
        StatusCode::FORBIDDEN,
        "CN, given in lower case"
    );
    assert_eq!(
        get(&security, "216.160.83.56").await.0,
        StatusCode::OK,
        "US"
    );
    assert_eq!(
        get(&security, "10.1.2.3").await.0,
        StatusCode::OK,
        "unknown country is served"
    );
    assert_eq!(security.statistics().ip_blocked, 2);
}

#[tokio::test]
async fn allowed_countries_refuse_the_rest() {
    let security = system(&[("GEO_ALLOWED_COUNTRIES", "SE,JP".into())]).expect("system");
    assert_eq!(
        get(&security, "89.160.20.112").await.0,
        StatusCode::OK,
        "SE"
    );
    assert_eq!(
        get(&security, "2001:218::1").await.0,
        StatusCode::OK,
        "JP over IPv6"
    );
    let (status, body) = get(&security, "81.2.69.142").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["detail"], "Country GB is not allowed");
}

#[tokio::test]
async fn the_threat_assessment_shows_geoip() {
    let security = system(&[]).expect("system");
    let london =
        serde_json::to_value(security.threat_assessment("81.2.69.142".parse().expect("ip")))
            .expect("json");
    assert_eq!(london["geo"]["country"], "GB");
    assert_eq!(london["geo"]["city"], "London");
    let google = serde_json::to_value(security.threat_assessment("1.0.0.1".parse().expect("ip")))
        .expect("json");
    assert_eq!(google["geo"]["asn"], 15169);
    assert_eq!(google["geo"]["as_organization"], "Google Inc.");
    let status = security.status().await;
    assert_eq!(status.components["ip_management"].details["geoip"], true);
}

#[test]
fn a_corrupt_database_stops_the_start_and_a_missing_one_does_not() {
    let broken = shared("GeoIP2-City-Test-Broken-Double-Format.mmdb");
    let err = system(&[("GEOIP_DATABASE_PATH", broken.clone())])
        .expect_err("corrupt database")
        .to_string();
    assert!(
        err.contains("GeoIP2-City-Test-Broken-Double-Format.mmdb") && err.contains("corrupt"),
        "{err}"
    );
    let missing = system(&[
        (
            "GEOIP_DATABASE_PATH",
            "/nonexistent/GeoLite2-City.mmdb".into(),
        ),
        ("GEOIP_ASN_DATABASE_PATH", String::new()),
    ])
    .expect("runs without GeoIP");
    let assessment = missing.threat_assessment("81.2.69.142".parse().expect("ip"));
    assert!(assessment.geo.is_none());
}

#[test]
fn country_codes_are_validated() {
    let err = config::load(ConfigSources {
        overrides: ConfigOverrides::new()
            .set("GEO_BLOCKED_COUNTRIES", "GB,Britain")
            .set("GEO_ALLOWED_COUNTRIES", "US"),
        ..ConfigSources::default()
    })
    .expect_err("invalid")
    .to_string();
    assert!(
        err.contains("SECURITY_GEO_BLOCKED_COUNTRIES=Britain"),
        "{err}"
    );
    assert!(err.contains("not both"), "{err}");
}

#[tokio::test]
async fn anonymisers_and_high_risk_countries_start_lower_and_recover_only_that_far() {
    let security = system(&[
        (
            "SECURITY_GEOIP_ANONYMOUS_IP_DATABASE_PATH",
            shared("GeoIP2-Anonymous-IP-Test.mmdb"),
        ),
        ("SECURITY_GEO_HIGH_RISK_COUNTRIES", "CN".to_string()),
    ])
    .expect("system");
    let assess = |ip: &str| security.threat_assessment(ip.parse().expect("ip"));
    // A Tor exit node (and VPN): the worst flag counts.
    let tor = assess("1.124.213.1");
    assert_eq!(tor.reputation_score, Some(30.0));
    let risk = tor.geo_risk.expect("risk shown");
    assert_eq!(risk.points, 20.0);
    assert_eq!(risk.reasons, ["tor_exit_node", "anonymous_vpn"]);
    assert_eq!(
        tor.geo.as_ref().map(|g| g["anonymity"].clone()),
        Some(serde_json::json!(["tor_exit_node", "anonymous_vpn"]))
    );
    // A hosting provider costs little; a high-risk country 10 points.
    assert_eq!(assess("6.1.0.2").reputation_score, Some(45.0));
    assert_eq!(assess("175.16.199.0").reputation_score, Some(40.0));
    // Ordinary addresses are neutral and show no risk.
    let milton = assess("216.160.83.56");
    assert_eq!(milton.reputation_score, Some(50.0));
    assert!(milton.geo_risk.is_none());
    // The same 20-point penalty leaves a Tor exit at 10: blocked, where a neutral address
    // would still be served.
    let (tor_ip, plain_ip) = (
        "1.124.213.1".parse().expect("ip"),
        "216.160.83.56".parse().expect("ip"),
    );
    let reputation = security.reputation().expect("ip management on");
    reputation.penalise(tor_ip, 20.0);
    reputation.penalise(plain_ip, 20.0);
    assert!(assess("1.124.213.1").blocked);
    assert!(!assess("216.160.83.56").blocked);
    // (Real time passes: a few thousandths of a point of recovery.)
    let score = assess("216.160.83.56").reputation_score.expect("score");
    assert!((score - 30.0).abs() < 0.1, "{score}");
}

#[test]
fn high_risk_countries_are_validated() {
    let err = config::load(ConfigSources {
        overrides: ConfigOverrides::new().set("SECURITY_GEO_HIGH_RISK_COUNTRIES", "XYZ"),
        ..ConfigSources::default()
    })
    .expect_err("invalid code");
    let text = err.to_string();
    assert!(
        text.contains("ip.geo_high_risk_countries") || text.contains("GEO_HIGH_RISK"),
        "{text}"
    );
    assert!(text.contains("XYZ"), "{text}");
}
