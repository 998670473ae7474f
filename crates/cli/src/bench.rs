//! `switchboard bench`: load scenarios against a server (or one it starts itself).
//! `fanout`: P publishers and S subscribers on one channel, closed loop with a window
//! K (message n is published once message n−K reached every subscriber) or open loop at
//! a fixed rate; reports deliveries/s, publish→delivery latency percentiles, and
//! out-of-order and missing counts (both must be 0).

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use switchboard_client::{
    Client, ClientConfig, MessageEvent, Payload, PublishOptions, SubscribeOptions,
};
use switchboard_engine_memory::{MemoryBroker, MemoryConfig};
use switchboard_server::{AppConfig, AppLimits, Server, ServerConfig};
use tokio::sync::Notify;

/// Bench scenarios.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// Many subscribers on one channel.
    Fanout(FanoutArgs),
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
}

/// Runs a bench scenario.
pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Fanout(a) => fanout(a).await,
    }
}

const IN_PROCESS_APP: &str = "0123456789abcdef0123456789abcdef";

/// Resolves the target: (url, app id, certificate); starts a server when needed.
async fn target(t: &Target) -> anyhow::Result<(String, String, Option<String>)> {
    if let Some(url) = &t.url {
        let app = t.app_id.clone().context("--app-id is needed with --url")?;
        return Ok((url.clone(), app, t.app_cert.clone()));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut app = AppConfig::new(IN_PROCESS_APP, None);
    app.limits = AppLimits {
        publish_rate_per_channel: 0,
        ..Default::default()
    };
    let config = ServerConfig {
        apps: vec![app],
        ..Default::default()
    };
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
                    .run(listener, std::future::pending())
                    .await
            })
            .ok();
        }
    });
    Ok((format!("ws://{addr}"), IN_PROCESS_APP.to_string(), None))
}

async fn login(url: &str, app: &str, cert: Option<&str>, user: &str) -> anyhow::Result<Client> {
    let client =
        Client::new(app, user, ClientConfig::new(url)).map_err(|e| anyhow::anyhow!("{e}"))?;
    let token = match cert {
        Some(c) => switchboard_token::build_rtm_token(
            app,
            c,
            user,
            86_400,
            (switchboard_protocol::now_ms() / 1000) as u32,
        )
        .map_err(|e| anyhow::anyhow!("token: {e}"))?,
        None => String::new(),
    };
    client
        .login(&token)
        .await
        .map_err(|e| anyhow::anyhow!("{user}: {e}"))?;
    Ok(client)
}

/// Shared counters of one fanout run.
struct Shared {
    start: Instant,
    subscribers: u32,
    /// Per publisher: deliveries per message, in a ring indexed by sequence.
    rings: Vec<Vec<AtomicU32>>,
    wake: Vec<Notify>,
    delivered: AtomicU64,
    stop: AtomicBool,
}

/// What one subscriber saw.
struct SubResult {
    hist: Histogram<u64>,
    received: u64,
    out_of_order: u64,
    gaps: u64,
}

fn encode_payload(size: usize, publisher: u32, seq: u64, micros: u64) -> Vec<u8> {
    let mut p = vec![0u8; size.max(20)];
    p[0..4].copy_from_slice(&publisher.to_le_bytes());
    p[4..12].copy_from_slice(&seq.to_le_bytes());
    p[12..20].copy_from_slice(&micros.to_le_bytes());
    p
}

fn decode_payload(m: &MessageEvent) -> Option<(u32, u64, u64)> {
    let Payload::Binary(b) = &m.message else {
        return None;
    };
    if b.len() < 20 {
        return None;
    }
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let u64_at = |i: usize| u64::from(u32_at(i)) | (u64::from(u32_at(i + 4)) << 32);
    Some((u32_at(0), u64_at(4), u64_at(12)))
}

