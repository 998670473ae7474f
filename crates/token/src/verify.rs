//! Verification (token.md §9–§11): the common steps T35–T41 and the purpose checks for RTM
//! login (T43–T46) and stream channel join (T47–T50), yielding the effective expiry (T53).

use crate::error::TokenError;
use crate::ids::privilege;
use crate::service::Service;
use crate::token::AccessToken;

/// Verifier settings (token.md §16); the default is the spec's default behaviour.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Maximum seconds a token's `issue_ts` may lie ahead of `now`; `None` = no limit (T34).
    pub max_clock_skew: Option<u32>,
    /// Accept an RTM2 (type 8) service for login in place of an RTM service (T46).
    pub accept_rtm2: bool,
    /// Longest lifetime honoured, seconds; `None` = no limit (T33). A token is not
    /// refused for a longer `expire`: it counts as expired (`TOKEN_EXPIRED`) once this
    /// long past its `issue_ts`, and its effective expiry (T53) is capped there.
    pub max_lifetime: Option<u32>,
}

/// What a verified token grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Credential {
    /// The effective expiry, seconds since the epoch (T53): the token's expiry, or the
    /// relied-on privilege's if that is earlier. Valid while `now < expires_at`.
    pub expires_at: u64,
}

/// RTM login (T35–T46), also used for `renewToken` without a channel name (T52).
pub fn verify_login(
    token: &str,
    app_id: &str,
    app_certificate: &str,
    user_id: &str,
    now: u64,
    opts: &VerifyOptions,
) -> Result<Credential, TokenError> {
    verify_token(token, app_id, app_certificate)?.check_login(user_id, now, opts)
}

/// Stream channel join (T35–T42, T47–T50), also used for `renewToken(token, {channelName})`.
pub fn verify_stream_join(
    token: &str,
    app_id: &str,
    app_certificate: &str,
    user_id: &str,
    channel_name: &str,
    now: u64,
    opts: &VerifyOptions,
) -> Result<Credential, TokenError> {
    verify_token(token, app_id, app_certificate)?.check_rtc_privilege(
        channel_name,
        user_id,
        privilege::JOIN_CHANNEL,
        now,
        opts,
    )
}

/// Parses a token and checks that it is authentic for the app (T35–T40): version, shape,
/// app id (exact, case-sensitive), then the signature. No time or purpose check.
pub fn verify_token(
    token: &str,
    app_id: &str,
    app_certificate: &str,
) -> Result<AccessToken, TokenError> {
    let parsed = AccessToken::parse(token)?;
    if parsed.app_id != app_id {
        return Err(TokenError::AppIdMismatch);
    }
    if !parsed.signature_valid(app_certificate) {
        return Err(TokenError::SignatureMismatch);
    }
    Ok(parsed)
}

impl AccessToken {
    /// Time checks (T41): the optional clock-skew bound (T34), then token expiry (T28, T32).
    pub fn check_time(&self, now: u64, opts: &VerifyOptions) -> Result<(), TokenError> {
        if let Some(skew) = opts.max_clock_skew {
            if u64::from(self.issue_ts) > now.saturating_add(u64::from(skew)) {
                return Err(TokenError::IssuedInFuture);
            }
        }
        if self.expire == 0 || now >= self.honoured_until(opts) {
            return Err(TokenError::TokenExpired);
        }
        Ok(())
    }

    /// The token's expiry, capped at `issue_ts` + the maximum lifetime when one is
    /// configured (T33).
    pub fn honoured_until(&self, opts: &VerifyOptions) -> u64 {
        let end = self.expires_at();
        match opts.max_lifetime {
            Some(max) => end.min(u64::from(self.issue_ts) + u64::from(max)),
            None => end,
        }
    }

    /// The login checks of an authentic token (T41, T43–T46): an RTM service (or RTM2 when
    /// enabled) for `user_id` or the wildcard, with an unlapsed login privilege.
    pub fn check_login(
        &self,
        user_id: &str,
        now: u64,
        opts: &VerifyOptions,
    ) -> Result<Credential, TokenError> {
        self.check_time(now, opts)?;
        let login: Vec<(&Service, &str)> = self
            .services
            .iter()
            .filter_map(|s| match s {
                Service::Rtm { user_id, .. } => Some((s, user_id.as_str())),
                Service::Rtm2 { user_id, .. } if opts.accept_rtm2 => Some((s, user_id.as_str())),
                _ => None,
            })
            .collect();
        if login.is_empty() {
            return Err(TokenError::ServiceMissing);
        }
        let matching: Vec<&Service> = login
            .into_iter()
            .filter(|(_, u)| u.is_empty() || *u == user_id)
            .map(|(s, _)| s)
            .collect();
        if matching.is_empty() {
            return Err(TokenError::UserIdMismatch);
        }
        self.grant(&matching, privilege::RTM_LOGIN, now, opts)
    }

    /// The RTC checks of an authentic token (T41, T47–T50): an RTC service for
    /// `channel_name` whose uid is `user_id` or the wildcard, carrying `privilege`
    /// unlapsed. [`privilege::JOIN_CHANNEL`] is the stream channel join; the
    /// publish-data privilege serves publisher authentication (T51).
    pub fn check_rtc_privilege(
        &self,
        channel_name: &str,
        user_id: &str,
        privilege: u16,
        now: u64,
        opts: &VerifyOptions,
    ) -> Result<Credential, TokenError> {
        self.check_time(now, opts)?;
        let rtc: Vec<(&Service, &str, &str)> = self
            .services
            .iter()
            .filter_map(|s| match s {
                Service::Rtc {
                    channel_name, uid, ..
                } => Some((s, channel_name.as_str(), uid.as_str())),
                _ => None,
            })
            .collect();
        if rtc.is_empty() {
            return Err(TokenError::ServiceMissing);
        }
        let in_channel: Vec<_> = rtc
            .into_iter()
            .filter(|(_, c, _)| *c == channel_name)
            .collect();
        if in_channel.is_empty() {
            return Err(TokenError::ChannelMismatch);
        }
        let matching: Vec<&Service> = in_channel
            .into_iter()
            .filter(|(_, _, uid)| uid.is_empty() || *uid == user_id)
            .map(|(s, _, _)| s)
            .collect();
        if matching.is_empty() {
            return Err(TokenError::UserIdMismatch);
        }
        self.grant(&matching, privilege, now, opts)
    }

    /// The privilege check (T29–T31) over the services that matched, and the effective
    /// expiry (T53). Several matching services: the one lasting longest decides.
    fn grant(
        &self,
        matching: &[&Service],
        privilege: u16,
        now: u64,
        opts: &VerifyOptions,
    ) -> Result<Credential, TokenError> {
        let token_end = self.honoured_until(opts);
        let mut best: Option<u64> = None;
        let mut lapsed = false;
        for service in matching {
            let Some(&value) = service.privileges().get(&privilege) else {
                continue;
            };
            let end = if value == 0 {
                token_end
            } else {
                token_end.min(u64::from(self.issue_ts) + u64::from(value))
            };
            if now >= end {
                lapsed = true;
                continue;
            }
            best = Some(best.map_or(end, |b| b.max(end)));
        }
        match best {
            Some(expires_at) => Ok(Credential { expires_at }),
            None if lapsed => Err(TokenError::PrivilegeExpired),
            None => Err(TokenError::PrivilegeMissing),
        }
    }
}
