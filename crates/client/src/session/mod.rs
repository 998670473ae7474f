//! The client's shared state and its link state machine (api.md §11), below the client
//! handle and every feature: establishing a connection (login or resume), noticing its
//! loss (here), reconnecting with full-jitter
//! backoff (DISCONNECTED → CONNECTING → … → SUSPENDED after `suspend_after`), resuming
//! the server session, or — when it is gone — starting a new one and re-subscribing
//! every channel and rejoining every stream channel (with its topic roles and followed
//! publishers) from its last position, so the app misses nothing it can be given, and
//! subscribing again to the user metadata it was subscribed to.
//!
//! Submodules: `restore` (the reconnect loop and what it restores), `channels` (each
//! stream channel's state, which a rejoin replays and the stream channel handle edits).

mod channels;
mod restore;

pub(crate) use channels::{
    ChannelState, SharedChannel, join_failure_reason, join_request, join_topic_request,
    lock_channel, new_channel,
};

use crate::conn::{self, Ended, Request};
use crate::crypto::Cipher;
use crate::positions::{Positions, baseline};
use crate::router::Router;
use crate::transport::{self, TlsConfig};
use crate::types::{
    ChannelType, ClientConfig, Event, LinkStateEvent, RtmError, StreamPosition, SubscribeOptions,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use switchboard_protocol::pb::{self, client_message, server_message};
use switchboard_protocol::{ErrorCode, LinkOperation, LinkReason, LinkState, now_ms};
use tokio::sync::{mpsc, oneshot};

/// How long after a network-change signal the dropped reconnect attempt is retried
/// (R51).
pub(crate) const NETWORK_CHANGE_RETRY: Duration = Duration::from_secs(2);

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
    /// Bumped on every change of the login link, so a request kept while reconnecting
    /// (R59) wakes up to try again.
    pub link_changed: tokio::sync::watch::Sender<u64>,
    /// Bumped by every network-change signal of the app (R51): a reconnect attempt in
    /// progress is dropped and retried after [`NETWORK_CHANGE_RETRY`].
    pub network_changed: tokio::sync::watch::Sender<u64>,
    pub positions: Positions,
    /// Seals and opens message payloads when end-to-end encryption is on.
    pub cipher: Option<Arc<Cipher>>,
    /// The roots a `wss://` server's certificate must chain to.
    pub tls: TlsConfig,
    /// This client's presence state per channel as last set (R54): a new session
    /// enters each channel with it again. Its own lock, never held with `state`'s.
    pub presence_states: Mutex<PresenceStates>,
    state: Mutex<State>,
}

/// Presence state by (channel type, channel name), key → value.
pub(crate) type PresenceStates =
    std::collections::HashMap<(ChannelType, String), BTreeMap<String, String>>;

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
        Some(ErrorCode::OperationRateExceedLimitation) => LinkReason::LoginTooFrequent,
        _ => LinkReason::LoginRejected,
    }
}

