//! mcp-shield for Python: the security layer's Rust core as an extension module (`mcp_shield._native`).
//!
//! The Python package (`python/mcp_shield/`) is the seed's API; this module is what it stands
//! on. A request goes through the very tower layer the gateway runs ([`SecurityLayer`]): the
//! ASGI middleware hands the request's head and body to [`Core::handle`], the layer decides,
//! and either answers itself (403, 429, the admin API, the probes) or calls its inner service,
//! here a [`Bridge`] that hands the call back to Python. Python runs the application, gives its
//! response head to [`Exchange::start`] and its body chunk by chunk to [`Exchange::push`], and
//! reads the response as the layer lets it out ([`Exchange::response`], [`Head`]): results
//! inspected, lists checked, event streams read event by event, the rate-limit headers added.
//!
//! The security decision never needs the interpreter: each call that drives the layer releases
//! the GIL, and the layer's future is first polled in place (most decisions are made without
//! waiting for anything), then, if it must wait (Redis, a slow body), moved onto the module's
//! tokio runtime and awaited from asyncio. One runtime per process, started on first use.

mod logs;

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Body as _;
use http_body_util::BodyExt;
use mcp_shield::{ConfigOverrides, HostFinding, HostFindings, SecurityLayer, SecuritySystem};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyCFunction, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use pyo3::IntoPyObjectExt;
use tokio::sync::{mpsc, oneshot};
use tower::ServiceExt;
use tower_layer::Layer;

/// Chunks of an application's response body waiting for the layer: a few, so a fast
/// application does not fill memory ahead of a slow client.
const BODY_CHUNKS_BUFFERED: usize = 16;

/// Paths the admin router answers (behind the same layer, which lets an authenticated admin
/// call and the probes through before the guards, as in the gateway).
fn is_admin_path(path: &str) -> bool {
    path.starts_with("/api/security/")
        || path == "/api/security"
        || path == "/dashboard"
        || path.starts_with("/dashboard/")
        || matches!(path, "/health" | "/ready" | "/metrics")
}

/// The module's runtime: one per process, its threads named so they show in a profile.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("mcp-shield")
            .build()
            .unwrap_or_else(|e| panic!("mcp-shield cannot start its runtime: {e}"))
    })
}

/// Set at interpreter exit: from then on no task of the runtime enters the interpreter (it is
/// being torn down, and a thread entering it then crashes the process). The write lock is taken
/// at exit, so no task is inside when it is set.
static EXITING: RwLock<bool> = RwLock::new(false);

/// Sets the result of an asyncio future unless it is already done (cancelled meanwhile).
#[pyfunction]
fn _resolve(future: &Bound<'_, PyAny>, ok: bool, value: &Bound<'_, PyAny>) -> PyResult<()> {
    if future.call_method0("done")?.is_truthy()? {
        return Ok(());
    }
    if ok {
        future.call_method1("set_result", (value,))?;
    } else {
        future.call_method1("set_exception", (value,))?;
    }
    Ok(())
}

/// Called by `atexit`: no task of the runtime enters the interpreter after this.
#[pyfunction]
fn _quiesce(py: Python<'_>) {
    py.detach(|| {
        *EXITING.write().unwrap_or_else(|e| e.into_inner()) = true;
    });
}

