//! The events the app receives (api.md §9): messages, topic, presence, storage and
//! lock events, link state changes and token notices, and `Lagged`.

use super::common::{ChannelType, Payload, RtmError, StreamPosition};
use std::collections::BTreeMap;
use switchboard_protocol::{LinkOperation, LinkReason, LinkState};

/// A message (api.md §9.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageEvent {
    /// Channel type.
    pub channel_type: ChannelType,
    /// Channel name; for USER messages the publisher's user id.
    pub channel_name: String,
    /// Topic for STREAM messages, else empty.
    pub topic_name: String,
    /// The payload (its variant gives `messageType`).
    pub message: Payload,
    /// customType, empty if none.
    pub custom_type: String,
    /// Sender's user id.
    pub publisher: String,
    /// Server time, ms.
    pub timestamp: u64,
    /// Position in the channel's stream.
    pub position: StreamPosition,
    /// Topic messages: the publisher's media-calibration timestamp, ms (0 = none).
    pub send_ts: u64,
}

/// Topic event types (api.md §10.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicEventType {
    /// Every topic with every publisher: after a join, and after a rejoin.
    Snapshot,
    /// A member became a publisher of a topic.
    RemoteJoin,
    /// A member stopped publishing in a topic (or left the channel).
    RemoteLeave,
}

impl TopicEventType {
    /// The spec's literal.
    pub fn as_str(self) -> &'static str {
        match self {
            TopicEventType::Snapshot => "SNAPSHOT",
            TopicEventType::RemoteJoin => "REMOTE_JOIN",
            TopicEventType::RemoteLeave => "REMOTE_LEAVE",
        }
    }
}

/// One publisher of a topic (`PublishInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishInfo {
    /// The publisher's user id.
    pub publisher_user_id: String,
    /// Its meta, as given to `join_topic`.
    pub publisher_meta: String,
}

/// One topic with (some of) its publishers (`topicDetail`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDetail {
    /// The topic name.
    pub topic_name: String,
    /// Its publishers (SNAPSHOT: all of them; JOIN/LEAVE: the one concerned).
    pub publishers: Vec<PublishInfo>,
    /// `publishers.len()`.
    pub total_publisher: u32,
}

/// A topic event of a joined stream channel (api.md §9.4), sent to every member (R93).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicEvent {
    /// SNAPSHOT, REMOTE_JOIN or REMOTE_LEAVE.
    pub event_type: TopicEventType,
    /// The stream channel.
    pub channel_name: String,
    /// The user who joined or left a topic; empty for SNAPSHOT.
    pub publisher: String,
    /// SNAPSHOT: every topic with all its publishers; JOIN/LEAVE: the affected topic.
    pub topic_infos: Vec<TopicDetail>,
    /// `topic_infos.len()`.
    pub total_topics: u32,
    /// Server time, ms.
    pub timestamp: u64,
    /// Position in the channel's stream (SNAPSHOT: the position it was taken at).
    pub position: StreamPosition,
}

/// Presence event types (api.md §10.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PresenceEventType {
    /// Every visible member with its state: after a subscribe or join with presence.
    Snapshot,
    /// Interval mode: what happened in the channel during the last interval (R121).
    Interval,
    /// A visible member entered the channel.
    RemoteJoin,
    /// A visible member left (unsubscribe, leave, logout, kick, token expiry).
    RemoteLeave,
    /// A visible member's connection was lost for its presence timeout (R118).
    RemoteTimeout,
    /// A visible member set or removed state; `state_changed` is its whole state (R120).
    RemoteStateChanged,
    /// Joined while the presence service was unavailable (R133).
    ErrorOutOfService,
}

impl PresenceEventType {
    /// The spec's literal.
    pub fn as_str(self) -> &'static str {
        match self {
            PresenceEventType::Snapshot => "SNAPSHOT",
            PresenceEventType::Interval => "INTERVAL",
            PresenceEventType::RemoteJoin => "REMOTE_JOIN",
            PresenceEventType::RemoteLeave => "REMOTE_LEAVE",
            PresenceEventType::RemoteTimeout => "REMOTE_TIMEOUT",
            PresenceEventType::RemoteStateChanged => "REMOTE_STATE_CHANGED",
            PresenceEventType::ErrorOutOfService => "ERROR_OUT_OF_SERVICE",
        }
    }
}

