//! Lock owners and waiters after Redis lost its data (a restart without persistence):
//! each node writes again the ownerships it made and, a little later, its waiters'
//! places in line; a waiter whose lock nobody owns any more gets it, and its node is
//! told (the hand-over notice that answers its `acquireLock`).

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{RedisServer, config, eventually};
use switchboard_engine::{Acquire, ChannelKey, ChannelKind, HandoverHandler, LockInfo, Locks};
use switchboard_engine_redis::{RedisConfig, RedisEngine};

#[derive(Default)]
struct Handovers(Mutex<Vec<(String, String)>>);

impl HandoverHandler for Handovers {
    fn on_handover(&self, _channel: &ChannelKey, lock: &str, user: &str) {
        self.0.lock().unwrap().push((lock.into(), user.into()));
    }
}

impl Handovers {
    fn got(&self, lock: &str, user: &str) -> bool {
        self.0
            .lock()
            .unwrap()
            .iter()
            .any(|(l, u)| l == lock && u == user)
    }
}

async fn node(c: RedisConfig) -> (Arc<RedisEngine>, Arc<Handovers>) {
    let e = RedisEngine::connect_with(c).await.expect("connect");
    let h = Arc::new(Handovers::default());
    assert!(e.set_handover_handler(h.clone()));
    (e, h)
}

fn owner(list: &[LockInfo], lock: &str) -> Option<String> {
    list.iter()
        .find(|l| &*l.name == lock)
        .and_then(|l| l.owner.as_deref().map(str::to_string))
}

/// Node a holds alice's lock x and dave's wait for y; node b holds bob's wait for x;
/// node c held carol's lock y and is gone. After Redis restarts empty: x is alice's
/// again with bob in line (released, it goes to bob, and node b is told), and y, which
/// nobody owns any more, goes to dave (node a is told).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn owners_and_waiters_are_written_again_after_redis_lost_its_data() {
    let mut server = RedisServer::start();
    let mut ca = config(&server, "a");
    ca.node_timeout = Duration::from_secs(1);
    let with_id = |id: &str| {
        let mut c = ca.clone();
        c.node_id = id.into();
        c
    };
    let ((a, ha), (b, hb), (c, _)) = (
        node(ca.clone()).await,
        node(with_id("b")).await,
        node(with_id("c")).await,
    );
    let room = ChannelKey::new("app", ChannelKind::Message, "room");
    a.set(&room, "x", 7, 32).await.unwrap().unwrap();
    a.set(&room, "y", 9, 32).await.unwrap().unwrap();
    assert_eq!(
        a.acquire(&room, "x", "alice", false).await.unwrap(),
        Ok(Acquire::Acquired { ttl_s: 7 })
    );
    assert_eq!(
        b.acquire(&room, "x", "bob", true).await.unwrap(),
        Ok(Acquire::Queued)
    );
    assert_eq!(
        c.acquire(&room, "y", "carol", false).await.unwrap(),
        Ok(Acquire::Acquired { ttl_s: 9 })
    );
    assert_eq!(
        a.acquire(&room, "y", "dave", true).await.unwrap(),
        Ok(Acquire::Queued)
    );
    drop(c);
    server.restart();
    let (a, ha, hb, server, room) = (&a, &ha, &hb, &server, &room);
    eventually(30, "x to be alice's again and y dave's", || async move {
        let list = a.list(room).await.unwrap_or_default();
        owner(&list, "x").as_deref() == Some("alice")
            && owner(&list, "y").as_deref() == Some("dave")
    })
    .await;
    let ttls: Vec<u32> = a
        .list(room)
        .await
        .unwrap()
        .iter()
        .map(|l| l.ttl_s)
        .collect();
    assert_eq!(
        ttls,
        vec![7, 9],
        "the definitions are written again with their ttl"
    );
    eventually(30, "node a to be told that dave has y", || async move {
        ha.got("y", "dave")
    })
    .await;
    // Bob's place in x's line is written again by node b.
    let line = &format!("{}{{3:app0room}}:lw:x", ca.prefix);
    eventually(30, "bob back in x's line", || async move {
        server.command(&["LLEN", line]).trim() == ":1"
    })
    .await;
    let freed = a.release(room, "x", "alice").await.unwrap().unwrap();
    assert_eq!(freed.next.as_deref(), Some("bob"));
    eventually(30, "node b to be told that bob has x", || async move {
        hb.got("x", "bob")
    })
    .await;
}

/// A lock freed by another node before the loss is not written again for its former
/// owner (the node forgets an ownership when it hears of the free); a lock handed to
/// this node's waiter by another node is written again for that waiter.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lock_freed_elsewhere_is_not_written_again_for_its_former_owner() {
    let mut server = RedisServer::start();
    let mut ca = config(&server, "a");
    ca.node_timeout = Duration::from_secs(1);
    let mut cb = ca.clone();
    cb.node_id = "b".into();
    let ((a, ha), (b, _)) = (node(ca).await, node(cb).await);
    let room = ChannelKey::new("app", ChannelKind::Message, "room");
    for lock in ["x", "z", "w"] {
        a.set(&room, lock, 5, 32).await.unwrap().unwrap();
    }
    a.acquire(&room, "x", "alice", false)
        .await
        .unwrap()
        .unwrap();
    a.acquire(&room, "z", "erin", false).await.unwrap().unwrap();
    a.acquire(&room, "w", "gina", false).await.unwrap().unwrap();
    assert_eq!(
        a.acquire(&room, "w", "hank", true).await.unwrap(),
        Ok(Acquire::Queued)
    );
    // Node b revokes alice's x (nobody waits: only the notice tells node a), then
    // releases gina's w, which goes to hank; the notices reach node a in that order.
    b.revoke(&room, "x", "alice").await.unwrap().unwrap();
    b.release(&room, "w", "gina").await.unwrap().unwrap();
    let ha = &ha;
    eventually(30, "node a to hear that hank has w", || async move {
        ha.got("w", "hank")
    })
    .await;
    server.restart();
    let (a, room) = (&a, &room);
    eventually(30, "z to be erin's again and w hank's", || async move {
        let list = a.list(room).await.unwrap_or_default();
        owner(&list, "z").as_deref() == Some("erin") && owner(&list, "w").as_deref() == Some("hank")
    })
    .await;
    let list = a.list(room).await.unwrap();
    assert!(
        list.iter().all(|l| &*l.name != "x"),
        "x was freed before the loss; nobody writes it again: {list:?}"
    );
}
