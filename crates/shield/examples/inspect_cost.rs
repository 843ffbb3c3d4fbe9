//! Inspects the threat bench's 1 KB `tools/call` request N times (default 2000): under
//! callgrind, a count of instructions per inspection that does not move with the machine's
//! load, unlike the criterion bench's times. A second argument sets the body's size (default
//! 1024; 300 leaves the prose and code arguments empty: the request's fixed cost).
//!
//! ```sh
//! cargo build --release -p mcp-shield --example inspect_cost
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg target/release/examples/inspect_cost 2000
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg target/release/examples/inspect_cost 2000 2048
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
    let body = mcp_request::body(arg(2, 1024), false);
    let detector = ThreatDetector::from_config(&Default::default()).expect("default policy");
    let mut blocked = 0;
    for _ in 0..n {
        let request = HttpRequest {
            method: "POST",
            uri: "/mcp",
            headers: &mcp_request::HEADERS,
            body: body.as_bytes(),
        };
        blocked += usize::from(detector.inspect(&request).blocked);
    }
    println!(
        "{n} inspections of a {} byte body, {blocked} blocked",
        body.len()
    );
}
