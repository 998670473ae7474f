//! Webhooks: what happens in an app told to its backend over HTTP, per app. Users
//! coming online and going offline, kicked and banned; channels occupied (first member
//! in) and vacated (last member out); members joining, leaving and timing out; channel
//! and user metadata written; locks acquired, released, revoked and expired. Each event
//! is queued as JSON and POSTed, signed, by its receiver's background task:
//! HMAC-SHA256 over `"{timestamp}.{body}"` with the receiver's secret.
//!
//! Routing: an app with its own receiver (`[apps.webhooks]` with `url`) sends there
//! only; every other app sends to the server's receiver (`--webhook-url`), if any. An
//! app's event filter and debounce default to the server's. The debounce holds a leave
//! (and the vacated it may cause) for the app's delay: a join of the same user in the
//! same channel within it cancels both, and nothing is sent (as Pusher does).
//!
//! The events come from the lifecycle hooks and from [`Happening`]s, the one place
//! where the WebSocket path and the server API report a change, so each is sent once,
//! by the node that made the change. Membership is counted per node: a session moved
//! here by a resume is adopted without a join, one handed over to another node is
//! forgotten without a leave, a superseded one leaves the channels its successor holds
//! with reason `replaced`; so each node's occupied and vacated pair up, and each
//! session's joins and leaves. Every queue is bounded and filled with
//! `try_send`, so a slow or dead receiver costs dropped events (counted), never a
//! blocked session; a failed delivery is retried with exponential backoff.

use crate::node::Node;
use crate::node::config::AppConfig;
use crate::session::core::Session;
use crate::session::hooks::{Departure, Ended, Happening, Hooks, LockChange};
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::Sha256;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use switchboard_engine::{ChannelKey, ChannelKind, WriteOp};
use switchboard_protocol::DisconnectCode;
use tokio::sync::mpsc;

/// Header carrying the signature: `v1=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>`.
pub const SIGNATURE_HEADER: &str = "x-switchboard-signature";
/// Header carrying the signing time, seconds since the epoch (a receiver refuses old
/// ones: replay safety).
pub const TIMESTAMP_HEADER: &str = "x-switchboard-timestamp";
/// Header carrying the event's unique id (the same on every retry: deduplication).
pub const EVENT_ID_HEADER: &str = "x-switchboard-event-id";

/// The event names, as in the `event` field and the `events` filter.
pub const EVENTS: [&str; 14] = [
    "user.online",
    "user.offline",
    "user.kicked",
    "user.banned",
    "channel.occupied",
    "channel.vacated",
    "member.joined",
    "member.left",
    "member.timed_out",
    "metadata.changed",
    "lock.acquired",
    "lock.released",
    "lock.revoked",
    "lock.expired",
];

/// Where and how webhooks are delivered (the server's receiver; an app's own receiver
/// takes its queue, attempts, backoff and timeout from here).
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// The receiver's URL (`http://` or `https://`).
    pub url: String,
    /// The signing secret.
    pub secret: String,
    /// Events to send (names of [`EVENTS`]); empty: all.
    pub events: Vec<String>,
    /// How long a leave waits for a join of the same user in the same channel that
    /// cancels both (default zero: off).
    pub debounce: Duration,
    /// Events held for delivery; past it new events are dropped (and counted).
    pub queue: usize,
    /// Attempts per event before it is given up (and counted as failed).
    pub max_attempts: u32,
    /// Wait before the first retry; doubled on each further one (at most 30 s).
    pub initial_backoff: Duration,
    /// Time allowed for one delivery attempt.
    pub timeout: Duration,
}

impl WebhookConfig {
    /// Defaults for `url` and `secret`: every event, no debounce, 10000 queued, 5
    /// attempts from 500 ms of backoff, 5 s per attempt.
    pub fn new(url: impl Into<String>, secret: impl Into<String>) -> WebhookConfig {
        WebhookConfig {
            url: url.into(),
            secret: secret.into(),
            events: Vec::new(),
            debounce: Duration::ZERO,
            queue: 10_000,
            max_attempts: 5,
            initial_backoff: Duration::from_millis(500),
            timeout: Duration::from_secs(5),
        }
    }
}

