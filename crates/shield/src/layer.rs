//! The tower [`Layer`](tower_layer::Layer) and [`Service`] that put the security pipeline in front of
//! any service taking `http::Request<axum::body::Body>`.
//!
//! Per request: read the body up to the inspection limit (only for content the guards can
//! inspect), build [`RequestFacts`] once, ask the [`Pipeline`](crate::pipeline::Pipeline), then
//! either render the block or forward the request with its body put back together (the
//! inspected prefix followed by whatever was not read, so nothing is lost and large bodies still
//! stream), add the rate-limit headers, and tell the guards how it ended.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use tower_service::Service;

use crate::admission::{Applicant, UpstreamPermit};
use crate::config::OversizeBodyAction;
use crate::ddos::inflight::Permit;
use crate::decision::{BlockReason, Decision};
use crate::ip::ListKind;
use crate::json_limits::{JsonLimitExceeded, JsonShapeChecker};
use crate::mcp::McpViolation;
use crate::pipeline::Outcome;
use crate::request::{RequestFacts, UserId};
use crate::shared::Core;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Paths answered before the guards (liveness, readiness and metrics must work for the
/// orchestrator even while a client's address is blocked).
pub const PROBE_PATHS: [&str; 3] = ["/health", "/ready", "/metrics"];

/// The probe paths of a public listener whose admin surface is elsewhere: `/metrics` there is
/// the upstream's own path, guarded like any other.
const PUBLIC_PROBE_PATHS: [&str; 2] = ["/health", "/ready"];

/// Wraps a service in the security pipeline. Made by
/// [`SecuritySystem::layer`](crate::SecuritySystem::layer).
#[derive(Clone)]
pub struct SecurityLayer {
    core: Arc<Core>,
    admin_here: bool,
}

impl std::fmt::Debug for SecurityLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityLayer").finish_non_exhaustive()
    }
}

impl SecurityLayer {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        SecurityLayer {
            core,
            admin_here: true,
        }
    }

    /// For a public listener whose admin API is served on another one: only `/health` and
    /// `/ready` skip the guards, and a request carrying the admin token is guarded like any
    /// other (on this listener `/api/security/*` and `/metrics` are the upstream's paths).
    pub fn without_admin(mut self) -> Self {
        self.admin_here = false;
        self
    }
}

impl<S> tower_layer::Layer<S> for SecurityLayer {
    type Service = SecurityService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SecurityService {
            inner,
            core: self.core.clone(),
            admin_here: self.admin_here,
        }
    }
}

/// The service [`SecurityLayer`] builds.
#[derive(Clone)]
pub struct SecurityService<S> {
    inner: S,
    core: Arc<Core>,
    admin_here: bool,
}

impl<S> std::fmt::Debug for SecurityService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityService").finish_non_exhaustive()
    }
}

impl<S, B, ResB> Service<Request<B>> for SecurityService<S>
where
    S: Service<Request<Body>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: HttpBody<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
    ResB: HttpBody<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The clone that was made ready is the one to call (tower's usual swap).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let core = self.core.clone();
        Box::pin(handle(core, inner, request, self.admin_here))
    }
}

