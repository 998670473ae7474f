//! The SDK's client-side token pre-checks (token.md §13, T61–T63), shared by the Rust SDK
//! so that errors surface before anything is sent, exactly as the Web SDK reports them.

use crate::error::TokenError;
use crate::token::AccessToken;

/// Length of the app id embedded in a legacy `006` token (characters 3–34, T62).
const APP_ID_LEN: usize = 32;

/// Checks a token against the configured app id the way the SDK does before login or
/// join, and returns what the SDK sends in its place.
///
/// - Empty: "no token"; the app id is sent instead (T61).
/// - `006…`: the app id is characters 3–34; `007…`: the decoded `app_id` (T62).
/// - Anything else must equal the configured app id, else [`TokenError::Malformed`].
/// - An app id read from a token that is not 32 ASCII alphanumerics is
///   [`TokenError::Malformed`] (−10005); one that differs from `app_id` is
///   [`TokenError::AppIdMismatch`] (−10016) (T63).
pub fn client_precheck(token: &str, app_id: &str) -> Result<String, TokenError> {
    if token.is_empty() {
        return Ok(app_id.to_owned());
    }
    let embedded = if token.starts_with("006") {
        token
            .get(3..3 + APP_ID_LEN)
            .ok_or(TokenError::Malformed)?
            .to_owned()
    } else if token.starts_with(crate::ids::VERSION) {
        AccessToken::parse(token)?.app_id
    } else if token == app_id {
        return Ok(token.to_owned());
    } else {
        return Err(TokenError::Malformed);
    };
    if embedded.len() != APP_ID_LEN || !embedded.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(TokenError::Malformed);
    }
    if embedded != app_id {
        return Err(TokenError::AppIdMismatch);
    }
    Ok(token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Service, TokenBuilder};

    const APP: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
    const CERT: &str = "f0e1d2c3b4a5968778695a4b3c2d1e0f";

    #[test]
    fn t61_empty_token_sends_the_app_id() {
        assert_eq!(client_precheck("", APP), Ok(APP.to_owned()));
    }

    #[test]
    fn t62_t63_app_id_from_006_007_or_the_token_itself() {
        let legacy = format!("006{APP}IACxyz");
        assert_eq!(client_precheck(&legacy, APP), Ok(legacy.clone()));
        let other = "ffeeddccbbaa99887766554433221100";
        assert_eq!(
            client_precheck(&legacy, other),
            Err(TokenError::AppIdMismatch)
        );
        assert_eq!(client_precheck("006short", APP), Err(TokenError::Malformed));
        assert_eq!(
            client_precheck(&format!("006{}", "-".repeat(32)), APP),
            Err(TokenError::Malformed)
        );

        let token = TokenBuilder::new(APP, CERT, 60)
            .issue_ts(1)
            .add_service(Service::rtm("u", 60))
            .build()
            .unwrap();
        assert_eq!(client_precheck(&token, APP), Ok(token.clone()));
        assert_eq!(
            client_precheck(&token, other),
            Err(TokenError::AppIdMismatch)
        );
        assert_eq!(
            client_precheck("007invalid", APP),
            Err(TokenError::Malformed)
        );

        assert_eq!(client_precheck(APP, APP), Ok(APP.to_owned()));
        assert_eq!(
            client_precheck("some-text", APP),
            Err(TokenError::Malformed)
        );
        assert_eq!(client_precheck("006é", APP), Err(TokenError::Malformed));
    }
}
