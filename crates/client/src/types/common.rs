//! The SDK's basic public types: errors, channel types, payloads, stream positions,
//! and the options and replies of login, publish and subscribe (api.md §3, §12).

use bytes::Bytes;
use switchboard_protocol::ErrorCode;

/// A failed call: the server's (or the SDK's) code, reason and operation (api.md §12.1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} failed with {code}: {reason}")]
pub struct RtmError {
    /// Error code (api.md §12.2).
    pub code: i32,
    /// Why, in words.
    pub reason: String,
    /// The API that failed, e.g. `"publish"`.
    pub operation: String,
}

impl RtmError {
    /// A local error.
    pub(crate) fn new(code: ErrorCode, operation: &str, reason: impl Into<String>) -> Self {
        RtmError {
            code: code.as_i32(),
            reason: reason.into(),
            operation: operation.to_string(),
        }
    }

    /// The code as a known [`ErrorCode`], if it is one.
    pub fn error_code(&self) -> Option<ErrorCode> {
        ErrorCode::from_i32(self.code)
    }
}

/// Channel types (api.md §10.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ChannelType {
    /// Pub/sub message channel.
    #[default]
    Message,
    /// Stream channel.
    Stream,
    /// A user's own channel (peer to peer).
    User,
}

impl ChannelType {
    /// The spec's literal.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelType::Message => "MESSAGE",
            ChannelType::Stream => "STREAM",
            ChannelType::User => "USER",
        }
    }
}

/// A message payload: text is delivered as `STRING`, bytes as `BINARY` (R65).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// UTF-8 text.
    Text(String),
    /// Raw bytes.
    Binary(Bytes),
}

impl From<&str> for Payload {
    fn from(s: &str) -> Self {
        Payload::Text(s.to_string())
    }
}

impl From<String> for Payload {
    fn from(s: String) -> Self {
        Payload::Text(s)
    }
}

impl From<Vec<u8>> for Payload {
    fn from(b: Vec<u8>) -> Self {
        Payload::Binary(b.into())
    }
}

impl From<Bytes> for Payload {
    fn from(b: Bytes) -> Self {
        Payload::Binary(b)
    }
}

/// A position in a channel's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamPosition {
    /// Stream epoch.
    pub epoch: u64,
    /// Offset under the epoch.
    pub offset: u64,
}

/// Options of [`crate::Client::publish`] (api.md §3.3).
#[derive(Debug, Clone, Default)]
pub struct PublishOptions {
    /// `Message` (default) or `User`.
    pub channel_type: ChannelType,
    /// Application label, 1–32 bytes.
    pub custom_type: Option<String>,
    /// Also store for history.
    pub store_in_history: bool,
    /// Retries with the same key are delivered once.
    pub idempotency_key: Option<String>,
}

/// Reply of a publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishResponse {
    /// Server time, ms.
    pub timestamp: u64,
    /// Channel or target user.
    pub channel_name: String,
    /// Where the message landed.
    pub position: StreamPosition,
}

/// Options of [`crate::Client::subscribe`] (api.md §3.4, defaults R78).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// Receive messages (default true).
    pub with_message: bool,
    /// Receive presence events (default true).
    pub with_presence: bool,
    /// Quiet mode (default false).
    pub be_quiet: bool,
    /// Receive storage events (default false).
    pub with_metadata: bool,
    /// Receive lock events (default false).
    pub with_lock: bool,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        SubscribeOptions {
            with_message: true,
            with_presence: true,
            be_quiet: false,
            with_metadata: false,
            with_lock: false,
        }
    }
}

/// Reply of a logout (`LogoutResponse`, api.md §3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutResponse {
    /// Server time, ms (local time when there was no session to end).
    pub timestamp: u64,
}

/// Reply of a subscribe (`SubscribeResponse`, api.md §3.4), kept by the
/// [`crate::Subscription`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeResponse {
    /// Server time, ms.
    pub timestamp: u64,
    /// The channel.
    pub channel_name: String,
}

/// Reply of an unsubscribe (`UnsubscribeResponse`, api.md §3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubscribeResponse {
    /// Server time, ms.
    pub timestamp: u64,
    /// The channel.
    pub channel_name: String,
}

/// Reply of a token renewal (`RenewTokenResponse`, api.md §3.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewTokenResponse {
    /// Server time, ms (local time when the token was only kept for the next
    /// reconnect).
    pub timestamp: u64,
}

/// Reply of a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginResponse {
    /// Server time, ms.
    pub timestamp: u64,
    /// Session id (for resume).
    pub session_id: String,
    /// Effective heartbeat interval, seconds.
    pub heartbeat_interval: u32,
    /// Effective presence timeout, seconds.
    pub presence_timeout: u32,
}

/// The error for a reply of the wrong kind to request `op` (a server bug).
pub(crate) fn unexpected(op: &str) -> RtmError {
    RtmError::new(ErrorCode::Internal, op, "unexpected reply")
}

/// The wire form of a publish's `customType` (R66): absent is none (the wire's empty
/// string); given, it must not be empty (−11030; the length is the server's check).
pub(crate) fn wire_custom_type(given: Option<String>, op: &str) -> Result<String, RtmError> {
    match given {
        Some(t) if t.is_empty() => Err(RtmError::new(
            ErrorCode::ChannelInvalidCustomType,
            op,
            "customType, when given, must not be empty (R66)",
        )),
        Some(t) => Ok(t),
        None => Ok(String::new()),
    }
}
