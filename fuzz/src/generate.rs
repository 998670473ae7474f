//! Structured inputs: turns fuzz bytes into `ClientMessage`s of every request type, with
//! names, users, tokens and numbers drawn mostly from values that pass validation (so a
//! request gets past its first check) and sometimes from values at or past a limit or
//! plainly hostile, so that each handler's validation is reached.

use bytes::Bytes;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use std::collections::HashMap;
use switchboard_protocol::pb::{self, ClientMessage, client_message::Body};

use crate::{APP_ID, CERT, OPEN_APP_ID, SENTINEL, UNKNOWN_APP_ID, USER_A, USER_B};

/// What the generator may refer to besides constants.
#[derive(Debug, Default, Clone)]
pub struct Context {
    /// Session ids the server handed out (for resume attempts, also of another user).
    pub sessions: Vec<String>,
    /// Wall clock, seconds (token issue time).
    pub now: u32,
}

/// Channel names that pass validation, shared by every request so they meet.
const CHANNELS: &[&str] = &["room", "lobby", "c1", "fz-a", "fz-b"];
/// Names that break one naming rule each (api.md R2-R6 and the channel-name rules).
const BAD_NAMES: &[&str] = &[
    " ",
    "a b",
    "a,b",
    "*",
    "é",
    "\u{0}",
    "ab\u{7f}",
    "_",
    "-",
    ".",
    "a\nb",
    "\u{202e}x",
];
/// User ids: the two harness users, other valid ones, and hostile ones.
const USERS: &[&str] = &[USER_A, USER_B, "fz-c", "alice", "", "*"];
/// Metadata and state keys.
const KEYS: &[&str] = &["k", "k2", "score", "", "\u{0}"];
/// Lock names.
const LOCKS: &[&str] = &["l1", "l2", ""];

/// A name: usually a shared valid one, sometimes empty, at or past the length limit
/// (64 bytes), breaking a rule, or arbitrary.
pub fn name(u: &mut Unstructured) -> Result<String> {
    Ok(match u.int_in_range(0..=11u8)? {
        0..=4 => (*u.choose(CHANNELS)?).to_string(),
        5 => String::new(),
        6 => "n".repeat(64),
        7 => "n".repeat(65),
        8 => (*u.choose(BAD_NAMES)?).to_string(),
        9 => {
            let n = u.int_in_range(1..=3usize)?;
            (0..n)
                .map(|_| Ok(*u.choose(&['a', 'b', 'c'])?))
                .collect::<Result<String>>()?
        }
        _ => short_string(u, 80)?,
    })
}

/// An arbitrary string cut to `max` characters.
fn short_string(u: &mut Unstructured, max: usize) -> Result<String> {
    let s: String = u.arbitrary()?;
    Ok(s.chars().take(max).collect())
}

/// A user id: mostly from [`USERS`], sometimes a name.
pub fn user(u: &mut Unstructured) -> Result<String> {
    if u.ratio(3, 4)? {
        Ok((*u.choose(USERS)?).to_string())
    } else {
        name(u)
    }
}

/// A channel type: the three real ones, unspecified, unknown, or any number.
pub fn channel_type(u: &mut Unstructured) -> Result<i32> {
    Ok(match u.int_in_range(0..=7u8)? {
        0 | 1 => pb::ChannelType::Message as i32,
        2 | 3 => pb::ChannelType::Stream as i32,
        4 => pb::ChannelType::User as i32,
        5 => pb::ChannelType::Unspecified as i32,
        6 => 4,
        _ => u.arbitrary()?,
    })
}

/// A message type: the real ones or any number.
fn message_type(u: &mut Unstructured) -> Result<i32> {
    Ok(match u.int_in_range(0..=4u8)? {
        0 | 1 => pb::MessageType::String as i32,
        2 => pb::MessageType::Binary as i32,
        3 => pb::MessageType::Unspecified as i32,
        _ => u.arbitrary()?,
    })
}

/// A payload: small, empty, exactly the 32 KiB limit (R63), one byte past it, or up
/// to 1 KiB of fuzz bytes.
fn payload(u: &mut Unstructured) -> Result<Bytes> {
    let limit = switchboard_protocol::DEFAULT_MAX_PAYLOAD_BYTES;
    Ok(match u.int_in_range(0..=7u8)? {
        0 => Bytes::new(),
        1 => Bytes::from(vec![b'p'; limit]),
        2 => Bytes::from(vec![b'p'; limit + 1]),
        3 => Bytes::from_static(b"\xff\xfe not utf-8"),
        _ => {
            let n = u.int_in_range(0..=1024usize)?;
            Bytes::copy_from_slice(u.bytes(n.min(u.len()))?)
        }
    })
}

