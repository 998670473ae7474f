//! What is Redis-specific: several engine instances ("nodes") on one real
//! `redis-server`, a pub/sub connection killed or wedged, and Redis restarted mid-test.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{RedisServer, config};
use switchboard_engine::conformance::publication;
use switchboard_engine::{
    Acquire, Broker, ChannelKey, ChannelKind, Claim, HandoverHandler, KickHandler, Locks,
    MetadataStore, MetadataWrite, NO_CHECK, Presence, Publication, PublicationHandler,
    PublishOptions, Rejection, Sessions, State, StreamPosition, WriteItem, WriteOp,
};
use switchboard_engine_redis::{RedisConfig, RedisEngine};

/// Records every delivered position per channel.
#[derive(Default)]
struct Seen {
    positions: Mutex<Vec<(ChannelKey, StreamPosition, String)>>,
    slow: AtomicBool,
}

impl PublicationHandler for Seen {
    fn on_publication(&self, channel: &ChannelKey, p: &Arc<Publication>) {
        if self.slow.load(Ordering::Relaxed) {
            // Test only: a handler slower than the publishers, to overflow the queue.
            std::thread::sleep(Duration::from_micros(500));
        }
        let body = String::from_utf8_lossy(&p.payload).into_owned();
        self.positions
            .lock()
            .unwrap()
            .push((channel.clone(), p.position, body));
    }
}

impl Seen {
    fn of(&self, ch: &ChannelKey) -> Vec<StreamPosition> {
        let v = self.positions.lock().unwrap();
        v.iter()
            .filter(|(c, _, _)| c == ch)
            .map(|(_, p, _)| *p)
            .collect()
    }

