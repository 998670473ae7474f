//! Presence (api.md §5, §9.3, R116–R133): members entering and leaving channels, their
//! temporary state, whoNow / whereNow / getState / setState / removeState, and the
//! presence events — single events, or one INTERVAL aggregate per interval while a
//! channel is above the occupancy threshold (R121).
//!
//! Events travel in the channel's stream like topic events, so they are ordered with
//! the channel's messages, reach every node and are replayed on resume. Quiet members
//! produce no events and are never listed (R84–R87). The mode of each channel (single or
//! interval) and the aggregate being built are kept on the node that produces the
//! events; a change of mode takes effect only after occupancy has stayed across the
//! threshold for the debounce time.

use crate::client::{Client, Failure};
use crate::config::AppLimits;
use crate::node::Node;
use crate::session::Session;
use prost::Message as _;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard_engine::{
    ChannelKey, ChannelKind, EngineError, EventKind, Presence, State, StreamPosition,
};
use switchboard_protocol::pb::{self, server_message::Body};
use switchboard_protocol::{ErrorCode, names, now_ms};

/// Most state bytes in one whoNow page (the page ends early past it).
const WHO_NOW_PAGE_BYTES: usize = 1 << 20;

/// Why a member left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Departure {
    /// Unsubscribe, leave, logout, kick: REMOTE_LEAVE.
    Leave,
    /// Its connection was lost for `presenceTimeout`: REMOTE_TIMEOUT (R118).
    Timeout,
}

/// One change to report.
enum Change {
    Join,
    Leave,
    Timeout,
    State(State),
}

/// Changes gathered during one interval.
#[derive(Default)]
struct Pending {
    join: Vec<String>,
    leave: Vec<String>,
    timeout: Vec<String>,
    states: BTreeMap<String, State>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.join.is_empty()
            && self.leave.is_empty()
            && self.timeout.is_empty()
            && self.states.is_empty()
    }

    fn add(&mut self, user: &str, change: Change) {
        match change {
            Change::Join => self.join.push(user.to_string()),
            Change::Leave => {
                self.states.remove(user);
                self.leave.push(user.to_string());
            }
            Change::Timeout => {
                self.states.remove(user);
                self.timeout.push(user.to_string());
            }
            Change::State(s) => {
                self.states.insert(user.to_string(), s);
            }
        }
    }
}

/// A channel's event mode.
#[derive(Default)]
struct Mode {
    /// In interval mode.
    interval: bool,
    /// Since when occupancy has been on the other side of the threshold.
    crossed_since: Option<Instant>,
    pending: Pending,
}

/// Event modes of the channels this node produces presence events for.
#[derive(Default)]
pub(crate) struct Modes {
    map: Mutex<HashMap<ChannelKey, Mode>>,
}

