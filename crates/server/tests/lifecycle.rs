//! Connection lifecycle: keep-alive loss, automatic reconnection, resume within
//! `presenceTimeout`, a new session after it, kick and logout while reconnecting
//! (api.md §9.7, §10.10–10.12, §11, R28, R46–R50, R52–R55, R58, R61, R62). The SDK
//! dials through a [`FaultProxy`] that freezes, cuts or refuses its connections; the
//! server's resume is also checked over raw sockets.

mod common;

use common::proxy::FaultProxy;
use common::*;
use futures_util::StreamExt;
use std::time::Duration;
use switchboard_client::{
    Client, ClientConfig, ErrorCode, EventStream, LinkOperation, LinkReason, LinkState,
    LinkStateEvent, MessageEvent, PublishOptions,
};
use switchboard_protocol::pb::{self, server_message};
use tokio::time::{Instant, sleep, sleep_until};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A server with [`short_timeouts`].
async fn lifecycle_server() -> TestServer {
    TestServer::with(short_timeouts).await
}

/// SDK settings that dial through `proxy`, with `heartbeat` and `presence` seconds, a
/// short login timeout and fast reconnect backoff.
fn via_proxy(
    server: &TestServer,
    proxy: &FaultProxy,
    heartbeat: u32,
    presence: u32,
) -> ClientConfig {
    let mut c = server.client_config();
    c.endpoint = proxy.url();
    c.heartbeat_interval = heartbeat;
    c.presence_timeout = presence;
    c.login_timeout = Duration::from_secs(2);
    c.reconnect_base_delay = Duration::from_millis(100);
    c.reconnect_max_delay = Duration::from_millis(400);
    c
}

/// An SDK client logged in through `proxy`.
async fn login_via(
    server: &TestServer,
    proxy: &FaultProxy,
    user: &str,
    heartbeat: u32,
    presence: u32,
) -> Client {
    login_with(user, via_proxy(server, proxy, heartbeat, presence)).await
}

/// Publishes `text` to MESSAGE channel `channel`; panics on failure.
async fn publish(from: &Client, channel: &str, text: &str) {
    from.publish(channel, text, PublishOptions::default())
        .await
        .unwrap_or_else(|e| panic!("publish {text:?} to {channel}: {e}"));
}

/// Sends `text` to `user`; panics on failure (e.g. −11033 when the user is offline).
async fn send_to(from: &Client, user: &str, text: &str) {
    from.publish(user, text, to_user())
        .await
        .unwrap_or_else(|e| panic!("USER publish {text:?} to {user}: {e}"));
}

/// The text of the next message on `stream`.
async fn next_text(stream: &mut EventStream<MessageEvent>, what: &str) -> String {
    text(&next_message(stream, what).await.message).to_string()
}

/// Reads `n` messages of `stream` and returns their texts.
async fn texts(stream: &mut EventStream<MessageEvent>, n: usize, what: &str) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(next_text(stream, &format!("{what} #{i} (after {out:?})")).await);
    }
    out
}

/// `prefix1`, `prefix2`, … `prefixN`.
fn numbered(prefix: &str, range: std::ops::RangeInclusive<u32>) -> Vec<String> {
    range.map(|i| format!("{prefix}{i}")).collect()
}

/// Every link state event that arrives within `window`.
async fn events_within(
    links: &mut EventStream<LinkStateEvent>,
    window: Duration,
) -> Vec<LinkStateEvent> {
    let deadline = Instant::now() + window;
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, links.next()).await {
            Err(_) | Ok(None) => return out,
            Ok(Some(Ok(e))) => out.push(e),
            Ok(Some(Err(lag))) => panic!("link state stream lagged: {lag}"),
        }
    }
}