async fn fanout(a: FanoutArgs) -> anyhow::Result<()> {
    if a.window.is_none() && a.rate.is_none() {
        bail!("give --window K (closed loop) or --rate R (open loop)");
    }
    let (url, app, cert) = target(&a.target).await?;
    let ring_len = (a.window.unwrap_or(0) as usize * 4).max(1024);
    let shared = Arc::new(Shared {
        start: Instant::now(),
        subscribers: a.subscribers,
        rings: (0..a.publishers)
            .map(|_| (0..ring_len).map(|_| AtomicU32::new(0)).collect())
            .collect(),
        wake: (0..a.publishers).map(|_| Notify::new()).collect(),
        delivered: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    eprintln!(
        "connecting {} subscribers and {} publishers to {url}",
        a.subscribers, a.publishers
    );
    let subs = futures_util::stream::iter(0..a.subscribers)
        .map(|i| {
            let (url, app, cert, channel) =
                (url.clone(), app.clone(), cert.clone(), a.channel.clone());
            async move {
                let c = login(&url, &app, cert.as_deref(), &format!("bench-sub-{i}")).await?;
                let s = c.subscribe(&channel, SubscribeOptions::default()).await?;
                anyhow::Ok((c, s))
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let mut sub_tasks = Vec::new();
    let mut clients = Vec::new();
    for (client, mut sub) in subs {
        let shared = shared.clone();
        let mut messages = sub.messages();
        let publishers = a.publishers as usize;
        sub_tasks.push(tokio::spawn(async move {
            let mut r = SubResult {
                hist: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
                received: 0,
                out_of_order: 0,
                gaps: 0,
            };
            let mut next = vec![0u64; publishers];
            while let Some(item) = messages.next().await {
                let Ok(m) = item else {
                    r.gaps += 1;
                    continue;
                };
                let Some((p, seq, sent)) = decode_payload(&m) else {
                    continue;
                };
                let p = p as usize;
                let now = shared.start.elapsed().as_micros() as u64;
                let _ = r.hist.record(now.saturating_sub(sent).max(1));
                r.received += 1;
                if seq < next[p] {
                    r.out_of_order += 1;
                } else {
                    next[p] = seq + 1;
                }
                let ring = &shared.rings[p];
                let slot = &ring[(seq as usize) % ring.len()];
                if slot.fetch_add(1, Ordering::AcqRel) + 1 == shared.subscribers {
                    shared.wake[p].notify_one();
                }
                shared.delivered.fetch_add(1, Ordering::Relaxed);
            }
            r
        }));
        clients.push(client);
    }
    let mut pub_tasks = Vec::new();
    for p in 0..a.publishers {
        let client = login(&url, &app, cert.as_deref(), &format!("bench-pub-{p}")).await?;
        let shared = shared.clone();
        let (channel, size, window, rate) = (a.channel.clone(), a.size, a.window, a.rate);
        pub_tasks.push(tokio::spawn(async move {
            let mut seq = 0u64;
            let mut tick =
                rate.map(|r| tokio::time::interval(Duration::from_secs_f64(1.0 / r.max(1) as f64)));
            let ring = &shared.rings[p as usize];
            while !shared.stop.load(Ordering::Relaxed) {
                if let Some(k) = window {
                    if seq >= k {
                        let slot = &ring[((seq - k) as usize) % ring.len()];
                        while slot.load(Ordering::Acquire) < shared.subscribers {
                            if shared.stop.load(Ordering::Relaxed) {
                                return anyhow::Ok(seq);
                            }
                            let _ = tokio::time::timeout(
                                Duration::from_millis(100),
                                shared.wake[p as usize].notified(),
                            )
                            .await;
                        }
                        slot.store(0, Ordering::Release);
                    }
                } else if let Some(t) = tick.as_mut() {
                    t.tick().await;
                }
                let micros = shared.start.elapsed().as_micros() as u64;
                let payload = encode_payload(size, p, seq, micros);
                client
                    .publish(&channel, payload, PublishOptions::default())
                    .await
                    .map_err(|e| anyhow::anyhow!("publish: {e}"))?;
                seq += 1;
            }
            anyhow::Ok(seq)
        }));
    }
    let bar = ProgressBar::new(a.duration);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len}s {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let begin = Instant::now();
    let mut last = 0;
    for _ in 0..a.duration {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let d = shared.delivered.load(Ordering::Relaxed);
        bar.set_message(format!("{} deliveries/s", d - last));
        last = d;
        bar.inc(1);
    }
    shared.stop.store(true, Ordering::Relaxed);
    let elapsed = begin.elapsed();
    bar.finish_and_clear();
    let mut published = 0u64;
    for t in pub_tasks {
        published += t.await??;
    }
    // Let in-flight messages arrive, then end the subscriber streams.
    let expected = published * u64::from(a.subscribers);
    let drain_until = Instant::now() + Duration::from_secs(5);
    while shared.delivered.load(Ordering::Relaxed) < expected && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for c in &clients {
        let _ = c.logout().await;
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    let (mut received, mut out_of_order, mut lagged) = (0u64, 0u64, 0u64);
    for t in sub_tasks {
        let r = t.await?;
        hist.add(&r.hist).ok();
        received += r.received;
        out_of_order += r.out_of_order;
        lagged += r.gaps;
    }
    let missing = expected.saturating_sub(received);
    let rate = received as f64 / elapsed.as_secs_f64();
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let mode = match (a.window, a.rate) {
        (Some(k), _) => format!("window {k}"),
        (_, Some(r)) => format!("rate {r}/s"),
        _ => String::new(),
    };
    println!(
        "fanout: {} publisher(s), {} subscribers, {} B, {mode}, {} s",
        a.publishers, a.subscribers, a.size, a.duration
    );
    println!("  published        {published}");
    println!("  deliveries       {received}");
    println!("  deliveries/s     {rate:.0}");
    println!("  latency p50      {:.3} ms", ms(0.5));
    println!("  latency p99      {:.3} ms", ms(0.99));
    println!("  latency p999     {:.3} ms", ms(0.999));
    println!("  latency max      {:.3} ms", hist.max() as f64 / 1000.0);
    println!("  out of order     {out_of_order}");
    println!("  missing          {missing}");
    println!(
        "{}",
        json!({
            "scenario": "fanout",
            "publishers": a.publishers,
            "subscribers": a.subscribers,
            "size": a.size,
            "window": a.window,
            "rate": a.rate,
            "duration_s": a.duration,
            "published": published,
            "deliveries": received,
            "deliveries_per_s": rate.round(),
            "latency_ms": {"p50": ms(0.5), "p99": ms(0.99), "p999": ms(0.999), "max": hist.max() as f64 / 1000.0},
            "out_of_order": out_of_order,
            "missing": missing,
            "lagged_events": lagged,
        })
    );
    if out_of_order > 0 || missing > 0 {
        bail!("{out_of_order} out of order and {missing} missing: both must be 0");
    }
    Ok(())
}
