//! The tests of [`super::SqliteHistory`]: its own contract beyond the conformance kit
//! (group commit, trimming, the age sweep, reopening).

use super::*;
use std::sync::atomic::AtomicUsize;
use switchboard_engine::conformance_history::{self, history_publication};

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
            "switchboard-history-{tag}-{}-{}-{nanos}",
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

fn key(name: &str) -> ChannelKey {
    ChannelKey::new("app", ChannelKind::Message, name)
}

fn base_ms() -> u64 {
    now_ms() - 60_000
}

/// Every (timestamp, payload) of `channel`, newest first, paged by 100.
async fn read_all(s: &SqliteHistory, channel: &ChannelKey) -> Vec<(u64, Bytes)> {
    let mut out = Vec::new();
    let mut start = 0;
    loop {
        let page = s.query(channel, start, 0, 100).await.expect("query");
        out.extend(
            page.messages
                .iter()
                .map(|m| (m.timestamp_ms, m.payload.clone())),
        );
        if page.new_start == 0 {
            return out;
        }
        start = page.new_start;
    }
}

/// Appends `n` messages, all with timestamp `t`, to each of `channels`, concurrently.
async fn burst(s: &SqliteHistory, channels: &[ChannelKey], n: usize, t: u64) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        for ch in channels {
            let s = s.clone();
            let ch = ch.clone();
            tasks.spawn(async move {
                s.append(&ch, &history_publication("p", &format!("m{i}"), t))
                    .await
            });
        }
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("task").expect("append");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_history_passes_the_conformance_suite() {
    let dir = TempDir::new("suite");
    let next = AtomicUsize::new(0);
    conformance_history::run_history_suite(|retention| {
        let n = next.fetch_add(1, Ordering::Relaxed);
        let store = SqliteHistory::open(&dir.0.join(n.to_string()), retention).expect("open");
        Arc::new(store) as Arc<dyn HistoryStore>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_survive_reopen_with_the_same_timestamps() {
    let dir = TempDir::new("reopen");
    let channels = [key("a"), key("b"), ChannelKey::user_pair("app", "x", "y")];
    let t = base_ms();
    let before: Vec<_>;
    {
        let s = SqliteHistory::open(&dir.0, HistoryRetention::default()).expect("open");
        burst(&s, &channels, 100, t).await;
        let mut all = Vec::new();
        for ch in &channels {
            all.push(read_all(&s, ch).await);
        }
        before = all;
        // Dropped without any close call.
    }
    let s = SqliteHistory::open(&dir.0, HistoryRetention::default()).expect("reopen");
    for (ch, want) in channels.iter().zip(&before) {
        let got = read_all(&s, ch).await;
        assert_eq!(got.len(), 100, "every acknowledged append is kept");
        assert_eq!(&got, want, "same timestamps and payloads after reopening");
    }
    for ch in &channels {
        assert_eq!(
            s.append(ch, &history_publication("p", "after", t))
                .await
                .expect("append"),
            t + 100,
            "timestamps stay strictly increasing across a restart"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_appends_are_in_the_files_without_close() {
    // Simulated crash: while the store is still open (no close, no checkpoint),
    // copy the database and its WAL as they are, and open the copy.
    let dir = TempDir::new("crash");
    let copy = TempDir::new("crash-copy");
    let ch = key("crash");
    let t = base_ms();
    let s = SqliteHistory::open(&dir.0, HistoryRetention::default()).expect("open");
    burst(&s, std::slice::from_ref(&ch), 500, t).await;
    let want = read_all(&s, &ch).await;
    assert_eq!(want.len(), 500);
    for name in [FILE_NAME.to_string(), format!("{FILE_NAME}-wal")] {
        let from = dir.0.join(&name);
        if from.exists() {
            std::fs::copy(&from, copy.0.join(&name)).expect("copy");
        }
    }
    let recovered = SqliteHistory::open(&copy.0, HistoryRetention::default()).expect("open copy");
    assert_eq!(
        read_all(&recovered, &ch).await,
        want,
        "the files alone hold every acknowledged append"
    );
    drop(s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_transactions() {
    let dir = TempDir::new("group");
    let s = SqliteHistory::open(&dir.0, HistoryRetention::default()).expect("open");
    let channels: Vec<_> = (0..10).map(|i| key(&format!("c{i}"))).collect();
    let t = base_ms();
    burst(&s, &channels, 200, t).await;
    for ch in &channels {
        let got = read_all(&s, ch).await;
        let ts: Vec<u64> = got.iter().map(|(ts, _)| *ts).collect();
        assert_eq!(
            ts,
            (t..t + 200).rev().collect::<Vec<_>>(),
            "all 200 appends of the channel stored, timestamps consecutive"
        );
    }
    let stats = s.stats();
    println!("2,000 concurrent appends: {stats:?}");
    assert_eq!(stats.appends, 2000, "every append committed");
    assert!(stats.transactions >= 1 && stats.transactions <= 2000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_appends_commit_in_one_transaction() {
    // Hold the database's write lock from outside so that the writer thread blocks
    // on its first batch while the other appends queue up; once released, the
    // queued appends must be committed in batches of up to 1,024.
    let dir = TempDir::new("batch");
    let s = SqliteHistory::open(&dir.0, HistoryRetention::default()).expect("open");
    let blocker = Connection::open(s.path()).expect("open blocker");
    blocker.execute_batch("BEGIN IMMEDIATE").expect("lock");
    let ch = key("batch");
    let t = base_ms();
    let started = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..2000 {
        let s = s.clone();
        let ch = ch.clone();
        let started = started.clone();
        tasks.spawn(async move {
            started.fetch_add(1, Ordering::SeqCst);
            // The queue has room for all, so this enqueues on its first poll.
            s.append(&ch, &history_publication("p", &i.to_string(), t))
                .await
        });
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while started.load(Ordering::SeqCst) < 2000 {
        assert!(Instant::now() < deadline, "appends never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The writer holds its first batch (blocked on the lock); the rest is queued.
    let queued = QUEUE - s.inner.queue.capacity();
    blocker.execute_batch("COMMIT").expect("unlock");
    while let Some(r) = tasks.join_next().await {
        r.expect("task").expect("append");
    }
    let stats = s.stats();
    println!("2,000 appends, {queued} queued behind a lock: {stats:?}");
    assert_eq!(stats.appends, 2000);
    assert!(
        stats.transactions <= 3,
        "group commit: {} transactions for 2,000 appends",
        stats.transactions
    );
    assert!(
        stats.largest_batch >= 976 && stats.largest_batch <= MAX_BATCH as u64,
        "batches hold up to {MAX_BATCH} appends: {}",
        stats.largest_batch
    );
    assert_eq!(read_all(&s, &ch).await.len(), 2000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_append_does_not_fail_its_batch() {
    let dir = TempDir::new("refused");
    let s = SqliteHistory::open(&dir.0, HistoryRetention::default()).expect("open");
    let raw = Connection::open(s.path()).expect("open raw");
    raw.execute_batch(
        "CREATE TRIGGER refuse BEFORE INSERT ON history WHEN NEW.publisher = 'evil'
         BEGIN SELECT RAISE(ABORT, 'refused'); END;
         BEGIN IMMEDIATE;",
    )
    .expect("trigger and lock");
    let ch = key("refused");
    let t = base_ms();
    // A first append occupies the writer (blocked on the lock) so that the next
    // twenty, among them the refused one, queue up and form one batch.
    let primer = {
        let s = s.clone();
        let ch = key("primer");
        tokio::spawn(async move { s.append(&ch, &history_publication("p", "x", t)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let s = s.clone();
        let ch = ch.clone();
        let started = started.clone();
        let publisher = if i == 10 { "evil" } else { "good" };
        tasks.spawn(async move {
            started.fetch_add(1, Ordering::SeqCst);
            let p = Publication {
                publisher: publisher.into(),
                ..history_publication("p", "x", t)
            };
            (publisher, s.append(&ch, &p).await)
        });
    }
    while started.load(Ordering::SeqCst) < 20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    raw.execute_batch("COMMIT").expect("unlock");
    let mut ok = 0;
    while let Some(r) = tasks.join_next().await {
        match r.expect("task") {
            ("good", r) => {
                r.expect("a good append succeeds");
                ok += 1;
            }
            (_, r) => assert!(
                matches!(r, Err(EngineError::Unavailable(_))),
                "the refused append fails"
            ),
        }
    }
    assert_eq!(ok, 19);
    primer.await.expect("task").expect("primer");
    assert_eq!(
        s.stats().transactions,
        20,
        "the primer's transaction, then one per good append of the failed batch"
    );
    let ts: Vec<u64> = read_all(&s, &ch).await.iter().map(|(t, _)| *t).collect();
    assert_eq!(ts, (t..t + 19).rev().collect::<Vec<_>>());
}

#[tokio::test]
async fn lowered_count_retention_applies_on_the_next_append() {
    let dir = TempDir::new("lowered");
    let ch = key("lowered");
    let t = base_ms();
    {
        let s = SqliteHistory::open(&dir.0, HistoryRetention::default()).expect("open");
        for i in 0..50 {
            s.append(&ch, &history_publication("p", "x", t + i))
                .await
                .expect("append");
        }
    }
    let s = SqliteHistory::open(
        &dir.0,
        HistoryRetention {
            max_per_channel: 10,
            ..HistoryRetention::default()
        },
    )
    .expect("reopen");
    s.append(&ch, &history_publication("p", "x", t))
        .await
        .expect("append");
    let ts: Vec<u64> = read_all(&s, &ch).await.iter().map(|(t, _)| *t).collect();
    assert_eq!(ts, (41..=50).rev().map(|i| t + i).collect::<Vec<_>>());
    assert_eq!(s.stats().trimmed, 41);
}

#[tokio::test]
async fn age_sweep_deletes_expired_rows() {
    let dir = TempDir::new("sweep");
    let s = SqliteHistory::open(
        &dir.0,
        HistoryRetention {
            max_age: Duration::from_secs(3600),
            ..HistoryRetention::default()
        },
    )
    .expect("open");
    let old = base_ms() - 2 * 3600 * 1000;
    // The first batch is followed by a sweep.
    for ch in [key("a"), key("b")] {
        s.append(&ch, &history_publication("p", "old", old))
            .await
            .expect("append");
    }
    s.append(&key("c"), &history_publication("p", "new", base_ms()))
        .await
        .expect("append");
    let raw = Connection::open(s.path()).expect("open raw");
    let rows: i64 = raw
        .query_row("SELECT COUNT(*) FROM history", [], |r| r.get(0))
        .expect("count");
    // "a" was swept after the first batch; "b" waits for the next sweep but is
    // filtered out of queries.
    assert_eq!(rows, 2, "expired row deleted from the file");
    assert!(s.stats().trimmed >= 1);
    assert!(read_all(&s, &key("b")).await.is_empty());
    assert_eq!(read_all(&s, &key("c")).await.len(), 1);
}

#[test]
fn open_fails_cleanly_on_a_bad_directory() {
    let dir = TempDir::new("bad");
    let file = dir.0.join("not-a-dir");
    std::fs::write(&file, b"x").expect("write");
    assert!(SqliteHistory::open(&file, HistoryRetention::default()).is_err());
    let garbage = TempDir::new("garbage");
    std::fs::write(garbage.0.join(FILE_NAME), vec![7u8; 8192]).expect("write");
    assert!(SqliteHistory::open(&garbage.0, HistoryRetention::default()).is_err());
}
