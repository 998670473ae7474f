//! `sub --commands`: a running `sub` takes commands on its standard input, one per
//! line, for the calls that act on a live session (api.md §3.5, §4.3–4.7):
//! `unsubscribe CHANNEL`, `join-topic TOPIC [META]`, `leave-topic TOPIC`,
//! `subscribe-topic TOPIC [USER…]`, `unsubscribe-topic TOPIC [USER…]` and `leave`
//! (the stream channel). Each prints its reply as one JSON line among the events, or a
//! `commandError` line with the code and reason; `sub` keeps running either way.

use crate::output::explain;
use serde_json::{Value, json};
use switchboard_client::{Client, JoinTopicOptions, StreamChannel};
use tokio::sync::mpsc;

/// The help text of `--commands`.
pub const HELP: &str = "Read commands from standard input, one per line: unsubscribe CHANNEL, \
join-topic TOPIC [META], leave-topic TOPIC, subscribe-topic TOPIC [USER...], \
unsubscribe-topic TOPIC [USER...], leave (the stream channel). Each prints a JSON reply \
line (or commandError).";

/// Reads standard input on a thread of its own and runs each line's command.
pub async fn run(client: Client, stream: Option<StreamChannel>) {
    let (tx, mut lines) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = lines.recv().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.is_empty() {
            continue;
        }
        let reply = match command(&client, stream.as_ref(), &words).await {
            Ok(v) => v,
            Err(e) => {
                let code = e.downcast_ref::<crate::output::Explained>().map(|x| x.code);
                json!({
                    "event": "commandError",
                    "command": line.trim(),
                    "errorCode": code,
                    "reason": format!("{e:#}"),
                })
            }
        };
        println!("{reply}");
    }
}

/// Runs one command; its reply as JSON.
async fn command(
    client: &Client,
    stream: Option<&StreamChannel>,
    words: &[&str],
) -> anyhow::Result<Value> {
    let stream_of = || stream.ok_or_else(|| anyhow::anyhow!("no --stream channel joined"));
    match words {
        ["unsubscribe", channel] => {
            client
                .unsubscribe(channel)
                .await
                .map_err(|e| explain(&e, true))?;
            Ok(json!({"event": "unsubscribeResponse", "channelName": channel}))
        }
        ["join-topic", topic, meta @ ..] => {
            let s = stream_of()?;
            let options = JoinTopicOptions {
                meta: meta.join(" "),
                ..Default::default()
            };
            let r = s
                .join_topic(topic, options)
                .await
                .map_err(|e| explain(&e, true))?;
            Ok(json!({
                "event": "joinTopicResponse",
                "channelName": s.name(),
                "topicName": r.topic_name,
                "timestamp": r.timestamp,
            }))
        }
        ["leave-topic", topic] => {
            let s = stream_of()?;
            let r = s.leave_topic(topic).await.map_err(|e| explain(&e, true))?;
            Ok(json!({
                "event": "leaveTopicResponse",
                "channelName": s.name(),
                "topicName": r.topic_name,
                "timestamp": r.timestamp,
            }))
        }
        ["subscribe-topic", topic, users @ ..] => {
            let s = stream_of()?;
            let users = (!users.is_empty()).then(|| users.iter().map(|u| u.to_string()).collect());
            let r = s
                .subscribe_topic(topic, users)
                .await
                .map_err(|e| explain(&e, true))?;
            Ok(json!({
                "event": "subscribeTopicResponse",
                "channelName": s.name(),
                "topicName": topic,
                "succeedUsers": r.succeed_users,
                "failedUsers": r.failed_users,
            }))
        }
        ["unsubscribe-topic", topic, users @ ..] => {
            let s = stream_of()?;
            let users = (!users.is_empty()).then(|| users.iter().map(|u| u.to_string()).collect());
            let r = s
                .unsubscribe_topic(topic, users)
                .await
                .map_err(|e| explain(&e, true))?;
            Ok(json!({
                "event": "unsubscribeTopicResponse",
                "channelName": s.name(),
                "topicName": r.topic_name,
                "timestamp": r.timestamp,
            }))
        }
        ["leave"] => {
            let s = stream_of()?;
            s.leave().await.map_err(|e| explain(&e, true))?;
            Ok(json!({"event": "leaveResponse", "channelName": s.name()}))
        }
        _ => anyhow::bail!("unknown command; {HELP}"),
    }
}
