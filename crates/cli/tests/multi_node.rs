//! Several `switchboard serve --engine redis` processes on one real `redis-server`, all
//! started by the test on free loopback ports, with Rust SDK clients on different nodes
//! (issue 15): cross-node delivery in order, presence seen alike from every node, stream
//! topics followed across nodes, metadata CAS races, a lock handed over across nodes, a
//! client moved mid-stream to another node resuming its session there (and the fallback
//! when its old node is dead or stopped), a second login on another node kicking the
//! first, a node SIGKILLed and Redis restarted.
//!
//! Every child process gets a null stdin and is killed on drop; every wait polls for the
//! state it needs with a deadline (no fixed sleeps).

use futures_util::{Stream, StreamExt};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard_client::{
    ChannelType, Client, ClientConfig, EventStream, JoinOptions, JoinTopicOptions, LinkState,
    LinkStateEvent, LockEventType, MessageEvent, MetadataItem, MetadataOptions, Payload,
    PresenceEvent, PresenceEventType, PublishOptions, SubscribeOptions, TopicEventType,
    WhoNowOptions,
};

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_switchboard");
/// The app every node serves.
const APP_ID: &str = "0123456789abcdef0123456789abcdef";
/// Its certificate.
const CERT: &str = "fedcba9876543210fedcba9876543210";
/// How long one expected event may take (the machine is shared and slow).
const STEP: Duration = Duration::from_secs(20);
/// The Redis engine's default node timeout: a SIGKILLed node counts as dead after it.
const NODE_TIMEOUT: Duration = Duration::from_secs(15);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn temp_dir(what: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "switchboard-mn-{what}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Polls `cond` (blocking) until it holds, panicking after `STEP`.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + STEP;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A RESP reply, as far as these tests read them.
#[derive(Debug, PartialEq)]
enum Resp {
    Simple(String),
    Int(i64),
    Bulk(Option<String>),
    Array(Vec<Resp>),
    Error(String),
}

fn read_resp(r: &mut impl BufRead) -> std::io::Result<Resp> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let line = line.trim_end();
    let (kind, rest) = line.split_at(1.min(line.len()));
    let bad = || std::io::Error::other(format!("bad RESP line {line:?}"));
    Ok(match kind {
        "+" => Resp::Simple(rest.into()),
        "-" => Resp::Error(rest.into()),
        ":" => Resp::Int(rest.parse().map_err(|_| bad())?),
        "$" => {
            let n: i64 = rest.parse().map_err(|_| bad())?;
            if n < 0 {
                Resp::Bulk(None)
            } else {
                let mut buf = vec![0; n as usize + 2];
                r.read_exact(&mut buf)?;
                buf.truncate(n as usize);
                Resp::Bulk(Some(String::from_utf8_lossy(&buf).into_owned()))
            }
        }
        "*" => {
            let n: i64 = rest.parse().map_err(|_| bad())?;
            let mut v = Vec::new();
            for _ in 0..n.max(0) {
                v.push(read_resp(r)?);
            }
            Resp::Array(v)
        }
        _ => return Err(bad()),
    })
}

/// A real `redis-server` on a free port in its own temp dir, without persistence (a
/// restart loses everything); killed on drop.
struct Redis {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Redis {
    fn start() -> Redis {
        let mut r = Redis {
            port: 0,
            dir: temp_dir("redis"),
            child: None,
        };
        // The free port may be taken between the probe and the bind: retry.
        for _ in 0..5 {
            if r.spawn(free_port()) {
                return r;
            }
        }
        panic!("redis-server did not start");
    }

    fn spawn(&mut self, port: u16) -> bool {
        let mut child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server)");
        self.port = port;
        let deadline = Instant::now() + STEP;
        loop {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return false;
            }
            if self.command(&["PING"]).ok() == Some(Resp::Simple("PONG".into())) {
                self.child = Some(child);
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server never answered PING"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// One command over a fresh connection.
    fn command(&self, args: &[&str]) -> std::io::Result<Resp> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes())?;
        read_resp(&mut BufReader::new(s))
    }

    /// The keys matching `pattern`.
    fn keys(&self, pattern: &str) -> Vec<String> {
        match self.command(&["KEYS", pattern]) {
            Ok(Resp::Array(v)) => v
                .into_iter()
                .filter_map(|r| match r {
                    Resp::Bulk(Some(s)) => Some(s),
                    _ => None,
                })
                .collect(),
            other => panic!("KEYS {pattern}: {other:?}"),
        }
    }

    /// Kills the server (its data is gone), waits until the port is closed, and starts it
    /// again on the same port.
    fn restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        wait_until("redis-server to stop", || {
            TcpStream::connect(("127.0.0.1", self.port)).is_err()
        });
        let port = self.port;
        assert!(self.spawn(port), "redis-server did not restart on {port}");
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One `switchboard serve --engine redis` process with its own data dir; killed on drop.
struct Node {
    child: Option<Child>,
    url: String,
    dir: PathBuf,
}

impl Node {
    /// Starts node `id` on `redis`, with `extra` arguments to `serve`.
    fn start_with(redis: &Redis, id: &str, extra: &[&str]) -> Node {
        let dir = temp_dir(id);
        let config = dir.join("serve.toml");
        // The publish rates are lifted so that tests can publish back to back.
        std::fs::write(
            &config,
            format!(
                "[[apps]]\nid = \"{APP_ID}\"\ncertificate = \"{CERT}\"\n[apps.limits]\n\
                 publish_rate_per_channel = 100000\ntopic_publish_rate_per_channel = 100000\n"
            ),
        )
        .expect("config");
        let data = dir.join("data");
        let log = std::fs::File::create(dir.join("stderr.log")).expect("log");
        let mut child = Command::new(BIN)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen", "127.0.0.1:0", "--engine", "redis"])
            .args(["--redis-url", &redis.url(), "--node-id", id])
            .args(["--heartbeat-interval-range", "1-1800"])
            .args(["--presence-timeout-range", "1-300"])
            .args(extra)
            .env("SWITCHBOARD_LOG", "info,switchboard_server::session=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn switchboard serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.trim().strip_prefix("listening on ")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let url = rx.recv_timeout(STEP).unwrap_or_else(|_| {
            let log = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
            panic!("node {id} did not start listening; its log:\n{log}")
        });
        Node {
            child: Some(child),
            url,
            dir,
        }
    }

    /// `host:port` of its listener.
    fn addr(&self) -> SocketAddr {
        self.url
            .trim_start_matches("ws://")
            .parse()
            .expect("listen address")
    }

    /// SIGKILL: no shutdown, no goodbye to Redis.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("node logs kept in {}", self.dir.display());
        }
    }
}

/// One Redis and `n` nodes on it.
struct Cluster {
    nodes: Vec<Node>,
    redis: Redis,
}

impl Cluster {
    fn start(n: usize) -> Cluster {
        Cluster::start_with(n, &[])
    }

    /// [`Cluster::start`] with `extra` arguments to every node's `serve`.
    fn start_with(n: usize, extra: &[&str]) -> Cluster {
        let redis = Redis::start();
        let nodes = (0..n)
            .map(|i| Node::start_with(&redis, &format!("n{i}"), extra))
            .collect();
        Cluster { nodes, redis }
    }

    /// A client of `user` logged in on node `i`.
    async fn login(&self, i: usize, user: &str) -> Client {
        login_at(&self.nodes[i].url, user, |_| {}).await
    }
}

fn now_secs() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as u32
}

/// A client of `user` logged in at `url`, its config adjusted by `tune`.
async fn login_at(url: &str, user: &str, tune: impl FnOnce(&mut ClientConfig)) -> Client {
    let mut config = ClientConfig::new(url);
    config.reconnect_base_delay = Duration::from_millis(50);
    config.reconnect_max_delay = Duration::from_millis(300);
    // One user on two nodes from this one process (the cross-node kick): R14 off.
    config.allow_duplicate_user_id = true;
    tune(&mut config);
    let client = Client::new(APP_ID, user, config).expect("client");
    let token =
        switchboard_token::build_rtm_token(APP_ID, CERT, user, 3600, now_secs()).expect("token");
    client
        .login(&token)
        .await
        .unwrap_or_else(|e| panic!("{user} logs in at {url}: {e}"));
    client
}

/// The next item of `stream` within [`STEP`].
async fn next<S: Stream<Item = Result<T, E>> + Unpin, T, E: std::fmt::Debug>(
    stream: &mut S,
    what: &str,
) -> T {
    tokio::time::timeout(STEP, stream.next())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap_or_else(|| panic!("stream ended while waiting for {what}"))
        .unwrap_or_else(|e| panic!("stream lagged while waiting for {what}: {e:?}"))
}

fn text(m: &MessageEvent) -> String {
    match &m.message {
        Payload::Text(s) => s.clone(),
        Payload::Binary(b) => String::from_utf8_lossy(b).into_owned(),
    }
}

