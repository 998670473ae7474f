//! The bad-input matrix (issue 20): one table of rows, each a request (or a raw frame)
//! sent over a real socket to a real server, with the answer the spec gives for it —
//! every limit at the limit and one past it, malformed and missing fields, unknown enum
//! values, wrong-state requests, oversized / fragmented / text frames, invalid UTF-8,
//! huge and negative numbers. Every row cites its rule. After each row:
//!
//! - the reply carries the expected code and a reason (or the connection closes with the
//!   expected close code and a reason);
//! - where the connection stays, a follow-up request on it succeeds (R172);
//! - a refused request changed nothing a second client can observe (R171);
//! - a canary client elsewhere still receives a publication and the server still
//!   accepts a new login (nothing panicked).
//!
//! Rows that reveal a server bug carry `bug: Some(..)`: they are left out of the group
//! tests and run by the ignored `known_server_bugs` test, which passes once all are
//! fixed.

mod common;

use bytes::{Bytes, BytesMut};
use common::*;
use std::sync::Arc;
use std::time::Duration;
use switchboard_engine::HistoryRetention;
use switchboard_engine_memory::{MemoryBroker, MemoryConfig, SqliteHistory};
use switchboard_protocol::frame;
use switchboard_protocol::pb::{
    self, ClientMessage, client_message::Body as Req, server_message::Body as Rep,
};
use switchboard_server::Server;
use switchboard_token::RtcRole;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

// ---------------------------------------------------------------------------------------
// The table's vocabulary
// ---------------------------------------------------------------------------------------

/// Which server a group runs against.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Group {
    Identity,
    Publish,
    Subscriptions,
    Stream,
    Presence,
    Storage,
    Locks,
    History,
    WrongState,
    Frames,
    Numbers,
    DefaultSubscriptions,
    DefaultStreamChannels,
    DefaultJoinedTopics,
    DefaultSubscribedTopics,
    DefaultTopicPublishers,
}

/// Whether the row's connection is logged in before `setup`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Start {
    /// Connected, no login.
    Anonymous,
    /// Logged in to [`APP_ID`] as the row's user.
    LoggedIn,
}

/// What the row sends after its setup.
enum Out {
    /// One request with a fresh id.
    Req(Req),
    /// Several requests in one frame; the expectation is about the last one.
    Frame(Vec<Req>),
    /// A WebSocket message as is (no request id).
    Ws(Message),
    /// Several WebSocket frames as they are (fragments), then nothing.
    Frames(Vec<Frame>),
}

/// A check of a successful reply.
type Check = Box<dyn Fn(&Rep) -> Result<(), String> + Send>;

/// The answer the spec gives.
enum Expect {
    /// Any reply but an error.
    Ok,
    /// A reply that is not an error and passes the check.
    OkWith(Check),
    /// An error reply with this code, a reason and an operation.
    Code(i32),
    /// An error reply with this code, then the connection closes with this close code.
    CodeThenClose(i32, u32),
    /// A `Closing` push with this code (and the close frame with the same), no reply to
    /// the request sent (if any).
    Close(u32),
}

/// One row, built for a given user and channel name.
struct Case {
    start: Start,
    /// Requests that must all succeed first.
    setup: Vec<Req>,
    send: Out,
    expect: Expect,
    /// What a separate probe client looks at after the setup and again after the row:
    /// it must be the same, i.e. the refused request changed nothing.
    observe: Vec<Obs>,
}

/// One observation of the probe.
#[derive(Clone)]
enum Obs {
    /// The reply to this request (timestamps aside).
    Reply(Req),
    /// The position of this message channel: the probe publishes a marker and reads
    /// where it landed; between the two observations only the probe's own marker may
    /// have been added.
    Offset(String),
}

/// Names a row gets: its user id and a channel name of its own.
struct Ctx {
    user: String,
    ch: String,
}

/// A row of the matrix.
struct Row {
    group: Group,
    /// The rules the row checks, e.g. "R63".
    rules: &'static str,
    /// What it sends, in words.
    what: &'static str,
    /// Set when the row reveals a server bug: why, in a few words.
    bug: Option<&'static str>,
    build: Box<dyn Fn(&Ctx) -> Case + Send + Sync>,
}

fn row(
    group: Group,
    rules: &'static str,
    what: &'static str,
    build: impl Fn(&Ctx) -> Case + Send + Sync + 'static,
) -> Row {
    Row {
        group,
        rules,
        what,
        bug: None,
        build: Box::new(build),
    }
}

impl Row {
    /// Marks the row as revealing a server bug (left out of the group run). No row is
    /// marked now; kept for the next bug a row finds.
    #[allow(dead_code)]
    fn bug(mut self, why: &'static str) -> Row {
        self.bug = Some(why);
        self
    }
}

/// A logged-in row with no setup and nothing observed.
fn simple(send: Req, expect: Expect) -> Case {
    Case {
        start: Start::LoggedIn,
        setup: vec![],
        send: Out::Req(send),
        expect,
        observe: vec![],
    }
}

/// A logged-in row with setup and nothing observed.
fn after(setup: Vec<Req>, send: Req, expect: Expect) -> Case {
    Case {
        start: Start::LoggedIn,
        setup,
        send: Out::Req(send),
        expect,
        observe: vec![],
    }
}

/// A logged-in row without setup whose refusal must leave `observe` unchanged.
fn unchanged(send: Req, expect: Expect, observe: Vec<Obs>) -> Case {
    Case {
        start: Start::LoggedIn,
        setup: vec![],
        send: Out::Req(send),
        expect,
        observe,
    }
}

// ---------------------------------------------------------------------------------------
// Request builders
// ---------------------------------------------------------------------------------------

const MSG: i32 = pb::ChannelType::Message as i32;
const STREAM: i32 = pb::ChannelType::Stream as i32;
const USER: i32 = pb::ChannelType::User as i32;

fn login_req(app: &str, user: &str, token: &str, heartbeat: u32, presence: u32) -> Req {
    Req::Login(pb::LoginRequest {
        app_id: app.into(),
        user_id: user.into(),
        token: token.into(),
        heartbeat_interval: heartbeat,
        presence_timeout: presence,
        ..Default::default()
    })
}

/// An anonymous row sending one login.
fn login_case(req: Req, expect: Expect) -> Case {
    Case {
        start: Start::Anonymous,
        setup: vec![],
        send: Out::Req(req),
        expect,
        observe: vec![],
    }
}

/// A login of `user` with a valid token and the given heartbeat / presence timeout.
fn login_user(user: &str, heartbeat: u32, presence: u32) -> Req {
    login_req(APP_ID, user, &token(user), heartbeat, presence)
}

fn publish(ct: i32, ch: &str, mt: pb::MessageType, payload: impl Into<Bytes>) -> Req {
    Req::Publish(pb::PublishRequest {
        channel_type: ct,
        channel_name: ch.into(),
        message_type: mt as i32,
        payload: payload.into(),
        ..Default::default()
    })
}

fn publish_str(ch: &str, text: &str) -> Req {
    publish(
        MSG,
        ch,
        pb::MessageType::String,
        Bytes::copy_from_slice(text.as_bytes()),
    )
}

fn publish_typed(ch: &str, custom_type: &str) -> Req {
    Req::Publish(pb::PublishRequest {
        channel_type: MSG,
        channel_name: ch.into(),
        message_type: pb::MessageType::String as i32,
        payload: Bytes::from_static(b"x"),
        custom_type: custom_type.into(),
        ..Default::default()
    })
}

fn subscribe(ch: &str) -> Req {
    Req::Subscribe(pb::SubscribeRequest {
        channel_name: ch.into(),
        with_presence: Some(false),
        ..Default::default()
    })
}

fn unsubscribe(ch: &str) -> Req {
    Req::Unsubscribe(pb::UnsubscribeRequest {
        channel_name: ch.into(),
    })
}

/// The probe looks at a message channel's position (it moves with every accepted
/// publication).
fn position_of(ch: &str) -> Vec<Obs> {
    vec![Obs::Offset(ch.to_string())]
}

/// The probe looks at the reply to `req`.
fn reply_of(req: Req) -> Vec<Obs> {
    vec![Obs::Reply(req)]
}

fn rtc(ch: &str, user: &str) -> String {
    switchboard_token::build_rtc_token(
        APP_ID,
        CERT,
        ch,
        user,
        RtcRole::Publisher,
        3600,
        3600,
        now_secs(),
    )
    .expect("rtc token builds")
}

fn join(ch: &str, user: &str) -> Req {
    Req::Join(pb::JoinRequest {
        channel_name: ch.into(),
        token: rtc(ch, user),
        with_presence: Some(false),
        ..Default::default()
    })
}

fn join_topic(ch: &str, topic: &str) -> Req {
    Req::JoinTopic(pb::JoinTopicRequest {
        channel_name: ch.into(),
        topic_name: topic.into(),
        ..Default::default()
    })
}

fn publish_topic(ch: &str, topic: &str) -> Req {
    Req::PublishTopicMessage(pb::PublishTopicMessageRequest {
        channel_name: ch.into(),
        topic_name: topic.into(),
        message_type: pb::MessageType::String as i32,
        payload: Bytes::from_static(b"t"),
        ..Default::default()
    })
}

fn subscribe_topic(ch: &str, topic: &str, users: &[String]) -> Req {
    Req::SubscribeTopic(pb::SubscribeTopicRequest {
        channel_name: ch.into(),
        topic_name: topic.into(),
        users: users.to_vec(),
    })
}

fn unsubscribe_topic(ch: &str, topic: &str) -> Req {
    Req::UnsubscribeTopic(pb::UnsubscribeTopicRequest {
        channel_name: ch.into(),
        topic_name: topic.into(),
        users: vec![],
    })
}

fn users(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

fn item(key: &str, value: &str, revision: Option<i64>) -> pb::MetadataItem {
    pb::MetadataItem {
        key: key.into(),
        value: value.into(),
        revision,
    }
}

fn write(ct: i32, ch: &str, items: Vec<pb::MetadataItem>) -> pb::MetadataWriteRequest {
    pb::MetadataWriteRequest {
        channel_type: ct,
        channel_name: ch.into(),
        items,
        ..Default::default()
    }
}

fn set_meta(ch: &str, items: Vec<pb::MetadataItem>) -> Req {
    Req::SetMetadata(write(MSG, ch, items))
}

fn get_meta(ch: &str) -> Req {
    Req::GetMetadata(pb::GetMetadataRequest {
        channel_type: MSG,
        channel_name: ch.into(),
    })
}

fn n_items(n: usize, value: &str) -> Vec<pb::MetadataItem> {
    (0..n)
        .map(|i| item(&format!("k{i}"), value, None))
        .collect()
}

fn set_state(ct: i32, ch: &str, states: &[(String, String)]) -> Req {
    Req::SetState(pb::SetStateRequest {
        channel_type: ct,
        channel_name: ch.into(),
        states: states.iter().cloned().collect(),
    })
}

fn get_state(ch: &str, user: &str) -> Req {
    Req::GetState(pb::GetStateRequest {
        channel_type: MSG,
        channel_name: ch.into(),
        user_id: user.into(),
    })
}

fn kv(n: usize, value_len: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("k{i}"), "v".repeat(value_len)))
        .collect()
}

