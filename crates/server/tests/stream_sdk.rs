//! Stream channels through the Rust SDK over real sockets (api.md §4, R88, R90–R114):
//! `client.stream_channel`, join / leave, topic roles and their events, topic
//! subscriptions and messages, the channel's own link and token, and recovery — a
//! resume replays missed topic messages, and a rejoin into a new session restores the
//! topic roles and followed publishers and recovers what was missed, exactly once in
//! order.

mod common;

use common::proxy::FaultProxy;
use common::*;
use std::time::Duration;
use switchboard_client::{
    ChannelType, Client, ErrorCode, Event, EventStream, JoinOptions, JoinTopicOptions,
    LinkOperation, LinkReason, LinkState, MessageEvent, Payload, PublishTopicOptions,
    StreamChannel, SubscribedFailedReason, TopicEvent, TopicEventType,
};
use tokio::time::{Instant, sleep, sleep_until};

/// Join options with a one-hour RTC token of `user` for `channel`.
fn join_options(channel: &str, user: &str) -> JoinOptions {
    JoinOptions {
        token: Some(rtc_for_secs(channel, user, 3600)),
        ..Default::default()
    }
}

/// The stream channel `name` of `client`, joined.
async fn joined(client: &Client, name: &str) -> StreamChannel {
    let ch = client.stream_channel(name).expect("valid channel name");
    ch.join(join_options(name, client.user_id()))
        .await
        .unwrap_or_else(|e| panic!("{} joins {name}: {e}", client.user_id()));
    ch
}

/// Meta `meta`, other options default.
fn meta(meta: &str) -> JoinTopicOptions {
    JoinTopicOptions {
        meta: meta.into(),
        ..Default::default()
    }
}

fn users(list: &[&str]) -> Option<Vec<String>> {
    Some(list.iter().map(|u| u.to_string()).collect())
}

/// The next topic event; panics on timeout, end or lag.
async fn next_topic(stream: &mut EventStream<TopicEvent>, what: &str) -> TopicEvent {
    next_within(stream, STEP, what)
        .await
        .unwrap_or_else(|| panic!("topic stream ended while waiting for {what}"))
        .unwrap_or_else(|e| panic!("topic stream lagged while waiting for {what}: {e}"))
}

/// The next topic event whose publisher is `user` (skipping the others: SNAPSHOTs and
/// events of other members queued since the join).
async fn next_about(stream: &mut EventStream<TopicEvent>, user: &str, what: &str) -> TopicEvent {
    loop {
        let e = next_topic(stream, what).await;
        if e.publisher == user {
            return e;
        }
    }
}

/// `(topic, user, meta)` of every publisher an event lists.
fn listed(e: &TopicEvent) -> Vec<(String, String, String)> {
    e.topic_infos
        .iter()
        .flat_map(|t| {
            t.publishers.iter().map(|p| {
                (
                    t.topic_name.clone(),
                    p.publisher_user_id.clone(),
                    p.publisher_meta.clone(),
                )
            })
        })
        .collect()
}

fn triple(topic: &str, user: &str, meta: &str) -> (String, String, String) {
    (topic.into(), user.into(), meta.into())
}

// ---------------------------------------------------------------------------------------
// Handles, join, leave
// ---------------------------------------------------------------------------------------

/// R88: `stream_channel` is local and synchronous (no login needed), refuses an invalid
/// name with −10008, and every handle of one name shares one state.
#[tokio::test]
async fn r88_stream_channel_is_local_and_one_state_per_name() {
    let server = TestServer::start().await;
    let offline = server.client("nobody");
    let ch = offline
        .stream_channel("room")
        .expect("R88: created without login or traffic");
    assert_eq!(ch.name(), "room");
    assert_eq!(ch.link_state(), LinkState::Idle);
    for bad in ["", "null", "_hidden", "a\u{1}b", &"x".repeat(65)] {
        let e = offline
            .stream_channel(bad)
            .err()
            .unwrap_or_else(|| panic!("R88/R7: {bad:?} must be refused"));
        assert_eq!(
            e.code,
            ErrorCode::InvalidChannelName.as_i32(),
            "R7: {bad:?}: {e}"
        );
    }
    let e = ch
        .join(JoinOptions::default())
        .await
        .expect_err("join needs a login");
    assert_eq!(e.code, ErrorCode::NotLogin.as_i32(), "{e}");
    assert_eq!(
        ch.link_state(),
        LinkState::Idle,
        "a refused call changes nothing"
    );

    let alice = server.login("alice").await;
    let bob = server.login("bob").await;
    let a1 = alice.stream_channel("room").expect("handle");
    let a2 = alice.stream_channel("room").expect("same name, same state");
    let bob_room = joined(&bob, "room").await;
    bob_room
        .join_topic("t", JoinTopicOptions::default())
        .await
        .expect("bob publishes in t");
    a1.join(join_options("room", "alice"))
        .await
        .expect("join through one handle");
    assert_eq!(
        a2.link_state(),
        LinkState::Connected,
        "R88: the other handle sees the join"
    );
    a2.subscribe_topic("t", users(&["bob"]))
        .await
        .expect("subscribe through the other handle");
    assert_eq!(
        a1.get_subscribed_user_list("t"),
        ["bob"],
        "R88/R114: one state for both handles"
    );
}

