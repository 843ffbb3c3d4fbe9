//! The two sides of `scripts/overload.sh`, the overload benchmark:
//!
//! ```sh
//! # an upstream that works on 32 requests at once, 20 ms each (more wait inside it)
//! cargo run --release -p mcp-shield-gateway --example overload -- upstream --listen 127.0.0.1:3001 --capacity 32 --service-ms 20
//! # 40 steady clients (one address each, through X-Forwarded-For) calling a tool twice a second
//! cargo run --release -p mcp-shield-gateway --example overload -- clients --target http://127.0.0.1:8080/mcp --clients 40 --rate 2 --seconds 30
//! ```
//!
//! The upstream answers `GET /__stats` with what it has had in flight (waiting or working)
//! since the last call: the most at once and the 99th percentile of samples taken every
//! millisecond. The clients print one JSON line: sent, served (200), p50 and p99 latency.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::Router;
use clap::{Parser, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A capacity-limited MCP-ish upstream.
    Upstream {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long, default_value_t = 32)]
        capacity: usize,
        #[arg(long, default_value_t = 20)]
        service_ms: u64,
    },
    /// Steady clients at a fixed rate each.
    Clients {
        #[arg(long)]
        target: String,
        #[arg(long, default_value_t = 40)]
        clients: u32,
        /// Requests per second per client.
        #[arg(long, default_value_t = 2.0)]
        rate: f64,
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// First three octets of the clients' addresses (X-Forwarded-For).
        #[arg(long, default_value = "10.77.0")]
        prefix: String,
    },
}

#[derive(Default)]
struct Load {
    now: AtomicUsize,
    most: AtomicUsize,
    served: AtomicUsize,
    samples: Mutex<Vec<u32>>,
}

/// One request in the upstream, from arrival until its handler ends or is dropped.
struct InFlight(Arc<Load>);

impl InFlight {
    fn enter(load: Arc<Load>) -> InFlight {
        let n = load.now.fetch_add(1, Ordering::Relaxed) + 1;
        load.most.fetch_max(n, Ordering::Relaxed);
        InFlight(load)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn upstream(listen: SocketAddr, capacity: usize, service: Duration) -> anyhow::Result<()> {
    let load = Arc::new(Load::default());
    let workers = Arc::new(tokio::sync::Semaphore::new(capacity));
    // What is in flight, sampled every millisecond (bounded: the stats call empties it).
    let sampler = load.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        loop {
            tick.tick().await;
            let n = sampler.now.load(Ordering::Relaxed) as u32;
            let mut samples = sampler.samples.lock().unwrap_or_else(|e| e.into_inner());
            if samples.len() < 10_000_000 {
                samples.push(n);
            }
        }
    });
    let stats = load.clone();
    let app = Router::new()
        .route(
            "/__stats",
            axum::routing::get(move || {
                let load = stats.clone();
                async move {
                    let mut samples = std::mem::take(
                        &mut *load.samples.lock().unwrap_or_else(|e| e.into_inner()),
                    );
                    samples.sort_unstable();
                    let p99 = samples
                        .get(samples.len().saturating_sub(1) * 99 / 100)
                        .copied()
                        .unwrap_or(0);
                    let most = load
                        .most
                        .swap(load.now.load(Ordering::Relaxed), Ordering::Relaxed);
                    axum::Json(serde_json::json!({
                        "max_in_flight": most,
                        "p99_in_flight": p99,
                        "served": load.served.swap(0, Ordering::Relaxed),
                    }))
                }
            }),
        )
        .fallback(move |_body: Bytes| {
            let load = load.clone();
            let workers = workers.clone();
            async move {
                // Counted out when the handler ends or is dropped (its client went away).
                let _in_flight = InFlight::enter(load.clone());
                if let Ok(_worker) = workers.acquire().await {
                    tokio::time::sleep(service).await;
                }
                load.served.fetch_add(1, Ordering::Relaxed);
                axum::Json(serde_json::json!({
                    "jsonrpc": "2.0", "id": 1,
                    "result": {"content": [{"type": "text", "text": "done"}]}
                }))
            }
        });
    let listener = tokio::net::TcpListener::bind(listen).await?;
    eprintln!("upstream on {listen}: capacity {capacity}, {service:?} each");
    axum::serve(listener, app).await?;
    Ok(())
}

async fn clients(
    target: String,
    count: u32,
    rate: f64,
    seconds: u64,
    prefix: String,
) -> anyhow::Result<()> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(count as usize)
        .build_http();
    let until = Instant::now() + Duration::from_secs(seconds);
    let period = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let mut tasks = Vec::new();
    for i in 0..count {
        let client = client.clone();
        let target = target.clone();
        let address = format!("{prefix}.{}", i % 250 + 1);
        tasks.push(tokio::spawn(async move {
            let mut results: Vec<(u16, Duration)> = Vec::new();
            // Spread the clients over the period so they do not fire together.
            tokio::time::sleep(period.mul_f64(f64::from(i) / f64::from(count.max(1)))).await;
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while Instant::now() < until {
                tick.tick().await;
                let body = format!(
                    r#"{{"jsonrpc":"2.0","id":{},"method":"tools/call","params":{{"name":"search","arguments":{{"query":"report {i}"}}}}}}"#,
                    results.len()
                );
                let request = http::Request::post(&target)
                    .header("content-type", "application/json")
                    .header("accept", "application/json, text/event-stream")
                    .header("x-forwarded-for", &address)
                    .body(Full::new(Bytes::from(body)));
                let Ok(request) = request else { break };
                let started = Instant::now();
                let status = match client.request(request).await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let _ = response.into_body().collect().await;
                        status
                    }
                    Err(_) => 0,
                };
                results.push((status, started.elapsed()));
            }
            results
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await?);
    }
    let sent = all.len();
    let ok = all.iter().filter(|(s, _)| *s == 200).count();
    let mut latencies: Vec<f64> = all
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, d)| d.as_secs_f64() * 1000.0)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: usize| {
        latencies
            .get(latencies.len().saturating_sub(1) * p / 100)
            .copied()
            .unwrap_or(0.0)
    };
    let mut statuses = std::collections::BTreeMap::new();
    for (s, _) in &all {
        *statuses.entry(s.to_string()).or_insert(0u64) += 1;
    }
    println!(
        "{}",
        serde_json::json!({
            "sent": sent, "served": ok,
            "p50_ms": (pct(50) * 10.0).round() / 10.0,
            "p99_ms": (pct(99) * 10.0).round() / 10.0,
            "statuses": statuses,
        })
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Upstream {
            listen,
            capacity,
            service_ms,
        } => upstream(listen, capacity, Duration::from_millis(service_ms)).await,
        Command::Clients {
            target,
            clients: count,
            rate,
            seconds,
            prefix,
        } => clients(target, count, rate, seconds, prefix).await,
    }
}
