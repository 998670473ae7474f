//! The waiting `acquireLock` requests of this node (R152): the engine keeps the line
//! and hands the lock over; the node that holds the waiting request answers it, by
//! queueing the reply on the waiter's connection (no task per waiting request). A
//! session waits for at most `max_lock_waits` locks at once.

use crate::node::outbound::Outbound;
use crate::wire::Failure;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use switchboard_engine::ChannelKey;
use switchboard_protocol::frame;
use switchboard_protocol::pb::{self, server_message::Body};

/// One waiting `acquireLock`: (channel, lock, user).
pub(crate) type WaitKey = (ChannelKey, Arc<str>, Arc<str>);

/// Where and how a waiting `acquireLock` is answered.
pub(crate) struct Waiter {
    /// The session that waits.
    pub session: u64,
    /// The connection the request came on.
    pub out: Arc<Outbound>,
    /// The request's id.
    pub id: u32,
    /// The reply's channel type.
    pub channel_type: i32,
    /// The reply's channel name.
    pub channel_name: String,
    /// The lock's name.
    pub lock_name: String,
}

impl Waiter {
    /// Queues the answer: the lock was handed over (`Ok`) or the wait failed. False
    /// when the connection is gone (nobody will read it).
    pub fn answer(self, r: Result<(), Failure>) -> bool {
        let body = match r {
            Ok(()) => Body::AcquireLock(pb::LockReply {
                timestamp: switchboard_protocol::now_ms(),
                channel_type: self.channel_type,
                channel_name: self.channel_name,
                lock_name: self.lock_name,
            }),
            Err(f) => Body::Error(pb::Error {
                code: f.code.as_i32(),
                reason: f.reason,
                operation: "acquireLock".into(),
            }),
        };
        self.out.push(frame::encode(&pb::ServerMessage {
            id: self.id,
            body: Some(body),
        }))
    }
}

#[derive(Default)]
struct State {
    waits: HashMap<WaitKey, Waiter>,
    per_session: HashMap<u64, usize>,
}

impl State {
    fn remove(&mut self, key: &WaitKey) -> Option<Waiter> {
        let w = self.waits.remove(key)?;
        if let Some(n) = self.per_session.get_mut(&w.session) {
            *n -= 1;
            if *n == 0 {
                self.per_session.remove(&w.session);
            }
        }
        Some(w)
    }
}

/// The waiting `acquireLock` requests of this node.
#[derive(Default)]
pub(crate) struct Waits {
    state: Mutex<State>,
    /// Whether the engine is shared with other nodes, whose waiters a hand-over made
    /// here may reach (they answer them: see `events::freed`).
    remote: AtomicBool,
}

impl Waits {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The engine tells every node of every hand-over (several nodes share it).
    pub(crate) fn set_remote(&self) {
        self.remote.store(true, Ordering::Release);
    }

    /// Whether waiters may live on other nodes.
    pub(crate) fn remote(&self) -> bool {
        self.remote.load(Ordering::Acquire)
    }

    /// Every waiting request's (channel, lock, user).
    pub(crate) fn keys(&self) -> Vec<WaitKey> {
        self.lock().waits.keys().cloned().collect()
    }

    /// Whether `user` waits for `lock` of `key`.
    pub(crate) fn pending(&self, key: &ChannelKey, lock: &str, user: &Arc<str>) -> bool {
        self.lock()
            .waits
            .contains_key(&(key.clone(), Arc::from(lock), user.clone()))
    }

    /// Registers a waiter; false when its session already waits for `max` locks.
    pub(crate) fn insert(&self, key: WaitKey, waiter: Waiter, max: usize) -> bool {
        let mut st = self.lock();
        let n = st.per_session.entry(waiter.session).or_insert(0);
        if *n >= max {
            return false;
        }
        *n += 1;
        if let Some(old) = st.waits.insert(key, waiter) {
            // Not reached (R158 refuses a second wait), but keep the count right.
            if let Some(n) = st.per_session.get_mut(&old.session) {
                *n -= 1;
            }
        }
        true
    }

    /// Forgets the waiter of `key` without answering it.
    pub(crate) fn forget(&self, key: &WaitKey) {
        self.lock().remove(key);
    }

    /// Answers the waiter of `(key, lock, user)`; false when nobody waits any more.
    pub(crate) fn finish(
        &self,
        key: &ChannelKey,
        lock: &Arc<str>,
        user: &Arc<str>,
        r: Result<(), Failure>,
    ) -> bool {
        let waiter = self
            .lock()
            .remove(&(key.clone(), lock.clone(), user.clone()));
        waiter.is_some_and(|w| w.answer(r))
    }

    /// Takes out the waits of `session` (in `channel` only, when given).
    pub(crate) fn take(
        &self,
        session: u64,
        channel: Option<&ChannelKey>,
    ) -> Vec<(WaitKey, Waiter)> {
        let mut st = self.lock();
        let keys: Vec<WaitKey> = st
            .waits
            .iter()
            .filter(|(k, w)| w.session == session && channel.is_none_or(|c| k.0 == *c))
            .map(|(k, _)| k.clone())
            .collect();
        keys.into_iter()
            .filter_map(|k| st.remove(&k).map(|w| (k, w)))
            .collect()
    }

    /// Takes out every wait for `lock` of `channel` (the lock was removed).
    pub(crate) fn take_lock(&self, channel: &ChannelKey, lock: &str) -> Vec<Waiter> {
        let mut st = self.lock();
        let keys: Vec<WaitKey> = st
            .waits
            .keys()
            .filter(|k| k.0 == *channel && &*k.1 == lock)
            .cloned()
            .collect();
        keys.into_iter().filter_map(|k| st.remove(&k)).collect()
    }
}