impl Modes {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ChannelKey, Mode>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The wire channel type of a channel kind.
pub(crate) fn wire_type(kind: ChannelKind) -> i32 {
    match kind {
        ChannelKind::Stream => pb::ChannelType::Stream as i32,
        ChannelKind::User | ChannelKind::UserMetadata => pb::ChannelType::User as i32,
        ChannelKind::Message => pb::ChannelType::Message as i32,
    }
}

fn to_map(state: &State) -> HashMap<String, String> {
    state.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn user_state(user: &str, state: &State) -> pb::UserState {
    pb::UserState {
        user_id: user.to_string(),
        states: to_map(state),
    }
}

/// Publishes a presence event into the channel's stream.
async fn publish(node: &Node, key: &ChannelKey, publisher: &str, event: pb::PresenceEvent) {
    let payload = event.encode_to_vec();
    crate::hub::publish_event(&*node.broker, key, EventKind::Presence, publisher, payload).await;
}

fn event(key: &ChannelKey, kind: pb::PresenceEventType, publisher: &str) -> pb::PresenceEvent {
    pb::PresenceEvent {
        event_type: kind as i32,
        channel_type: wire_type(key.kind),
        channel_name: key.name.to_string(),
        publisher: publisher.to_string(),
        timestamp: now_ms(),
        ..Default::default()
    }
}

/// Reports one change of a visible member: as a single event, or into the interval
/// aggregate when the channel is in interval mode (R121).
async fn report(
    node: &Arc<Node>,
    limits: &AppLimits,
    key: &ChannelKey,
    user: &str,
    change: Change,
) {
    let Some(presence) = &node.presence else {
        return;
    };
    let count = presence.count(key).await.unwrap_or(0);
    let now = Instant::now();
    let debounce = Duration::from_millis(limits.presence_interval_debounce_ms);
    let above = count > limits.presence_interval_threshold;
    let change = {
        let mut modes = node.presence_modes.lock();
        let mode = modes.entry(key.clone()).or_default();
        if mode.interval == above {
            mode.crossed_since = None;
        } else {
            let since = *mode.crossed_since.get_or_insert(now);
            if !mode.interval && now.duration_since(since) >= debounce {
                mode.interval = true;
                mode.crossed_since = None;
                tokio::spawn(interval_loop(node.clone(), *limits, key.clone()));
            }
        }
        if mode.interval {
            mode.pending.add(user, change);
            return;
        }
        if mode.crossed_since.is_none() {
            modes.remove(key);
        }
        change
    };
    let e = match change {
        Change::Join => event(key, pb::PresenceEventType::RemoteJoin, user),
        Change::Leave => event(key, pb::PresenceEventType::RemoteLeave, user),
        Change::Timeout => event(key, pb::PresenceEventType::RemoteTimeout, user),
        Change::State(s) => pb::PresenceEvent {
            state_changed: to_map(&s),
            ..event(key, pb::PresenceEventType::RemoteStateChanged, user)
        },
    };
    publish(node, key, user, e).await;
}

/// Sends one INTERVAL event per interval while the channel is in interval mode; ends
/// it once occupancy has stayed at or below the threshold for the debounce time.
async fn interval_loop(node: Arc<Node>, limits: AppLimits, key: ChannelKey) {
    let period = Duration::from_millis(limits.presence_interval_ms.max(1));
    let debounce = Duration::from_millis(limits.presence_interval_debounce_ms);
    let mut shutdown = node.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shutdown.changed() => return,
        }
        let Some(presence) = &node.presence else {
            return;
        };
        let count = presence.count(&key).await.unwrap_or(0);
        let now = Instant::now();
        let (pending, done) = {
            let mut modes = node.presence_modes.lock();
            let Some(mode) = modes.get_mut(&key) else {
                return;
            };
            let pending = std::mem::take(&mut mode.pending);
            let mut done = false;
            if count > limits.presence_interval_threshold {
                mode.crossed_since = None;
            } else {
                let since = *mode.crossed_since.get_or_insert(now);
                if now.duration_since(since) >= debounce {
                    done = true;
                    modes.remove(&key);
                }
            }
            (pending, done)
        };
        if !pending.is_empty() {
            let detail = pb::IntervalDetail {
                join: pending.join,
                leave: pending.leave,
                timeout: pending.timeout,
                user_state_list: pending
                    .states
                    .iter()
                    .map(|(u, s)| user_state(u, s))
                    .collect(),
                total_occupancy: u32::try_from(count).unwrap_or(u32::MAX),
            };
            let e = pb::PresenceEvent {
                interval: Some(detail),
                ..event(&key, pb::PresenceEventType::Interval, "")
            };
            publish(&node, &key, "", e).await;
        }
        if done {
            return;
        }
    }
}

/// How long after a session's own timeout its memberships lapse in the engine: the
/// session's timer normally removes them first; the engine deadline only catches what a
/// node that stopped would leave behind.
const EXPIRY_GRACE: Duration = Duration::from_secs(5);

