//! Delivery on MESSAGE and USER channels: fields, who receives what, subscription
//! options, unsubscribe, ordering and positions (api.md §3.3–3.5, §9.2, R65, R66,
//! R68–R72, R81–R83).

mod common;

use bytes::Bytes;
use common::*;
use switchboard_client::{
    ChannelType, Client, ErrorCode, Event, MessageEvent, Payload, PublishOptions, SubscribeOptions,
};
use switchboard_protocol::now_ms;
use switchboard_protocol::pb::{self, ClientMessage, server_message};

fn no_messages() -> SubscribeOptions {
    SubscribeOptions {
        with_message: false,
        ..Default::default()
    }
}

/// Reads `events` up to the message whose payload is `marker` and returns the messages
/// that came before it (a barrier: everything queued for this client before the marker
/// was published arrives before it).
async fn messages_before_marker(
    events: &mut switchboard_client::EventStream<Event>,
    marker: &str,
) -> Vec<MessageEvent> {
    let mut seen = Vec::new();
    loop {
        let e = next_within(events, STEP, &format!("marker {marker}"))
            .await
            .expect("event stream ended")
            .expect("event stream lagged");
        if let Event::Message(m) = e {
            if m.message == Payload::Text(marker.to_string()) {
                return seen;
            }
            seen.push(m);
        }
    }
}

/// Sends `marker` to `user` on its USER channel from `from`.
async fn send_marker(from: &Client, user: &str, marker: &str) {
    from.publish(user, marker, to_user())
        .await
        .expect("marker publish");
}

#[tokio::test]
async fn r65_r66_r69_string_and_binary_reach_every_subscriber_with_all_fields() {
    let server = TestServer::with(no_publish_rate).await;
    let alice = server.login("alice").await;
    let bob = server.login("bob").await;
    let carol = server.login("carol").await;
    let dave = server.login("dave").await;
    let mut dave_events = dave.events();
    let mut subs = Vec::new();
    for c in [&alice, &bob, &carol] {
        let mut s = subscribed(c, "news").await;
        subs.push((c.user_id().to_string(), s.messages()));
    }

    let before = now_ms();
    let r1 = carol
        .publish(
            "news",
            "hello",
            PublishOptions {
                custom_type: Some("greeting".into()),
                ..Default::default()
            },
        )
        .await
        .expect("publish string");
    assert_eq!(r1.channel_name, "news");
    let bin = vec![0u8, 1, 2, 0xff, 0xfe];
    carol
        .publish(
            "news",
            bin.clone(),
            PublishOptions {
                custom_type: Some("blob".into()),
                ..Default::default()
            },
        )
        .await
        .expect("publish binary");
    carol
        .publish("news", "plain", PublishOptions::default())
        .await
        .expect("publish without customType");
    let after = now_ms();

    // Every subscriber, the publisher included (R69), gets all three with every field.
    for (who, stream) in &mut subs {
        let m = next_message(stream, &format!("{who}: string")).await;
        assert_eq!(m.channel_type, ChannelType::Message, "{who}");
        assert_eq!(m.channel_name, "news");
        assert_eq!(m.topic_name, "");
        assert_eq!(m.publisher, "carol");
        assert_eq!(m.message, Payload::Text("hello".into()), "R65 STRING");
        assert_eq!(m.custom_type, "greeting", "R66");
        assert!(
            (before..=after).contains(&m.timestamp),
            "server timestamp in ms (R166): {} not in {before}..={after}",
            m.timestamp
        );
        let m = next_message(stream, &format!("{who}: binary")).await;
        assert_eq!(
            m.message,
            Payload::Binary(Bytes::from(bin.clone())),
            "R65 BINARY"
        );
        assert_eq!(m.custom_type, "blob");
        assert_eq!(m.publisher, "carol");
        let m = next_message(stream, &format!("{who}: plain")).await;
        assert_eq!(m.message, Payload::Text("plain".into()));
        assert_eq!(m.custom_type, "", "no customType is delivered as ''");
    }

    // dave is not subscribed: nothing from "news" reaches him (R69 "no one else").
    send_marker(&alice, "dave", "barrier").await;
    let before_marker = messages_before_marker(&mut dave_events, "barrier").await;
    assert!(before_marker.is_empty(), "dave got {before_marker:?}");
}

