//! The p2p shape of `switchboard bench p2p --raw`: N pairs of users. Each side sends
//! "origins" to its peer, at most `--window` in flight, and echoes every origin it
//! receives back to the sender; an origin's round trip ends when its echo returns,
//! which lets the next one go. Messages/s counts origins and echoes delivered.

use crate::common::{clock_us, histogram, latency_json, print_latency, CpuMeter, Msg, Seen};
use crate::peer::{Conn, Peer};
use anyhow::bail;
use futures_util::StreamExt;
use serde_json::json;
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Set in the publisher field of an echo.
const ECHO: u32 = 1 << 31;

const RUNNING: u8 = 0;
const DRAINING: u8 = 1;
const QUIT: u8 = 2;

#[derive(clap::Args, Clone)]
pub struct P2pArgs {
    #[command(flatten)]
    pub common: crate::CommonArgs,
    /// Pairs of users (two connections each).
    #[arg(long, default_value_t = 1000)]
    pub pairs: u32,
    /// Origins in flight per side.
    #[arg(long, default_value_t = 8)]
    pub window: u32,
}

#[derive(Default)]
struct Counters {
    delivered: Cell<u64>,
    round_trips: Cell<u64>,
    /// Origins sent whose echo has not come back yet.
    outstanding: Cell<i64>,
    errors: Cell<u64>,
}

fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

struct Side {
    me: u32,
    seq: u64,
    draining: bool,
    seen: Seen,
    counters: Rc<Counters>,
}

impl Side {
    fn next_origin(&mut self) -> Msg {
        let m = Msg {
            p: self.me,
            seq: self.seq,
            sent: clock_us(),
        };
        self.seq += 1;
        let o = &self.counters.outstanding;
        o.set(o.get() + 1);
        m
    }

    /// Handles one received message; returns what to send back, if anything.
    fn on_push(&mut self, m: Msg) -> Option<Msg> {
        bump(&self.counters.delivered);
        if m.p & ECHO == 0 {
            return Some(Msg { p: m.p | ECHO, ..m });
        }
        if m.p & !ECHO != self.me {
            bump(&self.counters.errors);
            return None;
        }
        self.seen.observe(m.seq, m.sent);
        let o = &self.counters.outstanding;
        o.set(o.get() - 1);
        bump(&self.counters.round_trips);
        (!self.draining).then(|| self.next_origin())
    }
}

async fn side<C: Conn>(
    mut c: C,
    to: String,
    mut s: Side,
    window: u32,
    mut phase: watch::Receiver<u8>,
) -> (Side, C) {
    let fail = |s: &Side, what: &str, e: anyhow::Error| {
        if s.counters.errors.get() == 0 {
            eprintln!("p2p side {}: {what}: {e:#}", s.me);
        }
        bump(&s.counters.errors);
    };
    for _ in 0..window {
        let m = s.next_origin();
        if let Err(e) = c.send(&to, m).await {
            fail(&s, "send", e);
        }
    }
    if let Err(e) = c.flush().await {
        fail(&s, "flush", e);
    }
    let mut inbox = Vec::new();
    loop {
        tokio::select! {
            r = c.recv(&mut inbox) => {
                if let Err(e) = r {
                    fail(&s, "receive", e);
                    return (s, c);
                }
                if inbox.is_empty() {
                    continue;
                }
                for m in inbox.drain(..) {
                    if let Some(reply) = s.on_push(m) {
                        if let Err(e) = c.send(&to, reply).await {
                            fail(&s, "send", e);
                        }
                    }
                }
                if let Err(e) = c.flush().await {
                    fail(&s, "flush", e);
                    return (s, c);
                }
            }
            changed = phase.changed() => {
                let p = *phase.borrow_and_update();
                s.draining = p >= DRAINING;
                if changed.is_err() || p >= QUIT {
                    break;
                }
            }
        }
    }
    (s, c)
}

/// min / p10 / median / p90 / max of per-side values (µs), in ms, as JSON (the keys of
/// the switchboard bench's `rtt_p99_per_side_ms`).
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

pub async fn run<P: Peer>(peer: P, name: &str, a: P2pArgs) -> anyhow::Result<()> {
    let _ = clock_us();
    let c = &a.common;
    eprintln!("connecting {} {name} pairs to {}", a.pairs, c.url);
    let meter = CpuMeter::start(c.server_pid);
    let conns: Vec<(P::C, String)> = futures_util::stream::iter(0..a.pairs * 2)
        .map(|i| peer.p2p_side(i))
        .buffered(c.connect_concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let counters = Rc::new(Counters::default());
    let (phase_tx, phase_rx) = watch::channel(RUNNING);
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, (conn, to))| {
            let s = Side {
                me: i as u32,
                seq: 0,
                draining: false,
                seen: Seen::new(),
                counters: counters.clone(),
            };
            tokio::task::spawn_local(side(conn, to, s, a.window, phase_rx.clone()))
        })
        .collect();
    let begin = Instant::now();
    let mut last = 0;
    for sec in 0..c.duration {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = counters.delivered.get();
        eprintln!("  {}/{}s {} messages/s", sec + 1, c.duration, now - last);
        last = now;
    }
    let elapsed = begin.elapsed();
    let delivered = counters.delivered.get();
    let round_trips = counters.round_trips.get();
    let _ = phase_tx.send(DRAINING);
    let drain_until = Instant::now() + Duration::from_secs(5);
    while counters.outstanding.get() > 0 && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = phase_tx.send(QUIT);
    let mut hist = histogram();
    let (mut out_of_order, mut sent) = (0u64, 0u64);
    let mut keep = Vec::new();
    let mut side_p99 = Vec::with_capacity(tasks.len());
    for t in tasks {
        let (s, conn) = t.await?;
        hist.add(&s.seen.hist).ok();
        if !s.seen.hist.is_empty() {
            side_p99.push(s.seen.hist.value_at_quantile(0.99));
        }
        out_of_order += s.seen.out_of_order;
        sent += s.seq;
        counters.errors.set(counters.errors.get() + conn.errors());
        keep.push(conn);
    }
    let missing = counters.outstanding.get().max(0) as u64;
    let errors = counters.errors.get();
    let secs = elapsed.as_secs_f64();
    let (msg_rate, rt_rate) = (delivered as f64 / secs, round_trips as f64 / secs);
    println!(
        "p2p ({name}): {} pairs, {} B, window {}, {} s",
        a.pairs, c.size, a.window, c.duration
    );
    println!("  origins sent     {sent}");
    println!("  messages/s       {msg_rate:.0}");
    println!("  round trips/s    {rt_rate:.0}");
    print_latency("rtt", &hist);
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
            "peer": name,
            "raw": true,
            "pairs": a.pairs,
            "size": c.size,
            "window": a.window,
            "duration_s": c.duration,
            "origins_sent": sent,
            "messages": delivered,
            "messages_per_s": msg_rate.round(),
            "round_trips_per_s": rt_rate.round(),
            "rtt_ms": latency_json(&hist),
            "rtt_p99_per_side_ms": spread,
            "out_of_order": out_of_order,
            "missing": missing,
            "errors": errors,
            "cpu": cpu,
        })
    );
    drop(keep);
    if out_of_order > 0 || missing > 0 || errors > 0 {
        bail!("{out_of_order} out of order, {missing} missing, {errors} errors: all must be 0");
    }
    Ok(())
}
