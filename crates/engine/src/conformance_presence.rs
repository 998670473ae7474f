//! The conformance kit for [`Presence`]: every engine must pass [`run_presence_suite`],
//! called from a test with a factory that builds a fresh engine.

use crate::{ChannelKey, ChannelKind, EngineError, Presence, State};
use std::sync::Arc;

fn key(app: &str, kind: ChannelKind, name: &str) -> ChannelKey {
    ChannelKey::new(app, kind, name)
}

fn state(pairs: &[(&str, &str)]) -> State {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Runs every presence check against fresh engines from `factory`.
pub async fn run_presence_suite<F>(factory: F)
where
    F: Fn() -> Arc<dyn Presence>,
{
    enter_exit_and_count(&factory()).await;
    state_merge_remove_and_limit(&factory()).await;
    quiet_members_are_invisible(&factory()).await;
    paging_lists_each_member_once(&factory()).await;
    where_now(&factory()).await;
    expiry(&factory()).await;
}

async fn expiry(p: &Arc<dyn Presence>) {
    let a = key("app", ChannelKind::Message, "a");
    let b = key("app", ChannelKind::Stream, "b");
    p.enter(&a, "gone", false, state(&[("k", "v")]))
        .await
        .unwrap();
    p.enter(&b, "gone", true, State::new()).await.unwrap();
    p.enter(&a, "stays", false, State::new()).await.unwrap();
    p.enter(&a, "back", false, State::new()).await.unwrap();
    p.set_expiry("app", "gone", Some(1_000)).await.unwrap();
    p.set_expiry("app", "back", Some(1_000)).await.unwrap();
    p.set_expiry("app", "back", None).await.unwrap();
    p.set_expiry("app", "stays", Some(5_000)).await.unwrap();
    assert!(p.expire_due(999).await.unwrap().is_empty(), "not yet");
    let mut gone = p.expire_due(1_000).await.unwrap();
    gone.sort_by(|x, y| x.channel.cmp(&y.channel));
    assert_eq!(
        gone.len(),
        2,
        "every membership of the user, quiet ones too: {gone:?}"
    );
    assert_eq!(gone[0].channel, a);
    assert_eq!(gone[0].departed.state, state(&[("k", "v")]));
    assert!(!gone[0].departed.quiet);
    assert_eq!(gone[1].channel, b);
    assert!(gone[1].departed.quiet);
    assert_eq!(
        p.count(&a).await.unwrap(),
        2,
        "a cleared deadline keeps the member"
    );
    assert!(
        p.expire_due(1_000).await.unwrap().is_empty(),
        "expired once"
    );
    assert_eq!(p.expire_due(5_000).await.unwrap().len(), 1);
}

async fn enter_exit_and_count(p: &Arc<dyn Presence>) {
    let ch = key("app", ChannelKind::Message, "room");
    assert_eq!(p.count(&ch).await.unwrap(), 0);
    let enter = |user: &'static str, st: State| p.enter(&ch, user, false, st);
    assert_eq!(enter("a", State::new()).await.unwrap(), Some(true));
    assert_eq!(enter("a", State::new()).await.unwrap(), None, "already in");
    assert_eq!(enter("b", state(&[("k", "v")])).await.unwrap(), Some(true));
    assert_eq!(p.count(&ch).await.unwrap(), 2);
    let gone = p.exit(&ch, "b").await.unwrap().expect("b was in");
    assert_eq!(gone.state, state(&[("k", "v")]));
    assert!(!gone.quiet);
    assert_eq!(p.exit(&ch, "b").await.unwrap(), None, "left twice");
    assert_eq!(p.count(&ch).await.unwrap(), 1);
    assert_eq!(
        p.state(&ch, "b").await.unwrap(),
        None,
        "state goes with the member"
    );
    assert_eq!(
        p.enter(&ch, "b", false, State::new()).await.unwrap(),
        Some(true)
    );
    assert_eq!(p.state(&ch, "b").await.unwrap(), Some(State::new()));
}

async fn state_merge_remove_and_limit(p: &Arc<dyn Presence>) {
    let ch = key("app", ChannelKind::Stream, "s");
    assert_eq!(
        p.set_state(&ch, "u", state(&[("a", "1")]), 32)
            .await
            .unwrap(),
        None,
        "not a member"
    );
    p.enter(&ch, "u", false, state(&[("a", "1")]))
        .await
        .unwrap();
    let s = p
        .set_state(&ch, "u", state(&[("b", "2"), ("a", "9")]), 3)
        .await
        .unwrap();
    assert_eq!(s, Some(state(&[("a", "9"), ("b", "2")])), "merged (R127)");
    assert_eq!(
        p.set_state(&ch, "u", state(&[("c", "3"), ("d", "4")]), 3)
            .await,
        Err(EngineError::LimitReached(3))
    );
    assert_eq!(
        p.state(&ch, "u").await.unwrap(),
        Some(state(&[("a", "9"), ("b", "2")])),
        "a refused write changes nothing"
    );
    // Re-entering merges the given keys.
    p.enter(&ch, "u", false, state(&[("c", "3")]))
        .await
        .unwrap();
    let s = p.remove_state(&ch, "u", &["a".into()]).await.unwrap();
    assert_eq!(s, Some(state(&[("b", "2"), ("c", "3")])));
    let s = p.remove_state(&ch, "u", &[]).await.unwrap();
    assert_eq!(s, Some(State::new()), "no keys = all (R130)");
    assert_eq!(p.remove_state(&ch, "x", &[]).await.unwrap(), None);
}

async fn quiet_members_are_invisible(p: &Arc<dyn Presence>) {
    let ch = key("app", ChannelKind::Message, "q");
    p.enter(&ch, "loud", false, State::new()).await.unwrap();
    p.enter(&ch, "quiet", true, state(&[("k", "v")]))
        .await
        .unwrap();
    assert_eq!(p.count(&ch).await.unwrap(), 1, "R86");
    let page = p.list(&ch, None, 10).await.unwrap();
    assert_eq!(page.members.len(), 1);
    assert_eq!(&*page.members[0].user, "loud");
    assert_eq!(p.state(&ch, "quiet").await.unwrap(), None);
    assert!(
        p.channels_of("app", "quiet").await.unwrap().is_empty(),
        "R87"
    );
    let gone = p.exit(&ch, "quiet").await.unwrap().expect("was in");
    assert!(gone.quiet);
    // Options are replaced by a repeated subscribe (R81): visible → quiet → visible.
    assert_eq!(
        p.enter(&ch, "loud", true, State::new()).await.unwrap(),
        Some(false),
        "a visible member turning quiet"
    );
    assert_eq!(p.count(&ch).await.unwrap(), 0);
    assert_eq!(
        p.enter(&ch, "loud", false, State::new()).await.unwrap(),
        Some(true),
        "quiet to visible counts as becoming visible"
    );
}

async fn paging_lists_each_member_once(p: &Arc<dyn Presence>) {
    let ch = key("app", ChannelKind::Message, "big");
    for i in 0..250 {
        p.enter(&ch, &format!("u{i:04}"), i % 10 == 0, State::new())
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = p.list(&ch, after.as_deref(), 40).await.unwrap();
        assert!(page.members.len() <= 40);
        // Churn between pages: someone already listed leaves, a newcomer sorts last.
        if seen.len() == 40 {
            p.exit(&ch, "u0001").await.unwrap();
            p.enter(&ch, "zz-new", false, State::new()).await.unwrap();
        }
        seen.extend(page.members.iter().map(|m| m.user.to_string()));
        if !page.more {
            break;
        }
        after = seen.last().cloned();
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "nobody twice");
    assert_eq!(
        seen.len(),
        225 + 1,
        "every visible member once, the newcomer too"
    );
}

async fn where_now(p: &Arc<dyn Presence>) {
    let m = key("app", ChannelKind::Message, "m");
    let s = key("app", ChannelKind::Stream, "s");
    let other = key("app2", ChannelKind::Message, "m");
    p.enter(&m, "u", false, State::new()).await.unwrap();
    p.enter(&s, "u", false, State::new()).await.unwrap();
    p.enter(&other, "u", false, State::new()).await.unwrap();
    assert_eq!(
        p.channels_of("app", "u").await.unwrap(),
        vec![m.clone(), s.clone()]
    );
    p.exit(&m, "u").await.unwrap();
    assert_eq!(p.channels_of("app", "u").await.unwrap(), vec![s]);
    assert!(p.channels_of("app", "nobody").await.unwrap().is_empty());
}
