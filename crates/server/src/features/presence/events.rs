//! Presence events: members entering and leaving channels with the events others
//! get — single events, or one INTERVAL aggregate per interval while a channel is above
//! the occupancy threshold (R121) — the engine deadline of a lost session's
//! memberships and the sweep that times them out (R118), and the SNAPSHOT of a channel.
//!
//! Events travel in the channel's stream like topic events, so they are ordered with
//! the channel's messages, reach every node and are replayed on resume. Quiet members
//! produce no events and are never listed (R84–R87). The mode of each channel (single or
//! interval) and the aggregate being built are kept on the node that produces the
//! events ([`Modes`], in the node's extensions); a change of mode takes effect only
//! after occupancy has stayed across the threshold for the debounce time.

use crate::node::Node;
use crate::node::config::AppLimits;
use crate::session::Session;
use crate::session::hooks::{self, Departure, Happening};
use crate::wire::{state_map, wire_type};
use prost::Message as _;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard_engine::{ChannelKey, EventKind, State, StreamPosition};
use switchboard_protocol::now_ms;
use switchboard_protocol::pb::{self, server_message::Body};

/// One change to report.
pub(crate) enum Change {
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

pub(crate) fn user_state(user: &str, state: &State) -> pb::UserState {
    pb::UserState {
        user_id: user.to_string(),
        states: state_map(state),
    }
}

/// Publishes a presence event into the channel's stream.
async fn publish(node: &Node, key: &ChannelKey, publisher: &str, event: pb::PresenceEvent) {
    let payload = event.encode_to_vec();
    crate::node::hub::publish_event(&*node.broker, key, EventKind::Presence, publisher, payload)
        .await;
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
pub(crate) async fn report(
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
        let mut modes = node.ext.get::<Modes>().lock();
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
            state_changed: state_map(&s),
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
            let mut modes = node.ext.get::<Modes>().lock();
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
        for e in &expired {
            // A member of a node that stopped (the engine's expiry is one atomic step:
            // one node's sweep reports each).
            hooks::happened(
                &node,
                &Happening::Lapsed {
                    channel: &e.channel,
                    user: &e.user,
                },
            );
        }
        for e in expired.into_iter().filter(|e| !e.departed.quiet) {
            let Some(app) = node.apps.get(&*e.channel.app) else {
                continue;
            };
            let limits = app.limits;
            report(&node, &limits, &e.channel, &e.user, Change::Timeout).await;
        }
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
