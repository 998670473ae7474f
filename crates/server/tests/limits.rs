//! Limits and validation: each violation is answered with its own code and a reason
//! naming it, changes nothing, and the session carries on (R7, R63, R64, R66, R67, R74,
//! R75, R77, R171, R172); and the slow-consumer bound of the outbound queue.

mod common;

use bytes::Bytes;
use common::*;
use std::time::Duration;
use switchboard_client::{
    ChannelType, Client, ErrorCode, Event, Payload, PublishOptions, RtmError, SubscribeOptions,
    Subscription,
};
use switchboard_protocol::pb::{self, ClientMessage, server_message};

/// Checks a refusal: code, operation and a reason containing `mentions`.
fn assert_refused(err: &RtmError, code: ErrorCode, op: &str, mentions: &str) {
    assert_eq!(err.code, code.as_i32(), "{err:?}");
    assert_eq!(err.operation, op, "{err:?}");
    assert!(
        err.reason.contains(mentions),
        "reason should name the violation ({mentions:?}): {err:?}"
    );
}

/// R172: after a refusal the session still publishes and receives.
async fn assert_carries_on(client: &Client, sub: &mut Subscription, tag: &str) {
    let mut msgs = sub.messages();
    client
        .publish(sub.channel(), tag, PublishOptions::default())
        .await
        .expect("the session carries on (R172)");
    let m = next_message(&mut msgs, tag).await;
    assert_eq!(text(&m.message), tag);
}

#[tokio::test]
async fn r63_payload_of_32768_bytes_passes_and_32769_fails() {
    let server = TestServer::with(no_publish_rate).await;
    let alice = server.login("alice").await;
    let mut sub = subscribed(&alice, "big").await;
    let mut msgs = sub.messages();

    let max = "a".repeat(32_768);
    alice
        .publish("big", max.clone(), PublishOptions::default())
        .await
        .expect("32,768 bytes is allowed");
    let m = next_message(&mut msgs, "the largest message").await;
    assert_eq!(m.message, Payload::Text(max));
    alice
        .publish("big", vec![7u8; 32_768], PublishOptions::default())
        .await
        .expect("32,768 binary bytes is allowed");

    let err = alice
        .publish("big", "a".repeat(32_769), PublishOptions::default())
        .await
        .expect_err("32,769 bytes is too long");
    assert_refused(
        &err,
        ErrorCode::ChannelMessageLengthExceedLimitation,
        "publish",
        "32769",
    );
    let err = alice
        .publish("big", vec![7u8; 32_769], PublishOptions::default())
        .await
        .expect_err("32,769 binary bytes is too long");
    assert_eq!(err.code, -11010);
    // Strings count in UTF-8 bytes: 16,385 × "é" = 32,770 bytes.
    let err = alice
        .publish("big", "\u{e9}".repeat(16_385), PublishOptions::default())
        .await
        .expect_err("UTF-8 bytes count");
    assert_eq!(err.code, -11010);
    alice
        .publish("big", "\u{e9}".repeat(16_384), PublishOptions::default())
        .await
        .expect("exactly 32,768 UTF-8 bytes");

    // Nothing refused was delivered (R171): next come the 32,768-byte binary, the é
    // string, then the tag of assert_carries_on.
    let m = next_message(&mut msgs, "binary").await;
    assert_eq!(m.message, Payload::Binary(Bytes::from(vec![7u8; 32_768])));
    let m = next_message(&mut msgs, "é string").await;
    assert_eq!(text(&m.message).len(), 32_768);
    drop(msgs);
    assert_carries_on(&alice, &mut sub, "after R63").await;
}

