//! Threat inspection throughput on realistic MCP bodies.
//!
//! `cargo bench -p mcp-shield --bench threat`
//!
//! - `inspect/mcp_1k`, `inspect/mcp_64k`: one `tools/call` POST whose arguments hold prose,
//!   code and a path (benign, so every detector runs to the end), about 1 KB and 64 KB.
//! - `inspect/get_query`: a GET with a short query string and browser headers.
//! - `inspect/attack_1k`: the 1 KB body with a SQL injection in one argument.
//!
//! Throughput is reported in bytes of request (URI, headers and body).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mcp_shield::threat::{HttpRequest, ThreatDetector};
use serde_json::json;

const PROSE: &str = "I want you to act as a travel guide. I will write you my location and you will suggest a place to visit near my location. In some cases, I will also give you the type of places I will visit. You will also suggest me places of similar type that are close to my first location. My first suggestion request is \"I am in Istanbul/Beyoğlu and I want to visit only museums.\" Don't forget the O'Brien family's café on the corner; it's worth 5 stars (4.8/5). ";
const CODE: &str = "fn parse(input: &str) -> Result<Vec<u32>, String> {\n    let mut out = Vec::new();\n    for part in input.split(',') {\n        if part.len() > 10 && a < b && c > d { return Err(format!(\"too long: {part}\")); }\n        out.push(part.trim().parse::<u32>().map_err(|e| e.to_string())?);\n    }\n    Ok(out)\n}\n";

fn body(size: usize, attack: bool) -> String {
    let mut prose = String::new();
    let mut code = String::new();
    while prose.len() + code.len() < size.saturating_sub(300) {
        prose.push_str(PROSE);
        code.push_str(CODE);
    }
    let query = if attack {
        "x' UNION SELECT password FROM users--"
    } else {
        "museums near Galata tower"
    };
    json!({
        "jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "plan_trip", "arguments": {
            "prompt": prose, "snippet": code, "path": "docs/guides/istanbul.md", "query": query,
            "options": {"max_results": 10, "tags": ["museum", "history"]}
        }}
    })
    .to_string()
}

fn bench(c: &mut Criterion) {
    let detector = ThreatDetector::from_config(&Default::default()).expect("detector");
    let headers = [
        ("Host", "mcp.example.com"),
        ("User-Agent", "mcp-client/1.2 (node)"),
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
        ("Mcp-Session-Id", "3f1c6a2e-9b1d-4c55-8f0a-2d6e8b7c9a10"),
    ];
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
