//! Presence over real sockets, at the wire level (docs/protocol.md "Presence"; api.md §5,
//! §9.3, §10.5, R84–R87, R116–R133): the SNAPSHOT after a subscribe or a join, the
//! REMOTE_JOIN / LEAVE / TIMEOUT / STATE_CHANGED events and who gets them, quiet
//! members, a lost connection resumed in time or not, whoNow and its paging, whereNow,
//! temporary state (set / get / remove, before entering, limits), interval mode, and the
//! replay of missed presence events on resume.
//!
//! Each test is named after the rule it checks. Presence events travel in the channel's
//! stream, ordered with its messages, so "nothing arrives" is shown with a sentinel that
//! does arrive (a message, or another member's event): a push that should not have been
//! sent would come before it. Every push read through [`Member`] is checked to carry a
//! position above the previous one of its channel.

mod common;

use common::*;
use futures_util::StreamExt;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;
use switchboard_protocol::now_ms;
use switchboard_protocol::pb::{
    self, ClientMessage, client_message::Body as Req, server_message::Body as Rep,
};
use switchboard_server::ServerConfig;
use switchboard_token::RtcRole;
use tokio::time::{Instant, sleep};

/// The message channel most tests use.
const ROOM: &str = "room";
/// The stream channel most tests use.
const STAGE: &str = "stage";

const SNAPSHOT: i32 = pb::PresenceEventType::Snapshot as i32;
const INTERVAL: i32 = pb::PresenceEventType::Interval as i32;
const JOIN: i32 = pb::PresenceEventType::RemoteJoin as i32;
const LEAVE: i32 = pb::PresenceEventType::RemoteLeave as i32;
const TIMEOUT: i32 = pb::PresenceEventType::RemoteTimeout as i32;
const STATE_CHANGED: i32 = pb::PresenceEventType::RemoteStateChanged as i32;
const OUT_OF_SERVICE: i32 = pb::PresenceEventType::ErrorOutOfService as i32;

// Error codes of the contract (api.md §12.2).
const INVALID_ARGUMENT: i32 = -13003;
const STATE_COUNT_OVERFLOW: i32 = -13005;
const INVALID_STATE_KEY: i32 = -13006;
const STATE_KEY_TOO_LONG: i32 = -13008;
const STATE_VALUE_TOO_LONG: i32 = -13009;
const DUPLICATE_KEY: i32 = -13010;
const USER_NOT_EXIST: i32 = -13011;
const PRESENCE_INACTIVE: i32 = -13014;

/// A member's state, ordered for comparisons.
type St = BTreeMap<String, String>;

/// State items as written in a test.
type Pairs<'a> = &'a [(&'a str, &'a str)];

fn st(pairs: &[(&str, &str)]) -> St {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn wire(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn sorted(m: &HashMap<String, String>) -> St {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// `n` keys `{prefix}00`, `{prefix}01`, … with value `v`.
fn keys(n: usize, prefix: &str) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("{prefix}{i:02}"), "v".to_string()))
        .collect()
}

fn refs(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

fn offset(p: &Option<pb::StreamPosition>) -> u64 {
    p.as_ref().expect("a position").offset
}

fn type_name(ty: i32) -> &'static str {
    match ty {
        MESSAGE => "MESSAGE",
        STREAM => "STREAM",
        USER => "USER",
        _ => "?",
    }
}

/// Presence timeouts down to 1 s allowed.
fn short_presence(c: &mut ServerConfig) {
    c.presence_timeout_range = (1, 300);
}

/// Applies `f` to the limits of every configured app.
fn limits(c: &mut ServerConfig, f: impl Fn(&mut switchboard_server::AppLimits)) {
    for app in &mut c.apps {
        f(&mut app.limits);
    }
}

/// An RTC token (publisher) of [`APP_ID`] for `channel` and `uid`, valid `secs` seconds.
fn rtc_token(channel: &str, uid: &str, secs: u32) -> String {
    switchboard_token::build_rtc_token(
        APP_ID,
        CERT,
        channel,
        uid,
        RtcRole::Publisher,
        secs,
        secs,
        now_secs(),
    )
    .expect("RTC token builds")
}

/// A subscribe request; `presence` and `quiet` set explicitly.
fn sub_request(
    channel: &str,
    presence: bool,
    quiet: bool,
    state: &[(&str, &str)],
) -> pb::SubscribeRequest {
    pb::SubscribeRequest {
        channel_name: channel.into(),
        with_presence: Some(presence),
        be_quiet: Some(quiet),
        state: wire(state),
        ..Default::default()
    }
}

/// A join request with a valid one-hour token for `user`.
fn join_request(
    channel: &str,
    user: &str,
    presence: bool,
    quiet: bool,
    state: &[(&str, &str)],
) -> pb::JoinRequest {
    pb::JoinRequest {
        channel_name: channel.into(),
        token: rtc_token(channel, user, 3600),
        with_presence: Some(presence),
        be_quiet: Some(quiet),
        state: wire(state),
        ..Default::default()
    }
}

/// Unwraps an error reply and checks its code and operation.
fn assert_error(reply: Rep, code: i32, op: &str) -> pb::Error {
    let e = expect_error(reply);
    assert_eq!(e.code, code, "{op}: {e:?}");
    assert_eq!(e.operation, op, "{e:?}");
    assert!(!e.reason.is_empty(), "an error names its reason: {e:?}");
    e
}

/// Checks a single (REMOTE_*) event.
fn assert_event(e: &pb::PresenceEvent, kind: i32, ty: i32, channel: &str, publisher: &str) {
    assert_eq!(
        (
            e.event_type,
            type_name(e.channel_type),
            e.channel_name.as_str(),
            e.publisher.as_str()
        ),
        (kind, type_name(ty), channel, publisher),
        "unexpected event {e:?}"
    );
    assert!(
        e.interval.is_none(),
        "only INTERVAL carries interval: {e:?}"
    );
    assert!(
        e.snapshot.is_empty(),
        "only SNAPSHOT carries members: {e:?}"
    );
    if kind != STATE_CHANGED {
        assert!(e.state_changed.is_empty(), "{e:?}");
    }
}

/// The members of a SNAPSHOT with their states; panics on a duplicate.
fn snapshot_states(e: &pb::PresenceEvent) -> BTreeMap<String, St> {
    let map: BTreeMap<String, St> = e
        .snapshot
        .iter()
        .map(|u| (u.user_id.clone(), sorted(&u.states)))
        .collect();
    assert_eq!(map.len(), e.snapshot.len(), "a member listed twice: {e:?}");
    map
}

fn members(list: &[(&str, &[(&str, &str)])]) -> BTreeMap<String, St> {
    list.iter().map(|(u, s)| (u.to_string(), st(s))).collect()
}

// ---------------------------------------------------------------------------------------
// Raw members
// ---------------------------------------------------------------------------------------

/// A raw connection logged in as `user`, with presence calls. Every push read is
/// checked to carry a position above the previous push of its channel.
struct Member {
    raw: RawClient,
    user: String,
    last: HashMap<(i32, String), u64>,
}

impl Member {
    fn new(raw: RawClient, user: &str) -> Member {
        Member {
            raw,
            user: user.into(),
            last: HashMap::new(),
        }
    }

    /// Logs `user` in (heartbeat 60 s, default presence timeout).
    async fn login(server: &TestServer, user: &str) -> Member {
        Member::new(server.raw_login(user).await, user)
    }

    /// Logs `user` in with a presence timeout of `presence` seconds.
    async fn login_with(
        server: &TestServer,
        user: &str,
        presence: u32,
    ) -> (Member, pb::LoginReply) {
        let mut raw = server.raw().await;
        let reply = raw
            .login_resume(user, "", Vec::new(), presence, "presence-test")
            .await;
        assert_eq!(reply.presence_timeout, presence, "{reply:?}");
        (Member::new(raw, user), reply)
    }

    async fn req(&mut self, body: Req) -> Rep {
        self.raw.request(body).await
    }

    /// Subscribes with `req`; returns the reply and, with presence, the SNAPSHOT that
    /// must be the next push (at the reply's position).
    async fn subscribe_req(
        &mut self,
        req: pb::SubscribeRequest,
    ) -> (pb::SubscribeReply, Option<pb::PresenceEvent>) {
        let presence = req.with_presence.unwrap_or(true);
        let channel = req.channel_name.clone();
        match self.req(Req::Subscribe(req)).await {
            Rep::Subscribe(r) => {
                assert_eq!(r.channel_name, channel, "{r:?}");
                let snapshot = match presence {
                    true => Some(self.snapshot(MESSAGE, &channel, &r.position).await),
                    false => None,
                };
                (r, snapshot)
            }
            other => panic!("{} could not subscribe {channel}: {other:?}", self.user),
        }
    }

    /// Subscribes with the given options.
    async fn sub_with(
        &mut self,
        channel: &str,
        presence: bool,
        quiet: bool,
        state: &[(&str, &str)],
    ) -> (pb::SubscribeReply, Option<pb::PresenceEvent>) {
        self.subscribe_req(sub_request(channel, presence, quiet, state))
            .await
    }

    /// Subscribes visibly with presence; returns the reply and the SNAPSHOT.
    async fn sub(&mut self, channel: &str) -> (pb::SubscribeReply, pb::PresenceEvent) {
        let (r, s) = self.sub_with(channel, true, false, &[]).await;
        (r, s.expect("a SNAPSHOT"))
    }

    async fn unsubscribe(&mut self, channel: &str) {
        let reply = self
            .req(Req::Unsubscribe(pb::UnsubscribeRequest {
                channel_name: channel.into(),
            }))
            .await;
        assert!(
            matches!(&reply, Rep::Unsubscribe(r) if r.channel_name == channel),
            "{} could not unsubscribe {channel}: {reply:?}",
            self.user
        );
    }

    /// Joins with `req`; reads the topic SNAPSHOT and, with presence, the presence
    /// SNAPSHOT after it (both at the reply's position).
    async fn join_req(
        &mut self,
        req: pb::JoinRequest,
    ) -> (pb::JoinReply, Option<pb::PresenceEvent>) {
        let presence = req.with_presence.unwrap_or(true);
        let channel = req.channel_name.clone();
        match self.req(Req::Join(req)).await {
            Rep::Join(r) => {
                assert_eq!(r.channel_name, channel, "{r:?}");
                match self.next_push().await {
                    Rep::Topic(t) => {
                        assert_eq!(t.event_type, pb::TopicEventType::Snapshot as i32, "{t:?}");
                        assert_eq!(t.channel_name, channel);
                        assert_eq!(
                            t.position, r.position,
                            "topic SNAPSHOT at the reply's position"
                        );
                    }
                    other => panic!("{} expected the topic SNAPSHOT, got {other:?}", self.user),
                }
                let snapshot = match presence {
                    true => Some(self.snapshot(STREAM, &channel, &r.position).await),
                    false => None,
                };
                (r, snapshot)
            }
            other => panic!("{} could not join {channel}: {other:?}", self.user),
        }
    }

    async fn join_with(
        &mut self,
        channel: &str,
        presence: bool,
        quiet: bool,
        state: &[(&str, &str)],
    ) -> (pb::JoinReply, Option<pb::PresenceEvent>) {
        let req = join_request(channel, &self.user, presence, quiet, state);
        self.join_req(req).await
    }

    /// Joins visibly with presence; returns the reply and the presence SNAPSHOT.
    async fn join(&mut self, channel: &str) -> (pb::JoinReply, pb::PresenceEvent) {
        let (r, s) = self.join_with(channel, true, false, &[]).await;
        (r, s.expect("a presence SNAPSHOT"))
    }

    async fn leave(&mut self, channel: &str) {
        let reply = self
            .req(Req::Leave(pb::LeaveRequest {
                channel_name: channel.into(),
            }))
            .await;
        assert!(
            matches!(&reply, Rep::Leave(r) if r.channel_name == channel),
            "{} could not leave {channel}: {reply:?}",
            self.user
        );
    }

    async fn logout(mut self) {
        let reply = self.req(Req::Logout(pb::LogoutRequest {})).await;
        assert!(matches!(reply, Rep::Logout(_)), "logout: {reply:?}");
        let closing = self.raw.expect_closing(STEP).await;
        assert_eq!(closing.code, 4000, "{closing:?}");
    }

    async fn try_set_state(&mut self, ty: i32, channel: &str, pairs: &[(&str, &str)]) -> Rep {
        self.req(Req::SetState(pb::SetStateRequest {
            channel_type: ty,
            channel_name: channel.into(),
            states: wire(pairs),
        }))
        .await
    }