fn who_now(ct: i32, ch: &str) -> Req {
    Req::WhoNow(pb::WhoNowRequest {
        channel_type: ct,
        channel_name: ch.into(),
        ..Default::default()
    })
}

fn set_lock(ct: i32, ch: &str, name: &str, ttl: u32) -> Req {
    Req::SetLock(pb::SetLockRequest {
        channel_type: ct,
        channel_name: ch.into(),
        lock_name: name.into(),
        ttl,
    })
}

fn get_lock(ch: &str) -> Req {
    Req::GetLock(pb::GetLockRequest {
        channel_type: MSG,
        channel_name: ch.into(),
    })
}

fn acquire(ch: &str, name: &str) -> Req {
    Req::AcquireLock(pb::AcquireLockRequest {
        channel_type: MSG,
        channel_name: ch.into(),
        lock_name: name.into(),
        retry: false,
    })
}

fn release(ch: &str, name: &str) -> Req {
    Req::ReleaseLock(pb::ReleaseLockRequest {
        channel_type: MSG,
        channel_name: ch.into(),
        lock_name: name.into(),
    })
}

fn get_messages(ct: i32, ch: &str, count: u32, start: u64, end: u64) -> Req {
    Req::GetMessages(pb::GetMessagesRequest {
        channel_type: ct,
        channel_name: ch.into(),
        message_count: count,
        start,
        end,
    })
}

fn heartbeat() -> Req {
    Req::Heartbeat(pb::Heartbeat {})
}

/// Checks the effective heartbeat interval and presence timeout of a login reply.
fn login_with(heartbeat: u32, presence: u32) -> Expect {
    Expect::OkWith(Box::new(move |r| match r {
        Rep::Login(l) if (l.heartbeat_interval, l.presence_timeout) == (heartbeat, presence) => {
            Ok(())
        }
        other => Err(format!(
            "expected heartbeat {heartbeat} / presence {presence}, got {other:?}"
        )),
    }))
}

/// Checks the ttl of the only lock in a GetLock reply.
fn lock_ttl(ttl: u32) -> Expect {
    Expect::OkWith(Box::new(move |r| match r {
        Rep::GetLock(g) if g.locks.len() == 1 && g.locks[0].ttl == ttl => Ok(()),
        other => Err(format!("expected one lock with ttl {ttl}, got {other:?}")),
    }))
}

/// Checks a SubscribeTopic reply: how many succeeded, and the failure codes.
fn topic_result(succeeded: usize, failed: Vec<i32>) -> Expect {
    Expect::OkWith(Box::new(move |r| match r {
        Rep::SubscribeTopic(s)
            if s.succeed_users.len() == succeeded
                && s.failed.iter().map(|f| f.error_code).collect::<Vec<_>>() == failed =>
        {
            Ok(())
        }
        other => Err(format!(
            "expected {succeeded} succeeded and failures {failed:?}, got {other:?}"
        )),
    }))
}

/// Checks the number of messages of a GetMessages reply.
fn history_count(n: usize) -> Expect {
    Expect::OkWith(Box::new(move |r| match r {
        Rep::GetMessages(g) if g.messages.len() == n => Ok(()),
        other => Err(format!("expected {n} messages, got {other:?}")),
    }))
}

// ---------------------------------------------------------------------------------------
// Raw frames
// ---------------------------------------------------------------------------------------

fn encode_all(msgs: &[ClientMessage]) -> Bytes {
    let mut buf = BytesMut::new();
    for m in msgs {
        frame::encode_into(m, &mut buf);
    }
    buf.freeze()
}

fn beat(id: u32) -> ClientMessage {
    ClientMessage {
        id,
        body: Some(heartbeat()),
    }
}

/// A frame of exactly `size` bytes holding one heartbeat request (id 10,000) padded with an
/// unknown length-delimited field, which protobuf decoders skip.
fn padded_frame(size: usize) -> Bytes {
    // ClientMessage: field 1 (id) = 10,000, field 16 (heartbeat) = empty, field 1000 = pad.
    let varint = |mut v: u64, out: &mut Vec<u8>| {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    };
    let body_for = |pad: usize| {
        let mut m = vec![0x08, 0x90, 0x4e, 0x82, 0x01, 0x00];
        varint((1000 << 3) | 2, &mut m);
        varint(pad as u64, &mut m);
        m.extend(std::iter::repeat_n(0u8, pad));
        m
    };
    // Find the pad that makes prefix + body exactly `size` bytes.
    let mut pad = size.saturating_sub(16);
    loop {
        let body = body_for(pad);
        let mut out = Vec::new();
        varint(body.len() as u64, &mut out);
        let total = out.len() + body.len();
        if total == size {
            out.extend(body);
            return Bytes::from(out);
        }
        if total > size {
            pad -= total - size;
        } else {
            pad += size - total;
        }
    }
}

/// A publish request whose channel name is not UTF-8 (hand-encoded: prost would not
/// build one).
fn publish_with_raw_name(id: u32, name: &[u8]) -> Bytes {
    let mut publish = vec![0x08, 0x01, 0x12, name.len() as u8];
    publish.extend_from_slice(name);
    publish.extend_from_slice(&[0x18, 0x01, 0x22, 0x01, b'x']);
    let mut msg = vec![0x08, id as u8, 0x7a, publish.len() as u8]; // field 15, LEN
    msg.extend(publish);
    let mut out = vec![msg.len() as u8];
    out.extend(msg);
    Bytes::from(out)
}

