//! Cost of one security decision with 100,000 CIDRs on the deny list.
//!
//! `cargo bench -p mcp-shield --bench pipeline`
//!
//! - `prefix_table/lookup_*`: the longest-prefix match alone.
//! - `layer/*`: one request through the tower layer around a service that answers at once:
//!   building `RequestFacts`, the whitelist and deny-list checks, rendering (403 for a
//!   blocked client) and `observe`. The future is polled once with a no-op waker, so no
//!   runtime cost is included; everything in it completes without waiting.

use std::convert::Infallible;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use axum::body::Body;
use axum::extract::ConnectInfo;
use criterion::{criterion_group, criterion_main, Criterion};
use futures_util::FutureExt;
use http::{Request, Response};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use mcp_shield::config::{self, ConfigSources};
use mcp_shield::ip::PrefixTable;
use mcp_shield::{ConfigOverrides, SecuritySystem};
use tower::{Service, ServiceExt};

/// A small deterministic generator (SplitMix64), so every run loads the same networks.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// 100,000 networks: 90 % IPv4 with prefixes /8 to /32 weighted toward /24 and /32 as real
/// block lists are, 10 % IPv6 /32 to /128. None of them covers 192.0.2.0/24 (the client that
/// passes) and none covers 100.64.0.0/10 apart from the one the blocked client is in.
fn networks() -> Vec<IpNet> {
    let mut rng = SplitMix(42);
    let v4_lengths = [
        8u8, 12, 16, 16, 20, 22, 24, 24, 24, 24, 28, 32, 32, 32, 32, 32,
    ];
    let v6_lengths = [32u8, 48, 56, 64, 64, 64, 128];
    let mut out = Vec::with_capacity(100_000);
    while out.len() < 100_000 {
        let r = rng.next();
        let net = if out.len() % 10 == 9 {
            let len = v6_lengths[(r % v6_lengths.len() as u64) as usize];
            let addr = (u128::from(rng.next()) << 64 | u128::from(rng.next())) | (0x2 << 124);
            IpNet::V6(
                Ipv6Net::new(Ipv6Addr::from(addr), len)
                    .expect("len")
                    .trunc(),
            )
        } else {
            let len = v4_lengths[(r % v4_lengths.len() as u64) as usize];
            let addr = Ipv4Addr::from((rng.next() >> 32) as u32);
            IpNet::V4(Ipv4Net::new(addr, len).expect("len").trunc())
        };
        let reserved = |ip: IpAddr| match ip {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                (o[0] == 192 && o[1] == 0 && o[2] == 2)
                    || (o[0] == 100 && (64..128).contains(&o[1]))
            }
            IpAddr::V6(_) => false,
        };
        let passing: IpAddr = "192.0.2.10".parse().expect("ip");
        let blocked: IpAddr = "100.64.0.1".parse().expect("ip");
        if net.contains(&passing) || net.contains(&blocked) || reserved(net.network()) {
            continue;
        }
        out.push(net);
    }
    out
}

fn bench_prefix_table(c: &mut Criterion) {
    let mut table = PrefixTable::new();
    for net in networks() {
        table.insert(net, ());
    }
    let miss: IpAddr = "192.0.2.10".parse().expect("ip");
    let hit = table
        .iter()
        .next()
        .map(|(n, _)| n.addr())
        .expect("an entry");
    let v6_miss: IpAddr = "2001:db8::1".parse().expect("ip");
    let mut group = c.benchmark_group("prefix_table");
    group.bench_function("lookup_v4_miss_100k", |b| {
        b.iter(|| table.longest_match(black_box(miss)).is_some())
    });
    group.bench_function("lookup_v4_hit_100k", |b| {
        b.iter(|| table.longest_match(black_box(hit)).is_some())
    });
    group.bench_function("lookup_v6_miss_100k", |b| {
        b.iter(|| table.longest_match(black_box(v6_miss)).is_some())
    });
    group.finish();
}

fn request(from: [u8; 4], body: Option<&'static str>) -> Request<Body> {
    let builder = Request::builder()
        .uri("/mcp")
        .header("host", "localhost")
        .header("user-agent", "mcp-client/1.0")
        .header("accept", "application/json, text/event-stream");
    let mut request = match body {
        Some(json) => builder
            .method("POST")
            .header("content-type", "application/json")
            .body(Body::from(json)),
        None => builder.method("GET").body(Body::empty()),
    }
    .expect("request");
    let peer = SocketAddr::from((from, 40000));
    request.extensions_mut().insert(ConnectInfo(peer));
    request
}

/// One request through the service, polled once: everything it does is ready at once.
fn run<S>(service: &mut S, req: Request<Body>) -> Response<Body>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    let ready = service
        .ready()
        .now_or_never()
        .expect("ready at once")
        .expect("infallible");
    let future = ready.call(req);
    future
        .now_or_never()
        .expect("completes without waiting")
        .expect("infallible")
}

