//! Message and user channels: subscribe (with optional recovery from a position),
//! unsubscribe and publish (api.md §3.3–3.5, R63–R83). Validation happens before any
//! state changes, so a refused request leaves everything as it was (R171).

use crate::node::hub::{Filter, SubOptions, Subscriber};
use crate::node::{Actor, Node, history_key};
use crate::session::client::Client;
use crate::session::hooks::{self, Departure, Wants};
use crate::session::lifecycle;
use crate::session::replay::{RECOVERY_PAGE, replay};
use crate::wire::{Failure, check_payload, message_kind, wire_position};
use bytes::Bytes;
use std::sync::Arc;
use switchboard_engine::{
    ChannelKey, ChannelKind, EngineError, Publication, PublishOptions, RateLimit, StreamPosition,
};
use switchboard_protocol::pb::{self, server_message::Body};
use switchboard_protocol::{ErrorCode, names, now_ms};

fn engine_failure(e: &EngineError) -> Failure {
    match e {
        EngineError::OverBudget(reason) => Failure::new(ErrorCode::Overloaded, reason.clone()),
        _ => Failure::new(ErrorCode::EngineUnavailable, e.to_string()),
    }
}

/// `subscribe` (R76–R81); with `since`, first replays what came after it.
pub(crate) async fn subscribe(
    client: &mut Client,
    id: u32,
    req: pb::SubscribeRequest,
) -> Result<(), Failure> {
    let session = client.session()?;
    names::validate_channel_name(&req.channel_name, session.app.limits.name_rules())?;
    let opts = SubOptions {
        with_message: req.with_message.unwrap_or(true),
        with_presence: req.with_presence.unwrap_or(true),
        be_quiet: req.be_quiet.unwrap_or(false),
        with_metadata: req.with_metadata.unwrap_or(false),
        with_lock: req.with_lock.unwrap_or(false),
    };
    let name: Arc<str> = req.channel_name.as_str().into();
    let max = session.app.limits.max_subscriptions;
    {
        let st = session.lock();
        if !st.subscriptions.contains_key(&name) && st.subscriptions.len() >= max {
            return Err(Failure::new(
                ErrorCode::ChannelInstanceExceedLimitation,
                format!("already subscribed to {max} channels, the limit per client (R77)"),
            ));
        }
    }
    let key = session.message_key(&name);
    hooks::check_enter(&client.node, &session, &key, &req.state)?;
    let since = req.since.map(|p| StreamPosition {
        epoch: p.epoch,
        offset: p.offset,
    });
    // Held until the reply, any replay and the presence SNAPSHOT are out, so that
    // the channel's pushes follow them in order.
    session.outlet.hold(&client.out, key.clone());
    let filter = Filter::message(&opts, &session.user);
    let sub = Subscriber {
        session: session.id,
        outlet: session.outlet.clone(),
        filter: filter.clone(),
    };
    let node = client.node.clone();
    if let Err(e) = node.hub.subscribe(&*node.broker, &key, sub).await {
        session.outlet.release(&client.out, &key, None);
        return Err(engine_failure(&e));
    }
    // Options are replaced on a repeated subscribe (R81). A session that ended
    // meanwhile (kicked) must not keep a subscriber nobody would remove.
    let ended = {
        let mut st = session.lock();
        if !st.ended {
            st.subscriptions.insert(name, opts);
        }
        st.ended
    };
    if ended {
        node.hub.unsubscribe(&*node.broker, &key, session.id).await;
        return Err(Failure::new(ErrorCode::NotLogin, "the session ended"));
    }
    // With `since` the member enters after the recovery read, so that its own join
    // event cannot push a message to replay out of a short log; without, it enters
    // first, so that the reply's position already counts that (invisible) event.
    let (position, gap, recovery) = match since {
        Some(since) => {
            let read = match node.broker.recover(&key, since, RECOVERY_PAGE).await {
                Ok(r) => (r.position, !r.complete, Some(r)),
                Err(_) => (since, true, None),
            };
            hooks::entered(&node, &session, &key, opts.be_quiet, &req.state).await;
            read
        }
        None => {
            hooks::entered(&node, &session, &key, opts.be_quiet, &req.state).await;
            let position = node.broker.position(&key).await.unwrap_or_default();
            (position, false, None)
        }
    };
    client.send(
        id,
        Body::Subscribe(pb::SubscribeReply {
            timestamp: now_ms(),
            channel_name: req.channel_name,
            position: wire_position(position),
            gap,
        }),
    );
    let last = match &recovery {
        Some(r) => replay(client, &key, r, &filter).await,
        None => None,
    };
    let wants = Wants {
        presence: opts.with_presence,
        metadata: opts.with_metadata,
        locks: opts.with_lock,
    };
    for snapshot in hooks::snapshots(&node, &key, position, wants).await {
        client.push_wait(snapshot).await;
    }
    session
        .outlet
        .release(&client.out, &key, last.or(Some(position)));
    Ok(())
}

/// `unsubscribe` (R82, R83).
pub(crate) async fn unsubscribe(
    client: &mut Client,
    id: u32,
    req: pb::UnsubscribeRequest,
) -> Result<(), Failure> {
    let session = client.session()?;
    names::validate_channel_name(&req.channel_name, session.app.limits.name_rules())?;
    if session
        .lock()
        .subscriptions
        .remove(req.channel_name.as_str())
        .is_none()
    {
        return Err(Failure::new(
            ErrorCode::ChannelNotSubscribed,
            format!("channel {} is not subscribed (R83)", req.channel_name),
        ));
    }
    let key = session.message_key(&req.channel_name);
    lifecycle::leave_channel(&client.node, &session, &key, Departure::Leave).await;
    client.send(
        id,
        Body::Unsubscribe(pb::UnsubscribeReply {
            timestamp: now_ms(),
            channel_name: req.channel_name,
        }),
    );
    Ok(())
}

