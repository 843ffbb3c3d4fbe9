//! Two gateways on a real Redis Cluster (issue 21): three masters started by the test
//! (`redis-server --cluster-enabled yes`, joined with `redis-cli --cluster create`), one
//! bucket shared across both gateways, a block propagated, and a master killed with no
//! request failing.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{Gateway, TOKEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Three cluster masters on free ports, each in a folder of its own; killed on drop.
struct Cluster {
    nodes: Vec<(Child, u16)>,
    dir: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

impl Cluster {
    fn start() -> Cluster {
        let dir = std::env::temp_dir().join(format!("mcp-shield-cluster-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("folder");
        let mut nodes = Vec::new();
        for _ in 0..3 {
            // The cluster bus listens on port + 10000: both must be free.
            let port = loop {
                let port = free_port();
                if port < 55000 && std::net::TcpListener::bind(("127.0.0.1", port + 10000)).is_ok()
                {
                    break port;
                }
            };
            let node_dir = dir.join(port.to_string());
            std::fs::create_dir_all(&node_dir).expect("node folder");
            let child = Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "1000",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .current_dir(&node_dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server on the PATH");
            nodes.push((child, port));
        }
        for (_, port) in &nodes {
            let started = Instant::now();
            while std::net::TcpStream::connect(("127.0.0.1", *port)).is_err() {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "redis-server did not start"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let mut create = Command::new("redis-cli");
        create.args(["--cluster", "create"]);
        for (_, port) in &nodes {
            create.arg(format!("127.0.0.1:{port}"));
        }
        let out = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli on the PATH");
        assert!(
            out.status.success(),
            "cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Cluster { nodes, dir };
        let started = Instant::now();
        while !cluster.healthy() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "cluster not ok"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster
    }

    fn cli(&self, port: u16, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn healthy(&self) -> bool {
        self.nodes.iter().all(|(_, port)| {
            self.cli(*port, &["cluster", "info"])
                .contains("cluster_state:ok")
        })
    }

    fn seeds(&self) -> String {
        self.nodes
            .iter()
            .map(|(_, port)| format!("redis://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Kills the node that holds `key`'s slot; returns its port.
    fn kill_holder_of(&mut self, key: &str) -> u16 {
        let slot: u16 = self
            .cli(self.nodes[0].1, &["cluster", "keyslot", key])
            .trim()
            .parse()
            .expect("slot");
        let shards = self.cli(self.nodes[0].1, &["cluster", "slots"]);
        // `cluster slots`: start, end, host, port, id per range, one value per line.
        let lines: Vec<&str> = shards.lines().map(str::trim).collect();
        let mut holder = None;
        for window in lines.windows(4) {
            if let (Ok(start), Ok(end)) = (window[0].parse::<u16>(), window[1].parse::<u16>()) {
                if window[2] == "127.0.0.1" && (start..=end).contains(&slot) {
                    holder = window[3].parse::<u16>().ok();
                }
            }
        }
        let port = holder.expect("the slot's holder");
        let index = self
            .nodes
            .iter()
            .position(|(_, p)| *p == port)
            .expect("a node of ours");
        let (mut child, _) = self.nodes.remove(index);
        let _ = child.kill();
        let _ = child.wait();
        port
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (child, _) in &mut self.nodes {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A plain upstream that answers 200 to everything.
async fn upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().fallback(|| async { "upstream" });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// One request from `from` (a loopback address): its status.
async fn status(addr: SocketAddr, from: &str, method: &str, path: &str, body: &str) -> u16 {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{from}:0").parse().expect("addr"))
        .expect("bind source");
    let mut stream = socket.connect(addr).await.expect("connect");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut bytes = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut bytes)).await;
    String::from_utf8_lossy(&bytes)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_buckets_and_blocks_on_a_cluster_and_survive_a_dead_master() {
    let mut cluster = Cluster::start();
    let up = upstream().await;
    let seeds = cluster.seeds();
    let env = [
        ("SECURITY_ENABLE_RATE_LIMITING", "true"),
        ("SECURITY_ENABLE_IP_MANAGEMENT", "true"),
        ("SECURITY_RATE_LIMIT_PER_IP_CAPACITY", "10"),
        ("SECURITY_RATE_LIMIT_PER_IP_REFILL_RATE", "0.001"),
        ("SECURITY_REDIS_CLUSTER_NODES", seeds.as_str()),
        ("SECURITY_REDIS_TIMEOUT_MS", "200"),
        ("SECURITY_IP_HASH_KEY", "cluster-test-key"),
    ];
    let one = Gateway::serve(&format!("http://{up}"), "127.0.0.1:0", &env);
    let two = Gateway::serve(&format!("http://{up}"), "127.0.0.1:0", &env);
    one.assert_logged("Redis connected");
    two.assert_logged("Redis connected");

    // One bucket across both gateways: exactly the capacity passes.
    let mut passed = 0;
    for i in 0..30 {
        let gateway = if i % 2 == 0 { &one } else { &two };
        match status(gateway.addr, "127.0.0.1", "GET", "/", "").await {
            200 => passed += 1,
            429 => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(passed, 10, "per-IP capacity 10 across both gateways");

    // A block made on one gateway reaches the other within milliseconds.
    assert_eq!(
        status(
            one.addr,
            "127.0.0.1",
            "POST",
            "/api/security/ip/blacklist",
            r#"{"ip": "127.0.0.3"}"#
        )
        .await,
        200
    );
    let started = Instant::now();
    while status(two.addr, "127.0.0.3", "GET", "/", "").await != 403 {
        assert!(
            started.elapsed() < Duration::from_millis(1000),
            "the block did not reach the other gateway"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let status_doc = {
        let mut stream = tokio::net::TcpStream::connect(one.addr)
            .await
            .expect("connect");
        stream
            .write_all(
                format!("GET /api/security/status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .expect("write");
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes).await;
        String::from_utf8_lossy(&bytes).into_owned()
    };
    assert!(
        status_doc.contains(r#""backend":"cluster""#),
        "{status_doc}"
    );

    // The master holding the buckets dies: no request fails; each is answered (200 or 429)
    // from shared or, while the cluster is broken, local state.
    cluster.kill_holder_of("mcp-shield:{rl}x");
    let mut failures = Vec::new();
    let mut answered = 0;
    let until = Instant::now() + Duration::from_secs(3);
    let mut n = 0u32;
    while Instant::now() < until {
        n += 1;
        let from = format!("127.0.1.{}", n % 200 + 1);
        let gateway = if n % 2 == 0 { &one } else { &two };
        match status(gateway.addr, &from, "GET", "/", "").await {
            200 | 429 => answered += 1,
            other => failures.push(other),
        }
    }
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    assert!(answered > 50, "only {answered} requests answered in 3 s");
    one.assert_logged("Redis connection failed, using local rate limiting");
}
