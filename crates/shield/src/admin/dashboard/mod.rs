//! `GET /dashboard`: the live security dashboard, one page whose three files are built into the
//! binary (nothing is loaded from outside the gateway: it works on an air-gapped host).
//!
//! The page itself holds no data and needs no token to load; everything it shows it asks of
//! the admin API with the token in the `Authorization` header (kept in the tab's
//! `sessionStorage`, or taken from `#token=` in the address, a fragment no server or log ever
//! sees). Why it is safe to serve:
//! - a strict Content-Security-Policy: scripts and styles from this origin only, no inline
//!   script or style, no frames, no forms posted anywhere, requests to this origin only;
//! - the admin actions are authorised by a header a cross-site page cannot send (no cookie is
//!   involved), so a forged cross-site request carries no credential;
//! - every value from the server is put into the page as text, never as HTML: addresses,
//!   paths, tool names and the evidence of refused requests are attacker-controlled.
//!
//! The chart is drawn on a canvas by the page's own 60 lines: a line chart of at most 900
//! points per series needs no library, so none is vendored.

use axum::response::Response;
use axum::routing::get;
use axum::Router;
use http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY};
use http::{HeaderValue, StatusCode};

const INDEX: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("app.js");
const STYLE: &str = include_str!("style.css");

/// The policy of every dashboard file.
pub const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

fn file(body: &'static str, content_type: &'static str) -> Response {
    let mut response = Response::new(axum::body::Body::from(body));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        http::header::X_FRAME_OPTIONS,
        HeaderValue::from_static("DENY"),
    );
    response
}

/// The dashboard's three files.
pub(crate) fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/dashboard",
            get(|| async { file(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/dashboard/app.js",
            get(|| async { file(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/dashboard/style.css",
            get(|| async { file(STYLE, "text/css; charset=utf-8") }),
        )
}