    async fn set_state(&mut self, ty: i32, channel: &str, pairs: &[(&str, &str)]) {
        let reply = self.try_set_state(ty, channel, pairs).await;
        assert!(
            matches!(reply, Rep::SetState(_)),
            "{} setState {pairs:?} in {channel}: {reply:?}",
            self.user
        );
    }

    async fn try_remove_state(&mut self, ty: i32, channel: &str, keys: &[&str]) -> Rep {
        self.req(Req::RemoveState(pb::RemoveStateRequest {
            channel_type: ty,
            channel_name: channel.into(),
            keys: keys.iter().map(|k| k.to_string()).collect(),
        }))
        .await
    }

    async fn remove_state(&mut self, ty: i32, channel: &str, keys: &[&str]) {
        let reply = self.try_remove_state(ty, channel, keys).await;
        assert!(
            matches!(reply, Rep::RemoveState(_)),
            "{} removeState {keys:?} in {channel}: {reply:?}",
            self.user
        );
    }

    async fn try_get_state(&mut self, ty: i32, channel: &str, user: &str) -> Rep {
        self.req(Req::GetState(pb::GetStateRequest {
            channel_type: ty,
            channel_name: channel.into(),
            user_id: user.into(),
        }))
        .await
    }

    async fn get_state(&mut self, ty: i32, channel: &str, user: &str) -> St {
        match self.try_get_state(ty, channel, user).await {
            Rep::GetState(r) => {
                assert_eq!(r.user_id, user, "{r:?}");
                sorted(&r.states)
            }
            other => panic!("getState of {user} in {channel}: {other:?}"),
        }
    }

    /// getState of `user` must answer −13011.
    async fn assert_absent(&mut self, ty: i32, channel: &str, user: &str) {
        let reply = self.try_get_state(ty, channel, user).await;
        let e = assert_error(reply, USER_NOT_EXIST, "getState");
        assert!(e.reason.contains(user), "{e:?}");
    }

    async fn try_who_now(&mut self, req: pb::WhoNowRequest) -> Rep {
        self.req(Req::WhoNow(req)).await
    }

    async fn who_now(&mut self, req: pb::WhoNowRequest) -> pb::WhoNowReply {
        match self.try_who_now(req.clone()).await {
            Rep::WhoNow(r) => {
                assert!(r.timestamp > 0, "{r:?}");
                r
            }
            other => panic!("whoNow {req:?}: {other:?}"),
        }
    }

    /// Every visible member of a channel (first page, default page size suffices).
    async fn who(&mut self, ty: i32, channel: &str) -> Vec<String> {
        let r = self
            .who_now(pb::WhoNowRequest {
                channel_type: ty,
                channel_name: channel.into(),
                ..Default::default()
            })
            .await;
        assert!(r.next_page.is_empty(), "one page expected: {r:?}");
        r.occupants.into_iter().map(|o| o.user_id).collect()
    }

    async fn where_now(&mut self, user: &str) -> Vec<(i32, String)> {
        match self
            .req(Req::WhereNow(pb::WhereNowRequest {
                user_id: user.into(),
            }))
            .await
        {
            Rep::WhereNow(r) => r
                .channels
                .into_iter()
                .map(|c| (c.channel_type, c.channel_name))
                .collect(),
            other => panic!("whereNow {user}: {other:?}"),
        }
    }

    /// Publishes `text` to MESSAGE channel `channel` (a sentinel).
    async fn publish(&mut self, channel: &str, text: &str) -> pb::PublishReply {
        match self.req(publish_text(channel, text)).await {
            Rep::Publish(r) => r,
            other => panic!("{} could not publish to {channel}: {other:?}", self.user),
        }
    }

    /// The next push; checks that its position is above the previous one of its channel.
    async fn next_push(&mut self) -> Rep {
        let who = self.user.clone();
        let body = self
            .raw
            .next_push(STEP)
            .await
            .unwrap_or_else(|| panic!("{who}: connection closed while waiting for a push"))
            .body
            .expect("push has a body");
        let at = match &body {
            Rep::Presence(e) => Some((e.channel_type, e.channel_name.clone(), &e.position)),
            Rep::Message(m) if m.channel_type != USER => {
                Some((m.channel_type, m.channel_name.clone(), &m.position))
            }
            Rep::Topic(t) => Some((STREAM, t.channel_name.clone(), &t.position)),
            _ => None,
        };
        // ERROR_OUT_OF_SERVICE takes the SNAPSHOT's place without being in the stream.
        let at = at.filter(|(_, _, p)| {
            p.is_some() || !matches!(&body, Rep::Presence(e) if e.event_type == OUT_OF_SERVICE)
        });
        if let Some((ty, name, p)) = at {
            let o = offset(p);
            let snapshot = matches!(&body, Rep::Presence(e) if e.event_type == SNAPSHOT)
                || matches!(&body, Rep::Topic(t) if t.event_type == pb::TopicEventType::Snapshot as i32);
            if let Some(prev) = self.last.get(&(ty, name.clone())) {
                if snapshot {
                    assert!(o >= *prev, "{who}: SNAPSHOT at {o} behind {prev}: {body:?}");
                } else {
                    assert!(o > *prev, "{who}: push at {o} not after {prev}: {body:?}");
                }
            }
            self.last.insert((ty, name), o);
        }
        body
    }

    /// The next push, which must be a presence event (timestamp checked). A topic
    /// SNAPSHOT, which every resume into a stream channel brings (R60), is skipped.
    async fn next_event(&mut self) -> pb::PresenceEvent {
        let mut push = self.next_push().await;
        while matches!(&push, Rep::Topic(t) if t.event_type == pb::TopicEventType::Snapshot as i32)
        {
            push = self.next_push().await;
        }
        match push {
            Rep::Presence(e) => {
                let now = now_ms();
                assert!(
                    e.timestamp + 60_000 > now && e.timestamp <= now + 1_000,
                    "server time in ms: {e:?}"
                );
                e
            }
            other => panic!("{} expected a presence event, got {other:?}", self.user),
        }
    }

    /// The next push must be a SNAPSHOT of `channel` at `at`.
    async fn snapshot(
        &mut self,
        ty: i32,
        channel: &str,
        at: &Option<pb::StreamPosition>,
    ) -> pb::PresenceEvent {
        let e = self.next_event().await;
        assert_eq!(
            e.event_type, SNAPSHOT,
            "{} expected a SNAPSHOT: {e:?}",
            self.user
        );
        assert_eq!(
            (type_name(e.channel_type), e.channel_name.as_str()),
            (type_name(ty), channel)
        );
        assert_eq!(e.publisher, "", "a SNAPSHOT names no publisher");
        assert_eq!(&e.position, at, "the SNAPSHOT is at the reply's position");
        assert!(e.interval.is_none() && e.state_changed.is_empty(), "{e:?}");
        e
    }

    /// The next push must be the single event `kind` about `publisher`.
    async fn expect_event(
        &mut self,
        kind: i32,
        ty: i32,
        channel: &str,
        publisher: &str,
    ) -> pb::PresenceEvent {
        let e = self.next_event().await;
        assert_event(&e, kind, ty, channel, publisher);
        e
    }

    /// The next push must be REMOTE_STATE_CHANGED of `publisher` with `state`.
    async fn expect_state(
        &mut self,
        ty: i32,
        channel: &str,
        publisher: &str,
        state: &[(&str, &str)],
    ) {
        let e = self
            .expect_event(STATE_CHANGED, ty, channel, publisher)
            .await;
        assert_eq!(
            sorted(&e.state_changed),
            st(state),
            "the whole state (R120): {e:?}"
        );
    }

    /// The next push must be the MESSAGE push `text` of `channel`.
    async fn expect_message(&mut self, channel: &str, text: &str) -> pb::MessagePush {
        match self.next_push().await {
            Rep::Message(m) => {
                assert_eq!(m.channel_name, channel, "{m:?}");
                assert_eq!(
                    &m.payload[..],
                    text.as_bytes(),
                    "{} expected {text:?}: {m:?}",
                    self.user
                );
                m
            }
            other => panic!("{} expected the message {text:?}, got {other:?}", self.user),
        }
    }

    /// The next `n` presence events, ordered by channel type (for one action that
    /// produces an event in several channels).
    async fn events_by_type(&mut self, n: usize) -> Vec<pb::PresenceEvent> {
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(self.next_event().await);
        }
        v.sort_by_key(|e| e.channel_type);
        v
    }
}

// ---------------------------------------------------------------------------------------
// SNAPSHOT (§9.3, R80, R92)
// ---------------------------------------------------------------------------------------

/// R80, §9.3: after the SubscribeReply a member with presence gets a SNAPSHOT at the
/// reply's position with every visible member (itself included) and its state — a
/// member without presence is still listed, a quiet one is not — and the events that
/// follow have larger offsets.
#[tokio::test]
async fn r80_subscribe_snapshot_lists_every_visible_member_with_state_at_reply_position() {
    let server = TestServer::start().await;
    let mut alice = Member::login(&server, "alice").await;
    let (_, first) = alice.sub_with(ROOM, true, false, &[("mood", "calm")]).await;
    assert_eq!(
        snapshot_states(&first.expect("SNAPSHOT")),
        members(&[("alice", &[("mood", "calm")])])
    );
    let mut bob = Member::login(&server, "bob").await;
    bob.sub_with(ROOM, false, false, &[("seat", "4"), ("hand", "up")])
        .await;
    let mut quinn = Member::login(&server, "quinn").await;
    quinn.sub_with(ROOM, true, true, &[("secret", "x")]).await;

    let mut carol = Member::login(&server, "carol").await;
    let (reply, snapshot) = carol.sub(ROOM).await;
    assert_eq!(
        snapshot_states(&snapshot),
        members(&[
            ("alice", &[("mood", "calm")]),
            ("bob", &[("seat", "4"), ("hand", "up")]),
            ("carol", &[]),
        ])
    );
    assert!(snapshot.timestamp > 0);

    // The next event comes after the SNAPSHOT's position (checked by next_push too).
    let mut dave = Member::login(&server, "dave").await;
    dave.sub(ROOM).await;
    let e = carol.expect_event(JOIN, MESSAGE, ROOM, "dave").await;
    assert_eq!(offset(&e.position), offset(&reply.position) + 1);
}

/// R92, §9.3: after a join the topic SNAPSHOT is followed by the presence SNAPSHOT of
/// the stream channel (channel type STREAM, at the JoinReply's position) with every
/// visible member and its state; a message channel of the same name is separate.
#[tokio::test]
async fn r92_join_presence_snapshot_follows_topic_snapshot_at_reply_position() {
    let server = TestServer::start().await;
    let mut alice = Member::login(&server, "alice").await;
    alice
        .join_with(STAGE, true, false, &[("role", "host")])
        .await;
    let mut bob = Member::login(&server, "bob").await;
    bob.join_with(STAGE, false, true, &[("hidden", "1")]).await;
    let mut erin = Member::login(&server, "erin").await;
    erin.join_with(STAGE, false, false, &[]).await;

    let mut dave = Member::login(&server, "dave").await;
    let (reply, snapshot) = dave.join_with(STAGE, true, false, &[("mic", "on")]).await;
    assert_eq!(
        snapshot_states(&snapshot.expect("presence SNAPSHOT")),
        members(&[
            ("alice", &[("role", "host")]),
            ("dave", &[("mic", "on")]),
            ("erin", &[]),
        ])
    );
    assert!(reply.position.is_some());

    // The MESSAGE channel "stage" is another channel: only its own subscriber.
    let mut eve = Member::login(&server, "eve").await;
    let (_, snapshot) = eve.sub(STAGE).await;
    assert_eq!(snapshot_states(&snapshot), members(&[("eve", &[])]));
    // And alice sees dave's REMOTE_JOIN in the STREAM channel only.
    alice.expect_event(JOIN, STREAM, STAGE, "erin").await;
    alice.expect_event(JOIN, STREAM, STAGE, "dave").await;
}

// ---------------------------------------------------------------------------------------
// Events and their recipients (R79, R82, R116, R117, R120)
// ---------------------------------------------------------------------------------------

