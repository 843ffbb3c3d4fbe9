//! The threat detector as a pipeline guard.
//!
//! Blocking findings refuse the request with 403 `threat_detected` (the pipeline publishes
//! the `Blocked` event: logged on `security.threat_detector`, and reputation falls). Findings
//! below the block level, and every finding in `monitor` mode, are published as
//! [`SecurityEvent::ThreatObserved`]: logged, counted against reputation by severity, never
//! refused.

use std::sync::Arc;

use super::{HttpRequest, ThreatDetector};
use crate::decision::{BlockReason, Verdict};
use crate::events::{EventBus, SecurityEvent};
use crate::pipeline::{Check, Guard};
use crate::request::RequestFacts;

/// Refuses requests the detector judges attacks.
#[derive(Debug)]
pub struct ThreatGuard {
    detector: Arc<ThreatDetector>,
    monitor_only: bool,
    bus: Arc<EventBus>,
}

impl ThreatGuard {
    /// A guard over `detector`; `monitor_only` logs instead of refusing.
    pub fn new(detector: Arc<ThreatDetector>, monitor_only: bool, bus: Arc<EventBus>) -> Self {
        ThreatGuard {
            detector,
            monitor_only,
            bus,
        }
    }
}

impl Guard for ThreatGuard {
    fn name(&self) -> &'static str {
        "threat_detection"
    }

    fn check<'a>(&'a self, facts: &'a RequestFacts) -> Check<'a> {
        let headers: Vec<(&str, &str)> = facts
            .headers
            .iter()
            .filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str(), v)))
            .collect();
        let uri = facts
            .uri
            .path_and_query()
            .map_or_else(|| facts.uri.path(), |pq| pq.as_str());
        let request = HttpRequest {
            method: facts.method.as_str(),
            uri,
            headers: &headers,
            body: &facts.body,
        };
        let inspection = self.detector.inspect(&request);
        if inspection.indicators.is_empty() {
            return Check::Ready(Ok(Verdict::pass()));
        }
        if inspection.blocked && !self.monitor_only {
            return Check::Ready(Ok(Verdict::Block(BlockReason::Threat {
                threats: inspection.threat_names(),
            })));
        }
        self.bus.publish(SecurityEvent::ThreatObserved {
            ip: facts.client_ip,
            path: facts.uri.path().to_string(),
            would_block: inspection.blocked,
            indicators: inspection.indicators,
        });
        Check::Ready(Ok(Verdict::pass()))
    }
}
