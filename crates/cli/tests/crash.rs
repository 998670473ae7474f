//! Crash durability of metadata writes (api.md section 6, R141, R142): writers set
//! channel and user metadata as fast as they can, the `switchboard serve` process is
//! killed with SIGKILL at a random moment and restarted on the same data dir, and every
//! write a client saw acknowledged must be there with its revision. Five rounds, the
//! writes continuing across restarts, so revisions must also keep growing.
//!
//! The writers speak the raw protocol (length-delimited protobuf over WebSocket), not
//! the SDK: no reconnects or retries that could blur which writes were acknowledged.
//! The seed of the kill delays is printed; set `SWITCHBOARD_CRASH_SEED` to replay it.

use futures_util::{SinkExt, StreamExt};
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use switchboard_protocol::frame::{FrameDecoder, encode};
use switchboard_protocol::pb::{self, client_message::Body, server_message::Body as Reply};
use tokio_tungstenite::tungstenite::Message;

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");
/// An app without certificate: any token is accepted (token.md T61).
const APP: &str = "crashtestcrashtestcrashtest00001";
const CHANNEL: &str = "crash";
const ROUNDS: usize = 5;
const WRITERS: usize = 4;
/// Requests each writer keeps in flight.
const IN_FLIGHT: usize = 4;
/// Random time the server runs under load before SIGKILL, ms.
const KILL_AFTER_MS: std::ops::RangeInclusive<u64> = 50..=400;
const WAIT: Duration = Duration::from_secs(15);

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One `switchboard serve` process; killed on drop.
struct Server {
    child: Child,
    url: String,
    log: PathBuf,
    /// Keeps the stdout reader thread draining the pipe.
    _lines: mpsc::Receiver<String>,
}

impl Server {
    fn start(dir: &Path, n: usize) -> Server {
        let log = dir.join(format!("serve-{n}.log"));
        let data = dir.join("data");
        let mut child = Command::new(BIN)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--app", APP, "--data-dir"])
            .arg(&data)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("create the server log"))
            .spawn()
            .expect("spawn switchboard serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + WAIT;
        let url = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(url) = line.trim().strip_prefix("listening on") {
                        break url.trim().to_string();
                    }
                }
                Err(_) => panic!(
                    "server {n} did not print \"listening on\" within {WAIT:?}; log {}:\n{}",
                    log.display(),
                    std::fs::read_to_string(&log).unwrap_or_default()
                ),
            }
        };
        Server {
            child,
            url,
            log,
            _lines: lines,
        }
    }

    /// SIGKILL (what `Child::kill` sends on Unix), then reaps the process.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL the server");
        self.child.wait().expect("reap the server");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Which metadata object a write goes to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Object {
    Channel,
    User(String),
}

/// One set_metadata request a writer sent: every item gets the same unique `value`.
#[derive(Clone, Debug)]
struct Write {
    object: Object,
    keys: Vec<String>,
    value: String,
    /// The reply's major revision (also each written item's revision), if it came.
    acked: Option<i64>,
    round: usize,
}

fn frame(id: u32, body: Body) -> Message {
    Message::Binary(encode(&pb::ClientMessage {
        id,
        body: Some(body),
    }))
}

/// Sends a request and waits for its reply, skipping anything else.
async fn request(ws: &mut Ws, id: u32, body: Body) -> Result<Reply, String> {
    ws.send(frame(id, body)).await.map_err(|e| e.to_string())?;
    loop {
        let msg = ws
            .next()
            .await
            .ok_or("connection closed before the reply")?
            .map_err(|e| e.to_string())?;
        let Message::Binary(b) = msg else { continue };
        for m in FrameDecoder::<pb::ServerMessage>::new(b, usize::MAX) {
            let m = m.map_err(|e| format!("undecodable frame: {e}"))?;
            if m.id != id {
                continue;
            }
            return match m.body {
                Some(Reply::Error(e)) => Err(format!("error {}: {}", e.code, e.reason)),
                Some(b) => Ok(b),
                None => Err("empty reply".to_string()),
            };
        }
    }
}

