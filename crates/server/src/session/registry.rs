//! The registry of this node's logged-in sessions: one per app and user id (R28), and
//! the ids of sessions a newer login replaced, so that their clients cannot come back
//! as new sessions that kick the newer one.

use super::core::Session;
use crate::node::Node;
use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

const SHARDS: usize = 32;

/// One shard of the registry: (app, user) → registered session.
type RegistryShard = Mutex<HashMap<(Arc<str>, Arc<str>), Arc<Session>>>;

/// One session per app and user id (R28). Kept in the node's extensions.
pub(crate) struct Registry {
    shards: Vec<RegistryShard>,
    /// Session ids replaced by a newer login, until when they are remembered.
    replaced: Mutex<HashMap<String, std::time::Instant>>,
    /// Registered sessions (the `switchboard_sessions` gauge).
    count: std::sync::atomic::AtomicUsize,
}

impl Registry {
    /// The node's registry.
    pub fn of(node: &Node) -> &Registry {
        node.ext.get::<Registry>()
    }

    /// An empty registry.
    pub fn new() -> Self {
        Registry {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            replaced: Mutex::new(HashMap::new()),
            count: Default::default(),
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
        let old = map.insert(key, session);
        if old.is_none() {
            self.count
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        old
    }

    /// How many sessions are registered.
    pub fn sessions(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::Relaxed)
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

    /// Every session of `app` on this node (for the HTTP side's user list).
    pub fn sessions_of(&self, app: &str) -> Vec<Arc<Session>> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let map = shard.lock().unwrap_or_else(|e| e.into_inner());
            out.extend(
                map.iter()
                    .filter(|((a, _), _)| &**a == app)
                    .map(|(_, s)| s.clone()),
            );
        }
        out
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
            self.count
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}
