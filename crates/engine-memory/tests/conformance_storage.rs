//! `SqliteStorage` against the storage and lock conformance kit.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};
use switchboard_engine::conformance_storage::run_storage_suite;
use switchboard_engine_memory::SqliteStorage;

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "switchboard-storage-{tag}-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
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

/// Every check on a fresh store.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_storage_passes_the_conformance_suite() {
    let dir = TempDir::new("suite");
    let next = AtomicUsize::new(0);
    run_storage_suite(|| {
        let n = next.fetch_add(1, Ordering::Relaxed);
        Arc::new(SqliteStorage::open(&dir.0.join(n.to_string())).expect("open"))
    })
    .await;
}

/// Every check on one shared store: the checks use their own channels and apps, so
/// they must pass side by side as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_storage_passes_the_conformance_suite_on_one_store() {
    let dir = TempDir::new("shared");
    let store = Arc::new(SqliteStorage::open(&dir.0).expect("open"));
    run_storage_suite(|| store.clone()).await;
}

/// The contract's durability, which the kit cannot see: acknowledged metadata writes
/// (major revision included, even with no items left) and lock definitions survive a
/// reopen; lock ownership and waiting lines do not (api.md §7: a restart frees every
/// lock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_and_definitions_survive_reopen_ownership_does_not() {
    use switchboard_engine::{
        Acquire, ChannelKey, ChannelKind, LockInfo, Locks, MetadataStore, MetadataWrite, NO_CHECK,
        WriteItem, WriteOp,
    };
    let dir = TempDir::new("reopen");
    let ch = ChannelKey::new("app", ChannelKind::Stream, "durable");
    let emptied = ChannelKey::new("app", ChannelKind::User, "emptied");
    let w = |op, items: &[(&str, &str)]| MetadataWrite {
        op,
        items: items
            .iter()
            .map(|(k, v)| WriteItem {
                key: k.to_string(),
                value: v.to_string(),
                revision: NO_CHECK,
            })
            .collect(),
        major_revision: NO_CHECK,
        lock_gate: None,
        timestamp_ms: Some(1_700_000_000_000),
        author: Some("alice".into()),
    };
    let (before, before_emptied) = {
        let s = SqliteStorage::open(&dir.0).expect("open");
        for i in 0..5 {
            s.write(&ch, w(WriteOp::Set, &[("k", &i.to_string()), ("x", "y")]))
                .await
                .expect("write")
                .expect("accepted");
        }
        s.write(&ch, w(WriteOp::Remove, &[("x", "")]))
            .await
            .expect("write")
            .expect("accepted");
        s.write(&emptied, w(WriteOp::Set, &[("a", "1")]))
            .await
            .expect("write")
            .expect("accepted");
        s.write(&emptied, w(WriteOp::Remove, &[]))
            .await
            .expect("write")
            .expect("accepted");
        s.set(&ch, "l", 30, 8).await.expect("set").expect("defined");
        assert_eq!(
            s.acquire(&ch, "l", "alice", false).await.expect("acquire"),
            Ok(Acquire::Acquired { ttl_s: 30 })
        );
        assert_eq!(
            s.acquire(&ch, "l", "bob", true).await.expect("acquire"),
            Ok(Acquire::Queued)
        );
        (
            s.get(&ch).await.expect("get"),
            s.get(&emptied).await.expect("get"),
        )
        // Dropped without any close call.
    };
    let s = SqliteStorage::open(&dir.0).expect("reopen");
    assert_eq!(s.get(&ch).await.expect("get"), before, "metadata survives");
    assert_eq!(
        s.get(&emptied).await.expect("get"),
        before_emptied,
        "the major revision of an object without items survives (R141)"
    );
    assert!(before_emptied.items.is_empty() && before_emptied.major_revision > 0);
    assert_eq!(
        s.list(&ch).await.expect("list"),
        [LockInfo {
            name: "l".into(),
            owner: None,
            ttl_s: 30
        }],
        "the definition survives, its owner does not"
    );
    assert_eq!(
        s.acquire(&ch, "l", "carol", false).await.expect("acquire"),
        Ok(Acquire::Acquired { ttl_s: 30 })
    );
    assert_eq!(
        s.release(&ch, "l", "carol")
            .await
            .expect("release")
            .expect("owner")
            .next,
        None,
        "the waiting line does not survive"
    );
}