/// Checks a receiver URL, a secret and an event filter; the reason when one is wrong.
pub fn check_webhook(url: &str, secret: &str, events: &[String]) -> Result<(), String> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("{url:?} is not an http:// or https:// URL"));
    }
    if secret.is_empty() {
        return Err("the webhook secret is empty".into());
    }
    check_events(events)
}

fn check_events(events: &[String]) -> Result<(), String> {
    match events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
        Some(e) => Err(format!("unknown event {e:?}; known: {}", EVENTS.join(", "))),
        None => Ok(()),
    }
}

/// Checks an app's `[apps.webhooks]`: a `url` comes with a `secret` (and the other way
/// round), and every event name is known.
pub fn check_app_webhooks(app: &AppConfig) -> Result<(), String> {
    let Some(w) = &app.webhooks else {
        return Ok(());
    };
    match (&w.url, &w.secret) {
        (Some(url), Some(secret)) => check_webhook(url, secret, &[])?,
        (None, None) => {}
        (Some(_), None) => return Err("webhooks.url needs webhooks.secret".into()),
        (None, Some(_)) => return Err("webhooks.secret is set without webhooks.url".into()),
    }
    check_events(w.events.as_deref().unwrap_or_default())
}

/// One event as POSTed: the common fields, then the event's own.
#[derive(Serialize, Debug, Clone)]
struct Event {
    id: String,
    event: &'static str,
    app_id: String,
    /// Milliseconds since the epoch when it happened.
    time_ms: u64,
    #[serde(flatten)]
    fields: Map<String, Value>,
}

impl Event {
    fn new(event: &'static str, app_id: &str, fields: Value) -> Event {
        let fields = match fields {
            Value::Object(m) => m,
            other => Map::from_iter([("data".to_string(), other)]),
        };
        Event {
            id: event_id(),
            event,
            app_id: app_id.to_string(),
            time_ms: now_ms(),
            fields,
        }
    }
}

/// Delivery counts of one receiver (read by `/metrics`).
#[derive(Default)]
pub(crate) struct WebhookStats {
    /// Events delivered (2xx).
    pub delivered: AtomicU64,
    /// Attempts that failed and were retried.
    pub retries: AtomicU64,
    /// Events dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Events given up after the last attempt.
    pub failed: AtomicU64,
    /// Events not sent because a leave and a join within the debounce cancelled out.
    pub debounced: AtomicU64,
}

/// One receiver: its queue and counts.
struct Sink {
    /// `default` for the server's receiver, else the app id.
    label: String,
    tx: mpsc::Sender<Event>,
    stats: Arc<WebhookStats>,
}

/// Where an app's events go, which of them, with which debounce.
#[derive(Clone)]
struct Route {
    sink: Arc<Sink>,
    events: Arc<[String]>,
    debounce: Duration,
}

impl Route {
    fn wants(&self, name: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|e| e == name)
    }
}

/// A held event of the debounce.
#[derive(Hash, PartialEq, Eq, Clone)]
enum Held {
    /// A member's leave (or timeout).
    Leave(ChannelKey, Arc<str>),
    /// A channel's vacated.
    Vacated(ChannelKey),
}

/// Members of the channels on this node (sessions), the channels of each session, and
/// the held events.
#[derive(Default)]
struct Tracking {
    members: HashMap<ChannelKey, HashSet<u64>>,
    of_session: HashMap<u64, HashSet<ChannelKey>>,
    held: HashMap<Held, u64>,
    next_hold: u64,
}

/// The node's webhook routes; empty when webhooks are off.
#[derive(Default)]
pub(crate) struct Webhooks {
    default: Option<Route>,
    apps: HashMap<String, Route>,
    sinks: Vec<Arc<Sink>>,
    tracking: Mutex<Tracking>,
}

fn start_sink(label: String, config: WebhookConfig) -> Arc<Sink> {
    let (tx, rx) = mpsc::channel(config.queue.max(1));
    let stats = Arc::new(WebhookStats::default());
    tokio::spawn(deliver(config, rx, stats.clone()));
    Arc::new(Sink { label, tx, stats })
}

