//! Switchboard Rust SDK: a client with the shape of Agora RTM 2.x in the style of its
//! Go SDK (api.md §14): `Client::new(app_id, user_id, config)`, `login`, `publish`,
//! `subscribe`, … returning `Result<_, RtmError>`, and events as async streams.
//!
//! A `Client` is a cheap handle; each login starts one connection task that owns the
//! socket. Every stream is a bounded queue: messages and topic events are lossless (a
//! slow reader slows the connection down, and the SDK resumes and recovers if the server
//! gives up on it), link-state and token notices report `Lagged(n)` rather than wait.
//! Stream channels (`client.stream_channel(name)`) are in [`StreamChannel`], presence
//! calls (`client.presence()`) in [`Presence`]; presence events are lossless like
//! messages and come on `client.presence_events()`, `Subscription::presence()` and
//! `StreamChannel::presence_events()`. Metadata (`client.storage()`) is in [`Storage`],
//! locks (`client.lock()`) in [`Lock`]; their events are lossless too and come on
//! `client.storage_events()` and `client.lock_events()`, and per source as the Go SDK
//! hands them out: `Subscription::storage()` / `locks()`,
//! `StreamChannel::storage_events()` / `lock_events()`,
//! `Storage::user_metadata_events(user)`. A stream channel's `join` hands back its topic
//! snapshot (`JoinChannelResponse::snapshot`, seed 004).
//!
//! ```no_run
//! # async fn demo() -> Result<(), switchboard_client::RtmError> {
//! use futures_util::StreamExt;
//! use switchboard_client::{Client, ClientConfig, PublishOptions, SubscribeOptions};
//!
//! let config = ClientConfig::new("ws://127.0.0.1:7400"); // `switchboard serve`
//! let client = Client::new("a1b2c3d4e5f60718293a4b5c6d7e8f90", "alice", config)?;
//! client.login("007eJx…token from your app server").await?;
//! let mut room = client.subscribe("room", SubscribeOptions::default()).await?;
//! client.publish("room", "hello", PublishOptions::default()).await?;
//! let mut messages = room.messages();
//! if let Some(Ok(m)) = messages.next().await {
//!     println!("{}: {:?}", m.publisher, m.message);
//! }
//! client.logout().await?;
//! # Ok(()) }
//! ```
//!
//! Runnable examples (chat, presence, stream topics, storage and locks, resume after a
//! network loss) are in `crates/client/examples/`; each says how to run it against
//! `switchboard serve`. End-to-end encryption: [`ClientConfig::with_encryption`].
//! `wss://` endpoints are verified against Mozilla's roots and the CA certificates of
//! [`ClientConfig::with_ca_certificate`].
//!
//! # Layout
//!
//! The modules stand in layers, each using only the ones below it
//! (`python3 scripts/module-deps.py crates/client/src` checks it):
//!
//! 1. `types` — the public data types (settings, errors, events, options, replies);
//! 2. `decode` (wire ↔ SDK conversions), `crypto` (end-to-end encryption),
//!    `transport` (TCP, TLS for `wss://`, the WebSocket upgrade),
//!    `positions` (last position per channel), `router` (where events go; the app's
//!    streams);
//! 3. `conn` — the connection task (socket, requests, heartbeats, pushes);
//! 4. `session` — shared state and the link state machine: login, loss, reconnect,
//!    resume and restore (`session::restore`), each stream channel's state
//!    (`session::channels`);
//! 5. `client` — the [`Client`] handle: login, logout, tokens, event streams, requests;
//! 6. the features, each on the layers below and never on one another: `messaging`
//!    (publish, subscribe), `stream` (stream channels and topics), `presence`,
//!    `storage`, `lock`, `history`;
//! 7. this file: declarations and re-exports only.

mod client;
mod conn;
mod crypto;
mod decode;
mod history;
mod lock;
mod messaging;
mod positions;
mod presence;
mod router;
mod session;
mod storage;
mod stream;
mod transport;
mod types;

pub use client::Client;
pub use conn::ws_config;
pub use history::{GetHistoryMessageOptions, GetMessagesResponse, History, HistoryMessage};
pub use lock::{Lock, LockResponse};
pub use messaging::Subscription;
pub use presence::{
    ChannelDetail, GetStateResponse, Presence, RemoveStateResponse, SetStateResponse,
    WhereNowResponse, WhoNowOptions, WhoNowResponse,
};
pub use router::EventStream;
pub use storage::{
    ChannelMetadataResponse, MetadataItem, MetadataOptions, RemoveMetadataOptions,
    RemoveUserMetadataOptions, Storage, UserMetadataOptions, UserMetadataResponse,
    UserMetadataSubscriptionResponse,
};
pub use stream::StreamChannel;
pub use switchboard_protocol::{ErrorCode, LinkOperation, LinkReason, LinkState};
pub use types::{
    AffectedResources, ChannelType, ClientConfig, EncryptionMode, ErrorEvent, Event,
    IntervalDetail, JoinChannelResponse, JoinOptions, JoinTopicOptions, JoinTopicResponse, Lagged,
    LeaveChannelResponse, LeaveTopicResponse, LinkStateEvent, LockDetail, LockEvent, LockEventType,
    LoginResponse, LogoutResponse, MessageEvent, MetadataDetail, Payload, PresenceEvent,
    PresenceEventType, PublishInfo, PublishOptions, PublishResponse, PublishTopicMessageResponse,
    PublishTopicOptions, RenewTokenResponse, RtmConfig, RtmError, StorageData, StorageEvent,
    StorageEventType, StorageType, StreamPosition, SubscribeOptions, SubscribeResponse,
    SubscribeTopicResponse, SubscribedFailedReason, TokenEvent, TokenEventType, TopicDetail,
    TopicEvent, TopicEventType, TopicPriority, TopicQos, UnsubscribeResponse,
    UnsubscribeTopicResponse, UserList, UserState,
};
