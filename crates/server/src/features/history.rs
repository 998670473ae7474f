//! Message history's `getMessages` (api.md §8, R160–R164). A publish with
//! `storeInHistory` is stored by the messaging feature through the node's history
//! store; USER conversations live under the pair key of the two users
//! (`node::history_key`), so both peers page through the same history.

use crate::node::{Actor, Node, history_key};
use crate::session::client::Client;
use crate::wire::Failure;
use switchboard_engine::{ChannelKind, MessageKind};
use switchboard_protocol::pb::{self, server_message::Body};
use switchboard_protocol::{ErrorCode, names, now_ms};

/// Default and largest page (R162).
const MAX_PAGE: u32 = 100;
/// Largest span between `start` and `end`, ms (R163).
const MAX_SPAN_MS: u64 = 86_400_000;

/// `getMessages` (R161–R164).
pub(crate) async fn get_messages(
    client: &mut Client,
    id: u32,
    req: pb::GetMessagesRequest,
) -> Result<(), Failure> {
    let session = client.session()?;
    let reply = get_messages_as(&client.node, &session.actor(), req).await?;
    client.send(id, Body::GetMessages(reply));
    Ok(())
}

/// The rules of `getMessages` (R161–R164) for `actor` (a USER history is the pair of
/// the actor and the named user).
pub(crate) async fn get_messages_as(
    node: &Node,
    actor: &Actor,
    req: pb::GetMessagesRequest,
) -> Result<pb::GetMessagesReply, Failure> {
    let store = node.history_store()?;
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
    names::validate_channel_name(&req.channel_name, actor.app.limits.name_rules())?;
    if req.start != 0 && req.end != 0 && (req.start <= req.end || req.start - req.end > MAX_SPAN_MS)
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
    let key = history_key(&actor.app_id, kind, &req.channel_name, &actor.user);
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
    Ok(pb::GetMessagesReply {
        timestamp: now_ms(),
        messages,
        new_start: page.new_start,
    })
}