fn fragments(data: Bytes, parts: usize) -> Vec<Frame> {
    let step = data.len().div_ceil(parts);
    let chunks: Vec<Bytes> = (0..parts)
        .map(|i| data.slice((i * step).min(data.len())..((i + 1) * step).min(data.len())))
        .collect();
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let op = if i == 0 { Data::Binary } else { Data::Continue };
            Frame::message(c, OpCode::Data(op), i + 1 == parts)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------

/// Default node limits (ServerConfig defaults, docs/protocol.md "Transport and framing").
const MAX_FRAME: usize = 1024 * 1024;
const MAX_MESSAGES_PER_FRAME: usize = 64;

/// A user id of `n` bytes.
fn long(n: usize) -> String {
    "u".repeat(n)
}

fn rows() -> Vec<Row> {
    use Expect::*;
    use Group::*;
    vec![
        // --- Identity and login (R1–R6, R16, R17, R25, R26) ----------------------------
        row(Identity, "R2 R6", "login with a 64-byte user id", |_| {
            let u = long(64);
            login_case(login_user(&u, 60, 0), Ok)
        }),
        row(Identity, "R2 R6", "login with a 65-byte user id", |_| {
            let u = long(65);
            login_case(login_user(&u, 60, 0), CodeThenClose(-10006, 4010))
        }),
        row(Identity, "R4 R6", "login with an empty user id", |_| {
            login_case(
                login_req(APP_ID, "", &token(""), 60, 0),
                CodeThenClose(-10006, 4010),
            )
        }),
        row(Identity, "R4 R6", "login as \"null\"", |_| {
            login_case(login_user("null", 60, 0), CodeThenClose(-10006, 4010))
        }),
        row(
            Identity,
            "R5 R6",
            "login with a user id starting with _",
            |_| login_case(login_user("_x", 60, 0), CodeThenClose(-10006, 4010)),
        ),
        row(Identity, "R3 R6", "login with '/' in the user id", |_| {
            login_case(login_user("a/b", 60, 0), CodeThenClose(-10006, 4010))
        }),
        row(Identity, "R1", "login with a 31-character app id", |c| {
            login_case(
                login_req(&APP_ID[..31], &c.user, &token(&c.user), 60, 0),
                CodeThenClose(-10003, 4010),
            )
        }),
        row(Identity, "R1", "login to an unknown app", |c| {
            login_case(
                login_req(UNKNOWN_APP_ID, &c.user, &token(&c.user), 60, 0),
                CodeThenClose(-10003, 4010),
            )
        }),
        row(Identity, "R25 R26", "login with a garbage token", |c| {
            login_case(
                login_req(APP_ID, &c.user, "007garbage", 60, 0),
                CodeThenClose(-10005, 4010),
            )
        }),
        row(
            Identity,
            "R25 R26",
            "login with an empty token (app with a certificate)",
            |c| {
                login_case(
                    login_req(APP_ID, &c.user, "", 60, 0),
                    CodeThenClose(-10005, 4010),
                )
            },
        ),
        row(
            Identity,
            "R26",
            "login with a token signed by the wrong certificate",
            |c| {
                let t = token_with(APP_ID, WRONG_CERT, &c.user, 3600, now_secs());
                login_case(
                    login_req(APP_ID, &c.user, &t, 60, 0),
                    CodeThenClose(-10005, 4010),
                )
            },
        ),
        row(Identity, "R26 R45", "login with an expired token", |c| {
            let t = token_with(APP_ID, CERT, &c.user, 60, now_secs() - 3600);
            login_case(
                login_req(APP_ID, &c.user, &t, 60, 0),
                CodeThenClose(-10009, 4010),
            )
        }),
        row(Identity, "R26", "login with another app's token", |c| {
            let t = token_with(OTHER_APP_ID, OTHER_CERT, &c.user, 3600, now_secs());
            login_case(
                login_req(APP_ID, &c.user, &t, 60, 0),
                CodeThenClose(-10016, 4010),
            )
        }),
        row(Identity, "R25", "login with another user's token", |c| {
            login_case(
                login_req(APP_ID, &c.user, &token("someone-else"), 60, 0),
                CodeThenClose(-10005, 4010),
            )
        }),
        row(
            Identity,
            "R25",
            "login to an open app with an empty token",
            |c| login_case(login_req(OPEN_APP_ID, &c.user, "", 60, 0), Ok),
        ),
        row(Identity, "R16", "presenceTimeout 300 is kept", |c| {
            login_case(login_user(&c.user, 60, 300), login_with(60, 300))
        }),
        row(
            Identity,
            "R16",
            "presenceTimeout 301 is clamped to 300",
            |c| login_case(login_user(&c.user, 60, 301), login_with(60, 300)),
        ),
        row(Identity, "R16", "presenceTimeout 4 is clamped to 5", |c| {
            login_case(login_user(&c.user, 60, 4), login_with(60, 5))
        }),
        row(
            Identity,
            "R16",
            "presenceTimeout u32::MAX is clamped to 300",
            |c| login_case(login_user(&c.user, 60, u32::MAX), login_with(60, 300)),
        ),
        row(
            Identity,
            "R16",
            "presenceTimeout 0 means the default 300",
            |c| login_case(login_user(&c.user, 60, 0), login_with(60, 300)),
        ),
        row(Identity, "R17", "heartbeatInterval 1800 is kept", |c| {
            login_case(login_user(&c.user, 1800, 0), login_with(1800, 300))
        }),
        row(
            Identity,
            "R17",
            "heartbeatInterval 1801 is clamped to 1800",
            |c| login_case(login_user(&c.user, 1801, 0), login_with(1800, 300)),
        ),
        row(
            Identity,
            "R17",
            "heartbeatInterval u32::MAX is clamped to 1800",
            |c| login_case(login_user(&c.user, u32::MAX, 0), login_with(1800, 300)),
        ),
        // --- Publishing (R7, R8, R63–R67, R71, R74, R75) ----------------------------------
        row(Publish, "R63", "payload of 32,768 bytes", |c| {
            simple(
                publish(MSG, &c.ch, pb::MessageType::Binary, vec![1u8; 32_768]),
                Ok,
            )
        }),
        row(Publish, "R63 R171", "payload of 32,769 bytes", |c| {
            unchanged(
                publish(MSG, &c.ch, pb::MessageType::Binary, vec![1u8; 32_769]),
                Code(-11010),
                position_of(&c.ch),
            )
        }),
        row(
            Publish,
            "R63 R171",
            "STRING payload of 16,385 × 'é' (32,770 UTF-8 bytes)",
            |c| {
                unchanged(
                    publish_str(&c.ch, &"\u{e9}".repeat(16_385)),
                    Code(-11010),
                    position_of(&c.ch),
                )
            },
        ),
        row(Publish, "R63", "empty payload", |c| {
            simple(
                publish(MSG, &c.ch, pb::MessageType::Binary, Bytes::new()),
                Ok,
            )
        }),
        row(Publish, "R64 R171", "message type unset (0)", |c| {
            unchanged(
                publish(
                    MSG,
                    &c.ch,
                    pb::MessageType::Unspecified,
                    Bytes::from_static(b"x"),
                ),
                Code(-11009),
                position_of(&c.ch),
            )
        }),
        row(Publish, "R64 R171", "unknown message type 99", |c| {
            let mut r = pb::PublishRequest {
                channel_name: c.ch.clone(),
                payload: Bytes::from_static(b"x"),
                ..Default::default()
            };
            r.message_type = 99;
            unchanged(Req::Publish(r), Code(-11009), position_of(&c.ch))
        }),
        row(
            Publish,
            "R64 R65 R171",
            "STRING payload that is not UTF-8",
            |c| {
                unchanged(
                    publish(
                        MSG,
                        &c.ch,
                        pb::MessageType::String,
                        Bytes::from_static(b"\xff\xfe"),
                    ),
                    Code(-11009),
                    position_of(&c.ch),
                )
            },
        ),
        row(Publish, "R66", "customType of 32 bytes", |c| {
            simple(publish_typed(&c.ch, &"t".repeat(32)), Ok)
        }),
        row(Publish, "R66 R171", "customType of 33 bytes", |c| {
            unchanged(
                publish_typed(&c.ch, &"t".repeat(33)),
                Code(-11029),
                position_of(&c.ch),
            )
        }),
        row(Publish, "R7", "publish to a 64-byte channel name", |_| {
            simple(publish_str(&"c".repeat(64), "x"), Ok)
        }),
        row(Publish, "R7", "publish to a 65-byte channel name", |_| {
            simple(publish_str(&"c".repeat(65), "x"), Code(-10008))
        }),
        row(Publish, "R7", "publish to an empty channel name", |_| {
            simple(publish_str("", "x"), Code(-10008))
        }),
        row(Publish, "R7", "publish to channel \"null\"", |_| {
            simple(publish_str("null", "x"), Code(-10008))
        }),
        row(
            Publish,
            "R7",
            "publish to a channel starting with _",
            |_| simple(publish_str("_c", "x"), Code(-10008)),
        ),
        row(
            Publish,
            "R7 R15",
            "publish to a channel with a NUL byte",
            |_| simple(publish_str("a\u{0}b", "x"), Code(-10008)),
        ),
        row(Publish, "R8", "USER publish to a 65-byte user id", |_| {
            simple(
                publish(
                    USER,
                    &long(65),
                    pb::MessageType::String,
                    Bytes::from_static(b"x"),
                ),
                Code(-10008),
            )
        }),
        row(
            Publish,
            "R8 R71",
            "USER publish to an offline 64-byte user id",
            |_| {
                simple(
                    publish(
                        USER,
                        &long(64),
                        pb::MessageType::String,
                        Bytes::from_static(b"x"),
                    ),
                    Code(-11033),
                )
            },
        ),
        row(
            Publish,
            "R74 R171",
            "storeInHistory on an app without history",
            |c| {
                let r = pb::PublishRequest {
                    channel_type: MSG,
                    channel_name: c.ch.clone(),
                    message_type: pb::MessageType::String as i32,
                    payload: Bytes::from_static(b"x"),
                    store_in_history: true,
                    ..Default::default()
                };
                unchanged(Req::Publish(r), Code(-15005), position_of(&c.ch))
            },
        ),
        row(Publish, "R75", "publish with channelType STREAM", |c| {
            simple(
                publish(
                    STREAM,
                    &c.ch,
                    pb::MessageType::String,
                    Bytes::from_static(b"x"),
                ),
                Code(-10019),
            )
        }),
        row(
            Publish,
            "R75 R171",
            "publish with unknown channelType 99",
            |c| {
                unchanged(
                    publish(99, &c.ch, pb::MessageType::String, Bytes::from_static(b"x")),
                    Code(-10019),
                    position_of(&c.ch),
                )
            },
        ),
        row(Publish, "R75 R171", "publish with channelType -1", |c| {
            unchanged(
                publish(-1, &c.ch, pb::MessageType::String, Bytes::from_static(b"x")),
                Code(-10019),
                position_of(&c.ch),
            )
        }),
        row(
            Publish,
            "R68",
            "publish with channelType unset (MESSAGE)",
            |c| {
                simple(
                    publish(0, &c.ch, pb::MessageType::String, Bytes::from_static(b"x")),
                    Ok,
                )
            },
        ),
        // --- Subscriptions (R7, R77, R81, R83) ---------------------------------------------
        row(
            Subscriptions,
            "R7",
            "subscribe to a 64-byte channel name",
            |_| simple(subscribe(&"s".repeat(64)), Ok),
        ),
        row(
            Subscriptions,
            "R7",
            "subscribe to a 65-byte channel name",
            |_| simple(subscribe(&"s".repeat(65)), Code(-10008)),
        ),
        row(
            Subscriptions,
            "R7",
            "subscribe with '`' in the name",
            |_| simple(subscribe("a`b"), Code(-10008)),
        ),
        row(
            Subscriptions,
            "R83",
            "unsubscribe a channel not subscribed",
            |c| simple(unsubscribe(&c.ch), Code(-11002)),
        ),
        row(Subscriptions, "R81", "subscribe twice", |c| {
            after(vec![subscribe(&c.ch)], subscribe(&c.ch), Ok)
        }),
        row(
            Subscriptions,
            "R58",
            "subscribe since a huge position",
            |c| {
                let r = pb::SubscribeRequest {
                    channel_name: c.ch.clone(),
                    with_presence: Some(false),
                    since: Some(pb::StreamPosition {
                        epoch: u64::MAX,
                        offset: u64::MAX,
                    }),
                    ..Default::default()
                };
                simple(Req::Subscribe(r), Ok)
            },
        ),
        // --- Default limits, one group each (R77, R89, R98, R105, R106) -------------------
        row(DefaultSubscriptions, "R77", "the 100th subscription", |c| {
            let setup = (1..100)
                .map(|i| subscribe(&format!("{}-{i}", c.ch)))
                .collect();
            after(setup, subscribe(&format!("{}-100", c.ch)), Ok)
        }),
        row(
            DefaultSubscriptions,
            "R77 R171",
            "the 101st subscription",
            |c| {
                let setup = (1..=100)
                    .map(|i| subscribe(&format!("{}-{i}", c.ch)))
                    .collect();
                after(setup, subscribe(&format!("{}-101", c.ch)), Code(-11005))
            },
        ),
        row(
            DefaultStreamChannels,
            "R89",
            "the 10th joined stream channel",
            |c| {
                let setup = (1..10)
                    .map(|i| join(&format!("{}-{i}", c.ch), &c.user))
                    .collect();
                after(setup, join(&format!("{}-10", c.ch), &c.user), Ok)
            },
        ),
        row(
            DefaultStreamChannels,
            "R89",
            "the 11th joined stream channel",
            |c| {
                let setup = (1..=10)
                    .map(|i| join(&format!("{}-{i}", c.ch), &c.user))
                    .collect();
                after(setup, join(&format!("{}-11", c.ch), &c.user), Code(-11005))
            },
        ),
        row(DefaultJoinedTopics, "R98", "the 8th joined topic", |c| {
            let mut setup = vec![join(&c.ch, &c.user)];
            setup.extend((1..8).map(|i| join_topic(&c.ch, &format!("t{i}"))));
            after(setup, join_topic(&c.ch, "t8"), Ok)
        }),
        row(DefaultJoinedTopics, "R98", "the 9th joined topic", |c| {
            let mut setup = vec![join(&c.ch, &c.user)];
            setup.extend((1..=8).map(|i| join_topic(&c.ch, &format!("t{i}"))));
            after(setup, join_topic(&c.ch, "t9"), Code(-11014))
        }),
        row(
            DefaultSubscribedTopics,
            "R105 R109",
            "the 50th subscribed topic",
            |c| {
                let p = vec!["p".to_string()];
                let mut setup = vec![join(&c.ch, &c.user)];
                setup.extend((1..50).map(|i| subscribe_topic(&c.ch, &format!("t{i}"), &p)));
                after(setup, subscribe_topic(&c.ch, "t50", &p), Ok)
            },
        ),
        row(
            DefaultSubscribedTopics,
            "R105",
            "the 51st subscribed topic",
            |c| {
                let p = vec!["p".to_string()];
                let mut setup = vec![join(&c.ch, &c.user)];
                setup.extend((1..=50).map(|i| subscribe_topic(&c.ch, &format!("t{i}"), &p)));
                after(setup, subscribe_topic(&c.ch, "t51", &p), Code(-11014))
            },
        ),
        row(
            DefaultTopicPublishers,
            "R106 R109",
            "following 64 publishers in one call",
            |c| {
                after(
                    vec![join(&c.ch, &c.user)],
                    subscribe_topic(&c.ch, "t", &users("p", 64)),
                    topic_result(64, vec![]),
                )
            },
        ),
        row(
            DefaultTopicPublishers,
            "R106",
            "the 65th followed publisher",
            |c| {
                after(
                    vec![
                        join(&c.ch, &c.user),
                        subscribe_topic(&c.ch, "t", &users("p", 64)),
                    ],
                    subscribe_topic(&c.ch, "t", &["q".to_string()]),
                    Code(-11003),
                )
            },
        ),
        row(
            DefaultTopicPublishers,
            "R106",
            "65 publishers in one call: one fails with 20003",
            |c| {
                after(
                    vec![join(&c.ch, &c.user)],
                    subscribe_topic(&c.ch, "t", &users("p", 65)),
                    topic_result(64, vec![20003]),
                )
            },
        ),
        // --- Stream channels and topics (R9, R96, R102, R110, R111, R113) ------------------
        row(Stream, "R9", "joinTopic with a 16-byte topic name", |c| {
            after(
                vec![join(&c.ch, &c.user)],
                join_topic(&c.ch, &"t".repeat(16)),
                Ok,
            )
        }),
        row(Stream, "R9", "joinTopic with a 17-byte topic name", |c| {
            after(
                vec![join(&c.ch, &c.user)],
                join_topic(&c.ch, &"t".repeat(17)),
                Code(-11008),
            )
        }),
        row(
            Stream,
            "R9",
            "joinTopic with a topic name starting with _",
            |c| {
                after(
                    vec![join(&c.ch, &c.user)],
                    join_topic(&c.ch, "_t"),
                    Code(-11008),
                )
            },
        ),
        row(Stream, "R9", "joinTopic with an empty topic name", |c| {
            after(
                vec![join(&c.ch, &c.user)],
                join_topic(&c.ch, ""),
                Code(-11008),
            )
        }),
        row(Stream, "R7", "join a 65-byte stream channel name", |c| {
            simple(join(&"s".repeat(65), &c.user), Code(-10008))
        }),
        row(
            Stream,
            "R36",
            "join without a token (app with a certificate)",
            |c| {
                let r = pb::JoinRequest {
                    channel_name: c.ch.clone(),
                    with_presence: Some(false),
                    ..Default::default()
                };
                simple(Req::Join(r), Code(-10005))
            },
        ),
        row(Stream, "R96", "joinTopic in a channel not joined", |c| {
            simple(join_topic(&c.ch, "t"), Code(-11001))
        }),
        row(
            Stream,
            "R96",
            "subscribeTopic in a channel not joined",
            |c| {
                simple(
                    subscribe_topic(&c.ch, "t", &["p".to_string()]),
                    Code(-11001),
                )
            },
        ),
        row(
            Stream,
            "R96",
            "publishTopicMessage in a channel not joined",
            |c| simple(publish_topic(&c.ch, "t"), Code(-11001)),
        ),
        row(Stream, "R96", "leaveTopic in a channel not joined", |c| {
            let r = pb::LeaveTopicRequest {
                channel_name: c.ch.clone(),
                topic_name: "t".into(),
            };
            simple(Req::LeaveTopic(r), Code(-11001))
        }),
        row(Stream, "R96", "leave a channel not joined", |c| {
            let r = pb::LeaveRequest {
                channel_name: c.ch.clone(),
            };
            simple(Req::Leave(r), Code(-11001))
        }),
        row(
            Stream,
            "R102",
            "publishTopicMessage on a topic not joined",
            |c| {
                after(
                    vec![join(&c.ch, &c.user)],
                    publish_topic(&c.ch, "t"),
                    Code(-11016),
                )
            },
        ),
        row(Stream, "R63", "topic message of 32,769 bytes", |c| {
            let r = pb::PublishTopicMessageRequest {
                channel_name: c.ch.clone(),
                topic_name: "t".into(),
                message_type: pb::MessageType::Binary as i32,
                payload: vec![0u8; 32_769].into(),
                ..Default::default()
            };
            after(
                vec![join(&c.ch, &c.user), join_topic(&c.ch, "t")],
                Req::PublishTopicMessage(r),
                Code(-11010),
            )
        }),
        row(Stream, "R64", "topic message with message type 99", |c| {
            let r = pb::PublishTopicMessageRequest {
                channel_name: c.ch.clone(),
                topic_name: "t".into(),
                message_type: 99,
                payload: Bytes::from_static(b"x"),
                ..Default::default()
            };
            after(
                vec![join(&c.ch, &c.user), join_topic(&c.ch, "t")],
                Req::PublishTopicMessage(r),
                Code(-11009),
            )
        }),
        row(
            Stream,
            "R110",
            "subscribeTopic listing an invalid user id",
            |c| {
                after(
                    vec![join(&c.ch, &c.user)],
                    subscribe_topic(&c.ch, "t", &["ok".to_string(), "_bad".to_string()]),
                    topic_result(1, vec![4]),
                )
            },
        ),
        row(Stream, "R110", "subscribeTopic listing a user twice", |c| {
            after(
                vec![join(&c.ch, &c.user)],
                subscribe_topic(&c.ch, "t", &["p".to_string(), "p".to_string()]),
                topic_result(1, vec![]),
            )
        }),
        row(
            Stream,
            "R110",
            "subscribeTopic of an already-followed user",
            |c| {
                after(
                    vec![
                        join(&c.ch, &c.user),
                        subscribe_topic(&c.ch, "t", &["p".to_string()]),
                    ],
                    subscribe_topic(&c.ch, "t", &["p".to_string()]),
                    topic_result(0, vec![20001]),
                )
            },
        ),
        row(
            Stream,
            "R111",
            "subscribeTopic without users on a topic without publishers",
            |c| {
                after(
                    vec![join(&c.ch, &c.user)],
                    subscribe_topic(&c.ch, "t", &[]),
                    Code(-11017),
                )
            },
        ),
        row(
            Stream,
            "R113",
            "unsubscribeTopic where nothing is followed",
            |c| {
                after(
                    vec![join(&c.ch, &c.user)],
                    unsubscribe_topic(&c.ch, "t"),
                    Code(-11013),
                )
            },
        ),
        row(Stream, "R89 R91", "join the same channel twice", |c| {
            after(vec![join(&c.ch, &c.user)], join(&c.ch, &c.user), Ok)
        }),
        row(
            Stream,
            "R100",
            "joinTopic with qos 99 and priority 99 (unknown enums)",
            |c| {
                let r = pb::JoinTopicRequest {
                    channel_name: c.ch.clone(),
                    topic_name: "t".into(),
                    qos: 99,
                    priority: Some(99),
                    ..Default::default()
                };
                after(vec![join(&c.ch, &c.user)], Req::JoinTopic(r), Code(-10014))
            },
        ),
        row(Stream, "R100", "joinTopic with 1,025 bytes of meta", |c| {
            let r = pb::JoinTopicRequest {
                channel_name: c.ch.clone(),
                topic_name: "t".into(),
                meta: "m".repeat(1025),
                ..Default::default()
            };
            after(vec![join(&c.ch, &c.user)], Req::JoinTopic(r), Code(-11018))
        }),
        row(Stream, "R100", "joinTopic with 1,024 bytes of meta", |c| {
            let r = pb::JoinTopicRequest {
                channel_name: c.ch.clone(),
                topic_name: "t".into(),
                meta: "m".repeat(1024),
                ..Default::default()
            };
            after(vec![join(&c.ch, &c.user)], Req::JoinTopic(r), Ok)
        }),
        // --- Presence (R12, R125, R128, R130, R131) ---------------------------------------
        row(Presence, "R12", "setState with a 32-byte key", |c| {
            simple(set_state(MSG, &c.ch, &[("k".repeat(32), "v".into())]), Ok)
        }),
        row(Presence, "R12 R171", "setState with a 33-byte key", |c| {
            Case {
                observe: reply_of(get_state(&c.ch, &c.user)),
                ..after(
                    vec![subscribe(&c.ch)],
                    set_state(MSG, &c.ch, &[("k".repeat(33), "v".into())]),
                    Code(-13008),
                )
            }
        }),
        row(Presence, "R12", "setState with '/' in a key", |c| {
            simple(
                set_state(MSG, &c.ch, &[("a/b".into(), "v".into())]),
                Code(-13006),
            )
        }),
        row(Presence, "R12", "setState with an empty key", |c| {
            simple(
                set_state(MSG, &c.ch, &[(String::new(), "v".into())]),
                Code(-13006),
            )
        }),
        row(Presence, "R128", "setState with no keys", |c| {
            simple(set_state(MSG, &c.ch, &[]), Code(-13003))
        }),
        row(Presence, "R128", "setState with a 16,384-byte value", |c| {
            simple(set_state(MSG, &c.ch, &kv(1, 16_384)), Ok)
        }),
        row(Presence, "R128", "setState with a 16,385-byte value", |c| {
            simple(set_state(MSG, &c.ch, &kv(1, 16_385)), Code(-13009))
        }),
        row(Presence, "R128", "setState with 32 keys", |c| {
            simple(set_state(MSG, &c.ch, &kv(32, 1)), Ok)
        }),
        row(Presence, "R128 R171", "setState with 33 keys", |c| Case {
            observe: reply_of(get_state(&c.ch, &c.user)),
            ..after(
                vec![subscribe(&c.ch)],
                set_state(MSG, &c.ch, &kv(33, 1)),
                Code(-13005),
            )
        }),
        row(Presence, "R128", "setState making 33 keys in all", |c| {
            after(
                vec![set_state(MSG, &c.ch, &kv(32, 1))],
                set_state(MSG, &c.ch, &[("x".into(), "1".into())]),
                Code(-13005),
            )
        }),
        row(Presence, "R125", "setState with channelType USER", |c| {
            simple(set_state(USER, &c.ch, &kv(1, 1)), Code(-10019))
        }),
        row(
            Presence,
            "R125",
            "setState with unknown channelType 99",
            |c| simple(set_state(99, &c.ch, &kv(1, 1)), Code(-10019)),
        ),
        row(Presence, "R125", "whoNow with channelType USER", |c| {
            simple(who_now(USER, &c.ch), Code(-10019))
        }),
        row(Presence, "R125", "whoNow with channelType unset", |c| {
            simple(who_now(0, &c.ch), Code(-10019))
        }),
        row(Presence, "R7", "whoNow of a 65-byte channel name", |_| {
            simple(who_now(MSG, &"w".repeat(65)), Code(-10008))
        }),
        row(Presence, "R130", "removeState with a key twice", |c| {
            let r = pb::RemoveStateRequest {
                channel_type: MSG,
                channel_name: c.ch.clone(),
                keys: vec!["k0".into(), "k0".into()],
            };
            after(
                vec![set_state(MSG, &c.ch, &kv(1, 1))],
                Req::RemoveState(r),
                Code(-13010),
            )
        }),
        row(
            Presence,
            "R131",
            "getState of a user not in the channel",
            |c| simple(get_state(&c.ch, "nobody-here"), Code(-13011)),
        ),
        row(
            Presence,
            "R123",
            "whoNow with a page token that was never issued (an empty page)",
            |c| {
                let r = pb::WhoNowRequest {
                    channel_type: MSG,
                    channel_name: c.ch.clone(),
                    page: "\u{1}garbage".into(),
                    ..Default::default()
                };
                simple(Req::WhoNow(r), Ok)
            },
        ),
        // --- Storage (R10, R11, R138–R145) ------------------------------------------------
        row(Storage, "R11", "metadata key of 32 bytes", |c| {
            simple(set_meta(&c.ch, vec![item(&"k".repeat(32), "v", None)]), Ok)
        }),
        row(Storage, "R11 R171", "metadata key of 33 bytes", |c| {
            unchanged(
                set_meta(&c.ch, vec![item(&"k".repeat(33), "v", None)]),
                Code(-12011),
                reply_of(get_meta(&c.ch)),
            )
        }),
        row(Storage, "R11", "metadata key starting with _", |c| {
            simple(set_meta(&c.ch, vec![item("_k", "v", None)]), Code(-12009))
        }),
        row(Storage, "R11", "empty metadata key", |c| {
            simple(set_meta(&c.ch, vec![item("", "v", None)]), Code(-12009))
        }),
        row(Storage, "R145", "32 items", |c| {
            simple(set_meta(&c.ch, n_items(32, "v")), Ok)
        }),
        row(Storage, "R145 R171", "33 items", |c| {
            unchanged(
                set_meta(&c.ch, n_items(33, "v")),
                Code(-12002),
                reply_of(get_meta(&c.ch)),
            )
        }),
        row(
            Storage,
            "R145",
            "one item of 16,384 bytes of key and value",
            |c| {
                simple(
                    set_meta(&c.ch, vec![item("k", &"v".repeat(16_383), None)]),
                    Ok,
                )
            },
        ),
        row(Storage, "R145 R171", "a 16,385-byte value", |c| {
            unchanged(
                set_meta(&c.ch, vec![item("k", &"v".repeat(16_385), None)]),
                Code(-12012),
                reply_of(get_meta(&c.ch)),
            )
        }),
        row(
            Storage,
            "R145 R171",
            "16,385 bytes of keys and values in one call",
            |c| {
                let items = vec![
                    item("a", &"v".repeat(8_191), None),
                    item("b", &"v".repeat(8_192), None),
                ];
                unchanged(
                    set_meta(&c.ch, items),
                    Code(-12006),
                    reply_of(get_meta(&c.ch)),
                )
            },
        ),
        row(Storage, "R145", "set with no items", |c| {
            simple(set_meta(&c.ch, vec![]), Code(-12003))
        }),
        row(Storage, "R145", "update with no items", |c| {
            simple(Req::UpdateMetadata(write(MSG, &c.ch, vec![])), Code(-12003))
        }),
        row(Storage, "R145 R171", "the same key twice", |c| {
            unchanged(
                set_meta(&c.ch, vec![item("k", "1", None), item("k", "2", None)]),
                Code(-12013),
                reply_of(get_meta(&c.ch)),
            )
        }),
        row(Storage, "R140", "item revision -2", |c| {
            simple(
                set_meta(&c.ch, vec![item("k", "v", Some(-2))]),
                Code(-12005),
            )
        }),
        row(Storage, "R140", "item revision i64::MIN", |c| {
            simple(
                set_meta(&c.ch, vec![item("k", "v", Some(i64::MIN))]),
                Code(-12005),
            )
        }),
        row(Storage, "R140", "majorRevision -2", |c| {
            let mut w = write(MSG, &c.ch, vec![item("k", "v", None)]);
            w.major_revision = Some(-2);
            simple(Req::SetMetadata(w), Code(-12005))
        }),
        row(Storage, "R140", "update with item revision 0", |c| {
            after(
                vec![set_meta(&c.ch, vec![item("k", "v", None)])],
                Req::UpdateMetadata(write(MSG, &c.ch, vec![item("k", "w", Some(0))])),
                Code(-12005),
            )
        }),
        row(
            Storage,
            "R138 R171",
            "item revision i64::MAX on a missing item",
            |c| {
                unchanged(
                    set_meta(&c.ch, vec![item("k", "v", Some(i64::MAX))]),
                    Code(-12014),
                    reply_of(get_meta(&c.ch)),
                )
            },
        ),
        row(Storage, "R139", "majorRevision i64::MAX", |c| {
            let mut w = write(MSG, &c.ch, vec![item("k", "v", None)]);
            w.major_revision = Some(i64::MAX);
            simple(Req::SetMetadata(w), Code(-12014))
        }),
        row(
            Storage,
            "R136 R142 R171",
            "update of a key that does not exist",
            |c| Case {
                setup: vec![set_meta(&c.ch, vec![item("a", "1", None)])],
                ..unchanged(
                    Req::UpdateMetadata(write(
                        MSG,
                        &c.ch,
                        vec![item("a", "2", None), item("missing", "x", None)],
                    )),
                    Code(-12014),
                    reply_of(get_meta(&c.ch)),
                )
            },
        ),
        row(Storage, "R10", "lockName of 65 bytes", |c| {
            let mut w = write(MSG, &c.ch, vec![item("k", "v", None)]);
            w.lock_name = "l".repeat(65);
            simple(Req::SetMetadata(w), Code(-12007))
        }),
        row(Storage, "R143", "lockName of a lock not held", |c| {
            let mut w = write(MSG, &c.ch, vec![item("k", "v", None)]);
            w.lock_name = "l".into();
            after(
                vec![set_lock(MSG, &c.ch, "l", 0)],
                Req::SetMetadata(w),
                Code(-12008),
            )
        }),
        row(
            Storage,
            "R125 R134",
            "channel metadata with channelType STREAM",
            |c| {
                simple(
                    Req::SetMetadata(write(STREAM, &c.ch, vec![item("k", "v", None)])),
                    Ok,
                )
            },
        ),
        row(
            Storage,
            "R125",
            "metadata with unknown channelType 99",
            |c| {
                simple(
                    Req::SetMetadata(write(99, &c.ch, vec![item("k", "v", None)])),
                    Code(-10019),
                )
            },
        ),
        row(
            Storage,
            "R146",
            "user metadata of a 65-byte user id",
            |_| {
                simple(
                    Req::SetMetadata(write(USER, &long(65), vec![item("k", "v", None)])),
                    Code(-10006),
                )
            },
        ),
        row(
            Storage,
            "R146",
            "the 100th user-metadata subscription",
            |c| {
                let setup = (1..100)
                    .map(|i| {
                        Req::SubscribeUserMetadata(pb::SubscribeUserMetadataRequest {
                            user_id: format!("{}-{i}", c.user),
                        })
                    })
                    .collect();
                after(
                    setup,
                    Req::SubscribeUserMetadata(pb::SubscribeUserMetadataRequest {
                        user_id: format!("{}-100", c.user),
                    }),
                    Ok,
                )
            },
        ),
        row(
            Storage,
            "R146",
            "the 101st user-metadata subscription",
            |c| {
                let setup = (1..=100)
                    .map(|i| {
                        Req::SubscribeUserMetadata(pb::SubscribeUserMetadataRequest {
                            user_id: format!("{}-{i}", c.user),
                        })
                    })
                    .collect();
                after(
                    setup,
                    Req::SubscribeUserMetadata(pb::SubscribeUserMetadataRequest {
                        user_id: format!("{}-101", c.user),
                    }),
                    Code(-12017),
                )
            },
        ),
        row(
            Storage,
            "R137",
            "removeMetadata of an object that does not exist",
            |c| simple(Req::RemoveMetadata(write(MSG, &c.ch, vec![])), Ok),
        ),
        row(
            Storage,
            "R125 R134",
            "getMetadata with channelType unset",
            |c| {
                simple(
                    Req::GetMetadata(pb::GetMetadataRequest {
                        channel_type: 0,
                        channel_name: c.ch.clone(),
                    }),
                    Code(-10019),
                )
            },
        ),
        row(
            Storage,
            "R146",
            "subscribeUserMetadata of an invalid user id",
            |_| {
                simple(
                    Req::SubscribeUserMetadata(pb::SubscribeUserMetadataRequest {
                        user_id: "_x".into(),
                    }),
                    Code(-10006),
                )
            },
        ),
        // --- Locks (R10, R125, R150, R154, R156) ------------------------------------------
        row(Locks, "R10", "lock name of 64 bytes", |c| {
            simple(set_lock(MSG, &c.ch, &"l".repeat(64), 0), Ok)
        }),
        row(Locks, "R10 R171", "lock name of 65 bytes", |c| {
            unchanged(
                set_lock(MSG, &c.ch, &"l".repeat(65), 0),
                Code(-14005),
                reply_of(get_lock(&c.ch)),
            )
        }),
        row(Locks, "R10", "empty lock name", |c| {
            simple(set_lock(MSG, &c.ch, "", 0), Code(-14005))
        }),
        row(Locks, "R10", "lock name \"null\"", |c| {
            simple(set_lock(MSG, &c.ch, "null", 0), Code(-14005))
        }),
        row(Locks, "R125", "setLock with channelType USER", |c| {
            simple(set_lock(USER, &c.ch, "l", 0), Code(-10019))
        }),
        row(Locks, "R125", "setLock with unknown channelType 99", |c| {
            simple(set_lock(99, &c.ch, "l", 0), Code(-10019))
        }),
        row(Locks, "R150", "ttl 300 is kept", |c| {
            after(
                vec![set_lock(MSG, &c.ch, "l", 300)],
                get_lock(&c.ch),
                lock_ttl(300),
            )
        }),
        row(Locks, "R150", "ttl 301 is clamped to 300", |c| {
            after(
                vec![set_lock(MSG, &c.ch, "l", 301)],
                get_lock(&c.ch),
                lock_ttl(300),
            )
        }),
        row(Locks, "R150", "ttl u32::MAX is clamped to 300", |c| {
            after(
                vec![set_lock(MSG, &c.ch, "l", u32::MAX)],
                get_lock(&c.ch),
                lock_ttl(300),
            )
        }),
        row(Locks, "R150", "ttl 9 is clamped to 10", |c| {
            after(
                vec![set_lock(MSG, &c.ch, "l", 9)],
                get_lock(&c.ch),
                lock_ttl(10),
            )
        }),
        row(Locks, "R150", "ttl 0 means the default 10", |c| {
            after(
                vec![set_lock(MSG, &c.ch, "l", 0)],
                get_lock(&c.ch),
                lock_ttl(10),
            )
        }),
        row(Locks, "R156", "setLock of an existing lock", |c| {
            after(
                vec![set_lock(MSG, &c.ch, "l", 0)],
                set_lock(MSG, &c.ch, "l", 0),
                Code(-14004),
            )
        }),
        row(Locks, "R156", "acquireLock of an undefined lock", |c| {
            simple(acquire(&c.ch, "l"), Code(-14008))
        }),
        row(Locks, "R154 R171", "releaseLock of a lock not held", |c| {
            Case {
                setup: vec![set_lock(MSG, &c.ch, "l", 0)],
                ..unchanged(release(&c.ch, "l"), Code(-14006), reply_of(get_lock(&c.ch)))
            }
        }),
        row(
            Locks,
            "R155",
            "revokeLock naming a user who is not the owner",
            |c| {
                let r = pb::RevokeLockRequest {
                    channel_type: MSG,
                    channel_name: c.ch.clone(),
                    lock_name: "l".into(),
                    owner: "someone".into(),
                };
                after(
                    vec![set_lock(MSG, &c.ch, "l", 0), acquire(&c.ch, "l")],
                    Req::RevokeLock(r),
                    Code(-14006),
                )
            },
        ),
        row(Locks, "R159", "acquireLock without subscribing", |c| {
            after(vec![set_lock(MSG, &c.ch, "l", 0)], acquire(&c.ch, "l"), Ok)
        }),
        row(Locks, "R156", "32 locks in one channel, then a 33rd", |c| {
            let setup = (0..32)
                .map(|i| set_lock(MSG, &c.ch, &format!("l{i}"), 0))
                .collect();
            after(setup, set_lock(MSG, &c.ch, "l32", 0), Code(-14001))
        }),
        // --- History (R161–R163; a server with history) ----------------------------------
        row(History, "R161", "getMessages of a STREAM channel", |c| {
            simple(get_messages(STREAM, &c.ch, 10, 0, 0), Code(-10019))
        }),
        row(
            History,
            "R161",
            "getMessages with unknown channelType 99",
            |c| simple(get_messages(99, &c.ch, 10, 0, 0), Code(-10019)),
        ),
        row(History, "R162", "messageCount 0 means 100", |c| {
            stored_then(
                &c.ch,
                101,
                get_messages(MSG, &c.ch, 0, 0, 0),
                history_count(100),
            )
        }),
        row(History, "R162", "messageCount 100", |c| {
            stored_then(
                &c.ch,
                101,
                get_messages(MSG, &c.ch, 100, 0, 0),
                history_count(100),
            )
        }),
        row(History, "R162", "messageCount 101 means 100", |c| {
            stored_then(
                &c.ch,
                101,
                get_messages(MSG, &c.ch, 101, 0, 0),
                history_count(100),
            )
        }),
        row(History, "R162", "messageCount u32::MAX means 100", |c| {
            stored_then(
                &c.ch,
                101,
                get_messages(MSG, &c.ch, u32::MAX, 0, 0),
                history_count(100),
            )
        }),
        row(History, "R163", "start equal to end", |c| {
            simple(get_messages(MSG, &c.ch, 10, 5_000, 5_000), Code(-15002))
        }),
        row(History, "R163", "start before end", |c| {
            simple(get_messages(MSG, &c.ch, 10, 5_000, 6_000), Code(-15002))
        }),
        row(History, "R163", "start exactly 24 h after end", |c| {
            simple(get_messages(MSG, &c.ch, 10, 86_400_000 + 1, 1), Ok)
        }),
        row(History, "R163", "start 24 h + 1 ms after end", |c| {
            simple(
                get_messages(MSG, &c.ch, 10, 86_400_000 + 2, 1),
                Code(-15002),
            )
        }),
        row(History, "R163", "start u64::MAX and end 1", |c| {
            simple(get_messages(MSG, &c.ch, 10, u64::MAX, 1), Code(-15002))
        }),
        row(History, "R163 R164", "start u64::MAX alone", |c| {
            simple(get_messages(MSG, &c.ch, 10, u64::MAX, 0), Ok)
        }),
        // --- Wrong state (R24, R30, R35, issue 20's "after the session ended") -----------
        row(WrongState, "R24", "publish before login", |c| Case {
            start: Start::Anonymous,
            setup: vec![],
            send: Out::Req(publish_str(&c.ch, "x")),
            expect: Code(-10002),
            observe: position_of(&c.ch),
        }),
        row(WrongState, "R24", "subscribe before login", |c| Case {
            start: Start::Anonymous,
            setup: vec![],
            send: Out::Req(subscribe(&c.ch)),
            expect: Code(-10002),
            observe: vec![],
        }),
        row(WrongState, "R24", "setMetadata before login", |c| Case {
            start: Start::Anonymous,
            setup: vec![],
            send: Out::Req(set_meta(&c.ch, vec![item("k", "v", None)])),
            expect: Code(-10002),
            observe: reply_of(get_meta(&c.ch)),
        }),
        row(WrongState, "R24", "logout before login", |_| Case {
            start: Start::Anonymous,
            setup: vec![],
            send: Out::Req(Req::Logout(pb::LogoutRequest {})),
            expect: Code(-10002),
            observe: vec![],
        }),
        row(WrongState, "R24", "join before login", |c| Case {
            start: Start::Anonymous,
            setup: vec![],
            send: Out::Req(join(&c.ch, &c.user)),
            expect: Code(-10002),
            observe: vec![],
        }),
        row(WrongState, "R24", "whoNow before login", |c| Case {
            start: Start::Anonymous,
            setup: vec![],
            send: Out::Req(who_now(MSG, &c.ch)),
            expect: Code(-10002),
            observe: vec![],
        }),
        row(WrongState, "R24", "setLock before login", |c| Case {
            start: Start::Anonymous,
            setup: vec![],
            send: Out::Req(set_lock(MSG, &c.ch, "l", 0)),
            expect: Code(-10002),
            observe: reply_of(get_lock(&c.ch)),
        }),
        row(WrongState, "R24", "getMessages before login", |c| Case {
            start: Start::Anonymous,
            setup: vec![],
            send: Out::Req(get_messages(MSG, &c.ch, 10, 0, 0)),
            expect: Code(-10002),
            observe: vec![],
        }),
        row(WrongState, "R24", "renewToken before login", |c| Case {
            start: Start::Anonymous,
            setup: vec![],
            send: Out::Req(Req::RenewToken(pb::RenewTokenRequest {
                token: token(&c.user),
                channel_name: String::new(),
            })),
            expect: Code(-10002),
            observe: vec![],
        }),
        row(
            WrongState,
            "R41",
            "renewToken with another user's token",
            |_| {
                simple(
                    Req::RenewToken(pb::RenewTokenRequest {
                        token: token("someone-else"),
                        channel_name: String::new(),
                    }),
                    Code(-10005),
                )
            },
        ),
        row(
            WrongState,
            "R40",
            "renewToken of a stream channel not joined",
            |c| {
                simple(
                    Req::RenewToken(pb::RenewTokenRequest {
                        token: rtc(&c.ch, &c.user),
                        channel_name: c.ch.clone(),
                    }),
                    Code(-11001),
                )
            },
        ),
        row(
            WrongState,
            "R131",
            "getState of oneself in a channel not entered",
            |c| simple(get_state(&c.ch, &c.user), Code(-13011)),
        ),
        row(WrongState, "R129", "setState before subscribing", |c| {
            simple(set_state(MSG, &c.ch, &kv(1, 1)), Ok)
        }),
        row(WrongState, "R24", "heartbeat before login", |_| Case {
            start: Start::Anonymous,
            setup: vec![],
            send: Out::Req(heartbeat()),
            expect: Ok,
            observe: vec![],
        }),
        row(
            WrongState,
            "R30",
            "a second login on a logged-in connection",
            |c| simple(login_user(&c.user, 60, 0), Code(-10017)),
        ),
        row(
            WrongState,
            "R35",
            "a publish in the same frame after logout",
            |c| Case {
                start: Start::LoggedIn,
                setup: vec![],
                send: Out::Frame(vec![
                    Req::Logout(pb::LogoutRequest {}),
                    publish_str(&c.ch, "late"),
                ]),
                expect: Close(4000),
                observe: position_of(&c.ch),
            },
        ),
        row(
            WrongState,
            "R35",
            "a metadata write in the same frame after logout",
            |c| Case {
                start: Start::LoggedIn,
                setup: vec![],
                send: Out::Frame(vec![
                    Req::Logout(pb::LogoutRequest {}),
                    set_meta(&c.ch, vec![item("k", "v", None)]),
                ]),
                expect: Close(4000),
                observe: reply_of(get_meta(&c.ch)),
            },
        ),
        row(WrongState, "R82", "unsubscribe after unsubscribe", |c| {
            after(
                vec![subscribe(&c.ch), unsubscribe(&c.ch)],
                unsubscribe(&c.ch),
                Code(-11002),
            )
        }),
        row(WrongState, "R95", "a topic call after leave", |c| {
            after(
                vec![
                    join(&c.ch, &c.user),
                    Req::Leave(pb::LeaveRequest {
                        channel_name: c.ch.clone(),
                    }),
                ],
                join_topic(&c.ch, "t"),
                Code(-11001),
            )
        }),
        row(WrongState, "R154", "releaseLock twice", |c| {
            after(
                vec![
                    set_lock(MSG, &c.ch, "l", 0),
                    acquire(&c.ch, "l"),
                    release(&c.ch, "l"),
                ],
                release(&c.ch, "l"),
                Code(-14006),
            )
        }),
        // --- Frames (docs/protocol.md "Transport and framing", R172) ---------------------
        row(Frames, "R172", "a text frame", |_| Case {
            start: Start::LoggedIn,
            setup: vec![],
            send: Out::Ws(Message::Text("{\"login\":{}}".into())),
            expect: Close(4007),
            observe: vec![],
        }),
        row(Frames, "R172", "a text frame before login", |_| Case {
            start: Start::Anonymous,
            setup: vec![],
            send: Out::Ws(Message::Text("hello".into())),
            expect: Close(4007),
            observe: vec![],
        }),
        row(Frames, "R172", "an empty binary frame", |_| Case {
            start: Start::LoggedIn,
            setup: vec![],
            send: Out::Ws(Message::Binary(Bytes::new())),
            expect: Close(4007),
            observe: vec![],
        }),
        row(Frames, "R172", "garbage bytes", |_| Case {
            start: Start::LoggedIn,
            setup: vec![],
            send: Out::Ws(Message::Binary(Bytes::from_static(&[0xff; 16]))),
            expect: Close(4007),
            observe: vec![],
        }),
        row(Frames, "R172", "a length prefix of 2^63", |_| Case {
            start: Start::LoggedIn,
            setup: vec![],
            send: Out::Ws(Message::Binary(Bytes::from_static(&[
                0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0x08,
            ]))),
            expect: Close(4007),
            observe: vec![],
        }),
        row(Frames, "R171 R172", "a truncated publish", |c| {
            let full = frame::encode(&ClientMessage {
                id: 10_009,
                body: Some(publish_str(&c.ch, "never")),
            });
            Case {
                start: Start::LoggedIn,
                setup: vec![],
                send: Out::Ws(Message::Binary(full.slice(..full.len() - 2))),
                expect: Close(4007),
                observe: position_of(&c.ch),
            }
        }),
        row(Frames, "R172", "a request without a body", |_| Case {
            start: Start::LoggedIn,
            setup: vec![],
            send: Out::Ws(Message::Binary(frame::encode(&ClientMessage {
                id: 10_005,
                body: None,
            }))),
            expect: Code(-19004),
            observe: vec![],
        }),
        row(
            Frames,
            "R172",
            "an unknown request body (field 999)",
            |_| Case {
                start: Start::LoggedIn,
                setup: vec![],
                // id = 100, field 999 (LEN, empty): a body from a newer client.
                send: Out::Ws(Message::Binary(Bytes::from_static(&[
                    5, 0x08, 100, 0xba, 0x3e, 0x00,
                ]))),
                expect: Code(-19004),
                observe: vec![],
            },
        ),
        row(
            Frames,
            "R15 R171 R172",
            "a channel name that is not UTF-8",
            |c| Case {
                start: Start::LoggedIn,
                setup: vec![],
                send: Out::Ws(Message::Binary(publish_with_raw_name(100, b"a\xffb"))),
                expect: Close(4007),
                observe: position_of(&c.ch),
            },
        ),
        row(Frames, "R172", "64 requests in one frame", |_| Case {
            start: Start::LoggedIn,
            setup: vec![],
            send: Out::Ws(Message::Binary(encode_all(
                &(10_001..=10_000 + MAX_MESSAGES_PER_FRAME as u32)
                    .map(beat)
                    .collect::<Vec<_>>(),
            ))),
            expect: Ok,
            observe: vec![],
        }),
        row(Frames, "R172", "65 requests in one frame", |_| Case {
            start: Start::LoggedIn,
            setup: vec![],
            send: Out::Ws(Message::Binary(encode_all(
                &(10_001..=10_001 + MAX_MESSAGES_PER_FRAME as u32)
                    .map(beat)
                    .collect::<Vec<_>>(),
            ))),
            expect: Close(4007),
            observe: vec![],
        }),
        row(Frames, "R172", "a frame of exactly 1 MiB", |_| Case {
            start: Start::LoggedIn,
            setup: vec![],
            send: Out::Ws(Message::Binary(padded_frame(MAX_FRAME))),
            expect: Ok,
            observe: vec![],
        }),
        row(Frames, "R172", "a frame of 1 MiB + 1 byte", |_| Case {
            start: Start::LoggedIn,
            setup: vec![],
            send: Out::Ws(Message::Binary(padded_frame(MAX_FRAME + 1))),
            expect: Close(4008),
            observe: vec![],
        }),
        row(
            Frames,
            "R172",
            "a frame of 1 MiB + 1 byte before login",
            |_| Case {
                start: Start::Anonymous,
                setup: vec![],
                send: Out::Ws(Message::Binary(padded_frame(MAX_FRAME + 1))),
                expect: Close(4008),
                observe: vec![],
            },
        ),
        row(
            Frames,
            "R172",
            "a publish in three WebSocket fragments",
            |c| {
                let data = frame::encode(&ClientMessage {
                    id: 10_001,
                    body: Some(publish_str(&c.ch, "fragmented")),
                });
                Case {
                    start: Start::LoggedIn,
                    setup: vec![],
                    send: Out::Frames(fragments(data, 3)),
                    expect: Ok,
                    observe: vec![],
                }
            },
        ),
        row(Frames, "R172", "1 MiB + 1 byte in four fragments", |_| {
            Case {
                start: Start::LoggedIn,
                setup: vec![],
                send: Out::Frames(fragments(padded_frame(MAX_FRAME + 1), 4)),
                expect: Close(4008),
                observe: vec![],
            }
        }),
        row(Frames, "R172", "a ping frame", |_| Case {
            start: Start::LoggedIn,
            setup: vec![],
            send: Out::Ws(Message::Ping(Bytes::from_static(b"p"))),
            expect: Ok,
            observe: vec![],
        }),
        row(Frames, "R172", "a request with an unknown field", |_| {
            Case {
                start: Start::LoggedIn,
                setup: vec![],
                send: Out::Ws(Message::Binary(padded_frame(64))),
                expect: Ok,
                observe: vec![],
            }
        }),
        // --- Huge and negative numbers -----------------------------------------------------
        row(Numbers, "R172", "request id u32::MAX", |_| Case {
            start: Start::LoggedIn,
            setup: vec![],
            send: Out::Ws(Message::Binary(frame::encode(&beat(u32::MAX)))),
            expect: Ok,
            observe: vec![],
        }),
        row(Numbers, "R58", "login with huge resume positions", |c| {
            let r = pb::LoginRequest {
                app_id: APP_ID.into(),
                user_id: c.user.clone(),
                token: token(&c.user),
                heartbeat_interval: 60,
                positions: vec![pb::ChannelPosition {
                    channel_type: MSG,
                    channel_name: c.ch.clone(),
                    topic_name: String::new(),
                    position: Some(pb::StreamPosition {
                        epoch: u64::MAX,
                        offset: u64::MAX,
                    }),
                }],
                ..Default::default()
            };
            login_case(Req::Login(r), Ok)
        }),
        row(
            Numbers,
            "R52",
            "login resuming a session id that never existed",
            |c| {
                let r = pb::LoginRequest {
                    app_id: APP_ID.into(),
                    user_id: c.user.clone(),
                    token: token(&c.user),
                    heartbeat_interval: 60,
                    session_id: "\u{7f}".repeat(300),
                    ..Default::default()
                };
                login_case(
                    Req::Login(r),
                    Expect::OkWith(Box::new(|r| match r {
                        Rep::Login(l) if !l.resumed => Result::Ok(()),
                        other => Err(format!("expected a new session, got {other:?}")),
                    })),
                )
            },
        ),
        row(
            Numbers,
            "R140",
            "removeMetadata with majorRevision i64::MIN",
            |c| {
                let mut w = write(MSG, &c.ch, vec![]);
                w.major_revision = Some(i64::MIN);
                simple(Req::RemoveMetadata(w), Code(-12005))
            },
        ),
        row(
            Numbers,
            "R172",
            "publishTopicMessage with send_ts u64::MAX",
            |c| {
                let r = pb::PublishTopicMessageRequest {
                    channel_name: c.ch.clone(),
                    topic_name: "t".into(),
                    message_type: pb::MessageType::String as i32,
                    payload: Bytes::from_static(b"x"),
                    send_ts: u64::MAX,
                    ..Default::default()
                };
                after(
                    vec![join(&c.ch, &c.user), join_topic(&c.ch, "t")],
                    Req::PublishTopicMessage(r),
                    Ok,
                )
            },
        ),
    ]
}

/// A history row: `n` stored publishes to `ch`, then `send`.
fn stored_then(ch: &str, n: usize, send: Req, expect: Expect) -> Case {
    let setup = (0..n)
        .map(|i| {
            Req::Publish(pb::PublishRequest {
                channel_type: MSG,
                channel_name: ch.into(),
                message_type: pb::MessageType::String as i32,
                payload: Bytes::from(format!("m{i}")),
                store_in_history: true,
                ..Default::default()
            })
        })
        .collect();
    after(setup, send, expect)
}

// ---------------------------------------------------------------------------------------
// The runner
// ---------------------------------------------------------------------------------------

/// Removes the digits after `timestamp: ` and `updated: ` from a reply's Debug text, so
/// two observations of unchanged state compare equal.
fn strip_times(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    loop {
        let next = ["timestamp: ", "updated: "]
            .iter()
            .filter_map(|k| rest.find(k).map(|i| (i, k.len())))
            .min();
        let Some((i, k)) = next else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..i + k]);
        out.push('_');
        rest = rest[i + k..].trim_start_matches(|c: char| c.is_ascii_digit());
    }
}

