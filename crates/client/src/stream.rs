//! Stream channels (`RTMStreamChannel`, api.md §4, R88–R115): `client.stream_channel(name)`
//! gives a handle on one channel's local state, shared by every handle of that name
//! (R88). Through it the app joins and leaves, takes and drops publisher roles in topics
//! (`join_topic`), publishes in them, and follows publishers (`subscribe_topic`).
//!
//! The SDK remembers what the app asked for — the join options and the token in force,
//! the topics it publishes in, the publishers it follows per topic — so that when the
//! server session is lost it can rejoin the channel in one `JoinRequest` carrying all of
//! it and the channel's last position, and the app misses nothing the server still has
//! (the same recovery as message channels). Queues for the channel's messages, topic
//! events and presence events are registered at join, so nothing is missed before the
//! app asks for them.
//!
//! Each channel has its own link, reported on the client's link state streams with
//! `service_type: "STREAM"` and `affected_channels = [name]`: `IDLE → CONNECTING` (JOIN,
//! or REJOIN after a failure) `→ CONNECTED` (JOIN_SUCCESS) or `FAILED` (JOIN_FAILED or
//! the token reason); `leave` → `IDLE` (LEAVE); logout → `IDLE` (LOGOUT). When the server
//! leaves the channel for the client (its RTC token expired: the `ChannelLeft` push) or
//! a rejoin is refused, the link goes `FAILED` with operation SERVER_REJECT (or JOIN) and
//! reason TOKEN_EXPIRED (or the refusal's reason), and the channel's local state and
//! streams end as after `leave`. Reconnections of the login link are not repeated per
//! channel: a channel stays CONNECTED while the SDK resumes or rejoins it.

use crate::router::{Pending, Route};
use crate::session::Inner;
use crate::types::{
    Event, MessageEvent, Payload, PresenceEvent, RtmError, StreamPosition, TopicEvent,
};
use crate::unexpected;
use crate::{Client, EventStream, conn, message_of, presence_of, stream_of};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use switchboard_protocol::pb::{self, client_message, server_message};
use switchboard_protocol::{ErrorCode, LinkOperation, LinkReason, LinkState, names, now_ms};

/// Options of [`StreamChannel::join`] (`JoinOptions`, api.md §4.1; defaults R90).
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

/// Reply of a join (`JoinChannelResponse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinChannelResponse {
    /// Server time, ms.
    pub timestamp: u64,
    /// The stream channel.
    pub channel_name: String,
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

/// Options of [`StreamChannel::join_topic`] (`joinTopicOptions`, api.md §4.3).
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

/// Options of [`StreamChannel::publish_topic_message`] (api.md §4.4).
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
}

