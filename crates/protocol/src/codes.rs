//! The closed, numbered set of error codes: Agora's RTM 2.x values (api.md §12.2) and
//! Switchboard's own (−19001 onwards). Server, SDKs and docs all take them from here.

/// Defines [`ErrorCode`] and its lookup table from one list of rows.
macro_rules! error_codes {
    ($( ($variant:ident, $code:expr, $name:expr, $meaning:expr, $retry:expr) ),* $(,)?) => {
        /// An error code as it travels in `Error.code` and in SDK errors.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(i32)]
        pub enum ErrorCode {
            /// Success (`RTM_ERROR_OK`).
            Ok = 0,
            $(
                #[doc = $meaning]
                $variant = $code,
            )*
        }

        /// Every code with its name, meaning and whether retrying the same call may succeed.
        pub const ERROR_TABLE: &[ErrorInfoRow] = &[
            ErrorInfoRow { code: ErrorCode::Ok, name: "RTM_ERROR_OK", meaning: "success", retry: false },
            $( ErrorInfoRow { code: ErrorCode::$variant, name: $name, meaning: $meaning, retry: $retry }, )*
        ];
    };
}

/// One row of [`ERROR_TABLE`].
#[derive(Debug, Clone, Copy)]
pub struct ErrorInfoRow {
    /// The code.
    pub code: ErrorCode,
    /// Its constant name (Agora's `RTM_ERROR_…` or Switchboard's `SB_ERROR_…`).
    pub name: &'static str,
    /// What it means, in a few words.
    pub meaning: &'static str,
    /// Whether the same call may succeed if retried later.
    pub retry: bool,
}

impl ErrorCode {
    /// The numeric value sent on the wire.
    pub fn as_i32(self) -> i32 {
        self as i32
    }

    /// Looks a numeric value up; `None` for a code not in the table.
    pub fn from_i32(code: i32) -> Option<ErrorCode> {
        ERROR_TABLE
            .iter()
            .find(|r| r.code as i32 == code)
            .map(|r| r.code)
    }

    /// This code's row in [`ERROR_TABLE`].
    pub fn info(self) -> &'static ErrorInfoRow {
        ERROR_TABLE
            .iter()
            .find(|r| r.code == self)
            .unwrap_or(&ERROR_TABLE[0])
    }

    /// The constant name, e.g. `RTM_ERROR_INVALID_TOKEN`.
    pub fn name(self) -> &'static str {
        self.info().name
    }
}

