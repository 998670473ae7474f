//! Reconnection rules of the Rust SDK over real sockets: pending publishes kept while
//! reconnecting (R59); after a reconnect into a stream channel a fresh topic SNAPSHOT
//! (resumed) and a fresh presence SNAPSHOT (new session) (R60); the 4-second link-loss
//! rule at the default settings (R46, R47); the order of a session's end: its link event
//! before its calls fail (R28); a network change during a reconnect (R51); and the
//! presence re-sync after the session was removed (R54). The SDK dials through the
//! fault proxy, which stalls, cuts and refuses connections on command.

mod common;

use common::proxy::FaultProxy;
use common::*;
use futures_util::FutureExt;
use std::collections::BTreeMap;
use std::time::Duration;
use switchboard_client::{
    ChannelType, Client, ClientConfig, ErrorCode, EventStream, JoinOptions, LinkOperation,
    LinkReason, LinkState, LinkStateEvent, PresenceEvent, PresenceEventType, PublishOptions,
    SubscribeOptions, TopicEventType,
};
use switchboard_token::RtcRole;
use tokio::time::Instant;

/// SDK settings dialing through `proxy` with a fast reconnect backoff.
fn through(server: &TestServer, proxy: &FaultProxy) -> ClientConfig {
    let mut c = server.client_config();
    c.endpoint = proxy.url();
    c.reconnect_base_delay = Duration::from_millis(100);
    c.reconnect_max_delay = Duration::from_millis(300);
    c
}

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

/// Cuts the client's connection and keeps the server unreachable until `pass`.
async fn lose_link(proxy: &FaultProxy, client: &Client) {
    let mut links = client.link_state_events();
    proxy.refuse();
    assert!(eventually(STEP, || proxy.connections() == 1).await);
    proxy.cut();
    wait_link(&mut links, LinkState::Disconnected, STEP).await;
}

/// R59: a publish made while the link is down is kept and sent once the link is back
/// (within its 10 s request timeout), instead of failing at once.
#[tokio::test]
async fn r59_a_publish_while_reconnecting_is_sent_when_the_link_is_back() {
    let server = TestServer::start().await;
    let proxy = FaultProxy::start(server.addr).await;
    let bob = server.login("bob").await;
    let mut sub = bob
        .subscribe("c", SubscribeOptions::default())
        .await
        .expect("subscribe");
    let mut msgs = sub.messages();
    let alice = Client::new(APP_ID, "alice", through(&server, &proxy)).expect("client");
    alice.login(&token("alice")).await.expect("login");
    lose_link(&proxy, &alice).await;

    let mut pending = tokio::spawn({
        let alice = alice.clone();
        async move {
            alice
                .publish("c", "sent while away", PublishOptions::default())
                .await
        }
    });
    // Still pending a moment later (not failed at once).
    if let Ok(done) = tokio::time::timeout(Duration::from_millis(300), &mut pending).await {
        panic!("the publish ended while the link was down: {done:?}");
    }
    proxy.pass();
    tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .expect("the publish ends within its request timeout")
        .expect("publish task")
        .expect("the kept publish succeeds once the link is back");
    let m = next_message(&mut msgs, "the kept publish").await;
    assert_eq!(text(&m.message), "sent while away");
}

