//! Acceptance test of connection recovery (api.md R52–R56, R58): a publisher sends numbered
//! messages to three channels and to the subscriber's user id while the subscriber's
//! link is frozen past its keep-alive timeout several times and cut once; the app must
//! see every number exactly once, in order per stream. And gaps past the recovery
//! log's retention are reported in the reconnect event's `gap_channels`.

mod common;

use bytes::Bytes;
use switchboard_protocol::pb::{self, client_message, server_message};

use common::proxy::FaultProxy;
use common::*;
use futures_util::StreamExt;
use std::collections::BTreeSet;
use std::time::Duration;
use switchboard_client::{
    Client, ClientConfig, EventStream, LinkOperation, LinkReason, LinkState, LinkStateEvent,
    MessageEvent, PublishOptions,
};
use switchboard_server::ServerConfig;
use tokio::time::{Instant, sleep, sleep_until};

/// The subscribed channels, one numbered stream each.
const CHANNELS: [&str; 3] = ["feed-a", "feed-b", "feed-c"];
/// Messages per channel.
const PER_CHANNEL: u32 = 2_500;
/// USER messages to the subscriber (its own numbered stream).
const USER_MESSAGES: u32 = 2_500;
/// How long the publisher spreads its messages over.
const PUBLISH_SPAN: Duration = Duration::from_secs(9);
/// Number of freezes, each longer than the keep-alive timeout (1.5 s at a 1 s heartbeat)
/// and shorter than the presence timeout.
const FREEZES: usize = 3;
/// Length of one freeze.
const FREEZE: Duration = Duration::from_millis(2_500);
/// The subscriber's user id.
const SUBSCRIBER: &str = "sub";

/// 1 s heartbeats and short presence timeouts allowed; no publish rate limit.
fn recovery_config(c: &mut ServerConfig) {
    short_timeouts(c);
    no_publish_rate(c);
}

/// SDK settings through `proxy`: heartbeat 1 s, presence `presence` s, fast backoff, a
/// bus large enough for everything.
fn subscriber_config(server: &TestServer, proxy: &FaultProxy, presence: u32) -> ClientConfig {
    let mut c = proxied(server, proxy, presence);
    c.reconnect_max_delay = Duration::from_millis(300);
    c.event_capacity = 65_536;
    c
}

/// Link events up to and including the next CONNECTED.
async fn until_connected(
    links: &mut EventStream<LinkStateEvent>,
    timeout: Duration,
) -> Vec<LinkStateEvent> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let e = next_within(links, left, "link state CONNECTED")
            .await
            .expect("link state stream ended")
            .expect("link state stream lagged");
        let done = e.current_state == LinkState::Connected;
        seen.push(e);
        if done {
            return seen;
        }
    }
}

/// Publishes `{target}:0` … `{target}:{count-1}` spread over `span`, each after the
/// previous one was accepted, then `{target}:end`.
async fn publish_numbered(
    client: Client,
    target: &'static str,
    options: PublishOptions,
    count: u32,
    span: Duration,
) -> Result<(), String> {
    let mut tick = tokio::time::interval(span / count);
    for i in 0..=count {
        tick.tick().await;
        let text = if i == count {
            format!("{target}:end")
        } else {
            format!("{target}:{i}")
        };
        client
            .publish(target, text.as_str(), options.clone())
            .await
            .map_err(|e| format!("publish {text}: {e}"))?;
    }
    Ok(())
}

/// What one stream delivered to the app.
#[derive(Debug, Default)]
struct Received {
    numbers: Vec<u32>,
    ended: bool,
    lagged: Option<u64>,
    foreign: Vec<String>,
}

/// Reads `stream` until `{name}:end` or `deadline`.
async fn collect(
    mut stream: EventStream<MessageEvent>,
    name: &'static str,
    deadline: Instant,
) -> Received {
    let mut r = Received::default();
    loop {
        let item = match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) | Ok(None) => return r,
            Ok(Some(item)) => item,
        };
        let m = match item {
            Ok(m) => m,
            Err(lag) => {
                r.lagged = Some(r.lagged.unwrap_or(0) + lag.0);
                continue;
            }
        };
        let t = text(&m.message).to_string();
        match t.strip_prefix(name).and_then(|s| s.strip_prefix(':')) {
            Some("end") => {
                r.ended = true;
                return r;
            }
            Some(n) => match n.parse() {
                Ok(n) => r.numbers.push(n),
                Err(_) => r.foreign.push(t),
            },
            None => r.foreign.push(t),
        }
    }
}

