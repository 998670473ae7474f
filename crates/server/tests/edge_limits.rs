//! The bounds on connections before the WebSocket handshake and before login (issue
//! 20): at most `max_handshakes` sockets in the handshake at once, each for at most
//! `handshake_timeout`; a small frame limit until login; at most
//! `max_connections_per_ip` connections from one address; at most an app's
//! `max_connections` logged in to it. Past each, the refused
//! connection is told why where it can be (OVERLOADED, FRAME_TOO_LARGE) and everyone
//! else carries on.

mod common;

use common::*;
use std::time::Duration;
use switchboard_protocol::DisconnectCode;
use switchboard_protocol::pb::server_message;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

fn addr(server: &TestServer) -> String {
    server
        .url()
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .expect("host:port")
        .to_string()
}

/// Whether the server closes `socket` (EOF or reset) within `within`.
async fn closed_within(socket: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(within, socket.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// Sockets that never send the upgrade request hold the handshake permits for at most
/// the handshake timeout; past the limit a new socket is closed at once; once the
/// silent ones are dropped, WebSocket clients connect again.
#[tokio::test]
async fn handshakes_are_bounded_in_number_and_time() {
    let server = TestServer::with(|c| {
        c.max_handshakes = 2;
        c.handshake_timeout = Duration::from_secs(3);
    })
    .await;
    // The server (on this test's one-thread runtime) takes sockets in the order they
    // came: the first two hold the permits, the third finds none.
    let mut silent = Vec::new();
    for _ in 0..2 {
        silent.push(TcpStream::connect(addr(&server)).await.expect("connect"));
    }
    let mut third = TcpStream::connect(addr(&server)).await.expect("connect");
    assert!(
        closed_within(&mut third, Duration::from_secs(1)).await,
        "a socket past the handshake limit is closed at once, not after the timeout"
    );
    // The silent ones time out ...
    for s in &mut silent {
        assert!(
            closed_within(s, Duration::from_secs(6)).await,
            "a socket that never finishes the handshake is closed after the timeout"
        );
    }
    // ... and the permits are back.
    let mut raw = server.raw().await;
    let reply = raw.login(APP_ID, "after", &token("after"), 60).await;
    assert!(matches!(reply, server_message::Body::Login(_)), "{reply:?}");
}

/// Before login a frame over `max_frame_bytes_before_login` closes the connection with
/// FRAME_TOO_LARGE; after login the same size is an ordinary frame.
#[tokio::test]
async fn a_large_frame_before_login_is_refused_and_after_login_is_not() {
    let server = TestServer::with(|c| {
        c.max_frame_bytes_before_login = 4096;
        c.apps[0].limits.publish_rate_per_channel = 0;
    })
    .await;
    let mut stranger = server.raw().await;
    stranger
        .send_ws(Message::Binary(vec![0u8; 8192].into()))
        .await;
    let ended = stranger.read_until_closed(STEP, false).await;
    let closing = ended.closing.expect("a Closing push");
    assert_eq!(
        closing.code,
        u32::from(DisconnectCode::FrameTooLarge.as_u16())
    );
    assert!(
        closing.reason.contains("before login"),
        "{}",
        closing.reason
    );

    let mut member = server.raw_login("member").await;
    let payload = "y".repeat(6000);
    let reply = member.request(publish_text("room", &payload)).await;
    assert!(
        matches!(reply, server_message::Body::Publish(_)),
        "after login a frame over the pre-login limit is fine: {reply:?}"
    );
}

/// With a per-IP limit of 2, a third connection from the same address is closed with
/// OVERLOADED and a reason; the first two carry on; once one closes, a new one is
/// accepted.
#[tokio::test]
async fn connections_per_ip_are_limited() {
    let server = TestServer::with(|c| c.max_connections_per_ip = 2).await;
    let mut first = server.raw_login("first").await;
    let second = server.raw_login("second").await;
    let mut third = server.raw().await;
    let closing = third.expect_closing(STEP).await;
    assert_eq!(closing.code, u32::from(DisconnectCode::Overloaded.as_u16()));
    assert!(closing.reason.contains("per address"), "{}", closing.reason);
    first.assert_alive().await;
    drop(second);
    // The slot comes back when the server has seen the second connection go.
    let mut accepted = None;
    let deadline = tokio::time::Instant::now() + STEP;
    while tokio::time::Instant::now() < deadline {
        let mut again = server.raw().await;
        let id = again
            .send_request(switchboard_protocol::pb::client_message::Body::Login(
                switchboard_protocol::pb::LoginRequest {
                    app_id: APP_ID.into(),
                    user_id: "again".into(),
                    token: token("again"),
                    heartbeat_interval: 60,
                    ..Default::default()
                },
            ))
            .await;
        if let Some(server_message::Body::Login(_)) = again.try_reply(id).await {
            accepted = Some(again);
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(
        accepted.is_some(),
        "a new connection is accepted once one closed"
    );
}

/// With `max_connections = 2` on one app, a third login to it is refused with −10010
/// `LOGIN_NO_SERVER_RESOURCES` and the reason, and the connection is closed with
/// OVERLOADED as the node's limits close one; another app is not affected; once one of
/// the two logs out, a new login to the app goes through.
#[tokio::test]
async fn logged_in_connections_per_app_are_limited() {
    let server = TestServer::with(|c| c.apps[0].limits.max_connections = 2).await;
    let mut first = server.raw_login("first").await;
    let mut second = server.raw_login("second").await;
    let mut third = server.raw().await;
    let reply = third.login(APP_ID, "third", &token("third"), 60).await;
    let e = expect_error(reply);
    assert_eq!(e.code, -10010, "{e:?}");
    assert!(e.reason.contains("limit of 2 connections"), "{}", e.reason);
    let closing = third.expect_closing(STEP).await;
    assert_eq!(closing.code, u32::from(DisconnectCode::Overloaded.as_u16()));
    assert!(closing.reason.contains("limit of 2"), "{}", closing.reason);
    first.assert_alive().await;

    // Another app has its own count (and no limit).
    let mut open = server.raw().await;
    let reply = open.login(OPEN_APP_ID, "elsewhere", "", 60).await;
    assert!(matches!(reply, server_message::Body::Login(_)), "{reply:?}");

    // A logout frees a place, once the server has seen the connection go.
    let bye = second
        .request(switchboard_protocol::pb::client_message::Body::Logout(
            Default::default(),
        ))
        .await;
    assert!(matches!(bye, server_message::Body::Logout(_)), "{bye:?}");
    second.read_until_closed(STEP, false).await;
    // The place is freed as the server finishes with the connection, just after its
    // socket closed: poll (a fresh user id each time, away from the login rate limit).
    let mut accepted = None;
    let deadline = tokio::time::Instant::now() + STEP;
    let mut n = 0;
    while accepted.is_none() && tokio::time::Instant::now() < deadline {
        n += 1;
        let user = format!("fourth{n}");
        let mut again = server.raw().await;
        if let server_message::Body::Login(_) = again.login(APP_ID, &user, &token(&user), 60).await
        {
            accepted = Some(again);
        }
    }
    assert!(
        accepted.is_some(),
        "a login goes through once a place is free"
    );
}
