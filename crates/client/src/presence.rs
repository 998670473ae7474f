//! `client.presence()`: who is in a MESSAGE or STREAM channel, where a user is, and the
//! members' temporary state (api.md §5, R116–R133). Presence events themselves arrive
//! on the event streams (`client.presence_events()`, `Subscription::presence()`,
//! `StreamChannel::presence_events()`, `client.events()`).
//!
//! State set for a channel the client is not in yet is kept by the server's session and
//! applied on entering (R129). The SDK keeps a copy of what it set, so that when its
//! session ended (a timeout, R119) and it reconnects into a new one, every channel is
//! entered again with its state (R54); logout forgets it, and so do unsubscribing and
//! leaving for that channel.

use crate::client::Client;
use crate::types::{ChannelType, RtmError, UserState, unexpected};
use std::collections::BTreeMap;
use switchboard_protocol::ErrorCode;
use switchboard_protocol::pb::{self, client_message, server_message};

/// Options of `who_now` (`WhoNowOptions`, R122).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhoNowOptions {
    /// List the members (default true); false = only `total_occupancy`.
    pub include_user_id: bool,
    /// Give each member's state (default false).
    pub include_state: bool,
    /// The `next_page` of the previous call; `None` = the first page.
    pub page: Option<String>,
}

impl Default for WhoNowOptions {
    fn default() -> Self {
        WhoNowOptions {
            include_user_id: true,
            include_state: false,
            page: None,
        }
    }
}

/// Reply of `who_now` (`WhoNowResponse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhoNowResponse {
    /// Server time, ms.
    pub timestamp: u64,
    /// Members on this page (R124); the whole count with `include_user_id: false`.
    pub total_occupancy: u32,
    /// The members on this page, ordered by user id (states empty unless asked for).
    pub occupants: Vec<UserState>,
    /// Empty on the last page; otherwise pass it as `page` (R123).
    pub next_page: String,
}

/// A channel a user is in (`ChannelDetail`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelDetail {
    /// The channel.
    pub channel_name: String,
    /// `Message` or `Stream`.
    pub channel_type: ChannelType,
}

/// Reply of `where_now` (`WhereNowResponse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhereNowResponse {
    /// Server time, ms.
    pub timestamp: u64,
    /// The channels where the user is visibly present (R126).
    pub channels: Vec<ChannelDetail>,
    /// `channels.len()`.
    pub total_channel: u32,
}

/// Reply of `set_state` (`SetStateResponse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetStateResponse {
    /// Server time, ms.
    pub timestamp: u64,
}

/// Reply of `remove_state` (`RemoveStateResponse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoveStateResponse {
    /// Server time, ms.
    pub timestamp: u64,
}

/// Reply of `get_state` (`GetStateResponse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetStateResponse {
    /// Server time, ms.
    pub timestamp: u64,
    /// The member asked about.
    pub user_id: String,
    /// Its state in the channel.
    pub states: BTreeMap<String, String>,
    /// `states.len()`.
    pub states_count: u32,
}

/// The presence handle (`RTMPresence`), from [`Client::presence`].
///
/// ```no_run
/// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::RtmError> {
/// use switchboard_client::{ChannelType, WhoNowOptions};
/// let presence = client.presence();
/// presence.set_state("lobby", ChannelType::Message, [("mood", "happy")]).await?;
/// let who = presence
///     .who_now("lobby", ChannelType::Message, WhoNowOptions { include_state: true, ..Default::default() })
///     .await?;
/// for member in who.occupants {
///     println!("{} {:?}", member.user_id, member.states);
/// }
/// let _channels = presence.where_now("bob").await?.channels;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Presence {
    pub(crate) client: Client,
}

