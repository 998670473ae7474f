//! Storage and locks through the Rust SDK over real sockets (api.md §6, §7, §9.5, §9.6,
//! R134–R142, R144, R146–R159): channel and user metadata with item and major revision guards,
//! `client.storage_events()` after a subscribe/join `with_metadata` and after
//! `subscribe_user_metadata` (SNAPSHOT, then UPDATE with the whole metadata), locks with
//! their events `with_lock`, an `acquire_lock` with retry that outlasts the request
//! timeout and is handed the lock, user-metadata subscriptions restored into a new
//! session, storage events replayed once on resume, and EXPIRED in the owner's inbox.
//! Every wait is bounded so a failing test fails fast.

mod common;

use common::proxy::FaultProxy;
use common::*;
use std::collections::BTreeMap;
use std::time::Duration;
use switchboard_client::{
    ChannelType, Client, ErrorCode, Event, EventStream, JoinOptions, LinkState, LockDetail,
    LockEvent, LockEventType, LockResponse, MetadataItem, MetadataOptions, PublishOptions,
    RemoveMetadataOptions, RemoveUserMetadataOptions, RtmError, StorageData, StorageEvent,
    StorageEventType, StorageType, SubscribeOptions, UserMetadataOptions,
};
use tokio::time::Instant;

use ChannelType::{Message, Stream, User};

/// Subscribe options: storage events (and lock events when `lock`), no presence.
fn with_metadata(lock: bool) -> SubscribeOptions {
    SubscribeOptions {
        with_presence: false,
        with_metadata: !lock,
        with_lock: lock,
        ..Default::default()
    }
}

fn no_options() -> MetadataOptions {
    MetadataOptions::default()
}

fn item(key: &str, value: &str) -> MetadataItem {
    MetadataItem::new(key, value)
}

/// `key → (value, revision)` of a metadata object; checks `total_count`.
fn values(d: &StorageData) -> BTreeMap<String, (String, i64)> {
    assert_eq!(d.total_count as usize, d.items.len(), "totalCount of {d:?}");
    d.items
        .iter()
        .map(|(k, m)| (k.clone(), (m.value.clone(), m.revision)))
        .collect()
}

fn expected(list: &[(&str, &str, i64)]) -> BTreeMap<String, (String, i64)> {
    list.iter()
        .map(|(k, v, r)| (k.to_string(), (v.to_string(), *r)))
        .collect()
}

/// `(lock, owner, ttl)` rows of a lock list.
fn rows(list: &[LockDetail]) -> Vec<(String, String, u32)> {
    list.iter()
        .map(|l| (l.lock_name.clone(), l.owner.clone(), l.ttl))
        .collect()
}

fn row(lock: &str, owner: &str, ttl: u32) -> (String, String, u32) {
    (lock.to_string(), owner.to_string(), ttl)
}

/// The next storage event, which must be `kind`.
async fn expect_storage(
    stream: &mut EventStream<StorageEvent>,
    kind: StorageEventType,
    what: &str,
) -> StorageEvent {
    let e = next_event(stream, what).await;
    assert_eq!(e.event_type, kind, "{what}: got {e:?}");
    e
}

/// The next lock event, which must be `kind` of `lock` with `owner` after it.
async fn expect_lock(
    stream: &mut EventStream<LockEvent>,
    kind: LockEventType,
    lock: &str,
    owner: &str,
    what: &str,
) -> LockEvent {
    let e = next_event(stream, what).await;
    assert_eq!(
        (e.event_type, e.lock_name.as_str(), e.owner.as_str()),
        (kind, lock, owner),
        "{what}: got {e:?}"
    );
    e
}

