//! Budgets on what one client can make the server keep (issue 20, "memory a client can
//! grow without bound"): waiting `acquireLock` requests per client, and per app the
//! bytes of all recovery logs, the bytes of one metadata object, lock definitions,
//! idempotency keys and swept channel positions. Past a budget the request fails with
//! its code and reason (or, for swept positions, the position is forgotten); the
//! connection and everyone else carry on.

mod common;

use bytes::Bytes;
use common::*;
use std::sync::Arc;
use std::time::Duration;
use switchboard_engine::Retention;
use switchboard_engine_memory::{MemoryBroker, MemoryConfig};
use switchboard_protocol::ErrorCode;
use switchboard_protocol::pb::{self, client_message::Body as Req, server_message::Body};
use switchboard_server::Server;

/// A publish of `bytes` bytes to MESSAGE channel `channel`, with an idempotency key
/// unless `key` is empty.
fn publish_sized(channel: &str, bytes: usize, key: &str) -> Req {
    Req::Publish(pb::PublishRequest {
        channel_type: pb::ChannelType::Message as i32,
        channel_name: channel.into(),
        message_type: pb::MessageType::Binary as i32,
        payload: Bytes::from(vec![b'x'; bytes]),
        idempotency_key: key.into(),
        ..Default::default()
    })
}

fn published(reply: Body) -> pb::PublishReply {
    match reply {
        Body::Publish(r) => r,
        other => panic!("expected a publish reply, got {other:?}"),
    }
}

/// A raw client logged in to `app` as `user`.
async fn raw_login_app(server: &TestServer, app: &str, cert: &str, user: &str) -> RawClient {
    let mut raw = server.raw().await;
    let token = token_with(app, cert, user, 3600, now_secs());
    let reply = raw.login(app, user, &token, 60).await;
    assert!(matches!(reply, Body::Login(_)), "{user}: {reply:?}");
    raw
}

/// A publisher in another app and a subscriber there: proves that one app's budget
/// leaves everyone else's service alone.
async fn other_app_still_served(server: &TestServer) {
    let mut sub = raw_login_app(server, OTHER_APP_ID, OTHER_CERT, "o-sub").await;
    sub.subscribe("elsewhere").await;
    let mut publisher = raw_login_app(server, OTHER_APP_ID, OTHER_CERT, "o-pub").await;
    published(
        publisher
            .request(publish_text("elsewhere", "still here"))
            .await,
    );
    let push = sub.next_push(STEP).await.expect("the other app's message");
    assert!(
        matches!(push.body, Some(Body::Message(ref m)) if &m.payload[..] == b"still here"),
        "{push:?}"
    );
}

fn set_lock(channel: &str, lock: &str) -> Req {
    Req::SetLock(pb::SetLockRequest {
        channel_type: pb::ChannelType::Message as i32,
        channel_name: channel.into(),
        lock_name: lock.into(),
        ttl: 0,
    })
}

fn acquire(channel: &str, lock: &str, retry: bool) -> Req {
    Req::AcquireLock(pb::AcquireLockRequest {
        channel_type: pb::ChannelType::Message as i32,
        channel_name: channel.into(),
        lock_name: lock.into(),
        retry,
    })
}