impl Webhooks {
    /// Starts the delivery tasks of the server's receiver (`default`) and of the apps'
    /// own (call within the runtime). An app whose settings fail
    /// [`check_app_webhooks`] keeps the server's receiver (and the error is logged).
    pub fn start(default: Option<WebhookConfig>, apps: &[AppConfig]) -> Webhooks {
        let mut hooks = Webhooks::default();
        let template = default
            .clone()
            .unwrap_or_else(|| WebhookConfig::new(String::new(), String::new()));
        if let Some(config) = default {
            let events: Arc<[String]> = config.events.clone().into();
            let debounce = config.debounce;
            let sink = start_sink("default".into(), config);
            hooks.sinks.push(sink.clone());
            hooks.default = Some(Route {
                sink,
                events,
                debounce,
            });
        }
        for app in apps {
            let Some(w) = &app.webhooks else { continue };
            if let Err(e) = check_app_webhooks(app) {
                tracing::error!(app = %app.id, error = %e, "the app's webhooks are ignored");
                continue;
            }
            let sink = match (&w.url, &w.secret) {
                (Some(url), Some(secret)) => {
                    let config = WebhookConfig {
                        url: url.clone(),
                        secret: secret.clone(),
                        ..template.clone()
                    };
                    let sink = start_sink(app.id.clone(), config);
                    hooks.sinks.push(sink.clone());
                    sink
                }
                _ => match &hooks.default {
                    Some(d) => d.sink.clone(),
                    None => {
                        tracing::warn!(app = %app.id,
                            "[apps.webhooks] without a url and no --webhook-url: no webhooks");
                        continue;
                    }
                },
            };
            let events = match &w.events {
                Some(e) => e.clone().into(),
                None => template.events.clone().into(),
            };
            let debounce = w
                .debounce_ms
                .map_or(template.debounce, Duration::from_millis);
            hooks.apps.insert(
                app.id.clone(),
                Route {
                    sink,
                    events,
                    debounce,
                },
            );
        }
        hooks
    }

    /// Each receiver's label (`default` or an app id) and delivery counts.
    pub fn stats(&self) -> impl Iterator<Item = (&str, &WebhookStats)> {
        self.sinks.iter().map(|s| (s.label.as_str(), &*s.stats))
    }

    fn route(&self, app: &str) -> Option<&Route> {
        self.apps.get(app).or(self.default.as_ref())
    }

    fn tracking(&self) -> std::sync::MutexGuard<'_, Tracking> {
        self.tracking.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `event` on `route` without waiting, if the route wants it; drops it
    /// (counted) when the queue is full.
    fn send(route: &Route, event: Event) {
        if !route.wants(event.event) {
            return;
        }
        let name = event.event;
        if route.sink.tx.try_send(event).is_err() {
            route.sink.stats.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(event = name, "webhook queue full; event dropped");
        }
    }

    /// Queues an event of `app` (see [`Webhooks::send`]).
    fn emit(&self, app: &str, name: &'static str, fields: impl FnOnce() -> Value) {
        let Some(route) = self.route(app) else { return };
        if !route.wants(name) {
            return;
        }
        Self::send(route, Event::new(name, app, fields()));
    }

    /// `session` entered `key`: `channel.occupied` when it is the channel's first
    /// member here, then `member.joined`; a held leave of the same user (and the
    /// channel's held vacated) is cancelled instead, and then neither is sent.
    fn entered(&self, session: &Session, key: &ChannelKey, ty: &'static str, quiet: bool) {
        let Some(route) = self.route(&session.app_id) else {
            return;
        };
        let (occupied, joined) = {
            let mut t = self.tracking();
            let members = t.members.entry(key.clone()).or_default();
            if !members.insert(session.id) {
                // A repeated subscribe (R81) changes options, not membership.
                return;
            }
            let first = members.len() == 1;
            t.of_session
                .entry(session.id)
                .or_default()
                .insert(key.clone());
            let left = t
                .held
                .remove(&Held::Leave(key.clone(), session.user.clone()))
                .is_some();
            let vacated = first && t.held.remove(&Held::Vacated(key.clone())).is_some();
            let cancelled = u64::from(left) * 2 + u64::from(vacated) * 2;
            route
                .sink
                .stats
                .debounced
                .fetch_add(cancelled, Ordering::Relaxed);
            (first && !vacated, !left)
        };
        let fields = || channel_fields(session, key, ty);
        if occupied {
            Self::send(
                route,
                Event::new("channel.occupied", &session.app_id, fields()),
            );
        }
        if joined {
            let mut f = fields();
            f["quiet"] = quiet.into();
            Self::send(route, Event::new("member.joined", &session.app_id, f));
        }
    }

