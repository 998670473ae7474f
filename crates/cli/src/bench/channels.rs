//! `bench channels`: C channels with S subscribers each and one open-loop publisher
//! per channel at R msg/s (publishers start staggered over one period). Reports
//! deliveries/s, publish→delivery latency, and missing / out-of-order counts (both
//! must be 0).

use super::setup::{Target, login, login_all};
use super::subscriber::{SubResult, Totals, drain_and_collect, encode_payload, subscribe_all};
use super::{raw, report};
use anyhow::bail;
use clap::Args;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use switchboard_client::{Client, PublishOptions};
use tokio::sync::watch;

/// `bench channels` flags.
#[derive(Args)]
pub struct ChannelsArgs {
    #[command(flatten)]
    target: Target,
    /// Channels.
    #[arg(long, default_value_t = 100)]
    channels: u32,
    /// Subscribers of each channel.
    #[arg(long, default_value_t = 10)]
    subscribers_per_channel: u32,
    /// Messages per second published to each channel.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Payload bytes (at least 20).
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Channel name prefix (channels are PREFIX-0, PREFIX-1, ...).
    #[arg(long, default_value = "bench-ch")]
    prefix: String,
    /// Subscribers and publishers are bare WebSocket connections, not SDK clients.
    #[arg(long)]
    raw: bool,
}

enum Publisher {
    Raw(Box<raw::RawClient>),
    Sdk(Client),
}

#[derive(Default)]
struct Counters {
    delivered: AtomicU64,
    errors: AtomicU64,
}

pub(super) async fn run(a: ChannelsArgs) -> anyhow::Result<()> {
    if a.rate <= 0.0 || a.channels == 0 {
        bail!("--rate and --channels must be positive");
    }
    let (url, app, cert) = super::setup::target(&a.target).await?;
    let (c, s) = (a.channels, a.subscribers_per_channel);
    eprintln!(
        "connecting {} {} subscribers on {c} channels and {c} publishers to {url}",
        c * s,
        if a.raw { "raw" } else { "SDK" },
    );
    let meter = a.target.cpu_meter();
    let channel = |i: u32| format!("{}-{i}", a.prefix);
    // Subscriber i listens to channel i % C.
    let subs = subscribe_all(&url, &app, cert.as_deref(), a.raw, c * s, |i| {
        (format!("bench-chsub-{i}"), channel(i % c))
    })
    .await?;
    let pubs = login_all(c, 64, |i| {
        let (url, app, cert, raw) = (&url, &app, cert.as_deref(), a.raw);
        async move {
            let user = format!("bench-chpub-{i}");
            anyhow::Ok(if raw {
                Publisher::Raw(Box::new(
                    raw::RawClient::login(url, app, cert, &user).await?,
                ))
            } else {
                Publisher::Sdk(login(url, app, cert, &user).await?)
            })
        }
    })
    .await?;
    let counters = Arc::new(Counters::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let (pub_stop_tx, pub_stop_rx) = watch::channel(false);
    let sub_tasks: Vec<_> = subs
        .into_iter()
        .enumerate()
        .map(|(i, sub)| {
            let counters = counters.clone();
            let mine = i as u32 % c;
            sub.spawn(
                SubResult::new(1),
                stop_rx.clone(),
                move |r, p, seq, sent| {
                    if p == mine {
                        r.observe(0, seq, sent);
                        counters.delivered.fetch_add(1, Ordering::Relaxed);
                    } else {
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                    }
                },
            )
        })
        .collect();
    let period = Duration::from_secs_f64(1.0 / a.rate);
    let begin = tokio::time::Instant::now();
    let pub_tasks: Vec<_> = pubs
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let first = begin + period.mul_f64(i as f64 / f64::from(c));
            let tick = tokio::time::interval_at(first, period);
            let job = PubJob {
                index: i as u32,
                channel: channel(i as u32),
                size: a.size,
                counters: counters.clone(),
            };
            tokio::spawn(job.run(p, tick, pub_stop_rx.clone()))
        })
        .collect();
    let elapsed = report::progress(a.duration, "deliveries", || {
        counters.delivered.load(Ordering::Relaxed)
    })
    .await;
    let measured = counters.delivered.load(Ordering::Relaxed);
    let _ = pub_stop_tx.send(true);
    let mut published = 0u64;
    for t in pub_tasks {
        published += t.await?;
    }
    let expected = published * u64::from(s);
    let Totals {
        hist,
        received,
        out_of_order,
        gaps,
    } = drain_and_collect(&counters.delivered, expected, &stop_tx, sub_tasks).await?;
    let missing = expected.saturating_sub(received);
    let errors = counters.errors.load(Ordering::Relaxed) + gaps;
    let rate = measured as f64 / elapsed.as_secs_f64();
    println!(
        "channels: {c} channels × {s} {} subscribers, {} msg/s each, {} B, {} s",
        if a.raw { "raw" } else { "SDK" },
        a.rate,
        a.size,
        a.duration
    );
    println!("  published        {published}");
    println!("  deliveries       {received}");
    println!("  deliveries/s     {rate:.0}");
    report::print_latency("latency", &hist);
    println!("  out of order     {out_of_order}");
    println!("  missing          {missing}");
    println!("  errors           {errors}");
    let cpu = meter.finish(received);
    println!(
        "{}",
        json!({
            "scenario": "channels",
            "raw": a.raw,
            "channels": c,
            "subscribers_per_channel": s,
            "rate": a.rate,
            "size": a.size,
            "duration_s": a.duration,
            "published": published,
            "deliveries": received,
            "deliveries_per_s": rate.round(),
            "latency_ms": report::latency_json(&hist),
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

/// One channel's publisher.
struct PubJob {
    index: u32,
    channel: String,
    size: usize,
    counters: Arc<Counters>,
}

impl PubJob {
    /// Publishes on every tick until `stop`; returns how many it published.
    async fn run(
        self,
        p: Publisher,
        mut tick: tokio::time::Interval,
        mut stop: watch::Receiver<bool>,
    ) -> u64 {
        let mut seq = 0u64;
        let error = || {
            self.counters.errors.fetch_add(1, Ordering::Relaxed);
        };
        match p {
            Publisher::Sdk(client) => {
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = stop.changed() => break,
                    }
                    let payload = encode_payload(self.size, self.index, seq, report::clock_us());
                    match client
                        .publish(&self.channel, payload, PublishOptions::default())
                        .await
                    {
                        Ok(_) => seq += 1,
                        Err(_) => error(),
                    }
                }
                let _ = client.logout().await;
            }
            Publisher::Raw(c) => {
                let (size, index, channel) = (self.size, self.index, &self.channel);
                seq = c
                    .pump(tick, stop, &self.counters.errors, |c, seq| {
                        let payload = encode_payload(size, index, seq, report::clock_us());
                        c.publish(false, channel, payload)
                    })
                    .await;
            }
        }
        seq
    }
}
