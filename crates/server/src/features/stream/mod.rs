//! Stream channels and topics (api.md §4, R88–R115; token.md T52–T55): [`channel`]
//! joins and leaves, [`topics`] handles publisher roles, topic messages and topic
//! subscriptions, [`shared`] holds what both use; [`StreamHooks`] drops a departing
//! member's topic roles, however it left, and sends a fresh topic SNAPSHOT after a
//! resume.

pub(crate) mod channel;
pub(crate) mod shared;
pub(crate) mod topics;

pub(crate) use channel::{join, leave, renew_token};
pub(crate) use topics::{
    join_topic, leave_topic, publish_topic_message, subscribe_topic, unsubscribe_topic,
};

use crate::node::Node;
use crate::session::Session;
use crate::session::hooks::{Departure, Hooks};
use std::sync::Arc;
use switchboard_engine::{ChannelKey, ChannelKind, StreamPosition};
use switchboard_protocol::pb;
use switchboard_protocol::pb::server_message::Body;

/// Stream channels' part in the session lifecycle.
pub(crate) struct StreamHooks;

#[async_trait::async_trait]
impl Hooks for StreamHooks {
    /// After a resume, a fresh topic SNAPSHOT of every joined stream channel (R60;
    /// seed 002's diffing code depends on it).
    async fn resumed_into(
        &self,
        node: &Node,
        key: &ChannelKey,
        position: StreamPosition,
    ) -> Option<Body> {
        if key.kind != ChannelKind::Stream {
            return None;
        }
        shared::topic_snapshot(node, key, position).await
    }

    /// A member that left a stream channel (leave, token expiry, session end) drops its
    /// topic roles, and the others hear of each (R94).
    async fn left(&self, node: &Arc<Node>, session: &Session, key: &ChannelKey, _how: Departure) {
        if key.kind != ChannelKind::Stream {
            return;
        }
        let Some(topics) = &node.topics else { return };
        match topics.leave_channel(key, &session.user).await {
            Ok(left) => {
                for topic in left {
                    let kind = pb::TopicEventType::RemoteLeave;
                    shared::publish_topic_event(node, key, kind, &session.user, &topic, "").await;
                }
            }
            Err(e) => tracing::warn!(channel = %key.name, error = %e, "topic roles not dropped"),
        }
    }
}
