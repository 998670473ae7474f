//! Presence over HTTP: whoNow (paged, with states) and whereNow, through
//! `features::presence::{who_now_as, where_now_as}`.

use super::{actor_as, channel_type, query, type_name};
use crate::features::presence;
use crate::http::auth::authorize;
use crate::http::error::{ApiError, ErrorBody};
use crate::node::Node;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use switchboard_protocol::pb;
use utoipa::ToSchema;

/// One member.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct Member {
    /// The user id.
    pub user_id: String,
    /// Its temporary state in the channel (with `include_state`).
    pub states: HashMap<String, String>,
}

/// A whoNow page.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct Members {
    /// Members on this page, or the channel's count without `include_users`.
    pub total_occupancy: u32,
    /// The members (none without `include_users`).
    pub members: Vec<Member>,
    /// Pass as `page` for the next page; empty on the last.
    pub next_page: String,
}

/// A channel of a user.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct ChannelRef {
    /// `message` or `stream`.
    pub channel_type: String,
    /// The channel name.
    pub channel: String,
}

/// A whereNow answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct Channels {
    /// The channels the user is present in.
    pub channels: Vec<ChannelRef>,
}

/// `GET /v1/apps/{app_id}/presence/{channel_type}/{channel}` (whoNow).
#[utoipa::path(get, path = "/v1/apps/{app_id}/presence/{channel_type}/{channel}", tag = "presence",
    params(("app_id" = String, Path, description = "the app id"),
           ("channel_type" = super::PathChannelType, Path, description = "message or stream"),
           ("channel" = String, Path, description = "the channel name"),
           ("page" = Option<String>, Query, description = "next_page of the previous page"),
           ("include_state" = Option<bool>, Query, description = "with each member's state"),
           ("include_users" = Option<bool>, Query, description = "list members (default true) or only count them")),
    responses((status = 200, body = Members),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 503, body = ErrorBody)),
    security(("basic" = [])))]
pub(crate) async fn who_now(
    State(node): State<Arc<Node>>,
    Path((app_id, kind, channel)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Json<Members>, ApiError> {
    const OP: &str = "whoNow";
    let app = authorize(&node, &app_id, &headers, OP)?;
    let req = pb::WhoNowRequest {
        channel_type: channel_type(&kind, OP)?,
        channel_name: channel,
        include_user_id: Some(query(&q, "include_users", OP)?.unwrap_or(true)),
        include_state: query(&q, "include_state", OP)?.unwrap_or(false),
        page: q.get("page").cloned().unwrap_or_default(),
    };
    let actor = actor_as(&app, None, OP)?;
    let reply = presence::who_now_as(&node, &actor, req)
        .await
        .map_err(|f| ApiError::failure(f, OP))?;
    Ok(Json(Members {
        total_occupancy: reply.total_occupancy,
        members: reply
            .occupants
            .into_iter()
            .map(|o| Member {
                user_id: o.user_id,
                states: o.states.into_iter().collect(),
            })
            .collect(),
        next_page: reply.next_page,
    }))
}

/// `GET /v1/apps/{app_id}/users/{user_id}/channels` (whereNow).
#[utoipa::path(get, path = "/v1/apps/{app_id}/users/{user_id}/channels", tag = "presence",
    params(("app_id" = String, Path, description = "the app id"),
           ("user_id" = String, Path, description = "the user")),
    responses((status = 200, body = Channels),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 503, body = ErrorBody)),
    security(("basic" = [])))]
pub(crate) async fn where_now(
    State(node): State<Arc<Node>>,
    Path((app_id, user_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Channels>, ApiError> {
    const OP: &str = "whereNow";
    let app = authorize(&node, &app_id, &headers, OP)?;
    let actor = actor_as(&app, None, OP)?;
    let reply = presence::where_now_as(&node, &actor, pb::WhereNowRequest { user_id })
        .await
        .map_err(|f| ApiError::failure(f, OP))?;
    Ok(Json(Channels {
        channels: reply
            .channels
            .into_iter()
            .map(|c| ChannelRef {
                channel_type: type_name(c.channel_type).into(),
                channel: c.channel_name,
            })
            .collect(),
    }))
}
