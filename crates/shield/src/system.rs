//! [`SecuritySystem`]: builds every component from a [`Config`] and hands out the layer, the
//! admin router, statistics and status (the seed's `init_security_system`,
//! `create_security_middleware`, `get_statistics` and `get_security_status`).

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::Serialize;

use crate::admission::history::ClientRecords;
use crate::admission::limit::LimitSettings;
use crate::admission::{AdmissionSettings, ClientHistory, UpstreamAdmission};
use crate::behaviour::{BehaviourAnalysis, BehaviourGuard, BehaviourSettings};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ConfigError, ConfigOverrides};
use crate::ddos::inflight::{OpenCounts, Permit};
use crate::ddos::DdosGuard;
use crate::events::{
    EventBus, EventSink, LogIpMode, LogSink, SecurityEvent, Statistics, StatisticsSnapshot,
};
use crate::ip::feeds::{FeedGuard, Feeds};
use crate::ip::geo::RiskPolicy;
use crate::ip::geo::{CountryGuard, GeoIp};
use crate::ip::persist;
use crate::ip::reputation::Reputation;
use crate::ip::shared_reputation::SharedReputation;
use crate::ip::sync::ListSync;
use crate::ip::{parse_network, BlacklistGuard, IpLists, ListError, ListKind};
use crate::layer::SecurityLayer;
use crate::pipeline::Pipeline;
use crate::rate_limit::redis_store::RedisStore;
use crate::rate_limit::{MemoryStore, RateLimitGuard, RateLimitStore};
use crate::request::keyed_hash;
use crate::shared::{Core, Dirty, FeedsAndGuard, GuardSet, RequestSettings};
use crate::state::redis::{RedisState, RedisTarget};
use crate::threat::{ThreatDetector, ThreatGuard};
use crate::views::{self, SecurityStatus, ThreatAssessment};

/// Why the system could not start.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A start-up list did not fit.
    #[error("loading {setting}: {source}")]
    List {
        /// Which setting.
        setting: &'static str,
        /// What went wrong.
        source: ListError,
    },
    /// The saved state could not be read.
    #[error("SECURITY_DATA_DIR: {0}")]
    Persist(String),
    /// The tool pin file (or the saved pins) could not be read.
    #[error("SECURITY_MCP_TOOLS_PIN_FILE: {0}")]
    ToolPins(String),
    /// The threat feeds could not be set up.
    #[error("SECURITY_THREAT_FEEDS: {0}")]
    Feeds(String),
    /// A GeoIP database is unreadable or corrupt.
    #[error("{0}")]
    GeoIp(String),
    /// The Redis backend could not be set up.
    #[error("{0}")]
    Redis(String),
    /// The threat detection policy is invalid.
    #[error("{0}")]
    Threat(#[from] crate::threat::PolicyError),
    /// The operating system gave no randomness for a generated key.
    #[error("generating a random key: {0}")]
    Random(String),
    /// The saved anomaly model is unreadable or of other features.
    #[error("SECURITY_DATA_DIR: anomaly model {0}")]
    Behaviour(crate::behaviour::ModelError),
}

/// The security system: one per process (or per gateway), cheap to clone.
#[derive(Clone)]
pub struct SecuritySystem {
    core: Arc<Core>,
}

