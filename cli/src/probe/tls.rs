//! TLS for https checks, smtp checks with STARTTLS and grpc checks: tokio-rustls with the `ring` provider,
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

/// The client configurations of TLS checks (https, smtp with STARTTLS, grpc), one per distinct
/// [`TlsSettings`] and [`Alpn`]: a grpc check's configuration offers `h2`, the others offer
/// nothing, so neither disturbs the other even with equal settings.
#[derive(Default)]
pub(super) struct TlsConfigs(Mutex<HashMap<TlsSettings, [Option<Arc<rustls::ClientConfig>>; 2]>>);

/// The settings of a TLS check that gives none: verification with the system's roots.
const DEFAULT_SETTINGS: TlsSettings = TlsSettings {
    sni: None,
    verify: true,
    ca_file: None,
};

/// The application protocols a client configuration offers (ALPN); as a number, the index of
/// its configuration among those of the same settings in [`TlsConfigs`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Alpn {
    /// None: https checks speak HTTP/1.1, which needs no negotiation.
    Unoffered,
    /// `h2` alone: grpc checks speak HTTP/2.
    H2,
}

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
        let settings = settings.unwrap_or(&DEFAULT_SETTINGS);
        let name = server_name(settings, host, target);
        let tls = self
            .connect(stream, settings, name, Alpn::Unoffered)
            .await?;
        Ok(Box::new(tls))
    }

    /// TLS offering HTTP/2 (ALPN `h2`) over `stream`, a fresh connection to `target` for a
    /// grpc check with `settings` and `authority`. A server that picks another protocol fails;
    /// one that picks none is given HTTP/2 anyway (the HTTP/2 exchange then tells).
    pub(super) async fn handshake_h2<S>(
        &self,
        stream: S,
        settings: &TlsSettings,
        authority: Option<&str>,
        target: SocketAddr,
    ) -> Result<BoxStream, ProbeOutcome>
    where
        S: AsyncRead + AsyncWrite + Unpin + 'static,
    {
        let name = server_name(settings, authority, target);
        let tls = self.connect(stream, settings, name, Alpn::H2).await?;
        match tls.get_ref().1.alpn_protocol() {
            None | Some(b"h2") => Ok(Box::new(tls)),
            Some(other) => Err(fail(format!(
                "TLS: the server chose protocol {:?} instead of HTTP/2 (h2)",
                String::from_utf8_lossy(other)
            ))),
        }
    }

    /// The handshake itself.
    async fn connect<S>(
        &self,
        stream: S,
        settings: &TlsSettings,
        name: rustls_pki_types::ServerName<'static>,
        alpn: Alpn,
    ) -> Result<tokio_rustls::client::TlsStream<S>, ProbeOutcome>
    where
        S: AsyncRead + AsyncWrite + Unpin + 'static,
    {
        // A CA file that cannot be read is this director's problem, not the server's.
        let config = match self.config(settings, alpn) {
            Ok(c) => c,
            Err(e) => {
                return Err(ProbeOutcome::DirectorFault {
                    reason: format!("TLS setup failed: {e}"),
                })
            }
        };
        let connector = tokio_rustls::TlsConnector::from(config);
        // Boxed: the handshake's state is large and only TLS probes need it.
        match Box::pin(connector.connect(name, stream)).await {
            Ok(tls) => Ok(tls),
            Err(e) => Err(match director_fault(&e) {
                Some(reason) => ProbeOutcome::DirectorFault { reason },
                None => fail(format!("TLS handshake failed: {e}")),
            }),
        }
    }

    /// The client configuration for `settings` offering `alpn`, built the first time they are
    /// asked for.
    fn config(
        &self,
        settings: &TlsSettings,
        alpn: Alpn,
    ) -> Result<Arc<rustls::ClientConfig>, String> {
        let mut cache = self.0.lock().expect("TLS cache lock");
        // Looked up by reference: a probe clones no settings once its configuration exists.
        if let Some(c) = cache
            .get(settings)
            .and_then(|by_alpn| by_alpn[alpn as usize].clone())
        {
            return Ok(c);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let mut config = if settings.verify {
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
        if alpn == Alpn::H2 {
            config.alpn_protocols = vec![b"h2".to_vec()];
        }
        let config = Arc::new(config);
        cache.entry(settings.clone()).or_default()[alpn as usize] = Some(config.clone());
        Ok(config)
    }
}

/// The system's trusted roots, read once.
fn system_roots() -> &'static [rustls_pki_types::CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<rustls_pki_types::CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}

/// The name the server's certificate must carry: `sni`, else the check's `host` (https) or
/// `authority` (grpc) without its port, else the server's address.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_configurations_offer_h2_and_https_ones_do_not() {
        let configs = TlsConfigs::default();
        let settings = TlsSettings {
            sni: None,
            verify: false,
            ca_file: None,
        };
        let https = configs.config(&settings, Alpn::Unoffered).unwrap();
        let grpc = configs.config(&settings, Alpn::H2).unwrap();
        assert!(https.alpn_protocols.is_empty());
        assert_eq!(grpc.alpn_protocols, vec![b"h2".to_vec()]);
        // Each is built once and kept apart: asking again gives the same one.
        assert!(Arc::ptr_eq(
            &https,
            &configs.config(&settings, Alpn::Unoffered).unwrap()
        ));
        assert!(Arc::ptr_eq(
            &grpc,
            &configs.config(&settings, Alpn::H2).unwrap()
        ));
    }

    #[test]
    fn server_names_come_from_sni_then_host_then_address() {
        let target: SocketAddr = "10.0.0.1:50051".parse().unwrap();
        let mut settings = TlsSettings {
            sni: None,
            verify: true,
            ca_file: None,
        };
        let name = |s: &TlsSettings, host| server_name(s, host, target).to_str().into_owned();
        assert_eq!(name(&settings, None), "10.0.0.1");
        assert_eq!(
            name(&settings, Some("grpc.example.com:50051")),
            "grpc.example.com"
        );
        settings.sni = Some("tls.example.com".into());
        assert_eq!(name(&settings, Some("grpc.example.com")), "tls.example.com");
    }
}
