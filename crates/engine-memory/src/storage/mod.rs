//! The embedded storage engine: channel and user metadata and lock definitions, durable
//! in SQLite under the data directory (WAL, `synchronous = FULL`), with lock ownership
//! and waiting lines in memory (a restart frees every lock, api.md §7).
//!
//! How a write works:
//! - Every object and lock lives in memory, loaded at open. One mutex covers both, so a
//!   metadata write checks its lock gate, its guards and applies itself in one step.
//! - Under that mutex the write's rows are queued, in order, to the single writer
//!   thread (`switchboard-storage-writer`). The thread takes everything queued (up to
//!   [`MAX_BATCH`]), writes it in one transaction and commits once: one fsync for the
//!   whole group (group commit). Only then does each writer get its answer.
//! - Reads wait until every write queued before them is committed, so nobody sees a
//!   revision that a crash could take back.
//! - If a commit fails, memory may be ahead of the disk: the store stops accepting
//!   writes (fail-stop) and says so; a restart reloads what was committed.

use rusqlite::{Connection, TransactionBehavior, params};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use switchboard_engine::{
    Acquire, AppBudgets, Budgets, ChannelKey, ChannelKind, EngineError, Freed, Item, LockInfo,
    LockRejection, Locks, MetadataObject, MetadataStore, MetadataWrite, NO_CHECK, Rejection,
    WriteOp,
};
use tokio::sync::{oneshot, watch};

/// Most writes committed in one transaction.
pub const MAX_BATCH: usize = 1024;

