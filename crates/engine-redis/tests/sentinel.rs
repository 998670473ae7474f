//! Redis Sentinel with real processes: a master, one replica (`--replicaof`) and one
//! sentinel (`redis-server sentinel.conf --sentinel`), all on free loopback ports.
//! Nodes connect with `redis+sentinel://…/m`; the master is SIGKILLed (or demoted by
//! `SENTINEL FAILOVER`) mid-test, and the nodes must follow the promoted replica: every
//! publication acknowledged after the failover delivered, anything lost reported as a
//! gap, members still listed. The broker conformance suite also runs through Sentinel.

mod support;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{RedisServer, connect_blocking, eventually, fresh_prefix, pings, wait_until};
use switchboard_engine::conformance::publication;
use switchboard_engine::{
    Broker, ChannelKey, ChannelKind, Presence, Publication, PublicationHandler, PublishOptions,
    State, StreamPosition,
};
use switchboard_engine_redis::{RedisConfig, RedisEngine};

/// The name the sentinel monitors the master under.
const MASTER: &str = "m";

/// A running sentinel, killed (and its dir removed) on drop.
struct SentinelProcess {
    port: u16,
    dir: PathBuf,
    child: Child,
}

impl SentinelProcess {
    /// Starts a sentinel monitoring `127.0.0.1:master_port` as `m` with quorum 1 and
    /// short timeouts (down after 300 ms, failover timeout 2 s).
    fn start(master_port: u16) -> SentinelProcess {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let dir = std::env::temp_dir().join(format!(
            "switchboard-sentinel-{}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\n\
                 sentinel monitor {MASTER} 127.0.0.1 {master_port} 1\n\
                 sentinel down-after-milliseconds {MASTER} 300\n\
                 sentinel failover-timeout {MASTER} 2000\n",
                dir.display()
            ),
        )
        .expect("sentinel.conf");
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server --sentinel (apt-get install redis-server)");
        wait_until(10, "the sentinel to answer PING", || pings(port));
        SentinelProcess { port, dir, child }
    }
}

impl Drop for SentinelProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A master, its replica and a sentinel that knows both.
struct Group {
    master: RedisServer,
    replica: RedisServer,
    sentinel: SentinelProcess,
}

async fn query<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> redis::RedisResult<T> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    cmd.query_async(&mut conn).await
}

/// The master's port as the sentinel names it.
async fn master_port(sentinel: u16) -> Option<u16> {
    let addr: Vec<String> = query(
        sentinel,
        redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(MASTER),
    )
    .await
    .ok()?;
    addr.get(1)?.parse().ok()
}

/// Whether the server on `port` is gone or no longer a master.
async fn old_master_demoted(port: u16) -> bool {
    match query::<Vec<redis::Value>>(port, &redis::cmd("ROLE")).await {
        Ok(role) => !matches!(role.first(), Some(redis::Value::BulkString(r)) if r == b"master"),
        Err(_) => true,
    }
}

impl Group {
    /// Starts the three processes and waits until the replica is in sync and the
    /// sentinel lists it (a failover needs both).
    async fn start() -> Group {
        let master = RedisServer::start();
        let port = master.port.to_string();
        let replica = RedisServer::start_with(&[
            "--save",
            "",
            "--appendonly",
            "no",
            "--replicaof",
            "127.0.0.1",
            &port,
        ]);
        let sentinel = SentinelProcess::start(master.port);
        let (rp, sp) = (replica.port, sentinel.port);
        eventually(20, "the replica to sync", || async move {
            query::<String>(rp, redis::cmd("INFO").arg("replication"))
                .await
                .is_ok_and(|i| i.contains("master_link_status:up"))
        })
        .await;
        eventually(30, "the sentinel to know the replica", || async move {
            query::<Vec<redis::Value>>(sp, redis::cmd("SENTINEL").arg("replicas").arg(MASTER))
                .await
                .is_ok_and(|r| !r.is_empty())
        })
        .await;
        Group {
            master,
            replica,
            sentinel,
        }
    }

    fn url(&self) -> String {
        format!("redis+sentinel://127.0.0.1:{}/{MASTER}", self.sentinel.port)
    }

