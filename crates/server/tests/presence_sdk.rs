//! Presence through the Rust SDK over real sockets (api.md §5, §9.3, R84–R87,
//! R116–R133): SNAPSHOTs, REMOTE_JOIN / LEAVE / TIMEOUT / STATE_CHANGED to the other
//! members with presence, quiet members, whoNow paging, whereNow, temporary state
//! (before entering, across a resume, lost at a timeout), the replay of missed presence
//! events on resume, and interval mode on and off. Crowds are raw logins (cheaper than
//! SDK clients); every wait is bounded so a failing test fails fast.

mod common;

use common::proxy::FaultProxy;
use common::*;
use futures_util::StreamExt;
use futures_util::future::join_all;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use switchboard_client::{
    ChannelType, Client, ClientConfig, ErrorCode, Event, EventStream, JoinOptions, LinkState,
    PresenceEvent, PresenceEventType, SubscribeOptions, UserState, WhoNowOptions,
};
use switchboard_protocol::pb::{self, client_message, server_message};
use tokio::time::{Instant, sleep};

use PresenceEventType::{
    Interval, RemoteJoin, RemoteLeave, RemoteStateChanged, RemoteTimeout, Snapshot,
};

fn quiet() -> SubscribeOptions {
    SubscribeOptions {
        be_quiet: true,
        ..Default::default()
    }
}

fn no_presence() -> SubscribeOptions {
    SubscribeOptions {
        with_presence: false,
        ..Default::default()
    }
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `user → state` of a SNAPSHOT or a whoNow page.
fn by_user(list: &[UserState]) -> BTreeMap<String, BTreeMap<String, String>> {
    list.iter()
        .map(|u| {
            assert_eq!(
                u.states_count as usize,
                u.states.len(),
                "statesCount of {u:?}"
            );
            (u.user_id.clone(), u.states.clone())
        })
        .collect()
}

/// The next presence event; panics on timeout, end or lag.
async fn next_presence(stream: &mut EventStream<PresenceEvent>, what: &str) -> PresenceEvent {
    next_within(stream, STEP, what)
        .await
        .unwrap_or_else(|| panic!("presence stream ended while waiting for {what}"))
        .unwrap_or_else(|e| panic!("presence stream lagged while waiting for {what}: {e}"))
}

/// The next presence event, which must be `kind` about `user`.
async fn expect_event(
    stream: &mut EventStream<PresenceEvent>,
    kind: PresenceEventType,
    user: &str,
    what: &str,
) -> PresenceEvent {
    let e = next_presence(stream, what).await;
    assert_eq!(
        (e.event_type, e.publisher.as_str()),
        (kind, user),
        "{what}: got {e:?}"
    );
    assert!(
        e.interval.is_none() && e.snapshot.is_none(),
        "{what}: {e:?}"
    );
    assert!(
        e.position.offset > 0,
        "{what}: positioned in the stream: {e:?}"
    );
    e
}

/// The next presence event, which must be the SNAPSHOT; returns its members.
async fn expect_snapshot(
    stream: &mut EventStream<PresenceEvent>,
    what: &str,
) -> BTreeMap<String, BTreeMap<String, String>> {
    let e = next_presence(stream, what).await;
    assert_eq!(e.event_type, Snapshot, "{what}: got {e:?}");
    assert!(e.publisher.is_empty(), "{what}: no publisher: {e:?}");
    by_user(
        e.snapshot
            .as_deref()
            .expect("a SNAPSHOT carries its members"),
    )
}

/// Every member of a channel (all pages) with its state.
async fn everyone(
    client: &Client,
    channel: &str,
    channel_type: ChannelType,
) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut all = BTreeMap::new();
    let mut page = None;
    loop {
        let options = WhoNowOptions {
            include_state: true,
            page,
            ..Default::default()
        };
        let r = client
            .presence()
            .who_now(channel, channel_type, options)
            .await
            .expect("whoNow");
        all.extend(by_user(&r.occupants));
        if r.next_page.is_empty() {
            return all;
        }
        page = Some(r.next_page);
    }
}

/// A raw request that must succeed.
async fn raw_ok(raw: &mut RawClient, body: client_message::Body) {
    let reply = raw.request(body).await;
    assert!(
        !matches!(reply, server_message::Body::Error(_)),
        "raw request failed: {reply:?}"
    );
}

fn raw_set_state(channel: &str, key: &str, value: &str) -> client_message::Body {
    client_message::Body::SetState(pb::SetStateRequest {
        channel_type: pb::ChannelType::Message as i32,
        channel_name: channel.into(),
        states: [(key.to_string(), value.to_string())].into(),
    })
}

fn raw_unsubscribe(channel: &str) -> client_message::Body {
    client_message::Body::Unsubscribe(pb::UnsubscribeRequest {
        channel_name: channel.into(),
    })
}

