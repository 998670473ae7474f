//! RTM2 resource permissions (token.md §5 "RTM2 permission tree", T46, §16), over real
//! sockets: with `[apps.tokens] rtm2_permissions` (and `accept_rtm2`), a session logged
//! in with an RTM2 token may do only what its tree grants — read or write on message
//! channels (0), stream channels (1) and users (4), names matched exactly, `*` for
//! every name or `prefix*` (docs/token.md) — and every other request is refused with the
//! area's permission code (−11038 subscribe, −11039 publish, −12020 storage, −14010
//! lock, −15006 history) and a reason, changing nothing. Without the option, or with an
//! RTM token, nothing is bounded.
//!
//! Tokens: the reference vector `rtm2_permissions` (agora-token's
//! `buildTokenWithPermissions`; its tree read from the vector's own token, re-issued
//! now because the vector expired in 2023), and trees built with this crate's builder,
//! which reproduces that vector byte for byte (`switchboard-token`'s
//! `rtm2_grants::t10_the_builder_reproduces_the_rtm2_vector`).

mod common;

use bytes::Bytes;
use common::*;
use switchboard_protocol::ErrorCode;
use switchboard_protocol::pb::{self, client_message::Body as Req, server_message::Body};
use switchboard_token::{AccessToken, Rtm2Permission, Service, TokenBuilder, rtm2};

const SUBSCRIBE_DENIED: i32 = ErrorCode::ChannelSubscribePermissionDenied as i32;
const PUBLISH_DENIED: i32 = ErrorCode::ChannelPublishPermissionDenied as i32;
const STORAGE_DENIED: i32 = ErrorCode::StoragePermissionDenied as i32;
const LOCK_DENIED: i32 = ErrorCode::LockPermissionDenied as i32;
const HISTORY_DENIED: i32 = ErrorCode::HistoryPermissionDenied as i32;
const PERMISSION_CODES: [i32; 5] = [
    SUBSCRIBE_DENIED,
    PUBLISH_DENIED,
    STORAGE_DENIED,
    LOCK_DENIED,
    HISTORY_DENIED,
];

/// A server whose app [`APP_ID`] accepts RTM2 tokens, enforcing their trees or not.
async fn server(enforce: bool) -> TestServer {
    TestServer::with(|c| {
        c.apps[0].tokens.accept_rtm2 = true;
        c.apps[0].tokens.rtm2_permissions = enforce;
    })
    .await
}

/// An RTM2 login token of [`APP_ID`] for `user` with `tree`, issued now.
fn rtm2_token(user: &str, tree: Vec<Rtm2Permission>) -> String {
    TokenBuilder::new(APP_ID, CERT, 3600)
        .issue_ts(now_secs())
        .add_service(Service::rtm2(user, tree, 3600))
        .build()
        .expect("RTM2 token")
}

fn perm(resource_type: u16, permission_type: u16, names: &[&str]) -> Rtm2Permission {
    Rtm2Permission {
        resource_type,
        permission_type,
        resources: names.iter().map(|s| s.to_string()).collect(),
    }
}

/// Read and write on every name of the three resource types Switchboard has.
fn everything() -> Vec<Rtm2Permission> {
    let mut tree = Vec::new();
    for rt in [rtm2::MESSAGE_CHANNELS, rtm2::STREAM_CHANNELS, rtm2::USERS] {
        for pt in [rtm2::READ, rtm2::WRITE] {
            tree.push(perm(rt, pt, &["*"]));
        }
    }
    tree
}

/// The tree of the reference vector `rtm2_permissions`, read from its token.
fn vector_tree() -> (String, Vec<Rtm2Permission>) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../token/tests/vectors/tokens.json"
    );
    let text = std::fs::read_to_string(path).expect("token vectors");
    let json: serde_json::Value = serde_json::from_str(&text).expect("vectors JSON");
    let v = json["valid"]
        .as_array()
        .expect("valid[]")
        .iter()
        .find(|v| v["id"] == "rtm2_permissions")
        .expect("vector rtm2_permissions");
    let token = AccessToken::parse(v["token"].as_str().expect("token")).expect("parses");
    match &token.services[..] {
        [
            Service::Rtm2 {
                user_id,
                permissions,
                ..
            },
        ] => (user_id.clone(), permissions.clone()),
        other => panic!("unexpected services {other:?}"),
    }
}

/// A raw connection logged in to [`APP_ID`] as `user` with `token`.
async fn login(server: &TestServer, user: &str, token: &str) -> RawClient {
    let mut raw = server.raw().await;
    let reply = raw.login(APP_ID, user, token, 60).await;
    assert!(
        matches!(reply, Body::Login(_)),
        "login of {user}: {reply:?}"
    );
    raw
}

