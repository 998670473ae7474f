//! `compare-load`: the fanout and p2p shapes of `switchboard bench … --raw` against
//! Redis pub/sub, NATS, MQTT (Mosquitto), Socket.IO (Node `socket.io` and
//! socketioxide) and a Pusher-protocol server (Sockudo), so that the figures can be
//! set side by side. The last stdout line is one JSON object with the keys of the
//! switchboard bench's, plus "peer".
//!
//! Everything runs on one thread (a current-thread runtime and a `LocalSet`), like
//! a load generator pinned to one core.

mod common;
mod fanout;
mod mqtt;
mod nats;
mod p2p;
mod peer;
mod redis;
mod ws;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "compare-load",
    about = "fanout and p2p load against peer servers"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// One publisher, many subscribers on one channel.
    Fanout {
        /// Which server.
        peer: PeerKind,
        #[command(flatten)]
        args: fanout::FanoutArgs,
    },
    /// Pairs of users messaging each other, every message echoed back.
    P2p {
        /// Which server.
        peer: PeerKind,
        #[command(flatten)]
        args: p2p::P2pArgs,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum PeerKind {
    /// Redis pub/sub (URL like redis://127.0.0.1:6399).
    Redis,
    /// NATS core (URL like nats://127.0.0.1:4222).
    Nats,
    /// MQTT 3.1.1, QoS 0 (URL like mqtt://127.0.0.1:1884).
    Mqtt,
    /// Node socket.io with bench/compare/socketio/server.js (URL like ws://127.0.0.1:3000).
    Socketio,
    /// socketioxide with bench/compare/socketioxide (same protocol and events).
    Socketioxide,
    /// Sockudo, Pusher protocol 7 (URL like ws://127.0.0.1:6001, with --app-key/--app-secret).
    Sockudo,
}

impl PeerKind {
    fn name(self) -> &'static str {
        match self {
            PeerKind::Redis => "redis",
            PeerKind::Nats => "nats",
            PeerKind::Mqtt => "mqtt",
            PeerKind::Socketio => "socketio",
            PeerKind::Socketioxide => "socketioxide",
            PeerKind::Sockudo => "sockudo",
        }
    }
}

/// Flags of every scenario.
#[derive(Args, Clone)]
pub struct CommonArgs {
    /// Server address.
    #[arg(long)]
    pub url: String,
    /// Payload bytes (binary peers: at least 20; text peers: at least 41).
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Seconds of measuring.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Connections opened at once while connecting.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
    /// Pid of the server process, to report its CPU from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Pusher app key (sockudo).
    #[arg(long, default_value = "bench-key")]
    pub app_key: String,
    /// Pusher app secret (sockudo).
    #[arg(long, default_value = "bench-secret")]
    pub app_secret: String,
}

/// host:port of a URL like scheme://host:port/…
fn host_port(url: &str, default_port: u16) -> anyhow::Result<(String, u16)> {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let rest = rest.split('/').next().unwrap_or(rest);
    match rest.rsplit_once(':') {
        Some((h, p)) => Ok((h.to_string(), p.parse().context("port")?)),
        None => Ok((rest.to_string(), default_port)),
    }
}

/// Runs `$body` with `$peer` bound to the peer's connector (one monomorphised copy of
/// the scenario per protocol).
macro_rules! with_peer {
    ($kind:expr, $c:expr, |$peer:ident| $body:expr) => {{
        let c: &CommonArgs = $c;
        let url = c.url.trim_end_matches('/').to_string();
        match $kind {
            PeerKind::Redis => {
                let (h, p) = host_port(&url, 6379)?;
                let $peer = redis::Redis {
                    addr: format!("{h}:{p}"),
                    size: c.size,
                };
                $body
            }
            PeerKind::Nats => {
                let $peer = nats::Nats { url, size: c.size };
                $body
            }
            PeerKind::Mqtt => {
                let (host, port) = host_port(&url, 1883)?;
                let $peer = mqtt::Mqtt {
                    host,
                    port,
                    size: c.size,
                };
                $body
            }
            PeerKind::Socketio | PeerKind::Socketioxide => {
                let $peer = ws::SocketIo { url, size: c.size };
                $body
            }
            PeerKind::Sockudo => {
                let $peer = ws::Pusher {
                    url,
                    key: c.app_key.clone(),
                    secret: c.app_secret.clone(),
                    size: c.size,
                };
                $body
            }
        }
    }};
}

async fn run(s: Scenario) -> anyhow::Result<()> {
    match s {
        Scenario::Fanout { peer, args } => {
            let common = args.common.clone();
            with_peer!(peer, &common, |p| fanout::run(p, peer.name(), args).await)
        }
        Scenario::P2p { peer, args } => {
            let common = args.common.clone();
            with_peer!(peer, &common, |p| p2p::run(p, peer.name(), args).await)
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, run(cli.scenario))
}
