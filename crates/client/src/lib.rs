//! Switchboard Rust SDK: a client with the shape of Agora RTM 2.x in the style of its
//! Go SDK (api.md §14): `Client::new(app_id, user_id, config)`, `login`, `publish`,
//! `subscribe`, … returning `Result<_, RtmError>`, and events as async streams.
//!
//! A `Client` is a cheap handle; each login starts one connection task that owns the
//! socket. Events travel on one bounded bus; every stream is a filtered view of it and
//! reports `Lagged(n)` instead of silently skipping when its consumer falls behind.

mod conn;
mod types;

pub use switchboard_protocol::{ErrorCode, LinkOperation, LinkReason, LinkState};
pub use types::{
    ChannelType, ClientConfig, Event, Lagged, LinkStateEvent, LoginResponse, MessageEvent, Payload,
    PublishOptions, PublishResponse, RtmError, StreamPosition, SubscribeOptions,
};

use conn::{Bus, Ended, Request};
use futures_util::stream::{self, BoxStream};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, Weak};
use switchboard_protocol::pb::{self, client_message, server_message};
use switchboard_protocol::{names, now_ms};
use tokio::sync::{broadcast, mpsc, oneshot};

/// A stream of items, or `Lagged` when the consumer fell behind.
pub type EventStream<T> = BoxStream<'static, Result<T, Lagged>>;

struct State {
    link: LinkState,
    conn: Option<mpsc::Sender<Request>>,
    generation: u64,
    subscriptions: BTreeSet<String>,
}

struct Inner {
    app_id: String,
    user_id: String,
    config: ClientConfig,
    bus: broadcast::Sender<Bus>,
    state: Mutex<State>,
}

/// The client (`RTMClient`). Clones share one session.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

/// A message channel subscription: its streams end on `unsubscribe` or logout.
pub struct Subscription {
    channel: String,
    rx: Option<broadcast::Receiver<Bus>>,
    bus: broadcast::Sender<Bus>,
}

enum Filter<T> {
    Yield(T),
    Skip,
    End,
}

