//! The Rust SDK in the Go SDK's shapes (seed 004, api.md §14), over real sockets: a
//! stream channel's `join` hands back its topic snapshot (R92), and storage and lock
//! events come per source as well as client-wide — one subscription's (R80, R147,
//! R157), one stream channel's (R115), one user's metadata (R147) — each stream with
//! only its own source's events, ending when that source is left.

mod common;

use common::*;
use std::collections::BTreeMap;
use switchboard_client::{
    ChannelType, EventStream, JoinOptions, JoinTopicOptions, LockEvent, LockEventType,
    MetadataItem, MetadataOptions, StorageEvent, StorageEventType, StorageType, SubscribeOptions,
    TopicEventType,
};

use ChannelType::{Message, Stream, User};

/// The next storage event, which must be `kind` about `channel_type` / `channel`.
async fn expect_storage(
    stream: &mut EventStream<StorageEvent>,
    kind: StorageEventType,
    channel_type: ChannelType,
    channel: &str,
    what: &str,
) -> StorageEvent {
    let e = next_event(stream, what).await;
    assert_eq!(
        (e.event_type, e.channel_type, e.channel_name.as_str()),
        (kind, channel_type, channel),
        "{what}: got {e:?}"
    );
    e
}

/// The next lock event, which must be `kind` in `channel` (of lock `lock`).
async fn expect_lock(
    stream: &mut EventStream<LockEvent>,
    kind: LockEventType,
    channel: &str,
    lock: &str,
    what: &str,
) -> LockEvent {
    let e = next_event(stream, what).await;
    assert_eq!(
        (e.event_type, e.channel_name.as_str(), e.lock_name.as_str()),
        (kind, channel, lock),
        "{what}: got {e:?}"
    );
    e
}

fn item(key: &str, value: &str) -> MetadataItem {
    MetadataItem::new(key, value)
}

/// R92 (seed 004): `join` hands back the topic SNAPSHOT — every topic with all its
/// publishers and their meta, also in the Go SDK's `map[topic][]userId` shape — and it
/// is the same SNAPSHOT the channel's topic stream starts with; a channel without
/// publishers gives an empty one, and joining a joined channel (R91) changes nothing.
#[tokio::test]
async fn r92_join_hands_back_the_topic_snapshot_as_the_go_sdk_does() {
    let server = TestServer::start().await;
    let (alice, bob, carol) = (
        server.login("alice").await,
        server.login("bob").await,
        server.login("carol").await,
    );
    // An empty channel: an empty snapshot.
    let arena = alice.stream_channel("arena").expect("channel");
    let joined = arena
        .join(JoinOptions {
            token: Some(rtc_for("arena", "alice")),
            ..Default::default()
        })
        .await
        .expect("alice joins");
    assert_eq!(joined.channel_name, "arena");
    assert!(joined.snapshot.is_empty(), "{joined:?}");
    assert!(joined.topics().is_empty());

    let meta = |m: &str| JoinTopicOptions {
        meta: m.to_string(),
        ..Default::default()
    };
    arena
        .join_topic("moves", meta("white"))
        .await
        .expect("alice publishes in moves");
    arena
        .join_topic("chat", meta(""))
        .await
        .expect("alice publishes in chat");
    let carols = join_stream(&carol, "arena", JoinOptions::default()).await;
    carols
        .join_topic("moves", meta("black"))
        .await
        .expect("carol publishes in moves");

    // bob joins: the reply carries the channel's topics.
    let bobs = bob.stream_channel("arena").expect("channel");
    let r = bobs
        .join(JoinOptions {
            token: Some(rtc_for("arena", "bob")),
            ..Default::default()
        })
        .await
        .expect("bob joins");
    let want: BTreeMap<String, Vec<String>> = [
        ("chat".to_string(), vec!["alice".to_string()]),
        (
            "moves".to_string(),
            vec!["alice".to_string(), "carol".to_string()],
        ),
    ]
    .into_iter()
    .collect();
    let mut got = r.topics();
    for users in got.values_mut() {
        users.sort();
    }
    assert_eq!(got, want, "the Go shape of the snapshot: {r:?}");
    let moves = r
        .snapshot
        .iter()
        .find(|t| t.topic_name == "moves")
        .expect("moves in the snapshot");
    let mut metas: Vec<(String, String)> = moves
        .publishers
        .iter()
        .map(|p| (p.publisher_user_id.clone(), p.publisher_meta.clone()))
        .collect();
    metas.sort();
    assert_eq!(
        metas,
        vec![
            ("alice".to_string(), "white".to_string()),
            ("carol".to_string(), "black".to_string())
        ]
    );
    assert_eq!(moves.total_publisher, 2);

    // The channel's topic stream starts with that same SNAPSHOT.
    let mut topics = bobs.topic_events();
    let first = next_event(&mut topics, "bob's topic SNAPSHOT").await;
    assert_eq!(first.event_type, TopicEventType::Snapshot);
    assert_eq!(first.topic_infos, r.snapshot, "one snapshot, two views");

    // Joining a joined channel changes nothing (R91): no new snapshot to hand back.
    let again = bobs
        .join(JoinOptions {
            token: Some(rtc_for("arena", "bob")),
            ..Default::default()
        })
        .await
        .expect("join again");
    assert!(again.snapshot.is_empty(), "{again:?}");
    assert_eq!(again.channel_name, "arena");
}