/// A Rust future as an asyncio awaitable of the running loop: the future runs on the module's
/// runtime (without the GIL), its outcome is handed to the loop with `call_soon_threadsafe`,
/// and cancelling the awaitable drops the future.
fn awaitable<'py, F, T>(py: Python<'py>, work: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    static RESOLVE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let resolve = RESOLVE
        .get_or_try_init(py, || {
            wrap_pyfunction!(_resolve, py).map(|f| f.into_any().unbind())
        })?
        .clone_ref(py);
    let event_loop = py.import("asyncio")?.call_method0("get_running_loop")?;
    let future = event_loop.call_method0("create_future")?;
    let (loop_ref, future_ref) = (event_loop.unbind(), future.clone().unbind());
    let task = runtime().spawn(async move {
        let outcome = work.await;
        let exiting = EXITING.read().unwrap_or_else(|e| e.into_inner());
        if *exiting {
            return;
        }
        Python::attach(|py| {
            let (ok, value) = match outcome {
                Ok(value) => match value.into_py_any(py) {
                    Ok(value) => (true, value),
                    Err(e) => (false, e.into_value(py).into_any()),
                },
                Err(e) => (false, e.into_value(py).into_any()),
            };
            // A closed loop (asyncio.run returned) has nobody to tell.
            let _ = loop_ref
                .bind(py)
                .call_method1("call_soon_threadsafe", (resolve, future_ref, ok, value));
        });
        drop(exiting);
    });
    let abort = task.abort_handle();
    let on_done = PyCFunction::new_closure(py, None, None, move |_args, _kwargs| {
        // Done for any reason: a cancelled awaitable stops its work; a finished one is a no-op.
        abort.abort();
    })?;
    future.call_method1("add_done_callback", (on_done,))?;
    Ok(future)
}

/// A header as ASGI wants it: name and value as bytes.
type HeaderPair<'a> = (Cow<'a, [u8]>, Cow<'a, [u8]>);

type Pending = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;

/// A future of the layer, polled in place while that is enough, spawned when it must wait.
enum Driven {
    Local(Pending),
    Spawned(tokio::task::JoinHandle<Response<Body>>),
    Done(Response<Body>),
    Taken,
}

impl Driven {
    /// Polls once in place, inside the runtime (timers and tasks need it), without a waker
    /// that would ever be woken: when it is not ready, [`Driven::wait`] hands it to the
    /// runtime, whose first poll registers a real one.
    fn poll_now(&mut self) -> bool {
        if let Driven::Local(future) = self {
            let _inside = runtime().enter();
            let waker = futures_util::task::noop_waker();
            let mut cx = Context::from_waker(&waker);
            if let Poll::Ready(response) = future.as_mut().poll(&mut cx) {
                *self = Driven::Done(response);
            }
        }
        matches!(self, Driven::Done(_))
    }

    /// The response, waiting for it on the runtime.
    fn wait(&mut self) -> impl Future<Output = Response<Body>> + Send + 'static {
        let state = std::mem::replace(self, Driven::Taken);
        async move {
            match state {
                Driven::Local(future) => runtime()
                    .spawn(future)
                    .await
                    .unwrap_or_else(|_| failure("the security layer stopped")),
                Driven::Spawned(handle) => handle
                    .await
                    .unwrap_or_else(|_| failure("the security layer stopped")),
                Driven::Done(response) => response,
                Driven::Taken => failure("the response was already taken"),
            }
        }
    }

    /// Hands a future polled in place to the runtime, so it goes on without being polled from
    /// Python (the application's body is more than the channel holds before the layer's answer).
    fn spawn_local(&mut self) {
        if let Driven::Local(_) = self {
            if let Driven::Local(future) = std::mem::replace(self, Driven::Taken) {
                *self = Driven::Spawned(runtime().spawn(future));
            }
        }
    }

    fn take_done(&mut self) -> Option<Response<Body>> {
        match std::mem::replace(self, Driven::Taken) {
            Driven::Done(response) => Some(response),
            other => {
                *self = other;
                None
            }
        }
    }
}

/// A request through a service of the layer, polled once in place.
fn in_place<S>(service: S, request: Request<Body>) -> Driven
where
    S: tower_service::Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let future: Pending = Box::pin(async move {
        match service.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    });
    let mut driven = Driven::Local(future);
    driven.poll_now();
    driven
}

