//! The conformance kit for [`Topics`]: every engine's topic roles must pass
//! [`run_topics_suite`], called from a test with a factory that builds a fresh engine.

use crate::{ChannelKey, ChannelKind, EngineError, Topics};
use std::sync::Arc;

fn key(app: &str, name: &str) -> ChannelKey {
    ChannelKey::new(app, ChannelKind::Stream, name)
}

/// Runs every topic check against fresh engines from `factory`.
pub async fn run_topics_suite<F>(factory: F)
where
    F: Fn() -> Arc<dyn Topics>,
{
    join_leave_and_listing(&factory()).await;
    limit_per_member(&factory()).await;
    leave_channel_drops_every_role(&factory()).await;
    isolation(&factory()).await;
    concurrent_joins_respect_the_limit(factory()).await;
}

async fn names(t: &Arc<dyn Topics>, ch: &ChannelKey) -> Vec<(String, Vec<(String, String)>)> {
    t.topics(ch)
        .await
        .expect("topics")
        .into_iter()
        .map(|i| {
            (
                i.topic.to_string(),
                i.publishers
                    .into_iter()
                    .map(|p| (p.user.to_string(), p.meta.to_string()))
                    .collect(),
            )
        })
        .collect()
}

async fn join_leave_and_listing(t: &Arc<dyn Topics>) {
    let ch = key("app", "room");
    assert!(
        names(t, &ch).await.is_empty(),
        "a new channel has no topics"
    );
    assert!(t.join_topic(&ch, "t2", "bob", "b", 8).await.unwrap());
    assert!(t.join_topic(&ch, "t1", "carol", "c", 8).await.unwrap());
    assert!(t.join_topic(&ch, "t1", "alice", "a", 8).await.unwrap());
    // Joining again changes nothing, not even the meta (R99).
    assert!(!t.join_topic(&ch, "t1", "alice", "other", 8).await.unwrap());
    assert_eq!(
        names(t, &ch).await,
        vec![
            (
                "t1".into(),
                vec![("alice".into(), "a".into()), ("carol".into(), "c".into())]
            ),
            ("t2".into(), vec![("bob".into(), "b".into())]),
        ],
        "topics by name, publishers by user id"
    );
    let t1: Vec<String> = t
        .publishers(&ch, "t1")
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.user.to_string())
        .collect();
    assert_eq!(t1, ["alice", "carol"]);
    assert!(t.publishers(&ch, "none").await.unwrap().is_empty());
    assert!(t.leave_topic(&ch, "t2", "bob").await.unwrap());
    assert!(
        !t.leave_topic(&ch, "t2", "bob").await.unwrap(),
        "left twice"
    );
    assert_eq!(
        names(t, &ch).await.len(),
        1,
        "a topic without publishers is gone"
    );
}

async fn limit_per_member(t: &Arc<dyn Topics>) {
    let ch = key("app", "limits");
    for i in 0..3 {
        assert!(
            t.join_topic(&ch, &format!("t{i}"), "u", "", 3)
                .await
                .unwrap()
        );
    }
    assert_eq!(
        t.join_topic(&ch, "t3", "u", "", 3).await,
        Err(EngineError::LimitReached(3)),
        "a fourth topic over a limit of 3 fails"
    );
    assert!(
        !t.join_topic(&ch, "t0", "u", "", 3).await.unwrap(),
        "re-joining a joined topic at the limit is not a new role"
    );
    assert!(
        t.join_topic(&ch, "t3", "v", "", 3).await.unwrap(),
        "per member"
    );
    assert!(t.leave_topic(&ch, "t0", "u").await.unwrap());
    assert!(
        t.join_topic(&ch, "t3", "u", "", 3).await.unwrap(),
        "room again"
    );
}

async fn leave_channel_drops_every_role(t: &Arc<dyn Topics>) {
    let ch = key("app", "leave");
    for topic in ["b", "a", "c"] {
        t.join_topic(&ch, topic, "u", "", 8).await.unwrap();
    }
    t.join_topic(&ch, "a", "other", "", 8).await.unwrap();
    let left = t.leave_channel(&ch, "u").await.unwrap();
    let left: Vec<&str> = left.iter().map(|s| &**s).collect();
    assert_eq!(left, ["a", "b", "c"]);
    assert_eq!(
        names(t, &ch).await,
        vec![("a".into(), vec![("other".into(), String::new())])]
    );
    assert!(t.leave_channel(&ch, "u").await.unwrap().is_empty());
    // The limit counts from zero again.
    for i in 0..8 {
        assert!(
            t.join_topic(&ch, &format!("n{i}"), "u", "", 8)
                .await
                .unwrap()
        );
    }
}

async fn isolation(t: &Arc<dyn Topics>) {
    let a = key("app1", "same");
    let b = key("app2", "same");
    let c = key("app1", "other");
    t.join_topic(&a, "t", "u", "", 8).await.unwrap();
    assert!(names(t, &b).await.is_empty(), "apps are separate");
    assert!(names(t, &c).await.is_empty(), "channels are separate");
    assert!(t.leave_channel(&b, "u").await.unwrap().is_empty());
    assert_eq!(names(t, &a).await.len(), 1);
}

async fn concurrent_joins_respect_the_limit(t: Arc<dyn Topics>) {
    let ch = key("app", "race");
    let mut tasks = Vec::new();
    for i in 0..32 {
        let t = t.clone();
        let ch = ch.clone();
        tasks.push(tokio::spawn(async move {
            t.join_topic(&ch, &format!("t{i}"), "u", "", 8).await
        }));
    }
    let mut ok = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(true) => ok += 1,
            Err(EngineError::LimitReached(8)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(ok, 8, "exactly the limit succeeds under concurrency");
    assert_eq!(names(&t, &ch).await.len(), 8);
}
