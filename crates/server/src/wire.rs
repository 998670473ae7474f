//! The leaf of the server: conversions between the wire protocol and the engine's
//! types that several features share (stream positions, channel types, message kinds,
//! state maps), the payload checks every publish path applies, and [`Failure`], the
//! code-and-reason answer of a refused request. Imports nothing else of the crate.

use std::collections::HashMap;
use switchboard_engine::{ChannelKind, MessageKind, State, StreamPosition};
use switchboard_protocol::pb;
use switchboard_protocol::{ErrorCode, names};

/// A request failure: code, reason; the operation is added by the dispatcher.
pub(crate) struct Failure {
    /// The error code the client sees.
    pub code: ErrorCode,
    /// Why, in words (cites the rule where there is one).
    pub reason: String,
}

impl Failure {
    /// A failure with `code` and `reason`.
    pub fn new(code: ErrorCode, reason: impl Into<String>) -> Self {
        Failure {
            code,
            reason: reason.into(),
        }
    }

    /// The failure for requests before login (R24).
    pub fn not_logged_in() -> Self {
        Failure::new(ErrorCode::NotLogin, "log in first (R24)")
    }
}

impl From<names::Invalid> for Failure {
    fn from(i: names::Invalid) -> Self {
        Failure::new(i.code, i.reason)
    }
}

/// An engine position as the wire's optional field.
pub(crate) fn wire_position(p: StreamPosition) -> Option<pb::StreamPosition> {
    Some(pb::StreamPosition {
        epoch: p.epoch,
        offset: p.offset,
    })
}

/// A wire position as the engine's.
pub(crate) fn engine_position(p: &pb::StreamPosition) -> StreamPosition {
    StreamPosition {
        epoch: p.epoch,
        offset: p.offset,
    }
}

/// The wire channel type of a channel kind.
pub(crate) fn wire_type(kind: ChannelKind) -> i32 {
    match kind {
        ChannelKind::Stream => pb::ChannelType::Stream as i32,
        ChannelKind::User | ChannelKind::UserMetadata => pb::ChannelType::User as i32,
        ChannelKind::Message => pb::ChannelType::Message as i32,
    }
}

/// A presence state as the wire's map.
pub(crate) fn state_map(state: &State) -> HashMap<String, String> {
    state.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The kind of a published payload: STRING must be UTF-8 (R64, −11009).
pub(crate) fn message_kind(message_type: i32, payload: &[u8]) -> Result<MessageKind, Failure> {
    match pb::MessageType::try_from(message_type) {
        Ok(pb::MessageType::String) => {
            if std::str::from_utf8(payload).is_err() {
                return Err(Failure::new(
                    ErrorCode::ChannelInvalidMessage,
                    "a STRING payload must be valid UTF-8 (R64)",
                ));
            }
            Ok(MessageKind::Text)
        }
        Ok(pb::MessageType::Binary) => Ok(MessageKind::Binary),
        _ => Err(Failure::new(
            ErrorCode::ChannelInvalidMessage,
            "message type must be STRING or BINARY (R64)",
        )),
    }
}

/// The payload size limit of `max` bytes (R63, −11010).
pub(crate) fn check_payload(max: usize, payload: &[u8]) -> Result<(), Failure> {
    if payload.len() > max {
        return Err(Failure::new(
            ErrorCode::ChannelMessageLengthExceedLimitation,
            format!(
                "payload is {} bytes, over the limit of {max} (R63)",
                payload.len(),
            ),
        ));
    }
    Ok(())
}
