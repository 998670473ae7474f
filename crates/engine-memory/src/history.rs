//! [`SqliteHistory`]: the embedded, durable [`HistoryStore`] (SQLite in WAL mode).
//!
//! # Layout
//!
//! One file, `<dir>/history.sqlite3`, with one table `history(app, kind, channel, ts,
//! publisher, message_type, custom_type, payload)` whose primary key is
//! `(app, kind, channel, ts)` — every query and every per-channel trim is a range scan
//! of that index — plus an index on `ts` for the age sweep. Journal mode WAL,
//! `synchronous = FULL`: a transaction is on disk when its commit returns.
//!
//! # Threads
//!
//! rusqlite is blocking, so no database call of `append` or `query` runs on a tokio
//! worker thread (`open` does blocking file work: call it at startup):
//!
//! - **Writes** go to one dedicated thread (`switchboard-history-writer`) that owns the
//!   only write connection, fed by a bounded queue. **Group commit**: the thread takes
//!   the first queued append and every other append queued at that moment (up to
//!   1,024), stores them all in one transaction, commits once (one fsync), and
//!   only then answers each caller. Under load, the cost of durability is shared by the
//!   whole batch; [`SqliteHistory::stats`] shows the batching.
//! - **Reads** run on tokio's blocking pool (`spawn_blocking`) on a small pool of read
//!   connections; WAL lets them read concurrently with the writer, and each query sees
//!   every append acknowledged before it started.
//!
//! # Timestamps and retention
//!
//! The writer thread caches, per channel, the latest stored timestamp and the number
//! of stored messages; on a miss it reads both from the index (`MAX(ts)`, `COUNT(*)`),
//! so timestamps stay strictly increasing across restarts. The cache changes only after
//! a commit succeeded. Retention:
//! - by count, on every append: the channel's oldest messages beyond `max_per_channel`
//!   are deleted in the same transaction (normally one row);
//! - by age, by a sweep on the writer thread after a batch, at most every
//!   `AGE_SWEEP_INTERVAL` (60 s) and at most `AGE_SWEEP_MAX_ROWS` (20,000) rows per sweep; queries
//!   filter by age as well, so an expired message is never returned even before the
//!   sweep removed it.
//!
//! One process per directory: the per-channel cache assumes no other writer.

use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use switchboard_engine::{
    ChannelKey, ChannelKind, EngineError, EventKind, HistoryPage, HistoryRetention, HistoryStore,
    MessageKind, Publication, StoredMessage,
};
use tokio::sync::{mpsc, oneshot};

/// Most appends committed in one transaction.
const MAX_BATCH: usize = 1024;
/// How often the writer thread sweeps messages older than the retention age.
const AGE_SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// Most rows one age sweep deletes (the rest waits for the next sweep).
const AGE_SWEEP_MAX_ROWS: usize = 20_000;

/// Name of the database file inside the store's directory.
const FILE_NAME: &str = "history.sqlite3";
/// Appends waiting for the writer thread; senders wait (asynchronously) when it is full.
const QUEUE: usize = 8192;
/// Read connections kept open between queries.
const READERS: usize = 8;
/// Channels whose state the writer keeps cached; the cache is emptied beyond this.
const CACHE_MAX: usize = 100_000;
/// Rows deleted per statement of the age sweep.
const SWEEP_CHUNK: usize = 2_000;
/// Schema version stored in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS history (
    app          TEXT    NOT NULL,
    kind         INTEGER NOT NULL,
    channel      TEXT    NOT NULL,
    ts           INTEGER NOT NULL,
    publisher    TEXT    NOT NULL,
    message_type INTEGER NOT NULL,
    custom_type  TEXT    NOT NULL,
    payload      BLOB    NOT NULL,
    PRIMARY KEY (app, kind, channel, ts)
);
CREATE INDEX IF NOT EXISTS history_ts ON history (ts);
";