    /// `session` left `key`: `member.left` or `member.timed_out`, then
    /// `channel.vacated` when it was the channel's last member here; held for the
    /// route's debounce when it has one.
    fn left(
        &self,
        node: &Arc<Node>,
        session: &Session,
        key: &ChannelKey,
        ty: &'static str,
        how: Departure,
    ) {
        let Some(route) = self.route(&session.app_id) else {
            return;
        };
        let (name, reason) = match how {
            Departure::Leave => ("member.left", "leave"),
            Departure::Timeout => ("member.timed_out", "timeout"),
        };
        let mut leave = channel_fields(session, key, ty);
        leave["reason"] = reason.into();
        let leave = Event::new(name, &session.app_id, leave);
        let mut t = self.tracking();
        let Some(members) = t.members.get_mut(key) else {
            return;
        };
        if !members.remove(&session.id) {
            return;
        }
        let last = members.is_empty();
        if last {
            t.members.remove(key);
        }
        t.untrack(session.id, key);
        let vacated = last.then(|| {
            Event::new(
                "channel.vacated",
                &session.app_id,
                channel_fields(session, key, ty),
            )
        });
        if route.debounce.is_zero() {
            drop(t);
            Self::send(route, leave);
            if let Some(v) = vacated {
                Self::send(route, v);
            }
            return;
        }
        t.next_hold += 1;
        let hold = t.next_hold;
        let held_leave = Held::Leave(key.clone(), session.user.clone());
        t.held.insert(held_leave.clone(), hold);
        let held_vacated = vacated.as_ref().map(|_| Held::Vacated(key.clone()));
        if let Some(h) = &held_vacated {
            t.held.insert(h.clone(), hold);
        }
        drop(t);
        let (node, route, delay) = (node.clone(), route.clone(), route.debounce);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let hooks = node.ext.get::<Webhooks>();
            let (send_leave, send_vacated) = {
                let mut t = hooks.tracking();
                let mut take = |h: &Held| {
                    if t.held.get(h) == Some(&hold) {
                        t.held.remove(h);
                        true
                    } else {
                        false
                    }
                };
                let l = take(&held_leave);
                let v = held_vacated.as_ref().is_some_and(&mut take);
                (l, v)
            };
            if send_leave {
                Self::send(&route, leave);
            }
            if let (true, Some(v)) = (send_vacated, vacated) {
                Self::send(&route, v);
            }
        });
    }
}

impl Tracking {
    /// Forgets that `session` is in `key` (in the per-session index).
    fn untrack(&mut self, session: u64, key: &ChannelKey) {
        if let Some(keys) = self.of_session.get_mut(&session) {
            keys.remove(key);
            if keys.is_empty() {
                self.of_session.remove(&session);
            }
        }
    }
}

impl Webhooks {
    /// A session resumed here: counts it in each of its channels without a join (a
    /// session taken over from another node was a member all along; a local resume
    /// changes nothing), so that its later leave is reported from here. A channel that
    /// had no member on this node is `channel.occupied` here (each node's occupied and
    /// vacated pair up; the node it came from sent `channel.vacated` where it was the
    /// last, see [`Webhooks::forget`]).
    fn adopt(&self, session: &Session) {
        let Some(route) = self.route(&session.app_id) else {
            return;
        };
        let keys: Vec<ChannelKey> = {
            let st = session.lock();
            st.subscriptions
                .keys()
                .map(|n| session.message_key(n))
                .chain(st.streams.keys().map(|n| session.stream_key(n)))
                .collect()
        };
        if keys.is_empty() {
            return;
        }
        let mut occupied = Vec::new();
        {
            let mut t = self.tracking();
            for key in keys {
                let members = t.members.entry(key.clone()).or_default();
                if members.insert(session.id) && members.len() == 1 {
                    if t.held.remove(&Held::Vacated(key.clone())).is_some() {
                        route.sink.stats.debounced.fetch_add(2, Ordering::Relaxed);
                    } else {
                        occupied.push(key.clone());
                    }
                }
                t.of_session.entry(session.id).or_default().insert(key);
            }
        }
        for key in occupied {
            if let Some(ty) = channel_type(key.kind) {
                let f = channel_fields(session, &key, ty);
                Self::send(route, Event::new("channel.occupied", &session.app_id, f));
            }
        }
    }

