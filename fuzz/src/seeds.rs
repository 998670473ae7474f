//! The seed corpus: one valid request of each type (and a few multi-message frames and
//! server messages) and the token vectors as the inputs the targets start from, written to
//! `fuzz/corpus/` by the `make_seeds` binary (see its doc).

use bytes::{Bytes, BytesMut};
use prost::Message;
use switchboard_protocol::frame;
use switchboard_protocol::pb::{self, ClientMessage, ServerMessage, client_message::Body};

use crate::{APP_ID, CERT, OPEN_APP_ID};

/// Issue time of the seed tokens (fixed, so the seeds do not change on every run) and
/// a lifetime that keeps them valid for years.
const SEED_ISSUE_TS: u32 = 1_780_000_000;
const SEED_EXPIRE: u32 = 20 * 365 * 24 * 3600;

fn msg(id: u32, body: Body) -> ClientMessage {
    ClientMessage {
        id,
        body: Some(body),
    }
}

const MESSAGE: i32 = pb::ChannelType::Message as i32;
const STREAM: i32 = pb::ChannelType::Stream as i32;
const USER: i32 = pb::ChannelType::User as i32;

/// One valid request of each type, named by operation.
pub fn requests() -> Vec<(&'static str, ClientMessage)> {
    let login = |app: &str, user: &str, token: String| {
        Body::Login(pb::LoginRequest {
            app_id: app.into(),
            user_id: user.into(),
            token,
            heartbeat_interval: 30,
            presence_timeout: 10,
            sdk: "fuzz-seed".into(),
            ..Default::default()
        })
    };
    let rtm = switchboard_token::build_rtm_token(APP_ID, CERT, "fz-c", SEED_EXPIRE, SEED_ISSUE_TS)
        .expect("token");
    let rtc = switchboard_token::build_rtc_token(
        APP_ID,
        CERT,
        "room",
        "fz-a",
        switchboard_token::RtcRole::Publisher,
        SEED_EXPIRE,
        SEED_EXPIRE,
        SEED_ISSUE_TS,
    )
    .expect("token");
    let item = |k: &str, v: &str| pb::MetadataItem {
        key: k.into(),
        value: v.into(),
        revision: None,
    };
    let lock = |l: &str| (MESSAGE, "room".to_string(), l.to_string());
    let (lt, lc, ln) = lock("l1");
    vec![
        ("login_certified", msg(1, login(APP_ID, "fz-c", rtm))),
        (
            "login_open",
            msg(1, login(OPEN_APP_ID, "fz-d", String::new())),
        ),
        ("logout", msg(2, Body::Logout(pb::LogoutRequest {}))),
        (
            "renew_token",
            msg(
                3,
                Body::RenewToken(pb::RenewTokenRequest {
                    token: rtc.clone(),
                    channel_name: String::new(),
                }),
            ),
        ),
        (
            "subscribe",
            msg(
                4,
                Body::Subscribe(pb::SubscribeRequest {
                    channel_name: "room".into(),
                    with_message: Some(true),
                    with_presence: Some(true),
                    with_metadata: Some(true),
                    with_lock: Some(true),
                    state: [("k".to_string(), "v".to_string())].into(),
                    ..Default::default()
                }),
            ),
        ),
        (
            "unsubscribe",
            msg(
                5,
                Body::Unsubscribe(pb::UnsubscribeRequest {
                    channel_name: "room".into(),
                }),
            ),
        ),
        (
            "publish",
            msg(
                6,
                Body::Publish(pb::PublishRequest {
                    channel_type: MESSAGE,
                    channel_name: "room".into(),
                    message_type: pb::MessageType::String as i32,
                    payload: Bytes::from_static(b"hello"),
                    custom_type: "json".into(),
                    store_in_history: true,
                    idempotency_key: "key-1".into(),
                }),
            ),
        ),
        (
            "publish_user",
            msg(
                7,
                Body::Publish(pb::PublishRequest {
                    channel_type: USER,
                    channel_name: "fz-b".into(),
                    message_type: pb::MessageType::Binary as i32,
                    payload: Bytes::from_static(b"\x00\x01"),
                    ..Default::default()
                }),
            ),
        ),
        ("heartbeat", msg(8, Body::Heartbeat(pb::Heartbeat {}))),
        (
            "join",
            msg(
                9,
                Body::Join(pb::JoinRequest {
                    channel_name: "room".into(),
                    token: rtc,
                    with_presence: Some(true),
                    topics: vec![pb::JoinTopicRequest {
                        channel_name: "room".into(),
                        topic_name: "t1".into(),
                        ..Default::default()
                    }],
                    subscriptions: vec![pb::SubscribeTopicRequest {
                        channel_name: "room".into(),
                        topic_name: "t1".into(),
                        users: vec!["fz-b".into()],
                    }],
                    ..Default::default()
                }),
            ),
        ),
        (
            "leave",
            msg(
                10,
                Body::Leave(pb::LeaveRequest {
                    channel_name: "room".into(),
                }),
            ),
        ),
        (
            "join_topic",
            msg(
                11,
                Body::JoinTopic(pb::JoinTopicRequest {
                    channel_name: "room".into(),
                    topic_name: "t1".into(),
                    meta: "m".into(),
                    qos: 1,
                    priority: Some(2),
                    sync_with_media: false,
                }),
            ),
        ),
        (
            "leave_topic",
            msg(
                12,
                Body::LeaveTopic(pb::LeaveTopicRequest {
                    channel_name: "room".into(),
                    topic_name: "t1".into(),
                }),
            ),
        ),
        (
            "publish_topic_message",
            msg(
                13,
                Body::PublishTopicMessage(pb::PublishTopicMessageRequest {
                    channel_name: "room".into(),
                    topic_name: "t1".into(),
                    message_type: pb::MessageType::String as i32,
                    payload: Bytes::from_static(b"hi"),
                    custom_type: String::new(),
                    send_ts: 1,
                    idempotency_key: "k1".into(),
                }),
            ),
        ),
        (
            "subscribe_topic",
            msg(
                14,
                Body::SubscribeTopic(pb::SubscribeTopicRequest {
                    channel_name: "room".into(),
                    topic_name: "t1".into(),
                    users: vec!["fz-a".into(), "fz-b".into()],
                }),
            ),
        ),
        (
            "unsubscribe_topic",
            msg(
                15,
                Body::UnsubscribeTopic(pb::UnsubscribeTopicRequest {
                    channel_name: "room".into(),
                    topic_name: "t1".into(),
                    users: vec!["fz-b".into()],
                }),
            ),
        ),
        (
            "who_now",
            msg(
                16,
                Body::WhoNow(pb::WhoNowRequest {
                    channel_type: MESSAGE,
                    channel_name: "room".into(),
                    include_user_id: Some(true),
                    include_state: true,
                    page: String::new(),
                }),
            ),
        ),
        (
            "where_now",
            msg(
                17,
                Body::WhereNow(pb::WhereNowRequest {
                    user_id: "fz-a".into(),
                }),
            ),
        ),
        (
            "set_state",
            msg(
                18,
                Body::SetState(pb::SetStateRequest {
                    channel_type: MESSAGE,
                    channel_name: "room".into(),
                    states: [("k".to_string(), "v".to_string())].into(),
                }),
            ),
        ),
        (
            "get_state",
            msg(
                19,
                Body::GetState(pb::GetStateRequest {
                    channel_type: MESSAGE,
                    channel_name: "room".into(),
                    user_id: "fz-a".into(),
                }),
            ),
        ),
        (
            "remove_state",
            msg(
                20,
                Body::RemoveState(pb::RemoveStateRequest {
                    channel_type: MESSAGE,
                    channel_name: "room".into(),
                    keys: vec!["k".into()],
                }),
            ),
        ),
        (
            "set_metadata",
            msg(
                21,
                Body::SetMetadata(pb::MetadataWriteRequest {
                    channel_type: MESSAGE,
                    channel_name: "room".into(),
                    items: vec![item("k", "v")],
                    add_timestamp: true,
                    add_user_id: true,
                    ..Default::default()
                }),
            ),
        ),
        (
            "update_metadata",
            msg(
                22,
                Body::UpdateMetadata(pb::MetadataWriteRequest {
                    channel_type: USER,
                    channel_name: "fz-a".into(),
                    items: vec![item("k", "v2")],
                    major_revision: Some(-1),
                    ..Default::default()
                }),
            ),
        ),
        (
            "remove_metadata",
            msg(
                23,
                Body::RemoveMetadata(pb::MetadataWriteRequest {
                    channel_type: MESSAGE,
                    channel_name: "room".into(),
                    items: vec![item("k", "")],
                    lock_name: "l1".into(),
                    ..Default::default()
                }),
            ),
        ),
        (
            "get_metadata",
            msg(
                24,
                Body::GetMetadata(pb::GetMetadataRequest {
                    channel_type: STREAM,
                    channel_name: "room".into(),
                }),
            ),
        ),
        (
            "subscribe_user_metadata",
            msg(
                25,
                Body::SubscribeUserMetadata(pb::SubscribeUserMetadataRequest {
                    user_id: "fz-b".into(),
                }),
            ),
        ),
        (
            "unsubscribe_user_metadata",
            msg(
                26,
                Body::UnsubscribeUserMetadata(pb::UnsubscribeUserMetadataRequest {
                    user_id: "fz-b".into(),
                }),
            ),
        ),
        (
            "set_lock",
            msg(
                27,
                Body::SetLock(pb::SetLockRequest {
                    channel_type: lt,
                    channel_name: lc.clone(),
                    lock_name: ln.clone(),
                    ttl: 10,
                }),
            ),
        ),
        (
            "acquire_lock",
            msg(
                28,
                Body::AcquireLock(pb::AcquireLockRequest {
                    channel_type: lt,
                    channel_name: lc.clone(),
                    lock_name: ln.clone(),
                    retry: true,
                }),
            ),
        ),
        (
            "release_lock",
            msg(
                29,
                Body::ReleaseLock(pb::ReleaseLockRequest {
                    channel_type: lt,
                    channel_name: lc.clone(),
                    lock_name: ln.clone(),
                }),
            ),
        ),
        (
            "revoke_lock",
            msg(
                30,
                Body::RevokeLock(pb::RevokeLockRequest {
                    channel_type: lt,
                    channel_name: lc.clone(),
                    lock_name: ln.clone(),
                    owner: "fz-b".into(),
                }),
            ),
        ),
        (
            "remove_lock",
            msg(
                31,
                Body::RemoveLock(pb::RemoveLockRequest {
                    channel_type: lt,
                    channel_name: lc.clone(),
                    lock_name: ln,
                }),
            ),
        ),
        (
            "get_lock",
            msg(
                32,
                Body::GetLock(pb::GetLockRequest {
                    channel_type: lt,
                    channel_name: lc,
                }),
            ),
        ),
        (
            "get_messages",
            msg(
                33,
                Body::GetMessages(pb::GetMessagesRequest {
                    channel_type: MESSAGE,
                    channel_name: "room".into(),
                    message_count: 10,
                    start: 0,
                    end: 0,
                }),
            ),
        ),
    ]
}

