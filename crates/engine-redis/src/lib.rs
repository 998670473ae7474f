//! The Redis engine: every trait of the engine contract ([`Broker`], [`Presence`],
//! [`Topics`], [`MetadataStore`], [`Locks`], [`HistoryStore`]) on Redis 7, so that several
//! `switchboard serve` nodes share channels, presence, metadata, locks and history.
//!
//! One [`RedisEngine`] per node implements every trait. Each multi-key operation is one
//! Lua script (files under `lua/`); the keys of one channel share the hash tag
//! `<prefix>{<app>…<name>}`. Publications reach the nodes over Redis pub/sub, read by one
//! connection whose reader never blocks (it hands each message to a worker chosen by
//! channel); workers check every offset, so a message lost on the way (overflow,
//! reconnect) is recovered from the channel's recovery log or reported as a gap, never
//! silently dropped. A liveness probe (the node publishes to itself) restarts a pub/sub
//! connection that stopped delivering.
//!
//! ```no_run
//! # async fn demo() -> Result<(), switchboard_engine::EngineError> {
//! use switchboard_engine::Broker;
//! use switchboard_engine_redis::RedisEngine;
//!
//! let engine = RedisEngine::connect("redis://127.0.0.1:6379", "node-1").await?;
//! let health = engine.health().await;
//! assert!(health.redis_ok);
//! // `engine` is an `Arc<RedisEngine>`: hand clones of it to the server as its broker,
//! // presence, topics, metadata, locks and history.
//! let broker: std::sync::Arc<dyn Broker> = engine.clone();
//! # let _ = broker;
//! # Ok(())
//! # }
//! ```

mod broker;
mod history;
mod keys;
mod presence;
mod scripts;
mod storage;
mod topics;

use redis::Value;
use redis::aio::ConnectionManager;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use switchboard_engine::{EngineError, HistoryRetention, Retention};

pub use broker::Stats;

/// Settings of a [`RedisEngine`].
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://HOST:PORT[/DB]`.
    pub url: String,
    /// This node's id (in logs, health and its probe channel).
    pub node_id: String,
    /// Prefix of every key and pub/sub channel (default `sb:`); nodes of one cluster
    /// share it.
    pub prefix: String,
    /// Recovery log bounds per channel (default 1,000 publications, 300 s).
    pub retention: Retention,
    /// Durable history bounds (default [`HistoryRetention::default`]).
    pub history: HistoryRetention,
    /// How long a channel's epoch and offset outlive its last publication (default 1 day).
    pub position_ttl: Duration,
    /// Delivery workers (default 4); a channel always goes to the same worker.
    pub workers: usize,
    /// Messages queued per worker before the reader hands the overflow to recovery
    /// (default 8,192).
    pub worker_queue: usize,
    /// Liveness probe period (default 2 s).
    pub probe_interval: Duration,
    /// A probe not seen back within this restarts the pub/sub connection (default 5 s).
    pub probe_timeout: Duration,
    /// Timeout of one command (default 5 s).
    pub command_timeout: Duration,
    /// A node whose heartbeat is older than this is dead: any node's
    /// [`Presence::expire_due`](switchboard_engine::Presence::expire_due) removes the
    /// members it entered (default 15 s; heartbeats every fifth of it).
    pub node_timeout: Duration,
    /// How long a publish waits for this node's own delivery of it when the node is
    /// subscribed to the channel (default 2 s), so a publish returns after the local
    /// handler saw it, as with the memory engine.
    pub local_delivery_wait: Duration,
}

impl RedisConfig {
    /// Defaults for `url` and `node_id`.
    pub fn new(url: impl Into<String>, node_id: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            node_id: node_id.into(),
            prefix: "sb:".into(),
            retention: Retention {
                max_count: 1000,
                max_age: Duration::from_secs(300),
            },
            history: HistoryRetention::default(),
            position_ttl: Duration::from_secs(24 * 3600),
            workers: 4,
            worker_queue: 8192,
            probe_interval: Duration::from_secs(2),
            probe_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(5),
            local_delivery_wait: Duration::from_secs(2),
            node_timeout: Duration::from_secs(15),
        }
    }
}

