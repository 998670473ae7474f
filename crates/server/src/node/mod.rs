//! The node layer: what one server process shares between its connections — config,
//! apps, the engines, the hub with its outbound queues and outlets, the order of
//! storage and lock changes, and [`Extensions`], where the layers above keep their own
//! per-node state (the session registry, the lifecycle hooks, each feature's state)
//! without this layer knowing their types. Imports only the leaf and its own children.

pub(crate) mod admission;
pub(crate) mod clock;
pub(crate) mod config;
pub(crate) mod hub;
pub(crate) mod metrics;
pub(crate) mod outbound;
pub(crate) mod outlet;
pub(crate) mod spare_fd;
pub(crate) mod wheel;
pub(crate) mod ws;

use crate::wire::Failure;
use config::{AppConfig, ServerConfig};
use hub::Hub;
use metrics::Metrics;
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use switchboard_engine::{
    Broker, ChannelKey, ChannelKind, HistoryStore, Locks, MetadataStore, Presence, Sessions, Topics,
};
use switchboard_protocol::ErrorCode;

/// Per-node state of the layers above the node, one value per type, installed before
/// the node starts and read-only afterwards (each value guards its own interior).
#[derive(Default)]
pub(crate) struct Extensions {
    values: Vec<(TypeId, Box<dyn Any + Send + Sync>)>,
}

impl Extensions {
    /// Installs `value` (replacing one of the same type).
    pub fn insert<T: Any + Send + Sync>(&mut self, value: T) {
        let id = TypeId::of::<T>();
        self.values.retain(|(t, _)| *t != id);
        self.values.push((id, Box::new(value)));
    }

    /// The installed value of type `T`. Every type is installed by `Server::run`
    /// before the first connection, so a missing one is a wiring bug.
    pub fn get<T: Any + Send + Sync>(&self) -> &T {
        let id = TypeId::of::<T>();
        self.values
            .iter()
            .find(|(t, _)| *t == id)
            .and_then(|(_, v)| v.downcast_ref())
            .unwrap_or_else(|| panic!("{} is not installed", std::any::type_name::<T>()))
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
    /// The cross-node session registry (engines shared by several nodes).
    pub sessions: Option<Arc<dyn Sessions>>,
}

/// Shared state of one server process.
pub(crate) struct Node {
    /// Node settings.
    pub config: ServerConfig,
    /// Apps by id.
    pub apps: HashMap<String, Arc<AppConfig>>,
    /// Each app's id as one shared string (its sessions' `app_id`, their keys).
    app_ids: HashMap<String, Arc<str>>,
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
    /// The cross-node session registry; `None` = one node (its own registry decides).
    pub sessions: Option<Arc<dyn Sessions>>,
    /// Order of storage and lock changes per channel / metadata object.
    pub turns: Turns,
    /// Local subscribers.
    pub hub: Arc<Hub>,
    /// The upper layers' per-node state.
    pub ext: Extensions,
    /// This node's counters and gauges (rendered at the HTTP side's `/metrics`).
    pub metrics: Arc<Metrics>,
    next_session: AtomicU64,
    /// Open connections.
    pub connections: AtomicUsize,
    /// Permits for TCP connections in the WebSocket handshake.
    pub handshakes: Arc<tokio::sync::Semaphore>,
    /// Open connections per IP address (only with a per-IP limit).
    pub per_ip: Mutex<HashMap<std::net::IpAddr, usize>>,
    /// Logged-in connections per app (against each app's `max_connections`).
    pub app_connections: admission::AppConnections,
    /// Becomes true when the server shuts down; the deadline wheel watches it and
    /// wakes every connection.
    pub shutdown: tokio::sync::watch::Sender<bool>,
    /// The connections' deadlines (one sweeper task instead of timers per connection).
    pub wheel: wheel::Wheel,
    /// The outbound queues' limits, shared by every connection (made by the first).
    outbound_limits: std::sync::OnceLock<Arc<outbound::Limits>>,
}

impl Node {
    /// Builds the node and installs the hub as the broker's handler.
    pub fn new(
        config: ServerConfig,
        broker: Arc<dyn Broker>,
        engines: Engines,
        ext: Extensions,
    ) -> Arc<Node> {
        let Engines {
            history,
            topics,
            presence,
            metadata,
            locks,
            sessions,
        } = engines;
        let metrics = Arc::new(Metrics::default());
        let hub = Arc::new(Hub::new(metrics.clone()));
        broker.set_handler(hub.clone());
        let apps: HashMap<String, Arc<AppConfig>> = config
            .apps
            .iter()
            .map(|a| (a.id.clone(), Arc::new(a.clone())))
            .collect();
        let budgets: HashMap<String, switchboard_engine::AppBudgets> = apps
            .iter()
            .map(|(id, a)| (id.clone(), a.limits.budgets()))
            .collect();
        let budgets: switchboard_engine::Budgets =
            Arc::new(move |app: &str| budgets.get(app).copied().unwrap_or_default());
        broker.set_budgets(budgets.clone());
        if let Some(m) = &metadata {
            m.set_budgets(budgets.clone());
        }
        if let Some(l) = &locks {
            l.set_budgets(budgets);
        }
        let app_ids = apps
            .keys()
            .map(|id| (id.clone(), id.as_str().into()))
            .collect();
        let handshakes = Arc::new(tokio::sync::Semaphore::new(config.max_handshakes.max(1)));
        let app_connections = admission::AppConnections::new(&config.apps);
        let shutdown = tokio::sync::watch::channel(false).0;
        let wheel = wheel::Wheel::new(shutdown.subscribe(), config.clock.clone());
        Arc::new(Node {
            config,
            apps,
            app_ids,
            broker,
            history,
            topics,
            presence,
            metadata,
            locks,
            sessions,
            turns: Default::default(),
            hub,
            ext,
            metrics,
            next_session: AtomicU64::new(1),
            connections: AtomicUsize::new(0),
            handshakes,
            per_ip: Mutex::new(HashMap::new()),
            app_connections,
            shutdown,
            wheel,
            outbound_limits: std::sync::OnceLock::new(),
        })
    }

