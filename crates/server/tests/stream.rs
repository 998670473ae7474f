//! Stream channels and topics over real sockets, at the wire level (docs/protocol.md
//! "Stream channels and topics"; api.md §4, §9.4, §10.14, R72, R88–R103, R105–R113;
//! token.md T47–T50, T52–T55): join with an RTC token and its refusals, topic roles and
//! their events, topic subscriptions and their limits, delivery of topic messages only
//! to the followers of a publisher, leave / logout / session end, the channel token's
//! lifetime, and recovery of a stream channel by resume and by rejoin.
//!
//! Each test is named after the rule it checks. "Nothing arrives" is shown with a
//! sentinel that does arrive: the stream channel is one ordered stream, so a push that
//! should not have been sent would come before the sentinel.

mod common;

use bytes::Bytes;
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use switchboard_protocol::now_ms;
use switchboard_protocol::pb::{
    self, ClientMessage, client_message::Body as Req, server_message::Body as Rep,
};
use switchboard_server::ServerConfig;
use switchboard_token::{RtcRole, Service, TokenBuilder, privilege};

/// The stream channel most tests use.
const ROOM: &str = "room";

const SNAPSHOT: i32 = pb::TopicEventType::Snapshot as i32;
const REMOTE_JOIN: i32 = pb::TopicEventType::RemoteJoin as i32;
const REMOTE_LEAVE: i32 = pb::TopicEventType::RemoteLeave as i32;

// Error codes of the contract (api.md §12.2, §10.14).
const INVALID_TOKEN: i32 = -10005;
const TOKEN_EXPIRED: i32 = -10009;
const INCONSISTENT_APPID: i32 = -10016;
const NOT_JOINED: i32 = -11001;
const TOPIC_USER_LIMIT: i32 = -11003;
const CHANNEL_LIMIT: i32 = -11005;
const INVALID_TOPIC_NAME: i32 = -11008;
const INVALID_MESSAGE: i32 = -11009;
const MESSAGE_TOO_LONG: i32 = -11010;
const TOPIC_NOT_SUBSCRIBED: i32 = -11013;
const TOPIC_LIMIT: i32 = -11014;
const TOPIC_NOT_JOINED: i32 = -11016;
const TOPIC_NOT_EXIST: i32 = -11017;
const INVALID_TOPIC_META: i32 = -11018;
const TOO_FREQUENT: i32 = -11025;
const CUSTOM_TYPE_TOO_LONG: i32 = -11029;
const INVALID_PARAMS: i32 = 4;
const ALREADY_SUBSCRIBED_USER: i32 = 20001;
const SUB_USER_EXCEED_LIMITATION: i32 = 20003;
const NOT_SUBSCRIBED_USER: i32 = 20004;

// ---------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------

/// An RTC token (publisher role) of [`APP_ID`] for `channel` and `uid`, issued at
/// `issued`, whose token and join privilege last `secs` seconds.
fn rtc_token_at(channel: &str, uid: &str, secs: u32, issued: u32) -> String {
    switchboard_token::build_rtc_token(
        APP_ID,
        CERT,
        channel,
        uid,
        RtcRole::Publisher,
        secs,
        secs,
        issued,
    )
    .expect("RTC token builds")
}

/// An RTC token of [`APP_ID`] for `channel` and `uid` valid `secs` seconds from now.
fn rtc_token(channel: &str, uid: &str, secs: u32) -> String {
    rtc_token_at(channel, uid, secs, now_secs())
}

/// An RTC token for `channel` and `uid` whose service carries `privileges` only.
fn rtc_token_with(channel: &str, uid: &str, privileges: &[(u16, u32)]) -> String {
    TokenBuilder::new(APP_ID, CERT, 3600)
        .issue_ts(now_secs())
        .add_service(Service::Rtc {
            channel_name: channel.into(),
            uid: uid.into(),
            privileges: privileges.iter().copied().collect(),
        })
        .build()
        .expect("RTC token builds")
}

// ---------------------------------------------------------------------------------------
// Raw members
// ---------------------------------------------------------------------------------------

/// A raw connection logged in as `user`, with stream channel calls.
struct Member {
    raw: RawClient,
    user: String,
}

/// A topic publish request.
fn topic_message(
    channel: &str,
    topic: &str,
    payload: impl Into<Bytes>,
) -> pb::PublishTopicMessageRequest {
    pb::PublishTopicMessageRequest {
        channel_name: channel.into(),
        topic_name: topic.into(),
        message_type: pb::MessageType::String as i32,
        payload: payload.into(),
        custom_type: String::new(),
        send_ts: 0,
        idempotency_key: String::new(),
    }
}

/// A join request without presence (see [`Member::try_join`]).
fn join_request(channel: &str, token: &str) -> pb::JoinRequest {
    pb::JoinRequest {
        channel_name: channel.into(),
        token: token.into(),
        with_presence: Some(false),
        ..Default::default()
    }
}

fn users(list: &[&str]) -> Vec<String> {
    list.iter().map(|u| u.to_string()).collect()
}

impl Member {
    /// Logs `user` in to [`APP_ID`] (heartbeat 60 s).
    async fn login(server: &TestServer, user: &str) -> Member {
        Member {
            raw: server.raw_login(user).await,
            user: user.into(),
        }
    }

    /// Logs `user` in and joins [`ROOM`] (the SNAPSHOT is read).
    async fn in_room(server: &TestServer, user: &str) -> Member {
        let mut m = Member::login(server, user).await;
        m.join(ROOM).await;
        m
    }

    async fn req(&mut self, body: Req) -> Rep {
        self.raw.request(body).await
    }

    /// Joins without presence: these tests are about topics, and presence events
    /// (on by default, R90) would interleave with the topic pushes they read.
    async fn try_join(&mut self, channel: &str, token: &str) -> Rep {
        self.req(Req::Join(join_request(channel, token))).await
    }

    /// Joins `channel` with a valid one-hour RTC token; returns the reply and the
    /// SNAPSHOT that follows it.
    async fn join(&mut self, channel: &str) -> (pb::JoinReply, pb::TopicEvent) {
        let token = rtc_token(channel, &self.user, 3600);
        match self.try_join(channel, &token).await {
            Rep::Join(r) => {
                assert_eq!(r.channel_name, channel, "{r:?}");
                let snapshot = self.snapshot(channel).await;
                (r, snapshot)
            }
            other => panic!("{} could not join {channel}: {other:?}", self.user),
        }
    }

    /// The next push, which must be the SNAPSHOT of `channel`.
    async fn snapshot(&mut self, channel: &str) -> pb::TopicEvent {
        let e = self.next_event().await;
        assert_eq!(
            e.event_type, SNAPSHOT,
            "{} expected a SNAPSHOT: {e:?}",
            self.user
        );
        assert_eq!(e.channel_name, channel);
        assert_eq!(e.publisher, "", "a SNAPSHOT names no publisher");
        e
    }

    async fn try_leave(&mut self, channel: &str) -> Rep {
        self.req(Req::Leave(pb::LeaveRequest {
            channel_name: channel.into(),
        }))
        .await
    }

    async fn leave(&mut self, channel: &str) {
        match self.try_leave(channel).await {
            Rep::Leave(r) => assert_eq!(r.channel_name, channel),
            other => panic!("{} could not leave {channel}: {other:?}", self.user),
        }
    }

    async fn try_join_topic(&mut self, channel: &str, topic: &str, meta: &str) -> Rep {
        self.req(Req::JoinTopic(pb::JoinTopicRequest {
            channel_name: channel.into(),
            topic_name: topic.into(),
            meta: meta.into(),
            ..Default::default()
        }))
        .await
    }

    async fn join_topic(&mut self, channel: &str, topic: &str, meta: &str) {
        match self.try_join_topic(channel, topic, meta).await {
            Rep::JoinTopic(r) => {
                assert_eq!(
                    (r.channel_name.as_str(), r.topic_name.as_str()),
                    (channel, topic)
                );
            }
            other => panic!("{} could not join topic {topic}: {other:?}", self.user),
        }
    }

    async fn try_leave_topic(&mut self, channel: &str, topic: &str) -> Rep {
        self.req(Req::LeaveTopic(pb::LeaveTopicRequest {
            channel_name: channel.into(),
            topic_name: topic.into(),
        }))
        .await
    }

    async fn leave_topic(&mut self, channel: &str, topic: &str) {
        match self.try_leave_topic(channel, topic).await {
            Rep::LeaveTopic(r) => {
                assert_eq!(
                    (r.channel_name.as_str(), r.topic_name.as_str()),
                    (channel, topic)
                );
            }
            other => panic!("{} could not leave topic {topic}: {other:?}", self.user),
        }
    }

    async fn try_publish(&mut self, req: pb::PublishTopicMessageRequest) -> Rep {
        self.req(Req::PublishTopicMessage(req)).await
    }

    /// Publishes `text` in `topic`; panics unless it is accepted.
    async fn publish(
        &mut self,
        channel: &str,
        topic: &str,
        text: &str,
    ) -> pb::PublishTopicMessageReply {
        let req = topic_message(channel, topic, Bytes::copy_from_slice(text.as_bytes()));
        match self.try_publish(req).await {
            Rep::PublishTopicMessage(r) => {
                assert_eq!(
                    (r.channel_name.as_str(), r.topic_name.as_str()),
                    (channel, topic)
                );
                r
            }
            other => panic!(
                "{} could not publish {text:?} in {topic}: {other:?}",
                self.user
            ),
        }
    }

    async fn try_subscribe(&mut self, channel: &str, topic: &str, list: &[&str]) -> Rep {
        self.req(Req::SubscribeTopic(pb::SubscribeTopicRequest {
            channel_name: channel.into(),
            topic_name: topic.into(),
            users: users(list),
        }))
        .await
    }

    async fn subscribe(
        &mut self,
        channel: &str,
        topic: &str,
        list: &[&str],
    ) -> pb::SubscribeTopicReply {
        match self.try_subscribe(channel, topic, list).await {
            Rep::SubscribeTopic(r) => {
                assert_eq!(
                    (r.channel_name.as_str(), r.topic_name.as_str()),
                    (channel, topic)
                );
                r
            }
            other => panic!(
                "{} could not subscribe {topic} {list:?}: {other:?}",
                self.user
            ),
        }
    }

    async fn try_unsubscribe(&mut self, channel: &str, topic: &str, list: &[&str]) -> Rep {
        self.req(Req::UnsubscribeTopic(pb::UnsubscribeTopicRequest {
            channel_name: channel.into(),
            topic_name: topic.into(),
            users: users(list),
        }))
        .await
    }

    async fn unsubscribe(
        &mut self,
        channel: &str,
        topic: &str,
        list: &[&str],
    ) -> pb::UnsubscribeTopicReply {
        match self.try_unsubscribe(channel, topic, list).await {
            Rep::UnsubscribeTopic(r) => r,
            other => panic!(
                "{} could not unsubscribe {topic} {list:?}: {other:?}",
                self.user
            ),
        }
    }

    async fn try_renew(&mut self, channel: &str, token: &str) -> Rep {
        self.req(Req::RenewToken(pb::RenewTokenRequest {
            token: token.into(),
            channel_name: channel.into(),
        }))
        .await
    }

    /// Sends a USER message to `to` (a sentinel outside every stream channel).
    async fn send_user(&mut self, to: &str, text: &str) {
        let body = publish_body(
            pb::ChannelType::User,
            to,
            pb::MessageType::String,
            Bytes::copy_from_slice(text.as_bytes()),
        );
        let reply = self.req(body).await;
        assert!(matches!(reply, Rep::Publish(_)), "USER publish: {reply:?}");
    }

    /// The next push.
    async fn next_push(&mut self) -> Rep {
        let who = self.user.clone();
        self.raw
            .next_push(STEP)
            .await
            .unwrap_or_else(|| panic!("{who}: connection closed while waiting for a push"))
            .body
            .expect("push has a body")
    }

    /// The next push, which must be a topic event.
    async fn next_event(&mut self) -> pb::TopicEvent {
        match self.next_push().await {
            Rep::Topic(e) => e,
            other => panic!("{} expected a topic event, got {other:?}", self.user),
        }
    }

    /// The next push, which must be a message.
    async fn next_message(&mut self) -> pb::MessagePush {
        match self.next_push().await {
            Rep::Message(m) => m,
            other => panic!("{} expected a message, got {other:?}", self.user),
        }
    }

    /// The next message push, skipping topic events (returned too).
    async fn next_message_after_events(&mut self) -> (Vec<pb::TopicEvent>, pb::MessagePush) {
        let mut events = Vec::new();
        loop {
            match self.next_push().await {
                Rep::Message(m) => return (events, m),
                Rep::Topic(e) => events.push(e),
                other => panic!(
                    "{} expected a message or topic event, got {other:?}",
                    self.user
                ),
            }
        }
    }

