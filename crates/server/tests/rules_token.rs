//! Token rules seen from the server (issue 21's audit found no test citing them):
//! the token string's alphabet (T18), expiry as a duration from `issue_ts` (T23, T27),
//! tokens longer than 24 h (T33), the purpose-specific check (T42), and a stream
//! channel token's will-expire notice and expiry (R39, R43); and the deployment
//! settings token.md leaves open, off by default: a maximum lifetime (T33) and a
//! maximum clock skew (T34). Real server, raw clients.

mod common;

use common::*;
use std::time::Duration;
use switchboard_protocol::pb::{self, client_message::Body as Req, server_message::Body as Rep};
use switchboard_token::RtcRole;
use tokio::time::Instant;

fn login_with_token(user: &str, token: &str) -> Req {
    Req::Login(pb::LoginRequest {
        app_id: APP_ID.into(),
        user_id: user.into(),
        token: token.into(),
        heartbeat_interval: 60,
        ..Default::default()
    })
}

fn rtc_token(channel: &str, user: &str, lifetime: u32, issued: u32) -> String {
    switchboard_token::build_rtc_token(
        APP_ID,
        CERT,
        channel,
        user,
        RtcRole::Publisher,
        lifetime,
        lifetime,
        issued,
    )
    .expect("rtc token")
}

fn join_req(channel: &str, token: &str) -> Req {
    Req::Join(pb::JoinRequest {
        channel_name: channel.into(),
        token: token.into(),
        with_presence: Some(false),
        ..Default::default()
    })
}

/// T18: a built token is `007` and then standard base64 (`A–Z a–z 0–9 + /`, `=`
/// padding), never the URL-safe alphabet; the server accepts it.
#[tokio::test]
async fn t18_tokens_use_the_standard_base64_alphabet() {
    let server = TestServer::start().await;
    for user in [
        "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
    ] {
        let t = token(user);
        let body = t.strip_prefix("007").expect("version prefix");
        assert!(
            body.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'='),
            "not standard base64: {t}"
        );
        let mut raw = server.raw().await;
        let reply = raw.request(login_with_token(user, &t)).await;
        assert!(matches!(reply, Rep::Login(_)), "{user}: {reply:?}");
    }
}

/// T23, T27: `expire` is a duration in seconds from `issue_ts`, and the token expires
/// at `issue_ts + expire`: a token issued 100 s ago with a 50 s lifetime is expired
/// (−10009); issued 100 s ago with 1,000 s it is valid and the login reports exactly
/// `issue_ts + expire` as its expiry.
#[tokio::test]
async fn t23_t27_expiry_is_issue_ts_plus_expire() {
    let server = TestServer::start().await;
    let issued = now_secs() - 100;
    let mut raw = server.raw().await;
    let expired = token_with(APP_ID, CERT, "alice", 50, issued);
    let err = expect_error(raw.request(login_with_token("alice", &expired)).await);
    assert_eq!(err.code, -10009, "{err:?}");

    let mut raw = server.raw().await;
    let valid = token_with(APP_ID, CERT, "alice", 1000, issued);
    let reply = raw.request(login_with_token("alice", &valid)).await;
    let Rep::Login(login) = reply else {
        panic!("login: {reply:?}")
    };
    assert_eq!(login.token_expires_at, u64::from(issued) + 1000);
}

/// T33: tokens are documented as valid for at most 24 hours, but the service does not
/// refuse a longer one (by default): a 48-hour token logs in and expires when it says.
#[tokio::test]
async fn t33_a_token_longer_than_24_hours_is_accepted() {
    let server = TestServer::start().await;
    let issued = now_secs();
    let long = token_with(APP_ID, CERT, "alice", 48 * 3600, issued);
    let mut raw = server.raw().await;
    let reply = raw.request(login_with_token("alice", &long)).await;
    let Rep::Login(login) = reply else {
        panic!("login: {reply:?}")
    };
    assert_eq!(login.token_expires_at, u64::from(issued) + 48 * 3600);
}

/// T42 (with T43, T47): after the common checks a token still has to pass the check of
/// its purpose: an RTC-only token cannot log in, and an RTM login token cannot join a
/// stream channel.
#[tokio::test]
async fn t42_each_purpose_runs_its_own_check() {
    let server = TestServer::start().await;
    let mut raw = server.raw().await;
    let rtc_only = rtc_token("hall", "alice", 3600, now_secs());
    let err = expect_error(raw.request(login_with_token("alice", &rtc_only)).await);
    assert_eq!(err.code, -10005, "an RTC token is no login token: {err:?}");

    let mut alice = server.raw_login("alice").await;
    let err = expect_error(alice.request(join_req("hall", &token("alice"))).await);
    assert_eq!(err.code, -10005, "a login token is no join token: {err:?}");
    alice.assert_alive().await;
    let reply = alice.request(join_req("hall", &rtc_only)).await;
    assert!(matches!(reply, Rep::Join(_)), "{reply:?}");
}

