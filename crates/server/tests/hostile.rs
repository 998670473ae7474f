//! Hostile but well-formed requests (api.md §12, R171: a refused request changes nothing
//! and the connection carries on): thousands of storage and lock requests with random
//! field values — odd names, extreme revisions and ttls, oversized and duplicate items,
//! unknown channel types — from two clients at once. Every request is answered (none
//! panics the server or closes the connection), and afterwards both connections, a
//! watching subscriber and a fresh client work normally; every refusal carries a code
//! the contract has for that call and every acceptance the reply of its kind; then, one
//! client alone, every refused request leaves the metadata and locks of the channel it
//! aims at as they were. Seeded:
//! set `SWITCHBOARD_HOSTILE_SEED` to replay a run. Then each hostile case on its own:
//! its exact code, nothing changed (no event or message to a member, metadata, locks
//! and presence state as before), and canaries in another channel and another app
//! unaffected.

mod common;

use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use switchboard_protocol::pb::{self, client_message::Body as Req, server_message::Body as Rep};

fn name(rng: &mut StdRng) -> String {
    const POOL: &[&str] = &[
        "", "null", "_x", "room", "lock", "k1", "k2", "k3", "é", "a/b", "\u{0}", " ", "room.2",
    ];
    match rng.random_range(0..4) {
        0 => "n".repeat(rng.random_range(30..70)),
        1 => (0..rng.random_range(1..12))
            .map(|_| char::from(rng.random_range(32u8..127)))
            .collect(),
        _ => POOL[rng.random_range(0..POOL.len())].to_string(),
    }
}

fn revision(rng: &mut StdRng) -> Option<i64> {
    const POOL: &[i64] = &[-2, -1, 0, 1, 2, 3, i64::MAX, i64::MIN];
    match rng.random_range(0..4) {
        0 => None,
        1 => Some(rng.random()),
        _ => Some(POOL[rng.random_range(0..POOL.len())]),
    }
}

fn channel_type(rng: &mut StdRng) -> i32 {
    [-1, 0, 1, 1, 2, 2, 3, 3, 4, 99][rng.random_range(0..10)]
}

fn items(rng: &mut StdRng) -> Vec<pb::MetadataItem> {
    let n = match rng.random_range(0..8) {
        0 => 0,
        1 => rng.random_range(30..40),
        _ => rng.random_range(1..4),
    };
    (0..n)
        .map(|_| pb::MetadataItem {
            key: name(rng),
            value: "v".repeat(match rng.random_range(0..10) {
                0 => rng.random_range(16_000..17_000),
                _ => rng.random_range(0..20),
            }),
            revision: revision(rng),
        })
        .collect()
}

fn request(rng: &mut StdRng) -> Req {
    let write = |rng: &mut StdRng| pb::MetadataWriteRequest {
        channel_type: channel_type(rng),
        channel_name: name(rng),
        items: items(rng),
        major_revision: revision(rng),
        lock_name: if rng.random_bool(0.3) {
            name(rng)
        } else {
            String::new()
        },
        add_timestamp: rng.random(),
        add_user_id: rng.random(),
    };
    match rng.random_range(0..12) {
        0 => Req::SetMetadata(write(rng)),
        1 => Req::UpdateMetadata(write(rng)),
        2 => Req::RemoveMetadata(write(rng)),
        3 => Req::GetMetadata(pb::GetMetadataRequest {
            channel_type: channel_type(rng),
            channel_name: name(rng),
        }),
        4 => Req::SubscribeUserMetadata(pb::SubscribeUserMetadataRequest { user_id: name(rng) }),
        5 => {
            Req::UnsubscribeUserMetadata(pb::UnsubscribeUserMetadataRequest { user_id: name(rng) })
        }
        6 => Req::SetLock(pb::SetLockRequest {
            channel_type: channel_type(rng),
            channel_name: name(rng),
            lock_name: name(rng),
            ttl: [0, 1, 10, 300, 301, u32::MAX][rng.random_range(0..6)],
        }),
        7 => Req::RemoveLock(pb::RemoveLockRequest {
            channel_type: channel_type(rng),
            channel_name: name(rng),
            lock_name: name(rng),
        }),
        8 => Req::AcquireLock(pb::AcquireLockRequest {
            channel_type: channel_type(rng),
            channel_name: name(rng),
            lock_name: name(rng),
            retry: rng.random_bool(0.2),
        }),
        9 => Req::ReleaseLock(pb::ReleaseLockRequest {
            channel_type: channel_type(rng),
            channel_name: name(rng),
            lock_name: name(rng),
        }),
        10 => Req::RevokeLock(pb::RevokeLockRequest {
            channel_type: channel_type(rng),
            channel_name: name(rng),
            lock_name: name(rng),
            owner: name(rng),
        }),
        _ => Req::GetLock(pb::GetLockRequest {
            channel_type: channel_type(rng),
            channel_name: name(rng),
        }),
    }
}

