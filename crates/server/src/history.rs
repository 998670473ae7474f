//! Message history: storing publishes made with `storeInHistory` and `getMessages`
//! (api.md §8, R74, R160–R164). USER conversations are stored once under the pair key
//! of the two users, so both peers page through the same history.

use crate::client::{Client, Failure};
use std::sync::Arc;
use switchboard_engine::{ChannelKey, ChannelKind, HistoryStore, MessageKind, Publication};
use switchboard_protocol::pb::{self, server_message::Body};
use switchboard_protocol::{ErrorCode, names, now_ms};

/// Default and largest page (R162).
const MAX_PAGE: u32 = 100;
/// Largest span between `start` and `end`, ms (R163).
const MAX_SPAN_MS: u64 = 86_400_000;

/// The history key of a publish: the channel, or the pair of users for USER.
pub(crate) fn history_key(
    app: &Arc<str>,
    kind: ChannelKind,
    channel: &str,
    publisher: &str,
) -> ChannelKey {
    match kind {
        ChannelKind::User => ChannelKey::user_pair(app.clone(), publisher, channel),
        _ => ChannelKey::new(app.clone(), kind, channel),
    }
}

/// The configured store, or the "history not available" failure (R74).
pub(crate) fn store(client: &Client) -> Result<Arc<dyn HistoryStore>, Failure> {
    client.node.history.clone().ok_or_else(|| {
        Failure::new(
            ErrorCode::HistoryNotAvailable,
            "history is not enabled on this server (R74)",
        )
    })
}

/// Stores one publication; the error names what failed.
pub(crate) async fn append(
    store: &dyn HistoryStore,
    key: &ChannelKey,
    publication: &Publication,
) -> Result<u64, String> {
    store
        .append(key, publication)
        .await
        .map_err(|e| e.to_string())
}

impl Client {
    /// `getMessages` (R161–R164).
    pub(crate) async fn get_messages(
        &mut self,
        id: u32,
        req: pb::GetMessagesRequest,
    ) -> Result<(), Failure> {
        let session = self.session()?;
        let store = store(self)?;
        let kind = match pb::ChannelType::try_from(req.channel_type) {
            Ok(pb::ChannelType::Message | pb::ChannelType::Unspecified) => ChannelKind::Message,
            Ok(pb::ChannelType::User) => ChannelKind::User,
            _ => {
                return Err(Failure::new(
                    ErrorCode::InvalidChannelType,
                    "history is kept for MESSAGE and USER channels only (R161)",
                ));
            }
        };
        names::validate_channel_name(&req.channel_name, session.app.limits.name_rules())?;
        if req.start != 0
            && req.end != 0
            && (req.start <= req.end || req.start - req.end > MAX_SPAN_MS)
        {
            return Err(Failure::new(
                ErrorCode::HistoryInvalidTimestamp,
                "start must be later than end and at most 24 h after it (R163)",
            ));
        }
        let count = if req.message_count == 0 || req.message_count > MAX_PAGE {
            MAX_PAGE
        } else {
            req.message_count
        };
        let key = history_key(&session.app_id, kind, &req.channel_name, &session.user);
        let page = store
            .query(&key, req.start, req.end, count as usize)
            .await
            .map_err(|e| Failure::new(ErrorCode::HistoryOperationFailed, e.to_string()))?;
        let messages = page
            .messages
            .into_iter()
            .map(|m| pb::HistoryMessage {
                message_type: match m.kind {
                    MessageKind::Text => pb::MessageType::String as i32,
                    MessageKind::Binary | MessageKind::Event(_) => pb::MessageType::Binary as i32,
                },
                payload: m.payload,
                custom_type: m.custom_type.to_string(),
                publisher: m.publisher.to_string(),
                timestamp: m.timestamp_ms,
            })
            .collect();
        self.send(
            id,
            Body::GetMessages(pb::GetMessagesReply {
                timestamp: now_ms(),
                messages,
                new_start: page.new_start,
            }),
        );
        Ok(())
    }
}
