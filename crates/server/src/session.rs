//! One client session on one connection: login, logout, token renewal, heartbeats and
//! the dispatch of every request to the module that owns it. A failed request changes
//! nothing (R171) and is answered with its code and reason; the session carries on.

use crate::config::AppConfig;
use crate::node::{Node, Registered};
use crate::outbound::Outbound;
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_engine::{ChannelKey, ChannelKind};
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
}

impl From<names::Invalid> for Failure {
    fn from(i: names::Invalid) -> Self {
        Failure::new(i.code, i.reason)
    }
}

/// Options of one message channel subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SubOptions {
    pub with_message: bool,
    pub with_presence: bool,
    pub be_quiet: bool,
    pub with_metadata: bool,
    pub with_lock: bool,
}

/// State of a logged-in session.
pub(crate) struct LoggedIn {
    pub id: u64,
    pub app: Arc<AppConfig>,
    pub app_id: Arc<str>,
    pub user: Arc<str>,
    pub heartbeat_timeout: Duration,
    /// Effective expiry of the login credential, seconds since the epoch.
    pub token_expires_at: Option<u64>,
    pub will_expire_sent: bool,
    pub subscriptions: HashMap<Arc<str>, SubOptions>,
}

impl LoggedIn {
    /// The key of this user's own USER channel.
    pub fn user_key(&self) -> ChannelKey {
        ChannelKey::new(self.app_id.clone(), ChannelKind::User, self.user.clone())
    }

    /// The key of one of this app's MESSAGE channels.
    pub fn message_key(&self, name: &str) -> ChannelKey {
        ChannelKey::new(self.app_id.clone(), ChannelKind::Message, name)
    }
}

/// One connection's session.
pub(crate) struct Session {
    pub node: Arc<Node>,
    pub out: Arc<Outbound>,
    pub state: Option<LoggedIn>,
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
    }
}

impl Session {
    /// A session that has not logged in yet.
    pub fn new(node: Arc<Node>, out: Arc<Outbound>) -> Self {
        let now = Instant::now();
        Session {
            node,
            out,
            state: None,
            connected_at: now,
            last_rx: now,
        }
    }

    /// Records traffic from the client (any frame counts as keep-alive).
    pub fn touch(&mut self) {
        self.last_rx = Instant::now();
    }

    /// When the connection is lost if nothing arrives: the login timeout before login,
    /// the heartbeat timeout after.
    pub fn read_deadline(&self) -> (Instant, DisconnectCode) {
        match &self.state {
            None => (
                self.connected_at + self.node.config.login_timeout,
                DisconnectCode::LoginTimeout,
            ),
            Some(s) => (
                self.last_rx + s.heartbeat_timeout,
                DisconnectCode::HeartbeatTimeout,
            ),
        }
    }

    /// The next token event: the will-expire push (T54) or the expiry itself (T55).
    pub fn token_deadline(&self) -> Option<Instant> {
        let s = self.state.as_ref()?;
        let expires = s.token_expires_at?;
        if s.will_expire_sent {
            Some(instant_at(expires))
        } else {
            let lead = self.node.config.token_will_expire_lead.as_secs();
            Some(instant_at(expires.saturating_sub(lead)))
        }
    }

    /// Fires the token event due at [`Session::token_deadline`].
    pub fn on_token_deadline(&mut self) -> ControlFlow<()> {
        let Some(s) = self.state.as_mut() else {
            return ControlFlow::Continue(());
        };
        let Some(expires) = s.token_expires_at else {
            return ControlFlow::Continue(());
        };
        if !s.will_expire_sent {
            s.will_expire_sent = true;
            self.push(Body::TokenWillExpire(pb::TokenWillExpire {
                channel_name: String::new(),
                expires_at: expires,
            }));
            return ControlFlow::Continue(());
        }
        self.out.close(
            DisconnectCode::TokenExpired,
            "the login token expired and was not renewed (R42)",
        );
        ControlFlow::Break(())
    }

    /// Queues a push (id 0).
    pub fn push(&self, body: Body) {
        self.send(0, body);
    }

