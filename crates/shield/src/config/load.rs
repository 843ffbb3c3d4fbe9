//! Layering the sources into one [`Config`], collecting every problem on the way.

use std::fmt;
use std::path::PathBuf;

use toml::{Table, Value};

use super::settings::{self, Kind, Setting, SECTIONS};
use super::{Config, ConfigOverrides};

/// Where configuration comes from, lowest precedence first.
#[derive(Debug, Clone, Default)]
pub struct ConfigSources {
    /// Starting point instead of the library defaults (the `demo` command turns everything on
    /// here, so the file and the environment still apply on top).
    pub base: Option<Config>,
    /// A TOML file (`--config`).
    pub file: Option<PathBuf>,
    /// Environment variables, usually `std::env::vars()`; passed in so tests need not touch the
    /// process environment.
    pub env: Vec<(String, String)>,
    /// Library overrides and command-line flags, highest precedence.
    pub overrides: ConfigOverrides,
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Where it came from: `environment`, the file's path, `override`, or `validation`.
    pub source: String,
    /// The key as the user wrote it (`SECURITY_RATE_LIMIT_PER_IP_CAPACITY`, `rate_limit.foo`).
    pub key: String,
    /// The offending value as written, if there is one.
    pub value: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(
                f,
                "{}={} ({}): {}",
                self.key, value, self.source, self.message
            ),
            None => write!(f, "{} ({}): {}", self.key, self.source, self.message),
        }
    }
}

/// Every problem found while loading; the configuration is not used when there is any.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let noun = if self.problems.len() == 1 {
            "problem"
        } else {
            "problems"
        };
        writeln!(f, "{} configuration {noun}:", self.problems.len())?;
        for problem in &self.problems {
            writeln!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

struct Collector(Vec<ConfigProblem>);

impl Collector {
    fn push(&mut self, source: &str, key: &str, value: Option<String>, message: impl Into<String>) {
        self.0.push(ConfigProblem {
            source: source.to_string(),
            key: key.to_string(),
            value,
            message: message.into(),
        });
    }
}

/// Layers the sources and validates the result.
pub fn load(sources: ConfigSources) -> Result<Config, ConfigError> {
    let mut problems = Collector(Vec::new());
    let base = sources.base.unwrap_or_default();
    let mut tree = match Value::try_from(&base) {
        Ok(Value::Table(table)) => table,
        _ => Table::new(),
    };

    if let Some(path) = &sources.file {
        apply_file(&mut tree, path, &mut problems);
    }
    apply_env(&mut tree, &sources.env, &mut problems);
    apply_overrides(&mut tree, &sources.overrides, &mut problems);

    // Values that failed their checks were never written into the tree, so what is left
    // still deserializes and can be validated: every problem is reported in one go.
    let config: Config = match Value::Table(tree).try_into() {
        Ok(config) => config,
        Err(e) => {
            problems.push("configuration", "(structure)", None, e.to_string());
            return Err(ConfigError {
                problems: problems.0,
            });
        }
    };
    validate(&config, &mut problems);
    if problems.0.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError {
            problems: problems.0,
        })
    }
}

fn apply_file(tree: &mut Table, path: &std::path::Path, problems: &mut Collector) {
    let source = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            problems.push(
                &source,
                "--config",
                Some(source.clone()),
                format!("cannot read file: {e}"),
            );
            return;
        }
    };
    let file: Table = match toml::from_str(&text) {
        Ok(table) => table,
        Err(e) => {
            problems.push(
                &source,
                "(file)",
                None,
                format!("not valid TOML: {}", e.to_string().trim()),
            );
            return;
        }
    };
    for (key, value) in file {
        match value {
            Value::Table(section) if SECTIONS.contains(&key.as_str()) => {
                for (sub, value) in section {
                    let path = format!("{key}.{sub}");
                    apply_file_value(tree, &path, value, &source, problems);
                }
            }
            value => apply_file_value(tree, &key, value, &source, problems),
        }
    }
}

fn apply_file_value(
    tree: &mut Table,
    path: &str,
    value: Value,
    source: &str,
    problems: &mut Collector,
) {
    if path == "rate_limit.rules" {
        apply_rules(tree, value, source, problems);
        return;
    }
    if path == "mcp.tools" {
        let Value::Table(section) = value else {
            problems.push(source, path, None, "expected a [mcp.tools] table");
            return;
        };
        for (sub, value) in section {
            apply_file_value(tree, &format!("mcp.tools.{sub}"), value, source, problems);
        }
        return;
    }
    if path == "mcp.tools.access" {
        apply_tool_access(tree, value, source, problems);
        return;
    }
    if path == "mcp.results" {
        let Value::Table(section) = value else {
            problems.push(source, path, None, "expected a [mcp.results] table");
            return;
        };
        for (sub, value) in section {
            apply_file_value(tree, &format!("mcp.results.{sub}"), value, source, problems);
        }
        return;
    }
    if path == "mcp.results.tool" {
        apply_result_policies(tree, value, source, problems);
        return;
    }
    if path == "threat_detection.allow" || path == "threat_detection.patterns" {
        apply_threat_policy(tree, path, value, source, problems);
        return;
    }
    let Some(setting) = settings::SETTINGS.iter().find(|s| s.path == path) else {
        problems.push(source, path, None, "unknown key");
        return;
    };
    match coerce(setting.kind, value.clone()) {
        Ok(value) => set_path(tree, setting.path, Some(value)),
        Err(message) => problems.push(source, path, Some(show(&value)), message),
    }
}

