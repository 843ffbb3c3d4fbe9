//! `mcp-shield`: the gateway binary. A thin shell over the `mcp_shield` library: it reads the
//! configuration, installs logging, and serves the security layer in front of a reverse proxy
//! (`serve`) or the built-in demo MCP server (`demo`).

mod demo;
mod proxy;
mod scan;
mod server;
mod tls;

/// mimalloc instead of the system allocator: see the comment in Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use axum::Router;
use clap::{Parser, Subcommand};
use mcp_shield::config::{self, Config, ConfigSources, LogFormat};
use mcp_shield::{ConfigOverrides, SecuritySystem};
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(
    name = "mcp-shield",
    version,
    about = "A security gateway for MCP servers and HTTP APIs"
)]
struct Cli {
    /// TOML configuration file (names as the environment's, lower case, without SECURITY_).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Set one setting, above the file and the environment: NAME=VALUE, where NAME is an
    /// environment name (SECURITY_RATE_LIMIT_PER_IP_CAPACITY) or a TOML path
    /// (rate_limit.per_ip_capacity). Repeatable.
    #[arg(long = "set", global = true, value_name = "NAME=VALUE")]
    set: Vec<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway with every protection on, in front of a built-in demo MCP server.
    Demo {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
    /// Run the gateway in front of an upstream MCP server or HTTP API.
    Serve {
        /// The upstream base URL (http(s)://host[:port][/path]).
        #[arg(long)]
        upstream: String,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// HTTPS on the listener: the PEM certificate chain (setting SECURITY_TLS_CERT_FILE).
        /// Re-read on SIGHUP.
        #[arg(long, value_name = "FILE")]
        tls_cert: Option<String>,
        /// The PEM private key of --tls-cert (setting SECURITY_TLS_KEY_FILE).
        #[arg(long, value_name = "FILE")]
        tls_key: Option<String>,
        /// Serve the admin API and /metrics on this address only (setting
        /// SECURITY_ADMIN_LISTEN); the public listener then forwards every path upstream.
        #[arg(long, value_name = "ADDR")]
        admin_listen: Option<String>,
        /// For benchmarks only: the proxy engine without the security layer or the admin
        /// API (scripts/load.sh's "engine alone" row, what the layer is measured against).
        #[arg(long, hide = true)]
        bare_proxy_for_benchmarks: bool,
    },
    /// Print the effective configuration (secrets redacted), or every problem and exit 2.
    CheckConfig,
    /// Run the threat detection over recorded requests (JSON lines) and print a verdict per
    /// request, then a summary on stderr.
    Scan {
        /// Output format.
        #[arg(long, value_enum, default_value = "jsonl")]
        format: scan::Format,
        /// Input file of JSON lines, or - for standard input.
        input: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let base = matches!(cli.command, Command::Demo { .. }).then(demo_defaults);
    let config = match config_sources(&cli, base).and_then(|sources| {
        let config = load_config(&sources)?;
        Ok((config, sources))
    }) {
        Ok(pair) => pair,
        Err(message) => {
            eprint!("{message}");
            return ExitCode::from(2);
        }
    };
    let (config, sources) = config;
    if let Command::CheckConfig = cli.command {
        print!("{}", config.to_redacted_toml());
        return ExitCode::SUCCESS;
    }
    if let Command::Scan { format, input } = &cli.command {
        return run_scan(&config, input, *format);
    }
    init_logging(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("mcp-shield: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Demo { listen } => run_demo(config, sources, listen).await,
            Command::Serve {
                upstream,
                listen,
                bare_proxy_for_benchmarks,
                ..
            } => {
                run_serve(
                    config,
                    sources,
                    &upstream,
                    listen,
                    bare_proxy_for_benchmarks,
                )
                .await
            }
            Command::CheckConfig | Command::Scan { .. } => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("mcp-shield: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `scan`: the detector and policy from the configuration, over a file or stdin.
fn run_scan(config: &Config, input: &str, format: scan::Format) -> ExitCode {
    let detector = match mcp_shield::threat::ThreatDetector::from_config(&config.threat_detection) {
        Ok(detector) => detector,
        Err(e) => {
            eprintln!("mcp-shield: {e}");
            return ExitCode::from(2);
        }
    };
    let poison = mcp_shield::tools::PoisonDetector::new(
        usize::try_from(config.mcp.tools.max_definition_bytes).unwrap_or(usize::MAX),
    );
    let detectors = scan::Detectors {
        threat: &detector,
        poison: &poison,
        results: &config.mcp.results,
    };
    let stdout = std::io::stdout().lock();
    let output = std::io::BufWriter::new(stdout);
    let result = if input == "-" {
        scan::run(
            &detectors,
            std::io::stdin().lock(),
            output,
            std::io::stderr(),
            format,
        )
    } else {
        match std::fs::File::open(input) {
            Ok(file) => scan::run(
                &detectors,
                std::io::BufReader::new(file),
                output,
                std::io::stderr(),
                format,
            ),
            Err(e) => {
                eprintln!("mcp-shield: {input}: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`| head`) is a normal end.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-shield: {input}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `demo` turns every protection on; the file, environment and flags still apply on top.
fn demo_defaults() -> Config {
    Config {
        enable_rate_limiting: true,
        enable_ddos_protection: true,
        enable_ip_management: true,
        enable_threat_detection: true,
        ..Config::default()
    }
}

/// Where the configuration comes from: the file, the environment, `--set` and the flags of
/// `serve`, over the demo's defaults for `demo`. Read again by a reload.
fn config_sources(cli: &Cli, base: Option<Config>) -> Result<ConfigSources, String> {
    let mut overrides = ConfigOverrides::new();
    for assignment in &cli.set {
        overrides = overrides
            .set_assignment(assignment)
            .map_err(|e| format!("{e}\n"))?;
    }
    // The flags of `serve` are settings too, above the file and the environment.
    if let Command::Serve {
        tls_cert,
        tls_key,
        admin_listen,
        ..
    } = &cli.command
    {
        for (path, value) in [
            ("gateway.tls_cert_file", tls_cert),
            ("gateway.tls_key_file", tls_key),
            ("gateway.admin_listen", admin_listen),
        ] {
            if let Some(value) = value {
                overrides = overrides
                    .set_assignment(&format!("{path}={value}"))
                    .map_err(|e| format!("{e}\n"))?;
            }
        }
    }
    Ok(ConfigSources {
        base,
        file: cli.config.clone(),
        env: std::env::vars().collect(),
        overrides,
    })
}

fn load_config(sources: &ConfigSources) -> Result<Config, String> {
    config::load(sources.clone()).map_err(|e| e.to_string())
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    // A second subscriber (only possible in tests) is not an error worth stopping for.
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

async fn bind(listen: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))
}

/// What one listener of the gateway serves besides the forwarding.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Surface {
    /// The admin API, `/health`, `/ready` and `/metrics` too (one listener for everything).
    WithAdmin,
    /// `/health` and `/ready` only; the admin API has a listener of its own.
    Public,
    /// Nothing but the forwarding, no security layer (benchmarks only).
    Bare,
}

/// The gateway's app: its own paths first, everything else to `upstream`, all behind the layer.
fn gateway_app(security: &SecuritySystem, upstream: proxy::Proxy, surface: Surface) -> Router {
    // Shared, not cloned per request: a clone of the client is a dozen reference counts.
    let upstream = std::sync::Arc::new(upstream);
    let forward = Router::new().fallback(move |request: axum::extract::Request| {
        let upstream = upstream.clone();
        async move { upstream.forward(request).await }
    });
    match surface {
        Surface::Bare => forward,
        Surface::WithAdmin => Router::new()
            .merge(security.admin_router())
            .merge(forward)
            .layer(security.layer()),
        Surface::Public => Router::new()
            .merge(security.probe_router())
            .merge(forward)
            .layer(security.layer().without_admin()),
    }
}

/// How the gateway listens: the public address, HTTPS, and an admin listener of its own.
struct Listening {
    tls: Option<std::sync::Arc<tls::ListenerCert>>,
    admin: Option<SocketAddr>,
}

impl Listening {
    fn from_config(config: &Config) -> anyhow::Result<Self> {
        let gateway = &config.gateway;
        let tls = if gateway.tls_cert_file.is_empty() {
            None
        } else {
            Some(
                tls::ListenerCert::load(&gateway.tls_cert_file, &gateway.tls_key_file)
                    .map_err(|e| anyhow::anyhow!("HTTPS listener: {e}"))?,
            )
        };
        // Validated by the configuration's loader.
        let admin = match gateway.admin_listen.as_str() {
            "" => None,
            addr => Some(
                addr.parse()
                    .with_context(|| format!("SECURITY_ADMIN_LISTEN={addr}"))?,
            ),
        };
        Ok(Listening { tls, admin })
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    fn acceptor(&self) -> anyhow::Result<Option<tokio_rustls::TlsAcceptor>> {
        self.tls
            .as_ref()
            .map(|cert| {
                cert.server_config()
                    .map(tokio_rustls::TlsAcceptor::from)
                    .map_err(|e| anyhow::anyhow!("HTTPS listener: {e}"))
            })
            .transpose()
    }
}

/// One proxy to `upstream` per serving thread (each with its own connection pool); a bad URL
/// or TLS file is an error here, before anything starts.
fn proxies(
    upstream: &str,
    config: &Config,
    client_scheme: &'static str,
) -> anyhow::Result<Vec<proxy::Proxy>> {
    let gateway = &config.gateway;
    let tls = tls::UpstreamTls {
        ca_file: gateway.upstream_ca_file.clone(),
        client_cert_file: gateway.upstream_client_cert_file.clone(),
        client_key_file: gateway.upstream_client_key_file.clone(),
    };
    (0..server::serving_threads())
        .map(|_| proxy::Proxy::new(upstream, &tls, client_scheme))
        .collect()
}

/// Serves the layer in front of `proxies` on `listeners`, a serving thread each, and the admin
/// API on its own listener when there is one, until Ctrl-C or SIGTERM. SIGHUP re-reads the
/// TLS certificate.
async fn serve_gateway(
    security: &SecuritySystem,
    proxies: Vec<proxy::Proxy>,
    listeners: Vec<std::net::TcpListener>,
    listening: &Listening,
    admin_listener: Option<TcpListener>,
    bare: bool,
) -> anyhow::Result<()> {
    let surface = match (bare, &admin_listener) {
        (true, _) => Surface::Bare,
        (false, Some(_)) => Surface::Public,
        (false, None) => Surface::WithAdmin,
    };
    let apps = proxies
        .into_iter()
        .map(|proxy| gateway_app(security, proxy, surface))
        .collect();
    let mut options = server_options(security);
    options.tls = listening.acceptor()?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let admin_task = admin_listener.map(|listener| {
        let mut stopped = stopped.clone();
        tokio::spawn(server::run(
            listener,
            security.admin_router(),
            server::ServerOptions {
                gate: None,
                ..options.clone()
            },
            async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            },
        ))
    });
    let reloads = tokio::spawn(reload_on_sighup(security.clone(), listening.tls.clone()));
    server::run_per_core(listeners, apps, options, async move {
        server::shutdown_signal().await;
        let _ = stop.send(true);
    })
    .await;
    reloads.abort();
    if let Some(task) = admin_task {
        let _ = task.await;
    }
    Ok(())
}

/// SIGHUP: the configuration (file, environment, flags) and the TLS certificate are read
/// again; what fails validation changes nothing and keeps what is in service.
async fn reload_on_sighup(
    security: SecuritySystem,
    cert: Option<std::sync::Arc<tls::ListenerCert>>,
) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!(target: "mcp_shield", "cannot listen for SIGHUP: reloads need a restart");
            return;
        };
        while hangups.recv().await.is_some() {
            // Logged (what changed, or why nothing did) by the system itself.
            let _ = security.reload_from_source("SIGHUP").await;
            if let Some(cert) = &cert {
                match cert.reload() {
                    Ok(()) => {
                        tracing::info!(target: "mcp_shield", file = %cert.cert_file().display(), "SIGHUP: TLS certificate reloaded")
                    }
                    Err(e) => {
                        tracing::error!(target: "mcp_shield", "SIGHUP: TLS certificate not reloaded, the one in service stays: {e}")
                    }
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (security, cert);
}

fn announce_token(security: &SecuritySystem) {
    if security.admin_token_generated() {
        tracing::warn!(
            target: "mcp_shield",
            "No SECURITY_ADMIN_TOKEN configured; generated admin token for this run: {}",
            security.admin_token()
        );
    }
}

/// A gateway listening on a loopback address serves this machine only: unless the operator
/// listed origins and hosts, only loopback names are accepted in `Host` and `Origin`, so a web
/// page whose name rebinds to 127.0.0.1 cannot reach the MCP server behind it.
fn loopback_defaults(mut config: Config, listen: SocketAddr) -> Config {
    if !listen.ip().is_loopback() {
        return config;
    }
    let mcp = &mut config.mcp;
    if mcp.allowed_hosts.is_empty() {
        mcp.allowed_hosts = mcp_shield::mcp::LOOPBACK_HOSTS
            .iter()
            .map(|h| h.to_string())
            .collect();
    }
    if mcp.allowed_origins.is_empty() {
        mcp.allowed_origins = ["http", "https"]
            .iter()
            .flat_map(|scheme| {
                mcp_shield::mcp::LOOPBACK_HOSTS
                    .iter()
                    .map(move |h| format!("{scheme}://{h}"))
            })
            .collect();
    }
    config
}

/// Lets a reload read the configuration as the start did (loopback defaults included).
fn reload_from(
    security: &SecuritySystem,
    sources: ConfigSources,
    listen: SocketAddr,
    upstream: Option<String>,
) {
    security.set_config_source(move || {
        config::load(sources.clone())
            .map(|config| named_upstream(loopback_defaults(config, listen), upstream.as_deref()))
    });
}

/// Tool pins are kept per upstream: unless the configuration names it, the upstream's URL
/// does (at start and at every reload alike, so a reload never reads as a new name).
fn named_upstream(mut config: Config, upstream: Option<&str>) -> Config {
    if let Some(upstream) = upstream {
        if config.mcp.tools.upstream_name.is_empty() {
            config.mcp.tools.upstream_name = upstream.trim_end_matches('/').to_string();
        }
    }
    config
}

async fn run_serve(
    config: Config,
    sources: ConfigSources,
    upstream: &str,
    listen: SocketAddr,
    bare: bool,
) -> anyhow::Result<()> {
    let config = named_upstream(loopback_defaults(config, listen), Some(upstream));
    let listening = Listening::from_config(&config)?;
    let proxies = proxies(upstream, &config, listening.scheme())?;
    let security = SecuritySystem::start(config).await?;
    reload_from(&security, sources, listen, Some(upstream.to_string()));
    let listeners = server::bind_per_core(listen, proxies.len())
        .with_context(|| format!("cannot listen on {listen}"))?;
    let admin_listener = match listening.admin {
        Some(addr) if !bare => Some(bind(addr).await?),
        _ => None,
    };
    announce_token(&security);
    tracing::info!(
        target: "mcp_shield",
        "mcp-shield gateway listening on {}://{} in front of {}",
        listening.scheme(),
        listeners[0].local_addr()?,
        upstream
    );
    if let Some(admin) = &admin_listener {
        tracing::info!(
            target: "mcp_shield",
            "admin API and /metrics on {}://{} only",
            listening.scheme(),
            admin.local_addr()?
        );
    }
    serve_gateway(
        &security,
        proxies,
        listeners,
        &listening,
        admin_listener,
        bare,
    )
    .await?;
    save_state(&security).await;
    Ok(())
}

/// Saves lists, blocks and reputation at shutdown: to SECURITY_DATA_DIR when set, and with
/// Redis, lets the penalties still queued for it arrive (at most two seconds).
async fn save_state(security: &SecuritySystem) {
    if !security
        .reputation_settled(std::time::Duration::from_secs(2))
        .await
    {
        tracing::warn!(target: "security.ip_manager", "some reputation penalties did not reach Redis before shutdown");
    }
    if let Err(e) = security.persist().await {
        tracing::error!(target: "security.ip_manager", "saving state at shutdown failed: {e}");
    }
}

fn server_options(security: &SecuritySystem) -> server::ServerOptions {
    server::ServerOptions {
        header_timeout: std::time::Duration::from_secs(
            security.config().ddos.header_timeout.max(1),
        ),
        gate: security.connection_gate(),
        tls: None,
    }
}

async fn run_demo(
    config: Config,
    sources: ConfigSources,
    listen: SocketAddr,
) -> anyhow::Result<()> {
    let config = loopback_defaults(config, listen);
    // The demo MCP server runs on its own loopback port, so requests really cross the proxy.
    let upstream_listener = bind("127.0.0.1:0".parse()?).await?;
    let upstream_addr = upstream_listener.local_addr()?;
    let (stop_upstream, upstream_stopped) = tokio::sync::oneshot::channel::<()>();
    let upstream_task = tokio::spawn(server::run(
        upstream_listener,
        demo::router(),
        server::ServerOptions::default(),
        async {
            let _ = upstream_stopped.await;
        },
    ));

    let security = SecuritySystem::start(config).await?;
    reload_from(&security, sources, listen, None);
    let listening = Listening {
        tls: None,
        admin: None,
    };
    let proxies = proxies(
        &format!("http://{upstream_addr}"),
        &security.config(),
        "http",
    )?;
    let listeners = server::bind_per_core(listen, proxies.len())
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listeners[0].local_addr()?;
    print_demo_banner(&security, addr).await;
    serve_gateway(&security, proxies, listeners, &listening, None, false).await?;
    let _ = stop_upstream.send(());
    let _ = upstream_task.await;
    Ok(())
}

async fn print_demo_banner(security: &SecuritySystem, addr: SocketAddr) {
    let token = security.admin_token();
    let status = security.status().await;
    let mut components: Vec<String> = Vec::new();
    for (name, c) in &status.components {
        let state = match (c.enabled, c.implemented, c.configured) {
            (true, _, _) => "on",
            (false, false, true) => "requested, not built yet",
            _ => "off",
        };
        components.push(format!("  {name:<17} {state}"));
    }
    println!(
        r#"mcp-shield demo: gateway on http://{addr}, demo MCP server behind it at /mcp

Components:
{components}

Admin token: {token}
Dashboard:   http://{addr}/dashboard#token={token}

Try:
  curl -s http://{addr}/mcp -H 'Content-Type: application/json' \
    -d '{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"add","arguments":{{"a":2,"b":3}}}}}}'
  curl -sN http://{addr}/mcp -H 'Content-Type: application/json' \
    -d '{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"long_running","arguments":{{"steps":5,"delay_ms":400}},"_meta":{{"progressToken":"p1"}}}}}}'
  curl -s http://{addr}/api/security/status -H 'Authorization: Bearer {token}'
  curl -s http://{addr}/mcp -H 'Content-Type: application/json' -d '{{"jsonrpc":"2.0","id":3,"method":"tools/list"}}'
  curl -s http://{addr}/api/security/tools -H 'Authorization: Bearer {token}'   # notes: withheld, poisoned
  curl -s http://{addr}/mcp -H 'Content-Type: application/json' \
    -d '{{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{{"name":"read_config","arguments":{{}}}}}}'   # the key pair: redacted
  curl -s http://{addr}/api/security/ip/blacklist -H 'Authorization: Bearer {token}' \
    -H 'Content-Type: application/json' -d '{{"ip":"127.0.0.1","reason":"try it","ttl_seconds":30}}'
  curl -s http://{addr}/metrics

Ctrl-C stops it."#,
        components = components.join("\n"),
    );
}
