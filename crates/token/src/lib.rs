//! AccessToken2 ("007") tokens: building, parsing and verifying the tokens that clients
//! present to Switchboard, compatible with Agora's own token builders (`agora-token`
//! 2.0.6 is the reference). The normative text is `spec/token.md` (rules `T1`…`T63`).
//!
//! # Format
//!
//! A token is the prefix `007` followed by standard base64 (T18/T19) of a zlib stream
//! (T16) whose decompressed payload (at most 64 KiB, T37) is:
//!
//! | field | encoding |
//! | --- | --- |
//! | signature | `bytes` (u16 length + 32 bytes of HMAC-SHA256) |
//! | app id | `string` |
//! | issue_ts, expire, salt | `u32` each, little-endian |
//! | service count | `u16` |
//! | services | per service: `u16` type, privilege map, type-specific fields |
//!
//! Everything after the signature is the *signing info* (T5). The signature is
//! `HMAC(HMAC(u32le(salt), HMAC(u32le(issue_ts), certificate)), signing_info)` (T12–T14).
//! Expiry values are durations in seconds counted from `issue_ts` (T23).
//!
//! # Verification order
//!
//! [`verify_login`] and [`verify_stream_join`] check, in this order, the first failure
//! deciding the outcome (T35–T42): version prefix and shape ([`TokenError::Malformed`],
//! [`TokenError::UnsupportedVersion`]), app id ([`TokenError::AppIdMismatch`]), signature
//! ([`TokenError::SignatureMismatch`]), optional clock skew
//! ([`TokenError::IssuedInFuture`]), token expiry ([`TokenError::TokenExpired`]), then the
//! purpose-specific service, user/channel and privilege checks (T43–T50).
//!
//! The crate does no I/O and never reads a clock: callers pass `now` (seconds since the
//! Unix epoch) to the verifiers and `issue_ts` to the builders. Only the salt is drawn at
//! random when a builder is not given one (T22).
//!
//! ```
//! use switchboard_token::{VerifyOptions, build_rtm_token, verify_login};
//!
//! let (app_id, cert) = ("a1b2c3d4e5f60718293a4b5c6d7e8f90", "f0e1d2c3b4a5968778695a4b3c2d1e0f");
//! let token = build_rtm_token(app_id, cert, "alice", 3600, 1_700_000_000)?;
//! let opts = VerifyOptions::default();
//! let credential = verify_login(&token, app_id, cert, "alice", 1_700_000_010, &opts)?;
//! assert_eq!(credential.expires_at, 1_700_003_600);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod builder;
mod codec;
mod error;
mod ids;
mod permissions;
mod precheck;
mod service;
mod token;
mod verify;

pub use builder::{
    TokenBuilder, build_rtc_rtm_token, build_rtc_token, build_rtc_token_with_privileges,
    build_rtm_token,
};
pub use error::{BuildError, TokenError};
pub use ids::{
    VERSION, is_hex32, privilege, privilege_name, rtm2, service_type, service_type_name,
};
pub use permissions::{Rtm2Grants, resource_matches};
pub use precheck::client_precheck;
pub use service::{FieldValue, RtcPrivilegeExpiry, RtcRole, Rtm2Permission, Service};
pub use token::{AccessToken, MAX_PAYLOAD_LEN, MAX_TOKEN_LEN};
pub use verify::{Credential, VerifyOptions, verify_login, verify_stream_join, verify_token};
