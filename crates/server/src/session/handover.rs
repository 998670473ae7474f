//! A session moving between nodes (issue 15): a client whose resume lands on another
//! node takes its session from the node holding it, through the engine's cross-node
//! session registry. The holder lets go of it without ending it ([`give_up`]: nobody
//! sees it leave, its locks stay the user's, no `user.offline`) and sends what it held;
//! this node rebuilds it ([`take`]) and the login resumes it as if it had been here all
//! along (R52, R58: the shared recovery log fills in every channel and the inbox). When
//! the holder is gone or does not answer within [`DEADLINE`], the login starts a new
//! session as before (its client restores its channels itself).

use super::core::{PublishGrant, Session, StreamMembership, TopicRole};
use super::hooks;
use super::lifecycle;
use super::registry::Registry;
use crate::node::Node;
use crate::node::config::AppConfig;
use crate::node::hub::{Filter, JoinOptions, StreamFilter, SubOptions, Subscriber};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;
use switchboard_engine::{ChannelKey, ChannelKind, KickHandler, State};
use switchboard_protocol::DisconnectCode;

/// How long a resume waits for the node holding its session to hand it over before it
/// starts a new session instead. The connection is quiet meanwhile (its login is being
/// answered), so this stays well below the SDK's keep-alive: 1.5 heartbeat intervals of
/// at least 5 s by default, and its 4 s link-loss timeout (R46).
pub(crate) const DEADLINE: Duration = Duration::from_secs(2);

/// How long a node that handed a session over keeps its channels subscribed (see
/// [`give_up`]): past the new node's [`DEADLINE`] and its subscribing.
const LINGER: Duration = Duration::from_secs(10);

/// What a session held, as it travels to the node its client moved to.
#[derive(Serialize, Deserialize)]
struct Moved {
    presence_timeout_ms: u64,
    subscriptions: Vec<MovedSub>,
    streams: Vec<MovedStream>,
    user_metadata: Vec<String>,
    pending_states: Vec<MovedState>,
}

/// One message channel subscription with its options.
#[derive(Serialize, Deserialize)]
struct MovedSub {
    name: String,
    with_message: bool,
    with_presence: bool,
    be_quiet: bool,
    with_metadata: bool,
    with_lock: bool,
}

/// One stream channel membership: options, topic roles, followed publishers, token.
#[derive(Serialize, Deserialize)]
struct MovedStream {
    name: String,
    with_presence: bool,
    be_quiet: bool,
    with_metadata: bool,
    with_lock: bool,
    roles: Vec<MovedRole>,
    follows: Vec<(String, Vec<String>)>,
    token_expires_at: Option<u64>,
    will_expire_sent: bool,
    grant: MovedGrant,
}

/// One topic the member publishes in.
#[derive(Serialize, Deserialize)]
struct MovedRole {
    topic: String,
    meta: String,
    qos: i32,
    priority: i32,
    sync_with_media: bool,
}

/// A stream membership's publisher authentication (T51).
#[derive(Serialize, Deserialize)]
enum MovedGrant {
    NotRequired,
    Until(u64),
    Refused(i32, String),
}

/// State set for a channel not entered yet (R129).
#[derive(Serialize, Deserialize)]
struct MovedState {
    kind: u8,
    name: String,
    state: State,
}

fn kind_code(kind: ChannelKind) -> u8 {
    match kind {
        ChannelKind::Message => 0,
        ChannelKind::Stream => 1,
        ChannelKind::User => 2,
        ChannelKind::UserMetadata => 3,
    }
}

fn kind_of(code: u8) -> Option<ChannelKind> {
    Some(match code {
        0 => ChannelKind::Message,
        1 => ChannelKind::Stream,
        2 => ChannelKind::User,
        3 => ChannelKind::UserMetadata,
        _ => return None,
    })
}

/// The cross-node session registry's handler on this node: kicks end sessions as a
/// second login here would (R28), hand-over requests are answered by [`give_up`].
pub(crate) struct RemoteSessions(pub Weak<Node>);

#[async_trait::async_trait]
impl KickHandler for RemoteSessions {
    fn on_kick(&self, app: &str, user: &str, session_id: &str) {
        if let Some(node) = self.0.upgrade() {
            lifecycle::kicked_remotely(&node, app, user, session_id);
        }
    }

