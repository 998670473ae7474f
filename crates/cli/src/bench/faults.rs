//! Fault and flood scenarios (issue 20), each ending in a verdict besides its figures:
//!
//! - `slow-consumer`: one subscriber that never reads its socket (it keeps sending
//!   heartbeats) among subscribers that read everything, one publisher at a fixed rate.
//!   The server must disconnect the stalled one as a slow consumer (its Closing push, code
//!   4004, is the last thing in its socket when the server could still write it) while
//!   every other subscriber receives every message in order; reports their latency and the server's RSS (before, peak, after).
//! - `publish-flood`: publishers sending as fast as a window of unanswered publishes
//!   allows, round robin over many channels nobody reads, for a while. Reports acks,
//!   refusals by code and the server's RSS (peak and after): the recovery-log budgets
//!   must hold it. A canary logs in afterwards and gets its own message: the server
//!   still serves.
//! - `connection-flood`: logged-in connections opened as fast as `--concurrency` allows
//!   until `--count` or until the server refuses (its open-file limit or
//!   `max_connections`); how each failed (connect, handshake, login code), whether a
//!   canary connection opened before kept answering, and whether a new login works once
//!   the flood lets go. Run the server as its own process with a lower open-file limit
//!   (`prlimit --nofile=N switchboard serve …`) to flood it to that limit.
//!
//! The server's RSS is read from `/proc` with `--server-pid`, else (in-process server)
//! this process's, load generator included.

use super::raw::{self, RawClient};
use super::report;
use super::setup::Target;
use super::subscriber::{decode_payload, encode_payload};
use anyhow::bail;
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use switchboard_protocol::pb::{self, client_message::Body};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

/// The pid whose RSS stands for the server's: `Some(pid)`, or `None` = this process.
fn rss_pid(t: &Target) -> Option<u32> {
    t.server_pid
}

/// Samples the RSS of `pid` every 100 ms until `stop`; the peak in KiB.
fn rss_sampler(pid: Option<u32>, stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut peak = report::rss_kib(pid).unwrap_or(0);
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        while !*stop.borrow() {
            tick.tick().await;
            peak = peak.max(report::rss_kib(pid).unwrap_or(0));
        }
        peak
    })
}

fn rss_of(t: &Target) -> &'static str {
    if t.server_pid.is_some() {
        "server"
    } else {
        "process (load and server)"
    }
}

/// `bench slow-consumer` flags.
#[derive(Args)]
pub struct SlowConsumerArgs {
    #[command(flatten)]
    target: Target,
    /// Subscribers that read everything.
    #[arg(long, default_value_t = 10)]
    subscribers: u32,
    /// Messages published.
    #[arg(long, default_value_t = 10_000)]
    messages: u64,
    /// Payload bytes.
    #[arg(long, default_value_t = 4096)]
    size: usize,
    /// Publish rate, messages per second.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
}

/// What one reading subscriber saw.
struct Seen {
    received: u64,
    out_of_order: u64,
    hist: hdrhistogram::Histogram<u64>,
}

/// Reads `c` until it has `expected` messages or `stop`; order and latency.
async fn read_all(mut c: RawClient, expected: u64, mut stop: watch::Receiver<bool>) -> Seen {
    let mut seen = Seen {
        received: 0,
        out_of_order: 0,
        hist: report::histogram(),
    };
    let mut next = 0u64;
    let hb = raw::heartbeat();
    let mut beat = tokio::time::interval(raw::HEARTBEAT_EVERY);
    while seen.received < expected {
        tokio::select! {
            m = c.ws.next() => match m {
                Some(Ok(Message::Binary(b))) => {
                    for m in raw::decode(b).flatten() {
                        let Some((_, seq, sent)) = m.message.as_ref().and_then(|p| decode_payload(&p.payload)) else {
                            continue;
                        };
                        seen.received += 1;
                        if seq != next {
                            seen.out_of_order += 1;
                        }
                        next = seq + 1;
                        let _ = seen.hist.record(report::clock_us().saturating_sub(sent).max(1));
                    }
                }
                Some(Ok(_)) => {}
                _ => break,
            },
            _ = beat.tick() => {
                if c.ws.send(hb.clone()).await.is_err() {
                    break;
                }
            }
            _ = stop.changed() => break,
        }
    }
    c.logout().await;
    seen
}

