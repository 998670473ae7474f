//! `bench connections`: opens N raw logged-in connections (at most `--concurrency`
//! logins at a time), keeps them alive with heartbeats for `--duration` seconds, and
//! reports the login rate, login latency and memory per connection: the server's RSS
//! growth with `--server-pid`, or this process's (client and server together) when the
//! server runs in-process. The open-file limit is raised to the hard limit when needed,
//! and N is lowered to fit under it with a margin.

use super::setup::Target;
use super::{raw, report};
use anyhow::bail;
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// File descriptors kept free for everything else.
const FD_MARGIN: u64 = 256;

/// `bench connections` flags.
#[derive(Args)]
pub struct ConnectionsArgs {
    #[command(flatten)]
    target: Target,
    /// Connections to open.
    #[arg(long, default_value_t = 1000)]
    count: u64,
    /// Seconds to hold them once all are open.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Logins in progress at once.
    #[arg(long, default_value_t = 128)]
    concurrency: usize,
    /// User ids are this followed by the connection's number; give each load process
    /// its own when several share one cluster (one session per user id across nodes).
    #[arg(long, default_value = "bench-conn-")]
    user_prefix: String,
}

/// (soft, hard) open-file limits of this process.
fn nofile() -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut f = line.split_whitespace().skip(3);
    let parse = |s: Option<&str>| match s? {
        "unlimited" => Some(u64::MAX),
        v => v.parse().ok(),
    };
    Some((parse(f.next())?, parse(f.next())?))
}

