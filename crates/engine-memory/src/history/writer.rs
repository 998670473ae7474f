//! The history writer thread: the only connection that writes; appends queued
//! publications in one transaction per batch (group commit), trims per channel and
//! sweeps by age.

use super::*;

/// What the writer knows of one channel.
#[derive(Debug, Clone, Copy)]
pub(super) struct ChannelState {
    /// Latest stored timestamp (0 when none).
    pub(super) last_ts: u64,
    /// Stored messages; `None` after an age sweep deleted rows, read again on use.
    pub(super) count: Option<u64>,
}

/// The writer thread's state: the only write connection and the per-channel cache.
pub(super) struct Writer {
    pub(super) conn: Connection,
    pub(super) retention: HistoryRetention,
    pub(super) cache: HashMap<ChannelKey, ChannelState>,
    pub(super) counters: Arc<Counters>,
    pub(super) last_sweep: Option<Instant>,
}

impl Writer {
    pub(super) fn run(&mut self, mut rx: mpsc::Receiver<Job>) {
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
    pub(super) fn commit_batch(&mut self, batch: &mut Vec<Job>) {
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
    pub(super) fn try_commit(
        &mut self,
        jobs: &[Job],
    ) -> rusqlite::Result<Vec<Result<u64, EngineError>>> {
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

    pub(super) fn store_batch(
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
    pub(super) fn sweep_by_age(&mut self) {
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
pub(super) fn load_state(conn: &Connection, ch: &ChannelKey) -> rusqlite::Result<ChannelState> {
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
