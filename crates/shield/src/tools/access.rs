//! Who may call which tool, read which prompt, open which resource: `[[mcp.tools.access]]`.
//!
//! A rule applies to a client when its `users` list names the client's user (the
//! `user_id_header` value) and its `networks` hold the client's address; an empty list
//! matches everyone. Of the rules that apply, one deny pattern is enough to refuse; when any
//! of them has an allow list for that kind of thing, the name must match one of those lists.
//! The same answer filters the lists the client receives and refuses its calls, so a client
//! never sees a tool it may not call.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::ToolAccessRule;

/// What a rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// Tools, by name.
    Tool,
    /// Prompts, by name.
    Prompt,
    /// Resources and resource templates, by URI (or URI template).
    Resource,
}

impl Subject {
    /// `tool`, `prompt`, `resource`.
    pub fn as_str(self) -> &'static str {
        match self {
            Subject::Tool => "tool",
            Subject::Prompt => "prompt",
            Subject::Resource => "resource",
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Patterns {
    allow: Vec<String>,
    deny: Vec<String>,
}

#[derive(Debug, Clone)]
struct Rule {
    users: Vec<String>,
    networks: Vec<IpNet>,
    tools: Patterns,
    prompts: Patterns,
    resources: Patterns,
}

/// The access rules, compiled.
#[derive(Debug, Clone, Default)]
pub struct AccessPolicy {
    rules: Vec<Rule>,
}

impl AccessPolicy {
    /// Compiles the configured rules (validated by the loader; a network that does not parse
    /// makes the rule match no address, never every address).
    pub fn new(rules: &[ToolAccessRule]) -> AccessPolicy {
        AccessPolicy {
            rules: rules
                .iter()
                .map(|r| Rule {
                    users: r.users.clone(),
                    networks: r
                        .networks
                        .iter()
                        .map(|n| {
                            crate::ip::parse_network(n).unwrap_or_else(|_| {
                                // Unreachable after validation: an empty /32 of 0.0.0.0.
                                IpNet::from(IpAddr::from([0, 0, 0, 0]))
                            })
                        })
                        .collect(),
                    tools: Patterns {
                        allow: r.allow_tools.clone(),
                        deny: r.deny_tools.clone(),
                    },
                    prompts: Patterns {
                        allow: r.allow_prompts.clone(),
                        deny: r.deny_prompts.clone(),
                    },
                    resources: Patterns {
                        allow: r.allow_resources.clone(),
                        deny: r.deny_resources.clone(),
                    },
                })
                .collect(),
        }
    }

    /// Whether there are rules at all (the common case has none: nothing to check).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether the client (`user`, `ip`) may use `name`.
    pub fn allows(&self, subject: Subject, name: &str, user: Option<&str>, ip: IpAddr) -> bool {
        let mut allow_lists = 0;
        let mut allowed = false;
        for rule in &self.rules {
            let applies = (rule.users.is_empty()
                || user.is_some_and(|u| rule.users.iter().any(|x| x == u)))
                && (rule.networks.is_empty() || rule.networks.iter().any(|n| n.contains(&ip)));
            if !applies {
                continue;
            }
            let patterns = match subject {
                Subject::Tool => &rule.tools,
                Subject::Prompt => &rule.prompts,
                Subject::Resource => &rule.resources,
            };
            if patterns.deny.iter().any(|p| glob(p, name)) {
                return false;
            }
            if !patterns.allow.is_empty() {
                allow_lists += 1;
                allowed |= patterns.allow.iter().any(|p| glob(p, name));
            }
        }
        allow_lists == 0 || allowed
    }
}

/// `*` matches any run of characters (`/` included), everything else itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    if !text.ends_with(last) {
        return false;
    }
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(f: impl FnOnce(&mut ToolAccessRule)) -> ToolAccessRule {
        let mut r = ToolAccessRule::default();
        f(&mut r);
        r
    }

    #[test]
    fn globs() {
        assert!(glob("delete_*", "delete_file"));
        assert!(!glob("delete_*", "undelete_file"));
        assert!(glob("*", "anything"));
        assert!(glob("file:///docs/*", "file:///docs/a/b.md"));
        assert!(glob("a*b*c", "a-x-b-y-c"));
        assert!(!glob("a*b*c", "a-x-c"));
        assert!(!glob("ab*ba", "aba"));
        assert!(glob("weather", "weather"));
        assert!(!glob("weather", "weather2"));
    }

    #[test]
    fn deny_wins_and_allow_lists_narrow() {
        let local: IpAddr = "10.1.2.3".parse().unwrap();
        let outside: IpAddr = "203.0.113.9".parse().unwrap();
        let policy = AccessPolicy::new(&[
            rule(|r| r.deny_tools = vec!["delete_*".into()]),
            rule(|r| {
                r.networks = vec!["203.0.113.0/24".into()];
                r.allow_tools = vec!["search".into(), "weather".into()];
            }),
            rule(|r| {
                r.users = vec!["admin".into()];
                r.allow_tools = vec!["*".into()];
                r.deny_prompts = vec!["internal_*".into()];
            }),
        ]);
        assert!(policy.allows(Subject::Tool, "run_job", None, local));
        assert!(!policy.allows(Subject::Tool, "delete_file", Some("admin"), local));
        assert!(policy.allows(Subject::Tool, "weather", None, outside));
        assert!(!policy.allows(Subject::Tool, "run_job", None, outside));
        // The admin's own allow list counts beside the network's.
        assert!(policy.allows(Subject::Tool, "run_job", Some("admin"), outside));
        assert!(!policy.allows(Subject::Prompt, "internal_notes", Some("admin"), local));
        assert!(policy.allows(Subject::Prompt, "internal_notes", Some("bob"), local));
        assert!(AccessPolicy::default().allows(Subject::Resource, "file:///x", None, local));
    }
}
