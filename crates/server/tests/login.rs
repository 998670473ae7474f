//! Login, tokens at login, logout and the one-session-per-user rule (api.md §3.1, §3.2,
//! §11, R6, R24–R26, R28, R30, R32; token.md T39–T41, T44, T61).

mod common;

use common::*;
use switchboard_client::{ErrorCode, LinkOperation, LinkReason, LinkState, PublishOptions};
use switchboard_protocol::pb::{self, client_message, server_message};

/// Logs `user` in to `app` through the SDK with `token`, expecting a refusal; returns
/// the error and the FAILED link event.
async fn sdk_login_refused(
    server: &TestServer,
    app: &str,
    user: &str,
    token: &str,
) -> (
    switchboard_client::RtmError,
    switchboard_client::LinkStateEvent,
) {
    let client = server.client_of(app, user);
    let mut links = client.link_state_events();
    let err = client
        .login(token)
        .await
        .expect_err("login must be refused");
    assert_eq!(err.operation, "login");
    assert!(!err.reason.is_empty(), "a refusal carries a reason");
    let connecting = wait_link(&mut links, LinkState::Connecting, STEP).await;
    assert_eq!(connecting.reason_code, LinkReason::Login);
    let failed = wait_link(&mut links, LinkState::Failed, STEP).await;
    assert_eq!(failed.previous_state, LinkState::Connecting);
    assert_eq!(failed.operation, LinkOperation::ServerReject);
    assert_eq!(client.link_state(), LinkState::Failed);
    (err, failed)
}

/// Logs in over a raw socket expecting an error reply with `code`, then the connection
/// is closed with LOGIN_FAILED (4010).
async fn raw_login_refused(server: &TestServer, app: &str, user: &str, token: &str, code: i32) {
    let mut raw = server.raw().await;
    let err = expect_error(raw.login(app, user, token, 0).await);
    assert_eq!(err.code, code, "user {user:?}: {err:?}");
    assert_eq!(err.operation, "login");
    assert!(!err.reason.is_empty());
    let closing = raw.expect_closing(STEP).await;
    assert_eq!(closing.code, 4010, "LOGIN_FAILED: {closing:?}");
    assert!(!closing.reconnect);
}

#[tokio::test]
async fn r25_valid_token_logs_in_idle_connecting_connected() {
    let server = TestServer::start().await;
    let alice = server.client("alice");
    let mut links = alice.link_state_events();
    assert_eq!(alice.link_state(), LinkState::Idle);
    let resp = alice.login(&token("alice")).await.expect("login");
    assert!(!resp.session_id.is_empty());
    assert!(resp.timestamp > 0);

    let e = wait_link(&mut links, LinkState::Connecting, STEP).await;
    assert_eq!(
        (e.previous_state, e.operation, e.reason_code),
        (LinkState::Idle, LinkOperation::Login, LinkReason::Login)
    );
    let e = wait_link(&mut links, LinkState::Connected, STEP).await;
    assert_eq!(
        (e.previous_state, e.operation, e.reason_code),
        (
            LinkState::Connecting,
            LinkOperation::Login,
            LinkReason::LoginSuccess
        )
    );
    assert_eq!(alice.link_state(), LinkState::Connected);

    // The session is real: a USER message to alice is accepted and delivered.
    let mut inbox = alice.user_messages();
    let bob = server.login("bob").await;
    let to_alice = PublishOptions {
        channel_type: switchboard_client::ChannelType::User,
        ..Default::default()
    };
    bob.publish("alice", "hi", to_alice)
        .await
        .expect("alice is online");
    assert_eq!(
        text(&next_message(&mut inbox, "USER message").await.message),
        "hi"
    );
}

