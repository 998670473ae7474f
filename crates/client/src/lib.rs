//! Switchboard Rust SDK: a client with the shape of Agora RTM 2.x in the style of its
//! Go SDK (api.md §14): `Client::new(app_id, user_id, config)`, `login`, `publish`,
//! `subscribe`, … returning `Result<_, RtmError>`, and events as async streams.
//!
//! A `Client` is a cheap handle; each login starts one connection task that owns the
//! socket. Every stream is a bounded queue: messages and topic events are lossless (a
//! slow reader slows the connection down, and the SDK resumes and recovers if the server
//! gives up on it), link-state and token notices report `Lagged(n)` rather than wait.
//! Stream channels (`client.stream_channel(name)`) are in [`StreamChannel`], presence
//! calls (`client.presence()`) in [`Presence`]; presence events are lossless like
//! messages and come on `client.presence_events()`, `Subscription::presence()` and
//! `StreamChannel::presence_events()`. Metadata (`client.storage()`) is in [`Storage`],
//! locks (`client.lock()`) in [`Lock`]; their events are lossless too and come on
//! `client.storage_events()` and `client.lock_events()`.

mod conn;
mod history;
mod lock;
mod presence;
mod router;
mod session;
mod storage;
mod stream;
mod types;

pub use history::{GetHistoryMessageOptions, GetMessagesResponse, History, HistoryMessage};
pub use lock::{Lock, LockResponse};
pub use presence::{
    ChannelDetail, GetStateResponse, Presence, RemoveStateResponse, SetStateResponse,
    WhereNowResponse, WhoNowOptions, WhoNowResponse,
};
pub use storage::{
    ChannelMetadataResponse, MetadataItem, MetadataOptions, RemoveMetadataOptions,
    RemoveUserMetadataOptions, Storage, UserMetadataOptions, UserMetadataResponse,
    UserMetadataSubscriptionResponse,
};
pub use stream::{
    JoinChannelResponse, JoinOptions, JoinTopicOptions, JoinTopicResponse, LeaveChannelResponse,
    LeaveTopicResponse, PublishTopicMessageResponse, PublishTopicOptions, StreamChannel,
    SubscribeTopicResponse, SubscribedFailedReason, TopicPriority, TopicQos,
    UnsubscribeTopicResponse,
};
pub use switchboard_protocol::{ErrorCode, LinkOperation, LinkReason, LinkState};
pub use types::{
    ChannelType, ClientConfig, Event, IntervalDetail, Lagged, LinkStateEvent, LockDetail,
    LockEvent, LockEventType, LoginResponse, MessageEvent, MetadataDetail, Payload, PresenceEvent,
    PresenceEventType, PublishInfo, PublishOptions, PublishResponse, RtmError, StorageData,
    StorageEvent, StorageEventType, StorageType, StreamPosition, SubscribeOptions, TopicDetail,
    TopicEvent, TopicEventType, UserList, UserState,
};

use futures_util::stream::BoxStream;
use router::{Item, Pending, Route, Router};
use session::{Detail, Inner, call, login_failure_reason};
use std::sync::Arc;
use switchboard_protocol::names;
use switchboard_protocol::pb::{self, client_message, server_message};
use tokio::sync::mpsc;

/// WebSocket settings of the SDK's connections: an 8 KiB read buffer. tungstenite's
/// default of 128 KiB is zeroed again before every read, which cost a receiving client
/// more CPU than everything else it did (bench fanout's load generator: 35 % in
/// `memset`).
pub fn ws_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(8 * 1024)
}

/// The error for a reply of the wrong kind to request `op` (a server bug).
pub(crate) fn unexpected(op: &str) -> RtmError {
    RtmError::new(
        switchboard_protocol::ErrorCode::Internal,
        op,
        "unexpected reply",
    )
}

/// A stream of items, or `Lagged` when the consumer fell behind.
pub type EventStream<T> = BoxStream<'static, Result<T, Lagged>>;

/// The client (`RTMClient`). Clones share one session.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

/// A message channel subscription: its streams end on `unsubscribe` or logout. Call
/// `messages()` or drop it: its queue, registered at subscribe time so nothing is
/// missed, holds delivery up once full (messages are lossless). The presence queue is
/// registered at subscribe time too, but holds nothing up until `presence()` claims it.
pub struct Subscription {
    channel: String,
    rx: Option<mpsc::Receiver<Item>>,
    presence: Option<Pending>,
    router: Arc<Router>,
}

