//! The wire protocol at its edges: heartbeat and login timeouts (R17, R18), and hostile
//! or malformed frames, each while another client stays connected and keeps getting
//! messages (DESIGN "no frame, however malformed, can panic the server").

mod common;

use bytes::{Bytes, BytesMut};
use common::*;
use std::time::Duration;
use switchboard_client::{ChannelType, Client, LinkState, PublishOptions, Subscription};
use switchboard_protocol::frame;
use switchboard_protocol::pb::{self, ClientMessage, client_message, server_message};
use tokio_tungstenite::tungstenite::Message;

/// A logged-in SDK client subscribed to "witness", to check that other sessions are
/// unaffected by whatever a test does to its own connection.
struct Witness {
    client: Client,
    sub: Subscription,
    publisher: Client,
    count: usize,
}

impl Witness {
    async fn new(server: &TestServer) -> Witness {
        let client = server.login("witness").await;
        let sub = subscribed(&client, "witness").await;
        let publisher = server.login("witness-publisher").await;
        Witness {
            client,
            sub,
            publisher,
            count: 0,
        }
    }

    /// The witness is still connected and still receives messages.
    async fn assert_unaffected(&mut self) {
        self.count += 1;
        let tag = format!("still here {}", self.count);
        let mut msgs = self.sub.messages();
        self.publisher
            .publish("witness", tag.as_str(), PublishOptions::default())
            .await
            .expect("publish");
        let m = next_message(&mut msgs, &tag).await;
        let got = text(&m.message);
        assert!(
            got == tag,
            "witness expected {tag:?}, got {} bytes starting {:?}",
            got.len(),
            &got[..got.len().min(40)]
        );
        assert_eq!(self.client.link_state(), LinkState::Connected);
    }
}

/// Checks that `user` is gone from the server: a USER message to it fails with −11033.
async fn assert_offline(server: &TestServer, user: &str) {
    let mut probe = server.raw_login(&format!("probe-{user}")).await;
    let mut last = None;
    let gone = eventually_offline(&mut probe, user, &mut last).await;
    assert!(gone, "{user} still online: {last:?}");
}

