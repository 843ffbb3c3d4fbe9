//! Tool integrity: what the MCP server says about its tools, prompts and resources, checked
//! before the client's model reads it.
//!
//! - [`poisoning`]: definitions written to steer the model (hidden instructions, shadowing of
//!   other tools, sensitive paths, invisible characters, look-alike names, advertising).
//! - [`pins`]: the first definition of each tool is pinned per upstream; a later change (a rug
//!   pull) or a tool added after the first listing waits for an operator's approval.
//! - [`access`]: who may see and call which tool, prompt and resource (`[[mcp.tools.access]]`).
//!
//! [`ToolIntegrity`] ties them together for both directions: [`ToolIntegrity::inspect_message`]
//! rewrites a list the server sends (the response side; [`crate::response`] feeds it the
//! messages of JSON bodies and event streams), [`ToolIntegrity::check_request`] refuses calls to
//! what was removed (the request side, inside the MCP guard). Pins live in memory and, when
//! configured, in `SECURITY_DATA_DIR` (`tool-pins.json`) or Redis, so instances and restarts
//! agree.

pub mod access;
pub mod pins;
pub mod poisoning;
mod store;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use serde::Serialize;
use serde_json::Value;

use crate::clock::Clock;
use crate::config::{ToolAction, ToolsConfig};
use crate::events::{EventBus, SecurityEvent};
use crate::mcp::McpViolation;
use crate::request::RequestFacts;
use crate::state::redis::RedisState;
use crate::threat::ThreatType;

pub use access::{AccessPolicy, Subject};
pub use pins::{Pin, PinBook, PinFile, Refusal, RefusalReason, Seen};
pub use poisoning::{PoisonDetector, PoisonFinding, PoisonKind, PoisonVerdict};

/// JSON-RPC error code of a refused tool call or list (outside -32020..-32099).
pub const TOOL_REFUSED: i32 = -32001;

/// What was done about a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FindingAction {
    /// Removed from the list the client received.
    Removed,
    /// The whole response refused.
    Refused,
    /// Passed on, logged and counted.
    Alerted,
}

impl FindingAction {
    /// `removed`, `refused`, `alerted`.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingAction::Removed => "removed",
            FindingAction::Refused => "refused",
            FindingAction::Alerted => "alerted",
        }
    }
}

/// A finding in what the server sent: the payload of [`SecurityEvent::ToolFinding`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolFinding {
    /// The pin scope: upstream name and MCP path.
    pub upstream: String,
    /// `tool`, `prompt` or `resource`.
    pub subject: &'static str,
    /// Its name (a resource's URI).
    pub name: String,
    /// [`ThreatType::ToolPoisoning`] or [`ThreatType::ToolChanged`].
    #[serde(rename = "type")]
    pub threat: ThreatType,
    /// What exactly: a [`PoisonKind`] name, or `changed` / `added`.
    pub kind: String,
    /// Where in the definition (`description`, `inputSchema.properties.x.description`).
    pub location: String,
    /// The text found, or the fields that changed.
    pub evidence: String,
    /// What was done.
    pub action: FindingAction,
    /// The client the list was going to, when known.
    pub client: Option<IpAddr>,
}

/// The client a response goes to, or a request comes from.
#[derive(Debug, Clone, Copy)]
pub struct Client<'a> {
    /// Its user (`user_id_header`), when named.
    pub user: Option<&'a str>,
    /// Its address.
    pub ip: IpAddr,
}

/// What became of one message from the server.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageOutcome {
    /// Nothing to change, nothing found, every tool as pinned, no access rule to apply: the
    /// same text again may pass unread ([`ToolIntegrity::remember_clean`]).
    Clean,
    /// Nothing to change (something was noted: an alert, a new pin).
    Unchanged,
    /// The message was rewritten in place (entries removed).
    Rewritten,
    /// The message is replaced by this JSON-RPC error.
    Refused(Value),
}