impl std::fmt::Debug for SecuritySystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecuritySystem")
            .field("pipeline", &self.core.pipeline)
            .finish_non_exhaustive()
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N], InitError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| InitError::Random(e.to_string()))?;
    Ok(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The 128-bit SipHash key behind every keyed hash, from `SECURITY_IP_HASH_KEY` (so every
/// instance and restart agrees) or random.
fn hash_key(configured: &str) -> Result<(u64, u64), InitError> {
    if configured.is_empty() {
        let bytes: [u8; 16] = random_bytes()?;
        let (a, b) = bytes.split_at(8);
        let word = |s: &[u8]| u64::from_le_bytes(s.try_into().unwrap_or([0; 8]));
        return Ok((word(a), word(b)));
    }
    // Two fixed-key hashes of the configured text: a stable way to get 128 key bits from any
    // string. The text is the secret; these constants are not.
    Ok((
        keyed_hash(
            (0x6d63_702d_7368_6965, 0x6c64_2d6b_6579_2d30),
            configured.as_bytes(),
        ),
        keyed_hash(
            (0x6d63_702d_7368_6965, 0x6c64_2d6b_6579_2d31),
            configured.as_bytes(),
        ),
    ))
}

/// Behavioural analysis as `[threat_detection]` says.
fn behaviour_settings(config: &Config) -> BehaviourSettings {
    let td = &config.threat_detection;
    BehaviourSettings {
        threshold: td.anomaly_threshold,
        block: td.anomaly_block && td.mode != "monitor",
        min_clients: usize::try_from(td.ml_min_clients).unwrap_or(usize::MAX),
        retrain_interval_ms: td.ml_retrain_interval.saturating_mul(1000),
        window_ms: td.ml_window.saturating_mul(1000),
        max_clients: usize::try_from(td.ml_max_clients).unwrap_or(usize::MAX),
        ..BehaviourSettings::default()
    }
}

/// What a reload did: the settings it changed and those that differ but wait for a restart
/// (TOML paths).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ReloadReport {
    /// Changed now.
    pub applied: Vec<String>,
    /// Different in the new configuration, still the running value until a restart.
    pub needs_restart: Vec<String>,
}

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The system was built from a configuration in code: there is nothing to re-read.
    #[error("no configuration file to reload: start with --config FILE")]
    NoSource,
    /// The new configuration is invalid (every problem, with key and value).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A part of it could not be put in force (a threat policy, a feed).
    #[error(transparent)]
    Init(#[from] InitError),
}

/// The log line of a reload that was put in force.
fn log_reload(by: &str, report: &ReloadReport) {
    if report.applied.is_empty() && report.needs_restart.is_empty() {
        tracing::info!(target: "mcp_shield", "configuration reloaded ({by}): nothing changed");
        return;
    }
    tracing::info!(
        target: "mcp_shield",
        applied = ?report.applied,
        needs_restart = ?report.needs_restart,
        "configuration reloaded ({by}): {} setting(s) changed{}",
        report.applied.len(),
        if report.needs_restart.is_empty() {
            String::new()
        } else {
            format!("; not changed until a restart: {}", report.needs_restart.join(", "))
        }
    );
}

/// The networks of a list setting (`SECURITY_WHITELIST`, `SECURITY_BLACKLIST`). Validated by
/// the loader; a Config built by hand is checked here too.
fn configured_networks(
    setting: &'static str,
    entries: &[String],
) -> Result<Vec<ipnet::IpNet>, InitError> {
    entries
        .iter()
        .map(|text| {
            parse_network(text).map_err(|message| {
                InitError::Config(ConfigError {
                    problems: vec![crate::config::ConfigProblem {
                        source: "configuration".into(),
                        key: setting.into(),
                        value: Some(text.clone()),
                        message,
                    }],
                })
            })
        })
        .collect()
}

/// The threat feeds of a configuration (with IP management on and feeds listed): the feeds,
/// refreshed every `threat_feed_refresh` seconds from now on, and their guard. Not loaded yet:
/// the caller decides whether to wait for the first load.
fn threat_feeds(
    config: &Config,
    reputation: Option<&Arc<Reputation>>,
) -> Result<Option<FeedsAndGuard>, InitError> {
    if !config.enable_ip_management || config.ip.threat_feeds.is_empty() {
        return Ok(None);
    }
    let feeds = Feeds::new(&config.ip.threat_feeds).map_err(InitError::Feeds)?;
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
        InitError::Feeds("threat feeds need a Tokio runtime: build the system inside one".into())
    })?;
    feeds.spawn_refresh(
        &runtime,
        std::time::Duration::from_secs(config.ip.threat_feed_refresh.max(1)),
    );
    let guard = Arc::new(FeedGuard::new(feeds.clone(), reputation.cloned()));
    Ok(Some((feeds, guard)))
}

/// The country rule of a configuration, when it has one and a GeoIP database is loaded.
fn country_guard(config: &Config, geo: Option<&Arc<GeoIp>>) -> Option<Arc<CountryGuard>> {
    let wants_countries =
        !config.ip.geo_blocked_countries.is_empty() || !config.ip.geo_allowed_countries.is_empty();
    if !(wants_countries && config.enable_ip_management) {
        return None;
    }
    let Some(geo) = geo else {
        tracing::warn!(
            target: "security.ip_manager",
            "country rules are configured but no GeoIP database is loaded: they are not enforced"
        );
        return None;
    };
    Some(Arc::new(CountryGuard::new(
        geo.clone(),
        &config.ip.geo_blocked_countries,
        &config.ip.geo_allowed_countries,
    )))
}

/// The threat guard over `detector`, with threat detection on.
fn threat_guard(
    config: &Config,
    detector: &Arc<ThreatDetector>,
    bus: &Arc<EventBus>,
) -> Option<Arc<ThreatGuard>> {
    config.enable_threat_detection.then(|| {
        Arc::new(ThreatGuard::new(
            detector.clone(),
            config.threat_detection.mode == "monitor",
            bus.clone(),
        ))
    })
}

impl SecuritySystem {
    pub(crate) fn from_core(core: Arc<Core>) -> Self {
        SecuritySystem { core }
    }

    /// Reads the environment, applies `overrides`, and builds the system: the seed's
    /// `await init_security_system(config_overrides)`.
    pub async fn init(overrides: ConfigOverrides) -> Result<Self, InitError> {
        Self::start(Config::from_env(overrides)?).await
    }

