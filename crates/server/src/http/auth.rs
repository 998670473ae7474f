//! Server API authentication: each app's API key and secret (config `[[apps]]`
//! `api_key`, `api_secret`) sent as HTTP Basic, compared in constant time. The app
//! certificate is never accepted as a credential.

use super::error::ApiError;
use crate::node::Node;
use crate::node::config::AppConfig;
use axum::http::HeaderMap;
use base64::Engine as _;
use std::sync::Arc;
use subtle::ConstantTimeEq;
use switchboard_protocol::ErrorCode;

/// The app `app_id` if the request carries its API key and secret, else a 401.
pub(crate) fn authorize(
    node: &Node,
    app_id: &str,
    headers: &HeaderMap,
    operation: &str,
) -> Result<Arc<AppConfig>, ApiError> {
    let deny = |reason: &str| ApiError::new(ErrorCode::Unauthorized, reason, operation);
    let (key, secret) = basic_credentials(headers)
        .ok_or_else(|| deny("send the app's API key and secret as HTTP Basic credentials"))?;
    let Some(app) = node.apps.get(app_id) else {
        return Err(deny("unknown app id, or wrong API key or secret"));
    };
    let (Some(want_key), Some(want_secret)) = (&app.api_key, &app.api_secret) else {
        return Err(deny(
            "the server API is not enabled for this app (no api_key and api_secret)",
        ));
    };
    // A secret equal to the certificate would let the certificate in: refused.
    if app.certificate.as_deref() == Some(want_secret.as_str()) {
        return Err(deny(
            "the app's api_secret equals its certificate, which is never accepted",
        ));
    }
    // Both compared, whatever the first gives, so the time says nothing of which failed.
    let ok =
        key.as_bytes().ct_eq(want_key.as_bytes()) & secret.as_bytes().ct_eq(want_secret.as_bytes());
    if bool::from(ok) {
        Ok(app.clone())
    } else {
        Err(deny("unknown app id, or wrong API key or secret"))
    }
}

/// The (user, password) of an `Authorization: Basic …` header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}
