//! The conformance kit for the per-app budgets ([`AppBudgets`], issue 20): every engine
//! that keeps recovery logs, idempotency keys, metadata objects or lock definitions
//! keeps each app within its budget, with the same [`EngineError::OverBudget`] refusals,
//! and one app's use never counts against another's. Each check installs its budgets
//! on a fresh engine from the factory (an engine takes its budgets once).
//!
//! Call [`run_broker_budgets_suite`] with a factory of brokers and
//! [`run_storage_budgets_suite`] with one of engines implementing both
//! [`MetadataStore`] and [`Locks`].

use crate::conformance::publication;
use crate::{
    AppBudgets, Broker, ChannelKey, ChannelKind, EngineError, EventKind, Locks, MessageKind,
    MetadataStore, MetadataWrite, NO_CHECK, PublishOptions, StreamPosition, WriteItem, WriteOp,
};
use std::sync::Arc;

/// The app every check limits; [`FREE_APP`] has no budget.
pub const LIMITED_APP: &str = "budgeted";
/// An app without budgets, served beside [`LIMITED_APP`].
pub const FREE_APP: &str = "free";

fn install(budgets: AppBudgets) -> crate::Budgets {
    Arc::new(move |app: &str| {
        if app == LIMITED_APP {
            budgets
        } else {
            AppBudgets::default()
        }
    })
}

fn msg(app: &str, name: &str) -> ChannelKey {
    ChannelKey::new(app, ChannelKind::Message, name)
}

fn over<T: std::fmt::Debug>(r: Result<T, EngineError>, names: &str, what: &str) {
    match r {
        Err(EngineError::OverBudget(reason)) => {
            assert!(
                reason.contains(names),
                "{what}: the reason names {names}: {reason}"
            )
        }
        other => panic!("{what}: expected OverBudget, got {other:?}"),
    }
}

/// Runs every broker budget check against fresh brokers from `factory`.
pub async fn run_broker_budgets_suite<F>(factory: F)
where
    F: Fn() -> Arc<dyn Broker>,
{
    recovery_log_bytes(&*factory()).await;
    events_past_the_log_budget_go_unlogged(&*factory()).await;
    idempotency_keys(&*factory()).await;
}

/// Runs every metadata and lock budget check against fresh engines from `factory`.
pub async fn run_storage_budgets_suite<E, F>(factory: F)
where
    E: MetadataStore + Locks,
    F: Fn() -> Arc<E>,
{
    metadata_object_bytes(&*factory()).await;
    lock_definitions(&*factory()).await;
}

/// A publication counting 61 bytes (publisher "p", 60 bytes of payload).
fn big() -> crate::Publication {
    publication("p", &"x".repeat(60))
}

/// The app's recovery logs together hold at most `recovery_log_bytes` (publisher,
/// custom type, topic and payload): a channel over it drops its own oldest
/// publications first; one whose publication does not fit even so is refused.
pub async fn recovery_log_bytes<B: Broker + ?Sized>(b: &B) {
    b.set_budgets(install(AppBudgets {
        recovery_log_bytes: 100,
        ..Default::default()
    }));
    let none = PublishOptions::default();
    let one = msg(LIMITED_APP, "log-one");
    let first = b.publish(&one, big(), &none).await.expect("fits").position;
    over(
        b.publish(&msg(LIMITED_APP, "log-two"), big(), &none).await,
        "max_recovery_log_bytes",
        "a second channel's publication does not fit beside the first's",
    );
    // The channel holding the bytes drops its own oldest to take the next one.
    let second = b
        .publish(&one, big(), &none)
        .await
        .expect("drops its own oldest")
        .position;
    assert_eq!(second.offset, first.offset + 1);
    let since = StreamPosition {
        epoch: first.epoch,
        offset: first.offset - 1,
    };
    let r = b.recover(&one, since, 10).await.expect("recover");
    assert!(!r.complete, "the dropped publication is a reported gap");
    let offsets: Vec<u64> = r.publications.iter().map(|p| p.position.offset).collect();
    assert_eq!(offsets, vec![second.offset], "only the newest is logged");
    // Another app has its own budget (none).
    for i in 0..3 {
        b.publish(&msg(FREE_APP, &format!("log-{i}")), big(), &none)
            .await
            .expect("another app is not limited");
    }
}

/// Channel events past the log budget are delivered (they take an offset) but not
/// logged, so a recovery across them reports the gap.
pub async fn events_past_the_log_budget_go_unlogged<B: Broker + ?Sized>(b: &B) {
    b.set_budgets(install(AppBudgets {
        recovery_log_bytes: 100,
        ..Default::default()
    }));
    let none = PublishOptions::default();
    b.publish(&msg(LIMITED_APP, "ev-full"), big(), &none)
        .await
        .expect("fits");
    let ch = msg(LIMITED_APP, "ev-events");
    let before = b.position(&ch).await.expect("position");
    let mut event = big();
    event.kind = MessageKind::Event(EventKind::Lock);
    let at = b
        .publish(&ch, event, &none)
        .await
        .expect("an event past the budget is still published")
        .position;
    assert_eq!(at.offset, before.offset + 1, "it takes the next offset");
    let r = b.recover(&ch, before, 10).await.expect("recover");
    assert!(!r.complete, "the unlogged event is a reported gap");
    assert!(r.publications.is_empty(), "{:?}", r.publications);
    assert_eq!(r.position, at);
}

