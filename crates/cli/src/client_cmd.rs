//! `switchboard pub` and `switchboard sub`: the Rust SDK on the command line. `sub`
//! prints every event (messages, topic and presence events, link states) as one JSON
//! object per line with the spec's camelCase names; `pub` prints the reply as JSON, or
//! the error code and reason on stderr.

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Args;
use futures_util::StreamExt;
use serde_json::{Value, json};
use switchboard_client::{
    ChannelType, Client, ClientConfig, ErrorCode, Event, IntervalDetail, LinkState, LinkStateEvent,
    MessageEvent, Payload, PresenceEvent, PublishOptions, RtmError, SubscribeOptions, UserList,
    UserState,
};

/// Connection flags shared by `pub`, `sub`, `history` and `presence`.
#[derive(Args)]
pub struct ConnectArgs {
    /// Server address.
    #[arg(long, env = "SWITCHBOARD_URL", default_value = "ws://127.0.0.1:7400")]
    url: String,
    /// App id.
    #[arg(long, env = "SWITCHBOARD_APP_ID")]
    app_id: String,
    /// User id to log in as.
    #[arg(long, env = "SWITCHBOARD_USER_ID")]
    user_id: String,
    /// Login token (omit for an app without a certificate).
    #[arg(long, env = "SWITCHBOARD_TOKEN")]
    token: Option<String>,
}

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
    #[arg(long = "state", value_name = "KEY=VALUE", value_parser = crate::presence_cmd::parse_pair)]
    state: Vec<(String, String)>,
}

/// Stream channel flags shared by `pub` and `sub`.
#[derive(Args)]
pub struct StreamArgs {
    /// Join this stream channel.
    #[arg(long, value_name = "CHANNEL")]
    stream: Option<String>,
    /// With --stream: the topic (repeatable for `sub`).
    #[arg(long = "topic", value_name = "TOPIC", requires = "stream")]
    topics: Vec<String>,
    /// With --stream: the RTC token of the channel (omit for an app without a
    /// certificate; a token carrying both RTM and RTC services may serve as --token too).
    #[arg(long, env = "SWITCHBOARD_RTC_TOKEN", requires = "stream")]
    rtc_token: Option<String>,
}

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

/// Joins `args.stream` (when given) with its RTC token and presence options.
async fn join_stream(
    client: &Client,
    args: &StreamArgs,
    presence: SubscribeOptions,
) -> anyhow::Result<Option<switchboard_client::StreamChannel>> {
    let Some(name) = &args.stream else {
        return Ok(None);
    };
    let channel = client.stream_channel(name).map_err(|e| explain(&e, true))?;
    let options = switchboard_client::JoinOptions {
        token: args.rtc_token.clone(),
        with_presence: presence.with_presence,
        be_quiet: presence.be_quiet,
        with_metadata: presence.with_metadata,
        with_lock: presence.with_lock,
    };
    channel
        .join(options)
        .await
        .map_err(|e| explain(&e, args.rtc_token.is_some()))?;
    Ok(Some(channel))
}

/// An error for the terminal, with a hint when a token is the problem.
pub(crate) fn explain(e: &RtmError, token_given: bool) -> anyhow::Error {
    let hint = if !token_given && e.code == ErrorCode::InvalidToken.as_i32() {
        "\nthis app requires a token: pass --token or set SWITCHBOARD_TOKEN (make one with `switchboard token rtm --app-id ... --app-cert ... --user-id ...`)"
    } else {
        ""
    };
    anyhow::anyhow!(
        "{} failed with code {}: {}{hint}",
        e.operation,
        e.code,
        e.reason
    )
}

/// Creates a client for `c` and logs in.
pub(crate) async fn connect(c: &ConnectArgs) -> anyhow::Result<Client> {
    let client = Client::new(&c.app_id, &c.user_id, ClientConfig::new(&c.url))
        .map_err(|e| explain(&e, true))?;
    client
        .login(c.token.as_deref().unwrap_or(""))
        .await
        .map_err(|e| explain(&e, c.token.is_some()))?;
    Ok(client)
}

/// JSON of a message event (api.md §9.2); binary payloads in base64.
pub fn message_json(m: &MessageEvent) -> Value {
    let (message_type, message) = match &m.message {
        Payload::Text(s) => ("STRING", json!(s)),
        Payload::Binary(b) => ("BINARY", json!(B64.encode(b))),
    };
    json!({
        "event": "message",
        "channelType": m.channel_type.as_str(),
        "channelName": m.channel_name,
        "topicName": m.topic_name,
        "messageType": message_type,
        "customType": m.custom_type,
        "message": message,
        "publisher": m.publisher,
        "timestamp": m.timestamp,
    })
}

/// JSON of a link state event (api.md §9.7).
pub fn link_json(e: &LinkStateEvent) -> Value {
    json!({
        "event": "linkState",
        "currentState": e.current_state.as_str(),
        "previousState": e.previous_state.as_str(),
        "serviceType": e.service_type,
        "operation": e.operation.as_str(),
        "reason": e.reason,
        "reasonCode": e.reason_code.as_str(),
        "affectedChannels": e.affected_channels,
        "unrestoredChannels": e.unrestored_channels,
        "isResumed": e.is_resumed,
        "timestamp": e.timestamp,
    })
}

