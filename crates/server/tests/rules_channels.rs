//! Channel and delivery rules of issue 21, at their defaults: the 60 messages/s channel
//! rate (R67), an empty `customType` (R66), subscribe applying to MESSAGE channels only
//! (R76, R168), the subscribe defaults (R78), a topic without a publisher limit (R104),
//! events handed over one at a time in arrival order (R167), stream channel events
//! emitted by the client (R165), no publishTime (R169), and payloads kept as opaque
//! bytes (R20). Real server, real sockets.

mod common;

use bytes::Bytes;
use common::*;
use std::time::Duration;
use switchboard_client::{ChannelType, ErrorCode, Event, PublishOptions, SubscribeOptions};
use switchboard_protocol::pb::{
    self, ClientMessage, client_message::Body as Req, server_message::Body as Rep,
};
use switchboard_token::RtcRole;
use tokio::time::Instant;

fn rtc(channel: &str, user: &str) -> String {
    switchboard_token::build_rtc_token(
        APP_ID,
        CERT,
        channel,
        user,
        RtcRole::Publisher,
        3600,
        3600,
        now_secs(),
    )
    .expect("rtc token")
}

/// Joins stream channel `channel` (no presence) and, if given, publishes in `topic`.
async fn join_as(raw: &mut RawClient, channel: &str, user: &str, topic: Option<&str>) {
    let reply = raw
        .request(Req::Join(pb::JoinRequest {
            channel_name: channel.into(),
            token: rtc(channel, user),
            with_presence: Some(false),
            ..Default::default()
        }))
        .await;
    assert!(matches!(reply, Rep::Join(_)), "{user} join: {reply:?}");
    if let Some(topic) = topic {
        let reply = raw
            .request(Req::JoinTopic(pb::JoinTopicRequest {
                channel_name: channel.into(),
                topic_name: topic.into(),
                ..Default::default()
            }))
            .await;
        assert!(
            matches!(reply, Rep::JoinTopic(_)),
            "{user} joinTopic: {reply:?}"
        );
    }
}

/// The payload of the next message push of `raw`, skipping every other push; `None`
/// is never returned (panics when the connection closes).
async fn next_message_payload(raw: &mut RawClient, what: &str) -> pb::MessagePush {
    loop {
        let push = raw
            .next_push(STEP)
            .await
            .unwrap_or_else(|| panic!("closed waiting for {what}"));
        if let Some(Rep::Message(m)) = push.body {
            return m;
        }
    }
}

// ---------------------------------------------------------------------------------------
// R67 at its default
// ---------------------------------------------------------------------------------------

