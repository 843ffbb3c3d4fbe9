//! DDoS protection: sliding-window request rates per client address, blocks that grow while
//! an address keeps pushing, a bounded table, and emergency mode that tightens every limit.
//!
//! - [`window`]: the sliding-window rate (pure).
//! - [`tracker`]: one address's traffic and the block decision (pure, time passed in).
//! - [`table`]: the bounded, sharded table of addresses.
//! - [`guard`]: the pipeline guard.

pub mod emergency;
pub mod guard;
pub mod inflight;
pub mod patterns;
pub mod table;
pub mod tracker;
pub mod window;

pub use guard::DdosGuard;