/// R116: a member that subscribed or joined with `with_presence: false` gets no
/// SNAPSHOT and no presence event, while its messages and topic events still come; one
/// with `with_message: false` and presence gets the presence events but no messages.
#[tokio::test]
async fn r116_members_without_presence_get_no_snapshot_and_no_presence_events() {
    let server = TestServer::start().await;
    let mut alice = Member::login(&server, "alice").await;
    alice.sub_with(ROOM, false, false, &[]).await;
    alice.join_with(STAGE, false, false, &[]).await;
    let mut mia = Member::login(&server, "mia").await;
    mia.subscribe_req(pb::SubscribeRequest {
        with_message: Some(false),
        ..sub_request(ROOM, true, false, &[])
    })
    .await;

    let mut bob = Member::login(&server, "bob").await;
    bob.sub(ROOM).await;
    bob.join(STAGE).await;
    bob.set_state(MESSAGE, ROOM, &[("a", "1")]).await;
    bob.set_state(STREAM, STAGE, &[("b", "2")]).await;
    bob.unsubscribe(ROOM).await;
    bob.leave(STAGE).await;

    let mut carol = Member::login(&server, "carol").await;
    carol.publish(ROOM, "sentinel").await;
    alice.expect_message(ROOM, "sentinel").await;
    carol.join_with(STAGE, false, false, &[]).await;
    let reply = carol
        .req(Req::JoinTopic(pb::JoinTopicRequest {
            channel_name: STAGE.into(),
            topic_name: "t".into(),
            ..Default::default()
        }))
        .await;
    assert!(matches!(reply, Rep::JoinTopic(_)), "{reply:?}");
    match alice.next_push().await {
        Rep::Topic(t) => {
            assert_eq!(t.event_type, pb::TopicEventType::RemoteJoin as i32, "{t:?}");
            assert_eq!(t.publisher, "carol");
        }
        other => panic!("expected carol's topic REMOTE_JOIN first, got {other:?}"),
    }

    // mia: presence events without messages (the sentinel is not delivered to it).
    mia.expect_event(JOIN, MESSAGE, ROOM, "bob").await;
    mia.expect_state(MESSAGE, ROOM, "bob", &[("a", "1")]).await;
    mia.expect_event(LEAVE, MESSAGE, ROOM, "bob").await;
    carol.sub_with(ROOM, false, false, &[]).await;
    mia.expect_event(JOIN, MESSAGE, ROOM, "carol").await;
}

/// R79, R81, R82, R117, R120: in a message channel the other members with presence get
/// REMOTE_JOIN, REMOTE_STATE_CHANGED (whole state) and REMOTE_LEAVE naming the member
/// in `publisher`, in the channel's stream with consecutive offsets; a repeated
/// subscribe sends no second REMOTE_JOIN; the member never hears of itself.
#[tokio::test]
async fn r79_r82_r117_r120_events_reach_others_with_presence_never_the_actor() {
    let server = TestServer::start().await;
    let mut alice = Member::login(&server, "alice").await;
    alice.sub(ROOM).await;
    // sam is a visible member without presence: alice hears of it, it hears nothing.
    let mut sam = Member::login(&server, "sam").await;
    sam.sub_with(ROOM, false, false, &[]).await;
    let e = alice.expect_event(JOIN, MESSAGE, ROOM, "sam").await;
    let start = offset(&e.position);
    let mut carol = Member::login(&server, "carol").await;

    let mut bob = Member::login(&server, "bob").await;
    bob.sub_with(ROOM, true, false, &[("a", "1")]).await;
    // Subscribing again replaces options (R81): a new SNAPSHOT, no new REMOTE_JOIN.
    let (_, again) = bob.sub_with(ROOM, true, false, &[]).await;
    assert_eq!(
        snapshot_states(&again.expect("SNAPSHOT"))["bob"],
        st(&[("a", "1")])
    );
    bob.set_state(MESSAGE, ROOM, &[("b", "2")]).await;
    carol.publish(ROOM, "s1").await;
    // Nothing about itself reaches bob: the sentinel comes first.
    bob.expect_message(ROOM, "s1").await;
    bob.unsubscribe(ROOM).await;
    carol.publish(ROOM, "s2").await;

    let e = alice.expect_event(JOIN, MESSAGE, ROOM, "bob").await;
    assert_eq!(offset(&e.position), start + 1);
    let e = alice.next_event().await;
    assert_event(&e, STATE_CHANGED, MESSAGE, ROOM, "bob");
    assert_eq!(sorted(&e.state_changed), st(&[("a", "1"), ("b", "2")]));
    assert_eq!(offset(&e.position), start + 2);
    let m = alice.expect_message(ROOM, "s1").await;
    assert_eq!(offset(&m.position), start + 3);
    let e = alice.expect_event(LEAVE, MESSAGE, ROOM, "bob").await;
    assert_eq!(offset(&e.position), start + 4);
    alice.expect_message(ROOM, "s2").await;

    // Without presence: only the messages.
    sam.expect_message(ROOM, "s1").await;
    sam.expect_message(ROOM, "s2").await;
}

/// R82, R94, R28, §9.3: REMOTE_LEAVE for an unsubscribe, a stream channel leave, a
/// logout (every channel) and a kick by a newer login of the same user id; the newer
/// session entering again is a REMOTE_JOIN. Stream channel events carry STREAM.
#[tokio::test]
async fn r82_r94_leave_logout_and_kick_give_remote_leave_in_each_channel() {
    let server = TestServer::start().await;
    let mut alice = Member::login(&server, "alice").await;
    alice.sub(ROOM).await;
    alice.join(STAGE).await;

    let mut bob = Member::login(&server, "bob").await;
    bob.sub(ROOM).await;
    bob.join(STAGE).await;
    alice.expect_event(JOIN, MESSAGE, ROOM, "bob").await;
    alice.expect_event(JOIN, STREAM, STAGE, "bob").await;
    bob.leave(STAGE).await;
    alice.expect_event(LEAVE, STREAM, STAGE, "bob").await;
    bob.join(STAGE).await;
    alice.expect_event(JOIN, STREAM, STAGE, "bob").await;
    bob.logout().await;
    let v = alice.events_by_type(2).await;
    assert_event(&v[0], LEAVE, MESSAGE, ROOM, "bob");
    assert_event(&v[1], LEAVE, STREAM, STAGE, "bob");

    let mut carol = Member::login(&server, "carol").await;
    carol.sub(ROOM).await;
    carol.join(STAGE).await;
    alice.expect_event(JOIN, MESSAGE, ROOM, "carol").await;
    alice.expect_event(JOIN, STREAM, STAGE, "carol").await;
    let mut carol2 = Member::login(&server, "carol").await;
    let closing = carol.raw.expect_closing(STEP).await;
    assert_eq!(closing.code, 4001, "SAME_UID_LOGIN: {closing:?}");
    let v = alice.events_by_type(2).await;
    assert_event(&v[0], LEAVE, MESSAGE, ROOM, "carol");
    assert_event(&v[1], LEAVE, STREAM, STAGE, "carol");
    carol2.sub(ROOM).await;
    alice.expect_event(JOIN, MESSAGE, ROOM, "carol").await;
    assert_eq!(alice.who(MESSAGE, ROOM).await, vec!["alice", "carol"]);
    assert_eq!(alice.who(STREAM, STAGE).await, vec!["alice"]);
}

/// T55, §9.3: a stream channel token that lapses takes the member out of the channel:
/// the others get REMOTE_LEAVE (STREAM), its state there is gone.
#[tokio::test]
async fn t55_channel_token_expiry_gives_remote_leave() {
    let server = TestServer::start().await;
    let mut alice = Member::login(&server, "alice").await;
    alice.join(STAGE).await;
    let mut bob = Member::login(&server, "bob").await;
    let mut req = join_request(STAGE, "bob", true, false, &[("k", "v")]);
    req.token = rtc_token(STAGE, "bob", 2);
    let (reply, _) = bob.join_req(req).await;
    let expires = reply.token_expires_at;
    assert!(expires > 0);
    alice.expect_event(JOIN, STREAM, STAGE, "bob").await;
    assert_eq!(
        alice.get_state(STREAM, STAGE, "bob").await,
        st(&[("k", "v")])
    );
    alice.expect_event(LEAVE, STREAM, STAGE, "bob").await;
    assert!(now_ms() >= expires * 1000, "not before the expiry");
    alice.assert_absent(STREAM, STAGE, "bob").await;
    assert_eq!(alice.who(STREAM, STAGE).await, vec!["alice"]);
}

/// R120, R127: REMOTE_STATE_CHANGED carries the member's whole state after each set
/// (merged: new keys added, given keys overwritten, others kept) and each remove, as
/// getState does; state is per channel (MESSAGE and STREAM apart).
#[tokio::test]
async fn r120_r127_state_changes_carry_the_whole_merged_state() {
    let server = TestServer::start().await;
    let mut alice = Member::login(&server, "alice").await;
    alice.sub(ROOM).await;
    alice.join(STAGE).await;
    let mut bob = Member::login(&server, "bob").await;
    bob.sub(ROOM).await;
    bob.join(STAGE).await;
    alice.expect_event(JOIN, MESSAGE, ROOM, "bob").await;
    alice.expect_event(JOIN, STREAM, STAGE, "bob").await;

    let steps: [(Pairs, Pairs); 3] = [
        (&[("a", "1")], &[("a", "1")]),
        (&[("b", "2")], &[("a", "1"), ("b", "2")]),
        (
            &[("a", "3"), ("c", "4")],
            &[("a", "3"), ("b", "2"), ("c", "4")],
        ),
    ];
    for (set, whole) in steps {
        bob.set_state(MESSAGE, ROOM, set).await;
        alice.expect_state(MESSAGE, ROOM, "bob", whole).await;
        assert_eq!(alice.get_state(MESSAGE, ROOM, "bob").await, st(whole));
    }
    bob.remove_state(MESSAGE, ROOM, &["b"]).await;
    alice
        .expect_state(MESSAGE, ROOM, "bob", &[("a", "3"), ("c", "4")])
        .await;

    bob.set_state(STREAM, STAGE, &[("x", "1")]).await;
    alice
        .expect_state(STREAM, STAGE, "bob", &[("x", "1")])
        .await;
    bob.set_state(STREAM, STAGE, &[("y", "2")]).await;
    alice
        .expect_state(STREAM, STAGE, "bob", &[("x", "1"), ("y", "2")])
        .await;
    assert_eq!(
        alice.get_state(MESSAGE, ROOM, "bob").await,
        st(&[("a", "3"), ("c", "4")])
    );
    bob.remove_state(MESSAGE, ROOM, &[]).await;
    alice.expect_state(MESSAGE, ROOM, "bob", &[]).await;
    assert_eq!(alice.get_state(MESSAGE, ROOM, "bob").await, st(&[]));
    assert_eq!(
        alice.get_state(STREAM, STAGE, "bob").await,
        st(&[("x", "1"), ("y", "2")])
    );
}

// ---------------------------------------------------------------------------------------
// Lost connections (R118, R119)
// ---------------------------------------------------------------------------------------

/// R118, R119, R132, R85: a member whose connection vanishes without logout is
/// REMOTE_TIMEOUT for the others (MESSAGE and STREAM) once its presence timeout (1 s)
/// has passed — not before — and its state is gone; a quiet member that vanished first
/// produces nothing. A later login with the old session id starts a new session with
/// no state.
#[tokio::test]
async fn r118_r119_r132_vanished_member_times_out_and_loses_its_state() {
    let server = TestServer::with(short_presence).await;
    let mut alice = Member::login(&server, "alice").await;
    alice.sub(ROOM).await;
    alice.join(STAGE).await;

    let (mut quinn, _) = Member::login_with(&server, "quinn", 1).await;
    quinn.sub_with(ROOM, true, true, &[("q", "1")]).await;
    quinn.join_with(STAGE, true, true, &[("q", "2")]).await;
    let (mut bob, login) = Member::login_with(&server, "bob", 1).await;
    bob.sub_with(ROOM, true, false, &[("a", "1")]).await;
    bob.join_with(STAGE, true, false, &[("b", "2")]).await;
    alice.expect_event(JOIN, MESSAGE, ROOM, "bob").await;
    alice.expect_event(JOIN, STREAM, STAGE, "bob").await;

    // Closing the socket without a WebSocket close or a logout: a lost link.
    drop(quinn);
    let lost_at = now_ms();
    drop(bob);
    // Within the timeout bob is still there, with its state.
    let state = alice.get_state(MESSAGE, ROOM, "bob").await;
    if now_ms() < lost_at + 900 {
        assert_eq!(state, st(&[("a", "1")]));
    }
    let v = alice.events_by_type(2).await;
    assert!(now_ms() >= lost_at + 900, "not before the presence timeout");
    assert_event(&v[0], TIMEOUT, MESSAGE, ROOM, "bob");
    assert_event(&v[1], TIMEOUT, STREAM, STAGE, "bob");

    alice.assert_absent(MESSAGE, ROOM, "bob").await;
    alice.assert_absent(STREAM, STAGE, "bob").await;
    assert_eq!(alice.who(MESSAGE, ROOM).await, vec!["alice"]);
    assert_eq!(alice.who(STREAM, STAGE).await, vec!["alice"]);
    assert!(alice.where_now("bob").await.is_empty());
    assert!(alice.where_now("quinn").await.is_empty());

    // Too late to resume: a new session, which enters without the old state.
    let mut raw = server.raw().await;
    let again = raw
        .login_resume("bob", &login.session_id, Vec::new(), 30, "presence-test")
        .await;
    assert!(!again.resumed, "{again:?}");
    let mut bob = Member::new(raw, "bob");
    let (_, snapshot) = bob.sub(ROOM).await;
    assert_eq!(
        snapshot_states(&snapshot),
        members(&[("alice", &[]), ("bob", &[])])
    );
    alice.expect_event(JOIN, MESSAGE, ROOM, "bob").await;
}

