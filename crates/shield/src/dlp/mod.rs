//! What leaves through tool results: secrets, personal data, injected instructions and
//! oversized output (data-loss prevention on the way back).
//!
//! - [`secrets`]: credentials (cloud keys, SaaS tokens, private keys, JWTs, connection strings,
//!   generic assignments), keyword-prefiltered and validated;
//! - [`personal`]: e-mail addresses, phone numbers, payment cards, IBANs, national ids, with
//!   their checksums;
//! - [`injection`]: instructions addressed to the model inside data;
//! - [`prefilter`]: the secret keywords and the injection phrasing as one pass over a raw
//!   result, so a clean one is read once;
//! - [`results`]: one result read and acted on (redact, block, alert, wrap, truncate): pure;
//! - [`ResultInspector`] (here): the policy per tool, the events, and the JSON text in and out;
//!   the response side ([`crate::response`]) hands it every answer to `tools/call`,
//!   `resources/read` and `prompts/get`, and the MCP guard the arguments of every call.

pub mod injection;
pub mod personal;
pub mod prefilter;
pub mod results;
pub mod secrets;

use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::Serialize;
use serde_json::Value;

use crate::config::{ResultAction, ResultsConfig};
use crate::events::{EventBus, SecurityEvent};
use crate::request::RequestFacts;
pub use results::{Applied, Found, Outcome, Rules};

/// The nearest character boundary of `text` at or before `at`.
pub(crate) fn floor_boundary(text: &str, mut at: usize) -> usize {
    while at > 0 && !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// The nearest character boundary of `text` at or after `at`.
pub(crate) fn ceil_boundary(text: &str, mut at: usize) -> usize {
    while at < text.len() && !text.is_char_boundary(at) {
        at += 1;
    }
    at
}

/// A finding in what a tool returned (or was sent): the payload of
/// [`SecurityEvent::ResultFinding`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResultFinding {
    /// The MCP path.
    pub path: String,
    /// `tool`, `prompt` or `resource`.
    pub subject: &'static str,
    /// The tool's or prompt's name, or the resource's URI.
    pub name: String,
    /// `response` (a result) or `request` (a call's arguments).
    #[serde(rename = "in")]
    pub direction: &'static str,
    /// The finding.
    #[serde(flatten)]
    pub found: Found,
    /// The client.
    pub client: Option<IpAddr>,
}

/// What a request or response is about: a call of a tool, a prompt or a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// `tool`, `prompt` or `resource`.
    pub subject: &'static str,
    /// Its name (a resource's URI).
    pub name: String,
    /// The request's JSON-RPC id: the answer carries the same, and so must an error that
    /// replaces it.
    pub id: Option<crate::request::JsonRpcId>,
}

impl Call {
    /// The call in a request: `tools/call`, `prompts/get` or `resources/read`, the first one
    /// of a batch.
    pub fn of(facts: &RequestFacts) -> Option<Call> {
        facts
            .json_rpc
            .iter()
            .find_map(|m| match (m.method.as_deref(), &m.name, &m.uri) {
                (Some("tools/call"), Some(name), _) => Some(Call {
                    subject: "tool",
                    name: name.clone(),
                    id: m.id.clone(),
                }),
                (Some("prompts/get"), Some(name), _) => Some(Call {
                    subject: "prompt",
                    name: name.clone(),
                    id: m.id.clone(),
                }),
                (Some("resources/read"), _, Some(uri)) => Some(Call {
                    subject: "resource",
                    name: uri.clone(),
                    id: m.id.clone(),
                }),
                _ => None,
            })
    }
}

/// The policy, resolved: the defaults and each tool rule's settings over them.
#[derive(Debug)]
struct Policy {
    inspect: bool,
    arguments: ResultAction,
    defaults: Rules,
    tools: Vec<(String, Rules)>,
}

impl Policy {
    fn new(config: &ResultsConfig) -> Policy {
        Policy {
            inspect: config.inspect,
            arguments: config.arguments,
            defaults: Rules::resolve(config, None),
            tools: config
                .tool
                .iter()
                .map(|t| (t.name.clone(), Rules::resolve(config, Some(t))))
                .collect(),
        }
    }

    fn rules_for(&self, name: &str) -> &Rules {
        self.tools
            .iter()
            .find(|(pattern, _)| crate::tools::access::glob(pattern, name))
            .map_or(&self.defaults, |(_, rules)| rules)
    }
}

/// Reads tool results and call arguments under `[mcp.results]`, and reports what it finds.
pub struct ResultInspector {
    policy: ArcSwap<Policy>,
    bus: Arc<EventBus>,
}

impl std::fmt::Debug for ResultInspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultInspector").finish_non_exhaustive()
    }
}

/// What a call's arguments came to.
#[derive(Debug, Clone, PartialEq)]
pub struct RefusedCall {
    /// The request's id.
    pub id: Value,
    /// Why, for the client.
    pub detail: String,
}

impl ResultInspector {
    /// An inspector under `config`, reporting to `bus`. The detectors' tables are built here,
    /// so that no request pays for it.
    pub fn new(config: &ResultsConfig, bus: Arc<EventBus>) -> ResultInspector {
        if config.inspect {
            secrets::warm_up();
            personal::warm_up();
            injection::warm_up();
            prefilter::warm_up();
        }
        ResultInspector {
            policy: ArcSwap::from_pointee(Policy::new(config)),
            bus,
        }
    }