/// Asserts a refusal with `code`, its operation named, a reason naming the permission.
fn assert_denied(reply: Body, code: i32, what: &str) {
    let e = expect_error(reply);
    assert_eq!(e.code, code, "{what}: {e:?}");
    assert!(
        e.reason.contains("T46") && e.reason.contains("permissions do not grant"),
        "{what}: {}",
        e.reason
    );
    assert!(!e.operation.is_empty(), "{what}: {e:?}");
}

fn text(channel_type: pb::ChannelType, channel: &str) -> Req {
    publish_body(channel_type, channel, pb::MessageType::String, "hi")
}

fn subscribe(channel: &str) -> Req {
    Req::Subscribe(pb::SubscribeRequest {
        channel_name: channel.into(),
        with_presence: Some(false),
        ..Default::default()
    })
}

fn join(channel: &str, user: &str) -> Req {
    Req::Join(pb::JoinRequest {
        channel_name: channel.into(),
        token: rtc_for(channel, user),
        with_presence: Some(false),
        ..Default::default()
    })
}

fn topic_message(channel: &str) -> Req {
    Req::PublishTopicMessage(pb::PublishTopicMessageRequest {
        channel_name: channel.into(),
        topic_name: "t".into(),
        message_type: pb::MessageType::String as i32,
        payload: Bytes::from_static(b"hi"),
        ..Default::default()
    })
}

fn user_metadata_get(user: &str) -> Req {
    Req::GetMetadata(pb::GetMetadataRequest {
        channel_type: USER,
        channel_name: user.into(),
    })
}

/// T46 with the reference vector's tree (read lobby + news, write lobby on message
/// channels; read room-1 on stream channels): each granted operation goes, each other
/// one is refused with its code, and the connection carries on.
#[tokio::test]
async fn t46_the_vector_tree_is_enforced_over_sockets() {
    let server = server(true).await;
    let (user, tree) = vector_tree();
    assert_eq!(user, "dave");
    let mut dave = login(&server, &user, &rtm2_token(&user, tree)).await;
    // Granted.
    dave.subscribe("lobby").await;
    dave.subscribe("news").await;
    assert!(matches!(
        dave.request(text(pb::ChannelType::Message, "lobby")).await,
        Body::Publish(_)
    ));
    let joined = dave.request(join("room-1", &user)).await;
    assert!(matches!(joined, Body::Join(_)), "{joined:?}");
    // Refused: write on news, read on a channel not listed, a stream channel's write,
    // another stream channel, users.
    assert_denied(
        dave.request(text(pb::ChannelType::Message, "news")).await,
        PUBLISH_DENIED,
        "publish news",
    );
    assert_denied(
        dave.request(subscribe("lobby2")).await,
        SUBSCRIBE_DENIED,
        "subscribe lobby2",
    );
    assert_denied(
        dave.request(topic_message("room-1")).await,
        PUBLISH_DENIED,
        "topic message room-1",
    );
    assert_denied(
        dave.request(join("room-2", &user)).await,
        SUBSCRIBE_DENIED,
        "join room-2",
    );
    assert_denied(
        dave.request(user_metadata_get("dave")).await,
        STORAGE_DENIED,
        "own user metadata",
    );
    // The message channel "room-1" is not the stream channel "room-1".
    assert_denied(
        dave.request(subscribe("room-1")).await,
        SUBSCRIBE_DENIED,
        "message channel room-1",
    );
    dave.assert_alive().await;
}

/// What a row expects of a request that its permission lets through: success, or a
/// refusal that has nothing to do with permissions (e.g. no history service).
#[derive(Clone, Copy, Debug)]
enum Then {
    Ok,
    Fails(i32),
}

