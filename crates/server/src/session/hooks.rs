//! The lifecycle hooks: how the session layer tells the features about a member
//! entering or leaving a channel and about a session's connection being lost, coming
//! back, being replaced or the session ending — without knowing the features. Each
//! feature with per-session or per-channel state implements [`Hooks`]; the one list of
//! them is `features::hooks()`, installed in the node by `Server::run`. Every method
//! has a do-nothing default, so a feature implements only what it keeps.
//!
//! The hooks run in list order; the list's order is the order of the SNAPSHOT pushes a
//! member gets (presence, then storage, then locks).

use super::client::Client;
use super::core::Session;
use crate::node::Node;
use crate::wire::Failure;
use std::collections::HashMap;
use std::sync::Arc;
use switchboard_engine::{ChannelKey, MetadataObject, StreamPosition, WriteOp};
use switchboard_protocol::DisconnectCode;
use switchboard_protocol::pb::server_message::Body;

/// Why a member left a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Departure {
    /// Unsubscribe, leave, logout, kick, token expiry: REMOTE_LEAVE.
    Leave,
    /// Its connection was lost for `presenceTimeout`: REMOTE_TIMEOUT (R118).
    Timeout,
}

/// Which channel state a member follows, so which SNAPSHOT pushes it gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Wants {
    /// Presence (`withPresence`).
    pub presence: bool,
    /// Storage (`withMetadata`).
    pub metadata: bool,
    /// Locks (`withLock`).
    pub locks: bool,
}

/// What an ended session held, taken out of its state when it ended.
pub(crate) struct Ended {
    /// Users whose metadata it followed.
    pub user_metadata: Vec<Arc<str>>,
    /// The close its connection was told (kick, SAME_UID_LOGIN, …), if any.
    pub closed: Option<(DisconnectCode, String)>,
}

/// What became of a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockChange {
    /// Acquired (directly, or handed over to a waiter).
    Acquired,
    /// Released by its owner (or by the end of the owner's session).
    Released,
    /// Revoked by another user or the server API (R155).
    Revoked,
    /// Its owner did not come back within its ttl (R153).
    Expired,
}

/// A change a feature made that other features may want to hear of (the webhooks), told
/// once, by the node that made it, right after the change.
pub(crate) enum Happening<'a> {
    /// Channel or user metadata written (`object`: the channel, or `User` + user id).
    Metadata {
        /// The stored object.
        object: &'a ChannelKey,
        /// Set, update or remove.
        op: WriteOp,
        /// The writer.
        by: &'a str,
        /// The keys of the call (empty: a remove of every item).
        keys: &'a [String],
        /// The object after the write.
        data: &'a MetadataObject,
    },
    /// A lock of `channel` changed hands.
    Lock {
        /// The channel.
        channel: &'a ChannelKey,
        /// The lock.
        lock: &'a str,
        /// What became of it.
        change: LockChange,
        /// The owner it is about (the new one for `Acquired`, the former one otherwise).
        owner: &'a str,
        /// Who did it.
        by: &'a str,
    },
    /// The presence sweep removed a membership whose engine deadline passed: its node
    /// stopped without ending the session (R118).
    Lapsed {
        /// The channel.
        channel: &'a ChannelKey,
        /// The member.
        user: &'a str,
    },
    /// The server API banned a user.
    Banned {
        /// The app.
        app: &'a str,
        /// The user.
        user: &'a str,
        /// When the ban ends, ms since the epoch.
        until_ms: u64,
        /// The reason given.
        reason: &'a str,
    },
}

