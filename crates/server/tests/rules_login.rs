//! Login and reconnection rules at their defaults (issue 21): the 12 s login timeout
//! (R27), `logout` cancelling a pending login and stopping a suspended reconnect (R34),
//! and a token that expires while the client is reconnecting (R44). The SDK dials
//! through the fault proxy, which stalls or refuses the network on command. Also the
//! Rust SDK's identity rules: numeric user ids (R13, token.md T49) and one live client
//! per app and user in a process (R14).

mod common;

use common::proxy::FaultProxy;
use common::*;
use futures_util::StreamExt;
use std::time::Duration;
use switchboard_client::{
    Client, ClientConfig, ErrorCode, EventStream, LinkOperation, LinkReason, LinkState,
    LinkStateEvent, RtmError,
};
use tokio::time::Instant;

/// SDK settings dialing through `proxy`, with every default of [`ClientConfig::new`]
/// except a fast reconnect backoff and R14 off (tests of one process may share a user
/// id when run as threads).
fn through(proxy: &FaultProxy) -> ClientConfig {
    let mut c = ClientConfig::new(proxy.url());
    c.reconnect_base_delay = Duration::from_millis(100);
    c.reconnect_max_delay = Duration::from_millis(300);
    c.allow_duplicate_user_id = true;
    c
}

/// Every link event within `window`.
async fn link_events_within(
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

/// R27: with the default login timeout (12 s), a login the server never answers (the
/// network stalls during the handshake) fails with −10011 after 12 s, and the link goes
/// back to DISCONNECTED with reason LOGIN_TIMEOUT. Once the network works, a new login
/// succeeds. (This test takes 12 s on purpose: the timeout is asserted at its default.)
#[tokio::test]
async fn r27_unanswered_login_fails_after_the_default_12_s_with_login_timeout() {
    let server = TestServer::start().await;
    let proxy = FaultProxy::start(server.addr).await;
    let config = through(&proxy);
    assert_eq!(
        config.login_timeout,
        Duration::from_secs(12),
        "R27's default"
    );
    proxy.freeze();
    let alice = Client::new(APP_ID, "alice", config).expect("client");
    let mut links = alice.link_state_events();

    let started = Instant::now();
    let err = alice
        .login(&token("alice"))
        .await
        .expect_err("a login without an answer fails");
    let took = started.elapsed();
    assert_eq!(err.code, ErrorCode::LoginTimeout.as_i32(), "{err:?}");
    assert_eq!(err.operation, "login");
    assert!(
        took >= Duration::from_millis(11_900),
        "failed before the 12 s timeout: {took:?}"
    );
    assert!(
        took < Duration::from_secs(20),
        "took far longer than 12 s: {took:?}"
    );
    assert_eq!(alice.link_state(), LinkState::Disconnected);
    let connecting = wait_link(&mut links, LinkState::Connecting, STEP).await;
    assert_eq!(connecting.operation, LinkOperation::Login);
    let back = wait_link(&mut links, LinkState::Disconnected, STEP).await;
    assert_eq!(back.reason_code, LinkReason::LoginTimeout, "{back:?}");

    proxy.pass();
    alice
        .login(&token("alice"))
        .await
        .expect("a login once the network works");
    assert_eq!(alice.link_state(), LinkState::Connected);
}

/// Starts a login through a frozen `proxy`, waits for CONNECTING, logs out, and
/// returns how long the pending login then took to fail, and with what.
async fn logout_during_login(config: ClientConfig, proxy: &FaultProxy) -> (Duration, RtmError) {
    proxy.freeze();
    let alice = Client::new(APP_ID, "alice", config).expect("client");
    let mut links = alice.link_state_events();
    let pending = tokio::spawn({
        let alice = alice.clone();
        async move { alice.login(&token("alice")).await }
    });
    wait_link(&mut links, LinkState::Connecting, STEP).await;
    alice.logout().await.expect("logout while connecting");
    assert_eq!(alice.link_state(), LinkState::Idle);
    let idle = wait_link(&mut links, LinkState::Idle, STEP).await;
    assert_eq!(
        (idle.operation, idle.reason_code),
        (LinkOperation::Logout, LinkReason::Logout)
    );
    let t0 = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(20), pending)
        .await
        .expect("the pending login ends")
        .expect("login task")
        .expect_err("the pending login is cancelled");
    let took = t0.elapsed();
    assert_eq!(alice.link_state(), LinkState::Idle, "still IDLE afterwards");
    // The client is usable again: a new login succeeds once the network works.
    proxy.pass();
    alice.login(&token("alice")).await.expect("login again");
    (took, err)
}

