//! Options and replies of stream channel calls (`JoinOptions`, `JoinTopicOptions`, …,
//! api.md §4); the options are kept by the session to rejoin a channel.

use super::common::StreamPosition;
use super::events::TopicDetail;
use std::collections::BTreeMap;

/// Options of [`crate::StreamChannel::join`] (`JoinOptions`, api.md §4.1; defaults R90).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinOptions {
    /// RTC token of this channel with the join privilege; `None` or empty = no token
    /// (the app id is sent, accepted only by apps without a certificate).
    pub token: Option<String>,
    /// Presence events of the channel (default true).
    pub with_presence: bool,
    /// Quiet mode (default false).
    pub be_quiet: bool,
    /// Storage events (default false).
    pub with_metadata: bool,
    /// Lock events (default false).
    pub with_lock: bool,
}

impl Default for JoinOptions {
    fn default() -> Self {
        JoinOptions {
            token: None,
            with_presence: true,
            be_quiet: false,
            with_metadata: false,
            with_lock: false,
        }
    }
}

/// Reply of a join (`JoinChannelResponse`), with the channel's topic snapshot as the Go
/// SDK's `Join` hands it back (seed 004, api.md §14.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinChannelResponse {
    /// Server time, ms.
    pub timestamp: u64,
    /// The stream channel.
    pub channel_name: String,
    /// Every topic of the channel with all its publishers (and their meta) as the join
    /// found them: the topic SNAPSHOT that follows the reply (R92), also the first item
    /// of [`crate::StreamChannel::topic_events`]. Empty when the channel was joined
    /// already (that join changes nothing, R91) or has no publisher.
    pub snapshot: Vec<TopicDetail>,
}

impl JoinChannelResponse {
    /// The snapshot in the Go SDK's shape (`map[topic][]userId`): each topic's
    /// publishers' user ids, in the snapshot's order.
    pub fn topics(&self) -> BTreeMap<String, Vec<String>> {
        self.snapshot
            .iter()
            .map(|t| {
                let users = t.publishers.iter().map(|p| p.publisher_user_id.clone());
                (t.topic_name.clone(), users.collect())
            })
            .collect()
    }
}

/// Reply of a leave (`LeaveChannelResponse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveChannelResponse {
    /// Server time, ms.
    pub timestamp: u64,
    /// The stream channel.
    pub channel_name: String,
}

/// Whether a publisher's messages must arrive in order (Go values; this service always
/// delivers one publisher's messages in order, R72).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TopicQos {
    /// `UNORDERED` (default).
    #[default]
    Unordered,
    /// `ORDERED`.
    Ordered,
}

/// Relative priority of a publisher's messages (Go values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TopicPriority {
    /// `HIGHEST`.
    Highest,
    /// `HIGH`.
    High,
    /// `NORMAL` (default).
    #[default]
    Normal,
    /// `LOW`.
    Low,
}

/// Options of [`crate::StreamChannel::join_topic`] (`joinTopicOptions`, api.md §4.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinTopicOptions {
    /// Shown to others as `publisherMeta`.
    pub meta: String,
    /// Quality of service (default unordered).
    pub qos: TopicQos,
    /// Priority (default normal).
    pub priority: TopicPriority,
    /// Calibrate messages with media timestamps (`send_ts`).
    pub sync_with_media: bool,
}

/// Reply of a join_topic (`JoinTopicResponse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinTopicResponse {
    /// Server time, ms.
    pub timestamp: u64,
    /// The topic.
    pub topic_name: String,
}

/// Reply of a leave_topic (`LeaveTopicResponse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveTopicResponse {
    /// Server time, ms.
    pub timestamp: u64,
    /// The topic.
    pub topic_name: String,
}

/// Options of [`crate::StreamChannel::publish_topic_message`] (api.md §4.4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishTopicOptions {
    /// Application label, 1–32 bytes.
    pub custom_type: Option<String>,
    /// Media-calibration timestamp, ms (0 = none), delivered unchanged.
    pub send_ts: u64,
}

/// Reply of a publish_topic_message (`PublishTopicMessageResponse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishTopicMessageResponse {
    /// Server time, ms.
    pub timestamp: u64,
    /// The stream channel.
    pub channel_name: String,
    /// The topic.
    pub topic_name: String,
    /// Where the message landed in the channel's stream.
    pub position: StreamPosition,
}

/// One user a topic (un)subscription did not apply to (`SubscribedFailedReason`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribedFailedReason {
    /// The user id.
    pub user: String,
    /// `SubscribeTopicErrorCode` (api.md §10.14), e.g. [`Self::ALREADY_SUBSCRIBED_USER`].
    pub error_code: i32,
    /// Why, in words.
    pub reason: String,
}

impl SubscribedFailedReason {
    /// An invalid user id (4).
    pub const INVALID_PARAMS: i32 = 4;
    /// The user is already followed (20001).
    pub const ALREADY_SUBSCRIBED_USER: i32 = 20001;
    /// Following the user would exceed the per-topic limit (20003).
    pub const SUB_USER_EXCEED_LIMITATION: i32 = 20003;
    /// (unsubscribe) The user was not followed (20004).
    pub const NOT_SUBSCRIBED_USER: i32 = 20004;
}

/// Reply of a subscribe_topic (`SubscribeTopicResponse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeTopicResponse {
    /// Server time, ms.
    pub timestamp: u64,
    /// The topic.
    pub topic_name: String,
    /// Users followed by this call (pre-subscribed non-publishers included, R109).
    pub succeed_users: Vec<String>,
    /// Users not followed.
    pub failed_users: Vec<String>,
    /// One entry per user not followed.
    pub failed_details: Vec<SubscribedFailedReason>,
}

/// Reply of an unsubscribe_topic (`UnsubscribeTopicResponse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubscribeTopicResponse {
    /// Server time, ms.
    pub timestamp: u64,
    /// The topic.
    pub topic_name: String,
    /// Listed users that were not followed (`NOT_SUBSCRIBED_USER`).
    pub failed_details: Vec<SubscribedFailedReason>,
}