/// R134–R142, R144: channel metadata through `client.storage()` without subscribing:
/// set creates and overwrites, update needs every key, remove deletes listed keys or
/// all; item and major revision guards (−1 none, 0 create only, > 0 must match) fail
/// with −12014 and change nothing, 0 on update is −12005; every write raises the major
/// revision by one and gives the written items that revision; addTimeStamp/addUserId
/// are recorded only when asked; MESSAGE and STREAM channels of one name are separate,
/// and USER is refused locally (−10019).
#[tokio::test]
async fn channel_metadata_set_update_remove_with_revisions() {
    tokio::time::timeout(Duration::from_secs(10), async {
        let server = TestServer::start().await;
        let alice = server.login("alice").await;
        let st = alice.storage();

        let d = st.get_channel_metadata("room", Message).await.expect("get");
        assert_eq!(
            (values(&d).len(), d.major_revision),
            (0, -1),
            "never written"
        );

        let r = st
            .set_channel_metadata(
                "room",
                Message,
                [item("a", "1"), item("b", "2")],
                no_options(),
            )
            .await
            .expect("set (R134: no subscription needed)");
        assert_eq!(
            (
                r.channel_name.as_str(),
                r.channel_type,
                r.total_count,
                r.major_revision
            ),
            ("room", Message, 2, 1)
        );
        let d = st.get_channel_metadata("room", Message).await.expect("get");
        assert_eq!(values(&d), expected(&[("a", "1", 1), ("b", "2", 1)]));
        assert_eq!(d.major_revision, 1);
        assert!(
            d.items
                .values()
                .all(|m| m.updated == 0 && m.author_uid.is_empty()),
            "R144: nothing recorded unless asked: {d:?}"
        );

        // Overwrite one item with its current revision as guard, recording time and
        // writer; the other item is unchanged (R135, R138, R141, R144).
        let recorded = MetadataOptions {
            add_timestamp: true,
            add_user_id: true,
            ..Default::default()
        };
        let r = st
            .set_channel_metadata(
                "room",
                Message,
                [item("a", "10").with_revision(1)],
                recorded,
            )
            .await
            .expect("guarded set");
        assert_eq!((r.total_count, r.major_revision), (2, 2));
        let d = st.get_channel_metadata("room", Message).await.expect("get");
        assert_eq!(values(&d), expected(&[("a", "10", 2), ("b", "2", 1)]));
        let a = &d.items["a"];
        assert!(a.updated > 0 && a.author_uid == "alice", "R144: {a:?}");

        // Failed guards change nothing (R138, R139, R142).
        let outdated = ErrorCode::StorageOutdatedRevision.as_i32();
        let e = st
            .set_channel_metadata(
                "room",
                Message,
                [item("a", "x").with_revision(1)],
                no_options(),
            )
            .await
            .expect_err("stale item revision");
        assert_eq!(
            (e.code, e.operation.as_str()),
            (outdated, "setChannelMetadata")
        );
        let e = st
            .set_channel_metadata(
                "room",
                Message,
                [item("b", "x").with_revision(0)],
                no_options(),
            )
            .await
            .expect_err("create-only of an existing key");
        assert_eq!(e.code, outdated);
        let d = st.get_channel_metadata("room", Message).await.expect("get");
        assert_eq!(values(&d), expected(&[("a", "10", 2), ("b", "2", 1)]));
        assert_eq!(d.major_revision, 2, "R142: refused writes change nothing");

        // Create-only of a new key (R138).
        let r = st
            .set_channel_metadata(
                "room",
                Message,
                [item("c", "3").with_revision(0)],
                no_options(),
            )
            .await
            .expect("create-only of a new key");
        assert_eq!((r.total_count, r.major_revision), (3, 3));

        // Major revision guard (R139) on update.
        let major = |n| MetadataOptions {
            major_revision: n,
            ..Default::default()
        };
        let e = st
            .update_channel_metadata("room", Message, [item("a", "11")], major(2))
            .await
            .expect_err("stale major revision");
        assert_eq!(
            (e.code, e.operation.as_str()),
            (outdated, "updateChannelMetadata")
        );
        let r = st
            .update_channel_metadata("room", Message, [item("a", "11")], major(3))
            .await
            .expect("current major revision");
        assert_eq!((r.total_count, r.major_revision), (3, 4));

        // Update of a missing key: −12014, and the listed existing key is unchanged
        // (R136, R142).
        let e = st
            .update_channel_metadata(
                "room",
                Message,
                [item("a", "12"), item("zz", "1")],
                no_options(),
            )
            .await
            .expect_err("update of a missing key");
        assert_eq!(e.code, outdated);
        // Invalid guards (R140).
        let invalid = ErrorCode::StorageInvalidRevision.as_i32();
        let e = st
            .update_channel_metadata(
                "room",
                Message,
                [item("a", "12").with_revision(0)],
                no_options(),
            )
            .await
            .expect_err("revision 0 on update");
        assert_eq!(e.code, invalid);
        let e = st
            .set_channel_metadata("room", Message, [item("a", "12")], major(-2))
            .await
            .expect_err("major revision below -1");
        assert_eq!(e.code, invalid);
        let d = st.get_channel_metadata("room", Message).await.expect("get");
        assert_eq!(
            values(&d),
            expected(&[("a", "11", 4), ("b", "2", 1), ("c", "3", 3)])
        );
        assert_eq!(d.major_revision, 4);

        // Remove listed keys, guarded (R137, R138), then everything.
        let remove = |items: Vec<MetadataItem>| RemoveMetadataOptions {
            items,
            options: no_options(),
        };
        let r = st
            .remove_channel_metadata(
                "room",
                Message,
                remove(vec![MetadataItem::key("b").with_revision(1)]),
            )
            .await
            .expect("remove b");
        assert_eq!((r.total_count, r.major_revision), (2, 5));
        let e = st
            .remove_channel_metadata(
                "room",
                Message,
                remove(vec![MetadataItem::key("c").with_revision(1)]),
            )
            .await
            .expect_err("stale revision on remove");
        assert_eq!(
            (e.code, e.operation.as_str()),
            (outdated, "removeChannelMetadata")
        );
        let r = st
            .remove_channel_metadata("room", Message, remove(Vec::new()))
            .await
            .expect("remove all");
        assert_eq!((r.total_count, r.major_revision), (0, 6));
        let d = st.get_channel_metadata("room", Message).await.expect("get");
        assert_eq!(
            (values(&d).len(), d.major_revision),
            (0, 6),
            "R141: the major revision outlives its items"
        );

        // A stream channel of the same name has its own metadata (R134).
        let r = st
            .set_channel_metadata("room", Stream, [item("s", "1")], no_options())
            .await
            .expect("stream channel metadata");
        assert_eq!(
            (r.channel_type, r.total_count, r.major_revision),
            (Stream, 1, 1)
        );
        let d = st.get_channel_metadata("room", Stream).await.expect("get");
        assert_eq!(values(&d), expected(&[("s", "1", 1)]));
        let d = st.get_channel_metadata("room", Message).await.expect("get");
        assert_eq!(values(&d).len(), 0);

        let e = st
            .set_channel_metadata("room", User, [item("a", "1")], no_options())
            .await
            .expect_err("USER is not a channel metadata type");
        assert_eq!(e.code, ErrorCode::InvalidChannelType.as_i32());
    })
    .await
    .expect("test within its time limit");
}

