//! Stream channels and topics (api.md §4, R88–R115): join with an RTC token, leave,
//! topic publisher roles (shared by every node through the engine's [`Topics`]),
//! topic subscriptions (the member's own, in its session and the hub's filter), topic
//! messages and topic events, and the channel token's lifetime (token.md T52–T55).
//!
//! A stream channel is one broker stream: topic messages and topic events share its
//! positions, so the hub and a resume's replay deliver both in order; each member's
//! [`Filter::Stream`] picks what it receives. Validation happens before any state
//! changes, so a refused request leaves everything as it was (R171).

use crate::client::{Client, Failure};
use crate::hub::{Filter, StreamFilter, Subscriber};
use crate::login::{RECOVERY_PAGE, replay, wire_position};
use crate::node::Node;
use crate::presence::Departure;
use crate::session::{JoinOptions, Session, StreamMembership, TopicRole};
use prost::Message as _;
use std::collections::HashSet;
use std::sync::Arc;
use switchboard_engine::{
    ChannelKey, EngineError, EventKind, Publication, PublishOptions, RateLimit, StreamPosition,
    TopicInfo,
};
use switchboard_protocol::pb::{self, server_message::Body};
use switchboard_protocol::{ErrorCode, names, now_ms};

/// SubscribeTopicErrorCode values (api.md §10.14).
const INVALID_PARAMS: i32 = 4;
const ALREADY_SUBSCRIBED_USER: i32 = 20001;
const SUB_USER_EXCEED_LIMITATION: i32 = 20003;
const NOT_SUBSCRIBED_USER: i32 = 20004;

fn engine_failure(code: ErrorCode, e: &EngineError) -> Failure {
    Failure::new(code, format!("engine: {e}"))
}

fn not_joined(channel: &str) -> Failure {
    Failure::new(
        ErrorCode::ChannelNotJoined,
        format!("stream channel {channel} is not joined (R96)"),
    )
}

/// Verifies an RTC token for joining `channel` as `user` (T47–T50); `None` expiry for
/// an app without a certificate.
pub(crate) fn verify_join_token(
    session: &Session,
    channel: &str,
    token: &str,
) -> Result<Option<u64>, Failure> {
    let Some(cert) = &session.app.certificate else {
        return Ok(None);
    };
    let opts = switchboard_token::VerifyOptions::default();
    let now = now_ms() / 1000;
    match switchboard_token::verify_stream_join(
        token,
        &session.app.id,
        cert,
        &session.user,
        channel,
        now,
        &opts,
    ) {
        Ok(c) => Ok(Some(c.expires_at)),
        Err(e) => {
            let code = ErrorCode::from_i32(e.sdk_error_code()).unwrap_or(ErrorCode::InvalidToken);
            Err(Failure::new(
                code,
                format!(
                    "RTC token for stream channel {channel}: {}: {}",
                    e.identifier(),
                    e.description()
                ),
            ))
        }
    }
}

