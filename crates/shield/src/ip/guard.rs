//! The deny-list guard: a client inside a blacklisted network gets 403 `ip_blocked`.

use std::sync::Arc;

use super::{IpLists, ListKind};
use crate::decision::{BlockReason, Verdict};
use crate::pipeline::{Check, Guard};
use crate::request::RequestFacts;

/// Refuses clients on the blacklist.
#[derive(Debug)]
pub struct BlacklistGuard {
    lists: Arc<IpLists>,
}

impl BlacklistGuard {
    /// A guard over these lists.
    pub fn new(lists: Arc<IpLists>) -> Self {
        BlacklistGuard { lists }
    }
}

impl Guard for BlacklistGuard {
    fn name(&self) -> &'static str {
        "ip_lists"
    }

    fn check<'a>(&'a self, facts: &'a RequestFacts) -> Check<'a> {
        let verdict = if self.lists.contains(ListKind::Blacklist, facts.client_ip) {
            Verdict::Block(BlockReason::IpBlocked {
                detail: "IP is blacklisted".into(),
            })
        } else {
            Verdict::pass()
        };
        Check::Ready(Ok(verdict))
    }
}
