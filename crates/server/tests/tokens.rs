//! Login token lifetime: the will-expire notice, expiry ending the session, renewal
//! moving the expiry, and a failed renewal keeping the old token (api.md §3.7, §9.8,
//! R38, R40–R42; token.md T52, T54, T55).

mod common;

use common::*;
use std::time::Duration;
use switchboard_client::{ErrorCode, LinkOperation, LinkReason, LinkState, PublishOptions};
use switchboard_protocol::pb::{self, client_message, server_message};

/// A token of `user` valid for `secs` seconds from now, and when it expires (epoch s).
fn short_token(user: &str, secs: u32) -> (String, u64) {
    let issued = now_secs();
    (
        token_with(APP_ID, CERT, user, secs, issued),
        u64::from(issued + secs),
    )
}

/// Sleeps until one second after `expires_at` (epoch seconds): the only way to check
/// that something did *not* happen at the expiry.
async fn sleep_past(expires_at: u64) {
    let now = switchboard_protocol::now_ms();
    let target = expires_at * 1000 + 1000;
    tokio::time::sleep(Duration::from_millis(target.saturating_sub(now))).await;
}

#[tokio::test]
async fn r38_r42_t54_t55_short_token_warns_then_ends_the_session() {
    let server = TestServer::start().await;
    let (tok, _) = short_token("alice", 3);
    let alice = server.client("alice");
    let mut notices = alice.token_events();
    let mut links = alice.link_state_events();
    let mut sub_stream = {
        alice.login(&tok).await.expect("login with a 3 s token");
        let mut sub = subscribed(&alice, "room").await;
        sub.messages()
    };
    // Less than 30 s remain: the notice comes at once (T54), for the login token (None).
    let notice = next_within(&mut notices, Duration::from_secs(2), "will-expire notice")
        .await
        .expect("token stream open")
        .expect("no lag");
    assert_eq!(notice, None, "login token notice has no channel name (R38)");
    assert_eq!(
        alice.link_state(),
        LinkState::Connected,
        "a notice is not an expiry"
    );

    let failed = wait_link(&mut links, LinkState::Failed, Duration::from_secs(6)).await;
    assert_eq!(failed.previous_state, LinkState::Connected);
    assert_eq!(failed.operation, LinkOperation::ServerReject);
    assert_eq!(failed.reason_code, LinkReason::TokenExpired, "R42");
    assert!(
        next_within(&mut sub_stream, STEP, "end of the subscription")
            .await
            .is_none(),
        "the session's streams end"
    );
    // The server ended the session: alice is offline.
    let bob = server.login("bob").await;
    let (offline, last) = wait_offline(&bob, "alice").await;
    assert!(offline, "alice still online after expiry: {last}");
    // R42: a new login with a fresh token restores service.
    alice.login(&token("alice")).await.expect("login again");
}

#[tokio::test]
async fn r42_expiry_reaches_a_raw_client_as_closing_token_expired() {
    let server = TestServer::start().await;
    let (tok, expires) = short_token("carol", 2);
    let mut raw = server.raw().await;
    let reply = raw.login(APP_ID, "carol", &tok, 60).await;
    let server_message::Body::Login(login) = reply else {
        panic!("login failed: {reply:?}");
    };
    assert_eq!(
        login.token_expires_at, expires,
        "effective expiry in the reply"
    );
    let push = raw.next_push(STEP).await.expect("will-expire push");
    let Some(server_message::Body::TokenWillExpire(w)) = push.body else {
        panic!("expected TokenWillExpire, got {push:?}");
    };
    assert_eq!(w.channel_name, "");
    assert_eq!(w.expires_at, expires);
    let closing = raw.expect_closing(Duration::from_secs(6)).await;
    assert_eq!(closing.code, 4002, "TOKEN_EXPIRED: {closing:?}");
    assert!(
        !closing.reconnect,
        "an expired session does not reconnect by itself"
    );
}

