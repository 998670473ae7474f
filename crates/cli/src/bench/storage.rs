//! `bench storage`: durable metadata writes and lock hand-offs.
//!
//! - Writes: W writers, each keeping K `setChannelMetadata` requests in flight (closed
//!   loop) on its own channel; each write is acknowledged only once committed
//!   (`synchronous = FULL`), so writes/s shows what group commit makes of the disk.
//! - Locks: L clients, each acquiring and releasing its own lock in one shared channel,
//!   one operation at a time; acquire+release pairs per second.
//!
//! Both report latency percentiles (request → reply). All clients are raw connections.

use super::setup::{Target, login_all};
use super::{raw, report};
use anyhow::bail;
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use switchboard_protocol::pb::{self, client_message::Body};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

/// `bench storage` flags.
#[derive(Args)]
pub struct StorageArgs {
    #[command(flatten)]
    target: Target,
    /// Metadata writers (each on its own channel).
    #[arg(long, default_value_t = 16)]
    writers: u32,
    /// Writes in flight per writer.
    #[arg(long, default_value_t = 4)]
    window: usize,
    /// Value bytes per write.
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Lock clients (each with its own lock, acquired and released in turn).
    #[arg(long, default_value_t = 16)]
    lockers: u32,
    /// Seconds of each phase.
    #[arg(long, default_value_t = 5)]
    duration: u64,
}

#[derive(Default)]
struct Counters {
    done: AtomicU64,
    errors: AtomicU64,
}