/// Counters of the writer thread, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryStats {
    /// Appends committed.
    pub appends: u64,
    /// Append transactions committed (each one fsync); `appends / transactions` is the
    /// mean batch size.
    pub transactions: u64,
    /// Most appends committed in one transaction so far.
    pub largest_batch: u64,
    /// Rows deleted by retention (count and age).
    pub trimmed: u64,
}

#[derive(Default)]
struct Counters {
    appends: AtomicU64,
    transactions: AtomicU64,
    largest_batch: AtomicU64,
    trimmed: AtomicU64,
}

/// One append waiting for the writer thread.
struct Job {
    channel: ChannelKey,
    publication: Publication,
    reply: oneshot::Sender<Result<u64, EngineError>>,
}

struct Inner {
    path: PathBuf,
    retention: HistoryRetention,
    queue: mpsc::Sender<Job>,
    readers: Mutex<Vec<Connection>>,
    counters: Arc<Counters>,
}

/// The embedded durable history store. Cheap to clone; clones share one database.
///
/// When the last clone is dropped, the writer thread commits what is still queued and
/// closes the database.
#[derive(Clone)]
pub struct SqliteHistory {
    inner: Arc<Inner>,
}

fn db_err(e: rusqlite::Error) -> EngineError {
    EngineError::Unavailable(format!("history store: {e}"))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Oldest timestamp that `retention` still keeps at wall-clock time `now`.
fn age_cutoff(retention: HistoryRetention, now: u64) -> u64 {
    let age = u64::try_from(retention.max_age.as_millis()).unwrap_or(u64::MAX);
    now.saturating_sub(age)
}

fn kind_code(kind: ChannelKind) -> i64 {
    match kind {
        ChannelKind::Message => 0,
        ChannelKind::User => 1,
        ChannelKind::Stream => 2,
        ChannelKind::UserMetadata => 3,
    }
}

fn message_type_code(kind: MessageKind) -> i64 {
    match kind {
        MessageKind::Text => 0,
        MessageKind::Binary => 1,
        // Events never go to history; coded anyway so that nothing is lost if one did.
        MessageKind::Event(EventKind::Topic) => 10,
        MessageKind::Event(EventKind::Presence) => 11,
        MessageKind::Event(EventKind::Storage) => 12,
        MessageKind::Event(EventKind::Lock) => 13,
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_i64_count(v: usize) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

use crate::sqlite::configure;

impl SqliteHistory {
    /// Opens (creating if needed) the store in `dir` and starts its writer thread.
    /// Blocking (file system and schema work).
    pub fn open(dir: &Path, retention: HistoryRetention) -> Result<Self, EngineError> {
        let (conn, path) =
            crate::sqlite::open(dir, FILE_NAME, SCHEMA, SCHEMA_VERSION, "history store")?;

        let (queue, rx) = mpsc::channel(QUEUE);
        let counters = Arc::new(Counters::default());
        let mut writer = Writer {
            conn,
            retention,
            cache: HashMap::new(),
            counters: counters.clone(),
            last_sweep: None,
        };
        std::thread::Builder::new()
            .name("switchboard-history-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| EngineError::Unavailable(format!("history store: writer thread: {e}")))?;
        Ok(SqliteHistory {
            inner: Arc::new(Inner {
                path,
                retention,
                queue,
                readers: Mutex::new(Vec::new()),
                counters,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The writer thread's counters so far.
    pub fn stats(&self) -> HistoryStats {
        let c = &self.inner.counters;
        HistoryStats {
            appends: c.appends.load(Ordering::Relaxed),
            transactions: c.transactions.load(Ordering::Relaxed),
            largest_batch: c.largest_batch.load(Ordering::Relaxed),
            trimmed: c.trimmed.load(Ordering::Relaxed),
        }
    }
}

impl Inner {
    fn reader(&self) -> Result<Connection, EngineError> {
        let pooled = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        if let Some(conn) = pooled {
            return Ok(conn);
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags).map_err(db_err)?;
        configure(&conn).map_err(db_err)?;
        conn.pragma_update(None, "query_only", true)
            .map_err(db_err)?;
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        let mut pool = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < READERS {
            pool.push(conn);
        }
    }

    /// The blocking part of [`HistoryStore::query`]; `limit > 0` and the range is not
    /// empty by its bounds.
    fn query_blocking(
        &self,
        channel: &ChannelKey,
        start: u64,
        end: u64,
        limit: usize,
    ) -> Result<HistoryPage, EngineError> {
        let upper = if start == 0 { i64::MAX } else { to_i64(start) };
        let lower = to_i64(end.max(age_cutoff(self.retention, now_ms())));
        if lower > upper {
            return Ok(HistoryPage::default());
        }
        let conn = self.reader()?;
        let result = read_page(&conn, channel, upper, lower, limit);
        // A connection that failed may be in a bad state; only healthy ones go back.
        if result.is_ok() {
            self.give_back(conn);
        }
        result
    }
}

fn read_page(
    conn: &Connection,
    channel: &ChannelKey,
    upper: i64,
    lower: i64,
    limit: usize,
) -> Result<HistoryPage, EngineError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT ts, publisher, message_type, custom_type, payload FROM history
             WHERE app = ?1 AND kind = ?2 AND channel = ?3 AND ts <= ?4 AND ts >= ?5
             ORDER BY ts DESC LIMIT ?6",
        )
        .map_err(db_err)?;
    // One row more than asked tells whether an older message remains in the range.
    let fetch = to_i64_count(limit.saturating_add(1));
    let rows = stmt
        .query_map(
            params![
                &*channel.app,
                kind_code(channel.kind),
                &*channel.name,
                upper,
                lower,
                fetch
            ],
            |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, Vec<u8>>(4)?,
                ))
            },
        )
        .map_err(db_err)?;
    let mut messages = Vec::new();
    let mut more = false;
    for row in rows {
        let (ts, publisher, message_type, custom_type, payload) = row.map_err(db_err)?;
        if messages.len() == limit {
            more = true;
            break;
        }
        let kind = match message_type {
            0 => MessageKind::Text,
            1 => MessageKind::Binary,
            10 => MessageKind::Event(EventKind::Topic),
            11 => MessageKind::Event(EventKind::Presence),
            12 => MessageKind::Event(EventKind::Storage),
            13 => MessageKind::Event(EventKind::Lock),
            other => {
                return Err(EngineError::Unavailable(format!(
                    "history store: unknown message type {other}"
                )));
            }
        };
        messages.push(StoredMessage {
            publisher: publisher.into(),
            kind,
            custom_type: custom_type.into(),
            payload: Bytes::from(payload),
            timestamp_ms: u64::try_from(ts).unwrap_or(0),
        });
    }
    let new_start = match messages.last() {
        Some(oldest) if more => oldest.timestamp_ms.saturating_sub(1),
        _ => 0,
    };
    Ok(HistoryPage {
        messages,
        new_start,
    })
}

#[async_trait]
impl HistoryStore for SqliteHistory {
    async fn append(
        &self,
        channel: &ChannelKey,
        publication: &Publication,
    ) -> Result<u64, EngineError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            channel: channel.clone(),
            publication: publication.clone(),
            reply,
        };
        let gone = || EngineError::Unavailable("history store: writer stopped".into());
        self.inner.queue.send(job).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    async fn query(
        &self,
        channel: &ChannelKey,
        start: u64,
        end: u64,
        limit: usize,
    ) -> Result<HistoryPage, EngineError> {
        if limit == 0 || (start != 0 && end != 0 && start < end) {
            return Ok(HistoryPage::default());
        }
        let inner = self.inner.clone();
        let channel = channel.clone();
        let work = move || inner.query_blocking(&channel, start, end, limit);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => rt
                .spawn_blocking(work)
                .await
                .map_err(|e| EngineError::Unavailable(format!("history store: read: {e}")))?,
            // Outside a runtime there is no worker thread to protect.
            Err(_) => work(),
        }
    }
}

/// What the writer knows of one channel.
#[derive(Debug, Clone, Copy)]
struct ChannelState {
    /// Latest stored timestamp (0 when none).
    last_ts: u64,
    /// Stored messages; `None` after an age sweep deleted rows, read again on use.
    count: Option<u64>,
}

/// The writer thread's state: the only write connection and the per-channel cache.
struct Writer {
    conn: Connection,
    retention: HistoryRetention,
    cache: HashMap<ChannelKey, ChannelState>,
    counters: Arc<Counters>,
    last_sweep: Option<Instant>,
}

impl Writer {
    fn run(&mut self, mut rx: mpsc::Receiver<Job>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.commit_batch(&mut batch);
            if self
                .last_sweep
                .is_none_or(|at| at.elapsed() >= AGE_SWEEP_INTERVAL)
            {
                self.sweep_by_age();
            }
        }
    }

    /// Stores `batch` in one transaction, then answers every caller. When the
    /// transaction fails, each append is retried in a transaction of its own, so that
    /// one append the database refuses cannot fail the others.
    fn commit_batch(&mut self, batch: &mut Vec<Job>) {
        let results = match self.try_commit(batch) {
            Ok(results) => results,
            Err(e) if batch.len() == 1 => vec![Err(db_err(e))],
            Err(_) => batch
                .iter()
                .map(|job| match self.try_commit(std::slice::from_ref(job)) {
                    Ok(mut one) => one.pop().unwrap_or_else(|| {
                        Err(EngineError::Unavailable("history store: no result".into()))
                    }),
                    Err(e) => Err(db_err(e)),
                })
                .collect(),
        };
        for (job, result) in batch.drain(..).zip(results) {
            // A caller that stopped waiting is not an error: its append is stored.
            let _ = job.reply.send(result);
        }
    }

    /// Stores `jobs` in one transaction; on success updates the counters and the cache
    /// and returns each job's result. On failure nothing was stored.
    fn try_commit(&mut self, jobs: &[Job]) -> rusqlite::Result<Vec<Result<u64, EngineError>>> {
        let mut results = Vec::with_capacity(jobs.len());
        let mut staged: HashMap<ChannelKey, ChannelState> = HashMap::new();
        let mut trimmed = 0u64;
        if let Err(e) = self.store_batch(jobs, &mut results, &mut staged, &mut trimmed) {
            // The cache may disagree with the database (that is one way a statement
            // can fail), so it is read again on next use.
            self.cache.clear();
            return Err(e);
        }
        let stored = results.iter().filter(|r| r.is_ok()).count() as u64;
        let c = &self.counters;
        c.appends.fetch_add(stored, Ordering::Relaxed);
        c.transactions.fetch_add(1, Ordering::Relaxed);
        c.largest_batch
            .fetch_max(jobs.len() as u64, Ordering::Relaxed);
        c.trimmed.fetch_add(trimmed, Ordering::Relaxed);
        if self.cache.len() + staged.len() > CACHE_MAX {
            self.cache.clear();
        }
        self.cache.extend(staged);
        Ok(results)
    }

    fn store_batch(
        &mut self,
        batch: &[Job],
        results: &mut Vec<Result<u64, EngineError>>,
        staged: &mut HashMap<ChannelKey, ChannelState>,
        trimmed: &mut u64,
    ) -> rusqlite::Result<()> {
        let max_count = u64::try_from(self.retention.max_per_channel).unwrap_or(u64::MAX);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for job in batch {
            let ch = &job.channel;
            let mut state = match staged.get(ch).or_else(|| self.cache.get(ch)) {
                Some(s) => *s,
                None => load_state(&tx, ch)?,
            };
            let count = match state.count {
                Some(n) => n,
                None => load_state(&tx, ch)?.count.unwrap_or(0),
            };
            let ts = job
                .publication
                .timestamp_ms
                .max(state.last_ts.saturating_add(1))
                .max(1);
            let Ok(ts_sql) = i64::try_from(ts) else {
                results.push(Err(EngineError::Unavailable(format!(
                    "history store: timestamp {ts} out of range"
                ))));
                continue;
            };
            let p = &job.publication;
            tx.prepare_cached(
                "INSERT INTO history
                 (app, kind, channel, ts, publisher, message_type, custom_type, payload)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                &*ch.app,
                kind_code(ch.kind),
                &*ch.name,
                ts_sql,
                &*p.publisher,
                message_type_code(p.kind),
                &*p.custom_type,
                &p.payload[..],
            ])?;
            let mut count = count.saturating_add(1);
            if count > max_count {
                let deleted = tx
                    .prepare_cached(
                        "DELETE FROM history WHERE rowid IN (
                            SELECT rowid FROM history
                            WHERE app = ?1 AND kind = ?2 AND channel = ?3
                            ORDER BY ts ASC LIMIT ?4)",
                    )?
                    .execute(params![
                        &*ch.app,
                        kind_code(ch.kind),
                        &*ch.name,
                        i64::try_from(count - max_count).unwrap_or(i64::MAX)
                    ])? as u64;
                count = count.saturating_sub(deleted);
                *trimmed += deleted;
            }
            state.last_ts = ts;
            state.count = Some(count);
            staged.insert(ch.clone(), state);
            results.push(Ok(ts));
        }
        tx.commit()
    }

    /// Deletes messages older than the retention age, in chunks, at most
    /// `AGE_SWEEP_MAX_ROWS` per call.
    fn sweep_by_age(&mut self) {
        self.last_sweep = Some(Instant::now());
        let cutoff = to_i64(age_cutoff(self.retention, now_ms()));
        let mut total = 0usize;
        while total < AGE_SWEEP_MAX_ROWS {
            let deleted = self
                .conn
                .prepare_cached(
                    "DELETE FROM history WHERE rowid IN (
                        SELECT rowid FROM history WHERE ts < ?1 LIMIT ?2)",
                )
                .and_then(|mut s| s.execute(params![cutoff, to_i64_count(SWEEP_CHUNK)]));
            match deleted {
                Ok(n) => {
                    total += n;
                    if n < SWEEP_CHUNK {
                        break;
                    }
                }
                // Retried at the next sweep; queries filter by age meanwhile.
                Err(_) => break,
            }
        }
        if total > 0 {
            self.counters
                .trimmed
                .fetch_add(total as u64, Ordering::Relaxed);
            for state in self.cache.values_mut() {
                state.count = None;
            }
        }
        if total >= AGE_SWEEP_MAX_ROWS {
            // More to do: sweep again after the next batch.
            self.last_sweep = None;
        }
    }
}

/// Reads a channel's latest timestamp and message count from the database.
fn load_state(conn: &Connection, ch: &ChannelKey) -> rusqlite::Result<ChannelState> {
    let (max, count) = conn
        .prepare_cached(
            "SELECT MAX(ts), COUNT(*) FROM history
             WHERE app = ?1 AND kind = ?2 AND channel = ?3",
        )?
        .query_row(params![&*ch.app, kind_code(ch.kind), &*ch.name], |row| {
            Ok((row.get::<_, Option<i64>>(0)?, row.get::<_, i64>(1)?))
        })
        .optional()?
        .unwrap_or((None, 0));
    Ok(ChannelState {
        last_ts: max.and_then(|m| u64::try_from(m).ok()).unwrap_or(0),
        count: Some(u64::try_from(count).unwrap_or(0)),
    })
}

#[cfg(test)]
mod tests {
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
        let recovered =
            SqliteHistory::open(&copy.0, HistoryRetention::default()).expect("open copy");
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
}
