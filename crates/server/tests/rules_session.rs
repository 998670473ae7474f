//! Session rules that had no test (issue 21's audit): a kicked session's presence
//! (R29) and nothing of it served after the kick (issue 20), and the login rate limit
//! (R31). Raw clients over real sockets, and the SDK where the rule is about it.

mod common;

use bytes::Bytes;
use common::*;
use std::time::Duration;
use switchboard_client::{LinkReason, LinkState};
use switchboard_protocol::pb::{self, client_message::Body as Req, server_message::Body as Rep};
use tokio::time::Instant;

fn subscribe_with_presence(channel: &str) -> Req {
    Req::Subscribe(pb::SubscribeRequest {
        channel_name: channel.into(),
        with_presence: Some(true),
        ..Default::default()
    })
}

/// The next presence event of `raw` about `user`, skipping other pushes.
async fn next_presence_about(raw: &mut RawClient, user: &str) -> pb::PresenceEvent {
    let deadline = Instant::now() + STEP;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let push = raw
            .next_push(left)
            .await
            .unwrap_or_else(|| panic!("closed waiting for a presence event about {user}"));
        if let Some(Rep::Presence(p)) = push.body
            && p.publisher == user
        {
            return p;
        }
    }
}

/// Where a marker publication to `channel` lands (its offset).
async fn offset_of(probe: &mut RawClient, channel: &str) -> u64 {
    match probe.request(publish_text(channel, "marker")).await {
        Rep::Publish(p) => p.position.unwrap_or_default().offset,
        other => panic!("marker publish: {other:?}"),
    }
}

/// R28, R29: when a second login kicks a session, the others see the kicked session
/// leave the channel at once (REMOTE_LEAVE, not REMOTE_TIMEOUT), then the new session's
/// REMOTE_JOIN when it subscribes. Issue 20: a publish the kicked connection sends after
/// the kick is not executed (no reply, nothing lands in the channel).
#[tokio::test]
async fn r29_others_see_the_kicked_session_leave_then_the_new_one_join() {
    let server = TestServer::start().await;
    let mut observer = server.raw_login("observer").await;
    assert!(matches!(
        observer.request(subscribe_with_presence("room")).await,
        Rep::Subscribe(_)
    ));
    let mut probe = server.raw_login("probe").await;

    let mut first = server.raw_login("alice").await;
    assert!(matches!(
        first.request(subscribe_with_presence("room")).await,
        Rep::Subscribe(_)
    ));
    let join = next_presence_about(&mut observer, "alice").await;
    assert_eq!(join.event_type, pb::PresenceEventType::RemoteJoin as i32);
    let before = offset_of(&mut probe, "ghost").await;

    let mut second = server.raw_login("alice").await;
    // The kicked connection tries once more.
    let late = first
        .send_request(Req::Publish(pb::PublishRequest {
            channel_type: pb::ChannelType::Message as i32,
            channel_name: "ghost".into(),
            message_type: pb::MessageType::String as i32,
            payload: Bytes::from_static(b"from the kicked session"),
            ..Default::default()
        }))
        .await;
    let answered = first.try_reply(late).await;
    assert!(
        !matches!(answered, Some(Rep::Publish(_))),
        "a publish of the kicked session was accepted: {answered:?}"
    );
    let closing = first.expect_closing(STEP).await;
    assert_eq!(closing.code, 4001, "SAME_UID_LOGIN: {closing:?}");
    assert_eq!(
        offset_of(&mut probe, "ghost").await,
        before + 1,
        "only the probe's markers landed in the channel"
    );

    let leave = next_presence_about(&mut observer, "alice").await;
    assert_eq!(
        leave.event_type,
        pb::PresenceEventType::RemoteLeave as i32,
        "the kicked session leaves at once: {leave:?}"
    );
    assert!(matches!(
        second.request(subscribe_with_presence("room")).await,
        Rep::Subscribe(_)
    ));
    let rejoin = next_presence_about(&mut observer, "alice").await;
    assert_eq!(
        rejoin.event_type,
        pb::PresenceEventType::RemoteJoin as i32,
        "{rejoin:?}"
    );
    second.assert_alive().await;
}

/// R31: a user id that logs in too often is refused, the SDK reporting FAILED /
/// LOGIN_TOO_FREQUENT. 100 login/logout cycles of one user id within a few seconds must
/// meet the limit at some point.
#[tokio::test]
async fn r31_a_user_logging_in_too_often_is_refused_with_login_too_frequent() {
    let server = TestServer::start().await;
    let alice = server.client("alice");
    let mut links = alice.link_state_events();
    let mut refused = None;
    // The default threshold is 120 new logins a minute.
    for i in 0..200 {
        match alice.login(&token("alice")).await {
            Ok(_) => {
                alice.logout().await.expect("logout");
            }
            Err(e) => {
                refused = Some((i, e));
                break;
            }
        }
    }
    let (i, err) = refused.expect("one of 200 logins in a row is refused");
    assert!(i > 0, "the first login is never too frequent");
    assert_eq!(alice.link_state(), LinkState::Failed, "{err:?}");
    let failed = wait_link(&mut links, LinkState::Failed, Duration::from_secs(1)).await;
    assert_eq!(failed.reason_code, LinkReason::LoginTooFrequent);
}

