//! Locks over real sockets, at the wire level (api.md §7, §9.6, §9.10, §10.8, R10,
//! R150–R159, error codes −14001…−14010): set / remove / get with ttl defaults and
//! clamping, name and channel-type checks and the per-channel limit; acquire, release
//! and revoke; the waiting line of `acquireLock` with `retry` (arrival order, −14003
//! while waiting, waiters that unsubscribe, leave, log out or lose their connection);
//! an owner whose connection is lost (kept for the ttl, then EXPIRED to its own USER
//! channel and the lock handed on; kept when it comes back in time); release at logout
//! and at the end of a session; the lock events of members with `withLock`; and a
//! restart, which keeps definitions and frees owners.
//!
//! Each test is named after the rule it checks. Lock events travel in the channel's
//! stream, ordered with its messages, so "nothing arrives" is shown with a sentinel that
//! does arrive (a message or another event): a push that should not have been sent
//! would come before it. A waiting `acquireLock` sends no reply until it is answered;
//! that a client is still waiting is shown by −14003 for a second operation (R158).

mod common;

use common::proxy::FaultProxy;
use common::*;
use std::sync::Arc;
use std::time::Duration;
use switchboard_engine_memory::{MemoryBroker, MemoryConfig};
use switchboard_protocol::pb::{self, client_message::Body as Req, server_message::Body as Rep};
use switchboard_server::{Server, ServerConfig};
use tokio::time::{Instant, sleep, sleep_until};

/// The message channel most tests use.
const ROOM: &str = "room";
/// The stream channel of the stream tests.
const STAGE: &str = "stage";

/// A lock's channel: (channel type, channel name).
type Ch<'a> = (i32, &'a str);
/// The MESSAGE channel [`ROOM`].
const IN_ROOM: Ch<'static> = (MESSAGE, ROOM);
/// The STREAM channel [`STAGE`].
const ON_STAGE: Ch<'static> = (STREAM, STAGE);

const SNAPSHOT: i32 = pb::LockEventType::Snapshot as i32;
const SET: i32 = pb::LockEventType::Set as i32;
const REMOVED: i32 = pb::LockEventType::Removed as i32;
const ACQUIRED: i32 = pb::LockEventType::Acquired as i32;
const RELEASED: i32 = pb::LockEventType::Released as i32;
const EXPIRED: i32 = pb::LockEventType::Expired as i32;

// Error codes of the contract (api.md §12.2).
const LOCK_OPERATION_FAILED: i32 = -14001;
const LOCK_OPERATION_PERFORMING: i32 = -14003;
const LOCK_ALREADY_EXIST: i32 = -14004;
const LOCK_INVALID_NAME: i32 = -14005;
const LOCK_NOT_ACQUIRED: i32 = -14006;
const LOCK_ACQUIRE_FAILED: i32 = -14007;
const LOCK_NOT_EXIST: i32 = -14008;

/// The default and smallest lock ttl, seconds (R150).
const TTL_MIN: u32 = 10;

// ---------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------

fn set_req(ch: Ch, lock: &str, ttl: u32) -> Req {
    Req::SetLock(pb::SetLockRequest {
        channel_type: ch.0,
        channel_name: ch.1.into(),
        lock_name: lock.into(),
        ttl,
    })
}

fn remove_req(ch: Ch, lock: &str) -> Req {
    Req::RemoveLock(pb::RemoveLockRequest {
        channel_type: ch.0,
        channel_name: ch.1.into(),
        lock_name: lock.into(),
    })
}

fn acquire_req(ch: Ch, lock: &str, retry: bool) -> Req {
    Req::AcquireLock(pb::AcquireLockRequest {
        channel_type: ch.0,
        channel_name: ch.1.into(),
        lock_name: lock.into(),
        retry,
    })
}

fn release_req(ch: Ch, lock: &str) -> Req {
    Req::ReleaseLock(pb::ReleaseLockRequest {
        channel_type: ch.0,
        channel_name: ch.1.into(),
        lock_name: lock.into(),
    })
}

fn revoke_req(ch: Ch, lock: &str, owner: &str) -> Req {
    Req::RevokeLock(pb::RevokeLockRequest {
        channel_type: ch.0,
        channel_name: ch.1.into(),
        lock_name: lock.into(),
        owner: owner.into(),
    })
}

fn get_req(ch: Ch) -> Req {
    Req::GetLock(pb::GetLockRequest {
        channel_type: ch.0,
        channel_name: ch.1.into(),
    })
}

/// The operation name an error reply carries for `body`, and the channel and lock it
/// concerns.
fn describe(body: &Req) -> (&'static str, i32, String, String) {
    match body {
        Req::SetLock(r) => (
            "setLock",
            r.channel_type,
            r.channel_name.clone(),
            r.lock_name.clone(),
        ),
        Req::RemoveLock(r) => (
            "removeLock",
            r.channel_type,
            r.channel_name.clone(),
            r.lock_name.clone(),
        ),
        Req::AcquireLock(r) => (
            "acquireLock",
            r.channel_type,
            r.channel_name.clone(),
            r.lock_name.clone(),
        ),
        Req::ReleaseLock(r) => (
            "releaseLock",
            r.channel_type,
            r.channel_name.clone(),
            r.lock_name.clone(),
        ),
        Req::RevokeLock(r) => (
            "revokeLock",
            r.channel_type,
            r.channel_name.clone(),
            r.lock_name.clone(),
        ),
        Req::GetLock(r) => (
            "getLock",
            r.channel_type,
            r.channel_name.clone(),
            String::new(),
        ),
        other => panic!("not a lock request: {other:?}"),
    }
}

/// The `LockReply` of operation `op`; panics for anything else.
fn lock_reply(reply: Rep, op: &str) -> pb::LockReply {
    match (op, reply) {
        ("setLock", Rep::SetLock(r))
        | ("removeLock", Rep::RemoveLock(r))
        | ("acquireLock", Rep::AcquireLock(r))
        | ("releaseLock", Rep::ReleaseLock(r))
        | ("revokeLock", Rep::RevokeLock(r)) => r,
        (op, other) => panic!("{op}: expected its LockReply, got {other:?}"),
    }
}

/// Unwraps an error reply and checks its code and operation.
fn assert_error(reply: Rep, code: i32, op: &str) -> pb::Error {
    let e = expect_error(reply);
    assert_eq!((e.code, e.operation.as_str()), (code, op), "{e:?}");
    assert!(!e.reason.is_empty(), "an error names its reason: {e:?}");
    e
}

/// `(lock, owner, ttl)` rows as written in a test.
fn rows(list: &[(&str, &str, u32)]) -> Vec<(String, String, u32)> {
    list.iter()
        .map(|(l, o, t)| (l.to_string(), o.to_string(), *t))
        .collect()
}

fn detail_rows(list: &[pb::LockDetail]) -> Vec<(String, String, u32)> {
    list.iter()
        .map(|d| (d.lock_name.clone(), d.owner.clone(), d.ttl))
        .collect()
}

fn event_name(kind: i32) -> &'static str {
    match pb::LockEventType::try_from(kind) {
        Ok(pb::LockEventType::Snapshot) => "SNAPSHOT",
        Ok(pb::LockEventType::Set) => "SET",
        Ok(pb::LockEventType::Removed) => "REMOVED",
        Ok(pb::LockEventType::Acquired) => "ACQUIRED",
        Ok(pb::LockEventType::Released) => "RELEASED",
        Ok(pb::LockEventType::Expired) => "EXPIRED",
        _ => "?",
    }
}

/// Checks a single (non-SNAPSHOT) lock event.
fn assert_lock_event(
    e: &pb::LockEvent,
    kind: i32,
    ch: Ch,
    lock: &str,
    ttl: u32,
    publisher: &str,
    owner: &str,
) {
    assert_eq!(
        (
            event_name(e.event_type),
            e.channel_type,
            e.channel_name.as_str(),
            e.lock_name.as_str(),
            e.ttl,
            e.publisher.as_str(),
            e.owner.as_str()
        ),
        (event_name(kind), ch.0, ch.1, lock, ttl, publisher, owner),
        "unexpected lock event {e:?}"
    );
    assert!(e.snapshot.is_empty(), "only SNAPSHOT lists locks: {e:?}");
    assert!(e.timestamp > 0, "{e:?}");
    assert!(e.position.is_some(), "a lock event has a position: {e:?}");
}