/// Reads link events until CONNECTED, checking that everything before it is a step of
/// automatic reconnection (R49): `CONNECTING / AUTO_RECONNECT`, a failed attempt
/// `DISCONNECTED / SERVER_TIMEOUT / RECONNECT_TIMEOUT`, or `SUSPENDED` (R50). Returns
/// the CONNECTED event and the steps seen before it.
async fn reconnect_until_connected(
    links: &mut EventStream<LinkStateEvent>,
    timeout: Duration,
) -> (LinkStateEvent, Vec<LinkStateEvent>) {
    let deadline = Instant::now() + timeout;
    let mut steps = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let e = next_within(links, left, "link state CONNECTED after reconnecting")
            .await
            .expect("link state stream ended")
            .expect("link state stream lagged");
        match (e.current_state, e.operation, e.reason_code) {
            (LinkState::Connected, _, _) => return (e, steps),
            (LinkState::Connecting, LinkOperation::AutoReconnect, LinkReason::AutoReconnect)
            | (
                LinkState::Disconnected,
                LinkOperation::ServerTimeout,
                LinkReason::ReconnectTimeout,
            )
            | (LinkState::Suspended, LinkOperation::AutoReconnect, LinkReason::ReconnectTimeout) => {
                steps.push(e)
            }
            _ => panic!(
                "unexpected link event while reconnecting: {} (after {:?})",
                link_summary(&e),
                steps.iter().map(link_summary).collect::<Vec<_>>()
            ),
        }
    }
}

/// Checks the CONNECTED event of a successful automatic reconnect (R49, R55).
fn assert_reconnected(e: &LinkStateEvent, resumed: bool) {
    assert_eq!(
        (
            e.current_state,
            e.previous_state,
            e.operation,
            e.reason_code
        ),
        (
            LinkState::Connected,
            LinkState::Connecting,
            LinkOperation::Reconnected,
            LinkReason::ReconnectSuccess
        ),
        "{}",
        link_summary(e)
    );
    assert_eq!(e.is_resumed, resumed, "{}", link_summary(e));
    assert_eq!(e.service_type, "MESSAGE");
}

/// Resets the one connection through `proxy` and drops the client's end.
async fn cut_raw(proxy: &FaultProxy, raw: RawClient) {
    proxy.wait_connections(1).await;
    proxy.cut();
    drop(raw);
    proxy.wait_connections(0).await;
}

/// The next message push on `raw`, skipping other pushes.
async fn next_push_message(raw: &mut RawClient, what: &str) -> pb::MessagePush {
    loop {
        let m = raw
            .next_push(STEP)
            .await
            .unwrap_or_else(|| panic!("connection closed while waiting for {what}"));
        if let Some(server_message::Body::Message(p)) = m.body {
            return p;
        }
    }
}

/// The payload of a push as text.
fn push_text(p: &pb::MessagePush) -> String {
    String::from_utf8(p.payload.to_vec()).expect("UTF-8 payload")
}

