//! The lock requests (api.md §7, R150–R158): setLock, removeLock, acquireLock (with
//! `retry`, answered when the lock is handed over), releaseLock, revokeLock, getLock.

use super::events::{
    channel, engine, event, freed, lock_failure, publish, rejection, told, waits, wire_type,
};
use super::waits::Waiter;
use crate::node::{Actor, Node};
use crate::session::Session;
use crate::session::client::Client;
use crate::session::hooks::LockChange;
use crate::wire::Failure;
use std::sync::Arc;
use switchboard_engine::{Acquire, ChannelKey, Locks};
use switchboard_protocol::pb::{self, server_message::Body};
use switchboard_protocol::{ErrorCode, names, now_ms};

/// Default lock ttl, seconds (R150).
const DEFAULT_TTL_S: u32 = 10;
/// Allowed ttl range, seconds (R150).
const TTL_RANGE_S: (u32, u32) = (10, 300);
/// What a lock call works on: the session, the channel and the engine.
type LockCall = (Arc<Session>, ChannelKey, Arc<dyn Locks>);

/// The channel, lock name and engine of a lock call, refusing a second operation on
/// a lock this client is waiting for (R158).
fn lock_call(
    client: &Client,
    channel_type: i32,
    channel_name: &str,
    lock: &str,
) -> Result<LockCall, Failure> {
    let session = client.session()?;
    let locks = engine(&client.node)?;
    let key = channel(&session.actor(), channel_type, channel_name)?;
    names::validate_lock_name(lock, false)?;
    if waits(&client.node).pending(&key, lock, &session.user) {
        return Err(Failure::new(
            ErrorCode::LockOperationPerforming,
            format!("an acquireLock of {lock:?} is still waiting (R158)"),
        ));
    }
    Ok((session, key, locks))
}

fn lock_reply(
    client: &Client,
    id: u32,
    key: &ChannelKey,
    lock: String,
    body: fn(pb::LockReply) -> Body,
) {
    client.send(
        id,
        body(pb::LockReply {
            timestamp: now_ms(),
            channel_type: wire_type(key),
            channel_name: key.name.to_string(),
            lock_name: lock,
        }),
    );
}

/// `setLock` (R150, R156).
pub(crate) async fn set_lock(
    client: &mut Client,
    id: u32,
    req: pb::SetLockRequest,
) -> Result<(), Failure> {
    let (session, key, locks) =
        lock_call(client, req.channel_type, &req.channel_name, &req.lock_name)?;
    let ttl = match req.ttl {
        0 => DEFAULT_TTL_S,
        t => t.clamp(TTL_RANGE_S.0, TTL_RANGE_S.1),
    };
    let max = session.app.limits.max_locks_per_channel;
    let _turn = client.node.turns.take(&key).await;
    locks
        .set(&key, &req.lock_name, ttl, max)
        .await
        .map_err(|e| lock_failure(&e))?
        .map_err(|r| rejection(r, &req.lock_name))?;
    let ev = event(
        &key,
        pb::LockEventType::Set,
        &req.lock_name,
        ttl,
        &session.user,
        "",
    );
    publish(&client.node, &key, &session.user, ev).await;
    lock_reply(client, id, &key, req.lock_name, Body::SetLock);
    Ok(())
}

/// `removeLock` (R156): waiters for it fail.
pub(crate) async fn remove_lock(
    client: &mut Client,
    id: u32,
    req: pb::RemoveLockRequest,
) -> Result<(), Failure> {
    let (session, key, locks) =
        lock_call(client, req.channel_type, &req.channel_name, &req.lock_name)?;
    let _turn = client.node.turns.take(&key).await;
    let f = locks
        .remove(&key, &req.lock_name)
        .await
        .map_err(|e| lock_failure(&e))?
        .map_err(|r| rejection(r, &req.lock_name))?;
    for waiter in waits(&client.node).take_lock(&key, &req.lock_name) {
        waiter.answer(Err(Failure::new(
            ErrorCode::LockNotExist,
            format!("lock {:?} was removed while waiting for it", req.lock_name),
        )));
    }
    let ev = event(
        &key,
        pb::LockEventType::Removed,
        &req.lock_name,
        f.ttl_s,
        &session.user,
        "",
    );
    publish(&client.node, &key, &session.user, ev).await;
    lock_reply(client, id, &key, req.lock_name, Body::RemoveLock);
    Ok(())
}

