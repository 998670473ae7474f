//! The last position handed to the app in every channel's stream: what a resume or a
//! re-subscription starts from, and what drops a replayed message the app already has.

use crate::types::{ChannelType, StreamPosition};
use std::collections::HashMap;

/// Last position handed to the app, per channel: (channel type, name) → position; the
/// user's own inbox is under (User, own user id).
pub(crate) type Positions =
    std::sync::Arc<std::sync::Mutex<HashMap<(ChannelType, String), StreamPosition>>>;

/// Records `pos` for `key` unless it is not newer than what the app already has (same
/// epoch); returns whether the message is new. Duplicates are dropped here, so the app
/// sees each message once even if a replay overlaps what it already got.
pub(crate) fn advance(
    positions: &Positions,
    key: (ChannelType, String),
    pos: StreamPosition,
) -> bool {
    let mut map = positions.lock().unwrap_or_else(|e| e.into_inner());
    match map.get(&key) {
        Some(last) if last.epoch == pos.epoch && pos.offset <= last.offset => false,
        _ => {
            map.insert(key, pos);
            true
        }
    }
}

/// Sets the starting position of `key` if the app has none yet (from a login or
/// subscribe reply). Never moves an existing position: replayed messages may still be on
/// their way behind the reply.
pub(crate) fn baseline(positions: &Positions, key: (ChannelType, String), pos: StreamPosition) {
    let mut map = positions.lock().unwrap_or_else(|e| e.into_inner());
    map.entry(key).or_insert(pos);
}
