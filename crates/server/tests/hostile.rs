//! Hostile but well-formed requests (api.md §12, R171: a refused request changes nothing
//! and the connection carries on): thousands of storage and lock requests with random
//! field values — odd names, extreme revisions and ttls, oversized and duplicate items,
//! unknown channel types — from two clients at once. Every request is answered (none
//! panics the server or closes the connection), and afterwards both connections, a
//! watching subscriber and a fresh client work normally. Seeded: set
//! `SWITCHBOARD_HOSTILE_SEED` to replay a run.

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
                    e.code < 0 && !e.reason.is_empty(),
                    "request {i} {body:?}: {e:?}"
                );
                refused += 1;
            }
            Some(_) => ok += 1,
            None => panic!("request {i} closed the connection: {body:?}"),
        }
    }
    (ok, refused)
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
