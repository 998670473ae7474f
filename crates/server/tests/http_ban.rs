//! Issue 16, bans through the server API: `POST .../users/{user}/ban` kicks the user's
//! session with the reason and refuses its logins with `LOGIN_REJECTED` (and the
//! reason) until the ban expires or `.../unban` lifts it; other users are untouched.

mod common;
mod http_support;

use common::*;
use http_support::{API_KEY, HttpServer};
use serde_json::json;
use switchboard_protocol::pb::server_message;
use switchboard_protocol::{DisconnectCode, ErrorCode, now_ms};

/// A fresh connection's login of `user`: `Ok` or the error (code, reason).
async fn try_login(s: &HttpServer, user: &str) -> Result<(), (i32, String)> {
    let mut raw = s.ws.raw().await;
    match raw.login(APP_ID, user, &token(user), 60).await {
        server_message::Body::Login(_) => Ok(()),
        server_message::Body::Error(e) => Err((e.code, e.reason)),
        other => panic!("a login reply: {other:?}"),
    }
}

#[tokio::test]
async fn a_ban_kicks_and_refuses_logins_until_lifted() {
    let s = HttpServer::start().await;
    let mut alice = s.ws.raw_login("alice").await;
    let _bob = s.ws.raw_login("bob").await;

    let (status, json) = s
        .post(
            "/users/alice/ban",
            json!({"duration_secs": 600, "reason": "spamming the lobby"}),
        )
        .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["sessions"], 1);
    let until = json["until_ms"].as_u64().expect("until_ms");
    assert!(until >= now_ms() + 590_000, "{json}");

    let closing = alice.expect_closing(STEP).await;
    assert_eq!(closing.code, DisconnectCode::Kicked as u32);
    assert!(closing.reason.contains("spamming the lobby"), "{closing:?}");

    let (code, reason) = try_login(&s, "alice").await.expect_err("a banned login");
    assert_eq!(code, ErrorCode::LoginRejected.as_i32());
    assert!(
        reason.contains("banned") && reason.contains("spamming the lobby"),
        "{reason}"
    );
    // Another user logs in as ever.
    try_login(&s, "carol").await.expect("carol is not banned");

    let (status, json) = s.post("/users/alice/unban", json!({})).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["was_banned"], true);
    try_login(&s, "alice")
        .await
        .expect("alice logs in once unbanned");
    let (_, json) = s.post("/users/alice/unban", json!({})).await;
    assert_eq!(json["was_banned"], false, "no ban left to lift");
}

#[tokio::test]
async fn a_ban_ends_by_itself_when_it_expires() {
    let s = HttpServer::start().await;
    // Not logged in: nothing to kick, the ban holds all the same.
    let (status, json) = s.post("/users/dave/ban", json!({"duration_secs": 1})).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["sessions"], 0);
    let until = json["until_ms"].as_u64().unwrap();
    // Every login before the end is refused; the first one let in comes after it.
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let at = now_ms();
        match try_login(&s, "dave").await {
            Ok(()) => {
                assert!(at + 50 >= until, "let in {} ms early", until - at);
                break;
            }
            Err((code, reason)) => {
                assert_eq!(code, ErrorCode::LoginRejected.as_i32(), "{reason}");
                assert!(reason.contains("banned by the server"), "{reason}");
                assert!(now_ms() <= until + 1000, "still refused well after the end");
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the ban never ended"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn bad_bans_are_refused_with_a_code_and_reason() {
    let s = HttpServer::start().await;
    for (body, what) in [
        (json!({"duration_secs": 0}), "duration_secs"),
        (json!({"duration_secs": 100_000_000u64}), "duration_secs"),
        (json!({}), "duration_secs"),
        (
            json!({"duration_secs": 5, "reason": "x".repeat(300)}),
            "reason",
        ),
        (json!({"duration_secs": 5, "until": 3}), "until"),
    ] {
        let (status, json) = s.post("/users/alice/ban", body.clone()).await;
        assert_eq!(status, 400, "{body}: {json}");
        assert_eq!(json["code"], ErrorCode::BadRequest.as_i32(), "{json}");
        assert!(
            json["reason"].as_str().unwrap_or("").contains(what),
            "{body}: {json}"
        );
    }
    let (status, _) = s
        .post_as(
            API_KEY,
            "wrong-secret",
            "/users/alice/ban",
            json!({"duration_secs": 5}),
        )
        .await;
    assert_eq!(status, 401);
    // None of them banned anyone.
    try_login(&s, "alice").await.expect("alice is not banned");
}