/// R60: after a reconnect into a stream channel — resumed or not — the client receives
/// a fresh topic SNAPSHOT (listing the publishers as they are now).
#[tokio::test]
async fn r60_a_resumed_reconnect_into_a_stream_channel_brings_a_fresh_topic_snapshot() {
    let server = TestServer::start().await;
    let proxy = FaultProxy::start(server.addr).await;
    let alice = Client::new(APP_ID, "alice", through(&server, &proxy)).expect("client");
    alice.login(&token("alice")).await.expect("login");
    let channel = alice.stream_channel("sc").expect("channel");
    let mut topics = channel.topic_events();
    channel
        .join(JoinOptions {
            token: Some(rtc("sc", "alice")),
            ..Default::default()
        })
        .await
        .expect("join");
    let first = next_within(&mut topics, STEP, "the join's SNAPSHOT")
        .await
        .expect("open")
        .expect("not lagged");
    assert_eq!(first.event_type, TopicEventType::Snapshot);

    let bob = server.login("bob").await;
    let bobs = bob.stream_channel("sc").expect("channel");
    bobs.join(JoinOptions {
        token: Some(rtc("sc", "bob")),
        ..Default::default()
    })
    .await
    .expect("bob joins");
    bobs.join_topic("t", Default::default())
        .await
        .expect("bob joins t");
    let join = next_within(&mut topics, STEP, "bob's REMOTE_JOIN")
        .await
        .expect("open")
        .expect("not lagged");
    assert_eq!(join.event_type, TopicEventType::RemoteJoin);

    let mut links = alice.link_state_events();
    lose_link(&proxy, &alice).await;
    proxy.pass();
    let back = wait_link(&mut links, LinkState::Connected, Duration::from_secs(8)).await;
    assert!(back.is_resumed, "the session was resumed: {back:?}");
    let fresh = next_within(&mut topics, STEP, "a fresh SNAPSHOT after the reconnect")
        .await
        .expect("open")
        .expect("not lagged");
    assert_eq!(fresh.event_type, TopicEventType::Snapshot, "{fresh:?}");
    let t = fresh
        .topic_infos
        .iter()
        .find(|i| i.topic_name == "t")
        .expect("topic t in the fresh SNAPSHOT");
    assert!(
        t.publishers.iter().any(|p| p.publisher_user_id == "bob"),
        "{t:?}"
    );
}

/// R59: a USER publish made while the link is down is kept too (13 s by default, 3 s
/// more than a channel publish) and delivered once the link is back.
#[tokio::test]
async fn r59_a_user_publish_while_reconnecting_is_sent_when_the_link_is_back() {
    let server = TestServer::start().await;
    let proxy = FaultProxy::start(server.addr).await;
    let bob = server.login("bob").await;
    let mut inbox = bob.user_messages();
    let alice = Client::new(APP_ID, "alice", through(&server, &proxy)).expect("client");
    alice.login(&token("alice")).await.expect("login");
    lose_link(&proxy, &alice).await;

    let mut pending = tokio::spawn({
        let alice = alice.clone();
        async move { alice.publish("bob", "to bob while away", to_user()).await }
    });
    if let Ok(done) = tokio::time::timeout(Duration::from_millis(300), &mut pending).await {
        panic!("the USER publish ended while the link was down: {done:?}");
    }
    proxy.pass();
    tokio::time::timeout(Duration::from_secs(13), pending)
        .await
        .expect("the publish ends within its request timeout")
        .expect("publish task")
        .expect("the kept USER publish succeeds once the link is back");
    let m = next_message(&mut inbox, "the kept USER message").await;
    assert_eq!(
        (text(&m.message), m.publisher.as_str()),
        ("to bob while away", "alice")
    );
}

/// R59: a kept publish whose link does not come back within its request timeout fails
/// then with the publish timeout (−11026), not at once; the link keeps reconnecting.
#[tokio::test]
async fn r59_a_kept_publish_fails_with_the_publish_timeout_when_the_link_stays_down() {
    let server = TestServer::start().await;
    let proxy = FaultProxy::start(server.addr).await;
    let mut config = through(&server, &proxy);
    config.request_timeout = Duration::from_secs(1);
    let alice = Client::new(APP_ID, "alice", config).expect("client");
    alice.login(&token("alice")).await.expect("login");
    lose_link(&proxy, &alice).await;

    let started = Instant::now();
    let err = alice
        .publish("c", "never sent", PublishOptions::default())
        .await
        .expect_err("the link stays down past the request timeout");
    let took = started.elapsed();
    assert_eq!(
        err.code,
        ErrorCode::ChannelPublishMessageTimeout.as_i32(),
        "{err:?}"
    );
    assert_eq!(err.operation, "publish");
    assert!(
        took >= Duration::from_millis(950),
        "failed before its 1 s timeout: {took:?}"
    );
    assert_ne!(alice.link_state(), LinkState::Failed, "still reconnecting");
}

