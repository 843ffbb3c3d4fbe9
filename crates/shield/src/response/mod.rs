//! The way back: responses from the upstream on MCP paths, read before they reach the client.
//!
//! A JSON response to a list request (`tools/list`, `prompts/list`, `resources/list`,
//! `resources/templates/list`) is read whole, up to `[mcp.tools] max_response_bytes`, and
//! every JSON-RPC message in it handed to [`ToolIntegrity::inspect_message`]; a rewritten
//! message is serialized again (and `Content-Length` fixed). An event stream
//! (`text/event-stream`, the answer to any POST, or a client's standing GET stream) is read
//! event by event ([`sse`]): each event is passed on as soon as its blank line arrives, and only
//! events whose data can hold a list or a `list_changed` notification are parsed. Nothing
//! else is touched: other responses pass through as they came, unbuffered.
//!
//! Anything that cannot be read (not JSON, larger than the limit, a broken stream) passes as
//! it came and is logged: the response side filters what it understands and never breaks a
//! response it does not.

pub mod sse;

use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::Response;
use http_body::Body as HttpBody;
use http_body_util::BodyExt;
use serde_json::Value;

use crate::request::{RequestFacts, UserId};
use crate::tools::{Client, MessageOutcome, ToolIntegrity};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The JSON-RPC methods whose answers are lists this side reads.
pub const LIST_METHODS: [&str; 4] = [
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
];

/// What the response side needs to know about the request a response answers.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The MCP path.
    pub path: String,
    /// The client's user (`user_id_header`), when named.
    pub user: Option<String>,
    /// The client's address.
    pub ip: std::net::IpAddr,
    /// The request asked for a list (JSON answers are read only then).
    pub asks_for_list: bool,
}

/// Whether the request asks for a list (one of [`LIST_METHODS`], alone or in a batch).
pub fn asks_for_list(facts: &RequestFacts) -> bool {
    facts.json_rpc.iter().any(|m| {
        m.method
            .as_deref()
            .is_some_and(|m| LIST_METHODS.contains(&m))
    })
}

impl Exchange {
    /// The exchange of a request on an MCP path.
    pub fn of(facts: &RequestFacts) -> Exchange {
        Exchange {
            path: facts.path().to_string(),
            user: match &facts.user {
                Some(UserId::Header(name)) => Some(name.clone()),
                _ => None,
            },
            ip: facts.client_ip,
            asks_for_list: facts.json_rpc.iter().any(|m| {
                m.method
                    .as_deref()
                    .is_some_and(|m| LIST_METHODS.contains(&m))
            }),
        }
    }

    fn client(&self) -> Client<'_> {
        Client {
            user: self.user.as_deref(),
            ip: self.ip,
        }
    }
}

/// Whether the response is an event stream.
pub fn is_event_stream(headers: &http::HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"))
}

fn is_json(headers: &http::HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let essence = v.split(';').next().unwrap_or("").trim();
            essence.eq_ignore_ascii_case("application/json") || essence.ends_with("+json")
        })
}

/// Reads (and rewrites) what needs it; passes the rest as it came.
pub async fn inspect<B>(
    tools: Arc<ToolIntegrity>,
    exchange: Exchange,
    response: Response<B>,
) -> Response<Body>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    if is_event_stream(response.headers()) {
        let limit = tools.max_response_bytes();
        let (mut parts, body) = response.into_parts();
        // A rewritten event changes the length: a stream read event by event goes out
        // chunked (some servers send a whole short stream with a Content-Length).
        parts.headers.remove(CONTENT_LENGTH);
        return Response::from_parts(
            parts,
            Body::new(sse::InspectedStream::new(body, tools, exchange, limit)),
        );
    }
    if !exchange.asks_for_list || !is_json(response.headers()) {
        return response.map(Body::new);
    }
    let limit = tools.max_response_bytes();
    let (mut parts, body) = response.into_parts();
    let (bytes, rest) = match read_up_to(Body::new(body), limit).await {
        Ok(read) => read,
        Err(e) => {
            tracing::warn!(target: "security.tools", "an MCP response broke off while it was read: {e}");
            return Response::from_parts(parts, Body::empty());
        }
    };
    if let Some(rest) = rest {
        tracing::warn!(target: "security.tools", path = %exchange.path,
            "an MCP list response larger than {limit} bytes passed unread (mcp.tools.max_response_bytes)");
        let head = futures_util::stream::once(async move { Ok::<Bytes, axum::Error>(bytes) });
        let tail = rest.into_data_stream();
        return Response::from_parts(
            parts,
            Body::from_stream(futures_util::StreamExt::chain(head, tail)),
        );
    }
    match rewrite_json(&tools, &exchange, &bytes).await {
        Some(rewritten) => {
            parts.headers.remove(CONTENT_LENGTH);
            if let Ok(length) = http::HeaderValue::from_str(&rewritten.len().to_string()) {
                parts.headers.insert(CONTENT_LENGTH, length);
            }
            Response::from_parts(parts, Body::from(rewritten))
        }
        None => Response::from_parts(parts, Body::from(bytes)),
    }
}

/// The messages of one JSON text (a message or a batch) inspected; the new text when one
/// changed.
pub async fn rewrite_json(
    tools: &ToolIntegrity,
    exchange: &Exchange,
    text: &[u8],
) -> Option<Vec<u8>> {
    // The same list as last time, found clean then: passed without parsing. The fingerprint
    // covers the text from the first `"result"` on, so the request's id (before it, in the
    // usual order) does not make every answer new; everything the list holds is after it.
    let from = memchr::memmem::find(text, b"\"result\"").unwrap_or(0);
    let print = tools.text_fingerprint(&text[from..]);
    if tools.known_clean(&exchange.path, print) {
        return None;
    }
    let epoch = tools.clean_epoch();
    let mut value: Value = serde_json::from_slice(text).ok()?;
    let mut changed = false;
    let mut clean = true;
    match &mut value {
        Value::Array(batch) => {
            for message in batch.iter_mut() {
                let (c, k) = apply(tools, exchange, message).await;
                changed |= c;
                clean &= k;
            }
        }
        message => (changed, clean) = apply(tools, exchange, message).await,
    }
    if changed {
        serde_json::to_vec(&value).ok()
    } else {
        if clean {
            tools.remember_clean(&exchange.path, print, epoch);
        }
        None
    }
}

/// Whether the message changed, and whether it was clean.
async fn apply(tools: &ToolIntegrity, exchange: &Exchange, message: &mut Value) -> (bool, bool) {
    match tools
        .inspect_message(&exchange.path, exchange.client(), message)
        .await
    {
        MessageOutcome::Clean => (false, true),
        MessageOutcome::Unchanged => (false, false),
        MessageOutcome::Rewritten => (true, false),
        MessageOutcome::Refused(error) => {
            *message = error;
            (true, false)
        }
    }
}

/// The body up to `limit` bytes; past it, what was read and the rest unread.
async fn read_up_to(mut body: Body, limit: usize) -> Result<(Bytes, Option<Body>), axum::Error> {
    let mut collected = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        if let Ok(data) = frame.into_data() {
            collected.extend_from_slice(&data);
            if collected.len() > limit {
                return Ok((collected.freeze(), Some(body)));
            }
        }
    }
    Ok((collected.freeze(), None))
}
