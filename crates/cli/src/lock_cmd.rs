//! `switchboard lock`: named locks of a channel (`set|remove|acquire|release|revoke|get`)
//! through the Rust SDK's lock handle (api.md §7). Each command logs in, prints its reply
//! as one JSON object per line with the spec's camelCase names, and logs out; errors go
//! to stderr with code and reason.

use crate::args::{ChannelArgs, ConnectArgs};
use crate::connect::{LinkWatch, connect};
use crate::output::{detail_json, explain, lock_json};
use clap::{Args, Subcommand};
use futures_util::StreamExt;
use serde_json::{Value, json};
use switchboard_client::{Client, LockEventType, LockResponse};

/// `lock` subcommands. Every one names the channel first (a message channel, or a
/// stream channel with --stream), then the lock.
#[derive(Subcommand)]
pub enum LockCommand {
    /// Define a free lock (setLock); --ttl in seconds, default 10, clamped to 10-300.
    Set(SetArgs),
    /// Delete a lock and any ownership (removeLock).
    Remove(LockArgs),
    /// Take a lock (acquireLock); see --help for what happens when the command ends.
    ///
    /// The lock belongs to this command's login: when the command logs out the lock is
    /// freed. Without --hold the command therefore only shows whether the lock could be
    /// taken (-14007 when someone else holds it). With --hold it keeps the lock until
    /// Ctrl-C, then releases it and logs out; it prints EXPIRED and fails if the lock
    /// is lost meanwhile. With --retry it waits in line (arrival order) while another
    /// user holds the lock, for as long as it takes (Ctrl-C gives up).
    Acquire(AcquireArgs),
    /// Free a lock this user owns (releaseLock).
    ///
    /// The command's login is a new session that replaces any other session of the
    /// same user (one session per user id), so it can only release a lock it owns in
    /// this session; it is mostly useful to see -14006 (R154).
    Release(LockArgs),
    /// Free a lock if --owner is its current owner (revokeLock).
    Revoke(RevokeArgs),
    /// List every lock of a channel with its owner and ttl (getLock).
    Get(GetArgs),
}

/// A channel and one of its locks.
#[derive(Args)]
pub struct LockArgs {
    #[command(flatten)]
    conn: ConnectArgs,
    #[command(flatten)]
    channel: ChannelArgs,
    /// Lock name.
    lock: String,
}

/// `lock set` flags.
#[derive(Args)]
pub struct SetArgs {
    #[command(flatten)]
    lock: LockArgs,
    /// Seconds the lock stays with an owner whose connection is lost (default 10,
    /// clamped to 10-300, R150).
    #[arg(long, value_name = "S")]
    ttl: Option<u32>,
}

/// `lock acquire` flags.
#[derive(Args)]
pub struct AcquireArgs {
    #[command(flatten)]
    lock: LockArgs,
    /// Wait in line while another user holds the lock (R152).
    #[arg(long)]
    retry: bool,
    /// Keep the lock until Ctrl-C, then release it.
    #[arg(long)]
    hold: bool,
}

/// `lock revoke` flags.
#[derive(Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    lock: LockArgs,
    /// The user expected to own the lock (R155).
    #[arg(long, value_name = "USER")]
    owner: String,
}

/// `lock get` flags.
#[derive(Args)]
pub struct GetArgs {
    #[command(flatten)]
    conn: ConnectArgs,
    #[command(flatten)]
    channel: ChannelArgs,
}

fn response_json(event: &str, r: &LockResponse) -> Value {
    json!({
        "event": event,
        "channelName": r.channel_name,
        "channelType": r.channel_type.as_str(),
        "lockName": r.lock_name,
        "timestamp": r.timestamp,
    })
}

