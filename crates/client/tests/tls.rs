//! Issue 16, TLS from the Rust SDK: against a real server serving `wss://` with a
//! certificate the test makes (rcgen, self-signed for `localhost`), a client that trusts
//! it (`ClientConfig::with_ca_certificate`) logs in, subscribes and gets a message; a
//! client that does not is refused before anything is sent, with a reason that says the
//! certificate is not trusted and how to trust it.

use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use switchboard_client::{Client, ClientConfig, Payload, PublishOptions, SubscribeOptions};
use switchboard_engine_memory::{MemoryBroker, MemoryConfig};
use switchboard_server::{AppConfig, Server, ServerConfig, Tls};
use tokio::net::TcpListener;

/// An app without a certificate (logins need no token).
const APP: &str = "c3d4e5f60718293a4b5c6d7e8f900112";
/// Time allowed for one expected step.
const STEP: Duration = Duration::from_secs(5);

/// A self-signed certificate for `localhost`: (certificate PEM, key PEM).
fn self_signed() -> (String, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("rcgen");
    (ck.cert.pem(), ck.signing_key.serialize_pem())
}

/// A server serving `wss://` with `cert`/`key`; returns its endpoint
/// (`wss://localhost:port`) and the sender that stops it.
async fn wss_server(cert: &str, key: &str) -> (String, tokio::sync::oneshot::Sender<()>) {
    let tls = Tls::from_pem(cert.as_bytes(), key.as_bytes()).expect("a valid cert and key");
    let mut app = AppConfig::new(APP, None);
    app.limits.publish_rate_per_channel = 0;
    let config = ServerConfig {
        apps: vec![app],
        ..Default::default()
    };
    let broker = Arc::new(MemoryBroker::new(MemoryConfig::default()));
    let server = Server::new(config, broker).with_tls(tls);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(listener, async {
        let _ = stopped.await;
    }));
    (format!("wss://localhost:{port}"), stop)
}

#[tokio::test]
async fn a_client_trusting_the_ca_logs_in_subscribes_and_gets_a_message_over_wss() {
    let (cert, key) = self_signed();
    let (endpoint, _stop) = wss_server(&cert, &key).await;
    let config = || ClientConfig::new(&endpoint).with_ca_certificate(cert.as_bytes());

    let alice = Client::new(APP, "alice", config()).expect("client");
    alice.login("").await.expect("login over wss");
    let mut room = alice
        .subscribe("room", SubscribeOptions::default())
        .await
        .expect("subscribe over wss");
    let mut messages = room.messages();

    let bob = Client::new(APP, "bob", config()).expect("client");
    bob.login("").await.expect("login over wss");
    bob.publish("room", "over tls", PublishOptions::default())
        .await
        .expect("publish over wss");

    let m = tokio::time::timeout(STEP, messages.next())
        .await
        .expect("the message in time")
        .expect("the stream is open")
        .expect("not lagged");
    assert_eq!(m.publisher, "bob");
    assert!(
        matches!(&m.message, Payload::Text(t) if t == "over tls"),
        "{:?}",
        m.message
    );
    alice.logout().await.expect("logout");
    bob.logout().await.expect("logout");
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_is_refused_with_a_clear_error() {
    let (cert, key) = self_signed();
    let (endpoint, _stop) = wss_server(&cert, &key).await;

    // Mozilla's roots only: the self-signed certificate is not among them.
    let stranger = Client::new(APP, "stranger", ClientConfig::new(&endpoint)).expect("client");
    let e = tokio::time::timeout(STEP, stranger.login(""))
        .await
        .expect("refused at once, not after the login timeout")
        .expect_err("the login fails");
    assert_eq!(e.code, -10013, "LOGIN_ABORTED: {e:?}");
    assert!(e.reason.contains("not trusted"), "{}", e.reason);
    assert!(e.reason.contains("with_ca_certificate"), "{}", e.reason);

    // Trusting another certificate does not help.
    let (other, _) = self_signed();
    let config = ClientConfig::new(&endpoint).with_ca_certificate(other.as_bytes());
    let wrong = Client::new(APP, "wrong", config).expect("client");
    let e = tokio::time::timeout(STEP, wrong.login(""))
        .await
        .expect("in time")
        .expect_err("the login fails");
    assert!(e.reason.contains("not trusted"), "{}", e.reason);

    // A ws:// URL on the TLS port gets no WebSocket either, and says where it failed.
    let plain = endpoint.replace("wss://", "ws://");
    let client = Client::new(APP, "plain", ClientConfig::new(plain)).expect("client");
    let e = tokio::time::timeout(STEP, client.login(""))
        .await
        .expect("in time")
        .expect_err("the login fails");
    assert!(
        e.reason.contains("WebSocket upgrade failed"),
        "{}",
        e.reason
    );

    // The server still serves a client that trusts it.
    let config = ClientConfig::new(&endpoint).with_ca_certificate(cert.as_bytes());
    let friend = Client::new(APP, "friend", config).expect("client");
    friend
        .login("")
        .await
        .expect("login after the refused ones");
    friend.logout().await.expect("logout");
}
