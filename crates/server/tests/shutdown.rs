//! Graceful shutdown: stop accepting, tell every connection SHUTDOWN (4006, reconnect),
//! wait for the connections, return from `run` (DESIGN "graceful shutdown is a sequence
//! with a deadline"; api.md §11 DISCONNECTED on a lost link).

mod common;

use common::*;
use std::time::Duration;
use switchboard_client::{LinkOperation, LinkState};

#[tokio::test]
async fn shutdown_disconnects_sessions_with_4006_and_run_returns() {
    let server = TestServer::start().await;
    let alice = server.login("alice").await;
    let mut links = alice.link_state_events();
    let mut sub = subscribed(&alice, "room").await;
    let mut msgs = sub.messages();
    let mut raw = server.raw_login("bob").await;
    let reader = tokio::spawn(async move { raw.expect_closing(Duration::from_secs(6)).await });
    let addr = server.addr;

    server
        .shutdown()
        .await
        .expect("run returns Ok after the signal");

    let closing = reader.await.expect("raw reader");
    assert_eq!(closing.code, 4006, "SHUTDOWN: {closing:?}");
    assert!(closing.reconnect, "clients reconnect after a shutdown");

    let e = wait_link(&mut links, LinkState::Disconnected, STEP).await;
    assert_eq!(e.previous_state, LinkState::Connected);
    assert_eq!(e.operation, LinkOperation::HeartbeatTimeout);
    assert_eq!(e.affected_channels, vec!["room".to_string()]);
    assert_eq!(alice.link_state(), LinkState::Disconnected);
    // Not FAILED: the session's streams stay open for a resume.
    assert!(
        tokio::time::timeout(
            Duration::from_millis(50),
            futures_util::StreamExt::next(&mut msgs)
        )
        .await
        .is_err(),
        "a DISCONNECTED link keeps its subscription streams"
    );

    // The listener is closed: no new connections.
    let url = format!("ws://{addr}{}", switchboard_server::WS_PATH);
    assert!(
        tokio_tungstenite::connect_async(url.as_str())
            .await
            .is_err(),
        "no connections are accepted after shutdown"
    );
}

#[tokio::test]
async fn shutdown_tells_connections_that_have_not_logged_in_yet() {
    // A login timeout far beyond the grace period: only SHUTDOWN can close this one.
    let server = TestServer::with(|c| {
        c.login_timeout = Duration::from_secs(30);
        c.shutdown_grace = Duration::from_secs(1);
    })
    .await;
    let mut raw = server.raw().await;
    raw.assert_alive().await;
    let reader = tokio::spawn(async move {
        tokio::time::timeout(
            Duration::from_secs(4),
            raw.read_until_closed(Duration::from_secs(60), false),
        )
        .await
    });
    server.shutdown().await.expect("run returns");
    let ended = reader
        .await
        .expect("reader")
        .expect("the connection is still open 3 s after `run` returned");
    let closing = ended
        .closing
        .as_ref()
        .unwrap_or_else(|| panic!("a connection still logging in got no Closing: {ended:?}"));
    assert_eq!(closing.code, 4006, "SHUTDOWN: {closing:?}");
    assert!(closing.reconnect);
}

#[tokio::test]
async fn no_connection_outlives_run() {
    let server = TestServer::with(|c| {
        c.login_timeout = Duration::from_secs(30);
        c.shutdown_grace = Duration::from_secs(1);
    })
    .await;
    let mut raw = server.raw().await;
    raw.assert_alive().await;
    server.shutdown().await.expect("run returns");
    // However the connection was ended, once `run` has returned the socket is closed.
    let ended = tokio::time::timeout(
        Duration::from_secs(3),
        raw.read_until_closed(Duration::from_secs(60), false),
    )
    .await;
    assert!(
        ended.is_ok(),
        "the connection was still open 3 s after `run` returned"
    );
}