/// A client waits for at most `max_lock_waits` locks at once: the next `acquireLock`
/// with `retry` fails with −14001 and a reason, the waits it has are still answered
/// when their locks are handed over, and a wait freed makes room for another.
#[tokio::test]
async fn lock_waits_per_client_are_bounded() {
    let server = TestServer::with(|c| c.apps[0].limits.max_lock_waits = 2).await;
    let mut owner = server.raw_login("owner").await;
    let mut waiter = server.raw_login("waiter").await;
    for lock in ["a", "b", "c"] {
        assert!(matches!(
            owner.request(set_lock("room", lock)).await,
            Body::SetLock(_)
        ));
        assert!(matches!(
            owner.request(acquire("room", lock, false)).await,
            Body::AcquireLock(_)
        ));
    }
    // Two waits are queued (no reply yet); the third is refused at once.
    let wait_a = waiter.send_request(acquire("room", "a", true)).await;
    let wait_b = waiter.send_request(acquire("room", "b", true)).await;
    let refused = expect_error(waiter.request(acquire("room", "c", true)).await);
    assert_eq!(refused.code, ErrorCode::LockOperationFailed.as_i32());
    assert!(refused.reason.contains("limit"), "{}", refused.reason);
    // The queued ones are answered when the owner lets go.
    let release = |lock: &str| {
        Req::ReleaseLock(pb::ReleaseLockRequest {
            channel_type: pb::ChannelType::Message as i32,
            channel_name: "room".into(),
            lock_name: lock.into(),
        })
    };
    assert!(matches!(
        owner.request(release("a")).await,
        Body::ReleaseLock(_)
    ));
    assert!(matches!(waiter.reply(wait_a).await, Body::AcquireLock(_)));
    // One wait left: room for another.
    let wait_c = waiter.send_request(acquire("room", "c", true)).await;
    assert!(matches!(
        owner.request(release("c")).await,
        Body::ReleaseLock(_)
    ));
    assert!(matches!(waiter.reply(wait_c).await, Body::AcquireLock(_)));
    assert!(matches!(
        owner.request(release("b")).await,
        Body::ReleaseLock(_)
    ));
    assert!(matches!(waiter.reply(wait_b).await, Body::AcquireLock(_)));
    waiter.assert_alive().await;
}

/// The recovery logs of all an app's channels hold at most `max_recovery_log_bytes`:
/// a channel over it drops its own oldest publications and goes on, and a channel whose
/// publication does not fit even so is refused with −19002 and the reason, delivering
/// nothing; its subscribers, the publisher's connection and other apps carry on.
#[tokio::test]
async fn recovery_log_bytes_are_bounded_per_app() {
    let server = TestServer::with(|c| {
        let l = &mut c.apps[0].limits;
        l.max_recovery_log_bytes = 1000;
        l.publish_rate_per_channel = 0;
    })
    .await;
    let mut sub_a = server.raw_login("sub-a").await;
    sub_a.subscribe("a").await;
    let mut sub_b = server.raw_login("sub-b").await;
    sub_b.subscribe("b").await;
    let mut publisher = server.raw_login("p").await;
    // Channel a fills the budget and keeps publishing: it drops its own oldest.
    for _ in 0..5 {
        published(publisher.request(publish_sized("a", 300, "")).await);
    }
    for n in 0..5 {
        let push = sub_a.next_push(STEP).await.expect("message in a");
        assert!(matches!(push.body, Some(Body::Message(_))), "{n}: {push:?}");
    }
    // Channel b's publication does not fit beside a's log.
    let refused = expect_error(publisher.request(publish_sized("b", 300, "")).await);
    assert_eq!(refused.code, ErrorCode::Overloaded.as_i32(), "{refused:?}");
    assert!(
        refused.reason.contains("recovery logs") && refused.reason.contains("1000"),
        "{}",
        refused.reason
    );
    // A small one still fits; the refused one was never delivered.
    published(publisher.request(publish_sized("b", 10, "")).await);
    let push = sub_b.next_push(STEP).await.expect("the small message in b");
    let Some(Body::Message(m)) = push.body else {
        panic!("{push:?}")
    };
    assert_eq!(
        m.payload.len(),
        10,
        "the refused publication was not delivered"
    );
    // Channel a still publishes; everyone's connection is alive.
    published(publisher.request(publish_sized("a", 300, "")).await);
    assert!(sub_a.next_push(STEP).await.is_some());
    publisher.assert_alive().await;
    sub_a.assert_alive().await;
    sub_b.assert_alive().await;
    other_app_still_served(&server).await;
}