/// §9.3 and R86: the SNAPSHOT that follows a subscribe (and a join, after the topic
/// SNAPSHOT) lists every visible member with its state, the subscriber included, and
/// no quiet member; it does not move the channel's position.
#[tokio::test]
async fn snapshot_lists_visible_members_with_their_state() {
    tokio::time::timeout(Duration::from_secs(10), async {
        let server = TestServer::start().await;
        let (alice, bob, quiet_q, carol) = (
            server.login("alice").await,
            server.login("bob").await,
            server.login("q").await,
            server.login("carol").await,
        );
        subscribed(&alice, "room").await;
        alice
            .presence()
            .set_state(
                "room",
                ChannelType::Message,
                [("mood", "happy"), ("seat", "3")],
            )
            .await
            .expect("alice sets state");
        subscribed(&bob, "room").await;
        quiet_q
            .subscribe("room", quiet())
            .await
            .expect("q, quietly");

        let mut sub = subscribed(&carol, "room").await;
        let mut events = sub.presence();
        let members = expect_snapshot(&mut events, "carol's SNAPSHOT").await;
        let expected: BTreeMap<_, _> = [
            (
                "alice".to_string(),
                map(&[("mood", "happy"), ("seat", "3")]),
            ),
            ("bob".to_string(), map(&[])),
            ("carol".to_string(), map(&[])),
        ]
        .into();
        assert_eq!(members, expected, "visible members with state; not q (R86)");

        // The SNAPSHOT did not move carol's position: the next event is delivered.
        bob.presence()
            .set_state("room", ChannelType::Message, [("seat", "4")])
            .await
            .expect("bob sets state");
        let e = expect_event(&mut events, RemoteStateChanged, "bob", "bob's state").await;
        assert_eq!(e.state_changed, map(&[("seat", "4")]));
        // A repeated subscribe (R81) is answered with a SNAPSHOT again, taken at the
        // position carol already has: it is not dropped as a duplicate.
        let mut again = subscribed(&carol, "room").await;
        let members = expect_snapshot(&mut again.presence(), "the second SNAPSHOT").await;
        assert_eq!(members["bob"], map(&[("seat", "4")]));
        assert_eq!(members.len(), 3);

        // Stream channels: the presence SNAPSHOT follows the join (and its topic
        // SNAPSHOT), on the channel's presence stream and on the client's streams.
        join_stream(&alice, "arena", JoinOptions::default()).await;
        alice
            .presence()
            .set_state("arena", ChannelType::Stream, [("team", "red")])
            .await
            .expect("alice sets state in arena");
        let mut all = carol.events();
        let arena = join_stream(&carol, "arena", JoinOptions::default()).await;
        let mut topics = arena.topic_events();
        let mut arena_presence = arena.presence_events();
        let t = next_within(&mut topics, STEP, "topic SNAPSHOT").await;
        assert!(matches!(t, Some(Ok(_))), "the topic SNAPSHOT comes: {t:?}");
        let members = expect_snapshot(&mut arena_presence, "arena SNAPSHOT").await;
        let expected: BTreeMap<_, _> = [
            ("alice".to_string(), map(&[("team", "red")])),
            ("carol".to_string(), map(&[])),
        ]
        .into();
        assert_eq!(members, expected);
        // On events(): the topic SNAPSHOT first, then the presence SNAPSHOT.
        let mut kinds = Vec::new();
        while kinds.len() < 2 {
            match next_within(&mut all, STEP, "events()").await {
                Some(Ok(Event::Topic(t))) => kinds.push(format!("topic {}", t.event_type.as_str())),
                Some(Ok(Event::Presence(p))) => {
                    assert_eq!(p.channel_type, ChannelType::Stream);
                    assert_eq!(p.channel_name, "arena");
                    kinds.push(format!("presence {}", p.event_type.as_str()));
                }
                Some(Ok(Event::LinkState(_))) => {}
                other => panic!("unexpected on events(): {other:?}"),
            }
        }
        assert_eq!(kinds, ["topic SNAPSHOT", "presence SNAPSHOT"]);
    })
    .await
    .expect("test within its time limit");
}

/// R116, R117, R120, R127, R130, R132: a visible member's join, state changes and leave
/// reach the other members that subscribed with presence, naming it in `publisher` and
/// carrying the whole state; never the member itself, and nobody subscribed with
/// `withPresence: false`. Events carry increasing positions of the channel's stream.
#[tokio::test]
async fn remote_events_reach_members_with_presence_but_not_the_actor() {
    tokio::time::timeout(Duration::from_secs(10), async {
        let server = TestServer::start().await;
        let (alice, bob, carol, dave) = (
            server.login("alice").await,
            server.login("bob").await,
            server.login("carol").await,
            server.login("dave").await,
        );
        let mut a = subscribed(&alice, "room").await;
        let mut a = {
            let mut s = a.presence();
            expect_snapshot(&mut s, "alice's SNAPSHOT").await;
            s
        };
        let mut b_sub = subscribed(&bob, "room").await;
        let mut b = b_sub.presence();
        expect_snapshot(&mut b, "bob's SNAPSHOT").await;
        expect_event(&mut a, RemoteJoin, "bob", "alice hears bob join").await;
        // carol has no presence events (R116), on any of her streams.
        let mut carol_all = carol.presence_events();
        let mut c_sub = carol.subscribe("room", no_presence()).await.expect("carol");
        let mut c = c_sub.presence();
        expect_event(&mut a, RemoteJoin, "carol", "alice hears carol join").await;
        expect_event(&mut b, RemoteJoin, "carol", "bob hears carol join").await;

        let mut d_sub = subscribed(&dave, "room").await;
        let mut d = d_sub.presence();
        expect_snapshot(&mut d, "dave's SNAPSHOT").await;
        let presence = dave.presence();
        presence
            .set_state("room", ChannelType::Message, [("a", "1")])
            .await
            .expect("set a");
        presence
            .set_state("room", ChannelType::Message, [("b", "2")])
            .await
            .expect("set b");
        presence
            .set_state("room", ChannelType::Message, [("a", "10")])
            .await
            .expect("overwrite a");
        presence
            .remove_state("room", ChannelType::Message, Some(vec!["b".into()]))
            .await
            .expect("remove b");
        presence
            .remove_state("room", ChannelType::Message, None)
            .await
            .expect("remove all");
        dave.unsubscribe("room").await.expect("dave leaves");

        let states = [
            map(&[("a", "1")]),
            map(&[("a", "1"), ("b", "2")]),
            map(&[("a", "10"), ("b", "2")]),
            map(&[("a", "10")]),
            map(&[]),
        ];
        for (who, stream) in [("alice", &mut a), ("bob", &mut b)] {
            let mut last = expect_event(stream, RemoteJoin, "dave", who).await.position;
            for s in &states {
                let e = expect_event(stream, RemoteStateChanged, "dave", who).await;
                assert_eq!(&e.state_changed, s, "{who}: the whole state (R120, R127)");
                assert_eq!(e.channel_type, ChannelType::Message);
                assert_eq!(e.channel_name, "room");
                assert!(e.position.offset > last.offset, "{who}: positions increase");
                last = e.position;
            }
            let e = expect_event(stream, RemoteLeave, "dave", who).await;
            assert!(e.state_changed.is_empty());
            assert!(e.position.offset > last.offset);
        }
        // dave heard nothing about itself; its stream ended with the unsubscribe.
        let end = next_within(&mut d, STEP, "dave's stream ends").await;
        assert!(
            end.is_none(),
            "dave: nothing about itself, then the end: {end:?}"
        );
        // carol: nothing at all, yet she is subscribed (messages still come).
        assert_quiet(&mut c, Duration::from_millis(200), "carol's subscription").await;
        assert_quiet(&mut carol_all, Duration::from_millis(10), "carol's client").await;
        let mut c_msgs = c_sub.messages();
        alice
            .publish("room", "hi", Default::default())
            .await
            .expect("publish");
        assert_eq!(
            text(&next_message(&mut c_msgs, "carol's message").await.message),
            "hi"
        );
        // dave's state went with it (R132).
        let e = alice
            .presence()
            .get_state("dave", "room", ChannelType::Message)
            .await
            .expect_err("dave is gone");
        assert_eq!(e.code, ErrorCode::PresenceUserNotExist.as_i32());

        // Stream channels: the same events on the channel's presence stream.
        let arena_a = join_stream(&alice, "arena", JoinOptions::default()).await;
        let mut sa = arena_a.presence_events();
        expect_snapshot(&mut sa, "alice's arena SNAPSHOT").await;
        let arena_d = join_stream(&dave, "arena", JoinOptions::default()).await;
        dave.presence()
            .set_state("arena", ChannelType::Stream, [("hp", "100")])
            .await
            .expect("dave's arena state");
        arena_d.leave().await.expect("dave leaves arena");
        let e = expect_event(&mut sa, RemoteJoin, "dave", "arena join").await;
        assert_eq!(
            (e.channel_type, e.channel_name.as_str()),
            (ChannelType::Stream, "arena")
        );
        let e = expect_event(&mut sa, RemoteStateChanged, "dave", "arena state").await;
        assert_eq!(e.state_changed, map(&[("hp", "100")]));
        expect_event(&mut sa, RemoteLeave, "dave", "arena leave").await;
        // Nothing of arena on room's stream and the other way round.
        assert_quiet(&mut a, Duration::from_millis(100), "room stream of alice").await;
        // Logout is a leave too.
        let arena_b = join_stream(&bob, "arena", JoinOptions::default()).await;
        drop(arena_b);
        expect_event(&mut sa, RemoteJoin, "bob", "bob joins arena").await;
        bob.logout().await.expect("bob logs out");
        expect_event(&mut sa, RemoteLeave, "bob", "bob's logout in arena").await;
        expect_event(&mut a, RemoteLeave, "bob", "bob's logout in room").await;
    })
    .await
    .expect("test within its time limit");
}

