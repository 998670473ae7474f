//! The history conformance kit: behavioural checks that every [`HistoryStore`] must
//! pass. An engine crate calls [`run_history_suite`] from a tokio test with a factory
//! that builds a fresh, empty store for the given retention.
//!
//! Timestamps in the suite are taken around the current wall-clock time, so that
//! age-based retention of a real store never drops them.

use crate::{
    ChannelKey, ChannelKind, EngineError, HistoryPage, HistoryRetention, HistoryStore, MessageKind,
    Publication, StreamPosition,
};
use bytes::Bytes;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Retention used by the suite unless a check needs its own: one day, 100,000 messages.
pub const SUITE_HISTORY_RETENTION: HistoryRetention = HistoryRetention {
    max_age: Duration::from_secs(24 * 3600),
    max_per_channel: 100_000,
};

/// Runs every check against stores built by `factory`. Panics on the first failure
/// with a message naming the check.
pub async fn run_history_suite<F>(factory: F)
where
    F: Fn(HistoryRetention) -> Arc<dyn HistoryStore>,
{
    empty_channel(&factory).await;
    round_trip_and_order(&factory).await;
    same_millisecond(&factory).await;
    burst_paging(&factory).await;
    bounds(&factory).await;
    limit(&factory).await;
    isolation(&factory).await;
    user_pair(&factory).await;
    retention_count(&factory).await;
    retention_age(&factory).await;
    hostile_values(&factory).await;
}

/// Wall-clock now in ms, minus a minute so that the suite's small offsets stay in the
/// past of any real clock.
fn base_ms() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(1_700_000_000_000);
    now.saturating_sub(60_000)
}

/// A text publication by `publisher` with `body` at `timestamp_ms`.
pub fn history_publication(publisher: &str, body: &str, timestamp_ms: u64) -> Publication {
    Publication {
        publisher: publisher.into(),
        kind: MessageKind::Text,
        custom_type: "".into(),
        payload: Bytes::copy_from_slice(body.as_bytes()),
        topic: "".into(),
        send_ts: 0,
        timestamp_ms,
        position: StreamPosition::default(),
    }
}

fn key(app: &str, name: &str) -> ChannelKey {
    ChannelKey::new(app, ChannelKind::Message, name)
}

fn timestamps(page: &HistoryPage) -> Vec<u64> {
    page.messages.iter().map(|m| m.timestamp_ms).collect()
}

async fn append(s: &Arc<dyn HistoryStore>, ch: &ChannelKey, body: &str, ts: u64) -> u64 {
    s.append(ch, &history_publication("p", body, ts))
        .await
        .expect("append")
}

async fn query(
    s: &Arc<dyn HistoryStore>,
    ch: &ChannelKey,
    start: u64,
    end: u64,
    limit: usize,
) -> HistoryPage {
    s.query(ch, start, end, limit).await.expect("query")
}

/// Pages through `end ..= start` with `limit`, asserting the paging invariants;
/// returns every timestamp seen, newest first.
async fn page_all(
    s: &Arc<dyn HistoryStore>,
    ch: &ChannelKey,
    start: u64,
    end: u64,
    limit: usize,
) -> Vec<u64> {
    let mut all = Vec::new();
    let mut start = start;
    for _ in 0..100_000 {
        let page = query(s, ch, start, end, limit).await;
        assert!(
            page.messages.len() <= limit,
            "paging: a page holds at most `limit` messages"
        );
        let ts = timestamps(&page);
        assert!(
            ts.windows(2).all(|w| w[0] > w[1]),
            "paging: newest first, no duplicates within a page: {ts:?}"
        );
        if let (Some(&prev), Some(&first)) = (all.last(), ts.first()) {
            assert!(first < prev, "paging: a later page is older than the last");
        }
        all.extend_from_slice(&ts);
        if page.new_start == 0 {
            return all;
        }
        assert!(
            !page.messages.is_empty(),
            "paging: an empty page has new_start 0"
        );
        assert!(
            page.new_start < *ts.last().unwrap_or(&u64::MAX),
            "paging: new_start is below the oldest returned message"
        );
        start = page.new_start;
    }
    panic!("paging: new_start never reached 0");
}

