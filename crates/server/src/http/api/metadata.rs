//! Channel and user metadata over HTTP: get, set, update, remove, through
//! `features::storage::{get_metadata_as, write_metadata_as}` (the same revision,
//! lock-gate and size rules as the WebSocket API, R134–R146).

use super::{actor_as, channel_type, type_name};
use crate::features::storage;
use crate::http::auth::authorize;
use crate::http::error::{ApiError, ErrorBody, parse_json};
use crate::node::Node;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use switchboard_engine::WriteOp;
use switchboard_protocol::pb;
use utoipa::ToSchema;

/// One stored item.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct Item {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
    /// The item's revision.
    pub revision: i64,
    /// When it was last written, ms (with `add_timestamp`; else 0).
    pub updated: u64,
    /// Who last wrote it (with `add_user_id`; else empty).
    pub author: String,
}

/// A metadata object.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct MetadataDoc {
    /// `message`, `stream` or `user`.
    pub channel_type: String,
    /// The channel name or user id.
    pub channel: String,
    /// The object's revision (−1: never written).
    pub major_revision: i64,
    /// The items.
    pub items: Vec<Item>,
}

/// One item to write.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WriteItem {
    /// The key.
    pub key: String,
    /// The value (ignored by remove).
    #[serde(default)]
    pub value: String,
    /// Write only if the item is at this revision (−1 or absent: no check, R140).
    #[serde(default)]
    pub revision: Option<i64>,
}

/// A metadata write.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WriteBody {
    /// The items (remove with none: every item).
    #[serde(default)]
    pub items: Vec<WriteItem>,
    /// Write only if the object is at this revision (R140).
    #[serde(default)]
    pub major_revision: Option<i64>,
    /// Write only if `user` holds this lock (R143).
    #[serde(default)]
    pub lock_name: String,
    /// Record the write time on each item.
    #[serde(default)]
    pub add_timestamp: bool,
    /// Record the writer on each item.
    #[serde(default)]
    pub add_user_id: bool,
    /// The user id the write acts as (default `server`).
    #[serde(default)]
    pub user: Option<String>,
}

/// A write done.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct Written {
    /// `message`, `stream` or `user`.
    pub channel_type: String,
    /// The channel name or user id.
    pub channel: String,
    /// Items in the object now.
    pub total_count: u32,
    /// The object's new revision.
    pub major_revision: i64,
}

/// `GET /v1/apps/{app_id}/metadata/{channel_type}/{name}`.
#[utoipa::path(get, path = "/v1/apps/{app_id}/metadata/{channel_type}/{name}", tag = "metadata",
    params(("app_id" = String, Path, description = "the app id"),
           ("channel_type" = super::PathChannelType, Path, description = "message, stream or user"),
           ("name" = String, Path, description = "the channel name or user id")),
    responses((status = 200, body = MetadataDoc),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 503, body = ErrorBody)),
    security(("basic" = [])))]
pub(crate) async fn get(
    State(node): State<Arc<Node>>,
    Path((app_id, kind, name)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Json<MetadataDoc>, ApiError> {
    let op = if kind == "user" {
        "getUserMetadata"
    } else {
        "getChannelMetadata"
    };
    let app = authorize(&node, &app_id, &headers, op)?;
    let req = pb::GetMetadataRequest {
        channel_type: channel_type(&kind, op)?,
        channel_name: name,
    };
    let reply = storage::get_metadata_as(&node, &actor_as(&app, None, op)?, req)
        .await
        .map_err(|f| ApiError::failure(f, op))?;
    let data = reply.data.unwrap_or_default();
    Ok(Json(MetadataDoc {
        channel_type: type_name(reply.channel_type).into(),
        channel: reply.channel_name,
        major_revision: data.major_revision,
        items: data
            .items
            .into_iter()
            .map(|d| Item {
                key: d.key,
                value: d.value,
                revision: d.revision,
                updated: d.updated,
                author: d.author_uid,
            })
            .collect(),
    }))
}

/// `POST /v1/apps/{app_id}/metadata/{channel_type}/{name}/{op}` (`set`, `update`,
/// `remove`).
#[utoipa::path(post, path = "/v1/apps/{app_id}/metadata/{channel_type}/{name}/{op}", tag = "metadata",
    params(("app_id" = String, Path, description = "the app id"),
           ("channel_type" = super::PathChannelType, Path, description = "message, stream or user"),
           ("name" = String, Path, description = "the channel name or user id"),
           ("op" = super::MetadataOp, Path, description = "set, update or remove")),
    request_body = WriteBody,
    responses((status = 200, body = Written),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 409, description = "outdated revision or lock not held", body = ErrorBody),
              (status = 503, body = ErrorBody)),
    security(("basic" = [])))]
pub(crate) async fn write(
    State(node): State<Arc<Node>>,
    Path((app_id, kind, name, op)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Written>, ApiError> {
    let user = kind == "user";
    let (write_op, operation) = match (op.as_str(), user) {
        ("set", false) => (WriteOp::Set, "setChannelMetadata"),
        ("set", true) => (WriteOp::Set, "setUserMetadata"),
        ("update", false) => (WriteOp::Update, "updateChannelMetadata"),
        ("update", true) => (WriteOp::Update, "updateUserMetadata"),
        ("remove", false) => (WriteOp::Remove, "removeChannelMetadata"),
        ("remove", true) => (WriteOp::Remove, "removeUserMetadata"),
        _ => {
            let mut e = ApiError::bad_request(
                format!("metadata operation {op:?}: use set, update or remove"),
                "metadata",
            );
            e.set_status(axum::http::StatusCode::NOT_FOUND);
            return Err(e);
        }
    };
    let app = authorize(&node, &app_id, &headers, operation)?;
    let body: WriteBody = parse_json(&body, operation)?;
    let actor = actor_as(&app, body.user.as_deref(), operation)?;
    let req = pb::MetadataWriteRequest {
        channel_type: channel_type(&kind, operation)?,
        channel_name: name,
        items: body
            .items
            .into_iter()
            .map(|i| pb::MetadataItem {
                key: i.key,
                value: i.value,
                revision: i.revision,
            })
            .collect(),
        major_revision: body.major_revision,
        lock_name: body.lock_name,
        add_timestamp: body.add_timestamp,
        add_user_id: body.add_user_id,
    };
    let reply = storage::write_metadata_as(&node, &actor, write_op, req)
        .await
        .map_err(|f| ApiError::failure(f, operation))?;
    Ok(Json(Written {
        channel_type: type_name(reply.channel_type).into(),
        channel: reply.channel_name,
        total_count: reply.total_count,
        major_revision: reply.major_revision,
    }))
}