/// R84–R87 (and R131): a quiet member receives every presence event of the channel,
/// but no event is ever sent about it, and it is absent from SNAPSHOTs, whoNow,
/// whereNow and getState.
#[tokio::test]
async fn quiet_member_hears_everything_and_is_never_seen() {
    tokio::time::timeout(Duration::from_secs(10), async {
        let server = TestServer::start().await;
        let (alice, q) = (server.login("alice").await, server.login("q").await);
        let mut a_sub = subscribed(&alice, "room").await;
        let mut a = a_sub.presence();
        expect_snapshot(&mut a, "alice's SNAPSHOT").await;

        let mut q_sub = q
            .subscribe("room", quiet())
            .await
            .expect("q subscribes quietly");
        let mut qs = q_sub.presence();
        let members = expect_snapshot(&mut qs, "q's SNAPSHOT").await;
        assert_eq!(
            members.keys().collect::<Vec<_>>(),
            ["alice"],
            "not q itself (R86)"
        );
        q.presence()
            .set_state("room", ChannelType::Message, [("k", "v")])
            .await
            .expect("q may set state");
        let arena_q = join_stream(
            &q,
            "arena",
            JoinOptions {
                be_quiet: true,
                ..Default::default()
            },
        )
        .await;
        subscribed(&q, "visible").await;

        // R84: q hears alice.
        alice
            .presence()
            .set_state("room", ChannelType::Message, [("x", "1")])
            .await
            .expect("alice sets state");
        let e = expect_event(&mut qs, RemoteStateChanged, "alice", "q hears alice").await;
        assert_eq!(e.state_changed, map(&[("x", "1")]));
        // R85: alice hears nothing of q (join, state, leave).
        q.unsubscribe("room").await.expect("q leaves");
        assert_quiet(&mut a, Duration::from_millis(300), "alice about q (R85)").await;
        let mut q_sub = q.subscribe("room", quiet()).await.expect("q back, quietly");
        let mut qs = q_sub.presence();
        expect_snapshot(&mut qs, "q's second SNAPSHOT").await;

        // R86: not in whoNow.
        let who = alice
            .presence()
            .who_now("room", ChannelType::Message, WhoNowOptions::default())
            .await
            .expect("whoNow");
        assert_eq!(
            by_user(&who.occupants).keys().collect::<Vec<_>>(),
            ["alice"]
        );
        assert_eq!(who.total_occupancy, 1);
        let count = alice
            .presence()
            .who_now(
                "room",
                ChannelType::Message,
                WhoNowOptions {
                    include_user_id: false,
                    ..Default::default()
                },
            )
            .await
            .expect("count");
        assert_eq!((count.total_occupancy, count.occupants.len()), (1, 0));
        // R87: whereNow lists only the visible channel.
        let r = alice.presence().where_now("q").await.expect("whereNow");
        let names: Vec<_> = r.channels.iter().map(|c| c.channel_name.as_str()).collect();
        assert_eq!(names, ["visible"], "quiet room and arena not listed (R87)");
        assert_eq!(r.total_channel, 1);
        // R131: no state to read about a quiet member.
        for (ch, ty) in [
            ("room", ChannelType::Message),
            ("arena", ChannelType::Stream),
        ] {
            let e = alice
                .presence()
                .get_state("q", ch, ty)
                .await
                .expect_err("q is not visibly present");
            assert_eq!(e.code, ErrorCode::PresenceUserNotExist.as_i32(), "{ch}");
        }
        // R84 in a stream channel: quiet q hears alice join and leave.
        let mut qa = arena_q.presence_events();
        assert!(
            expect_snapshot(&mut qa, "q's arena SNAPSHOT")
                .await
                .is_empty()
        );
        let arena_a = join_stream(&alice, "arena", JoinOptions::default()).await;
        expect_event(&mut qa, RemoteJoin, "alice", "q hears alice join arena").await;
        let mut sa = arena_a.presence_events();
        let members = expect_snapshot(&mut sa, "alice's arena SNAPSHOT").await;
        assert_eq!(members.keys().collect::<Vec<_>>(), ["alice"], "not q");
        arena_q.leave().await.expect("q leaves arena");
        assert_quiet(
            &mut sa,
            Duration::from_millis(300),
            "alice about q in arena",
        )
        .await;
    })
    .await
    .expect("test within its time limit");
}