    async fn give_up(&self, app: &str, user: &str, session_id: &str) -> Option<String> {
        let node = self.0.upgrade()?;
        give_up(&node, app, user, session_id).await
    }
}

/// Lets go of this node's session `session_id` of `user` (its client resumes on another
/// node) and returns what it held; `None` when this node does not hold it (any more).
/// Nothing is left or released: the memberships, topic roles and locks are the user's
/// in the engine and the new node takes them over. A connection still attached (half
/// open) is closed quietly and counts as lost, as if it had been lost before: should
/// the asking node never take the session up, its memberships lapse after
/// `presenceTimeout` and its locks after their ttl (R153), as a lost session's would.
pub(crate) async fn give_up(
    node: &Arc<Node>,
    app: &str,
    user: &str,
    session_id: &str,
) -> Option<String> {
    let session = Registry::of(node).get(app, user)?;
    if session.public_id != session_id {
        return None;
    }
    let (was_attached, moved, keys) = {
        let mut st = session.lock();
        if st.ended {
            return None;
        }
        let was_attached = st.attached;
        st.ended = true;
        st.handed_over = true;
        st.attached = false;
        let subscriptions = std::mem::take(&mut st.subscriptions);
        let streams = std::mem::take(&mut st.streams);
        let user_metadata = std::mem::take(&mut st.user_metadata);
        let pending = std::mem::take(&mut st.pending_states);
        let mut keys: Vec<ChannelKey> = subscriptions
            .keys()
            .map(|n| session.message_key(n))
            .chain(streams.keys().map(|n| session.stream_key(n)))
            .chain(user_metadata.iter().map(|u| session.user_metadata_key(u)))
            .collect();
        keys.push(session.user_key());
        let moved = Moved {
            presence_timeout_ms: u64::try_from(session.presence_timeout.as_millis())
                .unwrap_or(u64::MAX),
            subscriptions: subscriptions
                .iter()
                .map(|(name, o)| MovedSub {
                    name: name.to_string(),
                    with_message: o.with_message,
                    with_presence: o.with_presence,
                    be_quiet: o.be_quiet,
                    with_metadata: o.with_metadata,
                    with_lock: o.with_lock,
                })
                .collect(),
            streams: streams
                .iter()
                .map(|(name, m)| MovedStream {
                    name: name.to_string(),
                    with_presence: m.options.with_presence,
                    be_quiet: m.options.be_quiet,
                    with_metadata: m.options.with_metadata,
                    with_lock: m.options.with_lock,
                    roles: m
                        .roles
                        .iter()
                        .map(|(topic, r)| MovedRole {
                            topic: topic.to_string(),
                            meta: r.meta.to_string(),
                            qos: r.qos,
                            priority: r.priority,
                            sync_with_media: r.sync_with_media,
                        })
                        .collect(),
                    follows: m
                        .filter
                        .follows()
                        .iter()
                        .map(|(t, users)| {
                            let mut users: Vec<String> =
                                users.iter().map(|u| u.to_string()).collect();
                            users.sort();
                            (t.to_string(), users)
                        })
                        .collect(),
                    token_expires_at: m.token_expires_at,
                    will_expire_sent: m.will_expire_sent,
                    grant: match &m.publish_grant {
                        PublishGrant::NotRequired => MovedGrant::NotRequired,
                        PublishGrant::Until(t) => MovedGrant::Until(*t),
                        PublishGrant::Refused(c, r) => MovedGrant::Refused(*c, r.clone()),
                    },
                })
                .collect(),
            user_metadata: user_metadata.iter().map(|u| u.to_string()).collect(),
            pending_states: pending
                .into_iter()
                .map(|(k, state)| MovedState {
                    kind: kind_code(k.kind),
                    name: k.name.to_string(),
                    state,
                })
                .collect(),
        };
        (was_attached, moved, keys)
    };
    session.outlet.close_quietly();
    if was_attached {
        hooks::connection_lost(node, &session).await;
    } else {
        // Lock waits of the lost connection ended with it already; nothing else waits.
        hooks::replacing(node, &session).await;
    }
    Registry::of(node).unregister(&session.app_id, &session.user, session.id);
    // Its channels stay subscribed here (pushes to it are dropped) until the new node
    // has surely subscribed them, so that the user's inbox always has a receiver and a
    // USER message sent meanwhile is not refused as sent to nobody.
    let (node2, id) = (node.clone(), session.id);
    tokio::spawn(async move {
        tokio::time::sleep(LINGER).await;
        for key in &keys {
            node2.hub.unsubscribe(&*node2.broker, key, id).await;
        }
    });
    let text = match serde_json::to_string(&moved) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(user = %user, error = %e, "session state not encoded for its hand-over");
            return None;
        }
    };
    tracing::info!(app = %app, user = %user, "session handed over to another node");
    Some(text)
}