#[tokio::test]
async fn r66_custom_type_of_33_bytes_fails() {
    let server = TestServer::with(no_publish_rate).await;
    let alice = server.login("alice").await;
    let mut sub = subscribed(&alice, "typed").await;
    let mut msgs = sub.messages();
    let with_type = |t: String| PublishOptions {
        custom_type: Some(t),
        ..Default::default()
    };
    let err = alice
        .publish("typed", "x", with_type("c".repeat(33)))
        .await
        .expect_err("33 bytes");
    assert_refused(
        &err,
        ErrorCode::ChannelCustomTypeLengthOverflow,
        "publish",
        "33",
    );
    let ok = "c".repeat(32);
    alice
        .publish("typed", "y", with_type(ok.clone()))
        .await
        .expect("32 bytes");
    let m = next_message(&mut msgs, "typed message").await;
    assert_eq!(
        text(&m.message),
        "y",
        "the refused message was not delivered"
    );
    assert_eq!(m.custom_type, ok, "customType delivered unchanged");
    drop(msgs);
    assert_carries_on(&alice, &mut sub, "after R66").await;
}

#[tokio::test]
async fn r7_invalid_channel_names_fail_with_invalid_channel_name() {
    let server = TestServer::with(no_publish_rate).await;
    let alice = server.login("alice").await;
    let mut sub = subscribed(&alice, "fine").await;
    let long = "c".repeat(65);
    let cases = [
        ("", "empty"),
        ("null", "null"),
        ("_hidden", "'_'"),
        (long.as_str(), "65 bytes"),
        ("a/b", "0x2f"),
        ("a\u{e9}", "0xc3"),
        ("a`b", "0x60"),
    ];
    for (name, mentions) in cases {
        let err = alice
            .subscribe(name, SubscribeOptions::default())
            .await
            .err()
            .unwrap_or_else(|| panic!("subscribe {name:?} must fail"));
        assert_refused(&err, ErrorCode::InvalidChannelName, "subscribe", mentions);
        let err = alice
            .publish(name, "x", PublishOptions::default())
            .await
            .expect_err("publish");
        assert_refused(&err, ErrorCode::InvalidChannelName, "publish", mentions);
        let err = alice.unsubscribe(name).await.expect_err("unsubscribe");
        assert_eq!(err.code, ErrorCode::InvalidChannelName.as_i32(), "{name:?}");
    }
    // The longest allowed name, and every allowed punctuation character (R3).
    let max = "c".repeat(64);
    subscribed(&alice, &max).await;
    alice
        .subscribe(
            "a.b c!#$%&()+-:;<=>?@[]^_{}|~,",
            SubscribeOptions::default(),
        )
        .await
        .expect("the R3 set is allowed");
    assert_carries_on(&alice, &mut sub, "after R7").await;
}

#[tokio::test]
async fn r67_publishes_over_the_channel_rate_fail_and_are_not_delivered() {
    let server = TestServer::with(|c| c.apps[0].limits.publish_rate_per_channel = 10).await;
    let receiver = server.login("receiver").await;
    let mut events = receiver.events();
    subscribed(&receiver, "rated").await;

    // A burst of 30 publishes in one frame, so the server sees them at once.
    let mut raw = server.raw_login("burster").await;
    let msgs: Vec<ClientMessage> = (0..30)
        .map(|i| ClientMessage {
            id: raw.next_id(),
            body: Some(publish_text("rated", &format!("{i}"))),
        })
        .collect();
    raw.send(&msgs).await;
    let mut accepted = Vec::new();
    let mut refused = 0;
    for (i, m) in msgs.iter().enumerate() {
        match raw.reply(m.id).await {
            server_message::Body::Publish(_) => accepted.push(i.to_string()),
            server_message::Body::Error(e) => {
                assert_eq!(e.code, -11025, "{e:?}");
                assert_eq!(e.operation, "publish");
                assert!(e.reason.contains("R67") && e.reason.contains("10"), "{e:?}");
                refused += 1;
            }
            other => panic!("unexpected reply {other:?}"),
        }
    }
    assert!(refused > 0, "a burst of 30 at 10/s must be limited");
    assert!(accepted.len() >= 10, "the burst allowance is accepted");

    // Barrier: a USER message from the same connection after the burst.
    let barrier = publish_body(
        pb::ChannelType::User,
        "receiver",
        pb::MessageType::String,
        Bytes::from_static(b"barrier"),
    );
    let reply = raw.request(barrier).await;
    assert!(
        matches!(reply, server_message::Body::Publish(_)),
        "{reply:?}"
    );
    let mut delivered = Vec::new();
    loop {
        let e = next_within(&mut events, STEP, "barrier")
            .await
            .expect("events")
            .expect("no lag");
        if let Event::Message(m) = e {
            if m.channel_type == ChannelType::User {
                break;
            }
            delivered.push(text(&m.message).to_string());
        }
    }
    assert_eq!(delivered, accepted, "exactly the accepted ones, in order");

    // The limit is per channel: another channel is not affected.
    let reply = raw.request(publish_text("elsewhere", "free")).await;
    assert!(
        matches!(reply, server_message::Body::Publish(_)),
        "{reply:?}"
    );
    // The session carries on: once tokens refill, the channel accepts again (R172).
    let mut ok = false;
    for _ in 0..100 {
        if let server_message::Body::Publish(_) = raw.request(publish_text("rated", "later")).await
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "the channel accepts publishes again after the burst");
}

