//! Message channels and USER messages (api.md §3.3–§3.5): `publish`, `subscribe`,
//! `unsubscribe`, and the [`Subscription`] whose streams carry one channel's messages,
//! presence, storage and lock events (the Go SDK's per-subscription channels, §14.2).

use crate::client::Client;
use crate::decode::{position, wire_type};
use crate::positions::baseline;
use crate::router::{
    EventStream, Item, Pending, Route, Router, lock_of, message_of, presence_of, storage_of,
    stream_of,
};
use crate::types::{
    ChannelType, LockEvent, MessageEvent, Payload, PresenceEvent, PublishOptions, PublishResponse,
    RtmError, StorageEvent, SubscribeOptions, SubscribeResponse, UnsubscribeResponse, unexpected,
    wire_custom_type,
};
use std::sync::Arc;
use switchboard_protocol::pb::{self, client_message, server_message};
use tokio::sync::mpsc;

/// A message channel subscription: its streams end on `unsubscribe` or logout. Call
/// `messages()` or drop it: its queue, registered at subscribe time so nothing is
/// missed, holds delivery up once full (messages are lossless). The presence, storage
/// and lock queues (as the options enable them) are registered at subscribe time too,
/// but hold nothing up until `presence()`, `storage()` or `locks()` claims them.
pub struct Subscription {
    channel: String,
    rx: Option<mpsc::Receiver<Item>>,
    presence: Option<Pending>,
    storage: Option<Pending>,
    locks: Option<Pending>,
    router: Arc<Router>,
    response: SubscribeResponse,
}

impl Subscription {
    /// The subscribe's reply (`SubscribeResponse`, api.md §3.4).
    pub fn response(&self) -> &SubscribeResponse {
        &self.response
    }

    /// The channel's name.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Messages of this channel, from the moment of the subscribe request on (the first
    /// call) or from now (later calls). Ends on unsubscribe or logout.
    pub fn messages(&mut self) -> EventStream<MessageEvent> {
        let rx = self
            .rx
            .take()
            .unwrap_or_else(|| self.router.register(Route::Channel(self.channel.clone())));
        stream_of(rx, message_of)
    }

    /// Presence events of this channel (R116; none when subscribed without presence):
    /// the first call yields everything from the subscribe on, starting with its
    /// SNAPSHOT; later calls from now on. Lossless once called; ends on unsubscribe or
    /// logout.
    pub fn presence(&mut self) -> EventStream<PresenceEvent> {
        let rx = match self.presence.take() {
            Some(p) => p.claim(),
            None => self
                .router
                .register(Route::ChannelPresence(self.channel.clone())),
        };
        stream_of(rx, presence_of)
    }

    /// Storage events of this channel's metadata (R147, R148; none when subscribed
    /// without `with_metadata`): the first call yields everything from the subscribe
    /// on, starting with its SNAPSHOT; later calls from now on. Lossless once called;
    /// ends on unsubscribe or logout.
    pub fn storage(&mut self) -> EventStream<StorageEvent> {
        let rx = match self.storage.take() {
            Some(p) => p.claim(),
            None => self
                .router
                .register(Route::ChannelStorage(self.channel.clone())),
        };
        stream_of(rx, storage_of)
    }

    /// Lock events of this channel (R157; none when subscribed without `with_lock`,
    /// but for EXPIRED of this user's own locks, R153): the first call yields
    /// everything from the subscribe on, starting with its SNAPSHOT; later calls from
    /// now on. Lossless once called; ends on unsubscribe or logout.
    pub fn locks(&mut self) -> EventStream<LockEvent> {
        let rx = match self.locks.take() {
            Some(p) => p.claim(),
            None => self
                .router
                .register(Route::ChannelLocks(self.channel.clone())),
        };
        stream_of(rx, lock_of)
    }
}

/// How much longer than a channel publish a USER publish is kept (R59: 13 s vs 10 s).
const USER_PUBLISH_EXTRA: std::time::Duration = std::time::Duration::from_secs(3);