async fn login(url: &str, user: &str) -> Result<Ws, String> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "{}{}",
        url.trim_end_matches('/'),
        switchboard_protocol::WS_PATH
    ))
    .await
    .map_err(|e| format!("{user}: connect: {e}"))?;
    let login = pb::LoginRequest {
        app_id: APP.to_string(),
        user_id: user.to_string(),
        token: APP.to_string(),
        sdk: "switchboard-crash-test".to_string(),
        ..Default::default()
    };
    request(&mut ws, 1, Body::Login(login))
        .await
        .map_err(|e| format!("{user}: login: {e}"))?;
    Ok(ws)
}

fn writer_user(w: usize) -> String {
    format!("writer{w}")
}

/// The `seq`th write of writer `w`: three in four go to the channel (one of the
/// writer's four keys plus the shared `counter`), one in four to the writer's own user
/// metadata (one of three keys plus its `counter`).
fn next_write(w: usize, seq: u64, round: usize) -> Write {
    let (object, key) = if seq % 4 == 3 {
        (Object::User(writer_user(w)), format!("u{}", seq % 3))
    } else {
        (Object::Channel, format!("w{w}k{}", seq % 4))
    };
    Write {
        object,
        keys: vec![key, "counter".to_string()],
        value: format!("w{w}n{seq}"),
        acked: None,
        round,
    }
}

fn write_body(write: &Write) -> Body {
    let (channel_type, channel_name) = match &write.object {
        Object::Channel => (pb::ChannelType::Message, CHANNEL.to_string()),
        // Empty name: the caller's own user metadata (R146).
        Object::User(_) => (pb::ChannelType::User, String::new()),
    };
    Body::SetMetadata(pb::MetadataWriteRequest {
        channel_type: channel_type as i32,
        channel_name,
        items: write
            .keys
            .iter()
            .map(|k| pb::MetadataItem {
                key: k.clone(),
                value: write.value.clone(),
                revision: None,
            })
            .collect(),
        ..Default::default()
    })
}

/// What one writer did in one round.
struct WriterRun {
    writes: Vec<Write>,
    /// Error replies and protocol surprises (a killed connection is not one).
    problems: Vec<String>,
    next_seq: u64,
}

/// Writes with [`IN_FLIGHT`] requests pipelined until the connection dies; signals
/// `ready` after its first acknowledgement.
async fn write_until_killed(
    url: String,
    w: usize,
    round: usize,
    mut seq: u64,
    ready: tokio::sync::mpsc::UnboundedSender<()>,
) -> WriterRun {
    let mut run = WriterRun {
        writes: Vec::new(),
        problems: Vec::new(),
        next_seq: seq,
    };
    let mut ws = match login(&url, &writer_user(w)).await {
        Ok(ws) => ws,
        Err(e) => {
            run.problems.push(format!("round {round}: {e}"));
            return run;
        }
    };
    let mut pending: HashMap<u32, usize> = HashMap::new();
    let mut next_id = 2u32;
    let mut signalled = false;
    'run: loop {
        while pending.len() < IN_FLIGHT {
            let write = next_write(w, seq, round);
            seq += 1;
            run.next_seq = seq;
            let msg = frame(next_id, write_body(&write));
            // Recorded before sending: a write the server may have received.
            run.writes.push(write);
            pending.insert(next_id, run.writes.len() - 1);
            next_id += 1;
            if ws.send(msg).await.is_err() {
                break 'run;
            }
        }
        let b = match ws.next().await {
            Some(Ok(Message::Binary(b))) => b,
            Some(Ok(_)) => continue,
            _ => break,
        };
        for m in FrameDecoder::<pb::ServerMessage>::new(b, usize::MAX) {
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    run.problems
                        .push(format!("round {round}: undecodable frame: {e}"));
                    break 'run;
                }
            };
            if m.id == 0 {
                continue;
            }
            let Some(i) = pending.remove(&m.id) else {
                run.problems
                    .push(format!("round {round}: reply to unknown id {}", m.id));
                continue;
            };
            match m.body {
                Some(Reply::SetMetadata(r)) => {
                    run.writes[i].acked = Some(r.major_revision);
                    if !signalled {
                        signalled = true;
                        let _ = ready.send(());
                    }
                }
                other => run.problems.push(format!(
                    "round {round}: write {} got {other:?}",
                    run.writes[i].value
                )),
            }
        }
    }
    run
}

