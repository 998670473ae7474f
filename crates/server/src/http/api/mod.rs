//! The per-app server API: one module per resource; each handler authorizes the app,
//! turns the JSON body into the WebSocket API's request and calls the feature core.

pub(crate) mod messages;
pub(crate) mod tokens;
pub(crate) mod users;

use super::error::ApiError;
use switchboard_protocol::ErrorCode;

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
