//! Storage over real sockets, at the wire level (api.md §6, §9.5, §9.10, §10.7, R11,
//! R80, R134–R149, the −12xxx codes of §12.2): channel metadata (MESSAGE and STREAM are
//! separate objects) and user metadata set / get / update / remove with their replies,
//! item and major revision guards, the limits of a call with their codes, compare-and-set
//! under concurrent writers, writes gated by a lock, the SNAPSHOT / UPDATE storage events
//! of channel members with `withMetadata` and of user-metadata subscribers, and
//! durability across a server restart.
//!
//! Each test is named after the rule it checks. "Nothing arrives" is shown with a
//! sentinel that does arrive: a storage event is handed to the subscriber's connection
//! before the writer's reply is sent, so a USER message sent to the subscriber after
//! that reply would come after any event that should not have been sent.

mod common;

use bytes::Bytes;
use common::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use switchboard_engine_memory::{MemoryBroker, MemoryConfig};
use switchboard_protocol::now_ms;
use switchboard_protocol::pb::{self, client_message::Body as Req, server_message::Body as Rep};
use switchboard_server::Server;
use switchboard_token::RtcRole;

/// The channel name most tests use (as a MESSAGE and as a STREAM channel).
const ROOM: &str = "room";

const SNAPSHOT: i32 = pb::StorageEventType::Snapshot as i32;
const UPDATE: i32 = pb::StorageEventType::Update as i32;
const CHANNEL_STORAGE: i32 = pb::StorageType::Channel as i32;
const USER_STORAGE: i32 = pb::StorageType::User as i32;

// Error codes of the contract (api.md §12.2).
const ITEM_LIMIT: i32 = -12002;
const INVALID_ITEM: i32 = -12003;
const INVALID_REVISION: i32 = -12005;
const LENGTH_OVERFLOW: i32 = -12006;
const INVALID_LOCK_NAME: i32 = -12007;
const LOCK_NOT_ACQUIRED: i32 = -12008;
const INVALID_KEY: i32 = -12009;
const KEY_TOO_LONG: i32 = -12011;
const VALUE_TOO_LONG: i32 = -12012;
const DUPLICATE_KEY: i32 = -12013;
const OUTDATED: i32 = -12014;
const NOT_SUBSCRIBED: i32 = -12015;
const SUBSCRIBE_LIMIT: i32 = -12017;
const NOT_AVAILABLE: i32 = -12019;

// ---------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------

/// Which metadata write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Set,
    Update,
    Remove,
}

impl Op {
    fn body(self, req: pb::MetadataWriteRequest) -> Req {
        match self {
            Op::Set => Req::SetMetadata(req),
            Op::Update => Req::UpdateMetadata(req),
            Op::Remove => Req::RemoveMetadata(req),
        }
    }

    /// The API name an error reply carries.
    fn operation(self, channel_type: i32) -> &'static str {
        let user = channel_type == USER;
        match (self, user) {
            (Op::Set, false) => "setChannelMetadata",
            (Op::Set, true) => "setUserMetadata",
            (Op::Update, false) => "updateChannelMetadata",
            (Op::Update, true) => "updateUserMetadata",
            (Op::Remove, false) => "removeChannelMetadata",
            (Op::Remove, true) => "removeUserMetadata",
        }
    }

    /// The reply of this write, if `rep` is one.
    fn reply(self, rep: &Rep) -> Option<&pb::MetadataWriteReply> {
        match (self, rep) {
            (Op::Set, Rep::SetMetadata(r))
            | (Op::Update, Rep::UpdateMetadata(r))
            | (Op::Remove, Rep::RemoveMetadata(r)) => Some(r),
            _ => None,
        }
    }
}

/// An item without a revision guard (−1).
fn item(key: &str, value: &str) -> pb::MetadataItem {
    pb::MetadataItem {
        key: key.into(),
        value: value.into(),
        revision: None,
    }
}

/// An item with a revision guard.
fn guarded(key: &str, value: &str, revision: i64) -> pb::MetadataItem {
    pb::MetadataItem {
        revision: Some(revision),
        ..item(key, value)
    }
}

/// A key to remove.
fn key(k: &str) -> pb::MetadataItem {
    item(k, "")
}

/// A write of `items` to the metadata of `name` (USER: a user id, empty = the caller).
fn write(channel_type: i32, name: &str, items: Vec<pb::MetadataItem>) -> pb::MetadataWriteRequest {
    pb::MetadataWriteRequest {
        channel_type,
        channel_name: name.into(),
        items,
        ..Default::default()
    }
}

/// The same write with a major revision guard.
fn with_major(req: pb::MetadataWriteRequest, major: i64) -> pb::MetadataWriteRequest {
    pb::MetadataWriteRequest {
        major_revision: Some(major),
        ..req
    }
}

/// The same write gated by `lock`.
fn with_lock(req: pb::MetadataWriteRequest, lock: &str) -> pb::MetadataWriteRequest {
    pb::MetadataWriteRequest {
        lock_name: lock.into(),
        ..req
    }
}

async fn try_write(raw: &mut RawClient, op: Op, req: pb::MetadataWriteRequest) -> Rep {
    raw.request(op.body(req)).await
}

/// A write that must succeed; checks that the reply names the object (USER with an
/// empty name: the caller, so some name).
async fn write_ok(
    raw: &mut RawClient,
    op: Op,
    req: pb::MetadataWriteRequest,
) -> pb::MetadataWriteReply {
    let (channel_type, name) = (req.channel_type, req.channel_name.clone());
    let rep = try_write(raw, op, req).await;
    let Some(r) = op.reply(&rep) else {
        panic!("{op:?} of {channel_type}/{name:?} failed: {rep:?}");
    };
    assert_eq!(r.channel_type, channel_type, "{r:?}");
    if channel_type == USER && name.is_empty() {
        assert!(!r.channel_name.is_empty(), "names the caller: {r:?}");
    } else {
        assert_eq!(r.channel_name, name, "{r:?}");
    }
    assert!(r.timestamp > 0, "{r:?}");
    r.clone()
}

async fn try_get(raw: &mut RawClient, channel_type: i32, name: &str) -> Rep {
    raw.request(Req::GetMetadata(pb::GetMetadataRequest {
        channel_type,
        channel_name: name.into(),
    }))
    .await
}

/// The complete object (must succeed); checks `total_count` against the items.
async fn get(raw: &mut RawClient, channel_type: i32, name: &str) -> pb::Metadata {
    match try_get(raw, channel_type, name).await {
        Rep::GetMetadata(r) => {
            assert_eq!(r.channel_type, channel_type, "{r:?}");
            if !name.is_empty() {
                assert_eq!(r.channel_name, name, "{r:?}");
            }
            let data = r.data.expect("a get reply carries the data");
            assert_eq!(data.total_count as usize, data.items.len(), "{data:?}");
            data
        }
        other => panic!("get of {channel_type}/{name:?} failed: {other:?}"),
    }
}

/// Items as key → (value, revision).
type Items = BTreeMap<String, (String, i64)>;

fn items_of(m: &pb::Metadata) -> Items {
    m.items
        .iter()
        .map(|i| (i.key.clone(), (i.value.clone(), i.revision)))
        .collect()
}

fn items(list: &[(&str, &str, i64)]) -> Items {
    list.iter()
        .map(|(k, v, r)| (k.to_string(), (v.to_string(), *r)))
        .collect()
}

/// Checks a whole object: major revision and exactly these items.
#[track_caller]
fn assert_data(m: &pb::Metadata, major: i64, expected: &[(&str, &str, i64)]) {
    assert_eq!(m.major_revision, major, "major revision: {m:?}");
    assert_eq!(items_of(m), items(expected), "items: {m:?}");
    assert_eq!(m.total_count as usize, expected.len(), "{m:?}");
}

/// Checks a refusal: code, operation and a reason containing every one of `mentions`.
#[track_caller]
fn assert_error(reply: Rep, code: i32, op: &str, mentions: &[&str]) -> pb::Error {
    let e = expect_error(reply);
    assert_eq!(e.code, code, "{e:?}");
    assert_eq!(e.operation, op, "{e:?}");
    for m in mentions {
        assert!(
            e.reason.contains(m),
            "the reason should mention {m:?}: {e:?}"
        );
    }
    e
}

/// A write that must be refused with `code`, and leave the object as it was (R142)
/// and the connection working.
async fn refused(
    raw: &mut RawClient,
    op: Op,
    req: pb::MetadataWriteRequest,
    code: i32,
    mentions: &[&str],
) -> pb::Error {
    let (channel_type, name) = (req.channel_type, req.channel_name.clone());
    // The object as it was, when it can be read (not for a bad channel type or name).
    let before = match try_get(raw, channel_type, &name).await {
        Rep::GetMetadata(r) => r.data,
        _ => None,
    };
    let rep = try_write(raw, op, req).await;
    let e = assert_error(rep, code, op.operation(channel_type), mentions);
    raw.assert_alive().await;
    if let Some(before) = before {
        let after = get(raw, channel_type, &name).await;
        assert_eq!(
            after, before,
            "a refused write changes nothing (R142): {e:?}"
        );
    }
    e
}

// ---------------------------------------------------------------------------------------
// Channels, locks and pushes
// ---------------------------------------------------------------------------------------

/// Subscribes to a MESSAGE channel without presence; with `with_metadata` the storage
/// SNAPSHOT that follows the reply is read and returned.
async fn subscribe(
    raw: &mut RawClient,
    channel: &str,
    with_metadata: Option<bool>,
) -> Option<pb::StorageEvent> {
    let rep = raw
        .request(Req::Subscribe(pb::SubscribeRequest {
            channel_name: channel.into(),
            with_presence: Some(false),
            with_metadata,
            ..Default::default()
        }))
        .await;
    assert!(matches!(rep, Rep::Subscribe(_)), "subscribe: {rep:?}");
    if with_metadata == Some(true) {
        let e = next_storage(raw, "the SNAPSHOT after subscribe").await;
        assert_eq!(e.event_type, SNAPSHOT, "{e:?}");
        Some(e)
    } else {
        None
    }
}

