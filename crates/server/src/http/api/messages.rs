//! `POST /v1/apps/{app_id}/publish` and `/publish/batch`: publish to a message channel
//! or to a user, through `features::messaging::publish_as` (the WebSocket rules).

use super::SERVER_USER;
use crate::features::messaging;
use crate::http::auth::authorize;
use crate::http::error::{ApiError, ErrorBody, parse_json};
use crate::node::{Actor, Node};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use switchboard_protocol::pb;
use utoipa::ToSchema;

const OP: &str = "publish";

/// Most messages in one batch publish.
pub(crate) const MAX_BATCH: usize = 100;

/// Where a message goes.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ChannelType {
    /// A message channel.
    #[default]
    Message,
    /// A user (the channel is the receiving user id).
    User,
}

/// One message to publish.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PublishBody {
    /// `message` (default) or `user`.
    #[serde(default)]
    pub channel_type: ChannelType,
    /// The channel name, or the receiving user id for `user`.
    pub channel: String,
    /// A text payload (STRING); give this or `message_base64`.
    #[serde(default)]
    pub message: Option<String>,
    /// A binary payload (BINARY), base64.
    #[serde(default)]
    pub message_base64: Option<String>,
    /// The publisher user id the receivers see (default `server`).
    #[serde(default)]
    pub publisher: Option<String>,
    /// Also store the message in history (R72).
    #[serde(default)]
    pub store_in_history: bool,
    /// The custom type (R65).
    #[serde(default)]
    pub custom_type: String,
    /// A key that makes a retried publish count once (per publisher).
    #[serde(default)]
    pub idempotency_key: String,
}

/// A stream position.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct Position {
    /// The stream's epoch.
    pub epoch: String,
    /// The offset of the message.
    pub offset: u64,
}

/// A publish done.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct Published {
    /// The channel (or user id).
    pub channel: String,
    /// Server time of the publish, ms.
    pub timestamp: u64,
    /// The message's position in the channel's stream.
    pub position: Option<Position>,
}

/// Several messages, published in order, each on its own.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchBody {
    /// The messages (at most 100).
    pub messages: Vec<PublishBody>,
}

/// One message's outcome in a batch: `ok` or `error`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct BatchItem {
    /// The publish, when it was accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok: Option<Published>,
    /// Why it was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

/// A batch's outcomes, in the order of the request.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct BatchResult {
    /// One per message.
    pub results: Vec<BatchItem>,
}

/// `POST /v1/apps/{app_id}/publish`.
#[utoipa::path(post, path = "/v1/apps/{app_id}/publish", tag = "messages",
    params(("app_id" = String, Path, description = "the app id")),
    request_body = PublishBody,
    responses((status = 200, body = Published),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, description = "user receiver offline", body = ErrorBody),
              (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("basic" = [])))]
pub(crate) async fn publish(
    State(node): State<Arc<Node>>,
    Path(app_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Published>, ApiError> {
    let app = authorize(&node, &app_id, &headers, OP)?;
    let body: PublishBody = parse_json(&body, OP)?;
    Ok(Json(publish_one(&node, &app, body).await?))
}

/// `POST /v1/apps/{app_id}/publish/batch`: 200 with each message's outcome.
#[utoipa::path(post, path = "/v1/apps/{app_id}/publish/batch", tag = "messages",
    params(("app_id" = String, Path, description = "the app id")),
    request_body = BatchBody,
    responses((status = 200, body = BatchResult),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("basic" = [])))]
pub(crate) async fn publish_batch(
    State(node): State<Arc<Node>>,
    Path(app_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<BatchResult>, ApiError> {
    let app = authorize(&node, &app_id, &headers, OP)?;
    let body: BatchBody = parse_json(&body, OP)?;
    if body.messages.len() > MAX_BATCH {
        return Err(ApiError::bad_request(
            format!(
                "{} messages in one batch, over the limit of {MAX_BATCH}",
                body.messages.len()
            ),
            OP,
        ));
    }
    let mut results = Vec::with_capacity(body.messages.len());
    for m in body.messages {
        results.push(match publish_one(&node, &app, m).await {
            Ok(p) => BatchItem {
                ok: Some(p),
                error: None,
            },
            Err(e) => BatchItem {
                ok: None,
                error: Some(e.into_body()),
            },
        });
    }
    Ok(Json(BatchResult { results }))
}

async fn publish_one(
    node: &Arc<Node>,
    app: &Arc<crate::node::config::AppConfig>,
    body: PublishBody,
) -> Result<Published, ApiError> {
    let (message_type, payload) = match (body.message, body.message_base64) {
        (Some(text), None) => (pb::MessageType::String, text.into_bytes()),
        (None, Some(b64)) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map_err(|e| ApiError::bad_request(format!("message_base64: {e}"), OP))?;
            (pb::MessageType::Binary, bytes)
        }
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of message (text) and message_base64 (binary)",
                OP,
            ));
        }
    };
    let publisher = body.publisher.unwrap_or_else(|| SERVER_USER.into());
    switchboard_protocol::names::validate_user_id(&publisher, app.limits.name_rules())
        .map_err(|i| ApiError::new(i.code, format!("publisher: {}", i.reason), OP))?;
    let actor = Actor::new(app, &Arc::from(app.id.as_str()), &Arc::from(publisher));
    let req = pb::PublishRequest {
        channel_type: match body.channel_type {
            ChannelType::Message => pb::ChannelType::Message,
            ChannelType::User => pb::ChannelType::User,
        } as i32,
        channel_name: body.channel,
        message_type: message_type as i32,
        payload: payload.into(),
        custom_type: body.custom_type,
        store_in_history: body.store_in_history,
        idempotency_key: body.idempotency_key,
    };
    let reply = messaging::publish_as(node, &actor, req)
        .await
        .map_err(|f| ApiError::failure(f, OP))?;
    Ok(Published {
        channel: reply.channel_name,
        timestamp: reply.timestamp,
        position: reply.position.map(|p| Position {
            epoch: p.epoch.to_string(),
            offset: p.offset,
        }),
    })
}
