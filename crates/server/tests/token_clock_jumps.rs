//! Wall-clock jumps and token expiry (docs/token.md, "Clock jumps"): a token's expiry
//! is a wall-clock instant, so a forward jump past it ends the session promptly, a
//! backward jump never ends it early, the will-expire push follows the moved clock,
//! and login and renewToken verify against the moved clock (api.md R25, R38, R40–R42;
//! token.md T28, T52, T54, T55). The server runs with a test clock
//! (`Clock::shifted`) that each test jumps; tokens are built against that clock.

mod common;

use common::*;
use std::time::Duration;
use switchboard_protocol::pb::{self, client_message, server_message};
use switchboard_protocol::{DisconnectCode, ErrorCode};
use switchboard_server::{Clock, ServerConfig};

/// The close code of an expired login token (4002).
fn token_expired_close() -> u32 {
    u32::from(DisconnectCode::TokenExpired.as_u16())
}

/// How long a jump may take to be noticed, with room for a busy machine (the server
/// looks at least every 0.5 s).
const NOTICED: Duration = Duration::from_secs(5);

/// A server whose token clock is `clock`.
async fn server_with(clock: &Clock) -> TestServer {
    let clock = clock.clone();
    TestServer::with(move |c: &mut ServerConfig| c.clock = clock).await
}

/// A login token of `user` valid for `secs` seconds from `clock`'s now, and when it
/// expires (epoch seconds by that clock).
fn token_by(clock: &Clock, user: &str, secs: u32) -> (String, u64) {
    let issued = clock.now_secs() as u32;
    (
        token_with(APP_ID, CERT, user, secs, issued),
        u64::from(issued + secs),
    )
}

/// Logs `user` in on a new raw connection with `token` (heartbeat 60 s, so nothing
/// times out while the test waits); panics unless it succeeds.
async fn logged_in(server: &TestServer, user: &str, token: &str) -> (RawClient, pb::LoginReply) {
    let mut raw = server.raw().await;
    match raw.login(APP_ID, user, token, 60).await {
        server_message::Body::Login(r) => (raw, r),
        other => panic!("login of {user} failed: {other:?}"),
    }
}

/// Waits, on the system clock, until `epoch_secs` plus a margin has passed: the only
/// way to check that something did *not* happen by then.
async fn sleep_past_system(epoch_secs: u64) {
    let target = epoch_secs * 1000 + 1500;
    let now = switchboard_protocol::now_ms();
    tokio::time::sleep(Duration::from_millis(target.saturating_sub(now))).await;
}

/// Jumps `clock` to `epoch_ms` (milliseconds since the epoch).
fn shift_to(clock: &Clock, epoch_ms: u64) {
    clock.shift(epoch_ms as i64 - clock.now_ms() as i64);
}

/// The next `TokenWillExpire` push within `within`, skipping other pushes.
async fn will_expire(raw: &mut RawClient, within: Duration) -> Option<pb::TokenWillExpire> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let push = raw.next_push(left).await?;
        if let Some(server_message::Body::TokenWillExpire(w)) = push.body {
            return Some(w);
        }
    }
}

#[tokio::test]
async fn r42_t55_a_forward_jump_past_the_expiry_ends_the_session_promptly() {
    let clock = Clock::shifted();
    let server = server_with(&clock).await;
    // Ten minutes left: nothing is due for a long time on the monotonic clock.
    let (tok, _) = token_by(&clock, "alice", 600);
    let (mut raw, _) = logged_in(&server, "alice", &tok).await;
    raw.assert_alive().await;
    clock.shift(700_000);
    let closing = raw.expect_closing(NOTICED).await;
    assert_eq!(
        closing.code,
        token_expired_close(),
        "TOKEN_EXPIRED: {closing:?}"
    );
    assert!(!closing.reconnect, "an expired session does not reconnect");
    // R42: a fresh token by the moved clock logs in again.
    let (fresh, _) = token_by(&clock, "alice", 600);
    let (mut again, _) = logged_in(&server, "alice", &fresh).await;
    again.assert_alive().await;
}

#[tokio::test]
async fn r42_t55_a_backward_jump_does_not_end_the_session_before_its_expiry_by_the_new_clock() {
    let clock = Clock::shifted();
    let server = server_with(&clock).await;
    let (tok, expires) = token_by(&clock, "bob", 2);
    let (mut raw, reply) = logged_in(&server, "bob", &tok).await;
    assert_eq!(reply.token_expires_at, expires);
    // Two minutes back: the token now has two minutes and two seconds left.
    clock.shift(-120_000);
    // Past the old expiry instant (by the system clock, which did not move).
    sleep_past_system(expires).await;
    raw.assert_alive().await;
    // Forward again, past the expiry by the test clock: now it ends.
    clock.shift(120_000);
    let closing = raw.expect_closing(NOTICED).await;
    assert_eq!(closing.code, token_expired_close(), "{closing:?}");
}