async fn unsubscribe(raw: &mut RawClient, channel: &str) {
    let rep = raw
        .request(Req::Unsubscribe(pb::UnsubscribeRequest {
            channel_name: channel.into(),
        }))
        .await;
    assert!(matches!(rep, Rep::Unsubscribe(_)), "unsubscribe: {rep:?}");
}

/// An RTC token of [`APP_ID`] for `channel` and `uid`, valid one hour.
fn rtc_token(channel: &str, uid: &str) -> String {
    switchboard_token::build_rtc_token(
        APP_ID,
        CERT,
        channel,
        uid,
        RtcRole::Publisher,
        3600,
        3600,
        now_secs(),
    )
    .expect("RTC token builds")
}

/// Joins a STREAM channel without presence; reads the topic SNAPSHOT and, with
/// `with_metadata`, the storage SNAPSHOT that follows, which is returned.
async fn join(
    raw: &mut RawClient,
    user: &str,
    channel: &str,
    with_metadata: Option<bool>,
) -> Option<pb::StorageEvent> {
    let rep = raw
        .request(Req::Join(pb::JoinRequest {
            channel_name: channel.into(),
            token: rtc_token(channel, user),
            with_presence: Some(false),
            with_metadata,
            ..Default::default()
        }))
        .await;
    assert!(matches!(rep, Rep::Join(_)), "join: {rep:?}");
    match next_push(raw, "the topic SNAPSHOT").await {
        Rep::Topic(e) => assert_eq!(e.event_type, pb::TopicEventType::Snapshot as i32),
        other => panic!("expected the topic SNAPSHOT after join, got {other:?}"),
    }
    if with_metadata == Some(true) {
        let e = next_storage(raw, "the storage SNAPSHOT after join").await;
        assert_eq!(e.event_type, SNAPSHOT, "{e:?}");
        Some(e)
    } else {
        None
    }
}

async fn subscribe_user(raw: &mut RawClient, user: &str) -> Rep {
    raw.request(Req::SubscribeUserMetadata(
        pb::SubscribeUserMetadataRequest {
            user_id: user.into(),
        },
    ))
    .await
}

async fn unsubscribe_user(raw: &mut RawClient, user: &str) -> Rep {
    raw.request(Req::UnsubscribeUserMetadata(
        pb::UnsubscribeUserMetadataRequest {
            user_id: user.into(),
        },
    ))
    .await
}

/// Defines `lock` in a channel and takes it; panics unless both succeed.
async fn define_and_acquire(raw: &mut RawClient, channel_type: i32, channel: &str, lock: &str) {
    let rep = raw
        .request(Req::SetLock(pb::SetLockRequest {
            channel_type,
            channel_name: channel.into(),
            lock_name: lock.into(),
            ttl: 0,
        }))
        .await;
    assert!(matches!(rep, Rep::SetLock(_)), "setLock: {rep:?}");
    acquire(raw, channel_type, channel, lock).await;
}

async fn acquire(raw: &mut RawClient, channel_type: i32, channel: &str, lock: &str) {
    let rep = raw
        .request(Req::AcquireLock(pb::AcquireLockRequest {
            channel_type,
            channel_name: channel.into(),
            lock_name: lock.into(),
            retry: false,
        }))
        .await;
    assert!(matches!(rep, Rep::AcquireLock(_)), "acquireLock: {rep:?}");
}

async fn release(raw: &mut RawClient, channel_type: i32, channel: &str, lock: &str) {
    let rep = raw
        .request(Req::ReleaseLock(pb::ReleaseLockRequest {
            channel_type,
            channel_name: channel.into(),
            lock_name: lock.into(),
        }))
        .await;
    assert!(matches!(rep, Rep::ReleaseLock(_)), "releaseLock: {rep:?}");
}

/// The next push.
async fn next_push(raw: &mut RawClient, what: &str) -> Rep {
    raw.next_push(STEP)
        .await
        .unwrap_or_else(|| panic!("connection closed while waiting for {what}"))
        .body
        .expect("push has a body")
}

/// The next push, which must be a storage event.
async fn next_storage(raw: &mut RawClient, what: &str) -> pb::StorageEvent {
    match next_push(raw, what).await {
        Rep::Storage(e) => e,
        other => panic!("expected a storage event ({what}), got {other:?}"),
    }
}

/// Sends a USER message `text` from `from` to `to_user`, and checks that it is the next
/// push `to` reads: nothing was sent to `to` before it.
async fn sentinel(from: &mut RawClient, to: &mut RawClient, to_user: &str, text: &str) {
    let body = publish_body(
        pb::ChannelType::User,
        to_user,
        pb::MessageType::String,
        Bytes::copy_from_slice(text.as_bytes()),
    );
    let rep = from.request(body).await;
    assert!(matches!(rep, Rep::Publish(_)), "sentinel publish: {rep:?}");
    match next_push(to, text).await {
        Rep::Message(m) => assert_eq!(&m.payload[..], text.as_bytes(), "{m:?}"),
        other => panic!("{to_user} expected the sentinel {text:?} first, got {other:?}"),
    }
}

/// Checks a channel storage event.
#[track_caller]
fn assert_channel_event(
    e: &pb::StorageEvent,
    kind: i32,
    channel_type: i32,
    channel: &str,
    publisher: &str,
    major: i64,
    expected: &[(&str, &str, i64)],
) {
    assert_eq!(e.event_type, kind, "{e:?}");
    assert_eq!(e.storage_type, CHANNEL_STORAGE, "{e:?}");
    assert_eq!(e.channel_type, channel_type, "{e:?}");
    assert_eq!(e.channel_name, channel, "{e:?}");
    assert_eq!(e.publisher, publisher, "{e:?}");
    assert!(e.timestamp > 0, "{e:?}");
    assert_data(
        e.data.as_ref().expect("an event carries data"),
        major,
        expected,
    );
}

/// Checks a user storage event about `user`.
#[track_caller]
fn assert_user_event(
    e: &pb::StorageEvent,
    kind: i32,
    user: &str,
    major: i64,
    expected: &[(&str, &str, i64)],
) {
    assert_eq!(e.event_type, kind, "{e:?}");
    assert_eq!(e.storage_type, USER_STORAGE, "{e:?}");
    assert_eq!(e.channel_type, USER, "{e:?}");
    assert_eq!(
        e.channel_name, "",
        "user metadata events name no channel: {e:?}"
    );
    assert_eq!(
        e.publisher, user,
        "the publisher is the user concerned: {e:?}"
    );
    assert!(e.timestamp > 0, "{e:?}");
    assert_data(
        e.data.as_ref().expect("an event carries data"),
        major,
        expected,
    );
}

// ---------------------------------------------------------------------------------------
// Set / get / update / remove (R134–R137, R146)
// ---------------------------------------------------------------------------------------

/// R134, R135, R137, R141 and api.md §6.2: channel metadata is read and written without
/// subscribing or joining; a never-written object reads as empty with major revision
/// −1; set creates and overwrites the listed items only; update and remove act on the
/// listed keys; remove without keys deletes every item but keeps the major revision;
/// replies carry the item count and the new major revision; the MESSAGE and STREAM
/// channels of one name are separate objects, and every user reads the same object.
#[tokio::test]
async fn r134_r135_r137_channel_metadata_set_get_update_remove() {
    let server = TestServer::start().await;
    let mut alice = server.raw_login("alice").await;
    let mut bob = server.raw_login("bob").await;

    for ty in [MESSAGE, STREAM] {
        let m = get(&mut alice, ty, ROOM).await;
        assert_data(&m, -1, &[]);
    }

    let r = write_ok(
        &mut alice,
        Op::Set,
        write(MESSAGE, ROOM, vec![item("a", "1"), item("b", "2")]),
    )
    .await;
    assert_eq!((r.total_count, r.major_revision), (2, 1), "{r:?}");
    assert_data(
        &get(&mut alice, MESSAGE, ROOM).await,
        1,
        &[("a", "1", 1), ("b", "2", 1)],
    );
    assert_data(&get(&mut alice, STREAM, ROOM).await, -1, &[]);

    let r = write_ok(
        &mut alice,
        Op::Set,
        write(STREAM, ROOM, vec![item("a", "x")]),
    )
    .await;
    assert_eq!((r.total_count, r.major_revision), (1, 1), "{r:?}");

    // R135: b overwritten, c created, a unchanged (keeps its revision).
    let r = write_ok(
        &mut bob,
        Op::Set,
        write(MESSAGE, ROOM, vec![item("b", "20"), item("c", "3")]),
    )
    .await;
    assert_eq!((r.total_count, r.major_revision), (3, 2), "{r:?}");
    assert_data(
        &get(&mut alice, MESSAGE, ROOM).await,
        2,
        &[("a", "1", 1), ("b", "20", 2), ("c", "3", 2)],
    );

    let r = write_ok(
        &mut alice,
        Op::Update,
        write(MESSAGE, ROOM, vec![item("a", "10")]),
    )
    .await;
    assert_eq!((r.total_count, r.major_revision), (3, 3), "{r:?}");
    assert_data(
        &get(&mut bob, MESSAGE, ROOM).await,
        3,
        &[("a", "10", 3), ("b", "20", 2), ("c", "3", 2)],
    );

    // R137: only the listed keys.
    let r = write_ok(&mut bob, Op::Remove, write(MESSAGE, ROOM, vec![key("b")])).await;
    assert_eq!((r.total_count, r.major_revision), (2, 4), "{r:?}");
    assert_data(
        &get(&mut alice, MESSAGE, ROOM).await,
        4,
        &[("a", "10", 3), ("c", "3", 2)],
    );

    // R137: no keys = every item; the major revision survives (R141).
    let r = write_ok(&mut alice, Op::Remove, write(MESSAGE, ROOM, vec![])).await;
    assert_eq!((r.total_count, r.major_revision), (0, 5), "{r:?}");
    assert_data(&get(&mut bob, MESSAGE, ROOM).await, 5, &[]);

    let r = write_ok(
        &mut alice,
        Op::Set,
        write(MESSAGE, ROOM, vec![item("d", "4")]),
    )
    .await;
    assert_eq!((r.total_count, r.major_revision), (1, 6), "{r:?}");
    assert_data(&get(&mut bob, MESSAGE, ROOM).await, 6, &[("d", "4", 6)]);

    // The STREAM channel's object was never touched by the MESSAGE writes.
    assert_data(&get(&mut bob, STREAM, ROOM).await, 1, &[("a", "x", 1)]);
    // Nor is there a USER object of that name.
    assert_data(&get(&mut bob, USER, ROOM).await, -1, &[]);
}

