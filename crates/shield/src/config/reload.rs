//! What a configuration reload may change while the system runs, and what needs a restart.
//!
//! Pure: two configurations in, the settings that differ (as TOML paths) and the configuration
//! to put in force out. Settings that shape tables made at start (their capacities), switch a
//! component on or off, or name a connection or a file opened once (Redis, GeoIP, the data
//! folder, the listener) keep their running values and are reported as needing a restart;
//! everything else (lists, rules, thresholds, feeds, the threat policy, the MCP checks) is
//! taken.

use toml::Value;

use super::{Config, SECTIONS};

/// Settings (TOML paths; a whole section where the path is a section's name) a reload cannot
/// change in a running system.
pub const NEEDS_RESTART: &[&str] = &[
    "enable_rate_limiting",
    "enable_ddos_protection",
    "enable_ip_management",
    "enable_threat_detection",
    "admin_token",
    "ip_hash_key",
    "log_format",
    "log_ip_mode",
    "data_dir",
    "data_retention",
    "ip_list_max_entries",
    "redis_url",
    "redis_cluster_nodes",
    "redis_key_prefix",
    "redis_timeout_ms",
    "geoip_database_path",
    "geoip_asn_database_path",
    "geoip_anonymous_database_path",
    "rate_limit.max_tracked_keys",
    "ddos.concurrent_connections_limit",
    "ddos.header_timeout",
    "ddos.max_tracked_ips",
    "ip.max_tracked_ips",
    "ip.geo_high_risk_countries",
    "threat_detection.ml_window",
    "threat_detection.ml_max_clients",
    // Tool integrity: the pin book's size, the detector's length limit, the pin file read at
    // start, and the name pins are kept under.
    "mcp.tools.max_pinned",
    "mcp.tools.max_definition_bytes",
    "mcp.tools.pin_file",
    "mcp.tools.upstream_name",
    "upstream",
    "gateway",
];

/// A reload worked out.
#[derive(Debug, Clone)]
pub struct ReloadPlan {
    /// Settings that change now.
    pub applied: Vec<String>,
    /// Settings that differ but keep their running value until a restart.
    pub needs_restart: Vec<String>,
    /// The new configuration with the running values of `needs_restart`.
    pub effective: Config,
}

/// Compares the running configuration with a new one.
pub fn plan(running: &Config, new: &Config) -> ReloadPlan {
    let (Ok(Value::Table(old_tree)), Ok(Value::Table(mut new_tree))) =
        (Value::try_from(running), Value::try_from(new))
    else {
        // Both serialize (they are plain data); were one not to, nothing would change.
        return ReloadPlan {
            applied: Vec::new(),
            needs_restart: Vec::new(),
            effective: running.clone(),
        };
    };
    let mut changed = Vec::new();
    let mut keys: Vec<&String> = old_tree.keys().chain(new_tree.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        match (old_tree.get(key), new_tree.get(key)) {
            (Some(Value::Table(a)), Some(Value::Table(b))) if SECTIONS.contains(&key.as_str()) => {
                let mut inner: Vec<&String> = a.keys().chain(b.keys()).collect();
                inner.sort();
                inner.dedup();
                for name in inner {
                    match (a.get(name), b.get(name)) {
                        // A table inside a section (`[mcp.tools]`): setting by setting too.
                        (Some(Value::Table(x)), Some(Value::Table(y))) => {
                            let mut names: Vec<&String> = x.keys().chain(y.keys()).collect();
                            names.sort();
                            names.dedup();
                            for leaf in names {
                                if x.get(leaf) != y.get(leaf) {
                                    changed.push(format!("{key}.{name}.{leaf}"));
                                }
                            }
                        }
                        (x, y) if x != y => changed.push(format!("{key}.{name}")),
                        _ => {}
                    }
                }
            }
            (a, b) if a != b => changed.push(key.clone()),
            _ => {}
        }
    }
    let restart = |path: &str| {
        NEEDS_RESTART.iter().any(|r| {
            path == *r
                || path
                    .strip_prefix(r)
                    .is_some_and(|rest| rest.starts_with('.'))
        })
    };
    let (needs_restart, applied): (Vec<String>, Vec<String>) =
        changed.into_iter().partition(|path| restart(path));
    for path in &needs_restart {
        keep_running(&old_tree, &mut new_tree, path);
    }
    let effective = Value::Table(new_tree)
        .try_into()
        .unwrap_or_else(|_| running.clone());
    ReloadPlan {
        applied,
        needs_restart,
        effective,
    }
}

