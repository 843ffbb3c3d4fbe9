//! Threat detection: the seed's fourth component. Inspection of one request for injection,
//! traversal, inclusion and scanning, with a per-tool policy; a verdict depends on that
//! request alone.
//!
//! How a request is judged:
//! 1. [`fields`] lists what the application will read: path, query and form names and
//!    values, cookies, headers, JSON bodies walked recursively (keys too), MCP `tools/call`
//!    arguments labelled with their tool and argument.
//! 2. [`decode`] turns each value into what the application will see (repeated URL
//!    decoding, `%u`, overlong UTF-8, HTML entities, fullwidth forms), in bounded work.
//! 3. Detectors, one file each, report [`Finding`]s: [`sqli`] (a SQL lexer judging token
//!    shapes), [`xss`] (HTML and JavaScript contexts), [`traversal`] (path traversal and local
//!    file inclusion), [`command`] (shell command injection and code injection), [`ssrf`]
//!    (remote file inclusion and requests to internal, loopback, link-local and cloud-metadata
//!    addresses), [`redirect`] (URLs spelled to leave the site past a redirect check),
//!    [`injection`] (template, XXE, LDAP, NoSQL, CRLF, SSI), [`scanner`] (scanner and bot
//!    user agents, probe paths, restricted files, protocol abuse).
//!    A short value every detector found clean is remembered ([`clean_values`]): the headers
//!    and names every request repeats are judged once, not once per request.
//! 4. The [`policy`] drops what a tool or parameter is allowed to receive (SQL for a database
//!    tool), custom patterns add theirs, and the verdict is: blocked when an indicator reaches
//!    the block severity (default `high`) or the combined score reaches the threshold.
//!
//! The same [`ThreatDetector`] serves the gateway (through [`ThreatGuard`]) and
//! `mcp-shield scan`.

/// `find!(hay, "needle")`: where a literal first occurs in `hay`, with its searcher built once
/// (see [`Literal`]).
macro_rules! find {
    ($hay:expr, $needle:expr) => {{
        static LITERAL: $crate::threat::Literal = $crate::threat::Literal::new($needle);
        LITERAL.find($hay)
    }};
}

/// `contains!(hay, "needle")`: whether a literal occurs in `hay` (see [`Literal`]).
macro_rules! contains {
    ($hay:expr, $needle:expr) => {
        find!($hay, $needle).is_some()
    };
}

pub mod clean_values;
pub mod command;
pub mod decode;
pub mod fields;
mod guard;
pub mod injection;
pub mod policy;
pub mod redirect;
pub mod scanner;
pub mod sqli;
pub mod ssrf;
pub mod traversal;
pub mod xss;

pub use guard::ThreatGuard;
pub use policy::{AllowRule, CustomPattern, Policy, PolicyError};

use std::sync::{Arc, RwLock};

use serde::{Serialize, Serializer};

use clean_values::CleanValues;
use fields::{Field, Place};

/// What kind of threat.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ThreatType {
    /// SQL injection.
    SqlInjection,
    /// Cross-site scripting.
    XssAttack,
    /// Path traversal and local file inclusion.
    PathTraversal,
    /// Shell command injection.
    CommandInjection,
    /// Code injection (PHP, Java, Node.js, Python payloads; deserialization; Log4Shell).
    CodeInjection,
    /// Remote file inclusion.
    RemoteFileInclusion,
    /// Server-side request forgery (URLs to internal, loopback, metadata addresses).
    Ssrf,
    /// Server-side template injection.
    TemplateInjection,
    /// XML external entities.
    Xxe,
    /// LDAP filter injection.
    LdapInjection,
    /// NoSQL (MongoDB operator, JavaScript) injection.
    NosqlInjection,
    /// CRLF injection (header injection, response splitting).
    CrlfInjection,
    /// Server-side includes and edge-side includes.
    SsiInjection,
    /// A URL written to leave the site through a parser's confusion (see [`redirect`]).
    OpenRedirect,
    /// A session identifier handed over in a link from another site (session fixation).
    SessionFixation,
    /// A security scanner (by user agent or the paths it probes).
    Scanner,
    /// An automated client (generic HTTP libraries): low severity, for reputation.
    Bot,
    /// Protocol abuse (TRACE, request smuggling, NUL bytes in the URL).
    ProtocolViolation,
    /// Behaviour the anomaly model finds unusual (see [`crate::behaviour`]).
    AnomalousBehavior,
    /// A tool, prompt or resource definition written to steer the model (hidden instructions,
    /// shadowing of other tools, invisible characters; see [`crate::tools::poisoning`]).
    ToolPoisoning,
    /// A pinned tool definition that changed since it was pinned (a "rug pull").
    ToolChanged,
    /// A credential in a tool result or a tool call's arguments (see [`crate::dlp::secrets`]).
    Secret,
    /// Personal data in a tool result (see [`crate::dlp::personal`]).
    PersonalData,
    /// Instructions injected into a tool result (see [`crate::dlp::injection`]).
    PromptInjection,
    /// A tool result over its size cap.
    OutputTooLarge,
    /// A custom pattern (`add_pattern`, or a regex in the configuration).
    Custom(Arc<str>),
}

impl ThreatType {
    /// The name used in responses, logs and the policy.
    pub fn as_str(&self) -> &str {
        match self {
            ThreatType::SqlInjection => "sql_injection",
            ThreatType::XssAttack => "xss_attack",
            ThreatType::PathTraversal => "path_traversal",
            ThreatType::CommandInjection => "command_injection",
            ThreatType::CodeInjection => "code_injection",
            ThreatType::RemoteFileInclusion => "remote_file_inclusion",
            ThreatType::Ssrf => "ssrf",
            ThreatType::TemplateInjection => "template_injection",
            ThreatType::Xxe => "xxe",
            ThreatType::LdapInjection => "ldap_injection",
            ThreatType::NosqlInjection => "nosql_injection",
            ThreatType::CrlfInjection => "crlf_injection",
            ThreatType::SsiInjection => "ssi_injection",
            ThreatType::OpenRedirect => "open_redirect",
            ThreatType::SessionFixation => "session_fixation",
            ThreatType::Scanner => "scanner",
            ThreatType::Bot => "bot",
            ThreatType::ProtocolViolation => "protocol_violation",
            ThreatType::AnomalousBehavior => "anomalous_behavior",
            ThreatType::ToolPoisoning => "tool_poisoning",
            ThreatType::ToolChanged => "tool_changed",
            ThreatType::Secret => "secret",
            ThreatType::PersonalData => "personal_data",
            ThreatType::PromptInjection => "prompt_injection",
            ThreatType::OutputTooLarge => "output_too_large",
            ThreatType::Custom(name) => name,
        }
    }

    /// The name of a built-in type, borrowed for `'static` (`custom` for a custom one).
    pub fn as_str_static(&self) -> &'static str {
        match self {
            ThreatType::Custom(_) => "custom",
            built_in => ThreatType::built_in_names()
                .find(|n| *n == built_in.as_str())
                .unwrap_or("custom"),
        }
    }

    /// Every built-in type.
    pub const ALL: [ThreatType; 25] = [
        ThreatType::SqlInjection,
        ThreatType::XssAttack,
        ThreatType::PathTraversal,
        ThreatType::CommandInjection,
        ThreatType::CodeInjection,
        ThreatType::RemoteFileInclusion,
        ThreatType::Ssrf,
        ThreatType::TemplateInjection,
        ThreatType::Xxe,
        ThreatType::LdapInjection,
        ThreatType::NosqlInjection,
        ThreatType::CrlfInjection,
        ThreatType::SsiInjection,
        ThreatType::OpenRedirect,
        ThreatType::SessionFixation,
        ThreatType::Scanner,
        ThreatType::Bot,
        ThreatType::ProtocolViolation,
        ThreatType::AnomalousBehavior,
        ThreatType::ToolPoisoning,
        ThreatType::ToolChanged,
        ThreatType::Secret,
        ThreatType::PersonalData,
        ThreatType::PromptInjection,
        ThreatType::OutputTooLarge,
    ];

    /// The built-in type of this name, if it is one.
    pub fn built_in(name: &str) -> Option<ThreatType> {
        Self::ALL.iter().find(|t| t.as_str() == name).cloned()
    }

    /// The names of the built-in types.
    pub fn built_in_names() -> impl Iterator<Item = &'static str> {
        // A static, so the names borrow for 'static (the const array is not promoted: the
        // type holds an `Arc` in its custom variant).
        static ALL: [ThreatType; 25] = ThreatType::ALL;
        ALL.iter().map(ThreatType::as_str)
    }
}

