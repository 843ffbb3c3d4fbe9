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
use tokio::net::TcpListener;
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
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            header_timeout: Duration::from_secs(10),
            gate: None,
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
                let connection = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(target: "mcp_shield::server", %peer, "connection ended: {e}");
                    }
                    drop(permit);
                });
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