    /// Reads pushes up to the topic event `kind` of `publisher` in `topic` (the
    /// sentinel); returns the texts of the messages read before it. Any other push
    /// before it fails the test.
    async fn texts_until(&mut self, kind: i32, publisher: &str, topic: &str) -> Vec<String> {
        let mut texts = Vec::new();
        loop {
            match self.next_push().await {
                Rep::Message(m) => texts.push(text_of(&m)),
                Rep::Topic(e)
                    if e.event_type == kind
                        && e.publisher == publisher
                        && e.topics.first().is_some_and(|t| t.topic_name == topic) =>
                {
                    return texts;
                }
                other => panic!(
                    "{} got {other:?} before the sentinel event of {publisher} in {topic}",
                    self.user
                ),
            }
        }
    }
}

/// The payload of a STRING message push.
fn text_of(m: &pb::MessagePush) -> String {
    String::from_utf8(m.payload.to_vec()).expect("UTF-8 payload")
}

fn offset(p: &Option<pb::StreamPosition>) -> u64 {
    p.as_ref().expect("a position").offset
}

/// Checks a refusal: code, operation and a reason containing every one of `mentions`.
#[track_caller]
fn assert_error(reply: Rep, code: i32, op: &str, mentions: &[&str]) -> pb::Error {
    let e = expect_error(reply);
    assert_eq!(e.code, code, "{e:?}");
    assert_eq!(e.operation, op, "{e:?}");
    for m in mentions {
        assert!(
            e.reason.contains(m),
            "the reason should mention {m:?}: {e:?}"
        );
    }
    e
}

/// Checks a REMOTE_JOIN / REMOTE_LEAVE: one topic with the one publisher concerned
/// (and its meta for a join).
#[track_caller]
fn assert_topic_event(
    e: &pb::TopicEvent,
    kind: i32,
    publisher: &str,
    topic: &str,
    meta: Option<&str>,
) {
    assert_eq!(e.event_type, kind, "{e:?}");
    assert_eq!(e.channel_name, ROOM, "{e:?}");
    assert_eq!(e.publisher, publisher, "{e:?}");
    assert_eq!(e.topics.len(), 1, "one topic: {e:?}");
    assert_eq!(e.topics[0].topic_name, topic, "{e:?}");
    assert_eq!(e.topics[0].publishers.len(), 1, "the one publisher: {e:?}");
    assert_eq!(e.topics[0].publishers[0].user_id, publisher, "{e:?}");
    if let Some(meta) = meta {
        assert_eq!(e.topics[0].publishers[0].meta, meta, "{e:?}");
    }
    assert!(e.timestamp > 0, "{e:?}");
    assert!(
        e.position.is_some(),
        "events carry their stream position: {e:?}"
    );
}

/// A SNAPSHOT as topic → (user → meta).
fn snapshot_map(e: &pb::TopicEvent) -> BTreeMap<String, BTreeMap<String, String>> {
    e.topics
        .iter()
        .map(|t| {
            let publishers = t
                .publishers
                .iter()
                .map(|p| (p.user_id.clone(), p.meta.clone()))
                .collect();
            (t.topic_name.clone(), publishers)
        })
        .collect()
}

/// Builds the expected snapshot map from `(topic, [(user, meta)])`.
fn expected_map(topics: &[(&str, &[(&str, &str)])]) -> BTreeMap<String, BTreeMap<String, String>> {
    topics
        .iter()
        .map(|(t, ps)| {
            let publishers = ps
                .iter()
                .map(|(u, m)| (u.to_string(), m.to_string()))
                .collect();
            (t.to_string(), publishers)
        })
        .collect()
}

/// Presence timeouts down to 1 s allowed.
fn short_presence(c: &mut ServerConfig) {
    c.presence_timeout_range = (1, 300);
}

// ---------------------------------------------------------------------------------------
// Join and its token (R88–R92, T47–T53)
// ---------------------------------------------------------------------------------------

/// R88, R92, T47–T50, T53: a join with a valid RTC token is answered with the channel's
/// position and the token's effective expiry, then the SNAPSHOT (empty channel) at that
/// position; a wildcard uid and a combined RTC+RTM token are accepted, and a join
/// privilege shorter than the token sets the expiry.
#[tokio::test]
async fn t47_t53_join_with_rtc_token_answers_position_expiry_and_snapshot() {
    let server = TestServer::start().await;
    let mut alice = Member::login(&server, "alice").await;
    let issued = now_secs();
    let reply = alice
        .try_join(ROOM, &rtc_token_at(ROOM, "alice", 3600, issued))
        .await;
    let Rep::Join(r) = reply else {
        panic!("join failed: {reply:?}");
    };
    assert_eq!(r.channel_name, ROOM);
    assert!(r.timestamp > 0);
    assert!(!r.gap);
    assert!(r.restore_failures.is_empty(), "{r:?}");
    assert_eq!(
        r.token_expires_at,
        u64::from(issued + 3600),
        "T53 effective expiry"
    );
    let snapshot = alice.snapshot(ROOM).await;
    assert!(
        snapshot.topics.is_empty(),
        "nobody publishes yet: {snapshot:?}"
    );
    assert_eq!(
        snapshot.position, r.position,
        "the SNAPSHOT carries the join position"
    );

    // The first push of the channel after the reply has a greater offset (same epoch).
    let mut bob = Member::in_room(&server, "bob").await;
    bob.join_topic(ROOM, "t1", "").await;
    let e = alice.next_event().await;
    let (at, joined) = (e.position.expect("position"), r.position.expect("position"));
    assert_eq!(at.epoch, joined.epoch);
    assert!(at.offset > joined.offset, "{at:?} after {joined:?}");

    // Wildcard uid (T49), combined token (T26), shorter join privilege (T53).
    let wildcard = rtc_token("lobby", "", 3600);
    assert!(matches!(
        alice.try_join("lobby", &wildcard).await,
        Rep::Join(_)
    ));
    alice.snapshot("lobby").await;
    let combined = switchboard_token::build_rtc_rtm_token(
        APP_ID,
        CERT,
        "hall",
        "alice",
        RtcRole::Subscriber,
        3600,
        3600,
        now_secs(),
    )
    .expect("token builds");
    assert!(matches!(
        alice.try_join("hall", &combined).await,
        Rep::Join(_)
    ));
    alice.snapshot("hall").await;
    let issued = now_secs();
    let short_join = switchboard_token::build_rtc_token(
        APP_ID,
        CERT,
        "stage",
        "alice",
        RtcRole::Subscriber,
        3600,
        600,
        issued,
    )
    .expect("token builds");
    let Rep::Join(r) = alice.try_join("stage", &short_join).await else {
        panic!("join with a subscriber token fails");
    };
    assert_eq!(
        r.token_expires_at,
        u64::from(issued + 600),
        "the join privilege ends first (T53)"
    );
    alice.snapshot("stage").await;
}

/// T47–T50, R171: every refused join names its case (token.md §10) with its code; the
/// refusal leaves no membership behind and the connection carries on; a valid join
/// afterwards succeeds.
#[tokio::test]
async fn t47_t50_join_refusals_name_the_case_and_leave_the_connection_usable() {
    let server = TestServer::start().await;
    let mut alice = Member::login(&server, "alice").await;
    let now = now_secs();
    let cases: Vec<(&str, String, i32, &str)> = vec![
        ("no token", String::new(), INVALID_TOKEN, "MALFORMED"),
        (
            "the app id (what the SDK sends without a token)",
            APP_ID.into(),
            INVALID_TOKEN,
            "UNSUPPORTED_VERSION",
        ),
        (
            "an RTM-only token",
            token("alice"),
            INVALID_TOKEN,
            "SERVICE_MISSING",
        ),
        (
            "a token for another channel",
            rtc_token("other", "alice", 3600),
            INVALID_TOKEN,
            "CHANNEL_MISMATCH",
        ),
        (
            "a token for another uid",
            rtc_token(ROOM, "mallory", 3600),
            INVALID_TOKEN,
            "USER_ID_MISMATCH",
        ),
        (
            "a token without the join privilege",
            rtc_token_with(ROOM, "alice", &[(privilege::PUBLISH_DATA_STREAM, 3600)]),
            INVALID_TOKEN,
            "PRIVILEGE_MISSING",
        ),
        (
            "an expired token",
            rtc_token_at(ROOM, "alice", 60, now - 600),
            TOKEN_EXPIRED,
            "TOKEN_EXPIRED",
        ),
        (
            "a token whose join privilege lapsed",
            switchboard_token::build_rtc_token(
                APP_ID,
                CERT,
                ROOM,
                "alice",
                RtcRole::Subscriber,
                3600,
                10,
                now - 60,
            )
            .expect("token builds"),
            TOKEN_EXPIRED,
            "PRIVILEGE_EXPIRED",
        ),
        (
            "a forged token",
            switchboard_token::build_rtc_token(
                APP_ID,
                WRONG_CERT,
                ROOM,
                "alice",
                RtcRole::Publisher,
                3600,
                3600,
                now,
            )
            .expect("token builds"),
            INVALID_TOKEN,
            "SIGNATURE_MISMATCH",
        ),
        (
            "another app's token",
            switchboard_token::build_rtc_token(
                OTHER_APP_ID,
                OTHER_CERT,
                ROOM,
                "alice",
                RtcRole::Publisher,
                3600,
                3600,
                now,
            )
            .expect("token builds"),
            INCONSISTENT_APPID,
            "APP_ID_MISMATCH",
        ),
    ];
    for (case, tok, code, names) in cases {
        let reply = alice.try_join(ROOM, &tok).await;
        let e = expect_error(reply);
        assert_eq!(e.code, code, "{case}: {e:?}");
        assert_eq!(e.operation, "join", "{case}: {e:?}");
        assert!(
            e.reason.contains(names),
            "{case}: the reason should name {names}: {e:?}"
        );
        alice.raw.assert_alive().await;
        // Nothing was joined.
        let reply = alice.try_join_topic(ROOM, "t1", "").await;
        assert_error(reply, NOT_JOINED, "joinTopic", &[ROOM]);
    }
    let (r, _) = alice.join(ROOM).await;
    assert!(r.token_expires_at > 0);
    alice.join_topic(ROOM, "t1", "").await;
}

/// T61 (token.md), protocol.md: an app without a certificate accepts any join token,
/// and the membership has no token expiry.
#[tokio::test]
async fn t61_app_without_certificate_accepts_any_join_token() {
    let server = TestServer::start().await;
    let mut raw = server.raw().await;
    let reply = raw.login(OPEN_APP_ID, "alice", "", 60).await;
    assert!(matches!(reply, Rep::Login(_)), "{reply:?}");
    let mut alice = Member {
        raw,
        user: "alice".into(),
    };
    for (channel, tok) in [(ROOM, ""), ("lobby", OPEN_APP_ID), ("hall", "anything")] {
        match alice.try_join(channel, tok).await {
            Rep::Join(r) => assert_eq!(r.token_expires_at, 0, "no expiry without a certificate"),
            other => panic!("join {channel} with {tok:?}: {other:?}"),
        }
        alice.snapshot(channel).await;
    }
}

/// R7 for stream channels: an invalid channel name is refused with −10008 before any
/// token check.
#[tokio::test]
async fn r7_join_of_an_invalid_channel_name_answers_10008() {
    let server = TestServer::start().await;
    let mut alice = Member::login(&server, "alice").await;
    let long = "x".repeat(65);
    for bad in ["", "a/b", long.as_str()] {
        let reply = alice.try_join(bad, &rtc_token(bad, "alice", 3600)).await;
        assert_error(reply, INVALID_CHANNEL_NAME, "join", &[]);
    }
    alice.raw.assert_alive().await;
}

/// R89: with `max_stream_channels` = 2 the third join is refused with −11005 (the
/// reason names the limit); re-joining a joined channel at the limit is still answered
/// (R91); after a leave a new channel can be joined.
#[tokio::test]
async fn r89_joined_channel_limit_answers_11005() {
    let server = TestServer::with(|c| c.apps[0].limits.max_stream_channels = 2).await;
    let mut alice = Member::login(&server, "alice").await;
    alice.join("a").await;
    alice.join("b").await;
    let reply = alice.try_join("c", &rtc_token("c", "alice", 3600)).await;
    assert_error(reply, CHANNEL_LIMIT, "join", &["2"]);
    alice.raw.assert_alive().await;
    let reply = alice.try_join("b", &rtc_token("b", "alice", 3600)).await;
    assert!(matches!(reply, Rep::Join(_)), "R91 at the limit: {reply:?}");
    alice.leave("a").await;
    alice.join("c").await;
    let reply = alice.try_join("a", &rtc_token("a", "alice", 3600)).await;
    assert_error(reply, CHANNEL_LIMIT, "join", &[]);
}

