//! `bench fanout`: P publishers and S subscribers on one channel, closed loop with a
//! window K (message n is published once message n−K reached every subscriber) or open
//! loop at a fixed rate; reports deliveries/s, publish→delivery latency percentiles,
//! and out-of-order and missing counts (both must be 0).

use anyhow::{Context, bail};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;
use switchboard_client::PublishOptions;
use tokio::sync::{Notify, watch};
use tokio_tungstenite::tungstenite::Message;

use super::setup::{Target, login, target};
use super::subscriber::{SubResult, Totals, drain_and_collect, encode_payload, subscribe_all};
use super::{raw, report};

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
    /// Closed loop: messages in flight per publisher [default: 32 when --rate is not
    /// given].
    #[arg(long, conflicts_with = "rate")]
    window: Option<u64>,
    /// Open loop: messages per second per publisher (instead of the window).
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
    /// The publishers connect here instead of --url (e.g. another node on the same
    /// Redis, for cross-node latency); the subscribers stay on --url.
    #[arg(long)]
    publish_url: Option<String>,
}

/// The closed loop's window when neither --window nor --rate is given.
const DEFAULT_WINDOW: u64 = 32;

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

/// Runs `bench fanout`.
pub(super) async fn run(a: FanoutArgs) -> anyhow::Result<()> {
    let mut a = a;
    if a.window.is_none() && a.rate.is_none() {
        a.window = Some(DEFAULT_WINDOW);
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
    let pub_url = a.publish_url.clone().unwrap_or_else(|| url.clone());
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
            let client = raw::RawClient::login(&pub_url, &app, cert.as_deref(), &user).await?;
            pub_tasks.push(tokio::spawn(raw_publisher(client, pace, channel, size)));
            continue;
        }
        let client = login(&pub_url, &app, cert.as_deref(), &user).await?;
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
