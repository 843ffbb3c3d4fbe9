//! [`RequestFacts`]: what the guards need to know about a request, worked out once.

use std::hash::Hasher;
use std::net::{IpAddr, Ipv4Addr};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::request::Parts;
use http::{HeaderMap, Method, Uri};
use ipnet::IpNet;
use serde::Deserialize;

use crate::config::ForwardedHeader;

/// Who the user is, when the request says.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UserId {
    /// The value of the configured user-id header.
    Header(String),
    /// A keyed hash of the `Authorization` credential: the credential itself is never kept.
    Credential(u64),
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UserId::Header(name) => write!(f, "{name}"),
            UserId::Credential(hash) => write!(f, "cred:{hash:016x}"),
        }
    }
}

/// A JSON-RPC request id: a number or a string.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum JsonRpcId {
    /// `"id": 7`
    Number(i64),
    /// `"id": "abc"`
    String(String),
}

/// One JSON-RPC message in the body (an MCP request, notification or response).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JsonRpcMessage {
    /// `method`, absent on responses.
    pub method: Option<String>,
    /// `params.name` (the tool of `tools/call`, the prompt of `prompts/get`).
    pub name: Option<String>,
    /// `params.uri` (the resource of `resources/read`).
    pub uri: Option<String>,
    /// `id`, absent on notifications.
    pub id: Option<JsonRpcId>,
}

impl JsonRpcMessage {
    /// The tool name, when this is a `tools/call`.
    pub fn tool(&self) -> Option<&str> {
        match self.method.as_deref() {
            Some("tools/call") => self.name.as_deref(),
            _ => None,
        }
    }
}

/// What the body turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyKind {
    /// No body, or one not read for inspection.
    #[default]
    None,
    /// JSON-RPC: one message or a batch.
    JsonRpc,
    /// Valid JSON that is not JSON-RPC.
    Json,
    /// Declared JSON but does not parse.
    InvalidJson,
    /// Some other content type, read for inspection.
    Other,
}

/// Facts about one request, built once by the layer and read by every guard.
#[derive(Debug)]
pub struct RequestFacts {
    /// The client: the TCP peer, or from the forwarding header when the peer is a trusted
    /// proxy.
    pub client_ip: IpAddr,
    /// The TCP peer, when the server said (axum's `ConnectInfo<SocketAddr>`).
    pub peer_ip: Option<IpAddr>,
    /// The user, when identified.
    pub user: Option<UserId>,
    /// HTTP method.
    pub method: Method,
    /// Request target.
    pub uri: Uri,
    /// Request headers (empty once the request has been forwarded, see
    /// [`RequestFacts::restore_headers`]).
    pub headers: HeaderMap,
    /// The body as read for inspection (up to the inspection limit).
    pub body: Bytes,
    /// False when the body was larger than the inspection limit and only its start is in
    /// `body`.
    pub body_complete: bool,
    /// What the body is.
    pub body_kind: BodyKind,
    /// JSON-RPC messages in the body, in order (one unless it was a batch).
    pub json_rpc: Vec<JsonRpcMessage>,
    /// Whether the body was a JSON-RPC batch (an array).
    pub json_rpc_batch: bool,
    /// `Mcp-Session-Id`.
    pub mcp_session_id: Option<String>,
    /// A hash of the `User-Agent` (0 without one): for behavioural analysis, which runs after
    /// the headers have gone upstream.
    pub user_agent_hash: u64,
    /// Findings of the application hosting the layer (the request extension [`HostFindings`]).
    pub host_findings: Vec<HostFinding>,
}

/// Findings about a request made before it reached the layer by the application hosting it:
/// the Python package's custom patterns (`@threat_detector.add_pattern`), which run in the
/// interpreter. Attached to the request as an extension; the threat guard counts each like a
/// finding of its own (same threshold, same events, same 403). Only code in the process can
/// attach one: a client cannot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostFindings(pub Vec<HostFinding>);

/// One finding of the hosting application.
#[derive(Debug, Clone, PartialEq)]
pub struct HostFinding {
    /// The threat type: a built-in name (`sql_injection`) or the custom pattern's name.
    pub threat_type: String,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: String,
    /// How sure, 0 to 1.
    pub confidence: f32,
    /// Where (`custom:<pattern>` when the application does not say).
    pub location: String,
    /// What was seen, shown in events and logs.
    pub snippet: String,
}

/// How to find the client and the user; from the configuration.
#[derive(Debug, Clone)]
pub struct IdentityRules {
    /// Peers whose forwarding header is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Which header they set.
    pub forwarded_header: ForwardedHeader,
    /// Header that names the user, if any.
    pub user_id_header: Option<http::HeaderName>,
    /// Key for hashing credentials.
    pub hash_key: (u64, u64),
}