/// A 500 with the seed's JSON error shape.
fn failure(detail: &str) -> Response<Body> {
    let body =
        serde_json::json!({"error": "Internal error", "detail": detail, "type": "internal_error"});
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// The call of the application, handed to Python.
struct Forwarded {
    reply: oneshot::Sender<Response<Body>>,
}

/// The layer's inner service: passes the call to Python and waits for the application's
/// response head (its body follows through a channel).
#[derive(Clone)]
struct Bridge {
    slot: Arc<Mutex<Option<oneshot::Sender<Forwarded>>>>,
}

impl tower_service::Service<Request<Body>> for Bridge {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let sender = self.slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        Box::pin(async move {
            // The application reads the body Python holds (the same bytes the layer read).
            drop(request);
            let Some(sender) = sender else {
                return Ok(failure("the application was called twice"));
            };
            let (reply, answer) = oneshot::channel();
            if sender.send(Forwarded { reply }).is_err() {
                return Ok(failure("the request was abandoned"));
            }
            Ok(answer
                .await
                .unwrap_or_else(|_| failure("the application failed before it answered")))
        })
    }
}

/// The system, its layer and its admin router: what `init_security_system` builds.
#[pyclass(frozen, module = "mcp_shield._native")]
struct Core {
    system: SecuritySystem,
    layer: SecurityLayer,
    admin: axum::Router,
}

/// One request through the layer.
#[pyclass(frozen, module = "mcp_shield._native")]
struct Exchange {
    driven: Mutex<Driven>,
    forwarded: Mutex<Option<oneshot::Receiver<Forwarded>>>,
    reply: Mutex<Option<oneshot::Sender<Response<Body>>>>,
    body: Mutex<Option<mpsc::Sender<Result<Bytes, std::io::Error>>>>,
}

/// A response as the layer lets it out: status, headers, and its body read chunk by chunk.
#[pyclass(frozen, module = "mcp_shield._native")]
struct Head {
    #[pyo3(get)]
    status: u16,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    body: Arc<tokio::sync::Mutex<Body>>,
}

/// Events as they happen (`system.subscribe()`).
#[pyclass(frozen, module = "mcp_shield._native")]
struct Events {
    receiver:
        Arc<tokio::sync::Mutex<tokio::sync::broadcast::Receiver<Arc<mcp_shield::SecurityEvent>>>>,
}

fn overrides_from(values: Option<&Bound<'_, PyDict>>) -> PyResult<ConfigOverrides> {
    let mut overrides = ConfigOverrides::new();
    let Some(values) = values else {
        return Ok(overrides);
    };
    for (key, value) in values.iter() {
        let key: String = key
            .extract()
            .map_err(|_| PyTypeError::new_err("config_overrides: every key is a string"))?;
        overrides = if value.is_instance_of::<PyBool>() {
            overrides.set(key, value.extract::<bool>()?)
        } else if value.is_instance_of::<PyInt>() {
            let number: i64 = value.extract().map_err(|_| {
                PyValueError::new_err(format!("config_overrides: {key} = {value}: out of range"))
            })?;
            overrides.set(key, number)
        } else if value.is_instance_of::<PyFloat>() {
            overrides.set(key, value.extract::<f64>()?)
        } else if value.is_instance_of::<PyString>() {
            overrides.set(key, value.extract::<String>()?)
        } else if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
            let items: Vec<String> = value.extract().map_err(|_| {
                PyTypeError::new_err(format!(
                    "config_overrides: {key} = {value}: a list must hold strings"
                ))
            })?;
            overrides.set(key, items)
        } else {
            return Err(PyTypeError::new_err(format!(
                "config_overrides: {key} = {value}: expected a bool, a number, a string or a list of strings"
            )));
        };
    }
    Ok(overrides)
}

fn client_addr(client: Option<(String, u16)>) -> Option<SocketAddr> {
    let (host, port) = client?;
    let ip: IpAddr = host.parse().ok()?;
    Some(SocketAddr::new(ip, port))
}

fn build_request(
    method: &str,
    target: &str,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    body: Vec<u8>,
) -> Result<Request<Body>, String> {
    let mut builder = Request::builder().method(method).uri(target);
    for (name, value) in headers {
        let name = http::HeaderName::from_bytes(&name).map_err(|_| {
            format!(
                "a header name is not valid: {:?}",
                String::from_utf8_lossy(&name)
            )
        })?;
        let value = http::HeaderValue::from_bytes(&value)
            .map_err(|_| format!("the value of {name} is not valid"))?;
        builder = builder.header(name, value);
    }
    builder
        .body(Body::from(body))
        .map_err(|e| format!("the request is not valid: {e}"))
}