/// Gives the session's memberships an engine deadline (its connection was lost) or
/// clears it (`None`: attached again).
pub(crate) async fn set_expiry(node: &Node, session: &Session, lapse_in: Option<Duration>) {
    let Some(presence) = &node.presence else {
        return;
    };
    let at = lapse_in
        .map(|d| now_ms() + u64::try_from((d + EXPIRY_GRACE).as_millis()).unwrap_or(u64::MAX));
    if let Err(e) = presence
        .set_expiry(&session.app_id, &session.user, at)
        .await
    {
        tracing::warn!(user = %session.user, error = %e, "presence deadline not set");
    }
}

/// Every second, removes the memberships whose engine deadline passed and tells the
/// others REMOTE_TIMEOUT, until the node shuts down.
pub(crate) async fn sweep(node: Arc<Node>) {
    let Some(presence) = node.presence.clone() else {
        return;
    };
    let mut shutdown = node.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => return,
        }
        let expired = match presence.expire_due(now_ms()).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "presence sweep failed");
                continue;
            }
        };
        for e in expired.into_iter().filter(|e| !e.departed.quiet) {
            let Some(app) = node.apps.get(&*e.channel.app) else {
                continue;
            };
            let limits = app.limits;
            report(&node, &limits, &e.channel, &e.user, Change::Timeout).await;
        }
    }
}

/// Checks the state a subscribe or join brings (R12, R128) against the limits, together
/// with what was set before entering; before anything changes (R171).
pub(crate) fn check_entering_state(
    session: &Session,
    key: &ChannelKey,
    given: &HashMap<String, String>,
) -> Result<(), Failure> {
    let limits = &session.app.limits;
    if given.is_empty() {
        return Ok(());
    }
    check_items(limits, given)?;
    let st = session.lock();
    let pending = st.pending_states.get(key);
    let added = given
        .keys()
        .filter(|k| !pending.is_some_and(|p| p.contains_key(*k)))
        .count();
    if pending.map_or(0, |p| p.len()) + added > limits.max_state_keys {
        return Err(too_many_keys(limits));
    }
    Ok(())
}

/// The state a member enters `key` with: what it set before entering (R129), then
/// `given` with the request.
pub(crate) fn entering_state(
    session: &Session,
    key: &ChannelKey,
    given: &HashMap<String, String>,
) -> State {
    let mut state = session
        .lock()
        .pending_states
        .remove(key)
        .unwrap_or_default();
    state.extend(given.iter().map(|(k, v)| (k.clone(), v.clone())));
    state
}