#[tokio::test]
async fn r77_subscriptions_over_the_limit_fail() {
    let server = TestServer::with(|c| c.apps[0].limits.max_subscriptions = 3).await;
    let alice = server.login("alice").await;
    let mut first = subscribed(&alice, "s1").await;
    subscribed(&alice, "s2").await;
    subscribed(&alice, "s3").await;
    let err = alice
        .subscribe("s4", SubscribeOptions::default())
        .await
        .err()
        .expect("the 4th subscription is over the limit");
    assert_refused(
        &err,
        ErrorCode::ChannelInstanceExceedLimitation,
        "subscribe",
        "3",
    );
    // Subscribing again to one already held is not a new subscription (R81).
    subscribed(&alice, "s2").await;
    // The refused subscribe changed nothing (R171): s4 gets no messages, s1 works.
    let err = alice
        .unsubscribe("s4")
        .await
        .expect_err("s4 not subscribed");
    assert_eq!(err.code, ErrorCode::ChannelNotSubscribed.as_i32());
    assert_carries_on(&alice, &mut first, "after R77").await;
    // Freeing one slot makes room.
    alice.unsubscribe("s3").await.expect("unsubscribe");
    subscribed(&alice, "s4").await;
}

#[tokio::test]
async fn r74_store_in_history_without_history_fails() {
    let server = TestServer::with(no_publish_rate).await;
    let alice = server.login("alice").await;
    let mut sub = subscribed(&alice, "hist").await;
    let err = alice
        .publish(
            "hist",
            "keep me",
            PublishOptions {
                store_in_history: true,
                ..Default::default()
            },
        )
        .await
        .expect_err("no history service");
    assert_refused(&err, ErrorCode::HistoryNotAvailable, "publish", "R74");
    // Not delivered either (R171): the next message is the carry-on tag.
    assert_carries_on(&alice, &mut sub, "after R74").await;
}

#[tokio::test]
async fn r75_publish_with_channel_type_stream_fails() {
    let server = TestServer::with(no_publish_rate).await;
    let alice = server.login("alice").await;
    let mut sub = subscribed(&alice, "streamy").await;
    let err = alice
        .publish(
            "streamy",
            "x",
            PublishOptions {
                channel_type: ChannelType::Stream,
                ..Default::default()
            },
        )
        .await
        .expect_err("STREAM is not valid for publish");
    assert_refused(&err, ErrorCode::InvalidChannelType, "publish", "R75");
    assert_carries_on(&alice, &mut sub, "after R75").await;
}