#[derive(Debug)]
struct Policy {
    inspect: bool,
    on_change: ToolAction,
    on_new: ToolAction,
    on_poisoning: ToolAction,
    upstream_name: String,
    access: AccessPolicy,
    max_response_bytes: usize,
}

impl Policy {
    fn new(config: &ToolsConfig, default_upstream: &str) -> Policy {
        Policy {
            inspect: config.inspect,
            on_change: config.on_change,
            on_new: config.on_new,
            on_poisoning: config.on_poisoning,
            upstream_name: if config.upstream_name.is_empty() {
                default_upstream.to_string()
            } else {
                config.upstream_name.clone()
            },
            access: AccessPolicy::new(&config.access),
            max_response_bytes: usize::try_from(config.max_response_bytes).unwrap_or(usize::MAX),
        }
    }
}

/// Poisoning verdicts remembered by fingerprint (a server lists the same tools again and
/// again); emptied when full.
const VERDICT_CACHE: usize = 4096;

/// Tool pins, poisoning detection and access rules, for one security system.
pub struct ToolIntegrity {
    /// Whether any tool is withheld now (calls look in the book only then).
    withheld: AtomicBool,
    /// Per MCP path, the fingerprint of the last list response found clean: the same bytes
    /// again pass without being parsed (a client relists often; a server rarely changes).
    clean: Mutex<std::collections::HashMap<String, u128>>,
    /// Bumped whenever what made a response clean may have changed (an approval, a pin from
    /// another instance, a reload): a response judged before it is not remembered.
    clean_epoch: std::sync::atomic::AtomicU64,
    /// Definitions already judged: fingerprint → verdict without look-alike names.
    verdicts: Mutex<std::collections::HashMap<u128, Arc<PoisonVerdict>>>,
    fingerprint_key: (u64, u64),
    policy: ArcSwap<Policy>,
    default_upstream: String,
    detector: PoisonDetector,
    book: Mutex<PinBook>,
    store: store::PinStore,
    bus: Arc<EventBus>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for ToolIntegrity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolIntegrity").finish_non_exhaustive()
    }
}

impl ToolIntegrity {
    /// Builds it, loading the pin file and the saved pins. `default_upstream` names the
    /// upstream when the configuration does not (the gateway passes its upstream URL).
    pub fn new(
        config: &ToolsConfig,
        default_upstream: &str,
        data_dir: Option<&std::path::Path>,
        redis: Option<Arc<RedisState>>,
        bus: Arc<EventBus>,
        clock: Arc<dyn Clock>,
    ) -> Result<ToolIntegrity, String> {
        let mut book = PinBook::new(usize::try_from(config.max_pinned).unwrap_or(usize::MAX));
        if !config.pin_file.is_empty() {
            book.import(store::read_pin_file(std::path::Path::new(
                &config.pin_file,
            ))?);
        }
        let store = store::PinStore::new(data_dir, redis);
        if let Some(saved) = store.load_file()? {
            book.import(saved);
        }
        let mut key = [0u8; 16];
        getrandom::fill(&mut key)
            .map_err(|e| format!("no randomness for the fingerprint key: {e}"))?;
        let withheld = AtomicBool::new(book.counts().refused > 0);
        Ok(ToolIntegrity {
            withheld,
            clean: Mutex::new(std::collections::HashMap::new()),
            clean_epoch: std::sync::atomic::AtomicU64::new(0),
            verdicts: Mutex::new(std::collections::HashMap::new()),
            fingerprint_key: (
                u64::from_le_bytes(key[..8].try_into().unwrap_or_default()),
                u64::from_le_bytes(key[8..].try_into().unwrap_or_default()),
            ),
            policy: ArcSwap::from_pointee(Policy::new(config, default_upstream)),
            default_upstream: default_upstream.to_string(),
            detector: PoisonDetector::new(
                usize::try_from(config.max_definition_bytes).unwrap_or(usize::MAX),
            ),
            book: Mutex::new(book),
            store,
            bus,
            clock,
        })
    }