/// Whether `code` is a refusal the contract has for `body` (api.md §12.2): a storage
/// call answers −12xxx, a lock call −14xxx, either a bad user id (a user metadata
/// object, a revoked owner), channel name or type (−10006, −10008, −10019). Anything
/// else (an internal error, a code of another feature) is a defect.
fn refusal_fits(body: &Req, code: i32) -> bool {
    let common = [INVALID_USER_ID, INVALID_CHANNEL_NAME, INVALID_CHANNEL_TYPE];
    match body {
        Req::SetMetadata(_)
        | Req::UpdateMetadata(_)
        | Req::RemoveMetadata(_)
        | Req::GetMetadata(_)
        | Req::SubscribeUserMetadata(_)
        | Req::UnsubscribeUserMetadata(_) => {
            (-12999..=-12001).contains(&code) || common.contains(&code)
        }
        _ => (-14999..=-14001).contains(&code) || common.contains(&code),
    }
}

/// Whether `rep` is the reply of `body`'s kind.
fn answers(body: &Req, rep: &Rep) -> bool {
    matches!(
        (body, rep),
        (Req::SetMetadata(_), Rep::SetMetadata(_))
            | (Req::UpdateMetadata(_), Rep::UpdateMetadata(_))
            | (Req::RemoveMetadata(_), Rep::RemoveMetadata(_))
            | (Req::GetMetadata(_), Rep::GetMetadata(_))
            | (Req::SubscribeUserMetadata(_), Rep::SubscribeUserMetadata(_))
            | (
                Req::UnsubscribeUserMetadata(_),
                Rep::UnsubscribeUserMetadata(_)
            )
            | (Req::SetLock(_), Rep::SetLock(_))
            | (Req::RemoveLock(_), Rep::RemoveLock(_))
            | (Req::AcquireLock(_), Rep::AcquireLock(_))
            | (Req::ReleaseLock(_), Rep::ReleaseLock(_))
            | (Req::RevokeLock(_), Rep::RevokeLock(_))
            | (Req::GetLock(_), Rep::GetLock(_))
    )
}

/// Sends `n` random requests on `c`, each answered before the next (a retry acquire may
/// wait in line: its reply is not awaited); returns (accepted, refused).
async fn barrage(c: &mut RawClient, rng: &mut StdRng, n: usize) -> (usize, usize) {
    let (mut ok, mut refused) = (0, 0);
    for i in 0..n {
        let body = request(rng);
        let waits = matches!(&body, Req::AcquireLock(a) if a.retry);
        let id = c.send_request(body.clone()).await;
        if waits {
            continue;
        }
        match c.try_reply(id).await {
            Some(Rep::Error(e)) => {
                assert!(
                    refusal_fits(&body, e.code) && !e.reason.is_empty(),
                    "request {i} {body:?}: {e:?}"
                );
                refused += 1;
            }
            Some(rep) => {
                assert!(answers(&body, &rep), "request {i} {body:?}: {rep:?}");
                ok += 1
            }
            None => panic!("request {i} closed the connection: {body:?}"),
        }
    }
    (ok, refused)
}

