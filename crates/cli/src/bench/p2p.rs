//! `bench p2p`: N pairs of users. Each side sends USER messages ("origins") to its
//! peer, at most `--window` in flight, and echoes every origin it receives back to the
//! sender; an origin's round trip ends when its echo returns, which lets the next one
//! go. Reports USER messages delivered per second (origins + echoes), round trips per
//! second and round-trip latency; errors, missing echoes and out-of-order echoes must
//! all be 0.

use super::setup::{Target, login, login_all};
use super::subscriber::{SubResult, decode_payload, encode_payload};
use super::{raw, report};
use anyhow::bail;
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use switchboard_client::{ChannelType, Client, EventStream, MessageEvent, Payload, PublishOptions};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

/// Set in the publisher field of an echoed payload.
const ECHO: u32 = 1 << 31;

/// Phases of a run, sent to every side.
const RUNNING: u8 = 0;
const DRAINING: u8 = 1;
const QUIT: u8 = 2;

/// `bench p2p` flags.
#[derive(Args)]
pub struct P2pArgs {
    #[command(flatten)]
    target: Target,
    /// Pairs of users.
    #[arg(long, default_value_t = 100)]
    pairs: u32,
    /// Payload bytes (at least 20).
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Origins in flight per side.
    #[arg(long, default_value_t = 1)]
    window: u32,
    /// Seconds of messaging.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Bare WebSocket connections instead of SDK clients.
    #[arg(long)]
    raw: bool,
}

#[derive(Default)]
struct Counters {
    delivered: AtomicU64,
    round_trips: AtomicU64,
    /// Origins sent whose echo has not come back yet.
    outstanding: AtomicI64,
    errors: AtomicU64,
}

/// One side's protocol state, shared by the raw and SDK transports.
struct Side {
    me: u32,
    size: usize,
    seq: u64,
    draining: bool,
    seen: SubResult,
    counters: Arc<Counters>,
}

impl Side {
    fn next_origin(&mut self) -> Vec<u8> {
        let p = encode_payload(self.size, self.me, self.seq, report::clock_us());
        self.seq += 1;
        self.counters.outstanding.fetch_add(1, Ordering::Relaxed);
        p
    }

    /// Handles one received payload; returns what to send back to the peer, if anything.
    fn on_push(&mut self, payload: &[u8]) -> Option<Vec<u8>> {
        let (p, seq, sent) = decode_payload(payload)?;
        self.counters.delivered.fetch_add(1, Ordering::Relaxed);
        if p & ECHO == 0 {
            let mut echo = payload.to_vec();
            echo[0..4].copy_from_slice(&(p | ECHO).to_le_bytes());
            return Some(echo);
        }
        if p & !ECHO != self.me {
            self.error();
            return None;
        }
        self.seen.observe(0, seq, sent);
        self.counters.outstanding.fetch_sub(1, Ordering::Relaxed);
        self.counters.round_trips.fetch_add(1, Ordering::Relaxed);
        (!self.draining).then(|| self.next_origin())
    }

