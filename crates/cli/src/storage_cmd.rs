//! `switchboard storage`: channel and user metadata (`channel|user get|set|update|remove`)
//! through the Rust SDK's storage handle (api.md §6). Each command logs in, prints its
//! reply as one JSON object per line with the spec's camelCase names, and logs out;
//! errors go to stderr with code and reason.

use crate::args::{ChannelArgs, ConnectArgs, parse_pair};
use crate::connect::{LinkWatch, connect};
use crate::output::{explain, metadata_json};
use clap::{Args, Subcommand};
use serde_json::json;
use std::collections::BTreeMap;
use switchboard_client::{
    Client, MetadataItem, MetadataOptions, RemoveMetadataOptions, RemoveUserMetadataOptions,
    UserMetadataOptions,
};

/// `storage` subcommands.
#[derive(Subcommand)]
pub enum StorageCommand {
    /// Metadata of a message channel (or, with --stream, a stream channel).
    #[command(subcommand)]
    Channel(ChannelCommand),
    /// Metadata of a user: this user, or another with --of USER (R146).
    #[command(subcommand)]
    User(UserCommand),
}

/// `storage channel` subcommands.
#[derive(Subcommand)]
pub enum ChannelCommand {
    /// Print a channel's whole metadata (getChannelMetadata).
    Get(ChannelGetArgs),
    /// Create or overwrite items, keeping the others (setChannelMetadata, R135).
    #[command(long_about = WRITE_HELP)]
    Set(ChannelWriteArgs),
    /// Overwrite items that must all exist (updateChannelMetadata, R136).
    #[command(long_about = WRITE_HELP)]
    Update(ChannelWriteArgs),
    /// Delete the listed keys, or every item when none is listed (removeChannelMetadata).
    #[command(long_about = REMOVE_HELP)]
    Remove(ChannelRemoveArgs),
}

/// `storage user` subcommands.
#[derive(Subcommand)]
pub enum UserCommand {
    /// Print a user's whole metadata (getUserMetadata).
    Get(UserGetArgs),
    /// Create or overwrite items, keeping the others (setUserMetadata, R135).
    #[command(long_about = WRITE_HELP)]
    Set(UserWriteArgs),
    /// Overwrite items that must all exist (updateUserMetadata, R136).
    #[command(long_about = WRITE_HELP)]
    Update(UserWriteArgs),
    /// Delete the listed keys, or every item when none is listed (removeUserMetadata).
    #[command(long_about = REMOVE_HELP)]
    Remove(UserRemoveArgs),
}

const WRITE_HELP: &str = "\
Write metadata items given as KEY=VALUE (at least one; the value may contain '=').

set creates missing items and overwrites existing ones (R135); update fails with -12014 \
and changes nothing if a listed key does not exist (R136). The write is atomic (R142).

Guards (R138-R140): --revision KEY=REV (repeatable) makes the write succeed only if that \
item's current revision is REV (0 = only if the item does not exist yet, set only; -1 = \
no check, the default); --major-revision N does the same for the whole object. A failed \
guard is -12014. --lock NAME lets the write through only while this user owns lock NAME \
of the same channel (R143, -12008); note that the command logs in as --user-id for this \
one call, replacing any other session of that user (one session per user id). \
--add-timestamp / --add-user-id record the write's time and writer in the written items \
(R144).