/// Runs a `lock` command.
pub async fn run(cmd: LockCommand) -> anyhow::Result<()> {
    let conn = match &cmd {
        LockCommand::Set(a) => &a.lock.conn,
        LockCommand::Remove(a) | LockCommand::Release(a) => &a.conn,
        LockCommand::Acquire(a) => &a.lock.conn,
        LockCommand::Revoke(a) => &a.lock.conn,
        LockCommand::Get(a) => &a.conn,
    };
    let client = connect(conn).await?;
    let mut link = LinkWatch::new(&client);
    let result = lock(&client, &cmd, &mut link).await;
    let result = link.annotate(result).await;
    let _ = client.logout().await;
    result
}

async fn lock(client: &Client, cmd: &LockCommand, link: &mut LinkWatch) -> anyhow::Result<()> {
    let locks = client.lock();
    let (event, r) = match cmd {
        LockCommand::Set(a) => {
            let (c, l) = (&a.lock.channel, &a.lock.lock);
            let r = locks.set_lock(c.name(), c.channel_type(), l, a.ttl).await;
            ("setLockResponse", r)
        }
        LockCommand::Remove(a) => {
            let r = locks
                .remove_lock(a.channel.name(), a.channel.channel_type(), &a.lock)
                .await;
            ("removeLockResponse", r)
        }
        LockCommand::Acquire(a) => return acquire(client, a, link).await,
        LockCommand::Release(a) => {
            let r = locks
                .release_lock(a.channel.name(), a.channel.channel_type(), &a.lock)
                .await;
            ("releaseLockResponse", r)
        }
        LockCommand::Revoke(a) => {
            let (c, l) = (&a.lock.channel, &a.lock.lock);
            let r = locks
                .revoke_lock(c.name(), c.channel_type(), l, &a.owner)
                .await;
            ("revokeLockResponse", r)
        }
        LockCommand::Get(a) => {
            let c = &a.channel;
            let list = locks
                .get_lock(c.name(), c.channel_type())
                .await
                .map_err(|e| explain(&e, true))?;
            println!(
                "{}",
                json!({
                    "event": "getLockResponse",
                    "channelName": c.name(),
                    "channelType": c.channel_type().as_str(),
                    "totalLocks": list.len(),
                    "lockDetails": list.iter().map(detail_json).collect::<Vec<_>>(),
                })
            );
            return Ok(());
        }
    };
    let r = r.map_err(|e| explain(&e, true))?;
    println!("{}", response_json(event, &r));
    Ok(())
}

/// `lock acquire`: acquires (waiting in line with --retry), and with --hold keeps the
/// lock until Ctrl-C (or until it expires) and releases it.
async fn acquire(client: &Client, a: &AcquireArgs, link: &mut LinkWatch) -> anyhow::Result<()> {
    let locks = client.lock();
    let (c, l) = (&a.lock.channel, &a.lock.lock);
    // Registered before acquiring, so an EXPIRED right after is not missed.
    let mut events = client.lock_events();
    let acquire = locks.acquire_lock(c.name(), c.channel_type(), l, a.retry);
    let r = tokio::select! {
        r = acquire => r.map_err(|e| explain(&e, true))?,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted while waiting for the lock"),
    };
    println!("{}", response_json("acquireLockResponse", &r));
    if !a.hold {
        return Ok(());
    }
    let expired = async {
        while let Some(item) = events.next().await {
            if let Ok(e) = item
                && e.event_type == LockEventType::Expired
                && e.channel_name == c.name()
                && e.lock_name == *l
            {
                return Some(e);
            }
        }
        None
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {
            let r = locks
                .release_lock(c.name(), c.channel_type(), l)
                .await
                .map_err(|e| explain(&e, true))?;
            println!("{}", response_json("releaseLockResponse", &r));
            Ok(())
        }
        Some(e) = expired => {
            println!("{}", lock_json(&e));
            anyhow::bail!("lost the lock: it expired")
        }
        // A lost session (kicked by another login of this user, token expired) takes
        // the lock with it: say so rather than wait for a Ctrl-C.
        why = link.failed() => Err(why.context("lost the lock")),
    }
}
