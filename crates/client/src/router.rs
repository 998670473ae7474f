//! Where events go: every stream the app holds is a bounded queue registered here with
//! a route (all events, link states, token notices, USER messages, one channel).
//!
//! Messages are **lossless**: the connection task waits for room in every queue a
//! message goes to, and while it waits it reads nothing from the socket. A slow app
//! therefore slows the connection down until the server closes it as a slow consumer;
//! the SDK then resumes and recovers from the last position it handed over, so nothing
//! is skipped (a stream that is held but never read holds delivery up: drop streams you
//! do not read). Link-state and token notices never wait: a full queue counts them and
//! gets a `Lagged(n)` item before its next one.

use crate::types::{ChannelType, Event, MessageEvent};
use std::sync::{Mutex, MutexGuard};
use tokio::sync::mpsc;

/// What a stream's queue carries.
pub(crate) enum Item {
    /// An event.
    Event(Event),
    /// This many notices were dropped because the queue was full.
    Lagged(u64),
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
            _ => false,
        }
    }
}

struct Sink {
    id: u64,
    route: Route,
    tx: mpsc::Sender<Item>,
    /// Notices dropped since the last one that fit.
    lagged: u64,
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

    /// A new stream's queue for `route`, receiving from now on.
    pub fn register(&self, route: Route) -> mpsc::Receiver<Item> {
        let (tx, rx) = mpsc::channel(self.capacity);
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut sinks = self.lock();
        sinks.retain(|s| !s.tx.is_closed());
        sinks.push(Sink {
            id,
            route,
            tx,
            lagged: 0,
        });
        rx
    }

    /// Hands a message to every stream that takes it, waiting for room (lossless).
    pub async fn deliver(&self, m: MessageEvent) {
        let event = Event::Message(m);
        let targets: Vec<(u64, mpsc::Sender<Item>)> = {
            let mut sinks = self.lock();
            sinks.retain(|s| !s.tx.is_closed());
            sinks
                .iter()
                .filter(|s| s.route.takes(&event))
                .map(|s| (s.id, s.tx.clone()))
                .collect()
        };
        for (id, tx) in targets {
            // Wait for room; give up on a stream that is dropped or ended meanwhile
            // (unsubscribe, logout), so a full stream nobody reads any more cannot hold
            // the connection up.
            let mut ended = self.ended.subscribe();
            loop {
                tokio::select! {
                    _ = tx.send(Item::Event(event.clone())) => break,
                    changed = ended.changed() => {
                        if changed.is_err() || !self.lock().iter().any(|s| s.id == id) {
                            break;
                        }
                    }
                }
            }
        }
    }

    /// Hands a notice (link state, token) to every stream that takes it, never waiting.
    pub fn notify(&self, event: Event) {
        let mut sinks = self.lock();
        sinks.retain(|s| !s.tx.is_closed());
        for s in sinks.iter_mut().filter(|s| s.route.takes(&event)) {
            if s.lagged > 0 && s.tx.try_send(Item::Lagged(s.lagged)).is_ok() {
                s.lagged = 0;
            }
            if s.lagged > 0 || s.tx.try_send(Item::Event(event.clone())).is_err() {
                s.lagged += 1;
            }
        }
    }

    /// Ends the streams of one channel (unsubscribe).
    pub fn end_channel(&self, name: &str) {
        self.lock()
            .retain(|s| s.route != Route::Channel(name.to_string()));
        self.ended.send_modify(|n| *n += 1);
    }

    /// Ends every per-session stream (logout, FAILED): channels and USER messages.
    pub fn end_session(&self) {
        self.lock()
            .retain(|s| !matches!(s.route, Route::Channel(_) | Route::UserMessages));
        self.ended.send_modify(|n| *n += 1);
    }
}
