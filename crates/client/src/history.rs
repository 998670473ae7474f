//! `client.history()`: stored messages of a MESSAGE channel or of a conversation with a
//! user, newest first, paged by `new_start` (api.md §8, R160–R164).

use crate::client::Client;
use crate::decode::wire_type;
use crate::types::{ChannelType, Payload, RtmError, unexpected};
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

/// The history handle (`RTMHistory`), from [`Client::history`].
///
/// ```no_run
/// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::RtmError> {
/// use switchboard_client::{ChannelType, GetHistoryMessageOptions};
/// let options = GetHistoryMessageOptions { message_count: 50, ..Default::default() };
/// let page = client.history().get_messages("room", ChannelType::Message, options).await?;
/// for m in &page.message_list {
///     println!("{} {}: {:?}", m.timestamp, m.publisher, m.message);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct History {
    pub(crate) client: Client,
}

impl History {
    /// Stored messages of `channel` (a MESSAGE channel, or the peer's user id for USER).
    /// With end-to-end encryption on, stored payloads are opened with this client's key;
    /// one that does not open is left out (with a warning in the log).
    pub async fn get_messages(
        &self,
        channel: &str,
        channel_type: ChannelType,
        options: GetHistoryMessageOptions,
    ) -> Result<GetMessagesResponse, RtmError> {
        let req = pb::GetMessagesRequest {
            channel_type: wire_type(channel_type),
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
                let inner = &self.client.inner;
                let message_list: Vec<HistoryMessage> = r
                    .messages
                    .into_iter()
                    .filter_map(|m| {
                        let Some(message) = inner.open_stored(m.message_type, m.payload) else {
                            // Encrypted under another key (or not at all): left out,
                            // never returned as garbage.
                            tracing::warn!(publisher = %m.publisher, timestamp = m.timestamp, "a stored message did not decrypt; left out of getMessages");
                            return None;
                        };
                        Some(HistoryMessage {
                            message,
                            custom_type: m.custom_type,
                            publisher: m.publisher,
                            timestamp: m.timestamp,
                        })
                    })
                    .collect();
                Ok(GetMessagesResponse {
                    timestamp: r.timestamp,
                    count: u32::try_from(message_list.len()).unwrap_or(u32::MAX),
                    message_list,
                    new_start: r.new_start,
                })
            }
            _ => Err(unexpected("getMessages")),
        }
    }
}

impl Client {
    /// The history handle (api.md §8).
    pub fn history(&self) -> History {
        History {
            client: self.clone(),
        }
    }
}
