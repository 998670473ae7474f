//! The session: what a logged-in user holds on this node — subscriptions, the login
//! credential's expiry, its outlet — independent of any one connection. A session
//! outlives a lost connection for `presenceTimeout` (api.md R52): a resume within it
//! re-attaches a new connection and others see nothing; after it the session ends
//! (R53). Logout, a kick and token expiry end it at once.

use crate::config::AppConfig;
use crate::hub::StreamFilter;
use crate::node::Node;
use crate::outbound::Outbound;
use crate::outlet::Outlet;
use crate::presence::Departure;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use switchboard_engine::{ChannelKey, ChannelKind};
use switchboard_protocol::DisconnectCode;

/// Options of one message channel subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SubOptions {
    pub with_message: bool,
    pub with_presence: bool,
    pub be_quiet: bool,
    pub with_metadata: bool,
    pub with_lock: bool,
}

/// One topic the member publishes in, as it asked (R97).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopicRole {
    /// Publisher meta shown to others.
    pub meta: Arc<str>,
    /// qos, priority, syncWithMedia as given (kept; delivery is always ordered, R72).
    pub qos: i32,
    pub priority: i32,
    pub sync_with_media: bool,
}

/// Options of one stream channel membership (R90).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JoinOptions {
    pub with_presence: bool,
    pub be_quiet: bool,
    pub with_metadata: bool,
    pub with_lock: bool,
}

/// A joined STREAM channel.
pub(crate) struct StreamMembership {
    /// Join options.
    pub options: JoinOptions,
    /// Topics the member publishes in.
    pub roles: BTreeMap<Arc<str>, TopicRole>,
    /// Followed publishers per topic, shared with the hub.
    pub filter: Arc<StreamFilter>,
    /// Effective expiry of the channel's RTC token, seconds since the epoch.
    pub token_expires_at: Option<u64>,
    /// Whether the will-expire push for the current token went out.
    pub will_expire_sent: bool,
}

/// Mutable part of a session, under one small lock (never held across `.await`).
pub(crate) struct SessionState {
    /// Subscribed MESSAGE channels.
    pub subscriptions: HashMap<Arc<str>, SubOptions>,
    /// Joined STREAM channels.
    pub streams: HashMap<Arc<str>, StreamMembership>,
    /// Users whose metadata the session follows (subscribeUserMetadata).
    pub user_metadata: std::collections::HashSet<Arc<str>>,
    /// State set for channels the user is not in yet, applied when it enters (R129).
    pub pending_states: HashMap<ChannelKey, switchboard_engine::State>,
    /// Effective expiry of the login credential, seconds since the epoch.
    pub token_expires_at: Option<u64>,
    /// Whether the will-expire push for the current credential went out.
    pub will_expire_sent: bool,
    /// Incremented on every attach; a detach timer only fires for its own attachment.
    pub attachment: u64,
    /// Whether a connection is attached.
    pub attached: bool,
    /// Set once; an ended session accepts nothing more.
    pub ended: bool,
}

/// A logged-in user's session.
pub(crate) struct Session {
    /// Internal number (unique per node).
    pub id: u64,
    /// The opaque id the client resumes with.
    pub public_id: String,
    /// The app.
    pub app: Arc<AppConfig>,
    /// The app id, shared.
    pub app_id: Arc<str>,
    /// The user id.
    pub user: Arc<str>,
    /// How long the session outlives a lost connection.
    pub presence_timeout: Duration,
    /// Where pushes go.
    pub outlet: Arc<Outlet>,
    state: Mutex<SessionState>,
}

impl Session {
    /// A new session with no connection attached yet.
    pub fn new(
        node: &Node,
        app: Arc<AppConfig>,
        user: Arc<str>,
        presence_timeout: Duration,
        token_expires_at: Option<u64>,
    ) -> Arc<Session> {
        let id = node.next_session_id();
        Arc::new(Session {
            id,
            public_id: format!("{:016x}{:016x}", rand::random::<u64>(), id),
            app_id: app.id.as_str().into(),
            app,
            user,
            presence_timeout,
            outlet: Arc::new(Outlet::new(node.config.recovery_hold_bytes)),
            state: Mutex::new(SessionState {
                subscriptions: HashMap::new(),
                streams: HashMap::new(),
                pending_states: HashMap::new(),
                user_metadata: Default::default(),
                token_expires_at,
                will_expire_sent: false,
                attachment: 0,
                attached: false,
                ended: false,
            }),
        })
    }

    /// The session's state.
    pub fn lock(&self) -> MutexGuard<'_, SessionState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The key of this user's own USER channel (its inbox).
    pub fn user_key(&self) -> ChannelKey {
        ChannelKey::new(self.app_id.clone(), ChannelKind::User, self.user.clone())
    }

    /// The key of one of this app's STREAM channels.
    pub fn stream_key(&self, name: &str) -> ChannelKey {
        ChannelKey::new(self.app_id.clone(), ChannelKind::Stream, name)
    }

    /// The stream of one user's metadata events (subscribeUserMetadata).
    pub fn user_metadata_key(&self, user: &str) -> ChannelKey {
        ChannelKey::new(self.app_id.clone(), ChannelKind::UserMetadata, user)
    }

    /// The key of one of this app's MESSAGE channels.
    pub fn message_key(&self, name: &str) -> ChannelKey {
        ChannelKey::new(self.app_id.clone(), ChannelKind::Message, name)
    }

