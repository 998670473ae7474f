//! A raw WebSocket client speaking the wire protocol, for what the SDK cannot express,
//! and builders of the requests it sends.

use super::server::{APP_ID, STEP, token};
use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use std::collections::VecDeque;
use std::time::Duration;
use switchboard_protocol::frame;
use switchboard_protocol::pb::{
    self, ClientMessage, Closing, ServerMessage, client_message, server_message,
};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How a raw connection ended.
#[derive(Debug, Default)]
pub struct Ended {
    /// The last `Closing` push, if any.
    pub closing: Option<Closing>,
    /// Whether `Closing` was the last message read.
    pub closing_was_last: bool,
    /// Code of the WebSocket close frame, if one came.
    pub close_code: Option<u16>,
    /// Message pushes read before the end.
    pub messages: Vec<pb::MessagePush>,
    /// Number of message pushes read (also counted when `keep` was false).
    pub message_count: usize,
}

/// A WebSocket client that sends `ClientMessage` frames and reads `ServerMessage`
/// frames, for what the SDK cannot express.
pub struct RawClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u32,
    inbox: VecDeque<ServerMessage>,
    close_code: Option<Option<u16>>,
}

impl RawClient {
    /// Connects to `url` (handshake only).
    pub async fn connect(url: &str) -> RawClient {
        let (ws, _) = tokio::time::timeout(STEP, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect in time")
            .expect("WebSocket handshake");
        RawClient {
            ws,
            next_id: 0,
            inbox: VecDeque::new(),
            close_code: None,
        }
    }

    /// Loses the connection the way a killed app or a broken path does: the TCP write
    /// side is shut down without a WebSocket close, and this waits until the server has
    /// closed its side, which it does once it has seen the loss (the session is then
    /// detached and kept, R52). A test that resumes or acts on the loss next waits for
    /// this, not for a fixed time.
    pub async fn lose_connection(mut self) {
        use tokio::io::AsyncWriteExt;
        match self.ws.get_mut() {
            MaybeTlsStream::Plain(tcp) => {
                let _ = tcp.shutdown().await;
            }
            _ => panic!("the test client speaks plain TCP"),
        }
        let deadline = Instant::now() + STEP;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => panic!("the server did not close a lost connection within {STEP:?}"),
                Ok(None) | Ok(Some(Err(_))) => return,
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// A fresh request id.
    pub fn next_id(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id
    }

    /// Sends one WebSocket message as is.
    pub async fn send_ws(&mut self, msg: Message) {
        self.ws.send(msg).await.expect("send");
    }

    /// Sends one WebSocket message; false when the connection is already closed.
    pub async fn try_send_ws(&mut self, msg: Message) -> bool {
        self.ws.send(msg).await.is_ok()
    }

    /// Sends `msgs` in one binary frame.
    pub async fn send(&mut self, msgs: &[ClientMessage]) {
        let mut buf = BytesMut::new();
        for m in msgs {
            frame::encode_into(m, &mut buf);
        }
        self.send_ws(Message::Binary(buf.freeze())).await;
    }

    /// Sends raw bytes as one binary frame.
    pub async fn send_bytes(&mut self, bytes: impl Into<Bytes>) {
        self.send_ws(Message::Binary(bytes.into())).await;
    }

    /// Sends one request with a fresh id; returns the id.
    pub async fn send_request(&mut self, body: client_message::Body) -> u32 {
        let id = self.next_id();
        self.send(&[ClientMessage {
            id,
            body: Some(body),
        }])
        .await;
        id
    }

    /// Reads one more frame into the inbox. False once the connection is closed.
    async fn read_frame(&mut self, deadline: Instant) -> bool {
        if self.close_code.is_some() {
            return false;
        }
        let next = tokio::time::timeout_at(deadline, self.ws.next())
            .await
            .expect("timed out waiting for the server");
        match next {
            Some(Ok(Message::Binary(data))) => {
                let msgs: Vec<ServerMessage> =
                    frame::decode_all(data, usize::MAX).expect("server frame decodes");
                self.inbox.extend(msgs);
            }
            Some(Ok(Message::Close(f))) => self.close_code = Some(f.map(|f| u16::from(f.code))),
            Some(Ok(Message::Text(t))) => panic!("server sent a text frame: {t}"),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => self.close_code = Some(None),
        }
        true
    }

    /// The reply to request `id` (pushes and other replies stay queued); `None` when
    /// the connection closes first.
    pub async fn try_reply(&mut self, id: u32) -> Option<server_message::Body> {
        let deadline = Instant::now() + STEP;
        loop {
            if let Some(pos) = self.inbox.iter().position(|m| m.id == id) {
                let msg = self.inbox.remove(pos).expect("present");
                return Some(msg.body.expect("reply has a body"));
            }
            if !self.read_frame(deadline).await {
                return None;
            }
        }
    }

    /// The reply to request `id`; panics when the connection closes first.
    pub async fn reply(&mut self, id: u32) -> server_message::Body {
        match self.try_reply(id).await {
            Some(body) => body,
            None => panic!(
                "connection closed before the reply to request {id}; queued: {:?}",
                self.inbox
            ),
        }
    }

    /// Sends a request and waits for its reply.
    pub async fn request(&mut self, body: client_message::Body) -> server_message::Body {
        let id = self.send_request(body).await;
        self.reply(id).await
    }

    /// Logs in; returns the reply body (`Login` or `Error`).
    pub async fn login(
        &mut self,
        app: &str,
        user: &str,
        token: &str,
        heartbeat: u32,
    ) -> server_message::Body {
        self.request(client_message::Body::Login(pb::LoginRequest {
            app_id: app.into(),
            user_id: user.into(),
            token: token.into(),
            heartbeat_interval: heartbeat,
            ..Default::default()
        }))
        .await
    }

    /// Logs in to [`APP_ID`] as `user` with a valid token, heartbeat 60 s (the server
    /// never times it out while a test sends nothing) and `presence` s of presence
    /// timeout, resuming `session_id` from `positions` when it is not empty; `sdk` names
    /// the client. Panics unless the login succeeds.
    pub async fn login_resume(
        &mut self,
        user: &str,
        session_id: &str,
        positions: Vec<pb::ChannelPosition>,
        presence: u32,
        sdk: &str,
    ) -> pb::LoginReply {
        match self
            .request(client_message::Body::Login(login_request(
                user, session_id, positions, presence, sdk,
            )))
            .await
        {
            server_message::Body::Login(r) => r,
            other => panic!("raw login of {user} failed: {other:?}"),
        }
    }

    /// Subscribes with default options; panics unless it succeeds.
    pub async fn subscribe(&mut self, channel: &str) -> pb::SubscribeReply {
        match self
            .request(client_message::Body::Subscribe(pb::SubscribeRequest {
                channel_name: channel.into(),
                // Message tests read pushes one by one; presence has its own tests.
                with_presence: Some(false),
                ..Default::default()
            }))
            .await
        {
            server_message::Body::Subscribe(r) => r,
            other => panic!("subscribe {channel} failed: {other:?}"),
        }
    }

    /// Sends a heartbeat with an id and checks the reply: proves the session is alive.
    pub async fn assert_alive(&mut self) {
        let reply = self
            .request(client_message::Body::Heartbeat(pb::Heartbeat {}))
            .await;
        assert!(
            matches!(reply, server_message::Body::Heartbeat(_)),
            "expected a heartbeat reply, got {reply:?}"
        );
    }

    /// The next push (id 0), or `None` once the connection is closed.
    pub async fn next_push(&mut self, timeout: Duration) -> Option<ServerMessage> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(pos) = self.inbox.iter().position(|m| m.id == 0) {
                return self.inbox.remove(pos);
            }
            if !self.read_frame(deadline).await {
                return None;
            }
        }
    }

