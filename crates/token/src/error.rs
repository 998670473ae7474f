//! The closed sets of failures: [`TokenError`] for parsing and verifying (token.md §10)
//! and [`BuildError`] for building (T24).

/// Why a token was refused: exactly the failure identifiers of token.md §10.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum TokenError {
    /// Empty, too short, bad base64, not zlib, Adler-32 mismatch, truncated field, bad lengths.
    #[error("token is malformed (bad base64, compression or field layout)")]
    Malformed,
    /// The prefix is not `007` (T35).
    #[error("token version is not supported (prefix is not \"007\")")]
    UnsupportedVersion,
    /// The token's app id differs from the session's app id (T39).
    #[error("token was issued for a different app id")]
    AppIdMismatch,
    /// The recomputed signature differs from the stored one (T40).
    #[error("token signature does not match the app certificate")]
    SignatureMismatch,
    /// `now` is at or past `issue_ts + expire`, or `expire` is 0 (T28, T32).
    #[error("token has expired")]
    TokenExpired,
    /// `issue_ts` lies further in the future than the configured maximum clock skew (T34).
    #[error("token was issued in the future beyond the allowed clock skew")]
    IssuedInFuture,
    /// The token has no service of the type the purpose needs (T43, T47, T59).
    #[error("token carries no service of the required type")]
    ServiceMissing,
    /// The matching service lacks the needed privilege (T45, T50).
    #[error("token lacks the required privilege")]
    PrivilegeMissing,
    /// The needed privilege has lapsed (T29, T30).
    #[error("the token's privilege has expired")]
    PrivilegeExpired,
    /// The RTM `user_id` or RTC `uid` does not name the session's user (T44, T49).
    #[error("token was issued for a different user id")]
    UserIdMismatch,
    /// No RTC service names the stream channel being joined (T48).
    #[error("token was issued for a different channel")]
    ChannelMismatch,
}

impl TokenError {
    /// Every variant, in the order of token.md §10's table.
    pub const ALL: [TokenError; 11] = [
        TokenError::Malformed,
        TokenError::UnsupportedVersion,
        TokenError::AppIdMismatch,
        TokenError::SignatureMismatch,
        TokenError::TokenExpired,
        TokenError::IssuedInFuture,
        TokenError::ServiceMissing,
        TokenError::PrivilegeMissing,
        TokenError::PrivilegeExpired,
        TokenError::UserIdMismatch,
        TokenError::ChannelMismatch,
    ];

    /// The failure identifier of token.md §10 (`"MALFORMED"`, `"APP_ID_MISMATCH"`, …).
    pub fn identifier(&self) -> &'static str {
        match self {
            TokenError::Malformed => "MALFORMED",
            TokenError::UnsupportedVersion => "UNSUPPORTED_VERSION",
            TokenError::AppIdMismatch => "APP_ID_MISMATCH",
            TokenError::SignatureMismatch => "SIGNATURE_MISMATCH",
            TokenError::TokenExpired => "TOKEN_EXPIRED",
            TokenError::IssuedInFuture => "ISSUED_IN_FUTURE",
            TokenError::ServiceMissing => "SERVICE_MISSING",
            TokenError::PrivilegeMissing => "PRIVILEGE_MISSING",
            TokenError::PrivilegeExpired => "PRIVILEGE_EXPIRED",
            TokenError::UserIdMismatch => "USER_ID_MISMATCH",
            TokenError::ChannelMismatch => "CHANNEL_MISMATCH",
        }
    }

    /// The variant with the given §10 identifier, if any.
    pub fn from_identifier(identifier: &str) -> Option<TokenError> {
        Self::ALL.into_iter().find(|e| e.identifier() == identifier)
    }

    /// The SDK error code reported for this failure (token.md §10): −10005 invalid token,
    /// −10009 token expired, −10016 inconsistent app id.
    pub fn sdk_error_code(&self) -> i32 {
        match self {
            TokenError::AppIdMismatch => -10016,
            TokenError::TokenExpired | TokenError::PrivilegeExpired => -10009,
            _ => -10005,
        }
    }

    /// The linkState change reason for a refused login (`INVALID_TOKEN`, `TOKEN_EXPIRED`
    /// or `INCONSISTENT_APP_ID`, token.md §10).
    pub fn login_link_state_reason(&self) -> &'static str {
        match self {
            TokenError::AppIdMismatch => "INCONSISTENT_APP_ID",
            TokenError::TokenExpired | TokenError::PrivilegeExpired => "TOKEN_EXPIRED",
            _ => "INVALID_TOKEN",
        }
    }

    /// A human-readable reason naming the case (the same text as `Display`).
    pub fn description(&self) -> &'static str {
        match self {
            TokenError::Malformed => "token is malformed (bad base64, compression or field layout)",
            TokenError::UnsupportedVersion => {
                "token version is not supported (prefix is not \"007\")"
            }
            TokenError::AppIdMismatch => "token was issued for a different app id",
            TokenError::SignatureMismatch => "token signature does not match the app certificate",
            TokenError::TokenExpired => "token has expired",
            TokenError::IssuedInFuture => {
                "token was issued in the future beyond the allowed clock skew"
            }
            TokenError::ServiceMissing => "token carries no service of the required type",
            TokenError::PrivilegeMissing => "token lacks the required privilege",
            TokenError::PrivilegeExpired => "the token's privilege has expired",
            TokenError::UserIdMismatch => "token was issued for a different user id",
            TokenError::ChannelMismatch => "token was issued for a different channel",
        }
    }
}

/// Why a builder refused to produce a token (the reference returns `""` in these cases, T24).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The App ID is not exactly 32 hexadecimal characters.
    #[error("app id must be exactly 32 hexadecimal characters")]
    InvalidAppId,
    /// The App Certificate is not exactly 32 hexadecimal characters.
    #[error("app certificate must be exactly 32 hexadecimal characters")]
    InvalidAppCertificate,
    /// No service was added.
    #[error("a token needs at least one service")]
    NoService,
    /// No issue time was given (the library reads no clock; pass `issue_ts`).
    #[error("issue_ts was not set")]
    MissingIssueTs,
    /// A string field is longer than 65,535 bytes (T3).
    #[error("field {0} is longer than 65535 bytes")]
    FieldTooLong(&'static str),
    /// More than 65,535 entries where the count is a `u16`.
    #[error("too many {0} (at most 65535)")]
    TooMany(&'static str),
    /// An [`crate::Service::Other`] whose type or fields do not match token.md §5.
    #[error("service type {0} is unknown or its fields do not match its layout")]
    InvalidService(u16),
    /// The payload would exceed the 64 KiB that parsers accept (T37).
    #[error("token payload would exceed 65536 bytes")]
    PayloadTooLarge,
}
