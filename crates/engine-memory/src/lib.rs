//! The default engine: everything in this process. Channels live in a sharded map; each
//! channel has its own small lock under which a publish takes its offset, appends to
//! the recovery log and queues it for the node; one publisher at a time hands the queue
//! to the node outside that lock, so deliveries are in offset order while channels
//! never wait on each other and a big fan-out never blocks the channel.

mod broker;
mod history;
mod presence;
mod sqlite;
mod storage;
mod topics;

pub use broker::{MemoryBroker, MemoryConfig};
pub use history::{HistoryStats, SqliteHistory};
pub use presence::MemoryPresence;
pub use sqlite::SYNCHRONOUS_FULL;
pub use storage::SqliteStorage;
pub use topics::MemoryTopics;
