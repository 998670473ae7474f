//! The token checks an app may turn on (`[apps.tokens]`, token.md section 16), per
//! operation over real sockets: the clock-skew bound (T34) on login and on a stream
//! channel's join, RTM2 login tokens (T46), and publisher authentication (T51) on
//! `joinTopic` and `publishTopicMessage`, with renewal. Each refusal has its code and a
//! reason naming the check, and leaves the connection serving.

mod common;

use bytes::Bytes;
use common::*;
use switchboard_protocol::ErrorCode;
use switchboard_protocol::pb::{self, client_message::Body as Req, server_message::Body};
use switchboard_token::{RtcPrivilegeExpiry, RtcRole, Service, TokenBuilder};

/// A raw client of [`APP_ID`] that logs in as `user` with `token`; the reply.
async fn login_with(server: &TestServer, user: &str, token: &str) -> (RawClient, Body) {
    let mut raw = server.raw().await;
    let reply = raw.login(APP_ID, user, token, 60).await;
    (raw, reply)
}

/// A login of `user` with `token` that is refused: the error reply, then the close
/// with LOGIN_FAILED (4010) carrying the same reason.
async fn refused_login(server: &TestServer, user: &str, token: &str) -> pb::Error {
    let (mut raw, reply) = login_with(server, user, token).await;
    let e = expect_error(reply);
    assert_eq!(e.operation, "login");
    let closing = raw.expect_closing(STEP).await;
    assert_eq!(closing.code, 4010, "LOGIN_FAILED: {closing:?}");
    e
}

fn rtc_token(channel: &str, user: &str, role: RtcRole, issue_ts: u32) -> String {
    switchboard_token::build_rtc_token(APP_ID, CERT, channel, user, role, 3600, 3600, issue_ts)
        .expect("RTC token")
}

fn join(channel: &str, token: String) -> Req {
    Req::Join(pb::JoinRequest {
        channel_name: channel.into(),
        token,
        with_presence: Some(false),
        ..Default::default()
    })
}

fn join_topic(channel: &str, topic: &str) -> Req {
    Req::JoinTopic(pb::JoinTopicRequest {
        channel_name: channel.into(),
        topic_name: topic.into(),
        ..Default::default()
    })
}

fn publish_topic(channel: &str, topic: &str) -> Req {
    Req::PublishTopicMessage(pb::PublishTopicMessageRequest {
        channel_name: channel.into(),
        topic_name: topic.into(),
        message_type: pb::MessageType::String as i32,
        payload: Bytes::from_static(b"hi"),
        ..Default::default()
    })
}

/// T34: with `max_clock_skew_secs`, a login token issued further ahead than that is
/// refused with −10005 `ISSUED_IN_FUTURE`; within it, or on an app without the option,
/// it is accepted.
#[tokio::test]
async fn t34_clock_skew_bound_refuses_tokens_from_the_future_when_configured() {
    let server = TestServer::with(|c| c.apps[0].tokens.max_clock_skew_secs = Some(60)).await;
    let ahead = |secs: u32| token_with(APP_ID, CERT, "skewed", 3600, now_secs() + secs);
    let e = refused_login(&server, "skewed", &ahead(600)).await;
    assert_eq!(e.code, ErrorCode::InvalidToken.as_i32(), "{e:?}");
    assert!(e.reason.contains("ISSUED_IN_FUTURE"), "{}", e.reason);
    // A login within the skew goes.
    let (mut raw, reply) = login_with(&server, "skewed", &ahead(30)).await;
    assert!(matches!(reply, Body::Login(_)), "{reply:?}");
    // The same bound on a stream channel's RTC token.
    let refused = expect_error(
        raw.request(join(
            "stage",
            rtc_token("stage", "skewed", RtcRole::Publisher, now_secs() + 600),
        ))
        .await,
    );
    assert_eq!(
        refused.code,
        ErrorCode::InvalidToken.as_i32(),
        "{refused:?}"
    );
    assert!(
        refused.reason.contains("ISSUED_IN_FUTURE"),
        "{}",
        refused.reason
    );
    raw.assert_alive().await;

    // Default: no bound (T34), a token an hour ahead is fine.
    let plain = TestServer::start().await;
    let (_raw, reply) = login_with(&plain, "skewed", &ahead(3600)).await;
    assert!(matches!(reply, Body::Login(_)), "{reply:?}");
}

