//! The client's shared state and its link state machine (api.md §11): establishing a
//! connection (login or resume), noticing its loss, reconnecting with full-jitter
//! backoff (DISCONNECTED → CONNECTING → … → SUSPENDED after `suspend_after`), resuming
//! the server session, or — when it is gone — starting a new one and re-subscribing
//! every channel and rejoining every stream channel (with its topic roles and followed
//! publishers) from its last position, so the app misses nothing it can be given, and
//! subscribing again to the user metadata it was subscribed to.

use crate::conn::{self, Ended, Positions, Request};
use crate::router::Router;
use crate::stream::{self, SharedChannel};
use crate::types::{
    ChannelType, ClientConfig, Event, LinkStateEvent, RtmError, StreamPosition, SubscribeOptions,
};
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use switchboard_protocol::pb::{self, client_message, server_message};
use switchboard_protocol::{ErrorCode, LinkOperation, LinkReason, LinkState, now_ms};
use tokio::sync::{mpsc, oneshot};

/// Mutable state of the client.
pub(crate) struct State {
    pub link: LinkState,
    /// The live connection: its number and request queue.
    pub conn: Option<(u64, mpsc::Sender<Request>)>,
    /// Bumped by login and logout: cancels whatever an older login started.
    pub generation: u64,
    next_conn: u64,
    /// Subscribed channels and their options, restored after a reconnect.
    pub subscriptions: BTreeMap<String, SubscribeOptions>,
    /// Users whose metadata is subscribed to (`subscribe_user_metadata`), restored
    /// into a new session.
    pub user_metadata: BTreeSet<String>,
    /// The server session to resume.
    pub session_id: Option<String>,
    /// The latest login token (renewals replace it).
    pub token: String,
    /// Stream channels by name, one shared state each (R88); never removed.
    pub streams: BTreeMap<String, SharedChannel>,
    /// Operation and reason of the login link's latest change.
    last_change: (LinkOperation, LinkReason),
}

/// Shared part of every `Client` handle.
pub(crate) struct Inner {
    pub app_id: String,
    pub user_id: String,
    pub config: ClientConfig,
    pub router: Arc<Router>,
    pub positions: Positions,
    state: Mutex<State>,
}

/// A connection that logged in.
pub(crate) struct Established {
    pub conn: mpsc::Sender<Request>,
    pub conn_id: u64,
    pub reply: pb::LoginReply,
}

/// The link reason for a login refused with `code`.
pub(crate) fn login_failure_reason(code: i32) -> LinkReason {
    match ErrorCode::from_i32(code) {
        Some(ErrorCode::InvalidToken) => LinkReason::InvalidToken,
        Some(ErrorCode::TokenExpired) => LinkReason::TokenExpired,
        Some(ErrorCode::InconsistentAppid) => LinkReason::InconsistentAppId,
        Some(ErrorCode::InvalidUserId) => LinkReason::InvalidUserId,
        Some(ErrorCode::LoginNotAuthorized) => LinkReason::LoginNotAuthorized,
        Some(ErrorCode::SessionReplaced) => LinkReason::SameUidLogin,
        _ => LinkReason::LoginRejected,
    }
}

/// Whether a login failure is worth retrying (network, timeouts) rather than final
/// (credentials refused).
fn retryable(e: &RtmError) -> bool {
    matches!(
        ErrorCode::from_i32(e.code),
        Some(
            ErrorCode::LoginTimeout
                | ErrorCode::LoginAborted
                | ErrorCode::NotConnected
                | ErrorCode::Overloaded
                | ErrorCode::EngineUnavailable
                | ErrorCode::Internal
                | ErrorCode::SessionNotFound
        )
    )
}

/// One extra field set of a link state event.
#[derive(Default)]
pub(crate) struct Detail {
    pub text: Option<String>,
    pub unrestored: Vec<String>,
    pub gaps: Vec<String>,
    pub resumed: bool,
}