/// The probe's observations; `phase` is 0 after the setup and 1 after the row (the
/// probe's own marker publication of phase 0 is discounted).
async fn observe(probe: &mut RawClient, obs: &[Obs], phase: u64) -> Vec<String> {
    let mut out = Vec::new();
    for o in obs {
        match o {
            Obs::Reply(r) => {
                let reply = probe.request(r.clone()).await;
                out.push(strip_times(&format!("{reply:?}")));
            }
            Obs::Offset(ch) => match probe.request(publish_str(ch, "probe marker")).await {
                Rep::Publish(p) => {
                    let pos = p.position.unwrap_or_default();
                    out.push(format!(
                        "{ch}: epoch {} offset {}",
                        pos.epoch,
                        pos.offset - phase
                    ));
                }
                other => out.push(format!("{ch}: marker refused {other:?}")),
            },
        }
    }
    out
}

/// Runs one row's connection part; `Err` names what went wrong.
async fn run_case(
    url: String,
    ctx: Ctx,
    case: Case,
    ready: tokio::sync::oneshot::Sender<()>,
    go: tokio::sync::oneshot::Receiver<()>,
) -> Result<(), String> {
    let mut c = RawClient::connect(&url).await;
    if case.start == Start::LoggedIn {
        match c.login(APP_ID, &ctx.user, &token(&ctx.user), 60).await {
            Rep::Login(_) => {}
            other => return Err(format!("login failed: {other:?}")),
        }
    }
    for (i, s) in case.setup.into_iter().enumerate() {
        let reply = c.request(s).await;
        if let Rep::Error(e) = reply {
            return Err(format!("setup step {i} refused: {e:?}"));
        }
    }
    // The probe looks at the state now, before the row's request.
    let _ = ready.send(());
    let _ = go.await;
    let id = match case.send {
        Out::Req(r) => Some(c.send_request(r).await),
        Out::Frame(reqs) => {
            let mut msgs = Vec::new();
            for r in reqs {
                let id = c.next_id();
                msgs.push(ClientMessage { id, body: Some(r) });
            }
            let last = msgs.last().map(|m| m.id);
            c.send(&msgs).await;
            last
        }
        Out::Ws(m) => {
            let id = match &m {
                Message::Binary(b) if b.len() > 1 => {
                    frame::decode_all::<ClientMessage>(b.clone(), usize::MAX)
                        .ok()
                        .and_then(|v| v.last().map(|m| m.id))
                        .filter(|id| *id > 0)
                }
                _ => None,
            };
            c.send_ws(m).await;
            id
        }
        Out::Frames(frames) => {
            for f in frames {
                if !c.try_send_ws(Message::Frame(f)).await {
                    break;
                }
            }
            None
        }
    };
    let stays = match case.expect {
        Expect::Ok | Expect::OkWith(_) | Expect::Code(_) => {
            let reply = match id {
                Some(id) => match c.try_reply(id).await {
                    Some(r) => Some(r),
                    None => return Err("the connection closed instead of replying".into()),
                },
                None => None,
            };
            match (&case.expect, reply) {
                // R170: every refusal carries its code, a reason and the operation.
                (Expect::Code(code), Some(Rep::Error(e)))
                    if e.code == *code && !e.reason.is_empty() && !e.operation.is_empty() => {}
                (Expect::Code(code), other) => {
                    return Err(format!("expected code {code}, got {other:?}"));
                }
                (_, Some(Rep::Error(e))) => return Err(format!("expected success, got {e:?}")),
                (Expect::OkWith(check), Some(r)) => check(&r)?,
                _ => {}
            }
            true
        }
        Expect::CodeThenClose(code, close) => {
            match c.try_reply(id.expect("a request")).await {
                Some(Rep::Error(e)) if e.code == code && !e.reason.is_empty() => {}
                other => return Err(format!("expected code {code}, got {other:?}")),
            }
            let ended = c.read_until_closed(STEP, false).await;
            match ended.closing {
                Some(cl) if cl.code == close && !cl.reason.is_empty() => {}
                other => return Err(format!("expected close {close}, got {other:?}")),
            }
            false
        }
        Expect::Close(close) => {
            if let Some(id) = id
                && let Some(r) = c.try_reply(id).await
            {
                return Err(format!("a request after the end was answered: {r:?}"));
            }
            let ended = c.read_until_closed(STEP, false).await;
            match &ended.closing {
                Some(cl) if cl.code == close && !cl.reason.is_empty() && ended.closing_was_last => {
                }
                other => return Err(format!("expected close {close}, got {other:?} ({ended:?})")),
            }
            if let Some(code) = ended.close_code
                && u32::from(code) != close
            {
                return Err(format!(
                    "close frame {code} differs from the Closing {close}"
                ));
            }
            false
        }
    };
    if stays {
        // R172: the connection carries on.
        c.assert_alive().await;
        match case.start {
            Start::LoggedIn => {
                let r = c
                    .request(publish_str(&format!("{}-after", ctx.ch), "after"))
                    .await;
                if !matches!(r, Rep::Publish(_)) {
                    return Err(format!("follow-up publish failed: {r:?}"));
                }
            }
            Start::Anonymous => {
                // A row that logged in (successfully) or not yet: either way the next
                // request must be served.
                let r = c.request(heartbeat()).await;
                if !matches!(r, Rep::Heartbeat(_)) {
                    return Err(format!("follow-up heartbeat failed: {r:?}"));
                }
            }
        }
    }
    Ok(())
}