fn offset(p: &Option<pb::StreamPosition>) -> u64 {
    p.as_ref().expect("a position").offset
}

/// The owner of `lock` in a getLock listing; panics when it is not listed.
fn owner_of(list: &[(String, String, u32)], lock: &str) -> String {
    list.iter()
        .find(|(l, _, _)| l == lock)
        .unwrap_or_else(|| panic!("{lock} not listed in {list:?}"))
        .1
        .clone()
}

/// Applies `f` to the limits of every configured app.
fn limits(c: &mut ServerConfig, f: impl Fn(&mut switchboard_server::AppLimits)) {
    for app in &mut c.apps {
        f(&mut app.limits);
    }
}

/// A raw connection through `proxy`, so that the test can reset it (`cut`).
async fn raw_via(proxy: &FaultProxy) -> RawClient {
    RawClient::connect(&format!("{}{}", proxy.url(), switchboard_server::WS_PATH)).await
}

// ---------------------------------------------------------------------------------------
// Raw peers
// ---------------------------------------------------------------------------------------

/// A raw connection logged in as `user`, with lock calls.
struct Peer {
    raw: RawClient,
    user: String,
}

impl Peer {
    /// Logs `user` in to [`APP_ID`] (heartbeat 60 s, default presence timeout).
    async fn login(server: &TestServer, user: &str) -> Peer {
        Peer {
            raw: server.raw_login(user).await,
            user: user.into(),
        }
    }

    /// Logs `user` in to [`OPEN_APP_ID`] (no certificate: stream channels are joined
    /// with an empty token).
    async fn login_open(server: &TestServer, user: &str) -> Peer {
        let mut raw = server.raw().await;
        let reply = raw.login(OPEN_APP_ID, user, "", 60).await;
        assert!(matches!(reply, Rep::Login(_)), "{reply:?}");
        Peer {
            raw,
            user: user.into(),
        }
    }

    /// Logs in over `raw` as `user` with `presence` seconds of presence timeout,
    /// resuming `session_id` from `positions` when it is not empty.
    async fn login_over(
        mut raw: RawClient,
        user: &str,
        session_id: &str,
        positions: Vec<pb::ChannelPosition>,
        presence: u32,
    ) -> (Peer, pb::LoginReply) {
        let reply = raw
            .login_resume(user, session_id, positions, presence, "lock-test")
            .await;
        let peer = Peer {
            raw,
            user: user.into(),
        };
        (peer, reply)
    }

    async fn req(&mut self, body: Req) -> Rep {
        self.raw.request(body).await
    }

    /// Sends a lock request that must succeed; checks its `LockReply`.
    async fn ok(&mut self, body: Req) -> pb::LockReply {
        let (op, ty, channel, lock) = describe(&body);
        let r = lock_reply(self.req(body).await, op);
        assert_eq!(
            (
                r.channel_type,
                r.channel_name.as_str(),
                r.lock_name.as_str()
            ),
            (ty, channel.as_str(), lock.as_str()),
            "{} {op}: {r:?}",
            self.user
        );
        assert!(r.timestamp > 0, "{r:?}");
        r
    }

    /// Sends a lock request that must fail with `code`.
    async fn fails(&mut self, body: Req, code: i32) -> pb::Error {
        let (op, ..) = describe(&body);
        let reply = self.req(body).await;
        assert_error(reply, code, op)
    }

    /// getLock: `(lock, owner, ttl)` per lock, in the server's order.
    async fn locks(&mut self, ch: Ch<'_>) -> Vec<(String, String, u32)> {
        match self.req(get_req(ch)).await {
            Rep::GetLock(r) => {
                assert_eq!((r.channel_type, r.channel_name.as_str()), ch, "{r:?}");
                assert!(r.timestamp > 0, "{r:?}");
                detail_rows(&r.locks)
            }
            other => panic!("{} getLock {ch:?}: {other:?}", self.user),
        }
    }

    /// Sends `acquireLock` with `retry` for a lock held by someone else and makes sure
    /// it is in the line before returning: requests of one connection are handled in
    /// order, and a waiting acquire answers nothing yet, so once a later request is
    /// answered the acquire has been queued. Returns the acquire's request id.
    async fn wait_in_line(&mut self, ch: Ch<'_>, lock: &str) -> u32 {
        let id = self.raw.send_request(acquire_req(ch, lock, true)).await;
        self.raw.assert_alive().await;
        self.assert_waiting(ch, lock).await;
        id
    }

    /// Shows that this client still waits for `lock`: another operation on it fails
    /// with −14003 (R158). (A non-waiting client would get −14007, or succeed as the
    /// owner, without any change.)
    async fn assert_waiting(&mut self, ch: Ch<'_>, lock: &str) {
        self.fails(acquire_req(ch, lock, false), LOCK_OPERATION_PERFORMING)
            .await;
    }

    /// The answer to the waiting acquire `id`, which must be its `LockReply`.
    async fn acquired(&mut self, id: u32, ch: Ch<'_>, lock: &str) {
        let r = lock_reply(self.raw.reply(id).await, "acquireLock");
        assert_eq!(
            (
                r.channel_type,
                r.channel_name.as_str(),
                r.lock_name.as_str()
            ),
            (ch.0, ch.1, lock),
            "{r:?}"
        );
    }

    /// The next push (panics when none comes within [`STEP`]).
    async fn next_push(&mut self) -> Rep {
        let m = self
            .raw
            .next_push(STEP)
            .await
            .unwrap_or_else(|| panic!("{}: connection closed", self.user));
        m.body.expect("a push has a body")
    }

    /// The next push, which must be a lock event.
    async fn next_lock(&mut self, what: &str) -> pb::LockEvent {
        match self.next_push().await {
            Rep::Lock(e) => e,
            other => panic!(
                "{} expected a lock event ({what}), got {other:?}",
                self.user
            ),
        }
    }

    /// The next push, which must be a message; returns its text.
    async fn next_text(&mut self, what: &str) -> String {
        match self.next_push().await {
            Rep::Message(m) => String::from_utf8(m.payload.to_vec()).expect("UTF-8"),
            other => panic!("{} expected a message ({what}), got {other:?}", self.user),
        }
    }

    /// Subscribes to MESSAGE channel `channel` without presence; with `with_lock`, reads
    /// the lock SNAPSHOT that must be the next push, at the reply's position (R157).
    async fn subscribe(
        &mut self,
        channel: &str,
        with_lock: bool,
    ) -> (pb::SubscribeReply, Option<pb::LockEvent>) {
        let reply = self
            .req(Req::Subscribe(pb::SubscribeRequest {
                channel_name: channel.into(),
                with_presence: Some(false),
                with_lock: Some(with_lock),
                ..Default::default()
            }))
            .await;
        let r = match reply {
            Rep::Subscribe(r) => r,
            other => panic!("{} could not subscribe {channel}: {other:?}", self.user),
        };
        let snapshot = match with_lock {
            true => {
                let e = self.next_lock("the lock SNAPSHOT").await;
                assert_snapshot_head(&e, (MESSAGE, channel));
                assert_eq!(e.position, r.position, "SNAPSHOT at the reply's position");
                Some(e)
            }
            false => None,
        };
        (r, snapshot)
    }

    async fn unsubscribe(&mut self, channel: &str) {
        let reply = self
            .req(Req::Unsubscribe(pb::UnsubscribeRequest {
                channel_name: channel.into(),
            }))
            .await;
        assert!(
            matches!(&reply, Rep::Unsubscribe(r) if r.channel_name == channel),
            "{} could not unsubscribe {channel}: {reply:?}",
            self.user
        );
    }

