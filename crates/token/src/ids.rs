//! The numbers and names of AccessToken2 (token.md §2, §5): the version prefix, service
//! types, privileges, the RTM2 resource types, and the App ID / certificate shape.

/// The version prefix of every AccessToken2 token (T1, T2).
pub const VERSION: &str = "007";

/// Service type numbers (token.md §5).
pub mod service_type {
    /// Real-time communication (audio/video channels); carries channel name and uid.
    pub const RTC: u16 = 1;
    /// Real-time messaging (Signaling) login; carries the user id.
    pub const RTM: u16 = 2;
    /// Media streaming; carries channel name and account.
    pub const STREAMING: u16 = 3;
    /// Fast path acceleration; no fields.
    pub const FPA: u16 = 4;
    /// Chat; carries the user id.
    pub const CHAT: u16 = 5;
    /// Fusion CDN; carries channel name and account.
    pub const FCDN: u16 = 6;
    /// APaaS (education); carries room uuid, user uuid and an `i16` role.
    pub const APAAS: u16 = 7;
    /// RTM with resource permissions; carries the user id and a permission tree.
    pub const RTM2: u16 = 8;
    /// Conversational AI; no fields.
    pub const CONVOAI: u16 = 9;
    /// Speech to text; no fields.
    pub const STT: u16 = 10;
}

/// Privilege ids of the RTC and RTM services (token.md §5).
pub mod privilege {
    /// RTC: join the channel (what a stream channel join needs, T50).
    pub const JOIN_CHANNEL: u16 = 1;
    /// RTC: publish audio.
    pub const PUBLISH_AUDIO_STREAM: u16 = 2;
    /// RTC: publish video.
    pub const PUBLISH_VIDEO_STREAM: u16 = 3;
    /// RTC: publish data streams (publisher authentication, T51).
    pub const PUBLISH_DATA_STREAM: u16 = 4;
    /// RTM and RTM2: log in (T45).
    pub const RTM_LOGIN: u16 = 1;
}

/// RTM2 permission-tree constants (token.md §5, "RTM2 permission tree").
pub mod rtm2 {
    /// Resource type: message channels.
    pub const MESSAGE_CHANNELS: u16 = 0;
    /// Resource type: stream channels.
    pub const STREAM_CHANNELS: u16 = 1;
    /// Resource type: group channels.
    pub const GROUP_CHANNELS: u16 = 2;
    /// Resource type: server groups.
    pub const SERVER_GROUPS: u16 = 3;
    /// Resource type: users.
    pub const USERS: u16 = 4;
    /// Permission type: read.
    pub const READ: u16 = 0;
    /// Permission type: write.
    pub const WRITE: u16 = 1;
}

/// The reference name of a privilege of a service type (`"joinChannel"`, `"login"`, …),
/// or `None` when token.md §5 defines none with that id.
pub fn privilege_name(service_type: u16, privilege: u16) -> Option<&'static str> {
    use self::service_type as st;
    let name = match (service_type, privilege) {
        (st::RTC, 1) => "joinChannel",
        (st::RTC, 2) => "publishAudioStream",
        (st::RTC, 3) => "publishVideoStream",
        (st::RTC, 4) => "publishDataStream",
        (st::RTM | st::RTM2 | st::FPA, 1) => "login",
        (st::STREAMING, 1) => "publishMixStream",
        (st::STREAMING, 2) => "publishRawStream",
        (st::CHAT, 1) => "user",
        (st::CHAT, 2) => "app",
        (st::FCDN, 1) => "publish",
        (st::FCDN, 2) => "play",
        (st::APAAS, 1) => "roomUser",
        (st::APAAS, 2) => "user",
        (st::APAAS, 3) => "app",
        _ => return None,
    };
    Some(name)
}

/// The lower-case name of a service type (`"rtc"`, `"rtm"`, `"rtm2"`, …), or `None` for a
/// type token.md §5 does not define.
pub fn service_type_name(service_type: u16) -> Option<&'static str> {
    use self::service_type as st;
    let name = match service_type {
        st::RTC => "rtc",
        st::RTM => "rtm",
        st::STREAMING => "streaming",
        st::FPA => "fpa",
        st::CHAT => "chat",
        st::FCDN => "fcdn",
        st::APAAS => "apaas",
        st::RTM2 => "rtm2",
        st::CONVOAI => "convoai",
        st::STT => "stt",
        _ => return None,
    };
    Some(name)
}

/// Whether `value` is exactly 32 hexadecimal characters of either case, the shape of an
/// App ID and an App Certificate that builders require (T24).
pub fn is_hex32(value: &str) -> bool {
    value.len() == 32 && value.bytes().all(|b| b.is_ascii_hexdigit())
}