/// A custom type: none, valid, exactly 32 bytes, past the limit (R66), or arbitrary.
fn custom_type(u: &mut Unstructured) -> Result<String> {
    Ok(match u.int_in_range(0..=5u8)? {
        0 | 1 => String::new(),
        2 => "json".into(),
        3 => "t".repeat(32),
        4 => "t".repeat(33),
        _ => short_string(u, 40)?,
    })
}

/// A small number, a boundary, or any `u32`.
fn number(u: &mut Unstructured) -> Result<u32> {
    Ok(match u.int_in_range(0..=5u8)? {
        0 => 0,
        1 => u.int_in_range(1..=100)?,
        2 => u32::MAX,
        3 => u.int_in_range(1..=5)?,
        _ => u.arbitrary()?,
    })
}

/// A small number, a boundary, or any `u64`.
fn number64(u: &mut Unstructured) -> Result<u64> {
    Ok(match u.int_in_range(0..=4u8)? {
        0 => 0,
        1 => u.int_in_range(1..=100)?,
        2 => u64::MAX,
        _ => u.arbitrary()?,
    })
}

/// A token: none, the app id, a valid RTM or RTC token (for a chosen user and
/// channel), one of another app, an expired one, or garbage.
pub fn token(u: &mut Unstructured, ctx: &Context) -> Result<String> {
    let now = ctx.now;
    Ok(match u.int_in_range(0..=9u8)? {
        0 => String::new(),
        1 => APP_ID.into(),
        2 => OPEN_APP_ID.into(),
        3 | 4 => {
            let who = user(u)?;
            switchboard_token::build_rtm_token(APP_ID, CERT, &who, 3600, now).unwrap_or_default()
        }
        5 | 6 => {
            let who = user(u)?;
            let channel = name(u)?;
            switchboard_token::build_rtc_token(
                APP_ID,
                CERT,
                &channel,
                &who,
                switchboard_token::RtcRole::Publisher,
                3600,
                3600,
                now,
            )
            .unwrap_or_default()
        }
        7 => {
            // Expired long ago, or expiring within the will-expire lead.
            let who = user(u)?;
            let (expire, issued) = if u.arbitrary()? {
                (10, now.saturating_sub(100))
            } else {
                (u.int_in_range(1..=40)?, now)
            };
            switchboard_token::build_rtm_token(APP_ID, CERT, &who, expire, issued)
                .unwrap_or_default()
        }
        8 => format!("007{}", short_string(u, 300)?),
        _ => short_string(u, 300)?,
    })
}

fn state_map(u: &mut Unstructured) -> Result<HashMap<String, String>> {
    let n = u.int_in_range(0..=3usize)?;
    let mut m = HashMap::new();
    for _ in 0..n {
        let k = if u.ratio(3, 4)? {
            (*u.choose(KEYS)?).to_string()
        } else {
            short_string(u, 40)?
        };
        let v = match u.int_in_range(0..=3u8)? {
            0 => String::new(),
            1 => "v".repeat(8 * 1024 + 1),
            _ => short_string(u, 40)?,
        };
        m.insert(k, v);
    }
    Ok(m)
}

fn position(u: &mut Unstructured) -> Result<Option<pb::StreamPosition>> {
    if u.ratio(2, 3)? {
        return Ok(None);
    }
    Ok(Some(pb::StreamPosition {
        epoch: number64(u)?,
        offset: number64(u)?,
    }))
}

fn users(u: &mut Unstructured) -> Result<Vec<String>> {
    let n = u.int_in_range(0..=3usize)?;
    (0..n).map(|_| user(u)).collect()
}

fn topic(u: &mut Unstructured) -> Result<String> {
    if u.ratio(2, 3)? {
        Ok((*u.choose(&["t1", "t2"])?).to_string())
    } else {
        name(u)
    }
}

fn join_topic(u: &mut Unstructured) -> Result<pb::JoinTopicRequest> {
    Ok(pb::JoinTopicRequest {
        channel_name: name(u)?,
        topic_name: topic(u)?,
        meta: match u.int_in_range(0..=3u8)? {
            0 => "m".repeat(257),
            _ => short_string(u, 40)?,
        },
        qos: u.int_in_range(0..=2)?,
        priority: if u.arbitrary()? {
            Some(u.int_in_range(0..=4)?)
        } else {
            None
        },
        sync_with_media: u.arbitrary()?,
    })
}

fn subscribe_topic(u: &mut Unstructured) -> Result<pb::SubscribeTopicRequest> {
    Ok(pb::SubscribeTopicRequest {
        channel_name: name(u)?,
        topic_name: topic(u)?,
        users: users(u)?,
    })
}

