//! The fanout shape of `switchboard bench fanout --raw`: one publisher, S subscribers
//! (one connection each) on one channel. Closed loop `--window K`: message n is sent
//! as soon as message n−K reached every subscriber, without waiting for any reply
//! (the window alone bounds what is in flight); open loop `--rate R`.

use crate::common::{clock_us, histogram, latency_json, print_latency, CpuMeter, Msg, Seen};
use crate::peer::{Conn, Peer};
use anyhow::bail;
use futures_util::StreamExt;
use serde_json::json;
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

#[derive(clap::Args, Clone)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub common: crate::CommonArgs,
    /// Subscribers (one connection each).
    #[arg(long, default_value_t = 1000)]
    pub subscribers: u32,
    /// Closed loop: messages in flight.
    #[arg(long, conflicts_with = "rate")]
    pub window: Option<u64>,
    /// Open loop: messages per second.
    #[arg(long)]
    pub rate: Option<u64>,
    /// Channel / subject / topic / room.
    #[arg(long, default_value = "bench")]
    pub channel: String,
}

/// Deliveries per message in a ring; wakes the publisher when all have it.
struct Shared {
    subscribers: u32,
    ring: Vec<Cell<u32>>,
    wake: Notify,
    delivered: Cell<u64>,
    stop: Cell<bool>,
}

impl Shared {
    fn delivered(&self, seq: u64) {
        let slot = &self.ring[(seq as usize) % self.ring.len()];
        slot.set(slot.get() + 1);
        if slot.get() == self.subscribers {
            self.wake.notify_one();
        }
        self.delivered.set(self.delivered.get() + 1);
    }
}

/// When the publisher may send message `seq`.
struct Pace {
    shared: Rc<Shared>,
    window: Option<u64>,
    tick: Option<tokio::time::Interval>,
}

impl Pace {
    /// Whether `ready(seq)` would wait (then the publisher writes out what it queued).
    fn would_wait(&self, seq: u64) -> bool {
        match self.window {
            Some(k) => seq >= k && self.slot(seq - k).get() < self.shared.subscribers,
            None => true,
        }
    }

    fn slot(&self, seq: u64) -> &Cell<u32> {
        let ring = &self.shared.ring;
        &ring[(seq as usize) % ring.len()]
    }

    /// Waits until message `seq` may go; false once the run stops.
    async fn ready(&mut self, seq: u64) -> bool {
        if let Some(k) = self.window {
            if seq >= k {
                while self.slot(seq - k).get() < self.shared.subscribers {
                    if self.shared.stop.get() {
                        return false;
                    }
                    let _ = tokio::time::timeout(
                        Duration::from_millis(100),
                        self.shared.wake.notified(),
                    )
                    .await;
                }
                self.slot(seq - k).set(0);
            }
        } else if let Some(t) = self.tick.as_mut() {
            t.tick().await;
        }
        !self.shared.stop.get()
    }
}

