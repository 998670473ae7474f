//! Wire numbers the tests share: the channel types and the error codes every feature
//! answers with (api.md §12.2).

use switchboard_protocol::pb;

/// A MESSAGE channel on the wire.
pub const MESSAGE: i32 = pb::ChannelType::Message as i32;
/// A STREAM channel on the wire.
pub const STREAM: i32 = pb::ChannelType::Stream as i32;
/// A USER channel on the wire.
pub const USER: i32 = pb::ChannelType::User as i32;

/// −10006: the user id is invalid.
pub const INVALID_USER_ID: i32 = -10006;
/// −10008: the channel name is invalid.
pub const INVALID_CHANNEL_NAME: i32 = -10008;
/// −10019: the channel type is invalid (or not allowed for the call).
pub const INVALID_CHANNEL_TYPE: i32 = -10019;
