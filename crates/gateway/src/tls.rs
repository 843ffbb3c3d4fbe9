//! TLS for the gateway: the listener's certificate, re-read on SIGHUP (a bad new file keeps the
//! old certificate in service), and the client side of an https upstream (the system's roots
//! plus a private CA, an optional client certificate).
//!
//! rustls on ring, as everywhere else in the project: no C toolchain beyond what ring builds.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// The crypto the gateway uses for TLS, both ways.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A PEM certificate chain, end-entity certificate first; an error names the file.
fn read_chain(file: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(file)
        .map_err(|e| {
            format!(
                "{}: cannot read a PEM certificate chain: {e}",
                file.display()
            )
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: not a PEM certificate chain: {e}", file.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "{}: no certificate in it (expected PEM `-----BEGIN CERTIFICATE-----` blocks)",
            file.display()
        ));
    }
    Ok(chain)
}

/// A PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC); an error names the file.
fn read_key(file: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(file).map_err(|e| {
        format!(
            "{}: no usable PEM private key (PKCS#8, RSA or EC): {e}",
            file.display()
        )
    })
}

/// A certificate chain and its key, checked to belong together.
fn read_certified_key(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, String> {
    let chain = read_chain(cert_file)?;
    let key = read_key(key_file)?;
    certify(chain, key, cert_file, key_file)
}

/// `chain` and `key` as one, checked to belong together; errors name the files.
fn certify(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_file: &Path,
    key_file: &Path,
) -> Result<CertifiedKey, String> {
    CertifiedKey::from_der(chain, key, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => format!(
            "{}: this private key does not belong to the certificate in {}",
            key_file.display(),
            cert_file.display()
        ),
        other => format!(
            "{} / {}: cannot use this certificate and key: {other}",
            cert_file.display(),
            key_file.display()
        ),
    })
}

/// The listener's certificate and key, swapped in place by [`ListenerCert::reload`]: the TLS
/// configuration asks for the current one at every handshake, so connections already open keep
/// theirs and new ones get the new one, with no restart.
#[derive(Debug)]
pub struct ListenerCert {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ListenerCert {
    /// Reads both files; an error names the file and what is wrong with it.
    pub fn load(cert_file: &str, key_file: &str) -> Result<Arc<Self>, String> {
        let (cert_file, key_file) = (PathBuf::from(cert_file), PathBuf::from(key_file));
        let key = read_certified_key(&cert_file, &key_file)?;
        Ok(Arc::new(ListenerCert {
            cert_file,
            key_file,
            current: RwLock::new(Arc::new(key)),
        }))
    }

    /// Reads the files again; on success new handshakes use them, on failure the certificate in
    /// service stays and the error (naming the file) is returned.
    pub fn reload(&self) -> Result<(), String> {
        let key = read_certified_key(&self.cert_file, &self.key_file)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
        Ok(())
    }

    /// The certificate file's path, for log lines.
    pub fn cert_file(&self) -> &Path {
        &self.cert_file
    }

    /// A server configuration that serves this certificate, HTTP/2 and HTTP/1.1 by ALPN.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, String> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ListenerCert {
    /// The certificate and key new handshakes get.
    fn resolve_current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl ResolvesServerCert for ListenerCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.resolve_current())
    }
}

/// What an https upstream is verified against and shown.
#[derive(Debug, Default, Clone)]
pub struct UpstreamTls {
    /// PEM file of a private CA trusted besides the system's roots (empty: none).
    pub ca_file: String,
    /// PEM client certificate chain (empty: no client certificate).
    pub client_cert_file: String,
    /// Its private key.
    pub client_key_file: String,
}

