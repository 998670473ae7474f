//! Locks (api.md §7, R150–R159): [`requests`] answers the lock requests, [`waits`]
//! keeps the waiting `acquireLock`s, [`events`] publishes the lock events and hands a
//! freed lock to the next waiter; owner loss keeps the lock with an owner whose
//! connection is lost for its ttl, then EXPIRED. [`LockHooks`] is how leaving a
//! channel, losing or replacing a connection and ending a session reach it.
//!
//! Waiting requests are node-local: the engine keeps the line and hands the lock over;
//! the node that holds the waiting request answers it (with an engine shared by several
//! nodes, it hears of a hand-over made elsewhere through the engine's hand-over
//! notice). A waiter whose connection is lost leaves the line (its request cannot be
//! answered any more).

pub(crate) mod events;
pub(crate) mod requests;
pub(crate) mod waits;

pub(crate) use events::sweep;
pub(crate) use requests::{
    acquire_lock, get_lock, get_lock_as, release_lock, remove_lock, revoke_lock, revoke_lock_as,
    set_lock,
};
pub(crate) use waits::Waits;

use crate::node::Node;
use crate::session::Session;
use crate::session::hooks::{Departure, Ended, Hooks, Wants};
use events::{cancel_waits, connection_back, connection_lost, session_ended, snapshot};
use std::sync::Arc;
use switchboard_engine::{ChannelKey, ChannelKind, StreamPosition};
use switchboard_protocol::pb::server_message::Body;

/// Locks' part in the session lifecycle.
pub(crate) struct LockHooks;

#[async_trait::async_trait]
impl Hooks for LockHooks {
    async fn snapshot(
        &self,
        node: &Node,
        key: &ChannelKey,
        position: StreamPosition,
        wants: Wants,
    ) -> Option<Body> {
        // A user's inbox carries the EXPIRED events of its locks, but has no locks.
        if !wants.locks || key.kind == ChannelKind::User {
            return None;
        }
        snapshot(node, key, position).await
    }

    async fn left(&self, node: &Arc<Node>, session: &Session, key: &ChannelKey, _how: Departure) {
        let why = match key.kind {
            ChannelKind::Stream => "left the channel",
            _ => "unsubscribed",
        };
        cancel_waits(node, session, Some(key), why).await;
    }

    /// Lock waits of the connection a resume replaces cannot be answered any more.
    async fn replacing(&self, node: &Node, session: &Session) {
        cancel_waits(node, session, None, "the connection was replaced").await;
    }

    async fn attached(&self, node: &Node, session: &Session, resumed: bool) {
        if resumed {
            connection_back(node, session).await;
        }
    }

    async fn connection_lost(&self, node: &Node, session: &Session) {
        connection_lost(node, session).await;
    }

    /// A logout, kick or timeout releases the user's locks at once (R153 is about a
    /// lost connection, which keeps them for their ttl).
    async fn ended(&self, node: &Arc<Node>, session: &Session, _ended: &Ended) {
        session_ended(node, session).await;
    }
}
