//! Server configuration: edge limits of the node and per-app settings and limits, each
//! with the default documented in `docs/configuration.md`.

use super::clock::Clock;
use serde::Deserialize;
use std::time::Duration;
use switchboard_protocol::names::NameRules;

/// Settings of one server node.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The apps this server serves.
    pub apps: Vec<AppConfig>,
    /// Most simultaneous WebSocket connections (default 50,000); over it a new
    /// connection is closed with `OVERLOADED`.
    pub max_connections: usize,
    /// Largest WebSocket message accepted, bytes (default 1 MiB); over it the
    /// connection is closed with `FRAME_TOO_LARGE`.
    pub max_frame_bytes: usize,
    /// Largest WebSocket message accepted before login, bytes (default 64 KiB: a login
    /// with the positions of every channel a client can be in fits); over it
    /// `FRAME_TOO_LARGE`.
    pub max_frame_bytes_before_login: usize,
    /// Most TCP connections in the WebSocket handshake at once (default 1,024); past it
    /// a new connection is closed at once, before any byte is read.
    pub max_handshakes: usize,
    /// Time allowed for the WebSocket handshake (default 5 s).
    pub handshake_timeout: Duration,
    /// Most simultaneous WebSocket connections from one IP address (default 0: no
    /// limit); over it a new connection is closed with `OVERLOADED`.
    pub max_connections_per_ip: usize,
    /// Most protocol messages in one frame (default 64).
    pub max_messages_per_frame: usize,
    /// Outbound queue bound per connection, bytes (default 4 MiB). A connection over
    /// either bound is closed with `SLOW_CONSUMER`.
    pub outbound_queue_bytes: usize,
    /// Outbound queue bound per connection, queued items (default 16,384).
    pub outbound_queue_messages: usize,
    /// Live messages held back per session while its missed messages are replayed,
    /// bytes (default 16 MiB); over it the connection is closed as a slow consumer and
    /// the client resumes again from where it got to.
    pub recovery_hold_bytes: usize,
    /// Largest batch the writer puts into one frame, bytes (default 64 KiB).
    pub write_batch_bytes: usize,
    /// Time allowed from connect to a login request (default 10 s).
    pub login_timeout: Duration,
    /// Time allowed for one socket write (default 10 s); over it `WRITE_TIMEOUT`.
    pub write_timeout: Duration,
    /// Allowed heartbeat interval range, seconds (default 5–1800, api.md R17).
    pub heartbeat_interval_range: (u32, u32),
    /// Allowed presence timeout range, seconds (default 5–300, api.md R16).
    pub presence_timeout_range: (u32, u32),
    /// How long before a credential's expiry the will-expire push goes out (30 s, T54).
    pub token_will_expire_lead: Duration,
    /// How long graceful shutdown waits for connections to close (default 5 s).
    pub shutdown_grace: Duration,
    /// `Origin` values a browser may open a WebSocket from (`scheme://host[:port]`, or
    /// `*`), for the apps without a list of their own; empty (the default): any.
    pub allowed_origins: Vec<String>,
    /// The wall clock tokens are checked against and their expiries scheduled by (the
    /// system clock; a test moves a [`Clock::shifted`] one to jump it).
    pub clock: Clock,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            apps: Vec::new(),
            max_connections: 50_000,
            max_frame_bytes: 1024 * 1024,
            max_frame_bytes_before_login: 64 * 1024,
            max_handshakes: 1024,
            handshake_timeout: Duration::from_secs(5),
            max_connections_per_ip: 0,
            max_messages_per_frame: 64,
            outbound_queue_bytes: 4 * 1024 * 1024,
            outbound_queue_messages: 16_384,
            recovery_hold_bytes: 16 * 1024 * 1024,
            write_batch_bytes: 64 * 1024,
            login_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            heartbeat_interval_range: (5, 1800),
            presence_timeout_range: (5, 300),
            token_will_expire_lead: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(5),
            allowed_origins: Vec::new(),
            clock: Clock::system(),
        }
    }
}