/// R67 at the default of 60/s: of a burst of 128 publishes to one channel, the first 60
/// are accepted and no more than the refill since allows; the rest are refused with
/// −11025 and not delivered; over a longer flood the channel never accepts more than
/// 60/s plus the burst; another channel is not affected.
#[tokio::test]
async fn r67_default_rate_of_60_messages_per_second_per_channel() {
    let server = TestServer::start().await;
    let mut receiver = server.raw_login("receiver").await;
    receiver.subscribe("rated").await;
    let mut sender = server.raw_login("sender").await;

    // 128 publishes in two frames, sent without waiting: the bucket holds 60 and refills
    // at 60/s, so at most 60 + 60/s × the time taken (+1) can be accepted.
    let started = Instant::now();
    for frame in 0..2u32 {
        let burst: Vec<ClientMessage> = (0..64)
            .map(|k| {
                let i = frame * 64 + k;
                ClientMessage {
                    id: 1000 + i,
                    body: Some(publish_text("rated", &format!("b{i}"))),
                }
            })
            .collect();
        sender.send(&burst).await;
    }
    let (mut accepted, mut refused) = (Vec::new(), 0);
    for i in 0..128 {
        match sender.reply(1000 + i).await {
            Rep::Publish(_) => accepted.push(format!("b{i}")),
            Rep::Error(e) => {
                assert_eq!(e.code, -11025, "{e:?}");
                assert!(!e.reason.is_empty());
                refused += 1;
            }
            other => panic!("publish {i}: {other:?}"),
        }
    }
    let took = started.elapsed().as_secs_f64();
    let bound = (60.0 + 60.0 * took + 1.0).floor() as usize;
    assert!(
        accepted.len() >= 60 && accepted.len() <= bound && refused == 128 - accepted.len(),
        "accepted {} (bound {bound} for {took:.3} s), refused {refused}",
        accepted.len()
    );
    assert!(refused > 0, "publishes past the rate were refused");
    assert_eq!(
        &accepted[..60],
        &(0..60).map(|i| format!("b{i}")).collect::<Vec<_>>()[..],
        "the first 60 of the burst are the accepted ones"
    );
    // Another channel has its own budget.
    let other = sender.request(publish_text("elsewhere", "x")).await;
    assert!(matches!(other, Rep::Publish(_)), "{other:?}");

    // Exactly the accepted messages reach the subscriber, then a marker sent once the
    // channel accepts again.
    for want in &accepted {
        let m = next_message_payload(&mut receiver, want).await;
        assert_eq!(m.payload, want.as_bytes());
    }
    let deadline = Instant::now() + STEP;
    loop {
        match sender.request(publish_text("rated", "marker")).await {
            Rep::Publish(_) => break,
            Rep::Error(e) if e.code == -11025 && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => panic!("marker: {other:?}"),
        }
    }
    let m = next_message_payload(&mut receiver, "marker").await;
    assert_eq!(m.payload, &b"marker"[..], "nothing refused was delivered");

    // A 1.5 s flood: never more than 60/s (plus the burst of 60) accepted.
    let mut flood = server.raw_login("flooder").await;
    let started = Instant::now();
    let mut ok = 0usize;
    let mut id = 5000;
    while started.elapsed() < Duration::from_millis(1500) {
        let frame: Vec<ClientMessage> = (0..32)
            .map(|k| ClientMessage {
                id: id + k,
                body: Some(publish_text("flooded", "f")),
            })
            .collect();
        flood.send(&frame).await;
        for k in 0..32 {
            if let Rep::Publish(_) = flood.reply(id + k).await {
                ok += 1;
            }
        }
        id += 32;
    }
    let secs = started.elapsed().as_secs_f64();
    let bound = 60.0 + 60.0 * secs + 1.0;
    assert!(
        (ok as f64) <= bound,
        "{ok} accepted in {secs:.2} s, over {bound:.0}"
    );
    assert!(ok >= 60, "the burst itself is accepted: {ok}");
    receiver.assert_alive().await;
}

// ---------------------------------------------------------------------------------------
// R66: an empty customType
// ---------------------------------------------------------------------------------------

/// R66: `customType`, when given, is 1–32 bytes; an empty one fails with −11030 and is
/// not delivered.
#[tokio::test]
async fn r66_empty_custom_type_fails_with_11030() {
    let server = TestServer::start().await;
    let alice = server.login("alice").await;
    let mut sub = alice
        .subscribe("typed", SubscribeOptions::default())
        .await
        .expect("subscribe");
    let mut msgs = sub.messages();
    let err = alice
        .publish(
            "typed",
            "x",
            PublishOptions {
                custom_type: Some(String::new()),
                ..Default::default()
            },
        )
        .await
        .expect_err("an empty customType is refused");
    assert_eq!(
        err.code,
        ErrorCode::ChannelInvalidCustomType.as_i32(),
        "{err:?}"
    );
    alice
        .publish("typed", "after", PublishOptions::default())
        .await
        .expect("publish");
    let m = next_message(&mut msgs, "after").await;
    assert_eq!(
        text(&m.message),
        "after",
        "the refused message was not delivered"
    );
}

// ---------------------------------------------------------------------------------------
// R76: subscribe concerns MESSAGE channels only
// ---------------------------------------------------------------------------------------

