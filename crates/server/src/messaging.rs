//! Message and user channels: subscribe, unsubscribe and publish (api.md §3.3–3.5,
//! R63–R83). Validation happens before any state changes, so a refused request leaves
//! everything as it was (R171).

use crate::hub::Subscriber;
use crate::session::{Failure, Session, SubOptions};
use bytes::Bytes;
use switchboard_engine::{
    ChannelKey, ChannelKind, EngineError, MessageKind, Publication, PublishOptions, RateLimit,
};
use switchboard_protocol::pb::{self, server_message::Body};
use switchboard_protocol::{ErrorCode, names, now_ms};

fn position(p: switchboard_engine::StreamPosition) -> Option<pb::StreamPosition> {
    Some(pb::StreamPosition {
        epoch: p.epoch,
        offset: p.offset,
    })
}

fn engine_failure(e: EngineError) -> Failure {
    Failure::new(ErrorCode::EngineUnavailable, e.to_string())
}

impl Session {
    /// `subscribe` (R76–R81).
    pub(crate) async fn subscribe(
        &mut self,
        id: u32,
        req: pb::SubscribeRequest,
    ) -> Result<(), Failure> {
        let node = self.node.clone();
        let Some(s) = self.state.as_mut() else {
            return Err(Failure::new(ErrorCode::NotLogin, "log in first (R24)"));
        };
        names::validate_channel_name(&req.channel_name, s.app.limits.name_rules())?;
        let opts = SubOptions {
            with_message: req.with_message.unwrap_or(true),
            with_presence: req.with_presence.unwrap_or(true),
            be_quiet: req.be_quiet.unwrap_or(false),
            with_metadata: req.with_metadata.unwrap_or(false),
            with_lock: req.with_lock.unwrap_or(false),
        };
        let name: std::sync::Arc<str> = req.channel_name.as_str().into();
        let max = s.app.limits.max_subscriptions;
        if !s.subscriptions.contains_key(&name) && s.subscriptions.len() >= max {
            return Err(Failure::new(
                ErrorCode::ChannelInstanceExceedLimitation,
                format!("already subscribed to {max} channels, the limit per client (R77)"),
            ));
        }
        let key = s.message_key(&name);
        let sub = Subscriber {
            session: s.id,
            queue: self.out.clone(),
            with_message: opts.with_message,
        };
        node.hub
            .subscribe(&*node.broker, &key, sub)
            .await
            .map_err(engine_failure)?;
        let pos = node.broker.position(&key).await.map_err(engine_failure)?;
        // Options are replaced on a repeated subscribe (R81).
        s.subscriptions.insert(name, opts);
        self.send(
            id,
            Body::Subscribe(pb::SubscribeReply {
                timestamp: now_ms(),
                channel_name: req.channel_name,
                position: position(pos),
            }),
        );
        Ok(())
    }

    /// `unsubscribe` (R82, R83).
    pub(crate) async fn unsubscribe(
        &mut self,
        id: u32,
        req: pb::UnsubscribeRequest,
    ) -> Result<(), Failure> {
        let node = self.node.clone();
        let Some(s) = self.state.as_mut() else {
            return Err(Failure::new(ErrorCode::NotLogin, "log in first (R24)"));
        };
        names::validate_channel_name(&req.channel_name, s.app.limits.name_rules())?;
        if s.subscriptions.remove(req.channel_name.as_str()).is_none() {
            return Err(Failure::new(
                ErrorCode::ChannelNotSubscribed,
                format!("channel {} is not subscribed (R83)", req.channel_name),
            ));
        }
        let key = s.message_key(&req.channel_name);
        node.hub.unsubscribe(&*node.broker, &key, s.id).await;
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
        let Some(s) = self.state.as_ref() else {
            return Err(Failure::new(ErrorCode::NotLogin, "log in first (R24)"));
        };
        let limits = s.app.limits;
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
        let message_kind = match pb::MessageType::try_from(req.message_type) {
            Ok(pb::MessageType::String) => {
                if std::str::from_utf8(&req.payload).is_err() {
                    return Err(Failure::new(
                        ErrorCode::ChannelInvalidMessage,
                        "a STRING payload must be valid UTF-8 (R64)",
                    ));
                }
                MessageKind::Text
            }
            Ok(pb::MessageType::Binary) => MessageKind::Binary,
            _ => {
                return Err(Failure::new(
                    ErrorCode::ChannelInvalidMessage,
                    "message type must be STRING or BINARY (R64)",
                ));
            }
        };
        if req.payload.len() > limits.max_payload_bytes {
            return Err(Failure::new(
                ErrorCode::ChannelMessageLengthExceedLimitation,
                format!(
                    "payload is {} bytes, over the limit of {} (R63)",
                    req.payload.len(),
                    limits.max_payload_bytes
                ),
            ));
        }
        names::validate_custom_type(&req.custom_type)?;
        if req.store_in_history {
            return Err(Failure::new(
                ErrorCode::HistoryNotAvailable,
                "storeInHistory: history is not available on this server yet (R74)",
            ));
        }
        let key = ChannelKey::new(s.app_id.clone(), kind, req.channel_name.as_str());
        let options = PublishOptions {
            require_receiver: kind == ChannelKind::User,
            // Keys are scoped to the publisher, so nobody can suppress another user's
            // messages by reusing their key.
            idempotency_key: (!req.idempotency_key.is_empty())
                .then(|| format!("{}\0{}", s.user, req.idempotency_key).into()),
            rate_limit: (limits.publish_rate_per_channel > 0).then(|| RateLimit {
                per_second: limits.publish_rate_per_channel,
                burst: limits
                    .publish_burst
                    .unwrap_or(limits.publish_rate_per_channel),
            }),
        };
        let publication = Publication {
            publisher: s.user.clone(),
            kind: message_kind,
            custom_type: req.custom_type.as_str().into(),
            payload: Bytes::clone(&req.payload),
            timestamp_ms: now_ms(),
            position: Default::default(),
        };
        let outcome = self
            .node
            .broker
            .publish(&key, publication, &options)
            .await
            .map_err(|e| match e {
                EngineError::NoReceiver => Failure::new(
                    ErrorCode::ChannelReceiverOffline,
                    format!("user {} is not online (R71)", req.channel_name),
                ),
                EngineError::RateLimited(n) => Failure::new(
                    ErrorCode::ChannelPublishMessageTooFrequent,
                    format!(
                        "channel {} is over its publish rate of {n} messages per second (R67)",
                        req.channel_name
                    ),
                ),
                other => engine_failure(other),
            })?;
        self.send(
            id,
            Body::Publish(pb::PublishReply {
                timestamp: now_ms(),
                channel_name: req.channel_name,
                position: position(outcome.position),
            }),
        );
        Ok(())
    }
}
