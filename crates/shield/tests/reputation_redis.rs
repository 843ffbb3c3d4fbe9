//! Reputation kept in a real `redis-server`: the Lua script applies the same rules as the
//! local table, two instances share one score and block an address once, and a new instance
//! (a restart) sees the score.

mod support;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use mcp_shield::ip::reputation::Reputation;
use mcp_shield::ip::shared_reputation::SharedReputation;
use mcp_shield::ip::{IpLists, ListKind};
use mcp_shield::state::redis::RedisState;
use mcp_shield::{ConfigOverrides, ManualClock};
use support::{app, status_of, system_on, RedisServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_applies_the_same_rules_as_the_local_table() {
    let server = RedisServer::start();
    let clock = ManualClock::starting_at(1_800_000_000_000);
    let local_lists = Arc::new(IpLists::new(1000, clock.clone()));
    let local = Reputation::new(10, 600, 10_000, local_lists.clone(), clock.clone());
    let shared_lists = Arc::new(IpLists::new(1000, clock.clone()));
    let via_redis = Reputation::new(10, 600, 10_000, shared_lists.clone(), clock.clone());
    let redis = RedisState::new(
        mcp_shield::state::redis::RedisTarget::Server(&server.url()),
        "mirror:",
        Duration::from_millis(1000),
        (7, 11),
    )
    .expect("state");
    assert!(redis.connect().await, "redis is up");
    let shared = SharedReputation::start(redis, &via_redis, 86_400_000, clock.clone());
    let ip: IpAddr = "203.0.113.9".parse().expect("ip");

    enum Step {
        Wait(u64),
        Penalty(f64),
        Feed(f64),
    }
    use Step::*;
    let steps = [
        Penalty(15.0),
        Wait(300),     // recovers 5 points
        Penalty(25.0), // 15
        Feed(10.0),    // 5: blocked for 600 s
        Penalty(5.0),  // ignored while blocked
        Wait(600),     // probation at 30
        Penalty(25.0), // 5: blocked again, for 1200 s
        Wait(1200),
        Feed(10.0), // a feed counts once
        Penalty(2.0),
        Wait(3600), // back to neutral, not past it
        Penalty(1.5),
    ];
    for (n, step) in steps.iter().enumerate() {
        match step {
            Wait(seconds) => clock.advance(Duration::from_secs(*seconds)),
            Penalty(points) => {
                local.penalise(ip, *points);
                via_redis.penalise(ip, *points);
            }
            Feed(points) => {
                local.penalise_once_for_feeds(ip, *points);
                via_redis.penalise_once_for_feeds(ip, *points);
            }
        }
        assert!(shared.settled(Duration::from_secs(5)).await, "step {n}");
        let expected = local.score(ip);
        assert!(
            (via_redis.score(ip) - expected).abs() < 1e-6,
            "step {n}: redis {} local {expected}",
            via_redis.score(ip)
        );
        let fetched = shared
            .fetch(ip, via_redis.ceiling(ip))
            .await
            .expect("redis answers")
            .expect("a record");
        assert!((fetched.score - expected).abs() < 1e-6, "step {n}");
        assert_eq!(fetched.blocks, local.blocks(ip), "step {n}");
        assert_eq!(
            shared_lists
                .lookup(ListKind::Blacklist, ip)
                .map(|m| m.entry.expires_at_ms),
            local_lists
                .lookup(ListKind::Blacklist, ip)
                .map(|m| m.entry.expires_at_ms),
            "step {n}: the same block"
        );
    }
    assert_eq!(local.blocks(ip), 2);
    assert_eq!(local.score(ip), 48.5);
    // Reading a record Redis does not have creates none.
    let stranger: IpAddr = "198.51.100.77".parse().expect("ip");
    assert_eq!(shared.fetch(stranger, 50.0).await.expect("answers"), None);
    let keys = server.cli(&["--scan", "--pattern", "mirror:rep:*"]);
    assert_eq!(keys.lines().count(), 1, "{keys}");
    assert!(
        !keys.contains("203.0.113"),
        "no raw address in Redis: {keys}"
    );
    let ttl: i64 = server
        .cli(&["PTTL", keys.trim()])
        .trim()
        .parse()
        .expect("ttl");
    assert!(
        ttl > 0 && ttl <= 86_400_000,
        "expires after retention: {ttl}"
    );
}

fn reputation_on() -> ConfigOverrides {
    ConfigOverrides::new()
        .set("ENABLE_IP_MANAGEMENT", true)
        .set("RATE_LIMIT_PER_IP_CAPACITY", 1)
        .set("RATE_LIMIT_PER_IP_REFILL_RATE", 0.001)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_score_block_once_and_a_restart_sees_it() {
    let redis = RedisServer::start();
    let a = system_on(&redis, reputation_on()).await;
    let b = system_on(&redis, reputation_on()).await;
    let (app_a, app_b) = (app(&a), app(&b));
    let ip = "192.0.2.44";
    assert_eq!(status_of(&app_a, ip).await, StatusCode::OK);
    // Ten refusals on each instance, 2 points each: together they reach the threshold 10;
    // neither instance alone would (30 points left).
    for _ in 0..10 {
        assert_eq!(status_of(&app_a, ip).await, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(status_of(&app_b, ip).await, StatusCode::TOO_MANY_REQUESTS);
    }
    assert!(a.reputation_settled(Duration::from_secs(5)).await);
    assert!(b.reputation_settled(Duration::from_secs(5)).await);
    // The block reaches both instances (through the shared blacklist).
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let (sa, sb) = (status_of(&app_a, ip).await, status_of(&app_b, ip).await);
        if sa == StatusCode::FORBIDDEN && sb == StatusCode::FORBIDDEN {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "both instances refuse the address ({sa}, {sb})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let keys = redis.cli(&["--scan", "--pattern", "mcp-shield:rep:*"]);
    let key = keys.trim();
    assert_eq!(keys.lines().count(), 1, "{keys}");
    assert_eq!(redis.cli(&["HGET", key, "b"]).trim(), "1", "blocked once");
    let score: f64 = redis
        .cli(&["HGET", key, "s"])
        .trim()
        .parse()
        .expect("score");
    // At the threshold, or one refusal past it (time passes, and recovery with it: 20
    // refusals may leave 10.0001, so the poll's first refusal is the one that blocks).
    assert!(score <= 10.0 && score > 7.9, "{score}");

    // A new instance (as after a restart) knows nothing locally, yet its assessment shows
    // the shared score and the block.
    drop((app_a, app_b, a, b));
    let c = system_on(&redis, reputation_on()).await;
    let ip: IpAddr = ip.parse().expect("ip");
    assert_eq!(c.threat_assessment(ip).reputation_score, Some(50.0));
    let assessment = c.threat_assessment_shared(ip).await;
    let shown = assessment.reputation_score.expect("a score");
    assert!((shown - score).abs() < 0.1, "{shown} vs {score}");
    assert_eq!(assessment.threat_level, "critical");
    assert!(assessment.blocked);
}