/// The canary: a client subscribed elsewhere that must keep receiving publications.
struct Canary {
    sub: RawClient,
    publisher: RawClient,
    n: usize,
}

impl Canary {
    async fn new(server: &TestServer) -> Canary {
        let mut sub = server.raw_login("canary").await;
        sub.subscribe("canary").await;
        let publisher = server.raw_login("canary-publisher").await;
        Canary {
            sub,
            publisher,
            n: 0,
        }
    }

    async fn check(&mut self) -> Result<(), String> {
        self.n += 1;
        let tag = format!("canary {}", self.n);
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            match self.publisher.request(publish_str("canary", &tag)).await {
                Rep::Publish(_) => break,
                Rep::Error(e) if e.code == -11025 && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                other => return Err(format!("canary publish failed: {other:?}")),
            }
        }
        loop {
            match self.sub.next_push(STEP).await {
                Some(m) => {
                    if let Some(Rep::Message(p)) = m.body
                        && p.payload == tag.as_bytes()
                    {
                        break;
                    }
                }
                None => return Err("the canary's connection closed".into()),
            }
        }
        // Keep the canary's own connection from timing out.
        self.sub.assert_alive().await;
        Ok(())
    }
}

/// A server for `group`: the base configuration, with history for the history rows.
async fn server_for(group: Group) -> TestServer {
    if group == Group::History {
        let mut config = base_config();
        for app in &mut config.apps {
            app.limits.publish_rate_per_channel = 0;
        }
        let dir = fresh_dir("matrix-history");
        let history = SqliteHistory::open(&dir, HistoryRetention::default()).expect("history");
        let broker = Arc::new(MemoryBroker::new(MemoryConfig::default()));
        TestServer::with_parts(Server::new(config, broker).with_history(Arc::new(history))).await
    } else {
        // Default limits (ServerConfig::default and AppLimits::default) but for the
        // heartbeat range of the test base (1–1800 s).
        TestServer::start().await
    }
}