/// Reads messages until `last` arrives; returns every body on the way (`last` included).
async fn read_until(stream: &mut EventStream<MessageEvent>, last: &str, who: &str) -> Vec<String> {
    let mut got = Vec::new();
    loop {
        let m = next(stream, &format!("{who}: message {last}")).await;
        let body = text(&m);
        got.push(body.clone());
        if body == last {
            return got;
        }
    }
}

fn with_presence() -> SubscribeOptions {
    SubscribeOptions::default()
}

/// Publish on one node, subscribers on all three: every subscriber gets every message
/// once, in the same order, with each publisher's messages in its publish order (two
/// publishers on two nodes at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_on_one_node_reaches_subscribers_on_the_others_in_order() {
    let cluster = Cluster::start(3);
    let mut subs = Vec::new();
    let mut clients = Vec::new();
    for i in 0..3 {
        let c = cluster.login(i, &format!("reader{i}")).await;
        let mut s = c
            .subscribe("news", SubscribeOptions::default())
            .await
            .expect("subscribe");
        subs.push(s.messages());
        clients.push((c, s));
    }
    let p0 = cluster.login(0, "writer0").await;
    let p1 = cluster.login(1, "writer1").await;
    const N: usize = 100;
    let publish = |c: Client, tag: &'static str| async move {
        for i in 0..N {
            c.publish(
                "news",
                format!("{tag}-{i}").as_str(),
                PublishOptions::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("{tag} publishes {i}: {e}"));
        }
        c
    };
    let (p0, p1) = tokio::join!(publish(p0, "a"), publish(p1, "b"));
    // A last message after both: whatever came before it is all there is.
    p0.publish("news", "end", PublishOptions::default())
        .await
        .expect("end");
    let mut orders = Vec::new();
    for (i, s) in subs.iter_mut().enumerate() {
        let got = read_until(s, "end", &format!("reader{i}")).await;
        assert_eq!(
            got.len(),
            2 * N + 1,
            "reader{i}: every message once: {got:?}"
        );
        let unique: BTreeSet<_> = got.iter().collect();
        assert_eq!(unique.len(), got.len(), "reader{i}: no duplicate");
        for tag in ["a", "b"] {
            let mine: Vec<_> = got
                .iter()
                .filter(|b| b.starts_with(&format!("{tag}-")))
                .cloned()
                .collect();
            let want: Vec<_> = (0..N).map(|i| format!("{tag}-{i}")).collect();
            assert_eq!(mine, want, "reader{i}: publisher {tag}'s order");
        }
        orders.push(got);
    }
    assert_eq!(orders[0], orders[1], "nodes 0 and 1 deliver one order");
    assert_eq!(orders[0], orders[2], "nodes 0 and 2 deliver one order");
    drop(p1);
}

/// The members of `channel` (one page is enough here) as seen from `client`.
async fn who_now(client: &Client, channel: &str) -> Vec<(String, Vec<(String, String)>)> {
    let options = WhoNowOptions {
        include_state: true,
        ..Default::default()
    };
    let r = client
        .presence()
        .who_now(channel, ChannelType::Message, options)
        .await
        .expect("whoNow");
    assert!(r.next_page.is_empty(), "one page");
    let mut v: Vec<_> = r
        .occupants
        .into_iter()
        .map(|u| (u.user_id, u.states.into_iter().collect()))
        .collect();
    v.sort();
    v
}

/// The next presence event, which must be `kind` from `user`.
async fn expect_presence(
    stream: &mut EventStream<PresenceEvent>,
    kind: PresenceEventType,
    user: &str,
    who: &str,
) -> PresenceEvent {
    let e = next(stream, &format!("{who}: {kind:?} of {user}")).await;
    assert_eq!(
        (e.event_type, e.publisher.as_str()),
        (kind, user),
        "{who}: {e:?}"
    );
    e
}

/// Join, state change and leave made on one node are seen once by members on the
/// others, and whoNow answers the same from every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_seen_the_same_from_every_node() {
    let cluster = Cluster::start(3);
    let alice = cluster.login(0, "alice").await;
    let mut a_sub = alice.subscribe("room", with_presence()).await.expect("sub");
    let mut a_ev = a_sub.presence();
    let snap = next(&mut a_ev, "alice's snapshot").await;
    assert_eq!(snap.event_type, PresenceEventType::Snapshot);
    let carol = cluster.login(2, "carol").await;
    let mut c_sub = carol.subscribe("room", with_presence()).await.expect("sub");
    let mut c_ev = c_sub.presence();
    let snap = next(&mut c_ev, "carol's snapshot").await;
    let members: Vec<_> = snap
        .snapshot
        .unwrap_or_default()
        .into_iter()
        .map(|u| u.user_id)
        .collect();
    assert!(members.contains(&"alice".to_string()), "{members:?}");
    expect_presence(&mut a_ev, PresenceEventType::RemoteJoin, "carol", "alice").await;

    let bob = cluster.login(1, "bob").await;
    let _b_sub = bob.subscribe("room", with_presence()).await.expect("sub");
    for (ev, who) in [(&mut a_ev, "alice"), (&mut c_ev, "carol")] {
        expect_presence(ev, PresenceEventType::RemoteJoin, "bob", who).await;
    }
    bob.presence()
        .set_state("room", ChannelType::Message, [("mood", "sunny")])
        .await
        .expect("set state");
    for (ev, who) in [(&mut a_ev, "alice"), (&mut c_ev, "carol")] {
        let e = expect_presence(ev, PresenceEventType::RemoteStateChanged, "bob", who).await;
        assert_eq!(
            e.state_changed.get("mood").map(String::as_str),
            Some("sunny")
        );
    }
    let want = vec![
        ("alice".to_string(), vec![]),
        (
            "bob".to_string(),
            vec![("mood".to_string(), "sunny".to_string())],
        ),
        ("carol".to_string(), vec![]),
    ];
    for (c, n) in [(&alice, 0), (&bob, 1), (&carol, 2)] {
        assert_eq!(who_now(c, "room").await, want, "whoNow from node {n}");
    }
    bob.unsubscribe("room").await.expect("unsubscribe");
    for (ev, who) in [(&mut a_ev, "alice"), (&mut c_ev, "carol")] {
        expect_presence(ev, PresenceEventType::RemoteLeave, "bob", who).await;
    }
    let want = vec![("alice".to_string(), vec![]), ("carol".to_string(), vec![])];
    for (c, n) in [(&alice, 0), (&bob, 1), (&carol, 2)] {
        assert_eq!(who_now(c, "room").await, want, "whoNow from node {n}");
    }
    // Exactly once: the next event after the leave is this new join, not a repeat.
    let dave = cluster.login(1, "dave").await;
    let _d_sub = dave.subscribe("room", with_presence()).await.expect("sub");
    for (ev, who) in [(&mut a_ev, "alice"), (&mut c_ev, "carol")] {
        expect_presence(ev, PresenceEventType::RemoteJoin, "dave", who).await;
    }
}

/// An RTC token for `user` in stream channel `channel`.
fn rtc(channel: &str, user: &str) -> String {
    switchboard_token::build_rtc_token(
        APP_ID,
        CERT,
        channel,
        user,
        switchboard_token::RtcRole::Publisher,
        3600,
        3600,
        now_secs(),
    )
    .expect("rtc token")
}

fn join_options(channel: &str, user: &str) -> JoinOptions {
    JoinOptions {
        token: Some(rtc(channel, user)),
        ..Default::default()
    }
}

