//! `switchboard presence`: who is in a channel (`who`), where a user is (`where`), and
//! temporary state (`state get|set|remove`) through the Rust SDK's presence handle
//! (api.md §5). Each command logs in, prints its reply as one JSON object per line with
//! the spec's camelCase names, and logs out; errors go to stderr with code and reason.

use crate::args::{ChannelArgs, ConnectArgs, parse_pair};
use crate::connect::{LinkWatch, connect};
use crate::output::{explain, user_state_json};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use switchboard_client::{ChannelType, Client, WhoNowOptions};

/// `presence` subcommands.
#[derive(Subcommand)]
pub enum PresenceCommand {
    /// List the members of a channel (whoNow), one JSON line per page.
    Who(WhoArgs),
    /// List the channels where a user is visibly present (whereNow).
    Where(WhereArgs),
    /// Read or change temporary state (get, set, remove).
    #[command(subcommand)]
    State(StateCommand),
}

/// `presence who` flags.
#[derive(Args)]
pub struct WhoArgs {
    #[command(flatten)]
    conn: ConnectArgs,
    #[command(flatten)]
    channel: ChannelArgs,
    /// Give each member's state.
    #[arg(long)]
    include_state: bool,
    /// Only count the members (totalOccupancy), without listing them.
    #[arg(long)]
    no_user_id: bool,
    /// Follow nextPage until every member is printed (one line per page).
    #[arg(long)]
    all: bool,
    /// Start at this page (the nextPage of an earlier call).
    #[arg(long)]
    page: Option<String>,
}

/// `presence where` flags.
#[derive(Args)]
pub struct WhereArgs {
    #[command(flatten)]
    conn: ConnectArgs,
    /// The user to look for.
    user: String,
}

/// `presence state` subcommands.
#[derive(Subcommand)]
pub enum StateCommand {
    /// Print a member's state in a channel (getState): `get [--of USER] [--stream] CHANNEL`.
    Get(StateGetArgs),
    /// Set keys of this user's state in a channel (setState); see --help.
    ///
    /// The command logs in as the user, which replaces any other session of that user
    /// (one session per user id), and logs out when done. State set for a channel the
    /// user is not in is kept by the server as pending state, applied if the user
    /// enters the channel (R129), and lost at logout, i.e. when this command ends. To
    /// sit in a channel with state, use `switchboard sub CHANNEL --state KEY=VALUE`.
    Set(StateSetArgs),
    /// Remove keys (none given: all) of this user's state in a channel (removeState).
    ///
    /// Like `set`, this logs in as the user (replacing its other session) and out
    /// again, so it only changes state the server keeps for that login.
    Remove(StateRemoveArgs),
}

/// `presence state get` flags: `get [--of USER] CHANNEL`, the convention of `storage
/// user get --of USER`; the older `get USER CHANNEL` still works.
#[derive(Args)]
pub struct StateGetArgs {
    #[command(flatten)]
    conn: ConnectArgs,
    /// The member whose state to read (default: --user-id).
    #[arg(long = "of", value_name = "USER")]
    of: Option<String>,
    /// The channel is a stream channel (default: a message channel).
    #[arg(long)]
    stream: bool,
    /// CHANNEL, or USER CHANNEL (the older form; same as --of USER CHANNEL).
    #[arg(value_name = "CHANNEL", num_args = 1..=2, required = true)]
    names: Vec<String>,
}

impl StateGetArgs {
    /// (user, channel name, channel type); `None` for the user means --user-id.
    fn target(&self) -> anyhow::Result<(Option<&str>, &str, ChannelType)> {
        let channel_type = if self.stream {
            ChannelType::Stream
        } else {
            ChannelType::Message
        };
        match (self.names.as_slice(), &self.of) {
            ([channel], of) => Ok((of.as_deref(), channel, channel_type)),
            ([user, channel], None) => Ok((Some(user), channel, channel_type)),
            ([_, _], Some(_)) => anyhow::bail!("give the user once: --of USER CHANNEL"),
            _ => anyhow::bail!("give the channel: presence state get [--of USER] CHANNEL"),
        }
    }
}

/// `presence state set` flags.
#[derive(Args)]
pub struct StateSetArgs {
    #[command(flatten)]
    conn: ConnectArgs,
    #[command(flatten)]
    channel: ChannelArgs,
    /// KEY=VALUE pairs to set.
    #[arg(required = true, value_name = "KEY=VALUE", value_parser = parse_pair)]
    pairs: Vec<(String, String)>,
}

