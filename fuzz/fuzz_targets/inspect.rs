//! A whole request through the detector: the first byte picks the body's content type, the
//! rest is split into URI, one header value and body at two `\n`s. Each request is inspected
//! twice by one detector shared by all inputs: the verdicts must be equal (short values found
//! clean are remembered across requests).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_shield::threat::{HttpRequest, ThreatDetector};
use std::sync::OnceLock;

static DETECTOR: OnceLock<ThreatDetector> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let detector = DETECTOR.get_or_init(|| {
        ThreatDetector::from_config(&Default::default()).expect("default policy")
    });
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let mut parts = text.splitn(3, '\n');
    let uri = format!("/{}", parts.next().unwrap_or(""));
    let agent = parts.next().unwrap_or("");
    let body = parts.next().unwrap_or("");
    let content_type = match kind % 4 {
        0 => "application/json",
        1 => "application/x-www-form-urlencoded",
        2 => "multipart/form-data; boundary=xyz",
        _ => "text/xml",
    };
    let headers = [("User-Agent", agent), ("Content-Type", content_type), ("Cookie", agent)];
    let request = HttpRequest {
        method: "POST",
        uri: &uri,
        headers: &headers,
        body: body.as_bytes(),
    };
    let inspection = detector.inspect(&request);
    assert!(inspection.score >= 0.0);
    // The second time, the values found clean are remembered (`threat::clean_values`): the
    // verdict must not change.
    let again = detector.inspect(&request);
    assert_eq!(inspection.indicators, again.indicators);
    assert_eq!(inspection.blocked, again.blocked);
});