    /// Joins STREAM channel `channel` (app without certificate, empty token, no
    /// presence); reads the topic SNAPSHOT and, with `with_lock`, the lock SNAPSHOT.
    async fn join(&mut self, channel: &str, with_lock: bool) -> Option<pb::LockEvent> {
        let reply = self
            .req(Req::Join(pb::JoinRequest {
                channel_name: channel.into(),
                token: String::new(),
                with_presence: Some(false),
                with_lock: Some(with_lock),
                ..Default::default()
            }))
            .await;
        let r = match reply {
            Rep::Join(r) => r,
            other => panic!("{} could not join {channel}: {other:?}", self.user),
        };
        match self.next_push().await {
            Rep::Topic(t) => {
                assert_eq!(t.event_type, pb::TopicEventType::Snapshot as i32, "{t:?}")
            }
            other => panic!("{} expected the topic SNAPSHOT, got {other:?}", self.user),
        }
        if !with_lock {
            return None;
        }
        let e = self.next_lock("the lock SNAPSHOT of a join").await;
        assert_snapshot_head(&e, (STREAM, channel));
        assert_eq!(e.position, r.position, "SNAPSHOT at the reply's position");
        Some(e)
    }

    async fn leave(&mut self, channel: &str) {
        let reply = self
            .req(Req::Leave(pb::LeaveRequest {
                channel_name: channel.into(),
            }))
            .await;
        assert!(
            matches!(&reply, Rep::Leave(r) if r.channel_name == channel),
            "{} could not leave {channel}: {reply:?}",
            self.user
        );
    }

    /// Publishes `text` to MESSAGE channel `channel`.
    async fn publish(&mut self, channel: &str, text: &str) {
        let reply = self.req(publish_text(channel, text)).await;
        assert!(matches!(reply, Rep::Publish(_)), "publish: {reply:?}");
    }

    /// Sends `text` to `user` (USER channel).
    async fn send_to(&mut self, user: &str, text: &str) {
        let reply = self
            .req(publish_body(
                pb::ChannelType::User,
                user,
                pb::MessageType::String,
                bytes::Bytes::copy_from_slice(text.as_bytes()),
            ))
            .await;
        assert!(matches!(reply, Rep::Publish(_)), "USER publish: {reply:?}");
    }

    /// Logs out; the connection closes with LOGOUT (4000) once the session has ended.
    async fn logout(mut self) {
        let reply = self.req(Req::Logout(pb::LogoutRequest {})).await;
        assert!(matches!(reply, Rep::Logout(_)), "logout: {reply:?}");
        let closing = self.raw.expect_closing(STEP).await;
        assert_eq!(closing.code, 4000, "{closing:?}");
    }
}

/// Checks the fixed fields of a SNAPSHOT (api.md §9.6: no lock name, ttl, publisher or
/// owner of its own).
fn assert_snapshot_head(e: &pb::LockEvent, ch: Ch) {
    assert_eq!(
        (
            event_name(e.event_type),
            e.channel_type,
            e.channel_name.as_str(),
            e.lock_name.as_str(),
            e.ttl,
            e.publisher.as_str(),
            e.owner.as_str()
        ),
        ("SNAPSHOT", ch.0, ch.1, "", 0, "", ""),
        "{e:?}"
    );
    assert_eq!(e.event_type, SNAPSHOT);
}

// ---------------------------------------------------------------------------------------
// setLock / removeLock / getLock
// ---------------------------------------------------------------------------------------

/// R150, §7 getLock: the ttl defaults to 10 s (0 on the wire) and is clamped to
/// 10–300 s (5 → 10, 1000 → 300; 10, 60 and 300 kept). getLock lists every lock of the
/// channel ordered by name (byte order), each free with its ttl; a lock of the same name
/// in the STREAM channel of the same name is another lock.
#[tokio::test]
async fn r150_ttl_defaults_to_10_and_is_clamped_getlock_lists_by_name() {
    let server = TestServer::start().await;
    let mut alice = Peer::login(&server, "alice").await;
    assert!(alice.locks(IN_ROOM).await.is_empty(), "no locks yet");

    for (lock, ttl) in [
        ("zeta", 0),
        ("alpha", 5),
        ("mid", 1000),
        ("Beta", 60),
        ("low", 10),
        ("high", 300),
        ("one", 1),
    ] {
        alice.ok(set_req(IN_ROOM, lock, ttl)).await;
    }
    assert_eq!(
        alice.locks(IN_ROOM).await,
        rows(&[
            ("Beta", "", 60),
            ("alpha", "", 10),
            ("high", "", 300),
            ("low", "", 10),
            ("mid", "", 300),
            ("one", "", 10),
            ("zeta", "", 10),
        ])
    );
    // Another user sees the same list (locks belong to the channel).
    let mut bob = Peer::login(&server, "bob").await;
    assert_eq!(bob.locks(IN_ROOM).await.len(), 7);
    // Not the STREAM channel "room", not another MESSAGE channel.
    assert!(bob.locks((STREAM, ROOM)).await.is_empty());
    assert!(bob.locks((MESSAGE, "hall")).await.is_empty());
    bob.ok(set_req((STREAM, ROOM), "zeta", 42)).await;
    assert_eq!(bob.locks((STREAM, ROOM)).await, rows(&[("zeta", "", 42)]));
    let room = bob.locks(IN_ROOM).await;
    assert_eq!(
        room.last(),
        Some(&("zeta".into(), "".into(), 10)),
        "the MESSAGE lock is unchanged: {room:?}"
    );
}

/// R156: setLock of a defined lock fails with −14004 (and changes nothing); removeLock,
/// acquireLock (with and without retry), releaseLock and revokeLock of an undefined lock
/// fail with −14008 — also once a lock has been removed, and getLock no longer lists
/// it.
#[tokio::test]
async fn r156_set_of_defined_fails_14004_other_ops_on_undefined_fail_14008() {
    let server = TestServer::start().await;
    let mut alice = Peer::login(&server, "alice").await;
    alice.ok(set_req(IN_ROOM, "door", 30)).await;
    alice
        .fails(set_req(IN_ROOM, "door", 60), LOCK_ALREADY_EXIST)
        .await;
    alice.ok(acquire_req(IN_ROOM, "door", false)).await;
    alice
        .fails(set_req(IN_ROOM, "door", 0), LOCK_ALREADY_EXIST)
        .await;
    assert_eq!(
        alice.locks(IN_ROOM).await,
        rows(&[("door", "alice", 30)]),
        "a refused setLock changes neither ttl nor owner"
    );

    for lock in ["ghost", "Door", "door "] {
        alice.fails(remove_req(IN_ROOM, lock), LOCK_NOT_EXIST).await;
        alice
            .fails(acquire_req(IN_ROOM, lock, false), LOCK_NOT_EXIST)
            .await;
        alice
            .fails(acquire_req(IN_ROOM, lock, true), LOCK_NOT_EXIST)
            .await;
        alice
            .fails(release_req(IN_ROOM, lock), LOCK_NOT_EXIST)
            .await;
        alice
            .fails(revoke_req(IN_ROOM, lock, "alice"), LOCK_NOT_EXIST)
            .await;
    }
    // Defined in ROOM only.
    alice
        .fails(
            acquire_req((MESSAGE, "hall"), "door", false),
            LOCK_NOT_EXIST,
        )
        .await;

    alice.ok(remove_req(IN_ROOM, "door")).await;
    assert!(alice.locks(IN_ROOM).await.is_empty());
    alice
        .fails(remove_req(IN_ROOM, "door"), LOCK_NOT_EXIST)
        .await;
    alice
        .fails(acquire_req(IN_ROOM, "door", false), LOCK_NOT_EXIST)
        .await;
    alice
        .fails(release_req(IN_ROOM, "door"), LOCK_NOT_EXIST)
        .await;
    alice
        .fails(revoke_req(IN_ROOM, "door", "alice"), LOCK_NOT_EXIST)
        .await;
    // Defined again: free, with the new ttl.
    alice.ok(set_req(IN_ROOM, "door", 0)).await;
    assert_eq!(alice.locks(IN_ROOM).await, rows(&[("door", "", 10)]));
}