    /// One with the defaults, in memory, for tests.
    #[cfg(test)]
    pub(crate) fn for_tests() -> ToolIntegrity {
        ToolIntegrity::new(
            &ToolsConfig::default(),
            "local",
            None,
            None,
            Arc::new(EventBus::new(Vec::new(), 16)),
            crate::clock::ManualClock::starting_at(0),
        )
        .expect("tool integrity")
    }

    /// Takes new actions and access rules (a configuration reload); pins are kept.
    pub fn reconfigure(&self, config: &ToolsConfig) {
        self.policy
            .store(Arc::new(Policy::new(config, &self.default_upstream)));
        self.forget_clean();
    }

    /// A fingerprint of a response's or a definition's text (keyed SipHash-1-3, 128 bits, keyed
    /// at start): equal fingerprints mean the same text, so work done for it (the poisoning
    /// verdict, the pin comparison, a clean list) is not done again. Never stored.
    pub fn text_fingerprint(&self, text: &[u8]) -> u128 {
        use siphasher::sip128::Hasher128;
        use std::hash::Hasher;
        let mut hasher = siphasher::sip128::SipHasher13::new_with_keys(
            self.fingerprint_key.1,
            self.fingerprint_key.0,
        );
        hasher.write(text);
        hasher.finish128().as_u128()
    }

    /// Whether this exact text was the last clean list response on `path`.
    pub fn known_clean(&self, path: &str, print: u128) -> bool {
        self.clean
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(path)
            .is_some_and(|p| *p == print)
    }

