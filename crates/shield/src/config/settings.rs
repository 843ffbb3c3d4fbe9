//! The table of every scalar setting: its TOML path, its environment name, its kind and what it
//! does. Environment parsing, file checking, `check-config` and `docs/CONFIGURATION.md` all read
//! this one table, so a setting cannot exist in one place and be missing in another.

/// What values a setting takes; decides how an environment string is parsed and how a TOML
/// value is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `true` / `false` (environment also takes `1`/`0`, `yes`/`no`, `on`/`off`).
    Bool,
    /// A non-negative integer.
    UInt,
    /// A non-negative, finite number; fractions allowed.
    Float,
    /// A non-negative number that may be left unset (empty), in which case it is derived.
    OptFloat,
    /// Free text.
    Str,
    /// One of a fixed set of words.
    Choice(&'static [&'static str]),
    /// A list of strings; comma-separated in the environment.
    List,
}

impl Kind {
    /// Words for error messages: "expected ...".
    pub fn expectation(self) -> String {
        match self {
            Kind::Bool => "expected true or false".into(),
            Kind::UInt => "expected a non-negative integer".into(),
            Kind::Float => "expected a non-negative number".into(),
            Kind::OptFloat => "expected a non-negative number, or nothing".into(),
            Kind::Str => "expected a string".into(),
            Kind::Choice(words) => format!("expected one of {}", words.join(", ")),
            Kind::List => "expected a list of strings (comma-separated in the environment)".into(),
        }
    }
}

/// One scalar setting.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// Path in the TOML file: `key` at the top level or `section.key`.
    pub path: &'static str,
    /// Environment variable name.
    pub env: &'static str,
    /// Accepted values.
    pub kind: Kind,
    /// Redacted by `check-config` and in `status`.
    pub secret: bool,
    /// Which component reads it.
    pub component: &'static str,
    /// One sentence for the reference.
    pub doc: &'static str,
}

const fn s(
    path: &'static str,
    env: &'static str,
    kind: Kind,
    component: &'static str,
    doc: &'static str,
) -> Setting {
    Setting {
        path,
        env,
        kind,
        secret: false,
        component,
        doc,
    }
}

const fn secret(mut setting: Setting) -> Setting {
    setting.secret = true;
    setting
}