/// `publish` to a MESSAGE channel or a user (R63–R75).
pub(crate) async fn publish(
    client: &mut Client,
    id: u32,
    req: pb::PublishRequest,
) -> Result<(), Failure> {
    let session = client.session()?;
    let actor = session.actor();
    let reply = publish_as(&client.node, &actor, req).await?;
    client.send(id, Body::Publish(reply));
    Ok(())
}

/// The rules of a publish (R63–R75) for `actor`, a client's session or the server
/// API: validates, publishes, stores in history when asked, and returns the reply.
pub(crate) async fn publish_as(
    node: &Arc<Node>,
    actor: &Actor,
    req: pb::PublishRequest,
) -> Result<pb::PublishReply, Failure> {
    let limits = actor.app.limits;
    let kind = match pb::ChannelType::try_from(req.channel_type) {
        Ok(pb::ChannelType::Unspecified | pb::ChannelType::Message) => ChannelKind::Message,
        Ok(pb::ChannelType::User) => ChannelKind::User,
        Ok(pb::ChannelType::Stream) => {
            return Err(Failure::new(
                ErrorCode::InvalidChannelType,
                "publish takes MESSAGE or USER; STREAM channels use publishTopicMessage (R75)",
            ));
        }
        Err(_) => {
            return Err(Failure::new(
                ErrorCode::InvalidChannelType,
                format!("unknown channel type {}", req.channel_type),
            ));
        }
    };
    names::validate_channel_name(&req.channel_name, limits.name_rules())?;
    let message_kind = message_kind(req.message_type, &req.payload)?;
    check_payload(limits.max_payload_bytes, &req.payload)?;
    names::validate_custom_type(&req.custom_type)?;
    let history = if req.store_in_history {
        Some(node.history_store()?)
    } else {
        None
    };
    let key = ChannelKey::new(actor.app_id.clone(), kind, req.channel_name.as_str());
    let options = PublishOptions {
        require_receiver: kind == ChannelKind::User,
        // Keys are scoped to the publisher, so nobody can suppress another user's
        // messages by reusing their key.
        idempotency_key: (!req.idempotency_key.is_empty())
            .then(|| format!("{}\0{}", actor.user, req.idempotency_key).into()),
        rate_limit: (limits.publish_rate_per_channel > 0).then(|| RateLimit {
            per_second: limits.publish_rate_per_channel,
            burst: limits
                .publish_burst
                .unwrap_or(limits.publish_rate_per_channel),
        }),
    };
    // One clock read for the publication and its reply.
    let now = now_ms();
    let publication = Publication {
        publisher: actor.user.clone(),
        kind: message_kind,
        custom_type: switchboard_engine::shared_str(&req.custom_type),
        // Copied out of the frame: a slice would keep the connection's whole read
        // buffer alive for as long as the recovery log holds the message, and the
        // reader would allocate a fresh buffer for every read (docs/benchmarks.md).
        payload: Bytes::copy_from_slice(&req.payload),
        topic: switchboard_engine::shared_str(""),
        send_ts: 0,
        timestamp_ms: now,
        position: Default::default(),
    };
    // Only a message stored in history needs its copy and its history key.
    let stored = history.as_ref().map(|_| {
        let hkey = history_key(&actor.app_id, kind, &req.channel_name, &actor.user);
        (hkey, publication.clone())
    });
    let result = node.broker.publish(&key, publication, &options).await;
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(EngineError::NoReceiver) => {
            let offline = format!("user {} is not online (R71)", req.channel_name);
            let (Some(store), Some((hkey, p))) = (&history, &stored) else {
                return Err(Failure::new(ErrorCode::ChannelReceiverOffline, offline));
            };
            // Offline but asked to store: the message waits in the history.
            return Err(match store.append(hkey, p).await {
                Ok(_) => Failure::new(
                    ErrorCode::ChannelReceiverOfflineButStoreSucceeded,
                    format!("{offline}; the message was stored in history"),
                ),
                Err(e) => Failure::new(
                    ErrorCode::ChannelReceiverOfflineAndStoreFailed,
                    format!("{offline}; storing it failed: {e}"),
                ),
            });
        }
        Err(EngineError::RateLimited(n)) => {
            return Err(Failure::new(
                ErrorCode::ChannelPublishMessageTooFrequent,
                format!(
                    "channel {} is over its publish rate of {n} messages per second (R67)",
                    req.channel_name
                ),
            ));
        }
        Err(other) => return Err(engine_failure(&other)),
    };
    if let (Some(store), Some((hkey, p))) = (&history, &stored) {
        // Stored after delivery; the reply waits for the commit, so an acknowledged
        // storeInHistory survives a crash. A retried duplicate is stored once.
        if !outcome.duplicate {
            if let Err(e) = store.append(hkey, p).await {
                return Err(Failure::new(
                    ErrorCode::ChannelMessageDeliveredButStoreFailed,
                    format!("delivered, but storing in history failed: {e}"),
                ));
            }
        }
    }
    node.metrics.published(kind);
    Ok(pb::PublishReply {
        timestamp: now,
        channel_name: req.channel_name,
        position: wire_position(outcome.position),
    })
}