    /// The epoch to pass to [`ToolIntegrity::remember_clean`], read before judging.
    pub fn clean_epoch(&self) -> u64 {
        self.clean_epoch.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Remembers a response judged clean, unless something changed since `epoch`.
    pub fn remember_clean(&self, path: &str, print: u128, epoch: u64) {
        let mut clean = self.clean.lock().unwrap_or_else(|e| e.into_inner());
        if self.clean_epoch() != epoch {
            return;
        }
        if clean.len() >= 1024 && !clean.contains_key(path) {
            clean.clear();
        }
        clean.insert(path.to_string(), print);
    }

    fn forget_clean(&self) {
        let mut clean = self.clean.lock().unwrap_or_else(|e| e.into_inner());
        self.clean_epoch
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        clean.clear();
    }

    /// Starts the background work (following refusals made by other instances through Redis).
    pub fn start(self: &Arc<Self>) {
        self.store.start(Arc::downgrade(self));
    }

    /// Whether responses on MCP paths are read.
    pub fn inspects(&self) -> bool {
        self.policy.load().inspect
    }

    /// The most of one JSON response or event that is read.
    pub fn max_response_bytes(&self) -> usize {
        self.policy.load().max_response_bytes
    }

    /// The pin scope of an MCP path.
    pub fn scope(&self, path: &str) -> String {
        format!("{}{}", self.policy.load().upstream_name, path)
    }

    fn book(&self) -> std::sync::MutexGuard<'_, PinBook> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes whether any tool is withheld, after the refusals changed.
    fn note_withheld(&self) {
        let any = self.book().counts().refused > 0;
        self.withheld.store(any, Ordering::Release);
    }

    /// The request side: a call to a tool (a prompt, a resource) the client may not use, or
    /// that was removed from its list, is refused with a JSON-RPC error naming the reason.
    pub fn check_request(&self, facts: &RequestFacts) -> Option<McpViolation> {
        let policy = self.policy.load();
        // The usual case, on every call: no rule and nothing withheld, nothing to look up.
        let withheld = self.withheld.load(Ordering::Acquire);
        if facts.json_rpc.is_empty() || (policy.access.is_empty() && !withheld) {
            return None;
        }
        let user = match &facts.user {
            Some(crate::request::UserId::Header(name)) => Some(name.as_str()),
            _ => None,
        };
        let mut scope: Option<String> = None;
        for message in &facts.json_rpc {
            let (subject, name) = match (message.method.as_deref(), &message.name, &message.uri) {
                (Some("tools/call"), Some(name), _) => (Subject::Tool, name),
                (Some("prompts/get"), Some(name), _) => (Subject::Prompt, name),
                (Some("resources/read"), _, Some(uri)) => (Subject::Resource, uri),
                _ => continue,
            };
            let refused = |reason, detail| McpViolation::ToolRefused {
                id: message.id.as_ref().map_or(Value::Null, |id| match id {
                    crate::request::JsonRpcId::Number(n) => Value::from(*n),
                    crate::request::JsonRpcId::String(s) => Value::from(s.clone()),
                }),
                subject: subject.as_str(),
                name: name.clone(),
                reason,
                detail,
            };
            if !policy.access.allows(subject, name, user, facts.client_ip) {
                return Some(refused(
                    RefusalReason::NotAllowed,
                    format!("this client may not use the {} '{name}'", subject.as_str()),
                ));
            }
            if subject == Subject::Tool && withheld {
                let scope = scope.get_or_insert_with(|| self.scope(facts.path()));
                if let Some(refusal) = self.book().refusal(scope, name) {
                    return Some(refused(refusal.reason, refusal.detail.clone()));
                }
            }
        }
        None
    }

    /// A `*/list_changed` notification from the server is logged (the next listing shows what
    /// changed).
    pub fn note_notification(&self, path: &str, method: &str) {
        if method.starts_with("notifications/") && method.ends_with("/list_changed") {
            tracing::info!(target: "security.tools", upstream = %self.scope(path), method,
                "the server says a list changed; the next listing is checked against the pins");
        }
    }

    /// The response side for one JSON-RPC message already parsed (an element of a batch; a
    /// single message takes the raw path, [`crate::response::rewrite_json`]): its lists of
    /// tools, prompts, resources and resource templates filtered by
    /// [`ToolIntegrity::filter_list`], a `*/list_changed` notification noted.
    pub async fn inspect_message(
        &self,
        path: &str,
        client: Client<'_>,
        message: &mut Value,
    ) -> MessageOutcome {
        if let Some(method) = message.get("method").and_then(Value::as_str) {
            self.note_notification(path, method);
            return MessageOutcome::Unchanged;
        }
        let id = message.get("id").cloned().unwrap_or(Value::Null);
        let Some(result) = message.get_mut("result").and_then(Value::as_object_mut) else {
            return MessageOutcome::Unchanged;
        };
        let last_page = result.get("nextCursor").is_none_or(Value::is_null);
        let mut rewritten = false;
        let mut clean = true;
        let mut lists = 0;
        for (field, subject, _) in LISTS {
            let Some(Value::Array(entries)) = result.get_mut(field) else {
                continue;
            };
            let texts: Vec<String> = entries.iter().map(Value::to_string).collect();
            let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
            match self
                .filter_list(path, client, subject, &texts, last_page)
                .await
            {
                ListOutcome::Clean => lists += 1,
                ListOutcome::Kept => clean = false,
                ListOutcome::Filtered(keep) => {
                    let mut index = 0;
                    entries.retain(|_| {
                        index += 1;
                        keep.get(index - 1).copied().unwrap_or(true)
                    });
                    rewritten = true;
                }
                ListOutcome::Refuse(detail) => {
                    return MessageOutcome::Refused(refused_list(id, &detail));
                }
            }
        }
        if rewritten {
            MessageOutcome::Rewritten
        } else if clean && lists > 0 {
            MessageOutcome::Clean
        } else {
            MessageOutcome::Unchanged
        }
    }

    /// Judges one list, given as its entries' JSON texts (as the server wrote them): which
    /// entries to keep, or a refusal of the whole response. A definition seen before (the same
    /// text) is neither parsed nor judged again: its fingerprint finds its verdict and its pin.
    pub async fn filter_list(
        &self,
        path: &str,
        client: Client<'_>,
        subject: Subject,
        entries: &[&str],
        last_page: bool,
    ) -> ListOutcome {
        let policy = self.policy.load_full();
        let scope = self.scope(path);
        let names: Vec<std::borrow::Cow<'_, str>> = entries
            .iter()
            .map(|text| entry_name(text, subject))
            .collect();
        let siblings: Vec<&str> = names.iter().map(|n| n.as_ref()).collect();
        if subject == Subject::Tool {
            // Another instance may have pinned or approved these since this one last looked.
            if self.store.pull(&scope, &siblings, &self.book).await {
                self.forget_clean();
            }
        }
        let now = self.clock.unix_ms();
        let lookalikes = PoisonDetector::lookalikes(&siblings);
        let mut keep = vec![true; entries.len()];
        let mut findings = Vec::new();
        let mut refuse = None;
        let mut pins_changed = false;
        let mut refusals_changed = Vec::new();
        for (i, text) in entries.iter().enumerate() {
            let name = siblings[i];
            let user = client.user;
            if !policy.access.allows(subject, name, user, client.ip) {
                keep[i] = false;
                continue;
            }
            let print = self.text_fingerprint(text.as_bytes());
            // Parsed only when needed: a new definition, or one with findings.
            let mut parsed: Option<Value> = None;
            let mut verdict = match self.cached_verdict(print) {
                Some(verdict) => verdict,
                None => self.judge(print, parse_once(&mut parsed, text)),
            };
            if let Some(other) = lookalikes[i] {
                let mut with = (*verdict).clone();
                with.add_lookalike(name, siblings[other]);
                verdict = Arc::new(with);
            }
            let accepted_hash = (verdict.poisoned() && subject == Subject::Tool)
                .then(|| Pin::hash_of(parse_once(&mut parsed, text)));
            let mut book = self.book();
            let poisoned = verdict.poisoned()
                && !accepted_hash
                    .as_deref()
                    .is_some_and(|hash| book.findings_accepted(&scope, name, hash));
            let seen = if subject != Subject::Tool {
                None
            } else if book.is_pinned_as(&scope, name, print) {
                Some(book.observe_same(&scope, name))
            } else {
                Some(book.observe_fingerprinted(
                    &scope,
                    parse_once(&mut parsed, text),
                    Some(print),
                    now,
                ))
            };
            if poisoned {
                let action = match policy.on_poisoning {
                    ToolAction::Alert => FindingAction::Alerted,
                    ToolAction::Refuse => FindingAction::Refused,
                    ToolAction::Block => FindingAction::Removed,
                };
                let first = &verdict.findings[0];
                let kinds: Vec<&str> = {
                    let mut k: Vec<&str> =
                        verdict.findings.iter().map(|f| f.kind.as_str()).collect();
                    k.dedup();
                    k
                };
                if action != FindingAction::Alerted {
                    keep[i] = false;
                    if subject == Subject::Tool {
                        let refusal = Refusal {
                            reason: RefusalReason::ToolPoisoning,
                            detail: format!(
                                "the tool '{name}' was withheld: its definition is poisoned ({}: {})",
                                kinds.join(", "),
                                first.evidence
                            ),
                        };
                        book.refuse(&scope, name, refusal.clone());
                        refusals_changed.push((name.to_string(), Some(refusal)));
                    }
                    if action == FindingAction::Refused && refuse.is_none() {
                        refuse = Some(format!(
                            "the server's {} list was refused: the {} '{name}' is poisoned ({})",
                            subject.as_str(),
                            subject.as_str(),
                            kinds.join(", ")
                        ));
                    }
                }
                for finding in &verdict.findings {
                    findings.push(ToolFinding {
                        upstream: scope.clone(),
                        subject: subject.as_str(),
                        name: name.to_string(),
                        threat: ThreatType::ToolPoisoning,
                        kind: finding.kind.as_str().to_string(),
                        location: finding.location.clone(),
                        evidence: finding.evidence.clone(),
                        action,
                        client: Some(client.ip),
                    });
                }
                continue;
            }
            if book
                .refusal(&scope, name)
                .is_some_and(|r| r.reason == RefusalReason::ToolPoisoning)
            {
                book.lift(&scope, name);
                refusals_changed.push((name.to_string(), None));
            }
            let (kind, action, evidence) = match seen {
                Some(Seen::Pinned) => {
                    pins_changed = true;
                    continue;
                }
                Some(Seen::Same) | None => continue,
                Some(Seen::Changed { pinned }) => {
                    // The book keeps the new definition as pending: compared with that.
                    let fields = book
                        .pending(&scope, name)
                        .map(|now| pins::changed_fields(Some(&pinned.definition), &now.definition))
                        .unwrap_or_default();
                    (
                        "changed",
                        policy.on_change,
                        format!("changed: {}", fields.join(", ")),
                    )
                }
                Some(Seen::Added) | Some(Seen::Full) => {
                    ("added", policy.on_new, "a tool not in the pins".to_string())
                }
            };
            let action = if kind == "added" && policy.on_new == ToolAction::Alert {
                // Pinned as it is now, so it is reported once.
                book.approve(Some(&scope), Some(name), now);
                pins_changed = true;
                FindingAction::Alerted
            } else if action == ToolAction::Alert {
                FindingAction::Alerted
            } else {
                keep[i] = false;
                let refusal = Refusal {
                    reason: if kind == "added" {
                        RefusalReason::ToolAdded
                    } else {
                        RefusalReason::ToolChanged
                    },
                    detail: format!(
                        "the tool '{name}' was withheld: {evidence} since it was pinned; an operator must approve it"
                    ),
                };
                book.refuse(&scope, name, refusal.clone());
                refusals_changed.push((name.to_string(), Some(refusal)));
                FindingAction::Removed
            };
            findings.push(ToolFinding {
                upstream: scope.clone(),
                subject: "tool",
                name: name.to_string(),
                threat: ThreatType::ToolChanged,
                kind: kind.into(),
                location: "definition".into(),
                evidence,
                action,
                client: Some(client.ip),
            });
        }
        if subject == Subject::Tool && last_page {
            let mut book = self.book();
            if !book.is_settled(&scope) {
                book.settle(&scope);
                pins_changed = true;
            }
        }
        if !refusals_changed.is_empty() {
            self.note_withheld();
        }
        if pins_changed || !refusals_changed.is_empty() {
            self.store
                .push(&scope, &siblings, &refusals_changed, &self.book)
                .await;
        }
        let noted = findings.len() + refusals_changed.len();
        for finding in findings {
            self.bus.publish(SecurityEvent::ToolFinding(finding));
        }
        if let Some(detail) = refuse {
            return ListOutcome::Refuse(detail);
        }
        if keep.iter().all(|k| *k) {
            let clean = noted == 0 && !pins_changed && policy.access.is_empty();
            return if clean {
                ListOutcome::Clean
            } else {
                ListOutcome::Kept
            };
        }
        ListOutcome::Filtered(keep)
    }

    /// The remembered verdict of a definition (without look-alike names), by fingerprint.
    fn cached_verdict(&self, print: u128) -> Option<Arc<PoisonVerdict>> {
        self.verdicts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&print)
            .cloned()
    }