/// R39: 30 s before a stream channel token's effective expiry the client gets a
/// will-expire notice naming that channel. R43: when it expires without renewal only
/// that channel is left (a ChannelLeft push with the token-expired code); the session
/// and its other channels go on.
#[tokio::test]
async fn r39_r43_stream_channel_token_notice_and_expiry_leave_only_that_channel() {
    let server = TestServer::start().await;
    let mut alice = server.raw_login("alice").await;
    alice.subscribe("other").await;
    let issued = now_secs();
    let reply = alice
        .request(join_req("short", &rtc_token("short", "alice", 3, issued)))
        .await;
    let Rep::Join(join) = reply else {
        panic!("join: {reply:?}")
    };
    assert_eq!(join.token_expires_at, u64::from(issued) + 3);

    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut notice, mut left) = (None, None);
    while left.is_none() {
        let wait = deadline.saturating_duration_since(Instant::now());
        let push = alice.next_push(wait).await.expect("connection open");
        match push.body {
            Some(Rep::TokenWillExpire(t)) if t.channel_name == "short" => notice = Some(t),
            Some(Rep::ChannelLeft(l)) => left = Some(l),
            _ => {}
        }
    }
    let notice = notice.expect("R39: a will-expire notice for the channel came first");
    assert_eq!(notice.expires_at, u64::from(issued) + 3);
    let left = left.expect("ChannelLeft");
    assert_eq!(
        (left.channel_type, left.channel_name.as_str(), left.code),
        (pb::ChannelType::Stream as i32, "short", -10009),
        "{left:?}"
    );
    assert!(!left.reason.is_empty());
    // The session goes on, with its other channel.
    alice.assert_alive().await;
    let reply = alice.request(publish_text("other", "still here")).await;
    assert!(matches!(reply, Rep::Publish(_)), "{reply:?}");
    let err = expect_error(
        alice
            .request(Req::JoinTopic(pb::JoinTopicRequest {
                channel_name: "short".into(),
                topic_name: "t".into(),
                ..Default::default()
            }))
            .await,
    );
    assert_eq!(err.code, -11001, "the channel was left: {err:?}");
}

/// The error a login with `token` as `user` gets from `server`; panics if accepted.
async fn login_refused(server: &TestServer, user: &str, token: &str) -> pb::Error {
    let mut raw = server.raw().await;
    expect_error(raw.request(login_with_token(user, token)).await)
}

/// The login reply for `token` as `user`; panics if refused.
async fn login_accepted(server: &TestServer, user: &str, token: &str) -> pb::LoginReply {
    let mut raw = server.raw().await;
    match raw.request(login_with_token(user, token)).await {
        Rep::Login(r) => r,
        other => panic!("login of {user} refused: {other:?}"),
    }
}

/// T33 configured (`[apps.tokens] max_lifetime_secs` = 24 h): a 48-hour token is honoured for
/// 24 hours only — issued now it logs in with its expiry capped at 24 h (so its
/// will-expire and expiry come then); issued 25 h ago it counts as expired (−10009), at
/// login and at a stream channel join alike. Other apps keep the default (no limit).
#[tokio::test]
async fn t33_a_configured_maximum_lifetime_caps_long_tokens() {
    const DAY: u32 = 24 * 3600;
    let server = TestServer::with(|c| {
        c.apps[0].tokens.max_lifetime_secs = Some(DAY);
    })
    .await;
    let now = now_secs();
    let fresh = token_with(APP_ID, CERT, "alice", 2 * DAY, now);
    let login = login_accepted(&server, "alice", &fresh).await;
    assert_eq!(login.token_expires_at, u64::from(now) + u64::from(DAY));

    let old = token_with(APP_ID, CERT, "bob", 2 * DAY, now - DAY - 3600);
    let err = login_refused(&server, "bob", &old).await;
    assert_eq!(err.code, -10009, "{err:?}");
    assert!(err.reason.contains("TOKEN_EXPIRED"), "{err:?}");

    // A stream channel join is held to the same limit.
    let mut raw = server.raw().await;
    let Rep::Login(_) = raw
        .request(login_with_token("carol", &token("carol")))
        .await
    else {
        panic!("carol logs in")
    };
    let err = expect_error(
        raw.request(join_req(
            "sc",
            &rtc_token("sc", "carol", 2 * DAY, now - DAY - 3600),
        ))
        .await,
    );
    assert_eq!(err.code, -10009, "{err:?}");
    let Rep::Join(_) = raw
        .request(join_req("sc", &rtc_token("sc", "carol", 2 * DAY, now)))
        .await
    else {
        panic!("a fresh long RTC token joins")
    };

    // The other app is unlimited (the default).
    let other = token_with(OTHER_APP_ID, OTHER_CERT, "dave", 2 * DAY, now - DAY - 3600);
    let mut raw = server.raw().await;
    let reply = raw
        .request(Req::Login(pb::LoginRequest {
            app_id: OTHER_APP_ID.into(),
            user_id: "dave".into(),
            token: other,
            heartbeat_interval: 60,
            ..Default::default()
        }))
        .await;
    assert!(matches!(reply, Rep::Login(_)), "{reply:?}");
}

/// T34: by default a token issued in the future (here 1 h ahead of the server's clock)
/// is accepted; with `[apps.tokens] max_clock_skew_secs` = 60 one issued 2 min ahead is refused
/// with ISSUED_IN_FUTURE (−10005), one 30 s ahead still logs in.
#[tokio::test]
async fn t34_a_future_issue_ts_is_accepted_unless_a_maximum_skew_is_configured() {
    let now = now_secs();
    let open = TestServer::start().await;
    login_accepted(
        &open,
        "alice",
        &token_with(APP_ID, CERT, "alice", 3600, now + 3600),
    )
    .await;

    let strict = TestServer::with(|c| {
        c.apps[0].tokens.max_clock_skew_secs = Some(60);
    })
    .await;
    let err = login_refused(
        &strict,
        "bob",
        &token_with(APP_ID, CERT, "bob", 3600, now + 120),
    )
    .await;
    assert_eq!(err.code, -10005, "{err:?}");
    assert!(err.reason.contains("ISSUED_IN_FUTURE"), "{err:?}");
    login_accepted(
        &strict,
        "carol",
        &token_with(APP_ID, CERT, "carol", 3600, now + 30),
    )
    .await;
}
