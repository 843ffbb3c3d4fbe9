//! Configuration: built-in defaults < TOML file < environment < overrides (flags or the library's
//! [`ConfigOverrides`]).
//!
//! Every scalar setting is listed once in [`settings::SETTINGS`] with its TOML path and its
//! environment name (the seed's `SECURITY_*` names, `REDIS_URL`, `GEOIP_DATABASE_PATH`). The
//! TOML file uses the same names in lower case without the prefix, grouped by component:
//! `SECURITY_RATE_LIMIT_GLOBAL_CAPACITY` is `global_capacity` under `[rate_limit]`.
//! [`load`] collects every problem (the key, the value, what was expected) instead of stopping
//! at the first, and never falls back to a default silently.

mod load;
mod overrides;
pub mod reload;
pub mod settings;

pub use load::{load, ConfigError, ConfigProblem, ConfigSources};
pub use overrides::{ConfigOverrides, OverrideValue};
pub use settings::SECTIONS;

use serde::{Deserialize, Serialize};

/// Which forwarding header a trusted proxy sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client;proto=https, for=proxy1`
    Forwarded,
}

/// What a guard's internal error does to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Let the request through (the seed's "fail-open on component errors").
    #[default]
    Open,
    /// Refuse it with 503.
    Closed,
}

/// Log line format for the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// What a request body larger than the inspection limit gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OversizeBodyAction {
    /// 413 `payload_too_large`: nothing reaches the upstream uninspected (ModSecurity's
    /// `SecRequestBodyLimitAction Reject`).
    #[default]
    Reject,
    /// Forward it; only the first `max_inspect_body_bytes` were inspected.
    Pass,
}

/// The effective configuration. Build it with [`load`]; [`Config::default`] is the library's
/// defaults (every component off, as in the seed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub enable_rate_limiting: bool,
    pub enable_ddos_protection: bool,
    pub enable_ip_management: bool,
    pub enable_threat_detection: bool,
    pub admin_token: String,
    pub trusted_proxies: Vec<String>,
    pub forwarded_header: ForwardedHeader,
    pub whitelist: Vec<String>,
    pub blacklist: Vec<String>,
    pub whitelist_users: Vec<String>,
    pub user_id_header: String,
    pub fail_mode: FailMode,
    pub log_format: LogFormat,
    pub log_ip_mode: String,
    pub ip_hash_key: String,
    pub max_inspect_body_bytes: u64,
    pub oversize_body_action: OversizeBodyAction,
    pub ip_list_max_entries: u64,
    pub data_dir: String,
    pub data_retention: u64,
    pub redis_url: String,
    pub redis_cluster_nodes: Vec<String>,
    pub redis_key_prefix: String,
    pub redis_timeout_ms: u64,
    pub geoip_database_path: String,
    pub geoip_asn_database_path: String,
    pub geoip_anonymous_database_path: String,
    pub rate_limit: RateLimitConfig,
    pub ddos: DdosConfig,
    pub ip: IpConfig,
    pub threat_detection: ThreatDetectionConfig,
    pub mcp: McpConfig,
    pub upstream: UpstreamConfig,
    pub json: JsonConfig,
    pub gateway: GatewayConfig,
}

/// `[gateway]`: what the gateway binary listens with and how it reaches the upstream. The
/// library (a tower layer in someone else's app) does not read these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// PEM certificate chain of the HTTPS listener (empty: plain HTTP).
    pub tls_cert_file: String,
    /// PEM private key of that certificate (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub tls_key_file: String,
    /// A second listener for the admin API and `/metrics`; empty: they share the public one.
    pub admin_listen: String,
    /// PEM certificates of a private CA trusted for an https upstream, beside the system's.
    pub upstream_ca_file: String,
    /// PEM client certificate chain presented to an https upstream.
    pub upstream_client_cert_file: String,
    /// PEM private key of that client certificate.
    pub upstream_client_key_file: String,
}

