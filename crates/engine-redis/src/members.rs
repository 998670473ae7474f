//! The memberships this node entered, kept in memory so that they can be written to
//! Redis again when Redis lost them (see `presence::rewriter`). Plain data: no Redis
//! calls here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use switchboard_engine::{ChannelKey, State};

/// The memberships this node entered and has not seen leave: (quiet, state) by channel
/// and user, so that they can be written again when Redis lost them.
#[derive(Default)]
pub(crate) struct LocalMembers(Mutex<MemberMap>);

/// (channel, user) → (quiet, state).
type MemberMap = HashMap<(ChannelKey, Arc<str>), (bool, State)>;

/// One membership: ((channel, user), (quiet, state)).
pub(crate) type Membership = ((ChannelKey, Arc<str>), (bool, State));

impl LocalMembers {
    fn map(&self) -> std::sync::MutexGuard<'_, MemberMap> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every membership: ((channel, user), (quiet, state)).
    pub(crate) fn all(&self) -> Vec<Membership> {
        self.map()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// `user` entered `channel` on this node (the state keys merge into its state).
    pub(crate) fn entered(&self, channel: &ChannelKey, user: &str, quiet: bool, state: State) {
        let mut m = self.map();
        let e = m
            .entry((channel.clone(), Arc::from(user)))
            .or_insert_with(|| (quiet, State::new()));
        e.0 = quiet;
        e.1.extend(state);
    }

    /// The member's whole state after a change.
    pub(crate) fn state(&self, channel: &ChannelKey, user: &str, state: &State) {
        if let Some(e) = self.map().get_mut(&(channel.clone(), Arc::from(user))) {
            e.1 = state.clone();
        }
    }

    /// Every membership of `user` of `app` left this node (its session moved to another).
    pub(crate) fn forget_user(&self, app: &str, user: &str) {
        self.map()
            .retain(|(channel, u), _| !(&*channel.app == app && &**u == user));
    }

    /// The member left this node (exit, expiry, or entered elsewhere).
    pub(crate) fn left(&self, channel: &ChannelKey, user: &str) {
        self.map().remove(&(channel.clone(), Arc::from(user)));
    }
}
