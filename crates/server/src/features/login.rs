//! Login (a new session or the resume of a live one, here or taken over from another
//! node), token renewal and recovery of what a resuming client missed (api.md §3.1, §3.7, R25–R30, R40–R42, R52, R58).

use crate::node::admission;
use crate::node::config::AppConfig;
use crate::node::hub::{Filter, Subscriber};
use crate::session::client::{Attached, Client};
use crate::session::hooks::{self, Wants};
use crate::session::registry::Registry;
use crate::session::replay::{RECOVERY_PAGE, replay};
use crate::session::{Session, handover, lifecycle};
use crate::wire::{Failure, engine_position, wire_position, wire_type};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use switchboard_engine::{ChannelKey, StreamPosition};
use switchboard_protocol::pb::{self, server_message::Body};
use switchboard_protocol::{DisconnectCode, ErrorCode, names, now_ms};

/// New logins per app and user id in the current minute (R31), per node.
///
/// Every user who logged in within the last minute has an entry, so an idle node
/// keeps one per logged-in user: 16 B (a keyed hash of the app and user ids, and the
/// minute's start and count as `u32`s) instead of the two ids' strings and an
/// `Instant` (~190 B per user, docs/benchmarks.md). Two (app, user) pairs share a
/// count only if their 64-bit SipHash (random keys per node) collides.
pub(crate) struct LoginRates {
    map: std::sync::Mutex<HashMap<u64, (u32, u32)>>,
    /// The hash's keys.
    keys: std::collections::hash_map::RandomState,
    /// The origin of the minutes' starts (seconds since then).
    epoch: std::time::Instant,
}

impl Default for LoginRates {
    fn default() -> Self {
        LoginRates {
            map: Default::default(),
            keys: Default::default(),
            epoch: std::time::Instant::now(),
        }
    }
}

impl LoginRates {
    /// Counts a login of `user` of `app`; false when it is one too many this minute.
    fn allow(&self, app: &AppConfig, user: &str) -> bool {
        let max = app.limits.max_logins_per_user_per_minute;
        if max == 0 {
            return true;
        }
        let now = u32::try_from(self.epoch.elapsed().as_secs()).unwrap_or(u32::MAX);
        const MINUTE: u32 = 60;
        let key = {
            use std::hash::BuildHasher;
            self.keys.hash_one((app.id.as_str(), user))
        };
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        // Windows that ended are dropped now and then, so the map holds only the users
        // who logged in within the last minute or so.
        if map.len() >= 1024 && map.len().is_power_of_two() {
            map.retain(|_, (start, _)| now.saturating_sub(*start) < MINUTE);
        }
        let entry = map.entry(key).or_insert((now, 0));
        if now.saturating_sub(entry.0) >= MINUTE {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1 <= max
    }
}

/// (app, user) → (until when, why).
type BanMap = HashMap<(Arc<str>, Arc<str>), (std::time::Instant, String)>;

/// Users banned through the server API until a moment, per node: their logins and
/// resumes are refused with `LOGIN_REJECTED` and the reason until the ban expires.
#[derive(Default)]
pub(crate) struct Bans {
    map: std::sync::Mutex<BanMap>,
}

impl Bans {
    /// Bans `user` of `app` for `duration` (replacing an earlier ban).
    pub fn ban(&self, app: &str, user: &str, duration: Duration, reason: String) {
        let now = std::time::Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, (until, _)| *until > now);
        map.insert((app.into(), user.into()), (now + duration, reason));
    }