impl std::fmt::Display for ThreatType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ThreatType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// How bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth remembering, not refusing.
    Low,
    /// Suspicious: lowers reputation.
    Medium,
    /// An attack.
    High,
    /// An attack aimed at something that hurts (stacked statements, metadata, secrets).
    Critical,
}

impl Severity {
    /// Parses `low`, `medium`, `high` or `critical`.
    pub fn parse(text: &str) -> Option<Severity> {
        match text.trim().to_ascii_lowercase().as_str() {
            "low" => Some(Severity::Low),
            "medium" => Some(Severity::Medium),
            "high" => Some(Severity::High),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }

    /// The name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Weight in the combined score.
    fn weight(self) -> f32 {
        match self {
            Severity::Low => 0.1,
            Severity::Medium => 0.45,
            Severity::High => 0.75,
            Severity::Critical => 1.0,
        }
    }
}

/// A detector's finding in one decoded value: what, how bad, how sure, and where (a byte
/// range of the decoded value).
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// What.
    pub threat: ThreatType,
    /// How bad.
    pub severity: Severity,
    /// How sure, 0 to 1.
    pub confidence: f32,
    /// Start of the evidence in the decoded value.
    pub start: usize,
    /// End of the evidence.
    pub end: usize,
}

impl Finding {
    /// A finding over `start..end`.
    pub fn new(
        threat: ThreatType,
        severity: Severity,
        confidence: f32,
        start: usize,
        end: usize,
    ) -> Self {
        Finding {
            threat,
            severity,
            confidence,
            start,
            end,
        }
    }
}

/// The strongest finding seen so far (by severity, then confidence): what a detector reports
/// when several of its rules fire on one value.
#[derive(Debug, Default)]
pub(crate) struct Strongest(Option<Finding>);

impl Strongest {
    /// Keeps `f` if it is stronger than what is kept.
    pub(crate) fn keep(&mut self, f: Finding) {
        if self
            .0
            .as_ref()
            .is_none_or(|x| (f.severity, f.confidence) > (x.severity, x.confidence))
        {
            self.0 = Some(f);
        }
    }

    /// The strongest finding, if any.
    pub(crate) fn into_inner(self) -> Option<Finding> {
        self.0
    }
}

/// The seed's `ThreatIndicator`: one threat found in a request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThreatIndicator {
    /// What (`sql_injection`, `xss_attack`, ...).
    #[serde(rename = "type")]
    pub threat_type: ThreatType,
    /// How bad.
    pub severity: Severity,
    /// How sure, 0 to 1.
    pub confidence: f32,
    /// Where: `query:q`, `json:params.arguments.sql`, `header:User-Agent`, `path`.
    pub location: String,
    /// The decoded evidence, at most 120 characters.
    pub snippet: String,
    /// The tool argument the field is, or is under, in a `tools/call` (`sql` for
    /// `json:params.arguments.sql`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub argument: Option<String>,
}

impl ThreatIndicator {
    /// An indicator (for custom patterns).
    pub fn new(
        threat_type: &str,
        severity: Severity,
        confidence: f32,
        location: impl Into<String>,
        snippet: impl Into<String>,
    ) -> Self {
        let threat_type = ThreatType::built_in(threat_type)
            .unwrap_or_else(|| ThreatType::Custom(Arc::from(threat_type)));
        ThreatIndicator {
            threat_type,
            severity,
            confidence: confidence.clamp(0.0, 1.0),
            location: location.into(),
            snippet: snippet.into(),
            argument: None,
        }
    }
}

/// A request to inspect: what the gateway saw, or a line of `mcp-shield scan` input.
#[derive(Debug, Clone, Copy)]
pub struct HttpRequest<'a> {
    /// Method.
    pub method: &'a str,
    /// Request target (path and query).
    pub uri: &'a str,
    /// Headers, in order.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body (as much as was read).
    pub body: &'a [u8],
}

impl HttpRequest<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// The outcome of inspecting one request.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Inspection {
    /// The strongest indicator of each threat type, strongest first.
    pub indicators: Vec<ThreatIndicator>,
    /// The combined score (sum over types of severity weight times confidence).
    pub score: f32,
    /// Whether the request should be refused.
    pub blocked: bool,
}

impl Inspection {
    /// The threat type names, strongest first.
    pub fn threat_names(&self) -> Vec<String> {
        self.indicators
            .iter()
            .map(|i| i.threat_type.as_str().to_string())
            .collect()
    }

    /// The names a refusal gives: the types at or above `block` severity, or, for a refusal by
    /// combined score, every type above low (a low `bot` finding is never the reason).
    pub fn blocking_names(&self, block: Severity) -> Vec<String> {
        let at_block: Vec<String> = self
            .indicators
            .iter()
            .filter(|i| i.severity >= block)
            .map(|i| i.threat_type.as_str().to_string())
            .collect();
        if !at_block.is_empty() {
            return at_block;
        }
        self.indicators
            .iter()
            .filter(|i| i.severity > Severity::Low)
            .map(|i| i.threat_type.as_str().to_string())
            .collect()
    }
}

/// A custom check written in Rust (the seed's `@threat_detector.add_pattern`).
pub type PatternFn = dyn Fn(&HttpRequest<'_>) -> Option<ThreatIndicator> + Send + Sync;

/// The detector: decoders, detectors, policy and custom patterns.
pub struct ThreatDetector {
    /// What the configuration decides; swapped whole by [`ThreatDetector::reconfigure`] while
    /// requests are inspected, each inspection under one version.
    rules: arc_swap::ArcSwap<Rules>,
    custom: RwLock<Vec<(String, Arc<PatternFn>)>>,
    /// Short values the built-in detectors found clean (see [`clean_values`]).
    clean: CleanValues,
}

impl std::fmt::Debug for ThreatDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreatDetector")
            .field("block_severity", &self.rules.load().block_severity)
            .field("score_threshold", &self.rules.load().score_threshold)
            .finish_non_exhaustive()
    }
}

/// The default combined score that blocks (three medium findings of different types).
pub const DEFAULT_SCORE_THRESHOLD: f32 = 1.2;

/// Values longer than this are inspected in their first this-many bytes (bodies are capped
/// by `max_inspect_body_bytes` before they get here; this bounds one field).
const MAX_FIELD_BYTES: usize = 256 * 1024;

/// The configured part of a detector: the policy and when a finding blocks.
struct Rules {
    policy: Policy,
    block_severity: Severity,
    score_threshold: f32,
}

impl Rules {
    fn from_config(config: &crate::config::ThreatDetectionConfig) -> Result<Rules, PolicyError> {
        Ok(Rules {
            policy: Policy::new(&config.allow, &config.patterns)?,
            block_severity: Severity::parse(&config.block_severity).unwrap_or(Severity::High),
            score_threshold: config.score_threshold as f32,
        })
    }
}