async fn handle<S, B, ResB>(
    core: Arc<Core>,
    mut inner: S,
    request: Request<B>,
    admin_here: bool,
) -> Result<Response<Body>, S::Error>
where
    S: Service<Request<Body>, Response = Response<ResB>>,
    B: HttpBody<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
    ResB: HttpBody<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    let started = core.clock.monotonic_ns();
    let (mut parts, body) = request.into_parts();
    let unguarded = if admin_here {
        PROBE_PATHS.contains(&parts.uri.path()) || is_authenticated_admin(&core, &parts)
    } else {
        PUBLIC_PROBE_PATHS.contains(&parts.uri.path())
    };
    if unguarded {
        let response = inner
            .call(Request::from_parts(parts, Body::new(body)))
            .await?;
        return Ok(response.map(Body::new));
    }
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if peer.is_none() {
        warn_no_peer_once();
    }

    // One version of the settings for the whole request, even across a reload.
    let settings = core.request.load_full();
    let limit = settings.max_inspect_body_bytes;
    let read = if wants_inspection(&parts.headers, &body) {
        // JSON bodies, and whatever is sent to the MCP endpoint, are held to the shape limits
        // while they are read.
        let is_mcp = crate::mcp::is_mcp_path(&settings.mcp_paths, parts.uri.path());
        let checker = (is_mcp || crate::request::is_json(&parts.headers))
            .then(|| JsonShapeChecker::new(settings.json_limits, is_mcp));
        read_prefix(
            body,
            limit,
            settings.oversize_body_action,
            &parts.headers,
            checker,
        )
        .await
    } else {
        BodyRead::Skipped(body)
    };
    let (inspected, complete) = match &read {
        BodyRead::Complete(bytes) => (bytes.clone(), true),
        BodyRead::Oversize { prefix, .. } => {
            let end = prefix.len().min(limit as usize);
            (prefix.slice(..end), false)
        }
        BodyRead::Skipped(_) | BodyRead::Failed(_) | BodyRead::TooComplex(_) => {
            (Bytes::new(), true)
        }
    };
    let is_get = parts.method == http::Method::GET;
    let mut facts = RequestFacts::build(&mut parts, inspected, complete, peer, &settings.identity);

    // Requests in flight per client address (DDoS protection): the permit lives until the
    // response body ends, so a long SSE stream counts for as long as it is open.
    let mut permit = None;
    let over_concurrency = match &core.inflight {
        Some(counts) if !core.lists.contains(ListKind::Whitelist, facts.client_ip) => {
            permit = counts.try_open(facts.client_ip);
            permit.is_none()
        }
        _ => false,
    };

    let decision = match &read {
        BodyRead::Failed(detail) => {
            core.stats.record_request();
            core.pipeline.block(
                &facts,
                BlockReason::BadRequest {
                    detail: detail.clone(),
                },
            )
        }
        BodyRead::TooComplex(exceeded) => {
            core.stats.record_request();
            core.pipeline
                .block(&facts, BlockReason::Mcp(McpViolation::JsonLimit(*exceeded)))
        }
        _ if over_concurrency => {
            core.stats.record_request();
            core.pipeline.block(
                &facts,
                BlockReason::Ddos {
                    detail: "Too many concurrent requests".into(),
                    retry_after_secs: 1,
                    first: false,
                },
            )
        }
        _ => match core.pipeline.decide(&facts).await {
            // Whitelisted clients skip every guard, the size check included.
            Decision::Allow(a) if a.whitelisted => Decision::Allow(a),
            Decision::Allow(_) if is_rejected_oversize(&read, settings.oversize_body_action) => {
                core.pipeline
                    .block(&facts, BlockReason::PayloadTooLarge { limit })
            }
            decision => decision,
        },
    };

    // Admission to the upstream (overload protection): a place at once, or a wait in the
    // priority queue, or 503 overloaded.
    let mut upstream_permit: Option<UpstreamPermit> = None;
    let decision = match (decision, &core.admission) {
        (Decision::Allow(annotations), Some(admission)) => {
            let credential;
            let user: Option<&[u8]> = match &facts.user {
                Some(UserId::Header(name)) => Some(name.as_bytes()),
                Some(UserId::Credential(hash)) => {
                    credential = hash.to_le_bytes();
                    Some(&credential)
                }
                None => None,
            };
            let applicant = Applicant {
                ip: facts.client_ip,
                user,
                tool: facts.mcp_tool(),
                whitelisted: annotations.whitelisted,
            };
            match admission.acquire(applicant).await {
                Ok(permit) => {
                    upstream_permit = Some(permit);
                    Decision::Allow(annotations)
                }
                Err(shed) => core.pipeline.block(&facts, shed.reason()),
            }
        }
        (decision, _) => decision,
    };

    match decision {
        Decision::Block(reason) => {
            let response = reason.into_response();
            let outcome = Outcome {
                status: response.status().as_u16(),
                latency_ns: core.clock.monotonic_ns().saturating_sub(started),
                blocked: true,
            };
            core.pipeline.observe(&facts, &outcome);
            Ok(response)
        }
        Decision::Allow(annotations) => {
            facts.restore_headers(&mut parts);
            let body = match read {
                BodyRead::Complete(bytes) => Body::from(bytes),
                BodyRead::Oversize {
                    prefix,
                    rest,
                    checker: Some(checker),
                } => Body::new(PrefixedBody {
                    prefix: Some(prefix),
                    rest: CheckedBody {
                        inner: rest,
                        checker,
                    },
                }),
                BodyRead::Oversize {
                    prefix,
                    rest,
                    checker: None,
                } => Body::new(PrefixedBody {
                    prefix: Some(prefix),
                    rest,
                }),
                BodyRead::Skipped(body) => Body::new(body),
                BodyRead::Failed(_) | BodyRead::TooComplex(_) => Body::empty(),
            };
            let mcp_path = crate::mcp::is_mcp_path(&settings.mcp_paths, facts.path());
            let response = inner.call(Request::from_parts(parts, body)).await?;
            let event_stream = crate::response::is_event_stream(response.headers());
            if let Some(upstream) = &mut upstream_permit {
                if event_stream && is_get {
                    // A client's standing stream is not work the upstream is doing.
                    upstream.forget_sample();
                    upstream_permit = None;
                } else if !event_stream {
                    upstream.answered();
                }
                // An event stream answering a POST is a tool still running: measured to its end.
            }
            // Only what can hold a list or a result is read: an event stream, or the answer
            // to a list request or a call; everything else passes as it came, with nothing
            // allocated for it.
            let read_back = mcp_path && core.way_back.reads(&facts, event_stream);
            let mut response = if read_back {
                // The way back: lists, results and streams read before the client sees them.
                let exchange = crate::response::Exchange::of(&facts);
                let response =
                    crate::response::inspect(core.way_back.clone(), exchange, response).await;
                hold(response, permit, upstream_permit)
            } else {
                hold(response, permit, upstream_permit)
            };
            annotations.apply(response.headers_mut());
            let outcome = Outcome {
                status: response.status().as_u16(),
                latency_ns: core.clock.monotonic_ns().saturating_sub(started),
                blocked: false,
            };
            core.pipeline.observe(&facts, &outcome);
            Ok(response)
        }
    }
}

