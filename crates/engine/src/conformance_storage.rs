//! The conformance kit for storage and locks: every engine implementing both
//! [`MetadataStore`] and [`Locks`] must pass [`run_storage_suite`], called from a test
//! with a factory that builds a fresh engine. One object implements both traits because
//! a metadata write's lock gate (R143) is checked against the same engine's locks in one
//! atomic step.
//!
//! Every check is also public and uses its own channel names (and, where `app`-wide
//! operations are involved, its own apps), so the checks do not interfere even when the
//! factory hands out the same engine each time. Time is passed explicitly to
//! `owner_lost` / `expire_due`; nothing sleeps.

use crate::{
    Acquire, ChannelKey, ChannelKind, Freed, Item, LockRejection, Locks, MetadataObject,
    MetadataStore, MetadataWrite, NO_CHECK, Rejection, WriteItem, WriteOp,
};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Runs every storage and lock check against fresh engines from `factory`. Panics on
/// the first failure with a message naming the rule.
pub async fn run_storage_suite<E, F>(factory: F)
where
    E: MetadataStore + Locks,
    F: Fn() -> Arc<E>,
{
    set_update_remove(&*factory()).await;
    item_revision_guards(&*factory()).await;
    major_revision_guards(&*factory()).await;
    revisions_grow_by_one(&*factory()).await;
    timestamp_and_author(&*factory()).await;
    objects_are_independent(&*factory()).await;
    lock_gate(&*factory()).await;
    lock_definitions(&*factory()).await;
    acquire_release_revoke(&*factory()).await;
    waiters_in_arrival_order(&*factory()).await;
    owner_loss_expiry(&*factory()).await;
    owner_back_and_deadlines(&*factory()).await;
    release_all(&*factory()).await;
    owned_due_and_expire(&*factory()).await;
    Box::pin(concurrent_cas_increments(&factory())).await;
    Box::pin(concurrent_create_and_acquire(&factory())).await;
}

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

fn key(app: &str, kind: ChannelKind, name: &str) -> ChannelKey {
    ChannelKey::new(app, kind, name)
}

fn msg(name: &str) -> ChannelKey {
    key("app", ChannelKind::Message, name)
}

fn write(op: WriteOp, items: &[(&str, &str, i64)]) -> MetadataWrite {
    MetadataWrite {
        op,
        items: items
            .iter()
            .map(|(k, v, r)| WriteItem {
                key: k.to_string(),
                value: v.to_string(),
                revision: *r,
            })
            .collect(),
        major_revision: NO_CHECK,
        lock_gate: None,
        timestamp_ms: None,
        author: None,
    }
}

/// A set of `(key, value, item guard)`.
fn set(items: &[(&str, &str, i64)]) -> MetadataWrite {
    write(WriteOp::Set, items)
}

/// An update of `(key, value, item guard)`.
fn update(items: &[(&str, &str, i64)]) -> MetadataWrite {
    write(WriteOp::Update, items)
}

/// A remove of `(key, item guard)`; no keys = every item.
fn remove(keys: &[(&str, i64)]) -> MetadataWrite {
    let items: Vec<(&str, &str, i64)> = keys.iter().map(|(k, r)| (*k, "", *r)).collect();
    write(WriteOp::Remove, &items)
}

fn with_major(mut w: MetadataWrite, major: i64) -> MetadataWrite {
    w.major_revision = major;
    w
}

fn gated(mut w: MetadataWrite, lock: &str, user: &str) -> MetadataWrite {
    w.lock_gate = Some((lock.into(), user.into()));
    w
}

/// `(key, value)` of every item, ordered by key.
fn values(o: &MetadataObject) -> Vec<(&str, &str)> {
    o.items
        .iter()
        .map(|(k, i)| (k.as_str(), i.value.as_str()))
        .collect()
}

fn item<'a>(o: &'a MetadataObject, k: &str) -> &'a Item {
    o.items
        .get(k)
        .unwrap_or_else(|| panic!("item {k:?} missing from {o:?}"))
}

fn rev(o: &MetadataObject, k: &str) -> i64 {
    item(o, k).revision
}

async fn get<E: MetadataStore + ?Sized>(e: &E, ch: &ChannelKey) -> MetadataObject {
    MetadataObject::clone(&e.get(ch).await.expect("engine error on get"))
}

/// Applies `w`, which must be accepted; checks that the returned object is what `get`
/// reads afterwards and returns it.
async fn accepted<E: MetadataStore + ?Sized>(
    e: &E,
    ch: &ChannelKey,
    w: MetadataWrite,
    what: &str,
) -> MetadataObject {
    let shown = format!("{w:?}");
    match e.write(ch, w).await.expect("engine error on write") {
        Ok(o) => {
            let o = MetadataObject::clone(&o);
            assert_eq!(
                get(e, ch).await,
                o,
                "{what}: a write returns the whole object after the write"
            );
            o
        }
        Err(r) => panic!("{what}: {shown} on {ch:?} should be accepted, was refused with {r:?}"),
    }
}

/// Applies `w`, which must be refused as `Outdated` (or `LockNotHeld` when
/// `lock_not_held`), and checks that nothing changed, major revision included (R142).
async fn refused<E: MetadataStore + ?Sized>(
    e: &E,
    ch: &ChannelKey,
    w: MetadataWrite,
    lock_not_held: bool,
    what: &str,
) {
    let before = get(e, ch).await;
    let shown = format!("{w:?}");
    match e.write(ch, w).await.expect("engine error on write") {
        Ok(o) => panic!("{what}: {shown} on {ch:?} should be refused, was accepted: {o:?}"),
        Err(Rejection::LockNotHeld) if lock_not_held => {}
        Err(Rejection::Outdated(_)) if !lock_not_held => {}
        Err(r) => panic!(
            "{what}: {shown} refused with {r:?}, expected {}",
            if lock_not_held {
                "LockNotHeld (R143)"
            } else {
                "Outdated (−12014)"
            }
        ),
    }
    assert_eq!(
        get(e, ch).await,
        before,
        "{what}: a refused write changes nothing at all, major revision included (R142)"
    );
}

async fn outdated<E: MetadataStore + ?Sized>(e: &E, ch: &ChannelKey, w: MetadataWrite, what: &str) {
    refused(e, ch, w, false, what).await;
}

async fn lock_not_held<E: MetadataStore + ?Sized>(
    e: &E,
    ch: &ChannelKey,
    w: MetadataWrite,
    what: &str,
) {
    refused(e, ch, w, true, what).await;
}

fn freed(
    ch: &ChannelKey,
    lock: &str,
    ttl_s: u32,
    former: Option<&str>,
    next: Option<&str>,
) -> Freed {
    Freed {
        channel: ch.clone(),
        lock: lock.into(),
        ttl_s,
        former: former.map(Into::into),
        next: next.map(Into::into),
    }
}