/// R118, R119, R52: a member whose connection is lost and that resumes its session
/// within the presence timeout (2 s) is invisible to the others — no LEAVE, TIMEOUT or
/// JOIN, not even after the timeout would have passed — and keeps its state and
/// memberships.
#[tokio::test]
async fn r118_r119_resume_within_presence_timeout_is_invisible_and_keeps_state() {
    let server = TestServer::with(short_presence).await;
    let mut alice = Member::login(&server, "alice").await;
    alice.sub(ROOM).await;
    alice.join(STAGE).await;
    let (mut bob, login) = Member::login_with(&server, "bob", 2).await;
    let (sub, _) = bob.sub_with(ROOM, true, false, &[("a", "1")]).await;
    let (join, _) = bob.join_with(STAGE, true, false, &[("b", "2")]).await;
    alice.expect_event(JOIN, MESSAGE, ROOM, "bob").await;
    alice.expect_event(JOIN, STREAM, STAGE, "bob").await;

    // A lost connection, seen by the server (else the resume below would replace a
    // live connection and the presence timeout would never start).
    bob.raw.lose_connection().await;
    let lost_at = Instant::now();
    let mut raw = server.raw().await;
    let positions = vec![
        resume_position(MESSAGE, ROOM, sub.position),
        resume_position(STREAM, STAGE, join.position),
        resume_position(USER, "bob", login.user_position),
    ];
    let resumed = raw
        .login_resume("bob", &login.session_id, positions, 2, "presence-test")
        .await;
    assert!(resumed.resumed, "{resumed:?}");
    assert!(resumed.unrestored_channels.is_empty(), "{resumed:?}");
    let mut bob = Member::new(raw, "bob");
    // Past the moment the timeout would have fired (a fixed wait: what is checked is
    // that nothing happens).
    tokio::time::sleep_until(lost_at + Duration::from_millis(2_600)).await;

    let mut zed = Member::login(&server, "zed").await;
    zed.sub(ROOM).await;
    zed.join(STAGE).await;
    alice.expect_event(JOIN, MESSAGE, ROOM, "zed").await;
    alice.expect_event(JOIN, STREAM, STAGE, "zed").await;
    // bob is still a member with presence, and hears zed.
    let v = bob.events_by_type(2).await;
    assert_event(&v[0], JOIN, MESSAGE, ROOM, "zed");
    assert_event(&v[1], JOIN, STREAM, STAGE, "zed");
    assert_eq!(
        alice.get_state(MESSAGE, ROOM, "bob").await,
        st(&[("a", "1")])
    );
    assert_eq!(
        alice.get_state(STREAM, STAGE, "bob").await,
        st(&[("b", "2")])
    );
    assert_eq!(alice.who(MESSAGE, ROOM).await, vec!["alice", "bob", "zed"]);
    let mut channels = alice.where_now("bob").await;
    channels.sort();
    assert_eq!(
        channels,
        vec![(MESSAGE, ROOM.to_string()), (STREAM, STAGE.to_string())]
    );
}

// ---------------------------------------------------------------------------------------
// Quiet members (R84–R87)
// ---------------------------------------------------------------------------------------

/// R84–R87, R131: a quiet member produces no event (entering, state changes, leaving),
/// is absent from SNAPSHOTs, whoNow, whereNow and getState (−13011, also for itself),
/// yet receives the SNAPSHOT and the other members' events itself.
#[tokio::test]
async fn r84_r87_quiet_member_is_invisible_but_hears_others() {
    let server = TestServer::start().await;
    let mut alice = Member::login(&server, "alice").await;
    alice.sub(ROOM).await;
    alice.join(STAGE).await;

    let mut quinn = Member::login(&server, "quinn").await;
    let (_, snapshot) = quinn.sub_with(ROOM, true, true, &[("hidden", "1")]).await;
    assert_eq!(
        snapshot_states(&snapshot.expect("a quiet member gets the SNAPSHOT (R84)")),
        members(&[("alice", &[])])
    );
    let (_, snapshot) = quinn.join_with(STAGE, true, true, &[("hidden", "2")]).await;
    assert_eq!(
        snapshot_states(&snapshot.expect("presence SNAPSHOT")),
        members(&[("alice", &[])])
    );
    quinn.set_state(MESSAGE, ROOM, &[("more", "x")]).await;
    quinn.remove_state(STREAM, STAGE, &[]).await;

    assert_eq!(alice.who(MESSAGE, ROOM).await, vec!["alice"]);
    assert_eq!(alice.who(STREAM, STAGE).await, vec!["alice"]);
    let count = alice
        .who_now(pb::WhoNowRequest {
            channel_type: MESSAGE,
            channel_name: ROOM.into(),
            include_user_id: Some(false),
            ..Default::default()
        })
        .await;
    assert_eq!(count.total_occupancy, 1, "{count:?}");
    assert!(alice.where_now("quinn").await.is_empty());
    alice.assert_absent(MESSAGE, ROOM, "quinn").await;
    alice.assert_absent(STREAM, STAGE, "quinn").await;
    quinn.assert_absent(MESSAGE, ROOM, "quinn").await;

    // The quiet member hears the others (R84).
    let mut bob = Member::login(&server, "bob").await;
    bob.sub(ROOM).await;
    bob.join(STAGE).await;
    bob.set_state(MESSAGE, ROOM, &[("k", "v")]).await;
    quinn.expect_event(JOIN, MESSAGE, ROOM, "bob").await;
    quinn.expect_event(JOIN, STREAM, STAGE, "bob").await;
    quinn
        .expect_state(MESSAGE, ROOM, "bob", &[("k", "v")])
        .await;
    // bob's SNAPSHOT had no quinn either (checked through whoNow from bob).
    assert_eq!(bob.who(MESSAGE, ROOM).await, vec!["alice", "bob"]);

    quinn.unsubscribe(ROOM).await;
    quinn.leave(STAGE).await;
    let mut carol = Member::login(&server, "carol").await;
    carol.sub(ROOM).await;
    carol.join(STAGE).await;
    // alice heard of bob and carol only.
    alice.expect_event(JOIN, MESSAGE, ROOM, "bob").await;
    alice.expect_event(JOIN, STREAM, STAGE, "bob").await;
    alice
        .expect_state(MESSAGE, ROOM, "bob", &[("k", "v")])
        .await;
    alice.expect_event(JOIN, MESSAGE, ROOM, "carol").await;
    alice.expect_event(JOIN, STREAM, STAGE, "carol").await;
}

/// R81, R85, R86: a repeated subscribe that turns a visible member quiet takes it out of
/// the others' view as a REMOTE_LEAVE (it is gone from whoNow, and as a quiet member it
/// will never be reported leaving); turning visible again is a REMOTE_JOIN.
#[tokio::test]
async fn r81_r85_visible_member_turning_quiet_is_seen_leaving() {
    let server = TestServer::start().await;
    let mut alice = Member::login(&server, "alice").await;
    alice.sub(ROOM).await;
    let mut bob = Member::login(&server, "bob").await;
    bob.sub_with(ROOM, false, false, &[("k", "v")]).await;
    alice.expect_event(JOIN, MESSAGE, ROOM, "bob").await;

    bob.sub_with(ROOM, false, true, &[]).await;
    assert_eq!(alice.who(MESSAGE, ROOM).await, vec!["alice"]);
    bob.publish(ROOM, "quiet now").await;
    alice.expect_event(LEAVE, MESSAGE, ROOM, "bob").await;
    alice.expect_message(ROOM, "quiet now").await;

    bob.sub_with(ROOM, false, false, &[]).await;
    alice.expect_event(JOIN, MESSAGE, ROOM, "bob").await;
    assert_eq!(alice.who(MESSAGE, ROOM).await, vec!["alice", "bob"]);
}

/// §9.3, R128: a SNAPSHOT is delivered whatever the channel's total state, as long as
/// every member's state is within the limits: 10 members with 32 keys of 16 KB each
/// (5 MB in all) — the subscriber gets its reply and the SNAPSHOT and stays connected.
#[tokio::test]
async fn r128_snapshot_of_a_channel_with_much_state_is_delivered() {
    let server = TestServer::start().await;
    let value = "v".repeat(16 * 1024);
    let mut kept = Vec::new();
    for i in 0..10 {
        let mut m = Member::login(&server, &format!("u{i}")).await;
        m.sub_with(ROOM, false, false, &[]).await;
        for k in 0..32 {
            let key = format!("k{k:02}");
            m.set_state(MESSAGE, ROOM, &[(key.as_str(), value.as_str())])
                .await;
        }
        kept.push(m);
    }
    let mut zed = Member::login(&server, "zed").await;
    let (_, snapshot) = zed.sub(ROOM).await;
    let states = snapshot_states(&snapshot);
    assert_eq!(states.len(), 11);
    assert!(
        states
            .iter()
            .filter(|(u, _)| u.as_str() != "zed")
            .all(|(_, s)| s.len() == 32 && s.values().all(|v| v.len() == 16 * 1024))
    );
    zed.raw.assert_alive().await;
}

// ---------------------------------------------------------------------------------------
// whoNow (R122–R124)
// ---------------------------------------------------------------------------------------

/// R122, R124, §5.1: whoNow defaults to user ids without states (states empty), lists
/// visible members ordered by user id on one page with `next_page` empty and
/// `total_occupancy` = the count on the page; `include_state` adds the states;
/// `include_user_id: false` answers the count only. Anyone may ask; an empty channel
/// has nobody; an invalid channel name answers −10008.
#[tokio::test]
async fn r122_who_now_defaults_include_state_and_count_only() {
    let server = TestServer::start().await;
    let mut kept = Vec::new();
    for (user, state) in [
        ("carol", &[][..]),
        ("alice", &[("a", "1")][..]),
        ("bob", &[("b", "2"), ("c", "3")][..]),
    ] {
        let mut m = Member::login(&server, user).await;
        m.sub_with(ROOM, false, false, state).await;
        kept.push(m);
    }
    let mut quinn = Member::login(&server, "quinn").await;
    quinn.sub_with(ROOM, false, true, &[("q", "1")]).await;
    let mut zed = Member::login(&server, "zed").await;

    let base = pb::WhoNowRequest {
        channel_type: MESSAGE,
        channel_name: ROOM.into(),
        ..Default::default()
    };
    let r = zed.who_now(base.clone()).await;
    assert_eq!(r.total_occupancy, 3, "{r:?}");
    assert!(r.next_page.is_empty(), "{r:?}");
    let ids: Vec<_> = r.occupants.iter().map(|o| o.user_id.as_str()).collect();
    assert_eq!(ids, ["alice", "bob", "carol"]);
    assert!(r.occupants.iter().all(|o| o.states.is_empty()), "{r:?}");

    let r = zed
        .who_now(pb::WhoNowRequest {
            include_user_id: Some(true),
            include_state: true,
            ..base.clone()
        })
        .await;
    assert_eq!(r.total_occupancy, 3, "{r:?}");
    let got: BTreeMap<_, _> = r
        .occupants
        .iter()
        .map(|o| (o.user_id.clone(), sorted(&o.states)))
        .collect();
    assert_eq!(
        got,
        members(&[
            ("alice", &[("a", "1")]),
            ("bob", &[("b", "2"), ("c", "3")]),
            ("carol", &[]),
        ])
    );

    let r = zed
        .who_now(pb::WhoNowRequest {
            include_user_id: Some(false),
            include_state: true,
            ..base.clone()
        })
        .await;
    assert_eq!(r.total_occupancy, 3, "{r:?}");
    assert!(r.occupants.is_empty() && r.next_page.is_empty(), "{r:?}");

    // The STREAM channel of the same name, and a channel nobody is in.
    for (ty, name) in [(STREAM, ROOM), (MESSAGE, "nobody-here")] {
        let r = zed
            .who_now(pb::WhoNowRequest {
                channel_type: ty,
                channel_name: name.into(),
                ..Default::default()
            })
            .await;
        assert_eq!(r.total_occupancy, 0, "{r:?}");
        assert!(r.occupants.is_empty() && r.next_page.is_empty(), "{r:?}");
    }
    let reply = zed
        .try_who_now(pb::WhoNowRequest {
            channel_name: String::new(),
            ..base
        })
        .await;
    assert_error(reply, INVALID_CHANNEL_NAME, "whoNow");
}

