//! `switchboard bench`: load scenarios against a server (or one it starts itself).
//!
//! - `fanout`: P publishers and S subscribers on one channel, closed loop with a window
//!   K (message n is published once message n−K reached every subscriber) or open loop
//!   at a fixed rate; reports deliveries/s, publish→delivery latency percentiles, and
//!   out-of-order and missing counts (both must be 0).
//! - `p2p`: pairs of users sending USER messages to each other, echoed back; round
//!   trips/s and round-trip latency.
//! - `channels`: many channels, a few subscribers each, one open-loop publisher each.
//! - `connections`: many idle logged-in connections; login rate and memory per
//!   connection.
//! - `presence`: members joining and leaving a big channel; presence events delivered.
//! - `topic`: publishers streaming into one topic of a stream channel, subscribers each
//!   following some of them.
//! - `storage`: durable metadata writes (group commit) and lock acquire/release.
//!
//! Subscribers are SDK clients by default, or with `--raw` bare WebSocket connections
//! ([`raw`]) that cost the load generator far less per message. A raw fanout publisher
//! sends as soon as its pace allows, without waiting for the reply to the message
//! before (the window alone bounds what is in flight); an SDK publisher awaits each
//! reply.

mod channels;
mod connections;
mod p2p;
mod presence;
mod raw;
mod report;
mod storage;
mod topic;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use switchboard_client::{
    Client, ClientConfig, EventStream, MessageEvent, Payload, PublishOptions, SubscribeOptions,
};
use switchboard_engine_memory::{MemoryBroker, MemoryConfig};
use switchboard_server::{AppConfig, AppLimits, Server, ServerConfig};
use tokio::sync::{Notify, watch};
use tokio_tungstenite::tungstenite::Message;

/// Bench scenarios.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// Many subscribers on one channel.
    Fanout(FanoutArgs),
    /// Pairs of users messaging each other (USER messages), echoed back.
    P2p(p2p::P2pArgs),
    /// Many channels, a few subscribers and one publisher each.
    Channels(channels::ChannelsArgs),
    /// Many idle logged-in connections: login rate and memory per connection.
    Connections(connections::ConnectionsArgs),
    /// Publishers streaming into one topic, subscribers following some of them.
    Topic(topic::TopicArgs),
    /// Churn (joins and leaves) in a channel of many members with presence.
    Presence(presence::PresenceArgs),
    /// Durable metadata writes and lock acquire/release, with latency.
    Storage(storage::StorageArgs),
}

/// Where to run: a server address, or an in-process server when `--url` is absent.
#[derive(Args)]
pub struct Target {
    /// Server address; when absent, a server is started in this process.
    #[arg(long, env = "SWITCHBOARD_URL")]
    url: Option<String>,
    /// App id of a running server (its publish rate limit must be lifted).
    #[arg(long, env = "SWITCHBOARD_APP_ID")]
    app_id: Option<String>,
    /// App certificate, to mint tokens for the bench users.
    #[arg(long, env = "SWITCHBOARD_APP_CERT")]
    app_cert: Option<String>,
    /// Pid of the server process, to report its CPU (and memory) from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
}

impl Target {
    /// Whether the server runs in this process.
    fn in_process(&self) -> bool {
        self.url.is_none()
    }

    /// Starts measuring CPU of the server and of this process.
    fn cpu_meter(&self) -> report::CpuMeter {
        report::CpuMeter::start(self.server_pid, self.in_process())
    }
}

/// `bench fanout` flags.
#[derive(Args)]
pub struct FanoutArgs {
    #[command(flatten)]
    target: Target,
    /// Publishers.
    #[arg(long, default_value_t = 1)]
    publishers: u32,
    /// Subscribers.
    #[arg(long, default_value_t = 1000)]
    subscribers: u32,
    /// Payload bytes (at least 20).
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Closed loop: messages in flight per publisher.
    #[arg(long, conflicts_with = "rate")]
    window: Option<u64>,
    /// Open loop: messages per second per publisher.
    #[arg(long)]
    rate: Option<u64>,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Channel name.
    #[arg(long, default_value = "bench")]
    channel: String,
    /// Subscribers are bare WebSocket connections instead of SDK clients.
    #[arg(long)]
    raw: bool,
}

