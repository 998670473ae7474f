//! The HTTP side's error answer: the WebSocket API's error code, reason and operation
//! as a JSON body, with the HTTP status that fits the code.

use crate::wire::Failure;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use switchboard_protocol::ErrorCode;

/// An error body: `{"code": -10008, "reason": "...", "operation": "publish"}`.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    /// The error code, the same as the WebSocket API's (`ErrorCode`).
    pub code: i32,
    /// Why, in words.
    pub reason: String,
    /// The operation that failed (the WebSocket API's name, e.g. `publish`).
    pub operation: String,
}

/// A refused HTTP request.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    /// A failure with `code` and `reason` of `operation`; the status follows the code.
    pub fn new(code: ErrorCode, reason: impl Into<String>, operation: &str) -> Self {
        ApiError {
            status: status_of(code),
            body: ErrorBody {
                code: code.as_i32(),
                reason: reason.into(),
                operation: operation.into(),
            },
        }
    }

    /// A feature's failure of `operation`.
    pub fn failure(f: Failure, operation: &str) -> Self {
        ApiError::new(f.code, f.reason, operation)
    }

    /// A malformed request (400, `SB_ERROR_BAD_REQUEST`).
    pub fn bad_request(reason: impl Into<String>, operation: &str) -> Self {
        ApiError::new(ErrorCode::BadRequest, reason, operation)
    }

    /// Overrides the HTTP status.
    pub fn set_status(&mut self, status: StatusCode) {
        self.status = status;
    }

    /// The body, for a batch item's result.
    pub fn into_body(self) -> ErrorBody {
        self.body
    }
}

/// The HTTP status of an error code.
pub(crate) fn status_of(code: ErrorCode) -> StatusCode {
    use ErrorCode as E;
    match code {
        E::Unauthorized => StatusCode::UNAUTHORIZED,
        E::ChannelPublishMessageTooFrequent
        | E::OperationRateExceedLimitation
        | E::ChannelSubscribeTooFrequent => StatusCode::TOO_MANY_REQUESTS,
        E::EngineUnavailable
        | E::Overloaded
        | E::Internal
        | E::HistoryNotAvailable
        | E::StorageNotAvailable
        | E::LockNotAvailable
        | E::ChannelNotAvailable
        | E::ChannelMessageDeliveredButStoreFailed
        | E::ChannelReceiverOfflineAndStoreFailed => StatusCode::SERVICE_UNAVAILABLE,
        E::SessionNotFound
        | E::ChannelReceiverOffline
        | E::ChannelReceiverOfflineButStoreSucceeded
        | E::LockNotExist
        | E::PresenceUserNotExist => StatusCode::NOT_FOUND,
        E::StorageOutdatedRevision
        | E::StorageInvalidRevision
        | E::LockAlreadyExist
        | E::LockNotAcquired
        | E::StorageLockNotAcquired => StatusCode::CONFLICT,
        E::StoragePermissionDenied
        | E::LockPermissionDenied
        | E::HistoryPermissionDenied
        | E::ChannelPublishPermissionDenied => StatusCode::FORBIDDEN,
        _ => StatusCode::BAD_REQUEST,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Basic realm=\"switchboard\""),
            );
        }
        resp
    }
}

/// Parses a JSON request body; a malformed one is a 400 with the parser's reason.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    body: &[u8],
    operation: &str,
) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}"), operation))
}
