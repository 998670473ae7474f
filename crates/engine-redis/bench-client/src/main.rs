//! `redis` (ConnectionManager, multiplexed) vs `fred` on one local redis-server:
//! pipelined PUBLISH and EVALSHA throughput (batches of 100 in one pipeline, and 64
//! concurrent callers on one connection), and sequential round-trip latency.
//! Usage: `redis-client-bench redis://127.0.0.1:PORT [runs]`; prints one line per run and
//! the medians.

use fred::interfaces::LuaInterface;
use fred::prelude::*;
use std::time::{Duration, Instant};

const OPS: usize = 20_000;
const BATCH: usize = 100;
const CONCURRENCY: usize = 64;
const LAT_SAMPLES: usize = 3_000;
const SCRIPT: &str =
    "local o = redis.call('INCR', KEYS[1]) redis.call('PUBLISH', KEYS[1], ARGV[1]) return o";

#[derive(Debug, Clone, Copy, Default)]
struct Run {
    publish_pipe: f64,
    evalsha_pipe: f64,
    evalsha_conc: f64,
    rtt_p50_us: f64,
    rtt_p99_us: f64,
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn pct(mut v: Vec<Duration>, p: f64) -> f64 {
    v.sort();
    v[((v.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1e6
}

async fn run_redis(url: &str) -> Run {
    let client = redis::Client::open(url).unwrap();
    let mut conn = redis::aio::ConnectionManager::new(client).await.unwrap();
    let script = redis::Script::new(SCRIPT);
    script.load_async(&mut conn).await.unwrap();
    let sha = script.get_hash().to_string();
    let payload = vec![b'x'; 64];
    let mut r = Run::default();

    let t = Instant::now();
    for _ in 0..OPS / BATCH {
        let mut p = redis::pipe();
        for _ in 0..BATCH {
            p.cmd("PUBLISH").arg("bench:ch").arg(&payload);
        }
        let _: Vec<i64> = p.query_async(&mut conn).await.unwrap();
    }
    r.publish_pipe = rate(OPS, t.elapsed());

    let t = Instant::now();
    for _ in 0..OPS / BATCH {
        let mut p = redis::pipe();
        for _ in 0..BATCH {
            p.cmd("EVALSHA")
                .arg(&sha)
                .arg(1)
                .arg("bench:k")
                .arg(&payload);
        }
        let _: Vec<i64> = p.query_async(&mut conn).await.unwrap();
    }
    r.evalsha_pipe = rate(OPS, t.elapsed());

    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let mut conn = conn.clone();
        let (sha, payload) = (sha.clone(), payload.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..OPS / CONCURRENCY {
                let _: i64 = redis::cmd("EVALSHA")
                    .arg(&sha)
                    .arg(1)
                    .arg("bench:k")
                    .arg(&payload)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    r.evalsha_conc = rate(OPS / CONCURRENCY * CONCURRENCY, t.elapsed());

    let mut lat = Vec::with_capacity(LAT_SAMPLES);
    for _ in 0..LAT_SAMPLES {
        let t = Instant::now();
        let _: i64 = redis::cmd("EVALSHA")
            .arg(&sha)
            .arg(1)
            .arg("bench:k")
            .arg(&payload)
            .query_async(&mut conn)
            .await
            .unwrap();
        lat.push(t.elapsed());
    }
    r.rtt_p50_us = pct(lat.clone(), 0.5);
    r.rtt_p99_us = pct(lat, 0.99);
    r
}

async fn run_fred(url: &str) -> Run {
    let config = Config::from_url(url).unwrap();
    let client = Builder::from_config(config).build().unwrap();
    client.init().await.unwrap();
    let sha: String = client.script_load(SCRIPT).await.unwrap();
    let payload = vec![b'x'; 64];
    let mut r = Run::default();

    let t = Instant::now();
    for _ in 0..OPS / BATCH {
        let p = client.pipeline();
        for _ in 0..BATCH {
            let _: () = p.publish("bench:ch", payload.as_slice()).await.unwrap();
        }
        let _: Vec<i64> = p.all().await.unwrap();
    }
    r.publish_pipe = rate(OPS, t.elapsed());

    let t = Instant::now();
    for _ in 0..OPS / BATCH {
        // fred's Pipeline has no script commands; a batch of concurrent calls is what it
        // pipelines on its connection instead.
        let batch = (0..BATCH)
            .map(|_| client.evalsha::<i64, _, _, _>(sha.as_str(), "bench:k", payload.as_slice()));
        for r in futures_util::future::join_all(batch).await {
            r.unwrap();
        }
    }
    r.evalsha_pipe = rate(OPS, t.elapsed());

    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let client = client.clone();
        let (sha, payload) = (sha.clone(), payload.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..OPS / CONCURRENCY {
                let _: i64 = client
                    .evalsha(sha.as_str(), "bench:k", payload.as_slice())
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    r.evalsha_conc = rate(OPS / CONCURRENCY * CONCURRENCY, t.elapsed());

    let mut lat = Vec::with_capacity(LAT_SAMPLES);
    for _ in 0..LAT_SAMPLES {
        let t = Instant::now();
        let _: i64 = client
            .evalsha(sha.as_str(), "bench:k", payload.as_slice())
            .await
            .unwrap();
        lat.push(t.elapsed());
    }
    r.rtt_p50_us = pct(lat.clone(), 0.5);
    r.rtt_p99_us = pct(lat, 0.99);
    let _ = client.quit().await;
    r
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn show(name: &str, r: &Run) {
    println!(
        "{name:6} publish pipelined {:>9.0}/s  evalsha pipelined {:>9.0}/s  evalsha x{CONCURRENCY} concurrent {:>9.0}/s  rtt p50 {:>6.1} us  p99 {:>6.1} us",
        r.publish_pipe, r.evalsha_pipe, r.evalsha_conc, r.rtt_p50_us, r.rtt_p99_us
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let runs: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(3);
    let mut results: Vec<(&str, Vec<Run>)> = vec![("redis", Vec::new()), ("fred", Vec::new())];
    for i in 0..runs {
        // Alternate the order so neither client always runs on a warmer server.
        let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
        for k in order {
            let r = if k == 0 {
                run_redis(&url).await
            } else {
                run_fred(&url).await
            };
            show(results[k].0, &r);
            results[k].1.push(r);
        }
    }
    println!("medians of {runs} runs ({OPS} ops each, batches of {BATCH}, 64-byte payload):");
    for (name, rs) in &results {
        let m = |f: fn(&Run) -> f64| median(rs.iter().map(f).collect());
        show(
            name,
            &Run {
                publish_pipe: m(|r| r.publish_pipe),
                evalsha_pipe: m(|r| r.evalsha_pipe),
                evalsha_conc: m(|r| r.evalsha_conc),
                rtt_p50_us: m(|r| r.rtt_p50_us),
                rtt_p99_us: m(|r| r.rtt_p99_us),
            },
        );
    }
}
