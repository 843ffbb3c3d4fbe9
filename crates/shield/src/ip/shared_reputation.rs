//! Reputation kept in Redis, so every instance sees one score per address and scores survive
//! restarts (`REDIS_URL` set).
//!
//! Each address has one Redis hash, `{prefix}rep:{keyed hash of the address}` (Redis never
//! holds the address itself), with the score, when it was settled, the blocks so far, when
//! the current block ends, and whether a penalty feed has counted. It expires
//! `SECURITY_DATA_RETENTION` after its last change (or after its block ends).
//!
//! A penalty runs one Lua script that brings the record up to date (probation after a block,
//! recovery towards the address's ceiling), subtracts the points and, at or below the
//! threshold, starts a block: the same rules as [`super::reputation`], applied atomically in
//! one place, so two instances penalising one address at once neither lose a penalty nor
//! both block it. The answer replaces the instance's local record; a block it started goes
//! on the blacklist, which Redis shares with every instance ([`super::sync`]).
//!
//! Penalties leave the event sink through a bounded queue (10,000) to one background task:
//! the request path never waits on Redis for reputation. When Redis is down or the queue is
//! full, the local table decides alone (and the penalty is not replayed: the score in Redis
//! is a little kinder than it should be, never harsher).

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::mpsc;

use super::reputation::{Reputation, SharedState, PROBATION, RECOVERY_PER_MINUTE};
use crate::clock::Clock;
use crate::state::redis::{RedisError, RedisState};

/// Penalties waiting for Redis, at most.
const QUEUE: usize = 10_000;

/// Settles a record, applies a penalty and maybe starts a block. Mirrors `Record::settle` and
/// `Reputation::penalise` in Rust (a test holds the two to the same answers).
///
/// KEYS[1]: the record. ARGV: points, now (ms), threshold, first block (ms), probation
/// points, ceiling, recovery per ms, retention (ms), once (1 for a penalty feed).
/// Returns nil for a read (points 0) of a missing record, else
/// {score as text, blocks, blocked until (ms), length of a block started now (ms)}.
const SCRIPT: &str = r#"
local points = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local threshold = tonumber(ARGV[3])
local block_ms = tonumber(ARGV[4])
local probation = tonumber(ARGV[5])
local ceiling = tonumber(ARGV[6])
local recovery = tonumber(ARGV[7])
local retention = tonumber(ARGV[8])
local once = ARGV[9] == '1'
local r = redis.call('HMGET', KEYS[1], 's', 't', 'b', 'u', 'f')
if not r[1] and points == 0 then
  return false
end
local s = tonumber(r[1]) or ceiling
local t = tonumber(r[2]) or now
local b = tonumber(r[3]) or 0
local u = tonumber(r[4]) or 0
local f = r[5] == '1'
if u ~= 0 and now >= u then
  u = 0
  if s < threshold + probation then s = threshold + probation end
  if t < now then t = now end
end
if u == 0 and s < ceiling and now > t then
  s = math.min(ceiling, s + (now - t) * recovery)
end
if now > t then t = now end
local started = 0
if points > 0 and u == 0 and not (once and f) then
  s = math.max(0, s - points)
  if s <= threshold then
    started = block_ms * 2 ^ math.min(b, 20)
    b = b + 1
    u = now + started
  end
end
if once and points > 0 then f = true end
redis.call('HSET', KEYS[1], 's', string.format('%.6f', s), 't', string.format('%.0f', t),
  'b', b, 'u', string.format('%.0f', u), 'f', f and '1' or '0')
local expire = retention
if u > now then expire = expire + (u - now) end
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', expire))
return {string.format('%.6f', s), b, string.format('%.0f', u), string.format('%.0f', started)}
"#;

struct Penalty {
    ip: IpAddr,
    points: f64,
    ceiling: f64,
    once: bool,
}

