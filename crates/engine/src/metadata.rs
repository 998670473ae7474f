//! Metadata (api.md §6): durable key/value items attached to a MESSAGE or STREAM
//! channel, or to a user, with a revision per item and a major revision per object,
//! compare-and-set on both, and writes gated by a lock of the same channel.
//!
//! A metadata object is named by a [`ChannelKey`]: kind `Message` or `Stream` for a
//! channel's metadata, kind `User` (name = the user id) for a user's.

use crate::{ChannelKey, EngineError};
use std::collections::BTreeMap;
use std::sync::Arc;

/// "No check" for a revision guard (R138, R139).
pub const NO_CHECK: i64 = -1;

/// One item of a write, as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteItem {
    /// The key.
    pub key: String,
    /// The value (ignored by a remove).
    pub value: String,
    /// Guard: −1 no check, 0 create only, > 0 must equal the current revision (R138).
    pub revision: i64,
}

/// One stored item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The value.
    pub value: String,
    /// The item's revision: the object's major revision of the write that last wrote
    /// it, so revisions only grow (R141).
    pub revision: i64,
    /// Server time of the last write with addTimeStamp, ms; 0 otherwise (R144).
    pub updated: u64,
    /// Last writer when written with addUserId; empty otherwise (R144).
    pub author: String,
}

/// A whole metadata object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataObject {
    /// Revision of the whole object; −1 when it was never written. It survives the
    /// removal of every item, so it never decreases (R141).
    pub major_revision: i64,
    /// Items by key.
    pub items: BTreeMap<String, Item>,
}

impl Default for MetadataObject {
    fn default() -> Self {
        MetadataObject {
            major_revision: NO_CHECK,
            items: BTreeMap::new(),
        }
    }
}

/// Which write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOp {
    /// Create or overwrite the listed items (R135).
    Set,
    /// Overwrite listed items, all of which must exist (R136).
    Update,
    /// Delete the listed keys, or every item when none is listed (R137).
    Remove,
}

/// One metadata write (validated by the caller: names, sizes, guard values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataWrite {
    /// Set, update or remove.
    pub op: WriteOp,
    /// The items (remove: only keys and revisions matter; empty = all).
    pub items: Vec<WriteItem>,
    /// Guard on the object: −1 no check, 0 object must not exist (set), > 0 must equal
    /// the current major revision (R139).
    pub major_revision: i64,
    /// `(lock name, user)`: the write applies only if `user` owns that lock of the
    /// same channel right now (R143), checked in the same atomic step.
    pub lock_gate: Option<(Arc<str>, Arc<str>)>,
    /// addTimeStamp: the server time recorded in each written item.
    pub timestamp_ms: Option<u64>,
    /// addUserId: the writer recorded in each written item.
    pub author: Option<Arc<str>>,
}

/// Why a write was refused (it changed nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// A revision guard did not match, or an updated key does not exist (−12014).
    Outdated(String),
    /// The gating lock is not owned by the writer (−12008).
    LockNotHeld,
}

/// Durable metadata.
///
/// Contract (each method one atomic step; in Redis one Lua script over one HASH per
/// object, with the object's lock HASH under the same hash tag):
/// - `write` checks the lock gate, the major revision guard and every item guard; if
///   any fails it changes nothing and returns the [`Rejection`]. Otherwise it applies
///   every item (R142), increases the major revision by one and gives every written
///   item that revision, and returns the whole object after the write (shared: the
///   engine may keep the same `Arc`). It returns only
///   once the write is durable (R: an acknowledged write survives a crash).
/// - Object existence for guard 0 (R139): an object exists while it has items.
/// - `get` returns the object; a never-written one is empty with major revision −1.
#[async_trait::async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    /// Installs the per-app budgets; a write that would make an object larger than
    /// [`crate::AppBudgets::metadata_object_bytes`] (keys and values) fails with
    /// [`EngineError::OverBudget`] and changes nothing. The default keeps no budget.
    fn set_budgets(&self, _budgets: crate::Budgets) {}

    /// Applies one write (see the trait contract).
    async fn write(
        &self,
        object: &ChannelKey,
        write: MetadataWrite,
    ) -> Result<Result<Arc<MetadataObject>, Rejection>, EngineError>;

    /// The whole object.
    async fn get(&self, object: &ChannelKey) -> Result<Arc<MetadataObject>, EngineError>;
}