/// `[upstream]`: how many requests the upstream (the service behind the layer) works on at
/// once, and who waits when it is full (with DDoS protection on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Limit requests in flight to the upstream and queue or shed the rest.
    pub admission: bool,
    /// A fixed limit; 0: learned from the upstream's latency.
    pub max_concurrency: u64,
    /// Floor of the learned limit.
    pub min_concurrency: u64,
    /// Ceiling of the learned limit.
    pub concurrency_ceiling: u64,
    /// Requests that may wait for a free slot at once.
    pub queue_length: u64,
    /// Milliseconds a request may wait in the queue.
    pub queue_wait_ms: u64,
    /// Users and addresses whose first request time is kept to tell known clients from new
    /// ones (users; addresses are DDoS protection's table).
    pub max_known_users: u64,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            admission: true,
            max_concurrency: 0,
            min_concurrency: 4,
            concurrency_ceiling: 1000,
            queue_length: 128,
            queue_wait_ms: 500,
            max_known_users: 65_536,
        }
    }
}

/// `[json]`: limits on the shape of JSON request bodies (MCP paths and inspected JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JsonConfig {
    pub max_depth: u64,
    pub max_array_items: u64,
    pub max_object_keys: u64,
    pub max_batch: u64,
    pub max_string_bytes: u64,
}

impl Default for JsonConfig {
    fn default() -> Self {
        let d = crate::json_limits::JsonLimits::default();
        JsonConfig {
            max_depth: d.max_depth,
            max_array_items: d.max_array_items,
            max_object_keys: d.max_object_keys,
            max_batch: d.max_batch,
            max_string_bytes: d.max_string_bytes,
        }
    }
}

impl JsonConfig {
    /// The limits the checker uses.
    pub fn limits(&self) -> crate::json_limits::JsonLimits {
        crate::json_limits::JsonLimits {
            max_depth: self.max_depth,
            max_array_items: self.max_array_items,
            max_object_keys: self.max_object_keys,
            max_batch: self.max_batch,
            max_string_bytes: self.max_string_bytes,
        }
    }
}

/// `[mcp]`: checks of the MCP protocol itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct McpConfig {
    /// Paths of the MCP endpoint (exact, or a prefix ending in `*`).
    pub paths: Vec<String>,
    /// Origins allowed (empty: no check).
    pub allowed_origins: Vec<String>,
    /// Host header values allowed (empty: no check).
    pub allowed_hosts: Vec<String>,
    /// Sessions one client address may have open (0: no cap).
    pub max_sessions_per_client: u64,
    /// Seconds after which an unused session stops counting.
    pub session_idle_timeout: u64,
    /// `[mcp.tools]`: what the server says back (tool lists, pins, poisoning, access).
    pub tools: ToolsConfig,
    /// `[mcp.results]`: what tools return (secrets, personal data, injections, size).
    pub results: ResultsConfig,
}

/// What a finding in a tool result (or a tool call's arguments) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ResultAction {
    /// The value replaced by `[REDACTED:<family>]`; the client told in `_meta`.
    #[default]
    Redact,
    /// The whole result replaced by a JSON-RPC error naming the finding types.
    Block,
    /// Passed on, logged and counted.
    Alert,
    /// Not looked for.
    Off,
}

/// What a result over its size cap does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OversizeAction {
    /// Text cut to the cap, with a note saying so.
    #[default]
    Truncate,
    /// The result replaced by a JSON-RPC error.
    Refuse,
}