/// The link events queued on `links` right now, without waiting.
fn queued(links: &mut EventStream<LinkStateEvent>) -> Vec<LinkStateEvent> {
    let mut out = Vec::new();
    while let Some(Some(item)) = futures_util::StreamExt::next(links).now_or_never() {
        out.push(item.expect("link state stream lagged"));
    }
    out
}

/// R28 and the order of a session's end: a call the server holds (acquireLock with
/// retry, waiting in line) when the session is replaced by a second login fails with
/// −10025 only after the FAILED / SAME_UID_LOGIN link event has been delivered, so an
/// app that sees the failure already knows why.
#[tokio::test]
async fn r28_a_pending_call_fails_after_the_failed_link_event() {
    let server = TestServer::start().await;
    let alice = server.login("alice").await;
    alice
        .lock()
        .set_lock("room", ChannelType::Message, "L", None)
        .await
        .expect("set");
    alice
        .lock()
        .acquire_lock("room", ChannelType::Message, "L", false)
        .await
        .expect("alice holds L");
    let carol = server.login("carol").await;
    let mut links = carol.link_state_events();
    let waits = {
        let lock = carol.lock();
        tokio::spawn(async move {
            lock.acquire_lock("room", ChannelType::Message, "L", true)
                .await
        })
    };
    // In line on the server: another operation on the lock answers −14003 (R158).
    let in_line = eventually_async(STEP, || {
        let lock = carol.lock();
        async move {
            let err = lock
                .release_lock("room", ChannelType::Message, "L")
                .await
                .expect_err("waiting");
            err.code == ErrorCode::LockOperationPerforming.as_i32()
        }
    })
    .await;
    assert!(in_line, "carol never waited in line");

    let _carol_again = server.login("carol").await;
    let err = tokio::time::timeout(STEP, waits)
        .await
        .expect("the waiting call ends with the session")
        .expect("task")
        .expect_err("the session was replaced");
    // Everything the failure could follow is already queued when it arrives.
    let before = queued(&mut links);
    let failed = before
        .iter()
        .find(|e| e.current_state == LinkState::Failed)
        .unwrap_or_else(|| {
            panic!(
                "the call failed ({err:?}) before the FAILED link event: {:?}",
                before.iter().map(link_summary).collect::<Vec<_>>()
            )
        });
    assert_eq!(
        (failed.operation, failed.reason_code),
        (LinkOperation::ServerReject, LinkReason::SameUidLogin)
    );
    assert_eq!(err.code, ErrorCode::NotConnected.as_i32(), "{err:?}");
    assert_eq!(err.operation, "acquireLock");
    assert!(err.reason.contains("connection closed"), "{err:?}");
}

/// SDK settings dialing through `proxy`, everything else at its default (heartbeat 5 s,
/// link-loss timeout 4 s) but R14, off (tests of one process may share a user id).
fn defaults_through(proxy: &FaultProxy) -> ClientConfig {
    let mut c = ClientConfig::new(proxy.url());
    c.allow_duplicate_user_id = true;
    assert_eq!(c.heartbeat_interval, 5, "the default heartbeat");
    assert_eq!(
        c.link_loss_timeout,
        Duration::from_secs(4),
        "R46's 4 seconds"
    );
    c
}