async fn subscriber<C: Conn>(
    mut c: C,
    shared: Rc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> (Seen, u64, C) {
    let mut seen = Seen::new();
    let mut inbox = Vec::new();
    let mut lost = 0;
    loop {
        tokio::select! {
            r = c.recv(&mut inbox) => {
                if let Err(e) = r {
                    eprintln!("subscriber: {e:#}");
                    lost += 1;
                    break;
                }
                for m in inbox.drain(..) {
                    if m.p == 0 {
                        seen.observe(m.seq, m.sent);
                        shared.delivered(m.seq);
                    }
                }
            }
            _ = stop.changed() => break,
        }
    }
    let gaps = lost + c.errors();
    (seen, gaps, c)
}

async fn publisher<C: Conn>(mut c: C, to: String, mut pace: Pace) -> anyhow::Result<(u64, C)> {
    let mut seq = 0u64;
    let mut inbox = Vec::new();
    loop {
        if pace.would_wait(seq) {
            c.flush().await?;
        }
        tokio::select! {
            biased;
            r = c.recv(&mut inbox) => {
                r?;
                inbox.clear();
            }
            go = pace.ready(seq) => {
                if !go {
                    break;
                }
                c.send(&to, Msg { p: 0, seq, sent: clock_us() }).await?;
                seq += 1;
            }
        }
    }
    c.flush().await?;
    Ok((seq, c))
}

pub async fn run<P: Peer>(peer: P, name: &str, a: FanoutArgs) -> anyhow::Result<()> {
    if a.window.is_none() && a.rate.is_none() {
        bail!("give --window K (closed loop) or --rate R (open loop)");
    }
    let _ = clock_us();
    let ring_len = (a.window.unwrap_or(0) as usize * 4).max(1024);
    let shared = Rc::new(Shared {
        subscribers: a.subscribers,
        ring: (0..ring_len).map(|_| Cell::new(0)).collect(),
        wake: Notify::new(),
        delivered: Cell::new(0),
        stop: Cell::new(false),
    });
    let c = &a.common;
    eprintln!(
        "connecting {} {name} subscribers to {} ({} at a time)",
        a.subscribers, c.url, c.connect_concurrency
    );
    let meter = CpuMeter::start(c.server_pid);
    let (stop_tx, stop_rx) = watch::channel(false);
    let conns: Vec<P::C> = futures_util::stream::iter(0..a.subscribers)
        .map(|i| peer.subscriber(i, &a.channel))
        .buffered(c.connect_concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let sub_tasks: Vec<_> = conns
        .into_iter()
        .map(|conn| tokio::task::spawn_local(subscriber(conn, shared.clone(), stop_rx.clone())))
        .collect();
    eprintln!("{} subscribers ready", sub_tasks.len());
    let (pconn, to) = peer.publisher(&a.channel).await?;
    let pace = Pace {
        shared: shared.clone(),
        window: a.window,
        tick: a
            .rate
            .map(|r| tokio::time::interval(Duration::from_secs_f64(1.0 / r.max(1) as f64))),
    };
    let pub_task = tokio::task::spawn_local(publisher(pconn, to, pace));
    let begin = Instant::now();
    let mut last = 0;
    for s in 0..c.duration {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = shared.delivered.get();
        eprintln!("  {}/{}s {} deliveries/s", s + 1, c.duration, now - last);
        last = now;
    }
    let elapsed = begin.elapsed();
    shared.stop.set(true);
    let (published, pconn) = pub_task.await??;
    let expected = published * u64::from(a.subscribers);
    let drain_until = Instant::now() + Duration::from_secs(5);
    while shared.delivered.get() < expected && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_tx.send(true);
    let mut hist = histogram();
    let (mut received, mut out_of_order, mut gaps) = (0u64, 0u64, pconn.errors());
    let mut keep = Vec::new();
    for t in sub_tasks {
        let (seen, g, conn) = t.await?;
        hist.add(&seen.hist).ok();
        received += seen.received;
        out_of_order += seen.out_of_order;
        gaps += g;
        keep.push(conn);
    }
    let missing = expected.saturating_sub(received);
    let rate = received as f64 / elapsed.as_secs_f64();
    let mode = match (a.window, a.rate) {
        (Some(k), _) => format!("window {k}"),
        (_, Some(r)) => format!("rate {r}/s"),
        _ => String::new(),
    };
    println!(
        "fanout ({name}): 1 publisher, {} subscribers, {} B, {mode}, {} s",
        a.subscribers, c.size, c.duration
    );
    println!("  published        {published}");
    println!("  deliveries       {received}");
    println!("  deliveries/s     {rate:.0}");
    print_latency("latency", &hist);
    println!("  out of order     {out_of_order}");
    println!("  missing          {missing}");
    println!("  errors           {gaps}");
    let cpu = meter.finish(received);
    println!(
        "{}",
        json!({
            "scenario": "fanout",
            "peer": name,
            "raw": true,
            "publishers": 1,
            "subscribers": a.subscribers,
            "size": c.size,
            "window": a.window,
            "rate": a.rate,
            "duration_s": c.duration,
            "published": published,
            "deliveries": received,
            "deliveries_per_s": rate.round(),
            "latency_ms": latency_json(&hist),
            "out_of_order": out_of_order,
            "missing": missing,
            "lagged_events": gaps,
            "cpu": cpu,
        })
    );
    drop(pconn);
    drop(keep);
    if out_of_order > 0 || missing > 0 {
        bail!("{out_of_order} out of order and {missing} missing: both must be 0");
    }
    Ok(())
}