/// R136: an update listing a key that does not exist fails with −12014 naming the key,
/// and writes none of the listed items; an update of a never-written object too.
#[tokio::test]
async fn r136_update_of_a_missing_key_answers_12014_and_changes_nothing() {
    let server = TestServer::start().await;
    let mut alice = server.raw_login("alice").await;
    write_ok(
        &mut alice,
        Op::Set,
        write(MESSAGE, ROOM, vec![item("a", "1")]),
    )
    .await;
    refused(
        &mut alice,
        Op::Update,
        write(MESSAGE, ROOM, vec![item("a", "2"), item("zz", "3")]),
        OUTDATED,
        &["zz"],
    )
    .await;
    assert_data(&get(&mut alice, MESSAGE, ROOM).await, 1, &[("a", "1", 1)]);

    refused(
        &mut alice,
        Op::Update,
        write(STREAM, ROOM, vec![item("a", "2")]),
        OUTDATED,
        &["a"],
    )
    .await;
    assert_data(&get(&mut alice, STREAM, ROOM).await, -1, &[]);
    refused(
        &mut alice,
        Op::Update,
        write(USER, "", vec![item("a", "2")]),
        OUTDATED,
        &[],
    )
    .await;
}

/// R146, R135–R137 for users: channel type USER with an empty name acts on the caller
/// (the reply names the caller), a user id names that user; a client may write another
/// user's metadata; each user's object is separate from the others' and from channels;
/// an invalid user id fails with −10006.
#[tokio::test]
async fn r146_user_metadata_of_the_caller_and_of_another_user() {
    let server = TestServer::start().await;
    let mut alice = server.raw_login("alice").await;
    let mut bob = server.raw_login("bob").await;

    let Rep::GetMetadata(r) = try_get(&mut alice, USER, "").await else {
        panic!("get of the caller's metadata");
    };
    assert_eq!((r.channel_type, r.channel_name.as_str()), (USER, "alice"));
    assert_data(r.data.as_ref().expect("data"), -1, &[]);

    let r = write_ok(
        &mut alice,
        Op::Set,
        write(USER, "", vec![item("mood", "happy")]),
    )
    .await;
    assert_eq!(
        r.channel_name, "alice",
        "an empty name is the caller: {r:?}"
    );
    assert_eq!((r.total_count, r.major_revision), (1, 1), "{r:?}");
    assert_data(
        &get(&mut bob, USER, "alice").await,
        1,
        &[("mood", "happy", 1)],
    );
    assert_data(&get(&mut bob, USER, "").await, -1, &[]);

    // bob writes alice's metadata (R146), recorded as its author.
    let req = pb::MetadataWriteRequest {
        add_user_id: true,
        ..write(USER, "alice", vec![item("note", "from bob")])
    };
    let r = write_ok(&mut bob, Op::Set, req).await;
    assert_eq!((r.total_count, r.major_revision), (2, 2), "{r:?}");
    let m = get(&mut alice, USER, "").await;
    assert_data(&m, 2, &[("mood", "happy", 1), ("note", "from bob", 2)]);
    let note = m.items.iter().find(|i| i.key == "note").expect("note");
    assert_eq!(note.author_uid, "bob", "{note:?}");
    assert_data(&get(&mut alice, USER, "bob").await, -1, &[]);

    let r = write_ok(
        &mut alice,
        Op::Update,
        write(USER, "", vec![item("mood", "calm")]),
    )
    .await;
    assert_eq!((r.total_count, r.major_revision), (2, 3), "{r:?}");
    let r = write_ok(
        &mut bob,
        Op::Remove,
        write(USER, "alice", vec![key("note")]),
    )
    .await;
    assert_eq!((r.total_count, r.major_revision), (1, 4), "{r:?}");
    assert_data(
        &get(&mut bob, USER, "alice").await,
        4,
        &[("mood", "calm", 3)],
    );
    let r = write_ok(&mut alice, Op::Remove, write(USER, "", vec![])).await;
    assert_eq!((r.total_count, r.major_revision), (0, 5), "{r:?}");
    assert_data(&get(&mut bob, USER, "alice").await, 5, &[]);

    // A channel named after the user is another object.
    assert_data(&get(&mut bob, MESSAGE, "alice").await, -1, &[]);

    for bad in ["_alice", "a/b", "null"] {
        refused(
            &mut alice,
            Op::Set,
            write(USER, bad, vec![item("k", "v")]),
            INVALID_USER_ID,
            &[],
        )
        .await;
        assert_error(
            try_get(&mut alice, USER, bad).await,
            INVALID_USER_ID,
            "getUserMetadata",
            &[],
        );
    }
}

// ---------------------------------------------------------------------------------------
// Revisions (R138–R144)
// ---------------------------------------------------------------------------------------

/// R138, R141, R142: item guards. −1 (explicit or unset) is no check; 0 creates only a
/// missing key; a positive guard must equal the item's current revision; a stale,
/// future or absent-key guard fails with −12014 and the write changes nothing, not even
/// its other (valid) items.
#[tokio::test]
async fn r138_item_revision_guards() {
    let server = TestServer::start().await;
    let mut alice = server.raw_login("alice").await;
    let w = |items| write(MESSAGE, ROOM, items);
    write_ok(&mut alice, Op::Set, w(vec![item("a", "1"), item("b", "1")])).await;
    write_ok(&mut alice, Op::Set, w(vec![guarded("b", "2", -1)])).await;
    assert_data(
        &get(&mut alice, MESSAGE, ROOM).await,
        2,
        &[("a", "1", 1), ("b", "2", 2)],
    );

    // 0: create only.
    refused(
        &mut alice,
        Op::Set,
        w(vec![guarded("a", "x", 0)]),
        OUTDATED,
        &["a"],
    )
    .await;
    let r = write_ok(&mut alice, Op::Set, w(vec![guarded("c", "3", 0)])).await;
    assert_eq!(r.major_revision, 3);

    // Positive: equal to the current revision.
    let r = write_ok(&mut alice, Op::Set, w(vec![guarded("a", "4", 1)])).await;
    assert_eq!(r.major_revision, 4);
    refused(
        &mut alice,
        Op::Set,
        w(vec![guarded("a", "stale", 1)]),
        OUTDATED,
        &["a"],
    )
    .await;
    refused(
        &mut alice,
        Op::Set,
        w(vec![guarded("b", "future", 99)]),
        OUTDATED,
        &["b"],
    )
    .await;
    refused(
        &mut alice,
        Op::Set,
        w(vec![guarded("d", "absent", 4)]),
        OUTDATED,
        &["d"],
    )
    .await;

    // Update with guards.
    let r = write_ok(&mut alice, Op::Update, w(vec![guarded("a", "5", 4)])).await;
    assert_eq!(r.major_revision, 5);
    refused(
        &mut alice,
        Op::Update,
        w(vec![guarded("a", "stale", 4)]),
        OUTDATED,
        &["a"],
    )
    .await;

    // Remove with guards.
    refused(
        &mut alice,
        Op::Remove,
        w(vec![guarded("b", "", 1)]),
        OUTDATED,
        &["b"],
    )
    .await;
    assert_data(
        &get(&mut alice, MESSAGE, ROOM).await,
        5,
        &[("a", "5", 5), ("b", "2", 2), ("c", "3", 3)],
    );
    let r = write_ok(&mut alice, Op::Remove, w(vec![guarded("b", "", 2)])).await;
    assert_eq!((r.total_count, r.major_revision), (2, 6));

    // R142: one failing guard refuses the whole write.
    refused(
        &mut alice,
        Op::Set,
        w(vec![
            guarded("a", "new", 5),
            item("e", "new"),
            guarded("c", "new", 1),
        ]),
        OUTDATED,
        &["c"],
    )
    .await;
    refused(
        &mut alice,
        Op::Remove,
        w(vec![key("a"), guarded("c", "", 99)]),
        OUTDATED,
        &["c"],
    )
    .await;
    assert_data(
        &get(&mut alice, MESSAGE, ROOM).await,
        6,
        &[("a", "5", 5), ("c", "3", 3)],
    );
    // The same items with current guards go through together.
    let r = write_ok(
        &mut alice,
        Op::Set,
        w(vec![
            guarded("a", "new", 5),
            item("e", "new"),
            guarded("c", "new", 3),
        ]),
    )
    .await;
    assert_eq!((r.total_count, r.major_revision), (3, 7));
    assert_data(
        &get(&mut alice, MESSAGE, ROOM).await,
        7,
        &[("a", "new", 7), ("c", "new", 7), ("e", "new", 7)],
    );
}

