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
    /// `PRAGMA synchronous` of the writer's connection, read when it was opened.
    synchronous: i64,
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
        let synchronous = crate::sqlite::synchronous(&conn).map_err(db_err)?;

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
                synchronous,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// `PRAGMA synchronous` of the connection the writer thread commits on, read from
    /// it when the store was opened (2 = FULL); nothing changes it later.
    pub fn writer_synchronous(&self) -> i64 {
        self.inner.synchronous
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

#[cfg(test)]
mod tests;
mod writer;

use writer::Writer;
