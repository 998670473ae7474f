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
//! events, and presence, storage and lock events as the join options enable them, are
//! registered at join, so nothing is missed before the app asks for them; `join` hands
//! back the topic SNAPSHOT in its reply, as the Go SDK's `Join` does (seed 004).
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

use crate::client::Client;
use crate::decode::position;
use crate::positions::baseline;
use crate::router::{
    EventStream, Route, lock_of, message_of, presence_of, storage_of, stream_of, topic_of,
};
use crate::session::{
    ChannelState, Inner, SharedChannel, join_failure_reason, join_request, join_topic_request,
    lock_channel, new_channel, precheck_token,
};
use crate::types::{
    ChannelType, JoinChannelResponse, JoinOptions, JoinTopicOptions, JoinTopicResponse,
    LeaveChannelResponse, LeaveTopicResponse, LockEvent, MessageEvent, Payload, PresenceEvent,
    PublishTopicMessageResponse, PublishTopicOptions, RenewTokenResponse, RtmError, StorageEvent,
    SubscribeTopicResponse, SubscribedFailedReason, TopicDetail, TopicEvent, TopicEventType,
    UnsubscribeTopicResponse, unexpected, wire_custom_type,
};
use futures_util::StreamExt;
use std::sync::MutexGuard;
use switchboard_protocol::pb::{self, client_message, server_message};
use switchboard_protocol::{ErrorCode, LinkOperation, LinkReason, LinkState, names};

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