/// R139, R142: the major revision guard. 0 on set creates only an object that does not
/// exist (an object exists while it has items: engine contract); a positive guard must
/// equal the current major revision; otherwise −12014 and nothing changes; a positive
/// guard on a never-written object fails too; −1 is no check.
#[tokio::test]
async fn r139_major_revision_guards() {
    let server = TestServer::start().await;
    let mut alice = server.raw_login("alice").await;
    let w = |items| write(MESSAGE, ROOM, items);

    refused(
        &mut alice,
        Op::Set,
        with_major(w(vec![item("a", "1")]), 1),
        OUTDATED,
        &["majorRevision"],
    )
    .await;
    let r = write_ok(&mut alice, Op::Set, with_major(w(vec![item("a", "1")]), 0)).await;
    assert_eq!(r.major_revision, 1);
    refused(
        &mut alice,
        Op::Set,
        with_major(w(vec![item("b", "1")]), 0),
        OUTDATED,
        &["majorRevision"],
    )
    .await;

    let r = write_ok(&mut alice, Op::Set, with_major(w(vec![item("b", "2")]), 1)).await;
    assert_eq!(r.major_revision, 2);
    refused(
        &mut alice,
        Op::Set,
        with_major(w(vec![item("b", "stale")]), 1),
        OUTDATED,
        &["majorRevision"],
    )
    .await;
    refused(
        &mut alice,
        Op::Set,
        with_major(w(vec![item("b", "future")]), 3),
        OUTDATED,
        &["majorRevision"],
    )
    .await;

    let r = write_ok(
        &mut alice,
        Op::Update,
        with_major(w(vec![item("a", "3")]), 2),
    )
    .await;
    assert_eq!(r.major_revision, 3);
    refused(
        &mut alice,
        Op::Update,
        with_major(w(vec![item("a", "stale")]), 2),
        OUTDATED,
        &["majorRevision"],
    )
    .await;
    refused(
        &mut alice,
        Op::Remove,
        with_major(w(vec![key("a")]), 2),
        OUTDATED,
        &["majorRevision"],
    )
    .await;
    let r = write_ok(&mut alice, Op::Remove, with_major(w(vec![key("a")]), 3)).await;
    assert_eq!((r.total_count, r.major_revision), (1, 4));
    let r = write_ok(&mut alice, Op::Set, with_major(w(vec![item("c", "5")]), -1)).await;
    assert_eq!((r.total_count, r.major_revision), (2, 5));
    assert_data(
        &get(&mut alice, MESSAGE, ROOM).await,
        5,
        &[("b", "2", 2), ("c", "5", 5)],
    );

    // Emptied, the object counts as absent for guard 0, but its major revision goes on.
    write_ok(&mut alice, Op::Remove, with_major(w(vec![]), 5)).await;
    let r = write_ok(&mut alice, Op::Set, with_major(w(vec![item("z", "1")]), 0)).await;
    assert_eq!((r.total_count, r.major_revision), (1, 7));

    // User metadata has the same guards.
    refused(
        &mut alice,
        Op::Set,
        with_major(write(USER, "", vec![item("a", "1")]), 2),
        OUTDATED,
        &[],
    )
    .await;
    let r = write_ok(
        &mut alice,
        Op::Set,
        with_major(write(USER, "", vec![item("a", "1")]), 0),
    )
    .await;
    assert_eq!(r.major_revision, 1);
}

/// R140: a major revision or item revision below −1, or 0 on update / remove, fails
/// with −12005 (set, update and remove; channel and user metadata), changes nothing, and
/// the connection goes on.
#[tokio::test]
async fn r140_invalid_revisions_answer_12005() {
    let server = TestServer::start().await;
    let mut alice = server.raw_login("alice").await;
    for ty in [MESSAGE, USER] {
        let name = if ty == USER { "" } else { ROOM };
        write_ok(&mut alice, Op::Set, write(ty, name, vec![item("a", "1")])).await;
        for op in [Op::Set, Op::Update, Op::Remove] {
            for bad in [-2, i64::MIN] {
                refused(
                    &mut alice,
                    op,
                    with_major(write(ty, name, vec![item("a", "2")]), bad),
                    INVALID_REVISION,
                    &["majorRevision"],
                )
                .await;
                refused(
                    &mut alice,
                    op,
                    write(ty, name, vec![guarded("a", "2", bad)]),
                    INVALID_REVISION,
                    &["revision"],
                )
                .await;
            }
        }
        for op in [Op::Update, Op::Remove] {
            refused(
                &mut alice,
                op,
                with_major(write(ty, name, vec![item("a", "2")]), 0),
                INVALID_REVISION,
                &["majorRevision"],
            )
            .await;
            refused(
                &mut alice,
                op,
                write(ty, name, vec![guarded("a", "2", 0)]),
                INVALID_REVISION,
                &["revision"],
            )
            .await;
        }
        assert_data(&get(&mut alice, ty, name).await, 1, &[("a", "1", 1)]);
    }
}

/// R141, R142: every successful write (set, update, remove of listed keys, even a key
/// that is not there, remove of all) increases the major revision by exactly one and
/// gives every written item that revision, while items not written keep theirs; no
/// refused write (guard, lock gate, limit, validation) moves it.
#[tokio::test]
async fn r141_r142_every_write_increases_the_major_revision_refusals_do_not() {
    let server = TestServer::start().await;
    let mut alice = server.raw_login("alice").await;
    let w = |items| write(STREAM, ROOM, items);
    let mut major = 0;
    let mut check = |r: pb::MetadataWriteReply| {
        major += 1;
        assert_eq!(r.major_revision, major, "{r:?}");
    };
    check(write_ok(&mut alice, Op::Set, w(vec![item("a", "1")])).await);
    check(write_ok(&mut alice, Op::Set, w(vec![item("a", "1")])).await);
    check(write_ok(&mut alice, Op::Set, w(vec![item("b", "1")])).await);
    check(write_ok(&mut alice, Op::Update, w(vec![item("a", "2")])).await);
    assert_data(
        &get(&mut alice, STREAM, ROOM).await,
        4,
        &[("a", "2", 4), ("b", "1", 3)],
    );
    check(write_ok(&mut alice, Op::Remove, w(vec![key("nothing")])).await);
    assert_data(
        &get(&mut alice, STREAM, ROOM).await,
        5,
        &[("a", "2", 4), ("b", "1", 3)],
    );

    refused(
        &mut alice,
        Op::Set,
        w(vec![guarded("a", "x", 1)]),
        OUTDATED,
        &[],
    )
    .await;
    refused(
        &mut alice,
        Op::Set,
        with_lock(w(vec![item("a", "x")]), "L"),
        LOCK_NOT_ACQUIRED,
        &["L"],
    )
    .await;
    refused(&mut alice, Op::Set, w(vec![]), INVALID_ITEM, &[]).await;
    refused(
        &mut alice,
        Op::Set,
        w(vec![item("a", &"v".repeat(16 * 1024 + 1))]),
        VALUE_TOO_LONG,
        &[],
    )
    .await;
    refused(
        &mut alice,
        Op::Set,
        w(vec![item("_a", "x")]),
        INVALID_KEY,
        &[],
    )
    .await;

    check(write_ok(&mut alice, Op::Remove, w(vec![])).await);
    check(write_ok(&mut alice, Op::Remove, w(vec![])).await);
    check(write_ok(&mut alice, Op::Set, w(vec![item("c", "1")])).await);
    assert_data(&get(&mut alice, STREAM, ROOM).await, 8, &[("c", "1", 8)]);
}

/// R144: with `add_timestamp` each written item's `updated` is the server time of the
/// write; with `add_user_id` its `author_uid` is the writer (also when writing another
/// user's metadata); without them new items have 0 and ''. Items not written keep
/// theirs.
#[tokio::test]
async fn r144_timestamp_and_author_only_when_asked() {
    let server = TestServer::start().await;
    let mut alice = server.raw_login("alice").await;
    let mut bob = server.raw_login("bob").await;
    let detail = |m: &pb::Metadata, k: &str| -> pb::MetadataDetail {
        m.items
            .iter()
            .find(|i| i.key == k)
            .cloned()
            .unwrap_or_else(|| panic!("no item {k}: {m:?}"))
    };

    write_ok(
        &mut alice,
        Op::Set,
        write(MESSAGE, ROOM, vec![item("plain", "1")]),
    )
    .await;
    let before = now_ms();
    let req = pb::MetadataWriteRequest {
        add_timestamp: true,
        ..write(MESSAGE, ROOM, vec![item("timed", "1")])
    };
    write_ok(&mut alice, Op::Set, req).await;
    let after = now_ms();
    let req = pb::MetadataWriteRequest {
        add_user_id: true,
        ..write(MESSAGE, ROOM, vec![item("signed", "1")])
    };
    write_ok(&mut bob, Op::Set, req).await;
    let before_both = now_ms();
    let req = pb::MetadataWriteRequest {
        add_timestamp: true,
        add_user_id: true,
        ..write(MESSAGE, ROOM, vec![item("both", "1")])
    };
    write_ok(&mut bob, Op::Set, req).await;
    let after_both = now_ms();

    let m = get(&mut alice, MESSAGE, ROOM).await;
    let plain = detail(&m, "plain");
    assert_eq!(
        (plain.updated, plain.author_uid.as_str()),
        (0, ""),
        "{plain:?}"
    );
    let timed = detail(&m, "timed");
    assert!(
        (before..=after).contains(&timed.updated),
        "updated {} within the write [{before}, {after}]: {timed:?}",
        timed.updated
    );
    assert_eq!(timed.author_uid, "", "{timed:?}");
    let signed = detail(&m, "signed");
    assert_eq!((signed.updated, signed.author_uid.as_str()), (0, "bob"));
    let both = detail(&m, "both");
    assert!(
        (before_both..=after_both).contains(&both.updated),
        "{both:?}"
    );
    assert_eq!(both.author_uid, "bob", "{both:?}");

    // An update with both flags by alice marks the items it writes only.
    let before = now_ms();
    let req = pb::MetadataWriteRequest {
        add_timestamp: true,
        add_user_id: true,
        ..write(MESSAGE, ROOM, vec![item("plain", "2")])
    };
    write_ok(&mut alice, Op::Update, req).await;
    let after = now_ms();
    let m = get(&mut bob, MESSAGE, ROOM).await;
    let plain = detail(&m, "plain");
    assert!((before..=after).contains(&plain.updated), "{plain:?}");
    assert_eq!(plain.author_uid, "alice", "{plain:?}");
    assert_eq!(detail(&m, "signed").author_uid, "bob");
    assert_eq!(detail(&m, "both").updated, both.updated);

    // bob signs an item of alice's user metadata: the author is the writer.
    let req = pb::MetadataWriteRequest {
        add_user_id: true,
        ..write(USER, "alice", vec![item("k", "v")])
    };
    write_ok(&mut bob, Op::Set, req).await;
    let m = get(&mut alice, USER, "").await;
    let k = detail(&m, "k");
    assert_eq!((k.updated, k.author_uid.as_str()), (0, "bob"), "{k:?}");
}

