//! Who may do what (issue 20), over real sockets: every operation that rests on the
//! caller's identity or credential refuses the wrong user, app and channel — token
//! renewal (login and stream channel), lock release and revocation, lock-gated metadata
//! writes, topic requests, presence state removal — each refusal with its code and
//! changing nothing; a session never acts as another user id (publisher, state, author
//! and owner are always its own; a second login on a connection is refused); a resume
//! of another user's session is refused.
//!
//! Covered elsewhere and not repeated: a login with another user's, another app's or a
//! wrongly signed token (`login::r25_t44_…`, `login::r26_t39_…`, `login::r26_t40_…`), a
//! stream channel join with an RTC token of another user, channel or app
//! (`stream.rs`'s join token table), and per-app isolation (`security_isolation.rs`).

mod common;

use common::*;
use switchboard_protocol::ErrorCode;
use switchboard_protocol::pb::{self, client_message::Body as Req, server_message::Body};
use switchboard_token::RtcRole;

const ROOM: &str = "room";

/// Sends `req` and returns its reply, panicking on an error.
async fn ok(c: &mut RawClient, req: Req, what: &str) -> Body {
    match c.request(req).await {
        Body::Error(e) => panic!("{what}: {e:?}"),
        b => b,
    }
}

/// Sends `req`, expects a refusal with `code` and a reason containing `needle`.
async fn refused(c: &mut RawClient, req: Req, code: ErrorCode, needle: &str, what: &str) {
    let e = expect_error(c.request(req).await);
    assert_eq!(e.code, code as i32, "{what}: {e:?}");
    assert!(e.reason.contains(needle), "{what}: {}", e.reason);
}

fn renew(token: String, channel: &str) -> Req {
    Req::RenewToken(pb::RenewTokenRequest {
        token,
        channel_name: channel.into(),
    })
}

fn rtc(app: &str, cert: &str, channel: &str, user: &str) -> String {
    switchboard_token::build_rtc_token(
        app,
        cert,
        channel,
        user,
        RtcRole::Publisher,
        3600,
        3600,
        now_secs(),
    )
    .expect("RTC token")
}

fn lock_req(channel: &str, kind: &str, owner: &str) -> Req {
    let (channel_type, channel_name, lock_name) = (MESSAGE, channel.to_string(), "L".to_string());
    match kind {
        "set" => Req::SetLock(pb::SetLockRequest {
            channel_type,
            channel_name,
            lock_name,
            ttl: 30,
        }),
        "acquire" => Req::AcquireLock(pb::AcquireLockRequest {
            channel_type,
            channel_name,
            lock_name,
            retry: false,
        }),
        "release" => Req::ReleaseLock(pb::ReleaseLockRequest {
            channel_type,
            channel_name,
            lock_name,
        }),
        "revoke" => Req::RevokeLock(pb::RevokeLockRequest {
            channel_type,
            channel_name,
            lock_name,
            owner: owner.into(),
        }),
        _ => unreachable!("lock request kind {kind}"),
    }
}

/// The owner of lock "L" of `channel` as `c` reads it (empty = free).
async fn lock_owner(c: &mut RawClient, channel: &str) -> String {
    let Body::GetLock(r) = ok(
        c,
        Req::GetLock(pb::GetLockRequest {
            channel_type: MESSAGE,
            channel_name: channel.into(),
        }),
        "getLock",
    )
    .await
    else {
        panic!("getLock reply")
    };
    r.locks
        .iter()
        .find(|l| l.lock_name == "L")
        .map(|l| l.owner.clone())
        .unwrap_or_else(|| panic!("lock L of {channel} not defined: {r:?}"))
}