/// R146, R136–R141: user metadata acts on the caller by default and on another user
/// when named; any user may write another's; guards as for channels.
#[tokio::test]
async fn user_metadata_of_self_and_of_others() {
    tokio::time::timeout(Duration::from_secs(10), async {
        let server = TestServer::start().await;
        let (alice, bob) = (server.login("alice").await, server.login("bob").await);

        let r = alice
            .storage()
            .set_user_metadata([item("k", "v")], UserMetadataOptions::default())
            .await
            .expect("alice sets her own");
        assert_eq!(
            (r.user_id.as_str(), r.total_count, r.major_revision),
            ("alice", 1, 1)
        );
        let d = bob
            .storage()
            .get_user_metadata(Some("alice"))
            .await
            .expect("bob reads alice's");
        assert_eq!(values(&d), expected(&[("k", "v", 1)]));

        let of_alice = UserMetadataOptions {
            user_id: Some("alice".into()),
            options: MetadataOptions {
                add_user_id: true,
                ..Default::default()
            },
        };
        let r = bob
            .storage()
            .update_user_metadata([item("k", "w").with_revision(1)], of_alice.clone())
            .await
            .expect("bob updates alice's (R146)");
        assert_eq!((r.user_id.as_str(), r.major_revision), ("alice", 2));
        let e = bob
            .storage()
            .update_user_metadata([item("nope", "1")], of_alice)
            .await
            .expect_err("missing key (R136)");
        assert_eq!(
            (e.code, e.operation.as_str()),
            (
                ErrorCode::StorageOutdatedRevision.as_i32(),
                "updateUserMetadata"
            )
        );

        let d = alice.storage().get_user_metadata(None).await.expect("own");
        assert_eq!(values(&d), expected(&[("k", "w", 2)]));
        assert_eq!(d.items["k"].author_uid, "bob");
        let d = bob.storage().get_user_metadata(None).await.expect("own");
        assert_eq!(
            (values(&d).len(), d.major_revision),
            (0, -1),
            "bob's untouched"
        );

        let e = alice
            .storage()
            .remove_user_metadata(RemoveUserMetadataOptions {
                items: vec![MetadataItem::key("k").with_revision(1)],
                ..Default::default()
            })
            .await
            .expect_err("stale revision");
        assert_eq!(e.code, ErrorCode::StorageOutdatedRevision.as_i32());
        let r = alice
            .storage()
            .remove_user_metadata(RemoveUserMetadataOptions {
                items: vec![MetadataItem::key("k").with_revision(2)],
                ..Default::default()
            })
            .await
            .expect("remove with the current revision");
        assert_eq!(
            (r.user_id.as_str(), r.total_count, r.major_revision),
            ("alice", 0, 3)
        );
    })
    .await
    .expect("test within its time limit");
}

