//! The SDK's public data types, below every other module: settings, errors and basic
//! values, events, and the stream channel options and replies. Re-exported from the
//! crate root.

mod common;
mod config;
mod events;
mod stream;

pub use common::{
    ChannelType, LoginResponse, LogoutResponse, Payload, PublishOptions, PublishResponse,
    RenewTokenResponse, RtmError, StreamPosition, SubscribeOptions, SubscribeResponse,
    UnsubscribeResponse,
};
pub(crate) use common::{unexpected, wire_custom_type};
pub use config::{ClientConfig, EncryptionMode, RtmConfig};
pub use events::{
    AffectedResources, ErrorEvent, Event, IntervalDetail, Lagged, LinkStateEvent, LockDetail,
    LockEvent, LockEventType, MessageEvent, MetadataDetail, PresenceEvent, PresenceEventType,
    PublishInfo, StorageData, StorageEvent, StorageEventType, StorageType, TokenEvent,
    TokenEventType, TopicDetail, TopicEvent, TopicEventType, UserList, UserState,
};
pub use stream::{
    JoinChannelResponse, JoinOptions, JoinTopicOptions, JoinTopicResponse, LeaveChannelResponse,
    LeaveTopicResponse, PublishTopicMessageResponse, PublishTopicOptions, SubscribeTopicResponse,
    SubscribedFailedReason, TopicPriority, TopicQos, UnsubscribeTopicResponse,
};