/// One whoNow page of [`ROOM`] with user ids after `page`, checked: at most
/// `page_size` users ordered by user id, after `prev` (the last user of the previous
/// page), `total_occupancy` = their count (R124), only the last page short. Returns the
/// users and `next_page`.
async fn who_page(
    m: &mut Member,
    page: &str,
    page_size: usize,
    prev: Option<&String>,
) -> (Vec<String>, String) {
    let r = m
        .who_now(pb::WhoNowRequest {
            channel_type: MESSAGE,
            channel_name: ROOM.into(),
            include_user_id: Some(true),
            include_state: false,
            page: page.into(),
        })
        .await;
    let ids: Vec<String> = r.occupants.iter().map(|o| o.user_id.clone()).collect();
    assert!(
        ids.len() <= page_size,
        "page of {} > {page_size}",
        ids.len()
    );
    assert_eq!(
        r.total_occupancy as usize,
        ids.len(),
        "R124: the count on the page"
    );
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ordered: {ids:?}");
    if let (Some(prev), Some(first)) = (prev, ids.first()) {
        assert!(first > prev, "pages advance: {first} after {prev}");
    }
    if !r.next_page.is_empty() {
        assert_eq!(ids.len(), page_size, "only the last page is short");
    }
    (ids, r.next_page)
}

/// Logs `ids` in (64 at a time) and subscribes each to [`ROOM`] without presence.
async fn crowd(server: &TestServer, ids: Vec<String>) -> HashMap<String, RawClient> {
    let url = server.url();
    futures_util::stream::iter(ids)
        .map(|id| {
            let url = url.clone();
            async move {
                let mut raw = RawClient::connect(&url).await;
                let reply = raw.login(APP_ID, &id, &token(&id), 60).await;
                assert!(matches!(reply, Rep::Login(_)), "{reply:?}");
                raw.subscribe(ROOM).await;
                (id, raw)
            }
        })
        .buffer_unordered(64)
        .collect()
        .await
}

/// R123, R124: with a page size of 37, whoNow pages through 2,000 members: pages of at
/// most 37 ordered by user id, `total_occupancy` = the page's count, `next_page` empty
/// only at the end, every member exactly once. A second traversal while members leave
/// (behind and ahead of the cursor) and join (behind and ahead) lists nobody twice,
/// every member present throughout exactly once and nobody who left before the
/// traversal reached it.
#[tokio::test]
async fn r123_r124_who_now_pages_list_thousands_of_members_each_once() {
    const MEMBERS: usize = 2_000;
    const PAGE: usize = 37;
    let server = TestServer::with(|c| limits(c, |l| l.who_now_page_size = PAGE)).await;
    let started = Instant::now();
    let ids: Vec<String> = (0..MEMBERS).map(|i| format!("u{i:05}")).collect();
    let mut crowd = crowd(&server, ids.clone()).await;
    assert_eq!(crowd.len(), MEMBERS);
    eprintln!("{MEMBERS} members in {:?}", started.elapsed());
    let mut zed = Member::login(&server, "zed").await;

    let r = zed
        .who_now(pb::WhoNowRequest {
            channel_type: MESSAGE,
            channel_name: ROOM.into(),
            include_user_id: Some(false),
            ..Default::default()
        })
        .await;
    assert_eq!(
        r.total_occupancy as usize, MEMBERS,
        "the whole count without ids"
    );

    let mut pages: Vec<Vec<String>> = Vec::new();
    let mut page = String::new();
    loop {
        let (ids, next) =
            who_page(&mut zed, &page, PAGE, pages.last().and_then(|p| p.last())).await;
        pages.push(ids);
        if next.is_empty() {
            break;
        }
        page = next;
    }
    assert_eq!(pages.len(), MEMBERS.div_ceil(PAGE));
    let listed: Vec<String> = pages.concat();
    assert_eq!(listed, ids, "each member once, in user id order");

    // Again, with members coming and going between pages: after each of the first 10
    // pages one member already listed and one far ahead leave, and one joins behind
    // the cursor and one ahead of everybody.
    let mut left: BTreeSet<String> = BTreeSet::new();
    let mut left_ahead: BTreeSet<String> = BTreeSet::new();
    let mut joined: BTreeSet<String> = BTreeSet::new();
    let mut pages: Vec<Vec<String>> = Vec::new();
    let mut page = String::new();
    loop {
        let (ids, next) =
            who_page(&mut zed, &page, PAGE, pages.last().and_then(|p| p.last())).await;
        pages.push(ids);
        if next.is_empty() {
            break;
        }
        page = next;
        let i = pages.len() - 1;
        if i >= 10 {
            continue;
        }
        let behind = pages[i][i].clone();
        let ahead = format!("u{:05}", MEMBERS - 1 - i);
        for id in [&behind, &ahead] {
            let raw = crowd.get_mut(id).expect("a member");
            let reply = raw
                .request(Req::Unsubscribe(pb::UnsubscribeRequest {
                    channel_name: ROOM.into(),
                }))
                .await;
            assert!(matches!(reply, Rep::Unsubscribe(_)), "{reply:?}");
            left.insert(id.clone());
        }
        left_ahead.insert(ahead);
        for id in [format!("u{:05}x", i * PAGE), format!("w{i:02}")] {
            let raw = crowd_one(&server, &id).await;
            crowd.insert(id.clone(), raw);
            joined.insert(id);
        }
    }
    let listed: Vec<String> = pages.concat();
    let unique: BTreeSet<&String> = listed.iter().collect();
    assert_eq!(unique.len(), listed.len(), "nobody listed twice");
    for id in &ids {
        if !left.contains(id) {
            assert!(
                unique.contains(id),
                "{id} was present throughout but not listed"
            );
        }
    }
    for id in &left_ahead {
        assert!(
            !unique.contains(id),
            "{id} left before the traversal reached it"
        );
    }
    for id in &listed {
        assert!(
            ids.contains(id) || joined.contains(id),
            "{id} is not a member"
        );
    }
    let expected_total = MEMBERS - left.len() + joined.len();
    let r = zed
        .who_now(pb::WhoNowRequest {
            channel_type: MESSAGE,
            channel_name: ROOM.into(),
            include_user_id: Some(false),
            ..Default::default()
        })
        .await;
    assert_eq!(r.total_occupancy as usize, expected_total);
    eprintln!("done in {:?}", started.elapsed());
}

/// Bytes of a state as the 1 MiB page budget counts them (keys and values).
fn state_bytes(states: &HashMap<String, String>) -> usize {
    states.iter().map(|(k, v)| k.len() + v.len()).sum()
}

/// R123, R128, docs/protocol.md "Presence": with `include_state` a whoNow page also
/// ends once it holds 1 MiB of states, although the page size is 50: 16 members of
/// 192 KB, two of them of 512 KB (R128's most), come in pages of 5, 2, 3, 5 and 1, each
/// within 1 MiB and none cut before it; the traversal lists every member once with its
/// whole state.
#[tokio::test]
async fn r123_r128_who_now_pages_with_states_end_at_one_mib() {
    const BUDGET: usize = 1 << 20;
    let server = TestServer::start().await;
    let medium = "m".repeat(16_000);
    let large = "l".repeat(16 * 1024);
    let mut kept = Vec::new();
    let mut expected: BTreeMap<String, St> = BTreeMap::new();
    for i in 0..16 {
        let user = format!("u{i:02}");
        let (n, value) = match i {
            6 | 7 => (32, &large),
            _ => (12, &medium),
        };
        let items: Vec<(String, String)> = (0..n)
            .map(|k| (format!("k{k:02}"), value.clone()))
            .collect();
        let mut m = Member::login(&server, &user).await;
        m.sub_with(ROOM, false, false, &[]).await;
        // In parts: one request must fit a frame (256 KiB).
        for part in items.chunks(8) {
            m.set_state(MESSAGE, ROOM, &refs(part)).await;
        }
        expected.insert(user, items.into_iter().collect());
        kept.push(m);
    }
    let mut zed = Member::login(&server, "zed").await;
    let mut pages: Vec<Vec<pb::UserState>> = Vec::new();
    let mut page = String::new();
    loop {
        let r = zed
            .who_now(pb::WhoNowRequest {
                channel_type: MESSAGE,
                channel_name: ROOM.into(),
                include_user_id: Some(true),
                include_state: true,
                page: page.clone(),
            })
            .await;
        assert_eq!(r.total_occupancy as usize, r.occupants.len(), "R124");
        assert!(!r.occupants.is_empty(), "at least one member per page");
        let bytes: usize = r.occupants.iter().map(|o| state_bytes(&o.states)).sum();
        assert!(
            bytes <= BUDGET || r.occupants.len() == 1,
            "a page of {bytes} bytes of states"
        );
        let last = r.next_page.is_empty();
        pages.push(r.occupants);
        if last {
            break;
        }
        page = r.next_page;
    }
    // Not cut early: each page but the last would pass 1 MiB with the next member.
    for w in pages.windows(2) {
        let bytes: usize = w[0].iter().map(|o| state_bytes(&o.states)).sum();
        assert!(
            bytes + state_bytes(&w[1][0].states) > BUDGET,
            "page cut early"
        );
    }
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(
        sizes,
        [5, 2, 3, 5, 1],
        "u00–u04, u05–u06, u07–u09, u10–u14, u15"
    );
    let got: BTreeMap<String, St> = pages
        .concat()
        .into_iter()
        .map(|o| (o.user_id, sorted(&o.states)))
        .collect();
    assert_eq!(got.len(), 16, "each member once");
    assert!(got == expected, "every member with its whole state");
}

/// One more raw member of [`ROOM`] (without presence).
async fn crowd_one(server: &TestServer, id: &str) -> RawClient {
    let mut raw = server.raw_login(id).await;
    raw.subscribe(ROOM).await;
    raw
}

// ---------------------------------------------------------------------------------------
// whereNow (R126)
// ---------------------------------------------------------------------------------------

/// R126, R87: whereNow lists the MESSAGE and STREAM channels where the user is visibly
/// present — not quiet ones — once each; it follows unsubscribe, leave and logout; the
/// same user id in another app is another user; an unknown user has none; an invalid
/// user id answers −10006.
#[tokio::test]
async fn r126_where_now_lists_visible_message_and_stream_channels() {
    let server = TestServer::start().await;
    let mut alice = Member::login(&server, "alice").await;
    alice.sub_with("m1", false, false, &[]).await;
    alice.sub_with("m2", true, false, &[]).await;
    alice.sub_with("m3", false, true, &[]).await;
    alice.join_with("s1", false, false, &[]).await;
    alice.join_with("s2", false, true, &[]).await;
    alice.join_with("m1", false, false, &[]).await;
    let mut bob = Member::login(&server, "bob").await;

    let got: BTreeSet<_> = bob.where_now("alice").await.into_iter().collect();
    let expected: BTreeSet<_> = [
        (MESSAGE, "m1"),
        (MESSAGE, "m2"),
        (STREAM, "m1"),
        (STREAM, "s1"),
    ]
    .into_iter()
    .map(|(t, n)| (t, n.to_string()))
    .collect();
    assert_eq!(got, expected);
    assert_eq!(bob.where_now("alice").await.len(), 4, "each channel once");
    assert_eq!(alice.where_now("alice").await.len(), 4, "one's own too");

    alice.unsubscribe("m1").await;
    alice.leave("s1").await;
    let got: BTreeSet<_> = bob.where_now("alice").await.into_iter().collect();
    let expected: BTreeSet<_> = [(MESSAGE, "m2"), (STREAM, "m1")]
        .into_iter()
        .map(|(t, n)| (t, n.to_string()))
        .collect();
    assert_eq!(got, expected);

    // Apps are apart: "alice" of another app is another user in other channels.
    let mut raw = server.raw().await;
    let other_token = token_with(OTHER_APP_ID, OTHER_CERT, "alice", 3600, now_secs());
    let reply = raw.login(OTHER_APP_ID, "alice", &other_token, 60).await;
    assert!(matches!(reply, Rep::Login(_)), "{reply:?}");
    let mut other = Member::new(raw, "alice");
    other.sub_with("m9", false, false, &[]).await;
    other.sub_with("m2", false, false, &[]).await;
    let got: BTreeSet<_> = bob.where_now("alice").await.into_iter().collect();
    assert_eq!(got, expected, "only this app's channels");
    let got: BTreeSet<_> = other.where_now("alice").await.into_iter().collect();
    let theirs: BTreeSet<_> = [(MESSAGE, "m2".to_string()), (MESSAGE, "m9".to_string())].into();
    assert_eq!(got, theirs);
    assert_eq!(
        bob.who(MESSAGE, "m2").await,
        vec!["alice"],
        "one alice in m2"
    );
    assert!(bob.who(MESSAGE, "m9").await.is_empty());

    assert!(bob.where_now("nobody").await.is_empty());
    let reply = bob
        .req(Req::WhereNow(pb::WhereNowRequest {
            user_id: String::new(),
        }))
        .await;
    assert_error(reply, INVALID_USER_ID, "whereNow");
    alice.logout().await;
    assert!(bob.where_now("alice").await.is_empty());
    assert_eq!(
        other.where_now("alice").await.len(),
        2,
        "the other app's alice stays"
    );
}