/// A stream channel (`RTMStreamChannel`): a cheap handle on the channel's state, shared
/// with every other handle of the same name (R88). Obtained from
/// [`Client::stream_channel`].
///
/// ```no_run
/// # async fn demo(client: switchboard_client::Client, rtc_token: String)
/// #     -> Result<(), switchboard_client::RtmError> {
/// use futures_util::StreamExt;
/// use switchboard_client::{JoinOptions, JoinTopicOptions, PublishTopicOptions};
/// let arena = client.stream_channel("arena")?;
/// arena.join(JoinOptions { token: Some(rtc_token), ..Default::default() }).await?;
/// arena.join_topic("moves", JoinTopicOptions::default()).await?; // publish here
/// arena.publish_topic_message("moves", "e2e4", PublishTopicOptions::default()).await?;
/// arena.subscribe_topic("moves", None).await?; // follow every current publisher
/// let mut messages = arena.messages();
/// while let Some(Ok(m)) = messages.next().await {
///     println!("{} in {}: {:?}", m.publisher, m.topic_name, m.message);
/// }
/// # Ok(()) }
/// ```
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
        lock_channel(&self.shared)
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

    /// Joins the channel (api.md §4.1) and hands back the channel's topics with their
    /// publishers (`JoinChannelResponse::snapshot`, as the Go SDK's `Join` does, seed
    /// 004): the topic SNAPSHOT (R92), also the first item on [`Self::topic_events`];
    /// messages of followed publishers arrive on [`Self::messages`], both from this
    /// call on; with presence, a presence SNAPSHOT follows on
    /// [`Self::presence_events`], with `with_metadata` / `with_lock` a storage / lock
    /// SNAPSHOT on [`Self::storage_events`] / [`Self::lock_events`]. A join while one
    /// is in progress fails with −10017 (R91); joining a joined channel changes nothing.
    pub async fn join(&self, options: JoinOptions) -> Result<JoinChannelResponse, RtmError> {
        const OP: &str = "join";
        let inner = self.inner();
        let token = precheck_token(options.token.as_deref().unwrap_or(""), &inner.app_id, OP)?;
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
                    let pending = |on: bool, have: bool, route: fn(String) -> Route| {
                        (on && !have)
                            .then(|| inner.router.register_pending(route(self.name.clone())))
                    };
                    if let Some(p) = pending(
                        options.with_presence,
                        ch.presence_events.is_some(),
                        Route::StreamPresence,
                    ) {
                        ch.presence_events = Some(p);
                    }
                    if let Some(p) = pending(
                        options.with_metadata,
                        ch.storage_events.is_some(),
                        Route::StreamStorage,
                    ) {
                        ch.storage_events = Some(p);
                    }
                    if let Some(p) = pending(
                        options.with_lock,
                        ch.lock_events.is_some(),
                        Route::StreamLocks,
                    ) {
                        ch.lock_events = Some(p);
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
        // The topic SNAPSHOT that follows the reply (R92) is handed back in the reply,
        // as the Go SDK's `Join` does (seed 004): a queue of the channel's topic events
        // registered before the request catches it.
        let snapshot = fresh.map(|_| {
            let rx = inner
                .router
                .register(Route::StreamTopics(self.name.clone()));
            stream_of(rx, topic_of)
        });
        let result = self
            .client
            .request(OP, client_message::Body::Join(req))
            .await;
        let (Some(epoch), Some(snapshot)) = (fresh, snapshot) else {
            // Already joined: the server answers without change (R91), no snapshot.
            return match result? {
                server_message::Body::Join(r) => Ok(JoinChannelResponse {
                    timestamp: r.timestamp,
                    channel_name: r.channel_name,
                    snapshot: Vec::new(),
                }),
                _ => Err(unexpected(OP)),
            };
        };
        let r = {
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
                        baseline(
                            &inner.positions,
                            (ChannelType::Stream, self.name.clone()),
                            position(Some(p)),
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
                    r
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
                    return Err(e);
                }
            }
        };
        let topics = self
            .first_snapshot(snapshot, inner.config.request_timeout)
            .await;
        if self.lock().epoch != epoch {
            return Err(RtmError::new(
                ErrorCode::ChannelJoinCanceled,
                OP,
                "cancelled by leave or logout",
            ));
        }
        Ok(JoinChannelResponse {
            timestamp: r.timestamp,
            channel_name: r.channel_name,
            snapshot: topics,
        })
    }

    /// The topics of the first topic SNAPSHOT on `events`, waiting at most `within`;
    /// empty if none came (the connection was lost meanwhile, or the channel reset).
    async fn first_snapshot(
        &self,
        mut events: EventStream<TopicEvent>,
        within: std::time::Duration,
    ) -> Vec<TopicDetail> {
        let wait = async {
            while let Some(item) = events.next().await {
                if let Ok(e) = item
                    && e.event_type == TopicEventType::Snapshot
                {
                    return e.topic_infos;
                }
            }
            Vec::new()
        };
        match tokio::time::timeout(within, wait).await {
            Ok(topics) => topics,
            Err(_) => {
                tracing::warn!(channel = %self.name, "no topic SNAPSHOT after the join reply");
                Vec::new()
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
    ///
    /// Every publish carries a fresh idempotency key. While the link is reconnecting the
    /// publish is kept and sent once it is back (R59), within the request timeout; if
    /// the connection is lost after it went out it is sent again with the same key, so
    /// it is delivered exactly once.
    pub async fn publish_topic_message(
        &self,
        topic: &str,
        message: impl Into<Payload>,
        options: PublishTopicOptions,
    ) -> Result<PublishTopicMessageResponse, RtmError> {
        const OP: &str = "publishTopicMessage";
        topic_name(topic, OP)?;
        self.joined(OP)?;
        let custom_type = wire_custom_type(options.custom_type, OP)?;
        let (message_type, payload) = self.inner().seal(OP, message.into())?;
        let req = pb::PublishTopicMessageRequest {
            channel_name: self.name.clone(),
            topic_name: topic.to_string(),
            message_type: message_type as i32,
            payload,
            custom_type,
            send_ts: options.send_ts,
            idempotency_key: idempotency_key(),
        };
        let timeout = self.inner().config.request_timeout;
        match self
            .client
            .request_kept(
                OP,
                client_message::Body::PublishTopicMessage(req),
                timeout,
                true,
            )
            .await?
        {
            server_message::Body::PublishTopicMessage(r) => Ok(PublishTopicMessageResponse {
                timestamp: r.timestamp,
                channel_name: r.channel_name,
                topic_name: r.topic_name,
                position: position(r.position),
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
    pub async fn renew_token(&self, token: &str) -> Result<RenewTokenResponse, RtmError> {
        const OP: &str = "renewToken";
        let token = precheck_token(token, &self.inner().app_id, OP)?;
        let epoch = self.lock().epoch;
        let req = pb::RenewTokenRequest {
            token: token.clone(),
            channel_name: self.name.clone(),
        };
        let reply = self
            .client
            .request(OP, client_message::Body::RenewToken(req))
            .await?;
        let mut ch = self.lock();
        if ch.epoch == epoch {
            ch.token = token;
        }
        Ok(RenewTokenResponse {
            timestamp: match reply {
                server_message::Body::RenewToken(r) => r.timestamp,
                _ => switchboard_protocol::now_ms(),
            },
        })
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

    /// Storage events of the channel's metadata (R115, R147; none when joined without
    /// `with_metadata`): the first call after a join yields everything from that join
    /// on, starting with its SNAPSHOT; later calls from now on. Lossless; ends like
    /// [`Self::messages`].
    pub fn storage_events(&self) -> EventStream<StorageEvent> {
        let pending = self.lock().storage_events.take();
        let rx = match pending {
            Some(p) => p.claim(),
            None => self
                .inner()
                .router
                .register(Route::StreamStorage(self.name.clone())),
        };
        stream_of(rx, storage_of)
    }

    /// Lock events of the channel (R115, R157; none when joined without `with_lock`,
    /// but for EXPIRED of this user's own locks, R153): the first call after a join
    /// yields everything from that join on, starting with its SNAPSHOT; later calls
    /// from now on. Lossless; ends like [`Self::messages`].
    pub fn lock_events(&self) -> EventStream<LockEvent> {
        let pending = self.lock().lock_events.take();
        let rx = match pending {
            Some(p) => p.claim(),
            None => self
                .inner()
                .router
                .register(Route::StreamLocks(self.name.clone())),
        };
        stream_of(rx, lock_of)
    }
}

impl Client {
    /// The stream channel `name` (api.md §3.6): local and synchronous, no network I/O;
    /// every call with the same name gives a handle on the same state (R88). Fails with
    /// −10008 for an invalid name.
    pub fn stream_channel(&self, name: &str) -> Result<StreamChannel, RtmError> {
        names::validate_channel_name(name, names::NameRules::default())
            .map_err(|e| RtmError::new(e.code, "createStreamChannel", e.reason))?;
        let shared = self
            .inner
            .lock()
            .streams
            .entry(name.to_string())
            .or_insert_with(new_channel)
            .clone();
        Ok(StreamChannel::new(self.clone(), name.to_string(), shared))
    }
}

/// A fresh idempotency key for one topic publish: 24 random hex digits (the server
/// accepts up to 64 bytes).
fn idempotency_key() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 12];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
