//! What the commands print: the JSON objects of SDK events and replies (the spec's
//! camelCase names, binary payloads in base64), and an SDK error explained for the
//! terminal.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value, json};
use switchboard_client::{
    ErrorCode, Event, IntervalDetail, LinkStateEvent, LockDetail, LockEvent, MessageEvent, Payload,
    PresenceEvent, RtmError, StorageData, StorageEvent, UserList, UserState,
};

/// An SDK error explained for the terminal; it keeps the code, so that a caller that
/// knows more (a lost link, see `connect::LinkWatch`) can recognise it.
#[derive(Debug)]
pub struct Explained {
    /// The SDK error code (api.md §12).
    pub code: i32,
    message: String,
}

impl std::fmt::Display for Explained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Explained {}

/// An error for the terminal. `token_given` is false when the command had no token (or
/// an empty one): then a token refusal says first that a token is missing, rather than
/// leading with what the server found wrong in the empty string.
pub(crate) fn explain(e: &RtmError, token_given: bool) -> anyhow::Error {
    let message = if !token_given && e.code == ErrorCode::InvalidToken.as_i32() {
        format!(
            "no token: this app requires a token; pass --token TOKEN or set SWITCHBOARD_TOKEN \
             (make one with `switchboard token rtm --app-id ... --app-cert ... --user-id ...`) \
             [{} failed with code {}: {}]",
            e.operation, e.code, e.reason
        )
    } else {
        format!("{} failed with code {}: {}", e.operation, e.code, e.reason)
    };
    anyhow::Error::new(Explained {
        code: e.code,
        message,
    })
}

/// JSON of a message event (api.md §9.2); binary payloads in base64.
pub fn message_json(m: &MessageEvent) -> Value {
    let (message_type, message) = match &m.message {
        Payload::Text(s) => ("STRING", json!(s)),
        Payload::Binary(b) => ("BINARY", json!(B64.encode(b))),
    };
    json!({
        "event": "message",
        "channelType": m.channel_type.as_str(),
        "channelName": m.channel_name,
        "topicName": m.topic_name,
        "messageType": message_type,
        "customType": m.custom_type,
        "message": message,
        "publisher": m.publisher,
        "timestamp": m.timestamp,
    })
}

/// JSON of a link state event (api.md §9.7).
pub fn link_json(e: &LinkStateEvent) -> Value {
    json!({
        "event": "linkState",
        "currentState": e.current_state.as_str(),
        "previousState": e.previous_state.as_str(),
        "serviceType": e.service_type,
        "operation": e.operation.as_str(),
        "reason": e.reason,
        "reasonCode": e.reason_code.as_str(),
        "affectedChannels": e.affected_channels,
        "unrestoredChannels": e.unrestored_channels,
        "isResumed": e.is_resumed,
        "timestamp": e.timestamp,
    })
}

/// JSON of a topic event (api.md §9.4).
pub fn topic_json(e: &switchboard_client::TopicEvent) -> Value {
    let infos: Vec<Value> = e
        .topic_infos
        .iter()
        .map(|t| {
            let publishers: Vec<Value> = t
                .publishers
                .iter()
                .map(|p| json!({"publisherUserId": p.publisher_user_id, "publisherMeta": p.publisher_meta}))
                .collect();
            json!({
                "topicName": t.topic_name,
                "publishers": publishers,
                "totalPublisher": t.total_publisher,
            })
        })
        .collect();
    json!({
        "event": "topic",
        "eventType": e.event_type.as_str(),
        "channelName": e.channel_name,
        "publisher": e.publisher,
        "topicInfos": infos,
        "totalTopics": e.total_topics,
        "timestamp": e.timestamp,
    })
}

/// JSON of a member and its state (`UserState`).
pub fn user_state_json(u: &UserState) -> Value {
    json!({
        "userId": u.user_id,
        "states": u.states,
        "statesCount": u.states_count,
    })
}

fn user_list_json(l: &UserList) -> Value {
    json!({"users": l.users, "userCount": l.user_count})
}

fn interval_json(d: &IntervalDetail) -> Value {
    json!({
        "join": user_list_json(&d.join),
        "leave": user_list_json(&d.leave),
        "timeout": user_list_json(&d.timeout),
        "userStateList": d.user_state_list.iter().map(user_state_json).collect::<Vec<_>>(),
        "totalOccupancy": d.total_occupancy,
    })
}

/// JSON of a presence event (api.md §9.3).
pub fn presence_json(e: &PresenceEvent) -> Value {
    json!({
        "event": "presence",
        "eventType": e.event_type.as_str(),
        "channelType": e.channel_type.as_str(),
        "channelName": e.channel_name,
        "publisher": e.publisher,
        "stateChanged": e.state_changed,
        "interval": e.interval.as_ref().map(interval_json),
        "snapshot": e.snapshot.as_ref().map(|s| s.iter().map(user_state_json).collect::<Vec<_>>()),
        "timestamp": e.timestamp,
    })
}

/// JSON of a metadata object's items, by key (`Record<string, MetaDataDetail>`).
pub fn metadata_json(d: &StorageData) -> Value {
    let items: Map<String, Value> = d
        .items
        .iter()
        .map(|(k, m)| {
            (
                k.clone(),
                json!({
                    "value": m.value,
                    "revision": m.revision,
                    "updated": m.updated,
                    "authorUid": m.author_uid,
                }),
            )
        })
        .collect();
    Value::Object(items)
}

/// JSON of a storage event (api.md §9.5).
pub fn storage_json(e: &StorageEvent) -> Value {
    json!({
        "event": "storage",
        "channelType": e.channel_type.as_str(),
        "channelName": e.channel_name,
        "publisher": e.publisher,
        "storageType": e.storage_type.as_str(),
        "eventType": e.event_type.as_str(),
        "data": {
            "totalCount": e.data.total_count,
            "majorRevision": e.data.major_revision,
            "metadata": metadata_json(&e.data),
        },
        "timestamp": e.timestamp,
    })
}

/// JSON of one lock's details (`LockDetail`).
pub fn detail_json(d: &LockDetail) -> Value {
    json!({"lockName": d.lock_name, "owner": d.owner, "ttl": d.ttl})
}

/// JSON of a lock event (api.md §9.6).
pub fn lock_json(e: &LockEvent) -> Value {
    json!({
        "event": "lock",
        "channelType": e.channel_type.as_str(),
        "channelName": e.channel_name,
        "eventType": e.event_type.as_str(),
        "lockName": e.lock_name,
        "ttl": e.ttl,
        "publisher": e.publisher,
        "owner": e.owner,
        "snapshot": e.snapshot.iter().map(detail_json).collect::<Vec<_>>(),
        "timestamp": e.timestamp,
    })
}

/// JSON of any event `sub` prints.
pub fn event_json(e: &Event) -> Value {
    match e {
        Event::Message(m) => message_json(m),
        Event::Topic(t) => topic_json(t),
        Event::Presence(p) => presence_json(p),
        Event::Storage(s) => storage_json(s),
        Event::Lock(l) => lock_json(l),
        Event::LinkState(l) => link_json(l),
        Event::TokenPrivilegeWillExpire(c) => json!({
            "event": "tokenPrivilegeWillExpire",
            "channelName": c.clone().unwrap_or_default(),
        }),
    }
}
