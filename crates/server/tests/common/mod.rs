//! Shared helpers of the server's integration tests: a real server on a loopback port,
//! token builders, SDK clients, a raw WebSocket client speaking the wire protocol, and
//! polling helpers (no fixed sleeps to wait for state).

#![allow(dead_code)]
pub mod proxy;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, Stream, StreamExt};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use switchboard_client::{
    ChannelType, Client, ClientConfig, ErrorCode, EventStream, LinkState, LinkStateEvent,
    MessageEvent, Payload, PublishOptions,
};
use switchboard_engine_memory::{MemoryBroker, MemoryConfig};
use switchboard_protocol::frame;
use switchboard_protocol::pb::{
    self, ClientMessage, Closing, ServerMessage, client_message, server_message,
};
use switchboard_server::{AppConfig, Server, ServerConfig};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The main app: has a certificate.
pub const APP_ID: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
/// Certificate of [`APP_ID`].
pub const CERT: &str = "f0e1d2c3b4a5968778695a4b3c2d1e0f";
/// A second configured app with its own certificate.
pub const OTHER_APP_ID: &str = "b2c3d4e5f60718293a4b5c6d7e8f9001";
/// Certificate of [`OTHER_APP_ID`].
pub const OTHER_CERT: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
/// An app configured without a certificate (tokens not checked).
pub const OPEN_APP_ID: &str = "c3d4e5f60718293a4b5c6d7e8f900112";
/// A well-formed app id the server does not know.
pub const UNKNOWN_APP_ID: &str = "d4e5f60718293a4b5c6d7e8f90011223";
/// A certificate no app uses.
pub const WRONG_CERT: &str = "00112233445566778899aabbccddeeff";

/// Default time allowed for one expected event.
pub const STEP: Duration = Duration::from_secs(5);

/// The configuration every test starts from: three apps ([`APP_ID`] and
/// [`OTHER_APP_ID`] with certificates, [`OPEN_APP_ID`] without), and a heartbeat range
/// that allows 1 s so heartbeat tests stay short.
pub fn base_config() -> ServerConfig {
    ServerConfig {
        apps: vec![
            AppConfig::new(APP_ID, Some(CERT.into())),
            AppConfig::new(OTHER_APP_ID, Some(OTHER_CERT.into())),
            AppConfig::new(OPEN_APP_ID, None),
        ],
        heartbeat_interval_range: (1, 1800),
        shutdown_grace: Duration::from_secs(3),
        ..Default::default()
    }
}

/// A server running on a free loopback port; shut down when dropped.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
    /// The storage engine's data directory when the server made it (removed when
    /// dropped).
    storage_dir: Option<std::path::PathBuf>,
}

/// A fresh directory under the system temp dir for one test server's storage.
pub fn fresh_dir(tag: &str) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "switchboard-test-{tag}-{}-{n}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).expect("create test dir");
    dir
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

impl TestServer {
    /// A server with [`base_config`].
    pub async fn start() -> TestServer {
        TestServer::with_config(base_config()).await
    }

    /// A server with [`base_config`] changed by `f`.
    pub async fn with(f: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let mut config = base_config();
        f(&mut config);
        TestServer::with_config(config).await
    }

    /// A server with exactly `config`.
    pub async fn with_config(config: ServerConfig) -> TestServer {
        let broker = Arc::new(MemoryBroker::new(MemoryConfig::default()));
        TestServer::with_parts(Server::new(config, broker)).await
    }

    /// Runs `server` (built by the test, e.g. with history or another engine config).
    pub async fn with_parts(server: Server) -> TestServer {
        let dir = fresh_dir("storage");
        let mut s = TestServer::with_storage_at(server, &dir).await;
        s.storage_dir = Some(dir);
        s
    }

    /// Runs `server` with every test engine and its storage in `dir`, which is kept (a
    /// later server can open it again: restart tests).
    pub async fn with_storage_at(server: Server, dir: &std::path::Path) -> TestServer {
        // Every test server offers stream channels, presence and storage.
        let storage = switchboard_engine_memory::SqliteStorage::open(dir).expect("open storage");
        let server = server
            .with_topics(Arc::new(switchboard_engine_memory::MemoryTopics::new()))
            .with_presence(Arc::new(switchboard_engine_memory::MemoryPresence::new()))
            .with_storage(Arc::new(storage));
        TestServer::run_as_is(server).await
    }