async fn eventually_offline(
    probe: &mut RawClient,
    user: &str,
    last: &mut Option<server_message::Body>,
) -> bool {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let r = probe
            .request(publish_body(
                pb::ChannelType::User,
                user,
                pb::MessageType::String,
                Bytes::from_static(b"?"),
            ))
            .await;
        let done = matches!(&r, server_message::Body::Error(e) if e.code == -11033);
        *last = Some(r);
        if done || tokio::time::Instant::now() > deadline {
            return done;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Heartbeats and timeouts
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn r18_silent_client_is_closed_with_heartbeat_timeout_4005() {
    let server = TestServer::start().await;
    let mut witness = Witness::new(&server).await;
    let mut raw = server.raw().await;
    let reply = raw.login(APP_ID, "silent", &token("silent"), 1).await;
    let server_message::Body::Login(login) = reply else {
        panic!("login failed: {reply:?}");
    };
    assert_eq!(
        login.heartbeat_interval, 1,
        "1 s is inside the configured range"
    );
    let closing = raw.expect_closing(Duration::from_secs(6)).await;
    assert_eq!(closing.code, 4005, "HEARTBEAT_TIMEOUT: {closing:?}");
    assert!(
        closing.reconnect,
        "the client may reconnect after a heartbeat timeout"
    );
    // R52/R62: the session outlives its lost connection for presenceTimeout, so the
    // user still receives USER messages (into its inbox, for the resume).
    let probe = server.login("probe-silent").await;
    let user_msg = PublishOptions {
        channel_type: ChannelType::User,
        ..Default::default()
    };
    probe
        .publish("silent", "kept for the resume", user_msg)
        .await
        .expect("a timed-out session stays online for presenceTimeout (R52)");
    witness.assert_unaffected().await;
}

#[tokio::test]
async fn r18_client_sending_heartbeats_stays_connected() {
    let server = TestServer::start().await;
    let mut raw = server.raw().await;
    let reply = raw.login(APP_ID, "beater", &token("beater"), 1).await;
    assert!(matches!(reply, server_message::Body::Login(_)), "{reply:?}");
    // 4 s of heartbeats every 300 ms: well past the 1.5 s timeout of the silent test.
    let until = tokio::time::Instant::now() + Duration::from_secs(4);
    while tokio::time::Instant::now() < until {
        raw.send(&[ClientMessage {
            id: 0,
            body: Some(client_message::Body::Heartbeat(pb::Heartbeat {})),
        }])
        .await;
        // Pacing: a heartbeat every 300 ms (the behaviour under test).
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Still logged in: a Closing would have come before these replies.
    raw.assert_alive().await;
    raw.subscribe("still-here").await;
}

#[tokio::test]
async fn r18_sdk_with_one_second_heartbeat_stays_connected() {
    let server = TestServer::start().await;
    let mut config = server.client_config();
    config.heartbeat_interval = 1;
    let c = Client::new(APP_ID, "sdk-beater", config).expect("client");
    let resp = c.login(&token("sdk-beater")).await.expect("login");
    assert_eq!(resp.heartbeat_interval, 1);
    let mut links = c.link_state_events();
    // A window: 3 s with heartbeats, past the 1.5 s timeout; nothing may change.
    assert_quiet(
        &mut links,
        Duration::from_secs(3),
        "no link state change while the SDK sends heartbeats",
    )
    .await;
    assert_eq!(c.link_state(), LinkState::Connected);
    subscribed(&c, "ok").await;
}

#[tokio::test]
async fn r16_r17_login_clamps_heartbeat_and_presence_timeout() {
    // The default server ranges: heartbeat 5–1800 s, presence timeout 5–300 s.
    let server = TestServer::with(|c| c.heartbeat_interval_range = (5, 1800)).await;
    let cases = [
        // (heartbeat asked, presence asked, heartbeat granted, presence granted)
        (0, 0, 5, 300),
        (1, 1, 5, 5),
        (30, 60, 30, 60),
        (5000, 1000, 1800, 300),
    ];
    for (i, (hb, presence, hb_want, presence_want)) in cases.into_iter().enumerate() {
        let user = format!("clamp{i}");
        let mut raw = server.raw().await;
        let reply = raw
            .request(client_message::Body::Login(pb::LoginRequest {
                app_id: APP_ID.into(),
                user_id: user.clone(),
                token: token(&user),
                heartbeat_interval: hb,
                presence_timeout: presence,
                ..Default::default()
            }))
            .await;
        let server_message::Body::Login(l) = reply else {
            panic!("login failed: {reply:?}");
        };
        assert_eq!(l.heartbeat_interval, hb_want, "heartbeat {hb} (R17)");
        assert_eq!(
            l.presence_timeout, presence_want,
            "presence {presence} (R16)"
        );
        assert!(!l.session_id.is_empty());
        assert!(!l.resumed);
    }
}

#[tokio::test]
async fn per_app_duration_ranges_override_the_node() {
    // One app narrows both ranges; the others keep the node's.
    let server = TestServer::with(|c| {
        for app in &mut c.apps {
            if app.id == APP_ID {
                app.limits.heartbeat_interval_range = Some((10, 20));
                app.limits.presence_timeout_range = Some((30, 40));
            }
        }
    })
    .await;
    let mut raw = server.raw().await;
    let reply = raw
        .request(client_message::Body::Login(pb::LoginRequest {
            app_id: APP_ID.into(),
            user_id: "ranged".into(),
            token: token("ranged"),
            heartbeat_interval: 5,
            presence_timeout: 300,
            ..Default::default()
        }))
        .await;
    let server_message::Body::Login(l) = reply else {
        panic!("login failed: {reply:?}");
    };
    assert_eq!(l.heartbeat_interval, 10, "clamped into the app's range");
    assert_eq!(l.presence_timeout, 40, "clamped into the app's range");
}

#[tokio::test]
async fn login_timeout_closes_a_client_that_never_logs_in_with_4009() {
    let server = TestServer::with(|c| c.login_timeout = Duration::from_millis(500)).await;
    let mut witness = Witness::new(&server).await;
    let mut raw = server.raw().await;
    let closing = raw.expect_closing(Duration::from_secs(4)).await;
    assert_eq!(closing.code, 4009, "LOGIN_TIMEOUT: {closing:?}");
    assert!(closing.reconnect);

    // Heartbeats do not stand in for a login.
    let mut raw = server.raw().await;
    let heartbeat = frame::encode(&ClientMessage {
        id: 0,
        body: Some(client_message::Body::Heartbeat(pb::Heartbeat {})),
    });
    // Beat every 100 ms until the server closes the connection (or for 2 s).
    for _ in 0..20 {
        if !raw.try_send_ws(Message::Binary(heartbeat.clone())).await {
            break;
        }
        // Pacing: a heartbeat every 100 ms (the behaviour under test).
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let closing = raw.expect_closing(Duration::from_secs(4)).await;
    assert_eq!(
        closing.code, 4009,
        "LOGIN_TIMEOUT despite heartbeats: {closing:?}"
    );
    witness.assert_unaffected().await;
}

// ---------------------------------------------------------------------------------------
// Hostile frames
// ---------------------------------------------------------------------------------------

/// Logs in as `user`, sends `msg`, and expects a Closing with `code`; then checks that
/// the session was cleaned up and the witness is unaffected.
async fn hostile(server: &TestServer, witness: &mut Witness, user: &str, msg: Message, code: u32) {
    let mut raw = server.raw_login(user).await;
    raw.subscribe("witness").await;
    raw.send_ws(msg).await;
    let closing = raw.expect_closing(STEP).await;
    assert_eq!(closing.code, code, "{user}: {closing:?}");
    assert!(!closing.reason.is_empty(), "the Closing says why");
    assert_offline(server, user).await;
    witness.assert_unaffected().await;
}

#[tokio::test]
async fn garbage_bytes_close_with_protocol_error_4007() {
    let server = TestServer::start().await;
    let mut witness = Witness::new(&server).await;
    let garbage = Message::Binary(Bytes::from_static(&[0xff; 12]));
    hostile(&server, &mut witness, "garbage", garbage, 4007).await;
    // Also before login.
    let mut raw = server.raw().await;
    raw.send_bytes(Bytes::from_static(b"\x05\xde\xad\xbe\xef\x00"))
        .await;
    let closing = raw.expect_closing(STEP).await;
    assert_eq!(closing.code, 4007, "{closing:?}");
    witness.assert_unaffected().await;
}

#[tokio::test]
async fn truncated_message_closes_with_protocol_error_4007() {
    let server = TestServer::start().await;
    let mut witness = Witness::new(&server).await;
    let full = frame::encode(&ClientMessage {
        id: 9,
        body: Some(publish_text("witness", "never delivered")),
    });
    let cut = Message::Binary(full.slice(..full.len() - 3));
    hostile(&server, &mut witness, "truncated", cut, 4007).await;
    // A valid message followed by a truncated one: the first is handled, then 4007.
    let mut raw = server.raw_login("half").await;
    let mut buf = BytesMut::new();
    frame::encode_into(
        &ClientMessage {
            id: 1,
            body: Some(client_message::Body::Heartbeat(pb::Heartbeat {})),
        },
        &mut buf,
    );
    buf.extend_from_slice(&full[..full.len() - 1]);
    raw.send_bytes(buf.freeze()).await;
    let reply = raw.reply(1).await;
    assert!(
        matches!(reply, server_message::Body::Heartbeat(_)),
        "{reply:?}"
    );
    let closing = raw.expect_closing(STEP).await;
    assert_eq!(closing.code, 4007, "{closing:?}");
    witness.assert_unaffected().await;
}

#[tokio::test]
async fn text_frame_closes_with_protocol_error_4007() {
    let server = TestServer::start().await;
    let mut witness = Witness::new(&server).await;
    let msg = Message::Text(r#"{"login":{}}"#.into());
    hostile(&server, &mut witness, "texter", msg, 4007).await;
}

#[tokio::test]
async fn empty_binary_frame_closes_with_protocol_error_4007() {
    let server = TestServer::start().await;
    let mut witness = Witness::new(&server).await;
    hostile(
        &server,
        &mut witness,
        "empty",
        Message::Binary(Bytes::new()),
        4007,
    )
    .await;
}

#[tokio::test]
async fn too_many_messages_in_one_frame_close_with_protocol_error_4007() {
    let server = TestServer::with(|c| c.max_messages_per_frame = 8).await;
    let mut witness = Witness::new(&server).await;
    let mut buf = BytesMut::new();
    for _ in 0..9 {
        frame::encode_into(
            &ClientMessage {
                id: 0,
                body: Some(client_message::Body::Heartbeat(pb::Heartbeat {})),
            },
            &mut buf,
        );
    }
    hostile(
        &server,
        &mut witness,
        "chatty",
        Message::Binary(buf.freeze()),
        4007,
    )
    .await;
}

#[tokio::test]
async fn frame_over_max_frame_bytes_closes_with_frame_too_large_4008() {
    let server = TestServer::with(|c| c.max_frame_bytes = 64 * 1024).await;
    let mut witness = Witness::new(&server).await;
    let big = frame::encode(&ClientMessage {
        id: 1,
        body: Some(publish_text("witness", &"x".repeat(100 * 1024))),
    });
    hostile(
        &server,
        &mut witness,
        "bigframe",
        Message::Binary(big),
        4008,
    )
    .await;
    // A frame just under the limit is fine.
    let mut raw = server.raw_login("okframe").await;
    let reply = raw
        .request(publish_text("elsewhere", &"y".repeat(30 * 1024)))
        .await;
    assert!(
        matches!(reply, server_message::Body::Publish(_)),
        "{reply:?}"
    );
    witness.assert_unaffected().await;
}

#[tokio::test]
async fn request_without_body_is_bad_request_and_the_connection_stays() {
    let server = TestServer::start().await;
    let mut witness = Witness::new(&server).await;
    let mut raw = server.raw_login("nobody-body").await;
    raw.send(&[ClientMessage { id: 42, body: None }]).await;
    let err = expect_error(raw.reply(42).await);
    assert_eq!(err.code, -19004, "SB_ERROR_BAD_REQUEST: {err:?}");
    assert!(!err.reason.is_empty());
    raw.assert_alive().await;
    raw.subscribe("after").await;
    // Before login too.
    let mut raw = server.raw().await;
    raw.send(&[ClientMessage { id: 7, body: None }]).await;
    let err = expect_error(raw.reply(7).await);
    assert_eq!(err.code, -19004, "{err:?}");
    raw.assert_alive().await;
    witness.assert_unaffected().await;
}

#[tokio::test]
async fn wrong_http_path_is_refused_with_404() {
    let server = TestServer::start().await;
    let mut witness = Witness::new(&server).await;
    for path in ["/", "/v1/wss", "/v2/ws", "/ws"] {
        let url = format!("ws://{}{path}", server.addr);
        let err = tokio_tungstenite::connect_async(url.as_str())
            .await
            .err()
            .unwrap_or_else(|| panic!("handshake on {path} must be refused"));
        match err {
            tokio_tungstenite::tungstenite::Error::Http(resp) => {
                assert_eq!(resp.status().as_u16(), 404, "{path}");
            }
            other => panic!("{path}: expected an HTTP refusal, got {other:?}"),
        }
    }
    witness.assert_unaffected().await;
}

#[tokio::test]
async fn connections_over_max_connections_close_with_overloaded_4011() {
    // The witness and its publisher hold two connections; one more fits.
    let server = TestServer::with(|c| c.max_connections = 3).await;
    let mut witness = Witness::new(&server).await;
    let mut third = server.raw_login("third").await;
    let mut fourth = server.raw().await;
    let closing = fourth.expect_closing(STEP).await;
    assert_eq!(closing.code, 4011, "OVERLOADED: {closing:?}");
    assert!(closing.reconnect, "the client may retry later");
    third.assert_alive().await;
    witness.assert_unaffected().await;

    // Once a connection ends, there is room again.
    third
        .send_request(client_message::Body::Logout(pb::LogoutRequest {}))
        .await;
    let _ = third.read_until_closed(STEP, false).await;
    let mut ok = false;
    for _ in 0..100 {
        let mut next = server.raw().await;
        let id = next
            .send_request(client_message::Body::Login(pb::LoginRequest {
                app_id: APP_ID.into(),
                user_id: "fifth".into(),
                token: token("fifth"),
                heartbeat_interval: 60,
                ..Default::default()
            }))
            .await;
        if let Some(server_message::Body::Login(_)) = next.try_reply(id).await {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "a freed connection slot is reusable");
    witness.assert_unaffected().await;
}