fn bench_layer(c: &mut Criterion) {
    let config = config::load(ConfigSources {
        overrides: ConfigOverrides::new().set("ADMIN_TOKEN", "bench-token-bench-token"),
        ..ConfigSources::default()
    })
    .expect("config");
    let security = SecuritySystem::from_config(config).expect("system");
    for net in networks() {
        security
            .ip_lists()
            .add(mcp_shield::ip::ListKind::Blacklist, net, "bench", None)
            .expect("add");
    }
    security
        .ip_lists()
        .add(
            mcp_shield::ip::ListKind::Blacklist,
            "100.64.0.0/10".parse().expect("net"),
            "bench",
            None,
        )
        .expect("add");
    let inner = tower::service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::empty()))
    });
    let service = tower::Layer::layer(&security.layer(), inner);
    let tool_call = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search","arguments":{"query":"quarterly revenue by region","limit":10}}}"#;

    let mut group = c.benchmark_group("layer");
    // The same request and service without the layer: what the layer adds is the difference.
    group.bench_function("get_without_layer_baseline", |b| {
        let mut s = inner;
        b.iter(|| black_box(run(&mut s, request([192, 0, 2, 10], None))).status())
    });
    group.bench_function("mcp_tools_call_without_layer_baseline", |b| {
        let mut s = inner;
        b.iter(|| black_box(run(&mut s, request([192, 0, 2, 10], Some(tool_call)))).status())
    });
    group.bench_function("get_allowed_100k_cidrs", |b| {
        let mut s = service.clone();
        b.iter(|| black_box(run(&mut s, request([192, 0, 2, 10], None))).status())
    });
    group.bench_function("get_blocked_100k_cidrs", |b| {
        let mut s = service.clone();
        b.iter(|| black_box(run(&mut s, request([100, 64, 0, 1], None))).status())
    });
    group.bench_function("mcp_tools_call_allowed_100k_cidrs", |b| {
        let mut s = service.clone();
        b.iter(|| black_box(run(&mut s, request([192, 0, 2, 10], Some(tool_call)))).status())
    });
    // The decision alone: facts built once, then the whitelist and the deny list consulted.
    let facts_for = |from: [u8; 4]| {
        let (mut parts, _) = request(from, None).into_parts();
        security.request_facts(&mut parts, bytes::Bytes::new(), Some(IpAddr::from(from)))
    };
    let allowed = facts_for([192, 0, 2, 10]);
    let blocked = facts_for([100, 64, 0, 1]);
    group.bench_function("decide_allowed_100k_cidrs", |b| {
        b.iter(|| {
            security
                .decide(black_box(&allowed))
                .now_or_never()
                .expect("ready")
        })
    });
    group.bench_function("decide_blocked_100k_cidrs", |b| {
        b.iter(|| {
            security
                .decide(black_box(&blocked))
                .now_or_never()
                .expect("ready")
        })
    });
    // The same decision with rate limiting on (per-IP, global and the default initialize rule;
    // capacities too large to run out during the benchmark).
    let limited = SecuritySystem::from_config(
        config::load(ConfigSources {
            overrides: ConfigOverrides::new()
                .set("ADMIN_TOKEN", "bench-token-bench-token")
                .set("ENABLE_RATE_LIMITING", true)
                .set("RATE_LIMIT_GLOBAL_CAPACITY", 1u64 << 40)
                .set("RATE_LIMIT_GLOBAL_REFILL_RATE", 1e9)
                .set("RATE_LIMIT_PER_IP_CAPACITY", 1u64 << 40)
                .set("RATE_LIMIT_PER_IP_REFILL_RATE", 1e9),
            ..ConfigSources::default()
        })
        .expect("config"),
    )
    .expect("system");
    let limited_facts = {
        let (mut parts, _) = request([192, 0, 2, 10], None).into_parts();
        limited.request_facts(
            &mut parts,
            bytes::Bytes::new(),
            Some(IpAddr::from([192, 0, 2, 10])),
        )
    };
    group.bench_function("decide_allowed_rate_limited", |b| {
        b.iter(|| {
            limited
                .decide(black_box(&limited_facts))
                .now_or_never()
                .expect("ready")
        })
    });
    let mut limited_service = tower::Layer::layer(&limited.layer(), inner);
    group.bench_function("get_allowed_rate_limited", |b| {
        b.iter(|| black_box(run(&mut limited_service, request([192, 0, 2, 10], None))).status())
    });
    group.bench_function("build_request_only", |b| {
        b.iter(|| black_box(request([192, 0, 2, 10], Some(tool_call))))
    });
    group.finish();
}

fn bench_feeds(c: &mut Criterion) {
    // 500,000 networks in one feed file, loaded the way the gateway loads it.
    let dir = std::env::temp_dir().join(format!("mcp-shield-bench-feeds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("feed.netset");
    let mut rng = SplitMix(7);
    let mut text = String::new();
    for _ in 0..500_000 {
        let r = rng.next();
        let len = [16u8, 20, 22, 24, 24, 24, 28, 32][(r % 8) as usize];
        let net = Ipv4Net::new(Ipv4Addr::from((rng.next() >> 32) as u32), len)
            .expect("len")
            .trunc();
        text.push_str(&format!("{net}\n"));
    }
    std::fs::write(&path, text).expect("write");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let feeds = runtime.block_on(async {
        let feeds = mcp_shield::ip::feeds::Feeds::new(&[format!("bench={}", path.display())])
            .expect("feeds");
        feeds.refresh_all().await;
        feeds
    });
    let listed = {
        let text = std::fs::read_to_string(&path).expect("read");
        let first = text.lines().next().expect("a line").to_string();
        first.parse::<IpNet>().expect("net").addr()
    };
    let miss: IpAddr = (1u32..)
        .map(|i| IpAddr::V4(Ipv4Addr::from(i.wrapping_mul(2_654_435_761))))
        .find(|ip| feeds.refusing_feed(*ip).is_none())
        .expect("an address on no list");
    let mut group = c.benchmark_group("feeds");
    group.bench_function("lookup_miss_500k", |b| {
        b.iter(|| feeds.refusing_feed(black_box(miss)).is_some())
    });
    group.bench_function("lookup_hit_500k", |b| {
        b.iter(|| feeds.refusing_feed(black_box(listed)).is_some())
    });
    group.finish();
    std::fs::remove_dir_all(&dir).ok();
}

criterion_group!(benches, bench_prefix_table, bench_layer, bench_feeds);
criterion_main!(benches);