/// Every scalar setting, in the order `check-config` prints them.
#[rustfmt::skip]
pub const SETTINGS: &[Setting] = &[
    // Switches (the seed's names; all off in the library, all on in `demo`).
    s("enable_rate_limiting", "SECURITY_ENABLE_RATE_LIMITING", Kind::Bool, "rate limiting", "Turn on the token-bucket rate limiter."),
    s("enable_ddos_protection", "SECURITY_ENABLE_DDOS_PROTECTION", Kind::Bool, "ddos protection", "Turn on sliding-window DDoS protection."),
    s("enable_ip_management", "SECURITY_ENABLE_IP_MANAGEMENT", Kind::Bool, "ip management", "Turn on reputation, auto-blacklisting, GeoIP and feeds (the explicit allow/deny lists are always enforced)."),
    s("enable_threat_detection", "SECURITY_ENABLE_THREAT_DETECTION", Kind::Bool, "threat detection", "Turn on payload threat detection."),
    // Core.
    secret(s("admin_token", "SECURITY_ADMIN_TOKEN", Kind::Str, "admin api", "Bearer token for /api/security/*. Empty: the gateway generates one at start and logs it once.")),
    s("trusted_proxies", "SECURITY_TRUSTED_PROXIES", Kind::List, "core", "CIDRs or IPs of reverse proxies whose forwarding header is believed. Empty: forwarding headers are ignored."),
    s("forwarded_header", "SECURITY_FORWARDED_HEADER", Kind::Choice(&["x-forwarded-for", "forwarded"]), "core", "Which forwarding header a trusted proxy sets; only that one is read."),
    s("whitelist", "SECURITY_WHITELIST", Kind::List, "ip lists", "IPs or CIDRs that skip every guard, loaded at start."),
    s("blacklist", "SECURITY_BLACKLIST", Kind::List, "ip lists", "IPs or CIDRs refused with 403 ip_blocked, loaded at start."),
    s("whitelist_users", "SECURITY_WHITELIST_USERS", Kind::List, "rate limiting", "User ids (see user_id_header) that bypass rate limits."),
    s("user_id_header", "SECURITY_USER_ID_HEADER", Kind::Str, "core", "Header naming the user. Empty: a keyed hash of the Authorization credential."),
    s("fail_mode", "SECURITY_FAIL_MODE", Kind::Choice(&["open", "closed"]), "core", "What a guard's internal error does: let the request through (open) or refuse it with 503 (closed)."),
    s("log_format", "SECURITY_LOG_FORMAT", Kind::Choice(&["text", "json"]), "core", "Log lines as text or one JSON object per line."),
    s("log_ip_mode", "SECURITY_LOG_IP_MODE", Kind::Choice(&["plain", "hash", "mask"]), "core", "Client addresses in the security logs: as they are, as a keyed hash (ip-…, under ip_hash_key), or masked to /24 (IPv4) and /48 (IPv6)."),
    secret(s("ip_hash_key", "SECURITY_IP_HASH_KEY", Kind::Str, "core", "Key for the keyed hash of IPs and credentials. Empty: a random key per process (hashes then differ between instances and restarts).")),
    s("max_inspect_body_bytes", "SECURITY_MAX_INSPECT_BODY_BYTES", Kind::UInt, "core", "Request bodies are read for inspection up to this many bytes."),
    s("oversize_body_action", "SECURITY_OVERSIZE_BODY_ACTION", Kind::Choice(&["reject", "pass"]), "core", "A body larger than max_inspect_body_bytes: refused with 413 (reject) or forwarded with only its first bytes inspected (pass)."),
    s("data_dir", "SECURITY_DATA_DIR", Kind::Str, "ip management", "Folder where lists, temporary blocks and reputation are saved (atomically) to survive a restart, in memory mode (with Redis, Redis keeps them and this is not used). Empty: nothing is saved."),
    s("data_retention", "SECURITY_DATA_RETENTION", Kind::UInt, "ip management", "Seconds a saved reputation record is kept after its address was last seen."),
    s("ip_list_max_entries", "SECURITY_IP_LIST_MAX_ENTRIES", Kind::UInt, "ip lists", "Cap on entries per list (whitelist, blacklist); adding beyond it is refused."),
    secret(s("redis_url", "REDIS_URL", Kind::Str, "redis", "Redis for state shared by every instance (rate-limit buckets, IP lists, temporary blocks, reputation): redis://[user:password@]host[:port][/db] or rediss:// for TLS. Empty: state in memory. Needs ip_hash_key.")),
    secret(s("redis_cluster_nodes", "SECURITY_REDIS_CLUSTER_NODES", Kind::List, "redis", "A Redis Cluster instead of one server: seed nodes redis://[user:password@]host:port (or rediss://), comma-separated; the rest of the cluster is discovered from them. Rate-limit buckets share one hash slot (a decision stays one script call); lists and reputation spread over the cluster. Not with REDIS_URL. Needs ip_hash_key.")),
    s("redis_key_prefix", "SECURITY_REDIS_KEY_PREFIX", Kind::Str, "redis", "Prefix of every Redis key and channel mcp-shield uses."),
    s("redis_timeout_ms", "SECURITY_REDIS_TIMEOUT_MS", Kind::UInt, "redis", "A Redis call slower than this counts as a failure: the instance serves from local state and reconnects in the background."),
    s("geoip_database_path", "GEOIP_DATABASE_PATH", Kind::Str, "ip management", "MaxMind City or Country MMDB file (GeoLite2 or GeoIP2) for country and city; an ASN database works here too."),
    s("geoip_asn_database_path", "SECURITY_GEOIP_ASN_DATABASE_PATH", Kind::Str, "ip management", "A second MMDB file, for the ASN when the first is a City or Country database."),
    s("geoip_anonymous_database_path", "SECURITY_GEOIP_ANONYMOUS_IP_DATABASE_PATH", Kind::Str, "ip management", "A MaxMind Anonymous-IP MMDB file: Tor exits, public and residential proxies, VPNs and hosting providers start with a lower reputation (see GeoIP risk in docs/CONFIGURATION.md). Every GeoIP file is used for what its metadata says it is."),
    // Rate limiting.
    s("rate_limit.global_capacity", "SECURITY_RATE_LIMIT_GLOBAL_CAPACITY", Kind::UInt, "rate limiting", "Global bucket size."),
    s("rate_limit.global_refill_rate", "SECURITY_RATE_LIMIT_GLOBAL_REFILL_RATE", Kind::OptFloat, "rate limiting", "Global tokens per second (empty: capacity / 10)."),
    s("rate_limit.per_user_capacity", "SECURITY_RATE_LIMIT_PER_USER_CAPACITY", Kind::UInt, "rate limiting", "Bucket size per user."),
    s("rate_limit.per_user_refill_rate", "SECURITY_RATE_LIMIT_PER_USER_REFILL_RATE", Kind::OptFloat, "rate limiting", "Tokens per second per user (empty: capacity / 10)."),
    s("rate_limit.per_ip_capacity", "SECURITY_RATE_LIMIT_PER_IP_CAPACITY", Kind::UInt, "rate limiting", "Bucket size per client IP."),
    s("rate_limit.per_ip_refill_rate", "SECURITY_RATE_LIMIT_PER_IP_REFILL_RATE", Kind::OptFloat, "rate limiting", "Tokens per second per client IP (empty: capacity / 10)."),
    s("rate_limit.max_tracked_keys", "SECURITY_RATE_LIMIT_MAX_TRACKED_KEYS", Kind::UInt, "rate limiting", "Buckets kept in memory at most; full buckets are forgotten first, then those nearest to full."),
    s("rate_limit.default_rules", "SECURITY_RATE_LIMIT_DEFAULT_RULES", Kind::Bool, "rate limiting", "Apply the built-in endpoint rules (mcp-initialize: 60 initialize calls per IP, then 30 a minute)."),
    // DDoS protection.
    s("ddos.requests_per_second_threshold", "SECURITY_DDOS_REQUESTS_PER_SECOND_THRESHOLD", Kind::UInt, "ddos protection", "Requests per second per IP before blocking."),
    s("ddos.requests_per_minute_threshold", "SECURITY_DDOS_REQUESTS_PER_MINUTE_THRESHOLD", Kind::UInt, "ddos protection", "Requests per minute per IP before blocking."),
    s("ddos.concurrent_connections_limit", "SECURITY_DDOS_CONCURRENT_CONNECTIONS_LIMIT", Kind::UInt, "ddos protection", "Open TCP connections per peer address (gateway; trusted proxies exempt) and requests in flight per client address (layer; until the response body ends)."),
    s("ddos.header_timeout", "SECURITY_DDOS_HEADER_TIMEOUT", Kind::UInt, "ddos protection", "Seconds a client has to send a request head (gateway; slow-loris defence)."),
    s("ddos.block_duration", "SECURITY_DDOS_BLOCK_DURATION", Kind::UInt, "ddos protection", "Seconds an address over a rate threshold is refused; doubled for each repeat offence."),
    s("ddos.max_block_duration", "SECURITY_DDOS_MAX_BLOCK_DURATION", Kind::UInt, "ddos protection", "Longest DDoS block in seconds, however often the address offends."),
    s("ddos.emergency_rps_threshold", "SECURITY_DDOS_EMERGENCY_RPS_THRESHOLD", Kind::OptFloat, "ddos protection", "Requests per second (all clients) that start emergency mode. Empty: five times the learned calm rate, at least 200."),
    s("ddos.emergency_cooldown", "SECURITY_DDOS_EMERGENCY_COOLDOWN", Kind::UInt, "ddos protection", "Seconds in a row under the threshold before emergency mode ends."),
    s("ddos.emergency_factor", "SECURITY_DDOS_EMERGENCY_FACTOR", Kind::Float, "ddos protection", "In emergency mode the per-address thresholds are multiplied by this."),
    s("ddos.max_tracked_ips", "SECURITY_DDOS_MAX_TRACKED_IPS", Kind::UInt, "ddos protection", "Addresses whose recent traffic is kept at most; idle ones are forgotten first, blocked ones never while blocked."),
    // IP management.
    s("ip.auto_blacklist_threshold", "SECURITY_IP_AUTO_BLACKLIST_THRESHOLD", Kind::UInt, "ip management", "Reputation score (0 to 100) at or below which an IP is blocked."),
    s("ip.temp_block_duration", "SECURITY_IP_TEMP_BLOCK_DURATION", Kind::UInt, "ip management", "Seconds a temporary block lasts."),
    s("ip.geo_blocked_countries", "SECURITY_GEO_BLOCKED_COUNTRIES", Kind::List, "ip management", "ISO 3166 country codes refused with 403 ip_blocked (needs a GeoIP database)."),
    s("ip.geo_allowed_countries", "SECURITY_GEO_ALLOWED_COUNTRIES", Kind::List, "ip management", "If set, only these ISO country codes are served; addresses of unknown country are served."),
    s("ip.geo_high_risk_countries", "SECURITY_GEO_HIGH_RISK_COUNTRIES", Kind::List, "ip management", "ISO country codes whose addresses start with a reputation 10 points lower (served, but fewer bad deeds get them blocked)."),
    s("ip.max_tracked_ips", "SECURITY_IP_MAX_TRACKED_IPS", Kind::UInt, "ip management", "Addresses whose reputation is kept at most; those back at neutral go first, blocked ones never."),
    s("ip.threat_feeds", "SECURITY_THREAT_FEEDS", Kind::List, "ip management", "Threat-intelligence feeds: file paths or http(s) URLs of IP/CIDR lists (# and ; comments), optionally name=source; name@penalty=source only lowers the reputation of listed addresses instead of refusing them."),
    s("ip.threat_feed_refresh", "SECURITY_THREAT_FEED_REFRESH", Kind::UInt, "ip management", "Seconds between feed refreshes (conditional GET; a failed or >90 % shrunken refresh keeps the last good list)."),
    // Threat detection.
    s("threat_detection.block_severity", "SECURITY_THREAT_BLOCK_SEVERITY", Kind::Choice(&["low", "medium", "high", "critical"]), "threat detection", "An indicator at or above this severity blocks the request (403 threat_detected); lower ones are events that lower reputation."),
    s("threat_detection.mode", "SECURITY_THREAT_MODE", Kind::Choice(&["block", "monitor"]), "threat detection", "block refuses; monitor only logs what would have been refused (to tune a policy on live traffic)."),
    s("threat_detection.score_threshold", "SECURITY_THREAT_SCORE_THRESHOLD", Kind::Float, "threat detection", "A combined score that blocks even when no single indicator does: the sum over threat types of severity weight (low 0.1, medium 0.45, high 0.75, critical 1) times confidence. Per-tool policy ([[threat_detection.allow]]) and regex patterns ([[threat_detection.patterns]]) are set in the TOML file."),
    s("threat_detection.anomaly_threshold", "SECURITY_THREAT_ANOMALY_THRESHOLD", Kind::Float, "threat detection", "Anomaly score (0 to 1, isolation-forest scale: 0.5 is ordinary) at or above which a client gets an anomalous_behavior indicator (medium: it lowers reputation)."),
    s("threat_detection.anomaly_block", "SECURITY_THREAT_ANOMALY_BLOCK", Kind::Bool, "threat detection", "Refuse (403 threat_detected, anomalous_behavior) every request of a client whose anomaly score is at or above the threshold, instead of only lowering its reputation."),
    s("threat_detection.ml_retrain_interval", "SECURITY_THREAT_ML_RETRAIN_INTERVAL", Kind::UInt, "threat detection", "Seconds between retrainings of the anomaly model (the first training happens as soon as ml_min_clients clients are active). Scores are refreshed every few seconds in between."),
    s("threat_detection.ml_min_clients", "SECURITY_THREAT_ML_MIN_CLIENTS", Kind::UInt, "threat detection", "Clients active in the window (with at least 3 requests) before the anomaly model is first trained."),
    s("threat_detection.ml_window", "SECURITY_THREAT_ML_WINDOW", Kind::UInt, "threat detection", "Seconds of behaviour each client's features cover (a sliding window)."),
    s("threat_detection.ml_max_clients", "SECURITY_THREAT_ML_MAX_CLIENTS", Kind::UInt, "threat detection", "Clients (addresses and users) whose behaviour is tracked at most; the least recently seen give way (about 500 bytes each, reserved at start and resident once used)."),
    // MCP protocol checks.
    s("mcp.paths", "SECURITY_MCP_PATHS", Kind::List, "mcp", "Paths of the MCP endpoint (exact, or a prefix ending in *): a POST there must be JSON-RPC, answered with a JSON-RPC error (400) when it is not."),
    s("mcp.allowed_origins", "SECURITY_MCP_ALLOWED_ORIGINS", Kind::List, "mcp", "Origins a browser may send (scheme://host[:port]; without a port, any port; * for any). A request with another Origin gets 403 (DNS-rebinding protection). Empty: no check, except that the gateway listening on a loopback address allows only loopback origins."),
    s("mcp.max_sessions_per_client", "SECURITY_MCP_MAX_SESSIONS_PER_CLIENT", Kind::UInt, "mcp", "MCP sessions (Mcp-Session-Id) one client (its user when identified, else its address) may have open; at the cap an initialize or an unknown session id gets 429 until one ends (DELETE) or idles out. 0: no cap."),
    s("mcp.session_idle_timeout", "SECURITY_MCP_SESSION_IDLE_TIMEOUT", Kind::UInt, "mcp", "Seconds after which a session not used stops counting towards the cap."),
    s("mcp.allowed_hosts", "SECURITY_MCP_ALLOWED_HOSTS", Kind::List, "mcp", "Host header values accepted (host[:port]; without a port, any port; * for any); others get 403. Empty: no check, except that the gateway listening on a loopback address allows only loopback names."),
    s("mcp.tools.inspect", "SECURITY_MCP_TOOLS_INSPECT", Kind::Bool, "mcp", "Read responses on MCP paths (JSON, and event streams event by event): tool, prompt and resource lists are checked for poisoned definitions, tool definitions pinned, and access rules ([[mcp.tools.access]] in the TOML file) applied."),
    s("mcp.tools.on_change", "SECURITY_MCP_TOOLS_ON_CHANGE", Kind::Choice(&["block", "alert"]), "mcp", "A pinned tool whose definition changed (a rug pull): block removes it from tools/list and refuses its calls until an operator approves it (POST /api/security/tools/approve); alert passes it and logs tool_changed."),
    s("mcp.tools.on_new", "SECURITY_MCP_TOOLS_ON_NEW", Kind::Choice(&["block", "alert"]), "mcp", "A tool that appears after the upstream's tools were first listed: block holds it like a change; alert pins it and logs it."),
    s("mcp.tools.on_poisoning", "SECURITY_MCP_TOOLS_ON_POISONING", Kind::Choice(&["block", "refuse", "alert"]), "mcp", "A poisoned definition (tool_poisoning): block removes it from the list and refuses its calls; refuse answers the whole list with a JSON-RPC error; alert passes it and logs it."),
    s("mcp.tools.pin_file", "SECURITY_MCP_TOOLS_PIN_FILE", Kind::Str, "mcp", "A pin file (JSON, as GET /api/security/tools?format=pins writes it) loaded at start: the operator's reviewed tool definitions. Tools it does not hold are new; different ones are changes."),
    s("mcp.tools.upstream_name", "SECURITY_MCP_TOOLS_UPSTREAM_NAME", Kind::Str, "mcp", "Names the upstream in pins (with the MCP path). Empty: the gateway's upstream URL; local in the library."),
    s("mcp.tools.max_pinned", "SECURITY_MCP_TOOLS_MAX_PINNED", Kind::UInt, "mcp", "Tools pinned at most over every upstream; a tool seen when the book is full is held as new."),
    s("mcp.tools.max_definition_bytes", "SECURITY_MCP_TOOLS_MAX_DEFINITION_BYTES", Kind::UInt, "mcp", "A tool, prompt or resource definition with more text than this is flagged unusual_length (tool_poisoning)."),
    s("mcp.tools.max_response_bytes", "SECURITY_MCP_TOOLS_MAX_RESPONSE_BYTES", Kind::UInt, "mcp", "A JSON response or stream event on an MCP path is read up to this many bytes; a larger one passes unread (logged)."),
    s("mcp.results.inspect", "SECURITY_MCP_RESULTS_INSPECT", Kind::Bool, "mcp", "Read what tools return (tools/call results, resources/read contents, prompts/get messages; JSON and event streams, event by event) for secrets, personal data, injected instructions and size, and tool-call arguments for secrets."),
    s("mcp.results.secrets", "SECURITY_MCP_RESULTS_SECRETS", Kind::Choice(&["redact", "block", "alert", "off"]), "mcp", "A credential in a result (threat type secret): redact replaces it with [REDACTED:<family>] and notes it in the result's _meta; block answers with a JSON-RPC error naming the finding types; alert passes it and logs it."),
    s("mcp.results.personal_data", "SECURITY_MCP_RESULTS_PERSONAL_DATA", Kind::Choice(&["redact", "block", "alert", "off"]), "mcp", "Personal data in a result (personal_data: email, phone, payment_card, iban, national_id): redact, block, alert or off."),
    s("mcp.results.prompt_injection", "SECURITY_MCP_RESULTS_PROMPT_INJECTION", Kind::Choice(&["block", "alert", "off"]), "mcp", "Instructions injected into a result (prompt_injection): block answers with a JSON-RPC error; alert passes it (wrapped when wrap_untrusted is set) and logs it."),
    s("mcp.results.wrap_untrusted", "SECURITY_MCP_RESULTS_WRAP_UNTRUSTED", Kind::Bool, "mcp", "A result holding an injection that passes has its text items wrapped in <untrusted-tool-output> markers, so the model reads it as data."),
    s("mcp.results.arguments", "SECURITY_MCP_RESULTS_ARGUMENTS", Kind::Choice(&["block", "alert", "off"]), "mcp", "A credential in a tool call's arguments (a client sending a secret to a tool): block refuses the call with a JSON-RPC error; alert passes it and logs it."),
    s("mcp.results.ignore_families", "SECURITY_MCP_RESULTS_IGNORE_FAMILIES", Kind::List, "mcp", "Finding families not looked for: a secret family (aws, github, jwt, gcp_api_key, ...) or a personal-data type (email, phone, payment_card, iban, national_id)."),
    s("mcp.results.max_result_bytes", "SECURITY_MCP_RESULTS_MAX_RESULT_BYTES", Kind::UInt, "mcp", "A result larger than this many bytes (output_too_large) is truncated or refused (oversize); 0: no cap. Per tool with [[mcp.results.tool]]."),
    s("mcp.results.oversize", "SECURITY_MCP_RESULTS_OVERSIZE", Kind::Choice(&["truncate", "refuse"]), "mcp", "A result over max_result_bytes: truncate cuts its text to the cap with a note; refuse answers with a JSON-RPC error."),
    // Admission to the upstream (overload protection; with DDoS protection on).
    s("upstream.admission", "SECURITY_UPSTREAM_ADMISSION", Kind::Bool, "overload protection", "Limit the requests in flight to the upstream to what it can serve (learned from its latency unless max_concurrency is set); beyond it requests wait in a priority queue (known clients first) and are then refused with 503 overloaded. Needs DDoS protection on."),
    s("upstream.max_concurrency", "SECURITY_UPSTREAM_MAX_CONCURRENCY", Kind::UInt, "overload protection", "A fixed limit on requests in flight to the upstream. 0: learned from the upstream's latency, between min_concurrency and concurrency_ceiling."),
    s("upstream.min_concurrency", "SECURITY_UPSTREAM_MIN_CONCURRENCY", Kind::UInt, "overload protection", "The learned limit never goes below this."),
    s("upstream.concurrency_ceiling", "SECURITY_UPSTREAM_CONCURRENCY_CEILING", Kind::UInt, "overload protection", "The learned limit never goes above this."),
    s("upstream.queue_length", "SECURITY_UPSTREAM_QUEUE_LENGTH", Kind::UInt, "overload protection", "Requests that may wait for a free slot at once; a better-placed arrival pushes out the newest of the worst-placed. 0: no queue, refuse at once."),
    s("upstream.queue_wait_ms", "SECURITY_UPSTREAM_QUEUE_WAIT_MS", Kind::UInt, "overload protection", "Milliseconds a request may wait in the queue before it is refused with 503 overloaded."),
    s("upstream.max_known_users", "SECURITY_UPSTREAM_MAX_KNOWN_USERS", Kind::UInt, "overload protection", "Authenticated users whose first request time is kept (to admit users seen before an overload first); the least recently seen give way."),
    // JSON body limits.
    s("json.max_depth", "SECURITY_JSON_MAX_DEPTH", Kind::UInt, "core", "JSON bodies (MCP paths, inspected JSON) nested deeper than this are refused with 400 and a JSON-RPC error (-32600). 0: no limit."),
    s("json.max_array_items", "SECURITY_JSON_MAX_ARRAY_ITEMS", Kind::UInt, "core", "Elements one JSON array may have. 0: no limit."),
    s("json.max_object_keys", "SECURITY_JSON_MAX_OBJECT_KEYS", Kind::UInt, "core", "Keys one JSON object may have. 0: no limit."),
    s("json.max_batch", "SECURITY_JSON_MAX_BATCH", Kind::UInt, "core", "Messages one JSON-RPC batch (a top-level array on an MCP path) may have. 0: no limit."),
    s("json.max_string_bytes", "SECURITY_JSON_MAX_STRING_BYTES", Kind::UInt, "core", "Bytes one JSON string may have (as written). 0: no limit."),
    // The gateway binary: TLS, the admin listener, the upstream's TLS.
    s("gateway.tls_cert_file", "SECURITY_TLS_CERT_FILE", Kind::Str, "gateway", "PEM certificate chain for HTTPS on the listener (with tls_key_file; HTTP/1.1 and HTTP/2 by ALPN). Re-read on SIGHUP. Empty: plain HTTP. The --tls-cert flag sets it."),
    s("gateway.tls_key_file", "SECURITY_TLS_KEY_FILE", Kind::Str, "gateway", "PEM private key of that certificate (PKCS#8, RSA or SEC1 EC; RSA, ECDSA or Ed25519). The --tls-key flag sets it."),
    s("gateway.admin_listen", "SECURITY_ADMIN_LISTEN", Kind::Str, "gateway", "Address (host:port) of a second listener serving the admin API, /metrics and the dashboard; the public listener then forwards every path, /api/security/* included, to the upstream, and answers only /health and /ready itself. Empty: one listener serves both. The --admin-listen flag sets it."),
    s("gateway.upstream_ca_file", "SECURITY_UPSTREAM_CA_FILE", Kind::Str, "gateway", "PEM certificates of a private CA trusted for an https upstream, besides the system's roots."),
    s("gateway.upstream_client_cert_file", "SECURITY_UPSTREAM_CLIENT_CERT_FILE", Kind::Str, "gateway", "PEM client certificate chain presented to an https upstream (mutual TLS), with upstream_client_key_file."),
    s("gateway.upstream_client_key_file", "SECURITY_UPSTREAM_CLIENT_KEY_FILE", Kind::Str, "gateway", "PEM private key of the upstream client certificate."),
];