fn key(u: &mut Unstructured) -> Result<String> {
    if u.ratio(3, 4)? {
        Ok((*u.choose(KEYS)?).to_string())
    } else {
        short_string(u, 40)
    }
}

fn lock(u: &mut Unstructured) -> Result<String> {
    if u.ratio(3, 4)? {
        Ok((*u.choose(LOCKS)?).to_string())
    } else {
        name(u)
    }
}

fn metadata_write(u: &mut Unstructured) -> Result<pb::MetadataWriteRequest> {
    let n = u.int_in_range(0..=4usize)?;
    let mut items = Vec::with_capacity(n);
    for _ in 0..n {
        items.push(pb::MetadataItem {
            key: key(u)?,
            value: match u.int_in_range(0..=4u8)? {
                0 => String::new(),
                1 => "v".repeat(8 * 1024 + 1),
                _ => short_string(u, 60)?,
            },
            revision: if u.arbitrary()? {
                Some(u.int_in_range(-2..=5)?)
            } else {
                None
            },
        });
    }
    Ok(pb::MetadataWriteRequest {
        channel_type: channel_type(u)?,
        channel_name: if u.ratio(1, 3)? { user(u)? } else { name(u)? },
        items,
        major_revision: if u.arbitrary()? {
            Some(u.int_in_range(-2..=5)?)
        } else {
            None
        },
        lock_name: if u.ratio(3, 4)? {
            String::new()
        } else {
            lock(u)?
        },
        add_timestamp: u.arbitrary()?,
        add_user_id: u.arbitrary()?,
    })
}

/// A login request: a known, unknown or malformed app id, a user, a token, any
/// heartbeat and presence settings, and sometimes a resume of a known session.
pub fn login(u: &mut Unstructured, ctx: &Context) -> Result<pb::LoginRequest> {
    let app_id = match u.int_in_range(0..=5u8)? {
        0 | 1 => APP_ID.to_string(),
        2 | 3 => OPEN_APP_ID.to_string(),
        4 => UNKNOWN_APP_ID.to_string(),
        _ => short_string(u, 40)?,
    };
    let session_id = match u.int_in_range(0..=3u8)? {
        0 | 1 => String::new(),
        2 if !ctx.sessions.is_empty() => u.choose(&ctx.sessions)?.clone(),
        _ => short_string(u, 40)?,
    };
    let n = u.int_in_range(0..=2usize)?;
    let mut positions = Vec::with_capacity(n);
    for _ in 0..n {
        positions.push(pb::ChannelPosition {
            channel_type: channel_type(u)?,
            channel_name: name(u)?,
            topic_name: if u.arbitrary()? {
                String::new()
            } else {
                topic(u)?
            },
            position: position(u)?,
        });
    }
    Ok(pb::LoginRequest {
        app_id,
        user_id: user(u)?,
        token: token(u, ctx)?,
        heartbeat_interval: number(u)?,
        presence_timeout: number(u)?,
        session_id,
        positions,
        sdk: short_string(u, 20)?,
    })
}