/// An app keeps at most `max_idempotency_keys` keys: a publish with a new key past it
/// fails with −19002 and the reason; a retry of a kept key is still deduplicated and a
/// publish without a key still goes.
#[tokio::test]
async fn idempotency_keys_are_bounded_per_app() {
    let server = TestServer::with(|c| {
        let l = &mut c.apps[0].limits;
        l.max_idempotency_keys = 2;
        l.publish_rate_per_channel = 0;
    })
    .await;
    let mut sub = server.raw_login("sub").await;
    sub.subscribe("k2").await;
    let mut publisher = server.raw_login("p").await;
    let first = published(publisher.request(publish_sized("k1", 5, "one")).await);
    published(publisher.request(publish_sized("k2", 5, "two")).await);
    let refused = expect_error(publisher.request(publish_sized("k1", 5, "three")).await);
    assert_eq!(refused.code, ErrorCode::Overloaded.as_i32(), "{refused:?}");
    assert!(
        refused.reason.contains("idempotency keys"),
        "{}",
        refused.reason
    );
    // The retry of a kept key is answered with its first position, not refused.
    let again = published(publisher.request(publish_sized("k1", 5, "one")).await);
    assert_eq!(again.position, first.position, "deduplicated");
    // Without a key a publish goes on.
    published(publisher.request(publish_sized("k2", 7, "")).await);
    let mut sizes = Vec::new();
    while sizes.len() < 2 {
        let push = sub.next_push(STEP).await.expect("messages in k2");
        if let Some(Body::Message(m)) = push.body {
            sizes.push(m.payload.len());
        }
    }
    assert_eq!(sizes, vec![5, 7]);
    publisher.assert_alive().await;
    other_app_still_served(&server).await;
}

fn meta_write(channel: &str, items: &[(&str, usize)]) -> pb::MetadataWriteRequest {
    pb::MetadataWriteRequest {
        channel_type: pb::ChannelType::Message as i32,
        channel_name: channel.into(),
        items: items
            .iter()
            .map(|(k, n)| pb::MetadataItem {
                key: (*k).into(),
                value: "v".repeat(*n),
                revision: None,
            })
            .collect(),
        ..Default::default()
    }
}

/// One metadata object holds at most `max_metadata_object_bytes` of keys and values
/// (R145 bounds one call, this the object): a set or update that would grow it past
/// the limit fails with −12006 and the reason and changes nothing; one that shrinks it
/// or stays within still goes, as does every other object.
#[tokio::test]
async fn metadata_object_bytes_are_bounded() {
    let server = TestServer::with(|c| c.apps[0].limits.max_metadata_object_bytes = 100).await;
    let mut c = server.raw_login("writer").await;
    let set = |items: &[(&str, usize)]| Req::SetMetadata(meta_write("room", items));
    assert!(matches!(
        c.request(set(&[("k1", 40), ("k2", 40)])).await,
        Body::SetMetadata(_)
    ));
    // 84 bytes now; 2 + 40 more would be 126.
    let refused = expect_error(c.request(set(&[("k3", 40)])).await);
    assert_eq!(
        refused.code,
        ErrorCode::StorageMetadataLengthOverflow.as_i32(),
        "{refused:?}"
    );
    assert!(
        refused.reason.contains("126") && refused.reason.contains("100"),
        "{}",
        refused.reason
    );
    let refused = expect_error(
        c.request(Req::UpdateMetadata(meta_write("room", &[("k1", 70)])))
            .await,
    );
    assert_eq!(
        refused.code,
        ErrorCode::StorageMetadataLengthOverflow.as_i32()
    );
    // Nothing changed: still two items at major revision 1.
    let get = c
        .request(Req::GetMetadata(pb::GetMetadataRequest {
            channel_type: pb::ChannelType::Message as i32,
            channel_name: "room".into(),
        }))
        .await;
    let Body::GetMetadata(got) = get else {
        panic!("{get:?}")
    };
    let data = got.data.expect("metadata");
    assert_eq!((data.total_count, data.major_revision), (2, 1));
    assert!(data.items.iter().all(|i| i.value.len() == 40));
    // Overwriting within the limit goes (k1 40 -> 56: exactly 100).
    let Body::SetMetadata(w) = c.request(set(&[("k1", 56)])).await else {
        panic!("a write up to the limit goes")
    };
    assert_eq!(w.major_revision, 2);
    // Another object has its own budget.
    assert!(matches!(
        c.request(Req::SetMetadata(meta_write("other", &[("k", 90)])))
            .await,
        Body::SetMetadata(_)
    ));
    c.assert_alive().await;
    other_app_still_served(&server).await;
}

fn set_lock_in(channel: &str, lock: &str) -> Req {
    Req::SetLock(pb::SetLockRequest {
        channel_type: pb::ChannelType::Message as i32,
        channel_name: channel.into(),
        lock_name: lock.into(),
        ttl: 0,
    })
}