/// Finds a setting by TOML path, environment name, or environment name without `SECURITY_`
/// (the seed's override keys: `ENABLE_RATE_LIMITING`, `RATE_LIMIT_GLOBAL_CAPACITY`).
pub fn find(name: &str) -> Option<&'static Setting> {
    let upper = name.to_ascii_uppercase();
    SETTINGS.iter().find(|s| {
        s.path == name || s.env == upper || s.env.strip_prefix("SECURITY_") == Some(upper.as_str())
    })
}

/// Tables of the TOML file.
pub const SECTIONS: &[&str] = &[
    "rate_limit",
    "ddos",
    "ip",
    "threat_detection",
    "mcp",
    "upstream",
    "json",
    "gateway",
];

/// The settings table in Markdown (for `docs/CONFIGURATION.md`): environment name, TOML
/// key, default, component, meaning.
pub fn reference_markdown() -> String {
    let defaults = toml::Value::try_from(super::Config::default()).ok();
    let default_of = |setting: &Setting| -> String {
        let mut node = defaults.as_ref();
        for part in setting.path.split('.') {
            node = node.and_then(|n| n.get(part));
        }
        match (node, setting.kind) {
            (None, Kind::OptFloat) => "capacity / 10".to_string(),
            (None, _) => "(unset)".to_string(),
            (Some(toml::Value::String(s)), _) if s.is_empty() => "(empty)".to_string(),
            (Some(toml::Value::Array(a)), _) if a.is_empty() => "(empty)".to_string(),
            (Some(toml::Value::String(s)), _) => format!("`{s}`"),
            (Some(v), _) => format!("`{v}`"),
        }
    };
    let mut out = String::from(
        "| environment | TOML key | default | component | meaning |\n| --- | --- | --- | --- | --- |\n",
    );
    for setting in SETTINGS {
        let (section, key) = match setting.path.rsplit_once('.') {
            Some((section, key)) => (format!("[{section}] "), key),
            None => (String::new(), setting.path),
        };
        let mut meaning = setting.doc.to_string();
        if let Kind::Choice(words) = setting.kind {
            meaning.push_str(&format!(" One of: {}.", words.join(", ")));
        }
        if setting.secret {
            meaning.push_str(" Secret: redacted by check-config and status.");
        }
        out.push_str(&format!(
            "| `{}` | {}`{}` | {} | {} | {} |\n",
            setting.env,
            section,
            key,
            default_of(setting),
            setting.component,
            meaning
        ));
    }
    out
}
