//! Locks (api.md §7, R150–R159): the lock requests, the waiting line of `acquireLock`
//! with `retry`, hand-over to the next waiter, owner loss (the lock stays with an owner
//! whose connection is lost for its ttl, then EXPIRED), release at logout, and the lock
//! events (SET, REMOVED, ACQUIRED, RELEASED in the channel's stream; EXPIRED in the
//! former owner's own USER channel, so it reaches it without `withLock` and survives a
//! reconnect).
//!
//! Waiting requests are node-local: the engine keeps the line and hands the lock over;
//! the node that holds the waiting request answers it. A waiter whose connection is lost
//! leaves the line (its request cannot be answered any more).

use crate::client::{Client, Failure};
use crate::login::wire_position;
use crate::node::Node;
use crate::session::Session;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_engine::{
    Acquire, ChannelKey, ChannelKind, EventKind, Freed, LockRejection, Locks, StreamPosition,
};
use switchboard_protocol::pb::{self, server_message::Body};
use switchboard_protocol::{ErrorCode, names, now_ms};

/// Default lock ttl, seconds (R150).
const DEFAULT_TTL_S: u32 = 10;
/// Allowed ttl range, seconds (R150).
const TTL_RANGE_S: (u32, u32) = (10, 300);
/// How often the node frees locks whose owner did not come back.
const SWEEP_EVERY: Duration = Duration::from_millis(200);

/// One waiting `acquireLock`: (channel, lock, user).
type WaitKey = (ChannelKey, Arc<str>, Arc<str>);
/// Where a waiting `acquireLock` is answered.
type Answer = tokio::sync::oneshot::Sender<Result<(), Failure>>;
/// Waiting requests: (channel, lock, user) → (session, answer).
type WaitMap = HashMap<WaitKey, (u64, Answer)>;
/// What a lock call works on: the session, the channel and the engine.
type LockCall = (Arc<Session>, ChannelKey, Arc<dyn Locks>);

/// The waiting `acquireLock` requests of this node.
#[derive(Default)]
pub(crate) struct Waits {
    map: Mutex<WaitMap>,
}

impl Waits {
    fn lock(&self) -> std::sync::MutexGuard<'_, WaitMap> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pending(&self, key: &ChannelKey, lock: &str, user: &Arc<str>) -> bool {
        self.lock()
            .contains_key(&(key.clone(), Arc::from(lock), user.clone()))
    }

    /// Answers the waiter of `(key, lock, user)`; false when nobody waits any more.
    fn finish(
        &self,
        key: &ChannelKey,
        lock: &Arc<str>,
        user: &Arc<str>,
        r: Result<(), Failure>,
    ) -> bool {
        let entry = self
            .lock()
            .remove(&(key.clone(), lock.clone(), user.clone()));
        match entry {
            Some((_, tx)) => tx.send(r).is_ok(),
            None => false,
        }
    }

    /// Takes out the waits of `session` (in `channel` only, when given).
    fn take(&self, session: u64, channel: Option<&ChannelKey>) -> Vec<(WaitKey, Answer)> {
        let mut map = self.lock();
        let keys: Vec<WaitKey> = map
            .iter()
            .filter(|(k, (s, _))| *s == session && channel.is_none_or(|c| k.0 == *c))
            .map(|(k, _)| k.clone())
            .collect();
        keys.into_iter()
            .filter_map(|k| map.remove(&k).map(|(_, tx)| (k, tx)))
            .collect()
    }

    /// Takes out every wait for `lock` of `channel` (the lock was removed).
    fn take_lock(&self, channel: &ChannelKey, lock: &str) -> Vec<Answer> {
        let mut map = self.lock();
        let keys: Vec<WaitKey> = map
            .keys()
            .filter(|k| k.0 == *channel && &*k.1 == lock)
            .cloned()
            .collect();
        keys.into_iter()
            .filter_map(|k| map.remove(&k).map(|(_, tx)| tx))
            .collect()
    }
}