    /// Reads everything until the connection closes (panics after `timeout`). Message
    /// pushes are counted, and kept when `keep` is true.
    pub async fn read_until_closed(&mut self, timeout: Duration, keep: bool) -> Ended {
        let deadline = Instant::now() + timeout;
        let mut ended = Ended::default();
        loop {
            while let Some(m) = self.inbox.pop_front() {
                ended.closing_was_last = false;
                match m.body {
                    Some(server_message::Body::Closing(c)) => {
                        ended.closing = Some(c);
                        ended.closing_was_last = true;
                    }
                    Some(server_message::Body::Message(p)) => {
                        ended.message_count += 1;
                        if keep {
                            ended.messages.push(p);
                        }
                    }
                    _ => {}
                }
            }
            if !self.read_frame(deadline).await {
                ended.close_code = self.close_code.flatten();
                return ended;
            }
        }
    }

    /// Reads until the connection closes and returns the `Closing` push, checking that
    /// the close frame carries the same code.
    pub async fn expect_closing(&mut self, timeout: Duration) -> Closing {
        let ended = self.read_until_closed(timeout, false).await;
        let Some(closing) = ended.closing.clone() else {
            panic!("connection closed without a Closing push: {ended:?}");
        };
        assert!(ended.closing_was_last, "Closing must be the last message");
        if let Some(code) = ended.close_code {
            assert_eq!(
                u32::from(code),
                closing.code,
                "close frame code matches the Closing push"
            );
        }
        closing
    }
}

