//! Storage (api.md §6, R134–R149): channel and user metadata writes with revision
//! guards and lock gates, reads, user-metadata subscriptions, and the storage events:
//! a SNAPSHOT on (re)subscription, then an UPDATE with the complete metadata after every
//! change. Channel events travel in the channel's stream (ordered with its messages,
//! replayed on resume); a user's in the user's metadata stream. [`StorageHooks`] sends
//! the SNAPSHOTs a member entering a channel or resuming is owed, and stops an ended
//! session's user-metadata subscriptions.

use crate::node::Actor;
use crate::node::Node;
use crate::node::hub::{Filter, Subscriber};
use crate::session::Session;
use crate::session::client::Client;
use crate::session::hooks::{self, Ended, Happening, Hooks, Wants};
use crate::wire::{Failure, wire_position};
use std::collections::HashSet;
use std::sync::Arc;
use switchboard_engine::{
    ChannelKey, ChannelKind, EventKind, MetadataObject, MetadataStore, MetadataWrite, NO_CHECK,
    Rejection, StreamPosition, WriteItem, WriteOp,
};
use switchboard_protocol::pb::{self, server_message::Body};
use switchboard_protocol::{ErrorCode, names, now_ms};

/// Where a metadata call acts: the stored object and the stream its events go to.
pub(crate) struct Target {
    /// The stored object (a channel, or `User` + user id).
    pub object: ChannelKey,
    /// The stream of its events (the channel, or `UserMetadata` + user id).
    pub events: ChannelKey,
    /// Wire channel type for replies and events.
    pub channel_type: pb::ChannelType,
    /// The channel name, or the user id for USER.
    pub name: String,
}

/// The whole object as sent on the wire, items ordered by key.
pub(crate) fn to_pb(obj: &MetadataObject) -> pb::Metadata {
    pb::Metadata {
        total_count: u32::try_from(obj.items.len()).unwrap_or(u32::MAX),
        major_revision: obj.major_revision,
        items: obj
            .items
            .iter()
            .map(|(key, item)| pb::MetadataDetail {
                key: key.clone(),
                value: item.value.clone(),
                revision: item.revision,
                updated: item.updated,
                author_uid: item.author.clone(),
            })
            .collect(),
    }
}

fn storage_failure(e: &switchboard_engine::EngineError) -> Failure {
    match e {
        switchboard_engine::EngineError::OverBudget(reason) => {
            Failure::new(ErrorCode::StorageMetadataLengthOverflow, reason.clone())
        }
        _ => Failure::new(ErrorCode::StorageOperationFailed, e.to_string()),
    }
}

fn engine(node: &Node) -> Result<Arc<dyn MetadataStore>, Failure> {
    node.metadata.clone().ok_or_else(|| {
        Failure::new(
            ErrorCode::StorageNotAvailable,
            "storage is not available on this server",
        )
    })
}

/// Resolves a channel type and name (USER: a user id, empty = the caller, R146).
fn target(actor: &Actor, channel_type: i32, name: &str) -> Result<Target, Failure> {
    let rules = actor.app.limits.name_rules();
    let (kind, channel_type) = match pb::ChannelType::try_from(channel_type) {
        Ok(pb::ChannelType::Message) => (ChannelKind::Message, pb::ChannelType::Message),
        Ok(pb::ChannelType::Stream) => (ChannelKind::Stream, pb::ChannelType::Stream),
        Ok(pb::ChannelType::User) => {
            let user = if name.is_empty() {
                actor.user.to_string()
            } else {
                names::validate_user_id(name, rules)?;
                name.to_string()
            };
            let app = actor.app_id.clone();
            return Ok(Target {
                object: ChannelKey::new(app.clone(), ChannelKind::User, user.as_str()),
                events: ChannelKey::new(app, ChannelKind::UserMetadata, user.as_str()),
                channel_type: pb::ChannelType::User,
                name: user,
            });
        }
        _ => {
            return Err(Failure::new(
                ErrorCode::InvalidChannelType,
                "metadata belongs to a MESSAGE or STREAM channel or to a USER (R134)",
            ));
        }
    };
    names::validate_channel_name(name, rules)?;
    let key = ChannelKey::new(actor.app_id.clone(), kind, name);
    Ok(Target {
        object: key.clone(),
        events: key,
        channel_type,
        name: name.to_string(),
    })
}

