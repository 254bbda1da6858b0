//! TLS for https checks and smtp checks with STARTTLS: tokio-rustls with the `ring` provider,
//! one client configuration per distinct [`TlsSettings`], built the first time a check needs
//! it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use lvs_hc_core::config::TlsSettings;
use lvs_hc_core::ProbeOutcome;
use tokio::io::{AsyncRead, AsyncWrite};

use super::pool::BoxStream;
use super::{director_fault, fail};

/// The client configurations of TLS checks, one per distinct [`TlsSettings`].
#[derive(Default)]
pub(super) struct TlsConfigs(Mutex<HashMap<TlsSettings, Arc<rustls::ClientConfig>>>);

impl TlsConfigs {
    /// TLS over `stream`, a connection to `target`, with `settings` (verification with the
    /// system's roots when `None`). `host` is the name to verify when `sni` gives none (an
    /// https check's Host header); without either, the certificate must name the address.
    pub(super) async fn handshake<S>(
        &self,
        stream: S,
        settings: Option<&TlsSettings>,
        host: Option<&str>,
        target: SocketAddr,
    ) -> Result<BoxStream, ProbeOutcome>
    where
        S: AsyncRead + AsyncWrite + Unpin + 'static,
    {
        let settings = settings.cloned().unwrap_or(TlsSettings {
            sni: None,
            verify: true,
            ca_file: None,
        });
        // A CA file that cannot be read is this director's problem, not the server's.
        let config = match self.config(&settings) {
            Ok(c) => c,
            Err(e) => {
                return Err(ProbeOutcome::DirectorFault {
                    reason: format!("TLS setup failed: {e}"),
                })
            }
        };
        let name = server_name(&settings, host, target);
        let connector = tokio_rustls::TlsConnector::from(config);
        // Boxed: the handshake's state is large and only https probes need it.
        match Box::pin(connector.connect(name, stream)).await {
            Ok(tls) => Ok(Box::new(tls)),
            Err(e) => Err(match director_fault(&e) {
                Some(reason) => ProbeOutcome::DirectorFault { reason },
                None => fail(format!("TLS handshake failed: {e}")),
            }),
        }
    }

    /// The client configuration for `settings`, built the first time they are asked for.
    fn config(&self, settings: &TlsSettings) -> Result<Arc<rustls::ClientConfig>, String> {
        let mut cache = self.0.lock().expect("TLS cache lock");
        if let Some(c) = cache.get(settings) {
            return Ok(c.clone());
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let config = if settings.verify {
            let mut roots = rustls::RootCertStore::empty();
            for cert in system_roots() {
                let _ = roots.add(cert.clone());
            }
            if let Some(path) = &settings.ca_file {
                use rustls_pki_types::pem::PemObject;
                let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
                    .map_err(|e| format!("cannot read ca_file {path}: {e}"))?;
                for cert in certs {
                    roots
                        .add(cert.map_err(|e| format!("ca_file {path}: {e}"))?)
                        .map_err(|e| e.to_string())?;
                }
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
                .with_no_client_auth()
        };
        let config = Arc::new(config);
        cache.insert(settings.clone(), config.clone());
        Ok(config)
    }
}

/// The system's trusted roots, read once.
fn system_roots() -> &'static [rustls_pki_types::CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<rustls_pki_types::CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}

/// The name the server's certificate must carry: `sni`, else `host` without its port, else the
/// server's address.
fn server_name(
    settings: &TlsSettings,
    host: Option<&str>,
    target: SocketAddr,
) -> rustls_pki_types::ServerName<'static> {
    let name = settings.sni.clone().or_else(|| host.map(strip_port));
    match name.and_then(|n| rustls_pki_types::ServerName::try_from(n).ok()) {
        Some(n) => n,
        None => rustls_pki_types::ServerName::IpAddress(target.ip().into()),
    }
}

/// `www.example.com:8443` → `www.example.com`; an IPv6 address keeps its colons.
fn strip_port(host: &str) -> String {
    match host.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) && !h.contains(':') => h.to_string(),
        _ => host.to_string(),
    }
}

/// Accepts any certificate: `verify = false`.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
