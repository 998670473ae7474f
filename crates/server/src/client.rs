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
use switchboard_engine::WriteOp;
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
        B::Join(_) => "join",
        B::Leave(_) => "leave",
        B::JoinTopic(_) => "joinTopic",
        B::LeaveTopic(_) => "leaveTopic",
        B::PublishTopicMessage(_) => "publishTopicMessage",
        B::SubscribeTopic(_) => "subscribeTopic",
        B::UnsubscribeTopic(_) => "unsubscribeTopic",
        B::WhoNow(_) => "whoNow",
        B::WhereNow(_) => "whereNow",
        B::SetState(_) => "setState",
        B::GetState(_) => "getState",
        B::RemoveState(_) => "removeState",
        B::SetMetadata(r) if r.channel_type == pb::ChannelType::User as i32 => "setUserMetadata",
        B::SetMetadata(_) => "setChannelMetadata",
        B::UpdateMetadata(r) if r.channel_type == pb::ChannelType::User as i32 => {
            "updateUserMetadata"
        }
        B::UpdateMetadata(_) => "updateChannelMetadata",
        B::RemoveMetadata(r) if r.channel_type == pb::ChannelType::User as i32 => {
            "removeUserMetadata"
        }
        B::RemoveMetadata(_) => "removeChannelMetadata",
        B::GetMetadata(r) if r.channel_type == pb::ChannelType::User as i32 => "getUserMetadata",
        B::GetMetadata(_) => "getChannelMetadata",
        B::SubscribeUserMetadata(_) => "subscribeUserMetadata",
        B::UnsubscribeUserMetadata(_) => "unsubscribeUserMetadata",
        B::SetLock(_) => "setLock",
        B::RemoveLock(_) => "removeLock",
        B::AcquireLock(_) => "acquireLock",
        B::ReleaseLock(_) => "releaseLock",
        B::RevokeLock(_) => "revokeLock",
        B::GetLock(_) => "getLock",
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

    /// The next token event of the login token or a stream channel's token: a
    /// will-expire push (T54) or an expiry (T55).
    pub fn token_deadline(&self) -> Option<Instant> {
        let a = self.attached.as_ref()?;
        let lead = self.node.config.token_will_expire_lead.as_secs();
        let due = |expires: Option<u64>, sent: bool| {
            expires.map(|e| if sent { e } else { e.saturating_sub(lead) })
        };
        let st = a.session.lock();
        let login = due(st.token_expires_at, st.will_expire_sent);
        let streams = st
            .streams
            .values()
            .filter_map(|m| due(m.token_expires_at, m.will_expire_sent));
        login.into_iter().chain(streams).min().map(instant_at)
    }

    /// Fires the token events due at [`Client::token_deadline`]: will-expire pushes,
    /// then expiries (of the session for the login token, of the membership for a
    /// stream channel's).
    pub async fn on_token_deadline(&mut self) {
        let Some(a) = &self.attached else { return };
        let session = a.session.clone();
        let lead = self.node.config.token_will_expire_lead.as_secs();
        let now = now_ms() / 1000;
        let mut warn = Vec::new();
        let mut expired_streams = Vec::new();
        let mut login_expired = false;
        {
            let mut st = session.lock();
            if let Some(expires) = st.token_expires_at {
                if now >= expires && st.will_expire_sent {
                    login_expired = true;
                } else if !st.will_expire_sent && now >= expires.saturating_sub(lead) {
                    st.will_expire_sent = true;
                    warn.push((String::new(), expires));
                }
            }
            for (name, m) in st.streams.iter_mut() {
                let Some(expires) = m.token_expires_at else {
                    continue;
                };
                if now >= expires && m.will_expire_sent {
                    expired_streams.push(name.clone());
                } else if !m.will_expire_sent && now >= expires.saturating_sub(lead) {
                    m.will_expire_sent = true;
                    warn.push((name.to_string(), expires));
                }
            }
        }
        for (channel_name, expires_at) in warn {
            self.push(Body::TokenWillExpire(pb::TokenWillExpire {
                channel_name,
                expires_at,
            }));
        }
        for name in expired_streams {
            self.expire_stream(&session, &name).await;
        }
        if login_expired {
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

    /// Queues a push, waiting for room in the queue (for large pushes such as a
    /// presence SNAPSHOT; a push larger than the queue's limit waits for it to empty).
    pub async fn push_wait(&self, body: Body) -> bool {
        let bytes = frame::encode(&ServerMessage {
            id: 0,
            body: Some(body),
        });
        self.out
            .push_wait(bytes, self.node.config.write_timeout)
            .await
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
            B::RenewToken(req) if !req.channel_name.is_empty() => self.renew_stream_token(id, req),
            B::RenewToken(req) => self.renew_token(id, req),
            B::Join(req) => self.join(id, req).await,
            B::Leave(req) => self.leave(id, req).await,
            B::JoinTopic(req) => self.join_topic(id, req).await,
            B::LeaveTopic(req) => self.leave_topic(id, req).await,
            B::PublishTopicMessage(req) => self.publish_topic_message(id, req).await,
            B::SubscribeTopic(req) => self.subscribe_topic(id, req).await,
            B::UnsubscribeTopic(req) => self.unsubscribe_topic(id, req).await,
            B::WhoNow(req) => self.who_now(id, req).await,
            B::WhereNow(req) => self.where_now(id, req).await,
            B::SetState(req) => self.set_state(id, req).await,
            B::GetState(req) => self.get_state(id, req).await,
            B::RemoveState(req) => self.remove_state(id, req).await,
            B::Subscribe(req) => self.subscribe(id, req).await,
            B::Unsubscribe(req) => self.unsubscribe(id, req).await,
            B::Publish(req) => self.publish(id, req).await,
            B::GetMessages(req) => self.get_messages(id, req).await,
            B::SetMetadata(req) => self.write_metadata(id, WriteOp::Set, req).await,
            B::UpdateMetadata(req) => self.write_metadata(id, WriteOp::Update, req).await,
            B::RemoveMetadata(req) => self.write_metadata(id, WriteOp::Remove, req).await,
            B::GetMetadata(req) => self.get_metadata(id, req).await,
            B::SubscribeUserMetadata(req) => self.subscribe_user_metadata(id, req).await,
            B::UnsubscribeUserMetadata(req) => self.unsubscribe_user_metadata(id, req).await,
            B::SetLock(req) => self.set_lock(id, req).await,
            B::RemoveLock(req) => self.remove_lock(id, req).await,
            B::AcquireLock(req) => self.acquire_lock(id, req).await,
            B::ReleaseLock(req) => self.release_lock(id, req).await,
            B::RevokeLock(req) => self.revoke_lock(id, req).await,
            B::GetLock(req) => self.get_lock(id, req).await,
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
