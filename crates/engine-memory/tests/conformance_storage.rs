//! `SqliteStorage` against the storage and lock conformance kit.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};
use switchboard_engine::conformance_storage::run_storage_suite;
use switchboard_engine_memory::SqliteStorage;

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "switchboard-storage-{tag}-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every check on a fresh store.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_storage_passes_the_conformance_suite() {
    let dir = TempDir::new("suite");
    let next = AtomicUsize::new(0);
    run_storage_suite(|| {
        let n = next.fetch_add(1, Ordering::Relaxed);
        Arc::new(SqliteStorage::open(&dir.0.join(n.to_string())).expect("open"))
    })
    .await;
}

/// Every check on one shared store: the checks use their own channels and apps, so
/// they must pass side by side as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_storage_passes_the_conformance_suite_on_one_store() {
    let dir = TempDir::new("shared");
    let store = Arc::new(SqliteStorage::open(&dir.0).expect("open"));
    run_storage_suite(|| store.clone()).await;
}

/// The contract's durability, which the kit cannot see: acknowledged metadata writes
/// (major revision included, even with no items left) and lock definitions survive a
/// reopen; lock ownership and waiting lines do not (api.md §7: a restart frees every
/// lock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_and_definitions_survive_reopen_ownership_does_not() {
    use switchboard_engine::{
        Acquire, ChannelKey, ChannelKind, LockInfo, Locks, MetadataStore, MetadataWrite, NO_CHECK,
        WriteItem, WriteOp,
    };
    let dir = TempDir::new("reopen");
    let ch = ChannelKey::new("app", ChannelKind::Stream, "durable");
    let emptied = ChannelKey::new("app", ChannelKind::User, "emptied");
    let w = |op, items: &[(&str, &str)]| MetadataWrite {
        op,
        items: items
            .iter()
            .map(|(k, v)| WriteItem {
                key: k.to_string(),
                value: v.to_string(),
                revision: NO_CHECK,
            })
            .collect(),
        major_revision: NO_CHECK,
        lock_gate: None,
        timestamp_ms: Some(1_700_000_000_000),
        author: Some("alice".into()),
    };
    let (before, before_emptied) = {
        let s = SqliteStorage::open(&dir.0).expect("open");
        for i in 0..5 {
            s.write(&ch, w(WriteOp::Set, &[("k", &i.to_string()), ("x", "y")]))
                .await
                .expect("write")
                .expect("accepted");
        }
        s.write(&ch, w(WriteOp::Remove, &[("x", "")]))
            .await
            .expect("write")
            .expect("accepted");
        s.write(&emptied, w(WriteOp::Set, &[("a", "1")]))
            .await
            .expect("write")
            .expect("accepted");
        s.write(&emptied, w(WriteOp::Remove, &[]))
            .await
            .expect("write")
            .expect("accepted");
        s.set(&ch, "l", 30, 8).await.expect("set").expect("defined");
        assert_eq!(
            s.acquire(&ch, "l", "alice", false).await.expect("acquire"),
            Ok(Acquire::Acquired { ttl_s: 30 })
        );
        assert_eq!(
            s.acquire(&ch, "l", "bob", true).await.expect("acquire"),
            Ok(Acquire::Queued)
        );
        (
            s.get(&ch).await.expect("get"),
            s.get(&emptied).await.expect("get"),
        )
        // Dropped without any close call.
    };
    let s = SqliteStorage::open(&dir.0).expect("reopen");
    assert_eq!(s.get(&ch).await.expect("get"), before, "metadata survives");
    assert_eq!(
        s.get(&emptied).await.expect("get"),
        before_emptied,
        "the major revision of an object without items survives (R141)"
    );
    assert!(before_emptied.items.is_empty() && before_emptied.major_revision > 0);
    assert_eq!(
        s.list(&ch).await.expect("list"),
        [LockInfo {
            name: "l".into(),
            owner: None,
            ttl_s: 30
        }],
        "the definition survives, its owner does not"
    );
    assert_eq!(
        s.acquire(&ch, "l", "carol", false).await.expect("acquire"),
        Ok(Acquire::Acquired { ttl_s: 30 })
    );
    assert_eq!(
        s.release(&ch, "l", "carol")
            .await
            .expect("release")
            .expect("owner")
            .next,
        None,
        "the waiting line does not survive"
    );
}

fn set_write(key: &str, value: &str) -> switchboard_engine::MetadataWrite {
    use switchboard_engine::{MetadataWrite, NO_CHECK, WriteItem, WriteOp};
    MetadataWrite {
        op: WriteOp::Set,
        items: vec![WriteItem {
            key: key.into(),
            value: value.into(),
            revision: NO_CHECK,
        }],
        major_revision: NO_CHECK,
        lock_gate: None,
        timestamp_ms: Some(1_700_000_000_000),
        author: Some("alice".into()),
    }
}