/// R91: joining a joined channel is answered again without change: no new SNAPSHOT,
/// roles and follows kept.
#[tokio::test]
async fn r91_joining_again_answers_without_a_new_snapshot_or_change() {
    let server = TestServer::start().await;
    let mut alice = Member::in_room(&server, "alice").await;
    let mut bob = Member::in_room(&server, "bob").await;
    alice.join_topic(ROOM, "ta", "").await;
    bob.join_topic(ROOM, "t1", "").await;
    alice.subscribe(ROOM, "t1", &["bob"]).await;
    assert_topic_event(
        &alice.next_event().await,
        REMOTE_JOIN,
        "bob",
        "t1",
        Some(""),
    );

    let reply = alice.try_join(ROOM, &rtc_token(ROOM, "alice", 3600)).await;
    let Rep::Join(r) = reply else {
        panic!("re-join failed: {reply:?}");
    };
    assert_eq!(r.channel_name, ROOM);
    // Follows kept: bob's message is the next push (no SNAPSHOT before it).
    bob.publish(ROOM, "t1", "after-rejoin").await;
    let m = alice.next_message().await;
    assert_eq!(text_of(&m), "after-rejoin");
    // Role kept: alice still publishes in ta without joining it again.
    alice.publish(ROOM, "ta", "still-a-publisher").await;
}

/// R96: every topic call on a stream channel that is not joined answers −11001 naming
/// the channel, also when another channel is joined.
#[tokio::test]
async fn r96_topic_calls_on_a_channel_not_joined_answer_11001() {
    let server = TestServer::start().await;
    let mut alice = Member::login(&server, "alice").await;
    for round in 0..2 {
        let reply = alice.try_join_topic(ROOM, "t1", "").await;
        assert_error(reply, NOT_JOINED, "joinTopic", &[ROOM]);
        let reply = alice.try_leave_topic(ROOM, "t1").await;
        assert_error(reply, NOT_JOINED, "leaveTopic", &[ROOM]);
        let reply = alice.try_publish(topic_message(ROOM, "t1", "x")).await;
        assert_error(reply, NOT_JOINED, "publishTopicMessage", &[ROOM]);
        let reply = alice.try_subscribe(ROOM, "t1", &["bob"]).await;
        assert_error(reply, NOT_JOINED, "subscribeTopic", &[ROOM]);
        let reply = alice.try_unsubscribe(ROOM, "t1", &[]).await;
        assert_error(reply, NOT_JOINED, "unsubscribeTopic", &[ROOM]);
        let reply = alice.try_leave(ROOM).await;
        assert_error(reply, NOT_JOINED, "leave", &[ROOM]);
        let reply = alice.try_renew(ROOM, &rtc_token(ROOM, "alice", 3600)).await;
        assert_error(reply, NOT_JOINED, "renewToken", &[ROOM]);
        if round == 0 {
            alice.join("elsewhere").await;
        }
    }
    alice.raw.assert_alive().await;
}

// ---------------------------------------------------------------------------------------
// Topic roles and events (R92, R93, R97–R101)
// ---------------------------------------------------------------------------------------

/// R92: the SNAPSHOT after a join lists every topic with every publisher and its meta.
#[tokio::test]
async fn r92_join_gets_topic_snapshot_with_publishers_and_meta() {
    let server = TestServer::start().await;
    let mut bob = Member::in_room(&server, "bob").await;
    bob.join_topic(ROOM, "t1", "bob-1").await;
    bob.join_topic(ROOM, "t2", "bob-2").await;
    let mut carol = Member::in_room(&server, "carol").await;
    carol.join_topic(ROOM, "t1", "carol-1").await;
    let _dave = Member::in_room(&server, "dave").await; // a member without topics

    let mut alice = Member::login(&server, "alice").await;
    let (r, snapshot) = alice.join(ROOM).await;
    assert_eq!(
        snapshot_map(&snapshot),
        expected_map(&[
            ("t1", &[("bob", "bob-1"), ("carol", "carol-1")]),
            ("t2", &[("bob", "bob-2")])
        ]),
        "{snapshot:?}"
    );
    assert_eq!(snapshot.position, r.position);

    // After carol leaves t1 and bob leaves t2, a new joiner sees only bob in t1.
    carol.leave_topic(ROOM, "t1").await;
    bob.leave_topic(ROOM, "t2").await;
    let mut erin = Member::login(&server, "erin").await;
    let (_, snapshot) = erin.join(ROOM).await;
    assert_eq!(
        snapshot_map(&snapshot),
        expected_map(&[("t1", &[("bob", "bob-1")])]),
        "{snapshot:?}"
    );
}

/// R93, R100: topic REMOTE_JOIN (with the meta) and REMOTE_LEAVE reach every member,
/// whatever it subscribed to, in stream order; the publisher itself gets no event
/// about itself.
#[tokio::test]
async fn r93_r100_topic_events_reach_every_member_but_not_the_publisher() {
    let server = TestServer::start().await;
    let mut alice = Member::in_room(&server, "alice").await;
    let mut carol = Member::in_room(&server, "carol").await;
    let mut bob = Member::in_room(&server, "bob").await;
    // carol follows someone in another topic; alice follows nothing: both get events.
    carol.subscribe(ROOM, "other", &["dave"]).await;

    bob.join_topic(ROOM, "t1", "m1").await;
    let mut last = 0;
    for m in [&mut alice, &mut carol] {
        let e = m.next_event().await;
        assert_topic_event(&e, REMOTE_JOIN, "bob", "t1", Some("m1"));
        last = offset(&e.position);
    }
    bob.leave_topic(ROOM, "t1").await;
    for m in [&mut alice, &mut carol] {
        let e = m.next_event().await;
        assert_topic_event(&e, REMOTE_LEAVE, "bob", "t1", None);
        assert!(offset(&e.position) > last, "events in stream order");
    }
    // bob got nothing about itself: the next push it gets is carol's REMOTE_JOIN.
    carol.join_topic(ROOM, "sentinel", "").await;
    assert!(
        bob.texts_until(REMOTE_JOIN, "carol", "sentinel")
            .await
            .is_empty()
    );
    assert_topic_event(
        &alice.next_event().await,
        REMOTE_JOIN,
        "carol",
        "sentinel",
        Some(""),
    );
}

/// R97: joinTopic makes the caller a publisher without subscribing it: the caller
/// does not get messages of other publishers of that topic, nor its own.
#[tokio::test]
async fn r97_join_topic_does_not_subscribe() {
    let server = TestServer::start().await;
    let mut alice = Member::in_room(&server, "alice").await;
    let mut bob = Member::in_room(&server, "bob").await;
    alice.join_topic(ROOM, "t1", "").await;
    bob.join_topic(ROOM, "t1", "").await;
    assert_topic_event(
        &bob.next_event().await,
        REMOTE_JOIN,
        "alice",
        "t1",
        Some(""),
    );
    assert_topic_event(
        &alice.next_event().await,
        REMOTE_JOIN,
        "bob",
        "t1",
        Some(""),
    );
    bob.publish(ROOM, "t1", "from-bob").await;
    alice.publish(ROOM, "t1", "from-alice").await;
    let mut carol = Member::in_room(&server, "carol").await;
    carol.join_topic(ROOM, "sentinel", "").await;
    assert!(
        alice
            .texts_until(REMOTE_JOIN, "carol", "sentinel")
            .await
            .is_empty()
    );
    assert!(
        bob.texts_until(REMOTE_JOIN, "carol", "sentinel")
            .await
            .is_empty()
    );
}

/// R98: with `max_joined_topics` = 2 a third topic is refused with −11014 and no event;
/// re-joining a joined topic at the limit is answered (R99); after a leaveTopic the
/// third can be joined.
#[tokio::test]
async fn r98_joined_topic_limit_answers_11014() {
    let server = TestServer::with(|c| c.apps[0].limits.max_joined_topics = 2).await;
    let mut alice = Member::in_room(&server, "alice").await;
    let mut bob = Member::in_room(&server, "bob").await;
    bob.join_topic(ROOM, "t1", "").await;
    bob.join_topic(ROOM, "t2", "").await;
    let reply = bob.try_join_topic(ROOM, "t3", "").await;
    assert_error(reply, TOPIC_LIMIT, "joinTopic", &["2"]);
    let reply = bob.try_join_topic(ROOM, "t1", "").await;
    assert!(
        matches!(reply, Rep::JoinTopic(_)),
        "R99 at the limit: {reply:?}"
    );
    bob.leave_topic(ROOM, "t1").await;
    bob.join_topic(ROOM, "t3", "").await;
    let reply = bob.try_publish(topic_message(ROOM, "t1", "x")).await;
    assert_error(reply, TOPIC_NOT_JOINED, "publishTopicMessage", &["t1"]);

    // alice saw: join t1, join t2, leave t1, join t3 — nothing for the refused t3.
    let mut seen = Vec::new();
    for _ in 0..4 {
        let e = alice.next_event().await;
        seen.push((e.event_type, e.topics[0].topic_name.clone()));
    }
    assert_eq!(
        seen,
        vec![
            (REMOTE_JOIN, "t1".to_string()),
            (REMOTE_JOIN, "t2".into()),
            (REMOTE_LEAVE, "t1".into()),
            (REMOTE_JOIN, "t3".into())
        ]
    );
}

/// R99: joinTopic of a joined topic is answered without change (the meta stays) and
/// without an event.
#[tokio::test]
async fn r99_joining_a_joined_topic_again_changes_nothing_and_sends_no_event() {
    let server = TestServer::start().await;
    let mut alice = Member::in_room(&server, "alice").await;
    let mut bob = Member::in_room(&server, "bob").await;
    bob.join_topic(ROOM, "t1", "first").await;
    bob.join_topic(ROOM, "t1", "second").await;
    bob.join_topic(ROOM, "t1", "").await;
    assert_topic_event(
        &alice.next_event().await,
        REMOTE_JOIN,
        "bob",
        "t1",
        Some("first"),
    );
    let mut carol = Member::in_room(&server, "carol").await;
    carol.join_topic(ROOM, "sentinel", "").await;
    assert!(
        alice
            .texts_until(REMOTE_JOIN, "carol", "sentinel")
            .await
            .is_empty()
    );
    let mut erin = Member::login(&server, "erin").await;
    let (_, snapshot) = erin.join(ROOM).await;
    assert_eq!(
        snapshot_map(&snapshot),
        expected_map(&[("t1", &[("bob", "first")]), ("sentinel", &[("carol", "")])])
    );
}

/// R101: leaveTopic keeps the caller's subscriptions, in that topic and others; a
/// leaveTopic of a topic not joined answers −11016.
#[tokio::test]
async fn r101_leave_topic_keeps_the_callers_subscriptions() {
    let server = TestServer::start().await;
    let mut alice = Member::in_room(&server, "alice").await;
    let mut bob = Member::in_room(&server, "bob").await;
    let mut carol = Member::in_room(&server, "carol").await;
    alice.join_topic(ROOM, "t1", "").await;
    bob.join_topic(ROOM, "t1", "").await;
    carol.join_topic(ROOM, "t2", "").await;
    alice.subscribe(ROOM, "t1", &["bob"]).await;
    alice.subscribe(ROOM, "t2", &["carol"]).await;
    alice.leave_topic(ROOM, "t1").await;
    let reply = alice.try_leave_topic(ROOM, "t1").await;
    assert_error(reply, TOPIC_NOT_JOINED, "leaveTopic", &["t1"]);
    let reply = alice.try_leave_topic(ROOM, "never").await;
    assert_error(reply, TOPIC_NOT_JOINED, "leaveTopic", &["never"]);
    bob.publish(ROOM, "t1", "b").await;
    carol.publish(ROOM, "t2", "c").await;
    let (_, m) = alice.next_message_after_events().await;
    assert_eq!(text_of(&m), "b");
    let m = alice.next_message().await;
    assert_eq!(text_of(&m), "c");
}

// ---------------------------------------------------------------------------------------
// Topic messages (R72, R102, R103)
// ---------------------------------------------------------------------------------------

/// R102: publishing in a topic the caller has not joined answers −11016 and delivers
/// nothing — before joining it, while publishing in another topic, after leaving it.
#[tokio::test]
async fn r102_publish_without_joining_the_topic_answers_11016() {
    let server = TestServer::start().await;
    let mut alice = Member::in_room(&server, "alice").await;
    let mut bob = Member::in_room(&server, "bob").await;
    alice.subscribe(ROOM, "t1", &["bob"]).await;
    let reply = bob.try_publish(topic_message(ROOM, "t1", "early")).await;
    assert_error(reply, TOPIC_NOT_JOINED, "publishTopicMessage", &["t1"]);
    bob.join_topic(ROOM, "t2", "").await;
    let reply = bob
        .try_publish(topic_message(ROOM, "t1", "other-topic"))
        .await;
    assert_error(reply, TOPIC_NOT_JOINED, "publishTopicMessage", &["t1"]);
    bob.join_topic(ROOM, "t1", "").await;
    bob.publish(ROOM, "t1", "ok").await;
    bob.leave_topic(ROOM, "t1").await;
    let reply = bob.try_publish(topic_message(ROOM, "t1", "late")).await;
    assert_error(reply, TOPIC_NOT_JOINED, "publishTopicMessage", &["t1"]);
    bob.join_topic(ROOM, "sentinel", "").await;
    // alice: join t2, join t1, "ok", leave t1, then the sentinel.
    let e = alice.next_event().await;
    assert_topic_event(&e, REMOTE_JOIN, "bob", "t2", Some(""));
    let e = alice.next_event().await;
    assert_topic_event(&e, REMOTE_JOIN, "bob", "t1", Some(""));
    assert_eq!(text_of(&alice.next_message().await), "ok");
    assert_topic_event(&alice.next_event().await, REMOTE_LEAVE, "bob", "t1", None);
    assert!(
        alice
            .texts_until(REMOTE_JOIN, "bob", "sentinel")
            .await
            .is_empty()
    );
}