/// `presence state remove` flags.
#[derive(Args)]
pub struct StateRemoveArgs {
    #[command(flatten)]
    conn: ConnectArgs,
    #[command(flatten)]
    channel: ChannelArgs,
    /// Keys to remove; none = the whole state.
    keys: Vec<String>,
}

/// Runs a `presence` command.
pub async fn run(cmd: PresenceCommand) -> anyhow::Result<()> {
    let conn = match &cmd {
        PresenceCommand::Who(a) => &a.conn,
        PresenceCommand::Where(a) => &a.conn,
        PresenceCommand::State(StateCommand::Get(a)) => &a.conn,
        PresenceCommand::State(StateCommand::Set(a)) => &a.conn,
        PresenceCommand::State(StateCommand::Remove(a)) => &a.conn,
    };
    let client = connect(conn).await?;
    let mut link = LinkWatch::new(&client);
    let result = match &cmd {
        PresenceCommand::Who(a) => who(&client, a).await,
        PresenceCommand::Where(a) => where_now(&client, a).await,
        PresenceCommand::State(s) => state(&client, s).await,
    };
    let result = link.annotate(result).await;
    let _ = client.logout().await;
    result
}

async fn who(client: &Client, args: &WhoArgs) -> anyhow::Result<()> {
    let c = &args.channel;
    let mut page = args.page.clone();
    loop {
        let options = WhoNowOptions {
            include_user_id: !args.no_user_id,
            include_state: args.include_state,
            page: page.clone(),
        };
        let r = client
            .presence()
            .who_now(c.name(), c.channel_type(), options)
            .await
            .map_err(|e| explain(&e, true))?;
        println!(
            "{}",
            json!({
                "event": "whoNowResponse",
                "channelName": c.name(),
                "channelType": c.channel_type().as_str(),
                "timestamp": r.timestamp,
                "totalOccupancy": r.total_occupancy,
                "occupants": r.occupants.iter().map(user_state_json).collect::<Vec<_>>(),
                "nextPage": r.next_page,
            })
        );
        if !args.all || r.next_page.is_empty() {
            return Ok(());
        }
        page = Some(r.next_page);
    }
}

async fn where_now(client: &Client, args: &WhereArgs) -> anyhow::Result<()> {
    let r = client
        .presence()
        .where_now(&args.user)
        .await
        .map_err(|e| explain(&e, true))?;
    let channels: Vec<Value> = r
        .channels
        .iter()
        .map(|c| json!({"channelName": c.channel_name, "channelType": c.channel_type.as_str()}))
        .collect();
    println!(
        "{}",
        json!({
            "event": "whereNowResponse",
            "userId": args.user,
            "timestamp": r.timestamp,
            "channels": channels,
            "totalChannel": r.total_channel,
        })
    );
    Ok(())
}

async fn state(client: &Client, cmd: &StateCommand) -> anyhow::Result<()> {
    let presence = client.presence();
    match cmd {
        StateCommand::Get(a) => {
            let (user, name, channel_type) = a.target()?;
            let user = user.unwrap_or(client.user_id());
            let r = presence
                .get_state(user, name, channel_type)
                .await
                .map_err(|e| explain(&e, true))?;
            println!(
                "{}",
                json!({
                    "event": "getStateResponse",
                    "channelName": name,
                    "channelType": channel_type.as_str(),
                    "timestamp": r.timestamp,
                    "userId": r.user_id,
                    "states": r.states,
                    "statesCount": r.states_count,
                })
            );
        }
        StateCommand::Set(a) => {
            let c = &a.channel;
            let pairs: BTreeMap<String, String> = a.pairs.iter().cloned().collect();
            let r = presence
                .set_state(c.name(), c.channel_type(), pairs)
                .await
                .map_err(|e| explain(&e, true))?;
            println!(
                "{}",
                json!({
                    "event": "setStateResponse",
                    "channelName": c.name(),
                    "channelType": c.channel_type().as_str(),
                    "timestamp": r.timestamp,
                })
            );
        }
        StateCommand::Remove(a) => {
            let c = &a.channel;
            let keys = (!a.keys.is_empty()).then(|| a.keys.clone());
            let r = presence
                .remove_state(c.name(), c.channel_type(), keys)
                .await
                .map_err(|e| explain(&e, true))?;
            println!(
                "{}",
                json!({
                    "event": "removeStateResponse",
                    "channelName": c.name(),
                    "channelType": c.channel_type().as_str(),
                    "timestamp": r.timestamp,
                })
            );
        }
    }
    Ok(())
}
