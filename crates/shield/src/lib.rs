//! # mcp-shield
//!
//! A security layer for MCP (Model Context Protocol) servers and any HTTP API: rate limiting,
//! DDoS protection, IP management and threat detection in one [`tower`] layer, configured the
//! way the original Python design (`SECURITY_*` environment variables) was.
//!
//! ## The whole, before the parts
//!
//! A request reaching the [`SecurityLayer`] is read once into [`RequestFacts`]: the client IP
//! (the TCP peer, or the right-most untrusted hop of the forwarding header when the peer is a
//! trusted proxy), the user, the path, and for JSON-RPC bodies the MCP method, tool name and id
//! of every message. The [`Pipeline`] then asks the whitelist (a hit skips every guard) and each
//! [`Guard`] in turn; the first [`Verdict::Block`] wins and is rendered in one place
//! ([`BlockReason::into_response`]) as the seed's JSON. Allowed requests are forwarded with
//! their body intact and streaming; after the response head, every guard may
//! [`observe`](Guard::observe) how it went. Whatever happens is a [`SecurityEvent`] on the
//! [`EventBus`], which feeds the [statistics](SecuritySystem::statistics), the logs (targets
//! `security.ip_manager`, `security.rate_limiter`, ...) and any subscriber.
//!
//! | where | what |
//! | --- | --- |
//! | [`config`] | defaults < TOML < environment < overrides, validation |
//! | [`request`] | [`RequestFacts`], client IP, user identity, JSON-RPC reading |
//! | [`pipeline`], [`decision`] | guards in order; block reasons and their responses |
//! | [`layer`] | the tower `Layer` / `Service` |
//! | [`events`] | events, the bus, statistics |
//! | [`ip`] | allow and deny lists (longest-prefix match, IPv4 and IPv6), reputation (in Redis too), GeoIP, feeds |
//! | [`rate_limit`], [`ddos`] | token buckets; sliding-window rates, connection limits, emergency mode |
//! | [`threat`] | threat detection: decoders, one file per detector (SQL injection is in `threat/sqli.rs`), policy, `mcp-shield scan` |
//! | [`mcp`] | MCP protocol checks: Origin and Host (DNS rebinding), malformed JSON-RPC, `Mcp-Method` / `Mcp-Name` against the body, sessions per client |
//! | [`behaviour`] | behavioural analysis: per-client features, the isolation forest, bot and scanner patterns, the traffic simulator |
//! | `admin` | the admin API, health, readiness, Prometheus metrics |
//!
//! [`SecuritySystem::status`] says which components are built and running.
//!
//! ## Example
//!
//! ```no_run
//! use axum::{routing::post, Router};
//! use mcp_shield::{ConfigOverrides, SecuritySystem};
//!
//! # async fn handler() -> &'static str { "ok" }
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let security = SecuritySystem::init(
//!         ConfigOverrides::new()
//!             .set("ENABLE_RATE_LIMITING", true)
//!             .set("RATE_LIMIT_GLOBAL_CAPACITY", 2000)
//!             .set("BLACKLIST", "203.0.113.0/24"),
//!     )
//!     .await?;
//!     let app = Router::new()
//!         .route("/mcp", post(handler))
//!         .merge(security.admin_router()) // /api/security/*, /health, /ready, /metrics
//!         .layer(security.layer());
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     // The layer needs the peer address: serve with connect info.
//!     axum::serve(
//!         listener,
//!         app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
//!     )
//!     .await?;
//!     Ok(())
//! }
//! ```
//!
//! A complete, runnable version is `examples/axum_app.rs`.

mod admin;
pub mod admission;
pub mod behaviour;
pub mod clock;
pub mod config;
pub mod ddos;
pub mod decision;
pub mod dlp;
pub mod events;
pub mod incidents;
pub mod ip;
pub mod json_limits;
pub mod layer;
pub mod mcp;
pub mod pipeline;
pub mod rate_limit;
pub mod request;
pub mod response;
mod shared;
pub mod state;
mod system;
pub mod threat;
pub mod timeline;
pub mod tools;
mod views;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{Config, ConfigError, ConfigOverrides, ConfigSources};
pub use decision::{Annotations, BlockReason, Decision, RateLimitStatus, Verdict};
pub use events::{EventBus, EventSink, SecurityEvent, Statistics, StatisticsSnapshot};
pub use layer::{SecurityLayer, SecurityService};
pub use pipeline::{Check, Guard, GuardError, Outcome, Pipeline};
pub use request::{HostFinding, HostFindings, JsonRpcMessage, RequestFacts, UserId};
pub use shared::ConfigSource;
pub use system::{Admission, ConnectionGate, InitError, ReloadError, ReloadReport, SecuritySystem};
pub use views::{ComponentStatus, Offender, RequestRate, SecurityStatus, ThreatAssessment};
