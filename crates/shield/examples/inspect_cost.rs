//! Inspects the threat bench's 1 KB `tools/call` request N times (default 2000): under
//! callgrind, a count of instructions per inspection that does not move with the machine's
//! load, unlike the criterion bench's times. A second argument sets the body's size (default
//! 1024; 300 leaves the prose and code arguments empty: the request's fixed cost). A third,
//! `distinct`, gives every request its own query argument and session id
//! (`mcp_request::Distinct`), so that the detector's memory of clean short values
//! (`threat::clean_values`) helps only where real traffic repeats itself.
//!
//! ```sh
//! cargo build --release -p mcp-shield --example inspect_cost
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg target/release/examples/inspect_cost 2000
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg target/release/examples/inspect_cost 2000 2048
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg target/release/examples/inspect_cost 2000 1024 distinct
//! ```

#[path = "../benches/support/mcp_request.rs"]
mod mcp_request;

use mcp_shield::threat::{HttpRequest, ThreatDetector};

fn main() {
    let arg = |i: usize, default: usize| {
        std::env::args()
            .nth(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let n = arg(1, 2000);
    let size = arg(2, 1024);
    let distinct = std::env::args().nth(3).as_deref() == Some("distinct");
    let same_body = mcp_request::body(size, false);
    let mut stream = mcp_request::Distinct::new(size);
    let detector = ThreatDetector::from_config(&Default::default()).expect("default policy");
    let mut blocked = 0;
    for _ in 0..n {
        let (body, headers) = if distinct {
            stream.next()
        } else {
            (same_body.as_bytes(), mcp_request::HEADERS)
        };
        let request = HttpRequest {
            method: "POST",
            uri: "/mcp",
            headers: &headers,
            body,
        };
        blocked += usize::from(detector.inspect(&request).blocked);
    }
    let how = if distinct { "distinct" } else { "identical" };
    println!(
        "{n} inspections of {how} {} byte bodies, {blocked} blocked",
        same_body.len()
    );
}