/// R80, R147, R148, R157: a subscription `with_metadata` and `with_lock` has its own
/// storage and lock streams (`Subscription::storage`, `locks`), each starting with the
/// subscribe's SNAPSHOT and carrying that channel's events only, while the client-wide
/// streams carry every channel's; unsubscribe ends them.
#[tokio::test]
async fn r80_r147_r157_storage_and_lock_events_per_subscription() {
    let server = TestServer::start().await;
    let (alice, bob) = (server.login("alice").await, server.login("bob").await);
    let (st, lk) = (alice.storage(), alice.lock());
    for ch in ["room", "other"] {
        st.set_channel_metadata(ch, Message, [item("k", ch)], MetadataOptions::default())
            .await
            .expect("metadata before");
        lk.set_lock(ch, Message, "baton", None)
            .await
            .expect("a lock before");
    }

    let mut all_storage = bob.storage_events();
    let options = SubscribeOptions {
        with_presence: false,
        with_metadata: true,
        with_lock: true,
        ..Default::default()
    };
    let mut room = bob.subscribe("room", options).await.expect("room");
    let mut other = bob.subscribe("other", options).await.expect("other");
    let (mut room_storage, mut room_locks) = (room.storage(), room.locks());
    let mut other_storage = other.storage();

    let snap = expect_storage(
        &mut room_storage,
        StorageEventType::Snapshot,
        Message,
        "room",
        "room's storage SNAPSHOT",
    )
    .await;
    assert_eq!(snap.data.items["k"].value, "room");
    let snap = expect_lock(
        &mut room_locks,
        LockEventType::Snapshot,
        "room",
        "",
        "room's lock SNAPSHOT",
    )
    .await;
    assert_eq!(snap.snapshot.len(), 1, "{snap:?}");
    assert_eq!(snap.snapshot[0].lock_name, "baton");
    expect_storage(
        &mut other_storage,
        StorageEventType::Snapshot,
        Message,
        "other",
        "other's storage SNAPSHOT",
    )
    .await;

    // Writes in "other" first, then in "room": room's streams see only room's.
    st.set_channel_metadata(
        "other",
        Message,
        [item("k", "o2")],
        MetadataOptions::default(),
    )
    .await
    .expect("write other");
    lk.set_lock("other", Message, "second", None)
        .await
        .expect("lock in other");
    st.set_channel_metadata(
        "room",
        Message,
        [item("k", "r2")],
        MetadataOptions::default(),
    )
    .await
    .expect("write room");
    lk.acquire_lock("room", Message, "baton", false)
        .await
        .expect("acquire in room");
    let up = expect_storage(
        &mut room_storage,
        StorageEventType::Update,
        Message,
        "room",
        "room's UPDATE, not other's",
    )
    .await;
    assert_eq!(
        (up.data.items["k"].value.as_str(), up.publisher.as_str()),
        ("r2", "alice")
    );
    let acquired = expect_lock(
        &mut room_locks,
        LockEventType::Acquired,
        "room",
        "baton",
        "room's ACQUIRED, not other's SET",
    )
    .await;
    assert_eq!(acquired.owner, "alice");
    let up = expect_storage(
        &mut other_storage,
        StorageEventType::Update,
        Message,
        "other",
        "other's UPDATE",
    )
    .await;
    assert_eq!(up.data.items["k"].value, "o2");

    // The client-wide stream has every channel's, in arrival order.
    let mut seen = Vec::new();
    for _ in 0..4 {
        let e = next_event(&mut all_storage, "client-wide storage event").await;
        seen.push((e.event_type, e.channel_name));
    }
    assert_eq!(
        seen,
        vec![
            (StorageEventType::Snapshot, "room".to_string()),
            (StorageEventType::Snapshot, "other".to_string()),
            (StorageEventType::Update, "other".to_string()),
            (StorageEventType::Update, "room".to_string()),
        ]
    );

    // Unsubscribe ends that subscription's streams, not the other's.
    bob.unsubscribe("room").await.expect("unsubscribe");
    assert_ends(&mut room_storage, "room's storage after unsubscribe").await;
    assert_ends(&mut room_locks, "room's locks after unsubscribe").await;
    st.set_channel_metadata(
        "other",
        Message,
        [item("k", "o3")],
        MetadataOptions::default(),
    )
    .await
    .expect("write other again");
    let up = expect_storage(
        &mut other_storage,
        StorageEventType::Update,
        Message,
        "other",
        "other's stream goes on",
    )
    .await;
    assert_eq!(up.data.items["k"].value, "o3");
}

