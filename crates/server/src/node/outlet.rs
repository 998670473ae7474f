//! A session's outlet: where the hub delivers the session's pushes. It outlives any one
//! connection — while the session is detached it drops pushes (they stay in the
//! recovery log) — and it can hold back chosen channels while their missed messages are
//! replayed, so that replayed and live messages reach the client in offset order, each
//! once.

use super::outbound::Outbound;
use bytes::Bytes;
use std::sync::{Arc, Mutex, MutexGuard};
use switchboard_engine::{ChannelKey, KeyMap, StreamPosition};
use switchboard_protocol::DisconnectCode;

#[derive(Default)]
struct State {
    queue: Option<Arc<Outbound>>,
    /// Channels being recovered: live pushes held back, with their positions (keyed
    /// by the key's own hash: no hasher state in every session's outlet).
    held: KeyMap<Vec<(StreamPosition, Bytes)>>,
    held_bytes: usize,
}

/// Delivery point of one session.
pub(crate) struct Outlet {
    state: Mutex<State>,
    max_held_bytes: usize,
}

impl Outlet {
    /// An outlet with no connection yet; at most `max_held_bytes` are held back during
    /// recovery before the connection is closed as a slow consumer.
    pub fn new(max_held_bytes: usize) -> Self {
        Outlet {
            state: Mutex::new(State::default()),
            max_held_bytes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Delivers one push of `channel` at `position` (called by the hub, never blocks).
    pub fn push(&self, channel: &ChannelKey, position: StreamPosition, bytes: &Bytes) {
        let mut st = self.lock();
        let st = &mut *st;
        if st.held.is_empty() {
            // The common case: no recovery in progress, no lookup.
            if let Some(q) = &st.queue {
                q.push(bytes.clone());
            }
            return;
        }
        if let Some(held) = st.held.get_mut(channel) {
            st.held_bytes += bytes.len();
            held.push((position, bytes.clone()));
            if st.held_bytes > self.max_held_bytes {
                if let Some(q) = &st.queue {
                    q.close(
                        DisconnectCode::SlowConsumer,
                        "too many messages arrived during recovery",
                    );
                }
            }
            return;
        }
        if let Some(q) = &st.queue {
            q.push(bytes.clone());
        }
    }

    /// Attaches a connection (replacing any other) and starts holding back `recovering`
    /// channels. Returns the replaced queue.
    pub fn attach(
        &self,
        queue: Arc<Outbound>,
        recovering: impl IntoIterator<Item = ChannelKey>,
    ) -> Option<Arc<Outbound>> {
        let mut st = self.lock();
        // Whatever an older connection was recovering is its own business: it ends.
        st.held.clear();
        st.held_bytes = 0;
        for key in recovering {
            st.held.entry(key).or_default();
        }
        st.queue.replace(queue)
    }

    fn is_current(st: &State, queue: &Arc<Outbound>) -> bool {
        st.queue.as_ref().is_some_and(|q| Arc::ptr_eq(q, queue))
    }

    /// Starts holding back one channel (a subscribe with recovery) for `queue`'s
    /// connection, if it is still the current one.
    pub fn hold(&self, queue: &Arc<Outbound>, channel: ChannelKey) {
        let mut st = self.lock();
        if Self::is_current(&st, queue) {
            st.held.entry(channel).or_default();
        }
    }

    /// Ends recovery of `channel`: releases the held pushes that come after `sent` (the
    /// last position replayed; `None` when nothing was) and goes live.
    /// Does nothing unless `queue` is still the current connection: a replay of a
    /// connection that was replaced meanwhile must not touch the newer one.
    pub fn release(
        &self,
        queue: &Arc<Outbound>,
        channel: &ChannelKey,
        sent: Option<StreamPosition>,
    ) {
        let mut st = self.lock();
        if !Self::is_current(&st, queue) {
            return;
        }
        let Some(held) = st.held.remove(channel) else {
            return;
        };
        st.held_bytes = st
            .held_bytes
            .saturating_sub(held.iter().map(|(_, b)| b.len()).sum());
        let Some(q) = st.queue.clone() else { return };
        for (pos, bytes) in held {
            let newer = match sent {
                Some(s) => pos.epoch != s.epoch || pos.offset > s.offset,
                None => true,
            };
            if newer {
                q.push(bytes);
            }
        }
    }

    /// Detaches `queue` if it is still the current one; pushes are dropped from now on.
    pub fn detach(&self, queue: &Arc<Outbound>) {
        let mut st = self.lock();
        if st.queue.as_ref().is_some_and(|q| Arc::ptr_eq(q, queue)) {
            st.queue = None;
            st.held.clear();
            st.held_bytes = 0;
        }
    }

    /// Ends the current connection without a word (the session is gone; the client
    /// resumes into a new one).
    pub fn close_quietly(&self) {
        if let Some(q) = &self.lock().queue {
            q.close_quietly();
        }
    }

    /// Closes the current connection with `code`.
    pub fn close(&self, code: DisconnectCode, reason: impl Into<String>) {
        if let Some(q) = &self.lock().queue {
            q.close(code, reason);
        }
    }
}
