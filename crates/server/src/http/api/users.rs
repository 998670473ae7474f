//! `POST /v1/apps/{app_id}/users/{user_id}/kick`: ends the user's session on this node
//! (`session::lifecycle::end`), which closes its connection with `KICKED` (4003) and
//! the reason given, and leaves every channel as a logout would. `GET …/users`: the
//! app's sessions on this node, for the console. `.../ban` does the same as kick and
//! refuses the user's logins for a duration (`features::login::Bans`); `.../unban`
//! lifts it.

use crate::features::login::Bans;
use crate::http::auth::authorize;
use crate::http::error::{ApiError, ErrorBody, parse_json};
use crate::node::Node;
use crate::session::hooks::{self, Happening};
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

/// One session of the user list.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct UserRow {
    /// The user id.
    pub user_id: String,
    /// The session id its client resumes with.
    pub session_id: String,
    /// Whether a connection is attached (false: waiting for a resume).
    pub attached: bool,
    /// Message channels it subscribed to.
    pub subscriptions: usize,
    /// Stream channels it joined.
    pub streams: usize,
}

/// A page of the user list.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct UserList {
    /// Sessions matching the search (all pages).
    pub total: usize,
    /// This page, by user id.
    pub users: Vec<UserRow>,
    /// Pass as `page` for the next page; empty on the last.
    pub next_page: String,
}

/// `GET /v1/apps/{app_id}/users`: the app's sessions on this node, searched by user id
/// and paged.
#[utoipa::path(get, path = "/v1/apps/{app_id}/users", tag = "users",
    params(("app_id" = String, Path, description = "the app id"),
           ("search" = Option<String>, Query, description = "only user ids containing this (case-insensitive)"),
           ("page" = Option<String>, Query, description = "next_page of the previous page"),
           ("limit" = Option<u32>, Query, description = "users per page (1..=200, default 50)")),
    responses((status = 200, body = UserList),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("basic" = [])))]
pub(crate) async fn list(
    State(node): State<Arc<Node>>,
    Path(app_id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Json<UserList>, ApiError> {
    const OP: &str = "listUsers";
    let app = authorize(&node, &app_id, &headers, OP)?;
    let paging = super::Paging::from_query(&q, 50, 200, OP)?;
    let search = q
        .get("search")
        .map(|s| s.to_lowercase())
        .unwrap_or_default();
    let mut all: Vec<_> = Registry::of(&node)
        .sessions_of(&app.id)
        .into_iter()
        .filter(|s| search.is_empty() || s.user.to_lowercase().contains(&search))
        .collect();
    all.sort_by(|a, b| a.user.cmp(&b.user));
    let total = all.len();
    let users = all
        .iter()
        .skip(paging.start)
        .take(paging.limit)
        .map(|s| {
            let st = s.lock();
            UserRow {
                user_id: s.user.to_string(),
                session_id: s.public_id.clone(),
                attached: st.attached && !st.ended,
                subscriptions: st.subscriptions.len(),
                streams: st.streams.len(),
            }
        })
        .collect();
    Ok(Json(UserList {
        total,
        users,
        next_page: paging.next_page(total),
    }))
}

/// Longest ban, seconds (a year).
const MAX_BAN_SECS: u64 = 365 * 24 * 3600;

/// A ban.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BanBody {
    /// How long logins are refused, seconds (1 to 31536000).
    pub duration_secs: u64,
    /// Shown to the client when it is kicked and when a login is refused (at most 256
    /// bytes; default "banned by the server").
    #[serde(default)]
    pub reason: Option<String>,
}

/// A ban in force.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct Banned {
    /// The user id.
    pub user_id: String,
    /// When the ban ends, ms since the epoch.
    pub until_ms: u64,
    /// Sessions ended by it (0 when the user was not logged in on this node).
    pub sessions: u32,
}

/// A ban lifted.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct Unbanned {
    /// The user id.
    pub user_id: String,
    /// Whether a ban was in force.
    pub was_banned: bool,
}

/// `POST /v1/apps/{app_id}/users/{user_id}/ban`: kicks the user's session (if any)
/// and refuses its logins with `LOGIN_REJECTED` until the ban expires.
#[utoipa::path(post, path = "/v1/apps/{app_id}/users/{user_id}/ban", tag = "users",
    params(("app_id" = String, Path, description = "the app id"),
           ("user_id" = String, Path, description = "the user to ban")),
    request_body(content = BanBody, content_type = "application/json"),
    responses((status = 200, body = Banned),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("basic" = [])))]
pub(crate) async fn ban(
    State(node): State<Arc<Node>>,
    Path((app_id, user_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Banned>, ApiError> {
    const OP: &str = "ban";
    let app = authorize(&node, &app_id, &headers, OP)?;
    let body: BanBody = parse_json(&body, OP)?;
    switchboard_protocol::names::validate_user_id(&user_id, app.limits.name_rules())
        .map_err(|i| ApiError::new(i.code, i.reason, OP))?;
    if body.duration_secs == 0 || body.duration_secs > MAX_BAN_SECS {
        return Err(ApiError::bad_request(
            format!(
                "duration_secs is {}; it must be 1 to {MAX_BAN_SECS}",
                body.duration_secs
            ),
            OP,
        ));
    }
    let reason = body.reason.unwrap_or_else(|| "banned by the server".into());
    if reason.len() > MAX_REASON_BYTES {
        return Err(ApiError::bad_request(
            format!("reason is {} bytes, over {MAX_REASON_BYTES}", reason.len()),
            OP,
        ));
    }
    let duration = std::time::Duration::from_secs(body.duration_secs);
    // Banned first, so that the kicked client's reconnect is already refused.
    node.ext
        .get::<Bans>()
        .ban(&app.id, &user_id, duration, reason.clone());
    let until_ms = switchboard_protocol::now_ms() + body.duration_secs * 1000;
    hooks::happened(
        &node,
        &Happening::Banned {
            app: &app.id,
            user: &user_id,
            until_ms,
            reason: &reason,
        },
    );
    let mut sessions = 0;
    if let Some(session) = Registry::of(&node).get(&app.id, &user_id) {
        let close = format!("banned for {} s: {reason}", body.duration_secs);
        lifecycle::end(&node, &session, Some((DisconnectCode::Kicked, close))).await;
        node.metrics.kicks.fetch_add(1, Ordering::Relaxed);
        sessions = 1;
    }
    Ok(Json(Banned {
        user_id,
        until_ms,
        sessions,
    }))
}

/// `POST /v1/apps/{app_id}/users/{user_id}/unban`: lifts a ban.
#[utoipa::path(post, path = "/v1/apps/{app_id}/users/{user_id}/unban", tag = "users",
    params(("app_id" = String, Path, description = "the app id"),
           ("user_id" = String, Path, description = "the user to let in again")),
    responses((status = 200, body = Unbanned),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("basic" = [])))]
pub(crate) async fn unban(
    State(node): State<Arc<Node>>,
    Path((app_id, user_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Unbanned>, ApiError> {
    const OP: &str = "unban";
    let app = authorize(&node, &app_id, &headers, OP)?;
    switchboard_protocol::names::validate_user_id(&user_id, app.limits.name_rules())
        .map_err(|i| ApiError::new(i.code, i.reason, OP))?;
    let was_banned = node.ext.get::<Bans>().lift(&app.id, &user_id);
    Ok(Json(Unbanned {
        user_id,
        was_banned,
    }))
}