/// One app (tenant). Its `Debug` never shows the certificate or the API secret.
#[derive(Clone, Deserialize)]
pub struct AppConfig {
    /// 32 alphanumeric characters.
    pub id: String,
    /// 32 hex characters; `None` turns token checking off for the app (development only).
    #[serde(default)]
    pub certificate: Option<String>,
    /// The server API key of this app (HTTP Basic user name); `None` = no server API.
    #[serde(default)]
    pub api_key: Option<String>,
    /// The server API secret of this app (HTTP Basic password).
    #[serde(default)]
    pub api_secret: Option<String>,
    /// Limits of this app.
    #[serde(default)]
    pub limits: AppLimits,
    /// The token checks token.md lets a deployment turn on (`[apps.tokens]`).
    #[serde(default)]
    pub tokens: TokenOptions,
    /// This app's own origin allow-list, in place of the node's (`allowed_origins`);
    /// `None` (the default): the node's. A browser login from another origin fails
    /// with −10012.
    #[serde(default)]
    pub allowed_origins: Option<Vec<String>>,
    /// This app's own webhook receiver, event filter and debounce (`[apps.webhooks]`);
    /// `None` = the server's (`--webhook-*`).
    #[serde(default)]
    pub webhooks: Option<AppWebhooks>,
}

/// An app's webhook settings (`[apps.webhooks]`); each unset one is the server's. Its
/// `Debug` never shows the secret.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct AppWebhooks {
    /// The app's own receiver (`http://` or `https://`, with `secret`); `None` = the
    /// server's receiver.
    pub url: Option<String>,
    /// The secret that signs the events sent to `url`.
    pub secret: Option<String>,
    /// Events to send (names of `WEBHOOK_EVENTS`); `None` = the server's filter, empty
    /// = all.
    pub events: Option<Vec<String>>,
    /// Debounce of a leave followed by a join of the same user in the same channel, ms
    /// (0 = off); `None` = the server's.
    pub debounce_ms: Option<u64>,
}

impl std::fmt::Debug for AppWebhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppWebhooks")
            .field("url", &self.url)
            .field("secret", &self.secret.as_ref().map(|_| "<secret>"))
            .field("events", &self.events)
            .field("debounce_ms", &self.debounce_ms)
            .finish()
    }
}

/// Token checks of an app beyond the defaults of token.md (section 16); each off by
/// default.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct TokenOptions {
    /// Most seconds a token's `issue_ts` may lie ahead of the server's clock (T34);
    /// `None` = any (the default). Past it `ISSUED_IN_FUTURE`, −10005.
    pub max_clock_skew_secs: Option<u32>,
    /// Accept an RTM2 service (type 8) for login in place of an RTM one (T46; default
    /// false: such a token is refused with `SERVICE_MISSING`, −10005). Its permission
    /// tree is enforced only with `rtm2_permissions`.
    pub accept_rtm2: bool,
    /// RTM2 resource permissions (T46, token.md §16): a session logged in with an RTM2
    /// token (`accept_rtm2`) may only do what its permission tree grants (read or write
    /// on message channels, stream channels and users, docs/token.md); anything else is
    /// refused with the area's permission code. Default false: the tree is parsed and
    /// not enforced. Sessions logged in with an RTM token are never bounded.
    pub rtm2_permissions: bool,
    /// Publisher authentication (T51): `joinTopic` and `publishTopicMessage` need the
    /// stream channel's RTC token to carry publishDataStream (privilege 4), unlapsed;
    /// else −10005 (missing) or −10009 (lapsed). Default false.
    pub publisher_authentication: bool,
    /// Longest token lifetime honoured, seconds (T33; `None`, the default, = no limit):
    /// a token counts as expired (−10009) once this long past its `issue_ts`, whatever
    /// its `expire` says, and its effective expiry is capped there.
    pub max_lifetime_secs: Option<u32>,
}

