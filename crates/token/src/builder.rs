//! Building tokens (token.md §8): the general [`TokenBuilder`] and one-call functions that
//! mirror the reference package's `RtmTokenBuilder` / `RtcTokenBuilder` methods.

use rand::Rng;

use crate::codec::Writer;
use crate::error::BuildError;
use crate::ids::is_hex32;
use crate::service::{RtcPrivilegeExpiry, RtcRole, Service};
use crate::token::{MAX_PAYLOAD_LEN, encode, payload, sign};

/// Builds an AccessToken2 from an app's credentials, a lifetime and services (T21–T25).
///
/// The library reads no clock, so [`TokenBuilder::issue_ts`] must be set; the salt is
/// drawn uniformly from 1 … 99,999,999 when not set (T22).
#[derive(Debug, Clone)]
pub struct TokenBuilder {
    app_id: String,
    app_certificate: String,
    expire: u32,
    issue_ts: Option<u32>,
    salt: Option<u32>,
    services: Vec<Service>,
}

impl TokenBuilder {
    /// A builder for a token of the given app, valid `expire` seconds from its issue time.
    pub fn new(app_id: &str, app_certificate: &str, expire: u32) -> TokenBuilder {
        TokenBuilder {
            app_id: app_id.to_owned(),
            app_certificate: app_certificate.to_owned(),
            expire,
            issue_ts: None,
            salt: None,
            services: Vec::new(),
        }
    }

    /// Sets the issue time, whole seconds since the Unix epoch (T21).
    pub fn issue_ts(mut self, issue_ts: u32) -> TokenBuilder {
        self.issue_ts = Some(issue_ts);
        self
    }

    /// Sets the salt instead of drawing a random one (T22).
    pub fn salt(mut self, salt: u32) -> TokenBuilder {
        self.salt = Some(salt);
        self
    }

    /// Adds a service; services are written in ascending type, and several of one type keep
    /// their insertion order (T25).
    pub fn add_service(mut self, service: Service) -> TokenBuilder {
        self.services.push(service);
        self
    }

    /// The decompressed payload the token will carry (signature + signing info); without a
    /// set salt, each call draws a new one.
    pub fn build_payload(&self) -> Result<Vec<u8>, BuildError> {
        if !is_hex32(&self.app_id) {
            return Err(BuildError::InvalidAppId);
        }
        if !is_hex32(&self.app_certificate) {
            return Err(BuildError::InvalidAppCertificate);
        }
        if self.services.is_empty() {
            return Err(BuildError::NoService);
        }
        let issue_ts = self.issue_ts.ok_or(BuildError::MissingIssueTs)?;
        let salt = self
            .salt
            .unwrap_or_else(|| rand::rng().random_range(1..=99_999_999));

        let mut services: Vec<&Service> = self.services.iter().collect();
        // Stable sort: same-type services keep their insertion order (T25).
        services.sort_by_key(|s| s.service_type());

        let mut w = Writer::default();
        w.string(&self.app_id, "app_id")?;
        w.u32(issue_ts);
        w.u32(self.expire);
        w.u32(salt);
        w.count(services.len(), "services")?;
        for service in services {
            service.write(&mut w)?;
        }
        let signing_info = w.into_bytes();

        let signature = sign(&self.app_certificate, issue_ts, salt, &signing_info);
        let out = payload(&signature, &signing_info);
        if out.len() > MAX_PAYLOAD_LEN {
            return Err(BuildError::PayloadTooLarge);
        }
        Ok(out)
    }

    /// The token string: `007` + base64 of the zlib-compressed payload (T1, T16, T18);
    /// without a set salt, each call draws a new one.
    pub fn build(&self) -> Result<String, BuildError> {
        self.build_payload().map(|p| encode(&p))
    }
}

/// An RTM login token like `RtmTokenBuilder.buildToken`: one RTM service for `user_id`
/// whose login privilege lasts `expire` seconds, random salt.
pub fn build_rtm_token(
    app_id: &str,
    app_certificate: &str,
    user_id: &str,
    expire: u32,
    issue_ts: u32,
) -> Result<String, BuildError> {
    TokenBuilder::new(app_id, app_certificate, expire)
        .issue_ts(issue_ts)
        .add_service(Service::rtm(user_id, expire))
        .build()
}

/// An RTC token like `RtcTokenBuilder.buildTokenWithUserAccount`: join (and, for a
/// publisher, publish audio/video/data) = `privilege_expire`; `uid` `""` is the wildcard.
#[allow(clippy::too_many_arguments)] // mirrors the reference builder's parameter list
pub fn build_rtc_token(
    app_id: &str,
    app_certificate: &str,
    channel_name: &str,
    uid: &str,
    role: RtcRole,
    token_expire: u32,
    privilege_expire: u32,
    issue_ts: u32,
) -> Result<String, BuildError> {
    TokenBuilder::new(app_id, app_certificate, token_expire)
        .issue_ts(issue_ts)
        .add_service(Service::rtc(channel_name, uid, role, privilege_expire))
        .build()
}

/// An RTC token like `RtcTokenBuilder.BuildTokenWithUserAccountAndPrivilege`: all four
/// RTC privileges, each with its own lifetime.
pub fn build_rtc_token_with_privileges(
    app_id: &str,
    app_certificate: &str,
    channel_name: &str,
    uid: &str,
    token_expire: u32,
    expiry: RtcPrivilegeExpiry,
    issue_ts: u32,
) -> Result<String, BuildError> {
    TokenBuilder::new(app_id, app_certificate, token_expire)
        .issue_ts(issue_ts)
        .add_service(Service::rtc_with_privileges(channel_name, uid, expiry))
        .build()
}

/// A combined token like `RtcTokenBuilder.buildTokenWithRtm`: the RTC service of
/// [`build_rtc_token`] plus an RTM service for the same account whose login lasts
/// `token_expire` (T26).
#[allow(clippy::too_many_arguments)] // mirrors the reference builder's parameter list
pub fn build_rtc_rtm_token(
    app_id: &str,
    app_certificate: &str,
    channel_name: &str,
    account: &str,
    role: RtcRole,
    token_expire: u32,
    privilege_expire: u32,
    issue_ts: u32,
) -> Result<String, BuildError> {
    TokenBuilder::new(app_id, app_certificate, token_expire)
        .issue_ts(issue_ts)
        .add_service(Service::rtc(channel_name, account, role, privilege_expire))
        .add_service(Service::rtm(account, token_expire))
        .build()
}