#[tokio::test]
async fn r32_r35_sdk_logout_goes_from_connected_to_idle_and_leaves_the_server() {
    let server = TestServer::start().await;
    let alice = server.login("alice").await;
    let mut links = alice.link_state_events();
    subscribed(&alice, "room").await;
    alice.logout().await.expect("logout");
    assert_eq!(alice.link_state(), LinkState::Idle);

    // Server side: the session is gone; alice is offline (R71 −11033).
    let bob = server.login("bob").await;
    let (offline, last) = wait_offline(&bob, "alice").await;
    assert!(offline, "alice still online after logout: {last}");

    // SDK side (R32): one transition, CONNECTED → IDLE, operation and reason LOGOUT.
    let e = next_within(&mut links, STEP, "logout link event")
        .await
        .expect("link stream open")
        .expect("no lag");
    assert_eq!(
        (
            e.previous_state,
            e.current_state,
            e.operation,
            e.reason_code
        ),
        (
            LinkState::Connected,
            LinkState::Idle,
            LinkOperation::Logout,
            LinkReason::Logout
        ),
        "logout must go straight from CONNECTED to IDLE: {e:?}"
    );
    assert_eq!(e.affected_channels, vec!["room".to_string()]);
}

#[tokio::test]
async fn r26_t40_wrong_certificate_is_invalid_token() {
    let server = TestServer::start().await;
    let forged = token_with(APP_ID, WRONG_CERT, "alice", 3600, now_secs());
    let (err, failed) = sdk_login_refused(&server, APP_ID, "alice", &forged).await;
    assert_eq!(err.code, ErrorCode::InvalidToken.as_i32(), "{err:?}");
    assert_eq!(failed.reason_code, LinkReason::InvalidToken);
    raw_login_refused(&server, APP_ID, "alice", &forged, -10005).await;
}

#[tokio::test]
async fn r26_r45_t41_expired_token_is_token_expired() {
    let server = TestServer::start().await;
    let expired = token_with(APP_ID, CERT, "alice", 60, now_secs() - 600);
    let (err, failed) = sdk_login_refused(&server, APP_ID, "alice", &expired).await;
    assert_eq!(err.code, ErrorCode::TokenExpired.as_i32(), "{err:?}");
    assert_eq!(failed.reason_code, LinkReason::TokenExpired);
    raw_login_refused(&server, APP_ID, "alice", &expired, -10009).await;
}

#[tokio::test]
async fn r26_t39_token_of_another_app_is_inconsistent_app_id() {
    let server = TestServer::start().await;
    // A perfectly valid token, but for OTHER_APP_ID (configured on the same server).
    let foreign = token_with(OTHER_APP_ID, OTHER_CERT, "alice", 3600, now_secs());
    // The server refuses it (T39)…
    raw_login_refused(&server, APP_ID, "alice", &foreign, -10016).await;
    // …and the SDK with the same code, before sending anything (T63).
    let client = server.client("alice");
    let err = client.login(&foreign).await.expect_err("foreign token");
    assert_eq!(err.code, ErrorCode::InconsistentAppid.as_i32(), "{err:?}");
    assert_ne!(client.link_state(), LinkState::Connected);
    // The same token logs in to its own app.
    let own = server.client_of(OTHER_APP_ID, "alice");
    own.login(&foreign).await.expect("token works for its app");
}

#[tokio::test]
async fn r25_t44_token_for_another_user_is_invalid_token() {
    let server = TestServer::start().await;
    let bobs = token("bob");
    let (err, failed) = sdk_login_refused(&server, APP_ID, "alice", &bobs).await;
    assert_eq!(err.code, ErrorCode::InvalidToken.as_i32(), "{err:?}");
    assert_eq!(failed.reason_code, LinkReason::InvalidToken);
    raw_login_refused(&server, APP_ID, "alice", &bobs, -10005).await;
    // R15: user ids compare case-sensitively.
    raw_login_refused(&server, APP_ID, "Bob", &bobs, -10005).await;
}

#[tokio::test]
async fn r25_t61_no_token_on_app_with_certificate_is_invalid_token() {
    let server = TestServer::start().await;
    let (err, failed) = sdk_login_refused(&server, APP_ID, "alice", "").await;
    assert_eq!(err.code, ErrorCode::InvalidToken.as_i32(), "{err:?}");
    assert_eq!(failed.reason_code, LinkReason::InvalidToken);
    raw_login_refused(&server, APP_ID, "alice", "", -10005).await;
    // The app id in place of a token is no token either (T61).
    raw_login_refused(&server, APP_ID, "alice", APP_ID, -10005).await;
}