/// A topic publisher on one node is in the join snapshot and the topic events of
/// members on the other nodes, and a subscriber there gets its topic messages in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_topic_publisher_followed_from_another_node() {
    let cluster = Cluster::start(3);
    let carol = cluster.login(2, "carol").await;
    let mut carol_topics = carol.topic_events();
    let c_cam = carol.stream_channel("cam").expect("handle");
    c_cam
        .join(join_options("cam", "carol"))
        .await
        .expect("join");
    let snap = next(&mut carol_topics, "carol's topic snapshot").await;
    assert_eq!(snap.event_type, TopicEventType::Snapshot);

    let bob = cluster.login(1, "bob").await;
    let b_cam = bob.stream_channel("cam").expect("handle");
    b_cam.join(join_options("cam", "bob")).await.expect("join");
    let meta = JoinTopicOptions {
        meta: "cam-1".into(),
        ..Default::default()
    };
    b_cam.join_topic("video", meta).await.expect("join topic");
    let e = next(&mut carol_topics, "carol: bob joins the topic").await;
    assert_eq!(
        (e.event_type, e.publisher.as_str()),
        (TopicEventType::RemoteJoin, "bob"),
        "{e:?}"
    );

    let alice = cluster.login(0, "alice").await;
    let mut alice_topics = alice.topic_events();
    let a_cam = alice.stream_channel("cam").expect("handle");
    a_cam
        .join(join_options("cam", "alice"))
        .await
        .expect("join");
    let snap = next(&mut alice_topics, "alice's topic snapshot").await;
    assert_eq!(snap.event_type, TopicEventType::Snapshot);
    let video = snap
        .topic_infos
        .iter()
        .find(|t| t.topic_name == "video")
        .unwrap_or_else(|| panic!("the snapshot lists bob's topic: {snap:?}"));
    let publishers: Vec<_> = video
        .publishers
        .iter()
        .map(|p| p.publisher_user_id.as_str())
        .collect();
    assert_eq!(publishers, ["bob"], "{snap:?}");
    let r = a_cam
        .subscribe_topic("video", Some(vec!["bob".into()]))
        .await
        .expect("subscribe topic");
    assert_eq!(r.succeed_users, ["bob"], "{r:?}");
    let mut frames = a_cam.topic_messages("video");
    const N: usize = 50;
    for i in 0..N {
        b_cam
            .publish_topic_message("video", format!("f{i}").as_str(), Default::default())
            .await
            .expect("topic message");
    }
    let got = read_until(&mut frames, &format!("f{}", N - 1), "alice").await;
    let want: Vec<_> = (0..N).map(|i| format!("f{i}")).collect();
    assert_eq!(got, want, "every frame once, in order");
    b_cam.leave_topic("video").await.expect("leave topic");
    for (ev, who) in [(&mut alice_topics, "alice"), (&mut carol_topics, "carol")] {
        let e = next(ev, &format!("{who}: bob leaves the topic")).await;
        assert_eq!(
            (e.event_type, e.publisher.as_str()),
            (TopicEventType::RemoteLeave, "bob"),
            "{who}: {e:?}"
        );
    }
}

/// Two writes on two nodes guarded by the same revision: exactly one wins, every
/// round, and every node then reads the winner's value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_cas_race_between_nodes_has_one_winner() {
    let cluster = Cluster::start(3);
    let alice = cluster.login(0, "alice").await;
    let bob = cluster.login(1, "bob").await;
    let carol = cluster.login(2, "carol").await;
    let ty = ChannelType::Message;
    alice
        .storage()
        .set_channel_metadata(
            "board",
            ty,
            [MetadataItem::new("turn", "start")],
            MetadataOptions::default(),
        )
        .await
        .expect("set");
    for round in 0..10 {
        let data = carol
            .storage()
            .get_channel_metadata("board", ty)
            .await
            .expect("get");
        let rev = data.items.get("turn").expect("turn").revision;
        let write = |c: &Client, v: String| {
            let s = c.storage();
            async move {
                s.update_channel_metadata(
                    "board",
                    ty,
                    [MetadataItem::new("turn", v).with_revision(rev)],
                    MetadataOptions::default(),
                )
                .await
            }
        };
        let (ra, rb) = tokio::join!(
            write(&alice, format!("alice-{round}")),
            write(&bob, format!("bob-{round}"))
        );
        let winner = match (&ra, &rb) {
            (Ok(_), Err(e)) => {
                assert!(e.code < 0, "{e}");
                format!("alice-{round}")
            }
            (Err(e), Ok(_)) => {
                assert!(e.code < 0, "{e}");
                format!("bob-{round}")
            }
            other => panic!("round {round}: exactly one write wins, got {other:?}"),
        };
        for (c, n) in [(&alice, 0), (&bob, 1), (&carol, 2)] {
            let data = c
                .storage()
                .get_channel_metadata("board", ty)
                .await
                .expect("get");
            let item = data.items.get("turn").expect("turn");
            assert_eq!(item.value, winner, "round {round}, node {n}");
            assert!(item.revision > rev, "round {round}: a new revision");
        }
    }
}

/// The length of the FIFO waiter list of lock `name` (the engine's `{ch}:lw:<lock>`).
fn waiters(redis: &Redis, name: &str) -> i64 {
    let keys = redis.keys(&format!("*:lw:{name}"));
    keys.iter()
        .map(|k| match redis.command(&["LLEN", k]) {
            Ok(Resp::Int(n)) => n,
            other => panic!("LLEN {k}: {other:?}"),
        })
        .sum()
}

/// A lock owned on node 0 is waited for (with retry) on nodes 1 and 2, in that order;
/// each release on one node hands it to the next waiter on another, and every node's
/// members see the same lock events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_is_handed_over_across_nodes_in_fifo_order() {
    let cluster = Cluster::start(3);
    let ty = ChannelType::Message;
    let opts = || SubscribeOptions {
        with_lock: true,
        ..Default::default()
    };
    let alice = cluster.login(0, "alice").await;
    let bob = cluster.login(1, "bob").await;
    let carol = cluster.login(2, "carol").await;
    let watcher = cluster.login(2, "watcher").await;
    let mut events = watcher.lock_events();
    let _w = watcher.subscribe("desk", opts()).await.expect("sub");
    let snap = next(&mut events, "watcher's lock snapshot").await;
    assert_eq!(snap.event_type, LockEventType::Snapshot);
    for c in [&alice, &bob, &carol] {
        c.subscribe("desk", opts()).await.expect("sub");
    }
    alice
        .lock()
        .set_lock("desk", ty, "pen", Some(30))
        .await
        .expect("set lock");
    alice
        .lock()
        .acquire_lock("desk", ty, "pen", false)
        .await
        .expect("acquire");
    let e = bob
        .lock()
        .acquire_lock("desk", ty, "pen", false)
        .await
        .expect_err("held on another node");
    assert_eq!(e.code, -14007, "{e}");
    let b_lock = bob.lock();
    let b_wait = tokio::spawn(async move { b_lock.acquire_lock("desk", ty, "pen", true).await });
    wait_until("bob to wait in line", || {
        waiters(&cluster.redis, "pen") == 1
    });
    let c_lock = carol.lock();
    let c_wait = tokio::spawn(async move { c_lock.acquire_lock("desk", ty, "pen", true).await });
    wait_until("carol to wait in line", || {
        waiters(&cluster.redis, "pen") == 2
    });

    let mut seen = Vec::new();
    let mut record = async |events: &mut EventStream<_>, n: usize| {
        for _ in 0..n {
            let e: switchboard_client::LockEvent = next(events, "a lock event").await;
            seen.push((e.event_type, e.owner.clone()));
        }
    };
    record(&mut events, 2).await; // SET, ACQUIRED alice
    alice
        .lock()
        .release_lock("desk", ty, "pen")
        .await
        .expect("release on node 0");
    let r = tokio::time::timeout(STEP, b_wait)
        .await
        .expect("bob gets the lock")
        .expect("task");
    r.expect("bob's acquire succeeds");
    let info = alice.lock().get_lock("desk", ty).await.expect("get lock");
    let owner: Vec<_> = info.iter().map(|l| l.owner.as_str()).collect();
    assert_eq!(owner, ["bob"], "node 0 sees bob own it");
    assert!(!c_wait.is_finished(), "carol still waits");
    bob.lock()
        .release_lock("desk", ty, "pen")
        .await
        .expect("release on node 1");
    let r = tokio::time::timeout(STEP, c_wait)
        .await
        .expect("carol gets the lock")
        .expect("task");
    r.expect("carol's acquire succeeds");
    record(&mut events, 4).await;
    use LockEventType::{Acquired, Released, Set};
    assert_eq!(
        seen,
        [
            (Set, String::new()),
            (Acquired, "alice".into()),
            (Released, String::new()),
            (Acquired, "bob".into()),
            (Released, String::new()),
            (Acquired, "carol".into()),
        ],
        "the watcher on node 2 sees every step once"
    );
}

