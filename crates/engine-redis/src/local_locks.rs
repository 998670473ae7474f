//! The lock ownerships and waiting lines that this node's calls made, kept in memory so
//! that they can be written to Redis again when Redis lost them (see
//! `storage::restore_locks`). Plain data: no Redis calls here.
//!
//! An ownership is recorded when this node's `acquire` (or a hand-over to a waiter it
//! queued) makes a user the owner, and forgotten when any node frees the lock from that
//! owner: this node's own frees say so in their [`Freed`], other nodes' in the notice
//! every free PUBLISHes (`lua/locks.lua`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use switchboard_engine::{ChannelKey, Freed};

/// One lock this node made a user own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owned {
    /// The owner.
    pub user: Arc<str>,
    /// The lock's ttl, seconds.
    pub ttl_s: u32,
    /// When it expires (ms), while its owner's connection is lost.
    pub deadline: Option<u64>,
}

/// One waiter this node queued: (channel, lock, user, ttl).
pub(crate) type Waiting = (ChannelKey, Arc<str>, Arc<str>, u32);

/// One ownership this node recorded: ((channel, lock), owner).
pub(crate) type Ownership = ((ChannelKey, Arc<str>), Owned);

#[derive(Default)]
struct State {
    owned: HashMap<(ChannelKey, Arc<str>), Owned>,
    /// In the order this node queued them.
    waiting: Vec<Waiting>,
}

/// What this node knows it made of the locks (see the module doc).
#[derive(Default)]
pub(crate) struct LocalLocks(Mutex<State>);

impl LocalLocks {
    fn st(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every ownership and every waiter (in the order queued).
    pub(crate) fn all(&self) -> (Vec<Ownership>, Vec<Waiting>) {
        let st = self.st();
        (
            st.owned
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            st.waiting.clone(),
        )
    }

    /// `user` owns `lock` of `channel` now (this node's acquire or hand-over).
    pub(crate) fn acquired(&self, channel: &ChannelKey, lock: &str, user: &str, ttl_s: u32) {
        let mut st = self.st();
        st.waiting
            .retain(|(c, l, u, _)| !(c == channel && &**l == lock && &**u == user));
        st.owned.insert(
            (channel.clone(), Arc::from(lock)),
            Owned {
                user: Arc::from(user),
                ttl_s,
                deadline: None,
            },
        );
    }

    /// `user` waits in line for `lock` (queued by this node).
    pub(crate) fn queued(&self, channel: &ChannelKey, lock: &str, user: &str, ttl_s: u32) {
        let mut st = self.st();
        if !st
            .waiting
            .iter()
            .any(|(c, l, u, _)| c == channel && &**l == lock && &**u == user)
        {
            st.waiting
                .push((channel.clone(), Arc::from(lock), Arc::from(user), ttl_s));
        }
    }

    /// `user` left the line of `lock`.
    pub(crate) fn cancelled(&self, channel: &ChannelKey, lock: &str, user: &str) {
        self.st()
            .waiting
            .retain(|(c, l, u, _)| !(c == channel && &**l == lock && &**u == user));
    }

    /// `lock` was freed from `former` (`None`: whoever owned it) and handed to `next`
    /// (or to nobody). A later owner this node recorded is kept.
    pub(crate) fn freed(
        &self,
        channel: &ChannelKey,
        lock: &str,
        former: Option<&str>,
        next: Option<&str>,
    ) {
        let mut st = self.st();
        let key = (channel.clone(), Arc::<str>::from(lock));
        let stale = st
            .owned
            .get(&key)
            .is_some_and(|o| former.is_none_or(|f| *o.user == *f) && next != Some(&*o.user));
        if stale {
            st.owned.remove(&key);
        }
        if let Some(next) = next {
            let at = st
                .waiting
                .iter()
                .position(|(c, l, u, _)| c == channel && &**l == lock && &**u == next);
            if let Some(at) = at {
                let (_, _, _, ttl_s) = st.waiting.remove(at);
                st.owned.insert(
                    key,
                    Owned {
                        user: Arc::from(next),
                        ttl_s,
                        deadline: None,
                    },
                );
            }
        }
    }

    /// A [`Freed`] returned by one of this node's calls.
    pub(crate) fn apply(&self, f: &Freed) {
        self.freed(&f.channel, &f.lock, f.former.as_deref(), f.next.as_deref());
    }

    /// The lock was removed: its owner and line are gone.
    pub(crate) fn removed(&self, channel: &ChannelKey, lock: &str) {
        let mut st = self.st();
        st.owned.remove(&(channel.clone(), Arc::from(lock)));
        st.waiting
            .retain(|(c, l, _, _)| !(c == channel && &**l == lock));
    }

    /// `user` of `app` left every line (release_all).
    pub(crate) fn left_lines(&self, app: &str, user: &str) {
        self.st()
            .waiting
            .retain(|(c, _, u, _)| !(&*c.app == app && &**u == user));
    }

    /// The locks of `user` of `app` expire at their ttl after `now_ms` (`Some`), or no
    /// longer expire (`None`).
    pub(crate) fn deadline(&self, app: &str, user: &str, now_ms: Option<u64>) {
        for ((c, _), o) in self.st().owned.iter_mut() {
            if &*c.app == app && &*o.user == user {
                o.deadline = now_ms.map(|n| n + u64::from(o.ttl_s) * 1000);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_engine::ChannelKind;

    fn ch() -> ChannelKey {
        ChannelKey::new("a", ChannelKind::Message, "c")
    }

    #[test]
    fn a_free_forgets_its_former_owner_and_hands_over_to_a_local_waiter() {
        let l = LocalLocks::default();
        l.acquired(&ch(), "x", "alice", 5);
        l.queued(&ch(), "x", "bob", 5);
        l.queued(&ch(), "x", "bob", 5);
        assert_eq!(l.all().1.len(), 1, "queued once");
        l.freed(&ch(), "x", Some("alice"), Some("bob"));
        let (owned, waiting) = l.all();
        assert_eq!(owned.len(), 1);
        assert_eq!(&*owned[0].1.user, "bob");
        assert!(waiting.is_empty());
        // A late notice about an earlier owner leaves the newer one.
        l.freed(&ch(), "x", Some("alice"), None);
        assert_eq!(l.all().0.len(), 1);
        l.freed(&ch(), "x", Some("bob"), Some("carol"));
        assert!(l.all().0.is_empty(), "carol waits on another node");
    }

    #[test]
    fn deadlines_follow_owner_loss_and_return() {
        let l = LocalLocks::default();
        l.acquired(&ch(), "x", "alice", 5);
        l.deadline("a", "alice", Some(1000));
        assert_eq!(l.all().0[0].1.deadline, Some(6000));
        l.deadline("a", "alice", None);
        assert_eq!(l.all().0[0].1.deadline, None);
        l.removed(&ch(), "x");
        assert!(l.all().0.is_empty());
    }
}