impl RequestFacts {
    /// Works out the facts from the request head and the inspected body prefix. The headers
    /// move into the facts (no copy); [`RequestFacts::restore_headers`] gives them back before
    /// the request is forwarded.
    pub fn build(
        parts: &mut Parts,
        body: Bytes,
        body_complete: bool,
        peer_ip: Option<IpAddr>,
        rules: &IdentityRules,
    ) -> RequestFacts {
        let headers = std::mem::take(&mut parts.headers);
        let peer = peer_ip.map(|ip| ip.to_canonical());
        let client_ip = match peer {
            Some(peer) => client_ip(peer, &headers, rules),
            // Without a peer address (a server that does not provide ConnectInfo) the client
            // is unknown; forwarding headers are not believed from nobody.
            None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        let user = user_id(&headers, rules);
        let mcp_session_id = headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let user_agent_hash = headers.get(http::header::USER_AGENT).map_or(0, |v| {
            let mut h = rustc_hash::FxHasher::default();
            h.write(v.as_bytes());
            h.finish().max(1)
        });
        let mut facts = RequestFacts {
            client_ip,
            peer_ip: peer,
            user,
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            headers,
            body,
            body_complete,
            body_kind: BodyKind::None,
            json_rpc: Vec::new(),
            json_rpc_batch: false,
            mcp_session_id,
            user_agent_hash,
            host_findings: parts
                .extensions
                .remove::<HostFindings>()
                .map(|h| h.0)
                .unwrap_or_default(),
        };
        facts.read_body();
        facts
    }

    /// Moves the headers back into the request head; afterwards `self.headers` is empty.
    pub fn restore_headers(&mut self, parts: &mut Parts) {
        parts.headers = std::mem::take(&mut self.headers);
    }

    /// The request path.
    pub fn path(&self) -> &str {
        self.uri.path()
    }

    /// The first JSON-RPC method in the body.
    pub fn mcp_method(&self) -> Option<&str> {
        self.json_rpc.first().and_then(|m| m.method.as_deref())
    }

    /// The first tool called in the body.
    pub fn mcp_tool(&self) -> Option<&str> {
        self.json_rpc.iter().find_map(JsonRpcMessage::tool)
    }

    fn read_body(&mut self) {
        if self.body.is_empty() {
            return;
        }
        if !is_json(&self.headers) {
            self.body_kind = BodyKind::Other;
            return;
        }
        if !self.body_complete {
            // Half a JSON document says nothing reliable.
            self.body_kind = BodyKind::InvalidJson;
            return;
        }
        match parse_json_rpc(&self.body) {
            ParsedJson::JsonRpc { messages, batch } => {
                self.body_kind = BodyKind::JsonRpc;
                self.json_rpc = messages;
                self.json_rpc_batch = batch;
            }
            ParsedJson::Other => self.body_kind = BodyKind::Json,
            ParsedJson::Invalid => self.body_kind = BodyKind::InvalidJson,
        }
    }
}

/// Whether the content type is JSON (`application/json`, `application/*+json`).
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            let essence = v
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            essence == "application/json" || essence.ends_with("+json")
        })
        .unwrap_or(false)
}

/// The client address: the peer, unless the peer is a trusted proxy, in which case the
/// forwarding header is walked from the right (the hop nearest us) past every trusted proxy;
/// the first untrusted address is the client. The left part of the header is whatever the
/// client wrote and is never believed.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, rules: &IdentityRules) -> IpAddr {
    let trusted = |ip: &IpAddr| rules.trusted_proxies.iter().any(|n| n.contains(ip));
    if rules.trusted_proxies.is_empty() || !trusted(&peer) {
        return peer;
    }
    let hops: Vec<Option<IpAddr>> = match rules.forwarded_header {
        ForwardedHeader::XForwardedFor => headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(parse_node)
            .collect(),
        ForwardedHeader::Forwarded => headers
            .get_all("forwarded")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(split_forwarded_elements)
            .map(|element| forwarded_for(element).and_then(parse_node_opt))
            .collect(),
    };
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        match hop {
            Some(ip) => {
                client = ip.to_canonical();
                if !trusted(&client) {
                    return client;
                }
            }
            // An unreadable hop ("unknown", an obfuscated name, garbage): nothing left of it
            // can be believed, so the last trusted hop stands.
            None => return client,
        }
    }
    client
}

fn parse_node_opt(text: &str) -> Option<IpAddr> {
    parse_node(text)
}