fn head_of(response: Response<Body>) -> Head {
    let (parts, body) = response.into_parts();
    Head {
        status: parts.status.as_u16(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect(),
        body: Arc::new(tokio::sync::Mutex::new(body)),
    }
}

#[pymethods]
impl Core {
    /// Builds the system: the environment read as the gateway reads it, `overrides` over it
    /// (the seed's keys, full environment names or TOML paths). An awaitable.
    #[staticmethod]
    #[pyo3(signature = (overrides=None))]
    fn start<'py>(
        py: Python<'py>,
        overrides: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let overrides = overrides_from(overrides)?;
        awaitable(py, async move {
            let system = SecuritySystem::init(overrides)
                .await
                .map_err(|e| PyValueError::new_err(e.to_string()))?;
            let layer = system.layer();
            let admin = system.admin_router();
            Ok(Core {
                system,
                layer,
                admin,
            })
        })
    }

    /// One request: the layer's decision, made in place when nothing must be waited for.
    /// `client` is the ASGI scope's `(host, port)`; `findings` are the custom patterns'
    /// `(type, severity, confidence, location, snippet)`.
    #[pyo3(signature = (method, target, headers, client, body, findings=Vec::new()))]
    #[allow(clippy::too_many_arguments)]
    fn handle(
        &self,
        py: Python<'_>,
        method: &str,
        target: &str,
        headers: Vec<(Vec<u8>, Vec<u8>)>,
        client: Option<(String, u16)>,
        body: Vec<u8>,
        findings: Vec<(String, String, f32, String, String)>,
    ) -> PyResult<Exchange> {
        let mut request = match build_request(method, target, headers, body) {
            Ok(request) => request,
            Err(detail) => {
                let body = serde_json::json!({"error": "Bad request", "detail": detail, "type": "invalid_request"});
                let mut response = Response::new(Body::from(body.to_string()));
                *response.status_mut() = StatusCode::BAD_REQUEST;
                return Ok(Exchange::answered(response));
            }
        };
        if let Some(addr) = client_addr(client) {
            request.extensions_mut().insert(ConnectInfo(addr));
        }
        if !findings.is_empty() {
            request.extensions_mut().insert(HostFindings(
                findings
                    .into_iter()
                    .map(
                        |(threat_type, severity, confidence, location, snippet)| HostFinding {
                            threat_type,
                            severity,
                            confidence,
                            location,
                            snippet,
                        },
                    )
                    .collect(),
            ));
        }
        py.detach(move || {
            if is_admin_path(request.uri().path()) {
                let service = self.layer.layer(self.admin.clone());
                return Ok(Exchange::new(in_place(service, request), None));
            }
            let (slot, forwarded) = oneshot::channel();
            let service = self.layer.layer(Bridge {
                slot: Arc::new(Mutex::new(Some(slot))),
            });
            Ok(Exchange::new(in_place(service, request), Some(forwarded)))
        })
    }

    /// What `GET /api/security/status` returns, as JSON text. An awaitable.
    fn status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let system = self.system.clone();
        awaitable(py, async move {
            serde_json::to_string(&system.status().await)
                .map_err(|e| PyRuntimeError::new_err(e.to_string()))
        })
    }

    /// The seed's counters, as JSON text.
    fn statistics(&self) -> PyResult<String> {
        serde_json::to_string(&self.system.statistics())
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))
    }

    /// The client of a request as the layer sees it: the peer, or the forwarding header's
    /// address when the peer is a trusted proxy.
    fn client_ip(
        &self,
        headers: Vec<(Vec<u8>, Vec<u8>)>,
        client: Option<(String, u16)>,
    ) -> PyResult<String> {
        let request =
            build_request("GET", "/", headers, Vec::new()).map_err(PyValueError::new_err)?;
        let (mut parts, _) = request.into_parts();
        let peer = client_addr(client).map(|a| a.ip());
        let facts = self.system.request_facts(&mut parts, Bytes::new(), peer);
        Ok(facts.client_ip.to_string())
    }

    /// How much of a body the layer reads (`SECURITY_MAX_INSPECT_BODY_BYTES`): the middleware
    /// holds at most one byte more, so the layer can tell a body is larger, and streams the
    /// rest to the application.
    #[getter]
    fn max_inspect_body_bytes(&self) -> u64 {
        self.system.config().max_inspect_body_bytes
    }

    /// The admin token (`SECURITY_ADMIN_TOKEN`, or the one generated at start).
    #[getter]
    fn admin_token(&self) -> String {
        self.system.admin_token().to_string()
    }

    /// Events as they happen.
    fn subscribe(&self) -> Events {
        Events {
            receiver: Arc::new(tokio::sync::Mutex::new(self.system.subscribe())),
        }
    }

    /// Saves what persistence keeps and lets queued reputation updates reach Redis. An
    /// awaitable.
    fn shutdown<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let system = self.system.clone();
        awaitable(py, async move {
            let saved = system.persist().await;
            system
                .reputation_settled(std::time::Duration::from_secs(1))
                .await;
            saved.map_err(PyRuntimeError::new_err)
        })
    }
}