/// T52, T39, T44: `renewToken` for the login refuses another user's token and another
/// app's token; for a stream channel, an RTC token of another user, another channel or
/// another app. Each leaves the session on its old token: it carries on, its channel
/// membership too.
#[tokio::test]
async fn renew_token_refuses_another_users_apps_and_channels_tokens() {
    let server = TestServer::start().await;
    let mut alice = server.raw_login("alice").await;
    refused(
        &mut alice,
        renew(token("bob"), ""),
        ErrorCode::InvalidToken,
        "USER_ID_MISMATCH",
        "another user's login token",
    )
    .await;
    refused(
        &mut alice,
        renew(
            token_with(OTHER_APP_ID, OTHER_CERT, "alice", 3600, now_secs()),
            "",
        ),
        ErrorCode::InconsistentAppid,
        "APP_ID_MISMATCH",
        "another app's login token",
    )
    .await;
    let joined = ok(
        &mut alice,
        Req::Join(pb::JoinRequest {
            channel_name: "stage".into(),
            token: rtc(APP_ID, CERT, "stage", "alice"),
            with_presence: Some(false),
            ..Default::default()
        }),
        "join",
    )
    .await;
    assert!(matches!(joined, Body::Join(_)));
    for (what, token, code, needle) in [
        (
            "another user's RTC token",
            rtc(APP_ID, CERT, "stage", "bob"),
            ErrorCode::InvalidToken,
            "USER_ID_MISMATCH",
        ),
        (
            "another channel's RTC token",
            rtc(APP_ID, CERT, "backstage", "alice"),
            ErrorCode::InvalidToken,
            "CHANNEL_MISMATCH",
        ),
        (
            "another app's RTC token",
            rtc(OTHER_APP_ID, OTHER_CERT, "stage", "alice"),
            ErrorCode::InconsistentAppid,
            "APP_ID_MISMATCH",
        ),
    ] {
        refused(&mut alice, renew(token, "stage"), code, needle, what).await;
    }
    // Still a member of the stage and logged in: a topic role can be taken.
    ok(
        &mut alice,
        Req::JoinTopic(pb::JoinTopicRequest {
            channel_name: "stage".into(),
            topic_name: "t".into(),
            ..Default::default()
        }),
        "joinTopic after the refusals",
    )
    .await;
}

/// R151, R154, R155: a lock held by alice cannot be released by bob (−14006), nor
/// revoked by naming someone else as its owner (−14006), nor touched from another
/// channel or another app where no such lock exists (−14008); alice still holds it.
#[tokio::test]
async fn release_and_revoke_refuse_the_wrong_user_channel_and_app() {
    let server = TestServer::start().await;
    let mut alice = server.raw_login("alice").await;
    let mut bob = server.raw_login("bob").await;
    let mut other = server.raw_login_to(OTHER_APP_ID, OTHER_CERT, "bob").await.0;
    ok(&mut alice, lock_req(ROOM, "set", ""), "setLock").await;
    ok(&mut alice, lock_req(ROOM, "acquire", ""), "acquireLock").await;

    refused(
        &mut bob,
        lock_req(ROOM, "release", ""),
        ErrorCode::LockNotAcquired,
        "",
        "bob releases alice's lock",
    )
    .await;
    refused(
        &mut bob,
        lock_req(ROOM, "acquire", ""),
        ErrorCode::LockAcquireFailed,
        "",
        "bob takes alice's lock",
    )
    .await;
    refused(
        &mut bob,
        lock_req(ROOM, "revoke", "carol"),
        ErrorCode::LockNotAcquired,
        "",
        "revoke naming a non-owner",
    )
    .await;
    refused(
        &mut alice,
        lock_req("elsewhere", "release", ""),
        ErrorCode::LockNotExist,
        "",
        "the lock of another channel",
    )
    .await;
    for kind in ["release", "acquire"] {
        refused(
            &mut other,
            lock_req(ROOM, kind, ""),
            ErrorCode::LockNotExist,
            "",
            "the same lock name in another app",
        )
        .await;
    }
    refused(
        &mut other,
        lock_req(ROOM, "revoke", "alice"),
        ErrorCode::LockNotExist,
        "",
        "revoke from another app",
    )
    .await;
    assert_eq!(lock_owner(&mut bob, ROOM).await, "alice");
    // The owner herself releases it.
    ok(&mut alice, lock_req(ROOM, "release", ""), "releaseLock").await;
    assert_eq!(lock_owner(&mut bob, ROOM).await, "");
}

fn gated_write(channel: &str, lock: &str, value: &str) -> Req {
    Req::SetMetadata(pb::MetadataWriteRequest {
        channel_type: MESSAGE,
        channel_name: channel.into(),
        items: vec![pb::MetadataItem {
            key: "k".into(),
            value: value.into(),
            ..Default::default()
        }],
        lock_name: lock.into(),
        ..Default::default()
    })
}

