//! `compare-load`: the fanout shape of `switchboard bench fanout` against Redis pub/sub,
//! NATS and MQTT (Mosquitto), so the figures can be set side by side.
//!
//! One publisher, S subscribers (each its own connection) on one channel / subject /
//! topic, payloads of `--size` bytes carrying (publisher, sequence, send time µs on
//! this process's monotonic clock). Closed loop `--window K` (message p is published
//! once message p−K reached every subscriber) or open loop `--rate R`. The last stdout
//! line is one JSON object with the same keys as the switchboard bench, plus "peer".

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::{Args, Parser, Subcommand};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify, Semaphore};

#[derive(Parser)]
#[command(
    name = "compare-load",
    about = "fanout load against Redis, NATS and MQTT"
)]
struct Cli {
    #[command(subcommand)]
    peer: Peer,
}

#[derive(Subcommand)]
enum Peer {
    /// Redis pub/sub (URL like redis://127.0.0.1:6399/).
    Redis(Common),
    /// NATS core subjects (URL like nats://127.0.0.1:4222).
    Nats(Common),
    /// MQTT 3.1.1, QoS 0 (URL like mqtt://127.0.0.1:1884).
    Mqtt(Common),
}

#[derive(Args, Clone)]
struct Common {
    /// Server address.
    #[arg(long)]
    url: String,
    /// Subscribers (one connection each).
    #[arg(long, default_value_t = 1000)]
    subscribers: u32,
    /// Payload bytes (at least 20).
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Closed loop: messages in flight.
    #[arg(long, conflicts_with = "rate")]
    window: Option<u64>,
    /// Open loop: messages per second.
    #[arg(long)]
    rate: Option<u64>,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Channel / subject / topic.
    #[arg(long, default_value = "bench")]
    channel: String,
    /// Connections opened at once while connecting the subscribers.
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
    /// Pid of the server process, to report its CPU from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
}

static START: LazyLock<Instant> = LazyLock::new(Instant::now);

fn clock_us() -> u64 {
    START.elapsed().as_micros() as u64
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

fn encode_payload(size: usize, publisher: u32, seq: u64, micros: u64) -> Vec<u8> {
    let mut p = vec![0u8; size.max(20)];
    p[0..4].copy_from_slice(&publisher.to_le_bytes());
    p[4..12].copy_from_slice(&seq.to_le_bytes());
    p[12..20].copy_from_slice(&micros.to_le_bytes());
    p
}

fn decode_payload(b: &[u8]) -> Option<(u32, u64, u64)> {
    if b.len() < 20 {
        return None;
    }
    let p = u32::from_le_bytes(b[0..4].try_into().ok()?);
    let seq = u64::from_le_bytes(b[4..12].try_into().ok()?);
    let t = u64::from_le_bytes(b[12..20].try_into().ok()?);
    Some((p, seq, t))
}

/// User + system CPU seconds of a process (`/proc/PID/stat`), `None` = this process.
fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    // CLK_TCK is 100 on Linux.
    Some((utime + stime) / 100.0)
}

/// Counts deliveries per message in a ring; wakes the publisher when all have it.
struct Shared {
    subscribers: u32,
    ring: Vec<AtomicU32>,
    wake: Notify,
    delivered: AtomicU64,
    stop: AtomicBool,
}

impl Shared {
    fn delivered(&self, seq: u64) {
        let slot = &self.ring[(seq as usize) % self.ring.len()];
        if slot.fetch_add(1, Ordering::AcqRel) + 1 == self.subscribers {
            self.wake.notify_one();
        }
        self.delivered.fetch_add(1, Ordering::Relaxed);
    }
}

/// What one subscriber saw.
struct SubResult {
    hist: Histogram<u64>,
    received: u64,
    out_of_order: u64,
    next: u64,
}

impl SubResult {
    fn new() -> SubResult {
        SubResult {
            hist: histogram(),
            received: 0,
            out_of_order: 0,
            next: 0,
        }
    }