/// R59, R58: a topic publish retried with the same idempotency key (as an SDK does after
/// a cut that lost the reply) is delivered once and answers the first attempt's
/// position; the same key from another publisher is not a retry and is delivered; a
/// key longer than `max_topic_idempotency_key_bytes` is refused with −10014.
#[tokio::test]
async fn r59_r58_topic_publish_retried_with_its_key_is_delivered_once() {
    let server = TestServer::start().await;
    let mut alice = Member::in_room(&server, "alice").await;
    let mut bob = Member::in_room(&server, "bob").await;
    let mut carol = Member::in_room(&server, "carol").await;
    bob.join_topic(ROOM, "t1", "").await;
    carol.join_topic(ROOM, "t1", "").await;
    alice.subscribe(ROOM, "t1", &["bob", "carol"]).await;
    let keyed = |text: &str, key: &str| pb::PublishTopicMessageRequest {
        idempotency_key: key.into(),
        ..topic_message(ROOM, "t1", Bytes::copy_from_slice(text.as_bytes()))
    };
    let Rep::PublishTopicMessage(first) = bob.try_publish(keyed("once", "k1")).await else {
        panic!("keyed publish refused");
    };
    let Rep::PublishTopicMessage(again) = bob.try_publish(keyed("once", "k1")).await else {
        panic!("retry refused");
    };
    assert_eq!(
        again.position, first.position,
        "the retry gets the first position"
    );
    let Rep::PublishTopicMessage(other) = carol.try_publish(keyed("carol's", "k1")).await else {
        panic!("carol's publish refused");
    };
    assert_ne!(
        other.position, first.position,
        "another publisher's key is its own"
    );
    let Rep::PublishTopicMessage(next) = bob.try_publish(keyed("twice", "k2")).await else {
        panic!("second key refused");
    };
    assert!(offset(&next.position) > offset(&other.position));

    let long = "k".repeat(65);
    let reply = bob.try_publish(keyed("long", &long)).await;
    assert_error(reply, -10014, "publishTopicMessage", &["65"]);
    let Rep::PublishTopicMessage(_) = bob.try_publish(keyed("max", &"k".repeat(64))).await else {
        panic!("a 64-byte key is refused");
    };

    bob.join_topic(ROOM, "sentinel", "").await;
    let e = alice.next_event().await;
    assert_topic_event(&e, REMOTE_JOIN, "bob", "t1", Some(""));
    let e = alice.next_event().await;
    assert_topic_event(&e, REMOTE_JOIN, "carol", "t1", Some(""));
    assert_eq!(
        alice.texts_until(REMOTE_JOIN, "bob", "sentinel").await,
        ["once", "carol's", "twice", "max"],
        "the retry is not delivered again"
    );
}

/// R103, §9.2: a topic message reaches exactly the members that follow its publisher
/// in that topic — not followers of other publishers or other topics, not members
/// following nothing, not the publisher — as a MessagePush with channel type STREAM,
/// channel and topic names, publisher, custom type, send_ts and the reply's position.
#[tokio::test]
async fn r103_delivery_only_to_followers_of_that_publisher_in_that_topic() {
    let server = TestServer::start().await;
    let mut bob = Member::in_room(&server, "bob").await;
    let mut carol = Member::in_room(&server, "carol").await;
    bob.join_topic(ROOM, "t1", "").await;
    bob.join_topic(ROOM, "t2", "").await;
    carol.join_topic(ROOM, "t1", "").await;
    // Followers, each joined after the roles exist (so no events to skip).
    let mut f_bob_t1 = Member::in_room(&server, "f1").await;
    f_bob_t1.subscribe(ROOM, "t1", &["bob"]).await;
    let mut f_carol_t1 = Member::in_room(&server, "f2").await;
    f_carol_t1.subscribe(ROOM, "t1", &["carol"]).await;
    let mut f_bob_t2 = Member::in_room(&server, "f3").await;
    f_bob_t2.subscribe(ROOM, "t2", &["bob"]).await;
    let mut f_none = Member::in_room(&server, "f4").await;
    let mut f_both = Member::in_room(&server, "f5").await;
    f_both.subscribe(ROOM, "t1", &["bob", "carol"]).await;
    f_both.subscribe(ROOM, "t2", &["bob"]).await;

    let reply = bob
        .try_publish(pb::PublishTopicMessageRequest {
            custom_type: "ct".into(),
            send_ts: 12_345,
            ..topic_message(ROOM, "t1", "hello")
        })
        .await;
    let Rep::PublishTopicMessage(hello) = reply else {
        panic!("publish failed: {reply:?}");
    };
    assert_eq!(hello.topic_name, "t1");
    let m = f_bob_t1.next_message().await;
    assert_eq!(m.channel_type, pb::ChannelType::Stream as i32);
    assert_eq!(m.channel_name, ROOM);
    assert_eq!(m.topic_name, "t1");
    assert_eq!(m.publisher, "bob");
    assert_eq!(m.message_type, pb::MessageType::String as i32);
    assert_eq!(m.custom_type, "ct");
    assert_eq!(m.payload, Bytes::from_static(b"hello"));
    assert_eq!(m.send_ts, 12_345);
    assert!(m.timestamp > 0);
    assert_eq!(
        m.position, hello.position,
        "the push carries the reply's position"
    );

    let c = carol.publish(ROOM, "t1", "from-carol").await;
    let b2 = bob
        .try_publish(pb::PublishTopicMessageRequest {
            message_type: pb::MessageType::Binary as i32,
            ..topic_message(ROOM, "t2", Bytes::from_static(&[0, 159, 255]))
        })
        .await;
    let Rep::PublishTopicMessage(b2) = b2 else {
        panic!("binary publish failed: {b2:?}");
    };
    assert!(offset(&hello.position) < offset(&c.position));
    assert!(offset(&c.position) < offset(&b2.position));

    let mut dave = Member::in_room(&server, "dave").await;
    dave.join_topic(ROOM, "sentinel", "").await;
    assert!(
        f_bob_t1
            .texts_until(REMOTE_JOIN, "dave", "sentinel")
            .await
            .is_empty()
    );
    assert_eq!(
        f_carol_t1
            .texts_until(REMOTE_JOIN, "dave", "sentinel")
            .await,
        vec!["from-carol"]
    );
    let m = f_bob_t2.next_message().await;
    assert_eq!(m.topic_name, "t2");
    assert_eq!(m.message_type, pb::MessageType::Binary as i32);
    assert_eq!(m.payload, Bytes::from_static(&[0, 159, 255]));
    assert_eq!(m.send_ts, 0);
    assert_eq!(m.custom_type, "");
    assert!(
        f_bob_t2
            .texts_until(REMOTE_JOIN, "dave", "sentinel")
            .await
            .is_empty()
    );
    assert!(
        f_none
            .texts_until(REMOTE_JOIN, "dave", "sentinel")
            .await
            .is_empty()
    );
    assert!(bob.texts_until(REMOTE_JOIN, "carol", "t1").await.is_empty());
    assert!(
        bob.texts_until(REMOTE_JOIN, "dave", "sentinel")
            .await
            .is_empty()
    );
    for topic in ["t1", "t2"] {
        assert_topic_event(
            &carol.next_event().await,
            REMOTE_JOIN,
            "bob",
            topic,
            Some(""),
        );
    }
    assert!(
        carol
            .texts_until(REMOTE_JOIN, "dave", "sentinel")
            .await
            .is_empty()
    );
    // f5 follows all three: everything, in publish order.
    let mut got = Vec::new();
    for _ in 0..3 {
        let m = f_both.next_message().await;
        got.push((
            m.publisher.clone(),
            m.topic_name.clone(),
            offset(&m.position),
        ));
    }
    assert_eq!(
        got,
        vec![
            ("bob".to_string(), "t1".to_string(), offset(&hello.position)),
            ("carol".into(), "t1".into(), offset(&c.position)),
            ("bob".into(), "t2".into(), offset(&b2.position)),
        ]
    );
}

/// Publishes `{prefix}{i}` for i in 0..count in `topic`, up to 50 requests per frame,
/// checking every reply.
async fn publish_numbered(
    mut m: Member,
    topic: &'static str,
    prefix: &'static str,
    count: usize,
) -> Member {
    let mut i = 0;
    while i < count {
        let n = (count - i).min(50);
        let msgs: Vec<ClientMessage> = (i..i + n)
            .map(|k| ClientMessage {
                id: m.raw.next_id(),
                body: Some(Req::PublishTopicMessage(topic_message(
                    ROOM,
                    topic,
                    format!("{prefix}{k}").into_bytes(),
                ))),
            })
            .collect();
        m.raw.send(&msgs).await;
        for msg in &msgs {
            let reply = m.raw.reply(msg.id).await;
            assert!(
                matches!(reply, Rep::PublishTopicMessage(_)),
                "{prefix}: {reply:?}"
            );
        }
        i += n;
    }
    m
}

/// R72: one publisher's topic messages reach a follower in publish order, none
/// missing, while another publisher sends in the same topic at the same time; offsets
/// increase across both.
#[tokio::test]
async fn r72_topic_messages_of_each_publisher_arrive_in_order_none_missing() {
    const BOB: usize = 3_000;
    const CAROL: usize = 1_000;
    let server = TestServer::with(|c| c.apps[0].limits.topic_publish_rate_per_channel = 0).await;
    let mut alice = Member::in_room(&server, "alice").await;
    let mut bob = Member::in_room(&server, "bob").await;
    let mut carol = Member::in_room(&server, "carol").await;
    bob.join_topic(ROOM, "t1", "").await;
    carol.join_topic(ROOM, "t1", "").await;
    alice.subscribe(ROOM, "t1", &["bob", "carol"]).await;
    for who in ["bob", "carol"] {
        assert_topic_event(&alice.next_event().await, REMOTE_JOIN, who, "t1", Some(""));
    }
    let bob_task = tokio::spawn(publish_numbered(bob, "t1", "b", BOB));
    let carol_task = tokio::spawn(publish_numbered(carol, "t1", "c", CAROL));
    let (mut next_b, mut next_c, mut last) = (0usize, 0usize, 0u64);
    for _ in 0..BOB + CAROL {
        let m = alice.next_message().await;
        let t = text_of(&m);
        let at = offset(&m.position);
        assert!(at > last, "offsets increase: {at} after {last}");
        last = at;
        match m.publisher.as_str() {
            "bob" => {
                assert_eq!(t, format!("b{next_b}"), "bob's messages in order");
                next_b += 1;
            }
            "carol" => {
                assert_eq!(t, format!("c{next_c}"), "carol's messages in order");
                next_c += 1;
            }
            other => panic!("message from {other}"),
        }
    }
    assert_eq!((next_b, next_c), (BOB, CAROL));
    let mut bob = bob_task.await.expect("bob publishes");
    carol_task.await.expect("carol publishes");
    bob.join_topic(ROOM, "sentinel", "").await;
    assert!(
        alice
            .texts_until(REMOTE_JOIN, "bob", "sentinel")
            .await
            .is_empty(),
        "nothing twice"
    );
}

// ---------------------------------------------------------------------------------------
// Topic subscriptions (R105–R113)
// ---------------------------------------------------------------------------------------

/// R105: with `max_subscribed_topics` = 2, a third topic is refused with −11014; more
/// users in a subscribed topic still pass; after unsubscribing a topic the third
/// passes.
#[tokio::test]
async fn r105_subscribed_topic_limit_answers_11014() {
    let server = TestServer::with(|c| c.apps[0].limits.max_subscribed_topics = 2).await;
    let mut alice = Member::in_room(&server, "alice").await;
    alice.subscribe(ROOM, "t1", &["bob"]).await;
    alice.subscribe(ROOM, "t2", &["bob"]).await;
    let reply = alice.try_subscribe(ROOM, "t3", &["bob"]).await;
    assert_error(reply, TOPIC_LIMIT, "subscribeTopic", &["2"]);
    let r = alice.subscribe(ROOM, "t1", &["carol"]).await;
    assert_eq!(r.succeed_users, ["carol"]);
    alice.unsubscribe(ROOM, "t2", &[]).await;
    let r = alice.subscribe(ROOM, "t3", &["bob"]).await;
    assert_eq!(r.succeed_users, ["bob"]);
    // The refused t3 was not recorded: with t1 and t3 followed, t2 is refused again.
    let reply = alice.try_subscribe(ROOM, "t2", &["bob"]).await;
    assert_error(reply, TOPIC_LIMIT, "subscribeTopic", &[]);
}