impl Inner {
    /// New shared state.
    pub fn new(app_id: &str, user_id: &str, config: ClientConfig) -> Inner {
        let router = Arc::new(Router::new(config.event_capacity));
        Inner {
            app_id: app_id.to_string(),
            user_id: user_id.to_string(),
            config,
            router,
            positions: Positions::default(),
            state: Mutex::new(State {
                link: LinkState::Idle,
                conn: None,
                generation: 0,
                next_conn: 0,
                subscriptions: BTreeMap::new(),
                user_metadata: BTreeSet::new(),
                session_id: None,
                token: String::new(),
                streams: BTreeMap::new(),
                last_change: (LinkOperation::Login, LinkReason::Login),
            }),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves the login link to `to` and emits the event (under the state lock, so
    /// events are in transition order).
    pub fn transition(
        &self,
        st: &mut State,
        to: LinkState,
        op: LinkOperation,
        reason: LinkReason,
        detail: Detail,
    ) {
        let event = LinkStateEvent {
            current_state: to,
            previous_state: st.link,
            service_type: "MESSAGE",
            operation: op,
            reason_code: reason,
            reason: match detail.text {
                Some(d) => format!("{}: {d}", reason.description()),
                None => reason.description().to_string(),
            },
            affected_channels: st.subscriptions.keys().cloned().collect(),
            unrestored_channels: detail.unrestored,
            gap_channels: detail.gaps,
            is_resumed: detail.resumed,
            timestamp: now_ms(),
        };
        st.link = to;
        st.last_change = (op, reason);
        self.router.notify(Event::LinkState(event));
    }

    /// Ends every per-session stream and forgets the session (logout, FAILED): stream
    /// channels are reset, their links going IDLE after a logout and FAILED (with the
    /// login link's reason) otherwise.
    pub fn end_session(&self, st: &mut State) {
        st.subscriptions.clear();
        st.user_metadata.clear();
        st.session_id = None;
        st.conn = None;
        let (to, (op, reason)) = if st.link == LinkState::Idle {
            (LinkState::Idle, (LinkOperation::Logout, LinkReason::Logout))
        } else {
            (LinkState::Failed, st.last_change)
        };
        for (name, shared) in &st.streams {
            let mut ch = stream::lock(shared);
            if ch.link != LinkState::Idle {
                self.reset_channel(name, &mut ch, to, op, reason, None);
            }
        }
        self.positions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.router.end_session();
    }

    /// The stream channels joined now, with their states.
    fn joined_streams(&self, only: Option<&[String]>) -> Vec<(String, SharedChannel)> {
        self.lock()
            .streams
            .iter()
            .filter(|(name, _)| only.is_none_or(|names| names.contains(name)))
            .filter(|(_, shared)| stream::lock(shared).link == LinkState::Connected)
            .map(|(name, shared)| (name.clone(), shared.clone()))
            .collect()
    }

    /// The resume part of a login: session id and last positions (of stream channels
    /// only those joined).
    fn resume_fields(&self) -> (String, Vec<pb::ChannelPosition>) {
        let session_id = self.lock().session_id.clone().unwrap_or_default();
        let joined: Vec<String> = self
            .joined_streams(None)
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        let positions = self
            .positions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|((ty, name), _)| *ty != ChannelType::Stream || joined.contains(name))
            .map(|((ty, name), p)| pb::ChannelPosition {
                channel_type: match ty {
                    ChannelType::Message => pb::ChannelType::Message,
                    ChannelType::Stream => pb::ChannelType::Stream,
                    ChannelType::User => pb::ChannelType::User,
                } as i32,
                channel_name: name.clone(),
                topic_name: String::new(),
                position: Some(pb::StreamPosition {
                    epoch: p.epoch,
                    offset: p.offset,
                }),
            })
            .collect();
        (session_id, positions)
    }

    /// Connects and logs in (resuming when `resume`), within the login timeout.
    pub async fn establish(self: &Arc<Self>, resume: bool) -> Result<Established, RtmError> {
        let deadline = tokio::time::Instant::now() + self.config.login_timeout;
        let timeout_error = || {
            RtmError::new(
                ErrorCode::LoginTimeout,
                "login",
                "no answer within the login timeout (R27)",
            )
        };
        let connect = tokio::time::timeout_at(
            deadline,
            tokio_tungstenite::connect_async_with_config(
                self.config.url(),
                Some(crate::ws_config()),
                true,
            ),
        )
        .await;
        let ws = match connect {
            Ok(Ok((ws, _))) => ws,
            Ok(Err(e)) => {
                return Err(RtmError::new(
                    ErrorCode::LoginAborted,
                    "login",
                    format!("cannot connect: {e}"),
                ));
            }
            Err(_) => return Err(timeout_error()),
        };
        let (tx, rx) = mpsc::channel(1024);
        let conn_id = {
            let mut st = self.lock();
            st.next_conn += 1;
            st.next_conn
        };
        let heartbeat = Duration::from_secs(u64::from(self.config.heartbeat_interval.max(1)));
        let weak: Weak<Inner> = Arc::downgrade(self);
        let (router, positions, user) = (
            self.router.clone(),
            self.positions.clone(),
            self.user_id.clone(),
        );
        let left = weak.clone();
        let on_channel_left: conn::OnChannelLeft = Box::new(move |c| {
            if let Some(inner) = left.upgrade() {
                inner.channel_left(c);
            }
        });
        tokio::spawn(async move {
            let ended =
                conn::run(ws, rx, router, heartbeat, positions, user, on_channel_left).await;
            if let Some(inner) = weak.upgrade() {
                inner.on_ended(conn_id, ended);
            }
        });
        let (session_id, positions) = if resume {
            self.resume_fields()
        } else {
            Default::default()
        };
        let token = self.lock().token.clone();
        let login = pb::LoginRequest {
            app_id: self.app_id.clone(),
            user_id: self.user_id.clone(),
            token,
            heartbeat_interval: self.config.heartbeat_interval,
            presence_timeout: self.config.presence_timeout,
            session_id,
            positions,
            sdk: concat!("switchboard-rust/", env!("CARGO_PKG_VERSION")).to_string(),
        };
        let reply = tokio::time::timeout_at(
            deadline,
            call(&tx, "login", client_message::Body::Login(login)),
        )
        .await
        .map_err(|_| timeout_error())??;
        match reply {
            server_message::Body::Login(reply) => Ok(Established {
                conn: tx,
                conn_id,
                reply,
            }),
            _ => Err(RtmError::new(
                ErrorCode::LoginAborted,
                "login",
                "unexpected reply to login",
            )),
        }
    }

    /// Makes `est` the live connection and remembers its session.
    pub fn adopt(&self, st: &mut State, est: &Established) {
        st.conn = Some((est.conn_id, est.conn.clone()));
        st.session_id = Some(est.reply.session_id.clone());
        if let Some(p) = &est.reply.user_position {
            let pos = StreamPosition {
                epoch: p.epoch,
                offset: p.offset,
            };
            conn::baseline(
                &self.positions,
                (ChannelType::User, self.user_id.clone()),
                pos,
            );
        }
    }

    /// A connection that ended between its login reply and becoming the live one was
    /// ignored by [`Inner::on_ended`]; report it now (and reconnect).
    pub fn lost_before_adopted(self: &Arc<Self>, est: &Established) {
        if est.conn.is_closed() {
            self.on_ended(est.conn_id, Ended::ConnectionLost);
        }
    }

    /// Connection `conn_id` ended: report it and reconnect unless it was final.
    pub fn on_ended(self: &Arc<Self>, conn_id: u64, ended: Ended) {
        let mut st = self.lock();
        if st.conn.as_ref().map(|(id, _)| *id) != Some(conn_id) {
            return;
        }
        st.conn = None;
        let mut detail = Detail::default();
        let (again, reason) = match ended {
            Ended::Closed(code, why) => {
                detail.text = Some(why);
                (code.reconnect(), code.info().link_reason)
            }
            Ended::KeepAliveTimeout | Ended::ConnectionLost => (true, LinkReason::KeepAliveTimeout),
            Ended::ByClient => return,
        };
        if !again {
            self.transition(
                &mut st,
                LinkState::Failed,
                LinkOperation::ServerReject,
                reason,
                detail,
            );
            self.end_session(&mut st);
            return;
        }
        // R47: CONNECTED → DISCONNECTED, operation HEARTBEAT_TIMEOUT.
        self.transition(
            &mut st,
            LinkState::Disconnected,
            LinkOperation::HeartbeatTimeout,
            reason,
            detail,
        );
        let generation = st.generation;
        drop(st);
        tokio::spawn(reconnect(Arc::downgrade(self), generation));
    }

    /// A reconnect attempt failed: DISCONNECTED, or SUSPENDED once reconnecting has
    /// lasted `suspend_after` (R49, R50).
    fn retry_transition(&self, generation: u64, started: tokio::time::Instant) {
        let mut st = self.lock();
        if st.generation != generation {
            return;
        }
        let (to, op) = if started.elapsed() >= self.config.suspend_after {
            (LinkState::Suspended, LinkOperation::AutoReconnect)
        } else {
            (LinkState::Disconnected, LinkOperation::ServerTimeout)
        };
        self.transition(
            &mut st,
            to,
            op,
            LinkReason::ReconnectTimeout,
            Detail::default(),
        );
    }

    /// Full-jitter backoff for attempt `n` (0-based).
    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.config.reconnect_base_delay.as_millis() as u64;
        let cap = self.config.reconnect_max_delay.as_millis() as u64;
        let ceiling = base.saturating_mul(1u64 << attempt.min(20)).min(cap).max(1);
        Duration::from_millis(rand::rng().random_range(0..=ceiling))
    }

    /// Restores the subscriptions of a session that could not be resumed, each from its
    /// last position: returns (unrestored, gaps).
    async fn resubscribe(
        &self,
        conn: &mpsc::Sender<Request>,
        only: Option<&[String]>,
    ) -> (Vec<String>, Vec<String>) {
        let subs: Vec<(String, SubscribeOptions)> = self
            .lock()
            .subscriptions
            .iter()
            .filter(|(k, _)| only.is_none_or(|names| names.contains(k)))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let (mut unrestored, mut gaps) = (Vec::new(), Vec::new());
        for (name, o) in subs {
            let since = self
                .positions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&(ChannelType::Message, name.clone()))
                .map(|p| pb::StreamPosition {
                    epoch: p.epoch,
                    offset: p.offset,
                });
            let had_position = since.is_some();
            let req = pb::SubscribeRequest {
                channel_name: name.clone(),
                with_message: Some(o.with_message),
                with_presence: Some(o.with_presence),
                be_quiet: Some(o.be_quiet),
                with_metadata: Some(o.with_metadata),
                with_lock: Some(o.with_lock),
                since,
                state: Default::default(),
            };
            let reply = tokio::time::timeout(
                self.config.request_timeout,
                call(conn, "subscribe", client_message::Body::Subscribe(req)),
            )
            .await;
            match reply {
                Ok(Ok(server_message::Body::Subscribe(r))) => {
                    if r.gap || !had_position {
                        gaps.push(name);
                    }
                }
                _ => unrestored.push(name),
            }
        }
        (unrestored, gaps)
    }

