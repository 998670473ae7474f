//! The node: everything one server process shares between its connections — config,
//! apps, the engine, the hub and the registry of logged-in users.

use crate::config::{AppConfig, ServerConfig};
use crate::hub::Hub;
use crate::outbound::Outbound;
use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use switchboard_engine::Broker;
use switchboard_protocol::DisconnectCode;

const SHARDS: usize = 32;

/// The session currently registered for one (app, user).
#[derive(Clone)]
pub(crate) struct Registered {
    /// Internal session number.
    pub session: u64,
    /// Its connection's queue, to kick it.
    pub queue: Arc<Outbound>,
}

/// One shard of the registry: (app, user) → registered session.
type RegistryShard = Mutex<HashMap<(Arc<str>, Arc<str>), Registered>>;

/// One session per app and user id (R28).
pub(crate) struct Registry {
    shards: Vec<RegistryShard>,
}

impl Registry {
    fn new() -> Self {
        Registry {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, app: &str, user: &str) -> &RegistryShard {
        let mut h = DefaultHasher::new();
        (app, user).hash(&mut h);
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    /// Registers a session; an older session of the same user is kicked with
    /// `SAME_UID_LOGIN` (R28).
    pub fn register(&self, app: &Arc<str>, user: &Arc<str>, entry: Registered) {
        let old = {
            let mut map = self
                .shard(app, user)
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            map.insert((app.clone(), user.clone()), entry)
        };
        if let Some(old) = old {
            old.queue.close(
                DisconnectCode::SameUidLogin,
                format!("user id {user} logged in again from another connection"),
            );
        }
    }

    /// Removes the entry if it still belongs to `session`.
    pub fn unregister(&self, app: &Arc<str>, user: &Arc<str>, session: u64) {
        let mut map = self
            .shard(app, user)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let key = (app.clone(), user.clone());
        if map.get(&key).is_some_and(|r| r.session == session) {
            map.remove(&key);
        }
    }
}

/// Shared state of one server process.
pub(crate) struct Node {
    /// Node settings.
    pub config: ServerConfig,
    /// Apps by id.
    pub apps: HashMap<String, Arc<AppConfig>>,
    /// The engine's broker.
    pub broker: Arc<dyn Broker>,
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
    pub fn new(config: ServerConfig, broker: Arc<dyn Broker>) -> Arc<Node> {
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