/// Checks a revision guard's value (R140).
fn check_guard(value: i64, op: WriteOp, what: &str) -> Result<(), Failure> {
    if value < NO_CHECK || (value == 0 && op != WriteOp::Set) {
        return Err(Failure::new(
            ErrorCode::StorageInvalidRevision,
            format!(
                "{what} {value} is invalid: use -1 (no check), 0 (create only, set) or a \
                 current revision (R140)"
            ),
        ));
    }
    Ok(())
}

/// Validates a write's items and options (R11, R140, R145) before anything changes.
fn validate(
    actor: &Actor,
    op: WriteOp,
    req: &pb::MetadataWriteRequest,
) -> Result<Vec<WriteItem>, Failure> {
    let limits = &actor.app.limits;
    if req.items.len() > limits.max_metadata_items {
        return Err(Failure::new(
            ErrorCode::StorageMetadataItemExceedLimitation,
            format!(
                "{} items, over the limit of {} per call (R145)",
                req.items.len(),
                limits.max_metadata_items
            ),
        ));
    }
    if req.items.is_empty() && op != WriteOp::Remove {
        return Err(Failure::new(
            ErrorCode::StorageInvalidMetadataItem,
            "set and update take at least one item (R145)",
        ));
    }
    check_guard(req.major_revision.unwrap_or(NO_CHECK), op, "majorRevision")?;
    if !req.lock_name.is_empty() {
        names::validate_lock_name(&req.lock_name, true)?;
    }
    let mut seen = HashSet::new();
    let mut total = 0usize;
    let mut items = Vec::with_capacity(req.items.len());
    for it in &req.items {
        names::validate_metadata_key(&it.key)?;
        if !seen.insert(it.key.as_str()) {
            return Err(Failure::new(
                ErrorCode::StorageDuplicateKey,
                format!("key {:?} appears twice in one call (R145)", it.key),
            ));
        }
        let value = if op == WriteOp::Remove { "" } else { &it.value };
        if value.len() > limits.max_metadata_value_bytes {
            return Err(Failure::new(
                ErrorCode::StorageValueLengthOverflow,
                format!(
                    "the value of {:?} is {} bytes, over the limit of {} (R145)",
                    it.key,
                    value.len(),
                    limits.max_metadata_value_bytes
                ),
            ));
        }
        let revision = it.revision.unwrap_or(NO_CHECK);
        check_guard(revision, op, "revision")?;
        total += it.key.len() + value.len();
        items.push(WriteItem {
            key: it.key.clone(),
            value: value.to_string(),
            revision,
        });
    }
    if total > limits.max_metadata_call_bytes {
        return Err(Failure::new(
            ErrorCode::StorageMetadataLengthOverflow,
            format!(
                "the call carries {total} bytes of keys and values, over the limit of {} (R145)",
                limits.max_metadata_call_bytes
            ),
        ));
    }
    Ok(items)
}

/// A storage event about `target`.
fn event(
    target: &Target,
    event_type: pb::StorageEventType,
    publisher: &str,
    obj: &MetadataObject,
) -> pb::StorageEvent {
    let user = target.channel_type == pb::ChannelType::User;
    pb::StorageEvent {
        channel_type: target.channel_type as i32,
        channel_name: if user {
            String::new()
        } else {
            target.name.clone()
        },
        publisher: publisher.to_string(),
        storage_type: if user {
            pb::StorageType::User
        } else {
            pb::StorageType::Channel
        } as i32,
        event_type: event_type as i32,
        data: Some(to_pb(obj)),
        timestamp: now_ms(),
        position: None,
    }
}

/// The storage SNAPSHOT of a channel a member just entered with `withMetadata` (R80,
/// R148), taken after `position`.
async fn channel_snapshot(node: &Node, key: &ChannelKey, position: StreamPosition) -> Option<Body> {
    let store = node.metadata.clone()?;
    let obj = store.get(key).await.ok()?;
    let channel_type = if key.kind == ChannelKind::Stream {
        pb::ChannelType::Stream
    } else {
        pb::ChannelType::Message
    };
    let target = Target {
        object: key.clone(),
        events: key.clone(),
        channel_type,
        name: key.name.to_string(),
    };
    let mut ev = event(&target, pb::StorageEventType::Snapshot, "", &obj);
    ev.position = wire_position(position);
    Some(Body::Storage(ev))
}

/// The SNAPSHOT of a user's metadata.
async fn user_snapshot(node: &Node, session: &Session, user: &str) -> Option<Body> {
    let store = node.metadata.clone()?;
    let target = target(&session.actor(), pb::ChannelType::User as i32, user).ok()?;
    let obj = store.get(&target.object).await.ok()?;
    Some(Body::Storage(event(
        &target,
        pb::StorageEventType::Snapshot,
        user,
        &obj,
    )))
}

