//! Shared engine types: channel keys, publications and stream positions.

use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

/// `s` as a shared string; the empty string (no topic, no custom type: most
/// publications) is one shared allocation instead of one per publication.
pub fn shared_str(s: &str) -> Arc<str> {
    static EMPTY: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
    if s.is_empty() {
        EMPTY.get_or_init(|| Arc::from("")).clone()
    } else {
        Arc::from(s)
    }
}

/// Which kind of channel a key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChannelKind {
    /// A MESSAGE channel (pub/sub).
    Message,
    /// A USER channel: the name is the receiving user id.
    User,
    /// A STREAM channel: one stream carrying every topic's messages and the channel's
    /// events.
    Stream,
    /// The storage events of one user's metadata (the name is the user id); the
    /// metadata itself is stored under the user's `User` key.
    UserMetadata,
}

/// A channel of one app. Cheap to clone. Its hash is computed once, when it is built
/// (keyed SipHash, random per process): a publish looks the same key up in several maps
/// (broker shard and channel, hub shard and subscribers), and hashing the app id and
/// name again for each was ~12 % of the server's instructions per p2p message.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ChannelKey {
    /// The app (tenant) the channel belongs to.
    pub app: Arc<str>,
    /// Channel kind.
    pub kind: ChannelKind,
    /// Channel name (for USER: the receiving user id).
    pub name: Arc<str>,
    /// Hash of (app, kind, name); last, so that ordering is by the fields above.
    hash: u64,
}

impl std::hash::Hash for ChannelKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// Hasher for maps keyed by [`ChannelKey`]: the key's hash is already a keyed
/// SipHash, so the map takes it as it is instead of hashing it again.
#[derive(Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only reached by keys other than `ChannelKey`; FNV-1a keeps it correct.
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
}

/// A map keyed by [`ChannelKey`] that does not rehash the key.
pub type KeyMap<V> =
    std::collections::HashMap<ChannelKey, V, std::hash::BuildHasherDefault<KeyHasher>>;

impl ChannelKey {
    /// The key's hash, to pick a shard with.
    pub fn hash64(&self) -> u64 {
        self.hash
    }

    /// Builds a key.
    pub fn new(app: impl Into<Arc<str>>, kind: ChannelKind, name: impl Into<Arc<str>>) -> Self {
        use std::hash::BuildHasher;
        static KEYS: std::sync::OnceLock<std::collections::hash_map::RandomState> =
            std::sync::OnceLock::new();
        let (app, name) = (app.into(), name.into());
        let hash = KEYS
            .get_or_init(Default::default)
            .hash_one((&*app, kind, &*name));
        ChannelKey {
            app,
            kind,
            name,
            hash,
        }
    }
}

/// Where a subscriber is in a channel's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StreamPosition {
    /// Changes when the channel's history is lost; offsets restart under a new epoch.
    pub epoch: u64,
    /// Offset of a publication; 1 for the first under an epoch.
    pub offset: u64,
}

/// How a payload was sent, or which kind of channel event a publication carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// UTF-8 text.
    Text,
    /// Raw bytes.
    Binary,
    /// A channel event; the payload is the server's encoding of it, opaque to engines.
    Event(EventKind),
}

/// Channel events that travel in a channel's stream next to its messages, so that they
/// are ordered with them, reach every node and are replayed on resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A stream channel topic event (publisher joined or left a topic).
    Topic,
    /// A presence event.
    Presence,
    /// A storage (metadata) event.
    Storage,
    /// A lock event.
    Lock,
}

/// One published message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// Publisher's user id.
    pub publisher: Arc<str>,
    /// Text or binary.
    pub kind: MessageKind,
    /// Application label; empty for none.
    pub custom_type: Arc<str>,
    /// The payload, opaque to the server.
    pub payload: Bytes,
    /// STREAM channels: the topic of a topic message; empty otherwise.
    pub topic: Arc<str>,
    /// STREAM channels: the publisher's media-calibration timestamp, ms (0 = none).
    pub send_ts: u64,
    /// Server time of the publish, ms since the epoch.
    pub timestamp_ms: u64,
    /// Assigned by the broker; ignored on input.
    pub position: StreamPosition,
}

/// A per-channel publish rate, enforced by the broker for every node together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Publications per second.
    pub per_second: u32,
    /// Burst allowance (bucket size).
    pub burst: u32,
}

/// Options of one publish.
#[derive(Debug, Clone, Default)]
pub struct PublishOptions {
    /// Fail with [`EngineError::NoReceiver`] unless some node is subscribed (USER channels).
    pub require_receiver: bool,
    /// Deduplicate retries with this key.
    pub idempotency_key: Option<Arc<str>>,
    /// Enforce this per-channel rate; `None` = unlimited.
    pub rate_limit: Option<RateLimit>,
}

/// Result of a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishOutcome {
    /// Position of the publication.
    pub position: StreamPosition,
    /// True when an earlier publish with the same idempotency key was found.
    pub duplicate: bool,
}

/// Result of a recovery read.
#[derive(Debug, Clone)]
pub struct Recovery {
    /// Publications after the requested position, oldest first.
    pub publications: Vec<Arc<Publication>>,
    /// The channel's current position.
    pub position: StreamPosition,
    /// False when something after the requested position can no longer be returned.
    pub complete: bool,
}

/// Failures of engine operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// `require_receiver` was set and nobody receives the channel.
    #[error("no receiver for the channel")]
    NoReceiver,
    /// The channel's rate limit is exhausted.
    #[error("publish rate limit of {0} per second reached")]
    RateLimited(u32),
    /// A limit the operation was asked to enforce was reached (the limit is given).
    #[error("limit of {0} reached")]
    LimitReached(usize),
    /// The engine's backing store did not answer.
    #[error("engine unavailable: {0}")]
    Unavailable(String),
    /// A per-app budget ([`AppBudgets`]) would be exceeded; the text names it and its
    /// limit. The operation changed nothing.
    #[error("{0}")]
    OverBudget(String),
}

/// Per-app totals an engine keeps within, so that no client can grow its memory
/// without bound (issue 20); 0 = unlimited. Engines that do not keep a structure
/// ignore its budget.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppBudgets {
    /// Bytes of payload (and custom type, topic) in the recovery logs of all the app's
    /// channels together.
    pub recovery_log_bytes: usize,
    /// Idempotency keys remembered across all the app's channels.
    pub idempotency_keys: usize,
    /// Positions of idle channels swept from memory, kept so that a quiet channel is
    /// not a gap when it comes back.
    pub swept_positions: usize,
    /// Bytes of keys and values of one metadata object.
    pub metadata_object_bytes: usize,
    /// Lock definitions across all the app's channels.
    pub lock_definitions: usize,
}

/// Gives the budgets of an app by its id; installed once by the server.
pub type Budgets = Arc<dyn Fn(&str) -> AppBudgets + Send + Sync>;

/// How long an engine keeps recovery data; engines take it in their own config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Most publications kept per channel.
    pub max_count: usize,
    /// Oldest publication age kept.
    pub max_age: Duration,
}
