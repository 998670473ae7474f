//! The storage writer thread: the only connection that writes; commits queued rows in
//! one transaction per batch (group commit) and reports the last committed sequence.

use super::*;

/// The writer thread: the only connection that writes.
pub(super) struct Writer {
    pub(super) conn: Connection,
    pub(super) committed: watch::Sender<u64>,
    pub(super) failed: Arc<AtomicBool>,
    pub(super) transactions: Arc<AtomicU64>,
}

impl Writer {
    pub(super) fn run(mut self, rx: std::sync::mpsc::Receiver<Job>) {
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

    pub(super) fn commit(&mut self, batch: &[Job]) -> rusqlite::Result<()> {
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