/// Describes how `r` differs from exactly `0..count` once each in order; `None` if not.
fn defects(name: &str, r: &Received, count: u32) -> Option<String> {
    let expected: Vec<u32> = (0..count).collect();
    if r.numbers == expected && r.ended && r.lagged.is_none() && r.foreign.is_empty() {
        return None;
    }
    let unique: BTreeSet<u32> = r.numbers.iter().copied().collect();
    let missing: Vec<u32> = (0..count).filter(|n| !unique.contains(n)).collect();
    let duplicates = r.numbers.len() - unique.len();
    let out_of_order = r.numbers.windows(2).filter(|w| w[1] <= w[0]).count();
    let first_divergence = r
        .numbers
        .iter()
        .zip(&expected)
        .position(|(a, b)| a != b)
        .unwrap_or(r.numbers.len().min(expected.len()));
    let around =
        &r.numbers[first_divergence.saturating_sub(3)..(first_divergence + 4).min(r.numbers.len())];
    Some(format!(
        "{name}: received {} of {count}, {} missing (first {:?}), {duplicates} duplicates, \
         {out_of_order} out of order, first divergence at index {first_divergence} \
         (around: {around:?}), end marker {}, lagged {:?}, foreign {:?}",
        r.numbers.len(),
        missing.len(),
        &missing[..missing.len().min(10)],
        if r.ended { "seen" } else { "missing" },
        r.lagged,
        &r.foreign[..r.foreign.len().min(5)],
    ))
}

/// The acceptance test: 3 channels × 2,500 + 2,500 USER messages (10,000
/// numbered messages) while the subscriber's link is frozen past the keep-alive timeout
/// three times and cut once. Every reconnect resumes the session without a gap (R52,
/// R55, R58) and the app sees every number exactly once, in order per stream (R58, R72).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r58_every_message_exactly_once_in_order_across_freezes_and_a_cut() {
    let memory = retention(100_000, Duration::from_secs(300));
    let server = TestServer::with_engine(memory, recovery_config).await;
    let proxy = FaultProxy::start(server.addr).await;
    let sub =
        Client::new(APP_ID, SUBSCRIBER, subscriber_config(&server, &proxy, 30)).expect("client");
    sub.login(&token(SUBSCRIBER)).await.expect("login");
    let mut links = sub.link_state_events();
    let mut streams = Vec::new();
    for name in CHANNELS {
        let mut s = subscribed(&sub, name).await;
        streams.push((name, s.messages(), PER_CHANNEL));
        // The subscription value only hands out streams; they live on without it.
    }
    streams.push((SUBSCRIBER, sub.user_messages(), USER_MESSAGES));

    let publisher = server.login("pub").await;
    let collect_deadline = Instant::now() + PUBLISH_SPAN + Duration::from_secs(12);
    let collectors: Vec<_> = streams
        .into_iter()
        .map(|(name, stream, count)| {
            (
                name,
                count,
                tokio::spawn(collect(stream, name, collect_deadline)),
            )
        })
        .collect();
    let mut publishers = Vec::new();
    for name in CHANNELS {
        publishers.push(tokio::spawn(publish_numbered(
            publisher.clone(),
            name,
            PublishOptions::default(),
            PER_CHANNEL,
            PUBLISH_SPAN,
        )));
    }
    publishers.push(tokio::spawn(publish_numbered(
        publisher.clone(),
        SUBSCRIBER,
        to_user(),
        USER_MESSAGES,
        PUBLISH_SPAN,
    )));

    // The faults, while the publisher runs.
    let mut events = Vec::new();
    // Scenario timing, not a wait for a state: the faults are spread over the publish
    // span, the first one after the publishers have been going for a while.
    sleep(Duration::from_millis(500)).await;
    for _ in 0..FREEZES {
        proxy.freeze();
        let frozen_at = Instant::now();
        let lost = wait_link(&mut links, LinkState::Disconnected, FREEZE).await;
        assert_eq!(
            (lost.operation, lost.reason_code),
            (
                LinkOperation::HeartbeatTimeout,
                LinkReason::KeepAliveTimeout
            ),
            "{}",
            link_summary(&lost)
        );
        events.push(lost);
        // The freeze lasts FREEZE, past the keep-alive timeout (the fault under test).
        sleep_until(frozen_at + FREEZE).await;
        proxy.pass();
        events.extend(until_connected(&mut links, Duration::from_secs(8)).await);
        // Scenario timing: traffic flows normally between two faults.
        sleep(Duration::from_millis(400)).await;
    }
    assert!(
        eventually(STEP, || proxy.connections() == 1).await,
        "one proxied connection before the cut"
    );
    proxy.cut();
    events.extend(until_connected(&mut links, Duration::from_secs(8)).await);

    for p in publishers {
        p.await
            .expect("publisher task")
            .expect("every publish is accepted");
    }
    let mut failures = Vec::new();
    for (name, count, c) in collectors {
        let r = c.await.expect("collector task");
        if let Some(d) = defects(name, &r, count) {
            failures.push(d);
        }
    }
    let reconnects: Vec<&LinkStateEvent> = events
        .iter()
        .filter(|e| e.current_state == LinkState::Connected)
        .collect();
    assert_eq!(reconnects.len(), FREEZES + 1);
    for e in &reconnects {
        assert_eq!(
            (e.operation, e.reason_code, e.is_resumed),
            (
                LinkOperation::Reconnected,
                LinkReason::ReconnectSuccess,
                true
            ),
            "{}",
            link_summary(e)
        );
        assert!(e.gap_channels.is_empty(), "no gap: {}", link_summary(e));
        assert!(e.unrestored_channels.is_empty(), "{}", link_summary(e));
    }
    assert!(
        failures.is_empty(),
        "delivery defects:\n{}\nlink events: {:#?}",
        failures.join("\n"),
        events.iter().map(link_summary).collect::<Vec<_>>()
    );
}