pub(super) async fn run(a: StorageArgs) -> anyhow::Result<()> {
    if a.window == 0 {
        bail!("--window must be at least 1");
    }
    let (url, app, cert) = super::setup::target(&a.target).await?;
    let pid = a
        .target
        .server_pid
        .or_else(|| a.target.in_process().then(std::process::id));
    eprintln!(
        "storage: {} writers × {} in flight, {} lockers, against {url}",
        a.writers, a.window, a.lockers
    );
    let run_id = std::process::id();

    // Phase 1: metadata writes.
    let writers = login_all(a.writers, 64, |i| {
        let (url, app, cert) = (&url, &app, cert.as_deref());
        async move { raw::RawClient::login(url, app, cert, &format!("bench-writer-{i}")).await }
    })
    .await?;
    let transactions_before = super::setup::storage_transactions();
    let meter = a.target.cpu_meter();
    let counters = Arc::new(Counters::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let tasks: Vec<_> = writers
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let channel = format!("bench-storage-{run_id}-{i}");
            tokio::spawn(writer(
                c,
                channel,
                a.window,
                a.size,
                counters.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();
    let elapsed = report::progress(a.duration, "writes", || {
        counters.done.load(Ordering::Relaxed)
    })
    .await;
    let writes = counters.done.load(Ordering::Relaxed);
    let _ = stop_tx.send(true);
    let mut write_latency = report::histogram();
    for t in tasks {
        write_latency.add(t.await?)?;
    }
    let write_cpu = meter.finish(writes);
    let transactions = super::setup::storage_transactions()
        .zip(transactions_before)
        .map(|(after, before)| after - before);
    let write_errors = counters.errors.load(Ordering::Relaxed);
    let writes_per_s = writes as f64 / elapsed.as_secs_f64();

    // Phase 2: lock acquire / release.
    let channel = format!("bench-locks-{run_id}");
    let lockers = login_all(a.lockers, 64, |i| {
        let (url, app, cert, channel) = (&url, &app, cert.as_deref(), &channel);
        async move {
            let mut c = raw::RawClient::login(url, app, cert, &format!("bench-locker-{i}")).await?;
            let (_, set) = c.message(Body::SetLock(pb::SetLockRequest {
                channel_type: pb::ChannelType::Message as i32,
                channel_name: channel.clone(),
                lock_name: format!("lock-{i}"),
                ttl: 0,
            }));
            c.ws.send(set).await?;
            anyhow::Ok(c)
        }
    })
    .await?;
    let meter = a.target.cpu_meter();
    let counters = Arc::new(Counters::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let tasks: Vec<_> = lockers
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            tokio::spawn(locker(
                c,
                channel.clone(),
                format!("lock-{i}"),
                counters.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();
    let elapsed_locks = report::progress(a.duration, "lock pairs", || {
        counters.done.load(Ordering::Relaxed)
    })
    .await;
    let pairs = counters.done.load(Ordering::Relaxed);
    let _ = stop_tx.send(true);
    let mut lock_latency = report::histogram();
    for t in tasks {
        lock_latency.add(t.await?)?;
    }
    let lock_cpu = meter.finish(pairs);
    let lock_errors = counters.errors.load(Ordering::Relaxed);
    let pairs_per_s = pairs as f64 / elapsed_locks.as_secs_f64();
    let rss = report::rss_kib(pid);

    println!(
        "storage: {} writers × {} in flight, {}-byte values; {} lockers; {} s each",
        a.writers, a.window, a.size, a.lockers, a.duration
    );
    println!("  metadata writes  {writes} ({writes_per_s:.0}/s), errors {write_errors}");
    if let Some(t) = transactions {
        println!(
            "  transactions     {t} ({:.1} writes per commit)",
            writes as f64 / t.max(1) as f64
        );
    }
    report::print_latency("write", &write_latency);
    println!("  lock pairs       {pairs} ({pairs_per_s:.0}/s), errors {lock_errors}");
    report::print_latency("lock op", &lock_latency);
    println!(
        "{}",
        json!({
            "scenario": "storage",
            "writers": a.writers,
            "window": a.window,
            "size": a.size,
            "lockers": a.lockers,
            "duration_s": a.duration,
            "writes": writes,
            "writes_per_s": writes_per_s.round(),
            "commits": transactions,
            "write_latency_ms": report::latency_json(&write_latency),
            "write_cpu": write_cpu,
            "lock_pairs": pairs,
            "lock_pairs_per_s": pairs_per_s.round(),
            "lock_op_latency_ms": report::latency_json(&lock_latency),
            "lock_cpu": lock_cpu,
            "errors": write_errors + lock_errors,
            "rss_kib": rss,
        })
    );
    if write_errors + lock_errors > 0 {
        bail!("{} errors", write_errors + lock_errors);
    }
    Ok(())
}

/// Reads replies on `c` until `stop`, calling `reply(id, failed)` for each; keeps
/// heartbeats going. Returns false when the connection failed.
async fn next_reply(
    c: &mut raw::RawClient,
    beat: &mut tokio::time::Interval,
    stop: &mut watch::Receiver<bool>,
    mut reply: impl FnMut(u32, bool),
) -> Option<bool> {
    tokio::select! {
        m = c.ws.next() => match m {
            Some(Ok(Message::Binary(b))) => {
                for m in raw::decode(b) {
                    match m {
                        Ok(m) if m.id > 0 => reply(m.id, m.error.is_some()),
                        Ok(m) if m.closing.is_some() => return Some(false),
                        Ok(_) => {}
                        Err(_) => return Some(false),
                    }
                }
                Some(true)
            }
            Some(Ok(_)) => Some(true),
            _ => Some(false),
        },
        _ = beat.tick() => Some(c.ws.send(raw::heartbeat()).await.is_ok()),
        _ = stop.changed() => None,
    }
}

/// One writer: keeps `window` writes in flight on `channel` until `stop`; returns the
/// latency histogram.
async fn writer(
    mut c: raw::RawClient,
    channel: String,
    window: usize,
    size: usize,
    n: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) -> Histogram<u64> {
    let mut h = report::histogram();
    let mut beat = tokio::time::interval(raw::HEARTBEAT_EVERY);
    let mut in_flight: HashMap<u32, u64> = HashMap::new();
    let value = "v".repeat(size);
    let mut seq = 0u64;
    'run: loop {
        while in_flight.len() < window {
            let (id, msg) = c.message(Body::SetMetadata(pb::MetadataWriteRequest {
                channel_type: pb::ChannelType::Message as i32,
                channel_name: channel.clone(),
                items: vec![pb::MetadataItem {
                    key: format!("k{}", seq % 64),
                    value: value.clone(),
                    revision: None,
                }],
                ..Default::default()
            }));
            seq += 1;
            in_flight.insert(id, report::clock_us());
            if c.ws.send(msg).await.is_err() {
                n.errors.fetch_add(1, Ordering::Relaxed);
                break 'run;
            }
        }
        let mut done = |id: u32, failed: bool| {
            if let Some(sent) = in_flight.remove(&id) {
                if failed {
                    n.errors.fetch_add(1, Ordering::Relaxed);
                } else {
                    n.done.fetch_add(1, Ordering::Relaxed);
                    let _ = h.record(report::clock_us().saturating_sub(sent).max(1));
                }
            }
        };
        match next_reply(&mut c, &mut beat, &mut stop, &mut done).await {
            Some(true) => {}
            Some(false) => {
                n.errors.fetch_add(1, Ordering::Relaxed);
                break;
            }
            None => break,
        }
    }
    let refused = c.finish().await;
    n.errors.fetch_add(refused, Ordering::Relaxed);
    h
}

/// One locker: acquire, release, acquire, … its own lock until `stop`; returns the
/// latency histogram of single operations.
async fn locker(
    mut c: raw::RawClient,
    channel: String,
    lock: String,
    n: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) -> Histogram<u64> {
    let mut h = report::histogram();
    let mut beat = tokio::time::interval(raw::HEARTBEAT_EVERY);
    let mut acquire = true;
    'run: loop {
        let body = if acquire {
            Body::AcquireLock(pb::AcquireLockRequest {
                channel_type: pb::ChannelType::Message as i32,
                channel_name: channel.clone(),
                lock_name: lock.clone(),
                retry: false,
            })
        } else {
            Body::ReleaseLock(pb::ReleaseLockRequest {
                channel_type: pb::ChannelType::Message as i32,
                channel_name: channel.clone(),
                lock_name: lock.clone(),
            })
        };
        let (id, msg) = c.message(body);
        let sent = report::clock_us();
        if c.ws.send(msg).await.is_err() {
            n.errors.fetch_add(1, Ordering::Relaxed);
            break;
        }
        let mut answered = None;
        while answered.is_none() {
            let mut got = |rid: u32, failed: bool| {
                if rid == id {
                    answered = Some(failed);
                }
            };
            match next_reply(&mut c, &mut beat, &mut stop, &mut got).await {
                Some(true) => {}
                Some(false) => {
                    n.errors.fetch_add(1, Ordering::Relaxed);
                    break 'run;
                }
                None => break 'run,
            }
        }
        if answered == Some(true) {
            n.errors.fetch_add(1, Ordering::Relaxed);
        }
        let _ = h.record(report::clock_us().saturating_sub(sent).max(1));
        if !acquire {
            n.done.fetch_add(1, Ordering::Relaxed);
        }
        acquire = !acquire;
    }
    // The lock may be held: logout releases it.
    let refused = c.finish().await;
    n.errors.fetch_add(refused, Ordering::Relaxed);
    h
}
