//! `client.storage()`: durable key/value metadata of a MESSAGE or STREAM channel or of a
//! user, with compare-and-set on item revisions and on the object's major revision, and
//! writes gated by a lock (api.md §6, R134–R149). Storage events arrive on the event
//! streams (`client.storage_events()`, `client.events()`): channel metadata for channels
//! subscribed or joined `with_metadata`, user metadata after `subscribe_user_metadata`;
//! and per source, as the Go SDK hands them out (api.md §14.1): one subscription's
//! (`Subscription::storage`), one stream channel's (`StreamChannel::storage_events`),
//! one user's ([`Storage::user_metadata_events`]).
//!
//! The SDK remembers the users whose metadata it subscribed to and subscribes again when
//! it has to start a new session after a reconnect (a resumed session keeps them, and
//! the server then sends a fresh SNAPSHOT).

use crate::client::Client;
use crate::decode::{channel_type_of, storage_data, wire_type};
use crate::router::{EventStream, Route, storage_of, stream_of};
use crate::types::{ChannelType, RtmError, StorageData, StorageEvent, unexpected};
use switchboard_protocol::ErrorCode;
use switchboard_protocol::pb::{self, client_message, server_message};

/// One item to write (`MetadataItem`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataItem {
    /// The item's key, unique within one call (R145).
    pub key: String,
    /// Its value (ignored by remove).
    pub value: String,
    /// Compare-and-set guard (R138): −1 (default) no check, 0 create only (set), > 0 the
    /// item's current revision.
    pub revision: i64,
}

impl MetadataItem {
    /// An item without a revision guard.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        MetadataItem {
            key: key.into(),
            value: value.into(),
            revision: -1,
        }
    }

    /// A key alone, for remove.
    pub fn key(key: impl Into<String>) -> Self {
        MetadataItem::new(key, "")
    }

    /// The same item with the revision guard `revision` (R138).
    pub fn with_revision(mut self, revision: i64) -> Self {
        self.revision = revision;
        self
    }
}

impl Default for MetadataItem {
    fn default() -> Self {
        MetadataItem::new("", "")
    }
}

/// Options of a metadata write (`MetadataOptions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataOptions {
    /// Compare-and-set guard on the whole object (R139): −1 (default) no check, 0
    /// create only (set), > 0 its current major revision.
    pub major_revision: i64,
    /// If not empty, only the current owner of this lock (in the same channel) may
    /// write (R143; −12008 otherwise).
    pub lock_name: String,
    /// Record the server time of the write in each written item's `updated` (R144).
    pub add_timestamp: bool,
    /// Record the writer in each written item's `author_uid` (R144).
    pub add_user_id: bool,
}

impl Default for MetadataOptions {
    fn default() -> Self {
        MetadataOptions {
            major_revision: -1,
            lock_name: String::new(),
            add_timestamp: false,
            add_user_id: false,
        }
    }
}

/// Options of `remove_channel_metadata` (`RemoveChannelMetadataOptions`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RemoveMetadataOptions {
    /// The items to delete (only `key` and `revision` matter); empty = every item (R137).
    pub items: Vec<MetadataItem>,
    /// Guards, lock gate and recording options.
    pub options: MetadataOptions,
}

/// Options of `set_user_metadata` / `update_user_metadata`
/// (`SetOrUpdateUserMetadataOptions`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserMetadataOptions {
    /// The user whose metadata to write; `None` = this user (R146).
    pub user_id: Option<String>,
    /// Guards, lock gate and recording options.
    pub options: MetadataOptions,
}

/// Options of `remove_user_metadata` (`RemoveUserMetadataOptions`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RemoveUserMetadataOptions {
    /// The user whose metadata to remove; `None` = this user (R146).
    pub user_id: Option<String>,
    /// The items to delete (only `key` and `revision` matter); empty = every item (R137).
    pub items: Vec<MetadataItem>,
    /// Guards, lock gate and recording options.
    pub options: MetadataOptions,
}

/// Reply of a channel metadata write (`SetChannelMetadataResponse`,
/// `UpdateChannelMetadataResponse`, `RemoveChannelMetadataResponse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelMetadataResponse {
    /// Server time, ms.
    pub timestamp: u64,
    /// The channel.
    pub channel_name: String,
    /// `Message` or `Stream`.
    pub channel_type: ChannelType,
    /// Items in the channel's metadata after the write.
    pub total_count: u32,
    /// The major revision after the write (also each written item's revision, R141).
    pub major_revision: i64,
}

