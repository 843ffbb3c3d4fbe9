//! The connection to Redis, with a circuit breaker in front of it.
//!
//! While Redis answers within `SECURITY_REDIS_TIMEOUT_MS`, state is shared. The first call that
//! fails or is slow opens the breaker: a warning is logged once
//! (`Redis connection failed, using local rate limiting`), callers serve from local state
//! without waiting on Redis again, and one background task reconnects with exponential backoff
//! (100 ms doubling to 5 s). When a connection answers `PING`, the breaker closes, recovery is
//! logged, and whoever registered with [`RedisState::on_recovery`] resynchronises.
//!
//! One server (`REDIS_URL`) or a Redis Cluster (`SECURITY_REDIS_CLUSTER_NODES`): the callers
//! see one [`Connection`] either way. In a cluster the rate-limit buckets carry one hash tag
//! ([`RedisState::bucket_key`]), so a request's buckets are one script call on one slot;
//! reputation records and lists are keyed by address or list and spread over the nodes;
//! list changes are published on any node (cluster pub/sub reaches every node).

use std::cell::RefCell;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisFuture, Value};
use tokio::sync::watch;

use crate::request::keyed_ip_hash;

/// Slow calls in a row that open the breaker.
pub const SLOW_CALLS_TO_TRIP: u32 = 3;

/// Why Redis could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedisError {
    /// The breaker is open: Redis failed recently and is being reconnected.
    #[error("Redis is unavailable (reconnecting in the background)")]
    Down,
    /// The call failed or took too long.
    #[error("Redis call failed: {0}")]
    Failed(String),
}