#[tokio::test]
async fn r68_publisher_need_not_be_subscribed() {
    let server = TestServer::with(no_publish_rate).await;
    let alice = server.login("alice").await;
    let bob = server.login("bob").await;
    let mut sub = subscribed(&alice, "open").await;
    let mut msgs = sub.messages();
    bob.publish("open", "from outside", PublishOptions::default())
        .await
        .expect("publish without subscribing");
    let m = next_message(&mut msgs, "message").await;
    assert_eq!(m.publisher, "bob");
    assert_eq!(text(&m.message), "from outside");
}

#[tokio::test]
async fn r70_with_message_false_receives_no_messages() {
    let server = TestServer::with(no_publish_rate).await;
    let alice = server.login("alice").await;
    let bob = server.login("bob").await;
    let mut bob_events = bob.events();
    bob.subscribe("quiet", no_messages())
        .await
        .expect("subscribe");
    let mut alice_sub = subscribed(&alice, "quiet").await;
    let mut alice_msgs = alice_sub.messages();

    alice
        .publish("quiet", "not for bob", PublishOptions::default())
        .await
        .expect("publish");
    // Delivered to the subscriber that wants messages…
    let m = next_message(&mut alice_msgs, "alice's copy").await;
    assert_eq!(text(&m.message), "not for bob");
    // …and not to bob.
    send_marker(&alice, "bob", "barrier").await;
    let got = messages_before_marker(&mut bob_events, "barrier").await;
    assert!(got.is_empty(), "withMessage:false still delivered {got:?}");
}

#[tokio::test]
async fn r82_no_messages_after_unsubscribe() {
    let server = TestServer::with(no_publish_rate).await;
    let alice = server.login("alice").await;
    let bob = server.login("bob").await;
    let mut sub = subscribed(&bob, "room").await;
    let mut msgs = sub.messages();
    alice
        .publish("room", "one", PublishOptions::default())
        .await
        .expect("publish");
    assert_eq!(text(&next_message(&mut msgs, "first").await.message), "one");

    bob.unsubscribe("room").await.expect("unsubscribe");
    assert!(
        next_within(&mut msgs, STEP, "end of the subscription stream")
            .await
            .is_none(),
        "the subscription's stream ends on unsubscribe"
    );
    let mut events = bob.events();
    alice
        .publish("room", "two", PublishOptions::default())
        .await
        .expect("publish");
    send_marker(&alice, "bob", "barrier").await;
    let got = messages_before_marker(&mut events, "barrier").await;
    assert!(got.is_empty(), "delivered after unsubscribe: {got:?}");
}

#[tokio::test]
async fn r83_unsubscribe_of_a_channel_not_subscribed_fails() {
    let server = TestServer::with(no_publish_rate).await;
    let bob = server.login("bob").await;
    let err = bob.unsubscribe("never").await.expect_err("not subscribed");
    assert_eq!(
        err.code,
        ErrorCode::ChannelNotSubscribed.as_i32(),
        "{err:?}"
    );
    assert_eq!(err.operation, "unsubscribe");
    assert!(!err.reason.is_empty());

    subscribed(&bob, "once").await;
    bob.unsubscribe("once").await.expect("first unsubscribe");
    let err = bob
        .unsubscribe("once")
        .await
        .expect_err("second unsubscribe");
    assert_eq!(
        err.code,
        ErrorCode::ChannelNotSubscribed.as_i32(),
        "{err:?}"
    );
    // R172: the session carries on.
    subscribed(&bob, "once").await;
}

#[tokio::test]
async fn r81_subscribing_again_replaces_the_options() {
    let server = TestServer::with(no_publish_rate).await;
    let alice = server.login("alice").await;
    let bob = server.login("bob").await;
    let mut events = bob.events();

    subscribed(&bob, "room").await;
    bob.subscribe("room", no_messages())
        .await
        .expect("subscribe again resolves (R81)");
    alice
        .publish("room", "muted", PublishOptions::default())
        .await
        .expect("publish");
    send_marker(&alice, "bob", "barrier-1").await;
    let got = messages_before_marker(&mut events, "barrier-1").await;
    assert!(got.is_empty(), "options not replaced: got {got:?}");

    subscribed(&bob, "room").await;
    alice
        .publish("room", "audible", PublishOptions::default())
        .await
        .expect("publish");
    send_marker(&alice, "bob", "barrier-2").await;
    let got = messages_before_marker(&mut events, "barrier-2").await;
    let texts: Vec<_> = got.iter().map(|m| text(&m.message).to_string()).collect();
    assert_eq!(texts, vec!["audible".to_string()], "exactly one copy");
}