#[tokio::test]
async fn r40_t52_renewing_before_expiry_keeps_the_session() {
    let server = TestServer::start().await;
    let (tok, old_expiry) = short_token("alice", 3);
    let alice = server.client("alice");
    let mut links = alice.link_state_events();
    alice.login(&tok).await.expect("login");
    wait_link(&mut links, LinkState::Connected, STEP).await;
    alice
        .renew_token(&token("alice"))
        .await
        .expect("renewal with a fresh token");

    sleep_past(old_expiry).await;
    assert_eq!(
        alice.link_state(),
        LinkState::Connected,
        "R40: expiry moved"
    );
    let mut sub = subscribed(&alice, "room").await;
    let mut msgs = sub.messages();
    alice
        .publish("room", "alive", PublishOptions::default())
        .await
        .expect("publish");
    assert_eq!(
        text(&next_message(&mut msgs, "message").await.message),
        "alive"
    );
    // Nothing queued: no link state change after the renewal.
    assert_quiet(
        &mut links,
        Duration::from_millis(1),
        "no link state change after the renewal",
    )
    .await;

    // Over the raw protocol the reply carries the new expiry.
    let (tok, _) = short_token("dave", 60);
    let mut raw = server.raw().await;
    let reply = raw.login(APP_ID, "dave", &tok, 60).await;
    assert!(matches!(reply, server_message::Body::Login(_)), "{reply:?}");
    let fresh = token_with(APP_ID, CERT, "dave", 7200, now_secs());
    let reply = raw
        .request(client_message::Body::RenewToken(pb::RenewTokenRequest {
            token: fresh,
            channel_name: String::new(),
        }))
        .await;
    let server_message::Body::RenewToken(r) = reply else {
        panic!("renewal failed: {reply:?}");
    };
    let now = u64::from(now_secs());
    assert!(
        (now + 7000..=now + 7200).contains(&r.token_expires_at),
        "new expiry {} follows the new token",
        r.token_expires_at
    );
}

#[tokio::test]
async fn r41_t52_failed_renewal_keeps_the_old_token() {
    let server = TestServer::start().await;
    let (tok, _) = short_token("alice", 4);
    let alice = server.client("alice");
    let mut links = alice.link_state_events();
    alice.login(&tok).await.expect("login");

    let forged = token_with(APP_ID, WRONG_CERT, "alice", 3600, now_secs());
    let err = alice.renew_token(&forged).await.expect_err("forged token");
    assert_eq!(err.code, ErrorCode::InvalidToken.as_i32(), "{err:?}");
    assert_eq!(err.operation, "renewToken");
    let expired = token_with(APP_ID, CERT, "alice", 60, now_secs() - 600);
    let err = alice
        .renew_token(&expired)
        .await
        .expect_err("expired token");
    assert_eq!(err.code, ErrorCode::TokenExpired.as_i32(), "{err:?}");
    let err = alice
        .renew_token(&token("mallory"))
        .await
        .expect_err("another user's token");
    assert_eq!(err.code, ErrorCode::InvalidToken.as_i32(), "{err:?}");
    let foreign = token_with(OTHER_APP_ID, OTHER_CERT, "alice", 3600, now_secs());
    let err = alice.renew_token(&foreign).await.expect_err("another app");
    assert_eq!(err.code, ErrorCode::InconsistentAppid.as_i32(), "{err:?}");
    let err = alice.renew_token("").await.expect_err("no token");
    assert_eq!(err.code, ErrorCode::InvalidToken.as_i32(), "{err:?}");

    // The session carries on with the old token in force…
    assert_eq!(alice.link_state(), LinkState::Connected);
    subscribed(&alice, "room").await;
    // …including its expiry: the session still ends when the old token expires.
    let failed = wait_link(&mut links, LinkState::Failed, Duration::from_secs(7)).await;
    assert_eq!(failed.reason_code, LinkReason::TokenExpired);
}
