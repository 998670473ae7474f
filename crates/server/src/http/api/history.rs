//! Message history over HTTP: getMessages with paging, through
//! `features::history::get_messages_as` (R161–R164).

use super::{actor_as, channel_type, query};
use crate::features::history;
use crate::http::auth::authorize;
use crate::http::error::{ApiError, ErrorBody};
use crate::node::Node;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use switchboard_protocol::pb;
use utoipa::ToSchema;

const OP: &str = "getMessages";

/// One stored message.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct HistoryMessage {
    /// The text of a STRING message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The payload of a BINARY message, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_base64: Option<String>,
    /// The custom type.
    pub custom_type: String,
    /// The publisher.
    pub publisher: String,
    /// When it was published, ms.
    pub timestamp: u64,
}

/// A page of history, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct HistoryPage {
    /// The messages.
    pub messages: Vec<HistoryMessage>,
    /// Pass as `start` for the next (older) page; 0 when there is none.
    pub new_start: u64,
}

/// `GET /v1/apps/{app_id}/history/{channel_type}/{channel}`.
#[utoipa::path(get, path = "/v1/apps/{app_id}/history/{channel_type}/{channel}", tag = "history",
    params(("app_id" = String, Path, description = "the app id"),
           ("channel_type" = super::PathChannelType, Path, description = "message or user"),
           ("channel" = String, Path, description = "the channel, or the peer user id for user"),
           ("user" = Option<String>, Query, description = "for user: the other user of the conversation"),
           ("count" = Option<u32>, Query, description = "messages per page (1–100, default 100)"),
           ("start" = Option<u64>, Query, description = "newest timestamp, ms (0: now)"),
           ("end" = Option<u64>, Query, description = "oldest timestamp, ms (0: no bound)")),
    responses((status = 200, body = HistoryPage),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 503, body = ErrorBody)),
    security(("basic" = [])))]
pub(crate) async fn get_messages(
    State(node): State<Arc<Node>>,
    Path((app_id, kind, channel)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Json<HistoryPage>, ApiError> {
    let app = authorize(&node, &app_id, &headers, OP)?;
    let req = pb::GetMessagesRequest {
        channel_type: channel_type(&kind, OP)?,
        channel_name: channel,
        message_count: query(&q, "count", OP)?.unwrap_or(0),
        start: query(&q, "start", OP)?.unwrap_or(0),
        end: query(&q, "end", OP)?.unwrap_or(0),
    };
    let actor = actor_as(&app, q.get("user").map(String::as_str), OP)?;
    let reply = history::get_messages_as(&node, &actor, req)
        .await
        .map_err(|f| ApiError::failure(f, OP))?;
    Ok(Json(HistoryPage {
        messages: reply
            .messages
            .into_iter()
            .map(|m| {
                let text = m.message_type == pb::MessageType::String as i32;
                HistoryMessage {
                    message: text.then(|| String::from_utf8_lossy(&m.payload).into_owned()),
                    message_base64: (!text)
                        .then(|| base64::engine::general_purpose::STANDARD.encode(&m.payload)),
                    custom_type: m.custom_type,
                    publisher: m.publisher,
                    timestamp: m.timestamp,
                }
            })
            .collect(),
        new_start: reply.new_start,
    }))
}
