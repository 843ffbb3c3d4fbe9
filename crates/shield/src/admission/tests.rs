//! The admission controller on a hand-moved clock and tokio's paused timer.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::AtomicUsize;

use super::*;
use crate::clock::ManualClock;

const START_MS: u64 = 1_800_000_000_000;

#[derive(Default)]
struct FakeHistory {
    standings: HashMap<IpAddr, Standing>,
    reputations: HashMap<IpAddr, f64>,
    emergency_since_ms: Option<u64>,
    asked: AtomicUsize,
}

impl ClientHistory for FakeHistory {
    fn standing(&self, ip: IpAddr) -> Option<Standing> {
        self.asked.fetch_add(1, Ordering::Relaxed);
        self.standings.get(&ip).copied()
    }
    fn reputation(&self, ip: IpAddr) -> Option<f64> {
        self.reputations.get(&ip).copied()
    }
    fn emergency_since_ms(&self) -> Option<u64> {
        self.emergency_since_ms
    }
}

fn ip(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, n))
}

const OLD: u8 = 1; // seen long before
const NEW: u8 = 2; // first seen during the overload
const BAD: u8 = 3; // blocked before
const LISTED: u8 = 4; // whitelisted
const MIDDLING: u8 = 5; // seen before, reputation lowered
const OLD2: u8 = 6;

fn history(emergency: bool) -> Arc<FakeHistory> {
    let mut h = FakeHistory::default();
    let old = Standing {
        first_seen_ms: START_MS - 60_000,
        bad_record: false,
    };
    h.standings.insert(ip(OLD), old);
    h.standings.insert(ip(OLD2), old);
    h.standings.insert(ip(MIDDLING), old);
    h.standings.insert(
        ip(NEW),
        Standing {
            first_seen_ms: START_MS + 1,
            bad_record: false,
        },
    );
    h.standings.insert(
        ip(BAD),
        Standing {
            first_seen_ms: START_MS - 60_000,
            bad_record: true,
        },
    );
    h.reputations.insert(ip(MIDDLING), 35.0);
    h.emergency_since_ms = emergency.then_some(START_MS - 1_000);
    Arc::new(h)
}

fn applicant(n: u8) -> Applicant<'static> {
    Applicant {
        ip: ip(n),
        user: None,
        tool: None,
        whitelisted: n == LISTED,
    }
}

fn admission(
    limit: u32,
    queue: usize,
    history: Arc<FakeHistory>,
) -> (Arc<UpstreamAdmission>, Arc<ManualClock>) {
    let clock = ManualClock::starting_at(START_MS);
    let settings = AdmissionSettings {
        limit: LimitSettings {
            fixed: Some(limit),
            ..LimitSettings::default()
        },
        queue_length: queue,
        queue_wait: Duration::from_millis(500),
        max_known_users: 1024,
    };
    (
        UpstreamAdmission::new(settings, Some(history), clock.clone()),
        clock,
    )
}

#[test]
fn classes_follow_the_written_rule() {
    let h = history(false);
    let since = START_MS;
    let evidence = |n: u8| Evidence {
        whitelisted: n == LISTED,
        standing: h.standings.get(&ip(n)).copied(),
        reputation: h.reputations.get(&ip(n)).copied(),
        user_first_seen_ms: None,
        expensive_tool: false,
    };
    assert_eq!(classify(&evidence(LISTED), since), Class::Trusted);
    assert_eq!(classify(&evidence(OLD), since), Class::Known);
    assert_eq!(classify(&evidence(MIDDLING), since), Class::Unknown);
    assert_eq!(classify(&evidence(NEW), since), Class::Suspect);
    assert_eq!(classify(&evidence(BAD), since), Class::Suspect);
    // No record at all: unknown, not suspect.
    assert_eq!(classify(&evidence(99), since), Class::Unknown);
    // A new address whose authenticated user has a history is known.
    let mut user = evidence(NEW);
    user.user_first_seen_ms = Some(START_MS - 3_600_000);
    assert_eq!(classify(&user, since), Class::Known);
    // A user invented during the overload is not.
    user.user_first_seen_ms = Some(START_MS + 5);
    assert_eq!(classify(&user, since), Class::Suspect);
    // Expensive tools move one class down.
    let mut costly = evidence(OLD);
    costly.expensive_tool = true;
    assert_eq!(classify(&costly, since), Class::Unknown);
    let mut low = evidence(OLD);
    low.reputation = Some(10.0);
    assert_eq!(classify(&low, since), Class::Suspect);
}

