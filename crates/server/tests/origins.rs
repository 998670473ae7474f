//! Issue 16, origin allow-list: with `allowed_origins` set, a browser handshake (one
//! with an `Origin` header) from another origin is answered 403 and never becomes a
//! connection; allowed origins and non-browser clients (no `Origin`) connect.

mod common;

use common::*;
use std::sync::Arc;
use switchboard_engine_memory::{MemoryBroker, MemoryConfig};
use switchboard_server::Server;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The handshake's HTTP status with `origin` (None: no header).
async fn handshake_status(s: &TestServer, origin: Option<&str>) -> (u16, String) {
    let mut req = s.url().into_client_request().expect("request");
    if let Some(o) = origin {
        req.headers_mut()
            .insert("origin", o.parse().expect("header"));
    }
    match tokio::time::timeout(STEP, tokio_tungstenite::connect_async(req))
        .await
        .expect("an answer in time")
    {
        Ok((_, resp)) => (resp.status().as_u16(), String::new()),
        Err(WsError::Http(resp)) => {
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).to_string())
                .unwrap_or_default();
            (resp.status().as_u16(), body)
        }
        Err(e) => panic!("unexpected handshake error: {e}"),
    }
}

#[tokio::test]
async fn handshakes_from_origins_off_the_list_get_403() {
    let broker = Arc::new(MemoryBroker::new(MemoryConfig::default()));
    let server = Server::new(base_config(), broker).with_allowed_origins(vec![
        "https://app.example.com".into(),
        "http://localhost:3000".into(),
    ]);
    let s = TestServer::with_parts(server).await;

    let (status, body) = handshake_status(&s, Some("https://evil.example.net")).await;
    assert_eq!(status, 403, "a foreign origin is refused");
    assert!(body.contains("https://evil.example.net"), "{body}");
    // Scheme and port are part of the origin.
    assert_eq!(
        handshake_status(&s, Some("http://app.example.com")).await.0,
        403
    );
    assert_eq!(
        handshake_status(&s, Some("http://localhost:3001")).await.0,
        403
    );

    assert_eq!(
        handshake_status(&s, Some("https://app.example.com"))
            .await
            .0,
        101
    );
    // Host names are case-insensitive.
    assert_eq!(
        handshake_status(&s, Some("https://APP.example.com"))
            .await
            .0,
        101
    );
    assert_eq!(
        handshake_status(&s, Some("http://localhost:3000")).await.0,
        101
    );
    // No Origin: not a browser; let through (the token is what authenticates).
    assert_eq!(handshake_status(&s, None).await.0, 101);

    // An allowed browser connection works end to end.
    let mut raw = s.raw().await;
    let reply = raw.login(APP_ID, "alice", &token("alice"), 60).await;
    assert!(
        matches!(
            reply,
            switchboard_protocol::pb::server_message::Body::Login(_)
        ),
        "{reply:?}"
    );
}

#[tokio::test]
async fn without_a_list_every_origin_connects() {
    let s = TestServer::start().await;
    assert_eq!(
        handshake_status(&s, Some("https://anything.example"))
            .await
            .0,
        101
    );
    assert_eq!(handshake_status(&s, None).await.0, 101);
}