/// `(name, owner, ttl)` of every lock of `ch`, as listed.
async fn locks<E: Locks + ?Sized>(e: &E, ch: &ChannelKey) -> Vec<(String, Option<String>, u32)> {
    e.list(ch)
        .await
        .expect("engine error on list")
        .into_iter()
        .map(|l| (l.name.to_string(), l.owner.map(|o| o.to_string()), l.ttl_s))
        .collect()
}

async fn owner<E: Locks + ?Sized>(e: &E, ch: &ChannelKey, lock: &str) -> Option<String> {
    locks(e, ch)
        .await
        .into_iter()
        .find(|(n, _, _)| n == lock)
        .unwrap_or_else(|| panic!("lock {lock:?} of {ch:?} not listed"))
        .1
}

async fn define<E: Locks + ?Sized>(e: &E, ch: &ChannelKey, lock: &str, ttl_s: u32) {
    e.set(ch, lock, ttl_s, 64)
        .await
        .expect("engine error on set")
        .unwrap_or_else(|r| panic!("set lock {lock:?} of {ch:?}: refused with {r:?}"));
}

async fn acquire<E: Locks + ?Sized>(
    e: &E,
    ch: &ChannelKey,
    lock: &str,
    user: &str,
    wait: bool,
) -> Result<Acquire, LockRejection> {
    e.acquire(ch, lock, user, wait)
        .await
        .expect("engine error on acquire")
}

async fn release<E: Locks + ?Sized>(
    e: &E,
    ch: &ChannelKey,
    lock: &str,
    user: &str,
) -> Result<Freed, LockRejection> {
    e.release(ch, lock, user)
        .await
        .expect("engine error on release")
}

async fn revoke<E: Locks + ?Sized>(
    e: &E,
    ch: &ChannelKey,
    lock: &str,
    owner: &str,
) -> Result<Freed, LockRejection> {
    e.revoke(ch, lock, owner)
        .await
        .expect("engine error on revoke")
}

async fn expire<E: Locks + ?Sized>(e: &E, now_ms: u64) -> Vec<Freed> {
    let mut v = e
        .expire_due(now_ms)
        .await
        .expect("engine error on expire_due");
    v.sort_by(|a, b| (&a.channel, &a.lock).cmp(&(&b.channel, &b.lock)));
    v
}

// ---------------------------------------------------------------------------------
// Metadata
// ---------------------------------------------------------------------------------

/// R135–R137: set creates and overwrites leaving other items untouched, update of a
/// missing key is refused and changes nothing, remove deletes the listed keys or, with
/// none listed, every item.
pub async fn set_update_remove<E: MetadataStore + ?Sized>(e: &E) {
    let ch = msg("meta-basic");
    assert_eq!(
        get(e, &ch).await,
        MetadataObject::default(),
        "R141: a never-written object reads as empty with major revision -1"
    );
    let o1 = accepted(e, &ch, set(&[("a", "1", -1), ("b", "2", -1)]), "R135 set").await;
    assert_eq!(values(&o1), [("a", "1"), ("b", "2")], "R135: set creates");
    let o2 = accepted(e, &ch, set(&[("b", "20", -1), ("c", "3", -1)]), "R135 set").await;
    assert_eq!(
        values(&o2),
        [("a", "1"), ("b", "20"), ("c", "3")],
        "R135: set overwrites b, creates c"
    );
    assert_eq!(
        item(&o2, "a"),
        item(&o1, "a"),
        "R135: an item not listed is unchanged, revision included"
    );

    outdated(
        e,
        &ch,
        update(&[("a", "10", -1), ("missing", "x", -1)]),
        "R136: update with a missing key",
    )
    .await;
    let o3 = accepted(e, &ch, update(&[("a", "10", -1)]), "R136 update").await;
    assert_eq!(
        values(&o3),
        [("a", "10"), ("b", "20"), ("c", "3")],
        "R136: update modifies the listed existing item only"
    );
    let empty = msg("meta-basic-never");
    outdated(
        e,
        &empty,
        update(&[("a", "1", -1)]),
        "R136: update of a never-written object",
    )
    .await;
    assert_eq!(
        get(e, &empty).await,
        MetadataObject::default(),
        "R136/R142: a refused update creates no object"
    );

    let o4 = accepted(e, &ch, remove(&[("c", -1)]), "R137 remove c").await;
    assert_eq!(
        values(&o4),
        [("a", "10"), ("b", "20")],
        "R137: remove with keys deletes only those"
    );
    assert_eq!(item(&o4, "a"), item(&o3, "a"), "R137: others unchanged");
    let o5 = accepted(e, &ch, remove(&[]), "R137 remove all").await;
    assert!(
        o5.items.is_empty(),
        "R137: remove without keys deletes every item: {o5:?}"
    );
    assert!(
        o5.major_revision > o4.major_revision,
        "R141: removing every item is a write and the major revision survives it: {o5:?}"
    );
}

/// R138, R142: item guards −1 (no check), 0 (create only, set), positive (must equal);
/// a refused write changes nothing even when some of its items would pass.
pub async fn item_revision_guards<E: MetadataStore + ?Sized>(e: &E) {
    let ch = msg("meta-item-guards");
    let o = accepted(
        e,
        &ch,
        set(&[("a", "1", 0)]),
        "R138: guard 0 on a missing key",
    )
    .await;
    let ra = rev(&o, "a");
    outdated(
        e,
        &ch,
        set(&[("a", "2", 0)]),
        "R138: guard 0 on an existing key",
    )
    .await;
    outdated(
        e,
        &ch,
        set(&[("a", "2", ra + 1)]),
        "R138: positive guard not equal to the item's revision",
    )
    .await;
    outdated(
        e,
        &ch,
        set(&[("b", "1", 5)]),
        "R138: positive guard on a missing key (it has no revision to equal)",
    )
    .await;
    let o = accepted(
        e,
        &ch,
        set(&[("a", "2", ra)]),
        "R138: positive guard equal to the item's revision",
    )
    .await;
    let ra2 = rev(&o, "a");
    assert!(ra2 > ra, "R141: the written item's revision grows: {o:?}");
    outdated(e, &ch, set(&[("a", "3", ra)]), "R138: stale positive guard").await;
    let o = accepted(e, &ch, set(&[("a", "3", NO_CHECK)]), "R138: guard -1").await;
    let ra3 = rev(&o, "a");

    // Update and remove honour positive guards too.
    outdated(
        e,
        &ch,
        update(&[("a", "4", ra2)]),
        "R138: update with a stale guard",
    )
    .await;
    let o = accepted(
        e,
        &ch,
        update(&[("a", "4", ra3)]),
        "R138: update, equal guard",
    )
    .await;
    let ra4 = rev(&o, "a");
    accepted(e, &ch, set(&[("b", "1", NO_CHECK)]), "R138 set b").await;

    // R142: all or nothing — b would pass, a fails.
    outdated(
        e,
        &ch,
        set(&[("c", "new", 0), ("b", "9", NO_CHECK), ("a", "5", ra3)]),
        "R142: one failing item guard refuses the whole set",
    )
    .await;
    outdated(
        e,
        &ch,
        update(&[("b", "9", NO_CHECK), ("a", "5", ra4 + 7)]),
        "R142: one failing item guard refuses the whole update",
    )
    .await;

    outdated(
        e,
        &ch,
        remove(&[("b", NO_CHECK), ("a", ra3)]),
        "R138/R142: remove with a stale guard removes nothing",
    )
    .await;
    let o = accepted(
        e,
        &ch,
        remove(&[("a", ra4)]),
        "R138: remove with an equal guard",
    )
    .await;
    assert_eq!(values(&o), [("b", "1")], "R137: only a removed");
}