#[tokio::test]
async fn r64_string_payload_that_is_not_utf8_fails() {
    let server = TestServer::with(no_publish_rate).await;
    let mut raw = server.raw_login("alice").await;
    raw.subscribe("bytes").await;
    let bad = Bytes::from_static(&[b'o', b'k', 0xff, 0xfe]);
    let err = expect_error(
        raw.request(publish_body(
            pb::ChannelType::Message,
            "bytes",
            pb::MessageType::String,
            bad.clone(),
        ))
        .await,
    );
    assert_eq!(err.code, -11009, "{err:?}");
    assert_eq!(err.operation, "publish");
    assert!(err.reason.contains("UTF-8"), "{err:?}");
    // No message type at all is refused too.
    let err = expect_error(
        raw.request(publish_body(
            pb::ChannelType::Message,
            "bytes",
            pb::MessageType::Unspecified,
            bad.clone(),
        ))
        .await,
    );
    assert_eq!(err.code, -11009, "{err:?}");
    // The same bytes as BINARY are fine and are the first thing delivered (R171).
    let reply = raw
        .request(publish_body(
            pb::ChannelType::Message,
            "bytes",
            pb::MessageType::Binary,
            bad.clone(),
        ))
        .await;
    assert!(
        matches!(reply, server_message::Body::Publish(_)),
        "{reply:?}"
    );
    let push = raw.next_push(STEP).await.expect("push");
    let Some(server_message::Body::Message(m)) = push.body else {
        panic!("expected a message push, got {push:?}");
    };
    assert_eq!(m.payload, bad);
    assert_eq!(m.message_type, pb::MessageType::Binary as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_consumer_is_closed_with_4004_and_nobody_else_notices() {
    const N: u32 = 2_000;
    const SIZE: usize = 16 * 1024;
    let server = TestServer::with(|c| {
        c.outbound_queue_bytes = 64 * 1024;
        c.write_timeout = Duration::from_secs(30);
        for app in &mut c.apps {
            app.limits.publish_rate_per_channel = 0;
        }
    })
    .await;
    // The slow one subscribes, then reads nothing until the end.
    let mut slow = server.raw_login("slow").await;
    slow.subscribe("firehose").await;

    let fast = server.login("fast").await;
    let mut sub = subscribed(&fast, "firehose").await;
    let mut msgs = sub.messages();
    // The fast subscriber reports its progress; the publisher stays at most WINDOW
    // messages ahead of it, so the fast queue never holds more than 48 KiB even on a
    // loaded machine, while the slow one (reading nothing) must overflow.
    const WINDOW: u32 = 2;
    let (progress, mut progress_rx) = tokio::sync::watch::channel(0u32);
    let fast_handle = fast.clone();
    let reader = tokio::spawn(async move {
        for i in 0..N {
            let m = match tokio::time::timeout(STEP, futures_util::StreamExt::next(&mut msgs)).await
            {
                Ok(Some(Ok(m))) => m,
                other => panic!(
                    "fast subscriber: no message {i} ({other:?}); link {:?}",
                    fast_handle.link_state()
                ),
            };
            let Payload::Binary(b) = &m.message else {
                panic!("binary expected");
            };
            assert_eq!(b.len(), SIZE);
            let got = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            assert_eq!(got, i, "the fast subscriber gets every message in order");
            let _ = progress.send(i + 1);
        }
    });

    let publisher = server.login("publisher").await;
    let mut payload = vec![0x5au8; SIZE];
    for i in 0..N {
        let paced = tokio::time::timeout(STEP, progress_rx.wait_for(|&done| done + WINDOW > i));
        if !matches!(paced.await, Ok(Ok(_))) {
            break; // the reader is stuck or failed: its own panic says why
        }
        payload[..4].copy_from_slice(&i.to_be_bytes());
        publisher
            .publish("firehose", payload.clone(), PublishOptions::default())
            .await
            .expect("publishers never wait on a slow subscriber");
    }
    tokio::time::timeout(Duration::from_secs(20), reader)
        .await
        .expect("fast subscriber keeps up")
        .expect("fast subscriber saw everything");

    let ended = slow.read_until_closed(Duration::from_secs(10), false).await;
    let closing = ended
        .closing
        .as_ref()
        .unwrap_or_else(|| panic!("no Closing push: {ended:?}"));
    assert_eq!(closing.code, 4004, "SLOW_CONSUMER: {closing:?}");
    assert!(closing.reconnect, "a slow consumer may reconnect");
    assert!(
        ended.closing_was_last,
        "Closing ends what the slow client reads"
    );
    assert!(
        (ended.message_count as u32) < N,
        "the slow consumer cannot have received everything"
    );

    // No effect on the other sessions.
    assert_eq!(fast.link_state(), switchboard_client::LinkState::Connected);
    assert_eq!(
        publisher.link_state(),
        switchboard_client::LinkState::Connected
    );
    assert_carries_on(&fast, &mut sub, "after the slow consumer").await;
}
