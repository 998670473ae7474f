//! The per-app server API: one module per resource; each handler authorizes the app,
//! turns the JSON body into the WebSocket API's request and calls the feature core.

pub(crate) mod channels;
pub(crate) mod history;
pub(crate) mod locks;
pub(crate) mod messages;
pub(crate) mod metadata;
pub(crate) mod overview;
pub(crate) mod presence;
pub(crate) mod tokens;
pub(crate) mod users;

use super::error::ApiError;
use crate::node::Actor;
use crate::node::config::AppConfig;
use std::collections::HashMap;
use std::sync::Arc;
use switchboard_protocol::{ErrorCode, names, pb};

/// A channel type in a path, for the document only: [`channel_type`] parses the
/// segment so that a bad one gets the WebSocket API's code.
#[allow(dead_code)]
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum PathChannelType {
    /// A message channel.
    Message,
    /// A stream channel.
    Stream,
    /// A user (metadata, history).
    User,
}

/// A metadata write operation in a path, for the document only (`metadata::write`
/// parses the segment).
#[allow(dead_code)]
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum MetadataOp {
    /// Replace the object.
    Set,
    /// Change or add items.
    Update,
    /// Remove items (or every item).
    Remove,
}

/// The user id the server API acts as when a request names none.
pub(crate) const SERVER_USER: &str = "server";

/// Unknown routes: a JSON 404.
pub(crate) async fn not_found(uri: axum::http::Uri) -> ApiError {
    let mut e = ApiError::new(
        ErrorCode::BadRequest,
        format!("no such endpoint: {}", uri.path()),
        "unknown",
    );
    e.set_status(axum::http::StatusCode::NOT_FOUND);
    e
}

/// The app acting as `user` (default [`SERVER_USER`]), the user id checked (R2).
pub(crate) fn actor_as(
    app: &Arc<AppConfig>,
    user: Option<&str>,
    operation: &str,
) -> Result<Actor, ApiError> {
    let user = user.unwrap_or(SERVER_USER);
    names::validate_user_id(user, app.limits.name_rules())
        .map_err(|i| ApiError::new(i.code, format!("user: {}", i.reason), operation))?;
    Ok(Actor::new(
        app,
        &Arc::from(app.id.as_str()),
        &Arc::from(user),
    ))
}

/// A channel type of a path (`message`, `stream`, `user`) as the wire's.
pub(crate) fn channel_type(segment: &str, operation: &str) -> Result<i32, ApiError> {
    let t = match segment {
        "message" => pb::ChannelType::Message,
        "stream" => pb::ChannelType::Stream,
        "user" => pb::ChannelType::User,
        other => {
            return Err(ApiError::new(
                ErrorCode::InvalidChannelType,
                format!("channel type {other:?}: use message, stream or user"),
                operation,
            ));
        }
    };
    Ok(t as i32)
}

/// The `channel_type` name of a wire channel type.
pub(crate) fn type_name(channel_type: i32) -> &'static str {
    match pb::ChannelType::try_from(channel_type) {
        Ok(pb::ChannelType::Stream) => "stream",
        Ok(pb::ChannelType::User) => "user",
        _ => "message",
    }
}

/// An offset page of a sorted list, from the `limit` and `page` query parameters
/// (`page` is the `next_page` of the previous answer; empty or absent: the first page).
pub(crate) struct Paging {
    /// Index of the first row of this page.
    pub start: usize,
    /// Rows on this page at most.
    pub limit: usize,
}

impl Paging {
    /// Reads `limit` (1..=`max`, `default` when absent) and `page`.
    pub(crate) fn from_query(
        q: &HashMap<String, String>,
        default: usize,
        max: usize,
        operation: &str,
    ) -> Result<Paging, ApiError> {
        let limit = query::<usize>(q, "limit", operation)?.unwrap_or(default);
        if !(1..=max).contains(&limit) {
            return Err(ApiError::bad_request(
                format!("limit {limit}: use 1 to {max}"),
                operation,
            ));
        }
        let start = match q.get("page").map(String::as_str) {
            None | Some("") => 0,
            Some(p) => p.parse::<usize>().map_err(|_| {
                ApiError::bad_request(format!("page {p:?} is not a next_page value"), operation)
            })?,
        };
        Ok(Paging { start, limit })
    }

    /// The `next_page` value after this page of `total` rows: empty on the last page.
    pub(crate) fn next_page(&self, total: usize) -> String {
        let next = self.start.saturating_add(self.limit);
        if next < total {
            next.to_string()
        } else {
            String::new()
        }
    }
}

/// A query parameter parsed as `T`; absent = `None`.
pub(crate) fn query<T: std::str::FromStr>(
    q: &HashMap<String, String>,
    name: &str,
    operation: &str,
) -> Result<Option<T>, ApiError> {
    match q.get(name) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            ApiError::bad_request(
                format!("query parameter {name}={v:?} is invalid"),
                operation,
            )
        }),
    }
}