/// R139, R142 and "an object exists while it has items": major revision guards −1, 0
/// (create only, set) and positive (must equal).
pub async fn major_revision_guards<E: MetadataStore + ?Sized>(e: &E) {
    let ch = msg("meta-major-guards");
    outdated(
        e,
        &ch,
        with_major(set(&[("a", "1", -1)]), 1),
        "R139: positive major guard on a never-written object",
    )
    .await;
    assert_eq!(
        get(e, &ch).await,
        MetadataObject::default(),
        "R142: a refused write creates nothing (major revision still -1)"
    );
    let o = accepted(
        e,
        &ch,
        with_major(set(&[("a", "1", -1)]), 0),
        "R139: major guard 0 on an absent object",
    )
    .await;
    let m1 = o.major_revision;
    outdated(
        e,
        &ch,
        with_major(set(&[("b", "1", -1)]), 0),
        "R139: major guard 0 on an existing object",
    )
    .await;
    outdated(
        e,
        &ch,
        with_major(set(&[("b", "1", -1)]), m1 + 1),
        "R139: major guard above the current major revision",
    )
    .await;
    let o = accepted(
        e,
        &ch,
        with_major(set(&[("b", "1", -1)]), m1),
        "R139: major guard equal to the current major revision",
    )
    .await;
    let m2 = o.major_revision;
    assert_eq!(m2, m1 + 1, "R141: one write, one more major revision");
    outdated(
        e,
        &ch,
        with_major(update(&[("a", "2", -1)]), m1),
        "R139: update with a stale major guard",
    )
    .await;
    let o = accepted(
        e,
        &ch,
        with_major(update(&[("a", "2", -1)]), m2),
        "R139: update with an equal major guard",
    )
    .await;
    let m3 = o.major_revision;
    outdated(
        e,
        &ch,
        with_major(remove(&[]), m2),
        "R139: remove with a stale major guard",
    )
    .await;
    outdated(
        e,
        &ch,
        with_major(set(&[("c", "1", 0)]), m2),
        "R139/R142: a failing major guard refuses items whose own guards pass",
    )
    .await;
    outdated(
        e,
        &ch,
        with_major(set(&[("c", "1", -1), ("a", "x", m1)]), m3),
        "R138/R142: a passing major guard does not save a failing item guard",
    )
    .await;
    let o = accepted(
        e,
        &ch,
        with_major(remove(&[]), m3),
        "R139: remove all with an equal major guard",
    )
    .await;
    let m4 = o.major_revision;
    assert!(o.items.is_empty());
    assert_eq!(m4, m3 + 1, "R141: remove all is one write");
    let o = accepted(
        e,
        &ch,
        with_major(set(&[("z", "1", -1)]), 0),
        "R139: an object without items does not exist, so major guard 0 passes again",
    )
    .await;
    assert_eq!(
        o.major_revision,
        m4 + 1,
        "R141: the major revision survives removing every item and keeps growing"
    );
}

/// R141: the first write gives a positive major revision, every later successful
/// write exactly one more; written items take the write's major revision, others keep
/// theirs; revisions never decrease.
pub async fn revisions_grow_by_one<E: MetadataStore + ?Sized>(e: &E) {
    let ch = msg("meta-revisions");
    assert_eq!(
        get(e, &ch).await,
        MetadataObject::default(),
        "R141: never written → empty, major revision -1"
    );
    let o = accepted(
        e,
        &ch,
        set(&[("a", "1", -1), ("b", "1", -1)]),
        "R141 first write",
    )
    .await;
    let m = o.major_revision;
    assert!(
        m > 0,
        "R138/R139/R141: the first write's major revision must be positive, so that a \
         positive guard can name it (0 means \"create only\"): {o:?}"
    );
    assert_eq!(
        (rev(&o, "a"), rev(&o, "b")),
        (m, m),
        "R141: written items get the write's major revision"
    );
    let o = accepted(e, &ch, set(&[("b", "2", -1)]), "R141 set b").await;
    assert_eq!(o.major_revision, m + 1, "R141: exactly one more");
    assert_eq!(rev(&o, "b"), m + 1, "R141: b written");
    assert_eq!(rev(&o, "a"), m, "R141: a not written keeps its revision");
    let o = accepted(e, &ch, update(&[("a", "2", -1)]), "R141 update a").await;
    assert_eq!(o.major_revision, m + 2);
    assert_eq!((rev(&o, "a"), rev(&o, "b")), (m + 2, m + 1));
    let o = accepted(e, &ch, remove(&[("b", -1)]), "R141 remove b").await;
    assert_eq!(o.major_revision, m + 3, "R141: a remove is a write");
    assert_eq!(rev(&o, "a"), m + 2);
    let o = accepted(e, &ch, remove(&[]), "R141 remove all").await;
    assert_eq!(o.major_revision, m + 4);
    assert_eq!(
        get(e, &ch).await.major_revision,
        m + 4,
        "R141: the major revision survives removing every item"
    );
    let o = accepted(e, &ch, set(&[("a", "3", -1)]), "R141 recreate a").await;
    assert_eq!(o.major_revision, m + 5);
    assert_eq!(
        rev(&o, "a"),
        m + 5,
        "R141: a recreated item's revision continues from the object, never decreasing"
    );
    let mut last = m + 5;
    for i in 0..20 {
        let w = if i % 3 == 2 {
            update(&[("a", "u", -1)])
        } else {
            set(&[(if i % 2 == 0 { "a" } else { "b" }, "v", -1)])
        };
        let o = accepted(e, &ch, w, "R141 loop").await;
        assert_eq!(
            o.major_revision,
            last + 1,
            "R141: write {i} adds exactly one"
        );
        last = o.major_revision;
        assert!(o.items.values().all(|it| it.revision <= last));
    }
}