/// R122–R124: whoNow pages of at most the page size, ordered by user id, with
/// `totalOccupancy` = the count on the page; following `nextPage` lists every member
/// present throughout exactly once, even while others come and go; with
/// `includedUserId: false` only the whole count comes; states only when asked for.
#[tokio::test]
async fn who_now_pages_list_every_member_exactly_once() {
    const CROWD: usize = 2_000;
    tokio::time::timeout(Duration::from_secs(30), async {
        let server = TestServer::start().await;
        let started = Instant::now();
        let names: Vec<String> = (0..CROWD).map(|i| format!("u{i:04}")).collect();
        let mut crowd = Vec::with_capacity(CROWD);
        for chunk in names.chunks(100) {
            let logins = chunk.iter().map(|u| server.raw_member(u, "hall"));
            crowd.extend(join_all(logins).await);
        }
        eprintln!("{CROWD} members in {:?}", started.elapsed());
        raw_ok(&mut crowd[7], raw_set_state("hall", "role", "host")).await;
        let asker = server.login("asker").await;
        let presence = asker.presence();

        let count = presence
            .who_now(
                "hall",
                ChannelType::Message,
                WhoNowOptions {
                    include_user_id: false,
                    ..Default::default()
                },
            )
            .await
            .expect("count");
        assert_eq!(
            count.total_occupancy as usize, CROWD,
            "R122: the whole count"
        );
        assert!(count.occupants.is_empty() && count.next_page.is_empty());

        // A traversal while u0100 (already listed) and u1500 (not yet) leave and
        // u0250a (behind the cursor) and u1700a (ahead) arrive.
        let mut listed: Vec<String> = Vec::new();
        let mut page = None;
        let mut pages = 0;
        let mut newcomers = Vec::new();
        loop {
            let r = presence
                .get_online_users(
                    "hall",
                    ChannelType::Message,
                    WhoNowOptions {
                        page,
                        ..Default::default()
                    },
                )
                .await
                .expect("a page");
            pages += 1;
            assert!(r.occupants.len() <= 50, "R123: at most the page size");
            assert_eq!(r.total_occupancy as usize, r.occupants.len(), "R124");
            let users: Vec<String> = r.occupants.iter().map(|u| u.user_id.clone()).collect();
            let mut sorted = users.clone();
            sorted.sort();
            assert_eq!(users, sorted, "ordered by user id");
            for u in &r.occupants {
                assert!(
                    u.states.is_empty() && u.states_count == 0,
                    "no states unless asked"
                );
            }
            listed.extend(users);
            if pages == 5 {
                raw_ok(&mut crowd[100], raw_unsubscribe("hall")).await;
                raw_ok(&mut crowd[1500], raw_unsubscribe("hall")).await;
                newcomers.push(server.raw_member("u0250a", "hall").await);
                newcomers.push(server.raw_member("u1700a", "hall").await);
            }
            if r.next_page.is_empty() {
                break;
            }
            page = Some(r.next_page);
        }
        let unique: BTreeSet<&String> = listed.iter().collect();
        assert_eq!(unique.len(), listed.len(), "nobody listed twice (R123)");
        let throughout: BTreeSet<&String> = names
            .iter()
            .filter(|u| *u != "u0100" && *u != "u1500")
            .collect();
        let missing: Vec<_> = throughout.difference(&unique).collect();
        assert!(
            missing.is_empty(),
            "members present throughout all listed: {missing:?}"
        );
        for u in &unique {
            assert!(
                names.contains(u) || *u == "u0250a" || *u == "u1700a",
                "{u} never was a member"
            );
        }
        assert!(pages >= CROWD / 50, "{pages} pages");

        // After the changes: a fresh traversal is exact, and states come when asked.
        let all = everyone(&asker, "hall", ChannelType::Message).await;
        let mut expected: BTreeSet<String> = throughout.into_iter().cloned().collect();
        expected.extend(["u0250a".to_string(), "u1700a".to_string()]);
        assert_eq!(all.keys().cloned().collect::<BTreeSet<_>>(), expected);
        assert_eq!(all["u0007"], map(&[("role", "host")]));
        assert!(all["u0008"].is_empty());
        drop(newcomers);
        drop(crowd);
    })
    .await
    .expect("test within its time limit");
}