async fn empty_channel<F: Fn(HistoryRetention) -> Arc<dyn HistoryStore>>(factory: &F) {
    let s = factory(SUITE_HISTORY_RETENTION);
    let page = query(&s, &key("app1", "nothing"), 0, 0, 100).await;
    assert_eq!(
        page,
        HistoryPage::default(),
        "empty: a channel never written is an empty page with new_start 0"
    );
}

async fn round_trip_and_order<F: Fn(HistoryRetention) -> Arc<dyn HistoryStore>>(factory: &F) {
    let s = factory(SUITE_HISTORY_RETENTION);
    let ch = key("app1", "order");
    let t = base_ms();
    let binary = Publication {
        publisher: "alice".into(),
        kind: MessageKind::Binary,
        custom_type: "ct".into(),
        payload: Bytes::from_static(&[0, 255, 1, 254]),
        topic: "".into(),
        send_ts: 0,
        timestamp_ms: t,
        position: StreamPosition {
            epoch: 7,
            offset: 9,
        },
    };
    assert_eq!(
        s.append(&ch, &binary).await.expect("append"),
        t,
        "append: a fresh timestamp is stored as is"
    );
    let empty = Publication {
        publisher: "bob".into(),
        kind: MessageKind::Text,
        custom_type: "".into(),
        payload: Bytes::new(),
        topic: "".into(),
        send_ts: 0,
        timestamp_ms: t + 5,
        position: StreamPosition::default(),
    };
    assert_eq!(s.append(&ch, &empty).await.expect("append"), t + 5);
    assert_eq!(append(&s, &ch, "third", t + 9).await, t + 9);
    let page = query(&s, &ch, 0, 0, 100).await;
    assert_eq!(
        timestamps(&page),
        vec![t + 9, t + 5, t],
        "order: newest first"
    );
    assert_eq!(page.new_start, 0, "order: nothing older remains");
    let oldest = &page.messages[2];
    assert_eq!(&*oldest.publisher, "alice", "round trip: publisher");
    assert_eq!(oldest.kind, MessageKind::Binary, "round trip: kind");
    assert_eq!(&*oldest.custom_type, "ct", "round trip: custom type");
    assert_eq!(
        oldest.payload,
        Bytes::from_static(&[0, 255, 1, 254]),
        "round trip: payload bytes"
    );
    let middle = &page.messages[1];
    assert_eq!(
        (&*middle.publisher, middle.kind, &*middle.custom_type),
        ("bob", MessageKind::Text, ""),
        "round trip: text message with empty custom type"
    );
    assert!(middle.payload.is_empty(), "round trip: empty payload");
    assert_eq!(page.messages[0].payload, Bytes::from_static(b"third"));
}

async fn same_millisecond<F: Fn(HistoryRetention) -> Arc<dyn HistoryStore>>(factory: &F) {
    let s = factory(SUITE_HISTORY_RETENTION);
    let ch = key("app1", "same-ms");
    let t = base_ms();
    let mut got = Vec::new();
    for i in 0..5 {
        got.push(append(&s, &ch, &i.to_string(), t).await);
    }
    assert_eq!(
        got,
        vec![t, t + 1, t + 2, t + 3, t + 4],
        "timestamps: the same millisecond is raised to stay strictly increasing"
    );
    assert_eq!(
        append(&s, &ch, "late", t - 1000).await,
        t + 5,
        "timestamps: an older timestamp is raised above the latest"
    );
    assert_eq!(
        append(&s, &ch, "jump", t + 100).await,
        t + 100,
        "timestamps: a later timestamp is kept"
    );
    let ch0 = key("app1", "zero");
    assert_eq!(
        append(&s, &ch0, "zero", 0).await,
        1,
        "timestamps: 0 is stored as 1"
    );
    assert_eq!(append(&s, &ch0, "zero", 0).await, 2);
    let page = query(&s, &ch, 0, 0, 100).await;
    assert_eq!(
        timestamps(&page),
        vec![t + 100, t + 5, t + 4, t + 3, t + 2, t + 1, t],
        "timestamps: stored as returned by append"
    );
    let bodies: Vec<_> = page.messages.iter().map(|m| m.payload.clone()).collect();
    assert_eq!(
        bodies[1..],
        ["late", "4", "3", "2", "1", "0"].map(Bytes::from),
        "timestamps: raising keeps arrival order"
    );
}