/// Group commit, checked so that it can fail: while an outside connection holds the
/// database's write lock, the writer thread blocks in its first transaction and 500
/// concurrent writes queue behind it; once the lock is released they are committed in
/// at most three transactions (without grouping it would be 500, one fsync each), and
/// none of them is acknowledged before its commit (they all wait for the lock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_writes_share_one_commit() {
    use std::task::Poll;
    use switchboard_engine::{ChannelKey, ChannelKind, MetadataStore};
    const WRITES: usize = 500;
    let dir = TempDir::new("group");
    let store = Arc::new(SqliteStorage::open(&dir.0).expect("open"));
    let before = store.transactions();
    let blocker = rusqlite::Connection::open(store.path()).expect("open blocker");
    blocker
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");

    let queued = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..WRITES {
        let (store, queued, acked) = (store.clone(), queued.clone(), acked.clone());
        tasks.spawn(async move {
            let ch = ChannelKey::new("app", ChannelKind::Message, format!("c{i}"));
            let mut write = store.write(&ch, set_write("k", &i.to_string()));
            // The first poll queues the write for the writer thread.
            let first = std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await;
            queued.fetch_add(1, Ordering::SeqCst);
            let result = match first {
                Poll::Ready(r) => r,
                Poll::Pending => write.await,
            };
            acked.fetch_add(1, Ordering::SeqCst);
            result.expect("no engine error").expect("accepted");
        });
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while queued.load(Ordering::SeqCst) < WRITES {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} writes queued",
            queued.load(Ordering::SeqCst)
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(
        acked.load(Ordering::SeqCst),
        0,
        "no write is acknowledged while its commit cannot happen"
    );
    blocker
        .execute_batch("COMMIT")
        .expect("release the write lock");
    while let Some(r) = tasks.join_next().await {
        r.expect("write task");
    }
    let transactions = store.transactions() - before;
    assert!(
        (1..=3).contains(&transactions),
        "group commit: {transactions} transactions for {WRITES} queued writes"
    );
    for i in [0, WRITES / 2, WRITES - 1] {
        let ch = ChannelKey::new("app", ChannelKind::Message, format!("c{i}"));
        let got = store.get(&ch).await.expect("get");
        assert_eq!(got.items["k"].value, i.to_string());
    }
}

/// The journal mode is in the file: an outside connection finds the database in WAL
/// mode (the mode `synchronous = FULL` is paired with; that setting itself belongs to
/// the store's own connection and cannot be read from outside).
#[test]
fn the_database_file_is_in_wal_mode() {
    let dir = TempDir::new("wal");
    let store = SqliteStorage::open(&dir.0).expect("open");
    let outside = rusqlite::Connection::open(store.path()).expect("open the file");
    let mode: String = outside
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .expect("journal_mode");
    assert_eq!(mode.to_lowercase(), "wal");
}

/// Set in the child process of [`acknowledged_writes_survive_a_killed_process`]: the
/// data directory it writes to.
const CHILD_DIR: &str = "SWITCHBOARD_STORAGE_CHILD_DIR";

/// The child's part: defines and takes a lock, then writes one key after another,
/// printing `acked N` once write N is acknowledged, until it is killed.
async fn write_until_killed(dir: &std::path::Path) {
    use switchboard_engine::{ChannelKey, ChannelKind, Locks, MetadataStore};
    let store = SqliteStorage::open(dir).expect("open");
    let ch = ChannelKey::new("app", ChannelKind::Stream, "durable");
    store
        .set(&ch, "l", 30, 8)
        .await
        .expect("set")
        .expect("defined");
    store
        .acquire(&ch, "l", "alice", false)
        .await
        .expect("acquire")
        .expect("acquired");
    println!("locked");
    for i in 0u64.. {
        store
            .write(&ch, set_write(&format!("k{i}"), &i.to_string()))
            .await
            .expect("write")
            .expect("accepted");
        println!("acked {i}");
    }
}

/// The number in an `acked N` line of the child.
fn acked(line: &str) -> Option<u64> {
    line.strip_prefix("acked ")
        .map(|n| n.parse().expect("a write number"))
}

/// A real restart, not an in-process reopen: a child process writes metadata as fast
/// as it can and is killed with SIGKILL (no close, no destructor) after 200 acknowledged
/// writes; the store opened again in this process holds every write the child saw
/// acknowledged, with its value, and the lock definition — but not its owner (api.md
/// §7: a restart frees every lock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_killed_process() {
    use std::io::BufRead;
    use switchboard_engine::{ChannelKey, ChannelKind, LockInfo, Locks, MetadataStore};
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        write_until_killed(std::path::Path::new(&dir)).await;
        return;
    }
    let dir = TempDir::new("killed");
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "acknowledged_writes_survive_a_killed_process",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD_DIR, &dir.0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the child");
    let stdout = child.stdout.take().expect("child stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut last_acked = None;
    while last_acked.is_none_or(|n| n < 200) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            let _ = child.kill();
            panic!("the child stopped or stalled after {last_acked:?} acknowledged writes");
        };
        last_acked = acked(&line).or(last_acked);
    }
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
    // Acknowledgements printed before the kill and read only now count too.
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(1)) {
        last_acked = acked(&line).or(last_acked);
    }
    let last_acked = last_acked.expect("writes acknowledged");

    let store = SqliteStorage::open(&dir.0).expect("open after the kill");
    let ch = ChannelKey::new("app", ChannelKind::Stream, "durable");
    let got = store.get(&ch).await.expect("get");
    for i in 0..=last_acked {
        let item = got
            .items
            .get(&format!("k{i}"))
            .unwrap_or_else(|| panic!("acknowledged write {i} of 0..={last_acked} lost"));
        assert_eq!(item.value, i.to_string(), "write {i}");
    }
    assert_eq!(
        store.list(&ch).await.expect("list"),
        [LockInfo {
            name: "l".into(),
            owner: None,
            ttl_s: 30
        }],
        "the definition survives the kill, its owner does not"
    );
}