impl ThreatDetector {
    /// A detector with `policy`, blocking at `block_severity` or a combined score of
    /// `score_threshold`.
    pub fn new(policy: Policy, block_severity: Severity, score_threshold: f32) -> Self {
        ThreatDetector {
            rules: arc_swap::ArcSwap::from_pointee(Rules {
                policy,
                block_severity,
                score_threshold,
            }),
            custom: RwLock::new(Vec::new()),
            clean: CleanValues::new(),
        }
    }

    /// A detector as the configuration says (`[threat_detection]`).
    pub fn from_config(
        config: &crate::config::ThreatDetectionConfig,
    ) -> Result<ThreatDetector, PolicyError> {
        let rules = Rules::from_config(config)?;
        Ok(ThreatDetector::new(
            rules.policy,
            rules.block_severity,
            rules.score_threshold,
        ))
    }

    /// Takes a new policy and thresholds (a configuration reload); custom patterns and the
    /// memory of clean values stay. An invalid policy changes nothing.
    pub fn reconfigure(
        &self,
        config: &crate::config::ThreatDetectionConfig,
    ) -> Result<(), PolicyError> {
        self.rules.store(Arc::new(Rules::from_config(config)?));
        Ok(())
    }

    /// Adds a custom check (the seed's `@threat_detector.add_pattern("name")`). A check with
    /// the same name replaces the earlier one.
    pub fn add_pattern<F>(&self, name: &str, check: F)
    where
        F: Fn(&HttpRequest<'_>) -> Option<ThreatIndicator> + Send + Sync + 'static,
    {
        let mut custom = self.custom.write().unwrap_or_else(|e| e.into_inner());
        custom.retain(|(n, _)| n != name);
        custom.push((name.to_string(), Arc::new(check)));
    }

    /// The severity at which a request is refused.
    pub fn block_severity(&self) -> Severity {
        self.rules.load().block_severity
    }

    /// Inspects a request.
    pub fn inspect(&self, request: &HttpRequest<'_>) -> Inspection {
        self.inspect_with(request, Vec::new())
    }

    /// Inspects a request that comes with findings already made (by the application hosting
    /// the layer, [`crate::request::HostFindings`]): they count like the detector's own.
    pub fn inspect_with(
        &self,
        request: &HttpRequest<'_>,
        mut found: Vec<ThreatIndicator>,
    ) -> Inspection {
        let (path, query) = match request.uri.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (request.uri, None),
        };
        let mut fields: Vec<Field<'_>> = Vec::with_capacity(16);
        fields::from_head(path, query, request.headers, &mut fields);
        // The strict check is vectorized; the lossy one walks chunks even when all is valid.
        let body = match std::str::from_utf8(request.body) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(request.body),
        };
        fields::from_body(&body, request.header("content-type"), &mut fields);
        let rules = self.rules.load();
        let decoded_path = decode::normalize(path, false);
        let allowed_at_path = rules.policy.allowed_for_path(&decoded_path.text);
        for field in &fields {
            self.inspect_field(
                &rules.policy,
                field,
                &decoded_path.text,
                &allowed_at_path,
                &mut found,
            );
        }
        scanner::request_checks(request, &decoded_path.text, &self.clean, &mut found);
        if let Some(indicator) = scanner::session_fixation(request, &fields) {
            found.push(indicator);
        }
        // Copied out of the lock (a check may add patterns); nothing to copy in the usual case.
        let custom: Vec<Arc<PatternFn>> = {
            let registered = self.custom.read().unwrap_or_else(|e| e.into_inner());
            registered.iter().map(|(_, f)| f.clone()).collect()
        };
        for check in custom {
            if let Some(indicator) = check(request) {
                found.push(indicator);
            }
        }
        verdict(&rules, found)
    }

    fn inspect_field(
        &self,
        policy: &Policy,
        field: &Field<'_>,
        path: &str,
        allowed_at_path: &[String],
        found: &mut Vec<ThreatIndicator>,
    ) {
        let raw: &str = &field.raw;
        let raw = if raw.len() > MAX_FIELD_BYTES {
            let mut cut = MAX_FIELD_BYTES;
            while !raw.is_char_boundary(cut) {
                cut -= 1;
            }
            &raw[..cut]
        } else {
            raw
        };
        if raw.is_empty() || envelope(field) {
            return;
        }
        // The server never fetches a Referer or an Origin: URLs there are not SSRF.
        let fetched = !(field.place == Place::Header
            && (field.name.eq_ignore_ascii_case("referer")
                || field.name.eq_ignore_ascii_case("origin")));
        let upload = scanner::is_upload_name(field.place, &field.name);
        let context = clean_values::field_context(field.place, fetched, upload);
        let key = self.clean.key(context, raw);
        let known_clean = key.is_some_and(|key| self.clean.contains(key, raw));
        if known_clean && !policy.has_patterns() {
            return;
        }
        let normalized = decode::normalize(raw, field.place.is_form_encoded());
        let text: &str = &normalized.text;
        let mut findings = Vec::new();
        if !known_clean {
            let lower = text.to_ascii_lowercase();
            detect_all(
                field.place,
                text,
                &lower,
                &normalized,
                fetched,
                &mut findings,
            );
            if upload {
                scanner::script_upload(&lower, &mut findings);
            }
            // The one check that needs the value as sent beside it as decoded, so it is here
            // rather than in `detect_all`.
            if raw.len() <= 24 && text.len() <= 2 {
                xss::encoded_bracket(raw, text, &mut findings);
            }
            if findings.is_empty() {
                if let Some(key) = key {
                    self.clean.insert(key, raw);
                }
            }
        }
        if policy.has_patterns() {
            policy.match_patterns(text, &mut findings);
        }
        if findings.is_empty() {
            return;
        }
        let allowed = policy.allowed_for_field(field, path, allowed_at_path);
        for f in findings {
            if allowed.iter().any(|a| *a == f.threat.as_str()) {
                continue;
            }
            found.push(ThreatIndicator {
                location: location(field),
                snippet: snippet(text, f.start, f.end),
                threat_type: f.threat,
                severity: f.severity,
                confidence: f.confidence,
                argument: field.argument().map(str::to_string),
            });
        }
    }
}

