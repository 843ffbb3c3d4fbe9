//! Shared state in a real `redis-server` that each test starts on its own port: buckets shared
//! exactly between two systems, list changes propagated, failover to local state when Redis
//! dies, and sharing restored when it comes back.

mod support;

use std::time::{Duration, Instant};

use http::StatusCode;
use mcp_shield::config::{self, ConfigSources};
use mcp_shield::{ConfigOverrides, SecuritySystem};
use support::{app, status_of, system_on, RedisServer};

fn per_ip(capacity: u64) -> ConfigOverrides {
    ConfigOverrides::new()
        .set("RATE_LIMIT_PER_IP_CAPACITY", capacity)
        .set("RATE_LIMIT_PER_IP_REFILL_RATE", 0.001)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_systems_share_one_bucket_exactly() {
    let redis = RedisServer::start();
    let a = system_on(&redis, per_ip(10)).await;
    let b = system_on(&redis, per_ip(10)).await;
    assert!(!a.degraded() && !b.degraded());
    let (app_a, app_b) = (app(&a), app(&b));
    let mut allowed = 0;
    for i in 0..30 {
        let app = if i % 2 == 0 { &app_a } else { &app_b };
        match status_of(app, "192.0.2.7").await {
            StatusCode::OK => allowed += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(allowed, 10, "ten tokens across both instances");
    assert_eq!(
        status_of(&app_b, "192.0.2.8").await,
        StatusCode::OK,
        "another address"
    );
    let status = a.status().await;
    assert_eq!(status.components["rate_limiting"].backend, "redis");

    // Keys carry the prefix, never a raw address, and expire when idle.
    let keys = redis.cli(&["--scan", "--pattern", "mcp-shield:rl:*"]);
    assert!(keys.lines().count() >= 3, "{keys}");
    assert!(!keys.contains("192.0.2"), "{keys}");
    let ip_key = keys
        .lines()
        .find(|k| k.contains(":i"))
        .expect("a per-IP key");
    let ttl: i64 = redis.cli(&["PTTL", ip_key]).trim().parse().expect("ttl");
    assert!(ttl > 0, "per-IP key has an expiry ({ttl})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_on_one_instance_is_enforced_on_the_other_within_100ms() {
    let redis = RedisServer::start();
    let a = system_on(&redis, ConfigOverrides::new()).await;
    let b = system_on(&redis, ConfigOverrides::new()).await;
    let app_b = app(&b);
    assert_eq!(status_of(&app_b, "198.51.100.9").await, StatusCode::OK);
    // The 100 ms are between running instances: both have subscribed to the change channel
    // (in the background, after start) before the clock starts.
    let subscribed = Instant::now();
    loop {
        let channels = redis.cli(&["PUBSUB", "CHANNELS", "*events"]);
        let channel = channels.lines().next().unwrap_or("").trim().to_string();
        let subscribers = if channel.is_empty() {
            0
        } else {
            redis
                .cli(&["PUBSUB", "NUMSUB", &channel])
                .lines()
                .nth(1)
                .and_then(|n| n.trim().parse::<u32>().ok())
                .unwrap_or(0)
        };
        if subscribers >= 2 {
            break;
        }
        assert!(
            subscribed.elapsed() < Duration::from_secs(10),
            "instances not subscribed: {channels:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    a.blacklist("198.51.100.0/24", "seen on instance a", None)
        .expect("add");
    while status_of(&app_b, "198.51.100.9").await != StatusCode::FORBIDDEN {
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "not propagated within 100 ms"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let entry = b
        .ip_lists()
        .lookup(
            mcp_shield::ip::ListKind::Blacklist,
            "198.51.100.9".parse().expect("ip"),
        )
        .expect("entry on b");
    assert_eq!(entry.entry.reason, "seen on instance a");

    // Whitelisting and removal propagate the same way.
    let started = Instant::now();
    a.whitelist("198.51.100.9", "trusted", None).expect("add");
    while status_of(&app_b, "198.51.100.9").await != StatusCode::OK {
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "whitelist not propagated"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }

    // A third instance starting later loads the lists from Redis.
    let c = system_on(&redis, ConfigOverrides::new()).await;
    assert_eq!(
        status_of(&app(&c), "198.51.100.10").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(status_of(&app(&c), "198.51.100.9").await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_redis_at_start_still_serves() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let config = config::load(ConfigSources {
        overrides: per_ip(2)
            .set("REDIS_URL", format!("redis://127.0.0.1:{port}/0"))
            .set("IP_HASH_KEY", "k")
            .set("ENABLE_RATE_LIMITING", true),
        ..ConfigSources::default()
    })
    .expect("config");
    let a = SecuritySystem::start(config)
        .await
        .expect("starts without Redis");
    assert!(a.degraded());
    let app = app(&a);
    assert_eq!(status_of(&app, "192.0.2.1").await, StatusCode::OK);
    assert_eq!(status_of(&app, "192.0.2.1").await, StatusCode::OK);
    assert_eq!(
        status_of(&app, "192.0.2.1").await,
        StatusCode::TOO_MANY_REQUESTS,
        "local limits apply"
    );
}

#[test]
fn cluster_and_sentinel_urls_are_refused_and_a_hash_key_is_required() {
    let load = |url: &str, key: &str| {
        config::load(ConfigSources {
            overrides: ConfigOverrides::new()
                .set("REDIS_URL", url)
                .set("IP_HASH_KEY", key),
            ..ConfigSources::default()
        })
    };
    for url in [
        "redis+sentinel://127.0.0.1:26379/mymaster",
        "redis://10.0.0.1:6379,10.0.0.2:6379",
        "memcached://127.0.0.1",
    ] {
        let err = load(url, "k").expect_err(url).to_string();
        assert!(
            err.contains("REDIS_URL") && err.contains("not supported")
                || err.contains("one Redis server"),
            "{err}"
        );
    }
    let err = load("redis://127.0.0.1:6379/0", "")
        .expect_err("no key")
        .to_string();
    assert!(err.contains("SECURITY_IP_HASH_KEY"), "{err}");
    assert!(load("rediss://user:pw@cache.example:6380/2", "k").is_ok());
}

/// On a thread with its own single-threaded runtime (the gateway's serving threads), calls on
/// a request's path move to a connection of that thread once it is open: the shared one
/// first, then the thread's own, kept from call to call.
#[test]
fn a_single_threaded_runtime_gets_its_own_connection_for_requests() {
    use mcp_shield::state::redis::{Connection, RedisState, RedisTarget};
    let redis = RedisServer::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let state = RedisState::new(
            RedisTarget::Server(&redis.url()),
            "t:",
            Duration::from_millis(500),
            (1, 2),
        )
        .expect("state");
        assert!(state.connect().await);
        let client_id = |mut connection: Connection| async move {
            redis::cmd("CLIENT")
                .arg("ID")
                .query_async::<i64>(&mut connection)
                .await
                .expect("CLIENT ID")
        };
        let shared = client_id(state.connection().expect("shared")).await;
        assert_eq!(
            client_id(state.request_connection().expect("first")).await,
            shared,
            "the shared connection until the thread's own is open"
        );
        let started = Instant::now();
        let own = loop {
            let id = client_id(state.request_connection().expect("later")).await;
            if id != shared {
                break id;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "no own connection"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        for _ in 0..3 {
            assert_eq!(
                client_id(state.request_connection().expect("kept")).await,
                own
            );
        }
    });
}
