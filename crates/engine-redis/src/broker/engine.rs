//! The engine's handle and the state behind it: connecting (the command connection,
//! the scripts, the pub/sub side), health, and this node's heartbeat.

use super::*;

/// The Redis engine of one node; implements every engine trait.
pub struct RedisEngine {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: RedisConfig,
    /// The multiplexed command connection; replaced when a Sentinel failover moves the
    /// master (see [`Inner::follow_master`]).
    pub(crate) conn: std::sync::RwLock<ConnectionManager>,
    /// Where Redis is (one server or a Sentinel group's master).
    pub(crate) target: crate::target::Target,
    /// Sentinel: the `master_replid` of the master the command connection writes to
    /// (a promoted replica gets a new one), passed to the publish script; empty for a
    /// standalone server.
    pub(crate) master_id: std::sync::RwLock<String>,
    /// Told when a command found the master lost (Sentinel only).
    pub(crate) master_lost: tokio::sync::Notify,
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
        let target = crate::target::Target::parse(&config.url)?;
        let client = target.client().await?;
        let mut conn = ConnectionManager::new_with_config(client, cm_config(&config))
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
            conn: std::sync::RwLock::new(conn),
            target,
            master_lost: tokio::sync::Notify::new(),
            master_id: std::sync::RwLock::new(String::new()),
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
        start(&inner).await?;
        tokio::spawn(heartbeat(inner.clone()));
        if inner.target.follows_master() {
            inner.refresh_master_id().await;
            tokio::spawn(follow_master(inner.clone()));
        }
        tracing::info!(node = %inner.config.node_id, url = %crate::target::redacted(&inner.config.url), "redis engine connected");
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
        let mut conn = self.inner.conn();
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
    /// The command connection (a cheap clone of the multiplexed handle).
    pub(crate) fn conn(&self) -> ConnectionManager {
        self.conn.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The id of the master writes go to (empty for a standalone server).
    pub(crate) fn master_id(&self) -> String {
        self.master_id
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sentinel: reads the master's `master_replid` (kept when the read fails).
    pub(crate) async fn refresh_master_id(&self) {
        let info: Result<String, _> = self.cmd(redis::cmd("INFO").arg("replication")).await;
        let id = info.ok().and_then(|i| {
            i.lines()
                .find_map(|l| l.strip_prefix("master_replid:"))
                .map(|v| v.trim().to_string())
        });
        if let Some(id) = id {
            *self.master_id.write().unwrap_or_else(|e| e.into_inner()) = id;
        }
    }

    /// Counts a failed command; with Sentinel, a lost master (connection lost, or
    /// READONLY after a failover demoted it) starts [`Inner::follow_master`].
    fn failed(&self, e: redis::RedisError) -> EngineError {
        self.failures.fetch_add(1, Ordering::Relaxed);
        if self.target.follows_master() && crate::target::lost_master(&e) {
            self.master_lost.notify_one();
        }
        unavailable(e)
    }

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
        let mut conn = self.conn();
        inv.invoke_async(&mut conn)
            .await
            .map_err(|e| self.failed(e))
    }

    /// Runs one command.
    pub(crate) async fn cmd<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, EngineError> {
        let mut conn = self.conn();
        cmd.query_async(&mut conn).await.map_err(|e| self.failed(e))
    }
}

/// The command connection's settings.
fn cm_config(config: &RedisConfig) -> redis::aio::ConnectionManagerConfig {
    redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(config.command_timeout))
        .set_connection_timeout(Some(config.command_timeout))
        .set_number_of_retries(3)
        .set_max_delay(Duration::from_millis(500))
}

/// Sentinel: each time a command finds the master lost, asks the sentinels for the
/// master until one answers as master, then moves the command connection to it. The
/// pub/sub supervisor asks on its own at each reconnect; the heartbeat then finds out
/// whether the promoted replica lacked this node's members and locks, and the
/// resubscribe recovers every channel (or reports its gap), as after a Redis restart.
async fn follow_master(inner: Arc<Inner>) {
    let mut shutdown = inner.broker.shutdown_signal();
    loop {
        tokio::select! {
            _ = inner.master_lost.notified() => {}
            _ = shutdown.changed() => return,
        }
        let mut backoff = Duration::from_millis(50);
        loop {
            let attempt = async {
                let client = inner.target.client().await?;
                let addr = client.get_connection_info().addr().to_string();
                let conn = ConnectionManager::new_with_config(client, cm_config(&inner.config))
                    .await
                    .map_err(unavailable)?;
                Ok::<_, EngineError>((addr, conn))
            };
            match attempt.await {
                Ok((addr, conn)) => {
                    *inner.conn.write().unwrap_or_else(|e| e.into_inner()) = conn;
                    inner.refresh_master_id().await;
                    inner.broker.master_switched();
                    tracing::info!(node = %inner.config.node_id, master = %addr, "redis: command connection follows the master");
                    break;
                }
                Err(e) => {
                    tracing::warn!(node = %inner.config.node_id, error = %e, "redis: looking for the master");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
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
                if inner.target.follows_master() {
                    // A master restarted in place (no failover) has a new id too.
                    inner.refresh_master_id().await;
                }
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
