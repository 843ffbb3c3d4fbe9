//! Deploying the gateway for real (issue 21): HTTPS on the listener with HTTP/2 by ALPN and a
//! certificate rotated by SIGHUP, https upstreams verified by a private CA with a client
//! certificate, and the admin API on a listener of its own. Certificates are made in the test
//! (rcgen); the https upstream is a rustls server in the test.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::routing::get;
use axum::Router;
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SignatureAlgorithm,
};
use rustls::pki_types::{CertificateDer, ServerName};
use support::{Gateway, BIN, TOKEN};
use tokio::net::TcpListener;

/// A certificate authority of the test's own.
struct Authority {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, as PEM, and the certificate's DER (to tell which one a server
/// presented).
struct Issued {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

impl Authority {
    fn new(name: &str) -> Authority {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        Authority {
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA certificate"),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for `names` (DNS names or IP addresses) with a key of `algorithm`.
    fn issue(&self, names: &[&str], algorithm: &'static SignatureAlgorithm) -> Issued {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, "mcp-shield test");
        let key = KeyPair::generate_for(algorithm).expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("certificate");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }
}

/// A scratch folder removed at the end of the test.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "mcp-shield-{name}-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        std::fs::create_dir_all(&dir).expect("scratch folder");
        Scratch(dir)
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A plain upstream: `/headers` answers the request headers it received, anything else says
/// which path it saw.
async fn plain_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, upstream_app()).await;
    });
    addr
}

fn upstream_app() -> Router {
    Router::new()
        .route(
            "/headers",
            get(|headers: http::HeaderMap| async move {
                let map: HashMap<String, String> = headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").to_string()))
                    .collect();
                axum::Json(map)
            }),
        )
        .route(
            "/sse",
            get(|| async {
                let stream = futures_util::stream::unfold(0u32, |n| async move {
                    if n == 4 {
                        return None;
                    }
                    if n > 0 {
                        tokio::time::sleep(Duration::from_millis(400)).await;
                    }
                    let event = Bytes::from(format!("data: event {n}\n\n"));
                    Some((
                        Ok::<_, std::convert::Infallible>(http_body::Frame::data(event)),
                        n + 1,
                    ))
                });
                http::Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(Body::new(http_body_util::StreamBody::new(stream)))
                    .expect("response")
            }),
        )
        .fallback(|request: axum::extract::Request| async move {
            format!(
                "upstream saw {} {:?}",
                request.uri().path(),
                request.version()
            )
        })
}

/// An https upstream with `cert`, HTTP/2 and HTTP/1.1 by ALPN; with `client_ca`, it refuses
/// clients without a certificate of that authority.
async fn tls_upstream(cert: &Issued, client_ca: Option<&Authority>) -> SocketAddr {
    use rustls::pki_types::pem::PemObject;
    let chain = vec![cert.der.clone()];
    let key =
        rustls::pki_types::PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).expect("key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.issuer.der().clone()).expect("root");
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .expect("verifier");
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).expect("server config");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |request: Request<_>| {
                    use tower::ServiceExt;
                    upstream_app().oneshot(request.map(Body::new))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

/// What an HTTPS request through the gateway came back with.
struct TlsReply {
    version: Version,
    status: StatusCode,
    body: String,
    /// The end-entity certificate the server presented.
    presented: CertificateDer<'static>,
}

/// One HTTPS request on a new connection to `addr` (name `localhost`), trusting `ca_pem` only,
/// offering `alpn`; speaks HTTP/2 or HTTP/1.1 as the server chose.
async fn https_get(
    addr: SocketAddr,
    ca_pem: &str,
    alpn: &[&[u8]],
    path: &str,
    headers: &[(&str, &str)],
) -> Result<TlsReply, String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("CA pem"))
        .expect("root");
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let tls = connector
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (_, session) = tls.get_ref();
    let presented = session
        .peer_certificates()
        .and_then(|c| c.first())
        .expect("a certificate")
        .clone()
        .into_owned();
    let h2 = session.alpn_protocol() == Some(b"h2");
    let mut request = Request::builder()
        .uri(format!("https://localhost:{}{path}", addr.port()))
        .header("host", format!("localhost:{}", addr.port()));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let request = request.body(Empty::<Bytes>::new()).expect("request");
    let response = if h2 {
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        sender.send_request(request).await
    } else {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let mut request = request;
        *request.uri_mut() = path.parse().expect("path");
        sender.send_request(request).await
    }
    .map_err(|e| e.to_string())?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(TlsReply {
        version: parts.version,
        status: parts.status,
        body: String::from_utf8_lossy(&body).into_owned(),
        presented,
    })
}

