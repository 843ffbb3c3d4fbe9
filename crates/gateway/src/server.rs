//! The accept loop: HTTP/1.1 and HTTP/2 on one listener, the peer address handed to the
//! security layer as axum's `ConnectInfo`, and a graceful shutdown that stops accepting, lets
//! requests in flight finish, and gives up on long streams after a grace period.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use mcp_shield::{Admission, ConnectionGate};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// How long shutdown waits for open connections (SSE streams may never end by themselves).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The largest request head read (bytes).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How the accept loop treats clients.
#[derive(Clone)]
pub struct ServerOptions {
    /// A client has this long to send a request head (slow-loris defence); also how long an
    /// idle keep-alive connection waits for its next request.
    pub header_timeout: Duration,
    /// Open connections per peer address (DDoS protection); `None` admits everything.
    pub gate: Option<ConnectionGate>,
    /// HTTPS: the TLS handshake first (within `header_timeout`), then HTTP/2 or HTTP/1.1 as
    /// ALPN chose. `None`: plain HTTP.
    pub tls: Option<TlsAcceptor>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            header_timeout: Duration::from_secs(10),
            gate: None,
            tls: None,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    app: Router,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // Also the idle keep-alive timeout: the clock runs whenever a request head is awaited.
        .header_read_timeout(options.header_timeout)
        // Request heads over 64 KiB get 431 (nginx allows 32 KiB by default).
        .max_buf_size(MAX_HEAD_BYTES);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors and the like: wait a moment instead of
                        // spinning on the same error.
                        tracing::warn!(target: "mcp_shield::server", "accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // A refused connection costs an accept and a close, nothing more.
                let permit = match &options.gate {
                    Some(gate) => match gate.admit(peer.ip()) {
                        Admission::Admitted(permit) => permit,
                        Admission::Refused => {
                            tracing::debug!(target: "security.ddos_protection", %peer, "connection refused: too many open from this address");
                            drop(stream);
                            continue;
                        }
                    },
                    None => None,
                };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                    let mut request = request.map(axum::body::Body::new);
                    request.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                    app.clone().oneshot(request)
                });
                // The connection's count is given back when the server starts closing it, before
                // its FIN reaches the client: a client that reconnects the instant it sees the
                // close is not refused for a connection it no longer has.
                let stream = CountedStream {
                    inner: stream,
                    permit,
                };
                match &options.tls {
                    None => {
                        tokio::spawn(connection(&builder, graceful.watcher(), stream, service, peer));
                    }
                    Some(acceptor) => {
                        // The handshake runs in the connection's own task, so a slow one
                        // holds up nobody else; it has the head's time limit.
                        let handshake = acceptor.accept(stream);
                        let builder = builder.clone();
                        let watcher = graceful.watcher();
                        let limit = options.header_timeout;
                        tokio::spawn(async move {
                            match tokio::time::timeout(limit, handshake).await {
                                Ok(Ok(tls)) => connection(&builder, watcher, tls, service, peer).await,
                                Ok(Err(e)) => tracing::debug!(target: "mcp_shield::server", %peer, "TLS handshake failed: {e}"),
                                Err(_) => tracing::debug!(target: "mcp_shield::server", %peer, "TLS handshake timed out"),
                            }
                        });
                    }
                }
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!(target: "mcp_shield::server", "shutting down: waiting for open requests");
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!(target: "mcp_shield::server", "shutdown grace period over; closing remaining connections");
        }
    }
}

/// One connection served: HTTP/1.1 or HTTP/2 on `io` (plain or TLS), watched for graceful
/// shutdown; the future to spawn.
fn connection<I, S>(
    builder: &auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    io: I,
    service: S,
    peer: SocketAddr,
) -> impl Future<Output = ()> + Send + 'static
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<hyper::Request<Incoming>, Response = axum::response::Response>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let connection = builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .into_owned();
    async move {
        if let Err(e) = watcher.watch(connection).await {
            tracing::debug!(target: "mcp_shield::server", %peer, "connection ended: {e}");
        }
    }
}

/// Binds `addr` once per serving thread, every socket on the same port with `SO_REUSEPORT`, so
/// the kernel spreads new connections over the threads (as nginx's `reuseport` does). The
/// sockets are returned detached from any runtime; [`run_per_core`] gives one to each thread.
/// The first is bound first, so port 0 picks one port for all.
pub fn bind_per_core(
    addr: SocketAddr,
    threads: usize,
) -> std::io::Result<Vec<std::net::TcpListener>> {
    let bind = |addr: SocketAddr| -> std::io::Result<std::net::TcpListener> {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        #[cfg(unix)]
        socket.set_reuseport(true)?;
        socket.bind(addr)?;
        socket.listen(4096)?.into_std()
    };
    // Claimed first without SO_REUSEPORT: a port another process holds (a second gateway
    // started by mistake included, whose sockets would otherwise share it silently) is an
    // error, as it is for any server; port 0 is resolved to one port here.
    let claim = std::net::TcpListener::bind(addr)?;
    let addr = claim.local_addr()?;
    drop(claim);
    (0..threads.max(1)).map(|_| bind(addr)).collect()
}

/// How many threads serve connections: one per core the process may use.
pub fn serving_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Serves on every listener of [`bind_per_core`], each on its own thread with a single-threaded
/// runtime and its own app (one per listener, in order: each with its own proxy, so the
/// upstream connection pool is per thread too), until `shutdown` resolves.
///
/// Why not one multi-threaded runtime: a proxy's request is a few microseconds of work between
/// socket reads and writes, and a work-stealing scheduler wakes its other workers to share it.
/// Profiled under load, those wake-ups (futex calls, scheduler interrupts, context switches)
/// took more CPU than the security layer itself. A thread per core that owns its connections
/// from accept to close, the way nginx's workers do, has none of them. Background work (feeds,
/// Redis, model training) stays on the main runtime that built the system.
pub async fn run_per_core(
    listeners: Vec<std::net::TcpListener>,
    apps: Vec<Router>,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut threads = Vec::new();
    for (i, (listener, app)) in listeners.into_iter().zip(apps).enumerate() {
        let options = options.clone();
        let mut stopped = stopped.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("mcp-shield-io-{i}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        tracing::error!(target: "mcp_shield::server", "serving thread {i}: cannot start its runtime: {e}");
                        return;
                    }
                };
                runtime.block_on(async move {
                    let listener = match listener
                        .set_nonblocking(true)
                        .and_then(|()| TcpListener::from_std(listener))
                    {
                        Ok(listener) => listener,
                        Err(e) => {
                            tracing::error!(target: "mcp_shield::server", "serving thread {i}: {e}");
                            return;
                        }
                    };
                    run(listener, app, options, async move {
                        let _ = stopped.wait_for(|stop| *stop).await;
                    })
                    .await;
                });
            });
        match spawned {
            Ok(handle) => threads.push(handle),
            Err(e) => {
                tracing::error!(target: "mcp_shield::server", "cannot start serving thread {i}: {e}")
            }
        }
    }
    shutdown.await;
    let _ = stop.send(true);
    let _ = tokio::task::spawn_blocking(move || {
        for thread in threads {
            let _ = thread.join();
        }
    })
    .await;
}

/// A client's TCP stream holding its place under the per-address connection limit until the
/// server shuts it down (or drops it).
struct CountedStream {
    inner: tokio::net::TcpStream,
    permit: Option<mcp_shield::ddos::inflight::Permit>,
}

impl tokio::io::AsyncRead for CountedStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for CountedStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.permit = None;
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
