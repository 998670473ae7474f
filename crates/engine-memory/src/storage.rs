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
use std::sync::{Arc, Mutex, MutexGuard};
use switchboard_engine::{
    Acquire, ChannelKey, ChannelKind, EngineError, Freed, Item, LockInfo, LockRejection, Locks,
    MetadataObject, MetadataStore, MetadataWrite, NO_CHECK, Rejection, WriteOp,
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
    locks: HashMap<ChannelKey, BTreeMap<Arc<str>, LockState>>,
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
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
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
    Ok(st)
}

/// The writer thread: the only connection that writes.
struct Writer {
    conn: Connection,
    committed: watch::Sender<u64>,
    failed: Arc<AtomicBool>,
    transactions: Arc<AtomicU64>,
}

impl Writer {
    fn run(mut self, rx: std::sync::mpsc::Receiver<Job>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while let Ok(first) = rx.recv() {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let result = if self.failed.load(Ordering::Acquire) {
                Err(EngineError::Unavailable(
                    "storage: an earlier commit failed; restart the server".into(),
                ))
            } else {
                self.commit(&batch).map_err(db_err)
            };
            match &result {
                Ok(()) => {
                    self.transactions.fetch_add(1, Ordering::Relaxed);
                    let last = batch.last().map_or(0, |j| j.seq);
                    self.committed.send_replace(last);
                }
                Err(e) => {
                    // Memory is now ahead of the disk: stop here (see the module doc).
                    tracing_free_log(e);
                    self.failed.store(true, Ordering::Release);
                }
            }
            for mut job in batch.drain(..) {
                if let Some(reply) = job.reply.take() {
                    let _ = reply.send(result.clone());
                }
            }
        }
    }

    fn commit(&mut self, batch: &[Job]) -> rusqlite::Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for job in batch {
            for row in &job.rows {
                match row {
                    Row::Major(k, major) => {
                        tx.prepare_cached(
                            "INSERT INTO metadata_objects (app, kind, name, major) \
                             VALUES (?1, ?2, ?3, ?4) \
                             ON CONFLICT (app, kind, name) DO UPDATE SET major = excluded.major",
                        )?
                        .execute(params![
                            &*k.app,
                            kind_code(k.kind),
                            &*k.name,
                            major
                        ])?;
                    }
                    Row::PutItem(k, key, item) => {
                        tx.prepare_cached(
                            "INSERT OR REPLACE INTO metadata_items \
                             (app, kind, name, key, value, revision, updated, author) \
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                        )?
                        .execute(params![
                            &*k.app,
                            kind_code(k.kind),
                            &*k.name,
                            key,
                            item.value,
                            item.revision,
                            i64::try_from(item.updated).unwrap_or(i64::MAX),
                            item.author
                        ])?;
                    }
                    Row::DeleteItem(k, key) => {
                        tx.prepare_cached(
                            "DELETE FROM metadata_items \
                             WHERE app = ?1 AND kind = ?2 AND name = ?3 AND key = ?4",
                        )?
                        .execute(params![
                            &*k.app,
                            kind_code(k.kind),
                            &*k.name,
                            key
                        ])?;
                    }
                    Row::DeleteItems(k) => {
                        tx.prepare_cached(
                            "DELETE FROM metadata_items WHERE app = ?1 AND kind = ?2 AND name = ?3",
                        )?
                        .execute(params![
                            &*k.app,
                            kind_code(k.kind),
                            &*k.name
                        ])?;
                    }
                    Row::PutLock(k, lock, ttl) => {
                        tx.prepare_cached(
                            "INSERT OR REPLACE INTO locks (app, kind, name, lock, ttl) \
                             VALUES (?1, ?2, ?3, ?4, ?5)",
                        )?
                        .execute(params![
                            &*k.app,
                            kind_code(k.kind),
                            &*k.name,
                            &**lock,
                            ttl
                        ])?;
                    }
                    Row::DeleteLock(k, lock) => {
                        tx.prepare_cached(
                            "DELETE FROM locks \
                             WHERE app = ?1 AND kind = ?2 AND name = ?3 AND lock = ?4",
                        )?
                        .execute(params![
                            &*k.app,
                            kind_code(k.kind),
                            &*k.name,
                            &**lock
                        ])?;
                    }
                }
            }
        }
        tx.commit()
    }
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

fn owns(st: &State, channel: &ChannelKey, lock: &str, user: &str) -> bool {
    st.locks
        .get(channel)
        .and_then(|l| l.get(lock))
        .and_then(|l| l.owner.as_deref())
        == Some(user)
}

/// Frees `lock` and hands it to the first waiter; returns what happened.
fn free(channel: &ChannelKey, name: &Arc<str>, lock: &mut LockState) -> Freed {
    let former = lock.owner.take();
    lock.deadline = None;
    lock.owner = lock.waiters.pop_front();
    Freed {
        channel: channel.clone(),
        lock: name.clone(),
        ttl_s: lock.ttl_s,
        former,
        next: lock.owner.clone(),
    }
}

#[async_trait::async_trait]
impl MetadataStore for SqliteStorage {
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
            // In place unless a reader still holds the previous version (copy on
            // write): a write costs no copy of the whole object.
            let current = st.objects.entry(object.clone()).or_default();
            let rows = apply(object, Arc::make_mut(current), &write);
            let after = current.clone();
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

#[async_trait::async_trait]
impl Locks for SqliteStorage {
    async fn set(
        &self,
        channel: &ChannelKey,
        lock: &str,
        ttl_s: u32,
        max_locks: usize,
    ) -> Result<Result<(), LockRejection>, EngineError> {
        self.inner.check_up()?;
        let answer = {
            let mut st = self.inner.lock();
            let locks = st.locks.entry(channel.clone()).or_default();
            if locks.contains_key(lock) {
                return Ok(Err(LockRejection::AlreadyExists));
            }
            if locks.len() >= max_locks {
                return Ok(Err(LockRejection::TooMany(max_locks)));
            }
            let name: Arc<str> = lock.into();
            locks.insert(
                name.clone(),
                LockState {
                    ttl_s,
                    owner: None,
                    deadline: None,
                    waiters: VecDeque::new(),
                },
            );
            let row = Row::PutLock(channel.clone(), name, ttl_s);
            self.inner.enqueue(&mut st, vec![row])
        };
        self.inner.committed(answer).await?;
        Ok(Ok(()))
    }