/// Reply of a user metadata write (`SetUserMetadataResponse`,
/// `UpdateUserMetadataResponse`, `RemoveUserMetadataResponse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserMetadataResponse {
    /// Server time, ms.
    pub timestamp: u64,
    /// The user whose metadata was written.
    pub user_id: String,
    /// Items in the user's metadata after the write.
    pub total_count: u32,
    /// The major revision after the write (also each written item's revision, R141).
    pub major_revision: i64,
}

/// Reply of `subscribe_user_metadata` / `unsubscribe_user_metadata`
/// (`SubscribeUserMetaResponse`, `UnsubscribeUserMetaResponse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserMetadataSubscriptionResponse {
    /// Server time, ms.
    pub timestamp: u64,
    /// The user.
    pub user_id: String,
}

/// The storage handle (`RTMStorage`), from [`Client::storage`].
///
/// ```no_run
/// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::RtmError> {
/// use switchboard_client::{ChannelType, MetadataItem, MetadataOptions};
/// let storage = client.storage();
/// let ty = ChannelType::Message;
/// storage.set_channel_metadata("room", ty, [MetadataItem::new("topic", "chess")], MetadataOptions::default()).await?;
/// let data = storage.get_channel_metadata("room", ty).await?;
/// let revision = data.items["topic"].revision;
/// // Applies only if nobody changed the item since it was read.
/// let item = MetadataItem::new("topic", "go").with_revision(revision);
/// storage.update_channel_metadata("room", ty, [item], MetadataOptions::default()).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Storage {
    pub(crate) client: Client,
}

/// Which write.
#[derive(Clone, Copy)]
enum Write {
    Set,
    Update,
    Remove,
}

/// The wire type of a channel metadata call: MESSAGE or STREAM, else −10019.
fn channel_metadata_type(channel_type: ChannelType, op: &str) -> Result<i32, RtmError> {
    match channel_type {
        ChannelType::Message | ChannelType::Stream => Ok(wire_type(channel_type)),
        ChannelType::User => Err(RtmError::new(
            ErrorCode::InvalidChannelType,
            op,
            "channel metadata takes channel type MESSAGE or STREAM (user metadata has its own calls)",
        )),
    }
}

/// A guard as sent: −1 ("no check") is left unset.
fn guard(revision: i64) -> Option<i64> {
    (revision != -1).then_some(revision)
}

fn wire_items(items: impl IntoIterator<Item = MetadataItem>) -> Vec<pb::MetadataItem> {
    items
        .into_iter()
        .map(|i| pb::MetadataItem {
            key: i.key,
            value: i.value,
            revision: guard(i.revision),
        })
        .collect()
}

impl Storage {
    /// Sends one metadata write; returns the reply.
    async fn write(
        &self,
        op: &'static str,
        kind: Write,
        channel_type: i32,
        channel: String,
        items: Vec<pb::MetadataItem>,
        options: MetadataOptions,
    ) -> Result<pb::MetadataWriteReply, RtmError> {
        let req = pb::MetadataWriteRequest {
            channel_type,
            channel_name: channel,
            items,
            major_revision: guard(options.major_revision),
            lock_name: options.lock_name,
            add_timestamp: options.add_timestamp,
            add_user_id: options.add_user_id,
        };
        let body = match kind {
            Write::Set => client_message::Body::SetMetadata(req),
            Write::Update => client_message::Body::UpdateMetadata(req),
            Write::Remove => client_message::Body::RemoveMetadata(req),
        };
        match (kind, self.client.request(op, body).await?) {
            (Write::Set, server_message::Body::SetMetadata(r))
            | (Write::Update, server_message::Body::UpdateMetadata(r))
            | (Write::Remove, server_message::Body::RemoveMetadata(r)) => Ok(r),
            _ => Err(unexpected(op)),
        }
    }

    /// A channel metadata write.
    async fn channel_write(
        &self,
        op: &'static str,
        kind: Write,
        channel: &str,
        channel_type: ChannelType,
        items: Vec<pb::MetadataItem>,
        options: MetadataOptions,
    ) -> Result<ChannelMetadataResponse, RtmError> {
        let wire = channel_metadata_type(channel_type, op)?;
        let r = self
            .write(op, kind, wire, channel.to_string(), items, options)
            .await?;
        Ok(ChannelMetadataResponse {
            timestamp: r.timestamp,
            channel_name: r.channel_name,
            channel_type: channel_type_of(r.channel_type).unwrap_or(channel_type),
            total_count: r.total_count,
            major_revision: r.major_revision,
        })
    }