/// R144: `updated` and `author` are recorded only by writes that carry them; items a
/// write does not list keep theirs.
pub async fn timestamp_and_author<E: MetadataStore + ?Sized>(e: &E) {
    let ch = msg("meta-stamps");
    let o = accepted(e, &ch, set(&[("a", "1", -1)]), "R144 plain set").await;
    assert_eq!(
        (item(&o, "a").updated, item(&o, "a").author.as_str()),
        (0, ""),
        "R144: without addTimeStamp/addUserId a new item has updated 0 and no author"
    );
    let mut w = set(&[("b", "1", -1)]);
    w.timestamp_ms = Some(1_700_000_000_123);
    w.author = Some("alice".into());
    let o = accepted(e, &ch, w, "R144 set with both").await;
    assert_eq!(
        (item(&o, "b").updated, item(&o, "b").author.as_str()),
        (1_700_000_000_123, "alice"),
        "R144: timestamp and author recorded"
    );
    assert_eq!(
        (item(&o, "a").updated, item(&o, "a").author.as_str()),
        (0, ""),
        "R144: an item the write does not list is not stamped"
    );
    let mut w = set(&[("c", "1", -1)]);
    w.timestamp_ms = Some(1_700_000_000_456);
    let o = accepted(e, &ch, w, "R144 set with a timestamp only").await;
    assert_eq!(
        (item(&o, "c").updated, item(&o, "c").author.as_str()),
        (1_700_000_000_456, ""),
        "R144: timestamp only"
    );
    let mut w = set(&[("d", "1", -1)]);
    w.author = Some("bob".into());
    let o = accepted(e, &ch, w, "R144 set with an author only").await;
    assert_eq!(
        (item(&o, "d").updated, item(&o, "d").author.as_str()),
        (0, "bob"),
        "R144: author only"
    );
    let mut w = update(&[("b", "2", -1), ("a", "2", -1)]);
    w.timestamp_ms = Some(1_700_000_000_789);
    w.author = Some("carol".into());
    let o = accepted(e, &ch, w, "R144 update with both").await;
    for k in ["a", "b"] {
        assert_eq!(
            (item(&o, k).updated, item(&o, k).author.as_str()),
            (1_700_000_000_789, "carol"),
            "R144: every written item of an update is stamped ({k})"
        );
    }
    assert_eq!(
        (item(&o, "c").updated, item(&o, "d").author.as_str()),
        (1_700_000_000_456, "bob"),
        "R144: items not written keep their stamps"
    );
}

/// Metadata objects of different keys are independent: MESSAGE vs STREAM channel of
/// the same name, a user's object (kind USER) of that name, another app.
pub async fn objects_are_independent<E: MetadataStore + ?Sized>(e: &E) {
    let m = key("app", ChannelKind::Message, "meta-same");
    let s = key("app", ChannelKind::Stream, "meta-same");
    let u = key("app", ChannelKind::User, "meta-same");
    let other = key("app-other", ChannelKind::Message, "meta-same");
    accepted(e, &m, set(&[("k", "message", -1)]), "isolation: message").await;
    accepted(e, &m, set(&[("k2", "message", -1)]), "isolation: message").await;
    for (ch, what) in [(&s, "STREAM"), (&u, "USER"), (&other, "other app")] {
        assert_eq!(
            get(e, ch).await,
            MetadataObject::default(),
            "a MESSAGE channel's metadata is not the {what} object of the same name"
        );
    }
    let os = accepted(
        e,
        &s,
        with_major(set(&[("k", "stream", 0)]), 0),
        "isolation: guard 0 on the STREAM object while the MESSAGE one exists",
    )
    .await;
    assert_eq!(values(&os), [("k", "stream")]);
    let ou = accepted(
        e,
        &u,
        with_major(set(&[("k", "user", 0)]), 0),
        "isolation: user object",
    )
    .await;
    assert_eq!(values(&ou), [("k", "user")]);
    accepted(
        e,
        &other,
        set(&[("k", "other", -1)]),
        "isolation: other app",
    )
    .await;
    let before_m = get(e, &m).await;
    accepted(e, &s, remove(&[]), "isolation: remove all of STREAM").await;
    assert_eq!(
        get(e, &m).await,
        before_m,
        "removing the STREAM object's items leaves the MESSAGE one alone"
    );
    assert_eq!(values(&get(e, &u).await), [("k", "user")]);
    assert_eq!(values(&get(e, &other).await), [("k", "other")]);
    assert_eq!(
        values(&get(e, &m).await),
        [("k", "message"), ("k2", "message")]
    );
}

/// R143: a write with a lock gate applies only if that user owns that lock of the same
/// channel at that moment; an undefined or free lock counts as not held.
pub async fn lock_gate<E: MetadataStore + Locks + ?Sized>(e: &E) {
    let ch = key("app", ChannelKind::Message, "meta-gated");
    let sch = key("app", ChannelKind::Stream, "meta-gated");
    let w = || set(&[("a", "1", -1)]);
    lock_not_held(
        e,
        &ch,
        gated(w(), "pen", "alice"),
        "R143: gate on an undefined lock",
    )
    .await;
    assert_eq!(get(e, &ch).await, MetadataObject::default());
    define(e, &ch, "pen", 10).await;
    lock_not_held(
        e,
        &ch,
        gated(w(), "pen", "alice"),
        "R143: gate on a free lock",
    )
    .await;
    assert_eq!(
        acquire(e, &ch, "pen", "alice", false).await,
        Ok(Acquire::Acquired { ttl_s: 10 })
    );
    let o = accepted(
        e,
        &ch,
        gated(w(), "pen", "alice"),
        "R143: gate by the owner",
    )
    .await;
    lock_not_held(
        e,
        &ch,
        gated(set(&[("a", "2", -1)]), "pen", "bob"),
        "R143: gate by a user that does not own the lock",
    )
    .await;
    lock_not_held(
        e,
        &ch,
        gated(remove(&[]), "pen", "bob"),
        "R143: a gated remove by a non-owner",
    )
    .await;
    lock_not_held(
        e,
        &ch,
        gated(w(), "other-pen", "alice"),
        "R143: gate naming a lock the writer does not own (undefined)",
    )
    .await;
    outdated(
        e,
        &ch,
        gated(set(&[("a", "3", 0)]), "pen", "alice"),
        "R138: a passing gate does not save a failing guard",
    )
    .await;
    // The lock of the same name in the STREAM channel of the same name is another lock.
    lock_not_held(
        e,
        &sch,
        gated(w(), "pen", "alice"),
        "R143: alice owns pen of the MESSAGE channel, not of the STREAM channel",
    )
    .await;
    define(e, &sch, "pen", 10).await;
    assert_eq!(
        acquire(e, &sch, "pen", "bob", false).await,
        Ok(Acquire::Acquired { ttl_s: 10 })
    );
    lock_not_held(
        e,
        &sch,
        gated(w(), "pen", "alice"),
        "R143: STREAM pen is bob's",
    )
    .await;
    accepted(
        e,
        &sch,
        gated(w(), "pen", "bob"),
        "R143: bob owns STREAM pen",
    )
    .await;
    // Ownership moves: bob waits for MESSAGE pen and gets it when alice releases.
    assert_eq!(
        acquire(e, &ch, "pen", "bob", true).await,
        Ok(Acquire::Queued)
    );
    lock_not_held(
        e,
        &ch,
        gated(set(&[("a", "4", -1)]), "pen", "bob"),
        "R143: a waiter does not own the lock",
    )
    .await;
    release(e, &ch, "pen", "alice")
        .await
        .expect("alice releases");
    lock_not_held(
        e,
        &ch,
        gated(set(&[("a", "4", -1)]), "pen", "alice"),
        "R143: after releasing, alice no longer passes the gate",
    )
    .await;
    let o2 = accepted(
        e,
        &ch,
        gated(update(&[("a", "4", rev(&o, "a"))]), "pen", "bob"),
        "R143: the waiter that got the lock passes the gate",
    )
    .await;
    assert_eq!(values(&o2), [("a", "4")]);
    e.remove(&ch, "pen")
        .await
        .expect("engine error on remove")
        .expect("remove pen");
    lock_not_held(
        e,
        &ch,
        gated(remove(&[]), "pen", "bob"),
        "R143: a removed lock is held by nobody",
    )
    .await;
}

