//! `bench presence`: M members sit in one channel with presence on while C churners
//! subscribe and unsubscribe (joins and leaves at a total rate). Above the interval
//! threshold the server aggregates the changes into INTERVAL events (R121), so what the
//! members receive shows the cost of presence at that size: presence events delivered
//! per second, changes carried per event, server CPU and memory. All clients are raw
//! connections.

use super::setup::{Target, login_all};
use super::{raw, report};
use anyhow::bail;
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

/// `bench presence` flags.
#[derive(Args)]
pub struct PresenceArgs {
    #[command(flatten)]
    target: Target,
    /// Members that stay in the channel and receive presence events.
    #[arg(long, default_value_t = 1000)]
    members: u32,
    /// Churners: users that keep joining and leaving.
    #[arg(long, default_value_t = 50)]
    churners: u32,
    /// Joins plus leaves per second, all churners together.
    #[arg(long, default_value_t = 100.0)]
    churn: f64,
    /// In-process server: interval-mode occupancy threshold (R121).
    #[arg(long, default_value_t = 50)]
    threshold: usize,
    /// In-process server: interval between INTERVAL events, ms.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    /// In-process server: mode-change debounce, ms.
    #[arg(long, default_value_t = 500)]
    debounce_ms: u64,
    /// Seconds of churn.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Channel name.
    #[arg(long, default_value = "bench-presence")]
    channel: String,
    /// The churners connect here instead of --url (e.g. another node on the same
    /// Redis, for presence across nodes); the members stay on --url.
    #[arg(long)]
    churn_url: Option<String>,
}

#[derive(Default)]
struct Counters {
    /// Presence events received by members.
    events: AtomicU64,
    /// INTERVAL events among them.
    intervals: AtomicU64,
    /// Joins and leaves carried (one per single event, the list sizes of INTERVALs).
    changes: AtomicU64,
    /// Joins and leaves performed by churners.
    churned: AtomicU64,
    errors: AtomicU64,
}