/// Publishes USER messages `probe-1`, `probe-2`, … from `from` to `user` until one is
/// refused with −11033 (the session ended, R53); returns the accepted ones.
async fn probe_until_offline(from: &Client, user: &str) -> Vec<String> {
    let deadline = Instant::now() + STEP;
    let mut accepted = Vec::new();
    for i in 1.. {
        let text = format!("probe-{i}");
        match from.publish(user, text.as_str(), to_user()).await {
            Ok(_) => accepted.push(text),
            Err(e) if e.code == ErrorCode::ChannelReceiverOffline.as_i32() => return accepted,
            Err(e) => panic!("USER probe to {user}: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "{user} still online after {STEP:?} ({} probes accepted)",
            accepted.len()
        );
        sleep(Duration::from_millis(50)).await;
    }
    unreachable!()
}

// ---------------------------------------------------------------------------------------
// SDK through the fault proxy
// ---------------------------------------------------------------------------------------

/// R46: an interruption shorter than the keep-alive timeout (heartbeat 2 s → 3 s; the
/// link is frozen for 1 s) changes no link state, and what was sent meanwhile arrives
/// afterwards, in order.
#[tokio::test]
async fn r46_freeze_shorter_than_keep_alive_changes_nothing() {
    let server = lifecycle_server().await;
    let proxy = FaultProxy::start(server.addr).await;
    let alice = login_via(&server, &proxy, "alice", 2, 30).await;
    let mut room = subscribed(&alice, "room").await;
    let mut msgs = room.messages();
    let mut inbox = alice.user_messages();
    let mut links = alice.link_state_events();
    let bob = server.login("bob").await;
    publish(&bob, "room", "m0").await;
    assert_eq!(next_text(&mut msgs, "m0").await, "m0");

    proxy.freeze();
    let frozen_at = Instant::now();
    for i in 1..=3 {
        publish(&bob, "room", &format!("m{i}")).await;
        send_to(&bob, "alice", &format!("u{i}")).await;
    }
    // The freeze lasts 1 s, shorter than the keep-alive timeout: the window is what is
    // tested (nothing may change meanwhile), not a wait for a state.
    sleep_until(frozen_at + Duration::from_secs(1)).await;
    proxy.pass();

    assert_eq!(texts(&mut msgs, 3, "room").await, numbered("m", 1..=3));
    assert_eq!(texts(&mut inbox, 3, "inbox").await, numbered("u", 1..=3));
    // Well past the 3 s keep-alive deadline of the last frame before the freeze.
    let changes = events_within(&mut links, Duration::from_millis(2500)).await;
    assert!(
        changes.is_empty(),
        "no link state change expected: {:?}",
        changes.iter().map(link_summary).collect::<Vec<_>>()
    );
    assert_eq!(alice.link_state(), LinkState::Connected);
    publish(&bob, "room", "m4").await;
    assert_eq!(next_text(&mut msgs, "m4").await, "m4");
}

/// R47, R49, R52, R55, R58, R62: a freeze longer than the keep-alive timeout (heartbeat
/// 1 s → 1.5 s) → DISCONNECTED / HEARTBEAT_TIMEOUT / KEEP_ALIVE_TIMEOUT with the
/// subscribed channels affected → CONNECTING / AUTO_RECONNECT → (after the network
/// comes back) CONNECTED / RECONNECTED / RECONNECT_SUCCESS, resumed. Meanwhile the user
/// stays reachable (USER publishes accepted) and everything missed arrives once, in
/// order.
#[tokio::test]
async fn r47_r49_r55_freeze_past_keep_alive_disconnects_and_resumes() {
    let server = lifecycle_server().await;
    let proxy = FaultProxy::start(server.addr).await;
    let alice = login_via(&server, &proxy, "alice", 1, 30).await;
    let mut c1 = subscribed(&alice, "c1").await;
    let mut c2 = subscribed(&alice, "c2").await;
    let (mut m1, mut m2) = (c1.messages(), c2.messages());
    let mut inbox = alice.user_messages();
    let mut links = alice.link_state_events();
    let bob = server.login("bob").await;
    publish(&bob, "c1", "a0").await;
    publish(&bob, "c2", "b0").await;
    send_to(&bob, "alice", "u0").await;
    assert_eq!(next_text(&mut m1, "a0").await, "a0");
    assert_eq!(next_text(&mut m2, "b0").await, "b0");
    assert_eq!(next_text(&mut inbox, "u0").await, "u0");

    proxy.freeze();
    let frozen_at = Instant::now();
    let lost = wait_link(&mut links, LinkState::Disconnected, STEP).await;
    assert_eq!(
        (lost.previous_state, lost.operation, lost.reason_code),
        (
            LinkState::Connected,
            LinkOperation::HeartbeatTimeout,
            LinkReason::KeepAliveTimeout
        ),
        "{}",
        link_summary(&lost)
    );
    assert_eq!(lost.affected_channels, vec!["c1", "c2"], "R47");
    let attempt = next_within(&mut links, STEP, "first reconnect attempt")
        .await
        .expect("stream open")
        .expect("no lag");
    assert_eq!(
        (
            attempt.current_state,
            attempt.previous_state,
            attempt.operation,
            attempt.reason_code
        ),
        (
            LinkState::Connecting,
            LinkState::Disconnected,
            LinkOperation::AutoReconnect,
            LinkReason::AutoReconnect
        ),
        "{}",
        link_summary(&attempt)
    );
    // The user stays online while its session waits (R62): USER publishes are accepted.
    for i in 1..=3 {
        publish(&bob, "c1", &format!("a{i}")).await;
        publish(&bob, "c2", &format!("b{i}")).await;
        send_to(&bob, "alice", &format!("u{i}")).await;
    }
    // The freeze lasts 3 s, past the keep-alive timeout (the fault under test).
    sleep_until(frozen_at + Duration::from_secs(3)).await;
    send_to(&bob, "alice", "u4").await;
    proxy.pass();

    let (back, _) = reconnect_until_connected(&mut links, Duration::from_secs(8)).await;
    assert_reconnected(&back, true);
    assert!(back.gap_channels.is_empty(), "{}", link_summary(&back));
    assert!(
        back.unrestored_channels.is_empty(),
        "{}",
        link_summary(&back)
    );
    assert_eq!(texts(&mut m1, 3, "c1").await, numbered("a", 1..=3));
    assert_eq!(texts(&mut m2, 3, "c2").await, numbered("b", 1..=3));
    assert_eq!(texts(&mut inbox, 4, "inbox").await, numbered("u", 1..=4));
    // Live again, and nothing was delivered twice (the next one is the new one).
    publish(&bob, "c1", "a4").await;
    send_to(&bob, "alice", "u5").await;
    assert_eq!(next_text(&mut m1, "a4").await, "a4");
    assert_eq!(next_text(&mut inbox, "u5").await, "u5");
}

/// R48, R49, R50: while the server is unreachable the SDK keeps retrying; after
/// `suspend_after` (1 s here, ~115 s by default) failed attempts report SUSPENDED /
/// AUTO_RECONNECT / RECONNECT_TIMEOUT and retrying goes on; once the server is back
/// the link is CONNECTED and the session resumed.
#[tokio::test]
async fn r50_refused_reconnects_become_suspended_then_connected() {
    let server = lifecycle_server().await;
    let proxy = FaultProxy::start(server.addr).await;
    let mut config = via_proxy(&server, &proxy, 1, 30);
    config.suspend_after = Duration::from_secs(1);
    let alice = login_with("alice", config).await;
    let mut sub = subscribed(&alice, "c").await;
    let mut msgs = sub.messages();
    let mut links = alice.link_state_events();

    proxy.refuse();
    proxy.wait_connections(1).await;
    proxy.cut();
    let lost = wait_link(&mut links, LinkState::Disconnected, STEP).await;
    assert_eq!(
        (lost.previous_state, lost.operation, lost.reason_code),
        (
            LinkState::Connected,
            LinkOperation::HeartbeatTimeout,
            LinkReason::KeepAliveTimeout
        ),
        "{}",
        link_summary(&lost)
    );
    assert_eq!(lost.affected_channels, vec!["c"]);

    // Every step until SUSPENDED is an attempt or a failed attempt (R49).
    let mut steps = Vec::new();
    let suspended = loop {
        let e = next_within(&mut links, STEP, "SUSPENDED")
            .await
            .expect("stream open")
            .expect("no lag");
        match (e.current_state, e.operation, e.reason_code) {
            (LinkState::Suspended, _, _) => break e,
            (LinkState::Connecting, LinkOperation::AutoReconnect, LinkReason::AutoReconnect)
            | (
                LinkState::Disconnected,
                LinkOperation::ServerTimeout,
                LinkReason::ReconnectTimeout,
            ) => steps.push(link_summary(&e)),
            _ => panic!(
                "unexpected before SUSPENDED: {} after {steps:?}",
                link_summary(&e)
            ),
        }
    };
    assert_eq!(
        (
            suspended.previous_state,
            suspended.operation,
            suspended.reason_code
        ),
        (
            LinkState::Connecting,
            LinkOperation::AutoReconnect,
            LinkReason::ReconnectTimeout
        ),
        "{}",
        link_summary(&suspended)
    );
    assert!(
        steps.iter().any(|s| s.contains("→DISCONNECTED")),
        "failed attempts before SUSPENDED are DISCONNECTED / RECONNECT_TIMEOUT: {steps:?}"
    );
    // Still retrying while SUSPENDED.
    let retry = wait_link(&mut links, LinkState::Connecting, STEP).await;
    assert_eq!(
        retry.previous_state,
        LinkState::Suspended,
        "{}",
        link_summary(&retry)
    );
    assert_eq!(retry.operation, LinkOperation::AutoReconnect);

    proxy.pass();
    let (back, _) = reconnect_until_connected(&mut links, Duration::from_secs(8)).await;
    assert_reconnected(&back, true);
    let bob = server.login("bob").await;
    publish(&bob, "c", "after").await;
    assert_eq!(next_text(&mut msgs, "after").await, "after");
}

/// R53, R54, R58: a client away longer than `presenceTimeout` (1 s; connections refused
/// for ~3 s) loses its session; when it gets through it starts a new one (CONNECTED,
/// `isResumed: false`) and the SDK re-subscribes by itself, each channel from its last
/// position: channel messages published after the session expired are recovered
/// (no gap), and so are USER messages accepted while the session was still waiting.
#[tokio::test]
async fn r53_r54_reconnect_after_presence_timeout_starts_new_session_and_recovers() {
    let server = lifecycle_server().await;
    let proxy = FaultProxy::start(server.addr).await;
    let alice = login_via(&server, &proxy, "alice", 1, 1).await;
    let mut news = subscribed(&alice, "news").await;
    let mut msgs = news.messages();
    let mut inbox = alice.user_messages();
    let mut links = alice.link_state_events();
    let bob = server.login("bob").await;
    publish(&bob, "news", "before").await;
    assert_eq!(next_text(&mut msgs, "before").await, "before");

    proxy.refuse();
    proxy.wait_connections(1).await;
    proxy.cut();
    let away_since = Instant::now();
    let lost = wait_link(&mut links, LinkState::Disconnected, STEP).await;
    assert_eq!(lost.operation, LinkOperation::HeartbeatTimeout);
    // USER messages are accepted while the session waits, refused once it ended (R53).
    let probes = probe_until_offline(&bob, "alice").await;
    // Published after the session expired: only subscribe-with-since can recover them.
    for i in 1..=3 {
        publish(&bob, "news", &format!("away-{i}")).await;
    }
    // The outage lasts 3 s (the fault under test); the state the test needs, the end of
    // the session, was polled above.
    sleep_until(away_since + Duration::from_secs(3)).await;
    proxy.pass();

    let (back, _) = reconnect_until_connected(&mut links, Duration::from_secs(8)).await;
    assert_reconnected(&back, false);
    assert!(
        back.unrestored_channels.is_empty(),
        "{}",
        link_summary(&back)
    );
    assert!(
        back.gap_channels.is_empty(),
        "nothing was trimmed, so no gap: {}",
        link_summary(&back)
    );
    assert_eq!(
        texts(&mut msgs, 3, "news recovered by the re-subscribe").await,
        numbered("away-", 1..=3)
    );
    assert_eq!(
        texts(
            &mut inbox,
            probes.len(),
            "USER messages of the expired session"
        )
        .await,
        probes
    );
    // Re-subscribed: live messages flow again.
    publish(&bob, "news", "after").await;
    send_to(&bob, "alice", "after-u").await;
    assert_eq!(next_text(&mut msgs, "after").await, "after");
    assert_eq!(next_text(&mut inbox, "after-u").await, "after-u");
}

/// R28, R61: a login of the same user id elsewhere kicks the session: FAILED /
/// SERVER_REJECT / SAME_UID_LOGIN, and the SDK does not try to reconnect.
#[tokio::test]
async fn r28_r61_kicked_session_fails_and_never_reconnects() {
    let server = lifecycle_server().await;
    let proxy = FaultProxy::start(server.addr).await;
    let first = login_via(&server, &proxy, "alice", 1, 30).await;
    let _sub = subscribed(&first, "c").await;
    let mut links = first.link_state_events();

    let second = server.login("alice").await;
    let failed = wait_link(&mut links, LinkState::Failed, STEP).await;
    assert_eq!(
        (failed.previous_state, failed.operation, failed.reason_code),
        (
            LinkState::Connected,
            LinkOperation::ServerReject,
            LinkReason::SameUidLogin
        ),
        "{}",
        link_summary(&failed)
    );
    let later = events_within(&mut links, Duration::from_secs(2)).await;
    assert!(
        later.is_empty(),
        "no reconnect after FAILED: {:?}",
        later.iter().map(link_summary).collect::<Vec<_>>()
    );
    assert_eq!(first.link_state(), LinkState::Failed);
    assert_eq!(
        proxy.connections(),
        0,
        "no connection attempt after the kick"
    );
    assert_eq!(second.link_state(), LinkState::Connected);
}

/// R28, R61: a session kicked while its client was away (the kick's `Closing` never
/// reached it) is still kicked: when the client gets through again it must not come
/// back — and above all must not kick the newer login in turn. Expected: the old
/// client ends FAILED / SAME_UID_LOGIN and the new one stays CONNECTED.
#[tokio::test]
async fn r28_session_kicked_while_disconnected_does_not_come_back() {
    let server = lifecycle_server().await;
    let proxy = FaultProxy::start(server.addr).await;
    let first = login_via(&server, &proxy, "alice", 1, 30).await;
    let _sub = subscribed(&first, "c").await;
    let mut first_links = first.link_state_events();
    proxy.refuse();
    proxy.wait_connections(1).await;
    proxy.cut();
    wait_link(&mut first_links, LinkState::Disconnected, STEP).await;

    // Another device logs in as alice while the first one is away.
    let second = server.login("alice").await;
    let mut second_links = second.link_state_events();
    proxy.pass();

    let end = Instant::now() + Duration::from_secs(3);
    let mut first_seen = Vec::new();
    let outcome = loop {
        let left = end.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, first_links.next()).await {
            Err(_) | Ok(None) => break None,
            Ok(Some(Ok(e))) => {
                first_seen.push(link_summary(&e));
                if matches!(e.current_state, LinkState::Connected | LinkState::Failed) {
                    break Some(e);
                }
            }
            Ok(Some(Err(lag))) => panic!("lagged: {lag}"),
        }
    };
    let second_seen = events_within(&mut second_links, Duration::from_millis(500)).await;
    assert!(
        second_seen.is_empty(),
        "the newer login was disturbed: {:?} (old client: {first_seen:?})",
        second_seen.iter().map(link_summary).collect::<Vec<_>>()
    );
    assert_eq!(second.link_state(), LinkState::Connected);
    let outcome = outcome.unwrap_or_else(|| panic!("old client never settled: {first_seen:?}"));
    assert_eq!(
        (
            outcome.current_state,
            outcome.operation,
            outcome.reason_code
        ),
        (
            LinkState::Failed,
            LinkOperation::ServerReject,
            LinkReason::SameUidLogin
        ),
        "old client: {first_seen:?}"
    );
}

