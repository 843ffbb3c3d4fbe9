//! Per-tool and per-parameter policy: what a tool or an endpoint may receive, and the
//! operator's own patterns.
//!
//! A database tool must receive SQL and a file tool must receive code, while the same text
//! in a search box is an attack. Rules in the configuration file say so:
//!
//! ```toml
//! [[threat_detection.allow]]
//! tool = "run_sql"          # an MCP tool; its arguments (all, or `argument = "sql"`)
//! argument = "sql"
//! threats = ["sql_injection"]
//!
//! [[threat_detection.allow]]
//! path = "/query"           # a URL path (a trailing `*` matches a prefix)
//! parameter = "sql"         # a query or form parameter (all when absent)
//! threats = ["sql_injection"]
//!
//! [[threat_detection.patterns]]
//! name = "internal_project"  # reported as the threat type
//! pattern = "(?i)project[-_ ]?nightingale"
//! severity = "high"          # low, medium, high (default) or critical
//! ```
//!
//! Allowed threats are not reported for the values a rule covers; everything else is still
//! inspected there (a SQL tool still gets XSS and traversal checks).

use serde::{Deserialize, Serialize};

use super::fields::{Field, Place};
use super::{Finding, Severity, ThreatType};

/// `[[threat_detection.allow]]`: threats a tool's arguments or an endpoint's parameters may
/// carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowRule {
    /// MCP tool name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Tool argument (top-level key of `arguments`); all of the tool's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argument: Option<String>,
    /// URL path (exact, or a prefix ending in `*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Query or form parameter at that path; all of the path's values when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
    /// Threat types allowed (`sql_injection`, `xss_attack`, ..., or `all`).
    pub threats: Vec<String>,
}

/// `[[threat_detection.patterns]]`: a regular expression of the operator's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomPattern {
    /// Reported as the threat type.
    pub name: String,
    /// A regular expression (Rust `regex` syntax: linear time, no backreferences), matched
    /// against every decoded value.
    pub pattern: String,
    /// `low`, `medium`, `high` (default) or `critical`.
    #[serde(default = "default_severity")]
    pub severity: String,
}

fn default_severity() -> String {
    "high".into()
}

/// A rule or pattern that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct PolicyError {
    /// Which rule (`threat_detection.allow[0]`).
    pub key: String,
    /// The offending value.
    pub value: String,
    /// What is wrong.
    pub message: String,
}

