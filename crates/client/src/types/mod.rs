//! The SDK's public data types, below every other module: settings, errors and basic
//! values, events, and the stream channel options and replies. Re-exported from the
//! crate root.

mod common;
mod config;
mod events;
mod stream;

pub(crate) use common::unexpected;
pub use common::{
    ChannelType, LoginResponse, Payload, PublishOptions, PublishResponse, RtmError, StreamPosition,
    SubscribeOptions,
};
pub use config::{ClientConfig, EncryptionMode, RtmConfig};
pub use events::{
    ErrorEvent, Event, IntervalDetail, Lagged, LinkStateEvent, LockDetail, LockEvent,
    LockEventType, MessageEvent, MetadataDetail, PresenceEvent, PresenceEventType, PublishInfo,
    StorageData, StorageEvent, StorageEventType, StorageType, TopicDetail, TopicEvent,
    TopicEventType, UserList, UserState,
};
pub use stream::{
    JoinChannelResponse, JoinOptions, JoinTopicOptions, JoinTopicResponse, LeaveChannelResponse,
    LeaveTopicResponse, PublishTopicMessageResponse, PublishTopicOptions, SubscribeTopicResponse,
    SubscribedFailedReason, TopicPriority, TopicQos, UnsubscribeTopicResponse,
};