/// R10: a lock name follows the user-id rules (R2–R5): empty, a leading `_`, 65 bytes,
/// a character outside the R3 set or the word "null" fail with −14005 in every lock
/// operation; 64 bytes and the whole R3 punctuation set are accepted.
#[tokio::test]
async fn r10_invalid_lock_names_fail_14005() {
    let server = TestServer::start().await;
    let mut alice = Peer::login(&server, "alice").await;
    let long = "l".repeat(65);
    for bad in ["", "_lock", long.as_str(), "a/b", "é", "null", "tab\t"] {
        alice
            .fails(set_req(IN_ROOM, bad, 0), LOCK_INVALID_NAME)
            .await;
        alice
            .fails(remove_req(IN_ROOM, bad), LOCK_INVALID_NAME)
            .await;
        alice
            .fails(acquire_req(IN_ROOM, bad, true), LOCK_INVALID_NAME)
            .await;
        alice
            .fails(release_req(IN_ROOM, bad), LOCK_INVALID_NAME)
            .await;
        alice
            .fails(revoke_req(IN_ROOM, bad, "alice"), LOCK_INVALID_NAME)
            .await;
    }
    assert!(alice.locks(IN_ROOM).await.is_empty());

    let max = "m".repeat(64);
    let punctuation = "a b!#$%&()+-:;<=.>?@[]^_{}|~,";
    for good in [max.as_str(), punctuation, "x_"] {
        alice.ok(set_req(IN_ROOM, good, 0)).await;
        alice.ok(acquire_req(IN_ROOM, good, false)).await;
        alice.ok(release_req(IN_ROOM, good)).await;
    }
    assert_eq!(alice.locks(IN_ROOM).await.len(), 3);
}

/// R125, §7: lock calls take a MESSAGE or STREAM channel; USER (and an unspecified
/// type) fail with −10019 in every lock operation and in getLock. R7: an invalid channel
/// name fails with −10008.
#[tokio::test]
async fn r125_user_channel_fails_10019_and_bad_channel_names_10008() {
    let server = TestServer::start().await;
    let mut alice = Peer::login(&server, "alice").await;
    for ty in [USER, pb::ChannelType::Unspecified as i32] {
        let ch = (ty, "alice");
        alice.fails(set_req(ch, "l", 0), INVALID_CHANNEL_TYPE).await;
        alice.fails(remove_req(ch, "l"), INVALID_CHANNEL_TYPE).await;
        alice
            .fails(acquire_req(ch, "l", false), INVALID_CHANNEL_TYPE)
            .await;
        alice
            .fails(release_req(ch, "l"), INVALID_CHANNEL_TYPE)
            .await;
        alice
            .fails(revoke_req(ch, "l", "alice"), INVALID_CHANNEL_TYPE)
            .await;
        alice.fails(get_req(ch), INVALID_CHANNEL_TYPE).await;
    }
    for bad in ["", "_room", "a/b"] {
        alice
            .fails(set_req((MESSAGE, bad), "l", 0), INVALID_CHANNEL_NAME)
            .await;
        alice
            .fails(acquire_req((STREAM, bad), "l", false), INVALID_CHANNEL_NAME)
            .await;
        alice
            .fails(get_req((MESSAGE, bad)), INVALID_CHANNEL_NAME)
            .await;
    }
}

/// AppLimits::max_locks_per_channel (here 3): setLock of one more lock fails with
/// −14001 and defines nothing; the limit is per channel (another channel, the STREAM
/// channel of the same name), and a removal makes room again.
#[tokio::test]
async fn lock_count_per_channel_is_limited_14001() {
    let server = TestServer::with(|c| limits(c, |l| l.max_locks_per_channel = 3)).await;
    let mut alice = Peer::login(&server, "alice").await;
    for lock in ["a", "b", "c"] {
        alice.ok(set_req(IN_ROOM, lock, 0)).await;
    }
    alice
        .fails(set_req(IN_ROOM, "d", 0), LOCK_OPERATION_FAILED)
        .await;
    // A defined name still answers −14004, not the limit.
    alice
        .fails(set_req(IN_ROOM, "a", 0), LOCK_ALREADY_EXIST)
        .await;
    assert_eq!(
        alice.locks(IN_ROOM).await,
        rows(&[("a", "", 10), ("b", "", 10), ("c", "", 10)])
    );
    alice
        .fails(acquire_req(IN_ROOM, "d", false), LOCK_NOT_EXIST)
        .await;
    for lock in ["a", "b", "c"] {
        alice.ok(set_req((MESSAGE, "hall"), lock, 0)).await;
        alice.ok(set_req((STREAM, ROOM), lock, 0)).await;
    }
    alice.ok(remove_req(IN_ROOM, "b")).await;
    alice.ok(set_req(IN_ROOM, "d", 0)).await;
    assert_eq!(
        alice.locks(IN_ROOM).await,
        rows(&[("a", "", 10), ("c", "", 10), ("d", "", 10)])
    );
}

/// R159: lock operations need no subscription or membership: two users that never
/// subscribe to the MESSAGE channel nor join the STREAM channel set, acquire, get,
/// release, revoke and remove its locks.
#[tokio::test]
async fn r159_lock_calls_need_no_subscription_or_join() {
    let server = TestServer::start().await;
    let mut alice = Peer::login(&server, "alice").await;
    let mut bob = Peer::login(&server, "bob").await;
    for ch in [IN_ROOM, ON_STAGE] {
        alice.ok(set_req(ch, "l", 20)).await;
        bob.ok(acquire_req(ch, "l", false)).await;
        assert_eq!(alice.locks(ch).await, rows(&[("l", "bob", 20)]));
        bob.ok(release_req(ch, "l")).await;
        alice.ok(acquire_req(ch, "l", false)).await;
        bob.ok(revoke_req(ch, "l", "alice")).await;
        assert_eq!(bob.locks(ch).await, rows(&[("l", "", 20)]));
        bob.ok(remove_req(ch, "l")).await;
        assert!(alice.locks(ch).await.is_empty());
    }
}

// ---------------------------------------------------------------------------------------
// acquire / release / revoke
// ---------------------------------------------------------------------------------------

/// R151, R154, R155: a lock has one owner. acquireLock of a lock held by another fails
/// with −14007 without `retry`; acquiring a lock one already owns succeeds (with or
/// without `retry`) and changes nothing. releaseLock by a non-owner (or of a free lock)
/// fails with −14006. revokeLock naming someone who is not the owner fails with −14006;
/// naming the owner frees the lock, whoever calls it.
#[tokio::test]
async fn r151_r154_r155_one_owner_release_by_owner_revoke_of_the_owner() {
    let server = TestServer::start().await;
    let mut alice = Peer::login(&server, "alice").await;
    let mut bob = Peer::login(&server, "bob").await;
    alice.ok(set_req(IN_ROOM, "l", 0)).await;
    alice.ok(acquire_req(IN_ROOM, "l", false)).await;
    alice.ok(acquire_req(IN_ROOM, "l", false)).await;
    alice.ok(acquire_req(IN_ROOM, "l", true)).await;
    // Not left waiting by the retry: another operation is not −14003.
    alice.ok(release_req(IN_ROOM, "l")).await;
    alice.ok(acquire_req(IN_ROOM, "l", false)).await;
    assert_eq!(alice.locks(IN_ROOM).await, rows(&[("l", "alice", 10)]));

    bob.fails(acquire_req(IN_ROOM, "l", false), LOCK_ACQUIRE_FAILED)
        .await;
    bob.fails(release_req(IN_ROOM, "l"), LOCK_NOT_ACQUIRED)
        .await;
    bob.fails(revoke_req(IN_ROOM, "l", "bob"), LOCK_NOT_ACQUIRED)
        .await;
    bob.fails(revoke_req(IN_ROOM, "l", "carol"), LOCK_NOT_ACQUIRED)
        .await;
    alice
        .fails(revoke_req(IN_ROOM, "l", "bob"), LOCK_NOT_ACQUIRED)
        .await;
    assert_eq!(
        bob.locks(IN_ROOM).await,
        rows(&[("l", "alice", 10)]),
        "refused calls change nothing"
    );

    bob.ok(revoke_req(IN_ROOM, "l", "alice")).await;
    assert_eq!(bob.locks(IN_ROOM).await, rows(&[("l", "", 10)]));
    alice
        .fails(release_req(IN_ROOM, "l"), LOCK_NOT_ACQUIRED)
        .await;
    alice
        .fails(revoke_req(IN_ROOM, "l", "alice"), LOCK_NOT_ACQUIRED)
        .await;

    bob.ok(acquire_req(IN_ROOM, "l", false)).await;
    alice
        .fails(acquire_req(IN_ROOM, "l", false), LOCK_ACQUIRE_FAILED)
        .await;
    // The owner may revoke itself.
    bob.ok(revoke_req(IN_ROOM, "l", "bob")).await;
    assert_eq!(alice.locks(IN_ROOM).await, rows(&[("l", "", 10)]));
    bob.fails(release_req(IN_ROOM, "l"), LOCK_NOT_ACQUIRED)
        .await;
}