fn encode_all(msgs: &[ClientMessage]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    for m in msgs {
        frame::encode_into(m, &mut buf);
    }
    buf.to_vec()
}

/// A few server messages (for the SDK side of the frame decoder).
fn server_messages() -> Vec<(&'static str, ServerMessage)> {
    use pb::server_message::Body as S;
    vec![
        (
            "server_error",
            ServerMessage {
                id: 3,
                body: Some(S::Error(pb::Error {
                    code: -10001,
                    reason: "not logged in".into(),
                    operation: "publish".into(),
                })),
            },
        ),
        (
            "server_message_push",
            ServerMessage {
                id: 0,
                body: Some(S::Message(pb::MessagePush {
                    channel_type: MESSAGE,
                    channel_name: "room".into(),
                    publisher: "fz-a".into(),
                    message_type: 1,
                    payload: Bytes::from_static(b"hello"),
                    timestamp: 1,
                    position: Some(pb::StreamPosition {
                        epoch: 7,
                        offset: 3,
                    }),
                    ..Default::default()
                })),
            },
        ),
        (
            "server_closing",
            ServerMessage {
                id: 0,
                body: Some(S::Closing(pb::Closing {
                    code: 4001,
                    reason: "bye".into(),
                    reconnect: false,
                })),
            },
        ),
    ]
}

