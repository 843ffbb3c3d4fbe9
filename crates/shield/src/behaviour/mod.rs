//! Behavioural analysis: what a client does over time, and how unusual that is.
//!
//! Attacks without a payload (credential stuffing, scraping, slow enumeration, a hijacked
//! agent calling every tool) show only in behaviour. Three parts:
//!
//! - [`features`]: per client (address, and user when known) a window of counts kept in a
//!   fixed table of atomics, updated after every response without a lock, and turned into
//!   twelve features (rate, burstiness, distinct paths, error and 404 ratios, method mix,
//!   body size, user-agent changes, threats, unusual tools, distinct tools and 404 paths).
//! - [`forest`]: a seeded isolation forest, trained in the background on the clients active
//!   in the window (first as soon as `SECURITY_THREAT_ML_MIN_CLIENTS` are, then every
//!   `SECURITY_THREAT_ML_RETRAIN_INTERVAL` seconds), saved to `SECURITY_DATA_DIR` and loaded at
//!   start. The same background pass scores every active client in `[0, 1]`; at or above
//!   `SECURITY_THREAT_ANOMALY_THRESHOLD` the client gets an `anomalous_behavior` indicator
//!   (medium: it lowers reputation) and, with `SECURITY_THREAT_ANOMALY_BLOCK`, is refused.
//!   The request path reads one atomic score; it never waits for training.
//! - [`classify`]: named patterns with their evidence (`scanner`: enumeration, tool sweep;
//!   `bot`: fixed-interval automation), for the threat assessment.
//!
//! [`simulate`] generates seeded traffic of benign and hostile clients, to measure all this.

pub mod classify;
pub mod features;
pub mod forest;
pub mod simulate;

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::decision::{BlockReason, Verdict};
use crate::events::{EventBus, EventSink, SecurityEvent};
use crate::pipeline::{Check, Guard, Outcome};
use crate::request::{RequestFacts, UserId};
use crate::threat::{Severity, ThreatIndicator, ThreatType};

pub use classify::{classify, BehaviourClass};
pub use features::{
    ClientFeatures, ClientKey, ClientTable, Counts, FeatureVector, MethodClass, Observation,
    FEATURE_COUNT, FEATURE_NAMES,
};
pub use forest::{IsolationForest, TrainError};

/// Trees in the forest.
pub const TREES: usize = 100;
/// Clients sampled per tree (the paper's 256: more adds cost, not accuracy).
pub const SAMPLE_SIZE: usize = 256;
/// Requests in the window before a client is trained on or scored: two requests say little.
pub const MIN_REQUESTS: f64 = 3.0;
/// Clients trained on at most (a uniform sample of the active ones beyond that).
pub const MAX_TRAINING_CLIENTS: usize = 100_000;
/// The file the model is saved in, under `SECURITY_DATA_DIR`.
pub const MODEL_FILE: &str = "anomaly-model.json";

/// How the analysis is set up; from `[threat_detection]`.
#[derive(Debug, Clone, PartialEq)]
pub struct BehaviourSettings {
    /// Score at or above which a client is anomalous.
    pub threshold: f64,
    /// Whether an anomalous client's requests are refused (otherwise: indicator, reputation).
    pub block: bool,
    /// Clients needed before the first training.
    pub min_clients: usize,
    /// Milliseconds between trainings.
    pub retrain_interval_ms: u64,
    /// The feature window, milliseconds.
    pub window_ms: u64,
    /// Clients tracked at most.
    pub max_clients: usize,
    /// The training seed.
    pub seed: u64,
    /// Fixed hash keys for the client table (the simulator); random when `None`.
    pub table_keys: Option<(u64, u64)>,
}

impl Default for BehaviourSettings {
    fn default() -> Self {
        BehaviourSettings {
            threshold: 0.7,
            block: false,
            min_clients: 20,
            retrain_interval_ms: 3_600_000,
            window_ms: 300_000,
            max_clients: 50_000,
            seed: 0x5eed,
            table_keys: None,
        }
    }
}

/// The saved model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// The feature names it was trained on (a model of other features is not loaded).
    pub features: Vec<String>,
    /// When it was trained (Unix ms).
    pub trained_at_ms: u64,
    /// The forest.
    pub forest: IsolationForest,
}

/// What the threat assessment shows of a client's behaviour.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BehaviourReport {
    /// Anomaly score, 0 to 1 (null before a model exists or while the client is unseen).
    pub anomaly_score: Option<f64>,
    /// Whether the score is at or above the threshold.
    pub anomalous: bool,
    /// The features behind the score, by name.
    pub features: BTreeMap<&'static str, f64>,
    /// The counts behind the features.
    pub counts: Counts,
    /// Bot and scanner patterns, with evidence.
    pub classes: Vec<BehaviourClass>,
}

