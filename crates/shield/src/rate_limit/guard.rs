//! The rate-limit guard: turns a request into the buckets it must pass, asks the store, and
//! turns the answer into a verdict with the seed's `X-RateLimit-*` figures.

use std::collections::HashSet;
use std::sync::Arc;

use super::gcra::Quota;
use super::rules::{effective_rules, message_count, CompiledRule};
use super::store::{Acquired, BucketKey, BucketRequest, RateLimitStore, Subject};
use crate::clock::Clock;
use crate::config::{RateLimitConfig, RuleKey};
use crate::decision::{Annotations, BlockReason, RateLimitStatus, Verdict};
use crate::pipeline::{Check, Guard, GuardError};
use crate::request::{keyed_hash, RequestFacts, UserId};

const SCOPE_GLOBAL: u16 = 0;
const SCOPE_IP: u16 = 1;
const SCOPE_USER: u16 = 2;
const SCOPE_FIRST_RULE: u16 = 3;

/// Token buckets per global, IP, user and endpoint rule.
pub struct RateLimitGuard {
    store: Arc<dyn RateLimitStore>,
    global: Quota,
    per_ip: Quota,
    per_user: Quota,
    rules: Vec<CompiledRule>,
    whitelist_users: HashSet<String>,
    clock: Arc<dyn Clock>,
    hash_key: (u64, u64),
}

impl std::fmt::Debug for RateLimitGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitGuard")
            .field("global", &self.global)
            .field("per_ip", &self.per_ip)
            .field("per_user", &self.per_user)
            .field("rules", &self.rule_names())
            .finish_non_exhaustive()
    }
}

impl RateLimitGuard {
    /// A guard over `store`, with the limits of `config`.
    pub fn new(
        config: &RateLimitConfig,
        whitelist_users: &[String],
        store: Arc<dyn RateLimitStore>,
        clock: Arc<dyn Clock>,
        hash_key: (u64, u64),
    ) -> Self {
        let quota =
            |capacity, rate| Quota::new(capacity, RateLimitConfig::effective_rate(capacity, rate));
        RateLimitGuard {
            store,
            global: quota(config.global_capacity, config.global_refill_rate),
            per_ip: quota(config.per_ip_capacity, config.per_ip_refill_rate),
            per_user: quota(config.per_user_capacity, config.per_user_refill_rate),
            rules: effective_rules(config),
            whitelist_users: whitelist_users.iter().cloned().collect(),
            clock,
            hash_key,
        }
    }

    /// Names of the endpoint rules in force, in order.
    pub fn rule_names(&self) -> Vec<&str> {
        self.rules.iter().map(|r| r.name.as_str()).collect()
    }

    /// The bucket store (a reload builds a guard with new limits over the same buckets).
    pub fn store(&self) -> Arc<dyn RateLimitStore> {
        self.store.clone()
    }

    /// Buckets held by the store.
    pub fn tracked_keys(&self) -> usize {
        self.store.tracked_keys()
    }

    /// `memory` or `redis`.
    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }

    fn user_subject(&self, user: &UserId) -> Subject {
        match user {
            UserId::Credential(hash) => Subject::User(*hash),
            UserId::Header(name) => Subject::User(keyed_hash(self.hash_key, name.as_bytes())),
        }
    }

    /// The buckets `facts` must pass, most specific first (so a request refused by its own
    /// rule or address never touches the contended global bucket).
    fn buckets(&self, facts: &RequestFacts) -> Vec<BucketRequest> {
        let user = facts.user.as_ref().map(|u| self.user_subject(u));
        let mut buckets = Vec::with_capacity(self.rules.len() + 3);
        for (i, rule) in self.rules.iter().enumerate() {
            let Some(cost) = rule.cost(facts) else {
                continue;
            };
            let subject = match rule.key {
                RuleKey::Ip => Subject::Ip(facts.client_ip),
                RuleKey::Global => Subject::Global,
                RuleKey::User => match user {
                    Some(subject) => subject,
                    None => continue,
                },
            };
            buckets.push(BucketRequest {
                key: BucketKey {
                    scope: SCOPE_FIRST_RULE.saturating_add(i as u16),
                    subject,
                },
                quota: rule.quota,
                cost,
            });
        }
        let cost = message_count(facts);
        buckets.push(BucketRequest {
            key: BucketKey {
                scope: SCOPE_IP,
                subject: Subject::Ip(facts.client_ip),
            },
            quota: self.per_ip,
            cost,
        });
        if let Some(subject) = user {
            buckets.push(BucketRequest {
                key: BucketKey {
                    scope: SCOPE_USER,
                    subject,
                },
                quota: self.per_user,
                cost,
            });
        }
        buckets.push(BucketRequest {
            key: BucketKey {
                scope: SCOPE_GLOBAL,
                subject: Subject::Global,
            },
            quota: self.global,
            cost,
        });
        buckets
    }

    fn bucket_name(&self, key: &BucketKey) -> String {
        match key.scope {
            SCOPE_GLOBAL => "global".into(),
            SCOPE_IP => "ip".into(),
            SCOPE_USER => "user".into(),
            n => self
                .rules
                .get(usize::from(n - SCOPE_FIRST_RULE))
                .map_or_else(|| "rule".into(), |r| r.name.clone()),
        }
    }

    fn verdict(&self, buckets: &[BucketRequest], acquired: Acquired) -> Verdict {
        const NS: u64 = 1_000_000_000;
        match acquired {
            Acquired::Allowed {
                tightest,
                remaining,
            } => Verdict::Pass(Annotations {
                rate_limit: buckets.get(tightest).map(|b| RateLimitStatus {
                    limit: b.quota.capacity(),
                    remaining,
                }),
                whitelisted: false,
            }),
            Acquired::Denied {
                index,
                retry_after_ns,
                reset_after_ns,
            } => {
                let Some(bucket) = buckets.get(index) else {
                    return Verdict::pass();
                };
                let now_s = self.clock.unix_ms() / 1000;
                Verdict::Block(BlockReason::RateLimited {
                    bucket: self.bucket_name(&bucket.key),
                    limit: bucket.quota.capacity(),
                    retry_after_secs: retry_after_ns.div_ceil(NS).max(1),
                    reset_unix: now_s + reset_after_ns.div_ceil(NS).max(1),
                })
            }
        }
    }
}

impl Guard for RateLimitGuard {
    fn name(&self) -> &'static str {
        "rate_limiting"
    }

    fn check<'a>(&'a self, facts: &'a RequestFacts) -> Check<'a> {
        if let Some(UserId::Header(name)) = &facts.user {
            if self.whitelist_users.contains(name) {
                return Check::Ready(Ok(Verdict::pass()));
            }
        }
        let buckets = self.buckets(facts);
        let now = self.clock.monotonic_ns();
        if let Some(result) = self.store.acquire_now(&buckets, now) {
            return Check::Ready(
                result
                    .map(|a| self.verdict(&buckets, a))
                    .map_err(|e| GuardError(e.to_string())),
            );
        }
        Check::Pending(Box::pin(async move {
            let result = self.store.acquire_later(buckets.clone(), now).await;
            result
                .map(|a| self.verdict(&buckets, a))
                .map_err(|e| GuardError(e.to_string()))
        }))
    }
}