    /// Runs `server` with exactly the engines it was given.
    pub async fn run_as_is(server: Server) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(server.run(listener, async {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            shutdown: Some(tx),
            handle: Some(handle),
            storage_dir: None,
        }
    }

    /// `ws://127.0.0.1:port` (the SDK adds the path).
    pub fn endpoint(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// The full WebSocket URL, `ws://127.0.0.1:port/v1/ws`.
    pub fn url(&self) -> String {
        format!("ws://{}{}", self.addr, switchboard_server::WS_PATH)
    }

    /// SDK settings for this server with short request timeouts.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new(self.endpoint());
        c.request_timeout = Duration::from_secs(5);
        c.login_timeout = Duration::from_secs(5);
        c.event_capacity = 16_384;
        c
    }

    /// An SDK client of [`APP_ID`], not logged in.
    pub fn client(&self, user: &str) -> Client {
        self.client_of(APP_ID, user)
    }

    /// An SDK client of `app`, not logged in.
    pub fn client_of(&self, app: &str, user: &str) -> Client {
        Client::new(app, user, self.client_config()).expect("valid client")
    }

    /// An SDK client of [`APP_ID`] logged in with a valid token.
    pub async fn login(&self, user: &str) -> Client {
        let c = self.client(user);
        c.login(&token(user)).await.expect("login succeeds");
        c
    }

    /// A raw WebSocket connection, not logged in.
    pub async fn raw(&self) -> RawClient {
        RawClient::connect(&self.url()).await
    }

    /// A raw connection logged in to [`APP_ID`] as `user` (heartbeat 60 s, so the
    /// server does not time it out while a test is not sending anything).
    pub async fn raw_login(&self, user: &str) -> RawClient {
        let mut raw = self.raw().await;
        let reply = raw.login(APP_ID, user, &token(user), 60).await;
        assert!(
            matches!(reply, server_message::Body::Login(_)),
            "raw login of {user} failed: {reply:?}"
        );
        raw
    }

    /// Signals shutdown and waits for `run` to return.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let handle = self.handle.take().expect("server running");
        tokio::time::timeout(Duration::from_secs(8), handle)
            .await
            .expect("run returns after the shutdown signal")
            .expect("server task did not panic")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // The writer thread may still hold the files open; removing them is fine on
        // Linux (they go once closed).
        if let Some(dir) = &self.storage_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------

/// Current time, whole seconds since the epoch.
pub fn now_secs() -> u32 {
    (switchboard_protocol::now_ms() / 1000) as u32
}

/// A valid one-hour RTM token of [`APP_ID`] for `user`.
pub fn token(user: &str) -> String {
    token_with(APP_ID, CERT, user, 3600, now_secs())
}

/// An RTM token built from the given parts.
pub fn token_with(app: &str, cert: &str, user: &str, expire: u32, issue_ts: u32) -> String {
    switchboard_token::build_rtm_token(app, cert, user, expire, issue_ts).expect("token builds")
}

// ---------------------------------------------------------------------------------------
// Polling and streams
// ---------------------------------------------------------------------------------------

/// Polls `cond` every 10 ms until it holds or `timeout` passes; returns whether it held.
pub async fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The next item of `stream` within `timeout`; panics naming `what` otherwise. `None`
/// means the stream ended.
pub async fn next_within<S, T>(stream: &mut S, timeout: Duration, what: &str) -> Option<T>
where
    S: Stream<Item = T> + Unpin,
{
    tokio::time::timeout(timeout, stream.next())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Reads `events` until a change to `state`; panics after `timeout`.
pub async fn wait_link(
    events: &mut EventStream<LinkStateEvent>,
    state: LinkState,
    timeout: Duration,
) -> LinkStateEvent {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let e = next_within(events, left, &format!("link state {state:?}"))
            .await
            .expect("link state stream ended")
            .expect("link state stream lagged");
        if e.current_state == state {
            return e;
        }
    }
}

/// The next message of a message stream; panics on timeout, end or lag.
pub async fn next_message(stream: &mut EventStream<MessageEvent>, what: &str) -> MessageEvent {
    next_within(stream, STEP, what)
        .await
        .unwrap_or_else(|| panic!("stream ended while waiting for {what}"))
        .unwrap_or_else(|e| panic!("stream lagged while waiting for {what}: {e}"))
}

/// Polls with USER-channel publishes from `from` until `user` is offline (−11033);
/// returns whether it went offline within [`STEP`], and the last result.
pub async fn wait_offline(from: &Client, user: &str) -> (bool, String) {
    let opts = PublishOptions {
        channel_type: ChannelType::User,
        ..Default::default()
    };
    let deadline = Instant::now() + STEP;
    loop {
        let r = from.publish(user, "?", opts.clone()).await;
        let done = matches!(&r, Err(e) if e.code == ErrorCode::ChannelReceiverOffline.as_i32());
        if done || Instant::now() > deadline {
            return (done, format!("{r:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The text of a payload; panics for a binary one.
pub fn text(p: &Payload) -> &str {
    match p {
        Payload::Text(s) => s,
        Payload::Binary(b) => panic!("expected a STRING payload, got BINARY {b:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Raw WebSocket client
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// Engine settings (recovery retention)
// ---------------------------------------------------------------------------------------

impl TestServer {
    /// A server with [`base_config`] changed by `f`, on a memory engine with `memory`
    /// (for tests that need a particular recovery-log retention).
    pub async fn with_engine(
        memory: MemoryConfig,
        f: impl FnOnce(&mut ServerConfig),
    ) -> TestServer {
        let mut config = base_config();
        f(&mut config);
        let broker = Arc::new(MemoryBroker::new(memory));
        TestServer::with_parts(Server::new(config, broker)).await
    }
}

/// A memory engine configuration keeping at most `max_count` publications per channel
/// for `max_age` in its recovery log.
pub fn retention(max_count: usize, max_age: Duration) -> MemoryConfig {
    MemoryConfig {
        retention: switchboard_engine::Retention { max_count, max_age },
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------
// A server without presence
// ---------------------------------------------------------------------------------------

impl TestServer {
    /// A server with [`base_config`] changed by `f` that offers stream channels but no
    /// presence service (presence calls answer −13014, api.md R133).
    pub async fn without_presence(f: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let mut config = base_config();
        f(&mut config);
        let broker = Arc::new(MemoryBroker::new(MemoryConfig::default()));
        let server = Server::new(config, broker)
            .with_topics(Arc::new(switchboard_engine_memory::MemoryTopics::new()));
        TestServer::run_as_is(server).await
    }
}