    async fn remove(
        &self,
        channel: &ChannelKey,
        lock: &str,
    ) -> Result<Result<Freed, LockRejection>, EngineError> {
        self.inner.check_up()?;
        let (answer, freed) = {
            let mut st = self.inner.lock();
            let Some(locks) = st.locks.get_mut(channel) else {
                return Ok(Err(LockRejection::NotDefined));
            };
            let Some((name, state)) = locks.remove_entry(lock) else {
                return Ok(Err(LockRejection::NotDefined));
            };
            if locks.is_empty() {
                st.locks.remove(channel);
            }
            let freed = Freed {
                channel: channel.clone(),
                lock: name.clone(),
                ttl_s: state.ttl_s,
                former: state.owner,
                next: None,
            };
            let row = Row::DeleteLock(channel.clone(), name);
            (self.inner.enqueue(&mut st, vec![row]), freed)
        };
        self.inner.committed(answer).await?;
        Ok(Ok(freed))
    }

    async fn acquire(
        &self,
        channel: &ChannelKey,
        lock: &str,
        user: &str,
        wait: bool,
    ) -> Result<Result<Acquire, LockRejection>, EngineError> {
        let (seq, outcome) = {
            let mut st = self.inner.lock();
            let seq = st.queued;
            let Some(state) = st.locks.get_mut(channel).and_then(|l| l.get_mut(lock)) else {
                return Ok(Err(LockRejection::NotDefined));
            };
            let outcome = match &state.owner {
                None => {
                    state.owner = Some(user.into());
                    state.waiters.retain(|w| &**w != user);
                    Ok(Acquire::Acquired { ttl_s: state.ttl_s })
                }
                Some(owner) if &**owner == user => Ok(Acquire::AlreadyOwner),
                Some(_) if wait => {
                    if !state.waiters.iter().any(|w| &**w == user) {
                        state.waiters.push_back(user.into());
                    }
                    Ok(Acquire::Queued)
                }
                Some(owner) => Err(LockRejection::HeldBy(owner.clone())),
            };
            (seq, outcome)
        };
        // The definition it acquired is durable before anyone is told.
        self.inner.settled(seq).await?;
        Ok(outcome)
    }

    async fn release(
        &self,
        channel: &ChannelKey,
        lock: &str,
        user: &str,
    ) -> Result<Result<Freed, LockRejection>, EngineError> {
        self.revoke(channel, lock, user).await
    }