/// Behavioural analysis of every client: features, model, scores.
pub struct BehaviourAnalysis {
    table: Arc<ClientTable>,
    model: RwLock<Option<Arc<Model>>>,
    /// Swapped by [`BehaviourAnalysis::reconfigure`].
    settings: arc_swap::ArcSwap<BehaviourSettings>,
    last_training_ms: AtomicU64,
    data_dir: Option<PathBuf>,
    bus: Arc<EventBus>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for BehaviourAnalysis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BehaviourAnalysis")
            .field("table", &self.table)
            .field("settings", &self.settings)
            .field("model", &self.has_model())
            .finish()
    }
}

/// Counts the threat guard's findings into the client table (an event sink: the guard
/// publishes, the table learns).
pub struct ThreatCounter {
    table: Arc<ClientTable>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for ThreatCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreatCounter").finish_non_exhaustive()
    }
}

impl EventSink for ThreatCounter {
    fn handle(&self, event: &SecurityEvent) {
        let (ip, found) = match event {
            SecurityEvent::Blocked {
                ip,
                reason: BlockReason::Threat { threats, .. },
                ..
            } => (
                ip,
                threats
                    .iter()
                    .filter(|t| *t != "anomalous_behavior")
                    .count(),
            ),
            SecurityEvent::ThreatObserved { ip, indicators, .. } => (
                ip,
                indicators
                    .iter()
                    .filter(|i| i.threat_type != ThreatType::AnomalousBehavior)
                    .count(),
            ),
            _ => return,
        };
        if found > 0 {
            self.table
                .add_threats(ClientKey::Ip(*ip), found as u32, self.clock.unix_ms());
        }
    }
}

/// Why the model could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is not a model of these features.
    #[error("{path}: {detail}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

impl BehaviourAnalysis {
    /// The client table, and the sink that counts the threat guard's findings into it (to
    /// be given to the bus before [`BehaviourAnalysis::with_table`]).
    pub fn table_for(
        settings: &BehaviourSettings,
        clock: Arc<dyn Clock>,
    ) -> (Arc<ClientTable>, ThreatCounter) {
        let table = Arc::new(match settings.table_keys {
            Some(keys) => ClientTable::with_keys(settings.max_clients, settings.window_ms, keys),
            None => ClientTable::new(settings.max_clients, settings.window_ms),
        });
        let counter = ThreatCounter {
            table: table.clone(),
            clock,
        };
        (table, counter)
    }

