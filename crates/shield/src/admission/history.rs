//! Where admission's [`ClientHistory`] comes from: DDoS protection's table of addresses (first
//! request, blocks and patterns), the reputation table, and emergency mode.

use std::net::IpAddr;
use std::sync::Arc;

use super::{ClientHistory, Standing};
use crate::ddos::DdosGuard;
use crate::ip::reputation::Reputation;

/// The records admission reads.
#[derive(Clone)]
pub struct ClientRecords {
    ddos: Arc<DdosGuard>,
    reputation: Option<Arc<Reputation>>,
}

impl ClientRecords {
    /// Records from DDoS protection and, with IP management on, reputation.
    pub fn new(ddos: Arc<DdosGuard>, reputation: Option<Arc<Reputation>>) -> Self {
        ClientRecords { ddos, reputation }
    }
}

impl ClientHistory for ClientRecords {
    fn standing(&self, ip: IpAddr) -> Option<Standing> {
        self.ddos.traffic(ip).map(|t| Standing {
            first_seen_ms: t.first_seen_ms,
            bad_record: t.has_bad_record(),
        })
    }

    fn reputation(&self, ip: IpAddr) -> Option<f64> {
        self.reputation.as_ref().map(|r| r.score(ip))
    }

    fn emergency_since_ms(&self) -> Option<u64> {
        self.ddos.emergency_since_ms()
    }
}