    /// The session is gone from this node without leaving its channels: handed over to
    /// another node by a resume (the session goes on there: no leave), or, `replaced`,
    /// superseded by the user's new session there, which is in those channels now
    /// (`member.left` with reason `replaced`: the new session sent its own join).
    /// `channel.vacated` where it was this node's last member. Never debounced.
    fn forget(&self, session: &Session, replaced: bool) {
        let Some(route) = self.route(&session.app_id) else {
            return;
        };
        let mut events = Vec::new();
        {
            let mut t = self.tracking();
            let Some(keys) = t.of_session.remove(&session.id) else {
                return;
            };
            for key in keys {
                let Some(members) = t.members.get_mut(&key) else {
                    continue;
                };
                members.remove(&session.id);
                let last = members.is_empty();
                if last {
                    t.members.remove(&key);
                }
                let Some(ty) = channel_type(key.kind) else {
                    continue;
                };
                if replaced {
                    let mut f = channel_fields(session, &key, ty);
                    f["reason"] = "replaced".into();
                    events.push(Event::new("member.left", &session.app_id, f));
                }
                if last {
                    let f = channel_fields(session, &key, ty);
                    events.push(Event::new("channel.vacated", &session.app_id, f));
                }
            }
        }
        for e in events {
            Self::send(route, e);
        }
    }
}