impl TokenOptions {
    /// The verifier options these imply.
    pub fn verify_options(&self) -> switchboard_token::VerifyOptions {
        switchboard_token::VerifyOptions {
            max_clock_skew: self.max_clock_skew_secs,
            accept_rtm2: self.accept_rtm2,
            max_lifetime: self.max_lifetime_secs,
        }
    }
}

impl std::fmt::Debug for AppConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppConfig")
            .field("id", &self.id)
            .field(
                "certificate",
                &self.certificate.as_ref().map(|_| "<secret>"),
            )
            .field("api_key", &self.api_key)
            .field("api_secret", &self.api_secret.as_ref().map(|_| "<secret>"))
            .field("limits", &self.limits)
            .field("tokens", &self.tokens)
            .field("allowed_origins", &self.allowed_origins)
            .field("webhooks", &self.webhooks)
            .finish()
    }
}

/// Per-app limits; defaults are the spec's.
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct AppLimits {
    /// Largest message payload, bytes (32,768, R63).
    pub max_payload_bytes: usize,
    /// Publishes per second per channel, all publishers together (60, R67); 0 = unlimited.
    pub publish_rate_per_channel: u32,
    /// Burst allowance of the publish rate (default = the rate).
    pub publish_burst: Option<u32>,
    /// Most subscribed message channels per client (100, R77).
    pub max_subscriptions: usize,
    /// Most logged-in connections of the app on a node (0, the default: no limit);
    /// past it a login fails with −10010 and the connection closes with `OVERLOADED`.
    pub max_connections: usize,
    /// Longest user id and channel name, bytes (64, R2).
    pub max_name_bytes: usize,
    /// Also allow `` ` `` in names (Agora's EXTEND_CHANNEL_NAME; default false).
    pub extended_names: bool,
    /// Allowed heartbeat interval range for this app, seconds; `None` = the node's.
    pub heartbeat_interval_range: Option<(u32, u32)>,
    /// Allowed presence timeout range for this app, seconds; `None` = the node's.
    pub presence_timeout_range: Option<(u32, u32)>,
    /// Most joined stream channels per session (10, R89).
    pub max_stream_channels: usize,
    /// Most topics a member publishes in per stream channel (8, R98).
    pub max_joined_topics: usize,
    /// Most topics a member subscribes to per stream channel (50, R105).
    pub max_subscribed_topics: usize,
    /// Most publishers a member follows per topic (64, R106).
    pub max_topic_publishers: usize,
    /// Longest topic publisher meta, bytes (1,024; the spec gives none).
    pub max_topic_meta_bytes: usize,
    /// Topic messages per second per stream channel, every topic and publisher together
    /// (1,000; the spec gives none); 0 = unlimited.
    pub topic_publish_rate_per_channel: u32,
    /// Longest idempotency key of a topic publish, bytes (64; the spec gives none); past
    /// it −10014. With `topic_publish_rate_per_channel` and the recovery log's age it
    /// bounds the keys the broker keeps per stream channel (rate × age keys, each at most
    /// this long plus the publisher's id).
    pub max_topic_idempotency_key_bytes: usize,
    /// Presence switches a channel to interval mode above this many visible members
    /// (50; Agora allows 8–128, R121).
    pub presence_interval_threshold: usize,
    /// Interval between INTERVAL events in interval mode, ms (30,000; Agora allows
    /// 10–300 s, R121; shorter values are accepted for tests).
    pub presence_interval_ms: u64,
    /// How long occupancy must stay across the threshold before the mode changes, ms
    /// (2,000), so that a channel at the edge does not flap.
    pub presence_interval_debounce_ms: u64,
    /// Members per whoNow page (50, R123).
    pub who_now_page_size: usize,
    /// Most state keys per user per channel (32, R128).
    pub max_state_keys: usize,
    /// Longest state value, bytes (16 KB, R128).
    pub max_state_value_bytes: usize,
    /// Most items in one metadata call (32, R145 → −12002).
    pub max_metadata_items: usize,
    /// Longest metadata value, bytes (16 KB, R145 → −12012).
    pub max_metadata_value_bytes: usize,
    /// Most bytes of keys and values in one metadata call (16 KB, R145 → −12006).
    pub max_metadata_call_bytes: usize,
    /// Most users one client follows with subscribeUserMetadata (−12017).
    pub max_user_metadata_subscriptions: usize,
    /// Most locks defined in one channel (Agora's documented 32; −14001).
    pub max_locks_per_channel: usize,
    /// Most locks one client waits for at once (`acquireLock` with `retry`, 64; the
    /// spec gives none); past it −14001 `LOCK_OPERATION_FAILED` with the reason.
    pub max_lock_waits: usize,
    /// New logins of one user id per minute on a node (120; R31's threshold, which the
    /// spec leaves configurable); past it −10021 and the SDK's `LOGIN_TOO_FREQUENT`.
    /// 0 = no limit. Resumes do not count.
    pub max_logins_per_user_per_minute: u32,
    /// Bytes (payload, custom type, topic, publisher) in the recovery logs of all the
    /// app's channels together (128 MiB; the spec gives none). A channel over it drops
    /// its own oldest publications first; a publish that still does not fit fails with
    /// −19002 `OVERLOADED` and the reason (server events are delivered unlogged). 0 = no
    /// limit.
    pub max_recovery_log_bytes: usize,
    /// Bytes of keys and values of one metadata object (256 KiB; R145 bounds one call,
    /// not the object); a write that would grow an object past it fails with −12006.
    /// 0 = no limit.
    pub max_metadata_object_bytes: usize,
    /// Lock definitions across all the app's channels (10,000); past it `setLock` fails
    /// with −14001 and the reason. 0 = no limit.
    pub max_lock_definitions: usize,
    /// Idempotency keys remembered across all the app's channels (100,000; each kept
    /// for the recovery log's age); past it a publish with a key fails with −19002 and
    /// the reason, one without a key still goes. 0 = no limit.
    pub max_idempotency_keys: usize,
    /// Positions of idle channels swept from memory kept for the app (100,000); past it
    /// a swept channel's position is forgotten, so a client resuming in it is told of
    /// a gap. 0 = no limit.
    pub max_swept_positions: usize,
}

