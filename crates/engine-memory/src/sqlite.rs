//! Opening the embedded SQLite databases the same way: WAL journal, `synchronous =
//! FULL` (a transaction is on disk when its commit returns), a busy timeout, and a
//! schema version kept in `PRAGMA user_version`.

use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::time::Duration;
use switchboard_engine::EngineError;

/// `PRAGMA synchronous` value of FULL: every commit is fsynced before it returns.
pub const SYNCHRONOUS_FULL: i64 = 2;

/// Sets the pragmas every connection uses, and checks that `synchronous` took.
pub(crate) fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    let set = synchronous(conn)?;
    if set != SYNCHRONOUS_FULL {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "PRAGMA synchronous is {set} after setting FULL ({SYNCHRONOUS_FULL})"
        )));
    }
    Ok(())
}

/// The connection's `PRAGMA synchronous` (0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA).
pub(crate) fn synchronous(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "synchronous", |row| row.get(0))
}

/// Opens (creating if needed) `dir/file` in WAL mode and applies `schema` of `version`;
/// `what` names the store in errors ("history store: …").
pub(crate) fn open(
    dir: &Path,
    file: &str,
    schema: &str,
    version: i64,
    what: &str,
) -> Result<(Connection, PathBuf), EngineError> {
    let err = |e: rusqlite::Error| EngineError::Unavailable(format!("{what}: {e}"));
    std::fs::create_dir_all(dir)
        .map_err(|e| EngineError::Unavailable(format!("{what}: create {}: {e}", dir.display())))?;
    let path = dir.join(file);
    let conn = Connection::open(&path).map_err(err)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(EngineError::Unavailable(format!(
            "{what}: journal mode {mode}, WAL unavailable"
        )));
    }
    configure(&conn).map_err(err)?;
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(err)?;
    if found > version {
        return Err(EngineError::Unavailable(format!(
            "{what}: schema version {found} is newer than this build ({version})"
        )));
    }
    conn.execute_batch(schema).map_err(err)?;
    conn.pragma_update(None, "user_version", version)
        .map_err(err)?;
    Ok((conn, path))
}
