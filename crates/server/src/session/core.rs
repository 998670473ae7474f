//! The session itself: what a logged-in user holds on this node (subscriptions, stream
//! memberships with their topic roles, followed users' metadata, state kept for
//! channels not entered yet, the credentials' expiry) behind one small lock, and its
//! outlet, where the hub delivers its pushes whatever connection is attached.

use crate::node::Node;
use crate::node::config::AppConfig;
use crate::node::hub::{JoinOptions, StreamFilter, SubOptions};
use crate::node::outbound::Outbound;
use crate::node::outlet::Outlet;
use std::collections::hash_map::{DefaultHasher, RandomState};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use switchboard_engine::{ChannelKey, ChannelKind, KeyMap};

/// The hasher of a session's maps: SipHash under one random key per process, kept
/// nowhere in the maps (a `RandomState` is 16 B in each map of every session, idle
/// or not; docs/benchmarks.md).
#[derive(Clone, Copy, Default)]
pub(crate) struct SessionHasher;

impl BuildHasher for SessionHasher {
    type Hasher = DefaultHasher;

    fn build_hasher(&self) -> DefaultHasher {
        static KEYS: OnceLock<RandomState> = OnceLock::new();
        KEYS.get_or_init(RandomState::new).build_hasher()
    }
}

/// A map of a session's state, hashed by [`SessionHasher`].
pub(crate) type SessionMap<K, V> = HashMap<K, V, SessionHasher>;

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
    /// What the channel's RTC token grants for publisher authentication (T51).
    pub publish_grant: PublishGrant,
}

/// Publisher authentication (T51) of one stream channel membership, from its RTC token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum PublishGrant {
    /// Not required (the app does not turn it on, or has no certificate).
    #[default]
    NotRequired,
    /// publishDataStream granted until this time, seconds since the epoch.
    Until(u64),
    /// Not granted: the code and reason a topic role or message is refused with.
    Refused(i32, String),
}

/// Mutable part of a session, under one small lock (never held across `.await`).
pub(crate) struct SessionState {
    /// Subscribed MESSAGE channels.
    pub subscriptions: SessionMap<Arc<str>, SubOptions>,
    /// Joined STREAM channels.
    pub streams: SessionMap<Arc<str>, StreamMembership>,
    /// Users whose metadata the session follows (subscribeUserMetadata).
    pub user_metadata: HashSet<Arc<str>, SessionHasher>,
    /// State set for channels the user is not in yet, applied when it enters (R129).
    pub pending_states: KeyMap<switchboard_engine::State>,
    /// Effective expiry of the login credential, seconds since the epoch.
    pub token_expires_at: Option<u64>,
    /// Whether the will-expire push for the current credential went out.
    pub will_expire_sent: bool,
    /// What the login token's RTM2 permission tree grants, when the app enforces it
    /// and the login rests on an RTM2 service (T46); `None` = not bounded.
    pub rtm2_grants: Option<Arc<switchboard_token::Rtm2Grants>>,
    /// Incremented on every attach; a detach timer only fires for its own attachment.
    pub attachment: u64,
    /// Whether a connection is attached.
    pub attached: bool,
    /// Set once; an ended session accepts nothing more.
    pub ended: bool,
    /// A newer login of the user on another node replaced it (R28): its end leaves the
    /// user's locks and claim to that session.
    pub superseded: bool,
    /// Handed over to another node, where its client resumed (ended here without a
    /// departure).
    pub handed_over: bool,
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
        Self::with_public_id(node, app, user, presence_timeout, token_expires_at, None)
    }

    /// A new session with no connection attached yet, under `public_id` when given (a
    /// session taken over from another node keeps the id its client resumes with).
    pub fn with_public_id(
        node: &Node,
        app: Arc<AppConfig>,
        user: Arc<str>,
        presence_timeout: Duration,
        token_expires_at: Option<u64>,
        public_id: Option<String>,
    ) -> Arc<Session> {
        let id = node.next_session_id();
        Arc::new(Session {
            id,
            public_id: public_id
                .unwrap_or_else(|| format!("{:016x}{:016x}", rand::random::<u64>(), id)),
            app_id: node.app_id(&app.id),
            app,
            user,
            presence_timeout,
            outlet: Arc::new(Outlet::new(node.config.recovery_hold_bytes)),
            state: Mutex::new(SessionState {
                subscriptions: Default::default(),
                streams: Default::default(),
                pending_states: Default::default(),
                user_metadata: Default::default(),
                token_expires_at,
                will_expire_sent: false,
                rtm2_grants: None,
                attachment: 0,
                attached: false,
                ended: false,
                superseded: false,
                handed_over: false,
            }),
        })
    }

    /// The session's state.
    pub fn lock(&self) -> MutexGuard<'_, SessionState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This session as the acting app and user of a feature core.
    pub fn actor(&self) -> crate::node::Actor {
        crate::node::Actor::new(&self.app, &self.app_id, &self.user)
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

    /// Whether the session has ended.
    pub fn ended(&self) -> bool {
        self.lock().ended
    }
}