/// `[mcp.results]`: tool results (`tools/call`), resource contents (`resources/read`) and
/// prompt messages (`prompts/get`) read on their way back, and tool-call arguments on their
/// way in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResultsConfig {
    /// Read results at all.
    pub inspect: bool,
    /// Credentials: `redact`, `block`, `alert` or `off`.
    pub secrets: ResultAction,
    /// Personal data (e-mail, phone, payment card, IBAN, national id).
    pub personal_data: ResultAction,
    /// Injected instructions: `block`, `alert` or `off` (`redact` is read as `alert`).
    pub prompt_injection: ResultAction,
    /// A result holding an injection is wrapped as untrusted content.
    pub wrap_untrusted: bool,
    /// Credentials in tool-call arguments: `block`, `alert` or `off`.
    pub arguments: ResultAction,
    /// Families not looked for (`gcp_api_key`, `phone`, `email`, ...).
    pub ignore_families: Vec<String>,
    /// Results larger than this many bytes are truncated or refused (0: no cap).
    pub max_result_bytes: u64,
    /// `truncate` or `refuse`.
    pub oversize: OversizeAction,
    /// `[[mcp.results.tool]]`: the same settings for some tools.
    pub tool: Vec<ToolResultPolicy>,
}

impl Default for ResultsConfig {
    fn default() -> Self {
        ResultsConfig {
            inspect: true,
            secrets: ResultAction::Redact,
            personal_data: ResultAction::Alert,
            prompt_injection: ResultAction::Alert,
            wrap_untrusted: false,
            arguments: ResultAction::Alert,
            // Google's browser API keys are published in web pages by design.
            ignore_families: vec!["gcp_api_key".into()],
            max_result_bytes: 0,
            oversize: OversizeAction::Truncate,
            tool: Vec::new(),
        }
    }
}

/// `[[mcp.results.tool]]`: settings for the tools whose names match `name` (exact, or a glob
/// with `*`); what a rule leaves out comes from `[mcp.results]`. The first matching rule wins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ToolResultPolicy {
    pub name: String,
    pub secrets: Option<ResultAction>,
    pub personal_data: Option<ResultAction>,
    pub prompt_injection: Option<ResultAction>,
    pub wrap_untrusted: Option<bool>,
    pub ignore_families: Option<Vec<String>>,
    pub max_result_bytes: Option<u64>,
    pub oversize: Option<OversizeAction>,
}

/// What a changed, added or poisoned tool does to the list the client receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ToolAction {
    /// Removed from the list; its calls refused with a JSON-RPC error until approved.
    #[default]
    Block,
    /// Passed on, logged and counted.
    Alert,
    /// The whole list response refused with a JSON-RPC error (poisoning only).
    Refuse,
}

/// `[mcp.tools]`: responses on MCP paths (tool, prompt and resource lists) are read, tool
/// definitions pinned, poisoned definitions removed, and access rules applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ToolsConfig {
    /// Read responses on MCP paths at all.
    pub inspect: bool,
    /// A pinned tool whose definition changed: `block` or `alert`.
    pub on_change: ToolAction,
    /// A tool first seen after the upstream's tools were listed: `block` or `alert`.
    pub on_new: ToolAction,
    /// A poisoned definition: `block` (removed), `refuse` (the whole response) or `alert`.
    pub on_poisoning: ToolAction,
    /// A pin file (JSON, as `GET /api/security/tools?format=pins` writes it) loaded at start.
    pub pin_file: String,
    /// Names the upstream in pins; empty: the gateway's upstream URL, `local` in the library.
    pub upstream_name: String,
    /// Tools pinned at most, over every upstream.
    pub max_pinned: u64,
    /// A definition with more text than this is flagged `unusual_length`.
    pub max_definition_bytes: u64,
    /// A JSON response (or one event of a stream) on an MCP path is read up to this many
    /// bytes; a larger one is passed on unread and logged.
    pub max_response_bytes: u64,
    /// `[[mcp.tools.access]]`
    pub access: Vec<ToolAccessRule>,
}

impl Default for ToolsConfig {
    fn default() -> Self {
        ToolsConfig {
            inspect: true,
            on_change: ToolAction::Block,
            on_new: ToolAction::Alert,
            on_poisoning: ToolAction::Block,
            pin_file: String::new(),
            upstream_name: String::new(),
            max_pinned: 10_000,
            max_definition_bytes: 16 * 1024,
            max_response_bytes: 4 * 1024 * 1024,
            access: Vec::new(),
        }
    }
}

