//! Stream channels and topics: join a channel, publish in a topic, follow its
//! publishers.
//!
//! Run `switchboard serve`, export `SWITCHBOARD_APP_ID` / `SWITCHBOARD_APP_CERT` as it
//! prints them (see `examples/common/mod.rs`), then in two terminals:
//!
//! ```text
//! cargo run -p switchboard-client --example stream_topics -- alice
//! cargo run -p switchboard-client --example stream_topics -- bob
//! ```
//!
//! Each joins stream channel `arena` (with an RTC token for it), becomes a publisher of
//! topic `moves`, follows every publisher there, and publishes a move every second;
//! topic events (publishers joining and leaving) and the others' moves are printed
//! until Ctrl-C.

mod common;

use futures_util::StreamExt;
use std::time::Duration;
use switchboard_client::{JoinOptions, JoinTopicOptions, Payload, PublishTopicOptions};

#[tokio::main]
async fn main() {
    let user = std::env::args().nth(1).unwrap_or_else(|| "alice".into());
    let (name, topic) = ("arena", "moves");
    let client = common::login(&user).await;
    let channel = client.stream_channel(name).expect("valid channel name");
    let options = JoinOptions {
        token: Some(common::rtc_token(name, &user)),
        ..Default::default()
    };
    // Like the Go SDK's `Join`, the reply carries who publishes in which topic.
    let joined = channel.join(options).await.expect("join");
    for (topic, publishers) in joined.topics() {
        println!("topic {topic}: {}", publishers.join(", "));
    }
    let meta = JoinTopicOptions {
        meta: format!("{user}'s pieces"),
        ..Default::default()
    };
    channel.join_topic(topic, meta).await.expect("join topic");
    let mut topic_events = channel.topic_events();
    let mut messages = channel.messages();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut n = 0u32;
    loop {
        tokio::select! {
            Some(Ok(e)) = topic_events.next() => {
                println!("topic event {:?} from {:?}", e.event_type, e.publisher);
                // Follow every current publisher (incremental: new ones are added).
                match channel.subscribe_topic(topic, None).await {
                    Ok(_) => println!("  following {:?}", channel.get_subscribed_user_list(topic)),
                    Err(e) => eprintln!("  subscribe_topic: {e}"),
                }
            }
            Some(Ok(m)) = messages.next() => {
                let text = match &m.message { Payload::Text(s) => s.clone(), Payload::Binary(b) => format!("{b:?}") };
                println!("[{}/{}] {}: {text}", m.channel_name, m.topic_name, m.publisher);
            }
            _ = tick.tick() => {
                n += 1;
                let mv = format!("move {n} by {user}");
                if let Err(e) = channel.publish_topic_message(topic, mv, PublishTopicOptions::default()).await {
                    eprintln!("publish: {e}");
                }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    channel.leave().await.expect("leave");
    client.logout().await.expect("logout");
}