/// T46: an RTM2 login token is refused by default with −10005 `SERVICE_MISSING`, and
/// accepted when the app sets `accept_rtm2`; its user id is still checked.
#[tokio::test]
async fn t46_rtm2_login_tokens_only_when_enabled() {
    let rtm2 = |user: &str| {
        TokenBuilder::new(APP_ID, CERT, 3600)
            .issue_ts(now_secs())
            .add_service(Service::rtm2(user, Vec::new(), 3600))
            .build()
            .expect("RTM2 token")
    };
    let plain = TestServer::start().await;
    let e = refused_login(&plain, "neo", &rtm2("neo")).await;
    assert_eq!(e.code, ErrorCode::InvalidToken.as_i32(), "{e:?}");
    assert!(e.reason.contains("SERVICE_MISSING"), "{}", e.reason);
    let (_raw, reply) = login_with(&plain, "neo", &token("neo")).await;
    assert!(
        matches!(reply, Body::Login(_)),
        "an RTM token still works: {reply:?}"
    );

    let server = TestServer::with(|c| c.apps[0].tokens.accept_rtm2 = true).await;
    let (_neo, reply) = login_with(&server, "neo", &rtm2("neo")).await;
    assert!(matches!(reply, Body::Login(_)), "{reply:?}");
    let e = refused_login(&server, "trinity", &rtm2("neo")).await;
    assert_eq!(e.code, ErrorCode::InvalidToken.as_i32(), "{e:?}");
    assert!(e.reason.contains("USER_ID_MISMATCH"), "{}", e.reason);
}

/// T51: with `publisher_authentication`, a member whose RTC token lacks
/// publishDataStream joins the channel but is refused a topic role with −10005 and the
/// reason; a renewal with a publisher token lifts that; a publisher token's role
/// publishes. Without the option a subscriber token may take a role (the default).
#[tokio::test]
async fn t51_publisher_authentication_gates_topic_roles_and_messages() {
    let server = TestServer::with(|c| c.apps[0].tokens.publisher_authentication = true).await;
    let mut viewer = server.raw_login("viewer").await;
    let sub = rtc_token("stage", "viewer", RtcRole::Subscriber, now_secs());
    assert!(matches!(
        viewer.request(join("stage", sub)).await,
        Body::Join(_)
    ));
    let refused = expect_error(viewer.request(join_topic("stage", "t")).await);
    assert_eq!(
        refused.code,
        ErrorCode::InvalidToken.as_i32(),
        "{refused:?}"
    );
    assert!(
        refused.reason.contains("publishDataStream") && refused.reason.contains("T51"),
        "{}",
        refused.reason
    );
    // A renewal with a publisher token grants it.
    let renewed = viewer
        .request(Req::RenewToken(pb::RenewTokenRequest {
            token: rtc_token("stage", "viewer", RtcRole::Publisher, now_secs()),
            channel_name: "stage".into(),
        }))
        .await;
    assert!(matches!(renewed, Body::RenewToken(_)), "{renewed:?}");
    assert!(matches!(
        viewer.request(join_topic("stage", "t")).await,
        Body::JoinTopic(_)
    ));
    assert!(matches!(
        viewer.request(publish_topic("stage", "t")).await,
        Body::PublishTopicMessage(_)
    ));

    // A publisher token from the start.
    let mut host = server.raw_login("host").await;
    let pubtok = rtc_token("stage", "host", RtcRole::Publisher, now_secs());
    assert!(matches!(
        host.request(join("stage", pubtok)).await,
        Body::Join(_)
    ));
    assert!(matches!(
        host.request(join_topic("stage", "t")).await,
        Body::JoinTopic(_)
    ));
    host.assert_alive().await;

    // Off (the default): a subscriber token takes a role.
    let plain = TestServer::start().await;
    let mut v = plain.raw_login("viewer").await;
    let sub = rtc_token("stage", "viewer", RtcRole::Subscriber, now_secs());
    assert!(matches!(v.request(join("stage", sub)).await, Body::Join(_)));
    assert!(matches!(
        v.request(join_topic("stage", "t")).await,
        Body::JoinTopic(_)
    ));
}

/// T51 with T29: publishDataStream that lapses while the member holds a topic role
/// stops its messages with −10009 (the role alone is not enough); the join privilege
/// lasts, so the member stays in the channel.
#[tokio::test]
async fn t51_a_lapsed_publish_privilege_stops_topic_messages() {
    let server = TestServer::with(|c| c.apps[0].tokens.publisher_authentication = true).await;
    let mut host = server.raw_login("host").await;
    // Issued 10 s ago: publishDataStream lasts 12 s from then, so about 2 s from now.
    let issued = now_secs() - 10;
    let token = switchboard_token::build_rtc_token_with_privileges(
        APP_ID,
        CERT,
        "stage",
        "host",
        3600,
        RtcPrivilegeExpiry {
            join_channel: 3600,
            publish_audio: 0,
            publish_video: 0,
            publish_data: 12,
        },
        issued,
    )
    .expect("RTC token");
    assert!(matches!(
        host.request(join("stage", token)).await,
        Body::Join(_)
    ));
    assert!(matches!(
        host.request(join_topic("stage", "t")).await,
        Body::JoinTopic(_)
    ));
    // Publish until the privilege lapses (a deadline well past the 2 s, no fixed sleep).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let refused = loop {
        match host.request(publish_topic("stage", "t")).await {
            Body::PublishTopicMessage(_) => {
                assert!(std::time::Instant::now() < deadline, "never lapsed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Body::Error(e) => break e,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        refused.code,
        ErrorCode::TokenExpired.as_i32(),
        "{refused:?}"
    );
    assert!(refused.reason.contains("lapsed"), "{}", refused.reason);
    host.assert_alive().await;
}