/// R147, R148, R149 and §9.5: a subscribe `with_metadata` brings a SNAPSHOT of the
/// channel's metadata (no publisher), then an UPDATE with the complete metadata after
/// every write (publisher = the writer, positioned in the channel's stream), on
/// `storage_events()` and `events()` alike; a subscriber without it gets none;
/// unsubscribing stops them. A stream channel joined `with_metadata` works the same.
/// `subscribe_user_metadata` brings the user's SNAPSHOT and UPDATEs (storage type USER,
/// publisher = the user, no channel name, no position) until `unsubscribe_user_metadata`
/// (−12015 the second time).
#[tokio::test]
async fn storage_events_with_metadata_and_user_subscription() {
    tokio::time::timeout(Duration::from_secs(15), async {
        let server = TestServer::start().await;
        let (alice, bob, carol) = (
            server.login("alice").await,
            server.login("bob").await,
            server.login("carol").await,
        );
        let st = alice.storage();
        st.set_channel_metadata("room", Message, [item("a", "1")], no_options())
            .await
            .expect("set before");

        let mut ev = bob.storage_events();
        let mut all = bob.events();
        let mut quiet = carol.storage_events();
        bob.subscribe("room", with_metadata(false))
            .await
            .expect("bob subscribes");
        subscribed(&carol, "room").await;

        let snap = expect_storage(&mut ev, StorageEventType::Snapshot, "bob's SNAPSHOT").await;
        assert_eq!(
            (
                snap.channel_type,
                snap.channel_name.as_str(),
                snap.storage_type,
                snap.publisher.as_str()
            ),
            (Message, "room", StorageType::Channel, "")
        );
        assert_eq!(values(&snap.data), expected(&[("a", "1", 1)]));
        assert_eq!(snap.data.major_revision, 1);

        st.set_channel_metadata("room", Message, [item("b", "2")], no_options())
            .await
            .expect("write");
        let up = expect_storage(&mut ev, StorageEventType::Update, "bob's UPDATE").await;
        assert_eq!(
            (
                up.channel_name.as_str(),
                up.storage_type,
                up.publisher.as_str()
            ),
            ("room", StorageType::Channel, "alice")
        );
        assert_eq!(
            values(&up.data),
            expected(&[("a", "1", 1), ("b", "2", 2)]),
            "R148: the complete metadata"
        );
        assert_eq!(up.data.major_revision, 2);
        assert!(
            up.position.epoch == snap.position.epoch && up.position.offset > snap.position.offset,
            "positioned after the SNAPSHOT: {:?} / {:?}",
            snap.position,
            up.position
        );
        // The same two on the client-wide stream.
        for kind in [StorageEventType::Snapshot, StorageEventType::Update] {
            match next_event(&mut all, "events()").await {
                Event::Storage(s) => assert_eq!(s.event_type, kind),
                other => panic!("expected a storage event, got {other:?}"),
            }
        }

        // User metadata.
        alice
            .storage()
            .set_user_metadata([item("m", "1")], UserMetadataOptions::default())
            .await
            .expect("alice's user metadata");
        let r = bob
            .storage()
            .subscribe_user_metadata("alice")
            .await
            .expect("subscribe user metadata");
        assert_eq!(r.user_id, "alice");
        let snap = expect_storage(&mut ev, StorageEventType::Snapshot, "user SNAPSHOT").await;
        assert_eq!(
            (
                snap.channel_type,
                snap.channel_name.as_str(),
                snap.storage_type,
                snap.publisher.as_str()
            ),
            (User, "", StorageType::User, "alice")
        );
        assert_eq!(values(&snap.data), expected(&[("m", "1", 1)]));
        bob.storage()
            .set_user_metadata(
                [item("n", "2")],
                UserMetadataOptions {
                    user_id: Some("alice".into()),
                    ..Default::default()
                },
            )
            .await
            .expect("bob writes alice's");
        let up = expect_storage(&mut ev, StorageEventType::Update, "user UPDATE").await;
        assert_eq!(
            (up.storage_type, up.publisher.as_str(), up.position.offset),
            (StorageType::User, "alice", 0)
        );
        assert_eq!(values(&up.data), expected(&[("m", "1", 1), ("n", "2", 2)]));
        assert_eq!(up.data.major_revision, 2);

        bob.storage()
            .unsubscribe_user_metadata("alice")
            .await
            .expect("unsubscribe user metadata");
        let e = bob
            .storage()
            .unsubscribe_user_metadata("alice")
            .await
            .expect_err("not subscribed any more");
        assert_eq!(e.code, ErrorCode::StorageNotSubscribe.as_i32());
        bob.unsubscribe("room").await.expect("unsubscribe");
        alice
            .storage()
            .set_user_metadata([item("m", "3")], UserMetadataOptions::default())
            .await
            .expect("write");
        st.set_channel_metadata("room", Message, [item("c", "3")], no_options())
            .await
            .expect("write");
        assert_quiet(
            &mut ev,
            Duration::from_millis(300),
            "bob after unsubscribing (R149)",
        )
        .await;
        assert_quiet(
            &mut quiet,
            Duration::from_millis(100),
            "carol without withMetadata (R147)",
        )
        .await;

        // A stream channel joined with metadata.
        st.set_channel_metadata("arena", Stream, [item("x", "1")], no_options())
            .await
            .expect("stream channel metadata");
        let _arena = join_stream(
            &bob,
            "arena",
            JoinOptions {
                with_presence: false,
                with_metadata: true,
                ..Default::default()
            },
        )
        .await;
        let snap = expect_storage(&mut ev, StorageEventType::Snapshot, "stream SNAPSHOT").await;
        assert_eq!(
            (snap.channel_type, snap.channel_name.as_str()),
            (Stream, "arena")
        );
        assert_eq!(values(&snap.data), expected(&[("x", "1", 1)]));
        st.update_channel_metadata("arena", Stream, [item("x", "2")], no_options())
            .await
            .expect("update");
        let up = expect_storage(&mut ev, StorageEventType::Update, "stream UPDATE").await;
        assert_eq!((up.channel_type, up.publisher.as_str()), (Stream, "alice"));
        assert_eq!(values(&up.data), expected(&[("x", "2", 2)]));
    })
    .await
    .expect("test within its time limit");
}