fn channel_fields(session: &Session, key: &ChannelKey, ty: &'static str) -> Value {
    json!({
        "user_id": &*session.user,
        "channel_type": ty,
        "channel": &*key.name,
    })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn event_id() -> String {
    format!(
        "{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

/// `v1=<hex>`: HMAC-SHA256 of `"{timestamp}.{body}"` with `secret`.
pub(crate) fn sign(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The delivery task of one receiver: one event at a time, in order, until the sink is
/// dropped.
async fn deliver(config: WebhookConfig, mut rx: mpsc::Receiver<Event>, stats: Arc<WebhookStats>) {
    let client = match reqwest::Client::builder().timeout(config.timeout).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhooks: cannot build the HTTP client; webhooks off");
            return;
        }
    };
    while let Some(event) = rx.recv().await {
        let body = match serde_json::to_vec(&event) {
            Ok(b) => b,
            Err(_) => continue,
        };
        let mut backoff = config.initial_backoff;
        let mut attempt = 1;
        loop {
            // Signed per attempt: the timestamp says when this attempt was sent.
            let ts = now_ms() / 1000;
            let sent = client
                .post(&config.url)
                .header("content-type", "application/json")
                .header(TIMESTAMP_HEADER, ts.to_string())
                .header(SIGNATURE_HEADER, sign(&config.secret, ts, &body))
                .header(EVENT_ID_HEADER, &event.id)
                .body(body.clone())
                .send()
                .await;
            let problem = match sent {
                Ok(r) if r.status().is_success() => {
                    stats.delivered.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Ok(r) => format!("status {}", r.status()),
                Err(e) => e.to_string(),
            };
            if attempt >= config.max_attempts {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(event = event.event, id = %event.id, attempts = attempt, %problem,
                    "webhook not delivered; given up");
                break;
            }
            stats.retries.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(event = event.event, attempt, %problem, "webhook failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
            attempt += 1;
        }
    }
}

fn channel_type(kind: ChannelKind) -> Option<&'static str> {
    match kind {
        ChannelKind::Message => Some("message"),
        ChannelKind::Stream => Some("stream"),
        _ => None,
    }
}

fn webhooks(node: &Node) -> &Webhooks {
    node.ext.get::<Webhooks>()
}

fn user_event(node: &Node, session: &Session, name: &'static str, extra: Value) {
    webhooks(node).emit(&session.app_id, name, || {
        let mut f = json!({ "user_id": &*session.user });
        if let (Value::Object(f), Value::Object(extra)) = (&mut f, extra) {
            f.extend(extra);
        }
        f
    });
}

/// The webhook feature's part in the session lifecycle.
pub(crate) struct WebhookHooks;

#[async_trait::async_trait]
impl Hooks for WebhookHooks {
    async fn entered(
        &self,
        node: &Arc<Node>,
        session: &Session,
        key: &ChannelKey,
        quiet: bool,
        _state: &HashMap<String, String>,
    ) {
        if let Some(ty) = channel_type(key.kind) {
            webhooks(node).entered(session, key, ty, quiet);
        }
    }

    async fn left(&self, node: &Arc<Node>, session: &Session, key: &ChannelKey, how: Departure) {
        if let Some(ty) = channel_type(key.kind) {
            webhooks(node).left(node, session, key, ty, how);
        }
    }

    async fn attached(&self, node: &Node, session: &Session, resumed: bool) {
        if resumed {
            webhooks(node).adopt(session);
        } else {
            user_event(node, session, "user.online", json!({}));
        }
    }

    async fn replacing(&self, node: &Node, session: &Session) {
        if session.lock().handed_over {
            webhooks(node).forget(session, false);
        }
    }

    async fn connection_lost(&self, node: &Node, session: &Session) {
        if session.lock().handed_over {
            webhooks(node).forget(session, false);
        }
    }

    async fn ended(&self, node: &Arc<Node>, session: &Session, ended: &Ended) {
        if let Some((code, reason)) = &ended.closed
            && matches!(code, DisconnectCode::Kicked | DisconnectCode::SameUidLogin)
        {
            let fields = json!({ "code": code.info().name, "reason": reason });
            user_event(node, session, "user.kicked", fields);
        }
        // Channels it did not leave (held by the user's session on another node now).
        webhooks(node).forget(session, true);
        // Superseded by the user's session on another node: the user is still online.
        if session.lock().superseded {
            return;
        }
        user_event(node, session, "user.offline", json!({}));
    }

    fn happened(&self, node: &Node, what: &Happening<'_>) {
        let hooks = webhooks(node);
        match *what {
            Happening::Metadata {
                object,
                op,
                by,
                keys,
                data,
            } => {
                hooks.emit(&object.app, "metadata.changed", || {
                    let op = match op {
                        WriteOp::Set => "set",
                        WriteOp::Update => "update",
                        WriteOp::Remove => "remove",
                    };
                    // The revision of each key written (a removed key has none).
                    let revisions: Map<String, Value> = keys
                        .iter()
                        .filter_map(|k| data.items.get(k).map(|i| (k.clone(), i.revision.into())))
                        .collect();
                    let mut f = json!({
                        "user_id": by,
                        "op": op,
                        "keys": keys,
                        "major_revision": data.major_revision,
                        "revisions": revisions,
                    });
                    match channel_type(object.kind) {
                        Some(ty) => {
                            f["scope"] = "channel".into();
                            f["channel_type"] = ty.into();
                            f["channel"] = (&*object.name).into();
                        }
                        None => {
                            f["scope"] = "user".into();
                            f["target_user"] = (&*object.name).into();
                        }
                    }
                    f
                });
            }
            Happening::Lock {
                channel,
                lock,
                change,
                owner,
                by,
            } => {
                let name = match change {
                    LockChange::Acquired => "lock.acquired",
                    LockChange::Released => "lock.released",
                    LockChange::Revoked => "lock.revoked",
                    LockChange::Expired => "lock.expired",
                };
                let ty = channel_type(channel.kind).unwrap_or("message");
                hooks.emit(&channel.app, name, || {
                    json!({
                        "user_id": owner,
                        "by": by,
                        "channel_type": ty,
                        "channel": &*channel.name,
                        "lock": lock,
                    })
                });
            }
            Happening::Lapsed { channel, user } => {
                let Some(ty) = channel_type(channel.kind) else {
                    return;
                };
                hooks.emit(&channel.app, "member.timed_out", || {
                    json!({
                        "user_id": user,
                        "channel_type": ty,
                        "channel": &*channel.name,
                        "reason": "node_lost",
                    })
                });
            }
            Happening::Banned {
                app,
                user,
                until_ms,
                reason,
            } => {
                hooks.emit(
                    app,
                    "user.banned",
                    || json!({ "user_id": user, "until_ms": until_ms, "reason": reason }),
                );
            }
        }
    }
}