/// R125, R126: whereNow (and getUserChannels) lists every MESSAGE and STREAM channel
/// the user is visibly in, with `totalChannel`; presence calls with channel type USER
/// fail locally with −10019.
#[tokio::test]
async fn where_now_lists_message_and_stream_channels() {
    tokio::time::timeout(Duration::from_secs(10), async {
        let server = TestServer::start().await;
        let (alice, bob) = (server.login("alice").await, server.login("bob").await);
        subscribed(&alice, "m1").await;
        alice
            .subscribe("m2", no_presence())
            .await
            .expect("m2, still a member");
        join_stream(&alice, "s1", JoinOptions::default()).await;
        join_stream(
            &alice,
            "s2",
            JoinOptions {
                with_presence: false,
                ..Default::default()
            },
        )
        .await;

        let r = bob.presence().where_now("alice").await.expect("whereNow");
        let got: BTreeSet<(String, &str)> = r
            .channels
            .iter()
            .map(|c| (c.channel_name.clone(), c.channel_type.as_str()))
            .collect();
        let expected: BTreeSet<(String, &str)> = [
            ("m1".to_string(), "MESSAGE"),
            ("m2".to_string(), "MESSAGE"),
            ("s1".to_string(), "STREAM"),
            ("s2".to_string(), "STREAM"),
        ]
        .into();
        assert_eq!(got, expected);
        assert_eq!(r.total_channel as usize, r.channels.len());
        let again = bob
            .presence()
            .get_user_channels("alice")
            .await
            .expect("alias");
        assert_eq!(again.channels.len(), 4);

        alice.unsubscribe("m1").await.expect("leave m1");
        let r = bob.presence().where_now("alice").await.expect("whereNow");
        assert_eq!(r.total_channel, 3);
        let r = bob
            .presence()
            .where_now("nobody")
            .await
            .expect("whereNow of nobody");
        assert_eq!((r.total_channel, r.channels.len()), (0, 0));

        // R125: USER is refused before anything is sent (even logged out).
        let logged_out = server.client("carol");
        let p = logged_out.presence();
        let errors = [
            p.who_now("m1", ChannelType::User, WhoNowOptions::default())
                .await
                .err(),
            p.set_state("m1", ChannelType::User, [("k", "v")])
                .await
                .err(),
            p.get_state("alice", "m1", ChannelType::User).await.err(),
            p.remove_state("m1", ChannelType::User, None).await.err(),
        ];
        for e in errors {
            let e = e.expect("USER is refused");
            assert_eq!(e.code, ErrorCode::InvalidChannelType.as_i32(), "{e:?}");
        }
    })
    .await
    .expect("test within its time limit");
}

/// R127–R131 through the SDK: the server's refusals come back with their codes.
#[tokio::test]
async fn state_refusals_come_back_with_their_codes() {
    tokio::time::timeout(Duration::from_secs(10), async {
        let server = TestServer::start().await;
        let alice = server.login("alice").await;
        subscribed(&alice, "room").await;
        let p = alice.presence();
        let no_keys: [(&str, &str); 0] = [];
        let e = p
            .set_state("room", ChannelType::Message, no_keys)
            .await
            .expect_err("no keys");
        assert_eq!(
            e.code,
            ErrorCode::PresenceInvalidArgument.as_i32(),
            "R128: {e:?}"
        );
        let big = "x".repeat(16 * 1024 + 1);
        let e = p
            .set_state("room", ChannelType::Message, [("k", big.as_str())])
            .await
            .expect_err("value too long");
        assert_eq!(
            e.code,
            ErrorCode::PresenceStateValueSizeOverflow.as_i32(),
            "R128: {e:?}"
        );
        let many: Vec<(String, String)> = (0..33).map(|i| (format!("k{i}"), "v".into())).collect();
        let e = p
            .set_state("room", ChannelType::Message, many)
            .await
            .expect_err("too many keys");
        assert_eq!(
            e.code,
            ErrorCode::PresenceStateCountOverflow.as_i32(),
            "R128: {e:?}"
        );
        let e = p
            .remove_state(
                "room",
                ChannelType::Message,
                Some(vec!["a".into(), "a".into()]),
            )
            .await
            .expect_err("duplicate key");
        assert_eq!(
            e.code,
            ErrorCode::PresenceStateDuplicateKey.as_i32(),
            "R130: {e:?}"
        );
        let e = p
            .get_state("nobody", "room", ChannelType::Message)
            .await
            .expect_err("not present");
        assert_eq!(
            e.code,
            ErrorCode::PresenceUserNotExist.as_i32(),
            "R131: {e:?}"
        );
        assert_eq!(e.operation, "getState");
        let r = p
            .get_state("alice", "room", ChannelType::Message)
            .await
            .expect("own state");
        assert_eq!((r.user_id.as_str(), r.states_count), ("alice", 0));
    })
    .await
    .expect("test within its time limit");
}

/// R129: state set (and partly removed) before subscribing or joining is applied when
/// the user enters: it shows in getState, whoNow and the SNAPSHOTs of others.
#[tokio::test]
async fn state_set_before_entering_applies_on_entering() {
    tokio::time::timeout(Duration::from_secs(10), async {
        let server = TestServer::start().await;
        let (alice, bob) = (server.login("alice").await, server.login("bob").await);
        let mut b_sub = subscribed(&bob, "room").await;
        let mut b = b_sub.presence();
        expect_snapshot(&mut b, "bob's SNAPSHOT").await;

        let p = alice.presence();
        p.set_state(
            "room",
            ChannelType::Message,
            [("seat", "3"), ("mood", "ok"), ("x", "1")],
        )
        .await
        .expect("set before subscribing");
        p.remove_state("room", ChannelType::Message, Some(vec!["x".into()]))
            .await
            .expect("remove before subscribing");
        let e = bob
            .presence()
            .get_state("alice", "room", ChannelType::Message)
            .await
            .expect_err("not in the channel yet");
        assert_eq!(e.code, ErrorCode::PresenceUserNotExist.as_i32());
        p.set_state("arena", ChannelType::Stream, [("team", "blue")])
            .await
            .expect("set before joining");

        let mut a_sub = subscribed(&alice, "room").await;
        expect_event(&mut b, RemoteJoin, "alice", "alice enters").await;
        let want = map(&[("mood", "ok"), ("seat", "3")]);
        let r = bob
            .presence()
            .get_state("alice", "room", ChannelType::Message)
            .await
            .expect("alice's state");
        assert_eq!((r.states.clone(), r.states_count), (want.clone(), 2));
        assert_eq!(
            everyone(&bob, "room", ChannelType::Message).await["alice"],
            want
        );
        let members = expect_snapshot(&mut a_sub.presence(), "alice's SNAPSHOT").await;
        assert_eq!(members["alice"], want, "her own SNAPSHOT shows it");

        join_stream(&alice, "arena", JoinOptions::default()).await;
        let arena_b = join_stream(&bob, "arena", JoinOptions::default()).await;
        let members = expect_snapshot(&mut arena_b.presence_events(), "bob's arena SNAPSHOT").await;
        assert_eq!(members["alice"], map(&[("team", "blue")]));
    })
    .await
    .expect("test within its time limit");
}

