//! The reverse proxy: forwards whatever the security layer let through to one upstream, bodies
//! streaming both ways (an SSE response reaches the client event by event), hop-by-hop headers
//! removed, `X-Forwarded-*` added, and a JSON 502 when the upstream cannot be reached. An
//! https upstream is verified (system roots and a private CA, SNI) and spoken to in HTTP/2 or
//! HTTP/1.1, as its ALPN answer says.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use axum::body::Body;
use axum::extract::ConnectInfo;
use http::header::{HeaderName, HeaderValue, CONNECTION, HOST};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Request, Response, StatusCode, Uri, Version};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mcp_shield::decision::json_response;
use serde_json::json;

use crate::tls::UpstreamTls;

/// Headers that describe one connection, not the message (RFC 9110 7.6.1), plus the
/// non-standard ones proxies are known to send.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The two ways to the upstream: plain (no TLS layer in the way of every read and write) or
/// TLS.
#[derive(Clone)]
enum UpstreamClient {
    Http(Client<HttpConnector, Body>),
    Https(Client<HttpsConnector<HttpConnector>, Body>),
}

/// Forwards requests to one upstream base URL.
#[derive(Clone)]
pub struct Proxy {
    client: UpstreamClient,
    scheme: Scheme,
    authority: Authority,
    host_header: HeaderValue,
    base_path: String,
    /// `X-Forwarded-Proto`: how the client reached the gateway.
    forwarded_proto: HeaderValue,
}

impl Proxy {
    /// A proxy to `upstream` (`http://host[:port]` or `https://host[:port]`, with an optional
    /// base path), for clients reaching the gateway over `client_scheme` (`http` or `https`).
    pub fn new(
        upstream: &str,
        tls: &UpstreamTls,
        client_scheme: &'static str,
    ) -> anyhow::Result<Self> {
        let uri: Uri = upstream
            .parse()
            .with_context(|| format!("--upstream {upstream:?} is not a URL"))?;
        let scheme = match uri.scheme_str() {
            Some("http") => Scheme::HTTP,
            Some("https") => Scheme::HTTPS,
            _ => bail!("--upstream {upstream}: expected http(s)://host[:port][/base/path]"),
        };
        let authority = uri
            .authority()
            .cloned()
            .with_context(|| format!("--upstream {upstream}: missing host"))?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        connector.set_nodelay(true);
        let mut builder = Client::builder(TokioExecutor::new());
        builder.pool_idle_timeout(Duration::from_secs(60));
        let client = if scheme == Scheme::HTTPS {
            // The connector needs to see the https scheme through.
            connector.enforce_http(false);
            let config = tls
                .client_config()
                .map_err(|e| anyhow!("--upstream {upstream}: {e}"))?;
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(config)
                .https_only()
                .enable_http1()
                .enable_http2()
                .wrap_connector(connector);
            UpstreamClient::Https(builder.build(https))
        } else {
            UpstreamClient::Http(builder.build(connector))
        };
        let host_header = HeaderValue::from_str(authority.as_str())
            .with_context(|| format!("--upstream {upstream}: bad host"))?;
        Ok(Proxy {
            client,
            scheme,
            host_header,
            base_path: uri.path().trim_end_matches('/').to_string(),
            authority,
            forwarded_proto: HeaderValue::from_static(client_scheme),
        })
    }

