//! Message and user channels: subscribe (with optional recovery from a position),
//! unsubscribe and publish (api.md §3.3–3.5, R63–R83). Validation happens before any
//! state changes, so a refused request leaves everything as it was (R171).

use crate::client::{Client, Failure};
use crate::config::AppLimits;
use crate::hub::{Filter, Subscriber};
use crate::login::{RECOVERY_PAGE, replay, wire_position};
use crate::presence::Departure;
use crate::session::SubOptions;
use bytes::Bytes;
use std::sync::Arc;
use switchboard_engine::{
    ChannelKey, ChannelKind, EngineError, MessageKind, Publication, PublishOptions, RateLimit,
    StreamPosition,
};
use switchboard_protocol::pb::{self, server_message::Body};
use switchboard_protocol::{ErrorCode, names, now_ms};

fn engine_failure(e: &EngineError) -> Failure {
    Failure::new(ErrorCode::EngineUnavailable, e.to_string())
}

/// The kind of a published payload: STRING must be UTF-8 (R64, −11009).
pub(crate) fn message_kind(message_type: i32, payload: &[u8]) -> Result<MessageKind, Failure> {
    match pb::MessageType::try_from(message_type) {
        Ok(pb::MessageType::String) => {
            if std::str::from_utf8(payload).is_err() {
                return Err(Failure::new(
                    ErrorCode::ChannelInvalidMessage,
                    "a STRING payload must be valid UTF-8 (R64)",
                ));
            }
            Ok(MessageKind::Text)
        }
        Ok(pb::MessageType::Binary) => Ok(MessageKind::Binary),
        _ => Err(Failure::new(
            ErrorCode::ChannelInvalidMessage,
            "message type must be STRING or BINARY (R64)",
        )),
    }
}

/// The payload size limit (R63, −11010).
pub(crate) fn check_payload(limits: &AppLimits, payload: &[u8]) -> Result<(), Failure> {
    if payload.len() > limits.max_payload_bytes {
        return Err(Failure::new(
            ErrorCode::ChannelMessageLengthExceedLimitation,
            format!(
                "payload is {} bytes, over the limit of {} (R63)",
                payload.len(),
                limits.max_payload_bytes
            ),
        ));
    }
    Ok(())
}

impl Client {
    /// `subscribe` (R76–R81); with `since`, first replays what came after it.
    pub(crate) async fn subscribe(
        &mut self,
        id: u32,
        req: pb::SubscribeRequest,
    ) -> Result<(), Failure> {
        let session = self.session()?;
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
        crate::presence::check_entering_state(&session, &key, &req.state)?;
        let since = req.since.map(|p| StreamPosition {
            epoch: p.epoch,
            offset: p.offset,
        });
        // Held until the reply, any replay and the presence SNAPSHOT are out, so that
        // the channel's pushes follow them in order.
        session.outlet.hold(&self.out, key.clone());
        let filter = Filter::message(&opts, &session.user);
        let sub = Subscriber {
            session: session.id,
            outlet: session.outlet.clone(),
            filter: filter.clone(),
        };
        let node = self.node.clone();
        if let Err(e) = node.hub.subscribe(&*node.broker, &key, sub).await {
            session.outlet.release(&self.out, &key, None);
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
        let state = crate::presence::entering_state(&session, &key, &req.state);
        // With `since` the member enters after the recovery read, so that its own join
        // event cannot push a message to replay out of a short log; without, it enters
        // first, so that the reply's position already counts that (invisible) event.
        let (position, gap, recovery) = match since {
            Some(since) => {
                let read = match node.broker.recover(&key, since, RECOVERY_PAGE).await {
                    Ok(r) => (r.position, !r.complete, Some(r)),
                    Err(_) => (since, true, None),
                };
                crate::presence::enter(&node, &session, &key, opts.be_quiet, state).await;
                read
            }
            None => {
                crate::presence::enter(&node, &session, &key, opts.be_quiet, state).await;
                let position = node.broker.position(&key).await.unwrap_or_default();
                (position, false, None)
            }
        };
        self.send(
            id,
            Body::Subscribe(pb::SubscribeReply {
                timestamp: now_ms(),
                channel_name: req.channel_name,
                position: wire_position(position),
                gap,
            }),
        );
        let last = match &recovery {
            Some(r) => replay(self, &key, r, &filter).await,
            None => None,
        };
        if opts.with_presence {
            if let Some(snapshot) = crate::presence::snapshot(&node, &key, position).await {
                self.push_wait(snapshot).await;
            }
        }
        if opts.with_metadata {
            if let Some(snapshot) = crate::storage::channel_snapshot(&node, &key, position).await {
                self.push_wait(snapshot).await;
            }
        }
        if opts.with_lock {
            if let Some(snapshot) = crate::lock::snapshot(&node, &key, position).await {
                self.push_wait(snapshot).await;
            }
        }
        session
            .outlet
            .release(&self.out, &key, last.or(Some(position)));
        Ok(())
    }

    /// `unsubscribe` (R82, R83).
    pub(crate) async fn unsubscribe(
        &mut self,
        id: u32,
        req: pb::UnsubscribeRequest,
    ) -> Result<(), Failure> {
        let session = self.session()?;
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
        self.node
            .hub
            .unsubscribe(&*self.node.broker, &key, session.id)
            .await;
        crate::presence::exit(&self.node, &session, &key, Departure::Leave).await;
        crate::lock::cancel_waits(&self.node, &session, Some(&key), "unsubscribed").await;
        self.send(
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
        &mut self,
        id: u32,
        req: pb::PublishRequest,
    ) -> Result<(), Failure> {
        let session = self.session()?;
        let limits = session.app.limits;
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
        check_payload(&limits, &req.payload)?;
        names::validate_custom_type(&req.custom_type)?;
        let history = if req.store_in_history {
            Some(crate::history::store(self)?)
        } else {
            None
        };
        let key = ChannelKey::new(session.app_id.clone(), kind, req.channel_name.as_str());
        let options = PublishOptions {
            require_receiver: kind == ChannelKind::User,
            // Keys are scoped to the publisher, so nobody can suppress another user's
            // messages by reusing their key.
            idempotency_key: (!req.idempotency_key.is_empty())
                .then(|| format!("{}\0{}", session.user, req.idempotency_key).into()),
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
            publisher: session.user.clone(),
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
            let hkey = crate::history::history_key(
                &session.app_id,
                kind,
                &req.channel_name,
                &session.user,
            );
            (hkey, publication.clone())
        });
        let result = self.node.broker.publish(&key, publication, &options).await;
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(EngineError::NoReceiver) => {
                let offline = format!("user {} is not online (R71)", req.channel_name);
                let (Some(store), Some((hkey, p))) = (&history, &stored) else {
                    return Err(Failure::new(ErrorCode::ChannelReceiverOffline, offline));
                };
                // Offline but asked to store: the message waits in the history.
                return Err(match crate::history::append(&**store, hkey, p).await {
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
                if let Err(e) = crate::history::append(&**store, hkey, p).await {
                    return Err(Failure::new(
                        ErrorCode::ChannelMessageDeliveredButStoreFailed,
                        format!("delivered, but storing in history failed: {e}"),
                    ));
                }
            }
        }
        self.send(
            id,
            Body::Publish(pb::PublishReply {
                timestamp: now,
                channel_name: req.channel_name,
                position: wire_position(outcome.position),
            }),
        );
        Ok(())
    }
}