impl Exchange {
    fn new(driven: Driven, forwarded: Option<oneshot::Receiver<Forwarded>>) -> Exchange {
        let exchange = Exchange {
            driven: Mutex::new(driven),
            forwarded: Mutex::new(forwarded),
            reply: Mutex::new(None),
            body: Mutex::new(None),
        };
        exchange.take_forwarded();
        exchange
    }

    fn answered(response: Response<Body>) -> Exchange {
        Exchange::new(Driven::Done(response), None)
    }

    /// Moves the application's call out of the channel when the layer has made it.
    fn take_forwarded(&self) {
        let mut forwarded = self.forwarded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(receiver) = forwarded.as_mut() {
            match receiver.try_recv() {
                Ok(call) => {
                    *self.reply.lock().unwrap_or_else(|e| e.into_inner()) = Some(call.reply);
                    *forwarded = None;
                }
                Err(oneshot::error::TryRecvError::Closed) => *forwarded = None,
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
        }
    }

    fn driven(&self) -> std::sync::MutexGuard<'_, Driven> {
        self.driven.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[pymethods]
impl Exchange {
    /// `answered` (the layer answered itself: take the response), `forwarded` (run the
    /// application), or `pending` (await `decided()`).
    #[getter]
    fn state(&self) -> &'static str {
        self.take_forwarded();
        if self
            .reply
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
        {
            "forwarded"
        } else if matches!(*self.driven(), Driven::Done(_)) {
            "answered"
        } else {
            "pending"
        }
    }

    /// Waits until the layer has answered or called the application. An awaitable of the
    /// new state.
    fn decided<'py>(slf: Bound<'py, Self>, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let this = slf.get();
        let state = this.state();
        if state != "pending" {
            return awaitable(py, async move { Ok(state) });
        }
        let forwarded = this
            .forwarded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let pending = this.driven().wait();
        let (done_tx, done_rx) = oneshot::channel::<Response<Body>>();
        // The layer's future goes on running on the runtime; whichever comes first (the call
        // of the application, or the layer's own answer) decides.
        runtime().spawn(async move {
            let _ = done_tx.send(pending.await);
        });
        let owner: Py<Exchange> = slf.unbind();
        awaitable(py, async move {
            let mut done_rx = done_rx;
            enum First {
                Call(Result<Forwarded, oneshot::error::RecvError>),
                Done(Result<Response<Body>, oneshot::error::RecvError>),
            }
            let first = match forwarded {
                Some(forwarded) => tokio::select! {
                    call = forwarded => First::Call(call),
                    response = &mut done_rx => First::Done(response),
                },
                None => First::Done((&mut done_rx).await),
            };
            let outcome = match first {
                First::Call(Ok(call)) => Ok((call.reply, done_rx)),
                First::Call(Err(_)) => Err(done_rx.await),
                First::Done(response) => Err(response),
            };
            Python::attach(|py| {
                let this = owner.bind(py).get();
                match outcome {
                    Ok((reply, done_rx)) => {
                        *this.reply.lock().unwrap_or_else(|e| e.into_inner()) = Some(reply);
                        // The layer's answer, once the application's response is in, comes
                        // through `done_rx`.
                        *this.driven() = Driven::Spawned(runtime().spawn(async move {
                            done_rx
                                .await
                                .unwrap_or_else(|_| failure("the security layer stopped"))
                        }));
                        Ok("forwarded")
                    }
                    Err(response) => {
                        *this.driven() = Driven::Done(
                            response.unwrap_or_else(|_| failure("the security layer stopped")),
                        );
                        Ok("answered")
                    }
                }
            })
        })
    }