// ---------------------------------------------------------------------------------
// Locks
// ---------------------------------------------------------------------------------

/// R156 and the `set` contract: set, already exists, `max_locks`, remove, and
/// NotDefined for every other operation on an undefined lock; list ordered by name.
pub async fn lock_definitions<E: Locks + ?Sized>(e: &E) {
    let ch = msg("locks-def");
    let sch = key("app", ChannelKind::Stream, "locks-def");
    assert!(locks(e, &ch).await.is_empty(), "no locks yet");
    let def = |name: &'static str, ttl: u32| e.set(&ch, name, ttl, 3);
    assert_eq!(def("b", 10).await.expect("set"), Ok(()));
    assert_eq!(def("a", 300).await.expect("set"), Ok(()));
    assert_eq!(def("c", 60).await.expect("set"), Ok(()));
    assert_eq!(
        def("a", 20).await.expect("set"),
        Err(LockRejection::AlreadyExists),
        "R156: set of an existing lock"
    );
    assert_eq!(
        def("d", 10).await.expect("set"),
        Err(LockRejection::TooMany(3)),
        "set beyond max_locks"
    );
    assert_eq!(
        locks(e, &ch).await,
        [
            ("a".to_string(), None, 300),
            ("b".to_string(), None, 10),
            ("c".to_string(), None, 60),
        ],
        "list: ordered by name, free, with each ttl; a refused set changed nothing"
    );
    assert_eq!(
        e.set(&sch, "a", 15, 3).await.expect("set"),
        Ok(()),
        "the STREAM channel of the same name has its own locks and its own count"
    );
    assert_eq!(locks(e, &sch).await, [("a".to_string(), None, 15)]);

    assert_eq!(
        e.remove(&ch, "b").await.expect("remove"),
        Ok(freed(&ch, "b", 10, None, None)),
        "remove of a free lock"
    );
    assert_eq!(
        e.remove(&ch, "b").await.expect("remove"),
        Err(LockRejection::NotDefined),
        "R156: remove of an undefined lock"
    );
    assert_eq!(
        def("d", 30).await.expect("set"),
        Ok(()),
        "a removed lock frees its place under max_locks"
    );
    assert_eq!(
        locks(e, &ch).await,
        [
            ("a".to_string(), None, 300),
            ("c".to_string(), None, 60),
            ("d".to_string(), None, 30),
        ]
    );
    assert_eq!(locks(e, &sch).await.len(), 1, "STREAM locks untouched");

    for undefined in ["b", "zz"] {
        assert_eq!(
            acquire(e, &ch, undefined, "u", false).await,
            Err(LockRejection::NotDefined),
            "R156: acquire of an undefined lock"
        );
        assert_eq!(
            acquire(e, &ch, undefined, "u", true).await,
            Err(LockRejection::NotDefined),
            "R156: acquire with wait of an undefined lock"
        );
        assert_eq!(
            release(e, &ch, undefined, "u").await,
            Err(LockRejection::NotDefined),
            "R156: release of an undefined lock"
        );
        assert_eq!(
            revoke(e, &ch, undefined, "u").await,
            Err(LockRejection::NotDefined),
            "R156: revoke of an undefined lock"
        );
        assert!(
            !e.cancel_wait(&ch, undefined, "u").await.expect("cancel"),
            "cancel_wait on an undefined lock"
        );
    }
    assert_eq!(
        acquire(e, &msg("locks-def-none"), "a", "u", false).await,
        Err(LockRejection::NotDefined),
        "R156: a lock of another channel is not defined here"
    );
}

/// R151, R154, R155: acquire, already owner, held by another, release and revoke by or
/// of a non-owner.
pub async fn acquire_release_revoke<E: Locks + ?Sized>(e: &E) {
    let ch = msg("locks-own");
    define(e, &ch, "l", 42).await;
    assert_eq!(
        acquire(e, &ch, "l", "alice", false).await,
        Ok(Acquire::Acquired { ttl_s: 42 }),
        "R151: acquire of a free lock"
    );
    assert_eq!(owner(e, &ch, "l").await.as_deref(), Some("alice"));
    assert_eq!(
        acquire(e, &ch, "l", "alice", false).await,
        Ok(Acquire::AlreadyOwner)
    );
    assert_eq!(
        acquire(e, &ch, "l", "alice", true).await,
        Ok(Acquire::AlreadyOwner),
        "the owner never queues behind itself"
    );
    assert_eq!(
        acquire(e, &ch, "l", "bob", false).await,
        Err(LockRejection::HeldBy("alice".into())),
        "R151: held by another, no wait"
    );
    assert_eq!(
        release(e, &ch, "l", "bob").await,
        Err(LockRejection::NotOwner),
        "R154: release by a non-owner"
    );
    assert_eq!(
        revoke(e, &ch, "l", "bob").await,
        Err(LockRejection::NotOwner),
        "R155: revoke naming the wrong owner"
    );
    assert_eq!(
        owner(e, &ch, "l").await.as_deref(),
        Some("alice"),
        "refused operations changed nothing"
    );
    assert_eq!(
        release(e, &ch, "l", "alice").await,
        Ok(freed(&ch, "l", 42, Some("alice"), None)),
        "release by the owner; bob's refused acquire did not queue him"
    );
    assert_eq!(owner(e, &ch, "l").await, None);
    assert_eq!(
        release(e, &ch, "l", "alice").await,
        Err(LockRejection::NotOwner),
        "R154: release of a free lock"
    );
    assert_eq!(
        revoke(e, &ch, "l", "alice").await,
        Err(LockRejection::NotOwner),
        "R155: revoke of a free lock"
    );
    assert_eq!(
        acquire(e, &ch, "l", "bob", false).await,
        Ok(Acquire::Acquired { ttl_s: 42 })
    );
    assert_eq!(
        revoke(e, &ch, "l", "bob").await,
        Ok(freed(&ch, "l", 42, Some("bob"), None)),
        "R155: revoke naming the owner"
    );
    assert_eq!(locks(e, &ch).await, [("l".to_string(), None, 42)]);
}

