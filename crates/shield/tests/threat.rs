//! Threat detection through the layer: attacks refused with 403 `threat_detected`, the policy
//! from a TOML file letting a database tool receive SQL, monitor mode, custom patterns (regex
//! from the file and Rust closures), a threat in the second element of a batch, and findings
//! below the block level lowering reputation.

use axum::body::{Body, Bytes};
use axum::routing::post;
use axum::Router;
use http::{Request, StatusCode};
use mcp_shield::config::{self, ConfigSources};
use mcp_shield::threat::{Severity, ThreatIndicator};
use mcp_shield::{ConfigOverrides, SecurityEvent, SecuritySystem};
use serde_json::{json, Value};

mod support;

const POLICY: &str = r#"
[threat_detection]
block_severity = "high"

[[threat_detection.allow]]
tool = "run_sql"
argument = "sql"
threats = ["sql_injection"]

[[threat_detection.allow]]
path = "/query"
parameter = "sql"
threats = ["sql_injection"]

[[threat_detection.patterns]]
name = "internal_codename"
pattern = "(?i)project[-_ ]nightingale"
severity = "high"
"#;

fn system_with(policy: &str, overrides: ConfigOverrides) -> SecuritySystem {
    // A file per system: tests run in parallel, and a policy file rewritten while another test
    // reads it would be read half-written.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "mcp-shield-threat-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("policy.toml");
    std::fs::write(&file, policy).expect("write policy");
    let config = config::load(ConfigSources {
        file: Some(file),
        overrides: overrides
            .set("ENABLE_THREAT_DETECTION", true)
            .set("ADMIN_TOKEN", "threat-test-token"),
        ..ConfigSources::default()
    })
    .expect("valid config");
    SecuritySystem::from_config(config).expect("system")
}

fn app(security: &SecuritySystem) -> Router {
    Router::new()
        .route("/mcp", post(|body: Bytes| async move { body }))
        .fallback(|| async { "upstream" })
        .layer(security.layer())
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    support::respond(app, "203.0.113.9", request).await
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri)
        .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64)")
        .body(Body::empty())
        .expect("request")
}

fn tool_call(tool: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
           "params": {"name": tool, "arguments": arguments}})
}

fn post_mcp(body: &Value) -> Request<Body> {
    Request::post("/mcp")
        .header("content-type", "application/json")
        .header("user-agent", "mcp-client/1.0")
        .body(Body::from(body.to_string()))
        .expect("request")
}