    /// Rejoins the joined stream channels (all, or `only`) into a session that lacks
    /// them, each in one request with its token, options, topic roles, followed
    /// publishers and last position: returns (unrestored, gaps). A channel the server
    /// refuses fails (its link FAILED, its state reset); on a lost connection it is
    /// left as is, for the next attempt.
    async fn rejoin(
        &self,
        conn: &mpsc::Sender<Request>,
        only: Option<&[String]>,
    ) -> (Vec<String>, Vec<String>) {
        let (mut unrestored, mut gaps) = (Vec::new(), Vec::new());
        for (name, shared) in self.joined_streams(only) {
            let since = self
                .positions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&(ChannelType::Stream, name.clone()))
                .copied();
            let (req, epoch) = {
                let ch = stream::lock(&shared);
                (ch.rejoin_request(&name, since), ch.epoch)
            };
            let reply = tokio::time::timeout(
                self.config.request_timeout,
                call(conn, "join", client_message::Body::Join(req)),
            )
            .await;
            let mut ch = stream::lock(&shared);
            if ch.epoch != epoch || ch.link != LinkState::Connected {
                // Left, or logged out, meanwhile.
                continue;
            }
            let refusal = match reply {
                Ok(Ok(server_message::Body::Join(r))) => {
                    for f in &r.restore_failures {
                        tracing::warn!(
                            channel = %name, topic = %f.topic_name, user = %f.user,
                            code = f.error_code, reason = %f.reason,
                            "rejoin could not restore a topic role or subscription"
                        );
                        if !f.user.is_empty()
                            && f.error_code
                                != stream::SubscribedFailedReason::ALREADY_SUBSCRIBED_USER
                        {
                            if let Some(set) = ch.followed.get_mut(&f.topic_name) {
                                set.remove(&f.user);
                                if set.is_empty() {
                                    ch.followed.remove(&f.topic_name);
                                }
                            }
                        }
                    }
                    if r.gap || since.is_none() {
                        gaps.push(name);
                    }
                    continue;
                }
                Ok(Err(e)) if e.code == ErrorCode::NotConnected.as_i32() => {
                    unrestored.push(name);
                    continue;
                }
                Ok(Err(e)) => e,
                Ok(Ok(_)) => RtmError::new(ErrorCode::Internal, "join", "unexpected reply"),
                Err(_) => RtmError::new(
                    ErrorCode::ChannelJoinFailed,
                    "join",
                    "no reply to the rejoin within the request timeout",
                ),
            };
            tracing::warn!(channel = %name, code = refusal.code, reason = %refusal.reason, "rejoin refused");
            if refusal.code == ErrorCode::TokenExpired.as_i32() {
                self.router
                    .notify(Event::TokenPrivilegeWillExpire(Some(name.clone())));
            }
            self.reset_channel(
                &name,
                &mut ch,
                LinkState::Failed,
                LinkOperation::Join,
                stream::join_failure_reason(refusal.code),
                Some(refusal.reason),
            );
            unrestored.push(name);
        }
        (unrestored, gaps)
    }

    /// Subscribes again, in a new session, to the metadata of every user the old one
    /// was subscribed to (each then starts with a SNAPSHOT). A user the server refuses
    /// is forgotten (with a warning); on a lost connection the rest stay for the next
    /// attempt.
    async fn resubscribe_user_metadata(&self, conn: &mpsc::Sender<Request>) {
        let users: Vec<String> = self.lock().user_metadata.iter().cloned().collect();
        for user in users {
            let req = pb::SubscribeUserMetadataRequest {
                user_id: user.clone(),
            };
            let reply = tokio::time::timeout(
                self.config.request_timeout,
                call(
                    conn,
                    "subscribeUserMetadata",
                    client_message::Body::SubscribeUserMetadata(req),
                ),
            )
            .await;
            match reply {
                Ok(Ok(server_message::Body::SubscribeUserMetadata(_))) => {}
                Ok(Err(e)) if e.code == ErrorCode::NotConnected.as_i32() => return,
                Err(_) => {
                    tracing::warn!(user = %user, "no reply to re-subscribing user metadata");
                }
                Ok(Err(e)) => {
                    tracing::warn!(
                        user = %user, code = e.code, reason = %e.reason,
                        "re-subscribing user metadata refused"
                    );
                    self.lock().user_metadata.remove(&user);
                }
                Ok(Ok(_)) => {
                    tracing::warn!(user = %user, "unexpected reply to re-subscribing user metadata");
                }
            }
        }
    }

    /// Restores what a reconnect's session lacks — every channel (`None`, a new
    /// session) or the listed ones — message channels and stream channels alike:
    /// returns (unrestored, gaps), each name once.
    async fn restore(
        &self,
        conn: &mpsc::Sender<Request>,
        only: Option<&[String]>,
    ) -> (Vec<String>, Vec<String>) {
        let (mut unrestored, mut gaps) = self.resubscribe(conn, only).await;
        let (u, g) = self.rejoin(conn, only).await;
        unrestored.extend(u);
        gaps.extend(g);
        for list in [&mut unrestored, &mut gaps] {
            list.sort();
            list.dedup();
        }
        (unrestored, gaps)
    }
}

