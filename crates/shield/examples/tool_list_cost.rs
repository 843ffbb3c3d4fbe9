//! Reads a 20-tool `tools/list` response the way the gateway does on an MCP path, three ways:
//! the list as pinned with a new id each time (N times, default 2000: the list recognised as
//! the clean one seen before), every answer read (the definitions found by fingerprint, none
//! judged again: what access rules, which filter per client, cost), and one definition changed
//! each time (parsed, judged for poisoning, compared with its pin, withheld, the list written
//! again). Prints the time per response; under callgrind, a count of instructions that does
//! not move with the machine's load.
//!
//! ```sh
//! cargo run --release -p mcp-shield --example tool_list_cost 2000
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg target/release/examples/tool_list_cost 200
//! ```

use std::sync::Arc;

use mcp_shield::clock::SystemClock;
use mcp_shield::events::EventBus;
use mcp_shield::response::{rewrite_json, Exchange};
use mcp_shield::tools::ToolIntegrity;
use serde_json::json;

/// 20 definitions as a GitHub server lists them (~9 KB), like `scripts/load.sh`'s list workload.
fn tool_list() -> Vec<u8> {
    let mut tools = Vec::new();
    for thing in ["issues", "pull_requests", "releases", "workflow_runs"] {
        for verb in ["list", "get", "create", "update", "delete"] {
            let words = thing.replace('_', " ");
            tools.push(json!({
                "name": format!("{verb}_{thing}"),
                "title": format!("{verb} {words}"),
                "description": format!("{verb} {words} of a GitHub repository. Results are paginated: pass the cursor from the previous page to get the next one. Requires a token with the repo scope; organisation repositories may need SSO authorisation. Returns the fields the API returns, with dates in ISO 8601 and users by login."),
                "inputSchema": {"type": "object", "properties": {
                    "owner": {"type": "string", "description": "Repository owner (user or organisation)"},
                    "repo": {"type": "string", "description": "Repository name"},
                    "state": {"type": "string", "enum": ["open", "closed", "all"], "description": "Filter by state"},
                    "per_page": {"type": "integer", "minimum": 1, "maximum": 100, "description": "Results per page"},
                    "cursor": {"type": "string", "description": "Pagination cursor from a previous call"}},
                    "required": ["owner", "repo"]},
                "annotations": {"readOnlyHint": verb == "list" || verb == "get", "destructiveHint": verb == "delete"},
            }));
        }
    }
    serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": tools}}))
        .expect("JSON")
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let tools = ToolIntegrity::new(
        &Default::default(),
        "http://upstream",
        None,
        None,
        Arc::new(EventBus::new(Vec::new(), 16)),
        Arc::new(SystemClock::default()),
    )
    .expect("tool integrity");
    let exchange = Exchange {
        path: "/mcp".into(),
        user: None,
        ip: "203.0.113.7".parse().expect("ip"),
        asks_for_list: true,
    };
    let body = tool_list();
    runtime.block_on(async {
        // The first listing pins; every later one is compared with the pins.
        assert!(rewrite_json(&tools, &exchange, &body).await.is_none());
        // As clients send them: each answer with its own id, the list the same.
        let bodies: Vec<Vec<u8>> = (0..64)
            .map(|i| {
                let text = String::from_utf8(body.clone()).expect("utf8");
                text.replacen("\"id\":1", &format!("\"id\":{}", 1000 + i), 1)
                    .into_bytes()
            })
            .collect();
        let started = std::time::Instant::now();
        for i in 0..n {
            let rewritten = rewrite_json(&tools, &exchange, &bodies[i % bodies.len()]).await;
            assert!(rewritten.is_none(), "nothing to change in these tools");
        }
        let per = started.elapsed().as_secs_f64() * 1e6 / n as f64;
        println!(
            "{} bytes, 20 tools, the list as pinned: {per:.1} µs per tools/list response ({n} runs)",
            body.len()
        );
        // Every answer read (its text differs after the result each time, so the clean list is
        // not recognised whole, as with access rules, which filter per client): each definition
        // found by its fingerprint, none judged again.
        let variants: Vec<Vec<u8>> = (0..n.min(500))
            .map(|i| {
                let mut text = body.clone();
                text.extend(std::iter::repeat_n(b' ', i + 1));
                text
            })
            .collect();
        let started = std::time::Instant::now();
        for text in &variants {
            assert!(rewrite_json(&tools, &exchange, text).await.is_none());
        }
        let per = started.elapsed().as_secs_f64() * 1e6 / variants.len() as f64;
        println!(
            "{} bytes, 20 tools, every answer read, the definitions as pinned: {per:.1} µs per tools/list response ({} runs)",
            body.len(),
            variants.len()
        );
        // Every answer judged in full (a new tool description each time: parsed, every
        // definition fingerprinted, the changed one judged and compared with its pin).
        let changed: Vec<Vec<u8>> = (0..n.min(500))
            .map(|i| {
                let text = String::from_utf8(body.clone()).expect("utf8");
                text.replacen("Repository name", &format!("Repository name ({i})"), 1)
                    .into_bytes()
            })
            .collect();
        let started = std::time::Instant::now();
        for text in &changed {
            let _ = rewrite_json(&tools, &exchange, text).await;
        }
        let per = started.elapsed().as_secs_f64() * 1e6 / changed.len() as f64;
        println!(
            "{} bytes, 20 tools, one definition changed each time: {per:.1} µs per tools/list response ({} runs)",
            body.len(),
            changed.len()
        );
        // A list never seen (another server's, say): all 20 definitions judged, on another
        // path so the pins of the first stay as they are.
        let fresh: Vec<Vec<u8>> = (0..n.min(200))
            .map(|i| {
                let text = String::from_utf8(body.clone()).expect("utf8");
                text.replace("users by login.", &format!("users by login (v{i})."))
                    .into_bytes()
            })
            .collect();
        let other = Exchange {
            path: "/other".into(),
            ..exchange.clone()
        };
        let started = std::time::Instant::now();
        for text in &fresh {
            let _ = rewrite_json(&tools, &other, text).await;
        }
        let per = started.elapsed().as_secs_f64() * 1e6 / fresh.len() as f64;
        println!(
            "{} bytes, 20 tools never seen: {per:.1} µs per tools/list response ({} runs)",
            body.len(),
            fresh.len()
        );
    });
}
