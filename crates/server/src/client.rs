//! One connection's client: the session it is attached to (after login), its
//! keep-alive and token timers, and the dispatch of every request to the module that
//! owns it. A failed request changes nothing (R171) and is answered with its code and
//! reason; the connection carries on.

use crate::node::Node;
use crate::outbound::Outbound;
use crate::session::{self, Session};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_protocol::pb::{
    self, ClientMessage, ServerMessage, client_message, server_message::Body,
};
use switchboard_protocol::{DisconnectCode, ErrorCode, frame, names, now_ms};

/// A request failure: code, reason; the operation is added by the dispatcher.
pub(crate) struct Failure {
    pub code: ErrorCode,
    pub reason: String,
}

impl Failure {
    /// A failure with `code` and `reason`.
    pub fn new(code: ErrorCode, reason: impl Into<String>) -> Self {
        Failure {
            code,
            reason: reason.into(),
        }
    }

    /// The failure for requests before login (R24).
    pub fn not_logged_in() -> Self {
        Failure::new(ErrorCode::NotLogin, "log in first (R24)")
    }
}

impl From<names::Invalid> for Failure {
    fn from(i: names::Invalid) -> Self {
        Failure::new(i.code, i.reason)
    }
}

/// The connection's view of its session.
pub(crate) struct Attached {
    /// The session.
    pub session: Arc<Session>,
    /// The attachment number (to detach only our own attachment).
    pub attachment: u64,
    /// Silence after which the connection counts as lost.
    pub heartbeat_timeout: Duration,
}

/// One connection.
pub(crate) struct Client {
    pub node: Arc<Node>,
    pub out: Arc<Outbound>,
    pub attached: Option<Attached>,
    connected_at: Instant,
    last_rx: Instant,
}

/// Converts a wall-clock time in seconds since the epoch to an `Instant`.
fn instant_at(epoch_secs: u64) -> Instant {
    let now = now_ms();
    let target = epoch_secs.saturating_mul(1000);
    Instant::now() + Duration::from_millis(target.saturating_sub(now))
}

/// Operation names as the SDKs report them (api.md §12.1).
fn operation(body: &client_message::Body) -> &'static str {
    use client_message::Body as B;
    match body {
        B::Login(_) => "login",
        B::Logout(_) => "logout",
        B::RenewToken(_) => "renewToken",
        B::Subscribe(_) => "subscribe",
        B::Unsubscribe(_) => "unsubscribe",
        B::Publish(_) => "publish",
        B::Heartbeat(_) => "heartbeat",
        B::GetMessages(_) => "getMessages",
    }
}

impl Client {
    /// A connection that has not logged in yet.
    pub fn new(node: Arc<Node>, out: Arc<Outbound>) -> Self {
        let now = Instant::now();
        Client {
            node,
            out,
            attached: None,
            connected_at: now,
            last_rx: now,
        }
    }

    /// The attached session, or the not-logged-in failure.
    pub fn session(&self) -> Result<Arc<Session>, Failure> {
        self.attached
            .as_ref()
            .map(|a| a.session.clone())
            .ok_or_else(Failure::not_logged_in)
    }

    /// Records traffic from the client (any frame counts as keep-alive).
    pub fn touch(&mut self) {
        self.last_rx = Instant::now();
    }

    /// When the connection is lost if nothing arrives: the login timeout before login,
    /// the heartbeat timeout after.
    pub fn read_deadline(&self) -> (Instant, DisconnectCode) {
        match &self.attached {
            None => (
                self.connected_at + self.node.config.login_timeout,
                DisconnectCode::LoginTimeout,
            ),
            Some(a) => (
                self.last_rx + a.heartbeat_timeout,
                DisconnectCode::HeartbeatTimeout,
            ),
        }
    }

    /// The next token event: the will-expire push (T54) or the expiry itself (T55).
    pub fn token_deadline(&self) -> Option<Instant> {
        let a = self.attached.as_ref()?;
        let st = a.session.lock();
        let expires = st.token_expires_at?;
        if st.will_expire_sent {
            Some(instant_at(expires))
        } else {
            let lead = self.node.config.token_will_expire_lead.as_secs();
            Some(instant_at(expires.saturating_sub(lead)))
        }
    }