error_codes! {
    (NotInitialized, -10001, "RTM_ERROR_NOT_INITIALIZED", "client not initialised", false),
    (NotLogin, -10002, "RTM_ERROR_NOT_LOGIN", "operation needs login", false),
    (InvalidAppId, -10003, "RTM_ERROR_INVALID_APP_ID", "bad app id", false),
    (InvalidEventHandler, -10004, "RTM_ERROR_INVALID_EVENT_HANDLER", "bad listener", false),
    (InvalidToken, -10005, "RTM_ERROR_INVALID_TOKEN", "bad token", false),
    (InvalidUserId, -10006, "RTM_ERROR_INVALID_USER_ID", "bad user id", false),
    (InitServiceFailed, -10007, "RTM_ERROR_INIT_SERVICE_FAILED", "service initialisation failed", false),
    (InvalidChannelName, -10008, "RTM_ERROR_INVALID_CHANNEL_NAME", "bad channel name", false),
    (TokenExpired, -10009, "RTM_ERROR_TOKEN_EXPIRED", "token expired", false),
    (LoginNoServerResources, -10010, "RTM_ERROR_LOGIN_NO_SERVER_RESOURCES", "no server capacity", true),
    (LoginTimeout, -10011, "RTM_ERROR_LOGIN_TIMEOUT", "login timed out", true),
    (LoginRejected, -10012, "RTM_ERROR_LOGIN_REJECTED", "login rejected by the server", false),
    (LoginAborted, -10013, "RTM_ERROR_LOGIN_ABORTED", "login aborted by an unrecoverable error", false),
    (InvalidParameter, -10014, "RTM_ERROR_INVALID_PARAMETER", "bad parameter", false),
    (LoginNotAuthorized, -10015, "RTM_ERROR_LOGIN_NOT_AUTHORIZED", "service not enabled for the app / stopped", false),
    (InconsistentAppid, -10016, "RTM_ERROR_INCONSISTENT_APPID", "token app id ≠ client app id", false),
    (DuplicateOperation, -10017, "RTM_ERROR_DUPLICATE_OPERATION", "the same login/subscribe/join is already in progress", false),
    (InstanceAlreadyReleased, -10018, "RTM_ERROR_INSTANCE_ALREADY_RELEASED", "client already released", false),
    (InvalidChannelType, -10019, "RTM_ERROR_INVALID_CHANNEL_TYPE", "channel type not allowed for this API", false),
    (InvalidEncryptionParameter, -10020, "RTM_ERROR_INVALID_ENCRYPTION_PARAMETER", "bad encryption settings", false),
    (OperationRateExceedLimitation, -10021, "RTM_ERROR_OPERATION_RATE_EXCEED_LIMITATION", "API called too often", true),
    (ServiceNotSupported, -10022, "RTM_ERROR_SERVICE_NOT_SUPPORTED", "service not offered", false),
    (LoginCanceled, -10023, "RTM_ERROR_LOGIN_CANCELED", "login cancelled by the app", false),
    (InvalidPrivateConfig, -10024, "RTM_ERROR_INVALID_PRIVATE_CONFIG", "`privateConfig` needs `serviceType` and `accessPointHosts`", false),
    (NotConnected, -10025, "RTM_ERROR_NOT_CONNECTED", "not connected right now", true),
    (RenewTokenTimeout, -10026, "RTM_ERROR_RENEW_TOKEN_TIMEOUT", "renewToken timed out", true),
    (DuplicateUserId, -10027, "RTM_ERROR_DUPLICATE_USER_ID", "another live client in this process already uses this app id + user id", false),
    (ChannelNotJoined, -11001, "RTM_ERROR_CHANNEL_NOT_JOINED", "stream channel not joined", false),
    (ChannelNotSubscribed, -11002, "RTM_ERROR_CHANNEL_NOT_SUBSCRIBED", "message channel not subscribed", false),
    (ChannelExceedTopicUserLimitation, -11003, "RTM_ERROR_CHANNEL_EXCEED_TOPIC_USER_LIMITATION", "too many followed publishers in the topic", false),
    (ChannelInReuse, -11004, "RTM_ERROR_CHANNEL_IN_REUSE", "stream channel is reused by an RTC channel", false),
    (ChannelInstanceExceedLimitation, -11005, "RTM_ERROR_CHANNEL_INSTANCE_EXCEED_LIMITATION", "too many subscribed/joined channels", false),
    (ChannelInErrorState, -11006, "RTM_ERROR_CHANNEL_IN_ERROR_STATE", "channel in a wrong state for this operation", false),
    (ChannelJoinFailed, -11007, "RTM_ERROR_CHANNEL_JOIN_FAILED", "join failed", false),
    (ChannelInvalidTopicName, -11008, "RTM_ERROR_CHANNEL_INVALID_TOPIC_NAME", "bad topic name", false),
    (ChannelInvalidMessage, -11009, "RTM_ERROR_CHANNEL_INVALID_MESSAGE", "payload is not string/bytes", false),
    (ChannelMessageLengthExceedLimitation, -11010, "RTM_ERROR_CHANNEL_MESSAGE_LENGTH_EXCEED_LIMITATION", "payload too long", false),
    (ChannelInvalidUserList, -11011, "RTM_ERROR_CHANNEL_INVALID_USER_LIST", "bad user list", false),
    (ChannelNotAvailable, -11012, "RTM_ERROR_CHANNEL_NOT_AVAILABLE", "stream channels not available for the app", false),
    (ChannelTopicNotSubscribed, -11013, "RTM_ERROR_CHANNEL_TOPIC_NOT_SUBSCRIBED", "topic not subscribed", false),
    (ChannelExceedTopicLimitation, -11014, "RTM_ERROR_CHANNEL_EXCEED_TOPIC_LIMITATION", "too many joined or subscribed topics", false),
    (ChannelJoinTopicFailed, -11015, "RTM_ERROR_CHANNEL_JOIN_TOPIC_FAILED", "joinTopic failed", false),
    (ChannelTopicNotJoined, -11016, "RTM_ERROR_CHANNEL_TOPIC_NOT_JOINED", "topic not joined", false),
    (ChannelTopicNotExist, -11017, "RTM_ERROR_CHANNEL_TOPIC_NOT_EXIST", "topic does not exist", false),
    (ChannelInvalidTopicMeta, -11018, "RTM_ERROR_CHANNEL_INVALID_TOPIC_META", "bad topic meta", false),
    (ChannelSubscribeTimeout, -11019, "RTM_ERROR_CHANNEL_SUBSCRIBE_TIMEOUT", "subscribe timed out", true),
    (ChannelSubscribeTooFrequent, -11020, "RTM_ERROR_CHANNEL_SUBSCRIBE_TOO_FREQUENT", "subscribe too often", true),
    (ChannelSubscribeFailed, -11021, "RTM_ERROR_CHANNEL_SUBSCRIBE_FAILED", "subscribe failed", false),
    (ChannelUnsubscribeFailed, -11022, "RTM_ERROR_CHANNEL_UNSUBSCRIBE_FAILED", "unsubscribe failed", false),
    (ChannelEncryptMessageFailed, -11023, "RTM_ERROR_CHANNEL_ENCRYPT_MESSAGE_FAILED", "encryption failed", false),
    (ChannelPublishMessageFailed, -11024, "RTM_ERROR_CHANNEL_PUBLISH_MESSAGE_FAILED", "publish failed", false),
    (ChannelPublishMessageTooFrequent, -11025, "RTM_ERROR_CHANNEL_PUBLISH_MESSAGE_TOO_FREQUENT", "publish rate exceeded", true),
    (ChannelPublishMessageTimeout, -11026, "RTM_ERROR_CHANNEL_PUBLISH_MESSAGE_TIMEOUT", "publish timed out", true),
    (ChannelNotConnected, -11027, "RTM_ERROR_CHANNEL_NOT_CONNECTED", "connection closed", true),
    (ChannelLeaveFailed, -11028, "RTM_ERROR_CHANNEL_LEAVE_FAILED", "leave failed", false),
    (ChannelCustomTypeLengthOverflow, -11029, "RTM_ERROR_CHANNEL_CUSTOM_TYPE_LENGTH_OVERFLOW", "customType too long", false),
    (ChannelInvalidCustomType, -11030, "RTM_ERROR_CHANNEL_INVALID_CUSTOM_TYPE", "bad customType", false),
    (ChannelUnsupportedMessageType, -11031, "RTM_ERROR_CHANNEL_UNSUPPORTED_MESSAGE_TYPE", "unsupported message type", false),
    (ChannelPresenceNotReady, -11032, "RTM_ERROR_CHANNEL_PRESENCE_NOT_READY", "presence not ready for join/subscribe", false),
    (ChannelReceiverOffline, -11033, "RTM_ERROR_CHANNEL_RECEIVER_OFFLINE", "USER message to an offline user", false),
    (ChannelJoinCanceled, -11034, "RTM_ERROR_CHANNEL_JOIN_CANCELED", "join cancelled", false),
    (ChannelReceiverOfflineButStoreSucceeded, -11035, "RTM_ERROR_CHANNEL_RECEIVER_OFFLINE_BUT_STORE_SUCCEEDED", "receiver offline; stored in history", false),
    (ChannelReceiverOfflineAndStoreFailed, -11036, "RTM_ERROR_CHANNEL_RECEIVER_OFFLINE_AND_STORE_FAILED", "receiver offline; storing failed", false),
    (ChannelMessageDeliveredButStoreFailed, -11037, "RTM_ERROR_CHANNEL_MESSAGE_DELIVERED_BUT_STORE_FAILED", "delivered; storing failed", false),
    (ChannelSubscribePermissionDenied, -11038, "RTM_ERROR_CHANNEL_SUBSCRIBE_PERMISSION_DENIED", "no permission to subscribe", false),
    (ChannelPublishPermissionDenied, -11039, "RTM_ERROR_CHANNEL_PUBLISH_PERMISSION_DENIED", "no permission to publish", false),
    (ChannelSubscribeCanceled, -11040, "RTM_ERROR_CHANNEL_SUBSCRIBE_CANCELED", "subscribe cancelled", false),
    (StorageOperationFailed, -12001, "RTM_ERROR_STORAGE_OPERATION_FAILED", "failed", false),
    (StorageMetadataItemExceedLimitation, -12002, "RTM_ERROR_STORAGE_METADATA_ITEM_EXCEED_LIMITATION", "too many items", false),
    (StorageInvalidMetadataItem, -12003, "RTM_ERROR_STORAGE_INVALID_METADATA_ITEM", "bad item / no items", false),
    (StorageInvalidArgument, -12004, "RTM_ERROR_STORAGE_INVALID_ARGUMENT", "bad argument (server side)", false),
    (StorageInvalidRevision, -12005, "RTM_ERROR_STORAGE_INVALID_REVISION", "bad revision value", false),
    (StorageMetadataLengthOverflow, -12006, "RTM_ERROR_STORAGE_METADATA_LENGTH_OVERFLOW", "request too large", false),
    (StorageInvalidLockName, -12007, "RTM_ERROR_STORAGE_INVALID_LOCK_NAME", "bad lock name", false),
    (StorageLockNotAcquired, -12008, "RTM_ERROR_STORAGE_LOCK_NOT_ACQUIRED", "write gated by a lock the caller does not hold", false),
    (StorageInvalidKey, -12009, "RTM_ERROR_STORAGE_INVALID_KEY", "bad key", false),
    (StorageInvalidValue, -12010, "RTM_ERROR_STORAGE_INVALID_VALUE", "bad value", false),
    (StorageKeyLengthOverflow, -12011, "RTM_ERROR_STORAGE_KEY_LENGTH_OVERFLOW", "key too long", false),
    (StorageValueLengthOverflow, -12012, "RTM_ERROR_STORAGE_VALUE_LENGTH_OVERFLOW", "value too long", false),
    (StorageDuplicateKey, -12013, "RTM_ERROR_STORAGE_DUPLICATE_KEY", "same key twice in one call", false),
    (StorageOutdatedRevision, -12014, "RTM_ERROR_STORAGE_OUTDATED_REVISION", "revision mismatch, or key does not exist", false),
    (StorageNotSubscribe, -12015, "RTM_ERROR_STORAGE_NOT_SUBSCRIBE", "not subscribed", false),
    (StorageInvalidMetadataInstance, -12016, "RTM_ERROR_STORAGE_INVALID_METADATA_INSTANCE", "bad metadata instance", false),
    (StorageSubscribeUserExceedLimitation, -12017, "RTM_ERROR_STORAGE_SUBSCRIBE_USER_EXCEED_LIMITATION", "too many user-metadata subscriptions", false),
    (StorageOperationTimeout, -12018, "RTM_ERROR_STORAGE_OPERATION_TIMEOUT", "timed out", true),
    (StorageNotAvailable, -12019, "RTM_ERROR_STORAGE_NOT_AVAILABLE", "storage disabled", false),
    (StoragePermissionDenied, -12020, "RTM_ERROR_STORAGE_PERMISSION_DENIED", "no permission", false),
    (PresenceNotConnected, -13001, "RTM_ERROR_PRESENCE_NOT_CONNECTED", "presence not connected", true),
    (PresenceNotWritable, -13002, "RTM_ERROR_PRESENCE_NOT_WRITABLE", "temporarily not writable; retry", true),
    (PresenceInvalidArgument, -13003, "RTM_ERROR_PRESENCE_INVALID_ARGUMENT", "bad argument (e.g. empty state)", false),
    (PresenceCachedTooManyStates, -13004, "RTM_ERROR_PRESENCE_CACHED_TOO_MANY_STATES", "too many cached states", false),
    (PresenceStateCountOverflow, -13005, "RTM_ERROR_PRESENCE_STATE_COUNT_OVERFLOW", "too many state keys", false),
    (PresenceInvalidStateKey, -13006, "RTM_ERROR_PRESENCE_INVALID_STATE_KEY", "bad state key", false),
    (PresenceInvalidStateValue, -13007, "RTM_ERROR_PRESENCE_INVALID_STATE_VALUE", "bad state value", false),
    (PresenceStateKeySizeOverflow, -13008, "RTM_ERROR_PRESENCE_STATE_KEY_SIZE_OVERFLOW", "state key too long", false),
    (PresenceStateValueSizeOverflow, -13009, "RTM_ERROR_PRESENCE_STATE_VALUE_SIZE_OVERFLOW", "state value too long", false),
    (PresenceStateDuplicateKey, -13010, "RTM_ERROR_PRESENCE_STATE_DUPLICATE_KEY", "duplicate key", false),
    (PresenceUserNotExist, -13011, "RTM_ERROR_PRESENCE_USER_NOT_EXIST", "user not present", false),
    (PresenceOperationTimeout, -13012, "RTM_ERROR_PRESENCE_OPERATION_TIMEOUT", "timed out", true),
    (PresenceOperationFailed, -13013, "RTM_ERROR_PRESENCE_OPERATION_FAILED", "failed", false),
    (PresenceInactive, -13014, "RTM_ERROR_PRESENCE_INACTIVE", "presence not enabled for the app", false),
    (PresencePendingRequestCancelled, -13015, "RTM_ERROR_PRESENCE_PENDING_REQUEST_CANCELLED", "queued request cancelled", false),
    (PresencePendingRequestExceedLimitation, -13016, "RTM_ERROR_PRESENCE_PENDING_REQUEST_EXCEED_LIMITATION", "too many queued requests", false),
    (LockOperationFailed, -14001, "RTM_ERROR_LOCK_OPERATION_FAILED", "failed", false),
    (LockOperationTimeout, -14002, "RTM_ERROR_LOCK_OPERATION_TIMEOUT", "timed out", true),
    (LockOperationPerforming, -14003, "RTM_ERROR_LOCK_OPERATION_PERFORMING", "another operation on this lock is pending", true),
    (LockAlreadyExist, -14004, "RTM_ERROR_LOCK_ALREADY_EXIST", "lock already defined", false),
    (LockInvalidName, -14005, "RTM_ERROR_LOCK_INVALID_NAME", "bad lock name", false),
    (LockNotAcquired, -14006, "RTM_ERROR_LOCK_NOT_ACQUIRED", "caller/owner does not hold the lock", false),
    (LockAcquireFailed, -14007, "RTM_ERROR_LOCK_ACQUIRE_FAILED", "lock held by someone else", false),
    (LockNotExist, -14008, "RTM_ERROR_LOCK_NOT_EXIST", "lock not defined", false),
    (LockNotAvailable, -14009, "RTM_ERROR_LOCK_NOT_AVAILABLE", "lock service disabled", false),
    (LockPermissionDenied, -14010, "RTM_ERROR_LOCK_PERMISSION_DENIED", "no permission", false),
    (HistoryOperationFailed, -15001, "RTM_ERROR_HISTORY_OPERATION_FAILED", "failed", false),
    (HistoryInvalidTimestamp, -15002, "RTM_ERROR_HISTORY_INVALID_TIMESTAMP", "bad start/end", false),
    (HistoryOperationTimeout, -15003, "RTM_ERROR_HISTORY_OPERATION_TIMEOUT", "timed out", true),
    (HistoryOperationNotPermitted, -15004, "RTM_ERROR_HISTORY_OPERATION_NOT_PERMITTED", "not permitted", false),
    (HistoryNotAvailable, -15005, "RTM_ERROR_HISTORY_NOT_AVAILABLE", "history disabled", false),
    (HistoryPermissionDenied, -15006, "RTM_ERROR_HISTORY_PERMISSION_DENIED", "no permission", false),
    // Switchboard's own codes (error-codes.md: −19001 onwards).
    (RecoveryIncomplete, -19001, "SB_ERROR_RECOVERY_INCOMPLETE", "missed messages could not all be recovered", false),
    (Overloaded, -19002, "SB_ERROR_OVERLOADED", "server over a capacity limit (connections, queues)", true),
    (EngineUnavailable, -19003, "SB_ERROR_ENGINE_UNAVAILABLE", "the engine (store, Redis) did not answer", true),
    (BadRequest, -19004, "SB_ERROR_BAD_REQUEST", "malformed, unknown or out-of-order request", false),
    (Internal, -19005, "SB_ERROR_INTERNAL", "unexpected server error", true),
    (SessionNotFound, -19006, "SB_ERROR_SESSION_NOT_FOUND", "the session to resume no longer exists", false),
    (Unauthorized, -19007, "SB_ERROR_UNAUTHORIZED", "server API request without valid app credentials", false),
    (SessionReplaced, -19008, "SB_ERROR_SESSION_REPLACED", "the session was replaced by a newer login of the same user id (SAME_UID_LOGIN)", false),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for row in ERROR_TABLE {
            assert!(seen.insert(row.code as i32), "duplicate {}", row.name);
            assert_eq!(ErrorCode::from_i32(row.code as i32), Some(row.code));
        }
        assert_eq!(ErrorCode::InvalidToken.as_i32(), -10005);
        assert_eq!(ErrorCode::ChannelReceiverOffline.as_i32(), -11033);
        assert_eq!(
            ErrorCode::ChannelReceiverOffline.name(),
            "RTM_ERROR_CHANNEL_RECEIVER_OFFLINE"
        );
        assert!(ERROR_TABLE.len() > 120);
    }
}