/// `[[rate_limit.rules]]`: each rule is read on its own, so every broken one is reported by
/// its position and name, and the good ones still reach validation.
fn apply_rules(tree: &mut Table, value: Value, source: &str, problems: &mut Collector) {
    let Value::Array(items) = value else {
        problems.push(
            source,
            "rate_limit.rules",
            None,
            "expected [[rate_limit.rules]] tables",
        );
        return;
    };
    let mut good = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (i, item) in items.into_iter().enumerate() {
        let name = item
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let key = if name.is_empty() {
            format!("rate_limit.rules[{i}]")
        } else {
            format!("rate_limit.rules[{i}] ({name})")
        };
        let rule: super::RateLimitRule = match item.clone().try_into() {
            Ok(rule) => rule,
            Err(e) => {
                problems.push(source, &key, None, one_line(&e));
                continue;
            }
        };
        let before = problems.0.len();
        let mut bad = |ok: bool, value: String, message: &str| {
            if !ok {
                problems.push(source, &key, Some(value), message);
            }
        };
        bad(
            !rule.name.trim().is_empty(),
            rule.name.clone(),
            "a rule needs a name",
        );
        bad(
            names.insert(rule.name.clone()),
            rule.name.clone(),
            "two rules have this name",
        );
        bad(
            rule.capacity >= 1,
            rule.capacity.to_string(),
            "capacity must be at least 1",
        );
        if let Some(rate) = rule.refill_rate {
            bad(
                rate > 0.0 && rate.is_finite(),
                rate.to_string(),
                "refill_rate must be greater than 0",
            );
        }
        if let Some(path) = &rule.path {
            bad(
                path.starts_with('/'),
                path.clone(),
                "path must start with /",
            );
        }
        if let Some(method) = &rule.method {
            bad(
                http::Method::from_bytes(method.as_bytes()).is_ok(),
                method.clone(),
                "not an HTTP method",
            );
        }
        if problems.0.len() == before {
            good.push(item);
        }
    }
    set_path(tree, "rate_limit.rules", Some(Value::Array(good)));
}

/// A deserializer's message on one line.
fn one_line(error: &impl fmt::Display) -> String {
    error
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// `[[mcp.tools.access]]`: each rule read and checked on its own (a network that does not
/// parse names its rule), the good ones kept.
fn apply_tool_access(tree: &mut Table, value: Value, source: &str, problems: &mut Collector) {
    let Value::Array(items) = value else {
        problems.push(
            source,
            "mcp.tools.access",
            None,
            "expected [[mcp.tools.access]] tables",
        );
        return;
    };
    let mut good = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let key = format!("mcp.tools.access[{i}]");
        let rule: super::ToolAccessRule = match item.clone().try_into() {
            Ok(rule) => rule,
            Err(e) => {
                problems.push(source, &key, None, one_line(&e));
                continue;
            }
        };
        let before = problems.0.len();
        for network in &rule.networks {
            if crate::ip::parse_network(network).is_err() {
                problems.push(
                    source,
                    &format!("{key}.networks"),
                    Some(network.clone()),
                    "not an IP address or CIDR",
                );
            }
        }
        let empty = [
            &rule.allow_tools,
            &rule.deny_tools,
            &rule.allow_prompts,
            &rule.deny_prompts,
            &rule.allow_resources,
            &rule.deny_resources,
        ]
        .iter()
        .all(|list| list.is_empty());
        if empty {
            problems.push(
                source,
                &key,
                None,
                "a rule needs at least one of allow_tools, deny_tools, allow_prompts, \
                 deny_prompts, allow_resources, deny_resources",
            );
        }
        if problems.0.len() == before {
            good.push(item);
        }
    }
    set_path(tree, "mcp.tools.access", Some(Value::Array(good)));
}

