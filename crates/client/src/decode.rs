//! Conversions between the wire (protocol buffers) and the SDK's types that more than
//! one module needs: the connection task decodes every push with them, and the feature
//! handles decode their replies with them (positions, channel types, payloads, message,
//! topic, presence, storage and lock events). Pure functions, no state.

use crate::types::{
    ChannelType, IntervalDetail, LockDetail, LockEvent, LockEventType, MessageEvent,
    MetadataDetail, Payload, PresenceEvent, PresenceEventType, PublishInfo, StorageData,
    StorageEvent, StorageEventType, StorageType, StreamPosition, TopicDetail, TopicEvent,
    TopicEventType, UserState,
};
use switchboard_protocol::pb;

/// A wire position as the SDK's (zero when absent).
pub(crate) fn position(p: Option<pb::StreamPosition>) -> StreamPosition {
    p.map(|p| StreamPosition {
        epoch: p.epoch,
        offset: p.offset,
    })
    .unwrap_or_default()
}

/// The SDK's channel type of a wire value; `None` for an unknown one.
pub(crate) fn channel_type_of(wire: i32) -> Option<ChannelType> {
    match pb::ChannelType::try_from(wire) {
        Ok(pb::ChannelType::Message) => Some(ChannelType::Message),
        Ok(pb::ChannelType::Stream) => Some(ChannelType::Stream),
        Ok(pb::ChannelType::User) => Some(ChannelType::User),
        _ => None,
    }
}

/// The wire value of a channel type.
pub(crate) fn wire_type(channel_type: ChannelType) -> i32 {
    match channel_type {
        ChannelType::Message => pb::ChannelType::Message as i32,
        ChannelType::Stream => pb::ChannelType::Stream as i32,
        ChannelType::User => pb::ChannelType::User as i32,
    }
}

/// A received payload of wire type `message_type` as the app's: text for STRING (bytes
/// if it is not UTF-8 after all), bytes for BINARY.
pub(crate) fn app_payload(message_type: i32, payload: bytes::Bytes) -> Payload {
    if message_type == pb::MessageType::String as i32 {
        match String::from_utf8(payload.to_vec()) {
            Ok(s) => Payload::Text(s),
            Err(e) => Payload::Binary(e.into_bytes().into()),
        }
    } else {
        Payload::Binary(payload)
    }
}

/// A payload as sent: its message type and bytes (text as UTF-8).
pub(crate) fn wire_payload(message: Payload) -> (pb::MessageType, bytes::Bytes) {
    match message {
        Payload::Text(s) => (pb::MessageType::String, bytes::Bytes::from(s)),
        Payload::Binary(b) => (pb::MessageType::Binary, b),
    }
}

/// Converts a message push into the app's event.
pub(crate) fn message_event(m: pb::MessagePush) -> MessageEvent {
    let channel_type = match pb::ChannelType::try_from(m.channel_type) {
        Ok(pb::ChannelType::User) => ChannelType::User,
        Ok(pb::ChannelType::Stream) => ChannelType::Stream,
        _ => ChannelType::Message,
    };
    let message = app_payload(m.message_type, m.payload);
    MessageEvent {
        channel_type,
        channel_name: m.channel_name,
        topic_name: m.topic_name,
        message,
        custom_type: m.custom_type,
        publisher: m.publisher,
        timestamp: m.timestamp,
        position: position(m.position),
        send_ts: m.send_ts,
    }
}

/// Converts a topic event push into the app's event; `None` for an unknown type.
pub(crate) fn topic_event(t: pb::TopicEvent) -> Option<TopicEvent> {
    let event_type = match pb::TopicEventType::try_from(t.event_type) {
        Ok(pb::TopicEventType::Snapshot) => TopicEventType::Snapshot,
        Ok(pb::TopicEventType::RemoteJoin) => TopicEventType::RemoteJoin,
        Ok(pb::TopicEventType::RemoteLeave) => TopicEventType::RemoteLeave,
        _ => return None,
    };
    let topic_infos: Vec<TopicDetail> = t
        .topics
        .into_iter()
        .map(|info| {
            let publishers: Vec<PublishInfo> = info
                .publishers
                .into_iter()
                .map(|p| PublishInfo {
                    publisher_user_id: p.user_id,
                    publisher_meta: p.meta,
                })
                .collect();
            TopicDetail {
                topic_name: info.topic_name,
                total_publisher: u32::try_from(publishers.len()).unwrap_or(u32::MAX),
                publishers,
            }
        })
        .collect();
    Some(TopicEvent {
        event_type,
        channel_name: t.channel_name,
        publisher: t.publisher,
        total_topics: u32::try_from(topic_infos.len()).unwrap_or(u32::MAX),
        topic_infos,
        timestamp: t.timestamp,
        position: position(t.position),
    })
}