// ---------------------------------------------------------------------------------------
// Temporary state (R125, R127–R132)
// ---------------------------------------------------------------------------------------

/// R12, R128: setState refusals — no key −13003, an empty or bad key −13006, a key over
/// 32 bytes −13008, a value over 16 KB −13009, more than 32 keys in the result −13005
/// (one request or merged) — change nothing and send no event; the limits themselves
/// (32-byte key, 16 KB value, 32 keys, overwriting at 32 keys) are accepted.
#[tokio::test]
async fn r128_set_state_refusals_change_nothing() {
    let server = TestServer::start().await;
    let mut alice = Member::login(&server, "alice").await;
    alice.sub(ROOM).await;
    let mut bob = Member::login(&server, "bob").await;
    bob.sub_with(ROOM, false, false, &[]).await;
    alice.expect_event(JOIN, MESSAGE, ROOM, "bob").await;
    bob.set_state(MESSAGE, ROOM, &[("a", "1")]).await;
    alice
        .expect_state(MESSAGE, ROOM, "bob", &[("a", "1")])
        .await;

    let key33 = "k".repeat(33);
    let big = "v".repeat(16 * 1024 + 1);
    let cases: Vec<(Vec<(&str, &str)>, i32)> = vec![
        (vec![], INVALID_ARGUMENT),
        (vec![("", "x")], INVALID_STATE_KEY),
        (vec![("a/b", "x")], INVALID_STATE_KEY),
        (vec![("ok", "x"), ("bad\u{e9}", "y")], INVALID_STATE_KEY),
        (vec![(key33.as_str(), "x")], STATE_KEY_TOO_LONG),
        (
            vec![("ok", "x"), ("big", big.as_str())],
            STATE_VALUE_TOO_LONG,
        ),
    ];
    for (pairs, code) in &cases {
        let reply = bob.try_set_state(MESSAGE, ROOM, pairs).await;
        assert_error(reply, *code, "setState");
        assert_eq!(
            alice.get_state(MESSAGE, ROOM, "bob").await,
            st(&[("a", "1")])
        );
    }
    let many = keys(33, "k");
    let reply = bob.try_set_state(MESSAGE, ROOM, &refs(&many)).await;
    assert_error(reply, STATE_COUNT_OVERFLOW, "setState");
    assert_eq!(
        alice.get_state(MESSAGE, ROOM, "bob").await,
        st(&[("a", "1")])
    );

    // At the limits: accepted.
    let key32 = "k".repeat(32);
    let max_value = "v".repeat(16 * 1024);
    bob.set_state(MESSAGE, ROOM, &[(key32.as_str(), max_value.as_str())])
        .await;
    let mut whole = st(&[("a", "1")]);
    whole.insert(key32.clone(), max_value.clone());
    let e = alice
        .expect_event(STATE_CHANGED, MESSAGE, ROOM, "bob")
        .await;
    assert_eq!(sorted(&e.state_changed), whole);
    let fill = keys(30, "f");
    bob.set_state(MESSAGE, ROOM, &refs(&fill)).await;
    whole.extend(fill.iter().cloned());
    assert_eq!(whole.len(), 32);
    let e = alice
        .expect_event(STATE_CHANGED, MESSAGE, ROOM, "bob")
        .await;
    assert_eq!(sorted(&e.state_changed), whole);
    // A 33rd key is refused, also together with an overwrite; overwriting alone is fine.
    let reply = bob.try_set_state(MESSAGE, ROOM, &[("new", "1")]).await;
    assert_error(reply, STATE_COUNT_OVERFLOW, "setState");
    let reply = bob
        .try_set_state(MESSAGE, ROOM, &[("a", "2"), ("new", "1")])
        .await;
    assert_error(reply, STATE_COUNT_OVERFLOW, "setState");
    assert_eq!(alice.get_state(MESSAGE, ROOM, "bob").await, whole);
    bob.set_state(MESSAGE, ROOM, &[("a", "2")]).await;
    whole.insert("a".into(), "2".into());
    let e = alice
        .expect_event(STATE_CHANGED, MESSAGE, ROOM, "bob")
        .await;
    assert_eq!(sorted(&e.state_changed), whole);

    // No event came for any refusal: the sentinel is next.
    bob.publish(ROOM, "sentinel").await;
    alice.expect_message(ROOM, "sentinel").await;
}

/// R128: one setState with the largest state R128 allows (32 keys of 16 KB, about
/// 512 KB in one request) is accepted and reported whole, like any other within limits.
#[tokio::test]
async fn r128_largest_allowed_state_in_one_set_state_is_accepted() {
    let server = TestServer::start().await;
    let mut alice = Member::login(&server, "alice").await;
    alice.sub(ROOM).await;
    let mut bob = Member::login(&server, "bob").await;
    bob.sub_with(ROOM, false, false, &[]).await;
    alice.expect_event(JOIN, MESSAGE, ROOM, "bob").await;
    let value = "v".repeat(16 * 1024);
    let items: Vec<(String, String)> = (0..32)
        .map(|k| (format!("k{k:02}"), value.clone()))
        .collect();
    let reply = bob.try_set_state(MESSAGE, ROOM, &refs(&items)).await;
    assert!(matches!(reply, Rep::SetState(_)), "{reply:?}");
    let e = alice
        .expect_event(STATE_CHANGED, MESSAGE, ROOM, "bob")
        .await;
    assert_eq!(sorted(&e.state_changed), items.into_iter().collect::<St>());
}

/// R129, §9.3: state set (and partly removed) before subscribing or joining is kept by
/// the session, invisible meanwhile (getState −13011, no event), and applied on entering
/// together with `SubscribeRequest.state` / `JoinRequest.state` (which win on a common
/// key): visible in the SNAPSHOT, getState and whoNow; it is used once. A removeState
/// without keys before entering clears it; the pending state obeys the 32-key limit.
#[tokio::test]
async fn r129_state_set_before_entering_is_applied_on_subscribe_and_join() {
    let server = TestServer::start().await;
    let mut alice = Member::login(&server, "alice").await;
    alice.sub(ROOM).await;
    alice.join(STAGE).await;

    let mut bob = Member::login(&server, "bob").await;
    bob.set_state(MESSAGE, ROOM, &[("a", "1"), ("b", "1"), ("c", "1")])
        .await;
    bob.remove_state(MESSAGE, ROOM, &["c"]).await;
    bob.set_state(STREAM, STAGE, &[("s", "1")]).await;
    alice.assert_absent(MESSAGE, ROOM, "bob").await;
    alice.assert_absent(STREAM, STAGE, "bob").await;
    bob.assert_absent(MESSAGE, ROOM, "bob").await;
    assert_eq!(alice.who(MESSAGE, ROOM).await, vec!["alice"]);

    let (_, snapshot) = bob
        .sub_with(ROOM, true, false, &[("b", "2"), ("d", "2")])
        .await;
    let merged = st(&[("a", "1"), ("b", "2"), ("d", "2")]);
    assert_eq!(snapshot_states(&snapshot.expect("SNAPSHOT"))["bob"], merged);
    let (_, snapshot) = bob.join_with(STAGE, true, false, &[("t", "1")]).await;
    assert_eq!(
        snapshot_states(&snapshot.expect("SNAPSHOT"))["bob"],
        st(&[("s", "1"), ("t", "1")])
    );
    alice.expect_event(JOIN, MESSAGE, ROOM, "bob").await;
    alice.expect_event(JOIN, STREAM, STAGE, "bob").await;
    assert_eq!(alice.get_state(MESSAGE, ROOM, "bob").await, merged);
    let r = alice
        .who_now(pb::WhoNowRequest {
            channel_type: STREAM,
            channel_name: STAGE.into(),
            include_state: true,
            ..Default::default()
        })
        .await;
    let bob_state = r
        .occupants
        .iter()
        .find(|o| o.user_id == "bob")
        .expect("bob");
    assert_eq!(sorted(&bob_state.states), st(&[("s", "1"), ("t", "1")]));

    // Used once: after unsubscribing, a new subscribe starts empty.
    bob.unsubscribe(ROOM).await;
    let (_, snapshot) = bob.sub(ROOM).await;
    assert_eq!(snapshot_states(&snapshot)["bob"], st(&[]));

    // removeState without keys clears the pending state.
    let mut carol = Member::login(&server, "carol").await;
    carol.set_state(MESSAGE, ROOM, &[("x", "1")]).await;
    carol.remove_state(MESSAGE, ROOM, &[]).await;
    let (_, snapshot) = carol.sub(ROOM).await;
    assert_eq!(snapshot_states(&snapshot)["carol"], st(&[]));

    // The pending state has the same 32-key limit.
    let mut dave = Member::login(&server, "dave").await;
    let full = keys(32, "k");
    dave.set_state(MESSAGE, ROOM, &refs(&full)).await;
    let reply = dave.try_set_state(MESSAGE, ROOM, &[("one", "more")]).await;
    assert_error(reply, STATE_COUNT_OVERFLOW, "setState");
    dave.set_state(MESSAGE, ROOM, &[("k00", "again")]).await;
    dave.sub_with(ROOM, false, false, &[]).await;
    let mut expected: St = full.into_iter().collect();
    expected.insert("k00".into(), "again".into());
    assert_eq!(alice.get_state(MESSAGE, ROOM, "dave").await, expected);
}

/// R128 for the state a member enters with: `SubscribeRequest.state` /
/// `JoinRequest.state` are checked like setState (R12 keys, 16 KB values, 32 keys in
/// the result with what was set before entering); a refused subscribe or join changes
/// nothing (the member is not in the channel).
#[tokio::test]
async fn r128_state_entered_with_obeys_the_state_limits() {
    let server = TestServer::start().await;
    let mut alice = Member::login(&server, "alice").await;
    let big = "v".repeat(16 * 1024 + 1);
    let many = keys(33, "k");
    let cases: Vec<(Vec<(&str, &str)>, i32)> = vec![
        (vec![("a/b", "x")], INVALID_STATE_KEY),
        (vec![("big", big.as_str())], STATE_VALUE_TOO_LONG),
        (refs(&many), STATE_COUNT_OVERFLOW),
    ];
    for (pairs, code) in &cases {
        let reply = alice
            .req(Req::Subscribe(sub_request(ROOM, false, false, pairs)))
            .await;
        assert_error(reply, *code, "subscribe");
        let reply = alice
            .req(Req::Join(join_request(STAGE, "alice", false, false, pairs)))
            .await;
        assert_error(reply, *code, "join");
    }
    // 20 keys set before entering + 13 new ones given with the subscribe = 33.
    let before = keys(20, "p");
    alice.set_state(MESSAGE, ROOM, &refs(&before)).await;
    let with = keys(13, "s");
    let reply = alice
        .req(Req::Subscribe(sub_request(
            ROOM,
            false,
            false,
            &refs(&with),
        )))
        .await;
    assert_error(reply, STATE_COUNT_OVERFLOW, "subscribe");
    assert!(alice.where_now("alice").await.is_empty());
    alice.assert_absent(MESSAGE, ROOM, "alice").await;
}