/// A stream over one registered queue, keeping what `pick` returns.
pub(crate) fn stream_of<T: Send + 'static>(
    rx: mpsc::Receiver<Item>,
    pick: fn(Event) -> Option<T>,
) -> EventStream<T> {
    Box::pin(futures_util::stream::unfold(rx, move |mut rx| async move {
        loop {
            match rx.recv().await? {
                Item::Lagged(n) => return Some((Err(Lagged(n)), rx)),
                Item::Event(e) => {
                    if let Some(t) = pick(*e) {
                        return Some((Ok(t), rx));
                    }
                }
            }
        }
    }))
}

/// Keeps the messages of a stream.
pub(crate) fn message_of(e: Event) -> Option<MessageEvent> {
    match e {
        Event::Message(m) => Some(m),
        _ => None,
    }
}

/// Keeps the presence events of a stream.
pub(crate) fn presence_of(e: Event) -> Option<PresenceEvent> {
    match e {
        Event::Presence(p) => Some(p),
        _ => None,
    }
}

impl Subscription {
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
}

fn timeout_code(op: &str) -> ErrorCode {
    match op {
        "whoNow" | "whereNow" | "setState" | "getState" | "removeState" => {
            ErrorCode::PresenceOperationTimeout
        }
        "publish" | "publishTopicMessage" => ErrorCode::ChannelPublishMessageTimeout,
        "subscribe" | "subscribeTopic" => ErrorCode::ChannelSubscribeTimeout,
        "join" => ErrorCode::ChannelJoinFailed,
        "renewToken" => ErrorCode::RenewTokenTimeout,
        "setChannelMetadata"
        | "updateChannelMetadata"
        | "removeChannelMetadata"
        | "getChannelMetadata"
        | "setUserMetadata"
        | "updateUserMetadata"
        | "removeUserMetadata"
        | "getUserMetadata"
        | "subscribeUserMetadata"
        | "unsubscribeUserMetadata" => ErrorCode::StorageOperationTimeout,
        "setLock" | "removeLock" | "acquireLock" | "releaseLock" | "revokeLock" | "getLock" => {
            ErrorCode::LockOperationTimeout
        }
        "login" => ErrorCode::LoginTimeout,
        _ => ErrorCode::NotConnected,
    }
}

impl Client {
    /// Creates a client; no network I/O. Fails with −10003 for a bad app id (R1) and
    /// −10006 for a bad user id (R6).
    pub fn new(app_id: &str, user_id: &str, config: ClientConfig) -> Result<Client, RtmError> {
        names::validate_app_id(app_id).map_err(|e| RtmError::new(e.code, "new", e.reason))?;
        names::validate_user_id(user_id, names::NameRules::default())
            .map_err(|e| RtmError::new(e.code, "new", e.reason))?;
        Ok(Client {
            inner: Arc::new(Inner::new(app_id, user_id, config)),
        })
    }

    /// The user id.
    pub fn user_id(&self) -> &str {
        &self.inner.user_id
    }

    /// The history handle (api.md §8).
    pub fn history(&self) -> History {
        History {
            client: self.clone(),
        }
    }

    /// The presence handle (api.md §5).
    pub fn presence(&self) -> Presence {
        Presence {
            client: self.clone(),
        }
    }

    /// The storage handle (api.md §6).
    pub fn storage(&self) -> Storage {
        Storage {
            client: self.clone(),
        }
    }

    /// The lock handle (api.md §7).
    pub fn lock(&self) -> Lock {
        Lock {
            client: self.clone(),
        }
    }

    /// The current link state.
    pub fn link_state(&self) -> LinkState {
        self.inner.lock().link
    }

    /// Every event, in arrival order (api.md §14.2 `events()`); survives logout.
    /// Messages are lossless: read it, or drop it.
    pub fn events(&self) -> EventStream<Event> {
        stream_of(self.inner.router.register(Route::All), Some)
    }