    async fn revoke(
        &self,
        channel: &ChannelKey,
        lock: &str,
        owner: &str,
    ) -> Result<Result<Freed, LockRejection>, EngineError> {
        let mut st = self.inner.lock();
        let Some(locks) = st.locks.get_mut(channel) else {
            return Ok(Err(LockRejection::NotDefined));
        };
        let Some(name) = locks.get_key_value(lock).map(|(k, _)| k.clone()) else {
            return Ok(Err(LockRejection::NotDefined));
        };
        let Some(state) = locks.get_mut(lock) else {
            return Ok(Err(LockRejection::NotDefined));
        };
        if state.owner.as_deref() != Some(owner) {
            return Ok(Err(LockRejection::NotOwner));
        }
        Ok(Ok(free(channel, &name, state)))
    }

    async fn cancel_wait(
        &self,
        channel: &ChannelKey,
        lock: &str,
        user: &str,
    ) -> Result<bool, EngineError> {
        let mut st = self.inner.lock();
        let Some(state) = st.locks.get_mut(channel).and_then(|l| l.get_mut(lock)) else {
            return Ok(false);
        };
        let before = state.waiters.len();
        state.waiters.retain(|w| &**w != user);
        Ok(state.waiters.len() != before)
    }

    async fn list(&self, channel: &ChannelKey) -> Result<Vec<LockInfo>, EngineError> {
        let (seq, list) = {
            let st = self.inner.lock();
            let list = st
                .locks
                .get(channel)
                .map(|locks| {
                    locks
                        .iter()
                        .map(|(name, l)| LockInfo {
                            name: name.clone(),
                            owner: l.owner.clone(),
                            ttl_s: l.ttl_s,
                        })
                        .collect()
                })
                .unwrap_or_default();
            (st.queued, list)
        };
        self.inner.settled(seq).await?;
        Ok(list)
    }

    async fn owner_lost(&self, app: &str, user: &str, now_ms: u64) -> Result<(), EngineError> {
        self.inner.set_deadlines(app, user, Some(now_ms));
        Ok(())
    }

    async fn owner_back(&self, app: &str, user: &str) -> Result<(), EngineError> {
        self.inner.set_deadlines(app, user, None);
        Ok(())
    }

    async fn expire_due(&self, now_ms: u64) -> Result<Vec<Freed>, EngineError> {
        let mut st = self.inner.lock();
        let mut freed = Vec::new();
        for (channel, locks) in st.locks.iter_mut() {
            for (name, l) in locks.iter_mut() {
                if l.deadline.is_some_and(|d| d <= now_ms) {
                    freed.push(free(channel, name, l));
                }
            }
        }
        Ok(freed)
    }

    async fn owned_by(
        &self,
        app: &str,
        user: &str,
    ) -> Result<Vec<(ChannelKey, Arc<str>)>, EngineError> {
        let st = self.inner.lock();
        let mut owned = Vec::new();
        for (channel, locks) in st.locks.iter().filter(|(k, _)| &*k.app == app) {
            for (name, l) in locks {
                if l.owner.as_deref() == Some(user) {
                    owned.push((channel.clone(), name.clone()));
                }
            }
        }
        Ok(owned)
    }

    async fn due(&self, now_ms: u64) -> Result<Vec<(ChannelKey, Arc<str>, Arc<str>)>, EngineError> {
        let st = self.inner.lock();
        let mut due = Vec::new();
        for (channel, locks) in st.locks.iter() {
            for (name, l) in locks {
                if let (Some(d), Some(owner)) = (l.deadline, &l.owner) {
                    if d <= now_ms {
                        due.push((channel.clone(), name.clone(), owner.clone()));
                    }
                }
            }
        }
        Ok(due)
    }

    async fn expire(
        &self,
        channel: &ChannelKey,
        lock: &str,
        owner: &str,
        now_ms: u64,
    ) -> Result<Option<Freed>, EngineError> {
        let mut st = self.inner.lock();
        let Some(locks) = st.locks.get_mut(channel) else {
            return Ok(None);
        };
        let Some((name, l)) = locks.iter_mut().find(|(n, _)| &***n == lock) else {
            return Ok(None);
        };
        if l.owner.as_deref() != Some(owner) || l.deadline.is_none_or(|d| d > now_ms) {
            return Ok(None);
        }
        let name = name.clone();
        Ok(Some(free(channel, &name, l)))
    }

    async fn release_all(&self, app: &str, user: &str) -> Result<Vec<Freed>, EngineError> {
        let mut st = self.inner.lock();
        let mut freed = Vec::new();
        for (channel, locks) in st.locks.iter_mut().filter(|(k, _)| &*k.app == app) {
            for (name, l) in locks.iter_mut() {
                l.waiters.retain(|w| &**w != user);
                if l.owner.as_deref() == Some(user) {
                    freed.push(free(channel, name, l));
                }
            }
        }
        Ok(freed)
    }
}
