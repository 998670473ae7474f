//! Once a session has ended — kicked by a second login of the same user id (R28) —
//! or moved to another connection by a resume (R52), nothing more of the old
//! connection is served, not even the rest of a frame it had sent already (issue 20,
//! "requests served after the session ended").
//!
//! The old connection sends one frame: a subscribe whose replay (30 MB it never reads)
//! keeps the server busy with that frame, then publishes. While the server is inside
//! the frame (the canary has seen the subscriber's presence join), the session is
//! ended or moved. The old connection then reads to the end of its TCP stream, which
//! the server drops only after its read loop is done, so every request of the frame
//! has been either refused or run; a sentinel published after that marks the end of
//! the channel's stream for the canary.

mod common;

use bytes::BytesMut;
use common::*;
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use switchboard_protocol::frame;
use switchboard_protocol::pb::{
    self, ClientMessage, ServerMessage, client_message, server_message,
};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Publications in the channel whose replay keeps the old connection busy, and their
/// size: together far more than the socket buffers and the outbound queue hold.
const BIG_COUNT: usize = 1000;
const BIG_PAYLOAD: usize = 30_000;

/// Publishes in the old connection's frame, after its subscribe.
const BURST: u32 = 20;

fn encode(msgs: &[ClientMessage]) -> Message {
    let mut buf = BytesMut::new();
    for m in msgs {
        frame::encode_into(m, &mut buf);
    }
    Message::Binary(buf.freeze())
}

/// A raw connection logged in as `user` with `session_id` (empty: a new session);
/// returns it with the session id the server gave.
async fn login(server: &TestServer, user: &str, session_id: &str) -> (Ws, String) {
    let (mut ws, _) = tokio_tungstenite::connect_async(server.url())
        .await
        .expect("connect");
    let login = ClientMessage {
        id: 1,
        body: Some(client_message::Body::Login(pb::LoginRequest {
            app_id: APP_ID.into(),
            user_id: user.into(),
            token: token(user),
            heartbeat_interval: 60,
            session_id: session_id.into(),
            ..Default::default()
        })),
    };
    ws.send(encode(&[login])).await.expect("send login");
    loop {
        let msg = tokio::time::timeout(STEP, ws.next())
            .await
            .expect("login reply in time")
            .expect("open")
            .expect("frame");
        let Message::Binary(data) = msg else { continue };
        let msgs: Vec<ServerMessage> = frame::decode_all(data, usize::MAX).expect("decodes");
        for m in msgs {
            if m.id == 1 {
                match m.body {
                    Some(server_message::Body::Login(r)) => return (ws, r.session_id),
                    other => panic!("login of {user} failed: {other:?}"),
                }
            }
        }
    }
}

/// A server whose app publishes without a rate limit, a channel "big" full of large
/// publications, and a canary subscribed to `channel` (messages) and to "big"
/// (presence only). Returns the server, the canary and big's epoch.
async fn setup(channel: &str) -> (TestServer, RawClient, u64) {
    let server = TestServer::with(|c| {
        c.apps[0].limits.publish_rate_per_channel = 0;
        c.outbound_queue_bytes = 256 * 1024;
    })
    .await;
    let mut writer = server.raw_login("writer").await;
    let payload = "x".repeat(BIG_PAYLOAD);
    let mut epoch = 0;
    for _ in 0..BIG_COUNT {
        match writer.request(publish_text("big", &payload)).await {
            server_message::Body::Publish(r) => epoch = r.position.expect("position").epoch,
            other => panic!("fill publish failed: {other:?}"),
        }
    }
    let mut canary = server.raw_login("canary").await;
    canary.subscribe(channel).await;
    let reply = canary
        .request(client_message::Body::Subscribe(pb::SubscribeRequest {
            channel_name: "big".into(),
            with_message: Some(false),
            with_presence: Some(true),
            ..Default::default()
        }))
        .await;
    assert!(
        matches!(reply, server_message::Body::Subscribe(_)),
        "{reply:?}"
    );
    (server, canary, epoch)
}

