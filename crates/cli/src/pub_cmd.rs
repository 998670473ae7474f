//! `switchboard pub`: one publish to a message channel, a user, or a topic of a stream
//! channel; the reply printed as JSON, or the error code and reason on stderr.

use crate::args::{ConnectArgs, StreamArgs};
use crate::connect::{LinkWatch, connect, join_stream};
use crate::output::explain;
use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Args;
use serde_json::json;
use switchboard_client::{ChannelType, Client, Payload, PublishOptions, SubscribeOptions};

/// `pub` flags.
#[derive(Args)]
pub struct PubArgs {
    #[command(flatten)]
    conn: ConnectArgs,
    /// Send to a user (USER channel) instead of a message channel.
    #[arg(long, env = "SWITCHBOARD_TO_USER")]
    to_user: bool,
    /// customType label.
    #[arg(long, env = "SWITCHBOARD_CUSTOM_TYPE")]
    custom_type: Option<String>,
    /// MESSAGE is base64, or @FILE for a file's bytes; sent as BINARY.
    #[arg(long, env = "SWITCHBOARD_BINARY")]
    binary: bool,
    /// With --stream: the publisher's topic meta, shown to others as `publisherMeta`
    /// (api.md §4.3).
    #[arg(long, value_name = "META", requires = "stream")]
    meta: Option<String>,
    /// Also store the message in history.
    #[arg(long, env = "SWITCHBOARD_STORE_IN_HISTORY")]
    store_in_history: bool,
    #[command(flatten)]
    stream: StreamArgs,
    /// Channel name, or user id with --to-user; with --stream only MESSAGE is given.
    target: String,
    /// The message.
    message: Option<String>,
}

impl PubArgs {
    /// The message argument (the only positional with --stream).
    fn message(&self) -> anyhow::Result<&str> {
        match (&self.stream.stream, &self.message) {
            (Some(_), None) => Ok(&self.target),
            (Some(_), Some(_)) => bail!("with --stream give only the message"),
            (None, Some(m)) => Ok(m),
            (None, None) => bail!("give the channel (or user) and the message"),
        }
    }
}

fn payload(args: &PubArgs) -> anyhow::Result<Payload> {
    let message = args.message()?;
    if !args.binary {
        return Ok(Payload::Text(message.to_string()));
    }
    if let Some(path) = message.strip_prefix('@') {
        let bytes = std::fs::read(path).with_context(|| format!("reading {path}"))?;
        return Ok(Payload::Binary(bytes.into()));
    }
    let bytes = B64
        .decode(message.trim())
        .context("--binary MESSAGE must be base64 (or @FILE)")?;
    Ok(Payload::Binary(bytes.into()))
}

/// Runs `pub`: one publish, reply printed as JSON.
pub async fn publish(args: PubArgs) -> anyhow::Result<()> {
    let message = payload(&args)?;
    let client = connect(&args.conn).await?;
    let mut link = LinkWatch::new(&client);
    if args.stream.stream.is_some() {
        let result = publish_topic(&client, &args, message).await;
        let result = link.annotate(result).await;
        let _ = client.logout().await;
        return result;
    }
    let options = PublishOptions {
        channel_type: if args.to_user {
            ChannelType::User
        } else {
            ChannelType::Message
        },
        custom_type: args.custom_type.clone(),
        store_in_history: args.store_in_history,
        ..Default::default()
    };
    let result = client.publish(&args.target, message, options).await;
    let result = link.annotate(result.map_err(|e| explain(&e, true))).await;
    let _ = client.logout().await;
    let r = result?;
    println!(
        "{}",
        json!({
            "event": "publishResponse",
            "channelName": r.channel_name,
            "timestamp": r.timestamp,
            "epoch": r.position.epoch,
            "offset": r.position.offset,
        })
    );
    Ok(())
}

/// `pub --stream C --topic T`: join, join the topic, publish, leave.
async fn publish_topic(client: &Client, args: &PubArgs, message: Payload) -> anyhow::Result<()> {
    let [topic] = args.stream.topics.as_slice() else {
        bail!("pub --stream needs exactly one --topic");
    };
    let quiet = SubscribeOptions {
        with_presence: false,
        ..Default::default()
    };
    let Some(stream) = join_stream(client, &args.stream, quiet).await? else {
        bail!("--stream is missing");
    };
    stream
        .join_topic(
            topic,
            switchboard_client::JoinTopicOptions {
                meta: args.meta.clone().unwrap_or_default(),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| explain(&e, true))?;
    let options = switchboard_client::PublishTopicOptions {
        custom_type: args.custom_type.clone(),
        send_ts: 0,
    };
    let r = stream
        .publish_topic_message(topic, message, options)
        .await
        .map_err(|e| explain(&e, true))?;
    let _ = stream.leave().await;
    println!(
        "{}",
        json!({
            "event": "publishTopicMessageResponse",
            "channelName": r.channel_name,
            "topicName": r.topic_name,
            "timestamp": r.timestamp,
            "epoch": r.position.epoch,
            "offset": r.position.offset,
        })
    );
    Ok(())
}