/// R76, R168: a MESSAGE subscription and a STREAM channel of the same name are different
/// channels: a subscriber of MESSAGE "same" gets none of stream channel "same"'s topic
/// messages, and a member of the stream channel gets none of the MESSAGE channel's.
#[tokio::test]
async fn r76_subscribe_applies_to_message_channels_only() {
    let server = TestServer::start().await;
    let mut alice = server.raw_login("alice").await;
    alice.subscribe("same").await;
    let mut bob = server.raw_login("bob").await;
    join_as(&mut bob, "same", "bob", Some("t")).await;
    let mut carol = server.raw_login("carol").await;
    join_as(&mut carol, "same", "carol", None).await;
    let reply = carol
        .request(Req::SubscribeTopic(pb::SubscribeTopicRequest {
            channel_name: "same".into(),
            topic_name: "t".into(),
            users: vec!["bob".into()],
        }))
        .await;
    assert!(matches!(reply, Rep::SubscribeTopic(_)), "{reply:?}");

    // A topic message of stream channel "same" reaches its follower only.
    let reply = bob
        .request(Req::PublishTopicMessage(pb::PublishTopicMessageRequest {
            channel_name: "same".into(),
            topic_name: "t".into(),
            message_type: pb::MessageType::String as i32,
            payload: Bytes::from_static(b"topic"),
            ..Default::default()
        }))
        .await;
    assert!(matches!(reply, Rep::PublishTopicMessage(_)), "{reply:?}");
    let m = next_message_payload(&mut carol, "topic message").await;
    // R168: a topic message comes with channelType STREAM and its topic name.
    assert_eq!(
        (m.channel_type, m.topic_name.as_str(), m.payload.as_ref()),
        (pb::ChannelType::Stream as i32, "t", &b"topic"[..])
    );

    // A MESSAGE publish to "same" reaches the MESSAGE subscriber, and it is the first
    // message alice gets: the topic message never reached her.
    let reply = carol.request(publish_text("same", "message")).await;
    assert!(matches!(reply, Rep::Publish(_)), "{reply:?}");
    let m = next_message_payload(&mut alice, "message").await;
    // R168: every other message has an empty topic name.
    assert_eq!(
        (m.channel_type, m.topic_name.as_str(), m.payload.as_ref()),
        (pb::ChannelType::Message as i32, "", &b"message"[..]),
        "alice got a STREAM message through a MESSAGE subscription"
    );
    // ... and not to the stream channel's members: carol's next message is bob's
    // second topic message, not the MESSAGE publish.
    let reply = bob
        .request(Req::PublishTopicMessage(pb::PublishTopicMessageRequest {
            channel_name: "same".into(),
            topic_name: "t".into(),
            message_type: pb::MessageType::String as i32,
            payload: Bytes::from_static(b"topic 2"),
            ..Default::default()
        }))
        .await;
    assert!(matches!(reply, Rep::PublishTopicMessage(_)), "{reply:?}");
    let m = next_message_payload(&mut carol, "second topic message").await;
    assert_eq!(
        m.payload,
        &b"topic 2"[..],
        "a stream member got a MESSAGE-channel publish"
    );
}

// ---------------------------------------------------------------------------------------
// R78: subscribe defaults
// ---------------------------------------------------------------------------------------