    /// A user metadata write (`user_id` `None` = this user).
    async fn user_write(
        &self,
        op: &'static str,
        kind: Write,
        user_id: Option<String>,
        items: Vec<pb::MetadataItem>,
        options: MetadataOptions,
    ) -> Result<UserMetadataResponse, RtmError> {
        let wire = pb::ChannelType::User as i32;
        let target = user_id.unwrap_or_default();
        let r = self
            .write(op, kind, wire, target.clone(), items, options)
            .await?;
        Ok(UserMetadataResponse {
            timestamp: r.timestamp,
            user_id: match (r.channel_name.is_empty(), target.is_empty()) {
                (false, _) => r.channel_name,
                (true, false) => target,
                (true, true) => self.client.user_id().to_string(),
            },
            total_count: r.total_count,
            major_revision: r.major_revision,
        })
    }

    /// Creates or overwrites the listed items of a channel's metadata, keeping the
    /// others (`setChannelMetadata`, R135); atomic (R142), guarded by item revisions
    /// (R138), the major revision (R139) and the lock gate (R143).
    pub async fn set_channel_metadata(
        &self,
        channel: &str,
        channel_type: ChannelType,
        items: impl IntoIterator<Item = MetadataItem>,
        options: MetadataOptions,
    ) -> Result<ChannelMetadataResponse, RtmError> {
        let items = wire_items(items);
        self.channel_write(
            "setChannelMetadata",
            Write::Set,
            channel,
            channel_type,
            items,
            options,
        )
        .await
    }

    /// Overwrites the listed items, all of which must exist (`updateChannelMetadata`;
    /// −12014 and nothing changes otherwise, R136).
    pub async fn update_channel_metadata(
        &self,
        channel: &str,
        channel_type: ChannelType,
        items: impl IntoIterator<Item = MetadataItem>,
        options: MetadataOptions,
    ) -> Result<ChannelMetadataResponse, RtmError> {
        let items = wire_items(items);
        self.channel_write(
            "updateChannelMetadata",
            Write::Update,
            channel,
            channel_type,
            items,
            options,
        )
        .await
    }

    /// Deletes the listed keys, or every item when none is listed
    /// (`removeChannelMetadata`, R137).
    pub async fn remove_channel_metadata(
        &self,
        channel: &str,
        channel_type: ChannelType,
        options: RemoveMetadataOptions,
    ) -> Result<ChannelMetadataResponse, RtmError> {
        let items = wire_items(options.items);
        self.channel_write(
            "removeChannelMetadata",
            Write::Remove,
            channel,
            channel_type,
            items,
            options.options,
        )
        .await
    }

    /// A channel's whole metadata (`getChannelMetadata`); never written = empty with
    /// major revision −1. Needs no subscription or join (R134).
    pub async fn get_channel_metadata(
        &self,
        channel: &str,
        channel_type: ChannelType,
    ) -> Result<StorageData, RtmError> {
        const OP: &str = "getChannelMetadata";
        let req = pb::GetMetadataRequest {
            channel_type: channel_metadata_type(channel_type, OP)?,
            channel_name: channel.to_string(),
        };
        self.get(OP, req).await
    }

    /// Sends one `GetMetadata` request and reads its data.
    async fn get(
        &self,
        op: &'static str,
        req: pb::GetMetadataRequest,
    ) -> Result<StorageData, RtmError> {
        match self
            .client
            .request(op, client_message::Body::GetMetadata(req))
            .await?
        {
            server_message::Body::GetMetadata(r) => Ok(storage_data(r.data)),
            _ => Err(unexpected(op)),
        }
    }

    /// Creates or overwrites the listed items of a user's metadata (this user's unless
    /// `options.user_id` names another, R146) (`setUserMetadata`).
    pub async fn set_user_metadata(
        &self,
        items: impl IntoIterator<Item = MetadataItem>,
        options: UserMetadataOptions,
    ) -> Result<UserMetadataResponse, RtmError> {
        let items = wire_items(items);
        self.user_write(
            "setUserMetadata",
            Write::Set,
            options.user_id,
            items,
            options.options,
        )
        .await
    }