/// A plain HTTP/1.1 GET with `Connection: close`: status and body.
async fn http_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut text = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    text.push_str("\r\n");
    exchange(stream, &text).await
}

/// Writes a whole request (asking for `Connection: close`), reads the whole answer: its status
/// (0 when none came) and body.
async fn exchange(mut stream: tokio::net::TcpStream, request: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut bytes = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(40), stream.read_to_end(&mut bytes)).await;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

fn sighup(gateway: &Gateway) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &gateway.child.id().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(status.success());
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_listener_speaks_http2_and_http1_and_rotates_its_certificate_on_sighup() {
    let upstream = plain_upstream().await;
    let scratch = Scratch::new("tls-listener");
    let ca = Authority::new("listener CA");
    let first = ca.issue(&["localhost", "127.0.0.1"], &rcgen::PKCS_ECDSA_P256_SHA256);
    let cert_file = scratch.write("cert.pem", &first.cert_pem);
    let key_file = scratch.write("key.pem", &first.key_pem);
    let gateway = Gateway::start(
        &[
            "serve",
            "--upstream",
            &format!("http://{upstream}"),
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            &cert_file,
            "--tls-key",
            &key_file,
        ],
        &[],
    );
    gateway.assert_logged("listening on https://");

    // HTTP/2 by ALPN, forwarded to the plain upstream as HTTP/1.1, told it was HTTPS.
    let reply = https_get(
        gateway.addr,
        &ca.pem(),
        &[b"h2", b"http/1.1"],
        "/headers",
        &[],
    )
    .await
    .expect("HTTPS over HTTP/2");
    assert_eq!(reply.version, Version::HTTP_2);
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let seen: HashMap<String, String> = serde_json::from_str(&reply.body).expect("headers");
    assert_eq!(seen["x-forwarded-proto"], "https");
    assert_eq!(reply.presented, first.der);
    // HTTP/1.1 when the client offers only that.
    let reply = https_get(gateway.addr, &ca.pem(), &[b"http/1.1"], "/anything", &[])
        .await
        .expect("HTTPS over HTTP/1.1");
    assert_eq!(reply.version, Version::HTTP_11);
    assert_eq!(reply.body, "upstream saw /anything HTTP/1.1");
    // The guards run over HTTPS as over HTTP.
    let reply = https_get(
        gateway.addr,
        &ca.pem(),
        &[b"h2"],
        "/api/security/status",
        &[("authorization", &format!("Bearer {TOKEN}"))],
    )
    .await
    .expect("admin over HTTPS");
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    // A plain HTTP client gets no answer but a closed connection, and the gateway lives on.
    let (status, _) = http_get(gateway.addr, "/health", &[]).await;
    assert_eq!(status, 0);

    // Rotation: new files, SIGHUP, new handshakes get the new certificate.
    let second = ca.issue(&["localhost"], &rcgen::PKCS_ED25519);
    scratch.write("cert.pem", &second.cert_pem);
    scratch.write("key.pem", &second.key_pem);
    sighup(&gateway);
    gateway.assert_logged("TLS certificate reloaded");
    let reply = https_get(gateway.addr, &ca.pem(), &[b"h2"], "/x", &[])
        .await
        .expect("after the reload");
    assert_eq!(reply.presented, second.der);

    // A key that does not match: refused, named, and the certificate in service stays.
    let stranger = ca.issue(&["localhost"], &rcgen::PKCS_ECDSA_P256_SHA256);
    scratch.write("key.pem", &stranger.key_pem);
    sighup(&gateway);
    gateway.assert_logged("TLS certificate not reloaded");
    gateway.assert_logged(&format!("{}: this private key does not belong", key_file));
    let reply = https_get(gateway.addr, &ca.pem(), &[b"h2"], "/x", &[])
        .await
        .expect("the old certificate still serves");
    assert_eq!(reply.presented, second.der);
    assert_eq!(reply.status, StatusCode::OK);
}