fn wire_topics(infos: &[TopicInfo]) -> Vec<pb::TopicInfo> {
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
async fn publish_topic_event(
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
    crate::hub::publish_event(&*node.broker, key, EventKind::Topic, user, payload).await;
}

/// Takes the member out of stream channel `name` on the shared side: stops local
/// delivery, drops its topic roles and tells the others (R94). The session's own
/// record of the membership is already gone.
pub(crate) async fn depart(node: &Arc<Node>, session: &Session, name: &str, how: Departure) {
    let key = session.stream_key(name);
    node.hub.unsubscribe(&*node.broker, &key, session.id).await;
    crate::presence::exit(node, session, &key, how).await;
    crate::lock::cancel_waits(node, session, Some(&key), "left the channel").await;
    let Some(topics) = &node.topics else { return };
    match topics.leave_channel(&key, &session.user).await {
        Ok(left) => {
            for topic in left {
                let kind = pb::TopicEventType::RemoteLeave;
                publish_topic_event(node, &key, kind, &session.user, &topic, "").await;
            }
        }
        Err(e) => tracing::warn!(channel = name, error = %e, "topic roles not dropped"),
    }
}

/// Picks up to `n` of `items` at random (R108), keeping the rest out.
fn pick_random<T>(mut items: Vec<T>, n: usize) -> Vec<T> {
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

fn failure(user: &str, code: i32, reason: impl Into<String>) -> pb::TopicFailure {
    pb::TopicFailure {
        user: user.to_string(),
        error_code: code,
        reason: reason.into(),
        topic_name: String::new(),
    }
}

/// Outcome of a topic subscription.
struct Followed {
    succeed: Vec<String>,
    failed: Vec<pb::TopicFailure>,
}

impl Client {
    fn topics_engine(&self) -> Result<Arc<dyn switchboard_engine::Topics>, Failure> {
        self.node.topics.clone().ok_or_else(|| {
            Failure::new(
                ErrorCode::ChannelNotAvailable,
                "stream channels are not available on this server",
            )
        })
    }

    /// The member's filter in a joined channel, or −11001 (R96).
    fn member(&self, session: &Session, channel: &str) -> Result<Arc<StreamFilter>, Failure> {
        session
            .lock()
            .streams
            .get(channel)
            .map(|m| m.filter.clone())
            .ok_or_else(|| not_joined(channel))
    }

    /// Validates and applies one `subscribeTopic` to `filter` (R105–R111).
    async fn follow(
        &self,
        session: &Session,
        key: &ChannelKey,
        filter: &StreamFilter,
        topic: &str,
        users: &[String],
    ) -> Result<Followed, Failure> {
        let limits = &session.app.limits;
        let mut failed = Vec::new();
        let mut candidates: Vec<Arc<str>> = Vec::new();
        if users.is_empty() {
            let publishers = self
                .topics_engine()?
                .publishers(key, topic)
                .await
                .map_err(|e| engine_failure(ErrorCode::ChannelSubscribeFailed, &e))?;
            if publishers.is_empty() {
                return Err(Failure::new(
                    ErrorCode::ChannelTopicNotExist,
                    format!("topic {topic} has no publishers (R111)"),
                ));
            }
            let followed = filter.follows().get(topic).cloned().unwrap_or_default();
            candidates = publishers
                .into_iter()
                .map(|p| p.user)
                .filter(|u| *u != session.user && !followed.contains(u))
                .collect();
            let free = limits
                .max_topic_publishers
                .saturating_sub(followed.len())
                .max(1);
            candidates = pick_random(candidates, free);
        } else {
            let mut seen = HashSet::new();
            for user in users {
                if !seen.insert(user.as_str()) {
                    continue; // duplicates count once (R110)
                }
                match names::validate_user_id(user, limits.name_rules()) {
                    Ok(()) => candidates.push(user.as_str().into()),
                    Err(e) => failed.push(failure(
                        user,
                        INVALID_PARAMS,
                        format!("invalid user id: {}", e.reason),
                    )),
                }
            }
        }
        let mut follows = filter.follows_mut();
        let current = follows.get(topic).map_or(0, HashSet::len);
        if !follows.contains_key(topic) && follows.len() >= limits.max_subscribed_topics {
            return Err(Failure::new(
                ErrorCode::ChannelExceedTopicLimitation,
                format!(
                    "already subscribed to {} topics in this channel, the limit (R105)",
                    limits.max_subscribed_topics
                ),
            ));
        }
        if current >= limits.max_topic_publishers {
            return Err(Failure::new(
                ErrorCode::ChannelExceedTopicUserLimitation,
                format!(
                    "already following {} publishers in topic {topic}, the limit (R106)",
                    limits.max_topic_publishers
                ),
            ));
        }
        let mut free = limits.max_topic_publishers - current;
        let mut succeed = Vec::new();
        let set = follows.entry(topic.into()).or_default();
        for user in candidates {
            if set.contains(&user) {
                failed.push(failure(
                    &user,
                    ALREADY_SUBSCRIBED_USER,
                    "already followed (R110)",
                ));
            } else if free == 0 {
                failed.push(failure(
                    &user,
                    SUB_USER_EXCEED_LIMITATION,
                    format!(
                        "topic {topic} would exceed {} followed publishers (R106)",
                        limits.max_topic_publishers
                    ),
                ));
            } else {
                free -= 1;
                succeed.push(user.to_string());
                set.insert(user);
            }
        }
        if set.is_empty() {
            follows.remove(topic);
        }
        Ok(Followed { succeed, failed })
    }

    /// `join` of a stream channel (R88–R96), also the SDK's rejoin into a new session.
    pub(crate) async fn join(&mut self, id: u32, req: pb::JoinRequest) -> Result<(), Failure> {
        let session = self.session()?;
        let limits = session.app.limits;
        names::validate_channel_name(&req.channel_name, limits.name_rules())?;
        let topics = self.topics_engine()?;
        let name: Arc<str> = req.channel_name.as_str().into();
        let key = session.stream_key(&name);
        let joined = session
            .lock()
            .streams
            .get(&name)
            .map(|m| m.token_expires_at);
        if let Some(expires) = joined {
            // Already joined: answered again without change (R91).
            let position = self.node.broker.position(&key).await.unwrap_or_default();
            self.send(
                id,
                Body::Join(pb::JoinReply {
                    timestamp: now_ms(),
                    channel_name: req.channel_name,
                    position: wire_position(position),
                    gap: false,
                    token_expires_at: expires.unwrap_or(0),
                    restore_failures: Vec::new(),
                }),
            );
            return Ok(());
        }
        {
            let st = session.lock();
            if st.streams.len() >= limits.max_stream_channels {
                return Err(Failure::new(
                    ErrorCode::ChannelInstanceExceedLimitation,
                    format!(
                        "already joined {} stream channels, the limit per client (R89)",
                        limits.max_stream_channels
                    ),
                ));
            }
        }
        let token_expires_at = verify_join_token(&session, &name, &req.token)?;
        crate::presence::check_entering_state(&session, &key, &req.state)?;
        // Validate the restore lists up front as far as they can be.
        for t in &req.topics {
            names::validate_topic_name(&t.topic_name)?;
        }
        for s in &req.subscriptions {
            names::validate_topic_name(&s.topic_name)?;
        }
        let options = JoinOptions {
            with_presence: req.with_presence.unwrap_or(true),
            be_quiet: req.be_quiet.unwrap_or(false),
            with_metadata: req.with_metadata.unwrap_or(false),
            with_lock: req.with_lock.unwrap_or(false),
        };
        let filter = Arc::new(StreamFilter::new(session.user.clone(), options));
        let since = req.since.map(|p| StreamPosition {
            epoch: p.epoch,
            offset: p.offset,
        });
        // Held until the reply, the replay and the SNAPSHOT are out, so that the
        // channel's pushes follow them in order.
        session.outlet.hold(&self.out, key.clone());
        let mut restore_failures = Vec::new();
        // Subscriptions first (local), so the replay below already filters by them.
        for s in &req.subscriptions {
            match self
                .follow(&session, &key, &filter, &s.topic_name, &s.users)
                .await
            {
                Ok(f) => restore_failures.extend(f.failed.into_iter().map(|mut f| {
                    f.topic_name = s.topic_name.clone();
                    f
                })),
                Err(f) => restore_failures.push(pb::TopicFailure {
                    user: String::new(),
                    error_code: f.code.as_i32(),
                    reason: f.reason,
                    topic_name: s.topic_name.clone(),
                }),
            }
        }
        let sub = Subscriber {
            session: session.id,
            outlet: session.outlet.clone(),
            filter: Filter::Stream(filter.clone()),
        };
        let node = self.node.clone();
        if let Err(e) = node.hub.subscribe(&*node.broker, &key, sub).await {
            session.outlet.release(&self.out, &key, None);
            return Err(engine_failure(ErrorCode::ChannelJoinFailed, &e));
        }
        let ended = {
            let mut st = session.lock();
            if !st.ended {
                st.streams.insert(
                    name.clone(),
                    StreamMembership {
                        options,
                        roles: Default::default(),
                        filter: filter.clone(),
                        token_expires_at,
                        will_expire_sent: false,
                    },
                );
            }
            st.ended
        };
        if ended {
            node.hub.unsubscribe(&*node.broker, &key, session.id).await;
            return Err(Failure::new(ErrorCode::NotLogin, "the session ended"));
        }
        let state = crate::presence::entering_state(&session, &key, &req.state);
        // With `since` the recovery read comes first, so that the member's own events
        // (presence join, topic roles taken again) cannot push what it must replay out
        // of a short log; without, they come first, so that the reply's position
        // already counts them. Either way the position is read before the snapshots:
        // whatever the stream holds up to it is reflected in them, whatever comes later
        // is delivered after them.
        let recovered = match since {
            Some(since) => Some(
                match node.broker.recover(&key, since, RECOVERY_PAGE).await {
                    Ok(r) => (r.position, !r.complete, Some(r)),
                    Err(_) => (since, true, None),
                },
            ),
            None => None,
        };
        crate::presence::enter(&node, &session, &key, options.be_quiet, state).await;
        // Topic roles to take again (a rejoin).
        for t in &req.topics {
            if let Err(f) = self.take_role(&session, &key, t).await {
                restore_failures.push(pb::TopicFailure {
                    user: String::new(),
                    error_code: f.code.as_i32(),
                    reason: f.reason,
                    topic_name: t.topic_name.clone(),
                });
            }
        }
        let (position, gap, recovery) = match recovered {
            Some(read) => read,
            None => (
                node.broker.position(&key).await.unwrap_or_default(),
                false,
                None,
            ),
        };
        let snapshot = topics.topics(&key).await.unwrap_or_default();
        let presence_snapshot = match options.with_presence {
            true => crate::presence::snapshot(&node, &key, position).await,
            false => None,
        };
        self.send(
            id,
            Body::Join(pb::JoinReply {
                timestamp: now_ms(),
                channel_name: req.channel_name.clone(),
                position: wire_position(position),
                gap,
                token_expires_at: token_expires_at.unwrap_or(0),
                restore_failures,
            }),
        );
        let mut last = None;
        if let Some(r) = &recovery {
            last = replay(self, &key, r, &Filter::Stream(filter.clone())).await;
        }
        self.push(Body::Topic(pb::TopicEvent {
            event_type: pb::TopicEventType::Snapshot as i32,
            channel_name: req.channel_name,
            publisher: String::new(),
            topics: wire_topics(&snapshot),
            timestamp: now_ms(),
            position: wire_position(position),
        }));
        if let Some(snapshot) = presence_snapshot {
            self.push_wait(snapshot).await;
        }
        if options.with_metadata {
            if let Some(snapshot) = crate::storage::channel_snapshot(&node, &key, position).await {
                self.push_wait(snapshot).await;
            }
        }
        if options.with_lock {
            if let Some(snapshot) = crate::lock::snapshot(&node, &key, position).await {
                self.push_wait(snapshot).await;
            }
        }
        session
            .outlet
            .release(&self.out, &key, last.or(Some(position)));
        Ok(())
    }

    /// Makes the member a publisher of a topic (R97–R100); `Ok(false)` when it already
    /// was one.
    async fn take_role(
        &self,
        session: &Session,
        key: &ChannelKey,
        req: &pb::JoinTopicRequest,
    ) -> Result<bool, Failure> {
        let limits = &session.app.limits;
        names::validate_topic_name(&req.topic_name)?;
        if req.meta.len() > limits.max_topic_meta_bytes {
            return Err(Failure::new(
                ErrorCode::ChannelInvalidTopicMeta,
                format!(
                    "topic meta is {} bytes, over the limit of {}",
                    req.meta.len(),
                    limits.max_topic_meta_bytes
                ),
            ));
        }
        let topic: Arc<str> = req.topic_name.as_str().into();
        {
            let st = session.lock();
            let m = st
                .streams
                .get(&key.name)
                .ok_or_else(|| not_joined(&key.name))?;
            if m.roles.contains_key(&topic) {
                return Ok(false); // R99
            }
        }
        let added = self
            .topics_engine()?
            .join_topic(
                key,
                &topic,
                &session.user,
                &req.meta,
                limits.max_joined_topics,
            )
            .await
            .map_err(|e| match e {
                EngineError::LimitReached(n) => Failure::new(
                    ErrorCode::ChannelExceedTopicLimitation,
                    format!("already publishing in {n} topics of this channel, the limit (R98)"),
                ),
                other => engine_failure(ErrorCode::ChannelJoinTopicFailed, &other),
            })?;
        let role = TopicRole {
            meta: req.meta.as_str().into(),
            qos: req.qos,
            priority: req.priority.unwrap_or(pb::TopicPriority::Normal as i32),
            sync_with_media: req.sync_with_media,
        };
        let recorded = {
            let mut st = session.lock();
            match st.streams.get_mut(&key.name) {
                Some(m) => {
                    m.roles.insert(topic.clone(), role);
                    true
                }
                None => false,
            }
        };
        if !recorded {
            // Left (or ended) meanwhile: take the role back.
            if added {
                if let Ok(t) = self.topics_engine() {
                    let _ = t.leave_topic(key, &topic, &session.user).await;
                }
            }
            return Err(not_joined(&key.name));
        }
        if added {
            let kind = pb::TopicEventType::RemoteJoin;
            publish_topic_event(&self.node, key, kind, &session.user, &topic, &req.meta).await;
        }
        Ok(added)
    }

    /// `leave` (R94, R95).
    pub(crate) async fn leave(&mut self, id: u32, req: pb::LeaveRequest) -> Result<(), Failure> {
        let session = self.session()?;
        names::validate_channel_name(&req.channel_name, session.app.limits.name_rules())?;
        if session
            .lock()
            .streams
            .remove(req.channel_name.as_str())
            .is_none()
        {
            return Err(not_joined(&req.channel_name));
        }
        depart(&self.node, &session, &req.channel_name, Departure::Leave).await;
        self.send(
            id,
            Body::Leave(pb::LeaveReply {
                timestamp: now_ms(),
                channel_name: req.channel_name,
            }),
        );
        Ok(())
    }

    /// `joinTopic` (R97–R100).
    pub(crate) async fn join_topic(
        &mut self,
        id: u32,
        req: pb::JoinTopicRequest,
    ) -> Result<(), Failure> {
        let session = self.session()?;
        names::validate_channel_name(&req.channel_name, session.app.limits.name_rules())?;
        names::validate_topic_name(&req.topic_name)?;
        self.member(&session, &req.channel_name)?;
        let key = session.stream_key(&req.channel_name);
        self.take_role(&session, &key, &req).await?;
        self.send(
            id,
            Body::JoinTopic(pb::JoinTopicReply {
                timestamp: now_ms(),
                channel_name: req.channel_name,
                topic_name: req.topic_name,
            }),
        );
        Ok(())
    }

    /// `leaveTopic` (R100, R101).
    pub(crate) async fn leave_topic(
        &mut self,
        id: u32,
        req: pb::LeaveTopicRequest,
    ) -> Result<(), Failure> {
        let session = self.session()?;
        names::validate_channel_name(&req.channel_name, session.app.limits.name_rules())?;
        names::validate_topic_name(&req.topic_name)?;
        {
            let mut st = session.lock();
            let m = st
                .streams
                .get_mut(req.channel_name.as_str())
                .ok_or_else(|| not_joined(&req.channel_name))?;
            if m.roles.remove(req.topic_name.as_str()).is_none() {
                return Err(Failure::new(
                    ErrorCode::ChannelTopicNotJoined,
                    format!("topic {} is not joined", req.topic_name),
                ));
            }
        }
        let key = session.stream_key(&req.channel_name);
        let topics = self.topics_engine()?;
        match topics
            .leave_topic(&key, &req.topic_name, &session.user)
            .await
        {
            Ok(true) => {
                let kind = pb::TopicEventType::RemoteLeave;
                publish_topic_event(&self.node, &key, kind, &session.user, &req.topic_name, "")
                    .await;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "topic role not dropped"),
        }
        self.send(
            id,
            Body::LeaveTopic(pb::LeaveTopicReply {
                timestamp: now_ms(),
                channel_name: req.channel_name,
                topic_name: req.topic_name,
            }),
        );
        Ok(())
    }

    /// `publishTopicMessage` (R102, R103, R63–R67).
    pub(crate) async fn publish_topic_message(
        &mut self,
        id: u32,
        req: pb::PublishTopicMessageRequest,
    ) -> Result<(), Failure> {
        let session = self.session()?;
        let limits = session.app.limits;
        names::validate_channel_name(&req.channel_name, limits.name_rules())?;
        names::validate_topic_name(&req.topic_name)?;
        let kind = crate::messaging::message_kind(req.message_type, &req.payload)?;
        crate::messaging::check_payload(&limits, &req.payload)?;
        names::validate_custom_type(&req.custom_type)?;
        {
            let st = session.lock();
            let m = st
                .streams
                .get(req.channel_name.as_str())
                .ok_or_else(|| not_joined(&req.channel_name))?;
            if !m.roles.contains_key(req.topic_name.as_str()) {
                return Err(Failure::new(
                    ErrorCode::ChannelTopicNotJoined,
                    format!(
                        "not a publisher of topic {}: joinTopic first (R102)",
                        req.topic_name
                    ),
                ));
            }
        }
        let key = session.stream_key(&req.channel_name);
        let rate = limits.topic_publish_rate_per_channel;
        let options = PublishOptions {
            require_receiver: false,
            idempotency_key: None,
            rate_limit: (rate > 0).then_some(RateLimit {
                per_second: rate,
                burst: rate,
            }),
        };
        let publication = Publication {
            publisher: session.user.clone(),
            kind,
            custom_type: req.custom_type.as_str().into(),
            // Copied out of the frame, as in `publish`.
            payload: bytes::Bytes::copy_from_slice(&req.payload),
            topic: req.topic_name.as_str().into(),
            send_ts: req.send_ts,
            timestamp_ms: now_ms(),
            position: StreamPosition::default(),
        };
        let outcome = match self.node.broker.publish(&key, publication, &options).await {
            Ok(o) => o,
            Err(EngineError::RateLimited(n)) => {
                return Err(Failure::new(
                    ErrorCode::ChannelPublishMessageTooFrequent,
                    format!(
                        "stream channel {} is over its topic message rate of {n} per second",
                        req.channel_name
                    ),
                ));
            }
            Err(e) => return Err(engine_failure(ErrorCode::ChannelPublishMessageFailed, &e)),
        };
        self.send(
            id,
            Body::PublishTopicMessage(pb::PublishTopicMessageReply {
                timestamp: now_ms(),
                channel_name: req.channel_name,
                topic_name: req.topic_name,
                position: wire_position(outcome.position),
            }),
        );
        Ok(())
    }

    /// `subscribeTopic` (R105–R111).
    pub(crate) async fn subscribe_topic(
        &mut self,
        id: u32,
        req: pb::SubscribeTopicRequest,
    ) -> Result<(), Failure> {
        let session = self.session()?;
        names::validate_channel_name(&req.channel_name, session.app.limits.name_rules())?;
        names::validate_topic_name(&req.topic_name)?;
        let filter = self.member(&session, &req.channel_name)?;
        let key = session.stream_key(&req.channel_name);
        let f = self
            .follow(&session, &key, &filter, &req.topic_name, &req.users)
            .await?;
        self.send(
            id,
            Body::SubscribeTopic(pb::SubscribeTopicReply {
                timestamp: now_ms(),
                channel_name: req.channel_name,
                topic_name: req.topic_name,
                succeed_users: f.succeed,
                failed: f.failed,
            }),
        );
        Ok(())
    }

    /// `unsubscribeTopic` (R112, R113).
    pub(crate) async fn unsubscribe_topic(
        &mut self,
        id: u32,
        req: pb::UnsubscribeTopicRequest,
    ) -> Result<(), Failure> {
        let session = self.session()?;
        let rules = session.app.limits.name_rules();
        names::validate_channel_name(&req.channel_name, rules)?;
        names::validate_topic_name(&req.topic_name)?;
        let filter = self.member(&session, &req.channel_name)?;
        let mut failed = Vec::new();
        {
            let mut follows = filter.follows_mut();
            let Some(set) = follows.get_mut(req.topic_name.as_str()) else {
                return Err(Failure::new(
                    ErrorCode::ChannelTopicNotSubscribed,
                    format!("topic {} is not subscribed (R113)", req.topic_name),
                ));
            };
            if req.users.is_empty() {
                set.clear();
            } else {
                let mut seen = HashSet::new();
                for user in &req.users {
                    if !seen.insert(user.as_str()) || names::validate_user_id(user, rules).is_err()
                    {
                        continue; // invalid ids are ignored (R113)
                    }
                    if !set.remove(user.as_str()) {
                        failed.push(failure(user, NOT_SUBSCRIBED_USER, "not followed"));
                    }
                }
            }
            if set.is_empty() {
                follows.remove(req.topic_name.as_str());
            }
        }
        self.send(
            id,
            Body::UnsubscribeTopic(pb::UnsubscribeTopicReply {
                timestamp: now_ms(),
                channel_name: req.channel_name,
                topic_name: req.topic_name,
                failed,
            }),
        );
        Ok(())
    }

    /// `renewToken(token, {channelName})` (T52): verified as a join of that channel.
    pub(crate) fn renew_stream_token(
        &mut self,
        id: u32,
        req: pb::RenewTokenRequest,
    ) -> Result<(), Failure> {
        let session = self.session()?;
        if !session
            .lock()
            .streams
            .contains_key(req.channel_name.as_str())
        {
            return Err(not_joined(&req.channel_name));
        }
        let expires = verify_join_token(&session, &req.channel_name, &req.token)?;
        {
            let mut st = session.lock();
            let m = st
                .streams
                .get_mut(req.channel_name.as_str())
                .ok_or_else(|| not_joined(&req.channel_name))?;
            m.token_expires_at = expires;
            m.will_expire_sent = false;
        }
        self.send(
            id,
            Body::RenewToken(pb::RenewTokenReply {
                timestamp: now_ms(),
                token_expires_at: expires.unwrap_or(0),
            }),
        );
        Ok(())
    }

    /// The channel's RTC token lapsed unrenewed (T55): the member leaves it, and is told.
    pub(crate) async fn expire_stream(&mut self, session: &Arc<Session>, name: &str) {
        if session.lock().streams.remove(name).is_none() {
            return;
        }
        depart(&self.node, session, name, Departure::Leave).await;
        self.push(Body::ChannelLeft(pb::ChannelLeft {
            channel_type: pb::ChannelType::Stream as i32,
            channel_name: name.to_string(),
            code: ErrorCode::TokenExpired.as_i32(),
            reason: format!(
                "the RTC token of stream channel {name} expired and was not renewed (T55)"
            ),
        }));
    }
}