/// Sends one request on `conn` and waits for its reply (no timeout of its own).
pub(crate) async fn call(
    conn: &mpsc::Sender<Request>,
    op: &'static str,
    body: client_message::Body,
) -> Result<server_message::Body, RtmError> {
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
    rx.await.unwrap_or_else(|_| {
        Err(RtmError::new(
            ErrorCode::NotConnected,
            op,
            "connection closed",
        ))
    })
}

/// Reconnects until it succeeds, the link fails, or a logout (or new login) cancels it.
async fn reconnect(weak: Weak<Inner>, generation: u64) {
    let started = tokio::time::Instant::now();
    let mut attempt = 0u32;
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let delay = inner.backoff(attempt);
        drop(inner);
        tokio::time::sleep(delay).await;
        let Some(inner) = weak.upgrade() else { return };
        {
            let mut st = inner.lock();
            if st.generation != generation {
                return;
            }
            inner.transition(
                &mut st,
                LinkState::Connecting,
                LinkOperation::AutoReconnect,
                LinkReason::AutoReconnect,
                Detail::default(),
            );
        }
        let result = inner.establish(true).await;
        match result {
            Ok(est) => {
                let resumed = est.reply.resumed;
                let (unrestored, gaps) = if resumed {
                    // Channels the resumed session lacked (message or stream) are
                    // re-subscribed or rejoined here.
                    let lacking = est.reply.unrestored_channels.clone();
                    let (unrestored, mut gaps) = if lacking.is_empty() {
                        (Vec::new(), Vec::new())
                    } else {
                        inner.restore(&est.conn, Some(&lacking)).await
                    };
                    gaps.extend(est.reply.gap_channels.iter().cloned());
                    (unrestored, gaps)
                } else {
                    // A new session: every message channel is re-subscribed and every
                    // stream channel rejoined from its last position, and every user
                    // metadata subscription made again, on this connection, before it
                    // becomes the live one (so that its loss meanwhile is just a failed
                    // attempt).
                    let (unrestored, mut gaps) = inner.restore(&est.conn, None).await;
                    inner.resubscribe_user_metadata(&est.conn).await;
                    gaps.extend(est.reply.gap_channels.iter().cloned());
                    (unrestored, gaps)
                };
                let mut st = inner.lock();
                if st.generation != generation {
                    return;
                }
                if est.conn.is_closed() {
                    // Lost before it became the live connection: try again.
                    drop(st);
                    inner.retry_transition(generation, started);
                    attempt = attempt.saturating_add(1);
                    continue;
                }
                inner.adopt(&mut st, &est);
                let detail = Detail {
                    unrestored,
                    gaps,
                    resumed,
                    ..Default::default()
                };
                inner.transition(
                    &mut st,
                    LinkState::Connected,
                    LinkOperation::Reconnected,
                    LinkReason::ReconnectSuccess,
                    detail,
                );
                drop(st);
                inner.lost_before_adopted(&est);
                return;
            }
            Err(e) if !retryable(&e) => {
                let mut st = inner.lock();
                if st.generation != generation {
                    return;
                }
                if e.code == ErrorCode::TokenExpired.as_i32() {
                    // R44: reported as an event; the link keeps trying (with the token
                    // the app renews meanwhile).
                    inner.router.notify(Event::TokenPrivilegeWillExpire(None));
                } else {
                    let detail = Detail {
                        text: Some(e.reason.clone()),
                        ..Default::default()
                    };
                    inner.transition(
                        &mut st,
                        LinkState::Failed,
                        LinkOperation::ServerReject,
                        login_failure_reason(e.code),
                        detail,
                    );
                    inner.end_session(&mut st);
                    return;
                }
            }
            Err(_) => {}
        }
        inner.retry_transition(generation, started);
        attempt = attempt.saturating_add(1);
    }
}
