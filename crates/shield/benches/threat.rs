//! Threat inspection throughput on realistic MCP bodies.
//!
//! `cargo bench -p mcp-shield --bench threat`
//!
//! - `inspect/mcp_1k`, `inspect/mcp_64k`: one `tools/call` POST whose arguments hold prose,
//!   code and a path (benign, so every detector runs to the end), about 1 KB and 64 KB.
//! - `inspect/get_query`: a GET with a short query string and browser headers.
//! - `inspect/attack_1k`: the 1 KB body with a SQL injection in one argument.
//! - `inspect/mcp_1k_distinct`: 1 KB bodies that differ where real requests differ (each its
//!   own query argument and session id): the detector remembers short clean values, and
//!   `mcp_1k` repeats one request, so this is the figure for traffic that does not repeat.
//! - `inspect/load_call`: the request `scripts/load.sh` sends in its `call` workload (a 1 KB
//!   `tools/call` whose query, id and session differ per request, 770 bytes of prose in one
//!   argument), so the figure can be set beside what the running gateway spends.
//!
//! Throughput is reported in bytes of request (URI, headers and body).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mcp_shield::threat::{HttpRequest, ThreatDetector};

#[path = "support/mcp_request.rs"]
mod mcp_request;

use mcp_request::{body, Distinct, HEADERS};

fn bench(c: &mut Criterion) {
    let detector = ThreatDetector::from_config(&Default::default()).expect("detector");
    let headers = HEADERS;
    let mut group = c.benchmark_group("inspect");
    for (name, size, attack) in [
        ("mcp_1k", 1024, false),
        ("mcp_64k", 65536, false),
        ("attack_1k", 1024, true),
    ] {
        let body = body(size, attack);
        let request = HttpRequest {
            method: "POST",
            uri: "/mcp",
            headers: &headers,
            body: body.as_bytes(),
        };
        let inspection = detector.inspect(&request);
        assert_eq!(
            inspection.blocked, attack,
            "{name}: {:?}",
            inspection.indicators
        );
        group.throughput(Throughput::Bytes((body.len() + 200) as u64));
        group.bench_function(name, |b| {
            b.iter(|| black_box(detector.inspect(black_box(&request))))
        });
    }
    let mut stream = Distinct::new(1024);
    let (first, headers) = stream.next();
    let size = first.len() + 200;
    assert!(
        !detector
            .inspect(&HttpRequest {
                method: "POST",
                uri: "/mcp",
                headers: &headers,
                body: first,
            })
            .blocked
    );
    group.throughput(Throughput::Bytes(size as u64));
    group.bench_function("mcp_1k_distinct", |b| {
        b.iter(|| {
            let (body, headers) = stream.next();
            let request = HttpRequest {
                method: "POST",
                uri: "/mcp",
                headers: &headers,
                body,
            };
            black_box(detector.inspect(black_box(&request)))
        })
    });
    let filler =
        "The quarterly figures for the northern region, with notes on returns. ".repeat(11);
    let mut n = 0u64;
    let mut load_body = String::new();
    group.throughput(Throughput::Bytes(1200));
    group.bench_function("load_call", |b| {
        b.iter(|| {
            n += 1;
            load_body.clear();
            use std::fmt::Write;
            let _ = write!(
                load_body,
                r#"{{"jsonrpc":"2.0","id":{n},"method":"tools/call","params":{{"name":"search_documents","arguments":{{"query":"report {n} for customer {}","limit":10,"context":"{filler}"}}}}}}"#,
                n % 977
            );
            let session = format!("s-{:08x}", n % 4096);
            let ip = format!("10.{}.{}.{}", n % 10000 / 2500 + 1, n % 2500 / 250, n % 250 + 1);
            let headers = [
                ("host", "127.0.0.1:8080"),
                ("x-forwarded-for", ip.as_str()),
                ("content-type", "application/json"),
                ("accept", "application/json, text/event-stream"),
                ("mcp-session-id", session.as_str()),
                ("content-length", "1000"),
            ];
            let request = HttpRequest {
                method: "POST",
                uri: "/mcp",
                headers: &headers,
                body: load_body.as_bytes(),
            };
            let inspection = detector.inspect(black_box(&request));
            assert!(!inspection.blocked, "{:?}", inspection.indicators);
            black_box(inspection)
        })
    });
    let browser = [
        ("Host", "example.com"),
        ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"),
        ("Accept", "text/html,application/xhtml+xml"),
        ("Referer", "https://example.com/search"),
        ("Cookie", "session=abc123; theme=dark"),
    ];
    let request = HttpRequest {
        method: "GET",
        uri: "/search?q=museums+in+istanbul&page=2",
        headers: &browser,
        body: b"",
    };
    group.throughput(Throughput::Bytes(300));
    group.bench_function("get_query", |b| {
        b.iter(|| black_box(detector.inspect(black_box(&request))))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