/// R150, R151, R154–R157, R159: locks through `client.lock()` by a client that is not in
/// the channel; a subscriber `with_lock` gets a SNAPSHOT, then SET, ACQUIRED, RELEASED
/// and REMOVED in the channel's stream; ttl defaults to 10 and is clamped to 300;
/// refusals −14004, −14007, −14006, −14008; USER refused locally (−10019). A stream
/// channel joined `with_lock` gets its own SNAPSHOT.
#[tokio::test]
async fn locks_and_lock_events_with_lock() {
    tokio::time::timeout(Duration::from_secs(15), async {
        let server = TestServer::start().await;
        let (alice, bob, carol) = (
            server.login("alice").await,
            server.login("bob").await,
            server.login("carol").await,
        );
        let (a, c) = (alice.lock(), carol.lock());
        a.set_lock("room", Message, "M", Some(1_000))
            .await
            .expect("set M");

        let mut ev = bob.lock_events();
        bob.subscribe("room", with_metadata(true))
            .await
            .expect("bob subscribes");
        let snap = next_event(&mut ev, "bob's lock SNAPSHOT").await;
        assert_eq!(
            (
                snap.event_type,
                snap.lock_name.as_str(),
                snap.channel_name.as_str()
            ),
            (LockEventType::Snapshot, "", "room")
        );
        assert_eq!(rows(&snap.snapshot), [row("M", "", 300)], "R150: clamped");

        let r = a
            .set_lock("room", Message, "L", None)
            .await
            .expect("set L (R159)");
        assert_eq!(
            (
                r.channel_name.as_str(),
                r.channel_type,
                r.lock_name.as_str()
            ),
            ("room", Message, "L")
        );
        let e = expect_lock(&mut ev, LockEventType::Set, "L", "", "SET").await;
        assert_eq!(
            (e.ttl, e.publisher.as_str()),
            (10, "alice"),
            "R150: default ttl"
        );
        assert!(
            e.position.offset > snap.position.offset,
            "positioned: {e:?}"
        );
        let err = a
            .set_lock("room", Message, "L", None)
            .await
            .expect_err("again");
        assert_eq!(err.code, ErrorCode::LockAlreadyExist.as_i32());

        a.acquire_lock("room", Message, "L", false)
            .await
            .expect("alice acquires");
        let e = expect_lock(&mut ev, LockEventType::Acquired, "L", "alice", "ACQUIRED").await;
        assert_eq!(e.publisher, "alice");
        let err = c
            .acquire_lock("room", Message, "L", false)
            .await
            .expect_err("held by alice (R151)");
        assert_eq!(
            (err.code, err.operation.as_str()),
            (ErrorCode::LockAcquireFailed.as_i32(), "acquireLock")
        );
        let err = c
            .release_lock("room", Message, "L")
            .await
            .expect_err("R154");
        assert_eq!(err.code, ErrorCode::LockNotAcquired.as_i32());
        let err = c
            .revoke_lock("room", Message, "L", "bob")
            .await
            .expect_err("R155: bob is not the owner");
        assert_eq!(err.code, ErrorCode::LockNotAcquired.as_i32());
        let list = c.get_lock("room", Message).await.expect("getLock");
        assert_eq!(rows(&list), [row("L", "alice", 10), row("M", "", 300)]);

        a.release_lock("room", Message, "L")
            .await
            .expect("alice releases");
        expect_lock(&mut ev, LockEventType::Released, "L", "", "RELEASED").await;
        c.acquire_lock("room", Message, "L", false)
            .await
            .expect("carol acquires");
        expect_lock(&mut ev, LockEventType::Acquired, "L", "carol", "ACQUIRED").await;
        a.revoke_lock("room", Message, "L", "carol")
            .await
            .expect("R155: revoke");
        let e = expect_lock(&mut ev, LockEventType::Released, "L", "", "revoked").await;
        assert_eq!(e.publisher, "alice");

        a.remove_lock("room", Message, "M").await.expect("remove M");
        expect_lock(&mut ev, LockEventType::Removed, "M", "", "REMOVED").await;
        let err = a.remove_lock("room", Message, "M").await.expect_err("gone");
        assert_eq!(err.code, ErrorCode::LockNotExist.as_i32());
        let err = a
            .acquire_lock("room", Message, "M", true)
            .await
            .expect_err("R156: undefined");
        assert_eq!(err.code, ErrorCode::LockNotExist.as_i32());
        let err = a.get_lock("alice", User).await.expect_err("USER");
        assert_eq!(err.code, ErrorCode::InvalidChannelType.as_i32());

        // A stream channel joined with lock events.
        a.set_lock("arena", Stream, "S", Some(20))
            .await
            .expect("set S");
        let _arena = join_stream(
            &bob,
            "arena",
            JoinOptions {
                with_presence: false,
                with_lock: true,
                ..Default::default()
            },
        )
        .await;
        let snap = next_event(&mut ev, "stream lock SNAPSHOT").await;
        assert_eq!(
            (
                snap.event_type,
                snap.channel_type,
                snap.channel_name.as_str()
            ),
            (LockEventType::Snapshot, Stream, "arena")
        );
        assert_eq!(rows(&snap.snapshot), [row("S", "", 20)]);
        a.acquire_lock("arena", Stream, "S", false)
            .await
            .expect("acquire S");
        let e = expect_lock(
            &mut ev,
            LockEventType::Acquired,
            "S",
            "alice",
            "stream ACQUIRED",
        )
        .await;
        assert_eq!(e.channel_type, Stream);
    })
    .await
    .expect("test within its time limit");
}