/// The response with the client's in-flight permit and the upstream's admission permit held
/// until its body ends (one box either way).
fn hold<B>(
    response: Response<B>,
    permit: Option<Permit>,
    upstream: Option<UpstreamPermit>,
) -> Response<Body>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    if permit.is_some() || upstream.is_some() {
        response.map(|body| {
            Body::new(HeldBody {
                inner: body,
                _client: permit,
                upstream,
            })
        })
    } else {
        response.map(Body::new)
    }
}

/// Without the peer address every client looks the same (0.0.0.0): say so once, loudly.
fn warn_no_peer_once() {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(
            target: "security",
            "requests reach the security layer without a peer address; serve with \
             into_make_service_with_connect_info::<SocketAddr>() so clients can be told apart"
        );
    }
}

/// An admin call with the right token skips the guards, so an operator who blacklisted their
/// own network (or is rate limited) can still undo it. Calls without it, token guessers
/// included, go through the guards like any request.
fn is_authenticated_admin(core: &Core, parts: &http::request::Parts) -> bool {
    parts.uri.path().starts_with(crate::admin::API_PREFIX)
        && parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| crate::admin::bearer_credential(v.as_bytes()))
            .is_some_and(|t| crate::admin::constant_time_eq(t, core.admin_token.as_bytes()))
}

fn is_rejected_oversize<B>(read: &BodyRead<B>, action: OversizeBodyAction) -> bool {
    matches!(read, BodyRead::Oversize { .. }) && action == OversizeBodyAction::Reject
}

