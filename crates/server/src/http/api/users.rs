//! `POST /v1/apps/{app_id}/users/{user_id}/kick`: ends the user's session on this node
//! (`session::lifecycle::end`), which closes its connection with `KICKED` (4003) and
//! the reason given, and leaves every channel as a logout would.

use crate::http::auth::authorize;
use crate::http::error::{ApiError, ErrorBody, parse_json};
use crate::node::Node;
use crate::session::lifecycle;
use crate::session::registry::Registry;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use switchboard_protocol::{DisconnectCode, ErrorCode};
use utoipa::ToSchema;

const OP: &str = "kick";

/// Longest kick reason, bytes.
const MAX_REASON_BYTES: usize = 256;

/// A kick.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct KickBody {
    /// Shown to the client in its close (at most 256 bytes; default "kicked by the
    /// server").
    #[serde(default)]
    pub reason: Option<String>,
}

/// A kick done.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct Kicked {
    /// The user id.
    pub user_id: String,
    /// Sessions ended (one per app and user, R28).
    pub sessions: u32,
}

/// `POST /v1/apps/{app_id}/users/{user_id}/kick` (the body may be empty).
#[utoipa::path(post, path = "/v1/apps/{app_id}/users/{user_id}/kick", tag = "users",
    params(("app_id" = String, Path, description = "the app id"),
           ("user_id" = String, Path, description = "the user to kick")),
    request_body(content = KickBody, content_type = "application/json"),
    responses((status = 200, body = Kicked),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, description = "the user has no session on this node", body = ErrorBody)),
    security(("basic" = [])))]
pub(crate) async fn kick(
    State(node): State<Arc<Node>>,
    Path((app_id, user_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Kicked>, ApiError> {
    let app = authorize(&node, &app_id, &headers, OP)?;
    let body: KickBody = if body.iter().all(u8::is_ascii_whitespace) {
        KickBody::default()
    } else {
        parse_json(&body, OP)?
    };
    switchboard_protocol::names::validate_user_id(&user_id, app.limits.name_rules())
        .map_err(|i| ApiError::new(i.code, i.reason, OP))?;
    let reason = body.reason.unwrap_or_else(|| "kicked by the server".into());
    if reason.len() > MAX_REASON_BYTES {
        return Err(ApiError::bad_request(
            format!("reason is {} bytes, over {MAX_REASON_BYTES}", reason.len()),
            OP,
        ));
    }
    let Some(session) = Registry::of(&node).get(&app.id, &user_id) else {
        return Err(ApiError::new(
            ErrorCode::SessionNotFound,
            format!("user {user_id} has no session on this node"),
            OP,
        ));
    };
    lifecycle::end(&node, &session, Some((DisconnectCode::Kicked, reason))).await;
    node.metrics.kicks.fetch_add(1, Ordering::Relaxed);
    Ok(Json(Kicked {
        user_id,
        sessions: 1,
    }))
}
