//! The in-process server of the `server_requests` target: one tokio runtime running a
//! real `switchboard_server::Server` (memory broker, topics, presence, SQLite storage
//! and history under a fresh directory) on a loopback port, three logged-in WebSocket
//! connections that are reopened when the server closes them, and the exchange of one
//! fuzz frame: send it, send a sentinel heartbeat, read until the sentinel's reply or
//! the close.
//!
//! A panic anywhere in the process, server tasks included (tokio would otherwise
//! catch it and end only the task), aborts the process so libFuzzer records a crash.

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use switchboard_engine::HistoryRetention;
use switchboard_engine_memory::{
    MemoryBroker, MemoryConfig, MemoryPresence, MemoryTopics, SqliteHistory, SqliteStorage,
};
use switchboard_protocol::frame::{self, FrameDecoder};
use switchboard_protocol::pb::{
    self, ClientMessage, ServerMessage, client_message, server_message,
};
use switchboard_server::{AppConfig, Server, ServerConfig};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::generate::{Context, reply_name};
use crate::{APP_ID, CERT, OPEN_APP_ID, SENTINEL, USER_A, USER_B, USER_C};

/// Longest wait for the server's answer to one input before the input counts as a
/// hang (generous: the machine is shared and the fuzzer runs at nice 19).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Which connection an input goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The persistent connection of [`USER_A`] to the app with a certificate.
    Certified,
    /// The persistent connection of [`USER_B`] to the app without one.
    Open,
    /// The persistent connection of [`USER_C`] to the app without one.
    OpenOther,
    /// A new connection that has not logged in (the input usually starts with a login).
    Fresh,
}

/// The server, its connections and the tally of replies.
pub struct Harness {
    rt: Runtime,
    url: String,
    certified: Option<Ws>,
    open: Option<Ws>,
    open_other: Option<Ws>,
    /// What the generator may use (session ids seen, the clock).
    pub ctx: Context,
    /// Distinct replies seen: "operation code" (errors) or "reply" (successes), with
    /// counts.
    pub tally: BTreeMap<String, u64>,
    execs: u64,
    stats_path: Option<std::path::PathBuf>,
}

/// Makes every panic, on any thread, abort the process after printing it.
pub fn abort_on_panic() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        std::process::abort();
    }));
}

/// The server configuration: the certified app with default limits (so rate limits are
/// reached), the open app without publish rate limits (so publishes get past them).
pub fn config() -> ServerConfig {
    let mut certified = AppConfig::new(APP_ID, Some(CERT.into()));
    let mut open = AppConfig::new(OPEN_APP_ID, None);
    open.limits.publish_rate_per_channel = 0;
    // The harness logs in again after every close (logouts, protocol errors): far more
    // than R31's logins a minute.
    certified.limits.max_logins_per_user_per_minute = 0;
    open.limits.max_logins_per_user_per_minute = 0;
    ServerConfig {
        apps: vec![certified, open],
        heartbeat_interval_range: (1, 1800),
        ..Default::default()
    }
}

/// The server's data directory: `$SWITCHBOARD_FUZZ_DATA` (scripts/fuzz.sh sets it and
/// removes it after the run), else one per process on tmpfs when there is one (storage
/// and history fsync every commit), else under the temp dir. Emptied first.
fn data_dir() -> std::path::PathBuf {
    let dir = match std::env::var_os("SWITCHBOARD_FUZZ_DATA") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => {
            let base = if std::path::Path::new("/dev/shm").is_dir() {
                std::path::PathBuf::from("/dev/shm")
            } else {
                std::env::temp_dir()
            };
            base.join(format!("switchboard-fuzz-{}", std::process::id()))
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("storage")).expect("create storage dir");
    std::fs::create_dir_all(dir.join("history")).expect("create history dir");
    dir
}