/// A TCP proxy whose upstream can be changed, and whose connections can all be cut.
struct Retarget {
    addr: SocketAddr,
    upstream: Arc<Mutex<SocketAddr>>,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Retarget {
    async fn start(upstream: SocketAddr) -> Retarget {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let upstream = Arc::new(Mutex::new(upstream));
        let conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Default::default();
        let (up, cs) = (upstream.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                let target = *up.lock().unwrap();
                let task = tokio::spawn(async move {
                    if let Ok(mut upc) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut upc).await;
                    }
                });
                cs.lock().unwrap().push(task);
            }
        });
        Retarget {
            addr,
            upstream,
            conns,
            accept,
        }
    }

    fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// New connections go to `to`; the open ones are cut.
    fn move_to(&self, to: SocketAddr) {
        *self.upstream.lock().unwrap() = to;
        for t in self.conns.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

impl Drop for Retarget {
    fn drop(&mut self) {
        self.accept.abort();
        for t in self.conns.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

/// Waits for the login link to become `state`; returns that event (a stream
/// channel's own link events are skipped).
async fn wait_link(events: &mut EventStream<LinkStateEvent>, state: LinkState) -> LinkStateEvent {
    loop {
        let e = next(events, &format!("link state {state:?}")).await;
        if e.current_state == state && e.service_type == "MESSAGE" {
            return e;
        }
    }
}

/// Waits for the login link to leave `state` (the loss noticed).
async fn wait_link_leaves(events: &mut EventStream<LinkStateEvent>, state: LinkState) {
    loop {
        let e = next(events, &format!("the link to leave {state:?}")).await;
        if e.current_state != state && e.service_type == "MESSAGE" {
            return;
        }
    }
}

/// A subscriber whose link (through a proxy) to node 0 is cut mid-stream and whose
/// reconnect lands on node 1 gets every message once and in order. The SDK has one
/// endpoint, so the proxy is what moves it (as a load balancer would). Node 0 hands the
/// session over to node 1, which resumes it (R52, R58): the shared recovery log fills
/// in from the client's position.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_moved_mid_stream_to_another_node_gets_every_message_once() {
    let cluster = Cluster::start(3);
    let proxy = Retarget::start(cluster.nodes[0].addr()).await;
    let alice = login_at(&proxy.url(), "alice", |_| {}).await;
    let mut links = alice.link_state_events();
    let mut sub = alice
        .subscribe("feed", SubscribeOptions::default())
        .await
        .expect("subscribe");
    let mut msgs = sub.messages();
    let bob = cluster.login(2, "bob").await;
    // Publishes until told to stop, so that the move happens mid-stream.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let publisher = tokio::spawn(async move {
        let mut n = 0;
        while !stop2.load(Ordering::Relaxed) {
            bob.publish("feed", format!("m{n}").as_str(), PublishOptions::default())
                .await
                .unwrap_or_else(|e| panic!("publish {n}: {e}"));
            n += 1;
        }
        (bob, n)
    });
    let mut got = Vec::new();
    while got.len() < 20 {
        got.push(text(&next(&mut msgs, "the first messages").await));
    }
    proxy.move_to(cluster.nodes[1].addr());
    wait_link_leaves(&mut links, LinkState::Connected).await;
    let back = wait_link(&mut links, LinkState::Connected).await;
    assert!(back.is_resumed, "resumed on node 1: {back:?}");
    assert!(back.gap_channels.is_empty(), "no gap reported: {back:?}");
    assert!(back.unrestored_channels.is_empty(), "restored: {back:?}");
    // Some messages published after the reconnect, then the end.
    let after = got.len() + 40;
    while got.len() < after {
        got.push(text(&next(&mut msgs, "messages after the move").await));
    }
    stop.store(true, Ordering::Relaxed);
    let (bob, n) = publisher.await.expect("publisher");
    bob.publish("feed", "end", PublishOptions::default())
        .await
        .expect("end");
    got.extend(read_until(&mut msgs, "end", "alice").await);
    let mut want: Vec<_> = (0..n).map(|i| format!("m{i}")).collect();
    want.push("end".into());
    assert_eq!(got, want, "every message once, in order, across the move");
}

/// Polls `cond` (without blocking the runtime) until it holds, panicking after `STEP`.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + STEP;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reads `stream` in the background until a message `last` arrives; every body on the
/// way is in the returned list as it comes.
fn collect(
    mut stream: EventStream<MessageEvent>,
    last: &'static str,
    who: &'static str,
) -> (Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    let got: Arc<Mutex<Vec<String>>> = Default::default();
    let g = got.clone();
    let task = tokio::spawn(async move {
        loop {
            let m = next(&mut stream, &format!("{who}: message {last}")).await;
            let body = text(&m);
            g.lock().unwrap().push(body.clone());
            if body == last {
                return;
            }
        }
    });
    (got, task)
}

/// Whether node `i`'s log has `line` in it.
fn logged(cluster: &Cluster, i: usize, line: &str) -> bool {
    std::fs::read_to_string(cluster.nodes[i].dir.join("stderr.log"))
        .unwrap_or_default()
        .contains(line)
}

/// The users with a lock owner-loss deadline (the engine's `ldue`, R153).
fn lost_owners(redis: &Redis) -> i64 {
    match redis.command(&["ZCARD", "sb:ldue"]) {
        Ok(Resp::Int(n)) => n,
        other => panic!("ZCARD ldue: {other:?}"),
    }
}

/// Publishes on three streams until told to stop, then an "end" on each: channel
/// messages `m<n>` on "feed" (by bob), topic messages `t<n>` in cam/chat (by bob), USER
/// messages `u<n>` to alice (by carol). Returns how many of each went out before "end".
fn traffic(
    bob: Client,
    b_cam: switchboard_client::StreamChannel,
    carol: Client,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let user = PublishOptions {
            channel_type: ChannelType::User,
            ..Default::default()
        };
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            let (m, t, u) = (format!("m{n}"), format!("t{n}"), format!("u{n}"));
            bob.publish("feed", m.as_str(), PublishOptions::default())
                .await
                .unwrap_or_else(|e| panic!("publish {m}: {e}"));
            b_cam
                .publish_topic_message("chat", t.as_str(), Default::default())
                .await
                .unwrap_or_else(|e| panic!("topic message {t}: {e}"));
            carol
                .publish("alice", u.as_str(), user.clone())
                .await
                .unwrap_or_else(|e| panic!("user message {u}: {e}"));
            n += 1;
        }
        bob.publish("feed", "end", PublishOptions::default())
            .await
            .expect("end");
        b_cam
            .publish_topic_message("chat", "end", Default::default())
            .await
            .expect("end");
        carol.publish("alice", "end", user).await.expect("end");
        n
    })
}