    fn target(&self, uri: &Uri) -> Result<Uri, http::Error> {
        let path_and_query = if self.base_path.is_empty() {
            // The usual case: the request's own path, shared, not copied.
            uri.path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/"))
        } else {
            let path_and_query = uri.path_and_query().map_or("/", PathAndQuery::as_str);
            PathAndQuery::try_from(format!("{}{}", self.base_path, path_and_query))?
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
    }

    /// Forwards one request and returns the upstream's response, streaming.
    pub async fn forward(&self, mut request: Request<Body>) -> Response<Body> {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_canonical());
        let target = match self.target(request.uri()) {
            Ok(uri) => uri,
            Err(e) => {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    &json!({"error": "Bad request", "detail": format!("cannot forward this target: {e}"), "type": "invalid_request"}),
                )
            }
        };
        let original_host = request.headers().get(HOST).cloned();
        let headers = request.headers_mut();
        strip_hop_by_hop(headers);
        if let Some(peer) = peer {
            append_forwarded_for(headers, &peer.to_string());
        }
        if let Some(host) = original_host {
            headers.insert(HeaderName::from_static("x-forwarded-host"), host);
        }
        headers.insert(
            HeaderName::from_static("x-forwarded-proto"),
            self.forwarded_proto.clone(),
        );
        headers.insert(HOST, self.host_header.clone());
        *request.uri_mut() = target;
        // The client may speak HTTP/2 to us; the upstream connection is HTTP/1.1, or HTTP/2
        // when an https upstream chose it by ALPN (the client sends such a request as HTTP/2).
        *request.version_mut() = Version::HTTP_11;

        let sent = match &self.client {
            UpstreamClient::Http(client) => client.request(request).await,
            UpstreamClient::Https(client) => client.request(request).await,
        };
        match sent {
            Ok(response) => {
                let mut response = response.map(Body::new);
                strip_hop_by_hop(response.headers_mut());
                response
            }
            Err(e) => {
                // The whole chain: "client error (Connect)" alone does not say that a
                // certificate failed to verify, or that the connection was refused.
                let mut why = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    why.push_str(": ");
                    why.push_str(&cause.to_string());
                    source = cause.source();
                }
                tracing::warn!(target: "mcp_shield::proxy", upstream = %self.authority, "upstream request failed: {why}");
                json_response(
                    StatusCode::BAD_GATEWAY,
                    &json!({
                        "error": "Bad gateway",
                        "detail": "The upstream server could not be reached",
                        "type": "upstream_unavailable",
                    }),
                )
            }
        }
    }
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers named in Connection are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

fn append_forwarded_for(headers: &mut HeaderMap, peer: &str) {
    let existing: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let value = if existing.is_empty() {
        peer.to_string()
    } else {
        format!("{}, {peer}", existing.join(", "))
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(HeaderName::from_static("x-forwarded-for"), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go_including_those_named_in_connection() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("mcp-session-id", HeaderValue::from_static("abc"));
        h.insert("last-event-id", HeaderValue::from_static("7"));
        strip_hop_by_hop(&mut h);
        assert!(h.get("x-secret-hop").is_none() && h.get("keep-alive").is_none());
        assert_eq!(h["mcp-session-id"], "abc");
        assert_eq!(h["last-event-id"], "7");
    }

    #[test]
    fn forwarded_for_is_appended() {
        let mut h = HeaderMap::new();
        append_forwarded_for(&mut h, "10.0.0.1");
        assert_eq!(h["x-forwarded-for"], "10.0.0.1");
        append_forwarded_for(&mut h, "10.0.0.2");
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 10.0.0.2");
    }

    #[test]
    fn targets_join_the_base_path() {
        let tls = UpstreamTls::default();
        let p = Proxy::new("http://127.0.0.1:9000/base/", &tls, "http").expect("proxy");
        let uri: Uri = "/mcp?x=1".parse().expect("uri");
        assert_eq!(
            p.target(&uri).expect("target").to_string(),
            "http://127.0.0.1:9000/base/mcp?x=1"
        );
        assert!(Proxy::new("ftp://example.com", &tls, "http").is_err());
        assert!(Proxy::new("not a url", &tls, "http").is_err());
        let missing_ca = UpstreamTls {
            ca_file: "/nonexistent/ca.pem".into(),
            ..UpstreamTls::default()
        };
        let e = Proxy::new("https://example.com", &missing_ca, "http")
            .err()
            .expect("a missing CA file is an error");
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    }
}