/// One feature's part in the session lifecycle (see the module docs).
#[async_trait::async_trait]
pub(crate) trait Hooks: Send + Sync + 'static {
    /// Checks what a subscribe or join brings for `key` (`state` given with it) before
    /// anything changes (R171).
    fn check_enter(
        &self,
        _session: &Session,
        _key: &ChannelKey,
        _state: &HashMap<String, String>,
    ) -> Result<(), Failure> {
        Ok(())
    }

    /// The session entered `key` (subscribe or join), quietly or not, with `state`.
    async fn entered(
        &self,
        _node: &Arc<Node>,
        _session: &Session,
        _key: &ChannelKey,
        _quiet: bool,
        _state: &HashMap<String, String>,
    ) {
    }

    /// The SNAPSHOT push this feature owes a member that entered `key` (or resumed it
    /// with a gap) and follows `wants`, as of `position`.
    async fn snapshot(
        &self,
        _node: &Node,
        _key: &ChannelKey,
        _position: StreamPosition,
        _wants: Wants,
    ) -> Option<Body> {
        None
    }

    /// The SNAPSHOT push this feature owes a member whose session resumed into `key`,
    /// after the channel's replay, as of `position` (R60: a fresh topic SNAPSHOT).
    async fn resumed_into(
        &self,
        _node: &Node,
        _key: &ChannelKey,
        _position: StreamPosition,
    ) -> Option<Body> {
        None
    }

    /// The session left `key` (unsubscribe, leave, token expiry, session end); its
    /// local delivery has stopped already.
    async fn left(
        &self,
        _node: &Arc<Node>,
        _session: &Session,
        _key: &ChannelKey,
        _how: Departure,
    ) {
    }

    /// A resume is about to replace the session's connection.
    async fn replacing(&self, _node: &Node, _session: &Session) {}

    /// A connection is attached to the session (a new login, or a resume when
    /// `resumed`).
    async fn attached(&self, _node: &Node, _session: &Session, _resumed: bool) {}

    /// A resume has replayed every channel; what the feature sends after that.
    async fn resumed(&self, _client: &mut Client, _session: &Arc<Session>) {}

    /// The session's connection was lost; it lives on for `presenceTimeout`.
    async fn connection_lost(&self, _node: &Node, _session: &Session) {}

    /// The session ended (logout, kick, timeout, expired login token), after it left
    /// every channel.
    async fn ended(&self, _node: &Arc<Node>, _session: &Session, _ended: &Ended) {}

    /// Another feature made a change (see [`Happening`]); must not wait.
    fn happened(&self, _node: &Node, _what: &Happening<'_>) {}
}

/// The features' hooks in their one order; installed in the node's extensions.
pub(crate) struct HookList(pub Vec<Arc<dyn Hooks>>);

impl HookList {
    /// The node's hooks.
    pub fn of(node: &Node) -> &[Arc<dyn Hooks>] {
        &node.ext.get::<HookList>().0
    }
}

/// Every hook's [`Hooks::check_enter`]; the first failure.
pub(crate) fn check_enter(
    node: &Node,
    session: &Session,
    key: &ChannelKey,
    state: &HashMap<String, String>,
) -> Result<(), Failure> {
    HookList::of(node)
        .iter()
        .try_for_each(|h| h.check_enter(session, key, state))
}

/// Every hook's [`Hooks::entered`].
pub(crate) async fn entered(
    node: &Arc<Node>,
    session: &Session,
    key: &ChannelKey,
    quiet: bool,
    state: &HashMap<String, String>,
) {
    for h in HookList::of(node) {
        h.entered(node, session, key, quiet, state).await;
    }
}

/// The SNAPSHOT pushes a member following `wants` of `key` gets, as of `position`.
pub(crate) async fn snapshots(
    node: &Node,
    key: &ChannelKey,
    position: StreamPosition,
    wants: Wants,
) -> Vec<Body> {
    let mut out = Vec::new();
    for h in HookList::of(node) {
        out.extend(h.snapshot(node, key, position, wants).await);
    }
    out
}

/// The SNAPSHOT pushes owed to a member whose session resumed into `key`, as of
/// `position`.
pub(crate) async fn resumed_into(
    node: &Node,
    key: &ChannelKey,
    position: StreamPosition,
) -> Vec<Body> {
    let mut out = Vec::new();
    for h in HookList::of(node) {
        out.extend(h.resumed_into(node, key, position).await);
    }
    out
}

/// Every hook's [`Hooks::left`].
pub(crate) async fn left(node: &Arc<Node>, session: &Session, key: &ChannelKey, how: Departure) {
    for h in HookList::of(node) {
        h.left(node, session, key, how).await;
    }
}

/// Every hook's [`Hooks::replacing`].
pub(crate) async fn replacing(node: &Node, session: &Session) {
    for h in HookList::of(node) {
        h.replacing(node, session).await;
    }
}

/// Every hook's [`Hooks::attached`].
pub(crate) async fn attached(node: &Node, session: &Session, resumed: bool) {
    for h in HookList::of(node) {
        h.attached(node, session, resumed).await;
    }
}

/// Every hook's [`Hooks::resumed`].
pub(crate) async fn resumed(client: &mut Client, session: &Arc<Session>) {
    let hooks = HookList::of(&client.node).to_vec();
    for h in hooks {
        h.resumed(client, session).await;
    }
}

/// Every hook's [`Hooks::connection_lost`].
pub(crate) async fn connection_lost(node: &Node, session: &Session) {
    for h in HookList::of(node) {
        h.connection_lost(node, session).await;
    }
}

/// Every hook's [`Hooks::ended`].
pub(crate) async fn ended(node: &Arc<Node>, session: &Session, ended: &Ended) {
    for h in HookList::of(node) {
        h.ended(node, session, ended).await;
    }
}

/// Every hook's [`Hooks::happened`].
pub(crate) fn happened(node: &Node, what: &Happening<'_>) {
    for h in HookList::of(node) {
        h.happened(node, what);
    }
}
