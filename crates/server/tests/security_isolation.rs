//! Per-app isolation (issue 20: an app id is a tenant), over real sockets:
//! nothing one app's clients do is visible from another app of the same server —
//! channel messages, presence (whoNow, getState, whereNow), channel and user metadata,
//! locks, history, USER messages and sessions (the same user id in two apps is two
//! users: neither login kicks the other, neither can resume the other's session).

mod common;

use common::*;
use std::sync::Arc;
use switchboard_engine::HistoryRetention;
use switchboard_engine_memory::{MemoryBroker, MemoryConfig, SqliteHistory};
use switchboard_protocol::pb::{self, client_message::Body as Req, server_message::Body};
use switchboard_server::Server;

const ROOM: &str = "room";

async fn server_with_history(dir: &DataDir) -> TestServer {
    let history = SqliteHistory::open(&dir.0, HistoryRetention::default()).expect("open history");
    let broker = Arc::new(MemoryBroker::new(MemoryConfig::default()));
    TestServer::with_parts(Server::new(base_config(), broker).with_history(Arc::new(history))).await
}

/// Sends `req` and returns its reply, panicking on an error.
async fn ok(c: &mut RawClient, req: Req, what: &str) -> Body {
    match c.request(req).await {
        Body::Error(e) => panic!("{what}: {e:?}"),
        b => b,
    }
}

fn subscribe_with_presence(channel: &str) -> Req {
    Req::Subscribe(pb::SubscribeRequest {
        channel_name: channel.into(),
        with_presence: Some(true),
        ..Default::default()
    })
}

fn stored(channel_type: pb::ChannelType, channel: &str, text: &str) -> Req {
    Req::Publish(pb::PublishRequest {
        channel_type: channel_type as i32,
        channel_name: channel.into(),
        message_type: pb::MessageType::String as i32,
        payload: text.as_bytes().to_vec().into(),
        store_in_history: true,
        ..Default::default()
    })
}

fn metadata(channel_type: i32, name: &str) -> Req {
    Req::SetMetadata(pb::MetadataWriteRequest {
        channel_type,
        channel_name: name.into(),
        items: vec![pb::MetadataItem {
            key: "secret".into(),
            value: "of app A".into(),
            ..Default::default()
        }],
        ..Default::default()
    })
}

/// The first MESSAGE push `c` receives, skipping other pushes.
async fn first_message(c: &mut RawClient, what: &str) -> pb::MessagePush {
    loop {
        let push = c
            .next_push(STEP)
            .await
            .unwrap_or_else(|| panic!("{what}: closed"));
        if let Some(Body::Message(m)) = push.body {
            return m;
        }
    }
}

