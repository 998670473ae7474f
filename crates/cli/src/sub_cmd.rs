//! `switchboard sub`: subscribes to channels (and joins a stream channel's topics) and
//! prints every event (messages, topic, presence, storage and lock events, link states)
//! as one JSON object per line until Ctrl-C.

use crate::args::{ConnectArgs, StreamArgs, parse_pair};
use crate::connect::join_stream;
use crate::output::{event_json, explain};
use anyhow::bail;
use clap::Args;
use futures_util::StreamExt;
use serde_json::{Value, json};
use switchboard_client::{
    ChannelType, Client, ClientConfig, ErrorCode, Event, LinkState, SubscribeOptions,
};

/// `sub` flags.
#[derive(Args)]
pub struct SubArgs {
    #[command(flatten)]
    conn: ConnectArgs,
    /// Message channels to subscribe to (user-channel messages to the user arrive too).
    channels: Vec<String>,
    #[command(flatten)]
    stream: StreamArgs,
    /// With --stream: follow only these publishers of the topics (repeatable; default:
    /// every current publisher).
    #[arg(long = "from", value_name = "USER")]
    from: Vec<String>,
    /// Enter the channels quietly: others get no presence events about this user and do
    /// not see it in whoNow / whereNow (R84-R87); it still receives theirs.
    #[arg(long)]
    be_quiet: bool,
    /// Receive no presence events of the channels (R116).
    #[arg(long)]
    no_presence: bool,
    /// Also receive the channels' storage events: a SNAPSHOT, then an UPDATE per
    /// metadata change (R147, R148).
    #[arg(long)]
    with_metadata: bool,
    /// Also receive the channels' lock events: a SNAPSHOT, then SET, REMOVED, ACQUIRED,
    /// RELEASED (R157).
    #[arg(long)]
    with_lock: bool,
    /// Follow these users' metadata (subscribeUserMetadata; repeatable).
    #[arg(long = "user-metadata", value_name = "USER")]
    user_metadata: Vec<String>,
    /// Temporary state to set in every channel right after subscribing / joining
    /// (repeatable); it lasts while this command stays in the channel.
    #[arg(long = "state", value_name = "KEY=VALUE", value_parser = parse_pair)]
    state: Vec<(String, String)>,
}

/// Prints every event until the stream ends; fails when the link fails (a lost link
/// is reconnected by the SDK, and its linkState events are printed like the rest).
async fn print_events(mut events: switchboard_client::EventStream<Event>) -> anyhow::Result<()> {
    while let Some(item) = events.next().await {
        match item {
            Ok(e) => {
                println!("{}", event_json(&e));
                if let Event::LinkState(l) = &e {
                    if l.current_state == LinkState::Failed {
                        bail!(
                            "connection ended: {} ({})",
                            l.reason_code.as_str(),
                            l.reason
                        );
                    }
                }
            }
            Err(lag) => println!("{}", json!({"event": "lagged", "skipped": lag.0})),
        }
    }
    Ok(())
}

/// Runs `sub` until Ctrl-C (logs out) or a failed link (exit code 1).
pub async fn subscribe(args: SubArgs) -> anyhow::Result<()> {
    let config = ClientConfig::new(&args.conn.url);
    let client = Client::new(&args.conn.app_id, &args.conn.user_id, config)
        .map_err(|e| explain(&e, true))?;
    // Print events from the start, in arrival order, while logging in and subscribing.
    let mut printer = tokio::spawn(print_events(client.events()));
    client
        .login(args.conn.token.as_deref().unwrap_or(""))
        .await
        .map_err(|e| explain(&e, args.conn.token.is_some()))?;
    let options = SubscribeOptions {
        with_presence: !args.no_presence,
        be_quiet: args.be_quiet,
        with_metadata: args.with_metadata,
        with_lock: args.with_lock,
        ..Default::default()
    };
    for user in &args.user_metadata {
        client
            .storage()
            .subscribe_user_metadata(user)
            .await
            .map_err(|e| explain(&e, true))?;
    }
    for channel in &args.channels {
        client
            .subscribe(channel, options)
            .await
            .map_err(|e| explain(&e, true))?;
        println!(
            "{}",
            json!({"event": "subscribeResponse", "channelName": channel})
        );
        set_state(&client, channel, ChannelType::Message, &args.state).await?;
    }
    if let Some(stream) = join_stream(&client, &args.stream, options).await? {
        println!(
            "{}",
            json!({"event": "joinResponse", "channelName": stream.name()})
        );
        set_state(&client, stream.name(), ChannelType::Stream, &args.state).await?;
        let users = (!args.from.is_empty()).then(|| args.from.clone());
        for topic in &args.stream.topics {
            match stream.subscribe_topic(topic, users.clone()).await {
                Ok(r) => {
                    let failed: Vec<Value> = r
                        .failed_details
                        .iter()
                        .map(|f| json!({"user": f.user, "errorCode": f.error_code, "reason": f.reason}))
                        .collect();
                    println!(
                        "{}",
                        json!({
                            "event": "subscribeTopicResponse",
                            "channelName": stream.name(),
                            "topicName": topic,
                            "succeedUsers": r.succeed_users,
                            "failedUsers": r.failed_users,
                            "failedDetails": failed,
                        })
                    );
                }
                // Nobody publishes yet: say so and go on listening to topic events.
                Err(e) if e.code == ErrorCode::ChannelTopicNotExist.as_i32() => println!(
                    "{}",
                    json!({
                        "event": "subscribeTopicError",
                        "topicName": topic,
                        "errorCode": e.code,
                        "reason": e.reason,
                    })
                ),
                Err(e) => return Err(explain(&e, true)),
            }
        }
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {
            let _ = client.logout().await;
            Ok(())
        }
        ended = &mut printer => ended?,
    }
}

/// `sub --state`: sets `pairs` (if any) in a channel just entered.
async fn set_state(
    client: &Client,
    channel: &str,
    channel_type: ChannelType,
    pairs: &[(String, String)],
) -> anyhow::Result<()> {
    if pairs.is_empty() {
        return Ok(());
    }
    let r = client
        .presence()
        .set_state(channel, channel_type, pairs.iter().cloned())
        .await
        .map_err(|e| explain(&e, true))?;
    println!(
        "{}",
        json!({
            "event": "setStateResponse",
            "channelName": channel,
            "channelType": channel_type.as_str(),
            "timestamp": r.timestamp,
        })
    );
    Ok(())
}