/// R90, R92, R94–R96: the joiner gets a SNAPSHOT of every topic with its publishers
/// and their meta; the channel's link goes IDLE → CONNECTING → CONNECTED; leave ends
/// the channel's streams and clears its local state, and topic calls then fail −11001.
#[tokio::test]
async fn r92_join_snapshot_lists_topics_publishers_and_meta_and_leave_clears_everything() {
    let server = TestServer::start().await;
    let alice = server.login("alice").await;
    let carol = server.login("carol").await;
    let a = joined(&alice, "stage").await;
    a.join_topic("video", meta("cam-1")).await.expect("video");
    a.join_topic("audio", meta("mic")).await.expect("audio");
    let c = joined(&carol, "stage").await;
    c.join_topic("video", meta("cam-2")).await.expect("video");

    let bob = server.login("bob").await;
    let mut links = bob.link_state_events();
    let mut all_topics = bob.topic_events();
    let b = bob.stream_channel("stage").expect("handle");
    let r = b
        .join(join_options("stage", "bob"))
        .await
        .expect("bob joins");
    assert_eq!(r.channel_name, "stage");
    assert!(r.timestamp > 0);

    let connecting = wait_service(&mut links, "STREAM", LinkState::Connecting, STEP).await;
    assert_eq!(
        (
            connecting.previous_state,
            connecting.operation,
            connecting.reason_code
        ),
        (LinkState::Idle, LinkOperation::Join, LinkReason::Join),
        "{}",
        link_summary(&connecting)
    );
    let connected = wait_service(&mut links, "STREAM", LinkState::Connected, STEP).await;
    assert_eq!(
        (connected.reason_code, connected.affected_channels.clone()),
        (LinkReason::JoinSuccess, vec!["stage".to_string()]),
        "{}",
        link_summary(&connected)
    );

    let mut events = b.topic_events();
    let snap = next_topic(&mut events, "R92 SNAPSHOT").await;
    assert_eq!(snap.event_type, TopicEventType::Snapshot);
    assert_eq!(snap.channel_name, "stage");
    assert_eq!(snap.publisher, "", "SNAPSHOT has no publisher");
    let mut got = listed(&snap);
    got.sort();
    assert_eq!(
        got,
        [
            triple("audio", "alice", "mic"),
            triple("video", "alice", "cam-1"),
            triple("video", "carol", "cam-2"),
        ],
        "R92: every topic with every publisher and its meta"
    );
    assert_eq!(snap.total_topics, 2);
    let video = snap
        .topic_infos
        .iter()
        .find(|t| t.topic_name == "video")
        .expect("video listed");
    assert_eq!(video.total_publisher, 2);
    assert_eq!(
        next_topic(&mut all_topics, "SNAPSHOT on client.topic_events()").await,
        snap,
        "the client-wide stream has it too"
    );

    // Leave: local state cleared, streams end, nothing more arrives (R94, R95).
    b.subscribe_topic("video", None)
        .await
        .expect("follow the publishers");
    let mut msgs = b.messages();
    let r = b.leave().await.expect("leave");
    assert_eq!(r.channel_name, "stage");
    let left = wait_service(&mut links, "STREAM", LinkState::Idle, STEP).await;
    assert_eq!(
        (left.operation, left.reason_code),
        (LinkOperation::Leave, LinkReason::Leave),
        "{}",
        link_summary(&left)
    );
    assert!(
        b.get_subscribed_user_list("video").is_empty(),
        "R94: leave drops the subscriptions"
    );
    assert_eq!(b.link_state(), LinkState::Idle);
    assert_ends(&mut msgs, "R95: the message stream ends on leave").await;
    assert_ends(&mut events, "R95: the topic event stream ends on leave").await;
    let e = b.leave().await.expect_err("leave twice");
    assert_eq!(e.code, ErrorCode::ChannelNotJoined.as_i32(), "{e}");
    let e = b
        .subscribe_topic("video", None)
        .await
        .expect_err("R96: topic call after leave");
    assert_eq!(e.code, ErrorCode::ChannelNotJoined.as_i32(), "R96: {e}");
    let e = b
        .join_topic("video", JoinTopicOptions::default())
        .await
        .expect_err("R96: joinTopic when not joined");
    assert_eq!(e.code, ErrorCode::ChannelNotJoined.as_i32(), "R96: {e}");
}

