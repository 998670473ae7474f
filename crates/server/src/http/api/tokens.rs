//! `POST /v1/apps/{app_id}/tokens/rtm` and `/tokens/rtc`: tokens built with the app's
//! certificate by `switchboard_token`'s builder, so that a trusted backend needs no
//! token library.

use crate::http::auth::authorize;
use crate::http::error::{ApiError, ErrorBody, parse_json};
use crate::node::Node;
use crate::node::config::AppConfig;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use switchboard_protocol::{ErrorCode, names};
use switchboard_token::RtcRole;
use utoipa::ToSchema;

/// Longest token lifetime asked for, seconds (24 h, as Agora's builders allow).
const MAX_EXPIRE_SECONDS: u32 = 24 * 3600;
/// The lifetime when none is asked for, seconds.
const DEFAULT_EXPIRE_SECONDS: u32 = 3600;

/// An RTM login token request.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RtmTokenBody {
    /// The user id the token logs in.
    pub user_id: String,
    /// Lifetime, seconds (1–86,400; default 3,600).
    #[serde(default)]
    pub expire_seconds: Option<u32>,
}

/// The RTC role of a stream token.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Role {
    /// Join and publish.
    #[default]
    Publisher,
    /// Join only.
    Subscriber,
}

/// An RTC token request (for joining a stream channel).
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RtcTokenBody {
    /// The stream channel.
    pub channel: String,
    /// The user id.
    pub user_id: String,
    /// `publisher` (default) or `subscriber`.
    #[serde(default)]
    pub role: Role,
    /// Lifetime, seconds (1–86,400; default 3,600).
    #[serde(default)]
    pub expire_seconds: Option<u32>,
}

/// An issued token.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct Token {
    /// The token (`007…`).
    pub token: String,
    /// When it expires, Unix seconds.
    pub expires_at: u64,
}

/// `POST /v1/apps/{app_id}/tokens/rtm`.
#[utoipa::path(post, path = "/v1/apps/{app_id}/tokens/rtm", tag = "tokens",
    params(("app_id" = String, Path, description = "the app id")),
    request_body = RtmTokenBody,
    responses((status = 200, body = Token),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("basic" = [])))]
pub(crate) async fn rtm_token(
    State(node): State<Arc<Node>>,
    Path(app_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Token>, ApiError> {
    const OP: &str = "issueRtmToken";
    let app = authorize(&node, &app_id, &headers, OP)?;
    let body: RtmTokenBody = parse_json(&body, OP)?;
    names::validate_user_id(&body.user_id, app.limits.name_rules())
        .map_err(|i| ApiError::new(i.code, i.reason, OP))?;
    let (cert, expire, now) = prepare(&app, body.expire_seconds, OP)?;
    let token = switchboard_token::build_rtm_token(&app.id, cert, &body.user_id, expire, now)
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string(), OP))?;
    Ok(Json(Token {
        token,
        expires_at: u64::from(now) + u64::from(expire),
    }))
}

/// `POST /v1/apps/{app_id}/tokens/rtc`.
#[utoipa::path(post, path = "/v1/apps/{app_id}/tokens/rtc", tag = "tokens",
    params(("app_id" = String, Path, description = "the app id")),
    request_body = RtcTokenBody,
    responses((status = 200, body = Token),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("basic" = [])))]
pub(crate) async fn rtc_token(
    State(node): State<Arc<Node>>,
    Path(app_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Token>, ApiError> {
    const OP: &str = "issueRtcToken";
    let app = authorize(&node, &app_id, &headers, OP)?;
    let body: RtcTokenBody = parse_json(&body, OP)?;
    let rules = app.limits.name_rules();
    names::validate_user_id(&body.user_id, rules)
        .map_err(|i| ApiError::new(i.code, i.reason, OP))?;
    names::validate_channel_name(&body.channel, rules)
        .map_err(|i| ApiError::new(i.code, i.reason, OP))?;
    let (cert, expire, now) = prepare(&app, body.expire_seconds, OP)?;
    let role = match body.role {
        Role::Publisher => RtcRole::Publisher,
        Role::Subscriber => RtcRole::Subscriber,
    };
    let token = switchboard_token::build_rtc_token(
        &app.id,
        cert,
        &body.channel,
        &body.user_id,
        role,
        expire,
        expire,
        now,
    )
    .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string(), OP))?;
    Ok(Json(Token {
        token,
        expires_at: u64::from(now) + u64::from(expire),
    }))
}

/// The certificate, the lifetime and the issue time, or why no token can be issued.
fn prepare<'a>(
    app: &'a AppConfig,
    expire: Option<u32>,
    op: &str,
) -> Result<(&'a str, u32, u32), ApiError> {
    let Some(cert) = app.certificate.as_deref() else {
        return Err(ApiError::new(
            ErrorCode::InvalidParameter,
            "the app has no certificate: tokens are not checked, none can be issued",
            op,
        ));
    };
    let expire = expire.unwrap_or(DEFAULT_EXPIRE_SECONDS);
    if expire == 0 || expire > MAX_EXPIRE_SECONDS {
        return Err(ApiError::new(
            ErrorCode::InvalidParameter,
            format!("expire_seconds must be 1–{MAX_EXPIRE_SECONDS}"),
            op,
        ));
    }
    let now = u32::try_from(switchboard_protocol::now_ms() / 1000).unwrap_or(u32::MAX);
    Ok((cert, expire, now))
}