/// Reads every object the writers touch from a fresh server.
async fn read_all(url: &str) -> Result<BTreeMap<Object, pb::Metadata>, String> {
    let mut ws = login(url, "checker").await?;
    let mut objects = vec![Object::Channel];
    objects.extend((0..WRITERS).map(|w| Object::User(writer_user(w))));
    let mut out = BTreeMap::new();
    for (i, object) in objects.into_iter().enumerate() {
        let (channel_type, channel_name) = match &object {
            Object::Channel => (pb::ChannelType::Message, CHANNEL.to_string()),
            Object::User(u) => (pb::ChannelType::User, u.clone()),
        };
        let req = pb::GetMetadataRequest {
            channel_type: channel_type as i32,
            channel_name,
        };
        let id = u32::try_from(i).expect("few objects") + 2;
        match request(&mut ws, id, Body::GetMetadata(req)).await? {
            Reply::GetMetadata(r) => {
                out.insert(object, r.data.unwrap_or_default());
            }
            other => return Err(format!("get {object:?}: unexpected reply {other:?}")),
        }
    }
    let _ = ws.close(None).await;
    Ok(out)
}

/// Checks the stored objects against every write sent so far; returns what is wrong.
/// `floors` holds each object's major revision at the previous check: stored and
/// acknowledged revisions since must not be below it (they never go back, R141).
fn check(
    stored: &BTreeMap<Object, pb::Metadata>,
    writes: &[Write],
    floors: &BTreeMap<Object, i64>,
    round: usize,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (object, data) in stored {
        let mine: Vec<&Write> = writes.iter().filter(|w| &w.object == object).collect();
        let by_value: HashMap<&str, &Write> = mine.iter().map(|w| (w.value.as_str(), *w)).collect();
        let items: HashMap<&str, &pb::MetadataDetail> =
            data.items.iter().map(|d| (d.key.as_str(), d)).collect();
        let floor = floors.get(object).copied().unwrap_or(-1);
        if data.major_revision < floor {
            problems.push(format!(
                "{object:?}: major revision {} went back below {floor}, read before this restart",
                data.major_revision
            ));
        }
        if data.total_count as usize != data.items.len() {
            problems.push(format!(
                "{object:?}: total_count {} but {} items",
                data.total_count,
                data.items.len()
            ));
        }
        // The major revision covers every acknowledged write.
        if let Some(max) = mine.iter().filter_map(|w| w.acked).max()
            && data.major_revision < max
        {
            problems.push(format!(
                "{object:?}: major revision {} below the acknowledged {max}",
                data.major_revision
            ));
        }
        // Acknowledged revisions made after the last check are above its floor.
        for w in mine.iter().filter(|w| w.round + 1 == round) {
            if let Some(rev) = w.acked.filter(|&r| r <= floor) {
                problems.push(format!(
                    "{object:?}: write {} acknowledged with revision {rev}, not above {floor} \
                     stored before it",
                    w.value
                ));
            }
        }
        // Every key holds the latest acknowledged write of it, or a later one.
        let mut latest: HashMap<&str, (i64, &Write)> = HashMap::new();
        for w in &mine {
            let Some(rev) = w.acked else { continue };
            for k in &w.keys {
                let e = latest.entry(k.as_str()).or_insert((rev, w));
                if rev > e.0 {
                    *e = (rev, w);
                }
            }
        }
        for (key, (rev, w)) in &latest {
            match items.get(key) {
                None => problems.push(format!(
                    "{object:?}: key {key} lost (acknowledged write {} at revision {rev})",
                    w.value
                )),
                Some(d) if d.revision < *rev => problems.push(format!(
                    "{object:?}: key {key} at revision {} ({:?}), below the acknowledged \
                     write {} at revision {rev}",
                    d.revision, d.value, w.value
                )),
                Some(d) if d.revision == *rev && d.value != w.value => problems.push(format!(
                    "{object:?}: key {key} at revision {rev} holds {:?}, acknowledged {:?}",
                    d.value, w.value
                )),
                Some(_) => {}
            }
        }
        // Every stored item comes from a write sent to that key, at that write's
        // revision if it was acknowledged, and its write is whole (R142).
        for d in &data.items {
            let Some(w) = by_value.get(d.value.as_str()) else {
                problems.push(format!(
                    "{object:?}: key {} holds {:?}, which no writer sent",
                    d.key, d.value
                ));
                continue;
            };
            if !w.keys.contains(&d.key) {
                problems.push(format!(
                    "{object:?}: key {} holds {:?}, written to {:?}",
                    d.key, d.value, w.keys
                ));
            }
            if d.revision > data.major_revision {
                problems.push(format!(
                    "{object:?}: key {} revision {} above the major revision {}",
                    d.key, d.revision, data.major_revision
                ));
            }
            if let Some(rev) = w.acked.filter(|&r| r != d.revision) {
                problems.push(format!(
                    "{object:?}: key {} holds {:?} at revision {}, acknowledged at {rev}",
                    d.key, d.value, d.revision
                ));
            }
            for other in w.keys.iter().filter(|k| **k != d.key) {
                match items.get(other.as_str()) {
                    Some(o) if o.revision > d.revision => {}
                    Some(o) if o.revision == d.revision && o.value == d.value => {}
                    o => problems.push(format!(
                        "{object:?}: write {} is partial: {} at revision {} but {other} is {:?}",
                        d.value,
                        d.key,
                        d.revision,
                        o.map(|o| (o.revision, &o.value))
                    )),
                }
            }
        }
    }
    problems
}

