//! Cost of a rate-limit decision in the memory store.
//!
//! `cargo bench -p mcp-shield --bench rate_limit`
//!
//! - `four_buckets/single_thread`: one request's decision over four buckets (an endpoint rule,
//!   IP, user, global), all with room, as most requests are.
//! - `contended/*`: two threads deciding at once, on one shared bucket (the global bucket's
//!   situation) or on a bucket each (per-IP buckets of different clients). Each iteration is
//!   one decision on each thread; the time is the wall time per iteration, so it is the
//!   latency a request sees while the other core does the same.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use mcp_shield::rate_limit::store::{BucketKey, BucketRequest, Subject};
use mcp_shield::rate_limit::{MemoryStore, Quota};

/// A bucket that never runs out within a benchmark.
fn roomy(scope: u16, subject: Subject) -> BucketRequest {
    BucketRequest {
        key: BucketKey { scope, subject },
        quota: Quota::new(1 << 50, 1e9),
        cost: 1,
    }
}

fn ip(last: u8) -> Subject {
    Subject::Ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)))
}

fn bench(c: &mut Criterion) {
    let store = MemoryStore::new(1_000_000);
    let four = [
        roomy(3, ip(1)),
        roomy(1, ip(1)),
        roomy(2, Subject::User(42)),
        roomy(0, Subject::Global),
    ];
    let start = Instant::now();
    let now = || start.elapsed().as_nanos() as u64 + 1;

    let mut group = c.benchmark_group("rate_limit");
    group.bench_function("four_buckets/single_thread", |b| {
        b.iter(|| store.acquire(black_box(&four), now()))
    });
    group.bench_function("one_bucket/single_thread", |b| {
        b.iter(|| store.acquire(black_box(&four[1..2]), now()))
    });

    let contended = |b: &mut criterion::Bencher<'_>, buckets: [[BucketRequest; 1]; 2]| {
        b.iter_custom(|iters| {
            let barrier = std::sync::Barrier::new(2);
            let elapsed: Vec<Duration> = std::thread::scope(|s| {
                let handles: Vec<_> = buckets
                    .iter()
                    .map(|mine| {
                        let (store, barrier) = (&store, &barrier);
                        s.spawn(move || {
                            barrier.wait();
                            let t = Instant::now();
                            for _ in 0..iters {
                                black_box(store.acquire(mine, now()));
                            }
                            t.elapsed()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("thread"))
                    .collect()
            });
            elapsed.into_iter().max().unwrap_or_default()
        })
    };
    group.bench_function("contended/two_threads_one_key", |b| {
        contended(
            b,
            [[roomy(0, Subject::Global)], [roomy(0, Subject::Global)]],
        )
    });
    group.bench_function("contended/two_threads_distinct_keys", |b| {
        contended(b, [[roomy(1, ip(10))], [roomy(1, ip(20))]])
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
