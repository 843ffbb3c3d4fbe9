//! The threat detector as a pipeline guard.
//!
//! Blocking findings refuse the request with 403 `threat_detected` (the pipeline publishes
//! the `Blocked` event: logged on `security.threat_detector`, and reputation falls). Findings
//! below the block level, and every finding in `monitor` mode, are published as
//! [`SecurityEvent::ThreatObserved`]: logged, counted against reputation by severity, never
//! refused.
//!
//! Inspection is CPU work proportional to the request's size: small requests are inspected on
//! the spot; bodies over [`OFFLOAD_BYTES`] go to Tokio's blocking pool, so a megabyte of JSON
//! does not stall the other connections served by the same worker thread.

use std::sync::Arc;

use super::{HttpRequest, Inspection, Severity, ThreatDetector, ThreatIndicator};
use crate::decision::{BlockReason, Finding, Verdict};
use crate::events::{EventBus, SecurityEvent};
use crate::pipeline::{Check, Guard, GuardError};
use crate::request::RequestFacts;

/// Bodies larger than this are inspected off the async worker threads.
pub const OFFLOAD_BYTES: usize = 64 * 1024;

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

    /// Turns an inspection into the guard's verdict (publishing what is not refused).
    fn verdict(&self, facts: &RequestFacts, inspection: Inspection) -> Verdict {
        if inspection.indicators.is_empty() {
            return Verdict::pass();
        }
        let tool = facts.mcp_tool();
        if inspection.blocked && !self.monitor_only {
            return Verdict::Block(BlockReason::Threat {
                threats: inspection.blocking_names(self.detector.block_severity()),
                findings: inspection
                    .indicators
                    .iter()
                    .map(|i| Finding::from_indicator(i, tool))
                    .collect(),
            });
        }
        // Low findings (a generic client library's user agent, one `../`) describe ordinary
        // clients too: no event, no log line, no reputation cost on every request.
        if inspection
            .indicators
            .iter()
            .all(|i| i.severity == super::Severity::Low)
        {
            return Verdict::pass();
        }
        self.bus.publish(SecurityEvent::ThreatObserved {
            ip: facts.client_ip,
            path: facts.uri.path().to_string(),
            would_block: inspection.blocked,
            findings: inspection
                .indicators
                .iter()
                .map(|i| Finding::from_indicator(i, tool))
                .collect(),
            indicators: inspection.indicators,
        });
        Verdict::pass()
    }
}

/// The hosting application's findings as indicators (an unknown severity counts as medium).
fn host_indicators(facts: &RequestFacts) -> Vec<ThreatIndicator> {
    facts
        .host_findings
        .iter()
        .map(|f| {
            ThreatIndicator::new(
                &f.threat_type,
                Severity::parse(&f.severity).unwrap_or(Severity::Medium),
                f.confidence,
                f.location.clone(),
                f.snippet.clone(),
            )
        })
        .collect()
}

fn uri_of(facts: &RequestFacts) -> &str {
    facts
        .uri
        .path_and_query()
        .map_or_else(|| facts.uri.path(), |pq| pq.as_str())
}

impl Guard for ThreatGuard {
    fn name(&self) -> &'static str {
        "threat_detection"
    }

    fn check<'a>(&'a self, facts: &'a RequestFacts) -> Check<'a> {
        if facts.body.len() <= OFFLOAD_BYTES || tokio::runtime::Handle::try_current().is_err() {
            let headers: Vec<(&str, &str)> = facts
                .headers
                .iter()
                .filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str(), v)))
                .collect();
            let inspection = self.detector.inspect_with(
                &HttpRequest {
                    method: facts.method.as_str(),
                    uri: uri_of(facts),
                    headers: &headers,
                    body: &facts.body,
                },
                host_indicators(facts),
            );
            return Check::Ready(Ok(self.verdict(facts, inspection)));
        }
        // A large body: the blocking pool gets owned copies (the body is reference-counted).
        let detector = self.detector.clone();
        let method = facts.method.as_str().to_string();
        let uri = uri_of(facts).to_string();
        let headers: Vec<(String, String)> = facts
            .headers
            .iter()
            .filter_map(|(n, v)| {
                v.to_str()
                    .ok()
                    .map(|v| (n.as_str().to_string(), v.to_string()))
            })
            .collect();
        let body = facts.body.clone();
        let host = host_indicators(facts);
        Check::Pending(Box::pin(async move {
            let inspection = tokio::task::spawn_blocking(move || {
                let headers: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect();
                detector.inspect_with(
                    &HttpRequest {
                        method: &method,
                        uri: &uri,
                        headers: &headers,
                        body: &body,
                    },
                    host,
                )
            })
            .await
            .map_err(|e| GuardError(format!("threat inspection failed: {e}")))?;
            Ok(self.verdict(facts, inspection))
        }))
    }
}