#[tokio::test(start_paused = true)]
async fn calm_requests_take_a_place_without_being_classed() {
    let h = history(false);
    let (adm, _) = admission(4, 8, h.clone());
    let mut permits = Vec::new();
    for n in [OLD, NEW, BAD, LISTED] {
        permits.push(adm.acquire(applicant(n)).await.expect("room"));
    }
    assert_eq!(adm.in_flight(), 4);
    assert_eq!(h.asked.load(Ordering::Relaxed), 0);
    drop(permits);
    assert_eq!(adm.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_freed_place_goes_to_the_best_placed_waiter() {
    let (adm, _) = admission(1, 16, history(false));
    let first = adm.acquire(applicant(OLD2)).await.expect("room");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // They arrive worst first.
    for n in [NEW, MIDDLING, OLD, LISTED] {
        let adm = adm.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let permit = adm.acquire(applicant(n)).await;
            let _ = tx.send((n, permit.is_ok()));
            // Hold the place a moment, then give it back.
            tokio::time::sleep(Duration::from_millis(10)).await;
            drop(permit);
        });
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(adm.queued(), 4);
    drop(first);
    let mut order = Vec::new();
    for _ in 0..4 {
        order.push(rx.recv().await.expect("answer"));
    }
    assert_eq!(
        order,
        [(LISTED, true), (OLD, true), (MIDDLING, true), (NEW, true)]
    );
    let view = adm.view();
    assert_eq!(view.queued_total, 4);
    assert!(view.overloaded_since_ms.is_some());
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_refuses_suspects_and_known_clients_push_them_out() {
    let (adm, _) = admission(1, 2, history(false));
    let _held = adm.acquire(applicant(OLD2)).await.expect("room");
    let waiting: Vec<_> = (0..2)
        .map(|_| {
            let adm = adm.clone();
            tokio::spawn(async move { adm.acquire(applicant(NEW)).await.map(|_| ()) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(adm.queued(), 2);
    // A third suspect finds no room, decided at once.
    let refused = adm.acquire(applicant(NEW)).await.expect_err("full");
    assert_eq!((refused.class, refused.why), (Class::Suspect, "queue_full"));
    assert_eq!(
        refused.reason().status(),
        http::StatusCode::SERVICE_UNAVAILABLE
    );
    // A known client pushes the newest suspect out.
    let known = {
        let adm = adm.clone();
        tokio::spawn(async move { adm.acquire(applicant(OLD)).await.map(|_| ()) })
    };
    tokio::time::sleep(Duration::from_millis(1)).await;
    let mut outcomes = Vec::new();
    for w in waiting {
        outcomes.push(w.await.expect("task"));
    }
    // One suspect was pushed out; the other timed out behind the held place.
    let whys: Vec<&str> = outcomes
        .iter()
        .map(|o| o.as_ref().expect_err("refused").why)
        .collect();
    assert!(whys.contains(&"pushed_out"), "{whys:?}");
    assert!(whys.contains(&"queue_timeout"), "{whys:?}");
    let known = known.await.expect("task").expect_err("timed out too");
    assert_eq!(known.class, Class::Known);
    let view = adm.view();
    assert_eq!(view.shed_total["suspect"], 3);
    assert_eq!(view.shed_total["known"], 1);
    assert!(view.shedding);
    assert_eq!(view.queued, 0);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_that_leaves_gives_its_turn_away() {
    let (adm, _) = admission(1, 4, history(false));
    let held = adm.acquire(applicant(OLD2)).await.expect("room");
    let leaving = {
        let adm = adm.clone();
        tokio::spawn(async move { adm.acquire(applicant(OLD)).await.map(|_| ()) })
    };
    let staying = {
        let adm = adm.clone();
        tokio::spawn(async move {
            let p = adm.acquire(applicant(NEW)).await;
            p.map(|_| ())
        })
    };
    tokio::time::sleep(Duration::from_millis(1)).await;
    leaving.abort();
    tokio::time::sleep(Duration::from_millis(1)).await;
    drop(held);
    assert_eq!(staying.await.expect("task"), Ok(()));
    assert_eq!(adm.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn emergency_keeps_half_the_places_from_suspects() {
    let (adm, _) = admission(4, 16, history(true));
    let a = adm.acquire(applicant(NEW)).await.expect("first suspect");
    let b = adm.acquire(applicant(BAD)).await.expect("second suspect");
    let refused = adm.acquire(applicant(NEW)).await.expect_err("reserve");
    assert_eq!(refused.why, "emergency_reserve");
    // The other half is for clients with a history.
    let c = adm.acquire(applicant(OLD)).await.expect("known");
    let d = adm.acquire(applicant(OLD2)).await.expect("known");
    assert_eq!(adm.in_flight(), 4);
    // A suspect never waits in an emergency, even with room in the queue.
    drop(a);
    let e = adm.acquire(applicant(NEW)).await.expect("a place freed");
    drop((b, c, d, e));
    assert_eq!(adm.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn shedding_stops_once_quiet() {
    let (adm, clock) = admission(1, 0, history(false));
    let held = adm.acquire(applicant(OLD)).await.expect("room");
    for _ in 0..10 {
        adm.acquire(applicant(NEW)).await.expect_err("no queue");
    }
    assert!(adm.view().shedding);
    drop(held);
    clock.advance(Duration::from_secs(6));
    adm.tick();
    assert!(!adm.view().shedding);
    clock.advance(Duration::from_secs(6));
    adm.tick();
    assert_eq!(adm.view().overloaded_since_ms, None);
}

#[tokio::test(start_paused = true)]
async fn the_limit_is_learned_from_answers() {
    let clock = ManualClock::starting_at(START_MS);
    let adm = UpstreamAdmission::new(
        AdmissionSettings {
            limit: LimitSettings {
                initial: 8,
                min: 2,
                ..LimitSettings::default()
            },
            ..AdmissionSettings::default()
        },
        Some(history(false)),
        clock.clone(),
    );
    // Calm: one at a time, 10 ms each: the baseline.
    for _ in 0..20 {
        let mut p = adm.acquire(applicant(OLD)).await.expect("room");
        clock.advance(Duration::from_millis(10));
        p.answered();
    }
    assert_eq!(adm.limit(), 8);
    assert!(adm
        .view()
        .baseline_latency_ms
        .is_some_and(|b| (b - 10.0).abs() < 0.5));
    // Saturated: requests that start with at most two in flight still take 10 ms, the rest
    // queue inside the upstream and take 50 ms. The limit comes down towards two.
    for _ in 0..60 {
        let mut permits = Vec::new();
        while let Some(n) = adm.try_take() {
            permits.push(adm.permit(None, n, None));
        }
        clock.advance(Duration::from_millis(10));
        for p in permits.iter_mut().take(2) {
            p.answered();
        }
        clock.advance(Duration::from_millis(40));
        for p in &mut permits {
            p.answered();
        }
        drop(permits);
        clock.advance(Duration::from_millis(60));
    }
    assert!(adm.limit() <= 4, "{:?}", adm.view());
    assert!(adm
        .view()
        .baseline_latency_ms
        .is_some_and(|b| (b - 10.0).abs() < 0.5));
}