async fn burst_paging<F: Fn(HistoryRetention) -> Arc<dyn HistoryStore>>(factory: &F) {
    let s = factory(SUITE_HISTORY_RETENTION);
    let ch = key("app1", "burst");
    let t = base_ms();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..250 {
        let s = s.clone();
        let ch = ch.clone();
        tasks.spawn(async move {
            let p = history_publication("p", &format!("m{i}"), t);
            s.append(&ch, &p).await
        });
    }
    let mut stored = Vec::new();
    while let Some(r) = tasks.join_next().await {
        stored.push(r.expect("task").expect("append"));
    }
    stored.sort_unstable();
    let want: Vec<u64> = (t..t + 250).collect();
    assert_eq!(
        stored, want,
        "burst: 250 appends in one millisecond get 250 consecutive timestamps"
    );
    let newest_first: Vec<u64> = want.iter().rev().copied().collect();
    for limit in [100, 7, 1, 250, 1000] {
        assert_eq!(
            page_all(&s, &ch, 0, 0, limit).await,
            newest_first,
            "paging with limit {limit}: every message exactly once"
        );
    }
    let first = query(&s, &ch, 0, 0, 100).await;
    assert_eq!(first.messages.len(), 100, "paging: a full first page");
    assert_eq!(
        first.new_start,
        t + 150 - 1,
        "paging: new_start = oldest returned - 1"
    );
    let last = query(&s, &ch, t + 49, 0, 50).await;
    assert_eq!(
        last.messages.len(),
        50,
        "paging: the last page holds the rest"
    );
    assert_eq!(
        last.new_start, 0,
        "paging: new_start 0 when the page ends exactly at the oldest message"
    );
    let mut bodies = HashSet::new();
    for m in page_all_messages(&s, &ch, 33).await {
        assert!(bodies.insert(m), "paging: a payload came twice");
    }
    assert_eq!(bodies.len(), 250, "paging: every payload once");
}

async fn page_all_messages(s: &Arc<dyn HistoryStore>, ch: &ChannelKey, limit: usize) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut start = 0;
    for _ in 0..100_000 {
        let page = query(s, ch, start, 0, limit).await;
        out.extend(page.messages.iter().map(|m| m.payload.clone()));
        if page.new_start == 0 {
            break;
        }
        start = page.new_start;
    }
    out
}

async fn bounds<F: Fn(HistoryRetention) -> Arc<dyn HistoryStore>>(factory: &F) {
    let s = factory(SUITE_HISTORY_RETENTION);
    let ch = key("app1", "bounds");
    let t = base_ms();
    for i in 0..10 {
        append(&s, &ch, &i.to_string(), t + 10 * i).await;
    }
    let page = query(&s, &ch, t + 50, t + 20, 100).await;
    assert_eq!(
        timestamps(&page),
        vec![t + 50, t + 40, t + 30, t + 20],
        "bounds: end <= timestamp <= start, both inclusive"
    );
    assert_eq!(page.new_start, 0, "bounds: nothing older within the range");
    let page = query(&s, &ch, t + 55, t + 25, 100).await;
    assert_eq!(
        timestamps(&page),
        vec![t + 50, t + 40, t + 30],
        "bounds: between stored timestamps"
    );
    let page = query(&s, &ch, t + 30, 0, 100).await;
    assert_eq!(
        timestamps(&page),
        vec![t + 30, t + 20, t + 10, t],
        "bounds: end 0 is unbounded"
    );
    let page = query(&s, &ch, 0, t + 70, 100).await;
    assert_eq!(
        timestamps(&page),
        vec![t + 90, t + 80, t + 70],
        "bounds: start 0 is now"
    );
    let page = query(&s, &ch, t + 20, t + 50, 100).await;
    assert_eq!(
        page,
        HistoryPage::default(),
        "bounds: start below end is an empty range"
    );
    let page = query(&s, &ch, t - 1, 0, 100).await;
    assert_eq!(
        page,
        HistoryPage::default(),
        "bounds: before the first message"
    );
    let page = query(&s, &ch, t + 50, t + 20, 2).await;
    assert_eq!(timestamps(&page), vec![t + 50, t + 40]);
    assert_eq!(page.new_start, t + 39, "bounds: paging inside a range");
    let page = query(&s, &ch, page.new_start, t + 20, 2).await;
    assert_eq!(timestamps(&page), vec![t + 30, t + 20]);
    assert_eq!(
        page.new_start, 0,
        "bounds: new_start 0 when older messages lie only below `end`"
    );
    assert_eq!(
        page_all(&s, &ch, t + 85, t + 5, 3).await,
        vec![
            t + 80,
            t + 70,
            t + 60,
            t + 50,
            t + 40,
            t + 30,
            t + 20,
            t + 10
        ],
        "bounds: paging a range returns it exactly once"
    );
}

