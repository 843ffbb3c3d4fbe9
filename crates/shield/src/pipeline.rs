//! The guards in order: the allow-list first, then each guard until one blocks.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::clock::Clock;
use crate::config::FailMode;
use crate::decision::{Annotations, BlockReason, Decision, Verdict};
use crate::events::{EventBus, SecurityEvent, Statistics};
use crate::ip::{IpLists, ListKind};
use crate::request::RequestFacts;

/// A guard's internal failure (a store that did not answer, a broken model); handled by the
/// fail mode, never shown to the client as such.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct GuardError(pub String);

/// A guard's check: answered at once (memory) or later (a network store).
pub enum Check<'a> {
    /// The answer, with no waiting.
    Ready(Result<Verdict, GuardError>),
    /// An answer to wait for.
    Pending(Pin<Box<dyn Future<Output = Result<Verdict, GuardError>> + Send + 'a>>),
}

/// How a request ended, for [`Guard::observe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Response status sent to the client.
    pub status: u16,
    /// Time from the request reaching the layer to the response head leaving it.
    pub latency_ns: u64,
    /// Whether the security layer itself refused the request.
    pub blocked: bool,
}

/// One protection. Guards return data; [`crate::decision`] renders it.
pub trait Guard: Send + Sync + 'static {
    /// Short name for logs and status (`ip_lists`, `rate_limiting`).
    fn name(&self) -> &'static str;
    /// Decides about one request.
    fn check<'a>(&'a self, facts: &'a RequestFacts) -> Check<'a>;
    /// Learns from how the request ended; called after the response head.
    fn observe(&self, _facts: &RequestFacts, _outcome: &Outcome) {}
}

/// Runs the guards and publishes what they decide.
pub struct Pipeline {
    lists: Arc<IpLists>,
    /// Replaced whole by a configuration reload; a request runs under the list it started
    /// with.
    guards: ArcSwap<Vec<Arc<dyn Guard>>>,
    bus: Arc<EventBus>,
    stats: Arc<Statistics>,
    clock: Arc<dyn Clock>,
    fail_closed: AtomicBool,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = self.guard_names();
        f.debug_struct("Pipeline").field("guards", &names).finish()
    }
}

impl Pipeline {
    /// A pipeline over `guards`, in order, after the whitelist.
    pub fn new(
        lists: Arc<IpLists>,
        guards: Vec<Arc<dyn Guard>>,
        bus: Arc<EventBus>,
        stats: Arc<Statistics>,
        clock: Arc<dyn Clock>,
        fail_mode: FailMode,
    ) -> Self {
        Pipeline {
            lists,
            guards: ArcSwap::from_pointee(guards),
            bus,
            stats,
            clock,
            fail_closed: AtomicBool::new(fail_mode == FailMode::Closed),
        }
    }

    /// Names of the guards, in order.
    pub fn guard_names(&self) -> Vec<&'static str> {
        self.guards.load().iter().map(|g| g.name()).collect()
    }

    /// Puts new guards and a new fail mode in force (a configuration reload): requests already
    /// deciding finish with the guards they began with.
    pub fn replace(&self, guards: Vec<Arc<dyn Guard>>, fail_mode: FailMode) {
        self.guards.store(Arc::new(guards));
        self.fail_closed
            .store(fail_mode == FailMode::Closed, Ordering::Relaxed);
    }

    /// Decides about one request: a whitelisted client passes at once; otherwise the first
    /// guard to block wins, and the guards after it are not asked (so a blocked request costs
    /// them nothing, rate-limit tokens included).
    pub async fn decide(&self, facts: &RequestFacts) -> Decision {
        self.stats.record_request();
        if self.lists.contains(ListKind::Whitelist, facts.client_ip) {
            self.stats.record_whitelisted();
            return Decision::Allow(Annotations {
                whitelisted: true,
                ..Annotations::default()
            });
        }
        let mut annotations = Annotations::default();
        let guards = self.guards.load_full();
        for guard in guards.iter() {
            let result = match guard.check(facts) {
                Check::Ready(result) => result,
                Check::Pending(future) => future.await,
            };
            match result {
                Ok(Verdict::Pass(more)) => annotations.merge(more),
                Ok(Verdict::Block(reason)) => return self.block(facts, reason),
                Err(GuardError(error)) => {
                    self.bus.publish(SecurityEvent::GuardError {
                        guard: guard.name(),
                        error,
                    });
                    if self.fail_closed.load(Ordering::Relaxed) {
                        return self.block(
                            facts,
                            BlockReason::Unavailable {
                                guard: guard.name(),
                            },
                        );
                    }
                }
            }
        }
        Decision::Allow(annotations)
    }

    /// Records a block decided outside the guards (an oversized or unreadable body) the same
    /// way as a guard's.
    pub fn block(&self, facts: &RequestFacts, reason: BlockReason) -> Decision {
        self.bus.publish(SecurityEvent::Blocked {
            ip: facts.client_ip,
            reason: reason.clone(),
            path: facts.path().to_string(),
            at_ms: self.clock.unix_ms(),
        });
        Decision::Block(reason)
    }

    /// Tells every guard how the request ended.
    pub fn observe(&self, facts: &RequestFacts, outcome: &Outcome) {
        for guard in self.guards.load().iter() {
            guard.observe(facts, outcome);
        }
    }
}