    fn bodies(&self, ch: &ChannelKey) -> Vec<String> {
        let v = self.positions.lock().unwrap();
        v.iter()
            .filter(|(c, _, _)| c == ch)
            .map(|(_, _, b)| b.clone())
            .collect()
    }
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn node(c: RedisConfig) -> (Arc<RedisEngine>, Arc<Seen>) {
    let e = RedisEngine::connect_with(c).await.expect("connect");
    let seen = Arc::new(Seen::default());
    e.set_handler(seen.clone());
    (e, seen)
}

/// Two nodes sharing one prefix on one server.
async fn two_nodes(
    server: &RedisServer,
) -> ((Arc<RedisEngine>, Arc<Seen>), (Arc<RedisEngine>, Arc<Seen>)) {
    let a = config(server, "a");
    let mut b = a.clone();
    b.node_id = "b".into();
    (node(a).await, node(b).await)
}

/// Records the lock hand-over notices a node hears.
#[derive(Default)]
struct Handovers(Mutex<Vec<(ChannelKey, String, String)>>);

impl HandoverHandler for Handovers {
    fn on_handover(&self, channel: &ChannelKey, lock: &str, user: &str) {
        let mut v = self.0.lock().unwrap();
        v.push((channel.clone(), lock.into(), user.into()));
    }
}

impl Handovers {
    fn got(&self) -> Vec<(ChannelKey, String, String)> {
        self.0.lock().unwrap().clone()
    }
}

/// Records the session kicks a node hears.
#[derive(Default)]
struct Kicks(Mutex<Vec<(String, String, String)>>);

impl KickHandler for Kicks {
    fn on_kick(&self, app: &str, user: &str, session_id: &str) {
        let mut v = self.0.lock().unwrap();
        v.push((app.into(), user.into(), session_id.into()));
    }
}

impl Kicks {
    fn got(&self) -> Vec<(String, String, String)> {
        self.0.lock().unwrap().clone()
    }
}

fn ch(name: &str) -> ChannelKey {
    ChannelKey::new("app", ChannelKind::Message, name)
}

fn consecutive(positions: &[StreamPosition], n: u64) -> bool {
    positions.iter().map(|p| p.offset).eq(1..=n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_see_each_others_publications_in_order() {
    let server = RedisServer::start();
    let ((a, seen_a), (b, seen_b)) = two_nodes(&server).await;
    let c = ch("shared");
    a.subscribe_node(&c).await.unwrap();
    b.subscribe_node(&c).await.unwrap();
    let mut tasks = Vec::new();
    for (e, tag) in [(a.clone(), "a"), (b.clone(), "b")] {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..100 {
                e.publish(
                    &c,
                    publication(tag, &format!("{tag}{i}")),
                    &PublishOptions::default(),
                )
                .await
                .expect("publish");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    eventually("both nodes to see 200 publications", || {
        seen_a.of(&c).len() >= 200 && seen_b.of(&c).len() >= 200
    })
    .await;
    assert!(
        consecutive(&seen_a.of(&c), 200),
        "node a: offsets 1..=200 once each, in order"
    );
    assert_eq!(
        seen_a.of(&c),
        seen_b.of(&c),
        "both nodes see the same sequence"
    );
    assert_eq!(seen_a.bodies(&c), seen_b.bodies(&c));
    // USER inbox: a receiver on node b makes a require_receiver publish from a succeed.
    let inbox = ChannelKey::new("app", ChannelKind::User, "bob");
    let opts = PublishOptions {
        require_receiver: true,
        ..Default::default()
    };
    assert_eq!(
        a.publish(&inbox, publication("alice", "hi"), &opts).await,
        Err(switchboard_engine::EngineError::NoReceiver)
    );
    b.subscribe_node(&inbox).await.unwrap();
    a.publish(&inbox, publication("alice", "hi"), &opts)
        .await
        .expect("a receiver on another node counts");
    eventually("bob's inbox on node b", || seen_b.of(&inbox).len() == 1).await;
}

/// A publish returns once the publishing node's own handler has the publication (as
/// with the memory engine), and its pub/sub copy arriving later is not delivered a
/// second time: node a publishes 50 times while node b publishes too; after each of
/// a's publishes its handler holds it already, and in the end each node saw every
/// offset once, in the same order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_publish_returns_after_its_own_node_delivered_it_once() {
    let server = RedisServer::start();
    let ((a, seen_a), (b, seen_b)) = two_nodes(&server).await;
    let c = ch("own");
    a.subscribe_node(&c).await.unwrap();
    b.subscribe_node(&c).await.unwrap();
    let other = {
        let (b, c) = (b.clone(), c.clone());
        tokio::spawn(async move {
            for i in 0..50 {
                b.publish(
                    &c,
                    publication("b", &format!("b{i}")),
                    &PublishOptions::default(),
                )
                .await
                .expect("publish on b");
            }
        })
    };
    for i in 0..50 {
        let body = format!("a{i}");
        let out = a
            .publish(&c, publication("a", &body), &PublishOptions::default())
            .await
            .expect("publish on a");
        let mine = seen_a
            .positions
            .lock()
            .unwrap()
            .iter()
            .filter(|(ch, p, b)| *ch == c && *p == out.position && *b == body)
            .count();
        assert_eq!(
            mine, 1,
            "a{i} is on node a's handler when its publish returns"
        );
    }
    other.await.unwrap();
    // A last publication from b reaches a after every earlier copy on a's pub/sub
    // connection (one connection, in order), so any second delivery would be seen.
    let last = b
        .publish(&c, publication("b", "last"), &PublishOptions::default())
        .await
        .unwrap();
    eventually("node a to see b's last publication", || {
        seen_a.of(&c).last() == Some(&last.position)
    })
    .await;
    eventually("node b to see all 101", || seen_b.of(&c).len() >= 101).await;
    assert!(
        consecutive(&seen_a.of(&c), 101),
        "node a: 1..=101 once each, in order"
    );
    assert_eq!(
        seen_a.bodies(&c),
        seen_b.bodies(&c),
        "the same sequence on both nodes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_rate_limit_is_shared_by_all_nodes() {
    let server = RedisServer::start();
    let ((a, _), (b, _)) = two_nodes(&server).await;
    let c = ch("rate");
    let opts = PublishOptions {
        rate_limit: Some(switchboard_engine::RateLimit {
            per_second: 1,
            burst: 4,
        }),
        ..Default::default()
    };
    let mut ok = 0;
    for i in 0..10 {
        let e = if i % 2 == 0 { &a } else { &b };
        if e.publish(&c, publication("p", "x"), &opts).await.is_ok() {
            ok += 1;
        }
    }
    // One bucket of 4 for both nodes (two buckets would accept 8 or more), plus what
    // refilled at 1/s while the loop ran.
    assert!(
        (4..=6).contains(&ok),
        "one bucket for both nodes: {ok} of 10 accepted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn presence_is_shared_and_expiry_reports_each_member_once() {
    let server = RedisServer::start();
    let ((a, _), (b, _)) = two_nodes(&server).await;
    let room = ch("room");
    for i in 0..50 {
        let e = if i % 2 == 0 { &a } else { &b };
        assert_eq!(
            e.enter(&room, &format!("u{i:02}"), false, State::new())
                .await
                .unwrap(),
            Some(true)
        );
    }
    assert_eq!(a.count(&room).await.unwrap(), 50);
    assert_eq!(
        Presence::list(&*b, &room, None, 100)
            .await
            .unwrap()
            .members
            .len(),
        50
    );
    assert_eq!(
        b.enter(&room, "u00", false, State::new()).await.unwrap(),
        None,
        "a member entered on node a is already in for node b"
    );
    // A deadline set by node a lapses node a's memberships only: the odd users and
    // u00 (moved to node b by its enter there) stay.
    for i in 0..50 {
        a.set_expiry("app", &format!("u{i:02}"), Some(1_000))
            .await
            .unwrap();
    }
    let sweep = async |at: u64| {
        // Both nodes sweep at once: every member is removed, and reported, exactly once.
        let (x, y) = tokio::join!(Presence::expire_due(&*a, at), Presence::expire_due(&*b, at));
        let mut users: Vec<String> = x
            .unwrap()
            .into_iter()
            .chain(y.unwrap())
            .map(|e| e.user.to_string())
            .collect();
        users.sort();
        users
    };
    let node_a: Vec<String> = (2..50).step_by(2).map(|i| format!("u{i:02}")).collect();
    assert_eq!(sweep(2_000).await, node_a, "node a's own members");
    assert_eq!(a.count(&room).await.unwrap(), 26);
    assert!(
        a.exit(&room, "u01").await.unwrap().is_none(),
        "u01 is node b's"
    );
    assert_eq!(a.count(&room).await.unwrap(), 26);
    for i in 0..50 {
        b.set_expiry("app", &format!("u{i:02}"), Some(1_000))
            .await
            .unwrap();
    }
    let node_b: Vec<String> = std::iter::once(0)
        .chain((1..50).step_by(2))
        .map(|i| format!("u{i:02}"))
        .collect();
    assert_eq!(sweep(2_000).await, node_b, "then node b's");
    assert_eq!(a.count(&room).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lock_is_handed_over_across_nodes() {
    let server = RedisServer::start();
    let ((a, _), (b, _)) = two_nodes(&server).await;
    let (ha, hb) = (
        Arc::new(Handovers::default()),
        Arc::new(Handovers::default()),
    );
    assert!(
        a.set_handover_handler(ha.clone()),
        "a shared engine tells of hand-overs"
    );
    assert!(b.set_handover_handler(hb.clone()));
    let c = ch("locks");
    a.set(&c, "l", 10, 8).await.unwrap().unwrap();
    assert_eq!(
        a.acquire(&c, "l", "alice", false).await.unwrap(),
        Ok(Acquire::Acquired { ttl_s: 10 })
    );
    assert_eq!(
        b.acquire(&c, "l", "bob", true).await.unwrap(),
        Ok(Acquire::Queued)
    );
    let freed = a.release(&c, "l", "alice").await.unwrap().unwrap();
    assert_eq!(
        freed.next.as_deref(),
        Some("bob"),
        "handed to node b's waiter"
    );
    assert_eq!(
        Locks::list(&*b, &c).await.unwrap()[0].owner.as_deref(),
        Some("bob")
    );
    // bob's node loses him; alice waits on node a; node a's sweep hands the lock over.
    assert_eq!(
        a.acquire(&c, "l", "alice", true).await.unwrap(),
        Ok(Acquire::Queued)
    );
    b.owner_lost("app", "bob", 1_000).await.unwrap();
    assert!(Locks::expire_due(&*a, 10_999).await.unwrap().is_empty());
    let (x, y) = tokio::join!(
        Locks::expire_due(&*a, 11_000),
        Locks::expire_due(&*b, 11_000)
    );
    let all: Vec<_> = x.unwrap().into_iter().chain(y.unwrap()).collect();
    assert_eq!(
        all.len(),
        1,
        "freed once although both nodes swept: {all:?}"
    );
    assert_eq!(all[0].former.as_deref(), Some("bob"));
    assert_eq!(all[0].next.as_deref(), Some("alice"));
    // Every node heard of both hand-overs, once each and in order, whichever node made
    // them (the node holding the waiting request answers it).
    let want = vec![
        (c.clone(), "l".to_string(), "bob".to_string()),
        (c.clone(), "l".to_string(), "alice".to_string()),
    ];
    eventually("both nodes to hear both hand-overs", || {
        ha.got().len() >= 2 && hb.got().len() >= 2
    })
    .await;
    assert_eq!(ha.got(), want);
    assert_eq!(hb.got(), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compare_and_set_race_between_two_nodes_loses_no_update() {
    let server = RedisServer::start();
    let ((a, _), (b, _)) = two_nodes(&server).await;
    let c = ch("meta");
    let w = |value: String, revision: i64| MetadataWrite {
        op: WriteOp::Set,
        items: vec![WriteItem {
            key: "n".into(),
            value,
            revision,
        }],
        major_revision: NO_CHECK,
        lock_gate: None,
        timestamp_ms: None,
        author: None,
    };
    a.write(&c, w("0".into(), 0)).await.unwrap().unwrap();
    let conflicts = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for e in [a.clone(), b.clone(), a.clone(), b.clone()] {
        let (c, conflicts) = (c.clone(), conflicts.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                loop {
                    let o = e.get(&c).await.unwrap();
                    let it = &o.items["n"];
                    let n: u64 = it.value.parse().unwrap();
                    match e
                        .write(&c, w((n + 1).to_string(), it.revision))
                        .await
                        .unwrap()
                    {
                        Ok(_) => break,
                        Err(Rejection::Outdated(_)) => {
                            conflicts.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(r) => panic!("{r:?}"),
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let o = b.get(&c).await.unwrap();
    assert_eq!(o.items["n"].value, "100", "no lost update across nodes");
    assert_eq!(o.major_revision, 101);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_overflowing_worker_recovers_from_the_log_in_order() {
    let server = RedisServer::start();
    let mut ca = config(&server, "a");
    ca.workers = 1;
    ca.worker_queue = 1;
    let mut cb = ca.clone();
    cb.node_id = "b".into();
    let (a, seen_a) = node(ca).await;
    let (b, _) = node(cb).await;
    seen_a.slow.store(true, Ordering::Relaxed);
    let c = ch("burst");
    a.subscribe_node(&c).await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (b, c) = (b.clone(), c.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                b.publish(
                    &c,
                    publication("p", &format!("{t}-{i}")),
                    &PublishOptions::default(),
                )
                .await
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    eventually("node a to receive 400", || seen_a.of(&c).len() >= 400).await;
    assert!(
        consecutive(&seen_a.of(&c), 400),
        "every offset once, in order"
    );
    let stats = a.stats();
    assert!(stats.overflows > 0, "the queue of 1 overflowed: {stats:?}");
    assert!(
        stats.recovered > 0,
        "overflowed messages came from the log: {stats:?}"
    );
    assert_eq!(stats.gaps, 0, "nothing lost: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_pubsub_connection_is_resubscribed_and_nothing_is_lost() {
    let server = RedisServer::start();
    let ((a, seen_a), (b, _)) = two_nodes(&server).await;
    let c = ch("killed");
    a.subscribe_node(&c).await.unwrap();
    for i in 0..10 {
        b.publish(
            &c,
            publication("p", &i.to_string()),
            &PublishOptions::default(),
        )
        .await
        .unwrap();
    }
    eventually("first 10", || seen_a.of(&c).len() == 10).await;
    assert!(
        server
            .command(&["CLIENT", "KILL", "TYPE", "pubsub"])
            .starts_with(':')
    );
    // Published while node a's pub/sub connection is down or resubscribing.
    for i in 10..30 {
        b.publish(
            &c,
            publication("p", &i.to_string()),
            &PublishOptions::default(),
        )
        .await
        .unwrap();
    }
    eventually("node a to reconnect", || a.stats().reconnects >= 1).await;
    for i in 30..40 {
        b.publish(
            &c,
            publication("p", &i.to_string()),
            &PublishOptions::default(),
        )
        .await
        .unwrap();
    }
    eventually("all 40 at node a", || seen_a.of(&c).len() >= 40).await;
    assert!(
        consecutive(&seen_a.of(&c), 40),
        "once each, in order: {:?}",
        seen_a.of(&c)
    );
    assert_eq!(a.stats().gaps, 0);
    assert!(a.health().await.pubsub_connected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_restarted_nodes_reconnect_and_report_the_lost_epoch_as_a_gap() {
    let mut server = RedisServer::start();
    let ((a, seen_a), (b, _)) = two_nodes(&server).await;
    let c = ch("restart");
    a.subscribe_node(&c).await.unwrap();
    for i in 0..5 {
        b.publish(
            &c,
            publication("p", &i.to_string()),
            &PublishOptions::default(),
        )
        .await
        .unwrap();
    }
    eventually("first 5", || seen_a.of(&c).len() == 5).await;
    let before = seen_a.of(&c)[4];
    // Without persistence the restarted Redis has lost every channel's log and position.
    server.restart();
    eventually("node a to reconnect", || a.stats().reconnects >= 1).await;
    let mut published = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while published.is_none() {
        assert!(Instant::now() < deadline, "node b never published again");
        published = b
            .publish(&c, publication("p", "after"), &PublishOptions::default())
            .await
            .ok();
        if published.is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let after = published.unwrap().position;
    assert_ne!(after.epoch, before.epoch, "a new epoch after the loss");
    eventually("node a to get the publication after the restart", || {
        seen_a.of(&c).len() == 6
    })
    .await;
    assert_eq!(seen_a.of(&c)[5], after);
    assert!(
        a.stats().gaps >= 1,
        "the lost epoch is reported as a gap: {:?}",
        a.stats()
    );
    let h = a.health().await;
    assert!(h.redis_ok && h.pubsub_connected, "{h:?}");
}

/// A TCP proxy in front of Redis that can freeze the server→client direction of one
/// connection (by connection number), the way a half-dead link or a wedged pub/sub
/// connection looks to a client: connected, but nothing arrives.
struct Proxy {
    port: u16,
    frozen: Arc<Mutex<Vec<usize>>>,
    count: Arc<AtomicUsize>,
}

impl Proxy {
    async fn start(upstream: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let frozen: Arc<Mutex<Vec<usize>>> = Arc::default();
        let count = Arc::new(AtomicUsize::new(0));
        let (f, n) = (frozen.clone(), count.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let id = n.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    continue;
                };
                let f = f.clone();
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut cr, &mut sw).await;
                    });
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n) = sr.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        // Frozen: hold what the server sent until thawed.
                        while f.lock().unwrap().contains(&id) {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        if cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    up.abort();
                });
            }
        });
        Proxy {
            port,
            frozen,
            count,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_liveness_probe_restarts_a_wedged_pubsub_connection() {
    let server = RedisServer::start();
    let proxy = Proxy::start(server.port).await;
    let mut ca = config(&server, "a");
    ca.url = format!("redis://127.0.0.1:{}", proxy.port);
    let mut cb = ca.clone();
    cb.node_id = "b".into();
    cb.url = server.url();
    let (a, seen_a) = node(ca).await;
    // Node a opened its command connection, then its pub/sub connection.
    assert_eq!(proxy.count.load(Ordering::SeqCst), 2);
    let (b, _) = node(cb).await;
    let c = ch("wedged");
    a.subscribe_node(&c).await.unwrap();
    b.publish(&c, publication("p", "0"), &PublishOptions::default())
        .await
        .unwrap();
    eventually("first", || seen_a.of(&c).len() == 1).await;
    proxy.frozen.lock().unwrap().push(1);
    for i in 1..5 {
        b.publish(
            &c,
            publication("p", &i.to_string()),
            &PublishOptions::default(),
        )
        .await
        .unwrap();
    }
    eventually("the probe to restart the wedged connection", || {
        a.stats().probe_restarts >= 1
    })
    .await;
    eventually("the publications sent while wedged", || {
        seen_a.of(&c).len() >= 5
    })
    .await;
    assert!(consecutive(&seen_a.of(&c), 5));
    assert_eq!(a.stats().gaps, 0);
}

/// With the persistence docs/scaling.md asks for (AOF, fsync always), metadata, lock
/// definitions and history survive a Redis restart (SIGKILL), and positions continue
/// under the same epoch, so nothing is reported lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_aof_metadata_locks_and_history_survive_a_redis_restart() {
    use switchboard_engine::HistoryStore;
    let mut server = RedisServer::start_with(&[
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ]);
    let (a, seen_a) = node(config(&server, "a")).await;
    let c = ch("durable");
    let item = |value: &str| MetadataWrite {
        op: WriteOp::Set,
        items: vec![WriteItem {
            key: "k".into(),
            value: value.into(),
            revision: NO_CHECK,
        }],
        major_revision: NO_CHECK,
        lock_gate: None,
        timestamp_ms: None,
        author: None,
    };
    let written = a.write(&c, item("v")).await.unwrap().unwrap();
    a.set(&c, "l", 30, 8).await.unwrap().unwrap();
    let mut kept = publication("p", "kept");
    kept.timestamp_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let stored = a.append(&c, &kept).await.expect("append");
    a.subscribe_node(&c).await.unwrap();
    let before = a
        .publish(&c, publication("p", "0"), &PublishOptions::default())
        .await
        .unwrap()
        .position;
    server.restart();
    let mut got = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.is_none() {
        assert!(Instant::now() < deadline, "redis never came back");
        got = a.get(&c).await.ok();
        if got.is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(got.unwrap(), written, "metadata survives");
    assert_eq!(
        Locks::list(&*a, &c).await.unwrap().len(),
        1,
        "the lock definition survives"
    );
    let page = a.query(&c, 0, 0, 10).await.unwrap();
    assert_eq!(page.messages.len(), 1, "history survives");
    assert_eq!(page.messages[0].timestamp_ms, stored);
    eventually("node a to reconnect", || a.stats().reconnects >= 1).await;
    let after = a
        .publish(&c, publication("p", "1"), &PublishOptions::default())
        .await
        .unwrap()
        .position;
    assert_eq!(after.epoch, before.epoch, "the position survives with AOF");
    assert_eq!(after.offset, before.offset + 1);
    eventually("delivery after the restart", || seen_a.of(&c).len() == 2).await;
    assert_eq!(a.stats().gaps, 0);
}

/// Many concurrent `subscribe_node` calls (sent as batched SUBSCRIBEs) all take effect:
/// one publication to each channel from another node reaches this one; unsubscribing
/// them all stops delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_subscriptions_are_batched_and_all_take_effect() {
    let server = RedisServer::start();
    let ((a, seen_a), (b, _)) = two_nodes(&server).await;
    let channels: Vec<ChannelKey> = (0..300).map(|i| ch(&format!("many{i}"))).collect();
    let mut tasks = Vec::new();
    for c in &channels {
        let (a, c) = (a.clone(), c.clone());
        tasks.push(tokio::spawn(async move { a.subscribe_node(&c).await }));
    }
    for t in tasks {
        t.await.unwrap().expect("subscribe");
    }
    assert_eq!(a.stats().subscriptions, 300);
    for c in &channels {
        b.publish(c, publication("p", "x"), &PublishOptions::default())
            .await
            .unwrap();
    }
    eventually("one publication on each of 300 channels", || {
        channels.iter().all(|c| seen_a.of(c).len() == 1)
    })
    .await;
    for c in &channels {
        a.unsubscribe_node(c).await.unwrap();
    }
    assert_eq!(a.stats().subscriptions, 0);
    // A marker channel still subscribed proves later publications would have arrived.
    let marker = ch("marker");
    a.subscribe_node(&marker).await.unwrap();
    for c in &channels {
        b.publish(c, publication("p", "y"), &PublishOptions::default())
            .await
            .unwrap();
    }
    b.publish(&marker, publication("p", "m"), &PublishOptions::default())
        .await
        .unwrap();
    eventually("the marker", || seen_a.of(&marker).len() == 1).await;
    assert!(
        channels.iter().all(|c| seen_a.of(c).len() == 1),
        "nothing after unsubscribe_node"
    );
}

/// A node that dies (its engine gone without a word, like a SIGKILLed process) stops its
/// heartbeat; after the node timeout the members it entered are removed by another
/// node's sweep, each reported exactly once, and the live node's members stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_members_of_a_dead_node_time_out_exactly_once() {
    let server = RedisServer::start();
    let mut ca = config(&server, "a");
    ca.node_timeout = Duration::from_secs(2);
    let mut cb = ca.clone();
    cb.node_id = "b".into();
    let mut cc = ca.clone();
    cc.node_id = "c".into();
    let (a, _) = node(ca).await;
    let (b, _) = node(cb).await;
    let (c, _) = node(cc).await;
    let room = ch("room");
    let other = ChannelKey::new("app", ChannelKind::Stream, "other");
    for i in 0..20 {
        a.enter(&room, &format!("a{i:02}"), false, State::new())
            .await
            .unwrap();
        b.enter(&room, &format!("b{i:02}"), i % 5 == 0, State::new())
            .await
            .unwrap();
    }
    b.enter(&other, "b00", false, State::new()).await.unwrap();
    // A member entered on b and then again on a belongs to a now.
    b.enter(&room, "moved", false, State::new()).await.unwrap();
    a.enter(&room, "moved", false, State::new()).await.unwrap();
    assert_eq!(a.count(&room).await.unwrap(), 20 + 16 + 1);
    // b01 (on node b) owns a lock that a00 (on node a) waits for.
    a.set(&room, "l", 1, 8).await.unwrap().unwrap();
    assert_eq!(
        b.acquire(&room, "l", "b01", false).await.unwrap(),
        Ok(Acquire::Acquired { ttl_s: 1 })
    );
    assert_eq!(
        a.acquire(&room, "l", "a00", true).await.unwrap(),
        Ok(Acquire::Queued)
    );
    drop(b);
    // Both live nodes sweep, over and over, until b's members are gone.
    let mut gone = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while gone.len() < 21 {
        assert!(
            Instant::now() < deadline,
            "node b's members never timed out: {gone:?}"
        );
        let (x, y) = tokio::join!(Presence::expire_due(&*a, 0), Presence::expire_due(&*c, 0));
        gone.extend(x.unwrap());
        gone.extend(y.unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Further sweeps by both live nodes report nothing more.
    for e in [&a, &c] {
        gone.extend(Presence::expire_due(&**e, 0).await.unwrap());
    }
    let mut names: Vec<String> = gone
        .iter()
        .map(|e| format!("{}/{}", e.channel.name, e.user))
        .collect();
    names.sort();
    let mut want: Vec<String> = (0..20).map(|i| format!("room/b{i:02}")).collect();
    want.push("other/b00".into());
    want.sort();
    assert_eq!(names, want, "each of b's memberships once, quiet ones too");
    assert_eq!(
        a.count(&room).await.unwrap(),
        21,
        "a's members (and the moved one) stay"
    );
    assert!(
        Presence::channels_of(&*a, "app", "b00")
            .await
            .unwrap()
            .is_empty()
    );
}

/// Redis loses its data (FLUSHALL, as a restart without persistence would): each node
/// finds its heartbeat entry gone and writes the members it entered again, with their
/// state; a member that left before is not brought back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn members_lost_with_redis_data_are_written_again_by_their_nodes() {
    let server = RedisServer::start();
    let mut ca = config(&server, "a");
    ca.node_timeout = Duration::from_secs(2);
    let mut cb = ca.clone();
    cb.node_id = "b".into();
    let ((a, _), (b, _)) = (node(ca).await, node(cb).await);
    let room = ch("room");
    let state = State::from([("mood".to_string(), "ok".to_string())]);
    a.enter(&room, "u1", false, state.clone()).await.unwrap();
    b.enter(&room, "u2", false, State::new()).await.unwrap();
    a.enter(&room, "u3", false, State::new()).await.unwrap();
    a.exit(&room, "u3").await.unwrap();
    let users = async || -> Vec<String> {
        Presence::list(&*b, &room, None, 10)
            .await
            .map(|p| p.members.iter().map(|m| m.user.to_string()).collect())
            .unwrap_or_default()
    };
    assert_eq!(users().await, ["u1", "u2"]);
    assert!(server.command(&["FLUSHALL"]).starts_with("+OK"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while users().await != ["u1", "u2"] {
        assert!(
            Instant::now() < deadline,
            "members written again: {:?}",
            users().await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(b.state(&room, "u1").await.unwrap(), Some(state));
    assert_eq!(
        b.channels_of("app", "u2").await.unwrap(),
        std::slice::from_ref(&room)
    );
}

/// R28 across nodes: a claim on node b of a user claimed on node a returns a's claim and
/// tells a (only a) to end that session; a's late release leaves b's claim and says so,
/// b's own release removes it; a claim on the same node tells nobody, and neither does a
/// claim resuming the former session (the client moved).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_claim_on_another_node_kicks_the_former_one() {
    let server = RedisServer::start();
    let ((a, _), (b, _)) = two_nodes(&server).await;
    let (kicks_a, kicks_b) = (Arc::new(Kicks::default()), Arc::new(Kicks::default()));
    a.set_kick_handler(kicks_a.clone());
    b.set_kick_handler(kicks_b.clone());
    let claim = |node: &str, session: &str| {
        Some(Claim {
            node: node.into(),
            session_id: session.into(),
        })
    };
    let kick = |session: &str| ("app".to_string(), "alice".to_string(), session.to_string());
    assert_eq!(
        a.claim_session("app", "alice", "s1", None).await.unwrap(),
        None
    );
    assert_eq!(
        a.claim_session("app", "alice", "s2", None).await.unwrap(),
        claim("a", "s1"),
        "a second session on the same node replaces the claim"
    );
    assert_eq!(
        b.claim_session("app", "alice", "s3", None).await.unwrap(),
        claim("a", "s2")
    );
    eventually("node a to hear the kick", || !kicks_a.got().is_empty()).await;
    assert_eq!(
        kicks_a.got(),
        [kick("s2")],
        "the session the claim replaced"
    );
    assert!(
        a.release_session("app", "alice", "s2").await.unwrap(),
        "b's claim stays, and a hears that another node claims alice"
    );
    assert_eq!(
        b.claim_session("app", "alice", "s4", None).await.unwrap(),
        claim("b", "s3"),
        "the claim survived a's release"
    );
    assert!(!b.release_session("app", "alice", "s4").await.unwrap());
    assert_eq!(
        b.claim_session("app", "alice", "s5", None).await.unwrap(),
        None,
        "released"
    );
    assert_eq!(
        a.claim_session("app", "alice", "s6", Some("s5"))
            .await
            .unwrap(),
        claim("b", "s5"),
        "the client of s5 moved to a"
    );
    assert_eq!(
        a.claim_session("app", "alice", "s7", None).await.unwrap(),
        claim("a", "s6")
    );
    assert_eq!(
        b.claim_session("app", "alice", "s8", None).await.unwrap(),
        claim("a", "s7")
    );
    assert_eq!(
        a.claim_session("app", "alice", "s9", None).await.unwrap(),
        claim("b", "s8")
    );
    // Redis delivers a subscriber's messages in publish order: b hears the kick for s8
    // and nothing before it (no kick for s3/s4 from its own claims, none for the moved
    // s5); a heard s2 and s7 only.
    eventually("node b to hear the kick", || !kicks_b.got().is_empty()).await;
    assert_eq!(kicks_b.got(), [kick("s8")]);
    eventually("node a to hear the second kick", || {
        kicks_a.got().len() >= 2
    })
    .await;
    assert_eq!(kicks_a.got(), [kick("s2"), kick("s7")]);
}

/// A node holding at most one session, which it gives up once when asked; records the
/// kicks it hears.
#[derive(Default)]
struct Holder {
    session: Mutex<Option<String>>,
    kicks: Kicks,
}

#[async_trait::async_trait]
impl KickHandler for Holder {
    fn on_kick(&self, app: &str, user: &str, session_id: &str) {
        self.kicks.on_kick(app, user, session_id);
    }

    async fn give_up(&self, app: &str, user: &str, session_id: &str) -> Option<String> {
        let mut held = self.session.lock().unwrap();
        if held.as_deref() != Some(session_id) {
            return None;
        }
        held.take();
        Some(format!("state of {app}/{user}/{session_id} ✓"))
    }
}

/// A session hand-over across nodes (issue 15): b takes the session a's claim names and
/// gets the state a's handler gave up, once; asking again, asking a node nobody
/// listens for, and asking too close to the deadline all answer `None` without a
/// state (a node that hears a request too late keeps its session); `held_elsewhere`
/// tells a node which of a user's memberships another node entered last.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_is_handed_over_to_the_node_its_client_resumes_on() {
    let server = RedisServer::start();
    let ((a, _), (b, _)) = two_nodes(&server).await;
    let (holder_a, holder_b) = (Arc::new(Holder::default()), Arc::new(Holder::default()));
    a.set_kick_handler(holder_a.clone());
    b.set_kick_handler(holder_b.clone());
    *holder_a.session.lock().unwrap() = Some("s1".into());
    assert_eq!(
        a.claim_session("app", "alice", "s1", None).await.unwrap(),
        None
    );
    let claim = b.claim_of("app", "alice").await.unwrap().expect("a claim");
    assert_eq!(
        claim,
        Claim {
            node: "a".into(),
            session_id: "s1".into()
        }
    );
    let long = Duration::from_secs(60);
    let taken = tokio::time::timeout(
        Duration::from_secs(20),
        b.take_session("app", "alice", &claim, long),
    )
    .await
    .expect("a answers")
    .unwrap();
    assert_eq!(taken.as_deref(), Some("state of app/alice/s1 ✓"));
    assert!(holder_a.session.lock().unwrap().is_none(), "a gave it up");
    let again = tokio::time::timeout(
        Duration::from_secs(20),
        b.take_session("app", "alice", &claim, long),
    )
    .await
    .expect("a answers at once that it holds nothing")
    .unwrap();
    assert_eq!(again, None);
    assert_eq!(
        b.claim_session("app", "alice", "s1", Some("s1"))
            .await
            .unwrap(),
        Some(claim.clone()),
        "b claims the taken session"
    );
    let own = b
        .claim_of("app", "alice")
        .await
        .unwrap()
        .expect("b's claim");
    assert_eq!(
        b.take_session("app", "alice", &own, long).await.unwrap(),
        None,
        "nothing to take from itself"
    );
    let gone = Claim {
        node: "gone".into(),
        session_id: "s1".into(),
    };
    let none = tokio::time::timeout(
        Duration::from_secs(20),
        a.take_session("app", "alice", &gone, long),
    )
    .await
    .expect("nobody listens for a dead node: no wait for the deadline")
    .unwrap();
    assert_eq!(none, None);
    // Too close to its deadline (under the 0.5 s margin): a keeps its session.
    *holder_a.session.lock().unwrap() = Some("s2".into());
    let late = Claim {
        node: "a".into(),
        session_id: "s2".into(),
    };
    assert_eq!(
        b.take_session("app", "alice", &late, Duration::from_millis(100))
            .await
            .unwrap(),
        None
    );
    // a has heard and ignored that request once a later one (in publish order) is answered.
    let later = b.take_session("app", "alice", &late, long).await.unwrap();
    assert_eq!(later.as_deref(), Some("state of app/alice/s2 ✓"));
    assert!(holder_a.kicks.got().is_empty() && holder_b.kicks.got().is_empty());

    let (room, hall) = (ch("room"), ch("hall"));
    a.enter(&room, "alice", false, State::new()).await.unwrap();
    a.enter(&hall, "alice", false, State::new()).await.unwrap();
    b.enter(&room, "alice", false, State::new()).await.unwrap();
    let both = [room.clone(), hall.clone(), ch("elsewhere")];
    assert_eq!(
        a.held_elsewhere("alice", &both).await.unwrap(),
        [true, false, false]
    );
    assert_eq!(
        b.held_elsewhere("alice", &both).await.unwrap(),
        [false, true, false]
    );
}