/// R91: a join while one of the same channel is in progress fails with −10017; a join
/// of a joined channel resolves without change and without a new SNAPSHOT.
#[tokio::test]
async fn r91_duplicate_join_is_refused_and_a_repeated_join_changes_nothing() {
    let server = TestServer::start().await;
    let bob = server.login("bob").await;
    let b = bob.stream_channel("dup").expect("handle");
    let b2 = bob.stream_channel("dup").expect("handle");
    let (first, second) = tokio::join!(
        b.join(join_options("dup", "bob")),
        b2.join(join_options("dup", "bob"))
    );
    first.expect("the first join succeeds");
    let e = second.expect_err("R91: a second join while the first is in progress");
    assert_eq!(
        e.code,
        ErrorCode::DuplicateOperation.as_i32(),
        "R91: −10017 expected, got {e}"
    );
    let mut events = b.topic_events();
    let snap = next_topic(&mut events, "SNAPSHOT").await;
    assert_eq!(snap.event_type, TopicEventType::Snapshot);
    b.join(join_options("dup", "bob"))
        .await
        .expect("R91: joining a joined channel resolves");
    assert_eq!(b.link_state(), LinkState::Connected);
    assert_quiet(
        &mut events,
        Duration::from_millis(300),
        "R91: no new SNAPSHOT for a repeated join",
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// Topic events
// ---------------------------------------------------------------------------------------

/// R93, R94, R99, R100: REMOTE_JOIN (with meta) and REMOTE_LEAVE reach every other
/// member, whatever it follows; a repeated joinTopic sends nothing; leaving the channel
/// is a REMOTE_LEAVE per topic; nobody gets events about itself.
#[tokio::test]
async fn r100_remote_join_and_leave_reach_other_members() {
    let server = TestServer::start().await;
    let alice = server.login("alice").await;
    let bob = server.login("bob").await;
    let a = joined(&alice, "hall").await;
    let b = joined(&bob, "hall").await;
    let mut own = a.topic_events();
    assert_eq!(
        next_topic(&mut own, "alice's SNAPSHOT").await.event_type,
        TopicEventType::Snapshot
    );
    let mut seen = b.topic_events();
    assert_eq!(
        next_topic(&mut seen, "bob's SNAPSHOT").await.event_type,
        TopicEventType::Snapshot
    );
    let mut everything = bob.events();

    let r = a
        .join_topic("news", meta("anchor"))
        .await
        .expect("joinTopic");
    assert_eq!(r.topic_name, "news");
    let e = next_topic(&mut seen, "R100 REMOTE_JOIN").await;
    assert_eq!(
        (e.event_type, e.publisher.as_str(), e.channel_name.as_str()),
        (TopicEventType::RemoteJoin, "alice", "hall"),
        "R100"
    );
    assert_eq!(
        listed(&e),
        [triple("news", "alice", "anchor")],
        "R100: meta"
    );
    assert_eq!(
        a.joined_topics(),
        ["news"],
        "the SDK remembers the role it took"
    );
    let via_events = loop {
        match next_within(&mut everything, STEP, "Event::Topic on events()").await {
            Some(Ok(Event::Topic(t))) => break t,
            Some(Ok(_)) => continue,
            other => panic!("events() ended or lagged: {other:?}"),
        }
    };
    assert_eq!(via_events, e, "client.events() yields Event::Topic");

    a.join_topic("news", meta("other"))
        .await
        .expect("R99: a repeated joinTopic resolves");
    a.leave_topic("news").await.expect("leaveTopic");
    let e = next_topic(&mut seen, "R100 REMOTE_LEAVE").await;
    assert_eq!(
        (e.event_type, e.publisher.as_str()),
        (TopicEventType::RemoteLeave, "alice"),
        "R99: no event for the repeated joinTopic; R100: REMOTE_LEAVE"
    );
    assert_eq!(listed(&e)[0].0, "news");
    assert!(a.joined_topics().is_empty());
    let e = a
        .leave_topic("news")
        .await
        .expect_err("leaveTopic of a topic not joined");
    assert_eq!(e.code, ErrorCode::ChannelTopicNotJoined.as_i32(), "{e}");

    a.join_topic("x", JoinTopicOptions::default())
        .await
        .expect("x");
    a.join_topic("y", JoinTopicOptions::default())
        .await
        .expect("y");
    for _ in 0..2 {
        assert_eq!(
            next_topic(&mut seen, "REMOTE_JOIN").await.event_type,
            TopicEventType::RemoteJoin
        );
    }
    a.leave().await.expect("alice leaves");
    let mut left: Vec<String> = Vec::new();
    for _ in 0..2 {
        let e = next_topic(&mut seen, "R94 REMOTE_LEAVE per topic").await;
        assert_eq!(
            (e.event_type, e.publisher.as_str()),
            (TopicEventType::RemoteLeave, "alice"),
            "R94"
        );
        left.push(listed(&e)[0].0.clone());
    }
    left.sort();
    assert_eq!(left, ["x", "y"], "R94: one REMOTE_LEAVE per topic");
    // Alice's own stream had only her SNAPSHOT, and ended with her leave.
    assert_ends(
        &mut own,
        "alice's topic events: none about herself, then the end",
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// Subscriptions and messages
// ---------------------------------------------------------------------------------------

/// R102, R103: topic messages carry channel type STREAM, the channel, the topic,
/// customType, send_ts and the position the publish got; the queue registered at join
/// misses nothing before `messages()` is called; the publisher gets nothing itself.
#[tokio::test]
async fn r103_topic_messages_carry_topic_send_ts_and_position() {
    let server = TestServer::start().await;
    let alice = server.login("alice").await;
    let bob = server.login("bob").await;
    let a = joined(&alice, "feed").await;
    let e = a
        .publish_topic_message("t", "too early", PublishTopicOptions::default())
        .await
        .expect_err("R102: publish before joinTopic");
    assert_eq!(
        e.code,
        ErrorCode::ChannelTopicNotJoined.as_i32(),
        "R102: {e}"
    );
    a.join_topic("t", JoinTopicOptions::default())
        .await
        .expect("joinTopic");
    let mut own = a.messages();
    let b = joined(&bob, "feed").await;
    let mut everything = bob.events();
    let r = b
        .subscribe_topic("t", users(&["alice"]))
        .await
        .expect("subscribe");
    assert_eq!(
        (r.topic_name.as_str(), r.succeed_users.clone()),
        ("t", vec!["alice".to_string()])
    );
    assert!(r.failed_users.is_empty() && r.failed_details.is_empty());

    let mut sent = Vec::new();
    for (i, payload) in [
        Payload::Text("one".into()),
        Payload::Binary(vec![0u8, 1, 2].into()),
        Payload::Text("three".into()),
    ]
    .into_iter()
    .enumerate()
    {
        let options = PublishTopicOptions {
            custom_type: Some("ct".into()),
            send_ts: 1_000 + i as u64,
        };
        let r = a
            .publish_topic_message("t", payload.clone(), options)
            .await
            .expect("publish");
        assert_eq!(
            (r.channel_name.as_str(), r.topic_name.as_str()),
            ("feed", "t")
        );
        sent.push((payload, r.position));
    }
    // All three reached the client before the app asks for the channel's stream.
    let mut via_events = Vec::new();
    while via_events.len() < 3 {
        match next_within(&mut everything, STEP, "topic message on events()").await {
            Some(Ok(Event::Message(m))) => via_events.push(m),
            Some(Ok(_)) => {}
            other => panic!("events() ended or lagged: {other:?}"),
        }
    }
    let mut msgs = b.messages();
    for (i, (payload, position)) in sent.iter().enumerate() {
        let m = next_message(&mut msgs, "topic message").await;
        assert_eq!(m.channel_type, ChannelType::Stream, "R103");
        assert_eq!(
            (m.channel_name.as_str(), m.topic_name.as_str()),
            ("feed", "t")
        );
        assert_eq!(m.publisher, "alice");
        assert_eq!(&m.message, payload, "payload and its type");
        assert_eq!(m.custom_type, "ct");
        assert_eq!(m.send_ts, 1_000 + i as u64, "send_ts delivered unchanged");
        assert_eq!(m.position, *position, "the position the publish reply gave");
        assert_eq!(m, via_events[i], "events() has the same message");
    }
    let mut later = b.topic_messages("t");
    a.publish_topic_message("t", "four", PublishTopicOptions::default())
        .await
        .expect("publish");
    assert_eq!(
        message_text(&next_message(&mut later, "topic_messages").await),
        "four"
    );
    assert_quiet(
        &mut own,
        Duration::from_millis(200),
        "the publisher does not follow itself (api.md §15 #18)",
    )
    .await;
}

/// R103, R107, R112: a member receives the messages of the publishers it follows in
/// that topic only; following is incremental and unfollowing stops delivery.
#[tokio::test]
async fn r103_only_followed_publishers_reach_a_member() {
    let server = TestServer::start().await;
    let alice = server.login("alice").await;
    let carol = server.login("carol").await;
    let bob = server.login("bob").await;
    let a = joined(&alice, "mix").await;
    let c = joined(&carol, "mix").await;
    for ch in [&a, &c] {
        ch.join_topic("t", JoinTopicOptions::default())
            .await
            .expect("t");
        ch.join_topic("u", JoinTopicOptions::default())
            .await
            .expect("u");
    }
    let b = joined(&bob, "mix").await;
    let mut msgs = b.messages();
    b.subscribe_topic("t", users(&["alice"]))
        .await
        .expect("follow alice in t");
    let o = PublishTopicOptions::default;
    for i in 0..3 {
        a.publish_topic_message("t", format!("a-t-{i}"), o())
            .await
            .expect("publish");
        c.publish_topic_message("t", format!("c-t-{i}"), o())
            .await
            .expect("publish");
        a.publish_topic_message("u", format!("a-u-{i}"), o())
            .await
            .expect("publish");
    }
    a.publish_topic_message("t", "a-t-end", o())
        .await
        .expect("publish");
    let mut got = Vec::new();
    loop {
        let m = message_text(&next_message(&mut msgs, "alice's messages in t").await);
        let end = m == "a-t-end";
        got.push(m);
        if end {
            break;
        }
    }
    assert_eq!(
        got,
        ["a-t-0", "a-t-1", "a-t-2", "a-t-end"],
        "R103: only alice in t, in order"
    );

    // R107: add carol; R112: drop alice.
    b.subscribe_topic("t", users(&["carol"]))
        .await
        .expect("follow carol too");
    b.unsubscribe_topic("t", users(&["alice"]))
        .await
        .expect("unfollow alice");
    a.publish_topic_message("t", "a-after", o())
        .await
        .expect("publish");
    c.publish_topic_message("t", "c-after", o())
        .await
        .expect("publish");
    let m = next_message(&mut msgs, "carol's message").await;
    assert_eq!(
        (m.publisher.as_str(), message_text(&m).as_str()),
        ("carol", "c-after"),
        "R107/R112: carol followed, alice no more"
    );
    assert_quiet(&mut msgs, Duration::from_millis(200), "nothing else").await;
}

/// R106–R114: `get_subscribed_user_list` answers from local state and follows every
/// subscribe and unsubscribe: pre-subscribed non-publishers count, invalid ids and
/// already followed users fail individually, an empty list follows every publisher.
#[tokio::test]
async fn r114_subscribed_user_list_follows_subscribe_and_unsubscribe() {
    let server = TestServer::start().await;
    let alice = server.login("alice").await;
    let carol = server.login("carol").await;
    let bob = server.login("bob").await;
    let a = joined(&alice, "list").await;
    a.join_topic("t", JoinTopicOptions::default())
        .await
        .expect("alice in t");
    let b = joined(&bob, "list").await;
    b.join_topic("t", JoinTopicOptions::default())
        .await
        .expect("bob in t too");

    let r = b
        .subscribe_topic("t", users(&["alice", "dave", "alice", "bad id\n"]))
        .await
        .expect("subscribe");
    let mut succeed = r.succeed_users.clone();
    succeed.sort();
    assert_eq!(
        succeed,
        ["alice", "dave"],
        "R109: dave (not a publisher yet) is recorded; R110: duplicates once"
    );
    assert_eq!(r.failed_users, ["bad id\n"]);
    assert_eq!(
        r.failed_details[0].error_code,
        SubscribedFailedReason::INVALID_PARAMS,
        "R110"
    );
    assert_eq!(b.get_subscribed_user_list("t"), ["alice", "dave"], "R114");

    let r = b
        .subscribe_topic("t", users(&["alice"]))
        .await
        .expect("again");
    assert!(r.succeed_users.is_empty());
    assert_eq!(
        (r.failed_users.clone(), r.failed_details[0].error_code),
        (
            vec!["alice".to_string()],
            SubscribedFailedReason::ALREADY_SUBSCRIBED_USER
        ),
        "R110"
    );

    let c = joined(&carol, "list").await;
    c.join_topic("t", JoinTopicOptions::default())
        .await
        .expect("carol in t");
    let r = b
        .subscribe_topic("t", None)
        .await
        .expect("R108: every current publisher");
    assert_eq!(
        r.succeed_users,
        ["carol"],
        "R108: all publishers but the caller and those already followed"
    );
    assert_eq!(
        b.get_subscribed_user_list("t"),
        ["alice", "carol", "dave"],
        "R107: incremental"
    );
    assert_eq!(
        bob.stream_channel("list")
            .expect("handle")
            .get_subscribed_user_list("t"),
        ["alice", "carol", "dave"],
        "R88/R114: the same list through another handle"
    );

    let r = b
        .unsubscribe_topic("t", users(&["dave", "eve"]))
        .await
        .expect("unsubscribe");
    assert_eq!(r.failed_details.len(), 1);
    assert_eq!(
        (
            r.failed_details[0].user.as_str(),
            r.failed_details[0].error_code
        ),
        ("eve", SubscribedFailedReason::NOT_SUBSCRIBED_USER)
    );
    assert_eq!(b.get_subscribed_user_list("t"), ["alice", "carol"], "R112");
    b.unsubscribe_topic("t", None)
        .await
        .expect("R112: the whole topic");
    assert!(b.get_subscribed_user_list("t").is_empty(), "R112/R114");
    let e = b
        .unsubscribe_topic("t", None)
        .await
        .expect_err("R113: nothing followed");
    assert_eq!(
        e.code,
        ErrorCode::ChannelTopicNotSubscribed.as_i32(),
        "R113: {e}"
    );
    let e = b
        .subscribe_topic("nobody-here", None)
        .await
        .expect_err("R111: no publishers");
    assert_eq!(
        e.code,
        ErrorCode::ChannelTopicNotExist.as_i32(),
        "R111: {e}"
    );
    assert!(b.get_subscribed_user_list("nobody-here").is_empty());
}

// ---------------------------------------------------------------------------------------
// The channel's token, logout
// ---------------------------------------------------------------------------------------

/// T54, T55: a channel token that lapses is announced with the channel's name, then the
/// server leaves the channel: the SDK reports the channel's link FAILED (STREAM,
/// SERVER_REJECT, TOKEN_EXPIRED), ends its streams, and the others see REMOTE_LEAVE. A
/// channel whose token was renewed in time stays joined.
#[tokio::test]
async fn t55_channel_token_expiry_fails_the_channel_link_and_renewal_keeps_it() {
    let server = TestServer::start().await;
    let alice = server.login("alice").await;
    let bob = server.login("bob").await;
    let a = joined(&alice, "short").await;
    let mut seen = a.topic_events();
    next_topic(&mut seen, "SNAPSHOT").await;

    let mut tokens = bob.token_events();
    let mut links = bob.link_state_events();
    let short = bob.stream_channel("short").expect("handle");
    let kept = bob.stream_channel("kept").expect("handle");
    for ch in [&short, &kept] {
        ch.join(JoinOptions {
            token: Some(rtc_for_secs(ch.name(), "bob", 3)),
            ..Default::default()
        })
        .await
        .expect("join with a 3 s token");
    }
    short
        .join_topic("t", JoinTopicOptions::default())
        .await
        .expect("role");
    assert_eq!(
        next_topic(&mut seen, "REMOTE_JOIN").await.event_type,
        TopicEventType::RemoteJoin
    );
    let mut msgs = short.messages();
    let mut warned = Vec::new();
    for _ in 0..2 {
        let t = next_within(&mut tokens, STEP, "T54 will-expire")
            .await
            .expect("token stream ended")
            .expect("token stream lagged");
        warned.push(t.expect("a channel token, not the login token"));
    }
    warned.sort();
    assert_eq!(warned, ["kept", "short"], "T54: named by channel");
    kept.renew_token(&rtc_for_secs("kept", "bob", 3600))
        .await
        .expect("renew kept's token");

    let failed = wait_service(
        &mut links,
        "STREAM",
        LinkState::Failed,
        Duration::from_secs(8),
    )
    .await;
    assert_eq!(
        (
            failed.affected_channels.clone(),
            failed.operation,
            failed.reason_code
        ),
        (
            vec!["short".to_string()],
            LinkOperation::ServerReject,
            LinkReason::TokenExpired
        ),
        "T55: {}",
        link_summary(&failed)
    );
    assert_eq!(short.link_state(), LinkState::Failed);
    assert!(short.joined_topics().is_empty(), "local state cleared");
    assert_ends(&mut msgs, "the channel's stream ends").await;
    let e = next_topic(&mut seen, "REMOTE_LEAVE of bob").await;
    assert_eq!(
        (e.event_type, e.publisher.as_str()),
        (TopicEventType::RemoteLeave, "bob")
    );
    // `kept` got the same 3 s token but was renewed.
    // A window, not a wait for a state: past the moment the first token would have
    // expired, nothing may happen to `kept`.
    sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        kept.link_state(),
        LinkState::Connected,
        "a renewed channel token keeps the channel"
    );
    kept.join_topic("still", JoinTopicOptions::default())
        .await
        .expect("kept is still joined on the server");
    // Joining again after the failure: REJOIN.
    short
        .join(join_options("short", "bob"))
        .await
        .expect("join again with a fresh token");
    let again = wait_service(&mut links, "STREAM", LinkState::Connecting, STEP).await;
    assert_eq!(
        again.reason_code,
        LinkReason::Rejoin,
        "{}",
        link_summary(&again)
    );
}

/// api.md §14.2: logout ends every stream of the session's stream channels and clears
/// their local state; the handles can join again after a new login.
#[tokio::test]
async fn logout_clears_stream_channels_and_ends_their_streams() {
    let server = TestServer::start().await;
    let alice = server.login("alice").await;
    let a = joined(&alice, "ch").await;
    a.join_topic("t", JoinTopicOptions::default())
        .await
        .expect("role");
    let bob = server.login("bob").await;
    let b = joined(&bob, "ch").await;
    b.subscribe_topic("t", users(&["alice"]))
        .await
        .expect("follow");
    let mut msgs = b.messages();
    let mut events = b.topic_events();
    let mut links = bob.link_state_events();
    bob.logout().await.expect("logout");
    let idle = wait_service(&mut links, "STREAM", LinkState::Idle, STEP).await;
    assert_eq!(
        idle.reason_code,
        LinkReason::Logout,
        "{}",
        link_summary(&idle)
    );
    assert_eq!(b.link_state(), LinkState::Idle);
    assert!(b.get_subscribed_user_list("t").is_empty());
    assert_ends(&mut msgs, "messages end at logout").await;
    // The SNAPSHOT may still be queued ahead of the end.
    loop {
        match next_within(&mut events, STEP, "topic events end at logout").await {
            None => break,
            Some(Ok(e)) if e.event_type == TopicEventType::Snapshot => continue,
            other => panic!("expected the end, got {other:?}"),
        }
    }
    bob.login(&token("bob")).await.expect("login again");
    b.join(join_options("ch", "bob"))
        .await
        .expect("the same handle joins again");
    assert!(b.get_subscribed_user_list("t").is_empty());
}

// ---------------------------------------------------------------------------------------
// Recovery
// ---------------------------------------------------------------------------------------

/// The subscriber's user id in the recovery tests.
const SUB: &str = "sub";

/// Reads `stream` until `end` arrives; returns the texts before it.
async fn read_until(stream: &mut EventStream<MessageEvent>, end: &str) -> Vec<String> {
    let mut got = Vec::new();
    loop {
        let m = next_message(stream, end).await;
        let t = message_text(&m);
        if t == end {
            return got;
        }
        got.push(t);
    }
}

/// R56, R58 (stream channels): the link is frozen past the keep-alive timeout and later
/// cut; both times the session is resumed with the channel's last STREAM position, and
/// the topic messages published meanwhile arrive exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r58_resume_replays_missed_topic_messages_exactly_once_in_order() {
    let server = TestServer::with(short_timeouts).await;
    let proxy = FaultProxy::start(server.addr).await;
    let sub = Client::new(APP_ID, SUB, proxied(&server, &proxy, 30)).expect("client");
    sub.login(&token(SUB)).await.expect("login");
    let publisher = server.login("pub").await;
    let p = joined(&publisher, "live").await;
    p.join_topic("t", JoinTopicOptions::default())
        .await
        .expect("role");
    let s = joined(&sub, "live").await;
    s.subscribe_topic("t", users(&["pub"]))
        .await
        .expect("follow");
    let mut msgs = s.messages();
    let mut links = sub.link_state_events();
    let o = PublishTopicOptions::default;
    let mut n = 0;
    let mut publish = |count: usize| {
        let p = p.clone();
        let first = n;
        n += count;
        async move {
            for i in first..first + count {
                p.publish_topic_message("t", format!("{i}"), o())
                    .await
                    .expect("publish");
            }
        }
    };
    publish(5).await;

    proxy.freeze();
    let lost = wait_service(&mut links, "MESSAGE", LinkState::Disconnected, STEP).await;
    assert_eq!(
        lost.reason_code,
        LinkReason::KeepAliveTimeout,
        "{}",
        link_summary(&lost)
    );
    publish(20).await;
    proxy.pass();
    let back = wait_service(
        &mut links,
        "MESSAGE",
        LinkState::Connected,
        Duration::from_secs(8),
    )
    .await;
    assert!(back.is_resumed, "R56: resumed: {}", link_summary(&back));
    assert!(
        back.gap_channels.is_empty() && back.unrestored_channels.is_empty(),
        "{}",
        link_summary(&back)
    );
    publish(5).await;

    assert!(eventually(STEP, || proxy.connections() == 1).await);
    proxy.cut();
    publish(20).await;
    let back = wait_service(
        &mut links,
        "MESSAGE",
        LinkState::Connected,
        Duration::from_secs(8),
    )
    .await;
    assert!(back.is_resumed, "R56: resumed: {}", link_summary(&back));
    assert!(
        back.gap_channels.is_empty() && back.unrestored_channels.is_empty(),
        "{}",
        link_summary(&back)
    );
    publish(5).await;
    p.publish_topic_message("t", "end", o())
        .await
        .expect("publish");
    let got = read_until(&mut msgs, "end").await;
    let expected: Vec<String> = (0..n).map(|i| format!("{i}")).collect();
    assert_eq!(got, expected, "R58: every topic message once, in order");
    assert_eq!(
        s.link_state(),
        LinkState::Connected,
        "the channel stays joined"
    );
}

/// R59, R58 (stream channels): a topic publish reaches the server, which delivers it,
/// but its reply is held and the connection cut under it. The SDK cannot know whether
/// it was delivered: it resends the request with the same idempotency key on the next
/// connection, gets its reply, and the message arrives exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r59_topic_publish_cut_mid_flight_is_resent_with_its_key_and_delivered_once() {
    let server = TestServer::with(short_timeouts).await;
    let proxy = FaultProxy::start(server.addr).await;
    let publisher = Client::new(APP_ID, "pub", proxied(&server, &proxy, 30)).expect("client");
    publisher.login(&token("pub")).await.expect("login");
    let p = joined(&publisher, "keyed").await;
    p.join_topic("t", JoinTopicOptions::default())
        .await
        .expect("role");
    let sub = server.login(SUB).await;
    let s = joined(&sub, "keyed").await;
    s.subscribe_topic("t", users(&["pub"]))
        .await
        .expect("follow");
    let mut msgs = s.messages();
    let mut links = publisher.link_state_events();

    proxy.hold_replies();
    let sending = tokio::spawn({
        let p = p.clone();
        async move {
            p.publish_topic_message("t", "once", PublishTopicOptions::default())
                .await
        }
    });
    let first = next_message(&mut msgs, "the publish, delivered before the cut").await;
    assert_eq!(message_text(&first), "once");
    proxy.cut();
    proxy.pass();
    // Without the resend this fails with −10025; without the key it arrives twice.
    let reply = sending.await.expect("task").expect("the publish completes");
    assert_eq!(
        reply.position, first.position,
        "the reply of the first attempt"
    );
    let back = wait_service(&mut links, "MESSAGE", LinkState::Connected, STEP).await;
    assert_eq!(
        back.reason_code,
        LinkReason::ReconnectSuccess,
        "{}",
        link_summary(&back)
    );
    p.publish_topic_message("t", "end", PublishTopicOptions::default())
        .await
        .expect("publish");
    let got = read_until(&mut msgs, "end").await;
    assert!(got.is_empty(), "R58: delivered once, not again: {got:?}");
}

/// R54, R58 with R94–R107 (stream channels): the subscriber's session expires while it
/// is away (presence 1 s, connections refused). The SDK starts a new session and rejoins
/// the channel in one request with its token, its topic role (with meta), the
/// publisher it follows and its last position: the others see its role come back, the
/// topic messages published meanwhile arrive exactly once, in order — those of a
/// publisher it does not follow not at all — and its own publications reach its
/// followers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r58_rejoin_after_session_loss_restores_roles_subscriptions_and_missed_messages() {
    let server = TestServer::with(short_timeouts).await;
    let proxy = FaultProxy::start(server.addr).await;
    let sub = Client::new(APP_ID, SUB, proxied(&server, &proxy, 1)).expect("client");
    sub.login(&token(SUB)).await.expect("login");
    let publisher = server.login("pub").await;
    let carol = server.login("carol").await;
    let p = joined(&publisher, "live").await;
    let c = joined(&carol, "live").await;
    p.join_topic("t", meta("p-meta")).await.expect("pub in t");
    c.join_topic("t", meta("c-meta")).await.expect("carol in t");

    let s = joined(&sub, "live").await;
    s.join_topic("mine", meta("m")).await.expect("sub's role");
    s.subscribe_topic("t", users(&["pub"]))
        .await
        .expect("follow pub only");
    let mut msgs = s.messages();
    let mut sub_topics = s.topic_events();
    let first = next_topic(&mut sub_topics, "SNAPSHOT").await;
    assert_eq!(first.event_type, TopicEventType::Snapshot);
    let mut pub_topics = p.topic_events();
    let e = next_about(&mut pub_topics, SUB, "REMOTE_JOIN of sub").await;
    assert_eq!(listed(&e), [triple("mine", SUB, "m")]);
    p.subscribe_topic("mine", users(&[SUB]))
        .await
        .expect("pub follows sub");
    let mut pub_msgs = p.messages();
    let mut links = sub.link_state_events();

    let o = PublishTopicOptions::default;
    p.publish_topic_message("t", "t:0", o())
        .await
        .expect("publish");
    assert_eq!(message_text(&next_message(&mut msgs, "t:0").await), "t:0");

    proxy.refuse();
    assert!(eventually(STEP, || proxy.connections() == 1).await);
    proxy.cut();
    let away_since = Instant::now();
    wait_service(&mut links, "MESSAGE", LinkState::Disconnected, STEP).await;
    for i in 1..=5 {
        p.publish_topic_message("t", format!("t:{i}"), o())
            .await
            .expect("publish while the session waits");
    }
    wait_session_gone(&publisher, SUB).await;
    let e = next_about(&mut pub_topics, SUB, "REMOTE_LEAVE when sub's session ends").await;
    assert_eq!(
        (e.event_type, e.publisher.as_str()),
        (TopicEventType::RemoteLeave, SUB),
        "R94: the session's end drops its role"
    );
    for i in 6..=20 {
        p.publish_topic_message("t", format!("t:{i}"), o())
            .await
            .expect("publish after the session ended");
        c.publish_topic_message("t", format!("carol:{i}"), o())
            .await
            .expect("carol publishes too");
    }
    // The outage lasts 3 s (the fault under test); the session's end was polled above.
    sleep_until(away_since + Duration::from_secs(3)).await;
    proxy.pass();

    let back = wait_service(
        &mut links,
        "MESSAGE",
        LinkState::Connected,
        Duration::from_secs(8),
    )
    .await;
    assert_eq!(
        (back.operation, back.reason_code, back.is_resumed),
        (
            LinkOperation::Reconnected,
            LinkReason::ReconnectSuccess,
            false
        ),
        "R54: a new session: {}",
        link_summary(&back)
    );
    assert!(
        back.gap_channels.is_empty() && back.unrestored_channels.is_empty(),
        "everything restored, nothing lost: {}",
        link_summary(&back)
    );
    assert_eq!(
        s.link_state(),
        LinkState::Connected,
        "the channel stays joined"
    );
    assert_eq!(s.joined_topics(), ["mine"], "the role is kept");
    assert_eq!(
        s.get_subscribed_user_list("t"),
        ["pub"],
        "R114: the followed list is kept"
    );

    // The others see the role back, with its meta (R100).
    let e = next_about(&mut pub_topics, SUB, "REMOTE_JOIN of the restored role").await;
    assert_eq!(
        (e.event_type, listed(&e)),
        (TopicEventType::RemoteJoin, vec![triple("mine", SUB, "m")]),
        "the rejoin restores the topic role with its meta"
    );
    // The rejoin ends with a new SNAPSHOT (api.md §9.4).
    let snap = next_topic(&mut sub_topics, "SNAPSHOT after the rejoin").await;
    assert_eq!(snap.event_type, TopicEventType::Snapshot, "{snap:?}");
    let mut now = listed(&snap);
    now.sort();
    assert_eq!(
        now,
        [
            triple("mine", SUB, "m"),
            triple("t", "carol", "c-meta"),
            triple("t", "pub", "p-meta"),
        ]
    );

    for i in 21..=25 {
        p.publish_topic_message("t", format!("t:{i}"), o())
            .await
            .expect("publish after the rejoin");
        c.publish_topic_message("t", format!("carol:{i}"), o())
            .await
            .expect("carol publishes too");
    }
    p.publish_topic_message("t", "t:end", o())
        .await
        .expect("publish");
    let got = read_until(&mut msgs, "t:end").await;
    let expected: Vec<String> = (1..=25).map(|i| format!("t:{i}")).collect();
    assert_eq!(
        got, expected,
        "R58/R103: missed messages of the followed publisher once each, in order; none of carol"
    );

    // Sub's restored role works: its follower gets what it publishes.
    s.publish_topic_message("mine", "from sub", o())
        .await
        .expect("sub publishes in its restored topic");
    let m = next_message(&mut pub_msgs, "sub's message").await;
    assert_eq!(
        (
            m.publisher.as_str(),
            m.topic_name.as_str(),
            message_text(&m).as_str()
        ),
        (SUB, "mine", "from sub")
    );
}