/// Whether a login failure is worth retrying (network, timeouts) rather than final
/// (credentials refused).
pub(crate) fn retryable(e: &RtmError) -> bool {
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

/// The token to send for `token` (token.md T61–T63): the app id when empty; a token of
/// another app is refused locally, failing `op`.
pub(crate) fn precheck_token(token: &str, app_id: &str, op: &str) -> Result<String, RtmError> {
    switchboard_token::client_precheck(token, app_id).map_err(|e| {
        let code = ErrorCode::from_i32(e.sdk_error_code()).unwrap_or(ErrorCode::InvalidToken);
        RtmError::new(code, op, format!("{}: {}", e.identifier(), e.description()))
    })
}

impl Inner {
    /// New shared state.
    pub fn new(
        app_id: &str,
        user_id: &str,
        config: ClientConfig,
        cipher: Option<Cipher>,
        tls: TlsConfig,
    ) -> Inner {
        let router = Arc::new(Router::new(config.event_capacity));
        Inner {
            app_id: app_id.to_string(),
            user_id: user_id.to_string(),
            config,
            router,
            link_changed: tokio::sync::watch::channel(0).0,
            network_changed: tokio::sync::watch::channel(0).0,
            positions: Positions::default(),
            cipher: cipher.map(Arc::new),
            tls,
            presence_states: Mutex::new(PresenceStates::new()),
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
        self.link_changed.send_modify(|n| *n = n.wrapping_add(1));
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
            let mut ch = lock_channel(shared);
            if ch.link != LinkState::Idle {
                self.reset_channel(name, &mut ch, to, op, reason, None);
            }
        }
        self.positions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.states().clear();
        self.router.end_session();
    }

    /// The remembered presence states (R54).
    pub fn states(&self) -> MutexGuard<'_, PresenceStates> {
        self.presence_states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The presence state remembered for a channel, as the wire's map (R54).
    pub fn state_of<M: FromIterator<(String, String)>>(&self, ty: ChannelType, name: &str) -> M {
        self.states()
            .get(&(ty, name.to_string()))
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_else(|| std::iter::empty().collect())
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
        let url = self.config.url();
        let connect = tokio::time::timeout_at(
            deadline,
            transport::connect(&url, &self.tls, conn::ws_config()),
        )
        .await;
        let ws = match connect {
            Ok(Ok(ws)) => ws,
            Ok(Err(e)) => return Err(e),
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
        let ctx = conn::Context {
            router,
            heartbeat,
            link_loss_timeout: self.config.link_loss_timeout.max(Duration::from_millis(4)),
            positions,
            user_id: user,
            on_channel_left,
            cipher: self.cipher.clone(),
        };
        tokio::spawn(async move {
            let (ended, unanswered) = conn::run(ws, rx, ctx).await;
            // The link event first, then the requests the connection took with it fail
            // (an app sees FAILED or DISCONNECTED before the −10025 of its calls).
            if let Some(inner) = weak.upgrade() {
                inner.on_ended(conn_id, ended.clone());
            }
            unanswered.fail(&ended);
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
            baseline(
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
            if reason == LinkReason::TokenExpired {
                // api.md §9.8: a session ended by its token's expiry also gets `token`.
                self.router.token_event(None, "The token expired");
            }
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
        tokio::spawn(restore::reconnect(Arc::downgrade(self), generation));
    }
}

impl Inner {
    /// The wire form of an outgoing payload for `op`: sealed when end-to-end encryption
    /// is on (the message type stays the plaintext's), else as it is. Fails with
    /// −11023 when it cannot be encrypted.
    pub(crate) fn seal(
        &self,
        op: &str,
        message: crate::types::Payload,
    ) -> Result<(pb::MessageType, bytes::Bytes), RtmError> {
        let (message_type, payload) = crate::decode::wire_payload(message);
        match &self.cipher {
            Some(c) => Ok((message_type, c.seal_payload(op, message_type, &payload)?)),
            None => Ok((message_type, payload)),
        }
    }

    /// An incoming stored payload as the app's (opened when end-to-end encryption is
    /// on): `None` when it does not decrypt.
    pub(crate) fn open_stored(
        &self,
        message_type: i32,
        payload: bytes::Bytes,
    ) -> Option<crate::types::Payload> {
        let plain = match &self.cipher {
            Some(c) => c.open_payload(message_type, &payload).ok()?,
            None => payload,
        };
        Some(crate::decode::app_payload(message_type, plain))
    }
}

/// Sends one request on `conn` and waits for its reply (no timeout of its own).
pub(crate) async fn call(
    conn: &mpsc::Sender<Request>,
    op: &'static str,
    body: client_message::Body,
) -> Result<server_message::Body, RtmError> {
    call_or_unsent(conn, op, body).await.unwrap_or_else(|| {
        Err(RtmError::new(
            ErrorCode::NotConnected,
            op,
            "connection closed",
        ))
    })
}

/// Like [`call`], but `None` when the request certainly never left: the connection
/// task was gone, or ended with the request still in its queue. A request it took and
/// then lost the connection over ends with −10025 "connection closed" (it may have
/// reached the server).
pub(crate) async fn call_or_unsent(
    conn: &mpsc::Sender<Request>,
    op: &'static str,
    body: client_message::Body,
) -> Option<Result<server_message::Body, RtmError>> {
    let (tx, rx) = oneshot::channel();
    let req = Request {
        body,
        op,
        reply: Some(tx),
    };
    conn.send(req).await.ok()?;
    rx.await.ok()
}