async fn limit<F: Fn(HistoryRetention) -> Arc<dyn HistoryStore>>(factory: &F) {
    let s = factory(SUITE_HISTORY_RETENTION);
    let ch = key("app1", "limit");
    let t = base_ms();
    for i in 0..5 {
        append(&s, &ch, "x", t + i).await;
    }
    let page = query(&s, &ch, 0, 0, 0).await;
    assert_eq!(
        page,
        HistoryPage::default(),
        "limit: 0 is an empty page with new_start 0"
    );
    let page = query(&s, &ch, 0, 0, 1).await;
    assert_eq!(timestamps(&page), vec![t + 4], "limit: 1");
    assert_eq!(page.new_start, t + 3);
    let page = query(&s, &ch, 0, 0, 5).await;
    assert_eq!(page.messages.len(), 5, "limit: exactly the count stored");
    assert_eq!(page.new_start, 0, "limit: nothing older remains");
    let page = query(&s, &ch, 0, 0, usize::MAX).await;
    assert_eq!(page.messages.len(), 5, "limit: usize::MAX");
    assert_eq!(page.new_start, 0);
}

async fn isolation<F: Fn(HistoryRetention) -> Arc<dyn HistoryStore>>(factory: &F) {
    let s = factory(SUITE_HISTORY_RETENTION);
    let t = base_ms();
    let a = key("app1", "same");
    let other_app = key("app2", "same");
    let other_kind = ChannelKey::new("app1", ChannelKind::User, "same");
    let other_name = key("app1", "same2");
    assert_eq!(append(&s, &a, "a", t).await, t);
    assert_eq!(
        append(&s, &other_app, "b", t).await,
        t,
        "isolation: timestamps are per channel"
    );
    assert_eq!(append(&s, &other_kind, "c", t).await, t);
    assert_eq!(append(&s, &other_name, "d", t).await, t);
    for (ch, body) in [
        (&a, "a"),
        (&other_app, "b"),
        (&other_kind, "c"),
        (&other_name, "d"),
    ] {
        let page = query(&s, ch, 0, 0, 100).await;
        assert_eq!(
            page.messages.len(),
            1,
            "isolation: apps, kinds and names do not share history"
        );
        assert_eq!(
            page.messages[0].payload,
            Bytes::copy_from_slice(body.as_bytes())
        );
    }
}

async fn user_pair<F: Fn(HistoryRetention) -> Arc<dyn HistoryStore>>(factory: &F) {
    let ab = ChannelKey::user_pair("app1", "alice", "bob");
    let ba = ChannelKey::user_pair("app1", "bob", "alice");
    assert_eq!(ab, ba, "user pair: the key is symmetric");
    assert_eq!(ab.kind, ChannelKind::User, "user pair: kind USER");
    assert_eq!(ab.user_pair_members(), Some(("alice", "bob")));
    assert_ne!(
        ab,
        ChannelKey::user_pair("app1", "alice", "carol"),
        "user pair: other peers, other key"
    );
    assert_ne!(
        ab,
        ChannelKey::user_pair("app2", "alice", "bob"),
        "user pair: other app, other key"
    );
    assert_ne!(
        ChannelKey::user_pair("app1", "a b", "c"),
        ChannelKey::user_pair("app1", "a", "b c"),
        "user pair: ids with spaces do not collide"
    );
    assert_eq!(
        ChannelKey::new("app1", ChannelKind::User, "alice").user_pair_members(),
        None,
        "user pair: a plain USER channel is not a pair"
    );
    let self_pair = ChannelKey::user_pair("app1", "alice", "alice");
    assert_eq!(self_pair.user_pair_members(), Some(("alice", "alice")));

    let s = factory(SUITE_HISTORY_RETENTION);
    let t = base_ms();
    s.append(&ab, &history_publication("alice", "hi bob", t))
        .await
        .expect("append");
    s.append(&ba, &history_publication("bob", "hi alice", t))
        .await
        .expect("append");
    let from_alice = query(&s, &ab, 0, 0, 100).await;
    let from_bob = query(&s, &ba, 0, 0, 100).await;
    assert_eq!(
        from_alice, from_bob,
        "user pair: both peers read the same history"
    );
    let publishers: Vec<&str> = from_alice.messages.iter().map(|m| &*m.publisher).collect();
    assert_eq!(
        publishers,
        vec!["bob", "alice"],
        "user pair: both directions"
    );
    assert!(
        query(
            &s,
            &ChannelKey::user_pair("app1", "alice", "carol"),
            0,
            0,
            100
        )
        .await
        .messages
        .is_empty(),
        "user pair: a third user sees nothing of it"
    );
}

