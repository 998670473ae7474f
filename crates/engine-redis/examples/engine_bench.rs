//! Engine-level figures for docs/scaling.md: publish throughput through the Redis engine
//! (64 concurrent publishers), delivery throughput to a second node, and cross-node
//! publish → delivery latency at 20 msg/s. Both "nodes" are engine instances in this
//! process, so they share one clock.
//!
//! `cargo run --release -p switchboard-engine-redis --example engine_bench -- redis://127.0.0.1:PORT`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard_engine::{
    Broker, ChannelKey, ChannelKind, MessageKind, Publication, PublicationHandler, PublishOptions,
};
use switchboard_engine_redis::{RedisConfig, RedisEngine};

const PUBLISHES: usize = 20_000;
const PUBLISHERS: usize = 64;
const LATENCY_SAMPLES: usize = 100;

struct Count {
    n: AtomicU64,
    start: Instant,
    latencies: Mutex<Vec<Duration>>,
}

impl PublicationHandler for Count {
    fn on_publication(&self, _: &ChannelKey, p: &Arc<Publication>) {
        self.n.fetch_add(1, Ordering::Relaxed);
        if let Ok(b) = <[u8; 8]>::try_from(&p.payload[..]) {
            let sent = Duration::from_nanos(u64::from_be_bytes(b));
            let now = self.start.elapsed();
            self.latencies
                .lock()
                .unwrap()
                .push(now.saturating_sub(sent));
        }
    }
}

fn publication(payload: Vec<u8>) -> Publication {
    Publication {
        publisher: "bench".into(),
        kind: MessageKind::Binary,
        custom_type: "".into(),
        payload: payload.into(),
        topic: "".into(),
        send_ts: 0,
        timestamp_ms: 1,
        position: Default::default(),
    }
}

async fn publish_many(e: &Arc<RedisEngine>, ch: &ChannelKey) -> f64 {
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..PUBLISHERS {
        let (e, ch) = (e.clone(), ch.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..PUBLISHES / PUBLISHERS {
                e.publish(&ch, publication(vec![b'x'; 64]), &PublishOptions::default())
                    .await
                    .expect("publish");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    (PUBLISHES / PUBLISHERS * PUBLISHERS) as f64 / t.elapsed().as_secs_f64()
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    v[((v.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1e3
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let prefix = format!("bench{}:", std::process::id());
    let node = |id: &str| {
        let mut c = RedisConfig::new(url.clone(), id);
        c.prefix = prefix.clone();
        c
    };
    let a = RedisEngine::connect_with(node("a"))
        .await
        .expect("connect a");
    let b = RedisEngine::connect_with(node("b"))
        .await
        .expect("connect b");
    let start = Instant::now();
    let seen_b = Arc::new(Count {
        n: AtomicU64::new(0),
        start,
        latencies: Mutex::new(Vec::new()),
    });
    b.set_handler(seen_b.clone());

    let quiet = ChannelKey::new("bench", ChannelKind::Message, "nobody");
    let rate = publish_many(&a, &quiet).await;
    println!(
        "publish, no subscriber:           {rate:>9.0} publishes/s ({PUBLISHERS} concurrent publishers)"
    );

    let ch = ChannelKey::new("bench", ChannelKind::Message, "fanout");
    b.subscribe_node(&ch).await.expect("subscribe");
    let t = Instant::now();
    let rate = publish_many(&a, &ch).await;
    while seen_b.n.load(Ordering::Relaxed) < (PUBLISHES / PUBLISHERS * PUBLISHERS) as u64 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let delivered = seen_b.n.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64();
    println!(
        "publish, other node subscribed:   {rate:>9.0} publishes/s, {delivered:.0} deliveries/s at the other node"
    );

    seen_b.latencies.lock().unwrap().clear();
    let lat = ChannelKey::new("bench", ChannelKind::Message, "latency");
    b.subscribe_node(&lat).await.expect("subscribe");
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    for _ in 0..LATENCY_SAMPLES {
        tick.tick().await;
        let sent = start.elapsed().as_nanos() as u64;
        a.publish(
            &lat,
            publication(sent.to_be_bytes().to_vec()),
            &PublishOptions::default(),
        )
        .await
        .expect("publish");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen_b.latencies.lock().unwrap().len() < LATENCY_SAMPLES && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut l = seen_b.latencies.lock().unwrap().clone();
    println!(
        "cross-node publish -> delivery at 20 msg/s: p50 {:.2} ms, p99 {:.2} ms ({} samples)",
        pct(&mut l, 0.5),
        pct(&mut l, 0.99),
        l.len()
    );
    println!("stats of the receiving node: {:?}", b.stats());
}