/// R152: waiters are served in arrival order, each once; release and revoke hand over
/// in the same step; cancel_wait takes a waiter out; remove drops the line.
pub async fn waiters_in_arrival_order<E: Locks + ?Sized>(e: &E) {
    let ch = msg("locks-line");
    define(e, &ch, "l", 10).await;
    assert_eq!(
        acquire(e, &ch, "l", "alice", true).await,
        Ok(Acquire::Acquired { ttl_s: 10 }),
        "acquire with wait of a free lock takes it"
    );
    for u in ["bob", "carol", "dave", "bob", "erin"] {
        assert_eq!(
            acquire(e, &ch, "l", u, true).await,
            Ok(Acquire::Queued),
            "R152: {u} waits"
        );
    }
    assert_eq!(
        acquire(e, &ch, "l", "frank", false).await,
        Err(LockRejection::HeldBy("alice".into())),
        "without wait nobody queues"
    );
    assert!(
        e.cancel_wait(&ch, "l", "dave").await.expect("cancel"),
        "dave was waiting"
    );
    assert!(
        !e.cancel_wait(&ch, "l", "dave").await.expect("cancel"),
        "dave is no longer waiting"
    );
    assert!(
        !e.cancel_wait(&ch, "l", "alice").await.expect("cancel"),
        "the owner is not waiting"
    );
    assert_eq!(
        release(e, &ch, "l", "alice").await,
        Ok(freed(&ch, "l", 10, Some("alice"), Some("bob"))),
        "R152: release hands over to the first waiter"
    );
    assert_eq!(owner(e, &ch, "l").await.as_deref(), Some("bob"));
    assert_eq!(
        acquire(e, &ch, "l", "bob", false).await,
        Ok(Acquire::AlreadyOwner)
    );
    assert_eq!(
        revoke(e, &ch, "l", "bob").await,
        Ok(freed(&ch, "l", 10, Some("bob"), Some("carol"))),
        "R152: revoke hands over to the next waiter"
    );
    assert_eq!(
        release(e, &ch, "l", "carol").await,
        Ok(freed(&ch, "l", 10, Some("carol"), Some("erin"))),
        "R152: dave cancelled and bob queued once, so erin is next"
    );
    assert_eq!(
        release(e, &ch, "l", "erin").await,
        Ok(freed(&ch, "l", 10, Some("erin"), None)),
        "the line is empty"
    );
    assert_eq!(owner(e, &ch, "l").await, None);

    // Removing a lock drops its owner and line; the caller fails the waits.
    define(e, &ch, "m", 20).await;
    acquire(e, &ch, "m", "alice", false)
        .await
        .expect("acquire m");
    assert_eq!(acquire(e, &ch, "m", "bob", true).await, Ok(Acquire::Queued));
    assert_eq!(
        e.remove(&ch, "m").await.expect("remove"),
        Ok(freed(&ch, "m", 20, Some("alice"), None)),
        "remove reports the owner and hands over to nobody"
    );
    define(e, &ch, "m", 20).await;
    assert_eq!(
        acquire(e, &ch, "m", "carol", false).await,
        Ok(Acquire::Acquired { ttl_s: 20 }),
        "a redefined lock is free"
    );
    assert_eq!(
        release(e, &ch, "m", "carol").await,
        Ok(freed(&ch, "m", 20, Some("carol"), None)),
        "a removed lock's waiters do not come back with a new definition"
    );
}

/// R153: a lost owner keeps its locks until ttl after the loss; at the deadline
/// `expire_due` frees them and hands over to the waiter. Only that app's user is
/// affected, and a new owner does not inherit the deadline.
pub async fn owner_loss_expiry<E: Locks + ?Sized>(e: &E) {
    let ch1 = key("exp", ChannelKind::Message, "locks-ttl");
    let ch2 = key("exp", ChannelKind::Stream, "locks-ttl");
    let other = key("exp-other", ChannelKind::Message, "locks-ttl");
    define(e, &ch1, "l1", 10).await;
    define(e, &ch1, "l4", 10).await;
    define(e, &ch2, "l2", 30).await;
    define(e, &other, "l3", 10).await;
    for (ch, l, u, ttl_s) in [
        (&ch1, "l1", "alice", 10),
        (&ch2, "l2", "alice", 30),
        (&other, "l3", "alice", 10),
        (&ch1, "l4", "bob", 10),
    ] {
        assert_eq!(
            acquire(e, ch, l, u, false).await,
            Ok(Acquire::Acquired { ttl_s })
        );
    }
    assert_eq!(
        acquire(e, &ch1, "l1", "carol", true).await,
        Ok(Acquire::Queued)
    );
    let t = 1_000_000u64;
    assert!(
        expire(e, t).await.is_empty(),
        "no owner lost yet, nothing expires"
    );
    e.owner_lost("exp", "alice", t).await.expect("owner_lost");
    assert!(
        expire(e, t + 9_999).await.is_empty(),
        "R153: before the deadline (loss + ttl) nothing is freed"
    );
    assert_eq!(owner(e, &ch1, "l1").await.as_deref(), Some("alice"));
    assert_eq!(
        expire(e, t + 10_000).await,
        [freed(&ch1, "l1", 10, Some("alice"), Some("carol"))],
        "R153: at the deadline the lock is freed and handed to the waiter"
    );
    assert_eq!(owner(e, &ch1, "l1").await.as_deref(), Some("carol"));
    assert!(
        expire(e, t + 10_000).await.is_empty(),
        "a lock expires once"
    );
    assert!(
        expire(e, t + 29_999).await.is_empty(),
        "R153: l2's ttl is 30 s; carol, the new owner of l1, did not inherit a deadline"
    );
    assert_eq!(
        expire(e, t + 45_000).await,
        [freed(&ch2, "l2", 30, Some("alice"), None)],
        "R153: after the deadline the lock is freed; nobody waits"
    );
    assert!(
        expire(e, t + 1_000_000_000).await.is_empty(),
        "R153: alice of another app and bob were not lost"
    );
    assert_eq!(owner(e, &other, "l3").await.as_deref(), Some("alice"));
    assert_eq!(owner(e, &ch1, "l4").await.as_deref(), Some("bob"));
    assert_eq!(owner(e, &ch1, "l1").await.as_deref(), Some("carol"));
    assert_eq!(owner(e, &ch2, "l2").await, None);
}

