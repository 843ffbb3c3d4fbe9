//! Memory per tracked rate-limit key, measured as the process's resident set (Linux
//! `/proc/self/statm`). Alone in its own test binary so nothing else allocates meanwhile.
//!
//! The bound documented in docs/BENCHMARKS.md: at most 128 bytes per tracked key (nginx's
//! `limit_req` figure on 64-bit), and a store capped at 1,000,000 keys stays there however
//! many distinct addresses arrive.

use std::net::{IpAddr, Ipv4Addr};

use mcp_shield::rate_limit::store::{BucketKey, BucketRequest, Subject};
use mcp_shield::rate_limit::{MemoryStore, Quota, RateLimitStore};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("resident pages");
    pages * 4096
}

fn bucket(i: u32) -> BucketRequest {
    BucketRequest {
        key: BucketKey {
            scope: 1,
            subject: Subject::Ip(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))),
        },
        // One token per 1000 s: every bucket stays in debt (none is full, none may be
        // dropped for free), the worst case for memory.
        quota: Quota::new(10, 0.001),
        cost: 1,
    }
}

#[test]
fn a_million_keys_fit_in_128_bytes_each_and_the_cap_holds() {
    const KEYS: u32 = 1_000_000;
    let store = MemoryStore::new(KEYS as usize);
    let now = 1_000_000_000;
    let before = rss_bytes();
    for i in 0..KEYS {
        store.acquire(&[bucket(i)], now);
    }
    let after = rss_bytes();
    // The cap is enforced per shard (max_keys / 64 each) and a full shard frees an eighth of
    // itself at once, so with every bucket in debt the table holds between 7/8 of the cap and
    // the cap.
    let tracked = store.tracked_keys();
    assert!(
        tracked <= KEYS as usize && tracked >= KEYS as usize * 7 / 8,
        "{tracked} keys"
    );
    let per_key = (after.saturating_sub(before)) as f64 / tracked as f64;
    println!(
        "rate-limit memory: {per_key:.1} bytes per tracked key ({} MiB for {tracked} keys)",
        (after - before) >> 20
    );
    assert!(per_key <= 128.0, "{per_key:.1} bytes per key");

    // Half a million more distinct addresses: the cap holds and memory does not grow past
    // the documented bound.
    for i in KEYS..KEYS + KEYS / 2 {
        store.acquire(&[bucket(i)], now);
    }
    let flooded = rss_bytes();
    assert!(
        store.tracked_keys() <= KEYS as usize,
        "{} keys",
        store.tracked_keys()
    );
    let total_per_key = (flooded.saturating_sub(before)) as f64 / f64::from(KEYS);
    // Measured against the cap: the memory bound of a full table.
    println!(
        "after 1,500,000 distinct keys: {} tracked, {total_per_key:.1} bytes per capacity key",
        store.tracked_keys()
    );
    assert!(
        total_per_key <= 128.0,
        "{total_per_key:.1} bytes per key after the flood"
    );
}
