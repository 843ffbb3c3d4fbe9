//! The realistic MCP request the threat bench and `examples/inspect_cost.rs` inspect: one
//! `tools/call` POST whose arguments hold prose, code and a path (benign unless asked).

use serde_json::json;

const PROSE: &str = "I want you to act as a travel guide. I will write you my location and you will suggest a place to visit near my location. In some cases, I will also give you the type of places I will visit. You will also suggest me places of similar type that are close to my first location. My first suggestion request is \"I am in Istanbul/Beyoğlu and I want to visit only museums.\" Don't forget the O'Brien family's café on the corner; it's worth 5 stars (4.8/5). ";
const CODE: &str = "fn parse(input: &str) -> Result<Vec<u32>, String> {\n    let mut out = Vec::new();\n    for part in input.split(',') {\n        if part.len() > 10 && a < b && c > d { return Err(format!(\"too long: {part}\")); }\n        out.push(part.trim().parse::<u32>().map_err(|e| e.to_string())?);\n    }\n    Ok(out)\n}\n";

/// A `tools/call` body of about `size` bytes; `attack` puts a SQL injection in one argument.
pub fn body(size: usize, attack: bool) -> String {
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

/// Requests that are all different where real ones differ: each has its own `query` argument
/// and its own session id (a counter written into both), while the headers, tool name and
/// argument names stay those of one client. The threat detector remembers short clean values
/// (`threat::clean_values`); inspecting one body over and over would measure that memory for
/// the query and the session id too, which real traffic does not repeat.
pub struct Distinct {
    body: Vec<u8>,
    /// Where the counter's digits sit in the body's `query` argument.
    query_digits: usize,
    session: String,
    count: u64,
}

/// The placeholder the counter overwrites (as long as the digits written).
const DIGITS: &str = "00000000";

impl Distinct {
    /// A stream of distinct `tools/call` bodies of about `size` bytes.
    pub fn new(size: usize) -> Distinct {
        let template = body(size, false).replace(
            "museums near Galata tower",
            &format!("museums near Galata tower {DIGITS}"),
        );
        let query_digits = template
            .find(DIGITS)
            .expect("the placeholder is in the body");
        Distinct {
            body: template.into_bytes(),
            query_digits,
            session: format!("3f1c6a2e-9b1d-4c55-8f0a-2d6e{DIGITS}"),
            count: 0,
        }
    }

    /// The next request's body and headers, different from every earlier one.
    pub fn next(&mut self) -> (&[u8], [(&str, &str); 5]) {
        self.count += 1;
        // Eight hex digits, written in place (no allocation inside the measured loop).
        let mut digits = [0u8; 8];
        for (i, d) in digits.iter_mut().enumerate() {
            *d = b"0123456789abcdef"[(self.count >> (28 - 4 * i) & 0xf) as usize];
        }
        self.body[self.query_digits..self.query_digits + DIGITS.len()].copy_from_slice(&digits);
        let at = self.session.len() - DIGITS.len();
        let digits = std::str::from_utf8(&digits).expect("hex digits are ASCII");
        self.session.replace_range(at.., digits);
        let mut headers = HEADERS;
        headers[4].1 = &self.session;
        (&self.body, headers)
    }
}

/// The headers an MCP client sends with it.
pub const HEADERS: [(&str, &str); 5] = [
    ("Host", "mcp.example.com"),
    ("User-Agent", "mcp-client/1.2 (node)"),
    ("Content-Type", "application/json"),
    ("Accept", "application/json, text/event-stream"),
    ("Mcp-Session-Id", "3f1c6a2e-9b1d-4c55-8f0a-2d6e8b7c9a10"),
];
