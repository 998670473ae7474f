//! The hub: which local connections follow which channel. It receives the broker's
//! publications for this node, encodes each push **once** and queues the same bytes on
//! every subscriber's outbound queue. Maps are sharded; a channel's subscriber list is
//! copied on change, so a publication holds a shard's read lock only to take the list
//! (never while queueing), and node subscriptions to the broker are changed under
//! a per-shard async lock so that the first subscriber and the last unsubscriber of a
//! channel never race.

use super::outlet::Outlet;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use switchboard_engine::{
    Broker, ChannelKey, ChannelKind, EngineError, EventKind, KeyMap, MessageKind, Publication,
    PublicationHandler,
};
use switchboard_protocol::frame;
use switchboard_protocol::pb::{self, ServerMessage, server_message::Body};
use switchboard_protocol::push::MessagePushRef;

const SHARDS: usize = 64;

/// Options of one message channel subscription (R76–R81).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SubOptions {
    /// Messages of the channel (`withMessage`).
    pub with_message: bool,
    /// Presence events (`withPresence`).
    pub with_presence: bool,
    /// Invisible to others (`beQuiet`, R84–R87).
    pub be_quiet: bool,
    /// Storage events (`withMetadata`).
    pub with_metadata: bool,
    /// Lock events (`withLock`).
    pub with_lock: bool,
}

/// Options of one stream channel membership (R90).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JoinOptions {
    /// Presence events (`withPresence`).
    pub with_presence: bool,
    /// Invisible to others (`beQuiet`).
    pub be_quiet: bool,
    /// Storage events (`withMetadata`).
    pub with_metadata: bool,
    /// Lock events (`withLock`).
    pub with_lock: bool,
}

/// One local subscriber of a channel.
#[derive(Clone)]
pub(crate) struct Subscriber {
    /// Session that owns the subscription.
    pub session: u64,
    /// Where its pushes go.
    pub outlet: Arc<Outlet>,
    /// Which publications of the channel it receives.
    pub filter: Filter,
}

/// What a subscriber receives of its channel's stream.
#[derive(Clone)]
pub(crate) enum Filter {
    /// A message channel or the user's inbox: messages when `with_message` (R70).
    Message {
        /// False when subscribed with `withMessage: false`.
        with_message: bool,
        /// Presence events of the channel (R116).
        with_presence: bool,
        /// Channel storage events (R147); on the inbox, the user's own metadata.
        with_metadata: bool,
        /// Channel lock events (R157); on the inbox, EXPIRED of the user's locks.
        with_lock: bool,
        /// The subscriber's user id: presence events about itself are not sent to it.
        user: Arc<str>,
    },
    /// A stream channel member: topic events (R93) and the messages of the publishers
    /// it follows (R103).
    Stream(Arc<StreamFilter>),
}

/// A stream channel member's choices, shared between its session and the hub.
pub(crate) struct StreamFilter {
    /// The member's user id: events about itself are not sent to it.
    pub user: Arc<str>,
    /// Presence events of the channel (R116).
    pub with_presence: bool,
    /// Storage events of the channel (R147).
    pub with_metadata: bool,
    /// Lock events of the channel (R157).
    pub with_lock: bool,
    /// Followed publishers per topic.
    pub follows: RwLock<HashMap<Arc<str>, HashSet<Arc<str>>>>,
}

impl StreamFilter {
    /// A member that follows nobody yet.
    pub fn new(user: Arc<str>, options: JoinOptions) -> Self {
        StreamFilter {
            user,
            with_presence: options.with_presence,
            with_metadata: options.with_metadata,
            with_lock: options.with_lock,
            follows: RwLock::new(HashMap::new()),
        }
    }