/// Seeds of `frame_decode`: each request alone, a frame of several, server messages.
pub fn frame_decode() -> Vec<(String, Vec<u8>)> {
    let reqs = requests();
    let mut out: Vec<(String, Vec<u8>)> = reqs
        .iter()
        .map(|(n, m)| (n.to_string(), encode_all(std::slice::from_ref(m))))
        .collect();
    let several: Vec<ClientMessage> = reqs
        .iter()
        .skip(3)
        .take(6)
        .map(|(_, m)| m.clone())
        .collect();
    out.push(("several".into(), encode_all(&several)));
    for (n, m) in server_messages() {
        out.push((n.to_string(), m.encode_length_delimited_to_vec()));
    }
    out
}

/// Seeds of `server_requests`: selector byte + frame, raw form (bit 2 set). Logins go
/// to a fresh connection (selector 7); every other request to both logged-in ones
/// (4: the certified app, 5: the open app); plus a frame of several requests.
pub fn server_requests() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (n, m) in requests() {
        let frame = encode_all(std::slice::from_ref(&m));
        let selectors: &[u8] = if n.starts_with("login") {
            &[7]
        } else {
            &[4, 5]
        };
        for s in selectors {
            let mut bytes = vec![*s];
            bytes.extend_from_slice(&frame);
            out.push((format!("{n}_{s}"), bytes));
        }
    }
    let several: Vec<ClientMessage> = requests()
        .into_iter()
        .filter(|(n, _)| !n.starts_with("log"))
        .map(|(_, m)| m)
        .collect();
    let mut bytes = vec![5];
    bytes.extend_from_slice(&encode_all(&several));
    out.push(("every_request_5".into(), bytes));
    out
}

