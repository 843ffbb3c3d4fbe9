//! Endpoint rules, compiled: which requests a `[[rate_limit.rules]]` entry covers and how many
//! tokens they take.

use http::Method;

use super::gcra::Quota;
use crate::config::{RateLimitConfig, RateLimitRule, RuleKey};
use crate::request::RequestFacts;

/// How a rule's path is matched.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PathMatch {
    Any,
    Exact(String),
    /// `/api/*`: `/api` itself and everything under `/api/`.
    Prefix(String),
}

/// A rule ready to match requests.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    /// The rule's name (the bucket's name in responses and logs).
    pub name: String,
    path: PathMatch,
    method: Option<Method>,
    mcp_method: Option<String>,
    tool: Option<String>,
    /// What the bucket counts.
    pub key: RuleKey,
    /// Its size and rate.
    pub quota: Quota,
}

impl CompiledRule {
    /// Compiles a validated rule.
    pub fn new(rule: &RateLimitRule) -> Self {
        let path = match rule.path.as_deref() {
            None => PathMatch::Any,
            Some(p) => match p.strip_suffix("/*") {
                Some(prefix) => PathMatch::Prefix(prefix.to_string()),
                None => PathMatch::Exact(p.to_string()),
            },
        };
        CompiledRule {
            name: rule.name.clone(),
            path,
            method: rule
                .method
                .as_deref()
                .and_then(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok()),
            mcp_method: rule.mcp_method.clone(),
            tool: rule.tool.clone(),
            key: rule.key,
            quota: Quota::new(
                rule.capacity,
                RateLimitConfig::effective_rate(rule.capacity, rule.refill_rate),
            ),
        }
    }

    /// Tokens the request takes from this rule's bucket, or `None` when the rule does not
    /// cover it. A rule on a JSON-RPC method or tool takes one token per matching message (a
    /// batch of five `tools/call add` takes five); other rules take one per message, at least
    /// one.
    pub fn cost(&self, facts: &RequestFacts) -> Option<u64> {
        let path = facts.path();
        let path_ok = match &self.path {
            PathMatch::Any => true,
            PathMatch::Exact(p) => path == p,
            PathMatch::Prefix(p) => {
                path == p || (path.starts_with(p.as_str()) && path[p.len()..].starts_with('/'))
            }
        };
        if !path_ok || self.method.as_ref().is_some_and(|m| *m != facts.method) {
            return None;
        }
        if self.mcp_method.is_none() && self.tool.is_none() {
            return Some(message_count(facts));
        }
        let matching = facts
            .json_rpc
            .iter()
            .filter(|m| {
                let method_ok = self
                    .mcp_method
                    .as_deref()
                    .is_none_or(|want| m.method.as_deref() == Some(want));
                let tool_ok = self
                    .tool
                    .as_deref()
                    .is_none_or(|want| m.tool() == Some(want));
                method_ok && tool_ok
            })
            .count() as u64;
        (matching > 0).then_some(matching)
    }
}

/// Tokens a request takes from the global, per-IP and per-user buckets: one per JSON-RPC
/// message, at least one.
pub fn message_count(facts: &RequestFacts) -> u64 {
    (facts.json_rpc.len() as u64).max(1)
}

/// The rules in force: the built-in ones (unless turned off) with any of the same name
/// replaced by the file's, then the file's others, in file order.
pub fn effective_rules(config: &RateLimitConfig) -> Vec<CompiledRule> {
    let mut rules: Vec<RateLimitRule> = Vec::new();
    if config.default_rules {
        for default in RateLimitRule::defaults() {
            if !config.rules.iter().any(|r| r.name == default.name) {
                rules.push(default);
            }
        }
    }
    rules.extend(config.rules.iter().cloned());
    rules.iter().map(CompiledRule::new).collect()
}