impl Client {
    /// Publishes to a message channel, or to a user with `ChannelType::User` (api.md §3.3).
    /// With end-to-end encryption on the payload is sealed first; a failure to encrypt
    /// fails with −11023.
    ///
    /// While the link is reconnecting the publish is kept and sent once it is back
    /// (R59), within the request timeout (10 s by default; 3 s more for a USER
    /// message); it fails at once only when not logged in (−10002). If the connection
    /// is lost after the request went out, it is sent again only with an
    /// `idempotency_key` (so it cannot be delivered twice), else it fails with −10025.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), switchboard_client::RtmError> {
    /// # let client: switchboard_client::Client = todo!();
    /// use switchboard_client::{ChannelType, PublishOptions};
    /// client.publish("room", "hello room", PublishOptions::default()).await?;
    /// client.publish("room", vec![0u8, 1, 2], PublishOptions::default()).await?; // BINARY
    /// let to_bob = PublishOptions { channel_type: ChannelType::User, ..Default::default() };
    /// client.publish("bob", "hi bob", to_bob).await?;
    /// # Ok(()) }
    /// ```
    pub async fn publish(
        &self,
        channel: &str,
        message: impl Into<Payload>,
        options: PublishOptions,
    ) -> Result<PublishResponse, RtmError> {
        let custom_type = wire_custom_type(options.custom_type, "publish")?;
        let (message_type, payload) = self.inner.seal("publish", message.into())?;
        // R59: kept while reconnecting, 10 s for a channel and 13 s for a user (with
        // the default request timeout of 10 s).
        let timeout = match options.channel_type {
            ChannelType::User => self.inner.config.request_timeout + USER_PUBLISH_EXTRA,
            _ => self.inner.config.request_timeout,
        };
        let resend_in_flight = options.idempotency_key.is_some();
        let req = pb::PublishRequest {
            channel_type: wire_type(options.channel_type),
            channel_name: channel.to_string(),
            message_type: message_type as i32,
            payload,
            custom_type,
            store_in_history: options.store_in_history,
            idempotency_key: options.idempotency_key.unwrap_or_default(),
        };
        match self
            .request_kept(
                "publish",
                client_message::Body::Publish(req),
                timeout,
                resend_in_flight,
            )
            .await?
        {
            server_message::Body::Publish(r) => Ok(PublishResponse {
                timestamp: r.timestamp,
                channel_name: r.channel_name,
                position: position(r.position),
            }),
            _ => Err(unexpected("publish")),
        }
    }

    /// Subscribes to a message channel (api.md §3.4). The returned subscription's
    /// `messages()` sees everything delivered after this call, and its `presence()`
    /// every presence event from the SNAPSHOT that follows the reply on (R116: with
    /// `with_presence`; `be_quiet` hides this client from the others, R84–R87); with
    /// `with_metadata` / `with_lock` its `storage()` / `locks()` likewise from their
    /// SNAPSHOT on (R80).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), switchboard_client::RtmError> {
    /// # let client: switchboard_client::Client = todo!();
    /// use futures_util::StreamExt;
    /// use switchboard_client::SubscribeOptions;
    /// let mut sub = client.subscribe("room", SubscribeOptions::default()).await?;
    /// let mut messages = sub.messages();
    /// while let Some(Ok(m)) = messages.next().await {
    ///     println!("{}: {:?}", m.publisher, m.message);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn subscribe(
        &self,
        channel: &str,
        options: SubscribeOptions,
    ) -> Result<Subscription, RtmError> {
        let rx = self
            .inner
            .router
            .register(Route::Channel(channel.to_string()));
        let pending = |on: bool, route: fn(String) -> Route| {
            on.then(|| {
                self.inner
                    .router
                    .register_pending(route(channel.to_string()))
            })
        };
        let presence = pending(options.with_presence, Route::ChannelPresence);
        let storage = pending(options.with_metadata, Route::ChannelStorage);
        let locks = pending(options.with_lock, Route::ChannelLocks);
        let req = pb::SubscribeRequest {
            channel_name: channel.to_string(),
            with_message: Some(options.with_message),
            with_presence: Some(options.with_presence),
            be_quiet: Some(options.be_quiet),
            with_metadata: Some(options.with_metadata),
            with_lock: Some(options.with_lock),
            since: None,
            state: Default::default(),
        };
        match self
            .request("subscribe", client_message::Body::Subscribe(req))
            .await?
        {
            server_message::Body::Subscribe(r) => {
                if let Some(p) = r.position {
                    baseline(
                        &self.inner.positions,
                        (ChannelType::Message, channel.to_string()),
                        position(Some(p)),
                    );
                }
                self.inner
                    .lock()
                    .subscriptions
                    .insert(channel.to_string(), options);
                Ok(Subscription {
                    channel: channel.to_string(),
                    rx: Some(rx),
                    presence,
                    storage,
                    locks,
                    router: self.inner.router.clone(),
                    response: SubscribeResponse {
                        timestamp: r.timestamp,
                        channel_name: r.channel_name,
                    },
                })
            }
            _ => Err(unexpected("subscribe")),
        }
    }

    /// Unsubscribes (api.md §3.5); the subscription's streams end.
    pub async fn unsubscribe(&self, channel: &str) -> Result<UnsubscribeResponse, RtmError> {
        let req = pb::UnsubscribeRequest {
            channel_name: channel.to_string(),
        };
        let reply = self
            .request("unsubscribe", client_message::Body::Unsubscribe(req))
            .await?;
        self.inner.lock().subscriptions.remove(channel);
        // The server dropped this client's presence state there (R54's copy too).
        self.inner
            .states()
            .remove(&(ChannelType::Message, channel.to_string()));
        // A later subscribe starts from the channel's position then, not from here.
        self.inner
            .positions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(ChannelType::Message, channel.to_string()));
        self.inner.router.end_channel(channel);
        match reply {
            server_message::Body::Unsubscribe(r) => Ok(UnsubscribeResponse {
                timestamp: r.timestamp,
                channel_name: r.channel_name,
            }),
            _ => Err(unexpected("unsubscribe")),
        }
    }
}