/// `user` enters `key` (a subscribe or a join), with `state` (R129); others hear of it
/// unless it is quiet (R85).
pub(crate) async fn enter(
    node: &Arc<Node>,
    session: &Session,
    key: &ChannelKey,
    quiet: bool,
    state: State,
) {
    let Some(presence) = &node.presence else {
        return;
    };
    match presence.enter(key, &session.user, quiet, state).await {
        Ok(Some(true)) => report(node, &session.app.limits, key, &session.user, Change::Join).await,
        // Turned quiet by a repeated subscribe (R81): to the others it has left (R86).
        Ok(Some(false)) => {
            report(node, &session.app.limits, key, &session.user, Change::Leave).await
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(channel = %key.name, error = %e, "presence enter failed"),
    }
}

/// `user` leaves `key`; its state goes with it (R132) and others hear of it unless it
/// was quiet.
pub(crate) async fn exit(node: &Arc<Node>, session: &Session, key: &ChannelKey, how: Departure) {
    let Some(presence) = &node.presence else {
        return;
    };
    match presence.exit(key, &session.user).await {
        Ok(Some(d)) if !d.quiet => {
            let change = match how {
                Departure::Leave => Change::Leave,
                Departure::Timeout => Change::Timeout,
            };
            report(node, &session.app.limits, key, &session.user, change).await;
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(channel = %key.name, error = %e, "presence exit failed"),
    }
}

/// The SNAPSHOT push of `key` for a member that just entered (R92; section 9.3):
/// every visible member with its state, as of `position`.
pub(crate) async fn snapshot(
    node: &Node,
    key: &ChannelKey,
    position: StreamPosition,
) -> Option<Body> {
    let Some(presence) = node.presence.as_ref() else {
        // Joined without a presence service (R133).
        return Some(Body::Presence(event(
            key,
            pb::PresenceEventType::ErrorOutOfService,
            "",
        )));
    };
    let mut members = Vec::new();
    let mut after: Option<Arc<str>> = None;
    loop {
        let page = presence.list(key, after.as_deref(), 1000).await.ok()?;
        members.extend(page.members.iter().map(|m| user_state(&m.user, &m.state)));
        after = page.members.last().map(|m| m.user.clone());
        if !page.more || after.is_none() {
            break;
        }
    }
    Some(Body::Presence(pb::PresenceEvent {
        snapshot: members,
        position: Some(pb::StreamPosition {
            epoch: position.epoch,
            offset: position.offset,
        }),
        ..event(key, pb::PresenceEventType::Snapshot, "")
    }))
}

/// Checks state items against R12 and R128.
fn check_items(limits: &AppLimits, items: &HashMap<String, String>) -> Result<(), Failure> {
    if items.is_empty() {
        return Err(Failure::new(
            ErrorCode::PresenceInvalidArgument,
            "setState needs at least one key (R128)",
        ));
    }
    for (k, v) in items {
        names::validate_state_key(k)?;
        if v.len() > limits.max_state_value_bytes {
            return Err(Failure::new(
                ErrorCode::PresenceStateValueSizeOverflow,
                format!(
                    "the value of {k} is {} bytes, over the limit of {} (R128)",
                    v.len(),
                    limits.max_state_value_bytes
                ),
            ));
        }
    }
    if items.len() > limits.max_state_keys {
        return Err(too_many_keys(limits));
    }
    Ok(())
}

fn too_many_keys(limits: &AppLimits) -> Failure {
    Failure::new(
        ErrorCode::PresenceStateCountOverflow,
        format!(
            "the state would have more than {} keys (R128)",
            limits.max_state_keys
        ),
    )
}

fn engine_failure(e: &EngineError) -> Failure {
    Failure::new(ErrorCode::PresenceOperationFailed, format!("engine: {e}"))
}

/// A presence call's channel: MESSAGE or STREAM (R125).
fn channel_key(session: &Session, channel_type: i32, name: &str) -> Result<ChannelKey, Failure> {
    names::validate_channel_name(name, session.app.limits.name_rules())?;
    match pb::ChannelType::try_from(channel_type) {
        Ok(pb::ChannelType::Message) => Ok(session.message_key(name)),
        Ok(pb::ChannelType::Stream) => Ok(session.stream_key(name)),
        _ => Err(Failure::new(
            ErrorCode::InvalidChannelType,
            "presence takes channel type MESSAGE or STREAM (R125)",
        )),
    }
}

/// Whether the session is in the channel, and quietly.
fn membership(session: &Session, key: &ChannelKey) -> Option<bool> {
    let st = session.lock();
    match key.kind {
        ChannelKind::Message => st.subscriptions.get(&key.name).map(|o| o.be_quiet),
        ChannelKind::Stream => st.streams.get(&key.name).map(|m| m.options.be_quiet),
        ChannelKind::User | ChannelKind::UserMetadata => None,
    }
}

impl Client {
    fn presence_engine(&self) -> Result<Arc<dyn Presence>, Failure> {
        self.node.presence.clone().ok_or_else(|| {
            Failure::new(
                ErrorCode::PresenceInactive,
                "presence is not available on this server",
            )
        })
    }

    /// `whoNow` (R122–R124).
    pub(crate) async fn who_now(&mut self, id: u32, req: pb::WhoNowRequest) -> Result<(), Failure> {
        let session = self.session()?;
        let key = channel_key(&session, req.channel_type, &req.channel_name)?;
        let presence = self.presence_engine()?;
        let reply = if req.include_user_id.unwrap_or(true) {
            let after = (!req.page.is_empty()).then_some(req.page.as_str());
            let size = session.app.limits.who_now_page_size.max(1);
            let mut page = presence
                .list(&key, after, size)
                .await
                .map_err(|e| engine_failure(&e))?;
            if req.include_state {
                // A page also ends once its states pass WHO_NOW_PAGE_BYTES, so that a
                // reply always fits the connection's queue (R128 allows 512 KB of
                // state per member).
                let mut bytes = 0;
                let keep = page
                    .members
                    .iter()
                    .position(|m| {
                        bytes += m
                            .state
                            .iter()
                            .map(|(k, v)| k.len() + v.len())
                            .sum::<usize>();
                        bytes > WHO_NOW_PAGE_BYTES
                    })
                    .map_or(page.members.len(), |i| i.max(1));
                if keep < page.members.len() {
                    page.members.truncate(keep);
                    page.more = true;
                }
            }
            let next_page = match (page.more, page.members.last()) {
                (true, Some(m)) => m.user.to_string(),
                _ => String::new(),
            };
            pb::WhoNowReply {
                timestamp: now_ms(),
                total_occupancy: u32::try_from(page.members.len()).unwrap_or(u32::MAX),
                occupants: page
                    .members
                    .iter()
                    .map(|m| {
                        let empty = State::new();
                        let state = if req.include_state { &m.state } else { &empty };
                        user_state(&m.user, state)
                    })
                    .collect(),
                next_page,
            }
        } else {
            let count = presence.count(&key).await.map_err(|e| engine_failure(&e))?;
            pb::WhoNowReply {
                timestamp: now_ms(),
                total_occupancy: u32::try_from(count).unwrap_or(u32::MAX),
                occupants: Vec::new(),
                next_page: String::new(),
            }
        };
        self.send(id, Body::WhoNow(reply));
        Ok(())
    }

    /// `whereNow` (R126).
    pub(crate) async fn where_now(
        &mut self,
        id: u32,
        req: pb::WhereNowRequest,
    ) -> Result<(), Failure> {
        let session = self.session()?;
        names::validate_user_id(&req.user_id, session.app.limits.name_rules())?;
        let presence = self.presence_engine()?;
        let channels = presence
            .channels_of(&session.app_id, &req.user_id)
            .await
            .map_err(|e| engine_failure(&e))?;
        self.send(
            id,
            Body::WhereNow(pb::WhereNowReply {
                timestamp: now_ms(),
                channels: channels
                    .iter()
                    .map(|k| pb::ChannelRef {
                        channel_type: wire_type(k.kind),
                        channel_name: k.name.to_string(),
                    })
                    .collect(),
            }),
        );
        Ok(())
    }

    /// `getState` (R131).
    pub(crate) async fn get_state(
        &mut self,
        id: u32,
        req: pb::GetStateRequest,
    ) -> Result<(), Failure> {
        let session = self.session()?;
        let key = channel_key(&session, req.channel_type, &req.channel_name)?;
        names::validate_user_id(&req.user_id, session.app.limits.name_rules())?;
        let presence = self.presence_engine()?;
        let Some(state) = presence
            .state(&key, &req.user_id)
            .await
            .map_err(|e| engine_failure(&e))?
        else {
            return Err(Failure::new(
                ErrorCode::PresenceUserNotExist,
                format!(
                    "user {} is not present in channel {} (R131)",
                    req.user_id, req.channel_name
                ),
            ));
        };
        self.send(
            id,
            Body::GetState(pb::GetStateReply {
                timestamp: now_ms(),
                user_id: req.user_id,
                states: to_map(&state),
            }),
        );
        Ok(())
    }

    /// `setState` (R127–R129): applied now when the caller is in the channel, else kept
    /// in the session and applied when it enters.
    pub(crate) async fn set_state(
        &mut self,
        id: u32,
        req: pb::SetStateRequest,
    ) -> Result<(), Failure> {
        let session = self.session()?;
        let key = channel_key(&session, req.channel_type, &req.channel_name)?;
        let limits = session.app.limits;
        check_items(&limits, &req.states)?;
        let presence = self.presence_engine()?;
        let items: State = req.states.into_iter().collect();
        let applied = match membership(&session, &key) {
            Some(quiet) => presence
                .set_state(&key, &session.user, items.clone(), limits.max_state_keys)
                .await
                .map_err(|e| match e {
                    EngineError::LimitReached(_) => too_many_keys(&limits),
                    other => engine_failure(&other),
                })?
                .map(|s| (quiet, s)),
            None => None,
        };
        match applied {
            Some((quiet, state)) => {
                if !quiet {
                    report(
                        &self.node,
                        &limits,
                        &key,
                        &session.user,
                        Change::State(state),
                    )
                    .await;
                }
            }
            None => {
                let mut st = session.lock();
                // A session can enter at most this many channels, so it keeps state for
                // no more than that many it is not in yet (each up to R128's size).
                let most = limits.max_subscriptions + limits.max_stream_channels;
                if !st.pending_states.contains_key(&key) && st.pending_states.len() >= most {
                    return Err(Failure::new(
                        ErrorCode::ChannelInstanceExceedLimitation,
                        format!(
                            "state is already kept for {most} channels not entered yet, as \
                             many as a client can be in (R129)"
                        ),
                    ));
                }
                let kept = st.pending_states.get(&key);
                let added = items
                    .keys()
                    .filter(|k| !kept.is_some_and(|p| p.contains_key(*k)))
                    .count();
                if kept.map_or(0, |p| p.len()) + added > limits.max_state_keys {
                    return Err(too_many_keys(&limits));
                }
                st.pending_states.entry(key).or_default().extend(items);
            }
        }
        self.send(
            id,
            Body::SetState(pb::SetStateReply {
                timestamp: now_ms(),
            }),
        );
        Ok(())
    }

    /// `removeState` (R130).
    pub(crate) async fn remove_state(
        &mut self,
        id: u32,
        req: pb::RemoveStateRequest,
    ) -> Result<(), Failure> {
        let session = self.session()?;
        let key = channel_key(&session, req.channel_type, &req.channel_name)?;
        let mut seen = HashSet::new();
        for k in &req.keys {
            names::validate_state_key(k)?;
            if !seen.insert(k.as_str()) {
                return Err(Failure::new(
                    ErrorCode::PresenceStateDuplicateKey,
                    format!("key {k} is listed twice (R130)"),
                ));
            }
        }
        let presence = self.presence_engine()?;
        let limits = session.app.limits;
        let applied = match membership(&session, &key) {
            Some(quiet) => presence
                .remove_state(&key, &session.user, &req.keys)
                .await
                .map_err(|e| engine_failure(&e))?
                .map(|s| (quiet, s)),
            None => None,
        };
        match applied {
            Some((quiet, state)) => {
                if !quiet {
                    report(
                        &self.node,
                        &limits,
                        &key,
                        &session.user,
                        Change::State(state),
                    )
                    .await;
                }
            }
            None => {
                let mut st = session.lock();
                if req.keys.is_empty() {
                    st.pending_states.remove(&key);
                } else if let Some(p) = st.pending_states.get_mut(&key) {
                    for k in &req.keys {
                        p.remove(k);
                    }
                }
            }
        }
        self.send(
            id,
            Body::RemoveState(pb::RemoveStateReply {
                timestamp: now_ms(),
            }),
        );
        Ok(())
    }
}