/// R32, R34, R48: `logout` while DISCONNECTED stops reconnecting: the link becomes IDLE
/// (LOGOUT / LOGOUT) and stays IDLE, with no further attempt even once the server is
/// reachable again.
#[tokio::test]
async fn r32_r48_logout_while_disconnected_stops_reconnecting() {
    let server = lifecycle_server().await;
    let proxy = FaultProxy::start(server.addr).await;
    let alice = login_via(&server, &proxy, "alice", 1, 30).await;
    let _sub = subscribed(&alice, "c").await;
    let mut links = alice.link_state_events();

    proxy.refuse();
    proxy.wait_connections(1).await;
    proxy.cut();
    wait_link(&mut links, LinkState::Disconnected, STEP).await;
    alice.logout().await.expect("logout");
    assert_eq!(alice.link_state(), LinkState::Idle);
    let idle = wait_link(&mut links, LinkState::Idle, STEP).await;
    assert_eq!(
        (idle.operation, idle.reason_code),
        (LinkOperation::Logout, LinkReason::Logout),
        "{}",
        link_summary(&idle)
    );

    proxy.pass();
    let later = events_within(&mut links, Duration::from_secs(2)).await;
    assert!(
        later.is_empty(),
        "no reconnect after logout: {:?}",
        later.iter().map(link_summary).collect::<Vec<_>>()
    );
    assert_eq!(alice.link_state(), LinkState::Idle);
    assert_eq!(proxy.connections(), 0, "no connection attempt after logout");
}