Prints {\"event\":\"setChannelMetadataResponse\" (or update…, …UserMetadata…), \
\"totalCount\", \"majorRevision\", …}.";

const REMOVE_HELP: &str = "\
Delete the listed KEYs (values are not given), or every item when no key is listed \
(R137).

--revision KEY=REV (repeatable, for listed keys) and --major-revision N guard the remove \
as for set (R138, R139; 0 is invalid here, -12005); --lock NAME gates it on owning that \
lock (R143). Prints {\"event\":\"removeChannelMetadataResponse\" (or \
removeUserMetadataResponse), \"totalCount\", \"majorRevision\", …}.";

/// Guards, lock gate and recording flags of a write.
#[derive(Args)]
pub struct WriteOptions {
    /// Revision guard of one item: KEY=REV (-1 no check, 0 create only, >0 must match).
    #[arg(long = "revision", value_name = "KEY=REV", value_parser = parse_revision)]
    revisions: Vec<(String, i64)>,
    /// Revision guard of the whole object (-1 no check, 0 create only, >0 must match).
    #[arg(long, value_name = "N", default_value_t = -1, allow_negative_numbers = true)]
    major_revision: i64,
    /// Write only while this user owns this lock of the same channel (R143).
    #[arg(long = "lock", value_name = "NAME")]
    lock_name: Option<String>,
    /// Record the server time of the write in each written item (`updated`).
    #[arg(long)]
    add_timestamp: bool,
    /// Record the writer in each written item (`authorUid`).
    #[arg(long)]
    add_user_id: bool,
}

impl WriteOptions {
    fn options(&self) -> MetadataOptions {
        MetadataOptions {
            major_revision: self.major_revision,
            lock_name: self.lock_name.clone().unwrap_or_default(),
            add_timestamp: self.add_timestamp,
            add_user_id: self.add_user_id,
        }
    }

    /// The items to send: `pairs` with their --revision guards; a guard for a key not
    /// listed is an error.
    fn items(&self, pairs: &[(String, String)]) -> anyhow::Result<Vec<MetadataItem>> {
        let revisions: BTreeMap<&str, i64> = self
            .revisions
            .iter()
            .map(|(k, r)| (k.as_str(), *r))
            .collect();
        if let Some(k) = revisions
            .keys()
            .find(|k| !pairs.iter().any(|(key, _)| key == *k))
        {
            anyhow::bail!("--revision {k}=…: {k} is not one of the listed keys");
        }
        Ok(pairs
            .iter()
            .map(|(k, v)| {
                MetadataItem::new(k, v)
                    .with_revision(revisions.get(k.as_str()).copied().unwrap_or(-1))
            })
            .collect())
    }

    /// The keys to remove, with their --revision guards.
    fn keys(&self, keys: &[String]) -> anyhow::Result<Vec<MetadataItem>> {
        let pairs: Vec<(String, String)> =
            keys.iter().map(|k| (k.clone(), String::new())).collect();
        self.items(&pairs)
    }
}

/// `storage channel get` flags.
#[derive(Args)]
pub struct ChannelGetArgs {
    #[command(flatten)]
    conn: ConnectArgs,
    #[command(flatten)]
    channel: ChannelArgs,
}

/// `storage channel set|update` flags.
#[derive(Args)]
pub struct ChannelWriteArgs {
    #[command(flatten)]
    conn: ConnectArgs,
    #[command(flatten)]
    channel: ChannelArgs,
    /// Items to write.
    #[arg(required = true, value_name = "KEY=VALUE", value_parser = parse_pair)]
    pairs: Vec<(String, String)>,
    #[command(flatten)]
    write: WriteOptions,
}

/// `storage channel remove` flags.
#[derive(Args)]
pub struct ChannelRemoveArgs {
    #[command(flatten)]
    conn: ConnectArgs,
    #[command(flatten)]
    channel: ChannelArgs,
    /// Keys to delete; none = every item.
    #[arg(value_name = "KEY")]
    keys: Vec<String>,
    #[command(flatten)]
    write: WriteOptions,
}

/// `storage user get` flags.
#[derive(Args)]
pub struct UserGetArgs {
    #[command(flatten)]
    conn: ConnectArgs,
    /// The user whose metadata to read (default: --user-id).
    #[arg(long = "of", value_name = "USER")]
    of: Option<String>,
}

/// `storage user set|update` flags.
#[derive(Args)]
pub struct UserWriteArgs {
    #[command(flatten)]
    conn: ConnectArgs,
    /// The user whose metadata to write (default: --user-id).
    #[arg(long = "of", value_name = "USER")]
    of: Option<String>,
    /// Items to write.
    #[arg(required = true, value_name = "KEY=VALUE", value_parser = parse_pair)]
    pairs: Vec<(String, String)>,
    #[command(flatten)]
    write: WriteOptions,
}

/// `storage user remove` flags.
#[derive(Args)]
pub struct UserRemoveArgs {
    #[command(flatten)]
    conn: ConnectArgs,
    /// The user whose metadata to change (default: --user-id).
    #[arg(long = "of", value_name = "USER")]
    of: Option<String>,
    /// Keys to delete; none = every item.
    #[arg(value_name = "KEY")]
    keys: Vec<String>,
    #[command(flatten)]
    write: WriteOptions,
}

/// Parses `KEY=REV` (REV an integer, possibly negative).
fn parse_revision(s: &str) -> Result<(String, i64), String> {
    let (k, r) = parse_pair(s).map_err(|_| format!("expected KEY=REV, got {s:?}"))?;
    let r = r
        .trim()
        .parse::<i64>()
        .map_err(|_| format!("expected an integer revision in {s:?}"))?;
    Ok((k, r))
}

/// Runs a `storage` command.
pub async fn run(cmd: StorageCommand) -> anyhow::Result<()> {
    let conn = match &cmd {
        StorageCommand::Channel(c) => match c {
            ChannelCommand::Get(a) => &a.conn,
            ChannelCommand::Set(a) | ChannelCommand::Update(a) => &a.conn,
            ChannelCommand::Remove(a) => &a.conn,
        },
        StorageCommand::User(c) => match c {
            UserCommand::Get(a) => &a.conn,
            UserCommand::Set(a) | UserCommand::Update(a) => &a.conn,
            UserCommand::Remove(a) => &a.conn,
        },
    };
    check(&cmd)?;
    let client = connect(conn).await?;
    let mut link = LinkWatch::new(&client);
    let result = match &cmd {
        StorageCommand::Channel(c) => channel(&client, c).await,
        StorageCommand::User(c) => user(&client, c).await,
    };
    let result = link.annotate(result).await;
    let _ = client.logout().await;
    result
}

/// Fails on --revision flags for keys the command does not list, before logging in.
fn check(cmd: &StorageCommand) -> anyhow::Result<()> {
    match cmd {
        StorageCommand::Channel(ChannelCommand::Set(a) | ChannelCommand::Update(a)) => {
            a.write.items(&a.pairs).map(drop)
        }
        StorageCommand::Channel(ChannelCommand::Remove(a)) => a.write.keys(&a.keys).map(drop),
        StorageCommand::User(UserCommand::Set(a) | UserCommand::Update(a)) => {
            a.write.items(&a.pairs).map(drop)
        }
        StorageCommand::User(UserCommand::Remove(a)) => a.write.keys(&a.keys).map(drop),
        StorageCommand::Channel(ChannelCommand::Get(_))
        | StorageCommand::User(UserCommand::Get(_)) => Ok(()),
    }
}

async fn channel(client: &Client, cmd: &ChannelCommand) -> anyhow::Result<()> {
    let storage = client.storage();
    let (event, c, r) = match cmd {
        ChannelCommand::Get(a) => {
            let c = &a.channel;
            let d = storage
                .get_channel_metadata(c.name(), c.channel_type())
                .await
                .map_err(|e| explain(&e, true))?;
            println!(
                "{}",
                json!({
                    "event": "getChannelMetadataResponse",
                    "channelName": c.name(),
                    "channelType": c.channel_type().as_str(),
                    "totalCount": d.total_count,
                    "majorRevision": d.major_revision,
                    "metadata": metadata_json(&d),
                })
            );
            return Ok(());
        }
        ChannelCommand::Set(a) => {
            let c = &a.channel;
            let items = a.write.items(&a.pairs)?;
            let r = storage
                .set_channel_metadata(c.name(), c.channel_type(), items, a.write.options())
                .await;
            ("setChannelMetadataResponse", c, r)
        }
        ChannelCommand::Update(a) => {
            let c = &a.channel;
            let items = a.write.items(&a.pairs)?;
            let r = storage
                .update_channel_metadata(c.name(), c.channel_type(), items, a.write.options())
                .await;
            ("updateChannelMetadataResponse", c, r)
        }
        ChannelCommand::Remove(a) => {
            let c = &a.channel;
            let options = RemoveMetadataOptions {
                items: a.write.keys(&a.keys)?,
                options: a.write.options(),
            };
            let r = storage
                .remove_channel_metadata(c.name(), c.channel_type(), options)
                .await;
            ("removeChannelMetadataResponse", c, r)
        }
    };
    let r = r.map_err(|e| explain(&e, true))?;
    println!(
        "{}",
        json!({
            "event": event,
            "channelName": r.channel_name,
            "channelType": c.channel_type().as_str(),
            "timestamp": r.timestamp,
            "totalCount": r.total_count,
            "majorRevision": r.major_revision,
        })
    );
    Ok(())
}

async fn user(client: &Client, cmd: &UserCommand) -> anyhow::Result<()> {
    let storage = client.storage();
    let (event, r) = match cmd {
        UserCommand::Get(a) => {
            let d = storage
                .get_user_metadata(a.of.as_deref())
                .await
                .map_err(|e| explain(&e, true))?;
            println!(
                "{}",
                json!({
                    "event": "getUserMetadataResponse",
                    "userId": a.of.as_deref().unwrap_or(client.user_id()),
                    "totalCount": d.total_count,
                    "majorRevision": d.major_revision,
                    "metadata": metadata_json(&d),
                })
            );
            return Ok(());
        }
        UserCommand::Set(a) => {
            let options = UserMetadataOptions {
                user_id: a.of.clone(),
                options: a.write.options(),
            };
            let r = storage
                .set_user_metadata(a.write.items(&a.pairs)?, options)
                .await;
            ("setUserMetadataResponse", r)
        }
        UserCommand::Update(a) => {
            let options = UserMetadataOptions {
                user_id: a.of.clone(),
                options: a.write.options(),
            };
            let r = storage
                .update_user_metadata(a.write.items(&a.pairs)?, options)
                .await;
            ("updateUserMetadataResponse", r)
        }
        UserCommand::Remove(a) => {
            let options = RemoveUserMetadataOptions {
                user_id: a.of.clone(),
                items: a.write.keys(&a.keys)?,
                options: a.write.options(),
            };
            let r = storage.remove_user_metadata(options).await;
            ("removeUserMetadataResponse", r)
        }
    };
    let r = r.map_err(|e| explain(&e, true))?;
    println!(
        "{}",
        json!({
            "event": event,
            "userId": r.user_id,
            "timestamp": r.timestamp,
            "totalCount": r.total_count,
            "majorRevision": r.major_revision,
        })
    );
    Ok(())
}