    /// A node config through the sentinel, short probe timings.
    fn config(&self, node: &str, prefix: &str) -> RedisConfig {
        let mut c = RedisConfig::new(self.url(), node);
        c.prefix = prefix.into();
        c.probe_interval = Duration::from_millis(200);
        c.probe_timeout = Duration::from_millis(1000);
        c.command_timeout = Duration::from_secs(2);
        c
    }

    /// Waits until the sentinel names the replica as master.
    async fn wait_for_promotion(&self) {
        let (sp, rp) = (self.sentinel.port, self.replica.port);
        eventually(30, "the sentinel to promote the replica", || async move {
            master_port(sp).await == Some(rp)
        })
        .await;
    }
}

/// Records every delivered position and body.
#[derive(Default)]
struct Seen(Mutex<Vec<(StreamPosition, String)>>);

impl PublicationHandler for Seen {
    fn on_publication(&self, _: &ChannelKey, p: &Arc<Publication>) {
        let body = String::from_utf8_lossy(&p.payload).into_owned();
        self.0.lock().unwrap().push((p.position, body));
    }
}

impl Seen {
    fn all(&self) -> Vec<(StreamPosition, String)> {
        self.0.lock().unwrap().clone()
    }
}

fn ch(name: &str) -> ChannelKey {
    ChannelKey::new("app", ChannelKind::Message, name)
}

/// Whether `seen` skips nothing: offsets consecutive within each epoch, each epoch
/// after the first starting at 1.
fn gapless(seen: &[(StreamPosition, String)]) -> bool {
    seen.windows(2).all(|w| {
        let (a, b) = (w[0].0, w[1].0);
        if a.epoch == b.epoch {
            b.offset == a.offset + 1
        } else {
            b.offset == 1
        }
    }) && seen.first().is_none_or(|f| f.0.offset == 1)
}