    /// The application's response head. Its body follows with `push` and `finish`.
    fn start(&self, status: u16, headers: Vec<(Vec<u8>, Vec<u8>)>) -> PyResult<()> {
        let reply = self
            .reply
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("the response was already started"))?;
        let (sender, receiver) = mpsc::channel(BODY_CHUNKS_BUFFERED);
        let chunks = futures_util::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|chunk| (chunk, receiver))
        });
        let mut response = Response::new(Body::from_stream(chunks));
        *response.status_mut() = StatusCode::from_u16(status)
            .map_err(|_| PyValueError::new_err(format!("not an HTTP status: {status}")))?;
        for (name, value) in headers {
            let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(&name),
                http::HeaderValue::from_bytes(&value),
            ) else {
                return Err(PyValueError::new_err(
                    "the application sent a header that is not valid",
                ));
            };
            response.headers_mut().append(name, value);
        }
        *self.body.lock().unwrap_or_else(|e| e.into_inner()) = Some(sender);
        // The layer may have gone (the client left): nothing to tell the application.
        let _ = reply.send(response);
        Ok(())
    }

    /// A chunk of the application's body, if there is room for it now: False when the
    /// layer has not read enough yet (then await `push_wait`).
    fn push(&self, chunk: Vec<u8>) -> bool {
        let body = self.body.lock().unwrap_or_else(|e| e.into_inner());
        let Some(sender) = body.as_ref() else {
            return true;
        };
        match sender.try_send(Ok(Bytes::from(chunk))) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => true,
            Err(mpsc::error::TrySendError::Full(_)) => false,
        }
    }

    /// A chunk of the application's body, waiting for room. An awaitable.
    fn push_wait<'py>(&self, py: Python<'py>, chunk: Vec<u8>) -> PyResult<Bound<'py, PyAny>> {
        // Room is made by the layer reading: it must be running to read.
        self.driven().spawn_local();
        let sender = self.body.lock().unwrap_or_else(|e| e.into_inner()).clone();
        awaitable(py, async move {
            if let Some(sender) = sender {
                // A closed channel is a layer that stopped reading (a refused result, a
                // client gone): the rest is not wanted.
                let _ = sender.send(Ok(Bytes::from(chunk))).await;
            }
            Ok(())
        })
    }

    /// The application's body is complete.
    fn finish(&self) {
        self.body.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// The application failed: before its response started, the client gets a 500; after,
    /// the body ends with an error.
    fn fail(&self) {
        self.reply.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(sender) = self.body.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = sender.try_send(Err(std::io::Error::other("the application failed")));
        }
    }

    /// The response, when the layer has it without waiting (None otherwise: await
    /// `response()`).
    fn response_now(&self, py: Python<'_>) -> Option<Head> {
        py.detach(|| {
            let mut driven = self.driven();
            driven.poll_now();
            driven.take_done().map(head_of)
        })
    }

    /// The response as the layer lets it out. An awaitable of a `Head`.
    fn response<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let pending = self.driven().wait();
        awaitable(py, async move { Ok(head_of(pending.await)) })
    }
}