/// An app has at most `max_lock_definitions` locks across its channels: past it
/// `setLock` fails with −14001 and the reason, in any channel; removing one makes room.
#[tokio::test]
async fn lock_definitions_are_bounded_per_app() {
    let server = TestServer::with(|c| c.apps[0].limits.max_lock_definitions = 3).await;
    let mut c = server.raw_login("locker").await;
    for channel in ["x", "y", "z"] {
        assert!(matches!(
            c.request(set_lock_in(channel, "l")).await,
            Body::SetLock(_)
        ));
    }
    let refused = expect_error(c.request(set_lock_in("w", "l")).await);
    assert_eq!(refused.code, ErrorCode::LockOperationFailed.as_i32());
    assert!(refused.reason.contains("limit"), "{}", refused.reason);
    // Nothing was defined in w.
    let list = c
        .request(Req::GetLock(pb::GetLockRequest {
            channel_type: pb::ChannelType::Message as i32,
            channel_name: "w".into(),
        }))
        .await;
    let Body::GetLock(list) = list else {
        panic!("{list:?}")
    };
    assert!(list.locks.is_empty(), "{list:?}");
    // A removed lock makes room.
    assert!(matches!(
        c.request(Req::RemoveLock(pb::RemoveLockRequest {
            channel_type: pb::ChannelType::Message as i32,
            channel_name: "x".into(),
            lock_name: "l".into(),
        }))
        .await,
        Body::RemoveLock(_)
    ));
    assert!(matches!(
        c.request(set_lock_in("w", "l")).await,
        Body::SetLock(_)
    ));
    c.assert_alive().await;
    // Another app's locks are its own.
    let mut o = raw_login_app(&server, OTHER_APP_ID, OTHER_CERT, "o-locker").await;
    assert!(matches!(
        o.request(set_lock_in("x", "l")).await,
        Body::SetLock(_)
    ));
}

/// An app keeps at most `max_swept_positions` positions of channels swept from memory
/// for being idle: past it a swept channel's position is forgotten, so the channel
/// comes back with a new epoch (a resuming client is told of the gap) while a kept one
/// comes back at its position.
#[tokio::test]
async fn swept_positions_are_bounded_per_app() {
    let broker = Arc::new(MemoryBroker::new(MemoryConfig {
        retention: Retention {
            max_count: 10,
            max_age: Duration::from_millis(50),
        },
        sweep_interval: Duration::from_millis(20),
    }));
    let mut config = base_config();
    config.apps[0].limits.max_swept_positions = 1;
    config.apps[0].limits.publish_rate_per_channel = 0;
    let server = TestServer::with_parts(Server::new(config, broker.clone())).await;
    let mut publisher = server.raw_login("p").await;
    let q1 = published(publisher.request(publish_sized("q1", 3, "")).await);
    let q2 = published(publisher.request(publish_sized("q2", 3, "")).await);
    assert!(
        // What stays is the publisher's own USER channel (its inbox), subscribed.
        eventually(STEP, || broker.channel_count() == 1
            && broker.swept_count() == 1)
        .await,
        "q1 and q2 swept, one position kept: {} channels, {} positions",
        broker.channel_count(),
        broker.swept_count()
    );
    let q1b = published(publisher.request(publish_sized("q1", 3, "")).await);
    let q2b = published(publisher.request(publish_sized("q2", 3, "")).await);
    let epoch = |r: &pb::PublishReply| r.position.expect("position").epoch;
    let offset = |r: &pb::PublishReply| r.position.expect("position").offset;
    let kept = [(&q1, &q1b), (&q2, &q2b)]
        .iter()
        .filter(|(before, after)| epoch(before) == epoch(after) && offset(after) == 2)
        .count();
    let forgotten = [(&q1, &q1b), (&q2, &q2b)]
        .iter()
        .filter(|(before, after)| epoch(before) != epoch(after) && offset(after) == 1)
        .count();
    assert_eq!((kept, forgotten), (1, 1), "{q1:?} {q1b:?} {q2:?} {q2b:?}");
    publisher.assert_alive().await;
}