    /// Fires the token event due at [`Client::token_deadline`].
    pub async fn on_token_deadline(&mut self) {
        let Some(a) = &self.attached else { return };
        let session = a.session.clone();
        let expires = {
            let mut st = session.lock();
            let Some(expires) = st.token_expires_at else {
                return;
            };
            if !st.will_expire_sent {
                st.will_expire_sent = true;
                drop(st);
                self.push(Body::TokenWillExpire(pb::TokenWillExpire {
                    channel_name: String::new(),
                    expires_at: expires,
                }));
                return;
            }
            expires
        };
        if instant_at(expires) <= Instant::now() {
            let reason = "the login token expired and was not renewed (R42)".to_string();
            session::end(
                &self.node,
                &session,
                Some((DisconnectCode::TokenExpired, reason)),
            )
            .await;
        }
    }

    /// Queues a push (id 0) on this connection.
    pub fn push(&self, body: Body) {
        self.send(0, body);
    }

    /// Queues a message with id `id` on this connection.
    pub fn send(&self, id: u32, body: Body) {
        self.out.push(frame::encode(&ServerMessage {
            id,
            body: Some(body),
        }));
    }

    fn fail(&self, id: u32, op: &str, f: Failure) {
        self.send(
            id,
            Body::Error(pb::Error {
                code: f.code.as_i32(),
                reason: f.reason,
                operation: op.to_string(),
            }),
        );
    }

    /// Handles one client message. `Break` ends the connection.
    pub async fn handle(&mut self, msg: ClientMessage) -> ControlFlow<()> {
        use client_message::Body as B;
        let id = msg.id;
        let Some(body) = msg.body else {
            let f = Failure::new(
                ErrorCode::BadRequest,
                "request without a known body (newer protocol?)",
            );
            self.fail(id, "unknown", f);
            return ControlFlow::Continue(());
        };
        let op = operation(&body);
        if self.attached.is_none() && !matches!(body, B::Login(_) | B::Heartbeat(_)) {
            self.fail(id, op, Failure::not_logged_in());
            return ControlFlow::Continue(());
        }
        let result = match body {
            B::Heartbeat(_) => {
                if id != 0 {
                    self.send(
                        id,
                        Body::Heartbeat(pb::HeartbeatReply {
                            timestamp: now_ms(),
                        }),
                    );
                }
                Ok(())
            }
            B::Login(req) => match self.login(id, req).await {
                Ok(()) => Ok(()),
                Err(f) if self.attached.is_none() => {
                    let reason = f.reason.clone();
                    self.fail(id, op, f);
                    self.out.close(DisconnectCode::LoginFailed, reason);
                    return ControlFlow::Break(());
                }
                Err(f) => Err(f),
            },
            B::Logout(_) => {
                self.send(
                    id,
                    Body::Logout(pb::LogoutReply {
                        timestamp: now_ms(),
                    }),
                );
                if let Some(a) = self.attached.take() {
                    session::end(
                        &self.node,
                        &a.session,
                        Some((DisconnectCode::Logout, "logged out".into())),
                    )
                    .await;
                }
                self.out.close(DisconnectCode::Logout, "logged out");
                return ControlFlow::Break(());
            }
            B::RenewToken(req) => self.renew_token(id, req),
            B::Subscribe(req) => self.subscribe(id, req).await,
            B::Unsubscribe(req) => self.unsubscribe(id, req).await,
            B::Publish(req) => self.publish(id, req).await,
            B::GetMessages(req) => self.get_messages(id, req).await,
        };
        if let Err(f) = result {
            self.fail(id, op, f);
        }
        ControlFlow::Continue(())
    }

    /// The connection ended. When the client will reconnect (lost link, heartbeat
    /// timeout, slow consumer, shutdown) the session is kept for `presenceTimeout`
    /// (R52); after a close the client does not come back from (a protocol error, say)
    /// it ends now.
    pub async fn disconnected(&mut self) {
        let Some(a) = self.attached.take() else {
            return;
        };
        let code = self.out.close_reason().and_then(|c| c.code);
        match code {
            Some(code) if !code.reconnect() => session::end(&self.node, &a.session, None).await,
            _ => a.session.detach(&self.node, &self.out, a.attachment),
        }
    }
}