/// Bodies worth reading: JSON, forms, text and XML, or an undeclared type. Others (uploads,
/// binary streams) pass untouched and unbuffered.
fn wants_inspection<B: HttpBody>(headers: &HeaderMap, body: &B) -> bool {
    if body.is_end_stream() {
        return false;
    }
    let Some(content_type) = headers.get(CONTENT_TYPE) else {
        return true;
    };
    let Ok(content_type) = content_type.to_str() else {
        return true;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence.is_empty()
        || essence == "application/json"
        || essence.ends_with("+json")
        || essence == "application/x-www-form-urlencoded"
        || essence.starts_with("text/")
        || essence.ends_with("/xml")
        || essence.ends_with("+xml")
}

enum BodyRead<B> {
    /// All of it, within the limit.
    Complete(Bytes),
    /// Over the limit: what was read, and the rest still unread (still to be held to the JSON
    /// limits as it streams on, when it is JSON).
    Oversize {
        prefix: Bytes,
        rest: B,
        checker: Option<JsonShapeChecker>,
    },
    /// Not read at all.
    Skipped(B),
    /// The client's body broke off or was malformed.
    Failed(String),
    /// A JSON body past a shape limit (the rest is not read).
    TooComplex(JsonLimitExceeded),
}

async fn read_prefix<B>(
    mut body: B,
    limit: u64,
    action: OversizeBodyAction,
    headers: &HeaderMap,
    mut checker: Option<JsonShapeChecker>,
) -> BodyRead<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if action == OversizeBodyAction::Reject && declared.is_some_and(|n| n > limit) {
        // No need to read what will be refused.
        return BodyRead::Oversize {
            prefix: Bytes::new(),
            rest: body,
            checker,
        };
    }
    // A body that arrives in one frame (most small requests) is kept as that frame, a view of
    // the connection's read buffer, not copied; a second frame starts the copy.
    let mut first: Option<Bytes> = None;
    let mut buffer = BytesMut::new();
    loop {
        match body.frame().await {
            None => {
                return BodyRead::Complete(match first {
                    Some(data) => data,
                    None => buffer.freeze(),
                })
            }
            Some(Err(e)) => return BodyRead::Failed(format!("request body: {}", e.into())),
            Some(Ok(frame)) => {
                // Request trailers are rare (gRPC sends them on responses); they are dropped.
                if let Ok(data) = frame.into_data() {
                    if let Some(checker) = &mut checker {
                        if let Err(exceeded) = checker.feed(&data) {
                            return BodyRead::TooComplex(exceeded);
                        }
                    }
                    let read = match &first {
                        None if buffer.is_empty() => {
                            let len = data.len();
                            first = Some(data);
                            len
                        }
                        _ => {
                            if let Some(earlier) = first.take() {
                                buffer.reserve(
                                    (declared.unwrap_or(0).min(limit) as usize).max(earlier.len()),
                                );
                                buffer.extend_from_slice(&earlier);
                            }
                            buffer.extend_from_slice(&data);
                            buffer.len()
                        }
                    };
                    if read as u64 > limit {
                        return BodyRead::Oversize {
                            prefix: match first.take() {
                                Some(data) => data,
                                None => buffer.freeze(),
                            },
                            rest: body,
                            checker,
                        };
                    }
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that holds the client's in-flight permit and the request's place at the
    /// upstream until it ends or is dropped.
    struct HeldBody<B> {
        #[pin]
        inner: B,
        _client: Option<Permit>,
        upstream: Option<UpstreamPermit>,
    }
}

impl<B> HttpBody for HeldBody<B>
where
    B: HttpBody<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(None) = polled {
            // The end of a response measured to its end (no-op for one sampled at its head).
            if let Some(upstream) = this.upstream {
                upstream.answered();
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// The unread rest of a JSON body streamed on past the inspection limit, still held to the
    /// shape limits: past one, the body breaks off with an error (the upstream sees a truncated
    /// body, never the rest of it).
    struct CheckedBody<B> {
        #[pin]
        inner: B,
        checker: JsonShapeChecker,
    }
}

impl<B> HttpBody for CheckedBody<B>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if let Err(exceeded) = this.checker.feed(data) {
                        return Poll::Ready(Some(Err(exceeded.to_string().into())));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// The bytes read for inspection, then the rest of the original body.
    struct PrefixedBody<B> {
        prefix: Option<Bytes>,
        #[pin]
        rest: B,
    }
}

impl<B> HttpBody for PrefixedBody<B>
where
    B: HttpBody<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        if let Some(prefix) = this.prefix.take() {
            if !prefix.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(prefix))));
            }
        }
        this.rest.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.as_ref().is_none_or(Bytes::is_empty) && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let extra = self.prefix.as_ref().map_or(0, |p| p.len() as u64);
        let inner = self.rest.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + extra);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + extra);
        }
        hint
    }
}