/// Starts `c` waiting for lock `L` of MESSAGE channel `room` (acquireLock with retry)
/// and returns once the server has it in line: a second operation of its answers
/// −14003 (R158).
async fn wait_in_line(c: &Client) -> tokio::task::JoinHandle<Result<LockResponse, RtmError>> {
    let waits = {
        let lock = c.lock();
        tokio::spawn(async move { lock.acquire_lock("room", Message, "L", true).await })
    };
    let in_line = eventually_async(STEP, || {
        let lock = c.lock();
        async move {
            let err = lock
                .release_lock("room", Message, "L")
                .await
                .expect_err("waiting");
            err.code == ErrorCode::LockOperationPerforming.as_i32()
        }
    })
    .await;
    assert!(in_line, "{} never waited in line", c.user_id());
    waits
}

/// R152, R157, R158: an `acquire_lock` with retry waits in line for longer than the
/// SDK's request timeout (it has none) and resolves when the owner releases; waiters
/// are served in arrival order, each hand-over shows as RELEASED then ACQUIRED; another
/// operation on the lock by a waiting client fails with −14003; a waiter that logs out
/// stops waiting (its call fails).
#[tokio::test]
async fn acquire_with_retry_is_handed_over() {
    tokio::time::timeout(Duration::from_secs(15), async {
        let server = TestServer::start().await;
        let short = |user: &str| {
            let mut config = server.client_config();
            config.request_timeout = Duration::from_millis(500);
            Client::new(APP_ID, user, config).expect("client")
        };
        let (carol, dave, erin) = (short("carol"), short("dave"), short("erin"));
        for c in [&carol, &dave, &erin] {
            c.login(&token(c.user_id())).await.expect("login");
        }
        let (alice, bob) = (server.login("alice").await, server.login("bob").await);
        let mut ev = bob.lock_events();
        bob.subscribe("room", with_metadata(true))
            .await
            .expect("bob subscribes");
        expect_lock(&mut ev, LockEventType::Snapshot, "", "", "SNAPSHOT").await;
        alice
            .lock()
            .set_lock("room", Message, "L", None)
            .await
            .expect("set");
        alice
            .lock()
            .acquire_lock("room", Message, "L", false)
            .await
            .expect("acquire");
        expect_lock(&mut ev, LockEventType::Set, "L", "", "SET").await;
        expect_lock(&mut ev, LockEventType::Acquired, "L", "alice", "ACQUIRED").await;

        // Carol is in line before dave, dave before erin.
        let carol_waits = wait_in_line(&carol).await;
        let dave_waits = wait_in_line(&dave).await;
        let erin_waits = wait_in_line(&erin).await;

        // Well past the 500 ms request timeout: still waiting, not failed.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert!(!carol_waits.is_finished(), "R152: carol still waits");
        erin.logout().await.expect("erin logs out");
        let err = tokio::time::timeout(STEP, erin_waits)
            .await
            .expect("erin's wait ends at logout")
            .expect("task")
            .expect_err("R152: erin stopped waiting");
        assert_ne!(err.code, 0);

        alice
            .lock()
            .release_lock("room", Message, "L")
            .await
            .expect("release");
        let r = tokio::time::timeout(STEP, carol_waits)
            .await
            .expect("carol is answered")
            .expect("task")
            .expect("R152: carol gets the lock");
        assert_eq!(r.lock_name, "L");
        assert!(!dave_waits.is_finished(), "dave still waits behind carol");
        expect_lock(
            &mut ev,
            LockEventType::Released,
            "L",
            "",
            "alice's RELEASED",
        )
        .await;
        expect_lock(
            &mut ev,
            LockEventType::Acquired,
            "L",
            "carol",
            "carol's ACQUIRED",
        )
        .await;

        carol
            .lock()
            .release_lock("room", Message, "L")
            .await
            .expect("carol releases");
        tokio::time::timeout(STEP, dave_waits)
            .await
            .expect("dave is answered")
            .expect("task")
            .expect("dave gets the lock next");
        expect_lock(
            &mut ev,
            LockEventType::Released,
            "L",
            "",
            "carol's RELEASED",
        )
        .await;
        expect_lock(
            &mut ev,
            LockEventType::Acquired,
            "L",
            "dave",
            "dave's ACQUIRED",
        )
        .await;
        let list = bob.lock().get_lock("room", Message).await.expect("get");
        assert_eq!(rows(&list), [row("L", "dave", 10)]);
    })
    .await
    .expect("test within its time limit");
}

