//! Durable message history (`storeInHistory`, api.md §8, rules R160–R164).
//!
//! A [`HistoryStore`] keeps the publications that were published with
//! `storeInHistory: true`, per channel, and pages through them newest first.
//!
//! # Timestamps are the cursor
//!
//! Every stored message has a timestamp (ms since the Unix epoch) that is **strictly
//! increasing per channel**: a publication is stored at its own `timestamp_ms`, raised
//! when needed to one more than the channel's latest stored timestamp (and to at least
//! 1). Two messages published in the same millisecond are therefore stored at `t` and
//! `t + 1`. Because no two messages of a channel share a timestamp, the timestamp alone
//! is an exact cursor: [`HistoryPage::new_start`] is the oldest returned timestamp minus
//! one, and passing it back as `start` returns the next older page with no message
//! repeated or skipped (R164).
//!
//! # USER channels
//!
//! The history of a USER channel holds the messages between two users, whichever of the
//! two sent them (api.md §8). Such a conversation is stored once, under the canonical
//! key [`ChannelKey::user_pair`]: kind [`ChannelKind::User`], name = the two user ids in
//! byte order joined by [`USER_PAIR_SEPARATOR`] (`'\n'`, which no user id may contain,
//! api.md §1.8). Both peers build the same key, so both read the same history.
//!
//! # Redis form (for later)
//!
//! One sorted set or stream per channel key (hash-tagged by channel). `append` is one Lua
//! script: read the latest timestamp, compute `max(ts, last + 1, 1)`, add the message,
//! trim by count and age (`ZREMRANGEBYRANK` / `ZREMRANGEBYSCORE`, or `XADD ... MAXLEN`
//! with `MINID`). `query` is one `ZRANGE ... BYSCORE REV LIMIT 0 limit+1` (or
//! `XREVRANGE ... COUNT limit+1`): the extra element tells whether an older message
//! remains. Durability then follows the Redis server's AOF policy (`appendfsync always`
//! for the guarantee stated on [`HistoryStore::append`]).

use crate::{ChannelKey, ChannelKind, EngineError, MessageKind, Publication};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

/// Separator between the two user ids of a USER pair key; no valid user id contains it.
pub const USER_PAIR_SEPARATOR: char = '\n';

impl ChannelKey {
    /// The canonical history key of the conversation between users `a` and `b` of `app`:
    /// kind USER, name = the two ids in byte order joined by [`USER_PAIR_SEPARATOR`].
    /// Symmetric: `user_pair(app, a, b) == user_pair(app, b, a)`.
    pub fn user_pair(app: impl Into<Arc<str>>, a: &str, b: &str) -> ChannelKey {
        let (low, high) = if a <= b { (a, b) } else { (b, a) };
        let mut name = String::with_capacity(low.len() + high.len() + 1);
        name.push_str(low);
        name.push(USER_PAIR_SEPARATOR);
        name.push_str(high);
        ChannelKey::new(app, ChannelKind::User, name)
    }

    /// The two user ids (in byte order) of a key built by [`ChannelKey::user_pair`];
    /// `None` for any other key.
    pub fn user_pair_members(&self) -> Option<(&str, &str)> {
        if self.kind != ChannelKind::User {
            return None;
        }
        self.name.split_once(USER_PAIR_SEPARATOR)
    }
}

/// How long and how much history a store keeps per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryRetention {
    /// Messages older than this (by stored timestamp, against the wall clock) are dropped.
    pub max_age: Duration,
    /// At most this many of a channel's newest messages are kept.
    pub max_per_channel: usize,
}

impl Default for HistoryRetention {
    /// 7 days and 10,000 messages per channel.
    fn default() -> Self {
        HistoryRetention {
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_per_channel: 10_000,
        }
    }
}

/// One message as the history returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Publisher's user id.
    pub publisher: Arc<str>,
    /// Text or binary.
    pub kind: MessageKind,
    /// Application label; empty for none.
    pub custom_type: Arc<str>,
    /// The payload, as published.
    pub payload: Bytes,
    /// The stored timestamp (ms), unique within the channel; see the module docs.
    pub timestamp_ms: u64,
}

impl StoredMessage {
    /// The stored form of `publication` at the stored timestamp `timestamp_ms`.
    pub fn from_publication(publication: &Publication, timestamp_ms: u64) -> Self {
        StoredMessage {
            publisher: publication.publisher.clone(),
            kind: publication.kind,
            custom_type: publication.custom_type.clone(),
            payload: publication.payload.clone(),
            timestamp_ms,
        }
    }
}

/// One page of a history query.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HistoryPage {
    /// Messages, newest first.
    pub messages: Vec<StoredMessage>,
    /// The `start` of the next older page, or 0 when nothing older remains in the range.
    pub new_start: u64,
}

/// Durable message history (`storeInHistory`).
///
/// Contract:
/// - `append` is atomic and durable: when it returns `Ok`, the message is committed
///   (an acknowledged write survives a crash of the process or machine) and visible to
///   every later `query`. On `Err` nothing was stored.
/// - Stored timestamps are strictly increasing per channel, across restarts:
///   `stored = max(publication.timestamp_ms, previous stored + 1, 1)`.
/// - `query(channel, start, end, limit)` returns the channel's messages with
///   `end <= timestamp <= start` (both bounds inclusive; `start == 0` means no upper
///   bound, `end == 0` no lower bound), newest first, at most `limit` of them.
///   `new_start` is `oldest returned timestamp - 1` when at least one more message lies
///   in the range below the page, else 0. Querying again with `start = new_start` and
///   the same `end` continues exactly where the page stopped (R164). `limit == 0`
///   returns an empty page with `new_start == 0` (callers apply their default first);
///   `start < end` (both non-zero) is an empty range.
/// - Channels are isolated by the whole key (app, kind, name). USER conversations use
///   [`ChannelKey::user_pair`].
/// - Retention ([`HistoryRetention`]): a store keeps at most `max_per_channel` newest
///   messages per channel and never returns a message older than `max_age`.
/// - No input makes a method panic; values a store cannot represent (for SQLite, a
///   timestamp above `i64::MAX`) fail with an error and leave the channel unchanged.
#[async_trait::async_trait]
pub trait HistoryStore: Send + Sync + 'static {
    /// Stores `publication` under `channel` durably; returns its stored timestamp.
    async fn append(
        &self,
        channel: &ChannelKey,
        publication: &Publication,
    ) -> Result<u64, EngineError>;

    /// Newest-first page of `channel` within `end ..= start` (see the trait contract).
    async fn query(
        &self,
        channel: &ChannelKey,
        start: u64,
        end: u64,
        limit: usize,
    ) -> Result<HistoryPage, EngineError>;
}
