//! The conformance kit: one suite of behavioural checks that every [`Broker`]
//! implementation must pass. An engine crate calls [`run_broker_suite`] from a test with
//! a factory that builds a fresh engine for the given retention.

use crate::{
    Broker, ChannelKey, ChannelKind, EngineError, MessageKind, Publication, PublicationHandler,
    PublishOptions, RateLimit, Retention, StreamPosition,
};
use bytes::Bytes;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Records every publication handed to the node, in arrival order.
#[derive(Default)]
pub struct Recorder {
    seen: Mutex<Vec<(ChannelKey, Arc<Publication>)>>,
}

impl Recorder {
    /// Offsets received for `channel`, in arrival order.
    pub fn offsets(&self, channel: &ChannelKey) -> Vec<u64> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.iter()
            .filter(|(c, _)| c == channel)
            .map(|(_, p)| p.position.offset)
            .collect()
    }
}

impl PublicationHandler for Recorder {
    fn on_publication(&self, channel: &ChannelKey, publication: &Arc<Publication>) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.push((channel.clone(), publication.clone()));
    }
}

/// A text publication by `publisher` with `body`.
pub fn publication(publisher: &str, body: &str) -> Publication {
    Publication {
        publisher: publisher.into(),
        kind: MessageKind::Text,
        custom_type: "".into(),
        payload: Bytes::copy_from_slice(body.as_bytes()),
        topic: "".into(),
        send_ts: 0,
        timestamp_ms: 1,
        position: StreamPosition::default(),
    }
}

fn key(app: &str, name: &str) -> ChannelKey {
    ChannelKey::new(app, ChannelKind::Message, name)
}

/// Default retention for the suite's brokers.
pub const SUITE_RETENTION: Retention = Retention {
    max_count: 100,
    max_age: Duration::from_secs(300),
};

/// Runs every check against brokers built by `factory`. Panics on the first failure
/// with a message naming the check.
pub async fn run_broker_suite<F>(factory: F)
where
    F: Fn(Retention) -> Arc<dyn Broker>,
{
    offsets_and_order(&factory).await;
    recovery(&factory).await;
    trimmed_log_is_incomplete(&factory).await;
    require_receiver(&factory).await;
    idempotency(&factory).await;
    rate_limit(&factory).await;
    isolation(&factory).await;
}

async fn setup<F: Fn(Retention) -> Arc<dyn Broker>>(
    factory: &F,
    retention: Retention,
) -> (Arc<dyn Broker>, Arc<Recorder>) {
    let broker = factory(retention);
    let recorder = Arc::new(Recorder::default());
    broker.set_handler(recorder.clone());
    (broker, recorder)
}

async fn publish(
    b: &Arc<dyn Broker>,
    ch: &ChannelKey,
    body: &str,
) -> Result<StreamPosition, EngineError> {
    b.publish(ch, publication("p", body), &PublishOptions::default())
        .await
        .map(|o| o.position)
}

async fn offsets_and_order<F: Fn(Retention) -> Arc<dyn Broker>>(factory: &F) {
    let (b, rec) = setup(factory, SUITE_RETENTION).await;
    let ch = key("app1", "order");
    let p0 = b.position(&ch).await.expect("position");
    assert_eq!(p0.offset, 0, "offsets: a new channel is at offset 0");
    // Not subscribed: published but not delivered to this node.
    let p1 = publish(&b, &ch, "a").await.expect("publish");
    assert_eq!(p1.offset, 1, "offsets: first publication is offset 1");
    assert_eq!(p1.epoch, p0.epoch, "offsets: epoch stays");
    assert!(
        rec.offsets(&ch).is_empty(),
        "delivery: unsubscribed node got a publication"
    );
    b.subscribe_node(&ch).await.expect("subscribe");
    b.subscribe_node(&ch)
        .await
        .expect("subscribe is idempotent");
    for i in 2..=50u64 {
        let p = publish(&b, &ch, "x").await.expect("publish");
        assert_eq!(p.offset, i, "offsets grow by one");
    }
    assert_eq!(
        rec.offsets(&ch),
        (2..=50).collect::<Vec<_>>(),
        "delivery: in offset order, once each"
    );
    b.unsubscribe_node(&ch).await.expect("unsubscribe");
    publish(&b, &ch, "y").await.expect("publish");
    assert_eq!(
        rec.offsets(&ch).len(),
        49,
        "delivery: stops after unsubscribe_node"
    );
    let pos = b.position(&ch).await.expect("position");
    assert_eq!(pos.offset, 51, "position: offset of the latest publication");
}

async fn recovery<F: Fn(Retention) -> Arc<dyn Broker>>(factory: &F) {
    let (b, _) = setup(factory, SUITE_RETENTION).await;
    let ch = key("app1", "recover");
    let mut positions = Vec::new();
    for i in 0..10 {
        positions.push(publish(&b, &ch, &format!("m{i}")).await.expect("publish"));
    }
    let r = b.recover(&ch, positions[4], 100).await.expect("recover");
    assert!(r.complete, "recover: complete within retention");
    let bodies: Vec<_> = r.publications.iter().map(|p| p.payload.clone()).collect();
    let want: Vec<_> = (5..10).map(|i| Bytes::from(format!("m{i}"))).collect();
    assert_eq!(
        bodies, want,
        "recover: exactly the publications after the position, in order"
    );
    assert_eq!(
        r.position, positions[9],
        "recover: reports the current position"
    );
    let r = b.recover(&ch, positions[9], 100).await.expect("recover");
    assert!(
        r.complete && r.publications.is_empty(),
        "recover: nothing after the latest"
    );
    let r = b.recover(&ch, positions[0], 3).await.expect("recover");
    assert_eq!(r.publications.len(), 3, "recover: honours the limit");
    let wrong_epoch = StreamPosition {
        epoch: positions[0].epoch.wrapping_add(1),
        offset: 3,
    };
    let r = b.recover(&ch, wrong_epoch, 100).await.expect("recover");
    assert!(!r.complete, "recover: another epoch is never complete");
}