// ---------------------------------------------------------------------------------------
// The waiting line (R152, R158)
// ---------------------------------------------------------------------------------------

/// R152, R158: A owns; B, C, D ask with `retry` in that order. While B waits, every other
/// operation of B on that lock fails with −14003, but getLock and other locks work.
/// A releases → B's pending acquire is answered; B releases → C; C releases → D. A
/// member with `withLock` sees each hand-over as RELEASED (by the releaser) then
/// ACQUIRED (by the new owner).
#[tokio::test]
async fn r152_r158_waiters_are_served_in_arrival_order() {
    let server = TestServer::start().await;
    let mut watcher = Peer::login(&server, "watcher").await;
    watcher.subscribe(ROOM, true).await;
    let mut a = Peer::login(&server, "a").await;
    a.ok(set_req(IN_ROOM, "l", 0)).await;
    a.ok(set_req(IN_ROOM, "other", 0)).await;
    a.ok(acquire_req(IN_ROOM, "l", false)).await;
    for (lock, kind, by, owner) in [
        ("l", SET, "a", ""),
        ("other", SET, "a", ""),
        ("l", ACQUIRED, "a", "a"),
    ] {
        let e = watcher.next_lock("setup").await;
        assert_lock_event(&e, kind, IN_ROOM, lock, TTL_MIN, by, owner);
    }

    let mut b = Peer::login(&server, "b").await;
    let mut c = Peer::login(&server, "c").await;
    let mut d = Peer::login(&server, "d").await;
    let b_wait = b.wait_in_line(IN_ROOM, "l").await;
    let c_wait = c.wait_in_line(IN_ROOM, "l").await;
    let d_wait = d.wait_in_line(IN_ROOM, "l").await;

    // R158: B's other operations on "l" while it waits.
    b.fails(acquire_req(IN_ROOM, "l", true), LOCK_OPERATION_PERFORMING)
        .await;
    b.fails(release_req(IN_ROOM, "l"), LOCK_OPERATION_PERFORMING)
        .await;
    b.fails(revoke_req(IN_ROOM, "l", "a"), LOCK_OPERATION_PERFORMING)
        .await;
    b.fails(set_req(IN_ROOM, "l", 0), LOCK_OPERATION_PERFORMING)
        .await;
    b.fails(remove_req(IN_ROOM, "l"), LOCK_OPERATION_PERFORMING)
        .await;
    assert_eq!(owner_of(&b.locks(IN_ROOM).await, "l"), "a");
    b.ok(acquire_req(IN_ROOM, "other", false)).await;
    b.ok(release_req(IN_ROOM, "other")).await;
    let e = watcher.next_lock("ACQUIRED other").await;
    assert_lock_event(&e, ACQUIRED, IN_ROOM, "other", TTL_MIN, "b", "b");
    let e = watcher.next_lock("RELEASED other").await;
    assert_lock_event(&e, RELEASED, IN_ROOM, "other", TTL_MIN, "b", "");
    assert_eq!(owner_of(&a.locks(IN_ROOM).await, "l"), "a", "still A's");

    a.ok(release_req(IN_ROOM, "l")).await;
    b.acquired(b_wait, IN_ROOM, "l").await;
    assert_eq!(owner_of(&a.locks(IN_ROOM).await, "l"), "b");
    c.assert_waiting(IN_ROOM, "l").await;
    d.assert_waiting(IN_ROOM, "l").await;

    b.ok(release_req(IN_ROOM, "l")).await;
    c.acquired(c_wait, IN_ROOM, "l").await;
    assert_eq!(owner_of(&a.locks(IN_ROOM).await, "l"), "c");
    d.assert_waiting(IN_ROOM, "l").await;

    c.ok(release_req(IN_ROOM, "l")).await;
    d.acquired(d_wait, IN_ROOM, "l").await;
    assert_eq!(owner_of(&a.locks(IN_ROOM).await, "l"), "d");
    d.ok(release_req(IN_ROOM, "l")).await;
    assert_eq!(owner_of(&a.locks(IN_ROOM).await, "l"), "");

    for (by, next) in [("a", "b"), ("b", "c"), ("c", "d")] {
        let e = watcher.next_lock("RELEASED").await;
        assert_lock_event(&e, RELEASED, IN_ROOM, "l", TTL_MIN, by, "");
        let e = watcher.next_lock("ACQUIRED").await;
        assert_lock_event(&e, ACQUIRED, IN_ROOM, "l", TTL_MIN, next, next);
    }
    let e = watcher.next_lock("the last RELEASED").await;
    assert_lock_event(&e, RELEASED, IN_ROOM, "l", TTL_MIN, "d", "");
    // Nobody else was queued: B, C and D waited once each.
    b.fails(release_req(IN_ROOM, "l"), LOCK_NOT_ACQUIRED).await;
}

/// R152: a waiter leaves the line when its connection is lost (D), when it unsubscribes
/// from the lock's channel (B: its acquire is answered with an error — unsubscribing
/// from another channel does not count), or when it logs out (C). A then releases and
/// the lock skips them all: E, the last in line, gets it.
#[tokio::test]
async fn r152_waiters_that_lose_the_link_unsubscribe_or_log_out_are_skipped() {
    let server = TestServer::start().await;
    let mut watcher = Peer::login(&server, "watcher").await;
    watcher.subscribe(ROOM, true).await;
    let mut a = Peer::login(&server, "a").await;
    a.ok(set_req(IN_ROOM, "l", 0)).await;
    a.ok(acquire_req(IN_ROOM, "l", false)).await;

    let (mut d, _) = Peer::login_over(server.raw().await, "d", "", Vec::new(), 60).await;
    let mut b = Peer::login(&server, "b").await;
    b.subscribe(ROOM, false).await;
    b.subscribe("elsewhere", false).await;
    let mut c = Peer::login(&server, "c").await;
    let mut e = Peer::login(&server, "e").await;
    d.wait_in_line(IN_ROOM, "l").await;
    let b_wait = b.wait_in_line(IN_ROOM, "l").await;
    c.wait_in_line(IN_ROOM, "l").await;
    let e_wait = e.wait_in_line(IN_ROOM, "l").await;

    // D's connection is lost (socket closed without logout; the session stays): once
    // the server has closed its side it has seen the loss and taken D out of the line.
    d.raw.lose_connection().await;

    b.unsubscribe("elsewhere").await;
    b.assert_waiting(IN_ROOM, "l").await;
    b.unsubscribe(ROOM).await;
    assert_error(
        b.raw.reply(b_wait).await,
        LOCK_OPERATION_FAILED,
        "acquireLock",
    );
    b.fails(acquire_req(IN_ROOM, "l", false), LOCK_ACQUIRE_FAILED)
        .await;

    c.logout().await;

    a.ok(release_req(IN_ROOM, "l")).await;
    e.acquired(e_wait, IN_ROOM, "l").await;
    assert_eq!(owner_of(&a.locks(IN_ROOM).await, "l"), "e");
    for (kind, by, owner) in [
        (SET, "a", ""),
        (ACQUIRED, "a", "a"),
        (RELEASED, "a", ""),
        (ACQUIRED, "e", "e"),
    ] {
        let ev = watcher.next_lock("events").await;
        assert_lock_event(&ev, kind, IN_ROOM, "l", TTL_MIN, by, owner);
    }
}