/// The channel (type, name) a random request aims at: its own for metadata and lock
/// calls, the USER channel of the user for user-metadata subscriptions.
fn target(body: &Req) -> (i32, String) {
    match body {
        Req::SetMetadata(w) | Req::UpdateMetadata(w) | Req::RemoveMetadata(w) => {
            (w.channel_type, w.channel_name.clone())
        }
        Req::GetMetadata(g) => (g.channel_type, g.channel_name.clone()),
        Req::SubscribeUserMetadata(u) => (USER, u.user_id.clone()),
        Req::UnsubscribeUserMetadata(u) => (USER, u.user_id.clone()),
        Req::SetLock(l) => (l.channel_type, l.channel_name.clone()),
        Req::RemoveLock(l) => (l.channel_type, l.channel_name.clone()),
        Req::AcquireLock(l) => (l.channel_type, l.channel_name.clone()),
        Req::ReleaseLock(l) => (l.channel_type, l.channel_name.clone()),
        Req::RevokeLock(l) => (l.channel_type, l.channel_name.clone()),
        Req::GetLock(l) => (l.channel_type, l.channel_name.clone()),
        other => panic!("not a request of the barrage: {other:?}"),
    }
}

/// What the channel `(channel_type, name)` holds as far as `c` can read it: its
/// metadata and its locks (or the code each read is refused with).
async fn readable(c: &mut RawClient, (channel_type, name): &(i32, String)) -> String {
    let meta = match c
        .request(Req::GetMetadata(pb::GetMetadataRequest {
            channel_type: *channel_type,
            channel_name: name.clone(),
        }))
        .await
    {
        Rep::GetMetadata(r) => format!("{:?}", r.data),
        Rep::Error(e) => format!("refused {}", e.code),
        other => panic!("getMetadata: {other:?}"),
    };
    let locks = match c
        .request(Req::GetLock(pb::GetLockRequest {
            channel_type: *channel_type,
            channel_name: name.clone(),
        }))
        .await
    {
        Rep::GetLock(r) => format!("{:?}", r.locks),
        Rep::Error(e) => format!("refused {}", e.code),
        other => panic!("getLock: {other:?}"),
    };
    format!("{meta} / {locks}")
}

