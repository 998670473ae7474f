//! `switchboard history`: the stored messages of a channel or a conversation, newest
//! first, one JSON object per line, then a page summary.

use crate::args::ConnectArgs;
use crate::connect::{LinkWatch, connect};
use crate::output::explain;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Args;
use serde_json::json;
use switchboard_client::{ChannelType, Payload};

/// `history` flags.
#[derive(Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    conn: ConnectArgs,
    /// The conversation with this user instead of a message channel.
    #[arg(long, env = "SWITCHBOARD_TO_USER")]
    to_user: bool,
    /// Messages per page, 1-100 (R162).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100))]
    count: u32,
    /// Newest end, ms (0 = now).
    #[arg(long, default_value_t = 0)]
    start: u64,
    /// Oldest end, ms (0 = no bound).
    #[arg(long, default_value_t = 0)]
    end: u64,
    /// Follow `newStart` until everything in the range is printed: a `historyPage` line
    /// after each page, then `historyEnd` with the total count and the pages read.
    #[arg(long)]
    all: bool,
    /// Channel name, or user id with --to-user.
    channel: String,
}

/// Runs `history`: one JSON object per stored message, newest first.
pub async fn history(args: HistoryArgs) -> anyhow::Result<()> {
    let client = connect(&args.conn).await?;
    let mut link = LinkWatch::new(&client);
    let channel_type = if args.to_user {
        ChannelType::User
    } else {
        ChannelType::Message
    };
    let mut start = args.start;
    let (mut total, mut pages) = (0u64, 0u64);
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
        total += page.message_list.len() as u64;
        pages += 1;
        println!(
            "{}",
            json!({"event": "historyPage", "count": page.message_list.len(), "newStart": page.new_start})
        );
        if !args.all {
            break Ok(());
        }
        if page.new_start == 0 {
            println!(
                "{}",
                json!({"event": "historyEnd", "count": total, "pages": pages})
            );
            break Ok(());
        }
        start = page.new_start;
    };
    let result = link.annotate(result).await;
    let _ = client.logout().await;
    result
}
