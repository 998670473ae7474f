//! The engine's settings and health report, the error and reply helpers every module
//! shares, and the Redis version check.

use std::time::Duration;
use switchboard_engine::{EngineError, HistoryRetention, Retention};

/// Counters of the pub/sub side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Channels this node is subscribed to.
    pub subscriptions: usize,
    /// Pub/sub reconnections after the first connection.
    pub reconnects: u64,
    /// Reconnections forced by the liveness probe (a connection that stopped delivering).
    pub probe_restarts: u64,
    /// Messages the reader could not queue (their channel was recovered from the log).
    pub overflows: u64,
    /// Publications delivered from the recovery log instead of pub/sub.
    pub recovered: u64,
    /// Gaps: publications that were neither received nor recoverable (a trimmed log or
    /// a new epoch); the next delivered offset jumps, so subscribers see the gap.
    pub gaps: u64,
    /// Sentinel: times the command connection moved to the master the sentinels named
    /// after losing the previous one (a failover, or READONLY from a demoted master).
    pub master_switches: u64,
}

/// Settings of a [`RedisEngine`].
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://[[USER]:PASSWORD@]HOST:PORT[/DB]`, or Sentinel:
    /// `redis+sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]…]/MASTER_NAME[/DB]`
    /// (the sentinels' addresses, default port 26379; the credentials and database are
    /// the master's).
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

/// The scripts need Redis 6.2 or later (`ZRANGE … BYSCORE REV`, `LPOS`); Redis 7 is
/// what the engine is tested on.
pub(crate) fn check_version(info: &str) -> Result<(), EngineError> {
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