/// Like [`barrage`] but alone on the server, so that nothing else writes meanwhile:
/// before and after every refused request the channel it aims at reads the same.
async fn checked_barrage(c: &mut RawClient, rng: &mut StdRng, n: usize) -> usize {
    let mut refused = 0;
    for i in 0..n {
        let body = request(rng);
        if matches!(&body, Req::AcquireLock(a) if a.retry) {
            continue;
        }
        let at = target(&body);
        let before = readable(c, &at).await;
        let rep = c.request(body.clone()).await;
        if let Rep::Error(e) = rep {
            assert!(refusal_fits(&body, e.code), "request {i} {body:?}: {e:?}");
            assert_eq!(
                readable(c, &at).await,
                before,
                "request {i} was refused ({e:?}) yet changed {at:?}: {body:?}"
            );
            refused += 1;
        }
    }
    refused
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r171_random_storage_and_lock_requests_never_break_the_server() {
    let seed: u64 = std::env::var("SWITCHBOARD_HOSTILE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("seed {seed} (SWITCHBOARD_HOSTILE_SEED={seed} replays it)");
    let server = TestServer::start().await;
    let mut watcher = server.raw_login("watcher").await;
    let reply = watcher
        .request(Req::Subscribe(pb::SubscribeRequest {
            channel_name: "room".into(),
            with_metadata: Some(true),
            with_lock: Some(true),
            with_presence: Some(false),
            ..Default::default()
        }))
        .await;
    assert!(matches!(reply, Rep::Subscribe(_)), "{reply:?}");

    let mut a = server.raw_login("alice").await;
    let mut b = server.raw_login("bob").await;
    let mut ra = StdRng::seed_from_u64(seed);
    let mut rb = StdRng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15);
    let (sa, sb) = tokio::join!(
        barrage(&mut a, &mut ra, 1500),
        barrage(&mut b, &mut rb, 1500)
    );
    println!("alice accepted/refused {sa:?}, bob {sb:?}");
    // The mix reaches both the accepting and the refusing paths.
    assert!(
        sa.0 > 0 && sa.1 > 0 && sb.0 > 0 && sb.1 > 0,
        "{sa:?} {sb:?}"
    );

    // Then one client alone: every refusal leaves its channel as it was (R171).
    let mut rc = StdRng::seed_from_u64(seed ^ 0x5851_f42d_4c95_7f2d);
    let refused = checked_barrage(&mut a, &mut rc, 400).await;
    assert!(refused > 0, "the checked barrage reaches refusals");

    a.assert_alive().await;
    b.assert_alive().await;
    watcher.assert_alive().await;
    // A fresh client still gets the normal service.
    let mut c = server.raw_login("carol").await;
    let set = c
        .request(Req::SetMetadata(pb::MetadataWriteRequest {
            channel_type: pb::ChannelType::Message as i32,
            channel_name: "after".into(),
            items: vec![pb::MetadataItem {
                key: "k".into(),
                value: "v".into(),
                revision: None,
            }],
            ..Default::default()
        }))
        .await;
    let Rep::SetMetadata(set) = set else {
        panic!("set after the barrage: {set:?}")
    };
    assert_eq!((set.total_count, set.major_revision), (1, 1));
    let lock = c
        .request(Req::SetLock(pb::SetLockRequest {
            channel_type: pb::ChannelType::Message as i32,
            channel_name: "after".into(),
            lock_name: "l".into(),
            ttl: 0,
        }))
        .await;
    assert!(matches!(lock, Rep::SetLock(_)), "{lock:?}");
    let got = c
        .request(Req::AcquireLock(pb::AcquireLockRequest {
            channel_type: pb::ChannelType::Message as i32,
            channel_name: "after".into(),
            lock_name: "l".into(),
            retry: false,
        }))
        .await;
    assert!(matches!(got, Rep::AcquireLock(_)), "{got:?}");
}

// ---------------------------------------------------------------------------------------
// Each hostile case on its own: its code, nothing changed, a canary unaffected
// ---------------------------------------------------------------------------------------

// Error codes of the contract (api.md §12.2).
const INVALID_MESSAGE: i32 = -11009;
const MESSAGE_TOO_LONG: i32 = -11010;
const CUSTOM_TYPE_TOO_LONG: i32 = -11029;
const LOCK_NOT_ACQUIRED_FOR_WRITE: i32 = -12008;
const INVALID_KEY: i32 = -12009;
const KEY_TOO_LONG: i32 = -12011;
const VALUE_TOO_LONG: i32 = -12012;
const DUPLICATE_KEY: i32 = -12013;
const OUTDATED: i32 = -12014;
const STATE_COUNT_OVERFLOW: i32 = -13005;
const INVALID_STATE_KEY: i32 = -13006;
const STATE_KEY_TOO_LONG: i32 = -13008;
const STATE_VALUE_TOO_LONG: i32 = -13009;
const LOCK_ALREADY_EXIST: i32 = -14004;
const LOCK_INVALID_NAME: i32 = -14005;
const LOCK_NOT_ACQUIRED: i32 = -14006;
const LOCK_ACQUIRE_FAILED: i32 = -14007;
const LOCK_NOT_EXIST: i32 = -14008;

/// The channel every case aims at.
const ROOM: &str = "room";

fn meta_item(key: &str, value: &str, revision: Option<i64>) -> pb::MetadataItem {
    pb::MetadataItem {
        key: key.into(),
        value: value.into(),
        revision,
    }
}

/// A metadata write of `items` to the MESSAGE channel [`ROOM`].
fn room_write(items: Vec<pb::MetadataItem>) -> pb::MetadataWriteRequest {
    pb::MetadataWriteRequest {
        channel_type: MESSAGE,
        channel_name: ROOM.into(),
        items,
        ..Default::default()
    }
}

fn lock_in(channel_type: i32, lock: &str) -> (i32, String, String) {
    (channel_type, ROOM.into(), lock.into())
}

fn set_lock(channel_type: i32, lock: &str) -> Req {
    let (channel_type, channel_name, lock_name) = lock_in(channel_type, lock);
    Req::SetLock(pb::SetLockRequest {
        channel_type,
        channel_name,
        lock_name,
        ttl: 0,
    })
}

fn acquire(lock: &str) -> Req {
    let (channel_type, channel_name, lock_name) = lock_in(MESSAGE, lock);
    Req::AcquireLock(pb::AcquireLockRequest {
        channel_type,
        channel_name,
        lock_name,
        retry: false,
    })
}

fn set_state(states: &[(String, String)]) -> Req {
    Req::SetState(pb::SetStateRequest {
        channel_type: MESSAGE,
        channel_name: ROOM.into(),
        states: states.iter().cloned().collect(),
    })
}

fn kv(k: &str, v: &str) -> (String, String) {
    (k.into(), v.into())
}

/// Every hostile case: a name, the request, the code it must be refused with.
fn cases() -> Vec<(&'static str, Req, i32)> {
    let stale = |key: &str| meta_item(key, "x", Some(99));
    let mut many = Vec::new();
    for i in 0..33 {
        many.push(kv(&format!("s{i}"), "v"));
    }
    vec![
        (
            "metadata of an unknown channel type",
            Req::SetMetadata(pb::MetadataWriteRequest {
                channel_type: 99,
                ..room_write(vec![meta_item("a", "1", None)])
            }),
            INVALID_CHANNEL_TYPE,
        ),
        (
            "metadata of an empty channel name",
            Req::SetMetadata(pb::MetadataWriteRequest {
                channel_name: String::new(),
                ..room_write(vec![meta_item("a", "1", None)])
            }),
            INVALID_CHANNEL_NAME,
        ),
        (
            "an empty key next to a valid one",
            Req::SetMetadata(room_write(vec![
                meta_item("a", "1", None),
                meta_item("", "1", None),
            ])),
            INVALID_KEY,
        ),
        (
            "a 33-byte key",
            Req::UpdateMetadata(room_write(vec![meta_item(&"k".repeat(33), "1", None)])),
            KEY_TOO_LONG,
        ),
        (
            "a value over 16 KiB",
            Req::SetMetadata(room_write(vec![meta_item(
                "a",
                &"v".repeat(16 * 1024 + 1),
                None,
            )])),
            VALUE_TOO_LONG,
        ),
        (
            "the same key twice",
            Req::SetMetadata(room_write(vec![
                meta_item("a", "1", None),
                meta_item("a", "2", None),
            ])),
            DUPLICATE_KEY,
        ),
        (
            "a stale item revision",
            Req::SetMetadata(room_write(vec![meta_item("b", "1", None), stale("k")])),
            OUTDATED,
        ),
        (
            "a stale major revision",
            Req::UpdateMetadata(pb::MetadataWriteRequest {
                major_revision: Some(99),
                ..room_write(vec![meta_item("k", "x", None)])
            }),
            OUTDATED,
        ),
        (
            "a remove with a stale revision",
            Req::RemoveMetadata(room_write(vec![stale("k")])),
            OUTDATED,
        ),
        (
            "a write gated by a lock someone else holds",
            Req::SetMetadata(pb::MetadataWriteRequest {
                lock_name: "l".into(),
                ..room_write(vec![meta_item("k", "x", None)])
            }),
            LOCK_NOT_ACQUIRED_FOR_WRITE,
        ),
        (
            "setLock of an existing lock",
            set_lock(MESSAGE, "l"),
            LOCK_ALREADY_EXIST,
        ),
        (
            "setLock with an empty name",
            set_lock(MESSAGE, ""),
            LOCK_INVALID_NAME,
        ),
        (
            "setLock of an unknown channel type",
            set_lock(99, "new"),
            INVALID_CHANNEL_TYPE,
        ),
        (
            "acquireLock of a held lock, no retry",
            acquire("l"),
            LOCK_ACQUIRE_FAILED,
        ),
        (
            "acquireLock of a missing lock",
            acquire("nope"),
            LOCK_NOT_EXIST,
        ),
        (
            "releaseLock by a non-owner",
            Req::ReleaseLock(pb::ReleaseLockRequest {
                channel_type: MESSAGE,
                channel_name: ROOM.into(),
                lock_name: "l".into(),
            }),
            LOCK_NOT_ACQUIRED,
        ),
        (
            "revokeLock naming the wrong owner",
            Req::RevokeLock(pb::RevokeLockRequest {
                channel_type: MESSAGE,
                channel_name: ROOM.into(),
                lock_name: "l".into(),
                owner: "mallory".into(),
            }),
            LOCK_NOT_ACQUIRED,
        ),
        (
            "removeLock of a missing lock",
            Req::RemoveLock(pb::RemoveLockRequest {
                channel_type: MESSAGE,
                channel_name: ROOM.into(),
                lock_name: "nope".into(),
            }),
            LOCK_NOT_EXIST,
        ),
        (
            "a STRING message that is not UTF-8",
            publish_body(
                pb::ChannelType::Message,
                ROOM,
                pb::MessageType::String,
                &[b'o', b'k', 0xff, 0xfe][..],
            ),
            INVALID_MESSAGE,
        ),
        (
            "a message of 32769 bytes",
            publish_body(
                pb::ChannelType::Message,
                ROOM,
                pb::MessageType::Binary,
                vec![0u8; 32 * 1024 + 1],
            ),
            MESSAGE_TOO_LONG,
        ),
        (
            "a 33-byte custom type",
            Req::Publish(pb::PublishRequest {
                custom_type: "t".repeat(33),
                ..match publish_text(ROOM, "typed") {
                    Req::Publish(p) => p,
                    _ => unreachable!(),
                }
            }),
            CUSTOM_TYPE_TOO_LONG,
        ),
        (
            "a state with an empty key",
            set_state(&[kv("ok", "1"), kv("", "1")]),
            INVALID_STATE_KEY,
        ),
        (
            "a state key of 33 bytes",
            set_state(&[kv(&"k".repeat(33), "1")]),
            STATE_KEY_TOO_LONG,
        ),
        (
            "a state value over 16 KiB",
            set_state(&[kv("k", &"v".repeat(16 * 1024 + 1))]),
            STATE_VALUE_TOO_LONG,
        ),
        ("33 state keys", set_state(&many), STATE_COUNT_OVERFLOW),
    ]
}

/// What a refused request must leave alone: the channel's metadata and locks, and the
/// attacker's presence state.
async fn room_state(c: &mut RawClient) -> (Option<pb::Metadata>, Vec<pb::LockDetail>, St) {
    let meta = match c
        .request(Req::GetMetadata(pb::GetMetadataRequest {
            channel_type: MESSAGE,
            channel_name: ROOM.into(),
        }))
        .await
    {
        Rep::GetMetadata(r) => r.data,
        other => panic!("getChannelMetadata: {other:?}"),
    };
    let locks = match c
        .request(Req::GetLock(pb::GetLockRequest {
            channel_type: MESSAGE,
            channel_name: ROOM.into(),
        }))
        .await
    {
        Rep::GetLock(r) => r.locks,
        other => panic!("getLock: {other:?}"),
    };
    let state = match c
        .request(Req::GetState(pb::GetStateRequest {
            channel_type: MESSAGE,
            channel_name: ROOM.into(),
            user_id: "mallory".into(),
        }))
        .await
    {
        Rep::GetState(r) => r.states.into_iter().collect(),
        other => panic!("getState: {other:?}"),
    };
    (meta, locks, state)
}

type St = std::collections::BTreeMap<String, String>;

/// Subscribes `c` to `channel` with messages, metadata, lock and presence events.
async fn watch(c: &mut RawClient, channel: &str) {
    let reply = c
        .request(Req::Subscribe(pb::SubscribeRequest {
            channel_name: channel.into(),
            with_metadata: Some(true),
            with_lock: Some(true),
            with_presence: Some(true),
            ..Default::default()
        }))
        .await;
    assert!(matches!(reply, Rep::Subscribe(_)), "{reply:?}");
}

/// Publishes `text` to `channel` from `from`; panics unless it is accepted.
async fn say(from: &mut RawClient, channel: &str, text: &str) {
    let reply = from.request(publish_text(channel, text)).await;
    assert!(
        matches!(reply, Rep::Publish(_)),
        "publish {text:?}: {reply:?}"
    );
}

/// The next push of `c`, which must be the message `text` (anything before it is
/// something that should not have been sent).
async fn expect_only(c: &mut RawClient, text: &str, what: &str) {
    let push = c
        .next_push(STEP)
        .await
        .unwrap_or_else(|| panic!("{what}: connection closed"));
    match push.body {
        Some(Rep::Message(m)) if m.payload.as_ref() == text.as_bytes() => {}
        other => panic!("{what}: expected only the sentinel {text:?}, got {other:?}"),
    }
}

/// Reads pushes of `c` until the message `text` (the SNAPSHOTs and events of the setup
/// come before it).
async fn skip_to(c: &mut RawClient, text: &str) {
    loop {
        let push = c.next_push(STEP).await.expect("connection open");
        if let Some(Rep::Message(m)) = push.body {
            if m.payload.as_ref() == text.as_bytes() {
                return;
            }
        }
    }
}

/// R171, api.md §12: every hostile request is refused with its own code; the refused
/// request changes nothing — no event or message reaches a member of the channel (a
/// sentinel published after it is the next push), the metadata, the locks and the
/// attacker's presence state read the same — and the attacker's connection carries on.
/// Canaries elsewhere (another channel of the app, the same channel name in another
/// app) see none of it.
#[tokio::test]
async fn r171_each_hostile_request_is_refused_with_its_code_and_changes_nothing() {
    let server = TestServer::start().await;
    // The owner: metadata k = v and lock l, held.
    let mut alice = server.raw_login("alice").await;
    alice.subscribe(ROOM).await;
    let set = alice
        .request(Req::SetMetadata(room_write(vec![meta_item(
            "k", "v", None,
        )])))
        .await;
    assert!(matches!(set, Rep::SetMetadata(_)), "{set:?}");
    for req in [set_lock(MESSAGE, "l"), acquire("l")] {
        let reply = alice.request(req).await;
        assert!(!matches!(reply, Rep::Error(_)), "{reply:?}");
    }
    // The attacker, a visible member with a state.
    let mut mallory = server.raw_login("mallory").await;
    mallory.subscribe(ROOM).await;
    let reply = mallory.request(set_state(&[kv("m", "1")])).await;
    assert!(matches!(reply, Rep::SetState(_)), "{reply:?}");
    // A member that sees everything of the channel.
    let mut watcher = server.raw_login("watcher").await;
    watch(&mut watcher, ROOM).await;
    say(&mut alice, ROOM, "ready").await;
    skip_to(&mut watcher, "ready").await;
    // Canaries: another channel of the app, the same channel name in another app.
    let mut lobby = server.raw_login("lobby").await;
    watch(&mut lobby, "lobby").await;
    let mut other = server.raw().await;
    let reply = other
        .login(
            OTHER_APP_ID,
            "canary",
            &token_with(OTHER_APP_ID, OTHER_CERT, "canary", 3600, now_secs()),
            60,
        )
        .await;
    assert!(matches!(reply, Rep::Login(_)), "{reply:?}");
    watch(&mut other, ROOM).await;
    say(&mut lobby, "lobby", "lobby-ready").await;
    skip_to(&mut lobby, "lobby-ready").await;
    say(&mut other, ROOM, "other-ready").await;
    skip_to(&mut other, "other-ready").await;

    let before = room_state(&mut mallory).await;
    assert_eq!(before.2, St::from([("m".into(), "1".into())]));
    for (i, (what, req, code)) in cases().into_iter().enumerate() {
        let e = expect_error(mallory.request(req.clone()).await);
        assert_eq!(e.code, code, "{what}: {e:?} for {req:?}");
        assert!(!e.reason.is_empty(), "{what}: a reason: {e:?}");
        mallory.assert_alive().await;
        let sentinel = format!("after-{i}");
        say(&mut mallory, ROOM, &sentinel).await;
        expect_only(&mut watcher, &sentinel, what).await;
        assert_eq!(
            room_state(&mut mallory).await,
            before,
            "{what}: a refused request changes nothing"
        );
    }

    // The canaries saw nothing of it and are served as before.
    say(&mut lobby, "lobby", "lobby-after").await;
    expect_only(&mut lobby, "lobby-after", "the canary in another channel").await;
    say(&mut other, ROOM, "other-after").await;
    expect_only(&mut other, "other-after", "the canary in another app").await;
    lobby.assert_alive().await;
    other.assert_alive().await;
    alice.assert_alive().await;
}