/// `[[mcp.tools.access]]`: who may use which tools, prompts and resources. Names are exact or
/// globs with `*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ToolAccessRule {
    /// User ids (`user_id_header`) the rule is for; empty: every user.
    pub users: Vec<String>,
    /// Client address ranges the rule is for; empty: every address.
    pub networks: Vec<String>,
    pub allow_tools: Vec<String>,
    pub deny_tools: Vec<String>,
    pub allow_prompts: Vec<String>,
    pub deny_prompts: Vec<String>,
    /// Resource URIs (and URI templates).
    pub allow_resources: Vec<String>,
    pub deny_resources: Vec<String>,
}

impl Default for McpConfig {
    fn default() -> Self {
        McpConfig {
            paths: vec!["/mcp".into()],
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            max_sessions_per_client: 64,
            session_idle_timeout: 1800,
            tools: ToolsConfig::default(),
            results: ResultsConfig::default(),
        }
    }
}

impl Config {
    /// Whether state is shared through Redis (one server or a cluster).
    pub fn uses_redis(&self) -> bool {
        !self.redis_url.is_empty() || !self.redis_cluster_nodes.is_empty()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            enable_rate_limiting: false,
            enable_ddos_protection: false,
            enable_ip_management: false,
            enable_threat_detection: false,
            admin_token: String::new(),
            trusted_proxies: Vec::new(),
            forwarded_header: ForwardedHeader::default(),
            whitelist: Vec::new(),
            blacklist: Vec::new(),
            whitelist_users: Vec::new(),
            user_id_header: String::new(),
            fail_mode: FailMode::default(),
            log_format: LogFormat::default(),
            log_ip_mode: "plain".into(),
            ip_hash_key: String::new(),
            max_inspect_body_bytes: 1024 * 1024,
            oversize_body_action: OversizeBodyAction::default(),
            ip_list_max_entries: 1_000_000,
            data_dir: String::new(),
            data_retention: 30 * 24 * 3600,
            redis_url: String::new(),
            redis_cluster_nodes: Vec::new(),
            redis_key_prefix: "mcp-shield:".into(),
            redis_timeout_ms: 50,
            geoip_database_path: String::new(),
            geoip_asn_database_path: String::new(),
            geoip_anonymous_database_path: String::new(),
            rate_limit: RateLimitConfig::default(),
            ddos: DdosConfig::default(),
            ip: IpConfig::default(),
            threat_detection: ThreatDetectionConfig::default(),
            mcp: McpConfig::default(),
            upstream: UpstreamConfig::default(),
            json: JsonConfig::default(),
            gateway: GatewayConfig::default(),
        }
    }
}

/// `[rate_limit]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    pub global_capacity: u64,
    // Field-level default: absent means unset (derived from the capacity), not the
    // container default; `load` starts from the serialized defaults, so an untouched rate
    // keeps its default value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_refill_rate: Option<f64>,
    pub per_user_capacity: u64,
    // Field-level default: absent means unset (derived from the capacity), not the
    // container default; `load` starts from the serialized defaults, so an untouched rate
    // keeps its default value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_user_refill_rate: Option<f64>,
    pub per_ip_capacity: u64,
    // Field-level default: absent means unset (derived from the capacity), not the
    // container default; `load` starts from the serialized defaults, so an untouched rate
    // keeps its default value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_ip_refill_rate: Option<f64>,
    pub max_tracked_keys: u64,
    pub default_rules: bool,
    pub rules: Vec<RateLimitRule>,
}

/// What an endpoint rule's bucket counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RuleKey {
    /// One bucket per client IP.
    #[default]
    Ip,
    /// One bucket per user (requests without a user identity skip the rule).
    User,
    /// One bucket for everyone.
    Global,
}