/// A client moved mid-stream from node 0 to node 1 (a load balancer sent its reconnect
/// there; here the proxy) resumes its session there (issue 15; R52, R58 across nodes):
/// node 0 hands the session over, the reconnect reports `isResumed` with no gap and
/// nothing unrestored, every channel, topic and USER message arrives once and in order,
/// bob (on node 2, in both channels) sees no leave, timeout or join of alice and no
/// topic role of hers dropped before dave's join, and alice's lock stays hers: no
/// owner-loss deadline is left and she releases it from node 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_moved_to_another_node_resumes_its_session_there() {
    let cluster = Cluster::start(3);
    let ty = ChannelType::Message;
    let feed = || SubscribeOptions {
        with_lock: true,
        ..Default::default()
    };
    let bob = cluster.login(2, "bob").await;
    let mut b_locks = bob.lock_events();
    let mut b_sub = bob.subscribe("feed", feed()).await.expect("sub");
    let mut b_presence = b_sub.presence();
    next(&mut b_presence, "bob's snapshot").await;
    let snap = next(&mut b_locks, "bob's lock snapshot").await;
    assert_eq!(snap.event_type, LockEventType::Snapshot);
    let b_cam = bob.stream_channel("cam").expect("handle");
    b_cam.join(join_options("cam", "bob")).await.expect("join");
    let mut b_cam_presence = b_cam.presence_events();
    let mut b_topics = b_cam.topic_events();
    next(&mut b_cam_presence, "bob's stream snapshot").await;
    next(&mut b_topics, "bob's topic snapshot").await;
    b_cam
        .join_topic("chat", JoinTopicOptions::default())
        .await
        .expect("join topic");

    let proxy = Retarget::start(cluster.nodes[0].addr()).await;
    let alice = login_at(&proxy.url(), "alice", |_| {}).await;
    let mut links = alice.link_state_events();
    let mut a_sub = alice.subscribe("feed", feed()).await.expect("sub");
    let (feed_got, feed_task) = collect(a_sub.messages(), "end", "alice feed");
    let (user_got, user_task) = collect(alice.user_messages(), "end", "alice inbox");
    let a_cam = alice.stream_channel("cam").expect("handle");
    a_cam
        .join(join_options("cam", "alice"))
        .await
        .expect("join");
    a_cam
        .join_topic("video", JoinTopicOptions::default())
        .await
        .expect("join topic");
    let r = a_cam
        .subscribe_topic("chat", Some(vec!["bob".into()]))
        .await
        .expect("subscribe topic");
    assert_eq!(r.succeed_users, ["bob"], "{r:?}");
    let (topic_got, topic_task) = collect(a_cam.topic_messages("chat"), "end", "alice topic");
    alice
        .lock()
        .set_lock("feed", ty, "pen", Some(60))
        .await
        .expect("set lock");
    alice
        .lock()
        .acquire_lock("feed", ty, "pen", false)
        .await
        .expect("acquire");
    expect_presence(
        &mut b_presence,
        PresenceEventType::RemoteJoin,
        "alice",
        "bob",
    )
    .await;
    expect_presence(
        &mut b_cam_presence,
        PresenceEventType::RemoteJoin,
        "alice",
        "bob",
    )
    .await;
    let e = next(&mut b_topics, "bob: alice joins a topic").await;
    assert_eq!(
        (e.event_type, e.publisher.as_str()),
        (TopicEventType::RemoteJoin, "alice"),
        "{e:?}"
    );
    for kind in [LockEventType::Set, LockEventType::Acquired] {
        let e = next(&mut b_locks, "bob: alice's lock").await;
        assert_eq!(e.event_type, kind, "{e:?}");
    }

    let carol = cluster.login(1, "carol").await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = traffic(bob.clone(), b_cam.clone(), carol, stop.clone());
    eventually("alice's first messages", || {
        feed_got.lock().unwrap().len() >= 10
            && topic_got.lock().unwrap().len() >= 10
            && user_got.lock().unwrap().len() >= 10
    })
    .await;
    proxy.move_to(cluster.nodes[1].addr());
    wait_link_leaves(&mut links, LinkState::Connected).await;
    let back = wait_link(&mut links, LinkState::Connected).await;
    assert!(back.is_resumed, "resumed on node 1: {back:?}");
    assert!(back.gap_channels.is_empty(), "no gap reported: {back:?}");
    assert!(back.unrestored_channels.is_empty(), "restored: {back:?}");
    eventually("node 0 to log the hand-over", || {
        logged(&cluster, 0, "session handed over")
    })
    .await;
    eventually("node 1 to log the take-over", || {
        logged(&cluster, 1, "session taken over")
    })
    .await;
    let moved_at = feed_got.lock().unwrap().len();
    eventually("messages after the move", || {
        feed_got.lock().unwrap().len() >= moved_at + 20
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let n = tokio::time::timeout(STEP, publisher)
        .await
        .expect("publisher ends")
        .expect("publisher");
    for (task, what) in [
        (feed_task, "feed"),
        (topic_task, "topic"),
        (user_task, "inbox"),
    ] {
        tokio::time::timeout(STEP, task)
            .await
            .unwrap_or_else(|_| panic!("alice's {what} reaches the end"))
            .expect("reader");
    }
    for (got, tag) in [(&feed_got, "m"), (&topic_got, "t"), (&user_got, "u")] {
        let mut want: Vec<_> = (0..n).map(|i| format!("{tag}{i}")).collect();
        want.push("end".into());
        assert_eq!(
            *got.lock().unwrap(),
            want,
            "{tag}: every message once, in order"
        );
    }

    // The lock: the loss node 0 recorded was taken back by node 1.
    eventually("no lock owner-loss deadline left", || {
        lost_owners(&cluster.redis) == 0
    })
    .await;
    let info = bob.lock().get_lock("feed", ty).await.expect("get lock");
    let owner: Vec<_> = info.iter().map(|l| l.owner.as_str()).collect();
    assert_eq!(owner, ["alice"], "the lock stays alice's");
    alice
        .lock()
        .release_lock("feed", ty, "pen")
        .await
        .expect("alice still owns it, on node 1");
    let e = next(&mut b_locks, "bob: the release").await;
    assert_eq!(
        e.event_type,
        LockEventType::Released,
        "nothing in between: {e:?}"
    );

    // Nothing about alice reached bob between her join and dave's.
    let dave = cluster.login(2, "dave").await;
    let _d_sub = dave.subscribe("feed", feed()).await.expect("sub");
    let d_cam = dave.stream_channel("cam").expect("handle");
    d_cam.join(join_options("cam", "dave")).await.expect("join");
    d_cam
        .join_topic("marker", JoinTopicOptions::default())
        .await
        .expect("join topic");
    expect_presence(
        &mut b_presence,
        PresenceEventType::RemoteJoin,
        "dave",
        "bob",
    )
    .await;
    expect_presence(
        &mut b_cam_presence,
        PresenceEventType::RemoteJoin,
        "dave",
        "bob",
    )
    .await;
    let e = next(&mut b_topics, "bob: dave joins a topic").await;
    assert_eq!(
        (e.event_type, e.publisher.as_str()),
        (TopicEventType::RemoteJoin, "dave"),
        "no topic event of alice's in between: {e:?}"
    );
    let who: Vec<_> = who_now(&bob, "feed")
        .await
        .into_iter()
        .map(|(u, _)| u)
        .collect();
    assert_eq!(who, ["alice", "bob", "dave"], "alice is still a member");
}

/// The node holding a session is SIGKILLed and its client's reconnect lands on another
/// node: nobody can hand the session over (nothing listens to the dead node's control
/// channel), so node 1 starts a new session at once (the fallback, issue 15): the
/// reconnect is not resumed, the SDK subscribes again from its last positions and the
/// shared recovery log fills in every message once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_whose_node_was_killed_starts_a_new_session() {
    let mut cluster = Cluster::start(2);
    let proxy = Retarget::start(cluster.nodes[0].addr()).await;
    let alice = login_at(&proxy.url(), "alice", |_| {}).await;
    let mut links = alice.link_state_events();
    let mut sub = alice
        .subscribe("feed", SubscribeOptions::default())
        .await
        .expect("subscribe");
    let (got, reader) = collect(sub.messages(), "end", "alice");
    let bob = cluster.login(1, "bob").await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let publisher = tokio::spawn(async move {
        let mut n = 0;
        while !stop2.load(Ordering::Relaxed) {
            bob.publish("feed", format!("m{n}").as_str(), PublishOptions::default())
                .await
                .unwrap_or_else(|e| panic!("publish {n}: {e}"));
            n += 1;
        }
        bob.publish("feed", "end", PublishOptions::default())
            .await
            .expect("end");
        n
    });
    eventually("alice's first messages", || got.lock().unwrap().len() >= 20).await;
    cluster.nodes[0].kill();
    proxy.move_to(cluster.nodes[1].addr());
    wait_link_leaves(&mut links, LinkState::Connected).await;
    let back = wait_link(&mut links, LinkState::Connected).await;
    assert!(!back.is_resumed, "a new session: {back:?}");
    assert!(back.gap_channels.is_empty(), "no gap reported: {back:?}");
    assert!(back.unrestored_channels.is_empty(), "restored: {back:?}");
    eventually("node 1 to log the fallback", || {
        logged(&cluster, 1, "session not handed over")
    })
    .await;
    let moved_at = got.lock().unwrap().len();
    eventually("messages after the move", || {
        got.lock().unwrap().len() >= moved_at + 20
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let n = tokio::time::timeout(STEP, publisher)
        .await
        .expect("publisher ends")
        .expect("publisher");
    tokio::time::timeout(STEP, reader)
        .await
        .expect("alice reaches the end")
        .expect("reader");
    let mut want: Vec<_> = (0..n).map(|i| format!("m{i}")).collect();
    want.push("end".into());
    assert_eq!(
        *got.lock().unwrap(),
        want,
        "every message once, in order, across the move"
    );
}

/// Sends `signal` (`STOP`, `CONT`) to node `i`'s process.
fn signal(cluster: &Cluster, i: usize, signal: &str) {
    let pid = cluster.nodes[i].child.as_ref().expect("running").id();
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// Node 0 is stopped (SIGSTOP) while alice's client moves to node 1, so it cannot hand
/// her session over within the deadline: node 1 starts a new session and the SDK
/// restores her channel, stream channel and topic role there. Once node 0 runs again it
/// ignores the late request and times the old session out (after `presenceTimeout`).
/// That end is superseded (issue 15): it leaves alone what the new session holds, so bob
/// (node 2) sees no REMOTE_TIMEOUT or REMOTE_LEAVE of alice in either channel and no
/// topic role of hers dropped before dave's join, whoNow still lists her, and dave's
/// topic snapshot still shows her as a publisher.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superseded_sessions_end_leaves_the_new_sessions_channels_alone() {
    let cluster = Cluster::start(3);
    let bob = cluster.login(2, "bob").await;
    let mut b_sub = bob.subscribe("feed", with_presence()).await.expect("sub");
    let mut b_presence = b_sub.presence();
    next(&mut b_presence, "bob's snapshot").await;
    let b_cam = bob.stream_channel("cam").expect("handle");
    b_cam.join(join_options("cam", "bob")).await.expect("join");
    let mut b_cam_presence = b_cam.presence_events();
    let mut b_topics = b_cam.topic_events();
    next(&mut b_cam_presence, "bob's stream snapshot").await;
    next(&mut b_topics, "bob's topic snapshot").await;

    let proxy = Retarget::start(cluster.nodes[0].addr()).await;
    // The default heartbeat: the SDK's keep-alive outlasts node 1's wait for node 0.
    let alice = login_at(&proxy.url(), "alice", |c| {
        c.presence_timeout = 2;
    })
    .await;
    let mut links = alice.link_state_events();
    let _a_sub = alice.subscribe("feed", with_presence()).await.expect("sub");
    let a_cam = alice.stream_channel("cam").expect("handle");
    a_cam
        .join(join_options("cam", "alice"))
        .await
        .expect("join");
    a_cam
        .join_topic("video", JoinTopicOptions::default())
        .await
        .expect("join topic");
    expect_presence(
        &mut b_presence,
        PresenceEventType::RemoteJoin,
        "alice",
        "bob",
    )
    .await;
    expect_presence(
        &mut b_cam_presence,
        PresenceEventType::RemoteJoin,
        "alice",
        "bob",
    )
    .await;
    let e = next(&mut b_topics, "bob: alice joins a topic").await;
    assert_eq!(
        (e.event_type, e.publisher.as_str()),
        (TopicEventType::RemoteJoin, "alice"),
        "{e:?}"
    );

    signal(&cluster, 0, "STOP");
    proxy.move_to(cluster.nodes[1].addr());
    wait_link_leaves(&mut links, LinkState::Connected).await;
    let back = wait_link(&mut links, LinkState::Connected).await;
    signal(&cluster, 0, "CONT");
    assert!(!back.is_resumed, "node 0 could not answer: {back:?}");
    assert!(back.unrestored_channels.is_empty(), "restored: {back:?}");
    assert_eq!(a_cam.joined_topics(), ["video"], "the topic role restored");
    eventually("node 0 to time out alice's old session", || {
        logged(&cluster, 0, "session timed out")
    })
    .await;
    eventually("node 0 to ignore the late hand-over request", || {
        logged(&cluster, 0, "heard too late")
    })
    .await;

    let dave = cluster.login(2, "dave").await;
    let _d_sub = dave.subscribe("feed", with_presence()).await.expect("sub");
    let d_cam = dave.stream_channel("cam").expect("handle");
    let mut d_topics = d_cam.topic_events();
    d_cam.join(join_options("cam", "dave")).await.expect("join");
    d_cam
        .join_topic("marker", JoinTopicOptions::default())
        .await
        .expect("join topic");
    expect_presence(
        &mut b_presence,
        PresenceEventType::RemoteJoin,
        "dave",
        "bob",
    )
    .await;
    expect_presence(
        &mut b_cam_presence,
        PresenceEventType::RemoteJoin,
        "dave",
        "bob",
    )
    .await;
    let e = next(&mut b_topics, "bob: dave joins a topic").await;
    assert_eq!(
        (e.event_type, e.publisher.as_str()),
        (TopicEventType::RemoteJoin, "dave"),
        "no topic event of alice's in between: {e:?}"
    );
    let snap = next(&mut d_topics, "dave's topic snapshot").await;
    assert_eq!(snap.event_type, TopicEventType::Snapshot);
    let video: Vec<_> = snap
        .topic_infos
        .iter()
        .filter(|t| t.topic_name == "video")
        .flat_map(|t| t.publishers.iter().map(|p| p.publisher_user_id.as_str()))
        .collect();
    assert_eq!(video, ["alice"], "alice still publishes in video: {snap:?}");
    let who: Vec<_> = who_now(&bob, "feed")
        .await
        .into_iter()
        .map(|(u, _)| u)
        .collect();
    assert_eq!(who, ["alice", "bob", "dave"], "alice is still a member");
}

/// A second login of one user id on another node kicks the first (R28, seed 001): the
/// first client's link fails with SAME_UID_LOGIN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_login_on_another_node_kicks_the_first() {
    let cluster = Cluster::start(2);
    let first = cluster.login(0, "alice").await;
    let mut links = first.link_state_events();
    let _second = cluster.login(1, "alice").await;
    let e = wait_link(&mut links, LinkState::Failed).await;
    assert_eq!(
        e.reason_code,
        switchboard_client::LinkReason::SameUidLogin,
        "{e:?}"
    );
}

/// The session a second login on another node kicks leaves the user's locks to the new
/// session (R28; a lock belongs to the user id): once node 0 has ended the old session
/// (the watcher saw its REMOTE_LEAVE), alice on node 1 still owns the lock her first
/// session acquired and releases it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kicked_session_leaves_the_users_locks_to_the_new_one() {
    let cluster = Cluster::start(3);
    let ty = ChannelType::Message;
    let opts = || SubscribeOptions {
        with_lock: true,
        ..Default::default()
    };
    let watcher = cluster.login(2, "watcher").await;
    let mut w_sub = watcher.subscribe("desk", opts()).await.expect("sub");
    let mut w_ev = w_sub.presence();
    next(&mut w_ev, "watcher's snapshot").await;
    let first = cluster.login(0, "alice").await;
    first.subscribe("desk", opts()).await.expect("sub");
    expect_presence(&mut w_ev, PresenceEventType::RemoteJoin, "alice", "watcher").await;
    first
        .lock()
        .set_lock("desk", ty, "pen", Some(30))
        .await
        .expect("set lock");
    first
        .lock()
        .acquire_lock("desk", ty, "pen", false)
        .await
        .expect("acquire");
    let mut links = first.link_state_events();
    let second = cluster.login(1, "alice").await;
    let e = wait_link(&mut links, LinkState::Failed).await;
    assert_eq!(e.reason_code, switchboard_client::LinkReason::SameUidLogin);
    // Node 0 ends the old session: it leaves the channel, then its locks are handled.
    expect_presence(
        &mut w_ev,
        PresenceEventType::RemoteLeave,
        "alice",
        "watcher",
    )
    .await;
    let info = watcher.lock().get_lock("desk", ty).await.expect("get lock");
    let owner: Vec<_> = info.iter().map(|l| l.owner.as_str()).collect();
    assert_eq!(owner, ["alice"], "the lock stays alice's");
    second
        .lock()
        .release_lock("desk", ty, "pen")
        .await
        .expect("the new session owns it");
    let info = watcher.lock().get_lock("desk", ty).await.expect("get lock");
    assert!(
        info.iter().all(|l| l.owner.is_empty()),
        "released: {info:?}"
    );
}

