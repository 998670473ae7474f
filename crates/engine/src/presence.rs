//! Presence: who is in which MESSAGE or STREAM channel, each member's temporary state,
//! and the reverse index user → channels. Members are visible or quiet (R84–R87): a
//! quiet member is kept (so that its state and departure are tracked) but never listed,
//! counted or reported.
//!
//! Expiry of members whose connection was lost is driven by the server's session
//! timers (`presenceTimeout`, R118); an engine shared by several nodes also needs a
//! per-member deadline refreshed by the owning node, so that the members of a node that
//! died are removed — that part comes with the Redis engine.

use crate::{ChannelKey, EngineError};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A member's temporary state: key → value, ordered by key.
pub type State = BTreeMap<String, String>;

/// One member of a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The user id.
    pub user: Arc<str>,
    /// Its temporary state.
    pub state: State,
}

/// What a member was when it left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Departed {
    /// Whether it was quiet (then nobody is told).
    pub quiet: bool,
    /// Its state at departure.
    pub state: State,
}

/// One page of members.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberPage {
    /// Visible members after the requested user id, ordered by user id.
    pub members: Vec<Member>,
    /// Whether visible members remain after the last one returned.
    pub more: bool,
}

/// Presence of channels.
///
/// Contract (each method is one atomic step; in Redis one Lua script over a HASH
/// member → {quiet, state} per channel, a sorted set for paging and a SET per user):
/// - `enter` makes `user` a member (or updates it): `quiet` replaces the old flag, the
///   given state keys are merged into its state. Returns the change of visibility:
///   `Some(true)` when it became visible (it was absent or quiet), `Some(false)` when a
///   visible member turned quiet, `None` otherwise.
/// - `exit` removes the member and its state; returns what it was.
/// - `set_state` merges keys into a member's state; fails with
///   [`EngineError::LimitReached`] (and changes nothing) when the result would have more
///   than `max_keys` keys. `None` when `user` is not a member.
/// - `remove_state` deletes the given keys (all when empty); `None` when not a member.
/// - `state` is a visible member's state; `None` for non-members and quiet members.
/// - `list` pages through visible members by user id: those after `after`, at most
///   `limit`; a traversal lists each member present throughout exactly once.
/// - `count` is the number of visible members.
/// - `channels_of` lists the channels where `user` of `app` is a visible member,
///   ordered by kind then name.
/// - `set_expiry` gives every membership of `user` in `app` (visible or quiet) a
///   deadline in ms since the epoch, or clears it (`None`); it applies to the user, so a
///   membership entered later shares it until it is cleared.
/// - `expire_due` removes every membership of users whose deadline is at or before
///   `now_ms`, clears those deadlines, and returns what it removed.
/// - Shared by several nodes, a membership belongs to the node that entered it last:
///   `exit` and a deadline from `set_expiry` act only on this node's memberships, so a
///   member that moved to another node is not removed by its old node's session.
#[async_trait::async_trait]
pub trait Presence: Send + Sync + 'static {
    /// Adds or updates a member (see the trait contract).
    async fn enter(
        &self,
        channel: &ChannelKey,
        user: &str,
        quiet: bool,
        state: State,
    ) -> Result<Option<bool>, EngineError>;

    /// Removes a member.
    async fn exit(&self, channel: &ChannelKey, user: &str)
    -> Result<Option<Departed>, EngineError>;

    /// Merges keys into a member's state; returns the whole state after the change.
    async fn set_state(
        &self,
        channel: &ChannelKey,
        user: &str,
        items: State,
        max_keys: usize,
    ) -> Result<Option<State>, EngineError>;

    /// Deletes keys (all when `keys` is empty); returns the state after the change.
    async fn remove_state(
        &self,
        channel: &ChannelKey,
        user: &str,
        keys: &[String],
    ) -> Result<Option<State>, EngineError>;

    /// A visible member's state.
    async fn state(&self, channel: &ChannelKey, user: &str) -> Result<Option<State>, EngineError>;

    /// One page of visible members.
    async fn list(
        &self,
        channel: &ChannelKey,
        after: Option<&str>,
        limit: usize,
    ) -> Result<MemberPage, EngineError>;

    /// The number of visible members.
    async fn count(&self, channel: &ChannelKey) -> Result<usize, EngineError>;

    /// Channels where the user is visibly present.
    async fn channels_of(&self, app: &str, user: &str) -> Result<Vec<ChannelKey>, EngineError>;

    /// Sets (or clears) the deadline of every membership of a user.
    async fn set_expiry(
        &self,
        app: &str,
        user: &str,
        expires_at_ms: Option<u64>,
    ) -> Result<(), EngineError>;

    /// Removes the memberships whose deadline has passed.
    async fn expire_due(&self, now_ms: u64) -> Result<Vec<Expired>, EngineError>;
}

/// One membership removed by [`Presence::expire_due`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    /// The channel.
    pub channel: ChannelKey,
    /// The user.
    pub user: Arc<str>,
    /// What it was.
    pub departed: Departed,
}