/// R34: `logout` while CONNECTING cancels the pending login, which fails with −10023;
/// the link ends IDLE. (A 2 s login timeout keeps the test short; see the next test
/// for how soon the login fails.)
#[tokio::test]
async fn r34_logout_while_connecting_fails_the_pending_login_with_10023() {
    let server = TestServer::start().await;
    let proxy = FaultProxy::start(server.addr).await;
    let mut config = through(&proxy);
    config.login_timeout = Duration::from_secs(2);
    let (_, err) = logout_during_login(config, &proxy).await;
    assert_eq!(err.code, ErrorCode::LoginCanceled.as_i32(), "{err:?}");
    assert_eq!(err.operation, "login");
}

/// R34: the cancelled login fails when `logout` cancels it, not when its own 12 s
/// timeout would have ended it.
#[tokio::test]
async fn r34_logout_while_connecting_fails_the_pending_login_at_once() {
    let server = TestServer::start().await;
    let proxy = FaultProxy::start(server.addr).await;
    let (took, err) = logout_during_login(through(&proxy), &proxy).await;
    assert_eq!(err.code, ErrorCode::LoginCanceled.as_i32(), "{err:?}");
    assert!(
        took < STEP,
        "the cancelled login failed only after {took:?}"
    );
}

/// R34 (SUSPENDED), R50: `logout` while SUSPENDED ends the reconnect loop: the link
/// goes IDLE and no connection is attempted afterwards, even once the server is
/// reachable. (`suspend_after` is shortened from 115 s so the state is reached.)
#[tokio::test]
async fn r34_logout_while_suspended_stops_reconnecting() {
    let server = TestServer::start().await;
    let proxy = FaultProxy::start(server.addr).await;
    let mut config = through(&proxy);
    config.suspend_after = Duration::from_secs(1);
    let alice = Client::new(APP_ID, "alice", config).expect("client");
    alice.login(&token("alice")).await.expect("login");
    let mut links = alice.link_state_events();

    proxy.refuse();
    assert!(
        eventually(STEP, || proxy.connections() == 1).await,
        "the live connection is proxied"
    );
    proxy.cut();
    wait_link(&mut links, LinkState::Disconnected, STEP).await;
    let suspended = wait_link(&mut links, LinkState::Suspended, STEP).await;
    assert_eq!(suspended.reason_code, LinkReason::ReconnectTimeout);
    alice.logout().await.expect("logout while suspended");
    assert_eq!(alice.link_state(), LinkState::Idle);
    wait_link(&mut links, LinkState::Idle, STEP).await;

    proxy.pass();
    let later = link_events_within(&mut links, Duration::from_secs(2)).await;
    assert!(later.is_empty(), "no reconnect after logout: {later:?}");
    assert_eq!(proxy.connections(), 0, "no connection attempt after logout");
}

/// R44, R41: a login token that expires while the client is reconnecting is reported as
/// an event (`tokenPrivilegeWillExpire` for the login token) and does not by itself
/// change the connection state: the link keeps reconnecting (never FAILED), and after
/// `renewToken` it connects again.
#[tokio::test]
async fn r44_token_expiring_while_reconnecting_is_an_event_not_a_state_change() {
    let server = TestServer::start().await;
    let proxy = FaultProxy::start(server.addr).await;
    let alice = Client::new(APP_ID, "alice", through(&proxy)).expect("client");
    let issued = now_secs();
    let lifetime = 4;
    alice
        .login(&token_with(APP_ID, CERT, "alice", lifetime, issued))
        .await
        .expect("login with a short token");
    let mut links = alice.link_state_events();

    proxy.refuse();
    assert!(eventually(STEP, || proxy.connections() == 1).await);
    proxy.cut();
    wait_link(&mut links, LinkState::Disconnected, STEP).await;
    // Wait for the token's expiry to pass (polling the clock, not the client).
    let expired = eventually(Duration::from_secs(10), || now_secs() > issued + lifetime).await;
    assert!(expired, "the clock passed the token's expiry");
    // Only notices from now on count (the will-expire notice at login came earlier).
    let mut tokens = alice.token_events();

    proxy.pass();
    let notice = next_within(&mut tokens, Duration::from_secs(8), "the token event")
        .await
        .expect("token stream open")
        .expect("token stream not lagged");
    assert_eq!(notice, None, "the notice is about the login token");
    let seen = link_events_within(&mut links, Duration::from_secs(1)).await;
    assert!(
        seen.iter().all(|e| e.current_state != LinkState::Failed),
        "an expired token while reconnecting must not fail the link: {seen:?}"
    );
    assert!(
        matches!(
            alice.link_state(),
            LinkState::Disconnected | LinkState::Connecting
        ),
        "still reconnecting, got {:?}",
        alice.link_state()
    );

    alice
        .renew_token(&token("alice"))
        .await
        .expect("renew while reconnecting");
    wait_link(&mut links, LinkState::Connected, Duration::from_secs(8)).await;
}

