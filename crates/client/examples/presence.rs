//! Presence: who is in a channel, where a user is, and temporary state.
//!
//! Run `switchboard serve`, export `SWITCHBOARD_APP_ID` / `SWITCHBOARD_APP_CERT` as it
//! prints them (see `examples/common/mod.rs`), then:
//!
//! ```text
//! cargo run -p switchboard-client --example presence -- alice lobby
//! cargo run -p switchboard-client --example presence -- bob lobby    # in another terminal
//! ```
//!
//! Each one sets its state (`mood`), lists the members with their state, asks where the
//! other users are, and prints presence events (joins, leaves, state changes) until
//! Ctrl-C.

mod common;

use futures_util::StreamExt;
use switchboard_client::{ChannelType, SubscribeOptions, WhoNowOptions};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let user = args.next().unwrap_or_else(|| "alice".into());
    let channel = args.next().unwrap_or_else(|| "lobby".into());
    let client = common::login(&user).await;
    let mut sub = client
        .subscribe(&channel, SubscribeOptions::default())
        .await
        .expect("subscribe");
    let mut events = sub.presence();
    let presence = client.presence();
    presence
        .set_state(&channel, ChannelType::Message, [("mood", "curious")])
        .await
        .expect("set state");

    let options = WhoNowOptions {
        include_state: true,
        ..Default::default()
    };
    let who = presence
        .who_now(&channel, ChannelType::Message, options)
        .await
        .expect("whoNow");
    println!("{} in #{channel}:", who.total_occupancy);
    for member in &who.occupants {
        println!("  {} {:?}", member.user_id, member.states);
        let where_now = presence.where_now(&member.user_id).await.expect("whereNow");
        let names: Vec<_> = where_now
            .channels
            .iter()
            .map(|c| c.channel_name.as_str())
            .collect();
        println!("    is in: {}", names.join(", "));
    }

    println!("presence events of #{channel} (Ctrl-C to stop):");
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(e)) => println!(
                    "  {:?} {} {:?}",
                    e.event_type, e.publisher, e.state_changed
                ),
                Some(Err(lagged)) => println!("  ({lagged})"),
                None => break,
            },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    client.logout().await.expect("logout");
}