/// R58, R82: positions must follow subscriptions. After unsubscribe and a new
/// subscribe, a resume may replay only what came after the new subscribe: messages
/// published while the app was not subscribed must never be delivered to it.
#[tokio::test]
async fn r58_r82_resume_after_resubscribe_replays_nothing_from_while_unsubscribed() {
    let server = lifecycle_server().await;
    let proxy = FaultProxy::start(server.addr).await;
    let alice = login_via(&server, &proxy, "alice", 1, 30).await;
    let bob = server.login("bob").await;
    let mut first = subscribed(&alice, "c").await;
    let mut msgs = first.messages();
    publish(&bob, "c", "m1").await;
    assert_eq!(next_text(&mut msgs, "m1").await, "m1");
    alice.unsubscribe("c").await.expect("unsubscribe");
    publish(&bob, "c", "while-unsubscribed-1").await;
    publish(&bob, "c", "while-unsubscribed-2").await;
    let mut second = subscribed(&alice, "c").await;
    let mut msgs = second.messages();
    let mut links = alice.link_state_events();

    proxy.wait_connections(1).await;
    proxy.cut();
    wait_link(&mut links, LinkState::Disconnected, STEP).await;
    let (back, _) = reconnect_until_connected(&mut links, Duration::from_secs(8)).await;
    assert_reconnected(&back, true);
    publish(&bob, "c", "after").await;
    assert_eq!(
        next_text(&mut msgs, "the first message after the new subscribe").await,
        "after",
        "a message published while unsubscribed was delivered after the resume"
    );
}

