//! TLS for the listeners (top layer): a certificate chain and private key from PEM,
//! turned into a rustls acceptor that the gateway (`wss://`) and the HTTP side
//! (`https://`) wrap each accepted socket in before anything else reads it.

use std::path::Path;
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A server certificate and key, ready to accept TLS connections.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
}

/// Why a certificate or key could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

impl Tls {
    /// Loads a PEM certificate chain (leaf first) and a PEM private key (PKCS#8,
    /// PKCS#1 or SEC1) from files.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Tls, TlsError> {
        let cert_pem = std::fs::read(cert)
            .map_err(|e| TlsError(format!("reading the certificate {}: {e}", cert.display())))?;
        let key_pem = std::fs::read(key)
            .map_err(|e| TlsError(format!("reading the key {}: {e}", key.display())))?;
        Tls::from_pem(&cert_pem, &key_pem)
    }

    /// Builds from PEM text: a certificate chain (leaf first) and a private key.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Tls, TlsError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError(format!("the certificate is not valid PEM: {e}")))?;
        if chain.is_empty() {
            return Err(TlsError(
                "the certificate file holds no CERTIFICATE block".into(),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| TlsError(format!("the key is not a valid PEM private key: {e}")))?;
        // ring rather than aws-lc-rs: no C toolchain build of aws-lc. rustls marks
        // ring's provider deprecated as it lacks the post-quantum key exchange; the
        // classical X25519/P-256 groups it offers are what TLS clients use today.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(format!("TLS setup: {e}")))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| TlsError(format!("the certificate and key do not fit: {e}")))?;
        // The HTTP side speaks HTTP/1.1; the WebSocket upgrade is HTTP/1.1 as well.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// The acceptor that wraps an accepted socket.
    pub(crate) fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }
}