/// R46: at the default settings a network stall the client recovers from within 4 s
/// (here 2.5 s) changes no state: no link event at all, and what was published
/// meanwhile arrives.
#[tokio::test]
async fn r46_a_stall_recovered_within_4_s_changes_no_state_at_default_settings() {
    let server = TestServer::start().await;
    let proxy = FaultProxy::start(server.addr).await;
    let alice = Client::new(APP_ID, "alice", defaults_through(&proxy)).expect("client");
    alice.login(&token("alice")).await.expect("login");
    let mut sub = alice
        .subscribe("c", SubscribeOptions::default())
        .await
        .expect("subscribe");
    let mut msgs = sub.messages();
    let mut links = alice.link_state_events();
    let bob = server.login("bob").await;
    assert!(eventually(STEP, || proxy.connections() == 1).await);

    proxy.freeze();
    let frozen_at = Instant::now();
    bob.publish("c", "during the stall", PublishOptions::default())
        .await
        .expect("publish");
    // Scenario timing, not a wait for a state: the stall lasts 2.5 s.
    tokio::time::sleep_until(frozen_at + Duration::from_millis(2500)).await;
    proxy.pass();
    let m = next_message(&mut msgs, "the message published during the stall").await;
    assert_eq!(text(&m.message), "during the stall");
    // Until well past the 4 s (and a ping's period) since the stall began: nothing.
    assert_quiet(&mut links, Duration::from_secs(3), "R46: no state change").await;
    assert_eq!(alice.link_state(), LinkState::Connected);
}

/// R46, R47: at the default settings a stall the client cannot recover from in 4 s
/// takes the link CONNECTED → DISCONNECTED / HEARTBEAT_TIMEOUT / KEEP_ALIVE_TIMEOUT
/// after 4 s — not only after 1.5 heartbeats (7.5 s) — and it reconnects once the
/// network is back.
#[tokio::test]
async fn r46_a_stall_past_4_s_disconnects_after_4_s_at_default_settings() {
    let server = TestServer::start().await;
    let proxy = FaultProxy::start(server.addr).await;
    let alice = Client::new(APP_ID, "alice", defaults_through(&proxy)).expect("client");
    alice.login(&token("alice")).await.expect("login");
    let mut links = alice.link_state_events();
    assert!(eventually(STEP, || proxy.connections() == 1).await);

    proxy.freeze();
    let frozen_at = Instant::now();
    let lost = wait_link(&mut links, LinkState::Disconnected, Duration::from_secs(10)).await;
    let took = frozen_at.elapsed();
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
    assert!(
        took >= Duration::from_millis(3900),
        "lost before 4 s of stall: {took:?}"
    );
    assert!(
        took < Duration::from_millis(6500),
        "R46: not lost soon after 4 s (1.5 heartbeats would be 7.5 s): {took:?}"
    );
    proxy.pass();
    let back = wait_link(&mut links, LinkState::Connected, Duration::from_secs(15)).await;
    assert!(back.is_resumed, "{back:?}");
}

/// R51: a network-change signal (`network_changed`, the app forwarding the OS's event)
/// during a reconnect attempt drops the attempt — DISCONNECTED with operation and reason
/// NETWORK_CHANGE — and the SDK tries again 2 s later (not after its backoff, here at
/// most 300 ms), reconnecting once the network works.
#[tokio::test]
async fn r51_a_network_change_drops_the_attempt_and_retries_after_2_s() {
    let server = TestServer::start().await;
    let proxy = FaultProxy::start(server.addr).await;
    let mut config = through(&server, &proxy);
    config.login_timeout = Duration::from_secs(30);
    let alice = Client::new(APP_ID, "alice", config).expect("client");
    alice.login(&token("alice")).await.expect("login");
    let mut links = alice.link_state_events();
    assert!(eventually(STEP, || proxy.connections() == 1).await);
    // The link is cut and every new connection stalls: an attempt hangs in CONNECTING.
    proxy.freeze();
    proxy.cut();
    wait_link(&mut links, LinkState::Disconnected, STEP).await;
    let attempt = wait_link(&mut links, LinkState::Connecting, STEP).await;
    assert_eq!(attempt.operation, LinkOperation::AutoReconnect);

    alice.network_changed();
    let signalled = Instant::now();
    let dropped = next_within(&mut links, STEP, "the attempt dropped")
        .await
        .expect("open")
        .expect("not lagged");
    assert_eq!(
        (
            dropped.previous_state,
            dropped.current_state,
            dropped.operation,
            dropped.reason_code
        ),
        (
            LinkState::Connecting,
            LinkState::Disconnected,
            LinkOperation::NetworkChange,
            LinkReason::NetworkChange
        ),
        "{}",
        link_summary(&dropped)
    );
    proxy.pass();
    let retry = next_within(&mut links, STEP, "the retry")
        .await
        .expect("open")
        .expect("not lagged");
    let waited = signalled.elapsed();
    assert_eq!(
        (retry.current_state, retry.operation),
        (LinkState::Connecting, LinkOperation::AutoReconnect),
        "{}",
        link_summary(&retry)
    );
    assert!(
        waited >= Duration::from_millis(1950),
        "retried before 2 s: {waited:?}"
    );
    assert!(waited < Duration::from_secs(4), "retried late: {waited:?}");
    let back = wait_link(&mut links, LinkState::Connected, STEP).await;
    assert!(back.is_resumed, "{back:?}");
    // While CONNECTED a network change changes nothing.
    alice.network_changed();
    assert_quiet(
        &mut links,
        Duration::from_millis(500),
        "no change while CONNECTED",
    )
    .await;
}

