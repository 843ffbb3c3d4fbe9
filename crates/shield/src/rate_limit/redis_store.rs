//! Rate-limit buckets in Redis: every bucket of a request decided by one Lua script, in one
//! round trip, atomically, on Redis's clock. While Redis is down the local [`MemoryStore`]
//! answers, so no request waits on a dead server or fails because of it.

use std::sync::Arc;

use super::store::{
    Acquired, BucketRequest, MemoryStore, RateLimitStore, StoreError, StoreFuture, Subject,
};
use crate::state::redis::RedisState;

/// GCRA over several buckets, all or nothing. Times in microseconds from Redis's `TIME` (so
/// instance clocks do not matter; microseconds since 1970 stay exact in Lua's doubles).
/// ARGV holds capacity, interval (µs) and cost for each key. Returns `{1, tightest index,
/// remaining}` or `{0, refused index, retry after µs, reset after µs}`. Each key expires a
/// second after its bucket is full again.
const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local new = {}
local tightest, least = 0, -1
for i = 1, #KEYS do
  local capacity = tonumber(ARGV[i * 3 - 2])
  local interval = tonumber(ARGV[i * 3 - 1])
  local cost = tonumber(ARGV[i * 3])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  local candidate = tat + cost * interval
  local limit = now + capacity * interval
  if candidate > limit then
    return {0, i - 1, math.ceil(candidate - limit), math.ceil(tat - now)}
  end
  new[i] = candidate
  local remaining = math.floor((limit - candidate) / interval)
  if least < 0 or remaining < least then
    tightest, least = i - 1, remaining
  end
end
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], string.format('%.0f', new[i]), 'PX', math.ceil((new[i] - now) / 1000) + 1000)
end
return {1, tightest, least}
"#;

/// Buckets in Redis, with a local fallback.
pub struct RedisStore {
    redis: Arc<RedisState>,
    local: MemoryStore,
    script: redis::Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("redis", &self.redis)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store on `redis`, falling back to a local store of `max_local_keys`.
    pub fn new(redis: Arc<RedisState>, max_local_keys: usize) -> Self {
        RedisStore {
            redis,
            local: MemoryStore::new(max_local_keys),
            script: redis::Script::new(SCRIPT),
        }
    }

    fn key(&self, bucket: &BucketRequest) -> String {
        let scope = bucket.key.scope;
        match bucket.key.subject {
            Subject::Global => self.redis.bucket_key(format_args!("rl:{scope}:g")),
            Subject::Ip(ip) => self
                .redis
                .bucket_key(format_args!("rl:{scope}:i{}", self.redis.hashed_ip(ip))),
            Subject::User(hash) => self
                .redis
                .bucket_key(format_args!("rl:{scope}:u{hash:016x}")),
        }
    }

    async fn shared(&self, buckets: &[BucketRequest]) -> Option<Acquired> {
        let mut connection = self.redis.request_connection().ok()?;
        let mut invocation = self.script.prepare_invoke();
        for bucket in buckets {
            invocation
                .key(self.key(bucket))
                .arg(bucket.quota.capacity())
                .arg(bucket.quota.interval_ns() as f64 / 1000.0)
                .arg(bucket.cost);
        }
        let reply: Vec<i64> = self
            .redis
            .call(invocation.invoke_async(&mut connection))
            .await
            .ok()?;
        let number = |i: usize| reply.get(i).copied().unwrap_or(0).max(0) as u64;
        Some(match reply.first() {
            Some(1) => Acquired::Allowed {
                tightest: number(1) as usize,
                remaining: number(2),
            },
            _ => Acquired::Denied {
                index: number(1) as usize,
                retry_after_ns: number(2).saturating_mul(1000),
                reset_after_ns: number(3).saturating_mul(1000),
            },
        })
    }
}

impl RateLimitStore for RedisStore {
    fn acquire_now(
        &self,
        buckets: &[BucketRequest],
        now_ns: u64,
    ) -> Option<Result<Acquired, StoreError>> {
        // With the breaker open, answer locally and at once.
        (!self.redis.is_up()).then(|| Ok(self.local.acquire(buckets, now_ns)))
    }

    fn acquire_later(&self, buckets: Vec<BucketRequest>, now_ns: u64) -> StoreFuture<'_> {
        Box::pin(async move {
            match self.shared(&buckets).await {
                Some(answer) => Ok(answer),
                // Redis failed during this call (the breaker is now open): local state answers.
                None => Ok(self.local.acquire(&buckets, now_ns)),
            }
        })
    }

    fn tracked_keys(&self) -> usize {
        self.local.tracked_keys()
    }

    fn backend(&self) -> &'static str {
        if self.redis.is_up() && self.redis.is_cluster() {
            "cluster"
        } else if self.redis.is_up() {
            "redis"
        } else {
            "degraded"
        }
    }
}