    fn error(&self) {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Applies a phase change; true when the side should quit.
    fn phase(&mut self, changed: Result<(), watch::error::RecvError>, phase: u8) -> bool {
        self.draining = phase >= DRAINING;
        changed.is_err() || phase >= QUIT
    }
}

/// A logged-in side, before its loop starts.
enum Conn {
    Raw(Box<raw::RawClient>),
    Sdk(Client, EventStream<MessageEvent>),
}

fn user(pair: u32, side: u32) -> String {
    format!("bench-p2p-{pair}-{}", if side == 0 { "a" } else { "b" })
}

pub(super) async fn run(a: P2pArgs) -> anyhow::Result<()> {
    let (url, app, cert) = super::setup::target(&a.target).await?;
    eprintln!(
        "connecting {} {} pairs to {url}",
        a.pairs,
        if a.raw { "raw" } else { "SDK" }
    );
    let meter = a.target.cpu_meter();
    let conns = login_all(a.pairs * 2, 64, |i| {
        let (url, app, cert, raw) = (&url, &app, cert.as_deref(), a.raw);
        async move {
            let u = user(i / 2, i % 2);
            anyhow::Ok(if raw {
                Conn::Raw(Box::new(raw::RawClient::login(url, app, cert, &u).await?))
            } else {
                let c = login(url, app, cert, &u).await?;
                let m = c.user_messages();
                Conn::Sdk(c, m)
            })
        }
    })
    .await?;
    let counters = Arc::new(Counters::default());
    let (phase_tx, phase_rx) = watch::channel(RUNNING);
    let mut tasks = Vec::new();
    for (i, conn) in conns.into_iter().enumerate() {
        let i = i as u32;
        let side = Side {
            me: i,
            size: a.size,
            seq: 0,
            draining: false,
            seen: SubResult::new(1),
            counters: counters.clone(),
        };
        let peer = user(i / 2, 1 - i % 2);
        let phase = phase_rx.clone();
        tasks.push(match conn {
            Conn::Raw(c) => tokio::spawn(raw_side(*c, peer, side, a.window, phase)),
            Conn::Sdk(c, m) => tokio::spawn(sdk_side(c, m, peer, side, a.window, phase)),
        });
    }
    let elapsed = report::progress(a.duration, "messages", || {
        counters.delivered.load(Ordering::Relaxed)
    })
    .await;
    let delivered = counters.delivered.load(Ordering::Relaxed);
    let round_trips = counters.round_trips.load(Ordering::Relaxed);
    let _ = phase_tx.send(DRAINING);
    let drain_until = Instant::now() + Duration::from_secs(5);
    while counters.outstanding.load(Ordering::Relaxed) > 0 && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = phase_tx.send(QUIT);
    let mut hist = report::histogram();
    let (mut out_of_order, mut sent) = (0u64, 0u64);
    let mut side_p99 = Vec::with_capacity(tasks.len());
    for t in tasks {
        let s = t.await?;
        hist.add(&s.seen.hist).ok();
        if !s.seen.hist.is_empty() {
            side_p99.push(s.seen.hist.value_at_quantile(0.99));
        }
        out_of_order += s.seen.out_of_order;
        sent += s.seq;
    }
    let missing = counters.outstanding.load(Ordering::Relaxed).max(0) as u64;
    let errors = counters.errors.load(Ordering::Relaxed);
    let secs = elapsed.as_secs_f64();
    let (msg_rate, rt_rate) = (delivered as f64 / secs, round_trips as f64 / secs);
    println!(
        "p2p: {} {} pairs, {} B, window {}, {} s",
        a.pairs,
        if a.raw { "raw" } else { "SDK" },
        a.size,
        a.window,
        a.duration
    );
    println!("  origins sent     {sent}");
    println!("  messages/s       {msg_rate:.0}");
    println!("  round trips/s    {rt_rate:.0}");
    report::print_latency("rtt", &hist);
    let spread = spread_ms(&mut side_p99);
    println!("  rtt p99 per side {}", spread_line(&spread));
    println!("  out of order     {out_of_order}");
    println!("  missing          {missing}");
    println!("  errors           {errors}");
    let cpu = meter.finish(delivered);
    println!(
        "{}",
        json!({
            "scenario": "p2p",
            "raw": a.raw,
            "pairs": a.pairs,
            "size": a.size,
            "window": a.window,
            "duration_s": a.duration,
            "origins_sent": sent,
            "messages": delivered,
            "messages_per_s": msg_rate.round(),
            "round_trips_per_s": rt_rate.round(),
            "rtt_ms": report::latency_json(&hist),
            "rtt_p99_per_side_ms": spread,
            "out_of_order": out_of_order,
            "missing": missing,
            "errors": errors,
            "cpu": cpu,
        })
    );
    if out_of_order > 0 || missing > 0 || errors > 0 {
        bail!("{out_of_order} out of order, {missing} missing, {errors} errors: all must be 0");
    }
    Ok(())
}

/// min / p10 / median / p90 / max of per-side values (µs), in ms, as JSON: whether every
/// connection sees the same tail or some wait far longer than others.
fn spread_ms(v: &mut [u64]) -> serde_json::Value {
    v.sort_unstable();
    let at = |q: f64| {
        let i = ((v.len().saturating_sub(1)) as f64 * q).round() as usize;
        v.get(i).map_or(0.0, |&x| x as f64 / 1000.0)
    };
    json!({
        "min": at(0.0),
        "p10": at(0.1),
        "median": at(0.5),
        "p90": at(0.9),
        "max": at(1.0),
    })
}

/// The spread as one table line.
fn spread_line(s: &serde_json::Value) -> String {
    ["min", "p10", "median", "p90", "max"]
        .iter()
        .map(|k| format!("{k} {:.1}", s[*k].as_f64().unwrap_or(0.0)))
        .collect::<Vec<_>>()
        .join(" / ")
        + " ms"
}

async fn raw_side(
    mut c: raw::RawClient,
    peer: String,
    mut side: Side,
    window: u32,
    mut phase: watch::Receiver<u8>,
) -> Side {
    for _ in 0..window {
        let msg = c.publish(true, &peer, side.next_origin());
        if c.ws.feed(msg).await.is_err() {
            side.error();
        }
    }
    if c.ws.flush().await.is_err() {
        side.error();
    }
    let hb = raw::heartbeat();
    let mut tick = tokio::time::interval(raw::HEARTBEAT_EVERY);
    let mut out = Vec::new();
    loop {
        tokio::select! {
            m = c.ws.next() => match m {
                Some(Ok(Message::Binary(b))) => {
                    for m in raw::decode(b) {
                        let Ok(m) = m else {
                            side.error();
                            break;
                        };
                        if m.error.is_some() || m.closing.is_some() {
                            side.error();
                        }
                        if let Some(push) = m.message {
                            out.extend(side.on_push(&push.payload));
                        }
                    }
                    for p in out.drain(..) {
                        let msg = c.publish(true, &peer, p);
                        if c.ws.feed(msg).await.is_err() {
                            side.error();
                        }
                    }
                    if c.ws.flush().await.is_err() {
                        side.error();
                        return side;
                    }
                }
                Some(Ok(_)) => {}
                _ => {
                    side.error();
                    return side;
                }
            },
            _ = tick.tick() => {
                if c.ws.send(hb.clone()).await.is_err() {
                    side.error();
                    return side;
                }
            }
            changed = phase.changed() => {
                let p = *phase.borrow_and_update();
                if side.phase(changed, p) {
                    break;
                }
            }
        }
    }
    c.logout().await;
    side
}

async fn sdk_side(
    client: Client,
    mut messages: EventStream<MessageEvent>,
    peer: String,
    mut side: Side,
    window: u32,
    mut phase: watch::Receiver<u8>,
) -> Side {
    let opts = || PublishOptions {
        channel_type: ChannelType::User,
        ..Default::default()
    };
    for _ in 0..window {
        if client
            .publish(&peer, side.next_origin(), opts())
            .await
            .is_err()
        {
            side.error();
        }
    }
    loop {
        tokio::select! {
            item = messages.next() => match item {
                Some(Ok(m)) => {
                    let reply = match &m.message {
                        Payload::Binary(b) => side.on_push(b),
                        Payload::Text(_) => None,
                    };
                    if let Some(p) = reply
                        && client.publish(&peer, p, opts()).await.is_err() {
                            side.error();
                        }
                }
                Some(Err(_)) => side.error(),
                None => {
                    side.error();
                    break;
                }
            },
            changed = phase.changed() => {
                let p = *phase.borrow_and_update();
                if side.phase(changed, p) {
                    break;
                }
            }
        }
    }
    let _ = client.logout().await;
    side
}