/// `set…Metadata`, `update…Metadata`, `remove…Metadata` (R134–R146).
pub(crate) async fn write_metadata(
    client: &mut Client,
    id: u32,
    op: WriteOp,
    req: pb::MetadataWriteRequest,
) -> Result<(), Failure> {
    let session = client.session()?;
    let reply = write_metadata_as(&client.node, &session.actor(), op, req).await?;
    client.send(
        id,
        match op {
            WriteOp::Set => Body::SetMetadata(reply),
            WriteOp::Update => Body::UpdateMetadata(reply),
            WriteOp::Remove => Body::RemoveMetadata(reply),
        },
    );
    Ok(())
}

/// The rules of a metadata write (R134–R146) for `actor`, a client's session or the
/// server API: validates, writes under the object's turn, publishes the event.
pub(crate) async fn write_metadata_as(
    node: &Node,
    actor: &Actor,
    op: WriteOp,
    req: pb::MetadataWriteRequest,
) -> Result<pb::MetadataWriteReply, Failure> {
    let store = engine(node)?;
    let target = target(actor, req.channel_type, &req.channel_name)?;
    let items = validate(actor, op, &req)?;
    let keys: Vec<String> = items.iter().map(|i| i.key.clone()).collect();
    let now = now_ms();
    let write = MetadataWrite {
        op,
        items,
        major_revision: req.major_revision.unwrap_or(NO_CHECK),
        lock_gate: (!req.lock_name.is_empty())
            .then(|| (req.lock_name.as_str().into(), actor.user.clone())),
        timestamp_ms: req.add_timestamp.then_some(now),
        author: req.add_user_id.then(|| actor.user.clone()),
    };
    // The write and its event under the object's turn: events in write order.
    let _turn = node.turns.take(&target.object).await;
    let obj = match store.write(&target.object, write).await {
        Ok(Ok(obj)) => obj,
        Ok(Err(Rejection::Outdated(reason))) => {
            return Err(Failure::new(ErrorCode::StorageOutdatedRevision, reason));
        }
        Ok(Err(Rejection::LockNotHeld)) => {
            return Err(Failure::new(
                ErrorCode::StorageLockNotAcquired,
                format!(
                    "the write is gated by lock {:?}, which you do not hold (R143)",
                    req.lock_name
                ),
            ));
        }
        Err(e) => return Err(storage_failure(&e)),
    };
    // User metadata: the event names the user whose metadata changed; channel
    // metadata: the writer (api.md §9.5).
    let publisher = if target.channel_type == pb::ChannelType::User {
        target.name.as_str()
    } else {
        &actor.user
    };
    let ev = event(&target, pb::StorageEventType::Update, publisher, &obj);
    crate::node::hub::publish_event(
        &*node.broker,
        &target.events,
        EventKind::Storage,
        &actor.user,
        prost::Message::encode_to_vec(&ev),
    )
    .await;
    hooks::happened(
        node,
        &Happening::Metadata {
            object: &target.object,
            op,
            by: &actor.user,
            keys: &keys,
            data: &obj,
        },
    );
    Ok(pb::MetadataWriteReply {
        timestamp: now_ms(),
        channel_type: target.channel_type as i32,
        channel_name: target.name,
        total_count: u32::try_from(obj.items.len()).unwrap_or(u32::MAX),
        major_revision: obj.major_revision,
    })
}

/// `get…Metadata`: the complete object; never written → empty, revision −1.
pub(crate) async fn get_metadata(
    client: &mut Client,
    id: u32,
    req: pb::GetMetadataRequest,
) -> Result<(), Failure> {
    let session = client.session()?;
    let reply = get_metadata_as(&client.node, &session.actor(), req).await?;
    client.send(id, Body::GetMetadata(reply));
    Ok(())
}

/// The rules of `get…Metadata` in `actor`'s app (an empty USER name = the actor).
pub(crate) async fn get_metadata_as(
    node: &Node,
    actor: &Actor,
    req: pb::GetMetadataRequest,
) -> Result<pb::GetMetadataReply, Failure> {
    let store = engine(node)?;
    let target = target(actor, req.channel_type, &req.channel_name)?;
    let obj = store
        .get(&target.object)
        .await
        .map_err(|e| storage_failure(&e))?;
    Ok(pb::GetMetadataReply {
        timestamp: now_ms(),
        channel_type: target.channel_type as i32,
        channel_name: target.name,
        data: Some(to_pb(&obj)),
    })
}