/// R142: a metadata write gated by lock "L" goes only for the lock's holder: bob
/// (holding nothing) is refused −12008, alice's lock of another channel does not
/// open this one, nor does a lock of the same name in another app; nothing is
/// written by the refused calls.
#[tokio::test]
async fn lock_gated_metadata_writes_refuse_the_wrong_user_channel_and_app() {
    let server = TestServer::start().await;
    let mut alice = server.raw_login("alice").await;
    let mut bob = server.raw_login("bob").await;
    let mut other = server
        .raw_login_to(OTHER_APP_ID, OTHER_CERT, "alice")
        .await
        .0;
    ok(&mut alice, lock_req(ROOM, "set", ""), "setLock").await;
    ok(&mut alice, lock_req(ROOM, "acquire", ""), "acquireLock").await;
    ok(&mut alice, lock_req("side", "set", ""), "setLock side").await;
    ok(&mut other, lock_req(ROOM, "set", ""), "setLock in B").await;
    ok(
        &mut other,
        lock_req(ROOM, "acquire", ""),
        "acquireLock in B",
    )
    .await;

    refused(
        &mut bob,
        gated_write(ROOM, "L", "bob"),
        ErrorCode::StorageLockNotAcquired,
        "",
        "bob writes under alice's lock",
    )
    .await;
    refused(
        &mut alice,
        gated_write("side", "L", "alice"),
        ErrorCode::StorageLockNotAcquired,
        "",
        "alice's lock of another channel",
    )
    .await;
    // B's alice holds B's "L" of "room"; A's is held by A's alice. A's bob still
    // cannot write, and B's alice cannot write A's object (she writes B's).
    ok(&mut other, gated_write(ROOM, "L", "B"), "B's own write").await;
    let read = |c: &'static str| {
        Req::GetMetadata(pb::GetMetadataRequest {
            channel_type: MESSAGE,
            channel_name: c.into(),
        })
    };
    for (who, c) in [("A", &mut bob), ("A", &mut alice)] {
        let Body::GetMetadata(r) = ok(c, read(ROOM), "read").await else {
            panic!("getMetadata reply")
        };
        assert!(
            r.data.as_ref().is_none_or(|d| d.items.is_empty()),
            "{who}: nothing written: {r:?}"
        );
    }
    let Body::GetMetadata(r) = ok(&mut alice, read("side"), "read side").await else {
        panic!("getMetadata reply")
    };
    assert!(r.data.as_ref().is_none_or(|d| d.items.is_empty()), "{r:?}");
    ok(
        &mut alice,
        gated_write(ROOM, "L", "alice"),
        "the holder writes",
    )
    .await;
}

/// R97, R100, R105: topic requests in a stream channel the caller has not joined are
/// refused (−11001) even when another user of the app, or a user of the same id in
/// another app, is a member; nothing reaches that member's topic.
#[tokio::test]
async fn topic_requests_refuse_a_channel_the_caller_has_not_joined() {
    let server = TestServer::start().await;
    let mut alice = server.raw_login("alice").await;
    let mut member = server.raw_login("member").await;
    let mut other = server
        .raw_login_to(OTHER_APP_ID, OTHER_CERT, "alice")
        .await
        .0;
    for (c, app, cert, user) in [
        (&mut member, APP_ID, CERT, "member"),
        (&mut other, OTHER_APP_ID, OTHER_CERT, "alice"),
    ] {
        ok(
            c,
            Req::Join(pb::JoinRequest {
                channel_name: "stage".into(),
                token: rtc(app, cert, "stage", user),
                with_presence: Some(false),
                ..Default::default()
            }),
            "join",
        )
        .await;
    }
    let topic = || ("stage".to_string(), "t".to_string());
    let requests = [
        (
            "joinTopic",
            Req::JoinTopic(pb::JoinTopicRequest {
                channel_name: topic().0,
                topic_name: topic().1,
                ..Default::default()
            }),
        ),
        (
            "publishTopicMessage",
            Req::PublishTopicMessage(pb::PublishTopicMessageRequest {
                channel_name: topic().0,
                topic_name: topic().1,
                message_type: pb::MessageType::String as i32,
                payload: bytes::Bytes::from_static(b"intruder"),
                ..Default::default()
            }),
        ),
        (
            "subscribeTopic",
            Req::SubscribeTopic(pb::SubscribeTopicRequest {
                channel_name: topic().0,
                topic_name: topic().1,
                users: vec!["member".into()],
            }),
        ),
        (
            "leaveTopic",
            Req::LeaveTopic(pb::LeaveTopicRequest {
                channel_name: topic().0,
                topic_name: topic().1,
            }),
        ),
        (
            "leave",
            Req::Leave(pb::LeaveRequest {
                channel_name: topic().0,
            }),
        ),
    ];
    for (what, req) in requests {
        refused(&mut alice, req, ErrorCode::ChannelNotJoined, "", what).await;
    }
    alice.assert_alive().await;
}