impl Default for AppLimits {
    fn default() -> Self {
        AppLimits {
            max_payload_bytes: switchboard_protocol::DEFAULT_MAX_PAYLOAD_BYTES,
            publish_rate_per_channel: 60,
            publish_burst: None,
            max_subscriptions: 100,
            max_connections: 0,
            max_name_bytes: switchboard_protocol::names::DEFAULT_MAX_NAME_BYTES,
            extended_names: false,
            heartbeat_interval_range: None,
            presence_timeout_range: None,
            max_stream_channels: 10,
            max_joined_topics: 8,
            max_subscribed_topics: 50,
            max_topic_publishers: 64,
            max_topic_meta_bytes: 1024,
            topic_publish_rate_per_channel: 1000,
            max_topic_idempotency_key_bytes: 64,
            presence_interval_threshold: 50,
            presence_interval_ms: 30_000,
            presence_interval_debounce_ms: 2_000,
            who_now_page_size: 50,
            max_state_keys: 32,
            max_state_value_bytes: 16 * 1024,
            max_metadata_items: 32,
            max_metadata_value_bytes: 16 * 1024,
            max_metadata_call_bytes: 16 * 1024,
            max_user_metadata_subscriptions: 100,
            max_locks_per_channel: 32,
            max_lock_waits: 64,
            max_logins_per_user_per_minute: 120,
            max_recovery_log_bytes: 128 * 1024 * 1024,
            max_metadata_object_bytes: 256 * 1024,
            max_lock_definitions: 10_000,
            max_idempotency_keys: 100_000,
            max_swept_positions: 100_000,
        }
    }
}