async fn trimmed_log_is_incomplete<F: Fn(Retention) -> Arc<dyn Broker>>(factory: &F) {
    let retention = Retention {
        max_count: 5,
        max_age: Duration::from_secs(300),
    };
    let (b, _) = setup(factory, retention).await;
    let ch = key("app1", "trim");
    let first = publish(&b, &ch, "0").await.expect("publish");
    for i in 1..10 {
        publish(&b, &ch, &i.to_string()).await.expect("publish");
    }
    let r = b.recover(&ch, first, 100).await.expect("recover");
    assert!(
        !r.complete,
        "retention: a trimmed gap is reported incomplete"
    );
    let from_kept = StreamPosition {
        epoch: first.epoch,
        offset: 5,
    };
    let r = b.recover(&ch, from_kept, 100).await.expect("recover");
    assert!(r.complete, "retention: the kept tail is complete");
    assert_eq!(
        r.publications.len(),
        5,
        "retention: keeps max_count publications"
    );
}

async fn require_receiver<F: Fn(Retention) -> Arc<dyn Broker>>(factory: &F) {
    let (b, rec) = setup(factory, SUITE_RETENTION).await;
    let ch = ChannelKey::new("app1", ChannelKind::User, "bob");
    let opts = PublishOptions {
        require_receiver: true,
        ..Default::default()
    };
    let r = b.publish(&ch, publication("alice", "hi"), &opts).await;
    assert_eq!(
        r,
        Err(EngineError::NoReceiver),
        "require_receiver: refused with nobody subscribed"
    );
    assert_eq!(
        b.position(&ch).await.expect("position").offset,
        0,
        "require_receiver: a refusal takes no offset"
    );
    b.subscribe_node(&ch).await.expect("subscribe");
    let r = b
        .publish(&ch, publication("alice", "hi"), &opts)
        .await
        .expect("publish");
    assert_eq!(r.position.offset, 1);
    assert_eq!(
        rec.offsets(&ch),
        vec![1],
        "require_receiver: delivered once subscribed"
    );
}

async fn idempotency<F: Fn(Retention) -> Arc<dyn Broker>>(factory: &F) {
    let (b, rec) = setup(factory, SUITE_RETENTION).await;
    let ch = key("app1", "idem");
    b.subscribe_node(&ch).await.expect("subscribe");
    let opts = PublishOptions {
        idempotency_key: Some("k1".into()),
        ..Default::default()
    };
    let first = b
        .publish(&ch, publication("p", "a"), &opts)
        .await
        .expect("publish");
    let again = b
        .publish(&ch, publication("p", "a"), &opts)
        .await
        .expect("publish");
    assert!(
        !first.duplicate && again.duplicate,
        "idempotency: second is a duplicate"
    );
    assert_eq!(first.position, again.position, "idempotency: same position");
    assert_eq!(rec.offsets(&ch), vec![1], "idempotency: delivered once");
}

async fn rate_limit<F: Fn(Retention) -> Arc<dyn Broker>>(factory: &F) {
    let (b, _) = setup(factory, SUITE_RETENTION).await;
    let ch = key("app1", "rate");
    let opts = PublishOptions {
        rate_limit: Some(RateLimit {
            per_second: 5,
            burst: 5,
        }),
        ..Default::default()
    };
    let mut ok = 0;
    let mut limited = 0;
    for _ in 0..20 {
        match b.publish(&ch, publication("p", "a"), &opts).await {
            Ok(_) => ok += 1,
            Err(EngineError::RateLimited(5)) => limited += 1,
            Err(e) => panic!("rate limit: unexpected {e}"),
        }
    }
    // A burst of 5 plus whatever refilled while the loop ran (well under a second).
    assert!(
        (5..=8).contains(&ok),
        "rate limit: {ok} accepted of 20 with burst 5"
    );
    assert_eq!(ok + limited, 20);
    assert_eq!(
        b.position(&ch).await.expect("position").offset,
        ok as u64,
        "rate limit: refused publishes take no offset"
    );
    let other = key("app1", "rate-other");
    assert!(
        b.publish(&other, publication("p", "a"), &opts)
            .await
            .is_ok(),
        "rate limit: per channel"
    );
}

async fn isolation<F: Fn(Retention) -> Arc<dyn Broker>>(factory: &F) {
    let (b, rec) = setup(factory, SUITE_RETENTION).await;
    let a = key("app1", "same");
    let other_app = key("app2", "same");
    let other_kind = ChannelKey::new("app1", ChannelKind::User, "same");
    b.subscribe_node(&a).await.expect("subscribe");
    publish(&b, &other_app, "x").await.expect("publish");
    publish(&b, &other_kind, "x").await.expect("publish");
    assert!(
        rec.offsets(&a).is_empty(),
        "isolation: apps and kinds do not share channels"
    );
    assert_eq!(publish(&b, &a, "x").await.expect("publish").offset, 1);
}