/// Runs a bench scenario.
pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    let result = scenario(cmd).await;
    // The in-process server's storage directory goes with the run.
    if let Some(dir) = IN_PROCESS_STORAGE.get().and_then(|s| s.path().parent()) {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

async fn scenario(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Fanout(a) => fanout(a).await,
        BenchCommand::P2p(a) => p2p::run(a).await,
        BenchCommand::Channels(a) => channels::run(a).await,
        BenchCommand::Connections(a) => connections::run(a).await,
        BenchCommand::Topic(a) => topic::run(a).await,
        BenchCommand::Presence(a) => presence::run(a).await,
        BenchCommand::Storage(a) => storage::run(a).await,
    }
}

const IN_PROCESS_APP: &str = "0123456789abcdef0123456789abcdef";

/// The in-process server's storage (in a fresh temp dir), to read its commit count.
static IN_PROCESS_STORAGE: std::sync::OnceLock<switchboard_engine_memory::SqliteStorage> =
    std::sync::OnceLock::new();

/// Transactions the in-process server's storage committed so far (`None` for a server
/// elsewhere).
fn storage_transactions() -> Option<u64> {
    IN_PROCESS_STORAGE.get().map(|s| s.transactions())
}

/// Resolves the target: (url, app id, certificate); starts a server when needed.
async fn target(t: &Target) -> anyhow::Result<(String, String, Option<String>)> {
    target_with(t, |_| {}).await
}

