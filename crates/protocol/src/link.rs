//! Link states, operations and reason codes of the SDKs (api.md §10.10–10.12), and the
//! numbered table of reasons for which the server ends a connection or session, each
//! saying whether the client reconnects by itself. One source for server, SDKs and docs.

/// Link state of the login link or of a stream channel link (api.md §10.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkState {
    /// Not logged in.
    Idle = 0,
    /// Logging in or reconnecting.
    Connecting = 1,
    /// Logged in.
    Connected = 2,
    /// Briefly disconnected; reconnecting.
    Disconnected = 3,
    /// Disconnected for long; still reconnecting.
    Suspended = 4,
    /// Terminal failure; the app acts on the reason.
    Failed = 5,
}

impl LinkState {
    /// The spec's literal, e.g. `"CONNECTED"`.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Idle => "IDLE",
            LinkState::Connecting => "CONNECTING",
            LinkState::Connected => "CONNECTED",
            LinkState::Disconnected => "DISCONNECTED",
            LinkState::Suspended => "SUSPENDED",
            LinkState::Failed => "FAILED",
        }
    }
}

/// What caused a link state change (api.md §10.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkOperation {
    /// The app called `login`.
    Login = 0,
    /// The app called `logout`.
    Logout = 1,
    /// The app joined a stream channel.
    Join = 2,
    /// The app left a stream channel.
    Leave = 3,
    /// The server rejected or ended the session.
    ServerReject = 4,
    /// The SDK is reconnecting by itself.
    AutoReconnect = 5,
    /// The SDK reconnected.
    Reconnected = 6,
    /// Keep-alive lost.
    HeartbeatTimeout = 7,
    /// The server did not answer in time.
    ServerTimeout = 8,
    /// The network changed.
    NetworkChange = 9,
}

impl LinkOperation {
    /// The spec's literal, e.g. `"LOGIN"`.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkOperation::Login => "LOGIN",
            LinkOperation::Logout => "LOGOUT",
            LinkOperation::Join => "JOIN",
            LinkOperation::Leave => "LEAVE",
            LinkOperation::ServerReject => "SERVER_REJECT",
            LinkOperation::AutoReconnect => "AUTO_RECONNECT",
            LinkOperation::Reconnected => "RECONNECTED",
            LinkOperation::HeartbeatTimeout => "HEARTBEAT_TIMEOUT",
            LinkOperation::ServerTimeout => "SERVER_TIMEOUT",
            LinkOperation::NetworkChange => "NETWORK_CHANGE",
        }
    }
}

/// Defines [`LinkReason`] from one list of rows.
macro_rules! link_reasons {
    ($( ($variant:ident, $n:expr, $lit:expr, $meaning:expr) ),* $(,)?) => {
        /// Machine-readable reason of a link state change (`LinkStateChangeReasonCode`,
        /// api.md §10.12).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum LinkReason {
            $(
                #[doc = $meaning]
                $variant = $n,
            )*
        }

        impl LinkReason {
            /// The spec's literal, e.g. `"SAME_UID_LOGIN"`.
            pub fn as_str(self) -> &'static str {
                match self { $( LinkReason::$variant => $lit, )* }
            }

            /// The human-readable description.
            pub fn description(self) -> &'static str {
                match self { $( LinkReason::$variant => $meaning, )* }
            }
        }
    };
}