/// The verdict on what was found: the strongest finding of each type, blocked at the
/// configured severity or combined score.
fn verdict(rules: &Rules, mut found: Vec<ThreatIndicator>) -> Inspection {
    // The strongest of each type.
    found.sort_by(|a, b| {
        a.threat_type.cmp(&b.threat_type).then(
            (b.severity, b.confidence)
                .partial_cmp(&(a.severity, a.confidence))
                .unwrap_or(std::cmp::Ordering::Equal),
        )
    });
    found.dedup_by(|later, first| later.threat_type == first.threat_type);
    found.sort_by(|a, b| {
        (b.severity, b.confidence)
            .partial_cmp(&(a.severity, a.confidence))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let score: f32 = found
        .iter()
        .map(|i| i.severity.weight() * i.confidence)
        .sum();
    let blocked =
        found.iter().any(|i| i.severity >= rules.block_severity) || score >= rules.score_threshold;
    Inspection {
        indicators: found,
        score,
        blocked,
    }
}

/// JSON-RPC's own fields in their ordinary shapes (`"jsonrpc": "2.0"`, `"method":
/// "tools/call"`) and JSON keys that are plain identifiers: nothing to judge, and an MCP
/// request has several. Anything else in them (a method with a quote) is inspected.
fn envelope(field: &Field<'_>) -> bool {
    let identifier = |s: &str, extra: &[char]| {
        !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || extra.contains(&c))
    };
    match field.place {
        Place::JsonKey => fields::plain_key(&field.raw),
        Place::JsonValue => {
            let key = field.name.rsplit(['.', ']']).next().unwrap_or(&field.name);
            // `method` of the message, or of a batch element (`[3].method`).
            let prefix = &field.name[..field.name.len() - key.len()];
            let top = prefix.is_empty()
                || (prefix.starts_with('[')
                    && prefix.ends_with("].")
                    && prefix.matches('.').count() == 1);
            top && matches!(key, "jsonrpc" | "method" | "id")
                && identifier(&field.raw, &['/', '.', '-', ':'])
        }
        _ => false,
    }
}

/// Runs every detector that applies to a value at `place`.
fn detect_all(
    place: Place,
    text: &str,
    lower: &str,
    normalized: &decode::Normalized<'_>,
    fetched: bool,
    out: &mut Vec<Finding>,
) {
    let bytes = lower.as_bytes();
    // Cheap gates: most values are words and spaces, and most detectors need punctuation.
    let mut has = [false; 256];
    for &b in bytes {
        has[b as usize] = true;
    }
    // The pieces at its symbols, for needle lists asked about a long value to rule themselves
    // out by: only for values without the symbols most needles are made of (where a value has
    // a `/` or a `(`, few lists would be ruled out), and given up past MAX_GRAM_SYMBOLS.
    let few_symbols = bytes.len() > SHORT_HAYSTACK
        && !b"/\\()<>$=;:[]{}`|&%@".iter().any(|&b| has[usize::from(b)]);
    let grams = few_symbols.then(|| SymbolGrams::of(bytes)).flatten();
    let any = |set: &[u8]| set.iter().any(|&b| has[b as usize]);
    let _scope = grams.map(|grams| ValueScope::enter(text, lower, grams));
    let is_path = place == Place::Path;
    if !is_path {
        sqli::detect(text, out);
    } else {
        sql_in_path(text, out);
    }
    // Separators spelled as C escapes (`0x2e0x2e0x2f`), which some decoders read: letters
    // and digits only, yet a path.
    let spelled = has[usize::from(b'x')] && contains!(lower, "0x");
    // Words, digits and spaces only: nothing but SQL keywords (`order by 5`) and a bare
    // command (`uname -a`) can hide there.
    let plain = !spelled
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b' ' | b'-' | b'_' | b','))
        && !lower.contains("__");
    // A field (not the path, not a whole document) holding a probe: an event handler's name,
    // a page-level tag.
    let field = !matches!(place, Place::Path | Place::Body | Place::XmlValue);
    // A NUL byte in a query argument, a cookie or a header: no text has one, and C code
    // behind the application stops reading there (a file name cut before its extension).
    // Form values are left out: a multipart part may be a binary file.
    let textual = matches!(
        place,
        Place::QueryName
            | Place::QueryValue
            | Place::CookieName
            | Place::CookieValue
            | Place::Header
            | Place::FormName
    );
    if normalized.had_nul && textual {
        out.push(Finding::new(
            ThreatType::ProtocolViolation,
            Severity::High,
            0.7,
            0,
            text.len(),
        ));
    }
    if field {
        xss::handler_probe(lower, out);
    }
    if plain {
        command::detect(lower, out);
        return;
    }
    if any(b"<:=(`\"'") {
        xss::detect(text, lower, out);
        if field && has[usize::from(b'<')] {
            xss::markup_probe(lower, out);
        }
    }
    // `%` too: an encoding that did not decode here (`etc%c1%1cpasswd`, IIS's overlong
    // separators) may decode in the application's server.
    if any(b"./\\%") || spelled || normalized.had_nul {
        traversal::detect(lower, normalized.had_nul, is_path, out);
    }
    command::detect(lower, out);
    command::detect_code(text, lower, out);
    if fetched && any(b":") {
        ssrf::detect(lower, place, normalized.had_nul, out);
    }
    // Where a value may be a redirect target: a field (not the path or a whole body), not a
    // header (a Referer is a URL the browser came from).
    if field && place != Place::Header && any(b"/\\:") {
        redirect::detect(lower, out);
    }
    injection::detect(place, lower, normalized.encoded_newline, out);
}

/// SQL in the URL path, for applications that route a segment into a query
/// (`/items/1 or 1=1`, `/get/if(now()=sysdate(),sleep(12),0)`): each segment that holds
/// something besides a name (a space, a quote, a parenthesis, a comparison, a comment) is
/// read as a value. Plain segments (`/api/v1/users/42`) are skipped unread.
fn sql_in_path(path: &str, out: &mut Vec<Finding>) {
    let mut start = 0;
    for segment in path.split('/') {
        let offset = start;
        start += segment.len() + 1;
        let suspicious = segment.bytes().any(|b| {
            matches!(
                b,
                b' ' | b'\'' | b'"' | b'(' | b'=' | b';' | b'*' | b'#' | b'`'
            )
        });
        if !suspicious {
            continue;
        }
        let before = out.len();
        sqli::detect(segment, out);
        for f in &mut out[before..] {
            f.start += offset;
            f.end += offset;
        }
    }
}

fn location(field: &Field<'_>) -> String {
    match field.place {
        Place::Path | Place::Body => field.place.label().to_string(),
        _ => format!("{}:{}", field.place.label(), field.name),
    }
}

/// At most 120 characters of the evidence, from a little before it.
fn snippet(text: &str, start: usize, end: usize) -> String {
    let mut from = start.saturating_sub(10).min(text.len());
    while !text.is_char_boundary(from) {
        from -= 1;
    }
    let mut to = end.max(start + 1).min(text.len()).max(from);
    while !text.is_char_boundary(to) {
        to += 1;
    }
    let evidence: String = text[from..to].chars().take(120).collect();
    evidence.replace(['\r', '\n'], " ")
}

/// Whether `needle` occurs in `hay`. `str::contains` builds a Two-Way searcher on every call,
/// which costs more than the search itself on the short values a request is made of;
/// `memmem`'s one-shot search has next to no set-up.
#[inline]
pub(crate) fn has(hay: &str, needle: &str) -> bool {
    position(hay, needle).is_some()
}

/// Haystacks shorter than this are searched eight bytes at a time for the needle's first
/// byte, with a comparison at each hit: `memmem`'s one-shot search ranks the needle's bytes
/// and sets up a vector searcher per call, and even `memchr`'s dispatch and alignment
/// prologue cost more than the whole search on the short values a request is made of
/// (a dozen searches per value per detector: about a tenth of a 1 KB request's cost).
const SHORT_SEARCH: usize = 64;

/// Where `needle` first occurs in `hay` (see [`has`]).
#[inline]
pub(crate) fn position(hay: &str, needle: &str) -> Option<usize> {
    let (hay, needle) = (hay.as_bytes(), needle.as_bytes());
    let Some(&first) = needle.first() else {
        return Some(0);
    };
    if hay.len() >= SHORT_SEARCH {
        return long_position(hay, needle);
    }
    short_position(hay, needle, first)
}

/// [`position`] on a long haystack, where the vector searchers' set-up pays off.
#[inline(never)]
fn long_position(hay: &[u8], needle: &[u8]) -> Option<usize> {
    match needle {
        [one] => memchr::memchr(*one, hay),
        _ => memchr::memmem::find(hay, needle),
    }
}