/// One member and its temporary state (`UserState`, `OccupancyDetail`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserState {
    /// The member's user id.
    pub user_id: String,
    /// Its state, key → value (empty when not asked for).
    pub states: BTreeMap<String, String>,
    /// `states.len()`.
    pub states_count: u32,
}

impl UserState {
    /// A member with `states`.
    pub(crate) fn new(user_id: String, states: impl IntoIterator<Item = (String, String)>) -> Self {
        let states: BTreeMap<String, String> = states.into_iter().collect();
        UserState {
            user_id,
            states_count: u32::try_from(states.len()).unwrap_or(u32::MAX),
            states,
        }
    }
}

/// A list of users (`UserList`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserList {
    /// The user ids.
    pub users: Vec<String>,
    /// `users.len()`.
    pub user_count: u32,
}

impl From<Vec<String>> for UserList {
    fn from(users: Vec<String>) -> Self {
        UserList {
            user_count: u32::try_from(users.len()).unwrap_or(u32::MAX),
            users,
        }
    }
}

/// What changed in a channel during one interval (`IntervalDetail`, R121).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IntervalDetail {
    /// Users who entered.
    pub join: UserList,
    /// Users who left.
    pub leave: UserList,
    /// Users who timed out.
    pub timeout: UserList,
    /// Users whose state changed, with their current state.
    pub user_state_list: Vec<UserState>,
    /// Visible members of the channel now.
    pub total_occupancy: u32,
}

/// A presence event of a subscribed or joined channel (api.md §9.3), for channels
/// entered with presence (R116); never about the receiver itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceEvent {
    /// What happened.
    pub event_type: PresenceEventType,
    /// `Message` or `Stream`.
    pub channel_type: ChannelType,
    /// The channel.
    pub channel_name: String,
    /// The user the event is about; empty for SNAPSHOT and INTERVAL (R117).
    pub publisher: String,
    /// REMOTE_STATE_CHANGED: the user's whole state after the change (R120); else empty.
    pub state_changed: BTreeMap<String, String>,
    /// INTERVAL only.
    pub interval: Option<IntervalDetail>,
    /// SNAPSHOT only: every visible member with its state.
    pub snapshot: Option<Vec<UserState>>,
    /// Server time, ms.
    pub timestamp: u64,
    /// Position in the channel's stream (SNAPSHOT: the position it was taken at).
    pub position: StreamPosition,
}

/// Storage kinds (`StorageType`, api.md §10.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StorageType {
    /// A user's metadata.
    User,
    /// A MESSAGE or STREAM channel's metadata.
    Channel,
}

impl StorageType {
    /// The spec's literal.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageType::User => "USER",
            StorageType::Channel => "CHANNEL",
        }
    }
}

/// Storage event types (`StorageEventType`, api.md §10.7); the server sends SNAPSHOT
/// first after a (re)subscription and UPDATE for every later change (R148).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StorageEventType {
    /// Items were set (not sent by this server).
    Set,
    /// The whole metadata on (re)subscription.
    Snapshot,
    /// Items were removed (not sent by this server).
    Remove,
    /// The metadata changed; `data` is all of it after the change.
    Update,
}

impl StorageEventType {
    /// The spec's literal.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageEventType::Set => "SET",
            StorageEventType::Snapshot => "SNAPSHOT",
            StorageEventType::Remove => "REMOVE",
            StorageEventType::Update => "UPDATE",
        }
    }
}

/// One stored metadata item (`MetaDataDetail`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetadataDetail {
    /// The value.
    pub value: String,
    /// The item's revision (R141).
    pub revision: i64,
    /// Time of the last write with `add_timestamp`, ms; otherwise 0 (R144).
    pub updated: u64,
    /// Last writer when written with `add_user_id`; otherwise empty (R144).
    pub author_uid: String,
}