// ---------------------------------------------------------------------------------------
// Server resume over raw sockets
// ---------------------------------------------------------------------------------------

/// R52, R58, R62: a connection lost (reset) leaves the session waiting; USER
/// messages to the user are still accepted. A login carrying its session id and the
/// last positions resumes it (`resumed`, no gap) and replays exactly what was missed —
/// 5 channel and 3 USER messages, each once and per channel in order — then live ones.
#[tokio::test]
async fn r52_r58_raw_resume_replays_missed_channel_and_user_messages_once() {
    let server = lifecycle_server().await;
    let proxy = FaultProxy::start(server.addr).await;
    let mut alice = RawClient::connect(&proxy.ws_url()).await;
    let login = alice
        .login_resume("alice", "", Vec::new(), 30, "lifecycle-test")
        .await;
    assert!(!login.resumed);
    let sub = alice.subscribe("room").await;
    cut_raw(&proxy, alice).await;

    let bob = server.login("bob").await;
    for i in 1..=5 {
        publish(&bob, "room", &format!("r{i}")).await;
    }
    for i in 1..=3 {
        send_to(&bob, "alice", &format!("u{i}")).await;
    }

    let mut alice = server.raw().await;
    let positions = vec![
        resume_position(pb::ChannelType::Message as i32, "room", sub.position),
        resume_position(pb::ChannelType::User as i32, "alice", login.user_position),
    ];
    let resumed = alice
        .login_resume("alice", &login.session_id, positions, 30, "lifecycle-test")
        .await;
    assert!(resumed.resumed, "{resumed:?}");
    assert_eq!(resumed.session_id, login.session_id);
    assert!(resumed.gap_channels.is_empty(), "{resumed:?}");
    assert!(resumed.unrestored_channels.is_empty(), "{resumed:?}");

    let mut channel = Vec::new();
    let mut user = Vec::new();
    for i in 0..8 {
        let p = next_push_message(&mut alice, &format!("replayed message #{i}")).await;
        if p.channel_type == pb::ChannelType::User as i32 {
            assert_eq!(p.channel_name, "bob", "USER pushes name the publisher");
            user.push((push_text(&p), p.position));
        } else {
            assert_eq!(p.channel_name, "room");
            channel.push((push_text(&p), p.position));
        }
    }
    let channel_texts: Vec<_> = channel.iter().map(|(t, _)| t.clone()).collect();
    let user_texts: Vec<_> = user.iter().map(|(t, _)| t.clone()).collect();
    assert_eq!(channel_texts, numbered("r", 1..=5));
    assert_eq!(user_texts, numbered("u", 1..=3));
    let start = sub.position.expect("position").offset;
    let offsets: Vec<u64> = channel
        .iter()
        .map(|(_, p)| p.expect("position").offset)
        .collect();
    assert_eq!(offsets, (start + 1..=start + 5).collect::<Vec<_>>());

    // Then live: the next push is the new message (nothing was delivered twice).
    publish(&bob, "room", "live").await;
    let p = next_push_message(&mut alice, "the live message").await;
    assert_eq!(push_text(&p), "live");
    send_to(&bob, "alice", "live-u").await;
    let p = next_push_message(&mut alice, "the live USER message").await;
    assert_eq!(push_text(&p), "live-u");
}

