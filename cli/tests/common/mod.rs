//! What several of the binary's test files need.
// Each test file compiles this module on its own and uses a different part of it.
#![allow(dead_code)]

pub mod daemon;
pub mod netns;
pub mod peers;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lvs_hc_core::ProbeOutcome;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh temporary directory, removed when dropped. Tests run in parallel, so every call
/// gets its own.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "lvs-hc-test-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.0
    }

    /// `name` inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A probe's pass, without a weight.
pub const PASS: ProbeOutcome = ProbeOutcome::Pass { weight: None };

/// A probe's failure for `reason`.
pub fn fail(reason: &str) -> ProbeOutcome {
    ProbeOutcome::Fail {
        reason: reason.into(),
    }
}

/// The directory of the test certificate: tests/fixtures/tls.
pub const TLS_FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");

/// TLS with the self-signed certificate in tests/fixtures/tls: localhost and 127.0.0.1,
/// P-256, valid for a century, not a CA (so it can be trusted as itself through `ca_file`);
/// made with
/// `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout key.pem
/// -out cert.pem -days 36500 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1
/// -addext basicConstraints=critical,CA:FALSE -addext keyUsage=critical,digitalSignature
/// -addext extendedKeyUsage=serverAuth`. It offers the application protocols `alpn` (none:
/// HTTP/1.1 needs no negotiation; gRPC servers offer `h2`).
pub fn tls_acceptor(alpn: &[&[u8]]) -> tokio_rustls::TlsAcceptor {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(format!("{TLS_FIXTURES}/cert.pem"))
            .unwrap()
            .map(Result::unwrap)
            .collect();
    let key = PrivateKeyDer::from_pem_file(format!("{TLS_FIXTURES}/key.pem")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}