// ---------------------------------------------------------------------------------------
// Limits and validation (R11, R145, R10, R7)
// ---------------------------------------------------------------------------------------

/// R145: at most 32 items per call: 32 pass, 33 fail with −12002 (set, update and
/// remove), the reason names the limit; the connection goes on.
#[tokio::test]
async fn r145_more_than_32_items_answers_12002() {
    let server = TestServer::start().await;
    let mut alice = server.raw_login("alice").await;
    let many = |n: usize| -> Vec<pb::MetadataItem> {
        (0..n).map(|i| item(&format!("k{i}"), "v")).collect()
    };
    let r = write_ok(&mut alice, Op::Set, write(MESSAGE, ROOM, many(32))).await;
    assert_eq!((r.total_count, r.major_revision), (32, 1));
    for op in [Op::Set, Op::Update, Op::Remove] {
        refused(
            &mut alice,
            op,
            write(MESSAGE, ROOM, many(33)),
            ITEM_LIMIT,
            &["33", "32"],
        )
        .await;
    }
    let r = write_ok(&mut alice, Op::Update, write(MESSAGE, ROOM, many(32))).await;
    assert_eq!((r.total_count, r.major_revision), (32, 2));
    let r = write_ok(&mut alice, Op::Remove, write(MESSAGE, ROOM, many(32))).await;
    assert_eq!((r.total_count, r.major_revision), (0, 3));
}

/// R145: a value over 16 KB fails with −12012; keys and values over 16 KB in total fail
/// with −12006 (the total counts keys too, so a value of exactly 16 KB never fits with
/// its key); exactly 16 KB of keys and values passes.
#[tokio::test]
async fn r145_value_over_16k_answers_12012_call_over_16k_answers_12006() {
    const LIMIT: usize = 16 * 1024;
    let server = TestServer::start().await;
    let mut alice = server.raw_login("alice").await;

    for op in [Op::Set, Op::Update] {
        refused(
            &mut alice,
            op,
            write(MESSAGE, ROOM, vec![item("k", &"v".repeat(LIMIT + 1))]),
            VALUE_TOO_LONG,
            &["16385", "16384"],
        )
        .await;
        refused(
            &mut alice,
            op,
            write(USER, "", vec![item("k", &"v".repeat(LIMIT + 1))]),
            VALUE_TOO_LONG,
            &[],
        )
        .await;
    }

    // Exactly 16 KB of keys and values.
    let r = write_ok(
        &mut alice,
        Op::Set,
        write(MESSAGE, ROOM, vec![item("k", &"v".repeat(LIMIT - 1))]),
    )
    .await;
    assert_eq!(r.major_revision, 1);
    let half = LIMIT / 2 - 2;
    let r = write_ok(
        &mut alice,
        Op::Set,
        write(
            MESSAGE,
            ROOM,
            vec![item("k1", &"a".repeat(half)), item("k2", &"b".repeat(half))],
        ),
    )
    .await;
    assert_eq!(r.major_revision, 2);

    // One byte more, in either item, or as a third item.
    for op in [Op::Set, Op::Update] {
        refused(
            &mut alice,
            op,
            write(MESSAGE, ROOM, vec![item("k", &"v".repeat(LIMIT))]),
            LENGTH_OVERFLOW,
            &["16385"],
        )
        .await;
        refused(
            &mut alice,
            op,
            write(
                MESSAGE,
                ROOM,
                vec![
                    item("k1", &"a".repeat(half + 1)),
                    item("k2", &"b".repeat(half)),
                ],
            ),
            LENGTH_OVERFLOW,
            &["16385"],
        )
        .await;
        refused(
            &mut alice,
            op,
            write(
                MESSAGE,
                ROOM,
                vec![
                    item("k1", &"a".repeat(half)),
                    item("k2", &"b".repeat(half)),
                    item("c", ""),
                ],
            ),
            LENGTH_OVERFLOW,
            &[],
        )
        .await;
    }
    let m = get(&mut alice, MESSAGE, ROOM).await;
    assert_eq!(m.major_revision, 2);
    assert_eq!(m.total_count, 3);
}

/// R145: set and update without items fail with −12003 (remove without items is
/// "remove all"); a key twice in one call fails with −12013 naming it (set, update,
/// remove).
#[tokio::test]
async fn r145_no_items_answers_12003_repeated_key_answers_12013() {
    let server = TestServer::start().await;
    let mut alice = server.raw_login("alice").await;
    write_ok(
        &mut alice,
        Op::Set,
        write(MESSAGE, ROOM, vec![item("a", "1")]),
    )
    .await;
    for ty in [MESSAGE, STREAM, USER] {
        let name = if ty == USER { "" } else { ROOM };
        for op in [Op::Set, Op::Update] {
            refused(&mut alice, op, write(ty, name, vec![]), INVALID_ITEM, &[]).await;
        }
        for op in [Op::Set, Op::Update, Op::Remove] {
            refused(
                &mut alice,
                op,
                write(
                    ty,
                    name,
                    vec![item("a", "1"), item("b", "2"), item("a", "3")],
                ),
                DUPLICATE_KEY,
                &["\"a\""],
            )
            .await;
        }
    }
    assert_data(&get(&mut alice, MESSAGE, ROOM).await, 1, &[("a", "1", 1)]);
}

/// R11: a key is 1–32 bytes of the R3 set not beginning with '_': empty, '_'-led, or
/// with a character outside the set fails with −12009, 33 bytes with −12011 (set,
/// update, remove); 32 bytes and every allowed punctuation character pass.
#[tokio::test]
async fn r11_bad_keys_answer_12009_long_keys_12011() {
    let server = TestServer::start().await;
    let mut alice = server.raw_login("alice").await;
    let longest = "k".repeat(32);
    let punctuation = "a !#$%&()+-:;<=.>?@[]^_{}|~,";
    let r = write_ok(
        &mut alice,
        Op::Set,
        write(
            MESSAGE,
            ROOM,
            vec![item(&longest, "1"), item(punctuation, "2"), item("a_", "3")],
        ),
    )
    .await;
    assert_eq!(r.total_count, 3);
    for op in [Op::Set, Op::Update, Op::Remove] {
        for bad in ["", "_a", "a/b", "a\tb", "é", "a\"b", "a`b"] {
            refused(
                &mut alice,
                op,
                write(MESSAGE, ROOM, vec![item("a_", "4"), item(bad, "1")]),
                INVALID_KEY,
                &["R11"],
            )
            .await;
        }
        refused(
            &mut alice,
            op,
            write(MESSAGE, ROOM, vec![item(&"k".repeat(33), "1")]),
            KEY_TOO_LONG,
            &["33", "R11"],
        )
        .await;
        refused(
            &mut alice,
            op,
            write(USER, "", vec![item(&"k".repeat(33), "1")]),
            KEY_TOO_LONG,
            &[],
        )
        .await;
    }
}

/// R11: "null" is four bytes of the R3 set and does not begin with '_', so it is a
/// valid metadata key (R4's ban on "null" is for user ids and channel names).
#[tokio::test]
async fn r11_the_key_null_is_valid() {
    let server = TestServer::start().await;
    let mut alice = server.raw_login("alice").await;
    let r = write_ok(
        &mut alice,
        Op::Set,
        write(MESSAGE, ROOM, vec![item("null", "1")]),
    )
    .await;
    assert_eq!(r.total_count, 1);
}

/// R11: −12011 only when the length is the only thing wrong; a 33-byte key that also
/// begins with '_' or holds a bad character is −12009.
#[tokio::test]
async fn r11_a_long_key_with_a_bad_character_answers_12009() {
    let server = TestServer::start().await;
    let mut alice = server.raw_login("alice").await;
    for bad in [
        format!("_{}", "k".repeat(32)),
        format!("{}/", "k".repeat(32)),
    ] {
        refused(
            &mut alice,
            Op::Set,
            write(MESSAGE, ROOM, vec![item(&bad, "1")]),
            INVALID_KEY,
            &[],
        )
        .await;
    }
}

/// R10: a `lock_name` that is not a valid lock name ('_'-led, bad character, "null",
/// over 64 bytes) fails with −12007 before any lock check; a 64-byte name is accepted
/// as a name (and then fails the gate with −12008).
#[tokio::test]
async fn r10_bad_lock_name_answers_12007() {
    let server = TestServer::start().await;
    let mut alice = server.raw_login("alice").await;
    let long = "l".repeat(65);
    for op in [Op::Set, Op::Update, Op::Remove] {
        for bad in ["_lock", "a/b", "null", long.as_str()] {
            refused(
                &mut alice,
                op,
                with_lock(write(MESSAGE, ROOM, vec![item("a", "1")]), bad),
                INVALID_LOCK_NAME,
                &[],
            )
            .await;
        }
    }
    refused(
        &mut alice,
        Op::Set,
        with_lock(write(MESSAGE, ROOM, vec![item("a", "1")]), &"l".repeat(64)),
        LOCK_NOT_ACQUIRED,
        &[],
    )
    .await;
}