/// R58: a resumed session whose channel lost messages past the recovery log's retention
/// (5 kept, 20 published while frozen) gets CONNECTED with that channel — and only
/// it — in `gap_channels`, and the app gets what the log still held.
#[tokio::test]
async fn r58_gap_past_retention_is_reported_in_the_reconnect_event() {
    let memory = retention(5, Duration::from_secs(300));
    let server = TestServer::with_engine(memory, recovery_config).await;
    let proxy = FaultProxy::start(server.addr).await;
    let sub =
        Client::new(APP_ID, SUBSCRIBER, subscriber_config(&server, &proxy, 30)).expect("client");
    sub.login(&token(SUBSCRIBER)).await.expect("login");
    let mut g = subscribed(&sub, "g").await;
    let mut ok = subscribed(&sub, "ok").await;
    let (mut gm, mut okm) = (g.messages(), ok.messages());
    let mut links = sub.link_state_events();
    let publisher = server.login("pub").await;
    let publish = |channel: &'static str, text: String| {
        let p = publisher.clone();
        async move {
            p.publish(channel, text.as_str(), PublishOptions::default())
                .await
                .unwrap_or_else(|e| panic!("publish {text}: {e}"));
        }
    };
    publish("g", "g:0".into()).await;
    publish("ok", "ok:0".into()).await;
    assert_eq!(text(&next_message(&mut gm, "g:0").await.message), "g:0");
    assert_eq!(text(&next_message(&mut okm, "ok:0").await.message), "ok:0");

    proxy.freeze();
    wait_link(&mut links, LinkState::Disconnected, STEP).await;
    for i in 1..=20 {
        publish("g", format!("g:{i}")).await;
    }
    for i in 1..=3 {
        publish("ok", format!("ok:{i}")).await;
    }
    proxy.pass();
    let events = until_connected(&mut links, Duration::from_secs(8)).await;
    let back = events.last().expect("CONNECTED");
    assert_eq!(
        (back.operation, back.reason_code, back.is_resumed),
        (
            LinkOperation::Reconnected,
            LinkReason::ReconnectSuccess,
            true
        ),
        "{}",
        link_summary(back)
    );
    assert_eq!(back.gap_channels, vec!["g"], "{}", link_summary(back));
    let mut got = Vec::new();
    for i in 16..=20 {
        got.push(text(&next_message(&mut gm, &format!("g:{i}")).await.message).to_string());
    }
    assert_eq!(got, (16..=20).map(|i| format!("g:{i}")).collect::<Vec<_>>());
    let mut got = Vec::new();
    for i in 1..=3 {
        got.push(text(&next_message(&mut okm, &format!("ok:{i}")).await.message).to_string());
    }
    assert_eq!(got, ["ok:1", "ok:2", "ok:3"]);
}