impl ChannelState {
    fn new() -> Self {
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
pub(crate) fn lock(shared: &SharedChannel) -> MutexGuard<'_, ChannelState> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

fn join_request(name: &str, token: &str, o: &JoinOptions) -> pb::JoinRequest {
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

fn join_topic_request(name: &str, topic: &str, o: &JoinTopicOptions) -> pb::JoinTopicRequest {
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

/// The token to send for `token` (T61–T63): the app id when empty; a token of another
/// app is refused locally.
fn precheck(token: &str, app_id: &str, op: &str) -> Result<String, RtmError> {
    switchboard_token::client_precheck(token, app_id).map_err(|e| {
        let code = ErrorCode::from_i32(e.sdk_error_code()).unwrap_or(ErrorCode::InvalidToken);
        RtmError::new(code, op, format!("{}: {}", e.identifier(), e.description()))
    })
}

fn topic_name(topic: &str, op: &str) -> Result<(), RtmError> {
    names::validate_topic_name(topic).map_err(|e| RtmError::new(e.code, op, e.reason))
}

fn failures(failed: Vec<pb::TopicFailure>) -> Vec<SubscribedFailedReason> {
    failed
        .into_iter()
        .map(|f| SubscribedFailedReason {
            user: f.user,
            error_code: f.error_code,
            reason: f.reason,
        })
        .collect()
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
        let event = crate::types::LinkStateEvent {
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
        self.router.end_stream(name);
        self.positions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(crate::ChannelType::Stream, name.to_string()));
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
        let mut ch = lock(&shared);
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

/// A stream channel (`RTMStreamChannel`): a cheap handle on the channel's state, shared
/// with every other handle of the same name (R88). Obtained from
/// [`Client::stream_channel`].
#[derive(Clone)]
pub struct StreamChannel {
    client: Client,
    name: String,
    shared: SharedChannel,
}

impl StreamChannel {
    pub(crate) fn new(client: Client, name: String, shared: SharedChannel) -> Self {
        StreamChannel {
            client,
            name,
            shared,
        }
    }

    fn inner(&self) -> &Inner {
        &self.client.inner
    }

    fn lock(&self) -> MutexGuard<'_, ChannelState> {
        lock(&self.shared)
    }

    /// The channel's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The channel's own link state (IDLE, CONNECTING while joining, CONNECTED, FAILED).
    pub fn link_state(&self) -> LinkState {
        self.lock().link
    }

    /// The current epoch, failing with −11001 unless the channel is joined (R96).
    fn joined(&self, op: &str) -> Result<u64, RtmError> {
        let ch = self.lock();
        if ch.link != LinkState::Connected {
            return Err(RtmError::new(
                ErrorCode::ChannelNotJoined,
                op,
                format!("stream channel {} is not joined (R96)", self.name),
            ));
        }
        Ok(ch.epoch)
    }

    /// Joins the channel (api.md §4.1). The reply is followed by a topic SNAPSHOT (R92)
    /// on [`Self::topic_events`]; messages of followed publishers arrive on
    /// [`Self::messages`], both from this call on; with presence, a presence SNAPSHOT
    /// follows on [`Self::presence_events`]. A join while one is in progress fails
    /// with −10017 (R91); joining a joined channel changes nothing.
    pub async fn join(&self, options: JoinOptions) -> Result<JoinChannelResponse, RtmError> {
        const OP: &str = "join";
        let inner = self.inner();
        let token = precheck(options.token.as_deref().unwrap_or(""), &inner.app_id, OP)?;
        self.client.connected(OP)?;
        let fresh = {
            let mut ch = self.lock();
            match ch.link {
                LinkState::Connected => None,
                LinkState::Idle | LinkState::Failed => {
                    // Registered before the request, so nothing is missed until the app
                    // asks for them.
                    if ch.messages.is_none() {
                        ch.messages = Some(inner.router.register_pending(Route::StreamMessages {
                            channel: self.name.clone(),
                            topic: None,
                        }));
                    }
                    if ch.topic_events.is_none() {
                        ch.topic_events = Some(
                            inner
                                .router
                                .register_pending(Route::StreamTopics(self.name.clone())),
                        );
                    }
                    if ch.presence_events.is_none() && options.with_presence {
                        ch.presence_events = Some(
                            inner
                                .router
                                .register_pending(Route::StreamPresence(self.name.clone())),
                        );
                    }
                    let reason = if ch.link == LinkState::Idle {
                        LinkReason::Join
                    } else {
                        LinkReason::Rejoin
                    };
                    inner.channel_transition(
                        &self.name,
                        &mut ch,
                        LinkState::Connecting,
                        LinkOperation::Join,
                        reason,
                        None,
                    );
                    Some(ch.epoch)
                }
                _ => {
                    return Err(RtmError::new(
                        ErrorCode::DuplicateOperation,
                        OP,
                        format!("a join of {} is already in progress (R91)", self.name),
                    ));
                }
            }
        };
        let req = join_request(&self.name, &token, &options);
        let result = self
            .client
            .request(OP, client_message::Body::Join(req))
            .await;
        let Some(epoch) = fresh else {
            // Already joined: the server answers without change (R91).
            return match result? {
                server_message::Body::Join(r) => Ok(JoinChannelResponse {
                    timestamp: r.timestamp,
                    channel_name: r.channel_name,
                }),
                _ => Err(unexpected(OP)),
            };
        };
        let mut ch = self.lock();
        if ch.epoch != epoch {
            return Err(RtmError::new(
                ErrorCode::ChannelJoinCanceled,
                OP,
                "cancelled by leave or logout",
            ));
        }
        let result = match result {
            Ok(server_message::Body::Join(r)) => Ok(r),
            Ok(_) => Err(unexpected(OP)),
            Err(e) => Err(e),
        };
        match result {
            Ok(r) => {
                ch.options = options;
                ch.token = token;
                if let Some(p) = r.position {
                    conn::baseline(
                        &inner.positions,
                        (crate::ChannelType::Stream, self.name.clone()),
                        conn::position(Some(p)),
                    );
                }
                inner.channel_transition(
                    &self.name,
                    &mut ch,
                    LinkState::Connected,
                    LinkOperation::Join,
                    LinkReason::JoinSuccess,
                    None,
                );
                Ok(JoinChannelResponse {
                    timestamp: r.timestamp,
                    channel_name: r.channel_name,
                })
            }
            Err(e) => {
                inner.reset_channel(
                    &self.name,
                    &mut ch,
                    LinkState::Failed,
                    LinkOperation::Join,
                    join_failure_reason(e.code),
                    Some(e.reason.clone()),
                );
                Err(e)
            }
        }
    }

    /// Leaves the channel (api.md §4.2): every topic role and followed publisher in it
    /// is dropped (R94), its streams end and nothing of it arrives afterwards (R95).
    /// Not joined → −11001.
    pub async fn leave(&self) -> Result<LeaveChannelResponse, RtmError> {
        const OP: &str = "leave";
        if matches!(self.lock().link, LinkState::Idle | LinkState::Failed) {
            return Err(RtmError::new(
                ErrorCode::ChannelNotJoined,
                OP,
                format!("stream channel {} is not joined", self.name),
            ));
        }
        let req = pb::LeaveRequest {
            channel_name: self.name.clone(),
        };
        let result = self
            .client
            .request(OP, client_message::Body::Leave(req))
            .await;
        let not_joined =
            matches!(&result, Err(e) if e.code == ErrorCode::ChannelNotJoined.as_i32());
        if result.is_ok() || not_joined {
            let mut ch = self.lock();
            self.inner().reset_channel(
                &self.name,
                &mut ch,
                LinkState::Idle,
                LinkOperation::Leave,
                LinkReason::Leave,
                None,
            );
        }
        match result? {
            server_message::Body::Leave(r) => Ok(LeaveChannelResponse {
                timestamp: r.timestamp,
                channel_name: r.channel_name,
            }),
            _ => Err(unexpected(OP)),
        }
    }

    /// Becomes a publisher of `topic` (api.md §4.3, R97–R100); others get REMOTE_JOIN.
    /// Joining a joined topic changes nothing (R99).
    pub async fn join_topic(
        &self,
        topic: &str,
        options: JoinTopicOptions,
    ) -> Result<JoinTopicResponse, RtmError> {
        const OP: &str = "joinTopic";
        topic_name(topic, OP)?;
        let epoch = self.joined(OP)?;
        let req = join_topic_request(&self.name, topic, &options);
        match self
            .client
            .request(OP, client_message::Body::JoinTopic(req))
            .await?
        {
            server_message::Body::JoinTopic(r) => {
                let mut ch = self.lock();
                if ch.epoch == epoch {
                    ch.topics.entry(topic.to_string()).or_insert(options);
                }
                Ok(JoinTopicResponse {
                    timestamp: r.timestamp,
                    topic_name: r.topic_name,
                })
            }
            _ => Err(unexpected(OP)),
        }
    }

    /// Stops publishing in `topic` (api.md §4.5); followed publishers are unchanged
    /// (R101). Not a publisher → −11016.
    pub async fn leave_topic(&self, topic: &str) -> Result<LeaveTopicResponse, RtmError> {
        const OP: &str = "leaveTopic";
        topic_name(topic, OP)?;
        let epoch = self.joined(OP)?;
        let req = pb::LeaveTopicRequest {
            channel_name: self.name.clone(),
            topic_name: topic.to_string(),
        };
        let result = self
            .client
            .request(OP, client_message::Body::LeaveTopic(req))
            .await;
        let not_joined =
            matches!(&result, Err(e) if e.code == ErrorCode::ChannelTopicNotJoined.as_i32());
        if result.is_ok() || not_joined {
            let mut ch = self.lock();
            if ch.epoch == epoch {
                ch.topics.remove(topic);
            }
        }
        match result? {
            server_message::Body::LeaveTopic(r) => Ok(LeaveTopicResponse {
                timestamp: r.timestamp,
                topic_name: r.topic_name,
            }),
            _ => Err(unexpected(OP)),
        }
    }

    /// Publishes in a topic the client has joined (api.md §4.4, R102, R103): delivered
    /// to the members that follow this client in the topic.
    pub async fn publish_topic_message(
        &self,
        topic: &str,
        message: impl Into<Payload>,
        options: PublishTopicOptions,
    ) -> Result<PublishTopicMessageResponse, RtmError> {
        const OP: &str = "publishTopicMessage";
        topic_name(topic, OP)?;
        self.joined(OP)?;
        let (message_type, payload) = match message.into() {
            Payload::Text(s) => (pb::MessageType::String, bytes::Bytes::from(s)),
            Payload::Binary(b) => (pb::MessageType::Binary, b),
        };
        let req = pb::PublishTopicMessageRequest {
            channel_name: self.name.clone(),
            topic_name: topic.to_string(),
            message_type: message_type as i32,
            payload,
            custom_type: options.custom_type.unwrap_or_default(),
            send_ts: options.send_ts,
        };
        match self
            .client
            .request(OP, client_message::Body::PublishTopicMessage(req))
            .await?
        {
            server_message::Body::PublishTopicMessage(r) => Ok(PublishTopicMessageResponse {
                timestamp: r.timestamp,
                channel_name: r.channel_name,
                topic_name: r.topic_name,
                position: conn::position(r.position),
            }),
            _ => Err(unexpected(OP)),
        }
    }

    /// Follows publishers of `topic` (api.md §4.6, R105–R111): the listed users, or with
    /// `None` (or an empty list) every current publisher. Incremental (R107).
    pub async fn subscribe_topic(
        &self,
        topic: &str,
        users: Option<Vec<String>>,
    ) -> Result<SubscribeTopicResponse, RtmError> {
        const OP: &str = "subscribeTopic";
        topic_name(topic, OP)?;
        let epoch = self.joined(OP)?;
        let req = pb::SubscribeTopicRequest {
            channel_name: self.name.clone(),
            topic_name: topic.to_string(),
            users: users.unwrap_or_default(),
        };
        match self
            .client
            .request(OP, client_message::Body::SubscribeTopic(req))
            .await?
        {
            server_message::Body::SubscribeTopic(r) => {
                let mut ch = self.lock();
                if ch.epoch == epoch && !r.succeed_users.is_empty() {
                    ch.followed
                        .entry(topic.to_string())
                        .or_default()
                        .extend(r.succeed_users.iter().cloned());
                }
                drop(ch);
                let failed_details = failures(r.failed);
                Ok(SubscribeTopicResponse {
                    timestamp: r.timestamp,
                    topic_name: r.topic_name,
                    succeed_users: r.succeed_users,
                    failed_users: failed_details.iter().map(|f| f.user.clone()).collect(),
                    failed_details,
                })
            }
            _ => Err(unexpected(OP)),
        }
    }

    /// Stops following the listed publishers of `topic`, or with `None` (or an empty
    /// list) the whole topic (api.md §4.7, R112, R113).
    pub async fn unsubscribe_topic(
        &self,
        topic: &str,
        users: Option<Vec<String>>,
    ) -> Result<UnsubscribeTopicResponse, RtmError> {
        const OP: &str = "unsubscribeTopic";
        topic_name(topic, OP)?;
        let epoch = self.joined(OP)?;
        let users = users.unwrap_or_default();
        let req = pb::UnsubscribeTopicRequest {
            channel_name: self.name.clone(),
            topic_name: topic.to_string(),
            users: users.clone(),
        };
        let result = self
            .client
            .request(OP, client_message::Body::UnsubscribeTopic(req))
            .await;
        let nothing =
            matches!(&result, Err(e) if e.code == ErrorCode::ChannelTopicNotSubscribed.as_i32());
        if result.is_ok() || nothing {
            let mut ch = self.lock();
            if ch.epoch == epoch {
                if users.is_empty() || nothing {
                    ch.followed.remove(topic);
                } else if let Some(set) = ch.followed.get_mut(topic) {
                    for u in &users {
                        set.remove(u);
                    }
                    if set.is_empty() {
                        ch.followed.remove(topic);
                    }
                }
            }
        }
        match result? {
            server_message::Body::UnsubscribeTopic(r) => Ok(UnsubscribeTopicResponse {
                timestamp: r.timestamp,
                topic_name: r.topic_name,
                failed_details: failures(r.failed),
            }),
            _ => Err(unexpected(OP)),
        }
    }

    /// The publishers followed in `topic`, pre-subscribed ones included, from local
    /// state (api.md §4.8, R114), ordered by user id.
    pub fn get_subscribed_user_list(&self, topic: &str) -> Vec<String> {
        self.lock()
            .followed
            .get(topic)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The topics this client publishes in (joined and not left), from local state.
    pub fn joined_topics(&self) -> Vec<String> {
        self.lock().topics.keys().cloned().collect()
    }

    /// Replaces the channel's RTC token (api.md §3.7 with `channelName`); on failure the
    /// old one stays. A later rejoin uses the new one.
    pub async fn renew_token(&self, token: &str) -> Result<(), RtmError> {
        const OP: &str = "renewToken";
        let token = precheck(token, &self.inner().app_id, OP)?;
        let epoch = self.lock().epoch;
        let req = pb::RenewTokenRequest {
            token: token.clone(),
            channel_name: self.name.clone(),
        };
        self.client
            .request(OP, client_message::Body::RenewToken(req))
            .await?;
        let mut ch = self.lock();
        if ch.epoch == epoch {
            ch.token = token;
        }
        Ok(())
    }

    /// Messages of the channel (every topic, followed publishers only, R103): the first
    /// call after a join yields everything from that join on, later calls from now on.
    /// Lossless (read it or drop it); ends on leave, logout, or when the channel is lost.
    pub fn messages(&self) -> EventStream<MessageEvent> {
        let pending = self.lock().messages.take();
        let rx = match pending {
            Some(p) => p.claim(),
            None => self.inner().router.register(Route::StreamMessages {
                channel: self.name.clone(),
                topic: None,
            }),
        };
        stream_of(rx, message_of)
    }

    /// Messages of one topic of the channel, from now on; lossless, ends like
    /// [`Self::messages`].
    pub fn topic_messages(&self, topic: &str) -> EventStream<MessageEvent> {
        let rx = self.inner().router.register(Route::StreamMessages {
            channel: self.name.clone(),
            topic: Some(topic.to_string()),
        });
        stream_of(rx, message_of)
    }

    /// Topic events of the channel (R93): the first call after a join yields everything
    /// from that join on, starting with its SNAPSHOT (R92); later calls from now on.
    /// Lossless; ends like [`Self::messages`].
    pub fn topic_events(&self) -> EventStream<TopicEvent> {
        let pending = self.lock().topic_events.take();
        let rx = match pending {
            Some(p) => p.claim(),
            None => self
                .inner()
                .router
                .register(Route::StreamTopics(self.name.clone())),
        };
        stream_of(rx, topic_of)
    }

    /// Presence events of the channel (R116; none when joined without presence): the
    /// first call after a join yields everything from that join on, starting with its
    /// SNAPSHOT; later calls from now on. Lossless; ends like [`Self::messages`].
    pub fn presence_events(&self) -> EventStream<PresenceEvent> {
        let pending = self.lock().presence_events.take();
        let rx = match pending {
            Some(p) => p.claim(),
            None => self
                .inner()
                .router
                .register(Route::StreamPresence(self.name.clone())),
        };
        stream_of(rx, presence_of)
    }
}

/// Keeps the topic events of a stream.
pub(crate) fn topic_of(e: Event) -> Option<TopicEvent> {
    match e {
        Event::Topic(t) => Some(t),
        _ => None,
    }
}