fn lock_failure(e: &switchboard_engine::EngineError) -> Failure {
    Failure::new(ErrorCode::LockOperationFailed, e.to_string())
}

fn engine(node: &Node) -> Result<Arc<dyn Locks>, Failure> {
    node.locks.clone().ok_or_else(|| {
        Failure::new(
            ErrorCode::LockNotAvailable,
            "locks are not available on this server",
        )
    })
}

fn wire_type(key: &ChannelKey) -> i32 {
    crate::presence::wire_type(key.kind)
}

/// The channel of a lock call: MESSAGE or STREAM (USER fails with −10019).
fn channel(session: &Session, channel_type: i32, name: &str) -> Result<ChannelKey, Failure> {
    let kind = match pb::ChannelType::try_from(channel_type) {
        Ok(pb::ChannelType::Message) => ChannelKind::Message,
        Ok(pb::ChannelType::Stream) => ChannelKind::Stream,
        _ => {
            return Err(Failure::new(
                ErrorCode::InvalidChannelType,
                "locks live in MESSAGE or STREAM channels (api.md §7)",
            ));
        }
    };
    names::validate_channel_name(name, session.app.limits.name_rules())?;
    Ok(ChannelKey::new(session.app_id.clone(), kind, name))
}

fn rejection(r: LockRejection, lock: &str) -> Failure {
    match r {
        LockRejection::AlreadyExists => Failure::new(
            ErrorCode::LockAlreadyExist,
            format!("lock {lock:?} is already defined (R156)"),
        ),
        LockRejection::NotDefined => Failure::new(
            ErrorCode::LockNotExist,
            format!("lock {lock:?} is not defined (R156)"),
        ),
        LockRejection::HeldBy(owner) => Failure::new(
            ErrorCode::LockAcquireFailed,
            format!("lock {lock:?} is held by {owner} (R151)"),
        ),
        LockRejection::NotOwner => Failure::new(
            ErrorCode::LockNotAcquired,
            format!("lock {lock:?} is not held by that user (R154, R155)"),
        ),
        LockRejection::TooMany(n) => Failure::new(
            ErrorCode::LockOperationFailed,
            format!("the channel already has {n} locks, the limit per channel"),
        ),
    }
}

fn event(
    key: &ChannelKey,
    event_type: pb::LockEventType,
    lock: &str,
    ttl: u32,
    publisher: &str,
    owner: &str,
) -> pb::LockEvent {
    pb::LockEvent {
        channel_type: wire_type(key),
        channel_name: key.name.to_string(),
        event_type: event_type as i32,
        lock_name: lock.to_string(),
        ttl,
        publisher: publisher.to_string(),
        owner: owner.to_string(),
        snapshot: Vec::new(),
        timestamp: now_ms(),
        position: None,
    }
}

async fn publish(node: &Node, key: &ChannelKey, publisher: &str, ev: pb::LockEvent) {
    let payload = prost::Message::encode_to_vec(&ev);
    crate::hub::publish_event(&*node.broker, key, EventKind::Lock, publisher, payload).await;
}

/// Reports a freed lock and hands it on: EXPIRED to the former owner (when it
/// `expired`), RELEASED to the channel, then ACQUIRED for the waiter that got it and
/// its waiting request answered. A waiter nobody waits for any more frees it again.
pub(crate) async fn freed(node: &Node, mut f: Freed, mut publisher: Arc<str>, mut expired: bool) {
    let Some(locks) = node.locks.clone() else {
        return;
    };
    loop {
        if let (true, Some(former)) = (expired, &f.former) {
            let inbox = ChannelKey::new(f.channel.app.clone(), ChannelKind::User, former.clone());
            let ev = event(
                &f.channel,
                pb::LockEventType::Expired,
                &f.lock,
                0,
                former,
                "",
            );
            publish(node, &inbox, former, ev).await;
        }
        let ev = event(
            &f.channel,
            pb::LockEventType::Released,
            &f.lock,
            f.ttl_s,
            &publisher,
            "",
        );
        publish(node, &f.channel, &publisher, ev).await;
        let Some(next) = f.next.clone() else { return };
        let ev = event(
            &f.channel,
            pb::LockEventType::Acquired,
            &f.lock,
            f.ttl_s,
            &next,
            &next,
        );
        publish(node, &f.channel, &next, ev).await;
        if node.lock_waits.finish(&f.channel, &f.lock, &next, Ok(())) {
            return;
        }
        // Its request is gone (the connection was lost at that moment): pass it on.
        match locks.release(&f.channel, &f.lock, &next).await {
            Ok(Ok(again)) => {
                f = again;
                publisher = next;
                expired = false;
            }
            _ => return,
        }
    }
}

