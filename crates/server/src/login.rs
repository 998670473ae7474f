//! Login (a new session or the resume of a live one), token renewal and recovery of
//! what a resuming client missed (api.md §3.1, §3.7, R25–R30, R40–R42, R52, R58).

use crate::client::{Attached, Client, Failure};
use crate::config::AppConfig;
use crate::hub::{Filter, Subscriber, push_bytes};
use crate::session::{self, Session};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use switchboard_engine::{ChannelKey, Recovery, StreamPosition};
use switchboard_protocol::pb::{self, server_message::Body};
use switchboard_protocol::{DisconnectCode, ErrorCode, names, now_ms};

/// Publications read from the recovery log per step of a replay.
pub(crate) const RECOVERY_PAGE: usize = 1_000;

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

pub(crate) fn wire_position(p: StreamPosition) -> Option<pb::StreamPosition> {
    Some(pb::StreamPosition {
        epoch: p.epoch,
        offset: p.offset,
    })
}

fn engine_position(p: &pb::StreamPosition) -> StreamPosition {
    StreamPosition {
        epoch: p.epoch,
        offset: p.offset,
    }
}

/// Verifies a login token for `user` of `app`; `None` expiry for an app without a
/// certificate (R25, T61).
pub(crate) fn verify_login_token(
    app: &AppConfig,
    user: &str,
    token: &str,
) -> Result<Option<u64>, Failure> {
    let Some(cert) = &app.certificate else {
        return Ok(None);
    };
    let now = now_ms() / 1000;
    let opts = switchboard_token::VerifyOptions::default();
    match switchboard_token::verify_login(token, &app.id, cert, user, now, &opts) {
        Ok(c) => Ok(Some(c.expires_at)),
        Err(e) => {
            let code = ErrorCode::from_i32(e.sdk_error_code()).unwrap_or(ErrorCode::InvalidToken);
            Err(Failure::new(
                code,
                format!("{}: {}", e.identifier(), e.description()),
            ))
        }
    }
}

/// Sends `first` (a recovery read of `key`) and whatever the log holds after it, page by
/// page, waiting for room in the connection's queue rather than overflowing it. Returns
/// the last position sent. If a later page comes back incomplete (the log was trimmed
/// under a very slow replay), the connection is closed so that the client resumes again
/// and is told about the gap.
pub(crate) async fn replay(
    client: &Client,
    key: &ChannelKey,
    first: &Recovery,
    filter: &Filter,
) -> Option<StreamPosition> {
    let patience = client.node.config.write_timeout;
    let mut last = None;
    let mut page = first.publications.clone();
    loop {
        for p in &page {
            if filter.accepts(p) {
                if let Some(bytes) = push_bytes(key, p) {
                    if !client.out.push_wait(bytes, patience).await {
                        return last;
                    }
                }
            }
            // What the filter skips counts as passed: it is not held back either.
            last = Some(p.position);
        }
        if page.len() < RECOVERY_PAGE {
            return last;
        }
        let from = last?;
        match client.node.broker.recover(key, from, RECOVERY_PAGE).await {
            Ok(r) if r.complete => page = r.publications,
            _ => {
                client.out.close(
                    DisconnectCode::SlowConsumer,
                    "the replay fell behind the recovery log",
                );
                return last;
            }
        }
    }
}

