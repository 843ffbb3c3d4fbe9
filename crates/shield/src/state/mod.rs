//! Where shared state lives. In memory by default (each component keeps its own bounded
//! tables); with `REDIS_URL`, in Redis through [`redis::RedisState`], which every component
//! that shares state goes through, so there is one breaker and one reconnection for all.

pub mod redis;