/// `acquireLock` (R151, R152): with `retry`, the reply comes when the lock is
/// handed over (or the wait fails); other requests go on meanwhile.
pub(crate) async fn acquire_lock(
    client: &mut Client,
    id: u32,
    req: pb::AcquireLockRequest,
) -> Result<(), Failure> {
    let (session, key, locks) =
        lock_call(client, req.channel_type, &req.channel_name, &req.lock_name)?;
    let lock: Arc<str> = req.lock_name.as_str().into();
    // Registered before the engine queues it, so a hand-over right after finds it.
    let wait_key = (key.clone(), lock.clone(), session.user.clone());
    if req.retry {
        let waiter = Waiter {
            session: session.id,
            out: client.out.clone(),
            id,
            channel_type: wire_type(&key),
            channel_name: key.name.to_string(),
            lock_name: req.lock_name.clone(),
        };
        let max = session.app.limits.max_lock_waits;
        if !waits(&client.node).insert(wait_key.clone(), waiter, max) {
            return Err(Failure::new(
                ErrorCode::LockOperationFailed,
                format!("already waiting for {max} locks, the limit per client"),
            ));
        }
    }
    let _turn = client.node.turns.take(&key).await;
    let outcome = locks.acquire(&key, &lock, &session.user, req.retry).await;
    let unregister = || waits(&client.node).forget(&wait_key);
    let outcome = match outcome {
        Ok(Ok(o)) => o,
        Ok(Err(r)) => {
            unregister();
            return Err(rejection(r, &req.lock_name));
        }
        Err(e) => {
            unregister();
            return Err(lock_failure(&e));
        }
    };
    match outcome {
        // Answered when the lock is handed over or the wait fails (`Waiter::answer`).
        Acquire::Queued if req.retry => return Ok(()),
        Acquire::Acquired { ttl_s } => {
            unregister();
            let ev = event(
                &key,
                pb::LockEventType::Acquired,
                &lock,
                ttl_s,
                &session.user,
                &session.user,
            );
            publish(&client.node, &key, &session.user, ev).await;
            told(
                &client.node,
                &key,
                &lock,
                LockChange::Acquired,
                &session.user,
                &session.user,
            );
        }
        _ => unregister(),
    }
    lock_reply(client, id, &key, req.lock_name, Body::AcquireLock);
    Ok(())
}

/// `releaseLock` (R154): the next waiter gets it.
pub(crate) async fn release_lock(
    client: &mut Client,
    id: u32,
    req: pb::ReleaseLockRequest,
) -> Result<(), Failure> {
    let (session, key, locks) =
        lock_call(client, req.channel_type, &req.channel_name, &req.lock_name)?;
    let _turn = client.node.turns.take(&key).await;
    let f = locks
        .release(&key, &req.lock_name, &session.user)
        .await
        .map_err(|e| lock_failure(&e))?
        .map_err(|r| rejection(r, &req.lock_name))?;
    freed(&client.node, f, session.user.clone(), false).await;
    lock_reply(client, id, &key, req.lock_name, Body::ReleaseLock);
    Ok(())
}

/// `revokeLock` (R155): frees the lock if `owner` holds it.
pub(crate) async fn revoke_lock(
    client: &mut Client,
    id: u32,
    req: pb::RevokeLockRequest,
) -> Result<(), Failure> {
    let session = client.session()?;
    let reply = revoke_lock_as(&client.node, &session.actor(), req).await?;
    client.send(id, Body::RevokeLock(reply));
    Ok(())
}

/// The rules of `revokeLock` (R155, R158) for `actor`, a client's session or the
/// server API.
pub(crate) async fn revoke_lock_as(
    node: &Node,
    actor: &Actor,
    req: pb::RevokeLockRequest,
) -> Result<pb::LockReply, Failure> {
    let locks = engine(node)?;
    let key = channel(actor, req.channel_type, &req.channel_name)?;
    names::validate_lock_name(&req.lock_name, false)?;
    if waits(node).pending(&key, &req.lock_name, &actor.user) {
        return Err(Failure::new(
            ErrorCode::LockOperationPerforming,
            format!(
                "an acquireLock of {:?} is still waiting (R158)",
                req.lock_name
            ),
        ));
    }
    names::validate_user_id(&req.owner, actor.app.limits.name_rules())?;
    let _turn = node.turns.take(&key).await;
    let f = locks
        .revoke(&key, &req.lock_name, &req.owner)
        .await
        .map_err(|e| lock_failure(&e))?
        .map_err(|r| rejection(r, &req.lock_name))?;
    freed(node, f, actor.user.clone(), false).await;
    Ok(pb::LockReply {
        timestamp: now_ms(),
        channel_type: wire_type(&key),
        channel_name: key.name.to_string(),
        lock_name: req.lock_name,
    })
}

/// `getLock`: every lock of the channel.
pub(crate) async fn get_lock(
    client: &mut Client,
    id: u32,
    req: pb::GetLockRequest,
) -> Result<(), Failure> {
    let session = client.session()?;
    let reply = get_lock_as(&client.node, &session.actor(), req).await?;
    client.send(id, Body::GetLock(reply));
    Ok(())
}

/// The rules of `getLock` in `actor`'s app: every lock of the channel.
pub(crate) async fn get_lock_as(
    node: &Node,
    actor: &Actor,
    req: pb::GetLockRequest,
) -> Result<pb::GetLockReply, Failure> {
    let locks = engine(node)?;
    let key = channel(actor, req.channel_type, &req.channel_name)?;
    let list = locks.list(&key).await.map_err(|e| lock_failure(&e))?;
    Ok(pb::GetLockReply {
        timestamp: now_ms(),
        channel_type: wire_type(&key),
        channel_name: key.name.to_string(),
        locks: list
            .into_iter()
            .map(|l| pb::LockDetail {
                lock_name: l.name.to_string(),
                owner: l.owner.as_deref().unwrap_or("").to_string(),
                ttl: l.ttl_s,
            })
            .collect(),
    })
}