    /// Puts the analysis together over `table` (from [`BehaviourAnalysis::table_for`]); loads
    /// a saved model from `data_dir` when there is one.
    pub fn with_table(
        table: Arc<ClientTable>,
        settings: BehaviourSettings,
        data_dir: Option<PathBuf>,
        bus: Arc<EventBus>,
        clock: Arc<dyn Clock>,
    ) -> Result<BehaviourAnalysis, ModelError> {
        let analysis = BehaviourAnalysis {
            table,
            model: RwLock::new(None),
            settings: arc_swap::ArcSwap::from_pointee(settings),
            last_training_ms: AtomicU64::new(0),
            data_dir,
            bus,
            clock,
        };
        if let Some(model) = analysis.load()? {
            tracing::info!(
                target: "security.threat_detector",
                "anomaly model loaded: trained on {} clients",
                model.forest.trained_on
            );
            analysis
                .last_training_ms
                .store(model.trained_at_ms, Ordering::Relaxed);
            *analysis.model.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(model));
        }
        Ok(analysis)
    }

    /// The settings.
    pub fn settings(&self) -> Arc<BehaviourSettings> {
        self.settings.load_full()
    }

    /// Takes a new threshold, blocking switch, training interval and minimum of clients (a
    /// configuration reload); the window and the table's size are the table's shape and stay
    /// as they were, as do the clients seen and the model.
    pub fn reconfigure(&self, new: &BehaviourSettings) {
        let old = self.settings.load();
        self.settings.store(Arc::new(BehaviourSettings {
            window_ms: old.window_ms,
            max_clients: old.max_clients,
            ..new.clone()
        }));
    }

    /// The client table.
    pub fn table(&self) -> &ClientTable {
        &self.table
    }

    /// Whether a model exists.
    pub fn has_model(&self) -> bool {
        self.current_model().is_some()
    }

    /// What the status shows: the model's training (null before the first) and the clients
    /// tracked now.
    pub fn model_summary(&self) -> serde_json::Value {
        let model = self.current_model();
        serde_json::json!({
            "trained": model.is_some(),
            "trained_at_ms": model.as_ref().map(|m| m.trained_at_ms),
            "trained_on_clients": model.as_ref().map(|m| m.forest.trained_on),
            "threshold": self.settings.load().threshold,
            "block": self.settings.load().block,
            "max_clients": self.table.capacity(),
        })
    }

    fn current_model(&self) -> Option<Arc<Model>> {
        self.model.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn model_path(&self) -> Option<PathBuf> {
        self.data_dir.as_ref().map(|d| d.join(MODEL_FILE))
    }

    fn load(&self) -> Result<Option<Model>, ModelError> {
        let Some(path) = self.model_path() else {
            return Ok(None);
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(ModelError::Io { path, source }),
        };
        let model: Model = serde_json::from_str(&text).map_err(|e| ModelError::Invalid {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        if model.features != FEATURE_NAMES || model.forest.dimensions != FEATURE_COUNT {
            return Err(ModelError::Invalid {
                path,
                detail: format!(
                    "a model of other features ({}): delete it to train anew",
                    model.features.join(", ")
                ),
            });
        }
        Ok(Some(model))
    }

    fn save(&self, model: &Model) -> Result<(), ModelError> {
        let Some(path) = self.model_path() else {
            return Ok(());
        };
        let io = |source| ModelError::Io {
            path: path.clone(),
            source,
        };
        let text = serde_json::to_string(model).map_err(|e| ModelError::Invalid {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        // Written aside and renamed: a crash mid-write leaves the old model whole.
        let partial = path.with_extension("json.partial");
        std::fs::write(&partial, text).map_err(io)?;
        std::fs::rename(&partial, &path).map_err(io)
    }

    /// Counts a finished request.
    pub fn observe(&self, facts: &RequestFacts, outcome: &Outcome) {
        let at_ms = self.clock.unix_ms();
        let mut messages = facts.json_rpc.iter();
        let first = messages.next();
        let seen = Observation {
            at_ms,
            path: facts.path(),
            method: MethodClass::of(first.map(|m| m.method.as_deref().unwrap_or("ping"))),
            tool: first.and_then(|m| m.tool()),
            status: outcome.status,
            body_bytes: facts.body.len() as u64,
            user_agent: facts.user_agent_hash,
            threats: 0,
        };
        self.table.observe(ClientKey::Ip(facts.client_ip), &seen);
        if let Some(user) = &facts.user {
            self.table.observe(ClientKey::User(user_key(user)), &seen);
        }
        // The other tools of a batch count as calls too (a sweep in one request).
        for message in messages {
            if let Some(tool) = message.tool() {
                let more = Observation {
                    tool: Some(tool),
                    body_bytes: 0,
                    ..seen
                };
                self.table.observe(ClientKey::Ip(facts.client_ip), &more);
            }
        }
    }

    /// Trains a model on the clients active now, when there are at least `min_clients`.
    /// Returns whether it trained. CPU-bound: call it off the async workers.
    pub fn train(&self) -> Result<bool, TrainError> {
        let now = self.clock.unix_ms();
        let active = self.table.active(now, MIN_REQUESTS);
        if active.len() < self.settings.load().min_clients.max(2) {
            return Ok(false);
        }
        let mut points: Vec<FeatureVector> = active.iter().map(|c| c.vector).collect();
        if points.len() > MAX_TRAINING_CLIENTS {
            let mut rng = forest::SplitMix64::new(self.settings.load().seed ^ now);
            for i in 0..MAX_TRAINING_CLIENTS {
                let j = i + rng.below(points.len() - i);
                points.swap(i, j);
            }
            points.truncate(MAX_TRAINING_CLIENTS);
        }
        let forest =
            IsolationForest::train(&points, TREES, SAMPLE_SIZE, self.settings.load().seed)?;
        let model = Model {
            features: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
            trained_at_ms: now,
            forest,
        };
        if let Err(e) = self.save(&model) {
            tracing::warn!(target: "security.threat_detector", "anomaly model not saved: {e}");
        }
        tracing::info!(
            target: "security.threat_detector",
            "anomaly model trained on {} clients",
            points.len()
        );
        self.last_training_ms.store(now.max(1), Ordering::Relaxed);
        *self.model.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(model));
        Ok(true)
    }

    /// Scores every active client with the current model, records the scores for the request
    /// path, and publishes `anomalous_behavior` for clients at or above the threshold (once
    /// per window each). Returns how many were scored.
    pub fn score_active(&self) -> usize {
        let Some(model) = self.current_model() else {
            return 0;
        };
        let now = self.clock.unix_ms();
        let active = self.table.active(now, MIN_REQUESTS);
        for client in &active {
            let score = model.forest.score(&client.vector);
            self.table.set_score(client.client, score);
            if score < self.settings.load().threshold {
                continue;
            }
            let ClientKey::Ip(ip) = client.client else {
                continue;
            };
            if !self.table.flag_due(client.client, now) {
                continue;
            }
            let classes = classify(&client.counts);
            let detail = classes
                .iter()
                .map(|c| format!("{} ({})", c.class, c.evidence))
                .collect::<Vec<_>>()
                .join("; ");
            let indicator = ThreatIndicator {
                threat_type: ThreatType::AnomalousBehavior,
                severity: Severity::Medium,
                confidence: score as f32,
                location: "behaviour".into(),
                snippet: if detail.is_empty() {
                    format!("anomaly score {score:.2}")
                } else {
                    format!("anomaly score {score:.2}: {detail}")
                },
                argument: None,
            };
            self.bus.publish(SecurityEvent::ThreatObserved {
                ip,
                path: String::new(),
                would_block: self.settings.load().block,
                findings: vec![crate::decision::Finding::from_indicator(&indicator, None)],
                indicators: vec![indicator],
            });
        }
        active.len()
    }

    /// One background step: trains when due (first as soon as enough clients are seen, then
    /// every retrain interval), then scores the active clients.
    pub fn tick(&self) {
        let now = self.clock.unix_ms();
        let last = self.last_training_ms.load(Ordering::Relaxed);
        let due = !self.has_model()
            || now.saturating_sub(last) >= self.settings.load().retrain_interval_ms;
        if due {
            if let Err(e) = self.train() {
                tracing::warn!(target: "security.threat_detector", "anomaly model not trained: {e}");
            }
        }
        self.score_active();
    }

    /// Runs [`BehaviourAnalysis::tick`] on the blocking pool every few seconds (at most the
    /// retrain interval) while `analysis` lives.
    pub fn spawn(analysis: &Arc<BehaviourAnalysis>, runtime: &tokio::runtime::Handle) {
        let weak = Arc::downgrade(analysis);
        let period = std::time::Duration::from_millis(
            analysis
                .settings
                .load()
                .retrain_interval_ms
                .clamp(500, 5_000),
        );
        runtime.spawn(async move {
            let mut ticker = tokio::time::interval(period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(analysis) = weak.upgrade() else {
                    return;
                };
                // Training is CPU work: never on the threads that serve requests.
                if tokio::task::spawn_blocking(move || analysis.tick())
                    .await
                    .is_err()
                {
                    tracing::warn!(target: "security.threat_detector", "anomaly scoring failed");
                }
            }
        });
    }

    /// The behaviour of `ip` for the threat assessment: the score from the current model,
    /// the features and counts behind it, and the named patterns.
    pub fn report(&self, ip: IpAddr) -> Option<BehaviourReport> {
        let now = self.clock.unix_ms();
        let client = self.table.features(ClientKey::Ip(ip.to_canonical()), now)?;
        let anomaly_score = self
            .current_model()
            .filter(|_| client.counts.requests >= MIN_REQUESTS)
            .map(|m| m.forest.score(&client.vector));
        Some(BehaviourReport {
            anomaly_score,
            anomalous: anomaly_score.is_some_and(|s| s >= self.settings.load().threshold),
            features: FEATURE_NAMES
                .iter()
                .copied()
                .zip(client.vector.iter().map(|v| (v * 1000.0).round() / 1000.0))
                .collect(),
            counts: client.counts,
            classes: classify(&client.counts),
        })
    }
}

/// A stable key for a user (the table hashes it again with its own key).
fn user_key(user: &UserId) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    user.hash(&mut h);
    h.finish()
}

/// The analysis as a pipeline guard: counts every request after its response; refuses an
/// anomalous client's requests only with `SECURITY_THREAT_ANOMALY_BLOCK`.
#[derive(Debug)]
pub struct BehaviourGuard {
    analysis: Arc<BehaviourAnalysis>,
}

impl BehaviourGuard {
    /// A guard over `analysis`.
    pub fn new(analysis: Arc<BehaviourAnalysis>) -> Self {
        BehaviourGuard { analysis }
    }
}

impl Guard for BehaviourGuard {
    fn name(&self) -> &'static str {
        "behaviour_analysis"
    }

    fn check<'a>(&'a self, facts: &'a RequestFacts) -> Check<'a> {
        let settings = self.analysis.settings.load();
        if settings.block {
            let score = self.analysis.table.score(ClientKey::Ip(facts.client_ip));
            if score.is_some_and(|s| s >= settings.threshold) {
                return Check::Ready(Ok(Verdict::Block(BlockReason::Threat {
                    threats: vec!["anomalous_behavior".into()],
                    findings: vec![crate::decision::Finding {
                        threat: "anomalous_behavior".into(),
                        severity: "medium",
                        field: "behaviour".into(),
                        tool: None,
                        argument: None,
                        evidence: score
                            .map_or_else(String::new, |s| format!("anomaly score {s:.2}")),
                        kind: None,
                    }],
                })));
            }
        }
        Check::Ready(Ok(Verdict::pass()))
    }

    fn observe(&self, facts: &RequestFacts, outcome: &Outcome) {
        self.analysis.observe(facts, outcome);
    }
}
