//! `bench topic`: one stream channel, N publishers each streaming at R msg/s into one
//! topic, M subscribers each following K of the publishers (subscriber j follows
//! publishers j·K … j·K+K−1, modulo N). All clients are raw connections. Reports
//! deliveries/s, publish→delivery latency, and missing / out-of-order counts per
//! followed publisher (both must be 0), plus deliveries from publishers a subscriber
//! does not follow (must be 0, R103).

use super::setup::{Target, login_all};
use super::subscriber::{SubResult, Subscriber, Totals, drain_and_collect, encode_payload};
use super::{raw, report};
use anyhow::bail;
use clap::Args;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;

/// `bench topic` flags.
#[derive(Args)]
pub struct TopicArgs {
    #[command(flatten)]
    target: Target,
    /// Publishers in the topic.
    #[arg(long, default_value_t = 8)]
    publishers: u32,
    /// Messages per second of each publisher.
    #[arg(long, default_value_t = 30.0)]
    rate: f64,
    /// Subscribers (members following publishers of the topic).
    #[arg(long, default_value_t = 200)]
    subscribers: u32,
    /// Publishers each subscriber follows (at most 64, R106).
    #[arg(long, default_value_t = 4)]
    follow: u32,
    /// Payload bytes (at least 20).
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Stream channel name.
    #[arg(long, default_value = "bench-stream")]
    channel: String,
    /// Topic name.
    #[arg(long, default_value = "data")]
    topic: String,
}

#[derive(Default)]
struct Counters {
    delivered: AtomicU64,
    errors: AtomicU64,
}

/// Publishers followed by subscriber `j`.
fn followed(j: u32, k: u32, n: u32) -> Vec<u32> {
    let mut v: Vec<u32> = (0..k).map(|x| (j * k + x) % n).collect();
    v.sort_unstable();
    v.dedup();
    v
}

pub(super) async fn run(a: TopicArgs) -> anyhow::Result<()> {
    if a.rate <= 0.0 || a.publishers == 0 || a.follow == 0 {
        bail!("--rate, --publishers and --follow must be positive");
    }
    let (url, app, cert) = super::setup::target(&a.target).await?;
    let (n, m, k) = (a.publishers, a.subscribers, a.follow.min(a.publishers));
    eprintln!(
        "connecting {n} publishers and {m} subscribers (each following {k}) to {url}, \
         channel {} topic {}",
        a.channel, a.topic
    );
    let meter = a.target.cpu_meter();
    let (channel, topic) = (a.channel.as_str(), a.topic.as_str());
    let pubs = login_all(n, 64, |i| {
        let (url, app, cert) = (&url, &app, cert.as_deref());
        async move {
            let user = format!("bench-tpub-{i}");
            let mut c = raw::RawClient::login(url, app, cert, &user).await?;
            c.join(app, cert, &user, channel).await?;
            c.join_topic(channel, topic).await?;
            anyhow::Ok(c)
        }
    })
    .await?;
    let subs = login_all(m, 64, |j| {
        let (url, app, cert) = (&url, &app, cert.as_deref());
        async move {
            let user = format!("bench-tsub-{j}");
            let mut c = raw::RawClient::login(url, app, cert, &user).await?;
            c.join(app, cert, &user, channel).await?;
            let users = followed(j, k, n)
                .into_iter()
                .map(|p| format!("bench-tpub-{p}"))
                .collect();
            c.subscribe_topic(channel, topic, users).await?;
            anyhow::Ok(Subscriber::Raw(Box::new(c)))
        }
    })
    .await?;
    let counters = Arc::new(Counters::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let (pub_stop_tx, pub_stop_rx) = watch::channel(false);
    let sub_tasks: Vec<_> = subs
        .into_iter()
        .enumerate()
        .map(|(j, sub)| {
            let counters = counters.clone();
            let mine = followed(j as u32, k, n);
            sub.spawn(
                SubResult::new(n as usize),
                stop_rx.clone(),
                move |r, p, seq, sent| {
                    if mine.binary_search(&p).is_ok() {
                        r.observe(p as usize, seq, sent);
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
        .map(|(i, c)| {
            let first = begin + period.mul_f64(i as f64 / f64::from(n));
            let tick = tokio::time::interval_at(first, period);
            let job = PubJob {
                index: i as u32,
                channel: a.channel.clone(),
                topic: a.topic.clone(),
                size: a.size,
                counters: counters.clone(),
            };
            tokio::spawn(job.run(c, tick, pub_stop_rx.clone()))
        })
        .collect();
    let elapsed = report::progress(a.duration, "deliveries", || {
        counters.delivered.load(Ordering::Relaxed)
    })
    .await;
    let measured = counters.delivered.load(Ordering::Relaxed);
    let _ = pub_stop_tx.send(true);
    let mut published = Vec::with_capacity(n as usize);
    for t in pub_tasks {
        published.push(t.await?);
    }
    let followers_of = |p: u32| (0..m).filter(|&j| followed(j, k, n).contains(&p)).count();
    let expected: u64 = (0..n)
        .map(|p| published[p as usize] * followers_of(p) as u64)
        .sum();
    let Totals {
        hist,
        received,
        out_of_order,
        gaps,
    } = drain_and_collect(&counters.delivered, expected, &stop_tx, sub_tasks).await?;
    let missing = expected.saturating_sub(received);
    let errors = counters.errors.load(Ordering::Relaxed) + gaps;
    let rate = measured as f64 / elapsed.as_secs_f64();
    let total_published: u64 = published.iter().sum();
    println!(
        "topic: {n} publishers × {} msg/s, {m} subscribers following {k} each, {} B, {} s",
        a.rate, a.size, a.duration
    );
    println!("  published        {total_published}");
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
            "scenario": "topic",
            "publishers": n,
            "rate": a.rate,
            "subscribers": m,
            "follow": k,
            "size": a.size,
            "duration_s": a.duration,
            "published": total_published,
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

/// One topic publisher.
struct PubJob {
    index: u32,
    channel: String,
    topic: String,
    size: usize,
    counters: Arc<Counters>,
}

impl PubJob {
    /// Publishes on every tick until `stop`; returns how many it published.
    async fn run(
        self,
        c: raw::RawClient,
        tick: tokio::time::Interval,
        stop: watch::Receiver<bool>,
    ) -> u64 {
        c.pump(tick, stop, &self.counters.errors, |c, seq| {
            let payload = encode_payload(self.size, self.index, seq, report::clock_us());
            c.publish_topic(&self.channel, &self.topic, payload)
        })
        .await
    }
}
