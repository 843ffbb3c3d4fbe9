//! Failover in its own test binary: the warning is counted from a process-wide log
//! subscriber, which must not hear other tests' instances.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use http::{Request, StatusCode};
use mcp_shield::ConfigOverrides;
use support::{app, status_of, system_on, RedisServer};
use tower::ServiceExt;

fn capacity(n: u64) -> ConfigOverrides {
    ConfigOverrides::new()
        .set("RATE_LIMIT_PER_IP_CAPACITY", n)
        .set("RATE_LIMIT_PER_IP_REFILL_RATE", 0.001)
}

/// Collects log lines in memory.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("logs")).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_redis_mid_traffic_fails_over_and_restarting_restores_sharing() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber)
        .expect("the only subscriber in this binary");

    let mut redis = RedisServer::start();
    let port = redis.port;
    let a = system_on(&redis, capacity(1_000)).await;
    let b = system_on(&redis, capacity(1_000)).await;
    let (app_a, app_b) = (app(&a), app(&b));
    for _ in 0..20 {
        assert_eq!(status_of(&app_a, "192.0.2.1").await, StatusCode::OK);
    }

    redis.stop();
    let started = Instant::now();
    for i in 0..200 {
        let app = if i % 2 == 0 { &app_a } else { &app_b };
        let status = status_of(app, "192.0.2.1").await;
        assert_eq!(status, StatusCode::OK, "request {i} while Redis is down");
    }
    // Two hundred requests with Redis dead: the breaker answers locally instead of waiting
    // on the dead server each time.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(a.degraded() && b.degraded());
    assert_eq!(
        a.status().await.components["rate_limiting"].backend,
        "degraded"
    );
    let ready = app_a
        .clone()
        .oneshot(Request::get("/ready").body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    assert_eq!(ready.status(), StatusCode::OK);
    let body = http_body_util::BodyExt::collect(ready.into_body())
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(&body[..], br#"{"status":"degraded"}"#);
    // One warning per instance; the second may trail (a breaker opened by a background
    // task's failure, on a loaded machine).
    let warnings = |text: &str| {
        text.matches("Redis connection failed, using local rate limiting")
            .count()
    };
    let waiting = Instant::now();
    while warnings(&logs.text()) < 2 && waiting.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let text = logs.text();
    assert_eq!(warnings(&text), 2, "one warning per instance: {text}");
    // Changes made while Redis is down are kept and written when it is back.
    a.blacklist("203.0.113.77", "while redis was down", None)
        .expect("add");

    let _redis = RedisServer::start_on(port);
    let started = Instant::now();
    while a.degraded() || b.degraded() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "did not reconnect"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        logs.text().contains("Redis connection restored"),
        "{}",
        logs.text()
    );
    // Sharing is back: the fresh Redis holds one bucket for both.
    let a2 = system_on(&_redis, capacity(4)).await;
    let b2 = system_on(&_redis, capacity(4)).await;
    let (app_a2, app_b2) = (app(&a2), app(&b2));
    let mut allowed = 0;
    for i in 0..10 {
        let app = if i % 2 == 0 { &app_a2 } else { &app_b2 };
        if status_of(app, "192.0.2.50").await == StatusCode::OK {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 4);
    // The change made during the outage reached the other instance.
    let started = Instant::now();
    while status_of(&app_b, "203.0.113.77").await != StatusCode::FORBIDDEN {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "outage change not replayed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
