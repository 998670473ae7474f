//! The client handle (`RTMClient`, api.md §3): creating it, logging in and out,
//! renewing the login token, the client-wide event streams, and the one request path
//! every feature handle sends through (with its per-operation timeout codes). The
//! feature handles (`messaging`, `stream`, `presence`, `storage`, `lock`, `history`)
//! sit above it and add their own `impl Client` entry points.

use crate::crypto::Cipher;
use crate::router::{
    EventStream, Extra, Route, extra_stream_of, message_of, presence_of, stream_of, topic_of,
};
use crate::session::{Detail, Inner, call, call_or_unsent, login_failure_reason, precheck_token};
use crate::transport;
use crate::types::{
    ClientConfig, ErrorEvent, Event, LinkStateEvent, LockEvent, LoginResponse, LogoutResponse,
    MessageEvent, PresenceEvent, RenewTokenResponse, RtmError, StorageEvent, TokenEvent,
    TopicEvent,
};
use std::sync::Arc;
use switchboard_protocol::pb::{self, client_message, server_message};
use switchboard_protocol::{ErrorCode, LinkOperation, LinkReason, LinkState, names, now_ms};

/// The client (`RTMClient`). Clones share one session.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
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

/// The canonical text of a numeric user id (R13: `useStringUserId: false`): the decimal
/// text of a non-negative integer, without leading zeros; anything else fails with
/// −10006.
fn numeric_user_id(user_id: &str) -> Result<String, RtmError> {
    if user_id.is_empty() || !user_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RtmError::new(
            ErrorCode::InvalidUserId,
            "new",
            format!(
                "with useStringUserId false the user id must be the decimal text of a \
                 non-negative integer, not {user_id:?} (R13)"
            ),
        ));
    }
    let canonical = user_id.trim_start_matches('0');
    Ok(if canonical.is_empty() { "0" } else { canonical }.to_string())
}

/// The clients of this process by app id and user id (R14), held weakly: a dropped
/// client is gone from it.
type LiveClients = std::collections::HashMap<(String, String), Vec<std::sync::Weak<Inner>>>;

static LIVE: std::sync::Mutex<Option<LiveClients>> = std::sync::Mutex::new(None);

/// Records `inner` among this process's clients; fails with −10027 when another one of
/// the same app id and user id is live (logged in or logging in), unless allowed (R14).
fn register_live(inner: &Arc<Inner>, allow_duplicate: bool) -> Result<(), RtmError> {
    let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let map = live.get_or_insert_with(Default::default);
    map.retain(|_, v| {
        v.retain(|w| w.strong_count() > 0);
        !v.is_empty()
    });
    let key = (inner.app_id.clone(), inner.user_id.clone());
    let others = map.entry(key).or_default();
    let busy = others
        .iter()
        .filter_map(|w| w.upgrade())
        .any(|o| !matches!(o.lock().link, LinkState::Idle | LinkState::Failed));
    if busy && !allow_duplicate {
        return Err(RtmError::new(
            ErrorCode::DuplicateUserId,
            "new",
            format!(
                "another live client in this process uses app id {} and user id {:?} (R14)",
                inner.app_id, inner.user_id
            ),
        ));
    }
    others.push(Arc::downgrade(inner));
    Ok(())
}