    /// Builds the system and, with Redis configured, waits (up to about a second) for the
    /// first connection and the shared lists, so the first requests already see shared state.
    /// Without Redis it is [`SecuritySystem::from_config`].
    pub async fn start(config: Config) -> Result<Self, InitError> {
        let system = Self::from_config(config)?;
        if let Some(feeds) = system.core.guard_set().feeds() {
            // The first load, bounded: a feed server that hangs must not hold up the start.
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(30), feeds.refresh_all()).await;
        }
        if let Some(redis) = &system.core.redis {
            if redis.connect().await {
                // Give the list subscription a moment to load the shared lists.
                for _ in 0..50 {
                    if system.lists_synced() {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
        }
        Ok(system)
    }

    /// Saves the lists, temporary blocks and reputation to `SECURITY_DATA_DIR` now (memory
    /// mode; they are also saved every ten seconds when they changed). Call it at shutdown.
    pub async fn persist(&self) -> Result<(), String> {
        if self.core.data_dir.is_none() {
            return Ok(());
        }
        let core = self.core.clone();
        tokio::task::spawn_blocking(move || save(&core))
            .await
            .map_err(|e| format!("saving state: {e}"))?
    }

    /// Refreshes every threat feed now (they also refresh on their own every
    /// `SECURITY_THREAT_FEED_REFRESH` seconds); returns how many failed.
    pub async fn refresh_feeds(&self) -> usize {
        let feeds = self.core.guard_set().feeds().cloned();
        match feeds {
            Some(feeds) => feeds.refresh_all().await,
            None => 0,
        }
    }

    fn lists_synced(&self) -> bool {
        self.core.list_sync.as_ref().is_none_or(|s| s.synced())
    }

    /// Whether shared state is unavailable and local state is serving (Redis configured and
    /// down). Shown as `degraded` by `/ready` and `status`.
    pub fn degraded(&self) -> bool {
        self.core.redis.as_ref().is_some_and(|r| !r.is_up())
    }

    /// Builds the system from a configuration, on the machine's clocks.
    pub fn from_config(config: Config) -> Result<Self, InitError> {
        Self::with_clock(config, Arc::new(SystemClock::default()))
    }

    /// Builds the system on a given clock (tests move a [`crate::ManualClock`]).
    pub fn with_clock(config: Config, clock: Arc<dyn Clock>) -> Result<Self, InitError> {
        let stats = Arc::new(Statistics::default());
        let lists = Arc::new(IpLists::new(
            usize::try_from(config.ip_list_max_entries).unwrap_or(usize::MAX),
            clock.clone(),
        ));
        let reputation = config.enable_ip_management.then(|| {
            Reputation::new(
                config.ip.auto_blacklist_threshold,
                config.ip.temp_block_duration,
                usize::try_from(config.ip.max_tracked_ips).unwrap_or(usize::MAX),
                lists.clone(),
                clock.clone(),
            )
        });
        let hash_key = hash_key(&config.ip_hash_key)?;
        let geo = if config.enable_ip_management {
            GeoIp::open(&[
                &config.geoip_database_path,
                &config.geoip_asn_database_path,
                &config.geoip_anonymous_database_path,
            ])
            .map_err(InitError::GeoIp)?
            .map(Arc::new)
        } else {
            None
        };
        let geo_risk = geo
            .as_ref()
            .map(|g| {
                Arc::new(RiskPolicy::new(
                    g.clone(),
                    &config.ip.geo_high_risk_countries,
                ))
            })
            .filter(|p| p.is_active());
        if let (Some(reputation), Some(policy)) = (&reputation, &geo_risk) {
            reputation.use_geo_risk(policy.clone());
        }
        if !config.ip.geo_high_risk_countries.is_empty() && geo.is_none() {
            tracing::warn!(
                target: "security.ip_manager",
                "high-risk countries are configured but no GeoIP database is loaded: they are not used"
            );
        }
        if let Some(reputation) = &reputation {
            // Saved records carry a keyed hash, not the address, when the operator gave a key
            // (a random per-process key could never match them again after a restart).
            if !config.ip_hash_key.is_empty() {
                reputation.save_by_hash(hash_key);
            }
        }
        let ip_mode = match config.log_ip_mode.as_str() {
            "hash" => LogIpMode::Hash,
            "mask" => LogIpMode::Mask,
            _ => LogIpMode::Plain,
        };
        let incidents = Arc::new(
            crate::incidents::Incidents::new(crate::incidents::CAPACITY, clock.clone())
                .with_geo(geo.clone()),
        );
        let mut sinks: Vec<Arc<dyn EventSink>> = vec![
            stats.clone(),
            incidents.clone(),
            Arc::new(LogSink::new(ip_mode, hash_key).with_geo(geo.clone())),
        ];
        if let Some(reputation) = &reputation {
            sinks.push(reputation.clone());
        }
        // Saving across restarts: memory mode only (with Redis, Redis keeps the lists).
        let data_dir = (!config.data_dir.is_empty() && !config.uses_redis())
            .then(|| std::path::PathBuf::from(&config.data_dir));
        let dirty = data_dir.as_ref().map(|_| Arc::new(Dirty::default()));
        if let Some(dirty) = &dirty {
            sinks.push(dirty.clone());
        }
        // Behavioural analysis: its table counts the threat guard's findings (a sink), so it
        // is made before the bus and completed after.
        let behaviour_settings = config
            .enable_threat_detection
            .then(|| behaviour_settings(&config));
        let behaviour_table = behaviour_settings.as_ref().map(|settings| {
            let (table, counter) = BehaviourAnalysis::table_for(settings, clock.clone());
            sinks.push(Arc::new(counter));
            table
        });
        let bus = Arc::new(EventBus::new(sinks, 4096));
        if let Some(reputation) = &reputation {
            reputation.announce_on(&bus);
        }
        let behaviour = match (behaviour_table, behaviour_settings) {
            (Some(table), Some(settings)) => Some(Arc::new(
                BehaviourAnalysis::with_table(
                    table,
                    settings,
                    // The model is this instance's own: saved in Redis mode too.
                    (!config.data_dir.is_empty())
                        .then(|| std::path::PathBuf::from(&config.data_dir)),
                    bus.clone(),
                    clock.clone(),
                )
                .map_err(InitError::Behaviour)?,
            )),
            _ => None,
        };
        for (setting, list, entries) in [
            ("SECURITY_WHITELIST", ListKind::Whitelist, &config.whitelist),
            ("SECURITY_BLACKLIST", ListKind::Blacklist, &config.blacklist),
        ] {
            for network in configured_networks(setting, entries)? {
                lists
                    .add(list, network, setting, None)
                    .map_err(|source| InitError::List { setting, source })?;
            }
        }
        if let Some(dir) = &data_dir {
            let retention_ms = config.data_retention.saturating_mul(1000);
            match persist::read(dir).map_err(InitError::Persist)? {
                Some(saved) => {
                    let white = persist::restore(&lists, ListKind::Whitelist, &saved.whitelist);
                    let black = persist::restore(&lists, ListKind::Blacklist, &saved.blacklist);
                    let scores = reputation
                        .as_ref()
                        .map_or(0, |r| r.import(&saved.reputation, retention_ms));
                    tracing::info!(
                        target: "security.ip_manager",
                        "restored from {}: {white} whitelist and {black} blacklist entries, {scores} reputation records",
                        dir.display()
                    );
                }
                None => {
                    tracing::info!(target: "security.ip_manager", "no saved state in {} yet", dir.display())
                }
            }
        }
        let redis = if !config.uses_redis() {
            None
        } else {
            let target = if config.redis_cluster_nodes.is_empty() {
                RedisTarget::Server(&config.redis_url)
            } else {
                RedisTarget::Cluster(&config.redis_cluster_nodes)
            };
            Some(
                RedisState::new(
                    target,
                    &config.redis_key_prefix,
                    std::time::Duration::from_millis(config.redis_timeout_ms),
                    hash_key,
                )
                .map_err(InitError::Redis)?,
            )
        };
        let emergency = Arc::new(AtomicBool::new(false));
        let ddos = config.enable_ddos_protection.then(|| {
            Arc::new(
                DdosGuard::new(&config.ddos, emergency.clone(), bus.clone(), clock.clone())
                    .with_reputation(reputation.clone()),
            )
        });
        let feeds = match threat_feeds(&config, reputation.as_ref())? {
            Some((feeds, guard)) => {
                // Loaded right away in the background (`SecuritySystem::start` waits for it).
                let first = feeds.clone();
                tokio::spawn(async move {
                    first.refresh_all().await;
                });
                Some((feeds, guard))
            }
            None => None,
        };
        let country = country_guard(&config, geo.as_ref());
        let max_keys = usize::try_from(config.rate_limit.max_tracked_keys).unwrap_or(usize::MAX);
        let rate_limiter = config.enable_rate_limiting.then(|| {
            let store: Arc<dyn RateLimitStore> = match &redis {
                Some(redis) => Arc::new(RedisStore::new(redis.clone(), max_keys)),
                None => Arc::new(MemoryStore::new(max_keys)),
            };
            Arc::new(RateLimitGuard::new(
                &config.rate_limit,
                &config.whitelist_users,
                store,
                clock.clone(),
                hash_key,
            ))
        });
        let threat_detector = Arc::new(ThreatDetector::from_config(&config.threat_detection)?);
        if let Some(analysis) = &behaviour {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                BehaviourAnalysis::spawn(analysis, &runtime);
            }
        }
        // Tool integrity: pins named after the upstream the configuration names at start (the
        // gateway sets its upstream URL), kept across reloads that leave the name empty.
        let tools = {
            let default_upstream = if config.mcp.tools.upstream_name.is_empty() {
                "local".to_string()
            } else {
                config.mcp.tools.upstream_name.clone()
            };
            let tools_dir =
                (!config.data_dir.is_empty()).then(|| std::path::PathBuf::from(&config.data_dir));
            Arc::new(
                crate::tools::ToolIntegrity::new(
                    &config.mcp.tools,
                    &default_upstream,
                    tools_dir.as_deref(),
                    redis.clone(),
                    bus.clone(),
                    clock.clone(),
                )
                .map_err(InitError::ToolPins)?,
            )
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            tools.start();
        }
        // Tool results: secrets, personal data, injections and size, per tool.
        let results = Arc::new(crate::dlp::ResultInspector::new(
            &config.mcp.results,
            bus.clone(),
        ));
        let mcp_guard = Arc::new(crate::mcp::McpGuard::new(&config.mcp, clock.clone()));
        mcp_guard.with_tools(tools.clone());
        mcp_guard.with_results(results.clone());
        let guard_set = GuardSet {
            blacklist: Arc::new(BlacklistGuard::new(lists.clone())),
            feeds,
            country,
            mcp: mcp_guard,
            ddos: ddos.clone(),
            rate: rate_limiter,
            // Before the threat guard: one atomic read refuses an anomalous client (when set
            // to) before the costly inspection; it counts every request after its response.
            behaviour: behaviour
                .as_ref()
                .map(|analysis| Arc::new(BehaviourGuard::new(analysis.clone()))),
            threat: threat_guard(&config, &threat_detector, &bus),
        };
        let pipeline = Pipeline::new(
            lists.clone(),
            guard_set.ordered(),
            bus.clone(),
            stats.clone(),
            clock.clone(),
            config.fail_mode,
        );
        let shared_reputation = match (&redis, &reputation) {
            (Some(redis), Some(reputation)) => Some(SharedReputation::start(
                redis.clone(),
                reputation,
                config.data_retention.saturating_mul(1000),
                clock.clone(),
            )),
            _ => None,
        };
        let list_sync = match &redis {
            Some(redis) => {
                let sync = ListSync::new(redis.clone(), lists.clone(), hex(&random_bytes::<6>()?));
                sync.spawn(bus.subscribe());
                Some(sync)
            }
            None => None,
        };
        let (admin_token, admin_token_generated) = if config.admin_token.is_empty() {
            (hex(&random_bytes::<24>()?), true)
        } else {
            (config.admin_token.clone(), false)
        };
        let inflight = ddos.as_ref().map(|_| {
            OpenCounts::new(
                u32::try_from(config.ddos.concurrent_connections_limit).unwrap_or(u32::MAX),
            )
        });
        let admission = match &ddos {
            Some(guard) if config.upstream.admission => {
                let up = &config.upstream;
                let to_u32 = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
                let history: Arc<dyn ClientHistory> =
                    Arc::new(ClientRecords::new(guard.clone(), reputation.clone()));
                let defaults = LimitSettings::default();
                let min = to_u32(up.min_concurrency).max(1);
                let max = to_u32(up.concurrency_ceiling).max(min);
                Some(UpstreamAdmission::new(
                    AdmissionSettings {
                        limit: LimitSettings {
                            fixed: (up.max_concurrency > 0).then(|| to_u32(up.max_concurrency)),
                            min,
                            max,
                            initial: defaults.initial.clamp(min, max),
                            ..defaults
                        },
                        queue_length: usize::try_from(up.queue_length).unwrap_or(usize::MAX),
                        queue_wait: std::time::Duration::from_millis(up.queue_wait_ms),
                        max_known_users: usize::try_from(up.max_known_users).unwrap_or(usize::MAX),
                    },
                    Some(history),
                    clock.clone(),
                ))
            }
            _ => None,
        };
        if let (Some(admission), Ok(runtime)) = (&admission, tokio::runtime::Handle::try_current())
        {
            // Once a second: ends an overload that went quiet (and logs that shedding
            // stopped) even when no request comes to end a window. Holds it weakly.
            let weak = Arc::downgrade(admission);
            runtime.spawn(async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    let Some(admission) = weak.upgrade() else {
                        return;
                    };
                    admission.tick();
                }
            });
        }
        let core = Core {
            admission,
            request: ArcSwap::from_pointee(RequestSettings::from_config(&config, hash_key)),
            hash_key,
            guards: std::sync::Mutex::new(guard_set),
            config_source: std::sync::Mutex::new(None),
            reloading: tokio::sync::Mutex::new(()),
            started_unix_ms: clock.unix_ms(),
            config: ArcSwap::from_pointee(config),
            clock,
            lists,
            pipeline,
            bus,
            stats,
            incidents,
            timeline: std::sync::Mutex::new(crate::timeline::Timeline::default()),
            streams: std::sync::atomic::AtomicUsize::new(0),
            admin_token,
            admin_token_generated,
            emergency,
            inflight,
            data_dir,
            dirty,
            reputation,
            shared_reputation,
            threat_detector,
            geo_risk,
            geo,
            ddos,
            redis: redis.clone(),
            list_sync,
            behaviour,
            way_back: Arc::new(crate::response::WayBack {
                tools: tools.clone(),
                results,
            }),
            tools,
        };
        let core = Arc::new(core);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            // Once a second: the counters into the 15-minute timeline. Holds the core weakly.
            let weak = Arc::downgrade(&core);
            runtime.spawn(async move {
                let mut ticks = tokio::time::interval(std::time::Duration::from_secs(1));
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    ticks.tick().await;
                    let Some(core) = weak.upgrade() else { return };
                    let now = core.clock.unix_ms() / 1000;
                    let counters = core.stats.snapshot();
                    core.timeline
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .record(now, counters);
                }
            });
        }
        if let (Some(dirty), Ok(runtime)) = (&core.dirty, tokio::runtime::Handle::try_current()) {
            // Saves every ten seconds when something changed; holds the core weakly so a
            // dropped system stops it.
            let weak = Arc::downgrade(&core);
            let dirty = dirty.clone();
            runtime.spawn(async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
                    let Some(core) = weak.upgrade() else { return };
                    if dirty.0.swap(false, Ordering::AcqRel) {
                        if let Err(e) = save(&core) {
                            tracing::error!(target: "security.ip_manager", "saving state failed: {e}");
                        }
                    }
                }
            });
        }
        if let Some(redis) = redis {
            // Connect in the background; `SecuritySystem::start` waits for it instead.
            let connecting = redis.clone();
            redis.runtime().spawn(async move {
                if !connecting.is_up() {
                    connecting.connect().await;
                }
            });
        }
        Ok(SecuritySystem { core })
    }

    /// The tower layer (the seed's `IntegratedSecurityMiddleware`).
    pub fn layer(&self) -> SecurityLayer {
        SecurityLayer::new(self.core.clone())
    }

    /// The admin API: `/api/security/*` (bearer token), `/health`, `/ready`, `/metrics`.
    pub fn admin_router(&self) -> axum::Router {
        crate::admin::router(self.core.clone())
    }

    /// `/health` and `/ready` alone: what a public listener answers itself when the admin API
    /// is served on another (with [`SecurityLayer::without_admin`]).
    pub fn probe_router(&self) -> axum::Router {
        crate::admin::probe_router(self.core.clone())
    }

    /// Tells a reload where to read the configuration again (the gateway: its file, the
    /// environment and its flags, as at start).
    pub fn set_config_source(
        &self,
        source: impl Fn() -> Result<Config, ConfigError> + Send + Sync + 'static,
    ) {
        *self
            .core
            .config_source
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(source));
    }

    /// Reads the configuration's sources again and puts the result in force (SIGHUP and
    /// `POST /api/security/reload`, named by `by` in the log line it writes). A configuration
    /// that fails validation changes nothing, and the log line names the file, key and value.
    pub async fn reload_from_source(&self, by: &str) -> Result<ReloadReport, ReloadError> {
        let result: Result<ReloadReport, ReloadError> = async {
            let source = self
                .core
                .config_source
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .ok_or(ReloadError::NoSource)?;
            let config = source()?;
            Ok(self.reload(config).await?)
        }
        .await;
        match &result {
            Ok(report) => log_reload(by, report),
            Err(e) => tracing::error!(
                target: "mcp_shield",
                "configuration reload ({by}) refused, the running configuration stays: {}",
                e.to_string().trim_end()
            ),
        }
        result
    }

    /// Puts a new configuration in force without a restart: lists, rules, thresholds, feeds,
    /// the threat policy and the MCP checks change; state (buckets, reputation, blocks,
    /// sessions, traffic, the anomaly model, custom patterns) stays; requests in flight finish
    /// under the settings they began with. Settings that shape what was built at start keep
    /// their running values and are listed in `needs_restart` (see
    /// [`crate::config::reload::NEEDS_RESTART`]). Everything that can fail is done before
    /// anything changes: on an error the running configuration stays whole.
    pub async fn reload(&self, new: Config) -> Result<ReloadReport, InitError> {
        let core = &self.core;
        let _one_at_a_time = core.reloading.lock().await;
        let running = core.config();
        let plan = crate::config::reload::plan(&running, &new);
        let config = plan.effective;
        let report = ReloadReport {
            applied: plan.applied,
            needs_restart: plan.needs_restart,
        };
        if report.applied.is_empty() {
            return Ok(report);
        }
        // What can fail, first.
        ThreatDetector::from_config(&config.threat_detection)?;
        let lists = [
            (
                ListKind::Whitelist,
                configured_networks("SECURITY_WHITELIST", &running.whitelist)?,
                configured_networks("SECURITY_WHITELIST", &config.whitelist)?,
            ),
            (
                ListKind::Blacklist,
                configured_networks("SECURITY_BLACKLIST", &running.blacklist)?,
                configured_networks("SECURITY_BLACKLIST", &config.blacklist)?,
            ),
        ];
        let old = core.guard_set();
        let feeds_same = running.ip.threat_feeds == config.ip.threat_feeds
            && running.ip.threat_feed_refresh == config.ip.threat_feed_refresh;
        let feeds = match (&old.feeds, feeds_same) {
            (_, _) if !config.enable_ip_management || config.ip.threat_feeds.is_empty() => None,
            (Some(kept), true) => Some(kept.clone()),
            _ => {
                let started = threat_feeds(&config, core.reputation.as_ref())?;
                if let Some((feeds, _)) = &started {
                    // Loaded before it replaces the old one, so no request sees an empty list.
                    let _ = tokio::time::timeout(
                        std::time::Duration::from_secs(30),
                        feeds.refresh_all(),
                    )
                    .await;
                }
                started
            }
        };
        // Nothing below fails (the policy compiled above).
        core.threat_detector.reconfigure(&config.threat_detection)?;
        if let Some(ddos) = &core.ddos {
            ddos.reconfigure(&config.ddos);
        }
        old.mcp.reconfigure(&config.mcp);
        core.tools.reconfigure(&config.mcp.tools);
        core.way_back.results.reconfigure(&config.mcp.results);
        if let Some(reputation) = &core.reputation {
            reputation.reconfigure(
                config.ip.auto_blacklist_threshold,
                config.ip.temp_block_duration,
            );
        }
        if let Some(analysis) = &core.behaviour {
            analysis.reconfigure(&behaviour_settings(&config));
        }
        for (kind, was, now) in lists {
            for network in was.iter().filter(|n| !now.contains(n)) {
                core.remove_from_list(kind, *network);
            }
            let setting = match kind {
                ListKind::Whitelist => "SECURITY_WHITELIST",
                ListKind::Blacklist => "SECURITY_BLACKLIST",
            };
            for network in now.iter().filter(|n| !was.contains(n)) {
                if let Err(e) = core.add_to_list(kind, *network, setting.to_string(), None) {
                    tracing::warn!(target: "security.ip_manager", "reload: {setting} {network}: {e}");
                }
            }
        }
        let rate = old.rate.as_ref().map(|guard| {
            Arc::new(RateLimitGuard::new(
                &config.rate_limit,
                &config.whitelist_users,
                guard.store(),
                core.clock.clone(),
                core.hash_key,
            ))
        });
        let guards = GuardSet {
            blacklist: old.blacklist.clone(),
            feeds,
            country: country_guard(&config, core.geo.as_ref()),
            mcp: old.mcp.clone(),
            ddos: old.ddos.clone(),
            rate,
            behaviour: old.behaviour.clone(),
            threat: threat_guard(&config, &core.threat_detector, &core.bus),
        };
        core.pipeline.replace(guards.ordered(), config.fail_mode);
        *core.guards.lock().unwrap_or_else(|e| e.into_inner()) = guards;
        core.request.store(Arc::new(RequestSettings::from_config(
            &config,
            core.hash_key,
        )));
        core.config.store(Arc::new(config));
        Ok(report)
    }

    /// The seed's counters.
    pub fn statistics(&self) -> StatisticsSnapshot {
        self.core.stats.snapshot()
    }

    /// The configuration in force (a reload replaces it).
    pub fn config(&self) -> Arc<Config> {
        self.core.config()
    }

    /// The admin token: the configured one, or the one generated at start.
    pub fn admin_token(&self) -> &str {
        &self.core.admin_token
    }

    /// Whether the admin token was generated (not configured): the gateway then logs it once.
    pub fn admin_token_generated(&self) -> bool {
        self.core.admin_token_generated
    }

    /// The threat detector: add custom checks with
    /// `security.threat_detector().add_pattern("name", |req| ...)` (the seed's
    /// `@threat_detector.add_pattern`).
    pub fn threat_detector(&self) -> &Arc<ThreatDetector> {
        &self.core.threat_detector
    }

    /// The reputation table (with IP management on): scores, and penalties an embedding
    /// application wants to apply itself.
    pub fn reputation(&self) -> Option<&Arc<Reputation>> {
        self.core.reputation.as_ref()
    }

    /// The allow and deny lists. Changes made here are not announced on the event bus; the
    /// admin API's are (use [`SecuritySystem::whitelist`] / [`SecuritySystem::blacklist`]).
    pub fn ip_lists(&self) -> &IpLists {
        &self.core.lists
    }

    /// Adds an IP or CIDR to a list, as `POST /api/security/ip/{whitelist,blacklist}` does
    /// (the change is announced on the event bus).
    pub fn add_to_list(
        &self,
        list: ListKind,
        ip_or_cidr: &str,
        reason: &str,
        ttl_seconds: Option<u64>,
    ) -> Result<(), String> {
        let network = parse_network(ip_or_cidr)?;
        self.core
            .add_to_list(list, network, reason.to_string(), ttl_seconds)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Adds an IP or CIDR to the whitelist.
    pub fn whitelist(
        &self,
        ip_or_cidr: &str,
        reason: &str,
        ttl_seconds: Option<u64>,
    ) -> Result<(), String> {
        self.add_to_list(ListKind::Whitelist, ip_or_cidr, reason, ttl_seconds)
    }

    /// Adds an IP or CIDR to the blacklist.
    pub fn blacklist(
        &self,
        ip_or_cidr: &str,
        reason: &str,
        ttl_seconds: Option<u64>,
    ) -> Result<(), String> {
        self.add_to_list(ListKind::Blacklist, ip_or_cidr, reason, ttl_seconds)
    }

    /// Every event from now on (blocks, list changes, emergency mode).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<SecurityEvent>> {
        self.core.bus.subscribe()
    }

    /// Forces emergency mode on or off.
    pub fn set_emergency_mode(&self, enabled: bool) {
        self.core.set_emergency(enabled, "admin");
    }

    /// Works out the facts of a request the way the layer does, for callers that are not tower
    /// services (another transport, a batch check). The headers move into the facts.
    pub fn request_facts(
        &self,
        parts: &mut http::request::Parts,
        body: bytes::Bytes,
        peer: Option<IpAddr>,
    ) -> crate::RequestFacts {
        crate::RequestFacts::build(parts, body, true, peer, &self.core.request.load().identity)
    }

    /// Runs the pipeline on facts: the whole security decision, without HTTP around it.
    /// Counts in the statistics and publishes events as a request through the layer does.
    pub async fn decide(&self, facts: &crate::RequestFacts) -> crate::Decision {
        self.core.pipeline.decide(facts).await
    }

    /// The gate for TCP connections per client address, for a server's accept loop (`None`
    /// without DDoS protection). At most `SECURITY_DDOS_CONCURRENT_CONNECTIONS_LIMIT` open
    /// connections per peer address; trusted proxies, which carry many clients, are exempt.
    pub fn connection_gate(&self) -> Option<ConnectionGate> {
        let c = self.core.config();
        c.enable_ddos_protection.then(|| ConnectionGate {
            counts: OpenCounts::new(
                u32::try_from(c.ddos.concurrent_connections_limit).unwrap_or(u32::MAX),
            ),
            exempt: self.core.request.load().identity.trusted_proxies.clone(),
        })
    }

    /// What `GET /api/security/status` returns.
    pub async fn status(&self) -> SecurityStatus {
        let mut status = views::status(&self.core);
        // A cluster's members as the cluster itself reports them (not only the seeds).
        if let Some(redis) = self.core.redis.as_ref().filter(|r| r.is_cluster()) {
            let seen = redis.cluster_members().await;
            status.config["redis_cluster_nodes_seen"] = serde_json::json!(seen);
        }
        status
    }

    /// Waits (at most `limit`) until reputation penalties queued for Redis have been applied;
    /// true if they have (or there is no Redis). For shutdown and tests.
    pub async fn reputation_settled(&self, limit: std::time::Duration) -> bool {
        match &self.core.shared_reputation {
            Some(shared) => shared.settled(limit).await,
            None => true,
        }
    }

    /// What this instance knows about `ip` now. With Redis, the reputation shown is the one
    /// this instance last saw; [`SecuritySystem::threat_assessment_shared`] asks Redis first.
    pub fn threat_assessment(&self, ip: IpAddr) -> ThreatAssessment {
        views::threat_assessment(&self.core, ip)
    }

    /// What `GET /api/security/threat/{ip}` returns: the assessment, with the reputation
    /// every instance shares fetched from Redis first (when Redis is in use and answers).
    pub async fn threat_assessment_shared(&self, ip: IpAddr) -> ThreatAssessment {
        let ip = ip.to_canonical();
        if let (Some(shared), Some(reputation)) =
            (&self.core.shared_reputation, &self.core.reputation)
        {
            if let Ok(Some(state)) = shared.fetch(ip, reputation.ceiling(ip)).await {
                reputation.adopt(ip, state);
            }
        }
        views::threat_assessment(&self.core, ip)
    }
}

