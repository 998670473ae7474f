//! Client settings (`RTMConfig`, api.md §2.2).

use std::time::Duration;

/// Client settings (`RTMConfig`, api.md §2.2). Its `Debug` output hides the cipher key.
#[derive(Clone)]
pub struct ClientConfig {
    /// Server address, e.g. `ws://127.0.0.1:7400` or `wss://rtm.example.com`; the path
    /// `/v1/ws` is added when absent.
    pub endpoint: String,
    /// CA certificates (PEM text, one or more CERTIFICATE blocks each) a `wss://`
    /// server's certificate may chain to besides Mozilla's roots, as Go's
    /// `CertPool.AppendCertsFromPEM` adds to a pool: for a server with a certificate of
    /// your own CA, or a self-signed one. Checked by [`crate::Client::new`] (−10014).
    /// A Switchboard extension: agora-rtm-sdk has no such setting.
    pub ca_certificates: Vec<Vec<u8>>,
    /// Keep-alive period in seconds (default 5, clamped by the server to 5–1800, R17).
    pub heartbeat_interval: u32,
    /// Seconds the server keeps a dropped session (default 300, clamped to 5–300, R16).
    pub presence_timeout: u32,
    /// How long the server may leave a keep-alive heartbeat unanswered before the link counts
    /// as lost and goes DISCONNECTED (default 4 s, R46: an interruption recovered from
    /// sooner changes no state). Independent of `heartbeat_interval`.
    pub link_loss_timeout: Duration,
    /// `useStringUserId` (default true). With false the user id must be the decimal text
    /// of a non-negative integer (R13, else −10006) and is handled as that number, by
    /// its canonical text without leading zeros (`"007"` is user 7), for interop with
    /// RTC numeric uids (token.md T49).
    pub use_string_user_id: bool,
    /// Allows a second live client of the same app id and user id in this process
    /// (default false: [`crate::Client::new`] then fails with −10027, R14). A client
    /// counts as live while logged in or logging in (not IDLE, not FAILED). Meant for
    /// test harnesses that play several devices of one user in one process.
    pub allow_duplicate_user_id: bool,
    /// Time allowed for one request (default 10 s, api.md §12.3).
    pub request_timeout: Duration,
    /// Time allowed for connecting and logging in (default 12 s, R27).
    pub login_timeout: Duration,
    /// Capacity of the event bus; a consumer further behind gets a `Lagged` item.
    pub event_capacity: usize,
    /// First reconnect backoff ceiling (default 500 ms); each attempt waits a random
    /// time up to min(max, base × 2^attempt) ("full jitter").
    pub reconnect_base_delay: Duration,
    /// Largest reconnect backoff (default 10 s).
    pub reconnect_max_delay: Duration,
    /// After reconnecting has failed this long, the link reports SUSPENDED and keeps
    /// retrying (default 115 s, api.md R50).
    pub suspend_after: Duration,
    /// End-to-end payload encryption (`encryptionMode`, default none). Channel, USER
    /// and topic message payloads are sealed before they leave and opened on arrival;
    /// the server relays bytes it cannot read (R20).
    pub encryption_mode: EncryptionMode,
    /// The secret the key is derived from (`cipherKey`); required, non-empty, when
    /// encryption is on (R19).
    pub cipher_key: Option<String>,
    /// Key-derivation salt (`salt`), at most 32 bytes, zero-padded to 32 (R19); may be
    /// empty.
    pub salt: Vec<u8>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("endpoint", &self.endpoint)
            .field("ca_certificates", &self.ca_certificates.len())
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("presence_timeout", &self.presence_timeout)
            .field("link_loss_timeout", &self.link_loss_timeout)
            .field("use_string_user_id", &self.use_string_user_id)
            .field("allow_duplicate_user_id", &self.allow_duplicate_user_id)
            .field("request_timeout", &self.request_timeout)
            .field("login_timeout", &self.login_timeout)
            .field("event_capacity", &self.event_capacity)
            .field("reconnect_base_delay", &self.reconnect_base_delay)
            .field("reconnect_max_delay", &self.reconnect_max_delay)
            .field("suspend_after", &self.suspend_after)
            .field("encryption_mode", &self.encryption_mode)
            .field("cipher_key", &self.cipher_key.as_ref().map(|_| "<hidden>"))
            .field("salt_len", &self.salt.len())
            .finish()
    }
}

