//! Where events go: every stream the app holds is a bounded queue registered here with
//! a route (all events, link states, token notices, USER messages, topic events,
//! presence events, storage events, lock events; or those of one message channel, one
//! stream channel, one user's metadata).
//!
//! Messages, topic, presence, storage and lock events are **lossless**: the connection task waits for room in
//! every queue one goes to, and while it waits it reads nothing from the socket. A slow
//! app therefore slows the connection down until the server closes it as a slow
//! consumer; the SDK then resumes and recovers from the last position it handed over,
//! so nothing is skipped (a stream that is held but never read holds delivery up: drop
//! streams you do not read). Link-state and token notices never wait: a full queue
//! counts them and gets a `Lagged(n)` item before its next one.
//!
//! A stream channel registers its queues at join, before the app asks for them, so
//! nothing is missed in between; until the app claims such a *pending* queue it never
//! holds delivery up: when full it counts what did not fit and yields `Lagged(n)` once
//! claimed.
//!
//! [`stream_of`] turns a registered queue into the app's [`EventStream`].

use crate::types::{
    AffectedResources, ChannelType, ErrorEvent, Event, Lagged, LockEvent, MessageEvent,
    PresenceEvent, StorageEvent, TokenEvent, TokenEventType, TopicEvent,
};
use futures_util::stream::BoxStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::mpsc;

/// What a stream's queue carries.
pub(crate) enum Item {
    /// An event (boxed: events are large, lagged counts small).
    Event(Box<Event>),
    /// A notice outside [`Event`] (its own streams only, never `events()`).
    Extra(Box<Extra>),
    /// This many notices were dropped because the queue was full.
    Lagged(u64),
}

/// Notices that are not an [`Event`] variant (adding one would break apps that match
/// `Event` exhaustively): they go to their own streams and never wait (like link
/// states).
#[derive(Debug, Clone)]
pub(crate) enum Extra {
    /// A received payload that did not decrypt (`error_events()`).
    Error(ErrorEvent),
    /// A `token` event (`token_notices()`).
    Token(TokenEvent),
}

/// Which events a stream receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// Everything (`events()`); survives logout.
    All,
    /// Link state changes.
    LinkState,
    /// Token notices.
    Token,
    /// USER messages; ends with the session.
    UserMessages,
    /// Messages of one MESSAGE channel; ends on unsubscribe or with the session.
    Channel(String),
    /// Every topic event (`topic_events()`); survives logout.
    Topics,
    /// Messages of one stream channel (of one topic when set); ends on leave, when the
    /// channel is lost, or with the session.
    StreamMessages {
        /// The stream channel.
        channel: String,
        /// Only this topic, if set.
        topic: Option<String>,
    },
    /// Topic events of one stream channel; ends like `StreamMessages`.
    StreamTopics(String),
    /// Every presence event (`presence_events()`); survives logout.
    Presence,
    /// Presence events of one MESSAGE channel; ends like `Channel`.
    ChannelPresence(String),
    /// Presence events of one stream channel; ends like `StreamMessages`.
    StreamPresence(String),
    /// Every storage event (`storage_events()`); survives logout.
    Storage,
    /// Every lock event (`lock_events()`); survives logout.
    Locks,
    /// Storage events of one MESSAGE channel's metadata; ends like `Channel`.
    ChannelStorage(String),
    /// Lock events of one MESSAGE channel; ends like `Channel`.
    ChannelLocks(String),
    /// Storage events of one stream channel's metadata; ends like `StreamMessages`.
    StreamStorage(String),
    /// Lock events of one stream channel; ends like `StreamMessages`.
    StreamLocks(String),
    /// Storage events of one user's metadata; ends on `unsubscribe_user_metadata` of
    /// that user or with the session.
    UserStorage(String),
    /// Error events (`error_events()`); survives logout.
    Errors,
    /// `token` events (`token_notices()`); survives logout.
    TokenNotices,
}