/// R118, R119: a connection lost and resumed within the presence timeout produces no
/// event for the others, and the state is kept.
#[tokio::test]
async fn resume_in_time_is_silent_and_keeps_the_state() {
    tokio::time::timeout(Duration::from_secs(10), async {
        let server = TestServer::with(short_timeouts).await;
        let proxy = FaultProxy::start(server.addr).await;
        let alice = Client::new(APP_ID, "alice", proxied(&server, &proxy, 2)).expect("client");
        let mut links = alice.link_state_events();
        alice.login(&token("alice")).await.expect("login");
        subscribed(&alice, "room").await;
        alice
            .presence()
            .set_state("room", ChannelType::Message, [("seat", "1")])
            .await
            .expect("state");
        let bob = server.login("bob").await;
        let mut b_sub = subscribed(&bob, "room").await;
        let mut b = b_sub.presence();
        expect_snapshot(&mut b, "bob's SNAPSHOT").await;

        assert!(eventually(STEP, || proxy.connections() == 1).await);
        proxy.cut();
        wait_link(&mut links, LinkState::Disconnected, STEP).await;
        let back = wait_link(&mut links, LinkState::Connected, STEP).await;
        assert!(back.is_resumed, "resumed: {back:?}");
        // Past the presence timeout: still nothing (R118).
        assert_quiet(
            &mut b,
            Duration::from_millis(2_500),
            "bob after alice's resume",
        )
        .await;
        let r = bob
            .presence()
            .get_state("alice", "room", ChannelType::Message)
            .await
            .expect("alice is still present");
        assert_eq!(r.states, map(&[("seat", "1")]), "R119: state kept");
    })
    .await
    .expect("test within its time limit");
}

/// R118, R119, R54: a connection that does not come back within the presence timeout
/// ends in REMOTE_TIMEOUT for the others, then, and the server's copy of its state is
/// gone; the SDK's new session re-enters the channel (REMOTE_JOIN) with the state the
/// SDK had set, and gets a new SNAPSHOT.
#[tokio::test]
async fn timeout_sends_remote_timeout_and_the_state_is_lost() {
    tokio::time::timeout(Duration::from_secs(10), async {
        let server = TestServer::with(short_timeouts).await;
        let proxy = FaultProxy::start(server.addr).await;
        let alice = Client::new(APP_ID, "alice", proxied(&server, &proxy, 2)).expect("client");
        let mut links = alice.link_state_events();
        alice.login(&token("alice")).await.expect("login");
        let mut a_sub = subscribed(&alice, "room").await;
        let mut a = a_sub.presence();
        expect_snapshot(&mut a, "alice's SNAPSHOT").await;
        alice
            .presence()
            .set_state("room", ChannelType::Message, [("seat", "1")])
            .await
            .expect("state");
        let bob = server.login("bob").await;
        let mut b_sub = subscribed(&bob, "room").await;
        let mut b = b_sub.presence();
        expect_snapshot(&mut b, "bob's SNAPSHOT").await;
        expect_event(&mut a, RemoteJoin, "bob", "alice hears bob").await;

        assert!(eventually(STEP, || proxy.connections() == 1).await);
        proxy.refuse();
        proxy.cut();
        let lost = Instant::now();
        let e = expect_event(&mut b, RemoteTimeout, "alice", "alice times out").await;
        let after = lost.elapsed();
        assert!(
            after >= Duration::from_millis(1_800),
            "R118: not before the presence timeout (2 s): {after:?} ({e:?})"
        );
        let err = bob
            .presence()
            .get_state("alice", "room", ChannelType::Message)
            .await
            .expect_err("alice is gone");
        assert_eq!(err.code, ErrorCode::PresenceUserNotExist.as_i32());
        assert!(
            !everyone(&bob, "room", ChannelType::Message)
                .await
                .contains_key("alice")
        );

        proxy.pass();
        let back = wait_link(&mut links, LinkState::Connected, STEP).await;
        assert!(!back.is_resumed, "a new session: {back:?}");
        expect_event(&mut b, RemoteJoin, "alice", "alice re-enters").await;
        let r = bob
            .presence()
            .get_state("alice", "room", ChannelType::Message)
            .await
            .expect("alice is back");
        // The server's copy was deleted with the session (R119, checked above); the
        // SDK re-synchronises its own into the new one (R54).
        assert_eq!(
            r.states.get("seat").map(String::as_str),
            Some("1"),
            "R54: the SDK brought its state back: {r:?}"
        );
        let members = expect_snapshot(&mut a, "alice's SNAPSHOT in the new session").await;
        assert_eq!(members.keys().collect::<Vec<_>>(), ["alice", "bob"]);
    })
    .await
    .expect("test within its time limit");
}

