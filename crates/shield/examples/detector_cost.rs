//! Runs one detector N times over one value of the threat bench's 1 KB `tools/call` request
//! (its `prompt` prose or its `snippet` code): under callgrind, the instructions one detector
//! spends on one value, which is how docs/BENCHMARKS.md splits a request's cost.
//!
//! ```sh
//! cargo build --release -p mcp-shield --example detector_cost
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/detector_cost 1000 prompt sqli
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/detector_cost 11000 prompt sqli
//! # per call: (I(11000) - I(1000)) / 10000; values: prompt, snippet, =any text; detectors: sqli, cmd,
//! # code, xss, traversal, injection, ssrf, normalize, field (all of a request's work for the
//! # value as its one query argument)
//! ```

#[path = "../benches/support/mcp_request.rs"]
#[allow(dead_code)]
mod mcp_request;

use mcp_shield::threat::fields::Place;
use mcp_shield::threat::{
    command, decode, injection, sqli, ssrf, traversal, xss, HttpRequest, ThreatDetector,
};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let value = args.get(2).map_or("prompt", String::as_str);
    let detector = args.get(3).map_or("sqli", String::as_str);
    let body: serde_json::Value =
        serde_json::from_str(&mcp_request::body(1024, false)).expect("the bench body is JSON");
    // `=text` measures a value of one's own (the short fields of a request).
    let text = match value.strip_prefix('=') {
        Some(own) => own.to_string(),
        None => body["params"]["arguments"][value]
            .as_str()
            .unwrap_or_else(|| panic!("no argument {value:?}: prompt, snippet or =text"))
            .to_string(),
    };
    let lower = text.to_ascii_lowercase();
    let mut out = Vec::new();
    let inspector = ThreatDetector::from_config(&Default::default()).expect("default policy");
    let uri = format!("/x?q={text}");
    for _ in 0..n {
        out.clear();
        let (text, lower) = (std::hint::black_box(&*text), std::hint::black_box(&*lower));
        match detector {
            "sqli" => sqli::detect(text, &mut out),
            "cmd" => command::detect(lower, &mut out),
            "code" => command::detect_code(text, lower, &mut out),
            "xss" => xss::detect(text, lower, &mut out),
            "traversal" => traversal::detect(lower, false, false, &mut out),
            "injection" => injection::detect(Place::JsonValue, lower, false, &mut out),
            "ssrf" => ssrf::detect(lower, Place::JsonValue, false, &mut out),
            // The whole request path for the value as a query argument (`GET /x?q=...`).
            "field" => {
                let request = HttpRequest {
                    method: "GET",
                    uri: std::hint::black_box(&uri),
                    headers: &[],
                    body: b"",
                };
                std::hint::black_box(inspector.inspect(&request));
            }
            "normalize" => {
                std::hint::black_box(decode::normalize(text, false));
            }
            other => panic!("unknown detector {other:?}"),
        }
    }
    println!(
        "{n} runs of {detector} over the {} bytes of {value}: {} findings",
        text.len(),
        out.len()
    );
}