/// R118, R121: `removeState` and `setState` act on the caller's own state only: bob
/// removing the key alice set leaves alice's state as it was; what bob sets is his.
#[tokio::test]
async fn presence_state_requests_touch_only_the_callers_own_state() {
    let server = TestServer::start().await;
    let mut alice = server.raw_login("alice").await;
    let mut bob = server.raw_login("bob").await;
    for c in [&mut alice, &mut bob] {
        ok(
            c,
            Req::Subscribe(pb::SubscribeRequest {
                channel_name: ROOM.into(),
                with_presence: Some(true),
                ..Default::default()
            }),
            "subscribe",
        )
        .await;
    }
    let set = |k: &str, v: &str| {
        Req::SetState(pb::SetStateRequest {
            channel_type: MESSAGE,
            channel_name: ROOM.into(),
            states: [(k.to_string(), v.to_string())].into(),
        })
    };
    ok(&mut alice, set("mood", "alice's"), "alice sets").await;
    // Whether bob's removal of a key he never set answers OK or an error, it removes
    // nothing of alice's.
    let _ = bob
        .request(Req::RemoveState(pb::RemoveStateRequest {
            channel_type: MESSAGE,
            channel_name: ROOM.into(),
            keys: vec!["mood".into()],
        }))
        .await;
    ok(&mut bob, set("mood", "bob's"), "bob sets").await;
    let state_of = |user: &str| {
        Req::GetState(pb::GetStateRequest {
            channel_type: MESSAGE,
            channel_name: ROOM.into(),
            user_id: user.into(),
        })
    };
    let Body::GetState(a) = ok(&mut bob, state_of("alice"), "alice's state").await else {
        panic!("getState reply")
    };
    assert_eq!(
        a.states.get("mood").map(String::as_str),
        Some("alice's"),
        "{a:?}"
    );
    let Body::GetState(b) = ok(&mut alice, state_of("bob"), "bob's state").await else {
        panic!("getState reply")
    };
    assert_eq!(
        b.states.get("mood").map(String::as_str),
        Some("bob's"),
        "{b:?}"
    );
}

/// R2, R28: a session acts only as its own user id. A second login on a logged-in
/// connection, naming another user with that user's valid token, is refused (−10017)
/// and the connection still acts as the first user; what the session publishes,
/// sets and holds carries its user id (publisher, state owner, metadata author, lock
/// owner), whatever a request contains.
#[tokio::test]
async fn a_session_never_acts_as_another_user_id() {
    let server = TestServer::start().await;
    let mut alice = server.raw_login("alice").await;
    let mut bob = server.raw_login("bob").await;
    bob.subscribe(ROOM).await;
    let second = alice.login(APP_ID, "bob", &token("bob"), 60).await;
    let e = expect_error(second);
    assert_eq!(e.code, ErrorCode::DuplicateOperation as i32, "{e:?}");
    // bob's own session was not touched by that login.
    bob.assert_alive().await;

    ok(&mut alice, publish_text(ROOM, "who am I"), "publish").await;
    let m = loop {
        let push = bob.next_push(STEP).await.expect("open");
        if let Some(Body::Message(m)) = push.body {
            break m;
        }
    };
    assert_eq!(m.publisher, "alice", "{m:?}");
    ok(
        &mut alice,
        publish_body(pb::ChannelType::User, "bob", pb::MessageType::String, "dm"),
        "USER message",
    )
    .await;
    let m = loop {
        let push = bob.next_push(STEP).await.expect("open");
        if let Some(Body::Message(m)) = push.body {
            break m;
        }
    };
    assert_eq!(
        (m.publisher.as_str(), m.channel_name.as_str()),
        ("alice", "alice"),
        "a USER message names its real sender: {m:?}"
    );

    // Metadata written with add_user_id records alice, not the user the request is
    // about; the lock she acquires is hers.
    ok(
        &mut alice,
        Req::SetMetadata(pb::MetadataWriteRequest {
            channel_type: USER,
            channel_name: "bob".into(),
            items: vec![pb::MetadataItem {
                key: "note".into(),
                value: "by alice".into(),
                ..Default::default()
            }],
            add_user_id: true,
            ..Default::default()
        }),
        "write bob's metadata (R146)",
    )
    .await;
    let Body::GetMetadata(r) = ok(
        &mut bob,
        Req::GetMetadata(pb::GetMetadataRequest {
            channel_type: USER,
            channel_name: String::new(),
        }),
        "bob reads his metadata",
    )
    .await
    else {
        panic!("getMetadata reply")
    };
    let item = &r.data.as_ref().expect("data").items[0];
    assert_eq!(item.author_uid, "alice", "{item:?}");
    ok(&mut alice, lock_req(ROOM, "set", ""), "setLock").await;
    ok(&mut alice, lock_req(ROOM, "acquire", ""), "acquireLock").await;
    assert_eq!(lock_owner(&mut bob, ROOM).await, "alice");
}