    /// `app`'s id, shared by all its sessions (a new string for an app not configured).
    pub fn app_id(&self, app: &str) -> Arc<str> {
        self.app_ids.get(app).cloned().unwrap_or_else(|| app.into())
    }

    /// The outbound queues' limits from the configuration. Call from inside the
    /// runtime (the queues' drain tasks run on it).
    pub fn outbound_limits(&self) -> Arc<outbound::Limits> {
        let cfg = &self.config;
        self.outbound_limits
            .get_or_init(|| {
                outbound::Limits::new(
                    cfg.outbound_queue_messages,
                    cfg.outbound_queue_bytes,
                    cfg.write_batch_bytes,
                    cfg.write_timeout,
                )
            })
            .clone()
    }

    /// A new internal session number.
    pub fn next_session_id(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    /// The history store, or the "history not available" failure (R74).
    pub fn history_store(&self) -> Result<Arc<dyn HistoryStore>, Failure> {
        self.history.clone().ok_or_else(|| {
            Failure::new(
                ErrorCode::HistoryNotAvailable,
                "history is not enabled on this server (R74)",
            )
        })
    }
}

/// Who a request acts as: a client's session (its app and user), or the server API
/// acting for an app under a user id it names. Feature cores take it, so that the
/// WebSocket path and the HTTP side apply the same rules.
pub(crate) struct Actor {
    /// The app.
    pub app: Arc<AppConfig>,
    /// The app's id, shared.
    pub app_id: Arc<str>,
    /// The acting user id.
    pub user: Arc<str>,
}

impl Actor {
    /// An actor of `app` as `user`.
    pub fn new(app: &Arc<AppConfig>, app_id: &Arc<str>, user: &Arc<str>) -> Self {
        Actor {
            app: app.clone(),
            app_id: app_id.clone(),
            user: user.clone(),
        }
    }
}

/// The history key of a publish: the channel, or the pair of users for USER, so both
/// peers of a conversation page through the same history.
pub(crate) fn history_key(
    app: &Arc<str>,
    kind: ChannelKind,
    channel: &str,
    publisher: &str,
) -> ChannelKey {
    match kind {
        ChannelKind::User => ChannelKey::user_pair(app.clone(), publisher, channel),
        _ => ChannelKey::new(app.clone(), kind, channel),
    }
}