/// R106: with `max_topic_publishers` = 3, users beyond the free slots fail one by one
/// with 20003 (the first ones fill the slots); a call when the topic is full answers
/// −11003; after an unsubscribe there is room again.
#[tokio::test]
async fn r106_full_topic_answers_11003_partial_overflow_fails_per_user_20003() {
    let server = TestServer::with(|c| c.apps[0].limits.max_topic_publishers = 3).await;
    let mut alice = Member::in_room(&server, "alice").await;
    let r = alice.subscribe(ROOM, "t1", &["u1", "u2"]).await;
    assert_eq!(r.succeed_users, ["u1", "u2"]);
    assert!(r.failed.is_empty(), "{r:?}");
    let r = alice.subscribe(ROOM, "t1", &["u3", "u4", "u5"]).await;
    assert_eq!(r.succeed_users, ["u3"]);
    let failed: Vec<_> = r
        .failed
        .iter()
        .map(|f| (f.user.as_str(), f.error_code))
        .collect();
    assert_eq!(
        failed,
        [
            ("u4", SUB_USER_EXCEED_LIMITATION),
            ("u5", SUB_USER_EXCEED_LIMITATION)
        ]
    );
    assert!(r.failed.iter().all(|f| !f.reason.is_empty()), "{r:?}");
    let reply = alice.try_subscribe(ROOM, "t1", &["u6"]).await;
    assert_error(reply, TOPIC_USER_LIMIT, "subscribeTopic", &["3"]);
    // Another topic has its own slots.
    let r = alice.subscribe(ROOM, "t2", &["u6"]).await;
    assert_eq!(r.succeed_users, ["u6"]);
    let r = alice.unsubscribe(ROOM, "t1", &["u1"]).await;
    assert!(r.failed.is_empty(), "{r:?}");
    let r = alice.subscribe(ROOM, "t1", &["u6", "u7"]).await;
    assert_eq!(r.succeed_users, ["u6"]);
    assert_eq!(r.failed.len(), 1);
    assert_eq!(
        (r.failed[0].user.as_str(), r.failed[0].error_code),
        ("u7", SUB_USER_EXCEED_LIMITATION)
    );
}

/// R107: subscribeTopic is incremental: following carol keeps following bob.
#[tokio::test]
async fn r107_subscribe_topic_is_incremental() {
    let server = TestServer::start().await;
    let mut bob = Member::in_room(&server, "bob").await;
    let mut carol = Member::in_room(&server, "carol").await;
    bob.join_topic(ROOM, "t1", "").await;
    carol.join_topic(ROOM, "t1", "").await;
    let mut alice = Member::in_room(&server, "alice").await;
    alice.subscribe(ROOM, "t1", &["bob"]).await;
    let r = alice.subscribe(ROOM, "t1", &["carol"]).await;
    assert_eq!(r.succeed_users, ["carol"]);
    bob.publish(ROOM, "t1", "b").await;
    carol.publish(ROOM, "t1", "c").await;
    bob.join_topic(ROOM, "sentinel", "").await;
    assert_eq!(
        alice.texts_until(REMOTE_JOIN, "bob", "sentinel").await,
        ["b", "c"]
    );
}

/// R108: subscribeTopic without users follows every current publisher of the topic
/// except the caller; a later call adds the new publishers; with fewer free slots than
/// publishers it follows a selection of exactly the free slots, and a full topic
/// answers −11003.
#[tokio::test]
async fn r108_subscribe_without_users_follows_every_publisher_but_self() {
    let server = TestServer::start().await;
    let mut alice = Member::in_room(&server, "alice").await;
    alice.join_topic(ROOM, "t1", "").await;
    let mut pubs = Vec::new();
    for u in ["bob", "carol", "dave"] {
        let mut m = Member::in_room(&server, u).await;
        m.join_topic(ROOM, "t1", "").await;
        pubs.push(m);
    }
    for u in ["bob", "carol", "dave"] {
        assert_topic_event(&alice.next_event().await, REMOTE_JOIN, u, "t1", Some(""));
    }
    let r = alice.subscribe(ROOM, "t1", &[]).await;
    let got: BTreeSet<_> = r.succeed_users.iter().map(String::as_str).collect();
    assert_eq!(got, BTreeSet::from(["bob", "carol", "dave"]), "{r:?}");
    assert!(r.failed.is_empty(), "{r:?}");
    for m in &mut pubs {
        let user = m.user.clone();
        m.publish(ROOM, "t1", &user).await;
    }
    alice.publish(ROOM, "t1", "own").await;
    let mut erin = Member::in_room(&server, "erin").await;
    erin.join_topic(ROOM, "t1", "").await;
    let texts = alice.texts_until(REMOTE_JOIN, "erin", "t1").await;
    assert_eq!(texts, ["bob", "carol", "dave"], "not its own message");
    let r = alice.subscribe(ROOM, "t1", &[]).await;
    assert_eq!(r.succeed_users, ["erin"], "the new publisher");

    // With a limit of 2 followed publishers per topic.
    let server = TestServer::with(|c| c.apps[0].limits.max_topic_publishers = 2).await;
    let mut alice = Member::in_room(&server, "alice").await;
    for u in ["bob", "carol", "dave"] {
        let mut m = Member::in_room(&server, u).await;
        m.join_topic(ROOM, "t1", "").await;
    }
    let r = alice.subscribe(ROOM, "t1", &[]).await;
    assert_eq!(
        r.succeed_users.len(),
        2,
        "a selection of the free slots: {r:?}"
    );
    assert!(
        r.succeed_users
            .iter()
            .all(|u| ["bob", "carol", "dave"].contains(&u.as_str())),
        "{r:?}"
    );
    let reply = alice.try_subscribe(ROOM, "t1", &[]).await;
    assert_error(reply, TOPIC_USER_LIMIT, "subscribeTopic", &[]);
}

/// R109: a listed user that is not (yet) a publisher — not even a member — is recorded
/// and succeeds; its messages flow once it joins the topic.
#[tokio::test]
async fn r109_pre_subscribed_non_publisher_succeeds_and_flows_once_it_joins() {
    let server = TestServer::start().await;
    let mut alice = Member::in_room(&server, "alice").await;
    let r = alice.subscribe(ROOM, "t1", &["bob"]).await;
    assert_eq!(r.succeed_users, ["bob"]);
    assert!(r.failed.is_empty(), "{r:?}");
    let mut bob = Member::in_room(&server, "bob").await;
    bob.join_topic(ROOM, "t1", "late").await;
    bob.publish(ROOM, "t1", "hi").await;
    assert_topic_event(
        &alice.next_event().await,
        REMOTE_JOIN,
        "bob",
        "t1",
        Some("late"),
    );
    let m = alice.next_message().await;
    assert_eq!((m.publisher.as_str(), text_of(&m).as_str()), ("bob", "hi"));
}

/// R110: invalid user ids fail one by one with INVALID_PARAMS (4), duplicates count
/// once, an already followed user comes back with ALREADY_SUBSCRIBED_USER (20001).
#[tokio::test]
async fn r110_invalid_ids_fail_with_4_duplicates_once_already_followed_20001() {
    let server = TestServer::start().await;
    let mut alice = Member::in_room(&server, "alice").await;
    let long = "x".repeat(65);
    let r = alice
        .subscribe(
            ROOM,
            "t1",
            &["bob", "bob", "", "a/b", long.as_str(), "carol", "carol"],
        )
        .await;
    assert_eq!(r.succeed_users, ["bob", "carol"], "{r:?}");
    let failed: BTreeSet<_> = r
        .failed
        .iter()
        .map(|f| (f.user.clone(), f.error_code))
        .collect();
    let expected: BTreeSet<_> = [
        ("", INVALID_PARAMS),
        ("a/b", INVALID_PARAMS),
        (long.as_str(), INVALID_PARAMS),
    ]
    .into_iter()
    .map(|(u, c)| (u.to_string(), c))
    .collect();
    assert_eq!(failed, expected, "{r:?}");
    assert_eq!(r.failed.len(), 3, "each invalid id once: {r:?}");
    let r = alice.subscribe(ROOM, "t1", &["bob", "dave"]).await;
    assert_eq!(r.succeed_users, ["dave"]);
    assert_eq!(r.failed.len(), 1, "{r:?}");
    assert_eq!(
        (r.failed[0].user.as_str(), r.failed[0].error_code),
        ("bob", ALREADY_SUBSCRIBED_USER)
    );
    // Only invalid ids: nothing followed, nothing refused as a whole.
    let r = alice.subscribe(ROOM, "t2", &["a/b"]).await;
    assert!(r.succeed_users.is_empty());
    assert_eq!(r.failed[0].error_code, INVALID_PARAMS);
    let reply = alice.try_unsubscribe(ROOM, "t2", &[]).await;
    assert_error(reply, TOPIC_NOT_SUBSCRIBED, "unsubscribeTopic", &["t2"]);
}

/// R111: subscribeTopic without users on a topic without publishers answers −11017,
/// also once its last publisher left.
#[tokio::test]
async fn r111_subscribe_without_users_on_a_topic_without_publishers_answers_11017() {
    let server = TestServer::start().await;
    let mut alice = Member::in_room(&server, "alice").await;
    let reply = alice.try_subscribe(ROOM, "t1", &[]).await;
    assert_error(reply, TOPIC_NOT_EXIST, "subscribeTopic", &["t1"]);
    let mut bob = Member::in_room(&server, "bob").await;
    bob.join_topic(ROOM, "t1", "").await;
    bob.leave_topic(ROOM, "t1").await;
    let reply = alice.try_subscribe(ROOM, "t1", &[]).await;
    assert_error(reply, TOPIC_NOT_EXIST, "subscribeTopic", &["t1"]);
    // Nothing was recorded by the refusals.
    let reply = alice.try_unsubscribe(ROOM, "t1", &[]).await;
    assert_error(reply, TOPIC_NOT_SUBSCRIBED, "unsubscribeTopic", &[]);
}

/// R112, R113: unsubscribeTopic with users stops only those (not-followed ones come
/// back with 20004, invalid ids are ignored); without users the whole topic; on a
/// topic where nothing is followed it answers −11013.
#[tokio::test]
async fn r112_r113_unsubscribe_some_or_all_and_nothing_followed_answers_11013() {
    let server = TestServer::start().await;
    let mut bob = Member::in_room(&server, "bob").await;
    let mut carol = Member::in_room(&server, "carol").await;
    bob.join_topic(ROOM, "t1", "").await;
    carol.join_topic(ROOM, "t1", "").await;
    let mut alice = Member::in_room(&server, "alice").await;
    alice.subscribe(ROOM, "t1", &["bob", "carol"]).await;

    let r = alice
        .unsubscribe(ROOM, "t1", &["carol", "dave", "a/b", "carol"])
        .await;
    let failed: Vec<_> = r
        .failed
        .iter()
        .map(|f| (f.user.as_str(), f.error_code))
        .collect();
    assert_eq!(failed, [("dave", NOT_SUBSCRIBED_USER)], "{r:?}");
    bob.publish(ROOM, "t1", "b1").await;
    carol.publish(ROOM, "t1", "c1").await;
    bob.join_topic(ROOM, "s1", "").await;
    assert_eq!(alice.texts_until(REMOTE_JOIN, "bob", "s1").await, ["b1"]);

    let r = alice.unsubscribe(ROOM, "t1", &[]).await;
    assert!(r.failed.is_empty(), "{r:?}");
    bob.publish(ROOM, "t1", "b2").await;
    bob.join_topic(ROOM, "s2", "").await;
    assert!(alice.texts_until(REMOTE_JOIN, "bob", "s2").await.is_empty());

    let reply = alice.try_unsubscribe(ROOM, "t1", &[]).await;
    assert_error(reply, TOPIC_NOT_SUBSCRIBED, "unsubscribeTopic", &["t1"]);
    let reply = alice.try_unsubscribe(ROOM, "t1", &["bob"]).await;
    assert_error(reply, TOPIC_NOT_SUBSCRIBED, "unsubscribeTopic", &["t1"]);
    let reply = alice.try_unsubscribe(ROOM, "never", &["bob"]).await;
    assert_error(reply, TOPIC_NOT_SUBSCRIBED, "unsubscribeTopic", &["never"]);
    // The topic can be followed again.
    let r = alice.subscribe(ROOM, "t1", &["bob"]).await;
    assert_eq!(r.succeed_users, ["bob"]);
}

// ---------------------------------------------------------------------------------------
// Leaving: leave, logout, session end (R94, R95)
// ---------------------------------------------------------------------------------------