/// R52, R28: a login of bob that presents alice's session id resumes nothing of
/// alice's — neither while alice is connected nor after her connection was lost —
/// and alice's session carries on, resumable by alice.
#[tokio::test]
async fn resume_of_another_users_session_is_refused() {
    let server = TestServer::start().await;
    let mut alice = server.raw().await;
    let session_id = match alice.login(APP_ID, "alice", &token("alice"), 60).await {
        Body::Login(r) => r.session_id,
        other => panic!("{other:?}"),
    };
    alice.subscribe(ROOM).await;
    let bob_with = |session: &str| {
        Req::Login(pb::LoginRequest {
            app_id: APP_ID.into(),
            user_id: "bob".into(),
            token: token("bob"),
            heartbeat_interval: 60,
            session_id: session.into(),
            ..Default::default()
        })
    };
    let mut bob = server.raw().await;
    let Body::Login(r) = ok(&mut bob, bob_with(&session_id), "bob with alice's id").await else {
        panic!("login reply")
    };
    assert!(!r.resumed, "{r:?}");
    assert_ne!(r.session_id, session_id);
    alice.assert_alive().await;

    // alice's connection is lost; her session waits for her (presence timeout).
    alice.lose_connection().await;
    let mut bob2 = server.raw().await;
    let Body::Login(r) = ok(&mut bob2, bob_with(&session_id), "again, alice detached").await else {
        panic!("login reply")
    };
    assert!(!r.resumed, "{r:?}");
    // A publish in alice's room while she is away does not reach bob's new session.
    let mut carol = server.raw_login("carol").await;
    ok(&mut carol, publish_text(ROOM, "while away"), "publish").await;
    // alice resumes her own session: still subscribed, it gets the room's messages.
    let mut back = server.raw().await;
    let Body::Login(r) = ok(
        &mut back,
        Req::Login(pb::LoginRequest {
            app_id: APP_ID.into(),
            user_id: "alice".into(),
            token: token("alice"),
            heartbeat_interval: 60,
            session_id: session_id.clone(),
            ..Default::default()
        }),
        "alice resumes",
    )
    .await
    else {
        panic!("login reply")
    };
    assert!(r.resumed, "{r:?}");
    ok(&mut carol, publish_text(ROOM, "after resume"), "publish").await;
    loop {
        let push = back.next_push(STEP).await.expect("open");
        if let Some(Body::Message(m)) = push.body {
            if &m.payload[..] == b"after resume" {
                break;
            }
            assert_eq!(&m.payload[..], b"while away", "{m:?}");
        }
    }
    // bob's session received none of it: its first message is its own inbox canary.
    ok(
        &mut carol,
        publish_body(
            pb::ChannelType::User,
            "bob",
            pb::MessageType::String,
            "canary",
        ),
        "canary",
    )
    .await;
    let m = loop {
        let push = bob2.next_push(STEP).await.expect("open");
        if let Some(Body::Message(m)) = push.body {
            break m;
        }
    };
    assert_eq!(&m.payload[..], b"canary", "{m:?}");
}