/// A publish request body.
pub fn publish_body(
    channel_type: pb::ChannelType,
    channel: &str,
    message_type: pb::MessageType,
    payload: impl Into<Bytes>,
) -> client_message::Body {
    client_message::Body::Publish(pb::PublishRequest {
        channel_type: channel_type as i32,
        channel_name: channel.into(),
        message_type: message_type as i32,
        payload: payload.into(),
        ..Default::default()
    })
}

/// A STRING publish to a MESSAGE channel.
pub fn publish_text(channel: &str, text: &str) -> client_message::Body {
    publish_body(
        pb::ChannelType::Message,
        channel,
        pb::MessageType::String,
        Bytes::copy_from_slice(text.as_bytes()),
    )
}

/// Unwraps an error reply; panics for anything else.
pub fn expect_error(body: server_message::Body) -> pb::Error {
    match body {
        server_message::Body::Error(e) => e,
        other => panic!("expected an error reply, got {other:?}"),
    }
}

/// A login request of [`APP_ID`] for `user` with a valid token and heartbeat 60 s (see
/// [`RawClient::login_resume`]).
pub fn login_request(
    user: &str,
    session_id: &str,
    positions: Vec<pb::ChannelPosition>,
    presence: u32,
    sdk: &str,
) -> pb::LoginRequest {
    pb::LoginRequest {
        app_id: APP_ID.into(),
        user_id: user.into(),
        token: token(user),
        heartbeat_interval: 60,
        presence_timeout: presence,
        session_id: session_id.into(),
        positions,
        sdk: sdk.into(),
    }
}

/// A resume position: channel type `ty` (wire number), `name`, and the position the
/// server gave (panics when it gave none).
pub fn resume_position(ty: i32, name: &str, at: Option<pb::StreamPosition>) -> pb::ChannelPosition {
    pb::ChannelPosition {
        channel_type: ty,
        channel_name: name.into(),
        topic_name: String::new(),
        position: Some(at.expect("a position from the server")),
    }
}

/// Sends `login` as request 1 on a WebSocket over any stream (one with custom headers,
/// TLS) and returns the reply's body, skipping pushes.
pub async fn login_on<S>(
    ws: &mut WebSocketStream<S>,
    login: pb::LoginRequest,
) -> server_message::Body
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let msg = ClientMessage {
        id: 1,
        body: Some(client_message::Body::Login(login)),
    };
    let mut buf = BytesMut::new();
    frame::encode_into(&msg, &mut buf);
    ws.send(Message::Binary(buf.freeze())).await.expect("send");
    loop {
        let msg = tokio::time::timeout(STEP, ws.next())
            .await
            .expect("a reply in time")
            .expect("open")
            .expect("a frame");
        if let Message::Binary(data) = msg {
            let msgs: Vec<ServerMessage> = frame::decode_all(data, usize::MAX).expect("decodes");
            if let Some(m) = msgs.into_iter().find(|m| m.id == 1) {
                return m.body.expect("a body");
            }
        }
    }
}