/// Applies reputation penalties in Redis.
pub struct SharedReputation {
    redis: Arc<RedisState>,
    script: redis::Script,
    queue: mpsc::Sender<Penalty>,
    /// Penalties queued and not yet answered.
    in_queue: AtomicUsize,
    threshold: f64,
    block_ms: u64,
    retention_ms: u64,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for SharedReputation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedReputation")
            .field("retention_ms", &self.retention_ms)
            .finish_non_exhaustive()
    }
}

impl SharedReputation {
    /// Moves `reputation` onto Redis: from now on its penalties are applied there.
    pub fn start(
        redis: Arc<RedisState>,
        reputation: &Arc<Reputation>,
        retention_ms: u64,
        clock: Arc<dyn Clock>,
    ) -> Arc<Self> {
        let (queue, mut pending) = mpsc::channel::<Penalty>(QUEUE);
        let shared = Arc::new(SharedReputation {
            redis: redis.clone(),
            script: redis::Script::new(SCRIPT),
            queue,
            in_queue: AtomicUsize::new(0),
            threshold: reputation.threshold(),
            block_ms: reputation.block_ms(),
            retention_ms: retention_ms.max(1),
            clock,
        });
        reputation.share_through(shared.clone());
        // The task holds both weakly: a dropped system ends it.
        let weak_reputation: Weak<Reputation> = Arc::downgrade(reputation);
        let weak_shared = Arc::downgrade(&shared);
        redis.runtime().spawn(async move {
            while let Some(penalty) = pending.recv().await {
                let (Some(reputation), Some(shared)) =
                    (weak_reputation.upgrade(), weak_shared.upgrade())
                else {
                    return;
                };
                match shared.apply(&penalty).await {
                    Ok(Some(state)) => reputation.adopt(penalty.ip, state),
                    Ok(None) | Err(_) => reputation.decide_locally(penalty.ip),
                }
                shared.in_queue.fetch_sub(1, Ordering::AcqRel);
            }
        });
        shared
    }

    /// Queues a penalty for Redis. False when Redis is down or the queue is full: the
    /// caller decides locally.
    pub(crate) fn submit(&self, ip: IpAddr, points: f64, ceiling: f64, once: bool) -> bool {
        if !self.redis.is_up() {
            return false;
        }
        self.in_queue.fetch_add(1, Ordering::AcqRel);
        let sent = self
            .queue
            .try_send(Penalty {
                ip,
                points,
                ceiling,
                once,
            })
            .is_ok();
        if !sent {
            self.in_queue.fetch_sub(1, Ordering::AcqRel);
        }
        sent
    }

    /// Waits (at most `limit`) until every queued penalty has been answered; true if so.
    /// For an orderly shutdown, and for tests.
    pub async fn settled(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while self.in_queue.load(Ordering::Acquire) > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        true
    }

    /// The record Redis holds for `ip`, brought up to date (`None` if it has none).
    pub async fn fetch(&self, ip: IpAddr, ceiling: f64) -> Result<Option<SharedState>, RedisError> {
        self.apply(&Penalty {
            ip,
            points: 0.0,
            ceiling,
            once: false,
        })
        .await
    }

    async fn apply(&self, penalty: &Penalty) -> Result<Option<SharedState>, RedisError> {
        let mut connection = self.redis.connection()?;
        let key = self
            .redis
            .key(format_args!("rep:{}", self.redis.hashed_ip(penalty.ip)));
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(key)
            .arg(penalty.points)
            .arg(self.clock.unix_ms())
            .arg(self.threshold)
            .arg(self.block_ms)
            .arg(PROBATION)
            .arg(penalty.ceiling)
            .arg(RECOVERY_PER_MINUTE / 60_000.0)
            .arg(self.retention_ms)
            .arg(if penalty.once { "1" } else { "0" });
        let reply: Option<(String, u32, String, String)> = self
            .redis
            .call(invocation.invoke_async(&mut connection))
            .await?;
        let Some((score, blocks, until, started)) = reply else {
            return Ok(None);
        };
        let number = |text: &str| text.parse::<f64>().unwrap_or(0.0);
        Ok(Some(SharedState {
            score: number(&score),
            blocks,
            blocked_until_ms: number(&until) as u64,
            new_block_ms: number(&started) as u64,
        }))
    }
}
