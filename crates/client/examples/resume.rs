//! Resume after a network loss: nothing missed, nothing twice.
//!
//! Run `switchboard serve`, export `SWITCHBOARD_APP_ID` / `SWITCHBOARD_APP_CERT` as it
//! prints them (see `examples/common/mod.rs`), then:
//!
//! ```text
//! cargo run -p switchboard-client --example resume
//! ```
//!
//! The example puts a small TCP relay (its own "network") between a subscriber and the
//! server, while a publisher sends numbered messages directly. Twice it cuts every
//! connection through the relay. The subscriber's link goes DISCONNECTED, the SDK
//! reconnects with backoff and resumes its session from the last position it handed
//! over, and the example checks that every message arrived once and in order.

mod common;

use futures_util::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use switchboard_client::{LinkState, Payload, PublishOptions, SubscribeOptions};
use tokio::net::{TcpListener, TcpStream};

const COUNT: u32 = 300;

/// A relay from a local port to `target`; bumping `cut` closes every connection.
async fn relay(target: String, cut: Arc<AtomicU64>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let (target, cut) = (target.clone(), cut.clone());
            tokio::spawn(async move {
                let Ok(mut outbound) = TcpStream::connect(&target).await else {
                    return;
                };
                let epoch = cut.load(Ordering::SeqCst);
                let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
                let cut_now = async {
                    while cut.load(Ordering::SeqCst) == epoch {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                };
                tokio::select! { _ = copy => {}, _ = cut_now => {} }
            });
        }
    });
    format!("ws://{addr}")
}

#[tokio::main]
async fn main() {
    let server = common::config().endpoint;
    let target = server
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap_or("127.0.0.1:7400")
        .to_string();
    let cut = Arc::new(AtomicU64::new(0));
    let mut config = common::config();
    config.endpoint = relay(target, cut.clone()).await;
    config.heartbeat_interval = 5;
    config.reconnect_base_delay = Duration::from_millis(200);

    let subscriber = common::login_with("resume-sub", config).await;
    let publisher = common::login("resume-pub").await;
    let mut links = subscriber.link_state_events();
    let mut sub = subscriber
        .subscribe("resume-demo", SubscribeOptions::default())
        .await
        .expect("subscribe");
    let mut messages = sub.messages();

    let sender = tokio::spawn(async move {
        for i in 1..=COUNT {
            publisher
                .publish("resume-demo", i.to_string(), PublishOptions::default())
                .await
                .expect("publish");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        publisher
    });

    let mut expected = 1u32;
    while expected <= COUNT {
        tokio::select! {
            Some(Ok(m)) = messages.next() => {
                let Payload::Text(text) = &m.message else { continue };
                let n: u32 = text.parse().expect("a number");
                assert_eq!(n, expected, "every message once and in order");
                if n == COUNT / 3 || n == 2 * COUNT / 3 {
                    println!("message {n}: cutting the network");
                    cut.fetch_add(1, Ordering::SeqCst);
                }
                expected += 1;
            }
            Some(Ok(l)) = links.next() => {
                println!("link {:?} -> {:?} ({:?}, resumed: {})", l.previous_state, l.current_state, l.reason_code, l.is_resumed);
                if l.current_state == LinkState::Failed {
                    panic!("the link failed: {}", l.reason);
                }
            }
        }
    }
    println!("all {COUNT} messages arrived once and in order across two network cuts");
    let publisher = sender.await.expect("publisher");
    publisher.logout().await.expect("logout");
    subscriber.logout().await.expect("logout");
}