impl Client {
    /// Creates a client; no network I/O. Fails with −10003 for a bad app id (R1),
    /// −10006 for a bad user id (R6), −10020 for bad encryption settings (R19) and
    /// −10014 for a CA certificate that is not a PEM certificate.
    ///
    /// ```
    /// use switchboard_client::{Client, ClientConfig};
    /// let config = ClientConfig::new("ws://127.0.0.1:7400");
    /// let client = Client::new("a1b2c3d4e5f60718293a4b5c6d7e8f90", "alice", config)?;
    /// assert_eq!(client.user_id(), "alice");
    /// assert!(Client::new("not an app id", "alice", ClientConfig::new("ws://x")).is_err());
    /// # Ok::<(), switchboard_client::RtmError>(())
    /// ```
    /// With `use_string_user_id: false` the user id must be a decimal number (R13,
    /// else −10006) and is used by its canonical text (`"007"` → `"7"`). While another
    /// client of this process with the same app id and user id is logged in or logging
    /// in, fails with −10027 (R14; see `allow_duplicate_user_id`).
    pub fn new(app_id: &str, user_id: &str, config: ClientConfig) -> Result<Client, RtmError> {
        names::validate_app_id(app_id).map_err(|e| RtmError::new(e.code, "new", e.reason))?;
        let user_id = if config.use_string_user_id {
            user_id.to_string()
        } else {
            numeric_user_id(user_id)?
        };
        names::validate_user_id(&user_id, names::NameRules::default())
            .map_err(|e| RtmError::new(e.code, "new", e.reason))?;
        let cipher = Cipher::from_config(&config)?;
        let tls = transport::tls_config(&config.ca_certificates)?;
        let allow_duplicate = config.allow_duplicate_user_id;
        let inner = Arc::new(Inner::new(app_id, &user_id, config, cipher, tls));
        register_live(&inner, allow_duplicate)?;
        Ok(Client { inner })
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
    /// Messages are lossless: read it, or drop it.
    pub fn events(&self) -> EventStream<Event> {
        stream_of(self.inner.router.register(Route::All), Some)
    }

    /// Error events (Switchboard's `error` event, [`ErrorEvent`]): today the received
    /// messages that did not decrypt under this client's key, which are never delivered
    /// as messages. Like link states these never wait: a reader far behind gets
    /// `Lagged(n)`. Survives logout.
    pub fn error_events(&self) -> EventStream<ErrorEvent> {
        stream_of_errors(self.inner.router.register(Route::Errors))
    }

    /// `token` events ([`TokenEvent`], api.md §9.8, R38): WILL_EXPIRE beside every
    /// will-expire notice of [`Self::token_events`] (with the stream channel in
    /// `affected_resources` for an RTC token), and when the session ends because the
    /// login token expired. Never wait (`Lagged(n)` when far behind); survives logout.
    pub fn token_notices(&self) -> EventStream<TokenEvent> {
        extra_stream_of(
            self.inner.router.register(Route::TokenNotices),
            |e| match e {
                Extra::Token(t) => Some(t),
                Extra::Error(_) => None,
            },
        )
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
        stream_of(self.inner.router.register(Route::Topics), topic_of)
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

    /// Logs in (api.md §3.1). An empty token means "no token" (T61).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), switchboard_client::RtmError> {
    /// use switchboard_client::{Client, ClientConfig, LinkState};
    /// let client = Client::new("a1b2c3d4e5f60718293a4b5c6d7e8f90", "alice",
    ///     ClientConfig::new("ws://127.0.0.1:7400"))?;
    /// let reply = client.login("007eJx…token from your app server").await?;
    /// println!("session {}", reply.session_id);
    /// assert_eq!(client.link_state(), LinkState::Connected);
    /// client.logout().await?;
    /// # Ok(()) }
    /// ```
    pub async fn login(&self, token: &str) -> Result<LoginResponse, RtmError> {
        let inner = &self.inner;
        // Client-side pre-checks (token.md T61–T63): nothing is sent for a token of
        // another app; an empty token is replaced by the app id.
        let token = precheck_token(token, &inner.app_id, "login")?;
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
        // A logout meanwhile cancels the login at once (R34), not after its timeout:
        // every change of the link wakes this, and a new generation ends the attempt.
        let mut changed = inner.link_changed.subscribe();
        let establish = inner.establish(false);
        tokio::pin!(establish);
        let result = loop {
            tokio::select! {
                r = &mut establish => break Some(r),
                c = changed.changed() => {
                    if c.is_err() || inner.lock().generation != generation {
                        break None;
                    }
                }
            }
        };
        let mut st = inner.lock();
        let Some(result) = result.filter(|_| st.generation == generation) else {
            return Err(RtmError::new(
                ErrorCode::LoginCanceled,
                "login",
                "logout during login (R34)",
            ));
        };
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
    pub async fn logout(&self) -> Result<LogoutResponse, RtmError> {
        let conn = {
            let mut st = self.inner.lock();
            if st.link == LinkState::Idle {
                return Ok(LogoutResponse {
                    timestamp: now_ms(),
                });
            }
            // From here the connection's end is logout's to report (R32), and any
            // reconnect in progress stops.
            st.generation += 1;
            // The session's streams end first, so a delivery waiting on one that is
            // not read cannot keep the Logout request from going out.
            self.inner.router.end_session();
            st.conn.take()
        };
        let mut timestamp = None;
        if let Some((_, conn)) = conn {
            let body = client_message::Body::Logout(pb::LogoutRequest {});
            let reply = tokio::time::timeout(
                self.inner.config.request_timeout,
                call(&conn, "logout", body),
            )
            .await;
            if let Ok(Ok(server_message::Body::Logout(r))) = reply {
                timestamp = Some(r.timestamp);
            }
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
        Ok(LogoutResponse {
            timestamp: timestamp.unwrap_or_else(now_ms),
        })
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

    /// Sends one request like [`Self::request`], but keeps it while the login link is
    /// reconnecting (R59: DISCONNECTED, CONNECTING, SUSPENDED) and sends it on the next
    /// connection, all within `timeout`; fails at once only when not logged in. A
    /// request that never left is sent again; one the connection was lost under (it
    /// may have reached the server) only when `resend_in_flight` (an idempotency key
    /// makes that safe), else it fails with −10025 as before.
    pub(crate) async fn request_kept(
        &self,
        op: &'static str,
        body: client_message::Body,
        timeout: std::time::Duration,
        resend_in_flight: bool,
    ) -> Result<server_message::Body, RtmError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let expired = || {
            RtmError::new(
                timeout_code(op),
                op,
                "no reply within the request timeout (kept while reconnecting, R59)",
            )
        };
        loop {
            // Subscribed before the state is read, so no change is missed.
            let mut changed = self.inner.link_changed.subscribe();
            let conn = {
                let st = self.inner.lock();
                match (&st.conn, st.link) {
                    (Some((_, c)), LinkState::Connected) => Some(c.clone()),
                    (_, LinkState::Idle | LinkState::Failed) => {
                        return Err(RtmError::new(
                            ErrorCode::NotLogin,
                            op,
                            "not logged in (R24)",
                        ));
                    }
                    _ => None,
                }
            };
            if let Some(conn) = conn {
                match tokio::time::timeout_at(deadline, call_or_unsent(&conn, op, body.clone()))
                    .await
                {
                    Err(_) => return Err(expired()),
                    Ok(None) => {}
                    Ok(Some(Err(e)))
                        if resend_in_flight && e.code == ErrorCode::NotConnected.as_i32() => {}
                    Ok(Some(result)) => return result,
                }
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => {
                    return Err(RtmError::new(ErrorCode::NotConnected, op, "client dropped"));
                }
                Err(_) => return Err(expired()),
            }
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

    /// Tells the SDK that the network changed or came back (R51; a library cannot see
    /// the operating system's network events, so the app forwards them). A reconnect
    /// attempt in progress is dropped — the link goes DISCONNECTED with operation and
    /// reason NETWORK_CHANGE — and retried 2 s later; while waiting out a longer backoff
    /// the next attempt starts within 2 s. Has no effect while CONNECTED, IDLE or FAILED.
    pub fn network_changed(&self) {
        self.inner
            .network_changed
            .send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Replaces the login token (api.md §3.7); on failure the old one stays (R41).
    /// While reconnecting, the new token is kept for the next attempt.
    pub async fn renew_token(&self, token: &str) -> Result<RenewTokenResponse, RtmError> {
        {
            let mut st = self.inner.lock();
            if matches!(
                st.link,
                LinkState::Disconnected | LinkState::Suspended | LinkState::Connecting
            ) && st.conn.is_none()
            {
                st.token = token.to_string();
                return Ok(RenewTokenResponse {
                    timestamp: now_ms(),
                });
            }
        }
        let req = pb::RenewTokenRequest {
            token: token.to_string(),
            channel_name: String::new(),
        };
        let reply = self
            .request("renewToken", client_message::Body::RenewToken(req))
            .await?;
        self.inner.lock().token = token.to_string();
        Ok(RenewTokenResponse {
            timestamp: match reply {
                server_message::Body::RenewToken(r) => r.timestamp,
                _ => now_ms(),
            },
        })
    }
}

/// The error events of a queue.
fn stream_of_errors(
    rx: tokio::sync::mpsc::Receiver<crate::router::Item>,
) -> EventStream<ErrorEvent> {
    extra_stream_of(rx, |e| match e {
        Extra::Error(e) => Some(e),
        Extra::Token(_) => None,
    })
}