    /// Overwrites the listed items of a user's metadata, all of which must exist
    /// (`updateUserMetadata`, R136).
    pub async fn update_user_metadata(
        &self,
        items: impl IntoIterator<Item = MetadataItem>,
        options: UserMetadataOptions,
    ) -> Result<UserMetadataResponse, RtmError> {
        let items = wire_items(items);
        self.user_write(
            "updateUserMetadata",
            Write::Update,
            options.user_id,
            items,
            options.options,
        )
        .await
    }

    /// Deletes the listed keys of a user's metadata, or every item when none is listed
    /// (`removeUserMetadata`, R137).
    pub async fn remove_user_metadata(
        &self,
        options: RemoveUserMetadataOptions,
    ) -> Result<UserMetadataResponse, RtmError> {
        let items = wire_items(options.items);
        self.user_write(
            "removeUserMetadata",
            Write::Remove,
            options.user_id,
            items,
            options.options,
        )
        .await
    }

    /// A user's whole metadata (`getUserMetadata`); `None` = this user.
    pub async fn get_user_metadata(&self, user_id: Option<&str>) -> Result<StorageData, RtmError> {
        const OP: &str = "getUserMetadata";
        let req = pb::GetMetadataRequest {
            channel_type: pb::ChannelType::User as i32,
            channel_name: user_id.unwrap_or_default().to_string(),
        };
        self.get(OP, req).await
    }

    /// Starts storage events of `user_id`'s metadata (`subscribeUserMetadata`, R147): a
    /// SNAPSHOT, then an UPDATE with the whole metadata per change (R148). Kept across
    /// reconnects until `unsubscribe_user_metadata` or logout.
    pub async fn subscribe_user_metadata(
        &self,
        user_id: &str,
    ) -> Result<UserMetadataSubscriptionResponse, RtmError> {
        const OP: &str = "subscribeUserMetadata";
        let req = pb::SubscribeUserMetadataRequest {
            user_id: user_id.to_string(),
        };
        match self
            .client
            .request(OP, client_message::Body::SubscribeUserMetadata(req))
            .await?
        {
            server_message::Body::SubscribeUserMetadata(r) => {
                self.client
                    .inner
                    .lock()
                    .user_metadata
                    .insert(user_id.to_string());
                Ok(UserMetadataSubscriptionResponse {
                    timestamp: r.timestamp,
                    user_id: r.user_id,
                })
            }
            _ => Err(unexpected(OP)),
        }
    }

    /// Storage events of `user_id`'s metadata alone (the Go SDK's per-user channel of
    /// `SubscribeUserMetadata`), from now on: ask for it before
    /// [`Self::subscribe_user_metadata`] to get the SNAPSHOT that follows it. Lossless:
    /// read it or drop it; ends on `unsubscribe_user_metadata` of that user or logout.
    pub fn user_metadata_events(&self, user_id: &str) -> EventStream<StorageEvent> {
        let rx = self
            .client
            .inner
            .router
            .register(Route::UserStorage(user_id.to_string()));
        stream_of(rx, storage_of)
    }

    /// Stops them (`unsubscribeUserMetadata`; −12015 when not subscribed); the user's
    /// [`Self::user_metadata_events`] streams end.
    pub async fn unsubscribe_user_metadata(
        &self,
        user_id: &str,
    ) -> Result<UserMetadataSubscriptionResponse, RtmError> {
        const OP: &str = "unsubscribeUserMetadata";
        let req = pb::UnsubscribeUserMetadataRequest {
            user_id: user_id.to_string(),
        };
        let reply = self
            .client
            .request(OP, client_message::Body::UnsubscribeUserMetadata(req))
            .await;
        if reply.is_ok()
            || reply
                .as_ref()
                .is_err_and(|e| e.code == ErrorCode::StorageNotSubscribe.as_i32())
        {
            self.client.inner.lock().user_metadata.remove(user_id);
            self.client.inner.router.end_user_storage(user_id);
        }
        match reply? {
            server_message::Body::UnsubscribeUserMetadata(r) => {
                Ok(UserMetadataSubscriptionResponse {
                    timestamp: r.timestamp,
                    user_id: r.user_id,
                })
            }
            _ => Err(unexpected(OP)),
        }
    }
}

impl Client {
    /// The storage handle (api.md §6).
    pub fn storage(&self) -> Storage {
        Storage {
            client: self.clone(),
        }
    }
}