#[tokio::test]
async fn r71_user_message_reaches_only_the_target_with_publisher_as_channel_name() {
    let server = TestServer::with(no_publish_rate).await;
    let alice = server.login("alice").await;
    let bob = server.login("bob").await;
    let carol = server.login("carol").await;
    let mut alice_events = alice.events();
    let mut bob_inbox = bob.user_messages();
    let mut carol_events = carol.events();
    // Even subscribed to a MESSAGE channel named like the target, carol gets nothing.
    subscribed(&carol, "bob").await;

    let r = alice
        .publish(
            "bob",
            "psst",
            PublishOptions {
                channel_type: ChannelType::User,
                custom_type: Some("dm".into()),
                ..Default::default()
            },
        )
        .await
        .expect("bob is online");
    assert_eq!(r.channel_name, "bob", "the reply names the target");
    let m = next_message(&mut bob_inbox, "bob's USER message").await;
    assert_eq!(m.channel_type, ChannelType::User);
    assert_eq!(
        m.channel_name, "alice",
        "api.md §15 #26: the publisher's id"
    );
    assert_eq!(m.publisher, "alice");
    assert_eq!(m.custom_type, "dm");
    assert_eq!(text(&m.message), "psst");
    alice
        .publish("bob", vec![9u8, 8, 7], to_user())
        .await
        .expect("binary to bob");
    let m = next_message(&mut bob_inbox, "bob's binary USER message").await;
    assert_eq!(m.message, Payload::Binary(Bytes::from_static(&[9, 8, 7])));

    send_marker(&bob, "carol", "barrier").await;
    let got = messages_before_marker(&mut carol_events, "barrier").await;
    assert!(got.is_empty(), "carol got {got:?}");
    send_marker(&bob, "alice", "barrier").await;
    let got = messages_before_marker(&mut alice_events, "barrier").await;
    assert!(got.is_empty(), "the publisher got {got:?}");
}

