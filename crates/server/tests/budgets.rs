//! Budgets on what one client can make the server keep (issue 20, "memory a client can
//! grow without bound"): waiting `acquireLock` requests per client. Past a budget the
//! request fails with its code and reason; the connection and everyone else carry on.

mod common;

use common::*;
use switchboard_protocol::ErrorCode;
use switchboard_protocol::pb::{self, client_message::Body as Req, server_message::Body};

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
