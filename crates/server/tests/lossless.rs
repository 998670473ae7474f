//! Lossless to the app (issue: connection lifecycle): an app that reads its stream more
//! slowly than messages arrive makes the SDK stop reading the socket; the server then
//! closes the connection as a slow consumer, and the SDK resumes and recovers — the app
//! sees every message once, in order, and never a `Lagged` item (api.md R58, R72, §9.11).

mod common;

use common::*;
use futures_util::StreamExt;
use std::time::Duration;
use switchboard_client::{Client, LinkReason, LinkState, Payload, PublishOptions};

const N: u32 = 5_000;
const SIZE: usize = 4 * 1024;

#[tokio::test]
async fn r58_slow_app_reader_loses_nothing_and_the_sdk_recovers_by_itself() {
    // The recovery window holds the whole run, so nothing may be missing.
    let server =
        TestServer::with_engine(retention(2 * N as usize, Duration::from_secs(300)), |c| {
            c.outbound_queue_bytes = 64 * 1024;
            for app in &mut c.apps {
                app.limits.publish_rate_per_channel = 0;
            }
        })
        .await;
    let mut config = server.client_config();
    config.event_capacity = 16;
    config.reconnect_base_delay = Duration::from_millis(50);
    let slow = Client::new(APP_ID, "slow", config).expect("client");
    let mut links = slow.link_state_events();
    slow.login(&token("slow")).await.expect("login");
    let mut sub = subscribed(&slow, "firehose").await;
    let mut msgs = sub.messages();

    let publisher = server.login("publisher").await;
    let pub_task = tokio::spawn(async move {
        let mut payload = vec![0u8; SIZE];
        for i in 0..N {
            payload[..4].copy_from_slice(&i.to_be_bytes());
            publisher
                .publish("firehose", payload.clone(), PublishOptions::default())
                .await
                .expect("publishers never wait on a slow subscriber");
        }
    });

    // The app reads slowly: about 1,000 messages a second.
    for i in 0..N {
        let item = tokio::time::timeout(Duration::from_secs(20), msgs.next())
            .await
            .unwrap_or_else(|_| panic!("message {i} never came"))
            .unwrap_or_else(|| panic!("stream ended before message {i}"));
        let m = item.unwrap_or_else(|lag| panic!("messages must be lossless, got {lag} at {i}"));
        let Payload::Binary(b) = &m.message else {
            panic!("binary expected")
        };
        let got = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        assert_eq!(got, i, "every message once, in order (R72)");
        if i % 20 == 0 {
            // A slow reader on purpose (the back-pressure under test).
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    pub_task.await.expect("publisher");

    // The queue overflow on the server showed as a reconnect that resumed the session.
    let mut saw_drop = false;
    let mut resumed = false;
    while let Ok(Some(Ok(e))) = tokio::time::timeout(Duration::from_millis(200), links.next()).await
    {
        assert!(
            e.gap_channels.is_empty(),
            "nothing fell out of the recovery window: {e:?}"
        );
        if e.current_state == LinkState::Disconnected
            && e.reason_code == LinkReason::ConnectionError
        {
            saw_drop = true;
        }
        if e.current_state == LinkState::Connected && e.is_resumed {
            resumed = true;
        }
    }
    assert!(
        saw_drop,
        "the server closed the stalled connection (SLOW_CONSUMER)"
    );
    assert!(resumed, "the SDK resumed by itself");
    assert_eq!(slow.link_state(), LinkState::Connected);
}

/// R32/R33: a logout goes through even while a stream the app holds but does not read
/// is full (delivery waits on it): the session's streams end first, the Logout reaches
/// the server, and the user is offline at once, not after presenceTimeout.
#[tokio::test]
async fn r32_logout_is_not_held_up_by_a_full_unread_stream() {
    let server = TestServer::with(|c| {
        for app in &mut c.apps {
            app.limits.publish_rate_per_channel = 0;
        }
    })
    .await;
    let mut config = server.client_config();
    config.event_capacity = 4;
    let idle = Client::new(APP_ID, "idle", config).expect("client");
    idle.login(&token("idle")).await.expect("login");
    // Held, never read: its queue fills after 4 messages and delivery waits on it.
    let _held = subscribed(&idle, "busy").await;
    let publisher = server.login("publisher").await;
    for i in 0..20 {
        publisher
            .publish("busy", format!("m{i}"), PublishOptions::default())
            .await
            .expect("publish");
    }
    // Well under the 5 s request timeout: the Logout is not stuck behind the stream.
    tokio::time::timeout(Duration::from_secs(2), idle.logout())
        .await
        .expect("logout completes while a stream is full")
        .expect("logout");
    assert_eq!(idle.link_state(), LinkState::Idle);
    let to_user = PublishOptions {
        channel_type: switchboard_client::ChannelType::User,
        ..Default::default()
    };
    let e = publisher
        .publish("idle", "anyone there?", to_user)
        .await
        .expect_err("the logout reached the server: the user is offline (R33)");
    assert_eq!(
        e.error_code(),
        Some(switchboard_client::ErrorCode::ChannelReceiverOffline)
    );
}