/// A whole metadata object (`StorageData`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageData {
    /// Number of items.
    pub total_count: u32,
    /// Revision of the whole object; −1 when it was never written (R139, R141).
    pub major_revision: i64,
    /// Items by key.
    pub items: BTreeMap<String, MetadataDetail>,
}

impl Default for StorageData {
    fn default() -> Self {
        StorageData {
            total_count: 0,
            major_revision: -1,
            items: BTreeMap::new(),
        }
    }
}

/// A storage event (api.md §9.5): channel metadata to members and subscribers with
/// `with_metadata`, user metadata to clients that called `subscribe_user_metadata`
/// (R147); always the complete metadata (R148).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageEvent {
    /// `Message` / `Stream`, or `User` for user metadata.
    pub channel_type: ChannelType,
    /// The channel; empty for user metadata.
    pub channel_name: String,
    /// User metadata: the user whose metadata changed; channel metadata: the writer
    /// (empty in a SNAPSHOT).
    pub publisher: String,
    /// `Channel` or `User`.
    pub storage_type: StorageType,
    /// SNAPSHOT or UPDATE (R148).
    pub event_type: StorageEventType,
    /// The complete metadata after the change.
    pub data: StorageData,
    /// Server time, ms.
    pub timestamp: u64,
    /// Channel metadata: position in the channel's stream (SNAPSHOT: where it was
    /// taken); default (zero) for user metadata.
    pub position: StreamPosition,
}

/// Lock event types (`LockEventType`, api.md §10.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockEventType {
    /// Every lock of the channel: on subscription / join with `with_lock` and after a
    /// reconnect (R157).
    Snapshot,
    /// A lock was defined.
    Set,
    /// A lock was deleted.
    Removed,
    /// A user (this one included) acquired a lock.
    Acquired,
    /// A lock was released, revoked or freed.
    Released,
    /// A lock this user owned was freed because its connection stayed lost for the
    /// lock's ttl (R153); sent to the former owner even without `with_lock`.
    Expired,
}

impl LockEventType {
    /// The spec's literal.
    pub fn as_str(self) -> &'static str {
        match self {
            LockEventType::Snapshot => "SNAPSHOT",
            LockEventType::Set => "SET",
            LockEventType::Removed => "REMOVED",
            LockEventType::Acquired => "ACQUIRED",
            LockEventType::Released => "RELEASED",
            LockEventType::Expired => "EXPIRED",
        }
    }
}

/// One lock of a channel (`LockDetail`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LockDetail {
    /// The lock's name.
    pub lock_name: String,
    /// The current owner; empty when free.
    pub owner: String,
    /// The lock's ttl, seconds.
    pub ttl: u32,
}

/// A lock event (api.md §9.6): to members and subscribers with `with_lock` (R157);
/// EXPIRED to the former owner always (R153).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockEvent {
    /// `Message` or `Stream`.
    pub channel_type: ChannelType,
    /// The channel the lock lives in.
    pub channel_name: String,
    /// What happened.
    pub event_type: LockEventType,
    /// The lock concerned; empty for SNAPSHOT.
    pub lock_name: String,
    /// The lock's ttl, seconds (0 in EXPIRED).
    pub ttl: u32,
    /// The user who caused the change.
    pub publisher: String,
    /// The owner after the change; empty = free.
    pub owner: String,
    /// SNAPSHOT only: every lock of the channel; empty otherwise.
    pub snapshot: Vec<LockDetail>,
    /// Server time, ms.
    pub timestamp: u64,
    /// Position in the channel's stream (SNAPSHOT: where it was taken; EXPIRED: in this
    /// user's own USER channel, its inbox).
    pub position: StreamPosition,
}