/// Runs `rows` one after another against one server; returns the failures.
async fn run_rows(server: &TestServer, rows: Vec<(usize, Row)>) -> Vec<String> {
    let mut canary = Canary::new(server).await;
    let mut probe = server.raw_login("probe").await;
    let mut failures = Vec::new();
    for (i, row) in rows {
        let ctx = Ctx {
            user: format!("row{i}"),
            ch: format!("row{i}"),
        };
        let label = format!("row {i} [{}] {}", row.rules, row.what);
        let case = (row.build)(&ctx);
        let observed = case.observe.clone();
        let user = ctx.user.clone();
        let closes = matches!(case.expect, Expect::Close(_) | Expect::CodeThenClose(..));
        let logged_in = case.start == Start::LoggedIn;
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (go_tx, go_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(run_case(server.url(), ctx, case, ready_tx, go_rx));
        // When the setup failed, `ready` is dropped: observe anyway, the task reports.
        let _ = ready_rx.await;
        let before = observe(&mut probe, &observed, 0).await;
        let _ = go_tx.send(());
        let result = task.await;
        let mut errors = Vec::new();
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(e),
            Err(e) => errors.push(format!("the row's client panicked: {e}")),
        }
        let after = observe(&mut probe, &observed, 1).await;
        if before != after {
            errors.push(format!(
                "a refused request changed state (R171):\n  before {before:?}\n  after  {after:?}"
            ));
        }
        if closes && logged_in && errors.is_empty() {
            // A close the client does not come back from ends the session at once.
            let (gone, last) = probe_offline(&mut probe, &user).await;
            if !gone {
                errors.push(format!("{user} still online after the close: {last}"));
            }
        }
        if let Err(e) = canary.check().await {
            errors.push(format!("canary: {e}"));
        }
        probe.assert_alive().await;
        for e in errors {
            failures.push(format!("{label}: {e}"));
        }
    }
    // The server still serves new clients.
    let mut fresh = server.raw_login("fresh-after-matrix").await;
    fresh.assert_alive().await;
    failures
}

