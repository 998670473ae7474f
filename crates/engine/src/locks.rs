//! Locks (api.md §7): named locks of a MESSAGE or STREAM channel, each with at most one
//! owner, a FIFO line of waiters, and a ttl that starts counting when the owner's
//! connection is lost (R150–R156). Definitions are durable; ownership and waiters are
//! not: a restart frees every lock.

use crate::{ChannelKey, EngineError};
use std::sync::Arc;

/// One lock of a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
    /// The lock's name.
    pub name: Arc<str>,
    /// The owner; `None` when free.
    pub owner: Option<Arc<str>>,
    /// Seconds the lock stays with an owner whose connection was lost.
    pub ttl_s: u32,
}

/// Why a lock operation was refused (it changed nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockRejection {
    /// `set` of a defined lock (−14004).
    AlreadyExists,
    /// Any other operation on an undefined lock (−14008).
    NotDefined,
    /// `acquire` without waiting while another user owns it (−14007).
    HeldBy(Arc<str>),
    /// `release` / `revoke` by or of a user that is not the owner (−14006).
    NotOwner,
    /// `set` when the channel already has this many locks.
    TooMany(usize),
}

/// The result of an `acquire`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquire {
    /// The caller owns the lock now; `ttl_s` is the lock's ttl (for the ACQUIRED event).
    Acquired {
        /// The lock's ttl, seconds.
        ttl_s: u32,
    },
    /// The caller owned it already; nothing changed.
    AlreadyOwner,
    /// Another user owns it; the caller waits in line (only with `wait`).
    Queued,
}

/// A lock that changed hands because its owner released it, was revoked, lost it on
/// expiry or logout, or because it was removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freed {
    /// The channel.
    pub channel: ChannelKey,
    /// The lock.
    pub lock: Arc<str>,
    /// Its ttl, seconds.
    pub ttl_s: u32,
    /// Who owned it (`None` for a removed lock nobody owned).
    pub former: Option<Arc<str>>,
    /// The waiter that owns it now, in arrival order (R152, R153); `None` when free.
    pub next: Option<Arc<str>>,
}

/// Told of every hand-over of a lock to a waiter, whichever node made it (see
/// [`Locks::set_handover_handler`]). Must not block: it answers a waiting request and
/// returns.
pub trait HandoverHandler: Send + Sync + 'static {
    /// `user` now owns `lock` of `channel`, handed over from the line of waiters.
    fn on_handover(&self, channel: &ChannelKey, lock: &str, user: &str);
}

