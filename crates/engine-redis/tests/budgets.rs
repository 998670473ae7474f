//! The per-app budgets on Redis beyond the conformance kit: they are shared by every
//! node on one Redis, the recovery-log bytes come back once a log ages out, and the
//! positions of idle channels past `swept_positions` are forgotten (a gap on resume).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{RedisServer, config, eventually};
use switchboard_engine::conformance::publication;
use switchboard_engine::{
    AppBudgets, Broker, ChannelKey, ChannelKind, EngineError, PublishOptions, Retention,
};
use switchboard_engine_redis::{RedisConfig, RedisEngine};

fn ch(name: &str) -> ChannelKey {
    ChannelKey::new("app", ChannelKind::Message, name)
}

fn big() -> switchboard_engine::Publication {
    publication("p", &"x".repeat(60))
}

async fn engine(c: RedisConfig, budgets: AppBudgets) -> Arc<RedisEngine> {
    let e = RedisEngine::connect_with(c).await.expect("connect");
    e.set_budgets(Arc::new(move |_: &str| budgets));
    e
}

/// Two nodes on one Redis share one app's recovery-log budget, and the bytes of a log
/// that aged out count no more (its channel never publishes again).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_log_budget_is_shared_by_every_node_and_freed_when_logs_age_out() {
    let server = RedisServer::start();
    let mut ca = config(&server, "a");
    ca.retention = Retention {
        max_count: 100,
        max_age: Duration::from_millis(200),
    };
    let mut cb = ca.clone();
    cb.node_id = "b".into();
    let budgets = AppBudgets {
        recovery_log_bytes: 100,
        ..Default::default()
    };
    let (a, b) = (engine(ca, budgets).await, engine(cb, budgets).await);
    let none = PublishOptions::default();
    a.publish(&ch("one"), big(), &none).await.expect("fits");
    let refused = b.publish(&ch("two"), big(), &none).await;
    assert!(
        matches!(&refused, Err(EngineError::OverBudget(r)) if r.contains("max_recovery_log_bytes")),
        "node b sees node a's bytes: {refused:?}"
    );
    // Once channel one's log is past its age (and its key expired), its bytes are free.
    let started = Instant::now();
    let (b, none) = (&b, &none);
    eventually(20, "channel one's bytes to be given back", || async move {
        b.publish(&ch("two"), big(), none).await.is_ok()
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "not before the log aged out"
    );
}

/// Past `swept_positions` idle channels (nothing published for the log's age), the
/// oldest idle channel's position is forgotten: it comes back with a new epoch, so a
/// client resuming in it is told of a gap; the other idle channel keeps its position.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_positions_past_the_budget_are_forgotten_oldest_first() {
    let server = RedisServer::start();
    let mut c = config(&server, "a");
    c.retention = Retention {
        max_count: 100,
        max_age: Duration::from_millis(200),
    };
    let e = engine(
        c,
        AppBudgets {
            swept_positions: 1,
            ..Default::default()
        },
    )
    .await;
    let none = PublishOptions::default();
    let old = e
        .publish(&ch("old"), publication("p", "1"), &none)
        .await
        .unwrap();
    // "old" is older by at least a millisecond of Redis time (its epoch is the Redis
    // time, in µs, at which it was created; Redis runs on this machine's clock).
    let created_ms = old.position.epoch / 1000;
    eventually(
        20,
        "the clock to pass the old channel's millisecond",
        || async move {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            now.is_ok_and(|d| d.as_millis() as u64 > created_ms + 1)
        },
    )
    .await;
    let newer = e
        .publish(&ch("newer"), publication("p", "1"), &none)
        .await
        .unwrap();
    // Channel "busy" keeps publishing; once both others are idle, "old" goes.
    let (e, none, old_epoch) = (&e, &none, old.position.epoch);
    eventually(
        20,
        "the oldest idle position to be forgotten",
        || async move {
            e.publish(&ch("busy"), publication("p", "x"), none)
                .await
                .unwrap();
            e.position(&ch("old")).await.unwrap().epoch != old_epoch
        },
    )
    .await;
    let r = e.recover(&ch("old"), old.position, 10).await.unwrap();
    assert!(!r.complete, "resuming in a forgotten channel is a gap");
    assert_eq!(
        e.position(&ch("newer")).await.unwrap(),
        newer.position,
        "within the budget an idle channel keeps its position"
    );
}