/// R58: when the recovery log no longer holds everything after the client's position
/// (retention 5, 20 published while away), the resume lists the channel in
/// `gap_channels` and replays what is left: the last 5, then live messages.
#[tokio::test]
async fn r58_resume_with_trimmed_log_reports_gap_and_replays_the_rest() {
    let server =
        TestServer::with_engine(retention(5, Duration::from_secs(300)), short_timeouts).await;
    let proxy = FaultProxy::start(server.addr).await;
    let mut alice = RawClient::connect(&proxy.ws_url()).await;
    let login = alice
        .login_resume("alice", "", Vec::new(), 30, "lifecycle-test")
        .await;
    let sub = alice.subscribe("t").await;
    cut_raw(&proxy, alice).await;

    let bob = server.login("bob").await;
    for i in 1..=20 {
        publish(&bob, "t", &format!("t{i}")).await;
    }

    let mut alice = server.raw().await;
    let positions = vec![
        resume_position(pb::ChannelType::Message as i32, "t", sub.position),
        resume_position(pb::ChannelType::User as i32, "alice", login.user_position),
    ];
    let resumed = alice
        .login_resume("alice", &login.session_id, positions, 30, "lifecycle-test")
        .await;
    assert!(resumed.resumed, "{resumed:?}");
    assert_eq!(resumed.gap_channels, vec!["t"], "{resumed:?}");
    let mut got = Vec::new();
    for i in 0..5 {
        let p = next_push_message(&mut alice, &format!("replayed #{i}")).await;
        got.push(push_text(&p));
    }
    assert_eq!(got, numbered("t", 16..=20));
    publish(&bob, "t", "live").await;
    let p = next_push_message(&mut alice, "the live message").await;
    assert_eq!(push_text(&p), "live");
}