/// The stalled subscriber, after the run: reads what the server left in its socket
/// until it closes (or 30 s). (closed, Closing code, bytes read).
async fn drain_stalled(
    mut stream: futures_util::stream::SplitStream<raw::Ws>,
) -> (bool, Option<u32>, u64) {
    let mut closing = None;
    let mut bytes = 0u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => return (false, closing, bytes),
            Ok(Some(Ok(Message::Binary(b)))) => {
                bytes += b.len() as u64;
                for m in raw::decode(b).flatten() {
                    if let Some(c) = m.closing {
                        closing = Some(c.code);
                    }
                }
            }
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => {
                return (true, closing, bytes);
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

pub(super) async fn slow_consumer(a: SlowConsumerArgs) -> anyhow::Result<()> {
    let (url, app, cert) = super::setup::target(&a.target).await?;
    let cert = cert.as_deref();
    let channel = "bench-slow-consumer";
    if a.target.in_process() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pid = rss_pid(&a.target);
    let rss_before = report::rss_kib(pid);
    let (stop_tx, stop_rx) = watch::channel(false);
    let sampler = rss_sampler(pid, stop_rx.clone());

    // The stalled subscriber: subscribed, sends heartbeats, never reads.
    let mut stalled = RawClient::login(&url, &app, cert, "bench-stalled").await?;
    stalled.subscribe_with(channel, Some(false)).await?;
    let (mut sink, stalled_stream) = stalled.ws.split();
    let mut hb_stop = stop_rx.clone();
    let heartbeats = tokio::spawn(async move {
        let mut beat = tokio::time::interval(raw::HEARTBEAT_EVERY);
        loop {
            tokio::select! {
                _ = beat.tick() => {
                    if sink.send(raw::heartbeat()).await.is_err() {
                        return;
                    }
                }
                _ = hb_stop.changed() => return,
            }
        }
    });

    let mut readers = Vec::new();
    for i in 0..a.subscribers {
        let mut c = RawClient::login(&url, &app, cert, &format!("bench-reader-{i}")).await?;
        c.subscribe_with(channel, Some(false)).await?;
        readers.push(tokio::spawn(read_all(c, a.messages, stop_rx.clone())));
    }

    eprintln!(
        "publishing {} messages of {} B at {}/s to {} readers and one stalled subscriber",
        a.messages, a.size, a.rate, a.subscribers
    );
    let mut p = RawClient::login(&url, &app, cert, "bench-publisher").await?;
    let refused = AtomicU64::new(0);
    let begin = Instant::now();
    {
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / a.rate.max(1) as f64));
        let mut acked = 0u64;
        let mut sent = 0u64;
        while acked < a.messages {
            tokio::select! {
                _ = tick.tick(), if sent < a.messages => {
                    let payload = encode_payload(a.size, 0, sent, report::clock_us());
                    let msg = p.publish(false, channel, payload);
                    p.ws.send(msg).await?;
                    sent += 1;
                }
                m = p.ws.next() => match m {
                    Some(Ok(Message::Binary(b))) => {
                        for m in raw::decode(b).flatten() {
                            if m.id > 0 {
                                acked += 1;
                                if m.error.is_some() {
                                    refused.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => bail!("the publisher's connection closed"),
                },
            }
        }
    }
    let publish_time = begin.elapsed();
    p.logout().await;
    // Every reader gets everything (or 30 s pass).
    let wait = tokio::time::timeout(Duration::from_secs(30), async {
        let mut seen = Vec::new();
        for r in readers {
            seen.push(r.await);
        }
        seen
    })
    .await;
    let (closed, closing, stalled_bytes) = drain_stalled(stalled_stream).await;
    let _ = stop_tx.send(true);
    let _ = heartbeats.await;
    let rss_peak = sampler.await.ok();
    let rss_after = report::rss_kib(pid);
    let Ok(seen) = wait else {
        bail!("the readers did not receive everything within 30 s of the last publish");
    };
    let mut hist = report::histogram();
    let (mut min_received, mut out_of_order) = (u64::MAX, 0);
    for s in seen {
        let s = s?;
        min_received = min_received.min(s.received);
        out_of_order += s.out_of_order;
        hist.add(&s.hist).ok();
    }
    let refused = refused.load(Ordering::Relaxed);
    println!(
        "slow-consumer: {} messages of {} B at {}/s in {:.1} s; {} readers, one stalled",
        a.messages,
        a.size,
        a.rate,
        publish_time.as_secs_f64(),
        a.subscribers
    );
    println!("  fewest received by a reader  {min_received} (refused publishes {refused})");
    println!("  out of order                 {out_of_order}");
    report::print_latency("delivery", &hist);
    println!(
        "  stalled subscriber           {} (Closing {:?}), {} KiB left in its socket",
        if closed {
            "disconnected"
        } else {
            "NOT disconnected"
        },
        closing,
        stalled_bytes / 1024
    );
    if let (Some(b), Some(p), Some(after)) = (rss_before, rss_peak, rss_after) {
        println!(
            "  RSS {}: {b} KiB before, {p} KiB peak, {after} KiB after",
            rss_of(&a.target)
        );
    }
    println!(
        "{}",
        json!({
            "scenario": "slow-consumer",
            "readers": a.subscribers,
            "messages": a.messages,
            "size": a.size,
            "rate": a.rate,
            "publish_s": (publish_time.as_secs_f64() * 100.0).round() / 100.0,
            "refused_publishes": refused,
            "min_received_per_reader": min_received,
            "out_of_order": out_of_order,
            "reader_latency_ms": report::latency_json(&hist),
            "stalled_disconnected": closed,
            "stalled_closing_code": closing,
            "stalled_bytes_left": stalled_bytes,
            "rss_of": rss_of(&a.target),
            "rss_before_kib": rss_before,
            "rss_peak_kib": rss_peak,
            "rss_after_kib": rss_after,
        })
    );
    if min_received < a.messages || out_of_order > 0 || refused > 0 {
        bail!("a reader missed messages or saw them out of order");
    }
    // The Closing push is written after what fills the stalled socket's buffers, so
    // the server may give up on the write (write timeout) before it gets there: then
    // only the close is seen here, and the reason is in the server's metrics
    // (`switchboard_disconnects_total{code="SLOW_CONSUMER"}`).
    if !closed || closing.is_some_and(|c| c != 4004) {
        bail!("the stalled subscriber was not disconnected as a slow consumer");
    }
    Ok(())
}

/// `bench publish-flood` flags.
#[derive(Args)]
pub struct PublishFloodArgs {
    #[command(flatten)]
    target: Target,
    /// Publishing connections.
    #[arg(long, default_value_t = 4)]
    publishers: u32,
    /// Channels published to, round robin (nobody subscribes).
    #[arg(long, default_value_t = 2000)]
    channels: u32,
    /// Payload bytes.
    #[arg(long, default_value_t = 32 * 1024)]
    size: usize,
    /// Unanswered publishes per publisher.
    #[arg(long, default_value_t = 32)]
    window: u32,
    /// Seconds of flood.
    #[arg(long, default_value_t = 20)]
    duration: u64,
}

/// One flooding publisher until `stop`: (acked, refusals by code, closed early).
async fn flood(
    mut c: RawClient,
    index: u32,
    a: (u32, usize, u32),
    stop: watch::Receiver<bool>,
) -> (u64, BTreeMap<i32, u64>, bool) {
    let (channels, size, window) = a;
    let payload = vec![0x5a; size];
    let (mut acked, mut in_flight, mut n) = (0u64, 0u32, 0u64);
    let mut codes = BTreeMap::new();
    let mut last_beat = Instant::now();
    loop {
        if *stop.borrow() {
            break;
        }
        while in_flight < window {
            let channel = format!("flood-{}", (n + u64::from(index)) % u64::from(channels));
            let msg = c.publish(false, &channel, payload.clone());
            if c.ws.send(msg).await.is_err() {
                return (acked, codes, true);
            }
            in_flight += 1;
            n += 1;
        }
        if last_beat.elapsed() >= raw::HEARTBEAT_EVERY {
            let _ = c.ws.send(raw::heartbeat()).await;
            last_beat = Instant::now();
        }
        match tokio::time::timeout(Duration::from_secs(1), c.ws.next()).await {
            Err(_) => {}
            Ok(Some(Ok(Message::Binary(b)))) => {
                for m in raw::decode(b).flatten() {
                    if m.closing.is_some() {
                        return (acked, codes, true);
                    }
                    if m.id > 0 {
                        in_flight = in_flight.saturating_sub(1);
                        match m.error {
                            Some(e) => *codes.entry(e.code).or_insert(0) += 1,
                            None => acked += 1,
                        }
                    }
                }
            }
            Ok(Some(Ok(_))) => {}
            Ok(_) => return (acked, codes, true),
        }
    }
    let _ = c.finish().await;
    (acked, codes, false)
}

pub(super) async fn publish_flood(a: PublishFloodArgs) -> anyhow::Result<()> {
    let (url, app, cert) = super::setup::target(&a.target).await?;
    let cert = cert.as_deref();
    if a.target.in_process() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pid = rss_pid(&a.target);
    let rss_before = report::rss_kib(pid);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (sampler_stop, sampler_rx) = watch::channel(false);
    let sampler = rss_sampler(pid, sampler_rx);
    let mut tasks = Vec::new();
    for i in 0..a.publishers {
        let c = RawClient::login(&url, &app, cert, &format!("bench-flood-{i}")).await?;
        tasks.push(tokio::spawn(flood(
            c,
            i,
            (a.channels.max(1), a.size, a.window.max(1)),
            stop_rx.clone(),
        )));
    }
    eprintln!(
        "{} publishers flooding {} channels with {} B publishes for {} s",
        a.publishers, a.channels, a.size, a.duration
    );
    let begin = Instant::now();
    tokio::time::sleep(Duration::from_secs(a.duration)).await;
    let _ = stop_tx.send(true);
    let (mut acked, mut codes, mut closed) = (0u64, BTreeMap::<i32, u64>::new(), 0u32);
    for t in tasks {
        let (ok, c, early) = t.await?;
        acked += ok;
        for (code, n) in c {
            *codes.entry(code).or_insert(0) += n;
        }
        closed += u32::from(early);
    }
    let took = begin.elapsed();
    // Still serving: a canary logs in, subscribes and gets its own publish.
    let canary = async {
        let mut c = RawClient::login(&url, &app, cert, "bench-flood-canary").await?;
        c.subscribe_with("flood-canary", Some(false)).await?;
        let msg = c.publish(false, "flood-canary", encode_payload(32, 9, 0, 0));
        c.ws.send(msg).await?;
        loop {
            match c.ws.next().await {
                Some(Ok(Message::Binary(b))) => {
                    if raw::decode(b).flatten().any(|m| m.message.is_some()) {
                        break;
                    }
                }
                Some(Ok(_)) => {}
                _ => bail!("the canary's connection closed"),
            }
        }
        c.logout().await;
        anyhow::Ok(())
    };
    let canary = tokio::time::timeout(Duration::from_secs(10), canary).await;
    // Let the server trim, then read its memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = sampler_stop.send(true);
    let rss_peak = sampler.await.ok();
    let rss_after = report::rss_kib(pid);
    let refused: u64 = codes.values().sum();
    let mib = (acked as f64 * a.size as f64) / (1024.0 * 1024.0);
    println!(
        "publish-flood: {} publishers, {} channels, {} B, window {}, {:.1} s",
        a.publishers,
        a.channels,
        a.size,
        a.window,
        took.as_secs_f64()
    );
    println!(
        "  acknowledged     {acked} ({:.0}/s, {mib:.0} MiB of payload)",
        acked as f64 / took.as_secs_f64()
    );
    println!("  refused          {refused} {codes:?}");
    println!("  closed early     {closed}");
    if let (Some(b), Some(p), Some(after)) = (rss_before, rss_peak, rss_after) {
        println!(
            "  RSS {}: {b} KiB before, {p} KiB peak, {after} KiB after",
            rss_of(&a.target)
        );
    }
    let canary_ok = matches!(canary, Ok(Ok(())));
    println!(
        "  canary after     {}",
        if canary_ok { "served" } else { "NOT served" }
    );
    println!(
        "{}",
        json!({
            "scenario": "publish-flood",
            "publishers": a.publishers,
            "channels": a.channels,
            "size": a.size,
            "window": a.window,
            "duration_s": a.duration,
            "acked": acked,
            "acked_payload_mib": mib.round(),
            "refused_by_code": codes,
            "closed_early": closed,
            "rss_of": rss_of(&a.target),
            "rss_before_kib": rss_before,
            "rss_peak_kib": rss_peak,
            "rss_after_kib": rss_after,
            "canary_served": canary_ok,
        })
    );
    if !canary_ok {
        bail!("the server did not serve a new client after the flood: {canary:?}");
    }
    Ok(())
}

/// `bench connection-flood` flags.
#[derive(Args)]
pub struct ConnectionFloodArgs {
    #[command(flatten)]
    target: Target,
    /// Connections to try.
    #[arg(long, default_value_t = 10_000)]
    count: u64,
    /// Connection attempts in progress at once.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Seconds each attempt may take (connect, handshake, login).
    #[arg(long, default_value_t = 10)]
    attempt_timeout: u64,
}

/// How one attempt ended.
fn classify(e: &anyhow::Error) -> String {
    let text = format!("{e:#}");
    if let Some(i) = text.find("error -") {
        let code: String = text[i + 6..]
            .chars()
            .take_while(|c| *c == '-' || c.is_ascii_digit())
            .collect();
        return format!("login {code}");
    }
    if text.contains("503") {
        // The server's refusal past its file limit (docs/reliability.md).
        return "handshake: HTTP 503".into();
    }
    if text.contains("connect to") {
        let cause = e.root_cause().to_string();
        return format!("connect: {}", cause.chars().take(60).collect::<String>());
    }
    format!("other: {}", text.chars().take(60).collect::<String>())
}

/// Sends a heartbeat with an id and waits for its reply (5 s).
async fn ping(c: &mut RawClient) -> bool {
    let (id, msg) = c.message(Body::Heartbeat(pb::Heartbeat {}));
    if c.ws.send(msg).await.is_err() {
        return false;
    }
    let wait = async {
        while let Some(Ok(m)) = c.ws.next().await {
            if let Message::Binary(b) = m
                && raw::decode(b).flatten().any(|m| m.id == id)
            {
                return true;
            }
        }
        false
    };
    tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .unwrap_or(false)
}

pub(super) async fn connection_flood(a: ConnectionFloodArgs) -> anyhow::Result<()> {
    let in_process = a.target.in_process();
    let soft = super::connections::raise_nofile(a.count + 512).unwrap_or(1024);
    let count = a.count.min(soft.saturating_sub(256));
    if count < a.count {
        eprintln!("this process's open-file limit {soft}: trying {count} connections");
    }
    if in_process {
        eprintln!("note: with an in-process server both ends share one open-file limit");
    }
    let (url, app, cert) = super::setup::target(&a.target).await?;
    let cert = cert.as_deref();
    if in_process {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pid = rss_pid(&a.target);
    let rss_before = report::rss_kib(pid);
    let mut canary = RawClient::login(&url, &app, cert, "bench-conn-canary").await?;
    let (hold_tx, hold_rx) = watch::channel(false);
    let failures: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());
    let canary_ok = AtomicBool::new(true);
    let canary_pings = AtomicU64::new(0);
    let flooding = AtomicBool::new(true);
    let begin = Instant::now();
    let bar = report::count_bar(count, "connections");
    let attempt_timeout = Duration::from_secs(a.attempt_timeout);
    let attempts = futures_util::stream::iter(0..count)
        .map(|i| {
            let (url, app, bar, failures) = (&url, &app, &bar, &failures);
            let hold = hold_rx.clone();
            async move {
                let r = tokio::time::timeout(
                    attempt_timeout,
                    RawClient::login(url, app, cert, &format!("bench-flood-conn-{i}")),
                )
                .await;
                bar.inc(1);
                match r {
                    Ok(Ok(c)) => Some(tokio::spawn(hold_open(c, hold))),
                    Ok(Err(e)) => {
                        *failures
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .entry(classify(&e))
                            .or_insert(0) += 1;
                        None
                    }
                    Err(_) => {
                        *failures
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .entry("timed out".into())
                            .or_insert(0) += 1;
                        None
                    }
                }
            }
        })
        .buffer_unordered(a.concurrency.max(1))
        .collect::<Vec<_>>();
    // The canary is pinged every second while the flood runs.
    let watch_canary = async {
        while flooding.load(Ordering::Relaxed) {
            if !ping(&mut canary).await {
                canary_ok.store(false, Ordering::Relaxed);
                break;
            }
            canary_pings.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    let attempts = async {
        let r = attempts.await;
        flooding.store(false, Ordering::Relaxed);
        r
    };
    let (held, ()) = tokio::join!(attempts, watch_canary);
    bar.finish_and_clear();
    let flood_time = begin.elapsed();
    let held: Vec<_> = held.into_iter().flatten().collect();
    let opened = held.len() as u64;
    let canary_during = canary_ok.load(Ordering::Relaxed);
    let canary_after = canary_during && ping(&mut canary).await;
    let rss_full = report::rss_kib(pid);
    let _ = hold_tx.send(true);
    let mut dropped = 0u64;
    for t in held {
        dropped += u64::from(!t.await.unwrap_or(false));
    }
    // Once the flood let go, a new login works (within 10 s).
    let deadline = Instant::now() + Duration::from_secs(10);
    let fresh = loop {
        match RawClient::login(&url, &app, cert, "bench-conn-after").await {
            Ok(c) => {
                c.logout().await;
                break true;
            }
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(_) => break false,
        }
    };
    canary.logout().await;
    let rss_after = report::rss_kib(pid);
    let failures = failures.into_inner().unwrap_or_else(|p| p.into_inner());
    let failed: u64 = failures.values().sum();
    println!(
        "connection-flood: {count} attempts, {} at once, in {:.1} s",
        a.concurrency,
        flood_time.as_secs_f64()
    );
    println!("  opened           {opened}");
    println!("  failed           {failed} {failures:?}");
    println!("  dropped while held {dropped}");
    println!(
        "  canary           {} during ({} pings), {} after",
        if canary_during {
            "answered"
        } else {
            "NOT answered"
        },
        canary_pings.load(Ordering::Relaxed),
        if canary_after {
            "answered"
        } else {
            "NOT answered"
        }
    );
    println!(
        "  new login after  {}",
        if fresh { "works" } else { "FAILS" }
    );
    if let (Some(b), Some(f), Some(after)) = (rss_before, rss_full, rss_after) {
        println!(
            "  RSS {}: {b} KiB before, {f} KiB full, {after} KiB after",
            rss_of(&a.target)
        );
    }
    println!(
        "{}",
        json!({
            "scenario": "connection-flood",
            "attempts": count,
            "concurrency": a.concurrency,
            "flood_s": (flood_time.as_secs_f64() * 10.0).round() / 10.0,
            "opened": opened,
            "failed_by_kind": failures,
            "dropped_while_held": dropped,
            "canary_during": canary_during,
            "canary_after": canary_after,
            "new_login_after": fresh,
            "rss_of": rss_of(&a.target),
            "rss_before_kib": rss_before,
            "rss_full_kib": rss_full,
            "rss_after_kib": rss_after,
        })
    );
    if !canary_during || !canary_after || !fresh {
        bail!("the server stopped serving under the connection flood");
    }
    Ok(())
}

/// Holds a connection with heartbeats until `stop`; whether it was still open then.
async fn hold_open(mut c: RawClient, mut stop: watch::Receiver<bool>) -> bool {
    let mut beat = tokio::time::interval(raw::HEARTBEAT_EVERY);
    loop {
        tokio::select! {
            m = c.ws.next() => match m {
                Some(Ok(_)) => {}
                _ => return false,
            },
            _ = beat.tick() => {
                if c.ws.send(raw::heartbeat()).await.is_err() {
                    return false;
                }
            }
            _ = stop.changed() => break,
        }
    }
    c.logout().await;
    true
}
