//! Switchboard wire protocol: the generated `switchboard.v1` types, framing, the error
//! and disconnect code tables, link-state vocabulary and name validation. No I/O.

pub mod codes;
pub mod frame;
pub mod link;
pub mod names;
pub mod push;

/// Generated protobuf types of package `switchboard.v1` (see `proto/`).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/switchboard.v1.rs"));
}

pub use codes::{ERROR_TABLE, ErrorCode};
pub use link::{DISCONNECT_TABLE, DisconnectCode, LinkOperation, LinkReason, LinkState};

/// The WebSocket path clients connect to.
pub const WS_PATH: &str = "/v1/ws";
/// Protocol version spoken by this crate.
pub const PROTOCOL_VERSION: u32 = 1;
/// Spec default payload limit, bytes (R63).
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 32 * 1024;

/// Current wall-clock time in milliseconds since the Unix epoch (0 if the clock is
/// before the epoch). The only clock read in this crate; kept here so every part
/// stamps events the same way.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