/// The failover scenario: nodes a (subscriber, member) and b (publisher) through the
/// sentinel; `fail` takes the master away; b keeps publishing until 10 publications are
/// acknowledged after the promotion; a must deliver each of them, and report a gap if
/// anything before is missing.
async fn failover_keeps_delivering(fail: impl AsyncFnOnce(&mut Group)) {
    let mut g = Group::start().await;
    let prefix = fresh_prefix();
    let a = RedisEngine::connect_with(g.config("a", &prefix))
        .await
        .expect("a connects through the sentinel");
    let b = RedisEngine::connect_with(g.config("b", &prefix))
        .await
        .expect("b connects");
    let seen = Arc::new(Seen::default());
    a.set_handler(seen.clone());
    let c = ch("failover");
    a.subscribe_node(&c).await.unwrap();
    let room = ch("room");
    a.enter(&room, "u1", false, State::new()).await.unwrap();
    for i in 0..5 {
        b.publish(
            &c,
            publication("p", &format!("before-{i}")),
            &PublishOptions::default(),
        )
        .await
        .unwrap();
    }
    let s = seen.clone();
    eventually(20, "the first 5 deliveries", || {
        let s = s.clone();
        async move { s.all().len() == 5 }
    })
    .await;

    fail(&mut g).await;

    let mut acked_after = Vec::new();
    let mut promoted = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut i = 0;
    while acked_after.len() < 10 {
        assert!(
            Instant::now() < deadline,
            "b never published on the new master: {:?}",
            b.stats()
        );
        i += 1;
        let body = format!("after-{i}");
        let ok = b
            .publish(&c, publication("p", &body), &PublishOptions::default())
            .await
            .is_ok();
        if !promoted {
            promoted = master_port(g.sentinel.port).await == Some(g.replica.port)
                && old_master_demoted(g.master.port).await;
        }
        // Only what was acknowledged once the sentinel named the new master and the
        // old one stopped taking writes counts as "after the failover": until then a
        // write may still reach the old master and be lost with its data set when it
        // resyncs as a replica (Redis Sentinel's documented window).
        if ok && promoted {
            acked_after.push(body);
        } else if !ok {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    g.wait_for_promotion().await;
    let s = seen.clone();
    let want = acked_after.clone();
    eventually(
        30,
        "a to deliver every publication acknowledged after the failover",
        || {
            let (s, want) = (s.clone(), want.clone());
            async move {
                let bodies: Vec<String> = s.all().into_iter().map(|(_, b)| b).collect();
                want.iter().all(|w| bodies.contains(w))
            }
        },
    )
    .await;
    let all = seen.all();
    let bodies: Vec<&str> = all.iter().map(|(_, b)| b.as_str()).collect();
    let mut unique = bodies.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        bodies.len(),
        "each publication once: {bodies:?}"
    );
    // Anything missing is reported: either nothing was skipped, or a gap was counted.
    assert!(
        gapless(&all) || a.stats().gaps >= 1,
        "a skipped publications without a gap: {all:?} {:?}",
        a.stats()
    );
    assert!(
        b.stats().master_switches >= 1,
        "b's commands followed the master: {:?}",
        b.stats()
    );
    // a only publishes its heartbeat: its first write after the failover (at most a
    // heartbeat period later) moves its command and pub/sub connections.
    let a2 = a.clone();
    eventually(30, "a's connections to follow the master", || {
        let a2 = a2.clone();
        async move { a2.stats().reconnects >= 1 && a2.stats().master_switches >= 1 }
    })
    .await;
    let rp = g.replica.port;
    let a_pubsub_on_new_master = async || {
        let clients: String = query(
            rp,
            redis::cmd("CLIENT").arg("LIST").arg("TYPE").arg("pubsub"),
        )
        .await
        .unwrap_or_default();
        clients.lines().count() >= 2
    };
    eventually(
        30,
        "both nodes' pub/sub connections on the new master",
        a_pubsub_on_new_master,
    )
    .await;
    // The member entered before the failover is listed on the new master (replicated,
    // or written again by a's heartbeat).
    let b2 = b.clone();
    let r2 = room.clone();
    eventually(30, "u1 listed after the failover", || {
        let (b2, r2) = (b2.clone(), r2.clone());
        async move {
            Presence::list(&*b2, &r2, None, 10)
                .await
                .is_ok_and(|p| p.members.iter().any(|m| &*m.user == "u1"))
        }
    })
    .await;
    let (ha, hb) = (a.health().await, b.health().await);
    assert!(ha.redis_ok && ha.pubsub_connected, "{ha:?}");
    assert!(hb.redis_ok && hb.pubsub_connected, "{hb:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn master_sigkilled_nodes_follow_the_promoted_replica_and_lose_nothing_silently() {
    failover_keeps_delivering(async |g: &mut Group| g.master.stop()).await;
}

/// `SENTINEL FAILOVER`: the old master stays up as a replica, so commands that reach it
/// get READONLY, which must send the node back to the sentinels.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_demoted_master_answering_readonly_sends_nodes_to_the_new_master() {
    failover_keeps_delivering(async |g: &mut Group| {
        let r: String = query(
            g.sentinel.port,
            redis::cmd("SENTINEL").arg("FAILOVER").arg(MASTER),
        )
        .await
        .expect("SENTINEL FAILOVER");
        assert_eq!(r, "OK");
    })
    .await;
}

/// The broker conformance suite through Sentinel (no failover): the Sentinel URL gives
/// the same engine.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_suite_through_sentinel() {
    let g = Group::start().await;
    switchboard_engine::conformance::run_broker_suite(|retention| {
        let mut c = g.config("n1", &fresh_prefix());
        c.retention = retention;
        connect_blocking(c) as Arc<dyn Broker>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sentinel_url_without_a_reachable_sentinel_is_refused_with_a_reason() {
    let free = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = RedisEngine::connect(&format!("redis+sentinel://127.0.0.1:{free}/m"), "n")
        .await
        .err()
        .expect("no sentinel there");
    assert!(
        e.to_string().contains("no master \"m\" from the sentinels"),
        "{e}"
    );
    let e = RedisEngine::connect("redis+sentinel://127.0.0.1:1", "n")
        .await
        .err()
        .expect("no name");
    assert!(e.to_string().contains("master's name"), "{e}");
}