impl Route {
    fn takes(&self, e: &Event) -> bool {
        match (self, e) {
            (Route::All, _) => true,
            (Route::LinkState, Event::LinkState(_)) => true,
            (Route::Token, Event::TokenPrivilegeWillExpire(_)) => true,
            (Route::UserMessages, Event::Message(m)) => m.channel_type == ChannelType::User,
            (Route::Channel(name), Event::Message(m)) => {
                m.channel_type == ChannelType::Message && &m.channel_name == name
            }
            (Route::Topics, Event::Topic(_)) => true,
            (Route::StreamMessages { channel, topic }, Event::Message(m)) => {
                m.channel_type == ChannelType::Stream
                    && &m.channel_name == channel
                    && topic.as_ref().is_none_or(|t| t == &m.topic_name)
            }
            (Route::StreamTopics(name), Event::Topic(t)) => &t.channel_name == name,
            (Route::Presence, Event::Presence(_)) => true,
            (Route::ChannelPresence(name), Event::Presence(p)) => {
                p.channel_type == ChannelType::Message && &p.channel_name == name
            }
            (Route::StreamPresence(name), Event::Presence(p)) => {
                p.channel_type == ChannelType::Stream && &p.channel_name == name
            }
            (Route::Storage, Event::Storage(_)) => true,
            (Route::Locks, Event::Lock(_)) => true,
            (Route::ChannelStorage(name), Event::Storage(s)) => {
                s.channel_type == ChannelType::Message && &s.channel_name == name
            }
            (Route::ChannelLocks(name), Event::Lock(l)) => {
                l.channel_type == ChannelType::Message && &l.channel_name == name
            }
            (Route::StreamStorage(name), Event::Storage(s)) => {
                s.channel_type == ChannelType::Stream && &s.channel_name == name
            }
            (Route::StreamLocks(name), Event::Lock(l)) => {
                l.channel_type == ChannelType::Stream && &l.channel_name == name
            }
            (Route::UserStorage(user), Event::Storage(s)) => {
                s.channel_type == ChannelType::User && &s.publisher == user
            }
            _ => false,
        }
    }

    fn takes_extra(&self, e: &Extra) -> bool {
        matches!(
            (self, e),
            (Route::Errors, Extra::Error(_)) | (Route::TokenNotices, Extra::Token(_))
        )
    }

    /// Whether this route belongs to stream channel `name`.
    fn of_stream(&self, name: &str) -> bool {
        match self {
            Route::StreamMessages { channel, .. } => channel == name,
            Route::StreamTopics(channel)
            | Route::StreamPresence(channel)
            | Route::StreamStorage(channel)
            | Route::StreamLocks(channel) => channel == name,
            _ => false,
        }
    }

    /// Whether this route ends with the session.
    fn per_session(&self) -> bool {
        matches!(
            self,
            Route::Channel(_)
                | Route::UserMessages
                | Route::StreamMessages { .. }
                | Route::StreamTopics(_)
                | Route::ChannelPresence(_)
                | Route::StreamPresence(_)
                | Route::ChannelStorage(_)
                | Route::ChannelLocks(_)
                | Route::StreamStorage(_)
                | Route::StreamLocks(_)
                | Route::UserStorage(_)
        )
    }
}

struct Sink {
    id: u64,
    route: Route,
    tx: mpsc::Sender<Item>,
    /// Items dropped since the last one that fit.
    lagged: u64,
    /// A pending queue: lossless only once claimed (see the module doc).
    claimed: Option<Arc<AtomicBool>>,
}

impl Sink {
    /// Whether a delivery waits for room in this queue.
    fn lossless(&self) -> bool {
        self.claimed
            .as_ref()
            .is_none_or(|c| c.load(Ordering::Acquire))
    }

    /// Queues `event` without waiting; counts it as lagged when there is no room.
    fn offer(&mut self, event: &Event) {
        self.offer_item(|| Item::Event(Box::new(event.clone())));
    }

    /// Queues the item `make` gives without waiting; counts it as lagged when there is
    /// no room.
    fn offer_item(&mut self, make: impl FnOnce() -> Item) {
        if self.lagged > 0 && self.tx.try_send(Item::Lagged(self.lagged)).is_ok() {
            self.lagged = 0;
        }
        if self.lagged > 0 || self.tx.try_send(make()).is_err() {
            self.lagged += 1;
        }
    }
}

/// A queue registered before the app asked for it (a stream channel's, at join): it
/// does not hold delivery up until [`Pending::claim`].
pub(crate) struct Pending {
    rx: mpsc::Receiver<Item>,
    claimed: Arc<AtomicBool>,
}

impl Pending {
    /// The queue, from now on lossless.
    pub fn claim(self) -> mpsc::Receiver<Item> {
        self.claimed.store(true, Ordering::Release);
        self.rx
    }
}

