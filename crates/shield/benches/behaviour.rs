//! Behavioural analysis costs.
//!
//! `cargo bench -p mcp-shield --bench behaviour`
//!
//! - `behaviour/observe`: counting one request (what every response costs), into a table
//!   holding 100,000 clients, each request from a random one (every slot a cache miss).
//! - `behaviour/observe_100_clients`: the same with 100 clients (the table in cache).
//! - `behaviour/features_and_score`: one client's features and its score with a trained model
//!   (what the background pass and the threat assessment do per client).
//! - `behaviour/train_100k`: training the forest on 100,000 clients' features.
//! - `behaviour/score_100k`: the background pass over 100,000 active clients.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{criterion_group, criterion_main, Criterion};
use mcp_shield::behaviour::forest::SplitMix64;
use mcp_shield::behaviour::{
    ClientKey, ClientTable, FeatureVector, IsolationForest, MethodClass, Observation, SAMPLE_SIZE,
    TREES,
};

const CLIENTS: u32 = 100_000;

fn client(n: u32) -> ClientKey {
    ClientKey::Ip(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n)))
}

fn observation(at_ms: u64, n: u32) -> Observation<'static> {
    const PATHS: [&str; 4] = ["/mcp", "/mcp", "/health", "/api/items/7"];
    const TOOLS: [&str; 3] = ["search", "read_file", "summarize"];
    Observation {
        at_ms,
        path: PATHS[n as usize % 4],
        method: MethodClass::ToolsCall,
        tool: Some(TOOLS[n as usize % 3]),
        status: if n % 50 == 0 { 404 } else { 200 },
        body_bytes: 400 + u64::from(n % 2000),
        user_agent: 1 + u64::from(n % 3),
        threats: 0,
    }
}

fn bench(c: &mut Criterion) {
    let table = ClientTable::new(131_072, 300_000);
    let start = 1_800_000_000_000u64;
    for round in 0..5u64 {
        for n in 0..CLIENTS {
            table.observe(
                client(n),
                &observation(start + round * 1000 + u64::from(n % 997), n),
            );
        }
    }
    let now = start + 10_000;
    let active = table.active(now, 3.0);
    assert!(
        active.len() >= CLIENTS as usize * 99 / 100,
        "{} held",
        active.len()
    );
    eprintln!("{} of {CLIENTS} clients held", active.len());
    let points: Vec<FeatureVector> = active.iter().map(|c| c.vector).collect();
    let forest = IsolationForest::train(&points, TREES, SAMPLE_SIZE, 1).expect("trained");

    let mut group = c.benchmark_group("behaviour");
    let mut rng = SplitMix64::new(3);
    let mut at = now;
    group.bench_function("observe", |b| {
        b.iter(|| {
            let n = rng.below(CLIENTS as usize) as u32;
            at += 1;
            table.observe(black_box(client(n)), &observation(at, n));
        })
    });
    // The same with 100 clients: a table whose active part stays in cache.
    let few = ClientTable::new(1024, 300_000);
    group.bench_function("observe_100_clients", |b| {
        b.iter(|| {
            let n = rng.below(100) as u32;
            at += 1;
            few.observe(black_box(client(n)), &observation(at, n));
        })
    });
    group.bench_function("features_and_score", |b| {
        b.iter(|| {
            let n = rng.below(CLIENTS as usize) as u32;
            let f = table.features(client(n), at).expect("tracked");
            black_box(forest.score(&f.vector))
        })
    });
    group.sample_size(10);
    group.bench_function("train_100k", |b| {
        b.iter(|| {
            let active = table.active(at, 3.0);
            let points: Vec<FeatureVector> = active.iter().map(|c| c.vector).collect();
            black_box(IsolationForest::train(&points, TREES, SAMPLE_SIZE, 1).expect("trained"))
        })
    });
    group.bench_function("score_100k", |b| {
        b.iter(|| {
            let mut over = 0usize;
            for c in table.active(at, 3.0) {
                over += usize::from(forest.score(&c.vector) >= 0.7);
            }
            black_box(over)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