    /// Link state changes.
    pub fn link_state_events(&self) -> EventStream<LinkStateEvent> {
        stream_of(self.inner.router.register(Route::LinkState), |e| match e {
            Event::LinkState(l) => Some(l),
            _ => None,
        })
    }

    /// Will-expire notices: `None` for the login token, else a stream channel name.
    pub fn token_events(&self) -> EventStream<Option<String>> {
        stream_of(self.inner.router.register(Route::Token), |e| match e {
            Event::TokenPrivilegeWillExpire(c) => Some(c),
            _ => None,
        })
    }

    /// Messages sent to this user (USER channel). Ends at logout or kick; lossless.
    pub fn user_messages(&self) -> EventStream<MessageEvent> {
        stream_of(self.inner.router.register(Route::UserMessages), message_of)
    }

    /// Topic events of every joined stream channel (api.md §9.4), from now on; survives
    /// logout. Lossless: read it, or drop it.
    pub fn topic_events(&self) -> EventStream<TopicEvent> {
        stream_of(self.inner.router.register(Route::Topics), stream::topic_of)
    }

    /// Presence events of every subscribed and joined channel (api.md §9.3), from now
    /// on; survives logout. Lossless: read it, or drop it.
    pub fn presence_events(&self) -> EventStream<PresenceEvent> {
        stream_of(self.inner.router.register(Route::Presence), presence_of)
    }

    /// Storage events (api.md §9.5) of every channel subscribed or joined with
    /// `with_metadata` and of every user subscribed with `subscribe_user_metadata`, from
    /// now on; survives logout. Lossless: read it, or drop it.
    pub fn storage_events(&self) -> EventStream<StorageEvent> {
        stream_of(self.inner.router.register(Route::Storage), |e| match e {
            Event::Storage(s) => Some(s),
            _ => None,
        })
    }