/// R115, R147, R157: a stream channel joined `with_metadata` and `with_lock` has its own
/// storage and lock streams (registered at join, so the SNAPSHOTs are there when the
/// app asks), carrying the stream channel's events only — not those of a message
/// channel of the same name; leave ends them (R95).
#[tokio::test]
async fn r115_storage_and_lock_events_per_stream_channel() {
    let server = TestServer::start().await;
    let (alice, bob) = (server.login("alice").await, server.login("bob").await);
    let (st, lk) = (alice.storage(), alice.lock());
    let _alices = join_stream(&alice, "arena", JoinOptions::default()).await;
    st.set_channel_metadata(
        "arena",
        Stream,
        [item("score", "0")],
        MetadataOptions::default(),
    )
    .await
    .expect("metadata before");

    let options = JoinOptions {
        with_presence: false,
        with_metadata: true,
        with_lock: true,
        ..Default::default()
    };
    let arena = join_stream(&bob, "arena", options).await;
    let mut message_sub = bob
        .subscribe(
            "arena",
            SubscribeOptions {
                with_presence: false,
                with_metadata: true,
                with_lock: true,
                ..Default::default()
            },
        )
        .await
        .expect("a message channel of the same name");
    // Asked for after the join: the queues registered at join kept the SNAPSHOTs.
    let (mut storage, mut locks) = (arena.storage_events(), arena.lock_events());
    let snap = expect_storage(
        &mut storage,
        StorageEventType::Snapshot,
        Stream,
        "arena",
        "the stream channel's storage SNAPSHOT",
    )
    .await;
    assert_eq!(snap.data.items["score"].value, "0");
    expect_lock(
        &mut locks,
        LockEventType::Snapshot,
        "arena",
        "",
        "the stream channel's lock SNAPSHOT",
    )
    .await;
    let mut message_storage = message_sub.storage();
    expect_storage(
        &mut message_storage,
        StorageEventType::Snapshot,
        Message,
        "arena",
        "the message channel's storage SNAPSHOT",
    )
    .await;

    // The message channel "arena" first, then the stream channel "arena".
    st.set_channel_metadata(
        "arena",
        Message,
        [item("m", "1")],
        MetadataOptions::default(),
    )
    .await
    .expect("message channel write");
    lk.set_lock("arena", Message, "m-lock", None)
        .await
        .expect("message channel lock");
    st.set_channel_metadata(
        "arena",
        Stream,
        [item("score", "1")],
        MetadataOptions::default(),
    )
    .await
    .expect("stream channel write");
    lk.set_lock("arena", Stream, "s-lock", None)
        .await
        .expect("stream channel lock");
    let up = expect_storage(
        &mut storage,
        StorageEventType::Update,
        Stream,
        "arena",
        "the stream channel's UPDATE only",
    )
    .await;
    assert_eq!(up.data.items["score"].value, "1");
    assert!(!up.data.items.contains_key("m"), "{up:?}");
    expect_lock(
        &mut locks,
        LockEventType::Set,
        "arena",
        "s-lock",
        "the stream channel's SET only",
    )
    .await;
    let up = expect_storage(
        &mut message_storage,
        StorageEventType::Update,
        Message,
        "arena",
        "the message channel's UPDATE",
    )
    .await;
    assert_eq!(up.data.items["m"].value, "1");

    arena.leave().await.expect("leave");
    assert_ends(&mut storage, "storage events after leave").await;
    assert_ends(&mut locks, "lock events after leave").await;
}

