//! Issue 16, TLS: with a certificate and key (PEM) the WebSocket listener speaks
//! `wss://` and the HTTP side `https://`; a client that trusts the certificate logs in
//! and gets answers, a plain client gets nothing. The certificate is made by the test
//! (rcgen, self-signed for `localhost`).

mod common;

use common::*;
use std::sync::Arc;
use switchboard_engine_memory::{MemoryBroker, MemoryConfig};
use switchboard_protocol::pb::{self, server_message};
use switchboard_server::{Server, Tls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::ServerName;

/// A self-signed certificate for `localhost`: (certificate PEM, key PEM).
fn self_signed() -> (String, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("rcgen");
    (ck.cert.pem(), ck.signing_key.serialize_pem())
}

/// A TLS client that trusts only `cert_pem`.
fn connector(cert_pem: &str) -> TlsConnector {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(cert_pem.as_bytes()) {
        roots.add(c.expect("PEM")).expect("a root");
    }
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// A server with TLS on both listeners; returns it and its HTTP address.
async fn tls_server(cert: &str, key: &str) -> (TestServer, std::net::SocketAddr) {
    let tls = Tls::from_pem(cert.as_bytes(), key.as_bytes()).expect("a valid cert and key");
    let http = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let http_addr = http.local_addr().expect("addr");
    let broker = Arc::new(MemoryBroker::new(MemoryConfig::default()));
    let server = Server::new(base_config(), broker)
        .with_tls(tls)
        .with_http(http);
    (TestServer::with_parts(server).await, http_addr)
}

#[tokio::test]
async fn wss_login_and_https_health_with_a_self_signed_certificate() {
    let (cert, key) = self_signed();
    let (s, http) = tls_server(&cert, &key).await;
    let tls = connector(&cert);

    // wss://localhost:port/v1/ws: TLS to the certificate's name, then the upgrade.
    let tcp = TcpStream::connect(s.addr).await.expect("tcp");
    let stream = tls
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("the TLS handshake succeeds with the trusted certificate");
    let url = format!(
        "wss://localhost:{}{}",
        s.addr.port(),
        switchboard_server::WS_PATH
    );
    let (mut ws, resp) = tokio_tungstenite::client_async(url, stream)
        .await
        .expect("the WebSocket upgrade over TLS");
    assert_eq!(resp.status(), 101);
    let reply = login_on(
        &mut ws,
        pb::LoginRequest {
            app_id: APP_ID.into(),
            user_id: "alice".into(),
            token: token("alice"),
            heartbeat_interval: 60,
            ..Default::default()
        },
    )
    .await;
    assert!(
        matches!(reply, server_message::Body::Login(_)),
        "login over wss succeeds: {reply:?}"
    );

    // https://localhost:port/healthz on the HTTP side.
    let tcp = TcpStream::connect(http).await.expect("tcp");
    let mut stream = tls
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS to the HTTP side");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = String::new();
    tokio::time::timeout(STEP, stream.read_to_string(&mut answer))
        .await
        .expect("an answer in time")
        .ok();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"status\":\"ok\""), "{answer}");
}

#[tokio::test]
async fn plain_ws_and_untrusted_clients_are_refused_on_a_tls_listener() {
    let (cert, key) = self_signed();
    let (s, _http) = tls_server(&cert, &key).await;

    // A plain ws:// handshake on the TLS port fails (the server waits for a
    // ClientHello and drops the connection on garbage).
    let plain = tokio::time::timeout(STEP, tokio_tungstenite::connect_async(s.url()))
        .await
        .expect("the server answers in time");
    assert!(
        plain.is_err(),
        "a plain WebSocket handshake must not succeed"
    );

    // A client that trusts another certificate refuses the server's.
    let (other, _) = self_signed();
    let tcp = TcpStream::connect(s.addr).await.expect("tcp");
    let r = connector(&other)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await;
    assert!(r.is_err(), "an untrusted certificate fails the handshake");

    // The server still serves a trusting client afterwards.
    let tcp = TcpStream::connect(s.addr).await.expect("tcp");
    let stream = connector(&cert)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS");
    let url = format!(
        "wss://localhost:{}{}",
        s.addr.port(),
        switchboard_server::WS_PATH
    );
    tokio_tungstenite::client_async(url, stream)
        .await
        .expect("upgrade after the failed attempts");
}

#[test]
fn bad_pem_is_refused_with_a_reason() {
    let (cert, key) = self_signed();
    let e = Tls::from_pem(b"not a pem", key.as_bytes())
        .err()
        .expect("refused");
    assert!(e.to_string().contains("CERTIFICATE"), "{e}");
    let e = Tls::from_pem(cert.as_bytes(), b"nothing")
        .err()
        .expect("refused");
    assert!(e.to_string().contains("key"), "{e}");
    let (_, other_key) = self_signed();
    let e = Tls::from_pem(cert.as_bytes(), other_key.as_bytes())
        .err()
        .expect("a key of another certificate is refused");
    assert!(e.to_string().contains("do not fit"), "{e}");
}