/// JSON of a topic event (api.md §9.4).
pub fn topic_json(e: &switchboard_client::TopicEvent) -> Value {
    let infos: Vec<Value> = e
        .topic_infos
        .iter()
        .map(|t| {
            let publishers: Vec<Value> = t
                .publishers
                .iter()
                .map(|p| json!({"publisherUserId": p.publisher_user_id, "publisherMeta": p.publisher_meta}))
                .collect();
            json!({
                "topicName": t.topic_name,
                "publishers": publishers,
                "totalPublisher": t.total_publisher,
            })
        })
        .collect();
    json!({
        "event": "topic",
        "eventType": e.event_type.as_str(),
        "channelName": e.channel_name,
        "publisher": e.publisher,
        "topicInfos": infos,
        "totalTopics": e.total_topics,
        "timestamp": e.timestamp,
    })
}

/// JSON of a member and its state (`UserState`).
pub fn user_state_json(u: &UserState) -> Value {
    json!({
        "userId": u.user_id,
        "states": u.states,
        "statesCount": u.states_count,
    })
}

fn user_list_json(l: &UserList) -> Value {
    json!({"users": l.users, "userCount": l.user_count})
}

fn interval_json(d: &IntervalDetail) -> Value {
    json!({
        "join": user_list_json(&d.join),
        "leave": user_list_json(&d.leave),
        "timeout": user_list_json(&d.timeout),
        "userStateList": d.user_state_list.iter().map(user_state_json).collect::<Vec<_>>(),
        "totalOccupancy": d.total_occupancy,
    })
}

/// JSON of a presence event (api.md §9.3).
pub fn presence_json(e: &PresenceEvent) -> Value {
    json!({
        "event": "presence",
        "eventType": e.event_type.as_str(),
        "channelType": e.channel_type.as_str(),
        "channelName": e.channel_name,
        "publisher": e.publisher,
        "stateChanged": e.state_changed,
        "interval": e.interval.as_ref().map(interval_json),
        "snapshot": e.snapshot.as_ref().map(|s| s.iter().map(user_state_json).collect::<Vec<_>>()),
        "timestamp": e.timestamp,
    })
}

fn event_json(e: &Event) -> Value {
    match e {
        Event::Message(m) => message_json(m),
        Event::Topic(t) => topic_json(t),
        Event::Presence(p) => presence_json(p),
        Event::Storage(s) => crate::storage_cmd::storage_json(s),
        Event::Lock(l) => crate::lock_cmd::lock_json(l),
        Event::LinkState(l) => link_json(l),
        Event::TokenPrivilegeWillExpire(c) => json!({
            "event": "tokenPrivilegeWillExpire",
            "channelName": c.clone().unwrap_or_default(),
        }),
    }
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
    if args.stream.stream.is_some() {
        let result = publish_topic(&client, &args, message).await;
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
    let _ = client.logout().await;
    let r = result.map_err(|e| explain(&e, true))?;
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
        .join_topic(topic, Default::default())
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

/// `history` flags.
#[derive(Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    conn: ConnectArgs,
    /// The conversation with this user instead of a message channel.
    #[arg(long, env = "SWITCHBOARD_TO_USER")]
    to_user: bool,
    /// Messages per page (1-100).
    #[arg(long, default_value_t = 100)]
    count: u32,
    /// Newest end, ms (0 = now).
    #[arg(long, default_value_t = 0)]
    start: u64,
    /// Oldest end, ms (0 = no bound).
    #[arg(long, default_value_t = 0)]
    end: u64,
    /// Follow `newStart` until everything in the range is printed.
    #[arg(long)]
    all: bool,
    /// Channel name, or user id with --to-user.
    channel: String,
}

/// Runs `history`: one JSON object per stored message, newest first.
pub async fn history(args: HistoryArgs) -> anyhow::Result<()> {
    let client = connect(&args.conn).await?;
    let channel_type = if args.to_user {
        ChannelType::User
    } else {
        ChannelType::Message
    };
    let mut start = args.start;
    let result = loop {
        let options = switchboard_client::GetHistoryMessageOptions {
            message_count: args.count,
            start,
            end: args.end,
        };
        let page = match client
            .history()
            .get_messages(&args.channel, channel_type, options)
            .await
        {
            Ok(p) => p,
            Err(e) => break Err(explain(&e, true)),
        };
        for m in &page.message_list {
            let (message_type, message) = match &m.message {
                Payload::Text(s) => ("STRING", json!(s)),
                Payload::Binary(b) => ("BINARY", json!(B64.encode(b))),
            };
            println!(
                "{}",
                json!({
                    "event": "historyMessage",
                    "messageType": message_type,
                    "message": message,
                    "customType": m.custom_type,
                    "publisher": m.publisher,
                    "timestamp": m.timestamp,
                })
            );
        }
        if !args.all || page.new_start == 0 {
            println!(
                "{}",
                json!({"event": "historyPage", "count": page.count, "newStart": page.new_start})
            );
            break Ok(());
        }
        start = page.new_start;
    };
    let _ = client.logout().await;
    result
}
