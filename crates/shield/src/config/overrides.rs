//! The library's `config_overrides` (the seed's dictionary passed to `init_security_system`).

use toml::Value;

/// A value for [`ConfigOverrides::set`]: a bool, a number, a string or a list of strings.
#[derive(Debug, Clone, PartialEq)]
pub struct OverrideValue(pub(crate) Value);

macro_rules! integer_override {
    ($($t:ty),*) => {$(
        impl From<$t> for OverrideValue {
            fn from(v: $t) -> Self {
                // Values past i64::MAX saturate; the loader reports them as out of range where
                // it matters.
                OverrideValue(Value::Integer(i64::try_from(v).unwrap_or(i64::MAX)))
            }
        }
    )*};
}
integer_override!(i32, i64, u16, u32, u64, usize);

impl From<bool> for OverrideValue {
    fn from(v: bool) -> Self {
        OverrideValue(Value::Boolean(v))
    }
}
impl From<f64> for OverrideValue {
    fn from(v: f64) -> Self {
        OverrideValue(Value::Float(v))
    }
}
impl From<&str> for OverrideValue {
    fn from(v: &str) -> Self {
        OverrideValue(Value::String(v.to_string()))
    }
}
impl From<String> for OverrideValue {
    fn from(v: String) -> Self {
        OverrideValue(Value::String(v))
    }
}
impl From<Vec<&str>> for OverrideValue {
    fn from(v: Vec<&str>) -> Self {
        OverrideValue(Value::Array(
            v.into_iter().map(|s| Value::String(s.into())).collect(),
        ))
    }
}
impl From<Vec<String>> for OverrideValue {
    fn from(v: Vec<String>) -> Self {
        OverrideValue(Value::Array(v.into_iter().map(Value::String).collect()))
    }
}

/// Settings that win over the file and the environment.
///
/// Names are the seed's override keys (`ENABLE_RATE_LIMITING`), full environment names
/// (`SECURITY_ENABLE_RATE_LIMITING`, `REDIS_URL`) or TOML paths (`rate_limit.per_ip_capacity`).
///
/// ```
/// use mcp_shield::ConfigOverrides;
/// let overrides = ConfigOverrides::new()
///     .set("ENABLE_RATE_LIMITING", true)
///     .set("RATE_LIMIT_GLOBAL_CAPACITY", 2000)
///     .set("DDOS_REQUESTS_PER_SECOND_THRESHOLD", 100);
/// assert_eq!(overrides.len(), 3);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigOverrides {
    entries: Vec<(String, Value)>,
}

impl ConfigOverrides {
    /// No overrides.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` to `value`; a later `set` of the same name wins.
    pub fn set(mut self, name: impl Into<String>, value: impl Into<OverrideValue>) -> Self {
        self.entries.push((name.into(), value.into().0));
        self
    }

    /// Parses `NAME=VALUE` (the gateway's `--set` flag); the value is read as the environment
    /// would read it.
    pub fn set_assignment(self, assignment: &str) -> Result<Self, String> {
        match assignment.split_once('=') {
            Some((name, value)) if !name.trim().is_empty() => Ok(self.set(name.trim(), value)),
            _ => Err(format!("--set {assignment}: expected NAME=VALUE")),
        }
    }

    /// How many overrides were set.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none were set.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }
}
