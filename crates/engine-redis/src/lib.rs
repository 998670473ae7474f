//! The Redis engine: every trait of the engine contract ([`Broker`], [`Presence`],
//! [`Topics`], [`MetadataStore`], [`Locks`], [`HistoryStore`], [`Sessions`]) on Redis 7,
//! so that several `switchboard serve` nodes share channels, presence, metadata, locks,
//! history and the one session per user.
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
mod config;
mod history;
mod keys;
mod local_locks;
mod members;
mod presence;
mod scripts;
mod sessions;
mod storage;
mod target;
mod topics;

pub use broker::RedisEngine;
pub use config::{Health, RedisConfig, Stats};
pub use target::redacted;
