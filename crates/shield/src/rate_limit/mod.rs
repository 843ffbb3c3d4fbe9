//! Rate limiting: token buckets per global, user, IP and endpoint rule, MCP-aware.
//!
//! - [`gcra`]: the token bucket as one number per bucket (pure, clock passed in).
//! - [`store`]: where buckets live ([`MemoryStore`], bounded); the interface a Redis store
//!   implements.
//! - [`rules`]: `[[rate_limit.rules]]` matching by path, HTTP method, JSON-RPC method and tool.
//! - [`guard`]: the pipeline guard that puts them together.
//!
//! A request passes every bucket that covers it or none is charged. Whitelisted IPs never
//! reach the guard (the pipeline lets them through first); whitelisted users
//! (`SECURITY_WHITELIST_USERS`, matched against the user-id header) skip it.

pub mod gcra;
pub mod guard;
pub mod redis_store;
pub mod rules;
pub mod store;

pub use gcra::Quota;
pub use guard::RateLimitGuard;
pub use store::{MemoryStore, RateLimitStore};