/// Issue 20: app A's channel, presence, metadata, lock, history and USER messages are
/// invisible from app B on the same server, under the same channel and user names.
#[tokio::test]
async fn nothing_of_one_app_is_visible_from_another() {
    let dir = DataDir::new("isolation");
    let server = server_with_history(&dir).await;
    // App A: alice writes everything, carol is present in the room with a state.
    let (mut alice_a, _) = server.raw_login_to(APP_ID, CERT, "alice").await;
    let (mut carol_a, _) = server.raw_login_to(APP_ID, CERT, "carol").await;
    ok(
        &mut carol_a,
        subscribe_with_presence(ROOM),
        "carol subscribes",
    )
    .await;
    ok(
        &mut carol_a,
        Req::SetState(pb::SetStateRequest {
            channel_type: MESSAGE,
            channel_name: ROOM.into(),
            states: [("mood".to_string(), "a".to_string())].into(),
        }),
        "carol's state",
    )
    .await;
    // App B: the same user ids; bob listens in the room of the same name.
    let (mut alice_b, _) = server.raw_login_to(OTHER_APP_ID, OTHER_CERT, "alice").await;
    let (mut bob_b, _) = server.raw_login_to(OTHER_APP_ID, OTHER_CERT, "bob").await;
    ok(&mut bob_b, subscribe_with_presence(ROOM), "bob subscribes").await;

    ok(&mut alice_a, metadata(MESSAGE, ROOM), "channel metadata").await;
    ok(&mut alice_a, metadata(USER, ""), "user metadata").await;
    ok(
        &mut alice_a,
        Req::SetLock(pb::SetLockRequest {
            channel_type: MESSAGE,
            channel_name: ROOM.into(),
            lock_name: "L".into(),
            ttl: 30,
        }),
        "setLock",
    )
    .await;
    ok(
        &mut alice_a,
        Req::AcquireLock(pb::AcquireLockRequest {
            channel_type: MESSAGE,
            channel_name: ROOM.into(),
            lock_name: "L".into(),
            retry: false,
        }),
        "acquireLock",
    )
    .await;
    ok(
        &mut alice_a,
        stored(pb::ChannelType::Message, ROOM, "secret of A"),
        "publish",
    )
    .await;
    ok(
        &mut carol_a,
        stored(pb::ChannelType::User, "alice", "to alice of A"),
        "USER message in A",
    )
    .await;

    // Presence: B's room holds only bob; carol's state is not there; alice of B is in
    // no channel although alice of A... is in none either, and carol of A is in one.
    let Body::WhoNow(who) = ok(
        &mut bob_b,
        Req::WhoNow(pb::WhoNowRequest {
            channel_type: MESSAGE,
            channel_name: ROOM.into(),
            include_user_id: Some(true),
            include_state: true,
            ..Default::default()
        }),
        "whoNow in B",
    )
    .await
    else {
        panic!("whoNow reply")
    };
    let users: Vec<_> = who.occupants.iter().map(|o| o.user_id.as_str()).collect();
    assert_eq!(users, ["bob"], "{who:?}");
    assert_eq!(who.total_occupancy, 1, "{who:?}");
    let state = bob_b
        .request(Req::GetState(pb::GetStateRequest {
            channel_type: MESSAGE,
            channel_name: ROOM.into(),
            user_id: "carol".into(),
        }))
        .await;
    let e = expect_error(state);
    assert_eq!(
        e.code,
        switchboard_protocol::ErrorCode::PresenceUserNotExist as i32,
        "carol of A is not present in B's room: {e:?}"
    );
    let Body::WhereNow(where_now) = ok(
        &mut bob_b,
        Req::WhereNow(pb::WhereNowRequest {
            user_id: "carol".into(),
        }),
        "whereNow carol in B",
    )
    .await
    else {
        panic!("whereNow reply")
    };
    assert!(where_now.channels.is_empty(), "{where_now:?}");

    // Metadata, locks and history of B's room and B's alice: empty.
    for (channel_type, name) in [(MESSAGE, ROOM), (USER, "alice")] {
        let Body::GetMetadata(md) = ok(
            &mut bob_b,
            Req::GetMetadata(pb::GetMetadataRequest {
                channel_type,
                channel_name: name.into(),
            }),
            "getMetadata in B",
        )
        .await
        else {
            panic!("getMetadata reply")
        };
        assert!(
            md.data.as_ref().is_none_or(|d| d.items.is_empty()),
            "{name}: {md:?}"
        );
    }
    let Body::GetLock(locks) = ok(
        &mut bob_b,
        Req::GetLock(pb::GetLockRequest {
            channel_type: MESSAGE,
            channel_name: ROOM.into(),
        }),
        "getLock in B",
    )
    .await
    else {
        panic!("getLock reply")
    };
    assert!(locks.locks.is_empty(), "{locks:?}");
    // B may define and take a lock of the same name: A's holder does not hold it.
    ok(
        &mut bob_b,
        Req::SetLock(pb::SetLockRequest {
            channel_type: MESSAGE,
            channel_name: ROOM.into(),
            lock_name: "L".into(),
            ttl: 30,
        }),
        "setLock in B",
    )
    .await;
    ok(
        &mut bob_b,
        Req::AcquireLock(pb::AcquireLockRequest {
            channel_type: MESSAGE,
            channel_name: ROOM.into(),
            lock_name: "L".into(),
            retry: false,
        }),
        "acquireLock in B",
    )
    .await;
    let history = |channel_type: i32, name: &str| {
        Req::GetMessages(pb::GetMessagesRequest {
            channel_type,
            channel_name: name.into(),
            message_count: 100,
            ..Default::default()
        })
    };
    let Body::GetMessages(h) = ok(&mut bob_b, history(MESSAGE, ROOM), "history in B").await else {
        panic!("getMessages reply")
    };
    assert!(h.messages.is_empty(), "{h:?}");
    let Body::GetMessages(h) = ok(&mut alice_b, history(USER, "carol"), "USER history").await
    else {
        panic!("getMessages reply")
    };
    assert!(h.messages.is_empty(), "{h:?}");
    // A's own history has it (the reads above could see it if they crossed apps).
    let Body::GetMessages(h) = ok(&mut carol_a, history(MESSAGE, ROOM), "history in A").await
    else {
        panic!("getMessages reply")
    };
    assert_eq!(h.messages.len(), 1, "{h:?}");

    // Messages: the first message bob of B receives in the room is his own canary, and
    // alice of B's first is the one from B — A's room message and A's USER message to
    // "alice" reached neither.
    ok(
        &mut bob_b,
        stored(pb::ChannelType::Message, ROOM, "canary of B"),
        "canary",
    )
    .await;
    let m = first_message(&mut bob_b, "bob of B").await;
    assert_eq!(
        (m.publisher.as_str(), &m.payload[..]),
        ("bob", &b"canary of B"[..])
    );
    ok(
        &mut bob_b,
        stored(pb::ChannelType::User, "alice", "to alice of B"),
        "USER message in B",
    )
    .await;
    let m = first_message(&mut alice_b, "alice of B").await;
    assert_eq!(
        (m.publisher.as_str(), &m.payload[..]),
        ("bob", &b"to alice of B"[..])
    );
    let m = first_message(&mut alice_a, "alice of A").await;
    assert_eq!(
        (m.publisher.as_str(), &m.payload[..]),
        ("carol", &b"to alice of A"[..])
    );
    // Sessions: the same user id logged in to both apps, neither kicked.
    alice_a.assert_alive().await;
    alice_b.assert_alive().await;
}