/// R153: `owner_back` clears the deadlines; a later loss counts from its own time; a
/// deadline does not outlive the ownership it was given to.
pub async fn owner_back_and_deadlines<E: Locks + ?Sized>(e: &E) {
    let ch = key("back", ChannelKind::Message, "locks-back");
    define(e, &ch, "l", 10).await;
    define(e, &ch, "n", 10).await;
    acquire(e, &ch, "l", "alice", false).await.expect("acquire");
    assert_eq!(acquire(e, &ch, "l", "bob", true).await, Ok(Acquire::Queued));
    let t = 5_000_000u64;
    e.owner_lost("back", "alice", t).await.expect("owner_lost");
    e.owner_back("back", "alice").await.expect("owner_back");
    assert!(
        expire(e, t + 1_000_000).await.is_empty(),
        "R153: the owner came back, the lock stays"
    );
    assert_eq!(owner(e, &ch, "l").await.as_deref(), Some("alice"));

    let t2 = t + 2_000_000;
    e.owner_lost("back", "alice", t2).await.expect("owner_lost");
    assert!(
        expire(e, t2 + 9_999).await.is_empty(),
        "R153: a new loss counts from its own time"
    );
    assert_eq!(
        expire(e, t2 + 10_000).await,
        [freed(&ch, "l", 10, Some("alice"), Some("bob"))],
        "R153: expired at the new deadline, handed to the waiter"
    );

    // A deadline belongs to the lost owner's ownership: once the lock changes hands it
    // must not free the new owner's lock.
    acquire(e, &ch, "n", "carol", false)
        .await
        .expect("acquire n");
    let t3 = t2 + 1_000_000;
    e.owner_lost("back", "carol", t3).await.expect("owner_lost");
    assert_eq!(
        release(e, &ch, "n", "carol").await,
        Ok(freed(&ch, "n", 10, Some("carol"), None))
    );
    acquire(e, &ch, "n", "dave", false)
        .await
        .expect("acquire n");
    assert!(
        expire(e, t3 + 1_000_000).await.is_empty(),
        "R153: dave was not lost; carol's deadline left with her ownership"
    );
    assert_eq!(owner(e, &ch, "n").await.as_deref(), Some("dave"));
    e.owner_lost("back", "nobody", t3)
        .await
        .expect("owner_lost of a user without locks");
    e.owner_back("back", "nobody")
        .await
        .expect("owner_back of a user without locks");
}

/// The step-by-step forms: `owned_by` lists a user's locks in one app; `due` lists the
/// locks whose deadline passed; `expire` frees one of them only if the owner still holds
/// it and its deadline passed, handing over to the next waiter (R153).
pub async fn owned_due_and_expire<E: Locks + ?Sized>(e: &E) {
    let ch = key("ode", ChannelKind::Message, "locks");
    let other = key("ode-other", ChannelKind::Message, "locks");
    for (c, l) in [(&ch, "a"), (&ch, "b"), (&other, "c")] {
        define(e, c, l, 10).await;
    }
    for (c, l, u, wait) in [
        (&ch, "a", "alice", false),
        (&ch, "a", "bob", true),
        (&ch, "b", "alice", false),
        (&other, "c", "alice", false),
    ] {
        acquire(e, c, l, u, wait).await.expect("acquire");
    }
    let mut owned = e.owned_by("ode", "alice").await.expect("owned_by");
    owned.sort();
    let names: Vec<&str> = owned.iter().map(|(_, l)| &**l).collect();
    assert_eq!(
        names,
        ["a", "b"],
        "owned_by lists the user's locks of that app only"
    );
    assert!(owned.iter().all(|(c, _)| *c == ch));
    assert!(e.owned_by("ode", "bob").await.expect("owned_by").is_empty());

    let t = 50_000_000u64;
    e.owner_lost("ode", "alice", t).await.expect("owner_lost");
    assert!(
        e.due(t + 9_999)
            .await
            .expect("due")
            .iter()
            .all(|(c, _, _)| c.app.as_ref() != "ode"),
        "nothing is due before the ttl (R153)"
    );
    let mut due: Vec<_> = e
        .due(t + 10_000)
        .await
        .expect("due")
        .into_iter()
        .filter(|(c, _, _)| c.app.as_ref() == "ode")
        .collect();
    due.sort();
    assert_eq!(
        due.len(),
        2,
        "both of alice's locks in that app are due: {due:?}"
    );
    assert!(
        e.expire(&ch, "a", "bob", t + 10_000)
            .await
            .expect("expire")
            .is_none(),
        "expire names the owner it expires"
    );
    assert!(
        e.expire(&ch, "a", "alice", t + 9_999)
            .await
            .expect("expire")
            .is_none(),
        "not before the deadline"
    );
    let f = e
        .expire(&ch, "a", "alice", t + 10_000)
        .await
        .expect("expire")
        .expect("freed");
    assert_eq!(
        f,
        freed(&ch, "a", 10, Some("alice"), Some("bob")),
        "handed to the waiter"
    );
    assert_eq!(owner(e, &ch, "a").await.as_deref(), Some("bob"));
    assert!(
        e.expire(&ch, "a", "alice", t + 10_000)
            .await
            .expect("expire")
            .is_none(),
        "only once"
    );
    let due_after = e.due(t + 10_000).await.expect("due");
    assert!(
        !due_after.iter().any(|(c, l, _)| *c == ch && &**l == "a"),
        "the new owner does not inherit the deadline"
    );
}