/// A link state change (api.md §9.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkStateEvent {
    /// New state.
    pub current_state: LinkState,
    /// Old state.
    pub previous_state: LinkState,
    /// `"MESSAGE"` for the login link, `"STREAM"` for a stream channel's own link
    /// (then `affected_channels` is that one channel).
    pub service_type: &'static str,
    /// What caused it.
    pub operation: LinkOperation,
    /// Machine-readable reason.
    pub reason_code: LinkReason,
    /// Human-readable reason.
    pub reason: String,
    /// Channels whose delivery this affects.
    pub affected_channels: Vec<String>,
    /// Channels that could not be restored (re-subscribed) after a reconnect.
    pub unrestored_channels: Vec<String>,
    /// Switchboard: channels whose missed messages could not all be recovered after a
    /// reconnect (recovery log trimmed or epoch changed); the rest were delivered.
    pub gap_channels: Vec<String>,
    /// Whether a reconnect resumed the session.
    pub is_resumed: bool,
    /// Local time, ms.
    pub timestamp: u64,
}

/// Every event of the client (api.md §14.2 `events()`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A message (of a message channel, a stream channel topic, or a user).
    Message(MessageEvent),
    /// A topic event of a joined stream channel.
    Topic(TopicEvent),
    /// A presence event of a subscribed or joined channel.
    Presence(PresenceEvent),
    /// A storage event: channel metadata (`with_metadata`) or user metadata
    /// (`subscribe_user_metadata`).
    Storage(StorageEvent),
    /// A lock event of a channel entered `with_lock`, or EXPIRED of this user's lock.
    Lock(LockEvent),
    /// A link state change: the login link, or a stream channel's own link (a server
    /// leaving a channel because its RTC token expired is one: `STREAM`, `FAILED`,
    /// `TOKEN_EXPIRED`).
    LinkState(LinkStateEvent),
    /// A credential expires in 30 s; `None` = the login token.
    TokenPrivilegeWillExpire(Option<String>),
}

/// Switchboard's `error` event (`client.error_events()`): a problem that is no call's
/// failure. Today one kind: a received channel, USER or topic message whose payload did
/// not decrypt under this client's key (api.md §2.2 `[decision]`). Such a message is
/// never delivered (not as a message, not as garbage); it is consumed (its position
/// counts as handed over, so a resume does not bring it back) and reported here with
/// `error.code` −11023 `RTM_ERROR_CHANNEL_ENCRYPT_MESSAGE_FAILED` and `error.operation`
/// `"decrypt"`: api.md §12.2 has no decryption code, and −11023 is the encryption
/// code of the table (the TypeScript SDK reports the same).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorEvent {
    /// What failed: code, reason, operation.
    pub error: RtmError,
    /// The message's channel type.
    pub channel_type: ChannelType,
    /// The message's channel (for USER messages the publisher's user id).
    pub channel_name: String,
    /// The topic of a STREAM message, else empty.
    pub topic_name: String,
    /// Who sent the message.
    pub publisher: String,
    /// Server time of the message, ms.
    pub timestamp: u64,
    /// Position of the message in its channel's stream.
    pub position: StreamPosition,
}

/// Token event types (`TokenEventType`, api.md §10.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenEventType {
    /// `WILL_EXPIRE`: the token is about to expire (or expired); renew it.
    WillExpire,
    /// `READ_PERMISSION_REVOKED`: read permission for some resources was revoked.
    ReadPermissionRevoked,
}

impl TokenEventType {
    /// The spec's literal.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenEventType::WillExpire => "WILL_EXPIRE",
            TokenEventType::ReadPermissionRevoked => "READ_PERMISSION_REVOKED",
        }
    }
}

/// What a token event is about (`affectedResources`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AffectedResources {
    /// Channels concerned: the stream channel of an RTC token; empty for the login
    /// token.
    pub message_channels: Vec<String>,
}

/// The `token` event (`TokenEvent`, api.md §9.8, R38), on `client.token_notices()`:
/// `WILL_EXPIRE` with every `tokenPrivilegeWillExpire` (the login token's, and — this
/// service's `[decision]` — a stream channel's, with the channel in
/// `affected_resources`), and when a session ends because its token expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenEvent {
    /// What happened.
    pub event_type: TokenEventType,
    /// `TokenEventReason` text.
    pub reason: String,
    /// The resources concerned.
    pub affected_resources: AffectedResources,
    /// Local time, ms.
    pub timestamp: u64,
}

/// The consumer fell this many events behind; they were skipped (api.md §9.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("event stream lagged; {0} events skipped")]
pub struct Lagged(pub u64);