/// R54, R56, R58: the same after `presenceTimeout` (1 s, connections refused ~3 s): the
/// SDK starts a new session and re-subscribes from its last positions; the reconnect
/// event (`isResumed: false`) lists the trimmed channel in `gap_channels`, and the app
/// gets what the log still held.
#[tokio::test]
async fn r54_r58_gap_after_session_expiry_is_reported_in_the_reconnect_event() {
    let memory = retention(5, Duration::from_secs(300));
    let server = TestServer::with_engine(memory, recovery_config).await;
    let proxy = FaultProxy::start(server.addr).await;
    let sub =
        Client::new(APP_ID, SUBSCRIBER, subscriber_config(&server, &proxy, 1)).expect("client");
    sub.login(&token(SUBSCRIBER)).await.expect("login");
    let mut g = subscribed(&sub, "g").await;
    let mut ok = subscribed(&sub, "ok").await;
    let (mut gm, mut okm) = (g.messages(), ok.messages());
    let mut links = sub.link_state_events();
    let publisher = server.login("pub").await;
    publisher
        .publish("g", "g:0", PublishOptions::default())
        .await
        .expect("publish");
    assert_eq!(text(&next_message(&mut gm, "g:0").await.message), "g:0");

    proxy.refuse();
    assert!(eventually(STEP, || proxy.connections() == 1).await);
    proxy.cut();
    let away_since = Instant::now();
    wait_link(&mut links, LinkState::Disconnected, STEP).await;
    let probes = probe_until_offline(&publisher, SUBSCRIBER).await;
    for i in 1..=20 {
        publisher
            .publish("g", format!("g:{i}"), PublishOptions::default())
            .await
            .expect("publish");
    }
    publisher
        .publish("ok", "ok:1", PublishOptions::default())
        .await
        .expect("publish");
    // The outage lasts 3 s (the fault under test); the session's end, which the gap
    // depends on, was polled above.
    sleep_until(away_since + Duration::from_secs(3)).await;
    proxy.pass();

    let events = until_connected(&mut links, Duration::from_secs(8)).await;
    let back = events.last().expect("CONNECTED");
    assert_eq!(
        (back.operation, back.reason_code, back.is_resumed),
        (
            LinkOperation::Reconnected,
            LinkReason::ReconnectSuccess,
            false
        ),
        "{}",
        link_summary(back)
    );
    assert!(
        back.unrestored_channels.is_empty(),
        "{}",
        link_summary(back)
    );
    // The inbox has the same retention: more than 5 USER probes accepted while the
    // session waited is a gap of the user's own channel too.
    let mut expected = vec!["g".to_string()];
    if probes > 5 {
        expected.push(SUBSCRIBER.to_string());
    }
    let mut gaps = back.gap_channels.clone();
    gaps.sort();
    assert_eq!(gaps, expected, "{} ({probes} probes)", link_summary(back));
    let mut got = Vec::new();
    for i in 16..=20 {
        got.push(text(&next_message(&mut gm, &format!("g:{i}")).await.message).to_string());
    }
    assert_eq!(got, (16..=20).map(|i| format!("g:{i}")).collect::<Vec<_>>());
    assert_eq!(text(&next_message(&mut okm, "ok:1").await.message), "ok:1");
}

