//! Topics of a stream channel (api.md §4.3–§4.8, R97–R113): publisher roles (shared by
//! every node through the engine's `Topics`), topic messages, and topic subscriptions
//! (the member's own, in its session and the hub's filter).

use super::shared::{
    ALREADY_SUBSCRIBED_USER, Followed, INVALID_PARAMS, NOT_SUBSCRIBED_USER,
    SUB_USER_EXCEED_LIMITATION, engine_failure, failure, member, not_joined, pick_random,
    publish_topic_event, topics_engine,
};
use crate::node::hub::StreamFilter;
use crate::session::client::Client;
use crate::session::{Session, TopicRole};
use crate::wire::{Failure, check_payload, message_kind, wire_position};
use std::collections::HashSet;
use std::sync::Arc;
use switchboard_engine::{
    ChannelKey, ChannelKind, EngineError, Publication, PublishOptions, RateLimit, StreamPosition,
};
use switchboard_protocol::pb::{self, server_message::Body};
use switchboard_protocol::{ErrorCode, names, now_ms};

/// Validates and applies one `subscribeTopic` to `filter` (R105–R111).
pub(super) async fn follow(
    client: &Client,
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
        let publishers = topics_engine(client)?
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

/// Makes the member a publisher of a topic (R97–R100); `Ok(false)` when it already
/// was one.
pub(super) async fn take_role(
    client: &Client,
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
    // qos is UNORDERED (0) or ORDERED (1), priority HIGHEST (0) … LOW (3) (section
    // 4.3, from the Go SDK); anything else is refused before anything changes.
    if !(0..=1).contains(&req.qos) || req.priority.is_some_and(|p| !(0..=3).contains(&p)) {
        return Err(Failure::new(
            ErrorCode::InvalidParameter,
            format!(
                "qos must be 0 or 1 and priority 0 to 3 (section 4.3); got qos {} and priority {}",
                req.qos,
                req.priority.unwrap_or(pb::TopicPriority::Normal as i32)
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
    let added = topics_engine(client)?
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
            if let Ok(t) = topics_engine(client) {
                let _ = t.leave_topic(key, &topic, &session.user).await;
            }
        }
        return Err(not_joined(&key.name));
    }
    if added {
        let kind = pb::TopicEventType::RemoteJoin;
        publish_topic_event(&client.node, key, kind, &session.user, &topic, &req.meta).await;
    }
    Ok(added)
}

/// `joinTopic` (R97–R100).
pub(crate) async fn join_topic(
    client: &mut Client,
    id: u32,
    req: pb::JoinTopicRequest,
) -> Result<(), Failure> {
    let session = client.session()?;
    names::validate_channel_name(&req.channel_name, session.app.limits.name_rules())?;
    names::validate_topic_name(&req.topic_name)?;
    member(&session, &req.channel_name)?;
    session.check_publisher(&req.channel_name, client.node.config.clock.now_secs())?;
    let key = session.stream_key(&req.channel_name);
    take_role(client, &session, &key, &req).await?;
    client.send(
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
    client: &mut Client,
    id: u32,
    req: pb::LeaveTopicRequest,
) -> Result<(), Failure> {
    let session = client.session()?;
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
    let topics = topics_engine(client)?;
    match topics
        .leave_topic(&key, &req.topic_name, &session.user)
        .await
    {
        Ok(true) => {
            let kind = pb::TopicEventType::RemoteLeave;
            publish_topic_event(&client.node, &key, kind, &session.user, &req.topic_name, "").await;
        }
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "topic role not dropped"),
    }
    client.send(
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
    client: &mut Client,
    id: u32,
    req: pb::PublishTopicMessageRequest,
) -> Result<(), Failure> {
    let session = client.session()?;
    let limits = session.app.limits;
    names::validate_channel_name(&req.channel_name, limits.name_rules())?;
    names::validate_topic_name(&req.topic_name)?;
    let kind = message_kind(req.message_type, &req.payload)?;
    check_payload(limits.max_payload_bytes, &req.payload)?;
    names::validate_custom_type(&req.custom_type)?;
    if req.idempotency_key.len() > limits.max_topic_idempotency_key_bytes {
        return Err(Failure::new(
            ErrorCode::InvalidParameter,
            format!(
                "idempotency key of {} bytes is longer than {} bytes",
                req.idempotency_key.len(),
                limits.max_topic_idempotency_key_bytes
            ),
        ));
    }
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
    // A role taken while the token still granted publishing does not outlast it.
    session.check_publisher(&req.channel_name, client.node.config.clock.now_secs())?;
    let key = session.stream_key(&req.channel_name);
    let rate = limits.topic_publish_rate_per_channel;
    let options = PublishOptions {
        require_receiver: false,
        // The broker's idempotency, as for message-channel publishes: scoped to the
        // publisher, kept for the recovery log's age. Only accepted publishes leave a
        // key, so a channel holds at most rate × age of them, each at most
        // `max_topic_idempotency_key_bytes` plus the user id.
        idempotency_key: (!req.idempotency_key.is_empty())
            .then(|| format!("{}\0{}", session.user, req.idempotency_key).into()),
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
    let outcome = match client
        .node
        .broker
        .publish(&key, publication, &options)
        .await
    {
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
    client.node.metrics.published(ChannelKind::Stream);
    client.send(
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
    client: &mut Client,
    id: u32,
    req: pb::SubscribeTopicRequest,
) -> Result<(), Failure> {
    let session = client.session()?;
    names::validate_channel_name(&req.channel_name, session.app.limits.name_rules())?;
    names::validate_topic_name(&req.topic_name)?;
    let filter = member(&session, &req.channel_name)?;
    let key = session.stream_key(&req.channel_name);
    let f = follow(client, &session, &key, &filter, &req.topic_name, &req.users).await?;
    client.send(
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
    client: &mut Client,
    id: u32,
    req: pb::UnsubscribeTopicRequest,
) -> Result<(), Failure> {
    let session = client.session()?;
    let rules = session.app.limits.name_rules();
    names::validate_channel_name(&req.channel_name, rules)?;
    names::validate_topic_name(&req.topic_name)?;
    let filter = member(&session, &req.channel_name)?;
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
                if !seen.insert(user.as_str()) || names::validate_user_id(user, rules).is_err() {
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
    client.send(
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