/// `release_all` frees every lock the user owns in that app (handing over to waiters)
/// and takes it out of every line of that app, and nothing of another app.
pub async fn release_all<E: Locks + ?Sized>(e: &E) {
    let ch1 = key("ra", ChannelKind::Message, "locks-all");
    let ch2 = key("ra", ChannelKind::Stream, "locks-all");
    let other = key("ra-other", ChannelKind::Message, "locks-all");
    for (ch, l) in [
        (&ch1, "l1"),
        (&ch1, "l2"),
        (&ch2, "l3"),
        (&ch2, "l4"),
        (&other, "l5"),
        (&other, "l6"),
    ] {
        define(e, ch, l, 10).await;
    }
    for (ch, l, u, wait, want) in [
        (&ch1, "l1", "alice", false, Acquire::Acquired { ttl_s: 10 }),
        (&ch1, "l1", "carol", true, Acquire::Queued),
        (&ch1, "l2", "bob", false, Acquire::Acquired { ttl_s: 10 }),
        (&ch1, "l2", "alice", true, Acquire::Queued),
        (&ch1, "l2", "dave", true, Acquire::Queued),
        (&ch2, "l3", "alice", false, Acquire::Acquired { ttl_s: 10 }),
        (
            &other,
            "l5",
            "alice",
            false,
            Acquire::Acquired { ttl_s: 10 },
        ),
        (&other, "l6", "bob", false, Acquire::Acquired { ttl_s: 10 }),
        (&other, "l6", "alice", true, Acquire::Queued),
    ] {
        assert_eq!(acquire(e, ch, l, u, wait).await, Ok(want), "{u} on {l}");
    }
    let t = 9_000_000u64;
    e.owner_lost("ra", "alice", t).await.expect("owner_lost");
    let mut gone = e.release_all("ra", "alice").await.expect("release_all");
    gone.sort_by(|a, b| (&a.channel, &a.lock).cmp(&(&b.channel, &b.lock)));
    assert_eq!(
        gone,
        [
            freed(&ch1, "l1", 10, Some("alice"), Some("carol")),
            freed(&ch2, "l3", 10, Some("alice"), None),
        ],
        "release_all frees every lock of the user in that app, handing over to waiters"
    );
    assert_eq!(owner(e, &ch1, "l1").await.as_deref(), Some("carol"));
    assert_eq!(owner(e, &ch2, "l3").await, None);
    assert_eq!(
        release(e, &ch1, "l2", "bob").await,
        Ok(freed(&ch1, "l2", 10, Some("bob"), Some("dave"))),
        "R152: release_all took alice out of l2's line"
    );
    assert_eq!(
        owner(e, &other, "l5").await.as_deref(),
        Some("alice"),
        "another app's alice keeps her lock"
    );
    assert_eq!(
        release(e, &other, "l6", "bob").await,
        Ok(freed(&other, "l6", 10, Some("bob"), Some("alice"))),
        "another app's alice is still in line"
    );
    assert!(
        expire(e, t + 1_000_000).await.is_empty(),
        "R153: no deadline survives release_all (carol owns l1 now)"
    );
    assert!(
        e.release_all("ra", "alice")
            .await
            .expect("release_all")
            .is_empty(),
        "nothing left to free"
    );
}

// ---------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------

/// R141/R142 under contention: tasks × increments compare-and-set increments of one
/// item, each retried on `Outdated`, end at exactly tasks × increments; every
/// successful write got its own major revision.
pub async fn concurrent_cas_increments<E: MetadataStore>(e: &Arc<E>) {
    const TASKS: usize = 8;
    const INCREMENTS: usize = 25;
    let ch = msg("meta-counter");
    let start = accepted(&**e, &ch, set(&[("n", "0", 0)]), "counter").await;
    let m0 = start.major_revision;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let e = e.clone();
        let ch = ch.clone();
        tasks.spawn(async move {
            let mut majors = Vec::new();
            for _ in 0..INCREMENTS {
                loop {
                    let o = e.get(&ch).await.expect("engine error on get");
                    let it = item(&o, "n");
                    let n: usize = it.value.parse().expect("a number");
                    let w = set(&[("n", &(n + 1).to_string(), it.revision)]);
                    match e.write(&ch, w).await.expect("engine error on write") {
                        Ok(o) => {
                            majors.push(o.major_revision);
                            break;
                        }
                        Err(Rejection::Outdated(_)) => tokio::task::yield_now().await,
                        Err(r) => panic!("unexpected rejection {r:?}"),
                    }
                }
            }
            majors
        });
    }
    let mut majors = BTreeSet::new();
    let mut count = 0;
    while let Some(r) = tasks.join_next().await {
        for m in r.expect("task") {
            count += 1;
            assert!(
                majors.insert(m),
                "R141: two successful writes returned the same major revision {m}"
            );
        }
    }
    assert_eq!(count, TASKS * INCREMENTS);
    let o = get(&**e, &ch).await;
    assert_eq!(
        item(&o, "n").value,
        (TASKS * INCREMENTS).to_string(),
        "R138/R142: compare-and-set increments lost no update"
    );
    let last = m0 + (TASKS * INCREMENTS) as i64;
    assert_eq!(o.major_revision, last, "R141: one major revision per write");
    assert_eq!(rev(&o, "n"), last);
    assert_eq!(
        majors.into_iter().collect::<Vec<_>>(),
        ((m0 + 1)..=last).collect::<Vec<_>>(),
        "R141: the successful writes got consecutive major revisions"
    );
}

/// R139 and R151/R152 under contention: of many concurrent creates with major guard 0
/// exactly one succeeds; of many concurrent acquires exactly one gets the lock, and of
/// many concurrent waiters each is served exactly once.
pub async fn concurrent_create_and_acquire<E: MetadataStore + Locks>(e: &Arc<E>) {
    const N: usize = 16;
    let ch = msg("race");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..N {
        let e = e.clone();
        let ch = ch.clone();
        tasks.spawn(async move {
            let w = with_major(set(&[("k", &i.to_string(), -1)]), 0);
            e.write(&ch, w).await.expect("engine error on write")
        });
    }
    let mut created = 0;
    while let Some(r) = tasks.join_next().await {
        match r.expect("task") {
            Ok(_) => created += 1,
            Err(Rejection::Outdated(_)) => {}
            Err(r) => panic!("unexpected rejection {r:?}"),
        }
    }
    assert_eq!(created, 1, "R139: exactly one create-only write succeeds");

    define(&**e, &ch, "l", 10).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..N {
        let e = e.clone();
        let ch = ch.clone();
        tasks.spawn(async move {
            let u = format!("u{i}");
            let r = e
                .acquire(&ch, "l", &u, false)
                .await
                .expect("engine error on acquire");
            (u, r)
        });
    }
    let mut winners = Vec::new();
    let mut refused = Vec::new();
    while let Some(r) = tasks.join_next().await {
        match r.expect("task") {
            (u, Ok(Acquire::Acquired { .. })) => winners.push(u),
            (_, Err(LockRejection::HeldBy(o))) => refused.push(o.to_string()),
            (u, other) => panic!("unexpected acquire result for {u}: {other:?}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "R151: exactly one concurrent acquire wins"
    );
    assert!(
        refused.iter().all(|o| *o == winners[0]),
        "R151: the others are told the winner owns it"
    );

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..N {
        let e = e.clone();
        let ch = ch.clone();
        tasks.spawn(async move {
            e.acquire(&ch, "l", &format!("w{i}"), true)
                .await
                .expect("engine error on acquire")
        });
    }
    while let Some(r) = tasks.join_next().await {
        assert_eq!(r.expect("task"), Ok(Acquire::Queued), "R152: waiters queue");
    }
    let mut current = winners[0].clone();
    let mut served = BTreeSet::new();
    loop {
        let f = release(&**e, &ch, "l", &current)
            .await
            .unwrap_or_else(|r| panic!("release by {current}: {r:?}"));
        match f.next {
            Some(next) => {
                assert!(served.insert(next.to_string()), "R152: {next} served twice");
                current = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!(
        served,
        (0..N).map(|i| format!("w{i}")).collect::<BTreeSet<_>>(),
        "R152: every concurrent waiter is served exactly once"
    );
}