/// [`position`] on a short haystack: each 8-byte word is tested for the needle's first byte
/// at once (the zero-byte test on the word XOR that byte repeated: it never misses a hit, and
/// may also flag bytes after a hit that differ from the first byte in its lowest bit, which
/// the comparison then rejects).
fn short_position(hay: &[u8], needle: &[u8], first: u8) -> Option<usize> {
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let last_start = hay.len().checked_sub(needle.len())?;
    let repeated = LOW * u64::from(first);
    let mut i = 0;
    while i + 8 <= hay.len() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&hay[i..i + 8]);
        let x = u64::from_le_bytes(word) ^ repeated;
        let mut hits = x.wrapping_sub(LOW) & !x & HIGH;
        while hits != 0 {
            let at = i + (hits.trailing_zeros() / 8) as usize;
            if at > last_start {
                return None;
            }
            // A flagged byte after a hit may be another byte (the borrow of the subtraction
            // reaches it): the whole needle is compared, its first byte too.
            if hay[at] == first && hay[at + 1..at + needle.len()] == needle[1..] {
                return Some(at);
            }
            hits &= hits - 1;
        }
        i += 8;
    }
    while i <= last_start {
        if hay[i] == first && hay[i + 1..i + needle.len()] == needle[1..] {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// A literal searched for in many values, its `memmem` searcher built on first use and kept.
/// Building one per search (what [`position`] does on values of 64 bytes or more) cost more
/// than the searches: forty builds per 1 KB request were 7 % of its inspection.
pub(crate) struct Literal {
    needle: &'static str,
    finder: std::sync::OnceLock<memchr::memmem::Finder<'static>>,
}

impl Literal {
    /// The literal `needle`.
    pub(crate) const fn new(needle: &'static str) -> Self {
        Literal {
            needle,
            finder: std::sync::OnceLock::new(),
        }
    }

    /// The literal.
    pub(crate) fn as_str(&self) -> &'static str {
        self.needle
    }

    /// Where it first occurs in `hay`.
    #[inline]
    pub(crate) fn find(&self, hay: &str) -> Option<usize> {
        if hay.len() < SHORT_SEARCH {
            return position(hay, self.needle);
        }
        self.finder
            .get_or_init(|| memchr::memmem::Finder::new(self.needle.as_bytes()))
            .find(hay.as_bytes())
    }
}

/// At most the first `n` bytes of `text`, cut on a character boundary.
pub(crate) fn prefix(text: &str, n: usize) -> &str {
    if text.len() <= n {
        return text;
    }
    let mut cut = n;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    &text[..cut]
}

/// Literal needles searched in one pass (Aho-Corasick over the lowercased value), built once
/// per list: dozens of markers cost one scan, not dozens.
pub(crate) struct Needles {
    automaton: aho_corasick::AhoCorasick,
    /// The same automaton without its prefilter, for values shorter than [`WALK_BELOW`]:
    /// the vectorized prefilter's set-up costs more than walking the DFA over a few dozen
    /// bytes, and most of a request's values are that short.
    walker: aho_corasick::AhoCorasick,
    /// One byte from each needle that holds a byte other than a letter or digit (its least
    /// common one in ordinary text). A short value with none of them, and shorter than the
    /// shortest needle that is all letters, cannot match: it is answered without starting
    /// a search (most values in a request are words).
    gate: [bool; 256],
    /// The length of the shortest needle made of letters and digits only.
    shortest_word: usize,
    /// For lists longer than the automaton's vectorized prefilter takes (64 needles), whose
    /// automaton walks every byte: packed searchers over the needles written backwards, run
    /// over the value written backwards. A needle's end (`exec(`, `java.io.`, `$_get[`) is
    /// rarer in text than its start (`pro`, `con`, `sys`), so the packed search's
    /// fingerprint, taken from the first bytes, rarely fires on ordinary text; when none
    /// fires, no needle occurs and the automaton is not run. Empty for short lists.
    backwards: Vec<aho_corasick::packed::Searcher>,
    /// For each needle with a symbol (a byte other than a letter, a digit or a space) three
    /// bytes from an end, its [`SymbolGrams`] bits (identical sets once), sorted by their
    /// first bit, and those first bits as a filter. A needle occurs only in a value holding
    /// each of its pieces, so a long value of words with full stops and commas (prose) is
    /// answered by most lists without a search, and by a few bit tests: only the needles
    /// whose first bit the value holds are looked at.
    symbol_grams: Vec<Vec<u16>>,
    first_grams: SymbolGrams,
    /// The needles the pieces cannot rule out (words, digits and spaces, or a symbol only
    /// next to an end: `a(b`), searched alone when no other needle can occur: their
    /// automaton and their places in the list. `None` when the list has none.
    words: Option<(aho_corasick::AhoCorasick, Vec<usize>)>,
}

/// Values with more symbols than this (code, markup, encoded data) are not given
/// [`SymbolGrams`]: the filter would fill up and rule little out, at a cost per symbol.
const MAX_GRAM_SYMBOLS: usize = 64;

/// Whether a byte is a symbol for [`SymbolGrams`]: not a letter, a digit or a space.
const fn is_symbol(b: u8) -> bool {
    let letter = (b | 0x20).wrapping_sub(b'a') < 26;
    let digit = b.wrapping_sub(b'0') < 10;
    !(letter || digit || b == b' ')
}

/// The short pieces of a value at its symbols, lowercased: for each symbol, the two bytes
/// before it with it, and it with the two bytes after (where the value is that long, else
/// the one byte), as a 1024-bit Bloom filter. A piece that is there always tests present;
/// one that is not tests absent unless its bit is shared (a few percent for a value with
/// dozens of symbols). Prose has few symbols, so few pieces.
#[derive(Clone, Copy)]
pub(crate) struct SymbolGrams([u64; 16]);

impl SymbolGrams {
    const EMPTY: SymbolGrams = SymbolGrams([0; 16]);

    /// The bit of a piece of two or three bytes (lowercase: the value's pieces are taken
    /// from its lowercased form, a needle's are lowercased first).
    fn bit(piece: &[u8]) -> u16 {
        let key = piece.iter().fold(0u32, |k, b| k << 8 | u32::from(*b));
        (key.wrapping_mul(0x9E37_79B1) >> 22) as u16
    }

    fn insert(&mut self, bit: u16) {
        self.0[usize::from(bit >> 6)] |= 1 << (bit & 63);
    }

    fn has(&self, bit: u16) -> bool {
        self.0[usize::from(bit >> 6)] & (1 << (bit & 63)) != 0
    }

    /// The pieces of `value` (lowercase), or `None` past [`MAX_GRAM_SYMBOLS`] symbols.
    fn of(value: &[u8]) -> Option<Self> {
        let mut grams = SymbolGrams::EMPTY;
        let mut symbols = 0;
        for (i, &b) in value.iter().enumerate() {
            if is_symbol(b) {
                symbols += 1;
                if symbols > MAX_GRAM_SYMBOLS {
                    return None;
                }
                grams.insert_at(value, i);
            }
        }
        Some(grams)
    }

    /// The pieces of `value` (a whole value: a piece cut at its ends is not one) at the
    /// symbol at `i`.
    fn insert_at(&mut self, value: &[u8], i: usize) {
        for piece in Self::pieces_at(value, i) {
            self.insert(Self::bit(piece));
        }
    }

    /// The piece ending at the symbol at `i` and the piece starting there: three bytes each,
    /// or two where `s` has no more.
    fn pieces_at(s: &[u8], i: usize) -> impl Iterator<Item = &[u8]> {
        let before = match i {
            0 => None,
            1 => Some(&s[..2]),
            _ => Some(&s[i - 2..=i]),
        };
        let after = if i + 2 < s.len() {
            Some(&s[i..i + 3])
        } else if i + 1 < s.len() {
            Some(&s[i..i + 2])
        } else {
            None
        };
        before.into_iter().chain(after)
    }

    /// The bits a needle needs present. A needle's piece of three bytes at a symbol is the
    /// value's own piece there; a needle's piece of two bytes (its symbol one from an end)
    /// may be part of a longer piece in the value, so it needs that pair itself, which the
    /// value holds only where it ends: a needle ties itself to the value's pieces only by
    /// its three-byte pieces, and by pairs at the value's ends, so pairs are not asked.
    fn needed_by(needle: &[u8]) -> Vec<u16> {
        let needle = &needle.to_ascii_lowercase()[..];
        let mut bits: Vec<u16> = (0..needle.len())
            .filter(|&i| is_symbol(needle[i]))
            .flat_map(|i| Self::pieces_at(needle, i))
            .filter(|piece| piece.len() == 3)
            .map(Self::bit)
            .collect();
        bits.sort_unstable();
        bits.dedup();
        bits
    }
}

/// The value [`detect_all`] is judging: where its two forms (as normalized, and lowercased)
/// lie in memory, and its symbol pieces. A needle list asked about a slice of either form
/// knows every piece the slice can hold (pieces are lowercased, so the forms agree); a string
/// made from the value (decoded, rewritten) lies elsewhere and is searched without the
/// shortcut.
#[derive(Clone, Copy)]
struct ValueBytes {
    text: (usize, usize),
    lower: (usize, usize),
    grams: SymbolGrams,
}

thread_local! {
    static VALUE_BYTES: std::cell::Cell<Option<ValueBytes>> = const { std::cell::Cell::new(None) };
}

/// While this lives, [`VALUE_BYTES`] describes `text` and `lower` (borrowed for as long, so
/// they can neither change nor be freed); it puts back what was there before when dropped.
struct ValueScope<'a> {
    previous: Option<ValueBytes>,
    _borrowed: std::marker::PhantomData<&'a str>,
}

