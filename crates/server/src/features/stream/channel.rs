//! Stream channel membership (api.md §4.1, §4.2, R88–R96): join with an RTC token
//! (also the SDK's rejoin into a new session, with topics and subscriptions to
//! restore), leave, and the channel token's renewal (token.md T52).
//!
//! A stream channel is one broker stream: topic messages and topic events share its
//! positions, so the hub and a resume's replay deliver both in order; each member's
//! `Filter::Stream` picks what it receives. Validation happens before any state
//! changes, so a refused request leaves everything as it was (R171).

use super::shared::{engine_failure, not_joined, topics_engine, wire_topics};
use super::topics::{follow, take_role};
use crate::node::hub::{Filter, JoinOptions, StreamFilter, Subscriber};
use crate::session::client::Client;
use crate::session::hooks::{self, Departure, Wants};
use crate::session::replay::{RECOVERY_PAGE, replay};
use crate::session::{PublishGrant, Session, StreamMembership, lifecycle};
use crate::wire::{Failure, wire_position};
use std::sync::Arc;
use switchboard_engine::StreamPosition;
use switchboard_protocol::pb::{self, server_message::Body};
use switchboard_protocol::{ErrorCode, names, now_ms};

/// Verifies an RTC token for joining `channel` as `user` (T47–T50); `None` expiry for
/// an app without a certificate. Also what the token grants for publisher
/// authentication (T51), when the app turns it on. `now`: the node's token clock,
/// seconds.
pub(crate) fn verify_join_token(
    session: &Session,
    channel: &str,
    token: &str,
    now: u64,
) -> Result<(Option<u64>, PublishGrant), Failure> {
    let Some(cert) = &session.app.certificate else {
        return Ok((None, PublishGrant::NotRequired));
    };
    let opts = session.app.tokens.verify_options();
    let described = |e: &switchboard_token::TokenError| {
        let code = ErrorCode::from_i32(e.sdk_error_code()).unwrap_or(ErrorCode::InvalidToken);
        (code, format!("{}: {}", e.identifier(), e.description()))
    };
    let parsed = switchboard_token::verify_token(token, &session.app.id, cert);
    let joined = parsed.as_ref().map_err(|e| *e).and_then(|t| {
        t.check_rtc_privilege(
            channel,
            &session.user,
            switchboard_token::privilege::JOIN_CHANNEL,
            now,
            &opts,
        )
    });
    let credential = match joined {
        Ok(c) => c,
        Err(e) => {
            let (code, text) = described(&e);
            return Err(Failure::new(
                code,
                format!("RTC token for stream channel {channel}: {text}"),
            ));
        }
    };
    let grant = match &parsed {
        Ok(t) if session.app.tokens.publisher_authentication => match t.check_rtc_privilege(
            channel,
            &session.user,
            switchboard_token::privilege::PUBLISH_DATA_STREAM,
            now,
            &opts,
        ) {
            Ok(c) => PublishGrant::Until(c.expires_at),
            Err(e) => {
                let (code, text) = described(&e);
                PublishGrant::Refused(
                    code.as_i32(),
                    format!(
                        "publisher authentication is on and the RTC token of stream \
                         channel {channel} does not grant publishDataStream (T51): {text}"
                    ),
                )
            }
        },
        _ => PublishGrant::NotRequired,
    };
    Ok((Some(credential.expires_at), grant))
}