/// R52, R53: a login with a session id the server does not hold — unknown, or expired
/// after `presenceTimeout` — is not a resume: `resumed = false` and a new session with
/// a new id and no subscriptions.
#[tokio::test]
async fn r52_r53_resume_of_unknown_or_expired_session_starts_a_new_one() {
    let server = lifecycle_server().await;

    let mut carol = server.raw().await;
    let unknown = "00000000000000000000000000000001";
    let reply = carol
        .login_resume("carol", unknown, Vec::new(), 30, "lifecycle-test")
        .await;
    assert!(!reply.resumed, "{reply:?}");
    assert!(!reply.session_id.is_empty());
    assert_ne!(reply.session_id, unknown);
    carol.assert_alive().await;

    let proxy = FaultProxy::start(server.addr).await;
    let mut alice = RawClient::connect(&proxy.ws_url()).await;
    let login = alice
        .login_resume("alice", "", Vec::new(), 1, "lifecycle-test")
        .await;
    assert_eq!(
        login.presence_timeout, 1,
        "presence timeout clamped into (1, 300)"
    );
    let sub = alice.subscribe("c").await;
    cut_raw(&proxy, alice).await;
    let bob = server.login("bob").await;
    let (offline, last) = wait_offline(&bob, "alice").await;
    assert!(offline, "the session ends after presenceTimeout: {last}");

    let mut alice = server.raw().await;
    let positions = vec![resume_position(
        pb::ChannelType::Message as i32,
        "c",
        sub.position,
    )];
    let reply = alice
        .login_resume("alice", &login.session_id, positions, 30, "lifecycle-test")
        .await;
    assert!(!reply.resumed, "{reply:?}");
    assert_ne!(reply.session_id, login.session_id);
    // The new session holds no subscription: a channel message does not reach it, the
    // USER message sent after it does (and is the next push).
    publish(&bob, "c", "not-for-alice").await;
    send_to(&bob, "alice", "marker").await;
    let p = next_push_message(&mut alice, "the marker").await;
    assert_eq!(push_text(&p), "marker");
}

/// R52, R62: a TCP connection that ends without the WebSocket closing handshake (the
/// app's process killed, a middlebox closing the connection) is a lost link like a
/// reset or a keep-alive timeout: the session waits `presenceTimeout`, the user stays
/// reachable, and a resume gets what was sent meanwhile.
#[tokio::test]
async fn r52_r62_tcp_close_without_websocket_close_keeps_the_session() {
    let server = lifecycle_server().await;
    let mut alice = server.raw().await;
    let login = alice
        .login_resume("alice", "", Vec::new(), 30, "lifecycle-test")
        .await;
    let sub = alice.subscribe("room").await;
    // Dropping the client closes the socket (FIN) without a WebSocket close frame.
    drop(alice);

    let bob = server.login("bob").await;
    let mut sent = Vec::new();
    let until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < until {
        let text = format!("u{}", sent.len() + 1);
        send_to(&bob, "alice", &text).await;
        sent.push(text);
        // Pacing: USER messages keep coming while the connection is cut (the scenario).
        sleep(Duration::from_millis(100)).await;
    }
    publish(&bob, "room", "r1").await;

    let mut alice = server.raw().await;
    let positions = vec![
        resume_position(pb::ChannelType::Message as i32, "room", sub.position),
        resume_position(pb::ChannelType::User as i32, "alice", login.user_position),
    ];
    let resumed = alice
        .login_resume("alice", &login.session_id, positions, 30, "lifecycle-test")
        .await;
    assert!(resumed.resumed, "{resumed:?}");
    let mut got = Vec::new();
    for i in 0..=sent.len() {
        got.push(push_text(
            &next_push_message(&mut alice, &format!("replayed #{i}")).await,
        ));
    }
    got.sort();
    let mut expected = sent.clone();
    expected.push("r1".into());
    expected.sort();
    assert_eq!(got, expected);
}