    /// Judges a definition and remembers the verdict under its fingerprint.
    fn judge(&self, print: u128, entry: &Value) -> Arc<PoisonVerdict> {
        let verdict = Arc::new(self.detector.inspect_text(entry));
        let mut cache = self.verdicts.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= VERDICT_CACHE {
            cache.clear();
        }
        cache.insert(print, verdict.clone());
        verdict
    }

    /// How many tools are pinned, pending and refused.
    pub fn counts(&self) -> pins::Counts {
        self.book().counts()
    }

    /// Where pins are kept: `memory`, `file` or `redis`.
    pub fn backend(&self) -> &'static str {
        self.store.name()
    }

    /// Pinned, pending and refused tools, for `GET /api/security/tools`.
    pub fn report(&self) -> Value {
        self.book().report()
    }

    /// The pins as a pin file.
    pub fn pin_file(&self) -> PinFile {
        self.book().export()
    }

    /// Approves one tool (in every upstream) or, with `name` `None`, every pending and refused
    /// one. Returns what was approved.
    pub async fn approve(&self, name: Option<&str>) -> Vec<(String, String)> {
        let now = self.clock.unix_ms();
        let approved = self.book().approve(None, name, now);
        self.forget_clean();
        self.note_withheld();
        self.store.approved(&approved, &self.book).await;
        approved
    }
}