/// `join` of a stream channel (R88–R96), also the SDK's rejoin into a new session.
pub(crate) async fn join(
    client: &mut Client,
    id: u32,
    req: pb::JoinRequest,
) -> Result<(), Failure> {
    let session = client.session()?;
    let limits = session.app.limits;
    names::validate_channel_name(&req.channel_name, limits.name_rules())?;
    let topics = topics_engine(client)?;
    let name: Arc<str> = req.channel_name.as_str().into();
    let key = session.stream_key(&name);
    let joined = session
        .lock()
        .streams
        .get(&name)
        .map(|m| m.token_expires_at);
    if let Some(expires) = joined {
        // Already joined: answered again without change (R91).
        let position = client.node.broker.position(&key).await.unwrap_or_default();
        client.send(
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
    let (token_expires_at, publish_grant) = verify_join_token(
        &session,
        &name,
        &req.token,
        client.node.config.clock.now_secs(),
    )?;
    hooks::check_enter(&client.node, &session, &key, &req.state)?;
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
    session.outlet.hold(&client.out, key.clone());
    let mut restore_failures = Vec::new();
    // Subscriptions first (local), so the replay below already filters by them.
    for s in &req.subscriptions {
        match follow(client, &session, &key, &filter, &s.topic_name, &s.users).await {
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
    let node = client.node.clone();
    if let Err(e) = node.hub.subscribe(&*node.broker, &key, sub).await {
        session.outlet.release(&client.out, &key, None);
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
                    publish_grant: publish_grant.clone(),
                },
            );
        }
        st.ended
    };
    if ended {
        node.hub.unsubscribe(&*node.broker, &key, session.id).await;
        return Err(Failure::new(ErrorCode::NotLogin, "the session ended"));
    }
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
    hooks::entered(&node, &session, &key, options.be_quiet, &req.state).await;
    // Topic roles to take again (a rejoin).
    for t in &req.topics {
        if let Err(f) = take_role(client, &session, &key, t).await {
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
    // The presence SNAPSHOT is taken before the reply, the channel state's after the
    // replay; each as of `position`.
    let presence = Wants {
        presence: options.with_presence,
        ..Wants::default()
    };
    let presence_snapshots = hooks::snapshots(&node, &key, position, presence).await;
    client.send(
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
        last = replay(client, &key, r, &Filter::Stream(filter.clone())).await;
    }
    client.push(Body::Topic(pb::TopicEvent {
        event_type: pb::TopicEventType::Snapshot as i32,
        channel_name: req.channel_name,
        publisher: String::new(),
        topics: wire_topics(&snapshot),
        timestamp: now_ms(),
        position: wire_position(position),
    }));
    for snapshot in presence_snapshots {
        client.push_wait(snapshot).await;
    }
    let state = Wants {
        presence: false,
        metadata: options.with_metadata,
        locks: options.with_lock,
    };
    for snapshot in hooks::snapshots(&node, &key, position, state).await {
        client.push_wait(snapshot).await;
    }
    session
        .outlet
        .release(&client.out, &key, last.or(Some(position)));
    Ok(())
}

/// `leave` (R94, R95).
pub(crate) async fn leave(
    client: &mut Client,
    id: u32,
    req: pb::LeaveRequest,
) -> Result<(), Failure> {
    let session = client.session()?;
    names::validate_channel_name(&req.channel_name, session.app.limits.name_rules())?;
    if session
        .lock()
        .streams
        .remove(req.channel_name.as_str())
        .is_none()
    {
        return Err(not_joined(&req.channel_name));
    }
    let key = session.stream_key(&req.channel_name);
    lifecycle::leave_channel(&client.node, &session, &key, Departure::Leave).await;
    client.send(
        id,
        Body::Leave(pb::LeaveReply {
            timestamp: now_ms(),
            channel_name: req.channel_name,
        }),
    );
    Ok(())
}

/// `renewToken(token, {channelName})` (T52): verified as a join of that channel.
pub(crate) fn renew_token(
    client: &mut Client,
    id: u32,
    req: pb::RenewTokenRequest,
) -> Result<(), Failure> {
    let session = client.session()?;
    if !session
        .lock()
        .streams
        .contains_key(req.channel_name.as_str())
    {
        return Err(not_joined(&req.channel_name));
    }
    let (expires, grant) = verify_join_token(
        &session,
        &req.channel_name,
        &req.token,
        client.node.config.clock.now_secs(),
    )?;
    {
        let mut st = session.lock();
        let m = st
            .streams
            .get_mut(req.channel_name.as_str())
            .ok_or_else(|| not_joined(&req.channel_name))?;
        m.token_expires_at = expires;
        m.will_expire_sent = false;
        m.publish_grant = grant;
    }
    client.send(
        id,
        Body::RenewToken(pb::RenewTokenReply {
            timestamp: now_ms(),
            token_expires_at: expires.unwrap_or(0),
        }),
    );
    Ok(())
}