pub(super) async fn run(a: PresenceArgs) -> anyhow::Result<()> {
    if a.churn <= 0.0 || a.churners == 0 {
        bail!("--churn and --churners must be positive");
    }
    let (url, app, cert) = super::setup::target_with(&a.target, |l| {
        l.presence_interval_threshold = a.threshold;
        l.presence_interval_ms = a.interval_ms;
        l.presence_interval_debounce_ms = a.debounce_ms;
    })
    .await?;
    let channel = a.channel.as_str();
    eprintln!(
        "connecting {} members and {} churners to {url}, channel {channel}",
        a.members, a.churners
    );
    let meter = a.target.cpu_meter();
    let rss_before = report::rss_kib(
        a.target
            .server_pid
            .or_else(|| a.target.in_process().then(std::process::id)),
    );
    let members = login_all(a.members, 64, |i| {
        let (url, app, cert) = (&url, &app, cert.as_deref());
        async move {
            let mut c = raw::RawClient::login(url, app, cert, &format!("bench-member-{i}")).await?;
            c.subscribe_with(channel, Some(true)).await?;
            anyhow::Ok(c)
        }
    })
    .await?;
    let churners = login_all(a.churners, 64, |i| {
        let (url, app, cert) = (a.churn_url.as_ref().unwrap_or(&url), &app, cert.as_deref());
        async move { raw::RawClient::login(url, app, cert, &format!("bench-churn-{i}")).await }
    })
    .await?;
    let counters = Arc::new(Counters::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let member_tasks: Vec<_> = members
        .into_iter()
        .map(|c| tokio::spawn(member(c, counters.clone(), stop_rx.clone())))
        .collect();
    // Let the members' own joins (single events until the channel switches to
    // interval mode) drain before measuring.
    tokio::time::sleep(Duration::from_millis(2 * a.interval_ms.max(a.debounce_ms))).await;
    for c in [&counters.events, &counters.intervals, &counters.changes] {
        c.store(0, Ordering::Relaxed);
    }
    let period = Duration::from_secs_f64(f64::from(a.churners) / a.churn);
    let begin = tokio::time::Instant::now();
    let churn_tasks: Vec<_> = churners
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let first = begin + period.mul_f64(i as f64 / f64::from(a.churners));
            let tick = tokio::time::interval_at(first, period);
            tokio::spawn(churner(
                c,
                channel.to_string(),
                tick,
                counters.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();
    let elapsed = report::progress(a.duration, "presence events", || {
        counters.events.load(Ordering::Relaxed)
    })
    .await;
    let events = counters.events.load(Ordering::Relaxed);
    let rss_after = report::rss_kib(
        a.target
            .server_pid
            .or_else(|| a.target.in_process().then(std::process::id)),
    );
    let _ = stop_tx.send(true);
    for t in churn_tasks {
        t.await?;
    }
    for t in member_tasks {
        t.await?;
    }
    let secs = elapsed.as_secs_f64();
    let churned = counters.churned.load(Ordering::Relaxed);
    let changes = counters.changes.load(Ordering::Relaxed);
    let intervals = counters.intervals.load(Ordering::Relaxed);
    let errors = counters.errors.load(Ordering::Relaxed);
    println!(
        "presence: {} members, {} churners at {} joins+leaves/s, threshold {}, interval {} ms, {} s",
        a.members, a.churners, a.churn, a.threshold, a.interval_ms, a.duration
    );
    println!(
        "  joins+leaves     {churned} ({:.0}/s)",
        churned as f64 / secs
    );
    println!(
        "  events delivered {events} ({:.0}/s)",
        events as f64 / secs
    );
    println!("  INTERVAL events  {intervals}");
    println!("  changes carried  {changes}");
    println!("  errors           {errors}");
    if let (Some(b), Some(a)) = (rss_before, rss_after) {
        println!("  RSS              {b} KiB → {a} KiB");
    }
    let cpu = meter.finish(events);
    println!(
        "{}",
        json!({
            "scenario": "presence",
            "members": a.members,
            "churners": a.churners,
            "churn_per_s": a.churn,
            "threshold": a.threshold,
            "interval_ms": a.interval_ms,
            "duration_s": a.duration,
            "joins_leaves": churned,
            "events": events,
            "events_per_s": (events as f64 / secs).round(),
            "interval_events": intervals,
            "changes_carried": changes,
            "errors": errors,
            "rss_kib_before": rss_before,
            "rss_kib_after": rss_after,
            "cpu": cpu,
        })
    );
    if errors > 0 {
        bail!("{errors} errors");
    }
    Ok(())
}

/// A member: counts presence events until `stop`.
async fn member(mut c: raw::RawClient, n: Arc<Counters>, mut stop: watch::Receiver<bool>) {
    let hb = raw::heartbeat();
    let mut beat = tokio::time::interval(raw::HEARTBEAT_EVERY);
    loop {
        tokio::select! {
            m = c.ws.next() => match m {
                Some(Ok(Message::Binary(b))) => {
                    for m in raw::decode(b) {
                        let Ok(m) = m else {
                            n.errors.fetch_add(1, Ordering::Relaxed);
                            break;
                        };
                        if let Some(p) = m.presence {
                            n.events.fetch_add(1, Ordering::Relaxed);
                            let carried = match &p.interval {
                                Some(i) => {
                                    n.intervals.fetch_add(1, Ordering::Relaxed);
                                    (i.join.len() + i.leave.len()) as u64
                                }
                                None => 1,
                            };
                            n.changes.fetch_add(carried, Ordering::Relaxed);
                        } else if m.closing.is_some() || m.error.is_some() {
                            n.errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                Some(Ok(_)) => {}
                _ => {
                    n.errors.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            },
            _ = beat.tick() => {
                if c.ws.send(hb.clone()).await.is_err() {
                    return;
                }
            }
            _ = stop.changed() => break,
        }
    }
    c.logout().await;
}

/// A churner: subscribes and unsubscribes in turn on every tick until `stop`.
async fn churner(
    c: raw::RawClient,
    channel: String,
    tick: tokio::time::Interval,
    n: Arc<Counters>,
    stop: watch::Receiver<bool>,
) {
    let sent = c
        .pump(tick, stop, &n.errors, |c, i| c.toggle(&channel, i % 2 == 0))
        .await;
    n.churned.fetch_add(sent, Ordering::Relaxed);
}