/// Sends the frame: subscribe to "big" from its start (a replay the connection never
/// reads), then `BURST` publishes to `channel`. Returns once the server is inside the
/// frame: the canary saw `user` join "big".
async fn send_busy_frame(
    ws: &mut Ws,
    canary: &mut RawClient,
    user: &str,
    epoch: u64,
    channel: &str,
) {
    let mut msgs = vec![ClientMessage {
        id: 10,
        body: Some(client_message::Body::Subscribe(pb::SubscribeRequest {
            channel_name: "big".into(),
            with_presence: Some(false),
            since: Some(pb::StreamPosition { epoch, offset: 0 }),
            ..Default::default()
        })),
    }];
    msgs.extend((0..BURST).map(|i| ClientMessage {
        id: 100 + i,
        body: Some(publish_text(channel, &format!("after the end {i}"))),
    }));
    ws.send(encode(&msgs)).await.expect("send the frame");
    loop {
        let push = canary
            .next_push(STEP)
            .await
            .expect("the join of the busy subscriber");
        if let Some(server_message::Body::Presence(p)) = push.body {
            if p.event_type == pb::PresenceEventType::RemoteJoin as i32 && p.publisher == user {
                return;
            }
        }
    }
}

/// Reads until the server ends the TCP stream.
async fn read_to_eof(mut ws: Ws) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(None) | Ok(Some(Err(_))) => return,
            Ok(Some(Ok(_))) => {}
            Err(_) => panic!("the server kept the ended connection open"),
        }
    }
}

/// Publishes a sentinel and reads the canary's messages up to it; returns the texts
/// before it.
async fn before_sentinel(
    server: &TestServer,
    canary: &mut RawClient,
    channel: &str,
) -> Vec<String> {
    let mut writer = server.raw_login("sentinel-writer").await;
    let reply = writer.request(publish_text(channel, "sentinel")).await;
    assert!(
        matches!(reply, server_message::Body::Publish(_)),
        "sentinel published: {reply:?}"
    );
    let mut seen = Vec::new();
    loop {
        let push = canary
            .next_push(STEP)
            .await
            .expect("the canary gets the sentinel");
        if let Some(server_message::Body::Message(m)) = push.body {
            let text = String::from_utf8_lossy(&m.payload).to_string();
            if text == "sentinel" {
                return seen;
            }
            seen.push(text);
        }
    }
}

/// R28: after a second login of the same user id kicked the first, the rest of the
/// first connection's frame is not executed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r28_a_kicked_connection_serves_nothing_more() {
    let (server, mut canary, epoch) = setup("after-kick").await;
    let (mut old, _) = login(&server, "alice", "").await;
    send_busy_frame(&mut old, &mut canary, "alice", epoch, "after-kick").await;
    // The second login's reply comes after the first session has ended.
    let (_new, _) = login(&server, "alice", "").await;
    read_to_eof(old).await;
    let leaked = before_sentinel(&server, &mut canary, "after-kick").await;
    assert!(
        leaked.is_empty(),
        "the kicked connection published {leaked:?}"
    );
}

/// R52: after a resume moved the session to a new connection, the old connection's
/// requests never run beside the new one's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r52_a_resumed_sessions_old_connection_serves_nothing_more() {
    let (server, mut canary, epoch) = setup("after-resume").await;
    let (mut old, session) = login(&server, "bob", "").await;
    send_busy_frame(&mut old, &mut canary, "bob", epoch, "after-resume").await;
    let (_new, resumed) = login(&server, "bob", &session).await;
    assert_eq!(resumed, session, "the second login resumed the session");
    read_to_eof(old).await;
    let leaked = before_sentinel(&server, &mut canary, "after-resume").await;
    assert!(
        leaked.is_empty(),
        "the replaced connection published {leaked:?}"
    );
}

/// protocol.md: a request other than a heartbeat with id 0 (the id of pushes) is not
/// executed — its reply could not be told from a push — and closes the connection
/// with PROTOCOL_ERROR (found by the server_requests fuzz target).
#[tokio::test]
async fn a_request_with_id_0_closes_with_protocol_error_unexecuted() {
    let server = TestServer::start().await;
    let mut canary = server.raw_login("canary0").await;
    canary.subscribe("zero").await;
    let mut raw = server.raw_login("zero-sender").await;
    raw.send(&[ClientMessage {
        id: 0,
        body: Some(client_message::Body::Heartbeat(pb::Heartbeat {})),
    }])
    .await;
    raw.assert_alive().await;
    raw.send(&[ClientMessage {
        id: 0,
        body: Some(publish_text("zero", "with id 0")),
    }])
    .await;
    let closing = raw.expect_closing(STEP).await;
    assert_eq!(
        closing.code,
        u32::from(switchboard_protocol::DisconnectCode::ProtocolError.as_u16())
    );
    assert!(closing.reason.contains("id 0"), "{}", closing.reason);
    let leaked = before_sentinel(&server, &mut canary, "zero").await;
    assert!(
        leaked.is_empty(),
        "the id-0 publish was executed: {leaked:?}"
    );
}