#[test]
fn acknowledged_metadata_writes_survive_sigkill() {
    let seed = std::env::var("SWITCHBOARD_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    println!("seed {seed} (replay with SWITCHBOARD_CRASH_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = std::env::temp_dir().join(format!("switchboard-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the test dir");
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");

    let mut writes: Vec<Write> = Vec::new();
    let mut seqs = [0u64; WRITERS];
    let mut floors: BTreeMap<Object, i64> = BTreeMap::new();
    let mut server = Server::start(&dir, 0);
    for round in 0..ROUNDS {
        let (ready_tx, mut ready) = tokio::sync::mpsc::unbounded_channel();
        let tasks: Vec<_> = (0..WRITERS)
            .map(|w| {
                rt.spawn(write_until_killed(
                    server.url.clone(),
                    w,
                    round,
                    seqs[w],
                    ready_tx.clone(),
                ))
            })
            .collect();
        drop(ready_tx);
        // The kill delay starts once every writer has had a write acknowledged.
        rt.block_on(async {
            for _ in 0..WRITERS {
                tokio::time::timeout(WAIT, ready.recv())
                    .await
                    .expect("every writer gets an acknowledgement")
                    .expect("a writer ended before its first acknowledgement");
            }
        });
        let delay = rng.random_range(KILL_AFTER_MS);
        std::thread::sleep(Duration::from_millis(delay));
        let log = server.log.clone();
        server.kill();
        let mut problems = Vec::new();
        let (mut sent, mut acked) = (0, 0);
        for (w, task) in tasks.into_iter().enumerate() {
            let run = rt
                .block_on(async { tokio::time::timeout(WAIT, task).await })
                .expect("a writer notices the killed server")
                .expect("writer task");
            seqs[w] = run.next_seq;
            sent += run.writes.len();
            acked += run.writes.iter().filter(|w| w.acked.is_some()).count();
            problems.extend(run.problems);
            writes.extend(run.writes);
        }
        assert!(
            problems.is_empty(),
            "seed {seed}, round {round}: writers failed (log {}): {problems:#?}",
            log.display()
        );

        server = Server::start(&dir, round + 1);
        let stored = rt
            .block_on(read_all(&server.url))
            .unwrap_or_else(|e| panic!("seed {seed}, round {round}: reading back: {e}"));
        let problems = check(&stored, &writes, &floors, round + 1);
        let channel_major = stored[&Object::Channel].major_revision;
        println!(
            "round {round}: killed after {delay} ms; {sent} writes sent, {acked} acknowledged; \
             channel major revision {channel_major} after restart"
        );
        if !problems.is_empty() {
            let shown: Vec<_> = problems.iter().take(30).collect();
            panic!(
                "seed {seed}, round {round}: {} problems after SIGKILL and restart on {} \
                 (server log before the kill {}): {shown:#?}",
                problems.len(),
                dir.display(),
                log.display()
            );
        }
        floors = stored
            .iter()
            .map(|(o, d)| (o.clone(), d.major_revision))
            .collect();
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The checker itself flags what the crash test looks for: a lost key, an item below
/// its acknowledged revision, a value no one sent, a partial write, and revisions
/// going back.
#[test]
fn check_flags_lost_stale_unknown_and_partial_writes() {
    let write = |value: &str, keys: &[&str], acked: Option<i64>| Write {
        object: Object::Channel,
        keys: keys.iter().map(|k| k.to_string()).collect(),
        value: value.to_string(),
        acked,
        round: 0,
    };
    let item = |key: &str, value: &str, revision: i64| pb::MetadataDetail {
        key: key.to_string(),
        value: value.to_string(),
        revision,
        ..Default::default()
    };
    let object = |major_revision: i64, items: Vec<pb::MetadataDetail>| {
        BTreeMap::from([(
            Object::Channel,
            pb::Metadata {
                total_count: u32::try_from(items.len()).expect("few"),
                major_revision,
                items,
            },
        )])
    };
    let writes = vec![
        write("a1", &["a", "counter"], Some(1)),
        write("b2", &["b", "counter"], Some(2)),
        write("a3", &["a", "counter"], None),
    ];
    let none = BTreeMap::new();
    // Everything acknowledged, plus an unacknowledged write that made it: fine.
    let good = object(
        3,
        vec![
            item("a", "a3", 3),
            item("b", "b2", 2),
            item("counter", "a3", 3),
        ],
    );
    assert_eq!(check(&good, &writes, &none, 1), Vec::<String>::new());
    // Without the unacknowledged write: fine too.
    let good = object(
        2,
        vec![
            item("a", "a1", 1),
            item("b", "b2", 2),
            item("counter", "b2", 2),
        ],
    );
    assert_eq!(check(&good, &writes, &none, 1), Vec::<String>::new());
    let bad = [
        // b lost.
        object(2, vec![item("a", "a1", 1), item("counter", "b2", 2)]),
        // The last acknowledged write of counter lost, major revision back.
        object(
            1,
            vec![
                item("a", "a1", 1),
                item("b", "b2", 2),
                item("counter", "a1", 1),
            ],
        ),
        // A value no one sent.
        object(
            2,
            vec![
                item("a", "zz", 2),
                item("b", "b2", 2),
                item("counter", "b2", 2),
            ],
        ),
        // a3 applied to counter but not to a.
        object(
            3,
            vec![
                item("a", "a1", 1),
                item("b", "b2", 2),
                item("counter", "a3", 3),
            ],
        ),
    ];
    for (i, stored) in bad.iter().enumerate() {
        assert!(!check(stored, &writes, &none, 1).is_empty(), "case {i}");
    }
    // Revisions below what was read before the restart.
    let floors = BTreeMap::from([(Object::Channel, 5)]);
    let good = object(
        3,
        vec![
            item("a", "a3", 3),
            item("b", "b2", 2),
            item("counter", "a3", 3),
        ],
    );
    assert!(!check(&good, &writes, &floors, 1).is_empty());
}
