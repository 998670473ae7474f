//! The test server: a real [`Server`] on a free loopback port with every test engine,
//! the apps and certificates every test uses, and token builders.

use super::raw::RawClient;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use switchboard_client::{Client, ClientConfig};
use switchboard_engine_memory::{MemoryBroker, MemoryConfig};
use switchboard_protocol::pb::server_message;
use switchboard_server::{AppConfig, Server, ServerConfig};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

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

/// A [`fresh_dir`] that is removed when dropped (for tests that open stores on it
/// themselves).
pub struct DataDir(pub std::path::PathBuf);

impl DataDir {
    /// A fresh directory named after `tag`.
    pub fn new(tag: &str) -> DataDir {
        DataDir(fresh_dir(tag))
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
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

    /// SDK settings for this server with short request timeouts, allowing several live
    /// clients of one user (R14 off).
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new(self.endpoint());
        c.request_timeout = Duration::from_secs(5);
        c.login_timeout = Duration::from_secs(5);
        c.event_capacity = 16_384;
        // Tests play several devices of one user in one process (R28 kicks and the
        // like); R14's check is tested on its own with the default.
        c.allow_duplicate_user_id = true;
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

    /// A raw connection logged in to `app` (certificate `cert`) as `user`, with its
    /// session id.
    pub async fn raw_login_to(&self, app: &str, cert: &str, user: &str) -> (RawClient, String) {
        let mut raw = self.raw().await;
        let reply = raw
            .login(
                app,
                user,
                &token_with(app, cert, user, 3600, now_secs()),
                60,
            )
            .await;
        match reply {
            server_message::Body::Login(r) => (raw, r.session_id),
            other => panic!("raw login of {user} to {app} failed: {other:?}"),
        }
    }

    /// A raw login of `user` (see [`TestServer::raw_login`]) subscribed to the MESSAGE
    /// channel `channel` visibly, without presence events.
    pub async fn raw_member(&self, user: &str, channel: &str) -> RawClient {
        let mut raw = self.raw_login(user).await;
        raw.subscribe(channel).await;
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
