//! The engine's handle and the state behind it: connecting (the command connection,
//! the scripts, the pub/sub side), health, and this node's heartbeat.

use super::*;

/// The Redis engine of one node; implements every engine trait.
pub struct RedisEngine {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: RedisConfig,
    pub(crate) conn: ConnectionManager,
    pub(crate) broker: BrokerState,
    /// Commands that failed (for health).
    pub(crate) failures: AtomicU64,
    /// The memberships this node entered, written again when Redis lost them.
    pub(crate) members: crate::members::LocalMembers,
    /// Told when the heartbeat finds this node's members gone from Redis.
    pub(crate) members_lost: tokio::sync::Notify,
    /// Whether the task that writes them again runs (started by the first enter).
    pub(crate) rewriter_started: AtomicBool,
    /// The lock owners and waiters this node made, written again when Redis lost them.
    pub(crate) locks_local: crate::local_locks::LocalLocks,
    /// Told when the heartbeat finds this node's data gone from Redis (for the locks).
    pub(crate) locks_lost: tokio::sync::Notify,
    /// Whether the task that writes the locks again runs (started by the first acquire).
    pub(crate) lock_restorer_started: AtomicBool,
    /// The per-app budgets, installed once by the server (none until then).
    pub(crate) budgets: OnceLock<switchboard_engine::Budgets>,
}

pub(crate) fn unavailable(e: impl std::fmt::Display) -> EngineError {
    EngineError::Unavailable(format!("redis: {e}"))
}

pub(crate) fn bad_reply(what: &str) -> EngineError {
    EngineError::Unavailable(format!("redis: unexpected reply to {what}"))
}

impl RedisEngine {
    /// Connects with the default [`RedisConfig`] for `url` and `node_id`.
    pub async fn connect(url: &str, node_id: &str) -> Result<Arc<RedisEngine>, EngineError> {
        Self::connect_with(RedisConfig::new(url, node_id)).await
    }

    /// Connects: one multiplexed command connection (reconnecting by itself), the
    /// scripts loaded, and the pub/sub connection with its reader, workers and probe.
    pub async fn connect_with(config: RedisConfig) -> Result<Arc<RedisEngine>, EngineError> {
        let client = redis::Client::open(config.url.as_str()).map_err(unavailable)?;
        let cm_config = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(Some(config.command_timeout))
            .set_connection_timeout(Some(config.command_timeout))
            .set_number_of_retries(3)
            .set_max_delay(Duration::from_millis(500));
        let mut conn = ConnectionManager::new_with_config(client.clone(), cm_config)
            .await
            .map_err(unavailable)?;
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        check_version(&info)?;
        for s in crate::scripts::SCRIPTS.all() {
            s.load_async(&mut conn).await.map_err(unavailable)?;
        }
        crate::scripts::SCRIPTS
            .node_heartbeat
            .arg(&config.prefix)
            .arg(&config.node_id)
            .invoke_async::<i64>(&mut conn)
            .await
            .map_err(unavailable)?;
        let broker = BrokerState::new(&config);
        let inner = Arc::new(Inner {
            config,
            conn,
            broker,
            failures: AtomicU64::new(0),
            members: Default::default(),
            members_lost: tokio::sync::Notify::new(),
            rewriter_started: AtomicBool::new(false),
            locks_local: Default::default(),
            locks_lost: tokio::sync::Notify::new(),
            lock_restorer_started: AtomicBool::new(false),
            budgets: OnceLock::new(),
        });
        start(&inner, client).await?;
        tokio::spawn(heartbeat(inner.clone()));
        tracing::info!(node = %inner.config.node_id, url = %inner.config.url, "redis engine connected");
        Ok(Arc::new(RedisEngine { inner }))
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.inner.config.node_id
    }

    /// The engine's settings.
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    /// PINGs Redis and reports the pub/sub side.
    pub async fn health(&self) -> Health {
        let start = Instant::now();
        let mut conn = self.inner.conn.clone();
        let ping: Result<String, _> = redis::cmd("PING").query_async(&mut conn).await;
        let (redis_ok, ping, error) = match ping {
            Ok(_) => (true, Some(start.elapsed()), None),
            Err(e) => (false, None, Some(e.to_string())),
        };
        Health {
            node_id: self.inner.config.node_id.clone(),
            redis_ok,
            ping,
            error,
            pubsub_connected: self.inner.broker.connected(),
            stats: self.inner.broker.stats(),
        }
    }

    /// Counters of the pub/sub side (reconnects, probe restarts, gaps, overflows).
    pub fn stats(&self) -> Stats {
        self.inner.broker.stats()
    }
}

impl Drop for RedisEngine {
    fn drop(&mut self) {
        self.inner.broker.shutdown();
    }
}

impl Inner {
    pub(crate) fn prefix(&self) -> &str {
        &self.config.prefix
    }

    /// Installs the per-app budgets (the first call wins: the broker, metadata and
    /// lock traits all install the same ones).
    pub(crate) fn set_budgets(&self, budgets: switchboard_engine::Budgets) {
        let _ = self.budgets.set(budgets);
    }

    /// The budgets of `app` (none until the server installs them).
    pub(crate) fn budgets(&self, app: &str) -> switchboard_engine::AppBudgets {
        self.budgets.get().map(|b| b(app)).unwrap_or_default()
    }

    pub(crate) fn base(&self, key: &switchboard_engine::ChannelKey) -> String {
        crate::keys::base(&self.config.prefix, key)
    }

    /// Runs a prepared script invocation.
    pub(crate) async fn run(
        &self,
        inv: &redis::ScriptInvocation<'_>,
    ) -> Result<Value, EngineError> {
        let mut conn = self.conn.clone();
        inv.invoke_async(&mut conn).await.map_err(|e| {
            self.failures.fetch_add(1, Ordering::Relaxed);
            unavailable(e)
        })
    }

    /// Runs one command.
    pub(crate) async fn cmd<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, EngineError> {
        let mut conn = self.conn.clone();
        cmd.query_async(&mut conn).await.map_err(|e| {
            self.failures.fetch_add(1, Ordering::Relaxed);
            unavailable(e)
        })
    }
}

/// Refreshes this node's heartbeat until the engine is dropped.
async fn heartbeat(inner: Arc<Inner>) {
    let mut shutdown = inner.broker.shutdown_signal();
    let mut tick =
        tokio::time::interval((inner.config.node_timeout / 5).max(Duration::from_millis(10)));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let mut inv = crate::scripts::SCRIPTS.node_heartbeat.arg(inner.prefix());
                inv.arg(&inner.config.node_id);
                match inner.run(&inv).await {
                    // Its entry was gone: Redis lost its data (a restart without
                    // persistence) or the node was taken for dead; either way its
                    // members are gone from Redis, so they are written again.
                    Ok(Value::Int(1)) => {
                        inner.members_lost.notify_one();
                        inner.locks_lost.notify_one();
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(node = %inner.config.node_id, error = %e, "redis: heartbeat failed");
                    }
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}
