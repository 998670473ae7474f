//! Issue 16, origin allow-list: with `allowed_origins` set, a browser handshake (one
//! with an `Origin` header) from another origin is answered 403 and never becomes a
//! connection; allowed origins and non-browser clients (no `Origin`) connect. An app's
//! own `allowed_origins` replaces the node's list for that app: the handshake lets
//! through an origin some app allows, the login refuses one its app does not (−10012).

mod common;

use common::*;
use std::sync::Arc;
use switchboard_engine_memory::{MemoryBroker, MemoryConfig};
use switchboard_protocol::pb::{self, server_message};
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

/// Logs in to `app` as `user` over a handshake carrying `origin`; the reply's body.
async fn login_from(
    s: &TestServer,
    origin: &str,
    app: &str,
    user: &str,
    token: &str,
) -> server_message::Body {
    let mut req = s.url().into_client_request().expect("request");
    req.headers_mut()
        .insert("origin", origin.parse().expect("header"));
    let (mut ws, _) = tokio::time::timeout(STEP, tokio_tungstenite::connect_async(req))
        .await
        .expect("an answer in time")
        .expect("the handshake is let through");
    login_on(
        &mut ws,
        pb::LoginRequest {
            app_id: app.into(),
            user_id: user.into(),
            token: token.into(),
            heartbeat_interval: 60,
            ..Default::default()
        },
    )
    .await
}

#[tokio::test]
async fn an_apps_own_list_replaces_the_nodes_for_its_logins() {
    let mut config = base_config();
    // APP_ID has a list of its own; the other apps use the node's.
    config.apps[0].allowed_origins = Some(vec!["https://partner.example".into()]);
    let broker = Arc::new(MemoryBroker::new(MemoryConfig::default()));
    let server =
        Server::new(config, broker).with_allowed_origins(vec!["https://app.example.com".into()]);
    let s = TestServer::with_parts(server).await;

    // No app allows it: 403 at the handshake, as before.
    assert_eq!(
        handshake_status(&s, Some("https://evil.example.net"))
            .await
            .0,
        403
    );
    // Each origin some app allows gets through the handshake ...
    assert_eq!(
        handshake_status(&s, Some("https://partner.example"))
            .await
            .0,
        101
    );
    // ... and the login checks the app's own list.
    let ok = login_from(
        &s,
        "https://partner.example",
        APP_ID,
        "alice",
        &token("alice"),
    )
    .await;
    assert!(matches!(ok, server_message::Body::Login(_)), "{ok:?}");
    let refused = login_from(&s, "https://app.example.com", APP_ID, "bob", &token("bob")).await;
    let e = expect_error(refused);
    assert_eq!(e.code, -10012, "LOGIN_REJECTED: {e:?}");
    assert!(e.reason.contains("https://app.example.com"), "{}", e.reason);
    assert!(e.reason.contains(APP_ID), "{}", e.reason);

    // An app without a list of its own keeps the node's.
    let ok = login_from(&s, "https://app.example.com", OPEN_APP_ID, "carol", "").await;
    assert!(matches!(ok, server_message::Body::Login(_)), "{ok:?}");
    let e = expect_error(login_from(&s, "https://partner.example", OPEN_APP_ID, "dave", "").await);
    assert_eq!(e.code, -10012, "{e:?}");

    // A client without an Origin (not a browser) logs in to either.
    let mut raw = s.raw().await;
    let reply = raw.login(APP_ID, "erin", &token("erin"), 60).await;
    assert!(matches!(reply, server_message::Body::Login(_)), "{reply:?}");
}
