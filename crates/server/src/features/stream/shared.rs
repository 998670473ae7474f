//! What the stream channel requests share: the topics engine, membership lookups,
//! topic events into the channel's stream, and the SubscribeTopicErrorCode values.

use crate::node::Node;
use crate::node::hub::StreamFilter;
use crate::session::Session;
use crate::session::client::Client;
use crate::wire::Failure;
use prost::Message as _;
use std::sync::Arc;
use switchboard_engine::{ChannelKey, EngineError, EventKind, TopicInfo};
use switchboard_protocol::pb;
use switchboard_protocol::{ErrorCode, now_ms};

/// SubscribeTopicErrorCode values (api.md §10.14).
pub(super) const INVALID_PARAMS: i32 = 4;
pub(super) const ALREADY_SUBSCRIBED_USER: i32 = 20001;
pub(super) const SUB_USER_EXCEED_LIMITATION: i32 = 20003;
pub(super) const NOT_SUBSCRIBED_USER: i32 = 20004;

/// An engine error as `code`, except a budget refusal, which answers as a message
/// publish's does (−19002 with the budget's reason).
pub(super) fn engine_failure(code: ErrorCode, e: &EngineError) -> Failure {
    match e {
        EngineError::OverBudget(reason) => Failure::new(ErrorCode::Overloaded, reason.clone()),
        _ => Failure::new(code, format!("engine: {e}")),
    }
}

pub(super) fn not_joined(channel: &str) -> Failure {
    Failure::new(
        ErrorCode::ChannelNotJoined,
        format!("stream channel {channel} is not joined (R96)"),
    )
}

pub(super) fn wire_topics(infos: &[TopicInfo]) -> Vec<pb::TopicInfo> {
    infos
        .iter()
        .map(|i| pb::TopicInfo {
            topic_name: i.topic.to_string(),
            publishers: i
                .publishers
                .iter()
                .map(|p| pb::TopicPublisher {
                    user_id: p.user.to_string(),
                    meta: p.meta.to_string(),
                })
                .collect(),
        })
        .collect()
}

/// Publishes a topic REMOTE_JOIN / REMOTE_LEAVE of `user` into the channel's stream, so
/// every member on every node gets it in order with the channel's messages (R93, R100).
pub(super) async fn publish_topic_event(
    node: &Node,
    key: &ChannelKey,
    kind: pb::TopicEventType,
    user: &Arc<str>,
    topic: &str,
    meta: &str,
) {
    let now = now_ms();
    let event = pb::TopicEvent {
        event_type: kind as i32,
        channel_name: key.name.to_string(),
        publisher: user.to_string(),
        topics: vec![pb::TopicInfo {
            topic_name: topic.to_string(),
            publishers: vec![pb::TopicPublisher {
                user_id: user.to_string(),
                meta: meta.to_string(),
            }],
        }],
        timestamp: now,
        position: None,
    };
    let payload = event.encode_to_vec();
    crate::node::hub::publish_event(&*node.broker, key, EventKind::Topic, user, payload).await;
}
/// Picks up to `n` of `items` at random (R108), keeping the rest out.
pub(super) fn pick_random<T>(mut items: Vec<T>, n: usize) -> Vec<T> {
    if items.len() <= n {
        return items;
    }
    for i in 0..n {
        let j = i + (rand::random::<u64>() as usize) % (items.len() - i);
        items.swap(i, j);
    }
    items.truncate(n);
    items
}

pub(super) fn failure(user: &str, code: i32, reason: impl Into<String>) -> pb::TopicFailure {
    pb::TopicFailure {
        user: user.to_string(),
        error_code: code,
        reason: reason.into(),
        topic_name: String::new(),
    }
}

/// Outcome of a topic subscription.
pub(super) struct Followed {
    /// Users now followed.
    pub succeed: Vec<String>,
    /// Users not followed, with why.
    pub failed: Vec<pb::TopicFailure>,
}

pub(super) fn topics_engine(
    client: &Client,
) -> Result<Arc<dyn switchboard_engine::Topics>, Failure> {
    client.node.topics.clone().ok_or_else(|| {
        Failure::new(
            ErrorCode::ChannelNotAvailable,
            "stream channels are not available on this server",
        )
    })
}

/// The member's filter in a joined channel, or −11001 (R96).
pub(super) fn member(session: &Session, channel: &str) -> Result<Arc<StreamFilter>, Failure> {
    session
        .lock()
        .streams
        .get(channel)
        .map(|m| m.filter.clone())
        .ok_or_else(|| not_joined(channel))
}

/// The topic SNAPSHOT of stream channel `key` (every topic with its publishers), as
/// of `position`; `None` without a topics engine or when it cannot be read.
pub(super) async fn topic_snapshot(
    node: &Node,
    key: &ChannelKey,
    position: switchboard_engine::StreamPosition,
) -> Option<pb::server_message::Body> {
    let topics = node.topics.as_ref()?;
    let infos = topics.topics(key).await.ok()?;
    Some(pb::server_message::Body::Topic(pb::TopicEvent {
        event_type: pb::TopicEventType::Snapshot as i32,
        channel_name: key.name.to_string(),
        publisher: String::new(),
        topics: wire_topics(&infos),
        timestamp: now_ms(),
        position: crate::wire::wire_position(position),
    }))
}