/// The app remembers at most `idempotency_keys` keys at once: past it a publish with a
/// new key is refused, a retry of a remembered key is still a duplicate, and a publish
/// without a key goes.
pub async fn idempotency_keys<B: Broker + ?Sized>(b: &B) {
    b.set_budgets(install(AppBudgets {
        idempotency_keys: 1,
        ..Default::default()
    }));
    let keyed = |k: &str| PublishOptions {
        idempotency_key: Some(k.into()),
        ..Default::default()
    };
    let a = msg(LIMITED_APP, "keys-a");
    let first = b
        .publish(&a, publication("p", "1"), &keyed("k1"))
        .await
        .expect("first key");
    over(
        b.publish(
            &msg(LIMITED_APP, "keys-b"),
            publication("p", "2"),
            &keyed("k2"),
        )
        .await,
        "max_idempotency_keys",
        "a second key in the app",
    );
    let again = b
        .publish(&a, publication("p", "1"), &keyed("k1"))
        .await
        .expect("a retry of a remembered key");
    assert!(again.duplicate, "a retry is a duplicate, not refused");
    assert_eq!(again.position, first.position);
    b.publish(&a, publication("p", "3"), &PublishOptions::default())
        .await
        .expect("a publish without a key still goes");
    for i in 0..3 {
        b.publish(
            &msg(FREE_APP, "keys"),
            publication("p", "x"),
            &keyed(&format!("f{i}")),
        )
        .await
        .expect("another app is not limited");
    }
}

fn set(items: &[(&str, &str)]) -> MetadataWrite {
    MetadataWrite {
        op: WriteOp::Set,
        items: items
            .iter()
            .map(|(k, v)| WriteItem {
                key: (*k).into(),
                value: (*v).into(),
                revision: NO_CHECK,
            })
            .collect(),
        major_revision: NO_CHECK,
        lock_gate: None,
        timestamp_ms: None,
        author: None,
    }
}

/// One object holds at most `metadata_object_bytes` of keys and values: a write that
/// would grow it past the budget is refused and changes nothing; one that shrinks it
/// goes; a key written twice in one call counts once.
pub async fn metadata_object_bytes<E: MetadataStore + ?Sized>(e: &E) {
    e.set_budgets(install(AppBudgets {
        metadata_object_bytes: 20,
        ..Default::default()
    }));
    let obj = ChannelKey::new(LIMITED_APP, ChannelKind::UserMetadata, "meta-user");
    // 1 + 10 bytes; the key twice counts once.
    e.write(&obj, set(&[("k", "0123456789"), ("k", "0123456789")]))
        .await
        .expect("write")
        .expect("fits");
    over(
        e.write(&obj, set(&[("key2", "0123456789")])).await,
        "max_metadata_object_bytes",
        "a write growing the object to 25 bytes",
    );
    let now = e.get(&obj).await.expect("get");
    assert_eq!(now.items.len(), 1, "the refused write changed nothing");
    e.write(&obj, set(&[("k", "0")]))
        .await
        .expect("write")
        .expect("a write that shrinks the object goes");
    e.write(&obj, set(&[("key2", "0123456789")]))
        .await
        .expect("write")
        .expect("now 2 + 14 bytes fit");
    let free = ChannelKey::new(FREE_APP, ChannelKind::UserMetadata, "meta-user");
    e.write(&free, set(&[("k", &"v".repeat(100))]))
        .await
        .expect("write")
        .expect("another app is not limited");
}

/// An app defines at most `lock_definitions` locks across its channels: past it `set`
/// is refused; a removed lock makes room again.
pub async fn lock_definitions<E: Locks + ?Sized>(e: &E) {
    e.set_budgets(install(AppBudgets {
        lock_definitions: 2,
        ..Default::default()
    }));
    let (c1, c2) = (msg(LIMITED_APP, "locks-1"), msg(LIMITED_APP, "locks-2"));
    e.set(&c1, "a", 10, 32).await.expect("set").expect("first");
    e.set(&c2, "b", 10, 32).await.expect("set").expect("second");
    over(
        e.set(&c2, "c", 10, 32).await,
        "max_lock_definitions",
        "a third lock in the app",
    );
    assert_eq!(e.list(&c2).await.expect("list").len(), 1, "nothing changed");
    e.remove(&c1, "a").await.expect("remove").expect("defined");
    e.set(&c2, "c", 10, 32)
        .await
        .expect("set")
        .expect("room again after a remove");
    for i in 0..3 {
        e.set(&msg(FREE_APP, "locks"), &format!("l{i}"), 10, 32)
            .await
            .expect("set")
            .expect("another app is not limited");
    }
}