/// One request of every kind a tree bounds, its permission code, and what it does
/// when allowed. Run in this order, each allowed request succeeds (the lock is set
/// before it is acquired, and so on).
fn rows() -> Vec<(&'static str, Req, i32, Then)> {
    let lock = |f: fn(String, String) -> Req| f("room".into(), "L".into());
    vec![
        ("subscribe", subscribe("room"), SUBSCRIBE_DENIED, Then::Ok),
        (
            "publish",
            text(pb::ChannelType::Message, "room"),
            PUBLISH_DENIED,
            Then::Ok,
        ),
        (
            "publish to a user",
            text(pb::ChannelType::User, "bob"),
            PUBLISH_DENIED,
            Then::Ok,
        ),
        (
            "whoNow",
            Req::WhoNow(pb::WhoNowRequest {
                channel_type: MESSAGE,
                channel_name: "room".into(),
                ..Default::default()
            }),
            SUBSCRIBE_DENIED,
            Then::Ok,
        ),
        (
            "whereNow",
            Req::WhereNow(pb::WhereNowRequest {
                user_id: "bob".into(),
            }),
            SUBSCRIBE_DENIED,
            Then::Ok,
        ),
        (
            "setState",
            Req::SetState(pb::SetStateRequest {
                channel_type: MESSAGE,
                channel_name: "room".into(),
                states: [("k".to_string(), "v".to_string())].into(),
            }),
            PUBLISH_DENIED,
            Then::Ok,
        ),
        (
            "getState",
            Req::GetState(pb::GetStateRequest {
                channel_type: MESSAGE,
                channel_name: "room".into(),
                user_id: "dave".into(),
            }),
            SUBSCRIBE_DENIED,
            Then::Ok,
        ),
        (
            "removeState",
            Req::RemoveState(pb::RemoveStateRequest {
                channel_type: MESSAGE,
                channel_name: "room".into(),
                keys: vec!["k".into()],
            }),
            PUBLISH_DENIED,
            Then::Ok,
        ),
        (
            "setChannelMetadata",
            Req::SetMetadata(metadata_write(MESSAGE, "room")),
            STORAGE_DENIED,
            Then::Ok,
        ),
        (
            "updateChannelMetadata",
            Req::UpdateMetadata(metadata_write(MESSAGE, "room")),
            STORAGE_DENIED,
            Then::Ok,
        ),
        (
            "getChannelMetadata",
            Req::GetMetadata(pb::GetMetadataRequest {
                channel_type: MESSAGE,
                channel_name: "room".into(),
            }),
            STORAGE_DENIED,
            Then::Ok,
        ),
        (
            "removeChannelMetadata",
            Req::RemoveMetadata(metadata_write(MESSAGE, "room")),
            STORAGE_DENIED,
            Then::Ok,
        ),
        (
            "setUserMetadata (another user)",
            Req::SetMetadata(metadata_write(USER, "bob")),
            STORAGE_DENIED,
            Then::Ok,
        ),
        (
            "getUserMetadata",
            user_metadata_get("bob"),
            STORAGE_DENIED,
            Then::Ok,
        ),
        (
            "subscribeUserMetadata",
            Req::SubscribeUserMetadata(pb::SubscribeUserMetadataRequest {
                user_id: "bob".into(),
            }),
            STORAGE_DENIED,
            Then::Ok,
        ),
        (
            "setLock",
            Req::SetLock(pb::SetLockRequest {
                channel_type: MESSAGE,
                channel_name: "room".into(),
                lock_name: "L".into(),
                ttl: 10,
            }),
            LOCK_DENIED,
            Then::Ok,
        ),
        (
            "acquireLock",
            lock(|c, l| {
                Req::AcquireLock(pb::AcquireLockRequest {
                    channel_type: MESSAGE,
                    channel_name: c,
                    lock_name: l,
                    retry: false,
                })
            }),
            LOCK_DENIED,
            Then::Ok,
        ),
        (
            "getLock",
            Req::GetLock(pb::GetLockRequest {
                channel_type: MESSAGE,
                channel_name: "room".into(),
            }),
            LOCK_DENIED,
            Then::Ok,
        ),
        (
            "revokeLock",
            lock(|c, l| {
                Req::RevokeLock(pb::RevokeLockRequest {
                    channel_type: MESSAGE,
                    channel_name: c,
                    lock_name: l,
                    owner: "dave".into(),
                })
            }),
            LOCK_DENIED,
            Then::Ok,
        ),
        (
            "acquireLock again",
            lock(|c, l| {
                Req::AcquireLock(pb::AcquireLockRequest {
                    channel_type: MESSAGE,
                    channel_name: c,
                    lock_name: l,
                    retry: false,
                })
            }),
            LOCK_DENIED,
            Then::Ok,
        ),
        (
            "releaseLock",
            lock(|c, l| {
                Req::ReleaseLock(pb::ReleaseLockRequest {
                    channel_type: MESSAGE,
                    channel_name: c,
                    lock_name: l,
                })
            }),
            LOCK_DENIED,
            Then::Ok,
        ),
        (
            "removeLock",
            lock(|c, l| {
                Req::RemoveLock(pb::RemoveLockRequest {
                    channel_type: MESSAGE,
                    channel_name: c,
                    lock_name: l,
                })
            }),
            LOCK_DENIED,
            Then::Ok,
        ),
        (
            "getMessages",
            Req::GetMessages(pb::GetMessagesRequest {
                channel_type: MESSAGE,
                channel_name: "room".into(),
                message_count: 10,
                ..Default::default()
            }),
            HISTORY_DENIED,
            // The test server runs without a history store (R74).
            Then::Fails(ErrorCode::HistoryNotAvailable as i32),
        ),
        ("join", join("stage", "dave"), SUBSCRIBE_DENIED, Then::Ok),
        (
            "joinTopic",
            Req::JoinTopic(pb::JoinTopicRequest {
                channel_name: "stage".into(),
                topic_name: "t".into(),
                ..Default::default()
            }),
            SUBSCRIBE_DENIED,
            Then::Ok,
        ),
        (
            "subscribeTopic",
            Req::SubscribeTopic(pb::SubscribeTopicRequest {
                channel_name: "stage".into(),
                topic_name: "t".into(),
                users: Vec::new(),
            }),
            SUBSCRIBE_DENIED,
            Then::Ok,
        ),
        (
            "publishTopicMessage",
            topic_message("stage"),
            PUBLISH_DENIED,
            Then::Ok,
        ),
    ]
}