impl AllowRule {
    /// Checks the rule; `key` names it in errors.
    pub fn validate(&self, key: &str) -> Result<(), PolicyError> {
        let err = |value: &str, message: &str| PolicyError {
            key: key.to_string(),
            value: value.to_string(),
            message: message.to_string(),
        };
        match (&self.tool, &self.path) {
            (None, None) => return Err(err("", "a rule needs a tool or a path")),
            (Some(_), Some(_)) => return Err(err("", "a rule has a tool or a path, not both")),
            _ => {}
        }
        if self.argument.is_some() && self.tool.is_none() {
            return Err(err(
                self.argument.as_deref().unwrap_or(""),
                "argument goes with tool (use parameter with path)",
            ));
        }
        if self.parameter.is_some() && self.path.is_none() {
            return Err(err(
                self.parameter.as_deref().unwrap_or(""),
                "parameter goes with path (use argument with tool)",
            ));
        }
        if let Some(path) = &self.path {
            if !path.starts_with('/') {
                return Err(err(path, "path must start with /"));
            }
        }
        if self.threats.is_empty() {
            return Err(err("[]", "threats must name at least one threat type"));
        }
        for threat in &self.threats {
            if threat != "all" && ThreatType::built_in(threat).is_none() {
                return Err(err(
                    threat,
                    &format!(
                        "unknown threat type (one of: all, {})",
                        ThreatType::built_in_names().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    fn matches_path(&self, path: &str) -> bool {
        match &self.path {
            Some(p) => match p.strip_suffix('*') {
                Some(prefix) => path.starts_with(prefix),
                None => path == p,
            },
            None => false,
        }
    }
}

struct Compiled {
    name: ThreatType,
    regex: regex::Regex,
    severity: Severity,
}

/// The rules and patterns, ready to use.
#[derive(Default)]
pub struct Policy {
    rules: Vec<AllowRule>,
    patterns: Vec<Compiled>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("rules", &self.rules.len())
            .field("patterns", &self.patterns.len())
            .finish()
    }
}

impl Policy {
    /// A policy from validated rules and patterns; errors name the rule or pattern.
    pub fn new(rules: &[AllowRule], patterns: &[CustomPattern]) -> Result<Policy, PolicyError> {
        for (i, rule) in rules.iter().enumerate() {
            rule.validate(&format!("threat_detection.allow[{i}]"))?;
        }
        let mut compiled = Vec::with_capacity(patterns.len());
        for (i, p) in patterns.iter().enumerate() {
            let key = format!("threat_detection.patterns[{i}] ({})", p.name);
            let err = |value: &str, message: String| PolicyError {
                key: key.clone(),
                value: value.to_string(),
                message,
            };
            if p.name.trim().is_empty()
                || !p
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(err(&p.name, "name must be letters, digits, _ or -".into()));
            }
            let severity = Severity::parse(&p.severity).ok_or_else(|| {
                err(
                    &p.severity,
                    "severity must be low, medium, high or critical".into(),
                )
            })?;
            let regex = regex::RegexBuilder::new(&p.pattern)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| err(&p.pattern, format!("not a valid regular expression: {e}")))?;
            compiled.push(Compiled {
                // A pattern may add to a built-in type (`sql_injection`) or name its own.
                name: ThreatType::built_in(&p.name)
                    .unwrap_or_else(|| ThreatType::Custom(p.name.as_str().into())),
                regex,
                severity,
            });
        }
        Ok(Policy {
            rules: rules.to_vec(),
            patterns: compiled,
        })
    }

    /// Threats allowed for every value of a request to `path` (rules with a path and no
    /// parameter).
    pub fn allowed_for_path(&self, path: &str) -> Vec<String> {
        self.rules
            .iter()
            .filter(|r| r.parameter.is_none() && r.matches_path(path))
            .flat_map(|r| r.threats.iter().cloned())
            .collect()
    }

    /// Threats allowed for one value.
    pub fn allowed_for_field<'r>(
        &'r self,
        field: &Field<'_>,
        path: &str,
        at_path: &'r [String],
    ) -> Vec<&'r str> {
        let mut allowed: Vec<&str> = at_path.iter().map(String::as_str).collect();
        let parameter = matches!(
            field.place,
            Place::QueryName | Place::QueryValue | Place::FormName | Place::FormValue
        );
        for rule in &self.rules {
            let applies = if let Some(tool) = &rule.tool {
                field.tool.as_deref() == Some(tool.as_str())
                    && rule
                        .argument
                        .as_ref()
                        .is_none_or(|a| field.argument() == Some(a.as_str()))
            } else {
                rule.parameter.as_ref().is_some_and(|p| {
                    rule.matches_path(path)
                        && (parameter && field.name == p.as_str()
                            || field.place == Place::JsonValue
                                && field.name.split(['.', '[']).next() == Some(p.as_str())
                            // XML: the element (`root/sql`) or attribute (`root/q@sql`) name.
                            || field.place == Place::XmlValue
                                && field.name.rsplit(['/', '@']).next() == Some(p.as_str()))
                })
            };
            if applies {
                allowed.extend(rule.threats.iter().map(String::as_str));
            }
        }
        if allowed.contains(&"all") {
            for name in ThreatType::built_in_names() {
                allowed.push(name);
            }
        }
        allowed
    }

    /// Runs the operator's patterns over a decoded value.
    pub fn match_patterns(&self, text: &str, out: &mut Vec<Finding>) {
        for p in &self.patterns {
            if let Some(m) = p.regex.find(text) {
                out.push(Finding::new(
                    p.name.clone(),
                    p.severity,
                    0.9,
                    m.start(),
                    m.end(),
                ));
            }
        }
    }

    /// Whether there are patterns to run.
    pub fn has_patterns(&self) -> bool {
        !self.patterns.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_rules_name_themselves() {
        let rule = |tool: Option<&str>, path: Option<&str>, threats: &[&str]| AllowRule {
            tool: tool.map(Into::into),
            argument: None,
            path: path.map(Into::into),
            parameter: None,
            threats: threats.iter().map(|t| t.to_string()).collect(),
        };
        let err = Policy::new(&[rule(None, None, &["sql_injection"])], &[]).expect_err("no target");
        assert_eq!(err.key, "threat_detection.allow[0]");
        let err = Policy::new(&[rule(Some("t"), None, &["sqli"])], &[]).expect_err("unknown");
        assert_eq!(err.value, "sqli");
        assert!(err.message.contains("sql_injection"));
        let err = Policy::new(&[rule(None, Some("query"), &["all"])], &[]).expect_err("path");
        assert!(err.message.contains("start with /"));
        let err = Policy::new(
            &[],
            &[CustomPattern {
                name: "x".into(),
                pattern: "(unclosed".into(),
                severity: "high".into(),
            }],
        )
        .expect_err("regex");
        assert!(err.key.contains("patterns[0]"), "{err}");
        assert_eq!(err.value, "(unclosed");
    }
}