/// Converts a presence event push into the app's event; `None` for an unknown type or
/// a channel type presence does not have.
pub(crate) fn presence_event(p: pb::PresenceEvent) -> Option<PresenceEvent> {
    let event_type = match pb::PresenceEventType::try_from(p.event_type) {
        Ok(pb::PresenceEventType::Snapshot) => PresenceEventType::Snapshot,
        Ok(pb::PresenceEventType::Interval) => PresenceEventType::Interval,
        Ok(pb::PresenceEventType::RemoteJoin) => PresenceEventType::RemoteJoin,
        Ok(pb::PresenceEventType::RemoteLeave) => PresenceEventType::RemoteLeave,
        Ok(pb::PresenceEventType::RemoteTimeout) => PresenceEventType::RemoteTimeout,
        Ok(pb::PresenceEventType::RemoteStateChanged) => PresenceEventType::RemoteStateChanged,
        Ok(pb::PresenceEventType::ErrorOutOfService) => PresenceEventType::ErrorOutOfService,
        _ => return None,
    };
    let channel_type = match pb::ChannelType::try_from(p.channel_type) {
        Ok(pb::ChannelType::Message) => ChannelType::Message,
        Ok(pb::ChannelType::Stream) => ChannelType::Stream,
        _ => return None,
    };
    let states = |list: Vec<pb::UserState>| -> Vec<UserState> {
        list.into_iter()
            .map(|u| UserState::new(u.user_id, u.states))
            .collect()
    };
    let interval = (event_type == PresenceEventType::Interval).then(|| {
        let d = p.interval.unwrap_or_default();
        IntervalDetail {
            join: d.join.into(),
            leave: d.leave.into(),
            timeout: d.timeout.into(),
            user_state_list: states(d.user_state_list),
            total_occupancy: d.total_occupancy,
        }
    });
    let snapshot = (event_type == PresenceEventType::Snapshot).then(|| states(p.snapshot));
    Some(PresenceEvent {
        event_type,
        channel_type,
        channel_name: p.channel_name,
        publisher: p.publisher,
        state_changed: p.state_changed.into_iter().collect(),
        interval,
        snapshot,
        timestamp: p.timestamp,
        position: position(p.position),
    })
}

/// Converts a wire metadata object.
pub(crate) fn storage_data(m: Option<pb::Metadata>) -> StorageData {
    let Some(m) = m else {
        return StorageData::default();
    };
    StorageData {
        total_count: m.total_count,
        major_revision: m.major_revision,
        items: m
            .items
            .into_iter()
            .map(|d| {
                (
                    d.key,
                    MetadataDetail {
                        value: d.value,
                        revision: d.revision,
                        updated: d.updated,
                        author_uid: d.author_uid,
                    },
                )
            })
            .collect(),
    }
}

/// Converts a storage event push into the app's event; `None` for an unknown type.
pub(crate) fn storage_event(s: pb::StorageEvent) -> Option<StorageEvent> {
    let event_type = match pb::StorageEventType::try_from(s.event_type) {
        Ok(pb::StorageEventType::Set) => StorageEventType::Set,
        Ok(pb::StorageEventType::Snapshot) => StorageEventType::Snapshot,
        Ok(pb::StorageEventType::Remove) => StorageEventType::Remove,
        Ok(pb::StorageEventType::Update) => StorageEventType::Update,
        _ => return None,
    };
    let channel_type = channel_type_of(s.channel_type)?;
    let storage_type = match pb::StorageType::try_from(s.storage_type) {
        Ok(pb::StorageType::User) => StorageType::User,
        Ok(pb::StorageType::Channel) => StorageType::Channel,
        // Unset: the channel type says which.
        _ if channel_type == ChannelType::User => StorageType::User,
        _ => StorageType::Channel,
    };
    Some(StorageEvent {
        channel_type,
        channel_name: s.channel_name,
        publisher: s.publisher,
        storage_type,
        event_type,
        data: storage_data(s.data),
        timestamp: s.timestamp,
        position: position(s.position),
    })
}

pub(crate) fn lock_detail(l: pb::LockDetail) -> LockDetail {
    LockDetail {
        lock_name: l.lock_name,
        owner: l.owner,
        ttl: l.ttl,
    }
}

/// Converts a lock event push into the app's event; `None` for an unknown type.
pub(crate) fn lock_event(l: pb::LockEvent) -> Option<LockEvent> {
    let event_type = match pb::LockEventType::try_from(l.event_type) {
        Ok(pb::LockEventType::Snapshot) => LockEventType::Snapshot,
        Ok(pb::LockEventType::Set) => LockEventType::Set,
        Ok(pb::LockEventType::Removed) => LockEventType::Removed,
        Ok(pb::LockEventType::Acquired) => LockEventType::Acquired,
        Ok(pb::LockEventType::Released) => LockEventType::Released,
        Ok(pb::LockEventType::Expired) => LockEventType::Expired,
        _ => return None,
    };
    Some(LockEvent {
        channel_type: channel_type_of(l.channel_type)?,
        channel_name: l.channel_name,
        event_type,
        lock_name: l.lock_name,
        ttl: l.ttl,
        publisher: l.publisher,
        owner: l.owner,
        snapshot: l.snapshot.into_iter().map(lock_detail).collect(),
        timestamp: l.timestamp,
        position: position(l.position),
    })
}
