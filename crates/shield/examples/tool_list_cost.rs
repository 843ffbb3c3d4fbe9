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
use mcp_shield::dlp::ResultInspector;
use mcp_shield::events::EventBus;
use mcp_shield::response::{rewrite_json, Exchange, WayBack};
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
    let tools = WayBack {
        tools: Arc::new(tools),
        results: Arc::new(ResultInspector::new(
            &Default::default(),
            Arc::new(EventBus::new(Vec::new(), 16)),
        )),
    };
    let exchange = Exchange {
        path: "/mcp".into(),
        user: None,
        ip: "203.0.113.7".parse().expect("ip"),
        asks_for_list: true,
        call: None,
    };
    let body = tool_list();
    let edited = |count: usize, edit: &dyn Fn(String, usize) -> String| -> Vec<Vec<u8>> {
        (0..count)
            .map(|i| edit(String::from_utf8(body.clone()).expect("utf8"), i).into_bytes())
            .collect()
    };
    runtime.block_on(async {
        // The first listing pins; every later one is compared with the pins.
        assert!(rewrite_json(&tools, &exchange, &body).await.is_none());
        // As clients send them: each answer with its own id, the list the same.
        let ids = edited(64, &|t, i| {
            t.replacen("\"id\":1", &format!("\"id\":{}", 1000 + i), 1)
        });
        timed(
            &tools,
            &exchange,
            &ids,
            n,
            true,
            "20 tools, the list as pinned",
        )
        .await;
        // Every answer read (its text differs after the result each time, so the clean list is
        // not recognised whole, as with access rules, which filter per client): each definition
        // found by its fingerprint, none judged again.
        let variants = edited(n.min(500), &|t, i| t + &" ".repeat(i + 1));
        let label = "20 tools, every answer read, the definitions as pinned";
        timed(&tools, &exchange, &variants, variants.len(), true, label).await;
        // Every answer judged in full (a new tool description each time: parsed, every
        // definition fingerprinted, the changed one judged and compared with its pin).
        let changed = edited(n.min(500), &|t, i| {
            t.replacen("Repository name", &format!("Repository name ({i})"), 1)
        });
        let label = "20 tools, one definition changed each time";
        timed(&tools, &exchange, &changed, changed.len(), false, label).await;
        // A list never seen (another server's, say): all 20 definitions judged, on another
        // path so the pins of the first stay as they are.
        let fresh = edited(n.min(200), &|t, i| {
            t.replace("users by login.", &format!("users by login (v{i})."))
        });
        let other = Exchange {
            path: "/other".into(),
            ..exchange.clone()
        };
        timed(
            &tools,
            &other,
            &fresh,
            fresh.len(),
            false,
            "20 tools never seen",
        )
        .await;
    });
}

/// Reads `runs` answers to a `tools/list`, the texts in turn, and prints the time per answer;
/// `unchanged`: none of them may need rewriting.
async fn timed(
    tools: &WayBack,
    exchange: &Exchange,
    texts: &[Vec<u8>],
    runs: usize,
    unchanged: bool,
    label: &str,
) {
    let started = std::time::Instant::now();
    for text in texts.iter().cycle().take(runs) {
        let rewritten = rewrite_json(tools, exchange, text).await;
        assert!(
            !unchanged || rewritten.is_none(),
            "nothing to change in these tools"
        );
    }
    let per = started.elapsed().as_secs_f64() * 1e6 / runs as f64;
    println!(
        "{} bytes, {label}: {per:.1} µs per tools/list response ({runs} runs)",
        texts[0].len()
    );
}