/// Judges a recorded JSON-RPC response (`mcp-shield scan`): every finding in the lists it
/// holds, without pins (each recorded exchange stands alone).
pub fn scan_response(detector: &PoisonDetector, response: &Value) -> Vec<ToolFinding> {
    let mut out = Vec::new();
    let Some(result) = response.get("result") else {
        return out;
    };
    for (field, subject, key) in LISTS {
        let Some(Value::Array(entries)) = result.get(field) else {
            continue;
        };
        let names: Vec<&str> = entries
            .iter()
            .map(|e| e.get(key).and_then(Value::as_str).unwrap_or(""))
            .collect();
        let lookalikes = PoisonDetector::lookalikes(&names);
        for (i, (entry, name)) in entries.iter().zip(&names).enumerate() {
            let mut verdict = detector.inspect_text(entry);
            if let Some(other) = lookalikes[i] {
                verdict.add_lookalike(name, names[other]);
            }
            if !verdict.poisoned() {
                continue;
            }
            for finding in verdict.findings {
                out.push(ToolFinding {
                    upstream: String::new(),
                    subject: subject.as_str(),
                    name: name.to_string(),
                    threat: ThreatType::ToolPoisoning,
                    kind: finding.kind.as_str().to_string(),
                    location: format!("result.{field}.{i}.{}", finding.location),
                    evidence: finding.evidence,
                    action: FindingAction::Alerted,
                    client: None,
                });
            }
        }
    }
    out
}

