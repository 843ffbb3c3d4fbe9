//! Bot and scanner behaviour, named with its evidence: rules over a client's window of counts,
//! beside the anomaly model (which says how unusual, not what kind).

use serde::Serialize;

use super::features::Counts;

/// A behaviour class with the evidence for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BehaviourClass {
    /// `scanner` or `bot`.
    pub class: &'static str,
    /// The pattern: `enumeration`, `tool_sweep`, `fixed_interval`.
    pub pattern: &'static str,
    /// What was seen, in words.
    pub evidence: String,
}

/// Distinct paths answered 404 in a window from which a client is enumerating.
pub const ENUMERATION_MIN_MISSING_PATHS: f64 = 10.0;
/// Distinct tools called in a window from which calls are a sweep.
pub const SWEEP_MIN_TOOLS: f64 = 8.0;
/// Requests needed before a regular rhythm means automation.
pub const FIXED_INTERVAL_MIN_REQUESTS: f64 = 10.0;
/// Gap variation (standard deviation over mean) below which arrivals are machine-timed.
pub const FIXED_INTERVAL_MAX_VARIATION: f64 = 0.1;

/// The classes `counts` show (none for most clients).
pub fn classify(counts: &Counts) -> Vec<BehaviourClass> {
    let mut out = Vec::new();
    if counts.distinct_missing_paths >= ENUMERATION_MIN_MISSING_PATHS
        && counts.not_found >= 0.3 * counts.requests
    {
        out.push(BehaviourClass {
            class: "scanner",
            pattern: "enumeration",
            evidence: format!(
                "{:.0} distinct paths answered 404 ({:.0} % of {:.0} requests)",
                counts.distinct_missing_paths,
                100.0 * counts.not_found / counts.requests.max(1.0),
                counts.requests
            ),
        });
    }
    if counts.distinct_tools >= SWEEP_MIN_TOOLS {
        out.push(BehaviourClass {
            class: "scanner",
            pattern: "tool_sweep",
            evidence: format!(
                "{:.0} distinct tools in {:.0} calls within {:.0} s",
                counts.distinct_tools,
                counts.tool_calls,
                counts.span_ms / 1000.0
            ),
        });
    }
    if counts.requests >= FIXED_INTERVAL_MIN_REQUESTS
        && counts.mean_gap_ms > 0.0
        && counts.gap_variation < FIXED_INTERVAL_MAX_VARIATION
    {
        out.push(BehaviourClass {
            class: "bot",
            pattern: "fixed_interval",
            evidence: format!(
                "a request every {:.1} s (gaps vary by {:.1} %)",
                counts.mean_gap_ms / 1000.0,
                100.0 * counts.gap_variation
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_pattern_with_its_evidence() {
        let scanner = Counts {
            requests: 60.0,
            not_found: 55.0,
            distinct_missing_paths: 50.0,
            gap_variation: 0.8,
            mean_gap_ms: 200.0,
            ..Counts::default()
        };
        let got = classify(&scanner);
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].class, got[0].pattern), ("scanner", "enumeration"));
        assert!(
            got[0].evidence.contains("50 distinct paths answered 404"),
            "{got:?}"
        );

        let health = Counts {
            requests: 30.0,
            mean_gap_ms: 10_000.0,
            gap_variation: 0.01,
            ..Counts::default()
        };
        let got = classify(&health);
        assert_eq!((got[0].class, got[0].pattern), ("bot", "fixed_interval"));

        let sweep = Counts {
            requests: 20.0,
            tool_calls: 20.0,
            distinct_tools: 15.0,
            gap_variation: 1.0,
            span_ms: 60_000.0,
            ..Counts::default()
        };
        assert_eq!(classify(&sweep)[0].pattern, "tool_sweep");

        let person = Counts {
            requests: 20.0,
            mean_gap_ms: 5_000.0,
            gap_variation: 1.2,
            distinct_tools: 2.0,
            ..Counts::default()
        };
        assert!(classify(&person).is_empty());
    }
}
