//! What the lock requests and the lifecycle share: the engine, channel and rejection
//! mapping, the lock events (SET, REMOVED, ACQUIRED, RELEASED in the channel's stream;
//! EXPIRED in the former owner's own USER channel, so it reaches it without
//! `withLock` and survives a reconnect), the hand-over to the next waiter, owner loss
//! and return, release at the session's end, and the expiry sweep (R153).

use super::waits::Waits;
use crate::node::{Actor, Node};
use crate::session::Session;
use crate::session::hooks::{self, Happening, LockChange};
use crate::wire::{Failure, wire_position};
use std::sync::Arc;
use std::time::Duration;
use switchboard_engine::{
    ChannelKey, ChannelKind, EventKind, Freed, HandoverHandler, LockRejection, Locks,
    StreamPosition,
};
use switchboard_protocol::pb::{self, server_message::Body};
use switchboard_protocol::{ErrorCode, names, now_ms};

/// How often the node frees locks whose owner did not come back.
pub(crate) const SWEEP_EVERY: Duration = Duration::from_millis(200);

/// With other nodes, every this many sweeps the node also looks whether a lock it
/// waits for was handed to its waiter without the notice reaching it (the engine's
/// notice travels over a connection that can drop).
const RECHECK_EVERY_SWEEPS: u64 = 10;

/// Answers this node's waiting request when another node hands the lock over to it.
struct Handovers(std::sync::Weak<Node>);

impl HandoverHandler for Handovers {
    fn on_handover(&self, channel: &ChannelKey, lock: &str, user: &str) {
        if let Some(node) = self.0.upgrade() {
            waits(&node).finish(channel, &Arc::from(lock), &Arc::from(user), Ok(()));
        }
    }
}

/// Answers the waiting requests whose lock their user owns already (a hand-over whose
/// notice was lost); one `list` per channel with waiters.
async fn recheck_waits(node: &Node, locks: &dyn Locks) {
    type Wanted = Vec<(Arc<str>, Arc<str>)>;
    let mut by_channel: std::collections::HashMap<ChannelKey, Wanted> = Default::default();
    for (key, lock, user) in waits(node).keys() {
        by_channel.entry(key).or_default().push((lock, user));
    }
    for (key, wanted) in by_channel {
        let Ok(list) = locks.list(&key).await else {
            continue;
        };
        for (lock, user) in wanted {
            let owns = list
                .iter()
                .any(|l| l.name == lock && l.owner.as_deref() == Some(&*user));
            if owns {
                waits(node).finish(&key, &lock, &user, Ok(()));
            }
        }
    }
}

pub(crate) fn lock_failure(e: &switchboard_engine::EngineError) -> Failure {
    Failure::new(ErrorCode::LockOperationFailed, e.to_string())
}

pub(crate) fn engine(node: &Node) -> Result<Arc<dyn Locks>, Failure> {
    node.locks.clone().ok_or_else(|| {
        Failure::new(
            ErrorCode::LockNotAvailable,
            "locks are not available on this server",
        )
    })
}

pub(crate) fn wire_type(key: &ChannelKey) -> i32 {
    crate::wire::wire_type(key.kind)
}

/// The node's waiting `acquireLock` requests.
pub(crate) fn waits(node: &Node) -> &Waits {
    node.ext.get::<Waits>()
}

/// The channel of a lock call: MESSAGE or STREAM (USER fails with −10019).
pub(crate) fn channel(actor: &Actor, channel_type: i32, name: &str) -> Result<ChannelKey, Failure> {
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
    names::validate_channel_name(name, actor.app.limits.name_rules())?;
    Ok(ChannelKey::new(actor.app_id.clone(), kind, name))
}

pub(crate) fn rejection(r: LockRejection, lock: &str) -> Failure {
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

pub(crate) fn event(
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

/// Tells the other features (the webhooks) that a lock of `channel` changed hands.
pub(crate) fn told(
    node: &Node,
    channel: &ChannelKey,
    lock: &str,
    change: LockChange,
    owner: &str,
    by: &str,
) {
    hooks::happened(
        node,
        &Happening::Lock {
            channel,
            lock,
            change,
            owner,
            by,
        },
    );
}

pub(crate) async fn publish(node: &Node, key: &ChannelKey, publisher: &str, ev: pb::LockEvent) {
    let payload = prost::Message::encode_to_vec(&ev);
    crate::node::hub::publish_event(&*node.broker, key, EventKind::Lock, publisher, payload).await;
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
        if let Some(former) = &f.former {
            let change = if expired {
                LockChange::Expired
            } else if **former == *publisher {
                LockChange::Released
            } else {
                LockChange::Revoked
            };
            told(node, &f.channel, &f.lock, change, former, &publisher);
        }
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
        told(
            node,
            &f.channel,
            &f.lock,
            LockChange::Acquired,
            &next,
            &next,
        );
        if waits(node).finish(&f.channel, &f.lock, &next, Ok(())) {
            return;
        }
        // Not waiting here: with other nodes it may wait on one of them, which hears of
        // the hand-over from the engine and answers it (or, when its request is gone,
        // passes the lock on itself: `cancel_waits`).
        if waits(node).remote() {
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
    let taken = waits(node).take(session.id, channel);
    let Some(locks) = node.locks.clone() else {
        return;
    };
    for ((key, lock, user), waiter) in taken {
        let in_line = locks.cancel_wait(&key, &lock, &user).await;
        waiter.answer(Err(Failure::new(
            ErrorCode::LockOperationFailed,
            format!("stopped waiting for lock {lock:?}: {why} (R152)"),
        )));
        // Out of the line already: another node may have handed the lock to this waiter
        // at that moment (it leaves the answer to this node, see `freed`); this node
        // passes it on. A waiter that owns the lock got it from the line.
        if matches!(in_line, Ok(false)) && waits(node).remote() {
            if let Ok(Ok(f)) = locks.revoke(&key, &lock, &user).await {
                freed(node, f, user, false).await;
            }
        }
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
    // Replaced by a login on another node (R28): the user's locks are that session's
    // now (a lock belongs to the user id), so this end leaves them to it.
    if session.lock().superseded {
        return;
    }
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
    if locks.set_handover_handler(Arc::new(Handovers(Arc::downgrade(&node)))) {
        waits(&node).set_remote();
    }
    let mut shutdown = node.shutdown.subscribe();
    let mut tick = 0u64;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
            _ = shutdown.changed() => return,
        }
        tick += 1;
        if waits(&node).remote() && tick % RECHECK_EVERY_SWEEPS == 0 {
            recheck_waits(&node, &*locks).await;
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
