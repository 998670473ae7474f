//! Stream channel topic roles: who publishes in which topic of a stream channel, with
//! the publisher's meta. Roles are shared by every node (a member on one node sees the
//! publishers of members on others); which publishers a member *follows* is the
//! member's own session state and stays on its node.

use crate::{ChannelKey, EngineError};
use std::sync::Arc;

/// One publisher of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPublisher {
    /// The publisher's user id.
    pub user: Arc<str>,
    /// Its meta, as given to `join_topic`.
    pub meta: Arc<str>,
}

/// One topic of a stream channel with its publishers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// The topic name.
    pub topic: Arc<str>,
    /// Its publishers, ordered by user id.
    pub publishers: Vec<TopicPublisher>,
}

/// Topic roles of stream channels.
///
/// Contract (each method is one atomic step; in Redis one Lua script over one HASH per
/// channel, field `topic\0user` → meta, plus a per-user counter):
/// - `join_topic` adds `user` as a publisher of `topic` unless it already is one; it
///   fails with [`EngineError::LimitReached`] and changes nothing when `user` already
///   publishes in `max_topics` topics of the channel. Returns whether it added the role.
///   Re-joining an already joined topic keeps the first meta (R99).
/// - `leave_topic` removes the role; returns whether there was one.
/// - `leave_channel` removes every role of `user` in the channel and returns the topics
///   it had, ordered by name.
/// - `topics` lists every topic that has publishers, ordered by name, each with its
///   publishers ordered by user id; a topic without publishers does not exist.
/// - `publishers` lists the publishers of one topic, ordered by user id.
#[async_trait::async_trait]
pub trait Topics: Send + Sync + 'static {
    /// Makes `user` a publisher of `topic` (see the trait contract).
    async fn join_topic(
        &self,
        channel: &ChannelKey,
        topic: &str,
        user: &str,
        meta: &str,
        max_topics: usize,
    ) -> Result<bool, EngineError>;

    /// Removes `user` as a publisher of `topic`.
    async fn leave_topic(
        &self,
        channel: &ChannelKey,
        topic: &str,
        user: &str,
    ) -> Result<bool, EngineError>;

    /// Removes every role of `user` in `channel`; returns the topics it published in.
    async fn leave_channel(
        &self,
        channel: &ChannelKey,
        user: &str,
    ) -> Result<Vec<Arc<str>>, EngineError>;

    /// Every topic of `channel` with its publishers.
    async fn topics(&self, channel: &ChannelKey) -> Result<Vec<TopicInfo>, EngineError>;

    /// The publishers of one topic.
    async fn publishers(
        &self,
        channel: &ChannelKey,
        topic: &str,
    ) -> Result<Vec<TopicPublisher>, EngineError>;
}