/// Puts the running value of `path` (present or absent) into `tree`.
fn keep_running(running: &toml::Table, tree: &mut toml::Table, path: &str) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let Some(key) = parts.pop() else { return };
    let mut from = Some(running);
    let mut to = Some(tree);
    for part in parts {
        from = from.and_then(|t| t.get(part)).and_then(Value::as_table);
        to = to
            .and_then(|t| t.get_mut(part))
            .and_then(Value::as_table_mut);
    }
    let Some(to) = to else { return };
    match from.and_then(|t| t.get(key)) {
        Some(value) => {
            to.insert(key.to_string(), value.clone());
        }
        None => {
            to.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_settings_are_applied_and_the_rest_kept_for_a_restart() {
        let running = Config::default();
        let mut new = Config::default();
        new.rate_limit.per_ip_capacity = 7;
        new.rate_limit.per_ip_refill_rate = Some(0.5);
        new.blacklist = vec!["10.0.0.0/8".into()];
        new.threat_detection.block_severity = "critical".into();
        new.redis_url = "redis://127.0.0.1:1/".into();
        new.enable_rate_limiting = true;
        new.ddos.max_tracked_ips = 5;
        new.gateway.admin_listen = "127.0.0.1:9".into();
        let plan = plan(&running, &new);
        assert_eq!(
            plan.applied,
            vec![
                "blacklist",
                "rate_limit.per_ip_capacity",
                "rate_limit.per_ip_refill_rate",
                "threat_detection.block_severity",
            ]
        );
        assert_eq!(
            plan.needs_restart,
            vec![
                "ddos.max_tracked_ips",
                "enable_rate_limiting",
                "gateway.admin_listen",
                "redis_url"
            ]
        );
        let e = &plan.effective;
        assert_eq!(e.rate_limit.per_ip_capacity, 7);
        assert_eq!(e.rate_limit.per_ip_refill_rate, Some(0.5));
        assert_eq!(e.blacklist, vec!["10.0.0.0/8".to_string()]);
        assert_eq!(e.threat_detection.block_severity, "critical");
        assert_eq!(e.redis_url, "");
        assert!(!e.enable_rate_limiting);
        assert_eq!(e.ddos.max_tracked_ips, running.ddos.max_tracked_ips);
        assert_eq!(e.gateway.admin_listen, "");
    }

    #[test]
    fn tool_settings_are_weighed_one_by_one() {
        let running = Config::default();
        let mut new = Config::default();
        new.mcp.tools.on_change = crate::config::ToolAction::Alert;
        new.mcp.tools.max_pinned = 5;
        new.mcp.tools.access = vec![crate::config::ToolAccessRule {
            deny_tools: vec!["delete_*".into()],
            ..Default::default()
        }];
        let plan = plan(&running, &new);
        assert_eq!(
            plan.applied,
            vec!["mcp.tools.access", "mcp.tools.on_change"]
        );
        assert_eq!(plan.needs_restart, vec!["mcp.tools.max_pinned"]);
        assert_eq!(
            plan.effective.mcp.tools.max_pinned,
            running.mcp.tools.max_pinned
        );
        assert_eq!(
            plan.effective.mcp.tools.on_change,
            crate::config::ToolAction::Alert
        );
        assert_eq!(plan.effective.mcp.tools.access.len(), 1);
    }

    #[test]
    fn an_unchanged_configuration_changes_nothing() {
        let running = Config::default();
        let plan = plan(&running, &running.clone());
        assert!(plan.applied.is_empty() && plan.needs_restart.is_empty());
        assert_eq!(plan.effective, running);
    }
}