/// Presence events are positioned in the channel's stream: what a member missed while
/// its link was down is replayed on resume, once, in order with the messages, in
/// message and stream channels alike.
#[tokio::test]
async fn resume_replays_missed_presence_events_exactly_once() {
    tokio::time::timeout(Duration::from_secs(12), async {
        let server = TestServer::with(short_timeouts).await;
        let proxy = FaultProxy::start(server.addr).await;
        let bob = Client::new(APP_ID, "bob", proxied(&server, &proxy, 30)).expect("client");
        let mut links = bob.link_state_events();
        bob.login(&token("bob")).await.expect("login");
        let mut all = bob.events();
        subscribed(&bob, "room").await;
        join_stream(&bob, "arena", JoinOptions::default()).await;
        let carol = server.login("carol").await;
        assert!(eventually(STEP, || proxy.connections() == 1).await);
        // Delivered live before the link drops: not to come again with the replay.
        subscribed(&carol, "room").await;
        let mut live = Vec::new();
        while live.len() < 3 {
            if let Some(Ok(Event::Presence(p))) = next_within(&mut all, STEP, "live events").await {
                live.push(format!(
                    "{} {} {}",
                    p.channel_name,
                    p.event_type.as_str(),
                    p.publisher
                ));
            }
        }
        assert_eq!(
            live,
            [
                "room SNAPSHOT ",
                "arena SNAPSHOT ",
                "room REMOTE_JOIN carol"
            ]
        );

        proxy.freeze();
        carol
            .presence()
            .set_state("room", ChannelType::Message, [("k", "1")])
            .await
            .expect("state");
        carol
            .publish("room", "m1", Default::default())
            .await
            .expect("publish");
        let arena = join_stream(&carol, "arena", JoinOptions::default()).await;
        carol
            .presence()
            .set_state("arena", ChannelType::Stream, [("k", "2")])
            .await
            .expect("arena state");
        carol.unsubscribe("room").await.expect("carol leaves room");
        wait_link(&mut links, LinkState::Disconnected, STEP).await;
        proxy.pass();
        let back = wait_link(&mut links, LinkState::Connected, STEP).await;
        assert!(back.is_resumed, "{back:?}");
        arena.leave().await.expect("carol leaves arena (live)");

        let expected = [
            "room REMOTE_STATE_CHANGED carol",
            "room message m1",
            "room REMOTE_LEAVE carol",
            "arena REMOTE_JOIN carol",
            "arena REMOTE_STATE_CHANGED carol",
            "arena REMOTE_LEAVE carol",
        ];
        let mut got: Vec<String> = Vec::new();
        let deadline = Instant::now() + STEP;
        while got.len() < expected.len() + 1 {
            let left = deadline.saturating_duration_since(Instant::now());
            let wait = if got.len() >= expected.len() {
                Duration::from_millis(500)
            } else {
                left
            };
            let Ok(item) = tokio::time::timeout(wait, all.next()).await else {
                break;
            };
            match item.expect("events() goes on").expect("no lag") {
                Event::Presence(p) => got.push(
                    format!(
                        "{} {} {}",
                        p.channel_name,
                        p.event_type.as_str(),
                        p.publisher
                    )
                    .trim_end()
                    .to_string(),
                ),
                Event::Message(m) => {
                    got.push(format!("{} message {}", m.channel_name, text(&m.message)))
                }
                _ => {}
            }
        }
        // Per channel in order; the two channels may interleave.
        for ch in ["room", "arena"] {
            let mine: Vec<&String> = got.iter().filter(|l| l.starts_with(ch)).collect();
            let want: Vec<&str> = expected
                .iter()
                .copied()
                .filter(|l| l.starts_with(ch))
                .collect();
            assert_eq!(mine, want, "{ch}: every event once, in order; all: {got:?}");
        }
    })
    .await
    .expect("test within its time limit");
}

/// R121: above the threshold (8 here) for the debounce time (200 ms), joins, leaves,
/// timeouts and state changes come as one INTERVAL event per interval (500 ms) with
/// their lists and `totalOccupancy`; once occupancy has stayed at or below the
/// threshold, single events resume.
#[tokio::test]
async fn interval_mode_aggregates_above_the_threshold_and_ends_below() {
    tokio::time::timeout(Duration::from_secs(10), async {
        let server = TestServer::with(|c| {
            short_timeouts(c);
            for app in &mut c.apps {
                app.limits.presence_interval_threshold = 8;
                app.limits.presence_interval_ms = 500;
                app.limits.presence_interval_debounce_ms = 200;
            }
        })
        .await;
        let alice = server.login("alice").await;
        let mut sub = subscribed(&alice, "room").await;
        let mut a = sub.presence();
        expect_snapshot(&mut a, "alice's SNAPSHOT").await;
        // alice + m1..m8 = 9 visible members: above 8, but not yet for the debounce.
        let mut members = Vec::new();
        for i in 1..=8 {
            let user = format!("m{i}");
            members.push(server.raw_member(&user, "room").await);
            expect_event(&mut a, RemoteJoin, &user, "single join before the switch").await;
        }
        // The debounce (the mechanism under test) passes above the threshold: a window, not a
        // wait for a state the client could see.
        sleep(Duration::from_millis(300)).await;
        // The first change after the debounce switches the mode.
        let mut m9 = server.raw_member("m9", "room").await;
        raw_ok(&mut members[0], raw_set_state("room", "k", "v")).await;
        let mut m10 = server.raw().await;
        m10.login_resume("m10", "", Vec::new(), 1, "").await;
        m10.subscribe("room").await;

        let e = next_presence(&mut a, "the first INTERVAL").await;
        assert_eq!(e.event_type, Interval, "{e:?}");
        assert!(e.publisher.is_empty() && e.snapshot.is_none());
        let d = e.interval.expect("INTERVAL detail");
        assert_eq!(d.join.users, ["m9", "m10"]);
        assert_eq!(d.join.user_count, 2);
        assert!(
            d.leave.users.is_empty() && d.timeout.users.is_empty(),
            "{d:?}"
        );
        assert_eq!(
            by_user(&d.user_state_list),
            [("m1".to_string(), map(&[("k", "v")]))].into()
        );
        assert_eq!(d.total_occupancy, 11);

        // A leave and a timeout (m10's link drops; its session ends after 1 s).
        raw_ok(&mut members[1], raw_unsubscribe("room")).await;
        drop(m10);
        let (mut leave, mut timeout) = (Vec::new(), Vec::new());
        let mut total = 0;
        while timeout.is_empty() {
            let e = next_presence(&mut a, "INTERVAL with the leave and the timeout").await;
            assert_eq!(e.event_type, Interval, "still in interval mode: {e:?}");
            let d = e.interval.expect("detail");
            assert!(
                d.join.users.is_empty() && d.user_state_list.is_empty(),
                "{d:?}"
            );
            leave.extend(d.leave.users);
            timeout.extend(d.timeout.users);
            total = d.total_occupancy;
        }
        assert_eq!(
            (leave, timeout, total),
            (vec!["m2".to_string()], vec!["m10".to_string()], 9)
        );

        // Down to 7: reported in one more INTERVAL, then single events resume.
        raw_ok(&mut members[2], raw_unsubscribe("room")).await;
        raw_ok(&mut m9, raw_unsubscribe("room")).await;
        let e = next_presence(&mut a, "INTERVAL with the last leaves").await;
        let d = e.interval.expect("INTERVAL detail");
        assert_eq!(
            (d.leave.users, d.total_occupancy),
            (vec!["m3".to_string(), "m9".to_string()], 7)
        );
        // One more interval at or below the threshold ends the mode.
        // The debounce passes at or below the threshold (the mechanism under test).
        sleep(Duration::from_millis(700)).await;
        raw_ok(&mut members[3], raw_set_state("room", "k", "w")).await;
        let e = expect_event(&mut a, RemoteStateChanged, "m4", "single events again").await;
        assert_eq!(e.state_changed, map(&[("k", "w")]));
        raw_ok(&mut members[3], raw_unsubscribe("room")).await;
        expect_event(&mut a, RemoteLeave, "m4", "a single leave").await;
        assert_quiet(
            &mut a,
            Duration::from_millis(600),
            "no INTERVAL after the mode ended",
        )
        .await;
    })
    .await
    .expect("test within its time limit");
}