/// R134, R7: metadata belongs to MESSAGE and STREAM channels and users: any other
/// channel type fails with −10019 (writes and get); invalid channel names fail with
/// −10008; a 64-byte name is fine; the connection goes on.
#[tokio::test]
async fn r134_r7_bad_channel_type_answers_10019_bad_channel_name_10008() {
    let server = TestServer::start().await;
    let mut alice = server.raw_login("alice").await;
    for ty in [0, 4, -1, 99] {
        for op in [Op::Set, Op::Update, Op::Remove] {
            refused(
                &mut alice,
                op,
                write(ty, ROOM, vec![item("a", "1")]),
                INVALID_CHANNEL_TYPE,
                &[],
            )
            .await;
        }
        assert_error(
            try_get(&mut alice, ty, ROOM).await,
            INVALID_CHANNEL_TYPE,
            "getChannelMetadata",
            &[],
        );
    }
    let long = "c".repeat(65);
    for ty in [MESSAGE, STREAM] {
        for bad in ["", "_room", "a/b", "null", long.as_str()] {
            for op in [Op::Set, Op::Update, Op::Remove] {
                let rep = try_write(&mut alice, op, write(ty, bad, vec![item("a", "1")])).await;
                assert_error(rep, INVALID_CHANNEL_NAME, op.operation(ty), &[]);
            }
            assert_error(
                try_get(&mut alice, ty, bad).await,
                INVALID_CHANNEL_NAME,
                "getChannelMetadata",
                &[],
            );
        }
        let longest = "c".repeat(64);
        write_ok(
            &mut alice,
            Op::Set,
            write(ty, &longest, vec![item("a", "1")]),
        )
        .await;
    }
    alice.assert_alive().await;
}

/// −12019: a server without a storage engine answers metadata calls and
/// subscribeUserMetadata with "storage not available".
#[tokio::test]
async fn storage_calls_without_a_storage_engine_answer_12019() {
    let server = TestServer::without_presence(|_| {}).await;
    let mut alice = server.raw_login("alice").await;
    for op in [Op::Set, Op::Update, Op::Remove] {
        let rep = try_write(&mut alice, op, write(MESSAGE, ROOM, vec![item("a", "1")])).await;
        assert_error(rep, NOT_AVAILABLE, op.operation(MESSAGE), &[]);
    }
    assert_error(
        try_get(&mut alice, USER, "").await,
        NOT_AVAILABLE,
        "getUserMetadata",
        &[],
    );
    assert_error(
        subscribe_user(&mut alice, "bob").await,
        NOT_AVAILABLE,
        "subscribeUserMetadata",
        &[],
    );
    alice.assert_alive().await;
}

// ---------------------------------------------------------------------------------------
// Compare-and-set under concurrent writers (R138, R141, R142)
// ---------------------------------------------------------------------------------------

/// Reads the counter item: (value, revision), or (0, 0) while it does not exist.
async fn read_counter(raw: &mut RawClient) -> (u64, i64) {
    let m = get(raw, MESSAGE, ROOM).await;
    match m.items.iter().find(|i| i.key == "counter") {
        Some(i) => (i.value.parse().expect("a number"), i.revision),
        None => (0, 0),
    }
}

/// R138, R141, R142: N clients each add one M times to a counter item with read (get)
/// → set guarded by the item's revision → retry on −12014. No update is lost: the
/// final value is N×M, and the major revision grew by exactly the number of successful
/// writes (N×M); every other attempt was refused without effect.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn r138_r141_concurrent_cas_increments_lose_no_update() {
    const N: usize = 5;
    const M: usize = 20;
    let server = TestServer::start().await;
    let mut clients = Vec::new();
    for i in 0..N {
        clients.push(server.raw_login(&format!("writer{i}")).await);
    }
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(n, mut raw)| {
            tokio::spawn(async move {
                let mut conflicts = 0u32;
                for _ in 0..M {
                    loop {
                        let (value, revision) = read_counter(&mut raw).await;
                        let req = write(
                            MESSAGE,
                            ROOM,
                            vec![guarded("counter", &(value + 1).to_string(), revision)],
                        );
                        match try_write(&mut raw, Op::Set, req).await {
                            Rep::SetMetadata(r) => {
                                assert!(r.major_revision > revision, "{r:?}");
                                break;
                            }
                            Rep::Error(e) if e.code == OUTDATED => conflicts += 1,
                            other => panic!("writer{n}: unexpected reply {other:?}"),
                        }
                    }
                }
                conflicts
            })
        })
        .collect();
    let mut conflicts = 0;
    for t in tasks {
        conflicts += t.await.expect("writer task");
    }
    let mut reader = server.raw_login("reader").await;
    let m = get(&mut reader, MESSAGE, ROOM).await;
    let total = (N * M) as i64;
    assert_data(&m, total, &[("counter", &total.to_string(), total)]);
    eprintln!("{} increments, {conflicts} refused attempts", N * M);
}