/// Where shared state lives.
#[derive(Debug, Clone, Copy)]
pub enum RedisTarget<'a> {
    /// One server (`REDIS_URL`).
    Server(&'a str),
    /// A cluster's seed nodes (`SECURITY_REDIS_CLUSTER_NODES`).
    Cluster(&'a [String]),
}

enum Backend {
    Server(redis::Client),
    Cluster {
        // Boxed: it is twice the size of a single server's client.
        client: Box<redis::cluster::ClusterClient>,
        /// For pub/sub, which a cluster carries to every node: one seed node's connection.
        seeds: Vec<redis::Client>,
        shown: Vec<String>,
    },
}

/// A connection to one server or to a cluster (which routes each command to the node that
/// holds its key). Cheap to clone: both multiplex over shared sockets.
#[derive(Clone)]
pub enum Connection {
    /// One server.
    Server(MultiplexedConnection),
    /// A cluster.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Server(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Server(c) => c.req_packed_commands(cmd, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Server(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

/// A connection a serving thread opened for itself (see [`RedisState::request_connection`]).
struct OwnConnection {
    /// Which [`RedisState`] it belongs to ([`RedisState::id`]).
    state: u64,
    /// The recovery it was opened after: an older one is dropped and opened again.
    generation: u64,
    /// `None` while it is being opened.
    connection: Option<Connection>,
}

thread_local! {
    static OWN_CONNECTIONS: RefCell<Vec<OwnConnection>> = const { RefCell::new(Vec::new()) };
}

/// Distinguishes the states of one process (tests build several) in [`OWN_CONNECTIONS`].
static NEXT_STATE_ID: AtomicU64 = AtomicU64::new(1);

/// A shared Redis connection with a circuit breaker.
pub struct RedisState {
    id: u64,
    backend: Backend,
    connection: RwLock<Option<Connection>>,
    up: AtomicBool,
    reconnecting: AtomicBool,
    /// Calls in a row that took longer than the timeout.
    slow_in_a_row: AtomicU32,
    timeout: Duration,
    prefix: String,
    hash_key: (u64, u64),
    runtime: tokio::runtime::Handle,
    /// Bumped on every recovery; subscribers resynchronise.
    recoveries: watch::Sender<u64>,
}

impl std::fmt::Debug for RedisState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisState")
            .field("up", &self.is_up())
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// PING, expecting PONG.
async fn ping(connection: &mut impl ConnectionLike) -> Result<(), String> {
    let pong: String = redis::cmd("PING")
        .query_async(connection)
        .await
        .map_err(|e| e.to_string())?;
    if pong != "PONG" {
        return Err(format!("unexpected PING answer {pong:?}"));
    }
    Ok(())
}

impl RedisState {
    /// A state for `target` (already validated), not yet connected. Needs a Tokio runtime.
    pub fn new(
        target: RedisTarget<'_>,
        prefix: &str,
        timeout: Duration,
        hash_key: (u64, u64),
    ) -> Result<Arc<Self>, String> {
        use redis::IntoConnectionInfo;
        // TCP_NODELAY: many small pipelined calls on one connection must not wait on Nagle's
        // algorithm and delayed ACKs (40 ms stalls, nearly the whole timeout).
        let nodelay = redis::io::tcp::TcpSettings::default().set_nodelay(true);
        let backend = match target {
            RedisTarget::Server(url) => {
                let info = url
                    .into_connection_info()
                    .map_err(|e| format!("REDIS_URL: {e}"))?
                    .set_tcp_settings(nodelay);
                Backend::Server(redis::Client::open(info).map_err(|e| format!("REDIS_URL: {e}"))?)
            }
            RedisTarget::Cluster(nodes) => {
                let setting = "SECURITY_REDIS_CLUSTER_NODES";
                let client = redis::cluster::ClusterClientBuilder::new(nodes.to_vec())
                    .tcp_settings(nodelay.clone())
                    // No waiting inside the client: a call that fails is answered locally and
                    // the breaker decides; retries would hold a request past the timeout.
                    .retries(0)
                    .connection_timeout(Duration::from_secs(1))
                    .response_timeout(timeout)
                    .build()
                    .map_err(|e| format!("{setting}: {e}"))?;
                let seeds = nodes
                    .iter()
                    .map(|node| redis::Client::open(node.as_str()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("{setting}: {e}"))?;
                Backend::Cluster {
                    client: Box::new(client),
                    seeds,
                    shown: nodes
                        .iter()
                        .map(|n| crate::config::redact_url_password(n))
                        .collect(),
                }
            }
        };
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            "the Redis backend needs a Tokio runtime: build the system inside one".to_string()
        })?;
        let (recoveries, _) = watch::channel(0);
        Ok(Arc::new(RedisState {
            id: NEXT_STATE_ID.fetch_add(1, Ordering::Relaxed),
            backend,
            connection: RwLock::new(None),
            up: AtomicBool::new(false),
            reconnecting: AtomicBool::new(false),
            slow_in_a_row: AtomicU32::new(0),
            timeout,
            prefix: prefix.to_string(),
            hash_key,
            runtime,
            recoveries,
        }))
    }

    /// Tries once to connect (bounded by a second), and starts the background reconnection
    /// if that fails. Returns whether Redis is up.
    pub async fn connect(self: &Arc<Self>) -> bool {
        match self.open_connection(Duration::from_secs(1)).await {
            Ok(connection) => {
                self.install(connection);
                tracing::info!(target: "security.rate_limiter", "Redis connected: state is shared between instances");
                true
            }
            Err(e) => {
                tracing::warn!(target: "security.rate_limiter", "Redis connection failed, using local rate limiting: {e}");
                self.start_reconnecting();
                false
            }
        }
    }

    /// Whether the breaker is closed (Redis in use).
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// The connection to use, unless the breaker is open.
    pub fn connection(&self) -> Result<Connection, RedisError> {
        if !self.is_up() {
            return Err(RedisError::Down);
        }
        self.connection
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(RedisError::Down)
    }

    /// The connection for a call on a request's path. On a thread that runs its own
    /// single-threaded runtime (the gateway's serving threads), a connection of that thread,
    /// opened in the background on first use: its reader and writer run on the same thread as
    /// the request, where the shared connection's run on the runtime that built the system, and
    /// every call crossed threads twice (a wake-up and a context switch each way, which
    /// cost more CPU than the call itself). Until it is open, and elsewhere, the shared one.
    pub fn request_connection(self: &Arc<Self>) -> Result<Connection, RedisError> {
        if !self.is_up() {
            return Err(RedisError::Down);
        }
        let single_threaded = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread);
        if !single_threaded {
            return self.connection();
        }
        let generation = *self.recoveries.borrow();
        // This thread's connection if it is open, and whether to start opening one.
        let (own, open) = OWN_CONNECTIONS.with(|own| {
            let Ok(mut own) = own.try_borrow_mut() else {
                return (None, false);
            };
            own.retain(|c| c.state != self.id || c.generation == generation);
            match own.iter().find(|c| c.state == self.id) {
                Some(c) => (c.connection.clone(), false),
                None => {
                    own.push(OwnConnection {
                        state: self.id,
                        generation,
                        connection: None,
                    });
                    (None, true)
                }
            }
        });
        if open {
            let state = self.clone();
            tokio::spawn(async move {
                // On this thread (its runtime is single-threaded), so the entry is ours.
                let opened = state
                    .open_connection(state.timeout.max(Duration::from_secs(1)))
                    .await;
                OWN_CONNECTIONS.with(|own| {
                    if let Ok(mut own) = own.try_borrow_mut() {
                        match opened {
                            Ok(connection) => {
                                if let Some(entry) = own.iter_mut().find(|c| c.state == state.id) {
                                    entry.connection = Some(connection);
                                }
                            }
                            // Asked again on a later call.
                            Err(_) => own.retain(|c| c.state != state.id),
                        }
                    }
                });
            });
        }
        match own {
            Some(connection) => Ok(connection),
            None => self.connection(),
        }
    }

    /// Runs a call with the configured timeout. A broken connection opens the breaker at
    /// once; slowness opens it after [`SLOW_CALLS_TO_TRIP`] slow calls in a row (one slow
    /// answer on a busy machine is not an outage, and its request is answered locally).
    pub async fn call<T, F>(self: &Arc<Self>, call: F) -> Result<T, RedisError>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => {
                self.slow_in_a_row.store(0, Ordering::Relaxed);
                Ok(value)
            }
            Ok(Err(e)) => {
                let message = e.to_string();
                // Only a connection that failed opens the breaker; an error Redis answered
                // with (a bad command, a script error) is this call's problem alone.
                if e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_unrecoverable_error()
                {
                    self.trip(&message);
                } else {
                    tracing::error!(target: "security.rate_limiter", "Redis refused a call: {message}");
                }
                Err(RedisError::Failed(message))
            }
            Err(_) => {
                let message = format!(
                    "no answer within {} ms, {SLOW_CALLS_TO_TRIP} times in a row",
                    self.timeout.as_millis()
                );
                if self.slow_in_a_row.fetch_add(1, Ordering::Relaxed) + 1 >= SLOW_CALLS_TO_TRIP {
                    self.trip(&message);
                }
                Err(RedisError::Failed(message))
            }
        }
    }

    /// Opens the breaker (once) and starts reconnecting.
    pub fn trip(self: &Arc<Self>, why: &str) {
        if self.up.swap(false, Ordering::AcqRel) {
            tracing::warn!(target: "security.rate_limiter", "Redis connection failed, using local rate limiting: {why}");
            self.start_reconnecting();
        }
    }

    /// A receiver that changes every time the connection comes back.
    pub fn on_recovery(&self) -> watch::Receiver<u64> {
        self.recoveries.subscribe()
    }

    /// The Redis key for `parts` under the configured prefix.
    pub fn key(&self, parts: std::fmt::Arguments<'_>) -> String {
        format!("{}{}", self.prefix, parts)
    }

    /// An address as it may appear in a Redis key: a keyed hash, never the address.
    pub fn hashed_ip(&self, ip: IpAddr) -> String {
        format!("{:016x}", keyed_ip_hash(self.hash_key, ip))
    }

    /// The key of a rate-limit bucket: under the prefix, and in a cluster with one hash tag
    /// for every bucket, so that one script call's keys share a slot (the global bucket is in
    /// every call).
    pub fn bucket_key(&self, parts: std::fmt::Arguments<'_>) -> String {
        match self.backend {
            Backend::Server(_) => format!("{}{}", self.prefix, parts),
            Backend::Cluster { .. } => format!("{}{{rl}}{}", self.prefix, parts),
        }
    }

    /// Whether the state is in a cluster (transactions across keys are not available there).
    pub fn is_cluster(&self) -> bool {
        matches!(self.backend, Backend::Cluster { .. })
    }

    /// The cluster's seed nodes (passwords hidden), for the status; empty for one server.
    pub fn cluster_nodes(&self) -> &[String] {
        match &self.backend {
            Backend::Server(_) => &[],
            Backend::Cluster { shown, .. } => shown,
        }
    }

    /// The cluster's members as `CLUSTER NODES` reports them (address, role, link state),
    /// asked of any node; empty for one server, or when no node answers within a second.
    pub async fn cluster_members(&self) -> Vec<serde_json::Value> {
        let Ok(mut connection) = self.connection() else {
            return Vec::new();
        };
        if !self.is_cluster() {
            return Vec::new();
        }
        let mut command = redis::cmd("CLUSTER");
        command.arg("NODES");
        let asked = command.query_async::<String>(&mut connection);
        let Ok(Ok(text)) = tokio::time::timeout(Duration::from_secs(1), asked).await else {
            return Vec::new();
        };
        // `<id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slots>...`
        text.lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let address = fields.get(1)?.split('@').next()?;
                let flags = fields.get(2)?;
                let role = if flags.contains("master") {
                    "master"
                } else {
                    "replica"
                };
                let state = if flags.contains("fail") {
                    "failed"
                } else {
                    fields.get(7).copied().unwrap_or("unknown")
                };
                Some(serde_json::json!({"address": address, "role": role, "link": state}))
            })
            .collect()
    }

    /// A pub/sub connection: to the server, or to the first seed node of a cluster that
    /// answers (a cluster delivers every published message to every node).
    pub async fn pubsub(&self) -> Option<redis::aio::PubSub> {
        match &self.backend {
            Backend::Server(client) => client.get_async_pubsub().await.ok(),
            Backend::Cluster { seeds, .. } => {
                for seed in seeds {
                    if let Ok(Ok(pubsub)) =
                        tokio::time::timeout(Duration::from_millis(500), seed.get_async_pubsub())
                            .await
                    {
                        return Some(pubsub);
                    }
                }
                None
            }
        }
    }

    /// The runtime the state was built in, for background tasks.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }

    async fn open_connection(&self, limit: Duration) -> Result<Connection, String> {
        let mut connection = match &self.backend {
            Backend::Server(client) => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(limit))
                    .set_response_timeout(Some(limit));
                let mut connection = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map_err(|e| e.to_string())?;
                ping(&mut connection).await?;
                // Requests wait at most the configured timeout from here on.
                connection.set_response_timeout(self.timeout);
                return Ok(Connection::Server(connection));
            }
            Backend::Cluster { client, .. } => {
                let opening = client.get_async_connection();
                let connection = tokio::time::timeout(limit, opening)
                    .await
                    .map_err(|_| "no cluster connection within the time limit".to_string())?
                    .map_err(|e| e.to_string())?;
                Connection::Cluster(connection)
            }
        };
        // A cluster whose slots are not all served fails some calls at once: not up yet.
        let routed = tokio::time::timeout(limit, async {
            redis::cmd("CLUSTER")
                .arg("INFO")
                .query_async::<String>(&mut connection)
                .await
        })
        .await
        .map_err(|_| "CLUSTER INFO took too long".to_string())?
        .map_err(|e| e.to_string())?;
        if !routed.contains("cluster_state:ok") {
            return Err("the cluster is not in a healthy state (cluster_state is not ok)".into());
        }
        Ok(connection)
    }

    fn install(&self, connection: Connection) {
        self.slow_in_a_row.store(0, Ordering::Relaxed);
        *self.connection.write().unwrap_or_else(|e| e.into_inner()) = Some(connection);
        self.up.store(true, Ordering::Release);
    }

    fn start_reconnecting(self: &Arc<Self>) {
        if self.reconnecting.swap(true, Ordering::AcqRel) {
            return;
        }
        let state = self.clone();
        self.runtime.spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                tokio::time::sleep(backoff).await;
                match state.open_connection(Duration::from_secs(1)).await {
                    Ok(connection) => {
                        state.install(connection);
                        state.reconnecting.store(false, Ordering::Release);
                        tracing::info!(target: "security.rate_limiter", "Redis connection restored, using shared rate limiting");
                        state.recoveries.send_modify(|n| *n += 1);
                        return;
                    }
                    Err(e) => {
                        tracing::debug!(target: "security.rate_limiter", "Redis still unavailable: {e}");
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
    }
}