/// Reads `events` until `user`'s `kind` in `channel`; panics after [`STEP`].
async fn presence_of(
    events: &mut EventStream<PresenceEvent>,
    kind: PresenceEventType,
    channel: &str,
    user: &str,
) -> PresenceEvent {
    let deadline = Instant::now() + STEP;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let e = next_within(events, left, &format!("{kind:?} of {user} in {channel}"))
            .await
            .expect("presence stream open")
            .expect("presence stream not lagged");
        if e.event_type == kind && e.channel_name == channel && e.publisher == user {
            return e;
        }
    }
}

/// `user`'s presence state in `channel` as `from` reads it (`getState`); empty when it
/// has none or is not there.
async fn state_seen(
    from: &Client,
    user: &str,
    channel: &str,
    ty: ChannelType,
) -> BTreeMap<String, String> {
    from.presence()
        .get_state(user, channel, ty)
        .await
        .map(|r| r.states)
        .unwrap_or_default()
}

/// R54 (and R53, R129): a client whose session was removed (away longer than its 1 s
/// presenceTimeout) reconnects into a new session (`isResumed: false`); the SDK puts it
/// back into its message and stream channels — the others see REMOTE_TIMEOUT, then
/// REMOTE_JOIN — and re-synchronises its presence state there, and the state it had set
/// for a channel it had not entered yet is applied when it enters it.
#[tokio::test]
async fn r54_a_removed_client_comes_back_with_its_presence_state() {
    let server = TestServer::with(short_timeouts).await;
    let proxy = FaultProxy::start(server.addr).await;
    let alice = login_with("alice", proxied(&server, &proxy, 1)).await;
    let _room = subscribed(&alice, "room").await;
    let _sc = join_stream(&alice, "sc", JoinOptions::default()).await;
    let presence = alice.presence();
    presence
        .set_state("room", ChannelType::Message, [("mood", "happy")])
        .await
        .expect("state in room");
    presence
        .set_state("sc", ChannelType::Stream, [("seat", "3"), ("gone", "x")])
        .await
        .expect("state in sc");
    presence
        .remove_state("sc", ChannelType::Stream, Some(vec!["gone".into()]))
        .await
        .expect("remove a key");
    presence
        .set_state("later", ChannelType::Message, [("k", "v")])
        .await
        .expect("state for a channel not entered yet (R129)");

    let bob = server.login("bob").await;
    let mut seen = bob.presence_events();
    let _bob_room = subscribed(&bob, "room").await;
    let _bob_sc = join_stream(&bob, "sc", JoinOptions::default()).await;
    let want = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(
        state_seen(&bob, "alice", "room", ChannelType::Message).await,
        want(&[("mood", "happy")])
    );

    let mut links = alice.link_state_events();
    proxy.refuse();
    proxy.wait_connections(1).await;
    proxy.cut();
    wait_link(&mut links, LinkState::Disconnected, STEP).await;
    wait_session_gone(&bob, "alice").await;
    presence_of(&mut seen, PresenceEventType::RemoteTimeout, "room", "alice").await;
    proxy.pass();

    let back = wait_link(&mut links, LinkState::Connected, Duration::from_secs(10)).await;
    assert!(!back.is_resumed, "a new session: {}", link_summary(&back));
    assert!(
        back.unrestored_channels.is_empty(),
        "{}",
        link_summary(&back)
    );
    presence_of(&mut seen, PresenceEventType::RemoteJoin, "room", "alice").await;
    assert_eq!(
        state_seen(&bob, "alice", "room", ChannelType::Message).await,
        want(&[("mood", "happy")]),
        "R54: re-synchronised in room"
    );
    assert_eq!(
        state_seen(&bob, "alice", "sc", ChannelType::Stream).await,
        want(&[("seat", "3")]),
        "R54: re-synchronised in the stream channel, the removed key still gone"
    );
    let _later = subscribed(&alice, "later").await;
    assert_eq!(
        state_seen(&bob, "alice", "later", ChannelType::Message).await,
        want(&[("k", "v")]),
        "R129 across the new session"
    );
}

