//! Where a bench runs and how its users log in: `--url` of a running server, or a
//! server started in this process (its own runtime thread, publish rate limits lifted,
//! storage in a temp dir); tokens minted from `--app-cert`.

use anyhow::Context;
use clap::Args;
use futures_util::StreamExt;
use std::sync::Arc;
use switchboard_client::{Client, ClientConfig};
use switchboard_engine_memory::{MemoryBroker, MemoryConfig};
use switchboard_server::{AppConfig, AppLimits, Server, ServerConfig};

use super::report;

/// Where to run: a server address, or an in-process server when `--url` is absent.
#[derive(Args)]
pub struct Target {
    /// Server address; when absent, a server is started in this process.
    #[arg(long, env = "SWITCHBOARD_URL")]
    pub(super) url: Option<String>,
    /// App id of a running server (its publish rate limit must be lifted).
    #[arg(long, env = "SWITCHBOARD_APP_ID")]
    pub(super) app_id: Option<String>,
    /// App certificate, to mint tokens for the bench users.
    #[arg(long, env = "SWITCHBOARD_APP_CERT")]
    pub(super) app_cert: Option<String>,
    /// Pid of the server process, to report its CPU (and memory) from /proc.
    #[arg(long)]
    pub(super) server_pid: Option<u32>,
}

impl Target {
    /// Whether the server runs in this process.
    pub(super) fn in_process(&self) -> bool {
        self.url.is_none()
    }

    /// Starts measuring CPU of the server and of this process.
    pub(super) fn cpu_meter(&self) -> report::CpuMeter {
        report::CpuMeter::start(self.server_pid, self.in_process())
    }
}

const IN_PROCESS_APP: &str = "0123456789abcdef0123456789abcdef";

/// The in-process server's storage (in a fresh temp dir), to read its commit count.
static IN_PROCESS_STORAGE: std::sync::OnceLock<switchboard_engine_memory::SqliteStorage> =
    std::sync::OnceLock::new();

/// Transactions the in-process server's storage committed so far (`None` for a server
/// elsewhere).
pub(super) fn storage_transactions() -> Option<u64> {
    IN_PROCESS_STORAGE.get().map(|s| s.transactions())
}

/// Resolves the target: (url, app id, certificate); starts a server when needed.
pub(super) async fn target(t: &Target) -> anyhow::Result<(String, String, Option<String>)> {
    target_with(t, |_| {}).await
}

/// [`target`], with `limits` adjusting the in-process server's app limits.
pub(super) async fn target_with(
    t: &Target,
    limits: impl FnOnce(&mut AppLimits),
) -> anyhow::Result<(String, String, Option<String>)> {
    if let Some(url) = &t.url {
        let app = t.app_id.clone().context("--app-id is needed with --url")?;
        return Ok((url.clone(), app, t.app_cert.clone()));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut app = AppConfig::new(IN_PROCESS_APP, None);
    app.limits = AppLimits {
        publish_rate_per_channel: 0,
        topic_publish_rate_per_channel: 0,
        ..Default::default()
    };
    limits(&mut app.limits);
    let config = ServerConfig {
        apps: vec![app],
        ..Default::default()
    };
    // Storage on the real disk, durable as in production, in a directory of its own.
    let dir = std::env::temp_dir().join(format!("switchboard-bench-{}", std::process::id()));
    let storage = switchboard_engine_memory::SqliteStorage::open(&dir)
        .map_err(|e| anyhow::anyhow!("opening bench storage in {}: {e}", dir.display()))?;
    let _ = IN_PROCESS_STORAGE.set(storage.clone());
    // The server gets its own runtime thread so that it is not starved by the load.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build();
        if let Ok(rt) = rt {
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener.into_std()?)?;
                let broker = Arc::new(MemoryBroker::new(MemoryConfig::default()));
                Server::new(config, broker)
                    .with_topics(Arc::new(switchboard_engine_memory::MemoryTopics::new()))
                    .with_presence(Arc::new(switchboard_engine_memory::MemoryPresence::new()))
                    .with_storage(Arc::new(storage))
                    .run(listener, std::future::pending())
                    .await
            })
            .ok();
        }
    });
    Ok((format!("ws://{addr}"), IN_PROCESS_APP.to_string(), None))
}

/// Removes the in-process server's storage directory, if a server was started.
pub(super) fn remove_in_process_storage() {
    if let Some(dir) = IN_PROCESS_STORAGE.get().and_then(|s| s.path().parent()) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The login token of `user`: minted from the certificate, else empty ("no token").
pub(super) fn token(app: &str, cert: Option<&str>, user: &str) -> anyhow::Result<String> {
    match cert {
        Some(c) => switchboard_token::build_rtm_token(
            app,
            c,
            user,
            86_400,
            (switchboard_protocol::now_ms() / 1000) as u32,
        )
        .map_err(|e| anyhow::anyhow!("token: {e}")),
        None => Ok(String::new()),
    }
}

pub(super) async fn login(
    url: &str,
    app: &str,
    cert: Option<&str>,
    user: &str,
) -> anyhow::Result<Client> {
    let client =
        Client::new(app, user, ClientConfig::new(url)).map_err(|e| anyhow::anyhow!("{e}"))?;
    let token = token(app, cert, user)?;
    client
        .login(&token)
        .await
        .map_err(|e| anyhow::anyhow!("{user}: {e}"))?;
    Ok(client)
}

/// Logs in `count` users at most `concurrency` at a time, in index order.
pub(super) async fn login_all<T, F, Fut>(
    count: u32,
    concurrency: usize,
    f: F,
) -> anyhow::Result<Vec<T>>
where
    F: Fn(u32) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    futures_util::stream::iter(0..count)
        .map(f)
        .buffered(concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}