/// [`target`], with `limits` adjusting the in-process server's app limits.
async fn target_with(
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

/// When a fanout publisher may send its next message: the closed loop's window (message
/// n goes once message n−K reached every subscriber) or the open loop's tick.
struct Pace {
    shared: Arc<Shared>,
    p: u32,
    window: Option<u64>,
    tick: Option<tokio::time::Interval>,
}

impl Pace {
    /// Waits until message `seq` may go; false once the run is stopping.
    async fn ready(&mut self, seq: u64) -> bool {
        let shared = &self.shared;
        if let Some(k) = self.window {
            if seq >= k {
                let ring = &shared.rings[self.p as usize];
                let slot = &ring[((seq - k) as usize) % ring.len()];
                while slot.load(Ordering::Acquire) < shared.subscribers {
                    if shared.stop.load(Ordering::Relaxed) {
                        return false;
                    }
                    let _ = tokio::time::timeout(
                        Duration::from_millis(100),
                        shared.wake[self.p as usize].notified(),
                    )
                    .await;
                }
                slot.store(0, Ordering::Release);
            }
        } else if let Some(t) = self.tick.as_mut() {
            t.tick().await;
        }
        !shared.stop.load(Ordering::Relaxed)
    }
}

/// A raw fanout publisher: sends each message as soon as its pace allows, without
/// waiting for the reply to the one before (the window bounds what is in flight), and
/// reads the replies as they come. Any refused publish fails the run.
async fn raw_publisher(
    mut c: raw::RawClient,
    mut pace: Pace,
    channel: String,
    size: usize,
) -> anyhow::Result<u64> {
    let mut seq = 0u64;
    let mut refused = 0u64;
    // Heartbeats keep the connection alive while the window is closed for long (a
    // starved load generator): the server ends a silent connection after 1.5 intervals.
    let hb = raw::heartbeat();
    let mut beat = tokio::time::interval(raw::HEARTBEAT_EVERY);
    loop {
        tokio::select! {
            biased;
            _ = beat.tick() => {
                c.ws.send(hb.clone()).await.context("heartbeat")?;
            }
            m = c.ws.next() => match m {
                Some(Ok(Message::Binary(b))) => {
                    for m in raw::decode(b) {
                        if !matches!(m, Ok(m) if m.error.is_none() && m.closing.is_none()) {
                            refused += 1;
                        }
                    }
                }
                Some(Ok(_)) => {}
                _ => bail!("publisher connection lost"),
            },
            go = pace.ready(seq) => {
                if !go {
                    break;
                }
                let payload = encode_payload(size, pace.p, seq, report::clock_us());
                let msg = c.publish(false, &channel, payload);
                c.ws.send(msg).await.context("publish")?;
                seq += 1;
            }
        }
    }
    refused += c.finish().await;
    if refused > 0 {
        bail!("{refused} publish(es) refused or undecodable");
    }
    Ok(seq)
}

/// The login token of `user`: minted from the certificate, else empty ("no token").
fn token(app: &str, cert: Option<&str>, user: &str) -> anyhow::Result<String> {
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

async fn login(url: &str, app: &str, cert: Option<&str>, user: &str) -> anyhow::Result<Client> {
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
async fn login_all<T, F, Fut>(count: u32, concurrency: usize, f: F) -> anyhow::Result<Vec<T>>
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

/// Shared counters of one fanout run.
struct Shared {
    subscribers: u32,
    /// Per publisher: deliveries per message, in a ring indexed by sequence.
    rings: Vec<Vec<AtomicU32>>,
    wake: Vec<Notify>,
    delivered: AtomicU64,
    stop: AtomicBool,
}

impl Shared {
    /// Counts one delivery of message `seq` of publisher `p`; wakes the publisher when
    /// every subscriber has it.
    fn delivered(&self, p: usize, seq: u64) {
        let ring = &self.rings[p];
        let slot = &ring[(seq as usize) % ring.len()];
        if slot.fetch_add(1, Ordering::AcqRel) + 1 == self.subscribers {
            self.wake[p].notify_one();
        }
        self.delivered.fetch_add(1, Ordering::Relaxed);
    }
}

/// What one subscriber saw: latency, counts and order per publisher (or channel).
/// What every subscriber saw, added up.
struct Totals {
    hist: Histogram<u64>,
    received: u64,
    out_of_order: u64,
    gaps: u64,
}

/// Lets in-flight messages arrive (up to 5 s, until `delivered` reaches `expected`),
/// then stops the subscribers and adds up what they saw.
async fn drain_and_collect(
    delivered: &AtomicU64,
    expected: u64,
    stop_tx: &watch::Sender<bool>,
    sub_tasks: Vec<tokio::task::JoinHandle<SubResult>>,
) -> anyhow::Result<Totals> {
    let drain_until = Instant::now() + Duration::from_secs(5);
    while delivered.load(Ordering::Relaxed) < expected && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_tx.send(true);
    let mut t = Totals {
        hist: report::histogram(),
        received: 0,
        out_of_order: 0,
        gaps: 0,
    };
    for task in sub_tasks {
        let r = task.await?;
        t.hist.add(&r.hist).ok();
        t.received += r.received;
        t.out_of_order += r.out_of_order;
        t.gaps += r.gaps;
    }
    Ok(t)
}

struct SubResult {
    hist: Histogram<u64>,
    received: u64,
    out_of_order: u64,
    gaps: u64,
    next: Vec<u64>,
}

impl SubResult {
    fn new(sources: usize) -> SubResult {
        SubResult {
            hist: report::histogram(),
            received: 0,
            out_of_order: 0,
            gaps: 0,
            next: vec![0; sources],
        }
    }

    /// Records message `seq` of `source`, sent at `sent` (µs on [`report::clock_us`]).
    fn observe(&mut self, source: usize, seq: u64, sent: u64) {
        let now = report::clock_us();
        let _ = self.hist.record(now.saturating_sub(sent).max(1));
        self.received += 1;
        if seq < self.next[source] {
            self.out_of_order += 1;
        } else {
            self.next[source] = seq + 1;
        }
    }
}

fn encode_payload(size: usize, publisher: u32, seq: u64, micros: u64) -> Vec<u8> {
    let mut p = vec![0u8; size.max(20)];
    p[0..4].copy_from_slice(&publisher.to_le_bytes());
    p[4..12].copy_from_slice(&seq.to_le_bytes());
    p[12..20].copy_from_slice(&micros.to_le_bytes());
    p
}

/// (publisher, seq, send time µs) of a bench payload.
fn decode_payload(b: &[u8]) -> Option<(u32, u64, u64)> {
    if b.len() < 20 {
        return None;
    }
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let u64_at = |i: usize| u64::from(u32_at(i)) | (u64::from(u32_at(i + 4)) << 32);
    Some((u32_at(0), u64_at(4), u64_at(12)))
}

fn decode_event(m: &MessageEvent) -> Option<(u32, u64, u64)> {
    match &m.message {
        Payload::Binary(b) => decode_payload(b),
        Payload::Text(_) => None,
    }
}

/// A logged-in, subscribed subscriber whose loop has not started yet.
enum Subscriber {
    Raw(Box<raw::RawClient>),
    Sdk(Client, EventStream<MessageEvent>),
}

/// Logs in and subscribes `count` subscribers; `who(i)` = (user id, channel).
async fn subscribe_all(
    url: &str,
    app: &str,
    cert: Option<&str>,
    raw: bool,
    count: u32,
    who: impl Fn(u32) -> (String, String),
) -> anyhow::Result<Vec<Subscriber>> {
    login_all(count, 64, |i| {
        let (user, channel) = who(i);
        async move {
            anyhow::Ok(if raw {
                let mut c = raw::RawClient::login(url, app, cert, &user).await?;
                c.subscribe(&channel).await?;
                Subscriber::Raw(Box::new(c))
            } else {
                let c = login(url, app, cert, &user).await?;
                let mut s = c.subscribe(&channel, SubscribeOptions::default()).await?;
                let m = s.messages();
                Subscriber::Sdk(c, m)
            })
        }
    })
    .await
}

impl Subscriber {
    /// Runs the subscriber until `stop` flips (or its connection ends), handing each
    /// bench payload (publisher, seq, send time) to `on_message`; logs out at the end.
    /// A `Lagged` item, a `Closing`, an error push or an undecodable frame counts in
    /// `gaps`.
    fn spawn(
        self,
        r: SubResult,
        stop: watch::Receiver<bool>,
        on_message: impl FnMut(&mut SubResult, u32, u64, u64) + Send + 'static,
    ) -> tokio::task::JoinHandle<SubResult> {
        match self {
            Subscriber::Raw(c) => tokio::spawn(raw_subscriber(*c, r, stop, on_message)),
            Subscriber::Sdk(c, m) => tokio::spawn(sdk_subscriber(c, m, r, stop, on_message)),
        }
    }
}

async fn raw_subscriber(
    mut c: raw::RawClient,
    mut r: SubResult,
    mut stop: watch::Receiver<bool>,
    mut on_message: impl FnMut(&mut SubResult, u32, u64, u64),
) -> SubResult {
    let hb = raw::heartbeat();
    let mut tick = tokio::time::interval(raw::HEARTBEAT_EVERY);
    loop {
        tokio::select! {
            m = c.ws.next() => match m {
                Some(Ok(Message::Binary(b))) => {
                    for m in raw::decode(b) {
                        let Ok(m) = m else {
                            r.gaps += 1;
                            break;
                        };
                        if let Some(push) = m.message {
                            if let Some((p, seq, sent)) = decode_payload(&push.payload) {
                                on_message(&mut r, p, seq, sent);
                            }
                        } else if m.closing.is_some() || m.error.is_some() {
                            r.gaps += 1;
                        }
                    }
                }
                Some(Ok(_)) => {}
                _ => return r,
            },
            _ = tick.tick() => {
                if c.ws.send(hb.clone()).await.is_err() {
                    return r;
                }
            }
            _ = stop.changed() => break,
        }
    }
    c.logout().await;
    r
}

async fn sdk_subscriber(
    client: Client,
    mut messages: EventStream<MessageEvent>,
    mut r: SubResult,
    mut stop: watch::Receiver<bool>,
    mut on_message: impl FnMut(&mut SubResult, u32, u64, u64),
) -> SubResult {
    loop {
        tokio::select! {
            item = messages.next() => match item {
                Some(Ok(m)) => {
                    if let Some((p, seq, sent)) = decode_event(&m) {
                        on_message(&mut r, p, seq, sent);
                    }
                }
                Some(Err(_)) => r.gaps += 1,
                None => return r,
            },
            _ = stop.changed() => break,
        }
    }
    let _ = client.logout().await;
    r
}

async fn fanout(a: FanoutArgs) -> anyhow::Result<()> {
    if a.window.is_none() && a.rate.is_none() {
        bail!("give --window K (closed loop) or --rate R (open loop)");
    }
    let (url, app, cert) = target(&a.target).await?;
    let ring_len = (a.window.unwrap_or(0) as usize * 4).max(1024);
    let shared = Arc::new(Shared {
        subscribers: a.subscribers,
        rings: (0..a.publishers)
            .map(|_| (0..ring_len).map(|_| AtomicU32::new(0)).collect())
            .collect(),
        wake: (0..a.publishers).map(|_| Notify::new()).collect(),
        delivered: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    eprintln!(
        "connecting {} {} subscribers and {} publishers to {url}",
        a.subscribers,
        if a.raw { "raw" } else { "SDK" },
        a.publishers
    );
    let meter = a.target.cpu_meter();
    let publishers = a.publishers as usize;
    let (stop_tx, stop_rx) = watch::channel(false);
    let subs = subscribe_all(&url, &app, cert.as_deref(), a.raw, a.subscribers, |i| {
        (format!("bench-sub-{i}"), a.channel.clone())
    })
    .await?;
    let sub_tasks: Vec<_> = subs
        .into_iter()
        .map(|s| {
            let shared = shared.clone();
            s.spawn(
                SubResult::new(publishers),
                stop_rx.clone(),
                move |r, p, seq, sent| {
                    let p = p as usize;
                    if p < publishers {
                        r.observe(p, seq, sent);
                        shared.delivered(p, seq);
                    }
                },
            )
        })
        .collect();
    let mut pub_tasks = Vec::new();
    for p in 0..a.publishers {
        let user = format!("bench-pub-{p}");
        let shared = shared.clone();
        let (channel, size, window, rate) = (a.channel.clone(), a.size, a.window, a.rate);
        let pace = Pace {
            shared,
            p,
            window,
            tick: rate
                .map(|r| tokio::time::interval(Duration::from_secs_f64(1.0 / r.max(1) as f64))),
        };
        if a.raw {
            let client = raw::RawClient::login(&url, &app, cert.as_deref(), &user).await?;
            pub_tasks.push(tokio::spawn(raw_publisher(client, pace, channel, size)));
            continue;
        }
        let client = login(&url, &app, cert.as_deref(), &user).await?;
        pub_tasks.push(tokio::spawn(async move {
            let mut pace = pace;
            let mut seq = 0u64;
            while pace.ready(seq).await {
                let micros = report::clock_us();
                let payload = encode_payload(size, p, seq, micros);
                client
                    .publish(&channel, payload, PublishOptions::default())
                    .await
                    .map_err(|e| anyhow::anyhow!("publish: {e}"))?;
                seq += 1;
            }
            let _ = client.logout().await;
            anyhow::Ok(seq)
        }));
    }
    let elapsed = report::progress(a.duration, "deliveries", || {
        shared.delivered.load(Ordering::Relaxed)
    })
    .await;
    shared.stop.store(true, Ordering::Relaxed);
    let mut published = 0u64;
    for t in pub_tasks {
        published += t.await??;
    }
    let expected = published * u64::from(a.subscribers);
    let Totals {
        hist,
        received,
        out_of_order,
        gaps: lagged,
    } = drain_and_collect(&shared.delivered, expected, &stop_tx, sub_tasks).await?;
    let missing = expected.saturating_sub(received);
    let rate = received as f64 / elapsed.as_secs_f64();
    let mode = match (a.window, a.rate) {
        (Some(k), _) => format!("window {k}"),
        (_, Some(r)) => format!("rate {r}/s"),
        _ => String::new(),
    };
    println!(
        "fanout: {} publisher(s), {} {} subscribers, {} B, {mode}, {} s",
        a.publishers,
        a.subscribers,
        if a.raw { "raw" } else { "SDK" },
        a.size,
        a.duration
    );
    println!("  published        {published}");
    println!("  deliveries       {received}");
    println!("  deliveries/s     {rate:.0}");
    report::print_latency("latency", &hist);
    println!("  out of order     {out_of_order}");
    println!("  missing          {missing}");
    let cpu = meter.finish(received);
    println!(
        "{}",
        json!({
            "scenario": "fanout",
            "raw": a.raw,
            "publishers": a.publishers,
            "subscribers": a.subscribers,
            "size": a.size,
            "window": a.window,
            "rate": a.rate,
            "duration_s": a.duration,
            "published": published,
            "deliveries": received,
            "deliveries_per_s": rate.round(),
            "latency_ms": report::latency_json(&hist),
            "out_of_order": out_of_order,
            "missing": missing,
            "lagged_events": lagged,
            "cpu": cpu,
        })
    );
    if out_of_order > 0 || missing > 0 {
        bail!("{out_of_order} out of order and {missing} missing: both must be 0");
    }
    Ok(())
}