impl AppLimits {
    /// The engine budgets these limits imply.
    pub fn budgets(&self) -> switchboard_engine::AppBudgets {
        switchboard_engine::AppBudgets {
            recovery_log_bytes: self.max_recovery_log_bytes,
            idempotency_keys: self.max_idempotency_keys,
            swept_positions: self.max_swept_positions,
            metadata_object_bytes: self.max_metadata_object_bytes,
            lock_definitions: self.max_lock_definitions,
        }
    }

    /// The name rules these limits imply.
    pub fn name_rules(&self) -> NameRules {
        NameRules {
            max_bytes: self.max_name_bytes,
            extended: self.extended_names,
        }
    }
}

impl AppConfig {
    /// An app with default limits.
    pub fn new(id: impl Into<String>, certificate: Option<String>) -> Self {
        AppConfig {
            id: id.into(),
            certificate,
            api_key: None,
            api_secret: None,
            limits: AppLimits::default(),
            tokens: TokenOptions::default(),
            allowed_origins: None,
            webhooks: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{AppConfig, TokenOptions};

    /// Issue 20: a secret (certificate, API secret) never reaches a log through `Debug`.
    #[test]
    fn debug_never_shows_the_certificate() {
        let mut app = AppConfig::new(
            "a1b2c3d4e5f60718293a4b5c6d7e8f90",
            Some("f0e1d2c3b4a5968778695a4b3c2d1e0f".into()),
        );
        app.api_key = Some("backend-key".into());
        app.api_secret = Some("s3cr3t-api-secret-value".into());
        let shown = format!("{app:?} {:?}", vec![app.clone()]);
        assert!(
            !shown.contains("f0e1d2c3b4a5968778695a4b3c2d1e0f"),
            "{shown}"
        );
        assert!(!shown.contains("s3cr3t-api-secret-value"), "{shown}");
        assert!(shown.contains("backend-key"), "{shown}");
        assert!(shown.contains("<secret>"), "{shown}");
        assert!(
            shown.contains("a1b2c3d4e5f60718293a4b5c6d7e8f90"),
            "{shown}"
        );
    }

    /// The budgets and token options read from an app's settings under the names
    /// docs/configuration.md gives; unknown names are refused.
    #[test]
    fn budgets_and_token_options_parse_under_their_documented_names() {
        let app: AppConfig = serde_json::from_value(serde_json::json!({
            "id": "a1b2c3d4e5f60718293a4b5c6d7e8f90",
            "limits": {
                "max_recovery_log_bytes": 1,
                "max_metadata_object_bytes": 2,
                "max_lock_definitions": 3,
                "max_idempotency_keys": 4,
                "max_swept_positions": 5
            },
            "tokens": {
                "max_clock_skew_secs": 300,
                "accept_rtm2": true,
                "rtm2_permissions": true,
                "publisher_authentication": true
            }
        }))
        .expect("parses");
        let b = app.limits.budgets();
        assert_eq!(
            (
                b.recovery_log_bytes,
                b.metadata_object_bytes,
                b.lock_definitions,
                b.idempotency_keys,
                b.swept_positions
            ),
            (1, 2, 3, 4, 5)
        );
        let v = app.tokens.verify_options();
        assert_eq!(v.max_clock_skew, Some(300));
        assert!(v.accept_rtm2 && app.tokens.publisher_authentication);
        assert!(app.tokens.rtm2_permissions);
        let defaults = TokenOptions::default();
        assert_eq!(defaults.max_clock_skew_secs, None);
        assert!(!defaults.accept_rtm2 && !defaults.publisher_authentication);
        assert!(!defaults.rtm2_permissions);
        let typo = serde_json::from_value::<AppConfig>(serde_json::json!({
            "id": "a1b2c3d4e5f60718293a4b5c6d7e8f90",
            "tokens": { "accept_rtm": true }
        }));
        assert!(typo.is_err(), "an unknown token option is refused");
    }
}