/// Takes session `session_id` of `user` from the node the cross-node registry says holds
/// it and rebuilds it here, its channels delivered here and its memberships moved here
/// (nobody is told: to the others it never left). `None` when there is nothing to take
/// (no such claim, this node's own, the holder gone or silent past [`DEADLINE`]): the
/// login then starts a new session. The caller resumes the returned session.
pub(crate) async fn take(
    node: &Arc<Node>,
    app: &Arc<AppConfig>,
    user: &str,
    session_id: &str,
    token_expires_at: Option<u64>,
) -> Option<Arc<Session>> {
    let sessions = node.sessions.as_ref()?;
    let claim = match sessions.claim_of(&app.id, user).await {
        Ok(Some(c)) if &*c.session_id == session_id => c,
        Ok(_) => return None,
        Err(e) => {
            tracing::warn!(user = %user, error = %e, "session claim not read");
            return None;
        }
    };
    let text = match sessions.take_session(&app.id, user, &claim, DEADLINE).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            tracing::info!(user = %user, node = %claim.node, "session not handed over (its node is gone or did not answer); a new session starts");
            return None;
        }
        Err(e) => {
            tracing::warn!(user = %user, error = %e, "session hand-over failed");
            return None;
        }
    };
    let moved: Moved = match serde_json::from_str(&text) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(user = %user, error = %e, "a handed-over session's state was unreadable");
            return None;
        }
    };
    let session = Session::with_public_id(
        node,
        app.clone(),
        user.into(),
        Duration::from_millis(moved.presence_timeout_ms),
        token_expires_at,
        Some(session_id.to_string()),
    );
    let (subs, streams, followed) = rebuild(&session, moved);
    // The user's one session is this one now; the one taken is not kicked (it is gone
    // from its node already).
    if let Err(e) = sessions
        .claim_session(&session.app_id, user, session_id, Some(session_id))
        .await
    {
        tracing::warn!(error = %e, user = %user, "session claim not written");
    }
    if let Some(old) = Registry::of(node).register(session.clone()) {
        Registry::of(node).mark_replaced(&old, old.presence_timeout);
        let reason = format!("user id {user} logged in again from another connection");
        lifecycle::end(node, &old, Some((DisconnectCode::SameUidLogin, reason))).await;
    }
    for (key, filter) in subs.into_iter().chain(streams) {
        let sub = Subscriber {
            session: session.id,
            outlet: session.outlet.clone(),
            filter,
        };
        if let Err(e) = node.hub.subscribe(&*node.broker, &key, sub).await {
            // Not delivered here: the resume lists it as unrestored and the client
            // subscribes again.
            tracing::warn!(channel = %key.name, error = %e, "a handed-over channel not subscribed");
            let mut st = session.lock();
            if key.kind == ChannelKind::Message {
                st.subscriptions.remove(&key.name);
            } else {
                st.streams.remove(&key.name);
            }
            continue;
        }
        let Some(is_quiet) = quiet(&session, &key) else {
            continue;
        };
        if let Some(presence) = &node.presence {
            // The membership moves to this node, state and all (nothing to merge).
            match presence.enter(&key, user, is_quiet, State::new()).await {
                Ok(None) => {}
                Ok(Some(_)) => {
                    tracing::debug!(channel = %key.name, "a handed-over membership was not as left")
                }
                Err(e) => {
                    tracing::warn!(channel = %key.name, error = %e, "a handed-over membership not moved")
                }
            }
        }
    }
    let mut inbox_and_follows = vec![(session.user_key(), Filter::inbox(&session.user))];
    inbox_and_follows.extend(followed.iter().map(|u| {
        (
            session.user_metadata_key(u),
            Filter::user_metadata(&session.user),
        )
    }));
    for (key, filter) in inbox_and_follows {
        let sub = Subscriber {
            session: session.id,
            outlet: session.outlet.clone(),
            filter,
        };
        if let Err(e) = node.hub.subscribe(&*node.broker, &key, sub).await {
            tracing::warn!(channel = %key.name, error = %e, "a handed-over subscription not made");
        }
    }
    tracing::info!(app = %session.app_id, user = %user, node = %claim.node, "session taken over from another node");
    Some(session)
}

