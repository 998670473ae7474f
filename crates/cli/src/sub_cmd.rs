//! `switchboard sub`: subscribes to channels (and joins a stream channel's topics) and
//! prints every event (messages, topic, presence, storage and lock events, link states)
//! as one JSON object per line until Ctrl-C.

use crate::args::{ConnectArgs, StreamArgs, parse_pair};
use crate::connect::{ended, join_stream, login, new_client};
use crate::output::{event_json, explain};
use anyhow::bail;
use clap::Args;
use futures_util::StreamExt;
use serde_json::{Value, json};
use switchboard_client::{
    ChannelType, Client, ErrorCode, Event, LinkState, StreamChannel, SubscribeOptions,
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
    /// Receive no messages of the channels (withMessage: false, R76); user-channel
    /// messages still arrive.
    #[arg(long)]
    no_message: bool,
    /// Take commands on standard input while running (see `sub --help`).
    #[arg(long, long_help = crate::sub_control::HELP)]
    commands: bool,
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
    /// Renew tokens with this shell command (`sh -c CMD`): run at each
    /// tokenPrivilegeWillExpire, its stdout is the new token. It gets
    /// SWITCHBOARD_TOKEN_FOR=rtm for the login token, or =rtc with SWITCHBOARD_CHANNEL
    /// for a stream channel's RTC token, so `switchboard token "$SWITCHBOARD_TOKEN_FOR"`
    /// can serve as CMD.
    #[arg(long, value_name = "CMD")]
    token_command: Option<String>,
    /// App certificate: without --token-command, mint a fresh login token (and RTC
    /// token) at each tokenPrivilegeWillExpire, so `sub` outlives its first token.
    #[arg(long, env = "SWITCHBOARD_APP_CERT", hide_env_values = true)]
    app_cert: Option<String>,
    /// Lifetime of the tokens minted with --app-cert, seconds.
    #[arg(long = "renew-expire", value_name = "S", default_value_t = 3600)]
    renew_expire: u32,
}

/// Prints every event until the stream ends; fails when the link fails (a lost link
/// is reconnected by the SDK, and its linkState events are printed like the rest).
async fn print_events(mut events: switchboard_client::EventStream<Event>) -> anyhow::Result<()> {
    while let Some(item) = events.next().await {
        match item {
            Ok(e) => {
                println!("{}", event_json(&e));
                if let Event::LinkState(l) = &e
                    && l.current_state == LinkState::Failed
                {
                    return Err(ended(l).context("connection ended"));
                }
            }
            Err(lag) => println!("{}", json!({"event": "lagged", "skipped": lag.0})),
        }
    }
    Ok(())
}

