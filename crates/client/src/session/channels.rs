//! Each stream channel's state as the session keeps it (R88): its own link, the join
//! options and token in force, the topics it publishes in and the publishers it follows,
//! and the queues registered at join. The stream channel handle edits it; a rejoin
//! replays it in one `JoinRequest`; a reset (leave, logout, the server leaving the
//! channel) clears it.

use super::Inner;
use crate::router::Pending;
use crate::types::{
    ChannelType, Event, JoinOptions, JoinTopicOptions, LinkStateEvent, StreamPosition,
    TopicPriority, TopicQos,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use switchboard_protocol::pb;
use switchboard_protocol::{ErrorCode, LinkOperation, LinkReason, LinkState, now_ms};

/// What the client has in one stream channel: kept for recovery and local answers.
pub(crate) struct ChannelState {
    /// The channel's own link: IDLE, CONNECTING (a join in flight), CONNECTED (joined),
    /// FAILED (join refused, or the server left the channel).
    pub link: LinkState,
    /// Bumped whenever the channel is reset (leave, logout, lost), so an operation in
    /// flight across a reset does not write into the new state.
    pub epoch: u64,
    /// The options of the join in force.
    pub options: JoinOptions,
    /// The RTC token in force (as sent: the app id when none), renewals included.
    pub token: String,
    /// Topics the app publishes in (joined and not left), with their options.
    pub topics: BTreeMap<String, JoinTopicOptions>,
    /// Publishers followed per topic: succeeded subscriptions minus unsubscriptions.
    pub followed: BTreeMap<String, BTreeSet<String>>,
    /// The message queue registered at join, until `messages()` claims it.
    pub messages: Option<Pending>,
    /// The topic event queue registered at join, until `topic_events()` claims it.
    pub topic_events: Option<Pending>,
    /// The presence event queue registered at join, until `presence_events()` claims it.
    pub presence_events: Option<Pending>,
    /// The storage event queue registered at a join `with_metadata`, until
    /// `storage_events()` claims it.
    pub storage_events: Option<Pending>,
    /// The lock event queue registered at a join `with_lock`, until `lock_events()`
    /// claims it.
    pub lock_events: Option<Pending>,
}

impl ChannelState {
    pub(crate) fn new() -> Self {
        ChannelState {
            link: LinkState::Idle,
            epoch: 0,
            options: JoinOptions::default(),
            token: String::new(),
            topics: BTreeMap::new(),
            followed: BTreeMap::new(),
            messages: None,
            topic_events: None,
            presence_events: None,
            storage_events: None,
            lock_events: None,
        }
    }

    /// The request that restores this channel into a new session: the join in force,
    /// from `since`, with every topic role and followed publisher.
    pub fn rejoin_request(&self, name: &str, since: Option<StreamPosition>) -> pb::JoinRequest {
        let mut req = join_request(name, &self.token, &self.options);
        req.since = since.map(|p| pb::StreamPosition {
            epoch: p.epoch,
            offset: p.offset,
        });
        req.topics = self
            .topics
            .iter()
            .map(|(topic, o)| join_topic_request(name, topic, o))
            .collect();
        req.subscriptions = self
            .followed
            .iter()
            .filter(|(_, users)| !users.is_empty())
            .map(|(topic, users)| pb::SubscribeTopicRequest {
                channel_name: name.to_string(),
                topic_name: topic.clone(),
                users: users.iter().cloned().collect(),
            })
            .collect();
        req
    }
}

/// One channel's state, shared by every handle of its name.
pub(crate) type SharedChannel = Arc<Mutex<ChannelState>>;

/// A new, idle channel state.
pub(crate) fn new_channel() -> SharedChannel {
    Arc::new(Mutex::new(ChannelState::new()))
}

/// Locks a channel's state.
pub(crate) fn lock_channel(shared: &SharedChannel) -> MutexGuard<'_, ChannelState> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// The request of a join with `o` and `token` (nothing to restore).
pub(crate) fn join_request(name: &str, token: &str, o: &JoinOptions) -> pb::JoinRequest {
    pb::JoinRequest {
        channel_name: name.to_string(),
        token: token.to_string(),
        with_presence: Some(o.with_presence),
        be_quiet: Some(o.be_quiet),
        with_metadata: Some(o.with_metadata),
        with_lock: Some(o.with_lock),
        since: None,
        topics: Vec::new(),
        subscriptions: Vec::new(),
        state: Default::default(),
    }
}

/// The request of a join_topic with `o`.
pub(crate) fn join_topic_request(
    name: &str,
    topic: &str,
    o: &JoinTopicOptions,
) -> pb::JoinTopicRequest {
    pb::JoinTopicRequest {
        channel_name: name.to_string(),
        topic_name: topic.to_string(),
        meta: o.meta.clone(),
        qos: match o.qos {
            TopicQos::Unordered => pb::TopicQos::Unordered,
            TopicQos::Ordered => pb::TopicQos::Ordered,
        } as i32,
        priority: Some(match o.priority {
            TopicPriority::Highest => pb::TopicPriority::Highest,
            TopicPriority::High => pb::TopicPriority::High,
            TopicPriority::Normal => pb::TopicPriority::Normal,
            TopicPriority::Low => pb::TopicPriority::Low,
        } as i32),
        sync_with_media: o.sync_with_media,
    }
}

/// The link reason of a refused join (or rejoin) with `code`.
pub(crate) fn join_failure_reason(code: i32) -> LinkReason {
    match ErrorCode::from_i32(code) {
        Some(ErrorCode::TokenExpired) => LinkReason::TokenExpired,
        Some(ErrorCode::InvalidToken) => LinkReason::InvalidToken,
        Some(ErrorCode::InconsistentAppid) => LinkReason::InconsistentAppId,
        Some(ErrorCode::InvalidChannelName) => LinkReason::InvalidChannelName,
        Some(ErrorCode::ChannelInstanceExceedLimitation) => {
            LinkReason::ChannelInstanceExceedLimitation
        }
        Some(ErrorCode::ChannelNotAvailable) => LinkReason::StreamChannelNotAvailable,
        _ => LinkReason::JoinFailed,
    }
}

impl Inner {
    /// Moves stream channel `name`'s link to `to` and reports it (`STREAM`).
    pub(crate) fn channel_transition(
        &self,
        name: &str,
        ch: &mut ChannelState,
        to: LinkState,
        op: LinkOperation,
        reason: LinkReason,
        text: Option<String>,
    ) {
        if ch.link == to {
            return;
        }
        let event = LinkStateEvent {
            current_state: to,
            previous_state: ch.link,
            service_type: "STREAM",
            operation: op,
            reason_code: reason,
            reason: match text {
                Some(d) => format!("{}: {d}", reason.description()),
                None => reason.description().to_string(),
            },
            affected_channels: vec![name.to_string()],
            unrestored_channels: Vec::new(),
            gap_channels: Vec::new(),
            is_resumed: false,
            timestamp: now_ms(),
        };
        ch.link = to;
        self.router.notify(Event::LinkState(event));
    }

    /// Forgets what the client had in stream channel `name` (roles, followed publishers,
    /// position), ends its streams, and moves its link to `to`.
    pub(crate) fn reset_channel(
        &self,
        name: &str,
        ch: &mut ChannelState,
        to: LinkState,
        op: LinkOperation,
        reason: LinkReason,
        text: Option<String>,
    ) {
        ch.epoch += 1;
        ch.topics.clear();
        ch.followed.clear();
        ch.messages = None;
        ch.topic_events = None;
        ch.presence_events = None;
        ch.storage_events = None;
        ch.lock_events = None;
        self.router.end_stream(name);
        self.positions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(ChannelType::Stream, name.to_string()));
        // Left or lost: the server dropped its presence state there too.
        self.states()
            .remove(&(ChannelType::Stream, name.to_string()));
        self.channel_transition(name, ch, to, op, reason, text);
    }

    /// The server left stream channel `c.channel_name` for the client (`ChannelLeft`:
    /// its RTC token expired, T55): the channel's link fails and its state is reset.
    pub(crate) fn channel_left(&self, c: pb::ChannelLeft) {
        if c.channel_type == pb::ChannelType::Message as i32
            || c.channel_type == pb::ChannelType::User as i32
        {
            return;
        }
        let Some(shared) = self.lock().streams.get(&c.channel_name).cloned() else {
            return;
        };
        let mut ch = lock_channel(&shared);
        if !matches!(ch.link, LinkState::Connected | LinkState::Connecting) {
            return;
        }
        let reason = match ErrorCode::from_i32(c.code) {
            Some(ErrorCode::TokenExpired) => LinkReason::TokenExpired,
            Some(ErrorCode::InvalidToken) => LinkReason::InvalidToken,
            _ => LinkReason::KickedOutByServer,
        };
        tracing::info!(channel = %c.channel_name, code = c.code, reason = %c.reason, "server left the stream channel");
        self.reset_channel(
            &c.channel_name,
            &mut ch,
            LinkState::Failed,
            LinkOperation::ServerReject,
            reason,
            Some(c.reason),
        );
    }
}