/// Whether the session is in `key` quietly (R84); `None` when it is not in it.
fn quiet(session: &Session, key: &ChannelKey) -> Option<bool> {
    let st = session.lock();
    match key.kind {
        ChannelKind::Message => st.subscriptions.get(&key.name).map(|o| o.be_quiet),
        ChannelKind::Stream => st.streams.get(&key.name).map(|m| m.options.be_quiet),
        _ => None,
    }
}

/// One channel to deliver here, with what its subscriber receives.
type Delivery = (ChannelKey, Filter);

/// Puts what the session held into the new session's state; returns the message and
/// stream channels to deliver, and the users whose metadata it follows.
fn rebuild(session: &Session, moved: Moved) -> (Vec<Delivery>, Vec<Delivery>, Vec<Arc<str>>) {
    let mut st = session.lock();
    let mut subs = Vec::new();
    for s in moved.subscriptions {
        let opts = SubOptions {
            with_message: s.with_message,
            with_presence: s.with_presence,
            be_quiet: s.be_quiet,
            with_metadata: s.with_metadata,
            with_lock: s.with_lock,
        };
        let name: Arc<str> = s.name.into();
        subs.push((
            session.message_key(&name),
            Filter::message(&opts, &session.user),
        ));
        st.subscriptions.insert(name, opts);
    }
    let mut streams = Vec::new();
    for m in moved.streams {
        let options = JoinOptions {
            with_presence: m.with_presence,
            be_quiet: m.be_quiet,
            with_metadata: m.with_metadata,
            with_lock: m.with_lock,
        };
        let filter = Arc::new(StreamFilter::new(session.user.clone(), options));
        {
            let mut follows = filter.follows_mut();
            for (topic, users) in m.follows {
                let users: HashSet<Arc<str>> = users.into_iter().map(Arc::from).collect();
                follows.insert(topic.into(), users);
            }
        }
        let roles: BTreeMap<Arc<str>, TopicRole> = m
            .roles
            .into_iter()
            .map(|r| {
                (
                    Arc::from(r.topic),
                    TopicRole {
                        meta: r.meta.into(),
                        qos: r.qos,
                        priority: r.priority,
                        sync_with_media: r.sync_with_media,
                    },
                )
            })
            .collect();
        let name: Arc<str> = m.name.into();
        streams.push((session.stream_key(&name), Filter::Stream(filter.clone())));
        st.streams.insert(
            name,
            StreamMembership {
                options,
                roles,
                filter,
                token_expires_at: m.token_expires_at,
                will_expire_sent: m.will_expire_sent,
                publish_grant: match m.grant {
                    MovedGrant::NotRequired => PublishGrant::NotRequired,
                    MovedGrant::Until(t) => PublishGrant::Until(t),
                    MovedGrant::Refused(c, r) => PublishGrant::Refused(c, r),
                },
            },
        );
    }
    let followed: Vec<Arc<str>> = moved.user_metadata.into_iter().map(Arc::from).collect();
    st.user_metadata.extend(followed.iter().cloned());
    let pending: HashMap<ChannelKey, State> = moved
        .pending_states
        .into_iter()
        .filter_map(|p| {
            let kind = kind_of(p.kind)?;
            Some((
                ChannelKey::new(session.app_id.clone(), kind, p.name),
                p.state,
            ))
        })
        .collect();
    st.pending_states.extend(pending);
    (subs, streams, followed)
}