/// R148 across reconnects: when the SDK has to start a new session (the old one timed
/// out), it subscribes again to every user's metadata it followed, which starts with a
/// fresh SNAPSHOT; channel storage events missed during a resume are replayed once, in
/// order, without repeating what the app already had.
#[tokio::test]
async fn storage_subscriptions_survive_reconnects() {
    tokio::time::timeout(Duration::from_secs(20), async {
        let server = TestServer::with(short_timeouts).await;
        let proxy = FaultProxy::start(server.addr).await;
        let bob = Client::new(APP_ID, "bob", proxied(&server, &proxy, 2)).expect("client");
        let mut ev = bob.storage_events();
        bob.login(&token("bob")).await.expect("login");
        // After the login, so the first CONNECTED seen is a reconnect's.
        let mut links = bob.link_state_events();
        let alice = server.login("alice").await;
        let st = alice.storage();
        bob.subscribe("room", with_metadata(false))
            .await
            .expect("subscribe");
        bob.storage()
            .subscribe_user_metadata("alice")
            .await
            .expect("user");
        let mut got = Vec::new();
        for _ in 0..2 {
            let e = expect_storage(&mut ev, StorageEventType::Snapshot, "SNAPSHOTs").await;
            got.push(e.storage_type);
        }
        got.sort_by_key(|t| t.as_str());
        assert_eq!(got, [StorageType::Channel, StorageType::User]);

        // Resume: writes made while away are replayed once, in order.
        assert!(eventually(STEP, || proxy.connections() == 1).await);
        proxy.freeze();
        for v in ["1", "2", "3"] {
            st.set_channel_metadata("room", Message, [item("k", v)], no_options())
                .await
                .expect("write while bob is away");
        }
        proxy.cut();
        proxy.pass();
        let back = wait_link(&mut links, LinkState::Connected, STEP).await;
        assert!(back.is_resumed, "resumed: {back:?}");
        let (mut seen, mut user_snapshots) = (Vec::new(), 0);
        while seen.len() < 3 || user_snapshots < 1 {
            let e = next_event(&mut ev, "replayed UPDATEs and the user SNAPSHOT").await;
            if e.storage_type == StorageType::User {
                // The resumed session's fresh user SNAPSHOT (R148).
                assert_eq!(e.event_type, StorageEventType::Snapshot, "{e:?}");
                user_snapshots += 1;
                continue;
            }
            assert_eq!(e.event_type, StorageEventType::Update, "{e:?}");
            seen.push(e.data.items["k"].value.clone());
        }
        assert_eq!(seen, ["1", "2", "3"], "replayed once, in order");

        // A new session: the user metadata subscription is made again (SNAPSHOT).
        assert!(eventually(STEP, || proxy.connections() == 1).await);
        proxy.refuse();
        proxy.cut();
        wait_link(&mut links, LinkState::Disconnected, STEP).await;
        // The old session ends after its presence timeout (2 s): bob leaves "room".
        let deadline = Instant::now() + STEP;
        loop {
            let r = alice.presence().where_now("bob").await.expect("whereNow");
            if r.channels.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "bob's old session never ended");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        proxy.pass();
        let back = wait_link(&mut links, LinkState::Connected, STEP).await;
        assert!(!back.is_resumed, "a new session: {back:?}");
        let mut kinds = Vec::new();
        let mut rest = Vec::new();
        while kinds.len() < 2 {
            let e = next_event(&mut ev, "SNAPSHOTs of the new session").await;
            if e.event_type == StorageEventType::Snapshot {
                kinds.push(e.storage_type);
                if e.storage_type == StorageType::Channel {
                    assert_eq!(e.data.items["k"].value, "3");
                }
            } else {
                rest.push(e);
            }
        }
        assert!(rest.is_empty(), "nothing replayed twice: {rest:?}");
        kinds.sort_by_key(|t| t.as_str());
        assert_eq!(kinds, [StorageType::Channel, StorageType::User]);
        alice
            .storage()
            .set_user_metadata([item("u", "1")], UserMetadataOptions::default())
            .await
            .expect("write");
        let up = expect_storage(&mut ev, StorageEventType::Update, "user UPDATE after").await;
        assert_eq!(
            (up.storage_type, up.publisher.as_str()),
            (StorageType::User, "alice")
        );
    })
    .await
    .expect("test within its time limit");
}