/// R130: removeState deletes the listed keys, or without keys the whole state; a
/// duplicate key answers −13010 and an invalid key −13006, changing nothing and sending
/// no event.
#[tokio::test]
async fn r130_remove_state_some_all_and_duplicate_key() {
    let server = TestServer::start().await;
    let mut alice = Member::login(&server, "alice").await;
    alice.sub(ROOM).await;
    let mut bob = Member::login(&server, "bob").await;
    bob.sub_with(
        ROOM,
        false,
        false,
        &[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")],
    )
    .await;
    alice.expect_event(JOIN, MESSAGE, ROOM, "bob").await;

    bob.remove_state(MESSAGE, ROOM, &["a", "b"]).await;
    alice
        .expect_state(MESSAGE, ROOM, "bob", &[("c", "3"), ("d", "4")])
        .await;
    let reply = bob.try_remove_state(MESSAGE, ROOM, &["c", "c"]).await;
    assert_error(reply, DUPLICATE_KEY, "removeState");
    let reply = bob.try_remove_state(MESSAGE, ROOM, &["c", "d", "c"]).await;
    assert_error(reply, DUPLICATE_KEY, "removeState");
    let reply = bob.try_remove_state(MESSAGE, ROOM, &["c", "bad/key"]).await;
    assert_error(reply, INVALID_STATE_KEY, "removeState");
    assert_eq!(
        alice.get_state(MESSAGE, ROOM, "bob").await,
        st(&[("c", "3"), ("d", "4")])
    );
    bob.remove_state(MESSAGE, ROOM, &[]).await;
    alice.expect_state(MESSAGE, ROOM, "bob", &[]).await;
    assert_eq!(alice.get_state(MESSAGE, ROOM, "bob").await, st(&[]));
    bob.publish(ROOM, "sentinel").await;
    alice.expect_message(ROOM, "sentinel").await;
}

/// R131: getState of a user not in the channel — logged in elsewhere, unknown, in the
/// other channel type only — answers −13011; once it is in, its state (empty) is
/// answered; an invalid user id answers −10006.
#[tokio::test]
async fn r131_get_state_of_a_non_member_answers_13011() {
    let server = TestServer::start().await;
    let mut alice = Member::login(&server, "alice").await;
    alice.sub(ROOM).await;
    let mut bob = Member::login(&server, "bob").await;
    alice.assert_absent(MESSAGE, ROOM, "bob").await;
    alice.assert_absent(MESSAGE, ROOM, "nobody").await;
    alice.assert_absent(MESSAGE, "elsewhere", "alice").await;
    bob.sub_with(ROOM, false, false, &[]).await;
    assert_eq!(alice.get_state(MESSAGE, ROOM, "bob").await, st(&[]));
    alice.assert_absent(STREAM, ROOM, "bob").await;
    let reply = alice.try_get_state(MESSAGE, ROOM, "").await;
    assert_error(reply, INVALID_USER_ID, "getState");
}

/// R132: a member's state goes when it unsubscribes, leaves or logs out: entering again
/// starts with an empty state.
#[tokio::test]
async fn r132_state_is_deleted_on_unsubscribe_leave_and_logout() {
    let server = TestServer::start().await;
    let mut alice = Member::login(&server, "alice").await;
    alice.sub(ROOM).await;
    alice.join(STAGE).await;

    let mut bob = Member::login(&server, "bob").await;
    bob.sub_with(ROOM, false, false, &[("a", "1")]).await;
    bob.join_with(STAGE, false, false, &[("s", "1")]).await;
    bob.set_state(MESSAGE, ROOM, &[("b", "2")]).await;
    bob.unsubscribe(ROOM).await;
    bob.leave(STAGE).await;
    alice.assert_absent(MESSAGE, ROOM, "bob").await;
    alice.assert_absent(STREAM, STAGE, "bob").await;
    bob.sub_with(ROOM, false, false, &[]).await;
    bob.join_with(STAGE, false, false, &[]).await;
    assert_eq!(alice.get_state(MESSAGE, ROOM, "bob").await, st(&[]));
    assert_eq!(alice.get_state(STREAM, STAGE, "bob").await, st(&[]));

    bob.set_state(MESSAGE, ROOM, &[("c", "3")]).await;
    bob.set_state(STREAM, STAGE, &[("t", "3")]).await;
    bob.logout().await;
    alice.assert_absent(MESSAGE, ROOM, "bob").await;
    let mut bob = Member::login(&server, "bob").await;
    let (_, snapshot) = bob.sub(ROOM).await;
    assert_eq!(snapshot_states(&snapshot)["bob"], st(&[]));
    let (_, snapshot) = bob.join(STAGE).await;
    assert_eq!(snapshot_states(&snapshot)["bob"], st(&[]));
}

/// R125: presence calls take MESSAGE or STREAM; USER, an unset or an unknown channel
/// type answers −10019.
#[tokio::test]
async fn r125_presence_calls_refuse_other_channel_types_with_10019() {
    let server = TestServer::start().await;
    let mut alice = Member::login(&server, "alice").await;
    alice.sub_with(ROOM, false, false, &[]).await;
    for ty in [USER, pb::ChannelType::Unspecified as i32, 42] {
        let reply = alice
            .try_who_now(pb::WhoNowRequest {
                channel_type: ty,
                channel_name: "alice".into(),
                ..Default::default()
            })
            .await;
        assert_error(reply, INVALID_CHANNEL_TYPE, "whoNow");
        let reply = alice.try_set_state(ty, "alice", &[("a", "1")]).await;
        assert_error(reply, INVALID_CHANNEL_TYPE, "setState");
        let reply = alice.try_get_state(ty, "alice", "alice").await;
        assert_error(reply, INVALID_CHANNEL_TYPE, "getState");
        let reply = alice.try_remove_state(ty, "alice", &[]).await;
        assert_error(reply, INVALID_CHANNEL_TYPE, "removeState");
    }
    alice.raw.assert_alive().await;
}

// ---------------------------------------------------------------------------------------
// Interval mode (R121)
// ---------------------------------------------------------------------------------------

/// What INTERVAL events reported, merged as the server aggregates (a state change is
/// dropped by a later leave or timeout of the same user).
#[derive(Debug, Default, PartialEq)]
struct Aggregate {
    join: Vec<String>,
    leave: Vec<String>,
    timeout: Vec<String>,
    states: BTreeMap<String, St>,
    total: u32,
}

impl Aggregate {
    fn expected(
        join: &[&str],
        leave: &[&str],
        timeout: &[&str],
        states: &[(&str, &[(&str, &str)])],
        total: u32,
    ) -> Aggregate {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        Aggregate {
            join: v(join),
            leave: v(leave),
            timeout: v(timeout),
            states: members(states),
            total,
        }
    }

    fn add(&mut self, d: &pb::IntervalDetail) {
        self.join.extend(d.join.iter().cloned());
        for u in d.leave.iter().chain(&d.timeout) {
            self.states.remove(u);
        }
        self.leave.extend(d.leave.iter().cloned());
        self.timeout.extend(d.timeout.iter().cloned());
        for u in &d.user_state_list {
            self.states.insert(u.user_id.clone(), sorted(&u.states));
        }
        self.total = d.total_occupancy;
    }

    fn users(&self) -> usize {
        self.join.len() + self.leave.len() + self.timeout.len()
    }
}

/// Reads INTERVAL events of [`ROOM`] until they account for `expected` (normally one
/// event; a batch of changes straddling an interval boundary comes in two); returns the
/// merged contents and the time the last one arrived.
async fn intervals(m: &mut Member, expected: &Aggregate) -> (Aggregate, Instant) {
    let mut got = Aggregate::default();
    for _ in 0..3 {
        let e = m.next_event().await;
        assert_eq!(e.event_type, INTERVAL, "expected an INTERVAL: {e:?}");
        assert_eq!((e.channel_type, e.channel_name.as_str()), (MESSAGE, ROOM));
        assert_eq!(e.publisher, "", "an INTERVAL names no publisher");
        assert!(e.snapshot.is_empty() && e.state_changed.is_empty(), "{e:?}");
        let d = e.interval.as_ref().expect("IntervalDetail");
        assert!(
            !(d.join.is_empty()
                && d.leave.is_empty()
                && d.timeout.is_empty()
                && d.user_state_list.is_empty()),
            "no INTERVAL when nothing changed: {e:?}"
        );
        got.add(d);
        if got.users() >= expected.users() && got.states.keys().eq(expected.states.keys()) {
            return (got, Instant::now());
        }
    }
    panic!("INTERVAL events do not add up to {expected:?}: {got:?}");
}

/// R121, R86: threshold 8, interval 500 ms, debounce 150 ms. Up to 8 visible members
/// and when the 9th crosses the threshold, single events; the first change after the
/// debounce switches the channel to interval mode: from then on only INTERVAL events,
/// each listing exactly the joins, leaves, timeouts and state changes (whole states; a
/// member that left is only in `leave`) since the previous one and the occupancy, quiet
/// members never; an interval without changes sends nothing. Once occupancy is back at
/// the threshold for the debounce time, single events resume, and a brief crossing does
/// not switch the mode.
#[tokio::test]
async fn r121_interval_mode_aggregates_changes_then_single_events_resume() {
    const PERIOD: u64 = 500;
    let server = TestServer::with(|c| {
        short_presence(c);
        limits(c, |l| {
            l.presence_interval_threshold = 8;
            l.presence_interval_ms = PERIOD;
            l.presence_interval_debounce_ms = 150;
        });
    })
    .await;
    let mut obs = Member::login(&server, "obs").await;
    obs.sub(ROOM).await;
    let mut m: BTreeMap<usize, Member> = BTreeMap::new();
    // Phase A: single events up to and across the threshold (obs + m1..m8 = 9).
    for i in 1..=8 {
        let user = format!("m{i}");
        let mut member = if i == 5 {
            Member::login_with(&server, &user, 1).await.0
        } else {
            Member::login(&server, &user).await
        };
        member.sub_with(ROOM, false, false, &[]).await;
        obs.expect_event(JOIN, MESSAGE, ROOM, &user).await;
        m.insert(i, member);
    }
    // The debounce passes above the threshold (the mechanism under test).
    sleep(Duration::from_millis(250)).await;

    // Phase B: the next change switches to interval mode.
    let switched = Instant::now();
    let mut m9 = Member::login(&server, "m9").await;
    m9.sub_with(ROOM, false, false, &[]).await;
    m.insert(9, m9);
    let m1 = m.get_mut(&1).expect("m1");
    m1.set_state(MESSAGE, ROOM, &[("mood", "happy")]).await;
    let expected = Aggregate::expected(&["m9"], &[], &[], &[("m1", &[("mood", "happy")])], 10);
    let (got, _) = intervals(&mut obs, &expected).await;
    assert_eq!(got, expected);
    assert!(
        switched.elapsed() >= Duration::from_millis(PERIOD - 50),
        "the first INTERVAL comes one interval after the switch"
    );

    // Phase C: a batch of changes right after an INTERVAL.
    let m2 = m.get_mut(&2).expect("m2");
    m2.set_state(MESSAGE, ROOM, &[("a", "1")]).await;
    m2.set_state(MESSAGE, ROOM, &[("b", "2")]).await;
    let m3 = m.get_mut(&3).expect("m3");
    let (i1, i2) = (m3.raw.next_id(), m3.raw.next_id());
    m3.raw
        .send(&[
            ClientMessage {
                id: i1,
                body: Some(Req::SetState(pb::SetStateRequest {
                    channel_type: MESSAGE,
                    channel_name: ROOM.into(),
                    states: wire(&[("gone", "soon")]),
                })),
            },
            ClientMessage {
                id: i2,
                body: Some(Req::Unsubscribe(pb::UnsubscribeRequest {
                    channel_name: ROOM.into(),
                })),
            },
        ])
        .await;
    assert!(matches!(m3.raw.reply(i1).await, Rep::SetState(_)));
    assert!(matches!(m3.raw.reply(i2).await, Rep::Unsubscribe(_)));
    let mut m10 = Member::login(&server, "m10").await;
    m10.sub_with(ROOM, false, false, &[]).await;
    m.insert(10, m10);
    let mut quinn = Member::login(&server, "quinn").await;
    quinn.sub_with(ROOM, false, true, &[("q", "1")]).await;
    quinn.set_state(MESSAGE, ROOM, &[("q", "2")]).await;
    m.remove(&4).expect("m4").logout().await;
    let expected = Aggregate::expected(
        &["m10"],
        &["m3", "m4"],
        &[],
        &[("m2", &[("a", "1"), ("b", "2")])],
        9,
    );
    let (got, _) = intervals(&mut obs, &expected).await;
    assert_eq!(got, expected);

    // Phase D: m5 vanishes; intervals without changes send nothing, then its timeout.
    let lost = Instant::now();
    drop(m.remove(&5));
    let expected = Aggregate::expected(&[], &[], &["m5"], &[], 8);
    let (got, at) = intervals(&mut obs, &expected).await;
    assert_eq!(got, expected);
    assert!(
        at.duration_since(lost) >= Duration::from_millis(900),
        "the timeout comes after the presence timeout, and nothing before it"
    );

    // Phase E: at the threshold (8) for longer than the debounce: single events again.
    sleep(Duration::from_millis(PERIOD + 250)).await;
    let m6 = m.get_mut(&6).expect("m6");
    m6.set_state(MESSAGE, ROOM, &[("x", "1")]).await;
    obs.expect_state(MESSAGE, ROOM, "m6", &[("x", "1")]).await;
    // A brief crossing (9 members for a moment) does not switch the mode.
    let mut m11 = Member::login(&server, "m11").await;
    m11.sub_with(ROOM, false, false, &[]).await;
    obs.expect_event(JOIN, MESSAGE, ROOM, "m11").await;
    m11.unsubscribe(ROOM).await;
    obs.expect_event(LEAVE, MESSAGE, ROOM, "m11").await;
    let m7 = m.get_mut(&7).expect("m7");
    m7.set_state(MESSAGE, ROOM, &[("y", "1")]).await;
    obs.expect_state(MESSAGE, ROOM, "m7", &[("y", "1")]).await;

    // Members without presence got none of it: the sentinel is m7's next push.
    m.get_mut(&6).expect("m6").publish(ROOM, "sentinel").await;
    obs.expect_message(ROOM, "sentinel").await;
    m.get_mut(&7)
        .expect("m7")
        .expect_message(ROOM, "sentinel")
        .await;
}

// ---------------------------------------------------------------------------------------
// Resume replay (R58, §9.3)
// ---------------------------------------------------------------------------------------

/// R58, §9.3: a member with presence that resumes after missing presence events gets
/// them replayed with the channel's messages, in stream order, each exactly once, at
/// consecutive offsets after the positions it sent, in a MESSAGE and a STREAM channel;
/// then live events follow without repetition (and no new SNAPSHOT).
#[tokio::test]
async fn r58_resume_replays_missed_presence_events_in_order_with_messages_once() {
    let server = TestServer::with(short_presence).await;
    let (mut alice, login) = Member::login_with(&server, "alice", 30).await;
    let (sub, _) = alice.sub(ROOM).await;
    let (join, _) = alice.join(STAGE).await;
    drop(alice);

    let mut bob = Member::login(&server, "bob").await;
    let mut carol = Member::login(&server, "carol").await;
    bob.sub_with(ROOM, false, false, &[]).await;
    bob.join_with(STAGE, false, false, &[]).await;
    bob.publish(ROOM, "m1").await;
    bob.set_state(MESSAGE, ROOM, &[("k", "v")]).await;
    carol.sub_with(ROOM, false, false, &[("c", "1")]).await;
    bob.publish(ROOM, "m2").await;
    carol.unsubscribe(ROOM).await;
    bob.leave(STAGE).await;

    let mut raw = server.raw().await;
    let positions = vec![
        resume_position(MESSAGE, ROOM, sub.position),
        resume_position(STREAM, STAGE, join.position),
        resume_position(USER, "alice", login.user_position),
    ];
    let resumed = raw
        .login_resume("alice", &login.session_id, positions, 30, "presence-test")
        .await;
    assert!(resumed.resumed, "{resumed:?}");
    assert!(resumed.gap_channels.is_empty(), "{resumed:?}");
    let mut alice = Member::new(raw, "alice");

    let mut room = Vec::new();
    let mut stage = Vec::new();
    for _ in 0..8 {
        match alice.next_push().await {
            Rep::Presence(e) => {
                let label = format!("{}:{}", e.event_type, e.publisher);
                let item = (label, offset(&e.position));
                match e.channel_type {
                    MESSAGE => room.push(item),
                    _ => stage.push(item),
                }
                if e.event_type == STATE_CHANGED {
                    assert_eq!(sorted(&e.state_changed), st(&[("k", "v")]));
                }
            }
            Rep::Message(p) => {
                let text = String::from_utf8(p.payload.to_vec()).expect("UTF-8");
                room.push((text, offset(&p.position)));
            }
            other => panic!("unexpected push while replaying: {other:?}"),
        }
    }
    let label = |kind: i32, who: &str| format!("{kind}:{who}");
    let start = offset(&sub.position);
    assert_eq!(
        room,
        vec![
            (label(JOIN, "bob"), start + 1),
            ("m1".to_string(), start + 2),
            (label(STATE_CHANGED, "bob"), start + 3),
            (label(JOIN, "carol"), start + 4),
            ("m2".to_string(), start + 5),
            (label(LEAVE, "carol"), start + 6),
        ]
    );
    let start = offset(&join.position);
    assert_eq!(
        stage,
        vec![
            (label(JOIN, "bob"), start + 1),
            (label(LEAVE, "bob"), start + 2)
        ]
    );

    // Live, and nothing twice: dave's events are next.
    let mut dave = Member::login(&server, "dave").await;
    dave.sub_with(ROOM, false, false, &[]).await;
    let e = alice.expect_event(JOIN, MESSAGE, ROOM, "dave").await;
    assert_eq!(offset(&e.position), offset(&sub.position) + 7);
    dave.join_with(STAGE, false, false, &[]).await;
    let e = alice.expect_event(JOIN, STREAM, STAGE, "dave").await;
    assert_eq!(offset(&e.position), offset(&join.position) + 3);
}

/// R54, R58, §9.3: a new session that subscribes again with `since` (the SDK restoring
/// a channel after its old session timed out) gets the presence events it missed after
/// that position replayed in order — not its own TIMEOUT nor its own new JOIN — then the
/// SNAPSHOT of the current members at the reply's position, then live events.
#[tokio::test]
async fn r58_subscribe_with_since_replays_missed_presence_events_then_snapshot() {
    let server = TestServer::with(short_presence).await;
    let mut bob = Member::login(&server, "bob").await;
    bob.sub(ROOM).await;
    let (mut alice, _) = Member::login_with(&server, "alice", 1).await;
    alice.sub(ROOM).await;
    bob.expect_event(JOIN, MESSAGE, ROOM, "alice").await;
    let mut carol = Member::login(&server, "carol").await;
    carol.sub_with(ROOM, false, false, &[]).await;
    let seen = alice.expect_event(JOIN, MESSAGE, ROOM, "carol").await;
    bob.expect_event(JOIN, MESSAGE, ROOM, "carol").await;
    drop(alice);

    bob.set_state(MESSAGE, ROOM, &[("k", "v")]).await;
    bob.expect_event(TIMEOUT, MESSAGE, ROOM, "alice").await;
    carol.unsubscribe(ROOM).await;
    bob.expect_event(LEAVE, MESSAGE, ROOM, "carol").await;
    let mut dave = Member::login(&server, "dave").await;
    dave.sub_with(ROOM, false, false, &[("d", "1")]).await;
    bob.expect_event(JOIN, MESSAGE, ROOM, "dave").await;

    let mut alice = Member::login(&server, "alice").await;
    let reply = alice
        .req(Req::Subscribe(pb::SubscribeRequest {
            since: seen.position,
            ..sub_request(ROOM, true, false, &[])
        }))
        .await;
    let Rep::Subscribe(reply) = reply else {
        panic!("subscribe with since: {reply:?}");
    };
    assert!(!reply.gap, "{reply:?}");
    let from = offset(&seen.position);
    let e = alice
        .expect_event(STATE_CHANGED, MESSAGE, ROOM, "bob")
        .await;
    assert_eq!(offset(&e.position), from + 1);
    let e = alice.expect_event(LEAVE, MESSAGE, ROOM, "carol").await;
    assert_eq!(
        offset(&e.position),
        from + 3,
        "its own TIMEOUT (+2) is not sent"
    );
    let e = alice.expect_event(JOIN, MESSAGE, ROOM, "dave").await;
    assert_eq!(offset(&e.position), from + 4);
    let snapshot = alice.snapshot(MESSAGE, ROOM, &reply.position).await;
    assert_eq!(offset(&reply.position), from + 4);
    assert_eq!(
        snapshot_states(&snapshot),
        members(&[
            ("alice", &[]),
            ("bob", &[("k", "v")]),
            ("dave", &[("d", "1")])
        ])
    );
    bob.expect_event(JOIN, MESSAGE, ROOM, "alice").await;
    let mut erin = Member::login(&server, "erin").await;
    erin.sub_with(ROOM, false, false, &[]).await;
    let e = alice.expect_event(JOIN, MESSAGE, ROOM, "erin").await;
    assert_eq!(offset(&e.position), from + 6, "after its own JOIN (+5)");
}

// ---------------------------------------------------------------------------------------
// Presence unavailable (R133)
// ---------------------------------------------------------------------------------------

/// R133, −13014: on a server without a presence service the presence calls answer
/// −13014 (after the argument checks), while subscribing, joining and messages work.
#[tokio::test]
async fn r133_without_presence_service_calls_answer_13014() {
    let server = TestServer::without_presence(|_| {}).await;
    let mut alice = Member::new(server.raw_login("alice").await, "alice");
    let reply = alice
        .req(Req::Subscribe(sub_request(ROOM, false, false, &[])))
        .await;
    assert!(matches!(reply, Rep::Subscribe(_)), "{reply:?}");
    let reply = alice
        .try_who_now(pb::WhoNowRequest {
            channel_type: MESSAGE,
            channel_name: ROOM.into(),
            ..Default::default()
        })
        .await;
    assert_error(reply, PRESENCE_INACTIVE, "whoNow");
    let reply = alice
        .req(Req::WhereNow(pb::WhereNowRequest {
            user_id: "alice".into(),
        }))
        .await;
    assert_error(reply, PRESENCE_INACTIVE, "whereNow");
    let reply = alice.try_set_state(MESSAGE, ROOM, &[("a", "1")]).await;
    assert_error(reply, PRESENCE_INACTIVE, "setState");
    let reply = alice.try_get_state(MESSAGE, ROOM, "alice").await;
    assert_error(reply, PRESENCE_INACTIVE, "getState");
    let reply = alice.try_remove_state(MESSAGE, ROOM, &[]).await;
    assert_error(reply, PRESENCE_INACTIVE, "removeState");
    alice.publish(ROOM, "still works").await;
    alice.expect_message(ROOM, "still works").await;
}

/// R133, §9.3: a member that subscribes or joins with presence while the presence
/// service is unavailable gets ERROR_OUT_OF_SERVICE for that channel (instead of the
/// SNAPSHOT) and stays subscribed.
#[tokio::test]
async fn r133_entering_without_presence_service_gets_error_out_of_service() {
    let server = TestServer::without_presence(|_| {}).await;
    let mut alice = Member::new(server.raw_login("alice").await, "alice");
    let reply = alice
        .req(Req::Subscribe(sub_request(ROOM, true, false, &[])))
        .await;
    assert!(matches!(reply, Rep::Subscribe(_)), "{reply:?}");
    let e = alice.next_event().await;
    assert_eq!(
        (e.event_type, e.channel_type, e.channel_name.as_str()),
        (OUT_OF_SERVICE, MESSAGE, ROOM),
        "{e:?}"
    );
    let reply = alice
        .req(Req::Join(join_request(STAGE, "alice", true, false, &[])))
        .await;
    assert!(matches!(reply, Rep::Join(_)), "{reply:?}");
    assert!(matches!(alice.next_push().await, Rep::Topic(_)));
    let e = alice.next_event().await;
    assert_eq!(
        (e.event_type, e.channel_type, e.channel_name.as_str()),
        (OUT_OF_SERVICE, STREAM, STAGE),
        "{e:?}"
    );
    alice.publish(ROOM, "still subscribed").await;
    alice.expect_message(ROOM, "still subscribed").await;
}

/// R129: state kept for channels not entered yet is bounded per session by the number of
/// channels a client can be in (max_subscriptions + max_stream_channels); one more
/// channel is refused with −11005, the connection carries on, and what was kept still
/// applies on entering.
#[tokio::test]
async fn r129_state_kept_before_entering_is_bounded_per_session() {
    let server = TestServer::with(|c| {
        limits(c, |l| {
            l.max_subscriptions = 2;
            l.max_stream_channels = 1;
        })
    })
    .await;
    let mut bob = Member::login(&server, "bob").await;
    for channel in ["c1", "c2", "c3"] {
        bob.set_state(MESSAGE, channel, &[("k", channel)]).await;
    }
    match bob.try_set_state(MESSAGE, "c4", &[("k", "c4")]).await {
        Rep::Error(e) => assert_eq!(e.code, -11005, "{e:?}"),
        other => panic!("a fourth channel's state is refused: {other:?}"),
    }
    // More keys for a channel already kept are fine.
    bob.set_state(MESSAGE, "c1", &[("j", "1")]).await;
    bob.sub_with("c1", true, false, &[]).await;
    assert_eq!(
        bob.get_state(MESSAGE, "c1", "bob").await,
        st(&[("j", "1"), ("k", "c1")])
    );
    // Entering c1 frees its place: c4 fits now.
    bob.set_state(MESSAGE, "c4", &[("k", "c4")]).await;
}