/// Admits TCP connections per peer address; see [`SecuritySystem::connection_gate`].
#[derive(Debug, Clone)]
pub struct ConnectionGate {
    counts: Arc<OpenCounts>,
    exempt: Vec<ipnet::IpNet>,
}

/// What the gate says about a new connection.
#[derive(Debug)]
pub enum Admission {
    /// Serve it; the permit closes the count when dropped (hold it for the connection's life).
    Admitted(Option<Permit>),
    /// The peer has too many connections open: close this one at once.
    Refused,
}

impl ConnectionGate {
    /// Decides a new connection from `peer`.
    pub fn admit(&self, peer: IpAddr) -> Admission {
        let peer = peer.to_canonical();
        if self.exempt.iter().any(|n| n.contains(&peer)) {
            return Admission::Admitted(None);
        }
        match self.counts.try_open(peer) {
            Some(permit) => Admission::Admitted(Some(permit)),
            None => Admission::Refused,
        }
    }
}

fn save(core: &Core) -> Result<(), String> {
    let Some(dir) = &core.data_dir else {
        return Ok(());
    };
    let saved = persist::Saved {
        version: 1,
        whitelist: persist::entries_of(&core.lists, ListKind::Whitelist),
        blacklist: persist::entries_of(&core.lists, ListKind::Blacklist),
        reputation: core
            .reputation
            .as_ref()
            .map(|r| r.export(core.config().data_retention.saturating_mul(1000)))
            .unwrap_or_default(),
    };
    persist::write(dir, &saved).map_err(|e| format!("{}: {e}", persist::state_file(dir).display()))
}