/// `[[rate_limit.rules]]`: an extra bucket for the requests it matches. Every condition given
/// must hold; every matching rule applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitRule {
    /// Names the bucket in logs and responses; unique.
    pub name: String,
    /// Exact path, or a prefix ending in `/*` (`/api/*` matches `/api` and `/api/...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// HTTP method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// JSON-RPC method (`tools/call`, `initialize`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_method: Option<String>,
    /// Tool name (`params.name` of `tools/call`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// What the bucket counts.
    #[serde(default)]
    pub key: RuleKey,
    /// Bucket size.
    pub capacity: u64,
    /// Tokens per second; absent means a tenth of the capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refill_rate: Option<f64>,
}

impl RateLimitRule {
    /// The built-in rules, applied unless `default_rules = false`; a rule of the same name in
    /// the file replaces one. `initialize` starts a session and costs the server most, so it
    /// gets its own bucket per IP: 60 at once (a test suite or an IDE opening many servers),
    /// then one every 2 seconds (30 a minute), far stricter than the per-IP budget for tool
    /// calls.
    pub fn defaults() -> Vec<RateLimitRule> {
        vec![RateLimitRule {
            name: "mcp-initialize".into(),
            path: None,
            method: None,
            mcp_method: Some("initialize".into()),
            tool: None,
            key: RuleKey::Ip,
            capacity: 60,
            refill_rate: Some(30.0 / 60.0),
        }]
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            global_capacity: 1000,
            global_refill_rate: Some(100.0),
            per_user_capacity: 100,
            per_user_refill_rate: None,
            per_ip_capacity: 200,
            per_ip_refill_rate: None,
            max_tracked_keys: 1_000_000,
            default_rules: true,
            rules: Vec::new(),
        }
    }
}

impl RateLimitConfig {
    /// Tokens per second for a bucket: the configured rate, else a tenth of the capacity.
    pub fn effective_rate(capacity: u64, rate: Option<f64>) -> f64 {
        rate.unwrap_or(capacity as f64 / 10.0)
    }
}

/// `[ddos]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DdosConfig {
    pub requests_per_second_threshold: u64,
    pub requests_per_minute_threshold: u64,
    pub concurrent_connections_limit: u64,
    pub block_duration: u64,
    pub max_block_duration: u64,
    pub emergency_factor: f64,
    pub max_tracked_ips: u64,
    pub header_timeout: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emergency_rps_threshold: Option<f64>,
    pub emergency_cooldown: u64,
}

impl Default for DdosConfig {
    fn default() -> Self {
        DdosConfig {
            requests_per_second_threshold: 50,
            requests_per_minute_threshold: 1000,
            concurrent_connections_limit: 100,
            block_duration: 60,
            max_block_duration: 3600,
            emergency_factor: 0.5,
            max_tracked_ips: 500_000,
            header_timeout: 10,
            emergency_rps_threshold: None,
            emergency_cooldown: 300,
        }
    }
}

/// `[ip]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IpConfig {
    pub auto_blacklist_threshold: u64,
    pub temp_block_duration: u64,
    pub threat_feeds: Vec<String>,
    pub threat_feed_refresh: u64,
    pub geo_blocked_countries: Vec<String>,
    pub geo_allowed_countries: Vec<String>,
    pub geo_high_risk_countries: Vec<String>,
    pub max_tracked_ips: u64,
}

impl Default for IpConfig {
    fn default() -> Self {
        IpConfig {
            auto_blacklist_threshold: 10,
            temp_block_duration: 3600,
            threat_feeds: Vec::new(),
            threat_feed_refresh: 3600,
            geo_blocked_countries: Vec::new(),
            geo_allowed_countries: Vec::new(),
            geo_high_risk_countries: Vec::new(),
            max_tracked_ips: 500_000,
        }
    }
}