const FILE_NAME: &str = "storage.sqlite3";
const SCHEMA_VERSION: i64 = 1;
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS metadata_objects (
    app TEXT NOT NULL, kind INTEGER NOT NULL, name TEXT NOT NULL,
    major INTEGER NOT NULL,
    PRIMARY KEY (app, kind, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS metadata_items (
    app TEXT NOT NULL, kind INTEGER NOT NULL, name TEXT NOT NULL, key TEXT NOT NULL,
    value TEXT NOT NULL, revision INTEGER NOT NULL, updated INTEGER NOT NULL,
    author TEXT NOT NULL,
    PRIMARY KEY (app, kind, name, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS locks (
    app TEXT NOT NULL, kind INTEGER NOT NULL, name TEXT NOT NULL, lock TEXT NOT NULL,
    ttl INTEGER NOT NULL,
    PRIMARY KEY (app, kind, name, lock)
) WITHOUT ROWID;
";

fn db_err(e: rusqlite::Error) -> EngineError {
    EngineError::Unavailable(format!("storage: {e}"))
}

fn kind_code(kind: ChannelKind) -> i64 {
    match kind {
        ChannelKind::Message => 1,
        ChannelKind::Stream => 2,
        ChannelKind::User => 3,
        ChannelKind::UserMetadata => 4,
    }
}

fn kind_of(code: i64) -> Option<ChannelKind> {
    match code {
        1 => Some(ChannelKind::Message),
        2 => Some(ChannelKind::Stream),
        3 => Some(ChannelKind::User),
        4 => Some(ChannelKind::UserMetadata),
        _ => None,
    }
}

/// One row change, applied by the writer thread.
enum Row {
    Major(ChannelKey, i64),
    PutItem(ChannelKey, String, Item),
    DeleteItem(ChannelKey, String),
    DeleteItems(ChannelKey),
    PutLock(ChannelKey, Arc<str>, u32),
    DeleteLock(ChannelKey, Arc<str>),
}

/// One write's rows and who waits for them.
struct Job {
    seq: u64,
    rows: Vec<Row>,
    reply: Option<oneshot::Sender<Result<(), EngineError>>>,
}

/// One lock in memory.
#[derive(Debug, Clone)]
struct LockState {
    ttl_s: u32,
    owner: Option<Arc<str>>,
    /// When the owner's connection was lost: the time it loses the lock, ms.
    deadline: Option<u64>,
    waiters: VecDeque<Arc<str>>,
}

#[derive(Default)]
struct State {
    objects: HashMap<ChannelKey, Arc<MetadataObject>>,
    /// Bytes of keys and values of each object in `objects` (its budget's measure).
    object_bytes: HashMap<ChannelKey, usize>,
    locks: HashMap<ChannelKey, BTreeMap<Arc<str>, LockState>>,
    /// Lock definitions per app (against its `lock_definitions` budget).
    lock_counts: HashMap<Arc<str>, usize>,
    /// Sequence number of the last write queued to the writer.
    queued: u64,
}

struct Inner {
    path: PathBuf,
    state: Mutex<State>,
    queue: std::sync::mpsc::Sender<Job>,
    /// The sequence number of the last committed write.
    committed: watch::Receiver<u64>,
    failed: Arc<AtomicBool>,
    transactions: Arc<AtomicU64>,
    budgets: OnceLock<Budgets>,
    /// `PRAGMA synchronous` of the writer's connection, read when it was opened.
    synchronous: i64,
}

/// Durable metadata and locks on SQLite. Cheap to clone; clones share the store.
#[derive(Clone)]
pub struct SqliteStorage {
    inner: Arc<Inner>,
}

impl SqliteStorage {
    /// Opens (creating if needed) the store in `dir`, loads it and starts its writer
    /// thread. Blocking (file system and schema work).
    pub fn open(dir: &Path) -> Result<Self, EngineError> {
        let (conn, path) = crate::sqlite::open(dir, FILE_NAME, SCHEMA, SCHEMA_VERSION, "storage")?;
        let state = load(&conn).map_err(db_err)?;
        let synchronous = crate::sqlite::synchronous(&conn).map_err(db_err)?;

        let (queue, rx) = std::sync::mpsc::channel();
        let (committed_tx, committed) = watch::channel(0u64);
        let failed = Arc::new(AtomicBool::new(false));
        let transactions = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            conn,
            committed: committed_tx,
            failed: failed.clone(),
            transactions: transactions.clone(),
        };
        std::thread::Builder::new()
            .name("switchboard-storage-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| EngineError::Unavailable(format!("storage: writer thread: {e}")))?;
        Ok(SqliteStorage {
            inner: Arc::new(Inner {
                path,
                state: Mutex::new(state),
                queue,
                committed,
                failed,
                transactions,
                budgets: OnceLock::new(),
                synchronous,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// `PRAGMA synchronous` of the connection the writer thread commits on, read from
    /// it when the store was opened (2 = FULL: a commit is on disk when it returns);
    /// nothing changes it later.
    pub fn writer_synchronous(&self) -> i64 {
        self.inner.synchronous
    }

    /// Transactions committed so far (each one fsync); writes per transaction shows
    /// the group commit at work.
    pub fn transactions(&self) -> u64 {
        self.inner.transactions.load(Ordering::Relaxed)
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The budgets of `app` (none until the server installs them).
    fn budgets(&self, app: &str) -> AppBudgets {
        self.budgets.get().map(|b| b(app)).unwrap_or_default()
    }

    /// Gives every lock `user` of `app` owns the deadline "its ttl after `lost_at`", or
    /// clears them (`None`).
    fn set_deadlines(&self, app: &str, user: &str, lost_at: Option<u64>) {
        let mut st = self.lock();
        for (_, locks) in st.locks.iter_mut().filter(|(k, _)| &*k.app == app) {
            for l in locks.values_mut() {
                if l.owner.as_deref() == Some(user) {
                    l.deadline = lost_at.map(|t| t.saturating_add(u64::from(l.ttl_s) * 1000));
                }
            }
        }
    }

    fn check_up(&self) -> Result<(), EngineError> {
        if self.failed.load(Ordering::Acquire) {
            return Err(EngineError::Unavailable(
                "storage: a commit failed; writes are refused until a restart".into(),
            ));
        }
        Ok(())
    }

    /// Queues `rows` (under the state lock, so in the order of the changes) and returns
    /// the receiver of the commit's outcome.
    fn enqueue(
        &self,
        st: &mut State,
        rows: Vec<Row>,
    ) -> oneshot::Receiver<Result<(), EngineError>> {
        let (reply, answer) = oneshot::channel();
        st.queued += 1;
        let job = Job {
            seq: st.queued,
            rows,
            reply: Some(reply),
        };
        if self.queue.send(job).is_err() {
            self.failed.store(true, Ordering::Release);
        }
        answer
    }

    /// Waits for the commit of a queued write.
    async fn committed(
        &self,
        answer: oneshot::Receiver<Result<(), EngineError>>,
    ) -> Result<(), EngineError> {
        match answer.await {
            Ok(result) => result,
            Err(_) => Err(EngineError::Unavailable(
                "storage: the writer thread stopped".into(),
            )),
        }
    }

    /// Waits until every write queued up to `seq` is committed.
    async fn settled(&self, seq: u64) -> Result<(), EngineError> {
        let mut rx = self.committed.clone();
        loop {
            if *rx.borrow_and_update() >= seq {
                return Ok(());
            }
            self.check_up()?;
            if rx.changed().await.is_err() {
                return Err(EngineError::Unavailable(
                    "storage: the writer thread stopped".into(),
                ));
            }
        }
    }
}

/// Reads every object and lock definition.
fn load(conn: &Connection) -> rusqlite::Result<State> {
    let mut st = State::default();
    let key = |app: String, kind: i64, name: String| {
        kind_of(kind).map(|kind| ChannelKey::new(app, kind, name))
    };
    let mut q = conn.prepare("SELECT app, kind, name, major FROM metadata_objects")?;
    let rows = q.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)?))
    })?;
    for row in rows {
        let (app, kind, name, major) = row?;
        if let Some(k) = key(app, kind, name) {
            Arc::make_mut(st.objects.entry(k).or_default()).major_revision = major;
        }
    }
    let mut q = conn.prepare(
        "SELECT app, kind, name, key, value, revision, updated, author FROM metadata_items",
    )?;
    let rows = q.query_map([], |r| {
        Ok((
            (r.get(0)?, r.get(1)?, r.get(2)?),
            r.get::<_, String>(3)?,
            Item {
                value: r.get(4)?,
                revision: r.get(5)?,
                updated: u64::try_from(r.get::<_, i64>(6)?).unwrap_or(0),
                author: r.get(7)?,
            },
        ))
    })?;
    for row in rows {
        let ((app, kind, name), k, item) = row?;
        if let Some(obj) = key(app, kind, name) {
            Arc::make_mut(st.objects.entry(obj).or_default())
                .items
                .insert(k, item);
        }
    }
    let mut q = conn.prepare("SELECT app, kind, name, lock, ttl FROM locks")?;
    let rows = q.query_map([], |r| {
        Ok((
            (r.get(0)?, r.get(1)?, r.get(2)?),
            r.get::<_, String>(3)?,
            r.get::<_, u32>(4)?,
        ))
    })?;
    for row in rows {
        let ((app, kind, name), lock, ttl_s) = row?;
        if let Some(channel) = key(app, kind, name) {
            *st.lock_counts.entry(channel.app.clone()).or_default() += 1;
            st.locks.entry(channel).or_default().insert(
                lock.into(),
                LockState {
                    ttl_s,
                    owner: None,
                    deadline: None,
                    waiters: VecDeque::new(),
                },
            );
        }
    }
    st.object_bytes = st
        .objects
        .iter()
        .map(|(k, o)| (k.clone(), object_bytes(o)))
        .collect();
    Ok(st)
}

/// The bytes of one item against the object budget: its key and value.
fn item_bytes(key: &str, value: &str) -> usize {
    key.len() + value.len()
}

/// The bytes of an object against its budget.
fn object_bytes(obj: &MetadataObject) -> usize {
    obj.items.iter().map(|(k, i)| item_bytes(k, &i.value)).sum()
}

/// The bytes `obj` would have after `write` (set and update; a remove only shrinks).
fn bytes_after(obj: &MetadataObject, now: usize, write: &MetadataWrite) -> usize {
    if write.op == WriteOp::Remove {
        return now;
    }
    // A key listed twice counts once, as the write leaves one item for it.
    let mut written: HashMap<&str, &str> = HashMap::new();
    for it in &write.items {
        written.insert(&it.key, &it.value);
    }
    written.iter().fold(now, |total, (k, v)| {
        let old = obj.items.get(*k).map_or(0, |i| item_bytes(k, &i.value));
        total - old + item_bytes(k, v)
    })
}

/// The engine crate does not depend on a logger: a failed commit is reported to every
/// caller as an error, and printed once here.
fn tracing_free_log(e: &EngineError) {
    eprintln!("switchboard storage: commit failed, refusing further writes: {e}");
}

/// Checks `write`'s guards against `obj` (R136, R138, R139); nothing changes.
fn check(obj: &MetadataObject, write: &MetadataWrite) -> Result<(), Rejection> {
    let exists = !obj.items.is_empty();
    match write.major_revision {
        NO_CHECK => {}
        0 if write.op == WriteOp::Set => {
            if exists {
                return Err(Rejection::Outdated(
                    "majorRevision 0: the metadata already exists (R139)".into(),
                ));
            }
        }
        m if m == obj.major_revision && m > 0 => {}
        m => {
            return Err(Rejection::Outdated(format!(
                "majorRevision {m} does not match the current {} (R139)",
                obj.major_revision
            )));
        }
    }
    for it in &write.items {
        let current = obj.items.get(&it.key);
        match (it.revision, current) {
            (NO_CHECK, None) if write.op == WriteOp::Update => {
                return Err(Rejection::Outdated(format!(
                    "key {:?} does not exist (R136)",
                    it.key
                )));
            }
            (NO_CHECK, _) => {}
            (0, None) if write.op == WriteOp::Set => {}
            (0, Some(_)) => {
                return Err(Rejection::Outdated(format!(
                    "revision 0: key {:?} already exists (R138)",
                    it.key
                )));
            }
            (r, Some(cur)) if cur.revision == r => {}
            (r, cur) => {
                return Err(Rejection::Outdated(format!(
                    "revision {r} of key {:?} does not match the current {} (R138)",
                    it.key,
                    cur.map_or_else(|| "absent key".to_string(), |c| c.revision.to_string())
                )));
            }
        }
    }
    Ok(())
}

/// Applies a checked `write` to `next` in place; returns the rows to store.
fn apply(key: &ChannelKey, next: &mut MetadataObject, write: &MetadataWrite) -> Vec<Row> {
    let major = next.major_revision.max(0) + 1;
    next.major_revision = major;
    let mut rows = vec![Row::Major(key.clone(), major)];
    match write.op {
        WriteOp::Set | WriteOp::Update => {
            for it in &write.items {
                let item = Item {
                    value: it.value.clone(),
                    revision: major,
                    updated: write.timestamp_ms.unwrap_or(0),
                    author: write.author.as_deref().unwrap_or("").to_string(),
                };
                rows.push(Row::PutItem(key.clone(), it.key.clone(), item.clone()));
                next.items.insert(it.key.clone(), item);
            }
        }
        WriteOp::Remove if write.items.is_empty() => {
            next.items.clear();
            rows.push(Row::DeleteItems(key.clone()));
        }
        WriteOp::Remove => {
            for it in &write.items {
                if next.items.remove(&it.key).is_some() {
                    rows.push(Row::DeleteItem(key.clone(), it.key.clone()));
                }
            }
        }
    }
    rows
}

#[async_trait::async_trait]
impl MetadataStore for SqliteStorage {
    fn set_budgets(&self, budgets: Budgets) {
        let _ = self.inner.budgets.set(budgets);
    }

    async fn write(
        &self,
        object: &ChannelKey,
        write: MetadataWrite,
    ) -> Result<Result<Arc<MetadataObject>, Rejection>, EngineError> {
        self.inner.check_up()?;
        let (answer, after) = {
            let mut st = self.inner.lock();
            if let Some((lock, user)) = &write.lock_gate {
                if !owns(&st, object, lock, user) {
                    return Ok(Err(Rejection::LockNotHeld));
                }
            }
            let checked = match st.objects.get(object) {
                Some(current) => check(current, &write),
                None => check(&MetadataObject::default(), &write),
            };
            if let Err(rejected) = checked {
                return Ok(Err(rejected));
            }
            let budget = self.inner.budgets(&object.app).metadata_object_bytes;
            let now_bytes = st.object_bytes.get(object).copied().unwrap_or(0);
            let after_bytes = match st.objects.get(object) {
                Some(current) => bytes_after(current, now_bytes, &write),
                None => bytes_after(&MetadataObject::default(), 0, &write),
            };
            if budget > 0 && after_bytes > now_bytes && after_bytes > budget {
                return Err(EngineError::OverBudget(format!(
                    "the metadata would hold {after_bytes} bytes of keys and values, over \
                     the app's limit of {budget} per object (limits.max_metadata_object_bytes)"
                )));
            }
            // In place unless a reader still holds the previous version (copy on
            // write): a write costs no copy of the whole object.
            let current = st.objects.entry(object.clone()).or_default();
            let rows = apply(object, Arc::make_mut(current), &write);
            let after = current.clone();
            let size = object_bytes(&after);
            st.object_bytes.insert(object.clone(), size);
            (self.inner.enqueue(&mut st, rows), after)
        };
        self.inner.committed(answer).await?;
        Ok(Ok(after))
    }

    async fn get(&self, object: &ChannelKey) -> Result<Arc<MetadataObject>, EngineError> {
        let (seq, obj) = {
            let st = self.inner.lock();
            (
                st.queued,
                st.objects.get(object).cloned().unwrap_or_default(),
            )
        };
        self.inner.settled(seq).await?;
        Ok(obj)
    }
}
fn owns(st: &State, channel: &ChannelKey, lock: &str, user: &str) -> bool {
    st.locks
        .get(channel)
        .and_then(|l| l.get(lock))
        .and_then(|l| l.owner.as_deref())
        == Some(user)
}

mod locks;
mod writer;

use writer::Writer;