impl<'a> ValueScope<'a> {
    fn enter(text: &'a str, lower: &'a str, grams: SymbolGrams) -> Self {
        let range = |s: &str| (s.as_ptr() as usize, s.as_ptr() as usize + s.len());
        let current = ValueBytes {
            text: range(text),
            lower: range(lower),
            grams,
        };
        ValueScope {
            previous: VALUE_BYTES.with(|v| v.replace(Some(current))),
            _borrowed: std::marker::PhantomData,
        }
    }
}

impl Drop for ValueScope<'_> {
    fn drop(&mut self) {
        VALUE_BYTES.with(|v| v.set(self.previous));
    }
}

/// The symbol pieces `hay` can hold when it is a slice of the value being judged.
fn known_grams(hay: &str) -> Option<SymbolGrams> {
    let (start, end) = (hay.as_ptr() as usize, hay.as_ptr() as usize + hay.len());
    let within = |(from, to): (usize, usize)| from <= start && end <= to;
    VALUE_BYTES
        .with(|v| v.get())
        .filter(|v| within(v.text) || within(v.lower))
        .map(|v| v.grams)
}

/// Needles per backwards screen (the packed searcher's fast form takes up to 32).
const SCREEN_SLICE: usize = 32;

/// Values shorter than this are not screened backwards.
const SCREEN_FROM: usize = 256;

/// Bytes common in ordinary values, most common first: a needle's gate byte is chosen
/// from the others where it has any.
const COMMON_BYTES: &[u8] = b" .,-_/:'()";

/// How common `b` is in ordinary text (higher is rarer).
fn rarity(b: u8) -> usize {
    COMMON_BYTES
        .iter()
        .position(|c| *c == b)
        .unwrap_or(COMMON_BYTES.len())
}

/// Values shorter than this are searched by walking the automaton, without its prefilter.
const WALK_BELOW: usize = 64;

/// Values up to this length are checked against the gate before any search.
const SHORT_HAYSTACK: usize = 96;

