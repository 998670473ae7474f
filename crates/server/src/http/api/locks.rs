//! Locks over HTTP: list a channel's locks and revoke one, through
//! `features::lock::{get_lock_as, revoke_lock_as}`.

use super::{actor_as, channel_type, type_name};
use crate::features::lock;
use crate::http::auth::authorize;
use crate::http::error::{ApiError, ErrorBody, parse_json};
use crate::node::Node;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use switchboard_protocol::pb;
use utoipa::ToSchema;

/// One lock.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct LockInfo {
    /// The lock name.
    pub lock_name: String,
    /// Who holds it (empty: free).
    pub owner: String,
    /// Its ttl, seconds.
    pub ttl: u32,
}

/// A channel's locks.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct LockList {
    /// `message` or `stream`.
    pub channel_type: String,
    /// The channel.
    pub channel: String,
    /// Its locks.
    pub locks: Vec<LockInfo>,
}

/// A revoke.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevokeBody {
    /// Revoke only if this user holds the lock.
    pub owner: String,
}

/// A revoke done.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct Revoked {
    /// `message` or `stream`.
    pub channel_type: String,
    /// The channel.
    pub channel: String,
    /// The lock.
    pub lock_name: String,
}

/// `GET /v1/apps/{app_id}/locks/{channel_type}/{channel}` (getLock).
#[utoipa::path(get, path = "/v1/apps/{app_id}/locks/{channel_type}/{channel}", tag = "locks",
    params(("app_id" = String, Path, description = "the app id"),
           ("channel_type" = super::PathChannelType, Path, description = "message or stream"),
           ("channel" = String, Path, description = "the channel name")),
    responses((status = 200, body = LockList),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 503, body = ErrorBody)),
    security(("basic" = [])))]
pub(crate) async fn list(
    State(node): State<Arc<Node>>,
    Path((app_id, kind, channel)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Json<LockList>, ApiError> {
    const OP: &str = "getLock";
    let app = authorize(&node, &app_id, &headers, OP)?;
    let req = pb::GetLockRequest {
        channel_type: channel_type(&kind, OP)?,
        channel_name: channel,
    };
    let reply = lock::get_lock_as(&node, &actor_as(&app, None, OP)?, req)
        .await
        .map_err(|f| ApiError::failure(f, OP))?;
    Ok(Json(LockList {
        channel_type: type_name(reply.channel_type).into(),
        channel: reply.channel_name,
        locks: reply
            .locks
            .into_iter()
            .map(|l| LockInfo {
                lock_name: l.lock_name,
                owner: l.owner,
                ttl: l.ttl,
            })
            .collect(),
    }))
}

/// `POST /v1/apps/{app_id}/locks/{channel_type}/{channel}/{lock_name}/revoke`.
#[utoipa::path(post, path = "/v1/apps/{app_id}/locks/{channel_type}/{channel}/{lock_name}/revoke", tag = "locks",
    params(("app_id" = String, Path, description = "the app id"),
           ("channel_type" = super::PathChannelType, Path, description = "message or stream"),
           ("channel" = String, Path, description = "the channel name"),
           ("lock_name" = String, Path, description = "the lock")),
    request_body = RevokeBody,
    responses((status = 200, body = Revoked),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 503, body = ErrorBody)),
    security(("basic" = [])))]
pub(crate) async fn revoke(
    State(node): State<Arc<Node>>,
    Path((app_id, kind, channel, lock_name)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Revoked>, ApiError> {
    const OP: &str = "revokeLock";
    let app = authorize(&node, &app_id, &headers, OP)?;
    let body: RevokeBody = parse_json(&body, OP)?;
    let req = pb::RevokeLockRequest {
        channel_type: channel_type(&kind, OP)?,
        channel_name: channel,
        lock_name,
        owner: body.owner,
    };
    let reply = lock::revoke_lock_as(&node, &actor_as(&app, None, OP)?, req)
        .await
        .map_err(|f| ApiError::failure(f, OP))?;
    Ok(Json(Revoked {
        channel_type: type_name(reply.channel_type).into(),
        channel: reply.channel_name,
        lock_name: reply.lock_name,
    }))
}