link_reasons! {
(Unknown, 0, "UNKNOWN", "unknown"),
(Login, 1, "LOGIN", "login started"),
(LoginSuccess, 2, "LOGIN_SUCCESS", "login succeeded"),
(LoginTimeout, 3, "LOGIN_TIMEOUT", "login timed out; the SDK retries or the app logs in again"),
(LoginNotAuthorized, 4, "LOGIN_NOT_AUTHORIZED", "service not enabled for the app / quota exhausted"),
(LoginRejected, 5, "LOGIN_REJECTED", "server rejected the login"),
(Relogin, 6, "RELOGIN", "login started again (from DISCONNECTED/SUSPENDED)"),
(Logout, 7, "LOGOUT", "logged out"),
(AutoReconnect, 8, "AUTO_RECONNECT", "reconnecting"),
(ReconnectTimeout, 9, "RECONNECT_TIMEOUT", "a reconnect attempt timed out; retries continue"),
(ReconnectSuccess, 10, "RECONNECT_SUCCESS", "reconnected"),
(Join, 11, "JOIN", "stream channel join started"),
(JoinSuccess, 12, "JOIN_SUCCESS", "stream channel joined"),
(JoinFailed, 13, "JOIN_FAILED", "stream channel join failed"),
(Rejoin, 14, "REJOIN", "stream channel join started again"),
(Leave, 15, "LEAVE", "stream channel left"),
(InvalidToken, 16, "INVALID_TOKEN", "token invalid"),
(TokenExpired, 17, "TOKEN_EXPIRED", "token expired"),
(InconsistentAppId, 18, "INCONSISTENT_APP_ID", "token's app id differs from the client's"),
(InvalidChannelName, 19, "INVALID_CHANNEL_NAME", "channel name invalid"),
(InvalidUserId, 20, "INVALID_USER_ID", "user id invalid"),
(NotInitialized, 21, "NOT_INITIALIZED", "client not initialised"),
(RtmServiceNotConnected, 22, "RTM_SERVICE_NOT_CONNECTED", "basic service not connected"),
(ChannelInstanceExceedLimitation, 23, "CHANNEL_INSTANCE_EXCEED_LIMITATION", "too many channels"),
(OperationRateExceedLimitation, 24, "OPERATION_RATE_EXCEED_LIMITATION", "operation rate limit exceeded"),
(ChannelInErrorState, 25, "CHANNEL_IN_ERROR_STATE", "channel in an error state"),
(PresenceNotConnected, 26, "PRESENCE_NOT_CONNECTED", "presence not connected"),
(SameUidLogin, 27, "SAME_UID_LOGIN", "the same user id logged in elsewhere (or another local instance)"),
(KickedOutByServer, 28, "KICKED_OUT_BY_SERVER", "removed by the server (e.g. banned)"),
(KeepAliveTimeout, 29, "KEEP_ALIVE_TIMEOUT", "keep-alive timed out (network, or a blocked event loop)"),
(ConnectionError, 30, "CONNECTION_ERROR", "connection error"),
(PresenceNotReady, 31, "PRESENCE_NOT_READY", "presence not ready"),
(NetworkChange, 32, "NETWORK_CHANGE", "network came back; the current reconnect is dropped and retried after 2 s"),
(ServiceNotSupported, 33, "SERVICE_NOT_SUPPORTED", "service type not offered by the deployment (`privateConfig.serviceType`)"),
(StreamChannelNotAvailable, 34, "STREAM_CHANNEL_NOT_AVAILABLE", "stream channels not available"),
(StorageNotAvailable, 35, "STORAGE_NOT_AVAILABLE", "storage not available"),
(LockNotAvailable, 36, "LOCK_NOT_AVAILABLE", "lock service not available"),
(LoginTooFrequent, 37, "LOGIN_TOO_FREQUENT", "the same user logs in too often (possibly several instances)"),}

/// Defines [`DisconnectCode`] and [`DISCONNECT_TABLE`] from one list of rows.
macro_rules! disconnect_codes {
    ($( ($variant:ident, $code:expr, $name:expr, $reconnect:expr, $reason:ident, $meaning:expr) ),* $(,)?) => {
        /// Why the server ends a connection: sent in the `Closing` push and as the
        /// WebSocket close code (private range 4000–4999).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum DisconnectCode {
            $(
                #[doc = $meaning]
                $variant = $code,
            )*
        }

        /// Every disconnect code with its name, meaning, whether the client reconnects by
        /// itself and the link state reason the SDK reports.
        pub const DISCONNECT_TABLE: &[DisconnectRow] = &[
            $( DisconnectRow { code: DisconnectCode::$variant, name: $name, reconnect: $reconnect, link_reason: LinkReason::$reason, meaning: $meaning }, )*
        ];
    };
}

/// One row of [`DISCONNECT_TABLE`].
#[derive(Debug, Clone, Copy)]
pub struct DisconnectRow {
    /// The code.
    pub code: DisconnectCode,
    /// Its constant name.
    pub name: &'static str,
    /// Whether the client reconnects (and resumes) by itself.
    pub reconnect: bool,
    /// The `linkState` reason the SDK reports.
    pub link_reason: LinkReason,
    /// What happened.
    pub meaning: &'static str,
}