/// R153, R157: an owner whose connection stays lost for the lock's ttl loses the lock:
/// subscribers get RELEASED; the owner gets EXPIRED on its resume, without `with_lock`,
/// from its own inbox, and only once: the SDK moves its inbox position past it (not
/// the position of the lock's channel, which the owner is subscribed to as well), so a
/// later resume replays nothing, reports no gap, and later USER and channel messages
/// still arrive.
#[tokio::test]
async fn expired_reaches_the_owner_once_through_its_inbox() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let server = TestServer::with(short_timeouts).await;
        let proxy = FaultProxy::start(server.addr).await;
        let alice = Client::new(APP_ID, "alice", proxied(&server, &proxy, 60)).expect("client");
        let mut a_locks = alice.lock_events();
        let mut inbox = alice.user_messages();
        alice.login(&token("alice")).await.expect("login");
        // After the login, so the first CONNECTED seen is a reconnect's.
        let mut links = alice.link_state_events();
        let bob = server.login("bob").await;
        let mut ev = bob.lock_events();
        bob.subscribe("room", with_metadata(true))
            .await
            .expect("bob subscribes");
        expect_lock(&mut ev, LockEventType::Snapshot, "", "", "SNAPSHOT").await;
        alice
            .lock()
            .set_lock("room", Message, "L", None)
            .await
            .expect("set");
        alice
            .lock()
            .acquire_lock("room", Message, "L", false)
            .await
            .expect("acquire");
        expect_lock(&mut ev, LockEventType::Set, "L", "", "SET").await;
        expect_lock(&mut ev, LockEventType::Acquired, "L", "alice", "ACQUIRED").await;
        // Alice is in "room" too (without lock events), and her inbox is far ahead of
        // the room's stream: EXPIRED's inbox position must not be taken for the room's.
        let mut a_room = alice
            .subscribe("room", with_metadata(false))
            .await
            .expect("alice subscribes");
        let mut room_messages = a_room.messages();
        let to_alice = || PublishOptions {
            channel_type: User,
            ..Default::default()
        };
        for i in 0..20 {
            bob.publish("alice", format!("m{i}"), to_alice())
                .await
                .expect("to alice");
            next_event(&mut inbox, "USER message before").await;
        }

        assert!(eventually(STEP, || proxy.connections() == 1).await);
        proxy.refuse();
        proxy.cut();
        let lost = Instant::now();
        let e = next_within(&mut ev, Duration::from_secs(16), "the lock expires")
            .await
            .expect("stream goes on")
            .expect("no lag");
        assert_eq!(
            (e.event_type, e.lock_name.as_str(), e.owner.as_str()),
            (LockEventType::Released, "L", "")
        );
        assert!(
            lost.elapsed() >= Duration::from_secs(9),
            "R153: kept for its ttl (10 s): {:?}",
            lost.elapsed()
        );

        proxy.pass();
        let back = wait_link(&mut links, LinkState::Connected, STEP).await;
        assert!(
            back.is_resumed,
            "resumed within the presence timeout: {back:?}"
        );
        let e = expect_lock(&mut a_locks, LockEventType::Expired, "L", "", "EXPIRED").await;
        assert_eq!((e.channel_type, e.channel_name.as_str()), (Message, "room"));
        assert!(e.position.offset > 0, "positioned in the inbox: {e:?}");

        // Another resume replays nothing: the inbox position moved past EXPIRED.
        assert!(eventually(STEP, || proxy.connections() == 1).await);
        proxy.cut();
        let back = wait_link(&mut links, LinkState::Connected, STEP).await;
        assert!(
            back.is_resumed && back.gap_channels.is_empty(),
            "resumed, and the room's position is intact: {back:?}"
        );
        assert_quiet(
            &mut a_locks,
            Duration::from_millis(500),
            "EXPIRED only once",
        )
        .await;
        bob.publish("alice", "after", to_alice())
            .await
            .expect("to alice");
        let m = next_event(&mut inbox, "USER message after EXPIRED").await;
        assert_eq!(text(&m.message), "after");
        assert!(m.position.offset > e.position.offset, "{m:?} after {e:?}");
        bob.publish("room", "in the room", PublishOptions::default())
            .await
            .expect("to the room");
        let m = next_event(&mut room_messages, "room message after EXPIRED").await;
        assert_eq!(text(&m.message), "in the room");
    })
    .await
    .expect("test within its time limit");
}