/// `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:443`.
fn parse_node(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = text.strip_prefix('[') {
        let end = rest.find(']')?;
        return rest[..end].parse().ok();
    }
    let (host, port) = text.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// RFC 7239 elements are separated by commas outside quoted strings.
fn split_forwarded_elements(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&value[start..]);
    out
}

/// The `for=` parameter of one `Forwarded` element.
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| value.trim())
    })
}

fn user_id(headers: &HeaderMap, rules: &IdentityRules) -> Option<UserId> {
    if let Some(name) = &rules.user_id_header {
        if let Some(value) = headers.get(name).and_then(|v| v.to_str().ok()) {
            let value = value.trim();
            if !value.is_empty() {
                return Some(UserId::Header(value.to_string()));
            }
        }
    }
    let value = headers.get(AUTHORIZATION)?.as_bytes();
    let credential = match value.split_first_chunk::<7>() {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case(b"bearer ") => rest,
        _ => value,
    };
    let credential = credential.trim_ascii();
    if credential.is_empty() {
        return None;
    }
    Some(UserId::Credential(keyed_hash(rules.hash_key, credential)))
}

/// SipHash-1-3 with a 128-bit key: a keyed PRF, so the hash of a credential or an address
/// reveals nothing without the key, and costs tens of nanoseconds.
pub fn keyed_hash(key: (u64, u64), data: &[u8]) -> u64 {
    let mut hasher = siphasher::sip::SipHasher13::new_with_keys(key.0, key.1);
    hasher.write(data);
    hasher.finish()
}

/// The keyed hash of an address (IPv4-mapped IPv6 hashed as the IPv4 address): the one way
/// addresses are hashed for logs, Redis keys and saved reputation, so they agree.
pub fn keyed_ip_hash(key: (u64, u64), ip: IpAddr) -> u64 {
    match ip.to_canonical() {
        IpAddr::V4(v4) => keyed_hash(key, &v4.octets()),
        IpAddr::V6(v6) => keyed_hash(key, &v6.octets()),
    }
}

#[derive(Deserialize)]
struct RawMessage<'a> {
    #[serde(borrow, default)]
    method: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    id: Option<RawId>,
    #[serde(borrow, default)]
    params: Option<RawParams<'a>>,
    #[serde(default)]
    jsonrpc: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    result: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawId {
    Number(i64),
    String(String),
    Other(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
struct RawParams<'a> {
    #[serde(borrow, default)]
    name: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    uri: Option<std::borrow::Cow<'a, str>>,
}

/// What a JSON body turned out to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedJson {
    /// Not JSON at all.
    Invalid,
    /// JSON, but not JSON-RPC.
    Other,
    /// JSON-RPC messages; `batch` when the body was an array of them.
    JsonRpc {
        /// The messages in order.
        messages: Vec<JsonRpcMessage>,
        /// Whether they came as a batch.
        batch: bool,
    },
}

