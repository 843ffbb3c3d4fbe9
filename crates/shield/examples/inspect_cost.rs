//! Inspects the threat bench's 1 KB `tools/call` request N times (default 2000): under
//! callgrind, a count of instructions per inspection that does not move with the machine's
//! load, unlike the criterion bench's times.
//!
//! ```sh
//! cargo build --release -p mcp-shield --example inspect_cost
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg target/release/examples/inspect_cost 2000
//! ```
use mcp_shield::threat::{HttpRequest, ThreatDetector};
use serde_json::json;
const PROSE: &str = "I want you to act as a travel guide. I will write you my location and you will suggest a place to visit near my location. In some cases, I will also give you the type of places I will visit. You will also suggest me places of similar type that are close to my first location. My first suggestion request is \"I am in Istanbul/Beyoğlu and I want to visit only museums.\" Don't forget the O'Brien family's café on the corner; it's worth 5 stars (4.8/5). ";
const CODE: &str = "fn parse(input: &str) -> Result<Vec<u32>, String> {\n    let mut out = Vec::new();\n    for part in input.split(',') {\n        if part.len() > 10 && a < b && c > d { return Err(format!(\"too long: {part}\")); }\n        out.push(part.trim().parse::<u32>().map_err(|e| e.to_string())?);\n    }\n    Ok(out)\n}\n";
fn main() {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "plan_trip", "arguments": {"prompt": PROSE, "snippet": CODE, "path": "docs/guides/istanbul.md", "query": "museums near Galata tower", "options": {"max_results": 10, "tags": ["museum", "history"]}}}}).to_string();
    let detector = ThreatDetector::from_config(&Default::default()).expect("default policy");
    let headers = [
        ("Host", "mcp.example.com"),
        ("User-Agent", "mcp-client/1.2 (node)"),
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
        ("Mcp-Session-Id", "3f1c6a2e-9b1d-4c55-8f0a-2d6e8b7c9a10"),
    ];
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let mut blocked = 0;
    for _ in 0..n {
        let r = HttpRequest {
            method: "POST",
            uri: "/mcp",
            headers: &headers,
            body: body.as_bytes(),
        };
        blocked += usize::from(detector.inspect(&r).blocked);
    }
    println!("{blocked} {}", body.len());
}
