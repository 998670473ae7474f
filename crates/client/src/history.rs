//! `client.history()`: stored messages of a MESSAGE channel or of a conversation with a
//! user, newest first, paged by `new_start` (api.md §8, R160–R164).

use crate::Client;
use crate::types::{ChannelType, Payload, RtmError};
use switchboard_protocol::pb::{self, client_message, server_message};

/// Options of `get_messages` (`GetHistoryMessageOptions`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GetHistoryMessageOptions {
    /// Most messages to return; 0 or over 100 means 100 (R162).
    pub message_count: u32,
    /// Newest end of the range, ms (0 = now).
    pub start: u64,
    /// Oldest end of the range, ms (0 = no bound).
    pub end: u64,
}

/// One stored message (`HistoryMessage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryMessage {
    /// The payload (its variant gives `messageType`).
    pub message: Payload,
    /// customType, empty if none.
    pub custom_type: String,
    /// Sender's user id.
    pub publisher: String,
    /// Stored timestamp, ms (unique within the channel).
    pub timestamp: u64,
}

/// Reply of `get_messages` (`GetMessagesResponse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetMessagesResponse {
    /// Server time, ms.
    pub timestamp: u64,
    /// Messages, newest first.
    pub message_list: Vec<HistoryMessage>,
    /// `message_list.len()`.
    pub count: u32,
    /// Pass as `start` for the next older page; 0 = no more.
    pub new_start: u64,
}

/// The history handle (`RTMHistory`).
#[derive(Clone)]
pub struct History {
    pub(crate) client: Client,
}

impl History {
    /// Stored messages of `channel` (a MESSAGE channel, or the peer's user id for USER).
    pub async fn get_messages(
        &self,
        channel: &str,
        channel_type: ChannelType,
        options: GetHistoryMessageOptions,
    ) -> Result<GetMessagesResponse, RtmError> {
        let channel_type = match channel_type {
            ChannelType::Message => pb::ChannelType::Message,
            ChannelType::User => pb::ChannelType::User,
            ChannelType::Stream => pb::ChannelType::Stream,
        };
        let req = pb::GetMessagesRequest {
            channel_type: channel_type as i32,
            channel_name: channel.to_string(),
            message_count: options.message_count,
            start: options.start,
            end: options.end,
        };
        match self
            .client
            .request("getMessages", client_message::Body::GetMessages(req))
            .await?
        {
            server_message::Body::GetMessages(r) => {
                let message_list: Vec<HistoryMessage> = r
                    .messages
                    .into_iter()
                    .map(|m| HistoryMessage {
                        message: if m.message_type == pb::MessageType::String as i32 {
                            match String::from_utf8(m.payload.to_vec()) {
                                Ok(s) => Payload::Text(s),
                                Err(e) => Payload::Binary(e.into_bytes().into()),
                            }
                        } else {
                            Payload::Binary(m.payload)
                        },
                        custom_type: m.custom_type,
                        publisher: m.publisher,
                        timestamp: m.timestamp,
                    })
                    .collect();
                Ok(GetMessagesResponse {
                    timestamp: r.timestamp,
                    count: u32::try_from(message_list.len()).unwrap_or(u32::MAX),
                    message_list,
                    new_start: r.new_start,
                })
            }
            _ => Err(crate::unexpected("getMessages")),
        }
    }
}