impl Client {
    /// `login`: a new session, or the resume of a live one when `session_id` names it.
    pub(crate) async fn login(&mut self, id: u32, req: pb::LoginRequest) -> Result<(), Failure> {
        if self.attached.is_some() {
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
        let token_expires_at = verify_login_token(&app, &req.user_id, &req.token)?;
        let cfg = &self.node.config;
        let hb_range = app
            .limits
            .heartbeat_interval_range
            .unwrap_or(cfg.heartbeat_interval_range);
        let presence_range = app
            .limits
            .presence_timeout_range
            .unwrap_or(cfg.presence_timeout_range);
        let hb = clamp(req.heartbeat_interval, 5, hb_range);
        let presence = clamp(req.presence_timeout, 300, presence_range);
        if !req.session_id.is_empty() {
            if let Some(session) = self.node.registry.get(&req.app_id, &req.user_id) {
                if session.public_id == req.session_id && !session.ended() {
                    return self.resume(id, session, req, token_expires_at, hb).await;
                }
            }
            if self.node.registry.was_replaced(&req.session_id) {
                return Err(Failure::new(
                    ErrorCode::SessionReplaced,
                    "this session was replaced by a newer login of the same user id (SAME_UID_LOGIN, R28)",
                ));
            }
        }
        let session = Session::new(
            &self.node,
            app,
            req.user_id.as_str().into(),
            Duration::from_secs(u64::from(presence)),
            token_expires_at,
        );
        // One session per user (R28): the one replaced is kicked.
        if let Some(old) = self.node.registry.register(session.clone()) {
            self.node.registry.mark_replaced(&old, old.presence_timeout);
            let reason = format!(
                "user id {} logged in again from another connection",
                req.user_id
            );
            session::end(
                &self.node,
                &old,
                Some((DisconnectCode::SameUidLogin, reason)),
            )
            .await;
        }
        // A client coming back after its session expired still gets the USER messages
        // its old session received after the position it sends (the inbox outlives
        // sessions within the recovery window).
        let user_key = session.user_key();
        let user_since = req
            .positions
            .iter()
            .find(|p| {
                p.channel_type == pb::ChannelType::User as i32 && p.channel_name == req.user_id
            })
            .and_then(|p| p.position.as_ref())
            .map(engine_position);
        let hold = if user_since.is_some() {
            vec![user_key.clone()]
        } else {
            Vec::new()
        };
        let Some(attachment) = session.attach(self.out.clone(), hold) else {
            return Err(Failure::new(
                ErrorCode::LoginAborted,
                "session ended during login",
            ));
        };
        let sub = Subscriber {
            session: session.id,
            outlet: session.outlet.clone(),
            filter: Filter::inbox(&session.user),
        };
        if let Err(e) = self
            .node
            .hub
            .subscribe(&*self.node.broker, &user_key, sub)
            .await
        {
            session::end(&self.node, &session, None).await;
            return Err(Failure::new(ErrorCode::EngineUnavailable, e.to_string()));
        }
        if session.ended() {
            // Kicked while logging in: leave nothing subscribed behind.
            self.node
                .hub
                .unsubscribe(&*self.node.broker, &user_key, session.id)
                .await;
            return Err(Failure::new(
                ErrorCode::SessionReplaced,
                "replaced by a newer login during this one",
            ));
        }
        let recovery = match user_since {
            Some(since) => self
                .node
                .broker
                .recover(&user_key, since, RECOVERY_PAGE)
                .await
                .ok(),
            None => None,
        };
        let mut gap_channels = Vec::new();
        if user_since.is_some() && !recovery.as_ref().is_some_and(|r| r.complete) {
            gap_channels.push(req.user_id.clone());
        }
        let user_position = self
            .node
            .broker
            .position(&user_key)
            .await
            .unwrap_or_default();
        self.attached = Some(Attached {
            session: session.clone(),
            attachment,
            heartbeat_timeout: heartbeat_timeout(hb),
        });
        crate::presence::set_expiry(&self.node, &session, None).await;
        self.send(
            id,
            Body::Login(pb::LoginReply {
                session_id: session.public_id.clone(),
                resumed: false,
                heartbeat_interval: hb,
                presence_timeout: presence,
                timestamp: now_ms(),
                token_expires_at: token_expires_at.unwrap_or(0),
                unrestored_channels: Vec::new(),
                gap_channels,
                user_position: wire_position(user_position),
            }),
        );
        if user_since.is_some() {
            let last = match &recovery {
                Some(r) => replay(self, &user_key, r, &Filter::inbox(&session.user)).await,
                None => None,
            };
            let upto = recovery.as_ref().map_or(user_position, |r| r.position);
            session
                .outlet
                .release(&self.out, &user_key, last.or(Some(upto)));
        }
        tracing::debug!(app = %session.app_id, user = %session.user, "login");
        Ok(())
    }

    /// Re-attaches this connection to a live session and replays, per channel, what the
    /// client missed after the positions it sent (R52, R58).
    async fn resume(
        &mut self,
        id: u32,
        session: Arc<Session>,
        req: pb::LoginRequest,
        token_expires_at: Option<u64>,
        hb: u32,
    ) -> Result<(), Failure> {
        let since: HashMap<(i32, &str), StreamPosition> = req
            .positions
            .iter()
            .filter_map(|p| {
                Some((
                    (p.channel_type, p.channel_name.as_str()),
                    engine_position(p.position.as_ref()?),
                ))
            })
            .collect();
        let (mut keys, unrestored): (Vec<(ChannelKey, Filter)>, Vec<String>) = {
            let mut st = session.lock();
            st.token_expires_at = token_expires_at;
            st.will_expire_sent = false;
            // Channels the client follows but the session does not (a subscribe, join or
            // unsubscribe lost with the old connection): the client restores them.
            let unrestored = req
                .positions
                .iter()
                .filter(|p| match pb::ChannelType::try_from(p.channel_type) {
                    Ok(pb::ChannelType::Message) => {
                        !st.subscriptions.contains_key(p.channel_name.as_str())
                    }
                    Ok(pb::ChannelType::Stream) => {
                        !st.streams.contains_key(p.channel_name.as_str())
                    }
                    _ => false,
                })
                .map(|p| p.channel_name.clone())
                .collect();
            let messages = st.subscriptions.iter().map(|(n, o)| {
                let filter = Filter::message(o, &session.user);
                (session.message_key(n), filter)
            });
            let streams = st
                .streams
                .iter()
                .map(|(n, m)| (session.stream_key(n), Filter::Stream(m.filter.clone())));
            (messages.chain(streams).collect(), unrestored)
        };
        keys.push((session.user_key(), Filter::inbox(&session.user)));
        let held = keys.iter().map(|(k, _)| k.clone()).collect();
        // Lock waits of the connection this one replaces cannot be answered any more.
        crate::lock::cancel_waits(&self.node, &session, None, "the connection was replaced").await;
        let Some(attachment) = session.attach(self.out.clone(), held) else {
            return Err(Failure::new(
                ErrorCode::SessionNotFound,
                "the session ended while resuming",
            ));
        };
        self.attached = Some(Attached {
            session: session.clone(),
            attachment,
            heartbeat_timeout: heartbeat_timeout(hb),
        });
        crate::presence::set_expiry(&self.node, &session, None).await;
        crate::lock::connection_back(&self.node, &session).await;
        // Read every channel's gap first, so the reply can say which are incomplete.
        let mut recovered = Vec::with_capacity(keys.len());
        let mut gaps = Vec::new();
        for (key, filter) in keys {
            let wire_type = crate::presence::wire_type(key.kind);
            let recovery = match since.get(&(wire_type, &*key.name)) {
                Some(from) => self
                    .node
                    .broker
                    .recover(&key, *from, RECOVERY_PAGE)
                    .await
                    .ok(),
                None => None,
            };
            if !recovery.as_ref().is_some_and(|r| r.complete) {
                // For the USER channel (the inbox) the name is the user's own id.
                gaps.push(key.name.to_string());
            }
            recovered.push((key, filter, recovery));
        }
        let user_position = self
            .node
            .broker
            .position(&session.user_key())
            .await
            .unwrap_or_default();
        self.send(
            id,
            Body::Login(pb::LoginReply {
                session_id: session.public_id.clone(),
                resumed: true,
                heartbeat_interval: hb,
                presence_timeout: u32::try_from(session.presence_timeout.as_secs())
                    .unwrap_or(u32::MAX),
                timestamp: now_ms(),
                token_expires_at: token_expires_at.unwrap_or(0),
                unrestored_channels: unrestored,
                gap_channels: gaps,
                user_position: wire_position(user_position),
            }),
        );
        for (key, filter, recovery) in recovered {
            let last = match &recovery {
                Some(r) => replay(self, &key, r, &filter).await,
                None => None,
            };
            // Lock and storage events lost with the log: the state as it is now (R157,
            // R148), at the channel's position.
            if let Some(r) = recovery.as_ref().filter(|r| !r.complete) {
                let (metadata, locks) = filter.wants_state();
                if metadata {
                    if let Some(s) =
                        crate::storage::channel_snapshot(&self.node, &key, r.position).await
                    {
                        self.push_wait(s).await;
                    }
                }
                if locks && key.kind != switchboard_engine::ChannelKind::User {
                    if let Some(s) = crate::lock::snapshot(&self.node, &key, r.position).await {
                        self.push_wait(s).await;
                    }
                }
            }
            // Held live pushes newer than the replay follow; then the channel is live.
            let last = last.or_else(|| recovery.as_ref().map(|r| r.position));
            session.outlet.release(&self.out, &key, last);
        }
        self.resume_user_metadata(&session).await;
        tracing::debug!(app = %session.app_id, user = %session.user, "resumed");
        Ok(())
    }

    /// `renewToken` for the login token (R40, R41); stream channel tokens are renewed in
    /// the stream module.
    pub(crate) fn renew_token(
        &mut self,
        id: u32,
        req: pb::RenewTokenRequest,
    ) -> Result<(), Failure> {
        let session = self.session()?;
        let expires = verify_login_token(&session.app, &session.user, &req.token)?;
        {
            let mut st = session.lock();
            st.token_expires_at = expires;
            st.will_expire_sent = false;
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
}