/// The registry of streams.
pub(crate) struct Router {
    sinks: Mutex<Vec<Sink>>,
    capacity: usize,
    next_id: std::sync::atomic::AtomicU64,
    /// Bumped whenever streams are ended, so a delivery waiting on one of them stops.
    ended: tokio::sync::watch::Sender<u64>,
}

impl Router {
    /// A router whose queues hold `capacity` items each.
    pub fn new(capacity: usize) -> Self {
        Router {
            sinks: Mutex::new(Vec::new()),
            capacity: capacity.max(1),
            next_id: std::sync::atomic::AtomicU64::new(1),
            ended: tokio::sync::watch::channel(0).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Sink>> {
        self.sinks.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add(&self, route: Route, claimed: Option<Arc<AtomicBool>>) -> mpsc::Receiver<Item> {
        let (tx, rx) = mpsc::channel(self.capacity);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut sinks = self.lock();
        sinks.retain(|s| !s.tx.is_closed());
        sinks.push(Sink {
            id,
            route,
            tx,
            lagged: 0,
            claimed,
        });
        rx
    }

    /// A new stream's queue for `route`, receiving from now on.
    pub fn register(&self, route: Route) -> mpsc::Receiver<Item> {
        self.add(route, None)
    }

    /// A queue for `route` receiving from now on that the app claims later (see
    /// [`Pending`]).
    pub fn register_pending(&self, route: Route) -> Pending {
        let claimed = Arc::new(AtomicBool::new(false));
        let rx = self.add(route, Some(claimed.clone()));
        Pending { rx, claimed }
    }

    /// Waits for room in `tx` for `item`; false when the stream is dropped or ended
    /// meanwhile (unsubscribe, leave, logout), so a full stream nobody reads any more
    /// cannot hold the connection up.
    async fn send_waiting(&self, id: u64, tx: &mpsc::Sender<Item>, item: Item) -> bool {
        let mut ended = self.ended.subscribe();
        let send = tx.send(item);
        tokio::pin!(send);
        loop {
            tokio::select! {
                r = &mut send => return r.is_ok(),
                changed = ended.changed() => {
                    if changed.is_err() || !self.lock().iter().any(|s| s.id == id) {
                        return false;
                    }
                }
            }
        }
    }

    /// Hands a message, topic, presence, storage or lock event to every stream that
    /// takes it, waiting for room (lossless) in all but unclaimed pending queues.
    pub async fn deliver(&self, event: Event) {
        let targets: Vec<(u64, mpsc::Sender<Item>, bool)> = {
            let mut sinks = self.lock();
            sinks.retain(|s| !s.tx.is_closed());
            sinks
                .iter()
                .filter(|s| s.route.takes(&event))
                .map(|s| (s.id, s.tx.clone(), s.lossless()))
                .collect()
        };
        for (id, tx, lossless) in targets {
            // What a pending queue could not take before it was claimed comes first.
            let lagged = {
                let mut sinks = self.lock();
                let Some(s) = sinks.iter_mut().find(|s| s.id == id) else {
                    continue;
                };
                if !lossless {
                    s.offer(&event);
                    continue;
                }
                if s.claimed.is_some() {
                    std::mem::take(&mut s.lagged)
                } else {
                    0
                }
            };
            if lagged > 0 && !self.send_waiting(id, &tx, Item::Lagged(lagged)).await {
                continue;
            }
            self.send_waiting(id, &tx, Item::Event(Box::new(event.clone())))
                .await;
        }
    }

    /// Hands a notice (link state, token) to every stream that takes it, never waiting.
    pub fn notify(&self, event: Event) {
        let mut sinks = self.lock();
        sinks.retain(|s| !s.tx.is_closed());
        for s in sinks.iter_mut().filter(|s| s.route.takes(&event)) {
            s.offer(&event);
        }
    }

    /// Hands a notice outside [`Event`] to every stream that takes it, never waiting.
    pub fn notify_extra(&self, extra: Extra) {
        let mut sinks = self.lock();
        sinks.retain(|s| !s.tx.is_closed());
        for s in sinks.iter_mut().filter(|s| s.route.takes_extra(&extra)) {
            s.offer_item(|| Item::Extra(Box::new(extra.clone())));
        }
    }

    /// A credential expires soon (R38, R39): `tokenPrivilegeWillExpire` (`None` = the
    /// login token, else the stream channel) and, with it, a `token` event WILL_EXPIRE.
    pub fn will_expire(&self, channel: Option<String>) {
        self.notify(Event::TokenPrivilegeWillExpire(channel.clone()));
        self.token_event(channel, "The token is about to expire");
    }

    /// A `token` event WILL_EXPIRE alone (a session ended because its token expired,
    /// api.md §9.8).
    pub fn token_event(&self, channel: Option<String>, reason: &str) {
        self.notify_extra(Extra::Token(TokenEvent {
            event_type: TokenEventType::WillExpire,
            reason: reason.to_string(),
            affected_resources: AffectedResources {
                message_channels: channel.into_iter().collect(),
            },
            timestamp: switchboard_protocol::now_ms(),
        }));
    }

    /// Ends the streams of one message channel (unsubscribe): messages, presence,
    /// storage and lock events.
    pub fn end_channel(&self, name: &str) {
        self.lock().retain(|s| match &s.route {
            Route::Channel(c)
            | Route::ChannelPresence(c)
            | Route::ChannelStorage(c)
            | Route::ChannelLocks(c) => c != name,
            _ => true,
        });
        self.ended.send_modify(|n| *n += 1);
    }

    /// Ends the streams of one user's metadata (`unsubscribe_user_metadata`).
    pub fn end_user_storage(&self, user: &str) {
        self.lock()
            .retain(|s| !matches!(&s.route, Route::UserStorage(u) if u == user));
        self.ended.send_modify(|n| *n += 1);
    }

    /// Ends the streams of one stream channel (leave, channel lost).
    pub fn end_stream(&self, name: &str) {
        self.lock().retain(|s| !s.route.of_stream(name));
        self.ended.send_modify(|n| *n += 1);
    }

    /// Ends every per-session stream (logout, FAILED): channels (messages and
    /// presence), stream channels and USER messages.
    pub fn end_session(&self) {
        self.lock().retain(|s| !s.route.per_session());
        self.ended.send_modify(|n| *n += 1);
    }
}

/// A stream of items, or `Lagged` when the consumer fell behind.
pub type EventStream<T> = BoxStream<'static, Result<T, Lagged>>;

/// A stream over one registered queue, keeping what `pick` returns.
pub(crate) fn stream_of<T: Send + 'static>(
    rx: mpsc::Receiver<Item>,
    pick: fn(Event) -> Option<T>,
) -> EventStream<T> {
    Box::pin(futures_util::stream::unfold(rx, move |mut rx| async move {
        loop {
            match rx.recv().await? {
                Item::Lagged(n) => return Some((Err(Lagged(n)), rx)),
                Item::Event(e) => {
                    if let Some(t) = pick(*e) {
                        return Some((Ok(t), rx));
                    }
                }
                Item::Extra(_) => {}
            }
        }
    }))
}

/// A stream over one registered queue of notices outside [`Event`], keeping what
/// `pick` returns.
pub(crate) fn extra_stream_of<T: Send + 'static>(
    rx: mpsc::Receiver<Item>,
    pick: fn(Extra) -> Option<T>,
) -> EventStream<T> {
    Box::pin(futures_util::stream::unfold(rx, move |mut rx| async move {
        loop {
            match rx.recv().await? {
                Item::Lagged(n) => return Some((Err(Lagged(n)), rx)),
                Item::Extra(e) => {
                    if let Some(t) = pick(*e) {
                        return Some((Ok(t), rx));
                    }
                }
                Item::Event(_) => {}
            }
        }
    }))
}

/// Keeps the messages of a stream.
pub(crate) fn message_of(e: Event) -> Option<MessageEvent> {
    match e {
        Event::Message(m) => Some(m),
        _ => None,
    }
}

/// Keeps the presence events of a stream.
pub(crate) fn presence_of(e: Event) -> Option<PresenceEvent> {
    match e {
        Event::Presence(p) => Some(p),
        _ => None,
    }
}

/// Keeps the storage events of a stream.
pub(crate) fn storage_of(e: Event) -> Option<StorageEvent> {
    match e {
        Event::Storage(s) => Some(s),
        _ => None,
    }
}

/// Keeps the lock events of a stream.
pub(crate) fn lock_of(e: Event) -> Option<LockEvent> {
    match e {
        Event::Lock(l) => Some(l),
        _ => None,
    }
}

/// Keeps the topic events of a stream.
pub(crate) fn topic_of(e: Event) -> Option<TopicEvent> {
    match e {
        Event::Topic(t) => Some(t),
        _ => None,
    }
}