    /// Queues a message with id `id`.
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
            self.fail(
                id,
                "unknown",
                Failure::new(
                    ErrorCode::BadRequest,
                    "request without a known body (newer protocol?)",
                ),
            );
            return ControlFlow::Continue(());
        };
        let op = operation(&body);
        if self.state.is_none() && !matches!(body, B::Login(_) | B::Heartbeat(_)) {
            self.fail(
                id,
                op,
                Failure::new(ErrorCode::NotLogin, "log in first (R24)"),
            );
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
                Err(f) => {
                    let reason = f.reason.clone();
                    self.fail(id, op, f);
                    if self.state.is_none() {
                        self.out.close(DisconnectCode::LoginFailed, reason);
                        return ControlFlow::Break(());
                    }
                    Ok(())
                }
            },
            B::Logout(_) => {
                self.logout().await;
                self.send(
                    id,
                    Body::Logout(pb::LogoutReply {
                        timestamp: now_ms(),
                    }),
                );
                self.out.close(DisconnectCode::Logout, "logged out");
                return ControlFlow::Break(());
            }
            B::RenewToken(req) => self.renew_token(id, req),
            B::Subscribe(req) => self.subscribe(id, req).await,
            B::Unsubscribe(req) => self.unsubscribe(id, req).await,
            B::Publish(req) => self.publish(id, req).await,
        };
        if let Err(f) = result {
            self.fail(id, op, f);
        }
        ControlFlow::Continue(())
    }

    fn verify_login_token(
        &self,
        app: &AppConfig,
        user: &str,
        token: &str,
    ) -> Result<Option<u64>, Failure> {
        let Some(cert) = &app.certificate else {
            // No certificate: any token, including none or the app id, is accepted (R25).
            return Ok(None);
        };
        let now = now_ms() / 1000;
        let opts = switchboard_token::VerifyOptions::default();
        match switchboard_token::verify_login(token, &app.id, cert, user, now, &opts) {
            Ok(c) => Ok(Some(c.expires_at)),
            Err(e) => {
                let code =
                    ErrorCode::from_i32(e.sdk_error_code()).unwrap_or(ErrorCode::InvalidToken);
                Err(Failure::new(
                    code,
                    format!("{}: {}", e.identifier(), e.description()),
                ))
            }
        }
    }

    async fn login(&mut self, id: u32, req: pb::LoginRequest) -> Result<(), Failure> {
        if self.state.is_some() {
            return Err(Failure::new(
                ErrorCode::DuplicateOperation,
                "this connection is already logged in",
            ));
        }
        names::validate_app_id(&req.app_id)?;
        let Some(app) = self.node.apps.get(&req.app_id).cloned() else {
            return Err(Failure::new(
                ErrorCode::InvalidAppId,
                format!("app id {} is not configured on this server", req.app_id),
            ));
        };
        names::validate_user_id(&req.user_id, app.limits.name_rules())?;
        let token_expires_at = self.verify_login_token(&app, &req.user_id, &req.token)?;
        let cfg = &self.node.config;
        let hb = clamp(req.heartbeat_interval, 5, cfg.heartbeat_interval_range);
        let presence = clamp(req.presence_timeout, 300, cfg.presence_timeout_range);
        let app_id: Arc<str> = app.id.as_str().into();
        let user: Arc<str> = req.user_id.as_str().into();
        let state = LoggedIn {
            id: self.node.next_session_id(),
            app,
            app_id: app_id.clone(),
            user: user.clone(),
            heartbeat_timeout: heartbeat_timeout(hb),
            token_expires_at,
            will_expire_sent: false,
            subscriptions: HashMap::new(),
        };
        // Register first (kicking an older session, R28), then receive USER messages.
        self.node.registry.register(
            &app_id,
            &user,
            Registered {
                session: state.id,
                queue: self.out.clone(),
            },
        );
        let sub = crate::hub::Subscriber {
            session: state.id,
            queue: self.out.clone(),
            with_message: true,
        };
        if let Err(e) = self
            .node
            .hub
            .subscribe(&*self.node.broker, &state.user_key(), sub)
            .await
        {
            self.node.registry.unregister(&app_id, &user, state.id);
            return Err(Failure::new(ErrorCode::EngineUnavailable, e.to_string()));
        }
        let session_id = format!("{:016x}{:016x}", rand::random::<u64>(), state.id);
        self.state = Some(state);
        self.send(
            id,
            Body::Login(pb::LoginReply {
                session_id,
                resumed: false,
                heartbeat_interval: hb,
                presence_timeout: presence,
                timestamp: now_ms(),
                token_expires_at: token_expires_at.unwrap_or(0),
                unrestored_channels: Vec::new(),
            }),
        );
        tracing::debug!(app = %app_id, user = %user, "login");
        Ok(())
    }

    fn renew_token(&mut self, id: u32, req: pb::RenewTokenRequest) -> Result<(), Failure> {
        let Some(s) = self.state.as_ref() else {
            return Err(Failure::new(ErrorCode::NotLogin, "log in first (R24)"));
        };
        if !req.channel_name.is_empty() {
            return Err(Failure::new(
                ErrorCode::ChannelNotJoined,
                format!("stream channel {} is not joined", req.channel_name),
            ));
        }
        let expires = self.verify_login_token(&s.app, &s.user, &req.token)?;
        if let Some(s) = self.state.as_mut() {
            s.token_expires_at = expires;
            s.will_expire_sent = false;
        }
        self.send(
            id,
            Body::RenewToken(pb::RenewTokenReply {
                timestamp: now_ms(),
                token_expires_at: expires.unwrap_or(0),
            }),
        );
        Ok(())
    }

    /// Leaves everything the session holds: subscriptions, USER channel, registry entry.
    pub async fn logout(&mut self) {
        let Some(s) = self.state.take() else { return };
        let broker = &*self.node.broker;
        for name in s.subscriptions.keys() {
            self.node
                .hub
                .unsubscribe(broker, &s.message_key(name), s.id)
                .await;
        }
        self.node.hub.unsubscribe(broker, &s.user_key(), s.id).await;
        self.node.registry.unregister(&s.app_id, &s.user, s.id);
    }
}

/// Applies the spec's default for 0 and clamps into the configured range (R16, R17).
fn clamp(value: u32, default: u32, range: (u32, u32)) -> u32 {
    let v = if value == 0 { default } else { value };
    v.clamp(range.0, range.1.max(range.0))
}

/// The server declares a connection lost after 1.5 heartbeat intervals of silence:
/// the SDK sends a heartbeat every half interval, so three in a row must go missing.
pub(crate) fn heartbeat_timeout(interval_secs: u32) -> Duration {
    Duration::from_millis(u64::from(interval_secs) * 1500)
}