/// R152, lock.rs ("a waiter whose connection is lost leaves the line: its request
/// cannot be answered any more"): a waiter whose link went half-open resumes its session
/// on a new connection while the server still holds the old one. The server closes the
/// old connection — the one the waiting acquire would be answered on — so the wait must
/// end with it: on the new connection another acquire is not −14003 but −14007, and when
/// the owner releases, the lock is not handed to a user that was never told.
#[tokio::test]
async fn r152_a_wait_ends_with_its_connection_when_a_resume_replaces_it() {
    let server = TestServer::start().await;
    let mut alice = Peer::login(&server, "alice").await;
    alice.ok(set_req(IN_ROOM, "l", 0)).await;
    alice.ok(acquire_req(IN_ROOM, "l", false)).await;
    let (mut old, login) = Peer::login_over(server.raw().await, "bob", "", Vec::new(), 60).await;
    old.wait_in_line(IN_ROOM, "l").await;

    // The client gives up on the old link (still open on the server) and resumes.
    let positions = vec![resume_position(USER, "bob", login.user_position)];
    let (mut bob, again) =
        Peer::login_over(server.raw().await, "bob", &login.session_id, positions, 60).await;
    assert!(again.resumed, "{again:?}");
    // The server closes the old connection: its pending acquire can never be answered.
    old.raw.read_until_closed(STEP, false).await;

    bob.fails(acquire_req(IN_ROOM, "l", false), LOCK_ACQUIRE_FAILED)
        .await;
    alice.ok(release_req(IN_ROOM, "l")).await;
    assert_eq!(
        owner_of(&alice.locks(IN_ROOM).await, "l"),
        "",
        "the lock went to a waiter whose request could not be answered"
    );
}

/// R156, R152: removing a lock that has waiters fails their pending acquires with
/// −14008; subscribers see REMOVED only (no RELEASED or ACQUIRED), and the lock is gone.
#[tokio::test]
async fn r156_removing_a_lock_fails_its_waiters_with_14008() {
    let server = TestServer::start().await;
    let mut watcher = Peer::login(&server, "watcher").await;
    watcher.subscribe(ROOM, true).await;
    let mut a = Peer::login(&server, "a").await;
    let mut b = Peer::login(&server, "b").await;
    a.ok(set_req(IN_ROOM, "l", 30)).await;
    a.ok(acquire_req(IN_ROOM, "l", false)).await;
    let b_wait = b.wait_in_line(IN_ROOM, "l").await;

    a.ok(remove_req(IN_ROOM, "l")).await;
    assert_error(b.raw.reply(b_wait).await, LOCK_NOT_EXIST, "acquireLock");
    b.fails(acquire_req(IN_ROOM, "l", false), LOCK_NOT_EXIST)
        .await;
    assert!(a.locks(IN_ROOM).await.is_empty());

    a.publish(ROOM, "sentinel").await;
    for (kind, by, owner) in [(SET, "a", ""), (ACQUIRED, "a", "a"), (REMOVED, "a", "")] {
        let ev = watcher.next_lock("events").await;
        assert_lock_event(&ev, kind, IN_ROOM, "l", 30, by, owner);
    }
    assert_eq!(watcher.next_text("the sentinel").await, "sentinel");
}

// ---------------------------------------------------------------------------------------
// Owner loss (R153), logout and session end
// ---------------------------------------------------------------------------------------

/// R153, R157, §9.10: the owner's connection is lost (reset through a proxy; its session
/// lives on for its 60 s presence timeout). For the lock's ttl (10 s) the lock stays
/// its own; then it is freed: the waiter's pending acquire is answered, members with
/// `withLock` see RELEASED then ACQUIRED (owner = the waiter), and the former owner,
/// resuming its session from its USER position, receives EXPIRED — once, from its own
/// USER channel, without `withLock`. Others get no EXPIRED.
#[tokio::test]
async fn r153_lost_owner_keeps_the_lock_for_its_ttl_then_expired_and_handed_on() {
    let server = TestServer::start().await;
    let proxy = FaultProxy::start(server.addr).await;
    let (mut alice, login) =
        Peer::login_over(raw_via(&proxy).await, "alice", "", Vec::new(), 60).await;
    assert_eq!(login.presence_timeout, 60, "{login:?}");
    let mut watcher = Peer::login(&server, "watcher").await;
    watcher.subscribe(ROOM, true).await;
    alice.ok(set_req(IN_ROOM, "lease", 0)).await;
    alice.ok(acquire_req(IN_ROOM, "lease", false)).await;
    let mut bob = Peer::login(&server, "bob").await;
    let waiting = bob.wait_in_line(IN_ROOM, "lease").await;

    proxy.wait_connections(1).await;
    let lost_at = Instant::now();
    proxy.cut();
    drop(alice);
    proxy.wait_connections(0).await;

    // Within the ttl the lock is alice's; then bob's.
    let ttl = Duration::from_secs(u64::from(TTL_MIN));
    let mut last_alice = Duration::ZERO;
    let freed_after = loop {
        let owner = owner_of(&bob.locks(IN_ROOM).await, "lease");
        let t = lost_at.elapsed();
        if owner != "alice" {
            assert_eq!(owner, "bob", "the waiter gets it ({t:?} after the loss)");
            break t;
        }
        last_alice = t;
        assert!(
            t < ttl + Duration::from_secs(3),
            "still alice's {t:?} after the loss"
        );
        sleep(Duration::from_millis(200)).await;
    };
    assert!(
        freed_after >= ttl - Duration::from_millis(100),
        "freed {freed_after:?} after the loss, before the ttl"
    );
    assert!(
        last_alice >= ttl - Duration::from_secs(1),
        "seen as alice's until {last_alice:?}"
    );
    bob.acquired(waiting, IN_ROOM, "lease").await;

    for (kind, by, owner) in [
        (SET, "alice", ""),
        (ACQUIRED, "alice", "alice"),
        (RELEASED, "alice", ""),
        (ACQUIRED, "bob", "bob"),
    ] {
        let ev = watcher.next_lock("events").await;
        assert_lock_event(&ev, kind, IN_ROOM, "lease", TTL_MIN, by, owner);
    }
    // No EXPIRED to the members: the next push is the sentinel.
    watcher.publish(ROOM, "after").await;
    assert_eq!(watcher.next_text("the sentinel").await, "after");

    // alice resumes from its USER position: EXPIRED is replayed from its inbox.
    let positions = vec![resume_position(USER, "alice", login.user_position)];
    let (mut alice, again) = Peer::login_over(
        server.raw().await,
        "alice",
        &login.session_id,
        positions,
        60,
    )
    .await;
    assert!(again.resumed, "{again:?}");
    assert!(again.gap_channels.is_empty(), "{again:?}");
    let ev = alice.next_lock("EXPIRED").await;
    assert_lock_event(&ev, EXPIRED, IN_ROOM, "lease", 0, "alice", "");
    assert!(
        offset(&ev.position) > offset(&login.user_position),
        "EXPIRED is positioned in alice's USER channel: {ev:?} vs {login:?}"
    );
    bob.send_to("alice", "ping").await;
    assert_eq!(
        alice.next_text("the USER sentinel").await,
        "ping",
        "EXPIRED once"
    );

    alice
        .fails(release_req(IN_ROOM, "lease"), LOCK_NOT_ACQUIRED)
        .await;
    alice
        .fails(acquire_req(IN_ROOM, "lease", false), LOCK_ACQUIRE_FAILED)
        .await;
    assert_eq!(
        alice.locks(IN_ROOM).await,
        rows(&[("lease", "bob", TTL_MIN)])
    );
}