/// R94, R95: on leave the others get one REMOTE_LEAVE per topic the leaver published
/// in; nothing of the channel reaches the leaver afterwards; a second leave answers
/// −11001; joining again starts empty — no roles, no follows.
#[tokio::test]
async fn r94_r95_leave_sends_remote_leave_per_topic_and_nothing_more_reaches_the_leaver() {
    let server = TestServer::start().await;
    let mut alice = Member::in_room(&server, "alice").await;
    let mut carol = Member::in_room(&server, "carol").await;
    carol.join_topic(ROOM, "t1", "").await;
    let mut bob = Member::in_room(&server, "bob").await;
    bob.join_topic(ROOM, "t1", "m1").await;
    bob.join_topic(ROOM, "t2", "m2").await;
    bob.subscribe(ROOM, "t1", &["carol"]).await;
    carol.subscribe(ROOM, "t1", &["bob"]).await;
    for topic in ["t1", "t1", "t2"] {
        let e = alice.next_event().await;
        assert_eq!(
            (e.event_type, e.topics[0].topic_name.as_str()),
            (REMOTE_JOIN, topic)
        );
    }

    bob.leave(ROOM).await;
    let mut left = BTreeSet::new();
    for _ in 0..2 {
        let e = alice.next_event().await;
        assert_eq!(e.event_type, REMOTE_LEAVE, "{e:?}");
        assert_eq!(e.publisher, "bob");
        assert_eq!(e.topics.len(), 1);
        left.insert(e.topics[0].topic_name.clone());
    }
    assert_eq!(left, BTreeSet::from(["t1".to_string(), "t2".into()]));

    // Nothing more for bob: a followed publisher's message, an event; then a USER
    // message to bob is its next push.
    carol.publish(ROOM, "t1", "after-leave").await;
    carol.join_topic(ROOM, "t3", "").await;
    carol.send_user("bob", "sentinel").await;
    match bob.next_push().await {
        Rep::Message(m) => {
            assert_eq!(m.channel_type, pb::ChannelType::User as i32, "{m:?}");
            assert_eq!(text_of(&m), "sentinel");
        }
        other => panic!("bob got {other:?} from a channel it left"),
    }
    let reply = bob.try_leave(ROOM).await;
    assert_error(reply, NOT_JOINED, "leave", &[ROOM]);
    let reply = bob.try_publish(topic_message(ROOM, "t1", "x")).await;
    assert_error(reply, NOT_JOINED, "publishTopicMessage", &[ROOM]);

    // Back in: no roles (SNAPSHOT without bob), no follows (carol's message skipped).
    let (_, snapshot) = bob.join(ROOM).await;
    assert_eq!(
        snapshot_map(&snapshot),
        expected_map(&[("t1", &[("carol", "")]), ("t3", &[("carol", "")])])
    );
    let reply = bob.try_publish(topic_message(ROOM, "t1", "x")).await;
    assert_error(reply, TOPIC_NOT_JOINED, "publishTopicMessage", &["t1"]);
    let reply = bob.try_unsubscribe(ROOM, "t1", &[]).await;
    assert_error(reply, TOPIC_NOT_SUBSCRIBED, "unsubscribeTopic", &[]);
    carol.publish(ROOM, "t1", "not-followed").await;
    carol.join_topic(ROOM, "t4", "").await;
    assert!(bob.texts_until(REMOTE_JOIN, "carol", "t4").await.is_empty());
    // alice saw carol's t3 and t4 only, no REMOTE_JOIN of bob.
    assert_topic_event(
        &alice.next_event().await,
        REMOTE_JOIN,
        "carol",
        "t3",
        Some(""),
    );
    assert_topic_event(
        &alice.next_event().await,
        REMOTE_JOIN,
        "carol",
        "t4",
        Some(""),
    );
}

/// R94 via logout: a member that logs out leaves its stream channels; the others get
/// REMOTE_LEAVE for each of its topics.
#[tokio::test]
async fn r94_logout_of_a_member_gives_others_remote_leave_per_topic() {
    let server = TestServer::start().await;
    let mut alice = Member::in_room(&server, "alice").await;
    let mut bob = Member::in_room(&server, "bob").await;
    bob.join_topic(ROOM, "t1", "").await;
    bob.join_topic(ROOM, "t2", "").await;
    for _ in 0..2 {
        assert_eq!(alice.next_event().await.event_type, REMOTE_JOIN);
    }
    let reply = bob.req(Req::Logout(pb::LogoutRequest {})).await;
    assert!(matches!(reply, Rep::Logout(_)), "{reply:?}");
    let mut left = BTreeSet::new();
    for _ in 0..2 {
        let e = alice.next_event().await;
        assert_eq!(
            (e.event_type, e.publisher.as_str()),
            (REMOTE_LEAVE, "bob"),
            "{e:?}"
        );
        left.insert(e.topics[0].topic_name.clone());
    }
    assert_eq!(left, BTreeSet::from(["t1".to_string(), "t2".into()]));
    let mut carol = Member::login(&server, "carol").await;
    let (_, snapshot) = carol.join(ROOM).await;
    assert!(snapshot.topics.is_empty(), "{snapshot:?}");
}

/// R52, R53, R94: a member whose connection is lost keeps its topics for its
/// presence timeout (1 s here); when the session ends the others get REMOTE_LEAVE.
#[tokio::test]
async fn r53_r94_session_timeout_of_a_member_gives_others_remote_leave() {
    let server = TestServer::with(short_presence).await;
    let mut alice = Member::in_room(&server, "alice").await;
    let mut raw = server.raw().await;
    let login = raw
        .login_resume("bob", "", Vec::new(), 1, "stream-test")
        .await;
    assert_eq!(login.presence_timeout, 1);
    let mut bob = Member {
        raw,
        user: "bob".into(),
    };
    bob.join(ROOM).await;
    bob.join_topic(ROOM, "t1", "m").await;
    assert_topic_event(
        &alice.next_event().await,
        REMOTE_JOIN,
        "bob",
        "t1",
        Some("m"),
    );
    let lost_at = now_ms();
    drop(bob);
    // Within the presence timeout bob is still a publisher.
    let mut carol = Member::login(&server, "carol").await;
    let (_, snapshot) = carol.join(ROOM).await;
    if now_ms() < lost_at + 900 {
        assert_eq!(
            snapshot_map(&snapshot),
            expected_map(&[("t1", &[("bob", "m")])])
        );
    }
    let e = alice.next_event().await;
    assert_topic_event(&e, REMOTE_LEAVE, "bob", "t1", None);
    assert!(now_ms() >= lost_at + 900, "not before the presence timeout");
    assert_topic_event(&carol.next_event().await, REMOTE_LEAVE, "bob", "t1", None);
}

// ---------------------------------------------------------------------------------------
// Limits and validation
// ---------------------------------------------------------------------------------------

/// R9, −11008 / −11018: topic names are 1–16 bytes of the allowed set; meta is at most
/// `max_topic_meta_bytes` (1,024). Refusals change nothing and send no event.
#[tokio::test]
async fn r9_topic_name_and_meta_limits_answer_11008_and_11018() {
    let server = TestServer::start().await;
    let mut alice = Member::in_room(&server, "alice").await;
    let mut bob = Member::in_room(&server, "bob").await;
    let long = "t".repeat(17);
    for bad in ["", "a/b", "null", long.as_str()] {
        let reply = bob.try_join_topic(ROOM, bad, "").await;
        assert_error(reply, INVALID_TOPIC_NAME, "joinTopic", &[]);
        let reply = bob.try_publish(topic_message(ROOM, bad, "x")).await;
        assert_error(reply, INVALID_TOPIC_NAME, "publishTopicMessage", &[]);
        let reply = bob.try_subscribe(ROOM, bad, &["alice"]).await;
        assert_error(reply, INVALID_TOPIC_NAME, "subscribeTopic", &[]);
        let reply = bob.try_unsubscribe(ROOM, bad, &[]).await;
        assert_error(reply, INVALID_TOPIC_NAME, "unsubscribeTopic", &[]);
        let reply = bob.try_leave_topic(ROOM, bad).await;
        assert_error(reply, INVALID_TOPIC_NAME, "leaveTopic", &[]);
    }
    let longest = "t".repeat(16);
    bob.join_topic(ROOM, &longest, "").await;
    let reply = bob.try_join_topic(ROOM, "t1", &"m".repeat(1025)).await;
    assert_error(reply, INVALID_TOPIC_META, "joinTopic", &["1025", "1024"]);
    let meta = "m".repeat(1024);
    bob.join_topic(ROOM, "t1", &meta).await;
    assert_topic_event(
        &alice.next_event().await,
        REMOTE_JOIN,
        "bob",
        &longest,
        Some(""),
    );
    assert_topic_event(
        &alice.next_event().await,
        REMOTE_JOIN,
        "bob",
        "t1",
        Some(&meta),
    );
    bob.raw.assert_alive().await;
}

/// R63, R64, R66 for topic messages: payload over 32,768 bytes −11010, STRING not
/// UTF-8 or no message type −11009, customType over 32 bytes −11029; each refusal
/// delivers nothing and the publisher carries on. (−11030 is for a non-string
/// customType, which the wire cannot carry.)
#[tokio::test]
async fn r63_r64_r66_topic_message_payload_type_and_custom_type_limits() {
    let server = TestServer::start().await;
    let mut bob = Member::in_room(&server, "bob").await;
    bob.join_topic(ROOM, "t1", "").await;
    let mut alice = Member::in_room(&server, "alice").await;
    alice.subscribe(ROOM, "t1", &["bob"]).await;

    let max = topic_message(ROOM, "t1", vec![b'a'; 32_768]);
    let too_long = topic_message(ROOM, "t1", vec![b'a'; 32_769]);
    let reply = bob.try_publish(too_long).await;
    assert_error(reply, MESSAGE_TOO_LONG, "publishTopicMessage", &["32769"]);
    let reply = bob
        .try_publish(pb::PublishTopicMessageRequest {
            message_type: pb::MessageType::Binary as i32,
            ..topic_message(ROOM, "t1", vec![7u8; 32_769])
        })
        .await;
    assert_error(reply, MESSAGE_TOO_LONG, "publishTopicMessage", &[]);
    let reply = bob
        .try_publish(topic_message(ROOM, "t1", vec![0xff, 0xfe]))
        .await;
    assert_error(reply, INVALID_MESSAGE, "publishTopicMessage", &["UTF-8"]);
    let reply = bob
        .try_publish(pb::PublishTopicMessageRequest {
            message_type: pb::MessageType::Unspecified as i32,
            ..topic_message(ROOM, "t1", "x")
        })
        .await;
    assert_error(reply, INVALID_MESSAGE, "publishTopicMessage", &[]);
    let reply = bob
        .try_publish(pb::PublishTopicMessageRequest {
            custom_type: "c".repeat(33),
            ..topic_message(ROOM, "t1", "x")
        })
        .await;
    assert_error(reply, CUSTOM_TYPE_TOO_LONG, "publishTopicMessage", &["33"]);

    // The limits themselves pass.
    let reply = bob.try_publish(max).await;
    assert!(matches!(reply, Rep::PublishTopicMessage(_)), "{reply:?}");
    let reply = bob
        .try_publish(pb::PublishTopicMessageRequest {
            message_type: pb::MessageType::Binary as i32,
            custom_type: "c".repeat(32),
            ..topic_message(ROOM, "t1", vec![0xff, 0xfe])
        })
        .await;
    assert!(matches!(reply, Rep::PublishTopicMessage(_)), "{reply:?}");
    let m = alice.next_message().await;
    assert_eq!(
        m.payload.len(),
        32_768,
        "the first delivery is the largest message"
    );
    let m = alice.next_message().await;
    assert_eq!(m.payload, Bytes::from_static(&[0xff, 0xfe]));
    assert_eq!(m.custom_type, "c".repeat(32));
    bob.join_topic(ROOM, "sentinel", "").await;
    assert!(
        alice
            .texts_until(REMOTE_JOIN, "bob", "sentinel")
            .await
            .is_empty()
    );
}

/// Topic message rate per stream channel (`topic_publish_rate_per_channel`, every topic
/// and publisher together): over it −11025, and the refused message is not delivered;
/// another stream channel has its own budget.
#[tokio::test]
async fn r67_topic_rate_per_channel_answers_11025() {
    const RATE: u32 = 3;
    let server = TestServer::with(|c| c.apps[0].limits.topic_publish_rate_per_channel = RATE).await;
    let mut bob = Member::in_room(&server, "bob").await;
    bob.join("other").await;
    bob.join_topic("other", "t1", "").await;
    let mut carol = Member::in_room(&server, "carol").await;
    bob.join_topic(ROOM, "t1", "").await;
    carol.join_topic(ROOM, "t2", "").await;
    let mut alice = Member::in_room(&server, "alice").await;
    alice.subscribe(ROOM, "t1", &["bob"]).await;
    alice.subscribe(ROOM, "t2", &["carol"]).await;

    // carol spends 2 of the budget in t2, then bob sends 3 in t1 in one frame.
    let mut accepted = Vec::new();
    for i in 0..2 {
        let text = format!("c{i}");
        carol.publish(ROOM, "t2", &text).await;
        accepted.push(text);
    }
    let msgs: Vec<ClientMessage> = (0..3)
        .map(|i| ClientMessage {
            id: bob.raw.next_id(),
            body: Some(Req::PublishTopicMessage(topic_message(
                ROOM,
                "t1",
                format!("b{i}"),
            ))),
        })
        .collect();
    bob.raw.send(&msgs).await;
    let mut refused = 0;
    for (i, msg) in msgs.iter().enumerate() {
        match bob.raw.reply(msg.id).await {
            Rep::PublishTopicMessage(_) => accepted.push(format!("b{i}")),
            other => {
                let e = expect_error(other);
                assert_eq!(e.code, TOO_FREQUENT, "{e:?}");
                assert_eq!(e.operation, "publishTopicMessage");
                assert!(e.reason.contains(&RATE.to_string()), "{e:?}");
                refused += 1;
            }
        }
    }
    assert!(
        refused >= 1,
        "5 messages at a rate of {RATE}/s: {accepted:?}"
    );
    // Another channel has its own budget.
    bob.publish("other", "t1", "elsewhere").await;
    bob.join_topic(ROOM, "sentinel", "").await;
    assert_eq!(
        alice.texts_until(REMOTE_JOIN, "bob", "sentinel").await,
        accepted
    );
}