/// Every `"key": "value"` string value in `json` (the vectors file is flat enough).
fn json_strings<'a>(json: &'a str, key: &str) -> Vec<&'a str> {
    let pattern = format!("\"{key}\": \"");
    json.match_indices(&pattern)
        .filter_map(|(at, p)| {
            let rest = &json[at + p.len()..];
            rest.find('"').map(|end| &rest[..end])
        })
        .collect()
}

/// Seeds of `token_parse` from the token vectors (`/work/shared/vectors/tokens.json`
/// format): mode byte 0 + each token, valid and invalid; mode byte 1 + each
/// decompressed payload.
pub fn token_parse(vectors_json: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (i, token) in json_strings(vectors_json, "token").into_iter().enumerate() {
        let mut s = vec![0u8];
        s.extend_from_slice(token.as_bytes());
        out.push((format!("token_{i:02}"), s));
    }
    for (i, hex) in json_strings(vectors_json, "uncompressed_hex")
        .into_iter()
        .enumerate()
    {
        let mut p = vec![1u8];
        p.extend(
            (0..hex.len() / 2).filter_map(|j| u8::from_str_radix(&hex[2 * j..2 * j + 2], 16).ok()),
        );
        out.push((format!("payload_{i:02}"), p));
    }
    out
}

/// Checks that every request seed decodes to messages with a body; panics otherwise.
pub fn check() {
    for (name, bytes) in server_requests() {
        let msgs = frame::decode_all::<ClientMessage>(Bytes::from(bytes[1..].to_vec()), 64)
            .unwrap_or_else(|e| panic!("seed {name}: {e}"));
        assert!(msgs.iter().all(|m| m.body.is_some()), "seed {name}");
    }
}

/// Writes every seed under `root/<target>/seed_<name>`.
pub fn write(root: &std::path::Path, vectors_json: &str) -> std::io::Result<usize> {
    let mut n = 0;
    for (target, seeds) in [
        ("frame_decode", frame_decode()),
        ("server_requests", server_requests()),
        ("token_parse", token_parse(vectors_json)),
    ] {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        for (name, bytes) in seeds {
            std::fs::write(dir.join(format!("seed_{name}")), bytes)?;
            n += 1;
        }
    }
    Ok(n)
}
