//! The credentials' clock of a connection's session: the will-expire push ahead of the
//! login token's or a stream channel's RTC token's expiry (T54), and the expiry itself
//! (T55): an expired login token ends the session, an expired RTC token takes the
//! member out of that channel. Also publisher authentication (T51): whether a member's
//! RTC token lets it take a topic role or publish in a topic.
//!
//! Every "now" here is the node's token clock (`node/clock.rs`), and expiries are
//! wall-clock instants: a deadline is turned into an `Instant` afresh on each call, and
//! the node's wheel rings every connection when the wall clock jumps, so a forward
//! jump past an expiry ends the session within a second and a backward one never ends
//! it early (docs/token.md, "Clock jumps").

use super::client::Client;
use super::core::{PublishGrant, Session};
use super::hooks::Departure;
use super::lifecycle;
use crate::wire::Failure;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_protocol::pb::{self, server_message::Body};
use switchboard_protocol::{DisconnectCode, ErrorCode};

/// Converts a wall-clock time in seconds since the epoch to an `Instant`, given the
/// wall clock's reading `now_ms` (milliseconds) at about `Instant::now()`.
fn instant_at(epoch_secs: u64, now_ms: u64) -> Instant {
    let target = epoch_secs.saturating_mul(1000);
    Instant::now() + Duration::from_millis(target.saturating_sub(now_ms))
}

impl Session {
    /// Publisher authentication (T51): succeeds unless the app turns it on and the
    /// stream channel's RTC token lacks publishDataStream or it has lapsed. A channel
    /// not joined passes here (the caller refuses it with its own code). `now_secs`:
    /// the node's token clock.
    pub(crate) fn check_publisher(&self, channel: &str, now_secs: u64) -> Result<(), Failure> {
        let grant = match self.lock().streams.get(channel) {
            Some(m) => m.publish_grant.clone(),
            None => return Ok(()),
        };
        match grant {
            PublishGrant::NotRequired => Ok(()),
            PublishGrant::Until(end) if now_secs < end => Ok(()),
            PublishGrant::Until(_) => Err(Failure::new(
                ErrorCode::TokenExpired,
                format!(
                    "publisher authentication is on and publishDataStream of the RTC \
                     token of stream channel {channel} has lapsed (T51): renew the token"
                ),
            )),
            PublishGrant::Refused(code, reason) => Err(Failure::new(
                ErrorCode::from_i32(code).unwrap_or(ErrorCode::InvalidToken),
                reason,
            )),
        }
    }
}

impl Client {
    /// The next token event of the login token or a stream channel's token: a
    /// will-expire push (T54) or an expiry (T55).
    pub fn token_deadline(&self) -> Option<Instant> {
        let a = self.attached.as_ref()?;
        let lead = self.node.config.token_will_expire_lead.as_secs();
        let due = |expires: Option<u64>, sent: bool| {
            expires.map(|e| if sent { e } else { e.saturating_sub(lead) })
        };
        let st = a.session.lock();
        let login = due(st.token_expires_at, st.will_expire_sent);
        let streams = st
            .streams
            .values()
            .filter_map(|m| due(m.token_expires_at, m.will_expire_sent));
        let now_ms = self.node.config.clock.now_ms();
        login
            .into_iter()
            .chain(streams)
            .min()
            .map(|at| instant_at(at, now_ms))
    }

    /// Fires the token events due at [`Client::token_deadline`]: will-expire pushes,
    /// then expiries (of the session for the login token, of the membership for a
    /// stream channel's).
    pub async fn on_token_deadline(&mut self) {
        let Some(a) = &self.attached else { return };
        let session = a.session.clone();
        let lead = self.node.config.token_will_expire_lead.as_secs();
        let now = self.node.config.clock.now_secs();
        let mut warn = Vec::new();
        let mut expired_streams = Vec::new();
        let mut login_expired = false;
        {
            let mut st = session.lock();
            if let Some(expires) = st.token_expires_at {
                if now >= expires && st.will_expire_sent {
                    login_expired = true;
                } else if !st.will_expire_sent && now >= expires.saturating_sub(lead) {
                    st.will_expire_sent = true;
                    warn.push((String::new(), expires));
                }
            }
            for (name, m) in st.streams.iter_mut() {
                let Some(expires) = m.token_expires_at else {
                    continue;
                };
                if now >= expires && m.will_expire_sent {
                    expired_streams.push(name.clone());
                } else if !m.will_expire_sent && now >= expires.saturating_sub(lead) {
                    m.will_expire_sent = true;
                    warn.push((name.to_string(), expires));
                }
            }
        }
        for (channel_name, expires_at) in warn {
            self.push(Body::TokenWillExpire(pb::TokenWillExpire {
                channel_name,
                expires_at,
            }));
        }
        for name in expired_streams {
            self.expire_stream(&session, &name).await;
        }
        if login_expired {
            let reason = "the login token expired and was not renewed (R42)".to_string();
            lifecycle::end(
                &self.node,
                &session,
                Some((DisconnectCode::TokenExpired, reason)),
            )
            .await;
        }
    }

    /// The channel's RTC token lapsed unrenewed (T55): the member leaves it, and is told.
    pub(crate) async fn expire_stream(&mut self, session: &Arc<Session>, name: &str) {
        if session.lock().streams.remove(name).is_none() {
            return;
        }
        let key = session.stream_key(name);
        lifecycle::leave_channel(&self.node, session, &key, Departure::Leave).await;
        self.push(Body::ChannelLeft(pb::ChannelLeft {
            channel_type: pb::ChannelType::Stream as i32,
            channel_name: name.to_string(),
            code: ErrorCode::TokenExpired.as_i32(),
            reason: format!(
                "the RTC token of stream channel {name} expired and was not renewed (T55)"
            ),
        }));
    }
}