/// The state of the engine's link to Redis, for logs and the health endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// This node's id.
    pub node_id: String,
    /// Whether a PING answered.
    pub redis_ok: bool,
    /// Its round trip.
    pub ping: Option<Duration>,
    /// The error, when it did not.
    pub error: Option<String>,
    /// Whether the pub/sub connection is up and subscribed.
    pub pubsub_connected: bool,
    /// Counters of the pub/sub side.
    pub stats: Stats,
}

/// The Redis engine of one node; implements every engine trait.
pub struct RedisEngine {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    config: RedisConfig,
    conn: ConnectionManager,
    broker: broker::BrokerState,
    /// Commands that failed (for health).
    failures: AtomicU64,
}

fn unavailable(e: impl std::fmt::Display) -> EngineError {
    EngineError::Unavailable(format!("redis: {e}"))
}

fn bad_reply(what: &str) -> EngineError {
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
        for s in scripts::SCRIPTS.all() {
            s.load_async(&mut conn).await.map_err(unavailable)?;
        }
        scripts::SCRIPTS
            .node_heartbeat
            .arg(&config.prefix)
            .arg(&config.node_id)
            .invoke_async::<i64>(&mut conn)
            .await
            .map_err(unavailable)?;
        let broker = broker::BrokerState::new(&config);
        let inner = Arc::new(Inner {
            config,
            conn,
            broker,
            failures: AtomicU64::new(0),
        });
        broker::start(&inner, client).await?;
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
    fn prefix(&self) -> &str {
        &self.config.prefix
    }

    fn base(&self, key: &switchboard_engine::ChannelKey) -> String {
        keys::base(&self.config.prefix, key)
    }

    /// Runs a prepared script invocation.
    async fn run(&self, inv: &redis::ScriptInvocation<'_>) -> Result<Value, EngineError> {
        let mut conn = self.conn.clone();
        inv.invoke_async(&mut conn).await.map_err(|e| {
            self.failures.fetch_add(1, Ordering::Relaxed);
            unavailable(e)
        })
    }

    /// Runs one command.
    async fn cmd<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, EngineError> {
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
                let mut inv = scripts::SCRIPTS.node_heartbeat.arg(inner.prefix());
                inv.arg(&inner.config.node_id);
                if let Err(e) = inner.run(&inv).await {
                    tracing::warn!(node = %inner.config.node_id, error = %e, "redis: heartbeat failed");
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// The scripts need Redis 6.2 or later (`ZRANGE … BYSCORE REV`, `LPOS`); Redis 7 is
/// what the engine is tested on.
fn check_version(info: &str) -> Result<(), EngineError> {
    let version = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .map(str::trim)
        .unwrap_or("");
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) < (6, 2) {
        return Err(EngineError::Unavailable(format!(
            "redis: server version {version:?} is too old; the engine needs Redis 6.2 or later (7 recommended)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn old_servers_are_refused_with_a_reason() {
        assert!(super::check_version("# Server\r\nredis_version:7.0.15\r\n").is_ok());
        assert!(super::check_version("redis_version:6.2.0").is_ok());
        let e = super::check_version("redis_version:6.0.9").unwrap_err();
        assert!(e.to_string().contains("6.2 or later"), "{e}");
        assert!(super::check_version("no version").is_err());
    }
}

/// Reply helpers.
pub(crate) mod reply {
    use redis::Value;

    /// The items of an array reply (empty for nil).
    pub fn items(v: Value) -> Vec<Value> {
        match v {
            Value::Array(a) | Value::Set(a) => a,
            _ => Vec::new(),
        }
    }

    /// The bytes of a string reply.
    pub fn bytes(v: &Value) -> Option<&[u8]> {
        match v {
            Value::BulkString(b) => Some(b),
            Value::SimpleString(s) => Some(s.as_bytes()),
            Value::Okay => Some(b"OK"),
            _ => None,
        }
    }

    /// A string reply.
    pub fn string(v: &Value) -> Option<String> {
        bytes(v).and_then(|b| String::from_utf8(b.to_vec()).ok())
    }

    /// An integer reply (or a decimal string).
    pub fn int(v: &Value) -> Option<i64> {
        match v {
            Value::Int(i) => Some(*i),
            _ => std::str::from_utf8(bytes(v)?).ok()?.parse().ok(),
        }
    }
}