#[tokio::test]
async fn attacks_are_refused_with_the_threat_types() {
    let security = system_with(POLICY, ConfigOverrides::new());
    let app = app(&security);
    let (status, body) = send(&app, get("/search?q=%27%20OR%201%3D1--")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["type"], "threat_detected");
    assert_eq!(body["error"], "Request blocked by threat detection");
    assert_eq!(body["threats"], json!(["sql_injection"]));
    let (status, body) = send(
        &app,
        post_mcp(&tool_call(
            "search",
            json!({"query": "<svg/onload=alert(1)>", "path": "../../../etc/passwd"}),
        )),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let threats = body["threats"].as_array().expect("threats");
    assert!(threats.contains(&json!("xss_attack")), "{body}");
    assert!(threats.contains(&json!("path_traversal")), "{body}");
    // Ordinary traffic passes.
    let (status, _) = send(&app, get("/search?q=O%27Brien%27s%20best%20recipes")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = send(
        &app,
        post_mcp(&tool_call(
            "search",
            json!({"query": "select the best option from the list"}),
        )),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(security.statistics().threat_detected, 2);
    // By type on /metrics, every built-in type written (zeros too).
    let (_, metrics) =
        support::respond(&security.admin_router(), "127.0.0.1", get("/metrics")).await;
    let metrics = metrics.as_str().expect("the metrics text");
    for (threat, count) in [
        ("sql_injection", 1),
        ("xss_attack", 1),
        ("path_traversal", 1),
        ("ssrf", 0),
    ] {
        let line =
            format!("mcp_shield_threats_total{{type=\"{threat}\",action=\"blocked\"}} {count}\n");
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
}

#[tokio::test]
async fn the_policy_lets_a_database_tool_receive_sql_and_nothing_else_does() {
    let security = system_with(POLICY, ConfigOverrides::new());
    let app = app(&security);
    let sql = "SELECT name FROM users WHERE id = 1; DROP TABLE audit_log";
    let (status, _) = send(&app, post_mcp(&tool_call("run_sql", json!({"sql": sql})))).await;
    assert_eq!(status, StatusCode::OK, "run_sql may receive SQL");
    let (status, _) = send(&app, get("/query?sql=SELECT%201%3B%20DROP%20TABLE%20x")).await;
    assert_eq!(status, StatusCode::OK, "/query?sql= may receive SQL");
    // The same SQL in another argument, another tool, or another parameter is refused.
    let (status, _) = send(&app, post_mcp(&tool_call("run_sql", json!({"note": sql})))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = send(&app, post_mcp(&tool_call("search", json!({"sql": sql})))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = send(&app, get("/query?q=1%3B%20DROP%20TABLE%20x")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // And the database tool still gets every other check.
    let (status, body) = send(
        &app,
        post_mcp(&tool_call(
            "run_sql",
            json!({"sql": "<script>alert(1)</script>"}),
        )),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["threats"], json!(["xss_attack"]));
}

#[tokio::test]
async fn a_threat_in_the_second_element_of_a_batch_refuses_the_batch() {
    let security = system_with(POLICY, ConfigOverrides::new());
    let app = app(&security);
    let batch = json!([
        tool_call("search", json!({"query": "weather in Paris"})),
        tool_call(
            "search",
            json!({"query": "1 UNION SELECT password FROM users"})
        ),
    ]);
    let (status, body) = send(&app, post_mcp(&batch)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["threats"], json!(["sql_injection"]));
}

#[tokio::test]
async fn custom_patterns_from_the_file_and_from_code() {
    let security = system_with(POLICY, ConfigOverrides::new());
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
    let (status, body) = send(&app, get("/search?q=about%20Project%20Nightingale")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["threats"], json!(["internal_codename"]));
    let (status, body) = send(&app, get("/forbidden-word")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["threats"], json!(["custom_attack"]));
    let (status, _) = send(&app, get("/fine")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn findings_the_host_attached_count_like_the_detectors_own() {
    // What the Python package's custom patterns do: findings made before the layer, attached
    // to the request as an extension.
    let security = system_with(POLICY, ConfigOverrides::new());
    let app = app(&security);
    let with = |severity: &str| {
        let mut request = get("/fine");
        request
            .extensions_mut()
            .insert(mcp_shield::HostFindings(vec![mcp_shield::HostFinding {
                threat_type: "custom_attack".into(),
                severity: severity.into(),
                confidence: 0.9,
                location: "custom:custom_attack".into(),
                snippet: "Custom attack pattern detected".into(),
            }]));
        request
    };
    let (status, body) = send(&app, with("high")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["type"], "threat_detected");
    assert_eq!(body["threats"], json!(["custom_attack"]));
    // Below the blocking severity: served, as a low built-in finding would be.
    let (status, _) = send(&app, with("low")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn monitor_mode_logs_and_serves_and_reputation_still_falls() {
    let security = system_with(
        POLICY,
        ConfigOverrides::new()
            .set("SECURITY_THREAT_MODE", "monitor")
            .set("ENABLE_IP_MANAGEMENT", true),
    );
    let mut events = security.subscribe();
    let app = app(&security);
    let (status, _) = send(&app, get("/search?q=%27%20OR%201%3D1--")).await;
    assert_eq!(status, StatusCode::OK, "monitor mode serves");
    let mut seen = None;
    while let Ok(event) = events.try_recv() {
        if let SecurityEvent::ThreatObserved {
            would_block,
            indicators,
            ..
        } = &*event
        {
            seen = Some((*would_block, indicators[0].threat_type.to_string()));
        }
    }
    assert_eq!(seen, Some((true, "sql_injection".to_string())));
    let (_, metrics) =
        support::respond(&security.admin_router(), "127.0.0.1", get("/metrics")).await;
    let metrics = metrics.as_str().expect("the metrics text");
    for line in [
        "mcp_shield_threats_total{type=\"sql_injection\",action=\"observed\"} 1\n",
        "mcp_shield_threats_total{type=\"sql_injection\",action=\"blocked\"} 0\n",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    let score = security
        .threat_assessment("203.0.113.9".parse().expect("ip"))
        .reputation_score
        .expect("score");
    assert!(
        score <= 40.5,
        "a high finding not refused costs 10 points: {score}"
    );
}

#[tokio::test]
async fn findings_below_the_block_level_are_events_that_cost_reputation() {
    let security = system_with(
        POLICY,
        ConfigOverrides::new().set("ENABLE_IP_MANAGEMENT", true),
    );
    let app = app(&security);
    // One `../` is ordinary in a relative link: served, and no cost at all.
    let ip = "203.0.113.9".parse().expect("ip");
    let (status, _) = send(&app, get("/docs?page=..%2FREADME.md")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(security.threat_assessment(ip).reputation_score, Some(50.0));
    // Two levels up is a medium finding: served, remembered, one point.
    let (status, _) = send(&app, get("/docs?page=..%2F..%2Fguide.md")).await;
    assert_eq!(status, StatusCode::OK);
    let assessment = security.threat_assessment(ip);
    let score = assessment.reputation_score.expect("score");
    assert!(score < 50.0 && score > 48.5, "{score}");
    assert_eq!(assessment.recent_threats[0].kind, "threat_observed");
}

#[test]
fn a_bad_policy_names_the_rule_and_the_value() {
    let dir = std::env::temp_dir().join(format!("mcp-shield-bad-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("policy.toml");
    std::fs::write(
        &file,
        "[[threat_detection.allow]]\ntool = \"run_sql\"\nthreats = [\"sqli\"]\n\n[[threat_detection.patterns]]\nname = \"x\"\npattern = \"(unclosed\"\n",
    )
    .expect("write");
    let err = config::load(ConfigSources {
        file: Some(file),
        ..ConfigSources::default()
    })
    .expect_err("invalid policy");
    let text = err.to_string();
    assert!(
        text.contains("threat_detection.allow[0]") && text.contains("sqli"),
        "{text}"
    );
    assert!(
        text.contains("threat_detection.patterns[0]") && text.contains("(unclosed"),
        "{text}"
    );
    let err = config::load(ConfigSources {
        overrides: ConfigOverrides::new().set("SECURITY_THREAT_BLOCK_SEVERITY", "severe"),
        ..ConfigSources::default()
    })
    .expect_err("bad severity");
    assert!(err.to_string().contains("severe"), "{err}");
}

#[tokio::test]
async fn large_bodies_are_inspected_whole_off_the_worker_threads() {
    let security = system_with(POLICY, ConfigOverrides::new());
    let app = app(&security);
    let filler = "The quick brown fox jumps over the lazy dog. ".repeat(5000);
    let benign = tool_call("search", json!({"notes": filler, "query": "weather"}));
    assert!(benign.to_string().len() > 200_000);
    let (status, _) = send(&app, post_mcp(&benign)).await;
    assert_eq!(status, StatusCode::OK);
    let attack = tool_call(
        "search",
        json!({"notes": filler, "deep": {"list": ["x", "'; DROP TABLE users--"]}}),
    );
    let (status, body) = send(&app, post_mcp(&attack)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["threats"], json!(["sql_injection"]));
}

#[tokio::test]
async fn envelope_fields_pass_but_polluting_keys_do_not() {
    let security = system_with(POLICY, ConfigOverrides::new());
    let app = app(&security);
    let (status, _) = send(
        &app,
        post_mcp(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let polluting = tool_call("configure", json!({"__proto__": {"isAdmin": true}}));
    let (status, body) = send(&app, post_mcp(&polluting)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["threats"], json!(["code_injection"]));
    let method = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call' OR 1=1--"});
    let (status, _) = send(&app, post_mcp(&method)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "an odd method is inspected");
}

/// Issue 22: after 30 SQL injection attempts, the address's assessment says which threat, in
/// which field, tool and argument, when, and how fast it is sending; the refusal event and the
/// log line carry the same.
#[tokio::test]
async fn the_threat_assessment_names_the_threats_fields_tools_and_rate() {
    let security = system_with(
        POLICY,
        ConfigOverrides::new().set("ENABLE_IP_MANAGEMENT", true),
    );
    let mut events = security.subscribe();
    let app = app(&security);
    for n in 0..30 {
        let call = tool_call(
            "search_documents",
            json!({"query": format!("x' UNION SELECT password FROM users WHERE id={n} --"), "limit": 5}),
        );
        let (status, body) = send(&app, post_mcp(&call)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        // The client is told the threat's name (in the JSON-RPC error), not where it was found;
        // after a few, reputation blacklists the address.
        let text = body.to_string();
        assert!(
            text.contains("sql_injection") || text.contains("ip_blocked"),
            "{text}"
        );
        assert!(
            !text.contains("arguments.query") && !text.contains("findings"),
            "{text}"
        );
    }
    let assessment = security.threat_assessment("203.0.113.9".parse().expect("ip"));
    // Newest first: the blacklisted address's retries, counted in one entry, then the
    // injections that got it there.
    assert_eq!(assessment.recent_threats[0].kind, "ip_blocked");
    assert_eq!(assessment.recent_threats[0].detail, "IP is blacklisted");
    assert!(assessment.recent_threats[0].count > 1);
    let latest = assessment
        .recent_threats
        .iter()
        .find(|i| i.kind == "threat_detected")
        .expect("a threat refusal among the recent ones");
    assert_eq!(latest.action, "blocked");
    assert_eq!(latest.path, "/mcp");
    let finding = &latest.threats[0];
    assert_eq!(finding.threat, "sql_injection");
    assert_eq!(finding.field, "json:params.arguments.query");
    assert_eq!(finding.tool.as_deref(), Some("search_documents"));
    assert_eq!(finding.argument.as_deref(), Some("query"));
    assert!(
        finding.evidence.contains("UNION SELECT"),
        "{}",
        finding.evidence
    );
    let rate = assessment.request_rate.expect("a request rate");
    assert!(rate.per_minute >= 1.0, "{rate:?}");
    let as_json = serde_json::to_value(&assessment).expect("serializes");
    let listed = as_json["recent_threats"].as_array().expect("a list");
    assert!(
        listed
            .iter()
            .any(|i| i["threats"][0]["type"] == "sql_injection"
                && i["threats"][0]["argument"] == "query"),
        "{as_json}"
    );
    // The event the bus carried names the same.
    let mut carried = None;
    while let Ok(event) = events.try_recv() {
        if let SecurityEvent::Blocked {
            reason: mcp_shield::BlockReason::Threat { findings, .. },
            ..
        } = &*event
        {
            carried = findings.first().cloned();
        }
    }
    assert_eq!(carried.as_ref(), Some(finding));
}