/// Issue 20, R28, R52: a session id of app A presented in a login to app B (same user
/// id) resumes nothing there: a new session, and A's session carries on untouched.
#[tokio::test]
async fn a_session_of_one_app_cannot_be_resumed_from_another() {
    let server = TestServer::start().await;
    let (mut alice_a, session_a) = server.raw_login_to(APP_ID, CERT, "alice").await;
    alice_a.subscribe(ROOM).await;
    let mut raw = server.raw().await;
    let reply = raw
        .request(Req::Login(pb::LoginRequest {
            app_id: OTHER_APP_ID.into(),
            user_id: "alice".into(),
            token: token_with(OTHER_APP_ID, OTHER_CERT, "alice", 3600, now_secs()),
            heartbeat_interval: 60,
            session_id: session_a.clone(),
            ..Default::default()
        }))
        .await;
    let Body::Login(r) = reply else {
        panic!("login to B: {reply:?}")
    };
    assert!(!r.resumed, "{r:?}");
    assert_ne!(r.session_id, session_a);
    // A's session still has its connection and subscription: a publish in A's room
    // reaches it.
    let (mut carol_a, _) = server.raw_login_to(APP_ID, CERT, "carol").await;
    ok(&mut carol_a, publish_text(ROOM, "still A"), "publish in A").await;
    let m = first_message(&mut alice_a, "alice of A").await;
    assert_eq!(&m.payload[..], b"still A");
}
