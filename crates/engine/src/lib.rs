//! The engine contract: every operation on state shared between server nodes goes
//! through these traits, so that the in-process engine and a Redis engine are
//! interchangeable. Each method is one atomic step (one Lua script in Redis); the
//! contracts below say what is atomic, what is ordered and what happens on failure.
//! [`conformance`] holds the test kit that every engine must pass.
//! [`conformance_history`] holds the one for every [`HistoryStore`],
//! [`conformance_topics`] the one for every [`Topics`], and [`conformance_storage`] the
//! one for every engine implementing both [`MetadataStore`] and [`Locks`];
//! [`conformance_budgets`] checks the per-app budgets ([`AppBudgets`]).

pub mod conformance;
pub mod conformance_budgets;
pub mod conformance_history;
pub mod conformance_presence;
pub mod conformance_storage;
pub mod conformance_topics;
mod history;
mod locks;
mod metadata;
mod presence;
mod sessions;
mod topics;
mod types;

pub use locks::{Acquire, Freed, HandoverHandler, LockInfo, LockRejection, Locks};
pub use metadata::{
    Item, MetadataObject, MetadataStore, MetadataWrite, NO_CHECK, Rejection, WriteItem, WriteOp,
};
pub use presence::{Departed, Expired, Member, MemberPage, Presence, State};
pub use sessions::{Claim, KickHandler, NodeSeen, Sessions};
pub use topics::{TopicInfo, TopicPublisher, Topics};
pub use types::{
    AppBudgets, Budgets, ChannelKey, ChannelKind, EngineError, EventKind, KeyHasher, KeyMap,
    MessageKind, Publication, PublishOptions, PublishOutcome, RateLimit, Recovery, Retention,
    StreamPosition, shared_str,
};

pub use history::{
    HistoryPage, HistoryRetention, HistoryStore, StoredMessage, USER_PAIR_SEPARATOR,
};

use std::sync::Arc;

/// Receives the publications of every channel this node subscribed to.
///
/// Called by the broker in offset order per channel, never concurrently for one
/// channel. Implementations must not block: they hand the publication to local
/// connections' queues and return.
pub trait PublicationHandler: Send + Sync + 'static {
    /// One publication of `channel`, already carrying its position.
    fn on_publication(&self, channel: &ChannelKey, publication: &Arc<Publication>);

    /// A scope around one poll of a broker task that calls
    /// [`on_publication`](Self::on_publication) (a delivery worker): what the handler
    /// writes inside may be held back and written together when the returned guard is
    /// dropped, at the end of that poll, on the same thread. The default holds nothing.
    fn delivery_scope(&self) -> Option<Box<dyn std::any::Any>> {
        None
    }
}

/// Publish/subscribe with positions and a recovery log.
///
/// Contract:
/// - `publish` is atomic: it checks the rate limit and the receiver requirement,
///   assigns the channel's next offset under its epoch, appends to the recovery log
///   (bounded by count and age), and hands the publication to every node subscribed to
///   the channel — or does none of it and fails.
/// - Offsets of one epoch start at 1 and grow by exactly one per publication.
/// - Every node subscribed to a channel receives its publications in offset order.
/// - A publish with an idempotency key already seen within the log's age returns the
///   first outcome with `duplicate = true` and delivers nothing.
#[async_trait::async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Installs the handler that receives this node's publications. Called once, before
    /// any subscription.
    fn set_handler(&self, handler: Arc<dyn PublicationHandler>);

    /// Installs the per-app budgets (recovery-log bytes, idempotency keys, swept
    /// positions). Called once, before any publish; the default keeps no budget.
    fn set_budgets(&self, _budgets: Budgets) {}

    /// Publishes to `channel` (see the trait contract).
    async fn publish(
        &self,
        channel: &ChannelKey,
        publication: Publication,
        options: &PublishOptions,
    ) -> Result<PublishOutcome, EngineError>;

    /// This node starts receiving `channel`'s publications. Idempotent.
    async fn subscribe_node(&self, channel: &ChannelKey) -> Result<(), EngineError>;

    /// This node stops receiving `channel`'s publications. Idempotent.
    async fn unsubscribe_node(&self, channel: &ChannelKey) -> Result<(), EngineError>;

    /// The channel's current position: its epoch and the offset of its latest
    /// publication (0 when none yet).
    async fn position(&self, channel: &ChannelKey) -> Result<StreamPosition, EngineError>;

    /// Publications after `since`, oldest first, at most `limit`. `complete` is false
    /// when the epoch differs or the log no longer holds everything after `since`.
    async fn recover(
        &self,
        channel: &ChannelKey,
        since: StreamPosition,
        limit: usize,
    ) -> Result<Recovery, EngineError>;
}