/// `[threat_detection]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThreatDetectionConfig {
    pub anomaly_threshold: f64,
    /// Refuse anomalous clients (otherwise an indicator that lowers reputation).
    pub anomaly_block: bool,
    pub ml_retrain_interval: u64,
    /// Active clients before the first training.
    pub ml_min_clients: u64,
    /// Seconds of behaviour per client.
    pub ml_window: u64,
    /// Clients tracked at most.
    pub ml_max_clients: u64,
    /// `low`, `medium`, `high` or `critical`: an indicator at or above it blocks.
    pub block_severity: String,
    /// `block` or `monitor`.
    pub mode: String,
    /// A combined score (sum over threat types of severity weight x confidence) that blocks.
    pub score_threshold: f64,
    /// `[[threat_detection.allow]]`: what a tool or endpoint may receive.
    pub allow: Vec<crate::threat::AllowRule>,
    /// `[[threat_detection.patterns]]`: the operator's regular expressions.
    pub patterns: Vec<crate::threat::CustomPattern>,
}

impl Default for ThreatDetectionConfig {
    fn default() -> Self {
        ThreatDetectionConfig {
            anomaly_threshold: 0.7,
            anomaly_block: false,
            ml_retrain_interval: 3600,
            ml_min_clients: 20,
            ml_window: 300,
            ml_max_clients: 50_000,
            block_severity: "high".into(),
            mode: "block".into(),
            score_threshold: f64::from(crate::threat::DEFAULT_SCORE_THRESHOLD),
            allow: Vec::new(),
            patterns: Vec::new(),
        }
    }
}

impl Config {
    /// The library defaults, then the process environment, then `overrides`: what the seed's
    /// `init_security_system(config_overrides)` reads.
    pub fn from_env(overrides: ConfigOverrides) -> Result<Config, ConfigError> {
        load(ConfigSources {
            env: std::env::vars().collect(),
            overrides,
            ..ConfigSources::default()
        })
    }

    /// The effective configuration as TOML, with secrets replaced by `<redacted>` (a Redis
    /// URL keeps its host and loses only its password).
    pub fn to_redacted_toml(&self) -> String {
        let mut copy = self.clone();
        copy.redact();
        toml::to_string(&copy).unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"))
    }

    /// Replaces every secret with `<redacted>` in place.
    pub fn redact(&mut self) {
        const REDACTED: &str = "<redacted>";
        if !self.admin_token.is_empty() {
            self.admin_token = REDACTED.into();
        }
        if !self.ip_hash_key.is_empty() {
            self.ip_hash_key = REDACTED.into();
        }
        self.redis_url = redact_url_password(&self.redis_url);
        for node in &mut self.redis_cluster_nodes {
            *node = redact_url_password(node);
        }
    }
}

/// `redis://user:secret@host:6379/0` becomes `redis://user:<redacted>@host:6379/0`.
pub fn redact_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    let userinfo = &rest[..at];
    let user = match userinfo.find(':') {
        Some(colon) => &userinfo[..colon],
        // `redis://secret@host` puts the password where a user name would be.
        None => "",
    };
    format!(
        "{}://{}:<redacted>{}",
        &url[..scheme_end],
        user,
        &rest[at..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_password_is_redacted_host_kept() {
        assert_eq!(
            redact_url_password("redis://:hunter2@cache:6379/0"),
            "redis://:<redacted>@cache:6379/0"
        );
        assert_eq!(
            redact_url_password("rediss://app:hunter2@cache/1"),
            "rediss://app:<redacted>@cache/1"
        );
        assert_eq!(
            redact_url_password("redis://localhost:6379/0"),
            "redis://localhost:6379/0"
        );
    }

    #[test]
    fn every_setting_exists_in_the_defaults() {
        let tree = toml::Value::try_from(Config::default()).expect("defaults serialize");
        for setting in settings::SETTINGS {
            let mut node = &tree;
            let parts: Vec<&str> = setting.path.split('.').collect();
            for (i, part) in parts.iter().enumerate() {
                match node.get(part) {
                    Some(next) => node = next,
                    // Optional numbers are absent from the serialized defaults.
                    None if setting.kind == settings::Kind::OptFloat && i == parts.len() - 1 => {}
                    None => panic!("{} is in SETTINGS but not in Config", setting.path),
                }
            }
        }
    }
}