    /// Lock events (api.md §9.6) of every channel subscribed or joined with
    /// `with_lock`, and EXPIRED of this user's locks (R153, R157), from now on; survives
    /// logout. Lossless: read it, or drop it.
    pub fn lock_events(&self) -> EventStream<LockEvent> {
        stream_of(self.inner.router.register(Route::Locks), |e| match e {
            Event::Lock(l) => Some(l),
            _ => None,
        })
    }

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
            .or_insert_with(stream::new_channel)
            .clone();
        Ok(StreamChannel::new(self.clone(), name.to_string(), shared))
    }

    /// Logs in (api.md §3.1). An empty token means "no token" (T61).
    pub async fn login(&self, token: &str) -> Result<LoginResponse, RtmError> {
        let inner = &self.inner;
        // Client-side pre-checks (token.md T61–T63): nothing is sent for a token of
        // another app; an empty token is replaced by the app id.
        let token = switchboard_token::client_precheck(token, &inner.app_id).map_err(|e| {
            let code = ErrorCode::from_i32(e.sdk_error_code()).unwrap_or(ErrorCode::InvalidToken);
            RtmError::new(
                code,
                "login",
                format!("{}: {}", e.identifier(), e.description()),
            )
        })?;
        let generation = {
            let mut st = inner.lock();
            let reason = match st.link {
                LinkState::Connecting | LinkState::Connected => {
                    return Err(RtmError::new(
                        ErrorCode::DuplicateOperation,
                        "login",
                        "already logged in or logging in (R30)",
                    ));
                }
                LinkState::Idle | LinkState::Failed => LinkReason::Login,
                LinkState::Disconnected | LinkState::Suspended => {
                    // The app chose a fresh login over the SDK's own reconnect: the old
                    // session's streams end visibly (the app re-subscribes, as after
                    // `isResumed: false`), nothing is silently dropped.
                    inner.end_session(&mut st);
                    LinkReason::Relogin
                }
            };
            // A login cancels a reconnect in progress and starts a new session.
            st.generation += 1;
            st.token = token;
            st.session_id = None;
            inner.transition(
                &mut st,
                LinkState::Connecting,
                LinkOperation::Login,
                reason,
                Detail::default(),
            );
            st.generation
        };
        let result = inner.establish(false).await;
        let mut st = inner.lock();
        if st.generation != generation {
            return Err(RtmError::new(
                ErrorCode::LoginCanceled,
                "login",
                "logout during login (R34)",
            ));
        }
        match result {
            Ok(est) => {
                inner.adopt(&mut st, &est);
                inner.transition(
                    &mut st,
                    LinkState::Connected,
                    LinkOperation::Login,
                    LinkReason::LoginSuccess,
                    Detail::default(),
                );
                drop(st);
                inner.lost_before_adopted(&est);
                Ok(LoginResponse {
                    timestamp: est.reply.timestamp,
                    session_id: est.reply.session_id,
                    heartbeat_interval: est.reply.heartbeat_interval,
                    presence_timeout: est.reply.presence_timeout,
                })
            }
            Err(e) => {
                let local = e.code == ErrorCode::LoginTimeout.as_i32()
                    || e.code == ErrorCode::LoginAborted.as_i32();
                let (to, op, reason) = if e.code == ErrorCode::LoginTimeout.as_i32() {
                    (
                        LinkState::Disconnected,
                        LinkOperation::ServerTimeout,
                        LinkReason::LoginTimeout,
                    )
                } else if local {
                    (
                        LinkState::Disconnected,
                        LinkOperation::ServerTimeout,
                        LinkReason::ConnectionError,
                    )
                } else {
                    (
                        LinkState::Failed,
                        LinkOperation::ServerReject,
                        login_failure_reason(e.code),
                    )
                };
                inner.transition(&mut st, to, op, reason, Detail::default());
                Err(e)
            }
        }
    }

    /// Logs out (api.md §3.2): leaves everything; the link becomes IDLE (R32).
    pub async fn logout(&self) -> Result<(), RtmError> {
        let conn = {
            let mut st = self.inner.lock();
            if st.link == LinkState::Idle {
                return Ok(());
            }
            // From here the connection's end is logout's to report (R32), and any
            // reconnect in progress stops.
            st.generation += 1;
            // The session's streams end first, so a delivery waiting on one that is
            // not read cannot keep the Logout request from going out.
            self.inner.router.end_session();
            st.conn.take()
        };
        if let Some((_, conn)) = conn {
            let body = client_message::Body::Logout(pb::LogoutRequest {});
            let _ = tokio::time::timeout(
                self.inner.config.request_timeout,
                call(&conn, "logout", body),
            )
            .await;
        }
        let mut st = self.inner.lock();
        self.inner.transition(
            &mut st,
            LinkState::Idle,
            LinkOperation::Logout,
            LinkReason::Logout,
            Detail::default(),
        );
        self.inner.end_session(&mut st);
        Ok(())
    }

    /// Fails as [`Client::request`] would when the link cannot carry a request now.
    pub(crate) fn connected(&self, op: &str) -> Result<(), RtmError> {
        let st = self.inner.lock();
        match (&st.conn, st.link) {
            (Some(_), LinkState::Connected) => Ok(()),
            (_, LinkState::Idle | LinkState::Failed) => Err(RtmError::new(
                ErrorCode::NotLogin,
                op,
                "not logged in (R24)",
            )),
            _ => Err(RtmError::new(
                ErrorCode::NotConnected,
                op,
                "reconnecting; try again when CONNECTED",
            )),
        }
    }

    /// Sends one request and waits for its reply, within the request timeout.
    pub(crate) async fn request(
        &self,
        op: &'static str,
        body: client_message::Body,
    ) -> Result<server_message::Body, RtmError> {
        self.request_within(op, body, Some(self.inner.config.request_timeout))
            .await
    }

    /// Sends one request and waits for its reply, within `timeout` if given; without
    /// one it waits until the reply comes or the connection ends.
    pub(crate) async fn request_within(
        &self,
        op: &'static str,
        body: client_message::Body,
        timeout: Option<std::time::Duration>,
    ) -> Result<server_message::Body, RtmError> {
        let conn = {
            let st = self.inner.lock();
            match (&st.conn, st.link) {
                (Some((_, c)), LinkState::Connected) => c.clone(),
                (_, LinkState::Idle | LinkState::Failed) => {
                    return Err(RtmError::new(
                        ErrorCode::NotLogin,
                        op,
                        "not logged in (R24)",
                    ));
                }
                _ => {
                    return Err(RtmError::new(
                        ErrorCode::NotConnected,
                        op,
                        "reconnecting; try again when CONNECTED",
                    ));
                }
            }
        };
        let Some(timeout) = timeout else {
            return call(&conn, op, body).await;
        };
        match tokio::time::timeout(timeout, call(&conn, op, body)).await {
            Ok(r) => r,
            Err(_) => Err(RtmError::new(
                timeout_code(op),
                op,
                "no reply within the request timeout",
            )),
        }
    }

    /// Publishes to a message channel, or to a user with `ChannelType::User` (api.md §3.3).
    pub async fn publish(
        &self,
        channel: &str,
        message: impl Into<Payload>,
        options: PublishOptions,
    ) -> Result<PublishResponse, RtmError> {
        let (message_type, payload) = match message.into() {
            Payload::Text(s) => (pb::MessageType::String, bytes::Bytes::from(s)),
            Payload::Binary(b) => (pb::MessageType::Binary, b),
        };
        let channel_type = match options.channel_type {
            ChannelType::Message => pb::ChannelType::Message,
            ChannelType::User => pb::ChannelType::User,
            ChannelType::Stream => pb::ChannelType::Stream,
        };
        let req = pb::PublishRequest {
            channel_type: channel_type as i32,
            channel_name: channel.to_string(),
            message_type: message_type as i32,
            payload,
            custom_type: options.custom_type.unwrap_or_default(),
            store_in_history: options.store_in_history,
            idempotency_key: options.idempotency_key.unwrap_or_default(),
        };
        match self
            .request("publish", client_message::Body::Publish(req))
            .await?
        {
            server_message::Body::Publish(r) => Ok(PublishResponse {
                timestamp: r.timestamp,
                channel_name: r.channel_name,
                position: r
                    .position
                    .map(|p| StreamPosition {
                        epoch: p.epoch,
                        offset: p.offset,
                    })
                    .unwrap_or_default(),
            }),
            _ => Err(unexpected("publish")),
        }
    }

    /// Subscribes to a message channel (api.md §3.4). The returned subscription's
    /// `messages()` sees everything delivered after this call, and its `presence()`
    /// every presence event from the SNAPSHOT that follows the reply on (R116: with
    /// `with_presence`; `be_quiet` hides this client from the others, R84–R87).
    pub async fn subscribe(
        &self,
        channel: &str,
        options: SubscribeOptions,
    ) -> Result<Subscription, RtmError> {
        let rx = self
            .inner
            .router
            .register(Route::Channel(channel.to_string()));
        let presence = options.with_presence.then(|| {
            self.inner
                .router
                .register_pending(Route::ChannelPresence(channel.to_string()))
        });
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
                    let pos = StreamPosition {
                        epoch: p.epoch,
                        offset: p.offset,
                    };
                    conn::baseline(
                        &self.inner.positions,
                        (ChannelType::Message, channel.to_string()),
                        pos,
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
                    router: self.inner.router.clone(),
                })
            }
            _ => Err(unexpected("subscribe")),
        }
    }

    /// Unsubscribes (api.md §3.5); the subscription's streams end.
    pub async fn unsubscribe(&self, channel: &str) -> Result<(), RtmError> {
        let req = pb::UnsubscribeRequest {
            channel_name: channel.to_string(),
        };
        self.request("unsubscribe", client_message::Body::Unsubscribe(req))
            .await?;
        self.inner.lock().subscriptions.remove(channel);
        // A later subscribe starts from the channel's position then, not from here.
        self.inner
            .positions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(ChannelType::Message, channel.to_string()));
        self.inner.router.end_channel(channel);
        Ok(())
    }

    /// Replaces the login token (api.md §3.7); on failure the old one stays (R41).
    /// While reconnecting, the new token is kept for the next attempt.
    pub async fn renew_token(&self, token: &str) -> Result<(), RtmError> {
        {
            let mut st = self.inner.lock();
            if matches!(
                st.link,
                LinkState::Disconnected | LinkState::Suspended | LinkState::Connecting
            ) && st.conn.is_none()
            {
                st.token = token.to_string();
                return Ok(());
            }
        }
        let req = pb::RenewTokenRequest {
            token: token.to_string(),
            channel_name: String::new(),
        };
        self.request("renewToken", client_message::Body::RenewToken(req))
            .await?;
        self.inner.lock().token = token.to_string();
        Ok(())
    }
}
