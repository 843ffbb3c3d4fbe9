//! Properties of the decoders, tokenizers and detectors on arbitrary and hostile input: no
//! panic, output no longer than a small multiple of the input, and bounded time on a megabyte
//! of nested encodings. (The `fuzz/` folder runs the same entry points under libFuzzer.)

use std::time::{Duration, Instant};

use mcp_shield::threat::{decode, HttpRequest, ThreatDetector};
use proptest::prelude::*;

fn detector() -> ThreatDetector {
    ThreatDetector::from_config(&Default::default()).expect("default policy")
}

/// Strings built from the characters encodings and injections are made of.
fn hostile() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("%".to_string()),
            Just("%25".to_string()),
            Just("%u".to_string()),
            Just("%c0%af".to_string()),
            Just("&#x".to_string()),
            Just("&lt;".to_string()),
            Just("'".to_string()),
            Just("\"".to_string()),
            Just("--".to_string()),
            Just("/*!".to_string()),
            Just("<script".to_string()),
            Just("{{".to_string()),
            Just("../".to_string()),
            Just("${".to_string()),
            Just("\u{0}".to_string()),
            Just("\u{ff0e}".to_string()),
            "[a-f0-9]{1,3}".prop_map(|s| s),
            any::<char>().prop_map(|c| c.to_string()),
        ],
        0..64,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn normalize_never_panics_and_stays_small(raw in hostile(), form in any::<bool>()) {
        let n = decode::normalize(&raw, form);
        // Decoding shrinks; the few expansions (an entity to a 4-byte character) are bounded.
        prop_assert!(n.text.len() <= raw.len() * 4 + 4);
        prop_assert!(usize::from(n.rounds) <= decode::MAX_ROUNDS);
    }

    #[test]
    fn inspection_never_panics(
        uri in hostile(),
        body in hostile(),
        header in hostile(),
        json in any::<bool>(),
    ) {
        let detector = detector();
        let uri = format!("/x?q={uri}");
        let body = if json { format!("{{\"jsonrpc\":\"2.0\",\"method\":\"tools/call\",\"params\":{{\"name\":\"t\",\"arguments\":{{\"a\":{}}}}}}}", serde_json::Value::String(body)) } else { body };
        let headers = [("User-Agent", header.as_str()), ("Content-Type", if json { "application/json" } else { "text/plain" })];
        let request = HttpRequest { method: "POST", uri: &uri, headers: &headers, body: body.as_bytes() };
        let inspection = detector.inspect(&request);
        prop_assert!(inspection.score >= 0.0);
        for i in &inspection.indicators {
            prop_assert!(i.snippet.chars().count() <= 120);
        }
    }
}

#[test]
fn a_megabyte_of_nested_encodings_takes_bounded_time() {
    let detector = detector();
    for unit in [
        "%25",
        "%252e%252e%252f",
        "&#x26;#x3c;",
        "'\"/*",
        "((((",
        "{{${",
        "\u{ff0e}\u{ff0e}/",
        // Tags that never close: each one's inside runs to the end of the value.
        "<a b=",
        "<x style ",
        "\" on",
        "<style>",
    ] {
        let body = unit.repeat(1_000_000 / unit.len());
        let uri = format!("/x?q={}", &body[..body.len().min(60_000)]);
        let headers = [("Content-Type", "text/plain")];
        let started = Instant::now();
        let _ = detector.inspect(&HttpRequest {
            method: "POST",
            uri: &uri,
            headers: &headers,
            body: body.as_bytes(),
        });
        // Linear work: a megabyte is milliseconds in release, well under this in debug.
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{unit:?}: {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn a_megabyte_of_xml_is_walked_in_bounded_time() {
    let detector = detector();
    let headers = [("Content-Type", "application/xml")];
    // Unclosed, over the node limit (judged whole), and just under it (every value walked).
    for (unit, times) in [
        ("<a>", 300_000),
        ("<a x=\"'1\">t</a>", 60_000),
        ("<a x=\"'1\" y=\"<b\">t&lt;</a>", 9_000),
    ] {
        let body = format!("<?xml version=\"1.0\"?><r>{}</r>", unit.repeat(times));
        let started = Instant::now();
        let _ = detector.inspect(&HttpRequest {
            method: "POST",
            uri: "/x",
            headers: &headers,
            body: body.as_bytes(),
        });
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{unit:?}: {:?}",
            started.elapsed()
        );
    }
}