#[tokio::test]
async fn r71_r8_user_message_to_offline_or_invalid_user_fails() {
    let server = TestServer::with(no_publish_rate).await;
    let alice = server.login("alice").await;
    let err = alice
        .publish("nobody", "hello?", to_user())
        .await
        .expect_err("offline");
    assert_eq!(
        err.code,
        ErrorCode::ChannelReceiverOffline.as_i32(),
        "{err:?}"
    );
    assert_eq!(err.operation, "publish");
    assert!(
        err.reason.contains("nobody"),
        "reason names the user: {err:?}"
    );

    let err = alice
        .publish("_bad", "hello?", to_user())
        .await
        .expect_err("invalid target (R8)");
    assert_eq!(err.code, ErrorCode::InvalidChannelName.as_i32(), "{err:?}");

    // Online, then offline after logout.
    let bob = server.login("bob").await;
    alice
        .publish("bob", "hi", to_user())
        .await
        .expect("bob online");
    bob.logout().await.expect("logout");
    let mut last;
    let deadline = tokio::time::Instant::now() + STEP;
    let gone = loop {
        let r = alice.publish("bob", "hi", to_user()).await;
        let done = matches!(&r, Err(e) if e.code == ErrorCode::ChannelReceiverOffline.as_i32());
        last = Some(r);
        if done || tokio::time::Instant::now() > deadline {
            break done;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(gone, "bob still reachable after logout: {last:?}");
}

#[tokio::test]
async fn r72_per_publisher_order_of_200_messages() {
    const N: usize = 200;
    let server = TestServer::with(no_publish_rate).await;
    let receiver = server.login("receiver").await;
    let mut sub = subscribed(&receiver, "ordered").await;
    let mut msgs = sub.messages();

    // Publisher 1: raw, 200 publishes pipelined in frames of 50 (no waiting for replies).
    let mut raw = server.raw_login("piper").await;
    let raw_task = tokio::spawn(async move {
        let mut ids = Vec::new();
        for chunk in (0..N).collect::<Vec<_>>().chunks(50) {
            let msgs: Vec<ClientMessage> = chunk
                .iter()
                .map(|i| {
                    let id = raw.next_id();
                    ids.push(id);
                    ClientMessage {
                        id,
                        body: Some(publish_text("ordered", &format!("piper {i}"))),
                    }
                })
                .collect();
            raw.send(&msgs).await;
        }
        for id in ids {
            let reply = raw.reply(id).await;
            assert!(
                matches!(reply, server_message::Body::Publish(_)),
                "pipelined publish {id}: {reply:?}"
            );
        }
    });
    // Publisher 2: SDK, one after the other, at the same time.
    let sdk = server.login("stepper").await;
    let sdk_task = tokio::spawn(async move {
        for i in 0..N {
            sdk.publish("ordered", format!("stepper {i}"), PublishOptions::default())
                .await
                .expect("publish");
        }
    });

    let mut next = std::collections::HashMap::from([("piper", 0usize), ("stepper", 0usize)]);
    for _ in 0..2 * N {
        let m = next_message(&mut msgs, "ordered message").await;
        let t = text(&m.message).to_string();
        let (who, i) = t.split_once(' ').expect("payload format");
        let i: usize = i.parse().expect("index");
        let expected = next.get_mut(who).expect("known publisher");
        assert_eq!(i, *expected, "publisher {who} out of order (R72)");
        assert_eq!(m.publisher, who);
        *expected += 1;
    }
    raw_task.await.expect("raw publisher");
    sdk_task.await.expect("sdk publisher");
    assert_eq!(next["piper"], N);
    assert_eq!(next["stepper"], N);
}

#[tokio::test]
async fn positions_share_the_epoch_and_offsets_increase_by_one() {
    let server = TestServer::with(no_publish_rate).await;
    let mut sub = server.raw_login("reader").await;
    let start = sub
        .subscribe("log")
        .await
        .position
        .expect("subscribe reply carries the position");
    let alice = server.login("alice").await;
    let mut replies = Vec::new();
    for i in 0..10 {
        let r = alice
            .publish("log", format!("m{i}"), PublishOptions::default())
            .await
            .expect("publish");
        replies.push(r.position);
    }
    let mut sdk_sub = subscribed(&alice, "log").await;
    let mut sdk_msgs = sdk_sub.messages();
    for (i, reply) in replies.iter().enumerate() {
        let push = sub.next_push(STEP).await.expect("message push");
        let Some(server_message::Body::Message(m)) = push.body else {
            panic!("expected a message push, got {push:?}");
        };
        let pos = m.position.expect("push carries a position");
        assert_eq!(pos.epoch, start.epoch, "same epoch");
        assert_eq!(pos.offset, start.offset + 1 + i as u64, "offsets by one");
        assert_eq!(
            (reply.epoch, reply.offset),
            (pos.epoch, pos.offset),
            "publish reply names where the message landed"
        );
        assert_eq!(m.payload, Bytes::from(format!("m{i}")));
        assert_eq!(m.message_type, pb::MessageType::String as i32);
    }
    // The SDK exposes positions on events too.
    alice
        .publish("log", "m10", PublishOptions::default())
        .await
        .expect("publish");
    let m = next_message(&mut sdk_msgs, "SDK message").await;
    assert_eq!(m.position.epoch, start.epoch);
    // Offset 11 is alice's own presence REMOTE_JOIN (events share the channel's
    // stream); she is not sent events about herself, so her next message is at 12.
    assert_eq!(m.position.offset, start.offset + 12);
}

#[tokio::test]
async fn idempotent_retry_is_delivered_once_and_keys_belong_to_their_publisher() {
    let server = TestServer::with(no_publish_rate).await;
    let reader = server.login("reader").await;
    let mut events = reader.events();
    subscribed(&reader, "idem").await;
    let alice = server.login("alice").await;
    let bob = server.login("bob").await;
    let keyed = |k: &str| PublishOptions {
        idempotency_key: Some(k.into()),
        ..Default::default()
    };
    // A retry with the same key gets the first outcome and is not delivered twice.
    let first = alice
        .publish("idem", "alice once", keyed("k1"))
        .await
        .expect("publish");
    let retry = alice
        .publish("idem", "alice once", keyed("k1"))
        .await
        .expect("retry");
    assert_eq!(
        first.position, retry.position,
        "the retry gets the first reply"
    );
    // Another publisher using the same key is not retrying anything: its message must
    // be delivered and land at a new position.
    let other = bob
        .publish("idem", "bob's own", keyed("k1"))
        .await
        .expect("publish");
    send_marker(&alice, "reader", "barrier").await;
    let got: Vec<_> = messages_before_marker(&mut events, "barrier")
        .await
        .into_iter()
        .map(|m| (m.publisher, text(&m.message).to_string()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("alice".to_string(), "alice once".to_string()),
            ("bob".to_string(), "bob's own".to_string()),
        ],
        "a key dedupes one publisher's retries only"
    );
    assert_ne!(other.position, first.position);
}