    /// An inspector with the defaults and a bus nobody reads.
    pub fn for_tests() -> ResultInspector {
        ResultInspector::new(
            &ResultsConfig::default(),
            Arc::new(EventBus::new(Vec::new(), 16)),
        )
    }

    /// Applies a reloaded configuration.
    pub fn reconfigure(&self, config: &ResultsConfig) {
        if config.inspect {
            secrets::warm_up();
            personal::warm_up();
            injection::warm_up();
            prefilter::warm_up();
        }
        self.policy.store(Arc::new(Policy::new(config)));
    }

    /// Whether results are read at all.
    pub fn inspects(&self) -> bool {
        self.policy.load().inspect
    }

    /// A JSON answer (one message or a batch) read under the call's rules: the new text when
    /// something changed. Findings are published as events.
    pub fn rewrite(
        &self,
        path: &str,
        call: &Call,
        client: Option<IpAddr>,
        text: &[u8],
    ) -> Option<Vec<u8>> {
        let policy = self.policy.load();
        let rules = policy.rules_for(&call.name);
        if !policy.inspect || !rules.looks() {
            return None;
        }
        // Most results hold nothing: the cheap tests on the raw text say so without parsing.
        let hints = results::worth_parsing(rules, std::str::from_utf8(text).ok()?)?;
        let mut value: Value = serde_json::from_slice(text).ok()?;
        let mut changed = false;
        let messages: Vec<&mut Value> = match &mut value {
            Value::Array(batch) => batch.iter_mut().collect(),
            single => vec![single],
        };
        for message in messages {
            let (outcome, found) = results::inspect_with(rules, hints, message, text.len());
            for f in found {
                self.report(path, call, f, client);
            }
            match outcome {
                Outcome::Unchanged => {}
                Outcome::Rewritten => changed = true,
                Outcome::Blocked(error) => {
                    *message = error;
                    changed = true;
                }
            }
        }
        if changed {
            serde_json::to_vec(&value).ok()
        } else {
            None
        }
    }

    /// The error that replaces a result too large to read whole, when its tool has a size cap
    /// (it cannot be truncated without being read); the finding is published. `None` without
    /// a cap (the result passes unread).
    pub fn refuse_unread(
        &self,
        path: &str,
        call: &Call,
        client: Option<IpAddr>,
        read: usize,
    ) -> Option<Vec<u8>> {
        let policy = self.policy.load();
        let rules = policy.rules_for(&call.name);
        if !policy.inspect || rules.max_result_bytes == 0 {
            return None;
        }
        let found = Found {
            threat: crate::threat::ThreatType::OutputTooLarge,
            family: "size".into(),
            location: "result".into(),
            evidence: format!("more than {read} bytes, cap {}", rules.max_result_bytes),
            action: Applied::Blocked,
        };
        let id = serde_json::to_value(&call.id).unwrap_or(Value::Null);
        let error = results::withheld(id, std::slice::from_ref(&found));
        self.report(path, call, found, client);
        serde_json::to_vec(&error).ok()
    }

    /// A finding in a call's result, published.
    fn report(&self, path: &str, call: &Call, found: Found, client: Option<IpAddr>) {
        self.bus
            .publish(SecurityEvent::ResultFinding(ResultFinding {
                path: path.to_string(),
                subject: call.subject,
                name: call.name.clone(),
                direction: "response",
                found,
                client,
            }));
    }

    /// A `tools/call`'s arguments read for credentials: each is reported; under
    /// `arguments = "block"` the call is refused.
    pub fn check_arguments(&self, facts: &RequestFacts, path: &str) -> Option<RefusedCall> {
        let policy = self.policy.load();
        if !policy.inspect || policy.arguments == ResultAction::Off || facts.json_rpc.is_empty() {
            return None;
        }
        // Cheap test first: no tools/call, nothing to read.
        if !facts
            .json_rpc
            .iter()
            .any(|m| m.method.as_deref() == Some("tools/call"))
        {
            return None;
        }
        // No secret keyword anywhere in the body: nothing to parse (the usual call).
        if !secrets::may_contain(std::str::from_utf8(&facts.body).ok()?) {
            return None;
        }
        let body: Value = serde_json::from_slice(&facts.body).ok()?;
        let messages: Vec<&Value> = match &body {
            Value::Array(batch) => batch.iter().collect(),
            single => vec![single],
        };
        let block = policy.arguments == ResultAction::Block;
        let mut refused = None;
        for message in messages {
            if message.get("method").and_then(Value::as_str) != Some("tools/call") {
                continue;
            }
            let params = message.get("params");
            let name = params
                .and_then(|p| p.get("name"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let Some(arguments) = params.and_then(|p| p.get("arguments")) else {
                continue;
            };
            let rules = policy.rules_for(name);
            let found = results::scan_arguments(rules, arguments);
            if found.is_empty() {
                continue;
            }
            let families: Vec<String> = found.iter().map(|f| f.family.clone()).collect();
            for mut f in found {
                if block {
                    f.action = Applied::Blocked;
                }
                self.bus
                    .publish(SecurityEvent::ResultFinding(ResultFinding {
                        path: path.to_string(),
                        subject: "tool",
                        name: name.to_string(),
                        direction: "request",
                        found: f,
                        client: Some(facts.client_ip),
                    }));
            }
            if block && refused.is_none() {
                refused = Some(RefusedCall {
                    id: message.get("id").cloned().unwrap_or(Value::Null),
                    detail: format!(
                        "the call to '{name}' carries a credential ({}); it was not sent to the tool",
                        families.join(", ")
                    ),
                });
            }
        }
        refused
    }
}