// ---------------------------------------------------------------------------------------
// R115: presence, storage and locks in stream channels
// ---------------------------------------------------------------------------------------

fn join_with(channel: &str, user: &str, presence: bool, metadata: bool, lock: bool) -> Req {
    let token = switchboard_token::build_rtc_token(
        APP_ID,
        CERT,
        channel,
        user,
        switchboard_token::RtcRole::Publisher,
        3600,
        3600,
        now_secs(),
    )
    .expect("rtc token");
    Req::Join(pb::JoinRequest {
        channel_name: channel.into(),
        token,
        with_presence: Some(presence),
        with_metadata: Some(metadata),
        with_lock: Some(lock),
        ..Default::default()
    })
}

/// The kinds of the pushes of `raw` up to and including the first one `last` accepts.
async fn pushes_until(raw: &mut RawClient, last: impl Fn(&Rep) -> bool) -> Vec<String> {
    let mut kinds = Vec::new();
    loop {
        let push = raw.next_push(STEP).await.expect("a push");
        let body = push.body.expect("push body");
        let done = last(&body);
        kinds.push(match &body {
            Rep::Presence(p) => format!("presence {}", p.event_type),
            Rep::Storage(s) => format!("storage {} {}", s.event_type, s.channel_type),
            Rep::Lock(l) => format!("lock {} {}", l.event_type, l.channel_type),
            Rep::Topic(t) => format!("topic {}", t.event_type),
            other => format!("{other:?}"),
        });
        if done {
            return kinds;
        }
    }
}

/// R115, R80, R147, R157: presence, storage and locks work in a stream channel as in a
/// message channel, switched on by the join options: a member joined with all three
/// gets the three SNAPSHOTs and then the channel's metadata and lock events (channel
/// type STREAM); a member joined with the defaults (presence only) gets presence but
/// neither storage nor lock events.
#[tokio::test]
async fn r115_presence_storage_and_locks_in_stream_channels_follow_the_join_options() {
    let server = TestServer::start().await;
    let mut all = server.raw_login("all").await;
    assert!(matches!(
        all.request(join_with("sc", "all", true, true, true)).await,
        Rep::Join(_)
    ));
    let stream = pb::ChannelType::Stream as i32;
    let first = pushes_until(&mut all, |b| matches!(b, Rep::Lock(_))).await;
    for want in [
        format!("presence {}", pb::PresenceEventType::Snapshot as i32),
        format!("storage {} {stream}", pb::StorageEventType::Snapshot as i32),
        format!("lock {} {stream}", pb::LockEventType::Snapshot as i32),
    ] {
        assert!(first.contains(&want), "{want} missing from {first:?}");
    }

    let mut plain = server.raw_login("plain").await;
    assert!(matches!(
        plain
            .request(join_with("sc", "plain", true, false, false))
            .await,
        Rep::Join(_)
    ));
    let join = next_presence_about(&mut all, "plain").await;
    assert_eq!(join.event_type, pb::PresenceEventType::RemoteJoin as i32);

    let set = plain
        .request(Req::SetMetadata(pb::MetadataWriteRequest {
            channel_type: stream,
            channel_name: "sc".into(),
            items: vec![pb::MetadataItem {
                key: "k".into(),
                value: "v".into(),
                revision: None,
            }],
            ..Default::default()
        }))
        .await;
    assert!(matches!(set, Rep::SetMetadata(_)), "{set:?}");
    let lock = plain
        .request(Req::SetLock(pb::SetLockRequest {
            channel_type: stream,
            channel_name: "sc".into(),
            lock_name: "l".into(),
            ttl: 0,
        }))
        .await;
    assert!(matches!(lock, Rep::SetLock(_)), "{lock:?}");
    let later = pushes_until(&mut all, |b| matches!(b, Rep::Lock(_))).await;
    assert!(
        later.contains(&format!(
            "storage {} {stream}",
            pb::StorageEventType::Update as i32
        )),
        "the metadata write reached the member with withMetadata: {later:?}"
    );
    assert_eq!(
        later.last().map(String::as_str),
        Some(format!("lock {} {stream}", pb::LockEventType::Set as i32).as_str())
    );

    // The member without storage and lock events: its next push after both writes is
    // the state change used as a marker.
    let state = all
        .request(Req::SetState(pb::SetStateRequest {
            channel_type: stream,
            channel_name: "sc".into(),
            states: [("mood".to_string(), "fine".to_string())].into(),
        }))
        .await;
    assert!(matches!(state, Rep::SetState(_)), "{state:?}");
    let seen = pushes_until(&mut plain, |b| matches!(b, Rep::Presence(p) if p.publisher == "all" && p.event_type == pb::PresenceEventType::RemoteStateChanged as i32)).await;
    assert!(
        seen.iter()
            .all(|k| !k.starts_with("storage") && !k.starts_with("lock")),
        "a member joined without withMetadata/withLock got {seen:?}"
    );
}