/// R60 (not resumed): a client whose session was removed (away longer than its 1 s
/// presenceTimeout) and that comes back in a new session (`isResumed: false`) gets a
/// fresh presence SNAPSHOT of the stream channel it is put back into, listing the
/// members as they are now — bob with the state he set while alice was away.
#[tokio::test]
async fn r60_a_new_session_reconnect_into_a_stream_channel_brings_a_fresh_presence_snapshot() {
    let server = TestServer::with(short_timeouts).await;
    let proxy = FaultProxy::start(server.addr).await;
    let alice = login_with("alice", proxied(&server, &proxy, 1)).await;
    let sc = join_stream(&alice, "sc", JoinOptions::default()).await;
    let mut presence = sc.presence_events();
    let first = next_event(&mut presence, "the join's presence SNAPSHOT").await;
    assert_eq!(first.event_type, PresenceEventType::Snapshot, "{first:?}");

    let bob = server.login("bob").await;
    let _bobs = join_stream(&bob, "sc", JoinOptions::default()).await;
    presence_of(&mut presence, PresenceEventType::RemoteJoin, "sc", "bob").await;

    let mut links = alice.link_state_events();
    proxy.refuse();
    proxy.wait_connections(1).await;
    proxy.cut();
    wait_link(&mut links, LinkState::Disconnected, STEP).await;
    wait_session_gone(&bob, "alice").await;
    // While alice is away, bob's state changes: only a fresh SNAPSHOT can carry it.
    bob.presence()
        .set_state("sc", ChannelType::Stream, [("seat", "2")])
        .await
        .expect("bob's state");
    proxy.pass();

    let back = wait_link(&mut links, LinkState::Connected, Duration::from_secs(10)).await;
    assert!(!back.is_resumed, "a new session: {}", link_summary(&back));
    let deadline = Instant::now() + STEP;
    let snapshot = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let e = next_within(
            &mut presence,
            left,
            "a presence SNAPSHOT after the reconnect",
        )
        .await
        .expect("the channel's presence stream goes on across the new session")
        .expect("not lagged");
        if e.event_type == PresenceEventType::Snapshot {
            break e;
        }
    };
    assert_eq!(snapshot.channel_name, "sc");
    let members = snapshot.snapshot.expect("SNAPSHOT members");
    let bob_now = members
        .iter()
        .find(|m| m.user_id == "bob")
        .unwrap_or_else(|| panic!("bob in the fresh SNAPSHOT: {members:?}"));
    assert_eq!(
        bob_now.states.get("seat").map(String::as_str),
        Some("2"),
        "the SNAPSHOT is taken now, not replayed: {members:?}"
    );
}