/// A stream over the bus that keeps what `f` yields.
fn filtered<T, F>(rx: broadcast::Receiver<Bus>, f: F) -> EventStream<T>
where
    T: Send + 'static,
    F: FnMut(Bus) -> Filter<T> + Send + 'static,
{
    Box::pin(stream::unfold((rx, f), |(mut rx, mut f)| async move {
        loop {
            match rx.recv().await {
                Ok(bus) => match f(bus) {
                    Filter::Yield(t) => return Some((Ok(t), (rx, f))),
                    Filter::Skip => continue,
                    Filter::End => return None,
                },
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    return Some((Err(Lagged(n)), (rx, f)));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }))
}

impl Subscription {
    /// The channel's name.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Messages of this channel, from the moment of the subscribe request on (the first
    /// call) or from now (later calls). Ends on unsubscribe or logout.
    pub fn messages(&mut self) -> EventStream<MessageEvent> {
        let rx = self.rx.take().unwrap_or_else(|| self.bus.subscribe());
        let name = self.channel.clone();
        filtered(rx, move |bus| match bus {
            Bus::Event(Event::Message(m))
                if m.channel_type == ChannelType::Message && m.channel_name == name =>
            {
                Filter::Yield(m)
            }
            Bus::SubscriptionEnded(c) if c == name => Filter::End,
            Bus::SessionEnded => Filter::End,
            _ => Filter::Skip,
        })
    }
}

fn timeout_code(op: &str) -> ErrorCode {
    match op {
        "publish" => ErrorCode::ChannelPublishMessageTimeout,
        "subscribe" => ErrorCode::ChannelSubscribeTimeout,
        "renewToken" => ErrorCode::RenewTokenTimeout,
        "login" => ErrorCode::LoginTimeout,
        _ => ErrorCode::NotConnected,
    }
}

/// The link reason for a login refused with `code`.
fn login_failure_reason(code: i32) -> LinkReason {
    match ErrorCode::from_i32(code) {
        Some(ErrorCode::InvalidToken) => LinkReason::InvalidToken,
        Some(ErrorCode::TokenExpired) => LinkReason::TokenExpired,
        Some(ErrorCode::InconsistentAppid) => LinkReason::InconsistentAppId,
        Some(ErrorCode::InvalidUserId) => LinkReason::InvalidUserId,
        Some(ErrorCode::LoginNotAuthorized) => LinkReason::LoginNotAuthorized,
        _ => LinkReason::LoginRejected,
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves the login link to `to` and emits the event (under the state lock, so
    /// events are in transition order).
    fn transition(&self, st: &mut State, to: LinkState, op: LinkOperation, reason: LinkReason) {
        self.transition_with(st, to, op, reason, None);
    }

    /// [`Inner::transition`] with the server's own words added to the reason.
    fn transition_with(
        &self,
        st: &mut State,
        to: LinkState,
        op: LinkOperation,
        reason: LinkReason,
        detail: Option<String>,
    ) {
        let event = LinkStateEvent {
            current_state: to,
            previous_state: st.link,
            service_type: "MESSAGE",
            operation: op,
            reason_code: reason,
            reason: match detail {
                Some(d) => format!("{}: {d}", reason.description()),
                None => reason.description().to_string(),
            },
            affected_channels: st.subscriptions.iter().cloned().collect(),
            unrestored_channels: Vec::new(),
            is_resumed: false,
            timestamp: now_ms(),
        };
        st.link = to;
        let _ = self.bus.send(Bus::Event(Event::LinkState(event)));
    }

    /// The connection of `generation` ended: report it unless logout already did.
    fn on_ended(&self, generation: u64, ended: Ended) {
        let mut st = self.lock();
        if st.generation != generation || st.conn.is_none() {
            return;
        }
        st.conn = None;
        let mut detail = None;
        let (to, op, reason) = match ended {
            Ended::Closed(code, why) => {
                detail = Some(why);
                if code.reconnect() {
                    (
                        LinkState::Disconnected,
                        LinkOperation::HeartbeatTimeout,
                        code.info().link_reason,
                    )
                } else {
                    (
                        LinkState::Failed,
                        LinkOperation::ServerReject,
                        code.info().link_reason,
                    )
                }
            }
            Ended::KeepAliveTimeout | Ended::ConnectionLost => (
                LinkState::Disconnected,
                LinkOperation::HeartbeatTimeout,
                LinkReason::KeepAliveTimeout,
            ),
            Ended::ByClient => return,
        };
        self.transition_with(&mut st, to, op, reason, detail);
        if to == LinkState::Failed {
            st.subscriptions.clear();
            let _ = self.bus.send(Bus::SessionEnded);
        }
    }
}

impl Client {
    /// Creates a client; no network I/O. Fails with −10003 for a bad app id (R1) and
    /// −10006 for a bad user id (R6).
    pub fn new(app_id: &str, user_id: &str, config: ClientConfig) -> Result<Client, RtmError> {
        names::validate_app_id(app_id).map_err(|e| RtmError::new(e.code, "new", e.reason))?;
        names::validate_user_id(user_id, names::NameRules::default())
            .map_err(|e| RtmError::new(e.code, "new", e.reason))?;
        let (bus, _) = broadcast::channel(config.event_capacity.max(16));
        Ok(Client {
            inner: Arc::new(Inner {
                app_id: app_id.to_string(),
                user_id: user_id.to_string(),
                config,
                bus,
                state: Mutex::new(State {
                    link: LinkState::Idle,
                    conn: None,
                    generation: 0,
                    subscriptions: BTreeSet::new(),
                }),
            }),
        })
    }

    /// The user id.
    pub fn user_id(&self) -> &str {
        &self.inner.user_id
    }

    /// The current link state.
    pub fn link_state(&self) -> LinkState {
        self.inner.lock().link
    }

    /// Every event, in arrival order (api.md §14.2 `events()`); survives logout.
    pub fn events(&self) -> EventStream<Event> {
        filtered(self.inner.bus.subscribe(), |bus| match bus {
            Bus::Event(e) => Filter::Yield(e),
            _ => Filter::Skip,
        })
    }

    /// Link state changes.
    pub fn link_state_events(&self) -> EventStream<LinkStateEvent> {
        filtered(self.inner.bus.subscribe(), |bus| match bus {
            Bus::Event(Event::LinkState(e)) => Filter::Yield(e),
            _ => Filter::Skip,
        })
    }

    /// Will-expire notices: `None` for the login token, else a stream channel name.
    pub fn token_events(&self) -> EventStream<Option<String>> {
        filtered(self.inner.bus.subscribe(), |bus| match bus {
            Bus::Event(Event::TokenPrivilegeWillExpire(c)) => Filter::Yield(c),
            _ => Filter::Skip,
        })
    }

    /// Messages sent to this user (USER channel). Ends at logout or kick.
    pub fn user_messages(&self) -> EventStream<MessageEvent> {
        filtered(self.inner.bus.subscribe(), |bus| match bus {
            Bus::Event(Event::Message(m)) if m.channel_type == ChannelType::User => {
                Filter::Yield(m)
            }
            Bus::SessionEnded => Filter::End,
            _ => Filter::Skip,
        })
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
            match st.link {
                LinkState::Connecting | LinkState::Connected => {
                    return Err(RtmError::new(
                        ErrorCode::DuplicateOperation,
                        "login",
                        "already logged in or logging in (R30)",
                    ));
                }
                LinkState::Idle | LinkState::Failed => inner.transition(
                    &mut st,
                    LinkState::Connecting,
                    LinkOperation::Login,
                    LinkReason::Login,
                ),
                LinkState::Disconnected | LinkState::Suspended => inner.transition(
                    &mut st,
                    LinkState::Connecting,
                    LinkOperation::Login,
                    LinkReason::Relogin,
                ),
            }
            st.generation += 1;
            st.generation
        };
        let deadline = tokio::time::Instant::now() + inner.config.login_timeout;
        let connect = tokio::time::timeout_at(
            deadline,
            tokio_tungstenite::connect_async(inner.config.url()),
        )
        .await;
        let ws = match connect {
            Ok(Ok((ws, _))) => ws,
            Ok(Err(e)) => {
                return Err(self.login_failed_locally(
                    ErrorCode::LoginAborted,
                    format!("cannot connect: {e}"),
                ));
            }
            Err(_) => {
                return Err(self.login_failed_locally(
                    ErrorCode::LoginTimeout,
                    "no answer within the login timeout (R27)",
                ));
            }
        };
        let (tx, rx) = mpsc::channel(1024);
        let heartbeat =
            std::time::Duration::from_secs(u64::from(inner.config.heartbeat_interval.max(1)));
        let weak: Weak<Inner> = Arc::downgrade(inner);
        let bus = inner.bus.clone();
        tokio::spawn(async move {
            let ended = conn::run(ws, rx, bus, heartbeat).await;
            if let Some(inner) = weak.upgrade() {
                inner.on_ended(generation, ended);
            }
        });
        let (reply_tx, reply_rx) = oneshot::channel();
        let login = pb::LoginRequest {
            app_id: inner.app_id.clone(),
            user_id: inner.user_id.clone(),
            token,
            heartbeat_interval: inner.config.heartbeat_interval,
            presence_timeout: inner.config.presence_timeout,
            sdk: concat!("switchboard-rust/", env!("CARGO_PKG_VERSION")).to_string(),
            ..Default::default()
        };
        let req = Request {
            body: client_message::Body::Login(login),
            op: "login",
            reply: Some(reply_tx),
        };
        if tx.send(req).await.is_err() {
            return Err(self
                .login_failed_locally(ErrorCode::LoginAborted, "connection closed during login"));
        }
        let reply = match tokio::time::timeout_at(deadline, reply_rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(RtmError::new(
                ErrorCode::LoginAborted,
                "login",
                "connection closed during login",
            )),
            Err(_) => Err(RtmError::new(
                ErrorCode::LoginTimeout,
                "login",
                "no answer within the login timeout (R27)",
            )),
        };
        let mut st = inner.lock();
        if st.generation != generation {
            return Err(RtmError::new(
                ErrorCode::LoginCanceled,
                "login",
                "logout during login (R34)",
            ));
        }
        match reply {
            Ok(server_message::Body::Login(r)) => {
                st.conn = Some(tx);
                inner.transition(
                    &mut st,
                    LinkState::Connected,
                    LinkOperation::Login,
                    LinkReason::LoginSuccess,
                );
                Ok(LoginResponse {
                    timestamp: r.timestamp,
                    session_id: r.session_id,
                    heartbeat_interval: r.heartbeat_interval,
                    presence_timeout: r.presence_timeout,
                })
            }
            Ok(_) => Err(RtmError::new(
                ErrorCode::LoginAborted,
                "login",
                "unexpected reply to login",
            )),
            Err(e) => {
                let (to, op, reason) = if e.code == ErrorCode::LoginTimeout.as_i32() {
                    (
                        LinkState::Disconnected,
                        LinkOperation::ServerTimeout,
                        LinkReason::LoginTimeout,
                    )
                } else {
                    (
                        LinkState::Failed,
                        LinkOperation::ServerReject,
                        login_failure_reason(e.code),
                    )
                };
                inner.transition(&mut st, to, op, reason);
                Err(e)
            }
        }
    }

    fn login_failed_locally(&self, code: ErrorCode, reason: impl Into<String>) -> RtmError {
        let mut st = self.inner.lock();
        let reason_code = if code == ErrorCode::LoginTimeout {
            LinkReason::LoginTimeout
        } else {
            LinkReason::ConnectionError
        };
        self.inner.transition(
            &mut st,
            LinkState::Disconnected,
            LinkOperation::ServerTimeout,
            reason_code,
        );
        RtmError::new(code, "login", reason)
    }

    /// Logs out (api.md §3.2): leaves everything; the link becomes IDLE (R32).
    pub async fn logout(&self) -> Result<(), RtmError> {
        let conn = {
            let mut st = self.inner.lock();
            if st.link == LinkState::Idle {
                return Ok(());
            }
            // From here the connection's end is logout's to report (R32), not a failure.
            st.generation += 1;
            st.conn.take()
        };
        if let Some(conn) = conn {
            let (tx, rx) = oneshot::channel();
            let req = Request {
                body: client_message::Body::Logout(pb::LogoutRequest {}),
                op: "logout",
                reply: Some(tx),
            };
            if conn.send(req).await.is_ok() {
                let _ = tokio::time::timeout(self.inner.config.request_timeout, rx).await;
            }
        }
        let mut st = self.inner.lock();
        self.inner.transition(
            &mut st,
            LinkState::Idle,
            LinkOperation::Logout,
            LinkReason::Logout,
        );
        st.subscriptions.clear();
        let _ = self.inner.bus.send(Bus::SessionEnded);
        Ok(())
    }

    /// Sends one request and waits for its reply.
    async fn request(
        &self,
        op: &'static str,
        body: client_message::Body,
    ) -> Result<server_message::Body, RtmError> {
        let conn = {
            let st = self.inner.lock();
            match (&st.conn, st.link) {
                (Some(c), LinkState::Connected) => c.clone(),
                _ => {
                    return Err(RtmError::new(
                        ErrorCode::NotLogin,
                        op,
                        "not logged in (R24)",
                    ));
                }
            }
        };
        let (tx, rx) = oneshot::channel();
        let req = Request {
            body,
            op,
            reply: Some(tx),
        };
        if conn.send(req).await.is_err() {
            return Err(RtmError::new(
                ErrorCode::NotConnected,
                op,
                "connection closed",
            ));
        }
        match tokio::time::timeout(self.inner.config.request_timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(RtmError::new(
                ErrorCode::NotConnected,
                op,
                "connection closed",
            )),
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
            _ => Err(RtmError::new(
                ErrorCode::Internal,
                "publish",
                "unexpected reply",
            )),
        }
    }

    /// Subscribes to a message channel (api.md §3.4). The returned subscription's
    /// `messages()` sees everything delivered after this call.
    pub async fn subscribe(
        &self,
        channel: &str,
        options: SubscribeOptions,
    ) -> Result<Subscription, RtmError> {
        let rx = self.inner.bus.subscribe();
        let req = pb::SubscribeRequest {
            channel_name: channel.to_string(),
            with_message: Some(options.with_message),
            with_presence: Some(options.with_presence),
            be_quiet: Some(options.be_quiet),
            with_metadata: Some(options.with_metadata),
            with_lock: Some(options.with_lock),
            since: None,
        };
        match self
            .request("subscribe", client_message::Body::Subscribe(req))
            .await?
        {
            server_message::Body::Subscribe(_) => {
                self.inner.lock().subscriptions.insert(channel.to_string());
                Ok(Subscription {
                    channel: channel.to_string(),
                    rx: Some(rx),
                    bus: self.inner.bus.clone(),
                })
            }
            _ => Err(RtmError::new(
                ErrorCode::Internal,
                "subscribe",
                "unexpected reply",
            )),
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
        let _ = self
            .inner
            .bus
            .send(Bus::SubscriptionEnded(channel.to_string()));
        Ok(())
    }

    /// Replaces the login token (api.md §3.7); on failure the old one stays (R41).
    pub async fn renew_token(&self, token: &str) -> Result<(), RtmError> {
        let req = pb::RenewTokenRequest {
            token: token.to_string(),
            channel_name: String::new(),
        };
        self.request("renewToken", client_message::Body::RenewToken(req))
            .await?;
        Ok(())
    }
}