/// The gateway's exit and what it said when it refused to start.
fn start_failure(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let output = std::process::Command::new(BIN)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SECURITY_ADMIN_TOKEN", TOKEN)
        .envs(env.iter().copied())
        .output()
        .expect("run mcp-shield");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn tls_files_missing_bad_or_mismatched_are_refused_at_start_naming_them() {
    let scratch = Scratch::new("tls-bad");
    let ca = Authority::new("CA");
    let good = ca.issue(&["localhost"], &rcgen::PKCS_ECDSA_P256_SHA256);
    let other = ca.issue(&["localhost"], &rcgen::PKCS_ECDSA_P256_SHA256);
    let cert = scratch.write("cert.pem", &good.cert_pem);
    let key = scratch.write("key.pem", &good.key_pem);
    let wrong_key = scratch.write("wrong-key.pem", &other.key_pem);
    let garbage = scratch.write("garbage.pem", "this is not PEM\n");
    let missing = scratch.0.join("missing.pem").display().to_string();
    let serve = |cert: &str, key: &str| {
        start_failure(
            &[
                "serve",
                "--upstream",
                "http://127.0.0.1:9",
                "--listen",
                "127.0.0.1:0",
                "--tls-cert",
                cert,
                "--tls-key",
                key,
            ],
            &[],
        )
    };
    for (cert, key, named, says) in [
        (
            &cert,
            &wrong_key,
            &wrong_key,
            "does not belong to the certificate",
        ),
        (&missing, &key, &missing, "cannot read"),
        (&garbage, &key, &garbage, "no certificate in it"),
        (&cert, &garbage, &garbage, "no usable PEM private key"),
    ] {
        let (code, stderr) = serve(cert, key);
        assert_eq!(code, Some(1), "{stderr}");
        assert!(
            stderr.contains(named.as_str()) && stderr.contains(says),
            "{stderr}"
        );
    }
    // A certificate without its key is a configuration error, exit 2, naming the setting.
    let (code, stderr) = start_failure(
        &[
            "serve",
            "--upstream",
            "http://127.0.0.1:9",
            "--tls-cert",
            &cert,
        ],
        &[],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("SECURITY_TLS_KEY_FILE"), "{stderr}");
    let (code, stderr) = start_failure(
        &[
            "serve",
            "--upstream",
            "http://127.0.0.1:9",
            "--admin-listen",
            "nowhere",
        ],
        &[],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("SECURITY_ADMIN_LISTEN") && stderr.contains("nowhere"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstreams_are_verified_spoken_to_in_http2_and_stream_sse() {
    let scratch = Scratch::new("tls-upstream");
    let private_ca = Authority::new("private CA");
    let server = private_ca.issue(&["localhost", "127.0.0.1"], &rcgen::PKCS_ECDSA_P256_SHA256);
    let upstream = tls_upstream(&server, None).await;
    let ca_file = scratch.write("ca.pem", &private_ca.pem());

    // Trusted through the private CA: forwarded, HTTP/2 to the upstream by ALPN.
    let gateway = Gateway::serve(
        &format!("https://localhost:{}", upstream.port()),
        "127.0.0.1:0",
        &[("SECURITY_UPSTREAM_CA_FILE", &ca_file)],
    );
    let (status, body) = http_get(gateway.addr, "/hello", &[]).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "upstream saw /hello HTTP/2.0")
    );
    // SSE from an https upstream arrives event by event, not at the end.
    let started = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(gateway.addr)
        .await
        .expect("connect");
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(b"GET /sse HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n")
            .await
            .expect("write");
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains("event 0") {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed before the first event");
            seen.extend_from_slice(&buf[..n]);
        }
        assert!(
            started.elapsed() < Duration::from_millis(1000),
            "the first event waited for the stream: {:?}",
            started.elapsed()
        );
        while !String::from_utf8_lossy(&seen).contains("event 3") {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed before the last event");
            seen.extend_from_slice(&buf[..n]);
        }
        assert!(started.elapsed() >= Duration::from_millis(1100));
    }
    drop(gateway);

    // Without the private CA the upstream's certificate is not trusted: 502, and why is logged.
    let gateway = Gateway::serve(
        &format!("https://localhost:{}", upstream.port()),
        "127.0.0.1:0",
        &[],
    );
    let (status, body) = http_get(gateway.addr, "/hello", &[]).await;
    assert_eq!(status, 502, "{body}");
    gateway.assert_logged("upstream request failed");
    gateway.assert_logged("UnknownIssuer");
    drop(gateway);

    // An upstream that asks for a client certificate gets the configured one.
    let client_ca = Authority::new("client CA");
    let client = client_ca.issue(&["gateway"], &rcgen::PKCS_ECDSA_P256_SHA256);
    let mutual = tls_upstream(&server, Some(&client_ca)).await;
    let target = format!("https://localhost:{}", mutual.port());
    let without = Gateway::serve(
        &target,
        "127.0.0.1:0",
        &[("SECURITY_UPSTREAM_CA_FILE", &ca_file)],
    );
    assert_eq!(http_get(without.addr, "/hello", &[]).await.0, 502);
    drop(without);
    let client_cert = scratch.write("client.pem", &client.cert_pem);
    let client_key = scratch.write("client-key.pem", &client.key_pem);
    let with = Gateway::serve(
        &target,
        "127.0.0.1:0",
        &[
            ("SECURITY_UPSTREAM_CA_FILE", &ca_file),
            ("SECURITY_UPSTREAM_CLIENT_CERT_FILE", &client_cert),
            ("SECURITY_UPSTREAM_CLIENT_KEY_FILE", &client_key),
        ],
    );
    let (status, body) = http_get(with.addr, "/hello", &[]).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "upstream saw /hello HTTP/2.0")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_listener_serves_the_admin_api_and_the_public_one_forwards_every_path() {
    let upstream = plain_upstream().await;
    let admin_port = free_port();
    let admin: SocketAddr = format!("127.0.0.1:{admin_port}").parse().expect("addr");
    let gateway = Gateway::start(
        &[
            "serve",
            "--upstream",
            &format!("http://{upstream}"),
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            &admin.to_string(),
        ],
        &[
            ("SECURITY_ENABLE_IP_MANAGEMENT", "true"),
            ("SECURITY_BLACKLIST", "127.0.0.2"),
        ],
    );
    gateway.assert_logged(&format!("admin API and /metrics on http://{admin} only"));
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("authorization", bearer.as_str())];

    // The public listener: the upstream's own paths of those names, the token no pass.
    for path in [
        "/api/security/status",
        "/metrics",
        "/api/security/ip/blacklist",
        "/dashboard",
    ] {
        let (status, body) = http_get(gateway.addr, path, &auth).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body, format!("upstream saw {path} HTTP/1.1"));
    }
    // /health and /ready are the gateway's on both.
    for addr in [gateway.addr, admin] {
        let (status, body) = http_get(addr, "/health", &[]).await;
        assert_eq!(status, 200);
        assert!(body.contains("\"ok\""), "{body}");
        assert_eq!(http_get(addr, "/ready", &[]).await.0, 200);
    }
    // The admin listener: the API with its token, metrics, and nothing forwarded.
    let (status, body) = http_get(admin, "/api/security/status", &auth).await;
    assert_eq!(status, 200, "{body}");
    let status_doc: serde_json::Value = serde_json::from_str(&body).expect("status JSON");
    assert!(status_doc.get("components").is_some(), "{body}");
    assert_eq!(http_get(admin, "/api/security/status", &[]).await.0, 401);
    let (status, body) = http_get(admin, "/metrics", &[]).await;
    assert_eq!(status, 200);
    assert!(body.contains("mcp_shield_requests_total"), "{body}");
    assert_eq!(http_get(admin, "/anything-else", &[]).await.0, 404);
    assert_eq!(http_get(admin, "/dashboard", &[]).await.0, 200);

    // A blacklisted client reaches neither the upstream's /metrics nor its admin-like paths.
    let blocked = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind("127.0.0.2:0".parse().expect("addr"))
            .expect("bind 127.0.0.2");
        let mut stream = socket.connect(gateway.addr).await.expect("connect");
        stream
            .write_all(
                format!("GET /metrics HTTP/1.1\r\nHost: localhost\r\nAuthorization: {bearer}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .expect("write");
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes).await;
        String::from_utf8_lossy(&bytes).into_owned()
    };
    assert!(blocked.starts_with("HTTP/1.1 403"), "{blocked}");
    assert!(blocked.contains("ip_blocked"), "{blocked}");
}

