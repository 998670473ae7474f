//! R62 (issue 21): during its `presenceTimeout` window a disconnected user is still
//! listed by `whoNow` and `whereNow`; once the window ends (REMOTE_TIMEOUT) it is
//! not. Raw clients over real sockets.

mod common;

use common::*;
use std::time::Duration;
use switchboard_protocol::pb::{self, client_message::Body as Req, server_message::Body as Rep};
use tokio::time::Instant;

fn subscribe_with_presence(channel: &str) -> Req {
    Req::Subscribe(pb::SubscribeRequest {
        channel_name: channel.into(),
        with_presence: Some(true),
        ..Default::default()
    })
}

/// Whether `user` is listed by whoNow of `channel` and by whereNow, as seen by `probe`.
async fn listed(probe: &mut RawClient, channel: &str, user: &str) -> (bool, bool) {
    let who = probe
        .request(Req::WhoNow(pb::WhoNowRequest {
            channel_type: pb::ChannelType::Message as i32,
            channel_name: channel.into(),
            ..Default::default()
        }))
        .await;
    let Rep::WhoNow(who) = who else {
        panic!("whoNow: {who:?}")
    };
    let r#where = probe
        .request(Req::WhereNow(pb::WhereNowRequest {
            user_id: user.into(),
        }))
        .await;
    let Rep::WhereNow(r#where) = r#where else {
        panic!("whereNow: {where:?}")
    };
    (
        who.occupants.iter().any(|o| o.user_id == user),
        r#where.channels.iter().any(|c| c.channel_name == channel),
    )
}

/// The next presence event of `raw` about `user` of type `kind`, skipping others.
async fn presence_event(
    raw: &mut RawClient,
    user: &str,
    kind: pb::PresenceEventType,
    timeout: Duration,
) -> pb::PresenceEvent {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let push = raw
            .next_push(left)
            .await
            .unwrap_or_else(|| panic!("connection closed waiting for {kind:?} of {user}"));
        if let Some(Rep::Presence(p)) = push.body
            && p.event_type == kind as i32
            && p.publisher == user
        {
            return p;
        }
    }
}

#[tokio::test]
async fn r62_disconnected_user_is_listed_by_who_now_and_where_now_until_its_timeout() {
    let server = TestServer::start().await;
    let mut observer = server.raw_login("observer").await;
    let reply = observer.request(subscribe_with_presence("room")).await;
    assert!(matches!(reply, Rep::Subscribe(_)), "{reply:?}");
    let mut probe = server.raw_login("probe").await;

    // The subject: presenceTimeout 5 s (the smallest allowed, R16).
    let mut subject = server.raw().await;
    let login = subject
        .request(Req::Login(pb::LoginRequest {
            app_id: APP_ID.into(),
            user_id: "subject".into(),
            token: token("subject"),
            heartbeat_interval: 60,
            presence_timeout: 5,
            ..Default::default()
        }))
        .await;
    let Rep::Login(login) = login else {
        panic!("login: {login:?}")
    };
    assert_eq!(login.presence_timeout, 5);
    let reply = subject.request(subscribe_with_presence("room")).await;
    assert!(matches!(reply, Rep::Subscribe(_)), "{reply:?}");
    presence_event(
        &mut observer,
        "subject",
        pb::PresenceEventType::RemoteJoin,
        STEP,
    )
    .await;
    assert_eq!(
        listed(&mut probe, "room", "subject").await,
        (true, true),
        "listed while connected"
    );

    // The connection is lost (the TCP connection ends without a logout).
    drop(subject);
    let lost = Instant::now();
    // Well inside the 5 s window, every look lists the user.
    let mut looks = 0;
    while lost.elapsed() < Duration::from_secs(3) {
        assert_eq!(
            listed(&mut probe, "room", "subject").await,
            (true, true),
            "R62: listed {:?} after the loss",
            lost.elapsed()
        );
        looks += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(looks >= 5, "only {looks} looks in the window");

    // The window ends: REMOTE_TIMEOUT (not REMOTE_LEAVE), then the user is gone.
    presence_event(
        &mut observer,
        "subject",
        pb::PresenceEventType::RemoteTimeout,
        Duration::from_secs(10),
    )
    .await;
    assert!(
        lost.elapsed() >= Duration::from_secs(4),
        "REMOTE_TIMEOUT came {:?} after the loss, before presenceTimeout",
        lost.elapsed()
    );
    assert_eq!(
        listed(&mut probe, "room", "subject").await,
        (false, false),
        "not listed after the presence timeout"
    );
    observer.assert_alive().await;
}