#[tokio::test]
async fn r25_t61_app_without_certificate_accepts_empty_token_and_app_id() {
    let server = TestServer::start().await;
    let a = server.client_of(OPEN_APP_ID, "alice");
    a.login("").await.expect("empty token accepted");
    let b = server.client_of(OPEN_APP_ID, "bob");
    b.login(OPEN_APP_ID)
        .await
        .expect("app id as token accepted");
    // Both sessions work: a USER message goes from one to the other.
    let mut inbox = b.user_messages();
    let to_bob = PublishOptions {
        channel_type: switchboard_client::ChannelType::User,
        ..Default::default()
    };
    a.publish("bob", "hello", to_bob).await.expect("publish");
    let m = next_message(&mut inbox, "bob's USER message").await;
    assert_eq!(text(&m.message), "hello");
    let mut raw = server.raw().await;
    let reply = raw.login(OPEN_APP_ID, "carol", "", 0).await;
    assert!(matches!(reply, server_message::Body::Login(ref l) if l.token_expires_at == 0));
}

#[tokio::test]
async fn r1_unknown_app_id_is_invalid_app_id() {
    let server = TestServer::start().await;
    let t = token_with(UNKNOWN_APP_ID, CERT, "alice", 3600, now_secs());
    let (err, _) = sdk_login_refused(&server, UNKNOWN_APP_ID, "alice", &t).await;
    assert_eq!(err.code, ErrorCode::InvalidAppId.as_i32(), "{err:?}");
    raw_login_refused(&server, UNKNOWN_APP_ID, "alice", &t, -10003).await;
    // A malformed app id, which the SDK would refuse locally (R1).
    raw_login_refused(&server, "not-an-app-id", "alice", "", -10003).await;
}

#[tokio::test]
async fn r6_invalid_user_id_is_refused_by_the_server() {
    let server = TestServer::start().await;
    let long = "u".repeat(65);
    for bad in [
        "",
        "null",
        "_alice",
        long.as_str(),
        "a/b",
        "caf\u{e9}",
        "a*b",
    ] {
        // The SDK constructor refuses it locally…
        let local = switchboard_client::Client::new(APP_ID, bad, server.client_config());
        assert_eq!(
            local.err().map(|e| e.code),
            Some(ErrorCode::InvalidUserId.as_i32()),
            "SDK, user id {bad:?}"
        );
        // …and the server refuses it too (R6), even with an otherwise valid token.
        raw_login_refused(&server, APP_ID, bad, &token(bad), -10006).await;
        raw_login_refused(&server, OPEN_APP_ID, bad, "", -10006).await;
    }
    // The longest allowed id works.
    let ok = "u".repeat(64);
    server.raw_login(&ok).await.assert_alive().await;
}

#[tokio::test]
async fn r28_second_login_kicks_the_first_session() {
    let server = TestServer::start().await;
    let first = server.login("dup").await;
    let mut first_links = first.link_state_events();
    let mut first_sub = subscribed(&first, "room").await;
    let mut first_msgs = first_sub.messages();
    let mut first_inbox = first.user_messages();

    let second = server.login("dup").await;

    let e = wait_link(&mut first_links, LinkState::Failed, STEP).await;
    assert_eq!(e.previous_state, LinkState::Connected);
    assert_eq!(e.operation, LinkOperation::ServerReject);
    assert_eq!(e.reason_code, LinkReason::SameUidLogin);
    // Its streams end (R28, R35).
    assert!(
        next_within(&mut first_msgs, STEP, "end of messages")
            .await
            .is_none(),
        "the kicked session's subscription stream ends"
    );
    assert!(
        next_within(&mut first_inbox, STEP, "end of user messages")
            .await
            .is_none(),
        "the kicked session's user message stream ends"
    );
    // It is not logged in any more and does not reconnect by itself (R61).
    let err = first
        .publish("room", "x", PublishOptions::default())
        .await
        .expect_err("kicked client cannot publish");
    assert_eq!(err.code, ErrorCode::NotLogin.as_i32());
    assert_eq!(first.link_state(), LinkState::Failed);

    // The second session works: USER messages and channels.
    let mut inbox = second.user_messages();
    let mut sub = subscribed(&second, "room").await;
    let mut msgs = sub.messages();
    let other = server.login("other").await;
    let to_dup = PublishOptions {
        channel_type: switchboard_client::ChannelType::User,
        ..Default::default()
    };
    other
        .publish("dup", "direct", to_dup)
        .await
        .expect("dup online");
    other
        .publish("room", "broadcast", PublishOptions::default())
        .await
        .expect("publish");
    assert_eq!(
        text(&next_message(&mut inbox, "USER message").await.message),
        "direct"
    );
    assert_eq!(
        text(&next_message(&mut msgs, "channel message").await.message),
        "broadcast"
    );
    assert_eq!(second.link_state(), LinkState::Connected);
}