/// Distributed locks.
///
/// Contract (each method one atomic step; in Redis one Lua script over the channel's
/// lock HASH, a LIST of waiters per lock and a ZSET of owner deadlines):
/// - `set` defines a free lock with `ttl_s` (durably, before returning), unless it
///   exists or the channel has `max_locks` locks.
/// - `remove` deletes the definition, its owner and its waiters (durably); a removed
///   lock hands over to nobody, so the caller fails the waits it knows of.
/// - `acquire` makes `user` the owner of a free lock; if another user owns it, queues
///   `user` (once) when `wait`, else refuses with [`LockRejection::HeldBy`].
/// - `release` frees a lock `user` owns; `revoke` frees it if `owner` owns it. The next
///   waiter (if any) becomes the owner in the same step.
/// - `cancel_wait` takes `user` out of a lock's line; true if it was in it.
/// - `owner_lost` gives every lock owned by `user` of `app` a deadline of its ttl after
///   `now_ms`; `owner_back` clears them. `expire_due` frees every lock whose deadline is
///   at or before `now_ms` (handing over to waiters) and returns them.
/// - `release_all` frees every lock `user` of `app` owns and takes the user out of every
///   line (logout, session end).
/// - `set_handover_handler` (engines shared by several nodes): every hand-over to a
///   waiter, made by any node's `release`, `revoke`, `expire`, `expire_due` or
///   `release_all`, reaches the handler of every node, so the node that holds the
///   waiting request answers it. An engine of one node keeps the default, which
///   installs nothing and returns false: the node that hands over holds every waiter.
/// - `owned_by` lists a user's locks; `due` lists the locks whose deadline passed and
///   `expire` frees one of them (the step-by-step forms of `release_all` and
///   `expire_due`, for callers that order each change with its events).
#[async_trait::async_trait]
pub trait Locks: Send + Sync + 'static {
    /// Installs the per-app budgets; past [`crate::AppBudgets::lock_definitions`] a
    /// `set` fails with [`EngineError::OverBudget`]. The default keeps no budget.
    fn set_budgets(&self, _budgets: crate::Budgets) {}

    /// Defines a lock.
    async fn set(
        &self,
        channel: &ChannelKey,
        lock: &str,
        ttl_s: u32,
        max_locks: usize,
    ) -> Result<Result<(), LockRejection>, EngineError>;

    /// Deletes a lock; returns its former owner in [`Freed`] (`next` is always `None`).
    async fn remove(
        &self,
        channel: &ChannelKey,
        lock: &str,
    ) -> Result<Result<Freed, LockRejection>, EngineError>;

    /// Acquires a lock, or waits in line for it.
    async fn acquire(
        &self,
        channel: &ChannelKey,
        lock: &str,
        user: &str,
        wait: bool,
    ) -> Result<Result<Acquire, LockRejection>, EngineError>;

    /// Frees a lock the user owns.
    async fn release(
        &self,
        channel: &ChannelKey,
        lock: &str,
        user: &str,
    ) -> Result<Result<Freed, LockRejection>, EngineError>;

    /// Frees a lock if `owner` owns it.
    async fn revoke(
        &self,
        channel: &ChannelKey,
        lock: &str,
        owner: &str,
    ) -> Result<Result<Freed, LockRejection>, EngineError>;

    /// Takes a user out of a lock's line.
    async fn cancel_wait(
        &self,
        channel: &ChannelKey,
        lock: &str,
        user: &str,
    ) -> Result<bool, EngineError>;

    /// Every lock of a channel, ordered by name.
    async fn list(&self, channel: &ChannelKey) -> Result<Vec<LockInfo>, EngineError>;

    /// The user's connection was lost: its locks expire after their ttl.
    async fn owner_lost(&self, app: &str, user: &str, now_ms: u64) -> Result<(), EngineError>;

    /// The user is back: its locks no longer expire.
    async fn owner_back(&self, app: &str, user: &str) -> Result<(), EngineError>;

    /// Frees the locks whose deadline passed.
    async fn expire_due(&self, now_ms: u64) -> Result<Vec<Freed>, EngineError>;

    /// Frees every lock of the user and takes it out of every line.
    async fn release_all(&self, app: &str, user: &str) -> Result<Vec<Freed>, EngineError>;

    /// The locks `user` of `app` owns: (channel, lock), so that a caller can free them
    /// one at a time, each in its channel's order.
    async fn owned_by(
        &self,
        app: &str,
        user: &str,
    ) -> Result<Vec<(ChannelKey, Arc<str>)>, EngineError>;

    /// The locks whose deadline is at or before `now_ms`: (channel, lock, owner).
    async fn due(&self, now_ms: u64) -> Result<Vec<(ChannelKey, Arc<str>, Arc<str>)>, EngineError>;

    /// Frees one lock whose deadline passed, if `owner` still owns it and its deadline is
    /// at or before `now_ms` (handing over to the next waiter); `None` otherwise.
    async fn expire(
        &self,
        channel: &ChannelKey,
        lock: &str,
        owner: &str,
        now_ms: u64,
    ) -> Result<Option<Freed>, EngineError>;

    /// Installs the handler told of every hand-over made by any node; false (the
    /// default) when the engine serves one node only and installs nothing.
    fn set_handover_handler(&self, handler: Arc<dyn HandoverHandler>) -> bool {
        let _ = handler;
        false
    }
}