/// `[[mcp.results.tool]]`: each rule read and checked on its own, the good ones kept.
fn apply_result_policies(tree: &mut Table, value: Value, source: &str, problems: &mut Collector) {
    let Value::Array(items) = value else {
        problems.push(
            source,
            "mcp.results.tool",
            None,
            "expected [[mcp.results.tool]] tables",
        );
        return;
    };
    let mut good = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let key = format!("mcp.results.tool[{i}]");
        let rule: super::ToolResultPolicy = match item.clone().try_into() {
            Ok(rule) => rule,
            Err(e) => {
                problems.push(source, &key, None, one_line(&e));
                continue;
            }
        };
        if rule.name.trim().is_empty() {
            problems.push(
                source,
                &format!("{key}.name"),
                None,
                "a rule needs a tool name (or a glob)",
            );
            continue;
        }
        good.push(item);
    }
    set_path(tree, "mcp.results.tool", Some(Value::Array(good)));
}

/// `[[threat_detection.allow]]` and `[[threat_detection.patterns]]`: each entry is read and
/// checked on its own (a regex that does not compile names its entry), and the good ones are
/// kept.
fn apply_threat_policy(
    tree: &mut Table,
    path: &str,
    value: Value,
    source: &str,
    problems: &mut Collector,
) {
    let Value::Array(items) = value else {
        problems.push(source, path, None, format!("expected [[{path}]] tables"));
        return;
    };
    let mut good = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let key = format!("{path}[{i}]");
        let checked = if path == "threat_detection.allow" {
            item.clone()
                .try_into::<crate::threat::AllowRule>()
                .map_err(|e| (String::new(), e.to_string()))
                .and_then(|rule| {
                    crate::threat::Policy::new(std::slice::from_ref(&rule), &[])
                        .map(|_| ())
                        .map_err(|e| (e.value, e.message))
                })
        } else {
            item.clone()
                .try_into::<crate::threat::CustomPattern>()
                .map_err(|e| (String::new(), e.to_string()))
                .and_then(|pattern| {
                    crate::threat::Policy::new(&[], std::slice::from_ref(&pattern))
                        .map(|_| ())
                        .map_err(|e| (e.value, e.message))
                })
        };
        match checked {
            Ok(()) => good.push(item),
            Err((value, message)) => {
                let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
                problems.push(source, &key, (!value.is_empty()).then_some(value), message);
            }
        }
    }
    set_path(tree, path, Some(Value::Array(good)));
}

fn apply_env(tree: &mut Table, env: &[(String, String)], problems: &mut Collector) {
    for setting in settings::SETTINGS {
        // The last assignment wins, as in a shell.
        let Some((_, raw)) = env.iter().rev().find(|(name, _)| name == setting.env) else {
            continue;
        };
        match parse_text(setting, raw) {
            Ok(value) => set_path(tree, setting.path, value),
            Err(message) => problems.push("environment", setting.env, Some(raw.clone()), message),
        }
    }
}

fn apply_overrides(tree: &mut Table, overrides: &ConfigOverrides, problems: &mut Collector) {
    for (name, value) in overrides.entries() {
        let Some(setting) = settings::find(name) else {
            problems.push("override", name, Some(show(value)), "unknown setting");
            continue;
        };
        // Text for a typed setting is read the way the environment is (`--set X=5`).
        let result = match (value, setting.kind) {
            (Value::String(text), kind) if !matches!(kind, Kind::Str | Kind::Choice(_)) => {
                parse_text(setting, text)
            }
            (value, kind) => coerce(kind, value.clone()).map(Some),
        };
        match result {
            Ok(value) => set_path(tree, setting.path, value),
            Err(message) => problems.push("override", name, Some(show(value)), message),
        }
    }
}

/// Checks a TOML value against a kind, converting where the meaning is unambiguous (an
/// integer where a number is expected, a comma-separated string where a list is).
fn coerce(kind: Kind, value: Value) -> Result<Value, String> {
    let fail = || Err(kind.expectation());
    match (kind, value) {
        (Kind::Bool, Value::Boolean(b)) => Ok(Value::Boolean(b)),
        (Kind::UInt, Value::Integer(i)) if i >= 0 => Ok(Value::Integer(i)),
        (Kind::Float | Kind::OptFloat, Value::Integer(i)) if i >= 0 => Ok(Value::Float(i as f64)),
        (Kind::Float | Kind::OptFloat, Value::Float(x)) if x.is_finite() && x >= 0.0 => {
            Ok(Value::Float(x))
        }
        (Kind::Str, Value::String(s)) => Ok(Value::String(s)),
        (Kind::Choice(words), Value::String(s)) => {
            let lower = s.trim().to_ascii_lowercase();
            if words.contains(&lower.as_str()) {
                Ok(Value::String(lower))
            } else {
                fail()
            }
        }
        (Kind::List, Value::String(s)) => Ok(split_list(&s)),
        (Kind::List, Value::Array(items)) => {
            if items.iter().all(|v| v.is_str()) {
                Ok(Value::Array(items))
            } else {
                fail()
            }
        }
        _ => fail(),
    }
}