#[tokio::test]
async fn r38_t54_the_will_expire_push_follows_a_forward_jump() {
    let clock = Clock::shifted();
    let server = server_with(&clock).await;
    let (tok, expires) = token_by(&clock, "carol", 600);
    let (mut raw, _) = logged_in(&server, "carol", &tok).await;
    // 20 s before the expiry by the new clock: inside the 30 s lead (T54).
    clock.shift(580_000);
    let w = will_expire(&mut raw, NOTICED)
        .await
        .expect("will-expire push after the jump");
    assert_eq!(w.channel_name, "", "the login token's (R38)");
    assert_eq!(w.expires_at, expires);
    // A warning, not an expiry.
    raw.assert_alive().await;
}

#[tokio::test]
async fn r38_t54_after_a_backward_jump_the_will_expire_push_waits_for_the_new_clock() {
    let clock = Clock::shifted();
    let server = server_with(&clock).await;
    // The push is due 3 s from now by the unmoved clock (33 s lifetime, 30 s lead).
    let (tok, expires) = token_by(&clock, "dave", 33);
    let (mut raw, _) = logged_in(&server, "dave", &tok).await;
    clock.shift(-300_000);
    // Past the old push time (and then some) on the system clock: no push.
    sleep_past_system(expires - 30).await;
    // The heartbeat's reply comes after any push made before it (one ordered socket).
    raw.assert_alive().await;
    let pushed = tokio::time::timeout(
        Duration::from_millis(300),
        will_expire(&mut raw, Duration::from_secs(30)),
    )
    .await;
    assert!(
        pushed.is_err(),
        "will-expire pushed by the old clock after a backward jump: {pushed:?}"
    );
    // Forward to 20 s before the expiry by the test clock: the push comes, then the
    // expiry ends the session once the clock passes it.
    shift_to(&clock, (expires - 20) * 1000);
    let w = will_expire(&mut raw, NOTICED)
        .await
        .expect("will-expire push by the new clock");
    assert_eq!(w.expires_at, expires);
    raw.assert_alive().await;
    shift_to(&clock, expires * 1000 + 500);
    let closing = raw.expect_closing(NOTICED).await;
    assert_eq!(closing.code, token_expired_close(), "{closing:?}");
}

#[tokio::test]
async fn r40_r41_t52_renew_token_after_a_forward_jump_uses_the_new_clock() {
    let clock = Clock::shifted();
    let server = server_with(&clock).await;
    let (tok, _) = token_by(&clock, "erin", 3600);
    let (mut raw, _) = logged_in(&server, "erin", &tok).await;
    // Valid for two minutes by the clock before the jump, expired by the one after.
    let (stale, _) = token_by(&clock, "erin", 120);
    clock.shift(300_000);
    let reply = raw
        .request(client_message::Body::RenewToken(pb::RenewTokenRequest {
            token: stale,
            channel_name: String::new(),
        }))
        .await;
    let err = expect_error(reply);
    assert_eq!(err.code, ErrorCode::TokenExpired.as_i32(), "{err:?}");
    // R41: the old token stays in force.
    raw.assert_alive().await;
    // A token made by the moved clock is taken, with its expiry.
    let (fresh, fresh_expires) = token_by(&clock, "erin", 600);
    let reply = raw
        .request(client_message::Body::RenewToken(pb::RenewTokenRequest {
            token: fresh,
            channel_name: String::new(),
        }))
        .await;
    let server_message::Body::RenewToken(r) = reply else {
        panic!("renewal refused: {reply:?}");
    };
    assert_eq!(r.token_expires_at, fresh_expires);
}

#[tokio::test]
async fn r25_t28_login_verifies_against_the_moved_clock() {
    let clock = Clock::shifted();
    let server = server_with(&clock).await;
    // Two minutes left by the system clock; five minutes later by the test clock.
    let (tok, _) = token_by(&clock, "frank", 120);
    clock.shift(300_000);
    let mut raw = server.raw().await;
    let err = expect_error(raw.login(APP_ID, "frank", &tok, 60).await);
    assert_eq!(err.code, ErrorCode::TokenExpired.as_i32(), "{err:?}");
    // And back: a token expired by the system clock but not by the test clock is taken.
    clock.shift(-600_000);
    let (old, expires) = token_by(&clock, "frank", 120);
    assert!(
        expires < switchboard_protocol::now_ms() / 1000,
        "expired by the system clock"
    );
    let (mut raw, reply) = logged_in(&server, "frank", &old).await;
    assert_eq!(reply.token_expires_at, expires);
    raw.assert_alive().await;
}
