//! The clap argument structs and value parsers that several commands share: the
//! connection flags, the channel a presence / storage / lock command is about, the
//! stream channel flags of `pub` and `sub`, and `KEY=VALUE` parsing.

use clap::Args;
use switchboard_client::ChannelType;

/// Connection flags shared by `pub`, `sub`, `history` and `presence`.
#[derive(Args)]
pub struct ConnectArgs {
    /// Server address: ws://HOST:PORT, or wss://HOST:PORT for a server with TLS.
    #[arg(long, env = "SWITCHBOARD_URL", default_value = "ws://127.0.0.1:7400")]
    pub(crate) url: String,
    /// CA certificate (PEM) that a wss:// server's certificate may chain to, besides
    /// the public roots: your own CA, or the server's self-signed certificate.
    #[arg(long, env = "SWITCHBOARD_CA_CERT", value_name = "FILE")]
    pub(crate) ca_cert: Option<std::path::PathBuf>,
    /// App id.
    #[arg(long, env = "SWITCHBOARD_APP_ID")]
    pub(crate) app_id: String,
    /// User id to log in as.
    #[arg(long, env = "SWITCHBOARD_USER_ID")]
    pub(crate) user_id: String,
    /// Login token (omit for an app without a certificate).
    #[arg(long, env = "SWITCHBOARD_TOKEN")]
    pub(crate) token: Option<String>,
}

/// Stream channel flags shared by `pub` and `sub`.
#[derive(Args)]
pub struct StreamArgs {
    /// Join this stream channel.
    #[arg(long, value_name = "CHANNEL")]
    pub(crate) stream: Option<String>,
    /// With --stream: the topic (repeatable for `sub`).
    #[arg(long = "topic", value_name = "TOPIC", requires = "stream")]
    pub(crate) topics: Vec<String>,
    /// With --stream: the RTC token of the channel (omit for an app without a
    /// certificate; a token carrying both RTM and RTC services may serve as --token too).
    #[arg(long, env = "SWITCHBOARD_RTC_TOKEN", requires = "stream")]
    pub(crate) rtc_token: Option<String>,
}

/// The channel a storage, lock or presence command is about.
#[derive(Args)]
pub struct ChannelArgs {
    /// The channel is a stream channel (default: a message channel).
    #[arg(long)]
    stream: bool,
    /// Channel name.
    channel: String,
}

impl ChannelArgs {
    /// The channel's name.
    pub fn name(&self) -> &str {
        &self.channel
    }

    /// MESSAGE, or STREAM with --stream.
    pub fn channel_type(&self) -> ChannelType {
        if self.stream {
            ChannelType::Stream
        } else {
            ChannelType::Message
        }
    }
}

/// Parses `KEY=VALUE` (the value may contain `=`).
pub fn parse_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}