impl UpstreamTls {
    /// The client configuration: the system's roots (Debian's `ca-certificates`) and the private
    /// CA, and the client certificate when one is given. ALPN is set by the connector.
    pub fn client_config(&self) -> Result<ClientConfig, String> {
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        let (added, _ignored) = roots.add_parsable_certificates(native.certs);
        if !native.errors.is_empty() {
            tracing::debug!(target: "mcp_shield::proxy", "some system certificates could not be read: {:?}", native.errors);
        }
        if !self.ca_file.is_empty() {
            let file = Path::new(&self.ca_file);
            for cert in read_chain(file)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: not a usable CA certificate: {e}", file.display()))?;
            }
        }
        if roots.is_empty() {
            return Err(format!(
                "no certificate authority to verify an https upstream with: the system has none \
                 ({added} found; install ca-certificates) and SECURITY_UPSTREAM_CA_FILE is not set"
            ));
        }
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_root_certificates(roots);
        if self.client_cert_file.is_empty() {
            return Ok(builder.with_no_client_auth());
        }
        let (cert_file, key_file) = (
            Path::new(&self.client_cert_file),
            Path::new(&self.client_key_file),
        );
        let (chain, key) = (read_chain(cert_file)?, read_key(key_file)?);
        // Checked to belong together first, for an error that names the files.
        certify(chain.clone(), key.clone_key(), cert_file, key_file)?;
        builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("{}: {e}", key_file.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for `localhost` with a key of `algorithm`, as PEM files.
    fn self_signed(dir: &Path, algorithm: &'static rcgen::SignatureAlgorithm) -> (String, String) {
        let key = rcgen::KeyPair::generate_for(algorithm).expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("certificate");
        write_pair(dir, &cert.pem(), &key.serialize_pem())
    }

    fn write_pair(dir: &Path, cert: &str, key: &str) -> (String, String) {
        let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert_file, cert).expect("write");
        std::fs::write(&key_file, key).expect("write");
        (
            cert_file.display().to_string(),
            key_file.display().to_string(),
        )
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("mcp-shield-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("folder");
        dir
    }

    #[test]
    fn ecdsa_and_ed25519_keys_serve() {
        let dir = scratch("ec");
        for algorithm in [
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P384_SHA384,
            &rcgen::PKCS_ED25519,
        ] {
            let (cert, key) = self_signed(&dir, algorithm);
            let loaded = ListenerCert::load(&cert, &key).expect("loads");
            loaded.server_config().expect("a server configuration");
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    /// RSA keys come from `openssl` (ring cannot generate them), in both PEM forms: PKCS#8
    /// (`BEGIN PRIVATE KEY`) and PKCS#1 (`BEGIN RSA PRIVATE KEY`), with a chain of two.
    #[test]
    fn rsa_keys_in_pkcs8_and_pkcs1_with_a_chain_serve() {
        let dir = scratch("rsa");
        let run = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .expect("openssl is installed (.ci/run installs it)");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=test CA",
        ]);
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=localhost",
        ]);
        // Extensions make it a version 3 certificate (webpki refuses version 1).
        std::fs::write(dir.join("leaf.ext"), "subjectAltName=DNS:localhost\n").expect("ext");
        run(&[
            "x509",
            "-extfile",
            "leaf.ext",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "2",
        ]);
        run(&[
            "rsa",
            "-in",
            "leaf.key",
            "-out",
            "leaf-pkcs1.key",
            "-traditional",
        ]);
        let chain = format!(
            "{}{}",
            std::fs::read_to_string(dir.join("leaf.pem")).expect("leaf"),
            std::fs::read_to_string(dir.join("ca.pem")).expect("ca")
        );
        std::fs::write(dir.join("chain.pem"), chain).expect("chain");
        for key in ["leaf.key", "leaf-pkcs1.key"] {
            let text = std::fs::read_to_string(dir.join(key)).expect("key");
            assert!(text.contains("PRIVATE KEY"));
            let loaded = ListenerCert::load(
                &dir.join("chain.pem").display().to_string(),
                &dir.join(key).display().to_string(),
            )
            .unwrap_or_else(|e| panic!("{key}: {e}"));
            let served = loaded.resolve_current();
            assert_eq!(served.cert.len(), 2, "the whole chain is served");
        }
        assert!(std::fs::read_to_string(dir.join("leaf-pkcs1.key"))
            .expect("key")
            .contains("BEGIN RSA PRIVATE KEY"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_failed_reload_keeps_the_certificate_in_service() {
        let dir = scratch("reload");
        let (cert, key) = self_signed(&dir, &rcgen::PKCS_ECDSA_P256_SHA256);
        let loaded = ListenerCert::load(&cert, &key).expect("loads");
        let before = loaded.resolve_current().cert[0].clone();
        std::fs::write(&cert, "not a certificate").expect("write");
        let error = loaded.reload().expect_err("refused");
        assert!(error.contains(&cert), "{error}");
        assert_eq!(loaded.resolve_current().cert[0], before);
        self_signed(&dir, &rcgen::PKCS_ED25519);
        loaded.reload().expect("a good pair reloads");
        assert_ne!(loaded.resolve_current().cert[0], before);
        let _ = std::fs::remove_dir_all(dir);
    }
}