/// R128 allows 32 keys of 16 KB per member, so nine members may hold 4.5 MB of state.
/// A SNAPSHOT of such a channel is larger than the server's outbound queue (4 MiB by
/// default): it must still be delivered (alone through the emptied queue), and whoNow
/// pages with states end at 1 MiB of them; the link stays up.
#[tokio::test]
async fn large_states_do_not_close_the_connection() {
    tokio::time::timeout(Duration::from_secs(10), async {
        let server = TestServer::start().await;
        let value = "v".repeat(16 * 1024);
        let mut members = Vec::new();
        for i in 0..9 {
            let mut raw = server.raw_member(&format!("big{i}"), "room").await;
            // 32 keys of 16 KB, in requests under the 256 KiB frame limit.
            for part in 0..4 {
                let states = (0..8)
                    .map(|k| (format!("k{part}_{k}"), value.clone()))
                    .collect();
                raw_ok(
                    &mut raw,
                    client_message::Body::SetState(pb::SetStateRequest {
                        channel_type: pb::ChannelType::Message as i32,
                        channel_name: "room".into(),
                        states,
                    }),
                )
                .await;
            }
            members.push(raw);
        }
        let alice = server.client("alice");
        let mut links = alice.link_state_events();
        alice.login(&token("alice")).await.expect("login");
        wait_link(&mut links, LinkState::Connected, STEP).await;
        // With states, a page also ends once it holds 1 MiB of them (docs/protocol.md),
        // so the nine members come over several pages, each once.
        let mut listed = Vec::new();
        let mut page = None;
        loop {
            let options = WhoNowOptions {
                include_state: true,
                page: page.clone(),
                ..Default::default()
            };
            let who = alice
                .presence()
                .who_now("room", ChannelType::Message, options)
                .await
                .expect("whoNow with states");
            assert!(!who.occupants.is_empty(), "every page lists someone");
            listed.extend(who.occupants.into_iter().map(|o| o.user_id));
            if who.next_page.is_empty() {
                break;
            }
            page = Some(who.next_page);
        }
        listed.sort();
        listed.dedup();
        assert_eq!(listed.len(), 9, "each member once");
        let mut sub = subscribed(&alice, "room").await;
        let members = expect_snapshot(&mut sub.presence(), "the large SNAPSHOT").await;
        // The nine with their full state, and alice herself (state empty).
        assert_eq!(members.len(), 10);
        assert_eq!(members.values().filter(|s| s.len() == 32).count(), 9);
        assert_quiet(&mut links, Duration::from_millis(200), "the link stays up").await;
    })
    .await
    .expect("test within its time limit");
}

/// R133: a member that enters while presence is unavailable (a server without a
/// presence engine) receives ERROR_OUT_OF_SERVICE.
#[tokio::test]
async fn out_of_service_when_presence_is_unavailable() {
    tokio::time::timeout(Duration::from_secs(10), async {
        let broker = std::sync::Arc::new(switchboard_engine_memory::MemoryBroker::new(
            Default::default(),
        ));
        let server = switchboard_server::Server::new(base_config(), broker).with_topics(
            std::sync::Arc::new(switchboard_engine_memory::MemoryTopics::new()),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run(listener, async {
            let _ = stopped.await;
        }));
        let alice = Client::new(APP_ID, "alice", ClientConfig::new(format!("ws://{addr}")))
            .expect("client");
        alice.login(&token("alice")).await.expect("login");
        let e = alice
            .presence()
            .who_now("room", ChannelType::Message, WhoNowOptions::default())
            .await
            .expect_err("no presence here");
        assert_eq!(e.code, ErrorCode::PresenceInactive.as_i32());
        let mut sub = subscribed(&alice, "room").await;
        let e = next_presence(&mut sub.presence(), "ERROR_OUT_OF_SERVICE").await;
        assert_eq!(e.event_type, PresenceEventType::ErrorOutOfService, "{e:?}");
        assert_eq!(e.channel_name, "room");
        let _ = stop.send(());
    })
    .await
    .expect("test within its time limit");
}

/// R81, R85, R86: a repeated subscribe that turns a visible member quiet makes it leave
/// the others' view (REMOTE_LEAVE, gone from whoNow); turning visible again is a
/// REMOTE_JOIN.
#[tokio::test]
async fn turning_quiet_by_resubscribing_is_a_leave_and_back_a_join() {
    tokio::time::timeout(Duration::from_secs(10), async {
        let server = TestServer::start().await;
        let (alice, bob) = (server.login("alice").await, server.login("bob").await);
        let mut a_sub = subscribed(&alice, "room").await;
        let mut a = a_sub.presence();
        expect_snapshot(&mut a, "alice's SNAPSHOT").await;
        let _b = subscribed(&bob, "room").await;
        expect_event(&mut a, RemoteJoin, "bob", "bob joins").await;
        let _b = bob
            .subscribe("room", quiet())
            .await
            .expect("bob turns quiet");
        expect_event(&mut a, RemoteLeave, "bob", "bob turned quiet").await;
        let who = alice
            .presence()
            .who_now("room", ChannelType::Message, WhoNowOptions::default())
            .await
            .expect("whoNow");
        let users: Vec<_> = who.occupants.iter().map(|o| o.user_id.as_str()).collect();
        assert_eq!(users, ["alice"], "a quiet member is not listed (R86)");
        let _b = subscribed(&bob, "room").await;
        expect_event(&mut a, RemoteJoin, "bob", "bob visible again").await;
    })
    .await
    .expect("test within its time limit");
}