/// Publishes USER probes from `from` to `user` until one is refused with −11033 (the
/// session ended, R53); returns how many were accepted.
async fn probe_until_offline(from: &Client, user: &str) -> usize {
    let deadline = Instant::now() + STEP;
    let mut accepted = 0;
    loop {
        match from.publish(user, "probe", to_user()).await {
            Ok(_) => accepted += 1,
            Err(e) if e.code == switchboard_client::ErrorCode::ChannelReceiverOffline.as_i32() => {
                return accepted;
            }
            Err(e) => panic!("USER probe to {user}: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "{user} still online after {STEP:?}"
        );
        sleep(Duration::from_millis(50)).await;
    }
}

/// R56, R58: a channel in which nothing was published must not be reported as a gap.
/// Here the subscriber's session expires (presence 1 s) while its only channel is
/// quiet; the memory engine then sweeps the idle channel (sweep every 100 ms instead
/// of 30 s) and recreates it under a new epoch on the re-subscribe. Nothing was ever
/// published, so nothing was missed: `gap_channels` must stay empty.
#[tokio::test]
async fn r58_quiet_channel_is_not_a_gap_after_session_expiry() {
    let mut memory = retention(1_000, Duration::from_secs(300));
    memory.sweep_interval = Duration::from_millis(100);
    let server = TestServer::with_engine(memory, recovery_config).await;
    let proxy = FaultProxy::start(server.addr).await;
    let sub =
        Client::new(APP_ID, SUBSCRIBER, subscriber_config(&server, &proxy, 1)).expect("client");
    sub.login(&token(SUBSCRIBER)).await.expect("login");
    let mut quiet = subscribed(&sub, "quiet").await;
    let mut msgs = quiet.messages();
    let mut links = sub.link_state_events();
    let publisher = server.login("pub").await;

    proxy.refuse();
    assert!(eventually(STEP, || proxy.connections() == 1).await);
    proxy.cut();
    let away_since = Instant::now();
    wait_link(&mut links, LinkState::Disconnected, STEP).await;
    probe_until_offline(&publisher, SUBSCRIBER).await;
    // Several sweeps of the idle channel happen meanwhile.
    sleep_until(away_since + Duration::from_secs(2)).await;
    proxy.pass();

    let events = until_connected(&mut links, Duration::from_secs(8)).await;
    let back = events.last().expect("CONNECTED");
    assert!(!back.is_resumed, "{}", link_summary(back));
    assert!(
        back.gap_channels.is_empty(),
        "nothing was published, nothing missed: {}",
        link_summary(back)
    );
    publisher
        .publish("quiet", "first", PublishOptions::default())
        .await
        .expect("publish");
    assert_eq!(
        text(&next_message(&mut msgs, "first").await.message),
        "first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r58_a_replaced_resume_never_releases_into_the_newer_connection() {
    // Found in review: resume B's replay is stuck on a half-open link when resume C
    // attaches; B's held-back live messages must not land in C's stream.
    let server = TestServer::with(|c| {
        c.write_timeout = Duration::from_secs(3);
        c.presence_timeout_range = (5, 300);
        for app in &mut c.apps {
            app.limits.publish_rate_per_channel = 0;
        }
    })
    .await;

    // A: logs in, subscribes, then vanishes (session detached, kept).
    let mut a = server.raw().await;
    let login = a.login_resume("sub", "", Vec::new(), 120, "").await;
    let session_id = login.session_id.clone();
    let user_pos = login.user_position.expect("user position");
    let sub = a.subscribe("big").await;
    let big_pos = sub.position.expect("channel position");
    // Lost, and seen by the server: the session is detached before the backlog.
    a.lose_connection().await;

    // Backlog: 990 x 30 KB on "big", 10 USER messages.
    let mut p = server.raw_login("pub").await;
    let payload = Bytes::from(vec![b'x'; 30 * 1024]);
    for _ in 0..990 {
        let r = p
            .request(publish_body(
                pb::ChannelType::Message,
                "big",
                pb::MessageType::Binary,
                payload.clone(),
            ))
            .await;
        assert!(matches!(r, server_message::Body::Publish(_)), "{r:?}");
    }
    let user_pub = |i: u32| {
        publish_body(
            pb::ChannelType::User,
            "sub",
            pb::MessageType::String,
            Bytes::from(format!("u:{i}")),
        )
    };
    for i in 0..10 {
        let r = p.request(user_pub(i)).await;
        assert!(matches!(r, server_message::Body::Publish(_)), "{r:?}");
    }

    let positions = vec![
        pb::ChannelPosition {
            channel_type: pb::ChannelType::Message as i32,
            channel_name: "big".into(),
            topic_name: String::new(),
            position: Some(big_pos),
        },
        pb::ChannelPosition {
            channel_type: pb::ChannelType::User as i32,
            channel_name: "sub".into(),
            topic_name: String::new(),
            position: Some(user_pos),
        },
    ];
    let resume =
        || client_message::Body::Login(login_request("sub", &session_id, positions.clone(), 0, ""));

    // B: resumes, reads its reply, then reads nothing (half-open link).
    let mut b = server.raw().await;
    let r = b.request(resume()).await;
    let server_message::Body::Login(rb) = r else {
        panic!("{r:?}")
    };
    assert!(rb.resumed);
    // Scenario timing: the server pushes B's replay into a socket nobody reads; how much
    // gets through does not matter (nothing on the client side shows that it is stuck).
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Live USER messages while B's replay is stuck: held for B.
    for i in 10..15 {
        let r = p.request(user_pub(i)).await;
        assert!(matches!(r, server_message::Body::Publish(_)), "{r:?}");
    }

    // C: resumes from the same positions (the client got nothing on B), reads slowly.
    let mut c = server.raw().await;
    let r = c.request(resume()).await;
    let server_message::Body::Login(rc) = r else {
        panic!("{r:?}")
    };
    assert!(rc.resumed, "C resumes the same session");
    // C must see each channel in offset order, +1 each, and every USER message once.
    let mut last_big = big_pos.offset;
    let mut users = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while (last_big < big_pos.offset + 990 || users.len() < 15)
        && tokio::time::Instant::now() < deadline
    {
        let Some(m) = c.next_push(Duration::from_secs(10)).await else {
            panic!("C closed after big@{last_big} and {users:?}");
        };
        if let Some(server_message::Body::Message(m)) = m.body {
            let off = m.position.expect("position").offset;
            if m.channel_type == pb::ChannelType::User as i32 {
                users.push(String::from_utf8_lossy(&m.payload).to_string());
            } else {
                assert_eq!(off, last_big + 1, "channel offsets in order, +1 each");
                last_big = off;
            }
        }
        // A slow reader on purpose (the back-pressure under test).
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let want: Vec<String> = (0..15).map(|i| format!("u:{i}")).collect();
    assert_eq!(users, want, "every USER message once, in order");
    assert_eq!(last_big, big_pos.offset + 990, "the whole channel backlog");
    drop(b);
}

/// R56: on a resume, a channel the client follows but the session does not (a subscribe
/// lost with the old connection) comes back in `unrestored_channels`, for the SDK to
/// re-subscribe; the channels the session has are resumed as usual.
#[tokio::test]
async fn r56_resume_lists_channels_the_session_lacks_as_unrestored() {
    let server = TestServer::start().await;
    let mut a = server.raw().await;
    let login = a.login_resume("follower", "", Vec::new(), 120, "").await;
    let kept = a.subscribe("kept").await.position.expect("position");
    drop(a);
    let position = |name: &str, p: pb::StreamPosition| pb::ChannelPosition {
        channel_type: pb::ChannelType::Message as i32,
        channel_name: name.into(),
        topic_name: String::new(),
        position: Some(p),
    };
    let mut b = server.raw().await;
    let positions = vec![
        position("kept", kept),
        position("lost", pb::StreamPosition::default()),
        pb::ChannelPosition {
            channel_type: pb::ChannelType::User as i32,
            channel_name: "follower".into(),
            topic_name: String::new(),
            position: login.user_position,
        },
    ];
    let resumed = b
        .login_resume("follower", &login.session_id, positions, 0, "")
        .await;
    assert!(resumed.resumed);
    assert_eq!(resumed.unrestored_channels, ["lost"]);
    assert!(
        resumed.gap_channels.is_empty(),
        "{:?}",
        resumed.gap_channels
    );
}