/// The lock SNAPSHOT of a channel a member just entered with `withLock` (R157), taken
/// after `position`.
pub(crate) async fn snapshot(
    node: &Node,
    key: &ChannelKey,
    position: StreamPosition,
) -> Option<Body> {
    let locks = node.locks.clone()?;
    let list = locks.list(key).await.ok()?;
    let mut ev = event(key, pb::LockEventType::Snapshot, "", 0, "", "");
    ev.snapshot = list
        .into_iter()
        .map(|l| pb::LockDetail {
            lock_name: l.name.to_string(),
            owner: l.owner.as_deref().unwrap_or("").to_string(),
            ttl: l.ttl_s,
        })
        .collect();
    ev.position = wire_position(position);
    Some(Body::Lock(ev))
}

/// Fails the waiting requests of `session` (in `channel` only, when given): it left
/// the channel, lost its connection or ended (R152).
pub(crate) async fn cancel_waits(
    node: &Node,
    session: &Session,
    channel: Option<&ChannelKey>,
    why: &str,
) {
    let taken = node.lock_waits.take(session.id, channel);
    let Some(locks) = node.locks.clone() else {
        return;
    };
    for ((key, lock, user), tx) in taken {
        let _ = locks.cancel_wait(&key, &lock, &user).await;
        let _ = tx.send(Err(Failure::new(
            ErrorCode::LockOperationFailed,
            format!("stopped waiting for lock {lock:?}: {why} (R152)"),
        )));
    }
}

/// The session's connection was lost: its waits end, and its locks expire after their
/// ttl unless it comes back (R153).
pub(crate) async fn connection_lost(node: &Node, session: &Session) {
    cancel_waits(node, session, None, "the connection was lost").await;
    if let Some(locks) = node.locks.clone() {
        if let Err(e) = locks
            .owner_lost(&session.app_id, &session.user, now_ms())
            .await
        {
            tracing::warn!(error = %e, "lock owner loss not recorded");
        }
    }
}

/// The session came back: its locks no longer expire.
pub(crate) async fn connection_back(node: &Node, session: &Session) {
    if let Some(locks) = node.locks.clone() {
        if let Err(e) = locks.owner_back(&session.app_id, &session.user).await {
            tracing::warn!(error = %e, "lock owner return not recorded");
        }
    }
}