    fn observe(&mut self, shared: &Shared, payload: &[u8]) {
        let Some((0, seq, sent)) = decode_payload(payload) else {
            return;
        };
        let now = clock_us();
        let _ = self.hist.record(now.saturating_sub(sent).max(1));
        self.received += 1;
        if seq < self.next {
            self.out_of_order += 1;
        } else {
            self.next = seq + 1;
        }
        shared.delivered(seq);
    }
}

/// The publishing side of a peer.
enum Publisher {
    Redis(redis::aio::MultiplexedConnection),
    Nats(async_nats::Client),
    Mqtt(rumqttc::AsyncClient),
}

impl Publisher {
    async fn publish(&mut self, channel: &str, payload: Vec<u8>) -> anyhow::Result<()> {
        match self {
            Publisher::Redis(c) => {
                let _: i64 = redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(payload)
                    .query_async(c)
                    .await?;
            }
            Publisher::Nats(c) => c.publish(channel.to_string(), Bytes::from(payload)).await?,
            Publisher::Mqtt(c) => {
                c.publish(channel, rumqttc::QoS::AtMostOnce, false, payload)
                    .await?
            }
        }
        Ok(())
    }

    async fn flush(&mut self) {
        if let Publisher::Nats(c) = self {
            let _ = c.flush().await;
        }
    }
}

fn host_port(url: &str, default_port: u16) -> anyhow::Result<(String, u16)> {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let rest = rest.trim_end_matches('/');
    match rest.rsplit_once(':') {
        Some((h, p)) => Ok((h.to_string(), p.parse().context("port")?)),
        None => Ok((rest.to_string(), default_port)),
    }
}

type SubTask = tokio::task::JoinHandle<SubResult>;

/// Connects and subscribes one subscriber; returns its reading task once the
/// subscription is in place.
async fn subscriber(
    peer: &str,
    a: &Common,
    i: u32,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<SubTask> {
    let channel = a.channel.clone();
    match peer {
        "redis" => {
            let client = redis::Client::open(a.url.as_str())?;
            let mut ps = client.get_async_pubsub().await?;
            ps.subscribe(&channel).await?;
            Ok(tokio::spawn(async move {
                let mut r = SubResult::new();
                let mut msgs = ps.into_on_message();
                loop {
                    tokio::select! {
                        m = msgs.next() => match m {
                            Some(m) => r.observe(&shared, m.get_payload_bytes()),
                            None => break,
                        },
                        _ = stop.changed() => break,
                    }
                }
                r
            }))
        }
        "nats" => {
            let client = async_nats::ConnectOptions::new()
                .subscription_capacity(1 << 16)
                .connect(a.url.as_str())
                .await?;
            let mut sub = client.subscribe(channel).await?;
            client.flush().await?;
            Ok(tokio::spawn(async move {
                let _keep = client;
                let mut r = SubResult::new();
                loop {
                    tokio::select! {
                        m = sub.next() => match m {
                            Some(m) => r.observe(&shared, &m.payload),
                            None => break,
                        },
                        _ = stop.changed() => break,
                    }
                }
                r
            }))
        }
        "mqtt" => {
            let (host, port) = host_port(&a.url, 1883)?;
            let mut opts = rumqttc::MqttOptions::new(format!("bench-sub-{i}"), host, port);
            opts.set_keep_alive(Duration::from_secs(60));
            opts.set_max_packet_size(1 << 20, 1 << 20);
            let (client, mut ev) = rumqttc::AsyncClient::new(opts, 16);
            client.subscribe(channel, rumqttc::QoS::AtMostOnce).await?;
            // Drive the event loop until the broker acknowledged the subscription.
            loop {
                match tokio::time::timeout(Duration::from_secs(10), ev.poll()).await {
                    Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)))) => break,
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => bail!("mqtt subscriber {i}: {e}"),
                    Err(_) => bail!("mqtt subscriber {i}: no SUBACK in 10 s"),
                }
            }
            Ok(tokio::spawn(async move {
                let _keep = client;
                let mut r = SubResult::new();
                loop {
                    tokio::select! {
                        e = ev.poll() => match e {
                            Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                                r.observe(&shared, &p.payload)
                            }
                            Ok(_) => {}
                            Err(e) => {
                                eprintln!("mqtt subscriber {i}: {e}");
                                break;
                            }
                        },
                        _ = stop.changed() => break,
                    }
                }
                r
            }))
        }
        _ => unreachable!(),
    }
}