    /// Attaches a connection's queue, replacing (and quietly closing) any other, and
    /// holds back `recovering` channels until they are released. Returns the attachment
    /// number the connection must present to detach, or `None` if the session ended.
    pub fn attach(&self, queue: Arc<Outbound>, recovering: Vec<ChannelKey>) -> Option<u64> {
        let attachment = {
            let mut st = self.lock();
            if st.ended {
                return None;
            }
            st.attachment += 1;
            st.attached = true;
            st.attachment
        };
        if let Some(old) = self.outlet.attach(queue, recovering) {
            // The old connection is half-open or gone; it ends without a word.
            old.close_quietly();
        }
        Some(attachment)
    }

    /// The connection of `attachment` was lost: keep the session for
    /// `presenceTimeout`, then end it unless a resume re-attached it meanwhile.
    pub fn detach(self: &Arc<Self>, node: &Arc<Node>, queue: &Arc<Outbound>, attachment: u64) {
        {
            let mut st = self.lock();
            if st.ended || st.attachment != attachment {
                return;
            }
            st.attached = false;
        }
        self.outlet.detach(queue);
        let (session, node) = (self.clone(), node.clone());
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + session.presence_timeout;
            let still_away = {
                let st = session.lock();
                !st.attached && st.attachment == attachment
            };
            if still_away {
                crate::lock::connection_lost(&node, &session).await;
            }
            crate::presence::set_expiry(&node, &session, Some(session.presence_timeout)).await;
            // A resume may have cleared the deadline before it was set: clear it again
            // (the resume attached before clearing, so this sees it).
            let back = {
                let st = session.lock();
                st.attached || st.attachment != attachment
            };
            if back {
                crate::presence::set_expiry(&node, &session, None).await;
                crate::lock::connection_back(&node, &session).await;
            }
            let detached = |st: &SessionState| !st.attached && st.attachment == attachment;
            // Credentials keep lapsing while nobody is attached (T55): a stream channel
            // whose token expires is left (others see it go; a resume then lists it as
            // unrestored), an expired login token ends the session.
            loop {
                let (next_token, login_expired, streams) = {
                    let st = session.lock();
                    if st.ended || !detached(&st) {
                        return;
                    }
                    let now = switchboard_protocol::now_ms() / 1000;
                    let expired: Vec<Arc<str>> = st
                        .streams
                        .iter()
                        .filter(|(_, m)| m.token_expires_at.is_some_and(|e| now >= e))
                        .map(|(n, _)| n.clone())
                        .collect();
                    let next = st
                        .streams
                        .values()
                        .filter_map(|m| m.token_expires_at)
                        .chain(st.token_expires_at)
                        .filter(|e| *e > now)
                        .min();
                    let login = st.token_expires_at.is_some_and(|e| now >= e);
                    (next, login, expired)
                };
                if login_expired {
                    end_if(&node, &session, None, Departure::Leave, detached).await;
                    return;
                }
                for name in streams {
                    let removed = session.lock().streams.remove(&name).is_some();
                    if removed {
                        crate::stream::depart(&node, &session, &name, Departure::Leave).await;
                    }
                }
                let wake = match next_token {
                    Some(secs) => {
                        let ms = (secs * 1000).saturating_sub(switchboard_protocol::now_ms());
                        deadline.min(tokio::time::Instant::now() + Duration::from_millis(ms))
                    }
                    None => deadline,
                };
                tokio::time::sleep_until(wake).await;
                if tokio::time::Instant::now() >= deadline {
                    break;
                }
            }
            // Checked and decided under one lock, so a resume at the boundary either
            // wins (and the session lives) or comes after the end (and starts anew).
            if end_if(&node, &session, None, Departure::Timeout, detached).await {
                tracing::debug!(user = %session.user, "session timed out");
            }
        });
    }

    /// Whether the session has ended.
    pub fn ended(&self) -> bool {
        self.lock().ended
    }
}

/// Ends `session` once: tells its connection `code` (if given), leaves every channel and
/// unregisters the user. Later calls do nothing.
pub(crate) async fn end(
    node: &Arc<Node>,
    session: &Arc<Session>,
    code: Option<(DisconnectCode, String)>,
) {
    end_if(node, session, code, Departure::Leave, |_| true).await;
}

/// [`end`], but only if `still` holds of the session's state at the moment it ends (one
/// critical section); `how` says what others are told (REMOTE_LEAVE or REMOTE_TIMEOUT).
/// Returns whether it ended the session.
pub(crate) async fn end_if(
    node: &Arc<Node>,
    session: &Arc<Session>,
    code: Option<(DisconnectCode, String)>,
    how: Departure,
    still: impl FnOnce(&SessionState) -> bool,
) -> bool {
    let (subscriptions, streams, user_metadata) = {
        let mut st = session.lock();
        if st.ended || !still(&st) {
            return false;
        }
        st.ended = true;
        st.attached = false;
        (
            std::mem::take(&mut st.subscriptions),
            std::mem::take(&mut st.streams),
            std::mem::take(&mut st.user_metadata),
        )
    };
    match code {
        Some((code, reason)) => session.outlet.close(code, reason),
        // Any connection still attached resumes into a new session.
        None => session.outlet.close_quietly(),
    }
    let broker = &*node.broker;
    for name in subscriptions.keys() {
        let key = session.message_key(name);
        node.hub.unsubscribe(broker, &key, session.id).await;
        crate::presence::exit(node, session, &key, how).await;
    }
    node.hub
        .unsubscribe(broker, &session.user_key(), session.id)
        .await;
    for name in streams.keys() {
        crate::stream::depart(node, session, name, how).await;
    }
    crate::storage::session_ended(node, session, user_metadata.into_iter().collect()).await;
    // A logout, kick or timeout releases the user's locks at once (R153 is about a
    // lost connection, which keeps them for their ttl).
    crate::lock::session_ended(node, session).await;
    node.registry
        .unregister(&session.app_id, &session.user, session.id);
    true
}