async fn probe_offline(probe: &mut RawClient, user: &str) -> (bool, String) {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let r = probe
            .request(publish(
                USER,
                user,
                pb::MessageType::String,
                Bytes::from_static(b"?"),
            ))
            .await;
        let gone = matches!(&r, Rep::Error(e) if e.code == -11033);
        if gone || tokio::time::Instant::now() > deadline {
            return (gone, format!("{r:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs every row of `group` that is not marked as a known bug; fails listing every
/// row that did not behave.
async fn run_group(group: Group) {
    let selected: Vec<(usize, Row)> = rows()
        .into_iter()
        .enumerate()
        .filter(|(_, r)| r.group == group && r.bug.is_none())
        .collect();
    assert!(!selected.is_empty(), "no rows in {group:?}");
    let n = selected.len();
    let server = server_for(group).await;
    let failures = run_rows(&server, selected).await;
    assert!(
        failures.is_empty(),
        "{} of {n} rows of {group:?} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    println!("{group:?}: {n} rows passed");
}

#[tokio::test]
async fn matrix_r1_r6_r16_r17_r25_r26_identity_and_login() {
    run_group(Group::Identity).await;
}

#[tokio::test]
async fn matrix_r7_r8_r63_r75_publish() {
    run_group(Group::Publish).await;
}

#[tokio::test]
async fn matrix_r7_r81_r83_subscriptions() {
    run_group(Group::Subscriptions).await;
}

#[tokio::test]
async fn matrix_r9_r96_r113_stream_channels_and_topics() {
    run_group(Group::Stream).await;
}

#[tokio::test]
async fn matrix_r12_r123_r131_presence() {
    run_group(Group::Presence).await;
}

#[tokio::test]
async fn matrix_r10_r11_r136_r146_storage() {
    run_group(Group::Storage).await;
}

#[tokio::test]
async fn matrix_r10_r125_r150_r159_locks() {
    run_group(Group::Locks).await;
}

#[tokio::test]
async fn matrix_r161_r163_history() {
    run_group(Group::History).await;
}

#[tokio::test]
async fn matrix_r24_r30_r35_wrong_state() {
    run_group(Group::WrongState).await;
}

#[tokio::test]
async fn matrix_r172_frames() {
    run_group(Group::Frames).await;
}

#[tokio::test]
async fn matrix_r172_huge_and_negative_numbers() {
    run_group(Group::Numbers).await;
}

/// R77 at its default: 100 subscriptions pass, the 101st fails with −11005.
#[tokio::test]
async fn r77_default_limit_of_100_subscriptions() {
    run_group(Group::DefaultSubscriptions).await;
}

/// R89 at its default: 10 joined stream channels pass, the 11th fails with −11005.
#[tokio::test]
async fn r89_default_limit_of_10_stream_channels() {
    run_group(Group::DefaultStreamChannels).await;
}

/// R98 at its default: 8 joined topics pass, the 9th fails with −11014.
#[tokio::test]
async fn r98_default_limit_of_8_joined_topics() {
    run_group(Group::DefaultJoinedTopics).await;
}

/// R105 at its default: 50 subscribed topics pass, the 51st fails with −11014.
#[tokio::test]
async fn r105_default_limit_of_50_subscribed_topics() {
    run_group(Group::DefaultSubscribedTopics).await;
}

/// R106 at its default: 64 followed publishers per topic; past them −11003 or 20003.
#[tokio::test]
async fn r106_default_limit_of_64_publishers_per_topic() {
    run_group(Group::DefaultTopicPublishers).await;
}

/// The rows marked as server bugs, each expected to behave as the spec says; fails
/// until every one is fixed (then drop the marks and this test).
#[tokio::test]
#[ignore = "server bugs: the rows marked `bug` in the matrix (see each row's reason)"]
async fn known_server_bugs() {
    let all = rows();
    let mut failures = Vec::new();
    for group in [
        Group::Identity,
        Group::Publish,
        Group::Subscriptions,
        Group::Stream,
        Group::Presence,
        Group::Storage,
        Group::Locks,
        Group::History,
        Group::WrongState,
        Group::Frames,
        Group::Numbers,
    ] {
        let selected: Vec<(usize, Row)> = rows()
            .into_iter()
            .enumerate()
            .filter(|(_, r)| r.group == group && r.bug.is_some())
            .collect();
        if selected.is_empty() {
            continue;
        }
        let server = server_for(group).await;
        failures.extend(run_rows(&server, selected).await);
    }
    let bugs: Vec<_> = all
        .iter()
        .filter_map(|r| r.bug.map(|b| format!("[{}] {}: {b}", r.rules, r.what)))
        .collect();
    assert!(
        failures.is_empty(),
        "known bugs {bugs:#?}\nstill failing:\n{}",
        failures.join("\n")
    );
}

/// The table itself: every row cites at least one rule, and descriptions are unique.
#[test]
fn every_row_cites_a_rule() {
    let all = rows();
    let mut seen = std::collections::HashSet::new();
    for r in &all {
        assert!(
            r.rules
                .split(' ')
                .all(|x| x.starts_with('R') && x[1..].parse::<u32>().is_ok()),
            "{}: {}",
            r.what,
            r.rules
        );
        assert!(
            seen.insert((r.group as u8, r.what)),
            "duplicate row {}",
            r.what
        );
    }
    assert!(all.len() >= 150, "the matrix has {} rows", all.len());
}
