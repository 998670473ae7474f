//! The default engine: everything in this process. Channels live in a sharded map; each
//! channel has its own small lock under which a publish takes its offset, appends to
//! the recovery log and is handed to the node, so deliveries are in offset order while
//! channels never wait on each other.

mod broker;
mod history;
mod presence;
mod sqlite;
mod storage;
mod topics;

pub use broker::{MemoryBroker, MemoryConfig};
pub use history::{HistoryStats, SqliteHistory};
pub use presence::MemoryPresence;
pub use storage::SqliteStorage;
pub use topics::MemoryTopics;
