//! The memory engine (the reference) against the budgets conformance kit: the broker
//! and `SqliteStorage`, so the kit's expectations are the memory engine's behaviour
//! that the Redis engine is checked against.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};
use switchboard_engine::Broker;
use switchboard_engine::conformance_budgets::{
    run_broker_budgets_suite, run_storage_budgets_suite,
};
use switchboard_engine_memory::{MemoryBroker, MemoryConfig, SqliteStorage};

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "switchboard-budgets-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_broker_passes_the_budgets_suite() {
    run_broker_budgets_suite(|| {
        Arc::new(MemoryBroker::new(MemoryConfig::default())) as Arc<dyn Broker>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_storage_passes_the_budgets_suite() {
    let dir = TempDir::new("storage");
    let next = AtomicUsize::new(0);
    run_storage_budgets_suite(|| {
        let n = next.fetch_add(1, Ordering::Relaxed);
        Arc::new(SqliteStorage::open(&dir.0.join(n.to_string())).expect("open"))
    })
    .await;
}