// ---------------------------------------------------------------------------------------
// The channel token over time (T52–T55)
// ---------------------------------------------------------------------------------------

/// Reads `m`'s pushes until a `ChannelLeft`; returns it and the time it arrived.
async fn channel_left(m: &mut Member) -> (pb::ChannelLeft, u64) {
    loop {
        match m.next_push().await {
            Rep::ChannelLeft(c) => return (c, now_ms()),
            Rep::TokenWillExpire(_) | Rep::Topic(_) => {}
            other => panic!("{} expected ChannelLeft, got {other:?}", m.user),
        }
    }
}

/// T54, T55: with a 1 s lead, a short RTC token brings TokenWillExpire { channel_name }
/// 1 s before its expiry (not at once); unrenewed, the member leaves the channel at the
/// expiry with ChannelLeft { STREAM, −10009 }, the others see REMOTE_LEAVE, topic calls
/// answer −11001 — while the session itself carries on and can join again.
#[tokio::test]
async fn t54_t55_unrenewed_channel_token_warns_then_leaves_the_channel() {
    let server = TestServer::with(|c| c.token_will_expire_lead = Duration::from_secs(1)).await;
    let mut alice = Member::in_room(&server, "alice").await;
    let mut bob = Member::login(&server, "bob").await;
    let issued = now_secs();
    let expires = u64::from(issued + 2);
    let reply = bob
        .try_join(ROOM, &rtc_token_at(ROOM, "bob", 2, issued))
        .await;
    let Rep::Join(r) = reply else {
        panic!("join failed: {reply:?}");
    };
    assert_eq!(r.token_expires_at, expires);
    bob.snapshot(ROOM).await;
    bob.join_topic(ROOM, "t1", "").await;
    assert_topic_event(
        &alice.next_event().await,
        REMOTE_JOIN,
        "bob",
        "t1",
        Some(""),
    );

    let Rep::TokenWillExpire(w) = bob.next_push().await else {
        panic!("expected TokenWillExpire");
    };
    assert!(
        now_ms() >= (expires - 1) * 1000,
        "the notice comes with the 1 s lead, not at once"
    );
    assert_eq!(w.channel_name, ROOM);
    assert_eq!(w.expires_at, expires);
    let (left, at) = channel_left(&mut bob).await;
    assert!(at >= expires * 1000, "not before the expiry");
    assert_eq!(left.channel_type, pb::ChannelType::Stream as i32);
    assert_eq!(left.channel_name, ROOM);
    assert_eq!(left.code, TOKEN_EXPIRED);
    assert!(left.reason.contains("expired"), "{left:?}");
    assert_topic_event(&alice.next_event().await, REMOTE_LEAVE, "bob", "t1", None);

    let reply = bob.try_publish(topic_message(ROOM, "t1", "x")).await;
    assert_error(reply, NOT_JOINED, "publishTopicMessage", &[ROOM]);
    bob.raw.assert_alive().await;
    bob.join(ROOM).await;
}

/// T52, T54: renewToken { channel_name } with a later token postpones the channel's
/// expiry (a new notice for the new expiry, ChannelLeft only after it).
#[tokio::test]
async fn t52_renewing_the_channel_token_postpones_the_expiry() {
    let server = TestServer::start().await;
    let mut bob = Member::login(&server, "bob").await;
    let issued = now_secs();
    let first = u64::from(issued + 2);
    let reply = bob
        .try_join(ROOM, &rtc_token_at(ROOM, "bob", 2, issued))
        .await;
    assert!(matches!(reply, Rep::Join(_)), "{reply:?}");
    bob.snapshot(ROOM).await;
    // Less than the 30 s lead remains: the notice comes at once.
    let Rep::TokenWillExpire(w) = bob.next_push().await else {
        panic!("expected TokenWillExpire");
    };
    assert_eq!((w.channel_name.as_str(), w.expires_at), (ROOM, first));

    let issued = now_secs();
    let second = u64::from(issued + 3);
    let reply = bob
        .try_renew(ROOM, &rtc_token_at(ROOM, "bob", 3, issued))
        .await;
    let Rep::RenewToken(r) = reply else {
        panic!("renewal failed: {reply:?}");
    };
    assert_eq!(r.token_expires_at, second);
    assert!(second > first);
    let Rep::TokenWillExpire(w) = bob.next_push().await else {
        panic!("expected a TokenWillExpire for the new token");
    };
    assert_eq!((w.channel_name.as_str(), w.expires_at), (ROOM, second));
    let (left, at) = channel_left(&mut bob).await;
    assert!(
        at >= second * 1000,
        "the expiry moved to the new token's ({at} ms, {second} s)"
    );
    assert_eq!(left.code, TOKEN_EXPIRED);
}

/// T52, R96: renewToken for a channel not joined answers −11001; a renewal with a token
/// for another channel, another uid or an expired one fails with its code, and the old
/// token stays in force (the membership still ends at its expiry).
#[tokio::test]
async fn t52_failed_channel_renewal_keeps_the_old_token() {
    let server = TestServer::start().await;
    let mut bob = Member::login(&server, "bob").await;
    let issued = now_secs();
    let expires = u64::from(issued + 2);
    let reply = bob
        .try_join(ROOM, &rtc_token_at(ROOM, "bob", 2, issued))
        .await;
    assert!(matches!(reply, Rep::Join(_)), "{reply:?}");
    bob.snapshot(ROOM).await;
    let Rep::TokenWillExpire(_) = bob.next_push().await else {
        panic!("expected TokenWillExpire");
    };
    let reply = bob
        .try_renew("other", &rtc_token("other", "bob", 3600))
        .await;
    assert_error(reply, NOT_JOINED, "renewToken", &["other"]);
    let reply = bob.try_renew(ROOM, &rtc_token("other", "bob", 3600)).await;
    assert_error(reply, INVALID_TOKEN, "renewToken", &["CHANNEL_MISMATCH"]);
    let reply = bob.try_renew(ROOM, &rtc_token(ROOM, "mallory", 3600)).await;
    assert_error(reply, INVALID_TOKEN, "renewToken", &["USER_ID_MISMATCH"]);
    let reply = bob.try_renew(ROOM, &token("bob")).await;
    assert_error(reply, INVALID_TOKEN, "renewToken", &["SERVICE_MISSING"]);
    let reply = bob
        .try_renew(ROOM, &rtc_token_at(ROOM, "bob", 60, now_secs() - 600))
        .await;
    assert_error(reply, TOKEN_EXPIRED, "renewToken", &["TOKEN_EXPIRED"]);
    let (left, at) = channel_left(&mut bob).await;
    assert_eq!(left.code, TOKEN_EXPIRED);
    assert!(at >= expires * 1000);
    assert!(
        at < (expires + 3) * 1000,
        "the old token's expiry still applies"
    );
    bob.raw.assert_alive().await;
}

/// T55 while the member is away: its connection is lost (the session waits 30 s for a
/// resume) and its channel token lapses meanwhile. The membership ends at the expiry
/// all the same — the others see REMOTE_LEAVE then, not when the session times out —
/// and the resumed session is no longer a member.
#[tokio::test]
async fn t55_channel_token_lapsing_while_disconnected_still_ends_the_membership() {
    let server = TestServer::start().await;
    let mut alice = Member::in_room(&server, "alice").await;
    let mut raw = server.raw().await;
    let login = raw
        .login_resume("bob", "", Vec::new(), 30, "stream-test")
        .await;
    let mut bob = Member {
        raw,
        user: "bob".into(),
    };
    let issued = now_secs();
    let expires = u64::from(issued + 2);
    let reply = bob
        .try_join(ROOM, &rtc_token_at(ROOM, "bob", 2, issued))
        .await;
    let Rep::Join(joined) = reply else {
        panic!("join failed: {reply:?}");
    };
    bob.snapshot(ROOM).await;
    bob.join_topic(ROOM, "t1", "").await;
    assert_topic_event(
        &alice.next_event().await,
        REMOTE_JOIN,
        "bob",
        "t1",
        Some(""),
    );
    drop(bob);

    let e = alice.next_event().await;
    let at = now_ms();
    assert_topic_event(&e, REMOTE_LEAVE, "bob", "t1", None);
    assert!(at >= expires * 1000, "not before the expiry");
    assert!(
        at < (expires + 2) * 1000,
        "at the expiry, not at the session's end"
    );

    let mut raw = server.raw().await;
    let positions = vec![
        resume_position(pb::ChannelType::Stream as i32, ROOM, joined.position),
        resume_position(pb::ChannelType::User as i32, "bob", login.user_position),
    ];
    let resumed = raw
        .login_resume("bob", &login.session_id, positions, 30, "stream-test")
        .await;
    assert!(resumed.resumed, "{resumed:?}");
    let mut bob = Member {
        raw,
        user: "bob".into(),
    };
    let reply = bob.try_publish(topic_message(ROOM, "t1", "x")).await;
    assert_error(reply, NOT_JOINED, "publishTopicMessage", &[ROOM]);
}

/// R42, T55, R94: when a member's login token expires its session ends, and the others
/// get REMOTE_LEAVE for its topics.
#[tokio::test]
async fn r42_login_token_expiry_of_a_member_gives_others_remote_leave() {
    let server = TestServer::start().await;
    let mut alice = Member::in_room(&server, "alice").await;
    let mut raw = server.raw().await;
    let short = token_with(APP_ID, CERT, "bob", 2, now_secs());
    let reply = raw.login(APP_ID, "bob", &short, 60).await;
    assert!(matches!(reply, Rep::Login(_)), "{reply:?}");
    let mut bob = Member {
        raw,
        user: "bob".into(),
    };
    let Rep::TokenWillExpire(w) = bob.next_push().await else {
        panic!("expected the login token's TokenWillExpire");
    };
    assert_eq!(w.channel_name, "");
    bob.join(ROOM).await;
    bob.join_topic(ROOM, "t1", "").await;
    assert_topic_event(
        &alice.next_event().await,
        REMOTE_JOIN,
        "bob",
        "t1",
        Some(""),
    );
    let closing = bob.raw.expect_closing(STEP).await;
    assert_eq!(closing.code, 4002, "TOKEN_EXPIRED: {closing:?}");
    assert_topic_event(&alice.next_event().await, REMOTE_LEAVE, "bob", "t1", None);
}

// ---------------------------------------------------------------------------------------
// Recovery: resume and rejoin
// ---------------------------------------------------------------------------------------