async fn publisher(peer: &str, a: &Common) -> anyhow::Result<Publisher> {
    Ok(match peer {
        "redis" => {
            let client = redis::Client::open(a.url.as_str())?;
            Publisher::Redis(client.get_multiplexed_async_connection().await?)
        }
        "nats" => Publisher::Nats(async_nats::connect(a.url.as_str()).await?),
        "mqtt" => {
            let (host, port) = host_port(&a.url, 1883)?;
            let mut opts = rumqttc::MqttOptions::new("bench-pub-0", host, port);
            opts.set_keep_alive(Duration::from_secs(60));
            opts.set_max_packet_size(1 << 20, 1 << 20);
            let (client, mut ev) = rumqttc::AsyncClient::new(opts, 1024);
            tokio::spawn(async move {
                loop {
                    if let Err(e) = ev.poll().await {
                        eprintln!("mqtt publisher: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            });
            Publisher::Mqtt(client)
        }
        _ => unreachable!(),
    })
}

async fn fanout(peer: &'static str, a: Common) -> anyhow::Result<()> {
    if a.window.is_none() && a.rate.is_none() {
        bail!("give --window K (closed loop) or --rate R (open loop)");
    }
    let _ = clock_us();
    let ring_len = (a.window.unwrap_or(0) as usize * 4).max(1024);
    let shared = Arc::new(Shared {
        subscribers: a.subscribers,
        ring: (0..ring_len).map(|_| AtomicU32::new(0)).collect(),
        wake: Notify::new(),
        delivered: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    eprintln!(
        "connecting {} {peer} subscribers to {} ({} at a time)",
        a.subscribers, a.url, a.connect_concurrency
    );
    let server0 = a.server_pid.and_then(|p| cpu_seconds(Some(p)));
    let self0 = cpu_seconds(None);
    let wall0 = Instant::now();
    let (stop_tx, stop_rx) = watch::channel(false);
    let sem = Arc::new(Semaphore::new(a.connect_concurrency.max(1)));
    let mut connecting = Vec::new();
    for i in 0..a.subscribers {
        let (a2, shared, stop_rx, sem) = (a.clone(), shared.clone(), stop_rx.clone(), sem.clone());
        connecting.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await?;
            subscriber(peer, &a2, i, shared, stop_rx).await
        }));
    }
    let mut sub_tasks = Vec::new();
    for c in connecting {
        sub_tasks.push(c.await??);
    }
    eprintln!("{} subscribers ready", sub_tasks.len());
    let mut publ = publisher(peer, &a).await?;
    let pub_task = {
        let shared = shared.clone();
        let (channel, size, window, rate) = (a.channel.clone(), a.size, a.window, a.rate);
        tokio::spawn(async move {
            let mut seq = 0u64;
            let mut tick =
                rate.map(|r| tokio::time::interval(Duration::from_secs_f64(1.0 / r.max(1) as f64)));
            let ring = &shared.ring;
            'outer: while !shared.stop.load(Ordering::Relaxed) {
                if let Some(k) = window {
                    if seq >= k {
                        let slot = &ring[((seq - k) as usize) % ring.len()];
                        while slot.load(Ordering::Acquire) < shared.subscribers {
                            if shared.stop.load(Ordering::Relaxed) {
                                break 'outer;
                            }
                            let _ = tokio::time::timeout(
                                Duration::from_millis(100),
                                shared.wake.notified(),
                            )
                            .await;
                        }
                        slot.store(0, Ordering::Release);
                    }
                } else if let Some(t) = tick.as_mut() {
                    t.tick().await;
                }
                let payload = encode_payload(size, 0, seq, clock_us());
                publ.publish(&channel, payload).await?;
                if window.is_some() {
                    // Closed loop: the message must leave now, not sit in a buffer.
                    publ.flush().await;
                }
                seq += 1;
            }
            publ.flush().await;
            anyhow::Ok(seq)
        })
    };
    let begin = Instant::now();
    let mut last = 0;
    for s in 0..a.duration {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = shared.delivered.load(Ordering::Relaxed);
        eprintln!("  {}/{}s {} deliveries/s", s + 1, a.duration, now - last);
        last = now;
    }
    let elapsed = begin.elapsed();
    shared.stop.store(true, Ordering::Relaxed);
    let published = pub_task.await??;
    let expected = published * u64::from(a.subscribers);
    let drain_until = Instant::now() + Duration::from_secs(5);
    while shared.delivered.load(Ordering::Relaxed) < expected && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_tx.send(true);
    let mut hist = histogram();
    let (mut received, mut out_of_order) = (0u64, 0u64);
    for t in sub_tasks {
        let r = t.await?;
        hist.add(&r.hist).ok();
        received += r.received;
        out_of_order += r.out_of_order;
    }
    let missing = expected.saturating_sub(received);
    let rate = received as f64 / elapsed.as_secs_f64();
    let mode = match (a.window, a.rate) {
        (Some(k), _) => format!("window {k}"),
        (_, Some(r)) => format!("rate {r}/s"),
        _ => String::new(),
    };
    let ms = |v: u64| v as f64 / 1000.0;
    println!(
        "fanout ({peer}): 1 publisher, {} subscribers, {} B, {mode}, {} s",
        a.subscribers, a.size, a.duration
    );
    println!("  published        {published}");
    println!("  deliveries       {received}");
    println!("  deliveries/s     {rate:.0}");
    for (q, v) in [
        ("p50", hist.value_at_quantile(0.5)),
        ("p99", hist.value_at_quantile(0.99)),
        ("p999", hist.value_at_quantile(0.999)),
        ("max", hist.max()),
    ] {
        println!("  latency {q:<9}{:.3} ms", ms(v));
    }
    println!("  out of order     {out_of_order}");
    println!("  missing          {missing}");
    let wall = wall0.elapsed().as_secs_f64();
    let server = a
        .server_pid
        .and_then(|p| Some(cpu_seconds(Some(p))? - server0?));
    let this = cpu_seconds(None).and_then(|c| Some(c - self0?));
    if let Some(s) = server {
        println!(
            "  server CPU       {s:.2} s over {wall:.1} s ({:.0} %)",
            s * 100.0 / wall
        );
    }
    if let Some(t) = this {
        println!(
            "  load CPU         {t:.2} s over {wall:.1} s ({:.0} %)",
            t * 100.0 / wall
        );
    }
    let per_us = |cpu: f64| (received > 0).then(|| cpu * 1e6 / received as f64);
    println!(
        "{}",
        json!({
            "scenario": "fanout",
            "peer": peer,
            "publishers": 1,
            "subscribers": a.subscribers,
            "size": a.size,
            "window": a.window,
            "rate": a.rate,
            "duration_s": a.duration,
            "published": published,
            "deliveries": received,
            "deliveries_per_s": rate.round(),
            "latency_ms": {
                "p50": ms(hist.value_at_quantile(0.5)),
                "p99": ms(hist.value_at_quantile(0.99)),
                "p999": ms(hist.value_at_quantile(0.999)),
                "max": ms(hist.max()),
            },
            "out_of_order": out_of_order,
            "missing": missing,
            "cpu": {
                "wall_s": (wall * 100.0).round() / 100.0,
                "server_cpu_s": server,
                "server_us_per_item": server.and_then(per_us),
                "load_cpu_s": this,
                "in_process_server": false,
            },
        })
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (peer, a) = match cli.peer {
        Peer::Redis(a) => ("redis", a),
        Peer::Nats(a) => ("nats", a),
        Peer::Mqtt(a) => ("mqtt", a),
    };
    rt.block_on(fanout(peer, a))
}