impl Harness {
    /// Starts the runtime and the server on a free loopback port.
    pub fn start() -> Harness {
        abort_on_panic();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let dir = data_dir();
        let url = rt.block_on(async {
            let broker = Arc::new(MemoryBroker::new(MemoryConfig {
                retention: switchboard_engine::Retention {
                    max_count: 100,
                    max_age: Duration::from_secs(60),
                },
                ..MemoryConfig::default()
            }));
            let storage = SqliteStorage::open(&dir.join("storage")).expect("open storage");
            let history = SqliteHistory::open(
                &dir.join("history"),
                HistoryRetention {
                    max_age: Duration::from_secs(3600),
                    max_per_channel: 100,
                },
            )
            .expect("open history");
            let server = Server::new(config(), broker)
                .with_topics(Arc::new(MemoryTopics::new()))
                .with_presence(Arc::new(MemoryPresence::new()))
                .with_storage(Arc::new(storage))
                .with_history(Arc::new(history));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind loopback");
            let addr = listener.local_addr().expect("local addr");
            tokio::spawn(async move {
                server
                    .run(listener, std::future::pending())
                    .await
                    .expect("server runs")
            });
            format!("ws://{addr}{}", switchboard_server::WS_PATH)
        });
        if std::env::var_os("SWITCHBOARD_FUZZ_SELFTEST_PANIC").is_some() {
            // Checks the harness itself: a panic in a spawned task (as in a server
            // handler) must end the process, not just the task.
            let task = rt.spawn(async { panic!("self-test: a panic in a server task") });
            let _ = rt.block_on(task);
            unreachable!("the panic hook did not abort");
        }
        Harness {
            rt,
            url,
            certified: None,
            open: None,
            open_other: None,
            ctx: Context::default(),
            tally: BTreeMap::new(),
            execs: 0,
            stats_path: std::env::var_os("SWITCHBOARD_FUZZ_STATS").map(Into::into),
        }
    }

    /// Sends `frame` as one binary WebSocket message on `target` and waits for the
    /// answer (the sentinel's reply or the close).
    pub fn exchange(&mut self, target: Target, frame: Bytes) {
        self.ctx.now = (switchboard_protocol::now_ms() / 1000) as u32;
        let url = self.url.clone();
        let Harness {
            rt,
            certified,
            open,
            open_other,
            ctx,
            tally,
            ..
        } = self;
        rt.block_on(async {
            let slot = match target {
                Target::Certified => Some((certified, APP_ID, USER_A)),
                Target::Open => Some((open, OPEN_APP_ID, USER_B)),
                Target::OpenOther => Some((open_other, OPEN_APP_ID, USER_C)),
                Target::Fresh => None,
            };
            match slot {
                Some((slot, app, user)) => {
                    if slot.is_none() {
                        *slot = Some(login(&url, app, user, ctx, tally).await);
                    }
                    let ws = slot.as_mut().expect("connected");
                    if !answer(ws, frame, ctx, tally).await {
                        *slot = None;
                    }
                }
                None => {
                    let mut ws = connect(&url).await;
                    if answer(&mut ws, frame, ctx, tally).await {
                        let _ = ws.close(None).await;
                    }
                }
            }
        });
        self.execs += 1;
        if self.execs.is_power_of_two() || self.execs.is_multiple_of(20_000) {
            self.write_stats();
        }
    }

    /// Writes the tally to `$SWITCHBOARD_FUZZ_STATS` (if set).
    pub fn write_stats(&self) {
        let Some(path) = &self.stats_path else { return };
        let mut text = format!("# executions: {}\n", self.execs);
        for (k, n) in &self.tally {
            text.push_str(&format!("{k}\t{n}\n"));
        }
        let _ = std::fs::write(path, text);
    }
}

async fn connect(url: &str) -> Ws {
    let (ws, _) = tokio::time::timeout(ANSWER_TIMEOUT, tokio_tungstenite::connect_async(url))
        .await
        .expect("WebSocket handshake in time")
        .expect("WebSocket handshake");
    ws
}