/// The wire channel type of a presence call: MESSAGE or STREAM, else −10019 (R125).
fn presence_type(channel_type: ChannelType, op: &str) -> Result<i32, RtmError> {
    match channel_type {
        ChannelType::Message => Ok(pb::ChannelType::Message as i32),
        ChannelType::Stream => Ok(pb::ChannelType::Stream as i32),
        ChannelType::User => Err(RtmError::new(
            ErrorCode::InvalidChannelType,
            op,
            "presence takes channel type MESSAGE or STREAM (R125)",
        )),
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Presence {
    /// The members of `channel` (`whoNow`, R122–R124): one page of at most the app's
    /// page size, ordered by user id; follow `next_page` for the rest. Quiet members
    /// are not listed (R86).
    pub async fn who_now(
        &self,
        channel: &str,
        channel_type: ChannelType,
        options: WhoNowOptions,
    ) -> Result<WhoNowResponse, RtmError> {
        const OP: &str = "whoNow";
        let req = pb::WhoNowRequest {
            channel_type: presence_type(channel_type, OP)?,
            channel_name: channel.to_string(),
            include_user_id: Some(options.include_user_id),
            include_state: options.include_state,
            page: options.page.unwrap_or_default(),
        };
        match self
            .client
            .request(OP, client_message::Body::WhoNow(req))
            .await?
        {
            server_message::Body::WhoNow(r) => Ok(WhoNowResponse {
                timestamp: r.timestamp,
                total_occupancy: r.total_occupancy,
                occupants: r
                    .occupants
                    .into_iter()
                    .map(|u| UserState::new(u.user_id, u.states))
                    .collect(),
                next_page: r.next_page,
            }),
            _ => Err(unexpected(OP)),
        }
    }

    /// Same as [`Self::who_now`] (`getOnlineUsers`).
    pub async fn get_online_users(
        &self,
        channel: &str,
        channel_type: ChannelType,
        options: WhoNowOptions,
    ) -> Result<WhoNowResponse, RtmError> {
        self.who_now(channel, channel_type, options).await
    }

    /// The channels where `user_id` is visibly present (`whereNow`, R126; quiet
    /// memberships are not listed, R87).
    pub async fn where_now(&self, user_id: &str) -> Result<WhereNowResponse, RtmError> {
        const OP: &str = "whereNow";
        let req = pb::WhereNowRequest {
            user_id: user_id.to_string(),
        };
        match self
            .client
            .request(OP, client_message::Body::WhereNow(req))
            .await?
        {
            server_message::Body::WhereNow(r) => {
                let channels: Vec<ChannelDetail> = r
                    .channels
                    .into_iter()
                    .map(|c| ChannelDetail {
                        channel_name: c.channel_name,
                        channel_type: if c.channel_type == pb::ChannelType::Stream as i32 {
                            ChannelType::Stream
                        } else {
                            ChannelType::Message
                        },
                    })
                    .collect();
                Ok(WhereNowResponse {
                    timestamp: r.timestamp,
                    total_channel: count(channels.len()),
                    channels,
                })
            }
            _ => Err(unexpected(OP)),
        }
    }

    /// Same as [`Self::where_now`] (`getUserChannels`).
    pub async fn get_user_channels(&self, user_id: &str) -> Result<WhereNowResponse, RtmError> {
        self.where_now(user_id).await
    }

    /// Adds or overwrites keys of this client's state in `channel`, keeping the others
    /// (`setState`, R127, R128). Others with presence get REMOTE_STATE_CHANGED with the
    /// whole state (R120). Before subscribing/joining, the server keeps it and applies
    /// it on entering (R129); it is lost if the client logs out first.
    pub async fn set_state<K, V>(
        &self,
        channel: &str,
        channel_type: ChannelType,
        state: impl IntoIterator<Item = (K, V)>,
    ) -> Result<SetStateResponse, RtmError>
    where
        K: Into<String>,
        V: Into<String>,
    {
        const OP: &str = "setState";
        let states: Vec<(String, String)> = state
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let req = pb::SetStateRequest {
            channel_type: presence_type(channel_type, OP)?,
            channel_name: channel.to_string(),
            states: states.iter().cloned().collect(),
        };
        match self
            .client
            .request(OP, client_message::Body::SetState(req))
            .await?
        {
            server_message::Body::SetState(r) => {
                // Remembered for a new session (R54).
                self.client
                    .inner
                    .states()
                    .entry((channel_type, channel.to_string()))
                    .or_default()
                    .extend(states);
                Ok(SetStateResponse {
                    timestamp: r.timestamp,
                })
            }
            _ => Err(unexpected(OP)),
        }
    }

    /// The state of member `user_id` in `channel` (`getState`); not present (or quiet)
    /// → −13011 (R131).
    pub async fn get_state(
        &self,
        user_id: &str,
        channel: &str,
        channel_type: ChannelType,
    ) -> Result<GetStateResponse, RtmError> {
        const OP: &str = "getState";
        let req = pb::GetStateRequest {
            channel_type: presence_type(channel_type, OP)?,
            channel_name: channel.to_string(),
            user_id: user_id.to_string(),
        };
        match self
            .client
            .request(OP, client_message::Body::GetState(req))
            .await?
        {
            server_message::Body::GetState(r) => {
                let states: BTreeMap<String, String> = r.states.into_iter().collect();
                Ok(GetStateResponse {
                    timestamp: r.timestamp,
                    user_id: r.user_id,
                    states_count: count(states.len()),
                    states,
                })
            }
            _ => Err(unexpected(OP)),
        }
    }

    /// Removes the listed keys of this client's state in `channel`, or with `None` (or
    /// an empty list) all of it (`removeState`, R130); a key listed twice → −13010.
    pub async fn remove_state(
        &self,
        channel: &str,
        channel_type: ChannelType,
        keys: Option<Vec<String>>,
    ) -> Result<RemoveStateResponse, RtmError> {
        const OP: &str = "removeState";
        let keys = keys.unwrap_or_default();
        let req = pb::RemoveStateRequest {
            channel_type: presence_type(channel_type, OP)?,
            channel_name: channel.to_string(),
            keys: keys.clone(),
        };
        match self
            .client
            .request(OP, client_message::Body::RemoveState(req))
            .await?
        {
            server_message::Body::RemoveState(r) => {
                let mut remembered = self.client.inner.states();
                let key = (channel_type, channel.to_string());
                if keys.is_empty() {
                    remembered.remove(&key);
                } else if let Some(m) = remembered.get_mut(&key) {
                    for k in &keys {
                        m.remove(k);
                    }
                }
                Ok(RemoveStateResponse {
                    timestamp: r.timestamp,
                })
            }
            _ => Err(unexpected(OP)),
        }
    }
}

impl Client {
    /// The presence handle (api.md §5).
    pub fn presence(&self) -> Presence {
        Presence {
            client: self.clone(),
        }
    }
}
