//! [`Locks`] on the embedded store: definitions durable in SQLite, owners and waiting
//! lines in memory (a restart frees every owner), FIFO hand-over, owner-loss expiry.

use super::*;

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
impl Locks for SqliteStorage {
    fn set_budgets(&self, budgets: Budgets) {
        let _ = self.inner.budgets.set(budgets);
    }

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
            let existing = st.locks.get(channel);
            if existing.is_some_and(|l| l.contains_key(lock)) {
                return Ok(Err(LockRejection::AlreadyExists));
            }
            if existing.map_or(0, BTreeMap::len) >= max_locks {
                return Ok(Err(LockRejection::TooMany(max_locks)));
            }
            let budget = self.inner.budgets(&channel.app).lock_definitions;
            let count = st.lock_counts.get(&channel.app).copied().unwrap_or(0);
            if budget > 0 && count >= budget {
                return Err(EngineError::OverBudget(format!(
                    "the app has {count} locks defined, its limit across all channels \
                     (limits.max_lock_definitions)"
                )));
            }
            *st.lock_counts.entry(channel.app.clone()).or_default() += 1;
            let locks = st.locks.entry(channel.clone()).or_default();
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
            if let Some(n) = st.lock_counts.get_mut(&channel.app) {
                *n = n.saturating_sub(1);
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