/// R52, R58, protocol.md: a session resumed with a STREAM position gets the topic
/// messages and topic events it missed — filtered by its follows, each once, in order —
/// then live pushes; its memberships, roles and follows lived on (no REMOTE_LEAVE for
/// it); a STREAM position of a channel the session lacks is in `unrestored_channels`.
#[tokio::test]
async fn r58_resume_replays_missed_topic_messages_and_events_once_filtered() {
    let server = TestServer::start().await;
    let mut raw = server.raw().await;
    let login = raw
        .login_resume("alice", "", Vec::new(), 30, "stream-test")
        .await;
    let mut alice = Member {
        raw,
        user: "alice".into(),
    };
    alice.join(ROOM).await;
    let mut bob = Member::in_room(&server, "bob").await;
    let mut carol = Member::in_room(&server, "carol").await;
    bob.join_topic(ROOM, "t1", "").await;
    bob.join_topic(ROOM, "t2", "").await;
    carol.join_topic(ROOM, "t1", "").await;
    alice.join_topic(ROOM, "ta", "am").await;
    alice.subscribe(ROOM, "t1", &["bob"]).await;
    bob.subscribe(ROOM, "ta", &["alice"]).await;
    bob.publish(ROOM, "t1", "b0").await;
    for _ in 0..3 {
        alice.next_event().await;
    }
    let seen = alice.next_message().await;
    assert_eq!(text_of(&seen), "b0");
    drop(alice); // connection lost; the session waits 30 s

    bob.publish(ROOM, "t1", "b1").await;
    bob.publish(ROOM, "t1", "b2").await;
    carol.publish(ROOM, "t1", "c1").await; // not followed
    bob.publish(ROOM, "t2", "x").await; // bob is followed in t1 only
    let mut dave = Member::in_room(&server, "dave").await;
    dave.join_topic(ROOM, "t3", "dm").await;
    bob.publish(ROOM, "t1", "b3").await;
    carol.leave_topic(ROOM, "t1").await;

    let mut raw = server.raw().await;
    let positions = vec![
        resume_position(pb::ChannelType::Stream as i32, ROOM, seen.position),
        resume_position(pb::ChannelType::Stream as i32, "ghost", seen.position),
        resume_position(pb::ChannelType::User as i32, "alice", login.user_position),
    ];
    let resumed = raw
        .login_resume("alice", &login.session_id, positions, 30, "stream-test")
        .await;
    assert!(resumed.resumed, "{resumed:?}");
    assert_eq!(resumed.unrestored_channels, ["ghost"], "{resumed:?}");
    assert!(resumed.gap_channels.is_empty(), "{resumed:?}");
    let mut alice = Member {
        raw,
        user: "alice".into(),
    };

    let mut last = offset(&seen.position);
    let mut step = |p: &Option<pb::StreamPosition>| {
        let at = offset(p);
        assert!(at > last, "replay in offset order: {at} after {last}");
        last = at;
    };
    for expected in ["b1", "b2"] {
        let m = alice.next_message().await;
        assert_eq!(text_of(&m), expected);
        assert_eq!(
            (m.channel_type, m.topic_name.as_str()),
            (pb::ChannelType::Stream as i32, "t1")
        );
        step(&m.position);
    }
    let e = alice.next_event().await;
    assert_topic_event(&e, REMOTE_JOIN, "dave", "t3", Some("dm"));
    step(&e.position);
    let m = alice.next_message().await;
    assert_eq!(text_of(&m), "b3");
    step(&m.position);
    let e = alice.next_event().await;
    assert_topic_event(&e, REMOTE_LEAVE, "carol", "t1", None);
    step(&e.position);
    // After the replay, a fresh topic SNAPSHOT at the replay's position (R60).
    let snapshot = alice.next_event().await;
    assert_eq!(snapshot.event_type, pb::TopicEventType::Snapshot as i32);
    assert_eq!(offset(&snapshot.position), last, "as of the replay's end");

    // Then live, nothing twice; alice's role in ta lived on.
    bob.publish(ROOM, "t1", "live").await;
    assert_eq!(text_of(&alice.next_message().await), "live");
    alice.publish(ROOM, "ta", "a-live").await;
    let (events, m) = bob.next_message_after_events().await;
    assert_eq!(text_of(&m), "a-live");
    assert!(
        events
            .iter()
            .all(|e| !(e.publisher == "alice" && e.event_type == REMOTE_LEAVE)),
        "alice did not leave while she was away: {events:?}"
    );
}

/// protocol.md rejoin: a new session's JoinRequest with `since`, `topics` and
/// `subscriptions` restores the roles (the others see REMOTE_JOIN again) and the follows
/// before anything is delivered, replays what the followed publishers sent after
/// `since` (nothing else), then the SNAPSHOT; what cannot be restored is listed in
/// `restore_failures`.
#[tokio::test]
async fn rejoin_with_since_topics_and_subscriptions_restores_roles_follows_and_replays() {
    let server = TestServer::with(|c| c.apps[0].limits.max_joined_topics = 1).await;
    let mut alice = Member::in_room(&server, "alice").await;
    alice.join_topic(ROOM, "ta", "am").await;
    alice.subscribe(ROOM, "t1", &["bob"]).await;
    let mut bob = Member::in_room(&server, "bob").await;
    let mut carol = Member::in_room(&server, "carol").await;
    bob.join_topic(ROOM, "t1", "bm").await;
    carol.join_topic(ROOM, "t1", "cm").await;
    let mut dave = Member::in_room(&server, "dave").await;
    dave.subscribe(ROOM, "ta", &["alice"]).await;
    bob.publish(ROOM, "t1", "b0").await;
    for who in ["bob", "carol"] {
        assert_topic_event(&alice.next_event().await, REMOTE_JOIN, who, "t1", None);
    }
    let seen = alice.next_message().await;
    assert_eq!(text_of(&seen), "b0");
    drop(alice);

    bob.publish(ROOM, "t1", "b1").await;
    carol.publish(ROOM, "t1", "c1").await;
    // A new session (no session id) replaces the old one, which leaves the channel.
    let mut alice = Member::login(&server, "alice").await;
    let e = dave.next_event().await;
    assert_topic_event(&e, REMOTE_LEAVE, "alice", "ta", None);
    bob.publish(ROOM, "t1", "b2").await;

    let reply = alice
        .req(Req::Join(pb::JoinRequest {
            with_presence: Some(false),
            channel_name: ROOM.into(),
            token: rtc_token(ROOM, "alice", 3600),
            since: seen.position,
            topics: vec![
                pb::JoinTopicRequest {
                    channel_name: ROOM.into(),
                    topic_name: "ta".into(),
                    meta: "am".into(),
                    ..Default::default()
                },
                pb::JoinTopicRequest {
                    channel_name: ROOM.into(),
                    topic_name: "tb".into(),
                    ..Default::default()
                },
            ],
            subscriptions: vec![pb::SubscribeTopicRequest {
                channel_name: ROOM.into(),
                topic_name: "t1".into(),
                users: users(&["bob", "a/b"]),
            }],
            ..Default::default()
        }))
        .await;
    let Rep::Join(r) = reply else {
        panic!("rejoin failed: {reply:?}");
    };
    assert!(!r.gap, "{r:?}");
    let failures: BTreeSet<_> = r
        .restore_failures
        .iter()
        .map(|f| (f.topic_name.clone(), f.user.clone(), f.error_code))
        .collect();
    let expected: BTreeSet<_> = [
        ("tb".to_string(), String::new(), TOPIC_LIMIT),
        ("t1".to_string(), "a/b".to_string(), INVALID_PARAMS),
    ]
    .into_iter()
    .collect();
    assert_eq!(failures, expected, "{r:?}");

    // Replay of the followed publisher only, after `since`, then the SNAPSHOT.
    let mut last = offset(&seen.position);
    for expected in ["b1", "b2"] {
        let m = alice.next_message().await;
        assert_eq!(
            (text_of(&m).as_str(), m.publisher.as_str()),
            (expected, "bob")
        );
        assert!(offset(&m.position) > last);
        last = offset(&m.position);
    }
    let snapshot = alice.snapshot(ROOM).await;
    assert_eq!(
        snapshot_map(&snapshot),
        expected_map(&[
            ("t1", &[("bob", "bm"), ("carol", "cm")]),
            ("ta", &[("alice", "am")])
        ])
    );
    assert_eq!(snapshot.position, r.position);
    assert!(offset(&r.position) >= last);

    // The others see alice publish in ta again.
    assert_topic_event(
        &dave.next_event().await,
        REMOTE_JOIN,
        "alice",
        "ta",
        Some("am"),
    );
    // Live: follows and role restored; carol is still not followed.
    carol.publish(ROOM, "t1", "c2").await;
    bob.publish(ROOM, "t1", "b3").await;
    assert_eq!(text_of(&alice.next_message().await), "b3");
    alice.publish(ROOM, "ta", "a1").await;
    let m = dave.next_message().await;
    assert_eq!(
        (m.publisher.as_str(), text_of(&m).as_str()),
        ("alice", "a1")
    );
}

/// Rejoin with a position of another epoch (the channel's history is gone): `gap` is
/// set, nothing is replayed, the SNAPSHOT follows and live delivery works.
#[tokio::test]
async fn rejoin_with_a_position_of_another_epoch_reports_gap_and_snapshots() {
    let server = TestServer::start().await;
    let mut bob = Member::in_room(&server, "bob").await;
    bob.join_topic(ROOM, "t1", "").await;
    let p = bob.publish(ROOM, "t1", "before").await;
    let at = p.position.expect("position");
    let mut alice = Member::login(&server, "alice").await;
    let reply = alice
        .req(Req::Join(pb::JoinRequest {
            with_presence: Some(false),
            channel_name: ROOM.into(),
            token: rtc_token(ROOM, "alice", 3600),
            since: Some(pb::StreamPosition {
                epoch: at.epoch.wrapping_add(1),
                offset: 1,
            }),
            subscriptions: vec![pb::SubscribeTopicRequest {
                channel_name: ROOM.into(),
                topic_name: "t1".into(),
                users: users(&["bob"]),
            }],
            ..Default::default()
        }))
        .await;
    let Rep::Join(r) = reply else {
        panic!("rejoin failed: {reply:?}");
    };
    assert!(r.gap, "another epoch cannot be replayed: {r:?}");
    assert!(r.restore_failures.is_empty(), "{r:?}");
    let snapshot = alice.snapshot(ROOM).await;
    assert_eq!(
        snapshot_map(&snapshot),
        expected_map(&[("t1", &[("bob", "")])])
    );
    bob.publish(ROOM, "t1", "after").await;
    assert_eq!(text_of(&alice.next_message().await), "after");
}

// ---------------------------------------------------------------------------------------
// Name spaces
// ---------------------------------------------------------------------------------------

/// R75, protocol.md: a MESSAGE channel and a STREAM channel of the same name are
/// separate — a channel message is a MESSAGE push without topic, a topic message a
/// STREAM push — and `publish` refuses channel type STREAM with −10019.
#[tokio::test]
async fn message_and_stream_channels_of_one_name_are_separate() {
    let server = TestServer::start().await;
    let mut alice = Member::in_room(&server, "alice").await;
    alice.raw.subscribe(ROOM).await;
    let mut bob = Member::in_room(&server, "bob").await;
    bob.join_topic(ROOM, "t1", "").await;
    alice.subscribe(ROOM, "t1", &["bob"]).await;
    assert_topic_event(
        &alice.next_event().await,
        REMOTE_JOIN,
        "bob",
        "t1",
        Some(""),
    );

    let reply = bob.req(publish_text(ROOM, "to-message-channel")).await;
    assert!(matches!(reply, Rep::Publish(_)), "{reply:?}");
    bob.publish(ROOM, "t1", "to-topic").await;
    let m = alice.next_message().await;
    assert_eq!(m.channel_type, pb::ChannelType::Message as i32);
    assert_eq!(
        (m.topic_name.as_str(), text_of(&m).as_str()),
        ("", "to-message-channel")
    );
    let m = alice.next_message().await;
    assert_eq!(m.channel_type, pb::ChannelType::Stream as i32);
    assert_eq!(
        (m.topic_name.as_str(), text_of(&m).as_str()),
        ("t1", "to-topic")
    );

    let reply = bob
        .req(publish_body(
            pb::ChannelType::Stream,
            ROOM,
            pb::MessageType::String,
            Bytes::from_static(b"x"),
        ))
        .await;
    assert_error(reply, -10019, "publish", &[]);
    // Unsubscribing the MESSAGE channel leaves the STREAM membership alone.
    let reply = alice
        .req(Req::Unsubscribe(pb::UnsubscribeRequest {
            channel_name: ROOM.into(),
        }))
        .await;
    assert!(matches!(reply, Rep::Unsubscribe(_)), "{reply:?}");
    bob.publish(ROOM, "t1", "still").await;
    assert_eq!(text_of(&alice.next_message().await), "still");
}

/// Apps are separate: a stream channel of the same name in another app shares no
/// topics, events or messages.
#[tokio::test]
async fn stream_channels_of_different_apps_are_separate() {
    let server = TestServer::start().await;
    let mut alice = Member::in_room(&server, "alice").await;
    alice.subscribe(ROOM, "t1", &["bob"]).await;

    let mut raw = server.raw().await;
    let tok = token_with(OTHER_APP_ID, OTHER_CERT, "bob", 3600, now_secs());
    let reply = raw.login(OTHER_APP_ID, "bob", &tok, 60).await;
    assert!(matches!(reply, Rep::Login(_)), "{reply:?}");
    let mut other_bob = Member {
        raw,
        user: "bob".into(),
    };
    let rtc = switchboard_token::build_rtc_token(
        OTHER_APP_ID,
        OTHER_CERT,
        ROOM,
        "bob",
        RtcRole::Publisher,
        3600,
        3600,
        now_secs(),
    )
    .expect("token builds");
    assert!(matches!(other_bob.try_join(ROOM, &rtc).await, Rep::Join(_)));
    let snapshot = other_bob.snapshot(ROOM).await;
    assert!(snapshot.topics.is_empty(), "{snapshot:?}");
    other_bob.join_topic(ROOM, "t1", "").await;
    other_bob.publish(ROOM, "t1", "other-app").await;

    let mut carol = Member::in_room(&server, "carol").await;
    carol.join_topic(ROOM, "sentinel", "").await;
    assert!(
        alice
            .texts_until(REMOTE_JOIN, "carol", "sentinel")
            .await
            .is_empty()
    );
    let mut dave = Member::login(&server, "dave").await;
    let (_, snapshot) = dave.join(ROOM).await;
    assert_eq!(
        snapshot_map(&snapshot),
        expected_map(&[("sentinel", &[("carol", "")])])
    );
}