/// Raises the soft open-file limit towards `want` (up to the hard limit) with
/// `prlimit`, and returns the soft limit in force afterwards.
pub(super) fn raise_nofile(want: u64) -> Option<u64> {
    let (soft, hard) = nofile()?;
    if soft >= want {
        return Some(soft);
    }
    let new = want.min(hard);
    let hard_s = if hard == u64::MAX {
        "unlimited".to_string()
    } else {
        hard.to_string()
    };
    let ok = std::process::Command::new("prlimit")
        .arg("--pid")
        .arg(std::process::id().to_string())
        .arg(format!("--nofile={new}:{hard_s}"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("could not raise the open-file limit (prlimit); it stays {soft}");
    }
    nofile().map(|(s, _)| s)
}

#[derive(Default)]
struct Counters {
    opened: AtomicU64,
    dropped: AtomicU64,
    errors: AtomicU64,
}

pub(super) async fn run(a: ConnectionsArgs) -> anyhow::Result<()> {
    let in_process = a.target.in_process();
    // In-process, every connection holds a descriptor on both ends.
    let per_conn = if in_process { 2 } else { 1 };
    let soft = raise_nofile(a.count * per_conn + FD_MARGIN).unwrap_or(1024);
    let count = a.count.min(soft.saturating_sub(FD_MARGIN) / per_conn);
    if count < a.count {
        eprintln!(
            "open-file limit {soft}: opening {count} connections instead of {}",
            a.count
        );
    }
    if count == 0 {
        bail!("the open-file limit ({soft}) leaves no room for connections");
    }
    let (url, app, cert) = super::setup::target(&a.target).await?;
    // RSS of the server, or of this process when the server runs in it.
    let rss_pid = match (a.target.server_pid, in_process) {
        (Some(p), _) => Some(Some(p)),
        (None, true) => Some(None),
        (None, false) => None,
    };
    if in_process {
        // Let the in-process server start before the baseline.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rss_before = rss_pid.and_then(report::rss_kib);
    eprintln!("opening {count} raw connections to {url}");
    let meter = a.target.cpu_meter();
    let counters = Arc::new(Counters::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let bar = report::count_bar(count, "logins");
    let begin = Instant::now();
    let results = futures_util::stream::iter(0..count)
        .map(|i| {
            let (url, app, cert, prefix) = (&url, &app, cert.as_deref(), &a.user_prefix);
            let (counters, stop, bar) = (counters.clone(), stop_rx.clone(), &bar);
            async move {
                let t0 = Instant::now();
                let r = raw::RawClient::login(url, app, cert, &format!("{prefix}{i}")).await;
                let took = t0.elapsed().as_micros() as u64;
                bar.inc(1);
                match r {
                    Ok(c) => {
                        counters.opened.fetch_add(1, Ordering::Relaxed);
                        Ok((took, tokio::spawn(hold(c, stop, counters))))
                    }
                    Err(e) => {
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                        Err(e)
                    }
                }
            }
        })
        .buffer_unordered(a.concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    let login_time = begin.elapsed();
    bar.finish_and_clear();
    let mut hist = report::histogram();
    let mut tasks = Vec::new();
    let mut first_error = None;
    for r in results {
        match r {
            Ok((took, t)) => {
                let _ = hist.record(took.max(1));
                tasks.push(t);
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let opened = tasks.len() as u64;
    // Let the server settle (sessions, buffers) before reading its memory.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = rss_pid.and_then(report::rss_kib);
    let live = || opened - counters.dropped.load(Ordering::Relaxed);
    report::progress(a.duration, "drops", || {
        counters.dropped.load(Ordering::Relaxed)
    })
    .await;
    let live_at_end = live();
    let _ = stop_tx.send(true);
    for t in tasks {
        t.await?;
    }
    let dropped = counters.dropped.load(Ordering::Relaxed);
    let errors = counters.errors.load(Ordering::Relaxed);
    let logins_per_s = opened as f64 / login_time.as_secs_f64();
    let rss_growth = match (rss_before, rss_after) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b)),
        _ => None,
    };
    let per_conn_bytes = rss_growth
        .filter(|_| opened > 0)
        .map(|g| (g * 1024) as f64 / opened as f64);
    let rss_of = match rss_pid {
        Some(Some(_)) => Some("server"),
        Some(None) => Some("process (load and server)"),
        None => None,
    };
    println!(
        "connections: {opened} raw connections opened of {count}, held {} s",
        a.duration
    );
    println!(
        "  login time       {:.2} s ({logins_per_s:.0} logins/s)",
        login_time.as_secs_f64()
    );
    report::print_latency("login", &hist);
    if let (Some(what), Some(b), Some(after)) = (rss_of, rss_before, rss_after) {
        println!("  RSS {what}: {b} KiB → {after} KiB");
        if let Some(p) = per_conn_bytes {
            println!("  RSS per conn     {p:.0} B");
        }
    }
    println!("  live at end      {live_at_end}");
    println!("  dropped          {dropped}");
    println!("  login errors     {errors}");
    let cpu = meter.finish(opened);
    println!(
        "{}",
        json!({
            "scenario": "connections",
            "requested": a.count,
            "count": count,
            "opened": opened,
            "duration_s": a.duration,
            "concurrency": a.concurrency,
            "login_s": (login_time.as_secs_f64() * 1000.0).round() / 1000.0,
            "logins_per_s": logins_per_s.round(),
            "login_latency_ms": report::latency_json(&hist),
            "rss_of": rss_of,
            "rss_before_kib": rss_before,
            "rss_after_kib": rss_after,
            "rss_per_connection_bytes": per_conn_bytes.map(f64::round),
            "live_at_end": live_at_end,
            "dropped": dropped,
            "errors": errors,
            "cpu": cpu,
        })
    );
    if let Some(e) = first_error {
        bail!("{errors} logins failed; first: {e:#}");
    }
    if dropped > 0 {
        bail!("{dropped} connections dropped while held");
    }
    Ok(())
}

/// Keeps one connection alive until `stop`, then logs out. A connection that ends by
/// itself counts as dropped.
async fn hold(mut c: raw::RawClient, mut stop: watch::Receiver<bool>, counters: Arc<Counters>) {
    let hb = raw::heartbeat();
    let mut tick = tokio::time::interval(raw::HEARTBEAT_EVERY);
    loop {
        tokio::select! {
            m = c.ws.next() => match m {
                Some(Ok(_)) => {}
                _ => {
                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            },
            _ = tick.tick() => {
                if c.ws.send(hb.clone()).await.is_err() {
                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
            _ = stop.changed() => break,
        }
    }
    c.logout().await;
}