fn metadata_write(channel_type: i32, name: &str) -> pb::MetadataWriteRequest {
    pb::MetadataWriteRequest {
        channel_type,
        channel_name: name.into(),
        items: vec![pb::MetadataItem {
            key: "k".into(),
            value: "v".into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Runs every row as `user` on `c`, checking that each is allowed and does what it
/// does when allowed.
async fn all_allowed(c: &mut RawClient, what: &str) {
    for (name, req, _, then) in rows() {
        let reply = c.request(req).await;
        match (then, reply) {
            (Then::Ok, Body::Error(e)) => panic!("{what}: {name} refused: {e:?}"),
            (Then::Ok, _) => {}
            (Then::Fails(code), reply) => {
                let e = expect_error(reply);
                assert_eq!(e.code, code, "{what}: {name}: {e:?}");
                assert!(!PERMISSION_CODES.contains(&e.code));
            }
        }
    }
    c.assert_alive().await;
}

/// T46: a tree that grants nothing — every bounded request of every kind is refused
/// with its area's code and changes nothing (a probe with an unbounded session sees
/// no metadata, lock, state or message); a tree granting everything lets each go.
#[tokio::test]
async fn t46_each_ungranted_operation_is_refused_with_its_code_and_granted_ones_go() {
    let server = server(true).await;
    let _bob = server.raw_login("bob").await;
    let mut probe = server.raw_login("probe").await;
    probe.subscribe("room").await;

    let mut none = login(&server, "dave", &rtm2_token("dave", Vec::new())).await;
    for (name, req, code, _) in rows() {
        assert_denied(none.request(req).await, code, name);
    }
    none.assert_alive().await;
    // Nothing of the refused requests happened.
    let md = probe
        .request(Req::GetMetadata(pb::GetMetadataRequest {
            channel_type: MESSAGE,
            channel_name: "room".into(),
        }))
        .await;
    match md {
        Body::GetMetadata(r) => {
            assert!(r.data.as_ref().is_none_or(|m| m.items.is_empty()), "{r:?}")
        }
        other => panic!("{other:?}"),
    }
    match probe
        .request(Req::GetLock(pb::GetLockRequest {
            channel_type: MESSAGE,
            channel_name: "room".into(),
        }))
        .await
    {
        Body::GetLock(r) => assert!(r.locks.is_empty(), "{r:?}"),
        other => panic!("{other:?}"),
    }
    // The first message the probe receives in the channel is its own canary: no
    // refused publish was delivered before it.
    assert!(matches!(
        probe.request(text(pb::ChannelType::Message, "room")).await,
        Body::Publish(_)
    ));
    loop {
        let push = probe.next_push(STEP).await.expect("the canary arrives");
        if let Some(Body::Message(m)) = push.body {
            assert_eq!(m.publisher, "probe", "{m:?}");
            break;
        }
    }
    drop(none);

    // The same requests with every permission granted.
    let mut all = login(&server, "dave", &rtm2_token("dave", everything())).await;
    all_allowed(&mut all, "everything granted").await;
}

/// T46, §16: with `accept_rtm2` but without `rtm2_permissions`, a tree that grants
/// nothing bounds nothing; with enforcement on, an RTM (type 2) token is not bounded
/// either.
#[tokio::test]
async fn t46_enforcement_off_or_an_rtm_token_allows_everything() {
    let off = server(false).await;
    let _bob = off.raw_login("bob").await;
    let mut dave = login(&off, "dave", &rtm2_token("dave", Vec::new())).await;
    all_allowed(&mut dave, "enforcement off").await;

    let on = server(true).await;
    let _bob = on.raw_login("bob").await;
    let mut dave = on.raw_login("dave").await;
    all_allowed(&mut dave, "RTM token").await;
}

/// T46 names: `prefix*` covers every name with that prefix and nothing else; a
/// `renewToken` with a token granting more lifts a refusal (T52), one granting less
/// brings it back; a resume takes the new token's tree.
#[tokio::test]
async fn t46_prefix_names_renewal_and_resume_change_what_is_granted() {
    let server = server(true).await;
    let read = |names: &[&str]| vec![perm(rtm2::MESSAGE_CHANNELS, rtm2::READ, names)];
    let mut dave = server.raw().await;
    let session_id = match dave
        .login(APP_ID, "dave", &rtm2_token("dave", read(&["room-*"])), 60)
        .await
    {
        Body::Login(r) => r.session_id,
        other => panic!("login: {other:?}"),
    };
    dave.subscribe("room-1").await;
    dave.subscribe("room-").await;
    assert_denied(
        dave.request(subscribe("room")).await,
        SUBSCRIBE_DENIED,
        "room",
    );
    assert_denied(
        dave.request(subscribe("aroom-1")).await,
        SUBSCRIBE_DENIED,
        "aroom-1",
    );

    let renew = |token: String| {
        Req::RenewToken(pb::RenewTokenRequest {
            token,
            channel_name: String::new(),
        })
    };
    let r = dave
        .request(renew(rtm2_token("dave", read(&["room-*", "room"]))))
        .await;
    assert!(matches!(r, Body::RenewToken(_)), "{r:?}");
    dave.subscribe("room").await;
    let r = dave.request(renew(rtm2_token("dave", read(&["x"])))).await;
    assert!(matches!(r, Body::RenewToken(_)), "{r:?}");
    assert_denied(
        dave.request(subscribe("room-2")).await,
        SUBSCRIBE_DENIED,
        "after a narrower renewal",
    );

    // A resume of the session from a new connection, with a token granting all
    // message channels: the resumed session is bounded by that tree.
    let mut again = server.raw().await;
    let reply = again
        .request(Req::Login(pb::LoginRequest {
            app_id: APP_ID.into(),
            user_id: "dave".into(),
            token: rtm2_token("dave", read(&["*"])),
            heartbeat_interval: 60,
            session_id: session_id.clone(),
            ..Default::default()
        }))
        .await;
    match reply {
        Body::Login(r) => assert!(r.resumed, "{r:?}"),
        other => panic!("resume: {other:?}"),
    }
    again.subscribe("anything").await;
    assert_denied(
        again
            .request(text(pb::ChannelType::Message, "anything"))
            .await,
        PUBLISH_DENIED,
        "write was never granted",
    );
}

/// T46 for publishes sent back to back in one frame, which the server runs as one
/// pipeline (`dispatch::handle_batch`): each is checked against the tree as a lone
/// publish is — the ungranted ones refused with −11039, the granted ones delivered,
/// every reply in request order.
#[tokio::test]
async fn t46_back_to_back_publishes_are_each_checked_against_the_tree() {
    let server = server(true).await;
    let (user, tree) = vector_tree();
    let mut dave = login(&server, &user, &rtm2_token(&user, tree)).await;
    dave.subscribe("lobby").await;
    dave.subscribe("news").await;
    let mut msgs = Vec::new();
    for i in 0..8 {
        // Write is granted on lobby only; news is read-only in the vector's tree.
        let channel = if i % 2 == 0 { "lobby" } else { "news" };
        msgs.push(pb::ClientMessage {
            id: dave.next_id(),
            body: Some(text(pb::ChannelType::Message, channel)),
        });
    }
    dave.send(&msgs).await;
    for (i, m) in msgs.iter().enumerate() {
        let reply = dave.reply(m.id).await;
        if i % 2 == 0 {
            assert!(
                matches!(reply, Body::Publish(_)),
                "publish {i} to lobby: {reply:?}"
            );
        } else {
            assert_denied(reply, PUBLISH_DENIED, &format!("publish {i} to news"));
        }
    }
    // The four granted ones reached their subscriber (dave himself, on both
    // channels), and none of the refused ones came in between.
    let mut seen = 0;
    while seen < 4 {
        let push = dave
            .next_push(std::time::Duration::from_secs(10))
            .await
            .expect("a message push");
        if let Some(Body::Message(m)) = push.body {
            assert_eq!(
                m.channel_name, "lobby",
                "a refused publish was delivered: {m:?}"
            );
            seen += 1;
        }
    }
    dave.assert_alive().await;
}
