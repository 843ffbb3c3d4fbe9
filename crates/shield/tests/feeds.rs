//! Threat feeds served over real HTTP by a local server: loaded at start, refreshed with a
//! conditional GET, a changed list applied, a failed refresh and a shrunken list both keeping
//! the last good list; file feeds; penalty-only feeds.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::routing::get;
use axum::Router;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use mcp_shield::config::{self, ConfigSources};
use mcp_shield::{ConfigOverrides, SecuritySystem};
use serde_json::Value;
use tower::ServiceExt;

#[derive(Default)]
struct Feed {
    text: String,
    version: u32,
    broken: bool,
    not_modified: u32,
}

async fn serve_feed(
    State(feed): State<Arc<Mutex<Feed>>>,
    headers: HeaderMap,
) -> axum::response::Response {
    let mut feed = feed.lock().expect("feed");
    if feed.broken {
        return (StatusCode::INTERNAL_SERVER_ERROR, "down").into_response();
    }
    let etag = format!("\"v{}\"", feed.version);
    if headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        feed.not_modified += 1;
        return (StatusCode::NOT_MODIFIED, "").into_response();
    }
    ([("etag", etag)], feed.text.clone()).into_response()
}

use axum::response::IntoResponse;

async fn feed_server(feed: Arc<Mutex<Feed>>) -> SocketAddr {
    let app = Router::new()
        .route("/drop.txt", get(serve_feed))
        .with_state(feed);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

async fn status_from(security: &SecuritySystem, ip: &str) -> (StatusCode, Value) {
    let app = Router::new()
        .fallback(|| async { "ok" })
        .layer(security.layer());
    let mut request = Request::get("/").body(Body::empty()).expect("request");
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::new(ip.parse().expect("ip"), 40000)));
    let response = app.oneshot(request).await.expect("infallible");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn numbered(n: u32) -> String {
    (0..n)
        .map(|i| format!("10.{}.{}.0/24\n", i / 256, i % 256))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feeds_over_http_refresh_conditionally_and_keep_the_last_good_list() {
    let feed = Arc::new(Mutex::new(Feed {
        text: format!("; Spamhaus DROP\n203.0.113.0/24 ; SBL123\n{}", numbered(99)),
        version: 1,
        ..Feed::default()
    }));
    let addr = feed_server(feed.clone()).await;
    let config = config::load(ConfigSources {
        overrides: ConfigOverrides::new()
            .set("ENABLE_IP_MANAGEMENT", true)
            .set("THREAT_FEEDS", format!("drop=http://{addr}/drop.txt"))
            .set("ADMIN_TOKEN", "feeds-test-token"),
        ..ConfigSources::default()
    })
    .expect("config");
    let security = SecuritySystem::start(config).await.expect("system");
    let (status, body) = status_from(&security, "203.0.113.9").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["detail"], "IP is listed by threat feed drop");
    assert_eq!(
        status_from(&security, "198.51.100.1").await.0,
        StatusCode::OK
    );
    assert_eq!(
        security
            .threat_assessment("203.0.113.9".parse().expect("ip"))
            .feeds,
        vec!["drop"]
    );

    // Unchanged: the refresh is a conditional GET answered 304.
    let before = feed.lock().expect("feed").not_modified;
    assert_eq!(security.refresh_feeds().await, 0);
    assert_eq!(feed.lock().expect("feed").not_modified, before + 1);

    // Changed: the new list applies.
    {
        let mut f = feed.lock().expect("feed");
        f.text = format!("198.51.100.0/24\n{}", numbered(99));
        f.version = 2;
    }
    assert_eq!(security.refresh_feeds().await, 0);
    assert_eq!(
        status_from(&security, "203.0.113.9").await.0,
        StatusCode::OK
    );
    assert_eq!(
        status_from(&security, "198.51.100.1").await.0,
        StatusCode::FORBIDDEN
    );

    // A failed refresh keeps the last good list.
    feed.lock().expect("feed").broken = true;
    assert_eq!(security.refresh_feeds().await, 1);
    assert_eq!(
        status_from(&security, "198.51.100.1").await.0,
        StatusCode::FORBIDDEN
    );
    let status = security.status().await;
    let feeds = &status.components["ip_management"].details["threat_feeds"];
    assert_eq!(feeds[0]["entries"], 100);
    assert!(feeds[0]["last_error"]
        .as_str()
        .expect("error")
        .contains("500"));

    // A list that shrinks by over 90 % at once is refused too.
    {
        let mut f = feed.lock().expect("feed");
        f.broken = false;
        f.text = "192.0.2.0/24\n".into();
        f.version = 3;
    }
    assert_eq!(security.refresh_feeds().await, 1);
    assert_eq!(
        status_from(&security, "198.51.100.1").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(status_from(&security, "192.0.2.1").await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_feeds_and_penalty_only_feeds() {
    let dir = std::env::temp_dir().join(format!("mcp-shield-feeds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let block = dir.join("firehol_level1.netset");
    std::fs::write(&block, "# FireHOL level 1\n192.0.2.0/24\n").expect("write");
    let tor = dir.join("tor.txt");
    std::fs::write(&tor, "198.51.100.7\n").expect("write");
    let config = config::load(ConfigSources {
        overrides: ConfigOverrides::new()
            .set("ENABLE_IP_MANAGEMENT", true)
            .set(
                "THREAT_FEEDS",
                format!("{},tor@penalty={}", block.display(), tor.display()),
            )
            .set("ADMIN_TOKEN", "feeds-test-token"),
        ..ConfigSources::default()
    })
    .expect("config");
    let security = SecuritySystem::start(config).await.expect("system");
    let (status, body) = status_from(&security, "192.0.2.5").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["detail"],
        "IP is listed by threat feed firehol_level1.netset"
    );
    // The penalty feed's address is served, with its reputation lowered once.
    assert_eq!(
        status_from(&security, "198.51.100.7").await.0,
        StatusCode::OK
    );
    assert_eq!(
        status_from(&security, "198.51.100.7").await.0,
        StatusCode::OK
    );
    let assessment = security.threat_assessment("198.51.100.7".parse().expect("ip"));
    // 50 less the feed's 30 points (plus whatever real time has recovered since).
    let score = assessment.reputation_score.expect("score");
    assert!((score - 20.0).abs() < 0.1, "{score}");
    assert_eq!(assessment.feeds, vec!["tor"]);
    std::fs::remove_dir_all(&dir).ok();
}
