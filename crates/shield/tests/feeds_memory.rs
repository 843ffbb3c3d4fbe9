//! Memory taken by 500,000 feed networks, as the process's resident set grows loading them
//! (alone in this test binary).

use mcp_shield::ip::feeds::Feeds;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u64>().ok())
        .expect("pages")
        * 4096
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_a_million_feed_networks() {
    let dir = std::env::temp_dir().join(format!("mcp-shield-feedmem-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("big.netset");
    let mut text = String::with_capacity(500_000 * 20);
    let mut state: u64 = 42;
    for _ in 0..500_000 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let addr = (state >> 32) as u32;
        let len = [16u32, 20, 22, 24, 24, 24, 28, 32][(state >> 29) as usize % 8];
        let net = addr & (u32::MAX << (32 - len));
        text.push_str(&format!(
            "{}.{}.{}.{}/{len}\n",
            net >> 24,
            (net >> 16) & 255,
            (net >> 8) & 255,
            net & 255
        ));
    }
    std::fs::write(&path, text).expect("write");
    let before = rss_bytes();
    let feeds = Feeds::new(&[format!("big={}", path.display())]).expect("feeds");
    assert_eq!(feeds.refresh_all().await, 0);
    let after = rss_bytes();
    let entries = feeds.status()[0].entries;
    assert!(entries >= 490_000, "{entries}");
    let per_entry = after.saturating_sub(before) as f64 / entries as f64;
    println!(
        "feeds memory: {} MiB for {entries} networks, {per_entry:.0} bytes each (list kept for refresh checks + lookup table)",
        (after - before) >> 20
    );
    assert!(per_entry < 200.0, "{per_entry}");
    std::fs::remove_dir_all(&dir).ok();
}
