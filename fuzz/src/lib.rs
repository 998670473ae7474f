//! Shared parts of the fuzz targets: the structured request generator (fuzz bytes →
//! `ClientMessage`s that mostly decode and reach every handler's validation), the seed
//! requests of each type, and the in-process server harness of `server_requests`.

pub mod generate;
pub mod harness;
pub mod seeds;

/// The app with a certificate: tokens are checked.
pub const APP_ID: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
/// Certificate of [`APP_ID`].
pub const CERT: &str = "f0e1d2c3b4a5968778695a4b3c2d1e0f";
/// An app without a certificate (tokens not checked), so joins and renewals get past
/// the token and reach the rest of their handler.
pub const OPEN_APP_ID: &str = "c3d4e5f60718293a4b5c6d7e8f900112";
/// A well-formed app id the server does not know.
pub const UNKNOWN_APP_ID: &str = "d4e5f60718293a4b5c6d7e8f90011223";
/// The user of the persistent connection to [`APP_ID`].
pub const USER_A: &str = "fz-a";
/// The user of the first persistent connection to [`OPEN_APP_ID`].
pub const USER_B: &str = "fz-b";
/// The user of the second persistent connection to [`OPEN_APP_ID`] (so that one
/// user's requests meet another's state: locks, presence, user messages).
pub const USER_C: &str = "fz-c";
/// Request id of the heartbeat sent after each input: its reply marks the end of the
/// replies to the input (a connection's requests are handled in order).
pub const SENTINEL: u32 = u32::MAX;