/// The session ended (logout, kick, timeout): its waits fail and its locks are
/// released at once.
pub(crate) async fn session_ended(node: &Node, session: &Session) {
    cancel_waits(node, session, None, "the session ended").await;
    let Some(locks) = node.locks.clone() else {
        return;
    };
    // One lock at a time, each under its channel's turn, so that its RELEASED (and the
    // next owner's ACQUIRED) are in order with every other change of the channel.
    match locks.owned_by(&session.app_id, &session.user).await {
        Ok(owned) => {
            for (channel, lock) in owned {
                let _turn = node.turns.take(&channel).await;
                if let Ok(Ok(f)) = locks.release(&channel, &lock, &session.user).await {
                    freed(node, f, session.user.clone(), false).await;
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "locks of an ended session not listed"),
    }
    // Whatever is left (a line the user still stands in on another node).
    match locks.release_all(&session.app_id, &session.user).await {
        Ok(all) => {
            for f in all {
                let _turn = node.turns.take(&f.channel).await;
                freed(node, f, session.user.clone(), false).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "locks of an ended session not released"),
    }
}

/// Frees, every [`SWEEP_EVERY`], the locks whose owner did not come back within the
/// lock's ttl (R153).
pub(crate) async fn sweep(node: Arc<Node>) {
    let Some(locks) = node.locks.clone() else {
        return;
    };
    let mut shutdown = node.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
            _ = shutdown.changed() => return,
        }
        let now = now_ms();
        match locks.due(now).await {
            Ok(due) => {
                for (channel, lock, owner) in due {
                    // Freed under the channel's turn, so the events keep its order.
                    let _turn = node.turns.take(&channel).await;
                    match locks.expire(&channel, &lock, &owner, now).await {
                        Ok(Some(f)) => freed(&node, f, owner, true).await,
                        Ok(None) => {}
                        Err(e) => tracing::warn!(error = %e, "lock expiry failed"),
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "lock expiry sweep failed"),
        }
    }
}

impl Client {
    /// The channel, lock name and engine of a lock call, refusing a second operation on
    /// a lock this client is waiting for (R158).
    fn lock_call(
        &self,
        channel_type: i32,
        channel_name: &str,
        lock: &str,
    ) -> Result<LockCall, Failure> {
        let session = self.session()?;
        let locks = engine(&self.node)?;
        let key = channel(&session, channel_type, channel_name)?;
        names::validate_lock_name(lock, false)?;
        if self.node.lock_waits.pending(&key, lock, &session.user) {
            return Err(Failure::new(
                ErrorCode::LockOperationPerforming,
                format!("an acquireLock of {lock:?} is still waiting (R158)"),
            ));
        }
        Ok((session, key, locks))
    }

    fn lock_reply(&self, id: u32, key: &ChannelKey, lock: String, body: fn(pb::LockReply) -> Body) {
        self.send(
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
        &mut self,
        id: u32,
        req: pb::SetLockRequest,
    ) -> Result<(), Failure> {
        let (session, key, locks) =
            self.lock_call(req.channel_type, &req.channel_name, &req.lock_name)?;
        let ttl = match req.ttl {
            0 => DEFAULT_TTL_S,
            t => t.clamp(TTL_RANGE_S.0, TTL_RANGE_S.1),
        };
        let max = session.app.limits.max_locks_per_channel;
        let _turn = self.node.turns.take(&key).await;
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
        publish(&self.node, &key, &session.user, ev).await;
        self.lock_reply(id, &key, req.lock_name, Body::SetLock);
        Ok(())
    }

    /// `removeLock` (R156): waiters for it fail.
    pub(crate) async fn remove_lock(
        &mut self,
        id: u32,
        req: pb::RemoveLockRequest,
    ) -> Result<(), Failure> {
        let (session, key, locks) =
            self.lock_call(req.channel_type, &req.channel_name, &req.lock_name)?;
        let _turn = self.node.turns.take(&key).await;
        let f = locks
            .remove(&key, &req.lock_name)
            .await
            .map_err(|e| lock_failure(&e))?
            .map_err(|r| rejection(r, &req.lock_name))?;
        for tx in self.node.lock_waits.take_lock(&key, &req.lock_name) {
            let _ = tx.send(Err(Failure::new(
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
        publish(&self.node, &key, &session.user, ev).await;
        self.lock_reply(id, &key, req.lock_name, Body::RemoveLock);
        Ok(())
    }

    /// `acquireLock` (R151, R152): with `retry`, the reply comes when the lock is
    /// handed over (or the wait fails); other requests go on meanwhile.
    pub(crate) async fn acquire_lock(
        &mut self,
        id: u32,
        req: pb::AcquireLockRequest,
    ) -> Result<(), Failure> {
        let (session, key, locks) =
            self.lock_call(req.channel_type, &req.channel_name, &req.lock_name)?;
        let lock: Arc<str> = req.lock_name.as_str().into();
        // Registered before the engine queues it, so a hand-over right after finds it.
        let waiting = req.retry.then(|| {
            let (tx, rx) = tokio::sync::oneshot::channel();
            self.node.lock_waits.lock().insert(
                (key.clone(), lock.clone(), session.user.clone()),
                (session.id, tx),
            );
            rx
        });
        let _turn = self.node.turns.take(&key).await;
        let outcome = locks.acquire(&key, &lock, &session.user, req.retry).await;
        let unregister = || {
            self.node
                .lock_waits
                .lock()
                .remove(&(key.clone(), lock.clone(), session.user.clone()));
        };
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
        match (outcome, waiting) {
            (Acquire::Queued, Some(rx)) => {
                let out = self.out.clone();
                let (channel_type, channel_name) = (wire_type(&key), key.name.to_string());
                tokio::spawn(async move {
                    let body = match rx.await {
                        Ok(Ok(())) => Body::AcquireLock(pb::LockReply {
                            timestamp: now_ms(),
                            channel_type,
                            channel_name,
                            lock_name: req.lock_name,
                        }),
                        Ok(Err(f)) => Body::Error(pb::Error {
                            code: f.code.as_i32(),
                            reason: f.reason,
                            operation: "acquireLock".into(),
                        }),
                        Err(_) => return,
                    };
                    out.push(switchboard_protocol::frame::encode(&pb::ServerMessage {
                        id,
                        body: Some(body),
                    }));
                });
                return Ok(());
            }
            (Acquire::Acquired { ttl_s }, _) => {
                unregister();
                let ev = event(
                    &key,
                    pb::LockEventType::Acquired,
                    &lock,
                    ttl_s,
                    &session.user,
                    &session.user,
                );
                publish(&self.node, &key, &session.user, ev).await;
            }
            _ => unregister(),
        }
        self.lock_reply(id, &key, req.lock_name, Body::AcquireLock);
        Ok(())
    }

    /// `releaseLock` (R154): the next waiter gets it.
    pub(crate) async fn release_lock(
        &mut self,
        id: u32,
        req: pb::ReleaseLockRequest,
    ) -> Result<(), Failure> {
        let (session, key, locks) =
            self.lock_call(req.channel_type, &req.channel_name, &req.lock_name)?;
        let _turn = self.node.turns.take(&key).await;
        let f = locks
            .release(&key, &req.lock_name, &session.user)
            .await
            .map_err(|e| lock_failure(&e))?
            .map_err(|r| rejection(r, &req.lock_name))?;
        freed(&self.node, f, session.user.clone(), false).await;
        self.lock_reply(id, &key, req.lock_name, Body::ReleaseLock);
        Ok(())
    }

    /// `revokeLock` (R155): frees the lock if `owner` holds it.
    pub(crate) async fn revoke_lock(
        &mut self,
        id: u32,
        req: pb::RevokeLockRequest,
    ) -> Result<(), Failure> {
        let (session, key, locks) =
            self.lock_call(req.channel_type, &req.channel_name, &req.lock_name)?;
        names::validate_user_id(&req.owner, session.app.limits.name_rules())?;
        let _turn = self.node.turns.take(&key).await;
        let f = locks
            .revoke(&key, &req.lock_name, &req.owner)
            .await
            .map_err(|e| lock_failure(&e))?
            .map_err(|r| rejection(r, &req.lock_name))?;
        freed(&self.node, f, session.user.clone(), false).await;
        self.lock_reply(id, &key, req.lock_name, Body::RevokeLock);
        Ok(())
    }

    /// `getLock`: every lock of the channel.
    pub(crate) async fn get_lock(
        &mut self,
        id: u32,
        req: pb::GetLockRequest,
    ) -> Result<(), Failure> {
        let session = self.session()?;
        let locks = engine(&self.node)?;
        let key = channel(&session, req.channel_type, &req.channel_name)?;
        let list = locks.list(&key).await.map_err(|e| lock_failure(&e))?;
        self.send(
            id,
            Body::GetLock(pb::GetLockReply {
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
            }),
        );
        Ok(())
    }
}