/// R147, R148: `storage().user_metadata_events(user)` carries that user's metadata
/// events only — the SNAPSHOT of `subscribe_user_metadata`, then an UPDATE per change —
/// and ends on `unsubscribe_user_metadata` of that user.
#[tokio::test]
async fn r147_user_metadata_events_per_user() {
    let server = TestServer::start().await;
    let (alice, bob, carol) = (
        server.login("alice").await,
        server.login("bob").await,
        server.login("carol").await,
    );
    alice
        .storage()
        .set_user_metadata([item("mood", "calm")], Default::default())
        .await
        .expect("alice's metadata");
    let mut of_alice = bob.storage().user_metadata_events("alice");
    let mut of_carol = bob.storage().user_metadata_events("carol");
    bob.storage()
        .subscribe_user_metadata("alice")
        .await
        .expect("follow alice");
    bob.storage()
        .subscribe_user_metadata("carol")
        .await
        .expect("follow carol");
    let snap = expect_storage(
        &mut of_alice,
        StorageEventType::Snapshot,
        User,
        "",
        "alice's SNAPSHOT",
    )
    .await;
    assert_eq!(
        (snap.publisher.as_str(), snap.storage_type),
        ("alice", StorageType::User)
    );
    assert_eq!(snap.data.items["mood"].value, "calm");
    let snap = expect_storage(
        &mut of_carol,
        StorageEventType::Snapshot,
        User,
        "",
        "carol's SNAPSHOT",
    )
    .await;
    assert_eq!(snap.publisher, "carol");

    // carol writes first, then alice: alice's stream sees alice's change only.
    carol
        .storage()
        .set_user_metadata([item("mood", "busy")], Default::default())
        .await
        .expect("carol writes");
    alice
        .storage()
        .set_user_metadata([item("mood", "happy")], Default::default())
        .await
        .expect("alice writes");
    let up = expect_storage(
        &mut of_alice,
        StorageEventType::Update,
        User,
        "",
        "alice's UPDATE, not carol's",
    )
    .await;
    assert_eq!(
        (up.publisher.as_str(), up.data.items["mood"].value.as_str()),
        ("alice", "happy")
    );
    let up = expect_storage(
        &mut of_carol,
        StorageEventType::Update,
        User,
        "",
        "carol's UPDATE",
    )
    .await;
    assert_eq!(up.data.items["mood"].value, "busy");

    bob.storage()
        .unsubscribe_user_metadata("alice")
        .await
        .expect("stop following alice");
    assert_ends(&mut of_alice, "alice's stream after unsubscribe").await;
}