/// Node 2 is SIGKILLed with a member in the channel: the members on nodes 0 and 1 each
/// see its REMOTE_TIMEOUT exactly once (the next presence event after it is a later
/// join), and messaging between the survivors goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_times_out_its_members_once() {
    let mut cluster = Cluster::start(3);
    let alice = cluster.login(0, "alice").await;
    let bob = cluster.login(1, "bob").await;
    let mut a_sub = alice.subscribe("hall", with_presence()).await.expect("sub");
    let mut b_sub = bob.subscribe("hall", with_presence()).await.expect("sub");
    let (mut a_ev, mut b_ev) = (a_sub.presence(), b_sub.presence());
    next(&mut a_ev, "alice's snapshot").await;
    next(&mut b_ev, "bob's snapshot").await;
    expect_presence(&mut a_ev, PresenceEventType::RemoteJoin, "bob", "alice").await;
    let carol = login_at(&cluster.nodes[2].url, "carol", |c| {
        c.presence_timeout = 2;
        c.heartbeat_interval = 1;
    })
    .await;
    let _c_sub = carol.subscribe("hall", with_presence()).await.expect("sub");
    for (ev, who) in [(&mut a_ev, "alice"), (&mut b_ev, "bob")] {
        expect_presence(ev, PresenceEventType::RemoteJoin, "carol", who).await;
    }
    cluster.nodes[2].kill();
    for (ev, who) in [(&mut a_ev, "alice"), (&mut b_ev, "bob")] {
        expect_presence(ev, PresenceEventType::RemoteTimeout, "carol", who).await;
    }
    let dave = cluster.login(1, "dave").await;
    let _d_sub = dave.subscribe("hall", with_presence()).await.expect("sub");
    for (ev, who) in [(&mut a_ev, "alice"), (&mut b_ev, "bob")] {
        expect_presence(ev, PresenceEventType::RemoteJoin, "dave", who).await;
    }
    let mut b_msgs = b_sub.messages();
    alice
        .publish("hall", "still here", PublishOptions::default())
        .await
        .expect("publish");
    assert_eq!(
        text(&next(&mut b_msgs, "bob: a message").await),
        "still here"
    );
    let who: Vec<_> = who_now(&bob, "hall")
        .await
        .into_iter()
        .map(|(u, _)| u)
        .collect();
    assert_eq!(who, ["alice", "bob", "dave"], "carol is gone everywhere");
    drop(carol);
}

