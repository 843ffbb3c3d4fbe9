//! Behavioural analysis: the seeded simulator's figures, the saved model, and the table under
//! concurrent use.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use mcp_shield::behaviour::simulate::{run, ClientKind, SimulationConfig};
use mcp_shield::behaviour::{
    BehaviourAnalysis, BehaviourSettings, ClientKey, ClientTable, MethodClass, Observation,
    MODEL_FILE,
};
use mcp_shield::clock::{Clock, ManualClock};
use mcp_shield::events::EventBus;

#[test]
fn the_simulator_separates_attackers_and_flags_no_health_checker_or_batch_job() {
    for seed in [7, 1, 2] {
        let config = SimulationConfig {
            seed,
            ..SimulationConfig::default()
        };
        let report = run(&config);
        let auc = report.auc();
        assert!(
            auc >= 0.95,
            "seed {seed}: AUC {auc}\n{}",
            report.markdown(&config)
        );
        for (kind, _, flagged, _) in report.by_kind() {
            if matches!(kind, ClientKind::HealthChecker | ClientKind::BatchJob) {
                assert_eq!(
                    flagged,
                    0,
                    "seed {seed}: {kind:?}\n{}",
                    report.markdown(&config)
                );
            }
        }
        // Most attackers are over the threshold and few benign clients are.
        assert!(report.recall() >= 0.4, "{}", report.markdown(&config));
        assert!(report.precision() >= 0.8, "{}", report.markdown(&config));
    }
    // Same seed, same figures.
    let a = run(&SimulationConfig::default());
    let b = run(&SimulationConfig::default());
    assert_eq!(a.auc(), b.auc());
    assert_eq!(a.confusion(), b.confusion());
}

/// A plain request at `at_ms`.
fn plain(at_ms: u64) -> Observation<'static> {
    Observation {
        at_ms,
        path: "/",
        method: MethodClass::Http,
        tool: None,
        status: 200,
        body_bytes: 0,
        user_agent: 0,
        threats: 0,
    }
}

fn ip(n: u32) -> ClientKey {
    ClientKey::Ip(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n)))
}

fn feed(analysis: &BehaviourAnalysis, clock: &ManualClock) {
    for round in 0..10u64 {
        for client in 0..30u32 {
            analysis.table().observe(
                ip(client),
                &Observation {
                    at_ms: clock.unix_ms() + round * 1000 + u64::from(client),
                    path: "/mcp",
                    method: MethodClass::ToolsCall,
                    tool: Some(if client % 2 == 0 { "search" } else { "read" }),
                    status: 200,
                    body_bytes: 500 + u64::from(client) * 10,
                    user_agent: 1,
                    threats: 0,
                },
            );
        }
    }
    clock.advance(std::time::Duration::from_secs(10));
}

fn analysis(dir: &std::path::Path, clock: Arc<ManualClock>) -> BehaviourAnalysis {
    let settings = BehaviourSettings::default();
    let (table, _) = BehaviourAnalysis::table_for(&settings, clock.clone());
    BehaviourAnalysis::with_table(
        table,
        settings,
        Some(dir.to_path_buf()),
        Arc::new(EventBus::new(Vec::new(), 16)),
        clock,
    )
    .expect("analysis")
}

#[test]
fn the_model_is_trained_once_enough_clients_are_seen_saved_and_loaded() {
    let dir = std::env::temp_dir().join(format!("mcp-shield-behaviour-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let clock = ManualClock::starting_at(1_800_000_000_000);
    let first = analysis(&dir, clock.clone());
    // Nineteen clients are not enough.
    let few = BehaviourSettings::default().min_clients - 1;
    for client in 0..few as u32 {
        for round in 0..3 {
            first
                .table()
                .observe(ip(client), &plain(clock.unix_ms() + round));
        }
    }
    assert!(!first.train().expect("no error"));
    assert!(!first.has_model());
    assert!(first
        .report(ip(0).ip())
        .expect("seen")
        .anomaly_score
        .is_none());
    feed(&first, &clock);
    first.tick();
    assert!(first.has_model());
    assert!(dir.join(MODEL_FILE).exists());
    assert!(first
        .report(ip(0).ip())
        .expect("seen")
        .anomaly_score
        .is_some());
    assert!(
        first.table().score(ip(0)).is_some(),
        "the tick scored active clients"
    );
    // A restart loads it: scores right away, before any training.
    let second = analysis(&dir, clock.clone());
    assert!(second.has_model());
    feed(&second, &clock);
    let a = first.report(ip(3).ip()).expect("seen").anomaly_score;
    let b = second.report(ip(3).ip()).expect("seen").anomaly_score;
    assert!(a.is_some() && b.is_some());
    // A damaged file is an error that names it, not a silent fresh start.
    std::fs::write(dir.join(MODEL_FILE), "{not a model").expect("write");
    let settings = BehaviourSettings::default();
    let (table, _) = BehaviourAnalysis::table_for(&settings, clock.clone());
    let error = BehaviourAnalysis::with_table(
        table,
        settings,
        Some(dir.clone()),
        Arc::new(EventBus::new(Vec::new(), 16)),
        clock,
    )
    .expect_err("damaged model");
    assert!(error.to_string().contains(MODEL_FILE), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn concurrent_observers_lose_no_client_and_stay_bounded() {
    let table = Arc::new(ClientTable::new(4096, 300_000));
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            let table = table.clone();
            std::thread::spawn(move || {
                for i in 0..20_000u32 {
                    let client = ip(i % 1000);
                    table.observe(
                        client,
                        &Observation {
                            path: if t % 2 == 0 { "/a" } else { "/b" },
                            ..plain(1_000 + u64::from(i))
                        },
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("observer");
    }
    let active = table.active(30_000, 1.0);
    assert_eq!(active.len(), 1000);
    let total: f64 = active.iter().map(|c| c.counts.requests).sum();
    assert_eq!(total, 80_000.0, "no count lost without eviction");
    // Ten times the capacity of clients: the table keeps at most its capacity.
    for i in 0..40_960u32 {
        table.observe(ClientKey::User(u64::from(i)), &plain(40_000));
    }
    assert!(table.active(40_000, 1.0).len() <= table.capacity());
}
