//! `client.lock()`: named locks of a MESSAGE or STREAM channel, each with at most one
//! owner and a ttl that starts when the owner's connection is lost (api.md §7,
//! R150–R159). Lock events arrive on the event streams (`client.lock_events()`,
//! `client.events()`) for channels subscribed or joined `with_lock`; EXPIRED of this
//! user's own locks always.
//!
//! `acquire_lock` with `retry` waits in the lock's line on the server and is answered
//! only when the lock is handed over, which may take any time: it is sent without the
//! request timeout and fails only when the server refuses it or the connection ends.

use crate::client::Client;
use crate::decode::{channel_type_of, lock_detail, wire_type};
use crate::types::{ChannelType, LockDetail, RtmError, unexpected};
use switchboard_protocol::ErrorCode;
use switchboard_protocol::pb::{self, client_message, server_message};

/// Reply of `set_lock`, `remove_lock`, `acquire_lock`, `release_lock` and `revoke_lock`
/// (`LockOperationResponse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockResponse {
    /// Server time, ms.
    pub timestamp: u64,
    /// The channel.
    pub channel_name: String,
    /// `Message` or `Stream`.
    pub channel_type: ChannelType,
    /// The lock.
    pub lock_name: String,
}

/// The lock handle (`RTMLock`), from [`Client::lock`].
///
/// ```no_run
/// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::RtmError> {
/// use switchboard_client::ChannelType;
/// let lock = client.lock();
/// lock.set_lock("room", ChannelType::Message, "referee", Some(30)).await?;
/// lock.acquire_lock("room", ChannelType::Message, "referee", false).await?;
/// // … work only the owner may do …
/// lock.release_lock("room", ChannelType::Message, "referee").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Lock {
    pub(crate) client: Client,
}

/// The wire type of a lock call: MESSAGE or STREAM, else −10019 (api.md §7).
fn lock_type(channel_type: ChannelType, op: &str) -> Result<i32, RtmError> {
    match channel_type {
        ChannelType::Message | ChannelType::Stream => Ok(wire_type(channel_type)),
        ChannelType::User => Err(RtmError::new(
            ErrorCode::InvalidChannelType,
            op,
            "locks take channel type MESSAGE or STREAM",
        )),
    }
}

/// The reply of a lock operation, as the app's response.
fn lock_response(r: pb::LockReply, channel_type: ChannelType) -> LockResponse {
    LockResponse {
        timestamp: r.timestamp,
        channel_name: r.channel_name,
        channel_type: channel_type_of(r.channel_type).unwrap_or(channel_type),
        lock_name: r.lock_name,
    }
}

impl Lock {
    /// Defines a free lock in `channel` (`setLock`): `ttl` in seconds, `None` = 10,
    /// clamped to 10–300 (R150); −14004 if it exists (R156). Subscribers with
    /// `with_lock` get SET.
    pub async fn set_lock(
        &self,
        channel: &str,
        channel_type: ChannelType,
        lock_name: &str,
        ttl: Option<u32>,
    ) -> Result<LockResponse, RtmError> {
        const OP: &str = "setLock";
        let req = pb::SetLockRequest {
            channel_type: lock_type(channel_type, OP)?,
            channel_name: channel.to_string(),
            lock_name: lock_name.to_string(),
            ttl: ttl.unwrap_or(0),
        };
        match self
            .client
            .request(OP, client_message::Body::SetLock(req))
            .await?
        {
            server_message::Body::SetLock(r) => Ok(lock_response(r, channel_type)),
            _ => Err(unexpected(OP)),
        }
    }

    /// Deletes a lock's definition and any ownership (`removeLock`; −14008 if not
    /// defined, R156). Subscribers with `with_lock` get REMOVED.
    pub async fn remove_lock(
        &self,
        channel: &str,
        channel_type: ChannelType,
        lock_name: &str,
    ) -> Result<LockResponse, RtmError> {
        const OP: &str = "removeLock";
        let req = pb::RemoveLockRequest {
            channel_type: lock_type(channel_type, OP)?,
            channel_name: channel.to_string(),
            lock_name: lock_name.to_string(),
        };
        match self
            .client
            .request(OP, client_message::Body::RemoveLock(req))
            .await?
        {
            server_message::Body::RemoveLock(r) => Ok(lock_response(r, channel_type)),
            _ => Err(unexpected(OP)),
        }
    }