/// Node 2 is SIGKILLed under a channel shared by all three nodes: the members on nodes 0
/// and 1 go on messaging each other (every message once, in order) and seeing each
/// other's presence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_leaves_the_others_unaffected() {
    let mut cluster = Cluster::start(3);
    let alice = cluster.login(0, "alice").await;
    let bob = cluster.login(1, "bob").await;
    let carol = cluster.login(2, "carol").await;
    let mut a_sub = alice.subscribe("hall", with_presence()).await.expect("sub");
    let mut b_sub = bob.subscribe("hall", with_presence()).await.expect("sub");
    let _c_sub = carol.subscribe("hall", with_presence()).await.expect("sub");
    let (mut a_msgs, mut b_msgs) = (a_sub.messages(), b_sub.messages());
    let mut a_ev = a_sub.presence();
    carol
        .publish("hall", "from carol", PublishOptions::default())
        .await
        .expect("publish");
    assert_eq!(
        text(&next(&mut a_msgs, "carol's message").await),
        "from carol"
    );
    assert_eq!(
        text(&next(&mut b_msgs, "carol's message").await),
        "from carol"
    );
    cluster.nodes[2].kill();
    for i in 0..20 {
        let (from, to) = if i % 2 == 0 {
            (&alice, "a")
        } else {
            (&bob, "b")
        };
        from.publish(
            "hall",
            format!("{to}{i}").as_str(),
            PublishOptions::default(),
        )
        .await
        .expect("publish after the kill");
    }
    let want: Vec<_> = (0..20)
        .map(|i| format!("{}{i}", if i % 2 == 0 { "a" } else { "b" }))
        .collect();
    for (m, who) in [(&mut a_msgs, "alice"), (&mut b_msgs, "bob")] {
        let got = read_until(m, "b19", who).await;
        assert_eq!(got, want, "{who}: every message once, in order");
    }
    let dave = cluster.login(1, "dave").await;
    let _d_sub = dave.subscribe("hall", with_presence()).await.expect("sub");
    // Alice's events up to dave's join: carol's timeout may or may not be among them
    // (it comes after the engine's node timeout), nothing else.
    loop {
        let e = next(&mut a_ev, "alice: dave joins").await;
        if (e.event_type, e.publisher.as_str()) == (PresenceEventType::RemoteJoin, "dave") {
            break;
        }
        assert!(
            matches!(
                (e.event_type, e.publisher.as_str()),
                (PresenceEventType::Snapshot, _)
                    | (PresenceEventType::RemoteJoin, "bob" | "carol")
                    | (PresenceEventType::RemoteTimeout, "carol")
            ),
            "alice: {e:?}"
        );
    }
}

/// A lock owned by a member of a node that is SIGKILLed is freed after its ttl and
/// handed to a waiter on another node (R153 across nodes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_lock_expires_to_a_waiter_elsewhere() {
    let mut cluster = Cluster::start(2);
    let ty = ChannelType::Message;
    let opts = || SubscribeOptions {
        with_lock: true,
        ..Default::default()
    };
    let carol = cluster.login(1, "carol").await;
    carol.subscribe("desk", opts()).await.expect("sub");
    carol
        .lock()
        .set_lock("desk", ty, "pen", Some(2))
        .await
        .expect("set lock");
    carol
        .lock()
        .acquire_lock("desk", ty, "pen", false)
        .await
        .expect("acquire");
    let alice = cluster.login(0, "alice").await;
    alice.subscribe("desk", opts()).await.expect("sub");
    let a_lock = alice.lock();
    let wait = tokio::spawn(async move { a_lock.acquire_lock("desk", ty, "pen", true).await });
    wait_until("alice to wait in line", || {
        waiters(&cluster.redis, "pen") == 1
    });
    cluster.nodes[1].kill();
    // The live node finds node 1 dead after the engine's node timeout, then the lock's
    // ttl runs.
    tokio::time::timeout(NODE_TIMEOUT + STEP, wait)
        .await
        .expect("alice gets the lock after its ttl")
        .expect("task")
        .expect("acquire succeeds");
    drop(carol);
}