/// Reads text (an environment value, a `--set` flag) as a setting's kind. `Ok(None)` unsets an
/// optional number.
fn parse_text(setting: &Setting, raw: &str) -> Result<Option<Value>, String> {
    let text = raw.trim();
    let fail = || Err(setting.kind.expectation());
    match setting.kind {
        Kind::Bool => match text.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Some(Value::Boolean(true))),
            "false" | "0" | "no" | "off" => Ok(Some(Value::Boolean(false))),
            _ => fail(),
        },
        Kind::UInt => match text.parse::<u64>() {
            Ok(n) if n <= i64::MAX as u64 => Ok(Some(Value::Integer(n as i64))),
            _ => fail(),
        },
        Kind::OptFloat if text.is_empty() => Ok(None),
        Kind::Float | Kind::OptFloat => match text.parse::<f64>() {
            Ok(x) if x.is_finite() && x >= 0.0 => Ok(Some(Value::Float(x))),
            _ => fail(),
        },
        Kind::Str => Ok(Some(Value::String(raw.to_string()))),
        Kind::Choice(_) => coerce(setting.kind, Value::String(text.to_string())).map(Some),
        Kind::List => Ok(Some(split_list(text))),
    }
}

fn split_list(text: &str) -> Value {
    Value::Array(
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| Value::String(s.to_string()))
            .collect(),
    )
}

fn set_path(tree: &mut Table, path: &str, value: Option<Value>) {
    let mut node = tree;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            match value {
                Some(value) => {
                    node.insert(part.to_string(), value);
                }
                None => {
                    node.remove(part);
                }
            }
            return;
        }
        let entry = node
            .entry(part.to_string())
            .or_insert_with(|| Value::Table(Table::new()));
        if !entry.is_table() {
            *entry = Value::Table(Table::new());
        }
        let Value::Table(next) = entry else { return };
        node = next;
    }
}