/// R148, R141: events of concurrent writes reach a `withMetadata` subscriber in the
/// order of their major revisions, so the last event received carries the final data.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn r148_events_of_concurrent_writes_arrive_in_revision_order() {
    const N: usize = 5;
    const M: usize = 20;
    let server = TestServer::start().await;
    let mut watcher = server.raw_login("watcher").await;
    subscribe(&mut watcher, ROOM, Some(true)).await;
    let mut clients = Vec::new();
    for i in 0..N {
        clients.push(server.raw_login(&format!("writer{i}")).await);
    }
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(n, mut raw)| {
            tokio::spawn(async move {
                for j in 0..M {
                    let user = format!("writer{n}");
                    let req = write(MESSAGE, ROOM, vec![item(&user, &j.to_string())]);
                    write_ok(&mut raw, Op::Set, req).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("writer task");
    }
    let mut seen = Vec::new();
    for _ in 0..N * M {
        let e = next_storage(&mut watcher, "an UPDATE").await;
        assert_eq!(e.event_type, UPDATE, "{e:?}");
        seen.push(e.data.expect("data").major_revision);
    }
    let sorted = {
        let mut s = seen.clone();
        s.sort_unstable();
        s
    };
    assert_eq!(
        sorted,
        (1..=(N * M) as i64).collect::<Vec<_>>(),
        "one event per write"
    );
    assert_eq!(seen, sorted, "events in major revision order");
}

// ---------------------------------------------------------------------------------------
// Lock-gated writes (R143)
// ---------------------------------------------------------------------------------------

/// R143: a write with `lock_name` succeeds only for the current owner of that lock in
/// the same channel; anyone else, an undefined lock, a released lock, and the lock of
/// the same name in the STREAM channel of the same name get −12008 and change nothing;
/// after a hand-over the new owner writes. User metadata has no locks.
#[tokio::test]
async fn r143_lock_gated_writes() {
    let server = TestServer::start().await;
    let mut alice = server.raw_login("alice").await;
    let mut bob = server.raw_login("bob").await;
    let gated = |ty: i32, k: &str, lock: &str| with_lock(write(ty, ROOM, vec![item(k, "v")]), lock);

    define_and_acquire(&mut alice, MESSAGE, ROOM, "L").await;
    let r = write_ok(&mut alice, Op::Set, gated(MESSAGE, "a", "L")).await;
    assert_eq!(r.major_revision, 1);
    let r = write_ok(&mut alice, Op::Update, gated(MESSAGE, "a", "L")).await;
    assert_eq!(r.major_revision, 2);

    for op in [Op::Set, Op::Update, Op::Remove] {
        refused(
            &mut bob,
            op,
            gated(MESSAGE, "a", "L"),
            LOCK_NOT_ACQUIRED,
            &["L"],
        )
        .await;
    }
    refused(
        &mut alice,
        Op::Set,
        gated(MESSAGE, "a", "undefined"),
        LOCK_NOT_ACQUIRED,
        &["undefined"],
    )
    .await;
    // The MESSAGE channel's lock does not gate the STREAM channel of the same name.
    refused(
        &mut alice,
        Op::Set,
        gated(STREAM, "a", "L"),
        LOCK_NOT_ACQUIRED,
        &[],
    )
    .await;
    // Nor any user's metadata.
    refused(
        &mut alice,
        Op::Set,
        with_lock(write(USER, "", vec![item("a", "v")]), "L"),
        LOCK_NOT_ACQUIRED,
        &[],
    )
    .await;

    // bob owns L of the STREAM channel: he writes there, alice does not.
    define_and_acquire(&mut bob, STREAM, ROOM, "L").await;
    let r = write_ok(&mut bob, Op::Set, gated(STREAM, "s", "L")).await;
    assert_eq!(r.major_revision, 1);
    refused(
        &mut alice,
        Op::Set,
        gated(STREAM, "s", "L"),
        LOCK_NOT_ACQUIRED,
        &[],
    )
    .await;
    refused(
        &mut bob,
        Op::Set,
        gated(MESSAGE, "s", "L"),
        LOCK_NOT_ACQUIRED,
        &[],
    )
    .await;

    // Released: nobody owns it, alice included.
    release(&mut alice, MESSAGE, ROOM, "L").await;
    refused(
        &mut alice,
        Op::Set,
        gated(MESSAGE, "a", "L"),
        LOCK_NOT_ACQUIRED,
        &[],
    )
    .await;
    acquire(&mut bob, MESSAGE, ROOM, "L").await;
    let r = write_ok(&mut bob, Op::Remove, gated(MESSAGE, "a", "L")).await;
    assert_eq!((r.total_count, r.major_revision), (0, 3));
    refused(
        &mut alice,
        Op::Set,
        gated(MESSAGE, "a", "L"),
        LOCK_NOT_ACQUIRED,
        &[],
    )
    .await;

    // Without a lock name anyone may still write.
    let r = write_ok(
        &mut alice,
        Op::Set,
        write(MESSAGE, ROOM, vec![item("free", "1")]),
    )
    .await;
    assert_eq!(r.major_revision, 4);
    assert_data(&get(&mut alice, STREAM, ROOM).await, 1, &[("s", "v", 1)]);
}

// ---------------------------------------------------------------------------------------
// Events (R80, R147–R149)
// ---------------------------------------------------------------------------------------

/// R80, R147, R148, R149 (MESSAGE channel): a subscribe with `with_metadata` is followed
/// by a storage SNAPSHOT of the complete data (publisher empty), then an UPDATE with the
/// complete data after every successful write by anyone (publisher = the writer),
/// none for a refused write; a subscriber without `with_metadata` gets none; the STREAM
/// channel of the same name is not this channel; after unsubscribe nothing more, and a
/// new subscribe starts again with a SNAPSHOT.
#[tokio::test]
async fn r80_r147_r148_r149_message_channel_storage_events() {
    let server = TestServer::start().await;
    let mut alice = server.raw_login("alice").await;
    let mut bob = server.raw_login("bob").await;
    let mut carol = server.raw_login("carol").await;
    let mut dave = server.raw_login("dave").await;

    write_ok(
        &mut alice,
        Op::Set,
        write(MESSAGE, ROOM, vec![item("a", "1")]),
    )
    .await;
    let snap = subscribe(&mut carol, ROOM, Some(true))
        .await
        .expect("SNAPSHOT");
    assert_channel_event(&snap, SNAPSHOT, MESSAGE, ROOM, "", 1, &[("a", "1", 1)]);
    assert!(snap.position.is_some(), "{snap:?}");
    subscribe(&mut dave, ROOM, None).await;

    write_ok(
        &mut alice,
        Op::Set,
        write(MESSAGE, ROOM, vec![item("b", "2")]),
    )
    .await;
    let e = next_storage(&mut carol, "UPDATE after alice's set").await;
    assert_channel_event(
        &e,
        UPDATE,
        MESSAGE,
        ROOM,
        "alice",
        2,
        &[("a", "1", 1), ("b", "2", 2)],
    );

    write_ok(
        &mut bob,
        Op::Update,
        write(MESSAGE, ROOM, vec![item("a", "10")]),
    )
    .await;
    let e = next_storage(&mut carol, "UPDATE after bob's update").await;
    assert_channel_event(
        &e,
        UPDATE,
        MESSAGE,
        ROOM,
        "bob",
        3,
        &[("a", "10", 3), ("b", "2", 2)],
    );

    // A refused write, and writes to the STREAM channel and to a user: no event here.
    refused(
        &mut bob,
        Op::Set,
        write(MESSAGE, ROOM, vec![guarded("a", "x", 1)]),
        OUTDATED,
        &[],
    )
    .await;
    write_ok(&mut bob, Op::Set, write(STREAM, ROOM, vec![item("s", "1")])).await;
    write_ok(
        &mut bob,
        Op::Set,
        write(USER, "carol", vec![item("u", "1")]),
    )
    .await;
    sentinel(
        &mut bob,
        &mut carol,
        "carol",
        "after refused and other writes",
    )
    .await;

    write_ok(&mut carol, Op::Remove, write(MESSAGE, ROOM, vec![key("b")])).await;
    let e = next_storage(&mut carol, "UPDATE after carol's own remove").await;
    assert_channel_event(&e, UPDATE, MESSAGE, ROOM, "carol", 4, &[("a", "10", 3)]);
    write_ok(&mut bob, Op::Remove, write(MESSAGE, ROOM, vec![])).await;
    let e = next_storage(&mut carol, "UPDATE after remove all").await;
    assert_channel_event(&e, UPDATE, MESSAGE, ROOM, "bob", 5, &[]);

    // dave (no withMetadata) got none of it: a channel message is his next push.
    let rep = alice.request(publish_text(ROOM, "hello room")).await;
    assert!(matches!(rep, Rep::Publish(_)), "{rep:?}");
    match next_push(&mut dave, "the room message").await {
        Rep::Message(m) => assert_eq!(&m.payload[..], b"hello room"),
        other => panic!("dave subscribed without withMetadata got {other:?}"),
    }
    match next_push(&mut carol, "the room message").await {
        Rep::Message(m) => assert_eq!(&m.payload[..], b"hello room"),
        other => panic!("carol expected the room message, got {other:?}"),
    }

    // R149: after unsubscribe, nothing.
    unsubscribe(&mut carol, ROOM).await;
    write_ok(
        &mut alice,
        Op::Set,
        write(MESSAGE, ROOM, vec![item("c", "3")]),
    )
    .await;
    sentinel(&mut alice, &mut carol, "carol", "after unsubscribe").await;

    // R148: a new subscription starts with a SNAPSHOT of the current data.
    let snap = subscribe(&mut carol, ROOM, Some(true))
        .await
        .expect("SNAPSHOT");
    assert_channel_event(&snap, SNAPSHOT, MESSAGE, ROOM, "", 6, &[("c", "3", 6)]);
}

/// R81, R147, R148: subscribing again to a subscribed channel replaces its options:
/// turning `with_metadata` on sends a SNAPSHOT and starts the UPDATEs, turning it off
/// stops them.
#[tokio::test]
async fn r81_r147_resubscribe_turns_storage_events_on_and_off() {
    let server = TestServer::start().await;
    let mut alice = server.raw_login("alice").await;
    let mut carol = server.raw_login("carol").await;
    subscribe(&mut carol, ROOM, Some(false)).await;
    write_ok(
        &mut alice,
        Op::Set,
        write(MESSAGE, ROOM, vec![item("a", "1")]),
    )
    .await;
    sentinel(&mut alice, &mut carol, "carol", "without withMetadata").await;

    let snap = subscribe(&mut carol, ROOM, Some(true))
        .await
        .expect("SNAPSHOT");
    assert_channel_event(&snap, SNAPSHOT, MESSAGE, ROOM, "", 1, &[("a", "1", 1)]);
    write_ok(
        &mut alice,
        Op::Set,
        write(MESSAGE, ROOM, vec![item("a", "2")]),
    )
    .await;
    let e = next_storage(&mut carol, "UPDATE after turning withMetadata on").await;
    assert_channel_event(&e, UPDATE, MESSAGE, ROOM, "alice", 2, &[("a", "2", 2)]);

    subscribe(&mut carol, ROOM, Some(false)).await;
    write_ok(
        &mut alice,
        Op::Set,
        write(MESSAGE, ROOM, vec![item("a", "3")]),
    )
    .await;
    sentinel(
        &mut alice,
        &mut carol,
        "carol",
        "after turning withMetadata off",
    )
    .await;
}

/// R80, R147, R148 (STREAM channel): a member joined with `with_metadata` gets the
/// SNAPSHOT after the topic SNAPSHOT, then an UPDATE per write to the STREAM channel's
/// metadata (publisher = the writer); a member without it and writes to the MESSAGE
/// channel of the same name give nothing; after leave nothing more.
#[tokio::test]
async fn r80_r147_r148_stream_member_with_metadata_gets_storage_events() {
    let server = TestServer::start().await;
    let mut alice = server.raw_login("alice").await;
    let mut erin = server.raw_login("erin").await;
    let mut frank = server.raw_login("frank").await;

    write_ok(
        &mut alice,
        Op::Set,
        write(STREAM, ROOM, vec![item("a", "1")]),
    )
    .await;
    let snap = join(&mut erin, "erin", ROOM, Some(true))
        .await
        .expect("SNAPSHOT");
    assert_channel_event(&snap, SNAPSHOT, STREAM, ROOM, "", 1, &[("a", "1", 1)]);
    assert!(join(&mut frank, "frank", ROOM, None).await.is_none());

    write_ok(
        &mut alice,
        Op::Set,
        write(STREAM, ROOM, vec![item("b", "2")]),
    )
    .await;
    let e = next_storage(&mut erin, "UPDATE of the stream channel").await;
    assert_channel_event(
        &e,
        UPDATE,
        STREAM,
        ROOM,
        "alice",
        2,
        &[("a", "1", 1), ("b", "2", 2)],
    );
    write_ok(
        &mut frank,
        Op::Update,
        write(STREAM, ROOM, vec![item("a", "3")]),
    )
    .await;
    let e = next_storage(&mut erin, "UPDATE by frank").await;
    assert_channel_event(
        &e,
        UPDATE,
        STREAM,
        ROOM,
        "frank",
        3,
        &[("a", "3", 3), ("b", "2", 2)],
    );

    write_ok(
        &mut alice,
        Op::Set,
        write(MESSAGE, ROOM, vec![item("m", "1")]),
    )
    .await;
    sentinel(
        &mut alice,
        &mut erin,
        "erin",
        "after a MESSAGE channel write",
    )
    .await;
    sentinel(&mut alice, &mut frank, "frank", "frank has no withMetadata").await;

    let rep = erin
        .request(Req::Leave(pb::LeaveRequest {
            channel_name: ROOM.into(),
        }))
        .await;
    assert!(matches!(rep, Rep::Leave(_)), "{rep:?}");
    write_ok(
        &mut alice,
        Op::Set,
        write(STREAM, ROOM, vec![item("c", "1")]),
    )
    .await;
    sentinel(&mut alice, &mut erin, "erin", "after leave").await;
}

/// R147, R148, api.md §9.5: subscribeUserMetadata(U) is answered, then a SNAPSHOT of
/// U's metadata (storage type USER, channel type USER, no channel name, publisher U),
/// then an UPDATE with the complete data on every change of U's metadata by anyone
/// (publisher still U); changes of other users' metadata give nothing; after
/// unsubscribeUserMetadata nothing more.
#[tokio::test]
async fn r147_r148_subscribe_user_metadata_snapshot_then_updates() {
    let server = TestServer::start().await;
    let mut alice = server.raw_login("alice").await;
    let mut bob = server.raw_login("bob").await;
    let mut carol = server.raw_login("carol").await;

    // A user never written: empty, −1.
    let rep = subscribe_user(&mut carol, "bob").await;
    let Rep::SubscribeUserMetadata(r) = rep else {
        panic!("subscribeUserMetadata: {rep:?}");
    };
    assert_eq!(r.user_id, "bob");
    let e = next_storage(&mut carol, "SNAPSHOT of bob").await;
    assert_user_event(&e, SNAPSHOT, "bob", -1, &[]);

    write_ok(
        &mut alice,
        Op::Set,
        write(USER, "", vec![item("mood", "happy")]),
    )
    .await;
    let rep = subscribe_user(&mut carol, "alice").await;
    assert!(matches!(rep, Rep::SubscribeUserMetadata(_)), "{rep:?}");
    let e = next_storage(&mut carol, "SNAPSHOT of alice").await;
    assert_user_event(&e, SNAPSHOT, "alice", 1, &[("mood", "happy", 1)]);

    write_ok(
        &mut alice,
        Op::Set,
        write(USER, "", vec![item("city", "Oslo")]),
    )
    .await;
    let e = next_storage(&mut carol, "UPDATE by alice").await;
    assert_user_event(
        &e,
        UPDATE,
        "alice",
        2,
        &[("city", "Oslo", 2), ("mood", "happy", 1)],
    );
    // bob writes alice's metadata: the event still names alice.
    write_ok(
        &mut bob,
        Op::Update,
        write(USER, "alice", vec![item("mood", "sad")]),
    )
    .await;
    let e = next_storage(&mut carol, "UPDATE by bob of alice").await;
    assert_user_event(
        &e,
        UPDATE,
        "alice",
        3,
        &[("city", "Oslo", 2), ("mood", "sad", 3)],
    );
    write_ok(
        &mut carol,
        Op::Set,
        write(USER, "bob", vec![item("x", "1")]),
    )
    .await;
    let e = next_storage(&mut carol, "UPDATE of bob").await;
    assert_user_event(&e, UPDATE, "bob", 1, &[("x", "1", 1)]);
    write_ok(
        &mut bob,
        Op::Remove,
        write(USER, "alice", vec![key("city")]),
    )
    .await;
    let e = next_storage(&mut carol, "UPDATE after remove").await;
    assert_user_event(&e, UPDATE, "alice", 4, &[("mood", "sad", 3)]);

    // Not followed: carol's own and dave's metadata; a refused write; channel metadata.
    write_ok(&mut carol, Op::Set, write(USER, "", vec![item("own", "1")])).await;
    write_ok(&mut bob, Op::Set, write(USER, "dave", vec![item("d", "1")])).await;
    write_ok(
        &mut bob,
        Op::Set,
        write(MESSAGE, "alice", vec![item("c", "1")]),
    )
    .await;
    refused(
        &mut bob,
        Op::Set,
        write(USER, "alice", vec![guarded("mood", "x", 1)]),
        OUTDATED,
        &[],
    )
    .await;
    sentinel(&mut bob, &mut carol, "carol", "nothing about others").await;
    // alice herself does not follow her metadata.
    sentinel(&mut bob, &mut alice, "alice", "alice follows nobody").await;

    let rep = unsubscribe_user(&mut carol, "alice").await;
    let Rep::UnsubscribeUserMetadata(r) = rep else {
        panic!("unsubscribeUserMetadata: {rep:?}");
    };
    assert_eq!(r.user_id, "alice");
    write_ok(
        &mut alice,
        Op::Set,
        write(USER, "", vec![item("after", "1")]),
    )
    .await;
    sentinel(&mut alice, &mut carol, "carol", "after unsubscribe").await;
    // bob is still followed.
    write_ok(&mut bob, Op::Set, write(USER, "", vec![item("y", "2")])).await;
    let e = next_storage(&mut carol, "UPDATE of bob").await;
    assert_user_event(&e, UPDATE, "bob", 2, &[("x", "1", 1), ("y", "2", 2)]);
}

/// api.md §6.2: unsubscribeUserMetadata of a user not followed fails with −12015 (never
/// followed, or already unsubscribed); invalid user ids fail with −10006 on both calls.
#[tokio::test]
async fn unsubscribe_user_metadata_when_not_subscribed_answers_12015() {
    let server = TestServer::start().await;
    let mut carol = server.raw_login("carol").await;
    assert_error(
        unsubscribe_user(&mut carol, "alice").await,
        NOT_SUBSCRIBED,
        "unsubscribeUserMetadata",
        &["alice"],
    );
    let rep = subscribe_user(&mut carol, "alice").await;
    assert!(matches!(rep, Rep::SubscribeUserMetadata(_)), "{rep:?}");
    next_storage(&mut carol, "SNAPSHOT").await;
    let rep = unsubscribe_user(&mut carol, "alice").await;
    assert!(matches!(rep, Rep::UnsubscribeUserMetadata(_)), "{rep:?}");
    assert_error(
        unsubscribe_user(&mut carol, "alice").await,
        NOT_SUBSCRIBED,
        "unsubscribeUserMetadata",
        &[],
    );
    for bad in ["", "_x", "a/b"] {
        assert_error(
            subscribe_user(&mut carol, bad).await,
            INVALID_USER_ID,
            "subscribeUserMetadata",
            &[],
        );
        assert_error(
            unsubscribe_user(&mut carol, bad).await,
            INVALID_USER_ID,
            "unsubscribeUserMetadata",
            &[],
        );
    }
    carol.assert_alive().await;
}

/// api.md §6.2: following more users than `max_user_metadata_subscriptions` fails with
/// −12017 naming the limit (following one already followed again does not count);
/// after an unsubscribe there is room again.
#[tokio::test]
async fn user_metadata_subscription_limit_answers_12017() {
    let server = TestServer::with(|c| c.apps[0].limits.max_user_metadata_subscriptions = 2).await;
    let mut carol = server.raw_login("carol").await;
    for u in ["u1", "u2"] {
        let rep = subscribe_user(&mut carol, u).await;
        assert!(matches!(rep, Rep::SubscribeUserMetadata(_)), "{rep:?}");
        next_storage(&mut carol, "SNAPSHOT").await;
    }
    assert_error(
        subscribe_user(&mut carol, "u3").await,
        SUBSCRIBE_LIMIT,
        "subscribeUserMetadata",
        &["2"],
    );
    carol.assert_alive().await;
    let rep = subscribe_user(&mut carol, "u2").await;
    assert!(matches!(rep, Rep::SubscribeUserMetadata(_)), "{rep:?}");
    let e = next_storage(&mut carol, "SNAPSHOT of u2 again").await;
    assert_user_event(&e, SNAPSHOT, "u2", -1, &[]);

    let rep = unsubscribe_user(&mut carol, "u1").await;
    assert!(matches!(rep, Rep::UnsubscribeUserMetadata(_)), "{rep:?}");
    let rep = subscribe_user(&mut carol, "u3").await;
    assert!(matches!(rep, Rep::SubscribeUserMetadata(_)), "{rep:?}");
    next_storage(&mut carol, "SNAPSHOT of u3").await;
    assert_error(
        subscribe_user(&mut carol, "u1").await,
        SUBSCRIBE_LIMIT,
        "subscribeUserMetadata",
        &[],
    );
}

// ---------------------------------------------------------------------------------------
// Durability
// ---------------------------------------------------------------------------------------

/// A server with [`base_config`] and its storage in `dir`.
async fn server_on(dir: &std::path::Path) -> TestServer {
    let broker = Arc::new(MemoryBroker::new(MemoryConfig::default()));
    TestServer::with_storage_at(Server::new(base_config(), broker), dir).await
}

/// Durability: after a shutdown, a new server on the same storage directory has every
/// object exactly as acknowledged (items, values, revisions, updated, author, major
/// revision, including an emptied object's), and revisions go on from there (R141).
#[tokio::test]
async fn acknowledged_writes_survive_a_restart() {
    let dir = fresh_dir("storage-restart");
    let objects = [
        (MESSAGE, ROOM),
        (STREAM, ROOM),
        (USER, "alice"),
        (USER, "bob"),
        (MESSAGE, "emptied"),
        (MESSAGE, "never"),
    ];
    let before = {
        let server = server_on(&dir).await;
        let mut alice = server.raw_login("alice").await;
        let mut bob = server.raw_login("bob").await;
        let req = pb::MetadataWriteRequest {
            add_timestamp: true,
            add_user_id: true,
            ..write(MESSAGE, ROOM, vec![item("a", "1"), item("b", "2")])
        };
        write_ok(&mut alice, Op::Set, req).await;
        write_ok(
            &mut bob,
            Op::Update,
            write(MESSAGE, ROOM, vec![item("b", "20")]),
        )
        .await;
        write_ok(
            &mut bob,
            Op::Set,
            write(MESSAGE, ROOM, vec![item("c", "3")]),
        )
        .await;
        write_ok(&mut bob, Op::Remove, write(MESSAGE, ROOM, vec![key("c")])).await;
        write_ok(
            &mut alice,
            Op::Set,
            write(STREAM, ROOM, vec![item("s", "x")]),
        )
        .await;
        write_ok(
            &mut alice,
            Op::Set,
            write(USER, "", vec![item("mood", "happy")]),
        )
        .await;
        let req = pb::MetadataWriteRequest {
            add_user_id: true,
            ..write(USER, "bob", vec![item("from", "alice")])
        };
        write_ok(&mut alice, Op::Set, req).await;
        for _ in 0..3 {
            write_ok(
                &mut alice,
                Op::Set,
                write(MESSAGE, "emptied", vec![item("e", "1")]),
            )
            .await;
        }
        write_ok(&mut alice, Op::Remove, write(MESSAGE, "emptied", vec![])).await;
        let mut before = Vec::new();
        for (ty, name) in objects {
            before.push(get(&mut bob, ty, name).await);
        }
        assert_data(&before[0], 4, &[("a", "1", 1), ("b", "20", 2)]);
        assert_data(&before[4], 4, &[]);
        assert_data(&before[5], -1, &[]);
        drop((alice, bob));
        server.shutdown().await.expect("clean shutdown");
        before
    };

    let server = server_on(&dir).await;
    let mut carol = server.raw_login("carol").await;
    for ((ty, name), expected) in objects.into_iter().zip(&before) {
        let after = get(&mut carol, ty, name).await;
        assert_eq!(&after, expected, "{ty}/{name} after the restart");
    }
    let r = write_ok(
        &mut carol,
        Op::Set,
        with_major(write(MESSAGE, ROOM, vec![guarded("a", "2", 1)]), 4),
    )
    .await;
    assert_eq!((r.total_count, r.major_revision), (2, 5));
    let r = write_ok(
        &mut carol,
        Op::Set,
        with_major(write(MESSAGE, "emptied", vec![item("e", "2")]), 0),
    )
    .await;
    assert_eq!(r.major_revision, 5);
    drop(carol);
    server.shutdown().await.expect("clean shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}