/// Redis is restarted without persistence (every member record lost): the members still
/// connected are members again once the nodes are back, as seen by whoNow from another
/// node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_listed_again_after_a_redis_restart() {
    let mut cluster = Cluster::start(2);
    let alice = cluster.login(0, "alice").await;
    let _a = alice
        .subscribe("lobby", with_presence())
        .await
        .expect("sub");
    let bob = cluster.login(1, "bob").await;
    let _b = bob.subscribe("lobby", with_presence()).await.expect("sub");
    assert_eq!(who_now(&bob, "lobby").await.len(), 2);
    cluster.redis.restart();
    let deadline = Instant::now() + STEP;
    loop {
        let options = WhoNowOptions::default();
        let r = bob
            .presence()
            .who_now("lobby", ChannelType::Message, options)
            .await;
        if let Ok(r) = &r
            && r.occupants.len() == 2
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alice and bob listed again after the restart: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Redis is restarted (without persistence: everything lost) under a publisher on node 0
/// and a subscriber on node 1: both nodes reconnect and resubscribe; every message whose
/// publish succeeded is delivered once, in order, unless it lies in a gap the subscriber
/// can see (the channel's epoch changed between the messages around it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_loses_nothing_silently() {
    let mut cluster = Cluster::start(2);
    let alice = cluster.login(1, "alice").await;
    let mut sub = alice
        .subscribe("feed", SubscribeOptions::default())
        .await
        .expect("subscribe");
    let mut msgs = sub.messages();
    let bob = cluster.login(0, "bob").await;
    let mut sent = Vec::new();
    for i in 0..10 {
        let body = format!("before-{i}");
        bob.publish("feed", body.as_str(), PublishOptions::default())
            .await
            .expect("publish");
        sent.push(body);
    }
    let mut got: Vec<(String, u64, u64)> = Vec::new();
    for _ in 0..10 {
        let m = next(&mut msgs, "a message before the restart").await;
        got.push((text(&m), m.position.epoch, m.position.offset));
    }
    cluster.redis.restart();
    // Publishes fail while the nodes reconnect; each is retried until one succeeds.
    for i in 0..10 {
        let body = format!("after-{i}");
        let deadline = Instant::now() + STEP;
        loop {
            match bob
                .publish("feed", body.as_str(), PublishOptions::default())
                .await
            {
                Ok(_) => break,
                Err(e) => {
                    assert!(Instant::now() < deadline, "publish after restart: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        sent.push(body);
    }
    // Node 1 must be subscribed again before "end" can arrive; retry "end" until it does.
    let deadline = Instant::now() + STEP;
    let mut ends = 0;
    'outer: loop {
        let end = format!("end-{ends}");
        ends += 1;
        bob.publish("feed", end.as_str(), PublishOptions::default())
            .await
            .expect("end");
        sent.push(end);
        let retry_at = Instant::now() + Duration::from_secs(2);
        loop {
            let left = retry_at.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, msgs.next()).await {
                Ok(Some(Ok(m))) => {
                    let b = text(&m);
                    got.push((b.clone(), m.position.epoch, m.position.offset));
                    if b.starts_with("end-") {
                        break 'outer;
                    }
                }
                Ok(other) => panic!("message stream: {other:?}"),
                Err(_) => {
                    assert!(Instant::now() < deadline, "no message after the restart");
                    break;
                }
            }
        }
    }
    assert_ne!(
        got.first().map(|g| g.1),
        got.last().map(|g| g.1),
        "the restart lost Redis's data: a new epoch"
    );
    // No duplicates, in publish order.
    let bodies: Vec<_> = got.iter().map(|g| g.0.clone()).collect();
    let index = |b: &str| sent.iter().position(|s| s == b).expect("a sent message");
    let idx: Vec<_> = bodies.iter().map(|b| index(b)).collect();
    assert!(
        idx.windows(2).all(|w| w[0] < w[1]),
        "once and in order: {bodies:?}"
    );
    // Every missing message sits between two received ones of different epochs (a gap
    // the client sees), or within one epoch's offset jump.
    for (i, s) in sent.iter().enumerate() {
        if bodies.contains(s) {
            continue;
        }
        let before = got.iter().rev().find(|g| index(&g.0) < i);
        let after = got.iter().find(|g| index(&g.0) > i);
        let (Some(b), Some(a)) = (before, after) else {
            panic!("{s} lost at an edge: {bodies:?}");
        };
        let visible = a.1 != b.1 || a.2 > b.2 + 1;
        assert!(visible, "{s} lost silently between {b:?} and {a:?}");
    }
}

/// A webhook receiver on a loopback port: a minimal HTTP/1.1 server that reads each
/// POST's body by its `content-length`, keeps it as JSON and answers 204 (keep-alive).
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<serde_json::Value>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Receiver {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hooks", listener.local_addr().expect("addr"));
        let got: Arc<Mutex<Vec<serde_json::Value>>> = Default::default();
        let g = got.clone();
        let accept = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let g = g.clone();
                tokio::spawn(async move {
                    let mut conn = tokio::io::BufReader::new(conn);
                    loop {
                        let mut length = 0usize;
                        loop {
                            let mut line = String::new();
                            match conn.read_line(&mut line).await {
                                Ok(0) | Err(_) => return,
                                Ok(_) => {}
                            }
                            let line = line.trim_end();
                            if line.is_empty() {
                                break;
                            }
                            if let Some((k, v)) = line.split_once(':')
                                && k.eq_ignore_ascii_case("content-length")
                            {
                                length = v.trim().parse().unwrap_or(0);
                            }
                        }
                        let mut body = vec![0; length];
                        if conn.read_exact(&mut body).await.is_err() {
                            return;
                        }
                        let event = serde_json::from_slice(&body).expect("a JSON event");
                        g.lock().unwrap().push(event);
                        let reply = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n";
                        if conn.get_mut().write_all(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Receiver { url, got, accept }
    }

    /// How many events named `event` of `user` (and of `channel`, when given) arrived.
    fn count(&self, event: &str, user: &str, channel: Option<&str>) -> usize {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|e| {
                e["event"] == event
                    && e["user_id"] == user
                    && channel.is_none_or(|c| e["channel"] == c)
            })
            .count()
    }

    /// Waits until `n` events named `event` of `user` (in `channel`) arrived.
    async fn wait(&self, n: usize, event: &str, user: &str, channel: Option<&str>) {
        eventually(&format!("{n} {event} of {user} in {channel:?}"), || {
            self.count(event, user, channel) >= n
        })
        .await;
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Issue 16, webhooks with the Redis engine: two nodes on one `redis-server` POST to one
/// receiver, and each change is reported once, by the node that made it. Metadata and
/// lock changes once; a second login on the other node: `user.kicked` (SAME_UID_LOGIN)
/// from the replaced session's node and no `user.offline` (the user is online); a
/// session moved to the other node by a resume (R52) sends no second `user.online` or
/// join, and its leave there is reported from there (each node's channel.occupied and
/// channel.vacated pair up); a resume that finds its node stopped starts a new session,
/// and the old one's end, superseded, sends `member.left` with reason `replaced` and no
/// `user.offline`; the members of a SIGKILLed node are timed out once, by the
/// survivor's presence sweep (R118).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_sent_once_by_the_node_that_made_the_change() {
    let hooks = Receiver::start().await;
    let secret = "whsec-multi-node-0123456789";
    let mut cluster = Cluster::start_with(
        2,
        &["--webhook-url", &hooks.url, "--webhook-secret", secret],
    );
    let ty = ChannelType::Message;
    let alice = cluster.login(0, "alice").await;
    let bob = cluster.login(1, "bob").await;
    alice.subscribe("room", with_presence()).await.expect("sub");
    bob.subscribe("room", with_presence()).await.expect("sub");
    alice
        .storage()
        .set_channel_metadata(
            "room",
            ty,
            [MetadataItem::new("topic", "hello")],
            MetadataOptions::default(),
        )
        .await
        .expect("set");
    bob.lock()
        .set_lock("room", ty, "pen", Some(30))
        .await
        .expect("set lock");
    bob.lock()
        .acquire_lock("room", ty, "pen", false)
        .await
        .expect("acquire");
    bob.lock()
        .release_lock("room", ty, "pen")
        .await
        .expect("release");
    // A second login of carol on node 1 replaces her session on node 0 (R28).
    let carol0 = cluster.login(0, "carol").await;
    hooks.wait(1, "user.online", "carol", None).await;
    let carol1 = cluster.login(1, "carol").await;
    hooks.wait(1, "user.kicked", "carol", None).await;

    // Dave resumes on node 1 a session he started on node 0.
    let proxy = Retarget::start(cluster.nodes[0].addr()).await;
    let dave = login_at(&proxy.url(), "dave", |_| {}).await;
    let mut links = dave.link_state_events();
    dave.subscribe("hall", with_presence()).await.expect("sub");
    hooks.wait(1, "member.joined", "dave", Some("hall")).await;
    proxy.move_to(cluster.nodes[1].addr());
    wait_link_leaves(&mut links, LinkState::Connected).await;
    let back = wait_link(&mut links, LinkState::Connected).await;
    assert!(back.is_resumed, "resumed on node 1: {back:?}");
    eventually("node 1 to log the take-over", || {
        logged(&cluster, 1, "session taken over")
    })
    .await;
    dave.unsubscribe("hall").await.expect("unsubscribe");
    hooks.wait(1, "member.left", "dave", Some("hall")).await;
    // Node 0 vacated the hall when dave left it, node 1 occupied it when he came.
    hooks.wait(2, "channel.vacated", "dave", Some("hall")).await;

    // Frank's resume finds node 0 stopped: a new session on node 1 (the SDK restores
    // his channel there), and node 0's old session, superseded, ends in a leave with
    // reason `replaced` and no `user.offline`.
    let proxy2 = Retarget::start(cluster.nodes[0].addr()).await;
    let frank = login_at(&proxy2.url(), "frank", |c| c.presence_timeout = 2).await;
    let mut f_links = frank.link_state_events();
    frank.subscribe("deck", with_presence()).await.expect("sub");
    hooks.wait(1, "member.joined", "frank", Some("deck")).await;
    signal(&cluster, 0, "STOP");
    proxy2.move_to(cluster.nodes[1].addr());
    wait_link_leaves(&mut f_links, LinkState::Connected).await;
    let back = wait_link(&mut f_links, LinkState::Connected).await;
    signal(&cluster, 0, "CONT");
    assert!(!back.is_resumed, "node 0 could not answer: {back:?}");
    hooks.wait(2, "member.joined", "frank", Some("deck")).await;
    eventually("node 0 to end frank's old session", || {
        hooks.got.lock().unwrap().iter().any(|e| {
            e["event"] == "member.left" && e["user_id"] == "frank" && e["reason"] == "replaced"
        })
    })
    .await;
    frank.unsubscribe("deck").await.expect("unsubscribe");
    hooks.wait(2, "member.left", "frank", Some("deck")).await;

    // Node 1 is SIGKILLed with erin in the room.
    let erin = login_at(&cluster.nodes[1].url, "erin", |c| {
        c.presence_timeout = 2;
        c.heartbeat_interval = 1;
    })
    .await;
    erin.subscribe("room", with_presence()).await.expect("sub");
    hooks.wait(1, "member.joined", "erin", Some("room")).await;
    // Everything node 1 queued before is delivered by now (one queue, in order), and
    // so is node 0's (the end marker below, after every change of node 0's).
    for (user, n) in [("alice", 1), ("bob", 1)] {
        hooks.wait(n, "member.joined", user, Some("room")).await;
    }
    hooks.wait(1, "lock.released", "bob", Some("room")).await;
    cluster.nodes[1].kill();
    hooks
        .wait(1, "member.timed_out", "erin", Some("room"))
        .await;
    alice.unsubscribe("room").await.expect("unsubscribe");
    hooks.wait(1, "member.left", "alice", Some("room")).await;

    let got = hooks.got.lock().unwrap().clone();
    let names = |e: &serde_json::Value| format!("{} {} {}", e["event"], e["user_id"], e["channel"]);
    let all: Vec<String> = got.iter().map(names).collect();
    let one = |event: &str, user: &str, channel: Option<&str>| {
        assert_eq!(
            hooks.count(event, user, channel),
            1,
            "one {event} of {user} in {channel:?}; got {all:#?}"
        );
    };
    for user in ["alice", "bob", "dave", "erin"] {
        one("user.online", user, None);
    }
    one("metadata.changed", "alice", Some("room"));
    one("lock.acquired", "bob", Some("room"));
    one("lock.released", "bob", Some("room"));
    one("member.joined", "dave", Some("hall"));
    one("member.left", "dave", Some("hall"));
    for (event, n) in [("channel.occupied", 2), ("channel.vacated", 2)] {
        assert_eq!(
            hooks.count(event, "dave", Some("hall")),
            n,
            "{event}: {all:#?}"
        );
    }
    assert_eq!(hooks.count("user.online", "frank", None), 2, "{all:#?}");
    for event in ["member.joined", "member.left"] {
        assert_eq!(
            hooks.count(event, "frank", Some("deck")),
            2,
            "{event}: {all:#?}"
        );
    }
    // Each node's occupied and vacated pair up.
    for event in ["channel.occupied", "channel.vacated"] {
        assert_eq!(
            hooks.count(event, "frank", Some("deck")),
            2,
            "{event}: {all:#?}"
        );
    }
    one("member.timed_out", "erin", Some("room"));
    let lapsed = got
        .iter()
        .find(|e| e["event"] == "member.timed_out")
        .expect("erin's timeout");
    assert_eq!(lapsed["reason"], "node_lost", "{lapsed}");
    let kicked = got
        .iter()
        .find(|e| e["event"] == "user.kicked")
        .expect("carol's kick");
    assert_eq!(kicked["code"], "SAME_UID_LOGIN", "{kicked}");
    one("user.kicked", "carol", None);
    assert_eq!(hooks.count("user.online", "carol", None), 2, "{all:#?}");
    for user in ["carol", "dave", "frank"] {
        assert_eq!(
            hooks.count("user.offline", user, None),
            0,
            "{user} is online: {all:#?}"
        );
    }
    let meta = got
        .iter()
        .find(|e| e["event"] == "metadata.changed")
        .expect("metadata.changed");
    assert!(meta["revisions"]["topic"].as_i64() > Some(0), "{meta}");
    drop((carol0, carol1, erin, bob, frank, proxy, proxy2));
}
