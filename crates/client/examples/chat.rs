//! Chat in a message channel, with direct (USER) messages and optional end-to-end
//! encryption.
//!
//! Run `switchboard serve`, export `SWITCHBOARD_APP_ID` / `SWITCHBOARD_APP_CERT` as it
//! prints them (see `examples/common/mod.rs`), then in two terminals:
//!
//! ```text
//! cargo run -p switchboard-client --example chat -- alice room
//! cargo run -p switchboard-client --example chat -- bob room
//! ```
//!
//! Type a line to send it to the channel; `/to USER TEXT` sends a USER message; Ctrl-D
//! or Ctrl-C leaves. With `SWITCHBOARD_CIPHER_KEY=secret` set in both terminals the
//! payloads are encrypted end to end (AES-256-GCM): the server relays bytes it cannot
//! read, and a client with another key reports what it cannot open instead of showing
//! it.

mod common;

use futures_util::StreamExt;
use switchboard_client::{
    ChannelType, EncryptionMode, Payload, PresenceEventType, PublishOptions, SubscribeOptions,
};
use tokio::io::{AsyncBufReadExt, BufReader};

fn show(p: &Payload) -> String {
    match p {
        Payload::Text(s) => s.clone(),
        Payload::Binary(b) => format!("<{} bytes>", b.len()),
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (user, channel) = match (args.next(), args.next()) {
        (Some(u), Some(c)) => (u, c),
        _ => {
            eprintln!("usage: chat USER CHANNEL");
            std::process::exit(2);
        }
    };
    let mut config = common::config();
    if let Ok(key) = std::env::var("SWITCHBOARD_CIPHER_KEY") {
        config =
            config.with_encryption(EncryptionMode::Aes256Gcm, key, b"switchboard chat".to_vec());
    }
    let client = common::login_with(&user, config).await;
    let mut sub = client
        .subscribe(&channel, SubscribeOptions::default())
        .await
        .expect("subscribe");
    println!("{user} in #{channel}; type to talk, /to USER TEXT for a direct message");

    let mut messages = sub.messages();
    let mut presence = sub.presence();
    let mut direct = client.user_messages();
    let mut errors = client.error_events();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            Some(Ok(m)) = messages.next() => println!("[#{}] {}: {}", m.channel_name, m.publisher, show(&m.message)),
            Some(Ok(m)) = direct.next() => println!("[from {}] {}", m.publisher, show(&m.message)),
            Some(Ok(p)) = presence.next() => match p.event_type {
                PresenceEventType::Snapshot => {
                    let who: Vec<_> = p.snapshot.unwrap_or_default().into_iter().map(|u| u.user_id).collect();
                    println!("* here: {}", who.join(", "));
                }
                PresenceEventType::RemoteJoin => println!("* {} joined", p.publisher),
                PresenceEventType::RemoteLeave | PresenceEventType::RemoteTimeout => println!("* {} left", p.publisher),
                _ => {}
            },
            Some(Ok(e)) = errors.next() => println!("! a message from {} could not be read: {}", e.publisher, e.error.reason),
            line = lines.next_line() => {
                let Ok(Some(line)) = line else { break };
                let result = if let Some(rest) = line.strip_prefix("/to ") {
                    let (to, text) = rest.split_once(' ').unwrap_or((rest, ""));
                    let options = PublishOptions { channel_type: ChannelType::User, ..Default::default() };
                    client.publish(to, text, options).await
                } else if !line.is_empty() {
                    client.publish(&channel, line, PublishOptions::default()).await
                } else {
                    continue;
                };
                if let Err(e) = result {
                    eprintln!("! {e}");
                }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    client.logout().await.expect("logout");
}