/// Runs `sub` until Ctrl-C (logs out) or a failed link (exit code 1).
pub async fn subscribe(args: SubArgs) -> anyhow::Result<()> {
    let client = new_client(&args.conn)?;
    // Print events from the start, in arrival order, while logging in and subscribing.
    let mut printer = tokio::spawn(print_events(client.events()));
    let renewal = Renewal::new(&args)?;
    let stream_handle = match &args.stream.stream {
        Some(name) => Some(client.stream_channel(name).map_err(|e| explain(&e, true))?),
        None => None,
    };
    if let Some(renewal) = renewal {
        tokio::spawn(renewal.run(client.clone(), stream_handle));
    }
    login(&client, &args.conn).await?;
    // Every field is set today; the update keeps this compiling when the SDK adds one.
    #[allow(clippy::needless_update)]
    let options = SubscribeOptions {
        with_message: !args.no_message,
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
    let joined = join_stream(&client, &args.stream, options).await?;
    if let Some(stream) = &joined {
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
    if args.commands {
        tokio::spawn(crate::sub_control::run(client.clone(), joined));
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

/// How a long-running `sub` gets fresh tokens (api.md §3.7 renewToken, T54).
enum Source {
    /// `--token-command CMD`.
    Command(String),
    /// `--app-cert`: minted here.
    Mint { cert: String, expire: u32 },
}

/// Renews the login token, and the stream channel's RTC token, at each will-expire
/// notice, until the client goes.
struct Renewal {
    source: Source,
    app_id: String,
    user_id: String,
}

impl Renewal {
    /// The renewal `args` ask for, if any.
    fn new(args: &SubArgs) -> anyhow::Result<Option<Renewal>> {
        let source = match (&args.token_command, &args.app_cert) {
            (Some(cmd), _) => Source::Command(cmd.clone()),
            (None, Some(cert)) if !cert.is_empty() => {
                if !switchboard_token::is_hex32(cert) {
                    bail!("--app-cert must be 32 hex characters");
                }
                Source::Mint {
                    cert: cert.clone(),
                    expire: args.renew_expire,
                }
            }
            _ => return Ok(None),
        };
        Ok(Some(Renewal {
            source,
            app_id: args.conn.app_id.clone(),
            user_id: args.conn.user_id.clone(),
        }))
    }

    /// A fresh token: the login token (`channel` None) or the RTC token of `channel`.
    async fn token(&self, channel: Option<&str>) -> anyhow::Result<String> {
        let now = (switchboard_protocol::now_ms() / 1000) as u32;
        match &self.source {
            Source::Mint { cert, expire } => match channel {
                None => switchboard_token::build_rtm_token(
                    &self.app_id,
                    cert,
                    &self.user_id,
                    *expire,
                    now,
                ),
                Some(c) => switchboard_token::build_rtc_token(
                    &self.app_id,
                    cert,
                    c,
                    &self.user_id,
                    switchboard_token::RtcRole::Publisher,
                    *expire,
                    *expire,
                    now,
                ),
            }
            .map_err(|e| anyhow::anyhow!("cannot build the token: {e}")),
            Source::Command(cmd) => {
                let mut command = std::process::Command::new("sh");
                command
                    .arg("-c")
                    .arg(cmd)
                    .stdin(std::process::Stdio::null());
                command.env("SWITCHBOARD_USER_ID", &self.user_id);
                command.env("SWITCHBOARD_APP_ID", &self.app_id);
                match channel {
                    None => command.env("SWITCHBOARD_TOKEN_FOR", "rtm"),
                    Some(c) => command
                        .env("SWITCHBOARD_TOKEN_FOR", "rtc")
                        .env("SWITCHBOARD_CHANNEL", c),
                };
                let out = tokio::task::spawn_blocking(move || command.output())
                    .await?
                    .map_err(|e| anyhow::anyhow!("--token-command: cannot run sh: {e}"))?;
                if !out.status.success() {
                    bail!(
                        "--token-command failed ({}): {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                }
                let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
                if token.is_empty() {
                    bail!("--token-command printed no token");
                }
                Ok(token)
            }
        }
    }

    /// Waits for will-expire notices and renews; a failed renewal is printed on stderr
    /// and the next notice tries again (the server sends one per token).
    async fn run(self, client: Client, stream: Option<StreamChannel>) {
        let mut notices = client.token_events();
        while let Some(item) = notices.next().await {
            let Ok(channel) = item else { continue };
            let result = async {
                let token = self.token(channel.as_deref()).await?;
                match (&channel, &stream) {
                    (None, _) => client
                        .renew_token(&token)
                        .await
                        .map_err(|e| explain(&e, true)),
                    (Some(c), Some(s)) if s.name() == c => {
                        s.renew_token(&token).await.map_err(|e| explain(&e, true))
                    }
                    (Some(c), _) => bail!("no stream channel {c:?} here"),
                }
            }
            .await;
            let name = channel.clone().unwrap_or_default();
            match result {
                Ok(_) => println!(
                    "{}",
                    json!({"event": "renewTokenResponse", "channelName": name})
                ),
                Err(e) => eprintln!("warning: renewing the token of {name:?}: {e:#}"),
            }
        }
    }
}