    /// Makes this user the owner (`acquireLock`, R151). Held by another: without
    /// `retry` −14007 at once; with `retry` the call waits in line (served in arrival
    /// order, R152) with no request timeout, until it gets the lock, the server refuses
    /// it (e.g. the lock is removed, or this client leaves the channel or logs out), or
    /// the connection ends (then it fails with −10025 NOT_CONNECTED).
    pub async fn acquire_lock(
        &self,
        channel: &str,
        channel_type: ChannelType,
        lock_name: &str,
        retry: bool,
    ) -> Result<LockResponse, RtmError> {
        const OP: &str = "acquireLock";
        let req = pb::AcquireLockRequest {
            channel_type: lock_type(channel_type, OP)?,
            channel_name: channel.to_string(),
            lock_name: lock_name.to_string(),
            retry,
        };
        let body = client_message::Body::AcquireLock(req);
        let reply = if retry {
            self.client.request_within(OP, body, None).await?
        } else {
            self.client.request(OP, body).await?
        };
        match reply {
            server_message::Body::AcquireLock(r) => Ok(lock_response(r, channel_type)),
            _ => Err(unexpected(OP)),
        }
    }

    /// Frees a lock this user owns (`releaseLock`; −14006 otherwise, R154); the next
    /// waiter, if any, gets it.
    pub async fn release_lock(
        &self,
        channel: &str,
        channel_type: ChannelType,
        lock_name: &str,
    ) -> Result<LockResponse, RtmError> {
        const OP: &str = "releaseLock";
        let req = pb::ReleaseLockRequest {
            channel_type: lock_type(channel_type, OP)?,
            channel_name: channel.to_string(),
            lock_name: lock_name.to_string(),
        };
        match self
            .client
            .request(OP, client_message::Body::ReleaseLock(req))
            .await?
        {
            server_message::Body::ReleaseLock(r) => Ok(lock_response(r, channel_type)),
            _ => Err(unexpected(OP)),
        }
    }

    /// Frees a lock if `owner` is its current owner (`revokeLock`; −14006 otherwise,
    /// R155).
    pub async fn revoke_lock(
        &self,
        channel: &str,
        channel_type: ChannelType,
        lock_name: &str,
        owner: &str,
    ) -> Result<LockResponse, RtmError> {
        const OP: &str = "revokeLock";
        let req = pb::RevokeLockRequest {
            channel_type: lock_type(channel_type, OP)?,
            channel_name: channel.to_string(),
            lock_name: lock_name.to_string(),
            owner: owner.to_string(),
        };
        match self
            .client
            .request(OP, client_message::Body::RevokeLock(req))
            .await?
        {
            server_message::Body::RevokeLock(r) => Ok(lock_response(r, channel_type)),
            _ => Err(unexpected(OP)),
        }
    }

    /// Every lock of `channel`, ordered by name (`getLock`; `totalLocks` is the
    /// length). Needs no subscription or join (R159).
    pub async fn get_lock(
        &self,
        channel: &str,
        channel_type: ChannelType,
    ) -> Result<Vec<LockDetail>, RtmError> {
        const OP: &str = "getLock";
        let req = pb::GetLockRequest {
            channel_type: lock_type(channel_type, OP)?,
            channel_name: channel.to_string(),
        };
        match self
            .client
            .request(OP, client_message::Body::GetLock(req))
            .await?
        {
            server_message::Body::GetLock(r) => Ok(r.locks.into_iter().map(lock_detail).collect()),
            _ => Err(unexpected(OP)),
        }
    }
}

impl Client {
    /// The lock handle (api.md §7).
    pub fn lock(&self) -> Lock {
        Lock {
            client: self.clone(),
        }
    }
}