/// The Web SDK's name of [`ClientConfig`] (`RTMConfig`).
pub type RtmConfig = ClientConfig;

/// End-to-end encryption modes (`EncryptionMode`, api.md §2.2, §10.15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EncryptionMode {
    /// `NONE` (default): payloads travel as they are.
    #[default]
    None,
    /// `AES_128_GCM`: a 16-byte key.
    Aes128Gcm,
    /// `AES_256_GCM`: a 32-byte key.
    Aes256Gcm,
}

impl EncryptionMode {
    /// The spec's literal.
    pub fn as_str(self) -> &'static str {
        match self {
            EncryptionMode::None => "NONE",
            EncryptionMode::Aes128Gcm => "AES_128_GCM",
            EncryptionMode::Aes256Gcm => "AES_256_GCM",
        }
    }
}

impl ClientConfig {
    /// Defaults with the given endpoint.
    pub fn new(endpoint: impl Into<String>) -> Self {
        ClientConfig {
            endpoint: endpoint.into(),
            ca_certificates: Vec::new(),
            heartbeat_interval: 5,
            presence_timeout: 300,
            link_loss_timeout: Duration::from_secs(4),
            use_string_user_id: true,
            allow_duplicate_user_id: false,
            request_timeout: Duration::from_secs(10),
            login_timeout: Duration::from_secs(12),
            event_capacity: 4096,
            reconnect_base_delay: Duration::from_millis(500),
            reconnect_max_delay: Duration::from_secs(10),
            suspend_after: Duration::from_secs(115),
            encryption_mode: EncryptionMode::None,
            cipher_key: None,
            salt: Vec::new(),
        }
    }

    /// These settings with end-to-end encryption in `mode`, the key derived from
    /// `cipher_key` and `salt` (api.md §2.2). Checked by [`crate::Client::new`]: a mode
    /// other than none needs a non-empty key and a salt of at most 32 bytes, else
    /// −10020 (R19).
    ///
    /// ```
    /// use switchboard_client::{ClientConfig, EncryptionMode};
    /// let config = ClientConfig::new("ws://127.0.0.1:7400")
    ///     .with_encryption(EncryptionMode::Aes256Gcm, "shared secret", b"per-app salt");
    /// assert_eq!(config.encryption_mode.as_str(), "AES_256_GCM");
    /// ```
    pub fn with_encryption(
        mut self,
        mode: EncryptionMode,
        cipher_key: impl Into<String>,
        salt: impl Into<Vec<u8>>,
    ) -> Self {
        self.encryption_mode = mode;
        self.cipher_key = Some(cipher_key.into());
        self.salt = salt.into();
        self
    }

    /// These settings with `pem` (a CA certificate, PEM) trusted for `wss://` besides
    /// Mozilla's roots; see [`ClientConfig::ca_certificates`].
    ///
    /// ```
    /// use switchboard_client::{Client, ClientConfig};
    /// let config = ClientConfig::new("wss://localhost:7400").with_ca_certificate("no PEM");
    /// let e = Client::new("a1b2c3d4e5f60718293a4b5c6d7e8f90", "alice", config).err();
    /// assert_eq!(e.map(|e| e.code), Some(-10014));
    /// ```
    pub fn with_ca_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_certificates.push(pem.into());
        self
    }

    /// The WebSocket URL to dial.
    pub(crate) fn url(&self) -> String {
        let e = self.endpoint.trim_end_matches('/');
        let after_scheme = e.split_once("://").map_or(e, |(_, rest)| rest);
        if after_scheme.contains('/') {
            e.to_string()
        } else {
            format!("{e}{}", switchboard_protocol::WS_PATH)
        }
    }
}