/// Opens a connection and logs in as `user` (heartbeat 60 s); panics if the server
/// refuses a valid login.
async fn login(
    url: &str,
    app: &str,
    user: &str,
    ctx: &mut Context,
    tally: &mut BTreeMap<String, u64>,
) -> Ws {
    let mut ws = connect(url).await;
    let token = if app == APP_ID {
        switchboard_token::build_rtm_token(APP_ID, CERT, user, 3600, ctx.now).expect("token")
    } else {
        String::new()
    };
    let req = ClientMessage {
        id: 1,
        body: Some(client_message::Body::Login(pb::LoginRequest {
            app_id: app.into(),
            user_id: user.into(),
            token,
            heartbeat_interval: 60,
            ..Default::default()
        })),
    };
    ws.send(Message::Binary(frame::encode(&req)))
        .await
        .expect("send login");
    loop {
        let msg = tokio::time::timeout(ANSWER_TIMEOUT, ws.next())
            .await
            .expect("login answered in time");
        let Some(Ok(Message::Binary(b))) = msg else {
            panic!("valid login of {user} refused: {msg:?}");
        };
        for m in FrameDecoder::<ServerMessage>::new(b, usize::MAX) {
            let m = m.expect("the server sent a malformed frame");
            match m.body {
                Some(server_message::Body::Login(reply)) if m.id == 1 => {
                    ctx.sessions.push(reply.session_id);
                    if ctx.sessions.len() > 4 {
                        ctx.sessions.remove(0);
                    }
                    return ws;
                }
                Some(body) if m.id == 1 => panic!("valid login of {user} refused: {body:?}"),
                Some(body) => count(tally, m.id, &body),
                None => panic!("a server message without a body"),
            }
        }
    }
}

/// `$SWITCHBOARD_FUZZ_FAIL_ON_CLOSE`: a close code (e.g. 4004) that counts as a crash,
/// to find the input behind a close the tally shows.
fn fail_on_close() -> Option<u32> {
    static CODE: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    *CODE.get_or_init(|| {
        std::env::var("SWITCHBOARD_FUZZ_FAIL_ON_CLOSE")
            .ok()
            .and_then(|v| v.parse().ok())
    })
}

fn count(tally: &mut BTreeMap<String, u64>, id: u32, body: &server_message::Body) {
    if let server_message::Body::Closing(c) = body
        && fail_on_close() == Some(c.code)
    {
        panic!(
            "closed with {} ({}) — SWITCHBOARD_FUZZ_FAIL_ON_CLOSE",
            c.code, c.reason
        );
    }
    let key = match body {
        server_message::Body::Error(e) => format!("{} {}", e.operation, e.code),
        server_message::Body::Closing(c) => format!("close {}", c.code),
        other if id == 0 => reply_name(other).to_string(),
        other => format!("{} ok", reply_name(other)),
    };
    *tally.entry(key).or_default() += 1;
}

/// Sends `frame` then the sentinel and reads until the sentinel's reply (true) or the
/// end of the connection (false). Every frame the server sends must decode.
async fn answer(
    ws: &mut Ws,
    frame: Bytes,
    ctx: &mut Context,
    tally: &mut BTreeMap<String, u64>,
) -> bool {
    if ws.send(Message::Binary(frame)).await.is_err() {
        return false;
    }
    let mut sentinel = BytesMut::new();
    frame::encode_into(
        &ClientMessage {
            id: SENTINEL,
            body: Some(client_message::Body::Heartbeat(pb::Heartbeat {})),
        },
        &mut sentinel,
    );
    // The server may already have closed (a logout, a protocol error): then the close
    // is what is read below.
    let _ = ws.send(Message::Binary(sentinel.freeze())).await;
    loop {
        let msg = match tokio::time::timeout(ANSWER_TIMEOUT, ws.next()).await {
            Ok(msg) => msg,
            Err(_) => {
                panic!("the server neither answered nor closed within {ANSWER_TIMEOUT:?} (hang)")
            }
        };
        match msg {
            Some(Ok(Message::Binary(b))) => {
                for m in FrameDecoder::<ServerMessage>::new(b, usize::MAX) {
                    let m = m.expect("the server sent a malformed frame");
                    let Some(body) = m.body else {
                        panic!("a server message without a body (id {})", m.id);
                    };
                    if m.id == SENTINEL && matches!(body, server_message::Body::Heartbeat(_)) {
                        return true;
                    }
                    if let server_message::Body::Login(reply) = &body {
                        ctx.sessions.push(reply.session_id.clone());
                        if ctx.sessions.len() > 4 {
                            ctx.sessions.remove(0);
                        }
                    }
                    count(tally, m.id, &body);
                }
            }
            Some(Ok(Message::Text(t))) => panic!("the server sent a text frame: {t:?}"),
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return false,
            Some(Ok(_)) => {}
        }
    }
}
