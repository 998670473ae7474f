//! What the SDK's integration tests share: a real server on a loopback port (stream
//! channels, presence, history), apps with and without a certificate, tokens, a TCP
//! relay that can cut and refuse connections (a network loss), and waiting helpers.

#![allow(dead_code)]

use futures_util::{Stream, StreamExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use switchboard_client::{Client, ClientConfig, Lagged};
use switchboard_engine::HistoryRetention;
use switchboard_engine_memory::{
    MemoryBroker, MemoryConfig, MemoryPresence, MemoryTopics, SqliteHistory,
};
use switchboard_server::{AppConfig, Server, ServerConfig};
use tokio::net::{TcpListener, TcpStream};

/// An app without a certificate: tokens are not checked.
pub const OPEN_APP: &str = "c3d4e5f60718293a4b5c6d7e8f900112";
/// An app with a certificate.
pub const APP: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
/// The certificate of [`APP`].
pub const CERT: &str = "f0e1d2c3b4a5968778695a4b3c2d1e0f";
/// Time allowed for one expected event.
pub const STEP: Duration = Duration::from_secs(5);

/// A real server on a loopback port; stopped when dropped.
pub struct TestServer {
    /// `ws://127.0.0.1:port`.
    pub endpoint: String,
    /// `127.0.0.1:port`.
    pub addr: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    dir: std::path::PathBuf,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl TestServer {
    /// A server with [`APP`] and [`OPEN_APP`], stream channels, presence and history.
    pub async fn start() -> TestServer {
        let mut apps = vec![
            AppConfig::new(APP, Some(CERT.into())),
            AppConfig::new(OPEN_APP, None),
        ];
        for app in &mut apps {
            app.limits.publish_rate_per_channel = 0;
        }
        let config = ServerConfig {
            apps,
            heartbeat_interval_range: (1, 1800),
            ..Default::default()
        };
        let dir = std::env::temp_dir().join(format!(
            "switchboard-client-test-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).expect("create history dir");
        let history = SqliteHistory::open(&dir, HistoryRetention::default()).expect("open history");
        let broker = Arc::new(MemoryBroker::new(MemoryConfig::default()));
        let server = Server::new(config, broker)
            .with_topics(Arc::new(MemoryTopics::new()))
            .with_presence(Arc::new(MemoryPresence::new()))
            .with_history(Arc::new(history));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("addr").to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run(listener, async {
            let _ = stopped.await;
        }));
        TestServer {
            endpoint: format!("ws://{addr}"),
            addr,
            stop: Some(stop),
            dir,
        }
    }

    /// SDK settings for this server with short timeouts and quick reconnects.
    pub fn config(&self) -> ClientConfig {
        config_for(&self.endpoint)
    }
}

/// SDK settings for `endpoint` with short timeouts and quick reconnects.
pub fn config_for(endpoint: &str) -> ClientConfig {
    let mut c = ClientConfig::new(endpoint);
    c.request_timeout = STEP;
    c.login_timeout = STEP;
    c.reconnect_base_delay = Duration::from_millis(50);
    c.reconnect_max_delay = Duration::from_millis(200);
    c.allow_duplicate_user_id = true;
    c
}

fn now_secs() -> u32 {
    (switchboard_protocol::now_ms() / 1000) as u32
}

/// An RTM token of [`APP`] for `user`, valid `secs` seconds.
pub fn token(user: &str, secs: u32) -> String {
    switchboard_token::build_rtm_token(APP, CERT, user, secs, now_secs()).expect("token")
}

/// An RTC token of [`APP`] for `user` in `channel`, valid `secs` seconds.
pub fn rtc_token(channel: &str, user: &str, secs: u32) -> String {
    switchboard_token::build_rtc_token(
        APP,
        CERT,
        channel,
        user,
        switchboard_token::RtcRole::Publisher,
        secs,
        secs,
        now_secs(),
    )
    .expect("token")
}

/// A client of [`APP`] logged in with an hour's token.
pub async fn login(config: ClientConfig, user: &str) -> Client {
    let c = Client::new(APP, user, config).expect("valid client");
    c.login(&token(user, 3600)).await.expect("login");
    c
}

/// The next item of `stream` within [`STEP`], or a panic saying `what`.
pub async fn next<T>(
    stream: &mut (impl Stream<Item = Result<T, Lagged>> + Unpin),
    what: &str,
) -> T {
    match tokio::time::timeout(STEP, stream.next()).await {
        Ok(Some(Ok(t))) => t,
        Ok(Some(Err(lagged))) => panic!("{what}: {lagged}"),
        Ok(None) => panic!("{what}: stream ended"),
        Err(_) => panic!("{what}: nothing within {STEP:?}"),
    }
}

/// A TCP relay in front of the server: [`Relay::cut`] closes every connection through
/// it, and while [`Relay::set_up`] is false it refuses new ones (a network loss).
pub struct Relay {
    /// `ws://127.0.0.1:port` of the relay.
    pub endpoint: String,
    cut: Arc<AtomicU64>,
    up: Arc<AtomicBool>,
}

impl Relay {
    /// A relay to `target` (`host:port`), up.
    pub async fn start(target: &str) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let endpoint = format!("ws://{}", listener.local_addr().expect("addr"));
        let cut = Arc::new(AtomicU64::new(0));
        let up = Arc::new(AtomicBool::new(true));
        let (target, c, u) = (target.to_string(), cut.clone(), up.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !u.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused
                }
                let (target, cut) = (target.clone(), c.clone());
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let epoch = cut.load(Ordering::SeqCst);
                    let mut watch = cut_watch(cut, epoch);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = &mut watch => {}
                    }
                });
            }
        });
        Relay { endpoint, cut, up }
    }

    /// Closes every connection through the relay now.
    pub fn cut(&self) {
        self.cut.fetch_add(1, Ordering::SeqCst);
    }

    /// Lets new connections through (`true`) or refuses them (`false`).
    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }
}

/// Completes once `cut` moves past `epoch` (checked every 10 ms: a relay's wire, not
/// a test's wait for state).
fn cut_watch(
    cut: Arc<AtomicU64>,
    epoch: u64,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async move {
        while cut.load(Ordering::SeqCst) == epoch {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
}