/// The JSON-RPC error that replaces a refused list answer (`on_poisoning = "refuse"`).
pub fn refused_list(id: Value, detail: &str) -> Value {
    serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {"code": TOOL_REFUSED, "message": detail, "data": {"type": "tool_poisoning"}},
    })
}

/// The lists a result may hold: field, what its entries are, the key naming an entry.
const LISTS: [(&str, Subject, &str); 4] = [
    ("tools", Subject::Tool, "name"),
    ("prompts", Subject::Prompt, "name"),
    ("resources", Subject::Resource, "uri"),
    ("resourceTemplates", Subject::Resource, "uriTemplate"),
];

/// What became of one list.
#[derive(Debug, Clone, PartialEq)]
pub enum ListOutcome {
    /// Nothing found, nothing changed, every tool as pinned, no access rule applied.
    Clean,
    /// Kept whole; something was noted (an alert, a new pin).
    Kept,
    /// Entries to keep (`true`) and to remove.
    Filtered(Vec<bool>),
    /// The whole response refused, with this message.
    Refuse(String),
}

/// An entry's value, parsed the first time it is asked for.
fn parse_once<'p>(parsed: &'p mut Option<Value>, text: &str) -> &'p Value {
    parsed.get_or_insert_with(|| serde_json::from_str(text).unwrap_or(Value::Null))
}

/// An entry's name (a resource's URI), read without parsing the rest into values.
fn entry_name<'a>(text: &'a str, subject: Subject) -> std::borrow::Cow<'a, str> {
    #[derive(serde::Deserialize)]
    struct Named<'a> {
        #[serde(borrow, default)]
        name: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow, default)]
        uri: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow, default, rename = "uriTemplate")]
        uri_template: Option<std::borrow::Cow<'a, str>>,
    }
    let Ok(named) = serde_json::from_str::<Named<'a>>(text) else {
        return std::borrow::Cow::Borrowed("");
    };
    let found = match subject {
        Subject::Resource => named.uri.or(named.uri_template),
        _ => named.name,
    };
    found.unwrap_or(std::borrow::Cow::Borrowed(""))
}