#[tokio::test]
async fn r28_kicked_connection_gets_closing_same_uid_login() {
    let server = TestServer::start().await;
    let mut first = server.raw_login("dup").await;
    let mut second = server.raw_login("dup").await;
    let closing = first.expect_closing(STEP).await;
    assert_eq!(closing.code, 4001, "SAME_UID_LOGIN: {closing:?}");
    assert!(
        !closing.reconnect,
        "a kicked session does not reconnect (R28)"
    );
    second.assert_alive().await;
}

#[tokio::test]
async fn r24_requests_before_login_fail_with_not_login() {
    let server = TestServer::start().await;
    let mut raw = server.raw().await;
    let requests = [
        (
            "subscribe",
            client_message::Body::Subscribe(pb::SubscribeRequest {
                channel_name: "room".into(),
                ..Default::default()
            }),
        ),
        (
            "unsubscribe",
            client_message::Body::Unsubscribe(pb::UnsubscribeRequest {
                channel_name: "room".into(),
            }),
        ),
        ("publish", publish_text("room", "hi")),
        (
            "renewToken",
            client_message::Body::RenewToken(pb::RenewTokenRequest {
                token: token("alice"),
                channel_name: String::new(),
            }),
        ),
        ("logout", client_message::Body::Logout(pb::LogoutRequest {})),
    ];
    for (op, body) in requests {
        let err = expect_error(raw.request(body).await);
        assert_eq!(err.code, ErrorCode::NotLogin.as_i32(), "{op}: {err:?}");
        assert_eq!(err.operation, op);
    }
    // Heartbeats are allowed, the connection stays, and login still works.
    raw.assert_alive().await;
    let reply = raw.login(APP_ID, "alice", &token("alice"), 0).await;
    assert!(matches!(reply, server_message::Body::Login(_)), "{reply:?}");
    raw.subscribe("room").await;
}

#[tokio::test]
async fn r30_second_login_on_one_connection_is_duplicate_operation() {
    let server = TestServer::start().await;
    let mut raw = server.raw_login("alice").await;
    let err = expect_error(raw.login(APP_ID, "alice", &token("alice"), 0).await);
    assert_eq!(err.code, ErrorCode::DuplicateOperation.as_i32(), "{err:?}");
    assert_eq!(err.operation, "login");
    // Also as another user: still refused, and the session is unchanged.
    let err = expect_error(raw.login(APP_ID, "bob", &token("bob"), 0).await);
    assert_eq!(err.code, ErrorCode::DuplicateOperation.as_i32(), "{err:?}");
    raw.assert_alive().await;
    raw.subscribe("room").await;

    // The SDK refuses a second login locally with the same code (R30).
    let c = server.login("carol").await;
    let err = c.login(&token("carol")).await.expect_err("second login");
    assert_eq!(err.code, ErrorCode::DuplicateOperation.as_i32());
    assert_eq!(c.link_state(), LinkState::Connected);
}

#[tokio::test]
async fn r32_logout_is_answered_then_closed_with_logout() {
    let server = TestServer::start().await;
    let mut raw = server.raw_login("alice").await;
    raw.subscribe("room").await;
    let reply = raw
        .request(client_message::Body::Logout(pb::LogoutRequest {}))
        .await;
    assert!(
        matches!(reply, server_message::Body::Logout(ref r) if r.timestamp > 0),
        "logout resolves with a reply (R32): {reply:?}"
    );
    let closing = raw.expect_closing(STEP).await;
    assert_eq!(closing.code, 4000, "LOGOUT: {closing:?}");
    assert!(!closing.reconnect);
}