/// R153, R52: an owner whose connection is lost and that resumes its session within the
/// ttl keeps the lock past the moment the ttl would have run out: no EXPIRED, no
/// RELEASED, the waiter keeps waiting; when the owner then releases, the waiter gets it.
#[tokio::test]
async fn r153_owner_back_within_the_ttl_keeps_the_lock() {
    let server = TestServer::start().await;
    let (mut alice, login) =
        Peer::login_over(server.raw().await, "alice", "", Vec::new(), 60).await;
    let mut watcher = Peer::login(&server, "watcher").await;
    watcher.subscribe(ROOM, true).await;
    alice.ok(set_req(IN_ROOM, "lease", 0)).await;
    alice.ok(acquire_req(IN_ROOM, "lease", false)).await;
    let mut bob = Peer::login(&server, "bob").await;
    let waiting = bob.wait_in_line(IN_ROOM, "lease").await;

    // The socket is closed without a logout: a lost connection, seen by the server
    // (else the resume below would replace a live connection, and the ttl never start).
    alice.raw.lose_connection().await;
    let lost_at = Instant::now();
    let positions = vec![resume_position(USER, "alice", login.user_position)];
    let (mut alice, again) = Peer::login_over(
        server.raw().await,
        "alice",
        &login.session_id,
        positions,
        60,
    )
    .await;
    assert!(again.resumed, "{again:?}");

    // Past the moment the ttl would have run out (a fixed wait: what is checked is that
    // nothing happens).
    sleep_until(lost_at + Duration::from_secs(u64::from(TTL_MIN)) + Duration::from_millis(1_500))
        .await;
    assert_eq!(owner_of(&bob.locks(IN_ROOM).await, "lease"), "alice");
    bob.assert_waiting(IN_ROOM, "lease").await;
    bob.send_to("alice", "ping").await;
    assert_eq!(
        alice.next_text("the USER sentinel").await,
        "ping",
        "no EXPIRED"
    );
    bob.publish(ROOM, "still").await;
    for (kind, by, owner) in [(SET, "alice", ""), (ACQUIRED, "alice", "alice")] {
        let ev = watcher.next_lock("setup").await;
        assert_lock_event(&ev, kind, IN_ROOM, "lease", TTL_MIN, by, owner);
    }
    assert_eq!(
        watcher.next_text("the sentinel").await,
        "still",
        "no RELEASED"
    );

    alice.ok(release_req(IN_ROOM, "lease")).await;
    bob.acquired(waiting, IN_ROOM, "lease").await;
    let ev = watcher.next_lock("RELEASED").await;
    assert_lock_event(&ev, RELEASED, IN_ROOM, "lease", TTL_MIN, "alice", "");
    let ev = watcher.next_lock("ACQUIRED").await;
    assert_lock_event(&ev, ACQUIRED, IN_ROOM, "lease", TTL_MIN, "bob", "bob");
}

/// R152, R153 (release at session end, lock.rs): a logout releases the owner's locks at
/// once — members with `withLock` see RELEASED for each (by the owner), the next waiter's
/// pending acquire is answered and ACQUIRED follows; a lock without waiters is free.
#[tokio::test]
async fn r153_logout_releases_at_once_and_the_next_waiter_acquires() {
    let server = TestServer::start().await;
    let mut watcher = Peer::login(&server, "watcher").await;
    watcher.subscribe(ROOM, true).await;
    let mut alice = Peer::login(&server, "alice").await;
    let mut bob = Peer::login(&server, "bob").await;
    alice.ok(set_req(IN_ROOM, "l1", 60)).await;
    alice.ok(set_req(IN_ROOM, "l2", 0)).await;
    alice.ok(acquire_req(IN_ROOM, "l1", false)).await;
    alice.ok(acquire_req(IN_ROOM, "l2", false)).await;
    let waiting = bob.wait_in_line(IN_ROOM, "l1").await;
    for (lock, ttl, kind, owner) in [
        ("l1", 60, SET, ""),
        ("l2", TTL_MIN, SET, ""),
        ("l1", 60, ACQUIRED, "alice"),
        ("l2", TTL_MIN, ACQUIRED, "alice"),
    ] {
        let ev = watcher.next_lock("setup").await;
        assert_lock_event(&ev, kind, IN_ROOM, lock, ttl, "alice", owner);
    }

    let started = Instant::now();
    alice.logout().await;
    bob.acquired(waiting, IN_ROOM, "l1").await;
    assert!(started.elapsed() < Duration::from_secs(3), "at once");
    assert_eq!(
        bob.locks(IN_ROOM).await,
        rows(&[("l1", "bob", 60), ("l2", "", TTL_MIN)])
    );
    let mut seen = Vec::new();
    for _ in 0..3 {
        let ev = watcher.next_lock("after the logout").await;
        seen.push((
            event_name(ev.event_type),
            ev.lock_name.clone(),
            ev.publisher.clone(),
            ev.owner.clone(),
        ));
    }
    let released_l1 = seen
        .iter()
        .position(|e| *e == ("RELEASED", "l1".into(), "alice".into(), "".into()));
    let acquired_l1 = seen
        .iter()
        .position(|e| *e == ("ACQUIRED", "l1".into(), "bob".into(), "bob".into()));
    assert!(
        matches!((released_l1, acquired_l1), (Some(r), Some(a)) if r < a),
        "RELEASED l1 then ACQUIRED l1: {seen:?}"
    );
    assert!(
        seen.contains(&("RELEASED", "l2".into(), "alice".into(), "".into())),
        "{seen:?}"
    );
}

/// R153 as the server reads it (lock.rs): the ttl protects a lost owner only while its
/// session lives. When the session itself times out first (presence timeout 1 s < ttl
/// 10 s) its locks are released at once, like at logout: RELEASED (by the former
/// owner) and the next waiter acquires, well before the ttl.
#[tokio::test]
async fn r153_session_timeout_before_the_ttl_releases_at_once() {
    let server = TestServer::with(|c| c.presence_timeout_range = (1, 300)).await;
    let (mut alice, login) = Peer::login_over(server.raw().await, "alice", "", Vec::new(), 1).await;
    assert_eq!(login.presence_timeout, 1, "{login:?}");
    let mut watcher = Peer::login(&server, "watcher").await;
    watcher.subscribe(ROOM, true).await;
    alice.ok(set_req(IN_ROOM, "lease", 10)).await;
    alice.ok(acquire_req(IN_ROOM, "lease", false)).await;
    let mut bob = Peer::login(&server, "bob").await;
    let waiting = bob.wait_in_line(IN_ROOM, "lease").await;

    let lost_at = Instant::now();
    drop(alice);
    let freed_after = loop {
        let owner = owner_of(&bob.locks(IN_ROOM).await, "lease");
        let t = lost_at.elapsed();
        if owner != "alice" {
            assert_eq!(owner, "bob");
            break t;
        }
        assert!(t < Duration::from_secs(5), "still alice's after {t:?}");
        sleep(Duration::from_millis(50)).await;
    };
    assert!(
        freed_after >= Duration::from_millis(900),
        "not before the presence timeout: {freed_after:?}"
    );
    bob.acquired(waiting, IN_ROOM, "lease").await;
    for (kind, by, owner) in [
        (SET, "alice", ""),
        (ACQUIRED, "alice", "alice"),
        (RELEASED, "alice", ""),
        (ACQUIRED, "bob", "bob"),
    ] {
        let ev = watcher.next_lock("events").await;
        assert_lock_event(&ev, kind, IN_ROOM, "lease", TTL_MIN, by, owner);
    }
}

// ---------------------------------------------------------------------------------------
// Events (R157)
// ---------------------------------------------------------------------------------------

