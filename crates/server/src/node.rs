//! The node: everything one server process shares between its connections — config,
//! apps, the engine, the hub and the registry of logged-in users.

use crate::config::{AppConfig, ServerConfig};
use crate::hub::Hub;
use crate::session::Session;
use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use switchboard_engine::{
    Broker, ChannelKey, HistoryStore, Locks, MetadataStore, Presence, Topics,
};

const SHARDS: usize = 32;

/// One shard of the registry: (app, user) → registered session.
type RegistryShard = Mutex<HashMap<(Arc<str>, Arc<str>), Arc<Session>>>;

/// One session per app and user id (R28).
pub(crate) struct Registry {
    shards: Vec<RegistryShard>,
    /// Session ids replaced by a newer login, until when they are remembered.
    replaced: Mutex<HashMap<String, std::time::Instant>>,
}

impl Registry {
    fn new() -> Self {
        Registry {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            replaced: Mutex::new(HashMap::new()),
        }
    }

    fn shard(&self, app: &str, user: &str) -> &RegistryShard {
        let mut h = DefaultHasher::new();
        (app, user).hash(&mut h);
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    /// Registers a session and returns the one it replaces, which the caller ends
    /// (R28: one session per app and user id).
    pub fn register(&self, session: Arc<Session>) -> Option<Arc<Session>> {
        let key = (session.app_id.clone(), session.user.clone());
        let mut map = self
            .shard(&key.0, &key.1)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.insert(key, session)
    }

    /// Remembers that `session` was replaced by a newer login, for `for_how_long`, so
    /// that its client cannot come back as a new session that kicks the newer one.
    pub fn mark_replaced(&self, session: &Session, for_how_long: std::time::Duration) {
        let now = std::time::Instant::now();
        let mut map = self.replaced.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, until| *until > now);
        map.insert(session.public_id.clone(), now + for_how_long);
    }

    /// Whether `session_id` names a session replaced by a newer login (recently).
    pub fn was_replaced(&self, session_id: &str) -> bool {
        let map = self.replaced.lock().unwrap_or_else(|e| e.into_inner());
        map.get(session_id)
            .is_some_and(|until| *until > std::time::Instant::now())
    }

    /// The session registered for (app, user).
    pub fn get(&self, app: &str, user: &str) -> Option<Arc<Session>> {
        let map = self
            .shard(app, user)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.get(&(Arc::from(app), Arc::from(user))).cloned()
    }

    /// Removes the entry if it still belongs to `session`.
    pub fn unregister(&self, app: &Arc<str>, user: &Arc<str>, session: u64) {
        let mut map = self
            .shard(app, user)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let key = (app.clone(), user.clone());
        if map.get(&key).is_some_and(|r| r.id == session) {
            map.remove(&key);
        }
    }
}

/// Per-channel (or per-object) order of storage and lock changes: a change and the
/// publication of its event happen under the key's turn, so that events reach the
/// stream in the order the engine applied the changes. Entries exist only while held.
#[derive(Default)]
pub(crate) struct Turns {
    map: Mutex<HashMap<ChannelKey, Arc<tokio::sync::Mutex<()>>>>,
}

/// A held turn; the entry goes when the last holder or waiter is done.
pub(crate) struct Turn<'a> {
    turns: &'a Turns,
    key: ChannelKey,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Turns {
    /// Waits for `key`'s turn.
    pub async fn take(&self, key: &ChannelKey) -> Turn<'_> {
        let lock = {
            let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(key.clone()).or_default().clone()
        };
        let guard = lock.lock_owned().await;
        Turn {
            turns: self,
            key: key.clone(),
            guard: Some(guard),
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut map = self.turns.map.lock().unwrap_or_else(|e| e.into_inner());
        // Only the map holds it: nobody holds or waits for this turn.
        if map
            .get(&self.key)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            map.remove(&self.key);
        }
    }
}

/// The optional engines a server runs with (each `None` = that service is off).
#[derive(Default)]
pub(crate) struct Engines {
    /// Message history.
    pub history: Option<Arc<dyn HistoryStore>>,
    /// Stream channel topic roles.
    pub topics: Option<Arc<dyn Topics>>,
    /// Presence.
    pub presence: Option<Arc<dyn Presence>>,
    /// Channel and user metadata.
    pub metadata: Option<Arc<dyn MetadataStore>>,
    /// Locks.
    pub locks: Option<Arc<dyn Locks>>,
}

/// Shared state of one server process.
pub(crate) struct Node {
    /// Node settings.
    pub config: ServerConfig,
    /// Apps by id.
    pub apps: HashMap<String, Arc<AppConfig>>,
    /// The engine's broker.
    pub broker: Arc<dyn Broker>,
    /// The history store; `None` = history not available (−15005).
    pub history: Option<Arc<dyn HistoryStore>>,
    /// Stream channel topic roles; `None` = stream channels not available (−11012).
    pub topics: Option<Arc<dyn Topics>>,
    /// Presence; `None` = presence not available (−13014).
    pub presence: Option<Arc<dyn Presence>>,
    /// Channel and user metadata; `None` = storage not available (−12019).
    pub metadata: Option<Arc<dyn MetadataStore>>,
    /// Locks; `None` = locks not available (−14009).
    pub locks: Option<Arc<dyn Locks>>,
    /// This node's waiting `acquireLock` requests.
    pub lock_waits: crate::lock::Waits,
    /// Order of storage and lock changes per channel / metadata object.
    pub turns: Turns,
    /// Per-channel presence event mode (single events or interval aggregates).
    pub presence_modes: crate::presence::Modes,
    /// Local subscribers.
    pub hub: Arc<Hub>,
    /// Logged-in users.
    pub registry: Registry,
    next_session: AtomicU64,
    /// Open connections.
    pub connections: AtomicUsize,
    /// Becomes true when the server shuts down; every connection watches it.
    pub shutdown: tokio::sync::watch::Sender<bool>,
}

impl Node {
    /// Builds the node and installs the hub as the broker's handler.
    pub fn new(config: ServerConfig, broker: Arc<dyn Broker>, engines: Engines) -> Arc<Node> {
        let Engines {
            history,
            topics,
            presence,
            metadata,
            locks,
        } = engines;
        let hub = Arc::new(Hub::new());
        broker.set_handler(hub.clone());
        let apps = config
            .apps
            .iter()
            .map(|a| (a.id.clone(), Arc::new(a.clone())))
            .collect();
        Arc::new(Node {
            config,
            apps,
            broker,
            history,
            topics,
            presence,
            metadata,
            locks,
            lock_waits: Default::default(),
            turns: Default::default(),
            presence_modes: Default::default(),
            hub,
            registry: Registry::new(),
            next_session: AtomicU64::new(1),
            connections: AtomicUsize::new(0),
            shutdown: tokio::sync::watch::channel(false).0,
        })
    }

    /// A new internal session number.
    pub fn next_session_id(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }
}