/// R78: a subscribe with every option left unset means withMessage: true,
/// withPresence: true, beQuiet: false, withMetadata: false, withLock: false — on the
/// wire (server side) and in the SDK's `SubscribeOptions::default()`.
#[tokio::test]
async fn r78_subscribe_defaults() {
    let d = SubscribeOptions::default();
    assert!(d.with_message && d.with_presence, "{d:?}");
    assert!(!d.be_quiet && !d.with_metadata && !d.with_lock, "{d:?}");

    let server = TestServer::start().await;
    let mut other = server.raw_login("other").await;
    let reply = other
        .request(Req::Subscribe(pb::SubscribeRequest {
            channel_name: "defaults".into(),
            with_presence: Some(true),
            ..Default::default()
        }))
        .await;
    assert!(matches!(reply, Rep::Subscribe(_)), "{reply:?}");

    let mut alice = server.raw_login("alice").await;
    let reply = alice
        .request(Req::Subscribe(pb::SubscribeRequest {
            channel_name: "defaults".into(),
            ..Default::default()
        }))
        .await;
    assert!(matches!(reply, Rep::Subscribe(_)), "{reply:?}");

    // withPresence: alice gets a presence SNAPSHOT listing `other`; beQuiet false: the
    // others see her REMOTE_JOIN.
    let first = alice.next_push(STEP).await.expect("a push");
    match first.body {
        Some(Rep::Presence(p)) => {
            assert_eq!(
                p.event_type,
                pb::PresenceEventType::Snapshot as i32,
                "{p:?}"
            );
            assert!(p.snapshot.iter().any(|u| u.user_id == "other"), "{p:?}");
        }
        other => panic!("expected a presence SNAPSHOT first, got {other:?}"),
    }
    loop {
        let push = other.next_push(STEP).await.expect("a push");
        if let Some(Rep::Presence(p)) = push.body
            && p.event_type == pb::PresenceEventType::RemoteJoin as i32
        {
            assert_eq!(p.publisher, "alice");
            break;
        }
    }

    // withMetadata and withLock false: writes and lock changes send alice nothing;
    // withMessage true: the message published after them is her next push.
    let set = other
        .request(Req::SetMetadata(pb::MetadataWriteRequest {
            channel_type: pb::ChannelType::Message as i32,
            channel_name: "defaults".into(),
            items: vec![pb::MetadataItem {
                key: "k".into(),
                value: "v".into(),
                revision: None,
            }],
            ..Default::default()
        }))
        .await;
    assert!(matches!(set, Rep::SetMetadata(_)), "{set:?}");
    let lock = other
        .request(Req::SetLock(pb::SetLockRequest {
            channel_type: pb::ChannelType::Message as i32,
            channel_name: "defaults".into(),
            lock_name: "l".into(),
            ttl: 0,
        }))
        .await;
    assert!(matches!(lock, Rep::SetLock(_)), "{lock:?}");
    let reply = other.request(publish_text("defaults", "hello")).await;
    assert!(matches!(reply, Rep::Publish(_)), "{reply:?}");
    let next = alice.next_push(STEP).await.expect("a push");
    match next.body {
        Some(Rep::Message(m)) => assert_eq!(m.payload, &b"hello"[..]),
        other => panic!("expected the message (no storage/lock events), got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// R104: no limit on a topic's publishers
// ---------------------------------------------------------------------------------------

/// R104: a topic has no limit on its number of publishers: 100 members (more than the
/// 64 one member may follow, R106) all join one topic, a newcomer's topic SNAPSHOT
/// lists all 100, and following the topic without a list picks 64 of them (R108).
#[tokio::test]
async fn r104_a_topic_takes_100_publishers() {
    let server = TestServer::start().await;
    let mut publishers = Vec::new();
    for i in 0..100 {
        let user = format!("p{i}");
        let mut raw = server.raw_login(&user).await;
        join_as(&mut raw, "crowd", &user, Some("t")).await;
        publishers.push(raw);
    }
    let mut newcomer = server.raw_login("newcomer").await;
    join_as(&mut newcomer, "crowd", "newcomer", None).await;
    let snapshot = loop {
        let push = newcomer.next_push(STEP).await.expect("a push");
        if let Some(Rep::Topic(t)) = push.body
            && t.event_type == pb::TopicEventType::Snapshot as i32
        {
            break t;
        }
    };
    let topic = snapshot
        .topics
        .iter()
        .find(|t| t.topic_name == "t")
        .expect("topic t in the SNAPSHOT");
    assert_eq!(topic.publishers.len(), 100, "every publisher is listed");
    let reply = newcomer
        .request(Req::SubscribeTopic(pb::SubscribeTopicRequest {
            channel_name: "crowd".into(),
            topic_name: "t".into(),
            users: vec![],
        }))
        .await;
    let Rep::SubscribeTopic(s) = reply else {
        panic!("subscribeTopic: {reply:?}")
    };
    assert_eq!(s.succeed_users.len(), 64, "R108: 64 of the 100");
    // Every publisher can still publish in the topic.
    for (i, p) in publishers.iter_mut().enumerate().step_by(33) {
        let reply = p
            .request(Req::PublishTopicMessage(pb::PublishTopicMessageRequest {
                channel_name: "crowd".into(),
                topic_name: "t".into(),
                message_type: pb::MessageType::String as i32,
                payload: Bytes::from(format!("from p{i}")),
                ..Default::default()
            }))
            .await;
        assert!(
            matches!(reply, Rep::PublishTopicMessage(_)),
            "p{i}: {reply:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// R167: one at a time, in arrival order
// ---------------------------------------------------------------------------------------

/// R167: the client hands its events over one at a time in arrival order: 400
/// messages published alternately to two channels, then USER messages, come out of
/// `events()` once each, each channel's in publish order, and the same on each
/// subscription's own stream; a consumer that takes its time (awaits between items)
/// changes neither the order nor the count.
#[tokio::test]
async fn r167_events_are_delivered_one_at_a_time_in_arrival_order() {
    // No channel rate limit here: R67 has its own test.
    let server = TestServer::with(|c| {
        for app in &mut c.apps {
            app.limits.publish_rate_per_channel = 0;
        }
    })
    .await;
    let alice = server.login("alice").await;
    let mut all = alice.events();
    let mut a = alice
        .subscribe(
            "a",
            SubscribeOptions {
                with_presence: false,
                ..Default::default()
            },
        )
        .await
        .expect("subscribe a");
    let mut b = alice
        .subscribe(
            "b",
            SubscribeOptions {
                with_presence: false,
                ..Default::default()
            },
        )
        .await
        .expect("subscribe b");
    let (mut msgs_a, mut msgs_b) = (a.messages(), b.messages());
    let bob = server.login("bob").await;
    let n = 400;
    for i in 0..n {
        let channel = if i % 2 == 0 { "a" } else { "b" };
        bob.publish(channel, format!("{i}"), PublishOptions::default())
            .await
            .unwrap_or_else(|e| {
                panic!("publish {i}: {e}");
            });
    }
    let to_user = PublishOptions {
        channel_type: ChannelType::User,
        ..Default::default()
    };
    for i in 0..20 {
        bob.publish("alice", format!("u{i}"), to_user.clone())
            .await
            .expect("USER publish");
    }

    // The client-wide stream, consumed slowly.
    let (mut next_a, mut next_b, mut next_u) = (0, 1, 0);
    while next_u < 20 {
        let e = next_within(&mut all, STEP, "an event")
            .await
            .expect("events open")
            .expect("events not lagged");
        let Event::Message(m) = e else { continue };
        let body = text(&m.message).to_string();
        match (m.channel_type, m.channel_name.as_str()) {
            (ChannelType::Message, "a") => {
                assert_eq!(body, next_a.to_string(), "channel a out of order");
                next_a += 2;
            }
            (ChannelType::Message, "b") => {
                assert_eq!(body, next_b.to_string(), "channel b out of order");
                next_b += 2;
            }
            (ChannelType::User, "bob") => {
                assert_eq!(body, format!("u{next_u}"), "USER messages out of order");
                next_u += 1;
            }
            other => panic!("unexpected message {other:?}"),
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(
        (next_a, next_b),
        (n, n + 1),
        "every channel message came once"
    );
    for (stream, first, name) in [(&mut msgs_a, 0, "a"), (&mut msgs_b, 1, "b")] {
        for i in (first..n).step_by(2) {
            let m = next_message(stream, name).await;
            assert_eq!(text(&m.message), i.to_string(), "{name}'s own stream");
        }
    }
}

// ---------------------------------------------------------------------------------------
// R165, R169: what events carry
// ---------------------------------------------------------------------------------------

/// R165: every event is emitted by the client: a stream channel's topic and presence
/// events come out of `client.events()`, carrying the channel's type and name. (The
/// Rust SDK also offers them per channel, api.md §14.2.)
#[tokio::test]
async fn r165_stream_channel_events_are_emitted_by_the_client_with_their_channel() {
    let server = TestServer::start().await;
    let alice = server.login("alice").await;
    let mut events = alice.events();
    let channel = alice.stream_channel("sc").expect("stream channel");
    channel
        .join(switchboard_client::JoinOptions {
            token: Some(rtc("sc", "alice")),
            ..Default::default()
        })
        .await
        .expect("join");
    let bob = server.login("bob").await;
    let bobs = bob.stream_channel("sc").expect("stream channel");
    bobs.join(switchboard_client::JoinOptions {
        token: Some(rtc("sc", "bob")),
        ..Default::default()
    })
    .await
    .expect("bob joins");
    bobs.join_topic("t", Default::default())
        .await
        .expect("bob joins topic t");

    let (mut presence_join, mut topic_join) = (false, false);
    let deadline = Instant::now() + STEP;
    while !(presence_join && topic_join) {
        let left = deadline.saturating_duration_since(Instant::now());
        let e = next_within(&mut events, left, "bob's presence and topic events")
            .await
            .expect("events open")
            .expect("not lagged");
        match e {
            Event::Presence(p) if p.publisher == "bob" => {
                assert_eq!(
                    (p.channel_type, p.channel_name.as_str()),
                    (ChannelType::Stream, "sc")
                );
                presence_join = true;
            }
            Event::Topic(t) if t.publisher == "bob" => {
                assert_eq!(t.channel_name, "sc");
                assert_eq!(
                    t.topic_infos.first().map(|i| i.topic_name.as_str()),
                    Some("t")
                );
                topic_join = true;
            }
            _ => {}
        }
    }
}

/// R169: message events have no `publishTime`: the SDK's `MessageEvent` has exactly
/// these fields (a field added to it breaks this destructuring at compile time), and the
/// one time it carries is the server's `timestamp`.
#[tokio::test]
async fn r169_message_events_carry_no_publish_time() {
    let server = TestServer::start().await;
    let alice = server.login("alice").await;
    let mut sub = alice
        .subscribe("plain", SubscribeOptions::default())
        .await
        .expect("subscribe");
    let mut msgs = sub.messages();
    let before = switchboard_protocol::now_ms();
    alice
        .publish("plain", "x", PublishOptions::default())
        .await
        .expect("publish");
    let m = next_message(&mut msgs, "x").await;
    let switchboard_client::MessageEvent {
        channel_type,
        channel_name,
        topic_name,
        message: _,
        custom_type,
        publisher,
        timestamp,
        position: _,
        send_ts,
    } = m;
    assert_eq!(
        (channel_type, channel_name.as_str()),
        (ChannelType::Message, "plain")
    );
    assert_eq!(
        (
            topic_name.as_str(),
            custom_type.as_str(),
            publisher.as_str()
        ),
        ("", "", "alice")
    );
    assert_eq!(send_ts, 0);
    assert!(timestamp >= before, "server time of the publication");
}

// ---------------------------------------------------------------------------------------
// R20: payloads are opaque bytes to the server
// ---------------------------------------------------------------------------------------

/// R20 (the server's part): payloads — such as end-to-end encrypted ones — are relayed
/// and stored as opaque bytes: every byte value 0–255, in a BINARY message, reaches the
/// subscriber and the history unchanged (nothing decoded, trimmed or re-encoded).
#[tokio::test]
async fn r20_binary_payloads_are_relayed_and_stored_as_opaque_bytes() {
    let dir = fresh_dir("rules-r20");
    let history = switchboard_engine_memory::SqliteHistory::open(
        &dir,
        switchboard_engine::HistoryRetention::default(),
    )
    .expect("history");
    let broker = std::sync::Arc::new(switchboard_engine_memory::MemoryBroker::new(
        Default::default(),
    ));
    let server = TestServer::with_parts(
        switchboard_server::Server::new(base_config(), broker)
            .with_history(std::sync::Arc::new(history)),
    )
    .await;
    let alice = server.login("alice").await;
    let mut sub = alice
        .subscribe("sealed", SubscribeOptions::default())
        .await
        .expect("subscribe");
    let mut msgs = sub.messages();
    let sealed: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    alice
        .publish(
            "sealed",
            Bytes::from(sealed.clone()),
            PublishOptions {
                store_in_history: true,
                ..Default::default()
            },
        )
        .await
        .expect("publish");
    let m = next_message(&mut msgs, "the sealed payload").await;
    assert_eq!(
        m.message,
        switchboard_client::Payload::Binary(Bytes::from(sealed.clone()))
    );
    let page = alice
        .history()
        .get_messages("sealed", ChannelType::Message, Default::default())
        .await
        .expect("history");
    assert_eq!(page.message_list.len(), 1);
    assert_eq!(
        page.message_list[0].message,
        switchboard_client::Payload::Binary(Bytes::from(sealed))
    );
    let _ = std::fs::remove_dir_all(&dir);
}