    /// Followed publishers per topic (read).
    pub fn follows(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Arc<str>, HashSet<Arc<str>>>> {
        read(&self.follows)
    }

    /// Followed publishers per topic (write).
    pub fn follows_mut(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<Arc<str>, HashSet<Arc<str>>>> {
        write(&self.follows)
    }
}

impl Filter {
    /// A user's own inbox: messages and the EXPIRED events of its locks (R153).
    pub fn inbox(user: &Arc<str>) -> Filter {
        Filter::Message {
            with_message: true,
            with_presence: false,
            with_metadata: false,
            with_lock: true,
            user: user.clone(),
        }
    }

    /// A message channel subscription with `opts`.
    pub fn message(opts: &SubOptions, user: &Arc<str>) -> Filter {
        Filter::Message {
            with_message: opts.with_message,
            with_presence: opts.with_presence,
            with_metadata: opts.with_metadata,
            with_lock: opts.with_lock,
            user: user.clone(),
        }
    }

    /// A follower of a user's metadata: its storage events only.
    pub fn user_metadata(user: &Arc<str>) -> Filter {
        Filter::Message {
            with_message: false,
            with_presence: false,
            with_metadata: true,
            with_lock: false,
            user: user.clone(),
        }
    }

    /// Whether it follows the channel's (metadata, locks).
    pub fn wants_state(&self) -> (bool, bool) {
        match self {
            Filter::Message {
                with_metadata,
                with_lock,
                ..
            } => (*with_metadata, *with_lock),
            Filter::Stream(f) => (f.with_metadata, f.with_lock),
        }
    }

    /// Whether the subscriber receives `p`.
    pub fn accepts(&self, p: &Publication) -> bool {
        match (self, p.kind) {
            (Filter::Message { with_message, .. }, MessageKind::Text | MessageKind::Binary) => {
                *with_message
            }
            (
                Filter::Message {
                    with_presence,
                    user,
                    ..
                },
                MessageKind::Event(EventKind::Presence),
            ) => *with_presence && p.publisher != *user,
            (Filter::Message { with_metadata, .. }, MessageKind::Event(EventKind::Storage)) => {
                *with_metadata
            }
            (Filter::Message { with_lock, .. }, MessageKind::Event(EventKind::Lock)) => *with_lock,
            (Filter::Message { .. }, MessageKind::Event(_)) => false,
            (Filter::Stream(f), MessageKind::Event(EventKind::Presence)) => {
                f.with_presence && p.publisher != f.user
            }
            (Filter::Stream(f), MessageKind::Event(EventKind::Storage)) => f.with_metadata,
            (Filter::Stream(f), MessageKind::Event(EventKind::Lock)) => f.with_lock,
            (Filter::Stream(f), MessageKind::Text | MessageKind::Binary) => f
                .follows()
                .get(&p.topic)
                .is_some_and(|users| users.contains(&p.publisher)),
            (Filter::Stream(f), MessageKind::Event(EventKind::Topic)) => p.publisher != f.user,
        }
    }
}

struct Shard {
    /// Each channel's subscribers, copied on change: a publication takes the list
    /// (one reference count) and fans out after the shard's lock is released, so a
    /// big channel's fan-out never holds up the subscribes of its shard.
    subs: RwLock<KeyMap<Arc<[Subscriber]>>>,
    changes: tokio::sync::Mutex<()>,
}

/// Local subscribers by channel.
pub(crate) struct Hub {
    shards: Vec<Shard>,
    metrics: Arc<super::metrics::Metrics>,
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

impl Hub {
    /// An empty hub counting into `metrics`.
    pub fn new(metrics: Arc<super::metrics::Metrics>) -> Self {
        Hub {
            metrics,
            shards: (0..SHARDS)
                .map(|_| Shard {
                    subs: RwLock::new(KeyMap::default()),
                    changes: tokio::sync::Mutex::new(()),
                })
                .collect(),
        }
    }

    fn shard(&self, key: &ChannelKey) -> &Shard {
        &self.shards[(key.hash64() as usize) % SHARDS]
    }

    /// Adds or replaces `sub` (same session) on `key`; subscribes the node to the
    /// channel when it is the first local subscriber.
    pub async fn subscribe(
        &self,
        broker: &dyn Broker,
        key: &ChannelKey,
        sub: Subscriber,
    ) -> Result<(), EngineError> {
        let shard = self.shard(key);
        let _serial = shard.changes.lock().await;
        let first = {
            let mut map = write(&shard.subs);
            let current = map.get(key).map_or(&[][..], |l| &l[..]);
            let first = current.is_empty();
            let mut list: Vec<Subscriber> = current.to_vec();
            match list.iter_mut().find(|s| s.session == sub.session) {
                Some(existing) => *existing = sub,
                None => {
                    list.push(sub);
                    self.metrics.subscriptions.add(key.kind, 1);
                }
            }
            map.insert(key.clone(), list.into());
            first
        };
        if first {
            if let Err(e) = broker.subscribe_node(key).await {
                let mut map = write(&shard.subs);
                map.remove(key);
                self.metrics.subscriptions.add(key.kind, -1);
                return Err(e);
            }
        }
        Ok(())
    }

    /// The channels of `app` with local subscribers and how many each has (for the
    /// HTTP side's channel list; takes each shard's read lock in turn, briefly).
    pub fn channels_of(&self, app: &str) -> Vec<(ChannelKey, usize)> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let map = read(&shard.subs);
            out.extend(
                map.iter()
                    .filter(|(k, l)| &*k.app == app && !l.is_empty())
                    .map(|(k, l)| (k.clone(), l.len())),
            );
        }
        out
    }

    /// Removes `session` from `key`; unsubscribes the node after the last one. Returns
    /// whether the session was subscribed.
    pub async fn unsubscribe(&self, broker: &dyn Broker, key: &ChannelKey, session: u64) -> bool {
        let shard = self.shard(key);
        let _serial = shard.changes.lock().await;
        let (found, now_empty, old) = {
            let mut map = write(&shard.subs);
            let Some(current) = map.get(key).cloned() else {
                return false;
            };
            let list: Vec<Subscriber> = current
                .iter()
                .filter(|s| s.session != session)
                .cloned()
                .collect();
            let found = list.len() != current.len();
            if found {
                self.metrics.subscriptions.add(key.kind, -1);
            }
            let empty = list.is_empty();
            if empty {
                map.remove(key);
            } else if found {
                map.insert(key.clone(), list.into());
            }
            (found, empty, current)
        };
        // A fan-out that took the old list before it was replaced may still be pushing
        // to this session: wait for it (fan-outs never wait), so that nothing of `key`
        // reaches the session once this returns (an unsubscribe's reply is the last
        // word, R82).
        if found {
            while Arc::strong_count(&old) > 1 {
                tokio::task::yield_now().await;
            }
        }
        drop(old);
        if found && now_empty {
            // Failing to unsubscribe only costs traffic this node ignores.
            let _ = broker.unsubscribe_node(key).await;
        }
        found
    }
}

/// The encoded push of a publication: a message push, or the event it carries with its
/// position filled in. `None` for an event this server cannot decode (never sent).
pub(crate) fn push_bytes(channel: &ChannelKey, p: &Publication) -> Option<bytes::Bytes> {
    let position = Some(pb::StreamPosition {
        epoch: p.position.epoch,
        offset: p.position.offset,
    });
    let body = match p.kind {
        MessageKind::Text | MessageKind::Binary => {
            return Some(message_push(channel, p));
        }
        MessageKind::Event(EventKind::Topic) => {
            let mut event = <pb::TopicEvent as prost::Message>::decode(p.payload.clone()).ok()?;
            event.position = position;
            Body::Topic(event)
        }
        MessageKind::Event(EventKind::Presence) => {
            let mut event =
                <pb::PresenceEvent as prost::Message>::decode(p.payload.clone()).ok()?;
            event.position = position;
            Body::Presence(event)
        }
        MessageKind::Event(EventKind::Storage) => {
            let mut event = <pb::StorageEvent as prost::Message>::decode(p.payload.clone()).ok()?;
            // User metadata has its own stream, whose positions clients do not track.
            if channel.kind != ChannelKind::UserMetadata {
                event.position = position;
            }
            Body::Storage(event)
        }
        MessageKind::Event(EventKind::Lock) => {
            let mut event = <pb::LockEvent as prost::Message>::decode(p.payload.clone()).ok()?;
            event.position = position;
            Body::Lock(event)
        }
    };
    let message = ServerMessage {
        id: 0,
        body: Some(body),
    };
    Some(frame::encode(&message))
}

/// Encodes the message push of a publication from its borrowed fields (for USER
/// channels the channel name is the publisher's user id, api.md §15 #26).
fn message_push(channel: &ChannelKey, p: &Publication) -> bytes::Bytes {
    let (channel_type, channel_name) = match channel.kind {
        ChannelKind::Message => (pb::ChannelType::Message, &*channel.name),
        ChannelKind::User => (pb::ChannelType::User, &*p.publisher),
        ChannelKind::Stream => (pb::ChannelType::Stream, &*channel.name),
        ChannelKind::UserMetadata => (pb::ChannelType::User, &*channel.name),
    };
    MessagePushRef {
        channel_type: channel_type as i32,
        channel_name,
        topic_name: &p.topic,
        publisher: &p.publisher,
        message_type: match p.kind {
            MessageKind::Text => pb::MessageType::String as i32,
            _ => pb::MessageType::Binary as i32,
        },
        custom_type: &p.custom_type,
        payload: &p.payload,
        timestamp: p.timestamp_ms,
        epoch: p.position.epoch,
        offset: p.position.offset,
        send_ts: p.send_ts,
    }
    .encode()
}

/// Publishes a channel event (its `payload` already encoded) into the channel's stream,
/// so that every member on every node gets it in order with the channel's messages and
/// a resume replays it. A failure is logged: the change it reports has happened.
pub(crate) async fn publish_event(
    broker: &dyn Broker,
    channel: &ChannelKey,
    kind: EventKind,
    publisher: &str,
    payload: Vec<u8>,
) {
    let now = switchboard_protocol::now_ms();
    let publication = Publication {
        publisher: publisher.into(),
        kind: MessageKind::Event(kind),
        custom_type: switchboard_engine::shared_str(""),
        payload: bytes::Bytes::from(payload),
        topic: switchboard_engine::shared_str(""),
        send_ts: 0,
        timestamp_ms: now,
        position: Default::default(),
    };
    let options = switchboard_engine::PublishOptions::default();
    if let Err(e) = broker.publish(channel, publication, &options).await {
        tracing::warn!(channel = %channel.name, error = %e, "channel event not published");
    }
}

impl PublicationHandler for Hub {
    /// A delivery worker's poll writes each connection's pushes of that poll together.
    fn delivery_scope(&self) -> Option<Box<dyn std::any::Any>> {
        Some(Box::new(super::outbound::defer_scope()))
    }

    fn on_publication(&self, channel: &ChannelKey, publication: &Arc<Publication>) {
        let list = match read(&self.shard(channel).subs).get(channel) {
            Some(list) => list.clone(),
            None => return,
        };
        // Encode once, for the first subscriber that takes it; every other gets a clone
        // of the same bytes.
        let mut bytes = None;
        let mut delivered = 0;
        for sub in list.iter().filter(|s| s.filter.accepts(publication)) {
            if bytes.is_none() {
                bytes = push_bytes(channel, publication);
            }
            let Some(bytes) = &bytes else { return };
            sub.outlet.push(channel, publication.position, bytes);
            delivered += 1;
        }
        self.metrics.deliveries.add(channel.kind, delivered);
    }
}
