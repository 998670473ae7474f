//! Issue 20: the SQLite stores' writer connections commit with `synchronous = FULL`,
//! read back from each store's writer connection (with NORMAL a WAL commit could be
//! lost on power loss, and nothing else would notice).

use switchboard_engine::HistoryRetention;
use switchboard_engine_memory::{SYNCHRONOUS_FULL, SqliteHistory, SqliteStorage};

#[test]
fn the_writers_commit_with_synchronous_full() {
    let dir = std::env::temp_dir().join(format!(
        "switchboard-sync-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let storage = SqliteStorage::open(&dir).expect("storage");
    assert_eq!(storage.writer_synchronous(), SYNCHRONOUS_FULL);
    let history = SqliteHistory::open(&dir, HistoryRetention::default()).expect("history");
    assert_eq!(history.writer_synchronous(), SYNCHRONOUS_FULL);
    // The value is read from the connection, not a constant: another connection to the
    // same file set to NORMAL reads 1.
    let conn = rusqlite::Connection::open(storage.path()).expect("open");
    conn.pragma_update(None, "synchronous", "NORMAL")
        .expect("set");
    let normal: i64 = conn
        .pragma_query_value(None, "synchronous", |r| r.get(0))
        .expect("read");
    assert_eq!(normal, 1);
    drop((storage, history, conn));
    let _ = std::fs::remove_dir_all(&dir);
}