/// R13, T49: with `use_string_user_id: false` a user id that is not the decimal text of
/// a non-negative integer fails with −10006 at construction; a numeric one is handled
/// as its number ("007" is user 7): it logs in with a token for "7", is seen by others
/// as "7", and joins a stream channel with an RTC token whose uid is 7, while an RTC
/// token for another uid is refused.
#[tokio::test]
async fn r13_t49_numeric_user_ids_without_use_string_user_id() {
    let server = TestServer::start().await;
    let numeric = || {
        let mut c = server.client_config();
        c.use_string_user_id = false;
        c
    };
    for bad in ["alice", "-5", "7.0", "1e3", " 7", "", "+7"] {
        let err = Client::new(APP_ID, bad, numeric())
            .err()
            .unwrap_or_else(|| panic!("{bad:?} is not a numeric user id"));
        assert_eq!(
            err.code,
            ErrorCode::InvalidUserId.as_i32(),
            "{bad:?}: {err:?}"
        );
        assert!(err.reason.contains("R13"), "{err:?}");
    }
    // With string ids (the default) the same texts are ordinary user ids.
    assert!(Client::new(APP_ID, "-5", server.client_config()).is_ok());

    let seven = Client::new(APP_ID, "007", numeric()).expect("a numeric user id");
    assert_eq!(seven.user_id(), "7", "handled as the number 7");
    seven.login(&token("7")).await.expect("logs in as 7");
    let bob = server.login("bob").await;
    let mut inbox = bob.user_messages();
    seven
        .publish("bob", "from seven", to_user())
        .await
        .expect("publish");
    let m = next_message(&mut inbox, "seven's message").await;
    assert_eq!(m.publisher, "7");

    // T49: the RTC token's uid compares with the canonical text.
    let refused = seven.stream_channel("sc").expect("channel");
    let err = refused
        .join(switchboard_client::JoinOptions {
            token: Some(rtc_for("sc", "8")),
            ..Default::default()
        })
        .await
        .expect_err("an RTC token for uid 8");
    assert_eq!(err.code, ErrorCode::InvalidToken.as_i32(), "{err:?}");
    assert!(err.reason.contains("USER_ID_MISMATCH"), "{err:?}");
    let joined = seven.stream_channel("sc2").expect("channel");
    joined
        .join(switchboard_client::JoinOptions {
            token: Some(rtc_for("sc2", "7")),
            ..Default::default()
        })
        .await
        .expect("an RTC token for uid 7");
    let zero = Client::new(APP_ID, "000", numeric()).expect("zero");
    assert_eq!(zero.user_id(), "0");
}

/// R14: while a client of this process is logged in (or logging in), constructing
/// another with the same app id and user id fails with −10027; one with another user id
/// is fine, and once the first logs out (or is dropped) the user id is free again.
#[tokio::test]
async fn r14_a_second_live_client_of_the_same_user_fails_with_10027() {
    let server = TestServer::start().await;
    let config = || ClientConfig::new(server.endpoint());
    assert!(!config().allow_duplicate_user_id, "R14 holds by default");
    let first = Client::new(APP_ID, "r14-user", config()).expect("the first");
    // Not live yet (IDLE): a second may be made, and dropped.
    drop(Client::new(APP_ID, "r14-user", config()).expect("while the first is IDLE"));
    first.login(&token("r14-user")).await.expect("login");

    let err = Client::new(APP_ID, "r14-user", config())
        .err()
        .expect("a second live client of r14-user");
    assert_eq!(err.code, ErrorCode::DuplicateUserId.as_i32(), "{err:?}");
    assert!(err.reason.contains("R14"), "{err:?}");
    assert!(Client::new(APP_ID, "r14-other", config()).is_ok());
    let mut allowed = config();
    allowed.allow_duplicate_user_id = true;
    assert!(
        Client::new(APP_ID, "r14-user", allowed).is_ok(),
        "opted out"
    );

    first.logout().await.expect("logout");
    let again = Client::new(APP_ID, "r14-user", config()).expect("free after logout");
    again.login(&token("r14-user")).await.expect("login");
    drop(again);
    drop(first);
    Client::new(APP_ID, "r14-user", config()).expect("free once dropped");
}