#[pymethods]
impl Head {
    /// The headers, as ASGI wants them: `[(name, value)]`, bytes.
    fn headers(&self) -> Vec<HeaderPair<'_>> {
        self.headers
            .iter()
            .map(|(n, v)| (Cow::Borrowed(n.as_slice()), Cow::Borrowed(v.as_slice())))
            .collect()
    }

    /// The body that is there now, and whether that is all of it (then `next()` is not
    /// needed).
    fn ready(&self, py: Python<'_>) -> (Cow<'static, [u8]>, bool) {
        py.detach(|| {
            let Ok(mut body) = self.body.try_lock() else {
                return (Cow::Owned(Vec::new()), false);
            };
            let _inside = runtime().enter();
            let waker = futures_util::task::noop_waker();
            let mut cx = Context::from_waker(&waker);
            let mut out = Vec::new();
            loop {
                match Pin::new(&mut *body).poll_frame(&mut cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Ok(data) = frame.into_data() {
                            out.extend_from_slice(&data);
                        }
                    }
                    // An error ends the body: what was sent is what the client gets.
                    Poll::Ready(Some(Err(_))) | Poll::Ready(None) => {
                        return (Cow::Owned(out), true);
                    }
                    Poll::Pending => return (Cow::Owned(out), false),
                }
            }
        })
    }

    /// The next chunk of the body, None at its end. An awaitable.
    fn next<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let body = self.body.clone();
        awaitable(py, async move {
            let mut body = body.lock().await;
            loop {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            if !data.is_empty() {
                                return Ok(Some(Cow::<'static, [u8]>::Owned(data.to_vec())));
                            }
                        }
                    }
                    Some(Err(_)) | None => return Ok(None),
                }
            }
        })
    }
}

/// One event as JSON text: incidents (refusals and observations with their findings), emergency
/// mode switched, list entries added or removed; other events are not sent.
fn describe(event: &mcp_shield::SecurityEvent) -> Option<serde_json::Value> {
    use mcp_shield::SecurityEvent;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    if let Some(incident) = mcp_shield::incidents::Incident::from_event(event, now_ms) {
        let mut value = serde_json::to_value(incident).ok()?;
        value["event"] = "incident".into();
        return Some(value);
    }
    match event {
        SecurityEvent::EmergencyMode { enabled, by } => {
            Some(serde_json::json!({"event": "emergency", "enabled": enabled, "by": by}))
        }
        SecurityEvent::ListAdded { list, network, .. } => Some(serde_json::json!({
            "event": "lists", "op": "add", "list": list.as_str(),
            "network": mcp_shield::events::show_network(network)})),
        SecurityEvent::ListRemoved { list, network } => Some(serde_json::json!({
            "event": "lists", "op": "remove", "list": list.as_str(),
            "network": mcp_shield::events::show_network(network)})),
        _ => None,
    }
}

#[pymethods]
impl Events {
    /// The next event as JSON text, None when the system is gone. An awaitable.
    fn next<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let receiver = self.receiver.clone();
        awaitable(py, async move {
            let mut receiver = receiver.lock().await;
            loop {
                match receiver.recv().await {
                    Ok(event) => {
                        if let Some(value) = describe(&event) {
                            return Ok(Some(value.to_string()));
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                        return Ok(Some(
                            serde_json::json!({"event": "lagged", "missed": missed}).to_string(),
                        ));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(None),
                }
            }
        })
    }
}

/// The log lines queued for Python, and how many gave way to newer ones.
#[pyfunction]
fn _drain_logs() -> (Vec<logs::Line>, u64) {
    logs::drain()
}

/// Resolves when log lines are queued. An awaitable.
#[pyfunction]
fn _logs_waiting(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    awaitable(py, async {
        logs::waiting().await;
        Ok(())
    })
}

/// The lowest Python logging level passed on.
#[pyfunction]
fn _set_log_level(level: u8) {
    logs::set_min_level(level);
}

#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    logs::install();
    module.add_function(wrap_pyfunction!(_drain_logs, module)?)?;
    module.add_function(wrap_pyfunction!(_logs_waiting, module)?)?;
    module.add_function(wrap_pyfunction!(_set_log_level, module)?)?;
    module.add_class::<Core>()?;
    module.add_class::<Exchange>()?;
    module.add_class::<Head>()?;
    module.add_class::<Events>()?;
    module.add_function(wrap_pyfunction!(_quiesce, module)?)?;
    Ok(())
}
