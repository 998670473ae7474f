//! Presence (api.md §5, §9.3, R116–R133): who is in a channel with which temporary
//! state, and the events others get when that changes. [`events`] produces the events
//! and snapshots, [`state`] checks and merges temporary state, [`requests`] answers the
//! presence requests; [`PresenceHooks`] is how entering and leaving channels, losing a
//! connection and coming back reach it.

pub(crate) mod events;
pub(crate) mod requests;
pub(crate) mod state;

pub(crate) use events::{Modes, sweep};
pub(crate) use requests::{
    get_state, remove_state, set_state, where_now, where_now_as, who_now, who_now_as,
};

use crate::node::Node;
use crate::session::Session;
use crate::session::hooks::{Departure, Hooks, Wants};
use crate::wire::Failure;
use std::collections::HashMap;
use std::sync::Arc;
use switchboard_engine::{ChannelKey, StreamPosition};
use switchboard_protocol::pb::server_message::Body;

/// Presence's part in the session lifecycle.
pub(crate) struct PresenceHooks;

#[async_trait::async_trait]
impl Hooks for PresenceHooks {
    fn check_enter(
        &self,
        session: &Session,
        key: &ChannelKey,
        state: &HashMap<String, String>,
    ) -> Result<(), Failure> {
        state::check_entering_state(session, key, state)
    }

    async fn entered(
        &self,
        node: &Arc<Node>,
        session: &Session,
        key: &ChannelKey,
        quiet: bool,
        given: &HashMap<String, String>,
    ) {
        let state = state::entering_state(session, key, given);
        events::enter(node, session, key, quiet, state).await;
    }

    async fn snapshot(
        &self,
        node: &Node,
        key: &ChannelKey,
        position: StreamPosition,
        wants: Wants,
    ) -> Option<Body> {
        if !wants.presence {
            return None;
        }
        events::snapshot(node, key, position).await
    }

    async fn left(&self, node: &Arc<Node>, session: &Session, key: &ChannelKey, how: Departure) {
        events::exit(node, session, key, how).await;
    }

    async fn attached(&self, node: &Node, session: &Session, _resumed: bool) {
        events::set_expiry(node, session, None).await;
    }

    async fn connection_lost(&self, node: &Node, session: &Session) {
        events::set_expiry(node, session, Some(session.presence_timeout)).await;
    }
}
