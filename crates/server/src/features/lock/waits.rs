//! The waiting `acquireLock` requests of this node (R152): the engine keeps the line
//! and hands the lock over; the node that holds the waiting request answers it.

use crate::wire::Failure;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use switchboard_engine::ChannelKey;

/// One waiting `acquireLock`: (channel, lock, user).
pub(crate) type WaitKey = (ChannelKey, Arc<str>, Arc<str>);
/// Where a waiting `acquireLock` is answered.
pub(crate) type Answer = tokio::sync::oneshot::Sender<Result<(), Failure>>;
/// Waiting requests: (channel, lock, user) → (session, answer).
pub(crate) type WaitMap = HashMap<WaitKey, (u64, Answer)>;
/// The waiting `acquireLock` requests of this node.
#[derive(Default)]
pub(crate) struct Waits {
    map: Mutex<WaitMap>,
}

impl Waits {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, WaitMap> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn pending(&self, key: &ChannelKey, lock: &str, user: &Arc<str>) -> bool {
        self.lock()
            .contains_key(&(key.clone(), Arc::from(lock), user.clone()))
    }

    /// Answers the waiter of `(key, lock, user)`; false when nobody waits any more.
    pub(crate) fn finish(
        &self,
        key: &ChannelKey,
        lock: &Arc<str>,
        user: &Arc<str>,
        r: Result<(), Failure>,
    ) -> bool {
        let entry = self
            .lock()
            .remove(&(key.clone(), lock.clone(), user.clone()));
        match entry {
            Some((_, tx)) => tx.send(r).is_ok(),
            None => false,
        }
    }

    /// Takes out the waits of `session` (in `channel` only, when given).
    pub(crate) fn take(
        &self,
        session: u64,
        channel: Option<&ChannelKey>,
    ) -> Vec<(WaitKey, Answer)> {
        let mut map = self.lock();
        let keys: Vec<WaitKey> = map
            .iter()
            .filter(|(k, (s, _))| *s == session && channel.is_none_or(|c| k.0 == *c))
            .map(|(k, _)| k.clone())
            .collect();
        keys.into_iter()
            .filter_map(|k| map.remove(&k).map(|(_, tx)| (k, tx)))
            .collect()
    }

    /// Takes out every wait for `lock` of `channel` (the lock was removed).
    pub(crate) fn take_lock(&self, channel: &ChannelKey, lock: &str) -> Vec<Answer> {
        let mut map = self.lock();
        let keys: Vec<WaitKey> = map
            .keys()
            .filter(|k| k.0 == *channel && &*k.1 == lock)
            .cloned()
            .collect();
        keys.into_iter()
            .filter_map(|k| map.remove(&k).map(|(_, tx)| tx))
            .collect()
    }
}