/// One request body of any type (login included, which a logged-in connection must
/// refuse).
pub fn body(u: &mut Unstructured, ctx: &Context) -> Result<Body> {
    Ok(match u.int_in_range(0..=33u8)? {
        0 => Body::Login(login(u, ctx)?),
        // Rarely a logout: it ends the session and with it the state that later
        // requests would meet (locks held, channels joined).
        1 if u.ratio(1, 8)? => Body::Logout(pb::LogoutRequest {}),
        1 => Body::Heartbeat(pb::Heartbeat {}),
        2 => Body::RenewToken(pb::RenewTokenRequest {
            token: token(u, ctx)?,
            channel_name: if u.arbitrary()? {
                String::new()
            } else {
                name(u)?
            },
        }),
        3 => Body::Subscribe(pb::SubscribeRequest {
            channel_name: name(u)?,
            with_message: u.arbitrary()?,
            with_presence: u.arbitrary()?,
            be_quiet: u.arbitrary()?,
            with_metadata: u.arbitrary()?,
            with_lock: u.arbitrary()?,
            since: position(u)?,
            state: state_map(u)?,
        }),
        4 => Body::Unsubscribe(pb::UnsubscribeRequest {
            channel_name: name(u)?,
        }),
        5 | 6 => Body::Publish(pb::PublishRequest {
            channel_type: channel_type(u)?,
            channel_name: if u.ratio(1, 4)? { user(u)? } else { name(u)? },
            message_type: message_type(u)?,
            payload: payload(u)?,
            custom_type: custom_type(u)?,
            store_in_history: u.arbitrary()?,
            idempotency_key: match u.int_in_range(0..=3u8)? {
                0 | 1 => String::new(),
                2 => "key-1".into(),
                _ => short_string(u, 80)?,
            },
        }),
        7 => Body::Heartbeat(pb::Heartbeat {}),
        8 => {
            let n = u.int_in_range(0..=2usize)?;
            let topics = (0..n).map(|_| join_topic(u)).collect::<Result<_>>()?;
            let n = u.int_in_range(0..=2usize)?;
            let subscriptions = (0..n).map(|_| subscribe_topic(u)).collect::<Result<_>>()?;
            Body::Join(pb::JoinRequest {
                channel_name: name(u)?,
                token: token(u, ctx)?,
                with_presence: u.arbitrary()?,
                be_quiet: u.arbitrary()?,
                with_metadata: u.arbitrary()?,
                with_lock: u.arbitrary()?,
                since: position(u)?,
                topics,
                subscriptions,
                state: state_map(u)?,
            })
        }
        9 => Body::Leave(pb::LeaveRequest {
            channel_name: name(u)?,
        }),
        10 => Body::JoinTopic(join_topic(u)?),
        11 => Body::LeaveTopic(pb::LeaveTopicRequest {
            channel_name: name(u)?,
            topic_name: topic(u)?,
        }),
        12 => Body::PublishTopicMessage(pb::PublishTopicMessageRequest {
            channel_name: name(u)?,
            topic_name: topic(u)?,
            message_type: message_type(u)?,
            payload: payload(u)?,
            custom_type: custom_type(u)?,
            send_ts: number64(u)?,
            // 64 bytes is the default limit: longer keys are refused with −10014.
            idempotency_key: match u.int_in_range(0..=3u8)? {
                0 | 1 => String::new(),
                2 => "key-1".into(),
                _ => short_string(u, 80)?,
            },
        }),
        13 => Body::SubscribeTopic(subscribe_topic(u)?),
        14 => Body::UnsubscribeTopic(pb::UnsubscribeTopicRequest {
            channel_name: name(u)?,
            topic_name: topic(u)?,
            users: users(u)?,
        }),
        15 => Body::WhoNow(pb::WhoNowRequest {
            channel_type: channel_type(u)?,
            channel_name: name(u)?,
            include_user_id: u.arbitrary()?,
            include_state: u.arbitrary()?,
            page: match u.int_in_range(0..=2u8)? {
                0 => String::new(),
                _ => short_string(u, 60)?,
            },
        }),
        16 => Body::WhereNow(pb::WhereNowRequest { user_id: user(u)? }),
        17 => Body::SetState(pb::SetStateRequest {
            channel_type: channel_type(u)?,
            channel_name: name(u)?,
            states: state_map(u)?,
        }),
        18 => Body::GetState(pb::GetStateRequest {
            channel_type: channel_type(u)?,
            channel_name: name(u)?,
            user_id: user(u)?,
        }),
        19 => {
            let n = u.int_in_range(0..=3usize)?;
            Body::RemoveState(pb::RemoveStateRequest {
                channel_type: channel_type(u)?,
                channel_name: name(u)?,
                keys: (0..n).map(|_| key(u)).collect::<Result<_>>()?,
            })
        }
        20 => Body::SetMetadata(metadata_write(u)?),
        21 => Body::UpdateMetadata(metadata_write(u)?),
        22 => Body::RemoveMetadata(metadata_write(u)?),
        23 => Body::GetMetadata(pb::GetMetadataRequest {
            channel_type: channel_type(u)?,
            channel_name: if u.ratio(1, 3)? { user(u)? } else { name(u)? },
        }),
        24 => Body::SubscribeUserMetadata(pb::SubscribeUserMetadataRequest { user_id: user(u)? }),
        25 => {
            Body::UnsubscribeUserMetadata(pb::UnsubscribeUserMetadataRequest { user_id: user(u)? })
        }
        26 => Body::SetLock(pb::SetLockRequest {
            channel_type: channel_type(u)?,
            channel_name: name(u)?,
            lock_name: lock(u)?,
            ttl: number(u)?,
        }),
        27 => Body::RemoveLock(pb::RemoveLockRequest {
            channel_type: channel_type(u)?,
            channel_name: name(u)?,
            lock_name: lock(u)?,
        }),
        28 => Body::AcquireLock(pb::AcquireLockRequest {
            channel_type: channel_type(u)?,
            channel_name: name(u)?,
            lock_name: lock(u)?,
            retry: u.arbitrary()?,
        }),
        29 => Body::ReleaseLock(pb::ReleaseLockRequest {
            channel_type: channel_type(u)?,
            channel_name: name(u)?,
            lock_name: lock(u)?,
        }),
        30 => Body::RevokeLock(pb::RevokeLockRequest {
            channel_type: channel_type(u)?,
            channel_name: name(u)?,
            lock_name: lock(u)?,
            owner: user(u)?,
        }),
        31 => Body::GetLock(pb::GetLockRequest {
            channel_type: channel_type(u)?,
            channel_name: name(u)?,
        }),
        _ => Body::GetMessages(pb::GetMessagesRequest {
            channel_type: channel_type(u)?,
            channel_name: if u.ratio(1, 4)? { user(u)? } else { name(u)? },
            message_count: number(u)?,
            start: number64(u)?,
            end: number64(u)?,
        }),
    })
}