fn show(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A single Redis server over TCP or TLS. Cluster and Sentinel are refused here rather than
/// half-working later.
fn check_redis_url(url: &str) -> Result<(), String> {
    const SUPPORTED: &str = "point REDIS_URL at one Redis server: redis://[user:password@]host[:port][/db] or rediss:// for TLS (for a Redis Cluster, list its nodes in SECURITY_REDIS_CLUSTER_NODES instead; Sentinel is not supported: use the primary's address)";
    if url.contains(',') {
        return Err(format!(
            "a list of servers looks like a Cluster; {SUPPORTED}"
        ));
    }
    let scheme = url.split("://").next().unwrap_or("");
    match scheme {
        "redis" | "rediss" => {}
        s if s.contains("sentinel") || s.contains("cluster") => {
            return Err(format!("{s}:// is not supported; {SUPPORTED}"))
        }
        _ => return Err(SUPPORTED.to_string()),
    }
    redis::Client::open(url)
        .map(|_| ())
        .map_err(|e| format!("not a Redis URL ({e}); {SUPPORTED}"))
}

/// One seed node of a Redis Cluster: a redis:// or rediss:// URL with a host and port.
fn check_cluster_node(url: &str) -> Result<(), String> {
    match url.split("://").next().unwrap_or("") {
        "redis" | "rediss" => {}
        _ => return Err("expected redis://[user:password@]host:port or rediss://".to_string()),
    }
    use redis::IntoConnectionInfo;
    url.into_connection_info()
        .map(|_| ())
        .map_err(|e| format!("not a Redis node address: {e}"))
}

/// Checks of meaning that the kinds alone cannot express.
fn validate(config: &Config, problems: &mut Collector) {
    let mut check = |ok: bool, path: &str, value: String, message: &str| {
        if !ok {
            let env = settings::SETTINGS
                .iter()
                .find(|s| s.path == path)
                .map_or(path, |s| s.env);
            problems.push("validation", env, Some(value), message);
        }
    };
    check(
        config.threat_detection.score_threshold > 0.0
            && config.threat_detection.score_threshold.is_finite(),
        "threat_detection.score_threshold",
        config.threat_detection.score_threshold.to_string(),
        "must be greater than 0",
    );
    let rl = &config.rate_limit;
    for (path, capacity) in [
        ("rate_limit.global_capacity", rl.global_capacity),
        ("rate_limit.per_user_capacity", rl.per_user_capacity),
        ("rate_limit.per_ip_capacity", rl.per_ip_capacity),
    ] {
        check(
            capacity >= 1,
            path,
            capacity.to_string(),
            "a bucket must hold at least 1 token",
        );
    }
    for (path, rate) in [
        ("rate_limit.global_refill_rate", rl.global_refill_rate),
        ("rate_limit.per_user_refill_rate", rl.per_user_refill_rate),
        ("rate_limit.per_ip_refill_rate", rl.per_ip_refill_rate),
    ] {
        if let Some(rate) = rate {
            check(
                rate > 0.0,
                path,
                rate.to_string(),
                "must be greater than 0 (a bucket that never refills blocks forever)",
            );
        }
    }
    let dd = &config.ddos;
    for (path, n) in [
        (
            "ddos.requests_per_second_threshold",
            dd.requests_per_second_threshold,
        ),
        (
            "ddos.requests_per_minute_threshold",
            dd.requests_per_minute_threshold,
        ),
        (
            "ddos.concurrent_connections_limit",
            dd.concurrent_connections_limit,
        ),
    ] {
        check(n >= 1, path, n.to_string(), "must be at least 1");
    }
    let factor = dd.emergency_factor;
    check(
        factor > 0.0 && factor <= 1.0,
        "ddos.emergency_factor",
        factor.to_string(),
        "must be greater than 0 and at most 1 (emergency mode tightens limits)",
    );
    check(
        dd.block_duration >= 1,
        "ddos.block_duration",
        dd.block_duration.to_string(),
        "must be at least 1 second",
    );
    check(
        dd.max_block_duration >= dd.block_duration,
        "ddos.max_block_duration",
        dd.max_block_duration.to_string(),
        "must be at least the block duration",
    );
    check(
        dd.max_tracked_ips >= 1,
        "ddos.max_tracked_ips",
        dd.max_tracked_ips.to_string(),
        "must be at least 1",
    );
    let up = &config.upstream;
    check(
        up.min_concurrency >= 1,
        "upstream.min_concurrency",
        up.min_concurrency.to_string(),
        "must be at least 1",
    );
    check(
        up.concurrency_ceiling >= up.min_concurrency,
        "upstream.concurrency_ceiling",
        up.concurrency_ceiling.to_string(),
        "must be at least upstream.min_concurrency",
    );
    check(
        up.max_concurrency <= u64::from(u32::MAX),
        "upstream.max_concurrency",
        up.max_concurrency.to_string(),
        "must fit in 32 bits",
    );
    check(
        up.concurrency_ceiling <= u64::from(u32::MAX),
        "upstream.concurrency_ceiling",
        up.concurrency_ceiling.to_string(),
        "must fit in 32 bits",
    );
    check(
        up.max_known_users >= 1,
        "upstream.max_known_users",
        up.max_known_users.to_string(),
        "must be at least 1",
    );
    let threshold = config.ip.auto_blacklist_threshold;
    check(
        threshold <= 100,
        "ip.auto_blacklist_threshold",
        threshold.to_string(),
        "reputation scores run from 0 to 100",
    );
    let anomaly = config.threat_detection.anomaly_threshold;
    check(
        anomaly <= 1.0,
        "threat_detection.anomaly_threshold",
        anomaly.to_string(),
        "anomaly scores run from 0 to 1",
    );
    for (key, value, min) in [
        (
            "threat_detection.ml_retrain_interval",
            config.threat_detection.ml_retrain_interval,
            1,
        ),
        (
            "threat_detection.ml_min_clients",
            config.threat_detection.ml_min_clients,
            2,
        ),
        (
            "threat_detection.ml_window",
            config.threat_detection.ml_window,
            10,
        ),
        (
            "threat_detection.ml_max_clients",
            config.threat_detection.ml_max_clients,
            64,
        ),
    ] {
        check(
            value >= min,
            key,
            value.to_string(),
            &format!("must be at least {min}"),
        );
    }
    check(
        config.threat_detection.ml_max_clients <= 10_000_000,
        "threat_detection.ml_max_clients",
        config.threat_detection.ml_max_clients.to_string(),
        "at most 10000000 (about 5 GB of table)",
    );
    let inspect = config.max_inspect_body_bytes;
    check(
        inspect >= 1,
        "max_inspect_body_bytes",
        inspect.to_string(),
        "must be at least 1",
    );
    let cap = config.ip_list_max_entries;
    check(
        cap >= 1,
        "ip_list_max_entries",
        cap.to_string(),
        "must be at least 1",
    );
    for (path, list) in [
        ("trusted_proxies", &config.trusted_proxies),
        ("whitelist", &config.whitelist),
        ("blacklist", &config.blacklist),
    ] {
        for entry in list {
            if let Err(message) = crate::ip::parse_network(entry) {
                check(false, path, entry.clone(), &message);
            }
        }
    }
    if !config.redis_url.is_empty() {
        if let Err(message) = check_redis_url(&config.redis_url) {
            let shown = super::redact_url_password(&config.redis_url);
            check(false, "redis_url", shown, &message);
        }
    }
    for node in &config.redis_cluster_nodes {
        if let Err(message) = check_cluster_node(node) {
            let shown = super::redact_url_password(node);
            check(false, "redis_cluster_nodes", shown, &message);
        }
    }
    check(
        config.redis_url.is_empty() || config.redis_cluster_nodes.is_empty(),
        "redis_cluster_nodes",
        config
            .redis_cluster_nodes
            .iter()
            .map(|n| super::redact_url_password(n))
            .collect::<Vec<_>>()
            .join(","),
        "set REDIS_URL (one server) or SECURITY_REDIS_CLUSTER_NODES (a cluster), not both",
    );
    if config.uses_redis() {
        check(
            !config.ip_hash_key.is_empty(),
            "ip_hash_key",
            String::new(),
            "must be set when REDIS_URL is: every instance has to hash addresses and credentials with the same key, and the key must not live in Redis beside the hashes",
        );
        check(
            config.redis_timeout_ms >= 1,
            "redis_timeout_ms",
            config.redis_timeout_ms.to_string(),
            "must be at least 1",
        );
    }
    for (path, list) in [
        ("ip.geo_blocked_countries", &config.ip.geo_blocked_countries),
        ("ip.geo_allowed_countries", &config.ip.geo_allowed_countries),
        (
            "ip.geo_high_risk_countries",
            &config.ip.geo_high_risk_countries,
        ),
    ] {
        for code in list {
            let ok = code.len() == 2 && code.chars().all(|c| c.is_ascii_alphabetic());
            check(
                ok,
                path,
                code.clone(),
                "not an ISO 3166 alpha-2 country code (like GB or US)",
            );
        }
    }
    check(
        config.ip.geo_blocked_countries.is_empty() || config.ip.geo_allowed_countries.is_empty(),
        "ip.geo_allowed_countries",
        config.ip.geo_allowed_countries.join(","),
        "set blocked countries or allowed countries, not both",
    );
    if !config.user_id_header.is_empty() {
        let valid = http::HeaderName::from_bytes(config.user_id_header.as_bytes()).is_ok();
        check(
            valid,
            "user_id_header",
            config.user_id_header.clone(),
            "not a valid HTTP header name",
        );
    }
    let gateway = &config.gateway;
    for (cert, cert_path, key, key_path) in [
        (
            &gateway.tls_cert_file,
            "gateway.tls_cert_file",
            &gateway.tls_key_file,
            "gateway.tls_key_file",
        ),
        (
            &gateway.upstream_client_cert_file,
            "gateway.upstream_client_cert_file",
            &gateway.upstream_client_key_file,
            "gateway.upstream_client_key_file",
        ),
    ] {
        // A certificate is useless without its key and the other way round.
        check(
            !cert.is_empty() || key.is_empty(),
            cert_path,
            String::new(),
            &format!("must be set when {key_path} is"),
        );
        check(
            !key.is_empty() || cert.is_empty(),
            key_path,
            String::new(),
            &format!("must be set when {cert_path} is"),
        );
    }
    if !gateway.admin_listen.is_empty() {
        check(
            gateway.admin_listen.parse::<std::net::SocketAddr>().is_ok(),
            "gateway.admin_listen",
            gateway.admin_listen.clone(),
            "expected an address and port, like 127.0.0.1:9090 or [::1]:9090",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn load_env(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        load(ConfigSources {
            env: env(pairs),
            ..ConfigSources::default()
        })
    }

    #[test]
    fn a_redis_cluster_is_its_seed_nodes_and_not_beside_redis_url() {
        let config = load_env(&[
            (
                "SECURITY_REDIS_CLUSTER_NODES",
                "redis://127.0.0.1:7000,redis://:secret@127.0.0.1:7001",
            ),
            ("SECURITY_IP_HASH_KEY", "k"),
        ])
        .expect("valid");
        assert!(config.uses_redis());
        assert_eq!(config.redis_cluster_nodes.len(), 2);
        let shown = config.to_redacted_toml();
        assert!(!shown.contains(":secret@"), "{shown}");
        let both = load_env(&[
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("SECURITY_REDIS_CLUSTER_NODES", "redis://127.0.0.1:7000"),
            ("SECURITY_IP_HASH_KEY", "k"),
        ])
        .expect_err("both");
        assert!(both.to_string().contains("not both"), "{both}");
        let bad = load_env(&[
            ("SECURITY_REDIS_CLUSTER_NODES", "http://127.0.0.1:7000"),
            ("SECURITY_IP_HASH_KEY", "k"),
        ])
        .expect_err("not redis");
        assert!(
            bad.to_string().contains("SECURITY_REDIS_CLUSTER_NODES"),
            "{bad}"
        );
        let listed = load_env(&[
            ("REDIS_URL", "redis://a:1,redis://b:2"),
            ("SECURITY_IP_HASH_KEY", "k"),
        ])
        .expect_err("a list in REDIS_URL");
        assert!(
            listed.to_string().contains("SECURITY_REDIS_CLUSTER_NODES"),
            "{listed}"
        );
        let no_key = load_env(&[("SECURITY_REDIS_CLUSTER_NODES", "redis://127.0.0.1:7000")])
            .expect_err("no hash key");
        assert!(
            no_key.to_string().contains("SECURITY_IP_HASH_KEY"),
            "{no_key}"
        );
    }

    #[test]
    fn defaults_are_the_seeds() {
        let config = load_env(&[]).expect("defaults are valid");
        assert!(!config.enable_rate_limiting && !config.enable_threat_detection);
        assert_eq!(config.rate_limit.global_capacity, 1000);
        assert_eq!(config.rate_limit.global_refill_rate, Some(100.0));
        assert_eq!(config.rate_limit.per_user_capacity, 100);
        assert_eq!(config.rate_limit.per_ip_capacity, 200);
        assert_eq!(config.ddos.requests_per_second_threshold, 50);
        assert_eq!(config.ddos.requests_per_minute_threshold, 1000);
        assert_eq!(config.ddos.concurrent_connections_limit, 100);
        assert_eq!(config.ip.auto_blacklist_threshold, 10);
        assert_eq!(config.ip.temp_block_duration, 3600);
        assert_eq!(config.threat_detection.anomaly_threshold, 0.7);
        assert_eq!(config.threat_detection.ml_retrain_interval, 3600);
    }

    #[test]
    fn environment_overrides_defaults() {
        let config = load_env(&[
            ("SECURITY_ENABLE_RATE_LIMITING", "true"),
            ("SECURITY_RATE_LIMIT_PER_IP_CAPACITY", "5"),
            ("SECURITY_RATE_LIMIT_PER_IP_REFILL_RATE", "0.1"),
            ("SECURITY_BLACKLIST", "1.2.3.4, 10.0.0.0/8,,2001:db8::/32"),
            ("REDIS_URL", "redis://localhost:6379/0"),
            ("SECURITY_IP_HASH_KEY", "k"),
        ])
        .expect("valid");
        assert!(config.enable_rate_limiting);
        assert_eq!(config.rate_limit.per_ip_capacity, 5);
        assert_eq!(config.rate_limit.per_ip_refill_rate, Some(0.1));
        assert_eq!(
            config.blacklist,
            vec!["1.2.3.4", "10.0.0.0/8", "2001:db8::/32"]
        );
        assert_eq!(config.redis_url, "redis://localhost:6379/0");
    }

    #[test]
    fn every_bad_value_is_reported_with_key_and_value() {
        let err = load_env(&[
            ("SECURITY_RATE_LIMIT_PER_IP_CAPACITY", "abc"),
            ("SECURITY_ENABLE_DDOS_PROTECTION", "maybe"),
            ("SECURITY_RATE_LIMIT_GLOBAL_CAPACITY", "-5"),
            ("SECURITY_FAIL_MODE", "sideways"),
        ])
        .expect_err("invalid");
        let text = err.to_string();
        assert_eq!(err.problems.len(), 4, "{text}");
        assert!(
            text.contains("SECURITY_RATE_LIMIT_PER_IP_CAPACITY=abc"),
            "{text}"
        );
        assert!(
            text.contains("SECURITY_ENABLE_DDOS_PROTECTION=maybe"),
            "{text}"
        );
        assert!(
            text.contains("SECURITY_RATE_LIMIT_GLOBAL_CAPACITY=-5"),
            "{text}"
        );
        assert!(text.contains("SECURITY_FAIL_MODE=sideways"), "{text}");
        assert!(text.contains("expected one of open, closed"), "{text}");
    }

    #[test]
    fn behaviour_settings_are_checked() {
        let err = load_env(&[
            ("SECURITY_THREAT_ML_MIN_CLIENTS", "1"),
            ("SECURITY_THREAT_ML_RETRAIN_INTERVAL", "0"),
            ("SECURITY_THREAT_ML_MAX_CLIENTS", "99999999999"),
            ("SECURITY_THREAT_ANOMALY_BLOCK", "perhaps"),
        ])
        .expect_err("invalid");
        let text = err.to_string();
        assert_eq!(err.problems.len(), 4, "{text}");
        for bad in [
            "SECURITY_THREAT_ML_MIN_CLIENTS=1",
            "SECURITY_THREAT_ML_RETRAIN_INTERVAL=0",
            "SECURITY_THREAT_ML_MAX_CLIENTS=99999999999",
            "SECURITY_THREAT_ANOMALY_BLOCK=perhaps",
        ] {
            assert!(text.contains(bad), "{bad} in {text}");
        }
        let config = load_env(&[
            ("SECURITY_THREAT_ML_MIN_CLIENTS", "50"),
            ("SECURITY_THREAT_ANOMALY_BLOCK", "true"),
        ])
        .expect("valid");
        assert_eq!(config.threat_detection.ml_min_clients, 50);
        assert!(config.threat_detection.anomaly_block);
    }

    #[test]
    fn semantic_problems_name_the_setting() {
        let err = load_env(&[
            ("SECURITY_RATE_LIMIT_PER_IP_CAPACITY", "0"),
            ("SECURITY_TRUSTED_PROXIES", "10.0.0.0/8,not-an-ip"),
            ("SECURITY_THREAT_ANOMALY_THRESHOLD", "1.5"),
        ])
        .expect_err("invalid");
        let text = err.to_string();
        assert_eq!(err.problems.len(), 3, "{text}");
        assert!(
            text.contains("SECURITY_RATE_LIMIT_PER_IP_CAPACITY=0"),
            "{text}"
        );
        assert!(
            text.contains("SECURITY_TRUSTED_PROXIES=not-an-ip"),
            "{text}"
        );
        assert!(
            text.contains("SECURITY_THREAT_ANOMALY_THRESHOLD=1.5"),
            "{text}"
        );
    }

    #[test]
    fn file_then_env_then_overrides() {
        let dir = std::env::temp_dir().join(format!("mcp-shield-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("layers.toml");
        std::fs::write(
            &path,
            "enable_rate_limiting = true\nwhitelist = [\"10.1.0.0/16\"]\n[rate_limit]\nper_ip_capacity = 7\nglobal_capacity = 9\nper_ip_refill_rate = 2\n",
        )
        .expect("write");
        let config = load(ConfigSources {
            file: Some(path.clone()),
            env: env(&[("SECURITY_RATE_LIMIT_GLOBAL_CAPACITY", "11")]),
            overrides: ConfigOverrides::new().set("RATE_LIMIT_PER_IP_CAPACITY", 13),
            ..ConfigSources::default()
        })
        .expect("valid");
        assert!(config.enable_rate_limiting);
        assert_eq!(config.whitelist, vec!["10.1.0.0/16"]);
        assert_eq!(config.rate_limit.global_capacity, 11, "env beats file");
        assert_eq!(config.rate_limit.per_ip_capacity, 13, "override beats file");
        assert_eq!(
            config.rate_limit.per_ip_refill_rate,
            Some(2.0),
            "integer read as a rate"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn unknown_keys_and_wrong_types_in_the_file_are_all_reported() {
        let dir =
            std::env::temp_dir().join(format!("mcp-shield-config-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("bad.toml");
        std::fs::write(
            &path,
            "enable_rate_limitting = true\n[rate_limit]\nper_ip_capacity = \"lots\"\nburst = 3\n[ddos]\nrequests_per_second_threshold = -1\n",
        )
        .expect("write");
        let err = load(ConfigSources {
            file: Some(path),
            ..ConfigSources::default()
        })
        .expect_err("invalid");
        let text = err.to_string();
        assert_eq!(err.problems.len(), 4, "{text}");
        assert!(text.contains("enable_rate_limitting"), "{text}");
        assert!(text.contains("rate_limit.per_ip_capacity=lots"), "{text}");
        assert!(text.contains("rate_limit.burst"), "{text}");
        assert!(
            text.contains("ddos.requests_per_second_threshold=-1"),
            "{text}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn unreadable_file_is_a_problem() {
        let err = load(ConfigSources {
            file: Some(PathBuf::from("/nonexistent/mcp-shield.toml")),
            ..ConfigSources::default()
        })
        .expect_err("missing file");
        assert!(err.to_string().contains("cannot read file"));
    }

    #[test]
    fn empty_rate_unsets_it_to_the_derived_default() {
        let config = load_env(&[
            ("SECURITY_RATE_LIMIT_GLOBAL_REFILL_RATE", ""),
            ("SECURITY_RATE_LIMIT_GLOBAL_CAPACITY", "50"),
        ])
        .expect("valid");
        assert_eq!(config.rate_limit.global_refill_rate, None);
        let rl = &config.rate_limit;
        assert_eq!(
            super::super::RateLimitConfig::effective_rate(
                rl.global_capacity,
                rl.global_refill_rate
            ),
            5.0
        );
    }

    #[test]
    fn redacted_output_hides_secrets() {
        let config = load_env(&[
            ("SECURITY_ADMIN_TOKEN", "s3cret-token-value"),
            ("SECURITY_IP_HASH_KEY", "hash-key"),
            ("REDIS_URL", "redis://:pw@localhost:6379/0"),
        ])
        .expect("valid");
        let text = config.to_redacted_toml();
        assert!(
            !text.contains("s3cret") && !text.contains("hash-key") && !text.contains(":pw@"),
            "{text}"
        );
        assert!(
            text.contains("redis://:<redacted>@localhost:6379/0"),
            "{text}"
        );
    }
}