    /// Lifts the ban of `user` of `app`; whether there was one in force.
    pub fn lift(&self, app: &str, user: &str) -> bool {
        let now = std::time::Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&(Arc::from(app), Arc::from(user)))
            .is_some_and(|(until, _)| until > now)
    }

    /// Refuses a login of a banned user, with the ban's reason and time left.
    fn check(&self, app: &str, user: &str) -> Result<(), Failure> {
        let now = std::time::Instant::now();
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(&(Arc::from(app), Arc::from(user))) {
            Some((until, reason)) if *until > now => Err(Failure::new(
                ErrorCode::LoginRejected,
                format!(
                    "user id {user} is banned for {} more seconds: {reason}",
                    (*until - now).as_secs_f64().ceil() as u64
                ),
            )),
            _ => Ok(()),
        }
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

/// What a verified login token grants a session.
pub(crate) struct LoginCredential {
    /// The effective expiry (T53); `None` for an app without a certificate.
    expires_at: Option<u64>,
    /// The RTM2 permission tree that bounds the session, when the app enforces RTM2
    /// permissions and the login rests on an RTM2 service (T46); `None` = unbounded.
    rtm2_grants: Option<Arc<switchboard_token::Rtm2Grants>>,
}

/// Verifies a login token for `user` of `app` (R25, T61); an app without a
/// certificate checks nothing. `now`: the node's token clock, seconds.
pub(crate) fn verify_login_token(
    app: &AppConfig,
    user: &str,
    token: &str,
    now: u64,
) -> Result<LoginCredential, Failure> {
    let Some(cert) = &app.certificate else {
        return Ok(LoginCredential {
            expires_at: None,
            rtm2_grants: None,
        });
    };
    let opts = app.tokens.verify_options();
    let checked = switchboard_token::verify_token(token, &app.id, cert)
        .and_then(|t| Ok((t.check_login(user, now, &opts)?, t)));
    match checked {
        Ok((c, t)) => Ok(LoginCredential {
            expires_at: Some(c.expires_at),
            rtm2_grants: if app.tokens.rtm2_permissions {
                t.login_grants(user, now, &opts).map(Arc::new)
            } else {
                None
            },
        }),
        Err(e) => {
            let code = ErrorCode::from_i32(e.sdk_error_code()).unwrap_or(ErrorCode::InvalidToken);
            Err(Failure::new(
                code,
                format!("{}: {}", e.identifier(), e.description()),
            ))
        }
    }
}

/// `login`: a new session, or the resume of a live one when `session_id` names it.
pub(crate) async fn login(
    client: &mut Client,
    id: u32,
    req: pb::LoginRequest,
) -> Result<(), Failure> {
    if client.attached.is_some() {
        return Err(Failure::new(
            ErrorCode::DuplicateOperation,
            "this connection is already logged in",
        ));
    }
    names::validate_app_id(&req.app_id)?;
    let Some(app) = client.node.apps.get(&req.app_id).cloned() else {
        return Err(Failure::new(
            ErrorCode::InvalidAppId,
            format!("app id {} is not configured on this server", req.app_id),
        ));
    };
    // A browser from an origin this app does not allow (its own list, else the node's).
    admission::check_login_origin(&client.node.config, &app, client.origin.as_deref())?;
    names::validate_user_id(&req.user_id, app.limits.name_rules())?;
    let credential = verify_login_token(
        &app,
        &req.user_id,
        &req.token,
        client.node.config.clock.now_secs(),
    )?;
    let token_expires_at = credential.expires_at;
    // A banned user is refused, new login or resume alike.
    client.node.ext.get::<Bans>().check(&app.id, &req.user_id)?;
    let cfg = &client.node.config;
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
        if let Some(session) = Registry::of(&client.node).get(&req.app_id, &req.user_id) {
            if session.public_id == req.session_id && !session.ended() {
                // The session has its place; the connection it leaves is going.
                client.app_slot = Some(client.node.app_connections.take(&app, true)?);
                return resume(client, id, session, req, credential, hb).await;
            }
        }
        if Registry::of(&client.node).was_replaced(&req.session_id) {
            return Err(Failure::new(
                ErrorCode::SessionReplaced,
                "this session was replaced by a newer login of the same user id (SAME_UID_LOGIN, R28)",
            ));
        }
        // Held by another node (the client moved here): that node hands it over. Here
        // it is one more connection of the app (the one it left is on the other node),
        // so the app's limit applies before the handover.
        let slot = client.node.app_connections.take(&app, false)?;
        if let Some(session) = handover::take(
            &client.node,
            &app,
            &req.user_id,
            &req.session_id,
            token_expires_at,
        )
        .await
        {
            client.app_slot = Some(slot);
            return resume(client, id, session, req, credential, hb).await;
        }
        // A new session instead: its place is taken below, after the login rate.
        drop(slot);
    }
    // R31: a user id that logs in too often (several instances fighting over it,
    // say) is refused; resumes do not count.
    if !client
        .node
        .ext
        .get::<LoginRates>()
        .allow(&app, &req.user_id)
    {
        return Err(Failure::new(
            ErrorCode::OperationRateExceedLimitation,
            format!(
                "user id {} logged in more than {} times in a minute (LOGIN_TOO_FREQUENT, R31)",
                req.user_id, app.limits.max_logins_per_user_per_minute
            ),
        ));
    }
    // The app's connection limit (max_connections; the per-IP one is the gateway's).
    client.app_slot = Some(client.node.app_connections.take(&app, false)?);
    let session = Session::new(
        &client.node,
        app,
        req.user_id.as_str().into(),
        Duration::from_secs(u64::from(presence)),
        token_expires_at,
    );
    // Before the session is registered or attached, so no request runs unbounded.
    session.lock().rtm2_grants = credential.rtm2_grants;
    // One session per user (R28), across nodes too: a session of the user on another
    // node hears of this claim there and ends (`lifecycle::RemoteKicks`), unless it is
    // the session this client asked to resume (it moved here from that node).
    if let Some(sessions) = &client.node.sessions {
        if let Err(e) = sessions
            .claim_session(
                &session.app_id,
                &req.user_id,
                &session.public_id,
                Some(req.session_id.as_str()).filter(|s| !s.is_empty()),
            )
            .await
        {
            tracing::warn!(error = %e, user = %req.user_id, "session claim not written");
        }
    }
    // One session per user (R28): the one replaced here is kicked.
    if let Some(old) = Registry::of(&client.node).register(session.clone()) {
        Registry::of(&client.node).mark_replaced(&old, old.presence_timeout);
        let reason = format!(
            "user id {} logged in again from another connection",
            req.user_id
        );
        lifecycle::end(
            &client.node,
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
        .find(|p| p.channel_type == pb::ChannelType::User as i32 && p.channel_name == req.user_id)
        .and_then(|p| p.position.as_ref())
        .map(engine_position);
    let hold = if user_since.is_some() {
        vec![user_key.clone()]
    } else {
        Vec::new()
    };
    let Some(attachment) = session.attach(client.out.clone(), hold) else {
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
    if let Err(e) = client
        .node
        .hub
        .subscribe(&*client.node.broker, &user_key, sub)
        .await
    {
        lifecycle::end(&client.node, &session, None).await;
        return Err(Failure::new(ErrorCode::EngineUnavailable, e.to_string()));
    }
    if session.ended() {
        // Kicked while logging in: leave nothing subscribed behind.
        client
            .node
            .hub
            .unsubscribe(&*client.node.broker, &user_key, session.id)
            .await;
        return Err(Failure::new(
            ErrorCode::SessionReplaced,
            "replaced by a newer login during this one",
        ));
    }
    let recovery = match user_since {
        Some(since) => client
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
    let user_position = client
        .node
        .broker
        .position(&user_key)
        .await
        .unwrap_or_default();
    client.attached = Some(Attached {
        session: session.clone(),
        attachment,
        heartbeat_timeout: heartbeat_timeout(hb),
    });
    hooks::attached(&client.node, &session, false).await;
    client.send(
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
            Some(r) => replay(client, &user_key, r, &Filter::inbox(&session.user)).await,
            None => None,
        };
        let upto = recovery.as_ref().map_or(user_position, |r| r.position);
        session
            .outlet
            .release(&client.out, &user_key, last.or(Some(upto)));
    }
    tracing::info!(app = %session.app_id, user = %session.user, "logged in");
    Ok(())
}

/// Re-attaches this connection to a live session and replays, per channel, what the
/// client missed after the positions it sent (R52, R58).
async fn resume(
    client: &mut Client,
    id: u32,
    session: Arc<Session>,
    req: pb::LoginRequest,
    credential: LoginCredential,
    hb: u32,
) -> Result<(), Failure> {
    let token_expires_at = credential.expires_at;
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
        // The resume's token decides what the session may do from now on (T46).
        st.rtm2_grants = credential.rtm2_grants;
        // Channels the client follows but the session does not (a subscribe, join or
        // unsubscribe lost with the old connection): the client restores them.
        let unrestored = req
            .positions
            .iter()
            .filter(|p| match pb::ChannelType::try_from(p.channel_type) {
                Ok(pb::ChannelType::Message) => {
                    !st.subscriptions.contains_key(p.channel_name.as_str())
                }
                Ok(pb::ChannelType::Stream) => !st.streams.contains_key(p.channel_name.as_str()),
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
    hooks::replacing(&client.node, &session).await;
    let Some(attachment) = session.attach(client.out.clone(), held) else {
        return Err(Failure::new(
            ErrorCode::SessionNotFound,
            "the session ended while resuming",
        ));
    };
    client.attached = Some(Attached {
        session: session.clone(),
        attachment,
        heartbeat_timeout: heartbeat_timeout(hb),
    });
    hooks::attached(&client.node, &session, true).await;
    // Read every channel's gap first, so the reply can say which are incomplete.
    let mut recovered = Vec::with_capacity(keys.len());
    let mut gaps = Vec::new();
    for (key, filter) in keys {
        let recovery = match since.get(&(wire_type(key.kind), &*key.name)) {
            Some(from) => client
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
    let user_position = client
        .node
        .broker
        .position(&session.user_key())
        .await
        .unwrap_or_default();
    client.node.metrics.resumed(recovered.len(), gaps.len());
    client.send(
        id,
        Body::Login(pb::LoginReply {
            session_id: session.public_id.clone(),
            resumed: true,
            heartbeat_interval: hb,
            presence_timeout: u32::try_from(session.presence_timeout.as_secs()).unwrap_or(u32::MAX),
            timestamp: now_ms(),
            token_expires_at: token_expires_at.unwrap_or(0),
            unrestored_channels: unrestored,
            gap_channels: gaps,
            user_position: wire_position(user_position),
        }),
    );
    for (key, filter, recovery) in recovered {
        let last = match &recovery {
            Some(r) => replay(client, &key, r, &filter).await,
            None => None,
        };
        // Lock and storage events lost with the log: the state as it is now (R157,
        // R148), at the channel's position.
        if let Some(r) = recovery.as_ref().filter(|r| !r.complete) {
            let (metadata, locks) = filter.wants_state();
            let wants = Wants {
                presence: false,
                metadata,
                locks,
            };
            for s in hooks::snapshots(&client.node, &key, r.position, wants).await {
                client.push_wait(s).await;
            }
        }
        // Held live pushes newer than the replay follow; then the channel is live.
        let last = last.or_else(|| recovery.as_ref().map(|r| r.position));
        let at = match last {
            Some(p) => p,
            None => client.node.broker.position(&key).await.unwrap_or_default(),
        };
        for s in hooks::resumed_into(&client.node, &key, at).await {
            client.push_wait(s).await;
        }
        session.outlet.release(&client.out, &key, last);
    }
    hooks::resumed(client, &session).await;
    tracing::info!(app = %session.app_id, user = %session.user, "resumed");
    Ok(())
}

/// `renewToken` for the login token (R40, R41); stream channel tokens are renewed in
/// the stream module.
pub(crate) fn renew_token(
    client: &mut Client,
    id: u32,
    req: pb::RenewTokenRequest,
) -> Result<(), Failure> {
    let session = client.session()?;
    let credential = verify_login_token(
        &session.app,
        &session.user,
        &req.token,
        client.node.config.clock.now_secs(),
    )?;
    let expires = credential.expires_at;
    {
        let mut st = session.lock();
        st.token_expires_at = expires;
        st.will_expire_sent = false;
        // The new token's permission tree replaces the old one's (T46, T52).
        st.rtm2_grants = credential.rtm2_grants;
    }
    client.send(
        id,
        Body::RenewToken(pb::RenewTokenReply {
            timestamp: now_ms(),
            token_expires_at: expires.unwrap_or(0),
        }),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// R31: each app and user id has its own count in the minute (the table keeps a
    /// hash of the pair, not the ids).
    #[test]
    fn r31_login_rates_count_each_app_and_user_apart() {
        let mut app = AppConfig::new("a1b2c3d4e5f60718293a4b5c6d7e8f90", None);
        app.limits.max_logins_per_user_per_minute = 2;
        let mut other = AppConfig::new("0123456789abcdef0123456789abcdef", None);
        other.limits.max_logins_per_user_per_minute = 2;
        let rates = LoginRates::default();
        assert!(rates.allow(&app, "alice"));
        assert!(rates.allow(&app, "alice"));
        assert!(
            !rates.allow(&app, "alice"),
            "the third in the minute is refused"
        );
        assert!(!rates.allow(&app, "alice"), "and the next");
        assert!(
            rates.allow(&app, "bob"),
            "another user has a count of its own"
        );
        assert!(
            rates.allow(&other, "alice"),
            "the same user of another app too"
        );
        assert!(rates.allow(&other, "alice"));
        assert!(!rates.allow(&other, "alice"));
        app.limits.max_logins_per_user_per_minute = 0;
        assert!(rates.allow(&app, "alice"), "0 turns the limit off");
    }
}