disconnect_codes! {
    (Logout, 4000, "LOGOUT", false, Logout, "the client logged out"),
    (SameUidLogin, 4001, "SAME_UID_LOGIN", false, SameUidLogin, "the same user id logged in elsewhere"),
    (TokenExpired, 4002, "TOKEN_EXPIRED", false, TokenExpired, "the login token expired without renewal"),
    (Kicked, 4003, "KICKED", false, KickedOutByServer, "removed by the server (server API)"),
    (SlowConsumer, 4004, "SLOW_CONSUMER", true, ConnectionError, "the client read too slowly; its outbound queue overflowed"),
    (HeartbeatTimeout, 4005, "HEARTBEAT_TIMEOUT", true, KeepAliveTimeout, "no traffic from the client within the heartbeat timeout"),
    (Shutdown, 4006, "SHUTDOWN", true, ConnectionError, "the server is shutting down"),
    (ProtocolError, 4007, "PROTOCOL_ERROR", false, ConnectionError, "a frame that is not valid protocol"),
    (FrameTooLarge, 4008, "FRAME_TOO_LARGE", false, ConnectionError, "a frame over the server's frame size limit"),
    (LoginTimeout, 4009, "LOGIN_TIMEOUT", true, LoginTimeout, "no login request within the login timeout"),
    (LoginFailed, 4010, "LOGIN_FAILED", false, LoginRejected, "the login was refused (see the error reply)"),
    (Overloaded, 4011, "OVERLOADED", true, ConnectionError, "the server is at its connection limit"),
    (WriteTimeout, 4012, "WRITE_TIMEOUT", true, ConnectionError, "a write to the client did not complete within the write timeout"),
    (SessionExpired, 4013, "SESSION_EXPIRED", true, KeepAliveTimeout, "the session was gone when the client tried to resume; log in anew"),
}

impl DisconnectCode {
    /// The numeric value.
    pub fn as_u16(self) -> u16 {
        self as u16
    }

    /// This code's row in [`DISCONNECT_TABLE`].
    pub fn info(self) -> &'static DisconnectRow {
        DISCONNECT_TABLE
            .iter()
            .find(|r| r.code == self)
            .unwrap_or(&DISCONNECT_TABLE[0])
    }

    /// Looks a numeric value up.
    pub fn from_u32(code: u32) -> Option<DisconnectCode> {
        DISCONNECT_TABLE
            .iter()
            .find(|r| r.code as u32 == code)
            .map(|r| r.code)
    }

    /// Whether the client reconnects by itself after this code.
    pub fn reconnect(self) -> bool {
        self.info().reconnect
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disconnect_codes_are_unique_and_in_private_range() {
        let mut seen = std::collections::HashSet::new();
        for row in DISCONNECT_TABLE {
            assert!(seen.insert(row.code as u32), "duplicate {}", row.name);
            assert!((4000..5000).contains(&(row.code as u32)));
            assert_eq!(DisconnectCode::from_u32(row.code as u32), Some(row.code));
        }
        assert!(!DisconnectCode::SameUidLogin.reconnect());
        assert!(DisconnectCode::SlowConsumer.reconnect());
    }

    #[test]
    fn link_reason_literals_match_spec_numbers() {
        assert_eq!(LinkReason::SameUidLogin as u32, 27);
        assert_eq!(LinkReason::SameUidLogin.as_str(), "SAME_UID_LOGIN");
        assert_eq!(LinkReason::LoginTooFrequent as u32, 37);
    }
}

#[cfg(test)]
mod doc_tests {
    use super::*;

    /// docs/protocol.md must show every disconnect row exactly as this table has it.
    #[test]
    fn protocol_doc_lists_every_disconnect_code() {
        let doc = include_str!("../../../docs/protocol.md");
        for row in DISCONNECT_TABLE {
            let line = format!(
                "| {} | {} | {} | {} | {} |",
                row.code as u32,
                row.name,
                if row.reconnect { "yes" } else { "no" },
                row.link_reason.as_str(),
                row.meaning
            );
            assert!(doc.contains(&line), "docs/protocol.md lacks: {line}");
        }
        for row in crate::ERROR_TABLE
            .iter()
            .filter(|r| r.code.as_i32() <= -19001)
        {
            let line = format!(
                "| {} | {} | {} | {} |",
                row.code.as_i32(),
                row.name,
                if row.retry { "yes" } else { "no" },
                row.meaning
            );
            assert!(doc.contains(&line), "docs/protocol.md lacks: {line}");
        }
    }
}
