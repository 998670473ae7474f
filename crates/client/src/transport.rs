//! The socket under a connection: TCP, wrapped in TLS for `wss://` URLs, then the
//! WebSocket upgrade. TLS is rustls with the ring provider; the server's certificate
//! must chain to one of Mozilla's roots (webpki-roots) or to a CA certificate the app
//! added with [`crate::ClientConfig::with_ca_certificate`]. Every failure is told apart
//! in its reason: the address, the TLS handshake (an untrusted certificate says so and
//! how to trust its CA), the upgrade.

use crate::types::RtmError;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use switchboard_protocol::ErrorCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::http::Uri;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// A connection's byte stream: plain TCP (`ws://`) or TLS over TCP (`wss://`).
pub(crate) enum Stream {
    /// `ws://`.
    Plain(TcpStream),
    /// `wss://` (boxed: the TLS state is large, the plain variant small).
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// The TLS settings of a client: the roots its servers' certificates must chain to.
pub(crate) type TlsConfig = Arc<rustls::ClientConfig>;

/// rustls with ring: no C toolchain build of aws-lc (the server makes the same choice,
/// `crates/server/src/tls.rs`).
fn client_config(roots: rustls::RootCertStore) -> Result<TlsConfig, String> {
    // rustls marks ring's provider deprecated as it lacks the post-quantum key
    // exchange; the classical X25519/P-256 groups are what servers offer today.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Mozilla's roots (webpki-roots).
fn default_roots() -> rustls::RootCertStore {
    rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// The TLS settings for `ca_pems` (PEM text, each with one or more CERTIFICATE blocks)
/// added to Mozilla's roots; one shared value when there are none. Fails with −10014
/// and the reason for a PEM without a certificate or with one rustls cannot use.
pub(crate) fn tls_config(ca_pems: &[Vec<u8>]) -> Result<TlsConfig, RtmError> {
    let invalid = |why: String| RtmError::new(ErrorCode::InvalidParameter, "new", why);
    if ca_pems.is_empty() {
        static DEFAULT: OnceLock<TlsConfig> = OnceLock::new();
        if let Some(c) = DEFAULT.get() {
            return Ok(c.clone());
        }
        let c = client_config(default_roots()).map_err(invalid)?;
        return Ok(DEFAULT.get_or_init(|| c).clone());
    }
    let mut roots = default_roots();
    for (i, pem) in ca_pems.iter().enumerate() {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<_, _>>()
            .map_err(|e| invalid(format!("CA certificate {}: not valid PEM: {e}", i + 1)))?;
        if certs.is_empty() {
            return Err(invalid(format!(
                "CA certificate {}: the PEM holds no CERTIFICATE block",
                i + 1
            )));
        }
        for c in certs {
            roots.add(c).map_err(|e| {
                invalid(format!(
                    "CA certificate {}: not usable as a root: {e}",
                    i + 1
                ))
            })?;
        }
    }
    client_config(roots).map_err(invalid)
}

/// A connect failure (−10013 `LOGIN_ABORTED`, as every connect failure) with `why`.
fn aborted(why: String) -> RtmError {
    RtmError::new(ErrorCode::LoginAborted, "login", why)
}

/// Connects to `url` (`ws://` or `wss://`), upgrades to a WebSocket with `ws_config`
/// and returns the stream.
pub(crate) async fn connect(
    url: &str,
    tls: &TlsConfig,
    ws_config: WebSocketConfig,
) -> Result<WebSocketStream<Stream>, RtmError> {
    let uri: Uri = url
        .parse()
        .map_err(|e| aborted(format!("cannot connect: {url:?} is not a URL: {e}")))?;
    let secure = match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("ws") => false,
        Some(s) if s.eq_ignore_ascii_case("wss") => true,
        other => {
            return Err(aborted(format!(
                "cannot connect: {url:?} has the scheme {:?}; use ws:// or wss://",
                other.unwrap_or("")
            )));
        }
    };
    let Some(host) = uri.host() else {
        return Err(aborted(format!("cannot connect: {url:?} names no host")));
    };
    // `[::1]` in a URL is the address `::1`.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(|e| aborted(format!("cannot connect to {host}:{port}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let stream = if secure {
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| aborted(format!("cannot connect: {host:?} is not a TLS name: {e}")))?;
        let tls = TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| aborted(tls_failure(host, port, &e)))?;
        Stream::Tls(Box::new(tls))
    } else {
        Stream::Plain(tcp)
    };
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(ws_config))
        .await
        .map_err(|e| aborted(format!("cannot connect: the WebSocket upgrade failed: {e}")))?;
    Ok(ws)
}

/// Why the TLS handshake with `host:port` failed, for a person: a certificate that is
/// not trusted says so and how to trust its CA.
fn tls_failure(host: &str, port: u16, e: &io::Error) -> String {
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    match inner {
        Some(rustls::Error::InvalidCertificate(why)) => format!(
            "cannot connect to {host}:{port}: the server's TLS certificate is not trusted \
             ({why:?}); if it is signed by your own CA, add that CA's certificate \
             (ClientConfig::with_ca_certificate; `--ca-cert FILE` in the CLI)"
        ),
        _ => format!("cannot connect to {host}:{port}: the TLS handshake failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::tls_config;

    #[test]
    fn a_pem_without_a_certificate_is_refused_with_a_reason() {
        let e = tls_config(&[b"not a pem".to_vec()]).expect_err("refused");
        assert_eq!(e.code, -10014);
        assert!(e.reason.contains("no CERTIFICATE"), "{}", e.reason);
        assert!(tls_config(&[]).is_ok(), "the default roots load");
    }
}