/// `subscribeUserMetadata`: a SNAPSHOT, then an UPDATE per change (R147, R148).
pub(crate) async fn subscribe_user_metadata(
    client: &mut Client,
    id: u32,
    req: pb::SubscribeUserMetadataRequest,
) -> Result<(), Failure> {
    let session = client.session()?;
    engine(&client.node)?;
    names::validate_user_id(&req.user_id, session.app.limits.name_rules())?;
    let user: Arc<str> = req.user_id.as_str().into();
    let max = session.app.limits.max_user_metadata_subscriptions;
    {
        let st = session.lock();
        if !st.user_metadata.contains(&user) && st.user_metadata.len() >= max {
            return Err(Failure::new(
                ErrorCode::StorageSubscribeUserExceedLimitation,
                format!("already following the metadata of {max} users, the limit"),
            ));
        }
    }
    let key = session.user_metadata_key(&user);
    session.outlet.hold(&client.out, key.clone());
    let sub = Subscriber {
        session: session.id,
        outlet: session.outlet.clone(),
        filter: Filter::user_metadata(&session.user),
    };
    let node = client.node.clone();
    if let Err(e) = node.hub.subscribe(&*node.broker, &key, sub).await {
        session.outlet.release(&client.out, &key, None);
        return Err(storage_failure(&e));
    }
    let ended = {
        let mut st = session.lock();
        if !st.ended {
            st.user_metadata.insert(user.clone());
        }
        st.ended
    };
    if ended {
        node.hub.unsubscribe(&*node.broker, &key, session.id).await;
        session.outlet.release(&client.out, &key, None);
        return Err(Failure::new(ErrorCode::NotLogin, "the session ended"));
    }
    let position = node.broker.position(&key).await.unwrap_or_default();
    client.send(
        id,
        Body::SubscribeUserMetadata(pb::UserMetadataSubscriptionReply {
            timestamp: now_ms(),
            user_id: req.user_id,
        }),
    );
    if let Some(snapshot) = user_snapshot(&node, &session, &user).await {
        client.push_wait(snapshot).await;
    }
    session.outlet.release(&client.out, &key, Some(position));
    Ok(())
}

/// `unsubscribeUserMetadata` (−12015 when not subscribed).
pub(crate) async fn unsubscribe_user_metadata(
    client: &mut Client,
    id: u32,
    req: pb::UnsubscribeUserMetadataRequest,
) -> Result<(), Failure> {
    let session = client.session()?;
    names::validate_user_id(&req.user_id, session.app.limits.name_rules())?;
    if !session.lock().user_metadata.remove(req.user_id.as_str()) {
        return Err(Failure::new(
            ErrorCode::StorageNotSubscribe,
            format!("not subscribed to the metadata of {}", req.user_id),
        ));
    }
    let key = session.user_metadata_key(&req.user_id);
    client
        .node
        .hub
        .unsubscribe(&*client.node.broker, &key, session.id)
        .await;
    client.send(
        id,
        Body::UnsubscribeUserMetadata(pb::UserMetadataSubscriptionReply {
            timestamp: now_ms(),
            user_id: req.user_id,
        }),
    );
    Ok(())
}

/// Storage's part in the session lifecycle.
pub(crate) struct StorageHooks;

#[async_trait::async_trait]
impl Hooks for StorageHooks {
    async fn snapshot(
        &self,
        node: &Node,
        key: &ChannelKey,
        position: StreamPosition,
        wants: Wants,
    ) -> Option<Body> {
        if !wants.metadata {
            return None;
        }
        channel_snapshot(node, key, position).await
    }

    /// After a resume: a fresh SNAPSHOT of every followed user's metadata, since its
    /// events were not kept while the connection was away (R148).
    async fn resumed(&self, client: &mut Client, session: &Arc<Session>) {
        let users: Vec<Arc<str>> = session.lock().user_metadata.iter().cloned().collect();
        for user in users {
            let key = session.user_metadata_key(&user);
            session.outlet.hold(&client.out, key.clone());
            let position = client.node.broker.position(&key).await.unwrap_or_default();
            if let Some(snapshot) = user_snapshot(&client.node, session, &user).await {
                client.push_wait(snapshot).await;
            }
            session.outlet.release(&client.out, &key, Some(position));
        }
    }

    /// Stops every user-metadata subscription of the ended session.
    async fn ended(&self, node: &Arc<Node>, session: &Session, ended: &Ended) {
        for user in &ended.user_metadata {
            let key = session.user_metadata_key(user);
            node.hub.unsubscribe(&*node.broker, &key, session.id).await;
        }
    }
}