/// Reads JSON-RPC messages from a body.
pub fn parse_json_rpc(body: &[u8]) -> ParsedJson {
    // The first byte says which shape to try, so the body is parsed once, straight into the
    // few fields wanted (serde skips `arguments` and the rest without building them). Only
    // when that fails is it parsed again, to tell "not JSON" from "JSON of another shape".
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let parsed = match first {
        Some(b'{') => serde_json::from_slice::<RawMessage<'_>>(body).map(|m| vec![m]),
        Some(b'[') => serde_json::from_slice::<Vec<RawMessage<'_>>>(body),
        _ => {
            return match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                Ok(_) => ParsedJson::Other,
                Err(_) => ParsedJson::Invalid,
            }
        }
    };
    let Ok(messages) = parsed else {
        return match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            Ok(_) => ParsedJson::Other,
            Err(_) => ParsedJson::Invalid,
        };
    };
    let batch = first == Some(&b'[');
    let convert = |m: &RawMessage<'_>| JsonRpcMessage {
        method: m.method.as_deref().map(str::to_string),
        name: m
            .params
            .as_ref()
            .and_then(|p| p.name.as_deref())
            .map(str::to_string),
        uri: m
            .params
            .as_ref()
            .and_then(|p| p.uri.as_deref())
            .map(str::to_string),
        id: match &m.id {
            Some(RawId::Number(n)) => Some(JsonRpcId::Number(*n)),
            Some(RawId::String(s)) => Some(JsonRpcId::String(s.clone())),
            _ => None,
        },
    };
    let is_rpc = |m: &RawMessage<'_>| {
        m.jsonrpc.is_some() && (m.method.is_some() || m.result.is_some() || m.error.is_some())
    };
    if messages.is_empty() || !messages.iter().all(is_rpc) {
        return ParsedJson::Other;
    }
    ParsedJson::JsonRpc {
        messages: messages.iter().map(convert).collect(),
        batch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(trusted: &[&str], header: ForwardedHeader) -> IdentityRules {
        IdentityRules {
            trusted_proxies: trusted.iter().map(|s| s.parse().expect("cidr")).collect(),
            forwarded_header: header,
            user_id_header: None,
            hash_key: (1, 2),
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn forwarding_headers_are_ignored_without_trusted_proxies() {
        let h = headers(&[("x-forwarded-for", "9.9.9.9")]);
        let r = rules(&[], ForwardedHeader::XForwardedFor);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &r), ip("10.0.0.1"));
    }

    #[test]
    fn untrusted_peer_cannot_forward() {
        let h = headers(&[("x-forwarded-for", "9.9.9.9")]);
        let r = rules(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        assert_eq!(client_ip(ip("192.0.2.1"), &h, &r), ip("192.0.2.1"));
    }

    #[test]
    fn rightmost_untrusted_address_is_the_client() {
        // The client forged 6.6.6.6; the proxies appended the real 203.0.113.7 and 10.0.0.2.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6, 203.0.113.7"),
            ("x-forwarded-for", "10.0.0.2"),
        ]);
        let r = rules(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &r), ip("203.0.113.7"));
    }

    #[test]
    fn all_trusted_hops_leave_the_leftmost() {
        let h = headers(&[("x-forwarded-for", "10.0.0.9, 10.0.0.2")]);
        let r = rules(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &r), ip("10.0.0.9"));
    }

    #[test]
    fn garbage_hop_stops_the_walk() {
        let h = headers(&[("x-forwarded-for", "203.0.113.7, nonsense")]);
        let r = rules(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &r), ip("10.0.0.1"));
    }

    #[test]
    fn rfc7239_forwarded_with_ports_and_ipv6() {
        let h = headers(&[(
            "forwarded",
            "for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\";proto=https, for=10.0.0.2",
        )]);
        let r = rules(&["10.0.0.0/8"], ForwardedHeader::Forwarded);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &r), ip("2001:db8:cafe::17"));
        // The X-Forwarded-For header is not read when Forwarded is configured.
        let h = headers(&[("x-forwarded-for", "6.6.6.6")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &r), ip("10.0.0.1"));
        let h = headers(&[("forwarded", "for=192.0.2.60:8080;by=10.0.0.1")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &r), ip("192.0.2.60"));
    }

    #[test]
    fn users_from_header_or_hashed_credential() {
        let mut r = rules(&[], ForwardedHeader::XForwardedFor);
        let h = headers(&[("authorization", "Bearer abc")]);
        let id = user_id(&h, &r).expect("user");
        assert_eq!(id, UserId::Credential(keyed_hash((1, 2), b"abc")));
        assert_ne!(
            user_id(&headers(&[("authorization", "Bearer abd")]), &r),
            Some(id)
        );
        assert_eq!(user_id(&headers(&[]), &r), None);
        r.user_id_header = Some(http::HeaderName::from_static("x-user"));
        let h = headers(&[("x-user", "alice"), ("authorization", "Bearer abc")]);
        assert_eq!(user_id(&h, &r), Some(UserId::Header("alice".into())));
    }

    #[test]
    fn json_rpc_single_batch_and_other() {
        let single = br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"add","arguments":{"a":1}}}"#;
        let ParsedJson::JsonRpc {
            messages: msgs,
            batch,
        } = parse_json_rpc(single)
        else {
            panic!("not JSON-RPC")
        };
        assert!(!batch);
        assert_eq!(msgs[0].tool(), Some("add"));
        assert_eq!(msgs[0].id, Some(JsonRpcId::Number(3)));
        let many = br#"[{"jsonrpc":"2.0","id":"a","method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"}]"#;
        let ParsedJson::JsonRpc {
            messages: msgs,
            batch,
        } = parse_json_rpc(many)
        else {
            panic!("not JSON-RPC")
        };
        assert!(batch);
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0].id, Some(JsonRpcId::String("a".into())));
        assert_eq!(msgs[1].id, None);
        assert_eq!(parse_json_rpc(br#"{"hello":"world"}"#), ParsedJson::Other);
        assert_eq!(parse_json_rpc(br#"[]"#), ParsedJson::Other);
        assert_eq!(parse_json_rpc(b"{not json"), ParsedJson::Invalid);
        assert_eq!(parse_json_rpc(b"\xff\xfe"), ParsedJson::Invalid);
    }
}