/// A GET from a chosen loopback address: status and body.
async fn get_from(addr: SocketAddr, from: &str, path: &str) -> (u16, String) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{from}:0").parse().expect("addr"))
        .expect("bind source");
    let stream = socket.connect(addr).await.expect("connect");
    exchange(
        stream,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
    )
    .await
}

/// A POST with the admin token: status and body.
async fn admin_post(addr: SocketAddr, path: &str, body: &str) -> (u16, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    exchange(stream, &request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_file_keeps_state_and_streams_and_refuses_a_bad_file_whole() {
    let upstream = plain_upstream().await;
    let scratch = Scratch::new("reload");
    let first = r#"
enable_rate_limiting = true
enable_ip_management = true
blacklist = ["127.0.0.2"]

[rate_limit]
per_ip_capacity = 1000
"#;
    let file = scratch.write("shield.toml", first);
    let gateway = Gateway::start(
        &[
            "--config",
            &file,
            "serve",
            "--upstream",
            &format!("http://{upstream}"),
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    let addr = gateway.addr;
    assert_eq!(get_from(addr, "127.0.0.2", "/x").await.0, 403);
    assert_eq!(get_from(addr, "127.0.0.3", "/x").await.0, 200);
    // State made at run time: a block added through the admin API.
    let (status, body) = admin_post(
        addr,
        "/api/security/ip/blacklist",
        r#"{"ip": "127.0.0.6", "reason": "added by hand"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // An SSE stream open across the reload: four events 400 ms apart.
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut seen = Vec::new();
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(b"GET /sse HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&seen).contains("event 0") {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0);
            seen.extend_from_slice(&buf[..n]);
        }
    }

    // The new file: another address blacklisted, a tight per-address budget, and a setting
    // that waits for a restart.
    scratch.write(
        "shield.toml",
        r#"
enable_rate_limiting = true
enable_ip_management = true
blacklist = ["127.0.0.3"]

[rate_limit]
per_ip_capacity = 3
per_ip_refill_rate = 0.01

[ddos]
max_tracked_ips = 500
"#,
    );
    sighup(&gateway);
    gateway.assert_logged("configuration reloaded (SIGHUP)");
    gateway.assert_logged("not changed until a restart: ddos.max_tracked_ips");
    assert_eq!(
        get_from(addr, "127.0.0.2", "/x").await.0,
        200,
        "no longer listed"
    );
    assert_eq!(
        get_from(addr, "127.0.0.3", "/x").await.0,
        403,
        "newly listed"
    );
    assert_eq!(
        get_from(addr, "127.0.0.6", "/x").await.0,
        403,
        "the hand-made block stays"
    );
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(get_from(addr, "127.0.0.7", "/x").await.0);
    }
    assert_eq!(statuses, vec![200, 200, 200, 429], "the new budget");
    // The stream opened before the reload runs to its end.
    {
        use tokio::io::AsyncReadExt;
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest))
            .await
            .expect("the stream ends")
            .expect("read");
        seen.extend_from_slice(&rest);
        let text = String::from_utf8_lossy(&seen);
        assert!(text.contains("event 3"), "{text}");
    }

    // A file that fails validation is refused whole: the log names the file, key and value,
    // and the running configuration stays (127.0.0.3 still refused, 127.0.0.2 still served).
    scratch.write(
        "shield.toml",
        r#"
enable_rate_limiting = true
enable_ip_management = true
blacklist = ["127.0.0.2"]

[rate_limit]
per_ip_capacity = "lots"
"#,
    );
    sighup(&gateway);
    gateway.assert_logged("configuration reload (SIGHUP) refused");
    gateway.assert_logged("per_ip_capacity");
    gateway.assert_logged("lots");
    assert!(gateway.log_text().contains(&file), "{}", gateway.log_text());
    assert_eq!(get_from(addr, "127.0.0.3", "/x").await.0, 403);
    assert_eq!(get_from(addr, "127.0.0.2", "/x").await.0, 200);

    // The admin API does the same, and says what it did.
    scratch.write("shield.toml", first);
    let (status, body) = admin_post(addr, "/api/security/reload", "").await;
    assert_eq!(status, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).expect("report");
    let applied: Vec<&str> = report["applied"]
        .as_array()
        .expect("applied")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(applied.contains(&"blacklist"), "{body}");
    assert!(applied.contains(&"rate_limit.per_ip_capacity"), "{body}");
    // The setting that waited for a restart is back at its running value: nothing waits.
    assert_eq!(report["needs_restart"], serde_json::json!([]), "{body}");
    assert_eq!(get_from(addr, "127.0.0.2", "/x").await.0, 403);
    assert_eq!(get_from(addr, "127.0.0.3", "/x").await.0, 200);
}