/// R157, §9.6, §10.8: a subscribe with `withLock` is followed by a SNAPSHOT of every lock
/// of the channel (name order, owner, ttl) at the reply's position; then SET, ACQUIRED
/// (owner = the acquirer, also for one's own acquire), RELEASED (release and revoke:
/// publisher = who did it) and REMOVED, each with the lock's ttl, in the channel's order.
/// Acquiring a lock one already owns produces no event. A subscriber without `withLock`
/// gets no lock event (only the sentinel message).
#[tokio::test]
async fn r157_with_lock_gives_snapshot_then_set_acquired_released_removed() {
    let server = TestServer::start().await;
    let mut alice = Peer::login(&server, "alice").await;
    let mut bob = Peer::login(&server, "bob").await;
    alice.ok(set_req(IN_ROOM, "b", 0)).await;
    alice.ok(set_req(IN_ROOM, "a", 30)).await;
    alice.ok(acquire_req(IN_ROOM, "b", false)).await;

    let mut watcher = Peer::login(&server, "watcher").await;
    let (sub, snapshot) = watcher.subscribe(ROOM, true).await;
    let snapshot = snapshot.expect("a SNAPSHOT");
    assert_eq!(
        detail_rows(&snapshot.snapshot),
        rows(&[("a", "", 30), ("b", "alice", TTL_MIN)])
    );
    let mut plain = Peer::login(&server, "plain").await;
    plain.subscribe(ROOM, false).await;
    // An empty channel has an empty SNAPSHOT.
    let (_, empty) = watcher.subscribe("hall", true).await;
    assert!(empty.expect("a SNAPSHOT").snapshot.is_empty());

    alice.ok(acquire_req(IN_ROOM, "b", false)).await; // already the owner: no event
    alice.ok(set_req(IN_ROOM, "c", 20)).await;
    bob.ok(acquire_req(IN_ROOM, "c", false)).await;
    bob.ok(release_req(IN_ROOM, "c")).await;
    alice.ok(acquire_req(IN_ROOM, "c", false)).await;
    bob.ok(revoke_req(IN_ROOM, "c", "alice")).await;
    alice.ok(remove_req(IN_ROOM, "c")).await;
    alice.ok(remove_req(IN_ROOM, "b")).await;
    alice.publish(ROOM, "end").await;

    let mut last = offset(&sub.position);
    for (lock, ttl, kind, by, owner) in [
        ("c", 20, SET, "alice", ""),
        ("c", 20, ACQUIRED, "bob", "bob"),
        ("c", 20, RELEASED, "bob", ""),
        ("c", 20, ACQUIRED, "alice", "alice"),
        ("c", 20, RELEASED, "bob", ""),
        ("c", 20, REMOVED, "alice", ""),
        ("b", TTL_MIN, REMOVED, "alice", ""),
    ] {
        let ev = watcher
            .next_lock(&format!("{} {lock}", event_name(kind)))
            .await;
        assert_lock_event(&ev, kind, IN_ROOM, lock, ttl, by, owner);
        let at = offset(&ev.position);
        assert!(at > last, "positions increase: {ev:?} after {last}");
        last = at;
    }
    assert_eq!(watcher.next_text("the sentinel").await, "end");
    assert_eq!(
        plain
            .next_text("the sentinel, no lock event before it")
            .await,
        "end"
    );
}

/// R157, §9.10, R152: in a STREAM channel, a member joined with `withLock` gets the lock
/// SNAPSHOT after the topic SNAPSHOT, then SET / ACQUIRED / RELEASED / REMOVED of the
/// channel's locks (set by a user that never joined, R159); a member joined without it
/// gets none (its next push is a topic event). A member waiting for a lock of the
/// channel that leaves it stops waiting: its acquire fails and the lock stays free.
#[tokio::test]
async fn r157_r152_stream_members_with_lock_get_events_and_leaving_ends_a_wait() {
    let server = TestServer::start().await;
    let mut owner = Peer::login_open(&server, "owner").await;
    owner.ok(set_req(ON_STAGE, "pre", 0)).await;
    let mut member = Peer::login_open(&server, "member").await;
    let snapshot = member.join(STAGE, true).await.expect("a SNAPSHOT");
    assert_eq!(
        detail_rows(&snapshot.snapshot),
        rows(&[("pre", "", TTL_MIN)])
    );
    let mut plain = Peer::login_open(&server, "plain").await;
    plain.join(STAGE, false).await;

    owner.ok(set_req(ON_STAGE, "l", 15)).await;
    owner.ok(acquire_req(ON_STAGE, "l", false)).await;
    let waiting = member.wait_in_line(ON_STAGE, "l").await;
    owner.ok(release_req(ON_STAGE, "l")).await;
    member.acquired(waiting, ON_STAGE, "l").await;
    member.ok(release_req(ON_STAGE, "l")).await;
    owner.ok(remove_req(ON_STAGE, "pre")).await;
    for (lock, ttl, kind, by, who) in [
        ("l", 15, SET, "owner", ""),
        ("l", 15, ACQUIRED, "owner", "owner"),
        ("l", 15, RELEASED, "owner", ""),
        ("l", 15, ACQUIRED, "member", "member"),
        ("l", 15, RELEASED, "member", ""),
        ("pre", TTL_MIN, REMOVED, "owner", ""),
    ] {
        let ev = member.next_lock(event_name(kind)).await;
        assert_lock_event(&ev, kind, ON_STAGE, lock, ttl, by, who);
    }

    // Leaving the channel ends a wait for one of its locks (R152).
    owner.ok(acquire_req(ON_STAGE, "l", false)).await;
    let waiting = member.wait_in_line(ON_STAGE, "l").await;
    member.leave(STAGE).await;
    assert_error(
        member.raw.reply(waiting).await,
        LOCK_OPERATION_FAILED,
        "acquireLock",
    );
    owner.ok(release_req(ON_STAGE, "l")).await;
    assert_eq!(owner_of(&owner.locks(ON_STAGE).await, "l"), "");

    // The member without withLock: its next push is a topic event, after all of the
    // above.
    let reply = owner
        .req(Req::Join(pb::JoinRequest {
            channel_name: STAGE.into(),
            with_presence: Some(false),
            ..Default::default()
        }))
        .await;
    assert!(matches!(reply, Rep::Join(_)), "{reply:?}");
    let reply = owner
        .req(Req::JoinTopic(pb::JoinTopicRequest {
            channel_name: STAGE.into(),
            topic_name: "t".into(),
            ..Default::default()
        }))
        .await;
    assert!(matches!(reply, Rep::JoinTopic(_)), "{reply:?}");
    match plain.next_push().await {
        Rep::Topic(t) => assert_eq!(t.event_type, pb::TopicEventType::RemoteJoin as i32, "{t:?}"),
        other => panic!("plain expected the topic event, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Restart
// ---------------------------------------------------------------------------------------

/// A server with the base configuration and its storage in `dir`.
async fn server_on(dir: &std::path::Path) -> TestServer {
    let broker = Arc::new(MemoryBroker::new(MemoryConfig::default()));
    TestServer::with_storage_at(Server::new(base_config(), broker), dir).await
}

/// §7, engine contract: lock definitions are durable, ownership is not. After a restart
/// on the same storage, getLock shows every lock with its ttl and no owner (the owner
/// and the waiter were still connected at shutdown), setLock of one answers −14004, and
/// anyone can acquire it.
#[tokio::test]
async fn restart_keeps_lock_definitions_and_frees_every_owner() {
    let dir = fresh_dir("lock-restart");
    let server = server_on(&dir).await;
    let mut alice = Peer::login(&server, "alice").await;
    let mut bob = Peer::login(&server, "bob").await;
    alice.ok(set_req(IN_ROOM, "kept", 60)).await;
    alice.ok(set_req(IN_ROOM, "held", 0)).await;
    alice.ok(set_req(ON_STAGE, "s", 300)).await;
    alice.ok(acquire_req(IN_ROOM, "held", false)).await;
    alice.ok(acquire_req(ON_STAGE, "s", false)).await;
    bob.wait_in_line(IN_ROOM, "held").await;
    let readers = [alice, bob].map(|mut p| {
        tokio::spawn(async move { p.raw.read_until_closed(Duration::from_secs(6), false).await })
    });
    server.shutdown().await.expect("run returns after shutdown");
    for r in readers {
        r.await.expect("reader");
    }

    let server = server_on(&dir).await;
    let mut bob = Peer::login(&server, "bob").await;
    assert_eq!(
        bob.locks(IN_ROOM).await,
        rows(&[("held", "", TTL_MIN), ("kept", "", 60)])
    );
    assert_eq!(bob.locks(ON_STAGE).await, rows(&[("s", "", 300)]));
    bob.fails(set_req(IN_ROOM, "kept", 0), LOCK_ALREADY_EXIST)
        .await;
    bob.ok(acquire_req(IN_ROOM, "held", false)).await;
    bob.ok(acquire_req(ON_STAGE, "s", false)).await;
    let mut alice = Peer::login(&server, "alice").await;
    alice
        .fails(acquire_req(IN_ROOM, "held", false), LOCK_ACQUIRE_FAILED)
        .await;
    assert_eq!(
        alice.locks(IN_ROOM).await,
        rows(&[("held", "bob", TTL_MIN), ("kept", "", 60)])
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