/// A request id: usually fresh and small, sometimes 0 or a repeat.
fn id(u: &mut Unstructured, next: &mut u32) -> Result<u32> {
    *next += 1;
    Ok(match u.int_in_range(0..=9u8)? {
        0 => 0,
        1 => 1,
        // Never the sentinel's id.
        2 => u.int_in_range(0..=SENTINEL - 1)?,
        _ => *next,
    })
}

/// One to eight messages for one frame; a missing body (an unknown request type) now
/// and then.
pub fn messages(u: &mut Unstructured, ctx: &Context) -> Result<Vec<ClientMessage>> {
    let n = u.int_in_range(1..=8usize)?;
    let mut next = 0;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let id = id(u, &mut next)?;
        let body = if u.ratio(1, 50)? {
            None
        } else {
            Some(body(u, ctx)?)
        };
        out.push(ClientMessage { id, body });
        if u.is_empty() {
            break;
        }
    }
    Ok(out)
}

/// A frame for a connection that has not logged in: usually a login first.
pub fn first_messages(u: &mut Unstructured, ctx: &Context) -> Result<Vec<ClientMessage>> {
    let mut out = Vec::new();
    if u.ratio(7, 8)? {
        out.push(ClientMessage {
            id: 1,
            body: Some(Body::Login(login(u, ctx)?)),
        });
    }
    if !u.is_empty() {
        out.extend(messages(u, ctx)?);
    }
    Ok(out)
}

/// The operation a reply body answers (for the tally of distinct replies).
pub fn reply_name(body: &pb::server_message::Body) -> &'static str {
    use pb::server_message::Body as S;
    match body {
        S::Error(_) => "error",
        S::Login(_) => "login",
        S::Logout(_) => "logout",
        S::RenewToken(_) => "renewToken",
        S::Subscribe(_) => "subscribe",
        S::Unsubscribe(_) => "unsubscribe",
        S::Publish(_) => "publish",
        S::Heartbeat(_) => "heartbeat",
        S::WhoNow(_) => "whoNow",
        S::WhereNow(_) => "whereNow",
        S::SetState(_) => "setState",
        S::GetState(_) => "getState",
        S::RemoveState(_) => "removeState",
        S::Join(_) => "join",
        S::Leave(_) => "leave",
        S::JoinTopic(_) => "joinTopic",
        S::LeaveTopic(_) => "leaveTopic",
        S::PublishTopicMessage(_) => "publishTopicMessage",
        S::SubscribeTopic(_) => "subscribeTopic",
        S::UnsubscribeTopic(_) => "unsubscribeTopic",
        S::SetMetadata(_) => "setMetadata",
        S::UpdateMetadata(_) => "updateMetadata",
        S::RemoveMetadata(_) => "removeMetadata",
        S::GetMetadata(_) => "getMetadata",
        S::SubscribeUserMetadata(_) => "subscribeUserMetadata",
        S::UnsubscribeUserMetadata(_) => "unsubscribeUserMetadata",
        S::SetLock(_) => "setLock",
        S::RemoveLock(_) => "removeLock",
        S::AcquireLock(_) => "acquireLock",
        S::ReleaseLock(_) => "releaseLock",
        S::RevokeLock(_) => "revokeLock",
        S::GetLock(_) => "getLock",
        S::GetMessages(_) => "getMessages",
        S::Message(_) => "push:message",
        S::Closing(_) => "push:closing",
        S::TokenWillExpire(_) => "push:tokenWillExpire",
        S::Presence(_) => "push:presence",
        S::Topic(_) => "push:topic",
        S::Storage(_) => "push:storage",
        S::Lock(_) => "push:lock",
        S::ChannelLeft(_) => "push:channelLeft",
    }
}