async fn retention_count<F: Fn(HistoryRetention) -> Arc<dyn HistoryStore>>(factory: &F) {
    let s = factory(HistoryRetention {
        max_per_channel: 5,
        ..SUITE_HISTORY_RETENTION
    });
    let ch = key("app1", "count");
    let other = key("app1", "count-other");
    let t = base_ms();
    for i in 0..12 {
        append(&s, &ch, &i.to_string(), t + i).await;
    }
    append(&s, &other, "o", t).await;
    let page = query(&s, &ch, 0, 0, 100).await;
    assert_eq!(
        timestamps(&page),
        (7..12).rev().map(|i| t + i).collect::<Vec<_>>(),
        "retention: keeps the newest max_per_channel messages"
    );
    assert_eq!(page.new_start, 0, "retention: nothing older remains");
    assert_eq!(
        query(&s, &other, 0, 0, 100).await.messages.len(),
        1,
        "retention: counted per channel"
    );
    assert_eq!(
        append(&s, &ch, "next", t).await,
        t + 12,
        "retention: trimming does not lower the next timestamp"
    );
}

async fn retention_age<F: Fn(HistoryRetention) -> Arc<dyn HistoryStore>>(factory: &F) {
    let s = factory(HistoryRetention {
        max_age: Duration::from_secs(3600),
        ..SUITE_HISTORY_RETENTION
    });
    let ch = key("app1", "age");
    let t = base_ms();
    let old = t - 2 * 3600 * 1000;
    assert_eq!(append(&s, &ch, "old", old).await, old);
    assert_eq!(append(&s, &ch, "new", t).await, t);
    let page = query(&s, &ch, 0, 0, 100).await;
    assert_eq!(
        timestamps(&page),
        vec![t],
        "retention: a message older than max_age is never returned"
    );
    assert_eq!(page.new_start, 0);
    let page = query(&s, &ch, t - 1, 0, 100).await;
    assert_eq!(
        page,
        HistoryPage::default(),
        "retention: not even when asked for by range"
    );
}

async fn hostile_values<F: Fn(HistoryRetention) -> Arc<dyn HistoryStore>>(factory: &F) {
    let s = factory(SUITE_HISTORY_RETENTION);
    let ch = key("app1", "hostile");
    let t = base_ms();
    assert_eq!(append(&s, &ch, "a", t).await, t);
    // A store may refuse a timestamp it cannot represent, but must not panic, and the
    // channel stays usable.
    let huge = s
        .append(&ch, &history_publication("p", "huge", u64::MAX))
        .await;
    if let Ok(ts) = huge {
        assert_eq!(ts, u64::MAX, "hostile: stored as given when accepted");
    } else {
        assert!(
            matches!(huge, Err(EngineError::Unavailable(_))),
            "hostile: refused with an error"
        );
        assert_eq!(
            append(&s, &ch, "b", t).await,
            t + 1,
            "hostile: a refused append leaves the channel unchanged"
        );
    }
    for (start, end) in [
        (u64::MAX, 0),
        (u64::MAX, u64::MAX),
        (0, u64::MAX),
        (u64::MAX, 1),
        (1, 0),
    ] {
        let r = s.query(&ch, start, end, 100).await;
        assert!(r.is_ok(), "hostile: query({start}, {end}) answers");
    }
    let weird = ChannelKey::new(
        "",
        ChannelKind::Stream,
        "\0'\"; DROP TABLE x; --\n\u{1F600}",
    );
    let ts = append(&s, &weird, "w", t).await;
    let page = query(&s, &weird, 0, 0, 10).await;
    assert_eq!(
        timestamps(&page),
        vec![ts],
        "hostile: any key bytes are a key"
    );
}