impl Needles {
    /// The automata for `list`, built on first use and kept in `cell`.
    pub(crate) fn cached(
        cell: &'static std::sync::OnceLock<Needles>,
        list: impl FnOnce() -> Vec<&'static str>,
    ) -> &'static Needles {
        cell.get_or_init(|| {
            let list = list();
            let build = |prefilter: bool| {
                aho_corasick::AhoCorasick::builder()
                    .match_kind(aho_corasick::MatchKind::LeftmostLongest)
                    .kind(Some(aho_corasick::AhoCorasickKind::DFA))
                    .prefilter(prefilter)
                    .build(&list)
                    // Built from this crate's own constant lists; they always compile.
                    .unwrap_or_else(|e| panic!("needle list does not build: {e}"))
            };
            let automaton = build(true);
            let walker = build(false);
            let mut gate = [false; 256];
            let mut shortest_word = usize::MAX;
            for needle in &list {
                match needle
                    .bytes()
                    .filter(|b| !b.is_ascii_alphanumeric())
                    .max_by_key(|b| rarity(*b))
                {
                    Some(b) => gate[usize::from(b)] = true,
                    None => shortest_word = shortest_word.min(needle.len()),
                }
            }
            let mut backwards = Vec::new();
            if list.len() > 64 {
                for slice in list.chunks(SCREEN_SLICE) {
                    let mut builder = aho_corasick::packed::Config::new().builder();
                    for needle in slice {
                        let reversed: Vec<u8> = needle.bytes().rev().collect();
                        builder.add(reversed);
                    }
                    match builder.build() {
                        Some(searcher) => backwards.push(searcher),
                        // No screen for part of the list would hide its needles: none at all.
                        None => {
                            backwards.clear();
                            break;
                        }
                    }
                }
            }
            let mut runs: Vec<Vec<u16>> = Vec::new();
            let mut word_places = Vec::new();
            for (place, needle) in list.iter().enumerate() {
                let needed = SymbolGrams::needed_by(needle.as_bytes());
                if needed.is_empty() {
                    word_places.push(place);
                } else if !runs.contains(&needed) {
                    runs.push(needed);
                }
            }
            runs.sort_unstable();
            let mut first_grams = SymbolGrams::EMPTY;
            for run in &runs {
                first_grams.insert(run[0]);
            }
            let symbol_grams = runs;
            let words = (!word_places.is_empty()).then(|| {
                let words: Vec<&str> = word_places.iter().map(|&i| list[i]).collect();
                let automaton = aho_corasick::AhoCorasick::builder()
                    .match_kind(aho_corasick::MatchKind::LeftmostLongest)
                    .build(&words)
                    // Built from this crate's own constant lists; they always compile.
                    .unwrap_or_else(|e| panic!("needle list does not build: {e}"));
                (automaton, word_places)
            });
            Needles {
                automaton,
                walker,
                gate,
                shortest_word,
                backwards,
                symbol_grams,
                first_grams,
                words,
            }
        })
    }

    /// Whether some needle may occur in `hay`, by the backwards screens (true without them).
    fn may_occur(&self, hay: &str) -> bool {
        // On a short value the automaton's walk costs less than reversing and screening.
        if self.backwards.is_empty() || hay.len() < SCREEN_FROM {
            return true;
        }
        // One buffer per thread, as long as the longest value it reversed (fields are cut
        // at MAX_FIELD_BYTES): no allocation per value.
        thread_local! {
            static REVERSED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        REVERSED.with(|buffer| match buffer.try_borrow_mut() {
            Ok(mut reversed) => {
                reversed.clear();
                reversed.extend(hay.bytes().rev());
                self.backwards
                    .iter()
                    .any(|s| s.find(&reversed[..]).is_some())
            }
            Err(_) => true,
        })
    }

    /// The automaton to search `hay` with, and where its needles are in the list (`None`:
    /// the whole list, in order), or `None` when no needle can occur.
    fn automaton(&self, hay: &str) -> Option<(&aho_corasick::AhoCorasick, Option<&[usize]>)> {
        let cannot_match = hay.len() <= SHORT_HAYSTACK
            && hay.len() < self.shortest_word
            && !hay.bytes().any(|b| self.gate[usize::from(b)]);
        if cannot_match {
            return None;
        }
        if hay.len() < WALK_BELOW {
            return Some((&self.walker, None));
        }
        if hay.len() > SHORT_HAYSTACK {
            if let Some(grams) = known_grams(hay) {
                let symbolic = self.may_hold_symbolic(&grams);
                if !symbolic {
                    // Only needles without symbols can occur.
                    return self
                        .words
                        .as_ref()
                        .map(|(automaton, places)| (automaton, Some(places.as_slice())));
                }
            }
        }
        self.may_occur(hay).then_some((&self.automaton, None))
    }

    /// Whether some needle with symbols may occur in a value with these pieces.
    fn may_hold_symbolic(&self, grams: &SymbolGrams) -> bool {
        let runs = &self.symbol_grams;
        for (word, (held, firsts)) in grams.0.iter().zip(self.first_grams.0.iter()).enumerate() {
            let mut both = held & firsts;
            while both != 0 {
                let first = (word * 64) as u16 + both.trailing_zeros() as u16;
                both &= both - 1;
                let from = runs.partition_point(|run| run[0] < first);
                let any = runs[from..]
                    .iter()
                    .take_while(|run| run[0] == first)
                    .any(|run| run[1..].iter().all(|bit| grams.has(*bit)));
                if any {
                    return true;
                }
            }
        }
        false
    }

    /// The first needle found (leftmost, longest there): `(index in the list, start)`.
    pub(crate) fn first(&self, hay: &str) -> Option<(usize, usize)> {
        let (automaton, places) = self.automaton(hay)?;
        automaton.find(hay).map(|m| {
            let index = m.pattern().as_usize();
            (places.map_or(index, |p| p[index]), m.start())
        })
    }

    /// Each needle found, once, with where it first starts: `(index in the list, start)`.
    /// Matches do not overlap (the longest wins where two start together: `java.lang.runtime`
    /// over `java.lang.`), which is what the lists want and much faster than every overlap.
    pub(crate) fn first_of_each(&self, hay: &str) -> Vec<(usize, usize)> {
        let mut found: Vec<(usize, usize)> = Vec::new();
        let Some((automaton, places)) = self.automaton(hay) else {
            return found;
        };
        for m in automaton.find_iter(hay) {
            let index = m.pattern().as_usize();
            let index = places.map_or(index, |p| p[index]);
            if !found.iter().any(|(i, _)| *i == index) {
                found.push((index, m.start()));
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(uri: &str) -> Inspection {
        let detector = ThreatDetector::new(Policy::default(), Severity::High, 1.2);
        detector.inspect(&HttpRequest {
            method: "GET",
            uri,
            headers: &[],
            body: b"",
        })
    }

    #[test]
    fn a_nul_byte_in_a_query_argument_is_refused() {
        let inspection = verdict("/get?test=test1%00");
        assert!(inspection.blocked, "{inspection:?}");
        assert_eq!(
            inspection.indicators[0].threat_type,
            ThreatType::ProtocolViolation
        );
        assert!(!verdict("/get?test=test1%20").blocked);
    }

    #[test]
    fn an_expression_in_the_content_type_is_inspected() {
        let detector = ThreatDetector::new(Policy::default(), Severity::High, 1.2);
        let inspect = |content_type: &str| {
            detector.inspect(&HttpRequest {
                method: "POST",
                uri: "/upload",
                headers: &[("User-Agent", "curl/8"), ("Content-Type", content_type)],
                body: b"x",
            })
        };
        let struts = "%{(#_='multipart/form-data').(#_memberAccess=@ognl.OgnlContext@DEFAULT_MEMBER_ACCESS).(@java.lang.Runtime@getRuntime().exec('id'))}";
        assert!(inspect(struts).blocked);
        assert!(!inspect("multipart/form-data; boundary=\"----abc\"").blocked);
    }

    #[test]
    fn a_value_remembered_clean_in_one_place_is_judged_again_in_another() {
        let detector = ThreatDetector::new(Policy::default(), Severity::High, 1.2);
        let internal = "http://169.254.169.254/latest/meta-data/";
        let request = |headers: &[(&str, &str)], uri: &str| {
            detector
                .inspect(&HttpRequest {
                    method: "GET",
                    uri,
                    headers,
                    body: b"",
                })
                .blocked
        };
        // A Referer is never fetched: clean there, and remembered clean there.
        for _ in 0..2 {
            assert!(!request(&[("Referer", internal)], "/"));
        }
        // The same bytes as a query argument the server may fetch: SSRF, every time.
        let uri = format!("/fetch?url={internal}");
        for _ in 0..2 {
            assert!(request(&[], &uri));
            assert!(request(&[("X-Target", internal)], "/"));
        }
        // An attack is never remembered: the second and later requests are refused too.
        for _ in 0..3 {
            assert!(request(&[], "/search?q=1'+or+1=1--"));
            assert!(request(&[("User-Agent", "sqlmap/1.8")], "/"));
            assert!(request(&[("User-Agent", "curl/8")], "/.git/config"));
        }
        // The agent and the path remembered clean for the scanner's checks stay clean.
        for _ in 0..3 {
            assert!(!request(&[("User-Agent", "curl/8")], "/docs/index.html"));
        }
    }

    #[test]
    fn a_session_id_in_a_link_from_another_site_is_session_fixation() {
        let detector = ThreatDetector::new(Policy::default(), Severity::High, 1.2);
        let fixation = |uri: &str, host: &str, referer: Option<&str>| {
            let mut headers = vec![("Host", host), ("User-Agent", "Mozilla/5.0")];
            if let Some(referer) = referer {
                headers.push(("Referer", referer));
            }
            detector
                .inspect(&HttpRequest {
                    method: "GET",
                    uri,
                    headers: &headers,
                    body: b"",
                })
                .indicators
                .iter()
                .any(|i| i.threat_type == ThreatType::SessionFixation)
        };
        for (uri, host, referer) in [
            (
                "/login?PHPSESSID=abc123",
                "shop.example",
                "https://attacker.example/",
            ),
            (
                "/l?jsessionid=74B0CB41",
                "localhost",
                "http://localhost.evil.example/x",
            ),
            (
                "/a?ASP.NET_SessionId=x1",
                "app.example.com",
                "https://evil.example.com/",
            ),
            (
                "/a?connect.sid=s:j8jK",
                "node.example",
                "http://phish.example/login",
            ),
            (
                "/a?next-auth.session-token=t",
                "next.example",
                "https://x.example/",
            ),
            (
                "/a.cfm?cfid=1&cftoken=2",
                "cf.example",
                "http://evil.example/",
            ),
        ] {
            assert!(fixation(uri, host, Some(referer)), "{uri} from {referer}");
        }
        for (uri, host, referer) in [
            // From the site's own pages (URL rewriting), or from nowhere.
            (
                "/l?jsessionid=74B0CB41",
                "localhost",
                Some("http://localhost/test"),
            ),
            (
                "/l?sessionid=abc",
                "app.example:8443",
                Some("https://app.example/prev"),
            ),
            ("/l?jsessionid=74B0CB41", "localhost", None),
            // Not session names.
            (
                "/talks?session=keynote",
                "conf.example",
                Some("https://news.example/"),
            ),
            (
                "/q?assessment=3",
                "school.example",
                Some("https://mail.example/"),
            ),
            (
                "/login?username=a&password=b",
                "app.example",
                Some("https://evil.example/"),
            ),
        ] {
            assert!(!fixation(uri, host, referer), "{uri} from {referer:?}");
        }
        // No Host to compare with (HTTP/2 carries it in the URI): not judged.
        let inspection = detector.inspect(&HttpRequest {
            method: "GET",
            uri: "/login?PHPSESSID=abc123",
            headers: &[("Referer", "https://attacker.example/")],
            body: b"",
        });
        assert!(inspection
            .indicators
            .iter()
            .all(|i| i.threat_type != ThreatType::SessionFixation));
    }

    #[test]
    fn custom_regex_patterns_see_values_remembered_clean() {
        let patterns = vec![policy::CustomPattern {
            name: "internal_ticket".into(),
            pattern: "TICKET-[0-9]+".into(),
            severity: "high".into(),
        }];
        let policy = Policy::new(&[], &patterns).expect("valid pattern");
        let detector = ThreatDetector::new(policy, Severity::High, 1.2);
        for _ in 0..3 {
            let inspection = detector.inspect(&HttpRequest {
                method: "GET",
                uri: "/search?q=TICKET-42",
                headers: &[],
                body: b"",
            });
            assert!(inspection.blocked, "{inspection:?}");
        }
    }

    #[test]
    fn the_short_search_rejects_a_byte_flagged_after_a_hit() {
        // `/` is `.` XOR 1: the zero-byte test also flags it right after the `.` at 0.
        assert_eq!(position("./.././.././../{file}", ".."), Some(2));
        assert_eq!(position("a`a`xaa", "aa"), Some(5));
    }

    proptest::proptest! {
        #[test]
        fn the_short_search_finds_what_memmem_finds(
            // Bytes one apart (`.` and `/`, `a` and `` ` ``) and NULs: the words whose
            // zero-byte test flags more than the hits.
            hay in "[./a`\\x00\\x01]{0,80}",
            needle in "[./a`\\x01]{1,4}",
        ) {
            proptest::prop_assert_eq!(
                position(&hay, &needle),
                memchr::memmem::find(hay.as_bytes(), needle.as_bytes())
            );
        }
    }

    fn grams_of(lower: &str) -> SymbolGrams {
        SymbolGrams::of(lower.as_bytes()).expect("few symbols")
    }

    proptest::proptest! {
        #[test]
        fn a_list_asked_about_the_value_being_judged_finds_what_its_automaton_finds(
            // Long values of words with a few symbols, some of them the needles' own, in
            // either case.
            words in proptest::collection::vec("[a-zA-Z]{1,8}", 20..60),
            inserts in proptest::collection::vec(
                ("[ .,()/$_\\\\\\[]|exec\\(|/etc/|\\.env|CLASSLOADER|classloader", 0usize..400),
                0..6,
            ),
            cut in 0usize..40,
        ) {
            static MIXED: std::sync::OnceLock<Needles> = std::sync::OnceLock::new();
            let list = ["exec(", "/etc/", "$_get[", ".env", "a(b", "..\\", "classloader", "class loader"];
            let needles = Needles::cached(&MIXED, || list.to_vec());
            let mut value = words.join(" ");
            for (piece, at) in &inserts {
                let at = at % value.len();
                value.insert_str(at, piece);
            }
            let lower = value.to_ascii_lowercase();
            let reference = |hay: &str| {
                let mut expected = Vec::new();
                for m in needles.automaton.find_iter(hay) {
                    let index = m.pattern().as_usize();
                    if !expected.iter().any(|(i, _): &(usize, usize)| *i == index) {
                        expected.push((index, m.start()));
                    }
                }
                expected
            };
            let _scope = ValueScope::enter(&value, &lower, grams_of(&lower));
            for hay in [&value[..], &lower[..], &value[cut.min(value.len())..], &lower[cut.min(lower.len())..]] {
                proptest::prop_assert_eq!(needles.first_of_each(hay), reference(hay), "{}", hay);
                proptest::prop_assert_eq!(
                    needles.first(hay),
                    needles.automaton.find(hay).map(|m| (m.pattern().as_usize(), m.start()))
                );
            }
        }
    }

    #[test]
    fn a_list_is_not_searched_in_a_long_value_without_its_symbol_pieces() {
        static SYMBOLIC: std::sync::OnceLock<Needles> = std::sync::OnceLock::new();
        let needles = Needles::cached(&SYMBOLIC, || vec!["exec(", "/etc/passwd", ".env"]);
        let prose = "the quarterly figures for the northern region, with notes. ".repeat(4);
        let lower = prose.clone();
        let _scope = ValueScope::enter(&prose, &lower, grams_of(&lower));
        assert!(needles.automaton(&prose).is_none());
        // A string made from the value is not a slice of it: searched as ever.
        let rewritten = format!("{prose}/etc/passwd");
        assert_eq!(needles.first_of_each(&rewritten), vec![(1, prose.len())]);
    }

    #[test]
    fn a_long_list_screened_backwards_finds_what_its_automaton_finds() {
        // More needles than the automaton's prefilter takes: the backwards screens are on.
        static LONG: std::sync::OnceLock<Needles> = std::sync::OnceLock::new();
        let words: Vec<&'static str> = (0..80)
            .map(|i| &*Box::leak(format!("call_{i}(").into_boxed_str()))
            .chain(["java.lang.", "java.lang.runtime", "$_get["])
            .collect();
        let needles = Needles::cached(&LONG, || words.clone());
        assert!(!needles.backwards.is_empty());
        let reference = aho_corasick::AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::LeftmostLongest)
            .build(&words)
            .expect("builds");
        let prose = "a sentence about processes, constructors and systems. ".repeat(8);
        for hay in [
            prose.clone(),
            format!("{prose}then call_7(x) and java.lang.runtime and call_71("),
            format!("$_get[{prose}java.lang.x"),
            format!("{prose}call_79"),
        ] {
            let mut expected: Vec<(usize, usize)> = Vec::new();
            for m in reference.find_iter(&hay) {
                let index = m.pattern().as_usize();
                if !expected.iter().any(|(i, _)| *i == index) {
                    expected.push((index, m.start()));
                }
            }
            assert!(hay.len() >= SCREEN_FROM);
            assert_eq!(needles.first_of_each(&hay), expected, "{hay}");
        }
    }

    #[test]
    fn paths_spelled_in_undecoded_escapes_are_read() {
        for uri in [
            "/search?q=%c0%ee%c0%ee%c1%8setc%c1%8spasswd",
            "/search?q=0x2e0x2e0x2f0x2e0x2e0x2fetc0x2fpasswd",
            "/search?q=..%01%c0%qf..%01%c0%qfetc%c0%qfissue",
        ] {
            assert!(verdict(uri).blocked, "{uri}");
        }
        for uri in [
            "/search?q=convert.%20then%200x20%20is%20a%20space",
            "/search?q=50%25%20off",
        ] {
            assert!(!verdict(uri).blocked, "{uri}");
        }
    }

    #[test]
    fn sql_in_a_path_segment_is_found() {
        for uri in [
            "/post/1234%20OR%201=1",
            "/get/if(now()=sysdate(),sleep(12),0)",
            "/items/foo')waitfor%20delay'0:0:20'--",
        ] {
            let inspection = verdict(uri);
            assert!(
                inspection.blocked
                    && inspection.blocking_names(Severity::High) == ["sql_injection"],
                "{uri}: {inspection:?}"
            );
            assert_eq!(inspection.indicators[0].location, "path");
        }
        for uri in [
            "/api/v1/users/42",
            "/docs/what's-new",
            "/wiki/C_(programming_language)",
            "/search/a=b;c=d",
            "/files/O'Brien%20notes.txt",
        ] {
            assert!(!verdict(uri).blocked, "{uri}: {:?}", verdict(uri));
        }
    }
}
#[cfg(test)]
mod symbol_tests {
    #[test]
    fn the_arithmetic_symbol_test_is_the_plain_one() {
        for b in 0..=255u8 {
            assert_eq!(
                super::is_symbol(b),
                !(b.is_ascii_alphanumeric() || b == b' '),
                "{b}"
            );
        }
    }
}
